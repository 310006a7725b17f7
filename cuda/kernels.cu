/* kernels.cu - the CUDA backend's own kernels: everything but the GEMMs.
 *
 * Each kernel mirrors one reference loop of engine/backend_cpu_ref.c and
 * keeps its special cases (an all -inf softmax row becomes zeros, a zero
 * row stays zero under L2 normalisation, NaN and Inf propagate the same
 * way); tests/test_cuda_parity.c holds them to it. Arithmetic is float32
 * with accurate libm calls (expf, erfcf; no --use_fast_math); the only
 * double-precision sums are L2 normalisation's, as cheap as they are rare.
 *
 * Layout of the file: helpers (activations, reductions, half stores), then
 * elementwise kernels, row kernels (norms, softmax), data movement, and the
 * fused attention kernel with its design notes.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "cuda_kernels.h"

/* prism_dtype values (safetensors.h) used by k_convert_raw; kept equal by
 * a static check in backend_cuda.cu. */
#define RAW_F32 0
#define RAW_F16 1
#define RAW_BF16 2

namespace {

constexpr int EW_THREADS = 256;   /* elementwise blocks */
constexpr int EW_MAX_BLOCKS = 8192; /* grid-stride beyond this */
constexpr int ROW_THREADS = 128;  /* row kernels with the row in registers */
constexpr int ROW_THREADS_BIG = 256; /* row kernels that re-read long rows */

unsigned ew_blocks(size_t n)
{
    size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    if (b < 1)
        b = 1;
    return (unsigned)(b < (size_t)EW_MAX_BLOCKS ? b : (size_t)EW_MAX_BLOCKS);
}

bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

/* ---- activations -------------------------------------------------------- */

/* The reference formulas (cpu_act_ref), written so float32 keeps its
 * relative accuracy where the textbook form cancels: 0.5·(1 + tanh(u)) is
 * sigmoid(2u), and 1 + erf(z) is erfc(-z). */
__device__ __forceinline__ float act_apply(float x, int act)
{
    switch (act) {
    case PRISM_ACT_GELU_TANH: {
        const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return x / (1.0f + expf(-2.0f * u));
    }
    case PRISM_ACT_GELU_ERF:
        return 0.5f * x * erfcf(-x * 0.7071067811865476f);
    case PRISM_ACT_RELU:
        return x > 0.0f ? x : 0.0f; /* NaN → 0, as the reference's comparison */
    case PRISM_ACT_SILU:
        return x / (1.0f + expf(-x));
    default:
        return x;
    }
}

/* ---- half-precision stores ---------------------------------------------- */

__device__ __forceinline__ void store_half(void *dst, size_t i, float v, int kind)
{
    if (kind == HALF_BF16)
        static_cast<__nv_bfloat16 *>(dst)[i] = __float2bfloat16_rn(v);
    else if (kind == HALF_F16)
        static_cast<__half *>(dst)[i] = __float2half_rn(v);
}

/* Four consecutive values at i (i % 4 == 0, dst 8-byte aligned). */
__device__ __forceinline__ void store_half4(void *dst, size_t i, float4 v, int kind)
{
    if (kind == HALF_BF16) {
        __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(static_cast<__nv_bfloat16 *>(dst) + i);
        p[0] = __floats2bfloat162_rn(v.x, v.y);
        p[1] = __floats2bfloat162_rn(v.z, v.w);
    } else if (kind == HALF_F16) {
        __half2 *p = reinterpret_cast<__half2 *>(static_cast<__half *>(dst) + i);
        p[0] = __floats2half2_rn(v.x, v.y);
        p[1] = __floats2half2_rn(v.z, v.w);
    }
}

/* ---- reductions ---------------------------------------------------------- */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* fmaxf ignores NaN, as the reference's `s > mx ? s : mx` does. */
__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide reductions; every thread gets the result. `red` is shared
 * scratch of 32 entries; the leading barrier lets callers reuse it. */
__device__ float block_sum(float v, float *red)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        red[w] = v;
    __syncthreads();
    if (w == 0) {
        float t = lane < nw ? red[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0)
            red[0] = t;
    }
    __syncthreads();
    return red[0];
}

__device__ double block_sum_d(double v, double *red)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0)
        red[w] = v;
    __syncthreads();
    if (w == 0) {
        double t = lane < nw ? red[lane] : 0.0;
        t = warp_sum_d(t);
        if (lane == 0)
            red[0] = t;
    }
    __syncthreads();
    return red[0];
}

__device__ float block_max(float v, float *red)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        red[w] = v;
    __syncthreads();
    if (w == 0) {
        float t = lane < nw ? red[lane] : -INFINITY;
        t = warp_max(t);
        if (lane == 0)
            red[0] = t;
    }
    __syncthreads();
    return red[0];
}

/* ---- elementwise ----------------------------------------------------------- */

enum ew_op { EW_ADD, EW_MUL };

template <int OP>
__device__ __forceinline__ float ew_apply(float a, float b)
{
    return OP == EW_ADD ? a + b : a * b;
}

/* y may alias a or b: each element is read and written by one thread.
 * shadow (kind != HALF_NONE) gets the result in half precision too. */
template <int OP>
__global__ void ew_kernel(float *y, const float *a, const float *b, size_t n, void *shadow,
                          int kind)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float r = ew_apply<OP>(a[i], b[i]);
        y[i] = r;
        if (kind != HALF_NONE)
            store_half(shadow, i, r, kind);
    }
}

/* All pointers 16-byte aligned (shadow 8-byte): float4 for the body,
 * scalars for the tail. */
template <int OP>
__global__ void ew_kernel4(float *y, const float *a, const float *b, size_t n, void *shadow,
                           int kind)
{
    const size_t n4 = n / 4, stride = (size_t)gridDim.x * blockDim.x;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (size_t i = tid; i < n4; i += stride) {
        const float4 va = reinterpret_cast<const float4 *>(a)[i];
        const float4 vb = reinterpret_cast<const float4 *>(b)[i];
        float4 r;
        r.x = ew_apply<OP>(va.x, vb.x);
        r.y = ew_apply<OP>(va.y, vb.y);
        r.z = ew_apply<OP>(va.z, vb.z);
        r.w = ew_apply<OP>(va.w, vb.w);
        reinterpret_cast<float4 *>(y)[i] = r;
        if (kind != HALF_NONE)
            store_half4(shadow, i * 4, r, kind);
    }
    const size_t t = n4 * 4 + tid;
    if (t < n) {
        const float r = ew_apply<OP>(a[t], b[t]);
        y[t] = r;
        if (kind != HALF_NONE)
            store_half(shadow, t, r, kind);
    }
}

template <int OP>
cudaError_t ew_launch(float *y, const float *a, const float *b, size_t n, void *shadow, int kind,
                      cudaStream_t s)
{
    if (n == 0)
        return cudaSuccess;
    if (aligned16(y) && aligned16(a) && aligned16(b) &&
        (kind == HALF_NONE || ((uintptr_t)shadow & 7u) == 0))
        ew_kernel4<OP><<<ew_blocks(n / 4 + 1), EW_THREADS, 0, s>>>(y, a, b, n, shadow, kind);
    else
        ew_kernel<OP><<<ew_blocks(n), EW_THREADS, 0, s>>>(y, a, b, n, shadow, kind);
    return cudaGetLastError();
}

__global__ void activate_kernel(float *x, size_t n, int act)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = act_apply(x[i], act);
}

/* y[m, col] = act(y + bias[col]) with an optional half copy. Scalar form
 * for any shape and alignment. */
__global__ void bias_act_kernel(float *y, const float *bias, size_t total, int N, int act,
                                void *shadow, int kind)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float v = y[i];
        if (bias)
            v += bias[i % (size_t)N];
        v = act_apply(v, act);
        y[i] = v;
        if (kind != HALF_NONE)
            store_half(shadow, i, v, kind);
    }
}

/* N % 4 == 0, y and bias 16-byte aligned, shadow 8-byte aligned. */
__global__ void bias_act_kernel4(float *y, const float *bias, size_t total, int N, int act,
                                 void *shadow, int kind)
{
    const size_t n4 = total / 4, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 v = reinterpret_cast<float4 *>(y)[i];
        if (bias) {
            const float4 bb = reinterpret_cast<const float4 *>(bias)[(i * 4 % (size_t)N) / 4];
            v.x += bb.x;
            v.y += bb.y;
            v.z += bb.z;
            v.w += bb.w;
        }
        v.x = act_apply(v.x, act);
        v.y = act_apply(v.y, act);
        v.z = act_apply(v.z, act);
        v.w = act_apply(v.w, act);
        reinterpret_cast<float4 *>(y)[i] = v;
        if (kind != HALF_NONE)
            store_half4(shadow, i * 4, v, kind);
    }
}

__global__ void convert_kernel(void *dst, int kind, const float *src, size_t n)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        store_half(dst, i, src[i], kind);
}

/* src 16-byte aligned, dst 8-byte aligned; n4 groups of four, then the tail. */
__global__ void convert_kernel4(void *dst, int kind, const float *src, size_t n)
{
    const size_t n4 = n / 4, stride = (size_t)gridDim.x * blockDim.x;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (size_t i = tid; i < n4; i += stride)
        store_half4(dst, i * 4, reinterpret_cast<const float4 *>(src)[i], kind);
    const size_t t = n4 * 4 + tid;
    if (t < n)
        store_half(dst, t, src[t], kind);
}

__device__ __forceinline__ float raw_to_f32(const void *src, size_t i, int dt)
{
    if (dt == RAW_F32)
        return static_cast<const float *>(src)[i];
    if (dt == RAW_BF16) {
        const unsigned short h = static_cast<const unsigned short *>(src)[i];
        return __uint_as_float((unsigned)h << 16); /* exact */
    }
    __half_raw r;
    r.x = static_cast<const unsigned short *>(src)[i];
    return __half2float(__half(r)); /* exact */
}

__global__ void convert_raw_kernel(void *dst, int dst_kind, const void *src, int src_dt, size_t n)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = raw_to_f32(src, i, src_dt);
        if (dst_kind == HALF_NONE)
            static_cast<float *>(dst)[i] = v;
        else
            store_half(dst, i, v, dst_kind);
    }
}

__global__ void fill_pattern_kernel(void *dst, int kind, size_t n, uint32_t seed)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        const float v = (float)(h & 0xffffu) / 32768.0f - 1.0f;
        if (kind == HALF_NONE)
            static_cast<float *>(dst)[i] = v;
        else
            store_half(dst, i, v, kind);
    }
}

/* ---- row kernels ------------------------------------------------------------ *
 * One block per row. VPT > 0: the row is held in registers, VPT values per
 * thread (cols ≤ VPT·ROW_THREADS); VPT == 0: any length, re-reading the row
 * from global memory (L1/L2) in each pass. y may alias x: every read of a
 * pass completes (block barrier in the reduction) before the final pass
 * writes, and the final pass reads and writes each element in one thread. */

/* res != NULL (add_layernorm): x += res first, written back through xw
 * (== x), each element by the thread that reads it; y may alias x or res. */
template <int VPT>
__global__ void layernorm_kernel(float *y, const float *x, const float *g, const float *b,
                                 int cols, float eps, void *shadow, int kind, const float *res,
                                 float *xw)
{
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const float *xr = x + row * cols;
    float *yr = y + row * cols;
    const int nt = blockDim.x;
    if (VPT > 0) {
        float v[VPT > 0 ? VPT : 1];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            v[k] = c < cols ? xr[c] : 0.0f;
            if (res && c < cols) {
                v[k] = v[k] + res[row * cols + c];
                xw[row * cols + c] = v[k];
            }
            s += v[k];
        }
        const float mean = block_sum(s, red) / (float)cols;
        float q = 0.0f;
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            const float dlt = v[k] - mean;
            q += c < cols ? dlt * dlt : 0.0f;
        }
        const float inv = 1.0f / sqrtf(block_sum(q, red) / (float)cols + eps);
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            if (c < cols) {
                const float o = (v[k] - mean) * inv * g[c] + (b ? b[c] : 0.0f);
                yr[c] = o;
                if (kind != HALF_NONE)
                    store_half(shadow, row * cols + c, o, kind);
            }
        }
    } else {
        float s = 0.0f;
        for (int c = threadIdx.x; c < cols; c += nt) {
            float xv = xr[c];
            if (res) {
                xv = xv + res[row * cols + c];
                xw[row * cols + c] = xv; /* read back below by this thread only */
            }
            s += xv;
        }
        const float mean = block_sum(s, red) / (float)cols;
        float q = 0.0f;
        for (int c = threadIdx.x; c < cols; c += nt) {
            const float dlt = xr[c] - mean;
            q += dlt * dlt;
        }
        const float inv = 1.0f / sqrtf(block_sum(q, red) / (float)cols + eps);
        for (int c = threadIdx.x; c < cols; c += nt) {
            const float o = (xr[c] - mean) * inv * g[c] + (b ? b[c] : 0.0f);
            yr[c] = o;
            if (kind != HALF_NONE)
                store_half(shadow, row * cols + c, o, kind);
        }
    }
}

template <int VPT>
__global__ void rmsnorm_kernel(float *y, const float *x, const float *g, int cols, float eps,
                               void *shadow, int kind)
{
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const float *xr = x + row * cols;
    float *yr = y + row * cols;
    const int nt = blockDim.x;
    if (VPT > 0) {
        float v[VPT > 0 ? VPT : 1];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            v[k] = c < cols ? xr[c] : 0.0f;
            s += v[k] * v[k];
        }
        const float inv = 1.0f / sqrtf(block_sum(s, red) / (float)cols + eps);
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            if (c < cols) {
                const float o = v[k] * inv * g[c];
                yr[c] = o;
                if (kind != HALF_NONE)
                    store_half(shadow, row * cols + c, o, kind);
            }
        }
    } else {
        float s = 0.0f;
        for (int c = threadIdx.x; c < cols; c += nt)
            s += xr[c] * xr[c];
        const float inv = 1.0f / sqrtf(block_sum(s, red) / (float)cols + eps);
        for (int c = threadIdx.x; c < cols; c += nt) {
            const float o = xr[c] * inv * g[c];
            yr[c] = o;
            if (kind != HALF_NONE)
                store_half(shadow, row * cols + c, o, kind);
        }
    }
}

/* Sum of squares in double, as the reference: no overflow for any float
 * row, and the scale is exact to float rounding. */
__global__ void l2_normalize_kernel(float *x, int cols)
{
    __shared__ double red[32];
    float *xr = x + (size_t)blockIdx.x * cols;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        s += (double)xr[c] * xr[c];
    s = block_sum_d(s, red);
    const double inv = s > 0 ? 1.0 / sqrt(s) : 0.0; /* NaN row: 0, as the reference */
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        xr[c] = (float)(xr[c] * inv);
}

template <int VPT>
__global__ void softmax_kernel(float *x, int cols)
{
    __shared__ float red[32];
    float *xr = x + (size_t)blockIdx.x * cols;
    const int nt = blockDim.x;
    if (VPT > 0) {
        float v[VPT > 0 ? VPT : 1];
        float mx = -INFINITY;
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            v[k] = c < cols ? xr[c] : -INFINITY;
            mx = fmaxf(mx, v[k]);
        }
        mx = block_max(mx, red);
        if (mx == -INFINITY) { /* every entry -inf (or NaN): zeros, as the reference */
#pragma unroll
            for (int k = 0; k < VPT; k++) {
                const int c = threadIdx.x + k * nt;
                if (c < cols)
                    xr[c] = 0.0f;
            }
            return;
        }
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            v[k] = c < cols ? expf(v[k] - mx) : 0.0f;
            s += v[k];
        }
        s = block_sum(s, red);
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int c = threadIdx.x + k * nt;
            if (c < cols)
                xr[c] = v[k] / s;
        }
    } else {
        float mx = -INFINITY;
        for (int c = threadIdx.x; c < cols; c += nt)
            mx = fmaxf(mx, xr[c]);
        mx = block_max(mx, red);
        if (mx == -INFINITY) {
            for (int c = threadIdx.x; c < cols; c += nt)
                xr[c] = 0.0f;
            return;
        }
        float s = 0.0f;
        for (int c = threadIdx.x; c < cols; c += nt)
            s += expf(xr[c] - mx);
        s = block_sum(s, red);
        for (int c = threadIdx.x; c < cols; c += nt)
            xr[c] = expf(xr[c] - mx) / s;
    }
}

/* Values per thread of the register-resident variant for a row of cols
 * (cols ≤ 16·ROW_THREADS), or 0 for the re-reading one. */
int row_vpt(int cols)
{
    const int per = (cols + ROW_THREADS - 1) / ROW_THREADS;
    if (per <= 1)
        return 1;
    if (per <= 2)
        return 2;
    if (per <= 4)
        return 4;
    if (per <= 8)
        return 8;
    if (per <= 16)
        return 16;
    return 0;
}

/* ---- data movement ----------------------------------------------------------- */

__global__ void patchify_kernel(float *out, const float *img, int B, int C, int S, int P)
{
    const int G = S / P, N = G * G, row = C * P * P;
    const size_t total = (size_t)B * N * row, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t bt = idx / row;
        const int rem = (int)(idx % row);
        const int c = rem / (P * P), py = (rem / P) % P, px = rem % P;
        const size_t b = bt / N;
        const int t = (int)(bt % N), gy = t / G, gx = t % G;
        out[idx] = img[((b * C + c) * S + (size_t)gy * P + py) * S + (size_t)gx * P + px];
    }
}

__global__ void embedding_kernel(float *out, const float *table, const int32_t *ids, int n, int dim)
{
    const size_t total = (size_t)n * dim, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t i = idx / dim, c = idx % dim;
        out[idx] = table[(size_t)ids[i] * dim + c];
    }
}

__global__ void add_rows_kernel(float *y, const float *rows, int n_rows, int period, int cols)
{
    const size_t total = (size_t)n_rows * cols, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t r = idx / cols, c = idx % cols;
        y[idx] += rows[(r % (size_t)period) * cols + c];
    }
}

__global__ void gather_rows_kernel(float *out, const float *x, int n, int64_t rstride,
                                   int64_t offset, int cols)
{
    const size_t total = (size_t)n * cols, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t i = idx / cols, c = idx % cols;
        out[idx] = x[((int64_t)i * rstride + offset) * cols + (int64_t)c];
    }
}

/* out[(h·Tq + i)·Tk + j] = weight[buckets[rel0 + j − (i + q_offset)]·H + h] */
__global__ void rel_bias_kernel(float *out, const float *weight, const int32_t *buckets, int rel0,
                                int H, int Tq, int Tk, int q_offset)
{
    const size_t total = (size_t)H * Tq * Tk, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int j = (int)(idx % Tk), i = (int)((idx / Tk) % Tq), h = (int)(idx / ((size_t)Tk * Tq));
        const int bucket = buckets[rel0 + j - (i + q_offset)];
        out[idx] = weight[(size_t)bucket * H + h];
    }
}

__global__ void copy_rows_kernel(float *dst, int64_t dst_stride, const float *src,
                                 int64_t src_stride, int n, int cols)
{
    const size_t total = (size_t)n * cols, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = (int64_t)(idx / cols), c = (int64_t)(idx % cols);
        dst[i * dst_stride + c] = src[i * src_stride + c];
    }
}

/* ---- top-k -------------------------------------------------------------------------- *
 * One block per row. The order is the reference's ranks_before: larger
 * value first, NaN after every number, equal values (and NaNs among
 * themselves) by lower column; it is total on (value, column), so the
 * i-th pick is the best column that ranks after the (i-1)-th pick. Each of
 * the k rounds scans the row (per thread, then a warp shuffle and a
 * shared-memory pass over the warps). The log-softmax normaliser is the
 * reference's: max ignoring NaN, Σ exp(x − max) in double, NaN when the row
 * holds a NaN. */

constexpr int TOPK_THREADS = 256;

__device__ __forceinline__ bool tk_before(float a, int ia, float b, int ib)
{
    if (isnan(a) || isnan(b))
        return isnan(b) && (!isnan(a) || ia < ib);
    return a > b || (a == b && ia < ib);
}

/* The better of (v, i) and (ov, oi); i < 0 is "none" and loses. */
__device__ __forceinline__ void tk_pick(float &v, int &i, float ov, int oi)
{
    if (oi >= 0 && (i < 0 || tk_before(ov, oi, v, i))) {
        v = ov;
        i = oi;
    }
}

__global__ void __launch_bounds__(TOPK_THREADS)
topk_kernel(int32_t *idx, float *val, const float *x, int cols, int k, int log_softmax)
{
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ double red[32];
    __shared__ float lmx[32];
    const float *xr = x + (size_t)blockIdx.x * cols;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    double lse = 0.0;
    if (val && log_softmax) {
        float mx = -INFINITY;
        int nan = 0;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            nan |= isnan(xr[c]);
            mx = fmaxf(mx, xr[c]);
        }
        nan = __syncthreads_or(nan);
        mx = block_max(mx, lmx);
        double s = 0.0;
        for (int c = threadIdx.x; c < cols; c += blockDim.x)
            s += exp((double)xr[c] - (double)mx);
        s = block_sum_d(s, red);
        lse = nan ? (double)NAN : (double)mx + log(s);
    }
    float pv = 0.0f;
    int pi = -1;
    for (int r = 0; r < k; r++) {
        float bv = 0.0f;
        int bi = -1;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float v = xr[c];
            if (pi >= 0 && !tk_before(pv, pi, v, c))
                continue;
            tk_pick(bv, bi, v, c);
        }
        for (int o = 16; o > 0; o >>= 1)
            tk_pick(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
        __syncthreads(); /* the previous round's readers are done with sv/si */
        if (lane == 0) {
            sv[w] = bv;
            si[w] = bi;
        }
        __syncthreads();
        bv = sv[0];
        bi = si[0];
        for (int q = 1; q < nw; q++)
            tk_pick(bv, bi, sv[q], si[q]);
        if (threadIdx.x == 0) {
            idx[(size_t)blockIdx.x * k + r] = bi;
            if (val)
                val[(size_t)blockIdx.x * k + r] =
                    log_softmax ? (float)((double)bv - lse) : bv;
        }
        pv = bv;
        pi = bi;
    }
}

/* ---- attention ------------------------------------------------------------------ *
 * One block of 128 threads = NQ queries of one (batch, head); G consecutive
 * lanes share a query, each holding DPL of its dimensions (DPL·G ≥ d, the
 * rest zero) of q and of the output accumulator in registers. Keys and
 * values stream through shared memory in tiles of KT rows; each lane's DPL
 * dims of a row sit in their own padded slot (DPL + 4 floats) so the G
 * lanes of a query read distinct banks with 16-byte loads, and lanes of
 * different queries read the same address (broadcast).
 *
 * Scores are produced KC at a time (a partial dot per lane, summed across
 * the G lanes by an xor butterfly, which leaves bitwise-equal sums in every
 * lane), then folded into a running max m, running sum l and accumulator o
 * (online softmax). Special cases follow the reference exactly:
 *   - m ignores NaN (fmaxf), like the reference's max; a NaN score makes
 *     its p NaN, so l and o turn NaN and the row ends NaN, as there;
 *   - a row whose every score is -inf (or NaN) ends with m == -inf and is
 *     written as zeros, as there;
 *   - while m is still -inf the exponent base is 0 (not -inf - -inf).
 * Causal: key j is visible to query i iff j ≤ i + (Tk - Tq). Keys past the
 * last visible one of the block's last query are not visited (the
 * reference would multiply their zero weight by v: only a NaN or Inf in v
 * at such a key could tell the difference). */

struct attn_args {
    int B, H, Tq, Tk, d;
    long long qs, ks, vs, os, qb, kb, vb, ob;
    float scale;
    float softcap; /* > 0: scores become softcap · tanh(score / softcap) (Gemma 2) */
    const float *bias, *mask;
    int causal;
    void *shadow;
    int kind;
};

constexpr int ATT_THREADS = 128;

template <int DPL, int G>
struct attn_cfg {
    static constexpr int NQ = ATT_THREADS / G;   /* queries per block */
    static constexpr int DMAX = DPL * G;         /* dims held per query */
    static constexpr int PART = DPL + 4;         /* padded floats per lane slot */
    static constexpr int ROW = G * PART;         /* floats per key row in smem */
    static constexpr int KT = ROW <= 40 ? 128 : (ROW <= 80 ? 64 : (ROW <= 160 ? 32 : 16)); /* keys per tile */
    static constexpr int KC = 8;                 /* keys per online-softmax step */
    static_assert(KT % KC == 0, "tile must hold whole steps");
    static_assert(DPL % 4 == 0, "16-byte smem loads");
    static_assert(2 * KT * ROW * 4 + KT * 4 <= 48 * 1024, "static shared memory limit");
};

template <int DPL, int G>
__global__ void __launch_bounds__(ATT_THREADS)
attention_kernel(float *__restrict__ out, const float *__restrict__ q, const float *__restrict__ k,
                 const float *__restrict__ v, attn_args a)
{
    using C = attn_cfg<DPL, G>;
    __shared__ __align__(16) float Ks[C::KT * C::ROW];
    __shared__ __align__(16) float Vs[C::KT * C::ROW];
    __shared__ float Ms[C::KT];

    const int b = blockIdx.z, h = blockIdx.y, t = threadIdx.x;
    const int part = t % G;
    const int i = blockIdx.x * C::NQ + t / G;
    const bool active = i < a.Tq;
    const int d = a.d, shift = a.Tk - a.Tq;

    float qr[DPL], o[DPL];
    const float *qrow = q + (long long)b * a.qb + (long long)(active ? i : 0) * a.qs + (long long)h * d;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        const int dim = part * DPL + c;
        qr[c] = (active && dim < d) ? qrow[dim] : 0.0f;
        o[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;

    int kend = a.Tk;
    if (a.causal) {
        const int last_i = min(a.Tq - 1, (int)blockIdx.x * C::NQ + C::NQ - 1);
        kend = min(a.Tk, max(0, last_i + shift + 1));
    }
    const float *kbase = k + (long long)b * a.kb + (long long)h * d;
    const float *vbase = v + (long long)b * a.vb + (long long)h * d;

    for (int j0 = 0; j0 < kend; j0 += C::KT) {
        const int jn = min(C::KT, kend - j0);
        __syncthreads(); /* the previous tile is consumed */
        for (int e = t; e < C::KT * C::DMAX; e += ATT_THREADS) {
            const int r = e / C::DMAX, dim = e % C::DMAX;
            float kv = 0.0f, vv = 0.0f;
            if (r < jn && dim < d) {
                const long long jj = j0 + r;
                kv = kbase[jj * a.ks + dim];
                vv = vbase[jj * a.vs + dim];
            }
            const int s = r * C::ROW + (dim / DPL) * C::PART + dim % DPL;
            Ks[s] = kv;
            Vs[s] = vv;
        }
        for (int r = t; r < C::KT; r += ATT_THREADS)
            Ms[r] = (a.mask && r < jn) ? a.mask[(long long)b * a.Tk + j0 + r] : 0.0f;
        __syncthreads();

        for (int jj = 0; jj < jn; jj += C::KC) {
            float s[C::KC];
#pragma unroll
            for (int u = 0; u < C::KC; u++) {
                const int r = jj + u; /* < KT: jj < jn ≤ KT and KT % KC == 0 */
                const float *kr = Ks + r * C::ROW + part * C::PART;
                float dot = 0.0f;
#pragma unroll
                for (int c = 0; c < DPL; c += 4) {
                    const float4 kk = *reinterpret_cast<const float4 *>(kr + c);
                    dot = fmaf(qr[c], kk.x, dot);
                    dot = fmaf(qr[c + 1], kk.y, dot);
                    dot = fmaf(qr[c + 2], kk.z, dot);
                    dot = fmaf(qr[c + 3], kk.w, dot);
                }
#pragma unroll
                for (int off = 1; off < G; off <<= 1)
                    dot += __shfl_xor_sync(0xffffffffu, dot, off);
                float sc = dot * a.scale;
                if (a.softcap > 0.0f) /* as the reference: before bias and mask */
                    sc = tanhf(sc / a.softcap) * a.softcap;
                const int jg = j0 + r;
                if (a.bias && active && r < jn)
                    sc += a.bias[((long long)h * a.Tq + i) * a.Tk + jg];
                sc += Ms[r];
                if (r >= jn || (a.causal && jg > i + shift))
                    sc = -INFINITY;
                s[u] = sc;
            }
            float mx = m;
#pragma unroll
            for (int u = 0; u < C::KC; u++)
                mx = fmaxf(mx, s[u]);
            const float base = mx == -INFINITY ? 0.0f : mx;
            const float alpha = expf(m - base);
            l *= alpha;
#pragma unroll
            for (int c = 0; c < DPL; c++)
                o[c] *= alpha;
#pragma unroll
            for (int u = 0; u < C::KC; u++) {
                const float p = expf(s[u] - base);
                l += p;
                const float *vr = Vs + (jj + u) * C::ROW + part * C::PART;
#pragma unroll
                for (int c = 0; c < DPL; c += 4) {
                    const float4 vv = *reinterpret_cast<const float4 *>(vr + c);
                    o[c] = fmaf(p, vv.x, o[c]);
                    o[c + 1] = fmaf(p, vv.y, o[c + 1]);
                    o[c + 2] = fmaf(p, vv.z, o[c + 2]);
                    o[c + 3] = fmaf(p, vv.w, o[c + 3]);
                }
            }
            m = mx;
        }
    }

    if (!active)
        return;
    const bool none = m == -INFINITY;
    const long long obase = (long long)b * a.ob + (long long)i * a.os + (long long)h * d;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        const int dim = part * DPL + c;
        if (dim < d) {
            const float val = none ? 0.0f : o[c] / l;
            out[obase + dim] = val;
            if (a.kind != HALF_NONE)
                store_half(a.shadow, (size_t)(obase + dim), val, a.kind);
        }
    }
}

template <int DPL, int G>
cudaError_t attention_launch(float *out, const float *q, const float *k, const float *v,
                             const attn_args &a, cudaStream_t s)
{
    using C = attn_cfg<DPL, G>;
    const dim3 grid((unsigned)((a.Tq + C::NQ - 1) / C::NQ), (unsigned)a.H, (unsigned)a.B);
    attention_kernel<DPL, G><<<grid, ATT_THREADS, 0, s>>>(out, q, k, v, a);
    return cudaGetLastError();
}


/* ---- attention on tensor cores (BF16 / F16 backends) ------------------------------ *
 * FlashAttention-2's scheme with mma.sync.m16n8k16 (sm_80+): a block of 4
 * warps takes 64 queries of one (batch, head), each warp 16 of them; keys
 * and values stream through shared memory in tiles of 64, converted to the
 * backend's half type on the way (K row-major, V transposed, rows padded so
 * fragment reads hit 32 distinct banks). Per tile a warp computes its
 * 16×64 scores S = Q·Kᵀ into registers, applies scale, bias, mask and
 * causality in float32, folds them into the running max/sum exactly as the
 * float32 kernel above does (same special cases), and multiplies P·V with
 * P taken straight from the score registers (the accumulator layout of S is
 * the A-operand layout of P). q, k, v and p are rounded to the half type;
 * sums are float32. Fragment layouts (PTX ISA, mma.m16n8k16), with
 * g = lane / 4, t = lane % 4:
 *   A (16×16, row-major): reg0 = (row g, cols 2t, 2t+1), reg1 = row g+8,
 *     reg2 = (row g, cols 2t+8, 2t+9), reg3 = row g+8, cols 2t+8, 2t+9;
 *   B (16×8): reg0 = (rows 2t, 2t+1; col g), reg1 = rows 2t+8, 2t+9;
 *   C (16×8, float): c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = row g+8. */

template <typename HT>
struct half_ops;

template <>
struct half_ops<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
    static __device__ __forceinline__ __nv_bfloat16 cvt(float x) { return __float2bfloat16_rn(x); }
    static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1)
    {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <>
struct half_ops<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
    static __device__ __forceinline__ __half cvt(float x) { return __float2half_rn(x); }
    static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1)
    {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

__device__ __forceinline__ float q_at(const float *row, bool ok, int c, int d)
{
    return (ok && c < d) ? row[c] : 0.0f;
}

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return *reinterpret_cast<const uint32_t *>(p);
}

constexpr int TC_QB = 64; /* queries per block: 4 warps × 16 */
constexpr int TC_KT = 64; /* keys per tile */

template <typename HT, int D>
__global__ void __launch_bounds__(ATT_THREADS)
attention_tc_kernel(float *__restrict__ out, const float *__restrict__ q,
                    const float *__restrict__ k, const float *__restrict__ v, attn_args a)
{
    using H = half_ops<HT>;
    constexpr int KS = D + 8;      /* Ks row stride in halves: (D/2 + 4) words ≡ 4 mod 32 */
    constexpr int VS = TC_KT + 8;  /* Vt row stride in halves: 36 words */
    constexpr int NK = D / 16;     /* k-steps over head dims */
    constexpr int ND = D / 8;      /* n-tiles over head dims */
    constexpr int NT = TC_KT / 8;  /* n-tiles over the keys of a tile */
    static_assert(D % 64 == 0, "the bank-conflict-free strides assume D = 64 or 128");
    __shared__ __align__(16) HT Ks[TC_KT * KS];
    __shared__ __align__(16) HT Vt[D * VS];
    __shared__ float Ms[TC_KT];

    const int b = blockIdx.z, h = blockIdx.y, t = threadIdx.x;
    const int warp = t >> 5, lane = t & 31, g = lane >> 2, tg = lane & 3;
    const int row0 = blockIdx.x * TC_QB + warp * 16 + g, row1 = row0 + 8;
    const bool act0 = row0 < a.Tq, act1 = row1 < a.Tq;
    const int d = a.d, shift = a.Tk - a.Tq;

    uint32_t qf[NK][4];
    {
        const float *qb = q + (long long)b * a.qb + (long long)h * d;
        const float *q0 = qb + (long long)(act0 ? row0 : 0) * a.qs;
        const float *q1 = qb + (long long)(act1 ? row1 : 0) * a.qs;
#pragma unroll
        for (int kk = 0; kk < NK; kk++) {
            const int c = kk * 16 + 2 * tg;
            qf[kk][0] = H::pack(q_at(q0, act0, c, d), q_at(q0, act0, c + 1, d));
            qf[kk][1] = H::pack(q_at(q1, act1, c, d), q_at(q1, act1, c + 1, d));
            qf[kk][2] = H::pack(q_at(q0, act0, c + 8, d), q_at(q0, act0, c + 9, d));
            qf[kk][3] = H::pack(q_at(q1, act1, c + 8, d), q_at(q1, act1, c + 9, d));
        }
    }
    float o[ND][4];
#pragma unroll
    for (int dt = 0; dt < ND; dt++)
        o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    int kend = a.Tk;
    if (a.causal) {
        const int last_i = min(a.Tq - 1, (int)blockIdx.x * TC_QB + TC_QB - 1);
        kend = min(a.Tk, max(0, last_i + shift + 1));
    }
    const float *kbase = k + (long long)b * a.kb + (long long)h * d;
    const float *vbase = v + (long long)b * a.vb + (long long)h * d;

    for (int j0 = 0; j0 < kend; j0 += TC_KT) {
        const int jn = min(TC_KT, kend - j0);
        __syncthreads(); /* the previous tile is consumed */
        for (int e = t; e < TC_KT * D; e += ATT_THREADS) {
            const int r = e / D, c = e % D;
            float kv = 0.0f, vv = 0.0f;
            if (r < jn && c < d) {
                const long long jj = j0 + r;
                kv = kbase[jj * a.ks + c];
                vv = vbase[jj * a.vs + c];
            }
            Ks[r * KS + c] = H::cvt(kv);
            Vt[c * VS + r] = H::cvt(vv);
        }
        for (int r = t; r < TC_KT; r += ATT_THREADS)
            Ms[r] = (a.mask && r < jn) ? a.mask[(long long)b * a.Tk + j0 + r] : 0.0f;
        __syncthreads();

        /* S = Q·Kᵀ for this warp's 16 rows and the tile's 64 keys */
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < NK; kk++) {
                const HT *kr = Ks + (nt * 8 + g) * KS + kk * 16 + 2 * tg;
                H::mma(s[nt], qf[kk], smem_u32(kr), smem_u32(kr + 8));
            }
        }
        /* scale, bias, mask, causality, tile end; then the running max */
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int row = e < 2 ? row0 : row1;
                const int kl = nt * 8 + 2 * tg + (e & 1);
                const int jg = j0 + kl;
                float x = s[nt][e] * a.scale;
                if (a.bias && row < a.Tq && kl < jn)
                    x += a.bias[((long long)h * a.Tq + row) * a.Tk + jg];
                x += Ms[kl];
                if (kl >= jn || (a.causal && jg > row + shift))
                    x = -INFINITY;
                s[nt][e] = x;
                if (e < 2)
                    mx0 = fmaxf(mx0, x);
                else
                    mx1 = fmaxf(mx1, x);
            }
        /* the 4 lanes of a quad hold the same two rows */
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float base0 = mx0 == -INFINITY ? 0.0f : mx0;
        const float base1 = mx1 == -INFINITY ? 0.0f : mx1;
        const float al0 = expf(m0 - base0), al1 = expf(m1 - base1);
        float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = expf(s[nt][0] - base0);
            s[nt][1] = expf(s[nt][1] - base0);
            s[nt][2] = expf(s[nt][2] - base1);
            s[nt][3] = expf(s[nt][3] - base1);
            rs0 += s[nt][0] + s[nt][1];
            rs1 += s[nt][2] + s[nt][3];
        }
        rs0 += __shfl_xor_sync(0xffffffffu, rs0, 1);
        rs0 += __shfl_xor_sync(0xffffffffu, rs0, 2);
        rs1 += __shfl_xor_sync(0xffffffffu, rs1, 1);
        rs1 += __shfl_xor_sync(0xffffffffu, rs1, 2);
        l0 = l0 * al0 + rs0;
        l1 = l1 * al1 + rs1;
        m0 = mx0;
        m1 = mx1;
#pragma unroll
        for (int dt = 0; dt < ND; dt++) {
            o[dt][0] *= al0;
            o[dt][1] *= al0;
            o[dt][2] *= al1;
            o[dt][3] *= al1;
        }
        /* O += P·V: P's A fragments are the score registers of two n-tiles */
#pragma unroll
        for (int kk = 0; kk < TC_KT / 16; kk++) {
            uint32_t pa[4];
            pa[0] = H::pack(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = H::pack(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = H::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = H::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int dt = 0; dt < ND; dt++) {
                const HT *vr = Vt + (dt * 8 + g) * VS + kk * 16 + 2 * tg;
                H::mma(o[dt], pa, smem_u32(vr), smem_u32(vr + 8));
            }
        }
    }

    const bool none0 = m0 == -INFINITY, none1 = m1 == -INFINITY;
    const long long ob0 = (long long)b * a.ob + (long long)row0 * a.os + (long long)h * d;
    const long long ob1 = ob0 + 8 * (long long)a.os;
#pragma unroll
    for (int dt = 0; dt < ND; dt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int dim = dt * 8 + 2 * tg + e;
            if (dim >= d)
                continue;
            if (act0) {
                const float val = none0 ? 0.0f : o[dt][e] / l0;
                out[ob0 + dim] = val;
                if (a.kind != HALF_NONE)
                    store_half(a.shadow, (size_t)(ob0 + dim), val, a.kind);
            }
            if (act1) {
                const float val = none1 ? 0.0f : o[dt][2 + e] / l1;
                out[ob1 + dim] = val;
                if (a.kind != HALF_NONE)
                    store_half(a.shadow, (size_t)(ob1 + dim), val, a.kind);
            }
        }
}

template <typename HT, int D>
cudaError_t attention_tc_launch(float *out, const float *q, const float *k, const float *v,
                                const attn_args &a, cudaStream_t s)
{
    const dim3 grid((unsigned)((a.Tq + TC_QB - 1) / TC_QB), (unsigned)a.H, (unsigned)a.B);
    attention_tc_kernel<HT, D><<<grid, ATT_THREADS, 0, s>>>(out, q, k, v, a);
    return cudaGetLastError();
}

/* ---- attention on tensor cores, K/V resident in shared memory ------------------------ *
 * The fast path for short sequences (SigLIP: Tk = 196 vision, 64 text, the
 * pooling probe's Tq = 1). Same arithmetic and special cases as
 * attention_tc_kernel above (q, k, v and p rounded to the half type, float32
 * sums, one online-softmax step per 64 keys), organised for speed:
 *   - a block of NW warps takes 16·NW queries of one (batch, head) and holds
 *     every key and value row it visits (kend rounded up to 16) in dynamic
 *     shared memory, K and V both row-major with rows padded to D + 8 halves
 *     (144 or 272 bytes: the 8 rows of every ldmatrix phase hit distinct
 *     banks). One load phase (float4 global loads when the layout allows,
 *     several in flight per thread), one barrier, then each warp runs
 *     through the keys with no further synchronisation; warps whose 16
 *     queries are all past Tq stop after the load;
 *   - B fragments come from ldmatrix.x4 (K) and ldmatrix.x4.trans (V), one
 *     instruction per two MMAs;
 *   - n-tiles of 8 keys (S) and k-steps of 16 keys (P·V) past the tile's
 *     last key are skipped, so Tk = 196 costs 208 keys of work, not 256;
 *   - exponentials are exp2f((x − m)·log2 e), x = scale·q·k + bias + mask
 *     formed exactly as in the other kernels (so a finite huge mask behaves
 *     the same), m the running max.
 * Rows at or past kend (the causal end of the block's last query) are
 * zero in shared memory, as in the tiled kernel, so the set of value rows
 * that can reach an output is the same. Shapes whose rows do not fit
 * FA_SMEM_MAX bytes take the tiled kernel. */

constexpr int FA_SMEM_MAX = 96 * 1024; /* fits the opt-in limit of every sm_80+ part */

__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                        const void *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                          const void *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}

template <int D>
__host__ __device__ constexpr int fa_row_bytes()
{
    return 2 * (D + 8) * 2 + 4; /* a K row, a V row (halves) and a mask value */
}

template <typename HT, int D, int NW>
__global__ void __launch_bounds__(NW * 32)
attention_fa_kernel(float *__restrict__ out, const float *__restrict__ q,
                    const float *__restrict__ k, const float *__restrict__ v, attn_args a, int vec)
{
    using H = half_ops<HT>;
    constexpr int KS = D + 8;      /* K and V row stride in halves */
    constexpr int NK = D / 16;     /* k-steps over head dims (even) */
    constexpr int ND = D / 8;      /* n-tiles over head dims (even) */
    constexpr int NT = TC_KT / 8;  /* n-tiles over the keys of a tile */
    constexpr int NTH = NW * 32;
    constexpr float LOG2E = 1.4426950408889634f;
    static_assert(D % 64 == 0, "D = 64 or 128");
    extern __shared__ __align__(16) unsigned char fa_smem[];

    const int b = blockIdx.z, h = blockIdx.y, t = threadIdx.x;
    const int warp = t >> 5, lane = t & 31, g = lane >> 2, tg = lane & 3;
    const int qblk = blockIdx.x * (16 * NW);
    const int row0 = qblk + warp * 16 + g, row1 = row0 + 8;
    const bool act0 = row0 < a.Tq, act1 = row1 < a.Tq;
    const bool warp_live = qblk + warp * 16 < a.Tq;
    const int d = a.d, shift = a.Tk - a.Tq;

    int kend = a.Tk;
    if (a.causal) {
        const int last_i = min(a.Tq - 1, qblk + 16 * NW - 1);
        kend = min(a.Tk, max(0, last_i + shift + 1));
    }
    const int R = (kend + 15) & ~15;
    HT *Ks = reinterpret_cast<HT *>(fa_smem);
    HT *Vs = Ks + (size_t)R * KS;
    float *Ms = reinterpret_cast<float *>(Vs + (size_t)R * KS);

    /* q fragments first: their loads overlap the K/V loads below */
    uint32_t qf[NK][4];
    if (warp_live) {
        const float *qb = q + (long long)b * a.qb + (long long)h * d;
        const float *q0 = qb + (long long)(act0 ? row0 : 0) * a.qs;
        const float *q1 = qb + (long long)(act1 ? row1 : 0) * a.qs;
#pragma unroll
        for (int kk = 0; kk < NK; kk++) {
            const int c = kk * 16 + 2 * tg;
            qf[kk][0] = H::pack(q_at(q0, act0, c, d), q_at(q0, act0, c + 1, d));
            qf[kk][1] = H::pack(q_at(q1, act1, c, d), q_at(q1, act1, c + 1, d));
            qf[kk][2] = H::pack(q_at(q0, act0, c + 8, d), q_at(q0, act0, c + 9, d));
            qf[kk][3] = H::pack(q_at(q1, act1, c + 8, d), q_at(q1, act1, c + 9, d));
        }
    }

    const float *kbase = k + (long long)b * a.kb + (long long)h * d;
    const float *vbase = v + (long long)b * a.vb + (long long)h * d;
    if (vec) {
        /* d == D, strides and bases 16-byte aligned: float4 loads, 4 in flight */
        constexpr int C4 = D / 4;
        constexpr int U = 4;
        const int total = R * C4;
        for (int e0 = t; e0 < total; e0 += NTH * U) {
            float4 kr[U], vr[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int e = e0 + u * NTH, r = e / C4, c = (e % C4) * 4;
                if (e < total && r < kend) {
                    kr[u] = __ldg(reinterpret_cast<const float4 *>(kbase + (long long)r * a.ks + c));
                    vr[u] = __ldg(reinterpret_cast<const float4 *>(vbase + (long long)r * a.vs + c));
                } else {
                    kr[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    vr[u] = kr[u];
                }
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int e = e0 + u * NTH, r = e / C4, c = (e % C4) * 4;
                if (e < total) {
                    uint2 kw, vw;
                    kw.x = H::pack(kr[u].x, kr[u].y);
                    kw.y = H::pack(kr[u].z, kr[u].w);
                    vw.x = H::pack(vr[u].x, vr[u].y);
                    vw.y = H::pack(vr[u].z, vr[u].w);
                    *reinterpret_cast<uint2 *>(Ks + r * KS + c) = kw;
                    *reinterpret_cast<uint2 *>(Vs + r * KS + c) = vw;
                }
            }
        }
    } else {
        for (int e = t; e < R * D; e += NTH) {
            const int r = e / D, c = e % D;
            float kv = 0.0f, vv = 0.0f;
            if (r < kend && c < d) {
                kv = kbase[(long long)r * a.ks + c];
                vv = vbase[(long long)r * a.vs + c];
            }
            Ks[r * KS + c] = H::cvt(kv);
            Vs[r * KS + c] = H::cvt(vv);
        }
    }
    for (int r = t; r < R; r += NTH)
        Ms[r] = (a.mask && r < kend) ? a.mask[(long long)b * a.Tk + r] : 0.0f;
    __syncthreads();
    if (!warp_live)
        return; /* no barrier follows */

    float o[ND][4];
#pragma unroll
    for (int dt = 0; dt < ND; dt++)
        o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    /* ldmatrix row addresses: lane l feeds row l % 8 of matrix l / 8 */
    const int lr = lane & 7, lm = lane >> 3;

    for (int j0 = 0; j0 < kend; j0 += TC_KT) {
        const int jn = min(TC_KT, kend - j0);
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            if (nt * 8 < jn) {
                const HT *kr = Ks + (j0 + nt * 8 + lr) * KS + lm * 8;
#pragma unroll
                for (int kk = 0; kk < NK; kk += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, kr + kk * 16);
                    H::mma(s[nt], qf[kk], b0, b1);
                    H::mma(s[nt], qf[kk + 1], b2, b3);
                }
            }
        }
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 >= jn)
                continue;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int row = e < 2 ? row0 : row1;
                const int kl = nt * 8 + 2 * tg + (e & 1);
                const int jg = j0 + kl;
                float x = s[nt][e] * a.scale;
                if (a.bias && row < a.Tq && kl < jn)
                    x += a.bias[((long long)h * a.Tq + row) * a.Tk + jg];
                if (a.mask)
                    x += Ms[jg];
                if (kl >= jn || (a.causal && jg > row + shift))
                    x = -INFINITY;
                s[nt][e] = x;
                if (e < 2)
                    mx0 = fmaxf(mx0, x);
                else
                    mx1 = fmaxf(mx1, x);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float base0 = mx0 == -INFINITY ? 0.0f : mx0;
        const float base1 = mx1 == -INFINITY ? 0.0f : mx1;
        const float al0 = exp2f((m0 - base0) * LOG2E), al1 = exp2f((m1 - base1) * LOG2E);
        float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 < jn) {
                s[nt][0] = exp2f((s[nt][0] - base0) * LOG2E);
                s[nt][1] = exp2f((s[nt][1] - base0) * LOG2E);
                s[nt][2] = exp2f((s[nt][2] - base1) * LOG2E);
                s[nt][3] = exp2f((s[nt][3] - base1) * LOG2E);
                rs0 += s[nt][0] + s[nt][1];
                rs1 += s[nt][2] + s[nt][3];
            } else {
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            }
        }
        rs0 += __shfl_xor_sync(0xffffffffu, rs0, 1);
        rs0 += __shfl_xor_sync(0xffffffffu, rs0, 2);
        rs1 += __shfl_xor_sync(0xffffffffu, rs1, 1);
        rs1 += __shfl_xor_sync(0xffffffffu, rs1, 2);
        l0 = l0 * al0 + rs0;
        l1 = l1 * al1 + rs1;
        m0 = mx0;
        m1 = mx1;
#pragma unroll
        for (int dt = 0; dt < ND; dt++) {
            o[dt][0] *= al0;
            o[dt][1] *= al0;
            o[dt][2] *= al1;
            o[dt][3] *= al1;
        }
#pragma unroll
        for (int kk = 0; kk < TC_KT / 16; kk++) {
            if (kk * 16 >= jn)
                continue;
            uint32_t pa[4];
            pa[0] = H::pack(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = H::pack(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = H::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = H::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            const HT *vr = Vs + (j0 + kk * 16 + lr + (lm & 1) * 8) * KS + (lm >> 1) * 8;
#pragma unroll
            for (int dt = 0; dt < ND; dt += 2) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(b0, b1, b2, b3, vr + dt * 8);
                H::mma(o[dt], pa, b0, b1);
                H::mma(o[dt + 1], pa, b2, b3);
            }
        }
    }

    const bool none0 = m0 == -INFINITY, none1 = m1 == -INFINITY;
    const long long ob0 = (long long)b * a.ob + (long long)row0 * a.os + (long long)h * d;
    const long long ob1 = ob0 + 8 * (long long)a.os;
#pragma unroll
    for (int dt = 0; dt < ND; dt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int dim = dt * 8 + 2 * tg + e;
            if (dim >= d)
                continue;
            if (act0) {
                const float val = none0 ? 0.0f : o[dt][e] / l0;
                out[ob0 + dim] = val;
                if (a.kind != HALF_NONE)
                    store_half(a.shadow, (size_t)(ob0 + dim), val, a.kind);
            }
            if (act1) {
                const float val = none1 ? 0.0f : o[dt][2 + e] / l1;
                out[ob1 + dim] = val;
                if (a.kind != HALF_NONE)
                    store_half(a.shadow, (size_t)(ob1 + dim), val, a.kind);
            }
        }
}

/* Launches the resident-K/V kernel; returns cudaErrorNotSupported (nothing
 * launched, no error left pending) when the shape does not fit it. */
template <typename HT, int D, int NW>
cudaError_t attention_fa_launch(float *out, const float *q, const float *k, const float *v,
                                const attn_args &a, cudaStream_t s)
{
    const size_t rows = ((size_t)a.Tk + 15) & ~(size_t)15;
    const size_t smem = rows * (size_t)fa_row_bytes<D>();
    if (smem > (size_t)FA_SMEM_MAX)
        return cudaErrorNotSupported;
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(attention_fa_kernel<HT, D, NW>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess) {
        (void)cudaGetLastError();
        return cudaErrorNotSupported;
    }
    const int vec = a.d == D && a.ks % 4 == 0 && a.vs % 4 == 0 && a.kb % 4 == 0 && a.vb % 4 == 0 &&
                    aligned16(k) && aligned16(v);
    const dim3 grid((unsigned)((a.Tq + 16 * NW - 1) / (16 * NW)), (unsigned)a.H, (unsigned)a.B);
    attention_fa_kernel<HT, D, NW><<<grid, NW * 32, smem, s>>>(out, q, k, v, a, vec);
    return cudaGetLastError();
}

template <typename HT, int D>
cudaError_t attention_fa_pick(float *out, const float *q, const float *k, const float *v,
                              const attn_args &a, cudaStream_t s)
{
    return a.Tq > 64 ? attention_fa_launch<HT, D, 8>(out, q, k, v, a, s)
                     : attention_fa_launch<HT, D, 4>(out, q, k, v, a, s);
}

} /* namespace */

/* ---- launchers ---------------------------------------------------------------------- */

cudaError_t k_convert(void *dst, int kind, const float *src, size_t n, cudaStream_t s)
{
    if (n == 0)
        return cudaSuccess;
    if (kind != HALF_BF16 && kind != HALF_F16)
        return cudaErrorInvalidValue;
    if (aligned16(src) && ((uintptr_t)dst & 7u) == 0)
        convert_kernel4<<<ew_blocks(n / 4 + 1), EW_THREADS, 0, s>>>(dst, kind, src, n);
    else
        convert_kernel<<<ew_blocks(n), EW_THREADS, 0, s>>>(dst, kind, src, n);
    return cudaGetLastError();
}

cudaError_t k_convert_raw(void *dst, int dst_kind, const void *src_dev, int src_dtype, size_t n,
                          cudaStream_t s)
{
    if (n == 0)
        return cudaSuccess;
    if (src_dtype != RAW_F32 && src_dtype != RAW_F16 && src_dtype != RAW_BF16)
        return cudaErrorInvalidValue;
    convert_raw_kernel<<<ew_blocks(n), EW_THREADS, 0, s>>>(dst, dst_kind, src_dev, src_dtype, n);
    return cudaGetLastError();
}

cudaError_t k_bias_act(float *y, const float *bias, size_t M, int N, prism_act act, void *shadow,
                       int kind, cudaStream_t s)
{
    const size_t total = M * (size_t)N;
    if (total == 0)
        return cudaSuccess;
    const bool vec = N % 4 == 0 && aligned16(y) && (!bias || aligned16(bias)) &&
                     (kind == HALF_NONE || ((uintptr_t)shadow & 7u) == 0);
    if (vec)
        bias_act_kernel4<<<ew_blocks(total / 4), EW_THREADS, 0, s>>>(y, bias, total, N, (int)act,
                                                                    shadow, kind);
    else
        bias_act_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(y, bias, total, N, (int)act,
                                                               shadow, kind);
    return cudaGetLastError();
}

static cudaError_t layernorm_launch(float *y, const float *x, const float *g, const float *b,
                                    int rows, int cols, float eps, void *shadow, int kind,
                                    const float *res, float *xw, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0)
        return rows < 0 || cols < 0 ? cudaErrorInvalidValue : cudaSuccess;
    switch (row_vpt(cols)) {
    case 1: layernorm_kernel<1><<<rows, ROW_THREADS, 0, s>>>(y, x, g, b, cols, eps, shadow, kind, res, xw); break;
    case 2: layernorm_kernel<2><<<rows, ROW_THREADS, 0, s>>>(y, x, g, b, cols, eps, shadow, kind, res, xw); break;
    case 4: layernorm_kernel<4><<<rows, ROW_THREADS, 0, s>>>(y, x, g, b, cols, eps, shadow, kind, res, xw); break;
    case 8: layernorm_kernel<8><<<rows, ROW_THREADS, 0, s>>>(y, x, g, b, cols, eps, shadow, kind, res, xw); break;
    case 16: layernorm_kernel<16><<<rows, ROW_THREADS, 0, s>>>(y, x, g, b, cols, eps, shadow, kind, res, xw); break;
    default: layernorm_kernel<0><<<rows, ROW_THREADS_BIG, 0, s>>>(y, x, g, b, cols, eps, shadow, kind, res, xw); break;
    }
    return cudaGetLastError();
}

cudaError_t k_layernorm(float *y, const float *x, const float *g, const float *b, int rows,
                        int cols, float eps, void *shadow, int kind, cudaStream_t s)
{
    return layernorm_launch(y, x, g, b, rows, cols, eps, shadow, kind, nullptr, nullptr, s);
}

cudaError_t k_add_layernorm(float *x, const float *h, float *y, const float *g, const float *b,
                            int rows, int cols, float eps, void *shadow, int kind, cudaStream_t s)
{
    return layernorm_launch(y, x, g, b, rows, cols, eps, shadow, kind, h, x, s);
}

cudaError_t k_rmsnorm(float *y, const float *x, const float *g, int rows, int cols, float eps,
                      void *shadow, int kind, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0)
        return rows < 0 || cols < 0 ? cudaErrorInvalidValue : cudaSuccess;
    switch (row_vpt(cols)) {
    case 1: rmsnorm_kernel<1><<<rows, ROW_THREADS, 0, s>>>(y, x, g, cols, eps, shadow, kind); break;
    case 2: rmsnorm_kernel<2><<<rows, ROW_THREADS, 0, s>>>(y, x, g, cols, eps, shadow, kind); break;
    case 4: rmsnorm_kernel<4><<<rows, ROW_THREADS, 0, s>>>(y, x, g, cols, eps, shadow, kind); break;
    case 8: rmsnorm_kernel<8><<<rows, ROW_THREADS, 0, s>>>(y, x, g, cols, eps, shadow, kind); break;
    case 16: rmsnorm_kernel<16><<<rows, ROW_THREADS, 0, s>>>(y, x, g, cols, eps, shadow, kind); break;
    default: rmsnorm_kernel<0><<<rows, ROW_THREADS_BIG, 0, s>>>(y, x, g, cols, eps, shadow, kind); break;
    }
    return cudaGetLastError();
}

cudaError_t k_l2_normalize(float *x, int rows, int cols, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0)
        return rows < 0 || cols < 0 ? cudaErrorInvalidValue : cudaSuccess;
    l2_normalize_kernel<<<rows, cols <= 2048 ? ROW_THREADS : ROW_THREADS_BIG, 0, s>>>(x, cols);
    return cudaGetLastError();
}

cudaError_t k_softmax(float *x, int rows, int cols, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0)
        return rows < 0 || cols < 0 ? cudaErrorInvalidValue : cudaSuccess;
    switch (row_vpt(cols)) {
    case 1: softmax_kernel<1><<<rows, ROW_THREADS, 0, s>>>(x, cols); break;
    case 2: softmax_kernel<2><<<rows, ROW_THREADS, 0, s>>>(x, cols); break;
    case 4: softmax_kernel<4><<<rows, ROW_THREADS, 0, s>>>(x, cols); break;
    case 8: softmax_kernel<8><<<rows, ROW_THREADS, 0, s>>>(x, cols); break;
    case 16: softmax_kernel<16><<<rows, ROW_THREADS, 0, s>>>(x, cols); break;
    default: softmax_kernel<0><<<rows, ROW_THREADS_BIG, 0, s>>>(x, cols); break;
    }
    return cudaGetLastError();
}

cudaError_t k_add(float *y, const float *a, const float *b, size_t n, cudaStream_t s)
{
    return ew_launch<EW_ADD>(y, a, b, n, nullptr, HALF_NONE, s);
}

cudaError_t k_mul(float *y, const float *a, const float *b, size_t n, void *shadow, int kind,
                  cudaStream_t s)
{
    return ew_launch<EW_MUL>(y, a, b, n, shadow, kind, s);
}

cudaError_t k_activate(float *x, size_t n, prism_act act, cudaStream_t s)
{
    if (n == 0 || act == PRISM_ACT_NONE)
        return cudaSuccess;
    activate_kernel<<<ew_blocks(n), EW_THREADS, 0, s>>>(x, n, (int)act);
    return cudaGetLastError();
}

cudaError_t k_patchify(float *out, const float *img, int B, int C, int S, int P, cudaStream_t s)
{
    if (B < 0 || C <= 0 || P <= 0 || S < P || S % P != 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)B * (S / P) * (S / P) * C * P * P;
    if (total == 0)
        return cudaSuccess;
    patchify_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(out, img, B, C, S, P);
    return cudaGetLastError();
}

cudaError_t k_embedding(float *out, const float *table, const int32_t *ids, int n, int dim,
                        cudaStream_t s)
{
    if (n < 0 || dim < 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)n * dim;
    if (total == 0)
        return cudaSuccess;
    embedding_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(out, table, ids, n, dim);
    return cudaGetLastError();
}

cudaError_t k_add_rows(float *y, const float *rows, int n_rows, int period, int cols,
                       cudaStream_t s)
{
    if (n_rows < 0 || cols < 0 || period <= 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)n_rows * cols;
    if (total == 0)
        return cudaSuccess;
    add_rows_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(y, rows, n_rows, period, cols);
    return cudaGetLastError();
}

cudaError_t k_gather_rows(float *out, const float *x, int n, int64_t stride, int64_t offset,
                          int cols, cudaStream_t s)
{
    if (n < 0 || cols < 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)n * cols;
    if (total == 0)
        return cudaSuccess;
    gather_rows_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(out, x, n, stride, offset, cols);
    return cudaGetLastError();
}

cudaError_t k_rel_bias(float *out, const float *weight, const int32_t *buckets, int rel0, int H,
                       int Tq, int Tk, int q_offset, cudaStream_t s)
{
    if (H < 0 || Tq < 0 || Tk < 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)H * Tq * Tk;
    if (total == 0)
        return cudaSuccess;
    rel_bias_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(out, weight, buckets, rel0, H, Tq, Tk,
                                                            q_offset);
    return cudaGetLastError();
}

cudaError_t k_copy_rows(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int n,
                        int cols, cudaStream_t s)
{
    if (n < 0 || cols < 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)n * cols;
    if (total == 0)
        return cudaSuccess;
    copy_rows_kernel<<<ew_blocks(total), EW_THREADS, 0, s>>>(dst, dst_stride, src, src_stride, n,
                                                             cols);
    return cudaGetLastError();
}

cudaError_t k_topk(int32_t *idx, float *val, const float *x, int rows, int cols, int k,
                   int log_softmax, cudaStream_t s)
{
    if (rows == 0)
        return cudaSuccess;
    if (rows < 0 || cols < 1 || k < 1 || k > cols)
        return cudaErrorInvalidValue;
    topk_kernel<<<rows, TOPK_THREADS, 0, s>>>(idx, val, x, cols, k, log_softmax);
    return cudaGetLastError();
}

cudaError_t k_attention(float *out, const float *q, const float *k, const float *v,
                        const prism_attn_desc *d, void *shadow, int kind, int tc_kind,
                        int flash, cudaStream_t s)
{
    if (d->B < 0 || d->H < 0 || d->Tq < 0 || d->Tk < 0 || d->d < 1 || d->d > CUDA_ATTN_MAX_D ||
        d->H > 65535 || d->B > 65535)
        return cudaErrorInvalidValue;
    if (d->B == 0 || d->H == 0 || d->Tq == 0)
        return cudaSuccess;
    attn_args a;
    a.B = d->B;
    a.H = d->H;
    a.Tq = d->Tq;
    a.Tk = d->Tk;
    a.d = d->d;
    a.qs = d->q_stride;
    a.ks = d->k_stride;
    a.vs = d->v_stride;
    a.os = d->o_stride;
    a.qb = d->q_bstride;
    a.kb = d->k_bstride;
    a.vb = d->v_bstride;
    a.ob = d->o_bstride;
    a.scale = d->scale;
    a.softcap = d->softcap > 0 ? d->softcap : 0.0f;
    a.bias = d->bias;
    a.mask = d->key_mask;
    a.causal = d->causal ? 1 : 0;
    a.shadow = shadow;
    a.kind = shadow ? kind : HALF_NONE;
    /* the tensor-core kernels: heads up to 128 wide, no soft-capping */
    if ((tc_kind == HALF_BF16 || tc_kind == HALF_F16) && d->d <= 128 && !(d->softcap > 0)) {
        if (flash && d->d >= 16) {
            cudaError_t e;
            if (tc_kind == HALF_BF16)
                e = d->d <= 64 ? attention_fa_pick<__nv_bfloat16, 64>(out, q, k, v, a, s)
                               : attention_fa_pick<__nv_bfloat16, 128>(out, q, k, v, a, s);
            else
                e = d->d <= 64 ? attention_fa_pick<__half, 64>(out, q, k, v, a, s)
                               : attention_fa_pick<__half, 128>(out, q, k, v, a, s);
            if (e != cudaErrorNotSupported)
                return e;
        }
        if (tc_kind == HALF_BF16)
            return d->d <= 64 ? attention_tc_launch<__nv_bfloat16, 64>(out, q, k, v, a, s)
                              : attention_tc_launch<__nv_bfloat16, 128>(out, q, k, v, a, s);
        return d->d <= 64 ? attention_tc_launch<__half, 64>(out, q, k, v, a, s)
                          : attention_tc_launch<__half, 128>(out, q, k, v, a, s);
    }
    if (d->d <= 16)
        return attention_launch<16, 1>(out, q, k, v, a, s);
    if (d->d <= 32)
        return attention_launch<32, 1>(out, q, k, v, a, s);
    if (d->d <= 64)
        return attention_launch<32, 2>(out, q, k, v, a, s);
    if (d->d <= 128)
        return attention_launch<32, 4>(out, q, k, v, a, s);
    return attention_launch<32, 8>(out, q, k, v, a, s); /* Gemma's 256 */
}

cudaError_t k_fill_pattern(void *dst, int kind, size_t n, uint32_t seed, cudaStream_t s)
{
    if (n == 0)
        return cudaSuccess;
    fill_pattern_kernel<<<ew_blocks(n), EW_THREADS, 0, s>>>(dst, kind, n, seed);
    return cudaGetLastError();
}
