// Package components holds Kiln's built-in component library and compiles
// the steps of a parsed recipe ([recipes.Step]: an action and its policy)
// into [Step]s, the one form both the build and the guest tests run: a
// script, plus files Kiln places into the tree itself, through
// internal/fsroot, before the script runs. Download actions are fetched
// and checked here, on the host.
//
// It does not parse HCL or check recipes (package recipes does, and is
// handed [Builtin] as its library), and it does not run anything: the
// builder runs build steps chrooted in the tree, internal/guest runs tests
// in the booted image.
package components
