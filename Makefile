# Thin wrapper over CMake for the README's commands.
#   make demo  — install what is missing, build, run the main job
#   make test  — install what is missing, build, run every test (then again under ASan+UBSan)
BUILD ?= build
JOBS ?= $(shell nproc)
SHARED ?= ../shared

.PHONY: all deps build demo test test-fast test-asan fuzz fuzz-smoke clean

all: build

deps:
	@scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: deps build
	$(BUILD)/lowbit generate -m $(SHARED)/models/stories260K.gguf -n 60 --temp 0
	$(BUILD)/lowbit pipeline configs/pipeline.yaml --out out

# The suite as CI runs it: warnings are errors, then once more under the sanitizers.
test: deps
	@$(MAKE) --no-print-directory test-fast BUILD=build-ci CMAKE_ARGS="-DLOWBIT_WERROR=ON"
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz-smoke

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	@$(MAKE) --no-print-directory test-fast BUILD=build-asan \
	  CMAKE_ARGS="-DLOWBIT_WERROR=ON -DLOWBIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"

# libFuzzer targets for every parser: `make fuzz` runs each for FUZZ_SECONDS (default 60),
# `make fuzz-smoke` (part of `make test`) a fixed number of runs from the seed corpora.
fuzz: deps
	scripts/fuzz.sh

fuzz-smoke:
	scripts/fuzz.sh --smoke 2000

clean:
	rm -rf build build-ci build-asan build-fuzz
