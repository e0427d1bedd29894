# Xplore Face Auth. `make run` starts the whole system locally; `make test`
# runs every test. Both fetch and verify the pinned models first.
SHELL      := /bin/bash
GO         ?= go
BIN        := bin
TOOLS      := .tools/bin
MODELS_DIR ?= models/cache
export MODELS_DIR
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.version=$(VERSION)

.PHONY: all build models models-testdata tools proto test bench lint clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

models: build
	$(BIN)/central models fetch --models-dir $(MODELS_DIR)

models-testdata: build
	$(BIN)/central models fetch --testdata --models-dir $(MODELS_DIR)

TOOL_BINS := $(TOOLS)/versitygw $(TOOLS)/protoc-gen-go $(TOOLS)/staticcheck $(TOOLS)/nk

tools: $(TOOL_BINS)

# Pinned in tools/go.mod; rebuilt only when it changes.
$(TOOL_BINS) &: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(TOOLS)/ github.com/versity/versitygw/cmd/versitygw google.golang.org/protobuf/cmd/protoc-gen-go honnef.co/go/tools/cmd/staticcheck github.com/nats-io/nkeys/nk

proto: $(TOOLS)/protoc-gen-go
	PATH="$(CURDIR)/$(TOOLS):$$PATH" protoc --go_out=. --go_opt=module=github.com/xplore/faceauth proto/*.proto

test: models-testdata tools
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(GO) test -p 2 -timeout 20m ./...

bench: models-testdata tools
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(GO) test -run '^$$' -bench . -benchtime 2s -cpu 1 ./...

lint: tools
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...

clean:
	rm -rf $(BIN) $(TOOLS)
