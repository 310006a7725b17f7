/* backend_cpu_ref.c - the CPU reference ops: plain loops, the oracle.
 *
 * These loops are written for obviousness, not speed: one output element at
 * a time, double accumulators, no threads. They are kept forever; every
 * fast path (backend_cpu.c, cuda/) is tested against them by
 * tests/test_backend_parity.c.
 */
#include <math.h>
#include <string.h>

#include "backend_cpu_impl.h"

double cpu_act_ref(double x, prism_act act)
{
    switch (act) {
    case PRISM_ACT_GELU_TANH: {
        const double c = 0.7978845608028654; /* √(2/π) */
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
    }
    case PRISM_ACT_GELU_ERF:
        return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
    case PRISM_ACT_RELU:
        return x > 0 ? x : 0;
    case PRISM_ACT_SILU:
        return x / (1.0 + exp(-x));
    case PRISM_ACT_NONE:
    default:
        return x;
    }
}

static int ref_matmul(prism_backend *be, float *y, const float *x, const void *wv,
                      const float *bias, int M, int N, int K, prism_act act)
{
    (void)be;
    const float *w = wv;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
            y[(size_t)m * N + n] = (float)cpu_act_ref(acc, act);
        }
    return 0;
}

/* Each output reads only its own r element before writing it, so y may
 * alias r. */
static int ref_matmul_residual(prism_backend *be, float *y, const float *x, const void *wv,
                               const float *bias, const float *r, int M, int N, int K)
{
    (void)be;
    const float *w = wv;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
            y[(size_t)m * N + n] = (float)(acc + r[(size_t)m * N + n]);
        }
    return 0;
}

static int ref_layernorm(prism_backend *be, float *y, const float *x, const float *g,
                         const float *b, int rows, int cols, float eps)
{
    (void)be;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        double mean = 0, var = 0;
        for (int c = 0; c < cols; c++)
            mean += xr[c];
        mean /= cols;
        for (int c = 0; c < cols; c++)
            var += (xr[c] - mean) * (xr[c] - mean);
        var /= cols;
        double inv = 1.0 / sqrt(var + eps);
        for (int c = 0; c < cols; c++)
            yr[c] = (float)((xr[c] - mean) * inv * g[c] + (b ? b[c] : 0.0));
    }
    return 0;
}

static int ref_rmsnorm(prism_backend *be, float *y, const float *x, const float *g, int rows,
                       int cols, float eps)
{
    (void)be;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        double ms = 0;
        for (int c = 0; c < cols; c++)
            ms += (double)xr[c] * xr[c];
        double inv = 1.0 / sqrt(ms / cols + eps);
        for (int c = 0; c < cols; c++)
            yr[c] = (float)(xr[c] * inv * g[c]);
    }
    return 0;
}

static int ref_add(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
    return 0;
}

static int ref_mul(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
    return 0;
}

static int ref_activate(prism_backend *be, float *x, size_t n, prism_act act)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)cpu_act_ref(x[i], act);
    return 0;
}

static void softmax_row_ref(double *s, int n)
{
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    if (mx == -INFINITY) { /* every key masked: the row attends to nothing */
        for (int j = 0; j < n; j++)
            s[j] = 0;
        return;
    }
    for (int j = 0; j < n; j++)
        sum += s[j] = exp(s[j] - mx);
    for (int j = 0; j < n; j++)
        s[j] /= sum;
}

static int ref_softmax(prism_backend *be, float *x, int rows, int cols)
{
    (void)be;
    double *s = malloc((size_t)cols * sizeof *s);
    if (!s)
        return -1;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            s[c] = x[(size_t)r * cols + c];
        softmax_row_ref(s, cols);
        for (int c = 0; c < cols; c++)
            x[(size_t)r * cols + c] = (float)s[c];
    }
    free(s);
    return 0;
}

static int ref_attention(prism_backend *be, float *out, const float *q, const float *k,
                         const float *v, const prism_attn_desc *a)
{
    (void)be;
    double *s = malloc((size_t)a->Tk * sizeof *s);
    if (!s)
        return -1;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int i = 0; i < a->Tq; i++) {
                const float *qi = q + b * a->q_bstride + i * a->q_stride + h * a->d;
                for (int j = 0; j < a->Tk; j++) {
                    const float *kj = k + b * a->k_bstride + j * a->k_stride + h * a->d;
                    double dot = 0;
                    for (int c = 0; c < a->d; c++)
                        dot += (double)qi[c] * kj[c];
                    dot *= a->scale;
                    if (a->softcap > 0)
                        dot = tanh(dot / a->softcap) * a->softcap;
                    if (a->bias)
                        dot += a->bias[((size_t)h * a->Tq + i) * a->Tk + j];
                    if (a->key_mask)
                        dot += a->key_mask[(size_t)b * a->Tk + j];
                    if (a->causal && j > i + (a->Tk - a->Tq))
                        dot = -INFINITY;
                    s[j] = dot;
                }
                softmax_row_ref(s, a->Tk);
                float *oi = out + b * a->o_bstride + i * a->o_stride + h * a->d;
                for (int c = 0; c < a->d; c++) {
                    double acc = 0;
                    for (int j = 0; j < a->Tk; j++)
                        acc += s[j] * v[b * a->v_bstride + j * a->v_stride + h * a->d + c];
                    oi[c] = (float)acc;
                }
            }
    free(s);
    return 0;
}

static int ref_l2_normalize(prism_backend *be, float *x, int rows, int cols)
{
    (void)be;
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * cols;
        double ss = 0;
        for (int c = 0; c < cols; c++)
            ss += (double)xr[c] * xr[c];
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        for (int c = 0; c < cols; c++)
            xr[c] = (float)(xr[c] * inv);
    }
    return 0;
}

static int ref_add_layernorm(prism_backend *be, float *x, const float *h, float *y,
                             const float *g, const float *b, int rows, int cols, float eps)
{
    const size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] + h[i];
    return ref_layernorm(be, y, x, g, b, rows, cols, eps);
}

static int ref_rel_bias(prism_backend *be, float *out, const float *weight,
                        const int32_t *buckets, int rel0, int H, int Tq, int Tk, int q_offset)
{
    (void)be;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++)
            for (int j = 0; j < Tk; j++) {
                int bucket = buckets[rel0 + j - (i + q_offset)];
                out[((size_t)h * Tq + i) * Tk + j] = weight[(size_t)bucket * H + h];
            }
    return 0;
}

/* a ranks before b: larger value first, NaN last, equal values by column. */
static bool ranks_before(float a, int ia, float b, int ib)
{
    if (isnan(a) || isnan(b))
        return isnan(b) && (!isnan(a) || ia < ib);
    return a > b || (a == b && ia < ib);
}

static int ref_topk(prism_backend *be, int32_t *idx, float *val, const float *x, int rows,
                    int cols, int k, bool log_softmax)
{
    (void)be;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double mx = -INFINITY, sum = 0;
        bool nan = false;
        for (int c = 0; c < cols; c++) {
            nan |= isnan(xr[c]);
            mx = xr[c] > mx ? xr[c] : mx;
        }
        for (int c = 0; c < cols; c++)
            sum += exp(xr[c] - mx);
        double lse = nan ? NAN : mx + log(sum);
        /* selection: the i-th pick is the best column not ranked before the
         * (i-1)-th pick */
        int prev = -1;
        for (int i = 0; i < k; i++) {
            int best = -1;
            for (int c = 0; c < cols; c++) {
                if (prev >= 0 && !ranks_before(xr[prev], prev, xr[c], c))
                    continue;
                if (best < 0 || ranks_before(xr[c], c, xr[best], best))
                    best = c;
            }
            idx[(size_t)r * k + i] = best;
            if (val)
                val[(size_t)r * k + i] =
                    log_softmax ? (float)((double)xr[best] - lse) : xr[best];
            prev = best;
        }
    }
    return 0;
}

static int ref_copy_rows(prism_backend *be, float *dst, int64_t dst_stride, const float *src,
                         int64_t src_stride, int n, int cols)
{
    (void)be;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < cols; c++)
            dst[i * dst_stride + c] = src[i * src_stride + c];
    return 0;
}

const prism_backend_ops cpu_ref_ops = {
    .name = "cpu-reference",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_synchronize,
    .weight_import = cpu_weight_import,
#define PRISM_OP(name, params, args) .name = ref_##name,
#include "backend_ops.def"
    .memory_info = cpu_memory_info,
};
