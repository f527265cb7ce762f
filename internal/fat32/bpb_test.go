package fat32

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGeometry(t *testing.T) {
	cases := []struct {
		size int64
		spc  uint32
	}{
		{MinSize, 1}, {33 * MiB, 1}, {64 * MiB, 1}, {100*MiB + 1000, 1}, {260 * MiB, 1},
		{260*MiB + 512, 8}, {1 << 30, 8}, {8 << 30, 8}, {8<<30 + 512, 16}, {16 << 30, 16},
		{16<<30 + 512, 32}, {32 << 30, 32}, {32<<30 + 512, 64}, {maxSize, 64},
	}
	for _, c := range cases {
		g, err := newGeometry(c.size)
		require.NoError(t, err, "size %d", c.size)
		require.Equal(t, c.spc, g.sectorsPerCluster, "size %d", c.size)
		require.Equal(t, uint32(c.size/512), g.totalSectors)
		require.GreaterOrEqual(t, g.clusters, uint32(minClusters))
		// The FAT maps every cluster plus the two reserved entries.
		require.GreaterOrEqual(t, uint64(g.fatSectors)*128, uint64(g.clusters)+2, "size %d", c.size)
		// The smallest such FAT: one sector less would not work (or would
		// break the alignment of the data area).
		data := uint64(reservedSectors + 2*g.fatSectors)
		require.Zero(t, data%uint64(g.sectorsPerCluster), "data area aligned to the cluster size")
		smaller := uint64(g.fatSectors - 1)
		clustersIfSmaller := (uint64(g.totalSectors) - reservedSectors - 2*smaller) / uint64(g.sectorsPerCluster)
		require.True(t, smaller*128 < clustersIfSmaller+2 || (reservedSectors+2*smaller)%uint64(g.sectorsPerCluster) != 0, "size %d: FAT larger than needed", c.size)
		// Everything fits, and no further whole cluster would.
		end := data + uint64(g.clusters)*uint64(g.sectorsPerCluster)
		require.LessOrEqual(t, end, uint64(g.totalSectors))
		require.Greater(t, end+uint64(g.sectorsPerCluster), uint64(g.totalSectors))
		require.Equal(t, int64(data*512), g.clusterOffset(2))
	}
}

func TestGeometryLimits(t *testing.T) {
	g, err := newGeometry(MinSize)
	require.NoError(t, err)
	require.Equal(t, uint32(minClusters), g.clusters, "MinSize is exact")
	require.Equal(t, uint32(512), g.fatSectors)
	for _, size := range []int64{-1, 0, MinSize - 512, MinSize - 1} {
		_, err := newGeometry(size)
		require.ErrorContains(t, err, "at least 34089472 bytes (32.51 MiB)", "size %d", size)
	}
	_, err = newGeometry(maxSize + 512)
	require.ErrorContains(t, err, "larger than FAT32's limit")
}

func TestBootSector(t *testing.T) {
	g, err := newGeometry(64 * MiB)
	require.NoError(t, err)
	label, err := labelName("esp")
	require.NoError(t, err)
	b := g.bootSector(0xCAFEF00D, label, 2048)
	le := binary.LittleEndian
	require.Equal(t, []byte{0xEB, 0x58, 0x90}, b[0:3])
	require.Equal(t, "KILN    ", string(b[3:11]))
	require.Equal(t, uint16(512), le.Uint16(b[11:]))
	require.Equal(t, byte(1), b[13])
	require.Equal(t, uint16(32), le.Uint16(b[14:]))
	require.Equal(t, byte(2), b[16])
	require.Equal(t, uint16(0), le.Uint16(b[17:]), "root entries")
	require.Equal(t, uint16(0), le.Uint16(b[19:]), "16-bit sectors")
	require.Equal(t, byte(0xF8), b[21])
	require.Equal(t, uint16(0), le.Uint16(b[22:]), "16-bit FAT size")
	require.Equal(t, uint32(2048), le.Uint32(b[28:]))
	require.Equal(t, uint32(131072), le.Uint32(b[32:]))
	require.Equal(t, g.fatSectors, le.Uint32(b[36:]))
	require.Equal(t, uint32(2), le.Uint32(b[44:]))
	require.Equal(t, uint16(1), le.Uint16(b[48:]))
	require.Equal(t, uint16(6), le.Uint16(b[50:]))
	require.Equal(t, byte(0x29), b[66])
	require.Equal(t, uint32(0xCAFEF00D), le.Uint32(b[67:]))
	require.Equal(t, "ESP        ", string(b[71:82]))
	require.Equal(t, "FAT32   ", string(b[82:90]))
	require.Equal(t, []byte{0x55, 0xAA}, b[510:512])
}
