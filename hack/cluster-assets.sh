#!/usr/bin/env bash
# Builds, once, the binaries of the single-node test cluster (hack/cluster.sh)
# from the Go module proxy: kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet and kubectl at KUBERNETES_VERSION (the wrapper-module
# technique of hack/envtest-assets.sh, version-stamped so the node does not
# report v0.0.0-master) and cri-dockerd from its own vendored module.
#
# Prints the folder that holds them, and a copy of the envtest cache's etcd:
# the cluster's etcd must not run from the envtest folder, where hack/test.sh
# stops orphaned envtest processes (the cluster's are daemons, parent 1).
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
# v0.4.x needs Docker API >= 1.42; Debian 12's docker.io (20.10) speaks 1.41.
CRI_DOCKERD_VERSION="${CRI_DOCKERD_VERSION:-v0.3.17}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CLUSTER_CACHE:-${root}/bin/cluster}/k8s-${KUBERNETES_VERSION}-cri-dockerd-${CRI_DOCKERD_VERSION}"
components=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

# A cache built before etcd was copied in gets its copy.
if [[ -x "${cache}/kubelet" && ! -x "${cache}/etcd" ]]; then
  cp "$("${root}/hack/envtest-assets.sh")/etcd" "${cache}/etcd"
fi
complete=true
for bin in "${components[@]}" cri-dockerd etcd; do
  [[ -x "${cache}/${bin}" ]] || complete=false
done
if [[ "${complete}" == true ]]; then
  echo "${cache}"
  exit 0
fi

log() { echo "cluster-assets: $*" >&2; }
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"

work="$(mktemp -d)"
trap 'chmod -R u+w "${work}"; rm -rf "${work}"' EXIT
mkdir -p "${cache}.partial" "${work}/k8s"

log "building Kubernetes ${KUBERNETES_VERSION} node components and cri-dockerd ${CRI_DOCKERD_VERSION} (first time only, many minutes)"
k8s_wrapper_module "${work}/k8s" "${KUBERNETES_VERSION}"
{
  echo "//go:build tools"
  echo
  echo "package k8swrapper"
  echo
  echo "import ("
  for bin in "${components[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/${bin}\""; done
  echo ")"
} >"${work}/k8s/tools.go"

minor="${KUBERNETES_VERSION#v1.}"
minor="${minor%%.*}"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
done
(
  cd "${work}/k8s"
  GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
  # One at a time: on two cores, parallel builds of shared packages are slower.
  for bin in "${components[@]}"; do
    log "building ${bin}"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags="-s${stamp}" -o "${cache}.partial/${bin}" "k8s.io/kubernetes/cmd/${bin}"
  done
)

log "building cri-dockerd"
src="$(go mod download -json "github.com/Mirantis/cri-dockerd@${CRI_DOCKERD_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "${src}" ]] || { log "cannot download cri-dockerd ${CRI_DOCKERD_VERSION}"; exit 1; }
cp -r "${src}" "${work}/cri-dockerd"
chmod -R u+w "${work}/cri-dockerd"
(
  cd "${work}/cri-dockerd"
  # Built as the main module, so that its go.mod's replace directives hold
  # (a module zip carries no vendor folder).
  rm -rf vendor
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags="-s -X github.com/Mirantis/cri-dockerd/cmd/version.Version=${CRI_DOCKERD_VERSION#v}" \
    -o "${cache}.partial/cri-dockerd" .
)

cp "$("${root}/hack/envtest-assets.sh")/etcd" "${cache}.partial/etcd"
rm -rf "${cache}"
mv "${cache}.partial" "${cache}"
log "built into ${cache}"
echo "${cache}"
