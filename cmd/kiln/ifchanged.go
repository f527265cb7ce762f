package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/recipes"
)

// upToDate is the --if-changed check: it returns the newest build when r's
// inputs digest equals the one that build recorded, and nil when r must be
// built. When the inputs cannot be resolved (the archive is unreachable),
// it warns and says build: a build can still go ahead from a cached base,
// and an unknown is never taken for "unchanged".
func upToDate(ctx context.Context, r *recipes.Recipe, imagesDir string, warn io.Writer) *builder.UpToDateResult {
	res, err := builder.CheckUpToDate(ctx, r, imagesDir, Version)
	if err != nil {
		if errors.Is(err, builder.ErrInputsUnknown) {
			fmt.Fprintf(warn, "kiln: --if-changed: %v; building\n", err)
		} else {
			fmt.Fprintf(warn, "kiln: --if-changed: cannot read the newest build: %v; building\n", err)
		}
		return nil
	}
	if !res.UpToDate {
		fmt.Fprintf(warn, "kiln: --if-changed: %s; building\n", res.Reason)
		return nil
	}
	return res
}

// reportUpToDate prints the "up to date" result of kiln build --if-changed.
func reportUpToDate(stdout io.Writer, asJSON bool, res *builder.UpToDateResult) int {
	m := res.Newest
	if asJSON {
		return writeJSON(stdout, map[string]any{"status": "up-to-date", "path": res.Path, "name": m.Name, "version": m.Version,
			"build": m.Build, "inputs_digest": res.Digest})
	}
	fmt.Fprintf(stdout, "up to date: %s/%s/%d has the same inputs (sha256 %s)\n  path: %s\n", m.Name, m.Version, m.Build, res.Digest[:16], res.Path)
	return exitOK
}
