#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that hold the shared libraries the given
# binaries need directly (their ELF NEEDED entries, resolved by ldd), one per
# line, sorted. The Dockerfiles' runtime stages install exactly this list
# (apt pulls in what those libraries need in turn), so the image carries the
# binary's runtime libraries and no -dev package; scripts/check-deploy.sh
# runs it on every CI build. CUDA's own libraries (cudart, cuBLAS) are left
# out: the nvidia/cuda runtime base image provides them.
#
#   scripts/runtime-deps.sh build/prism
set -euo pipefail
(($#)) || { echo "usage: $0 BINARY..." >&2; exit 2; }
for bin in "$@"; do
  declare -A path=()
  while read -r name _ p _; do
    [[ ${p:-} == /* ]] && path[$name]=$p
  done < <(ldd "$bin")
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # the CUDA runtime libraries come with the nvidia/cuda runtime base image
    [[ $lib =~ ^lib(cudart|cublas|cublasLt)\.so ]] && continue
    p=${path[$lib]:-}
    [[ -n $p ]] || { echo "runtime-deps: $bin: $lib not found by ldd" >&2; exit 1; }
    # dpkg records some files under /lib, others under /usr/lib (merged /usr)
    pkg=""
    for q in "$p" "/usr$p" "${p#/usr}" "$(readlink -f "$p")" "/usr$(readlink -f "$p")" \
             "$(readlink -f "$p" | sed 's,^/usr,,')"; do
      pkg=$(dpkg-query -S "$q" 2>/dev/null | head -1 | cut -d: -f1) && [[ -n $pkg ]] && break
    done
    [[ -n $pkg ]] || { echo "runtime-deps: $bin: no package holds $p" >&2; exit 1; }
    echo "$pkg"
  done
  unset path
done | sort -u
