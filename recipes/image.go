package recipes

import (
	"fmt"
	"regexp"

	"github.com/hashicorp/hcl/v2"
)

// imageBlockSchema is the image block: the one image a recipe describes.
var imageBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "version"}, {Name: "description"}, {Name: "skip_health"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "base", LabelNames: []string{"type"}},
		{Type: "boot"},
		{Type: "disk"},
		{Type: "build", LabelNames: []string{"type", "name"}},
		{Type: "validate", LabelNames: []string{"type", "name"}},
		{Type: "test", LabelNames: []string{"type", "name"}},
		{Type: "component", LabelNames: []string{"name"}},
		{Type: "output"},
		{Type: "catalog"}, {Type: "lifecycle"}, {Type: "distribute", LabelNames: []string{"name"}},
		{Type: "lint"},
	},
}

var (
	versionArg     = arg{"version", `"1.0.0"`, true}
	descriptionArg = arg{"description", `"Debian with curl"`, false}
)

var (
	imageNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	semverRE    = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
)

// imageBlock is a decoded image block with its decoded sub-blocks. Optional
// blocks that are absent are nil.
type imageBlock struct {
	Image
	src       *decoded
	nameRange hcl.Range

	base   *baseBlock
	boot   *bootBlock
	disk   *diskBlock
	output *outputBlock
	build  []*stepBlock
	tests  []*stepBlock

	catalog       *catalogBlock
	lint          *lintBlock
	lifecycle     *lifecycleBlock
	distribute    []*distributeBlock
	validateSteps []*stepBlock
	components    []*componentUse
	componentSeen map[string]hcl.Range
}

// decodeImageBlock decodes an image block and every block in it. Of a block
// that may appear only once, the first is used and the others are reported
// (and still checked, so that all of their problems show at once).
func (d *decoder) decodeImageBlock(block *hcl.Block) (*imageBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(imageBlockSchema)
	img := &imageBlock{
		Image: Image{Name: block.Labels[0], Range: toRange(block.DefRange)},
		src:   newDecoded("image", block.DefRange, content.Attributes), nameRange: block.LabelRanges[0],
	}
	d.getStr(img.src, versionArg, &img.Version, &diags)
	d.getStr(img.src, descriptionArg, &img.Description, &diags)
	d.decodeSkipHealth(img, &diags)

	first := map[string]*hcl.Block{}
	once := func(b *hcl.Block) bool {
		if f := first[b.Type]; f != nil {
			diags = append(diags, errorDiag(b.DefRange, fmt.Sprintf("Duplicate %s block", b.Type),
				fmt.Sprintf("An image has at most one %s block, and there is one at %s already. Merge the two.", b.Type, at(f.DefRange))))
			return false
		}
		first[b.Type] = b
		return true
	}
	for _, b := range content.Blocks {
		switch b.Type {
		case "base":
			isFirst := once(b)
			base, dd := d.decodeBaseBlock(b)
			diags = append(diags, dd...)
			if base != nil {
				diags = append(diags, base.validate()...)
			}
			if isFirst {
				img.base = base
			}
		case "boot":
			isFirst := once(b)
			boot, dd := d.decodeBootBlock(b)
			diags = append(append(diags, dd...), boot.validate()...)
			if isFirst {
				img.boot = boot
			}
		case "disk":
			isFirst := once(b)
			disk, dd := d.decodeDiskBlock(b)
			diags = append(append(diags, dd...), disk.validate()...)
			if isFirst {
				img.disk = disk
			}
		case "output":
			isFirst := once(b)
			out, dd := d.decodeOutputBlock(b)
			diags = append(append(diags, dd...), out.validate()...)
			if isFirst {
				img.output = out
			}
		case "catalog":
			isFirst := once(b)
			cat, dd := d.decodeCatalogBlock(b)
			diags = append(append(diags, dd...), cat.validate()...)
			if isFirst {
				img.catalog = cat
			}
		case "lint":
			isFirst := once(b)
			lint, dd := d.decodeLintBlock(b)
			diags = append(append(diags, dd...), lint.validate()...)
			if isFirst {
				img.lint = lint
			}
		case "lifecycle":
			isFirst := once(b)
			lc, dd := d.decodeLifecycleBlock(b)
			diags = append(diags, dd...)
			if isFirst {
				img.lifecycle = lc
			}
		case "distribute":
			dist, dd := d.decodeDistributeBlock(b)
			diags = append(diags, dd...)
			img.distribute = append(img.distribute, dist)
		case "component":
			diags = append(diags, img.addComponent(d, b)...)
		case "build", "validate", "test":
			timeout := DefaultBuildTimeout
			if b.Type == "test" {
				timeout = DefaultTestTimeout
			}
			step, dd := d.decodeStepBlock(b, timeout)
			diags = append(diags, dd...)
			if step != nil {
				diags = append(diags, step.validate(d)...)
				if b.Type == "build" {
					img.build = append(img.build, step)
				} else if b.Type == "validate" {
					img.validateSteps = append(img.validateSteps, step)
				} else {
					img.tests = append(img.tests, step)
				}
			}
		}
	}
	if first["base"] == nil {
		diags = append(diags, errorDiag(block.DefRange, "Missing base block",
			fmt.Sprintf(`An image needs a base block that says what it starts from, such as base "debian" { suite = "bookworm" }. Supported base types: %s.`, quoteList(BaseKinds))))
	}
	diags = append(diags, img.validate()...)
	img.assemble()
	return img, diags
}

// validate checks the image's own arguments and what concerns several blocks.
func (img *imageBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if !imageNameRE.MatchString(img.Name) {
		diags = append(diags, errorDiag(img.nameRange, "Invalid image name",
			fmt.Sprintf("%q cannot name an image: use 1 to 63 lowercase letters, digits, dots, dashes and underscores, starting with a letter or digit, such as \"debian-minimal\".", img.Name)))
	}
	if a, ok := img.src.valid("version"); ok && !semverRE.MatchString(img.Version) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid version",
			fmt.Sprintf("%q is not a version of the form MAJOR.MINOR.PATCH. Write version = %s: three numbers, no \"v\" prefix, no leading zeros.", img.Version, versionArg.example)))
	}
	diags = append(diags, uniqueStepNames(img.build)...)
	diags = append(diags, uniqueStepNames(img.tests)...)
	diags = append(diags, uniqueDistributions(img.distribute)...)
	diags = append(diags, uniqueStepNames(img.validateSteps)...)
	diags = append(diags, checkBootMode(img.boot, img.disk)...)
	return diags
}

// uniqueStepNames reports every step whose name an earlier step has.
func uniqueStepNames(steps []*stepBlock) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]*stepBlock{}
	for _, s := range steps {
		if first := seen[s.Name]; first != nil {
			diags = append(diags, errorDiag(s.nameRange, "Duplicate step name",
				fmt.Sprintf("There is already a %s step named %q at %s. Give each %s step its own name.", s.kind, s.Name, at(first.src.def), s.kind)))
			continue
		}
		seen[s.Name] = s
	}
	return diags
}

// assemble fills in the exported Image from the decoded blocks, with
// defaults for absent ones.
func (img *imageBlock) assemble() {
	if img.base != nil {
		img.Base = img.base.Base
	}
	img.Boot = defaultBoot()
	if img.boot != nil {
		img.Boot = img.boot.Boot
	}
	img.Disk = defaultDisk()
	if img.disk != nil {
		img.Disk = img.disk.Disk
	}
	img.Output = defaultOutput()
	if img.output != nil {
		img.Output = img.output.Output
	}
	img.Catalog = defaultCatalog()
	if img.catalog != nil {
		img.Catalog = img.catalog.Catalog
	}
	img.Lint = Lint{Allow: []string{}}
	if img.lint != nil && img.lint.Allow != nil {
		img.Lint = img.lint.Lint
	}
	if img.lifecycle != nil {
		lc := img.lifecycle.Lifecycle
		img.Lifecycle = &lc
	}
	img.Distribute = []Distribution{}
	for _, d := range img.distribute {
		img.Distribute = append(img.Distribute, d.Distribution)
	}
	img.Build, img.Tests = []Step{}, []Step{}
	for _, s := range img.build {
		img.Build = append(img.Build, s.Step)
	}
	for _, s := range img.tests {
		img.Tests = append(img.Tests, s.Step)
	}
	img.assembleComponents()
}
