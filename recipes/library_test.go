package recipes

import "os"

// testLibrary is the built-in component library, read from its source
// directory (components embeds the same files), so that tests load
// recipes as kiln does.
var testLibrary = os.DirFS("../components/library")
