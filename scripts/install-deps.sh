#!/usr/bin/env bash
# Installs the Debian packages prism needs to build, skipping those already
# present. Used by the README's commands, by CI and by the Dockerfiles, so
# every machine gets the same set. `--test` adds what only the test suite
# needs (clang + libFuzzer for the fuzz smoke run, headless Chromium for
# the web page's browser test).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config  # toolchain
  libopenblas-openmp-dev            # sgemm, sharing OpenMP's thread pool
  libdnnl-dev                       # oneDNN: BF16 matmuls (--dtype bf16 on the CPU)
  libjansson-dev                    # the HTTP API's JSON
  check libsubunit-dev              # the C test framework
  libmicrohttpd-dev                 # HTTP server
  libyaml-dev                       # api/openapi.yaml -> JSON at build time
  wrk                               # tools/bench/load_siglip_server.sh (load benchmark)
  libturbojpeg0-dev libspng-dev     # image decoding
  zlib1g-dev                        # PNG text chunks (EXIF in PNG)
  curl                              # the examples in README.md and docs/ (tests/test_examples.py)
)
if [[ ${1:-} == --test ]]; then
  PACKAGES+=(
    clang libclang-rt-dev            # libFuzzer targets (scripts/fuzz-smoke.sh)
    python3-venv                     # scripts/install-test-tools.sh (deployment checks)
    chromium                         # tests/test_web.py drives the web page headless
  )
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
