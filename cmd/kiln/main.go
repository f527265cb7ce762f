// Command kiln builds tested, versioned VM images from HCL recipes.
package main

import (
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
