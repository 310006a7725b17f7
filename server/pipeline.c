/* pipeline.c - a request's way from its body to its response.
 *
 *   HTTP thread   pipeline_submit: body complete -> parse job queued,
 *                 connection suspended (no thread waits for it)
 *   prep worker   parse_job: parse + validate (api/), read every image
 *                 header (415/413 before decoding), look up classify labels
 *                 in the cache, tokenize texts, reserve queue room (503 when
 *                 full), queue the text items, start one decode job per image
 *   prep worker   decode_job: decode + resize + normalise one image, queue it
 *   engine worker router.c: batches, runs, scatters rows; the last row
 *                 queues finish_job
 *   prep worker   finish_job: normalise, truncate, score, write the JSON,
 *                 req_respond -> connection resumed, MHD sends it
 *   watcher       deadlines (504, queued items dropped) and hang-ups of
 *                 suspended connections (cancel, items dropped)
 *
 * Errors at any step go through req_fail, which answers once: later steps
 * find the request no longer PENDING and drop their work.
 */
#define _GNU_SOURCE
#include <math.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api_multipart.h"
#include "api_response.h"
#include "server.h"

/* ---- request lifetime ---------------------------------------------------- */

srv_req *req_create(srv_ctx *s)
{
    srv_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = s;
    r->refs = 1;
    r->state = REQ_PENDING;
    r->fd = -1;
    r->t_arrival = prism_now();
    r->deadline = r->t_arrival + s->cfg.request_timeout_s;
    r->ep = EP_OTHER;
    return r;
}

static void req_destroy(srv_req *r)
{
    api_request_free(&r->api);
    for (int t = 0; t < N_TASKS; t++)
        free(r->emb[t]);
    free(r->cached);
    free(r->body);
    free(r->resp);
    free(r->sbuf);
    free(r);
}

void req_ref(srv_req *r)
{
    pthread_mutex_lock(&r->srv->mu);
    r->refs++;
    pthread_mutex_unlock(&r->srv->mu);
}

void req_unref_locked(srv_req *r)
{
    if (--r->refs == 0)
        req_destroy(r);
}

void req_unref(srv_req *r)
{
    srv_ctx *s = r->srv;
    pthread_mutex_lock(&s->mu);
    req_unref_locked(r);
    pthread_mutex_unlock(&s->mu);
}

static void pending_unlink_locked(srv_ctx *s, srv_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (s->pending == r)
        s->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void resume_locked(srv_ctx *s, srv_req *r)
{
    if (!r->suspended)
        return;
    pending_unlink_locked(s, r);
    r->suspended = false;
    MHD_resume_connection(r->conn);
}

void req_respond_locked(srv_req *r, int status, char *body, size_t len, const char *type)
{
    srv_ctx *s = r->srv;
    if (r->state != REQ_PENDING) {
        free(body);
        return;
    }
    r->state = REQ_DONE;
    r->status = status;
    r->resp = body;
    r->resp_len = len;
    r->resp_type = type;
    router_drop_locked(s, r);
    resume_locked(s, r);
}

void req_respond(srv_req *r, int status, char *body, size_t len, const char *type)
{
    pthread_mutex_lock(&r->srv->mu);
    req_respond_locked(r, status, body, len, type);
    pthread_mutex_unlock(&r->srv->mu);
}

bool req_stream_start_locked(srv_req *r)
{
    if (r->state != REQ_PENDING)
        return false;
    r->state = REQ_DONE;
    r->status = 200;
    r->resp_type = "text/event-stream";
    r->streaming = true;
    router_drop_locked(r->srv, r);
    resume_locked(r->srv, r);
    return true;
}

void req_stream_push_locked(srv_req *r, const char *data, size_t n, bool done)
{
    if (!r->streaming || r->s_done)
        return;
    if (r->s_len + n > r->s_cap) {
        size_t cap = r->s_cap ? r->s_cap : 1024;
        while (cap < r->s_len + n)
            cap *= 2;
        char *b = realloc(r->sbuf, cap);
        if (!b) {
            done = true; /* out of memory: end the stream where it is */
            n = 0;
        } else {
            r->sbuf = b;
            r->s_cap = cap;
        }
    }
    if (n)
        memcpy(r->sbuf + r->s_len, data, n);
    r->s_len += n;
    r->s_done = done;
    if (r->s_suspended && r->conn) {
        r->s_suspended = false;
        MHD_resume_connection(r->conn);
    }
}

void req_fail_locked(srv_req *r, const api_error *e)
{
    if (r->state != REQ_PENDING)
        return;
    char *body = api_error_json(e);
    snprintf(r->err_code, sizeof r->err_code, "%s", e->code);
    r->retry_after = e->status == 503;
    req_respond_locked(r, e->status, body, body ? strlen(body) : 0, "application/json");
}

void req_fail(srv_req *r, const api_error *e)
{
    pthread_mutex_lock(&r->srv->mu);
    req_fail_locked(r, e);
    pthread_mutex_unlock(&r->srv->mu);
}

void req_cancel_locked(srv_req *r)
{
    if (r->state != REQ_PENDING)
        return;
    r->state = REQ_CANCELLED;
    snprintf(r->err_code, sizeof r->err_code, "client_disconnected");
    router_drop_locked(r->srv, r);
    resume_locked(r->srv, r);
}

static bool req_alive(srv_req *r)
{
    pthread_mutex_lock(&r->srv->mu);
    bool alive = r->state == REQ_PENDING;
    pthread_mutex_unlock(&r->srv->mu);
    return alive;
}

/* ---- finishing: embeddings to JSON -------------------------------------- */

/* x / ‖x‖ as the CPU backend's l2_normalize computes it. */
static void l2_normalize(float *x, int n)
{
    double ss = 0;
    for (int c = 0; c < n; c++)
        ss += x[c] * x[c];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int c = 0; c < n; c++)
        x[c] *= inv;
}

/* Rows of width D to rows of width d (in place, d <= D), re-normalised when
 * asked: `dimensions`. */
static void truncate_rows(float *x, int rows, int D, int d, bool normalize)
{
    for (int r = 0; r < rows; r++) {
        memmove(x + (size_t)r * d, x + (size_t)r * D, (size_t)d * sizeof(float));
        if (normalize)
            l2_normalize(x + (size_t)r * d, d);
    }
}

static void finish_job(void *arg)
{
    srv_req *r = arg;
    srv_ctx *s = r->srv;
    if (!req_alive(r)) {
        req_unref(r);
        return;
    }
    api_request *a = &r->api;
    const int D = s->dim;
    float *img = r->emb[TASK_IMAGE], *txt = r->emb[TASK_TEXT];
    bool normalize = a->op != API_OP_EMBED || a->normalize;
    for (int i = 0; normalize && i < a->n_images; i++)
        l2_normalize(img + (size_t)i * D, D);
    for (int i = 0; normalize && i < a->n_texts; i++)
        if (!r->cached || !r->cached[i]) /* cached rows are stored normalised */
            l2_normalize(txt + (size_t)i * D, D);
    char *body = NULL;
    size_t len = 0;
    int d = a->dimensions ? a->dimensions : D;
    if (a->op == API_OP_EMBED || a->op == API_OP_EMBEDDINGS) {
        if (d < D) {
            truncate_rows(img, a->n_images, D, d, normalize);
            truncate_rows(txt, a->n_texts, D, d, normalize);
        }
        if (a->op == API_OP_EMBED)
            body = api_embed_json(s->model_name, d, img, a->n_images, txt, a->n_texts,
                                  r->text_tokens, &len);
        else
            body = api_embeddings_json(s->model_name, a, img, txt, d, r->text_tokens, &len);
    } else {
        float *logits = malloc((size_t)(a->n_images ? a->n_images : 1) * (a->n_texts ? a->n_texts : 1) *
                               sizeof(float));
        if (logits) {
            siglip_logits(s->model, img, a->n_images, txt, a->n_texts, logits);
            if (a->op == API_OP_SCORE) {
                body = api_score_json(s->model_name, logits, a->n_images, a->n_texts, &len);
            } else {
                for (int k = 0; k < a->n_texts; k++) {
                    if (!r->cached[k])
                        lcache_put(s->labels, a->texts[k], txt + (size_t)k * D);
                    logits[k] = 1.0f / (1.0f + expf(-logits[k]));
                }
                body = api_classify_json(s->model_name, a->labels, logits, a->n_texts, &len);
            }
            free(logits);
        }
    }
    if (body) {
        req_respond(r, 200, body, len, "application/json");
    } else {
        api_error e;
        api_errorf(&e, 500, "out_of_memory", NULL, "out of memory while writing the response");
        req_fail(r, &e);
    }
    req_unref(r);
}

/* Called by the engine worker (srv->mu held) when a request's last item is
 * computed. */
void pipeline_items_done_locked(srv_req *r)
{
    r->refs++;
    if (prep_submit(r->srv->prep, finish_job, r, true) != 0) {
        r->refs--;
        api_error e;
        api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
        req_fail_locked(r, &e);
    }
}

/* ---- preprocessing ------------------------------------------------------- */

typedef struct decode_arg {
    srv_req *r;
    int index;
} decode_arg;

static void decode_job(void *arg)
{
    decode_arg *d = arg;
    srv_req *r = d->r;
    srv_ctx *s = r->srv;
    int i = d->index;
    free(d);
    api_error e;
    char param[64];
    snprintf(param, sizeof param, "%s[%d]",
             r->api.op == API_OP_CLASSIFY ? "image" : r->api.op == API_OP_EMBEDDINGS ? "input" : "images", i);
    if (r->api.op == API_OP_CLASSIFY)
        snprintf(param, sizeof param, "image");
    if (r->api.op == API_OP_EMBEDDINGS)
        for (int k = 0; k < r->api.n_inputs; k++)
            if (r->api.inputs[k].is_image && r->api.inputs[k].index == i)
                snprintf(param, sizeof param, "input[%d]", k);
    srv_item *it = NULL;
    if (req_alive(r)) {
        double t0 = prism_now();
        it = calloc(1, sizeof *it);
        float *pix = it ? malloc(inputs_image_floats(s->inputs) * sizeof(float)) : NULL;
        if (!pix) {
            free(it);
            it = NULL;
            api_errorf(&e, 500, "out_of_memory", param, "out of memory");
            req_fail(r, &e);
        } else if (inputs_image(s->inputs, r->api.images[i], r->api.image_lens[i],
                                (size_t)s->cfg.max_image_pixels, pix, param, &e)) {
            free(pix);
            free(it);
            it = NULL;
            req_fail(r, &e);
        } else {
            it->pixels = pix;
            it->task = TASK_IMAGE;
            it->row = i;
            metrics_preprocess(&s->metrics, TASK_IMAGE, prism_now() - t0, 1);
        }
    }
    pthread_mutex_lock(&s->mu);
    r->decodes_left--;
    if (it && r->state == REQ_PENDING) {
        it->req = r;
        r->refs++;
        router_enqueue_locked(s, it);
        r->prep_s = prism_now() - r->t_prep_start;
    } else if (it) {
        item_free(it);
    }
    req_unref_locked(r);
    pthread_mutex_unlock(&s->mu);
}

static int fail_job(srv_req *r, const api_error *e)
{
    req_fail(r, e);
    req_unref(r);
    return -1;
}

static void parse_job(void *arg)
{
    srv_req *r = arg;
    srv_ctx *s = r->srv;
    api_error e;
    if (!req_alive(r)) {
        req_unref(r);
        return;
    }
    r->t_prep_start = prism_now();
    api_limits lim = {.max_items = (int)s->cfg.max_items, .embed_dim = s->dim};
    int rc = api_is_multipart(r->content_type)
                 ? api_request_parse_multipart(&r->api, r->op, r->content_type, r->body,
                                               r->body_len, &lim, &e)
                 : api_request_parse_json(&r->api, r->op, r->body, r->body_len, &lim, &e);
    free(r->body);
    r->body = NULL;
    if (rc) {
        fail_job(r, &e);
        return;
    }
    api_request *a = &r->api;
    if (a->model && strcmp(a->model, s->model_name) != 0) {
        api_errorf(&e, 404, "model_not_found", "model",
                   "model '%.100s' is not served here (GET /v1/models lists it)", a->model);
        fail_job(r, &e);
        return;
    }
    /* every image header before any decoding: 415 / 413 / 400 early */
    for (int i = 0; i < a->n_images; i++) {
        char param[64];
        if (a->op == API_OP_CLASSIFY)
            snprintf(param, sizeof param, "image");
        else
            snprintf(param, sizeof param, "images[%d]", i);
        if (a->op == API_OP_EMBEDDINGS)
            for (int k = 0; k < a->n_inputs; k++)
                if (a->inputs[k].is_image && a->inputs[k].index == i)
                    snprintf(param, sizeof param, "input[%d]", k);
        if (inputs_image_check(s->inputs, a->images[i], a->image_lens[i],
                               (size_t)s->cfg.max_image_pixels, param, &e)) {
            fail_job(r, &e);
            return;
        }
    }
    const int D = s->dim, T = inputs_text_len(s->inputs);
    for (int t = 0; t < N_TASKS; t++) {
        int n = t == TASK_IMAGE ? a->n_images : a->n_texts;
        r->emb[t] = malloc((size_t)(n ? n : 1) * D * sizeof(float));
        if (!r->emb[t])
            goto oom;
    }
    r->cached = calloc((size_t)(a->n_texts ? a->n_texts : 1), sizeof *r->cached);
    if (!r->cached)
        goto oom;
    int hits = 0;
    if (a->op == API_OP_CLASSIFY) {
        for (int k = 0; k < a->n_texts; k++)
            hits += r->cached[k] = lcache_get(s->labels, a->texts[k], r->emb[TASK_TEXT] + (size_t)k * D);
        metrics_label_cache(&s->metrics, hits, a->n_texts - hits);
    }
    /* texts: tokenize now (cheap), queue below */
    int n_text_items = a->n_texts - hits;
    srv_item **titems = calloc((size_t)(n_text_items ? n_text_items : 1), sizeof *titems);
    if (!titems)
        goto oom;
    int nt = 0;
    for (int k = 0; k < a->n_texts; k++) {
        if (r->cached[k])
            continue;
        char param[64];
        snprintf(param, sizeof param, "%s[%d]",
                 a->op == API_OP_CLASSIFY ? "labels" : a->op == API_OP_EMBEDDINGS ? "input" : "texts", k);
        if (a->op == API_OP_EMBEDDINGS)
            for (int q = 0; q < a->n_inputs; q++)
                if (!a->inputs[q].is_image && a->inputs[q].index == k)
                    snprintf(param, sizeof param, "input[%d]", q);
        double t0 = prism_now();
        srv_item *it = calloc(1, sizeof *it);
        int32_t *ids = it ? malloc((size_t)T * sizeof(int32_t)) : NULL;
        int ntok = 0;
        if (!ids) {
            free(it);
            api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
            rc = -1;
        } else if (inputs_text(s->inputs, a->texts[k], ids, &ntok, param, &e)) {
            free(ids);
            free(it);
            rc = -1;
        }
        if (rc) {
            for (int q = 0; q < nt; q++)
                item_free(titems[q]);
            free(titems);
            fail_job(r, &e);
            return;
        }
        it->ids = ids;
        it->task = TASK_TEXT;
        it->row = k;
        titems[nt++] = it;
        r->text_tokens += ntok;
        metrics_preprocess(&s->metrics, TASK_TEXT, prism_now() - t0, 0);
    }

    /* admission: room in the task queues for every item, or 503 now */
    int need[N_TASKS] = {a->n_images, n_text_items};
    pthread_mutex_lock(&s->mu);
    if (r->state == REQ_PENDING) {
        for (int t = 0; t < N_TASKS && rc == 0; t++)
            if (need[t] && s->admitted[t] + need[t] > s->cfg.max_queue) {
                api_errorf(&e, 503, "queue_full", NULL,
                           "the %s queue is full (%ld items, limit %lld); retry later",
                           metrics_task_names[t], s->admitted[t], s->cfg.max_queue);
                req_fail_locked(r, &e);
                rc = -1;
            }
    }
    if (r->state != REQ_PENDING || rc) {
        for (int q = 0; q < nt; q++)
            item_free(titems[q]);
        free(titems);
        req_unref_locked(r);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    for (int t = 0; t < N_TASKS; t++) {
        s->admitted[t] += need[t];
        s->items_in_flight += need[t];
        r->reserved[t] = need[t];
    }
    r->n_items = need[TASK_IMAGE] + need[TASK_TEXT];
    for (int q = 0; q < nt; q++) {
        titems[q]->req = r;
        r->refs++;
        router_enqueue_locked(s, titems[q]);
    }
    free(titems);
    r->prep_s = prism_now() - r->t_prep_start;
    r->decodes_left = a->n_images;
    r->refs += a->n_images; /* one per decode job */
    if (r->n_items == 0) /* classify with every label cached still has its image */
        pipeline_items_done_locked(r);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < a->n_images; i++) {
        decode_arg *d = malloc(sizeof *d);
        if (d) {
            d->r = r;
            d->index = i;
        }
        if (!d || prep_submit(s->prep, decode_job, d, true) != 0) {
            free(d);
            api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
            pthread_mutex_lock(&s->mu);
            req_fail_locked(r, &e);
            r->decodes_left--;
            req_unref_locked(r);
            pthread_mutex_unlock(&s->mu);
        }
    }
    req_unref(r);
    return;
oom:
    api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
    fail_job(r, &e);
}

void pipeline_submit(srv_req *r)
{
    srv_ctx *s = r->srv;
    api_error e;
    /* http.c let a generation request through only with a pali3 model */
    const bool generative = r->ep == EP_CAPTION || r->ep == EP_VQA || r->ep == EP_CHAT;
    pthread_mutex_lock(&s->mu);
    if (prep_queued(s->prep) >= s->cfg.max_queue) {
        api_errorf(&e, 503, "queue_full", NULL,
                   "too many requests are waiting to be parsed; retry later");
        req_fail_locked(r, &e);
    } else {
        r->async = true;
        r->refs++;
        if (prep_submit(s->prep, generative ? gen_parse_job : parse_job, r, false) != 0) {
            r->refs--;
            api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
            req_fail_locked(r, &e);
        } else {
            MHD_suspend_connection(r->conn);
            r->suspended = true;
            r->next = s->pending;
            if (s->pending)
                s->pending->prev = r;
            s->pending = r;
        }
    }
    pthread_mutex_unlock(&s->mu);
    watcher_wake(s);
}

void pipeline_abort_all(srv_ctx *s)
{
    api_error e;
    api_errorf(&e, 503, "shutting_down", NULL, "the server is shutting down");
    pthread_mutex_lock(&s->mu);
    while (s->pending)
        req_fail_locked(s->pending, &e);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the watcher: deadlines and hang-ups --------------------------------- */

static void *watcher_main(void *arg)
{
    srv_ctx *s = arg;
    size_t cap = 0;
    struct pollfd *pfd = NULL;
    srv_req **reqs = NULL;
    while (!atomic_load(&s->watcher_stop)) {
        pthread_mutex_lock(&s->mu);
        double now = prism_now(), next = now + 1.0;
        size_t n = 0;
        for (srv_req *r = s->pending, *nx; r; r = nx) {
            nx = r->next;
            if (now >= r->deadline) {
                api_error e;
                api_errorf(&e, 504, "deadline_exceeded", NULL,
                           "the request took longer than %g s", s->cfg.request_timeout_s);
                req_fail_locked(r, &e);
                continue;
            }
            if (r->deadline < next)
                next = r->deadline;
            if (n + 1 >= cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct pollfd *np = realloc(pfd, nc * sizeof *np);
                if (np)
                    pfd = np;
                srv_req **nr = np ? realloc(reqs, nc * sizeof *nr) : NULL;
                if (nr)
                    reqs = nr;
                if (!np || !nr)
                    break; /* out of memory: watch fewer this round */
                cap = nc;
            }
            r->refs++;
            reqs[n] = r;
            pfd[n + 1] = (struct pollfd){.fd = r->fd, .events = POLLRDHUP};
            n++;
        }
        pthread_mutex_unlock(&s->mu);
        if (!pfd) {
            pfd = malloc(64 * sizeof *pfd);
            reqs = malloc(64 * sizeof *reqs);
            cap = pfd && reqs ? 64 : 0;
            if (!cap) {
                usleep(10000);
                continue;
            }
        }
        pfd[0] = (struct pollfd){.fd = s->watcher_efd, .events = POLLIN};
        int timeout = (int)ceil((next - prism_now()) * 1e3);
        if (timeout < 0)
            timeout = 0;
        int k = poll(pfd, n + 1, timeout);
        if (k > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            if (read(s->watcher_efd, &v, sizeof v) < 0) { /* EAGAIN: someone else read it */
            }
        }
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            srv_req *r = reqs[i];
            if (k > 0 && (pfd[i + 1].revents & (POLLRDHUP | POLLHUP | POLLERR)) &&
                r->state == REQ_PENDING && r->suspended)
                req_cancel_locked(r);
            req_unref_locked(r);
        }
        pthread_mutex_unlock(&s->mu);
    }
    free(pfd);
    free(reqs);
    return NULL;
}

void watcher_wake(srv_ctx *s)
{
    uint64_t one = 1;
    if (s->watcher_efd >= 0 && write(s->watcher_efd, &one, sizeof one) < 0) {
        /* the counter is saturated: the watcher is awake anyway */
    }
}

int watcher_start(srv_ctx *s)
{
    s->watcher_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->watcher_efd < 0)
        return -1;
    atomic_store(&s->watcher_stop, false);
    if (pthread_create(&s->watcher_thread, NULL, watcher_main, s) != 0)
        return -1;
    s->watcher_started = true;
    return 0;
}

void watcher_stop(srv_ctx *s)
{
    if (s->watcher_started) {
        atomic_store(&s->watcher_stop, true);
        watcher_wake(s);
        pthread_join(s->watcher_thread, NULL);
        s->watcher_started = false;
    }
    if (s->watcher_efd >= 0)
        close(s->watcher_efd);
    s->watcher_efd = -1;
}
