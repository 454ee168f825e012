#!/usr/bin/env bash
# make bench-cri: a sweep on the private containerd (100 images, each used
# by 10 exited containers) against crictl's raw removals of the same
# objects, in the same run (internal/cleanup BenchmarkCRISweepAgainstCrictl).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh
use_private_containerd
CRICTL="$(hack/cri-assets.sh)/crictl" go test -run '^$' -bench BenchmarkCRISweepAgainstCrictl -benchtime "${BENCHTIME:-1x}" -timeout 60m ./internal/cleanup
