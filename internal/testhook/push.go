package testhook

// The points of a registry push (package oci), in order.
const (
	PushBlobs    = "push blobs"    // every blob uploaded, no manifest yet
	PushManifest = "push manifest" // the artifact's manifest pushed by digest, untagged
	PushClaimed  = "push claimed"  // the claim tag written and checked, VERSION-BUILD not yet
)

// InPush, when a test sets it, is called at each point of a push. It may
// block to hold the process there.
var InPush func(point string)

// Push reports that a push reached point.
func Push(point string) {
	if InPush != nil {
		InPush(point)
	}
}
