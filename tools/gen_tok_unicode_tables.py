#!/usr/bin/env python3
"""Generates engine/tok_unicode_tables.c: the Unicode tables the SigLIP text
pipeline needs to reproduce Python's `str.lower()`, `str.isspace()` (which is
also what `re`'s `\\s` and `str.strip()` use) exactly.

    python3 tools/gen_tok_unicode_tables.py [--out engine/tok_unicode_tables.c]

Everything is probed from the running Python itself, so the tables match the
Python that transformers runs on when the goldens are made
(tools/reference/make_tokenizer_goldens.py checks that the versions agree):

- lower: chr(c).lower() for every code point; single-code-point mappings
  are packed into runs (first, count, stride 1 or 2, delta), the few
  multi-code-point ones ('İ' -> 'i̇') listed separately.
- CPython's only context-dependent lowercase rule is the final sigma: U+03A3
  becomes U+03C2 when preceded by a cased letter (skipping case-ignorable
  ones) and not followed by one. CPython's Cased / Case_Ignorable tables are
  not exposed by unicodedata, so they are probed through that rule:
  (c + 'Σ').lower() ends in 'ς' iff c is cased and not case-ignorable, and
  ('A' + c + 'Σ').lower() does iff c is case-ignorable or cased. Only these
  two derived properties are used by the rule, so they are what is stored.
- space: str.isspace(), checked equal to re's \\s for every code point.

The script verifies its own tables against Python for all code points
before writing, and writes deterministic output.
"""
import argparse
import re
import sys
import unicodedata

MAX_CP = 0x110000


def is_surrogate(c):
    return 0xD800 <= c <= 0xDFFF


def ranges(pred):
    out, start = [], None
    for c in range(MAX_CP):
        if pred(c):
            if start is None:
                start = c
        elif start is not None:
            out.append((start, c - 1))
            start = None
    if start is not None:
        out.append((start, MAX_CP - 1))
    return out


def in_ranges(rs, c):
    lo, hi = 0, len(rs)
    while lo < hi:
        mid = (lo + hi) // 2
        if rs[mid][1] < c:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(rs) and rs[lo][0] <= c <= rs[lo][1]


def build_lower():
    single, multi = [], []
    for c in range(MAX_CP):
        if is_surrogate(c):
            continue
        low = chr(c).lower()
        if low == chr(c):
            continue
        if len(low) == 1:
            single.append((c, ord(low)))
        else:
            multi.append((c, [ord(x) for x in low]))
    runs = []  # [first, count, stride, delta]
    for c, l in single:
        d = l - c
        if runs:
            r = runs[-1]
            last = r[0] + (r[1] - 1) * r[2]
            if r[3] == d:
                if r[1] == 1 and c - last in (1, 2):
                    r[2] = c - last
                    r[1] += 1
                    continue
                if r[1] > 1 and c - last == r[2]:
                    r[1] += 1
                    continue
        runs.append([c, 1, 1, d])
    # Split runs whose count would not fit uint16.
    out = []
    for first, count, stride, delta in runs:
        while count > 0xFFFF:
            out.append((first, 0xFFFF, stride, delta))
            first += 0xFFFF * stride
            count -= 0xFFFF
        out.append((first, count, stride, delta))
    return out, multi


def lookup_lower(runs, multi_map, c):
    if c in multi_map:
        return multi_map[c]
    lo, hi = 0, len(runs)
    while lo < hi:  # last run with first <= c
        mid = (lo + hi) // 2
        if runs[mid][0] <= c:
            lo = mid + 1
        else:
            hi = mid
    if lo:
        first, count, stride, delta = runs[lo - 1]
        if c <= first + (count - 1) * stride and (c - first) % stride == 0:
            return [c + delta]
    return [c]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="engine/tok_unicode_tables.c")
    args = ap.parse_args()

    runs, multi = build_lower()
    multi_map = dict(multi)
    assert all(len(m) <= 3 for _, m in multi)

    final = lambda s: s.lower()[-1] == "\u03c2"
    cased_nonign = lambda c: not is_surrogate(c) and final(chr(c) + "\u03a3")
    ign_or_cased = lambda c: not is_surrogate(c) and final("A" + chr(c) + "\u03a3")
    cased_r = ranges(cased_nonign)
    ign_r = ranges(lambda c: ign_or_cased(c) and not cased_nonign(c))
    space_r = ranges(lambda c: chr(c).isspace())

    # Self-checks against Python for every code point.
    ws_re = re.compile(r"\s")
    for c in range(MAX_CP):
        if is_surrogate(c):
            continue
        ch = chr(c)
        want = [ord(x) for x in ch.lower()] if c != 0x3A3 else [0x3C3]
        got = lookup_lower(runs, multi_map, c)
        assert got == want, (hex(c), got, want)
        assert bool(ws_re.match(ch)) == ch.isspace() == in_ranges(space_r, c), hex(c)
        assert (ch.strip() == "") == ch.isspace(), hex(c)
        # The tables reproduce the final-sigma decisions they were probed from.
        assert final(ch + "\u03a3") == (in_ranges(cased_r, c) and not in_ranges(ign_r, c))
    # No lowercase mapping produces ASCII punctuation, whitespace or U+2581,
    # so lowering never interacts with the later canonicalisation steps.
    for c in range(MAX_CP):
        if is_surrogate(c):
            continue
        for x in chr(c).lower():
            if x != chr(c):
                assert not x.isspace() and x != "\u2581"
                assert not (ord(x) < 128 and x in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

    lines = []
    w = lines.append
    w("/* tok_unicode_tables.c - GENERATED by tools/gen_tok_unicode_tables.py; do not edit.")
    w(" *")
    w(f" * Python {sys.version.split()[0]}, Unicode {unicodedata.unidata_version}: str.lower()")
    w(" * runs and multi-code-point mappings, the Cased / Case_Ignorable properties")
    w(" * that CPython's final-sigma rule consults, and str.isspace().")
    w(" */")
    w('#include "tok_unicode.h"')
    w("")
    w(f'const char tok_unicode_version[] = "{unicodedata.unidata_version}";')
    w("")
    w(f"const tok_lower_run tok_lower_runs[{len(runs)}] = {{")
    for first, count, stride, delta in runs:
        w(f"    {{0x{first:X}, {count}, {stride}, {delta}}},")
    w("};")
    w(f"const size_t tok_lower_runs_count = {len(runs)};")
    w("")
    w(f"const tok_lower_multi tok_lower_multis[{len(multi)}] = {{")
    for c, m in multi:
        outs = ", ".join(f"0x{x:X}" for x in m + [0] * (3 - len(m)))
        w(f"    {{0x{c:X}, {len(m)}, {{{outs}}}}},")
    w("};")
    w(f"const size_t tok_lower_multis_count = {len(multi)};")
    for name, rs in (("tok_space_ranges", space_r), ("tok_cased_ranges", cased_r),
                     ("tok_case_ignorable_ranges", ign_r)):
        w("")
        w(f"const tok_range {name}[{len(rs)}] = {{")
        for i in range(0, len(rs), 4):
            w("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in rs[i:i + 4]))
        w("};")
        w(f"const size_t {name.replace('_ranges', '_count')} = {len(rs)};")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{args.out}: {len(runs)} lower runs, {len(multi)} multi, {len(space_r)} space, "
          f"{len(cased_r)} cased, {len(ign_r)} case-ignorable ranges")


if __name__ == "__main__":
    main()
