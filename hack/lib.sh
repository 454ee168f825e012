# Sourced by the hack/ scripts that need the private dockerd and envtest.

# asset_cache NAME is the folder of built assets of one kind: outside the
# checkout, so that every clone on this machine (CI's included) builds each
# version once. IMAGECLEANUP_ASSET_CACHE moves it. Each asset's folder in
# it is named by its versions, and appears whole (built as .partial, then
# renamed); delete one to have it built again.
asset_cache() {
  local base="${XDG_CACHE_HOME:-}"
  if [[ -z "${base}" && -n "${HOME:-}" ]]; then base="${HOME}/.cache"; fi
  base="${base:-/tmp/imagecleanup-cache-$(id -u)}"
  echo "${IMAGECLEANUP_ASSET_CACHE:-${base}/imagecleanup-assets}/$1"
}

# lock_asset FOLDER holds an exclusive lock on one asset's folder until the
# calling script exits: clones building the same asset at once take turns,
# and the later one finds it built (call it before looking).
lock_asset() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1.lock"
  flock 9
}

# running_pid PIDFILE prints the pid the file names when that process runs;
# it fails otherwise.
running_pid() {
  [[ -f "$1" ]] || return 1
  local pid
  pid="$(cat "$1")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null && echo "${pid}"
}

# stop_pid PIDFILE stops the process the file names, if it runs: SIGTERM,
# 20 s to end, then SIGKILL.
stop_pid() {
  local pid
  pid="$(running_pid "$1")" || return 0
  kill "${pid}" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "${pid}" 2>/dev/null || true
}

# has_cap_sys_resource reads the bounding set (bit 24) without capsh: runc
# may then set the negative oom_score_adj the runtimes give pod sandboxes.
has_cap_sys_resource() {
  local bnd
  bnd="$(awk '/^CapBnd/ {print $2}' /proc/self/status)"
  (((16#${bnd} >> 24) & 1))
}

# k8s_version_ldflags VERSION stamps a Kubernetes binary with its release
# (it would say v0.0.0-master): the test node's and envtest's API server
# are then one build.
k8s_version_ldflags() {
  local minor="${1#v1.}" pkg flags="-s"
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=$1 -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  done
  echo "${flags}"
}

# use_envtest builds envtest's kube-apiserver and etcd once and exports
# KUBEBUILDER_ASSETS.
use_envtest() {
  KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
  export KUBEBUILDER_ASSETS
}

# use_private_dockerd starts the private dockerd (unless it runs already),
# exports TEST_DOCKER_HOST, and stops it on exit if it started it here and
# KEEP_DOCKERD is not 1.
use_private_dockerd() {
  local started_here=false
  hack/dockerd.sh status || started_here=true
  TEST_DOCKER_HOST="$(hack/dockerd.sh start)"
  export TEST_DOCKER_HOST
  if [[ "${started_here}" == true && "${KEEP_DOCKERD:-}" != 1 ]]; then
    STOP_PRIVATE_DOCKERD=1
  fi
  trap stop_started EXIT
}

# stop_started stops, on exit, the engines and the test node this script
# started.
stop_started() {
  if [[ "${STOP_PRIVATE_DOCKERD:-}" == 1 ]]; then
    hack/dockerd.sh stop
  fi
  stop_small_dockerd
  stop_small_docker29
  stop_docker29_classic
  stop_docker29
  stop_containerd
  stop_crio
  stop_test_node
}

# use_private_containerd builds (once, hack/cri-assets.sh) and starts a
# private containerd 2 with its CRI (hack/containerd.sh), exports
# TEST_CRI_ENDPOINT, and stops it on exit if it started it here and
# KEEP_DOCKERD is not 1.
use_private_containerd() {
  trap stop_started EXIT
  hack/containerd.sh status || STOP_PRIVATE_CONTAINERD=1
  TEST_CRI_ENDPOINT="$(hack/containerd.sh start)"
  # containerd's own client (ctr), for tests of containers other clients make.
  TEST_CRI_BIN_DIR="$(hack/cri-assets.sh)"
  export TEST_CRI_ENDPOINT TEST_CRI_BIN_DIR
}

stop_containerd() {
  if [[ "${STOP_PRIVATE_CONTAINERD:-}" == 1 && "${KEEP_DOCKERD:-}" != 1 ]]; then
    hack/containerd.sh stop
  fi
  if [[ -n "${IMAGECLEANUP_SMALL_CONTAINERD_DIR:-}" && "${KEEP_DOCKERD:-}" != 1 ]]; then
    IMAGECLEANUP_CONTAINERD_DIR="${IMAGECLEANUP_SMALL_CONTAINERD_DIR}" IMAGECLEANUP_CONTAINERD_DATA_SIZE=300m hack/containerd.sh stop
  fi
}

# use_small_containerd starts a second private containerd whose root, where
# its images are, is a 300 MiB tmpfs (disk-pressure tests), exports
# TEST_SMALL_CRI_ENDPOINT, and stops it on exit unless KEEP_DOCKERD is 1.
use_small_containerd() {
  trap stop_started EXIT
  export IMAGECLEANUP_SMALL_CONTAINERD_DIR="/tmp/imagecleanup-containerd-small-$(printf '%s' "$(pwd)" | sha256sum | cut -c1-10)"
  TEST_SMALL_CRI_ENDPOINT="$(IMAGECLEANUP_CONTAINERD_DIR="${IMAGECLEANUP_SMALL_CONTAINERD_DIR}" IMAGECLEANUP_CONTAINERD_DATA_SIZE=300m hack/containerd.sh start)"
  export TEST_SMALL_CRI_ENDPOINT
}

# use_private_crio builds (once, hack/crio-assets.sh) and starts a private
# CRI-O (hack/crio.sh) and a small one whose storage root is a 300 MiB tmpfs
# (disk-pressure tests), exports TEST_CRIO_ENDPOINT and
# TEST_SMALL_CRIO_ENDPOINT, and stops both on exit unless KEEP_DOCKERD is 1.
use_private_crio() {
  trap stop_started EXIT
  hack/crio.sh status || STOP_PRIVATE_CRIO=1
  TEST_CRIO_ENDPOINT="$(hack/crio.sh start)"
  export IMAGECLEANUP_SMALL_CRIO_DIR="/tmp/imagecleanup-crio-small-$(printf '%s' "$(pwd)" | sha256sum | cut -c1-10)"
  TEST_SMALL_CRIO_ENDPOINT="$(IMAGECLEANUP_CRIO_DIR="${IMAGECLEANUP_SMALL_CRIO_DIR}" IMAGECLEANUP_CRIO_DATA_SIZE=300m hack/crio.sh start)"
  export TEST_CRIO_ENDPOINT TEST_SMALL_CRIO_ENDPOINT
}

stop_crio() {
  if [[ "${STOP_PRIVATE_CRIO:-}" == 1 && "${KEEP_DOCKERD:-}" != 1 ]]; then
    hack/crio.sh stop
  fi
  if [[ -n "${IMAGECLEANUP_SMALL_CRIO_DIR:-}" && "${KEEP_DOCKERD:-}" != 1 ]]; then
    IMAGECLEANUP_CRIO_DIR="${IMAGECLEANUP_SMALL_CRIO_DIR}" IMAGECLEANUP_CRIO_DATA_SIZE=300m hack/crio.sh stop
  fi
}

# use_docker29 builds (once, hack/docker29-assets.sh) and starts a private
# Docker 29 with its containerd image store (its default on a new data
# root), exports TEST_DOCKER29_HOST, and stops it on exit unless
# KEEP_DOCKERD is 1.
use_docker29() {
  trap stop_started EXIT
  local bins
  bins="$(hack/docker29-assets.sh)"
  export IMAGECLEANUP_DOCKER29_DIR="/tmp/imagecleanup-docker29-$(printf '%s' "$(pwd)" | sha256sum | cut -c1-10)"
  export IMAGECLEANUP_DOCKER29_BIN_DIR="${bins}"
  TEST_DOCKER29_HOST="$(IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_DOCKER29_DIR}" IMAGECLEANUP_DOCKERD_BIN_DIR="${bins}" hack/dockerd.sh start)"
  export TEST_DOCKER29_HOST
}

# use_docker29_classic starts a third private engine (after use_docker29):
# Docker 29 with the classic overlay2 store (--feature
# containerd-snapshotter=false), exports TEST_DOCKER29_CLASSIC_HOST, and stops
# it on exit unless KEEP_DOCKERD is 1.
use_docker29_classic() {
  trap stop_started EXIT
  export IMAGECLEANUP_DOCKER29_CLASSIC_DIR="/tmp/imagecleanup-docker29-classic-$(printf '%s' "$(pwd)" | sha256sum | cut -c1-10)"
  TEST_DOCKER29_CLASSIC_HOST="$(IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_DOCKER29_CLASSIC_DIR}" IMAGECLEANUP_DOCKERD_BIN_DIR="${IMAGECLEANUP_DOCKER29_BIN_DIR}" \
    IMAGECLEANUP_DOCKERD_ARGS="--feature containerd-snapshotter=false" hack/dockerd.sh start)"
  export TEST_DOCKER29_CLASSIC_HOST
}

stop_docker29_classic() {
  if [[ -n "${IMAGECLEANUP_DOCKER29_CLASSIC_DIR:-}" && "${KEEP_DOCKERD:-}" != 1 ]]; then
    IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_DOCKER29_CLASSIC_DIR}" IMAGECLEANUP_DOCKERD_BIN_DIR="${IMAGECLEANUP_DOCKER29_BIN_DIR}" hack/dockerd.sh stop
  fi
}

stop_docker29() {
  if [[ -n "${IMAGECLEANUP_DOCKER29_DIR:-}" && "${KEEP_DOCKERD:-}" != 1 ]]; then
    IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_DOCKER29_DIR}" IMAGECLEANUP_DOCKERD_BIN_DIR="${IMAGECLEANUP_DOCKER29_BIN_DIR}" hack/dockerd.sh stop
  fi
}

# use_test_node brings up the single-node cluster (hack/cluster.sh) on
# RUNTIME (docker, containerd or crio; default docker) unless it runs so already,
# and exports its TEST_CLUSTER_* variables. A node that runs the other
# runtime goes down first, and must leave nothing behind
# (TEST_NODE_LEFTOVERS=1 otherwise). On exit the node goes down (and is
# checked the same way) if it was started here and KEEP_CLUSTER is not 1.
use_test_node() {
  local want="${1:-docker}" env
  if hack/cluster.sh status && [[ "$(hack/cluster.sh env | sed -n 's/^export TEST_CLUSTER_RUNTIME=//p')" != "${want}" ]]; then
    hack/cluster.sh down
    hack/cluster.sh check-clean || TEST_NODE_LEFTOVERS=1
  fi
  trap stop_started EXIT
  hack/cluster.sh status || STOP_TEST_NODE=1
  env="$(IMAGECLEANUP_NODE_RUNTIME="${want}" hack/cluster.sh up)"
  eval "${env}"
}

stop_test_node() {
  if [[ "${STOP_TEST_NODE:-}" == 1 && "${KEEP_CLUSTER:-}" != 1 ]]; then
    hack/cluster.sh down
    hack/cluster.sh check-clean || TEST_NODE_LEFTOVERS=1
  fi
}

# use_small_dockerd starts a second private dockerd whose data root is a
# 300 MiB tmpfs (disk-pressure tests), exports TEST_SMALL_DOCKER_HOST and
# TEST_SMALL_DATA_ROOT, and stops it on exit unless KEEP_DOCKERD is 1.
use_small_dockerd() {
  trap stop_started EXIT
  local dir="/tmp/imagecleanup-dockerd-small-$(printf '%s' "$(pwd)" | sha256sum | cut -c1-10)"
  export IMAGECLEANUP_SMALL_DOCKERD_DIR="${dir}"
  TEST_SMALL_DOCKER_HOST="$(IMAGECLEANUP_DOCKERD_DIR="${dir}" IMAGECLEANUP_DOCKERD_DATA_SIZE=300m hack/dockerd.sh start)"
  TEST_SMALL_DATA_ROOT="$(IMAGECLEANUP_DOCKERD_DIR="${dir}" hack/dockerd.sh data-root)"
  TEST_SMALL_IMAGE_ROOT="$(IMAGECLEANUP_DOCKERD_DIR="${dir}" hack/dockerd.sh image-root)"
  export TEST_SMALL_DOCKER_HOST TEST_SMALL_DATA_ROOT TEST_SMALL_IMAGE_ROOT
}

# use_small_docker29 starts a small Docker 29 (after use_docker29): its data
# root on the big disk, containerd's root, where its images are, on a
# 300 MiB tmpfs; exports TEST_SMALL29_DOCKER_HOST, TEST_SMALL29_DATA_ROOT and
# TEST_SMALL29_IMAGE_ROOT, and stops it on exit unless KEEP_DOCKERD is 1.
use_small_docker29() {
  trap stop_started EXIT
  export IMAGECLEANUP_SMALL29_DIR="/tmp/imagecleanup-docker29-small-$(printf '%s' "$(pwd)" | sha256sum | cut -c1-10)"
  local env=(IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_SMALL29_DIR}" IMAGECLEANUP_DOCKERD_BIN_DIR="${IMAGECLEANUP_DOCKER29_BIN_DIR}" IMAGECLEANUP_DOCKERD_DATA_SIZE=300m)
  TEST_SMALL29_DOCKER_HOST="$(env "${env[@]}" hack/dockerd.sh start)"
  TEST_SMALL29_DATA_ROOT="$(env "${env[@]}" hack/dockerd.sh data-root)"
  TEST_SMALL29_IMAGE_ROOT="$(env "${env[@]}" hack/dockerd.sh image-root)"
  export TEST_SMALL29_DOCKER_HOST TEST_SMALL29_DATA_ROOT TEST_SMALL29_IMAGE_ROOT
}

stop_small_docker29() {
  if [[ -n "${IMAGECLEANUP_SMALL29_DIR:-}" && "${KEEP_DOCKERD:-}" != 1 ]]; then
    IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_SMALL29_DIR}" IMAGECLEANUP_DOCKERD_BIN_DIR="${IMAGECLEANUP_DOCKER29_BIN_DIR}" \
      IMAGECLEANUP_DOCKERD_DATA_SIZE=300m hack/dockerd.sh stop
  fi
}

stop_small_dockerd() {
  if [[ -n "${IMAGECLEANUP_SMALL_DOCKERD_DIR:-}" && "${KEEP_DOCKERD:-}" != 1 ]]; then
    IMAGECLEANUP_DOCKERD_DIR="${IMAGECLEANUP_SMALL_DOCKERD_DIR}" hack/dockerd.sh stop
  fi
}

# module_source copies module $1 at version $2 from the Go module proxy into
# folder $3, writable: it is then built as its own main module, so that its
# go.mod (replaces included) holds.
module_source() {
  local module="$1" version="$2" dest="$3" dir
  dir="$(go mod download -json "${module}@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "${dir}" ]] || { echo "cannot download ${module}@${version}" >&2; return 1; }
  cp -r "${dir}" "${dest}"
  chmod -R u+w "${dest}"
}

# k8s_wrapper_module writes, into folder $1, a throwaway Go module that requires
# k8s.io/kubernetes $2 (plus the "module version" pairs that follow) with the
# k8s.io/* staging modules pointed at their published v0.x versions, as
# kubernetes' own go.mod points them at ./staging. Packages to build are named
# in a tools.go that the caller writes.
k8s_wrapper_module() {
  local dir="$1" version="$2"
  shift 2
  local k8s_mod
  k8s_mod="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "${k8s_mod}" ]] || { echo "cannot download k8s.io/kubernetes@${version}" >&2; return 1; }
  {
    echo "module k8swrapper"
    echo
    echo "go 1.26.0"
    echo
    echo "require ("
    echo "  k8s.io/kubernetes ${version}"
    while [[ $# -gt 0 ]]; do echo "  $1 $2"; shift 2; done
    echo ")"
    echo
    echo "replace ("
    grep -E '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "${k8s_mod}" |
      awk -v v="v0.${version#v1.}" '{ printf "  %s => %s %s\n", $1, $1, v }'
    echo ")"
  } >"${dir}/go.mod"
}
