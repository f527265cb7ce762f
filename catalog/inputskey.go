package catalog

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// InputsKeyFile is the catalog's secret key, beside its images.
const InputsKeyFile = ".inputs-key"

// InputsKey returns the catalog's secret key (32 random bytes, mode 0600),
// making it on first use. The inputs digest covers a sensitive variable as
// an HMAC keyed with it: a published manifest then holds nothing a guess
// of the value can be checked against, while builds into the same catalog
// (kiln build --if-changed) still see the value change.
func InputsKey(root string) ([]byte, error) {
	if root == "" {
		return nil, errors.New("no catalog directory for the key of sensitive inputs")
	}
	path := filepath.Join(root, InputsKeyFile)
	if key, err := readKey(path); err == nil || !os.IsNotExist(err) {
		return key, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(root, InputsKeyFile+"-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// A link never replaces a key another build made meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil && !os.IsExist(err) {
		return nil, err
	}
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s: %d bytes, not a 32-byte key; remove it and Kiln makes a new one (sensitive inputs then count as changed once)", path, len(key))
	}
	return key, nil
}
