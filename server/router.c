/* router.c - per-task queues, the batcher and the engine worker.
 *
 * Items (one image or one text of a request) wait in their task's FIFO
 * queue. The engine worker - the only thread that runs the model - takes a
 * batch from a queue when it is full (max batch for the task) or when its
 * oldest item has waited max-delay (Triton's max_queue_delay). When both
 * queues have a batch ready, the one whose oldest item is older goes first,
 * so neither task starves. A request with more items than the max batch is
 * split across batches; rows are written back by index, so its results
 * come out in order.
 *
 * While draining (stopping) every non-empty queue is ready at once.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_fault.h"
#include "server.h"

void item_free(srv_item *it)
{
    if (!it)
        return;
    free(it->pixels);
    free(it->ids);
    free(it);
}

static long max_batch(const srv_ctx *s, int task)
{
    return task == TASK_IMAGE ? s->cfg.max_batch_image : s->cfg.max_batch_text;
}

void router_enqueue_locked(srv_ctx *s, srv_item *it)
{
    int t = it->task;
    it->t_enqueue = prism_now();
    it->next = NULL;
    it->prev = s->q_tail[t];
    if (s->q_tail[t])
        s->q_tail[t]->next = it;
    else
        s->q_head[t] = it;
    s->q_tail[t] = it;
    s->q_len[t]++;
    it->req->reserved[t]--;
    pthread_cond_signal(&s->work);
}

void router_drop_locked(srv_ctx *s, srv_req *r)
{
    for (int t = 0; t < N_TASKS; t++) {
        for (srv_item *it = s->q_head[t], *nx; it; it = nx) {
            nx = it->next;
            if (it->req != r)
                continue;
            if (it->prev)
                it->prev->next = it->next;
            else
                s->q_head[t] = it->next;
            if (it->next)
                it->next->prev = it->prev;
            else
                s->q_tail[t] = it->prev;
            s->q_len[t]--;
            s->admitted[t]--;
            s->items_in_flight--;
            req_unref_locked(r); /* the item's; the caller holds another */
            item_free(it);
        }
        s->admitted[t] -= r->reserved[t];
        s->items_in_flight -= r->reserved[t];
        r->reserved[t] = 0;
    }
}

/* The task whose batch should run now, or -1; *wake gets the time at which
 * one will be ready (INFINITY when the queues are empty). */
int router_pick_task_locked(const srv_ctx *s, double now, double *wake)
{
    int pick = -1;
    double oldest = INFINITY;
    *wake = INFINITY;
    const double delay = s->cfg.max_delay_ms * 1e-3;
    for (int t = 0; t < N_TASKS; t++) {
        if (!s->q_len[t])
            continue;
        double t0 = s->q_head[t]->t_enqueue;
        bool ready = s->q_len[t] >= max_batch(s, t) || now >= t0 + delay || s->stopping;
        if (ready && t0 < oldest) {
            oldest = t0;
            pick = t;
        } else if (!ready && t0 + delay < *wake) {
            *wake = t0 + delay;
        }
    }
    return pick;
}

void router_wait_until_locked(srv_ctx *s, double when)
{
    if (isinf(when)) {
        pthread_cond_wait(&s->work, &s->mu);
        return;
    }
    /* prism_now is CLOCK_MONOTONIC; the condition variable uses it too */
    struct timespec ts;
    ts.tv_sec = (time_t)when;
    ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->work, &s->mu, &ts);
}

struct embed_bufs {
    int D, T;
    size_t per_image;
    float *pix;
    int32_t *ids;
    int32_t *tmask;    /* texts: the tokenizer's attention mask (SigLIP 2) */
    float *out;
    srv_item **batch;
    double *waits;
    /* NaFlex: a batch's images padded to its largest: at most patch_budget
     * rows in all (pix), their masks and spatial shapes */
    bool naflex;
    long patch_budget;
    size_t per_patch;
    int32_t *pmask, *shapes;
    bool ok;
};

embed_bufs *embed_bufs_create(srv_ctx *s)
{
    embed_bufs *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->D = s->dim;
    b->T = inputs_text_len(s->inputs);
    b->per_image = inputs_image_floats(s->inputs);
    const long mb_i = s->cfg.max_batch_image, mb_t = s->cfg.max_batch_text;
    const long mb = mb_i > mb_t ? mb_i : mb_t;
    b->naflex = inputs_naflex(s->inputs);
    if (b->naflex) {
        /* max-batch-image images of the default size, or one of the largest */
        b->per_patch = inputs_patch_floats(s->inputs);
        b->patch_budget = mb_i * inputs_default_patches(s->inputs);
        if (b->patch_budget < s->cfg.max_num_patches)
            b->patch_budget = s->cfg.max_num_patches;
        b->pix = malloc((size_t)b->patch_budget * b->per_patch * sizeof(float));
        b->pmask = malloc((size_t)b->patch_budget * sizeof(int32_t));
        b->shapes = malloc((size_t)mb_i * 2 * sizeof(int32_t));
    } else {
        b->pix = malloc((size_t)mb_i * b->per_image * sizeof(float));
    }
    b->ids = malloc((size_t)mb_t * b->T * sizeof(int32_t));
    b->tmask = malloc((size_t)mb_t * b->T * sizeof(int32_t));
    b->out = malloc((size_t)mb * b->D * sizeof(float));
    b->batch = malloc((size_t)mb * sizeof *b->batch);
    b->waits = malloc((size_t)mb * sizeof *b->waits);
    b->ok = b->pix && b->ids && b->tmask && b->out && b->batch && b->waits &&
            (!b->naflex || (b->pmask && b->shapes));
    if (!b->ok)
        log_msg(&s->log, LOG_ERROR, "engine worker: out of memory for batch buffers",
                "every embedding request will be answered 500");
    return b;
}

void embed_bufs_free(embed_bufs *b)
{
    if (!b)
        return;
    free(b->pix);
    free(b->ids);
    free(b->tmask);
    free(b->out);
    free(b->batch);
    free(b->waits);
    free(b->pmask);
    free(b->shapes);
    free(b);
}

/* NaFlex: the n images of batch[] padded to the largest, into b; returns
 * that largest patch count (the call's max_patches). */
static int naflex_assemble(embed_bufs *b, srv_item **batch, int n)
{
    int L = 1;
    for (int i = 0; i < n; i++)
        L = batch[i]->rows * batch[i]->cols > L ? batch[i]->rows * batch[i]->cols : L;
    for (int i = 0; i < n; i++) {
        const int hw = batch[i]->rows * batch[i]->cols;
        float *dst = b->pix + (size_t)i * L * b->per_patch;
        memcpy(dst, batch[i]->pixels, (size_t)hw * b->per_patch * sizeof(float));
        /* padded rows are masked and never read (siglip_embed_naflex) */
        memset(dst + (size_t)hw * b->per_patch, 0, (size_t)(L - hw) * b->per_patch * sizeof(float));
        for (int t = 0; t < L; t++)
            b->pmask[(size_t)i * L + t] = t < hw;
        b->shapes[2 * i] = batch[i]->rows;
        b->shapes[2 * i + 1] = batch[i]->cols;
    }
    return L;
}

/* Texts: ids (and the tokenizer's mask when the model takes it) into b. */
static int run_texts(srv_ctx *s, embed_bufs *b, srv_item **batch, int n, prism_error *err)
{
    const bool masked = inputs_text_masked(s->inputs);
    for (int i = 0; i < n; i++) {
        memcpy(b->ids + (size_t)i * b->T, batch[i]->ids, (size_t)b->T * sizeof(int32_t));
        if (masked)
            inputs_text_mask(s->inputs, batch[i]->n_tokens, b->tmask + (size_t)i * b->T);
    }
    return siglip_embed_texts_masked(s->model, b->ids, masked ? b->tmask : NULL, n, b->T, false,
                                     b->out, err);
}

/* warm-up: one image and one text, so the first request does not pay for
 * thread-pool start-up and first-touch page faults */
double embed_warmup(srv_ctx *s, embed_bufs *b)
{
    if (!b || !b->ok)
        return 0;
    prism_error err = {0};
    double t0 = prism_now();
    int rc;
    if (b->naflex) {
        /* a square image of the default budget */
        const int side = (int)sqrt((double)inputs_default_patches(s->inputs));
        srv_item it = {.rows = side, .cols = side};
        srv_item *one = &it;
        it.pixels = calloc((size_t)side * side * b->per_patch, sizeof(float));
        rc = it.pixels ? siglip_embed_naflex(s->model, b->pix, b->pmask, b->shapes, 1,
                                             naflex_assemble(b, &one, 1), false, b->out, &err)
                       : prism_errorf(&err, "out of memory");
        free(it.pixels);
    } else {
        memset(b->pix, 0, b->per_image * sizeof(float));
        rc = siglip_embed_images(s->model, b->pix, 1, false, b->out, &err);
    }
    if (rc == 0) {
        srv_item it = {.n_tokens = 1};
        srv_item *one = &it;
        it.ids = malloc((size_t)b->T * sizeof(int32_t)); /* 1 (</s> or <eos>) everywhere */
        for (int i = 0; it.ids && i < b->T; i++)
            it.ids[i] = 1;
        rc = it.ids ? run_texts(s, b, &one, 1, &err) : prism_errorf(&err, "out of memory");
        free(it.ids);
    }
    if (rc)
        log_msg(&s->log, LOG_ERROR, "warm-up failed", err.msg);
    return (prism_now() - t0) * 1e3;
}

void engine_ready(srv_ctx *s, double warmup_ms)
{
    if (s->device)
        prism_fault_arm(s->backend, true);
    if (!atomic_load(&s->draining) && !atomic_load(&s->device_lost))
        atomic_store(&s->ready, true);
    log_line ln;
    log_begin(&ln, &s->log, LOG_INFO, "ready");
    log_num(&ln, "warmup_ms", warmup_ms);
    log_end(&ln);
}

void engine_error(srv_ctx *s, api_error *e, const char *what, const prism_error *err)
{
    if (err->code == PRISM_ERR_DEVICE_LOST) {
        if (!atomic_load(&s->device_lost)) {
            snprintf(s->device_lost_msg, sizeof s->device_lost_msg, "%s", err->msg);
            atomic_store(&s->ready, false);
            atomic_store(&s->device_lost, true);
            log_msg(&s->log, LOG_ERROR, "device lost: /healthz and /readyz now answer 503 so "
                    "that the process is restarted", err->msg);
        }
        api_errorf(e, API_ERR_DEVICE_LOST, NULL, "%s: the compute device failed and this process "
                   "cannot use it any more (%s)", what, err->msg);
    } else if (err->code == PRISM_ERR_NOMEM)
        api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "%s: out of memory, retry later (%s)", what,
                   err->msg);
    else
        api_errorf(e, API_ERR_INFERENCE_FAILED, NULL, "%s: %s", what, err->msg);
}

void embed_run_batch_locked(srv_ctx *s, embed_bufs *b, int t)
{
    const int D = b ? b->D : s->dim;
    const long cap = max_batch(s, t);
    srv_item *one[1];
    double one_wait[1];
    srv_item **batch = b && b->batch ? b->batch : one;
    double *waits = b && b->waits ? b->waits : one_wait;
    const long lim = batch == one ? 1 : cap;
    int n = 0;
    double now = prism_now();
    int widest = 0; /* NaFlex: the batch's largest patch count */
    while (n < lim && s->q_head[t]) {
        srv_item *it = s->q_head[t];
        if (t == TASK_IMAGE && b && b->naflex) {
            const int hw = it->rows * it->cols, L = hw > widest ? hw : widest;
            if (n > 0 && (long)(n + 1) * L > b->patch_budget)
                break; /* padded to L, it would not fit */
            widest = L;
        }
        s->q_head[t] = it->next;
        if (it->next)
            it->next->prev = NULL;
        else
            s->q_tail[t] = NULL;
        waits[n] = now - it->t_enqueue;
        batch[n++] = it;
    }
    s->q_len[t] -= n;
    s->admitted[t] -= n;
    uint64_t batch_id = ++s->next_batch;
    pthread_mutex_unlock(&s->mu);

    if (s->cfg.test_batch_sleep_ms > 0)
        usleep((useconds_t)(s->cfg.test_batch_sleep_ms * 1e3));
    prism_error err = {0};
    int rc = -1;
    double t0 = prism_now();
    if (!b || !b->ok) {
        prism_errorf(&err, "out of memory for batch buffers");
    } else if (t == TASK_IMAGE && b->naflex) {
        const int L = naflex_assemble(b, batch, n);
        rc = siglip_embed_naflex(s->model, b->pix, b->pmask, b->shapes, n, L, false, b->out, &err);
    } else if (t == TASK_IMAGE) {
        for (int i = 0; i < n; i++)
            memcpy(b->pix + (size_t)i * b->per_image, batch[i]->pixels,
                   b->per_image * sizeof(float));
        rc = siglip_embed_images(s->model, b->pix, n, false, b->out, &err);
    } else {
        rc = run_texts(s, b, batch, n, &err);
    }
    double dt = prism_now() - t0;
    if (rc)
        log_msg(&s->log, LOG_ERROR, "engine batch failed", err.msg);
    metrics_batch(&s->metrics, t, n, dt, waits);

    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < n; i++) {
        srv_item *it = batch[i];
        srv_req *r = it->req;
        s->items_in_flight--;
        if (r->state == REQ_PENDING) {
            if (rc) {
                api_error e;
                engine_error(s, &e, "inference failed", &err);
                req_fail_locked(r, &e);
            } else {
                memcpy(r->emb[t] + (size_t)it->row * D, b->out + (size_t)i * D,
                       (size_t)D * sizeof(float));
                if (waits[i] > r->queue_s)
                    r->queue_s = waits[i];
                if (r->last_batch != batch_id) {
                    r->last_batch = batch_id;
                    r->infer_s += dt;
                }
                if (++r->n_done == r->n_items)
                    pipeline_items_done_locked(r);
            }
        }
        req_unref_locked(r);
        item_free(it);
    }
}

static void *engine_main(void *arg)
{
    srv_ctx *s = arg;
    embed_bufs *b = embed_bufs_create(s);
    engine_ready(s, embed_warmup(s, b));

    pthread_mutex_lock(&s->mu);
    for (;;) {
        double wake;
        int t = router_pick_task_locked(s, prism_now(), &wake);
        if (t < 0) {
            if (s->stopping && !s->q_len[0] && !s->q_len[1])
                break;
            router_wait_until_locked(s, wake);
            continue;
        }
        embed_run_batch_locked(s, b, t);
    }
    pthread_mutex_unlock(&s->mu);
    embed_bufs_free(b);
    return NULL;
}

int router_start(srv_ctx *s)
{
    if (pthread_create(&s->engine_thread, NULL, s->pali ? gen_engine_main : engine_main /* pali3, alone or beside SigLIP */, s) != 0)
        return -1;
    s->engine_started = true;
    return 0;
}

void router_stop(srv_ctx *s)
{
    if (!s->engine_started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->engine_thread, NULL);
    s->engine_started = false;
}
