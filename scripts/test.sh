#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every
# test twice: the optimised build, then an AddressSanitizer +
# UndefinedBehaviorSanitizer build; then a short libFuzzer smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

echo "== build (Release) and test"
BUILD_DIR=build scripts/build.sh
ctest --test-dir build --output-on-failure -j2

echo "== build (ASan + UBSan) and test"
BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DPRISM_SANITIZE=ON
# OpenBLAS's and OpenMP's own thread pools are process-lifetime: not leaks of ours.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j2

# A fixed number of inputs from a fixed seed: the same run on every machine,
# so the suite's verdict does not depend on luck (long runs: docs/fuzzing.md).
echo "== fuzz smoke run (${FUZZ_RUNS:=20000} inputs per target)"
FUZZ_RUNS=$FUZZ_RUNS scripts/fuzz-smoke.sh
