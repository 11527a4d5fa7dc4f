# tptop — build, demo, tests, benchmarks.
#   make demo    dashboard + a TP=2 training of the small preset on the bundled corpus
#   make test    the whole test suite (engine, telemetry, dashboard; real mpirun ranks; the
#                Python telemetry writer, against tptop, and the PyTorch example end to end)
#   make test-python  only the Python tests (builds the release tptop they run against)
#   make chaos   the fault-injection suite alone (kill -9, hang, disk full, NaN, duplicate name,
#                corrupt segment, export targets) on real mpirun jobs; one line per fault
#   make bench   headline benchmark lines (BENCH <name> <value> <unit>): TP=1, TP=2, MFU, the
#                PyTorch comparison, telemetry, dashboard; under 10 minutes on 2 cores
#   make bench-deps  PyTorch 2 from PyPI (scaled_dot_product_attention) into the ignored
#                .venv-bench, which `make bench` then compares against (~5 GB with the CUDA
#                libraries PyPI's wheel depends on; without it the comparison uses Debian's torch 1.13)
#   make bench-all  make bench, then the long sweeps (scrape, run store, collectives, every flag,
#                overlap, simulated nodes; scripts/bench_sweeps.sh)
#   make install tptop and tptrain into $(PREFIX)/bin (default ~/.local/bin), themes and the demo
#                corpus into $(PREFIX)/share/tptop; make uninstall removes them

SWIFT ?= swift
CONFIG ?= release
BIN = .build/$(CONFIG)
# mpirun refuses root without these; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

PREFIX ?= $(HOME)/.local

.PHONY: all deps test-deps build demo train test test-python chaos bench bench-deps bench-all install uninstall clean

all: build

deps:
	@bash scripts/install-deps.sh

test-deps:
	@bash scripts/install-deps.sh --test

build: deps
	$(SWIFT) build -c $(CONFIG)

demo: build
	$(BIN)/tptop demo

# Plain training without the dashboard (TP=2, small preset, bundled corpus).
train: build
	mpirun --oversubscribe -np 2 $(BIN)/tptrain --model small --batch 8 --seq 256 --steps 200 --tp 2

# Release build (the MPI tests run real training); -enable-testing keeps @testable imports working.
# The tests build into a folder of their own, so that `make demo`/`install` after `make test` (and
# the other way round) finds its build as it left it instead of recompiling with other flags.
TESTBUILD = .build-test
TBIN = $(TESTBUILD)/$(CONFIG)
TESTFLAGS = -c $(CONFIG) -Xswiftc -enable-testing --scratch-path $(TESTBUILD)

PYTHON ?= python3
# The Python writer's tests: the library alone, against the tptop just built (cross-language,
# stress), and examples/torch_tp_gpt.py under `tptop launch --runner torchrun`.
PYTEST = TPTOP_BIN_DIR=$(TBIN) $(PYTHON) -m unittest discover -s python/tests

# Runs recorded by the tests go to a store of their own, never the user's.
TEST_RUNS ?= $(CURDIR)/$(TESTBUILD)/test-runs
test test-python chaos: export TPTOP_RUNS = $(TEST_RUNS)

test: test-deps
	python3 scripts/check_architecture.py
	$(SWIFT) build $(TESTFLAGS)
	$(SWIFT) test $(TESTFLAGS)
	$(PYTEST)
	bash scripts/chaos/run.sh $(TBIN)

test-python: test-deps
	$(SWIFT) build $(TESTFLAGS) --product tptop
	$(SWIFT) build $(TESTFLAGS) --product tptop-dev
	$(PYTEST) -v

# The fault-injection suite (docs/FAULTS.md), on the same build as the tests.
chaos: test-deps
	$(SWIFT) build $(TESTFLAGS)
	bash scripts/chaos/run.sh $(TBIN)

bench: build
	bash scripts/bench.sh $(BIN)

bench-deps: test-deps
	test -x .venv-bench/bin/python || python3 -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch numpy

bench-all: build
	bash scripts/bench.sh $(BIN)
	bash scripts/bench_sweeps.sh $(BIN)

# tptop finds tptrain beside itself, its themes in ../share/tptop/themes and the demo corpus in
# ../share/tptop/data, so the installed pair works from any directory.
install: build
	install -d $(PREFIX)/bin $(PREFIX)/share/tptop/themes $(PREFIX)/share/tptop/data
	install -m 755 $(BIN)/tptop $(BIN)/tptrain $(PREFIX)/bin/
	install -m 644 themes/*.theme $(PREFIX)/share/tptop/themes/
	install -m 644 data/shakespeare.txt $(PREFIX)/share/tptop/data/
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "note: $(PREFIX)/bin is not on PATH; add it: export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

# The run store's default home is ~/.local/share/tptop/runs, under the same folder as the
# installed themes and corpus: uninstall removes only what install put there, never stored runs.
uninstall:
	rm -f $(PREFIX)/bin/tptop $(PREFIX)/bin/tptrain
	rm -rf $(PREFIX)/share/tptop/themes $(PREFIX)/share/tptop/data
	@rmdir $(PREFIX)/share/tptop 2>/dev/null || true

clean:
	rm -rf .build $(TESTBUILD)
