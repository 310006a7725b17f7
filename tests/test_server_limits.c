/* test_server_limits.c - requests built to exhaust the server are bounded.
 *
 * The real `prism serve` on the demo model (models/demo), spoken to over
 * loopback. Each test sends what once took the server down or starved it
 * and checks the documented answer, the server's peak memory
 * (/proc/PID/status VmHWM, with a bound far below what the unbounded code
 * needed) and that other requests are still served:
 *
 *   classify template amplification      413, memory bounded
 *   a 30 MB text                         tokenized from its start only;
 *                                        the same embedding as its prefix
 *   one request with many large images   a later request is not held
 *                                        behind all of its decodes
 *   very long classify labels            the label cache stays in its bytes
 *
 * Every server is stopped with SIGTERM and must exit 0 (LeakSanitizer under
 * the ASan build).
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
#include <unistd.h>

#include "api_codec.h"
#include "server_checks.h"
#include "test_http.h"

#define DEMO PRISM_SOURCE_DIR "/models/demo"
#define DIM 32

/* The first text embedding of an /v1/embed answer. */
static void text_embedding(const http_resp *r, float *out)
{
    json_t *v = test_json_body(r);
    json_t *row = json_array_get(json_object_get(v, "text_embeddings"), 0);
    ck_assert_int_eq((int)json_array_size(row), DIM);
    for (int c = 0; c < DIM; c++)
        out[c] = (float)json_number_value(json_array_get(row, (size_t)c));
    json_decref(v);
}

static char *png_data_url(int w, int h, unsigned seed)
{
    size_t len = 0;
    uint8_t *png = test_make_png(w, h, seed, &len);
    char *b64 = api_base64_encode(png, len, NULL);
    char *url = malloc(strlen(b64) + 32);
    sprintf(url, "data:image/png;base64,%s", b64);
    free(b64);
    free(png);
    return url;
}

/* `{"image":..., "labels":["x"*1000000], "template":"{}"*N}`: a 1 MB body
 * that the template would multiply into N MB per label. A template over
 * --max-template-bytes is refused as such; one under it whose expansion
 * passes --max-text-bytes is refused before anything is expanded. */
START_TEST(test_template_amplification)
{
    test_server s;
    test_server_start(&s, DEMO, NULL);
    char *img = png_data_url(40, 30, 1);
    const size_t label_len = 1000000;
    size_t n = label_len + strlen(img) + 4096;
    char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    long before = test_proc_status_kb(s.pid, "VmHWM");
    for (int pass = 0; pass < 2; pass++) {
        const int placeholders = pass == 0 ? 1000 : 500; /* 2000 bytes, then 1000 */
        size_t k = (size_t)sprintf(b, "{\"image\":\"%s\",\"labels\":[\"", img);
        memset(b + k, 'x', label_len);
        k += label_len;
        k += (size_t)sprintf(b + k, "\"],\"template\":\"");
        for (int i = 0; i < placeholders; i++)
            k += (size_t)sprintf(b + k, "{}");
        sprintf(b + k, "\"}");
        http_resp r;
        ck_assert_int_eq(http_post_json(s.port, "/v1/classify", b, &r), 0);
        if (pass == 0)
            test_expect_error(&r, 413, "template_too_long", "template");
        else
            test_expect_error(&r, 413, "text_too_long", "labels[0]");
        http_resp_free(&r);
    }
    long after = test_proc_status_kb(s.pid, "VmHWM");
    /* unbounded, the second request alone would have made 500 MB of text */
    ck_assert_msg(after - before < 100 * 1024, "peak memory grew by %ld kB", after - before);
    /* a template within the limits still works */
    snprintf(b, n, "{\"image\":\"%s\",\"labels\":[\"cat\",\"dog\"],\"template\":\"a {} or {}\"}",
             img);
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/classify", b, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    free(b);
    free(img);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* A 30 MB text (under a raised --max-text-bytes) is tokenized from its start
 * only: the answer is the embedding of a prefix that already has more than
 * the 64 kept tokens, bit for bit, and peak memory stays far below what
 * tokenizing all of it took (2.3 GB). Under the default limit the same text
 * is a 413 naming the field. */
START_TEST(test_huge_text)
{
    test_server s;
    static const char *const args[] = {"--max-text-bytes", "64M", NULL};
    test_server_start(&s, DEMO, args);
    const size_t text_len = 30u << 20, prefix_len = 4096; /* 4 KB: ~680 words */
    size_t n = text_len + 64;
    char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    size_t k = (size_t)sprintf(b, "{\"texts\":[\"");
    for (size_t i = 0; i < text_len; i++)
        b[k + i] = "tiny dog, "[i % 10];
    strcpy(b + k + text_len, "\"]}");
    long before = test_proc_status_kb(s.pid, "VmHWM");
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", b, &r), 0);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    float whole[DIM], prefix[DIM];
    text_embedding(&r, whole);
    http_resp_free(&r);
    long after = test_proc_status_kb(s.pid, "VmHWM");
    /* the body is held while received and while parsed (~60 MB) */
    ck_assert_msg(after - before < 300 * 1024, "peak memory grew by %ld kB", after - before);
    strcpy(b + k + prefix_len, "\"]}");
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", b, &r), 0);
    ck_assert_int_eq(r.status, 200);
    text_embedding(&r, prefix);
    http_resp_free(&r);
    ck_assert(memcmp(whole, prefix, sizeof whole) == 0);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);

    /* the default limit (1 MiB): 413 text_too_long for texts[1] */
    test_server_start(&s, DEMO, NULL);
    k = (size_t)sprintf(b, "{\"texts\":[\"fine\",\"");
    memset(b + k, 'y', 2u << 20);
    strcpy(b + k + (2u << 20), "\"]}");
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", b, &r), 0);
    test_expect_error(&r, 413, "text_too_long", "texts[1]");
    http_resp_free(&r);
    free(b);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* One preprocessing worker; request A brings 48 large images, request B
 * one text. B arrives while A's images wait to be decoded and is answered
 * while most of them still wait: the pool takes one job per request in
 * turn, so B waits for about one decode, not for all that were queued. */
START_TEST(test_prep_fairness)
{
    test_server s;
    static const char *const args[] = {"--prep-threads", "1", "--max-items", "64", "--body-limit",
                                       "256M", NULL};
    test_server_start(&s, DEMO, args);
    enum { N = 48 };
    char *url = png_data_url(1200, 900, 7);
    size_t n = (strlen(url) + 4) * N + 64;
    test_post a = {.port = s.port, .path = "/v1/embed", .body = malloc(n)};
    size_t k = (size_t)sprintf(a.body, "{\"images\":[");
    for (int i = 0; i < N; i++)
        k += (size_t)sprintf(a.body + k, "%s\"%s\"", i ? "," : "", url);
    sprintf(a.body + k, "]}");
    free(url);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, test_post_async, &a), 0);
    /* A's decode jobs are queued */
    double queued = 0;
    for (int i = 0; i < 500 && queued < N / 2; i++) {
        usleep(10000);
        queued = test_metric_at(s.port, "prism_preprocess_queue_depth");
    }
    ck_assert_msg(queued >= N / 2, "A's images were never queued (%g)", queued);
    /* counted from B's arrival: first come first served would make B wait
     * for every queued decode (≥ N/2); taking turns, for about one. Half
     * the queue leaves room for a loaded host, where B's own embedding
     * competes with A's for the cores while the decoder runs on. */
    const double before = test_metric_at(s.port, "prism_images_decoded_total");
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"a cat\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    const double waited = test_metric_at(s.port, "prism_images_decoded_total") - before;
    ck_assert_msg(waited < queued / 2, "B waited for %g of the %g decodes queued before it",
                  waited, queued);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(a.r.status, 200);
    http_resp_free(&a.r);
    free(a.body);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* Classify labels of 400 KB each against a 1 MiB label cache: it keeps
 * what fits in its bytes (LRU), not 4096 entries of any size; short labels
 * are still cached and found. */
START_TEST(test_label_cache_bytes)
{
    test_server s;
    static const char *const args[] = {"--label-cache-bytes", "1M", "--max-text-bytes", "2M",
                                       NULL};
    test_server_start(&s, DEMO, args);
    char *img = png_data_url(40, 30, 2);
    const size_t label_len = 400000;
    size_t n = 4 * (label_len + 8) + strlen(img) + 256;
    char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    for (int round = 0; round < 3; round++) {
        size_t k = (size_t)sprintf(b, "{\"image\":\"%s\",\"template\":\"{}\",\"labels\":[", img);
        for (int l = 0; l < 4; l++) {
            k += (size_t)sprintf(b + k, "%s\"%c", l ? "," : "", 'a' + round * 4 + l);
            memset(b + k, 'z', label_len);
            k += label_len;
            b[k++] = '"';
        }
        sprintf(b + k, "]}");
        http_resp r;
        ck_assert_int_eq(http_post_json(s.port, "/v1/classify", b, &r), 0);
        ck_assert_int_eq(r.status, 200);
        http_resp_free(&r);
        double bytes = test_metric_at(s.port, "prism_label_cache_bytes");
        ck_assert_msg(bytes > 0 && bytes <= 1048576, "the cache holds %g bytes", bytes);
        ck_assert(test_metric_at(s.port, "prism_label_cache_entries") <= 2);
    }
    snprintf(b, n, "{\"image\":\"%s\",\"labels\":[\"cat\",\"dog\"]}", img);
    for (int i = 0; i < 2; i++) {
        http_resp r;
        ck_assert_int_eq(http_post_json(s.port, "/v1/classify", b, &r), 0);
        ck_assert_int_eq(r.status, 200);
        http_resp_free(&r);
    }
    ck_assert(test_metric_at(s.port, "prism_label_cache_hits_total") == 2);
    free(b);
    free(img);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("server_limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_template_amplification);
    tcase_add_test(tc, test_huge_text);
    tcase_add_test(tc, test_prep_fairness);
    tcase_add_test(tc, test_label_cache_bytes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
