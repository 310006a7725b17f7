#!/usr/bin/env bash
# tools/gpu/check_tests_on_cpu.sh - runs the GPU tests' own logic on the CPU.
#
# Builds tests/test_cuda_parity.c and tests/test_cuda_golden.c against
# tools/gpu/cuda_standin.c (the CUDA API on the CPU, with the backend's
# BF16/F16 roundings) instead of the prism_cuda library, and runs them:
# every check must pass, or the test (not the GPU) is wrong. Run it before
# spending device time on a changed GPU test.
#
#   tools/gpu/check_tests_on_cpu.sh [BUILD_DIR]    (default build; needs prism_engine built)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${1:-build}
cmake --build "$BUILD_DIR" --target prism_engine >/dev/null
LIBS="-fopenmp -lm"
grep -q "PRISM_HAVE_BLAS" "$BUILD_DIR/CMakeFiles/prism_engine.dir/flags.make" 2>/dev/null && LIBS="$LIBS -lopenblas"
grep -q "PRISM_HAVE_DNNL" "$BUILD_DIR/CMakeFiles/prism_engine.dir/flags.make" 2>/dev/null && LIBS="$LIBS -ldnnl"
grep -q "PRISM_HAVE_IMAGE" "$BUILD_DIR/CMakeFiles/prism_engine.dir/flags.make" 2>/dev/null &&
    LIBS="$LIBS $(pkg-config --libs libturbojpeg spng zlib)"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
status=0
for t in parity golden; do
    ${CC:-cc} -O2 -std=gnu11 -Wall -Wextra -Iengine -Icuda -Itests \
        -DPRISM_TEST_DATA="\"$PWD/tests/data\"" tests/test_cuda_$t.c tools/gpu/cuda_standin.c \
        "$BUILD_DIR/libprism_engine.a" $LIBS -o "$TMP/t_$t"
    if PRISM_TEST_QUIET=1 "$TMP/t_$t"; then echo "test_cuda_$t on the CPU stand-in: ok"
    else echo "test_cuda_$t on the CPU stand-in: FAILED"; status=1; fi
done
exit $status
