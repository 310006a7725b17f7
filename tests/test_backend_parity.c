/* test_backend_parity.c - every CPU fast-path op against its reference loop.
 *
 * Random inputs (odd shapes included) go through the reference table
 * (prism_cpu_backend_create(1, true)) and the fast table with 2 and 3
 * threads. Each output buffer has guard values after it that must survive,
 * NaN/Inf positions must agree, and each op has a tolerance with its reason:
 *
 *   matmul       (also with BF16 matrix weights, against the reference on
 *                the same BF16-rounded weights)
 *                |Δ| ≤ 2·K·u·Σ|x·w| + 1e-30, u = 2^-24: the classic bound for a
 *                float dot product of length K (the reference accumulates in
 *                double, so this bounds the fast path's rounding alone);
 *                activations add a few ulp (below).
 *   matmul_residual  |Δ| ≤ 2·(K+2)·u·(Σ|x·w| + |b| + |r|) (1.2x margin): the
 *                fast path rounds r + b, the K-term sum and their sum, each
 *                within u of its own magnitude; the reference rounds once.
 *                Its paths without beta = 1 (oneDNN's 5-64 rows, BF16
 *                matrices, BF16 and int8 arithmetic): bitwise equal to
 *                (r + b) + the same backend's matmul, the order they use.
 *   activations  |Δ| ≤ 2e-6·|y| + 1e-12: the fast exp is within 2 ulp and
 *                gelu/silu compute x / (1 + e^(-2u)) (≤ 4 roundings, ~7 ulp);
 *                in the negative tail the float rounding of u (2^-24 relative)
 *                is amplified by |2u| ≤ 20 before the result drops below
 *                1e-12: 20·2^-24 + 7 ulp < 2e-6. Below 1e-12 (gelu(-7) and
 *                beyond) only an absolute bound is meaningful.
 *   layernorm,   |Δ| ≤ 2e-6·(|y| + 1): mean/variance in double on both sides;
 *   rmsnorm,     the remaining error is float rounding of (x-μ)·inv·γ + β
 *   l2_normalize (3-4 roundings) relative to the output and to β.
 *   softmax      |Δ| ≤ 1e-6: probabilities in [0,1], exp within 2 ulp, one
 *                float sum of ≤ 300 terms (≤ 300·u·1 < 2e-5 worst case, in
 *                practice ~1e-7; 1e-6 catches every real defect).
 *   attention    |Δ| ≤ 2e-5·max|v|: outputs are convex combinations of v rows;
 *                scores are float dot products of length d ≤ 80 times scale.
 *   add, mul, patchify, embedding, add_rows, gather_rows, rel_bias,
 *   copy_rows:   exact (the same single float operation or a copy).
 *   topk         indices exact (a comparison, no arithmetic); values exact
 *                without log_softmax; with it |Δ| ≤ 1e-5: the reference sums
 *                exp in double, the fast path uses the 2-ulp float exp with a
 *                double sum, so log Σ differs by ~1e-7 relative; the result
 *                x − lse (|x|, |lse| ≤ ~30 here) by a few float ulps of 30.
 *
 * Also memory_info, which the /metrics gauge reads: what alloc and weight
 * copies add comes back when they are freed.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "safetensors.h"
#include "test_util.h"

#define GUARD 16
static const float guard_value = 1234.5f;

typedef struct rng {
    uint64_t s;
} rng;

static float rnd(rng *r) /* uniform in [-1, 1) */
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (float)(r->s >> 40) / (float)(1 << 23) - 1.0f;
}

/* A buffer with GUARD guard values after n floats. */
static float *buf_new(size_t n)
{
    float *b = malloc((n + GUARD) * sizeof *b);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n + GUARD; i++)
        b[i] = guard_value;
    return b;
}

static float *buf_rand(size_t n, rng *r, float scale)
{
    float *b = buf_new(n);
    for (size_t i = 0; i < n; i++)
        b[i] = rnd(r) * scale;
    return b;
}

static float *buf_copy(const float *src, size_t n)
{
    float *b = buf_new(n);
    memcpy(b, src, n * sizeof *b);
    return b;
}

static void check_guard(const float *b, size_t n, const char *what)
{
    for (size_t i = n; i < n + GUARD; i++)
        ck_assert_msg(b[i] == guard_value, "%s: guard value %zu after the output overwritten",
                      what, i - n);
}

/* Compares element-wise: |f - r| ≤ atol[i] + rtol·|r|, NaN/Inf agreeing. */
static void compare(const float *fast, const float *ref, size_t n, double rtol,
                    const double *atol_each, double atol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double f = fast[i], r = ref[i];
        ck_assert_msg(isnan(f) == isnan(r), "%s[%zu]: NaN disagreement (fast %g, ref %g)", what,
                      i, f, r);
        if (isnan(r))
            continue;
        ck_assert_msg(isinf(f) == isinf(r) && (!isinf(r) || f == r),
                      "%s[%zu]: Inf disagreement (fast %g, ref %g)", what, i, f, r);
        if (isinf(r))
            continue;
        double tol = (atol_each ? atol_each[i] : atol) + rtol * fabs(r);
        ck_assert_msg(fabs(f - r) <= tol, "%s[%zu]: fast %.9g vs reference %.9g (|diff| %g > %g)",
                      what, i, f, r, fabs(f - r), tol);
    }
    check_guard(fast, n, what);
    check_guard(ref, n, what);
}

static prism_backend *ref_be, *fast2, *fast3;

static void setup(void)
{
    ref_be = prism_cpu_backend_create(1, true);
    fast2 = prism_cpu_backend_create(2, false);
    fast3 = prism_cpu_backend_create(3, false);
    ck_assert(ref_be && fast2 && fast3);
}

static void teardown(void)
{
    prism_backend_destroy(ref_be);
    prism_backend_destroy(fast2);
    prism_backend_destroy(fast3);
}

static prism_backend *fast_be(int i)
{
    return i % 2 ? fast3 : fast2;
}

/* matmul's absolute bound per output: float32 sums of K products, γ_K =
 * K·2⁻²⁴ of Σ|x_k·w_k| + |b| (1.2x margin; the activations have slope ≤
 * 1.13 (gelu) and add their own rounding). malloc'd [M, N]. */
static double *matmul_atol(const float *x, const float *w, const float *b, int M, int N, int K)
{
    double *atol = malloc((size_t)M * N * sizeof *atol);
    ck_assert_ptr_nonnull(atol);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = b ? fabs(b[n]) : 0;
            for (int k = 0; k < K; k++)
                s += fabs((double)x[(size_t)m * K + k] * w[(size_t)n * K + k]);
            atol[(size_t)m * N + n] = 1.2 * 2.0 * K * FLT_EPSILON / 2 * s + 1e-30;
        }
    return atol;
}

/* ---- matmul ---------------------------------------------------------------- */

static const int mm_shapes[][3] = {
    {1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {64, 96, 128}, {130, 70, 300}, {1, 257, 31}, {5, 1, 513},
    {3, 4, 0}, /* the empty sum: y = act(bias) */
};
static const prism_act acts[] = {PRISM_ACT_NONE, PRISM_ACT_GELU_TANH, PRISM_ACT_GELU_ERF,
                                 PRISM_ACT_RELU, PRISM_ACT_SILU};
#define N_ACTS (int)(sizeof acts / sizeof acts[0])
#define N_MM (int)(sizeof mm_shapes / sizeof mm_shapes[0])

START_TEST(test_matmul)
{
    const int *sh = mm_shapes[_i / (2 * N_ACTS)];
    const prism_act act = acts[_i % N_ACTS];
    const bool with_bias = (_i / N_ACTS) % 2;
    const int M = sh[0], N = sh[1], K = sh[2];
    rng r = {0x1234567u + (uint64_t)_i};
    float *x = buf_rand((size_t)M * K, &r, 2.0f), *w = buf_rand((size_t)N * K, &r, 1.0f);
    float *b = with_bias ? buf_rand((size_t)N, &r, 1.0f) : NULL;
    float *yr = buf_new((size_t)M * N), *yf = buf_new((size_t)M * N);
    ck_assert_int_eq(ref_be->ops->matmul(ref_be, yr, x, w, b, M, N, K, act), 0);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(fb->ops->matmul(fb, yf, x, w, b, M, N, K, act), 0);
    double *atol = matmul_atol(x, w, b, M, N, K);
    char what[64];
    snprintf(what, sizeof what, "matmul %dx%dx%d %s%s", M, N, K, prism_act_name(act),
             b ? "+bias" : "");
    compare(yf, yr, (size_t)M * N, 4e-7, atol, 0, what);
    free(atol), free(x), free(w), free(b), free(yr), free(yf);
}
END_TEST

/* ---- matmul_residual ------------------------------------------------------- */

/* matmul_residual's bound per output: the product's terms plus |b| and
 * |r|, and two more roundings (r + b, then the final add). */
static double *residual_atol(const float *x, const float *w, const float *b, const float *r, int M,
                             int N, int K)
{
    double *atol = malloc((size_t)M * N * sizeof *atol);
    ck_assert_ptr_nonnull(atol);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = (b ? fabs(b[n]) : 0) + fabs(r[(size_t)m * N + n]);
            for (int k = 0; k < K; k++)
                s += fabs((double)x[(size_t)m * K + k] * w[(size_t)n * K + k]);
            atol[(size_t)m * N + n] = 1.2 * 2.0 * (K + 2) * FLT_EPSILON / 2 * s + 1e-30;
        }
    return atol;
}

/* Every shape of matmul's (dot products, oneDNN's rows, sgemm with beta =
 * 1), with and without bias, y separate from r and y = r (in place); r
 * holds a NaN and an Inf, which must come through. */
START_TEST(test_matmul_residual)
{
    const int *sh = mm_shapes[_i / 4];
    const bool with_bias = _i % 2, in_place = (_i / 2) % 2;
    const int M = sh[0], N = sh[1], K = sh[2];
    const size_t n = (size_t)M * N;
    rng rg = {0xabcdefu + (uint64_t)_i};
    float *x = buf_rand((size_t)M * K, &rg, 2.0f), *w = buf_rand((size_t)N * K, &rg, 1.0f);
    float *b = with_bias ? buf_rand((size_t)N, &rg, 1.0f) : NULL;
    float *r = buf_rand(n, &rg, 3.0f);
    if (n >= 3) {
        r[1] = NAN;
        r[n - 1] = -INFINITY;
    }
    float *yr = buf_new(n), *yf = in_place ? buf_copy(r, n) : buf_new(n);
    ck_assert_int_eq(ref_be->ops->matmul_residual(ref_be, yr, x, w, b, r, M, N, K), 0);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(fb->ops->matmul_residual(fb, yf, x, w, b, in_place ? yf : r, M, N, K), 0);
    double *atol = residual_atol(x, w, b, r, M, N, K);
    char what[80];
    snprintf(what, sizeof what, "matmul_residual %dx%dx%d%s%s", M, N, K, b ? " +bias" : "",
             in_place ? " in place" : "");
    compare(yf, yr, n, 4e-7, atol, 0, what);
    /* the reference is matmul then add, rounded once */
    float *ym = buf_new(n);
    ck_assert_int_eq(ref_be->ops->matmul(ref_be, ym, x, w, b, M, N, K, PRISM_ACT_NONE), 0);
    for (size_t i = 0; i < n; i++)
        ym[i] += r[i];
    snprintf(what, sizeof what, "matmul_residual reference %dx%dx%d", M, N, K);
    compare(yr, ym, n, 4e-7, atol, 0, what);
    free(atol), free(x), free(w), free(b), free(r), free(yr), free(yf), free(ym);
}
END_TEST

/* The paths without beta = 1 keep working and compute (r + b) + t, t the
 * backend's own matmul without bias, bitwise: float32 at 5-64 rows
 * (oneDNN's, where the build has it), BF16 matrices, BF16 and int8
 * arithmetic (where this CPU and build have them), in place and not. */
START_TEST(test_matmul_residual_modes)
{
    static const int shapes[][3] = {{3, 33, 65}, {17, 70, 300}, {64, 96, 128}, {197, 96, 300}};
    const unsigned mode = (unsigned)_i / 4, sh = (unsigned)_i % 4; /* mode: 0 float32, 1 BF16
                                                 * matrices, 2 BF16 arithmetic, 3 int8 */
    const int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
    if (mode == 0 && (M <= 4 || M > 64))
        return; /* float32's beta = 1 paths: test_matmul_residual */
    prism_backend *bb = prism_cpu_backend_create(_i % 2 ? 3 : 2, false);
    char why[200];
    int rc = 0;
    if (mode == 1)
        rc = prism_cpu_backend_set_bf16_matrices(bb, true);
    else if (mode == 2)
        rc = prism_cpu_backend_set_bf16_compute(bb, true, why, sizeof why);
    else if (mode == 3)
        rc = prism_cpu_backend_set_int8_compute(bb, true, why, sizeof why);
    if (rc) { /* test_matmul_bf16_compute / _int8_compute say why */
        prism_backend_destroy(bb);
        return;
    }
    const size_t n = (size_t)M * N;
    rng rg = {555u + (uint64_t)_i};
    float *x = buf_rand((size_t)M * K, &rg, 2.0f), *w = buf_rand((size_t)N * K, &rg, 1.0f);
    float *b = buf_rand((size_t)N, &rg, 1.0f), *r = buf_rand(n, &rg, 3.0f);
    bool owned = false;
    const void *wi = bb->ops->weight_import(bb, w, PRISM_DT_F32, (size_t)N * K, true, &owned);
    ck_assert_ptr_nonnull(wi);
    float *t = buf_new(n), *want = buf_new(n), *ys = buf_new(n), *yi = buf_new(n);
    ck_assert_int_eq(bb->ops->matmul(bb, t, x, wi, NULL, M, N, K, PRISM_ACT_NONE), 0);
    for (size_t i = 0; i < n; i++) {
        want[i] = (r[i] + b[i % N]) + t[i];
        yi[i] = r[i];
    }
    ck_assert_int_eq(bb->ops->matmul_residual(bb, ys, x, wi, b, r, M, N, K), 0);
    ck_assert_int_eq(bb->ops->matmul_residual(bb, yi, x, wi, b, yi, M, N, K), 0);
    ck_assert_msg(memcmp(ys, want, n * sizeof *ys) == 0,
                  "matmul_residual mode %u %dx%dx%d: not (r + b) + matmul", mode, M, N, K);
    ck_assert_msg(memcmp(yi, want, n * sizeof *yi) == 0,
                  "matmul_residual mode %u %dx%dx%d in place: not (r + b) + matmul", mode, M, N,
                  K);
    check_guard(ys, n, "matmul_residual modes");
    check_guard(yi, n, "matmul_residual modes in place");
    if (owned)
        bb->ops->free(bb, (void *)wi);
    free(x), free(w), free(b), free(r), free(t), free(want), free(ys), free(yi);
    prism_backend_destroy(bb);
}
END_TEST

/* BF16 matrix weights (prism_cpu_backend_set_bf16_matrices): the fast path
 * against the reference on the same weights rounded to BF16 (round to
 * nearest even), with matmul's bound. M covers the dot-product path
 * (≤ 16 rows) and the widened-block sgemm path. */
static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

START_TEST(test_matmul_bf16)
{
    static const int shapes[][3] = {{1, 33, 65}, {3, 300, 129}, {16, 70, 300}, {17, 257, 31},
                                    {40, 600, 64}};
    const int M = shapes[_i][0], N = shapes[_i][1], K = shapes[_i][2];
    prism_backend *bb = prism_cpu_backend_create(_i % 2 ? 3 : 2, false);
    ck_assert_int_eq(prism_cpu_backend_set_bf16_matrices(bb, true), 0);
    ck_assert_int_eq(prism_cpu_backend_set_bf16_matrices(ref_be, true), -1);
    rng r = {4242u + (uint64_t)_i};
    float *x = buf_rand((size_t)M * K, &r, 2.0f), *w = buf_rand((size_t)N * K, &r, 1.0f);
    float *b = buf_rand((size_t)N, &r, 1.0f);
    float *wr = buf_new((size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++)
        wr[i] = round_bf16(w[i]);
    bool owned = false;
    const void *wb = bb->ops->weight_import(bb, w, PRISM_DT_F32, (size_t)N * K, true, &owned);
    ck_assert(wb && owned);
    float *yr = buf_new((size_t)M * N), *yf = buf_new((size_t)M * N);
    ck_assert_int_eq(ref_be->ops->matmul(ref_be, yr, x, wr, b, M, N, K, PRISM_ACT_GELU_TANH), 0);
    ck_assert_int_eq(bb->ops->matmul(bb, yf, x, wb, b, M, N, K, PRISM_ACT_GELU_TANH), 0);
    double *atol = matmul_atol(x, wr, b, M, N, K);
    char what[64];
    snprintf(what, sizeof what, "matmul bf16 %dx%dx%d", M, N, K);
    compare(yf, yr, (size_t)M * N, 4e-7, atol, 0, what);
    /* the rounding is real: float32 weights give a different result */
    ck_assert_int_eq(ref_be->ops->matmul(ref_be, yr, x, w, b, M, N, K, PRISM_ACT_GELU_TANH), 0);
    ck_assert(test_max_abs_diff(yf, yr, (size_t)M * N) > 1e-4);
    bb->ops->free(bb, (void *)wb);
    free(atol), free(x), free(w), free(b), free(wr), free(yr), free(yf);
    prism_backend_destroy(bb);
}
END_TEST

/* BF16 compute (prism_cpu_backend_set_bf16_compute): x and w rounded to
 * BF16, each product exact in float32 (8 + 8 significant bits), sums in
 * float32: against the reference (double sums) on the rounded operands the
 * only error is the float32 summation, ≤ γ_K·Σ|x_k·w_k| with γ_K ≈ K·2⁻²⁴
 * (1.2× margin), then bias and activation as in matmul's bound (oneDNN
 * applies them inside its kernel from 2 rows on, relu excepted). M covers the
 * one-row path (AVX512-BF16 dot products: odd N, K tails of the 32-wide
 * vectors, one thread and several) and oneDNN's matmul; a row's result must
 * not depend on how many rows share the call (the first row, and the first
 * three, again alone).
 * Where this CPU or build cannot (no AVX512-BF16, no oneDNN) the call must
 * fail with the reason, and the test says it skipped the arithmetic. */
START_TEST(test_matmul_bf16_compute)
{
    static const int shapes[][3] = {{1, 33, 65},    {16, 70, 300},  {17, 257, 31},
                                    {64, 600, 768}, {197, 96, 3072}, {1, 301, 200}};
    const int M = shapes[_i][0], N = shapes[_i][1], K = shapes[_i][2];
    prism_backend *bb = prism_cpu_backend_create(_i % 2 ? 3 : 2, false);
    char why[200] = "";
    if (prism_cpu_backend_set_bf16_compute(bb, true, why, sizeof why)) {
        ck_assert_msg(why[0] != '\0', "a refusal gives its reason");
#if defined(__x86_64__)
        ck_assert_msg(!__builtin_cpu_supports("avx512bf16") || strstr(why, "oneDNN"),
                      "this CPU has AVX512-BF16, yet: %s", why);
#endif
        printf("test_matmul_bf16_compute: SKIPPED the arithmetic checks: %s\n", why);
        prism_backend_destroy(bb);
        return;
    }
    char rwhy[200];
    ck_assert_int_eq(prism_cpu_backend_set_bf16_compute(ref_be, true, rwhy, sizeof rwhy), -1);
    rng r = {777u + (uint64_t)_i};
    /* x scaled so that y is O(1), where the activations differ from each
     * other and from the identity */
    float *x = buf_rand((size_t)M * K, &r, 4.0f / sqrtf((float)K));
    float *w = buf_rand((size_t)N * K, &r, 1.0f);
    float *b = _i % 3 == 2 ? NULL : buf_rand((size_t)N, &r, 1.0f);
    float *xr = buf_new((size_t)M * K), *wr = buf_new((size_t)N * K);
    for (size_t i = 0; i < (size_t)M * K; i++)
        xr[i] = round_bf16(x[i]);
    for (size_t i = 0; i < (size_t)N * K; i++)
        wr[i] = round_bf16(w[i]);
    bool owned = false;
    const void *wb = bb->ops->weight_import(bb, w, PRISM_DT_F32, (size_t)N * K, true, &owned);
    ck_assert(wb && owned);
    double *atol = matmul_atol(xr, wr, b, M, N, K);
    for (int ai = 0; ai < N_ACTS; ai++) { /* every activation, fused or not */
        const prism_act act = acts[ai];
        float *yr = buf_new((size_t)M * N), *yf = buf_new((size_t)M * N);
        ck_assert_int_eq(ref_be->ops->matmul(ref_be, yr, xr, wr, b, M, N, K, act), 0);
        ck_assert_int_eq(bb->ops->matmul(bb, yf, x, wb, b, M, N, K, act), 0);
        char what[80];
        snprintf(what, sizeof what, "matmul bf16 compute %dx%dx%d %s%s", M, N, K,
                 prism_act_name(act), b ? " + bias" : "");
        compare(yf, yr, (size_t)M * N, 4e-7, atol, 0, what);
        /* the rounding of x is real: BF16 weights with float32 x differ */
        float *yw = buf_new((size_t)M * N);
        ck_assert_int_eq(ref_be->ops->matmul(ref_be, yw, x, wr, b, M, N, K, act), 0);
        ck_assert(test_max_abs_diff(yf, yw, (size_t)M * N) > 1e-4);
        /* row-count independence: the first row, then the first min(M, 3),
         * alone */
        for (int m1 = 1; m1 <= (M < 3 ? M : 3); m1 += 2) {
            float *y1 = buf_new((size_t)m1 * N);
            ck_assert_int_eq(bb->ops->matmul(bb, y1, x, wb, b, m1, N, K, act), 0);
            snprintf(what, sizeof what, "bf16 compute %s, %d rows alone vs in %d",
                     prism_act_name(act), m1, M);
            float *yf1 = buf_copy(yf, (size_t)m1 * N);
            compare(y1, yf1, (size_t)m1 * N, 4e-7, atol, 0, what);
            free(yf1), free(y1);
        }
        free(yr), free(yf), free(yw);
    }
    bb->ops->free(bb, (void *)wb);
    free(atol), free(x), free(w), free(b), free(xr), free(wr);
    prism_backend_destroy(bb);
}
END_TEST

/* int8 compute (prism_cpu_backend_set_int8_compute): each row of x
 * quantized asymmetrically to [0, 255] (its range with 0 included over 255
 * steps, zero point round(-lo/s)), each output channel of w symmetrically
 * to [-127, 127] (scale max|·|/127), with the same float operations as the
 * backend (v·(1/s), rounded half away from zero). The integer products are
 * summed exactly, so against the reference on the dequantized operands
 * ((q - z)·s, in double) the only errors are the final float products of
 * the exact sum: a few 2⁻²⁴ relative (4x margin), plus bias and GELU as in
 * matmul's bound. A row's result must not depend on its batch at all
 * (bitwise). The quantization is real: float32 operands give a different
 * result. Where this CPU or build cannot (no AVX512-VNNI, no oneDNN) the
 * call must fail with the reason. */
static int round_away(float v)
{
    return (int)(v + (v >= 0 ? 0.5f : -0.5f));
}

START_TEST(test_matmul_int8_compute)
{
    static const int shapes[][3] = {{1, 33, 65}, {16, 70, 300}, {17, 257, 31}, {64, 600, 768},
                                    {197, 96, 3072}};
    const int M = shapes[_i][0], N = shapes[_i][1], K = shapes[_i][2];
    prism_backend *bb = prism_cpu_backend_create(_i % 2 ? 3 : 2, false);
    char why[200] = "";
    if (prism_cpu_backend_set_int8_compute(bb, true, why, sizeof why)) {
        ck_assert_msg(why[0] != '\0', "a refusal gives its reason");
#if defined(__x86_64__)
        ck_assert_msg(!__builtin_cpu_supports("avx512vnni") || strstr(why, "oneDNN"),
                      "this CPU has AVX512-VNNI, yet: %s", why);
#endif
        printf("test_matmul_int8_compute: SKIPPED the arithmetic checks: %s\n", why);
        prism_backend_destroy(bb);
        return;
    }
    rng r = {999u + (uint64_t)_i};
    float *x = buf_rand((size_t)M * K, &r, 2.0f), *w = buf_rand((size_t)N * K, &r, 1.0f);
    float *b = buf_rand((size_t)N, &r, 1.0f);
    float *xd = buf_new((size_t)M * K), *wd = buf_new((size_t)N * K);
    for (int n = 0; n < N; n++) { /* weights: symmetric per channel */
        float mx = 0;
        for (int k = 0; k < K; k++)
            mx = fmaxf(mx, fabsf(w[(size_t)n * K + k]));
        const float sc = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / sc;
        for (int k = 0; k < K; k++)
            wd[(size_t)n * K + k] = (float)round_away(w[(size_t)n * K + k] * inv) * sc;
    }
    for (int m = 0; m < M; m++) { /* activations: asymmetric per row */
        float lo = 0, hi = 0;
        for (int k = 0; k < K; k++) {
            lo = fminf(lo, x[(size_t)m * K + k]);
            hi = fmaxf(hi, x[(size_t)m * K + k]);
        }
        const float sc = hi > lo ? (hi - lo) / 255.0f : 1.0f, inv = 1.0f / sc;
        const int z = (int)(-lo * inv + 0.5f);
        for (int k = 0; k < K; k++) {
            int q = round_away(x[(size_t)m * K + k] * inv) + z;
            q = q < 0 ? 0 : q > 255 ? 255 : q;
            xd[(size_t)m * K + k] = (float)((double)(q - z) * sc);
        }
    }
    bool owned = false;
    const void *wi = bb->ops->weight_import(bb, w, PRISM_DT_F32, (size_t)N * K, true, &owned);
    ck_assert_ptr_nonnull(wi);
    float *yr = buf_new((size_t)M * N), *yf = buf_new((size_t)M * N);
    ck_assert_int_eq(ref_be->ops->matmul(ref_be, yr, xd, wd, b, M, N, K, PRISM_ACT_GELU_TANH), 0);
    ck_assert_int_eq(bb->ops->matmul(bb, yf, x, wi, b, M, N, K, PRISM_ACT_GELU_TANH), 0);
    /* the reference's own float32 sums (its matmul bound), plus the final
     * float products of the exact integer sum */
    double *atol = matmul_atol(xd, wd, b, M, N, K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double dot = 0;
            for (int k = 0; k < K; k++)
                dot += (double)xd[(size_t)m * K + k] * wd[(size_t)n * K + k];
            atol[(size_t)m * N + n] += 4.0 * FLT_EPSILON / 2 * fabs(dot);
        }
    char what[64];
    snprintf(what, sizeof what, "matmul int8 compute %dx%dx%d", M, N, K);
    compare(yf, yr, (size_t)M * N, 4e-7, atol, 0, what);
    float *yw = buf_new((size_t)M * N);
    ck_assert_int_eq(ref_be->ops->matmul(ref_be, yw, x, w, b, M, N, K, PRISM_ACT_GELU_TANH), 0);
    ck_assert(test_max_abs_diff(yf, yw, (size_t)M * N) > 1e-3);
    const int m1 = M < 3 ? M : 3;
    float *y1 = buf_new((size_t)m1 * N);
    ck_assert_int_eq(bb->ops->matmul(bb, y1, x, wi, b, m1, N, K, PRISM_ACT_GELU_TANH), 0);
    ck_assert_msg(memcmp(y1, yf, (size_t)m1 * N * sizeof *y1) == 0,
                  "int8: %d rows alone differ from the same rows among %d", m1, M);
    if (owned)
        bb->ops->free(bb, (void *)wi);
    free(atol), free(x), free(w), free(b), free(xd), free(wd), free(yr), free(yf), free(yw);
    free(y1);
    prism_backend_destroy(bb);
}
END_TEST

/* ---- elementwise and activations -------------------------------------------- */

START_TEST(test_activate)
{
    const prism_act act = acts[_i % N_ACTS];
    const size_t n = _i < N_ACTS ? 1 : 100003; /* one element, then enough for threads */
    rng r = {99u + (uint64_t)_i};
    float *x = buf_rand(n, &r, 12.0f);
    if (n > 8) { /* edge values: zero, large magnitudes, non-finite */
        float edge[] = {0.0f, -0.0f, 88.0f, -88.0f, 1e-30f, -1e-30f, 30.0f, -30.0f,
                        INFINITY, -INFINITY, NAN};
        memcpy(x, edge, sizeof edge);
    }
    float *yr = buf_copy(x, n), *yf = buf_copy(x, n);
    ck_assert_int_eq(ref_be->ops->activate(ref_be, yr, n, act), 0);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(fb->ops->activate(fb, yf, n, act), 0);
    char what[64];
    snprintf(what, sizeof what, "activate %s n=%zu", prism_act_name(act), n);
    compare(yf, yr, n, 2e-6, NULL, 1e-12, what);
    free(x), free(yr), free(yf);
}
END_TEST

START_TEST(test_add_mul)
{
    const size_t n = _i ? 70001 : 3;
    rng r = {7u + (uint64_t)_i};
    float *a = buf_rand(n, &r, 5.0f), *b = buf_rand(n, &r, 5.0f);
    a[0] = NAN;
    b[1] = INFINITY;
    float *yr = buf_new(n), *yf = buf_new(n);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(ref_be->ops->add(ref_be, yr, a, b, n), 0);
    ck_assert_int_eq(fb->ops->add(fb, yf, a, b, n), 0);
    compare(yf, yr, n, 0, NULL, 0, "add");
    ck_assert_int_eq(ref_be->ops->mul(ref_be, yr, a, b, n), 0);
    ck_assert_int_eq(fb->ops->mul(fb, yf, a, b, n), 0);
    compare(yf, yr, n, 0, NULL, 0, "mul");
    /* in place: y aliases a */
    float *ar = buf_copy(a, n), *af = buf_copy(a, n);
    ck_assert_int_eq(ref_be->ops->add(ref_be, ar, ar, b, n), 0);
    ck_assert_int_eq(fb->ops->add(fb, af, af, b, n), 0);
    compare(af, ar, n, 0, NULL, 0, "add in place");
    free(a), free(b), free(yr), free(yf), free(ar), free(af);
}
END_TEST

/* ---- normalisation ------------------------------------------------------------ */

static const int norm_shapes[][2] = {{1, 1}, {3, 7}, {5, 768}, {197, 33}, {64, 1152}, {2, 4099}};
#define N_NORM (int)(sizeof norm_shapes / sizeof norm_shapes[0])

START_TEST(test_norms)
{
    const int rows = norm_shapes[_i][0], cols = norm_shapes[_i][1];
    const size_t n = (size_t)rows * cols;
    rng r = {31u + (uint64_t)_i};
    float *x = buf_rand(n, &r, 3.0f), *g = buf_rand((size_t)cols, &r, 1.5f);
    float *b = buf_rand((size_t)cols, &r, 0.5f);
    for (size_t i = 0; i < n; i++)
        x[i] += 2.0f; /* a non-zero mean */
    float *yr = buf_new(n), *yf = buf_new(n);
    double *atol = malloc(n * sizeof *atol);
    prism_backend *fb = fast_be(_i);

    ck_assert_int_eq(ref_be->ops->layernorm(ref_be, yr, x, g, b, rows, cols, 1e-6f), 0);
    ck_assert_int_eq(fb->ops->layernorm(fb, yf, x, g, b, rows, cols, 1e-6f), 0);
    for (size_t i = 0; i < n; i++)
        atol[i] = 2e-6 * (fabs(g[i % cols]) + fabs(b[i % cols]) + 1);
    compare(yf, yr, n, 2e-6, atol, 0, "layernorm");

    ck_assert_int_eq(ref_be->ops->layernorm(ref_be, yr, x, g, NULL, rows, cols, 1e-5f), 0);
    ck_assert_int_eq(fb->ops->layernorm(fb, yf, x, g, NULL, rows, cols, 1e-5f), 0);
    compare(yf, yr, n, 2e-6, atol, 0, "layernorm without beta");

    ck_assert_int_eq(ref_be->ops->rmsnorm(ref_be, yr, x, g, rows, cols, 1e-6f), 0);
    ck_assert_int_eq(fb->ops->rmsnorm(fb, yf, x, g, rows, cols, 1e-6f), 0);
    compare(yf, yr, n, 2e-6, atol, 0, "rmsnorm");

    /* add_layernorm: x += h exactly as add, then the norm; y aliasing h */
    {
        float *h = buf_rand(n, &r, 1.0f);
        float *xa = buf_copy(x, n), *xb = buf_copy(x, n), *ya = buf_copy(h, n), *yb = buf_copy(h, n);
        ck_assert_ptr_nonnull(ref_be->ops->add_layernorm);
        ck_assert_ptr_nonnull(fb->ops->add_layernorm);
        ck_assert_int_eq(ref_be->ops->add_layernorm(ref_be, xa, ya, ya, g, b, rows, cols, 1e-6f), 0);
        ck_assert_int_eq(fb->ops->add_layernorm(fb, xb, yb, yb, g, b, rows, cols, 1e-6f), 0);
        for (size_t i = 0; i < n; i++) {
            ck_assert(xa[i] == x[i] + h[i]);
            ck_assert(xb[i] == x[i] + h[i]);
        }
        ck_assert_int_eq(ref_be->ops->layernorm(ref_be, yr, xa, g, b, rows, cols, 1e-6f), 0);
        compare(ya, yr, n, 0, NULL, 0, "add_layernorm (reference) = add then layernorm");
        compare(yb, yr, n, 2e-6, atol, 0, "add_layernorm");
        free(h), free(xa), free(xb), free(ya), free(yb);
    }

    float *xr = buf_copy(x, n), *xf = buf_copy(x, n);
    memset(xr, 0, (size_t)cols * sizeof *xr); /* a zero row stays zero */
    memset(xf, 0, (size_t)cols * sizeof *xf);
    ck_assert_int_eq(ref_be->ops->l2_normalize(ref_be, xr, rows, cols), 0);
    ck_assert_int_eq(fb->ops->l2_normalize(fb, xf, rows, cols), 0);
    compare(xf, xr, n, 2e-6, NULL, 1e-7, "l2_normalize");
    for (int c = 0; c < cols; c++)
        ck_assert(xf[c] == 0.0f);

    /* NaN in a row poisons that row on both paths */
    x[0] = NAN;
    ck_assert_int_eq(ref_be->ops->layernorm(ref_be, yr, x, g, b, rows, cols, 1e-6f), 0);
    ck_assert_int_eq(fb->ops->layernorm(fb, yf, x, g, b, rows, cols, 1e-6f), 0);
    compare(yf, yr, n, 2e-6, atol, 0, "layernorm with NaN");

    free(x), free(g), free(b), free(yr), free(yf), free(atol), free(xr), free(xf);
}
END_TEST

START_TEST(test_softmax)
{
    const int rows = _i ? 300 : 1, cols = _i ? 197 : 1;
    const size_t n = (size_t)rows * cols;
    rng r = {5u + (uint64_t)_i};
    float *x = buf_rand(n, &r, 20.0f);
    if (_i) {
        x[3] = -INFINITY; /* a masked key */
        for (int c = 0; c < cols; c++)
            x[(size_t)cols + c] = -INFINITY; /* an all-masked row → zeros */
    }
    float *yr = buf_copy(x, n), *yf = buf_copy(x, n);
    ck_assert_int_eq(ref_be->ops->softmax(ref_be, yr, rows, cols), 0);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(fb->ops->softmax(fb, yf, rows, cols), 0);
    compare(yf, yr, n, 0, NULL, 1e-6, "softmax");
    if (_i)
        for (int c = 0; c < cols; c++)
            ck_assert(yf[(size_t)cols + c] == 0.0f);
    free(x), free(yr), free(yf);
}
END_TEST

/* ---- attention ------------------------------------------------------------------ */

typedef struct attn_case {
    int B, H, Tq, Tk, d;
    bool q_broadcast, bias, mask, causal;
    float softcap; /* Gemma 2's logit soft-capping (small, so that it bites) */
} attn_case;

static const attn_case attn_cases[] = {
    {1, 1, 1, 1, 1, false, false, false, false, 0},
    {2, 3, 5, 5, 7, false, false, false, false, 0},   /* odd everything */
    {2, 12, 49, 49, 64, false, false, false, false, 0}, /* SigLIP-like */
    {3, 4, 1, 37, 16, true, false, false, false, 0},   /* pooling probe, broadcast q */
    {2, 2, 9, 9, 8, false, true, true, false, 0},      /* T5 encoder: bias + padding mask */
    {2, 2, 6, 6, 8, false, true, false, true, 0},      /* T5 decoder prefill: causal */
    {2, 3, 1, 11, 20, false, true, true, true, 0},     /* decode step: Tq=1 against a cache */
    {1, 2, 4, 300, 80, false, false, true, false, 0},  /* long keys, d=80 */
    {2, 2, 9, 9, 8, false, false, true, false, 1.5f},  /* Gemma 2 prefill: soft-capped */
    {2, 3, 1, 11, 20, false, false, true, false, 2.0f}, /* ... and a decode step */
    {3, 2, 4, 13, 16, false, false, false, false, 0.5f}, /* ... few rows (no sgemm) */
};
#define N_ATTN (int)(sizeof attn_cases / sizeof attn_cases[0])

START_TEST(test_attention)
{
    const attn_case *c = &attn_cases[_i];
    const int E = c->H * c->d, ld = E + 3; /* a row stride wider than the heads */
    rng r = {77u + (uint64_t)_i};
    prism_attn_desc a = {
        .B = c->B, .H = c->H, .Tq = c->Tq, .Tk = c->Tk, .d = c->d,
        .q_stride = ld, .k_stride = ld, .v_stride = ld, .o_stride = E,
        .q_bstride = c->q_broadcast ? 0 : (int64_t)c->Tq * ld,
        .k_bstride = (int64_t)c->Tk * ld, .v_bstride = (int64_t)c->Tk * ld,
        .o_bstride = (int64_t)c->Tq * E,
        .scale = c->causal ? 1.0f : 1.0f / sqrtf((float)c->d),
        .causal = c->causal,
        .softcap = c->softcap,
    };
    float *q = buf_rand((size_t)c->B * c->Tq * ld, &r, 2.0f);
    float *k = buf_rand((size_t)c->B * c->Tk * ld, &r, 2.0f);
    float *v = buf_rand((size_t)c->B * c->Tk * ld, &r, 3.0f);
    float *bias = c->bias ? buf_rand((size_t)c->H * c->Tq * c->Tk, &r, 2.0f) : NULL;
    float *mask = NULL;
    if (c->mask) {
        mask = buf_new((size_t)c->B * c->Tk);
        for (int i = 0; i < c->B * c->Tk; i++)
            mask[i] = (i % c->Tk) >= c->Tk - 1 - (i / c->Tk) ? -INFINITY : 0.0f;
    }
    a.bias = bias;
    a.key_mask = mask;
    const size_t n = (size_t)c->B * c->Tq * E;
    float *yr = buf_new(n), *yf = buf_new(n);
    ck_assert_int_eq(ref_be->ops->attention(ref_be, yr, q, k, v, &a), 0);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(fb->ops->attention(fb, yf, q, k, v, &a), 0);
    char what[96];
    snprintf(what, sizeof what, "attention B%d H%d Tq%d Tk%d d%d", c->B, c->H, c->Tq, c->Tk, c->d);
    compare(yf, yr, n, 0, NULL, 2e-5 * 3.0, what);
    if (c->softcap > 0) { /* the cap changes the answer: both paths apply it */
        prism_attn_desc plain = a;
        plain.softcap = 0;
        float *yp = buf_new(n);
        ck_assert_int_eq(ref_be->ops->attention(ref_be, yp, q, k, v, &plain), 0);
        double most = 0;
        for (size_t i = 0; i < n; i++)
            most = fmax(most, fabs((double)yp[i] - yr[i]));
        ck_assert_msg(most > 1e-2, "%s: soft-capping changed nothing (%g)", what, most);
        free(yp);
    }
    free(q), free(k), free(v), free(bias), free(mask), free(yr), free(yf);
}
END_TEST

/* ---- data movement -------------------------------------------------------------- */

START_TEST(test_data_movement)
{
    rng r = {11u};
    prism_backend *fb = fast_be(_i);
    /* patchify: B=2, C=3, S=14, P=4 (S not a multiple of P: the border is dropped, as
     * the stride-P conv does) */
    const int B = 2, C = 3, S = 14, P = 4, G = S / P, N = G * G, row = C * P * P;
    float *img = buf_rand((size_t)B * C * S * S, &r, 1.0f);
    float *pr = buf_new((size_t)B * N * row), *pf = buf_new((size_t)B * N * row);
    ck_assert_int_eq(ref_be->ops->patchify(ref_be, pr, img, B, C, S, P), 0);
    ck_assert_int_eq(fb->ops->patchify(fb, pf, img, B, C, S, P), 0);
    compare(pf, pr, (size_t)B * N * row, 0, NULL, 0, "patchify");
    /* definition check, independent of both: patch t=(gy,gx), element (c,py,px) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < N; t++)
            for (int c = 0; c < C; c++)
                for (int py = 0; py < P; py++)
                    for (int px = 0; px < P; px++) {
                        int gy = t / G, gx = t % G;
                        float want = img[(((size_t)b * C + c) * S + gy * P + py) * S + gx * P + px];
                        ck_assert(pf[((size_t)b * N + t) * row + (c * P + py) * P + px] == want);
                    }

    const int V = 50, D = 9, n = 13;
    float *table = buf_rand((size_t)V * D, &r, 1.0f);
    int32_t ids[13] = {0, 49, 3, 3, 17, 1, 2, 48, 0, 5, 6, 7, 8};
    float *er = buf_new((size_t)n * D), *ef = buf_new((size_t)n * D);
    ck_assert_int_eq(ref_be->ops->embedding(ref_be, er, table, ids, n, D), 0);
    ck_assert_int_eq(fb->ops->embedding(fb, ef, table, ids, n, D), 0);
    compare(ef, er, (size_t)n * D, 0, NULL, 0, "embedding");
    for (int i = 0; i < n; i++)
        ck_assert(memcmp(ef + (size_t)i * D, table + (size_t)ids[i] * D, D * sizeof(float)) == 0);

    float *yr = buf_copy(er, (size_t)n * D), *yf = buf_copy(er, (size_t)n * D);
    ck_assert_int_eq(ref_be->ops->add_rows(ref_be, yr, table, n, 4, D), 0);
    ck_assert_int_eq(fb->ops->add_rows(fb, yf, table, n, 4, D), 0);
    compare(yf, yr, (size_t)n * D, 0, NULL, 0, "add_rows");
    ck_assert(yf[(size_t)5 * D + 2] == er[(size_t)5 * D + 2] + table[(size_t)1 * D + 2]);

    float *gr = buf_new((size_t)3 * D), *gf = buf_new((size_t)3 * D);
    ck_assert_int_eq(ref_be->ops->gather_rows(ref_be, gr, er, 3, 4, 3, D), 0);
    ck_assert_int_eq(fb->ops->gather_rows(fb, gf, er, 3, 4, 3, D), 0);
    compare(gf, gr, (size_t)3 * D, 0, NULL, 0, "gather_rows");
    ck_assert(memcmp(gf + D, er + (size_t)7 * D, D * sizeof(float)) == 0);

    free(img), free(pr), free(pf), free(table), free(er), free(ef), free(yr), free(yf);
    free(gr), free(gf);
}
END_TEST

/* ---- generation ops --------------------------------------------------------- */

START_TEST(test_rel_bias)
{
    /* encoder-like (bidirectional, Tq = Tk) and a decode step against a cache */
    const int H = _i ? 3 : 4, Tq = _i ? 1 : 9, Tk = _i ? 17 : 9, q_offset = _i ? 16 : 0;
    const int nb = 8, span = 40, rel0 = 20; /* table covers rel in [-20, 19] */
    rng r = {55u + (uint64_t)_i};
    float *w = buf_rand((size_t)nb * H, &r, 1.0f);
    int32_t buckets[40];
    for (int i = 0; i < span; i++)
        buckets[i] = (i * 7 + 3) % nb;
    const size_t n = (size_t)H * Tq * Tk;
    float *yr = buf_new(n), *yf = buf_new(n);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(ref_be->ops->rel_bias(ref_be, yr, w, buckets, rel0, H, Tq, Tk, q_offset), 0);
    ck_assert_int_eq(fb->ops->rel_bias(fb, yf, w, buckets, rel0, H, Tq, Tk, q_offset), 0);
    compare(yf, yr, n, 0, NULL, 0, "rel_bias");
    /* the definition, independently: out[h, i, j] = w[bucket(j - i - q_offset), h] */
    for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++)
            for (int j = 0; j < Tk; j++)
                ck_assert(yf[((size_t)h * Tq + i) * Tk + j] ==
                          w[(size_t)buckets[rel0 + j - i - q_offset] * H + h]);
    free(w), free(yr), free(yf);
}
END_TEST

typedef struct topk_case {
    int rows, cols, k;
    bool log_softmax, special;
} topk_case;

static const topk_case topk_cases[] = {
    {1, 1, 1, false, false},   {1, 1, 1, true, false},    {3, 7, 1, false, false},
    {4, 1000, 6, true, false}, {8, 32128, 1, false, false}, {5, 32128, 8, true, false},
    {3, 50, 50, true, false},  {4, 64, 5, true, true}, /* ties, NaN, -inf, all -inf */
};
#define N_TOPK (int)(sizeof topk_cases / sizeof topk_cases[0])

START_TEST(test_topk)
{
    const topk_case *c = &topk_cases[_i];
    const size_t n = (size_t)c->rows * c->cols, nk = (size_t)c->rows * c->k;
    rng r = {123u + (uint64_t)_i};
    float *x = buf_rand(n, &r, 15.0f);
    if (c->special) {
        for (int j = 0; j < c->cols; j += 3)
            x[j] = 100.0f; /* row 0: many equal maxima: lower column first */
        x[(size_t)c->cols + 5] = NAN; /* row 1: a NaN ranks last, poisons log_softmax */
        for (int j = 0; j < c->cols; j++)
            x[(size_t)2 * c->cols + j] = j % 2 ? -INFINITY : x[(size_t)2 * c->cols + j];
        for (int j = 0; j < c->cols; j++)
            x[(size_t)3 * c->cols + j] = -INFINITY; /* row 3: all -inf */
    }
    int32_t *ir = malloc(nk * sizeof *ir), *i_f = malloc(nk * sizeof *i_f);
    float *vr = buf_new(nk), *vf = buf_new(nk);
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(ref_be->ops->topk(ref_be, ir, vr, x, c->rows, c->cols, c->k, c->log_softmax), 0);
    ck_assert_int_eq(fb->ops->topk(fb, i_f, vf, x, c->rows, c->cols, c->k, c->log_softmax), 0);
    for (size_t i = 0; i < nk; i++)
        ck_assert_msg(ir[i] == i_f[i], "topk %dx%d k%d: index %zu: fast %d, reference %d",
                      c->rows, c->cols, c->k, i, i_f[i], ir[i]);
    char what[64];
    snprintf(what, sizeof what, "topk %dx%d k%d%s", c->rows, c->cols, c->k,
             c->log_softmax ? " log_softmax" : "");
    compare(vf, vr, nk, 0, NULL, c->log_softmax ? 1e-5 : 0, what);
    /* independent checks: descending values, and the log-probabilities of
     * the whole row (k = cols) sum to 1 */
    for (int row = 0; row < c->rows; row++)
        for (int i = 1; i < c->k; i++) {
            float a = x[(size_t)row * c->cols + i_f[(size_t)row * c->k + i - 1]];
            float b = x[(size_t)row * c->cols + i_f[(size_t)row * c->k + i]];
            ck_assert(isnan(b) || a > b || (a == b && i_f[(size_t)row * c->k + i - 1] <
                                                          i_f[(size_t)row * c->k + i]));
        }
    if (c->special) {
        for (int i = 0; i < c->k; i++)
            ck_assert_int_eq(i_f[i], 3 * i); /* the ties at 100, in column order */
        ck_assert(isnan(vf[c->k])); /* the NaN row */
    }
    if (c->k == c->cols && c->log_softmax) {
        double p = 0;
        for (int i = 0; i < c->k; i++)
            p += exp(vf[i]);
        ck_assert_msg(fabs(p - 1) < 1e-5, "log-softmax mass %g", p);
    }
    /* argmax without values */
    if (c->k == 1) {
        ck_assert_int_eq(fb->ops->topk(fb, i_f, NULL, x, c->rows, c->cols, 1, false), 0);
        for (int row = 0; row < c->rows; row++)
            ck_assert_int_eq(i_f[row], ir[row]);
    }
    free(x), free(ir), free(i_f), free(vr), free(vf);
}
END_TEST

START_TEST(test_copy_rows)
{
    rng r = {9u + (uint64_t)_i};
    const int n = _i ? 300 : 1, cols = _i ? 384 : 5;
    const int64_t ss = cols + 7, ds = 2 * (int64_t)cols + 1;
    float *src = buf_rand((size_t)n * ss, &r, 1.0f);
    const size_t nd = (size_t)n * ds;
    float *dr = buf_new(nd), *df = buf_new(nd);
    for (size_t i = 0; i < nd; i++)
        dr[i] = df[i] = -7.0f; /* untouched columns must stay */
    prism_backend *fb = fast_be(_i);
    ck_assert_int_eq(ref_be->ops->copy_rows(ref_be, dr, ds, src, ss, n, cols), 0);
    ck_assert_int_eq(fb->ops->copy_rows(fb, df, ds, src, ss, n, cols), 0);
    compare(df, dr, nd, 0, NULL, 0, "copy_rows");
    for (int i = 0; i < n; i++) {
        ck_assert(memcmp(df + i * ds, src + i * ss, (size_t)cols * sizeof(float)) == 0);
        ck_assert(df[i * ds + cols] == -7.0f);
    }
    free(src), free(dr), free(df);
}
END_TEST

/* ---- every op has a case --------------------------------------------------------- */

/* The test that holds each op of backend_ops.def to the reference. An op
 * without a line here does not compile (PARITY_CASE_<op> undeclared), and
 * main refuses to run when the test named is not registered. */
#define PARITY_CASE_matmul test_matmul
#define PARITY_CASE_matmul_residual test_matmul_residual
/* memory_info's `held`: alloc(n) adds n rounded up to the allocator's block
 * (≤ 64 bytes of alignment plus malloc's own ≤ 64: 4 KiB is a loose upper
 * bound that a missing or doubled count still breaks), a weight the backend
 * converts adds its copy, a weight used in place adds nothing, and freeing
 * returns held to where it was. The CPU has no device memory of its own. */
START_TEST(test_memory_info)
{
    prism_backend *be = _i == 0 ? ref_be : _i == 1 ? fast2 : prism_cpu_backend_create(2, false);
    ck_assert_ptr_nonnull(be);
    if (_i == 2)
        ck_assert_int_eq(prism_cpu_backend_set_bf16_matrices(be, true), 0);
    ck_assert_ptr_nonnull(be->ops->memory_info);
    prism_backend_memory m0, m1, m2, m3;
    ck_assert_int_eq(be->ops->memory_info(be, &m0), 0);
    ck_assert(m0.device_total == 0 && m0.device_free == 0);
    const size_t n = 1u << 20;
    void *p = be->ops->alloc(be, n);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(be->ops->memory_info(be, &m1), 0);
    ck_assert_msg(m1.held >= m0.held + n && m1.held <= m0.held + n + 4096,
                  "alloc of %zu: held %zu -> %zu", n, m0.held, m1.held);
    /* float32 used in place, except as a BF16 matrix (2 bytes a value) */
    const size_t nw = 4096;
    float *src = malloc(nw * sizeof(float));
    ck_assert_ptr_nonnull(src);
    for (size_t i = 0; i < nw; i++)
        src[i] = (float)i;
    bool owned = false;
    const void *w = be->ops->weight_import(be, src, PRISM_DT_F32, nw, true, &owned);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(be->ops->memory_info(be, &m2), 0);
    if (_i == 2) {
        ck_assert(owned);
        ck_assert_msg(m2.held >= m1.held + nw * 2 && m2.held <= m1.held + nw * 2 + 4096,
                      "BF16 copy of %zu values: held %zu -> %zu", nw, m1.held, m2.held);
    } else {
        ck_assert(!owned);
        ck_assert_uint_eq(m2.held, m1.held);
    }
    if (owned)
        be->ops->free(be, (void *)w);
    be->ops->free(be, p);
    ck_assert_int_eq(be->ops->memory_info(be, &m3), 0);
    ck_assert_uint_eq(m3.held, m0.held);
    free(src);
    if (_i == 2)
        prism_backend_destroy(be);
}
END_TEST

#define PARITY_CASE_layernorm test_norms
#define PARITY_CASE_rmsnorm test_norms
#define PARITY_CASE_add test_add_mul
#define PARITY_CASE_mul test_add_mul
#define PARITY_CASE_activate test_activate
#define PARITY_CASE_softmax test_softmax
#define PARITY_CASE_attention test_attention
#define PARITY_CASE_patchify test_data_movement
#define PARITY_CASE_embedding test_data_movement
#define PARITY_CASE_add_rows test_data_movement
#define PARITY_CASE_gather_rows test_data_movement
#define PARITY_CASE_l2_normalize test_norms
#define PARITY_CASE_add_layernorm test_norms
#define PARITY_CASE_rel_bias test_rel_bias
#define PARITY_CASE_topk test_topk
#define PARITY_CASE_copy_rows test_copy_rows

int main(void)
{
    const struct {
        const TTest *test;
        int loops;
    } tests[] = {
        {test_matmul, N_MM * 2 * N_ACTS},
        {test_matmul_residual, N_MM * 4},
        {test_matmul_residual_modes, 16},
        {test_matmul_bf16, 5},
        {test_matmul_bf16_compute, 6},
        {test_matmul_int8_compute, 5},
        {test_activate, 2 * N_ACTS},
        {test_add_mul, 2},
        {test_norms, N_NORM},
        {test_softmax, 2},
        {test_attention, N_ATTN},
        {test_data_movement, 2},
        {test_rel_bias, 2},
        {test_topk, N_TOPK},
        {test_copy_rows, 2},
        {test_memory_info, 3},
    };
    const size_t n_tests = sizeof tests / sizeof tests[0];
    const struct {
        const char *op;
        const TTest *test;
    } op_cases[] = {
#define PRISM_OP(name, params, args) {#name, PARITY_CASE_##name},
#include "backend_ops.def"
    };
    for (size_t i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++) {
        size_t j = 0;
        while (j < n_tests && tests[j].test != op_cases[i].test)
            j++;
        if (j == n_tests) {
            fprintf(stderr, "op %s: its parity case %s is not registered\n", op_cases[i].op,
                    op_cases[i].test->name);
            return EXIT_FAILURE;
        }
    }

    Suite *s = suite_create("backend_parity");
    TCase *tc = tcase_create("cpu");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    for (size_t i = 0; i < n_tests; i++)
        tcase_add_loop_test(tc, tests[i].test, 0, tests[i].loops);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
