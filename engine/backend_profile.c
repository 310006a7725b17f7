/* backend_profile.c - per-op timing around any backend (backend_profile.h). */
#include "backend_profile.h"

#include <stdlib.h>
#include <string.h>

enum {
    P_MATMUL, P_LAYERNORM, P_RMSNORM, P_ADD, P_MUL, P_ACTIVATE, P_SOFTMAX, P_ATTENTION,
    P_PATCHIFY, P_EMBEDDING, P_ADD_ROWS, P_GATHER_ROWS, P_L2_NORMALIZE, P_UPLOAD, P_DOWNLOAD,
    P_ADD_LAYERNORM, P_REL_BIAS, P_TOPK, P_COPY_ROWS, P_COUNT
};
static const char *const op_names[P_COUNT] = {
    "matmul", "layernorm", "rmsnorm", "add", "mul", "activate", "softmax", "attention",
    "patchify", "embedding", "add_rows", "gather_rows", "l2_normalize", "upload", "download", "add_layernorm",
    "rel_bias", "topk", "copy_rows",
};

typedef struct profile {
    prism_backend *inner;
    prism_backend_ops ops;
    long calls[P_COUNT];
    double seconds[P_COUNT];
    double matmul_flops;
} profile;

static profile *P(prism_backend *be)
{
    return be->impl;
}

/* Runs CALL on the inner backend, waits for it, and books the time. */
#define TIMED(be, op, CALL)                                                     \
    do {                                                                        \
        profile *p_ = P(be);                                                    \
        prism_backend *in = p_->inner;                                          \
        double t0_ = prism_now();                                               \
        int rc_ = (CALL);                                                       \
        if (rc_ == 0)                                                           \
            rc_ = in->ops->synchronize(in);                                     \
        p_->seconds[op] += prism_now() - t0_;                                   \
        p_->calls[op]++;                                                        \
        return rc_;                                                             \
    } while (0)

static void prof_destroy(prism_backend *be)
{
    free(be->impl);
    free(be);
}
static void *prof_alloc(prism_backend *be, size_t n)
{
    return P(be)->inner->ops->alloc(P(be)->inner, n);
}
static void prof_free(prism_backend *be, void *p)
{
    P(be)->inner->ops->free(P(be)->inner, p);
}
static int prof_upload(prism_backend *be, void *d, const void *s, size_t n)
{
    TIMED(be, P_UPLOAD, in->ops->upload(in, d, s, n));
}
static int prof_download(prism_backend *be, void *d, const void *s, size_t n)
{
    TIMED(be, P_DOWNLOAD, in->ops->download(in, d, s, n));
}
static int prof_sync(prism_backend *be)
{
    return P(be)->inner->ops->synchronize(P(be)->inner);
}
static const void *prof_weight_import(prism_backend *be, const void *src, int dt, size_t n,
                                      bool matrix, bool *owned)
{
    return P(be)->inner->ops->weight_import(P(be)->inner, src, dt, n, matrix, owned);
}
static int prof_matmul(prism_backend *be, float *y, const float *x, const void *w,
                       const float *b, int M, int N, int K, prism_act act)
{
    P(be)->matmul_flops += 2.0 * M * N * K;
    TIMED(be, P_MATMUL, in->ops->matmul(in, y, x, w, b, M, N, K, act));
}
static int prof_layernorm(prism_backend *be, float *y, const float *x, const float *g,
                          const float *b, int rows, int cols, float eps)
{
    TIMED(be, P_LAYERNORM, in->ops->layernorm(in, y, x, g, b, rows, cols, eps));
}
static int prof_add_layernorm(prism_backend *be, float *x, const float *h, float *y,
                              const float *g, const float *b, int rows, int cols, float eps)
{
    TIMED(be, P_ADD_LAYERNORM, in->ops->add_layernorm(in, x, h, y, g, b, rows, cols, eps));
}
static int prof_rmsnorm(prism_backend *be, float *y, const float *x, const float *g, int rows,
                        int cols, float eps)
{
    TIMED(be, P_RMSNORM, in->ops->rmsnorm(in, y, x, g, rows, cols, eps));
}
static int prof_add(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    TIMED(be, P_ADD, in->ops->add(in, y, a, b, n));
}
static int prof_mul(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    TIMED(be, P_MUL, in->ops->mul(in, y, a, b, n));
}
static int prof_activate(prism_backend *be, float *x, size_t n, prism_act act)
{
    TIMED(be, P_ACTIVATE, in->ops->activate(in, x, n, act));
}
static int prof_softmax(prism_backend *be, float *x, int rows, int cols)
{
    TIMED(be, P_SOFTMAX, in->ops->softmax(in, x, rows, cols));
}
static int prof_attention(prism_backend *be, float *o, const float *q, const float *k,
                          const float *v, const prism_attn_desc *a)
{
    TIMED(be, P_ATTENTION, in->ops->attention(in, o, q, k, v, a));
}
static int prof_patchify(prism_backend *be, float *o, const float *img, int B, int C, int S,
                         int Pp)
{
    TIMED(be, P_PATCHIFY, in->ops->patchify(in, o, img, B, C, S, Pp));
}
static int prof_embedding(prism_backend *be, float *o, const float *t, const int32_t *ids, int n,
                          int dim)
{
    TIMED(be, P_EMBEDDING, in->ops->embedding(in, o, t, ids, n, dim));
}
static int prof_add_rows(prism_backend *be, float *y, const float *r, int n, int period, int cols)
{
    TIMED(be, P_ADD_ROWS, in->ops->add_rows(in, y, r, n, period, cols));
}
static int prof_gather_rows(prism_backend *be, float *o, const float *x, int n, int64_t stride,
                            int64_t offset, int cols)
{
    TIMED(be, P_GATHER_ROWS, in->ops->gather_rows(in, o, x, n, stride, offset, cols));
}
static int prof_l2_normalize(prism_backend *be, float *x, int rows, int cols)
{
    TIMED(be, P_L2_NORMALIZE, in->ops->l2_normalize(in, x, rows, cols));
}

static int prof_rel_bias(prism_backend *be, float *out, const float *weight,
                         const int32_t *buckets, int rel0, int H, int Tq, int Tk, int q_offset)
{
    TIMED(be, P_REL_BIAS, in->ops->rel_bias(in, out, weight, buckets, rel0, H, Tq, Tk, q_offset));
}
static int prof_topk(prism_backend *be, int32_t *idx, float *val, const float *x, int rows,
                     int cols, int k, bool log_softmax)
{
    TIMED(be, P_TOPK, in->ops->topk(in, idx, val, x, rows, cols, k, log_softmax));
}
static int prof_copy_rows(prism_backend *be, float *dst, int64_t dst_stride, const float *src,
                          int64_t src_stride, int n, int cols)
{
    TIMED(be, P_COPY_ROWS, in->ops->copy_rows(in, dst, dst_stride, src, src_stride, n, cols));
}

static void prof_describe_error(prism_backend *be, prism_error *err)
{
    prism_backend *in = P(be)->inner;
    in->ops->describe_error(in, err);
}

prism_backend *prism_profile_backend_create(prism_backend *inner)
{
    prism_backend *be = calloc(1, sizeof *be);
    profile *p = calloc(1, sizeof *p);
    if (!be || !p) {
        free(be);
        free(p);
        return NULL;
    }
    const prism_backend_ops *io = inner->ops;
    p->inner = inner;
    p->ops = (prism_backend_ops){
        .name = io->name,
        .destroy = prof_destroy,
        .alloc = prof_alloc,
        .free = prof_free,
        .upload = prof_upload,
        .download = prof_download,
        .synchronize = prof_sync,
        .weight_import = prof_weight_import,
        .matmul = prof_matmul,
        .layernorm = prof_layernorm,
        .rmsnorm = io->rmsnorm ? prof_rmsnorm : NULL,
        .add = prof_add,
        .mul = io->mul ? prof_mul : NULL,
        .activate = prof_activate,
        .softmax = io->softmax ? prof_softmax : NULL,
        .attention = prof_attention,
        .patchify = prof_patchify,
        .embedding = prof_embedding,
        .add_rows = prof_add_rows,
        .gather_rows = prof_gather_rows,
        .l2_normalize = prof_l2_normalize,
        .add_layernorm = io->add_layernorm ? prof_add_layernorm : NULL,
        .rel_bias = io->rel_bias ? prof_rel_bias : NULL,
        .topk = io->topk ? prof_topk : NULL,
        .copy_rows = io->copy_rows ? prof_copy_rows : NULL,
        .describe_error = io->describe_error ? prof_describe_error : NULL,
    };
    be->ops = &p->ops;
    be->impl = p;
    be->n_threads = inner->n_threads;
    return be;
}

void prism_profile_reset(prism_backend *prof)
{
    profile *p = P(prof);
    memset(p->calls, 0, sizeof p->calls);
    memset(p->seconds, 0, sizeof p->seconds);
    p->matmul_flops = 0;
}

void prism_profile_report(const prism_backend *prof, FILE *f)
{
    const profile *p = prof->impl;
    double total = 0;
    int order[P_COUNT];
    for (int i = 0; i < P_COUNT; i++) {
        total += p->seconds[i];
        order[i] = i;
    }
    for (int i = 1; i < P_COUNT; i++) /* insertion sort, largest first */
        for (int j = i; j > 0 && p->seconds[order[j]] > p->seconds[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(f, "| op | calls | ms | share |\n|---|---:|---:|---:|\n");
    for (int i = 0; i < P_COUNT; i++) {
        int o = order[i];
        if (!p->calls[o])
            continue;
        fprintf(f, "| %s | %ld | %.3f | %.1f%% |", op_names[o], p->calls[o], p->seconds[o] * 1e3,
                total > 0 ? 100.0 * p->seconds[o] / total : 0.0);
        if (o == P_MATMUL && p->seconds[o] > 0)
            fprintf(f, " %.1f GFLOP/s", p->matmul_flops / p->seconds[o] * 1e-9);
        fputc('\n', f);
    }
    fprintf(f, "| total | | %.3f | |\n", total * 1e3);
}
