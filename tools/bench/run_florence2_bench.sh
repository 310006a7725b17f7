#!/usr/bin/env bash
# Florence-2 generation on this machine's CPU: prism beside transformers on a
# full-size random Florence-2-base checkpoint, f32 and bf16, the same
# threads, batches and token counts; then this machine's sgemm rate and
# weight-streaming rate (tools/bench/bench_stream.c, the decode floor).
# OpenMP runs with its default wait policy (threads spin briefly between
# parallel regions), as prism serve does; OMP_WAIT_POLICY=passive in the
# environment slows every decode step of both engines by 20-45%.
#
#   tools/bench/run_florence2_bench.sh [THREADS] [NEW_TOKENS] [REPEATS]
#
# Needs a built prism_bench_florence2 (scripts/build.sh), pip's torch +
# transformers and 1 GB of disk under /tmp/prism-bench; about 5 minutes on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-$(nproc)}
NEW=${2:-16}
REPEATS=${3:-3}
CKPT=/tmp/prism-bench/florence2-base
[[ -f $CKPT/config.json ]] || python3 tools/bench/make_florence2_checkpoint.py --out "$CKPT"
cc -O3 -march=native -fopenmp tools/bench/bench_stream.c -o /tmp/prism_bench_stream
for dtype in f32 bf16; do
  echo "### prism, $dtype"
  build/prism_bench_florence2 "$CKPT" --threads "$THREADS" --batch 1,4 --new-tokens "$NEW" \
    --repeats "$REPEATS" --dtype "$dtype" --phases 1
  echo
  echo "### transformers, $dtype"
  python3 tools/bench/bench_transformers_florence2.py "$CKPT" --threads "$THREADS" \
    --batch 1,4 --new-tokens "$NEW" --repeats "$REPEATS" --dtype "$dtype" 2>&1 | grep -v Warning
  echo
done
echo "### sgemm and weight streaming"
build/prism bench --model models/demo --threads "$THREADS" --batch 1 --min-time 1 | grep sgemm
/tmp/prism_bench_stream "$THREADS" 2048
