#!/usr/bin/env bash
# Builds prism's libFuzzer targets with clang into build-fuzz/ and runs each
# one briefly (FUZZ_SECONDS each, 30 by default) from a seed corpus. A crash,
# sanitizer report, leak or timeout fails the script; the input that caused
# it is left in build-fuzz/fuzz-artifacts/. Long runs: docs/fuzzing.md.
# FUZZ_RUNS=N instead runs exactly N inputs from a fixed seed and a fresh
# corpus: the same inputs every time, which is what the test suite uses so
# that a run passes or fails the same way on every machine.
#   scripts/fuzz-smoke.sh                  all targets
#   scripts/fuzz-smoke.sh fuzz_tokenizer   one target
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if ! command -v clang >/dev/null; then
  echo "fuzz-smoke: clang (with libFuzzer: Debian's clang + libclang-rt-14-dev) is needed" >&2
  exit 1
fi
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(fuzz_image fuzz_tokenizer fuzz_api fuzz_multipart fuzz_chat)

CC=clang cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRISM_FUZZ=ON \
  -DPRISM_TESTS=OFF -DPRISM_NATIVE=OFF -DPRISM_CUDA=OFF >/dev/null
cmake --build "$BUILD_DIR" -j2 --target "${TARGETS[@]}"
mkdir -p "$BUILD_DIR/fuzz-artifacts"

# seed_<target> DIR: writes the target's seed inputs into DIR; flags_<target>
# prints its extra libFuzzer flags.
seed_fuzz_image() {
  # the generated files of tests/data/images and, when present, Pillow's
  # corpus in ../shared/testdata/pillow
  cp -n tests/data/images/* "$1"/
  if [[ -d ../shared/testdata/pillow ]]; then
    find ../shared/testdata/pillow -type f \( -name '*.png' -o -name '*.jpg' \) -size -300k \
      -exec cp -n {} "$1"/ \;
  fi
}
flags_fuzz_image() { echo "-max_len=262144 -dict=tests/fuzz/image.dict"; }

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
flags_fuzz_tokenizer() { echo "-max_len=20000"; }

seed_fuzz_api() {
  local d=$1 png
  png=$(base64 -w0 tests/data/images/png_rgb8.png)
  # modes 0-3: JSON bodies for embed, score, classify, embeddings
  printf '\x00{"images":["data:image/png;base64,%s"],"texts":["a cat","héllo"],"normalize":false}' "$png" >"$d/embed"
  printf '\x01{"images":["%s"],"texts":["a dog"]}' "$png" >"$d/score"
  printf '\x02{"images":["%s"],"labels":["cat","dog"],"template":"a photo of {}."}' "$png" >"$d/classify"
  printf '\x03{"model":"demo","input":["a cat","data:image/png;base64,%s"],"encoding_format":"base64","dimensions":8}' "$png" >"$d/embeddings"
  # mode 4: Content-Type line, then a multipart body
  { printf '\x04multipart/form-data; boundary=XyZ\n'
    printf -- '--XyZ\r\nContent-Disposition: form-data; name="texts"\r\n\r\na cat\r\n'
    printf -- '--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    cat tests/data/images/png_rgb8.png
    printf -- '\r\n--XyZ--\r\n'; } >"$d/multipart"
  # mode 5: image values; mode 6: the engine's JSON files; mode 7: UTF-8
  printf '\x05data:image/png;base64,%s' "$png" >"$d/image_url"
  printf '\x05%s' "$png" >"$d/image_b64"
  local i=0
  for f in models/demo/config.json tests/data/pali3_tiny_a/config.json models/demo/preprocessor_config.json; do
    { printf '\x06'; cat "$f"; } >"$d/json$((i++))"
  done
  printf '\x07ΟΔΟΣ İstanbul 😀 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80' >"$d/utf8"
  # modes 8-11: generation bodies (caption, vqa, chat; multipart vqa: 11 + 12)
  printf '\x08{"image":"%s","lang":"en","max_new_tokens":8,"num_beams":2}' "$png" >"$d/caption"
  printf '\x09{"image":"data:image/png;base64,%s","question":"what is it","model":"m"}' "$png" >"$d/vqa"
  printf '\x0a{"stream":true,"max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"caption en"},{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}]}]}' "$png" >"$d/chat"
  { printf '\x17multipart/form-data; boundary=XyZ\n'
    printf -- '--XyZ\r\nContent-Disposition: form-data; name="question"\r\n\r\nwhat is it\r\n'
    printf -- '--XyZ\r\nContent-Disposition: form-data; name="num_beams"\r\n\r\n2\r\n'
    printf -- '--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    cat tests/data/images/png_rgb8.png
    printf -- '\r\n--XyZ--\r\n'; } >"$d/vqa_form"
}
flags_fuzz_api() { echo "-max_len=65536 -dict=tests/fuzz/api.dict"; }

# part NAME [FILENAME]: a part's delimiter (boundary XyZ) and headers
part() {
  printf -- '--XyZ\r\nContent-Disposition: form-data; name="%s"' "$1"
  [[ -n ${2:-} ]] && printf '; filename="%s"\r\nContent-Type: image/png' "$2"
  printf '\r\n\r\n'
}
seed_fuzz_multipart() {
  local d=$1 png=tests/data/images/png_rgb8.png
  # byte 0: boundary length 3 (2 = 3 - 1), then the boundary XyZ; 0x0a:
  # quoted; 0x22, 0x42, 0x62: the three sets of small limits
  { printf '\x02XyZ'; part texts; printf 'a cat\r\n'; part texts; printf 'h\xc3\xa9llo\r\n'
    part image a.png; cat "$png"; printf '\r\n'; part normalize; printf 'false\r\n'
    part dimensions; printf '8\r\n--XyZ--\r\n'; } >"$d/embed"
  { printf '\x0aXyZ'; part image a.png; cat "$png"; printf '\r\n'; part labels; printf 'cat\r\n'
    part labels; printf 'dog\r\n'; part template; printf 'a photo of {}.\r\n--XyZ--\r\n'; } >"$d/classify"
  { printf '\x22XyZ'; part image; printf 'data:image/png;base64,aGVsbG8=\r\n'; part 'labels[]'
    printf 'cat\r\n'; part template; printf '{} and {}\r\n--XyZ--\r\n'; } >"$d/classify_small"
  { printf '\x42XyZ'; part images; printf 'aGVsbG8=\r\n'; part text; printf 'a dog\r\n--XyZ--\r\n'; } >"$d/score"
  { printf '\x62XyZ'; part image x.png; printf 'PNG\r\n'; part label; printf 'abcdefgh\r\n'
    part label; printf 'b\r\n'; part template; printf '<{}>\r\n--XyZ--\r\n'; } >"$d/classify_total"
  { printf '\x12XyZ'; part question; printf 'what is it\r\n'; part lang; printf 'en\r\n'
    part num_beams; printf '2\r\n'; part max_new_tokens; printf '16\r\n'; part image a.png
    cat "$png"; printf '\r\n--XyZ--\r\n'; } >"$d/vqa"
  { printf '\x82XyZpreamble\r\n'; part image; printf 'data:image/png;base64,aGVsbG8=\r\n--XyZ--\r\nepilogue'; } >"$d/caption"
}
flags_fuzz_multipart() { echo "-max_len=16384 -dict=tests/fuzz/multipart.dict"; }

seed_fuzz_chat() {
  local d=$1 url='data:image/png;base64,aGVsbG8='
  printf '{"model":"pali3","stream":true,"max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"caption en"},{"type":"image_url","image_url":{"url":"%s"}}]}]}' "$url" >"$d/parts"
  printf '{"messages":[{"role":"user","content":"ignored"},{"role":"user","content":[{"type":"image_url","image_url":"%s"},{"type":"text","text":"say \\"hi\\"\\nline 2\\t\\\\ \\u00e9 \\ud83d\\ude00 \\u2028 \xe6\x97\xa5\xe6\x9c\xac"}]}],"max_completion_tokens":7,"num_beams":2}' "$url" >"$d/escapes"
  printf '{"model":"m\\"1\xc3\xa9","messages":[{"role":"user","content":[{"type":"text","text":"\xc3\xa9\xc3\xa9\xf0\x9f\x98\x80x"},{"type":"image_url","image_url":{"url":"%s"}}]}]}' "$url" >"$d/unicode"
  printf '{"messages":[{"role":"user","content":"caption en"}]}' >"$d/no_image"
  printf '{"messages":[],"stream":1}' >"$d/empty"
}
flags_fuzz_chat() { echo "-max_len=8192 -dict=tests/fuzz/chat.dict"; }

status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/fuzz-corpus/$t"
  if [[ -n ${FUZZ_RUNS:-} ]]; then
    corpus="$BUILD_DIR/fuzz-corpus-fixed/$t"
    rm -rf "$corpus"
    LIMIT="-runs=$FUZZ_RUNS -seed=1"
    echo "== fuzz $t: $FUZZ_RUNS inputs from seed 1"
  else
    LIMIT="-max_total_time=$FUZZ_SECONDS"
    echo "== fuzz $t: ${FUZZ_SECONDS}s (corpus $corpus)"
  fi
  mkdir -p "$corpus"
  "seed_$t" "$corpus"
  # shellcheck disable=SC2046,SC2086
  if ! "$BUILD_DIR/tests/fuzz/$t" $LIMIT -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$BUILD_DIR/fuzz-artifacts/$t-" -print_final_stats=1 $("flags_$t") "$corpus"; then
    echo "fuzz-smoke: $t FAILED (reproducer: $BUILD_DIR/fuzz-artifacts/$t-*)" >&2
    status=1
  fi
done
exit $status
