#!/usr/bin/env bash
# The README's main command: installs what is missing, builds prism, and runs
# it on MODEL_DIR (a hub-format SigLIP directory), or on the bundled demo
# model — tiny, with random weights, so its numbers mean nothing — when no
# directory is given.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
MODEL=${1:-tests/data/siglip_tiny_a}
if [[ $# -eq 0 ]]; then
  echo "run: no model given: using the bundled demo model (tiny, random weights)"
fi
./build/prism info --model "$MODEL"
if [[ $# -eq 0 ]]; then
  ./build/prism score --model "$MODEL" --inputs tests/data/siglip_tiny_a.golden.safetensors
fi
