# Sourced by the hack/ scripts that need the private dockerd and envtest.

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
    trap 'hack/dockerd.sh stop' EXIT
  fi
}
