/* cuda_standin.c - a CPU stand-in for the CUDA backend's C API, to check the
 * GPU tests themselves on a machine without a GPU.
 *
 * tests/test_cuda_parity.c and tests/test_cuda_golden.c can only run their
 * checks where a GPU is; a bug in their own references, bounds or guards
 * would first show on a scarce device run. Linked against this file instead
 * of the prism_cuda library, they run every check against a backend that
 * computes like the CUDA one but on the CPU: the CPU fast ops, with matrix
 * weights and matmul inputs rounded to BF16/F16 for those weight dtypes and
 * tensor-core attention (head dim ≥ 16) emulated with q, k, v and p rounded.
 * Every check must pass. tools/gpu/check_tests_on_cpu.sh builds and runs it.
 * Not part of the product; needs a compiler with _Float16 (GCC 12+).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "safetensors.h"

typedef struct standin {
    prism_backend *cpu; /* the CPU fast backend doing the work */
    int wdt;
    int attn_path;
    prism_backend_ops ops;
} standin;

static standin *S(prism_backend *be)
{
    return be->impl;
}

static float round_to(int wdt, float f)
{
    if (wdt == PRISM_DT_F16)
        return (float)(_Float16)f;
    if (wdt != PRISM_DT_BF16 || !isfinite(f))
        return f;
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* not through S(): patchify's generated forwarder has a parameter S */
#define CPU(be) (((standin *)(be)->impl)->cpu)
#define FWD(be, op, ...) (CPU(be)->ops->op(CPU(be), __VA_ARGS__))

static void s_destroy(prism_backend *be)
{
    prism_backend_destroy(CPU(be));
    free(S(be));
    free(be);
}
static void *s_alloc(prism_backend *be, size_t n) { return FWD(be, alloc, n); }
static void s_free(prism_backend *be, void *p) { FWD(be, free, p); }
/* as the real backend reports it: held as prism_cuda_bytes_in_use (0
 * here), and a device of 1 GiB with half of it free */
static int s_memory_info(prism_backend *be, prism_backend_memory *m)
{
    (void)be;
    *m = (prism_backend_memory){.held = 0, .device_total = 1u << 30, .device_free = 1u << 29};
    return 0;
}
static int s_upload(prism_backend *be, void *d, const void *s, size_t n) { return FWD(be, upload, d, s, n); }
static int s_download(prism_backend *be, void *d, const void *s, size_t n) { return FWD(be, download, d, s, n); }
static int s_sync(prism_backend *be) { return CPU(be)->ops->synchronize(CPU(be)); }

static const void *s_import(prism_backend *be, const void *src, int dt, size_t n, bool matrix,
                            bool *owned)
{
    float *d = malloc((n ? n : 1) * sizeof *d);
    if (!d || st_to_f32(d, src, (prism_dtype)dt, n)) {
        free(d);
        return NULL;
    }
    if (matrix)
        for (size_t i = 0; i < n; i++)
            d[i] = round_to(S(be)->wdt, d[i]);
    *owned = true;
    return d;
}

static int s_matmul(prism_backend *be, float *y, const float *x, const void *w, const float *b,
                    int M, int N, int K, prism_act act)
{
    float *xr = malloc(((size_t)M * K + 1) * sizeof *xr);
    if (!xr)
        return -1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        xr[i] = round_to(S(be)->wdt, x[i]);
    int rc = FWD(be, matmul, y, xr, w, b, M, N, K, act);
    free(xr);
    return rc;
}

static int s_matmul_residual(prism_backend *be, float *y, const float *x, const void *w,
                             const float *b, const float *r, int M, int N, int K)
{
    float *xr = malloc(((size_t)M * K + 1) * sizeof *xr);
    if (!xr)
        return -1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        xr[i] = round_to(S(be)->wdt, x[i]);
    int rc = FWD(be, matmul_residual, y, xr, w, b, r, M, N, K);
    free(xr);
    return rc;
}

/* s_fwd_<op> for every op of backend_ops.def: the CPU op as it is. The
 * table takes these but for the matmuls and attention (above and below). */
#define PRISM_OP(name, params, args)                                            \
    static int s_fwd_##name PRISM_OP_PARAMS params                              \
    {                                                                           \
        return FWD(be, name, PRISM_OP_ARGS args);                               \
    }
#include "backend_ops.def"

/* The tensor-core kernel's roundings; the CPU op otherwise. */
static int s_attention(prism_backend *be, float *out, const float *q, const float *k,
                       const float *v, const prism_attn_desc *a)
{
    const int wdt = S(be)->wdt;
    if (a->d < 1 || a->d > 256) /* CUDA_ATTN_MAX_D */
        return -1;
    /* backend_cuda.cu's choice: tensor cores for 16 ≤ d ≤ 128 without soft-capping */
    if (wdt == PRISM_DT_F32 || a->d < 16 || a->d > 128 || a->softcap > 0 ||
        S(be)->attn_path == PRISM_CUDA_ATTN_SIMT)
        return FWD(be, attention, out, q, k, v, a);
    double *s = malloc(((size_t)a->Tk + 1) * sizeof *s);
    if (!s)
        return -1;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int i = 0; i < a->Tq; i++) {
                const float *qi = q + b * a->q_bstride + i * a->q_stride + h * a->d;
                double mx = -INFINITY, l = 0;
                for (int j = 0; j < a->Tk; j++) {
                    const float *kj = k + b * a->k_bstride + j * a->k_stride + h * a->d;
                    double dot = 0;
                    for (int c = 0; c < a->d; c++)
                        dot += (double)round_to(wdt, qi[c]) * round_to(wdt, kj[c]);
                    dot = (float)dot * a->scale;
                    if (a->bias)
                        dot += a->bias[((size_t)h * a->Tq + i) * a->Tk + j];
                    if (a->key_mask)
                        dot += a->key_mask[(size_t)b * a->Tk + j];
                    if (a->causal && j > i + (a->Tk - a->Tq))
                        dot = -INFINITY;
                    s[j] = dot;
                    mx = dot > mx ? dot : mx;
                }
                for (int j = 0; j < a->Tk; j++) {
                    s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
                    l += s[j];
                }
                float *oi = out + b * a->o_bstride + i * a->o_stride + h * a->d;
                for (int c = 0; c < a->d; c++) {
                    double acc = 0;
                    for (int j = 0; j < a->Tk; j++)
                        acc += (double)round_to(wdt, (float)s[j]) *
                               round_to(wdt, v[b * a->v_bstride + j * a->v_stride + h * a->d + c]);
                    oi[c] = mx == -INFINITY ? 0.0f : (float)(acc / l);
                }
            }
    free(s);
    return 0;
}

int prism_cuda_device_count(void)
{
    return 1;
}

prism_backend *prism_cuda_backend_create(int device, int wdt, size_t arena_hint, prism_error *err)
{
    (void)arena_hint;
    if (wdt != PRISM_DT_F32 && wdt != PRISM_DT_BF16 && wdt != PRISM_DT_F16) {
        prism_errorf(err, "cuda: weight dtype %d is not BF16, F16 or F32", wdt);
        return NULL;
    }
    if (device != 0) {
        prism_errorf(err, "cuda: device %d does not exist (1 device found)", device);
        return NULL;
    }
    prism_backend *be = calloc(1, sizeof *be);
    standin *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return NULL;
    }
    s->cpu = prism_cpu_backend_create(1, false);
    s->wdt = wdt;
    s->ops = (prism_backend_ops){
        .name = "cuda-standin", .destroy = s_destroy, .alloc = s_alloc, .free = s_free,
        .upload = s_upload, .download = s_download, .synchronize = s_sync,
        .weight_import = s_import,
#define PRISM_OP(name, params, args) .name = s_fwd_##name,
#include "backend_ops.def"
    };
    s->ops.matmul = s_matmul;
    s->ops.matmul_residual = s_matmul_residual;
    s->ops.attention = s_attention;
    s->ops.memory_info = s_memory_info;
    be->ops = &s->ops;
    be->impl = s;
    be->n_threads = 1;
    return be;
}

/* The error checks look for these words in the real backend's messages. */
const char *prism_cuda_last_error(const prism_backend *be)
{
    (void)be;
    return "backend_cuda.cu:0: stand-in: cudaMalloc refused; d=257 refused";
}
const char *prism_cuda_device_name(const prism_backend *be) { (void)be; return "CPU stand-in"; }
int prism_cuda_compute_capability(const prism_backend *be) { (void)be; return 0; }
int prism_cuda_weight_dtype(const prism_backend *be) { return ((const standin *)be->impl)->wdt; }
size_t prism_cuda_bytes_in_use(const prism_backend *be) { (void)be; return 0; }
/* no conversions to count: the tests check the count on a device only */
unsigned long long prism_cuda_conversions(const prism_backend *be) { (void)be; return 0; }
int prism_cuda_mem_info(prism_backend *be, size_t *f, size_t *t) { (void)be; *f = *t = 0; return 0; }
void prism_cuda_set_gemm_path(prism_backend *be, int path) { (void)be; (void)path; }
void prism_cuda_set_attention_path(prism_backend *be, int path) { S(be)->attn_path = path; }
double prism_cuda_gemm_tflops(prism_backend *be, int M, int N, int K, double min_seconds)
{
    (void)be, (void)M, (void)N, (void)K, (void)min_seconds;
    return 1.0;
}
void *prism_cuda_host_alloc(prism_backend *be, size_t bytes) { (void)be; return malloc(bytes ? bytes : 1); }
void prism_cuda_host_free(prism_backend *be, void *p) { (void)be; free(p); }
