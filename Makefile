# Strata build. Every target works from a fresh clone; see README.md.
SHELL := /bin/bash
GO ?= go
BIN := bin
# Each workspace module's directory; `go test ./...` does not span a workspace.
MODULE_DIRS = $(shell $(GO) list -f '{{.Dir}}' -m)
PKGS = $(addsuffix /...,$(MODULE_DIRS))
TEST_TIMEOUT ?= 20m

.PHONY: all build test lint bench proto up down dev clean

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
	  CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/strata ./cmd/strata || exit 1; \
	fi

## test: every module's tests with the race detector (THE test command)
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## lint: gofmt, go vet over every module
lint:
	@out=$$(gofmt -l $(MODULE_DIRS)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: storage engine benchmarks next to this machine's dd bandwidth
bench:
	bash bench/logstore.sh

proto:
	@echo "proto: will regenerate pkg/proto from its .proto sources (broker issue)"

up:
	@echo "up: will build images and start the 3-node docker compose cluster (control-plane issue)"

down:
	@echo "down: will stop the docker compose cluster (control-plane issue)"

dev:
	@echo "dev: will run one broker natively on localhost with data under ./.data (broker issue)"

clean:
	rm -rf $(BIN)
