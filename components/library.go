package components

import (
	"embed"
	"io/fs"
	"sync"
)

//go:embed library/*.hcl
var library embed.FS

// builtin is the library's file system, made once: recipes parses a
// library once per file system value, so every caller gets the same one.
var builtin = sync.OnceValue(func() fs.FS {
	sub, err := fs.Sub(library, "library")
	if err != nil {
		panic(err) // the embedded directory always exists
	}
	return sub
})

// Builtin is the built-in component library: one HCL component file per
// name and version, at the root of the returned file system. It returns the
// same value at every call.
func Builtin() fs.FS { return builtin() }
