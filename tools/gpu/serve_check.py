#!/usr/bin/env python3
"""`prism serve --device cuda` on a GPU machine, end to end (not a unit test:
the GPU step of tools/gpu/device_check.sh).

    python3 tools/gpu/serve_check.py --carry gpu-carry --out OUT [--ckpt DIR]

--carry is what tools/gpu/pack_server.sh made (the binary and the shared
libraries the GPU machine lacks). From the repository root, with only the
standard library, it:

  1. checks that the binary finds every library (ldd);
  2. serves models/demo on the device under test in f32 and bf16 and on the
     CPU, and compares /v1/embed answers (2 images, 3 texts) and /v1/score;
  3. serves tests/data/pali3_tiny_a the same way and compares captions and
     answers (greedy and 2 beams): token ids must be equal in f32;
  4. checks that an injected out-of-memory (--test-fault) answers 503 and
     the next request 200;
  5. with --ckpt (a full-size SigLIP checkpoint, e.g. the one device_check.sh
     makes), measures requests/s and latency at concurrency 64 and 256
     (--conc) for
     one-text and one-image (640x480 JPEG) requests, and the mean batch size
     from /metrics.

Prints one line per check ("PASS"/"FAIL" + numbers) and a Markdown table of
the load runs; exits 1 when a check failed. --device cpu runs the same
checks with the CPU as the device under test (to try the script where there
is no GPU).
"""
import argparse
import base64
import glob
import http.client
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(ROOT, "models", "demo")
PALI = os.path.join(ROOT, "tests", "data", "pali3_tiny_a")
IMAGES = [os.path.join(ROOT, "tests", "data", "images", n)
          for n in ("jpeg_420.jpg", "png_rgb8.png")]
TEXTS = ["a photo of a cat", "A DOG, running!", "two birds on a wire"]

# f32 on the GPU against the CPU: each op agrees within ~1e-5 relative
# (tests/test_cuda_parity.c), and through the demo model's few layers an
# L2-normalised embedding moves by far less than 1e-4 per element, while
# two different inputs differ by ~1e-1: 1e-4 separates the two cases.
F32_EMB_TOL = 1e-4
# bf16 weights round each to 8 significant bits (~4e-3 relative): the
# embedding of the same input keeps a cosine above 0.99 with the f32 one,
# different inputs' embeddings do not come near it.
BF16_MIN_COSINE = 0.99

failures = []


def report(ok, name, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def cuda_lib_dirs():
    dirs = []
    pats = ["/usr/local/cuda*/lib64", "/usr/local/cuda*/targets/*/lib", "/usr/local/lib",
            "/usr/lib/x86_64-linux-gnu"]
    for p in sys.path:
        pats += [os.path.join(p, "nvidia", "*", "lib"), os.path.join(p, "nvidia", "cu*", "lib")]
    for pat in pats:
        for d in sorted(glob.glob(pat)):
            if glob.glob(os.path.join(d, "libcublasLt.so*")) and d not in dirs:
                dirs.append(d)
    return dirs


class Server:
    """One `prism serve` process on a free port; stderr in a log file."""

    def __init__(self, binary, env, log_dir, name, model, args):
        self.name = name
        self.log_path = os.path.join(log_dir, f"serve_{name}.log")
        self.log = open(self.log_path, "w")
        cmd = [binary, "serve", "--model", model, "--port", "0", "--log-format", "json"] + args
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.log.flush()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.port = None
        deadline = time.time() + 180
        while time.time() < deadline and self.proc.poll() is None:
            if self.port is None:
                for line in open(self.log_path):
                    if '"listening"' in line:
                        self.port = json.loads(line)["port"]
            if self.port is not None:
                try:
                    st, _, _ = request(self.port, "GET", "/readyz")
                    if st == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.2)
        tail = open(self.log_path).read()[-1500:]
        self.stop()
        raise RuntimeError(f"{name} did not become ready:\n{tail}")

    def log_field(self, msg, key):
        for line in open(self.log_path):
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("msg") == msg:
                    return rec.get(key)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        return self.proc.returncode


def request(port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def post(port, path, body):
    st, hdr, data = request(port, "POST", path, body)
    return st, hdr, json.loads(data) if data else None


def data_url(path):
    kind = "png" if path.endswith(".png") else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(open(path, "rb").read()).decode()


def flat(rows):
    return [x for r in rows for x in r]


def post_both(dut, ref, path, body, what):
    """The two servers' answers to the same request, or None (reported)."""
    st_a, _, a = post(dut.port, path, body)
    st_b, _, b = post(ref.port, path, body)
    if st_a != 200 or st_b != 200:
        report(False, what, f"{path}: status {st_a} / {st_b}: {a} {b}")
        return None, None
    return a, b


def compare_embeddings(dut, ref, what, bf16):
    body = {"images": [data_url(p) for p in IMAGES], "texts": TEXTS}
    a, b = post_both(dut, ref, "/v1/embed", body, what)
    if a is None:
        return
    worst_diff, worst_cos = 0.0, 1.0
    for key in ("image_embeddings", "text_embeddings"):
        for u, v in zip(a[key], b[key]):
            worst_diff = max(worst_diff, max(abs(x - y) for x, y in zip(u, v)))
            dot = sum(x * y for x, y in zip(u, v))
            nu = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
            worst_cos = min(worst_cos, dot / nu if nu else 0.0)
    ok = worst_cos >= BF16_MIN_COSINE if bf16 else worst_diff <= F32_EMB_TOL
    report(ok, what, f"max |diff| {worst_diff:.3g}, min cosine {worst_cos:.6f} "
           f"({'cosine >= %g' % BF16_MIN_COSINE if bf16 else 'tolerance %g' % F32_EMB_TOL})")


def compare_scores(dut, ref, what):
    body = {"images": [data_url(p) for p in IMAGES], "texts": TEXTS}
    a, b = post_both(dut, ref, "/v1/score", body, what)
    if a is None:
        return
    la, lb = flat(a["logits"]), flat(b["logits"])
    scale = max(1.0, max(abs(x) for x in lb))
    d = max(abs(x - y) for x, y in zip(la, lb))
    # logits are logit_scale * cosine + bias: the embedding tolerance times the scale
    report(d <= F32_EMB_TOL * 10 * scale, what, f"max |logit diff| {d:.3g} (logits up to {scale:.3g})")


def compare_generation(dut, ref, what, must_equal):
    img = data_url(IMAGES[0])
    cases = [("/v1/caption", {"image": img, "max_new_tokens": 12, "num_beams": 1}),
             ("/v1/caption", {"image": img, "max_new_tokens": 12, "num_beams": 2}),
             ("/v1/vqa", {"image": img, "question": "what is it", "max_new_tokens": 12})]
    same = 0
    for path, body in cases:
        a, b = post_both(dut, ref, path, body, what)
        if a is None:
            return
        same += a["ids"] == b["ids"]
    ok = same == len(cases) or not must_equal
    report(ok, what, f"{same}/{len(cases)} answers with the CPU's token ids"
           + ("" if must_equal else " (bf16: reported, not required)"))


def check_fault(binary, env, out, device):
    s = Server(binary, env, out, "fault", DEMO, ["--device", device, "--dtype", "f32",
                                                  "--test-fault", "matmul:1"])
    st1, hdr, b1 = post(s.port, "/v1/embed", {"texts": ["one"]})
    st2, _, _ = post(s.port, "/v1/embed", {"texts": ["one"]})
    rc = s.stop()
    code = (b1 or {}).get("error", {}).get("code")
    report(st1 == 503 and code == "out_of_memory" and "Retry-After" in hdr and st2 == 200
           and rc == 0, "injected out of memory",
           f"first {st1} {code}, then {st2}; exit {rc}")


# ---- load ------------------------------------------------------------------------

def _client(port, body, t_end, q):
    lat, errors = [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = json.dumps(body)
    while time.time() < t_end:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v1/embed", body=data,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                lat.append(time.perf_counter() - t0)
            else:
                errors += 1
        except OSError:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()
    q.put((lat, errors))


def _proc(port, body, t_end, threads, q):
    import threading
    inner = []
    lock = threading.Lock()

    class Q:
        def put(self, v):
            with lock:
                inner.append(v)
    ts = [threading.Thread(target=_client, args=(port, body, t_end, Q())) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat = [x for v in inner for x in v[0]]
    q.put((lat, sum(v[1] for v in inner)))


def metric(port, name, labels):
    _, _, data = request(port, "GET", "/metrics")
    pat = re.compile(r"^" + re.escape(name) + r"\{([^}]*)\} ([0-9.eE+-]+)$")
    total = 0.0
    for line in data.decode().splitlines():
        m = pat.match(line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    return total


def load(port, body, task, conc, seconds):
    procs = min(conc, max(1, (os.cpu_count() or 4) // 2))
    per = [conc // procs + (i < conc % procs) for i in range(procs)]
    q = mp.Queue()
    b0 = metric(port, "prism_batch_size_sum", {"task": task})
    c0 = metric(port, "prism_batch_size_count", {"task": task})
    t_start = time.time()
    t_end = t_start + seconds
    ps = [mp.Process(target=_proc, args=(port, body, t_end, n, q)) for n in per]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    wall = time.time() - t_start
    lat = sorted(x for r in res for x in r[0])
    errors = sum(r[1] for r in res)
    b1 = metric(port, "prism_batch_size_sum", {"task": task})
    c1 = metric(port, "prism_batch_size_count", {"task": task})
    pct = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] * 1e3 if lat else float("nan")
    return {"task": task, "conc": conc, "rps": len(lat) / wall, "p50": pct(0.5), "p99": pct(0.99),
            "errors": errors, "mean_batch": (b1 - b0) / (c1 - c0) if c1 > c0 else float("nan")}


def load_runs(binary, env, out, device, ckpt, seconds, concs):
    work = tempfile.mkdtemp(prefix="prism-serve-ckpt-")
    for f in os.listdir(ckpt):
        if f == "config.json" or f.startswith("model") and ".safetensors" in f:
            os.symlink(os.path.join(os.path.abspath(ckpt), f), os.path.join(work, f))
    # the random hub-format checkpoint has no tokenizer or image processor:
    # the demo model's (4000 pieces fit the 32000-row vocabulary; the work
    # per text is the same 64 positions)
    for f in ("spiece.model", "preprocessor_config.json"):
        shutil.copy(os.path.join(DEMO, f), work)
    s = Server(binary, env, out, "load", work, ["--device", device, "--dtype", "bf16",
                                                 "--max-batch-image", "256",
                                                 "--max-batch-text", "256",
                                                 "--prep-threads", str(max(2, (os.cpu_count() or 4) - 2)),
                                                 "--http-threads", "2", "--max-queue", "100000"])
    jpeg = os.path.join(work, "load.jpg")
    try:
        from PIL import Image
        Image.radial_gradient("L").resize((640, 480)).convert("RGB").save(jpeg, quality=90)
        img = data_url(jpeg)
    except ImportError:
        img = data_url(IMAGES[0])
    rows = []
    for task, body in (("text-embed", {"texts": ["a photo of a cat sitting on a red sofa"]}),
                       ("image-embed", {"images": [img]})):
        load(s.port, body, task, 16, 2)  # warm-up
        for conc in concs:
            rows.append(load(s.port, body, task, conc, seconds))
    rc = s.stop()
    shutil.rmtree(work, ignore_errors=True)
    print("\n| task | concurrency | requests/s | p50 ms | p99 ms | mean batch | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['conc']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
              f"| {r['mean_batch']:.1f} | {r['errors']} |")
    report(all(r["errors"] == 0 for r in rows) and rc == 0, "load runs",
           f"{len(rows)} runs, exit {rc}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--carry", default="gpu-carry")
    ap.add_argument("--out", default="serve_check_out")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--ckpt", help="full-size SigLIP checkpoint for the load runs")
    ap.add_argument("--seconds", type=float, default=8, help="per load run")
    ap.add_argument("--conc", default="64,256", help="load-run concurrencies")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    binary = os.path.abspath(os.path.join(a.carry, "prism"))
    env = dict(os.environ)
    libs = [os.path.abspath(os.path.join(a.carry, "lib"))] + cuda_lib_dirs()
    env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    env["OMP_WAIT_POLICY"] = "passive"
    info = os.path.join(a.carry, "BUILD_INFO")
    if os.path.exists(info):
        print("carry:", open(info).read().strip().replace("\n", "; "))
    print("LD_LIBRARY_PATH:", env["LD_LIBRARY_PATH"])

    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, env=env)
    missing = [l.split()[0] for l in ldd.stdout.splitlines() if "not found" in l]
    report(ldd.returncode == 0 and not missing, "libraries",
           f"missing: {', '.join(missing)}" if missing else "every library found")
    if missing or ldd.returncode:
        return 1

    servers = []
    try:
        ref = Server(binary, env, a.out, "cpu", DEMO, ["--device", "cpu"])
        servers.append(ref)
        for dt in ("f32", "bf16"):
            dut = Server(binary, env, a.out, f"{a.device}_{dt}", DEMO,
                         ["--device", a.device, "--dtype", dt])
            servers.append(dut)
            backend = dut.log_field("model loaded", "backend")
            report(backend == a.device, f"backend {dt}",
                   f"'model loaded' says backend {backend}; device: "
                   f"{dut.log_field('device', 'detail') or 'no device line'}")
            compare_embeddings(dut, ref, f"siglip embeddings {dt} vs cpu", dt == "bf16")
            if dt == "f32":
                compare_scores(dut, ref, "siglip scores f32 vs cpu")
        ref_g = Server(binary, env, a.out, "cpu_pali3", PALI, ["--device", "cpu"])
        servers.append(ref_g)
        for dt in ("f32", "bf16"):
            dut = Server(binary, env, a.out, f"{a.device}_pali3_{dt}", PALI,
                         ["--device", a.device, "--dtype", dt])
            servers.append(dut)
            compare_generation(dut, ref_g, f"pali3 generation {dt} vs cpu", dt == "f32")
        for s in servers:
            rc = s.stop()
            report(rc == 0, f"exit {s.name}", f"SIGTERM -> exit {rc}")
        servers = []
        check_fault(binary, env, a.out, a.device)
        if a.ckpt:
            load_runs(binary, env, a.out, a.device, a.ckpt, a.seconds,
                      [int(c) for c in a.conc.split(",")])
    except Exception as e:  # a server that did not start, a refused connection
        report(False, "serve check", repr(e))
    finally:
        for s in servers:
            s.stop()
    print(f"\n{len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
