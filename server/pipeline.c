/* pipeline.c - an embedding request's way from its body to its response.
 *
 *   HTTP thread   pipeline_submit: body complete -> a job queued in the
 *                 request's lane of the preprocessing pool, connection
 *                 suspended (no thread waits for it); the job is parse_job,
 *                 gen_parse_job (generate.c) or, when the server lacks the
 *                 endpoint's model, unserved_job (422 model_not_loaded)
 *   prep worker   parse_job, in steps that each free what they allocated:
 *                 parse_body (api/ validates; limits on items, texts and
 *                 templates), check_images (every header before any pixel:
 *                 415/413), alloc_rows, prepare_texts (label cache, then
 *                 tokenize: only the start of a text that can give the kept
 *                 ids), admit (queue room or 503; text items queued),
 *                 dispatch_decodes (one decode job per image, in the
 *                 request's lane: they take turns with other requests' jobs)
 *   prep worker   decode_job: decode + resize + normalise one image, queue it
 *   engine worker router.c: batches, runs, scatters rows; the last row
 *                 queues finish_job
 *   prep worker   finish_job: normalise, truncate, score, write the JSON,
 *                 req_respond -> connection resumed, MHD sends it
 *   watcher       deadlines (504, queued items dropped) and hang-ups of
 *                 suspended connections (cancel, items dropped)
 *
 * Errors at any step go through req_fail (request.c), which answers once:
 * later steps find the request no longer PENDING and drop their work.
 */
#define _GNU_SOURCE
#include <malloc.h>
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
        api_errorf(&e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory while writing the response");
        req_fail(r, &e);
    }
    req_unref(r);
}

/* Called by the engine worker (srv->mu held) when a request's last item is
 * computed. */
void pipeline_items_done_locked(srv_req *r)
{
    req_ref_locked(r);
    if (prep_submit(r->srv->prep, finish_job, r, r, true) != 0) {
        req_unref_locked(r);
        api_error e;
        api_errorf(&e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
        req_fail_locked(r, &e);
    }
}

/* ---- preprocessing ------------------------------------------------------- */

/* The request field that holds image i, for error messages. */
static void image_param(const api_request *a, int i, char *buf, size_t n)
{
    if (a->op == API_OP_CLASSIFY)
        snprintf(buf, n, "image");
    else
        snprintf(buf, n, "images[%d]", i);
    if (a->op == API_OP_EMBEDDINGS)
        for (int k = 0; k < a->n_inputs; k++)
            if (a->inputs[k].is_image && a->inputs[k].index == i)
                snprintf(buf, n, "input[%d]", k);
}

/* The request field that holds text k. */
static void text_param(const api_request *a, int k, char *buf, size_t n)
{
    const char *field = a->op == API_OP_CLASSIFY     ? "labels"
                        : a->op == API_OP_EMBEDDINGS ? "input"
                                                     : "texts";
    snprintf(buf, n, "%s[%d]", field, k);
    if (a->op == API_OP_EMBEDDINGS)
        for (int q = 0; q < a->n_inputs; q++)
            if (!a->inputs[q].is_image && a->inputs[q].index == k)
                snprintf(buf, n, "input[%d]", q);
}

typedef struct decode_arg {
    srv_req *r;
    int index;
} decode_arg;

/* Decodes, resizes and normalises one image of a request and queues it. */
static void decode_job(void *arg)
{
    decode_arg *d = arg;
    srv_req *r = d->r;
    srv_ctx *s = r->srv;
    int i = d->index;
    free(d);
    api_error e;
    char param[64];
    image_param(&r->api, i, param, sizeof param);
    srv_item *it = NULL;
    if (req_alive(r)) {
        double t0 = prism_now();
        it = calloc(1, sizeof *it);
        const bool naflex = inputs_naflex(s->inputs);
        float *pix = it && !naflex ? malloc(inputs_image_floats(s->inputs) * sizeof(float)) : NULL;
        int rc = 0;
        if (it && naflex)
            rc = inputs_image_patches(s->inputs, r->api.images[i], r->api.image_lens[i],
                                      (size_t)s->cfg.max_image_pixels, r->api.max_num_patches,
                                      (int)s->cfg.max_num_patches, &pix, &it->rows, &it->cols,
                                      param, &e);
        else if (pix)
            rc = inputs_image(s->inputs, r->api.images[i], r->api.image_lens[i],
                              (size_t)s->cfg.max_image_pixels, pix, param, &e);
        if (!pix && !rc) {
            free(it);
            it = NULL;
            api_errorf(&e, API_ERR_OUT_OF_MEMORY, param, "out of memory");
            req_fail(r, &e);
        } else if (rc) {
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
        req_ref_locked(r); /* the item's */
        router_enqueue_locked(s, it);
        r->prep_s = prism_now() - r->t_prep_start;
    } else if (it) {
        item_free(it);
    }
    req_unref_locked(r); /* the job's */
    pthread_mutex_unlock(&s->mu);
}

/* The steps of parse_job. Each returns 0, or -1 with the answer in *e; each
 * frees what it allocated when it fails (what it keeps belongs to the
 * request and goes with it). */

/* The body into r->api (api/ validates it); the body is freed either way. */
static int parse_body(srv_req *r, api_error *e)
{
    srv_ctx *s = r->srv;
    api_limits lim = {.max_items = (int)s->cfg.max_items,
                      .embed_dim = s->dim,
                      .max_template_bytes = (size_t)s->cfg.max_template_bytes,
                      .max_text_bytes = (size_t)s->cfg.max_text_bytes,
                      .max_expanded_bytes = (size_t)s->cfg.body_limit,
                      .max_num_patches = inputs_naflex(s->inputs) ? (int)s->cfg.max_num_patches
                                                                  : 0};
    int rc = api_is_multipart(r->content_type)
                 ? api_request_parse_multipart(&r->api, r->op, r->content_type, r->body,
                                               r->body_len, &lim, e)
                 : api_request_parse_json(&r->api, r->op, r->body, r->body_len, &lim, e);
    http_body_release(r->srv, r);
    if (rc)
        return -1;
    if (r->api.model && strcmp(r->api.model, s->model_name) != 0)
        return pipeline_model_not_found(r, r->api.model, e);
    return 0;
}

/* The paths of the endpoints one model serves, comma-separated: the model
 * endpoints come first in metrics_endpoint, EP_EMBED..EP_EMBEDDINGS for the
 * SigLIP model, EP_CAPTION..EP_OCR for the generative one. */
static void family_paths(bool generative, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    for (int ep = generative ? EP_CAPTION : EP_EMBED; ep <= (generative ? EP_OCR : EP_EMBEDDINGS);
         ep++) {
        int w = snprintf(out + k, n - k, "%s%s", k ? ", " : "", metrics_endpoint_names[ep]);
        if (w < 0 || (size_t)w >= n - k)
            return;
        k += (size_t)w;
    }
}

int pipeline_model_not_found(const srv_req *r, const char *model, api_error *e)
{
    const srv_ctx *s = r->srv;
    const char *path = metrics_endpoint_names[r->ep];
    const char *own = r->generative ? s->gen_model_name : s->model_name;
    const char *other = r->generative ? s->model_name : s->gen_model_name;
    if (s->model && s->pali && strcmp(model, other) == 0) {
        char paths[160];
        family_paths(!r->generative, paths, sizeof paths);
        return api_errorf(e, API_ERR_MODEL_NOT_FOUND, "model",
                          "model '%.100s' serves %s; %s is served by '%.100s'", model, paths, path,
                          own);
    }
    return api_errorf(e, API_ERR_MODEL_NOT_FOUND, "model",
                      "model '%.100s' is not served here; %s is served by '%.100s' (GET "
                      "/v1/models lists the models)",
                      model, path, own);
}

/* Every image header before any pixel is decoded: 415 / 413 / 400 early. */
static int check_images(srv_req *r, api_error *e)
{
    srv_ctx *s = r->srv;
    const api_request *a = &r->api;
    for (int i = 0; i < a->n_images; i++) {
        char param[64];
        image_param(a, i, param, sizeof param);
        if (inputs_image_check(s->inputs, a->images[i], a->image_lens[i],
                               (size_t)s->cfg.max_image_pixels, param, e))
            return -1;
    }
    return 0;
}

/* The embedding rows of the request, and its label-cache flags. */
static int alloc_rows(srv_req *r, api_error *e)
{
    const api_request *a = &r->api;
    for (int t = 0; t < N_TASKS; t++) {
        int n = t == TASK_IMAGE ? a->n_images : a->n_texts;
        r->emb[t] = malloc((size_t)(n ? n : 1) * r->srv->dim * sizeof(float));
        if (!r->emb[t])
            return api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
    }
    r->cached = calloc((size_t)(a->n_texts ? a->n_texts : 1), sizeof *r->cached);
    if (!r->cached)
        return api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
    return 0;
}

static void items_free(srv_item **items, int n)
{
    for (int q = 0; q < n; q++)
        item_free(items[q]);
    free(items);
}

/* Classify labels from the cache; every other text tokenized into an item
 * (*items, *n_items: not queued yet). */
static int prepare_texts(srv_req *r, srv_item ***items, int *n_items, api_error *e)
{
    srv_ctx *s = r->srv;
    const api_request *a = &r->api;
    const int D = s->dim, T = inputs_text_len(s->inputs);
    int hits = 0;
    if (a->op == API_OP_CLASSIFY) {
        for (int k = 0; k < a->n_texts; k++)
            hits += r->cached[k] =
                lcache_get(s->labels, a->texts[k], r->emb[TASK_TEXT] + (size_t)k * D);
        metrics_label_cache(&s->metrics, hits, a->n_texts - hits);
    }
    const int n = a->n_texts - hits;
    srv_item **out = calloc((size_t)(n ? n : 1), sizeof *out);
    if (!out)
        return api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
    int nt = 0;
    for (int k = 0; k < a->n_texts; k++) {
        if (r->cached[k])
            continue;
        char param[64];
        text_param(a, k, param, sizeof param);
        double t0 = prism_now();
        srv_item *it = calloc(1, sizeof *it);
        int32_t *ids = it ? malloc((size_t)T * sizeof(int32_t)) : NULL;
        int ntok = 0;
        int rc = 0;
        if (!ids)
            rc = api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
        else
            rc = inputs_text(s->inputs, a->texts[k], ids, &ntok, param, e);
        if (rc) {
            free(ids);
            free(it);
            items_free(out, nt);
            return -1;
        }
        it->ids = ids;
        it->n_tokens = ntok;
        it->task = TASK_TEXT;
        it->row = k;
        out[nt++] = it;
        r->text_tokens += ntok;
        metrics_preprocess(&s->metrics, TASK_TEXT, prism_now() - t0, 0);
    }
    *items = out;
    *n_items = nt;
    return 0;
}

/* Admission: room in the task queues for every item of the request, or 503
 * now. On success the text items are queued (the router owns them) and the
 * images' places are reserved; on failure the caller still owns items. */
static int admit(srv_req *r, srv_item **items, int nt, api_error *e)
{
    srv_ctx *s = r->srv;
    const api_request *a = &r->api;
    const int need[N_TASKS] = {a->n_images, nt};
    pthread_mutex_lock(&s->mu);
    if (r->state != REQ_PENDING) {
        pthread_mutex_unlock(&s->mu);
        return api_errorf(e, API_ERR_CLIENT_DISCONNECTED, NULL, "answered already");
    }
    for (int t = 0; t < N_TASKS; t++)
        if (need[t] && s->admitted[t] + need[t] > s->cfg.max_queue) {
            api_errorf(e, API_ERR_QUEUE_FULL, NULL,
                       "the %s queue is full (%ld items, limit %lld); retry later",
                       metrics_task_names[t], s->admitted[t], s->cfg.max_queue);
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
    for (int t = 0; t < N_TASKS; t++) {
        s->admitted[t] += need[t];
        s->items_in_flight += need[t];
        r->reserved[t] = need[t];
    }
    r->n_items = need[TASK_IMAGE] + need[TASK_TEXT];
    for (int q = 0; q < nt; q++) {
        items[q]->req = r;
        req_ref_locked(r); /* the item's */
        router_enqueue_locked(s, items[q]);
    }
    r->prep_s = prism_now() - r->t_prep_start;
    r->decodes_left = a->n_images;
    if (r->n_items == 0) /* classify with every label cached still has its image */
        pipeline_items_done_locked(r);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* One decode job per image, in the request's own lane of the pool: they
 * take turns with other requests' jobs (prep.h). */
static void dispatch_decodes(srv_req *r)
{
    srv_ctx *s = r->srv;
    for (int i = 0; i < r->api.n_images; i++) {
        decode_arg *d = malloc(sizeof *d);
        if (d)
            *d = (decode_arg){.r = r, .index = i};
        req_ref(r); /* the job's */
        if (!d || prep_submit(s->prep, decode_job, d, r, false) != 0) {
            free(d);
            api_error e;
            api_errorf(&e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
            pthread_mutex_lock(&s->mu);
            req_fail_locked(r, &e);
            r->decodes_left--;
            req_unref_locked(r);
            pthread_mutex_unlock(&s->mu);
        }
    }
}

/* An embedding request: parse, check images, prepare texts, admit, then
 * decode images in jobs of their own. */
static void parse_job(void *arg)
{
    srv_req *r = arg;
    api_error e;
    srv_item **items = NULL;
    int nt = 0;
    r->t_prep_start = prism_now();
    if (!req_alive(r)) {
        http_body_release(r->srv, r);
    } else if (parse_body(r, &e) || check_images(r, &e) || alloc_rows(r, &e) ||
               prepare_texts(r, &items, &nt, &e)) {
        req_fail(r, &e);
    } else if (admit(r, items, nt, &e)) {
        items_free(items, nt);
        req_fail(r, &e);
    } else {
        free(items); /* the array; its items are queued */
        dispatch_decodes(r);
    }
    req_unref(r); /* the job's */
}

/* An endpoint whose model this server does not have: 422 model_not_loaded
 * (after the body is found to be a JSON object or a multipart form, so that
 * a malformed body still gets its 400). Runs on a worker like every parse. */
static void unserved_job(void *arg)
{
    srv_req *r = arg;
    srv_ctx *s = r->srv;
    api_error e;
    if (req_alive(r)) {
        if (api_is_multipart(r->content_type) ||
            api_json_object_check(r->body ? r->body : "", r->body_len, &e) == 0) {
            if (r->generative)
                api_errorf(&e, API_ERR_MODEL_NOT_LOADED, NULL,
                           "%s needs a generative (PaLI-style) model; this server has only the "
                           "SigLIP model '%s'",
                           metrics_endpoint_names[r->ep], s->model_name);
            else
                api_errorf(&e, API_ERR_MODEL_NOT_LOADED, NULL,
                           "%s needs a SigLIP model; this server has the generative (pali3) "
                           "model '%s'",
                           metrics_endpoint_names[r->ep], s->gen_model_name);
        }
        req_fail(r, &e);
    }
    http_body_release(r->srv, r);
    req_unref(r); /* the job's */
}

void pipeline_submit(srv_req *r)
{
    srv_ctx *s = r->srv;
    api_error e;
    const bool served = r->generative ? s->pali != NULL : s->model != NULL;
    const prep_fn job = !served ? unserved_job : r->generative ? gen_parse_job : parse_job;
    pthread_mutex_lock(&s->mu);
    if (prep_queued(s->prep) >= s->cfg.max_queue) {
        api_errorf(&e, API_ERR_QUEUE_FULL, NULL,
                   "too many requests are waiting to be parsed; retry later");
        req_fail_locked(r, &e);
    } else {
        r->async = true;
        req_ref_locked(r); /* the job's */
        if (prep_submit(s->prep, job, r, r, false) != 0) {
            req_unref_locked(r);
            api_errorf(&e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
            req_fail_locked(r, &e);
        } else {
            req_suspend_locked(r);
        }
    }
    pthread_mutex_unlock(&s->mu);
    watcher_wake(s);
}

/* ---- the watcher: deadlines and hang-ups --------------------------------- */

static void *watcher_main(void *arg)
{
    srv_ctx *s = arg;
    size_t cap = 0;
    struct pollfd *pfd = NULL;
    srv_req **reqs = NULL;
    double last_trim = prism_now();
    while (!atomic_load(&s->watcher_stop)) {
        if (prism_now() - last_trim >= 5.0) {
            /* hand the memory that freed bodies, images and batches left in
             * the allocator's heaps back to the system, so that RSS follows
             * the load down after a burst (glibc keeps it otherwise) */
            malloc_trim(0);
            last_trim = prism_now();
        }
        pthread_mutex_lock(&s->mu);
        double now = prism_now(), next = now + 1.0;
        size_t n = 0;
        for (srv_req *r = s->pending, *nx; r; r = nx) {
            nx = r->next;
            if (now >= r->deadline) {
                api_error e;
                api_errorf(&e, API_ERR_DEADLINE_EXCEEDED, NULL,
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
            req_ref_locked(r);
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
