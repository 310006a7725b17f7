/* generate.c - generation behind /v1/caption, /v1/vqa, /v1/chat/completions,
 * /v1/detect and /v1/ocr, when the served model is a pali3, PaliGemma or
 * Florence-2 model (engine/pali.h serves all three; /v1/detect needs
 * PaliGemma or Florence-2, /v1/ocr and caption `detail` need Florence-2).
 *
 * Florence-2 is driven by task tokens (engine/florence2_tasks.h): each
 * endpoint picks its task (florence2_task), the processor's prompt is
 * built from it, and the answer is the processor's post-processing of the
 * generated text (special tokens kept) in the input image's pixels.
 *
 *   prep worker   gen_parse_job, in steps: parse_gen_body (JSON or
 *                 multipart, the model, the limits), tokenize_prompt (only
 *                 as far as --gen-max-prompt-tokens: a longer prompt is a
 *                 400 here, never work for the engine worker), decode_image
 *                 (its header first: the same 415 / 413 / 400 as the
 *                 embedding endpoints), enqueue_job (503 when max-queue are
 *                 waiting)
 *   engine worker gen_engine_main: continuous batching. At every step
 *                 boundary: cancel_gone_locked (the client left, the
 *                 deadline passed, the stream closed: pali_gen_cancel),
 *                 admit_locked (queued jobs while the batch has room),
 *                 start_jobs (vision tower, projector, encoder: pali_gen_start),
 *                 step_all (one pali_gen_step for all running requests;
 *                 streams get their new text), dispatch_results (answers
 *                 the finished ones).
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
#include "detect.h"
#include "server.h"

#if defined(PRISM_HAVE_IMAGE)
#include "image.h"
#endif

typedef struct gen_job {
    struct gen_job *next;
    srv_req *r;          /* holds a reference */
    float *pixels;
    int32_t *ids;        /* the prompt's ids (tokenized by the preprocessing worker) */
    int n_prompt;
    int max_new_tokens, num_beams;
    int width, height;   /* the image as decoded and turned upright (the boxes' frame) */
    const char *task;    /* Florence-2: the task token its answer is post-processed for */
    int handle;
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
    free(j->ids);
    free(j);
}

/* ---- parsing (api/api_gen.c reads the body) -------------------------------- */

static int check_limits(const srv_ctx *s, const api_gen_request *f, api_error *e)
{
    const pali_limits *lim = pali_get_limits(s->pali);
    int max_beams = lim->max_beams < lim->max_seqs ? lim->max_beams : lim->max_seqs;
    if (f->max_new_tokens <= 0)
        return api_errorf(e, API_ERR_INVALID_VALUE, "max_new_tokens",
                          "max_new_tokens must be positive");
    if (f->max_new_tokens > lim->max_new_tokens)
        return api_errorf(e, API_ERR_TOO_MANY_TOKENS, "max_new_tokens",
                          "max_new_tokens %lld is over this server's limit of %d",
                          f->max_new_tokens, lim->max_new_tokens);
    if (f->num_beams <= 0)
        return api_errorf(e, API_ERR_INVALID_VALUE, "num_beams", "num_beams must be positive");
    if (f->num_beams > max_beams)
        return api_errorf(e, API_ERR_TOO_MANY_BEAMS, "num_beams",
                          "num_beams %lld is over this server's limit of %d", f->num_beams,
                          max_beams);
    return 0;
}

static const char *family_name(const pali_info *info)
{
    return info->florence2 ? "Florence-2" : info->paligemma ? "PaliGemma" : "pali3";
}

/* The fields only some model families take. */
static int check_model_fields(const srv_ctx *s, metrics_endpoint ep, const api_gen_request *f,
                              api_error *e)
{
    const pali_info *info = pali_get_info(s->pali);
    if (ep == EP_DETECT && !info->paligemma && !info->florence2)
        return api_errorf(e, API_ERR_MODEL_NOT_LOADED, NULL,
                          "/v1/detect needs a PaliGemma or Florence-2 model; %s is a %s model",
                          s->gen_model_name, family_name(info));
    if (ep == EP_DETECT && info->paligemma && f->n_labels == 0)
        return api_errorf(e, API_ERR_MISSING_FIELD, "labels",
                          "labels is required: what to find, e.g. [\"cat\", \"dog\"]");
    if (ep == EP_OCR && !info->florence2)
        return api_errorf(e, API_ERR_MODEL_NOT_LOADED, NULL,
                          "/v1/ocr needs a Florence-2 model; %s is a %s model", s->gen_model_name,
                          family_name(info));
    if (f->has_detail && f->detail != API_DETAIL_BRIEF && !info->florence2)
        return api_errorf(e, API_ERR_INVALID_VALUE, "detail",
                          "detail other than \"brief\" needs a Florence-2 model; %s is a %s "
                          "model", s->gen_model_name, family_name(info));
    if (info->florence2 && f->lang && strcmp(f->lang, "en") != 0)
        return api_errorf(e, API_ERR_INVALID_VALUE, "lang",
                          "Florence-2 answers in English only: lang must be \"en\" or absent");
    return 0;
}

/* Florence-2: the task token of a request; NULL for chat and VQA, whose
 * text goes as it is (a task token at its start is honoured by
 * florence2_build_prompt). */
static const char *florence2_task(metrics_endpoint ep, const api_gen_request *f)
{
    static const char *const captions[] = {"<CAPTION>", "<DETAILED_CAPTION>",
                                           "<MORE_DETAILED_CAPTION>"};
    switch (ep) {
    case EP_CAPTION:
        return captions[f->has_detail ? f->detail : API_DETAIL_BRIEF];
    case EP_OCR:
        return f->regions ? "<OCR_WITH_REGION>" : "<OCR>";
    case EP_DETECT:
        return f->n_labels ? "<CAPTION_TO_PHRASE_GROUNDING>" : "<OD>";
    default:
        return NULL;
    }
}

/* Florence-2: the prompt text (malloc'd) of a request, the processor's
 * expansion of its task; j->task is set for the answer's post-processing. */
static char *florence2_prompt(const api_gen_request *f, metrics_endpoint ep, gen_job *j,
                              const char *param, api_error *e)
{
    j->task = florence2_task(ep, f);
    /* the task token, then its input: the labels ", "-joined (they hold no
     * ';'), or the chat / VQA text */
    const char *input = ep == EP_DETECT ? (f->labels ? f->labels : "")
                        : ep == EP_CHAT ? f->prompt
                        : ep == EP_VQA  ? f->question
                                        : "";
    const size_t n_task = j->task ? strlen(j->task) : 0, n_input = strlen(input);
    char *text = malloc(n_task + n_input + 1);
    if (!text) {
        api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
        return NULL;
    }
    memcpy(text, j->task ? j->task : "", n_task);
    size_t k = n_task;
    for (size_t i = 0; i < n_input; i++) {
        if (ep == EP_DETECT && strncmp(input + i, " ; ", 3) == 0) {
            memcpy(text + k, ", ", 2);
            k += 2;
            i += 2;
        } else {
            text[k++] = input[i];
        }
    }
    text[k] = '\0';
    /* the longest expansion adds a few dozen bytes to the text */
    const size_t cap = k + 512;
    char *prompt = malloc(cap);
    prism_error perr = {0};
    if (!prompt) {
        api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
    } else if (florence2_build_prompt(text, prompt, cap, &perr)) {
        api_errorf(e, API_ERR_INVALID_VALUE, param, "%s: %s", param, perr.msg);
        free(prompt);
        prompt = NULL;
    }
    free(text);
    return prompt;
}

/* The steps of gen_parse_job; each returns 0 or -1 with the answer in *e and
 * frees what it allocated when it fails. */

/* The body into *f, checked against the model and the limits; the body is
 * freed either way. */
static int parse_gen_body(srv_req *r, api_gen_request *f, api_error *e)
{
    srv_ctx *s = r->srv;
    const api_gen_op op = r->ep == EP_CHAT     ? API_GEN_CHAT
                          : r->ep == EP_VQA    ? API_GEN_VQA
                          : r->ep == EP_DETECT ? API_GEN_DETECT
                          : r->ep == EP_OCR    ? API_GEN_OCR
                                               : API_GEN_CAPTION;
    const char *body = r->body ? r->body : "";
    int rc = api_is_multipart(r->content_type)
                 ? api_gen_parse_multipart(f, op, r->content_type, body, r->body_len, e)
                 : api_gen_parse_json(f, op, body, r->body_len, e);
    http_body_release(r->srv, r);
    if (rc)
        return -1;
    if (f->model && strcmp(f->model, s->gen_model_name) != 0)
        return pipeline_model_not_found(r, f->model, e);
    if (check_model_fields(s, r->ep, f, e))
        return -1;
    const int limit = pali_get_limits(s->pali)->max_new_tokens;
    /* detection writes about 8 tokens per object (Florence-2: 4 per box),
     * OCR and detailed captions run longer than a short caption */
    const bool long_answer = r->ep == EP_DETECT || r->ep == EP_OCR ||
                             (f->has_detail && f->detail != API_DETAIL_BRIEF);
    const int dflt = long_answer ? 64 : 32;
    if (!f->has_max_new_tokens)
        f->max_new_tokens = limit < dflt ? limit : dflt;
    if (!f->has_num_beams)
        f->num_beams = 1;
    return check_limits(s, f, e);
}

/* The prompt's ids: the chat text, or the model's caption/VQA template
 * filled in. Tokenized here, on a preprocessing worker, and only as far as
 * the prompt limit: a long prompt fails early and never reaches the engine
 * worker. */
static int tokenize_prompt(srv_req *r, const api_gen_request *f, gen_job *j, api_error *e)
{
    srv_ctx *s = r->srv;
    const int max_ids = pali_get_limits(s->pali)->max_prompt_tokens;
    const bool florence2 = pali_get_info(s->pali)->florence2;
    const char *param = r->ep == EP_CHAT     ? "messages"
                        : r->ep == EP_VQA    ? "question"
                        : r->ep == EP_DETECT ? "labels"
                        : florence2          ? "detail"
                                             : "lang";
    char buf[API_DETECT_MAX_LABELS * (API_DETECT_LABEL_MAX + 3) + 16];
    const char *text = f->prompt;
    char *f2_prompt = NULL;
    prism_error perr = {0};
    if (florence2) {
        if (!(f2_prompt = florence2_prompt(f, r->ep, j, param, e)))
            return -1;
        text = f2_prompt;
    } else if (r->ep == EP_DETECT) { /* PaliGemma's detection prompt */
        snprintf(buf, sizeof buf, "detect %s", f->labels);
        text = buf;
    } else if (r->ep != EP_CHAT) {
        if (pali_prompt_text(s->pali, r->ep == EP_VQA ? PALI_TASK_VQA : PALI_TASK_CAPTION,
                             f->lang ? f->lang : "en", f->question, buf, sizeof buf, &perr))
            return api_errorf(e, API_ERR_PROMPT_TOO_LONG, param, "%s", perr.msg);
        text = buf;
    }
    j->ids = malloc((size_t)max_ids * sizeof *j->ids);
    if (!j->ids) {
        free(f2_prompt);
        return api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
    }
    const int trc = pali_tokenize(s->pali, text, j->ids, max_ids, &j->n_prompt, &perr);
    free(f2_prompt);
    if (trc) {
        free(j->ids);
        j->ids = NULL;
        return api_errorf(e, trc == -2 ? API_ERR_INVALID_TEXT : API_ERR_PROMPT_TOO_LONG, param,
                          "%s", perr.msg);
    }
    return 0;
}

/* The image: its header first (the same 415 / 413 / 400 as the embedding
 * endpoints), then decoded and preprocessed for the vision tower. */
static int decode_image(srv_req *r, const api_gen_request *f, gen_job *j, api_error *e)
{
    srv_ctx *s = r->srv;
    const char *param = f->prompt ? "image_url" : "image";
#if defined(PRISM_HAVE_IMAGE)
    uint8_t *bytes = NULL;
    size_t n = 0;
    const uint8_t *data;
    if (f->image_raw) { /* a multipart file part: the bytes themselves */
        data = (const uint8_t *)f->image;
        n = f->image_len;
    } else if (api_image_decode(f->image, f->image_len, param, &bytes, &n, e)) {
        return -1;
    } else {
        data = bytes;
    }
    const size_t max_pixels = (size_t)s->cfg.max_image_pixels;
    int rc = inputs_probe_image(data, n, max_pixels, param, e);
    if (rc == 0) {
        const int S = pali_get_config(s->pali)->vision.image_size;
        double t0 = prism_now();
        prism_error err = {0};
        j->pixels = malloc((size_t)3 * S * S * sizeof(float));
        if (!j->pixels) {
            rc = api_errorf(e, API_ERR_OUT_OF_MEMORY, param, "out of memory");
        } else if (image_to_pixel_values(data, n, &s->pali_pre, max_pixels, j->pixels, &err)) {
            rc = api_errorf(e, API_ERR_INVALID_IMAGE, param, "%s: %s", param, err.msg);
            free(j->pixels);
            j->pixels = NULL;
        } else {
            metrics_preprocess(&s->metrics, 0, prism_now() - t0, 1);
            image_info info;
            if (image_probe(data, n, &info, &err) == 0) { /* decoded above: cannot fail */
                j->width = info.out_width;
                j->height = info.out_height;
            }
        }
    }
    free(bytes);
    return rc;
#else
    (void)r, (void)j, (void)s;
    return api_errorf(e, API_ERR_IMAGES_UNSUPPORTED, param, "this build has no image decoding");
#endif
}

/* Into the generation queue (503 when max-queue requests wait there). */
static int enqueue_job(srv_req *r, gen_job *j, api_error *e)
{
    srv_ctx *s = r->srv;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    r->prep_s = prism_now() - r->t_prep_start;
    if (r->state != REQ_PENDING) {
        rc = api_errorf(e, API_ERR_CLIENT_DISCONNECTED, NULL, "answered already");
    } else if (s->gq_len >= s->cfg.max_queue) {
        rc = api_errorf(e, API_ERR_QUEUE_FULL, NULL,
                        "the generation queue is full (%ld requests); retry later", s->gq_len);
    } else {
        j->r = r;
        req_ref_locked(r); /* the job's */
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
    return rc;
}

/* A generation request on a preprocessing worker: parse, tokenize the
 * prompt, decode the image, queue the job for the engine worker. */
void gen_parse_job(void *arg)
{
    srv_req *r = arg;
    api_error e;
    api_gen_request f = {0};
    gen_job *j = NULL;
    r->t_prep_start = prism_now();
    if (!req_alive(r)) {
        http_body_release(r->srv, r);
    } else if (parse_gen_body(r, &f, &e)) {
        req_fail(r, &e);
    } else if (!(j = calloc(1, sizeof *j))) {
        api_errorf(&e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
        req_fail(r, &e);
    } else {
        j->max_new_tokens = (int)f.max_new_tokens;
        j->num_beams = (int)f.num_beams;
        j->stream = f.stream;
        if (tokenize_prompt(r, &f, j, &e) || decode_image(r, &f, j, &e) ||
            enqueue_job(r, j, &e)) {
            job_free(j);
            req_fail(r, &e);
        }
    }
    api_gen_request_free(&f);
    req_unref(r); /* the parse job's */
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

/* detect: ,"width":W,"height":H,"objects":[{"label","box":[x_min, y_min,
 * x_max, y_max]}] from the <loc> groups of the text (engine/detect.h), in
 * the pixels of the image as decoded and turned upright. */
static void put_objects(api_buf *b, const char *text, int width, int height)
{
    enum { MAX_BOXES = 256 }; /* a 1024-token answer holds at most ~200 */
    detect_box *boxes = malloc(MAX_BOXES * sizeof *boxes);
    const int n = boxes ? detect_parse(text, width, height, boxes, MAX_BOXES) : 0;
    api_buf_printf(b, ",\"width\":%d,\"height\":%d,\"objects\":[", width, height);
    for (int i = 0; i < n && i < MAX_BOXES; i++) {
        api_buf_puts(b, i ? ",{\"label\":" : "{\"label\":");
        api_buf_json_string(b, boxes[i].label, strlen(boxes[i].label));
        api_buf_printf(b, ",\"box\":[%.3f,%.3f,%.3f,%.3f]}", boxes[i].x_min, boxes[i].y_min,
                       boxes[i].x_max, boxes[i].y_max);
    }
    api_buf_puts(b, "]");
    free(boxes);
}

/* Florence-2's structured answers: ,"width":W,"height":H, then detect's
 * "objects":[{"label","box":[x0,y0,x1,y1]}] or OCR's
 * "regions":[{"text","quad":[x0,y0,...,x3,y3]}], in the pixels of the image
 * as decoded and turned upright. */
static void put_florence2_items(api_buf *b, metrics_endpoint ep, const florence2_result *res,
                                int width, int height)
{
    const bool ocr = ep == EP_OCR;
    api_buf_printf(b, ",\"width\":%d,\"height\":%d,\"%s\":[", width, height,
                   ocr ? "regions" : "objects");
    int k = 0;
    for (int i = 0; i < res->n_items; i++) {
        const florence2_item *it = &res->items[i];
        if (it->n_coords != (ocr ? 8 : 4))
            continue; /* not a box (or quad): the processor's kinds for these tasks give none */
        api_buf_puts(b, k++ ? (ocr ? ",{\"text\":" : ",{\"label\":")
                            : (ocr ? "{\"text\":" : "{\"label\":"));
        api_buf_json_string(b, it->label, strlen(it->label));
        api_buf_puts(b, ocr ? ",\"quad\":[" : ",\"box\":[");
        for (int c = 0; c < it->n_coords; c++)
            api_buf_printf(b, "%s%.3f", c ? "," : "", it->coords[c]);
        api_buf_puts(b, "]}");
    }
    api_buf_puts(b, "]");
}

/* The text a Florence-2 answer gives beside its items: the region texts one
 * per line (OCR), or the generated text without <s>, </s> and <pad> (detect:
 * labels and <loc_N> tokens, as PaliGemma's detect answers its text). */
static char *florence2_items_text(metrics_endpoint ep, const char *raw,
                                  const florence2_result *res)
{
    api_buf t = {0};
    if (ep == EP_OCR) {
        for (int i = 0; i < res->n_items; i++) {
            if (i)
                api_buf_puts(&t, "\n");
            api_buf_puts(&t, res->items[i].label);
        }
    } else {
        static const char *const specials[] = {"<s>", "</s>", "<pad>"};
        for (const char *p = raw; *p;) {
            const char *lt = strchr(p + 1, '<'); /* the next place a special can start */
            size_t skip = 0;
            for (int i = 0; i < 3 && !skip; i++)
                if (strncmp(p, specials[i], strlen(specials[i])) == 0)
                    skip = strlen(specials[i]);
            const size_t run = skip ? 0 : (lt ? (size_t)(lt - p) : strlen(p));
            api_buf_putn(&t, p, run);
            p += skip + run;
        }
    }
    size_t len;
    return api_buf_finish(&t, &len);
}

/* Florence-2: the answer's text (*text, malloc'd) and, for detect and ocr,
 * its items (*res), post-processed as the processor does for j->task (pure
 * text when the job has none: chat, VQA). */
static int florence2_answer(srv_ctx *s, gen_job *j, const int32_t *ids, int n, char **text,
                            florence2_result *res, prism_error *err)
{
    char *raw = NULL;
    *text = NULL;
    memset(res, 0, sizeof *res);
    if (pali_decode_florence2(s->pali, ids, n, true, &raw, err))
        return -1;
    const char *task = j->task ? j->task : "<CAPTION>";
    int rc = florence2_post_process(s->f2_post, raw, task, j->width > 0 ? j->width : 1,
                                    j->height > 0 ? j->height : 1, res, err);
    if (rc == 0) {
        if (res->kind == FLORENCE2_POST_PURE_TEXT)
            *text = strdup(res->text ? res->text : "");
        else
            *text = florence2_items_text(j->r->ep, raw, res);
        if (!*text)
            rc = prism_errorf(err, "out of memory");
    }
    free(raw);
    if (rc)
        florence2_result_free(res);
    return rc;
}

/* Writes the answer of a finished job (engine worker, srv->mu not held). */
static void answer(srv_ctx *s, gen_job *j, const pali_result *res)
{
    srv_req *r = j->r;
    char *text = NULL;
    prism_error err = {0};
    florence2_result f2 = {0};
    const bool florence2 = pali_get_info(s->pali)->florence2;
    if (florence2 ? florence2_answer(s, j, res->ids, res->n_ids, &text, &f2, &err)
                  : pali_detokenize(s->pali, res->ids, res->n_ids, &text, &err)) {
        fail_job_engine(r, "detokenizing failed", &err);
        return;
    }
    api_buf b = {0};
    int64_t created = (int64_t)time(NULL);
    if (r->ep != EP_CHAT) {
        api_buf_puts(&b, "{\"model\":");
        api_buf_json_string(&b, s->gen_model_name, strlen(s->gen_model_name));
        if (florence2 && f2.kind != FLORENCE2_POST_PURE_TEXT)
            put_florence2_items(&b, r->ep, &f2, j->width, j->height);
        else if (r->ep == EP_DETECT)
            put_objects(&b, text, j->width, j->height);
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
            api_chat_chunk(&b, r->id, s->gen_model_name, created, NULL, text + j->sent, NULL);
        api_chat_chunk(&b, r->id, s->gen_model_name, created, NULL, NULL,
                       finish_name(res->finish, true));
        api_buf_puts(&b, API_SSE_DONE);
        free(text);
        florence2_result_free(&f2);
        size_t len = 0;
        char *ev = api_buf_finish(&b, &len);
        pthread_mutex_lock(&s->mu);
        req_stream_push_locked(r, ev ? ev : "", ev ? len : 0, true);
        pthread_mutex_unlock(&s->mu);
        free(ev);
        return;
    }
    free(text);
    florence2_result_free(&f2);
    size_t len = 0;
    char *body = api_buf_finish(&b, &len);
    pthread_mutex_lock(&s->mu);
    if (r->state == REQ_PENDING)
        r->infer_s = j->infer_s;
    pthread_mutex_unlock(&s->mu);
    if (!body) {
        api_error e;
        api_errorf(&e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory while writing the response");
        req_fail(r, &e);
        return;
    }
    req_respond(r, 200, body, len, "application/json");
}

/* Streaming: starts the event stream of a job that just joined the batch. */
static void stream_start(srv_ctx *s, gen_job *j)
{
    api_buf b = {0};
    api_chat_chunk(&b, j->r->id, s->gen_model_name, (int64_t)time(NULL), "assistant", NULL, NULL);
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
 * is a prefix of the final text once api_stream_settled_len holds back a
 * trailing U+FFFD, a character whose bytes are still arriving). */
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
    const bool florence2 = pali_get_info(s->pali)->florence2;
    florence2_result f2 = {0};
    if (florence2 ? florence2_answer(s, j, ids, n, &text, &f2, &err)
                  : pali_detokenize(s->pali, ids, n, &text, &err))
        return;
    florence2_result_free(&f2);
    size_t len = strlen(text);
    len = api_stream_settled_len(text, len);
    if (florence2) /* the final text is stripped: whitespace waits for what follows it */
        len = florence2_rstrip_len(text, len);
    text[len] = '\0';
    if (len > j->sent) {
        /* the text already sent must still be its prefix */
        api_buf b = {0};
        api_chat_chunk(&b, j->r->id, s->gen_model_name, (int64_t)time(NULL), NULL,
                       text + j->sent, NULL);
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
    if (r->streaming) /* already answered 200: an error event ends the stream */
        req_stream_end_locked(r, &e);
    else
        req_fail_locked(r, &e);
    pthread_mutex_unlock(&r->srv->mu);
}

/* The generation side of the engine worker: the running batch's jobs and
 * the arrays reused at every step. */
typedef struct gen_loop {
    const pali_limits *lim;
    gen_job **running;     /* jobs in the batch (handle < 0: cancelled) */
    gen_job **admit;       /* jobs joining at this step boundary */
    pali_request *reqs;
    int *handles;
    int n_running;
    uint64_t last_tokens;  /* generated tokens counted by metrics so far */
} gen_loop;

static void gen_loop_free(gen_loop *g)
{
    free(g->running), free(g->admit), free(g->reqs), free(g->handles);
}

static int gen_loop_init(gen_loop *g, const pali_limits *lim)
{
    const size_t n = (size_t)lim->max_seqs;
    *g = (gen_loop){.lim = lim,
                    .running = calloc(n, sizeof *g->running),
                    .admit = calloc(n, sizeof *g->admit),
                    .reqs = calloc(n, sizeof *g->reqs),
                    .handles = calloc(n, sizeof *g->handles)};
    if (g->running && g->admit && g->reqs && g->handles)
        return 0;
    gen_loop_free(g);
    return -1;
}

/* Cancels running jobs nobody waits for any more (srv->mu held): the
 * client left, the deadline answered it, or its stream's connection closed. */
static void cancel_gone_locked(srv_ctx *s, gen_loop *g)
{
    for (int i = 0; i < g->n_running; i++) {
        gen_job *j = g->running[i];
        if (j->handle >= 0 && (j->r->streaming ? j->r->conn == NULL : j->r->state != REQ_PENDING)) {
            pali_gen_cancel(s->gen, j->handle);
            j->handle = -1; /* its cancelled result is dropped in dispatch_results */
        }
    }
}

/* Takes queued jobs while the batch has room (srv->mu held); returns how
 * many joined g->admit. */
static int admit_locked(srv_ctx *s, gen_loop *g)
{
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
        j->r->queue_s = prism_now() - j->r->t_enqueue;
        free_seqs -= j->num_beams;
        g->admit[n_admit++] = j;
    }
    return n_admit;
}

/* Starts the admitted jobs (vision tower, projector, encoder in one batch)
 * and moves them into the running batch; streams send their first event. */
static void start_jobs(srv_ctx *s, gen_loop *g, int n_admit)
{
    if (n_admit == 0)
        return;
    for (int i = 0; i < n_admit; i++) {
        gen_job *j = g->admit[i];
        g->reqs[i] = (pali_request){.pixels = j->pixels, .prompt_ids = j->ids,
                                    .n_prompt = j->n_prompt, .max_new_tokens = j->max_new_tokens,
                                    .num_beams = j->num_beams, .length_penalty = 1.0f,
                                    .t_submit = j->r->t_arrival, .user = j};
    }
    prism_error err = {0};
    double t0 = prism_now();
    if (pali_gen_start(s->gen, g->reqs, n_admit, g->handles, &err)) {
        log_msg(&s->log, LOG_ERROR, "pali_gen_start failed", err.msg);
        for (int i = 0; i < n_admit; i++) {
            fail_job_engine(g->admit[i]->r, "starting generation failed", &err);
            req_unref(g->admit[i]->r);
            job_free(g->admit[i]);
        }
        return;
    }
    double dt = prism_now() - t0;
    for (int i = 0; i < n_admit; i++) {
        gen_job *j = g->admit[i];
        j->handle = g->handles[i];
        j->infer_s += dt;
        g->running[g->n_running++] = j;
        if (j->stream)
            stream_start(s, j);
    }
}

/* One decoder step for every running sequence; streams get their new text.
 * Returns the step's status (on failure every running job is cancelled and
 * answered in dispatch_results). */
static int step_all(srv_ctx *s, gen_loop *g, prism_error *err)
{
    if (s->cfg.test_batch_sleep_ms > 0 && pali_gen_running(s->gen) > 0)
        usleep((useconds_t)(s->cfg.test_batch_sleep_ms * 1e3)); /* tests: a slow step */
    double t0 = prism_now();
    int rc = pali_gen_running(s->gen) > 0 ? pali_gen_step(s->gen, err) : 0;
    double dt = prism_now() - t0;
    const pali_gen_stats *st = pali_gen_get_stats(s->gen);
    metrics_gen_step(&s->metrics, rc == 0 && st->generated_tokens > g->last_tokens ? dt : -1,
                     st->generated_tokens - g->last_tokens, st->running_sequences);
    g->last_tokens = st->generated_tokens;
    for (int i = 0; i < g->n_running; i++)
        g->running[i]->infer_s += dt;
    if (rc) {
        log_msg(&s->log, LOG_ERROR, "pali_gen_step failed", err->msg);
        for (int i = 0; i < g->n_running; i++)
            if (g->running[i]->handle >= 0)
                pali_gen_cancel(s->gen, g->running[i]->handle);
        return rc;
    }
    for (int i = 0; i < g->n_running; i++)
        if (g->running[i]->stream)
            stream_progress(s, g->running[i]);
    return 0;
}

/* Answers every finished job and removes it from the running batch. */
static void dispatch_results(srv_ctx *s, gen_loop *g, int rc, const prism_error *err)
{
    pali_result res;
    while (pali_gen_take(s->gen, &res)) {
        gen_job *j = res.user;
        if (res.finish != PALI_FINISH_CANCELLED && res.n_ids > 0)
            metrics_ttft(&s->metrics, res.ttft_seconds);
        if (rc)
            fail_job_engine(j->r, "decoding failed", err);
        else if (j->handle >= 0)
            answer(s, j, &res);
        else
            fail_job_engine(j->r, "cancelled", &(prism_error){.msg = "the client went away"});
        pali_result_free(&res);
        for (int i = 0; i < g->n_running; i++)
            if (g->running[i] == j) {
                g->running[i] = g->running[--g->n_running];
                break;
            }
        req_unref(j->r); /* the job's */
        job_free(j);
    }
}

void *gen_engine_main(void *arg)
{
    srv_ctx *s = arg;
    gen_loop g;
    if (gen_loop_init(&g, pali_get_limits(s->pali))) {
        log_msg(&s->log, LOG_ERROR, "engine worker: out of memory", "generation disabled");
        return NULL;
    }
    embed_bufs *eb = NULL;
    double warmup_ms = 0;
    if (s->model) { /* both models: the SigLIP side warms up first */
        eb = embed_bufs_create(s);
        warmup_ms = embed_warmup(s, eb);
    }
    engine_ready(s, warmup_ms);
    bool embed_turn = true; /* both models: an embedding batch may go before the next step */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        double wake = INFINITY;
        if (s->model) {
            int t = router_pick_task_locked(s, prism_now(), &wake);
            if (t >= 0 && (embed_turn || (g.n_running == 0 && !s->gq_head))) {
                embed_run_batch_locked(s, eb, t);
                embed_turn = false;
                continue;
            }
        }
        embed_turn = true; /* a decode step goes now; an embedding batch next */
        cancel_gone_locked(s, &g);
        int n_admit = admit_locked(s, &g);
        if (n_admit == 0 && g.n_running == 0) {
            if (s->stopping && !s->gq_head && !s->q_len[TASK_IMAGE] && !s->q_len[TASK_TEXT])
                break;
            router_wait_until_locked(s, wake);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        start_jobs(s, &g, n_admit);
        prism_error err = {0};
        int rc = step_all(s, &g, &err);
        dispatch_results(s, &g, rc, &err);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    embed_bufs_free(eb);
    gen_loop_free(&g);
    return NULL;
}
