#!/usr/bin/env bash
# tools/gpu/device_check.sh - the one script to run on a GPU machine, from the
# repository root:
#
#     OUT=/some/dir bash tools/gpu/device_check.sh
#
# Builds the CUDA backend and its GPU tests with no server dependencies
# (no jansson, OpenBLAS or Check needed), runs the GPU tests, makes a
# full-size random SigLIP B/16-224 checkpoint, benchmarks prism's CUDA
# backend and transformers on the same card, and prints a summary table.
# Every step runs under a timeout; a failed step is reported and the later
# steps still run (those that need its output say they were skipped).
# Expected: ~3-4 minutes on an H100 with 16 cores.
#
# Logs go to $OUT (default ./device_check_out), nine files at most:
#   summary.txt, build.log, parity.log, golden.log, checkpoint.log,
#   bench_prism.log, bench_transformers.log, sanitizer.log, serve_check.log
# (and serve/, one log per server, when gpu-carry/ from
# tools/gpu/pack_server.sh was carried: then `prism serve --device cuda`
# is checked against the CPU and load-tested).
# Environment knobs: BUILD_DIR (build-gpu), CKPT (/tmp/prism-siglip-base-224),
# BATCHES (1,32,256), BENCH_SECONDS (2), SKIP_SANITIZER (unset), and
# DEADLINE (480): seconds after which no step starts and running ones are
# cut, so the summary always prints inside a 10-minute device lease.

cd "$(dirname "$0")/../.." || exit 2
OUT=${OUT:-$PWD/device_check_out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
CKPT=${CKPT:-/tmp/prism-siglip-base-224}
BATCHES=${BATCHES:-1,32,256}
BENCH_SECONDS=${BENCH_SECONDS:-2}
DEADLINE=${DEADLINE:-480}
JOBS=$(nproc 2>/dev/null || echo 8)
PRISM_JSON=$(mktemp /tmp/prism_bench.XXXXXX.json)
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export PATH=$PATH:/usr/local/cuda/bin
T_START=$(date +%s)

say() { echo "$*" | tee -a "$SUMMARY"; }

STEPS=()
# step NAME LOG TIMEOUT_S CMD...: runs CMD with its output appended to LOG,
# records "name|status|seconds" for the table, returns CMD's status.
step() {
    local name=$1 log=$2 limit=$3
    shift 3
    local t0 rc dt status left
    t0=$(date +%s)
    left=$(( DEADLINE - (t0 - T_START) - 5 ))
    if [ $left -lt 10 ]; then
        skip "$name" "deadline of ${DEADLINE}s reached"
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name: $*" >> "$log"
    timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ]; then status=ok
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="TIMEOUT(${limit}s)"
    else status="FAILED(rc=$rc)"; fi
    echo "== $name: $status in ${dt}s" >> "$log"
    STEPS+=("$name|$status|$dt|$log")
    echo "[$(date +%H:%M:%S)] $name: $status (${dt}s, log $(basename "$log"))"
    return $rc
}
skip() { STEPS+=("$1|skipped: $2|0|"); echo "[$(date +%H:%M:%S)] $1: skipped ($2)"; }

# ---- the machine ---------------------------------------------------------
say "# prism device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi >> "$SUMMARY" 2>&1 || say "nvidia-smi failed"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.sm,clocks.max.sm,power.limit \
    --format=csv >> "$SUMMARY" 2>&1
{ echo "nvcc: $(nvcc --version 2>&1 | tail -2 | tr '\n' ' ')"; echo "cmake: $(cmake --version | head -1)";
  echo "cc: $(cc --version 2>&1 | head -1)"; echo "c++: $(c++ --version 2>&1 | head -1)";
  echo "cpus: $JOBS"; } >> "$SUMMARY"
CC_ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
case "$CC_ARCH" in ''|*[!0-9]*) CC_ARCH=90 ;; esac

# ---- build ---------------------------------------------------------------------
BUILD_OK=0
step configure "$OUT/build.log" 120 cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DPRISM_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CC_ARCH" \
    -DPRISM_SERVER=OFF -DPRISM_BLAS=OFF -DPRISM_TESTS_CHECK=OFF \
  && step build "$OUT/build.log" 300 cmake --build "$BUILD_DIR" -j"$JOBS" \
       --target test_cuda_parity test_cuda_golden prism_bench_cuda \
  && BUILD_OK=1
[ $BUILD_OK = 1 ] || { tail -40 "$OUT/build.log"; }
BIN=$BUILD_DIR/cuda

# ---- the full-size checkpoint, made on the CPU while the GPU tests run ------------
CKPT_OK=0
CKPT_PID=
CKPT_RC=$(mktemp /tmp/prism_ckpt_rc.XXXXXX)
if [ -f "$CKPT/config.json" ] && ls "$CKPT"/*.safetensors >/dev/null 2>&1; then
    CKPT_OK=1; echo "checkpoint $CKPT exists" >> "$OUT/checkpoint.log"
elif [ -f tools/bench/make_siglip_checkpoint.py ]; then
    CKPT_T0=$(date +%s)
    echo "== checkpoint: python3 tools/bench/make_siglip_checkpoint.py --out $CKPT" >> "$OUT/checkpoint.log"
    ( timeout --kill-after=10 240 python3 tools/bench/make_siglip_checkpoint.py --out "$CKPT" \
        >> "$OUT/checkpoint.log" 2>&1; echo $? > "$CKPT_RC" ) &
    CKPT_PID=$!
else
    skip checkpoint "tools/bench/make_siglip_checkpoint.py missing"
fi

# ---- GPU tests -------------------------------------------------------------------
if [ $BUILD_OK = 1 ]; then
    step test_cuda_parity "$OUT/parity.log" 300 "$BIN/test_cuda_parity"
    step test_cuda_golden "$OUT/golden.log" 180 "$BIN/test_cuda_golden"
else
    skip test_cuda_parity "no build"; skip test_cuda_golden "no build"
fi

# ---- benchmarks -------------------------------------------------------------------------
if [ -n "$CKPT_PID" ]; then
    wait "$CKPT_PID"
    rc=$(cat "$CKPT_RC" 2>/dev/null || echo 1)
    dt=$(( $(date +%s) - CKPT_T0 ))
    if [ "$rc" = 0 ]; then st=ok; CKPT_OK=1
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then st="TIMEOUT(240s)"
    else st="FAILED(rc=$rc)"; fi
    echo "== checkpoint: $st in ${dt}s (beside the GPU tests)" >> "$OUT/checkpoint.log"
    STEPS+=("checkpoint|$st|$dt|$OUT/checkpoint.log")
    echo "[$(date +%H:%M:%S)] checkpoint: $st (${dt}s, made beside the GPU tests, log checkpoint.log)"
fi
rm -f "$CKPT_RC"

if [ $BUILD_OK = 1 ] && [ $CKPT_OK = 1 ]; then
    step bench_prism "$OUT/bench_prism.log" 240 "$BIN/prism_bench_cuda" "$CKPT" --dtype bf16 \
        --batches "$BATCHES" --seconds "$BENCH_SECONDS" --json "$PRISM_JSON"
else
    skip bench_prism "needs the build and the checkpoint"
fi
# the server on the GPU: the binary tools/gpu/pack_server.sh made on the
# development machine (carried as gpu-carry/, with the libraries this
# machine lacks), against the CPU, then under load on the full-size model
if [ -x gpu-carry/prism ]; then
    SERVE_ARGS=(--carry gpu-carry --out "$OUT/serve" --seconds 6)
    [ $CKPT_OK = 1 ] && SERVE_ARGS+=(--ckpt "$CKPT")
    step serve_check "$OUT/serve_check.log" 200 python3 tools/gpu/serve_check.py "${SERVE_ARGS[@]}"
else
    skip serve_check "no gpu-carry/ (run tools/gpu/pack_server.sh and carry it)"
fi
if [ $CKPT_OK = 1 ]; then
    step bench_transformers "$OUT/bench_transformers.log" 300 python3 tools/bench/bench_transformers_gpu.py \
        --model "$CKPT" --batches "$BATCHES" --min-time "$BENCH_SECONDS" --dtype bfloat16
else
    skip bench_transformers "no checkpoint"
fi
if [ $BUILD_OK = 1 ] && [ $CKPT_OK = 1 ]; then
    step bench_prism_tiled_attn "$OUT/bench_prism.log" 120 "$BIN/prism_bench_cuda" "$CKPT" --dtype bf16 \
        --batches 256 --seconds 1 --attention tiled
    step bench_prism_profile "$OUT/bench_prism.log" 120 env PRISM_PROFILE=1 "$BIN/prism_bench_cuda" "$CKPT" \
        --dtype bf16 --batches 1,256 --seconds 1
fi

# ---- memory checker on the small GPU test (last: the most expendable) ----------------
if [ -z "$SKIP_SANITIZER" ] && [ $BUILD_OK = 1 ] && command -v compute-sanitizer >/dev/null; then
    step compute_sanitizer "$OUT/sanitizer.log" 150 compute-sanitizer --tool memcheck \
        --error-exitcode 99 "$BIN/test_cuda_golden"
else
    skip compute_sanitizer "not run"
fi

# ---- summary ------------------------------------------------------------------------------
{
echo
echo "## steps"
echo "| step | status | seconds | result |"
echo "|---|---|---:|---|"
for s in "${STEPS[@]}"; do
    IFS='|' read -r name status secs log <<< "$s"
    res=""
    case $name in
        test_cuda_parity|test_cuda_golden) res=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" 2>/dev/null | tail -1) ;;
        compute_sanitizer) res=$(grep -E 'ERROR SUMMARY' "$log" 2>/dev/null | tail -1) ;;
        serve_check) res=$(grep -E '^[0-9]+ failed' "$log" 2>/dev/null | tail -1) ;;
        bench_prism) res=$(grep -E '^GEMM 8192' "$log" 2>/dev/null | tail -1) ;;
        bench_prism_tiled_attn) res=$(grep -E '^  image batch  256' "$log" 2>/dev/null | tail -1) ;;
    esac
    echo "| $name | $status | $secs | $res |"
done
for s in "${STEPS[@]}"; do
    IFS='|' read -r name status secs log <<< "$s"
    if [ "$status" != ok ] && [ -n "$log" ] && [ -f "$log" ]; then
        echo; echo "## tail of $name ($(basename "$log"))"; tail -8 "$log"
    fi
done
echo
echo "## failed checks (first 25)"
grep -hE '^FAIL ' "$OUT/parity.log" "$OUT/golden.log" "$OUT/serve_check.log" 2>/dev/null | head -25
if [ -f "$OUT/serve_check.log" ]; then
    echo
    echo "## prism serve on the GPU (serve_check.py)"
    grep -E '^(PASS|FAIL) (siglip|pali3|backend|injected|load)|^\|' "$OUT/serve_check.log"
fi
echo
echo "## throughput, bf16 (prism_bench_cuda vs transformers, same card)"
python3 - "$PRISM_JSON" "$OUT/bench_transformers.log" <<'PY' 2>&1
import json, sys
try:
    p = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no prism results ({e})"); p = None
hf_head, hf = None, {}
try:
    for line in open(sys.argv[2]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "impl" in r: hf_head = r
        elif "task" in r: hf[(r["task"], r["batch"])] = r
except Exception as e:
    print(f"no transformers results ({e})")
if p:
    print(f"device {p['device']}; GEMM 8192^3 bf16->f32: {p['gemm_tflops']:.1f} TFLOP/s; "
          f"load {p['load_s']:.1f} s; pixels H2D {p['h2d_gbs']:.1f} GB/s; "
          f"latency b=1: image {p['latency_ms']['image']:.3f} ms, text {p['latency_ms']['text']:.3f} ms")
if hf_head:
    print(f"transformers: torch {hf_head.get('torch')}, attn {hf_head.get('attn')}, {hf_head.get('dtype')}")
print("| task | batch | prism items/s | TFLOP/s | of GEMM | prism ms/call | hf items/s (host) | hf items/s (device) | hf ms/call | prism/hf (host) | prism/hf (device) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
keys = [(r["task"], r["batch"]) for r in p["results"]] if p else sorted(hf)
for k in keys:
    r = next((x for x in (p["results"] if p else []) if (x["task"], x["batch"]) == k), None)
    h = hf.get(k)
    f = lambda v, fmt: (fmt % v) if v is not None else "-"
    pi = r["items_per_s"] if r else None
    hi = h["items_per_s"] if h else None
    hd = h["items_per_s_device"] if h else None
    print(f"| {k[0]} | {k[1]} | {f(pi, '%.1f')} | {f(r and r['tflops'], '%.1f')} | "
          f"{f(r and 100 * r['fraction_of_gemm'], '%.1f%%')} | {f(r and r['ms_median'], '%.3f')} | "
          f"{f(hi, '%.1f')} | {f(hd, '%.1f')} | {f(h and h['ms_median'], '%.3f')} | "
          f"{f(pi / hi if pi and hi else None, '%.2fx')} | {f(pi / hd if pi and hd else None, '%.2fx')} |")
PY
echo
echo "total $(( $(date +%s) - T_START )) s; logs in $OUT"
} | tee -a "$SUMMARY"
rm -f "$PRISM_JSON"
for s in "${STEPS[@]}"; do
    case "$s" in *"|ok|"*|*"|skipped"*) ;; *) exit 1 ;; esac
done
exit 0
