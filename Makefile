# Xplore Face Auth. `make run` starts the whole system locally; `make test`
# runs every test. Both fetch and verify the pinned models first.
SHELL      := /bin/bash
GO         ?= go
BIN        := bin
TOOLS      := .tools/bin
MODELS_DIR ?= models/cache
export MODELS_DIR
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS    := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build models models-testdata tools proto test fuzz bench bench-verify dist lint clean run e2e help

all: build

## build: compile bin/central and bin/edged (the default target)
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## models: fetch the pinned model files and verify their SHA-256 (a no-op when they verify)
models: build
	$(BIN)/central models fetch --models-dir $(MODELS_DIR)

## models-testdata: models plus the sample photos the tests use
models-testdata: build
	$(BIN)/central models fetch --testdata --models-dir $(MODELS_DIR)

TOOL_BINS := $(TOOLS)/versitygw $(TOOLS)/protoc-gen-go $(TOOLS)/staticcheck $(TOOLS)/nk $(TOOLS)/nats-server $(TOOLS)/ec2-metadata-mock

## tools: build the pinned dev tools into .tools/bin (versitygw, protoc-gen-go, staticcheck, nk, nats-server, ec2-metadata-mock)
tools: $(TOOL_BINS)

# Pinned in tools/go.mod; rebuilt only when it changes.
$(TOOL_BINS) &: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(TOOLS)/ github.com/versity/versitygw/cmd/versitygw google.golang.org/protobuf/cmd/protoc-gen-go honnef.co/go/tools/cmd/staticcheck github.com/nats-io/nkeys/nk github.com/nats-io/nats-server/v2 github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock

## proto: regenerate the Go code of proto/*.proto (needs protoc)
proto: $(TOOLS)/protoc-gen-go
	PATH="$(CURDIR)/$(TOOLS):$$PATH" protoc --go_out=. --go_opt=module=github.com/xplore/faceauth proto/*.proto models/onnxgraph/onnx.proto

## test: every test (what .ci/run runs; needs nginx, protoc, systemd-analyze and promtool for deploy/ and proto), then a summary of what was skipped and why, then each fuzz target briefly
# The fuzz targets run first so that the summary of what was skipped is the
# last thing make test prints. FACEAUTH_REQUIRE_MODELS makes a test that
# needs the real engine fail, not skip, when the model files are missing.
test: models-testdata tools
	$(MAKE) --no-print-directory fuzz
	set -o pipefail; FACEAUTH_REQUIRE_MODELS=1 PATH="$(CURDIR)/$(TOOLS):$$PATH" $(GO) test -json -p 2 -timeout 20m ./... | $(GO) run ./scripts/testsummary

# The fuzz targets (Go native fuzzing), as ./package:FuzzName. Each one's
# committed seeds (testdata/fuzz/FuzzName) also run in every `go test`.
FUZZ_TARGETS := \
	./proto:FuzzDecodeChange \
	./edged:FuzzDecodeRecord \
	./internal/api:FuzzParseForm \
	./internal/auth:FuzzCheck
FUZZ_TIME ?= 5s

## fuzz: run each of FUZZ_TARGETS for FUZZ_TIME (5s)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t#*:}; \
	  echo "fuzz $$name ($$pkg, $(FUZZ_TIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	done

## bench: every Go benchmark
bench: models-testdata tools
	FACEAUTH_REQUIRE_MODELS=1 PATH="$(CURDIR)/$(TOOLS):$$PATH" $(GO) test -run '^$$' -bench . -benchtime 2s -cpu 1 ./...

## bench-verify: the edge's 640x480 verify median on one core, for the default ArcFace+dlib (VerifyHTTP) and ArcFace alone (VerifyHTTPSingle), three runs
bench-verify: models-testdata
	FACEAUTH_REQUIRE_MODELS=1 $(GO) test -run '^$$' -bench 'VerifyHTTP' -benchtime 200x -count 3 -cpu 1 ./edged

## dist: the release tarball dist/faceauth-VERSION-linux-amd64.tar.gz (+ .sha256) that deploy/aws/user-data.sh installs
dist: models
	VERSION=$(VERSION) scripts/dist.sh

## lint: gofmt, go vet and staticcheck
lint: tools
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -w these files:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...

## clean: remove the binaries and tools (keeps data/ and the model cache)
clean:
	rm -rf $(BIN) $(TOOLS) dist

## run: start central (local store, embedded NATS) and one edge; Ctrl-C stops both
run: models
	scripts/run.sh

## e2e: the newcomer test: clone HEAD, follow README.md (make run, the curl examples), check the answers
e2e: models-testdata
	scripts/e2e.sh

## help: list the targets
help:
	@sed -n 's/^## \([^:]*\): /  \1\t/p' $(firstword $(MAKEFILE_LIST)) | expand -t 20
