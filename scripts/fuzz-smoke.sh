#!/usr/bin/env bash
# Builds prism's libFuzzer targets with clang into build-fuzz/ and runs each
# one briefly (FUZZ_SECONDS each, 30 by default) from its seed corpus. A
# crash, sanitizer report, leak or timeout fails the script; the input that
# caused it is left in build-fuzz/fuzz-artifacts/. Long runs: docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
CC=${CC:-clang} cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRISM_FUZZ=ON \
  -DPRISM_TESTS=OFF -DPRISM_NATIVE=OFF >/dev/null
mkdir -p "$BUILD_DIR/fuzz-artifacts"

# run_fuzzer NAME CORPUS_DIR [libFuzzer flags...]
run_fuzzer() {
  local name=$1 corpus=$2
  shift 2
  echo "== fuzz $name: ${FUZZ_SECONDS}s"
  "$BUILD_DIR/tests/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$BUILD_DIR/fuzz-artifacts/$name-" -print_final_stats=1 "$@" "$corpus"
}

# --- image: probe + decode + orientation + resize + normalise ---------------
# Seeds: the generated files of tests/data/images and, when present, Pillow's
# corpus in ../shared/testdata/pillow.
cmake --build "$BUILD_DIR" -j2 --target fuzz_image
image_corpus=$BUILD_DIR/fuzz-corpus/image
mkdir -p "$image_corpus"
cp -n tests/data/images/* "$image_corpus"/
if [[ -d ../shared/testdata/pillow ]]; then
  find ../shared/testdata/pillow -type f \( -name '*.png' -o -name '*.jpg' \) -size -300k \
    -exec cp -n {} "$image_corpus"/ \;
fi
run_fuzzer fuzz_image "$image_corpus" -max_len=262144 -dict=tests/fuzz/image.dict
