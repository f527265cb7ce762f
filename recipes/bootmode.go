package recipes

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/platform"
)

// bootMode is a firmware and partition table combination.
type bootMode struct {
	firmware platform.Firmware
	table    platform.Table
}

// bootModes holds every boot mode Kiln can build, with what its default
// layout needs. mbr+bios puts GRUB's core image in the gap before the first
// partition; the others use an ESP and/or a BIOS boot partition.
var bootModes = map[bootMode]layoutNeeds{
	{platform.UEFI, platform.GPT}:   {esp: true, overhead: gptOverhead},
	{platform.BIOS, platform.GPT}:   {biosBoot: true, overhead: gptOverhead},
	{platform.Hybrid, platform.GPT}: {esp: true, biosBoot: true, overhead: gptOverhead},
	{platform.UEFI, platform.MBR}:   {esp: true, overhead: mbrOverhead},
	{platform.BIOS, platform.MBR}:   {overhead: mbrOverhead},
	{platform.Hybrid, platform.MBR}: {esp: true, overhead: mbrOverhead},
}

// Names of firmwares for messages.
var firmwareNames = map[platform.Firmware]string{
	platform.UEFI: "UEFI firmware", platform.BIOS: "BIOS firmware", platform.Hybrid: "hybrid BIOS and UEFI firmware",
}

// What a partition table spends outside the partitions: GPT the first MiB
// (alignment, protective MBR, primary table) and a MiB for the backup
// table; MBR the first MiB.
const (
	gptOverhead  = 2 << 20
	mbrOverhead  = 1 << 20
	biosBootSize = 1 << 20 // GRUB's BIOS boot partition, on GPT
)

// layoutNeeds is what a boot mode puts on the disk besides the root
// filesystem.
type layoutNeeds struct {
	esp      bool   // an EFI system partition of disk.ESPSize
	biosBoot bool   // a BIOS boot partition
	overhead uint64 // the partition table's own room
}

// check reports a disk too small for those partitions and a root
// filesystem of at least MinRootSize.
func (n layoutNeeds) check(boot *bootBlock, disk *diskBlock, mode bootMode) hcl.Diagnostics {
	if disk != nil && len(disk.partitions) > 0 {
		return n.checkPartitions(boot, disk, mode)
	}
	if disk == nil || disk.Auto || disk.Size < MinDiskSize || disk.Size > MaxDiskSize || disk.ESPSize < MinESPSize {
		return nil // the defaults fit; out-of-range sizes are reported as such
	}
	need, parts := n.overhead+MinRootSize, []string{"the partition table"}
	if n.biosBoot {
		need += biosBootSize
		parts = append(parts, "a "+units.FormatSize(biosBootSize)+" BIOS boot partition")
	}
	espTooBig := false
	if n.esp {
		espTooBig = disk.ESPSize > MaxDiskSize
		if !espTooBig {
			need += disk.ESPSize
		}
		parts = append(parts, "a "+units.FormatSize(disk.ESPSize)+" EFI system partition")
	}
	if !espTooBig && disk.Size >= need {
		return nil
	}
	subject := disk.src.def
	if a, ok := disk.src.valid("esp_size"); ok && n.esp {
		subject = a.Expr.Range()
	}
	if a, ok := disk.src.valid("size"); ok {
		subject = a.Expr.Range()
	}
	needText := units.FormatSize(need)
	if espTooBig {
		needText = "more than " + units.FormatSize(MaxDiskSize)
	}
	return hcl.Diagnostics{errorDiag(subject, "Disk too small for its partitions",
		fmt.Sprintf("A %s disk cannot hold %s and a root filesystem of at least %s: it needs %s. Make size larger%s.",
			units.FormatSize(disk.Size), strings.Join(parts, ", "), units.FormatSize(MinRootSize), needText,
			map[bool]string{true: ", or esp_size smaller", false: ""}[n.esp]))}
}

// checkBootMode checks that the firmware and partition table make a boot
// mode Kiln can build, pointing at the argument that makes it unsupported.
// boot and disk are nil when their blocks are absent (defaults apply).
// Every firmware works with every table, so today this only checks what
// each boot mode needs of the layout.
func checkBootMode(boot *bootBlock, disk *diskBlock) hcl.Diagnostics {
	mode := bootMode{DefaultFirmware, DefaultTable}
	if boot != nil {
		if !boot.Firmware.Valid() {
			return nil // reported as an invalid value
		}
		mode.firmware = boot.Firmware
	}
	if disk != nil {
		if !disk.Table.Valid() {
			return nil
		}
		mode.table = disk.Table
	}
	if needs, ok := bootModes[mode]; ok {
		return needs.check(boot, disk, mode)
	}
	return nil
}

// The partitions a firmware needs, as a recipe writes them: the hints of
// the diagnostics that ask for them (tested to parse).
const (
	espPartitionHint = `  partition "ESP" {
    type = "esp"
    size = "256MiB"
  }`
	biosPartitionHint = `  partition "BIOS" {
    type = "bios"
    size = "1MiB"
  }`
)

// checkPartitions checks a declared layout against the boot mode: the
// partitions the firmware needs, what the table can hold, and the size.
func (n layoutNeeds) checkPartitions(boot *bootBlock, disk *diskBlock, mode bootMode) hcl.Diagnostics {
	var diags hcl.Diagnostics
	subject := disk.src.def
	if boot != nil {
		if a, ok := boot.src.valid("firmware"); ok {
			subject = a.Expr.Range()
		}
	}
	has := func(alias string) bool {
		for _, p := range disk.partitions {
			if p.typeOK && p.typ.Alias == alias {
				return true
			}
		}
		return false
	}
	if n.esp && !has("esp") {
		diags = append(diags, errorDiag(subject, "Missing EFI system partition",
			fmt.Sprintf("%s boots from an EFI system partition. Add one to the disk block:\n%s", capitalize(firmwareNames[mode.firmware]), espPartitionHint)))
	}
	if n.biosBoot && !has("bios") {
		diags = append(diags, errorDiag(subject, "Missing BIOS boot partition",
			"Legacy BIOS on a GPT disk keeps GRUB's core image in a BIOS boot partition. Add one to the disk block, before the other partitions:\n"+biosPartitionHint))
	}
	if mode.table == platform.MBR && len(disk.partitions) > 4 {
		diags = append(diags, errorDiag(disk.partitions[4].src.def, "Too many partitions for MBR",
			fmt.Sprintf("An MBR disk holds at most 4 primary partitions; this layout has %d. Remove some, or use table = \"gpt\".", len(disk.partitions))))
	}
	for _, p := range disk.partitions {
		if !p.typeOK {
			continue
		}
		typeAttr, _ := p.src.valid("type")
		switch {
		case mode.table == platform.MBR && p.typ.Alias == "bios":
			diags = append(diags, errorDiag(rangeOf(typeAttr, p.src.def), "BIOS boot partition on MBR",
				"On an MBR disk GRUB uses the gap before the first partition; remove this partition."))
		case mode.table == platform.MBR && p.TypeMBR == 0:
			diags = append(diags, errorDiag(rangeOf(typeAttr, p.src.def), "Type has no MBR form",
				fmt.Sprintf("%q is a GPT type GUID; on an MBR disk use an alias or an MBR type byte such as \"0x83\".", p.Type)))
		case mode.table == platform.GPT && p.TypeGUID == "":
			diags = append(diags, errorDiag(rangeOf(typeAttr, p.src.def), "Type has no GPT form",
				fmt.Sprintf("%q is an MBR type byte; on a GPT disk use an alias or a type GUID.", p.Type)))
		}
	}
	if !disk.Auto && disk.Size >= MinDiskSize && disk.Size <= MaxDiskSize {
		need := n.overhead
		rest := false
		for _, p := range disk.partitions {
			need += (p.Size + units.MiB - 1) / units.MiB * units.MiB
			rest = rest || p.Rest
		}
		if rest {
			need += units.MiB
		}
		if need > disk.Size {
			a, _ := disk.src.valid("size")
			diags = append(diags, errorDiag(rangeOf(a, disk.src.def), "Partitions do not fit",
				fmt.Sprintf("The partitions and the partition table need %s but the disk is %s. Make size at least %q, use size = \"auto\", or shrink the partitions.", units.FormatSize(need), units.FormatSize(disk.Size), units.FormatSize(need))))
		}
	}
	return diags
}
