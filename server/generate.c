/* generate.c - PaLI-3-style generation behind /v1/caption, /v1/vqa and
 * /v1/chat/completions, when the served model is a pali3 model.
 *
 *   prep worker   gen_parse_job: parse the body (JSON or multipart), check
 *                 the limits, decode + preprocess the image, write the
 *                 prompt text; queue a gen_job (503 when max-queue are
 *                 waiting)
 *   engine worker gen_engine_main: continuous batching. At every step
 *                 boundary it cancels running requests whose client left or
 *                 whose deadline passed (pali_gen_cancel), admits queued jobs
 *                 while the batch has room (pali_gen_start: tokenize, vision
 *                 tower, projector, encoder), runs one pali_gen_step for all
 *                 running requests, and answers the finished ones.
 *
 * With --generative-model the process also serves a SigLIP model, and this
 * same engine worker runs its embedding batches (router.c) too: when both
 * a ready embedding batch and generation work exist, it alternates one
 * embedding batch with one decode step (admission + step), so long
 * generations never starve embeddings and a stream of embedding batches
 * never stalls the decode loop. With only a pali3 model it only decodes.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "api_codec.h"
#include "api_gen.h"
#include "api_multipart.h"
#include "server.h"

#if defined(PRISM_HAVE_IMAGE)
#include "image.h"
#endif

typedef struct gen_job {
    struct gen_job *next;
    srv_req *r;          /* holds a reference */
    float *pixels;
    char *prompt;        /* prompt text, tokenized on the engine worker */
    int max_new_tokens, num_beams;
    int handle;
    int n_prompt;
    bool stream;         /* chat: answer as server-sent events */
    int n_seen;          /* streaming: ids already looked at */
    size_t sent;         /* streaming: bytes of text already sent */
    double infer_s;      /* engine time so far (r->infer_s is set once, under srv->mu) */
} gen_job;

static void job_free(gen_job *j)
{
    if (!j)
        return;
    free(j->pixels);
    free(j->prompt);
    free(j);
}

/* ---- parsing (api/api_gen.c reads the body) -------------------------------- */

static int check_limits(const srv_ctx *s, const api_gen_request *f, api_error *e)
{
    const pali_limits *lim = pali_get_limits(s->pali);
    int max_beams = lim->max_beams < lim->max_seqs ? lim->max_beams : lim->max_seqs;
    if (f->max_new_tokens <= 0)
        return api_errorf(e, 400, "invalid_request", "max_new_tokens",
                          "max_new_tokens must be positive");
    if (f->max_new_tokens > lim->max_new_tokens)
        return api_errorf(e, 413, "too_many_tokens", "max_new_tokens",
                          "max_new_tokens %lld is over this server's limit of %d",
                          f->max_new_tokens, lim->max_new_tokens);
    if (f->num_beams <= 0)
        return api_errorf(e, 400, "invalid_request", "num_beams", "num_beams must be positive");
    if (f->num_beams > max_beams)
        return api_errorf(e, 413, "too_many_beams", "num_beams",
                          "num_beams %lld is over this server's limit of %d", f->num_beams,
                          max_beams);
    return 0;
}

static float *decode_image(srv_ctx *s, const api_gen_request *f, api_error *e)
{
    const char *param = f->prompt ? "image_url" : "image";
    const bool raw = f->image_raw;
#if defined(PRISM_HAVE_IMAGE)
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (raw) { /* a multipart file part: the bytes themselves */
        bytes = malloc(f->image_len ? f->image_len : 1);
        if (!bytes) {
            api_errorf(e, 500, "out_of_memory", param, "out of memory");
            return NULL;
        }
        memcpy(bytes, f->image, f->image_len);
        n = f->image_len;
    } else if (api_image_decode(f->image, f->image_len, param, &bytes, &n, e)) {
        return NULL;
    }
    const pali_config *c = pali_get_config(s->pali);
    const int S = c->vision.image_size;
    float *px = malloc((size_t)3 * S * S * sizeof(float));
    prism_error err = {0};
    if (!px) {
        api_errorf(e, 500, "out_of_memory", param, "out of memory");
    } else if (image_to_pixel_values(bytes, n, &s->pali_pre, (size_t)s->cfg.max_image_pixels, px,
                                     &err)) {
        api_errorf(e, 400, "invalid_image", param, "%s: %s", param, err.msg);
        free(px);
        px = NULL;
    }
    free(bytes);
    return px;
#else
    (void)raw;
    api_errorf(e, 422, "images_unsupported", param, "this build has no image decoding");
    return NULL;
#endif
}

void gen_parse_job(void *arg)
{
    srv_req *r = arg;
    srv_ctx *s = r->srv;
    api_error e;
    api_gen_request f = {0};
    gen_job *j = NULL;
    pthread_mutex_lock(&s->mu);
    bool alive = r->state == REQ_PENDING;
    pthread_mutex_unlock(&s->mu);
    if (!alive)
        goto out;
    r->t_prep_start = prism_now();
    const api_gen_op op = r->ep == EP_CHAT ? API_GEN_CHAT
                          : r->ep == EP_VQA ? API_GEN_VQA
                                            : API_GEN_CAPTION;
    const char *body = r->body ? r->body : "";
    int rc = api_is_multipart(r->content_type)
                 ? api_gen_parse_multipart(&f, op, r->content_type, body, r->body_len, &e)
                 : api_gen_parse_json(&f, op, body, r->body_len, &e);
    if (rc == 0 && f.model && strcmp(f.model, s->gen_model_name) != 0)
        rc = api_errorf(&e, 404, "model_not_found", "model",
                        "model '%.100s' is not served here (GET /v1/models lists it)", f.model);
    if (rc == 0) { /* the defaults */
        const int limit = pali_get_limits(s->pali)->max_new_tokens;
        if (!f.has_max_new_tokens)
            f.max_new_tokens = limit < 32 ? limit : 32;
        if (!f.has_num_beams)
            f.num_beams = 1;
    }
    if (rc == 0)
        rc = check_limits(s, &f, &e);
    if (rc == 0) {
        j = calloc(1, sizeof *j);
        if (!j)
            rc = api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
    }
    if (rc == 0) {
        j->max_new_tokens = (int)f.max_new_tokens;
        j->num_beams = (int)f.num_beams;
        j->stream = f.stream;
        if (r->ep == EP_CHAT) {
            j->prompt = strdup(f.prompt);
        } else {
            const char *q = f.question;
            char buf[1024];
            prism_error perr = {0};
            if (pali_prompt_text(s->pali, r->ep == EP_VQA ? PALI_TASK_VQA : PALI_TASK_CAPTION,
                                 f.lang ? f.lang : "en", q, buf, sizeof buf, &perr))
                rc = api_errorf(&e, 400, "prompt_too_long", r->ep == EP_VQA ? "question" : "lang",
                                "%s", perr.msg);
            else
                j->prompt = strdup(buf);
        }
        if (rc == 0 && !j->prompt)
            rc = api_errorf(&e, 500, "out_of_memory", NULL, "out of memory");
    }
    if (rc == 0) {
        double t0 = prism_now();
        j->pixels = decode_image(s, &f, &e);
        if (!j->pixels)
            rc = -1;
        else
            metrics_preprocess(&s->metrics, 0, prism_now() - t0, 1);
    }
    api_gen_request_free(&f);
    free(r->body);
    r->body = NULL;
    if (rc) {
        job_free(j);
        req_fail(r, &e);
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    r->prep_s = prism_now() - r->t_prep_start;
    if (r->state != REQ_PENDING) {
        job_free(j);
    } else if (s->gq_len >= s->cfg.max_queue) {
        job_free(j);
        api_errorf(&e, 503, "queue_full", NULL,
                   "the generation queue is full (%ld requests); retry later", s->gq_len);
        req_fail_locked(r, &e);
    } else {
        j->r = r;
        r->refs++;
        r->n_items = 1;
        r->t_enqueue = prism_now();
        if (s->gq_tail)
            s->gq_tail->next = j;
        else
            s->gq_head = j;
        s->gq_tail = j;
        s->gq_len++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
out:
    req_unref(r);
}

/* ---- responses ----------------------------------------------------------- */

static void fail_job_engine(srv_req *r, const char *what, const prism_error *err);

static const char *finish_name(pali_finish f, bool openai)
{
    if (f == PALI_FINISH_EOS)
        return openai ? "stop" : "eos";
    if (f == PALI_FINISH_LENGTH)
        return "length";
    return "cancelled";
}

static void put_chunk(api_buf *b, const srv_req *r, const char *model, int64_t created,
                      const char *role, const char *content, const char *finish)
{
    api_buf_printf(b, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\","
                      "\"created\":%lld,\"model\":",
                   r->id, (long long)created);
    api_buf_json_string(b, model, strlen(model));
    api_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{");
    if (role)
        api_buf_printf(b, "\"role\":\"%s\"", role);
    if (content) {
        if (role)
            api_buf_puts(b, ",");
        api_buf_puts(b, "\"content\":");
        api_buf_json_string(b, content, strlen(content));
    }
    api_buf_puts(b, "},\"finish_reason\":");
    if (finish)
        api_buf_printf(b, "\"%s\"", finish);
    else
        api_buf_puts(b, "null");
    api_buf_puts(b, "}]}\n\n");
}

/* Writes the answer of a finished job (engine worker, srv->mu not held). */
static void answer(srv_ctx *s, gen_job *j, const pali_result *res)
{
    srv_req *r = j->r;
    char *text = NULL;
    prism_error err = {0};
    if (pali_detokenize(s->pali, res->ids, res->n_ids, &text, &err)) {
        fail_job_engine(r, "detokenizing failed", &err);
        return;
    }
    api_buf b = {0};
    int64_t created = (int64_t)time(NULL);
    if (r->ep != EP_CHAT) {
        api_buf_puts(&b, "{\"model\":");
        api_buf_json_string(&b, s->gen_model_name, strlen(s->gen_model_name));
        api_buf_puts(&b, ",\"text\":");
        api_buf_json_string(&b, text, strlen(text));
        api_buf_puts(&b, ",\"ids\":[");
        for (int i = 0; i < res->n_ids; i++)
            api_buf_printf(&b, "%s%d", i ? "," : "", (int)res->ids[i]);
        api_buf_printf(&b, "],\"tokens\":%d,\"finish_reason\":\"%s\"}", res->n_ids,
                       finish_name(res->finish, false));
    } else if (!j->stream) {
        api_buf_printf(&b, "{\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion\","
                           "\"created\":%lld,\"model\":",
                       r->id, (long long)created);
        api_buf_json_string(&b, s->gen_model_name, strlen(s->gen_model_name));
        api_buf_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"content\":");
        api_buf_json_string(&b, text, strlen(text));
        api_buf_printf(&b, "},\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%d,"
                           "\"completion_tokens\":%d,\"total_tokens\":%d}}",
                       finish_name(res->finish, true), j->n_prompt, res->n_ids,
                       j->n_prompt + res->n_ids);
    } else {
        /* the rest of the streamed text (all of it for beam search), the
         * finish chunk, [DONE] */
        size_t n = strlen(text);
        if (n > j->sent)
            put_chunk(&b, r, s->gen_model_name, created, NULL, text + j->sent, NULL);
        put_chunk(&b, r, s->gen_model_name, created, NULL, NULL, finish_name(res->finish, true));
        api_buf_puts(&b, "data: [DONE]\n\n");
        free(text);
        size_t len = 0;
        char *ev = api_buf_finish(&b, &len);
        pthread_mutex_lock(&s->mu);
        req_stream_push_locked(r, ev ? ev : "", ev ? len : 0, true);
        pthread_mutex_unlock(&s->mu);
        free(ev);
        return;
    }
    free(text);
    size_t len = 0;
    char *body = api_buf_finish(&b, &len);
    pthread_mutex_lock(&s->mu);
    if (r->state == REQ_PENDING)
        r->infer_s = j->infer_s;
    pthread_mutex_unlock(&s->mu);
    if (!body) {
        api_error e;
        api_errorf(&e, 500, "out_of_memory", NULL, "out of memory while writing the response");
        req_fail(r, &e);
        return;
    }
    req_respond(r, 200, body, len, "application/json");
}

/* Streaming: starts the event stream of a job that just joined the batch. */
static void stream_start(srv_ctx *s, gen_job *j)
{
    api_buf b = {0};
    put_chunk(&b, j->r, s->gen_model_name, (int64_t)time(NULL), "assistant", NULL, NULL);
    size_t len = 0;
    char *ev = api_buf_finish(&b, &len);
    pthread_mutex_lock(&s->mu);
    if (j->r->state == REQ_PENDING)
        j->r->infer_s = j->infer_s; /* the headers go out now */
    if (req_stream_start_locked(j->r))
        req_stream_push_locked(j->r, ev ? ev : "", ev ? len : 0, false);
    pthread_mutex_unlock(&s->mu);
    free(ev);
}

/* Streaming, greedy: sends the text the new tokens of a running job add
 * (pali_gen_tokens, detokenized: the decoded text of a prefix of the ids
 * is a prefix of the final text). */
static void stream_progress(srv_ctx *s, gen_job *j)
{
    const int32_t *ids;
    int n;
    if (j->num_beams != 1 || j->handle < 0 || !j->r->streaming ||
        pali_gen_tokens(s->gen, j->handle, &ids, &n) || n <= j->n_seen)
        return;
    j->n_seen = n;
    char *text = NULL;
    prism_error err = {0};
    if (pali_detokenize(s->pali, ids, n, &text, &err))
        return;
    size_t len = strlen(text);
    if (len > j->sent) {
        /* the text already sent must still be its prefix */
        api_buf b = {0};
        put_chunk(&b, j->r, s->gen_model_name, (int64_t)time(NULL), NULL, text + j->sent, NULL);
        size_t blen = 0;
        char *ev = api_buf_finish(&b, &blen);
        if (ev) {
            pthread_mutex_lock(&s->mu);
            req_stream_push_locked(j->r, ev, blen, false);
            pthread_mutex_unlock(&s->mu);
            j->sent = len;
        }
        free(ev);
    }
    free(text);
}

/* ---- the engine worker --------------------------------------------------- */

/* Fails a generation request after an engine error (503 when memory ran
 * out, 500 otherwise; engine_error), or ends its stream if it already began. */
static void fail_job_engine(srv_req *r, const char *what, const prism_error *err)
{
    api_error e;
    engine_error(r->srv, &e, what, err);
    pthread_mutex_lock(&r->srv->mu);
    if (r->streaming) /* already answered 200: end the stream */
        req_stream_push_locked(r, "data: [DONE]\n\n", 14, true);
    else
        req_fail_locked(r, &e);
    pthread_mutex_unlock(&r->srv->mu);
}

void *gen_engine_main(void *arg)
{
    srv_ctx *s = arg;
    const pali_limits *lim = pali_get_limits(s->pali);
    gen_job **running = calloc((size_t)lim->max_seqs, sizeof *running);
    gen_job **admit = calloc((size_t)lim->max_seqs, sizeof *admit);
    pali_request *reqs = calloc((size_t)lim->max_seqs, sizeof *reqs);
    int32_t *ids = malloc((size_t)lim->max_seqs * lim->max_prompt_tokens * sizeof *ids);
    int *handles = calloc((size_t)lim->max_seqs, sizeof *handles);
    int n_running = 0;
    if (!running || !admit || !reqs || !ids || !handles) {
        log_msg(&s->log, LOG_ERROR, "engine worker: out of memory", "generation disabled");
        free(running), free(admit), free(reqs), free(ids), free(handles);
        return NULL;
    }
    embed_bufs *eb = NULL;
    if (s->model) { /* both models: the SigLIP side warms up first */
        eb = embed_bufs_create(s);
        embed_warmup(s, eb);
    }
    engine_ready(s);
    uint64_t last_tokens = 0;
    bool embed_turn = true; /* both models: an embedding batch may go before the next step */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        double wake = INFINITY;
        if (s->model) {
            int t = router_pick_task_locked(s, prism_now(), &wake);
            if (t >= 0 && (embed_turn || (n_running == 0 && !s->gq_head))) {
                embed_run_batch_locked(s, eb, t);
                embed_turn = false;
                continue;
            }
        }
        embed_turn = true; /* a decode step goes now; an embedding batch next */
        /* cancel running requests nobody waits for any more */
        for (int i = 0; i < n_running; i++)
            if (running[i]->handle >= 0 &&
                (running[i]->r->streaming ? running[i]->r->conn == NULL
                                          : running[i]->r->state != REQ_PENDING)) {
                pali_gen_cancel(s->gen, running[i]->handle);
                running[i]->handle = -1; /* its cancelled result is dropped below */
            }
        /* admit at the step boundary while the batch has room */
        int n_admit = 0, free_seqs = pali_gen_free_seqs(s->gen),
            free_reqs = pali_gen_free_requests(s->gen);
        while (s->gq_head && n_admit < free_reqs && s->gq_head->num_beams <= free_seqs) {
            gen_job *j = s->gq_head;
            s->gq_head = j->next;
            if (!s->gq_head)
                s->gq_tail = NULL;
            s->gq_len--;
            j->next = NULL;
            if (j->r->state != REQ_PENDING) {
                req_unref_locked(j->r);
                job_free(j);
                continue;
            }
            double w = prism_now() - j->r->t_enqueue;
            j->r->queue_s = w;
            free_seqs -= j->num_beams;
            admit[n_admit++] = j;
        }
        if (n_admit == 0 && n_running == 0) {
            if (s->stopping && !s->gq_head && !s->q_len[TASK_IMAGE] && !s->q_len[TASK_TEXT])
                break;
            router_wait_until_locked(s, wake);
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        /* tokenize the prompts; a prompt that does not tokenize is a 400 */
        int n_ok = 0;
        for (int i = 0; i < n_admit; i++) {
            gen_job *j = admit[i];
            int32_t *p = ids + (size_t)n_ok * lim->max_prompt_tokens;
            prism_error err = {0};
            if (pali_tokenize(s->pali, j->prompt, p, lim->max_prompt_tokens, &j->n_prompt, &err)) {
                api_error e;
                api_errorf(&e, 400, "prompt_too_long", j->r->ep == EP_CHAT ? "text" : j->r->ep == EP_VQA ? "question" : "lang", "%s", err.msg);
                req_fail(j->r, &e);
                req_unref(j->r);
                job_free(j);
                continue;
            }
            reqs[n_ok] = (pali_request){.pixels = j->pixels, .prompt_ids = p,
                                        .n_prompt = j->n_prompt,
                                        .max_new_tokens = j->max_new_tokens,
                                        .num_beams = j->num_beams, .length_penalty = 1.0f,
                                        .t_submit = j->r->t_arrival, .user = j};
            admit[n_ok++] = j;
        }
        if (n_ok) {
            prism_error err = {0};
            double t0 = prism_now();
            if (pali_gen_start(s->gen, reqs, n_ok, handles, &err)) {
                log_msg(&s->log, LOG_ERROR, "pali_gen_start failed", err.msg);
                for (int i = 0; i < n_ok; i++) {
                    fail_job_engine(admit[i]->r, "starting generation failed", &err);
                    req_unref(admit[i]->r);
                    job_free(admit[i]);
                }
            } else {
                double dt = prism_now() - t0;
                for (int i = 0; i < n_ok; i++) {
                    admit[i]->handle = handles[i];
                    admit[i]->infer_s += dt;
                    running[n_running++] = admit[i];
                    if (admit[i]->stream)
                        stream_start(s, admit[i]);
                }
            }
        }

        /* one decoder step for everyone */
        if (s->cfg.test_batch_sleep_ms > 0 && pali_gen_running(s->gen) > 0)
            usleep((useconds_t)(s->cfg.test_batch_sleep_ms * 1e3)); /* tests: a slow step */
        prism_error err = {0};
        double t0 = prism_now();
        int rc = pali_gen_running(s->gen) > 0 ? pali_gen_step(s->gen, &err) : 0;
        double dt = prism_now() - t0;
        const pali_gen_stats *st = pali_gen_get_stats(s->gen);
        metrics_gen_step(&s->metrics, rc == 0 && st->generated_tokens > last_tokens ? dt : -1,
                         st->generated_tokens - last_tokens, st->running_sequences);
        last_tokens = st->generated_tokens;
        for (int i = 0; i < n_running; i++)
            running[i]->infer_s += dt;
        if (rc) {
            log_msg(&s->log, LOG_ERROR, "pali_gen_step failed", err.msg);
            for (int i = 0; i < n_running; i++)
                if (running[i]->handle >= 0)
                    pali_gen_cancel(s->gen, running[i]->handle);
        }
        for (int i = 0; rc == 0 && i < n_running; i++)
            if (running[i]->stream)
                stream_progress(s, running[i]);
        pali_result res;
        while (pali_gen_take(s->gen, &res)) {
            gen_job *j = res.user;
            if (res.finish != PALI_FINISH_CANCELLED && res.n_ids > 0)
                metrics_ttft(&s->metrics, res.ttft_seconds);
            if (rc)
                fail_job_engine(j->r, "decoding failed", &err);
            else if (j->handle >= 0)
                answer(s, j, &res);
            else
                fail_job_engine(j->r, "cancelled",
                                &(prism_error){.msg = "the client went away"});
            pali_result_free(&res);
            for (int i = 0; i < n_running; i++)
                if (running[i] == j) {
                    running[i] = running[--n_running];
                    break;
                }
            req_unref(j->r);
            job_free(j);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    embed_bufs_free(eb);
    free(running), free(admit), free(reqs), free(ids), free(handles);
    return NULL;
}
