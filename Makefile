# The README's commands. `make test` is what CI runs (.ci/run): it installs
# what the tests need (the npm packages of the proxyless gRPC test) and
# fails, never skips, when a prerequisite is missing (SHOAL_TEST_STRICT=1).
SHELL := /bin/bash
GO ?= go
NPM ?= npm
BIN := $(CURDIR)/.bin
NODEXDS := e2e/nodexds
PM2DIR := e2e/pm2

export SHOAL_TEST_STRICT := 1

.PHONY: test check build proto go-test node-test node-deps browser-deps h2spec-deps soak-smoke quickstart-test demo

## test: every check and every Go and Node.js test, e2e included.
test: check build go-test node-test quickstart-test soak-smoke

## check: formatting, vet, protos lint-clean and generated code in sync.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	scripts/gen-proto.sh --check

build:
	$(GO) build -o $(BIN)/shoal ./cmd/shoal

## node-deps: the npm packages the e2e tests drive (@grpc/grpc-js-xds for
## e2e/xds_node_test.go, pm2 for e2e/pm2_test.go),
## installed from the lock file; reinstalled when the lock file changes.
node-deps: $(NODEXDS)/node_modules/.package-lock.json $(PM2DIR)/node_modules/.package-lock.json

$(NODEXDS)/node_modules/.package-lock.json: $(NODEXDS)/package.json $(NODEXDS)/package-lock.json
	cd $(NODEXDS) && $(NPM) ci --no-audit --no-fund
	@test -d $(NODEXDS)/node_modules/@grpc/grpc-js-xds || { echo "npm ci did not install @grpc/grpc-js-xds"; exit 1; }
	@touch $@

# PM2 for e2e/pm2_test.go (examples/pm2 workers as mesh instances).
$(PM2DIR)/node_modules/.package-lock.json: $(PM2DIR)/package.json $(PM2DIR)/package-lock.json
	cd $(PM2DIR) && $(NPM) ci --no-audit --no-fund
	@test -x $(PM2DIR)/node_modules/.bin/pm2 || { echo "npm ci did not install pm2"; exit 1; }
	@touch $@

## browser-deps: the Debian packages tests drive: headless Chromium for the
## dashboard's browser test (controlplane TestDashboard), openssl for the
## s_client checks (e2e identity) and iproute2's `ip netns` for the network
## namespace tests. Installed when missing (as root, with apt); `make test`
## fails rather than skips without them (SHOAL_TEST_STRICT=1).
APT_DEPS := chromium:chromium openssl:openssl ip:iproute2
browser-deps:
	@for dep in $(APT_DEPS); do \
	  cmd=$${dep%%:*}; pkg=$${dep#*:}; \
	  command -v $$cmd >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null || exit 1; \
	  else echo "the tests need $$cmd: apt-get install $$pkg (as root)"; exit 1; fi; \
	done

## h2spec-deps: h2spec, the HTTP/2 conformance suite sidecar/proxy's
## TestH2Spec runs against the proxy's listeners (go install, pinned).
H2SPEC := github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
h2spec-deps:
	@command -v h2spec >/dev/null || test -x "$$($(GO) env GOPATH)/bin/h2spec" || \
	  GOBIN="$$($(GO) env GOPATH)/bin" $(GO) install $(H2SPEC)

go-test: build node-deps browser-deps h2spec-deps
	SHOAL_BIN=$(BIN)/shoal $(GO) test -race -timeout 20m ./...

node-test: build
	cd nodejs && SHOAL_BIN=$(BIN)/shoal node --test test/

## quickstart-test: the README's "Quick start with Node.js", run as written.
quickstart-test: build
	scripts/quickstart-test.sh

## soak-smoke: short runs of the opt-in soak tests (`go test` skips them
## unless SHOAL_SOAK=1), so CI runs every test it has.
soak-smoke: build
	SHOAL_SOAK=1 SHOAL_SOAK_RUNS=2 SHOAL_SOAK_PAUSES=2 $(GO) test -count=1 -run '^TestSoakFailureDetection$$' ./registry/gossip/
	SHOAL_SOAK=1 SHOAL_SOAK_DURATION=30s SHOAL_BIN=$(BIN)/shoal $(GO) test -count=1 -timeout 10m -run '^TestGossipSoakStarvationAndPauses$$' ./e2e/

proto:
	scripts/gen-proto.sh

demo:
	$(GO) run ./cmd/shoal demo
