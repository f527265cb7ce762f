package components

import (
	"embed"
	"io/fs"
)

//go:embed library/*.hcl
var library embed.FS

// Builtin is the built-in component library: one HCL component file per
// name and version, at the root of the returned file system.
func Builtin() fs.FS {
	sub, err := fs.Sub(library, "library")
	if err != nil {
		panic(err) // the embedded directory always exists
	}
	return sub
}
