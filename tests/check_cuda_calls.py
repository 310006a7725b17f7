#!/usr/bin/env python3
"""Every CUDA and cuBLAS call in cuda/ has its status looked at.

    python3 tests/check_cuda_calls.py [FILE.cu ...]   (default: cuda/*.cu)
    python3 tests/check_cuda_calls.py --expect 6,14,24,26 tests/data/cuda_unchecked_calls.cu

The second form is the checker's own test: it passes only when exactly
those lines are reported (planted mistakes, so a checker that finds
nothing cannot pass).

A statement that begins with a call to a cuda*/cublas* function throws the
returned status away; that is allowed only for the teardown calls listed in
DISCARD_OK (there is nothing left to report to) and when written as
`(void)call(...)`, which says so. Every other call must sit inside a check
(CK_CUDA, CK_BLAS, CK_LAUNCH), a comparison, an assignment or a return. A
function that launches a kernel (<<<...>>>) must also read the launch's
status (cudaGetLastError or cudaPeekAtLastError) before it returns.

Reads the source as text: comments and string literals are blanked first,
then the code is cut into statements at ';', '{' and '}'. Exits 1 and lists
file:line for each finding.
"""
import glob
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# teardown: their status has nowhere to go (the object is being destroyed)
DISCARD_OK = {
    "cublasDestroy", "cublasLtDestroy", "cudaStreamDestroy", "cudaEventDestroy",
    "cublasLtMatmulDescDestroy", "cublasLtMatrixLayoutDestroy",
    "cublasLtMatmulPreferenceDestroy",
}
CALL = re.compile(r"\b((?:cuda|cublas|cublasLt)[A-Z]\w*)\s*\(")


def blank(src):
    """Comments and string/char literals replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(c + re.sub(r"[^\n]", " ", src[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_control(body):
    """`if (c) f(x)`, `else f(x)`, `for (...) f(x)`, `while (c) f(x)`: f(x)."""
    while True:
        m = re.match(r"(else\b|(?:if|for|while)\s*\()", body)
        if not m:
            return body
        if m.group(1) == "else":
            body = body[4:].lstrip()
            continue
        depth, i = 1, m.end()
        while i < len(body) and depth:
            depth += {"(": 1, ")": -1}.get(body[i], 0)
            i += 1
        body = body[i:].lstrip()


def findings(path):
    src = blank(open(path, encoding="utf-8").read())
    found = []
    # statements
    start = 0
    for m in re.finditer(r"[;{}]", src):
        stmt = src[start:m.start()]
        lead = len(stmt) - len(stmt.lstrip())
        body = stmt.strip()
        line = src.count("\n", 0, start + lead) + 1
        start = m.end()
        if body.startswith("#"):  # preprocessor lines end at a newline, not a ';'
            body = body.split("\n")[-1].strip()
        body = strip_control(body)
        call = CALL.match(body)
        if call and call.group(1) not in DISCARD_OK:
            found.append((line, f"{os.path.relpath(path, ROOT)}:{line}: the status of "
                                f"{call.group(1)} is thrown away"))
    # launches: each function with <<< also reads the launch status
    for m in re.finditer(r"<<<", src):
        line = src.count("\n", 0, m.start()) + 1
        # the enclosing function: from the last line that starts a definition
        # at column 0 to the next one
        begin = max(src.rfind("\n}", 0, m.start()), 0)
        end = src.find("\n}", m.start())
        end = len(src) if end < 0 else end
        fn = src[begin:end]
        if "cudaGetLastError" not in fn and "cudaPeekAtLastError" not in fn:
            found.append((line, f"{os.path.relpath(path, ROOT)}:{line}: a kernel launch "
                                f"whose status is never read"))
    return found


def main(argv):
    args = argv[1:]
    expect = None
    if args[:1] == ["--expect"]:
        expect = sorted(int(x) for x in args[1].split(","))
        args = args[2:]
    files = args or sorted(glob.glob(os.path.join(ROOT, "cuda", "*.cu")))
    if not files:
        print("no .cu files found")
        return 1
    all_found = []
    calls = 0
    for f in files:
        calls += len(CALL.findall(blank(open(f, encoding="utf-8").read())))
        all_found += findings(f)
    for _, msg in all_found:
        print(msg)
    print(f"{len(files)} files, {calls} CUDA/cuBLAS calls, {len(all_found)} unchecked")
    if expect is not None:
        got = sorted(line for line, _ in all_found)
        print(f"expected lines {expect}, reported {got}")
        return 0 if got == expect else 1
    return 1 if all_found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
