#!/usr/bin/env python3
"""Runs every example in README.md and docs/ as a reader would paste it.

    python3 tests/test_examples.py --prism build/prism

It starts the server exactly as `scripts/run.sh` does with no model argument
(the same script, so the same demo models, flags and environment), on a free
port (`--port 0`; the port is read from the server's `listening` log line),
with `PRISM_BIN` naming the binary under test, so that run.sh installs and
builds nothing. Then, for each document in DOCS, every fenced code block
whose language is sh, bash, shell or python is an example:

- A block whose first line is a comment starting with `# needs` is NOT run
  (it needs something this machine does not give: a real checkpoint, network
  access, Docker, a Kubernetes cluster, a shell of its own). It is listed as
  skipped, with the rest of that line as the reason, and counts as nothing.
- Every other block is run as pasted, from the repository root: shell
  blocks with `bash -e -o pipefail`, python blocks with `python3`, each in a
  fresh process (an example may not rely on an earlier one). Two rewrites
  only: `localhost:8080` / `127.0.0.1:8080` become the chosen port, and
  `build/prism` becomes the binary under test.
- In shell blocks `curl` is a function that runs the real curl with
  `--fail-with-body` and `--write-out '%{http_code}'`, prints the body as
  curl would, and fails unless the status is 2xx; when the request asks for
  `"stream": true` the body must also end with `data: [DONE]`.

The test fails when any example fails, when a block outside sh/bash/python
contains a curl command or the server's address (an example that would
escape this test), when no example ran, or when the server does not drain
and exit 0 on SIGTERM at the end. Python standard library only; needs bash
and curl.

    python3 tests/test_examples.py --prism build/prism \
        --docs tests/data/examples_planted.md --expect-fail 9,14,...

checks the checker: the planted file holds broken examples (a missing
image, a wrong model id, a stream without `data: [DONE]`, a failing first
command, a python error, a curl outside a sh block), and the run passes only
when exactly those blocks fail.
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DOCS = ["README.md", "docs/api.md", "docs/pali3.md", "docs/paligemma.md", "docs/florence2.md",
        "docs/deploy.md"]
RUN_LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python"}
SKIP_MARK = re.compile(r"^#\s*needs\b(.*)$")
BLOCK_TIMEOUT_S = 120

CURL_WRAPPER = r"""
curl() {
  local tmp rc=0 code stream=0 a
  for a in "$@"; do
    [[ $a == *'"stream": true'* || $a == *'"stream":true'* ]] && stream=1
  done
  tmp=$(mktemp)
  command curl --fail-with-body --write-out '%{http_code}' "$@" >"$tmp" || rc=$?
  code=$(tail -c 3 "$tmp")
  head -c -3 "$tmp"
  if [[ $stream == 1 ]] && ! head -c -3 "$tmp" | grep -v '^[[:space:]]*$' | tail -n 1 |
      grep -qx 'data: \[DONE\]'; then
    echo "example-test: the stream did not end with 'data: [DONE]'" >&2
    [[ $rc == 0 ]] && rc=1
  fi
  rm -f "$tmp"
  echo "example-test: curl -> HTTP $code (exit $rc)" >&2
  [[ $rc == 0 && $code == 2?? ]] || return 1
}
"""


def extract_blocks(path):
    """Fenced blocks of a markdown file: (line, language, text)."""
    blocks, lines = [], open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([^\s`]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1
        blocks.append((start, lang, "\n".join(body) + "\n"))
    return blocks


def start_server(prism):
    # A reader's shell has no PRISM_* settings (they would change the server).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")}
    env["PRISM_BIN"] = prism
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(["scripts/run.sh", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    port, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        log.seek(0)
        m = re.search(r"\blistening\b.*\bport=(\d+)", log.read())
        if m:
            port = int(m.group(1))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    if r.status == 200:
                        return proc, port, log
            except OSError:
                pass
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.seek(0)
    sys.exit(f"FAIL: the server of scripts/run.sh did not become ready\n{log.read()}")


def rewrite(text, port, prism):
    text = re.sub(r"\b(localhost|127\.0\.0\.1):8080\b", rf"\g<1>:{port}", text)
    return re.sub(r"(?<![\w/.-])build/prism\b", shlex.quote(prism), text)


def indent(text, limit=40):
    lines = text.rstrip("\n").split("\n")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more lines)"]
    return "\n".join("    | " + ln[:300] for ln in lines)


def run_block(lang, text, port, prism):
    code = rewrite(text, port, prism)
    if lang == "sh":
        argv = ["bash", "-e", "-o", "pipefail", "-c", CURL_WRAPPER + code]
    else:
        argv = [sys.executable, "-c", code]
    try:
        p = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=BLOCK_TIMEOUT_S)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out + f"\n(timed out after {BLOCK_TIMEOUT_S} s)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prism", required=True, help="the prism binary under test")
    ap.add_argument("--docs", nargs="+", default=DOCS,
                    help="markdown files, relative to the repository root (default: %(default)s)")
    ap.add_argument("--expect-fail", default=None, metavar="LINES",
                    help="planted mistakes: pass only when exactly the blocks starting at these "
                         "lines (comma-separated) fail")
    args = ap.parse_args()
    prism = os.path.abspath(args.prism)
    for tool in ("bash", "curl"):
        if not shutil.which(tool):
            sys.exit(f"FAIL: {tool} is not installed; the examples need it")

    examples, skipped, failures = [], [], []
    for doc in args.docs:
        for line, lang, text in extract_blocks(os.path.join(ROOT, doc)):
            where = f"{doc}:{line}"
            if lang not in RUN_LANGS:
                if re.search(r"\bcurl\s|\b(localhost|127\.0\.0\.1):8080\b", text):
                    failures.append((where, "a block talking to the server must be ```sh "
                                     f"(this one is ```{lang or '(none)'}), or the test skips it"))
                continue
            first = text.lstrip("\n").split("\n", 1)[0]
            m = SKIP_MARK.match(first)
            if m:
                skipped.append((where, m.group(1).strip(" :-")))
            else:
                examples.append((where, RUN_LANGS[lang], text))

    proc, port, log = start_server(prism)
    print(f"server: scripts/run.sh --port 0 (PRISM_BIN={prism}) is ready on port {port}")
    try:
        for where, lang, text in examples:
            t0 = time.monotonic()
            rc, out = run_block(lang, text, port, prism)
            status = "ok" if rc == 0 else f"FAILED (exit {rc})"
            print(f"\n== {where} ({lang}): {status} in {time.monotonic() - t0:.2f} s")
            print(indent(text))
            print("  output:")
            print(indent(out))
            if rc != 0:
                failures.append((where, f"exit {rc}"))
            if proc.poll() is not None:
                failures.append((where, "the server exited"))
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        log.seek(0)
        failures.append(("server", f"exit {proc.returncode} after SIGTERM\n{log.read()[-4000:]}"))

    print(f"\nskipped ({len(skipped)}, first line '# needs ...'; not counted as passed):")
    for where, why in skipped:
        print(f"  {where}: needs {why}")
    print(f"ran {len(examples)} examples, {len(failures)} failures")
    for where, why in failures:
        print(f"  FAIL {where}: {why}")
    if not examples:
        print("FAIL: no example ran")
        return 1
    if args.expect_fail is not None:
        want = {int(x) for x in args.expect_fail.split(",") if x}
        got = {int(w.rsplit(":", 1)[1]) for w, _ in failures if ":" in w}
        print(f"planted: expected failures at lines {sorted(want)}, got {sorted(got)}")
        server_failed = any(":" not in w for w, _ in failures)
        return 0 if got == want and not server_failed else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
