#!/usr/bin/env bash
# Builds, once per machine (hack/lib.sh's asset_cache), the binaries of the
# single-node test cluster (hack/cluster.sh) from the Go module proxy:
# kube-controller-manager, kube-scheduler, kubelet and kubectl at
# KUBERNETES_VERSION (the wrapper-module technique of hack/envtest-assets.sh,
# version-stamped so the node does not report v0.0.0-master) and cri-dockerd
# from its own vendored module; kube-apiserver and etcd are envtest's builds.
#
# Prints the folder that holds them, with copies of envtest's kube-apiserver
# and etcd: the cluster's must not run from the envtest folder, where
# hack/test.sh stops orphaned envtest processes (the cluster's are daemons,
# parent 1).
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
# v0.4.x needs Docker API >= 1.42; Debian 12's docker.io (20.10) speaks 1.41.
CRI_DOCKERD_VERSION="${CRI_DOCKERD_VERSION:-v0.3.17}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
cache="${CLUSTER_CACHE:-$(asset_cache cluster)}/k8s-${KUBERNETES_VERSION}-cri-dockerd-${CRI_DOCKERD_VERSION}"
lock_asset "${cache}"
# Built here; kube-apiserver and etcd are envtest's (the same build).
components=(kube-controller-manager kube-scheduler kubelet kubectl)

complete=true
for bin in "${components[@]}" cri-dockerd etcd kube-apiserver; do
  [[ -x "${cache}/${bin}" ]] || complete=false
done
if [[ "${complete}" == true ]]; then
  echo "${cache}"
  exit 0
fi

log() { echo "cluster-assets: $*" >&2; }

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

stamp="$(k8s_version_ldflags "${KUBERNETES_VERSION}")"
(
  cd "${work}/k8s"
  GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
  # One at a time: on two cores, parallel builds of shared packages are slower.
  for bin in "${components[@]}"; do
    log "building ${bin}"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags="${stamp}" -o "${cache}.partial/${bin}" "k8s.io/kubernetes/cmd/${bin}"
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

envtest="$(KUBEBUILDER_ASSETS="" KUBERNETES_VERSION="${KUBERNETES_VERSION}" "${root}/hack/envtest-assets.sh")"
cp "${envtest}/etcd" "${envtest}/kube-apiserver" "${cache}.partial/"
rm -rf "${cache}"
mv "${cache}.partial" "${cache}"
log "built into ${cache}"
echo "${cache}"
