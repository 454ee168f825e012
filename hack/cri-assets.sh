#!/usr/bin/env bash
# Builds, once, what the CRI tier needs besides the containerd daemon, its
# runc shim and runc (hack/docker29-assets.sh builds those; this script asks
# it first): ctr, to import the pod sandbox image into a private containerd
# (no registry can be reached here), and crictl, the CRI's own client, for
# the benchmark's raw removals. Prints the folder that holds all five:
# containerd, containerd-shim-runc-v2, runc, ctr, crictl.
set -euo pipefail

CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-v1.37.0}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
engine="$("${root}/hack/docker29-assets.sh")"
cache="${CRI_CACHE:-$(asset_cache cri)}/containerd-${CONTAINERD_VERSION}-cri-tools-${CRI_TOOLS_VERSION}"
lock_asset "${cache}"

if [[ -x "${cache}/ctr" && -x "${cache}/crictl" ]]; then
  echo "${cache}"
  exit 0
fi

log() { echo "cri-assets: $*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "${work}" "${cache}.partial"' EXIT
rm -rf "${cache}.partial"
mkdir -p "${cache}.partial"

log "building ctr ${CONTAINERD_VERSION}"
module_source github.com/containerd/containerd/v2 "${CONTAINERD_VERSION}" "${work}/containerd"
(
  cd "${work}/containerd"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s" -o "${cache}.partial/ctr" ./cmd/ctr
)
log "building crictl ${CRI_TOOLS_VERSION}"
module_source sigs.k8s.io/cri-tools "${CRI_TOOLS_VERSION}" "${work}/cri-tools"
(
  cd "${work}/cri-tools"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s" -o "${cache}.partial/crictl" ./cmd/crictl
)
for b in containerd containerd-shim-runc-v2 runc; do
  cp "${engine}/${b}" "${cache}.partial/${b}"
done
mv "${cache}.partial" "${cache}"
log "built into ${cache}"
echo "${cache}"
