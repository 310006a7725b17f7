#!/usr/bin/env python3
"""test_web.py - the page prism serves at /, driven in headless Chromium.

Usage: test_web.py PRISM_BIN SOURCE_DIR BUILD_DIR   (ctest passes them)

Starts `prism serve` with the demo SigLIP model and a generative pali3 model
(and an API key), checks the page's HTTP headers, then drives Debian's
`chromium` over the DevTools protocol on --remote-debugging-pipe (fds 3 and
4, NUL-terminated JSON messages): the page asks for the key and keeps it in
sessionStorage; a picked image and labels give score bars whose numbers are
the ones /v1/classify returns for the same request (to 1e-6: float32
summation order follows the batch); texts give the matrix of
dot products of /v1/embed's embeddings; a caption and an answer stream in
and equal what /v1/chat/completions returns; an API error shows the API's
error.message; the page logs no console error and does not overflow a phone
screen. Then beside a Florence-2 model (tests/data/florence2_tiny_tok) the
page sends its task tokens: a detailed caption, the text in the image (a
button only Florence-2 gets) and the question as it is, each equal to the
API's answer. Screenshots: BUILD_DIR/artifacts/web.png, web-phone.png and
web-florence2.png.

Without Chromium the test fails, unless PRISM_SKIP_BROWSER_TEST=1, which
makes it print SKIPPED and exit 77 (ctest's SKIP_RETURN_CODE). Python's
standard library only.
"""
import base64
import fcntl
import glob
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP_ENV = "PRISM_SKIP_BROWSER_TEST"
SKIP_CODE = 77
KEY = "web-test-key"
LABELS = ["a flower", "a bird", "a car"]
TEXTS = ["a photo of a flower", "a red rose in a garden", "a city street at night"]
QUESTION = "what colour is the flower?"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---- the server -------------------------------------------------------------

class Server:
    def __init__(self, prism, model, gen_model, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [prism, "serve", "--model", model, "--generative-model", gen_model,
             "--port", "0", "--host", "127.0.0.1", "--log-format", "json",
             "--threads", "2", "--api-key", KEY],
            stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            check(self.proc.poll() is None, "prism serve exited: " + self.read_log())
            if not self.port:
                for line in self.read_log().splitlines():
                    if '"msg":"listening"' in line:
                        self.port = json.loads(line)["port"]
            if self.port and self.request("GET", "/readyz")[0] == 200:
                return
            time.sleep(0.05)
        raise Failure("prism serve not ready within 120 s: " + self.read_log())

    def read_log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, key=None, headers=None):
        """(status, headers, body bytes); body: a dict sent as JSON."""
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if key:
            h["Authorization"] = "Bearer " + key
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except OSError:
            return 0, {}, b""

    def api(self, path, body=None, status=200):
        st, _, out = self.request("POST" if body is not None else "GET", path, body, KEY)
        check(st == status, "%s answered %d, not %d: %s" % (path, st, status, out[:300]))
        return out

    def stop(self):
        """SIGTERM, then the exit status (0 when it drained cleanly; under the
        sanitizers, a leak or error makes it non-zero)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


# ---- Chromium over the DevTools protocol (pipe transport) --------------------

class Browser:
    def __init__(self, binary, profile):
        # fds 3 (commands in) and 4 (answers out) of the child
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()
        # the child's ends above 4, so that placing them at 3 and 4 clobbers neither
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(out_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--mute-audio", "--window-size=1280,900",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, close_fds=False)
        for fd in {cmd_r, out_w, hi_r, hi_w}:
            os.close(fd)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            check(left > 0, "no answer from Chromium in time")
            ready, _, _ = select.select([self.out_r], [], [], left)
            if ready:
                chunk = os.read(self.out_r, 1 << 20)
                check(chunk, "Chromium closed its DevTools pipe (exit %s)" % self.proc.poll())
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.cmd_w, data):]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                check("error" not in m, "%s failed: %s" % (method, m.get("error")))
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def pump(self, seconds):
        """Collects events for a while."""
        deadline = time.monotonic() + seconds
        while True:
            ready, _, _ = select.select([self.out_r], [], [], max(0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(self.out_r, 1 << 20)
            if not chunk:
                break
            self.buf += chunk
            while b"\0" in self.buf:
                msg, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(msg)
                if "method" in m:
                    self.events.append(m)

    def open_page(self):
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        if page is None:
            tid = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        else:
            tid = page["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "DOM"):
            self.call(domain + ".enable")

    def eval(self, expr, timeout=60):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        check("exceptionDetails" not in r, "page script failed: %s: %s" % (
            expr[:200], r.get("exceptionDetails")))
        return r["result"].get("value")

    def wait_for(self, expr, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.eval(expr)
            if v:
                return v
            self.pump(0.1)
        shown = self.eval("[...document.querySelectorAll('.error, .chip.bad')]"
                          ".filter(e => !e.hidden).map(e => e.textContent)")
        raise Failure("timed out waiting for %s (errors on the page: %s)" % (what, shown))

    def navigate(self, url):
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def reload(self):
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.call("Page.reload", {"ignoreCache": True})
        self.wait_event("Page.loadEventFired")

    def wait_event(self, name, timeout=60):
        deadline = time.monotonic() + timeout
        while not any(e["method"] == name for e in self.events):
            check(time.monotonic() < deadline, "timed out waiting for " + name)
            self.pump(0.1)

    def console_errors(self):
        """Errors the page logged: exceptions, console.error, and browser log
        entries (failed loads, CSP violations)."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append("exception: %s" % (d.get("exception", {}).get("description")
                                              or d.get("text")))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.%s: %s" % (p["type"], " ".join(
                    str(a.get("value", a.get("description"))) for a in p.get("args", []))))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append("%s: %s %s" % (p["entry"]["source"], p["entry"]["text"],
                                          p["entry"].get("url", "")))
        return out

    def screenshot(self, path, width, height, mobile):
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.pump(0.5)  # layout and the bars' transition settle
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": max(height, size["height"]),
                     "scale": 1}})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print("screenshot: " + path)

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=10)
        except Exception:  # already gone: it is killed below in any case
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.cmd_w)
        os.close(self.out_r)


# ---- the checks -------------------------------------------------------------

def check_page_headers(srv):
    """GET / and HEAD /: the page, its headers, open without the API key."""
    st, h, body = srv.request("GET", "/")
    check(st == 200, "GET / answered %d" % st)
    check(h["Content-Type"] == "text/html; charset=utf-8", "Content-Type " + h["Content-Type"])
    check(h["X-Content-Type-Options"] == "nosniff", "no nosniff")
    csp = h["Content-Security-Policy"] or ""
    rules = dict((r.strip().split(" ", 1) + [""])[:2] for r in csp.split(";") if r.strip())
    check(rules.get("default-src") == "'none'", "CSP default-src: " + csp)
    check(rules.get("connect-src") == "'self'", "CSP connect-src: " + csp)
    check(not any(s in csp for s in ("http:", "https:", "*")), "CSP allows other hosts: " + csp)
    html = body.decode()
    check(html.lower().startswith("<!doctype html>"), "not an HTML page")
    for ref in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http"):
        check(ref not in html, "the page loads something from elsewhere: " + ref)
    doc = json.loads(srv.request("GET", "/openapi.json")[2])
    check("text/html" in doc["paths"]["/"]["get"]["responses"]["200"]["content"],
          "openapi.yaml does not describe GET /")
    st, h, body = srv.request("HEAD", "/")
    check(st == 200 and body == b"", "HEAD / answered %d" % st)
    st, _, _ = srv.request("GET", "/v1/models")
    check(st == 401, "/v1/models without the key answered %d" % st)


def stream_chunks(srv, body):
    """The content deltas of a streamed chat completion, as the API sends them."""
    st, _, raw = srv.request("POST", "/v1/chat/completions", dict(body, stream=True), KEY)
    check(st == 200, "stream answered %d" % st)
    out = []
    for event in raw.decode().split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                c = json.loads(line[5:])["choices"][0]
                if c.get("delta", {}).get("content"):
                    out.append(c["delta"]["content"])
    return out


def chat_body(prompt, data_url):
    return {"max_tokens": 32, "messages": [{"role": "user", "content": [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": data_url}}]}]}


def js(s):
    return json.dumps(s)


def set_value(b, selector, value, event):
    b.eval("(() => { const e = document.querySelector(%s); e.value = %s;"
           " e.dispatchEvent(new Event(%s, {bubbles: true})); })()"
           % (js(selector), js(value), js(event)))


def check_streamed(b, srv, data_url, cases):
    """Each (kind, prompt, button) clicked on the page streams the text, in
    the chunks, that /v1/chat/completions gives for that prompt."""
    for kind, prompt, button in cases:
        if button == "ask-btn":
            b.eval("document.getElementById('question').value = %s" % js(QUESTION))
        b.eval("document.getElementById(%s).click()" % js(button))
        got = b.wait_for(
            "(() => { const e = document.querySelector('.gen-entry[data-kind=%s]');"
            " return e && e.dataset.state === 'done' && {text: e.dataset.text,"
            " chunks: Number(e.dataset.chunks), shown: e.querySelector('.gen-a').textContent};"
            " })()" % kind, "the streamed " + kind)
        body = chat_body(prompt, data_url)
        want = json.loads(srv.api("/v1/chat/completions", body))
        want_text = want["choices"][0]["message"]["content"]
        check(want_text, "the model's %s is empty: nothing to show" % kind)
        check(got["text"] == want_text and got["shown"] == want_text,
              "%s %r, the API says %r" % (kind, got, want_text))
        chunks = stream_chunks(srv, body)
        check("".join(chunks) == want_text, "the API's stream differs from its answer")
        check(got["chunks"] == len(chunks),
              "%s came in %d chunks, the API streams %d" % (kind, got["chunks"], len(chunks)))


def run_browser_florence2(b, srv, image_path, artifacts):
    """A Florence-2 model: the page sends task tokens (<DETAILED_CAPTION>,
    <OCR>) and the question as it is, never PaLI's "caption en"."""
    with open(image_path, "rb") as f:
        data_url = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()
    b.navigate("http://127.0.0.1:%d/" % srv.port)
    b.wait_for("document.getElementById('keybox').open", "the key field (a new origin)")
    set_value(b, "#key", KEY, "change")
    b.wait_for("document.body.dataset.ready === 'true'", "the models (Florence-2)")
    b.events = []  # the 401 before the key was given
    check(not b.eval("document.getElementById('ocr-btn').hidden"), "no OCR button")
    node = b.call("Runtime.evaluate", {"expression": "document.getElementById('file')"})
    b.call("DOM.setFileInputFiles", {"files": [os.path.abspath(image_path)],
                                     "objectId": node["result"]["objectId"]})
    b.wait_for("!document.getElementById('preview').hidden", "the image preview")
    check_streamed(b, srv, data_url, [("caption", "<DETAILED_CAPTION>", "caption-btn"),
                                      ("ocr", "<OCR>", "ocr-btn"),
                                      ("answer", QUESTION, "ask-btn")])
    errs = b.console_errors()
    check(not errs, "console errors (Florence-2): %s" % errs)
    b.screenshot(os.path.join(artifacts, "web-florence2.png"), 1280, 900, False)


def run_browser(b, srv, image_path, artifacts):
    url = "http://127.0.0.1:%d/" % srv.port
    with open(image_path, "rb") as f:
        data_url = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()

    # without the key: the API's own message, the key field opened
    b.navigate(url)
    shown = b.wait_for("(() => { const e = document.getElementById('models-error');"
                       " return e && e.textContent; })()", "the missing-key message")
    want = json.loads(srv.request("GET", "/v1/models")[2])["error"]["message"]
    check(shown == want, "models error %r, the API says %r" % (shown, want))
    check(b.eval("document.getElementById('keybox').open"), "the key field is not shown")
    errs = b.console_errors()
    check(errs and all("401" in e for e in errs), "errors other than the 401: %s" % errs)

    # the key: used at once, kept in sessionStorage across a reload
    set_value(b, "#key", KEY, "change")
    b.wait_for("document.body.dataset.ready === 'true'", "the models after the key")
    check(b.eval("sessionStorage.getItem('prism.apiKey')") == KEY, "key not in sessionStorage")
    b.events = []
    b.reload()
    b.wait_for("document.body.dataset.ready === 'true'", "the models after a reload")
    models = json.loads(srv.api("/v1/models"))["data"]
    chips = b.eval("[...document.querySelectorAll('#models .chip b')].map(e => e.textContent)")
    check(chips == [m["id"] for m in models], "model chips %s, /v1/models %s" % (chips, models))
    check(b.eval("!document.getElementById('gen-card').hidden"), "no caption card")

    # the image: set on the file input, as a user's pick
    node = b.call("Runtime.evaluate", {"expression": "document.getElementById('file')"})
    b.call("DOM.setFileInputFiles", {"files": [os.path.abspath(image_path)],
                                     "objectId": node["result"]["objectId"]})
    b.wait_for("!document.getElementById('preview').hidden", "the image preview")

    # labels -> bars, the numbers /v1/classify gives for the same request
    set_value(b, "#labels", ", ".join(LABELS), "input")
    b.eval("document.getElementById('classify-btn').click()")
    bars = b.wait_for(
        "(() => { const r = [...document.querySelectorAll('#bars .bar')].map(e => ({"
        " label: e.dataset.label, score: e.dataset.score,"
        " width: e.querySelector('.bar-fill').style.width,"
        " shown: e.querySelector('.bar-value').textContent }));"
        " return r.length === %d && r.every(x => %s.includes(x.label)) && r; })()"
        % (len(LABELS), js(LABELS)), "score bars for the labels")
    api = json.loads(srv.api("/v1/classify", {"image": data_url, "labels": LABELS}))["labels"]
    check([x["label"] for x in bars] == [x["label"] for x in api],
          "bar order %s, API %s" % (bars, api))
    for bar, want in zip(bars, api):
        score = float(bar["score"])
        # the same request twice: equal up to float32 summation order, which
        # depends on how many rows share a matmul (the page's request may be
        # batched with another; row counts pick different GEMM kernels):
        # differences of ~1e-7 were seen, a wrong label or image moves a
        # score by ~1e-2
        check(abs(score - want["score"]) <= 1e-6,
              "bar %s: %r, API %r" % (bar["label"], score, want["score"]))
        # CSSOM serialises lengths to 6 significant digits
        check(abs(float(bar["width"].rstrip("%")) - 100 * score) < 1e-3,
              "bar %s width %s for score %r" % (bar["label"], bar["width"], score))
        shown = float(bar["shown"])
        check(abs(shown - score) <= max(5e-4, 0.06 * score),
              "bar %s shows %s for %r" % (bar["label"], bar["shown"], score))

    # texts -> the matrix of dot products of /v1/embed's embeddings
    set_value(b, "#texts", "\n".join(TEXTS), "input")
    b.eval("document.getElementById('similarity-btn').click()")
    cells = b.wait_for(
        "(() => { const rows = [...document.querySelectorAll('#matrix tr')].slice(1)"
        ".map(tr => [...tr.querySelectorAll('td')].map(td => Number(td.dataset.value)));"
        " return rows.length === %d && rows; })()" % len(TEXTS), "the similarity matrix")
    emb = json.loads(srv.api("/v1/embed", {"texts": TEXTS}))["text_embeddings"]
    for i in range(len(TEXTS)):
        check(len(cells[i]) == len(TEXTS), "matrix row %d: %s" % (i, cells[i]))
        for j in range(len(TEXTS)):
            dot = sum(x * y for x, y in zip(emb[i], emb[j]))
            check(abs(cells[i][j] - dot) < 1e-9, "cell %d,%d: %r, embeddings give %r"
                  % (i, j, cells[i][j], dot))

    # caption and answer: streamed, the text and the chunks the API sends
    check(b.eval("document.getElementById('ocr-btn').hidden"), "a pali3 model offers OCR")
    check_streamed(b, srv, data_url, [("caption", "caption en", "caption-btn"),
                                      ("answer", "answer en " + QUESTION, "ask-btn")])

    errs = b.console_errors()
    check(not errs, "console errors: %s" % errs)

    b.screenshot(os.path.join(artifacts, "web.png"), 1280, 900, False)
    b.screenshot(os.path.join(artifacts, "web-phone.png"), 390, 844, True)
    width = b.eval("[document.documentElement.scrollWidth, window.innerWidth]")
    check(width[0] <= width[1], "the page is wider than a phone: %s" % width)
    b.call("Emulation.clearDeviceMetricsOverride")

    # an API error: the page shows the API's error.message
    long_q = "why " * 200
    set_value(b, "#question", long_q, "input")
    b.eval("document.getElementById('ask-btn').click()")
    shown = b.wait_for("(() => { const e = document.getElementById('gen-error');"
                       " return !e.hidden && e.textContent; })()", "the error message")
    st, _, out = srv.request("POST", "/v1/chat/completions",
                             dict(chat_body("answer en " + long_q.strip(), data_url),
                                  stream=True), KEY)
    check(st == 400, "a long question answered %d" % st)
    want = json.loads(out)["error"]["message"]
    check(shown == want, "error shown %r, the API says %r" % (shown, want))
    errs = b.console_errors()
    check(all("status of 400" in e for e in errs), "errors besides the 400: %s" % errs)


def pick(paths):
    for p in paths:
        found = sorted(glob.glob(p))
        if found:
            return found[0]
    raise Failure("none of %s exists" % paths)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    prism, src, build = sys.argv[1:4]
    image = pick([os.path.join(src, "examples", "*.jpg"),
                  os.path.join(src, "tests", "data", "pillow", "flower.jpg")])
    gen_model = os.path.join(src, "models", "demo-pali3")
    if not os.path.isfile(os.path.join(gen_model, "model.safetensors")):
        gen_model = os.path.join(src, "tests", "data", "pali3_tiny_a")
    artifacts = os.path.join(build, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="prism-web-")
    srv = Server(prism, os.path.join(src, "models", "demo"), gen_model,
                 os.path.join(tmp, "server.log"))
    browser = None
    try:
        check_page_headers(srv)
        print("GET /: page and headers ok")
        binary = os.environ.get("PRISM_CHROMIUM") or shutil.which("chromium") \
            or shutil.which("chromium-browser")
        if not binary:
            if os.environ.get(SKIP_ENV) == "1":
                print("SKIPPED: the browser part of test_web (no chromium found, and %s=1)"
                      % SKIP_ENV)
                return SKIP_CODE
            raise Failure("chromium not found: install it (scripts/install-deps.sh --test), or "
                          "set %s=1 to skip this test" % SKIP_ENV)
        browser = Browser(binary, os.path.join(tmp, "profile"))
        browser.open_page()
        run_browser(browser, srv, image, artifacts)
        rc = srv.stop()
        check(rc == 0, "prism serve exited %s: %s" % (rc, srv.read_log()[-3000:]))
        # the same page beside a Florence-2 model (another port: another origin)
        f2 = os.path.join(src, "tests", "data", "florence2_tiny_tok")
        srv = Server(prism, os.path.join(src, "models", "demo"), f2,
                     os.path.join(tmp, "server-florence2.log"))
        run_browser_florence2(browser, srv, image, artifacts)
        browser.close()
        browser = None
        rc = srv.stop()
        check(rc == 0, "prism serve exited %s: %s" % (rc, srv.read_log()[-3000:]))
        print("test_web: ok (image %s, generative models %s and %s)" % (image, gen_model, f2))
        return 0
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        if browser:
            browser.close()
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
