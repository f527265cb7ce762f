package main

import (
	"bytes"
	"testing"

	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

func TestTheTestVMIsDescribedWithItsVCPUs(t *testing.T) {
	require.Equal(t, "tcg", testVM(manifest.Health{Accelerator: "tcg"}), "a manifest from before health[].vcpus")
	require.Equal(t, "tcg, 1 vCPU", testVM(manifest.Health{Accelerator: "tcg", VCPUs: 1}))
	require.Equal(t, "kvm, 2 vCPUs", testVM(manifest.Health{Accelerator: "kvm", VCPUs: 2}))
	require.Equal(t, "tcg x86-64-v2-aes, 1 vCPU", testVM(manifest.Health{Accelerator: "tcg", CPU: "x86-64-v2-aes", VCPUs: 1}))
	require.Equal(t, "tcg max, 2 vCPUs", testVM(manifest.Health{Accelerator: "tcg", CPU: "max", VCPUs: 2}))
	require.Equal(t, "kvm, 2 vCPUs", testVM(manifest.Health{Accelerator: "kvm", CPU: "host", VCPUs: 2}), "under KVM the CPU is the host's")
	var out bytes.Buffer
	printProfile(&out, manifest.Health{Firmware: platform.BootUEFI, Accelerator: "tcg", VCPUs: 2})
	require.Contains(t, out.String(), "boot profile under uefi (tcg, 2 vCPUs), seconds from QEMU's start:")
}
