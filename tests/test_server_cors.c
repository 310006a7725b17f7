/* test_server_cors.c - `prism serve --cors-origin`: the real binary on a
 * loopback port, raw HTTP requests as a browser would send them.
 *
 * One server (demo SigLIP + tiny pali3 model, an API key, two listed
 * origins) answers preflights, successes, errors and a stream; servers of
 * their own check that CORS is off by default, that "*" allows any origin,
 * that PRISM_CORS_ORIGIN sets it, and that the origin list is bounded and
 * checked at start. An Origin header past libmicrohttpd's header buffer is
 * refused like any other oversized header.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server_checks.h"
#include "test_http.h"

#define DEMO PRISM_SOURCE_DIR "/models/demo"
#define PALI3 PRISM_SOURCE_DIR "/tests/data/pali3_tiny_a"
#define KEY "cors-test-key"
#define ORIGIN_A "http://a.example"
#define ORIGIN_B "http://localhost:3000"
#define EMBED_ONE "{\"texts\":[\"a photo of a cat\"]}"
#define JSON_HDR "Content-Type: application/json\r\n"
#define AUTH_HDR "Authorization: Bearer " KEY "\r\n"

static test_server shared;

static void start_shared(void)
{
    static const char *const args[] = {"--generative-model", PALI3, "--api-key", KEY,
                                       "--cors-origin", ORIGIN_A ", " ORIGIN_B, NULL};
    test_server_start(&shared, DEMO, args);
}

static void stop_shared(void)
{
    test_server_stop(&shared, 15);
    unlink(shared.log_path);
}

/* The value of a header, or "" when absent (static buffer per call site is
 * not needed: the caller passes one). */
static const char *hdr(const http_resp *r, const char *name, char *buf, size_t n)
{
    const char *v = http_header(r, name, buf, n);
    return v ? v : "";
}

/* A comma-separated header value lists item (case-insensitive). */
static bool lists(const char *value, const char *item)
{
    size_t k = strlen(item);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == k && strncasecmp(p, item, k) == 0)
            return true;
        p = e;
    }
    return false;
}

/* The answer has no Access-Control-* header at all. */
static void expect_no_cors(const http_resp *r)
{
    ck_assert_msg(!strcasestr(r->head, "\r\nAccess-Control-"), "unexpected CORS header in:\n%s",
                  r->head);
}

/* The answer allows origin and names the headers a page needs to read. */
static void expect_cors(const http_resp *r, const char *origin)
{
    char b[512];
    ck_assert_msg(http_header(r, "Access-Control-Allow-Origin", b, sizeof b), "no ACAO in:\n%s",
                  r->head);
    ck_assert_str_eq(b, origin);
    ck_assert_msg(lists(hdr(r, "Vary", b, sizeof b), "Origin"), "Vary: %s", b);
    const char *expose = hdr(r, "Access-Control-Expose-Headers", b, sizeof b);
    ck_assert_msg(lists(expose, "Retry-After") && lists(expose, "X-Request-Id"),
                  "Access-Control-Expose-Headers: %s", expose);
}

static void preflight(int port, const char *path, const char *origin, const char *method,
                      http_resp *r)
{
    char h[1024];
    snprintf(h, sizeof h,
             "Origin: %s\r\nAccess-Control-Request-Method: %s\r\n"
             "Access-Control-Request-Headers: content-type, authorization\r\n",
             origin, method);
    ck_assert_int_eq(http_request(port, "OPTIONS", path, h, NULL, 0, r), 0);
}

/* ---- preflights ----------------------------------------------------------- */

START_TEST(test_preflight_allowed)
{
    /* no Authorization: browsers send none with a preflight, yet the key is set */
    static const char *const origins[] = {ORIGIN_A, ORIGIN_B};
    for (int i = 0; i < 2; i++) {
        http_resp r;
        preflight(shared.port, "/v1/classify", origins[i], "POST", &r);
        ck_assert_int_eq(r.status, 204);
        ck_assert_uint_eq(r.body_len, 0);
        expect_cors(&r, origins[i]);
        char b[512];
        ck_assert_msg(lists(hdr(&r, "Access-Control-Allow-Methods", b, sizeof b), "POST"), "%s",
                      b);
        const char *ah = hdr(&r, "Access-Control-Allow-Headers", b, sizeof b);
        ck_assert_msg(lists(ah, "Content-Type") && lists(ah, "Authorization"), "%s", ah);
        ck_assert_int_gt(atoi(hdr(&r, "Access-Control-Max-Age", b, sizeof b)), 0);
        ck_assert_ptr_null(http_header(&r, "WWW-Authenticate", b, sizeof b));
        ck_assert_ptr_null(http_header(&r, "Content-Type", b, sizeof b)); /* no body */
        http_resp_free(&r);
    }
    /* every /v1/ path openapi.yaml describes answers a preflight, as it says */
    json_t *doc = test_get_openapi(shared.port);
    const char *path;
    json_t *item;
    int n = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        if (strncmp(path, "/v1/", 4) != 0)
            continue;
        json_t *resp = json_object_get(
            json_object_get(json_object_get(item, "options"), "responses"), "204");
        ck_assert_msg(resp != NULL, "openapi.yaml has no OPTIONS 204 for %s", path);
        http_resp r;
        preflight(shared.port, path, ORIGIN_A, json_object_get(item, "post") ? "POST" : "GET",
                  &r);
        ck_assert_msg(r.status == 204, "%s: %d", path, r.status);
        http_resp_free(&r);
        n++;
    }
    ck_assert_int_ge(n, 8);
    json_decref(doc);
    /* a GET route's preflight lists its own methods */
    http_resp r;
    preflight(shared.port, "/v1/models", ORIGIN_A, "GET", &r);
    ck_assert_int_eq(r.status, 204);
    char b[512];
    const char *m = hdr(&r, "Access-Control-Allow-Methods", b, sizeof b);
    ck_assert_msg(lists(m, "GET") && !lists(m, "POST"), "%s", m);
    http_resp_free(&r);
}
END_TEST

START_TEST(test_preflight_denied)
{
    /* origins that are not listed, though close to one that is */
    static const char *const bad[] = {"http://evil.example", "http://a.example.evil",
                                      "http://a.exampl", "https://a.example",
                                      "HTTP://A.EXAMPLE", "http://localhost:30000", "null",
                                      "http://a.example, http://localhost:3000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http_resp r;
        preflight(shared.port, "/v1/embed", bad[i], "POST", &r);
        ck_assert_msg(r.status == 405, "%s: %d", bad[i], r.status); /* as without CORS */
        expect_no_cors(&r);
        char b[64];
        ck_assert_str_eq(hdr(&r, "Allow", b, sizeof b), "POST");
        json_t *doc = test_get_openapi(shared.port);
        test_conforms(doc, "/v1/embed", "options", &r);
        json_decref(doc);
        http_resp_free(&r);
    }
    /* an OPTIONS that is no preflight (no Access-Control-Request-Method) */
    http_resp r;
    ck_assert_int_eq(http_request(shared.port, "OPTIONS", "/v1/embed", "Origin: " ORIGIN_A "\r\n",
                                  NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 405);
    http_resp_free(&r);
    /* outside /v1/ there is no CORS: a page elsewhere cannot read health or metrics */
    preflight(shared.port, "/metrics", ORIGIN_A, "GET", &r);
    ck_assert_int_eq(r.status, 405);
    expect_no_cors(&r);
    http_resp_free(&r);
    ck_assert_int_eq(http_request(shared.port, "GET", "/healthz", "Origin: " ORIGIN_A "\r\n",
                                  NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_no_cors(&r);
    http_resp_free(&r);
}
END_TEST

/* ---- answers -------------------------------------------------------------- */

START_TEST(test_success_has_cors)
{
    http_resp r;
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed",
                                  JSON_HDR AUTH_HDR "Origin: " ORIGIN_B "\r\n", EMBED_ONE,
                                  strlen(EMBED_ONE), &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_cors(&r, ORIGIN_B);
    char b[64];
    ck_assert_ptr_null(http_header(&r, "Access-Control-Allow-Methods", b, sizeof b));
    http_resp_free(&r);
    /* GET routes too */
    ck_assert_int_eq(http_request(shared.port, "GET", "/v1/models",
                                  AUTH_HDR "Origin: " ORIGIN_A "\r\n", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);
    /* another origin: the same answer, no CORS headers (Vary still says why) */
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed",
                                  JSON_HDR AUTH_HDR "Origin: http://evil.example\r\n", EMBED_ONE,
                                  strlen(EMBED_ONE), &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_no_cors(&r);
    ck_assert_msg(lists(hdr(&r, "Vary", b, sizeof b), "Origin"), "Vary: %s", b);
    http_resp_free(&r);
    /* no Origin (curl, servers): no CORS headers */
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed", JSON_HDR AUTH_HDR, EMBED_ONE,
                                  strlen(EMBED_ONE), &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_no_cors(&r);
    http_resp_free(&r);
}
END_TEST

START_TEST(test_errors_have_cors)
{
    /* 401 (the page must be able to read why), 400, 415, 405, 404, 413 */
    http_resp r;
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed",
                                  JSON_HDR "Origin: " ORIGIN_A "\r\n", EMBED_ONE,
                                  strlen(EMBED_ONE), &r), 0);
    test_expect_error(&r, 401, "invalid_api_key", NULL);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);

    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed",
                                  JSON_HDR AUTH_HDR "Origin: " ORIGIN_A "\r\n", "{\"texts\":",
                                  9, &r), 0);
    test_expect_error(&r, 400, "invalid_json", NULL);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);

    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed",
                                  "Content-Type: text/plain\r\n" AUTH_HDR "Origin: " ORIGIN_A
                                  "\r\n", "x", 1, &r), 0);
    test_expect_error(&r, 415, "unsupported_media_type", NULL);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);

    ck_assert_int_eq(http_request(shared.port, "DELETE", "/v1/embed",
                                  AUTH_HDR "Origin: " ORIGIN_A "\r\n", NULL, 0, &r), 0);
    test_expect_error(&r, 405, "method_not_allowed", NULL);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);

    /* a /v1/ path that does not exist: the page can read the 404 */
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embedd",
                                  JSON_HDR AUTH_HDR "Origin: " ORIGIN_A "\r\n", EMBED_ONE,
                                  strlen(EMBED_ONE), &r), 0);
    test_expect_error(&r, 404, "not_found", NULL);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);

    /* 413 from Content-Length, before any of the body is sent */
    static const char big[] = "POST /v1/embed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              JSON_HDR AUTH_HDR "Origin: " ORIGIN_A "\r\n"
                              "Content-Length: 999999999\r\n\r\n";
    ck_assert_int_eq(http_raw(shared.port, big, sizeof big - 1, 10, &r), 0);
    test_expect_error(&r, 413, "body_too_large", NULL);
    expect_cors(&r, ORIGIN_A);
    http_resp_free(&r);
}
END_TEST

START_TEST(test_stream_has_cors)
{
    size_t png_len;
    uint8_t *png = test_make_png(40, 30, 3, &png_len);
    char *b64 = malloc(png_len * 2 + 8);
    ck_assert_ptr_nonnull(b64);
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < png_len; i += 3) {
        unsigned v = (unsigned)png[i] << 16 | (i + 1 < png_len ? (unsigned)png[i + 1] << 8 : 0) |
                     (i + 2 < png_len ? png[i + 2] : 0);
        b64[k++] = tab[v >> 18 & 63];
        b64[k++] = tab[v >> 12 & 63];
        b64[k++] = i + 1 < png_len ? tab[v >> 6 & 63] : '=';
        b64[k++] = i + 2 < png_len ? tab[v & 63] : '=';
    }
    b64[k] = '\0';
    free(png);
    char *json = NULL;
    ck_assert_int_gt(asprintf(&json,
                              "{\"stream\":true,\"max_tokens\":4,\"messages\":[{\"role\":\"user\","
                              "\"content\":[{\"type\":\"text\",\"text\":\"caption en\"},"
                              "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                              "\"data:image/png;base64,%s\"}}]}]}",
                              b64), 0);
    free(b64);
    http_resp r;
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/chat/completions",
                                  JSON_HDR AUTH_HDR "Origin: " ORIGIN_B "\r\n", json, strlen(json),
                                  &r), 0);
    free(json);
    ck_assert_int_eq(r.status, 200);
    char b[128];
    ck_assert_msg(strncmp(hdr(&r, "Content-Type", b, sizeof b), "text/event-stream", 17) == 0,
                  "%s", r.head);
    ck_assert_msg(strstr(r.body, "data: [DONE]"), "%s", r.body);
    expect_cors(&r, ORIGIN_B);
    http_resp_free(&r);
}
END_TEST

START_TEST(test_long_origin)
{
    /* an Origin longer than libmicrohttpd's header buffer: refused like any
     * oversized header, no CORS headers; the server goes on */
    size_t n = 64 << 10;
    char *req = malloc(n + 256);
    ck_assert_ptr_nonnull(req);
    int h = snprintf(req, 256, "OPTIONS /v1/embed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Access-Control-Request-Method: POST\r\nOrigin: http://");
    memset(req + h, 'a', n);
    memcpy(req + h + n, "\r\n\r\n", 4);
    http_resp r;
    http_raw(shared.port, req, (size_t)h + n + 4, 10, &r);
    free(req);
    ck_assert_msg(r.status == 431 || r.status == 0, "status %d", r.status);
    if (r.status)
        expect_no_cors(&r);
    http_resp_free(&r);
    /* a long origin that fits the buffer is simply not listed */
    char origin[2100] = "Origin: http://";
    memset(origin + 15, 'b', 2000);
    strcpy(origin + 2015, "\r\nAccess-Control-Request-Method: POST\r\n");
    ck_assert_int_eq(http_request(shared.port, "OPTIONS", "/v1/embed", origin, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 405);
    expect_no_cors(&r);
    http_resp_free(&r);
    preflight(shared.port, "/v1/embed", ORIGIN_A, "POST", &r);
    ck_assert_int_eq(r.status, 204);
    http_resp_free(&r);
}
END_TEST

/* ---- servers of their own ------------------------------------------------- */

START_TEST(test_off_by_default)
{
    test_server s;
    test_server_start(&s, DEMO, NULL);
    http_resp r;
    preflight(s.port, "/v1/embed", ORIGIN_A, "POST", &r);
    test_expect_error(&r, 405, "method_not_allowed", NULL);
    char b[64];
    ck_assert_str_eq(hdr(&r, "Allow", b, sizeof b), "POST");
    expect_no_cors(&r);
    http_resp_free(&r);
    ck_assert_int_eq(http_request(s.port, "POST", "/v1/embed", JSON_HDR "Origin: " ORIGIN_A "\r\n",
                                  EMBED_ONE, strlen(EMBED_ONE), &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_no_cors(&r);
    ck_assert_ptr_null(http_header(&r, "Vary", b, sizeof b));
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&s, 15), 0);
    unlink(s.log_path);
}
END_TEST

START_TEST(test_any_origin_from_env)
{
    /* PRISM_CORS_ORIGIN=* : every origin, answered "*" */
    setenv("PRISM_CORS_ORIGIN", "*", 1);
    test_server s;
    test_server_start(&s, DEMO, NULL);
    unsetenv("PRISM_CORS_ORIGIN");
    http_resp r;
    preflight(s.port, "/v1/score", "https://anything.example:8443", "POST", &r);
    ck_assert_int_eq(r.status, 204);
    expect_cors(&r, "*");
    http_resp_free(&r);
    ck_assert_int_eq(http_request(s.port, "POST", "/v1/embed",
                                  JSON_HDR "Origin: http://elsewhere.example\r\n", EMBED_ONE,
                                  strlen(EMBED_ONE), &r), 0);
    ck_assert_int_eq(r.status, 200);
    expect_cors(&r, "*");
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&s, 15), 0);
    unlink(s.log_path);
}
END_TEST

/* prism serve with --cors-origin VALUE: its exit status, its output in out */
static int serve_with(const char *value, char *out, size_t n)
{
    char *cmd = NULL;
    /* the value goes through the environment: no shell quoting to get wrong */
    setenv("CORS_VALUE", value, 1);
    ck_assert_int_gt(asprintf(&cmd, "%s serve --model %s --port 0 --cors-origin \"$CORS_VALUE\" "
                              "2>&1 & pid=$!; sleep 0.5; kill $pid 2>/dev/null; wait $pid",
                              PRISM_BIN, DEMO), 0);
    FILE *p = popen(cmd, "r");
    free(cmd);
    ck_assert_ptr_nonnull(p);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = '\0';
    int st = pclose(p);
    unsetenv("CORS_VALUE");
    return st;
}

START_TEST(test_origin_list_checked_at_start)
{
    static char out[1 << 16];
    /* entries that are not origins */
    static const char *const bad[] = {"http://a.example/", "http://a.example/app", "a.example",
                                      "*, http://a.example", "http://a.example,,http://b.example",
                                      "http://A.example", "http://a.example:80 x", "://a.example",
                                      "null", ","};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = serve_with(bad[i], out, sizeof out);
        ck_assert_msg(st != 0, "'%s' was accepted", bad[i]);
        ck_assert_msg(strstr(out, "--cors-origin") && strstr(out, "is not an origin"), "'%s': %s",
                      bad[i], out);
    }
    /* the list is bounded: 4096 bytes start, 4097 do not */
    char list[4200];
    size_t n = 0;
    for (int i = 0; n < 4096 - 24; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%shttp://o%d.example", i ? "," : "",
                              i);
    while (n < 4096) /* pad the last origin's host to exactly 4096 bytes */
        list[n++] = 'x';
    list[n] = '\0';
    ck_assert_uint_eq(strlen(list), 4096);
    const char *last = strrchr(list, ',') + 1;
    test_server s;
    const char *args[] = {"--cors-origin", list, NULL};
    test_server_start(&s, DEMO, args);
    http_resp r;
    preflight(s.port, "/v1/embed", last, "POST", &r);
    ck_assert_int_eq(r.status, 204);
    expect_cors(&r, last);
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&s, 15), 0);
    unlink(s.log_path);

    list[n++] = 'x';
    list[n] = '\0';
    int st = serve_with(list, out, sizeof out);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(strstr(out, "--cors-origin is 4097 bytes, over the limit of 4096"), "%s", out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_cors");
    TCase *sh = tcase_create("shared_server");
    tcase_set_timeout(sh, 120);
    tcase_add_unchecked_fixture(sh, start_shared, stop_shared);
    tcase_add_test(sh, test_preflight_allowed);
    tcase_add_test(sh, test_preflight_denied);
    tcase_add_test(sh, test_success_has_cors);
    tcase_add_test(sh, test_errors_have_cors);
    tcase_add_test(sh, test_stream_has_cors);
    tcase_add_test(sh, test_long_origin);
    suite_add_tcase(s, sh);
    TCase *own = tcase_create("own_server");
    tcase_set_timeout(own, 120);
    tcase_add_test(own, test_off_by_default);
    tcase_add_test(own, test_any_origin_from_env);
    tcase_add_test(own, test_origin_list_checked_at_start);
    suite_add_tcase(s, own);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
