#!/usr/bin/env bash
# Benchmark: imagecleanup apply against the article's batched recipe and
# against raw removals of the same objects, on identical seeds, on every
# engine make test runs: Docker 20.10 (Debian's), Docker 29 with its
# containerd image store, Docker 29 with the classic store; then a sweep on
# containerd's CRI against crictl's raw removals (make bench-cri). It ends
# with one line of ratios per engine, so the next change shows its cost.
#
# Arguments go to hack/bench on each Docker engine (default: 30 images x 10
# containers, 3 rounds; the issue's second size is --images 100 --containers
# 20). With --disk, only the disk-watermark benchmark runs (small engine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh
go build -o bin/imagecleanup ./cmd/imagecleanup
if [[ " $* " == *" --disk "* ]]; then
  use_private_dockerd
  use_small_dockerd
  go run ./hack/bench --imagecleanup bin/imagecleanup "$@"
  exit
fi
if [[ $# -eq 0 ]]; then
  set -- --images 30 --containers 10 --rounds 3
fi
use_private_dockerd
use_docker29
use_docker29_classic
use_private_containerd
summary="$(mktemp)"
trap 'rm -f "${summary}"; stop_started' EXIT
engine() {
  local label="$1" host="$2"
  shift 2
  echo "=== ${label}"
  go run ./hack/bench --imagecleanup bin/imagecleanup --docker-host "${host}" --label "${label}" "$@" | tee /dev/stderr | grep '^ratios ' >>"${summary}"
}
engine "docker-20.10" "${TEST_DOCKER_HOST}" "$@" 2>&1
engine "docker-29-containerd-store" "${TEST_DOCKER29_HOST}" "$@" 2>&1
engine "docker-29-classic-store" "${TEST_DOCKER29_CLASSIC_HOST}" "$@" 2>&1
echo "=== containerd-cri"
CRICTL="$(hack/cri-assets.sh)/crictl" go test -run '^$' -bench BenchmarkCRISweepAgainstCrictl -benchtime "${BENCHTIME:-1x}" -timeout 60m ./internal/cleanup |
  tee /dev/stderr | awk '/^BenchmarkCRISweepAgainstCrictl/ {for (i = 1; i < NF; i++) if ($(i+1) == "sweep/crictl") r = $i; print "ratios containerd-cri: sweep/crictl " r "x (crictl: raw removals of the same objects)"}' >>"${summary}" 2>&1
echo
echo "Ratios, this run (time / time of the baseline named; lower is faster):"
cat "${summary}"
