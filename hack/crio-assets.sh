#!/usr/bin/env bash
# Builds, once, what a private CRI-O needs besides its OCI runtime (runc,
# from hack/docker29-assets.sh) and crictl (hack/cri-assets.sh): crio itself
# from the Go module proxy, and pinns (CRI-O's C helper that pins a pod's
# namespaces) from the same module's source. conmon, CRI-O's container
# monitor, is Debian's package (installed when missing). Prints the folder
# that holds crio, pinns, runc and crictl.
#
# crio is built with cgo (seccomp, libseccomp-dev), without gpgme
# (containers_image_openpgp) and without the btrfs and devicemapper graph
# drivers. Its go.mod asks for k8s.io/cri-client v0.36.0-rc.0, which the
# proxy refuses; v0.36.0 builds the same code.
set -euo pipefail

CRIO_VERSION="${CRIO_VERSION:-v1.36.1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
cri="$("${root}/hack/cri-assets.sh")"
cache="${CRIO_CACHE:-$(asset_cache crio)}/cri-o-${CRIO_VERSION}"
lock_asset "${cache}"

log() { echo "crio-assets: $*" >&2; }

install_packages() {
  local missing=()
  command -v conmon >/dev/null || missing+=(conmon)
  # cgo finds libseccomp through pkg-config (libseccomp-golang's #cgo line).
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists libseccomp 2>/dev/null || missing+=(libseccomp-dev)
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  [[ ${#missing[@]} -eq 0 ]] && return
  if [[ "$(id -u)" != 0 ]]; then
    log "CRI-O needs ${missing[*]} (apt-get install, as root)"
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
}
install_packages

if [[ -x "${cache}/crio" && -x "${cache}/pinns" ]]; then
  echo "${cache}"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}" "${cache}.partial"' EXIT
rm -rf "${cache}.partial"
mkdir -p "${cache}.partial"

log "building crio ${CRIO_VERSION} (a few minutes the first time)"
(
  cd "${work}"
  cat >go.mod <<EOF
module criobuild

go 1.26.0

require github.com/cri-o/cri-o ${CRIO_VERSION}

replace k8s.io/cri-client => k8s.io/cri-client v0.36.0
EOF
  cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "github.com/cri-o/cri-o/cmd/crio"
EOF
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go get "github.com/cri-o/cri-o/cmd/crio@${CRIO_VERSION}" >/dev/null
  CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s" \
    -tags "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp" \
    -o "${cache}.partial/crio" github.com/cri-o/cri-o/cmd/crio
)

log "building pinns ${CRIO_VERSION}"
module_source github.com/cri-o/cri-o "${CRIO_VERSION}" "${work}/cri-o"
(
  cd "${work}/cri-o/pinns"
  for src in src/*.c; do
    gcc -std=c99 -O3 -Wall -Wextra -static -c "${src}" -o "${src%.c}.o"
  done
  gcc -static -o "${cache}.partial/pinns" src/*.o
  strip -s "${cache}.partial/pinns"
)
for b in runc crictl; do
  cp "${cri}/${b}" "${cache}.partial/${b}"
done
mv "${cache}.partial" "${cache}"
log "built into ${cache}"
echo "${cache}"
