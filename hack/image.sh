#!/usr/bin/env bash
# Builds the agent's image with the shipped Dockerfile, as users build it,
# into the engine at DOCKER_HOST, and tags it with the name given:
#
#   DOCKER_HOST=unix:///…/docker.sock hack/image.sh <name:tag> [VERSION]
#   hack/image.sh --archive <name:tag> [VERSION]
#       prints the archive (docker save) of the last build with the same
#       inputs, for runtimes without a build of their own; exit 1 when none
#
# Nothing can be pulled here, so the Dockerfile's two base images are
# replaced by local stand-ins (its BUILDER_IMAGE and RUNTIME_IMAGE build
# arguments), made once per engine:
#   - the builder: this machine's Go toolchain at /usr/local/go, a static
#     busybox as /bin/sh (the Dockerfile's RUN lines are shell lines) and
#     this machine's CA certificates, with golang's PATH and GOPATH;
#   - the runtime: what the agent needs of distroless/static (passwd and
#     group with root, nobody and nonroot, CA certificates, /tmp).
# The build runs on the host's network (the engines here have no bridge) and
# reaches the Go module proxy this machine uses.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
archive_only=""
if [[ "${1:-}" == --archive ]]; then
  archive_only=1
  shift
fi
tag="${1:?usage: hack/image.sh [--archive] <name:tag> [VERSION]}"
version="${2:-v0.0.0-test}"

go_version="$(go env GOVERSION)"
# The stand-ins are remade when this recipe changes.
recipe="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-8)"
builder="imagecleanup-standin/golang:${go_version#go}-${recipe}"
runtime="imagecleanup-standin/static:debian12-${recipe}"

log() { echo "image.sh: $*" >&2; }

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

# busybox_static prints a statically linked busybox, installing Debian's
# busybox-static when there is none.
busybox_static() {
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    if [[ -x "${b}" ]] && ! ldd "${b}" >/dev/null 2>&1; then
      echo "${b}"
      return
    fi
  done
  if [[ "$(id -u)" != 0 ]]; then
    log "the builder stand-in needs a static busybox (apt-get install busybox-static, as root)"
    exit 1
  fi
  log "installing Debian's busybox-static (the builder stand-in's shell)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends busybox-static >&2
  echo /bin/busybox
}

make_builder() {
  local work goroot
  work="$(mktemp -d)"
  goroot="$(go env GOROOT)"
  mkdir -p "${work}/fs/bin" "${work}/fs/tmp" "${work}/fs/root" "${work}/fs/go" "${work}/fs/usr/local" "${work}/fs/etc/ssl/certs"
  chmod 1777 "${work}/fs/tmp"
  # The module proxy is reached over TLS, with this machine's trust.
  cp /etc/ssl/certs/ca-certificates.crt "${work}/fs/etc/ssl/certs/"
  cp "$(busybox_static)" "${work}/fs/bin/busybox"
  ln -s busybox "${work}/fs/bin/sh"
  # The toolchain without its own test suite (a third of its size).
  tar -C "${goroot}" --exclude=./test -cf - . | (mkdir -p "${work}/fs/usr/local/go" && tar -C "${work}/fs/usr/local/go" -xf -)
  tar -C "${work}/fs" -cf - . | docker import \
    --change 'ENV PATH=/go/bin:/usr/local/go/bin:/bin' \
    --change 'ENV GOPATH=/go' \
    --change 'ENV HOME=/root' \
    --change 'WORKDIR /go' \
    - "${builder}" >/dev/null
  rm -rf "${work}"
  log "made the builder stand-in ${builder}"
}

make_runtime() {
  local work
  work="$(mktemp -d)"
  mkdir -p "${work}/fs/etc/ssl/certs" "${work}/fs/tmp" "${work}/fs/root" "${work}/fs/home/nonroot"
  chmod 1777 "${work}/fs/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"${work}/fs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"${work}/fs/etc/group"
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "${work}/fs/etc/ssl/certs/"
  fi
  tar -C "${work}/fs" --numeric-owner --owner=0 --group=0 -cf - . | docker import - "${runtime}" >/dev/null
  rm -rf "${work}"
  log "made the runtime stand-in ${runtime}"
}

# A build compiles everything in a container without a Go build cache (a few
# minutes on 2 cores): its result is kept in the machine's asset cache
# (hack/lib.sh's asset_cache: every clone shares it), keyed by every input of
# the build, and loaded instead while none changed. The three latest are kept.
inputs_key() {
  (
    cd "${root}"
    {
      echo "${go_version} ${version} ${tag}"
      find Dockerfile .dockerignore go.mod go.sum hack/image.sh api cmd config/crd controllers internal -type f -print0 |
        sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
  )
}
cache_dir="$(asset_cache agent-image)"
lock_asset "${cache_dir}"
cached="${cache_dir}/$(inputs_key).tar"
if [[ -n "${archive_only}" ]]; then
  [[ -f "${cached}" ]] || exit 1
  echo "${cached}"
  exit 0
fi
: "${DOCKER_HOST:?DOCKER_HOST names the engine to build in}"
if [[ -f "${cached}" ]]; then
  docker load -q -i "${cached}" >/dev/null
  log "loaded ${tag} from ${cached} (its inputs did not change)"
  exit 0
fi

has_image "${builder}" || make_builder
has_image "${runtime}" || make_runtime

log "building ${tag} from ${root}/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q --network host \
  --build-arg "BUILDER_IMAGE=${builder}" \
  --build-arg "RUNTIME_IMAGE=${runtime}" \
  --build-arg "GOPROXY=$(go env GOPROXY)" \
  --build-arg "VERSION=${version}" \
  -t "${tag}" "${root}" >/dev/null
mkdir -p "${cache_dir}"
docker save -o "${cached}.partial" "${tag}" && mv "${cached}.partial" "${cached}"
# The three latest builds stay (clones at other commits share the cache).
ls -t "${cache_dir}"/*.tar | tail -n +4 | xargs -r rm -f
log "built ${tag}"
