/* backend_wrap.c - a backend that forwards every op to another one and
 * watches it on the way: per-op timing (backend_profile.h) or one
 * deliberate failure (backend_fault.h). Both are the same wrapper with a
 * different part switched on, so the forwarding is written once. */
#include "backend_fault.h"
#include "backend_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
    W_MATMUL, W_LAYERNORM, W_RMSNORM, W_ADD, W_MUL, W_ACTIVATE, W_SOFTMAX, W_ATTENTION,
    W_PATCHIFY, W_EMBEDDING, W_ADD_ROWS, W_GATHER_ROWS, W_L2_NORMALIZE, W_UPLOAD, W_DOWNLOAD,
    W_ADD_LAYERNORM, W_REL_BIAS, W_TOPK, W_COPY_ROWS, W_COUNT
};
static const char *const op_names[W_COUNT] = {
    "matmul", "layernorm", "rmsnorm", "add", "mul", "activate", "softmax", "attention",
    "patchify", "embedding", "add_rows", "gather_rows", "l2_normalize", "upload", "download",
    "add_layernorm", "rel_bias", "topk", "copy_rows",
};

typedef struct wrap {
    prism_backend *inner;
    prism_backend_ops ops;
    /* profile: every op followed by the inner synchronize and timed */
    bool timing;
    long calls[W_COUNT];
    double seconds[W_COUNT];
    double matmul_flops;
    long alloc_calls; /* alloc calls forwarded (profile: a request path allocates none) */
    size_t alloc_bytes; /* bytes they asked for */
    /* fault: the nth call of op fails once while armed */
    int fault_op; /* W_*, or -1 */
    long nth, fault_calls;
    bool armed;
    bool lost;           /* a device-lost fault fired: every op fails from then on */
    bool last_was_fault; /* the most recent failure was the injected one */
    prism_error_code code;
} wrap;

static wrap *W(prism_backend *be)
{
    return be->impl;
}

/* Runs CALL on the inner backend `in`, unless this is the injected fault;
 * with timing, waits for it and books the time. */
#define FORWARD(be, op, CALL)                                                   \
    do {                                                                        \
        wrap *w_ = W(be);                                                       \
        prism_backend *in = w_->inner;                                          \
        if (w_->lost ||                                                         \
            (w_->armed && w_->fault_op == (op) && ++w_->fault_calls == w_->nth)) { \
            w_->last_was_fault = true;                                          \
            w_->lost = w_->code == PRISM_ERR_DEVICE_LOST;                       \
            return -1;                                                          \
        }                                                                       \
        double t0_ = w_->timing ? prism_now() : 0;                              \
        int rc_ = (CALL);                                                       \
        if (rc_ == 0 && w_->timing)                                             \
            rc_ = in->ops->synchronize(in);                                     \
        if (rc_)                                                                \
            w_->last_was_fault = false;                                         \
        if (w_->timing) {                                                       \
            w_->seconds[op] += prism_now() - t0_;                               \
            w_->calls[op]++;                                                    \
        }                                                                       \
        return rc_;                                                             \
    } while (0)

static void wr_destroy(prism_backend *be)
{
    free(be->impl);
    free(be);
}
static void *wr_alloc(prism_backend *be, size_t n)
{
    W(be)->alloc_calls++;
    W(be)->alloc_bytes += n;
    return W(be)->inner->ops->alloc(W(be)->inner, n);
}
static void wr_free(prism_backend *be, void *p)
{
    W(be)->inner->ops->free(W(be)->inner, p);
}
static int wr_sync(prism_backend *be)
{
    return W(be)->inner->ops->synchronize(W(be)->inner);
}
static const void *wr_weight_import(prism_backend *be, const void *src, int dt, size_t n,
                                    bool matrix, bool *owned)
{
    return W(be)->inner->ops->weight_import(W(be)->inner, src, dt, n, matrix, owned);
}
static int wr_upload(prism_backend *be, void *d, const void *s, size_t n)
{
    FORWARD(be, W_UPLOAD, in->ops->upload(in, d, s, n));
}
static int wr_download(prism_backend *be, void *d, const void *s, size_t n)
{
    FORWARD(be, W_DOWNLOAD, in->ops->download(in, d, s, n));
}
static int wr_matmul(prism_backend *be, float *y, const float *x, const void *w,
                     const float *b, int M, int N, int K, prism_act act)
{
    W(be)->matmul_flops += 2.0 * M * N * K;
    FORWARD(be, W_MATMUL, in->ops->matmul(in, y, x, w, b, M, N, K, act));
}
static int wr_layernorm(prism_backend *be, float *y, const float *x, const float *g,
                        const float *b, int rows, int cols, float eps)
{
    FORWARD(be, W_LAYERNORM, in->ops->layernorm(in, y, x, g, b, rows, cols, eps));
}
static int wr_add_layernorm(prism_backend *be, float *x, const float *h, float *y,
                            const float *g, const float *b, int rows, int cols, float eps)
{
    FORWARD(be, W_ADD_LAYERNORM, in->ops->add_layernorm(in, x, h, y, g, b, rows, cols, eps));
}
static int wr_rmsnorm(prism_backend *be, float *y, const float *x, const float *g, int rows,
                      int cols, float eps)
{
    FORWARD(be, W_RMSNORM, in->ops->rmsnorm(in, y, x, g, rows, cols, eps));
}
static int wr_add(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    FORWARD(be, W_ADD, in->ops->add(in, y, a, b, n));
}
static int wr_mul(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    FORWARD(be, W_MUL, in->ops->mul(in, y, a, b, n));
}
static int wr_activate(prism_backend *be, float *x, size_t n, prism_act act)
{
    FORWARD(be, W_ACTIVATE, in->ops->activate(in, x, n, act));
}
static int wr_softmax(prism_backend *be, float *x, int rows, int cols)
{
    FORWARD(be, W_SOFTMAX, in->ops->softmax(in, x, rows, cols));
}
static int wr_attention(prism_backend *be, float *o, const float *q, const float *k,
                        const float *v, const prism_attn_desc *a)
{
    FORWARD(be, W_ATTENTION, in->ops->attention(in, o, q, k, v, a));
}
static int wr_patchify(prism_backend *be, float *o, const float *img, int B, int C, int S,
                       int P)
{
    FORWARD(be, W_PATCHIFY, in->ops->patchify(in, o, img, B, C, S, P));
}
static int wr_embedding(prism_backend *be, float *o, const float *t, const int32_t *ids, int n,
                        int dim)
{
    FORWARD(be, W_EMBEDDING, in->ops->embedding(in, o, t, ids, n, dim));
}
static int wr_add_rows(prism_backend *be, float *y, const float *r, int n, int period, int cols)
{
    FORWARD(be, W_ADD_ROWS, in->ops->add_rows(in, y, r, n, period, cols));
}
static int wr_gather_rows(prism_backend *be, float *o, const float *x, int n, int64_t stride,
                          int64_t offset, int cols)
{
    FORWARD(be, W_GATHER_ROWS, in->ops->gather_rows(in, o, x, n, stride, offset, cols));
}
static int wr_l2_normalize(prism_backend *be, float *x, int rows, int cols)
{
    FORWARD(be, W_L2_NORMALIZE, in->ops->l2_normalize(in, x, rows, cols));
}
static int wr_rel_bias(prism_backend *be, float *out, const float *weight,
                       const int32_t *buckets, int rel0, int H, int Tq, int Tk, int q_offset)
{
    FORWARD(be, W_REL_BIAS, in->ops->rel_bias(in, out, weight, buckets, rel0, H, Tq, Tk, q_offset));
}
static int wr_topk(prism_backend *be, int32_t *idx, float *val, const float *x, int rows,
                   int cols, int k, bool log_softmax)
{
    FORWARD(be, W_TOPK, in->ops->topk(in, idx, val, x, rows, cols, k, log_softmax));
}
static int wr_copy_rows(prism_backend *be, float *dst, int64_t dst_stride, const float *src,
                        int64_t src_stride, int n, int cols)
{
    FORWARD(be, W_COPY_ROWS, in->ops->copy_rows(in, dst, dst_stride, src, src_stride, n, cols));
}
static void wr_describe_error(prism_backend *be, prism_error *err)
{
    const wrap *w = W(be);
    if (w->last_was_fault)
        prism_errorf(err, "injected fault: %s call %ld", op_names[w->fault_op], w->nth);
    else if (w->inner->ops->describe_error)
        w->inner->ops->describe_error(w->inner, err);
    if (w->last_was_fault)
        err->code = w->code;
}

/* A wrapper of inner with nothing switched on; NULL when out of memory. */
static prism_backend *wrap_create(prism_backend *inner)
{
    prism_backend *be = calloc(1, sizeof *be);
    wrap *w = calloc(1, sizeof *w);
    if (!be || !w) {
        free(be);
        free(w);
        return NULL;
    }
    const prism_backend_ops *io = inner->ops;
    w->inner = inner;
    w->fault_op = -1;
    w->ops = (prism_backend_ops){
        .name = io->name,
        .destroy = wr_destroy,
        .alloc = wr_alloc,
        .free = wr_free,
        .upload = wr_upload,
        .download = wr_download,
        .synchronize = wr_sync,
        .weight_import = wr_weight_import,
        .matmul = wr_matmul,
        .layernorm = wr_layernorm,
        .rmsnorm = io->rmsnorm ? wr_rmsnorm : NULL,
        .add = wr_add,
        .mul = io->mul ? wr_mul : NULL,
        .activate = wr_activate,
        .softmax = io->softmax ? wr_softmax : NULL,
        .attention = wr_attention,
        .patchify = wr_patchify,
        .embedding = wr_embedding,
        .add_rows = wr_add_rows,
        .gather_rows = wr_gather_rows,
        .l2_normalize = wr_l2_normalize,
        .add_layernorm = io->add_layernorm ? wr_add_layernorm : NULL,
        .rel_bias = io->rel_bias ? wr_rel_bias : NULL,
        .topk = io->topk ? wr_topk : NULL,
        .copy_rows = io->copy_rows ? wr_copy_rows : NULL,
        .describe_error = wr_describe_error,
    };
    be->ops = &w->ops;
    be->impl = w;
    be->n_threads = inner->n_threads;
    return be;
}

/* ---- profile ------------------------------------------------------------------ */

prism_backend *prism_profile_backend_create(prism_backend *inner)
{
    prism_backend *be = wrap_create(inner);
    if (be)
        W(be)->timing = true;
    return be;
}

void prism_profile_reset(prism_backend *prof)
{
    wrap *w = W(prof);
    memset(w->calls, 0, sizeof w->calls);
    memset(w->seconds, 0, sizeof w->seconds);
    w->matmul_flops = 0;
}

size_t prism_profile_alloc_bytes(const prism_backend *prof)
{
    return ((const wrap *)prof->impl)->alloc_bytes;
}

long prism_profile_alloc_calls(const prism_backend *prof)
{
    return ((const wrap *)prof->impl)->alloc_calls;
}

void prism_profile_report(const prism_backend *prof, FILE *f)
{
    const wrap *w = prof->impl;
    double total = 0;
    int order[W_COUNT];
    for (int i = 0; i < W_COUNT; i++) {
        total += w->seconds[i];
        order[i] = i;
    }
    for (int i = 1; i < W_COUNT; i++) /* insertion sort, largest first */
        for (int j = i; j > 0 && w->seconds[order[j]] > w->seconds[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(f, "| op | calls | ms | share |\n|---|---:|---:|---:|\n");
    for (int i = 0; i < W_COUNT; i++) {
        int o = order[i];
        if (!w->calls[o])
            continue;
        fprintf(f, "| %s | %ld | %.3f | %.1f%% |", op_names[o], w->calls[o], w->seconds[o] * 1e3,
                total > 0 ? 100.0 * w->seconds[o] / total : 0.0);
        if (o == W_MATMUL && w->seconds[o] > 0)
            fprintf(f, " %.1f GFLOP/s", w->matmul_flops / w->seconds[o] * 1e-9);
        fputc('\n', f);
    }
    fprintf(f, "| total | | %.3f | |\n", total * 1e3);
}

/* ---- fault --------------------------------------------------------------------- */

static int parse_spec(const char *spec, int *op, long *nth, prism_error_code *code,
                      prism_error *err)
{
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon)
        return prism_errorf(err, "fault spec \"%s\": expected OP:N[:nomem|fail|lost]",
                            spec ? spec : "");
    *op = -1;
    for (int i = 0; i < W_COUNT; i++)
        if (strlen(op_names[i]) == (size_t)(colon - spec) &&
            !strncmp(spec, op_names[i], (size_t)(colon - spec)))
            *op = i;
    if (*op < 0)
        return prism_errorf(err, "fault spec \"%s\": unknown op", spec);
    char *end;
    errno = 0;
    *nth = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *nth < 1)
        return prism_errorf(err, "fault spec \"%s\": N must be a whole number >= 1", spec);
    *code = PRISM_ERR_NOMEM;
    if (!*end)
        return 0;
    if (!strcmp(end, ":fail"))
        *code = PRISM_ERR_FAILED;
    else if (!strcmp(end, ":lost"))
        *code = PRISM_ERR_DEVICE_LOST;
    else if (strcmp(end, ":nomem"))
        return prism_errorf(err, "fault spec \"%s\": the kind is nomem, fail or lost", spec);
    return 0;
}

prism_backend *prism_fault_backend_create(prism_backend *inner, const char *spec,
                                          prism_error *err)
{
    int op = -1;
    long nth = 0;
    prism_error_code code = PRISM_ERR_NOMEM;
    if (parse_spec(spec, &op, &nth, &code, err))
        return NULL;
    prism_backend *be = wrap_create(inner);
    if (!be) {
        prism_errorf(err, "out of memory");
        return NULL;
    }
    wrap *w = W(be);
    w->fault_op = op;
    w->nth = nth;
    w->code = code;
    w->armed = true;
    return be;
}

void prism_fault_arm(prism_backend *be, bool on)
{
    W(be)->armed = on;
    W(be)->fault_calls = 0;
}
