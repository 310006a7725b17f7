/* server_checks.h - what the server tests (test_server.c,
 * test_server_generate.c) check on every answer, and the images they send.
 * Failures are Check assertions. */
#ifndef PRISM_SERVER_CHECKS_H
#define PRISM_SERVER_CHECKS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "test_http.h"

/* The server's own /openapi.json, parsed (the schema test_conforms checks
 * against). */
json_t *test_get_openapi(int port);

/* The body as JSON (fails the test when it is not). */
json_t *test_json_body(const http_resp *r);

/* The body matches openapi.yaml's schema for (path, method, status);
 * /metrics answers are text and only need the status described. */
void test_conforms(json_t *openapi, const char *path, const char *method, const http_resp *r);

/* An error answer: the status, error.code, error.param (NULL: null). */
void test_expect_error(const http_resp *r, int status, const char *code, const char *param);

/* A w×h RGB image, a different smooth pattern per seed, encoded as PNG or
 * as a 4:2:0 JPEG of quality 90 (malloc'd; *len its size). */
uint8_t *test_make_png(int w, int h, unsigned seed, size_t *len);
/* A w×h RGB buffer as PNG (malloc'd; *len its size). */
uint8_t *test_png_from_rgb(const uint8_t *rgb, int w, int h, size_t *len);
uint8_t *test_make_jpeg(int w, int h, unsigned seed, size_t *len);
/* A w×h 8-bit RGB PNG without pixels: signature, IHDR, an empty IDAT and
 * IEND, each chunk with its CRC - an image whose size is known from its
 * header and that cannot be decoded. */
#define TEST_PNG_HEADER_ONLY_LEN 57
void test_png_header_only(uint8_t out[TEST_PNG_HEADER_ONLY_LEN], uint32_t w, uint32_t h);
/* A field of /proc/PID/status in kB ("VmHWM": peak resident memory,
 * "VmRSS": now), or -1. */
long test_proc_status_kb(pid_t pid, const char *field);

/* The value of one series in the server's /metrics (see test_metric). */
double test_metric_at(int port, const char *series);

/* A POST of a JSON body on a thread of its own:
 * pthread_create(&th, NULL, test_post_async, &job); rc and r are set when
 * it joins. */
typedef struct test_post {
    int port;
    const char *path;
    char *body;
    http_resp r;
    int rc;
} test_post;
void *test_post_async(void *arg);

/* The string entry `key` of a safetensors file's __metadata__, parsed as
 * JSON (the golden files keep lists there); NULL when there is none. */
json_t *test_st_meta(const char *path, const char *key);

/* A streamed chat completion's answer (chunked, server-sent events): the
 * content deltas concatenated (malloc'd). Every line must be an event of
 * valid JSON; *done says whether it ended with data: [DONE], *deltas how
 * many content deltas came. The body is dechunked and cut up in place. */
char *test_sse_content(http_resp *r, int *done, int *deltas);

/* A data URL of a file (malloc'd): base64 of its bytes, image/png for a
 * .png name, else image/jpeg. */
char *test_data_url(const char *path);

/* A chunked body (Transfer-Encoding: chunked) decoded in place; its length. */
size_t test_dechunk(char *body, size_t len);

#endif
