/* backend_fault.c - one deliberate op failure around any backend
 * (backend_fault.h). */
#include "backend_fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    F_UPLOAD, F_DOWNLOAD, F_MATMUL, F_LAYERNORM, F_RMSNORM, F_ADD, F_MUL, F_ACTIVATE,
    F_SOFTMAX, F_ATTENTION, F_PATCHIFY, F_EMBEDDING, F_ADD_ROWS, F_GATHER_ROWS,
    F_L2_NORMALIZE, F_ADD_LAYERNORM, F_REL_BIAS, F_TOPK, F_COPY_ROWS, F_COUNT
};
static const char *const op_names[F_COUNT] = {
    "upload", "download", "matmul", "layernorm", "rmsnorm", "add", "mul", "activate",
    "softmax", "attention", "patchify", "embedding", "add_rows", "gather_rows",
    "l2_normalize", "add_layernorm", "rel_bias", "topk", "copy_rows",
};

typedef struct fault {
    prism_backend *inner;
    prism_backend_ops ops;
    int op;                /* F_* that fails */
    long nth;              /* its call number that fails (1-based) */
    long calls;            /* calls of op since creation or prism_fault_arm */
    bool armed;            /* counting (else everything is forwarded) */
    bool fired;            /* the fault happened since then */
    bool last_was_fault;   /* the most recent failure was ours */
    prism_error_code code; /* what describe_error reports for it */
} fault;

static fault *F(prism_backend *be)
{
    return be->impl;
}

/* Fails (once) when this is the chosen call of op; else runs CALL. */
#define FORWARD(be, op_, CALL)                                                  \
    do {                                                                        \
        fault *f_ = F(be);                                                      \
        prism_backend *in = f_->inner;                                          \
        if (f_->armed && f_->op == (op_) && ++f_->calls == f_->nth) {                        \
            f_->fired = f_->last_was_fault = true;                              \
            return -1;                                                          \
        }                                                                       \
        int rc_ = (CALL);                                                       \
        if (rc_)                                                                \
            f_->last_was_fault = false;                                         \
        return rc_;                                                             \
    } while (0)

static void flt_destroy(prism_backend *be)
{
    free(be->impl);
    free(be);
}
static void *flt_alloc(prism_backend *be, size_t n)
{
    return F(be)->inner->ops->alloc(F(be)->inner, n);
}
static void flt_free(prism_backend *be, void *p)
{
    F(be)->inner->ops->free(F(be)->inner, p);
}
static int flt_sync(prism_backend *be)
{
    return F(be)->inner->ops->synchronize(F(be)->inner);
}
static const void *flt_weight_import(prism_backend *be, const void *src, int dt, size_t n,
                                     bool matrix, bool *owned)
{
    return F(be)->inner->ops->weight_import(F(be)->inner, src, dt, n, matrix, owned);
}
static int flt_upload(prism_backend *be, void *d, const void *s, size_t n)
{
    FORWARD(be, F_UPLOAD, in->ops->upload(in, d, s, n));
}
static int flt_download(prism_backend *be, void *d, const void *s, size_t n)
{
    FORWARD(be, F_DOWNLOAD, in->ops->download(in, d, s, n));
}
static int flt_matmul(prism_backend *be, float *y, const float *x, const void *w,
                      const float *b, int M, int N, int K, prism_act act)
{
    FORWARD(be, F_MATMUL, in->ops->matmul(in, y, x, w, b, M, N, K, act));
}
static int flt_layernorm(prism_backend *be, float *y, const float *x, const float *g,
                         const float *b, int rows, int cols, float eps)
{
    FORWARD(be, F_LAYERNORM, in->ops->layernorm(in, y, x, g, b, rows, cols, eps));
}
static int flt_add_layernorm(prism_backend *be, float *x, const float *h, float *y,
                             const float *g, const float *b, int rows, int cols, float eps)
{
    FORWARD(be, F_ADD_LAYERNORM, in->ops->add_layernorm(in, x, h, y, g, b, rows, cols, eps));
}
static int flt_rmsnorm(prism_backend *be, float *y, const float *x, const float *g, int rows,
                       int cols, float eps)
{
    FORWARD(be, F_RMSNORM, in->ops->rmsnorm(in, y, x, g, rows, cols, eps));
}
static int flt_add(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    FORWARD(be, F_ADD, in->ops->add(in, y, a, b, n));
}
static int flt_mul(prism_backend *be, float *y, const float *a, const float *b, size_t n)
{
    FORWARD(be, F_MUL, in->ops->mul(in, y, a, b, n));
}
static int flt_activate(prism_backend *be, float *x, size_t n, prism_act act)
{
    FORWARD(be, F_ACTIVATE, in->ops->activate(in, x, n, act));
}
static int flt_softmax(prism_backend *be, float *x, int rows, int cols)
{
    FORWARD(be, F_SOFTMAX, in->ops->softmax(in, x, rows, cols));
}
static int flt_attention(prism_backend *be, float *o, const float *q, const float *k,
                         const float *v, const prism_attn_desc *a)
{
    FORWARD(be, F_ATTENTION, in->ops->attention(in, o, q, k, v, a));
}
static int flt_patchify(prism_backend *be, float *o, const float *img, int B, int C, int S,
                        int P)
{
    FORWARD(be, F_PATCHIFY, in->ops->patchify(in, o, img, B, C, S, P));
}
static int flt_embedding(prism_backend *be, float *o, const float *t, const int32_t *ids, int n,
                         int dim)
{
    FORWARD(be, F_EMBEDDING, in->ops->embedding(in, o, t, ids, n, dim));
}
static int flt_add_rows(prism_backend *be, float *y, const float *r, int n, int period, int cols)
{
    FORWARD(be, F_ADD_ROWS, in->ops->add_rows(in, y, r, n, period, cols));
}
static int flt_gather_rows(prism_backend *be, float *o, const float *x, int n, int64_t stride,
                           int64_t offset, int cols)
{
    FORWARD(be, F_GATHER_ROWS, in->ops->gather_rows(in, o, x, n, stride, offset, cols));
}
static int flt_l2_normalize(prism_backend *be, float *x, int rows, int cols)
{
    FORWARD(be, F_L2_NORMALIZE, in->ops->l2_normalize(in, x, rows, cols));
}
static int flt_rel_bias(prism_backend *be, float *out, const float *weight,
                        const int32_t *buckets, int rel0, int H, int Tq, int Tk, int q_offset)
{
    FORWARD(be, F_REL_BIAS, in->ops->rel_bias(in, out, weight, buckets, rel0, H, Tq, Tk, q_offset));
}
static int flt_topk(prism_backend *be, int32_t *idx, float *val, const float *x, int rows,
                    int cols, int k, bool log_softmax)
{
    FORWARD(be, F_TOPK, in->ops->topk(in, idx, val, x, rows, cols, k, log_softmax));
}
static int flt_copy_rows(prism_backend *be, float *dst, int64_t dst_stride, const float *src,
                         int64_t src_stride, int n, int cols)
{
    FORWARD(be, F_COPY_ROWS, in->ops->copy_rows(in, dst, dst_stride, src, src_stride, n, cols));
}
static void flt_describe_error(prism_backend *be, prism_error *err)
{
    const fault *f = F(be);
    if (f->last_was_fault) {
        prism_errorf(err, "injected fault: %s call %ld", op_names[f->op], f->nth);
        err->code = f->code;
    } else if (f->inner->ops->describe_error) {
        f->inner->ops->describe_error(f->inner, err);
    }
}

static int parse_spec(const char *spec, int *op, long *nth, prism_error_code *code,
                      prism_error *err)
{
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon)
        return prism_errorf(err, "fault spec \"%s\": expected OP:N[:nomem|fail]",
                            spec ? spec : "");
    *op = -1;
    for (int i = 0; i < F_COUNT; i++)
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
    else if (strcmp(end, ":nomem"))
        return prism_errorf(err, "fault spec \"%s\": the kind is nomem or fail", spec);
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
    prism_backend *be = calloc(1, sizeof *be);
    fault *f = calloc(1, sizeof *f);
    if (!be || !f) {
        free(be);
        free(f);
        prism_errorf(err, "out of memory");
        return NULL;
    }
    const prism_backend_ops *io = inner->ops;
    f->inner = inner;
    f->op = op;
    f->nth = nth;
    f->code = code;
    f->armed = true;
    f->ops = (prism_backend_ops){
        .name = io->name,
        .destroy = flt_destroy,
        .alloc = flt_alloc,
        .free = flt_free,
        .upload = flt_upload,
        .download = flt_download,
        .synchronize = flt_sync,
        .weight_import = flt_weight_import,
        .matmul = flt_matmul,
        .layernorm = flt_layernorm,
        .rmsnorm = io->rmsnorm ? flt_rmsnorm : NULL,
        .add = flt_add,
        .mul = io->mul ? flt_mul : NULL,
        .activate = flt_activate,
        .softmax = io->softmax ? flt_softmax : NULL,
        .attention = flt_attention,
        .patchify = flt_patchify,
        .embedding = flt_embedding,
        .add_rows = flt_add_rows,
        .gather_rows = flt_gather_rows,
        .l2_normalize = flt_l2_normalize,
        .add_layernorm = io->add_layernorm ? flt_add_layernorm : NULL,
        .rel_bias = io->rel_bias ? flt_rel_bias : NULL,
        .topk = io->topk ? flt_topk : NULL,
        .copy_rows = io->copy_rows ? flt_copy_rows : NULL,
        .describe_error = flt_describe_error,
    };
    be->ops = &f->ops;
    be->impl = f;
    be->n_threads = inner->n_threads;
    return be;
}

void prism_fault_arm(prism_backend *be, bool on)
{
    F(be)->armed = on;
    F(be)->calls = 0;
    F(be)->fired = false;
}

bool prism_fault_fired(const prism_backend *be)
{
    return ((const fault *)be->impl)->fired;
}
