/* emulate_half_golden.c - where the BF16/F16 bounds of test_cuda_golden.c
 * come from: SigLIP on the CPU reference with the CUDA backend's roundings.
 *
 * The CUDA backend stores matrix weights in BF16 (or F16) and rounds every
 * matmul input to the same type (round to nearest even); its tensor-core
 * attention (head dim ≥ 16) rounds q, k, v and the probabilities as well;
 * everything else is float32. This program wraps the CPU reference backend
 * so that it does those roundings, runs the three tiny golden checkpoints, and
 * prints the worst differences from transformers' float32 outputs, per
 * dtype. Not part of the build (needs a compiler with _Float16, GCC 12+):
 *
 *   cmake --build build --target prism_engine
 *   cc -O2 -Iengine tools/gpu/emulate_half_golden.c build/libprism_engine.a \
 *      -fopenmp -lm [-lopenblas] -o /tmp/emulate && /tmp/emulate tests/data
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "safetensors.h"
#include "siglip.h"

/* One wrapper backend per run; the rounding mode and the wrapped table are
 * this program's only state. */
static int g_mode; /* 1: BF16, 2: F16 */
static const prism_backend_ops *g_base;

static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static float round_half(float f)
{
    return g_mode == 1 ? round_bf16(f) : (float)(_Float16)f;
}

static const void *emu_import(prism_backend *be, const void *src, int dt, size_t n, bool matrix,
                              bool *owned)
{
    (void)be;
    float *d = malloc((n ? n : 1) * sizeof *d);
    if (!d || st_to_f32(d, src, (prism_dtype)dt, n)) {
        free(d);
        return NULL;
    }
    if (matrix)
        for (size_t i = 0; i < n; i++)
            d[i] = round_half(d[i]);
    *owned = true;
    return d;
}

static int emu_matmul(prism_backend *be, float *y, const float *x, const void *w,
                      const float *bias, int M, int N, int K, prism_act act)
{
    float *xr = malloc(((size_t)M * K + 1) * sizeof *xr);
    if (!xr)
        return -1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        xr[i] = round_half(x[i]);
    int rc = g_base->matmul(be, y, xr, w, bias, M, N, K, act);
    free(xr);
    return rc;
}

static int emu_matmul_residual(prism_backend *be, float *y, const float *x, const void *w,
                               const float *bias, const float *r, int M, int N, int K)
{
    float *xr = malloc(((size_t)M * K + 1) * sizeof *xr);
    if (!xr)
        return -1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        xr[i] = round_half(x[i]);
    int rc = g_base->matmul_residual(be, y, xr, w, bias, r, M, N, K);
    free(xr);
    return rc;
}

/* The tensor-core attention's roundings (probabilities relative to the
 * row's final max; the kernel uses the running max, an error of the same
 * size), all sums in double; head dims < 16 use the float32 kernel. */
static int emu_attention(prism_backend *be, float *out, const float *q, const float *k,
                         const float *v, const prism_attn_desc *a)
{
    if (a->d < 16)
        return g_base->attention(be, out, q, k, v, a);
    double *s = malloc((size_t)a->Tk * sizeof *s);
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int i = 0; i < a->Tq; i++) {
                const float *qi = q + b * a->q_bstride + i * a->q_stride + h * a->d;
                double mx = -INFINITY, l = 0;
                for (int j = 0; j < a->Tk; j++) {
                    const float *kj = k + b * a->k_bstride + j * a->k_stride + h * a->d;
                    double dot = 0;
                    for (int c = 0; c < a->d; c++)
                        dot += (double)round_half(qi[c]) * round_half(kj[c]);
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
                        acc += (double)round_half((float)s[j]) *
                               round_half(v[b * a->v_bstride + j * a->v_stride + h * a->d + c]);
                    oi[c] = mx == -INFINITY ? 0.0f : (float)(acc / l);
                }
            }
    free(s);
    return 0;
}

static float *golden(const st_file *g, const char *name)
{
    const st_tensor *t = st_file_find(g, name);
    float *x = malloc((size_t)t->numel * sizeof *x);
    st_to_f32(x, t->data, t->dtype, (size_t)t->numel);
    return x;
}

static double max_abs(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double max_rel_row(const float *a, const float *w, int rows, int cols)
{
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double s = 1e-30;
        for (int c = 0; c < cols; c++)
            s = fmax(s, fabs(w[(size_t)r * cols + c]));
        worst = fmax(worst, max_abs(a + (size_t)r * cols, w + (size_t)r * cols, (size_t)cols) / s);
    }
    return worst;
}

int main(int argc, char **argv)
{
    const char *data = argc > 1 ? argv[1] : "tests/data";
    const char *models[] = {"siglip_tiny_a", "siglip_tiny_b", "siglip_tiny_c"};
    for (g_mode = 1; g_mode <= 2; g_mode++) {
        double we = 0, wl = 0, wp = 0;
        for (int mi = 0; mi < 3; mi++) {
            prism_backend *be = prism_cpu_backend_create(1, true);
            prism_backend_ops ops = *be->ops;
            g_base = be->ops;
            ops.weight_import = emu_import;
            ops.matmul = emu_matmul;
            ops.matmul_residual = emu_matmul_residual;
            ops.attention = emu_attention;
            be->ops = &ops;
            char dir[1024], gp[1024];
            snprintf(dir, sizeof dir, "%s/%s", data, models[mi]);
            snprintf(gp, sizeof gp, "%s/%s.golden.safetensors", data, models[mi]);
            prism_error err;
            siglip_model *m;
            st_file g;
            if (siglip_load(&m, dir, be, 32, &err) || st_file_open(&g, gp, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            const st_tensor *pv = st_file_find(&g, "pixel_values"), *ii = st_file_find(&g, "input_ids");
            const int nI = (int)pv->shape[0], nT = (int)ii->shape[0], T = (int)ii->shape[1];
            const int D = siglip_embed_dim(m);
            float *px = golden(&g, "pixel_values");
            int32_t *ids = malloc((size_t)nT * T * sizeof *ids);
            for (int i = 0; i < nT * T; i++) {
                int64_t v;
                memcpy(&v, ii->data + 8 * i, 8);
                ids[i] = (int32_t)v;
            }
            float *img = malloc((size_t)nI * D * 4), *txt = malloc((size_t)nT * D * 4);
            float *imgn = malloc((size_t)nI * D * 4), *txtn = malloc((size_t)nT * D * 4);
            float *lg = malloc((size_t)nI * nT * 4);
            siglip_embed_images(m, px, nI, false, img, &err);
            siglip_embed_texts(m, ids, nT, T, false, txt, &err);
            siglip_embed_images(m, px, nI, true, imgn, &err);
            siglip_embed_texts(m, ids, nT, T, true, txtn, &err);
            siglip_logits(m, imgn, nI, txtn, nT, lg);
            float *gi = golden(&g, "image_embeds"), *gt = golden(&g, "text_embeds");
            float *gl = golden(&g, "logits_per_image");
            float *gpi = golden(&g, "image_pooled"), *gpt = golden(&g, "text_pooled");
            double e = fmax(max_abs(imgn, gi, (size_t)nI * D), max_abs(txtn, gt, (size_t)nT * D));
            double l = max_abs(lg, gl, (size_t)nI * nT);
            double p = fmax(max_rel_row(img, gpi, nI, D), max_rel_row(txt, gpt, nT, D));
            printf("%s %s: embeds %.3g, logits %.3g, pooled (relative) %.3g\n",
                   g_mode == 1 ? "BF16" : "F16", models[mi], e, l, p);
            we = fmax(we, e), wl = fmax(wl, l), wp = fmax(wp, p);
            free(px), free(ids), free(img), free(txt), free(imgn), free(txtn), free(lg);
            free(gi), free(gt), free(gl), free(gpi), free(gpt);
            st_file_close(&g);
            siglip_free(m);
            be->ops = g_base;
            prism_backend_destroy(be);
        }
        printf("%s worst: embeds %.3g, logits %.3g, pooled (relative) %.3g\n",
               g_mode == 1 ? "BF16" : "F16", we, wl, wp);
    }
    return 0;
}
