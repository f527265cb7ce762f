package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// IDs derives the identifiers of an image from its name, version and a seed,
// so that assembling the same tree twice gives the same bytes.
type IDs struct {
	Name, Version, Seed string
}

func (id IDs) sum(purpose string) [32]byte {
	return sha256.Sum256([]byte("kiln-ids\x00" + id.Name + "\x00" + id.Version + "\x00" + id.Seed + "\x00" + purpose))
}

// UUID returns an RFC 4122 version-4-shaped UUID for purpose.
func (id IDs) UUID(purpose string) string {
	b := id.sum(purpose)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Uint32 returns 32 bits for purpose (FAT volume IDs, MBR disk signatures).
func (id IDs) Uint32(purpose string) uint32 {
	b := id.sum(purpose)
	v := binary.LittleEndian.Uint32(b[:4])
	if v == 0 {
		v = 1
	}
	return v
}
