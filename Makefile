# Clawdspace — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE   ?= clawdspace:latest
BIN     := bin/clawdspace
AGENT   := bin/clawdspace-agent
GO      ?= go
TEMPL   := github.com/a-h/templ/cmd/templ@v0.3.1118
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
# Root runs the set-up scripts directly; others go through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: engine
engine: ## Make sure a Docker engine is installed and running (installs docker.io on Debian/Ubuntu as root)
	@$(SUDO) docker/ensure-engine.sh

.PHONY: image
image: engine ## Build the sandbox image $(IMAGE) when it is missing or docker/ changed since (FORCE=1 rebuilds)
	@if [ -z "$(FORCE)" ] && docker/build-image.sh --current $(IMAGE); then \
		echo "image $(IMAGE) is up to date with docker/ (make image FORCE=1 rebuilds it)"; \
	else $(SUDO) docker/build-image.sh $(IMAGE); fi

.PHONY: generate
generate: ## Regenerate generated code (the dashboard's templ views)
	$(GO) generate ./...

.PHONY: assets
assets: ## Refresh the vendored front-end files in static/vendor from npm (pinned versions)
	static/update-vendor.sh

.PHONY: build
build: ## Build bin/clawdspace and, beside it, the in-space agent bin/clawdspace-agent (static)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/clawdspace
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(AGENT) ./cmd/clawdspace-agent

.PHONY: run
run: image build ## Set up this machine (engine, image) and run a node on 127.0.0.1:7777
	$(BIN) serve

.PHONY: test-deps
test-deps: engine ## Install what the tests need besides the engine (busybox-static for the test image, btrfs-progs for workspace quotas, openssh-client for the SSH door, Chromium for the dashboard)
	@test -x /bin/busybox || { command -v apt-get >/dev/null && $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq busybox-static; } \
		|| { echo "The tests need /bin/busybox (a static busybox): install busybox-static"; exit 1; }
	@command -v mkfs.btrfs >/dev/null || { command -v apt-get >/dev/null && $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq btrfs-progs; } \
		|| { echo "The tests need mkfs.btrfs and btrfs (workspace size limits): install btrfs-progs"; exit 1; }
	@command -v ssh >/dev/null && command -v scp >/dev/null && command -v sftp >/dev/null && command -v ssh-keygen >/dev/null || { command -v apt-get >/dev/null && $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openssh-client; } \
		|| { echo "The tests need the OpenSSH client (ssh, scp, sftp, ssh-keygen): install openssh-client"; exit 1; }
	@docker/ensure-chromium.sh

.PHONY: test
test: test-deps image ## Run every test against the real engine
	$(GO) test -count=1 ./...

.PHONY: test-race
test-race: test-deps image ## Run every test with the race detector
	$(GO) test -race -count=1 ./...

.PHONY: bench
bench: test-deps image ## Run the benchmarks (node vs raw Docker SDK ratios as x-raw)
	$(GO) test -run '^$$' -bench . -benchtime $${BENCHTIME:-30x} ./...

.PHONY: lint
lint: ## go vet, gofmt, and the generated templ views up to date
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@# Generate the views from the .templ files as they are into a copy
	@# (with the pinned CLI, as views/generate.go does) and compare.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp views/*.templ "$$tmp"/ && \
		(cd "$$tmp" && $(GO) run $(TEMPL) generate -path . >/dev/null 2>&1) && \
		for f in "$$tmp"/*_templ.go; do cmp -s "$$f" views/$$(basename "$$f") || { echo "views/$$(basename "$$f") is out of date: run make generate"; exit 1; }; done

.PHONY: clean
clean: ## Remove build output
	rm -rf bin
