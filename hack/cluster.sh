#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the end-to-end
# tier (test/node): etcd, kube-apiserver (TLS, Node + RBAC authorization,
# NodeRestriction, service-account keys), kube-controller-manager,
# kube-scheduler, and a kubelet that runs pods through cri-dockerd on its own
# private dockerd, or (IMAGECLEANUP_NODE_RUNTIME=containerd) through the CRI
# of its own private containerd 2 (hack/containerd.sh), or
# (IMAGECLEANUP_NODE_RUNTIME=crio) of its own private CRI-O (hack/crio.sh),
# with no Docker on the node at all. Binaries come from
# hack/cluster-assets.sh (built once).
#
#   hack/cluster.sh up      bring it up (no-op when it answers); prints the env file
#   hack/cluster.sh down    stop everything and undo what it changed on the host
#   hack/cluster.sh env     print the env file (KUBECONFIG, the node's DOCKER_HOST, ...)
#   hack/cluster.sh images  (re)build the pause and agent images into the node's engine
#   hack/cluster.sh status  exit 0 when the node is Ready
#   hack/cluster.sh check-clean  exit 1, saying what, if anything of it is left
#
# One cluster per machine (it owns the ports 6443, 10250 and the state folder
# /tmp/imagecleanup-node). Work-rounds for this machine, each applied only
# where needed, are in docs/testing.md ("The test node").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "${root}/hack/lib.sh"
state="${IMAGECLEANUP_NODE_DIR:-/tmp/imagecleanup-node}"
node_name="imagecleanup-node"
pod_cidr="10.244.0.0/24"
pod_gateway="10.244.0.1" # the host on the pod bridge: how pods reach the API server
service_cidr="10.0.0.0/24"
etcd_port=23790
pause_image="registry.k8s.io/pause:3.10"
# The agent's image as test/node/overlay names it (imagePullPolicy Never).
agent_image="imagecleanup/image-cleanup-operator:node-e2e"
# The version the Dockerfile stamps into it (test/node checks it).
agent_version="v0.0.0-node-e2e"
# The folder that stands for the host's /run (test/node/overlay mounts it
# where the install mounts /run): docker.sock, containerd/containerd.sock, or
# crio/crio.sock.
engine_dir="${state}/engine"
docker_host="unix://${engine_dir}/docker.sock"
containerd_dir="${engine_dir}/containerd"
containerd_endpoint="unix://${containerd_dir}/containerd.sock"
crio_dir="${engine_dir}/crio"
crio_endpoint="unix://${crio_dir}/crio.sock"
# The runtime of a node that runs is the one it was brought up with.
if [[ -f "${state}/runtime" ]]; then
  running_runtime="$(cat "${state}/runtime")"
fi
runtime="${IMAGECLEANUP_NODE_RUNTIME:-${running_runtime:-docker}}"
case "${runtime}" in
  docker) cri_socket="unix://${state}/cri-dockerd.sock" ;;
  containerd) cri_socket="${containerd_endpoint}" ;;
  crio) cri_socket="${crio_endpoint}" ;;
  *)
    echo "cluster.sh: IMAGECLEANUP_NODE_RUNTIME is docker, containerd or crio, not ${runtime}" >&2
    exit 2
    ;;
esac
pki="${state}/pki"

log() { echo "cluster.sh: $*" >&2; }

node_ip() {
  local ip
  ip="$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')"
  [[ -n "${ip}" ]] || ip="$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n1)"
  echo "${ip}"
}

assets() {
  bin="$("${root}/hack/cluster-assets.sh")"
  etcd_bin="${bin}/etcd"
  kubectl="${bin}/kubectl"
}

ensure_host_packages() {
  if [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] &&
    command -v openssl >/dev/null && command -v ip >/dev/null && command -v sysctl >/dev/null && command -v pgrep >/dev/null; then
    return
  fi
  log "installing Debian's containernetworking-plugins, openssl, iproute2, procps"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends containernetworking-plugins openssl iproute2 procps >&2
}

# cert NAME CN [O] [SANS] [USAGE]: a key and a certificate signed by the cluster CA.
cert() {
  local name="$1" cn="$2" org="${3:-}" sans="${4:-}" usage="${5:-clientAuth}"
  local subj="/CN=${cn}"
  [[ -n "${org}" ]] && subj="/O=${org}${subj}"
  openssl req -new -newkey rsa:2048 -nodes -keyout "${pki}/${name}.key" -subj "${subj}" -out "${pki}/${name}.csr" 2>/dev/null
  {
    echo "extendedKeyUsage=${usage}"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    [[ -n "${sans}" ]] && echo "subjectAltName=${sans}"
  } >"${pki}/${name}.ext"
  openssl x509 -req -in "${pki}/${name}.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" -CAcreateserial \
    -days 30 -extfile "${pki}/${name}.ext" -out "${pki}/${name}.crt" 2>/dev/null
}

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig() {
  local name="$1"
  cat >"${state}/${name}.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: imagecleanup-node
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ${pki}/ca.crt
users:
- name: ${name}
  user:
    client-certificate: ${pki}/${name}.crt
    client-key: ${pki}/${name}.key
contexts:
- name: ${name}
  context: {cluster: imagecleanup-node, user: ${name}}
current-context: ${name}
EOF
}

make_pki() {
  [[ -f "${pki}/ca.crt" ]] && return
  mkdir -p "${pki}"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "${pki}/ca.key" -subj "/CN=imagecleanup-node-ca" \
    -days 30 -out "${pki}/ca.crt" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:${pod_gateway},IP:10.0.0.1,IP:$(node_ip)" serverAuth
  cert kubelet-serving "${node_name}" "" "DNS:${node_name},IP:127.0.0.1,IP:$(node_ip)" serverAuth
  cert admin admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kubelet "system:node:${node_name}" system:nodes
  openssl genrsa -out "${pki}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub" 2>/dev/null
  for name in admin controller-manager scheduler kubelet; do kubeconfig "${name}"; done
}

# preflight_ports fails early, and says why, when another program holds a
# port the node needs (another cluster on this machine, say).
preflight_ports() {
  local port busy=""
  for port in 6443 10250 10257 10259 "${etcd_port}" 23800; do
    if ss -Hltn "sport = :${port}" 2>/dev/null | grep -q .; then busy+=" ${port}"; fi
  done
  if [[ -n "${busy}" && ! -f "${state}/kube-apiserver.pid" ]]; then
    log "ports in use by another program:${busy}; stop it (another cluster?) or run the test node elsewhere"
    exit 1
  fi
}

# start NAME COMMAND...: run a component in its own session, logged and pid-filed.
start() {
  local name="$1"
  shift
  if [[ -f "${state}/${name}.pid" ]] && kill -0 "$(cat "${state}/${name}.pid")" 2>/dev/null; then
    return
  fi
  setsid "$@" </dev/null >"${state}/${name}.log" 2>&1 &
  echo $! >"${state}/${name}.pid"
}

# wait_for WHAT SECONDS COMMAND...: retry until the command succeeds.
wait_for() {
  local what="$1" seconds="$2"
  shift 2
  for _ in $(seq 1 $((seconds * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "${what} not ready after ${seconds}s"
  return 1
}

# explain_unready_node prints what a person would look at first when the
# node never turns Ready: its conditions and the tails of the node's logs.
explain_unready_node() {
  log "node conditions:"
  admin_kubectl get node "${node_name}" \
    -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2 || true
  local name
  local file
  for file in "${state}/kubelet.log" "${state}/cri-dockerd.log" "${engine_dir}/dockerd.log" "${containerd_dir}/containerd.log" "${crio_dir}/crio.log"; do
    [[ -f "${file}" ]] || continue
    log "last lines of ${file}:"
    tail -n 40 "${file}" >&2
  done
}

admin_kubectl() { "${kubectl}" --kubeconfig "${state}/admin.kubeconfig" "$@"; }

save_sysctls() {
  [[ -f "${state}/sysctls" ]] && return
  for key in vm.overcommit_memory kernel.panic kernel.panic_on_oops; do
    echo "${key}=$(sysctl -n "${key}")"
  done >"${state}/sysctls"
}

# The node's engine. Without CAP_SYS_RESOURCE runc cannot set the negative
# oom_score_adj cri-dockerd gives sandboxes; runc-clamp is then its runtime.
# containerd restricts that itself (hack/containerd.sh); hack/crio.sh
# clamps as this does.
start_engine() {
  if [[ "${runtime}" == containerd ]]; then
    containerd_sh start >/dev/null
    return
  fi
  if [[ "${runtime}" == crio ]]; then
    # CRI-O mounts a hostPath with HostToContainer propagation (the agent's
    # /run) only from a shared or slave mount, as / is on a node that
    # systemd runs; this machine's / is private: the stand-in for /run
    # becomes a shared mount of its own (undone by down).
    mkdir -p "${engine_dir}"
    if ! mountpoint -q "${engine_dir}"; then
      mount --bind "${engine_dir}" "${engine_dir}"
      mount --make-rshared "${engine_dir}"
    fi
    crio_sh start >/dev/null
    return
  fi
  local args="--exec-opt native.cgroupdriver=cgroupfs"
  if ! has_cap_sys_resource; then
    log "no CAP_SYS_RESOURCE here: the node's engine runs containers through hack/runc-clamp"
    (cd "${root}" && CGO_ENABLED=0 go build -o "${state}/runc-clamp" ./hack/runc-clamp)
    args+=" --add-runtime clamped=${state}/runc-clamp --default-runtime clamped"
  fi
  IMAGECLEANUP_DOCKERD_DIR="${engine_dir}" IMAGECLEANUP_DOCKERD_ARGS="${args}" "${root}/hack/dockerd.sh" start >/dev/null
}

# containerd_sh runs hack/containerd.sh on the node's containerd: its state
# under the node's /run stand-in, the node's pause image pinned as the
# sandbox image, pods on the node's bridge.
containerd_sh() {
  IMAGECLEANUP_CONTAINERD_DIR="${containerd_dir}" IMAGECLEANUP_CONTAINERD_SANDBOX_IMAGE="${pause_image}" \
    IMAGECLEANUP_CONTAINERD_CNI_CONF_DIR="${state}/cni/net.d" "${root}/hack/containerd.sh" "$@"
}

# crio_sh runs hack/crio.sh on the node's CRI-O: its state under the node's
# /run stand-in, the node's pause image as the sandbox image, pods on the
# node's bridge, and docker.io (the agent's image) served locally on load.
crio_sh() {
  IMAGECLEANUP_CRIO_DIR="${crio_dir}" IMAGECLEANUP_CRIO_SANDBOX_IMAGE="${pause_image}" \
    IMAGECLEANUP_CRIO_CNI_CONF_DIR="${state}/cni/net.d" IMAGECLEANUP_CRIO_MAPPED_DOMAINS=docker.io \
    "${root}/hack/crio.sh" "$@"
}

write_cni_config() {
  mkdir -p "${state}/cni/net.d" "${state}/cni/cache" "${state}/cni/ipam"
  cat >"${state}/cni/net.d/10-imagecleanup.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "imagecleanup-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "icnode0",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "${state}/cni/ipam",
        "ranges": [[{"subnet": "${pod_cidr}", "gateway": "${pod_gateway}"}]]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
}

write_kubelet_config() {
  cat >"${state}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pki}/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${pki}/kubelet-serving.crt
tlsPrivateKeyFile: ${pki}/kubelet-serving.key
containerRuntimeEndpoint: ${cri_socket}
cgroupDriver: cgroupfs
# This machine's cgroups are v1 (hybrid); kubelet 1.37 refuses them by default.
failCgroupV1: false
failSwapOn: false
# The kubelet's own image GC must not race the tests.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
podCIDR: ${pod_cidr}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
resolvConf: /etc/resolv.conf
serializeImagePulls: true
# Static pods (their mirror pods bound to this node) for test/node.
staticPodPath: ${state}/static-pods
EOF
}

up() {
  if status; then
    if [[ "${runtime}" != "${running_runtime:-docker}" ]]; then
      log "the test node runs ${running_runtime:-docker}, not ${runtime}: hack/cluster.sh down first"
      exit 1
    fi
    assets
    refresh_images
    env_file
    return
  fi
  [[ "$(id -u)" == 0 ]] || { log "the test node needs root (kubelet, dockerd)"; exit 1; }
  ensure_host_packages
  preflight_ports
  assets
  mkdir -p "${state}"
  echo "${runtime}" >"${state}/runtime"
  ln -sf "${kubectl}" "${state}/kubectl"
  rm -f "${state}.sysctls"
  save_sysctls
  make_pki
  local ip
  ip="$(node_ip)"

  start etcd "${etcd_bin}" --data-dir "${state}/etcd" \
    --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
    --listen-peer-urls http://127.0.0.1:23800 --unsafe-no-fsync
  start kube-apiserver "${bin}/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${etcd_port}" \
    --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "${ip}" \
    --tls-cert-file "${pki}/apiserver.crt" --tls-private-key-file "${pki}/apiserver.key" \
    --client-ca-file "${pki}/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "${pki}/sa.pub" --service-account-signing-key-file "${pki}/sa.key" \
    --service-cluster-ip-range "${service_cidr}" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "${pki}/apiserver-kubelet-client.crt" \
    --kubelet-client-key "${pki}/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --allow-privileged=true
  wait_for "kube-apiserver" 90 admin_kubectl get --raw /readyz

  start kube-controller-manager "${bin}/kube-controller-manager" \
    --kubeconfig "${state}/controller-manager.kubeconfig" \
    --authentication-kubeconfig "${state}/controller-manager.kubeconfig" \
    --authorization-kubeconfig "${state}/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "${pki}/sa.key" --root-ca-file "${pki}/ca.crt" \
    --use-service-account-credentials --service-cluster-ip-range "${service_cidr}"
  start kube-scheduler "${bin}/kube-scheduler" \
    --kubeconfig "${state}/scheduler.kubeconfig" \
    --authentication-kubeconfig "${state}/scheduler.kubeconfig" \
    --authorization-kubeconfig "${state}/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false

  write_cni_config
  start_engine
  images
  if [[ "${runtime}" == docker ]]; then
    start cri-dockerd "${bin}/cri-dockerd" \
      --container-runtime-endpoint "${cri_socket}" --docker-endpoint "${docker_host}" \
      --cri-dockerd-root-directory "${state}/cri-dockerd" \
      --pod-infra-container-image "${pause_image}" \
      --network-plugin cni --cni-bin-dir /usr/lib/cni \
      --cni-conf-dir "${state}/cni/net.d" --cni-cache-dir "${state}/cni/cache"
    wait_for "cri-dockerd" 30 test -S "${state}/cri-dockerd.sock"
  fi

  mkdir -p "${state}/static-pods"
  write_kubelet_config
  start kubelet "${bin}/kubelet" --config "${state}/kubelet.yaml" \
    --kubeconfig "${state}/kubelet.kubeconfig" --root-dir "${state}/kubelet" \
    --hostname-override "${node_name}" --node-ip "${ip}"
  # Here the node is Ready within seconds; a slower machine gets 4 minutes,
  # and says at 2 what holds it back.
  if ! wait_for "node ${node_name}" 120 admin_kubectl wait --for=condition=Ready "node/${node_name}" --timeout=1s; then
    explain_unready_node
    log "waiting 2 more minutes"
    if ! wait_for "node ${node_name}" 120 admin_kubectl wait --for=condition=Ready "node/${node_name}" --timeout=1s; then
      explain_unready_node
      return 1
    fi
  fi
  # Pods need their namespace's default ServiceAccount (the controller-manager makes it).
  wait_for "default ServiceAccount" 60 admin_kubectl get serviceaccount default
  log "node ${node_name} Ready (runtime ${runtime})"
  env_file
}

# images builds the pause image (the sandbox image cri-dockerd is given) and
# the agent's image from this checkout into the node's engine: nothing can be
# pulled here. The agent's image is the shipped Dockerfile's, built as users
# build it (hack/image.sh, with local stand-ins for its base images), with
# the name and tag the install uses.
images() {
  if [[ "${runtime}" == containerd ]]; then
    containerd_images
    return
  fi
  if [[ "${runtime}" == crio ]]; then
    local archive
    archive="$(agent_archive)"
    crio_sh load "${archive}" "${agent_image}"
    log "images ${pause_image} and ${agent_image} are in the node's CRI-O"
    return
  fi
  # Made once: a new one would leave the running sandboxes on an untagged image.
  if ! DOCKER_HOST="${docker_host}" docker image inspect "${pause_image}" >/dev/null 2>&1; then
    local work
    work="$(mktemp -d)"
    (cd "${root}" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "${work}/pause" ./internal/seed/sleeper)
    tar -C "${work}" -cf "${work}/pause.tar" pause
    DOCKER_HOST="${docker_host}" docker import --change 'ENTRYPOINT ["/pause", "pause"]' "${work}/pause.tar" "${pause_image}" >/dev/null
    rm -rf "${work}"
  fi
  DOCKER_HOST="${docker_host}" "${root}/hack/image.sh" "${agent_image}" "${agent_version}"
  log "images ${pause_image} and ${agent_image} are in the node's engine"
}

# agent_archive prints a docker-save archive of the agent's image:
# hack/image.sh's of the last build, or, when the inputs changed since, one
# built in the private dockerd (hack/dockerd.sh; left running, as after
# make test) and saved from there.
agent_archive() {
  local archive builder
  if ! archive="$("${root}/hack/image.sh" --archive "${agent_image}" "${agent_version}")"; then
    builder="$("${root}/hack/dockerd.sh" start)"
    DOCKER_HOST="${builder}" "${root}/hack/image.sh" "${agent_image}" "${agent_version}" >&2
    archive="${state}/agent-image.tar"
    DOCKER_HOST="${builder}" docker save -o "${archive}" "${agent_image}"
  fi
  echo "${archive}"
}

# containerd_images: hack/containerd.sh made and pinned the pause image; the
# agent's image is imported into the CRI's namespace as a kubelet would find
# a pulled one. (On CRI-O, which can only pull, hack/crio.sh serves the
# archive to it.)
containerd_images() {
  local archive
  archive="$(agent_archive)"
  "$("${root}/hack/cri-assets.sh")/ctr" --address "${containerd_dir}/containerd.sock" -n k8s.io images import "${archive}" >/dev/null
  log "images ${pause_image} and ${agent_image} are in the node's containerd"
}

# agent_image_id is the ID of the agent's image in the node's runtime, "" when absent.
agent_image_id() {
  if [[ "${runtime}" != docker ]]; then
    "$("${root}/hack/cri-assets.sh")/crictl" --runtime-endpoint "${cri_socket}" --image-endpoint "${cri_socket}" \
      images -q "${agent_image}" 2>/dev/null || true
    return
  fi
  DOCKER_HOST="${docker_host}" docker image inspect -f '{{.Id}}' "${agent_image}" 2>/dev/null || true
}

# refresh_images rebuilds the images of a running node from this checkout
# and restarts the install's pods when the agent's image changed (the tag is
# fixed, so the kubelet would keep the old one).
refresh_images() {
  local before after
  before="$(agent_image_id)"
  images
  after="$(agent_image_id)"
  if [[ "${before}" != "${after}" ]] && admin_kubectl get namespace image-cleanup-system >/dev/null 2>&1; then
    log "the agent's image changed: restarting the install's pods"
    admin_kubectl -n image-cleanup-system rollout restart daemonset,deployment >/dev/null
    admin_kubectl -n image-cleanup-system rollout status daemonset,deployment --timeout=3m >/dev/null
  fi
}

env_file() {
  local docker_host_env="" cri_endpoint_env=""
  case "${runtime}" in
    docker) docker_host_env="${docker_host}" ;;
    containerd | crio) cri_endpoint_env="${cri_socket}" ;;
  esac
  cat <<EOF
export TEST_CLUSTER_KUBECONFIG=${state}/admin.kubeconfig
export TEST_CLUSTER_KUBECTL=${state}/kubectl
export TEST_CLUSTER_RUNTIME=${runtime}
export TEST_CLUSTER_DOCKER_HOST=${docker_host_env}
export TEST_CLUSTER_CRI_ENDPOINT=${cri_endpoint_env}
export TEST_CLUSTER_NODE=${node_name}
export TEST_CLUSTER_KUBELET_ROOT=${state}/kubelet
export TEST_CLUSTER_PAUSE_IMAGE=${pause_image}
export TEST_CLUSTER_AGENT_IMAGE=${agent_image}
export TEST_CLUSTER_AGENT_VERSION=${agent_version}
export TEST_CLUSTER_STATIC_PODS=${state}/static-pods
EOF
}

# status asks the running node's own kubectl (linked by up): it never
# builds anything.
status() {
  [[ -f "${state}/admin.kubeconfig" && -x "${state}/kubectl" ]] || return 1
  timeout 10 "${state}/kubectl" --kubeconfig "${state}/admin.kubeconfig" wait --for=condition=Ready "node/${node_name}" --timeout=2s >/dev/null 2>&1
}

stop_component() {
  local name="$1" pid
  [[ -f "${state}/${name}.pid" ]] || return 0
  pid="$(cat "${state}/${name}.pid")"
  kill "${pid}" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.25
  done
  kill -9 "${pid}" 2>/dev/null || true
  rm -f "${state}/${name}.pid"
}

# remove_cgroups removes the kubelet's pod cgroups, deepest first, once no
# process is left in them.
remove_cgroups() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d "${dir}" ]] || continue
    find "${dir}" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

down() {
  stop_component kubelet
  stop_component cri-dockerd
  # Stops the pods' containers with the engine.
  if [[ "${runtime}" == containerd ]]; then
    containerd_sh stop >/dev/null 2>&1 || true
  elif [[ "${runtime}" == crio ]]; then
    crio_sh stop >/dev/null 2>&1 || true
  else
    IMAGECLEANUP_DOCKERD_DIR="${engine_dir}" "${root}/hack/dockerd.sh" stop >/dev/null 2>&1 || true
  fi
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_component "${name}"; done
  { grep -o " ${state}/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "${m}" || true; done
  remove_cgroups
  ip link delete icnode0 2>/dev/null || true
  if [[ -f "${state}/sysctls" ]]; then
    while IFS='=' read -r key value; do sysctl -q -w "${key}=${value}" || true; done <"${state}/sysctls"
  fi
  # The values it found stay next to the state folder, for check-clean.
  [[ ! -f "${state}/sysctls" ]] || cp "${state}/sysctls" "${state}.sysctls"
  rm -rf "${state}"
  log "test node stopped"
}

# check_clean lists what a stopped node left behind: processes, mounts,
# cgroups, the pod bridge, changed sysctls. None is expected.
check_clean() {
  local left=0 pids
  pids="$(pgrep -f "${state}|/kubelet --config|/cri-dockerd " || true)"
  [[ -z "${pids}" ]] || { log "processes left: ${pids//$'\n'/ }"; left=1; }
  if grep -q " ${state}" /proc/mounts; then log "mounts left under ${state}"; left=1; fi
  if compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null; then log "kubepods cgroups left"; left=1; fi
  if ip link show icnode0 >/dev/null 2>&1; then log "bridge icnode0 left"; left=1; fi
  [[ ! -d "${state}" ]] || { log "${state} left"; left=1; }
  if [[ -f "${state}.sysctls" ]]; then
    while IFS='=' read -r key value; do
      [[ "$(sysctl -n "${key}")" == "${value}" ]] || { log "sysctl ${key} is $(sysctl -n "${key}"), was ${value}"; left=1; }
    done <"${state}.sysctls"
  fi
  return "${left}"
}

case "${1:-}" in
  up) up ;;
  check-clean) check_clean ;;
  down) down ;;
  env) env_file ;;
  images) assets && images ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|env|images|status" >&2
    exit 2
    ;;
esac
