/* test_server_florence2.c - `prism serve` with a Florence-2 checkpoint as
 * downloaded, against transformers.
 *
 * tests/data/florence2_tiny_tok (a tiny random Florence-2 with the BART
 * tokenizer of tests/data/tok_bart) and its goldens
 * (tools/reference/make_florence2_e2e_goldens.py): for each case an image
 * file and a task text, transformers' generate() ids greedy and with
 * num_beams=3, and the processor's post_process_generation of them. Each
 * case goes to the endpoint whose task it is (/v1/caption with `detail`,
 * /v1/ocr with and without `regions`, /v1/detect without labels (<OD>) and
 * with them (phrase grounding), /v1/vqa for free text, chat for the other
 * task tokens), all greedy and beam requests at once (continuous
 * batching). Ids must equal transformers', answers the processor's
 * (text; boxes and quads, printed with 3 decimals), every answer conforms
 * to openapi.yaml. Errors name their field; Florence-2's fields on a pali3
 * server are refused; streamed chat adds up to the final text. The server
 * exits 0 on SIGTERM (LeakSanitizer in the ASan build). prism caption,
 * detect and ask give the same ids and answers from the command line.
 */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "florence2_tasks.h"
#include "server_checks.h"
#include "test_http.h"
#include "test_util.h"

#define MAX_CASES 64

static json_t *load_goldens(char *dir, size_t n)
{
    char path[4300];
    test_data_path(dir, n, "florence2_tiny_tok");
    snprintf(path, sizeof path, "%s.golden.json", dir);
    json_error_t e;
    json_t *g = json_load_file(path, 0, &e);
    ck_assert_msg(g != NULL, "%s: %s", path, e.text);
    return g;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    ck_assert_msg(s != NULL, "golden field %s", key);
    return s;
}

/* The endpoint of a case and its request body; NULL when no endpoint
 * sends this text (an empty prompt: the engine test covers it). */
static const char *case_request(json_t *c, const char *url, int beams, char **body)
{
    const char *text = str(c, "text"), *task = str(c, "task");
    json_t *b = json_object();
    const char *path = NULL;
    json_object_set_new(b, "num_beams", json_integer(beams));
    json_object_set_new(b, "image", json_string(url));
    static const char *const captions[][2] = {{"<CAPTION>", "brief"},
                                              {"<DETAILED_CAPTION>", "detailed"},
                                              {"<MORE_DETAILED_CAPTION>", "more_detailed"}};
    int caption = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(text, captions[i][0]) == 0)
            caption = i;
    if (caption >= 0) {
        path = "/v1/caption";
        if (caption > 0) /* brief is the default: left out */
            json_object_set_new(b, "detail", json_string(captions[caption][1]));
    } else if (strcmp(text, "<OCR>") == 0 || strcmp(text, "<OCR_WITH_REGION>") == 0) {
        path = "/v1/ocr";
        if (text[4] == '_')
            json_object_set_new(b, "regions", json_true());
    } else if (strcmp(text, "<OD>") == 0) {
        path = "/v1/detect";
    } else if (strcmp(task, "<CAPTION_TO_PHRASE_GROUNDING>") == 0) {
        path = "/v1/detect";
        json_object_set_new(b, "labels", json_pack("[s]", text + strlen(task)));
    } else if (florence2_is_task_token(task)) {
        path = "/v1/chat/completions";
        json_object_del(b, "image");
        json_object_set_new(
            b, "messages",
            json_pack("[{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}]}]", "role", "user", "content",
                      "type", "text", "text", text, "type", "image_url", "image_url", "url",
                      url));
    } else if (text[0]) {
        path = "/v1/vqa";
        json_object_set_new(b, "question", json_string(text));
    }
    json_object_set_new(b, path && strcmp(path, "/v1/chat/completions") == 0 ? "max_tokens"
                                                                            : "max_new_tokens",
                        json_integer(24));
    *body = path ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return path;
}

/* The answer's numbers against the processor's (printed with 3 decimals). */
static void same_coords(json_t *got, json_t *want, int n, const char *what)
{
    ck_assert_int_eq((int)json_array_size(got), n);
    ck_assert_int_eq((int)json_array_size(want), n);
    for (int q = 0; q < n; q++)
        ck_assert_msg(fabs(json_number_value(json_array_get(got, (size_t)q)) -
                           json_number_value(json_array_get(want, (size_t)q))) <= 5e-4,
                      "%s coordinate %d", what, q);
}

/* One answer against the case's golden (ids, text, objects or regions). */
static void check_answer(json_t *c, json_t *gold, const char *path, json_t *got, int w, int h)
{
    const char *task = str(c, "task");
    json_t *answer = json_object_get(json_object_get(gold, "answer"), task);
    ck_assert_ptr_nonnull(answer);
    json_t *ids = json_object_get(gold, "ids");
    if (strcmp(path, "/v1/chat/completions") == 0) {
        json_t *msg =
            json_object_get(json_array_get(json_object_get(got, "choices"), 0), "message");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(got, "usage"),
                                                            "completion_tokens")),
                         json_array_size(ids));
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(got, "usage"),
                                                            "prompt_tokens")),
                         json_array_size(json_object_get(c, "input_ids")));
        /* chat answers text: the processor's pure-text reading of the output */
        florence2_result want = {0};
        prism_error err = {0};
        ck_assert_msg(florence2_post_process(NULL, str(gold, "raw"), "<CAPTION>", w, h, &want,
                                             &err) == 0, "%s", err.msg);
        if (json_is_string(answer)) /* a pure-text task: the processor's own answer */
            ck_assert_str_eq(want.text, json_string_value(answer));
        ck_assert_str_eq(json_string_value(json_object_get(msg, "content")), want.text);
        florence2_result_free(&want);
        return;
    }
    ck_assert_msg(json_equal(json_object_get(got, "ids"), ids), "%s %s: ids differ", path,
                  str(c, "text"));
    if (json_is_string(answer)) {
        ck_assert_str_eq(json_string_value(json_object_get(got, "text")),
                         json_string_value(answer));
        return;
    }
    ck_assert_int_eq(json_integer_value(json_object_get(got, "width")), w);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "height")), h);
    const bool ocr = strcmp(path, "/v1/ocr") == 0;
    /* the text beside the items: OCR's region texts one per line; detect's
     * generated text without <s>, </s> and <pad> */
    char want_text[8192];
    size_t k = 0;
    if (ocr) {
        json_t *l;
        size_t i;
        json_array_foreach(json_object_get(answer, "labels"), i, l) {
            k += (size_t)snprintf(want_text + k, sizeof want_text - k, "%s%s", i ? "\n" : "",
                                  json_string_value(l));
            ck_assert(k < sizeof want_text);
        }
    } else {
        for (const char *p = str(gold, "raw"); *p;) {
            static const char *const specials[] = {"<s>", "</s>", "<pad>"};
            size_t skip = 0;
            for (int i = 0; i < 3; i++)
                if (!skip && strncmp(p, specials[i], strlen(specials[i])) == 0)
                    skip = strlen(specials[i]);
            if (!skip) {
                ck_assert(k + 1 < sizeof want_text);
                want_text[k++] = *p;
            }
            p += skip ? skip : 1;
        }
    }
    want_text[k] = '\0';
    ck_assert_str_eq(json_string_value(json_object_get(got, "text")), want_text);
    json_t *items = json_object_get(got, ocr ? "regions" : "objects");
    json_t *labels = json_object_get(answer, "labels");
    json_t *coords = json_object_get(answer, ocr ? "quad_boxes" : "bboxes");
    ck_assert_int_eq((int)json_array_size(items), (int)json_array_size(labels));
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        ck_assert_str_eq(json_string_value(json_object_get(it, ocr ? "text" : "label")),
                         json_string_value(json_array_get(labels, i)));
        same_coords(json_object_get(it, ocr ? "quad" : "box"), json_array_get(coords, i),
                    ocr ? 8 : 4, path);
    }
}

typedef struct img {
    char *url;
    int w, h;
} img;

START_TEST(test_cases_equal_transformers)
{
    char dir[4096];
    json_t *g = load_goldens(dir, sizeof dir);
    json_t *cases = json_object_get(g, "cases");
    const int n_cases = (int)json_array_size(cases);
    ck_assert(n_cases > 0 && n_cases <= MAX_CASES);
    img *imgs = calloc((size_t)n_cases, sizeof *imgs);
    for (int k = 0; k < n_cases; k++) {
        json_t *c = json_array_get(cases, (size_t)k);
        char path[4200];
        test_data_path(path, sizeof path, str(c, "image"));
        imgs[k].url = test_data_url(path);
        imgs[k].w = (int)json_integer_value(json_object_get(c, "width"));
        imgs[k].h = (int)json_integer_value(json_object_get(c, "height"));
    }
    test_server srv;
    static const char *const args[] = {"--threads", "2", "--gen-max-sequences", "32", NULL};
    test_server_start(&srv, dir, args);
    json_t *openapi = test_get_openapi(srv.port);

    /* every case greedy and with 3 beams, all at once */
    test_post *jobs = calloc(2 * (size_t)n_cases, sizeof *jobs);
    pthread_t *th = calloc(2 * (size_t)n_cases, sizeof *th);
    int n_ocr = 0;
    for (int k = 0; k < n_cases; k++)
        for (int b = 0; b < 2; b++) {
            test_post *j = &jobs[2 * k + b];
            j->port = srv.port;
            j->path = case_request(json_array_get(cases, (size_t)k), imgs[k].url, b ? 3 : 1,
                                   &j->body);
            if (j->path) {
                n_ocr += strcmp(j->path, "/v1/ocr") == 0;
                pthread_create(&th[2 * k + b], NULL, test_post_async, j);
            }
        }
    int n_sent = 0;
    for (int k = 0; k < n_cases; k++)
        for (int b = 0; b < 2; b++) {
            test_post *j = &jobs[2 * k + b];
            if (!j->path)
                continue;
            n_sent++;
            pthread_join(th[2 * k + b], NULL);
            json_t *c = json_array_get(cases, (size_t)k);
            ck_assert_int_eq(j->rc, 0);
            ck_assert_msg(j->r.status == 200, "case %d %s: %d %s", k, j->path, j->r.status,
                          j->r.body);
            test_conforms(openapi, j->path, "post", &j->r);
            json_t *got = test_json_body(&j->r);
            check_answer(c, json_object_get(c, b ? "beam3" : "greedy"), j->path, got,
                         imgs[k].w, imgs[k].h);
            json_decref(got);
            http_resp_free(&j->r);
            free(j->body);
        }
    ck_assert_msg(n_sent >= n_cases * 2 - 2, "only %d requests sent", n_sent);
    ck_assert(n_ocr >= 2);
    ck_assert(test_metric_at(srv.port, "prism_http_requests_total{endpoint=\"/v1/ocr\","
                                       "status=\"200\"}") == n_ocr);

    /* multipart: OCR with regions as form fields, the same answer as JSON */
    {
        json_t *c = NULL;
        int k;
        for (k = 0; k < n_cases; k++)
            if (strcmp(str(json_array_get(cases, (size_t)k), "text"), "<OCR_WITH_REGION>") == 0) {
                c = json_array_get(cases, (size_t)k);
                break;
            }
        ck_assert_ptr_nonnull(c);
        char path[4200];
        test_data_path(path, sizeof path, str(c, "image"));
        size_t len;
        char *file = test_read_file(path, &len);
        ck_assert_ptr_nonnull(file);
        const char *bd = "f2BoUnDaRy";
        size_t cap = len + 1024, n = 0;
        char *body = malloc(cap);
        n += (size_t)snprintf(body + n, cap - n,
                              "--%s\r\nContent-Disposition: form-data; name=\"regions\"\r\n\r\n"
                              "true\r\n--%s\r\nContent-Disposition: form-data; "
                              "name=\"max_new_tokens\"\r\n\r\n24\r\n--%s\r\nContent-Disposition: "
                              "form-data; name=\"image\"; filename=\"a\"\r\nContent-Type: "
                              "application/octet-stream\r\n\r\n",
                              bd, bd, bd);
        memcpy(body + n, file, len);
        n += len;
        n += (size_t)snprintf(body + n, cap - n, "\r\n--%s--\r\n", bd);
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Content-Type: multipart/form-data; boundary=%s\r\n", bd);
        http_resp r;
        ck_assert_int_eq(http_request(srv.port, "POST", "/v1/ocr", hdr, body, n, &r), 0);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        json_t *got = test_json_body(&r);
        check_answer(c, json_object_get(c, "greedy"), "/v1/ocr", got,
                     (int)json_integer_value(json_object_get(c, "width")),
                     (int)json_integer_value(json_object_get(c, "height")));
        json_decref(got);
        http_resp_free(&r);
        free(body), free(file);
    }

    /* errors: each names its field, the server goes on */
    static const struct {
        const char *path, *body_fmt;
        int status;
        const char *code, *param;
    } bad[] = {
        {"/v1/caption", "{\"image\":\"%s\",\"detail\":\"huge\"}", 400, "invalid_value", "detail"},
        {"/v1/caption", "{\"image\":\"%s\",\"detail\":2}", 400, "invalid_type", "detail"},
        {"/v1/caption", "{\"image\":\"%s\",\"lang\":\"fr\"}", 400, "invalid_value", "lang"},
        {"/v1/ocr", "{\"image\":\"%s\",\"regions\":\"yes\"}", 400, "invalid_type", "regions"},
        {"/v1/ocr", "{\"regions\":true}", 400, "missing_field", "image"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[\"a ; b\"]}", 400, "invalid_value",
         "labels"},
        {"/v1/detect", "{\"image\":\"%s\",\"labels\":[\"<loc_1>\"]}", 400, "invalid_value",
         "labels"},
        {"/v1/vqa", "{\"image\":\"%s\",\"question\":\"what <image> is\"}", 400, "invalid_text",
         "question"},
        {"/v1/chat/completions",
         "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"<OD>and "
         "more\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}}]}]}",
         400, "invalid_value", "messages"},
        {"/v1/ocr", "{\"image\":\"%s\",\"max_new_tokens\":100000}", 413, "too_many_tokens",
         "max_new_tokens"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(imgs[0].url) + 512;
        char *body = malloc(n);
        snprintf(body, n, bad[i].body_fmt, imgs[0].url);
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, bad[i].path, body, &r), 0);
        test_expect_error(&r, bad[i].status, bad[i].code, bad[i].param);
        test_conforms(openapi, bad[i].path, "post", &r);
        http_resp_free(&r);
        free(body);
    }
    /* a multipart regions that is not a boolean */
    {
        const char *form = "--b\r\nContent-Disposition: form-data; name=\"regions\"\r\n\r\n"
                           "maybe\r\n--b--\r\n";
        http_resp r;
        ck_assert_int_eq(http_request(srv.port, "POST", "/v1/ocr",
                                      "Content-Type: multipart/form-data; boundary=b\r\n", form,
                                      strlen(form), &r), 0);
        test_expect_error(&r, 400, "invalid_value", "regions");
        http_resp_free(&r);
    }
    /* a question over --gen-max-prompt-tokens (64): refused before the engine */
    {
        json_t *b = json_pack("{s:s}", "image", imgs[0].url);
        char q[4000] = "";
        for (int i = 0; i < 300; i++)
            strcat(q, "word ");
        json_object_set_new(b, "question", json_string(q));
        char *body = json_dumps(b, JSON_COMPACT);
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, "/v1/vqa", body, &r), 0);
        test_expect_error(&r, 400, "prompt_too_long", "question");
        http_resp_free(&r);
        free(body);
        json_decref(b);
    }

    /* streamed chat: the deltas add up to the final answer's content */
    for (int k = 0; k < n_cases; k++) {
        json_t *c = json_array_get(cases, (size_t)k);
        if (!str(c, "text")[0])
            continue;
        json_t *b = json_pack("{s:b, s:i, s:[{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}]}]}", "stream",
                              1, "max_tokens", 24, "messages", "role", "user", "content", "type",
                              "text", "text", str(c, "text"), "type", "image_url", "image_url",
                              "url", imgs[k].url);
        char *body = json_dumps(b, JSON_COMPACT);
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, "/v1/chat/completions", body, &r), 0);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        int done, deltas;
        char *acc = test_sse_content(&r, &done, &deltas);
        ck_assert_int_eq(done, 1);
        florence2_result want = {0};
        prism_error err = {0};
        ck_assert(florence2_post_process(NULL, str(json_object_get(c, "greedy"), "raw"),
                                         "<CAPTION>", 1, 1, &want, &err) == 0);
        ck_assert_msg(strcmp(acc, want.text) == 0, "case %d: streamed '%s', want '%s'", k, acc,
                      want.text);
        ck_assert_msg(deltas > 1 || strlen(want.text) < 8, "case %d: %d deltas", k, deltas);
        florence2_result_free(&want);
        free(acc);
        http_resp_free(&r);
        free(body);
        json_decref(b);
    }
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
    for (int k = 0; k < n_cases; k++)
        free(imgs[k].url);
    free(imgs), free(jobs), free(th);
    json_decref(openapi);
    json_decref(g);
}
END_TEST

/* Florence-2's endpoint and field on a pali3 server: refused, naming what
 * is missing. */
START_TEST(test_pali3_refuses_florence2_fields)
{
    char dir[4096], img_path[4200];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    test_data_path(img_path, sizeof img_path, "pillow/flower.jpg");
    test_server srv;
    static const char *const args[] = {"--threads", "2", NULL};
    test_server_start(&srv, dir, args);
    char *url = test_data_url(img_path);
    size_t n = strlen(url) + 128;
    char *body = malloc(n);
    http_resp r;
    snprintf(body, n, "{\"image\":\"%s\"}", url);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/ocr", body, &r), 0);
    test_expect_error(&r, 422, "model_not_loaded", NULL);
    ck_assert_msg(strstr(r.body, "Florence-2"), "%s", r.body);
    http_resp_free(&r);
    snprintf(body, n, "{\"image\":\"%s\",\"detail\":\"detailed\"}", url);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/caption", body, &r), 0);
    test_expect_error(&r, 400, "invalid_value", "detail");
    http_resp_free(&r);
    snprintf(body, n, "{\"image\":\"%s\"}", url);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/detect", body, &r), 0);
    test_expect_error(&r, 422, "model_not_loaded", NULL);
    http_resp_free(&r);
    free(body), free(url);
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
}
END_TEST

/* prism caption / detect / ask on the same checkpoint: the same ids and
 * answers, greedy. */
START_TEST(test_cli_equals_transformers)
{
    char dir[4096];
    json_t *g = load_goldens(dir, sizeof dir);
    json_t *cases = json_object_get(g, "cases");
    int checked = 0;
    for (size_t k = 0; k < json_array_size(cases); k++) {
        json_t *c = json_array_get(cases, k);
        const char *text = str(c, "text"), *task = str(c, "task");
        char img_path[4200], cmd[9000], arg[700];
        test_data_path(img_path, sizeof img_path, str(c, "image"));
        const char *sub = "caption";
        if (strcmp(text, "<DETAILED_CAPTION>") == 0) {
            snprintf(arg, sizeof arg, "--detail detailed");
        } else if (strcmp(text, "<OD>") == 0) {
            sub = "detect";
            arg[0] = '\0';
        } else if (strcmp(task, "<CAPTION_TO_PHRASE_GROUNDING>") == 0 &&
                   !strchr(text, ' ')) {
            continue; /* the labels' quoting: one case with spaces is enough below */
        } else if (strcmp(task, "<CAPTION_TO_PHRASE_GROUNDING>") == 0) {
            sub = "detect";
            snprintf(arg, sizeof arg, "--label '%s'", text + strlen(task));
        } else if (strcmp(text, "<OCR_WITH_REGION>") == 0) {
            snprintf(arg, sizeof arg, "--prompt '%s'", text);
        } else if (strcmp(text, "What is in the image?") == 0) {
            sub = "ask";
            snprintf(arg, sizeof arg, "--question '%s'", text);
        } else {
            continue;
        }
        snprintf(cmd, sizeof cmd, "%s %s --model %s --image %s --max-new-tokens 24 %s 2>&1",
                 PRISM_BIN, sub, dir, img_path, arg);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st == 0, "%s: %s", cmd, out);
        json_error_t e;
        json_t *got = json_loads(out, 0, &e);
        ck_assert_msg(got != NULL, "%s: %s", cmd, out);
        json_t *gold = json_object_get(c, "greedy");
        ck_assert_msg(json_equal(json_object_get(got, "ids"), json_object_get(gold, "ids")),
                      "%s: ids differ", cmd);
        ck_assert_str_eq(json_string_value(json_object_get(got, "prompt")), str(c, "prompt"));
        json_t *answer = json_object_get(json_object_get(gold, "answer"), task);
        if (json_is_string(answer)) {
            ck_assert_str_eq(json_string_value(json_object_get(got, "text")),
                             json_string_value(answer));
        } else {
            const bool quad = json_object_get(answer, "quad_boxes") != NULL;
            json_t *objs = json_object_get(got, "objects");
            json_t *labels = json_object_get(answer, "labels");
            json_t *coords = json_object_get(answer, quad ? "quad_boxes" : "bboxes");
            ck_assert_int_eq((int)json_array_size(objs), (int)json_array_size(labels));
            for (size_t i = 0; i < json_array_size(objs); i++) {
                json_t *o = json_array_get(objs, i);
                ck_assert_str_eq(json_string_value(json_object_get(o, "label")),
                                 json_string_value(json_array_get(labels, i)));
                same_coords(json_object_get(o, quad ? "quad" : "box"),
                            json_array_get(coords, i), quad ? 8 : 4, cmd);
            }
        }
        json_decref(got);
        free(out);
        checked++;
    }
    ck_assert_int_ge(checked, 5);
    json_decref(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_florence2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_cases_equal_transformers);
    tcase_add_test(tc, test_pali3_refuses_florence2_fields);
    tcase_add_test(tc, test_cli_equals_transformers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
