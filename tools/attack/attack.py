#!/usr/bin/env python3
"""Hostile-traffic run of `prism serve`: valid load beside one attack at a time.

    python3 tools/attack/attack.py [--bin build/prism] [--model models/demo]
        [--generative-model tests/data/pali3_tiny_a] [--duration-per-phase 60]
        [--concurrency 256] [--phases template,bigtext,...] [--extra-server-args "..."]
        [--json-out FILE]

The script starts `BIN serve --model MODEL --port 0 --host 127.0.0.1 ...`
itself (the port comes from the `listening` log line), talks only to that
process on 127.0.0.1, and stops it at the end (SIGTERM, then SIGKILL after
a timeout), also on Ctrl-C. Python standard library only.

Phases, each --duration-per-phase seconds (D):

  baseline      valid load alone, at --concurrency C: a blend of /v1/embed
                (texts; a PNG; a JPEG), /v1/classify, /v1/embeddings and
                GET /healthz, over keep-alive HTTP/1.1 connections (one per
                client), raw requests over asyncio streams.
  then, with the same valid load running beside each:
  template      (1) /v1/classify with one 1,000,000-byte label and a template
                of 1000 "{}" (a 1 GB prompt if expanded naively)
  bigtext       (2) a 30 MB text in /v1/embed (spaced words, then one long
                word), and a 30 MB chat prompt when a generative model is served
  slowloris     (4) --slowloris-conns connections (2000; bounded by the open-file
                limit) each sending one header byte every 5 s
  holdbody      (5) --hold-conns connections (64) each announcing a body just
                under --body-limit, sending all but 64 KiB of it and holding
  bigpngs       (6) one /v1/embed request with 256 PNGs of 2000x2000 black
                (about 12 KB each), repeated
  unservable    (7) a 30 MB JSON body to an endpoint the server cannot serve
                (generation on a SigLIP-only server; an unknown path; a POST
                to GET-only /healthz)
  labelcache    (8) /v1/classify with 255 new labels of 16 KB (4 MB) per request
  formats       (9) GIF and WebP bytes and a 50000x50000 PNG header to
                /v1/caption (to /v1/embed when no generative model is served)
  multipart     (11) multipart/form-data whose Content-Type is over 255 bytes
                (a 300-byte boundary; a 2 KB extra parameter)
  framing       (12) a 100 KB chunk extension; `Transfer-Encoding: gzip,
                chunked`; two different and two equal Content-Length headers;
                Content-Length + chunked with a request smuggled behind the
                chunked end
  after         valid load alone again
  sigterm       (3) needs --generative-model; runs last, on a fresh server
                started with --test-batch-sleep-ms 20 (--sigterm-step-sleep-ms;
                the tiny test models finish 128 tokens in tens of ms): four
                streamed chat completions are open when SIGTERM arrives; every
                stream must end with `data: [DONE]` and the process exit 0

Phases take names or the attack numbers above: --phases 1,4,framing.
After every phase the script waits until /readyz and one valid /v1/embed
answer 200 (at most the server's --request-timeout + 10 s); a server that
does not recover, or that exited, is killed and restarted for the next
phase, and the row says so (the drift is then marked as not meaningful).

One row per phase: the valid requests' p99 latency and its ratio to the
baseline's p99 (requests without an answer count at the time they were
given up, and the figure is then marked as a lower bound, "≥"), their 5xx
count and failures (no answer: timeout, closed connection, refused), the
attack's answers by status, as `variant:status×count` ("closed": the
connection closed without an answer; "open": still held by the server at the
phase's end; "timeout": no answer in time; "200+1more": a second response
came on the connection, i.e. the server read a smuggled request), the
server's peak RSS (VmHWM, reset at each
phase's start through /proc/PID/clear_refs where the kernel allows it) and
its CPU use. RSS drift = (RSS after the `after` phase settles - RSS after
the baseline settles) / RSS after the baseline. A Markdown table of the
rows is printed at the end for docs/BENCHMARKS.md.

The load generator runs on the same machine, and on a small VM on the same
cores, as the server: the client's own CPU use is printed with each row.
The valid load is closed-loop (each client sends its next request when the
previous one is answered), so the throughput figure is the pair's, not the
server's alone. Every loop is bounded by the phase's deadline plus a grace
period (--grace, default the server's --request-timeout + 5 s, so that 504s
arrive before the client gives up); the whole run is bounded by phases x
(D + grace + recovery + restart) + 60 s (printed at the start; a normal run
takes about phases x (D + a few s)) and a watchdog kills the server and exits
past it. Ctrl-C or SIGTERM stops the run, closes every socket and stops the
server. Example (what docs/BENCHMARKS.md "Under attack" shows):

    python3 tools/attack/attack.py --bin build/prism \
        --generative-model tests/data/pali3_tiny_a --duration-per-phase 60
"""
import argparse
import asyncio
import base64
import collections
import fcntl
import json
import os
import platform
import random
import resource
import shlex
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HOST = "127.0.0.1"
# Attacks connect from another loopback address than the valid load, as an
# attacker on the network would: per-address limits (--max-connections-per-ip)
# then act on the attacker, not on the clients it would crowd out.
ATTACK_SRC = "127.0.0.2"
ALL_PHASES = ["template", "bigtext", "slowloris", "holdbody", "bigpngs", "unservable",
              "labelcache", "formats", "multipart", "framing", "sigterm"]
ATTACK_NUMBERS = {"template": 1, "bigtext": 2, "sigterm": 3, "slowloris": 4, "holdbody": 5,
                  "bigpngs": 6, "unservable": 7, "labelcache": 8, "formats": 9,
                  "multipart": 11, "framing": 12}
TITLES = {
    "baseline": "baseline (valid load only)",
    "template": "(1) classify: 1 MB label x 1000 `{}` template",
    "bigtext": "(2) 30 MB text (embed; chat when served)",
    "sigterm": "(3) SIGTERM with open SSE streams",
    "slowloris": "(4) slowloris: 1 header byte / 5 s per connection",
    "holdbody": "(5) connections holding most of a 32 MB body",
    "bigpngs": "(6) 256 x 2000x2000 PNG per request",
    "unservable": "(7) 30 MB JSON to an endpoint not served",
    "labelcache": "(8) classify: new 4 MB label set per request",
    "formats": "(9) GIF / WebP / 50000x50000 PNG header",
    "multipart": "(11) multipart Content-Type over 255 bytes",
    "framing": "(12) framing: chunk ext, TE gzip, dup CL, CL+TE",
    "after": "after (valid load only)",
}


# ---------------------------------------------------------------- images --

def png_bytes(width, height, row_fn=None, color=(0, 0, 0), level=9):
    """A truecolour 8-bit PNG. row_fn(y) -> bytes of 3*width, else solid."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    comp = zlib.compressobj(level)
    parts = []
    solid = b"\x00" + bytes(color) * width
    for y in range(height):
        parts.append(comp.compress(b"\x00" + row_fn(y) if row_fn else solid))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) +
            chunk(b"IEND", b""))


def png_header_only(width, height):
    """A PNG that declares width x height but carries one row of pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


GIF_1X1 = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
           b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
# RIFF container, VP8L (lossless) chunk header of a 1x1 image
WEBP_1X1 = (b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11"
            b"\x88\x88\xfe\x07\x00")


def data_url(b, mime="image/png"):
    return f"data:{mime};base64," + base64.b64encode(b).decode()


# ------------------------------------------------------------------ HTTP --

class Closed(Exception):
    """The connection ended before a complete response."""


def http_request(method, path, body=b"", ctype="application/json", extra=""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if body or method == "POST":
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


async def read_head(reader):
    line = await reader.readline()
    if not line.endswith(b"\n"):
        raise Closed("eof")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise Closed(f"bad status line {line[:60]!r}")
    status = int(parts[1])
    headers = {}
    while True:
        h = await reader.readline()
        if not h.endswith(b"\n"):
            raise Closed("eof in headers")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_response(reader, keep_body=True):
    """(status, headers, body) of one HTTP/1.1 response; Closed if cut."""
    try:
        while True:
            status, headers = await read_head(reader)
            if not 100 <= status < 200:
                break
        body = bytearray()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readline()
                if not size_line.endswith(b"\n"):
                    raise Closed("eof in chunk size")
                n = int(size_line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = await reader.readexactly(n + 2)
                if keep_body:
                    body += data[:-2]
        elif "content-length" in headers:
            n = int(headers["content-length"])
            data = await reader.readexactly(n)
            if keep_body:
                body = data
        elif status not in (204, 304):
            body = await reader.read()
        return status, headers, bytes(body)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
        raise Closed(str(e) or type(e).__name__) from None


class Net:
    """Every connection the script opens, so that all can be closed at once."""

    def __init__(self):
        self.writers = set()

    async def connect(self, port, timeout=5.0, src=None):
        local = (src, 0) if src else None
        r, w = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=1 << 20, local_addr=local), timeout)
        self.writers.add(w)
        return r, w

    def close(self, w):
        if w is None:
            return
        self.writers.discard(w)
        try:
            w.transport.abort()
        except Exception:
            pass

    def close_all(self):
        for w in list(self.writers):
            self.close(w)


async def send_body(writer, data, stop=None, slice_size=1 << 20):
    """Writes data in slices (bounded client memory); stops early when stop() is true."""
    mv = memoryview(data)
    for i in range(0, len(mv), slice_size):
        if stop and stop():
            return False
        writer.write(mv[i:i + slice_size])
        await writer.drain()
    return True


async def shot(net, port, head, body=b"", timeout=30.0, count_responses=False):
    """One request on a new connection, sending while watching for an early answer.
    Returns the status as a string, or "closed" / "timeout" / "connect-failed";
    with count_responses, also the number of responses read in 1.5 s after it."""
    try:
        reader, writer = await net.connect(port, src=ATTACK_SRC)
    except (OSError, asyncio.TimeoutError):
        return ("connect-failed", 0) if count_responses else "connect-failed"
    rtask = asyncio.ensure_future(read_response(reader, keep_body=False))
    result, extra = None, 0
    try:
        try:
            writer.write(head)
            await writer.drain()
            if body:
                await asyncio.wait_for(send_body(writer, body, stop=rtask.done), timeout)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass  # the server may have answered and closed; the reader tells
        try:
            status, headers, _ = await asyncio.wait_for(asyncio.shield(rtask), timeout)
            result = str(status)
            if count_responses:
                extra = 1
                while True:
                    try:
                        await asyncio.wait_for(read_response(reader, keep_body=False), 1.5)
                        extra += 1
                    except (Closed, asyncio.TimeoutError):
                        break
        except Closed:
            result = "closed"
        except asyncio.TimeoutError:
            result = "timeout"
    finally:
        rtask.cancel()
        try:
            await rtask
        except BaseException:
            pass
        net.close(writer)
    return (result, extra) if count_responses else result


# ------------------------------------------------------------------ stats --

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class ValidStats:
    def __init__(self):
        self.lat = []            # seconds, answered requests
        self.lat_all = []        # also those given up (timeout, closed): a lower bound for them
        self.status = collections.Counter()
        self.fail = collections.Counter()    # timeout / closed / connect-failed
        self.by_kind = collections.Counter()  # (kind, status)

    def summary(self, dur):
        n = len(self.lat)
        return {
            "answered": n, "rps": n / dur if dur > 0 else float("nan"),
            "p50_ms": pct(self.lat_all, 50) * 1e3, "p99_ms": pct(self.lat_all, 99) * 1e3,
            # p99 over every request, those without an answer counted at the time they were
            # given up: then only a lower bound
            "p99_lower_bound": bool(sum(self.fail.values())),
            "status": dict(sorted(self.status.items())),
            "5xx": sum(v for k, v in self.status.items() if k >= 500),
            "other_non2xx": sum(v for k, v in self.status.items() if k < 200 or 300 <= k < 500),
            "failed": dict(self.fail),
        }


class AttackStats:
    def __init__(self):
        self.status = collections.Counter()
        self.notes = []

    def add(self, label, n=1):
        self.status[label] += n


# ----------------------------------------------------------------- server --

class Server:
    """`prism serve` as a child process; stderr read by a thread that keeps
    only the port, counts and the last lines (no log file to grow)."""

    def __init__(self, argv):
        self.argv = argv
        self.proc = None
        self.port = None
        self.tail = collections.deque(maxlen=200)
        self.notable = collections.deque(maxlen=200)   # warn/error lines, not per-request
        self.lines = 0
        self._port_ev = threading.Event()
        self.starts = 0

    def start(self, timeout=60.0):
        self.port = None
        self._port_ev.clear()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True, cwd=REPO)
        self.starts += 1
        try:  # a larger pipe: the server must never block on its own log
            fcntl.fcntl(self.proc.stderr.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        except OSError:
            pass
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._port_ev.wait(timeout) or self.port is None:
            self.stop()
            raise RuntimeError("no 'listening' line from the server:\n" + "\n".join(self.tail))

    def _read(self, proc):
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines += 1
            self.tail.append(line)
            if self.port is None and '"msg":"listening"' in line:
                try:
                    self.port = int(json.loads(line)["port"])
                except (ValueError, KeyError):
                    pass
                self._port_ev.set()
            elif '"msg":"request"' not in line and ('"level":"warn' in line or '"level":"error' in line):
                self.notable.append(line)
        self._port_ev.set()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Returns the exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        return self.proc.returncode


class Sampler(threading.Thread):
    """VmRSS / VmHWM and CPU time of the server every 0.5 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pid = None
        self.lock = threading.Lock()
        self.samples = []     # (t, rss_kb, hwm_kb)
        self.stop_ev = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def read_status(self, pid=None):
        pid = pid or self.pid
        out = {}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        out[line[:5]] = int(line.split()[1])
        except OSError:
            return None
        return out.get("VmRSS"), out.get("VmHWM")

    def cpu_s(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.tick
        except (OSError, IndexError, ValueError):
            return float("nan")

    def reset_hwm(self):
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def run(self):
        while not self.stop_ev.wait(0.5):
            pid = self.pid
            if pid is None:
                continue
            r = self.read_status(pid)
            if r and r[0] is not None:
                with self.lock:
                    self.samples.append((time.monotonic(), r[0], r[1]))
                    if len(self.samples) > 100000:
                        del self.samples[:50000]

    def peak_rss_since(self, t0):
        with self.lock:
            xs = [s[1] for s in self.samples if s[0] >= t0]
        return max(xs) if xs else None


# ------------------------------------------------------------- the run --

class Run:
    def __init__(self, args):
        self.a = args
        self.net = Net()
        self.gen = bool(args.generative_model)
        self.rows = []
        self.model_id = os.path.basename(os.path.normpath(args.model))
        extra = shlex.split(args.extra_server_args or "")
        self.body_limit = parse_size(flag_value(extra, "--body-limit", "32M"))
        self.max_items = int(flag_value(extra, "--max-items", "256"))
        argv = [args.bin, "serve", "--model", args.model, "--host", HOST, "--port", "0",
                "--log-format", "json"]
        if self.gen:
            argv += ["--generative-model", args.generative_model]
        self.server = Server(argv + extra)
        self.sampler = Sampler()
        self.rss_base = None
        self.rss_after = None
        self.restarted = False
        self.build_payloads()

    # ---------------------------------------------------------- payloads --
    def build_payloads(self):
        small_png = png_bytes(64, 48, row_fn=lambda y: bytes((x * 4 + y) % 256 for x in range(192)))
        jpeg_path = os.path.join(REPO, "tests", "data", "images", "jpeg_420.jpg")
        jpeg = open(jpeg_path, "rb").read() if os.path.exists(jpeg_path) else None
        self.small_png_url = data_url(small_png)
        J = lambda o: json.dumps(o).encode()
        blend = [
            ("embed-text", http_request("POST", "/v1/embed", J({"texts": ["a photo of a cat", "a dog on a red sofa"]}))),
            ("embed-png", http_request("POST", "/v1/embed", J({"images": [self.small_png_url]}))),
            ("classify", http_request("POST", "/v1/classify", J({"image": self.small_png_url,
                                                                 "labels": ["cat", "dog", "car"],
                                                                 "template": "a photo of a {}."}))),
            ("embeddings", http_request("POST", "/v1/embeddings", J({"input": ["hello world", "a cat"]}))),
            ("healthz", http_request("GET", "/healthz")),
        ]
        if jpeg:
            blend.insert(2, ("embed-jpeg", http_request("POST", "/v1/embed",
                                                        J({"images": [data_url(jpeg, "image/jpeg")]}))))
        self.blend = blend

    # ------------------------------------------------------------- valid --
    async def valid_worker(self, i, deadline, hard, st):
        reader = writer = None
        k = i
        try:
            while time.monotonic() < deadline:
                kind, req = self.blend[k % len(self.blend)]
                k += 1
                t0 = time.monotonic()
                try:
                    if writer is None:
                        reader, writer = await self.net.connect(self.server.port)
                    writer.write(req)
                    await writer.drain()
                    status, headers, _ = await asyncio.wait_for(read_response(reader),
                                                                max(0.1, hard - time.monotonic()))
                    st.lat.append(time.monotonic() - t0)
                    st.lat_all.append(st.lat[-1])
                    st.status[status] += 1
                    st.by_kind[(kind, status)] += 1
                    if headers.get("connection", "").lower() == "close":
                        self.net.close(writer)
                        writer = None
                except asyncio.TimeoutError:
                    st.fail["timeout"] += 1
                    st.lat_all.append(time.monotonic() - t0)
                    self.net.close(writer)
                    writer = None
                except ConnectionRefusedError:
                    st.fail["refused"] += 1
                    st.lat_all.append(time.monotonic() - t0)
                    self.net.close(writer)
                    writer = None
                    await asyncio.sleep(0.1)
                except (Closed, ConnectionError):
                    st.fail["closed"] += 1
                    st.lat_all.append(time.monotonic() - t0)
                    self.net.close(writer)
                    writer = None
                    await asyncio.sleep(0.05)
                except OSError:
                    st.fail["connect-failed"] += 1
                    st.lat_all.append(time.monotonic() - t0)
                    self.net.close(writer)
                    writer = None
                    await asyncio.sleep(0.1)
        finally:
            self.net.close(writer)

    def valid_load(self, deadline, hard, st):
        return [asyncio.ensure_future(self.valid_worker(i, deadline, hard, st))
                for i in range(self.a.concurrency)]

    # ------------------------------------------------------------ phases --
    async def repeat(self, n, fn, deadline, res):
        """n workers, each calling fn() (-> label) until the deadline."""
        async def w(j):
            i = j
            while time.monotonic() < deadline:
                label = await fn(i, deadline)
                res.add(label)
                i += n
                if label == "connect-failed":
                    await asyncio.sleep(0.1)
        await asyncio.gather(*(w(j) for j in range(n)))

    def short(self, deadline):
        """Timeout for requests that should be answered at once: 5 s, within the grace."""
        return min(5.0, self.remaining(deadline))

    def remaining(self, deadline):
        return max(0.5, deadline + self.a.grace - time.monotonic())

    async def atk_template(self, deadline, res):
        body = json.dumps({"image": self.small_png_url, "labels": ["x" * 1000000],
                           "template": "{}" * 1000}).encode()
        head = self.head_for("/v1/classify", len(body))
        await self.repeat(2, lambda i, d: shot(self.net, self.server.port, head, body,
                                               self.remaining(d)), deadline, res)

    def head_for(self, path, n, ctype="application/json"):
        return (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {n}\r\n\r\n").encode()

    async def atk_bigtext(self, deadline, res):
        n = 30_000_000
        spaced = b'{"texts":["' + (b"lorem ipsum dolor sit amet " * (n // 27 + 1))[:n] + b'"]}'
        word = b'{"texts":["' + b"x" * n + b'"]}'
        bodies = [("/v1/embed", spaced, "embed-words"), ("/v1/embed", word, "embed-1word")]
        if self.gen:
            pre = (b'{"max_tokens":4,"messages":[{"role":"user","content":[{"type":"image_url",'
                   b'"image_url":{"url":"' + self.small_png_url.encode() + b'"}},{"type":"text","text":"')
            bodies.append(("/v1/chat/completions", pre + b"caption en " * (n // 11) + b'"}]}]}', "chat"))

        async def one(i, d):
            path, body, tag = bodies[i % len(bodies)]
            r = await shot(self.net, self.server.port, self.head_for(path, len(body)), body, self.remaining(d))
            return f"{tag}:{r}"
        await self.repeat(len(bodies), one, deadline, res)

    async def atk_slowloris(self, deadline, res):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = max(0, min(self.a.slowloris_conns, soft - self.a.concurrency - 300))
        if n < self.a.slowloris_conns:
            res.notes.append(f"{n} connections (open-file limit {soft})")
        head = (f"POST /v1/embed HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"X-Slow: " + "a" * 4000).encode()

        async def conn(j):
            await asyncio.sleep(random.uniform(0, min(2.0, max(0.0, deadline - time.monotonic()))))
            try:
                reader, writer = await self.net.connect(self.server.port, src=ATTACK_SRC)
            except (OSError, asyncio.TimeoutError):
                return "connect-failed"
            rtask = asyncio.ensure_future(read_response(reader, keep_body=False))
            label = "open"
            try:
                i = 0
                while time.monotonic() < deadline and i < len(head):
                    if rtask.done():
                        break
                    try:
                        writer.write(head[i:i + 1])
                        await writer.drain()
                    except (ConnectionError, OSError):
                        break
                    i += 1
                    await asyncio.wait([rtask], timeout=min(5.0, max(0.0, deadline - time.monotonic())))
                if rtask.done():
                    try:
                        label = str(rtask.result()[0])
                    except Closed:
                        label = "closed"
                else:
                    await asyncio.wait([rtask], timeout=0.2)
                    if rtask.done():
                        try:
                            label = str(rtask.result()[0])
                        except Closed:
                            label = "closed"
            finally:
                rtask.cancel()
                self.net.close(writer)
            return label

        tasks = []
        for j in range(n):
            tasks.append(asyncio.ensure_future(conn(j)))
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            res.add(r if isinstance(r, str) else type(r).__name__)

    async def atk_holdbody(self, deadline, res):
        cl = self.body_limit - 1
        send = max(0, cl - 65536)
        body = b'{"texts":["' + b"a" * max(0, send - 11)
        head = self.head_for("/v1/embed", cl)

        async def hold(i, d):
            try:
                reader, writer = await self.net.connect(self.server.port, src=ATTACK_SRC)
            except (OSError, asyncio.TimeoutError):
                return "connect-failed"
            rtask = asyncio.ensure_future(read_response(reader, keep_body=False))
            try:
                try:
                    writer.write(head)
                    await asyncio.wait_for(send_body(writer, body, stop=rtask.done),
                                           max(0.1, d - time.monotonic()))
                except (ConnectionError, OSError, asyncio.TimeoutError):
                    pass
                await asyncio.wait([rtask], timeout=max(0.0, d - time.monotonic()))
                if not rtask.done():
                    return "open"
                try:
                    return str(rtask.result()[0])
                except Closed:
                    return "closed"
            finally:
                rtask.cancel()
                self.net.close(writer)
        await self.repeat(self.a.hold_conns, hold, deadline, res)

    async def atk_bigpngs(self, deadline, res):
        big = data_url(png_bytes(2000, 2000))
        n = self.max_items
        body = json.dumps({"images": [big] * n}).encode()
        res.notes.append(f"{n} images, {len(body) / 1e6:.1f} MB body")
        head = self.head_for("/v1/embed", len(body))
        await self.repeat(1, lambda i, d: shot(self.net, self.server.port, head, body, self.remaining(d)),
                          deadline, res)

    async def atk_unservable(self, deadline, res):
        n = 30_000_000
        body = b'{"messages":[{"role":"user","content":"' + b"caption en " * (n // 11) + b'"}]}'
        targets = [("/v1/nonexistent", "unknown-path"), ("/healthz", "post-healthz")]
        if not self.gen:
            targets.insert(0, ("/v1/chat/completions", "chat-on-siglip"))

        async def one(i, d):
            path, tag = targets[i % len(targets)]
            r = await shot(self.net, self.server.port, self.head_for(path, len(body)), body, self.remaining(d))
            return f"{tag}:{r}"
        await self.repeat(2, one, deadline, res)

    async def atk_labelcache(self, deadline, res):
        nl = max(1, self.max_items - 1)
        size = 4_000_000 // nl
        filler = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
        counter = [0]

        async def one(i, d):
            counter[0] += 1
            r = counter[0]
            labels = [f"r{r} l{j} {filler}" for j in range(nl)]
            body = json.dumps({"image": self.small_png_url, "labels": labels}).encode()
            return await shot(self.net, self.server.port, self.head_for("/v1/classify", len(body)), body,
                              self.remaining(d))
        res.notes.append(f"{nl} labels of {size / 1e3:.0f} KB")
        await self.repeat(2, one, deadline, res)

    async def atk_formats(self, deadline, res):
        imgs = [("gif", data_url(GIF_1X1, "image/gif")), ("webp", data_url(WEBP_1X1, "image/webp")),
                ("png50k", data_url(png_header_only(50000, 50000)))]
        reqs = []
        for tag, url in imgs:
            if self.gen:
                body = json.dumps({"image": url, "max_new_tokens": 4}).encode()
                reqs.append((tag, self.head_for("/v1/caption", len(body)), body))
            else:
                body = json.dumps({"images": [url]}).encode()
                reqs.append((tag, self.head_for("/v1/embed", len(body)), body))
        if not self.gen:
            res.notes.append("sent to /v1/embed: no generative model")

        async def one(i, d):
            tag, head, body = reqs[i % len(reqs)]
            return f"{tag}:" + await shot(self.net, self.server.port, head, body, self.short(d))
        await self.repeat(len(reqs), one, deadline, res)

    async def atk_multipart(self, deadline, res):
        def mp(boundary, extra_param="", field="texts"):
            b = boundary.encode()
            body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="' + field.encode() +
                    b'"\r\n\r\na cat\r\n' +
                    b"--" + b + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                    b"Content-Type: image/png\r\n\r\n" + base64.b64decode(self.small_png_url.split(",", 1)[1]) +
                    b"\r\n--" + b + b"--\r\n")
            return f"multipart/form-data; boundary={boundary}{extra_param}", body
        def variants(field):
            v = [("boundary300", *mp("B" * 300, field=field)),
                 ("boundary250", *mp("C" * 250, field=field)),
                 ("param2k", *mp("short", "; x=" + "a" * 2000, field=field)),
                 ("quoted300", *mp('"' + "Q" * 298 + '"', field=field))]
            # the quoted boundary's body uses the unquoted value
            v[3] = ("quoted300", v[3][1], mp("Q" * 298, field=field)[1])
            return v
        by_path = {"/v1/embed": variants("texts"), "/v1/classify": variants("labels")}
        n = len(by_path["/v1/embed"])

        async def one(i, d):
            path = "/v1/embed" if (i // n) % 2 == 0 else "/v1/classify"
            tag, ctype, body = by_path[path][i % n]
            return f"{tag}:{path.rsplit('/', 1)[1]}:" + await shot(
                self.net, self.server.port, self.head_for(path, len(body), ctype), body, self.short(d))
        await self.repeat(n, one, deadline, res)

    async def atk_framing(self, deadline, res):
        js = b'{"texts":["a cat"]}'
        H = f"POST /v1/embed HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        chunked = b"%x\r\n" % len(js) + js + b"\r\n0\r\n\r\n"
        ext = b"%x;" % len(js) + b"e=" + b"a" * 100000 + b"\r\n" + js + b"\r\n0\r\n\r\n"
        smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        clte_body = chunked + smuggled
        variants = [
            ("chunk-ext-100k", (H + "Transfer-Encoding: chunked\r\n\r\n").encode(), ext),
            ("te-gzip-chunked", (H + "Transfer-Encoding: gzip, chunked\r\n\r\n").encode(), chunked),
            ("dup-cl-differ", (H + f"Content-Length: {len(js)}\r\nContent-Length: {len(js) + 5}\r\n\r\n").encode(),
             js + b"XXXXX"),
            ("dup-cl-same", (H + f"Content-Length: {len(js)}\r\nContent-Length: {len(js)}\r\n\r\n").encode(), js),
            ("cl+chunked", (H + f"Content-Length: {len(clte_body)}\r\nTransfer-Encoding: chunked\r\n\r\n").encode(),
             clte_body),
        ]

        async def one(i, d):
            tag, head, body = variants[i % len(variants)]
            r, n = await shot(self.net, self.server.port, head, body, self.short(d), count_responses=True)
            return f"{tag}:{r}" + (f"+{n - 1}more" if n > 1 else "")
        await self.repeat(len(variants), one, deadline, res)

    # ------------------------------------------------------------ driver --
    async def wait_ready(self, timeout=30.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.server.alive():
                return None
            r = await shot(self.net, self.server.port, http_request("GET", "/readyz"), timeout=2.0)
            if r == "200":
                return time.monotonic() - t0
            await asyncio.sleep(0.2)
        return None

    async def recover(self, timeout):
        """After a phase: seconds until /readyz and one valid embed answer 200, or None."""
        t0 = time.monotonic()
        probe = self.blend[0][1]
        while time.monotonic() - t0 < timeout and self.server.alive():
            left = timeout - (time.monotonic() - t0)
            ready = await shot(self.net, self.server.port, http_request("GET", "/readyz"),
                               timeout=max(0.5, min(2.0, left)))
            if ready == "200":
                r = await shot(self.net, self.server.port, probe, timeout=max(0.5, left))
                if r == "200":
                    return time.monotonic() - t0
            await asyncio.sleep(0.2)
        return None

    async def settle_rss(self, max_s=10.0):
        """RSS once it stops moving (4 samples within 1%), at most max_s."""
        xs = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < max_s:
            r = self.sampler.read_status(self.server.pid)
            if not r:
                return None
            xs.append(r[0])
            if len(xs) >= 4 and max(xs[-4:]) - min(xs[-4:]) <= 0.01 * max(xs[-4:]):
                break
            await asyncio.sleep(0.5)
        return xs[-1] if xs else None

    async def ensure_server(self, name):
        if self.server.alive():
            return None
        rc = self.server.proc.returncode if self.server.proc else None
        self.server.start()
        self.sampler.pid = self.server.pid
        self.restarted = True
        await self.wait_ready(60)
        return f"server restarted before this phase (it had exited, code {rc})"

    async def phase(self, name):
        note = []
        r = await self.ensure_server(name)
        if r:
            note.append(r)
        rec = None
        D = self.a.duration_per_phase
        hwm_reset = self.sampler.reset_hwm()
        cpu0, ccpu0 = self.sampler.cpu_s(), time.process_time()
        t0 = time.monotonic()
        deadline, hard = t0 + D, t0 + D + self.a.grace
        vst = ValidStats()
        workers = self.valid_load(deadline, hard, vst)
        ast = AttackStats()
        attack = None
        if name not in ("baseline", "after"):
            attack = asyncio.ensure_future(getattr(self, "atk_" + name)(deadline, ast))
        g = asyncio.gather(*workers, *([attack] if attack else []))
        g.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(g, D + self.a.grace + 5)
        except asyncio.TimeoutError:
            note.append("phase cut at its time limit")
        finally:
            for t in workers + ([attack] if attack else []):
                t.cancel()
            await asyncio.gather(*workers, *([attack] if attack else []), return_exceptions=True)
        self.net.close_all()
        wall = time.monotonic() - t0
        cpu = self.sampler.cpu_s() - cpu0
        ccpu = time.process_time() - ccpu0
        st = self.sampler.read_status(self.server.pid) if self.server.alive() else None
        peak = self.sampler.peak_rss_since(t0)
        if not self.server.alive():
            rc = self.server.proc.returncode
            note.append(f"server exited during the phase (code {rc}"
                        f"{', signal ' + signal.Signals(-rc).name if rc is not None and rc < 0 else ''})")
        row = {"phase": name, "title": TITLES[name], "valid": vst.summary(D),
               "attack": dict(ast.status), "notes": note + ast.notes,
               "hwm_kb": st[1] if st else None, "hwm_is_phase_peak": hwm_reset,
               "peak_rss_kb": peak, "server_cpu_pct": 100 * cpu / wall if wall else float("nan"),
               "client_cpu_pct": 100 * ccpu / wall if wall else float("nan"),
               "ready_before_s": rec}
        return row

    async def phase_sigterm(self):
        note = []
        ms = self.a.sigterm_step_sleep_ms
        if ms > 0:
            # a fresh server whose decode steps (and embedding batches) sleep ms first, so that
            # the streams are still running when SIGTERM comes (the tiny models finish 128
            # tokens in tens of milliseconds)
            rc = self.server.stop(signal.SIGTERM, self.a.request_timeout + 15)
            note.append(f"the server before this phase exited with code {rc} on SIGTERM")
            self.server.argv = self.server.argv + ["--test-batch-sleep-ms", str(ms)]
            self.server.start()
            self.sampler.pid = self.server.pid
            note.append(f"fresh server with --test-batch-sleep-ms {ms:g} (testing flag: each decode "
                        "step and embedding batch waits that long)")
        r = await self.ensure_server("sigterm")
        if r:
            note.append(r)
        await self.wait_ready(30)
        self.sampler.reset_hwm()
        D = self.a.duration_per_phase
        t0 = time.monotonic()
        deadline, hard = t0 + D, t0 + D + self.a.grace
        vst = ValidStats()
        workers = self.valid_load(deadline, hard, vst)
        ast = AttackStats()
        n_streams = 4
        body = json.dumps({"stream": True, "max_tokens": int(self.a.sigterm_max_tokens), "messages": [
            {"role": "user", "content": [{"type": "text", "text": "caption en"},
                                         {"type": "image_url", "image_url": {"url": self.small_png_url}}]}]
        }).encode()
        head = self.head_for("/v1/chat/completions", len(body))
        first = [asyncio.Event() for _ in range(n_streams)]
        info = [{"done": False, "done_before_term": False, "chunks": 0, "status": None, "end": None}
                for _ in range(n_streams)]
        term_sent = [False]

        async def stream(j):
            try:
                reader, writer = await self.net.connect(self.server.port, src=ATTACK_SRC)
            except (OSError, asyncio.TimeoutError):
                info[j]["status"] = "connect-failed"
                first[j].set()
                return
            try:
                writer.write(head + body)
                await writer.drain()
                status, headers = await asyncio.wait_for(read_head(reader), 30)
                info[j]["status"] = status
                if "chunked" not in headers.get("transfer-encoding", "").lower():
                    info[j]["end"] = "not-chunked"
                    return
                buf = b""
                while True:   # chunked transfer coding, SSE events inside
                    size_line = await asyncio.wait_for(reader.readline(), 60)
                    if not size_line.endswith(b"\n"):
                        info[j]["end"] = "eof"
                        break
                    n = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if n == 0:
                        info[j]["end"] = "last-chunk"
                        break
                    buf += (await asyncio.wait_for(reader.readexactly(n + 2), 60))[:-2]
                    while b"\n\n" in buf:
                        event, buf = buf.split(b"\n\n", 1)
                        for line in event.split(b"\n"):
                            if not line.startswith(b"data:"):
                                continue
                            info[j]["chunks"] += 1
                            first[j].set()
                            if line.strip() == b"data: [DONE]":
                                info[j]["done"] = True
                                info[j]["done_before_term"] = not term_sent[0]
            except (Closed, ConnectionError, asyncio.IncompleteReadError, ValueError):
                info[j]["end"] = "closed"
            except asyncio.TimeoutError:
                info[j]["end"] = "timeout"
            finally:
                first[j].set()
                self.net.close(writer)

        streams = [asyncio.ensure_future(stream(j)) for j in range(n_streams)]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 10)
        except asyncio.TimeoutError:
            note.append("not every stream had a first chunk within 10 s")
        term_sent[0] = True
        t_term = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*streams, return_exceptions=True)
        loop = asyncio.get_running_loop()
        try:
            rc = await asyncio.wait_for(loop.run_in_executor(None, self.server.proc.wait), 60)
        except asyncio.TimeoutError:
            rc = None
            note.append("no exit within 60 s of SIGTERM: killed")
            self.server.stop(signal.SIGKILL)
        exit_s = time.monotonic() - t_term
        try:
            await asyncio.wait_for(asyncio.gather(*workers), max(1.0, hard - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        for t in workers:
            t.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self.net.close_all()
        live = [x for x in info if not x["done_before_term"]]
        ok = sum(1 for x in live if x["done"])
        for x in info:
            ast.add(f"{x['status']}:{'[DONE]' if x['done'] else 'no-[DONE]'}"
                    f"{'(ended before SIGTERM)' if x['done_before_term'] else ''}")
        ast.notes.append(f"{ok}/{len(live)} streams live at SIGTERM ended with [DONE]; exit code {rc} "
                         f"{exit_s:.1f} s after SIGTERM; valid 503s and closed connections are "
                         "expected once it drains")
        return {"phase": "sigterm", "title": TITLES["sigterm"], "valid": vst.summary(D),
                "attack": dict(ast.status), "notes": note + ast.notes,
                "hwm_kb": None, "hwm_is_phase_peak": False,
                "peak_rss_kb": self.sampler.peak_rss_since(t0), "server_cpu_pct": float("nan"),
                "client_cpu_pct": float("nan"), "exit_code": rc,
                "streams_done": f"{ok}/{len(live)}"}

    def print_row(self, row, base_p99):
        v = row["valid"]
        ratio = v["p99_ms"] / base_p99 if base_p99 and base_p99 == base_p99 else float("nan")
        att = ", ".join(f"{k}: {n}" for k, n in sorted(row["attack"].items())) or "-"
        hwm = f"{row['hwm_kb'] / 1024:.0f} MiB" if row.get("hwm_kb") else "-"
        peak = f"{row['peak_rss_kb'] / 1024:.0f} MiB" if row.get("peak_rss_kb") else "-"
        print(f"\n== {row['title']}")
        print(f"   valid: {v['answered']} answered, {v['rps']:.1f}/s, p50 {v['p50_ms']:.1f} ms, "
              f"p99 {p99_text(v)} ms ({ratio:.2f}x baseline), 5xx {v['5xx']}, "
              f"other non-2xx {v['other_non2xx']}, failed {v['failed'] or 0}, statuses {v['status']}")
        print(f"   attack: {att}")
        print(f"   server: peak VmHWM {hwm}, peak sampled RSS {peak}, CPU {row['server_cpu_pct']:.0f}%; "
              f"client CPU {row['client_cpu_pct']:.0f}%")
        for n in row["notes"]:
            print(f"   note: {n}")
        sys.stdout.flush()

    async def main(self):
        # SIGTERM to the script stops it as Ctrl-C does (cleanup included)
        task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, self.a.slowloris_conns + self.a.concurrency + self.a.hold_conns + 1000)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        self.server.start()
        self.sampler.pid = self.server.pid
        self.sampler.start()
        if await self.wait_ready(60) is None:
            raise RuntimeError("server not ready within 60 s:\n" + "\n".join(self.server.tail))
        print(f"server pid {self.server.pid}, port {self.server.port}: {' '.join(self.server.argv)}")
        phases = ["baseline"] + [p for p in self.a.phases if p != "sigterm"] + ["after"]
        base_p99 = None
        for name in phases:
            row = await self.phase(name)
            if self.server.alive():
                lim = self.a.request_timeout + 10
                rec = await self.recover(lim)
                if rec is None:
                    row["notes"].append(f"no valid answer within {lim:g} s after the phase: "
                                        "server killed (SIGKILL) and restarted for the next phase")
                    self.server.stop(signal.SIGKILL, 10)
                elif rec > 1.0:
                    row["notes"].append(f"valid answers again {rec:.1f} s after the phase")
                row["recovery_s"] = rec
            if name == "baseline":
                base_p99 = row["valid"]["p99_ms"]
                self.rss_base = await self.settle_rss(5) if self.server.alive() else None
            if name == "after" and self.server.alive():
                self.rss_after = await self.settle_rss(10)
            row["ratio"] = row["valid"]["p99_ms"] / base_p99 if base_p99 else float("nan")
            self.rows.append(row)
            self.print_row(row, base_p99)
        if "sigterm" in self.a.phases:
            if not self.gen:
                print("\n== (3) SIGTERM with open SSE streams: skipped (needs --generative-model)")
            else:
                row = await self.phase_sigterm()
                row["ratio"] = row["valid"]["p99_ms"] / base_p99 if base_p99 else float("nan")
                self.rows.append(row)
                self.print_row(row, base_p99)


def flag_value(argv, flag, default):
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def parse_size(s):
    s = str(s).strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    return int(float(s[:-1] if mult > 1 else s) * mult)


def machine_line():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.0f} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem}, {platform.platform()}, load average " + \
        " ".join(f"{x:.2f}" for x in os.getloadavg())


def commit_line():
    try:
        h = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return h + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def fmt_status(d):
    return ", ".join(f"{k}×{v}" for k, v in sorted(d.items())) or "-"


def p99_text(v):
    return ("≥" if v.get("p99_lower_bound") else "") + f"{v['p99_ms']:.0f}"


def markdown(run, args):
    out = ["| phase | valid p99 ms | × baseline p99 | valid req/s | valid 5xx | valid without answer | "
           "attack answers | peak VmHWM MiB | server CPU | notes |",
           "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in run.rows:
        v = r["valid"]
        failed = ", ".join(f"{k} {n}" for k, n in sorted(v["failed"].items())) or "0"
        hwm = r.get("hwm_kb") or r.get("peak_rss_kb")
        cells = [r["title"], p99_text(v), ("≥" if v.get("p99_lower_bound") else "") + f"{r['ratio']:.2f}",
                 f"{v['rps']:.0f}", str(v["5xx"]), failed, fmt_status(r["attack"]),
                 f"{hwm / 1024:.0f}" if hwm else "-",
                 f"{r['server_cpu_pct']:.0f}%" if r["server_cpu_pct"] == r["server_cpu_pct"] else "-",
                 "; ".join(r["notes"])]
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    if run.rss_base and run.rss_after:
        drift = (run.rss_after - run.rss_base) / run.rss_base
        d = (f"RSS drift: {drift:+.1%} ({run.rss_base / 1024:.0f} MiB after the baseline, "
             f"{run.rss_after / 1024:.0f} MiB after the `after` phase, both settled)")
        if run.restarted:
            d += "; not meaningful: the server was restarted during the run"
    else:
        d = "RSS drift: n/a (the server was not running at one of the two points)"
    return "\n".join(out) + "\n\n" + d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "prism"))
    ap.add_argument("--model", default=os.path.join(REPO, "models", "demo"))
    ap.add_argument("--generative-model", default=None,
                    help="a pali3 model directory served beside --model (e.g. tests/data/pali3_tiny_a)")
    ap.add_argument("--duration-per-phase", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--phases", default=",".join(ALL_PHASES),
                    help="comma-separated subset of: " + ",".join(ALL_PHASES) + " (or their numbers)")
    ap.add_argument("--extra-server-args", default="")
    ap.add_argument("--grace", type=float, default=None,
                    help="seconds past a phase's end for answers still due "
                         "(default: the server's --request-timeout + 5)")
    ap.add_argument("--slowloris-conns", type=int, default=2000)
    ap.add_argument("--hold-conns", type=int, default=64)
    ap.add_argument("--sigterm-max-tokens", type=int, default=128)
    ap.add_argument("--sigterm-step-sleep-ms", type=float, default=20.0,
                    help="the SIGTERM phase runs on a fresh server with --test-batch-sleep-ms this "
                         "(0: on the server of the other phases)")
    ap.add_argument("--json-out", default=None, help="also write every row as JSON here")
    args = ap.parse_args()
    by_num = {str(v): k for k, v in ATTACK_NUMBERS.items()}
    sel = []
    for p in (x.strip() for x in args.phases.split(",") if x.strip()):
        p = by_num.get(p, p)
        if p not in ALL_PHASES:
            ap.error(f"unknown phase {p!r}")
        sel.append(p)
    args.phases = sel
    extra = shlex.split(args.extra_server_args or "")
    args.request_timeout = float(flag_value(extra, "--request-timeout", "30"))
    if args.grace is None:
        args.grace = args.request_timeout + 5
    args.bin = os.path.abspath(args.bin)
    n_phases = len([p for p in sel if p != "sigterm"]) + 2
    # phase, grace, cut, recovery probe, settle, restart
    per = args.duration_per_phase + args.grace + 5 + args.request_timeout + 10 + 10 + 60
    bound = n_phases * per + 60 + (args.duration_per_phase + args.grace + 90 if "sigterm" in sel else 0)
    print(f"prism under attack: {', '.join(sel)}")
    print(f"machine: {machine_line()}")
    print(f"commit: {commit_line()}; binary {args.bin}")
    print(f"started: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; D = "
          f"{args.duration_per_phase:g} s per phase, grace {args.grace:g} s, valid concurrency "
          f"{args.concurrency}; the run ends within {bound:.0f} s")
    print("note: this load generator shares the machine's cores with the server; its own CPU use is "
          "printed per phase, and latencies include its scheduling delays")
    sys.stdout.flush()

    run = Run(args)

    # a last resort: past the bound, kill the server and leave
    def watchdog():
        print(f"\nwatchdog: the run passed {bound:.0f} s; killing the server", file=sys.stderr)
        try:
            run.server.stop(signal.SIGKILL, 5)
        finally:
            os._exit(3)
    wd = threading.Timer(bound + 30, watchdog)
    wd.daemon = True
    wd.start()

    rc = 0
    # Ctrl-C stops the run even where SIGINT was ignored (a background job of a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(asyncio.wait_for(run.main(), bound))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted", file=sys.stderr)
        rc = 130
    except asyncio.TimeoutError:
        print(f"\nthe run passed its bound of {bound:.0f} s and was stopped", file=sys.stderr)
        rc = 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 1
    finally:
        run.net.close_all()
        code = run.server.stop(signal.SIGTERM, args.request_timeout + 15) if run.server.alive() else \
            (run.server.proc.returncode if run.server.proc else None)
        run.sampler.stop_ev.set()
        wd.cancel()
    if run.rows:
        print("\n" + markdown(run, args))
        if run.server.notable:
            print("\nserver warn/error lines (last ones):")
            for line in list(run.server.notable)[-10:]:
                print("  " + line[:300])
        print(f"\nserver exit code at the end: {code}; server starts: {run.server.starts}")
    if args.json_out and run.rows:
        with open(args.json_out, "w") as f:
            json.dump({"rows": run.rows, "rss_base_kb": run.rss_base, "rss_after_kb": run.rss_after},
                      f, indent=1, default=str)
    return rc


if __name__ == "__main__":
    sys.exit(main())
