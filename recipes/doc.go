// Package recipes reads a Kiln recipe: it parses the HCL, resolves the
// recipe's variables, and checks every block and argument, so that the rest
// of Kiln receives a plain, fully validated [Recipe] with defaults applied.
//
// A recipe has an optional kiln block (required_version, checked first
// against [FormatVersion]), any number of variable blocks (with type
// constraints, validation blocks and sensitive values) and locals blocks,
// and exactly one image block, which holds a base block, optional boot,
// disk and output blocks, and build and test steps. Expressions can call
// the functions Terraform and Packer users know ([FunctionNames]); cty marks
// carry a sensitive variable's sensitivity into the values computed from
// it. [Format] lays a file out canonically.
//
// Problems are reported as diagnostics, all of them in one run, each with the
// file, line and column it concerns and a hint about what to do;
// [WriteDiagnostics] renders them. Load and Parse never panic on any input.
//
// It holds the recipe model: [Step] with its typed [Action] and [Policy],
// [BaseKind], and the firmware and partition table as platform types.
// Package components compiles steps into scripts; recipes does not import
// it, and gets the built-in component library as an fs.FS
// ([LoadOptions].Library).
//
// The package does not run anything or touch the network. Besides the
// recipe, its -var-file files and (with [Load]) the *.auto.kilnvars.* files
// next to it, it reads only component files, the files steps name (file
// sources and templates, read into the recipe; scripts, checked to exist and
// hashed for components) and the files the file functions name (recorded
// in [Recipe.ReadFiles] or a component's digest). The built-in component
// library is parsed once per process. It is the only
// package besides cmd/kiln that imports HCL: its result types are plain Go
// values, and only the diagnostics API ([Diagnostics]) exposes HCL's types.
package recipes
