// Package testhook holds the hook that only tests set. Production code
// calls At at the named points below, where a test needs to stop or watch
// a real process; the hook is nil, and At does nothing, unless a test
// binary set it. Nothing here is read from the environment or the command
// line, so a user cannot turn a hook on.
//
// The kill tests (cmd/kiln's kill matrix) run the test binary as kiln with
// Reached set to hold the process at one point, then signal it there.
package testhook

// Reached, when a test binary sets it, is called with the name of each
// point a process reaches. It may block to hold the process there.
var Reached func(point string)

// At reports that the process reached point.
func At(point string) {
	if Reached != nil {
		Reached(point)
	}
}

// The points. A build reaches Stage+NAME as each stage starts (after
// "=== stage NAME" is in its build.log).
const (
	// Stage prefixes a build stage's name: "stage base", "stage disk", ...
	Stage = "stage "
	// OutputWritten prefixes an output format written (and checked) by the
	// outputs stage, which writes them concurrently: "output written qcow2";
	// "output written raw" once the raw image is compressed (only when the
	// recipe publishes it compressed).
	OutputWritten = "output written "
	// PublishWindow is inside a build's publish window: the version's lock
	// held, the build number taken and manifest.json written, the staging
	// directory not yet renamed into the catalog.
	PublishWindow = "publish window"
	// DistributeWindow is inside a copy to another catalog: every file
	// copied into that catalog's staging and verified, not yet published
	// there.
	DistributeWindow = "distribute window"
	// RemoveRenamed is inside a removal: the build renamed out of the
	// catalog into .trash, its data not yet deleted.
	RemoveRenamed = "remove renamed"
	// PruneActionDone follows each deprecation or deletion of a prune.
	PruneActionDone = "prune action done"
	// PushBlobs, PushManifest and PushClaimed are the points of a registry
	// push (package oci), in order: every blob uploaded, no manifest yet;
	// the artifact's manifest pushed by digest, untagged; the claim tag
	// written and checked, VERSION-BUILD not yet.
	PushBlobs    = "push blobs"
	PushManifest = "push manifest"
	PushClaimed  = "push claimed"
	// LayerCommit is inside the commit of a build step's layer: the layer
	// and its metadata written under a temporary name, not yet renamed to
	// the layer's key.
	LayerCommit = "layer commit"
)
