#!/usr/bin/env bash
# Runs the Go tests with the real parts they need: a private dockerd
# (hack/dockerd.sh), a private containerd with its CRI (hack/containerd.sh),
# a private CRI-O (hack/crio.sh), envtest's kube-apiserver + etcd
# (hack/envtest-assets.sh) and the single-node cluster (hack/cluster.sh) for
# test/node, on Docker, then on containerd, then on CRI-O.
# Arguments go to `go test` (default ./...). Set KEEP_DOCKERD=1 to leave the
# private dockerds running afterwards, KEEP_CLUSTER=1 the test node.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."


# shellcheck source=hack/lib.sh
source hack/lib.sh
use_envtest
use_private_dockerd
use_small_dockerd
use_docker29
use_small_docker29
use_docker29_classic
use_private_containerd
use_small_containerd
use_private_crio
use_test_node

echo "test.sh: KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} TEST_CRI_ENDPOINT=${TEST_CRI_ENDPOINT} TEST_CRIO_ENDPOINT=${TEST_CRIO_ENDPOINT} TEST_DOCKER_HOST=${TEST_DOCKER_HOST} TEST_SMALL_DOCKER_HOST=${TEST_SMALL_DOCKER_HOST} TEST_DOCKER29_HOST=${TEST_DOCKER29_HOST} TEST_CLUSTER_KUBECONFIG=${TEST_CLUSTER_KUBECONFIG}"
# test/node's tests that hold on every runtime the node may run.
NODE_TESTS_ON_EVERY_RUNTIME='^(TestAgentPodIsReadyWithItsOwnIdentity|TestKubeletsOwnWorldIsLeftAlone|TestPodsBoundToTheNodeKeepTheirImages|TestNoSweepOutsideTheWindow)$'
status=0
go test -count=1 -timeout 30m "${@:-./...}" || status=$?
# The real-engine tier again, on Docker 29 with the containerd image store
# (what a user installs today), its small engine with containerd's root on
# the small disk; and the end-to-end tests that use an engine.
if [[ $# -eq 0 ]]; then
  echo "test.sh: the real-engine tier on Docker 29 (containerd image store) at ${TEST_DOCKER29_HOST}"
  TEST_DOCKER_HOST="${TEST_DOCKER29_HOST}" TEST_SMALL_DOCKER_HOST="${TEST_SMALL29_DOCKER_HOST}" \
    TEST_SMALL_DATA_ROOT="${TEST_SMALL29_DATA_ROOT}" TEST_SMALL_IMAGE_ROOT="${TEST_SMALL29_IMAGE_ROOT}" \
    go test -count=1 -timeout 20m \
    ./internal/cleanup ./internal/docker ./internal/testenv ./internal/runtimehost ./cmd/imagecleanup ./test/e2e || status=$?
  # And on Docker 29 with the classic overlay2 store, which behaves as 20.10's.
  echo "test.sh: the real-engine tier on Docker 29 (classic overlay2 store) at ${TEST_DOCKER29_CLASSIC_HOST}"
  TEST_DOCKER_HOST="${TEST_DOCKER29_CLASSIC_HOST}" go test -count=1 -timeout 20m \
    ./internal/cleanup ./internal/docker ./internal/testenv ./internal/runtimehost ./cmd/imagecleanup || status=$?
fi
# The CRI tier again, on CRI-O: every test of a CRI runtime (named …CRI…)
# but those of what only containerd has (…OnContainerd), the CLI's
# included, and the disk watermarks on its small storage root.
if [[ $# -eq 0 ]]; then
  echo "test.sh: the CRI tier on CRI-O at ${TEST_CRIO_ENDPOINT}"
  TEST_CRI_ENDPOINT="${TEST_CRIO_ENDPOINT}" TEST_SMALL_CRI_ENDPOINT="${TEST_SMALL_CRIO_ENDPOINT}" \
    go test -count=1 -timeout 15m -run CRI -skip OnContainerd ./internal/cri ./internal/cleanup ./cmd/imagecleanup || status=$?
fi
# The mutation table in the time it fits: each mutant of the model test
# (hack/mutants.py) against the life that caught it, which must fail.
if [[ $# -eq 0 ]]; then
  echo "test.sh: the model's mutants against their replayed lives"
  hack/mutants.sh replay || status=$?
fi
# The test node again, its kubelet on containerd's CRI, then on CRI-O (no
# Docker on it): the install and the kubelet's world, the tests that hold
# on every runtime.
if [[ $# -eq 0 ]]; then
  for node_runtime in containerd crio; do
    echo "test.sh: the test node on ${node_runtime}"
    use_test_node "${node_runtime}"
    go test -count=1 -timeout 15m -run "${NODE_TESTS_ON_EVERY_RUNTIME}" ./test/node || status=$?
  done
fi
# A test binary that dies (a timeout panic) cannot stop its envtest; its
# kube-apiserver and etcd are then orphans: kill those, and only those
# (throwaway processes; SIGTERM leaves kube-apiserver waiting on a dead etcd).
for pid in $(pgrep -f "^${KUBEBUILDER_ASSETS}/(etcd|kube-apiserver) " || true); do
  if [[ "$(ps -o ppid= -p "${pid}" | tr -d ' ')" == 1 ]]; then
    echo "test.sh: stopping orphaned envtest process ${pid}" >&2
    kill -9 "${pid}" 2>/dev/null || true
  fi
done
# The test node goes down on exit; anything of it left behind fails the run.
trap - EXIT
stop_started
if [[ "${TEST_NODE_LEFTOVERS:-}" == 1 ]]; then
  echo "test.sh: the test node left something behind (above)" >&2
  status=1
fi
exit "${status}"
