# The README's commands. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.bin

.PHONY: test check build proto go-test node-test demo

## test: every check and every Go and Node.js test, e2e included.
test: check build go-test node-test

## check: formatting, vet, protos lint-clean and generated code in sync.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	scripts/gen-proto.sh --check

build:
	$(GO) build -o $(BIN)/shoal ./cmd/shoal

go-test: build
	SHOAL_BIN=$(BIN)/shoal $(GO) test -race -timeout 20m ./...

node-test: build
	cd nodejs && SHOAL_BIN=$(BIN)/shoal node --test test/

proto:
	scripts/gen-proto.sh

demo:
	$(GO) run ./cmd/shoal demo
