/* test_cuda_parity.c - every op of the CUDA backend against the CPU
 * reference loops (prism_cpu_backend_create(1, true)), on random inputs
 * with odd shapes, for each weight dtype (F32, BF16, F16) and both GEMM
 * paths (cuBLASLt with bias epilogue, cublasGemmEx + fused kernel).
 *
 * Every device buffer has guard values before and after it that must come
 * back untouched; outputs are poisoned with NaN before each op, so an
 * element the op forgot to write fails the comparison. NaN and Inf must
 * agree position by position (a NaN where the reference has one, the same
 * infinity where it has one).
 *
 * Tolerances, and why:
 *   - data movement (patchify, embedding, add_rows, gather_rows, rel_bias,
 *     copy_rows, upload, download, weight import to float32), add/mul, and
 *     topk's indices and raw values: bitwise equal (topk's log-softmax
 *     values: the float32 bound below). Each
 *     output is one correctly rounded float operation or a copy.
 *   - float32 arithmetic (norms, softmax, activations, F32 matmul):
 *     |got - ref| ≤ 1e-5·(|ref| + rms(ref)). Both sides are
 *     float-rounded results of the same formula (the reference sums in
 *     double); float32 reordering errors are ~1e-7 relative, so 1e-5 leaves
 *     a margin of ~50 while any indexing or formula error shows as ~1e-1.
 *     The rms term keeps elements that cancel to ~0 from demanding a
 *     relative accuracy nobody has. Activations use 1e-5·|ref| + 1e-6
 *     (their inputs are O(1); outputs like gelu(-10) ≈ 1e-23 are judged
 *     absolutely).
 *   - BF16/F16 matmul: both operands are rounded to nearest (unit roundoff
 *     u = 2^-8 for BF16, 2^-11 for F16), so each product carries a relative
 *     error ≤ 2u + u², and the float32 accumulation adds ≤ K·2^-24 of the
 *     sum of magnitudes. With S = Σ_k |x_k|·|w_k| (computed here in double)
 *     |got - ref| ≤ L·(2u + u² + K·2^-24)·S + 1e-5·(|ref| + rms), L = 1 with
 *     no activation and 1.15 with one (each activation here is 1.13-Lipschitz
 *     at most). This is a worst-case bound, so it cannot fail by bad luck,
 *     and it is still ~10x below the size of the outputs, so a wrong element
 *     cannot hide in it.
 *   - matmul_residual: matmul's bound, with |r| and |b| added to the
 *     float32 term: 1e-5·(|ref| + rms + |r| + |b|), since y = Σ + b + r
 *     may cancel to far below its terms, and the GEMM's beta = 1 and the
 *     bias add round at the size of the terms (a few 2^-24 of them).
 *   - attention: the softmax amplifies an error in a score s into a
 *     relative error of the same size in its weight, and scores are large
 *     (|s| ~ 40 with scale 1 and d = 100), so a fixed 1e-5 relative bound
 *     fails float32 itself (the CPU's own sgemm path reaches 0.9 of it).
 *     Instead, per query: each score is off by at most
 *     δ = |scale|·(2u + u² + d·2^-24)·Σ_c|q_c||k_jc| + 4·2^-24·(|scale·q·k| +
 *     |bias| + |mask|), u the unit roundoff of rounding q and k (0 on the
 *     float32 path; 2^-8 BF16 and 2^-11 F16 on tensor cores, which also
 *     round v and p), so every softmax weight is within a factor e^{±2δ} of
 *     its true value and |Δo_c| ≤ W_c·((e^{2δ} − 1)(1 + u)² + 2u + u²) with
 *     W_c = Σ_j p_j |v_jc| (computed here in double), plus
 *     1e-5·(|ref| + rms + W_c). A worst case that cannot fail by bad luck
 *     and stays far below |v|, the size of a wrong key's contribution.
 * Without a GPU the test prints why and passes with one skipped check.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "gpu_harness.h"
#include "safetensors.h"

#define GUARD 32    /* floats before and after each device buffer */
#define N_GPU 3     /* F32, BF16, F16 backends */

static const uint32_t GUARD_BITS = 0xc2f2a5a5u;  /* -121.3..., an exact pattern */
static const uint32_t POISON_BITS = 0x7fc0beefu; /* a quiet NaN with a payload */

typedef struct ctx {
    gh_state h;
    prism_backend *ref;
    prism_backend *gpu[N_GPU];
    const char *gname[N_GPU];
    int gdt[N_GPU];
    int n_gpu;
    uint64_t rng;
} ctx;

/* ---- random numbers ------------------------------------------------------ */

static uint64_t rng_next(ctx *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(ctx *c)
{
    return (double)(rng_next(c) >> 11) * (1.0 / 9007199254740992.0);
}

static float rng_normal(ctx *c, double mean, double sd)
{
    double u1 = rng_unit(c), u2 = rng_unit(c);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(mean + sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static float *rand_vec(ctx *c, size_t n, double mean, double sd)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_normal(c, mean, sd);
    return v;
}

static float f_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_f(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- device buffers with guards -------------------------------------------- */

typedef struct dbuf {
    prism_backend *be;
    float *base, *p;
    size_t n;
} dbuf;

/* Allocates n floats between guards and uploads host (or NaN poison when
 * host is NULL). */
static bool dbuf_make(ctx *c, prism_backend *be, dbuf *b, const float *host, size_t n)
{
    b->be = be;
    b->n = n;
    b->p = NULL;
    b->base = be->ops->alloc(be, (n + 2 * GUARD) * sizeof(float));
    if (!GH_CHECK(&c->h, b->base != NULL, "alloc %zu floats: %s", n + 2 * GUARD,
                  b->base ? "" : prism_cuda_last_error(be)))
        return false;
    b->p = b->base + GUARD;
    float *tmp = malloc((n + 2 * GUARD) * sizeof *tmp);
    for (size_t i = 0; i < n + 2 * GUARD; i++)
        tmp[i] = f_bits(GUARD_BITS);
    for (size_t i = 0; i < n; i++)
        tmp[GUARD + i] = host ? host[i] : f_bits(POISON_BITS);
    int rc = be->ops->upload(be, b->base, tmp, (n + 2 * GUARD) * sizeof(float));
    free(tmp);
    if (rc) {
        GH_CHECK(&c->h, false, "upload: %s", prism_cuda_last_error(be));
        return false;
    }
    return true;
}

/* Downloads the buffer into out (n floats); checks both guards. */
static bool dbuf_get(ctx *c, const dbuf *b, float *out, const char *what)
{
    float *tmp = malloc((b->n + 2 * GUARD) * sizeof *tmp);
    int rc = b->be->ops->download(b->be, tmp, b->base, (b->n + 2 * GUARD) * sizeof(float));
    if (rc) {
        GH_CHECK(&c->h, false, "%s: download: %s", what, prism_cuda_last_error(b->be));
        free(tmp);
        return false;
    }
    size_t bad = 0;
    for (size_t i = 0; i < GUARD; i++) {
        bad += bits_f(tmp[i]) != GUARD_BITS;
        bad += bits_f(tmp[GUARD + b->n + i]) != GUARD_BITS;
    }
    memcpy(out, tmp + GUARD, b->n * sizeof(float));
    free(tmp);
    if (bad)
        GH_CHECK(&c->h, false, "%s: %zu guard values overwritten", what, bad);
    return bad == 0;
}

static void dbuf_free(dbuf *b)
{
    if (b->base)
        b->be->ops->free(b->be, b->base);
    b->base = b->p = NULL;
}

/* ---- comparisons ------------------------------------------------------------------ */

static double rms_finite(const float *v, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += (double)v[i] * v[i];
            k++;
        }
    return k ? sqrt(s / (double)k) : 0.0;
}

/* got vs want: NaN/Inf must agree; finite values within bound[i] (when
 * bound is given) or rtol·|want| + atol. */
static bool compare(ctx *c, const char *what, const float *got, const float *want,
                    const double *bound, double rtol, double atol, size_t n)
{
    double worst = 0;
    size_t at = 0, bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        const float g = got[i], w = want[i];
        bool ok;
        double ratio = 0;
        if (isnan(w) || isnan(g)) {
            ok = isnan(w) && isnan(g);
        } else if (isinf(w) || isinf(g)) {
            ok = g == w;
        } else {
            const double b = bound ? bound[i] : rtol * fabs(w) + atol;
            const double e = fabs((double)g - w);
            ratio = b > 0 ? e / b : (e > 0 ? INFINITY : 0);
            ok = e == 0 || e <= b; /* equal values pass even where the bound is NaN */
        }
        if (!ok && bad++ == 0)
            first_bad = i;
        if (ratio > worst) {
            worst = ratio;
            at = i;
        }
    }
    if (bad)
        return GH_CHECK(&c->h, false, "%s: %zu of %zu wrong; first at %zu: got %.9g want %.9g "
                        "(worst err/bound %.3g)", what, bad, n, first_bad,
                        (double)got[first_bad], (double)want[first_bad], worst);
    return GH_CHECK(&c->h, true, "%s: max err/bound %.3g at %zu", what, worst, at);
}

/* Mixed float32 tolerance: 1e-5·(|ref| + rms(ref)). */
static bool compare_f32(ctx *c, const char *what, const float *got, const float *want, size_t n)
{
    const double r = 1e-5;
    return compare(c, what, got, want, NULL, r, r * rms_finite(want, n) + 1e-30, n);
}

/* Bitwise equality (any NaN equals any NaN). */
static bool compare_exact(ctx *c, const char *what, const float *got, const float *want, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = bits_f(got[i]) == bits_f(want[i]) || (isnan(got[i]) && isnan(want[i]));
        if (!ok && bad++ == 0)
            first = i;
    }
    if (bad)
        return GH_CHECK(&c->h, false, "%s: %zu of %zu differ; first at %zu: got %.9g want %.9g",
                        what, bad, n, first, (double)got[first], (double)want[first]);
    return GH_CHECK(&c->h, true, "%s: bitwise equal (%zu values)", what, n);
}

static const char *act_name(prism_act a)
{
    switch (a) {
    case PRISM_ACT_GELU_TANH: return "gelu_tanh";
    case PRISM_ACT_GELU_ERF: return "gelu_erf";
    case PRISM_ACT_RELU: return "relu";
    case PRISM_ACT_SILU: return "silu";
    default: return "none";
    }
}

/* ---- memory ------------------------------------------------------------------------ */

static void test_memory(ctx *c)
{
    const size_t sizes[] = {1, 3, 1000, (1u << 20) + 5};
    for (int g = 0; g < c->n_gpu; g++) {
        prism_backend *be = c->gpu[g];
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const size_t n = sizes[s];
            float *v = rand_vec(c, n, 0, 1), *back = malloc(n * sizeof *back);
            dbuf b;
            char what[128];
            snprintf(what, sizeof what, "%s upload/download %zu floats", c->gname[g], n);
            if (dbuf_make(c, be, &b, v, n)) {
                /* an odd byte range inside the buffer, too */
                if (n > 2 && be->ops->upload(be, (char *)b.p + 3, (const char *)v + 1, n * 4 - 5))
                    GH_CHECK(&c->h, false, "%s: odd upload: %s", what, prism_cuda_last_error(be));
                if (n > 2)
                    memmove((char *)v + 3, (const char *)v + 1, n * 4 - 5);
                if (dbuf_get(c, &b, back, what))
                    compare_exact(c, what, back, v, n);
                dbuf_free(&b);
            }
            free(v);
            free(back);
        }
        /* pinned host memory (the direct-DMA path of upload) */
        const size_t n = 300001;
        float *pin = prism_cuda_host_alloc(be, n * sizeof(float));
        if (GH_CHECK(&c->h, pin != NULL, "%s host_alloc", c->gname[g])) {
            for (size_t i = 0; i < n; i++)
                pin[i] = rng_normal(c, 0, 1);
            dbuf b;
            float *back = malloc(n * sizeof *back);
            if (dbuf_make(c, be, &b, NULL, n)) {
                if (be->ops->upload(be, b.p, pin, n * sizeof(float)))
                    GH_CHECK(&c->h, false, "pinned upload: %s", prism_cuda_last_error(be));
                if (dbuf_get(c, &b, back, "pinned upload"))
                    compare_exact(c, "pinned upload", back, pin, n);
                dbuf_free(&b);
            }
            free(back);
            prism_cuda_host_free(be, pin);
        }
    }
}

/* Random BF16 / F16 bit patterns with magnitudes in [2^-5, 2^3): exactly
 * representable, no subnormals. */
static uint16_t *rand_half_bits(ctx *c, int dt, size_t n)
{
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next(c);
        unsigned sign = (unsigned)(r & 1), e = (unsigned)((r >> 1) % 8);
        if (dt == PRISM_DT_BF16)
            h[i] = (uint16_t)(sign << 15 | (122 + e) << 7 | ((r >> 8) & 0x7f));
        else
            h[i] = (uint16_t)(sign << 15 | (10 + e) << 10 | ((r >> 8) & 0x3ff));
    }
    return h;
}

static void test_weight_import(ctx *c)
{
    const int dts[] = {PRISM_DT_F32, PRISM_DT_F16, PRISM_DT_BF16};
    const char *dn[] = {"F32", "F16", "BF16"};
    const size_t n = 4099;
    for (int t = 0; t < 3; t++) {
        void *src = dts[t] == PRISM_DT_F32 ? (void *)rand_vec(c, n, 0, 1)
                                           : (void *)rand_half_bits(c, dts[t], n);
        float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
        st_to_f32(want, src, (prism_dtype)dts[t], n);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            bool owned = false;
            const float *w = be->ops->weight_import(be, src, dts[t], n, false, &owned);
            char what[128];
            snprintf(what, sizeof what, "%s weight_import %s → float32", c->gname[g], dn[t]);
            if (!GH_CHECK(&c->h, w && owned, "%s: %s", what, w ? "imported" : prism_cuda_last_error(be)))
                continue;
            if (be->ops->download(be, got, w, n * sizeof(float)) == 0)
                compare_exact(c, what, got, want, n);
            else
                GH_CHECK(&c->h, false, "%s: download: %s", what, prism_cuda_last_error(be));
            be->ops->free(be, (void *)w);
        }
        free(src);
        free(want);
        free(got);
    }
}

/* ---- matmul ---------------------------------------------------------------------------- */

typedef struct mm_case {
    int M, N, K;
    prism_act act;
    bool bias;
    int x_off, b_off; /* float offsets into the buffers: misaligned pointers */
    int wdt;          /* host dtype of the weight */
    bool special;     /* NaN / Inf rows in x */
} mm_case;

static void run_matmul_case(ctx *c, const mm_case *mc)
{
    const int M = mc->M, N = mc->N, K = mc->K;
    const size_t xn = (size_t)M * K + mc->x_off, wn = (size_t)N * K, yn = (size_t)M * N;
    float *x = rand_vec(c, xn, 0, 1);
    float *bias = rand_vec(c, (size_t)N + mc->b_off, 0, 0.5);
    void *wsrc = mc->wdt == PRISM_DT_F32 ? (void *)rand_vec(c, wn, 0, 1.0 / sqrt(K > 0 ? K : 1))
                                         : (void *)rand_half_bits(c, mc->wdt, wn);
    if (mc->special && M >= 3 && K >= 2) {
        x[mc->x_off + 0 * K + 1] = NAN;
        x[mc->x_off + 1 * K + 0] = INFINITY;
        x[mc->x_off + 2 * K + K - 1] = -INFINITY;
    }
    float *wf = malloc((wn ? wn : 1) * sizeof *wf);
    st_to_f32(wf, wsrc, (prism_dtype)mc->wdt, wn);

    /* reference */
    float *want = malloc(yn * sizeof *want);
    bool rowned = false;
    const void *rw = c->ref->ops->weight_import(c->ref, wsrc, mc->wdt, wn, true, &rowned);
    c->ref->ops->matmul(c->ref, want, x + mc->x_off, rw, mc->bias ? bias + mc->b_off : NULL, M, N,
                        K, mc->act);
    if (rowned)
        c->ref->ops->free(c->ref, (void *)rw);
    /* S = Σ|x||w| per output, for the half-precision bound */
    double *S = malloc(yn * sizeof *S);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += fabs((double)x[mc->x_off + (size_t)m * K + k]) * fabs((double)wf[(size_t)n * K + k]);
            S[(size_t)m * N + n] = s;
        }
    const double rms = rms_finite(want, yn);
    double *bound = malloc(yn * sizeof *bound);
    float *got = malloc(yn * sizeof *got);

    for (int g = 0; g < c->n_gpu; g++) {
        prism_backend *be = c->gpu[g];
        bool owned = false;
        const void *w = be->ops->weight_import(be, wsrc, mc->wdt, wn, true, &owned);
        if (!GH_CHECK(&c->h, w != NULL, "%s matmul weight import: %s", c->gname[g],
                      w ? "" : prism_cuda_last_error(be)))
            continue;
        const double u = c->gdt[g] == PRISM_DT_BF16 ? ldexp(1, -8)
                         : c->gdt[g] == PRISM_DT_F16 ? ldexp(1, -11) : 0;
        const double L = mc->act == PRISM_ACT_NONE ? 1.0 : 1.15;
        for (size_t i = 0; i < yn; i++)
            bound[i] = (u > 0 ? L * (2 * u + u * u + K * ldexp(1, -24)) * S[i] : 0) +
                       1e-5 * (fabs(want[i]) + rms);
        dbuf dx, db, dy;
        memset(&db, 0, sizeof db);
        if (!dbuf_make(c, be, &dx, x, xn)) {
            be->ops->free(be, (void *)w);
            continue;
        }
        if (!dbuf_make(c, be, &db, bias, (size_t)N + mc->b_off)) {
            dbuf_free(&dx);
            be->ops->free(be, (void *)w);
            continue;
        }
        for (int path = 0; path < 2; path++) {
            char what[200];
            snprintf(what, sizeof what, "%s matmul M=%d N=%d K=%d act=%s%s%s%s w=%s [%s]",
                     c->gname[g], M, N, K, act_name(mc->act), mc->bias ? " bias" : "",
                     mc->x_off ? " x+1" : "", mc->b_off ? " bias+1" : "",
                     mc->wdt == PRISM_DT_F32 ? "F32" : mc->wdt == PRISM_DT_BF16 ? "BF16" : "F16",
                     path ? "gemmex" : "auto");
            prism_cuda_set_gemm_path(be, path ? PRISM_CUDA_GEMM_GEMMEX : PRISM_CUDA_GEMM_AUTO);
            if (!dbuf_make(c, be, &dy, NULL, yn))
                continue;
            int rc = be->ops->matmul(be, dy.p, dx.p + mc->x_off, w, mc->bias ? db.p + mc->b_off : NULL,
                                     M, N, K, mc->act);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0%s%s", what, rc ? ": " : "",
                         rc ? prism_cuda_last_error(be) : "") &&
                dbuf_get(c, &dy, got, what))
                compare(c, what, got, want, bound, 0, 0, yn);
            dbuf_free(&dy);
        }
        prism_cuda_set_gemm_path(be, PRISM_CUDA_GEMM_AUTO);
        dbuf_free(&dx);
        dbuf_free(&db);
        be->ops->free(be, (void *)w);
    }
    free(x), free(bias), free(wsrc), free(wf), free(want), free(S), free(bound), free(got);
}

static void test_matmul(ctx *c)
{
    const mm_case cases[] = {
        {1, 1, 1, PRISM_ACT_NONE, false, 0, 0, PRISM_DT_F32, false},
        {1, 7, 5, PRISM_ACT_GELU_TANH, true, 0, 0, PRISM_DT_F32, false},
        {3, 5, 7, PRISM_ACT_RELU, true, 0, 0, PRISM_DT_F32, false},
        {17, 33, 65, PRISM_ACT_GELU_ERF, true, 0, 0, PRISM_DT_F32, false},
        {64, 96, 128, PRISM_ACT_NONE, true, 0, 0, PRISM_DT_F32, false},
        {64, 96, 128, PRISM_ACT_GELU_TANH, true, 0, 0, PRISM_DT_F32, false},
        {64, 96, 128, PRISM_ACT_SILU, false, 0, 0, PRISM_DT_F32, false},
        {64, 96, 128, PRISM_ACT_NONE, true, 1, 0, PRISM_DT_F32, false},
        {64, 96, 128, PRISM_ACT_NONE, true, 0, 1, PRISM_DT_F32, false},
        {130, 257, 300, PRISM_ACT_SILU, true, 0, 0, PRISM_DT_F32, false},
        {1, 768, 768, PRISM_ACT_NONE, true, 0, 0, PRISM_DT_F32, false},
        {256, 768, 768, PRISM_ACT_NONE, true, 0, 0, PRISM_DT_F32, false},
        {392, 3072, 768, PRISM_ACT_GELU_TANH, true, 0, 0, PRISM_DT_F32, false},
        {392, 768, 3072, PRISM_ACT_NONE, true, 0, 0, PRISM_DT_F32, false},
        {3, 4, 0, PRISM_ACT_GELU_TANH, true, 0, 0, PRISM_DT_F32, false},
        {48, 40, 64, PRISM_ACT_NONE, true, 0, 0, PRISM_DT_BF16, false},
        {37, 53, 29, PRISM_ACT_GELU_TANH, true, 0, 0, PRISM_DT_F16, false},
        {64, 64, 64, PRISM_ACT_RELU, true, 0, 0, PRISM_DT_F16, false},
        {4, 8, 16, PRISM_ACT_NONE, true, 0, 0, PRISM_DT_F32, true},
        {4, 8, 16, PRISM_ACT_GELU_TANH, true, 0, 0, PRISM_DT_F32, true},
        {4, 8, 16, PRISM_ACT_RELU, false, 0, 0, PRISM_DT_F32, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_matmul_case(c, &cases[i]);
}

/* ---- matmul_residual ------------------------------------------------------------------------ */

typedef struct mr_case {
    int M, N, K;
    bool bias, in_place;
    int x_off, b_off; /* misaligned pointers */
} mr_case;

static void run_residual_case(ctx *c, const mr_case *mc)
{
    const int M = mc->M, N = mc->N, K = mc->K;
    const size_t xn = (size_t)M * K + mc->x_off, wn = (size_t)N * K, yn = (size_t)M * N;
    float *x = rand_vec(c, xn, 0, 1), *r = rand_vec(c, yn, 0, 2);
    float *bias = rand_vec(c, (size_t)N + mc->b_off, 0, 0.5);
    float *w = rand_vec(c, wn, 0, 1.0 / sqrt(K > 0 ? K : 1));
    const float *b = mc->bias ? bias + mc->b_off : NULL;
    float *want = malloc(yn * sizeof *want), *got = malloc(yn * sizeof *got);
    c->ref->ops->matmul_residual(c->ref, want, x + mc->x_off, w, b, r, M, N, K);
    double *S = malloc(yn * sizeof *S), *bound = malloc(yn * sizeof *bound);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += fabs((double)x[mc->x_off + (size_t)m * K + k]) * fabs((double)w[(size_t)n * K + k]);
            S[(size_t)m * N + n] = s;
        }
    const double rms = rms_finite(want, yn);
    for (int g = 0; g < c->n_gpu; g++) {
        prism_backend *be = c->gpu[g];
        bool owned = false;
        const void *wi = be->ops->weight_import(be, w, PRISM_DT_F32, wn, true, &owned);
        if (!GH_CHECK(&c->h, wi != NULL, "%s matmul_residual weight import: %s", c->gname[g],
                      wi ? "" : prism_cuda_last_error(be)))
            continue;
        const double u = c->gdt[g] == PRISM_DT_BF16 ? ldexp(1, -8)
                         : c->gdt[g] == PRISM_DT_F16 ? ldexp(1, -11) : 0;
        for (size_t i = 0; i < yn; i++)
            bound[i] = (u > 0 ? (2 * u + u * u + K * ldexp(1, -24)) * S[i] : 0) +
                       1e-5 * (fabs(want[i]) + rms + fabs(r[i]) + (b ? fabs(b[i % N]) : 0));
        dbuf dx, db;
        memset(&db, 0, sizeof db);
        if (!dbuf_make(c, be, &dx, x, xn)) {
            be->ops->free(be, (void *)wi);
            continue;
        }
        if (!dbuf_make(c, be, &db, bias, (size_t)N + mc->b_off)) {
            dbuf_free(&dx);
            be->ops->free(be, (void *)wi);
            continue;
        }
        for (int path = 0; path < 2; path++) {
            char what[200];
            snprintf(what, sizeof what, "%s matmul_residual M=%d N=%d K=%d%s%s%s%s [%s]",
                     c->gname[g], M, N, K, mc->bias ? " bias" : "", mc->in_place ? " in place" : "",
                     mc->x_off ? " x+1" : "", mc->b_off ? " bias+1" : "", path ? "gemmex" : "auto");
            prism_cuda_set_gemm_path(be, path ? PRISM_CUDA_GEMM_GEMMEX : PRISM_CUDA_GEMM_AUTO);
            dbuf dr, dy;
            memset(&dy, 0, sizeof dy);
            if (!dbuf_make(c, be, &dr, r, yn))
                continue;
            if (!mc->in_place && !dbuf_make(c, be, &dy, NULL, yn)) {
                dbuf_free(&dr);
                continue;
            }
            const dbuf *out = mc->in_place ? &dr : &dy;
            int rc = be->ops->matmul_residual(be, out->p, dx.p + mc->x_off, wi,
                                              mc->bias ? db.p + mc->b_off : NULL, dr.p, M, N, K);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0%s%s", what, rc ? ": " : "",
                         rc ? prism_cuda_last_error(be) : "") &&
                dbuf_get(c, out, got, what))
                compare(c, what, got, want, bound, 0, 0, yn);
            if (!mc->in_place && dbuf_get(c, &dr, got, what)) { /* r is only read */
                char rw[220];
                snprintf(rw, sizeof rw, "%s: r unchanged", what);
                compare_exact(c, rw, got, r, yn);
            }
            dbuf_free(&dr);
            dbuf_free(&dy);
        }
        prism_cuda_set_gemm_path(be, PRISM_CUDA_GEMM_AUTO);
        dbuf_free(&dx);
        dbuf_free(&db);
        be->ops->free(be, (void *)wi);
    }
    free(x), free(r), free(bias), free(w), free(want), free(got), free(S), free(bound);
}

/* SigLIP B/16's out_proj and fc2 shapes (in place, as the model calls it),
 * odd shapes, misaligned x and bias, no bias, K = 0 (y = r + b). */
static void test_matmul_residual(ctx *c)
{
    const mr_case cases[] = {
        {1, 1, 1, false, false, 0, 0},    {3, 5, 7, true, false, 0, 0},
        {17, 33, 65, true, true, 0, 0},   {64, 96, 128, false, true, 0, 0},
        {64, 96, 128, true, true, 1, 0},  {64, 96, 128, true, false, 0, 1},
        {130, 257, 300, true, true, 0, 0}, {392, 768, 768, true, true, 0, 0},
        {392, 768, 3072, true, true, 0, 0}, {1, 768, 768, true, true, 0, 0},
        {3, 4, 0, true, false, 0, 0},     {3, 4, 0, false, true, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_residual_case(c, &cases[i]);
}

/* ---- row ops ------------------------------------------------------------------------------- */

/* Puts a NaN in row 1 and an Inf in row 2 (when the rows exist). */
static void sprinkle_specials(float *x, int rows, int cols)
{
    if (rows > 1)
        x[(size_t)1 * cols + cols / 2] = NAN;
    if (rows > 2)
        x[(size_t)2 * cols] = INFINITY;
}

typedef enum row_op { ROW_LAYERNORM, ROW_RMSNORM, ROW_SOFTMAX, ROW_L2 } row_op;

static void run_row_case(ctx *c, row_op op, int rows, int cols, bool beta, bool inplace,
                         bool specials)
{
    const size_t n = (size_t)rows * cols;
    float *x = rand_vec(c, n, op == ROW_LAYERNORM ? 3.0 : 0.0, op == ROW_SOFTMAX ? 3.0 : 2.0);
    float *gam = rand_vec(c, (size_t)cols, 1.0, 0.3), *bet = rand_vec(c, (size_t)cols, 0, 0.3);
    if (specials)
        sprinkle_specials(x, rows, cols);
    if (op == ROW_SOFTMAX && rows > 3) { /* masked entries and a fully masked row */
        for (int j = 0; j < cols; j += 3)
            x[(size_t)3 * cols + j] = -INFINITY;
        if (rows > 4)
            for (int j = 0; j < cols; j++)
                x[(size_t)4 * cols + j] = -INFINITY;
    }
    if (op == ROW_L2 && rows > 3)
        memset(x + (size_t)3 * cols, 0, (size_t)cols * sizeof *x); /* a zero row stays zero */
    const float eps = 1e-6f;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    memcpy(want, x, n * sizeof *want);
    const prism_backend_ops *r = c->ref->ops;
    switch (op) {
    case ROW_LAYERNORM: r->layernorm(c->ref, want, x, gam, beta ? bet : NULL, rows, cols, eps); break;
    case ROW_RMSNORM: r->rmsnorm(c->ref, want, x, gam, rows, cols, eps); break;
    case ROW_SOFTMAX: r->softmax(c->ref, want, rows, cols); break;
    case ROW_L2: r->l2_normalize(c->ref, want, rows, cols); break;
    }
    static const char *names[] = {"layernorm", "rmsnorm", "softmax", "l2_normalize"};
    for (int g = 0; g < c->n_gpu; g++) {
        prism_backend *be = c->gpu[g];
        dbuf dx, dy, dg, db;
        char what[160];
        snprintf(what, sizeof what, "%s %s rows=%d cols=%d%s%s%s", c->gname[g], names[op], rows, cols,
                 op == ROW_LAYERNORM ? (beta ? " beta" : " no-beta") : "",
                 inplace || op == ROW_SOFTMAX || op == ROW_L2 ? " in-place" : "",
                 specials ? " nan/inf" : "");
        if (!dbuf_make(c, be, &dx, x, n))
            continue;
        dbuf_make(c, be, &dg, gam, (size_t)cols);
        dbuf_make(c, be, &db, bet, (size_t)cols);
        bool separate = (op == ROW_LAYERNORM || op == ROW_RMSNORM) && !inplace;
        if (separate)
            dbuf_make(c, be, &dy, NULL, n);
        else
            dy = dx;
        int rc = -1;
        switch (op) {
        case ROW_LAYERNORM:
            rc = be->ops->layernorm(be, dy.p, dx.p, dg.p, beta ? db.p : NULL, rows, cols, eps);
            break;
        case ROW_RMSNORM: rc = be->ops->rmsnorm(be, dy.p, dx.p, dg.p, rows, cols, eps); break;
        case ROW_SOFTMAX: rc = be->ops->softmax(be, dx.p, rows, cols); break;
        case ROW_L2: rc = be->ops->l2_normalize(be, dx.p, rows, cols); break;
        }
        if (GH_CHECK(&c->h, rc == 0, "%s: returns 0%s%s", what, rc ? ": " : "",
                     rc ? prism_cuda_last_error(be) : "") &&
            dbuf_get(c, &dy, got, what))
            compare_f32(c, what, got, want, n);
        if (separate) {
            float *xs = malloc(n * sizeof *xs);
            if (dbuf_get(c, &dx, xs, "input untouched"))
                compare_exact(c, "input untouched", xs, x, n);
            free(xs);
            dbuf_free(&dy);
        }
        dbuf_free(&dx), dbuf_free(&dg), dbuf_free(&db);
    }
    free(x), free(gam), free(bet), free(want), free(got);
}

static void test_rows(ctx *c)
{
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 32}, {17, 768}, {9, 768}, {4, 1000},
                             {2, 2049}, {3, 5000}, {6, 1152}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1];
        const bool odd = s % 2 == 1;
        run_row_case(c, ROW_LAYERNORM, rows, cols, !odd, odd, false);
        run_row_case(c, ROW_RMSNORM, rows, cols, false, !odd, false);
        run_row_case(c, ROW_SOFTMAX, rows, cols, false, true, false);
        run_row_case(c, ROW_L2, rows, cols, false, true, false);
    }
    run_row_case(c, ROW_LAYERNORM, 4, 96, true, false, true);
    run_row_case(c, ROW_RMSNORM, 4, 96, false, false, true);
    run_row_case(c, ROW_SOFTMAX, 6, 200, false, true, true);
    run_row_case(c, ROW_SOFTMAX, 6, 3000, false, true, true);
    run_row_case(c, ROW_L2, 5, 96, false, true, true);
}

/* ---- elementwise ----------------------------------------------------------------------------- */

static void add_specials(float *v, size_t n)
{
    static const float sp[] = {NAN, INFINITY, -INFINITY, -0.0f, 1e20f, -1e20f, 1e-30f, 0.0f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0] && i * 7 < n; i++)
        v[i * 7] = sp[i];
}

static void test_elementwise(ctx *c)
{
    const size_t sizes[] = {1, 3, 4, 5, 1000, (1u << 20) | 3};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t n = sizes[s];
        for (int off = 0; off < 2; off++) {
            float *a = rand_vec(c, n + 1, 0, 2), *b = rand_vec(c, n + 1, 0, 2);
            add_specials(a, n + 1);
            add_specials(b + 1, n); /* specials at other positions than a's */
            float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
            for (int op = 0; op < 2; op++) {
                if (op)
                    c->ref->ops->mul(c->ref, want, a + off, b + off, n);
                else
                    c->ref->ops->add(c->ref, want, a + off, b + off, n);
                for (int g = 0; g < c->n_gpu; g++) {
                    prism_backend *be = c->gpu[g];
                    dbuf da, db, dy;
                    char what[128];
                    snprintf(what, sizeof what, "%s %s n=%zu%s", c->gname[g], op ? "mul" : "add", n,
                             off ? " misaligned" : "");
                    if (!dbuf_make(c, be, &da, a, n + 1))
                        continue;
                    dbuf_make(c, be, &db, b, n + 1);
                    dbuf_make(c, be, &dy, NULL, n);
                    int rc = op ? be->ops->mul(be, dy.p, da.p + off, db.p + off, n)
                                : be->ops->add(be, dy.p, da.p + off, db.p + off, n);
                    if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dy, got, what))
                        compare_exact(c, what, got, want, n);
                    /* in place, y aliasing a */
                    rc = op ? be->ops->mul(be, da.p + off, da.p + off, db.p + off, n)
                            : be->ops->add(be, da.p + off, da.p + off, db.p + off, n);
                    float *all = malloc((n + 1) * sizeof *all);
                    strcat(what, " in-place");
                    if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &da, all, what))
                        compare_exact(c, what, all + off, want, n);
                    free(all);
                    dbuf_free(&da), dbuf_free(&db), dbuf_free(&dy);
                }
            }
            free(a), free(b), free(want), free(got);
        }
    }
    /* activate: every activation over a wide range and the special values */
    const prism_act acts[] = {PRISM_ACT_NONE, PRISM_ACT_GELU_TANH, PRISM_ACT_GELU_ERF,
                              PRISM_ACT_RELU, PRISM_ACT_SILU};
    const size_t an[] = {1, 7, 100003};
    for (size_t s = 0; s < sizeof an / sizeof an[0]; s++) {
        const size_t n = an[s];
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(rng_unit(c) * 24.0 - 12.0);
        add_specials(x, n);
        float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
            memcpy(want, x, n * sizeof *want);
            c->ref->ops->activate(c->ref, want, n, acts[a]);
            for (int g = 0; g < c->n_gpu; g++) {
                prism_backend *be = c->gpu[g];
                dbuf dx;
                char what[128];
                snprintf(what, sizeof what, "%s activate %s n=%zu", c->gname[g], act_name(acts[a]), n);
                if (!dbuf_make(c, be, &dx, x, n))
                    continue;
                int rc = be->ops->activate(be, dx.p, n, acts[a]);
                if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dx, got, what))
                    compare(c, what, got, want, NULL, 1e-5, 1e-6, n);
                dbuf_free(&dx);
            }
        }
        free(x), free(want), free(got);
    }
}

/* ---- attention -------------------------------------------------------------------------------- */

typedef struct attn_case {
    int B, H, Tq, Tk, d;
    bool bias, mask, causal;
    bool probe;     /* q batch stride 0 (the pooling head) */
    bool packed;    /* q, k, v interleaved in one [rows, 3E] buffer */
    int o_pad;      /* extra floats between output rows (must stay untouched) */
    bool specials;  /* NaN in a query, NaN in a key, Inf in a value */
    bool dead_batch; /* batch 1 has every key masked: zeros */
    bool skew;      /* k and v start one float past a 16-byte boundary (no vector loads) */
    float softcap;  /* Gemma 2's logit soft-capping (0: none) */
} attn_case;

/* The attention bound of the header, per output element (0 outside the
 * output rows, whose poison must come back untouched on both sides). */
static void attn_bound(const prism_attn_desc *a, const float *q, const float *k,
                          const float *v, const float *want, size_t on, double u, double *bound)
{
    const double rms = rms_finite(want, on);
    double *p = malloc(((size_t)a->Tk + 1) * sizeof *p);
    for (size_t i = 0; i < on; i++)
        bound[i] = 0;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int i = 0; i < a->Tq; i++) {
                const float *qi = q + b * a->q_bstride + i * a->q_stride + h * a->d;
                const double f32 = ldexp(1, -24);
                double mx = -INFINITY, delta = 0;
                for (int j = 0; j < a->Tk; j++) {
                    const float *kj = k + b * a->k_bstride + j * a->k_stride + h * a->d;
                    double dot = 0, m = 0;
                    for (int cc = 0; cc < a->d; cc++) {
                        dot += (double)qi[cc] * kj[cc];
                        m += fabs((double)qi[cc] * kj[cc]);
                    }
                    double sc = dot * a->scale, extra = fabs(sc);
                    if (a->softcap > 0) { /* 1-Lipschitz: the dot's error passes through */
                        sc = tanh(sc / a->softcap) * a->softcap;
                        extra = fabs(sc) + a->softcap; /* tanhf's few ulps of the cap */
                    }
                    if (a->bias) {
                        const double bv = a->bias[((size_t)h * a->Tq + i) * a->Tk + j];
                        sc += bv;
                        extra += fabs(bv);
                    }
                    if (a->key_mask) {
                        const double mv = a->key_mask[(size_t)b * a->Tk + j];
                        sc += mv;
                        extra += isfinite(mv) ? fabs(mv) : 0;
                    }
                    if (a->causal && j > i + (a->Tk - a->Tq))
                        sc = -INFINITY;
                    p[j] = sc;
                    if (sc > mx)
                        mx = sc;
                    const double dj = fabs(a->scale) * (2 * u + u * u + a->d * f32) * m + 4 * f32 * extra;
                    if (sc > -INFINITY && dj > delta)
                        delta = dj;
                }
                double l = 0;
                for (int j = 0; j < a->Tk; j++) {
                    p[j] = mx > -INFINITY ? exp(p[j] - mx) : 0;
                    l += p[j];
                }
                const double f = (exp(2 * delta) - 1) * (1 + u) * (1 + u) + 2 * u + u * u + 1e-5;
                for (int cc = 0; cc < a->d; cc++) {
                    double W = 0;
                    for (int j = 0; j < a->Tk; j++)
                        W += (l > 0 ? p[j] / l : 0) *
                             fabs((double)v[b * a->v_bstride + j * a->v_stride + h * a->d + cc]);
                    const size_t idx = (size_t)(b * a->o_bstride + i * a->o_stride + h * a->d + cc);
                    bound[idx] = W * f + 1e-5 * (fabs((double)want[idx]) + rms);
                }
            }
    free(p);
}

static void run_attention_case(ctx *c, const attn_case *ac)
{
    const int B = ac->B, H = ac->H, Tq = ac->Tq, Tk = ac->Tk, d = ac->d, E = H * d;
    prism_attn_desc a;
    memset(&a, 0, sizeof a);
    a.B = B, a.H = H, a.Tq = Tq, a.Tk = Tk, a.d = d;
    a.scale = ac->bias ? 1.0f : 1.0f / sqrtf((float)d);
    a.causal = ac->causal;
    a.softcap = ac->softcap;
    /* buffer layout */
    size_t qn, kvn, q_off = 0, k_off = 0, v_off = 0;
    if (ac->packed) {
        /* one [B·T, 3E] buffer, T = Tq = Tk */
        a.q_stride = a.k_stride = a.v_stride = 3 * E;
        a.q_bstride = a.k_bstride = a.v_bstride = (int64_t)Tq * 3 * E;
        qn = (size_t)B * Tq * 3 * E;
        kvn = 0;
        q_off = 0, k_off = (size_t)E, v_off = 2 * (size_t)E;
    } else {
        a.q_stride = a.k_stride = a.v_stride = E;
        a.q_bstride = ac->probe ? 0 : (int64_t)Tq * E;
        a.k_bstride = a.v_bstride = (int64_t)Tk * E;
        qn = (size_t)(ac->probe ? 1 : B) * Tq * E;
        kvn = (size_t)B * Tk * E;
        if (ac->skew) {
            k_off = v_off = 1;
            kvn += 1;
        }
    }
    a.o_stride = E + ac->o_pad;
    a.o_bstride = (int64_t)Tq * a.o_stride;
    const size_t on = (size_t)B * Tq * a.o_stride;
    float *q = rand_vec(c, qn, 0, 1);
    float *k = kvn ? rand_vec(c, kvn, 0, 1) : NULL, *v = kvn ? rand_vec(c, kvn, 0, 1) : NULL;
    float *bias = ac->bias ? rand_vec(c, (size_t)H * Tq * Tk, 0, 1) : NULL;
    float *mask = NULL;
    if (ac->mask) {
        mask = malloc((size_t)B * Tk * sizeof *mask);
        for (size_t i = 0; i < (size_t)B * Tk; i++)
            mask[i] = rng_unit(c) < 0.3 ? -INFINITY : (rng_unit(c) < 0.5 ? 0.0f : -1.5f);
        if (ac->dead_batch && B > 1)
            for (int j = 0; j < Tk; j++)
                mask[(size_t)1 * Tk + j] = -INFINITY;
    }
    float *kk = ac->packed ? q : k, *vv = ac->packed ? q : v;
    if (ac->specials) {
        /* Heads apart: a NaN query (scores all NaN → a zero row in both), a
         * NaN key (that head's rows all NaN), an Inf value (Inf in one
         * output column). The reference also multiplies the zero weights of
         * an all-masked row by v, so an Inf value in the NaN query's head
         * would make that row NaN there and zero here (docs/cuda.md). */
        q[q_off + (size_t)1 * a.q_stride + 0] = NAN;                         /* query 1, head 0 */
        kk[k_off + (size_t)2 * a.k_stride + (size_t)d] = NAN;                 /* key 2, head 1 */
        vv[v_off + (size_t)3 * a.v_stride + 2 * (size_t)d + 1] = INFINITY;    /* value 3, head 2 */
    }
    /* reference, on an output poisoned like the device's */
    float *want = malloc(on * sizeof *want), *got = malloc(on * sizeof *got);
    for (size_t i = 0; i < on; i++)
        want[i] = f_bits(POISON_BITS);
    prism_attn_desc ra = a;
    ra.bias = bias;
    ra.key_mask = mask;
    c->ref->ops->attention(c->ref, want, q + q_off, kk + k_off, vv + v_off, &ra);

    double *bound = malloc(on * sizeof *bound);
    /* per backend: AUTO (tensor cores with K/V resident where they fit),
     * SIMT (float32) and TILED (the tiled tensor-core kernel) */
    for (int run = 0; run < 3 * c->n_gpu; run++) {
        const int g = run / 3, simt = run % 3 == 1, tiled = run % 3 == 2;
        prism_backend *be = c->gpu[g];
        const double u = c->gdt[g] == PRISM_DT_BF16 ? ldexp(1, -8)
                         : c->gdt[g] == PRISM_DT_F16 ? ldexp(1, -11) : 0;
        if ((simt || tiled) && u == 0)
            continue; /* float32 backends have one path */
        if (tiled && (d < 16 || d > 128 || ac->softcap > 0))
            continue; /* same as SIMT */
        const bool tc = !simt && u > 0 && d >= 16 && d <= 128 && !(ac->softcap > 0);
        prism_cuda_set_attention_path(be, simt    ? PRISM_CUDA_ATTN_SIMT
                                          : tiled ? PRISM_CUDA_ATTN_TILED
                                                  : PRISM_CUDA_ATTN_AUTO);
        char what[240];
        snprintf(what, sizeof what,
                 "%s attention B=%d H=%d Tq=%d Tk=%d d=%d%s%s%s%s%s%s%s%s%s%s [%s]", c->gname[g], B,
                 H, Tq, Tk, d, ac->softcap > 0 ? " softcap" : "", ac->bias ? " bias" : "", ac->mask ? " mask" : "",
                 ac->causal ? " causal" : "", ac->probe ? " probe(bstride 0)" : "",
                 ac->packed ? " packed-qkv" : "", ac->o_pad ? " padded-out" : "",
                 ac->specials ? " nan/inf" : "", ac->dead_batch ? " dead-batch" : "",
                 ac->skew ? " skewed-kv" : "",
                 !tc ? "float32" : tiled ? "tensor cores, tiled" : "tensor cores, auto");
        dbuf dq, dk, dv, db, dm, dout;
        memset(&dk, 0, sizeof dk), memset(&dv, 0, sizeof dv);
        memset(&db, 0, sizeof db), memset(&dm, 0, sizeof dm);
        if (!dbuf_make(c, be, &dq, q, qn))
            continue;
        if (kvn) {
            dbuf_make(c, be, &dk, k, kvn);
            dbuf_make(c, be, &dv, v, kvn);
            if (!dk.p || !dv.p) {
                dbuf_free(&dq), dbuf_free(&dk), dbuf_free(&dv);
                continue;
            }
        }
        if (bias)
            dbuf_make(c, be, &db, bias, (size_t)H * Tq * Tk);
        if (mask)
            dbuf_make(c, be, &dm, mask, (size_t)B * Tk);
        dbuf_make(c, be, &dout, NULL, on);
        prism_attn_desc da = a;
        da.bias = bias ? db.p : NULL;
        da.key_mask = mask ? dm.p : NULL;
        const float *dqp = dq.p + q_off;
        const float *dkp = ac->packed ? dq.p + k_off : dk.p + k_off;
        const float *dvp = ac->packed ? dq.p + v_off : dv.p + v_off;
        int rc = be->ops->attention(be, dout.p, dqp, dkp, dvp, &da);
        prism_cuda_set_attention_path(be, PRISM_CUDA_ATTN_AUTO);
        if (GH_CHECK(&c->h, rc == 0, "%s: returns 0%s%s", what, rc ? ": " : "",
                     rc ? prism_cuda_last_error(be) : "") &&
            dbuf_get(c, &dout, got, what)) {
            attn_bound(&ra, q + q_off, kk + k_off, vv + v_off, want, on, tc ? u : 0, bound);
            compare(c, what, got, want, bound, 0, 0, on);
        }
        dbuf_free(&dq), dbuf_free(&dk), dbuf_free(&dv), dbuf_free(&db), dbuf_free(&dm);
        dbuf_free(&dout);
    }
    free(q), free(k), free(v), free(bias), free(mask), free(want), free(got), free(bound);
}

static void test_attention(ctx *c)
{
    const attn_case cases[] = {
        {1, 1, 1, 1, 1, false, false, false, false, false, 0, false, false, false, 0},
        {2, 3, 5, 7, 6, false, false, false, false, false, 0, false, false, false, 0},
        {2, 12, 196, 196, 64, false, false, false, false, false, 0, false, false, false, 0},
        {3, 12, 1, 196, 64, false, false, false, true, false, 0, false, false, false, 0},
        {2, 12, 64, 64, 64, false, false, false, false, false, 0, false, false, false, 0},
        {2, 4, 17, 33, 128, true, true, true, false, false, 0, false, false, false, 0},
        {1, 2, 5, 9, 16, false, false, true, false, false, 0, false, false, false, 0},
        {1, 2, 9, 5, 16, false, false, true, false, false, 0, false, false, false, 0},
        {2, 2, 70, 1030, 64, false, true, false, false, false, 0, false, true, false, 0},
        {2, 3, 40, 40, 100, true, false, false, false, false, 0, false, false, false, 0},
        {2, 3, 40, 50, 48, false, true, false, false, false, 0, false, false, false, 0},
        {2, 5, 33, 33, 20, false, false, true, false, false, 0, false, false, false, 0},
        {2, 5, 130, 130, 8, false, false, false, false, false, 0, false, false, false, 0},
        {2, 4, 21, 21, 32, false, false, false, false, true, 5, false, false, false, 0},
        {2, 2, 150, 150, 64, true, true, true, false, true, 3, false, false, false, 0},
        {1, 3, 4, 6, 8, false, false, false, false, false, 0, true, false, false, 0},
        /* the resident-K/V tensor-core kernel: SigLIP's shapes with masks,
         * dead batches, NaN/Inf (never with a mask: a masked key's Inf value
         * is NaN in the reference, skipped by the CPU stand-in), causal ends, both block sizes, scalar loads
         * (skewed k/v, d < 64, d = 72), d = 128, and shapes past its shared
         * memory that fall back to the tiled kernel */
        {3, 12, 196, 196, 64, false, true, false, false, false, 0, false, true, false, 0},
        {2, 3, 150, 150, 64, false, false, false, false, false, 0, true, false, false, 0},
        {2, 3, 100, 120, 32, false, false, true, false, false, 0, true, false, true, 0},
        {2, 4, 196, 196, 64, true, false, true, false, false, 2, false, false, true, 0},
        {2, 2, 130, 70, 64, false, false, true, false, false, 0, false, false, false, 0},
        {3, 2, 1, 196, 64, false, true, false, true, false, 0, false, true, true, 0},
        {2, 2, 64, 64, 64, false, true, false, false, false, 0, false, true, false, 0},
        {2, 3, 80, 176, 128, false, false, false, false, false, 0, true, false, false, 0},
        {2, 3, 100, 120, 32, false, true, true, false, false, 0, false, true, true, 0},
        {2, 2, 40, 177, 128, false, true, false, false, false, 0, false, true, false, 0},
        {2, 3, 50, 150, 72, true, false, false, false, false, 0, false, false, false, 0},
        {2, 2, 20, 336, 64, false, true, false, false, false, 0, false, false, false, 0},
        {2, 2, 20, 337, 64, false, true, false, false, false, 0, false, false, true, 0},
        /* Gemma: heads of 256 (the float32 kernel on every backend), and
         * Gemma 2's soft-capping, small caps so that they bite */
        {2, 2, 9, 300, 256, false, true, false, false, false, 0, false, false, false, 0},
        {1, 3, 1, 40, 256, false, false, false, true, false, 0, false, false, false, 0},
        {2, 2, 33, 33, 256, false, false, true, false, false, 0, false, false, false, 3.0f},
        {2, 4, 21, 50, 64, true, true, false, false, false, 0, false, false, false, 2.0f},
        {2, 3, 64, 64, 64, false, false, true, false, false, 0, false, false, false, 1.5f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_attention_case(c, &cases[i]);
}

/* ---- add_layernorm -------------------------------------------------------------------------- *
 * x += h (bitwise as `add`), then y = layernorm(x) within the layernorm
 * bound; y separate, aliasing h (as siglip.c calls it) or aliasing x; rows
 * held in registers and rows past 2048 columns (re-read path); a NaN in h. */
static void test_add_layernorm(ctx *c)
{
    static const int shapes[][2] = {{3, 7}, {5, 768}, {197, 33}, {64, 1152}, {2, 4099}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int alias = 0; alias < 3; alias++) {
            const int rows = shapes[si][0], cols = shapes[si][1];
            const size_t n = (size_t)rows * cols;
            float *x = rand_vec(c, n, 3.0, 2.0), *h = rand_vec(c, n, 0.0, 1.0);
            float *gam = rand_vec(c, (size_t)cols, 1.0, 0.3), *bet = rand_vec(c, (size_t)cols, 0, 0.3);
            if (alias == 1 && rows > 1)
                h[(size_t)cols + 1] = NAN; /* poisons row 1 on both sides */
            float *xs = malloc(n * sizeof *xs), *want = malloc(n * sizeof *want);
            float *got = malloc(n * sizeof *got);
            for (size_t i = 0; i < n; i++)
                xs[i] = x[i] + h[i];
            c->ref->ops->layernorm(c->ref, want, xs, gam, bet, rows, cols, 1e-6f);
            for (int g = 0; g < c->n_gpu; g++) {
                prism_backend *be = c->gpu[g];
                char what[160];
                snprintf(what, sizeof what, "%s add_layernorm rows=%d cols=%d y%s", c->gname[g],
                         rows, cols, alias == 0 ? " separate" : alias == 1 ? "=h" : "=x");
                if (!GH_CHECK(&c->h, be->ops->add_layernorm != NULL, "%s: op present", what))
                    continue;
                dbuf dx, dh, dy, dg, db;
                memset(&dy, 0, sizeof dy);
                if (!dbuf_make(c, be, &dx, x, n))
                    continue;
                dbuf_make(c, be, &dh, h, n);
                dbuf_make(c, be, &dg, gam, (size_t)cols);
                dbuf_make(c, be, &db, bet, (size_t)cols);
                if (alias == 0)
                    dbuf_make(c, be, &dy, NULL, n);
                float *yp = alias == 0 ? dy.p : alias == 1 ? dh.p : dx.p;
                const int rc = be->ops->add_layernorm(be, dx.p, dh.p, yp, dg.p, db.p, rows, cols, 1e-6f);
                if (GH_CHECK(&c->h, rc == 0, "%s: returns 0%s%s", what, rc ? ": " : "",
                             rc ? prism_cuda_last_error(be) : "")) {
                    const dbuf *yb = alias == 0 ? &dy : alias == 1 ? &dh : &dx;
                    if (dbuf_get(c, yb, got, what))
                        compare_f32(c, what, got, want, n);
                    if (alias != 2 && dbuf_get(c, &dx, got, what)) {
                        char w2[200];
                        snprintf(w2, sizeof w2, "%s: x = x + h", what);
                        compare_exact(c, w2, got, xs, n);
                    }
                }
                dbuf_free(&dx), dbuf_free(&dh), dbuf_free(&dg), dbuf_free(&db);
                if (alias == 0)
                    dbuf_free(&dy);
            }
            free(x), free(h), free(gam), free(bet), free(xs), free(want), free(got);
        }
}

/* ---- data movement -------------------------------------------------------------------------------- */

static void test_data_movement(ctx *c)
{
    const int pshapes[][4] = {{1, 3, 224, 16}, {2, 3, 28, 7}, {3, 1, 6, 2}, {2, 4, 30, 6}, {1, 1, 5, 5}};
    for (size_t s = 0; s < sizeof pshapes / sizeof pshapes[0]; s++) {
        const int B = pshapes[s][0], C = pshapes[s][1], S = pshapes[s][2], P = pshapes[s][3];
        const size_t in = (size_t)B * C * S * S, outn = in; /* B·N·C·P·P == B·C·S·S */
        float *img = rand_vec(c, in, 0, 1), *want = malloc(outn * sizeof *want);
        float *got = malloc(outn * sizeof *got);
        c->ref->ops->patchify(c->ref, want, img, B, C, S, P);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            dbuf di, dout;
            char what[128];
            snprintf(what, sizeof what, "%s patchify B=%d C=%d S=%d P=%d", c->gname[g], B, C, S, P);
            if (!dbuf_make(c, be, &di, img, in))
                continue;
            dbuf_make(c, be, &dout, NULL, outn);
            int rc = be->ops->patchify(be, dout.p, di.p, B, C, S, P);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dout, got, what))
                compare_exact(c, what, got, want, outn);
            dbuf_free(&di), dbuf_free(&dout);
        }
        free(img), free(want), free(got);
    }

    const int eshapes[][3] = {{10, 1, 1}, {50, 33, 7}, {1000, 768, 130}};
    for (size_t s = 0; s < sizeof eshapes / sizeof eshapes[0]; s++) {
        const int V = eshapes[s][0], dim = eshapes[s][1], n = eshapes[s][2];
        float *table = rand_vec(c, (size_t)V * dim, 0, 1);
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int i = 0; i < n; i++)
            ids[i] = (int32_t)(rng_next(c) % (uint64_t)V);
        ids[n - 1] = V - 1;
        float *want = malloc((size_t)n * dim * sizeof *want), *got = malloc((size_t)n * dim * sizeof *got);
        c->ref->ops->embedding(c->ref, want, table, ids, n, dim);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            dbuf dt, dout;
            char what[128];
            snprintf(what, sizeof what, "%s embedding V=%d dim=%d n=%d", c->gname[g], V, dim, n);
            int32_t *dids = be->ops->alloc(be, (size_t)n * sizeof *dids);
            if (!GH_CHECK(&c->h, dids != NULL, "%s: alloc ids", what))
                continue;
            be->ops->upload(be, dids, ids, (size_t)n * sizeof *ids);
            dbuf_make(c, be, &dt, table, (size_t)V * dim);
            dbuf_make(c, be, &dout, NULL, (size_t)n * dim);
            int rc = be->ops->embedding(be, dout.p, dt.p, dids, n, dim);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dout, got, what))
                compare_exact(c, what, got, want, (size_t)n * dim);
            dbuf_free(&dt), dbuf_free(&dout);
            be->ops->free(be, dids);
        }
        free(table), free(ids), free(want), free(got);
    }

    const int rshapes[][3] = {{1, 1, 1}, {10, 3, 5}, {392, 196, 768}, {7, 7, 13}};
    for (size_t s = 0; s < sizeof rshapes / sizeof rshapes[0]; s++) {
        const int nr = rshapes[s][0], period = rshapes[s][1], cols = rshapes[s][2];
        const size_t n = (size_t)nr * cols;
        float *y = rand_vec(c, n, 0, 1), *rows = rand_vec(c, (size_t)period * cols, 0, 1);
        float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
        memcpy(want, y, n * sizeof *want);
        c->ref->ops->add_rows(c->ref, want, rows, nr, period, cols);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            dbuf dy, dr;
            char what[128];
            snprintf(what, sizeof what, "%s add_rows n=%d period=%d cols=%d", c->gname[g], nr, period, cols);
            if (!dbuf_make(c, be, &dy, y, n))
                continue;
            dbuf_make(c, be, &dr, rows, (size_t)period * cols);
            int rc = be->ops->add_rows(be, dy.p, dr.p, nr, period, cols);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dy, got, what))
                compare_exact(c, what, got, want, n);
            dbuf_free(&dy), dbuf_free(&dr);
        }
        free(y), free(rows), free(want), free(got);
    }

    const int64_t gshapes[][4] = {{1, 1, 0, 1}, {3, 5, 4, 7}, {4, 64, 63, 768}, {2, 196, 0, 33}};
    for (size_t s = 0; s < sizeof gshapes / sizeof gshapes[0]; s++) {
        const int n = (int)gshapes[s][0], cols = (int)gshapes[s][3];
        const int64_t stride = gshapes[s][1], offset = gshapes[s][2];
        const size_t xn = (size_t)((n - 1) * stride + offset + 1) * cols;
        float *x = rand_vec(c, xn, 0, 1);
        float *want = malloc((size_t)n * cols * sizeof *want), *got = malloc((size_t)n * cols * sizeof *got);
        c->ref->ops->gather_rows(c->ref, want, x, n, stride, offset, cols);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            dbuf dx, dout;
            char what[128];
            snprintf(what, sizeof what, "%s gather_rows n=%d stride=%lld offset=%lld cols=%d",
                     c->gname[g], n, (long long)stride, (long long)offset, cols);
            if (!dbuf_make(c, be, &dx, x, xn))
                continue;
            dbuf_make(c, be, &dout, NULL, (size_t)n * cols);
            int rc = be->ops->gather_rows(be, dout.p, dx.p, n, stride, offset, cols);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dout, got, what))
                compare_exact(c, what, got, want, (size_t)n * cols);
            dbuf_free(&dx), dbuf_free(&dout);
        }
        free(x), free(want), free(got);
    }
}

/* ---- generation ops: rel_bias, copy_rows, topk ------------------------------------------------------- */

static void test_generation(ctx *c)
{
    /* rel_bias: {num_buckets, H, Tq, Tk, q_offset}; the bucket table covers
     * rel in [-(Tq - 1 + q_offset), Tk - 1] at rel0 = Tq - 1 + q_offset. */
    const int bshapes[][5] = {{32, 8, 7, 7, 0}, {32, 6, 1, 13, 12}, {5, 3, 9, 4, 0}, {1, 1, 1, 1, 0},
                              {32, 12, 33, 50, 17}};
    for (size_t s = 0; s < sizeof bshapes / sizeof bshapes[0]; s++) {
        const int nb = bshapes[s][0], H = bshapes[s][1], Tq = bshapes[s][2], Tk = bshapes[s][3],
                  qo = bshapes[s][4];
        const int rel0 = Tq - 1 + qo, nrel = rel0 + Tk;
        float *w = rand_vec(c, (size_t)nb * H, 0, 1);
        int32_t *bk = malloc((size_t)nrel * sizeof *bk);
        for (int i = 0; i < nrel; i++)
            bk[i] = (int32_t)(rng_next(c) % (uint64_t)nb);
        bk[nrel - 1] = nb - 1;
        const size_t n = (size_t)H * Tq * Tk;
        float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
        c->ref->ops->rel_bias(c->ref, want, w, bk, rel0, H, Tq, Tk, qo);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            dbuf dw, dout;
            char what[128];
            snprintf(what, sizeof what, "%s rel_bias buckets=%d H=%d Tq=%d Tk=%d q_offset=%d",
                     c->gname[g], nb, H, Tq, Tk, qo);
            if (!GH_CHECK(&c->h, be->ops->rel_bias != NULL, "%s: op present", what))
                continue;
            int32_t *dbk = be->ops->alloc(be, (size_t)nrel * sizeof *dbk);
            if (!GH_CHECK(&c->h, dbk != NULL, "%s: alloc buckets", what))
                continue;
            be->ops->upload(be, dbk, bk, (size_t)nrel * sizeof *bk);
            dbuf_make(c, be, &dw, w, (size_t)nb * H);
            dbuf_make(c, be, &dout, NULL, n);
            int rc = be->ops->rel_bias(be, dout.p, dw.p, dbk, rel0, H, Tq, Tk, qo);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &dout, got, what))
                compare_exact(c, what, got, want, n);
            dbuf_free(&dw), dbuf_free(&dout);
            be->ops->free(be, dbk);
        }
        free(w), free(bk), free(want), free(got);
    }

    /* copy_rows: {n, cols, dst_stride, src_stride}; the destination starts
     * as a known pattern so the untouched gaps between its rows are checked
     * too. */
    const int cshapes[][4] = {{1, 1, 1, 1}, {5, 7, 9, 7}, {12, 64, 64, 192}, {3, 33, 40, 100},
                              {17, 768, 1000, 768}};
    for (size_t s = 0; s < sizeof cshapes / sizeof cshapes[0]; s++) {
        const int n = cshapes[s][0], cols = cshapes[s][1];
        const int64_t ds = cshapes[s][2], ss = cshapes[s][3];
        const size_t dn = (size_t)((n - 1) * ds + cols), sn = (size_t)((n - 1) * ss + cols);
        float *src = rand_vec(c, sn, 0, 1), *dst0 = rand_vec(c, dn, 5, 1);
        float *want = malloc(dn * sizeof *want), *got = malloc(dn * sizeof *got);
        memcpy(want, dst0, dn * sizeof *want);
        c->ref->ops->copy_rows(c->ref, want, ds, src, ss, n, cols);
        for (int g = 0; g < c->n_gpu; g++) {
            prism_backend *be = c->gpu[g];
            dbuf dsrc, ddst;
            char what[128];
            snprintf(what, sizeof what, "%s copy_rows n=%d cols=%d dst_stride=%lld src_stride=%lld",
                     c->gname[g], n, cols, (long long)ds, (long long)ss);
            if (!GH_CHECK(&c->h, be->ops->copy_rows != NULL, "%s: op present", what))
                continue;
            if (!dbuf_make(c, be, &dsrc, src, sn))
                continue;
            dbuf_make(c, be, &ddst, dst0, dn);
            int rc = be->ops->copy_rows(be, ddst.p, ds, dsrc.p, ss, n, cols);
            if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) && dbuf_get(c, &ddst, got, what))
                compare_exact(c, what, got, want, dn);
            dbuf_free(&dsrc), dbuf_free(&ddst);
        }
        free(src), free(dst0), free(want), free(got);
    }

    /* topk: {rows, cols, k}. Values are drawn from a few levels so that
     * ties are common (lower column first), and rows get NaN, ±Inf and a
     * -0/+0 pair; one row is all equal, one all NaN. Indices and raw values
     * must equal the reference's exactly; log-softmax values within the
     * float32 bound (the sum of exponentials is a reduction). */
    const int tshapes[][3] = {{1, 1, 1}, {1, 5, 5}, {3, 32000, 1}, {4, 32128, 16}, {7, 1000, 8},
                              {2, 257, 3}, {33, 129, 16}, {5, 40, 40}};
    for (size_t s = 0; s < sizeof tshapes / sizeof tshapes[0]; s++) {
        const int rows = tshapes[s][0], cols = tshapes[s][1], k = tshapes[s][2];
        const size_t n = (size_t)rows * cols, nk = (size_t)rows * k;
        float *x = rand_vec(c, n, 0, 1);
        for (size_t i = 0; i < n; i++)
            if (rng_next(c) % 3 == 0)
                x[i] = (float)(int)(rng_next(c) % 7) - 3.0f; /* ties */
        for (int r = 0; r < rows; r++) {
            float *xr = x + (size_t)r * cols;
            switch (r % 6) {
            case 1:
                xr[(r * 7) % cols] = NAN;
                xr[(r * 13 + 1) % cols] = NAN;
                break;
            case 2:
                xr[(r * 5) % cols] = INFINITY;
                xr[(r * 11 + 3) % cols] = -INFINITY;
                break;
            case 3:
                xr[cols - 1] = 0.0f;
                xr[cols / 2] = -0.0f;
                xr[0] = 9.0f;
                xr[cols - 1 > 0 ? cols - 1 : 0] = 9.0f; /* equal maxima at both ends */
                break;
            case 4:
                for (int j = 0; j < cols; j++)
                    xr[j] = 1.5f;
                break;
            case 5:
                if (rows > 5)
                    for (int j = 0; j < cols; j++)
                        xr[j] = j % 3 ? NAN : -INFINITY;
                break;
            }
        }
        int32_t *wi = malloc(nk * sizeof *wi), *gi = malloc(nk * sizeof *gi);
        float *wv = malloc(nk * sizeof *wv), *gv = malloc(nk * sizeof *gv);
        for (int ls = 0; ls < 3; ls++) { /* 0: values, 1: log-softmax, 2: no values */
            c->ref->ops->topk(c->ref, wi, ls == 2 ? NULL : wv, x, rows, cols, k, ls == 1);
            for (int g = 0; g < c->n_gpu; g++) {
                prism_backend *be = c->gpu[g];
                dbuf dx, dv;
                char what[160];
                snprintf(what, sizeof what, "%s topk rows=%d cols=%d k=%d%s", c->gname[g], rows, cols,
                         k, ls == 0 ? "" : ls == 1 ? " log_softmax" : " (no values)");
                if (!GH_CHECK(&c->h, be->ops->topk != NULL, "%s: op present", what))
                    continue;
                /* indices in a float-sized guarded buffer (int32 and float
                 * are both 4 bytes); poisoned like every output */
                if (!dbuf_make(c, be, &dx, x, n))
                    continue;
                dbuf di;
                dbuf_make(c, be, &di, NULL, nk);
                dbuf_make(c, be, &dv, NULL, nk);
                int rc = be->ops->topk(be, (int32_t *)di.p, ls == 2 ? NULL : dv.p, dx.p, rows, cols,
                                       k, ls == 1);
                if (GH_CHECK(&c->h, rc == 0, "%s: returns 0", what) &&
                    dbuf_get(c, &di, (float *)gi, what)) {
                    size_t bad = 0, first = 0;
                    for (size_t i = 0; i < nk; i++)
                        if (gi[i] != wi[i] && bad++ == 0)
                            first = i;
                    GH_CHECK(&c->h, bad == 0, "%s: indices %s (%zu of %zu differ; first at %zu: "
                             "got %d want %d)", what, bad ? "differ" : "equal", bad, nk, first,
                             (int)gi[first], (int)wi[first]);
                    char vw[192];
                    snprintf(vw, sizeof vw, "%s values", what);
                    if (ls == 2) {
                        /* val NULL: the value buffer stays poisoned */
                        if (dbuf_get(c, &dv, gv, vw)) {
                            size_t touched = 0;
                            for (size_t i = 0; i < nk; i++)
                                touched += bits_f(gv[i]) != POISON_BITS;
                            GH_CHECK(&c->h, touched == 0, "%s: val NULL writes nothing (%zu)", vw,
                                     touched);
                        }
                    } else if (dbuf_get(c, &dv, gv, vw)) {
                        if (ls == 1)
                            compare_f32(c, vw, gv, wv, nk);
                        else
                            compare_exact(c, vw, gv, wv, nk);
                    }
                }
                dbuf_free(&dx), dbuf_free(&di), dbuf_free(&dv);
            }
        }
        free(x), free(wi), free(gi), free(wv), free(gv);
    }
}

/* ---- conversion cache: op sequences as the model runs them -------------------------------------- */

/* The buffers of one pass of a sequence: host memory on the reference
 * (ref), device buffers with guards otherwise; init[i] fills buffer i
 * (NULL: left as allocated). False when a device buffer failed. */
static bool seq_bufs(ctx *c, prism_backend *be, bool ref, int nb, const size_t *sizes,
                     const float *const *init, float **p, dbuf *db)
{
    bool ok = true;
    memset(db, 0, (size_t)nb * sizeof *db);
    for (int i = 0; i < nb; i++) {
        if (ref) {
            p[i] = malloc(sizes[i] * sizeof(float));
            if (init[i])
                memcpy(p[i], init[i], sizes[i] * sizeof(float));
        } else {
            ok = ok && dbuf_make(c, be, &db[i], init[i], sizes[i]);
            p[i] = db[i].p;
        }
    }
    return ok;
}

static void seq_bufs_free(bool ref, int nb, float **p, dbuf *db)
{
    for (int i = 0; i < nb; i++) {
        if (ref)
            free(p[i]);
        else
            dbuf_free(&db[i]);
    }
}

/* The nw matrices w[i] ([ndim[i], kdim[i]]) imported on be; release with
 * seq_weights_free. */
static void seq_weights(prism_backend *be, int nw, float *const *w, const int *ndim,
                        const int *kdim, const void **wi, bool *own)
{
    for (int i = 0; i < nw; i++) {
        own[i] = false;
        wi[i] = be->ops->weight_import(be, w[i], PRISM_DT_F32, (size_t)ndim[i] * kdim[i], true,
                                       &own[i]);
    }
}

static void seq_weights_free(prism_backend *be, int nw, const void **wi, const bool *own)
{
    for (int i = 0; i < nw; i++)
        if (own[i])
            be->ops->free(be, (void *)wi[i]);
}

/* The pass's outputs against the reference pass's. Up to two GEMMs in a
 * chain with K ≤ 160: a typical half-precision error is ~u relative, the
 * worst case ~2u·S/|y| ≈ 2u·8; 12u (BF16: 0.047) relative to |ref| + rms
 * holds that, while stale or missing data (the bugs this hunts) is off by
 * ~100%. */
static void seq_compare(ctx *c, int pass, const char *seq, int nout, const int *outs,
                        const char *const *onames, float *const *ref_out, const size_t *sizes,
                        const dbuf *db)
{
    const double u = c->gdt[pass] == PRISM_DT_BF16 ? ldexp(1, -8)
                     : c->gdt[pass] == PRISM_DT_F16 ? ldexp(1, -11) : 0;
    const double rt = u > 0 ? 12 * u : 1e-5;
    for (int i = 0; i < nout; i++) {
        const size_t n = sizes[outs[i]];
        float *got = malloc(n * sizeof *got);
        char what[160];
        snprintf(what, sizeof what, "%s %s: %s", c->gname[pass], seq, onames[i]);
        if (dbuf_get(c, &db[outs[i]], got, what)) {
            const double r = rms_finite(ref_out[i], n);
            compare(c, what, got, ref_out[i], NULL, rt, rt * r, n);
        }
        free(got);
    }
}

/* layernorm → three matmuls on its output (cache hits) → attention →
 * out_proj (attention's shadow) → add into h (forgets) → matmul on h (must
 * see the new h) → fc1 with gelu (shadow) → upload over its output
 * (forgets) → fc2 on it (must see the uploaded values) → layernorm →
 * matmul_residual from its first half of rows (a cache hit) into its second
 * half (forgets) → matmul on all of it (must see the new rows). Each result
 * is compared with the reference running the same sequence. */
static void test_sequences(ctx *c)
{
    const int T = 50, E = 64, I = 96, H = 4;
    const size_t nx = (size_t)T * E, nm = (size_t)T * I;
    float *x = rand_vec(c, nx, 1.0, 2.0), *z = rand_vec(c, nx, 0, 1), *up = rand_vec(c, nm, 0, 1);
    float *gam = rand_vec(c, (size_t)E, 1, 0.2), *bet = rand_vec(c, (size_t)E, 0, 0.2);
    float *w[5], *bias = rand_vec(c, (size_t)I, 0, 0.3);
    for (int i = 0; i < 3; i++)
        w[i] = rand_vec(c, (size_t)E * E, 0, 0.125);
    w[3] = rand_vec(c, (size_t)I * E, 0, 0.125);
    w[4] = rand_vec(c, (size_t)E * I, 0, 0.1);
    const int kdim[5] = {E, E, E, E, I}, ndim[5] = {E, E, E, I, E};
    prism_attn_desc a;
    memset(&a, 0, sizeof a);
    a.B = 1, a.H = H, a.Tq = T, a.Tk = T, a.d = E / H, a.scale = 0.25f;
    a.q_stride = a.k_stride = a.v_stride = a.o_stride = E;
    a.q_bstride = a.k_bstride = a.v_bstride = a.o_bstride = (int64_t)T * E;

    /* the sequence, written once for any backend; bufs: h q k v at o m; out */
    enum { B_X, B_H, B_Q, B_K, B_V, B_AT, B_O, B_M, B_Y, B_Z, B_G, B_BE, B_BI, NB };
    const size_t sizes[NB] = {nx, nx, nx, nx, nx, nx, nx, nm, nx, nx, (size_t)E, (size_t)E, (size_t)I};
    float *ref_out[5];
    for (int pass = -1; pass < c->n_gpu; pass++) {
        prism_backend *be = pass < 0 ? c->ref : c->gpu[pass];
        const prism_backend_ops *o = be->ops;
        float *p[NB];
        dbuf db[NB];
        const float *init[NB] = {x, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, z, gam, bet, bias};
        const bool ok = seq_bufs(c, be, pass < 0, NB, sizes, init, p, db);
        const void *wi[5];
        bool own[5];
        seq_weights(be, 5, w, ndim, kdim, wi, own);
        int rc = 0;
        if (ok) {
            rc |= o->layernorm(be, p[B_H], p[B_X], p[B_G], p[B_BE], T, E, 1e-6f);
            rc |= o->matmul(be, p[B_Q], p[B_H], wi[0], NULL, T, E, E, PRISM_ACT_NONE);
            rc |= o->matmul(be, p[B_K], p[B_H], wi[1], NULL, T, E, E, PRISM_ACT_NONE);
            rc |= o->matmul(be, p[B_V], p[B_H], wi[2], NULL, T, E, E, PRISM_ACT_NONE);
            rc |= o->attention(be, p[B_AT], p[B_Q], p[B_K], p[B_V], &a);
            rc |= o->matmul(be, p[B_O], p[B_AT], wi[0], NULL, T, E, E, PRISM_ACT_NONE);
            rc |= o->add(be, p[B_H], p[B_H], p[B_Z], nx);
            rc |= o->matmul(be, p[B_Q], p[B_H], wi[1], NULL, T, E, E, PRISM_ACT_NONE);
            rc |= o->matmul(be, p[B_M], p[B_H], wi[3], p[B_BI], T, I, E, PRISM_ACT_GELU_TANH);
            rc |= o->matmul(be, p[B_K], p[B_M], wi[4], NULL, T, E, I, PRISM_ACT_NONE);
            rc |= o->upload(be, p[B_M], up, nm * sizeof(float));
            rc |= o->matmul(be, p[B_Y], p[B_M], wi[4], NULL, T, E, I, PRISM_ACT_NONE);
            float *h2 = p[B_H] + (size_t)(T / 2) * E; /* rows T/2.. of h */
            rc |= o->layernorm(be, p[B_H], p[B_X], p[B_G], p[B_BE], T, E, 1e-6f);
            rc |= o->matmul_residual(be, h2, p[B_H], wi[2], p[B_BE], h2, T / 2, E, E);
            rc |= o->matmul(be, p[B_V], p[B_H], wi[1], NULL, T, E, E, PRISM_ACT_NONE);
        }
        static const int outs[5] = {B_O, B_Q, B_K, B_Y, B_V};
        static const char *const onames[5] = {"out_proj after attention",
                                              "matmul after add into its input",
                                              "fc2 on fc1's gelu output",
                                              "matmul after upload into its input",
                                              "matmul after matmul_residual into its input"};
        if (pass < 0) {
            for (int i = 0; i < 5; i++) {
                ref_out[i] = malloc(nx * sizeof(float));
                memcpy(ref_out[i], p[outs[i]], nx * sizeof(float));
            }
        } else if (GH_CHECK(&c->h, ok && rc == 0, "%s op sequence runs%s%s", c->gname[pass],
                            rc ? ": " : "", rc ? prism_cuda_last_error(be) : "")) {
            seq_compare(c, pass, "sequence", 5, outs, onames, ref_out, sizes, db);
        }
        seq_weights_free(be, 5, wi, own);
        seq_bufs_free(pass < 0, NB, p, db);
    }
    for (int i = 0; i < 5; i++)
        free(ref_out[i]);
    free(x), free(z), free(up), free(gam), free(bet), free(bias);
    for (int i = 0; i < 5; i++)
        free(w[i]);
}

/* The gated FFN of T5/UL2 and Gemma as their layers run it: rmsnorm →
 * gate (gelu) and up on its output → mul (gate · up) → matmul_residual
 * (down) on the product. rmsnorm and mul write their output in the weight
 * dtype too, so on a BF16/F16 backend none of the four GEMMs converts its
 * input (prism_cuda_conversions unchanged; not counted on the CPU
 * stand-in, which has no conversions). Then the cache must forget: add
 * into the product (a matmul on it must see the sum), upload over the
 * norm's output (must see the upload), and upload over a GEMM input (the
 * next GEMM on it converts once, and sees the upload).
 * Each result is compared with the reference running the same sequence. */
static void test_sequences_gated(ctx *c)
{
    const int T = 37, E = 64, I = 160;
    const size_t nx = (size_t)T * E, nm = (size_t)T * I;
    float *x = rand_vec(c, nx, 0.5, 2.0), *z = rand_vec(c, nm, 0, 1), *up = rand_vec(c, nx, 0, 1);
    float *gam = rand_vec(c, (size_t)E, 1, 0.2);
    float *w[3];
    w[0] = rand_vec(c, (size_t)I * E, 0, 0.125); /* gate */
    w[1] = rand_vec(c, (size_t)I * E, 0, 0.125); /* up */
    w[2] = rand_vec(c, (size_t)E * I, 0, 0.08);  /* down */
    const int kdim[3] = {E, E, I}, ndim[3] = {I, I, E};
    enum { B_X, B_H, B_G, B_U, B_R1, B_R2, B_Q, B_GAM, B_Z, NB };
    const size_t sizes[NB] = {nx, nx, nm, nm, nx, nx, nx, (size_t)E, nm};
    enum { N_OUT = 4 };
    static const int outs[N_OUT] = {B_X, B_R1, B_Q, B_R2};
    static const char *const onames[N_OUT] = {"down + residual after rmsnorm, gate, up, mul",
                                              "matmul after add into mul's output",
                                              "matmul after upload into rmsnorm's output",
                                              "matmul on a fresh upload"};
    float *ref_out[N_OUT];
    for (int pass = -1; pass < c->n_gpu; pass++) {
        prism_backend *be = pass < 0 ? c->ref : c->gpu[pass];
        const prism_backend_ops *o = be->ops;
        float *p[NB];
        dbuf db[NB];
        const float *init[NB] = {x, NULL, NULL, NULL, NULL, NULL, NULL, gam, z};
        const bool ok = seq_bufs(c, be, pass < 0, NB, sizes, init, p, db);
        const void *wi[3];
        bool own[3];
        seq_weights(be, 3, w, ndim, kdim, wi, own);
        const bool counted = pass >= 0 && prism_cuda_compute_capability(be) > 0;
        const bool half = pass >= 0 && c->gdt[pass] != PRISM_DT_F32;
        unsigned long long n0 = 0, n1 = 0, n2 = 0, n3 = 0;
        int rc = 0;
        if (ok) {
            n0 = pass >= 0 ? prism_cuda_conversions(be) : 0;
            rc |= o->rmsnorm(be, p[B_H], p[B_X], p[B_GAM], T, E, 1e-6f);
            /* up before gate: gate's GELU may run in a pass that writes its
             * own shadow (where cuBLASLt has no GELU plan), replacing h's */
            rc |= o->matmul(be, p[B_U], p[B_H], wi[1], NULL, T, I, E, PRISM_ACT_NONE);
            rc |= o->matmul(be, p[B_G], p[B_H], wi[0], NULL, T, I, E, PRISM_ACT_GELU_TANH);
            rc |= o->mul(be, p[B_G], p[B_G], p[B_U], nm);
            rc |= o->matmul_residual(be, p[B_X], p[B_G], wi[2], NULL, p[B_X], T, E, I);
            n1 = pass >= 0 ? prism_cuda_conversions(be) : 0;
            rc |= o->mul(be, p[B_G], p[B_G], p[B_Z], nm);
            rc |= o->add(be, p[B_G], p[B_G], p[B_Z], nm);
            rc |= o->matmul(be, p[B_R1], p[B_G], wi[2], NULL, T, E, I, PRISM_ACT_NONE);
            rc |= o->rmsnorm(be, p[B_H], p[B_X], p[B_GAM], T, E, 1e-6f);
            rc |= o->upload(be, p[B_H], up, nx * sizeof(float));
            rc |= o->matmul(be, p[B_U], p[B_H], wi[0], NULL, T, I, E, PRISM_ACT_NONE);
            rc |= o->matmul(be, p[B_Q], p[B_U], wi[2], NULL, T, E, I, PRISM_ACT_NONE);
            n2 = pass >= 0 ? prism_cuda_conversions(be) : 0;
            rc |= o->upload(be, p[B_U], z, nm * sizeof(float));
            rc |= o->matmul(be, p[B_R2], p[B_U], wi[2], NULL, T, E, I, PRISM_ACT_NONE);
            n3 = pass >= 0 ? prism_cuda_conversions(be) : 0;
        }
        if (pass < 0) {
            for (int i = 0; i < N_OUT; i++) {
                ref_out[i] = malloc(sizes[outs[i]] * sizeof(float));
                memcpy(ref_out[i], p[outs[i]], sizes[outs[i]] * sizeof(float));
            }
        } else if (GH_CHECK(&c->h, ok && rc == 0, "%s gated sequence runs%s%s", c->gname[pass],
                            rc ? ": " : "", rc ? prism_cuda_last_error(be) : "")) {
            seq_compare(c, pass, "gated sequence", N_OUT, outs, onames, ref_out, sizes, db);
            if (counted) {
                /* F32 converts nothing; half: only after the cache was
                 * forgotten (add, upload) and on the fresh upload */
                GH_CHECK(&c->h, n1 - n0 == 0, "%s: rmsnorm and mul outputs feed 4 GEMMs with no "
                         "conversion (%llu)", c->gname[pass], n1 - n0);
                GH_CHECK(&c->h, n2 - n1 == (half ? 3u : 0u), "%s: add and upload make the next "
                         "GEMMs convert: %llu of %d", c->gname[pass], n2 - n1, half ? 3 : 0);
                GH_CHECK(&c->h, n3 - n2 == (half ? 1u : 0u), "%s: a fresh upload converts once "
                         "(%llu)", c->gname[pass], n3 - n2);
            }
        }
        seq_weights_free(be, 3, wi, own);
        seq_bufs_free(pass < 0, NB, p, db);
    }
    for (int i = 0; i < N_OUT; i++)
        free(ref_out[i]);
    free(x), free(z), free(up), free(gam);
    for (int i = 0; i < 3; i++)
        free(w[i]);
}

/* ---- errors -------------------------------------------------------------------------------------------- */

static void test_errors(ctx *c)
{
    prism_error err = {0};
    prism_backend *bad = prism_cuda_backend_create(999, PRISM_DT_BF16, 0, &err);
    GH_CHECK(&c->h, bad == NULL && strstr(err.msg, "999"), "create on device 999 fails: %s", err.msg);
    bad = prism_cuda_backend_create(0, PRISM_DT_I8, 0, &err);
    GH_CHECK(&c->h, bad == NULL && strstr(err.msg, "dtype"), "create with I8 weights fails: %s", err.msg);

    prism_backend *be = c->gpu[0];
    void *huge = be->ops->alloc(be, (size_t)1 << 50);
    GH_CHECK(&c->h, huge == NULL && strstr(prism_cuda_last_error(be), "cudaMalloc") &&
                        strstr(prism_cuda_last_error(be), "backend_cuda.cu:"),
             "alloc of 1 PiB fails with a message naming file and line: %s",
             prism_cuda_last_error(be));
    prism_attn_desc a;
    memset(&a, 0, sizeof a);
    a.B = a.H = a.Tq = a.Tk = 1;
    a.d = 257; /* CUDA_ATTN_MAX_D + 1 */
    float *buf = be->ops->alloc(be, 4096 * sizeof(float));
    int rc = be->ops->attention(be, buf, buf, buf, buf, &a);
    GH_CHECK(&c->h, rc == -1 && strstr(prism_cuda_last_error(be), "d=257"),
             "attention with d=257 is refused: %s", prism_cuda_last_error(be));
    /* the backend still works after both failures */
    float in[3] = {1, 2, 3}, out[3] = {0};
    rc = be->ops->upload(be, buf, in, sizeof in);
    rc |= be->ops->add(be, buf, buf, buf, 3);
    rc |= be->ops->download(be, out, buf, sizeof out);
    rc |= be->ops->synchronize(be);
    GH_CHECK(&c->h, rc == 0 && out[0] == 2 && out[1] == 4 && out[2] == 6,
             "backend works after refused calls (%g %g %g)", (double)out[0], (double)out[1],
             (double)out[2]);
    be->ops->free(be, buf);
    for (int g = 0; g < c->n_gpu; g++) {
        double t = prism_cuda_gemm_tflops(c->gpu[g], 512, 512, 512, 0.02);
        GH_CHECK(&c->h, t > 0, "%s gemm_tflops(512³) = %.1f TFLOP/s%s%s", c->gname[g], t,
                 t > 0 ? "" : ": ", t > 0 ? "" : prism_cuda_last_error(c->gpu[g]));
    }
}

/* The group that holds each op of backend_ops.def to the reference. An op
 * without a line here does not compile (GPU_CASE_<op> undeclared), and a
 * check fails when the group named is not run. */
#define GPU_CASE_matmul test_matmul
#define GPU_CASE_matmul_residual test_matmul_residual
#define GPU_CASE_layernorm test_rows
#define GPU_CASE_rmsnorm test_rows
#define GPU_CASE_add test_elementwise
#define GPU_CASE_mul test_elementwise
#define GPU_CASE_activate test_elementwise
#define GPU_CASE_softmax test_rows
#define GPU_CASE_attention test_attention
#define GPU_CASE_patchify test_data_movement
#define GPU_CASE_embedding test_data_movement
#define GPU_CASE_add_rows test_data_movement
#define GPU_CASE_gather_rows test_data_movement
#define GPU_CASE_l2_normalize test_rows
#define GPU_CASE_add_layernorm test_add_layernorm
#define GPU_CASE_rel_bias test_generation
#define GPU_CASE_topk test_generation
#define GPU_CASE_copy_rows test_generation

int main(void)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.rng = 20240601;
    int ndev = prism_cuda_device_count();
    if (ndev == 0) {
        gh_skip(&c.h, "test_cuda_parity: no CUDA device (or driver) found; the CUDA backend "
                      "cannot run here");
        return gh_finish(&c.h);
    }
    const char *q = getenv("PRISM_TEST_QUIET"); /* 1: print failures only */
    c.h.quiet_ok = q && *q == '1';
    c.ref = prism_cpu_backend_create(1, true);
    const int dts[N_GPU] = {PRISM_DT_F32, PRISM_DT_BF16, PRISM_DT_F16};
    const char *names[N_GPU] = {"cuda-f32", "cuda-bf16", "cuda-f16"};
    for (int i = 0; i < N_GPU; i++) {
        prism_error err = {0};
        prism_backend *be = prism_cuda_backend_create(0, dts[i], 0, &err);
        if (GH_CHECK(&c.h, be != NULL, "create %s backend on device 0%s%s", names[i], be ? "" : ": ",
                     be ? "" : err.msg)) {
            c.gpu[c.n_gpu] = be;
            c.gname[c.n_gpu] = names[i];
            c.gdt[c.n_gpu] = dts[i];
            c.n_gpu++;
        }
    }
    if (c.n_gpu > 0)
        printf("device: %s (compute capability %d)\n", prism_cuda_device_name(c.gpu[0]),
               prism_cuda_compute_capability(c.gpu[0]));
    if (c.n_gpu > 0) {
        struct {
            const char *name;
            void (*fn)(ctx *);
        } groups[] = {
            {"memory", test_memory},         {"weight_import", test_weight_import},
            {"matmul", test_matmul},         {"matmul_residual", test_matmul_residual},
            {"row ops", test_rows},
            {"elementwise", test_elementwise}, {"add_layernorm", test_add_layernorm},
            {"attention", test_attention},
            {"data movement", test_data_movement}, {"generation ops", test_generation},
            {"sequences", test_sequences}, {"gated sequences", test_sequences_gated},
            {"errors", test_errors},
        };
        const size_t n_groups = sizeof groups / sizeof groups[0];
        const struct {
            const char *op;
            void (*fn)(ctx *);
        } op_cases[] = {
#define PRISM_OP(name, params, args) {#name, GPU_CASE_##name},
#include "backend_ops.def"
        };
        for (size_t i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++) {
            size_t j = 0;
            while (j < n_groups && groups[j].fn != op_cases[i].fn)
                j++;
            GH_CHECK(&c.h, j < n_groups, "op %s has a parity group in the run (%s)",
                     op_cases[i].op, j < n_groups ? groups[j].name : "none");
        }
        for (size_t i = 0; i < n_groups; i++) {
            const int failed0 = c.h.failed, passed0 = c.h.passed;
            const double t0 = prism_now();
            groups[i].fn(&c);
            printf("== %-14s %4d passed, %d failed (%.1f s)\n", groups[i].name,
                   c.h.passed - passed0, c.h.failed - failed0, prism_now() - t0);
            fflush(stdout);
        }
    }
    for (int i = 0; i < c.n_gpu; i++)
        prism_backend_destroy(c.gpu[i]);
    prism_backend_destroy(c.ref);
    return gh_finish(&c.h);
}
