#!/usr/bin/env bash
# Builds, once, the Docker engine users install today: dockerd 29 (moby's
# github.com/moby/moby/v2), the containerd 2 daemon and its runc shim, and
# runc, all from the Go module proxy (no other download works here), into an
# ignored cache folder, and prints that folder (dockerd, containerd,
# containerd-shim-runc-v2, runc). hack/dockerd.sh runs them when
# IMAGECLEANUP_DOCKERD_BIN_DIR names the folder.
#
# Why these: Debian 12's runc 1.1.5 fails every start under containerd 2
# ("namespace time does not exist"), and containerd starts its shims from
# its own PATH, so the 2.x shim must come first there. runc needs cgo and
# libseccomp (installed when missing).
set -euo pipefail

MOBY_VERSION="${MOBY_VERSION:-v2.0.0-beta.24}"       # Docker 29.x, API 1.56
DOCKER_VERSION="${DOCKER_VERSION:-29.0.0-moby.beta.24}" # what `docker version` reports
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
RUNC_VERSION="${RUNC_VERSION:-v1.5.3}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
cache="${DOCKER29_CACHE:-$(asset_cache docker29)}/moby-${MOBY_VERSION}-containerd-${CONTAINERD_VERSION}-runc-${RUNC_VERSION}"
lock_asset "${cache}"
bins=(dockerd containerd containerd-shim-runc-v2 runc)

done_already=true
for b in "${bins[@]}"; do
  [[ -x "${cache}/${b}" ]] || done_already=false
done
if [[ "${done_already}" == true ]]; then
  echo "${cache}"
  exit 0
fi

log() { echo "docker29-assets: $*" >&2; }

if ! pkg-config --exists libseccomp 2>/dev/null; then
  if [[ "$(id -u)" != 0 ]]; then
    log "runc needs libseccomp-dev (apt-get install libseccomp-dev, as root)"
    exit 1
  fi
  log "installing libseccomp-dev and pkg-config (runc's seccomp)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}" "${cache}.partial"' EXIT
rm -rf "${cache}.partial"
mkdir -p "${cache}.partial"

log "building runc ${RUNC_VERSION}"
module_source github.com/opencontainers/runc "${RUNC_VERSION}" "${work}/runc"
(
  cd "${work}/runc"
  CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags seccomp \
    -ldflags="-s -X main.version=${RUNC_VERSION#v}" -o "${cache}.partial/runc" .
)

log "building containerd ${CONTAINERD_VERSION} and its runc shim"
module_source github.com/containerd/containerd/v2 "${CONTAINERD_VERSION}" "${work}/containerd"
(
  cd "${work}/containerd"
  stamp="-X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s ${stamp}" -o "${cache}.partial/containerd" ./cmd/containerd
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s ${stamp}" -o "${cache}.partial/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2
)

log "building dockerd ${DOCKER_VERSION} (moby ${MOBY_VERSION}; a few minutes the first time)"
module_source github.com/moby/moby/v2 "${MOBY_VERSION}" "${work}/moby"
(
  cd "${work}/moby"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -tags "exclude_graphdriver_btrfs exclude_graphdriver_devicemapper" \
    -ldflags="-s -X github.com/moby/moby/v2/dockerversion.Version=${DOCKER_VERSION}" \
    -o "${cache}.partial/dockerd" ./cmd/dockerd
)

mv "${cache}.partial" "${cache}"
log "built into ${cache}"
echo "${cache}"
