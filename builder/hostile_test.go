package builder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

// hostPaths are where a write through /etc -> / or /usr -> / would land on
// the host if Kiln joined paths naively, plus the host's own copies of the
// files Kiln writes into trees.
var hostPaths = []string{
	"/fstab", "/machine-id", "/hostname", "/hosts", "/kernel-img.conf", "/systemd", "/resolv.conf", "/grub", "/lib/kiln",
	"/etc/fstab", "/etc/machine-id", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/systemd/system",
	"/boot/grub/grub.cfg", "/usr/lib/kiln", "/usr/sbin/policy-rc.d", "/var/lib/kiln-build",
	"/modules-load.d", "/etc/modules-load.d/kiln-esp.conf",
}

type hostState map[string]string

func snapshotHost(t *testing.T, extra ...string) hostState {
	s := hostState{}
	for _, p := range append(append([]string{}, hostPaths...), extra...) {
		fi, err := os.Lstat(p)
		if err != nil {
			s[p] = "absent"
			continue
		}
		s[p] = fi.ModTime().String() + " " + fi.Mode().String()
	}
	return s
}

// hostileTree returns a tree whose link at name points at target, deep in a
// directory whose only entry is the tree's ancestor, so that a write that
// climbs out of the tree shows up as a new entry in outer.
func hostileTree(t *testing.T, name, target string) (tree, outer string) {
	outer = t.TempDir()
	tree = filepath.Join(outer, "a", "b", "tree")
	for _, d := range []string{"boot", "usr/lib", "usr/sbin", "var/log", "var/lib", "etc", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(tree, "boot/vmlinuz-6.1.0-test"), []byte("k"), 0o644))
	require.NoError(t, os.RemoveAll(filepath.Join(tree, name)))
	require.NoError(t, os.Symlink(target, filepath.Join(tree, name)))
	return tree, outer
}

func requireOnlyTreeInside(t *testing.T, outer string) {
	entries, err := os.ReadDir(outer)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing was written next to the tree's ancestors")
	entries, err = os.ReadDir(filepath.Join(outer, "a"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	entries, err = os.ReadDir(filepath.Join(outer, "a", "b"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
}

func testImage(t *testing.T, diskBlock string) recipes.Image {
	r, _, diags := recipes.Parse("hostile.hcl", []byte(`image "hostile" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "uefi" }
  `+diskBlock+`
}`), recipes.LoadOptions{Library: components.Builtin()})
	require.False(t, diags.HasErrors(), diags.Error())
	return r.Image
}

// Configure, generalise, the growroot service and the split of nested mount
// points refuse a tree whose system directories are links to its root or
// above it, name the path, and write nothing outside the tree.
func TestHostileTreeWritesNothingOutside(t *testing.T) {
	img := testImage(t, `disk {
    size = "2GiB"
    grow = true
    partition "esp" {
      size = "256MiB"
      type = "esp"
      filesystem = "vfat"
      mount = "/boot/efi"
    }
    partition "boot" {
      size = "512MiB"
      type = "linux"
      filesystem = "ext4"
      mount = "/boot"
    }
    partition "var" {
      size = "512MiB"
      type = "linux"
      filesystem = "ext4"
      mount = "/var/log"
    }
    partition "root" {
      size = "rest"
      type = "root"
      filesystem = "ext4"
      mount = "/"
    }
  }`)
	for _, target := range []string{"/", "../../..", "..", "/usr/../.."} {
		for _, dir := range []string{"etc", "boot", "usr", "var"} {
			t.Run(dir+"->"+target, func(t *testing.T) {
				before := snapshotHost(t)
				tree, outer := hostileTree(t, dir, target)
				l, err := planDisk(img, tree)
				require.NoError(t, err)

				var errs []error
				errs = append(errs, writeBootDefaults(tree, img))
				_, err = configureTree(tree, l, img)
				errs = append(errs, err)
				errs = append(errs, generalise(tree, "hostile"))
				errs = append(errs, installGrowroot(tree))
				_, err = disk.SplitTree(tree, l, filepath.Join(t.TempDir(), "mounts"))
				if dir == "var" || dir == "boot" {
					errs = append(errs, err)
				}
				for _, err := range errs {
					var le *fsroot.LinkError
					if dir == "boot" && err != nil && !errorsAsLink(err, &le) {
						// SplitTree refuses a /boot that is not a directory with its own message.
						require.ErrorContains(t, err, "mount point /boot is not a directory")
						continue
					}
					if err == nil {
						continue // this stage writes nothing below dir
					}
					require.ErrorAs(t, err, &le)
					require.Equal(t, "/"+dir, le.Link)
					require.Contains(t, err.Error(), "/"+dir+" is a symlink to")
				}
				// Configure writes /etc and /boot, generalise /etc and /var,
				// growroot /usr and /etc: each hostile directory stops at least one.
				failed := 0
				for _, err := range errs {
					if err != nil {
						failed++
					}
				}
				require.NotZero(t, failed, "a hostile /%s stops the build", dir)
				requireOnlyTreeInside(t, outer)
				require.Equal(t, before, snapshotHost(t), "the host is untouched")
			})
		}
	}
}

func errorsAsLink(err error, le **fsroot.LinkError) bool {
	for e := err; e != nil; {
		if l, ok := e.(*fsroot.LinkError); ok {
			*le = l
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// A build step that replaces /etc with a link to / (inside the chroot) makes
// the build fail when Kiln next writes /etc, naming the path; the host's
// /etc is untouched.
func TestBuildStepLinkingEtcToRootFailsTheBuild(t *testing.T) {
	for _, target := range []string{"/", "../../.."} {
		t.Run(target, func(t *testing.T) {
			tree := testutil.BusyboxTree(t)
			before := snapshotHost(t)
			var log bytes.Buffer
			steps := []components.Step{{Name: "hostile", Script: []byte("rm -rf /etc && ln -s " + target + " /etc\n"), Timeout: time.Minute}}
			_, err := runSteps(context.Background(), tree, steps, &log, nil)
			require.Error(t, err, log.String())
			require.ErrorContains(t, err, `refusing to write /etc/resolv.conf in the image tree: /etc is a symlink to "`+target+`"`)
			fi, lerr := os.Lstat(filepath.Join(tree, "etc"))
			require.NoError(t, lerr)
			require.Equal(t, os.ModeSymlink, fi.Mode().Type(), "the step really did replace /etc")
			require.Equal(t, before, snapshotHost(t), "the host is untouched")
			// Where a naive join would have written through the link.
			require.NoFileExists(t, filepath.Join(tree, "..", "..", "..", "resolv.conf"))
			require.NoFileExists(t, filepath.Join(tree, "resolv.conf"))
		})
	}
}
