# Kiln's developer entry points. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin/kiln
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS := -X main.Version=$(VERSION)
EXAMPLE ?= examples/debian-minimal.hcl
# Tests that boot images must not be skipped when this is 1 (CI sets it).
export KILN_REQUIRE_QEMU ?= 0

.PHONY: help deps build man demo test test-unit test-e2e fuzz fuzz-long bench lint clean

help: ## List the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install the host packages Kiln needs (Debian, root)
	bash scripts/install-deps.sh

build: ## Build bin/kiln
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kiln

man: build ## Write the man page bin/kiln.1 from kiln's own help (read it with man -l bin/kiln.1)
	./$(BIN) man > bin/kiln.1

demo: deps build ## Build, boot and test the example image; print the artifact and results
	./$(BIN) build $(EXAMPLE)

test: deps ## Run every test: unit, disk, and end-to-end builds booted in QEMU; print the slowest
	@mkdir -p bin
	set -o pipefail; KILN_E2E=1 $(GO) test -v -count=1 -timeout 85m ./... 2>&1 | tee bin/test.log | \
		grep -vE '^=== (RUN|PAUSE|CONT|NAME)' ; status=$$?; \
		bash scripts/slowest-tests.sh bin/test.log; \
		exit $$status

test-unit: ## Run the tests that need no root and no QEMU
	$(GO) test -short ./...

fuzz: ## Fuzz every parser and image reader briefly (FUZZTIME per target, default 30s)
	FUZZTIME=$${FUZZTIME:-30s} bash scripts/fuzz-long.sh

fuzz-long: ## Fuzz every target for FUZZTIME (default 10m); prints inputs/s and totals (docs/testing.md)
	bash scripts/fuzz-long.sh

bench: deps build ## Run the benchmarks recorded in docs/benchmarks.md
	bash bench/disk-stage.sh
	bash bench/formats.sh
	bash bench/loop.sh
	bash bench/vcpus.sh
	bash bench/tcg-cpu.sh
	bash bench/hybrid-boots.sh

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean: ## Remove build outputs (not the catalog or the cache)
	rm -rf bin
