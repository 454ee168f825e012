#!/usr/bin/env bash
# make scale: N in-process agents with fake engines and one aggregator
# against one envtest API server (hack/scale/main.go). A benchmark, not a
# test. NODES (default 200) and IDLE (default 60s) choose the size;
# CONVERGE_WITHIN (default 5m) is how long a wave may take; PROFILE, a
# folder, gets CPU profiles of the new policy's wave (go tool pprof). The
# agents and the aggregator act as their ServiceAccounts (impersonated),
# under the install's RBAC and FlowSchema, so that the API server's
# priority and fairness treats them as in a cluster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh
use_envtest
go run ./hack/scale --nodes "${NODES:-200}" --idle "${IDLE:-60s}" --converge-within "${CONVERGE_WITHIN:-5m}" --kustomize "${KUSTOMIZE:?make scale sets it}" --profile "${PROFILE:-}" 2> >(grep -v "Unable to write event" >&2)
