#!/usr/bin/env bash
# Installs the Debian packages Kiln needs to build, boot and test images.
# Idempotent: it installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  mmdebstrap debootstrap        # base: bootstrap a Debian root tree
  e2fsprogs                     # mke2fs -d, e2fsck, debugfs
  dosfstools mtools             # fsck.vfat (judge), mcopy (bench baseline)
  libxml2-utils                 # xmllint: OVF descriptors against the schema (judge)
  libcap2-bin                   # setcap: file capabilities kept in the image (judge)
  gdisk fdisk                   # sgdisk -v, sfdisk --verify (judges)
  qemu-system-x86 qemu-utils    # boot tests; qemu-img as judge
  ovmf seabios                  # UEFI and legacy BIOS firmware (Secure Boot builds and snakeoil keys too)
  swtpm swtpm-tools             # a TPM 2.0 for test VMs (tpm = true, --tpm)
  sbsigntool osslsigncode       # judges of Kiln's Authenticode signatures in the tests
  gpg gpgv                      # judges of Kiln's OpenPGP key and signatures for GRUB
  zstd xz-utils                 # decompression checks
  bc jq                         # bench scripts
  patch                         # applies kiln fmt -diff output in a test
  busybox-static                # tiny static trees for sandbox tests
  systemd                       # systemd-analyze verify of the example units (judge)
  openssl                       # judge of signatures (DSSE, Sigstore bundle)
  python3-jsonschema python3-rfc3987 python3-idna  # judge of the SBOMs against their official schemas
  openssh-client                # kiln run --ssh / kiln ssh: ssh-keygen, ssh
  genisoimage                   # isoinfo: judges the cloud-init seed ISO
  man-db groff-base             # man -l: judges the generated man page
  zsh fish                      # zsh -n, fish: judge the completion scripts
  docker-registry skopeo        # a real OCI registry for the push/pull tests, and a judge
  ca-certificates git make
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all host packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
