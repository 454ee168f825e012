#!/usr/bin/env bash
# Renders an install for `make deploy` / `make undeploy`: the kustomize folder
# DEPLOY_DIR (default config/default) with the agent's image set to IMG, in a
# throwaway overlay under bin/, so that the checkout's files never change.
# The agent's AGENT_IMAGE (the image it must never remove) follows. With
# VERSION set (make build-installer), every object is labelled
# app.kubernetes.io/version (selectors are left alone: they are immutable).
#
#   hack/deploy.sh <kustomize folder> <image> [--without-crds]
#       prints the manifests; --without-crds leaves the CRDs out (make
#       undeploy: deleting a CRD deletes every policy and report with it)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$1" img="$2" without_crds="${3:-}"
kustomize="${KUSTOMIZE:-kustomize}"
[[ "${kustomize}" != */* ]] || kustomize="$(realpath "${kustomize}")"
overlay="$(mktemp -d "${root}/bin/deploy.XXXXXX")"
trap 'rm -rf "${overlay}"' EXIT
cat >"${overlay}/kustomization.yaml" <<YAML
resources:
- $(realpath --relative-to="${overlay}" "${root}/${dir}")
replacements:
- source:
    kind: DaemonSet
    name: image-cleanup-agent
    fieldPath: spec.template.spec.containers.[name=agent].image
  targets:
  - select:
      kind: DaemonSet
      name: image-cleanup-agent
    fieldPaths:
    - spec.template.spec.containers.[name=agent].env.[name=AGENT_IMAGE].value
YAML
if [[ "${without_crds}" == --without-crds ]]; then
  cat >>"${overlay}/kustomization.yaml" <<YAML
patches:
- target:
    kind: CustomResourceDefinition
  patch: |-
    \$patch: delete
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: any
YAML
fi
if [[ -n "${VERSION:-}" ]]; then
  cat >>"${overlay}/kustomization.yaml" <<YAML
labels:
- pairs:
    app.kubernetes.io/version: "${VERSION}"
  includeSelectors: false
  includeTemplates: true
YAML
fi
(cd "${overlay}" && "${kustomize}" edit set image "imagecleanup/image-cleanup-operator=${img}")
"${kustomize}" build "${overlay}"
