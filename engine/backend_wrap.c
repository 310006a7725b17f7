/* backend_wrap.c - a backend that forwards every op to another one and
 * watches it on the way: per-op timing (backend_profile.h) or one
 * deliberate failure (backend_fault.h). Both are the same wrapper with a
 * different part switched on, so the forwarding is written once. */
#include "backend_fault.h"
#include "backend_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Counters and fault targets: every op of backend_ops.def, then the two
 * copies between host and backend. */
enum {
#define PRISM_OP(name, params, args) W_##name,
#include "backend_ops.def"
    W_upload,
    W_download,
    W_COUNT
};
static const char *const op_names[W_COUNT] = {
#define PRISM_OP(name, params, args) #name,
#include "backend_ops.def"
    "upload",
    "download",
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
    int fault_op; /* W_<op>, or -1 */
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
    FORWARD(be, W_upload, in->ops->upload(in, d, s, n));
}
static int wr_download(prism_backend *be, void *d, const void *s, size_t n)
{
    FORWARD(be, W_download, in->ops->download(in, d, s, n));
}

/* wr_<op> for every op: forwarded as it is. */
#define PRISM_OP(name, params, args)                                            \
    static int wr_##name PRISM_OP_PARAMS params                                 \
    {                                                                           \
        FORWARD(be, W_##name, in->ops->name(in, PRISM_OP_ARGS args));           \
    }
#include "backend_ops.def"

/* matmul also books its FLOPs for the profile's GFLOP/s. */
static int wr_matmul_counted(prism_backend *be, float *y, const float *x, const void *w,
                             const float *b, int M, int N, int K, prism_act act)
{
    W(be)->matmul_flops += 2.0 * M * N * K;
    return wr_matmul(be, y, x, w, b, M, N, K, act);
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

static int wr_memory_info(prism_backend *be, prism_backend_memory *m)
{
    return W(be)->inner->ops->memory_info(W(be)->inner, m);
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
#define PRISM_OP(name, params, args) .name = io->name ? wr_##name : NULL,
#include "backend_ops.def"
        .describe_error = wr_describe_error,
        .memory_info = io->memory_info ? wr_memory_info : NULL,
    };
    if (io->matmul)
        w->ops.matmul = wr_matmul_counted;
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
        if (o == W_matmul && w->seconds[o] > 0)
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
