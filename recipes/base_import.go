package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/internal/semver"
)

// imageBaseSchema is base "image": a published Kiln image from the catalog
// the build publishes into.
var imageBaseSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "version"}, {Name: "include_deprecated"}},
}

// fileBaseSchema is base "file": a disk image file (raw, qcow2, VMDK, VHD or
// VHDX) that any tool may have made.
var fileBaseSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path"}, {Name: "sha256"}},
}

// ociBaseSchema is base "oci": a Kiln build pushed to an OCI registry
// (kiln images push), pulled into the build's catalog.
var ociBaseSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ref"}, {Name: "plain_http"}},
}

// ociRefRE is REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:HEX, with
// or without oci://, as the distribution spec spells them.
var ociRefRE = regexp.MustCompile(`^(oci://)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[0-9a-f]{64})$`)

var (
	baseRefArg           = arg{"ref", `"registry.example:5000/images/debian-base:1.0.0"`, true}
	basePlainHTTPArg     = arg{"plain_http", `true`, false}
	parentNameArg        = arg{"name", `"debian-base"`, true}
	parentVersionArg     = arg{"version", `"1.x.x"`, false}
	includeDeprecatedArg = arg{"include_deprecated", `true`, false}
	basePathArg          = arg{"path", `"disks/legacy.vmdk"`, true}
	baseSHA256Arg        = arg{"sha256", `"<the 64 hex digits sha256sum prints>"`, true}
)

// DefaultParentSelector is the version selector of a base "image" block
// without a version: the newest version.
const DefaultParentSelector = "x.x.x"

// decodeImportBase decodes the arguments of a base "image", "file" or
// "oci" block into b.
func (d *decoder) decodeImportBase(b *baseBlock, diags *hcl.Diagnostics) {
	b.Variant, b.Components, b.Packages = "", nil, nil
	switch b.Type {
	case BaseImage:
		b.VersionSelector = DefaultParentSelector
		d.getStr(b.src, parentNameArg, &b.Name, diags)
		d.getStr(b.src, parentVersionArg, &b.VersionSelector, diags)
		d.getBool(b.src, includeDeprecatedArg, &b.IncludeDeprecated, diags)
	case BaseFile:
		b.dir = d.dir
		d.getStr(b.src, basePathArg, &b.Path, diags)
		d.getStr(b.src, baseSHA256Arg, &b.SHA256, diags)
	case BaseOCI:
		d.getStr(b.src, baseRefArg, &b.Ref, diags)
		d.getBool(b.src, basePlainHTTPArg, &b.PlainHTTP, diags)
	}
}

// validateImport checks a base "image" or base "file" block's values. A
// file base's path must name an existing regular file; what is inside it is
// checked by the build, after its sha256 matched.
func (b *baseBlock) validateImport() hcl.Diagnostics {
	var diags hcl.Diagnostics
	switch b.Type {
	case BaseOCI:
		if a, ok := b.src.valid("ref"); ok && !ociRefRE.MatchString(b.Ref) {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid registry reference",
				fmt.Sprintf("%q does not name a pushed build: write REGISTRY/REPOSITORY:TAG (a tag VERSION or VERSION-BUILD, as kiln images push sets them) or REGISTRY/REPOSITORY@sha256:DIGEST, such as %s.", b.Ref, baseRefArg.example)))
		}
	case BaseImage:
		if a, ok := b.src.valid("name"); ok && !imageNameRE.MatchString(b.Name) {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid image name",
				fmt.Sprintf("%q cannot name a cataloged image: image names are 1 to 63 lowercase letters, digits, dots, dashes and underscores, such as %s.", b.Name, parentNameArg.example)))
		}
		if a, ok := b.src.valid("version"); ok {
			if _, err := semver.ParseSelector(b.VersionSelector); err != nil {
				diags = append(diags, errorDiag(a.Expr.Range(), "Invalid version selector",
					fmt.Sprintf("%q selects no version: write an exact version such as \"1.2.0\" or one with x wildcards such as %s (the newest 1.y.z) or \"1.2.x\"; leave version out for the newest version.", b.VersionSelector, parentVersionArg.example)))
			}
		}
	case BaseFile:
		if a, ok := b.src.valid("sha256"); ok {
			if !sha256RE.MatchString(b.SHA256) {
				diags = append(diags, errorDiag(a.Expr.Range(), "Invalid sha256",
					fmt.Sprintf("%q is not a SHA-256 digest: write the 64 hexadecimal digits that `sha256sum FILE` prints for the disk image file.", b.SHA256)))
			} else {
				b.SHA256 = strings.ToLower(b.SHA256)
			}
		}
		if a, ok := b.src.valid("path"); ok {
			path := b.Path
			if path != "" && !filepath.IsAbs(path) {
				path = filepath.Join(b.dir, path)
			}
			switch fi, err := os.Stat(path); {
			case b.Path == "" || err != nil:
				diags = append(diags, errorDiag(a.Expr.Range(), "Disk image file not found",
					fmt.Sprintf("There is no file %q. A file base's path is relative to the recipe's directory (%s); check the path.", path, b.dir)))
			case !fi.Mode().IsRegular():
				diags = append(diags, errorDiag(a.Expr.Range(), "Disk image is not a file",
					fmt.Sprintf("%q is not a regular file. Point path at a raw, qcow2, VMDK, VHD or VHDX disk image file.", path)))
			default:
				b.Path = path
			}
		}
	}
	return diags
}
