package recipes

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/kiln-build/kiln/internal/units"
)

// bootMode is a firmware and partition table combination.
type bootMode struct{ firmware, table string }

// bootModeCheck checks what a supported boot mode needs of the disk.
type bootModeCheck func(boot *bootBlock, disk *diskBlock) hcl.Diagnostics

// bootModes holds every boot mode Kiln can build, with its check. Enabling
// another one is adding it here once the builder boots it, for example
//
//	{"bios", "gpt"}:   layoutNeeds{biosBoot: true, overhead: gptOverhead}.check,
//	{"bios", "mbr"}:   layoutNeeds{overhead: mbrOverhead}.check,
//	{"hybrid", "gpt"}: layoutNeeds{esp: true, biosBoot: true, overhead: gptOverhead}.check,
//
// Until then checkBootMode rejects it as not supported yet.
var bootModes = map[bootMode]bootModeCheck{
	{"uefi", "gpt"}: layoutNeeds{esp: true, overhead: gptOverhead}.check,
}

// Names of firmwares and tables for messages.
var (
	firmwareNames = map[string]string{"uefi": "UEFI firmware", "bios": "BIOS firmware", "hybrid": "hybrid BIOS and UEFI firmware"}
	tableNames    = map[string]string{"gpt": "a GPT disk", "mbr": "an MBR disk"}
)

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
func (n layoutNeeds) check(_ *bootBlock, disk *diskBlock) hcl.Diagnostics {
	if disk == nil || disk.Size < MinDiskSize || disk.Size > MaxDiskSize || disk.ESPSize < MinESPSize {
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
// boot and disk are nil when their blocks are absent (defaults apply);
// image is where to point when neither argument is written.
func checkBootMode(boot *bootBlock, disk *diskBlock, image hcl.Range) hcl.Diagnostics {
	mode := bootMode{DefaultFirmware, DefaultTable}
	var fwAttr, tableAttr *hcl.Attribute
	if boot != nil {
		if !contains(firmwares, boot.Firmware) {
			return nil // reported as an invalid value
		}
		mode.firmware = boot.Firmware
		fwAttr, _ = boot.src.valid("firmware")
	}
	if disk != nil {
		if !contains(partitionTables, disk.Table) {
			return nil
		}
		mode.table = disk.Table
		tableAttr, _ = disk.src.valid("table")
	}
	if check, ok := bootModes[mode]; ok {
		if check == nil {
			return nil
		}
		return check(boot, disk)
	}
	firmwareOK, tableOK := false, false
	for m := range bootModes {
		firmwareOK = firmwareOK || m.firmware == mode.firmware
		tableOK = tableOK || m.table == mode.table
	}
	unsupported := func(attr *hcl.Attribute, name, dflt string) *hcl.Diagnostic {
		subject := image
		if attr != nil {
			subject = attr.Expr.Range()
		}
		return errorDiag(subject, "Boot mode not supported yet",
			fmt.Sprintf("Kiln cannot build %s on %s yet: only UEFI firmware on a GPT disk is implemented so far. Set %s = %q (the default) or leave it out; BIOS, hybrid and MBR layouts are planned.",
				firmwareNames[mode.firmware], tableNames[mode.table], name, dflt))
	}
	var diags hcl.Diagnostics
	if !firmwareOK || tableOK {
		diags = append(diags, unsupported(fwAttr, "firmware", DefaultFirmware))
	}
	if !tableOK {
		diags = append(diags, unsupported(tableAttr, "table", DefaultTable))
	}
	return diags
}
