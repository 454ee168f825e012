# image-cleanup-operator. `make help` lists the targets.

# Tools are pinned and installed into ./bin by the targets that need them.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.7.1
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
# Prometheus v3.x's module version; promtool checks and unit-tests the alerts.
PROMTOOL_VERSION ?= v0.316.0

# The release: set VERSION=v0.2.0 to cut one; by default the checkout's commit.
VERSION ?= $(shell git describe --tags --always --dirty --match 'v*' 2>/dev/null || echo v0.0.0-dev)
LDFLAGS ?= -X github.com/imagecleanup/image-cleanup-operator/internal/version.Version=$(VERSION)
IMG ?= imagecleanup/image-cleanup-operator:$(VERSION)
# The kustomize folder `make deploy` installs; test/node/overlay on the test node.
DEPLOY_DIR ?= config/default
INSTALLER ?= dist/install.yaml

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
PROMTOOL ?= $(LOCALBIN)/promtool-$(PROMTOOL_VERSION)
KUBECTL ?= kubectl
CONTAINER_TOOL ?= docker

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: demo
demo: manifests ## The main job on this machine: a local control plane, the private dockerd, the agent, a policy.
	hack/demo.sh

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and the two roles' RBAC from the kubebuilder markers.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=agent-role paths="./controllers" output:rbac:artifacts:config=config/rbac/agent
	$(CONTROLLER_GEN) rbac:roleName=aggregator-role paths="./controllers/aggregator" output:rbac:artifacts:config=config/rbac/aggregator
	cp config/crd/bases/*.yaml charts/image-cleanup-operator/files/crds/
	cp config/monitoring/prometheusrule.yaml config/monitoring/dashboard.json charts/image-cleanup-operator/files/monitoring/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods and typed apply configurations.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."
	$(CONTROLLER_GEN) applyconfiguration:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail when generated files or go.mod are stale.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/verify-generated.sh

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run

.PHONY: test
test: verify-generated vet $(KUSTOMIZE) $(HELM) $(PROMTOOL) ## Run every test, unit and integration, against private dockerds (20.10 and 29), envtest and the test node.
	KUSTOMIZE=$(KUSTOMIZE) HELM=$(HELM) PROMTOOL=$(PROMTOOL) hack/test.sh

.PHONY: test-unit
test-unit: ## Run the pure tests only (seconds): no engine, no API server; the model test runs 100 sequences.
	env -u CI -u TEST_DOCKER_HOST -u TEST_SMALL_DOCKER_HOST -u TEST_CRI_ENDPOINT -u TEST_SMALL_CRI_ENDPOINT -u KUBEBUILDER_ASSETS -u TEST_CLUSTER_KUBECONFIG go test -short -count=1 ./...

.PHONY: bench
bench: ## Benchmark imagecleanup apply against the article's recipes and raw removals on every engine make test runs (ARGS go to hack/bench).
	hack/bench.sh $(ARGS)

.PHONY: bench-cri
bench-cri: ## Benchmark a sweep on containerd against crictl's raw removals of the same objects.
	hack/bench-cri.sh

.PHONY: agent-memory
agent-memory: $(KUSTOMIZE) ## The agent container's working set and resident memory on the test node, as the kubelet reports them.
	KUSTOMIZE=$(KUSTOMIZE) hack/agent-memory.sh

.PHONY: scale
scale: $(KUSTOMIZE) ## Control-plane cost with NODES in-process agents (default 200) against one envtest API server.
	KUSTOMIZE=$(KUSTOMIZE) hack/scale.sh

.PHONY: envtest
envtest: ## Build (once) the envtest control plane and print its folder.
	@hack/envtest-assets.sh

.PHONY: dockerd-start
dockerd-start: ## Start the private dockerd used by tests and the demo.
	@hack/dockerd.sh start

.PHONY: dockerd-stop
dockerd-stop: ## Stop the private dockerd.
	@hack/dockerd.sh stop

##@ Build

.PHONY: build
build: ## Build bin/manager and bin/imagecleanup (from the tree as it is: `make manifests generate` regenerates).
	go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd/manager
	go build -ldflags "$(LDFLAGS)" -o bin/imagecleanup ./cmd/imagecleanup

.PHONY: run
run: manifests generate fmt vet ## Run the node agent against the current kubeconfig (needs NODE_NAME).
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the agent's container image.
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the agent's container image.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: build-installer
build-installer: manifests $(KUSTOMIZE) ## Write dist/install.yaml (INSTALLER): the whole install (config/default) for IMG, labelled with VERSION.
	mkdir -p $(dir $(INSTALLER))
	KUSTOMIZE=$(KUSTOMIZE) VERSION=$(VERSION) hack/deploy.sh config/default $(IMG) > $(INSTALLER)
	@echo "$(INSTALLER): $(VERSION), image $(IMG)"

##@ Deployment

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRDs into the current cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Remove the CRDs (and every policy and report) from the current cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the agent DaemonSet and the aggregator Deployment (image IMG, kustomize folder DEPLOY_DIR) to the current cluster.
	KUSTOMIZE=$(KUSTOMIZE) hack/deploy.sh $(DEPLOY_DIR) $(IMG) | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the whole install (agent, aggregator, RBAC, admission policy, namespace) from the current cluster; the CRDs stay (make uninstall).
	KUSTOMIZE=$(KUSTOMIZE) hack/deploy.sh $(DEPLOY_DIR) $(IMG) --without-crds | $(KUBECTL) delete --ignore-not-found -f -

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

$(GOLANGCI_LINT): | $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

$(HELM): | $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

# Without the service discovery plugins (remove_all_sd): rule checks and
# rule tests need none. A cold build took 5 min here (docs/testing.md).
$(PROMTOOL): | $(LOCALBIN)
	$(call go-install-tool,$(PROMTOOL),github.com/prometheus/prometheus/cmd/promtool,$(PROMTOOL_VERSION),-tags remove_all_sd)

.PHONY: controller-gen kustomize golangci-lint helm promtool
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
kustomize: $(KUSTOMIZE) ## Install kustomize into bin/.
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/.
helm: $(HELM) ## Install helm into bin/ (the chart's tests render with it).
promtool: $(PROMTOOL) ## Install promtool into bin/ (the alerts' tests run it).

# go-install-tool installs a pinned tool as bin/<name>-<version>, with the
# build flags of its fourth argument; the temporary GOBIN holds only that one
# binary.
define go-install-tool
@set -e; tmp=$$(mktemp -d); \
echo "installing $(2)@$(3)"; \
GOBIN=$$tmp go install $(4) $(2)@$(3); \
mv $$tmp/* $(1); \
rm -rf $$tmp
endef
