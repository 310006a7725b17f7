/* test_server.c - `prism serve` end to end: the real binary on a loopback
 * port, a real HTTP client (test_http.c), the demo model (models/demo).
 *
 * Covers every endpoint and every error status; answers equal to
 * `prism embed` for the same files and strings; OpenAPI conformance of
 * real responses; batching (splits, 200 concurrent mixed requests, mean
 * batch size from /metrics); deadlines, disconnects, queue full and
 * SIGTERM drain with requests in flight; API key; limits; the metrics
 * exposition; structured logs; configuration from flags and environment.
 * Every server is stopped with SIGTERM and must exit 0 - under the ASan
 * build that includes LeakSanitizer finding no leak.
 */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "api_codec.h"
#include "server_checks.h"
#include "test_http.h"
#include "test_util.h"

#define DEMO PRISM_SOURCE_DIR "/models/demo"
#define DIM 32

/* ---- inputs -------------------------------------------------------------- */

/* Test image k: even k PNG, odd k JPEG, sizes vary. Written to a file too
 * (for `prism embed --image`). */
typedef struct test_image {
    uint8_t *data;
    size_t len;
    char *b64;       /* bare base64 */
    char *data_url;  /* data:image/...;base64,... */
    char path[128];
} test_image;

static void image_make(test_image *im, int k)
{
    int w = 40 + 13 * k, h = 30 + 7 * k;
    im->data = k % 2 ? test_make_jpeg(w, h, (unsigned)k, &im->len)
                      : test_make_png(w, h, (unsigned)k, &im->len);
    im->b64 = api_base64_encode(im->data, im->len, NULL);
    im->data_url = malloc(strlen(im->b64) + 64);
    sprintf(im->data_url, "data:image/%s;base64,%s", k % 2 ? "jpeg" : "png", im->b64);
    snprintf(im->path, sizeof im->path, "/tmp/prism-test-img-%d-%d.%s", (int)getpid(), k,
             k % 2 ? "jpg" : "png");
    FILE *f = fopen(im->path, "wb");
    fwrite(im->data, 1, im->len, f);
    fclose(f);
}

static void image_free(test_image *im)
{
    unlink(im->path);
    free(im->data);
    free(im->b64);
    free(im->data_url);
}

#define N_IMAGES 6
static const char *const texts[] = {"a photo of a cat", "A DOG, running!", "two birds",
                                    "", "the quick brown fox jumps over the lazy dog", "héllo wörld"};
#define N_TEXTS 6

static test_image images[N_IMAGES];
static test_server srv; /* the shared default server */
static json_t *openapi;

/* ---- helpers ------------------------------------------------------------- */

static char *embed_body(const int *img, int ni, const int *txt, int nt, const char *extra)
{
    size_t cap = 1 << 20;
    char *b = malloc(cap);
    size_t n = (size_t)sprintf(b, "{\"images\":[");
    for (int i = 0; i < ni; i++) {
        size_t need = strlen(images[img[i]].data_url) + 8;
        if (n + need + 4096 > cap)
            b = realloc(b, cap = (n + need) * 2 + 4096);
        n += (size_t)sprintf(b + n, "%s\"%s\"", i ? "," : "", images[img[i]].data_url);
    }
    n += (size_t)sprintf(b + n, "],\"texts\":[");
    for (int i = 0; i < nt; i++)
        n += (size_t)sprintf(b + n, "%s\"%s\"", i ? "," : "", texts[txt[i]]);
    sprintf(b + n, "]%s%s}", extra ? "," : "", extra ? extra : "");
    return b;
}

/* rows of an array of arrays into out (rows*cols). */
static void get_matrix(json_t *m, float *out, int rows, int cols)
{
    ck_assert_int_eq((int)json_array_size(m), rows);
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array_get(m, (size_t)r);
        ck_assert_int_eq((int)json_array_size(row), cols);
        for (int c = 0; c < cols; c++)
            out[r * cols + c] = (float)json_number_value(json_array_get(row, (size_t)c));
    }
}

/* Embeddings from the CLI: `prism embed --image ... --text ...`. */
static void cli_embed(const int *img, int ni, const int *txt, int nt, float *img_out,
                      float *txt_out)
{
    char cmd[16384];
    size_t n = (size_t)snprintf(cmd, sizeof cmd, "%s embed --model %s --threads 2", PRISM_BIN, DEMO);
    for (int i = 0; i < ni; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, " --image %s", images[img[i]].path);
    for (int i = 0; i < nt; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, " --text '%s'", texts[txt[i]]);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    json_error_t e;
    json_t *v = json_loadf(p, 0, &e);
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(v != NULL, "prism embed output: %s", e.text);
    get_matrix(json_object_get(v, "image_embeddings"), img_out, ni, DIM);
    get_matrix(json_object_get(v, "text_embeddings"), txt_out, nt, DIM);
    json_decref(v);
}

/* Batches change sgemm's blocking and so the last bits of a float32 sum;
 * 1e-5 is far above that (~1e-7 relative on unit vectors) and far below
 * any real difference between two inputs' embeddings. */
#define EMB_TOL 1e-5

static void assert_close(const float *a, const float *b, int n, double tol, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= tol, "%s[%d]: %.9g vs %.9g", what, i, a[i], b[i]);
}

static char *get_metrics(int port)
{
    http_resp r;
    ck_assert_int_eq(http_get(port, "/metrics", &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *body = strdup(r.body);
    http_resp_free(&r);
    return body;
}

static void start_default(void)
{
    for (int k = 0; k < N_IMAGES; k++)
        image_make(&images[k], k);
    static const char *const args[] = {"--max-delay-ms", "5", "--max-items", "16",
                                       "--label-cache", "8", NULL};
    test_server_start(&srv, DEMO, args);
    openapi = test_get_openapi(srv.port);
}

static void stop_default(void)
{
    ck_assert_int_eq(test_server_stop(&srv, SIGTERM), 0);
    json_decref(openapi);
    for (int k = 0; k < N_IMAGES; k++)
        image_free(&images[k]);
}

/* ---- endpoints ----------------------------------------------------------- */

START_TEST(test_get_endpoints)
{
    http_resp r;
    ck_assert_int_eq(http_get(srv.port, "/healthz", &r), 0);
    ck_assert_int_eq(r.status, 200);
    test_conforms(openapi, "/healthz", "get", &r);
    http_resp_free(&r);
    ck_assert_int_eq(http_get(srv.port, "/readyz", &r), 0);
    ck_assert_int_eq(r.status, 200);
    test_conforms(openapi, "/readyz", "get", &r);
    http_resp_free(&r);
    ck_assert_int_eq(http_get(srv.port, "/v1/models", &r), 0);
    ck_assert_int_eq(r.status, 200);
    test_conforms(openapi, "/v1/models", "get", &r);
    json_t *v = test_json_body(&r);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(v, "data"), 0), "id")), "demo");
    /* the version the build was made as (CMake's PROJECT_VERSION), also the
     * version label of prism_build_info */
    ck_assert_str_eq(json_string_value(json_object_get(v, "prism_version")), PRISM_VERSION);
    json_decref(v);
    /* and the API description's info.version: api/openapi.yaml is kept by hand */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(openapi, "info"),
                                                       "version")), PRISM_VERSION);
    http_resp_free(&r);
    ck_assert_int_eq(http_get(srv.port, "/metrics", &r), 0);
    ck_assert_msg(strstr(r.body, "\nprism_build_info{version=\"" PRISM_VERSION "\",backend=\""),
                  "%s", r.body);
    http_resp_free(&r);
    ck_assert_int_eq(http_get(srv.port, "/metrics", &r), 0);
    ck_assert_int_eq(r.status, 200);
    char h[128];
    ck_assert(strstr(http_header(&r, "Content-Type", h, sizeof h), "text/plain"));
    http_resp_free(&r);
    ck_assert_int_eq(http_get(srv.port, "/openapi.json", &r), 0);
    ck_assert_int_eq(r.status, 200);
    v = test_json_body(&r);
    ck_assert_str_eq(json_string_value(json_object_get(v, "openapi")), "3.0.3");
    json_decref(v);
    http_resp_free(&r);
    /* HEAD: headers only */
    ck_assert_int_eq(http_request(srv.port, "HEAD", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq((int)r.body_len, 0);
    http_resp_free(&r);
    /* 404, 405 with Allow */
    ck_assert_int_eq(http_get(srv.port, "/v2/nothing", &r), 0);
    test_expect_error(&r, 404, "not_found", NULL);
    http_resp_free(&r);
    ck_assert_int_eq(http_get(srv.port, "/v1/embed", &r), 0);
    test_expect_error(&r, 405, "method_not_allowed", NULL);
    ck_assert_str_eq(http_header(&r, "Allow", h, sizeof h), "POST");
    http_resp_free(&r);
    ck_assert_int_eq(http_request(srv.port, "DELETE", "/metrics", NULL, NULL, 0, &r), 0);
    test_expect_error(&r, 405, "method_not_allowed", NULL);
    ck_assert_str_eq(http_header(&r, "Allow", h, sizeof h), "GET, HEAD");
    http_resp_free(&r);
    /* the client's request id comes back; an invalid one is replaced */
    ck_assert_int_eq(http_request(srv.port, "GET", "/healthz", "X-Request-Id: abc-123.x\r\n", NULL, 0, &r), 0);
    ck_assert_str_eq(http_header(&r, "X-Request-Id", h, sizeof h), "abc-123.x");
    http_resp_free(&r);
    ck_assert_int_eq(http_request(srv.port, "GET", "/healthz", "X-Request-Id: a b\"c\r\n", NULL, 0, &r), 0);
    ck_assert(http_header(&r, "X-Request-Id", h, sizeof h) && strcmp(h, "a b\"c") != 0);
    http_resp_free(&r);
}
END_TEST

START_TEST(test_embed_equals_cli)
{
    const int img[] = {0, 1, 2, 3}, txt[] = {0, 1, 2, 3, 4, 5};
    char *body = embed_body(img, 4, txt, 6, NULL);
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", body, &r), 0);
    free(body);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    test_conforms(openapi, "/v1/embed", "post", &r);
    char h[64];
    ck_assert_ptr_nonnull(http_header(&r, "X-Request-Id", h, sizeof h));
    ck_assert_ptr_nonnull(http_header(&r, "X-Queue-Time-Ms", h, sizeof h));
    ck_assert_ptr_nonnull(http_header(&r, "X-Preprocess-Time-Ms", h, sizeof h));
    ck_assert(http_header(&r, "X-Inference-Time-Ms", h, sizeof h) && atof(h) > 0);
    json_t *v = test_json_body(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "dim")), DIM);
    ck_assert_str_eq(json_string_value(json_object_get(v, "model")), "demo");
    json_t *usage = json_object_get(v, "usage");
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "images")), 4);
    ck_assert_int_gt(json_integer_value(json_object_get(usage, "text_tokens")), 6);
    float si[4 * DIM], st[6 * DIM], ci[4 * DIM], ct[6 * DIM];
    get_matrix(json_object_get(v, "image_embeddings"), si, 4, DIM);
    get_matrix(json_object_get(v, "text_embeddings"), st, 6, DIM);
    json_decref(v);
    http_resp_free(&r);
    cli_embed(img, 4, txt, 6, ci, ct);
    assert_close(si, ci, 4 * DIM, EMB_TOL, "image_embeddings");
    assert_close(st, ct, 6 * DIM, EMB_TOL, "text_embeddings");
    /* distinct inputs give distinct embeddings (the comparison means something) */
    ck_assert(fabs(si[0] - si[DIM]) + fabs(si[1] - si[DIM + 1]) > 1e-4);

    /* normalize=false: the pooled outputs; dimensions: prefix, re-normalised */
    body = embed_body(img, 1, txt, 1, "\"normalize\":false");
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", body, &r), 0);
    free(body);
    ck_assert_int_eq(r.status, 200);
    v = test_json_body(&r);
    float raw[DIM];
    get_matrix(json_object_get(v, "image_embeddings"), raw, 1, DIM);
    double norm = 0;
    for (int i = 0; i < DIM; i++)
        norm += raw[i] * raw[i];
    ck_assert(fabs(sqrt(norm) - 1) > 1e-3);
    for (int i = 0; i < DIM; i++) /* 1e-5: two roundings of the same division */
        ck_assert(fabs(raw[i] / sqrt(norm) - si[i]) < 1e-5);
    json_decref(v);
    http_resp_free(&r);
    body = embed_body(img, 1, txt, 1, "\"dimensions\":8");
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", body, &r), 0);
    free(body);
    ck_assert_int_eq(r.status, 200);
    v = test_json_body(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "dim")), 8);
    float cut[8];
    get_matrix(json_object_get(v, "image_embeddings"), cut, 1, 8);
    double n8 = 0;
    for (int i = 0; i < 8; i++)
        n8 += (double)si[i] * si[i];
    for (int i = 0; i < 8; i++)
        ck_assert(fabs(cut[i] - si[i] / sqrt(n8)) < 1e-5);
    json_decref(v);
    http_resp_free(&r);
}
END_TEST

static void score_of(const int *img, int ni, const int *txt, int nt, float *logits)
{
    char *body = embed_body(img, ni, txt, nt, NULL);
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/score", body, &r), 0);
    free(body);
    ck_assert_msg(r.status == 200, "%s", r.body);
    test_conforms(openapi, "/v1/score", "post", &r);
    json_t *v = test_json_body(&r);
    float probs[64];
    get_matrix(json_object_get(v, "logits"), logits, ni, nt);
    get_matrix(json_object_get(v, "probs"), probs, ni, nt);
    for (int i = 0; i < ni * nt; i++)
        ck_assert(fabs(probs[i] - 1 / (1 + exp(-logits[i]))) < 1e-6);
    json_decref(v);
    http_resp_free(&r);
}

START_TEST(test_score_and_classify)
{
    const int img[] = {2, 3}, txt[] = {0, 1, 2};
    float logits[6];
    score_of(img, 2, txt, 3, logits);
    /* logits = exp(scale)·cos + bias: the ranking of images per text follows
     * the embeddings' dot products */
    float ci[2 * DIM], ct[3 * DIM];
    cli_embed(img, 2, txt, 3, ci, ct);
    double dots[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            dots[i * 3 + j] = 0;
            for (int c = 0; c < DIM; c++)
                dots[i * 3 + j] += ci[i * DIM + c] * ct[j * DIM + c];
        }
    /* affine in the dot product: equal slopes between any two pairs */
    double s1 = (logits[1] - logits[0]) / (dots[1] - dots[0]);
    double s2 = (logits[5] - logits[3]) / (dots[5] - dots[3]);
    ck_assert_msg(fabs(s1 - s2) < 1e-3 * fabs(s1) + 1e-3, "logits not affine in cos: %g %g", s1, s2);

    /* classify: labels sorted by score = sigmoid(logit of the prompt) */
    char *body;
    size_t n = strlen(images[2].data_url) + 256;
    body = malloc(n);
    snprintf(body, n, "{\"image\":\"%s\",\"labels\":[\"cat\",\"dog\",\"bird\"],\"template\":\"x {} y\"}",
             images[2].data_url);
    http_resp r;
    char *m0 = get_metrics(srv.port);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/classify", body, &r), 0);
    ck_assert_msg(r.status == 200, "%s", r.body);
    test_conforms(openapi, "/v1/classify", "post", &r);
    json_t *v = test_json_body(&r);
    json_t *labels = json_object_get(v, "labels");
    ck_assert_int_eq((int)json_array_size(labels), 3);
    double prev = 2;
    for (size_t i = 0; i < 3; i++) {
        double sc = json_number_value(json_object_get(json_array_get(labels, i), "score"));
        ck_assert(sc <= prev);
        prev = sc;
    }
    char *first = strdup(r.body);
    json_decref(v);
    http_resp_free(&r);
    /* again: the same answer, now from the label cache */
    ck_assert_int_eq(http_post_json(srv.port, "/v1/classify", body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first);
    http_resp_free(&r);
    char *m1 = get_metrics(srv.port);
    ck_assert_int_eq((int)(test_metric(m1, "prism_label_cache_hits_total") -
                           test_metric(m0, "prism_label_cache_hits_total")), 3);
    ck_assert_int_eq((int)(test_metric(m1, "prism_label_cache_misses_total") -
                           test_metric(m0, "prism_label_cache_misses_total")), 3);
    free(m0);
    free(m1);
    free(body);
    /* multipart: the same answer from a file part and repeated fields */
    const char *bd = "XyZbOuNdArY";
    size_t cap = images[2].len + 2048;
    char *mp = malloc(cap);
    size_t k = (size_t)snprintf(mp, cap,
                                "--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                                "Content-Type: image/png\r\n\r\n", bd);
    memcpy(mp + k, images[2].data, images[2].len);
    k += images[2].len;
    const char *fields[][2] = {{"labels", "cat"}, {"labels", "dog"}, {"labels", "bird"}, {"template", "x {} y"}};
    for (int i = 0; i < 4; i++)
        k += (size_t)snprintf(mp + k, cap - k,
                              "\r\n--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s", bd,
                              fields[i][0], fields[i][1]);
    k += (size_t)snprintf(mp + k, cap - k, "\r\n--%s--\r\n", bd);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Content-Type: multipart/form-data; boundary=%s\r\n", bd);
    ck_assert_int_eq(http_request(srv.port, "POST", "/v1/classify", hdr, mp, k, &r), 0);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert_str_eq(r.body, first);
    http_resp_free(&r);
    free(mp);
    free(first);
}
END_TEST

static void decode_b64_floats(const char *s, float *out, int n)
{
    bool oom;
    size_t len;
    uint8_t *d = api_base64_decode(s, strlen(s), &len, &oom);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq((int)len, n * 4);
    memcpy(out, d, len);
    free(d);
}

START_TEST(test_openai_embeddings)
{
    size_t n = strlen(images[1].data_url) + 512;
    char *body = malloc(n);
    snprintf(body, n, "{\"model\":\"demo\",\"input\":[\"%s\",\"%s\",\"%s\"]}", texts[0],
             images[1].data_url, texts[4]);
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embeddings", body, &r), 0);
    ck_assert_msg(r.status == 200, "%s", r.body);
    test_conforms(openapi, "/v1/embeddings", "post", &r);
    json_t *v = test_json_body(&r);
    json_t *data = json_object_get(v, "data");
    ck_assert_int_eq((int)json_array_size(data), 3);
    float e[3][DIM];
    for (int i = 0; i < 3; i++) {
        json_t *d = json_array_get(data, (size_t)i);
        ck_assert_int_eq(json_integer_value(json_object_get(d, "index")), i);
        json_t *emb = json_object_get(d, "embedding");
        for (int c = 0; c < DIM; c++)
            e[i][c] = (float)json_number_value(json_array_get(emb, (size_t)c));
    }
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(v, "usage"), "prompt_tokens")), 2);
    json_decref(v);
    http_resp_free(&r);
    const int img[] = {1}, txt[] = {0, 4};
    float ci[DIM], ct[2 * DIM];
    cli_embed(img, 1, txt, 2, ci, ct);
    assert_close(e[0], ct, DIM, EMB_TOL, "input[0]");
    assert_close(e[1], ci, DIM, EMB_TOL, "input[1]");
    assert_close(e[2], ct + DIM, DIM, EMB_TOL, "input[2]");
    /* base64: the same float32 values as the JSON numbers, bit for bit (both
     * of one text alone: BLAS may round a batch of two differently from a
     * batch of one, within the tolerance above) */
    float f[DIM];
    snprintf(body, n, "{\"input\":\"%s\"}", texts[0]);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embeddings", body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    v = test_json_body(&r);
    json_t *femb = json_object_get(json_array_get(json_object_get(v, "data"), 0), "embedding");
    for (int c = 0; c < DIM; c++)
        f[c] = (float)json_number_value(json_array_get(femb, (size_t)c));
    json_decref(v);
    http_resp_free(&r);
    snprintf(body, n, "{\"input\":\"%s\",\"encoding_format\":\"base64\"}", texts[0]);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embeddings", body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    test_conforms(openapi, "/v1/embeddings", "post", &r);
    v = test_json_body(&r);
    float b[DIM];
    decode_b64_floats(json_string_value(json_object_get(json_array_get(json_object_get(v, "data"), 0), "embedding")), b, DIM);
    ck_assert(memcmp(b, f, sizeof b) == 0);
    assert_close(b, e[0], DIM, EMB_TOL, "base64 input[0]");
    json_decref(v);
    http_resp_free(&r);
    /* dimensions: unit length again */
    snprintf(body, n, "{\"input\":[\"%s\"],\"dimensions\":5}", texts[1]);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embeddings", body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    v = test_json_body(&r);
    json_t *emb = json_object_get(json_array_get(json_object_get(v, "data"), 0), "embedding");
    ck_assert_int_eq((int)json_array_size(emb), 5);
    double nn = 0;
    for (int c = 0; c < 5; c++)
        nn += pow(json_number_value(json_array_get(emb, (size_t)c)), 2);
    ck_assert(fabs(nn - 1) < 1e-5);
    json_decref(v);
    http_resp_free(&r);
    /* a model that is not served */
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embeddings", "{\"model\":\"gpt\",\"input\":\"x\"}", &r), 0);
    test_expect_error(&r, 404, "model_not_found", "model");
    test_conforms(openapi, "/v1/embeddings", "post", &r);
    http_resp_free(&r);
    free(body);
}
END_TEST

START_TEST(test_bad_requests)
{
    static const struct {
        const char *path, *body;
        int status;
        const char *code, *param;
    } cases[] = {
        {"/v1/embed", "{\"texts\":[\"a\"", 400, "invalid_json", NULL},
        {"/v1/embed", "[1,2]", 400, "invalid_json", NULL},
        {"/v1/embed", "{}", 400, "missing_field", "images"},
        {"/v1/embed", "{\"texts\":\"a cat\"}", 400, "invalid_type", "texts"},
        {"/v1/embed", "{\"texts\":[\"a\",7]}", 400, "invalid_type", "texts[1]"},
        {"/v1/embed", "{\"texts\":[\"a\"],\"normalize\":1}", 400, "invalid_type", "normalize"},
        {"/v1/embed", "{\"texts\":[\"a\"],\"dimensions\":0}", 400, "invalid_value", "dimensions"},
        {"/v1/embed", "{\"texts\":[\"a\"],\"dimensions\":33}", 400, "invalid_value", "dimensions"},
        {"/v1/embed", "{\"images\":[\"https://example.com/cat.jpg\"]}", 400, "unsupported_image_source", "images[0]"},
        {"/v1/embed", "{\"images\":[\"file:///etc/passwd\"]}", 400, "unsupported_image_source", "images[0]"},
        {"/v1/embed", "{\"images\":[\"not base64!\"]}", 400, "invalid_base64", "images[0]"},
        {"/v1/embed", "{\"images\":[\"data:image/png,abc\"]}", 400, "invalid_data_url", "images[0]"},
        {"/v1/embed", "{\"images\":[\"R0lGODlhAQABAAAAACw=\"]}", 415, "unsupported_image_format", "images[0]"},
        {"/v1/embed", "{\"images\":[\"/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAP//\"]}", 400, "invalid_image", "images[0]"},
        {"/v1/embed", "{\"texts\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}", 413, "too_many_items", "texts"},
        {"/v1/score", "{\"texts\":[\"a\"]}", 400, "missing_field", "images"},
        {"/v1/classify", "{\"labels\":[\"a\"]}", 400, "missing_field", "image"},
        {"/v1/classify", "{\"image\":\"iVBORw0KGgo=\",\"labels\":[]}", 400, "missing_field", "labels"},
        {"/v1/classify", "{\"image\":\"iVBORw0KGgo=\",\"labels\":[\"a\"],\"template\":\"no slot\"}", 400, "invalid_value", "template"},
        {"/v1/embeddings", "{\"input\":[[1,2,3]]}", 400, "invalid_type", "input[0]"},
        {"/v1/embeddings", "{\"input\":\"a\",\"encoding_format\":\"int8\"}", 400, "invalid_value", "encoding_format"},
        {"/v1/embeddings", "{}", 400, "missing_field", "input"},
        {"/v1/caption", "{\"image\":\"x\"}", 422, "model_not_loaded", NULL},
        {"/v1/vqa", "{\"image\":\"x\",\"question\":\"what?\"}", 422, "model_not_loaded", NULL},
        {"/v1/chat/completions", "{\"messages\":[]}", 422, "model_not_loaded", NULL},
        {"/v1/caption", "{nope", 400, "invalid_json", NULL},
        {"/v1/embed", "", 400, "invalid_json", NULL},
        {"/v1/embeddings", "", 400, "invalid_json", NULL},
        {"/v1/caption", "", 400, "invalid_json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r;
        ck_assert_int_eq(http_post_json(srv.port, cases[i].path, cases[i].body, &r), 0);
        test_expect_error(&r, cases[i].status, cases[i].code, cases[i].param);
        test_conforms(openapi, cases[i].path, "post", &r);
        http_resp_free(&r);
    }
    /* messages a person can act on: an empty body is called empty, a
     * malformed one located; an image format fault says what is supported
     * once */
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", "", &r), 0);
    ck_assert_msg(strstr(r.body, "the request body is empty"), "%s", r.body);
    http_resp_free(&r);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", "{\"texts\":\n[\"a\" \"b\"]}", &r), 0);
    ck_assert_msg(strstr(r.body, "invalid JSON at line 2, column "), "%s", r.body);
    ck_assert_msg(!strstr(r.body, "-1"), "%s", r.body);
    http_resp_free(&r);
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", "{\"images\":[\"R0lGODlhAQABAAAAACw=\"]}",
                                    &r), 0);
    test_expect_error(&r, 415, "unsupported_image_format", "images[0]");
    const char *said = strstr(r.body, "JPEG and PNG are supported");
    ck_assert_msg(said && !strstr(said + 1, "JPEG and PNG are supported"), "%s", r.body);
    http_resp_free(&r);
    /* a generation form on a SigLIP server: 422, as its JSON body is */
    static const char form[] = "--b\r\nContent-Disposition: form-data; name=\"image\"; "
                               "filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n"
                               "--b--\r\n";
    const char *forms[] = {"/v1/caption", "/v1/vqa"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(http_request(srv.port, "POST", forms[i],
                                      "Content-Type: multipart/form-data; boundary=b\r\n", form,
                                      sizeof form - 1, &r), 0);
        test_expect_error(&r, 422, "model_not_loaded", NULL);
        test_conforms(openapi, forms[i], "post", &r);
        ck_assert_msg(strstr(r.body, forms[i]) && strstr(r.body, "'demo'"), "%s", r.body);
        http_resp_free(&r);
    }
    /* content types: 415 */
    ck_assert_int_eq(http_request(srv.port, "POST", "/v1/embed", "Content-Type: text/plain\r\n", "{}", 2, &r), 0);
    test_expect_error(&r, 415, "unsupported_media_type", NULL);
    http_resp_free(&r);
    ck_assert_int_eq(http_request(srv.port, "POST", "/v1/embeddings",
                                  "Content-Type: multipart/form-data; boundary=x\r\n", "--x--", 5, &r), 0);
    test_expect_error(&r, 415, "unsupported_media_type", NULL);
    http_resp_free(&r);
    ck_assert_int_eq(http_request(srv.port, "POST", "/v1/classify",
                                  "Content-Type: multipart/form-data\r\n", "--x--", 5, &r), 0);
    test_expect_error(&r, 400, "invalid_multipart", NULL);
    http_resp_free(&r);
    /* the server is still fine */
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", "{\"texts\":[\"still alive\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
}
END_TEST

/* ---- batching ------------------------------------------------------------ */

START_TEST(test_split_batches_in_order)
{
    test_server s;
    static const char *const args[] = {"--max-batch-text", "3", "--max-batch-image", "2",
                                       "--max-delay-ms", "20", NULL};
    test_server_start(&s, DEMO, args);
    const int img[] = {0, 1, 2, 3, 4}, txt[] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3};
    char *body = embed_body(img, 5, txt, 10, NULL);
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", body, &r), 0);
    free(body);
    ck_assert_msg(r.status == 200, "%s", r.body);
    json_t *v = test_json_body(&r);
    float si[5 * DIM], st[10 * DIM], ci[5 * DIM], ct[10 * DIM];
    get_matrix(json_object_get(v, "image_embeddings"), si, 5, DIM);
    get_matrix(json_object_get(v, "text_embeddings"), st, 10, DIM);
    json_decref(v);
    http_resp_free(&r);
    cli_embed(img, 5, txt, 10, ci, ct);
    assert_close(si, ci, 5 * DIM, EMB_TOL, "images (split into batches of 2)");
    assert_close(st, ct, 10 * DIM, EMB_TOL, "texts (split into batches of 3)");
    char *m = get_metrics(s.port);
    /* 10 texts in batches of at most 3: at least 4 batches, none above 4 */
    double nt = test_metric(m, "prism_batch_size_count{task=\"text-embed\"}");
    ck_assert_msg(nt >= 4, "%g text batches", nt);
    ck_assert(test_metric(m, "prism_batch_size_bucket{task=\"text-embed\",le=\"4\"}") == nt);
    ck_assert(test_metric(m, "prism_batch_size_sum{task=\"text-embed\"}") == 10);
    double ni = test_metric(m, "prism_batch_size_count{task=\"image-embed\"}");
    ck_assert(ni >= 3);
    ck_assert(test_metric(m, "prism_batch_size_bucket{task=\"image-embed\",le=\"2\"}") == ni);
    free(m);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

typedef struct worker_arg {
    int port, k;
    const float *want; /* DIM floats */
    int status;
    bool equal;
} worker_arg;

static void *one_request(void *p)
{
    worker_arg *w = p;
    char *body;
    bool is_image = w->k % 2;
    int idx = (w->k / 2) % (is_image ? N_IMAGES : N_TEXTS);
    body = is_image ? embed_body(&idx, 1, NULL, 0, NULL) : embed_body(NULL, 0, &idx, 1, NULL);
    http_resp r;
    w->status = http_post_json(w->port, "/v1/embed", body, &r) == 0 ? r.status : -1;
    free(body);
    w->equal = false;
    if (w->status == 200) {
        json_error_t e;
        json_t *v = json_loadb(r.body, r.body_len, 0, &e);
        json_t *m = json_array_get(json_object_get(v, is_image ? "image_embeddings" : "text_embeddings"), 0);
        w->equal = json_array_size(m) == DIM;
        for (int c = 0; w->equal && c < DIM; c++)
            w->equal = fabs(json_number_value(json_array_get(m, (size_t)c)) - w->want[c]) <= EMB_TOL;
        json_decref(v);
    }
    http_resp_free(&r);
    return NULL;
}

START_TEST(test_200_concurrent_mixed)
{
    test_server s;
    static const char *const args[] = {"--max-delay-ms", "10", "--prep-threads", "2", NULL};
    test_server_start(&s, DEMO, args);
    const int all_img[] = {0, 1, 2, 3, 4, 5}, all_txt[] = {0, 1, 2, 3, 4, 5};
    float ci[N_IMAGES * DIM], ct[N_TEXTS * DIM];
    cli_embed(all_img, N_IMAGES, all_txt, N_TEXTS, ci, ct);
    enum { N = 200 };
    static worker_arg w[N];
    pthread_t th[N];
    for (int k = 0; k < N; k++) {
        bool is_image = k % 2;
        int idx = (k / 2) % (is_image ? N_IMAGES : N_TEXTS);
        w[k] = (worker_arg){.port = s.port, .k = k, .want = (is_image ? ci : ct) + idx * DIM};
        ck_assert_int_eq(pthread_create(&th[k], NULL, one_request, &w[k]), 0);
    }
    for (int k = 0; k < N; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < N; k++) {
        ck_assert_msg(w[k].status == 200, "request %d: status %d", k, w[k].status);
        ck_assert_msg(w[k].equal, "request %d: wrong embedding", k);
    }
    char *m = get_metrics(s.port);
    for (int t = 0; t < 2; t++) {
        const char *task = t ? "text-embed" : "image-embed";
        char q[128];
        snprintf(q, sizeof q, "prism_batch_size_sum{task=\"%s\"}", task);
        double sum = test_metric(m, q);
        snprintf(q, sizeof q, "prism_batch_size_count{task=\"%s\"}", task);
        double count = test_metric(m, q);
        ck_assert_msg(sum == N / 2, "%s: %g items", task, sum);
        ck_assert_msg(sum / count > 1, "%s: mean batch size %g", task, sum / count);
    }
    ck_assert(test_metric(m, "prism_http_requests_total{endpoint=\"/v1/embed\",status=\"200\"}") == N);
    ck_assert(test_metric(m, "prism_images_decoded_total") == N / 2);
    ck_assert(test_metric(m, "prism_items_in_flight") == 0);
    free(m);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* ---- deadlines, disconnects, drain, overload ---------------------------- */

typedef struct text_req {
    int port;
    const char *body;
    http_resp r;
} text_req;

static void *post_text(void *p)
{
    text_req *t = p;
    if (http_post_json(t->port, "/v1/embed", t->body, &t->r) != 0)
        t->r.status = -1;
    return NULL;
}

START_TEST(test_deadline)
{
    test_server s;
    /* each batch takes >= 700 ms; requests may take 300 ms */
    static const char *const args[] = {"--request-timeout", "0.3", "--test-batch-sleep-ms", "700",
                                       "--max-batch-text", "1", "--max-delay-ms", "0", NULL};
    test_server_start(&s, DEMO, args);
    text_req t[3] = {{.port = s.port, .body = "{\"texts\":[\"one\"]}"},
                     {.port = s.port, .body = "{\"texts\":[\"two\"]}"},
                     {.port = s.port, .body = "{\"texts\":[\"three\"]}"}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        pthread_create(&th[i], NULL, post_text, &t[i]);
        usleep(30000);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        test_expect_error(&t[i].r, 504, "deadline_exceeded", NULL);
        test_conforms(openapi, "/v1/embed", "post", &t[i].r);
        ck_assert_msg(t[i].r.seconds < 0.65, "504 after %g s", t[i].r.seconds);
        http_resp_free(&t[i].r);
    }
    /* the first item was already running; the two queued ones were dropped:
     * after every batch could have finished, only one ran */
    usleep(1600000);
    char *m = get_metrics(s.port);
    ck_assert_msg(test_metric(m, "prism_batch_size_count{task=\"text-embed\"}") == 1,
                  "queued items of timed-out requests ran");
    ck_assert(test_metric(m, "prism_queue_depth{task=\"text-embed\"}") == 0);
    ck_assert(test_metric(m, "prism_http_requests_total{endpoint=\"/v1/embed\",status=\"504\"}") == 3);
    free(m);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

START_TEST(test_disconnect_cancels)
{
    test_server s;
    static const char *const args[] = {"--test-batch-sleep-ms", "400", "--max-batch-text", "1",
                                       "--max-delay-ms", "0", NULL};
    test_server_start(&s, DEMO, args);
    text_req a = {.port = s.port, .body = "{\"texts\":[\"kept\"]}"};
    pthread_t th;
    pthread_create(&th, NULL, post_text, &a);
    usleep(100000); /* A is running */
    ck_assert_int_eq(http_send_and_close(s.port, "/v1/embed", "{\"texts\":[\"gone 1\"]}"), 0);
    ck_assert_int_eq(http_send_and_close(s.port, "/v1/embed", "{\"texts\":[\"gone 2\"]}"), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.r.status, 200);
    http_resp_free(&a.r);
    usleep(1000000); /* time for two more batches, had they been kept */
    char *m = get_metrics(s.port);
    ck_assert_msg(test_metric(m, "prism_http_requests_total{endpoint=\"/v1/embed\",status=\"499\"}") == 2,
                  "%s", m);
    ck_assert_msg(test_metric(m, "prism_batch_size_count{task=\"text-embed\"}") == 1,
                  "work of clients that left was not dropped");
    ck_assert(test_metric(m, "prism_items_in_flight") == 0);
    free(m);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

START_TEST(test_sigterm_drains)
{
    test_server s;
    static const char *const args[] = {"--test-batch-sleep-ms", "300", "--max-batch-text", "2",
                                       "--max-delay-ms", "0", NULL};
    test_server_start(&s, DEMO, args);
    enum { N = 6 };
    text_req t[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        t[i] = (text_req){.port = s.port, .body = i % 2 ? "{\"texts\":[\"x\",\"y\"]}" : "{\"texts\":[\"z\"]}"};
        pthread_create(&th[i], NULL, post_text, &t[i]);
    }
    usleep(150000);
    kill(s.pid, SIGTERM);
    usleep(100000);
    http_resp r;
    ck_assert_int_eq(http_get(s.port, "/readyz", &r), 0);
    test_expect_error(&r, 503, "draining", NULL);
    test_conforms(openapi, "/readyz", "get", &r);
    http_resp_free(&r);
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"late\"]}", &r), 0);
    test_expect_error(&r, 503, "draining", NULL);
    char h[32];
    ck_assert_ptr_nonnull(http_header(&r, "Retry-After", h, sizeof h));
    http_resp_free(&r);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(t[i].r.status == 200, "request %d: %d %s", i, t[i].r.status, t[i].r.body);
        http_resp_free(&t[i].r);
    }
    /* it exits by itself, 0, once everything is answered (no second signal,
     * which would cut the drain short) */
    ck_assert_int_eq(test_server_stop(&s, 0), 0);
}
END_TEST

START_TEST(test_queue_full)
{
    test_server s;
    static const char *const args[] = {"--max-queue", "2", "--test-batch-sleep-ms", "500",
                                       "--max-batch-text", "1", "--max-delay-ms", "0", NULL};
    test_server_start(&s, DEMO, args);
    text_req a = {.port = s.port, .body = "{\"texts\":[\"runs\"]}"};
    text_req b = {.port = s.port, .body = "{\"texts\":[\"q1\",\"q2\"]}"};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, post_text, &a);
    usleep(150000); /* a's item is in the engine: the queue is empty */
    pthread_create(&tb, NULL, post_text, &b);
    usleep(150000); /* b's two items fill the queue */
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"one too many\"]}", &r), 0);
    test_expect_error(&r, 503, "queue_full", NULL);
    test_conforms(openapi, "/v1/embed", "post", &r);
    char h[32];
    ck_assert_ptr_nonnull(http_header(&r, "Retry-After", h, sizeof h));
    http_resp_free(&r);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(a.r.status, 200);
    ck_assert_int_eq(b.r.status, 200);
    http_resp_free(&a.r);
    http_resp_free(&b.r);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* A device failure in the middle of a batch (injected with --test-fault):
 * out of memory answers 503 out_of_memory with Retry-After, any other
 * failure 500 inference_failed; either way the server goes on and the next
 * request gets the same embedding as a server that never failed. */
START_TEST(test_device_fault)
{
    static const char *const body = "{\"texts\":[\"a photo of a cat\"]}";
    http_resp ref;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", body, &ref), 0);
    ck_assert_int_eq(ref.status, 200);
    float want[DIM], got[DIM];
    json_t *v = test_json_body(&ref);
    get_matrix(json_object_get(v, "text_embeddings"), want, 1, DIM);
    json_decref(v);
    http_resp_free(&ref);

    static const struct {
        const char *spec;
        int status;
        const char *code;
    } cases[] = {{"matmul:1", 503, "out_of_memory"},
                 {"attention:2:nomem", 503, "out_of_memory"},
                 {"layernorm:1:fail", 500, "inference_failed"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        test_server s;
        const char *args[] = {"--test-fault", cases[c].spec, "--max-delay-ms", "0", NULL};
        test_server_start(&s, DEMO, args);
        http_resp r;
        ck_assert_int_eq(http_post_json(s.port, "/v1/embed", body, &r), 0);
        test_expect_error(&r, cases[c].status, cases[c].code, NULL);
        test_conforms(openapi, "/v1/embed", "post", &r);
        ck_assert_msg(strstr(r.body, "injected fault"), "%s: message without the cause: %s",
                      cases[c].spec, r.body);
        char h[32];
        ck_assert_msg((http_header(&r, "Retry-After", h, sizeof h) != NULL) ==
                          (cases[c].status == 503),
                      "%s: Retry-After on %d", cases[c].spec, r.status);
        http_resp_free(&r);
        for (int again = 0; again < 2; again++) {
            ck_assert_int_eq(http_post_json(s.port, "/v1/embed", body, &r), 0);
            ck_assert_msg(r.status == 200, "%s: after the fault %d %s", cases[c].spec, r.status,
                          r.body);
            v = test_json_body(&r);
            get_matrix(json_object_get(v, "text_embeddings"), got, 1, DIM);
            json_decref(v);
            http_resp_free(&r);
            assert_close(got, want, DIM, EMB_TOL, "embedding after the fault");
        }
        char *m = get_metrics(s.port);
        char key[96];
        snprintf(key, sizeof key, "prism_http_requests_total{endpoint=\"/v1/embed\",status=\"%d\"}",
                 cases[c].status);
        ck_assert_msg(test_metric(m, key) == 1, "%s: %s", cases[c].spec, m);
        free(m);
        ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
    }
}
END_TEST

/* A device that fails for good (a sticky CUDA error, injected: the fault
 * and every op after it fail): the request in flight gets 503 device_lost,
 * then /healthz and /readyz answer 503 device_lost (so the orchestrator
 * restarts the process) and new work is refused with 503 at once; the
 * process still shuts down cleanly. */
START_TEST(test_device_lost)
{
    test_server s;
    const char *args[] = {"--test-fault", "attention:2:lost", "--max-delay-ms", "0", NULL};
    test_server_start(&s, DEMO, args);
    http_resp r;
    ck_assert_int_eq(http_get(s.port, "/healthz", &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"a\"]}", &r), 0);
    test_expect_error(&r, 503, "device_lost", NULL);
    test_conforms(openapi, "/v1/embed", "post", &r);
    ck_assert_msg(strstr(r.body, "injected fault: attention call 2"), "%s", r.body);
    http_resp_free(&r);
    const char *gets[] = {"/healthz", "/readyz"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(http_get(s.port, gets[i], &r), 0);
        test_expect_error(&r, 503, "device_lost", NULL);
        test_conforms(openapi, gets[i], "get", &r);
        http_resp_free(&r);
    }
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"b\"]}", &r), 0);
    test_expect_error(&r, 503, "device_lost", NULL);
    char h[32];
    ck_assert_ptr_nonnull(http_header(&r, "Retry-After", h, sizeof h));
    http_resp_free(&r);
    char *log = test_server_log(&s);
    ck_assert_msg(strstr(log, "device lost"), "%s", log);
    free(log);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* ---- limits, API key, configuration ------------------------------------- */

START_TEST(test_limits)
{
    test_server s;
    static const char *const args[] = {"--body-limit", "4096", "--max-items", "3",
                                       "--max-image-pixels", "2000", NULL};
    test_server_start(&s, DEMO, args);
    http_resp r;
    char big[8192];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"texts\":[\"a\"]", 14);
    big[sizeof big - 1] = '}';
    ck_assert_int_eq(http_request(s.port, "POST", "/v1/embed", "Content-Type: application/json\r\n",
                                  big, sizeof big, &r), 0);
    test_expect_error(&r, 413, "body_too_large", NULL);
    http_resp_free(&r);
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"a\",\"b\",\"c\",\"d\"]}", &r), 0);
    test_expect_error(&r, 413, "too_many_items", "texts");
    http_resp_free(&r);
    /* image 0 is 40x30 = 1200 pixels: fine; image 2 is 66x44 = 2904: refused from its header */
    int i0 = 0, i2 = 2;
    char *body = embed_body(&i0, 1, NULL, 0, NULL);
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    free(body);
    body = embed_body(&i2, 1, NULL, 0, NULL);
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", body, &r), 0);
    test_expect_error(&r, 413, "image_too_large", "images[0]");
    http_resp_free(&r);
    free(body);
    char *m = get_metrics(s.port);
    ck_assert(test_metric(m, "prism_images_decoded_total") == 1); /* the big one was not decoded */
    free(m);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

START_TEST(test_api_key)
{
    test_server s;
    static const char *const args[] = {"--api-key", "s3cret", NULL};
    test_server_start(&s, DEMO, args);
    http_resp r;
    char h[64];
    ck_assert_int_eq(http_get(s.port, "/v1/models", &r), 0);
    test_expect_error(&r, 401, "invalid_api_key", NULL);
    ck_assert_str_eq(http_header(&r, "WWW-Authenticate", h, sizeof h), "Bearer");
    http_resp_free(&r);
    ck_assert_int_eq(http_request(s.port, "POST", "/v1/embed",
                                  "Content-Type: application/json\r\nAuthorization: Bearer s3cre\r\n",
                                  "{\"texts\":[\"a\"]}", 15, &r), 0);
    test_expect_error(&r, 401, "invalid_api_key", NULL);
    http_resp_free(&r);
    ck_assert_int_eq(http_request(s.port, "POST", "/v1/embed",
                                  "Content-Type: application/json\r\nAuthorization: Bearer s3cret\r\n",
                                  "{\"texts\":[\"a\"]}", 15, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    const char *open_paths[] = {"/healthz", "/readyz", "/metrics"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(http_get(s.port, open_paths[i], &r), 0);
        ck_assert_int_eq(r.status, 200);
        http_resp_free(&r);
    }
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

START_TEST(test_config_help_env)
{
    int st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s serve --help", PRISM_BIN);
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 0);
    const char *flags[] = {"--model", "--host", "--port", "--device", "--threads", "--max-batch-image",
                           "--max-batch-text", "--max-delay-ms", "--max-queue", "--request-timeout",
                           "--body-limit", "--max-image-pixels", "--api-key", "--log-format",
                           "--log-level", "--label-cache", "--max-items", "--prep-threads"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char env[64] = "PRISM_";
        for (const char *p = flags[i] + 2; *p; p++)
            env[strlen(env) + 1] = '\0', env[strlen(env)] = *p == '-' ? '_' : (char)(*p - 32);
        ck_assert_msg(strstr(out, flags[i]), "--help lacks %s", flags[i]);
        ck_assert_msg(strstr(out, env), "--help lacks %s", env);
    }
    free(out);
    snprintf(cmd, sizeof cmd, "PRISM_PORT=http %s serve --model %s 2>&1", PRISM_BIN, DEMO);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert_msg(strstr(out, "PRISM_PORT must be an integer"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --model %s --log-format xml 2>&1", PRISM_BIN, DEMO);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert(strstr(out, "--log-format must be one of text|json"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --model /nonexistent --port 0 2>&1", PRISM_BIN);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 1);
    ck_assert(strstr(out, "/nonexistent/config.json"));
    free(out);
    /* --device: this machine has no GPU, so cuda refuses to start and auto
     * says it falls back to the CPU (whether or not the build has CUDA) */
    snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 --device cuda 2>&1", PRISM_BIN, DEMO);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "--device cuda: no CUDA device found") ||
                      strstr(out, "--device cuda: this build has no CUDA backend"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 --dtype f64 2>&1", PRISM_BIN, DEMO);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert_msg(strstr(out, "--dtype must be one of auto|bf16|f16|f32"), "%s", out);
    free(out);
    const char *bad_faults[][2] = {{"matmul", "expected OP:N"}, {"gemm:1", "unknown op"},
                                   {"matmul:0", "N must be"}, {"matmul:2:oops", "the kind is"}};
    for (size_t i = 0; i < sizeof bad_faults / sizeof bad_faults[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 --test-fault %s 2>&1", PRISM_BIN,
                 DEMO, bad_faults[i][0]);
        out = test_run(cmd, &st);
        ck_assert_int_eq(st, 1);
        ck_assert_msg(strstr(out, "--test-fault") && strstr(out, bad_faults[i][1]), "%s", out);
        free(out);
    }
    /* the environment sets, a flag wins: PRISM_MAX_ITEMS=1 but --max-items 5 */
    setenv("PRISM_MAX_ITEMS", "1", 1);
    setenv("PRISM_MODEL_NAME", "from-env", 1);
    test_server s;
    static const char *const args[] = {"--max-items", "5", NULL};
    test_server_start(&s, DEMO, args);
    unsetenv("PRISM_MAX_ITEMS");
    unsetenv("PRISM_MODEL_NAME");
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", "{\"texts\":[\"a\",\"b\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.body, "\"model\":\"from-env\""));
    http_resp_free(&r);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* ---- metrics and logs ---------------------------------------------------- */

/* Parses the whole exposition: every line a comment or `name{labels} value`,
 * every sample's family declared by # TYPE, histograms cumulative with
 * _count equal to the +Inf bucket. */
START_TEST(test_metrics_exposition)
{
    http_resp r;
    ck_assert_int_eq(http_post_json(srv.port, "/v1/embed", "{\"texts\":[\"for metrics\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    char *m = get_metrics(srv.port);
    /* the backend's memory: the model's buffers at least; the CPU has no
     * device memory to report */
    const char *bm = strstr(m, "\nprism_backend_memory_bytes ");
    ck_assert_msg(bm, "no prism_backend_memory_bytes sample");
    ck_assert_double_gt(strtod(bm + strlen("\nprism_backend_memory_bytes "), NULL), 0);
    ck_assert_ptr_null(strstr(m, "prism_device_memory_bytes"));
    char types[64][96];
    int n_types = 0;
    char last_bucket_series[256] = "";
    double last_bucket = -1, inf_bucket = -1;
    int samples = 0;
    for (char *save, *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96], type[32];
            ck_assert_int_eq(sscanf(line + 7, "%95s %31s", name, type), 2);
            ck_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                      strcmp(type, "histogram") == 0);
            ck_assert(n_types < 64);
            snprintf(types[n_types++], sizeof types[0], "%s", name);
            continue;
        }
        ck_assert_msg(line[0] != '#', "unknown comment: %s", line);
        /* name */
        size_t k = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789");
        ck_assert_msg(k > 0 && !(line[0] >= '0' && line[0] <= '9'), "bad name: %s", line);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)k, line);
        char *rest = line + k;
        if (*rest == '{') {
            char *close = strchr(rest, '}');
            ck_assert_msg(close, "unterminated labels: %s", line);
            /* label pairs name="value" */
            for (char *p = rest + 1; p < close;) {
                size_t ln = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
                ck_assert_msg(ln > 0 && p[ln] == '=' && p[ln + 1] == '"', "bad label: %s", line);
                p += ln + 2;
                while (*p != '"') {
                    if (*p == '\\')
                        p++;
                    p++;
                }
                p++;
                if (*p == ',')
                    p++;
            }
            rest = close + 1;
        }
        ck_assert_msg(*rest == ' ', "no value: %s", line);
        char *end;
        double v = strtod(rest + 1, &end);
        ck_assert_msg(*end == '\0' && v >= 0, "bad value: %s", line);
        /* its family was declared */
        bool declared = false;
        for (int i = 0; i < n_types && !declared; i++) {
            size_t tl = strlen(types[i]);
            declared = strncmp(name, types[i], tl) == 0 &&
                       (name[tl] == '\0' || strcmp(name + tl, "_bucket") == 0 ||
                        strcmp(name + tl, "_sum") == 0 || strcmp(name + tl, "_count") == 0);
        }
        ck_assert_msg(declared, "no # TYPE for %s", name);
        /* histogram buckets: cumulative; _count == +Inf */
        if (strstr(name, "_bucket")) {
            char series[256];
            char *le = strstr(line, ",le=");
            ck_assert_ptr_nonnull(le);
            snprintf(series, sizeof series, "%.*s", (int)(le - line), line);
            if (strcmp(series, last_bucket_series) == 0)
                ck_assert_msg(v >= last_bucket, "buckets not cumulative: %s", line);
            snprintf(last_bucket_series, sizeof last_bucket_series, "%s", series);
            last_bucket = v;
            if (strstr(le, "\"+Inf\""))
                inf_bucket = v;
        } else if (strstr(name, "_count") && strchr(line, '{')) {
            ck_assert_msg(v == inf_bucket, "_count %g != +Inf bucket %g: %s", v, inf_bucket, line);
        }
        samples++;
    }
    free(m);
    ck_assert_int_gt(samples, 50);
    const char *required[] = {"prism_http_requests_total", "prism_http_request_duration_seconds",
                              "prism_queue_wait_seconds", "prism_inference_duration_seconds",
                              "prism_batch_size", "prism_queue_depth", "prism_items_in_flight",
                              "prism_images_decoded_total", "prism_preprocess_duration_seconds",
                              "prism_generated_tokens_total", "prism_model_load_seconds",
                              "prism_build_info", "prism_process_resident_memory_bytes",
                              "prism_backend_memory_bytes"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        bool found = false;
        for (int t = 0; t < n_types; t++)
            found |= strcmp(types[t], required[i]) == 0;
        ck_assert_msg(found, "metric %s missing", required[i]);
    }
}
END_TEST

START_TEST(test_structured_logs)
{
    http_resp r;
    ck_assert_int_eq(http_request(srv.port, "POST", "/v1/embed",
                                  "Content-Type: application/json\r\nX-Request-Id: log-test-42\r\n",
                                  "{\"texts\":[\"logged\"]}", 20, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    usleep(100000);
    char *log = test_server_log(&srv);
    const char *line = strstr(log, "\"request_id\":\"log-test-42\"");
    ck_assert_msg(line, "no log line for the request: %s", log);
    while (line > log && line[-1] != '\n')
        line--;
    const char *eol = strchr(line, '\n');
    json_error_t e;
    json_t *v = json_loadb(line, (size_t)(eol - line), 0, &e);
    ck_assert_msg(v, "log line is not JSON: %s", e.text);
    ck_assert_str_eq(json_string_value(json_object_get(v, "msg")), "request");
    ck_assert_str_eq(json_string_value(json_object_get(v, "route")), "/v1/embed");
    ck_assert_int_eq(json_integer_value(json_object_get(v, "status")), 200);
    const char *keys[] = {"ts", "level", "duration_ms", "queue_ms", "preprocess_ms", "inference_ms"};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(json_object_get(v, keys[i]), "log line lacks %s", keys[i]);
    json_decref(v);
    /* --device auto (the default) on this GPU-less machine says it chose the CPU */
    ck_assert_msg(strstr(log, "\"msg\":\"device\",\"detail\":\"cpu: no CUDA device found") ||
                      strstr(log, "\"msg\":\"device\",\"detail\":\"cpu: this build has no CUDA"),
                  "no device choice logged: %s", log);
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server");
    TCase *api = tcase_create("api");
    tcase_set_timeout(api, 120);
    tcase_add_unchecked_fixture(api, start_default, stop_default);
    tcase_add_test(api, test_get_endpoints);
    tcase_add_test(api, test_embed_equals_cli);
    tcase_add_test(api, test_score_and_classify);
    tcase_add_test(api, test_openai_embeddings);
    tcase_add_test(api, test_bad_requests);
    tcase_add_test(api, test_metrics_exposition);
    tcase_add_test(api, test_structured_logs);
    tcase_add_test(api, test_split_batches_in_order);
    tcase_add_test(api, test_200_concurrent_mixed);
    tcase_add_test(api, test_deadline);
    tcase_add_test(api, test_disconnect_cancels);
    tcase_add_test(api, test_sigterm_drains);
    tcase_add_test(api, test_queue_full);
    tcase_add_test(api, test_device_fault);
    tcase_add_test(api, test_device_lost);
    tcase_add_test(api, test_limits);
    tcase_add_test(api, test_api_key);
    tcase_add_test(api, test_config_help_env);
    suite_add_tcase(s, api);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
