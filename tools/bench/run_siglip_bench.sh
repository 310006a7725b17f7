#!/usr/bin/env bash
# prism beside transformers on a full-size random SigLIP checkpoint, on this
# machine's CPU, same threads and batch sizes; prints a Markdown table with
# the ratios for docs/BENCHMARKS.md.
#
#   tools/bench/run_siglip_bench.sh [CKPT_DIR] [THREADS] [MIN_TIME]
#   (BATCHES=1,8,32 by default)
#
# Needs: a built prism (scripts/build.sh) and pip's torch + transformers.
set -euo pipefail
cd "$(dirname "$0")/../.."
CKPT=${1:-/tmp/prism-bench/siglip-base-patch16-224}
THREADS=${2:-$(nproc)}
MIN_TIME=${3:-5}
BATCHES=${BATCHES:-1,8,32}
[[ -f $CKPT/config.json ]] || python3 tools/bench/make_siglip_checkpoint.py --out "$CKPT"
OUT=$(mktemp -d)
./build/prism bench --model "$CKPT" --threads "$THREADS" --batch "$BATCHES" --min-time "$MIN_TIME" --json \
  > "$OUT/prism.jsonl"
python3 tools/bench/bench_transformers_siglip.py --model "$CKPT" --threads "$THREADS" \
  --batch "$BATCHES" --min-time "$MIN_TIME" > "$OUT/hf.jsonl"
python3 - "$OUT/prism.jsonl" "$OUT/hf.jsonl" <<'PY'
import json, sys
p = [json.loads(l) for l in open(sys.argv[1])]
h = [json.loads(l) for l in open(sys.argv[2])]
head, hf_head = p[0], h[0]
print(f"sgemm (2048³, {head['threads']} threads): {head['sgemm_gflops']:.1f} GFLOP/s; "
      f"transformers on torch {hf_head['torch']} ({hf_head['attn']}), {hf_head['threads']} threads\n")
print("| task | batch | prism items/s | GFLOP/s | of sgemm | transformers items/s | prism / transformers |")
print("|---|---|---|---|---|---|---|")
hf = {(r["task"], r["batch"]): r for r in h[1:]}
for r in p[1:]:
    o = hf[(r["task"], r["batch"])]
    print(f"| {r['task']} | {r['batch']} | {r['items_per_s']:.2f} | {r['gflops']:.1f} | "
          f"{100 * r['fraction_of_sgemm']:.1f}% | {o['items_per_s']:.2f} | "
          f"{r['items_per_s'] / o['items_per_s']:.2f}x |")
PY
rm -rf "$OUT"
