package recipes

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/internal/units"
)

// Catalog is the image's catalog block: who may use its builds when they
// are published, and what keeps them from being public. Range is zero when
// the block is absent.
type Catalog struct {
	Visibility   string   // private (default), shared or public
	ShareWith    []string // principals, for shared
	Encrypted    bool     // marks an image that can never be public
	ProductCodes []string // likewise
	Range        Range
}

// Lifecycle is a lifecycle block: how long builds are kept. Zero fields are
// unset. The same block can appear in other files that declare images
// (decodeLifecycleBlock decodes it).
type Lifecycle struct {
	KeepLast       int
	DeprecateAfter time.Duration
	DeleteAfter    time.Duration
	Range          Range
}

// Distribution is a distribute "NAME" block: another catalog root every
// published build is copied to, or an OCI registry it is pushed to.
type Distribution struct {
	Name string
	// Images is the absolute path of the destination catalog, or an
	// oci://REGISTRY/REPOSITORY URL (Registry reports which).
	Images string
	// PlainHTTP and ContainerDisk are for a registry: plain HTTP to a
	// registry not on loopback, and the KubeVirt containerDisk image too.
	PlainHTTP     bool
	ContainerDisk bool
	Range         Range
}

// Registry reports whether the target is an OCI registry (oci://).
func (d Distribution) Registry() bool { return strings.HasPrefix(d.Images, ociScheme) }

const ociScheme = "oci://"

// ociRepoRE is oci://REGISTRY/REPOSITORY, without a tag.
var ociRepoRE = regexp.MustCompile(`^oci://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$`)

var catalogBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "visibility"}, {Name: "share_with"}, {Name: "encrypted"}, {Name: "product_codes"}},
}

// LifecycleBlockSchema is the lifecycle block's schema.
var LifecycleBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "keep_last"}, {Name: "deprecate_after"}, {Name: "delete_after"}},
}

var distributeBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "images"}, {Name: "plain_http"}, {Name: "containerdisk"}},
}

var (
	visibilityArg     = arg{"visibility", `"shared"`, false}
	shareWithArg      = arg{"share_with", `["alice", "team-a"]`, false}
	encryptedArg      = arg{"encrypted", `true`, false}
	productCodesArg   = arg{"product_codes", `["a1b2c3"]`, false}
	keepLastArg       = arg{"keep_last", `5`, false}
	deprecateAfterArg = arg{"deprecate_after", `"90d"`, false}
	deleteAfterArg    = arg{"delete_after", `"365d"`, false}
	distImagesArg     = arg{"images", `"/srv/mirror/images"`, true}
	distPlainHTTPArg  = arg{"plain_http", `true`, false}
	distContainerDisk = arg{"containerdisk", `true`, false}
)

var (
	visibilities  = []string{"private", "shared", "public"}
	principalRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$`)
	productCodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	distNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

type catalogBlock struct {
	Catalog
	src                     *decoded
	shareRanges, codeRanges []hcl.Range
}

func defaultCatalog() Catalog {
	return Catalog{Visibility: "private", ShareWith: []string{}, ProductCodes: []string{}}
}

func (d *decoder) decodeCatalogBlock(block *hcl.Block) (*catalogBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(catalogBlockSchema)
	b := &catalogBlock{Catalog: defaultCatalog(), src: newDecoded("catalog", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	d.getStr(b.src, visibilityArg, &b.Visibility, &diags)
	d.getStrList(b.src, shareWithArg, &b.ShareWith, &b.shareRanges, &diags)
	d.getBool(b.src, encryptedArg, &b.Encrypted, &diags)
	d.getStrList(b.src, productCodesArg, &b.ProductCodes, &b.codeRanges, &diags)
	if !b.src.ok["visibility"] && len(b.ShareWith) > 0 {
		b.Visibility = "shared"
	}
	return b, diags
}

func (b *catalogBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i, p := range b.ShareWith {
		if !principalRE.MatchString(p) {
			diags = append(diags, errorDiag(b.shareRanges[i], "Invalid principal",
				fmt.Sprintf("%q cannot name a principal: use letters, digits and . _ @ : -, such as %s.", p, shareWithArg.example)))
		}
	}
	for i, c := range b.ProductCodes {
		if !productCodeRE.MatchString(c) {
			diags = append(diags, errorDiag(b.codeRanges[i], "Invalid product code",
				fmt.Sprintf("%q is not a product code: use letters, digits, dots, dashes and underscores, such as %s.", c, productCodesArg.example)))
		}
	}
	a, ok := b.src.valid("visibility")
	if !ok {
		return diags
	}
	switch b.Visibility {
	case "private":
		if len(b.ShareWith) > 0 {
			diags = append(diags, errorDiag(a.Expr.Range(), "Private image shared",
				`A private image is shared with nobody. Write visibility = "shared" to share it with the principals in share_with, or remove share_with.`))
		}
	case "shared":
		if len(b.ShareWith) == 0 {
			diags = append(diags, errorDiag(a.Expr.Range(), "Nobody to share with",
				`A shared image needs principals: add share_with = ["alice", "team-a"], or write visibility = "private".`))
		}
	case "public":
		why := ""
		switch {
		case b.Encrypted:
			why = "it is encrypted"
		case len(b.ProductCodes) > 0:
			why = "it carries product codes"
		}
		if why != "" {
			diags = append(diags, errorDiag(a.Expr.Range(), "Image cannot be public",
				fmt.Sprintf("This image cannot be public because %s; such an image can only be private or shared with named principals. Write visibility = \"shared\" with share_with, or \"private\".", why)))
		}
	default:
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid visibility",
			fmt.Sprintf("%q is not a visibility. Use %s; the default is \"private\".", b.Visibility, quoteList(visibilities))))
	}
	return diags
}

type lifecycleBlock struct {
	Lifecycle
	src *decoded
}

// decodeLifecycleBlock decodes and validates a lifecycle block.
func (d *decoder) decodeLifecycleBlock(block *hcl.Block) (*lifecycleBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(LifecycleBlockSchema)
	b := &lifecycleBlock{src: newDecoded("lifecycle", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	d.getInt(b.src, keepLastArg, &b.KeepLast, &diags)
	d.getAge(b.src, deprecateAfterArg, &b.DeprecateAfter, &diags)
	d.getAge(b.src, deleteAfterArg, &b.DeleteAfter, &diags)
	if a, ok := b.src.valid("keep_last"); ok && b.KeepLast < 1 {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid keep_last",
			fmt.Sprintf("keep_last counts the newest builds kept whatever their age: 1 or more, such as keep_last = %s. To delete every build, use kiln images rm.", keepLastArg.example)))
	}
	if len(content.Attributes) == 0 {
		diags = append(diags, errorDiag(block.DefRange, "Empty lifecycle rule",
			"A lifecycle block needs at least one of keep_last, deprecate_after and delete_after, such as\n  lifecycle {\n    keep_last    = 5\n    delete_after = \"365d\"\n  }"))
	}
	if a, ok := b.src.valid("delete_after"); ok && b.src.ok["deprecate_after"] && b.DeleteAfter <= b.DeprecateAfter {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid delete_after",
			fmt.Sprintf("delete_after (%s) must be longer than deprecate_after (%s): builds are deprecated before they are deleted.", units.FormatAge(b.DeleteAfter), units.FormatAge(b.DeprecateAfter))))
	}
	return b, diags
}

// getAge decodes an age such as "90d" (see units.ParseAge).
func (d *decoder) getAge(s *decoded, a arg, dst *time.Duration, diags *hcl.Diagnostics) {
	attr := s.attr(a, diags)
	v, ok, dd := d.str(attr, a)
	*diags = append(*diags, dd...)
	if !ok {
		return
	}
	age, err := units.ParseAge(v)
	if err != nil {
		*diags = append(*diags, errorDiag(attr.Expr.Range(), "Invalid age",
			fmt.Sprintf("%q is not an age. Write a whole number of days (d) or weeks (w), such as %s = %s, or a duration such as \"36h\".", v, a.name, a.example)))
		return
	}
	*dst, s.ok[a.name] = age, true
}

type distributeBlock struct {
	Distribution
	src        *decoded
	nameRange  hcl.Range
	imagesExpr hcl.Range
}

func (d *decoder) decodeDistributeBlock(block *hcl.Block) (*distributeBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(distributeBlockSchema)
	b := &distributeBlock{src: newDecoded("distribute", block.DefRange, content.Attributes), nameRange: block.LabelRanges[0]}
	b.Name, b.Range = block.Labels[0], toRange(block.DefRange)
	if !distNameRE.MatchString(b.Name) {
		diags = append(diags, errorDiag(b.nameRange, "Invalid distribution name",
			fmt.Sprintf("%q cannot name a distribution: use letters, digits, dots, dashes and underscores, such as \"eu-mirror\".", b.Name)))
	}
	d.getStr(b.src, distImagesArg, &b.Images, &diags)
	d.getBool(b.src, distPlainHTTPArg, &b.PlainHTTP, &diags)
	d.getBool(b.src, distContainerDisk, &b.ContainerDisk, &diags)
	if a, ok := b.src.valid("images"); ok {
		b.imagesExpr = a.Expr.Range()
		switch {
		case b.Images == "":
			diags = append(diags, errorDiag(a.Expr.Range(), "Empty distribution target",
				fmt.Sprintf("images names the catalog directory builds are copied to, such as images = %s, or the registry they are pushed to, such as \"oci://registry.example:5000/images/web\".", distImagesArg.example)))
		case b.Registry():
			if !ociRepoRE.MatchString(b.Images) {
				diags = append(diags, errorDiag(a.Expr.Range(), "Invalid registry",
					fmt.Sprintf("%q is not a registry repository: write oci://REGISTRY/REPOSITORY, such as \"oci://registry.example:5000/images/web\", without a tag (a build is tagged VERSION-BUILD and VERSION).", b.Images)))
			}
		default:
			if !filepath.IsAbs(b.Images) {
				b.Images = filepath.Join(d.dir, b.Images)
			}
			b.Images = filepath.Clean(b.Images)
		}
	}
	for _, name := range []string{"plain_http", "containerdisk"} {
		if a, ok := b.src.valid(name); ok && b.Images != "" && !b.Registry() {
			diags = append(diags, errorDiag(a.Expr.Range(), "Not a registry target",
				fmt.Sprintf("%s applies to a registry target (images = \"oci://REGISTRY/REPOSITORY\"); %s is a catalog directory. Remove %s.", name, b.Images, name)))
		}
	}
	return b, diags
}

// uniqueDistributions reports distribute blocks whose name or target an
// earlier one has.
func uniqueDistributions(ds []*distributeBlock) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names, targets := map[string]*distributeBlock{}, map[string]*distributeBlock{}
	for _, b := range ds {
		if first := names[b.Name]; first != nil {
			diags = append(diags, errorDiag(b.nameRange, "Duplicate distribute block",
				fmt.Sprintf("There is already a distribute block named %q at %s. Give each one its own name.", b.Name, at(first.src.def))))
			continue
		}
		names[b.Name] = b
		if b.Images == "" {
			continue
		}
		if first := targets[b.Images]; first != nil {
			diags = append(diags, errorDiag(b.imagesExpr, "Duplicate distribution target",
				fmt.Sprintf("%s is already the target of distribute %q at %s. Copy to each catalog once.", b.Images, first.Name, at(first.src.def))))
			continue
		}
		targets[b.Images] = b
	}
	return diags
}
