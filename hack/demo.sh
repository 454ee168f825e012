#!/usr/bin/env bash
# make demo: the operator's main job on this machine, end to end (see
# hack/demo/main.go). Starts the private dockerd unless one runs, builds the
# envtest control plane once, and stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=hack/lib.sh
source hack/lib.sh
use_envtest
use_private_dockerd
use_small_dockerd

mkdir -p bin
go build -o bin/manager ./cmd/manager
go build -o bin/demo ./hack/demo
go build -o bin/demo-baseline ./hack/demo/baseline
bin/demo --docker-host "${TEST_DOCKER_HOST}" --manager bin/manager \
  --small-docker-host "${TEST_SMALL_DOCKER_HOST}" --small-data-root "${TEST_SMALL_DATA_ROOT}"
