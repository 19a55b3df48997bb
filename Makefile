# Thin wrapper over CMake + ctest. `make run` and `make test` are the two
# commands README starts with; both install what they need first.
JOBS ?= $(shell nproc)
BUILD ?= build
ARGS ?=
FUZZ_SECONDS ?= 15
# A campaign by executions instead of seconds, e.g.
#   make fuzz FUZZ_RUNS=10000000 FUZZ_JOBS=2
FUZZ_RUNS ?=
FUZZ_JOBS ?= 1

.PHONY: all deps build run test test-debug test-asan fuzz fuzz-build install clean format bench

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/mdht run $(ARGS)

# gcc with warnings as errors, then the whole suite again under ASan+UBSan,
# then every fuzz target for a few seconds (clang + libFuzzer).
test: deps test-debug test-asan fuzz
	@echo "make test: all suites passed"

test-debug:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMDHT_WERROR=ON >/dev/null
	@cmake --build build -j $(JOBS)
	@ctest --test-dir build --output-on-failure -j $(JOBS)

test-asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMDHT_SANITIZE=ON -DMDHT_WERROR=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --test-dir build-asan --output-on-failure -j $(JOBS)

fuzz-build:
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMDHT_FUZZ=ON -DMDHT_WERROR=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

fuzz: fuzz-build
	@FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_JOBS=$(FUZZ_JOBS) bash scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

# The benchmarks of docs/PERFORMANCE.md: mdht against a raw UDP echo server
# and libtorrent, side by side in one run, then the in-process query path
# and memory figures. About 2 minutes.
# The simulator's scaling table (bench/simscale.sh): network sizes to run.
# 1,000,000 nodes takes some 52 minutes and 16 GB of memory (2 cores):
#   make bench SIM_SIZES="10000 100000 1000000"
SIM_SIZES ?= 10000 100000

bench: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DMDHT_BENCH=ON -DMDHT_TESTS=OFF >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@/usr/bin/python3 bench/run.py --build build-bench --json-out build-bench/bench.json
	@bash bench/sim.sh build-bench/mdht
	@SIM_SIZES="$(SIM_SIZES)" bash bench/simscale.sh build-bench/mdht

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz build-bench
