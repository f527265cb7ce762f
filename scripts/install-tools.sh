#!/usr/bin/env bash
# Installs the tools the tests use as independent judges that are not
# Debian packages, built with go install into a cache directory reused by
# later runs ($KILN_TOOLS_DIR, default ~/.cache/kiln/tools; the Makefile
# puts its bin/ on PATH): oras, the ORAS project's registry client.
set -euo pipefail
dir="${KILN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/tools}"
oras_version=v1.3.6
mkdir -p "$dir/bin"
if [ -x "$dir/bin/oras" ] && [ "$(cat "$dir/oras.version" 2>/dev/null)" = "$oras_version" ]; then
  echo "install-tools: oras $oras_version present"
  exit 0
fi
echo "install-tools: go install oras.land/oras/cmd/oras@$oras_version into $dir/bin"
GOBIN="$dir/bin" go install "oras.land/oras/cmd/oras@$oras_version"
echo "$oras_version" > "$dir/oras.version"
