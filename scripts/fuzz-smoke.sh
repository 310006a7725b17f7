#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each one
# for a short smoke run: FUZZ_SECONDS (default 30) per target, on a corpus
# seeded from tests/data. Exits non-zero when a target finds a crash. The
# long-run command is in docs/fuzzing.md.
#   scripts/fuzz-smoke.sh                  all targets
#   scripts/fuzz-smoke.sh fuzz_tokenizer   one target
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
BUILD_DIR=${BUILD_DIR:-build-fuzz}
if ! command -v clang >/dev/null; then
  echo "fuzz-smoke: clang (with libFuzzer: Debian's clang + libclang-rt-dev) is needed" >&2
  exit 1
fi

TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(fuzz_tokenizer)

CC=clang cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRISM_FUZZ=ON \
  -DPRISM_TESTS=OFF -DPRISM_NATIVE=OFF >/dev/null
cmake --build "$BUILD_DIR" -j2 --target "${TARGETS[@]}"

# seed_<target> DIR: writes the target's seed inputs into DIR.
seed_fuzz_tokenizer() {
  local d=$1 i=0 s
  # mode 0: model files (the small ones; libFuzzer mutates them)
  for m in tests/data/tok_spm_b/spiece.model tests/data/tok_spm_c/spiece.model; do
    { printf '\x00'; cat "$m"; } >"$d/model$((i++))"
  done
  # modes 1 and 2: texts; mode 3: ids
  for s in "a photo of a cat." "ΟΔΟΣ İstanbul Ｈｅｌｌｏ 😀 </s><unk>" $'a\tb\u3000c\u2581d' "日本語のテキスト"; do
    { printf '\x01'; printf '%s' "$s"; } >"$d/text$i"
    { printf '\x02'; printf '%s' "$s"; } >"$d/raw$((i++))"
  done
  printf '\x03\x05\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\xff\xff\xff\xff' >"$d/ids"
}

status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/corpus-$t"
  mkdir -p "$corpus"
  seed="$(mktemp -d)"
  "seed_$t" "$seed"
  echo "== $t: ${FUZZ_SECONDS}s (corpus $corpus)"
  if ! "$BUILD_DIR/tests/fuzz/$t" -max_total_time="$FUZZ_SECONDS" -max_len=20000 \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$BUILD_DIR/$t-" \
      "$corpus" "$seed"; then
    echo "fuzz-smoke: $t FAILED (reproducer: $BUILD_DIR/$t-*)" >&2
    status=1
  fi
  rm -rf "$seed"
done
exit $status
