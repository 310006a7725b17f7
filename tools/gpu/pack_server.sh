#!/usr/bin/env bash
# tools/gpu/pack_server.sh - packs `prism` (the server with the CUDA backend)
# for a GPU machine that has the CUDA toolkit but none of the server's
# libraries (libmicrohttpd, jansson, libturbojpeg, libspng and what they
# pull in). Run here, from anywhere:
#
#     bash tools/gpu/pack_server.sh            # -> gpu-carry/ (about 6 MB)
#
# Builds a Release `prism` for sm_80 and sm_90 with PRISM_BLAS=OFF (the GPU
# does the work; no 30 MB OpenBLAS to carry), then copies the binary and
# every shared library it needs except the C library's, the C++ runtime's
# and CUDA's own (the GPU machine has newer ones of those) into gpu-carry/
# (ignored by git). Name gpu-carry in the device run's carry list;
# tools/gpu/device_check.sh then runs tools/gpu/serve_check.py with it.
# The binary needs a glibc at least as new as this machine's (2.36).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-carry}
BUILD=${BUILD:-build-carry}
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPRISM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="80;90" -DPRISM_BLAS=OFF -DPRISM_TESTS=OFF -DPRISM_NATIVE=OFF \
    > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target prism
rm -rf "$OUT"
mkdir -p "$OUT/lib"
cp "$BUILD/prism" "$OUT/prism"
ldd "$BUILD/prism" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
    case $name in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*) continue ;;
        libstdc++.so.*|libgcc_s.so.*) continue ;;
        libcuda.so.*|libcudart.so.*|libcublas.so.*|libcublasLt.so.*) continue ;;
    esac
    cp -L "$path" "$OUT/lib/$name"
done
{
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
    echo "glibc $(ldd --version | head -1 | awk '{print $NF}'), $(nvcc --version | tail -1)"
} > "$OUT/BUILD_INFO"
du -sh "$OUT"
ls "$OUT/lib"
