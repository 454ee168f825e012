#!/usr/bin/env bash
# A private CRI-O, for the CRI tier of the tests on CRI-O.
#
#   hack/crio.sh start   start it (no-op when it answers); prints its CRI endpoint
#   hack/crio.sh stop    stop it, its pods and containers (only this private one)
#   hack/crio.sh status  exit 0 when its CRI answers, 1 otherwise
#   hack/crio.sh load ARCHIVE REF...
#                        pull REF... from the images of a docker-save archive
#                        (served as the sandbox image is; their domains must
#                        be mapped, IMAGECLEANUP_CRIO_MAPPED_DOMAINS)
#
# Everything lives under one state folder (storage root, run root, socket,
# pid file, log, configuration), by default /tmp/imagecleanup-crio-<hash of
# this checkout>, so a system CRI-O, its socket and /etc/containers are never
# used, started or stopped. The binaries come from hack/crio-assets.sh
# (crio, pinns, runc, crictl) and Debian (conmon). No registry can be
# reached, and CRI-O can only pull: the sandbox image it pins is served
# once, at start, by hack/pauseimage on a loopback port that its
# registries.conf maps imagecleanup.test to, and pulled. It is named
# imagecleanup.test/sandbox:3.10, not …/pause, so that in the tests only its
# pin keeps it. Registries on 127.0.0.1 (the tests') are plain HTTP. Pods
# run with host networking: there is no CNI.
#
# IMAGECLEANUP_CRIO_DIR names another state folder (a second instance);
# IMAGECLEANUP_CRIO_SANDBOX_IMAGE another sandbox image (the test node's
# registry.k8s.io/pause:3.10); IMAGECLEANUP_CRIO_CNI_CONF_DIR a folder of
# CNI configurations (the test node's bridge; none: host networking only);
# IMAGECLEANUP_CRIO_MAPPED_DOMAINS more registry domains (space-separated,
# e.g. docker.io) served by hack/pauseimage when loading;
# IMAGECLEANUP_CRIO_DATA_SIZE (e.g. 300m) puts the storage root on a tmpfs
# of that size, made at start and removed at stop: a small disk that tests
# fill past a watermark. Without CAP_SYS_RESOURCE, or without a hugetlb
# cgroup controller (this machine lacks both), containers run through
# hack/runc-clamp, which raises the negative oom_score_adj of pod sandboxes
# to 0 and drops hugepage limits. Needs root, as CRI-O does.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
checkout_hash="$(printf '%s' "${root}" | sha256sum | cut -c1-10)"
state="${IMAGECLEANUP_CRIO_DIR:-/tmp/imagecleanup-crio-${checkout_hash}}"
socket="${state}/crio.sock"
endpoint="unix://${socket}"
pidfile="${state}/crio.pid"
logfile="${state}/crio.log"
data="${state}/storage"
sandbox_image="${IMAGECLEANUP_CRIO_SANDBOX_IMAGE:-imagecleanup.test/sandbox:3.10}"
cni_conf_dir="${IMAGECLEANUP_CRIO_CNI_CONF_DIR:-${state}/cni}"

log() { echo "crio.sh: $*" >&2; }

bins() { "${root}/hack/crio-assets.sh"; }

crictl() {
  timeout 30 "${bin_dir}/crictl" --runtime-endpoint "${endpoint}" --image-endpoint "${endpoint}" --timeout 20s "$@"
}

answers() {
  [[ -S "${socket}" ]] && bin_dir="$(bins)" && crictl version >/dev/null 2>&1
}

# hugetlb_available: the machine's cgroups (v2 lists its controllers, v1
# mounts each) can limit hugepages, which CRI-O sets for the kubelet's
# containers.
hugetlb_available() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    grep -qw hugetlb /sys/fs/cgroup/cgroup.controllers
  else
    [[ -d /sys/fs/cgroup/hugetlb ]]
  fi
}

# domain_of REF prints the registry domain of an image reference
# (docker.io for a name without one).
domain_of() {
  local first="${1%%/*}"
  if [[ "$1" == */* && ("${first}" == *.* || "${first}" == *:* || "${first}" == localhost) ]]; then
    echo "${first}"
  else
    echo docker.io
  fi
}

write_config() {
  local runtime_path="${bin_dir}/runc"
  if ! has_cap_sys_resource || ! hugetlb_available; then
    (cd "${root}" && CGO_ENABLED=0 go build -o "${state}/runc-clamp" ./hack/runc-clamp)
    runtime_path="${state}/runc-clamp"
  fi
  cat >"${state}/crio.conf" <<TOML
[crio]
root = "${data}"
runroot = "${state}/run"
storage_driver = "overlay"
log_dir = "${state}/logs"
version_file = "${state}/version"
version_file_persist = "${state}/version-persist"
clean_shutdown_file = "${state}/clean.shutdown"
[crio.api]
listen = "${socket}"
stream_address = "127.0.0.1"
stream_port = "0"
[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
pinns_path = "${bin_dir}/pinns"
container_exits_dir = "${state}/exits"
container_attach_socket_dir = "${state}/attach"
namespaces_dir = "${state}/ns"
hooks_dir = []
[crio.runtime.runtimes.runc]
runtime_path = "${runtime_path}"
runtime_type = "oci"
runtime_root = "${state}/runc"
monitor_path = "$(command -v conmon)"
monitor_cgroup = "pod"
monitor_env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "RUNC_CLAMP_RUNC=${bin_dir}/runc"]
[crio.image]
pause_image = "${sandbox_image}"
# "": the sandbox image's own entrypoint (the sleeper), not /pause
pause_command = ""
signature_policy = "${state}/policy.json"
[crio.network]
network_dir = "${cni_conf_dir}"
plugin_dirs = ["/usr/lib/cni"]
[crio.metrics]
enable_metrics = false
TOML
  cat >"${state}/policy.json" <<'JSON'
{"default": [{"type": "insecureAcceptAnything"}]}
JSON
  : >"${state}/storage.conf"
}

# registries_conf maps the sandbox image's registry domain (and
# IMAGECLEANUP_CRIO_MAPPED_DOMAINS) to the loopback address hack/pauseimage
# serves on whenever something must be pulled (chosen at the first start,
# kept in the state folder: CRI-O reads registries.conf once), and takes
# 127.0.0.1's registries as plain HTTP. Short names are docker.io's, as
# the kubelet's pods name them.
registries_conf() {
  local domain
  {
    echo 'unqualified-search-registries = ["docker.io"]'
    echo '[[registry]]'
    echo 'location = "127.0.0.1"'
    echo 'insecure = true'
    for domain in $(printf '%s\n' imagecleanup.test "$(domain_of "${sandbox_image}")" ${IMAGECLEANUP_CRIO_MAPPED_DOMAINS:-} | sort -u); do
      echo '[[registry]]'
      echo "prefix = \"${domain}\""
      echo "location = \"$(cat "${state}/sandbox-registry")\""
      echo 'insecure = true'
    done
  } >"${state}/registries.conf"
}

# serve_sandbox_image serves the sandbox image at the given address, and
# the images of the docker-save archive $2 if given, until stop_serving,
# and writes where into ${state}/sandbox-registry.
serve_sandbox_image() {
  local address=""
  (cd "${root}" && go build -o "${state}/pauseimage" ./hack/pauseimage)
  rm -f "${state}/pauseimage.address"
  "${state}/pauseimage" -name "${sandbox_image}" -serve -addr "$1" -archive "${2:-}" >"${state}/pauseimage.address" &
  server=$!
  for _ in $(seq 1 50); do
    address="$(cat "${state}/pauseimage.address")"
    [[ -n "${address}" ]] && break
    kill -0 "${server}" 2>/dev/null || break
    sleep 0.2
  done
  if [[ -z "${address}" ]]; then
    log "cannot serve the sandbox image at $1"
    exit 1
  fi
  echo "${address}" >"${state}/sandbox-registry"
}

stop_serving() {
  kill "${server}" 2>/dev/null || true
  wait "${server}" 2>/dev/null || true
}

# pull_sandbox_image puts the pinned sandbox image in CRI-O's storage,
# served where registries.conf says.
pull_sandbox_image() {
  if crictl inspecti "${sandbox_image}" >/dev/null 2>&1; then
    return
  fi
  local out status=0 server
  serve_sandbox_image "$(cat "${state}/sandbox-registry")"
  out="$(crictl pull "${sandbox_image}" 2>&1)" || status=$?
  stop_serving
  if [[ ${status} != 0 ]]; then
    log "pulling the sandbox image failed: ${out}"
    exit 1
  fi
}

start() {
  bin_dir="$(bins)"
  if answers; then
    # A test gone wrong may have removed the sandbox image: put it back.
    pull_sandbox_image
    echo "${endpoint}"
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "CRI-O needs root"
    exit 1
  fi
  if running_pid "${pidfile}" >/dev/null; then
    log "CRI-O runs but its CRI does not answer; stopping it"
    stop
  fi
  mkdir -p "${data}" "${state}/run" "${state}/logs" "${state}/exits" "${state}/attach" "${state}/ns" "${state}/cni" \
    "${state}/crio.conf.d" "${state}/registries.conf.d"
  if [[ -n "${IMAGECLEANUP_CRIO_DATA_SIZE:-}" ]] && ! mountpoint -q "${data}"; then
    mount -t tmpfs -o "size=${IMAGECLEANUP_CRIO_DATA_SIZE}" tmpfs "${data}"
  fi
  write_config
  if [[ ! -s "${state}/sandbox-registry" ]]; then
    local server
    serve_sandbox_image 127.0.0.1:0 # for a free port, kept from now on
    stop_serving
  fi
  registries_conf
  rm -f "${socket}" "${pidfile}"
  CONTAINERS_STORAGE_CONF="${state}/storage.conf" setsid "${bin_dir}/crio" --config "${state}/crio.conf" \
    --config-dir "${state}/crio.conf.d" --registries-conf "${state}/registries.conf" \
    --registries-conf-dir "${state}/registries.conf.d" --log-level warn \
    </dev/null >"${logfile}" 2>&1 &
  echo $! >"${pidfile}"
  for _ in $(seq 1 60); do
    if answers; then
      pull_sandbox_image
      log "private CRI-O ready at ${endpoint} (log: ${logfile})"
      echo "${endpoint}"
      return
    fi
    sleep 0.5
  done
  log "CRI-O did not answer within 30s; last lines of ${logfile}:"
  tail -n 20 "${logfile}" >&2 || true
  exit 1
}

# load ARCHIVE REF...: pulls each REF from the images of the archive.
load() {
  local archive="${1:?usage: hack/crio.sh load ARCHIVE REF...}" ref out status=0 server
  shift
  bin_dir="$(bins)"
  answers || { log "CRI-O does not answer: hack/crio.sh start first"; exit 1; }
  serve_sandbox_image "$(cat "${state}/sandbox-registry")" "${archive}"
  for ref in "$@"; do
    out="$(crictl pull "${ref}" 2>&1)" || { status=$?; log "pulling ${ref} failed: ${out}"; break; }
  done
  stop_serving
  return "${status}"
}

stop() {
  bin_dir="$(bins)"
  if answers; then
    # Pods first: their conmons outlive CRI-O otherwise.
    crictl rmp -af >/dev/null 2>&1 || true
    crictl rm -af >/dev/null 2>&1 || true
  fi
  stop_pid "${pidfile}"
  # conmons left behind (a killed CRI-O) hold their containers' mounts.
  pkill -f "conmon .*--runtime-arg --root=${state}/runc" 2>/dev/null || true
  pkill -f "conmon .*-r ${state}/runc-clamp" 2>/dev/null || true
  rm -f "${pidfile}" "${socket}"
  { grep -o " ${state}/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "${m}" || true; done
  if mountpoint -q "${data}" 2>/dev/null; then
    umount -l "${data}" || true
  fi
  log "private CRI-O stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  load) shift && load "$@" ;;
  *)
    echo "usage: $0 start|stop|status|load ARCHIVE REF..." >&2
    exit 2
    ;;
esac
