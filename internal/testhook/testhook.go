// Package testhook holds the hooks that only tests set. Production code
// calls a hook at the one place a test needs to stop or watch it; every
// hook is nil, and so does nothing, unless a test binary set it. Nothing
// here is read from the environment or the command line, so a user cannot
// turn a hook on.
package testhook

// InPublish runs inside a build's publish window: the version's lock held,
// the build number taken and manifest.json written, the staging directory
// not yet renamed into the catalog. The kill tests hold a real build there
// and SIGKILL it.
var InPublish func()
