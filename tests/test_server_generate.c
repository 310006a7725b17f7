/* test_server_generate.c - `prism serve` with a pali3 model: /v1/caption,
 * /v1/vqa and /v1/chat/completions end to end on the tiny pali3 checkpoint
 * (tests/data/pali3_tiny_a), the real binary on a loopback port.
 *
 * Answers must equal `prism caption` / `prism ask` for the same image file
 * (greedy and beam search); 8 concurrent requests must all be right and be
 * decoded together (fewer decoder steps than generated tokens in /metrics);
 * chat completions plain and streamed (SSE parsed); 400/404/413/422 errors;
 * responses checked against openapi.yaml. Both models in one process
 * (--generative-model beside models/demo): embeddings equal a SigLIP-only
 * server's, captions the CLI's, and an embedding request is answered while
 * long generations still run (batches interleaved with decode steps). The
 * server is stopped with
 * SIGTERM and must exit 0 (LeakSanitizer under the ASan build).
 */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_codec.h"
#include "server_checks.h"
#include "test_http.h"

#define PALI PRISM_SOURCE_DIR "/tests/data/pali3_tiny_a"
#define N_IMG 8
#define MAX_NEW 12

static test_server srv;
static json_t *openapi;
static char img_path[N_IMG][256];
static char *img_b64[N_IMG];
static uint8_t *img_png[N_IMG];
static size_t img_len[N_IMG];

/* Image k's pixels: patterns on which the tiny random model does not stop
 * early (test_both_models_interleave needs all 128 tokens). */
static uint8_t *make_png(int w, int h, unsigned seed, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    ck_assert_ptr_nonnull(rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rgb[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)((x * (seed + 3) * 7 + y * (c + 1) * (seed + 11) + seed * 53) & 255);
    uint8_t *png = test_png_from_rgb(rgb, w, h, len);
    free(rgb);
    return png;
}

/* `prism caption` (question NULL) or `prism ask` on image k. */
static json_t *cli(int k, const char *question, int beams)
{
    char cmd[2048];
    if (question)
        snprintf(cmd, sizeof cmd, "%s ask --model %s --image %s --question '%s' "
                 "--max-new-tokens %d --num-beams %d", PRISM_BIN, PALI, img_path[k], question,
                 MAX_NEW, beams);
    else
        snprintf(cmd, sizeof cmd, "%s caption --model %s --image %s --max-new-tokens %d "
                 "--num-beams %d", PRISM_BIN, PALI, img_path[k], MAX_NEW, beams);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    json_error_t e;
    json_t *v = json_loads(buf, 0, &e);
    ck_assert_msg(v != NULL, "%s: %s", cmd, buf);
    return v;
}

/* The server's answer equals the CLI's: text and ids. */
static void same_as_cli(json_t *got, json_t *want)
{
    ck_assert_str_eq(json_string_value(json_object_get(got, "text")),
                     json_string_value(json_object_get(want, "text")));
    ck_assert_msg(json_equal(json_object_get(got, "ids"), json_object_get(want, "ids")),
                  "ids differ");
    ck_assert_int_eq(json_integer_value(json_object_get(got, "tokens")),
                     json_array_size(json_object_get(want, "ids")));
}

static char *gen_body(int k, const char *question, int max_new, int beams)
{
    size_t n = strlen(img_b64[k]) + 512;
    char *b = malloc(n);
    snprintf(b, n, "{\"image\":\"%s\"%s%s%s,\"max_new_tokens\":%d,\"num_beams\":%d}",
             img_b64[k], question ? ",\"question\":\"" : "", question ? question : "",
             question ? "\"" : "", max_new, beams);
    return b;
}

static char *chat_body_beams(int k, const char *prompt, bool stream, int beams)
{
    size_t n = strlen(img_b64[k]) + 512;
    char *b = malloc(n);
    snprintf(b, n, "{\"model\":\"pali3_tiny_a\",\"num_beams\":%d,\"stream\":%s,"
             "\"max_tokens\":%d,\"messages\":"
             "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"%s\"},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}}]}]}",
             beams, stream ? "true" : "false", MAX_NEW, prompt, img_b64[k]);
    return b;
}

static char *chat_body(int k, const char *prompt, bool stream)
{
    return chat_body_beams(k, prompt, stream, 1);
}


static double metric(const char *series)
{
    http_resp r;
    ck_assert_int_eq(http_get(srv.port, "/metrics", &r), 0);
    ck_assert_int_eq(r.status, 200);
    double v = test_metric(r.body, series);
    http_resp_free(&r);
    return v;
}

static void setup(void)
{
    for (int k = 0; k < N_IMG; k++) {
        img_png[k] = make_png(16 + 3 * k, 20 + k, (unsigned)k, &img_len[k]);
        snprintf(img_path[k], sizeof img_path[k], "/tmp/prism_gen_%d_%d.png", (int)getpid(), k);
        FILE *f = fopen(img_path[k], "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(img_png[k], 1, img_len[k], f);
        fclose(f);
        size_t bl;
        img_b64[k] = api_base64_encode(img_png[k], img_len[k], &bl);
    }
    static const char *const args[] = {"--threads", "2", NULL};
    test_server_start(&srv, PALI, args);
    openapi = test_get_openapi(srv.port);
}

static void teardown(void)
{
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
    json_decref(openapi);
    for (int k = 0; k < N_IMG; k++) {
        unlink(img_path[k]);
        free(img_b64[k]);
        free(img_png[k]);
    }
}

/* A pali3-only server logs `ready` like a SigLIP one (deployments wait for
 * it), and says that the tiny model's directory has no processor file, so
 * its images get SiglipImageProcessor's defaults: a guess said aloud. */
START_TEST(test_startup_log)
{
    http_resp r;
    ck_assert_int_eq(http_get(srv.port, "/readyz", &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    char *log = test_server_log(&srv);
    ck_assert_msg(strstr(log, "\"msg\":\"ready\""), "no ready line:\n%s", log);
    const char *w = strstr(log, "\"msg\":\"image_preprocessing\"");
    ck_assert_msg(w && strstr(w, "no processor_config.json or preprocessor_config.json"),
                  "no warning about the defaults:\n%s", log);
    free(log);
}
END_TEST

START_TEST(test_caption_and_vqa_equal_cli)
{
    for (int beams = 1; beams <= 2; beams++) {
        http_resp r;
        char *b = gen_body(0, NULL, MAX_NEW, beams);
        ck_assert_int_eq(http_post_json(srv.port, "/v1/caption", b, &r), 0);
        free(b);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        test_conforms(openapi, "/v1/caption", "post", &r);
        json_t *got = test_json_body(&r), *want = cli(0, NULL, beams);
        same_as_cli(got, want);
        ck_assert_str_eq(json_string_value(json_object_get(got, "model")), "pali3_tiny_a");
        json_decref(got);
        json_decref(want);
        http_resp_free(&r);

        b = gen_body(1, "what is it", MAX_NEW, beams);
        ck_assert_int_eq(http_post_json(srv.port, "/v1/vqa", b, &r), 0);
        free(b);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        test_conforms(openapi, "/v1/vqa", "post", &r);
        got = test_json_body(&r);
        want = cli(1, "what is it", beams);
        same_as_cli(got, want);
        json_decref(got);
        json_decref(want);
        http_resp_free(&r);
    }
    /* multipart: the image as a file part */
    const char *bd = "XbOuNdArYx";
    size_t cap = img_len[1] + 1024, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n,
                          "--%s\r\nContent-Disposition: form-data; name=\"question\"\r\n\r\n"
                          "what is it\r\n--%s\r\nContent-Disposition: form-data; "
                          "name=\"max_new_tokens\"\r\n\r\n%d\r\n--%s\r\nContent-Disposition: "
                          "form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: "
                          "image/png\r\n\r\n",
                          bd, bd, MAX_NEW, bd);
    memcpy(body + n, img_png[1], img_len[1]);
    n += img_len[1];
    n += (size_t)snprintf(body + n, cap - n, "\r\n--%s--\r\n", bd);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Content-Type: multipart/form-data; boundary=%s\r\n", bd);
    http_resp r;
    ck_assert_int_eq(http_request(srv.port, "POST", "/v1/vqa", hdr, body, n, &r), 0);
    free(body);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    json_t *got = test_json_body(&r), *want = cli(1, "what is it", 1);
    same_as_cli(got, want);
    json_decref(got);
    json_decref(want);
    http_resp_free(&r);
}
END_TEST

typedef struct job {
    int k;
    http_resp r;
    int rc;
} job;

static void *post_caption(void *p)
{
    job *j = p;
    char *b = gen_body(j->k, NULL, MAX_NEW, 1);
    j->rc = http_post_json(srv.port, "/v1/caption", b, &j->r);
    free(b);
    return NULL;
}

START_TEST(test_concurrent_batched)
{
    double tok0 = metric("prism_generated_tokens_total");
    double steps0 = metric("prism_decode_step_duration_seconds_count{task=\"generate\"}");
    double ttft0 = metric("prism_time_to_first_token_seconds_count{task=\"generate\"}");
    pthread_t th[N_IMG];
    job jobs[N_IMG];
    for (int k = 0; k < N_IMG; k++) {
        jobs[k] = (job){.k = k};
        pthread_create(&th[k], NULL, post_caption, &jobs[k]);
    }
    long total = 0;
    for (int k = 0; k < N_IMG; k++) {
        pthread_join(th[k], NULL);
        ck_assert_int_eq(jobs[k].rc, 0);
        ck_assert_msg(jobs[k].r.status == 200, "%d %s", jobs[k].r.status, jobs[k].r.body);
        json_t *got = test_json_body(&jobs[k].r), *want = cli(k, NULL, 1);
        same_as_cli(got, want);
        total += (long)json_integer_value(json_object_get(got, "tokens"));
        json_decref(got);
        json_decref(want);
        http_resp_free(&jobs[k].r);
    }
    double tokens = metric("prism_generated_tokens_total") - tok0;
    double steps = metric("prism_decode_step_duration_seconds_count{task=\"generate\"}") - steps0;
    ck_assert_msg(tokens == (double)total, "generated tokens %g, answers %ld", tokens, total);
    ck_assert_msg(steps < tokens, "%g decode steps for %g tokens: no batching", steps, tokens);
    ck_assert_int_eq((int)(metric("prism_time_to_first_token_seconds_count{task=\"generate\"}") - ttft0), N_IMG);
    ck_assert_int_eq((int)metric("prism_running_sequences"), 0);
}
END_TEST

/* A streamed chat completion: SSE chunks whose deltas add up to text. */
static void stream_check(int k, int beams, const char *text)
{
    http_resp r;
    char *b;
    b = chat_body_beams(k, "caption en", true, beams);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/chat/completions", b, &r), 0);
    free(b);
    ck_assert_int_eq(r.status, 200);
    char ct[128];
    ck_assert_ptr_nonnull(http_header(&r, "Content-Type", ct, sizeof ct));
    ck_assert_str_eq(ct, "text/event-stream");
    char te[64];
    ck_assert_ptr_nonnull(http_header(&r, "Transfer-Encoding", te, sizeof te));
    ck_assert_str_eq(te, "chunked"); /* streamed as generated: no Content-Length */
    r.body_len = test_dechunk(r.body, r.body_len);
    char acc[4096] = "";
    int chunks = 0, done = 0, finished = 0;
    char *save = NULL;
    for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(strncmp(line, "data: ", 6) == 0, "not an SSE data line: %s", line);
        ck_assert_int_eq(done, 0); /* nothing after [DONE] */
        if (strcmp(line + 6, "[DONE]") == 0) {
            done = 1;
            continue;
        }
        json_error_t e;
        json_t *c = json_loads(line + 6, 0, &e);
        ck_assert_msg(c != NULL, "chunk is not JSON: %s", line);
        ck_assert_str_eq(json_string_value(json_object_get(c, "object")),
                         "chat.completion.chunk");
        json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
        const char *d = json_string_value(json_object_get(json_object_get(ch, "delta"),
                                                          "content"));
        if (d)
            strncat(acc, d, sizeof acc - strlen(acc) - 1);
        if (json_is_string(json_object_get(ch, "finish_reason")))
            finished++;
        chunks++;
        json_decref(c);
    }
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(finished, 1);
    ck_assert_int_ge(chunks, 3);
    ck_assert_str_eq(acc, text);
    http_resp_free(&r);
}

START_TEST(test_chat_completions)
{
    json_t *want = cli(2, NULL, 1);
    const char *text = json_string_value(json_object_get(want, "text"));
    http_resp r;
    char *b = chat_body(2, "caption en", false);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/chat/completions", b, &r), 0);
    free(b);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    test_conforms(openapi, "/v1/chat/completions", "post", &r);
    json_t *v = test_json_body(&r);
    ck_assert_str_eq(json_string_value(json_object_get(v, "object")), "chat.completion");
    json_t *c0 = json_array_get(json_object_get(v, "choices"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c0, "message"), "content")),
                     text);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(v, "usage"),
                                                        "completion_tokens")),
                     json_array_size(json_object_get(want, "ids")));
    json_decref(v);
    http_resp_free(&r);

    stream_check(2, 1, text);
    json_t *want2 = cli(2, NULL, 2); /* beam search: the whole text in one chunk */
    stream_check(2, 2, json_string_value(json_object_get(want2, "text")));
    json_decref(want2);
    json_decref(want);
}
END_TEST

START_TEST(test_errors)
{
    http_resp r;
    struct {
        const char *path, *body;
        int status;
        const char *code, *param;
    } cases[] = {
        {"/v1/caption", "{\"max_new_tokens\":4}", 400, "missing_field", "image"},
        {"/v1/vqa", "{\"image\":\"AAAA\"}", 400, "missing_field", "question"},
        {"/v1/caption", "{\"image\":\"AAAA\",\"max_new_tokens\":100000}", 413, "too_many_tokens",
         "max_new_tokens"},
        {"/v1/caption", "{\"image\":\"AAAA\",\"num_beams\":99}", 413, "too_many_beams",
         "num_beams"},
        {"/v1/caption", "{\"image\":\"AAAA\",\"max_new_tokens\":0}", 400, "invalid_value",
         "max_new_tokens"},
        {"/v1/caption", "{\"image\":\"AAAA\",\"num_beams\":-1}", 400, "invalid_value",
         "num_beams"},
        {"/v1/caption", "{\"image\":\"AAAA\",\"num_beams\":\"2\"}", 400, "invalid_type",
         "num_beams"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\"}]}", 400, "missing_field",
         "messages[0].content"},
        {"/v1/caption", "{\"image\":\"AAAA\",\"model\":\"other\"}", 404, "model_not_found",
         "model"},
        {"/v1/caption", "[1]", 400, "invalid_json", NULL},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"caption en\"}]}",
         400, "missing_field", "image_url"},
        {"/v1/embed", "{\"texts\":[\"a\"]}", 422, "model_not_loaded", NULL},
        {"/v1/classify", "{\"image\":\"AAAA\",\"labels\":[\"a\"]}", 422, "model_not_loaded", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ck_assert_int_eq(http_post_json(srv.port, cases[i].path, cases[i].body, &r), 0);
        test_expect_error(&r, cases[i].status, cases[i].code, cases[i].param);
        if (strncmp(cases[i].path, "/v1/embed", 9) && strncmp(cases[i].path, "/v1/classify", 12))
            test_conforms(openapi, cases[i].path, "post", &r);
        http_resp_free(&r);
    }
    /* image faults answer what the embedding endpoints answer for them: an
     * unknown format (text, GIF, WebP) 415, a header over the pixel limit
     * 413 (read from the header: nothing is decoded), a broken JPEG 400 */
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    static const uint8_t webp[] = "RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00";
    static const uint8_t jpeg_cut[] = "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01";
    uint8_t huge_png[TEST_PNG_HEADER_ONLY_LEN];
    test_png_header_only(huge_png, 50000, 50000);
    const struct {
        const uint8_t *bytes;
        size_t len;
        int status;
        const char *code;
    } faults[] = {
        {(const uint8_t *)"hello world", 11, 415, "unsupported_image_format"},
        {gif, sizeof gif - 1, 415, "unsupported_image_format"},
        {webp, sizeof webp - 1, 415, "unsupported_image_format"},
        {huge_png, sizeof huge_png, 413, "image_too_large"},
        {jpeg_cut, sizeof jpeg_cut - 1, 400, "invalid_image"},
    };
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        char *b64 = api_base64_encode(faults[i].bytes, faults[i].len, NULL);
        size_t n = strlen(b64) + 512;
        char *body = malloc(n), *chat = malloc(n);
        snprintf(body, n, "{\"image\":\"%s\"}", b64);
        snprintf(chat, n, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                          "\"text\":\"caption en\"},{\"type\":\"image_url\",\"image_url\":"
                          "{\"url\":\"data:image/png;base64,%s\"}}]}]}", b64);
        ck_assert_int_eq(http_post_json(srv.port, "/v1/caption", body, &r), 0);
        test_expect_error(&r, faults[i].status, faults[i].code, "image");
        http_resp_free(&r);
        ck_assert_int_eq(http_post_json(srv.port, "/v1/chat/completions", chat, &r), 0);
        test_expect_error(&r, faults[i].status, faults[i].code, "image_url");
        http_resp_free(&r);
        free(b64);
        free(body);
        free(chat);
    }
    /* clients that give up: their requests are cancelled (or finish unseen),
     * and the server goes on answering correctly */
    for (int k = 0; k < 4; k++) {
        char *b = gen_body(k, NULL, 128, k % 2 + 1);
        ck_assert_int_eq(http_send_and_close(srv.port, "/v1/caption", b), 0);
        free(b);
    }
    for (int k = 0; k < 2; k++) { /* streams too */
        char *cb = chat_body_beams(k, "caption en", true, k + 1);
        ck_assert_int_eq(http_send_and_close(srv.port, "/v1/chat/completions", cb), 0);
        free(cb);
    }
    char *b = gen_body(3, NULL, MAX_NEW, 1);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/caption", b, &r), 0);
    free(b);
    ck_assert_int_eq(r.status, 200);
    json_t *got = test_json_body(&r), *want = cli(3, NULL, 1);
    same_as_cli(got, want);
    json_decref(got);
    json_decref(want);
    http_resp_free(&r);
    /* /v1/models lists the pali3 model */
    ck_assert_int_eq(http_get(srv.port, "/v1/models", &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"pali3_tiny_a\""));
    http_resp_free(&r);
}
END_TEST

/* A second server with slow steps: a request past its deadline is answered
 * 504 and its sequence leaves the batch at the next step boundary. */
START_TEST(test_deadline_cancels)
{
    test_server slow;
    static const char *const args[] = {"--request-timeout", "0.3", "--test-batch-sleep-ms", "20",
                                       NULL};
    test_server_start(&slow, PALI, args);
    char *b = gen_body(0, NULL, 128, 1);
    http_resp r;
    ck_assert_int_eq(http_post_json(slow.port, "/v1/caption", b, &r), 0);
    free(b);
    test_expect_error(&r, 504, "deadline_exceeded", NULL);
    http_resp_free(&r);
    double running = 1;
    for (int i = 0; i < 100 && running != 0; i++) {
        usleep(20000);
        ck_assert_int_eq(http_get(slow.port, "/metrics", &r), 0);
        running = test_metric(r.body, "prism_running_sequences");
        double tokens = test_metric(r.body, "prism_generated_tokens_total");
        ck_assert_msg(tokens < 128, "the request ran to the end (%g tokens)", tokens);
        http_resp_free(&r);
    }
    ck_assert_msg(running == 0, "the cancelled request is still running");
    ck_assert_int_eq(test_server_stop(&slow, SIGTERM), 0);
}
END_TEST

static char *long_stream_body(int k)
{
    size_t n = strlen(img_b64[k]) + 512;
    char *b = malloc(n);
    snprintf(b, n, "{\"stream\":true,\"max_tokens\":128,\"messages\":[{\"role\":\"user\","
                   "\"content\":[{\"type\":\"text\",\"text\":\"caption en\"},{\"type\":"
                   "\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}}]}]}",
             img_b64[k]);
    return b;
}

/* SIGTERM while a stream is open, then a second signal that cuts the drain
 * short: the stream is ended with an error event and [DONE] (not dropped),
 * and the process exits 0 (no connection is left suspended). */
START_TEST(test_drain_ends_open_stream)
{
    test_server slow;
    static const char *const args[] = {"--test-batch-sleep-ms", "100", NULL};
    test_server_start(&slow, PALI, args);
    test_post j = {.port = slow.port, .path = "/v1/chat/completions", .body = long_stream_body(0)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, test_post_async, &j), 0);
    double running = 0;
    for (int i = 0; i < 250 && running <= 0; i++) {
        usleep(20000);
        running = test_metric_at(slow.port, "prism_running_sequences");
    }
    ck_assert_msg(running > 0, "the stream never started");
    ck_assert_int_eq(kill(slow.pid, SIGTERM), 0);
    usleep(300000);
    /* 128 steps of 100 ms: the stream is still running when the drain is
     * cut short */
    ck_assert_int_eq(test_server_stop(&slow, SIGTERM), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_int_eq(j.r.status, 200);
    j.r.body_len = test_dechunk(j.r.body, j.r.body_len);
    ck_assert_msg(strstr(j.r.body, "\"code\":\"shutting_down\"") != NULL, "%s", j.r.body);
    const char *done = "data: [DONE]\n\n";
    ck_assert_uint_ge(j.r.body_len, strlen(done));
    ck_assert_str_eq(j.r.body + j.r.body_len - strlen(done), done);
    http_resp_free(&j.r);
    free(j.body);
}
END_TEST

/* A 30 MB chat prompt is refused (400 prompt_too_long) on a preprocessing
 * worker that tokenizes only as far as the prompt limit: the server's peak
 * memory grows by far less than tokenizing all of it takes (about 2 GB),
 * and a caption running meanwhile is answered. */
START_TEST(test_huge_chat_prompt)
{
    const size_t text_len = 30u << 20;
    size_t n = text_len + strlen(img_b64[1]) + 512;
    char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    int k = snprintf(b, n, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                           "\"text\":\"");
    for (size_t i = 0; i < text_len; i++)
        b[k + i] = "abc de"[i % 6];
    k += (int)text_len;
    snprintf(b + k, n - (size_t)k, "\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
                                   "\"data:image/png;base64,%s\"}}]}]}", img_b64[1]);
    long before = test_proc_status_kb(srv.pid, "VmHWM");
    test_post cap = {.port = srv.port, .path = "/v1/caption",
                     .body = gen_body(2, NULL, MAX_NEW, 1)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, test_post_async, &cap), 0);
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/chat/completions", b, &r), 0);
    test_expect_error(&r, 400, "prompt_too_long", "messages");
    http_resp_free(&r);
    pthread_join(th, NULL);
    ck_assert_int_eq(cap.rc, 0);
    ck_assert_int_eq(cap.r.status, 200);
    http_resp_free(&cap.r);
    free(cap.body);
    long after = test_proc_status_kb(srv.pid, "VmHWM");
    /* the body (30 MB) is held twice at most (received, then parsed into a
     * string); 300 MB leaves room for the allocator and the caption */
    ck_assert_msg(after - before < 300 * 1024, "peak memory grew by %ld kB", after - before);
    free(b);
}
END_TEST

/* A device failure while starting generation (the vision tower's first
 * matmul) or in a decode step (topk): out of memory answers 503
 * out_of_memory, any other failure 500 inference_failed; the server goes on
 * and the next caption equals `prism caption`'s. */
START_TEST(test_device_fault)
{
    static const struct {
        const char *spec;
        int status;
        const char *code, *where;
    } cases[] = {{"matmul:1", 503, "out_of_memory", "starting generation failed"},
                 {"topk:2", 503, "out_of_memory", "decoding failed"},
                 {"topk:3:fail", 500, "inference_failed", "decoding failed"}};
    json_t *want = cli(0, NULL, 1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        test_server f;
        const char *args[] = {"--test-fault", cases[c].spec, NULL};
        test_server_start(&f, PALI, args);
        char *b = gen_body(0, NULL, MAX_NEW, 1);
        http_resp r;
        ck_assert_int_eq(http_post_json(f.port, "/v1/caption", b, &r), 0);
        test_expect_error(&r, cases[c].status, cases[c].code, NULL);
        test_conforms(openapi, "/v1/caption", "post", &r);
        ck_assert_msg(strstr(r.body, cases[c].where) && strstr(r.body, "injected fault"),
                      "%s: %s", cases[c].spec, r.body);
        http_resp_free(&r);
        ck_assert_int_eq(http_post_json(f.port, "/v1/caption", b, &r), 0);
        free(b);
        ck_assert_msg(r.status == 200, "%s: after the fault %d %s", cases[c].spec, r.status,
                      r.body);
        json_t *got = test_json_body(&r);
        same_as_cli(got, want);
        json_decref(got);
        http_resp_free(&r);
        ck_assert_int_eq(test_server_stop(&f, SIGTERM), 0);
    }
    json_decref(want);
}
END_TEST

/* The --gen-* flags set the generation limits: requests past them are
 * refused with the limit in the message, the default max_new_tokens (32)
 * shrinks to a smaller limit, and inconsistent flags stop the server. */
START_TEST(test_generation_limit_flags)
{
    test_server f;
    const char *args[] = {"--gen-max-new-tokens", "3", "--gen-max-beams", "2",
                          "--gen-max-sequences", "4", "--gen-max-prompt-tokens", "6",
                          "--gen-max-batch", "2", NULL};
    test_server_start(&f, PALI, args);
    http_resp r;
    char *b = gen_body(0, NULL, 4, 1);
    ck_assert_int_eq(http_post_json(f.port, "/v1/caption", b, &r), 0);
    free(b);
    test_expect_error(&r, 413, "too_many_tokens", "max_new_tokens");
    ck_assert_msg(strstr(r.body, "limit of 3"), "%s", r.body);
    http_resp_free(&r);
    b = gen_body(0, NULL, 3, 3);
    ck_assert_int_eq(http_post_json(f.port, "/v1/caption", b, &r), 0);
    free(b);
    test_expect_error(&r, 413, "too_many_beams", "num_beams");
    ck_assert_msg(strstr(r.body, "limit of 2"), "%s", r.body);
    http_resp_free(&r);
    /* a question of many words needs more than 6 prompt tokens */
    b = gen_body(1, "what is the colour of the large object on the left side", 3, 1);
    ck_assert_int_eq(http_post_json(f.port, "/v1/vqa", b, &r), 0);
    free(b);
    test_expect_error(&r, 400, "prompt_too_long", "question");
    http_resp_free(&r);
    /* within the limits; no max_new_tokens: the default 32 becomes 3 */
    size_t n = strlen(img_b64[0]) + 64;
    b = malloc(n);
    snprintf(b, n, "{\"image\":\"%s\",\"num_beams\":2}", img_b64[0]);
    ck_assert_int_eq(http_post_json(f.port, "/v1/caption", b, &r), 0);
    free(b);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    json_t *v = test_json_body(&r);
    ck_assert_int_le(json_integer_value(json_object_get(v, "tokens")), 3);
    json_decref(v);
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&f, SIGTERM), 0);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 --gen-max-beams 8 "
             "--gen-max-sequences 4 2>&1", PRISM_BIN, PALI);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char out[4096];
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    ck_assert_int_eq(WEXITSTATUS(pclose(p)), 1);
    ck_assert_msg(strstr(out, "--gen-max-beams 8 is more than --gen-max-sequences 4"), "%s", out);
}
END_TEST

/* ---- both models in one process (--generative-model) -------------------- */

#define SIGLIP PRISM_SOURCE_DIR "/models/demo"

static char *embed_req(int k)
{
    size_t n = strlen(img_b64[k]) + 256;
    char *b = malloc(n);
    snprintf(b, n, "{\"images\":[\"data:image/png;base64,%s\"],\"texts\":[\"a photo of a cat\","
             "\"two dogs\"]}", img_b64[k]);
    return b;
}

/* The embeddings of an /v1/embed answer, flattened (images then texts). */
static int embed_values(const http_resp *r, double *out, int cap)
{
    ck_assert_msg(r->status == 200, "%d %s", r->status, r->body);
    json_t *v = test_json_body(r);
    int n = 0;
    const char *keys[] = {"image_embeddings", "text_embeddings"};
    for (int q = 0; q < 2; q++) {
        json_t *m = json_object_get(v, keys[q]);
        ck_assert_msg(json_array_size(m) > 0, "no %s: %.300s", keys[q], r->body);
        for (size_t i = 0; i < json_array_size(m); i++) {
            json_t *row = json_array_get(m, i);
            for (size_t c = 0; c < json_array_size(row) && n < cap; c++)
                out[n++] = json_number_value(json_array_get(row, c));
        }
    }
    json_decref(v);
    return n;
}

typedef struct timed_job {
    int port, k, max_new;
    http_resp r;
    int rc;
    double t_done;
} timed_job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *post_long_caption(void *p)
{
    timed_job *j = p;
    char *b = gen_body(j->k, NULL, j->max_new, 1);
    j->rc = http_post_json(j->port, "/v1/caption", b, &j->r);
    j->t_done = now_s();
    free(b);
    return NULL;
}

/* The same image fault gets the same status and code on every endpoint
 * that takes an image: JSON values on /v1/embed, /v1/classify, /v1/caption,
 * /v1/vqa, /v1/chat/completions (and /v1/embeddings for data URLs), file
 * parts and typed parts of forms on /v1/embed and /v1/caption. */
static const char *const LABELS = "\"labels\":[\"a\"]";

static void expect_fault(int port, const char *path, const char *body, int status,
                         const char *code, const char *param)
{
    http_resp r;
    ck_assert_int_eq(http_post_json(port, path, body, &r), 0);
    ck_assert_msg(r.status == status && strstr(r.body, code),
                  "%s %.120s: expected %d %s, got %d %s", path, body, status, code, r.status,
                  r.body);
    test_expect_error(&r, status, code, param);
    test_conforms(openapi, path, "post", &r);
    http_resp_free(&r);
}

static void expect_form_fault(int port, const char *path, const char *part_headers,
                              const uint8_t *bytes, size_t n, int status, const char *code)
{
    size_t cap = n + 1024;
    char *body = malloc(cap);
    ck_assert_ptr_nonnull(body);
    size_t k = (size_t)snprintf(body, cap, "--b\r\nContent-Disposition: form-data; name=\"image\"%s"
                                "\r\n\r\n", part_headers);
    memcpy(body + k, bytes, n);
    k += n;
    k += (size_t)snprintf(body + k, cap - k, "\r\n--b--\r\n");
    http_resp r;
    ck_assert_int_eq(http_request(port, "POST", path,
                                  "Content-Type: multipart/form-data; boundary=b\r\n", body, k,
                                  &r), 0);
    ck_assert_msg(r.status == status && strstr(r.body, code),
                  "form %s (%s): expected %d %s, got %d %s", path, part_headers, status, code,
                  r.status, r.body);
    http_resp_free(&r);
    free(body);
}

static void check_image_faults(int port)
{
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    static const uint8_t jpeg_cut[] = "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01";
    uint8_t huge_png[TEST_PNG_HEADER_ONLY_LEN];
    test_png_header_only(huge_png, 50000, 50000);
    const struct {
        const uint8_t *bytes; /* the file, sent as base64, a data URL and a form part */
        size_t len;
        const char *value;    /* else this JSON string value as it is */
        int status;
        const char *code;
    } faults[] = {
        {(const uint8_t *)"hello world", 11, NULL, 415, "unsupported_image_format"},
        {gif, sizeof gif - 1, NULL, 415, "unsupported_image_format"},
        {jpeg_cut, sizeof jpeg_cut - 1, NULL, 400, "invalid_image"},
        {huge_png, sizeof huge_png, NULL, 413, "image_too_large"},
        {NULL, 0, "not base64!", 400, "invalid_base64"},
        {NULL, 0, "", 400, "empty_image"},
        {NULL, 0, "https://example.com/cat.jpg", 400, "unsupported_image_source"},
        {NULL, 0, "data:image/png,abc", 400, "invalid_data_url"},
        {NULL, 0, "data:text/plain;base64,aGVsbG8=", 415, "unsupported_media_type"},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        char *b64 = faults[i].bytes ? api_base64_encode(faults[i].bytes, faults[i].len, NULL) : NULL;
        size_t n = (b64 ? strlen(b64) : 0) + 1024;
        char *v = malloc(n), *body = malloc(2 * n);
        ck_assert(v && body);
        snprintf(v, n, "%s", b64 ? b64 : faults[i].value);
        const int st = faults[i].status;
        const char *code = faults[i].code;
        snprintf(body, 2 * n, "{\"images\":[\"%s\"]}", v);
        expect_fault(port, "/v1/embed", body, st, code, "images[0]");
        snprintf(body, 2 * n, "{\"image\":\"%s\",%s}", v, LABELS);
        expect_fault(port, "/v1/classify", body, st, code, "image");
        snprintf(body, 2 * n, "{\"image\":\"%s\"}", v);
        expect_fault(port, "/v1/caption", body, st, code, "image");
        snprintf(body, 2 * n, "{\"image\":\"%s\",\"question\":\"what\"}", v);
        expect_fault(port, "/v1/vqa", body, st, code, "image");
        /* chat and embeddings take images as data URLs */
        char *url = malloc(n + 32);
        snprintf(url, n + 32, "%s%s", b64 ? "data:image/png;base64," : "", v);
        snprintf(body, 2 * n, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                 "\"text\",\"text\":\"caption en\"},{\"type\":\"image_url\",\"image_url\":"
                 "{\"url\":\"%s\"}}]}]}", url);
        expect_fault(port, "/v1/chat/completions", body, st, code, "image_url");
        if (strncmp(url, "data:image/", 11) == 0) {
            snprintf(body, 2 * n, "{\"input\":[\"%s\"]}", url);
            expect_fault(port, "/v1/embeddings", body, st, code, "input[0]");
        }
        if (faults[i].bytes) {
            const char *parts[] = {"; filename=\"f\"", "\r\nContent-Type: image/png",
                                   "; filename=\"f\"\r\nContent-Type: application/octet-stream"};
            for (int p = 0; p < 3; p++) {
                expect_form_fault(port, "/v1/embed", parts[p], faults[i].bytes, faults[i].len, st,
                                  code);
                expect_form_fault(port, "/v1/caption", parts[p], faults[i].bytes, faults[i].len,
                                  st, code);
            }
        }
        free(url);
        free(b64);
        free(v);
        free(body);
    }
    /* an empty file part */
    expect_form_fault(port, "/v1/embed", "; filename=\"f\"", (const uint8_t *)"", 0, 400,
                      "empty_image");
    expect_form_fault(port, "/v1/caption", "; filename=\"f\"", (const uint8_t *)"", 0, 400,
                      "empty_image");
}

/* A model of the other endpoint family: the answer says what it serves and
 * which model serves the endpoint; an unknown model is told apart. */
static void check_model_not_found(int port)
{
    char *chat = chat_body(0, "caption en", false);
    json_t *v = json_loads(chat, 0, NULL);
    ck_assert_ptr_nonnull(v);
    free(chat);
    json_object_set_new(v, "model", json_string("demo"));
    chat = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    const struct {
        const char *path, *body;
        const char *says[3];
    } cases[] = {
        {"/v1/embeddings", "{\"model\":\"pali3_tiny_a\",\"input\":\"x\"}",
         {"'pali3_tiny_a' serves /v1/caption, /v1/vqa, /v1/chat/completions",
          "/v1/embeddings is served by 'demo'", NULL}},
        {"/v1/chat/completions", chat,
         {"'demo' serves /v1/embed, /v1/score, /v1/classify, /v1/embeddings",
          "/v1/chat/completions is served by 'pali3_tiny_a'", NULL}},
        {"/v1/caption", "{\"image\":\"AAAA\",\"model\":\"demo\"}",
         {"'demo' serves /v1/embed", "/v1/caption is served by 'pali3_tiny_a'", NULL}},
        {"/v1/embeddings", "{\"model\":\"gpt\",\"input\":\"x\"}",
         {"'gpt' is not served here", "/v1/embeddings is served by 'demo'", "GET /v1/models"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r;
        ck_assert_int_eq(http_post_json(port, cases[i].path, cases[i].body, &r), 0);
        test_expect_error(&r, 404, "model_not_found", "model");
        test_conforms(openapi, cases[i].path, "post", &r);
        for (int k = 0; k < 3 && cases[i].says[k]; k++)
            ck_assert_msg(strstr(r.body, cases[i].says[k]), "%s: '%s' not said in %s",
                          cases[i].path, cases[i].says[k], r.body);
        ck_assert_msg(!strstr(r.body, "lists it"), "%s", r.body);
        http_resp_free(&r);
    }
    free(chat);
}

/* One process serves a SigLIP model and a pali3 model: embeddings equal the
 * SigLIP-only server's, captions equal `prism caption`, /v1/models lists
 * both. */
START_TEST(test_both_models_answer)
{
    test_server both, single;
    static const char *const args[] = {"--threads", "2", "--generative-model", PALI, NULL};
    static const char *const sargs[] = {"--threads", "2", NULL};
    test_server_start(&both, SIGLIP, args);
    test_server_start(&single, SIGLIP, sargs);
    http_resp r, rs;
    char *eb = embed_req(0);
    ck_assert_int_eq(http_post_json(both.port, "/v1/embed", eb, &r), 0);
    ck_assert_int_eq(http_post_json(single.port, "/v1/embed", eb, &rs), 0);
    free(eb);
    test_conforms(openapi, "/v1/embed", "post", &r);
    static double a[4096], w[4096];
    int na = embed_values(&r, a, 4096), nw = embed_values(&rs, w, 4096);
    ck_assert_int_eq(na, nw);
    for (int i = 0; i < na; i++)
        ck_assert_msg(fabs(a[i] - w[i]) <= 1e-5, "embedding %d: %g vs %g", i, a[i], w[i]);
    json_t *v = test_json_body(&r);
    ck_assert_str_eq(json_string_value(json_object_get(v, "model")), "demo");
    json_decref(v);
    http_resp_free(&r);
    http_resp_free(&rs);

    char *b = gen_body(0, NULL, MAX_NEW, 1);
    ck_assert_int_eq(http_post_json(both.port, "/v1/caption", b, &r), 0);
    free(b);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    test_conforms(openapi, "/v1/caption", "post", &r);
    json_t *got = test_json_body(&r), *want = cli(0, NULL, 1);
    same_as_cli(got, want);
    ck_assert_str_eq(json_string_value(json_object_get(got, "model")), "pali3_tiny_a");
    json_decref(got);
    json_decref(want);
    http_resp_free(&r);

    /* a model name picks nothing across models: each endpoint has its own */
    check_model_not_found(both.port);
    check_image_faults(both.port);

    ck_assert_int_eq(http_get(both.port, "/v1/models", &r), 0);
    ck_assert_int_eq(r.status, 200);
    v = test_json_body(&r);
    json_t *data = json_object_get(v, "data");
    ck_assert_int_eq(json_array_size(data), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(data, 0), "id")), "demo");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(data, 1), "id")),
                     "pali3_tiny_a");
    json_decref(v);
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&single, SIGTERM), 0);
    ck_assert_int_eq(test_server_stop(&both, SIGTERM), 0);
}
END_TEST

/* Long generations (max_new_tokens at the limit, slow steps) are running;
 * an embedding request is answered between decode steps, long before they
 * finish, with the generations still running when its answer arrives. */
START_TEST(test_both_models_interleave)
{
    test_server both;
    static const char *const args[] = {"--threads", "2", "--generative-model", PALI,
                                       "--test-batch-sleep-ms", "30", NULL};
    test_server_start(&both, SIGLIP, args);
    enum { N_GEN = 3 };
    pthread_t th[N_GEN];
    timed_job jobs[N_GEN];
    for (int k = 0; k < N_GEN; k++) {
        jobs[k] = (timed_job){.port = both.port, .k = k, .max_new = 128};
        pthread_create(&th[k], NULL, post_long_caption, &jobs[k]);
    }
    http_resp r;
    double running = 0;
    for (int i = 0; i < 500 && running < N_GEN; i++) {
        usleep(10000);
        ck_assert_int_eq(http_get(both.port, "/metrics", &r), 0);
        running = test_metric(r.body, "prism_running_sequences");
        http_resp_free(&r);
    }
    ck_assert_msg(running == N_GEN, "the generations did not start (%g running)", running);
    char *eb = embed_req(1);
    ck_assert_int_eq(http_post_json(both.port, "/v1/embed", eb, &r), 0);
    double t_embed = now_s();
    free(eb);
    static double a[4096];
    ck_assert_int_gt(embed_values(&r, a, 4096), 0);
    http_resp_free(&r);
    ck_assert_int_eq(http_get(both.port, "/metrics", &r), 0);
    running = test_metric(r.body, "prism_running_sequences");
    double tokens = test_metric(r.body, "prism_generated_tokens_total");
    http_resp_free(&r);
    ck_assert_msg(running == N_GEN && tokens < N_GEN * 128,
                  "the embedding waited for the generations (%g running, %g tokens)", running,
                  tokens);
    for (int k = 0; k < N_GEN; k++) {
        pthread_join(th[k], NULL);
        ck_assert_int_eq(jobs[k].rc, 0);
        ck_assert_msg(jobs[k].r.status == 200, "%d %s", jobs[k].r.status, jobs[k].r.body);
        json_t *got = test_json_body(&jobs[k].r);
        ck_assert_int_eq(json_integer_value(json_object_get(got, "tokens")), 128);
        json_decref(got);
        http_resp_free(&jobs[k].r);
        ck_assert_msg(t_embed < jobs[k].t_done, "generation %d finished before the embedding", k);
    }
    ck_assert_int_eq(test_server_stop(&both, SIGTERM), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_generate");
    TCase *tc = tcase_create("generate");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_startup_log);
    tcase_add_test(tc, test_caption_and_vqa_equal_cli);
    tcase_add_test(tc, test_concurrent_batched);
    tcase_add_test(tc, test_chat_completions);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_deadline_cancels);
    tcase_add_test(tc, test_device_fault);
    tcase_add_test(tc, test_generation_limit_flags);
    tcase_add_test(tc, test_both_models_answer);
    tcase_add_test(tc, test_both_models_interleave);
    tcase_add_test(tc, test_drain_ends_open_stream);
    tcase_add_test(tc, test_huge_chat_prompt);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
