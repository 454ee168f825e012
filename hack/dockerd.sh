#!/usr/bin/env bash
# A private Docker engine for tests and the demo.
#
#   hack/dockerd.sh start   start it (no-op when it already runs); prints DOCKER_HOST
#   hack/dockerd.sh stop    stop it and its containers (only this private engine)
#   hack/dockerd.sh env     print `export DOCKER_HOST=...` for eval
#   hack/dockerd.sh status  exit 0 when it answers, 1 otherwise
#
# Everything lives under one state folder (data root, exec root, socket, pid
# file, log), by default /tmp/imagecleanup-dockerd-<hash of this checkout>, so
# two checkouts never share an engine and the machine's default daemon and
# /var/run/docker.sock are never used, started or stopped. Unix socket paths
# are limited to 108 bytes, hence /tmp rather than the checkout itself.
#
# IMAGECLEANUP_DOCKERD_DATA_SIZE (e.g. 300m) puts the images' filesystem on
# a tmpfs of that size, made at start and removed at stop: a small disk that
# tests fill past a watermark. That is the data root, or, for an engine with
# its own containerd (below), containerd's root: the containerd image store
# keeps the images there, and the data root stays on the big disk. IMAGECLEANUP_DOCKERD_ARGS adds dockerd flags (the
# test node's runtime, hack/cluster.sh).
#
# IMAGECLEANUP_DOCKERD_BIN_DIR runs another engine: a folder with dockerd,
# containerd, containerd-shim-runc-v2 and runc (hack/docker29-assets.sh
# builds Docker 29 so). Its own containerd is then started first, under the
# state folder, with that folder first in its PATH (containerd starts its
# shims, and they runc, from PATH); its root is under the data root,
# containerd/daemon, where dockerd puts the containerd it runs itself
# (beside the data root on a small disk).
#
# Installs Debian's docker.io when dockerd is missing. Needs root, as dockerd
# does. The machine allows no bridge or iptables, so containers run with
# --network none (or host).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
checkout_hash="$(printf '%s' "${root}" | sha256sum | cut -c1-10)"
state="${IMAGECLEANUP_DOCKERD_DIR:-/tmp/imagecleanup-dockerd-${checkout_hash}}"
socket="${state}/docker.sock"
pidfile="${state}/dockerd.pid"
logfile="${state}/dockerd.log"
docker_host="unix://${socket}"
bin_dir="${IMAGECLEANUP_DOCKERD_BIN_DIR:-}"
containerd_socket="${state}/containerd/containerd.sock"
containerd_pidfile="${state}/containerd.pid"
# containerd's root: under the data root, where dockerd puts the containerd
# it runs itself; beside it for a small disk (dockerd 29 bind-mounts its data
# root onto itself, which would hide a tmpfs mounted inside it).
containerd_root="${state}/data/containerd/daemon"
if [[ -n "${IMAGECLEANUP_DOCKERD_DATA_SIZE:-}" ]]; then
  containerd_root="${state}/containerd/root"
fi
# image_root is the folder whose filesystem holds the images.
image_root="${state}/data"
if [[ -n "${bin_dir}" ]]; then
  image_root="${containerd_root}"
fi

log() { echo "dockerd.sh: $*" >&2; }

ensure_installed() {
  if command -v docker >/dev/null 2>&1 && { [[ -n "${bin_dir}" ]] || command -v dockerd >/dev/null 2>&1; }; then
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "dockerd is missing; install Debian's docker.io (needs root)"
    exit 1
  fi
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # No recommends: we never want the package's own service or the default socket.
  apt-get install -y -qq --no-install-recommends docker.io >&2
}

answers() {
  [[ -S "${socket}" ]] && DOCKER_HOST="${docker_host}" timeout 5 docker version >/dev/null 2>&1
}

running_pid() {
  [[ -f "${pidfile}" ]] || return 1
  local pid
  pid="$(cat "${pidfile}")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null && echo "${pid}"
}

start() {
  if answers; then
    echo "${docker_host}"
    return
  fi
  ensure_installed
  if [[ "$(id -u)" != 0 ]]; then
    log "dockerd needs root"
    exit 1
  fi
  # A dead engine can leave a pid file or a socket behind; both would stop a new one.
  if pid="$(running_pid)"; then
    log "dockerd ${pid} runs but does not answer; stopping it"
    stop
  fi
  mkdir -p "${state}/data" "${state}/exec" "${image_root}"
  if [[ -n "${IMAGECLEANUP_DOCKERD_DATA_SIZE:-}" ]] && ! mountpoint -q "${image_root}"; then
    mount -t tmpfs -o "size=${IMAGECLEANUP_DOCKERD_DATA_SIZE}" tmpfs "${image_root}"
  fi
  rm -f "${socket}" "${pidfile}"
  local dockerd=dockerd extra=()
  if [[ -n "${bin_dir}" ]]; then
    start_containerd
    dockerd="${bin_dir}/dockerd"
    extra=(--containerd "${containerd_socket}")
  fi
  # Own containerd too (under the exec root), so a system containerd, if any,
  # is never shared: its "moby" namespace belongs to the default engine.
  # shellcheck disable=SC2086 # IMAGECLEANUP_DOCKERD_ARGS is a list of flags
  PATH="${bin_dir:+${bin_dir}:}${PATH}" setsid "${dockerd}" "${extra[@]}" \
    --host "${docker_host}" \
    --data-root "${state}/data" \
    --exec-root "${state}/exec" \
    --pidfile "${pidfile}" \
    --containerd-namespace imagecleanup-test \
    --containerd-plugins-namespace imagecleanup-test-plugins \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --userland-proxy=false \
    --log-level=warn \
    ${IMAGECLEANUP_DOCKERD_ARGS:-} \
    </dev/null >"${logfile}" 2>&1 &
  for _ in $(seq 1 120); do
    if answers; then
      log "private dockerd ready at ${docker_host} (log: ${logfile})"
      echo "${docker_host}"
      return
    fi
    sleep 0.5
  done
  log "dockerd did not answer within 60s; last lines of ${logfile}:"
  tail -n 20 "${logfile}" >&2 || true
  exit 1
}

# start_containerd starts the engine's own containerd (IMAGECLEANUP_DOCKERD_BIN_DIR):
# its root, state and socket under the state folder, the CRI plugin off (the
# engine does not need it).
start_containerd() {
  if [[ -f "${containerd_pidfile}" ]] && kill -0 "$(cat "${containerd_pidfile}")" 2>/dev/null; then
    return
  fi
  mkdir -p "${state}/containerd"
  cat >"${state}/containerd.toml" <<TOML
version = 3
root = "${containerd_root}"
state = "${state}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]
[grpc]
  address = "${containerd_socket}"
[ttrpc]
  address = "${containerd_socket}.ttrpc"
[debug]
  level = "warn"
TOML
  rm -f "${containerd_socket}"
  PATH="${bin_dir}:${PATH}" setsid "${bin_dir}/containerd" --config "${state}/containerd.toml" \
    </dev/null >"${state}/containerd.log" 2>&1 &
  echo $! >"${containerd_pidfile}"
  for _ in $(seq 1 60); do
    [[ -S "${containerd_socket}" ]] && return
    sleep 0.5
  done
  log "containerd did not start within 30s; last lines of ${state}/containerd.log:"
  tail -n 20 "${state}/containerd.log" >&2 || true
  exit 1
}

stop_containerd() {
  [[ -f "${containerd_pidfile}" ]] || return 0
  local pid
  pid="$(cat "${containerd_pidfile}")"
  kill "${pid}" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "${pid}" 2>/dev/null || true
  rm -f "${containerd_pidfile}" "${containerd_socket}"
  { grep -o " ${state}/containerd/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "${m}" || true; done
}

# unmount_data removes the images' tmpfs, if there is one.
unmount_data() {
  if mountpoint -q "${image_root}" 2>/dev/null; then
    umount -l "${image_root}" || true
  fi
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "${socket}" "${pidfile}"
    stop_containerd
    unmount_data
    return
  fi
  if answers; then
    # Running test containers would otherwise be left to containerd's shims.
    local ids
    ids="$(DOCKER_HOST="${docker_host}" docker ps -q || true)"
    if [[ -n "${ids}" ]]; then
      # shellcheck disable=SC2086
      DOCKER_HOST="${docker_host}" docker kill ${ids} >/dev/null 2>&1 || true
    fi
  fi
  kill "${pid}" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "${pid}" 2>/dev/null; then
    log "dockerd ${pid} did not stop in 30s; killing it"
    kill -9 "${pid}" 2>/dev/null || true
  fi
  rm -f "${socket}" "${pidfile}"
  # Mounts of the engine's containers under the data root go first.
  { grep -o " ${state}/data/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
    [[ "${m}" == "${image_root}" ]] || umount -l "${m}" || true
  done
  stop_containerd
  unmount_data
  # Docker 29 bind-mounts its data root onto itself; a killed one leaves it.
  if [[ "${image_root}" != "${state}/data" ]] && mountpoint -q "${state}/data" 2>/dev/null; then
    umount -l "${state}/data" || true
  fi
  log "private dockerd stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export DOCKER_HOST=${docker_host}" ;;
  data-root) echo "${state}/data" ;;
  image-root) echo "${image_root}" ;;
  status) answers ;;
  *)
    echo "usage: $0 start|stop|env|status|data-root|image-root" >&2
    exit 2
    ;;
esac
