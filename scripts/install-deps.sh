#!/usr/bin/env bash
# Installs the Debian packages prism needs to build and test, skipping those
# already present. Used by the README's commands, by CI and by the
# Dockerfiles, so every machine gets the same set.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config  # toolchain
  libopenblas-openmp-dev            # sgemm, sharing OpenMP's thread pool
  libjansson-dev                    # config.json, safetensors headers, API JSON
  check libsubunit-dev              # the C test framework
  libmicrohttpd-dev                 # HTTP server
  libyaml-dev                       # api/openapi.yaml -> JSON at build time
  wrk                               # tools/bench/load_siglip_server.sh (load benchmark)
  libturbojpeg0-dev libspng-dev     # image decoding
)

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
