#!/usr/bin/env bash
# CPU BF16 and int8 against float32 on SigLIP B/16, in one run: the GEMM
# candidates (tools/bench/bench_bf16_gemm.c), then `prism bench` with
# --dtype f32, bf16 and int8 back to back (image and text, batch 1/8/32),
# the speed-up lines for docs/BENCHMARKS.md, and the accuracy of both
# against float32 (tools/bench/dtype_accuracy.py).
#
#   tools/bench/run_cpu_dtype_bench.sh [THREADS] [MIN_TIME]
#
# Needs a built prism with oneDNN (scripts/build.sh), a CPU with
# AVX512-BF16 and AVX512-VNNI (or AMX), and pip's torch + transformers for
# the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-$(nproc)}
MIN_TIME=${2:-3}
CKPT=/tmp/prism-bench/siglip-base-patch16-224
export OMP_WAIT_POLICY=passive
[[ -f $CKPT/config.json ]] || python3 tools/bench/make_siglip_checkpoint.py --out "$CKPT"
cc -O2 -fopenmp tools/bench/bench_bf16_gemm.c -o /tmp/prism_bench_bf16_gemm -lopenblas -ldnnl -ldl -lm
echo "### GEMM candidates"
/tmp/prism_bench_bf16_gemm "$THREADS" 2>/dev/null
echo
OUT=$(mktemp -d)
for dt in f32 bf16 int8; do
  build/prism bench --model "$CKPT" --threads "$THREADS" --batch 1,8,32 --min-time "$MIN_TIME" \
    --dtype "$dt" --json > "$OUT/$dt.jsonl"
done
python3 - "$OUT/f32.jsonl" "$OUT/bf16.jsonl" "$OUT/int8.jsonl" <<'PY'
import json, sys
def rows(p):
    out, meta = {}, {}
    for line in open(p):
        d = json.loads(line)
        if "task" in d:
            out[(d["task"], d["batch"])] = d
        else:
            meta.update(d)
    return out, meta
f32, meta = rows(sys.argv[1])
bf16, _ = rows(sys.argv[2])
int8, _ = rows(sys.argv[3])
print(f"### prism bench, f32, bf16 and int8 in one run (sgemm {meta.get('sgemm_gflops', 0):.1f} GFLOP/s)")
print("| task | batch | f32 items/s | bf16 items/s | bf16 / f32 | int8 items/s | int8 / f32 |")
print("|---|---|---|---|---|---|---|")
for k in sorted(f32):
    a, b, c = f32[k], bf16[k], int8[k]
    print(f"| {k[0]} | {k[1]} | {a['items_per_s']:.2f} | {b['items_per_s']:.2f} | "
          f"{b['items_per_s'] / a['items_per_s']:.2f}x | {c['items_per_s']:.2f} | "
          f"{c['items_per_s'] / a['items_per_s']:.2f}x |")
for name, d in (("bf16", bf16), ("int8", int8)):
    for task in ("image", "text"):
        a, b = f32[(task, 8)], d[(task, 8)]
        print(f"CPU {name} speed-up over f32 (SigLIP B/16 {task}, batch 8): "
              f"{b['items_per_s'] / a['items_per_s']:.2f}x")
PY
echo
echo "### accuracy"
for dt in bf16 int8; do
  python3 tools/bench/dtype_accuracy.py --model "$CKPT" --threads "$THREADS" --dtype "$dt"
done
