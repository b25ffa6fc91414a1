# The project's entry points. `make run` and `make test` are the two commands of the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run stop test tools lint crds cluster-up cluster-down cluster-reset bench image image-import node-import

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: ## Main job: control plane, gridshim, the Forge (Gitea) and controller, with the sample Tester going to Ready
	@bash hack/run.sh up

stop: ## Stop what `make run` started (the control plane keeps its data)
	@bash hack/run.sh down

test: tools ## Everything CI runs: lint, unit tests, and end-to-end tests against the real parts
	$(MAKE) lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

tools: ## Build or install the pinned tools (cached outside the tree; fast when present)
	@bash hack/build-tools.sh kine kubernetes helm gitea node
	@bash hack/install-deps.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run -q -p controller --bin crdgen -- crds

.PHONY: forge
forge: ## Build the pinned Gitea (first run only) and start the Forge; prints FORGE_URL and FORGE_TOKEN_FILE
	@bash hack/build-tools.sh gitea && bash hack/forge.sh up

cluster-up: ## Start (or reuse) the local control plane and print the KUBECONFIG line (NODE=1: with a node)
	@bash hack/cluster.sh up
	@if [ "$(NODE)" = 1 ]; then bash hack/node.sh up >/dev/null; fi

node-import: image ## Start the local node (root) and import the controller's image for its kubelet
	@bash hack/node.sh up >/dev/null
	@bash hack/node.sh import target/image/controller-$$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "controller"))').oci.tar

cluster-down: ## Stop the local control plane (data kept)
	@bash hack/cluster.sh down

cluster-reset: ## Stop the local control plane and delete its data
	@bash hack/cluster.sh reset

bench: tools ## Benchmarks: time to Ready, throughput, cost at rest, memory (prints a table)
	$(CARGO) build --release --workspace --bins
	bash hack/bench.sh

image: ## The controller's OCI image without Docker: static musl build, target/image/controller-<version>.oci.tar
	@bash hack/image.sh build

image-import: ## Build the image and import it into a private containerd (.run/containerd), namespace hero
	@bash hack/image.sh import
