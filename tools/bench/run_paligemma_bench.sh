#!/usr/bin/env bash
# PaliGemma generation on this machine's CPU: prism beside transformers on a
# full-size random google/paligemma-3b-pt-224 checkpoint, f32 and bf16
# weights, the same threads, batches and token counts; the peak RSS of a
# BF16 checkpoint served in BF16; then this machine's sgemm rate and
# weight-streaming rate (tools/bench/bench_stream.c, the bandwidth floor).
#
#   tools/bench/run_paligemma_bench.sh [THREADS] [NEW_TOKENS] [REPEATS]
#
# Needs a built prism (scripts/build.sh), pip's torch + transformers, 24 GB
# of memory (one 11.7 GB model at a time) and 18 GB of disk under
# /tmp/prism-bench (the float32 and BF16 checkpoints); about 20 minutes on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-$(nproc)}
NEW=${2:-16}
REPEATS=${3:-2}
CKPT=/tmp/prism-bench/paligemma-3b-pt-224
export OMP_WAIT_POLICY=passive
[[ -f $CKPT/config.json ]] || python3 tools/bench/make_paligemma_checkpoint.py --out "$CKPT"
cc -O3 -march=native -fopenmp tools/bench/bench_stream.c -o /tmp/prism_bench_stream
for dtype in f32 bf16; do
  echo "### prism, $dtype weights"
  /usr/bin/time -f "peak RSS %M KiB" build/prism bench --model "$CKPT" --threads "$THREADS" \
    --max-new-tokens "$NEW" --repeats "$REPEATS" --batch 1,8 --dtype "$dtype"
  echo
done
for dtype in float32 bfloat16; do
  echo "### transformers, $dtype"
  /usr/bin/time -f "peak RSS %M KiB" python3 tools/bench/bench_transformers_paligemma.py "$CKPT" \
    --threads "$THREADS" --max-new-tokens "$NEW" --repeats "$REPEATS" --batch 1,8 --dtype "$dtype"
  echo
done
echo "### memory: the BF16 checkpoint with --dtype bf16"
CKPT16=$CKPT-bf16
[[ -f $CKPT16/config.json ]] ||
  python3 tools/bench/make_paligemma_checkpoint.py --out "$CKPT16" --dtype bfloat16
/usr/bin/time -f "peak RSS %M KiB" build/prism bench --model "$CKPT16" --threads "$THREADS" \
  --max-new-tokens "$NEW" --repeats "$REPEATS" --batch 1 --dtype bf16
echo
echo "### sgemm and weight streaming"
build/prism bench --model models/demo --threads "$THREADS" --batch 1 --min-time 1 | grep sgemm
/tmp/prism_bench_stream "$THREADS" 4096
