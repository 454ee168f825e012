#!/usr/bin/env bash
# Fails when the committed generated files (CRDs, RBAC, deepcopy) or go.mod /
# go.sum are not what the generators make of the sources. It regenerates in
# place, so after a failure the tree holds the fresh files, ready to commit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated() {
  find api config/crd/bases config/rbac charts/image-cleanup-operator/files -type f \( -name 'zz_generated.*' -o -name '*.yaml' -o -name '*.json' -o -path '*/applyconfiguration/*' \) 2>/dev/null |
    sort | xargs -r sha256sum
}

before="$(generated)"
make -s manifests generate >/dev/null
after="$(generated)"
if [[ "${before}" != "${after}" ]]; then
  echo "verify-generated: generated files were stale; they are regenerated now, review and commit them:" >&2
  diff <(echo "${before}") <(echo "${after}") >&2 || true
  exit 1
fi
if ! go mod tidy -diff >/dev/null; then
  echo "verify-generated: go.mod / go.sum are not tidy; run 'go mod tidy' and commit" >&2
  go mod tidy -diff >&2 || true
  exit 1
fi
# The Kubernetes staging modules (k8s.io/api, client-go, apiserver, ...) are
# released together; mixed patch versions build, but pair fixes of one with
# bugs of another. Pseudo-versions (k8s.io/utils, kube-openapi) and klog are
# versioned on their own.
k8s_versions="$(awk '$1 ~ /^k8s\.io\// && $2 ~ /^v0\.[0-9]+\.[0-9]+$/ {print $2}' go.mod | sort -u)"
if [[ "$(wc -l <<<"${k8s_versions}")" != 1 ]]; then
  echo "verify-generated: the k8s.io modules in go.mod are at several versions; require one:" >&2
  grep -E '^\s*k8s\.io/\S+ v0\.[0-9]+\.[0-9]+(\s|$)' go.mod >&2
  exit 1
fi
echo "verify-generated: up to date"
