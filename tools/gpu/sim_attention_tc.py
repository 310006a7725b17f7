#!/usr/bin/env python3
"""Lane-by-lane simulation of cuda/kernels.cu's attention_tc_kernel index
arithmetic (numpy, float64, no rounding), with mma.sync.m16n8k16 emulated
from the PTX ISA fragment layouts.

Each index expression of the kernel (Q fragments, the K and transposed-V
shared-memory tiles, the B-fragment reads, the score registers reused as
P's A fragments, the output writes, the quad shuffles of the online
softmax) is transcribed here literally; the result must equal plain
softmax(Q·Kᵀ·scale)·V to float64 rounding. Keep it in step with the
kernel: it checks a layout change without device time.

    python3 tools/gpu/sim_attention_tc.py
"""
import numpy as np
rng = np.random.default_rng(0)

def mma(c, a, b):
    # c: [32][4] float, a: [32][4][2] (reg, half), b: [32][2][2]
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for i in range(8):
            row = g + 8 * ((i // 2) % 2); col = t * 2 + (i % 2) + 8 * (i // 4)
            A[row, col] = a[lane][i // 2][i % 2]
        for i in range(4):
            row = t * 2 + (i % 2) + 8 * (i // 2); col = g
            B[row, col] = b[lane][i // 2][i % 2]
    C = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for i in range(4):
            C[g + 8 * (i // 2), t * 2 + (i % 2)] = c[lane][i]
    C = C + A @ B
    out = [[0.0] * 4 for _ in range(32)]
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for i in range(4):
            out[lane][i] = C[g + 8 * (i // 2), t * 2 + (i % 2)]
    return out

def run(D, d, Tq, Tk, causal=False, scale=0.125, bx=0):
    KT, KS, VS = 64, D + 8, 64 + 8
    NK, ND, NT = D // 16, D // 8, 64 // 8
    Q = rng.standard_normal((Tq, d)); K = rng.standard_normal((Tk, d)); V = rng.standard_normal((Tk, d))
    out = np.full((Tq, d), np.nan)
    shift = Tk - Tq
    # per warp
    for warp in range(4):
        lanes = range(32)
        row0 = [bx * 64 + warp * 16 + (l >> 2) for l in lanes]
        row1 = [r + 8 for r in row0]
        def qat(r, c):
            return Q[r, c] if (r < Tq and c < d) else 0.0
        qf = [[None] * 4 for _ in range(NK)]
        qf = [[[ (0,0) ]*4 for _ in range(NK)] for _ in lanes]
        for l in lanes:
            tg = l & 3
            for kk in range(NK):
                c = kk * 16 + 2 * tg
                qf[l][kk] = [(qat(row0[l], c), qat(row0[l], c + 1)), (qat(row1[l], c), qat(row1[l], c + 1)),
                             (qat(row0[l], c + 8), qat(row0[l], c + 9)), (qat(row1[l], c + 8), qat(row1[l], c + 9))]
        o = [[[0.0] * 4 for _ in range(ND)] for _ in lanes]
        m0 = [-np.inf] * 32; m1 = [-np.inf] * 32; l0 = [0.0] * 32; l1 = [0.0] * 32
        kend = Tk
        if causal:
            last_i = min(Tq - 1, bx * 64 + 63)
            kend = min(Tk, max(0, last_i + shift + 1))
        for j0 in range(0, kend, KT):
            jn = min(KT, kend - j0)
            Ks = np.zeros(KT * KS); Vt = np.zeros(D * VS)
            for e in range(KT * D):
                r, c = e // D, e % D
                kv = vv = 0.0
                if r < jn and c < d:
                    kv = K[j0 + r, c]; vv = V[j0 + r, c]
                Ks[r * KS + c] = kv; Vt[c * VS + r] = vv
            s = [[[0.0] * 4 for _ in range(NT)] for _ in lanes]
            for nt in range(NT):
                for kk in range(NK):
                    a = [qf[l][kk] for l in lanes]
                    b = []
                    for l in lanes:
                        g, tg = l >> 2, l & 3
                        kr = (nt * 8 + g) * KS + kk * 16 + 2 * tg
                        b.append([(Ks[kr], Ks[kr + 1]), (Ks[kr + 8], Ks[kr + 9])])
                    res = mma([s[l][nt] for l in lanes], a, b)
                    for l in lanes: s[l][nt] = res[l]
            mx0 = list(m0); mx1 = list(m1)
            for l in lanes:
                tg = l & 3
                for nt in range(NT):
                    for e in range(4):
                        row = row0[l] if e < 2 else row1[l]
                        kl = nt * 8 + 2 * tg + (e & 1); jg = j0 + kl
                        x = s[l][nt][e] * scale
                        if kl >= jn or (causal and jg > row + shift): x = -np.inf
                        s[l][nt][e] = x
                        if e < 2: mx0[l] = max(mx0[l], x)
                        else: mx1[l] = max(mx1[l], x)
            for off in (1, 2):
                mx0 = [max(mx0[l], mx0[l ^ off]) for l in lanes]
                mx1 = [max(mx1[l], mx1[l ^ off]) for l in lanes]
            rs0 = [0.0] * 32; rs1 = [0.0] * 32
            for l in lanes:
                b0 = 0.0 if mx0[l] == -np.inf else mx0[l]; b1 = 0.0 if mx1[l] == -np.inf else mx1[l]
                al0 = np.exp(m0[l] - b0); al1 = np.exp(m1[l] - b1)
                for nt in range(NT):
                    s[l][nt][0] = np.exp(s[l][nt][0] - b0); s[l][nt][1] = np.exp(s[l][nt][1] - b0)
                    s[l][nt][2] = np.exp(s[l][nt][2] - b1); s[l][nt][3] = np.exp(s[l][nt][3] - b1)
                    rs0[l] += s[l][nt][0] + s[l][nt][1]; rs1[l] += s[l][nt][2] + s[l][nt][3]
                for dt in range(ND):
                    o[l][dt][0] *= al0; o[l][dt][1] *= al0; o[l][dt][2] *= al1; o[l][dt][3] *= al1
                l0[l] *= al0; l1[l] *= al1  # combined below with rs after shuffle
            for off in (1, 2):
                rs0 = [rs0[l] + rs0[l ^ off] for l in lanes]
                rs1 = [rs1[l] + rs1[l ^ off] for l in lanes]
            for l in lanes:
                l0[l] += rs0[l]; l1[l] += rs1[l]; m0[l] = mx0[l]; m1[l] = mx1[l]
            for kk in range(KT // 16):
                a = [[(s[l][2*kk][0], s[l][2*kk][1]), (s[l][2*kk][2], s[l][2*kk][3]),
                      (s[l][2*kk+1][0], s[l][2*kk+1][1]), (s[l][2*kk+1][2], s[l][2*kk+1][3])] for l in lanes]
                for dt in range(ND):
                    b = []
                    for l in lanes:
                        g, tg = l >> 2, l & 3
                        vr = (dt * 8 + g) * VS + kk * 16 + 2 * tg
                        b.append([(Vt[vr], Vt[vr + 1]), (Vt[vr + 8], Vt[vr + 9])])
                    res = mma([o[l][dt] for l in lanes], a, b)
                    for l in lanes: o[l][dt] = res[l]
        for l in lanes:
            tg = l & 3
            for dt in range(ND):
                for e in range(2):
                    dim = dt * 8 + 2 * tg + e
                    if dim >= d: continue
                    if row0[l] < Tq: out[row0[l], dim] = 0.0 if m0[l] == -np.inf else o[l][dt][e] / l0[l]
                    if row1[l] < Tq: out[row1[l], dim] = 0.0 if m1[l] == -np.inf else o[l][dt][2 + e] / l1[l]
    # reference
    S = Q @ K.T * scale
    if causal:
        for i in range(Tq):
            for j in range(Tk):
                if j > i + shift: S[i, j] = -np.inf
    ref = np.zeros((Tq, d))
    for i in range(Tq):
        mx = S[i].max()
        if mx == -np.inf: continue
        p = np.exp(S[i] - mx); ref[i] = p @ V / p.sum()
    rows = min(Tq, 64)
    err = np.abs(out[:rows] - ref[:rows]).max()
    unwritten = int(np.isnan(out[:rows]).sum())
    print(f"D={D} d={d} Tq={Tq} Tk={Tk} causal={causal}: max err {err:.2e}, unwritten {unwritten}")
    return err if unwritten == 0 else np.inf

bad = 0
for args, kw in [((64, 64, 20, 100), {}), ((64, 48, 64, 70), {}), ((128, 100, 33, 65), {"causal": True}),
                 ((64, 16, 9, 5), {"causal": True}), ((128, 128, 64, 130), {})]:
    bad += run(*args, **kw) > 1e-12
print("ok" if bad == 0 else "MISMATCH")
raise SystemExit(1 if bad else 0)
