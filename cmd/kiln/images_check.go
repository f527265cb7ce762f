package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kiln-build/kiln/catalog"
)

const imagesCheckUsage = `kiln images check [--repair] [--json] [--images DIR]

Reads the whole catalog and reports every inconsistency: damaged builds
(manifest.json or catalog.json missing, unreadable, truncated or of an
unknown schema version), outputs missing or whose size or sha256 differs
from the manifest's, stray files and directories, symbolic links (never
followed; those leading out of the catalog are named), a .last-build lower
than a published build, temporary files a crash left, and file modes that
do not match a build's visibility.

--repair repairs what the manifests allow: catalog.json recreated from
manifest.json (a damaged one is kept as catalog.json.damaged), .last-build
raised, temporary files deleted, modes set. A changed output byte, a
damaged manifest, stray files and links are reported, never changed.

Exit code 0 when nothing is wrong (or everything was repaired), 1 when a
problem remains, 2 on usage errors.`

func imagesCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("check", imagesCheckUsage, stderr)
	repair := fs.Bool("repair", false, "repair what the manifests allow")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, errors.New("takes no arguments"))
	}
	rep, err := catalog.Check(ctx, *root, *repair, time.Now())
	if err != nil {
		return imagesErr(stderr, err)
	}
	code := exitOK
	if rep.Unrepaired() > 0 {
		code = exitFailed
	}
	if *asJSON {
		writeJSON(stdout, map[string]any{"root": rep.Root, "builds": rep.Builds, "swept": rep.Swept, "problems": rep.Problems,
			"unrepaired": rep.Unrepaired(), "ok": code == exitOK})
		return code
	}
	for _, p := range rep.Swept {
		fmt.Fprintf(stdout, "swept: %s (left by a process that died)\n", p)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "%s: %s\n", p.Kind, p)
	}
	repaired := len(rep.Problems) - rep.Unrepaired()
	switch {
	case len(rep.Problems) == 0:
		fmt.Fprintf(stdout, "%s: %d build(s) checked, no problems\n", rep.Root, rep.Builds)
	case code == exitOK:
		fmt.Fprintf(stdout, "%s: %d build(s) checked, %d problem(s), all repaired\n", rep.Root, rep.Builds, repaired)
	default:
		hint := ""
		if !*repair && rep.Fixable() > 0 {
			hint = fmt.Sprintf("; %d can be repaired with --repair", rep.Fixable())
		}
		fmt.Fprintf(stdout, "%s: %d build(s) checked, %d problem(s) (%d repaired)%s\n", rep.Root, rep.Builds, len(rep.Problems), repaired, hint)
	}
	return code
}
