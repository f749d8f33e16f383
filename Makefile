# cachectl — see README.md. The two commands: `make demo` and `make test`.
GO      ?= go
BIN     := bin/cachectl
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)

.PHONY: all build man deps test test-short conformance conformance-goldens demo bench bench-ngc bench-ngc-full lint fuzz clean sif-goldens

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cachectl

# The man page, generated from the command-line definition: man -l bin/cachectl.1
man: build
	$(BIN) man > bin/cachectl.1

# Installs squashfs-tools, docker-registry, skopeo, umoci, htpasswd when
# missing (needs root; apt-get).
deps:
	@bash .ci/deps.sh

# The whole test suite: unit tests, testscript end-to-end tests against the
# real docker-registry, mksquashfs/unsquashfs, skopeo and umoci.
test: deps
	CACHECTL_REQUIRE_TOOLS=$${CACHECTL_REQUIRE_TOOLS:-1} $(GO) test -count=1 -timeout 30m ./...

# Rebuilds the SIF conformance goldens (providers/apptainer/testdata/conformance)
# and the runtimes' static /.singularity.d files (providers/apptainer/runtimefiles)
# with the real Apptainer and SingularityCE (needs /opt/peers/env.sh, see
# ../shared/peers); `make test` checks cachectl's SIFs against them, and runs
# the live comparison (TestSIFLive) when the runtimes are installed.
sif-goldens: deps
	$(GO) test -count=1 -run '^TestSIFGoldens$$' ./providers/apptainer/ -update-runtimes

# The conformance suite alone (conformance/, docs/conformance.md): live
# against Apptainer, SingularityCE, Enroot and podman when /opt/peers/env.sh
# exists, else against the committed goldens.
conformance: deps
	CACHECTL_CONFORMANCE_SHAPES='$(SHAPES)' CACHECTL_REQUIRE_TOOLS=$${CACHECTL_REQUIRE_TOOLS:-1} $(GO) test -count=1 -timeout 20m -v -run '^TestConformance$$' ./conformance/

# Rewrites conformance/testdata/golden from the installed runtimes
# (bash ../shared/peers/install.sh first); SHAPES=a,b-* rewrites (and
# `make conformance SHAPES=...` checks) only those shapes.
conformance-goldens: deps
	CACHECTL_CONFORMANCE_SHAPES='$(SHAPES)' CACHECTL_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 20m -run '^TestConformance$$' ./conformance/ -update

test-short:
	$(GO) test -short ./...

# Runs cachectl's main job offline: a local registry with generated images,
# then validate, plan, apply, list and plan again into ./demo.
demo: deps build
	@bash examples/demo.sh

# Benchmarks (slow: the pull and builder runs generate ~1 GiB images).
# BENCHMARKS.md records the results and these exact commands.
bench: deps
	$(GO) test ./spec/ -run '^$$' -bench . -benchmem -count 3
	$(GO) test ./planner/ -run '^$$' -bench . -benchtime 5x
	$(GO) test ./providers/rootfs/ -run '^$$' -bench FlattenWriteTar -benchtime 2x
	CACHECTL_BENCH=1 $(GO) test -count=1 -run '^TestPullBench$$' -v -timeout 30m ./providers/registry/
	CACHECTL_BENCH=1 $(GO) test -count=1 -run '^TestBenchBuilders$$' -v -timeout 60m ./providers/apptainer/
	CACHECTL_BENCH=1 $(GO) test -count=1 -run '^TestBundleSizeMeasure$$' -v ./cmd/cachectl/
	$(GO) test -count=1 -run '^TestDedupeAcrossRuntimes$$' -v ./cmd/cachectl/
	CACHECTL_BENCH=1 $(GO) test -count=1 -run '^TestScalingBench$$' -v -timeout 30m ./planner/slurmexec/
	$(GO) test ./providers/rootfs/ -run '^$$' -bench FlattenManyFiles -benchtime 1x
	$(MAKE) bench-ngc

# The NGC-shaped image (registrytest.NGC; BENCHMARKS.md, issue 15): cachectl
# apply beside apptainer build, enroot import and skopeo copy (the peers
# from /opt/peers/env.sh, skipped with a message when absent), interleaved,
# on the loopback registry and behind a proxy capped at 100 and 30 MB/s.
# bench-ngc is a tenth of the full image (25,000 files, 0.5 GB of layers:
# minutes); bench-ngc-full the whole (250,000 files, 4.9 GB of layers, a
# 4.6 GB SIF: hours, about 60 GB of disk). NGC_OUT collects the tables.
NGC_OUT ?= bin/bench-ngc.md
bench-ngc: deps build
	CACHECTL_BENCH=1 CACHECTL_BIN=$(CURDIR)/$(BIN) CACHECTL_NGC_SCALE=0.1 CACHECTL_BENCH_RATES=0,100,30 CACHECTL_BENCH_OUT=$(CURDIR)/$(NGC_OUT) \
	  $(GO) test -count=1 -run '^TestNGC$$' -v -timeout 0 ./bench/

bench-ngc-full: deps build
	CACHECTL_BENCH=1 CACHECTL_BIN=$(CURDIR)/$(BIN) CACHECTL_NGC_SCALE=1 CACHECTL_BENCH_RATES=0,100,30 CACHECTL_BENCH_OUT=$(CURDIR)/$(NGC_OUT) \
	  $(GO) test -count=1 -run '^TestNGC$$' -v -timeout 0 ./bench/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./spec
	$(GO) test -run '^$$' -fuzz FuzzFileName -fuzztime 30s ./spec
	$(GO) test -run '^$$' -fuzz FuzzFlatten -fuzztime 30s ./providers/rootfs

clean:
	rm -rf bin demo
