package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kiln-build/kiln/attest"
	"github.com/kiln-build/kiln/catalog"
)

const keygenUsage = `kiln keygen [--force] [PREFIX]

Makes an ECDSA P-256 key pair for signing builds: PREFIX.key, the private
key (PEM PKCS#8, unencrypted, mode 0600), and PREFIX.pub, the public key
(PEM), which kiln verify --key, cosign verify-blob --key and openssl read.
PREFIX defaults to "kiln". Existing files are never overwritten unless
--force is given. Keep the private key out of images and repositories.`

// verifyKeyUsage is the part of kiln verify's usage about --key.
const verifyKeyUsage = `kiln verify --key PUB [--images DIR] [--json] ARTIFACT|REF

Checks a published build against the public key PUB (kiln keygen's
PREFIX.pub): the signature of its provenance (provenance.dsse.json), that
every disk output, SBOM and manifest.json has the sha256 the signed
provenance and the manifest record, that each SBOM lists exactly the
manifest's packages, and the Sigstore bundle over manifest.json. ARTIFACT is
a build directory; REF is NAME@VERSION/BUILD or NAME@SELECTOR in the
catalog (--images). Exit code 0 when everything holds, 1 at the first
mismatch (named), 2 on usage errors. See docs/supply-chain.md.`

func cmdKeygen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", keygenUsage, stderr)
	force := fs.Bool("force", false, "overwrite PREFIX.key and PREFIX.pub")
	asJSON := fs.Bool("json", false, "print the file names and the key ID as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "kiln keygen: expected at most one PREFIX")
		fs.Usage()
		return exitUsage
	}
	prefix := "kiln"
	if len(pos) == 1 {
		prefix = pos[0]
	}
	keyPath, pubPath := prefix+".key", prefix+".pub"
	if !*force {
		for _, p := range []string{keyPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return fail(stdout, stderr, *asJSON, fmt.Errorf("%s exists; pass --force to overwrite it", p), exitUsage)
			}
		}
	}
	k, err := attest.GenerateKey()
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	priv, err := attest.MarshalPrivateKey(k)
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	pub, err := attest.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	if err := writeKeyFile(keyPath, priv, 0o600); err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	if err := writeKeyFile(pubPath, pub, 0o644); err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	id := attest.KeyID(&k.PublicKey)
	if *asJSON {
		return writeJSON(stdout, map[string]string{"private_key": keyPath, "public_key": pubPath, "key_id": id})
	}
	fmt.Fprintf(stdout, "private key: %s (keep it secret: kiln build --sign-key %s)\npublic key:  %s (kiln verify --key %s)\nkey ID:      %s\n", keyPath, keyPath, pubPath, pubPath, id)
	return exitOK
}

// writeKeyFile replaces path with data and mode perm; the mode is set
// before any byte is written.
func writeKeyFile(path string, data []byte, perm os.FileMode) error {
	_ = os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil { // whatever the umask
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// signKeyEnv names the environment variable of the signing key: a path,
// or the PEM text itself (for CI secrets).
const signKeyEnv = "KILN_SIGN_KEY"

// loadSignKey reads the signing key from --sign-key, else KILN_SIGN_KEY;
// nil when neither is set.
func loadSignKey(flagValue string) (*ecdsa.PrivateKey, error) {
	v, from := flagValue, "--sign-key"
	if v == "" {
		v, from = os.Getenv(signKeyEnv), signKeyEnv
	}
	if v == "" {
		return nil, nil
	}
	data := []byte(v)
	if !strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(v); err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		from += " " + v
	}
	k, err := attest.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return k, nil
}

// verifyArtifact is kiln verify --key.
func verifyArtifact(keyPath, images, arg string, asJSON bool, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return fail(stdout, stderr, asJSON, fmt.Errorf("--key: %w", err), exitUsage)
	}
	pub, err := attest.ParsePublicKey(data)
	if err != nil {
		return fail(stdout, stderr, asJSON, fmt.Errorf("--key %s: %w", keyPath, err), exitUsage)
	}
	dir, err := artifactDir(arg, images)
	if err != nil {
		return fail(stdout, stderr, asJSON, err, exitUsage)
	}
	rep, err := attest.VerifyArtifact(dir, pub)
	if err != nil {
		var mm *attest.Mismatch
		if asJSON {
			out := map[string]any{"status": "failed", "dir": dir, "error": err.Error(), "exit_code": exitFailed}
			if errors.As(err, &mm) {
				out["file"] = mm.File
			}
			writeJSON(stdout, out)
			return exitFailed
		}
		fmt.Fprintf(stderr, "kiln verify: %s: %v\n", dir, err)
		return exitFailed
	}
	if asJSON {
		return writeJSON(stdout, map[string]any{"status": "verified", "report": rep})
	}
	fmt.Fprintf(stdout, "%s/%s/%d: verified with key %s\n", rep.Name, rep.Version, rep.Build, rep.KeyID)
	fmt.Fprintf(stdout, "  signed files (sha256 checked): %s\n", strings.Join(rep.Files, ", "))
	fmt.Fprintf(stdout, "  packages: %d, the same in manifest.json and every SBOM\n", rep.Packages)
	if rep.Bundle {
		fmt.Fprintf(stdout, "  %s: signature over manifest.json verified\n", attest.BundleFile)
	}
	if len(rep.NotCovered) > 0 {
		fmt.Fprintf(stdout, "  not signed (logs and catalog state): %s\n", strings.Join(rep.NotCovered, ", "))
	}
	return exitOK
}

// artifactDir is a build directory, or the build a catalog ref names.
func artifactDir(arg, images string) (string, error) {
	if fi, err := os.Stat(arg); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("%s is a file; give the build's directory (images/NAME/VERSION/BUILD) or NAME@VERSION/BUILD", arg)
		}
		return arg, nil
	}
	ref, err := catalog.ParseRef(arg)
	if err != nil || !strings.Contains(arg, "@") {
		return "", fmt.Errorf("%s: no such build directory, and not a catalog reference such as web@1.2.0/3", arg)
	}
	e, err := catalog.Select(images, ref, true, time.Now())
	if err != nil {
		return "", err
	}
	return e.Dir, nil
}

// registerVerifyKey adds kiln verify's --key and --images flags.
func registerVerifyKey(fs *flag.FlagSet) (key, images *string) {
	key = fs.String("key", "", "verify a build's signature, checksums and SBOMs with this public key (PEM)")
	images = fs.String("images", defaultImagesDir(), "catalog for NAME@VERSION/BUILD arguments (env KILN_IMAGES)")
	return key, images
}
