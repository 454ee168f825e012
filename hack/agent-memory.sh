#!/usr/bin/env bash
# make agent-memory: the agent's memory as its container's, on the test node
# (hack/cluster.sh, Docker runtime), as the kubelet reports it: the working
# set (what the DaemonSet's request and limit are weighed against, and what
# eviction reads) and the resident set. Installs the product as the node
# tests do, applies the samples (dry runs: every agent plans a sweep), and
# samples the kubelet's summary after IDLE (default 60s) of idling.
# KEEP_CLUSTER=1 leaves the node up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh
use_test_node docker
kubectl=("${TEST_CLUSTER_KUBECTL}" --kubeconfig "${TEST_CLUSTER_KUBECONFIG}")
make -s deploy DEPLOY_DIR=test/node/overlay IMG="${TEST_CLUSTER_AGENT_IMAGE}" KUSTOMIZE="${KUSTOMIZE:?make agent-memory sets it}" \
  KUBECTL="${kubectl[*]}" >/dev/null
"${kubectl[@]}" -n image-cleanup-system rollout status daemonset/image-cleanup-agent --timeout=3m
"${kubectl[@]}" apply -k config/samples/ >/dev/null
for _ in $(seq 60); do
  if [[ -n "$("${kubectl[@]}" get imagecleanupreports -o name 2>/dev/null)" ]]; then break; fi
  sleep 2
done
echo "agent-memory: reports written: $("${kubectl[@]}" get imagecleanupreports -o name | wc -l); idling ${IDLE:-60s}"
sleep "${IDLE:-60s}"
for _ in 1 2 3; do
  "${kubectl[@]}" get --raw "/api/v1/nodes/${TEST_CLUSTER_NODE}/proxy/stats/summary" |
    go run ./hack/agentmem image-cleanup-system image-cleanup-agent- agent
  sleep 15
done
"${kubectl[@]}" delete -k config/samples/ >/dev/null
