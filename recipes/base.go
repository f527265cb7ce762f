package recipes

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// BaseKind is what an image starts from: the base block's label.
type BaseKind string

const (
	BaseDebian BaseKind = "debian" // a Debian tree bootstrapped by mmdebstrap
	BaseImage  BaseKind = "image"  // a Kiln image from the catalog
	BaseFile   BaseKind = "file"   // a disk image file
	BaseOCI    BaseKind = "oci"    // a Kiln build in an OCI registry (kiln images push)
)

// baseSchemas maps each supported base type to the schema of its body.
var baseSchemas = map[BaseKind]*hcl.BodySchema{
	BaseDebian: debianBaseSchema,
	BaseImage:  imageBaseSchema,
	BaseFile:   fileBaseSchema,
	BaseOCI:    ociBaseSchema,
}

// BaseKinds lists every base type, in documentation order.
var BaseKinds = []BaseKind{BaseDebian, BaseImage, BaseFile, BaseOCI}

// debianBaseSchema is base "debian": a Debian tree bootstrapped by mmdebstrap.
var debianBaseSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "suite"}, {Name: "mirror"}, {Name: "components"}, {Name: "packages"}, {Name: "variant"}, {Name: "arch"},
		{Name: "initramfs_modules"},
	},
}

var (
	suiteArg      = arg{"suite", `"bookworm"`, true}
	mirrorArg     = arg{"mirror", `"http://mirror.example/debian"`, false}
	componentsArg = arg{"components", `["main", "contrib"]`, false}
	packagesArg   = arg{"packages", `["curl", "ca-certificates"]`, false}
	variantArg    = arg{"variant", `"minbase"`, false}
	archArg       = arg{"arch", `"amd64"`, false}
	initramfsArg  = arg{"initramfs_modules", `"most"`, false}
)

var (
	debianVariants = []string{"minbase", "required", "important", "standard"}
	debianArches   = []string{"amd64"}
	initramfsKinds = []string{InitramfsVM, InitramfsMost}
	suiteRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	componentRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// baseBlock is a decoded base block.
type baseBlock struct {
	Base
	src             *decoded
	componentRanges []hcl.Range
	packageRanges   []hcl.Range
	dir             string // the recipe's directory, for a file base's path
}

// decodeBaseBlock decodes a base block. It returns nil for an unsupported
// base type, whose body it does not read.
func (d *decoder) decodeBaseBlock(block *hcl.Block) (*baseBlock, hcl.Diagnostics) {
	typ := BaseKind(block.Labels[0])
	schema, ok := baseSchemas[typ]
	if !ok {
		return nil, hcl.Diagnostics{errorDiag(block.LabelRanges[0], "Unsupported base type",
			fmt.Sprintf("Kiln cannot build from a %q base. Supported base types: %s; write base %q { ... }.", typ, quoteList(BaseKinds), BaseKinds[0]))}
	}
	content, diags := block.Body.Content(schema)
	b := &baseBlock{
		Base: Base{Type: typ, Variant: DefaultVariant, Arch: DefaultArch, Components: defaultComponents(), Packages: []string{}, Range: toRange(block.DefRange)},
		src:  newDecoded("base", block.DefRange, content.Attributes),
	}
	if typ != BaseDebian {
		d.decodeImportBase(b, &diags)
		return b, diags
	}
	d.getStr(b.src, suiteArg, &b.Suite, &diags)
	d.getStr(b.src, mirrorArg, &b.Mirror, &diags)
	d.getStrList(b.src, componentsArg, &b.Components, &b.componentRanges, &diags)
	d.getStrList(b.src, packagesArg, &b.Packages, &b.packageRanges, &diags)
	d.getStr(b.src, variantArg, &b.Variant, &diags)
	d.getStr(b.src, archArg, &b.Arch, &diags)
	b.InitramfsModules = InitramfsVM
	d.getStr(b.src, initramfsArg, &b.InitramfsModules, &diags)
	return b, diags
}

// validate checks the decoded values.
func (b *baseBlock) validate() hcl.Diagnostics {
	if b.Type != BaseDebian {
		return b.validateImport()
	}
	var diags hcl.Diagnostics
	if a, ok := b.src.valid("suite"); ok && !suiteRE.MatchString(b.Suite) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid suite",
			fmt.Sprintf("%q is not a Debian suite name. Use a codename or alias such as \"bookworm\", \"trixie\" or \"stable\".", b.Suite)))
	}
	if a, ok := b.src.valid("mirror"); ok && b.Mirror != "" {
		if u, err := url.Parse(b.Mirror); err != nil || !validMirror(u) {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid mirror",
				fmt.Sprintf("%q is not a mirror URL. Write an http://, https:// or file:// URL such as %s, or leave mirror out to use the host's apt sources.", b.Mirror, mirrorArg.example)))
		}
	}
	if a, ok := b.src.valid("components"); ok && len(b.Components) == 0 {
		diags = append(diags, errorDiag(a.Expr.Range(), "No components",
			`Debian needs at least one archive component. Leave components out to get ["main"], or list them, such as ["main", "contrib"].`))
	}
	if _, ok := b.src.valid("components"); ok {
		for i, c := range b.Components {
			if !componentRE.MatchString(c) {
				diags = append(diags, errorDiag(b.componentRanges[i], "Invalid component",
					fmt.Sprintf("%q is not an archive component name. Use names such as \"main\", \"contrib\", \"non-free\" or \"non-free-firmware\".", c)))
			}
		}
	}
	for i, p := range b.Packages {
		if p == "" || strings.ContainsAny(p, " \t\r\n,") {
			diags = append(diags, errorDiag(b.packageRanges[i], "Invalid package name",
				fmt.Sprintf("%q is not a package name. Give one package per list element, such as [\"curl\", \"ca-certificates\"].", p)))
		}
	}
	if a, ok := b.src.valid("variant"); ok && !contains(debianVariants, b.Variant) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid variant",
			fmt.Sprintf("%q is not a variant. Use one of %s; the default is %q.", b.Variant, quoteList(debianVariants), DefaultVariant)))
	}
	if a, ok := b.src.valid("initramfs_modules"); ok && !contains(initramfsKinds, b.InitramfsModules) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid initramfs_modules",
			fmt.Sprintf("%q is not an initramfs driver policy. Use %q (the default: the disk drivers of virtual machines and clouds) or %q (Debian's: every storage and filesystem driver, for physical machines).", b.InitramfsModules, InitramfsVM, InitramfsMost)))
	}
	if a, ok := b.src.valid("arch"); ok && !contains(debianArches, b.Arch) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Unsupported architecture",
			fmt.Sprintf("Kiln cannot build %q images yet. Supported: %s; leave arch out for %q.", b.Arch, quoteList(debianArches), DefaultArch)))
	}
	return diags
}

func validMirror(u *url.URL) bool {
	switch u.Scheme {
	case "http", "https":
		return u.Host != ""
	case "file":
		return u.Path != ""
	}
	return false
}
