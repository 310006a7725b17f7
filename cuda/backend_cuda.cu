/* backend_cuda.cu - the CUDA backend: engine/backend.h on an NVIDIA GPU.
 *
 * State (all per backend, in be->impl): one device, one non-blocking
 * stream that every copy, kernel and GEMM is queued on, one cuBLAS and one
 * cuBLASLt handle sharing a 32 MiB workspace, a cache of cuBLASLt plans,
 * and a conversion scratch buffer.
 *
 * Weights. Matrix weights (weight_import with matrix = true) are stored as
 * the backend's weight dtype: BF16 (default), F16 or F32; everything else
 * is float32. Conversion runs on the device (raw bytes staged through the
 * workspace, then a kernel), so a checkpoint in any of F32/F16/BF16 loads
 * into any weight dtype.
 *
 * GEMMs. y[M,N] = x[M,K]·w[N,K]ᵀ is one column-major GEMM
 * yᵀ(N×M) = op_T(w)·xᵀ. Activations are float32 but cuBLAS has no kernel
 * mixing an F32 operand with a BF16/F16 one, so x is first converted into
 * the scratch buffer (round to nearest even) and the GEMM runs with both
 * operands in the weight dtype, accumulating and writing float32. With F32
 * weights there is no conversion and compute is exact FP32
 * (CUBLAS_COMPUTE_32F, no TF32). cuBLASLt's epilogue adds the bias inside
 * the GEMM (BIAS), and on BF16/F16 weights gelu_tanh after it
 * (GELU_BIAS); any other activation, or a bias the epilogue cannot take,
 * is one fused kernel afterwards. matmul_residual is the same GEMM with
 * beta = 1 onto y = r. When Lt has no plan for a shape, an epilogue or an
 * alignment, cublasGemmEx does the product instead.
 *
 * Conversion cache. Several GEMMs read the same input (q, k, v after
 * layer_norm1), and most GEMM inputs were just written by one of our ops.
 * So every op that writes a GEMM input — layernorm, add_layernorm,
 * rmsnorm, attention, mul (gated FFNs) and the bias+activation kernel —
 * also writes its output in the weight dtype into the scratch buffer
 * ("shadow"): these are the BF16 activations between ops, written in the
 * same pass as the float32 ones. The backend remembers which float32
 * values the scratch holds (cache.src, n). A matmul whose x is within them
 * skips its conversion (prism_cuda_conversions counts the others). Any op that
 * writes device memory forgets the cache first (a matmul only when its
 * output overlaps the cached rows), so a hit is always current; all of it
 * is ordered by the single stream.
 *
 * Memory. alloc and weight_import call cudaMalloc; they run at load time.
 * Each alloc also grows the scratch to half its size, so that any buffer
 * the model allocated can be converted without allocating: ops never
 * allocate device memory (the GEMM-rate measurement does, and is not an
 * op). The "arena" of docs/cuda.md is this set of load-time allocations.
 *
 * Attention runs on tensor cores (mma.sync, inputs rounded to the weight
 * dtype) on BF16/F16 backends for head dims ≥ 16, else in float32
 * (kernels.cu); prism_cuda_set_attention_path forces float32.
 *
 * Errors. Every CUDA, cuBLAS and cuBLASLt call and every kernel launch is
 * checked; a failure returns -1 (or NULL) and leaves "file:line: call:
 * message" in prism_cuda_last_error(be). Nothing aborts.
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend_cuda.h"
#include "prism_error.h"
#include "safetensors.h"
}

#include "cuda_kernels.h"

static_assert(PRISM_DT_F32 == 0 && PRISM_DT_F16 == 1 && PRISM_DT_BF16 == 2,
              "kernels.cu's RAW_* values follow prism_dtype");

namespace {

constexpr size_t WORKSPACE_BYTES = 32u << 20;  /* cuBLAS/Lt workspace, import staging */
constexpr size_t MIN_SCRATCH_BYTES = 8u << 20; /* conversion scratch floor */
constexpr size_t ALLOC_ALIGN = 256;
constexpr int PLAN_CAP = 96;

struct lt_plan {
    bool used, ok;
    int M, N, K;
    unsigned ax, aw, ay, ab; /* pointer alignments the plan was chosen for */
    cublasLtEpilogue_t epi;  /* DEFAULT, BIAS, GELU or GELU_BIAS */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

struct dev_alloc {
    void *p;
    size_t bytes;
};

struct cuda_impl {
    prism_backend *be;
    int device, cc;
    char name[256];
    int wdt;  /* PRISM_DT_BF16 / F16 / F32 */
    int half; /* HALF_BF16 / HALF_F16 / HALF_NONE */
    cudaDataType_t cuda_wdt;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    void *scratch;
    size_t scratch_bytes;
    struct {
        const float *src;
        size_t n; /* values: the scratch holds src[0, n) in the weight dtype */
    } cache;
    unsigned long long conversions; /* matmul inputs converted (a cache miss each) */
    lt_plan plans[PLAN_CAP];
    int plan_next;
    int gemm_path;
    int attn_path;
    dev_alloc *allocs;
    size_t n_allocs, cap_allocs;
    size_t bytes_in_use; /* atomic: memory_info reads it from other threads */
    char err[512];
    prism_error_code err_code; /* what describe_error reports with err */
};

cuda_impl *impl_of(prism_backend *be)
{
    return static_cast<cuda_impl *>(be->impl);
}

const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int fail_msg(cuda_impl *c, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int fail_msg(cuda_impl *c, const char *file, int line, const char *fmt, ...)
{
    c->err_code = PRISM_ERR_FAILED;
    int n = snprintf(c->err, sizeof c->err, "%s:%d: ", base_name(file), line);
    if (n < 0 || (size_t)n >= sizeof c->err)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, sizeof c->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Errors after which the context is unusable until the process exits
 * ("sticky": every later call returns them too). */
bool sticky(cudaError_t e)
{
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
        return true;
    default:
        return false;
    }
}

prism_error_code error_code(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? PRISM_ERR_NOMEM
           : sticky(e)                    ? PRISM_ERR_DEVICE_LOST
                                          : PRISM_ERR_FAILED;
}

int fail_cuda(cuda_impl *c, const char *file, int line, const char *what, cudaError_t e)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so it is not reported twice */
    fail_msg(c, file, line, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    c->err_code = error_code(e);
    return -1;
}

int fail_blas(cuda_impl *c, const char *file, int line, const char *what, cublasStatus_t s)
{
    const cudaError_t e = cudaGetLastError(); /* a sticky error under a failed kernel */
    fail_msg(c, file, line, "%s: %s", what, cublasGetStatusString(s));
    c->err_code = s == CUBLAS_STATUS_ALLOC_FAILED ? PRISM_ERR_NOMEM
                  : sticky(e)                     ? PRISM_ERR_DEVICE_LOST
                                                  : PRISM_ERR_FAILED;
    return -1;
}

#define CK_CUDA(c, call)                                                                 \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess)                                                           \
            return fail_cuda(c, __FILE__, __LINE__, #call, e_);                          \
    } while (0)

#define CK_BLAS(c, call)                                                                 \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return fail_blas(c, __FILE__, __LINE__, #call, s_);                          \
    } while (0)

/* A kernel launch through a kernels.cu launcher; `what` names the op. */
#define CK_LAUNCH(c, call, what)                                                         \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess)                                                           \
            return fail_cuda(c, __FILE__, __LINE__, what " kernel launch", e_);          \
    } while (0)

/* Makes the backend's device current for this thread (several backends on
 * several devices may share a thread). */
#define ENTER(c) CK_CUDA(c, cudaSetDevice((c)->device))

int half_kind(int wdt)
{
    return wdt == PRISM_DT_BF16 ? HALF_BF16 : wdt == PRISM_DT_F16 ? HALF_F16 : HALF_NONE;
}

cudaDataType_t cuda_type(int wdt)
{
    return wdt == PRISM_DT_BF16 ? CUDA_R_16BF : wdt == PRISM_DT_F16 ? CUDA_R_16F : CUDA_R_32F;
}

size_t dtype_bytes(int dt)
{
    return dt == PRISM_DT_F32 ? 4 : 2;
}

/* ---- conversion cache -------------------------------------------------------- */

void cache_forget(cuda_impl *c)
{
    c->cache.src = nullptr;
    c->cache.n = 0;
}

bool overlaps(const void *a, size_t an, const void *b, size_t bn)
{
    const char *pa = static_cast<const char *>(a), *pb = static_cast<const char *>(b);
    return pa < pb + bn && pb < pa + an;
}

/* Forgets the cache if [p, p + bytes) overlaps the rows it stands for. */
void cache_forget_overlap(cuda_impl *c, const void *p, size_t bytes)
{
    if (c->cache.src &&
        overlaps(p, bytes, c->cache.src, c->cache.n * sizeof(float)))
        cache_forget(c);
}

/* Where an op writing n contiguous float32 values may also write its
 * shadow: the scratch, when the backend converts and the values fit; else
 * NULL. */
void *shadow_for(cuda_impl *c, size_t n)
{
    if (c->half == HALF_NONE || n == 0 || n * 2 > c->scratch_bytes)
        return nullptr;
    return c->scratch;
}

void cache_set(cuda_impl *c, const float *src, size_t n)
{
    c->cache.src = src;
    c->cache.n = n;
}

/* ---- device memory --------------------------------------------------------------- */

/* cudaMalloc with bookkeeping; NULL + message on failure. */
void *dev_malloc(cuda_impl *c, size_t bytes, const char *what)
{
    size_t n = (bytes + ALLOC_ALIGN - 1) / ALLOC_ALIGN * ALLOC_ALIGN;
    if (n == 0)
        n = ALLOC_ALIGN;
    if (c->n_allocs == c->cap_allocs) {
        size_t cap = c->cap_allocs ? 2 * c->cap_allocs : 256;
        dev_alloc *a = static_cast<dev_alloc *>(realloc(c->allocs, cap * sizeof *a));
        if (!a) {
            fail_msg(c, __FILE__, __LINE__, "%s: out of host memory", what);
            c->err_code = PRISM_ERR_NOMEM;
            return nullptr;
        }
        c->allocs = a;
        c->cap_allocs = cap;
    }
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
            (void)cudaGetLastError();
            fr = tot = 0;
        }
        fail_msg(c, __FILE__, __LINE__,
                 "%s: cudaMalloc of %zu bytes failed: %s (device %d has %zu MiB free of %zu MiB; "
                 "this backend holds %zu MiB)",
                 what, n, cudaGetErrorString(e), c->device, fr >> 20, tot >> 20,
                 __atomic_load_n(&c->bytes_in_use, __ATOMIC_RELAXED) >> 20);
        c->err_code = error_code(e);
        return nullptr;
    }
    c->allocs[c->n_allocs].p = p;
    c->allocs[c->n_allocs].bytes = n;
    c->n_allocs++;
    __atomic_add_fetch(&c->bytes_in_use, n, __ATOMIC_RELAXED);
    return p;
}

/* cudaFree of a pointer from dev_malloc; unknown pointers are refused. */
int dev_free(cuda_impl *c, void *p)
{
    for (size_t i = 0; i < c->n_allocs; i++)
        if (c->allocs[i].p == p) {
            __atomic_sub_fetch(&c->bytes_in_use, c->allocs[i].bytes, __ATOMIC_RELAXED);
            c->allocs[i] = c->allocs[--c->n_allocs];
            CK_CUDA(c, cudaFree(p));
            return 0;
        }
    return fail_msg(c, __FILE__, __LINE__, "free: %p was not allocated by this backend", p);
}

/* Grows the conversion scratch to at least `bytes` (load time). */
int scratch_reserve(cuda_impl *c, size_t bytes)
{
    if (c->half == HALF_NONE || bytes <= c->scratch_bytes)
        return 0;
    CK_CUDA(c, cudaStreamSynchronize(c->stream)); /* no queued op still reads the old one */
    cache_forget(c);
    if (c->scratch) {
        if (dev_free(c, c->scratch))
            return -1;
        c->scratch = nullptr;
        c->scratch_bytes = 0;
    }
    c->scratch = dev_malloc(c, bytes, "conversion scratch");
    if (!c->scratch)
        return -1;
    c->scratch_bytes = bytes;
    return 0;
}

/* ---- cuBLASLt plans ------------------------------------------------------------------ */

unsigned ptr_align(const void *p)
{
    const uintptr_t a = (uintptr_t)p;
    if (a == 0)
        return 256;
    const uintptr_t low = a & (~a + 1);
    return low >= 256 ? 256u : (unsigned)low;
}

void plan_release(lt_plan *p)
{
    if (!p->used)
        return;
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc)
        cublasLtMatrixLayoutDestroy(p->lc);
    memset(p, 0, sizeof *p);
}

/* Builds the descriptors for p->epi and asks the heuristic for one
 * algorithm; false when Lt cannot do this shape or epilogue (the caller
 * tries a simpler epilogue, then cublasGemmEx). */
bool plan_build(cuda_impl *c, lt_plan *p, const float *bias)
{
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = p->epi;
    if (cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
        return false;
    if (cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) ||
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) ||
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi))
        return false;
    if (bias && cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                               sizeof bias))
        return false;
    /* Column-major: A = w as K×N (ld K, transposed by op), B = x as K×M, C = D = y as N×M. */
    if (cublasLtMatrixLayoutCreate(&p->la, c->cuda_wdt, (uint64_t)p->K, (uint64_t)p->N, p->K) ||
        cublasLtMatrixLayoutCreate(&p->lb, c->cuda_wdt, (uint64_t)p->K, (uint64_t)p->M, p->K) ||
        cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, (uint64_t)p->N, (uint64_t)p->M, p->N))
        return false;
    cublasLtMatmulPreference_t pref = nullptr;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS)
        return false;
    const uint64_t ws = c->ws_bytes;
    const uint32_t ax = p->ax, aw = p->aw, ay = p->ay;
    bool ok = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                   &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                   &aw, sizeof aw) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                   &ax, sizeof ax) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                   &ay, sizeof ay) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                   &ay, sizeof ay) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        cublasLtMatmulHeuristicResult_t res;
        int found = 0;
        memset(&res, 0, sizeof res);
        ok = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1,
                                            &res, &found) == CUBLAS_STATUS_SUCCESS &&
             found > 0 && res.state == CUBLAS_STATUS_SUCCESS && res.workspaceSize <= c->ws_bytes;
        if (ok)
            p->algo = res.algo;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    return ok;
}

/* The plan for this shape, epilogue and these pointers' alignments, built
 * on first use (host work only) and kept; NULL when Lt is not to be used.
 * epi includes the bias (BIAS, GELU_BIAS) exactly when bias is not NULL. */
lt_plan *plan_get(cuda_impl *c, int M, int N, int K, const void *x, const void *w, const float *y,
                  const float *bias, cublasLtEpilogue_t epi)
{
    const unsigned ax = ptr_align(x), aw = ptr_align(w), ay = ptr_align(y);
    const unsigned ab = bias ? ptr_align(bias) : 0;
    if (bias && ab < 16)
        return nullptr; /* epilogue bias vectors are read 16 bytes at a time */
    for (int i = 0; i < PLAN_CAP; i++) {
        lt_plan *p = &c->plans[i];
        if (p->used && p->M == M && p->N == N && p->K == K && p->ax == ax && p->aw == aw &&
            p->ay == ay && p->ab == ab && p->epi == epi)
            return p->ok ? p : nullptr;
    }
    lt_plan *p = &c->plans[c->plan_next];
    c->plan_next = (c->plan_next + 1) % PLAN_CAP;
    plan_release(p);
    p->used = true;
    p->M = M;
    p->N = N;
    p->K = K;
    p->ax = ax;
    p->aw = aw;
    p->ay = ay;
    p->ab = ab;
    p->epi = epi;
    p->ok = plan_build(c, p, bias);
    return p->ok ? p : nullptr;
}

/* What gemm() applied besides the product. */
constexpr unsigned DONE_BIAS = 1, DONE_GELU = 2;

/* One cublasLtMatmul, D = C = y: y = epilogue(xa·wᵀ + beta·y); false when
 * Lt has no plan for it (or refused it at run time, remembered). */
bool lt_matmul(cuda_impl *c, float *y, const void *xa, const void *w, const float *bias, int M,
               int N, int K, cublasLtEpilogue_t epi, float beta)
{
    lt_plan *p = plan_get(c, M, N, K, xa, w, y, bias, epi);
    if (!p)
        return false;
    const float one = 1.0f;
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    if (bias)
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                           sizeof bias);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(c->lt, p->desc, &one, w, p->la, xa, p->lb, &beta, y, p->lc, y, p->lc,
                           &p->algo, c->ws, c->ws_bytes, c->stream);
    if (s == CUBLAS_STATUS_SUCCESS)
        return true;
    /* Not for this shape after all: remember, and take the next way. A
     * device fault would fail the next call as well and be reported. */
    p->ok = false;
    (void)cudaGetLastError();
    return false;
}

/* y[M,N] = xa[M,K]·w[N,K]ᵀ + beta·y (beta 0 or 1: matmul_residual's
 * accumulation onto y); xa and w in the weight dtype, y float32. *done
 * says what else was applied in the epilogue: the bias (DONE_BIAS) and,
 * when `gelu` asked for it, gelu_tanh after it (DONE_GELU); the caller
 * applies the rest. cuBLASLt first (GELU_BIAS, then BIAS), cublasGemmEx
 * where Lt has no plan. */
int gemm(cuda_impl *c, float *y, const void *xa, const void *w, const float *bias, int M, int N,
         int K, bool gelu, float beta, unsigned *done)
{
    const float one = 1.0f;
    *done = 0;
    if (c->gemm_path == PRISM_CUDA_GEMM_AUTO) {
        if (gelu && lt_matmul(c, y, xa, w, bias, M, N, K,
                              bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU, beta)) {
            *done = (bias ? DONE_BIAS : 0u) | DONE_GELU;
            return 0;
        }
        if (lt_matmul(c, y, xa, w, bias, M, N, K,
                      bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT, beta)) {
            *done = bias ? DONE_BIAS : 0u;
            return 0;
        }
    }
    CK_BLAS(c, cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, c->cuda_wdt, K, xa,
                            c->cuda_wdt, K, &beta, y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* ---- ops table ------------------------------------------------------------------------ */

void cu_destroy(prism_backend *be);

void *cu_alloc(prism_backend *be, size_t bytes)
{
    cuda_impl *c = impl_of(be);
    cudaError_t e = cudaSetDevice(c->device);
    if (e != cudaSuccess) {
        fail_cuda(c, __FILE__, __LINE__, "cudaSetDevice", e);
        return nullptr;
    }
    void *p = dev_malloc(c, bytes, "alloc");
    if (!p)
        return nullptr;
    /* Any buffer the model allocates may become a matmul input: make sure
     * its conversion fits the scratch without allocating later. */
    if (scratch_reserve(c, (bytes + 1) / 2)) {
        char keep[sizeof c->err];
        memcpy(keep, c->err, sizeof keep);
        dev_free(c, p);
        memcpy(c->err, keep, sizeof keep);
        return nullptr;
    }
    return p;
}

void cu_free(prism_backend *be, void *p)
{
    cuda_impl *c = impl_of(be);
    if (!p)
        return;
    if (cudaSetDevice(c->device) != cudaSuccess)
        (void)cudaGetLastError();
    cache_forget(c);
    if (p == c->scratch || p == c->ws) {
        fail_msg(c, __FILE__, __LINE__, "free: %p is the backend's own buffer", p);
        return;
    }
    dev_free(c, p);
}

int cu_upload(prism_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    if (bytes == 0)
        return 0;
    cudaPointerAttributes attr;
    bool pinned = false;
    if (cudaPointerGetAttributes(&attr, src) == cudaSuccess)
        pinned = attr.type == cudaMemoryTypeHost;
    else
        (void)cudaGetLastError();
    CK_CUDA(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    /* From pageable memory the copy is staged before cudaMemcpyAsync
     * returns; from pinned memory it is not, and the caller may reuse src
     * as soon as we return. */
    if (pinned)
        CK_CUDA(c, cudaStreamSynchronize(c->stream));
    return 0;
}

int cu_download(prism_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    if (bytes)
        CK_CUDA(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CK_CUDA(c, cudaStreamSynchronize(c->stream));
    return 0;
}

int cu_synchronize(prism_backend *be)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    CK_CUDA(c, cudaStreamSynchronize(c->stream));
    CK_CUDA(c, cudaGetLastError());
    return 0;
}

/* Copies n values of host dtype `dt` to dst (device) as `kind` (HALF_NONE:
 * float32); conversions on the device, through the workspace. */
int import_values(cuda_impl *c, void *dst, int kind, const void *src, int dt, size_t n)
{
    const size_t in_sz = dtype_bytes(dt), out_sz = kind == HALF_NONE ? 4 : 2;
    const int out_dt = kind == HALF_BF16 ? PRISM_DT_BF16 : kind == HALF_F16 ? PRISM_DT_F16 : PRISM_DT_F32;
    if (dt == out_dt) {
        CK_CUDA(c, cudaMemcpyAsync(dst, src, n * in_sz, cudaMemcpyHostToDevice, c->stream));
    } else {
        const size_t chunk = c->ws_bytes / in_sz;
        for (size_t off = 0; off < n; off += chunk) {
            const size_t cnt = n - off < chunk ? n - off : chunk;
            CK_CUDA(c, cudaMemcpyAsync(c->ws, static_cast<const char *>(src) + off * in_sz,
                                       cnt * in_sz, cudaMemcpyHostToDevice, c->stream));
            CK_LAUNCH(c, k_convert_raw(static_cast<char *>(dst) + off * out_sz, kind, c->ws, dt, cnt,
                                       c->stream),
                      "weight conversion");
        }
    }
    CK_CUDA(c, cudaStreamSynchronize(c->stream));
    return 0;
}

const void *cu_weight_import(prism_backend *be, const void *src, int dt, size_t n, bool matrix,
                             bool *owned)
{
    cuda_impl *c = impl_of(be);
    *owned = false;
    if (dt != PRISM_DT_F32 && dt != PRISM_DT_F16 && dt != PRISM_DT_BF16) {
        fail_msg(c, __FILE__, __LINE__, "weight_import: dtype %d is not F32, F16 or BF16", dt);
        return nullptr;
    }
    if (cudaSetDevice(c->device) != cudaSuccess) {
        fail_cuda(c, __FILE__, __LINE__, "cudaSetDevice", cudaGetLastError());
        return nullptr;
    }
    const int kind = matrix ? c->half : HALF_NONE;
    const size_t out_sz = kind == HALF_NONE ? 4 : 2;
    void *dst = dev_malloc(c, n * out_sz, matrix ? "weight_import (matrix)" : "weight_import");
    if (!dst)
        return nullptr;
    if (n && import_values(c, dst, kind, src, dt, n)) {
        char keep[sizeof c->err];
        memcpy(keep, c->err, sizeof keep);
        dev_free(c, dst);
        memcpy(c->err, keep, sizeof keep);
        return nullptr;
    }
    *owned = true;
    return dst;
}

/* The product part of matmul and matmul_residual: y = x·wᵀ + beta·y
 * (beta 0 or 1), with the bias and, when `gelu`, gelu_tanh in cuBLASLt's
 * epilogue where it can (*done as gemm's). x is converted to the weight
 * dtype first, or found converted in the cache. */
int matmul_product(cuda_impl *c, float *y, const float *x, const void *w, const float *bias, int M,
                   int N, int K, bool gelu, float beta, unsigned *done)
{
    const size_t ybytes = (size_t)M * N * sizeof(float);
    *done = 0;
    if (K == 0) { /* an empty sum */
        cache_forget_overlap(c, y, ybytes);
        if (beta == 0.0f)
            CK_CUDA(c, cudaMemsetAsync(y, 0, ybytes, c->stream));
        return 0;
    }
    if (c->half == HALF_NONE) {
        cache_forget_overlap(c, y, ybytes);
        return gemm(c, y, x, w, bias, M, N, K, gelu, beta, done);
    }
    const size_t xbytes = (size_t)M * K * 2;
    /* x[M, K] is M·K contiguous values: any producer's shadow of at least
     * that many values starting at x holds it, whatever shape it wrote */
    const bool hit = c->cache.src == x && c->cache.n >= (size_t)M * K;
    if (hit || xbytes <= c->scratch_bytes) {
        if (!hit) {
            CK_LAUNCH(c, k_convert(c->scratch, c->half, x, (size_t)M * K, c->stream),
                      "matmul input conversion");
            c->conversions++;
            cache_set(c, x, (size_t)M * K);
        }
        cache_forget_overlap(c, y, ybytes);
        return gemm(c, y, c->scratch, w, bias, M, N, K, gelu, beta, done);
    }
    /* Larger than any buffer allocated through this backend: convert and
     * multiply in row blocks that fit the scratch; bias and activation are
     * left to the caller's pass. */
    cache_forget(c);
    const size_t rows_fit = c->scratch_bytes / ((size_t)K * 2);
    const int mc = rows_fit > (size_t)M ? M : (int)rows_fit;
    if (mc < 1)
        return fail_msg(c, __FILE__, __LINE__,
                        "matmul: K=%d exceeds the conversion scratch (%zu bytes)", K,
                        c->scratch_bytes);
    for (int m0 = 0; m0 < M; m0 += mc) {
        const int mm = M - m0 < mc ? M - m0 : mc;
        CK_LAUNCH(c, k_convert(c->scratch, c->half, x + (size_t)m0 * K, (size_t)mm * K, c->stream),
                  "matmul input conversion");
        c->conversions++;
        unsigned unused = 0;
        if (gemm(c, y + (size_t)m0 * N, c->scratch, w, nullptr, mm, N, K, false, beta, &unused))
            return -1;
    }
    return 0;
}

int cu_matmul(prism_backend *be, float *y, const float *x, const void *w, const float *bias, int M,
              int N, int K, prism_act act)
{
    cuda_impl *c = impl_of(be);
    if (M < 0 || N < 0 || K < 0)
        return fail_msg(c, __FILE__, __LINE__, "matmul: negative shape M=%d N=%d K=%d", M, N, K);
    if (M == 0 || N == 0)
        return 0;
    ENTER(c);
    /* gelu_tanh goes into cuBLASLt's GELU epilogue (the same tanh form, in
     * float32 after the float32 sums) on BF16/F16 weights, whose operand
     * rounding (2^-8, 2^-11 relative) dwarfs any difference in how the
     * epilogue evaluates it. F32 weights keep the exact path: our kernel,
     * within ~1e-7 of the reference. */
    const bool gelu = act == PRISM_ACT_GELU_TANH && c->half != HALF_NONE;
    unsigned done = 0;
    if (matmul_product(c, y, x, w, bias, M, N, K, gelu, 0.0f, &done))
        return -1;
    const bool need_bias = bias && !(done & DONE_BIAS);
    const prism_act rest = done & DONE_GELU ? PRISM_ACT_NONE : act;
    if (need_bias || rest != PRISM_ACT_NONE) {
        /* With an activation the output is usually the next GEMM's input
         * (mlp.fc1 → fc2): write its converted copy in the same pass. */
        void *sh = rest != PRISM_ACT_NONE ? shadow_for(c, (size_t)M * N) : nullptr;
        if (sh)
            cache_forget(c); /* the scratch is about to change */
        CK_LAUNCH(c, k_bias_act(y, need_bias ? bias : nullptr, (size_t)M, N, rest, sh,
                                sh ? c->half : HALF_NONE, c->stream),
                  "matmul bias/activation");
        if (sh)
            cache_set(c, y, (size_t)M * N);
    }
    return 0;
}

/* y = x·wᵀ + bias + r as one GEMM with beta = 1 onto y = r (copied there
 * first unless y is r) and the bias in the BIAS epilogue: the residual
 * stream is read and written once, inside the GEMM. Where Lt has no plan,
 * cublasGemmEx with beta = 1 and the bias in one pass after. */
int cu_matmul_residual(prism_backend *be, float *y, const float *x, const void *w,
                       const float *bias, const float *r, int M, int N, int K)
{
    cuda_impl *c = impl_of(be);
    if (M < 0 || N < 0 || K < 0)
        return fail_msg(c, __FILE__, __LINE__, "matmul_residual: negative shape M=%d N=%d K=%d",
                        M, N, K);
    if (M == 0 || N == 0)
        return 0;
    ENTER(c);
    const size_t ybytes = (size_t)M * N * sizeof(float);
    cache_forget_overlap(c, y, ybytes);
    if (y != r)
        CK_CUDA(c, cudaMemcpyAsync(y, r, ybytes, cudaMemcpyDeviceToDevice, c->stream));
    unsigned done = 0;
    if (matmul_product(c, y, x, w, bias, M, N, K, false, 1.0f, &done))
        return -1;
    if (bias && !(done & DONE_BIAS))
        CK_LAUNCH(c, k_bias_act(y, bias, (size_t)M, N, PRISM_ACT_NONE, nullptr, HALF_NONE,
                                c->stream),
                  "matmul_residual bias");
    return 0;
}

int cu_layernorm(prism_backend *be, float *y, const float *x, const float *g, const float *b,
                 int rows, int cols, float eps)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    void *sh = rows > 0 && cols > 0 ? shadow_for(c, (size_t)rows * cols) : nullptr;
    CK_LAUNCH(c, k_layernorm(y, x, g, b, rows, cols, eps, sh, sh ? c->half : HALF_NONE, c->stream),
              "layernorm");
    if (sh)
        cache_set(c, y, (size_t)rows * cols);
    return 0;
}

int cu_rmsnorm(prism_backend *be, float *y, const float *x, const float *g, int rows, int cols,
               float eps)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    /* T5/UL2's and Gemma's norms: q/k/v's and the FFN's input */
    void *sh = rows > 0 && cols > 0 ? shadow_for(c, (size_t)rows * cols) : nullptr;
    CK_LAUNCH(c, k_rmsnorm(y, x, g, rows, cols, eps, sh, sh ? c->half : HALF_NONE, c->stream),
              "rmsnorm");
    if (sh)
        cache_set(c, y, (size_t)rows * cols);
    return 0;
}

int cu_add(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_add(y, a, b, n, c->stream), "add");
    return 0;
}

int cu_mul(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    /* gated FFNs (T5's gated-GELU, Gemma's gate · up): the down
     * projection's input */
    void *sh = shadow_for(c, n);
    CK_LAUNCH(c, k_mul(y, a, b, n, sh, sh ? c->half : HALF_NONE, c->stream), "mul");
    if (sh)
        cache_set(c, y, n);
    return 0;
}

int cu_activate(prism_backend *be, float *x, size_t n, prism_act act)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_activate(x, n, act, c->stream), "activate");
    return 0;
}

int cu_softmax(prism_backend *be, float *x, int rows, int cols)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_softmax(x, rows, cols, c->stream), "softmax");
    return 0;
}

int cu_attention(prism_backend *be, float *out, const float *q, const float *k, const float *v,
                 const prism_attn_desc *a)
{
    cuda_impl *c = impl_of(be);
    if (a->d < 1 || a->d > CUDA_ATTN_MAX_D)
        return fail_msg(c, __FILE__, __LINE__,
                        "attention: head dimension d=%d is outside [1, %d] for the CUDA kernel",
                        a->d, CUDA_ATTN_MAX_D);
    if (a->B > 65535 || a->H > 65535 || a->B < 0 || a->H < 0 || a->Tq < 0 || a->Tk < 0)
        return fail_msg(c, __FILE__, __LINE__, "attention: B=%d H=%d Tq=%d Tk=%d out of range",
                        a->B, a->H, a->Tq, a->Tk);
    ENTER(c);
    cache_forget(c);
    /* Rows b·Tq + i of width H·d, contiguous: out_proj's input. */
    const int width = a->H * a->d;
    const bool contiguous = a->o_stride == width && (a->B == 1 || a->o_bstride == (int64_t)a->Tq * width);
    void *sh = contiguous ? shadow_for(c, (size_t)a->B * a->Tq * width) : nullptr;
    /* Tensor cores when the backend rounds to a half type anyway and the
     * head is wide enough to fill the 16-wide MMA steps; float32 otherwise. */
    const int tc = c->attn_path != PRISM_CUDA_ATTN_SIMT && c->half != HALF_NONE && a->d >= 16 &&
                           a->d <= 128 && !(a->softcap > 0)
                       ? c->half : HALF_NONE;
    const int flash = c->attn_path == PRISM_CUDA_ATTN_AUTO;
    CK_LAUNCH(c, k_attention(out, q, k, v, a, sh, sh ? c->half : HALF_NONE, tc, flash, c->stream),
              "attention");
    if (sh)
        cache_set(c, out, (size_t)a->B * a->Tq * width);
    return 0;
}

int cu_add_layernorm(prism_backend *be, float *x, const float *h, float *y, const float *g,
                     const float *b, int rows, int cols, float eps)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    void *sh = rows > 0 && cols > 0 ? shadow_for(c, (size_t)rows * cols) : nullptr;
    CK_LAUNCH(c, k_add_layernorm(x, h, y, g, b, rows, cols, eps, sh, sh ? c->half : HALF_NONE,
                                 c->stream),
              "add_layernorm");
    if (sh)
        cache_set(c, y, (size_t)rows * cols);
    return 0;
}

int cu_patchify(prism_backend *be, float *out, const float *img, int B, int C, int S, int P)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_patchify(out, img, B, C, S, P, c->stream), "patchify");
    return 0;
}

int cu_embedding(prism_backend *be, float *out, const float *table, const int32_t *ids, int n,
                 int dim)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_embedding(out, table, ids, n, dim, c->stream), "embedding");
    return 0;
}

int cu_add_rows(prism_backend *be, float *y, const float *rows, int n_rows, int period, int cols)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_add_rows(y, rows, n_rows, period, cols, c->stream), "add_rows");
    return 0;
}

int cu_gather_rows(prism_backend *be, float *out, const float *x, int n, int64_t stride,
                   int64_t offset, int cols)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_gather_rows(out, x, n, stride, offset, cols, c->stream), "gather_rows");
    return 0;
}

int cu_l2_normalize(prism_backend *be, float *x, int rows, int cols)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_l2_normalize(x, rows, cols, c->stream), "l2_normalize");
    return 0;
}

int cu_rel_bias(prism_backend *be, float *out, const float *weight, const int32_t *buckets,
                int rel0, int H, int Tq, int Tk, int q_offset)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_rel_bias(out, weight, buckets, rel0, H, Tq, Tk, q_offset, c->stream), "rel_bias");
    return 0;
}

int cu_topk(prism_backend *be, int32_t *idx, float *val, const float *x, int rows, int cols, int k,
            bool log_softmax)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_topk(idx, val, x, rows, cols, k, log_softmax ? 1 : 0, c->stream), "topk");
    return 0;
}

int cu_copy_rows(prism_backend *be, float *dst, int64_t dst_stride, const float *src,
                 int64_t src_stride, int n, int cols)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    cache_forget(c);
    CK_LAUNCH(c, k_copy_rows(dst, dst_stride, src, src_stride, n, cols, c->stream), "copy_rows");
    return 0;
}

void cu_describe_error(prism_backend *be, prism_error *err)
{
    const cuda_impl *c = impl_of(be);
    prism_errorf(err, "%s", c->err);
    err->code = c->err_code;
}

/* From any thread: records no error (a failure is cleared from the calling
 * thread's last-error slot, so that no later call there is blamed for it). */
int cu_memory_info(prism_backend *be, prism_backend_memory *m)
{
    cuda_impl *c = impl_of(be);
    *m = prism_backend_memory{};
    size_t fr = 0, tot = 0;
    if (cudaSetDevice(c->device) != cudaSuccess || cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    m->held = __atomic_load_n(&c->bytes_in_use, __ATOMIC_RELAXED);
    m->device_total = tot;
    m->device_free = fr;
    return 0;
}

const prism_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cu_destroy,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .synchronize = cu_synchronize,
    .weight_import = cu_weight_import,
#define PRISM_OP(name, params, args) .name = cu_##name,
#include "backend_ops.def"
    .describe_error = cu_describe_error,
    .memory_info = cu_memory_info,
};

/* Releases everything; safe on a partly built backend. */
void impl_release(cuda_impl *c)
{
    if (cudaSetDevice(c->device) != cudaSuccess)
        (void)cudaGetLastError();
    if (c->stream && cudaStreamSynchronize(c->stream) != cudaSuccess)
        (void)cudaGetLastError();
    for (int i = 0; i < PLAN_CAP; i++)
        plan_release(&c->plans[i]);
    for (size_t i = 0; i < c->n_allocs; i++)
        if (cudaFree(c->allocs[i].p) != cudaSuccess)
            (void)cudaGetLastError();
    free(c->allocs);
    if (c->lt)
        cublasLtDestroy(c->lt);
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    free(c);
}

void cu_destroy(prism_backend *be)
{
    if (!be)
        return;
    impl_release(impl_of(be));
    free(be);
}

/* Everything create needs beyond the structs; -1 with c->err on failure. */
int impl_init(cuda_impl *c, size_t arena_hint)
{
    CK_CUDA(c, cudaSetDevice(c->device));
    cudaDeviceProp prop;
    CK_CUDA(c, cudaGetDeviceProperties(&prop, c->device));
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    c->cc = prop.major * 10 + prop.minor;
    if (c->wdt == PRISM_DT_BF16 && c->cc < 80)
        return fail_msg(c, __FILE__, __LINE__,
                        "device %d (%s, compute capability %d.%d) has no BF16 tensor cores; "
                        "use F16 or F32 weights",
                        c->device, c->name, prop.major, prop.minor);
    CK_CUDA(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CK_BLAS(c, cublasCreate(&c->blas));
    CK_BLAS(c, cublasSetStream(c->blas, c->stream));
    CK_BLAS(c, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)); /* no TF32 for F32 */
    CK_BLAS(c, cublasLtCreate(&c->lt));
    c->ws = dev_malloc(c, WORKSPACE_BYTES, "GEMM workspace");
    if (!c->ws)
        return -1;
    c->ws_bytes = WORKSPACE_BYTES;
    CK_BLAS(c, cublasSetWorkspace(c->blas, c->ws, c->ws_bytes));
    if (scratch_reserve(c, arena_hint > MIN_SCRATCH_BYTES ? arena_hint : MIN_SCRATCH_BYTES))
        return -1;
    /* One launch now, so a build without code for this GPU ("no kernel
     * image is available") fails here with a clear message. */
    CK_LAUNCH(c, k_fill_pattern(c->ws, HALF_NONE, 64, 1, c->stream), "probe");
    CK_CUDA(c, cudaStreamSynchronize(c->stream));
    return 0;
}

} /* namespace */

/* ---- public API ----------------------------------------------------------------------------- */

extern "C" int prism_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n < 0 ? 0 : n;
}

extern "C" prism_backend *prism_cuda_backend_create(int device, int weight_dtype, size_t arena_hint,
                                                    prism_error *err)
{
    if (weight_dtype != PRISM_DT_BF16 && weight_dtype != PRISM_DT_F16 &&
        weight_dtype != PRISM_DT_F32) {
        prism_errorf(err, "cuda: weight dtype %d is not BF16, F16 or F32", weight_dtype);
        return nullptr;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        prism_errorf(err, "cuda: no usable GPU: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        return nullptr;
    }
    if (device < 0 || device >= count) {
        prism_errorf(err, "cuda: device %d does not exist (%d device%s found)", device, count,
                     count == 1 ? "" : "s");
        return nullptr;
    }
    prism_backend *be = static_cast<prism_backend *>(calloc(1, sizeof *be));
    cuda_impl *c = static_cast<cuda_impl *>(calloc(1, sizeof *c));
    if (!be || !c) {
        free(be);
        free(c);
        prism_errorf(err, "cuda: out of host memory");
        return nullptr;
    }
    c->be = be;
    c->device = device;
    c->wdt = weight_dtype;
    c->half = half_kind(weight_dtype);
    c->cuda_wdt = cuda_type(weight_dtype);
    c->gemm_path = PRISM_CUDA_GEMM_AUTO;
    c->attn_path = PRISM_CUDA_ATTN_AUTO;
    {
        /* PRISM_CUDA_ATTENTION=tiled|simt: a default path other than AUTO
         * (to rule a kernel out on a machine without rebuilding) */
        const char *ev = getenv("PRISM_CUDA_ATTENTION");
        if (ev && strcmp(ev, "tiled") == 0)
            c->attn_path = PRISM_CUDA_ATTN_TILED;
        else if (ev && strcmp(ev, "simt") == 0)
            c->attn_path = PRISM_CUDA_ATTN_SIMT;
    }
    be->ops = &cuda_ops;
    be->n_threads = 1;
    be->impl = c;
    if (impl_init(c, arena_hint)) {
        prism_errorf(err, "cuda: %s", c->err);
        impl_release(c);
        free(be);
        return nullptr;
    }
    return be;
}

extern "C" const char *prism_cuda_last_error(const prism_backend *be)
{
    return static_cast<const cuda_impl *>(be->impl)->err;
}

extern "C" const char *prism_cuda_device_name(const prism_backend *be)
{
    return static_cast<const cuda_impl *>(be->impl)->name;
}

extern "C" int prism_cuda_compute_capability(const prism_backend *be)
{
    return static_cast<const cuda_impl *>(be->impl)->cc;
}

extern "C" int prism_cuda_weight_dtype(const prism_backend *be)
{
    return static_cast<const cuda_impl *>(be->impl)->wdt;
}

extern "C" unsigned long long prism_cuda_conversions(const prism_backend *be)
{
    return static_cast<const cuda_impl *>(be->impl)->conversions;
}

extern "C" size_t prism_cuda_bytes_in_use(const prism_backend *be)
{
    return __atomic_load_n(&static_cast<const cuda_impl *>(be->impl)->bytes_in_use,
                           __ATOMIC_RELAXED);
}

extern "C" int prism_cuda_mem_info(prism_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    cuda_impl *c = impl_of(be);
    ENTER(c);
    CK_CUDA(c, cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

extern "C" void prism_cuda_set_gemm_path(prism_backend *be, int path)
{
    impl_of(be)->gemm_path = path == PRISM_CUDA_GEMM_GEMMEX ? PRISM_CUDA_GEMM_GEMMEX
                                                             : PRISM_CUDA_GEMM_AUTO;
}

extern "C" void prism_cuda_set_attention_path(prism_backend *be, int path)
{
    impl_of(be)->attn_path = path == PRISM_CUDA_ATTN_SIMT    ? PRISM_CUDA_ATTN_SIMT
                             : path == PRISM_CUDA_ATTN_TILED ? PRISM_CUDA_ATTN_TILED
                                                             : PRISM_CUDA_ATTN_AUTO;
}

namespace {

int gemm_rate(cuda_impl *c, int M, int N, int K, double min_seconds, void *x, void *w, float *y,
              cudaEvent_t t0, cudaEvent_t t1, double *best)
{
    const int kind = c->half;
    CK_LAUNCH(c, k_fill_pattern(x, kind, (size_t)M * K, 0x1234u, c->stream), "gemm-rate fill");
    CK_LAUNCH(c, k_fill_pattern(w, kind, (size_t)N * K, 0x9876u, c->stream), "gemm-rate fill");
    unsigned bd = 0;
    for (int i = 0; i < 3; i++) /* warm-up: plan, clocks */
        if (gemm(c, y, x, w, nullptr, M, N, K, false, 0.0f, &bd))
            return -1;
    CK_CUDA(c, cudaStreamSynchronize(c->stream));
    const double flops = 2.0 * M * N * K;
    int reps = 1;
    double spent = 0;
    *best = 0;
    for (int round = 0; round < 1000 && (round < 3 || spent < min_seconds); round++) {
        CK_CUDA(c, cudaEventRecord(t0, c->stream));
        for (int i = 0; i < reps; i++)
            if (gemm(c, y, x, w, nullptr, M, N, K, false, 0.0f, &bd))
                return -1;
        CK_CUDA(c, cudaEventRecord(t1, c->stream));
        CK_CUDA(c, cudaEventSynchronize(t1));
        float ms = 0;
        CK_CUDA(c, cudaEventElapsedTime(&ms, t0, t1));
        spent += ms * 1e-3;
        const double rate = flops * reps / (ms * 1e-3) * 1e-12;
        if (rate > *best)
            *best = rate;
        if (ms < 20 && reps < (1 << 16))
            reps *= 2; /* rounds of at least ~20 ms: event resolution is ~0.5 µs */
    }
    return 0;
}

} /* namespace */

extern "C" double prism_cuda_gemm_tflops(prism_backend *be, int M, int N, int K, double min_seconds)
{
    cuda_impl *c = impl_of(be);
    if (M < 1 || N < 1 || K < 1) {
        fail_msg(c, __FILE__, __LINE__, "gemm_tflops: bad shape %dx%dx%d", M, N, K);
        return -1;
    }
    if (cudaSetDevice(c->device) != cudaSuccess) {
        fail_cuda(c, __FILE__, __LINE__, "cudaSetDevice", cudaGetLastError());
        return -1;
    }
    cache_forget(c);
    const size_t el = c->half == HALF_NONE ? 4 : 2;
    void *x = dev_malloc(c, (size_t)M * K * el, "gemm_tflops x");
    void *w = x ? dev_malloc(c, (size_t)N * K * el, "gemm_tflops w") : nullptr;
    float *y = w ? static_cast<float *>(dev_malloc(c, (size_t)M * N * 4, "gemm_tflops y")) : nullptr;
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    double best = -1;
    if (y && cudaEventCreate(&t0) == cudaSuccess && cudaEventCreate(&t1) == cudaSuccess) {
        if (gemm_rate(c, M, N, K, min_seconds, x, w, y, t0, t1, &best))
            best = -1;
    } else if (y) {
        fail_cuda(c, __FILE__, __LINE__, "cudaEventCreate", cudaGetLastError());
    }
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    char keep[sizeof c->err];
    memcpy(keep, c->err, sizeof keep);
    if (cudaStreamSynchronize(c->stream) != cudaSuccess)
        (void)cudaGetLastError();
    if (y)
        dev_free(c, y);
    if (w)
        dev_free(c, w);
    if (x)
        dev_free(c, x);
    memcpy(c->err, keep, sizeof keep);
    return best;
}

extern "C" void *prism_cuda_host_alloc(prism_backend *be, size_t bytes)
{
    cuda_impl *c = impl_of(be);
    void *p = nullptr;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        fail_cuda(c, __FILE__, __LINE__, "cudaMallocHost", e);
        return nullptr;
    }
    return p;
}

extern "C" void prism_cuda_host_free(prism_backend *be, void *p)
{
    cuda_impl *c = impl_of(be);
    if (!p)
        return;
    cudaError_t e = cudaFreeHost(p);
    if (e != cudaSuccess)
        fail_cuda(c, __FILE__, __LINE__, "cudaFreeHost", e);
}
