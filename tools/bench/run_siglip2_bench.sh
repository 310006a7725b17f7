#!/usr/bin/env bash
# SigLIP 2 on this machine's CPU: prism beside transformers on full-size
# random checkpoints of the published shapes, same threads and batch sizes
# (run_siglip_bench.sh on each), Markdown tables for docs/BENCHMARKS.md.
#
#   tools/bench/run_siglip2_bench.sh [THREADS] [MIN_TIME]
#
#   - google/siglip2-base-patch16-naflex (Siglip2Model, model_type siglip2):
#     images of 256 patches (16 x 16), texts of 64 with the attention mask;
#   - google/siglip2-so400m-patch14-384 (SiglipModel, model_type siglip, the
#     Gemma vocabulary shrunk to 32000 rows: a lookup, no timing change).
# Needs a built prism (scripts/build.sh) and pip's torch + transformers;
# about 15 minutes on 2 cores, 4 GB of disk under /tmp/prism-bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-$(nproc)}
MIN_TIME=${2:-5}
DIR=/tmp/prism-bench
NAFLEX=$DIR/siglip2-base-patch16-naflex
SO400M=$DIR/siglip2-so400m-patch14-384
[[ -f $NAFLEX/config.json ]] || python3 tools/bench/make_siglip2_checkpoint.py --out "$NAFLEX" --vocab 32000
[[ -f $SO400M/config.json ]] ||
  python3 tools/bench/make_siglip_checkpoint.py --out "$SO400M" --preset so400m-patch14-384
echo "### siglip2-base-patch16-naflex (256 patches)"
BATCHES=1,8 tools/bench/run_siglip_bench.sh "$NAFLEX" "$THREADS" "$MIN_TIME"
echo
echo "### siglip2-so400m-patch14-384"
BATCHES=1,8 tools/bench/run_siglip_bench.sh "$SO400M" "$THREADS" "$MIN_TIME"
