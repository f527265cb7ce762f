package attest

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
)

// Subjects are the given files of dir with their sha256, in order.
func Subjects(dir string, names []string) ([]Subject, error) {
	var out []Subject
	for _, n := range names {
		sum, err := sparse.SHA256(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, Subject{Name: n, Digest: map[string]string{"sha256": sum}})
	}
	return out, nil
}

// Write writes the statement, in a DSSE envelope signed with key (or
// unsigned when key is nil), to dir/provenance.dsse.json, and with a key
// the Sigstore bundle over dir/manifest.json to
// dir/manifest.json.sigstore.json. manifest.json must be final.
func Write(dir string, st *Statement, key *ecdsa.PrivateKey) error {
	payload, err := st.Encode()
	if err != nil {
		return err
	}
	env, err := Seal(PayloadType, payload, key)
	if err != nil {
		return err
	}
	data, err := env.Encode()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ProvenanceFile), data, 0o644); err != nil {
		return err
	}
	if key == nil {
		return nil
	}
	mf, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return err
	}
	b, err := SignBlob(mf, key)
	if err != nil {
		return err
	}
	if data, err = b.Encode(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, BundleFile), data, 0o644)
}
