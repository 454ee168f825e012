#!/usr/bin/env bash
# Benchmark: imagecleanup apply against the article's hand recipe, on
# identical seeds in the private dockerd. Arguments go to hack/bench
# (--images, --containers, --rounds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started_here=false
hack/dockerd.sh status || started_here=true
TEST_DOCKER_HOST="$(hack/dockerd.sh start)"
export TEST_DOCKER_HOST
if [[ "${started_here}" == true && "${KEEP_DOCKERD:-}" != 1 ]]; then
  trap 'hack/dockerd.sh stop' EXIT
fi
go build -o bin/imagecleanup ./cmd/imagecleanup
go run ./hack/bench --imagecleanup bin/imagecleanup "$@"
