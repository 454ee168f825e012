#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from the Go module
# proxy, because envtest's prebuilt binaries cannot be downloaded here.
#
# Prints the folder to use as KUBEBUILDER_ASSETS. A preset KUBEBUILDER_ASSETS
# wins. The build happens once per version; later calls reuse the cache.
#
# How: a throwaway module requires k8s.io/kubernetes, whose go.mod points its
# k8s.io/* staging modules at ./staging/...; those replaces are rewritten to the
# published v0.x versions of the same release. etcd is built from
# go.etcd.io/etcd/server/v3, at the version kubernetes itself requires.
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"   # matches client-go v0.37.x
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"               # what kubernetes v1.37.2 requires

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
# "stamped": its kube-apiserver says its release, as the test node's must.
cache="${ENVTEST_CACHE:-$(asset_cache envtest)}/k8s-${KUBERNETES_VERSION}-stamped-etcd-${ETCD_VERSION}"
lock_asset "${cache}"

if [[ -x "${cache}/kube-apiserver" && -x "${cache}/etcd" ]]; then
  echo "${cache}"
  exit 0
fi

log() { echo "envtest-assets: $*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

log "building kube-apiserver ${KUBERNETES_VERSION} and etcd ${ETCD_VERSION} (first time only, several minutes)"
k8s_wrapper_module "${work}" "${KUBERNETES_VERSION}" go.etcd.io/etcd/server/v3 "${ETCD_VERSION}"
cat >"${work}/tools.go" <<'GO'
//go:build tools

package k8swrapper

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
GO

cd "${work}"
# -mod=mod lets the go command fill go.sum from the proxy for this throwaway module.
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
mkdir -p "${cache}.partial"
# Stamped as the test node's is, which then copies it (hack/cluster-assets.sh).
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags="$(k8s_version_ldflags "${KUBERNETES_VERSION}")" \
  -o "${cache}.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "${cache}.partial/etcd" go.etcd.io/etcd/server/v3
rm -rf "${cache}"
mv "${cache}.partial" "${cache}"
log "built into ${cache}"
echo "${cache}"
