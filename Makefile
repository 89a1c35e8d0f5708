# bpo — build, test, bench and demo.
# llama.cpp and ggml come from the pinned Go module github.com/ollama/ollama (see go.mod);
# `headers` links their public headers into third_party/include for our own cgo code.

GO ?= go
OLLAMA_MOD := github.com/ollama/ollama
# -march=native gives AVX2/FMA kernels to ggml: 2-25x faster than ollama's default cgo flags.
OPT_FLAGS ?= -O3 -march=native
export CGO_ENABLED := 1
export CGO_CFLAGS := $(OPT_FLAGS)
export CGO_CXXFLAGS := $(OPT_FLAGS)
TEST_TIMEOUT ?= 30m

.PHONY: all build headers test bench demo vet fmt clean check-tools

all: build

check-tools:
	@command -v $(GO) >/dev/null || { echo "error: Go is not installed (https://go.dev/doc/install)"; exit 1; }
	@command -v gcc >/dev/null || { echo "error: gcc is missing: apt-get install -y gcc"; exit 1; }
	@command -v g++ >/dev/null || { echo "error: g++ is missing: apt-get install -y g++"; exit 1; }

headers: check-tools
	@dir=$$($(GO) mod download -json $(OLLAMA_MOD) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$dir" -a -d "$$dir" || { echo "error: could not download $(OLLAMA_MOD) (go mod download)"; exit 1; }; \
	mkdir -p third_party/include; \
	for h in $$dir/llama/llama.cpp/include/*.h $$dir/ml/backend/ggml/ggml/include/*.h; do \
		ln -sf "$$h" third_party/include/; \
	done

build: headers
	$(GO) build -o bin/bpo ./cmd/bpo

test: headers
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

vet: headers
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin third_party/include
