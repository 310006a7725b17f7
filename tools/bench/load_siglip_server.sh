#!/usr/bin/env bash
# Load benchmark of `prism serve` (not a test): wrk drives POST /v1/embed at
# concurrency 1, 16, 64 and 256 on a full-size random-weight SigLIP
# B/16-224, one text or one image per request, and the same model is
# measured by `prism bench` (the engine alone) at batch 1 and at the
# server's max batch, in the same run, on the same threads.
#
#   tools/bench/load_siglip_server.sh [CKPT_DIR] [MIN_DURATION_S]
#
# Each wrk run lasts MIN_DURATION_S (default 20) or three times the time
# the engine needs for `concurrency` items at its best batch rate, whichever
# is longer, so every client gets answers several times. TASKS (default
# "text image") and CONC (default "1 16 64 256") choose what runs; DTYPE
# (default f32) is the --dtype of both the server and prism bench.
#
# CKPT_DIR (default /tmp/prism-bench/siglip-base-patch16-224) is made with
# tools/bench/make_siglip_checkpoint.py when missing (needs torch +
# transformers). The hub's random checkpoint has no spiece.model or
# preprocessor_config.json: a working copy links its weights and takes the
# demo model's (the tokenizer's 4000 pieces fit the 32000-row vocabulary;
# the work per text is the same 64 positions). Needs wrk and a built prism.
# Prints Markdown for docs/BENCHMARKS.md ("## Server under load").
set -euo pipefail
cd "$(dirname "$0")/../.."
CKPT=${1:-/tmp/prism-bench/siglip-base-patch16-224}
DUR=${2:-20}
TASKS=${TASKS:-text image}
CONC=${CONC:-1 16 64 256}
THREADS=${THREADS:-$(nproc)}
MB_TEXT=${MB_TEXT:-32}
MB_IMAGE=${MB_IMAGE:-16}
DTYPE=${DTYPE:-f32}
PORT=${PORT:-18480}
[[ -f $CKPT/config.json ]] || python3 tools/bench/make_siglip_checkpoint.py --out "$CKPT"
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir "$WORK/model"
ln -s "$(realpath "$CKPT")"/config.json "$WORK/model/config.json"
for f in "$(realpath "$CKPT")"/model*.safetensors*; do ln -s "$f" "$WORK/model/"; done
cp models/demo/spiece.model models/demo/preprocessor_config.json "$WORK/model/"

# request bodies: one text; one 640x480 JPEG
echo '{"texts":["a photo of a cat sitting on a red sofa"]}' > "$WORK/text.json"
python3 - "$WORK/image.json" <<'PY'
import base64, io, json, random, sys
from PIL import Image
random.seed(0)
im = Image.new("RGB", (640, 480))
im.putdata([(x % 256, (y * 3) % 256, random.randrange(256)) for y in range(480) for x in range(640)])
buf = io.BytesIO(); im.save(buf, "JPEG", quality=85)
json.dump({"images": ["data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()]},
          open(sys.argv[1], "w"))
PY
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
LUA

echo "machine: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')" >&2
# the engine alone, same threads, batch 1 and the server's max batches
./build/prism bench --model "$WORK/model" --threads "$THREADS" --batch 1,$MB_IMAGE,$MB_TEXT \
  --min-time 5 --dtype "$DTYPE" --json > "$WORK/engine.jsonl"

./build/prism serve --model "$WORK/model" --port "$PORT" --threads "$THREADS" --dtype "$DTYPE" \
  --max-batch-text "$MB_TEXT" --max-batch-image "$MB_IMAGE" --max-queue 4096 \
  --request-timeout 300 --log-level warn 2> "$WORK/server.log" &
SERVER=$!
for _ in $(seq 600); do
  curl -sf "localhost:$PORT/readyz" > /dev/null && break
  sleep 0.1
done

run_wrk() { # task concurrency
  local body=$WORK/$1.json c=$2 t=$(( $2 < 2 ? 1 : 2 ))
  local mb=$([[ $1 == text ]] && echo "$MB_TEXT" || echo "$MB_IMAGE")
  local d=$(python3 -c "
import json, math, sys
r = {(x['task'], x['batch']): x for x in map(json.loads, list(open('$WORK/engine.jsonl'))[1:])}
print(max($DUR, math.ceil(3 * $c / r[('$1', $mb)]['items_per_s'])))")
  echo "$d" > "$WORK/dur-$1-$c.txt"
  curl -s "localhost:$PORT/metrics" > "$WORK/metrics0-$1-$c.txt"
  BODY_FILE=$body wrk -t"$t" -c"$c" -d"${d}s" --timeout 600s --latency -s "$WORK/post.lua" \
    "http://127.0.0.1:$PORT/v1/embed" > "$WORK/wrk-$1-$c.txt"
  curl -s "localhost:$PORT/metrics" > "$WORK/metrics-$1-$c.txt"
}
for task in $TASKS; do
  for c in $CONC; do
    run_wrk "$task" "$c"
    echo "done: $task c=$c $(uptime | sed 's/.*load average/load average/')" >&2
  done
done
kill -TERM $SERVER; wait $SERVER || true

TASKS="$TASKS" CONC="$CONC" python3 - "$WORK" "$MB_IMAGE" "$MB_TEXT" <<'PY'
import json, os, re, sys
work, mb_image, mb_text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
eng = [json.loads(l) for l in open(os.path.join(work, "engine.jsonl"))]
head = eng[0]
E = {(r["task"], r["batch"]): r for r in eng[1:]}
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[unit]
def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = {p: ms(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s|m)\b", t)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    err = re.search(r"Socket errors: (.*)", t)
    return rps, lat, int(bad.group(1)) if bad else 0, err.group(1) if err else ""
def metric(path, name):
    for line in open(path):
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return float("nan")
print(f"engine ({head['backend']}, {head['threads']} threads): sgemm {head['sgemm_gflops']:.1f} GFLOP/s\n")
print("| task | concurrency | requests/s | p50 ms | p99 ms | mean batch | non-2xx | engine busy | server / engine (same run) | server / prism bench |")
print("|---|---|---|---|---|---|---|---|---|---|")
prev = {}
tasks = os.environ["TASKS"].split()
concs = [int(c) for c in os.environ["CONC"].split()]
for task, mb in (("text", mb_text), ("image", mb_image)):
    if task not in tasks:
        continue
    tname = "text-embed" if task == "text" else "image-embed"
    for c in concs:
        rps, lat, bad, err = parse(os.path.join(work, f"wrk-{task}-{c}.txt"))
        mp = os.path.join(work, f"metrics-{task}-{c}.txt")
        s = metric(mp, f'prism_batch_size_sum{{task="{tname}"}}')
        n = metric(mp, f'prism_batch_size_count{{task="{tname}"}}')
        ps, pn = prev.get(task, (0, 0))
        prev[task] = (s, n)
        mean = (s - ps) / (n - pn) if n > pn else float("nan")
        ratio = rps / E[(task, mb)]["items_per_s"]
        # the engine inside the server, over the same wall time: seconds
        # spent in batches and items computed
        m0 = os.path.join(work, f"metrics0-{task}-{c}.txt")
        inf = metric(mp, f'prism_inference_duration_seconds_sum{{task="{tname}"}}') - \
            metric(m0, f'prism_inference_duration_seconds_sum{{task="{tname}"}}')
        items = s - metric(m0, f'prism_batch_size_sum{{task="{tname}"}}')
        dur = float(open(os.path.join(work, f"dur-{task}-{c}.txt")).read())
        busy = inf / dur
        same = rps / (items / inf) if inf > 0 else float("nan")
        print(f"| {task} | {c} | {rps:.2f} | {lat.get('50', float('nan')):.0f} | "
              f"{lat.get('99', float('nan')):.0f} | {mean:.1f} | {bad}{' ' + err if err else ''} | "
              f"{busy:.0%} | {same:.0%} | {ratio:.0%} |")
print()
for task, mb in (("text", mb_text), ("image", mb_image)):
    if task not in tasks or 1 not in concs:
        continue
    e1, em = E[(task, 1)], E[(task, mb)]
    rps, lat, _, _ = parse(os.path.join(work, f"wrk-{task}-1.txt"))
    print(f"- {task}: engine batch 1 {e1['ms_per_batch']:.2f} ms (best {e1['best_ms']:.2f}); "
          f"server p50 at concurrency 1 {lat['50']:.2f} ms: +{lat['50'] - e1['ms_per_batch']:.2f} ms "
          f"over the engine's mean; engine at batch {mb}: {em['items_per_s']:.2f} {task}s/s")
PY
