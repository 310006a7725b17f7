#!/usr/bin/env bash
# Configures and builds prism into build/ (Release). Extra arguments go to
# cmake's configure step, e.g. scripts/build.sh -DPRISM_NATIVE=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} -DPRISM_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
