#!/usr/bin/env bash
# Benchmark: imagecleanup apply against the article's batched recipe and
# against raw removals of the same objects, on identical seeds, on every
# engine make test runs: Docker 20.10 (Debian's), Docker 29 with its
# containerd image store, Docker 29 with the classic store; then a sweep on
# containerd's CRI against crictl's raw removals (make bench-cri; here 30
# images x 10 containers unless CRI_BENCH_IMAGES, CRI_BENCH_CONTAINERS say
# otherwise). It ends with one line of ratios per engine, so the next
# change shows its cost.
#
# Arguments (make bench ARGS=...) go to hack/bench on each Docker engine,
# after the defaults of 30 images x 10 containers, 3 rounds (the issue's
# second size is --images 100 --containers 20; --raw adds the engine's
# removal rate by calls in flight). With --disk, only the disk-watermark
# benchmark runs (small engine).
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
set -- --images 30 --containers 10 --rounds 3 "$@" # later flags win
use_private_dockerd
use_docker29
use_docker29_classic
use_private_containerd
summary="$(mktemp)"
out="$(mktemp)"
trap 'rm -f "${summary}" "${out}"; stop_started' EXIT
# Each engine's tables print when its run ends; its ratios line is kept
# for the summary.
engine() {
  local label="$1" host="$2"
  shift 2
  echo "=== ${label}"
  go run ./hack/bench --imagecleanup bin/imagecleanup --docker-host "${host}" --label "${label}" "$@" >"${out}"
  cat "${out}"
  grep '^ratios ' "${out}" >>"${summary}"
}
engine "docker-20.10" "${TEST_DOCKER_HOST}" "$@"
engine "docker-29-containerd-store" "${TEST_DOCKER29_HOST}" "$@"
engine "docker-29-classic-store" "${TEST_DOCKER29_CLASSIC_HOST}" "$@"
echo "=== containerd-cri (${CRI_BENCH_IMAGES:=30} images x ${CRI_BENCH_CONTAINERS:=10} containers)"
CRI_BENCH_IMAGES="${CRI_BENCH_IMAGES}" CRI_BENCH_CONTAINERS="${CRI_BENCH_CONTAINERS}" CRICTL="$(hack/cri-assets.sh)/crictl" \
  go test -run '^$' -bench BenchmarkCRISweepAgainstCrictl -benchtime "${BENCHTIME:-1x}" -timeout 60m ./internal/cleanup >"${out}"
cat "${out}"
awk -v size="${CRI_BENCH_IMAGES} images x ${CRI_BENCH_CONTAINERS} containers" '/^BenchmarkCRISweepAgainstCrictl/ {
  for (i = 1; i < NF; i++) { if ($(i+1) == "sweep/crictl") r = $i; if ($(i+1) == "sweep-s") s = $i; if ($(i+1) == "crictl-s") c = $i }
  print "ratios containerd-cri: sweep/crictl " r "x (sweep " s " s, crictl raw removals " c " s; " size ")"
}' "${out}" >>"${summary}"
echo
echo "Ratios, this run (time / time of the baseline named; lower is faster):"
cat "${summary}"
