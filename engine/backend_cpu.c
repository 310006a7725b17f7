/* backend_cpu.c - the CPU backend's fast path and its construction.
 *
 * matmul is OpenBLAS sgemm (dot products for ≤ 4 rows, oneDNN's f32 matmul
 * for 5-64 rows where the build has it) followed by a fused bias +
 * activation pass; matmul_residual is sgemm with beta = 1 onto r + bias
 * (or the product plus one pass adding r + bias, on the paths without a
 * beta). The other ops are OpenMP loops written so GCC vectorises them
 * (exp through a range-reduced polynomial instead of libm). Numerics
 * differ from the reference loops (backend_cpu_ref.c) only by float
 * rounding; tests/test_backend_parity.c holds the bounds.
 *
 * Threads: the backend's n_threads is used for every OpenMP region and for
 * OpenBLAS (openblas_set_num_threads, which is process-wide: the one piece
 * of global state, set when a backend is created).
 *
 * Without OpenBLAS (PRISM_BLAS=OFF, for machines that have only a compiler,
 * such as a bare GPU host) sgemm falls back to a simple cache-blocked
 * OpenMP kernel: correct, several times slower.
 *
 * BF16 compute (prism_cpu_backend_set_bf16_compute, `--dtype bf16` where
 * the CPU has AVX512-BF16): matmul rounds x to BF16 and multiplies it with
 * BF16 weights in oneDNN's BF16 matmul (products exact in float32, sums
 * float32), with matmul's bias and activation (relu excepted) applied
 * inside oneDNN's kernel; one row takes AVX512-BF16 dot products on the
 * same roundings and prism's bias/activation pass, so a row's result does
 * not depend on how many rows share the call beyond the order of float32
 * sums, the flushing of denormals and the two activations' last bits.
 */
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef PRISM_HAVE_BLAS
#include <cblas.h>
#endif
#ifdef PRISM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef __x86_64__
#include <immintrin.h>
#endif
#include <stdio.h>

#include "backend_cpu_impl.h"
#include "safetensors.h"

/* Below this many elements a loop stays on one thread. */
#define PAR_MIN 32768

/* ---- shared pieces ---------------------------------------------------- */

/* The CPU backend's private state (be->impl). */
typedef struct cpu_state {
    bool bf16_matrices; /* matrix weights are BF16 (fast path only) */
    bool bf16_compute;  /* ... and matmul inputs too: BF16 products, float32 sums */
    const char *err;    /* why the last failing op failed (all are out of memory) */
#ifdef PRISM_HAVE_DNNL
    dnnl_engine_t dnnl_eng;
    dnnl_stream_t dnnl_stream;
#endif
    void *xb;           /* bf16_compute: a matmul's x rounded to BF16 (int8: quantized) */
    size_t xb_cap;      /* its capacity, in bytes */
    bool int8_compute;  /* matmuls in int8: x per row, w per output channel */
    bool dnnl_failed;   /* oneDNN could not start: float32 stays on sgemm */
    struct qweight *qw; /* int8_compute: the weights quantized at their first use */
    int n_qw, cap_qw;
    float *xscale;      /* int8_compute: x's per-row scales */
    size_t xscale_cap;
    float *prod;        /* matmul_residual: x·wᵀ of the paths without beta = 1 */
    size_t prod_cap;    /* its capacity, in floats */
    atomic_size_t held; /* usable bytes of the blocks cpu_alloc handed out and
                         * cpu_free has not taken back (memory_info) */
} cpu_state;

/* Rounds half away from zero (vectorises, unlike lrintf). */
static inline int round_half_away(float v)
{
    return (int)(v + (v >= 0 ? 0.5f : -0.5f));
}

/* One matrix quantized for int8_compute: q = round(w / scale[n]) in
 * [-127, 127] per output row n, scale[n] = max_k |w[n, k]| / 127. */
typedef struct qweight {
    const void *w; /* the imported float32 matrix it was made from */
    int N, K;
    int8_t *q;     /* [N, K] */
    float *scale;  /* [N] */
    int32_t *colsum; /* [N]: Σ_k q[n, k], for the activations' zero points */
} qweight;

void cpu_destroy(prism_backend *be)
{
    cpu_state *st = be->impl;
    if (st) {
#ifdef PRISM_HAVE_DNNL
        if (st->dnnl_stream)
            dnnl_stream_destroy(st->dnnl_stream);
        if (st->dnnl_eng)
            dnnl_engine_destroy(st->dnnl_eng);
#endif
        free(st->xb);
        for (int i = 0; i < st->n_qw; i++)
            free(st->qw[i].q), free(st->qw[i].scale), free(st->qw[i].colsum);
        free(st->qw);
        free(st->xscale);
        free(st->prod);
    }
    free(be->impl);
    free(be);
}

static bool bf16_mode(const prism_backend *be)
{
    return be->impl && ((const cpu_state *)be->impl)->bf16_matrices;
}

int prism_cpu_backend_set_bf16_matrices(prism_backend *be, bool on)
{
    if (be->ops != &cpu_fast_ops || !be->impl)
        return -1;
    ((cpu_state *)be->impl)->bf16_matrices = on;
    return 0;
}

int prism_cpu_bf16_compute_available(char *why, size_t why_len)
{
#ifdef PRISM_HAVE_DNNL
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
        (unsigned)dnnl_cpu_isa_avx512_core_bf16)
        return 0;
    snprintf(why, why_len, "this CPU has no BF16 dot-product instructions (AVX512-BF16 or "
             "AMX), where BF16 matmuls would run slower than float32");
#else
    snprintf(why, why_len, "this build has no oneDNN (libdnnl-dev) for BF16 matmuls");
#endif
    return -1;
}

int prism_cpu_int8_compute_available(char *why, size_t why_len)
{
#ifdef PRISM_HAVE_DNNL
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_vnni) ==
        (unsigned)dnnl_cpu_isa_avx512_core_vnni)
        return 0;
    snprintf(why, why_len, "this CPU has no int8 dot-product instructions (AVX512-VNNI or "
             "AMX)");
#else
    snprintf(why, why_len, "this build has no oneDNN (libdnnl-dev) for int8 matmuls");
#endif
    return -1;
}

static int dnnl_setup(cpu_state *st, char *why, size_t why_len)
{
#ifdef PRISM_HAVE_DNNL
    if (!st->dnnl_eng && dnnl_engine_create(&st->dnnl_eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(why, why_len, "oneDNN: cannot create a CPU engine");
        return -1;
    }
    if (!st->dnnl_stream &&
        dnnl_stream_create(&st->dnnl_stream, st->dnnl_eng, dnnl_stream_default_flags) !=
            dnnl_success) {
        snprintf(why, why_len, "oneDNN: cannot create a stream");
        return -1;
    }
    return 0;
#else
    (void)st;
    snprintf(why, why_len, "this build has no oneDNN");
    return -1;
#endif
}

int prism_cpu_backend_set_int8_compute(prism_backend *be, bool on, char *why, size_t why_len)
{
    if (be->ops != &cpu_fast_ops || !be->impl) {
        snprintf(why, why_len, "int8 compute needs the fast CPU path");
        return -1;
    }
    cpu_state *st = be->impl;
    if (on && (prism_cpu_int8_compute_available(why, why_len) || dnnl_setup(st, why, why_len)))
        return -1;
    st->int8_compute = on;
    return 0;
}

int prism_cpu_backend_set_bf16_compute(prism_backend *be, bool on, char *why, size_t why_len)
{
    if (be->ops != &cpu_fast_ops || !be->impl) {
        snprintf(why, why_len, "BF16 compute needs the fast CPU path");
        return -1;
    }
    cpu_state *st = be->impl;
    if (!on) {
        st->bf16_compute = false;
        return 0;
    }
    if (prism_cpu_bf16_compute_available(why, why_len) || dnnl_setup(st, why, why_len))
        return -1;
    st->bf16_matrices = st->bf16_compute = true;
    return 0;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays a (quiet) NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

/* Blocks are counted at malloc_usable_size, the same figure on the way in
 * and out, so that `held` returns to where it was. */
void *cpu_alloc(prism_backend *be, size_t bytes)
{
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    cpu_state *st = be->impl;
    if (p && st)
        atomic_fetch_add_explicit(&st->held, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

void cpu_free(prism_backend *be, void *p)
{
    cpu_state *st = be->impl;
    if (!p)
        return;
    if (st)
        atomic_fetch_sub_explicit(&st->held, malloc_usable_size(p), memory_order_relaxed);
    for (int i = 0; st && i < st->n_qw; i++) /* int8: its quantized copy goes too */
        if (st->qw[i].w == p) {
            free(st->qw[i].q), free(st->qw[i].scale), free(st->qw[i].colsum);
            st->qw[i--] = st->qw[--st->n_qw];
        }
    free(p);
}

int cpu_copy(prism_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

int cpu_memory_info(prism_backend *be, prism_backend_memory *m)
{
    const cpu_state *st = be->impl;
    *m = (prism_backend_memory){
        .held = st ? atomic_load_explicit(&st->held, memory_order_relaxed) : 0};
    return 0;
}

int cpu_synchronize(prism_backend *be)
{
    (void)be;
    return 0;
}

const void *cpu_weight_import(prism_backend *be, const void *src, int dt, size_t n,
                              bool matrix, bool *owned)
{
    if (matrix && bf16_mode(be)) {
        if (dt == PRISM_DT_BF16 && ((uintptr_t)src % sizeof(uint16_t)) == 0) {
            *owned = false; /* BF16 in the file: use the mapping itself, no copy */
            return src;
        }
        uint16_t *dst = cpu_alloc(be, n * sizeof(uint16_t));
        if (!dst)
            return NULL;
        if (dt == PRISM_DT_BF16) {
            memcpy(dst, src, n * sizeof(uint16_t));
        } else {
            const size_t chunk = 4096;
            float buf[4096];
            for (size_t i = 0; i < n; i += chunk) {
                size_t len = n - i < chunk ? n - i : chunk;
                const size_t es = dt == PRISM_DT_F32 ? 4 : 2;
                if (st_to_f32(buf, (const uint8_t *)src + i * es, (prism_dtype)dt, len)) {
                    cpu_free(be, dst);
                    return NULL;
                }
                for (size_t j = 0; j < len; j++)
                    dst[i + j] = f32_to_bf16(buf[j]);
            }
        }
        *owned = true;
        return dst;
    }
    /* int8: matrices are copied, so that each one's quantized copy (keyed by
     * this address) is dropped with it in cpu_free */
    const bool copy_matrix = matrix && be->impl && ((cpu_state *)be->impl)->int8_compute;
    if (dt == PRISM_DT_F32 && ((uintptr_t)src % sizeof(float)) == 0 && !copy_matrix) {
        *owned = false; /* use the mapping itself: no copy */
        return src;
    }
    float *dst = cpu_alloc(be, n * sizeof(float));
    if (!dst)
        return NULL;
    if (st_to_f32(dst, src, (prism_dtype)dt, n)) {
        cpu_free(be, dst);
        return NULL;
    }
    *owned = true;
    return dst;
}

int cpu_patchify(prism_backend *be, float *out, const float *img, int B, int C, int S, int P)
{
    int G = S / P, N = G * G, row = C * P * P;
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && B * N > 64)
    for (int bt = 0; bt < B * N; bt++) {
        int b = bt / N, t = bt % N, gy = t / G, gx = t % G;
        float *o = out + (size_t)bt * row;
        for (int c = 0; c < C; c++)
            for (int py = 0; py < P; py++) {
                const float *src = img + (((size_t)b * C + c) * S + (size_t)gy * P + py) * S +
                                   (size_t)gx * P;
                memcpy(o + ((size_t)c * P + py) * P, src, (size_t)P * sizeof(float));
            }
    }
    return 0;
}

int cpu_embedding(prism_backend *be, float *out, const float *table, const int32_t *ids, int n,
                  int dim)
{
    (void)be;
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, table + (size_t)ids[i] * dim, (size_t)dim * sizeof(float));
    return 0;
}

int cpu_add_rows(prism_backend *be, float *y, const float *rows, int n_rows, int period, int cols)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)n_rows * cols > PAR_MIN)
    for (int r = 0; r < n_rows; r++) {
        float *yr = y + (size_t)r * cols;
        const float *pr = rows + (size_t)(r % period) * cols;
        for (int c = 0; c < cols; c++)
            yr[c] += pr[c];
    }
    return 0;
}

int cpu_gather_rows(prism_backend *be, float *out, const float *x, int n, int64_t stride,
                    int64_t offset, int cols)
{
    (void)be;
    for (int i = 0; i < n; i++)
        memmove(out + (size_t)i * cols, x + ((size_t)i * stride + offset) * cols,
                (size_t)cols * sizeof(float));
    return 0;
}

/* ---- vectorisable math -------------------------------------------------- */

/* exp(x) for float: x = n·ln2 + r with |r| ≤ ln2/2, exp(r) by its degree-7
 * Taylor polynomial (truncation error < 6e-9 relative), 2^n by exponent
 * bits. Within 2 ulp of expf over [-87, 88.7]; below -87 it returns
 * exp(-87) ≈ 1.6e-38 (negligible beside any term that matters here), above
 * 88.72 +inf as expf does, and NaN stays NaN. */
static inline float exp_approx(float x)
{
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    xc = x != x ? 0.0f : xc; /* NaN: computed on 0, replaced at the end */
    const float shifter = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504088896341f + shifter) - shifter;
    float r = xc - n * 0.693359375f;  /* ln2 split in two so n·hi is exact */
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t e = (uint32_t)((int32_t)n + 127) << 23; /* n in [-126, 127] */
    float scale;
    memcpy(&scale, &e, sizeof scale);
    float y = p * scale;
    y = x > 88.72f ? INFINITY : y;
    return x != x ? x : y;
}

/* erfc(x) for float, vectorisable: Chebyshev's rational fit
 *   erfc(z) = t·exp(-z² + P(t)), t = 1/(1 + z/2), z = |x| (P of degree 9,
 *   fractional error < 1.2e-7 for every z ≥ 0; erfc(-z) = 2 - erfc(z)),
 * with exp(-z² + P) taken as exp(-h²)·exp((h-z)(h+z) + P), h = z cut to
 * 12 significant bits so h² is exact: rounding -z² + P to float would cost
 * up to ulp(z²)/2 relative (1e-6 at z = 4); the second argument is small
 * (|P| < 1.3, |(h-z)(h+z)| < 2^-11·z²), so its rounding costs an ulp of ~1.
 * Each exp is exp_approx (2 ulp): erfc within ~6 ulp + 1.2e-7 relative.
 * Past z = 10 erfc(z) < 3e-45 is 0 in float (also for z = inf, where the
 * split would give inf - inf). */
static inline float erfc_approx(float x)
{
    const float z = fabsf(x);
    const float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    uint32_t bits;
    memcpy(&bits, &z, sizeof bits);
    bits &= 0xfffff000u;
    float h;
    memcpy(&h, &bits, sizeof h);
    float r = t * exp_approx(-h * h) * exp_approx((h - z) * (h + z) + p);
    r = z > 10.0f ? 0.0f : r;
    return x < 0 ? 2.0f - r : r;
}

static inline float act_fast(float x, prism_act act)
{
    switch (act) {
    case PRISM_ACT_GELU_TANH: {
        /* 0.5·x·(1 + tanh(u)) == x·sigmoid(2u): one exp, no cancellation. */
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return x / (1.0f + exp_approx(-2.0f * u));
    }
    case PRISM_ACT_GELU_ERF:
        /* 1 + erf(z) == erfc(-z), without the cancellation in the negative tail */
        return 0.5f * x * erfc_approx(-x * 0.7071067811865476f);
    case PRISM_ACT_RELU:
        return x > 0 ? x : 0;
    case PRISM_ACT_SILU:
        return x / (1.0f + exp_approx(-x));
    case PRISM_ACT_NONE:
    default:
        return x;
    }
}

/* Applies bias and activation to one row; the switch is hoisted so each
 * case is a straight vectorisable loop. The activations ask for 16 lanes:
 * GCC's default 8 (256-bit vectors on AVX-512 CPUs) halves their rate,
 * and these loops are bound by arithmetic, not memory (GELU with erf on
 * 18.9M values, 2 threads: 27 ms at 8 lanes, 13 ms at 16); per value the
 * operations are the same, so the results are too. */
static void bias_act_row(float *y, const float *bias, int n, prism_act act)
{
    if (bias) {
#pragma omp simd
        for (int i = 0; i < n; i++)
            y[i] += bias[i];
    }
    switch (act) {
    case PRISM_ACT_NONE:
        break;
    case PRISM_ACT_GELU_TANH:
#pragma omp simd simdlen(16)
        for (int i = 0; i < n; i++)
            y[i] = act_fast(y[i], PRISM_ACT_GELU_TANH);
        break;
    case PRISM_ACT_SILU:
#pragma omp simd simdlen(16)
        for (int i = 0; i < n; i++)
            y[i] = act_fast(y[i], PRISM_ACT_SILU);
        break;
    case PRISM_ACT_GELU_ERF:
#pragma omp simd simdlen(16)
        for (int i = 0; i < n; i++)
            y[i] = act_fast(y[i], PRISM_ACT_GELU_ERF);
        break;
    case PRISM_ACT_RELU:
#pragma omp simd
        for (int i = 0; i < n; i++)
            y[i] = y[i] > 0 ? y[i] : 0;
        break;
    default:
        for (int i = 0; i < n; i++)
            y[i] = act_fast(y[i], act);
        break;
    }
}

/* ---- fast ops ------------------------------------------------------------ */

#ifdef __AVX512F__
/* y[N] (+)= x[K]·w[N,K]ᵀ in float32, one row: sgemm_nt's dot products
 * with two rows of w per load of x and a software prefetch 2 KiB ahead
 * of each (as gemv_bf16_dp). */
static void gemv_f32(int n_threads, const float *x, const float *w, float *y, int N, int K,
                     bool acc)
{
    const int KV = K / 16 * 16, ahead = 512; /* floats */
    const __mmask16 tail = (__mmask16)((1u << (K - KV)) - 1);
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1 && (size_t)N * K > PAR_MIN)
    for (int n = 0; n < N; n += 2) {
        const float *w0 = w + (size_t)n * K;
        const float *w1 = n + 1 < N ? w0 + K : w0; /* an odd N's last row: done twice */
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (int k = 0; k < KV; k += 16) {
            const __m512 xv = _mm512_loadu_ps(x + k);
            /* a prefetch past the end of w is harmless: it never faults */
            _mm_prefetch((const char *)(w0 + k + ahead), _MM_HINT_T0);
            _mm_prefetch((const char *)(w1 + k + ahead), _MM_HINT_T0);
            a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w0 + k), a0);
            a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w1 + k), a1);
        }
        if (tail) {
            const __m512 xv = _mm512_maskz_loadu_ps(tail, x + KV);
            a0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w0 + KV), a0);
            a1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w1 + KV), a1);
        }
        const float s0 = _mm512_reduce_add_ps(a0), s1 = _mm512_reduce_add_ps(a1);
        y[n] = acc ? y[n] + s0 : s0;
        if (n + 1 < N)
            y[n + 1] = acc ? y[n + 1] + s1 : s1;
    }
}
#endif

/* y[M,N] = x[M,K]·w[N,K]ᵀ, row-major, as cblas_sgemm(RowMajor, NoTrans, Trans);
 * with `acc`, y[M,N] += x·wᵀ (beta = 1): each output is y + (the sum), one
 * rounding after the sum (the built-in fallback adds its K blocks one by
 * one). */
static void sgemm_nt(int n_threads, const float *x, const float *w, float *y, int M, int N, int K,
                     bool acc)
{
#ifdef PRISM_HAVE_BLAS
#ifdef __AVX512F__
    if (M == 1) {
        gemv_f32(n_threads, x, w, y, N, K, acc);
        return;
    }
#endif
    if (M <= 4) {
        /* A few rows (decode steps), where streaming w is the cost: dot
         * products, each row of w read once for up to 4 rows of x, threads
         * over N. Against OpenBLAS 0.3.21 on [32128, 768] weights: 5.4 vs
         * 17.6 ms at M = 1 (sgemv: 7.5), 8.0 vs 22.7 ms at M = 4; from
         * M = 8 on sgemm is as fast or faster (this loop becomes bound by
         * its loads of x). */
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1 && (size_t)N * K > PAR_MIN)
        for (int n = 0; n < N; n++) {
            const float *wn = w + (size_t)n * K;
            int m = 0;
            for (; m + 4 <= M; m += 4) { /* 4 rows share each load of w */
                const float *x0 = x + (size_t)m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
                float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                for (int k = 0; k < K; k++) {
                    a0 += x0[k] * wn[k];
                    a1 += x1[k] * wn[k];
                    a2 += x2[k] * wn[k];
                    a3 += x3[k] * wn[k];
                }
                float *yn = y + (size_t)m * N + n;
                yn[0] = acc ? yn[0] + a0 : a0;
                yn[N] = acc ? yn[N] + a1 : a1;
                yn[2 * N] = acc ? yn[2 * N] + a2 : a2;
                yn[3 * N] = acc ? yn[3 * N] + a3 : a3;
            }
            for (; m < M; m++) {
                const float *xm = x + (size_t)m * K;
                float a = 0;
#pragma omp simd reduction(+ : a)
                for (int k = 0; k < K; k++)
                    a += xm[k] * wn[k];
                float *yn = y + (size_t)m * N + n;
                *yn = acc ? *yn + a : a;
            }
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K,
                acc ? 1.0f : 0.0f, y, N);
#else
    /* Fallback: 4 rows of x against one row of w at a time, K in blocks that
     * stay in L1/L2; dot products vectorise with omp simd. */
    const int KB = 512;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1 && M > 4)
    for (int m0 = 0; m0 < M; m0 += 4) {
        const int mb = M - m0 < 4 ? M - m0 : 4;
        for (int n = 0; n < N && !acc; n++)
            for (int i = 0; i < mb; i++)
                y[(size_t)(m0 + i) * N + n] = 0;
        for (int k0 = 0; k0 < K; k0 += KB) {
            const int kb = K - k0 < KB ? K - k0 : KB;
            for (int n = 0; n < N; n++) {
                const float *wn = w + (size_t)n * K + k0;
                for (int i = 0; i < mb; i++) {
                    const float *xm = x + (size_t)(m0 + i) * K + k0;
                    float a = 0;
#pragma omp simd reduction(+ : a)
                    for (int k = 0; k < kb; k++)
                        a += xm[k] * wn[k];
                    y[(size_t)(m0 + i) * N + n] += a;
                }
            }
        }
    }
#endif
}

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* y[M,N] = x[M,K]·w[N,K]ᵀ with BF16 w. Up to 16 rows (decode steps, where
 * reading w is the cost): dot products with w widened in registers,
 * threads over N. More rows:
 * blocks of w widened into float32 scratch, then sgemm into the block's
 * output columns. Either way the arithmetic is float32 on the same
 * BF16-rounded weights. */
static int matmul_bf16(prism_backend *be, float *y, const float *x, const uint16_t *w, int M,
                       int N, int K)
{
    int failed = 0;
    if (M <= 16) {
        /* one pass per x row: the BF16 row (K·2 bytes) stays in L1 after
         * the first, so w is streamed from memory once */
#pragma omp parallel for num_threads(be->n_threads) schedule(static) if (be->n_threads > 1 && (size_t)N * K > PAR_MIN)
        for (int n = 0; n < N; n++) {
            const uint16_t *wn = w + (size_t)n * K;
            int m = 0;
            for (; m + 4 <= M; m += 4) { /* 4 rows share each widened load of w */
                const float *x0 = x + (size_t)m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
                float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                for (int k = 0; k < K; k++) {
                    const float wk = bf16_to_f32(wn[k]);
                    a0 += x0[k] * wk;
                    a1 += x1[k] * wk;
                    a2 += x2[k] * wk;
                    a3 += x3[k] * wk;
                }
                y[(size_t)m * N + n] = a0;
                y[(size_t)(m + 1) * N + n] = a1;
                y[(size_t)(m + 2) * N + n] = a2;
                y[(size_t)(m + 3) * N + n] = a3;
            }
            for (; m < M; m++) {
                const float *xm = x + (size_t)m * K;
                float acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int k = 0; k < K; k++)
                    acc += xm[k] * bf16_to_f32(wn[k]);
                y[(size_t)m * N + n] = acc;
            }
        }
        return failed;
    }
    const int NB = 256;
    float *blk = malloc((size_t)NB * K * sizeof *blk);
    float *tmp = malloc((size_t)M * NB * sizeof *tmp);
    if (!blk || !tmp) {
        free(blk), free(tmp);
        ((cpu_state *)be->impl)->err = "matmul: out of memory for the BF16 weight block";
        return -1;
    }
    for (int n0 = 0; n0 < N; n0 += NB) {
        const int nb = N - n0 < NB ? N - n0 : NB;
        const uint16_t *wb = w + (size_t)n0 * K;
#pragma omp parallel for simd num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)nb * K > PAR_MIN)
        for (size_t i = 0; i < (size_t)nb * K; i++)
            blk[i] = bf16_to_f32(wb[i]);
        sgemm_nt(be->n_threads, x, blk, tmp, M, nb, K, false);
        for (int m = 0; m < M; m++)
            memcpy(y + (size_t)m * N + n0, tmp + (size_t)m * nb, (size_t)nb * sizeof *tmp);
    }
    free(blk), free(tmp);
    return 0;
}

/* bf16_compute: the state's scratch for x rounded to BF16, `bytes` long. */
static void *x_scratch(prism_backend *be, size_t bytes)
{
    cpu_state *st = be->impl;
    if (bytes > st->xb_cap) {
        void *b = realloc(st->xb, bytes);
        if (!b) {
            st->err = "matmul: out of memory for the BF16 activations";
            return NULL;
        }
        st->xb = b;
        st->xb_cap = bytes;
    }
    return st->xb;
}

#ifdef PRISM_HAVE_DNNL
/* y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N], then the eltwise `post`) in
 * oneDNN's matmul: x of type xt, w of type wt in the file's row-major
 * layout ("ba" for a [K, N] weights tensor), y of type yt; bias float32 or
 * NULL, post an eltwise algorithm or dnnl_alg_kind_undef for none. The
 * primitive comes from oneDNN's primitive cache after the first call of a
 * shape. `what` names it in the error. */
static int onednn_matmul(prism_backend *be, void *y, dnnl_data_type_t yt, const void *x,
                         dnnl_data_type_t xt, const void *w, dnnl_data_type_t wt,
                         const float *bias, dnnl_alg_kind_t post, int M, int N, int K,
                         const char *what)
{
    cpu_state *st = be->impl;
    dnnl_memory_desc_t src_md, wei_md, dst_md, bias_md;
    const dnnl_dims_t sd = {M, K}, wd = {K, N}, dd = {M, N}, bd = {1, N};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t mm = NULL;
    dnnl_memory_t ms = NULL, mw = NULL, my = NULL, mb = NULL;
    int rc = -1;
    omp_set_num_threads(be->n_threads); /* this thread's OpenMP team size, which oneDNN uses */
    bool ok = dnnl_memory_desc_init_by_tag(&src_md, 2, sd, xt, dnnl_ab) == dnnl_success &&
              dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, wt, dnnl_ba) == dnnl_success &&
              dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, yt, dnnl_ab) == dnnl_success &&
              (!bias ||
               dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_f32, dnnl_ab) == dnnl_success) &&
              dnnl_matmul_desc_init(&md, &src_md, &wei_md, bias ? &bias_md : NULL, &dst_md) ==
                  dnnl_success;
    if (ok && post != dnnl_alg_kind_undef)
        ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_eltwise(po, 1.0f, post, 1.0f, 0.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (ok && dnnl_primitive_desc_create(&pd, &md, attr, st->dnnl_eng, NULL) == dnnl_success &&
        dnnl_primitive_create(&mm, pd) == dnnl_success &&
        dnnl_memory_create(&ms, &src_md, st->dnnl_eng, (void *)x) == dnnl_success &&
        dnnl_memory_create(&mw, &wei_md, st->dnnl_eng, (void *)w) == dnnl_success &&
        dnnl_memory_create(&my, &dst_md, st->dnnl_eng, y) == dnnl_success &&
        (!bias || dnnl_memory_create(&mb, &bias_md, st->dnnl_eng, (void *)bias) == dnnl_success)) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw},
                                   {DNNL_ARG_DST, my}, {DNNL_ARG_BIAS, mb}};
        if (dnnl_primitive_execute(mm, st->dnnl_stream, bias ? 4 : 3, args) == dnnl_success &&
            dnnl_stream_wait(st->dnnl_stream) == dnnl_success)
            rc = 0;
    }
    if (ms)
        dnnl_memory_destroy(ms);
    if (mw)
        dnnl_memory_destroy(mw);
    if (my)
        dnnl_memory_destroy(my);
    if (mb)
        dnnl_memory_destroy(mb);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (mm)
        dnnl_primitive_destroy(mm);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rc)
        st->err = what;
    return rc;
}
#endif

#if defined(PRISM_HAVE_DNNL) && defined(__x86_64__)
/* y[N] = xb[K]·w[N,K]ᵀ, both BF16, in AVX512-BF16's vdpbf16ps: each
 * instruction adds 32 exact float32 products into 16 float32 lanes (pairs
 * summed in lane order, denormal inputs and results flushed to zero, as
 * oneDNN's BF16 kernels do). Two rows of w share each load of x and each
 * prefetches 2 KiB ahead (5-10% over the hardware prefetcher alone); the K
 * tail is a masked load, whose zeros add nothing. This function does rows
 * n and n + 1; gemv_bf16_dp runs it over N in threads. Only called where
 * prism_cpu_bf16_compute_available said the CPU has the instruction. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
dp_bf16_rows2(float *y, const uint16_t *xb, const uint16_t *w, int n, int N, int K)
{
    const int KV = K / 32 * 32, ahead = 1024; /* elements */
    const __mmask32 tail = (__mmask32)((1ull << (K - KV)) - 1);
    const uint16_t *w0 = w + (size_t)n * K;
    const uint16_t *w1 = n + 1 < N ? w0 + K : w0; /* an odd N's last row: done twice */
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int k = 0; k < KV; k += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + k);
        /* a prefetch past the end of w is harmless: it never faults */
        _mm_prefetch((const char *)(w0 + k + ahead), _MM_HINT_T0);
        _mm_prefetch((const char *)(w1 + k + ahead), _MM_HINT_T0);
        a0 = _mm512_dpbf16_ps(a0, xv, (__m512bh)_mm512_loadu_si512(w0 + k));
        a1 = _mm512_dpbf16_ps(a1, xv, (__m512bh)_mm512_loadu_si512(w1 + k));
    }
    if (tail) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail, xb + KV);
        a0 = _mm512_dpbf16_ps(a0, xv, (__m512bh)_mm512_maskz_loadu_epi16(tail, w0 + KV));
        a1 = _mm512_dpbf16_ps(a1, xv, (__m512bh)_mm512_maskz_loadu_epi16(tail, w1 + KV));
    }
    y[n] = _mm512_reduce_add_ps(a0);
    if (n + 1 < N)
        y[n + 1] = _mm512_reduce_add_ps(a1);
}

/* The threads over N stay outside the target("avx512bf16") function:
 * clang outlines an OpenMP region into a function without the target. */
static void gemv_bf16_dp(int n_threads, float *y, const uint16_t *xb, const uint16_t *w, int N,
                         int K)
{
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1 && (size_t)N * K > PAR_MIN)
    for (int n = 0; n < N; n += 2)
        dp_bf16_rows2(y, xb, w, n, N, K);
}
#endif

/* y = bf16(x)·wᵀ, products of two BF16 values (exact in float32) summed in
 * float32. Two rows or more: oneDNN's BF16 matmul. One row (a batch-1
 * decode step, where streaming w from memory is the cost): gemv_bf16_dp,
 * which reads w at 1.4-1.5× the rate of matmul_bf16's dot products on
 * widened weights (an Intel Xeon with AMX, 2 threads, w not in cache:
 * 25-28 GB/s against 17-18, tools/bench/bench_gemv.c). Both paths compute
 * the same sums up to their order and the flushing of denormals. */
static int matmul_bf16_compute(prism_backend *be, float *y, const float *x, const uint16_t *w,
                               const float *bias, prism_act act, int M, int N, int K,
                               bool *fused)
{
    const size_t n = (size_t)M * K;
    *fused = false;
#ifdef PRISM_HAVE_DNNL
    uint16_t *xb = x_scratch(be, n * sizeof *xb);
    if (!xb)
        return -1;
#pragma omp parallel for simd num_threads(be->n_threads) if (be->n_threads > 1 && n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        xb[i] = f32_to_bf16(x[i]);
#ifdef __x86_64__
    if (M == 1) {
        gemv_bf16_dp(be->n_threads, y, xb, w, N, K);
        return 0;
    }
#endif
    /* bias and activation inside oneDNN's kernel, while the tile is in
     * cache, instead of a pass over y afterwards; relu stays ours (NaN → 0,
     * where oneDNN's keeps NaN) */
    const dnnl_alg_kind_t post = act == PRISM_ACT_GELU_TANH ? dnnl_eltwise_gelu_tanh
                                 : act == PRISM_ACT_GELU_ERF ? dnnl_eltwise_gelu_erf
                                 : act == PRISM_ACT_SILU     ? dnnl_eltwise_swish
                                                             : dnnl_alg_kind_undef;
    *fused = act == PRISM_ACT_NONE || post != dnnl_alg_kind_undef;
    return onednn_matmul(be, y, dnnl_f32, xb, dnnl_bf16, w, dnnl_bf16, *fused ? bias : NULL, post,
                         M, N, K, "matmul: oneDNN's BF16 matmul failed (out of memory?)");
#else
    /* unreachable: bf16_compute is only switched on where oneDNN is */
    (void)bias, (void)act;
    float *xr = x_scratch(be, n * sizeof *xr);
    if (!xr)
        return -1;
    for (size_t i = 0; i < n; i++)
        xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
    return matmul_bf16(be, y, xr, w, M, N, K);
#endif
}

#ifdef PRISM_HAVE_DNNL
/* int8_compute: w's quantized copy, made at its first use (the model's
 * warm-up), looked up by the imported matrix's address. */
static const qweight *quantized(prism_backend *be, const float *w, int N, int K)
{
    cpu_state *st = be->impl;
    for (int i = 0; i < st->n_qw; i++)
        if (st->qw[i].w == w && st->qw[i].N == N && st->qw[i].K == K)
            return &st->qw[i];
    if (st->n_qw == st->cap_qw) {
        const int cap = st->cap_qw ? 2 * st->cap_qw : 64;
        qweight *q = realloc(st->qw, (size_t)cap * sizeof *q);
        if (!q)
            return NULL;
        st->qw = q;
        st->cap_qw = cap;
    }
    qweight *e = &st->qw[st->n_qw];
    *e = (qweight){.w = w, .N = N, .K = K, .q = malloc((size_t)N * K),
                   .scale = malloc((size_t)N * sizeof(float)),
                   .colsum = malloc((size_t)N * sizeof(int32_t))};
    if (!e->q || !e->scale || !e->colsum) {
        free(e->q), free(e->scale), free(e->colsum);
        return NULL;
    }
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)N * K > PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *wn = w + (size_t)n * K;
        float mx = 0;
#pragma omp simd reduction(max : mx)
        for (int k = 0; k < K; k++)
            mx = fabsf(wn[k]) > mx ? fabsf(wn[k]) : mx;
        const float s = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        e->scale[n] = s;
        int32_t sum = 0;
        for (int k = 0; k < K; k++) {
            e->q[(size_t)n * K + k] = (int8_t)round_half_away(wn[k] * inv); /* |·| ≤ 127 */
            sum += e->q[(size_t)n * K + k];
        }
        e->colsum[n] = sum;
    }
    st->n_qw++;
    return e;
}

/* y = x·wᵀ in int8. Each row of x is quantized asymmetrically to
 * [0, 255] with its own scale and zero point (the row's range, 0 included,
 * over 255 steps; computed per call: "dynamic"), so a GELU output, nearly
 * all ≥ -0.17, keeps all 8 bits; w per output channel, symmetric
 * (quantized()). oneDNN sums the u8 × s8 products exactly in int32 (VNNI's
 * native operand types); then y[m, n] = s_x[m] · s_w[n] · (sum − z[m] ·
 * Σ_k q_w[n, k]), exact in integers up to the last two float products.
 * Rows are independent: a row's result does not depend on its batch. */
static int matmul_int8(prism_backend *be, float *y, const float *x, const float *w, int M, int N,
                       int K)
{
    cpu_state *st = be->impl;
    if (K > 66000) { /* the int32 sums below could overflow */
        st->err = "matmul: int8 takes rows of at most 66000 values";
        return -1;
    }
    const qweight *qw = quantized(be, w, N, K);
    uint8_t *xq = x_scratch(be, (size_t)M * K);
    if (qw && 2 * (size_t)M > st->xscale_cap) {
        float *s = realloc(st->xscale, 2 * (size_t)M * sizeof *s);
        if (s) {
            st->xscale = s;
            st->xscale_cap = 2 * (size_t)M;
        }
    }
    if (!qw || !xq || st->xscale_cap < 2 * (size_t)M) {
        st->err = "matmul: out of memory for int8 weights or activations";
        return -1;
    }
    float *xs = st->xscale, *xz = st->xscale + M; /* scales, zero points */
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)M * K > PAR_MIN)
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * K;
        uint8_t *qm = xq + (size_t)m * K;
        float lo = 0, hi = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi)
        for (int k = 0; k < K; k++) { /* comparisons, not fminf/fmaxf: they vectorise */
            lo = xm[k] < lo ? xm[k] : lo;
            hi = xm[k] > hi ? xm[k] : hi;
        }
        const float s = hi > lo ? (hi - lo) / 255.0f : 1.0f, inv = 1.0f / s;
        const int z = (int)(-lo * inv + 0.5f); /* in [0, 255]: lo ≤ 0 ≤ hi */
        xs[m] = s;
        xz[m] = (float)z;
#pragma omp simd
        for (int k = 0; k < K; k++) {
            int q = round_half_away(xm[k] * inv) + z;
            q = q < 0 ? 0 : q > 255 ? 255 : q;
            qm[k] = (uint8_t)q;
        }
    }
    int32_t *acc = (int32_t *)y; /* the int32 sums, replaced by floats in place below */
    if (onednn_matmul(be, acc, dnnl_s32, xq, dnnl_u8, qw->q, dnnl_s8, NULL, dnnl_alg_kind_undef,
                      M, N, K,
                    "matmul: oneDNN's int8 matmul failed (out of memory?)"))
        return -1;
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)M * N > PAR_MIN)
    for (int m = 0; m < M; m++) {
        int32_t *am = acc + (size_t)m * N;
        float *ym = y + (size_t)m * N;
        const float s = xs[m];
        const int32_t z = (int32_t)xz[m];
        const int32_t *cs = qw->colsum;
        const float *ws = qw->scale;
        /* |sum| and |z·colsum| ≤ 255·127·K < 2³¹ for K < 66000 (checked) */
#pragma omp simd
        for (int n = 0; n < N; n++)
            ym[n] = s * (ws[n] * (float)(am[n] - z * cs[n]));
    }
    return 0;
}
#endif

/* float32, 2 to 64 rows (batched decode steps): oneDNN's f32 matmul reads
 * the weights at 2.7x the rate of OpenBLAS 0.3.21's sgemm there (8 rows of
 * a [16384, 2048] matrix: 4.8 against 13.3 ms), and faster than
 * sgemm_nt's dot products at 2-4 rows (4 rows, weights streamed from
 * memory, 768 × 768 .. 768 × 3072 on 2 threads of an Intel Xeon: 0.73-0.93x
 * their time). One row stays on the dot products. True when it ran. */
static bool small_f32_matmul(prism_backend *be, float *y, const float *x, const float *w, int M,
                             int N, int K)
{
#ifdef PRISM_HAVE_DNNL
    cpu_state *st = be->impl;
    char why[160];
    if (M < 2 || M > 64 || st->dnnl_failed)
        return false;
    if (!st->dnnl_eng && dnnl_setup(st, why, sizeof why)) {
        st->dnnl_failed = true; /* sgemm from now on */
        return false;
    }
    return onednn_matmul(be, y, dnnl_f32, x, dnnl_f32, w, dnnl_f32, NULL, dnnl_alg_kind_undef, M,
                         N, K, "matmul: oneDNN's f32 matmul failed") == 0;
#else
    (void)be, (void)y, (void)x, (void)w, (void)M, (void)N, (void)K;
    return false;
#endif
}

/* y = x·wᵀ: int8 or BF16 arithmetic, BF16 matrices, or float32 (oneDNN
 * for 2-64 rows, else sgemm / dot products) by the backend's mode. *fused
 * says whether bias and act were applied too (BF16 arithmetic on 2 rows or
 * more); else the caller applies them. */
static int matmul_product(prism_backend *be, float *y, const float *x, const void *wv,
                          const float *bias, prism_act act, int M, int N, int K, bool *fused)
{
    const float *w = wv;
    *fused = false;
    if (K == 0) { /* the empty sum (oneDNN divides by K: SIGFPE) */
        memset(y, 0, (size_t)M * N * sizeof *y);
        return 0;
    }
#ifdef PRISM_HAVE_DNNL
    if (((const cpu_state *)be->impl)->int8_compute)
        return matmul_int8(be, y, x, w, M, N, K);
#endif
    if (((const cpu_state *)be->impl)->bf16_compute)
        return matmul_bf16_compute(be, y, x, wv, bias, act, M, N, K, fused);
    if (bf16_mode(be))
        return matmul_bf16(be, y, x, wv, M, N, K);
    if (!small_f32_matmul(be, y, x, w, M, N, K))
        sgemm_nt(be->n_threads, x, w, y, M, N, K, false);
    return 0;
}

static int fast_matmul(prism_backend *be, float *y, const float *x, const void *wv,
                       const float *bias, int M, int N, int K, prism_act act)
{
    if (M == 0 || N == 0)
        return 0;
    bool fused;
    if (matmul_product(be, y, x, wv, bias, act, M, N, K, &fused))
        return -1;
    if (fused || (!bias && act == PRISM_ACT_NONE))
        return 0;
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)M * N > PAR_MIN)
    for (int m = 0; m < M; m++)
        bias_act_row(y + (size_t)m * N, bias, N, act);
    return 0;
}

/* y = (r + bias) + x·wᵀ on every path. float32 through sgemm or the dot
 * products (≤ 4 rows): y = r + bias first, then the product with beta = 1
 * onto it, so the residual stream is read and written in place and no
 * [M, N] temporary exists. The other paths (oneDNN's 5-64 rows, BF16,
 * int8) have no beta here: their product goes to y, or to st->prod when y
 * is r, and one pass adds r + bias to it, in the same order. */
static int fast_matmul_residual(prism_backend *be, float *y, const float *x, const void *wv,
                                const float *bias, const float *r, int M, int N, int K)
{
    cpu_state *st = be->impl;
    if (M == 0 || N == 0)
        return 0;
    const size_t n = (size_t)M * N;
    bool beta_one = !st->bf16_compute && !bf16_mode(be);
#ifdef PRISM_HAVE_DNNL
    beta_one = beta_one && !st->int8_compute && (M < 5 || M > 64 || st->dnnl_failed);
#endif
    if (beta_one) {
        if (bias) {
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && n > PAR_MIN)
            for (int m = 0; m < M; m++) {
                float *ym = y + (size_t)m * N;
                const float *rm = r + (size_t)m * N;
#pragma omp simd
                for (int j = 0; j < N; j++)
                    ym[j] = rm[j] + bias[j];
            }
        } else if (y != r) {
            memcpy(y, r, n * sizeof *y);
        }
        sgemm_nt(be->n_threads, x, wv, y, M, N, K, true);
        return 0;
    }
    float *t = y;
    if (y == r) {
        if (n > st->prod_cap) {
            float *p = realloc(st->prod, n * sizeof *p);
            if (!p) {
                st->err = "matmul_residual: out of memory for the product";
                return -1;
            }
            st->prod = p;
            st->prod_cap = n;
        }
        t = st->prod;
    }
    bool fused; /* never, without bias or act */
    if (matmul_product(be, t, x, wv, NULL, PRISM_ACT_NONE, M, N, K, &fused))
        return -1;
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && n > PAR_MIN)
    for (int m = 0; m < M; m++) {
        float *ym = y + (size_t)m * N;
        const float *rm = r + (size_t)m * N, *tm = t + (size_t)m * N;
        if (bias) {
#pragma omp simd
            for (int j = 0; j < N; j++)
                ym[j] = (rm[j] + bias[j]) + tm[j];
        } else {
#pragma omp simd
            for (int j = 0; j < N; j++)
                ym[j] = rm[j] + tm[j];
        }
    }
    return 0;
}

static int fast_layernorm(prism_backend *be, float *y, const float *x, const float *g,
                          const float *b, int rows, int cols, float eps)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < cols; c++)
            sum += xr[c];
        float mean = (float)(sum / cols);
        double var = 0;
#pragma omp simd reduction(+ : var)
        for (int c = 0; c < cols; c++) {
            float d = xr[c] - mean;
            var += d * d;
        }
        float inv = (float)(1.0 / sqrt(var / cols + eps));
        if (b) {
#pragma omp simd
            for (int c = 0; c < cols; c++)
                yr[c] = (xr[c] - mean) * inv * g[c] + b[c];
        } else {
#pragma omp simd
            for (int c = 0; c < cols; c++)
                yr[c] = (xr[c] - mean) * inv * g[c];
        }
    }
    return 0;
}

static int fast_rmsnorm(prism_backend *be, float *y, const float *x, const float *g, int rows,
                        int cols, float eps)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        double ms = 0;
#pragma omp simd reduction(+ : ms)
        for (int c = 0; c < cols; c++)
            ms += xr[c] * xr[c];
        float inv = (float)(1.0 / sqrt(ms / cols + eps));
#pragma omp simd
        for (int c = 0; c < cols; c++)
            yr[c] = xr[c] * inv * g[c];
    }
    return 0;
}

static int fast_add(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd num_threads(be->n_threads) if (be->n_threads > 1 && n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
    return 0;
}

static int fast_mul(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd num_threads(be->n_threads) if (be->n_threads > 1 && n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
    return 0;
}

static int fast_activate(prism_backend *be, float *x, size_t n, prism_act act)
{
    const size_t chunk = 4096;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && n > PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        bias_act_row(x + lo, NULL, (int)len, act);
    }
    return 0;
}

/* Softmax of one row in place; an all -inf row becomes zeros. 16 lanes,
 * as bias_act_row's activations (GCC's default is 8): Florence-2-base's
 * attention, most of it DaViT's 144 × 144 window softmaxes, 176 → 120 ms
 * a batch-1 prefill on 2 threads. */
static void softmax_row(float *s, int n)
{
    float mx = -INFINITY;
#pragma omp simd simdlen(16) reduction(max : mx)
    for (int j = 0; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    if (mx == -INFINITY) {
        memset(s, 0, (size_t)n * sizeof *s);
        return;
    }
    float sum = 0;
#pragma omp simd simdlen(16) reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        s[j] = exp_approx(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++)
        s[j] *= inv;
}

static int fast_softmax(prism_backend *be, float *x, int rows, int cols)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++)
        softmax_row(x + (size_t)r * cols, cols);
    return 0;
}

/* One (batch, head) pair with a single query (a decode step): each score is
 * one contiguous dot product of length d, no transpose; s holds Tk floats. */
static void attention_head_q1(float *out, const float *q, const float *k, const float *v,
                              const prism_attn_desc *a, int b, int h, float *s)
{
    const int Tk = a->Tk, d = a->d;
    const float *qi = q + b * a->q_bstride + h * d;
    const float *br = a->bias ? a->bias + (size_t)h * Tk : NULL;
    const float *mr = a->key_mask ? a->key_mask + (size_t)b * Tk : NULL;
    for (int j = 0; j < Tk; j++) {
        const float *kj = k + b * a->k_bstride + j * a->k_stride + h * d;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < d; c++)
            dot += qi[c] * kj[c];
        float x = dot * a->scale;
        if (a->softcap > 0)
            x = tanhf(x / a->softcap) * a->softcap;
        s[j] = x + (br ? br[j] : 0.0f) + (mr ? mr[j] : 0.0f);
    }
    /* causal with Tq = 1: the query is the last position, every key is visible */
    softmax_row(s, Tk);
    float *oi = out + b * a->o_bstride + h * d;
    memset(oi, 0, (size_t)d * sizeof *oi);
    for (int j = 0; j < Tk; j++) {
        const float p = s[j];
        const float *vj = v + b * a->v_bstride + j * a->v_stride + h * d;
#pragma omp simd
        for (int c = 0; c < d; c++)
            oi[c] += p * vj[c];
    }
}

/* Turns the scores s[0, Tk) of query i of (batch b, head h) into
 * probabilities: soft-capping, additive bias and key mask, the causal cut
 * (aligned to the end), softmax. Shared by both attention paths. */
static void score_row_softmax(float *s, const prism_attn_desc *a, int b, int h, int i)
{
    const int Tk = a->Tk;
    if (a->softcap > 0) /* as torch: (s / cap).tanh() * cap */
        for (int j = 0; j < Tk; j++)
            s[j] = tanhf(s[j] / a->softcap) * a->softcap;
    if (a->bias) {
        const float *br = a->bias + ((size_t)h * a->Tq + i) * Tk;
#pragma omp simd
        for (int j = 0; j < Tk; j++)
            s[j] += br[j];
    }
    if (a->key_mask) {
        const float *mr = a->key_mask + (size_t)b * Tk;
#pragma omp simd
        for (int j = 0; j < Tk; j++)
            s[j] += mr[j];
    }
    if (a->causal)
        for (int j = i + (Tk - a->Tq) + 1 > 0 ? i + (Tk - a->Tq) + 1 : 0; j < Tk; j++)
            s[j] = -INFINITY;
    softmax_row(s, Tk);
}

/* One (batch, head) pair: kᵀ is transposed once into scratch so that the
 * scores of a query against every key are d axpys of length Tk, and the
 * output is Tk axpys of length d — both contiguous, vectorised loops. */
static void attention_head(float *out, const float *q, const float *k, const float *v,
                           const prism_attn_desc *a, int b, int h, float *kt, float *s)
{
    const int Tk = a->Tk, d = a->d;
    for (int j = 0; j < Tk; j++) {
        const float *kj = k + b * a->k_bstride + j * a->k_stride + h * d;
        for (int c = 0; c < d; c++)
            kt[(size_t)c * Tk + j] = kj[c];
    }
    for (int i = 0; i < a->Tq; i++) {
        const float *qi = q + b * a->q_bstride + i * a->q_stride + h * d;
        memset(s, 0, (size_t)Tk * sizeof *s);
        for (int c = 0; c < d; c++) {
            const float qc = qi[c] * a->scale;
            const float *ktc = kt + (size_t)c * Tk;
#pragma omp simd
            for (int j = 0; j < Tk; j++)
                s[j] += qc * ktc[j];
        }
        score_row_softmax(s, a, b, h, i);
        float *oi = out + b * a->o_bstride + i * a->o_stride + h * d;
        memset(oi, 0, (size_t)d * sizeof *oi);
        for (int j = 0; j < Tk; j++) {
            const float p = s[j];
            const float *vj = v + b * a->v_bstride + j * a->v_stride + h * d;
#pragma omp simd
            for (int c = 0; c < d; c++)
                oi[c] += p * vj[c];
        }
    }
}

#ifdef PRISM_HAVE_BLAS
/* One (batch, head) pair with two single-threaded sgemms (OpenBLAS runs
 * one thread when called inside an OpenMP region): S = scale·Q·Kᵀ, masks and
 * bias added, row softmax, O = S·V. s holds Tq·Tk floats. */
static void attention_head_blas(float *out, const float *q, const float *k, const float *v,
                                const prism_attn_desc *a, int b, int h, float *s)
{
    const int Tq = a->Tq, Tk = a->Tk, d = a->d;
    const float *qb = q + b * a->q_bstride + h * d;
    const float *kb = k + b * a->k_bstride + h * d;
    const float *vb = v + b * a->v_bstride + h * d;
    float *ob = out + b * a->o_bstride + h * d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, d, a->scale, qb,
                (int)a->q_stride, kb, (int)a->k_stride, 0.0f, s, Tk);
    for (int i = 0; i < Tq; i++) {
        float *si = s + (size_t)i * Tk;
        score_row_softmax(si, a, b, h, i);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, d, Tk, 1.0f, s, Tk, vb,
                (int)a->v_stride, 0.0f, ob, (int)a->o_stride);
}
#endif

static int fast_attention(prism_backend *be, float *out, const float *q, const float *k,
                          const float *v, const prism_attn_desc *a)
{
    int pairs = a->B * a->H, failed = 0;
#ifdef PRISM_HAVE_BLAS
    /* sgemm pays off once the score matrix is more than a few rows */
    const bool blas = a->Tq >= 8;
#else
    const bool blas = false;
#endif
    const bool q1 = a->Tq == 1;
    const size_t scratch = q1     ? (size_t)a->Tk
                           : blas ? (size_t)a->Tq * a->Tk
                                  : ((size_t)a->d + 1) * a->Tk;
    /* a decode step's attention is a few microseconds per head: threads
     * only pay off with enough keys */
    const bool par = be->n_threads > 1 && pairs > 1 && (!q1 || (size_t)pairs * a->Tk * a->d > PAR_MIN);
#pragma omp parallel num_threads(be->n_threads) if (par)
    {
        float *buf = malloc(scratch * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < pairs; p++) {
            if (!buf) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            if (q1) {
                attention_head_q1(out, q, k, v, a, p / a->H, p % a->H, buf);
                continue;
            }
#ifdef PRISM_HAVE_BLAS
            if (blas) {
                attention_head_blas(out, q, k, v, a, p / a->H, p % a->H, buf);
                continue;
            }
#endif
            attention_head(out, q, k, v, a, p / a->H, p % a->H, buf,
                           buf + (size_t)a->d * a->Tk);
        }
        free(buf);
    }
    return failed ? -1 : 0;
}

static int fast_l2_normalize(prism_backend *be, float *x, int rows, int cols)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * cols;
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < cols; c++)
            ss += xr[c] * xr[c];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
#pragma omp simd
        for (int c = 0; c < cols; c++)
            xr[c] *= inv;
    }
    return 0;
}

/* The add then the norm, each with its fast loop (bitwise what the two
 * separate ops give). */
static int fast_add_layernorm(prism_backend *be, float *x, const float *h, float *y,
                              const float *g, const float *b, int rows, int cols, float eps)
{
    fast_add(be, x, x, h, (size_t)rows * cols);
    return fast_layernorm(be, y, x, g, b, rows, cols, eps);
}

static int fast_rel_bias(prism_backend *be, float *out, const float *weight,
                         const int32_t *buckets, int rel0, int H, int Tq, int Tk, int q_offset)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)H * Tq * Tk > PAR_MIN)
    for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++) {
            float *o = out + ((size_t)h * Tq + i) * Tk;
            const int32_t *b = buckets + rel0 - (i + q_offset);
            for (int j = 0; j < Tk; j++)
                o[j] = weight[(size_t)b[j] * H + h];
        }
    return 0;
}

/* Top-k of one row: a sorted list of the k best so far; a later column
 * enters only when strictly greater than the current k-th, so equal values
 * keep the lower column. NaNs are taken only when fewer than k other values
 * exist (they rank last). */
static void topk_row(int32_t *idx, float *val, const float *x, int cols, int k,
                     bool log_softmax)
{
    int n = 0;
    for (int c = 0; c < cols; c++) {
        float v = x[c];
        if (v != v)
            continue;
        if (n == k && !(v > x[idx[k - 1]]))
            continue;
        int p = n < k ? n++ : k - 1;
        while (p > 0 && v > x[idx[p - 1]]) {
            idx[p] = idx[p - 1];
            p--;
        }
        idx[p] = c;
    }
    for (int c = 0; c < cols && n < k; c++)
        if (x[c] != x[c])
            idx[n++] = c;
    if (!val)
        return;
    float lse = 0;
    if (log_softmax) {
        float mx = -INFINITY;
        bool nan = false;
        for (int c = 0; c < cols; c++) {
            nan |= x[c] != x[c];
            mx = x[c] > mx ? x[c] : mx;
        }
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < cols; c++)
            sum += exp_approx(x[c] - mx);
        lse = nan ? NAN : mx + (float)log(sum);
    }
    for (int i = 0; i < k; i++)
        val[i] = log_softmax ? x[idx[i]] - lse : x[idx[i]];
}

static int fast_topk(prism_backend *be, int32_t *idx, float *val, const float *x, int rows,
                     int cols, int k, bool log_softmax)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && rows > 1 && (size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++)
        topk_row(idx + (size_t)r * k, val ? val + (size_t)r * k : NULL, x + (size_t)r * cols,
                 cols, k, log_softmax);
    return 0;
}

static int fast_copy_rows(prism_backend *be, float *dst, int64_t dst_stride, const float *src,
                          int64_t src_stride, int n, int cols)
{
#pragma omp parallel for num_threads(be->n_threads) if (be->n_threads > 1 && (size_t)n * cols > 4 * PAR_MIN)
    for (int i = 0; i < n; i++)
        memcpy(dst + i * dst_stride, src + i * src_stride, (size_t)cols * sizeof(float));
    return 0;
}

static void fast_describe_error(prism_backend *be, prism_error *err)
{
    const cpu_state *st = be->impl;
    if (st && st->err)
        prism_error_nomem(err, "%s", st->err);
}

const prism_backend_ops cpu_fast_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_synchronize,
    .weight_import = cpu_weight_import,
#define PRISM_OP(name, params, args) .name = fast_##name,
#include "backend_ops.def"
    .describe_error = fast_describe_error,
    .memory_info = cpu_memory_info,
};

prism_backend *prism_cpu_backend_create(int n_threads, bool reference)
{
    prism_backend *be = calloc(1, sizeof *be);
    if (!be)
        return NULL;
    if (n_threads <= 0)
        n_threads = omp_get_num_procs();
    be->n_threads = reference ? 1 : n_threads;
    be->ops = reference ? &cpu_ref_ops : &cpu_fast_ops;
    if (!(be->impl = calloc(1, sizeof(cpu_state)))) {
        free(be);
        return NULL;
    }
#ifdef PRISM_HAVE_BLAS
    if (!reference)
        openblas_set_num_threads(n_threads);
#endif
    return be;
}


double prism_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double prism_cpu_sgemm_gflops(prism_backend *cpu, int M, int N, int K, double min_seconds)
{
    float *x = cpu_alloc(cpu, (size_t)M * K * sizeof(float));
    float *w = cpu_alloc(cpu, (size_t)N * K * sizeof(float));
    float *y = cpu_alloc(cpu, (size_t)M * N * sizeof(float));
    double best = -1;
    if (x && w && y) {
        for (size_t i = 0; i < (size_t)M * K; i++)
            x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (size_t i = 0; i < (size_t)N * K; i++)
            w[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
        sgemm_nt(cpu->n_threads, x, w, y, M, N, K, false); /* warm-up: thread pools, page faults */
        double start = prism_now();
        do {
            double t0 = prism_now();
            sgemm_nt(cpu->n_threads, x, w, y, M, N, K, false);
            double rate = 2.0 * M * N * K / (prism_now() - t0) * 1e-9;
            best = rate > best ? rate : best;
        } while (prism_now() - start < min_seconds);
    }
    cpu_free(cpu, x);
    cpu_free(cpu, w);
    cpu_free(cpu, y);
    return best;
}
