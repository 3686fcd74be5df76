# Strata build. Every target works from a fresh clone; see README.md.
SHELL := /bin/bash
GO ?= go
BIN := bin
# Each workspace module's directory; `go test ./...` does not span a workspace.
MODULE_DIRS = $(shell $(GO) list -f '{{.Dir}}' -m)
PKGS = $(addsuffix /...,$(MODULE_DIRS))
TEST_TIMEOUT ?= 20m
# What `strata version` reports (a workspace build carries no VCS stamp).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
CLI_LDFLAGS = -ldflags "-X main.version=$(VERSION)"

# Code-generation tools, pinned; built from the module proxy into .tools/.
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
TOOLS := .tools/buf-$(BUF_VERSION)-go-$(PROTOC_GEN_GO_VERSION)-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
PROTO_TOOLS := $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc

.PHONY: all build test lint tidy-check bench bench-cluster bench-compare proto proto-check up down down-volumes test-compose dev clean

all: build

## build: static binaries into bin/
build:
	@mkdir -p $(BIN)
	@for svc in broker replicator admin; do \
	  if [ -f services/$$svc/main.go ]; then \
	    echo "build $(BIN)/strata-$$svc"; \
	    CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/strata-$$svc ./services/$$svc || exit 1; \
	  fi; \
	done
	@if [ -f cmd/strata/main.go ]; then \
	  echo "build $(BIN)/strata"; \
	  CGO_ENABLED=0 $(GO) build -trimpath $(CLI_LDFLAGS) -o $(BIN)/strata ./cmd/strata || exit 1; \
	fi

## test: every module's tests with the race detector (THE test command)
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## lint: gofmt, go vet over every module, every module tidy, buf lint and stale generated code
lint: proto-check tidy-check
	@out=$$(gofmt -l $(MODULE_DIRS)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: storage engine benchmarks next to this machine's dd bandwidth, the recovery point's cost side by side, and the replicator's local append leg (unary/stream/raw frames/Unix socket)
bench:
	bash bench/logstore.sh
	bash bench/recovery_point.sh
	bash bench/append_leg.sh

## bench-cluster: replicated produce on the compose cluster (acks=ALL vs LEADER vs JetStream R3)
bench-cluster:
	bash bench/cluster.sh

## bench-compare: Strata vs NATS JetStream on loopback (medians of alternating rounds)
bench-compare:
	bash bench/compare.sh

## proto: regenerate pkg/proto's Go code with pinned, module-built tools
proto: $(PROTO_TOOLS)
	cd pkg/proto && PATH=$(abspath $(TOOLS)):$$PATH buf lint && PATH=$(abspath $(TOOLS)):$$PATH buf generate

# tidy-check: fails when a module's go.mod or go.sum is not what go mod
# tidy writes. Each module is resolved alone (GOWORK=off), as a user of it
# would: the repository's modules through its replace directives, the rest
# from the module proxy, so a fresh clone needs nothing else.
tidy-check:
	@fail=0; for d in $(MODULE_DIRS); do \
	  out=$$(cd $$d && GOWORK=off GOFLAGS=-mod=mod $(GO) mod tidy -diff 2>&1) || { \
	    echo "not tidy: $${d#$(CURDIR)/} (run: cd $${d#$(CURDIR)/} && GOWORK=off go mod tidy)"; echo "$$out"; fail=1; }; \
	done; exit $$fail

# proto-check: fails when the committed generated code is stale.
proto-check: $(PROTO_TOOLS)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cd pkg/proto && PATH=$(abspath $(TOOLS)):$$PATH buf lint && \
	PATH=$(abspath $(TOOLS)):$$PATH buf generate -o $$tmp && \
	for f in $$(cd $$tmp && find . -name '*.go'); do \
	  cmp -s $$tmp/$$f $$f || { echo "stale generated code: pkg/proto/$$f (run make proto)"; exit 1; }; \
	done; \
	for f in $$(find . -name '*.pb.go'); do \
	  [ -f $$tmp/$$f ] || { echo "generated file without a source: pkg/proto/$$f"; exit 1; }; \
	done

$(PROTO_TOOLS):
	@mkdir -p $(TOOLS)
	GOWORK=off GOBIN=$(abspath $(TOOLS)) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOWORK=off GOBIN=$(abspath $(TOOLS)) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOWORK=off GOBIN=$(abspath $(TOOLS)) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# The 3-node docker compose cluster (deployments/compose, see its README).
# The compose plugin (`docker compose`) when it works, else docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_RUN = $(COMPOSE) -p strata -f deployments/compose/docker-compose.yml

## up: build, start the compose cluster, wait until healthy, set the CLI context "compose"
up: build
	COMPOSE="$(COMPOSE)" bash deployments/compose/up.sh

## down: stop and remove the cluster's containers (volumes kept)
down:
	$(COMPOSE_RUN) down --remove-orphans

## down-volumes: down, and remove the cluster's volumes and .data/compose
down-volumes:
	$(COMPOSE_RUN) down --remove-orphans --volumes
	rm -rf .data/compose

## test-compose: up, produce/consume, kill node 1, fail over, restart it, down
test-compose:
	COMPOSE="$(COMPOSE)" bash deployments/compose/test.sh

## test-chaos: up, acks=all load, ROUNDS (12: each of the eleven faults of test/chaos/run.sh once, then drawn with SEED) with working-leader and ISR-full times, strata verify check, down-volumes
.PHONY: test-chaos
test-chaos:
	COMPOSE="$(COMPOSE)" bash test/chaos/run.sh

## dev: one broker on 127.0.0.1:9092 (metrics :9100) and admin on 127.0.0.1:9443, mutual TLS and ACLs, data under ./.data/dev; Ctrl-C, or SIGTERM to make, stops both.
# The first run writes a local CA and certificates into .data/dev/pki
# (strata-admin pki init; later runs keep them) and points the CLI context
# "dev" at the operator certificate, which the default ACL policy makes
# admin: `bin/strata topic create demo` works right away. The broker
# watches admin's policy (--acl-admin-url), so `bin/strata acl add ...`
# applies within a second.
DEV_DIR := $(CURDIR)/.data/dev
DEV_PKI := $(DEV_DIR)/pki
DEV_BROKER ?= 127.0.0.1:9092
DEV_ADMIN ?= 127.0.0.1:9443
DEV_METRICS ?= 127.0.0.1:9100
DEV_FLAGS ?=
dev:
	@mkdir -p $(BIN) $(DEV_DIR)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/strata-broker ./services/broker
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/strata-admin ./services/admin
	CGO_ENABLED=0 $(GO) build -trimpath $(CLI_LDFLAGS) -o $(BIN)/strata ./cmd/strata
	$(BIN)/strata-admin pki init --out $(DEV_PKI) --ca-name strata-dev --node 1
	$(BIN)/strata context set dev --brokers $(DEV_BROKER) --admin https://$(DEV_ADMIN) --insecure=false \
	  --ca $(DEV_PKI)/ca.pem --cert $(DEV_PKI)/operator.pem --key $(DEV_PKI)/operator-key.pem
	$(BIN)/strata context use dev
	@# Both run in the background and the shell waits: bash runs a trap
	@# only between commands, so with the broker in the foreground the
	@# SIGTERM make passes on to this shell did nothing until the broker
	@# ended by itself. The broker ending stops admin.
	admin=; broker=; \
	stop() { kill $$broker $$admin 2>/dev/null; wait $$broker $$admin 2>/dev/null; }; \
	trap 'stop; exit 130' INT; trap 'stop; exit 143' TERM; trap stop EXIT; \
	$(BIN)/strata-admin serve --listen $(DEV_ADMIN) --data-dir $(DEV_DIR)/admin \
	  --tls-cert $(DEV_PKI)/admin.pem --tls-key $(DEV_PKI)/admin-key.pem --tls-ca $(DEV_PKI)/ca.pem \
	  --ca-key $(DEV_PKI)/ca-key.pem --cluster-addrs $(DEV_BROKER) & admin=$$!; \
	$(BIN)/strata-broker --data-dir $(DEV_DIR) --listen $(DEV_BROKER) --metrics-listen=$(DEV_METRICS) --log-level info \
	  --tls-cert $(DEV_PKI)/broker-1.pem --tls-key $(DEV_PKI)/broker-1-key.pem --tls-ca $(DEV_PKI)/ca.pem \
	  --acl-admin-url https://$(DEV_ADMIN) $(DEV_FLAGS) & broker=$$!; \
	wait $$broker

clean:
	rm -rf $(BIN)
