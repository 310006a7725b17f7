#!/usr/bin/env python3
"""A request's reference count is touched only in server/request.c.

    python3 tests/check_request_refs.py [FILE.c ...]   (default: server/*.c)
    python3 tests/check_request_refs.py --expect 7,9 tests/data/request_refs_planted.c

Every holder of a request takes and drops its reference through req_ref /
req_unref (request.c), so that the lifetime rules live in one file. This
check fails on any other file that reads or writes the `refs` member
(`->refs` or `.refs`). Comments and string literals are ignored. The second
form is the checker's own test: it passes only when exactly those lines are
reported. Exits 1 and lists file:line for each finding.
"""
import glob
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OWNER = "request.c"
MEMBER = re.compile(r"(->|\.)\s*refs\b")


def blank(src):
    """Comments and string/char literals replaced by spaces (lines kept)."""
    pat = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
    return pat.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), src)


def findings(path):
    with open(path, encoding="utf-8") as f:
        code = blank(f.read())
    return [i + 1 for i, line in enumerate(code.split("\n")) if MEMBER.search(line)]


def main(argv):
    expect = None
    if len(argv) >= 2 and argv[0] == "--expect":
        expect = sorted(int(x) for x in argv[1].split(","))
        argv = argv[2:]
    files = argv or sorted(glob.glob(os.path.join(ROOT, "server", "*.c")))
    found = {}
    for path in files:
        if os.path.basename(path) == OWNER and expect is None:
            continue
        lines = findings(path)
        if lines:
            found[path] = lines
    if expect is not None:
        got = sorted(l for lines in found.values() for l in lines)
        if got != expect:
            print(f"expected findings on lines {expect}, got {got}")
            return 1
        print(f"the planted accesses were found: lines {got}")
        return 0
    for path, lines in found.items():
        for l in lines:
            print(f"{os.path.relpath(path, ROOT)}:{l}: request refs touched outside {OWNER}")
    if found:
        return 1
    print(f"{len(files)} files: request references only in {OWNER}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
