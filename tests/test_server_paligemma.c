/* test_server_paligemma.c - `prism serve` with a PaliGemma checkpoint as
 * downloaded, against transformers.
 *
 * tests/data/paligemma_tiny_a (Gemma) and paligemma_tiny_b (Gemma 2), hub
 * layout, and their goldens (tools/reference/make_paligemma_goldens.py):
 * eight cases, two image files × four prompts ("caption en", "answer en
 * what is in the image?", "detect cat ; dog", "ocr"), each with
 * transformers' generate() ids greedy and with num_beams=3. Each case goes
 * to the endpoint that builds its prompt (/v1/caption lang en, /v1/vqa,
 * /v1/detect labels [cat, dog], /v1/chat/completions text "ocr"), greedy
 * and beam requests all at once (16 concurrent requests: continuous
 * batching, beams sharing steps with greedy sequences). Ids and text must
 * equal transformers' exactly; every answer conforms to openapi.yaml;
 * /v1/detect's objects are detect_parse's reading of that exact text in
 * the image's pixel frame (width x height of the file as decoded).
 * Errors: detection labels missing, too many, or holding ';' / '<'; a
 * prompt that spells <image>; max_new_tokens over the limit; /v1/detect on
 * a pali3 server (422). Streamed chat completions beside a SigLIP model
 * (--generative-model) add up to transformers' text. The server exits 0 on
 * SIGTERM (LeakSanitizer in the ASan build).
 */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"
#include "detect.h"
#include "image.h"
#include "safetensors.h"
#include "server_checks.h"
#include "test_http.h"
#include "test_util.h"

#define MAX_NEW 12
#define N_CASES 8

static const char *const models[] = {"paligemma_tiny_a", "paligemma_tiny_b"};

/* The golden I64 tensor `name` as a JSON array of integers. */
static json_t *golden_ids(const st_file *f, const char *name)
{
    const st_tensor *t = st_file_find(f, name);
    ck_assert_msg(t && t->dtype == PRISM_DT_I64, "golden %s", name);
    json_t *a = json_array();
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, t->data + 8 * i, 8);
        json_array_append_new(a, json_integer(v));
    }
    return a;
}

/* The request of a case: the endpoint that builds its prompt. */
static const char *case_body(const char *prompt, const char *url, int beams, char **body)
{
    json_t *b = json_object();
    const char *path;
    json_object_set_new(b, "max_new_tokens", json_integer(MAX_NEW));
    json_object_set_new(b, "num_beams", json_integer(beams));
    if (strcmp(prompt, "caption en") == 0) {
        path = "/v1/caption";
        json_object_set_new(b, "image", json_string(url));
        json_object_set_new(b, "lang", json_string("en"));
    } else if (strncmp(prompt, "answer en ", 10) == 0) {
        path = "/v1/vqa";
        json_object_set_new(b, "image", json_string(url));
        json_object_set_new(b, "question", json_string(prompt + 10));
    } else if (strcmp(prompt, "detect cat ; dog") == 0) {
        path = "/v1/detect";
        json_object_set_new(b, "image", json_string(url));
        json_object_set_new(b, "labels", json_pack("[ss]", "cat", "dog"));
    } else {
        path = "/v1/chat/completions";
        json_object_del(b, "max_new_tokens");
        json_object_set_new(b, "max_tokens", json_integer(MAX_NEW));
        json_object_set_new(
            b, "messages",
            json_pack("[{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}]}]", "role", "user", "content",
                      "type", "text", "text", prompt, "type", "image_url", "image_url", "url",
                      url));
    }
    *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return path;
}

START_TEST(test_cases_equal_transformers)
{
    const char *name = models[_i];
    char dir[4096], gpath[4200];
    test_data_path(dir, sizeof dir, name);
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    prism_error err = {0};
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    json_t *images = test_st_meta(g.path, "images"), *cases = test_st_meta(g.path, "cases");
    json_t *decoded = test_st_meta(g.path, "decoded");
    ck_assert_int_eq((int)json_array_size(cases), N_CASES);
    char *urls[4] = {0};
    int widths[4], heights[4];
    for (size_t i = 0; i < json_array_size(images) && i < 4; i++) {
        char path[4200];
        test_data_path(path, sizeof path, json_string_value(json_array_get(images, i)));
        urls[i] = test_data_url(path);
        size_t n;
        char *raw = test_read_file(path, &n);
        image_info info;
        ck_assert(image_probe((const uint8_t *)raw, n, &info, &err) == 0);
        widths[i] = info.out_width;
        heights[i] = info.out_height;
        free(raw);
    }
    test_server srv;
    static const char *const args[] = {"--threads", "2", "--gen-max-sequences", "32", NULL};
    test_server_start(&srv, dir, args);
    json_t *openapi = test_get_openapi(srv.port);

    /* all 16 requests at once */
    test_post jobs[2 * N_CASES];
    pthread_t th[2 * N_CASES];
    for (int k = 0; k < N_CASES; k++)
        for (int b = 0; b < 2; b++) {
            json_t *c = json_array_get(cases, (size_t)k);
            test_post *j = &jobs[2 * k + b];
            memset(j, 0, sizeof *j);
            j->port = srv.port;
            j->path = case_body(json_string_value(json_array_get(c, 1)),
                                urls[json_integer_value(json_array_get(c, 0))], b ? 3 : 1,
                                &j->body);
            pthread_create(&th[2 * k + b], NULL, test_post_async, j);
        }
    for (int i = 0; i < 2 * N_CASES; i++)
        pthread_join(th[i], NULL);
    for (int k = 0; k < N_CASES; k++)
        for (int b = 0; b < 2; b++) {
            test_post *j = &jobs[2 * k + b];
            json_t *c = json_array_get(cases, (size_t)k);
            const int img = (int)json_integer_value(json_array_get(c, 0));
            ck_assert_int_eq(j->rc, 0);
            ck_assert_msg(j->r.status == 200, "%s case %d %s: %d %s", name, k, j->path,
                          j->r.status, j->r.body);
            test_conforms(openapi, j->path, "post", &j->r);
            json_t *got = test_json_body(&j->r);
            char key[32];
            snprintf(key, sizeof key, "%s_%d", b ? "beam3" : "greedy", k);
            json_t *want = golden_ids(&g, key);
            if (strcmp(j->path, "/v1/chat/completions") == 0) {
                /* the text only: greedy's is transformers' decode */
                json_t *msg = json_object_get(json_array_get(json_object_get(got, "choices"), 0),
                                              "message");
                ck_assert_int_eq(json_integer_value(json_object_get(
                                     json_object_get(got, "usage"), "completion_tokens")),
                                 json_array_size(want));
                if (!b)
                    ck_assert_str_eq(json_string_value(json_object_get(msg, "content")),
                                     json_string_value(json_array_get(decoded, (size_t)k)));
            } else {
                ck_assert_msg(json_equal(json_object_get(got, "ids"), want),
                              "%s case %d (%s, %d beams): ids differ from transformers'", name,
                              k, j->path, b ? 3 : 1);
                const char *text = json_string_value(json_object_get(got, "text"));
                if (!b)
                    ck_assert_str_eq(text, json_string_value(json_array_get(decoded, (size_t)k)));
                if (strcmp(j->path, "/v1/detect") == 0) {
                    ck_assert_int_eq(json_integer_value(json_object_get(got, "width")),
                                     widths[img]);
                    ck_assert_int_eq(json_integer_value(json_object_get(got, "height")),
                                     heights[img]);
                    detect_box boxes[64];
                    const int nb = detect_parse(text, widths[img], heights[img], boxes, 64);
                    json_t *objs = json_object_get(got, "objects");
                    ck_assert_int_eq((int)json_array_size(objs), nb);
                    for (int o = 0; o < nb; o++) {
                        json_t *ob = json_array_get(objs, (size_t)o);
                        json_t *box = json_object_get(ob, "box");
                        ck_assert_str_eq(json_string_value(json_object_get(ob, "label")),
                                         boxes[o].label);
                        const double want_box[4] = {boxes[o].x_min, boxes[o].y_min,
                                                    boxes[o].x_max, boxes[o].y_max};
                        for (int q = 0; q < 4; q++) /* printed with 3 decimals */
                            ck_assert(fabs(json_number_value(json_array_get(box, (size_t)q)) -
                                           want_box[q]) <= 5e-4);
                    }
                }
            }
            json_decref(want);
            json_decref(got);
            http_resp_free(&j->r);
            free(j->body);
        }
    /* the batch ran: fewer decode steps than generated tokens */
    http_resp m;
    ck_assert_int_eq(http_get(srv.port, "/metrics", &m), 0);
    const double steps =
        test_metric(m.body, "prism_decode_step_duration_seconds_count{task=\"generate\"}");
    const double toks = test_metric(m.body, "prism_generated_tokens_total");
    ck_assert_msg(steps > 0 && steps < toks, "steps %g, tokens %g", steps, toks);
    ck_assert(test_metric(m.body, "prism_http_requests_total{endpoint=\"/v1/detect\","
                                  "status=\"200\"}") == 4);
    http_resp_free(&m);

    /* errors: each names its field, the server goes on */
    static const struct {
        const char *path, *body_fmt;
        int status;
        const char *code, *param;
    } bad[] = {
        {"/v1/detect", "{\"image\":\"%s\"}", 400, "missing_field", "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[]}", 400, "missing_field", "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":\"cat\"}", 400, "invalid_type", "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[\"cat ; dog\"]}", 400, "invalid_value",
         "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[\"<loc0001>\"]}", 400, "invalid_value",
         "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[\"\"]}", 400, "invalid_value", "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[7]}", 400, "invalid_type", "labels"},
        {"/v1/caption", "{\"image\":\"%s\",\"lang\":\"en <image>\"}", 400, "invalid_text",
         "lang"},
        {"/v1/vqa", "{\"image\":\"%s\",\"question\":\"<image>\"}", 400, "invalid_text",
         "question"},
        {"/v1/caption", "{\"image\":\"%s\",\"max_new_tokens\":100000}", 413, "too_many_tokens",
         "max_new_tokens"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(urls[0]) + 256;
        char *body = malloc(n);
        snprintf(body, n, bad[i].body_fmt, urls[0]);
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, bad[i].path, body, &r), 0);
        test_expect_error(&r, bad[i].status, bad[i].code, bad[i].param);
        test_conforms(openapi, bad[i].path, "post", &r);
        http_resp_free(&r);
        free(body);
    }
    /* 33 labels */
    {
        json_t *b = json_pack("{s:s}", "image", urls[0]), *labels = json_array();
        for (int i = 0; i < 33; i++)
            json_array_append_new(labels, json_string("cat"));
        json_object_set_new(b, "labels", labels);
        char *body = json_dumps(b, JSON_COMPACT);
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, "/v1/detect", body, &r), 0);
        test_expect_error(&r, 413, "too_many_items", "labels");
        http_resp_free(&r);
        free(body);
        json_decref(b);
    }
    /* still serving */
    char *body;
    const char *path = case_body("caption en", urls[0], 1, &body);
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, path, body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    free(body);
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
    for (int i = 0; i < 4; i++)
        free(urls[i]);
    json_decref(openapi);
    json_decref(images), json_decref(cases), json_decref(decoded);
    st_file_close(&g);
}
END_TEST

/* Streamed chat completions, PaliGemma beside a SigLIP model in one
 * process (--generative-model): for every golden case the deltas of the
 * stream add up to transformers' decoded text (texts with U+FFFD from
 * byte-fallback pieces included), and the SigLIP model still embeds. */
START_TEST(test_stream_beside_siglip)
{
    char dir[4096], gpath[4200], demo[4200];
    test_data_path(dir, sizeof dir, "paligemma_tiny_a");
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    snprintf(demo, sizeof demo, "%s/models/demo", PRISM_SOURCE_DIR);
    prism_error err = {0};
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    json_t *images = test_st_meta(g.path, "images"), *cases = test_st_meta(g.path, "cases");
    json_t *decoded = test_st_meta(g.path, "decoded");
    char *urls[2];
    for (int i = 0; i < 2; i++) {
        char path[4200];
        test_data_path(path, sizeof path, json_string_value(json_array_get(images, (size_t)i)));
        urls[i] = test_data_url(path);
    }
    test_server srv;
    const char *const args[] = {"--threads", "2", "--generative-model", dir, NULL};
    test_server_start(&srv, demo, args);
    for (int k = 0; k < N_CASES; k++) {
        json_t *c = json_array_get(cases, (size_t)k);
        json_t *b = json_pack(
            "{s:b, s:i, s:[{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}]}]}", "stream", 1, "max_tokens",
            MAX_NEW, "messages", "role", "user", "content", "type", "text", "text",
            json_string_value(json_array_get(c, 1)), "type", "image_url", "image_url", "url",
            urls[json_integer_value(json_array_get(c, 0))]);
        char *body = json_dumps(b, JSON_COMPACT);
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, "/v1/chat/completions", body, &r), 0);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        int done, deltas;
        char *acc = test_sse_content(&r, &done, &deltas);
        ck_assert_int_eq(done, 1);
        ck_assert_msg(strcmp(acc, json_string_value(json_array_get(decoded, (size_t)k))) == 0,
                      "case %d: streamed '%s', want '%s'", k, acc,
                      json_string_value(json_array_get(decoded, (size_t)k)));
        free(acc);
        http_resp_free(&r);
        free(body);
        json_decref(b);
    }
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", "{\"texts\":[\"a flower\"]}", &r), 0);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
    free(urls[0]), free(urls[1]);
    json_decref(images), json_decref(cases), json_decref(decoded);
    st_file_close(&g);
}
END_TEST

/* A checkpoint larger than the memory it may use is refused at start with
 * both sizes and where the limit came from; the process exits 1. */
START_TEST(test_too_large_refused)
{
    char dir[4096], cmd[4400];
    test_data_path(dir, sizeof dir, "paligemma_tiny_a");
    snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 --memory-limit 64K 2>&1", PRISM_BIN,
             dir);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 1, "status %d: %s", st, out);
    ck_assert_msg(strstr(out, "too large to serve") && strstr(out, "65536 bytes") &&
                  strstr(out, "--memory-limit"), "%s", out);
    free(out);
}
END_TEST

/* /v1/detect on a pali3 server: the endpoint needs a PaliGemma model. */
START_TEST(test_detect_needs_paligemma)
{
    char dir[4096], img[4200];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    test_data_path(img, sizeof img, "pillow/flower.jpg");
    test_server srv;
    static const char *const args[] = {"--threads", "2", NULL};
    test_server_start(&srv, dir, args);
    char *url = test_data_url(img);
    size_t n = strlen(url) + 128;
    char *body = malloc(n);
    snprintf(body, n, "{\"image\":\"%s\",\"labels\":[\"cat\"]}", url);
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/detect", body, &r), 0);
    test_expect_error(&r, 422, "model_not_loaded", NULL);
    ck_assert_msg(strstr(r.body, "PaliGemma"), "%s", r.body);
    http_resp_free(&r);
    free(body), free(url);
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_paligemma");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_cases_equal_transformers, 0, 2);
    tcase_add_test(tc, test_detect_needs_paligemma);
    tcase_add_test(tc, test_stream_beside_siglip);
    tcase_add_test(tc, test_too_large_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
