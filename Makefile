# Sensorcast developer entry points. `make help` lists them.
# The heavier logic lives in scripts/, one script per job, so it can be read
# (and run) on its own.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Pinned code-generation tools (buf, protoc-gen-go, protoc-gen-go-grpc), cached outside
# the clone in ${XDG_CACHE_HOME:-~/.cache}/sensorcast/tools/<hash of tools/ and proto/
# go.mod+go.sum>.
TOOLS_CACHE := $(shell bash scripts/tools.sh dir)
export TOOLS_CACHE

# A real kube-apiserver, etcd, kube-controller-manager, kube-scheduler and KWOK, built
# from the Go module proxy by scripts/k8s-tools.sh into
# ${XDG_CACHE_HOME:-~/.cache}/sensorcast/k8s/<hash of tools/k8s go.mod+go.sum>. The
# operator's envtest tests find them through KUBEBUILDER_ASSETS.
KUBEBUILDER_ASSETS := $(shell bash scripts/k8s-tools.sh dir)
export KUBEBUILDER_ASSETS

BIN := $(CURDIR)/bin

# Extra `go test` flags for test, test-e2e and bench, e.g. GOTESTFLAGS='-run TestPresence -v'.
GOTESTFLAGS ?=
export GOTESTFLAGS
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 15s
export FUZZTIME
# Arguments for `make run`, e.g. ARGS='--devices 200 --interval 100ms'.
ARGS ?=

.PHONY: help deps tools k8s-tools web generate manifests check build images test test-e2e test-operator test-web fuzz run bench clean

help: ## List the targets
	@echo "Usage: make <target> [GOTESTFLAGS=...] [FUZZTIME=15s] [ARGS=...]"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

deps: ## Install Mosquitto, Redis, PostgreSQL and Chromium with apt-get if they are missing
	@bash scripts/install-deps.sh

tools: ## Build the pinned buf, protoc-gen-go and protoc-gen-go-grpc into ~/.cache/sensorcast/tools/<hash>
	@bash scripts/tools.sh build

k8s-tools: ## Build kube-apiserver, etcd, controller-manager, scheduler, KWOK, kubectl, helm into ~/.cache/sensorcast/k8s/<hash>
	@bash scripts/k8s-tools.sh build

web: ## npm ci and build the TypeScript SDK and the dashboard (embedded by the edge)
	@bash scripts/web.sh build

generate: tools manifests ## Regenerate Go code from proto/ (and lint it) and the operator's manifests
	cd proto && PATH="$(TOOLS_CACHE):$$PATH" buf generate
	cd proto && PATH="$(TOOLS_CACHE):$$PATH" buf lint

manifests: k8s-tools ## Regenerate the operator's deepcopy, CRD and RBAC, their chart copies, and deploy/manifests
	@bash scripts/manifests.sh

check: tools k8s-tools ## Fail on stale generated code, buf lint, gofmt or go vet findings
	@bash scripts/check.sh

# Every main package under services/cmd/ (bin/sensorcast, with the dashboard
# built by `make web` embedded), operator/cmd (bin/sensorcast-operator) and
# tests/cmd/ (bin/sensorcast-load, the load generator).
build: web ## Build every command into bin/
	mkdir -p $(BIN)
	cd services && go build -o $(BIN)/ ./cmd/...
	cd operator && go build -o $(BIN)/sensorcast-operator ./cmd
	if [[ -d tests/cmd ]]; then cd tests && go build -o $(BIN)/ ./cmd/...; fi
	@ls -1 $(BIN) | sed 's|^|  bin/|'

images: ## Build the container images with docker or podman, where one exists (IMAGE_PREFIX=...)
	@bash scripts/images.sh

test: deps tools k8s-tools check build ## Install deps, check, build, then go test -race every module and the web tests
	@bash scripts/test.sh

test-e2e: deps build ## Run only the end-to-end tests (the tests module)
	@bash scripts/test.sh "$(CURDIR)/tests"

test-operator: deps k8s-tools ## Run only the operator's tests (envtest on a real kube-apiserver)
	@bash scripts/test.sh "$(CURDIR)/operator"

test-web: deps build ## Run only the SDK's and the dashboard's tests (Node, headless Chromium)
	@bash scripts/web.sh test

fuzz: ## Run each fuzz target for FUZZTIME
	@bash scripts/fuzz.sh

run: web ## Run everything in one process with simulated devices and the dashboard (pass ARGS=...)
	go run ./services/cmd/sensorcast run $(ARGS)

bench: ## Run the services' Go benchmarks
	cd services && go test -run='^$$' -bench=. -benchmem $(GOTESTFLAGS) ./...

clean: ## Remove bin/
	rm -rf $(BIN)
