#!/usr/bin/env bash
# Benchmark: imagecleanup apply against the article's hand recipe, on
# identical seeds in the private dockerd. Arguments go to hack/bench
# (--images, --containers, --rounds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh
use_private_dockerd
use_small_dockerd
go build -o bin/imagecleanup ./cmd/imagecleanup
go run ./hack/bench --imagecleanup bin/imagecleanup "$@"
