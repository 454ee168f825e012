#!/usr/bin/env bash
# A private containerd 2 with its CRI, for the CRI tier of the tests.
#
#   hack/containerd.sh start   start it (no-op when it answers); prints its CRI endpoint
#   hack/containerd.sh stop    stop it, its pods and containers (only this private one)
#   hack/containerd.sh status  exit 0 when its CRI answers, 1 otherwise
#
# Everything lives under one state folder (root, state, socket, pid file,
# log), by default /tmp/imagecleanup-containerd-<hash of this checkout>, so
# a system containerd and its socket are never used, started or stopped.
# The binaries (containerd, its runc shim, runc ≥ 1.2, ctr, crictl) come from
# hack/cri-assets.sh, first in containerd's PATH (it starts its shims, and
# they runc, from there). No registry can be reached: the sandbox image the
# CRI pins is made here (hack/pauseimage) and imported with ctr. It is named
# imagecleanup.test/sandbox:3.10, not …/pause, so that in the tests only its
# pin keeps it (the planner also protects anything named pause). Pods run
# with host networking: there is no CNI.
#
# IMAGECLEANUP_CONTAINERD_DIR names another state folder (a second engine);
# IMAGECLEANUP_CONTAINERD_DATA_SIZE (e.g. 300m) puts containerd's root on a
# tmpfs of that size, made at start and removed at stop: a small disk that
# tests fill past a watermark. IMAGECLEANUP_CONTAINERD_SANDBOX_IMAGE names
# the sandbox image instead (the test node's pause image), and
# IMAGECLEANUP_CONTAINERD_CNI_CONF_DIR gives pods a network through the CNI
# plugins of /usr/lib/cni (the test node's bridge) instead of the host's.
# Needs root, as containerd does.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
checkout_hash="$(printf '%s' "${root}" | sha256sum | cut -c1-10)"
state="${IMAGECLEANUP_CONTAINERD_DIR:-/tmp/imagecleanup-containerd-${checkout_hash}}"
socket="${state}/containerd.sock"
endpoint="unix://${socket}"
pidfile="${state}/containerd.pid"
logfile="${state}/containerd.log"
data="${state}/root"
sandbox_image="${IMAGECLEANUP_CONTAINERD_SANDBOX_IMAGE:-imagecleanup.test/sandbox:3.10}"
cni_conf_dir="${IMAGECLEANUP_CONTAINERD_CNI_CONF_DIR:-${state}/cni}"

log() { echo "containerd.sh: $*" >&2; }

bins() { "${root}/hack/cri-assets.sh"; }

answers() {
  [[ -S "${socket}" ]] && timeout 10 "$(bins)/crictl" --runtime-endpoint "${endpoint}" --image-endpoint "${endpoint}" \
    --timeout 5s version >/dev/null 2>&1
}

start() {
  local bin_dir
  bin_dir="$(bins)"
  if answers; then
    # A test gone wrong may have removed the sandbox image: put it back.
    import_sandbox_image "${bin_dir}"
    echo "${endpoint}"
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "containerd needs root"
    exit 1
  fi
  if running_pid "${pidfile}" >/dev/null; then
    log "containerd runs but its CRI does not answer; stopping it"
    stop
  fi
  mkdir -p "${data}" "${state}/state" "${state}/certs.d" "${state}/cni"
  if [[ -n "${IMAGECLEANUP_CONTAINERD_DATA_SIZE:-}" ]] && ! mountpoint -q "${data}"; then
    mount -t tmpfs -o "size=${IMAGECLEANUP_CONTAINERD_DATA_SIZE}" tmpfs "${data}"
  fi
  # restrict_oom_score_adj: the CRI gives sandboxes oom_score_adj -998,
  # which this machine (no CAP_SYS_RESOURCE) refuses; restricted, they get
  # containerd's own. Registries on 127.0.0.1 (the tests') are plain HTTP.
  cat >"${state}/config.toml" <<TOML
version = 3
root = "${data}"
state = "${state}/state"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${sandbox_image}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "${state}/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    conf_dir = "${cni_conf_dir}"
    bin_dirs = ["/usr/lib/cni"]
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
  rm -f "${socket}" "${pidfile}"
  PATH="${bin_dir}:${PATH}" setsid "${bin_dir}/containerd" --config "${state}/config.toml" \
    </dev/null >"${logfile}" 2>&1 &
  echo $! >"${pidfile}"
  for _ in $(seq 1 60); do
    if answers; then
      import_sandbox_image "${bin_dir}"
      log "private containerd ready at ${endpoint} (log: ${logfile})"
      echo "${endpoint}"
      return
    fi
    sleep 0.5
  done
  log "containerd's CRI did not answer within 30s; last lines of ${logfile}:"
  tail -n 20 "${logfile}" >&2 || true
  exit 1
}

# import_sandbox_image puts the pinned sandbox image in the CRI's namespace.
import_sandbox_image() {
  local bin_dir="$1" archive="${state}/pause.tar"
  if "${bin_dir}/ctr" --address "${socket}" -n k8s.io images ls -q 2>/dev/null | grep -qx "${sandbox_image}"; then
    return
  fi
  (cd "${root}" && go run ./hack/pauseimage -name "${sandbox_image}" -o "${archive}")
  local out
  if ! out="$("${bin_dir}/ctr" --address "${socket}" -n k8s.io images import "${archive}" 2>&1)"; then
    log "importing the sandbox image failed: ${out}"
    exit 1
  fi
}

stop() {
  local bin_dir
  bin_dir="$(bins)"
  if answers; then
    # Pods first: their shims outlive containerd otherwise.
    local crictl=("${bin_dir}/crictl" --runtime-endpoint "${endpoint}" --image-endpoint "${endpoint}" --timeout 20s)
    "${crictl[@]}" rmp -af >/dev/null 2>&1 || true
    "${crictl[@]}" rm -af >/dev/null 2>&1 || true
  fi
  stop_pid "${pidfile}"
  # Shims left behind (a killed containerd) hold their containers' mounts.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address ${socket}" 2>/dev/null || true
  rm -f "${pidfile}" "${socket}" "${socket}.ttrpc"
  { grep -o " ${state}/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "${m}" || true; done
  if mountpoint -q "${data}" 2>/dev/null; then
    umount -l "${data}" || true
  fi
  log "private containerd stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
