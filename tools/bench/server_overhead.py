#!/usr/bin/env python3
"""What the server adds to one request: sequential POST /v1/embed calls (one
text each, concurrency 1) against a running `prism serve`; for each, the
client's wall time minus the engine time the server reports for it
(X-Inference-Time-Ms). Prints p50/p99 of both and of the difference.

    python3 tools/bench/server_overhead.py [--url http://127.0.0.1:8080] [-n 50]

The difference is everything outside the model: HTTP, parsing,
tokenization, queue wait (including --max-delay-ms), the hand-offs between
threads and writing the JSON.
"""
import argparse
import json
import time
import urllib.request


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--text", default="a photo of a cat sitting on a red sofa")
    args = ap.parse_args()
    body = json.dumps({"texts": [args.text]}).encode()
    total, infer, over = [], [], []
    for i in range(args.n + 3):
        req = urllib.request.Request(args.url + "/v1/embed", data=body,
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            r.read()
            inf = float(r.headers["X-Inference-Time-Ms"])
        dt = (time.perf_counter() - t0) * 1e3
        if i < 3:
            continue  # warm-up
        total.append(dt)
        infer.append(inf)
        over.append(dt - inf)
    print(json.dumps({"n": args.n,
                      "total_ms_p50": round(pct(total, 50), 3), "total_ms_p99": round(pct(total, 99), 3),
                      "engine_ms_p50": round(pct(infer, 50), 3), "engine_ms_p99": round(pct(infer, 99), 3),
                      "overhead_ms_p50": round(pct(over, 50), 3),
                      "overhead_ms_p99": round(pct(over, 99), 3)}))


if __name__ == "__main__":
    main()
