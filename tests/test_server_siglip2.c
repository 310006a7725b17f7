/* test_server_siglip2.c - SigLIP 2 checkpoints as downloaded, served by the
 * real binary and run by the CLI, against transformers.
 *
 * tests/data/siglip2_naflex_e2e (Siglip2Model, NaFlex) and
 * tests/data/siglip2_fixres_e2e (SiglipModel with the Gemma tokenizer),
 * with the goldens tools/reference/make_siglip2_e2e_goldens.py made from
 * image files and strings through transformers' processors
 * (Siglip2ImageProcessorPil / SiglipImageProcessorPil, Siglip2Tokenizer)
 * and models (texts with the tokenizer's attention mask, as
 * model(**processor(...)) computes). The same files and strings go to
 * POST /v1/embed, /v1/score, /v1/classify, /v1/embeddings and `prism embed`.
 *
 * Bounds: normalised embeddings 1e-5 (the project's rule: float32 with a
 * different summation order; the engine goldens measure ~2e-7), logits
 * 1e-4 (exp(logit_scale) ≈ 10 times the embeddings' error, summed over the
 * width). What they catch: a text not lowercased, padded on the right or
 * without its mask, an image cut at the wrong size or with the wrong
 * position grid moves these values by 1e-2 or more (the mask alone: see
 * test_siglip2_golden).
 */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_codec.h"
#include "safetensors.h"
#include "server_checks.h"
#include "test_http.h"
#include "test_util.h"

#define EMB_TOL 1e-5
#define LOGIT_TOL 1e-4

/* One golden file: its tensors, and the images (as data URLs) and texts of
 * its metadata. */
typedef struct golden {
    st_file f;
    char dir[4096];
    int n_images, n_texts;
    char *paths[16];
    char *urls[16];
    char *texts[16];
    int patches[4], n_patches; /* NaFlex: max_num_patches values, the default first */
} golden;

static void golden_open(golden *g, const char *name)
{
    memset(g, 0, sizeof *g);
    char path[4200];
    test_data_path(g->dir, sizeof g->dir, name);
    snprintf(path, sizeof path, "%s.golden.safetensors", g->dir);
    prism_error err = {0};
    ck_assert_msg(st_file_open(&g->f, path, &err) == 0, "%s", err.msg);
    json_t *images = test_st_meta(g->f.path, "images"), *texts = test_st_meta(g->f.path, "texts");
    json_t *patches = test_st_meta(g->f.path, "max_num_patches");
    ck_assert(images && texts && json_array_size(images) <= 16 && json_array_size(texts) <= 16);
    g->n_images = (int)json_array_size(images);
    g->n_texts = (int)json_array_size(texts);
    for (int i = 0; i < g->n_images; i++) {
        g->paths[i] = malloc(4200);
        test_data_path(g->paths[i], 4200, json_string_value(json_array_get(images, (size_t)i)));
        size_t len;
        char *data = test_read_file(g->paths[i], &len);
        ck_assert_ptr_nonnull(data);
        char *b64 = api_base64_encode((const uint8_t *)data, len, NULL);
        g->urls[i] = malloc(strlen(b64) + 32);
        sprintf(g->urls[i], "data:image/*;base64,%s", b64);
        free(b64);
        free(data);
    }
    for (int i = 0; i < g->n_texts; i++)
        g->texts[i] = strdup(json_string_value(json_array_get(texts, (size_t)i)));
    for (size_t i = 0; patches && i < json_array_size(patches) && i < 4; i++)
        g->patches[g->n_patches++] = (int)json_integer_value(json_array_get(patches, i));
    json_decref(images), json_decref(texts), json_decref(patches);
}

static void golden_close(golden *g)
{
    for (int i = 0; i < g->n_images; i++)
        free(g->paths[i]), free(g->urls[i]);
    for (int i = 0; i < g->n_texts; i++)
        free(g->texts[i]);
    st_file_close(&g->f);
}

/* key, or key_<patches> when patches > 0 */
static float *want(const golden *g, const char *key, int patches)
{
    char name[96];
    if (patches > 0)
        snprintf(name, sizeof name, "%s_%d", key, patches);
    else
        snprintf(name, sizeof name, "%s", key);
    float *x = test_golden_f32(&g->f, name, NULL);
    ck_assert_msg(x != NULL, "golden %s", name);
    return x;
}

/* {"images": [...], "texts": [...] EXTRA} with the golden's inputs. */
static char *body_of(const golden *g, bool images, bool texts, const char *extra)
{
    json_t *b = json_object(), *im = json_array(), *tx = json_array();
    for (int i = 0; images && i < g->n_images; i++)
        json_array_append_new(im, json_string(g->urls[i]));
    for (int i = 0; texts && i < g->n_texts; i++)
        json_array_append_new(tx, json_string(g->texts[i]));
    json_object_set_new(b, "images", im);
    json_object_set_new(b, "texts", tx);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (extra) { /* ,"key":value before the closing brace */
        size_t n = strlen(s);
        s = realloc(s, n + strlen(extra) + 2);
        s[n - 1] = ',';
        strcpy(s + n, extra);
        strcat(s, "}");
    }
    return s;
}

static void get_matrix(json_t *m, float *out, int rows, int cols)
{
    ck_assert_int_eq((int)json_array_size(m), rows);
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array_get(m, (size_t)r);
        ck_assert_int_eq((int)json_array_size(row), cols);
        for (int c = 0; c < cols; c++)
            out[(size_t)r * cols + c] = (float)json_number_value(json_array_get(row, (size_t)c));
    }
}

static void expect_close(const float *got, const float *w, size_t n, double tol, const char *what)
{
    double d = test_max_abs_diff(got, w, n);
    ck_assert_msg(d <= tol, "%s: max diff %g (bound %g)", what, d, tol);
}

static json_t *post(int port, const char *path, const char *body, int status)
{
    http_resp r;
    ck_assert_int_eq(http_post_json(port, path, body, &r), 0);
    ck_assert_msg(r.status == status, "%s: %d %s", path, r.status, r.body);
    json_t *v = test_json_body(&r);
    http_resp_free(&r);
    return v;
}

/* /v1/embed of every image and text: the goldens at `patches` (0: FixRes,
 * or the request leaves max_num_patches out when it is the default). */
static void check_embed(const test_server *s, const golden *g, int D, int patches, bool ask)
{
    char extra[64];
    snprintf(extra, sizeof extra, "\"max_num_patches\":%d", patches);
    char *body = body_of(g, true, true, ask ? extra : NULL);
    json_t *v = post(s->port, "/v1/embed", body, 200);
    free(body);
    float *img = malloc((size_t)g->n_images * D * sizeof *img);
    float *txt = malloc((size_t)g->n_texts * D * sizeof *txt);
    get_matrix(json_object_get(v, "image_embeddings"), img, g->n_images, D);
    get_matrix(json_object_get(v, "text_embeddings"), txt, g->n_texts, D);
    float *wi = want(g, "image_embeds", patches), *wt = want(g, "text_embeds", 0);
    expect_close(img, wi, (size_t)g->n_images * D, EMB_TOL, "image_embeddings");
    expect_close(txt, wt, (size_t)g->n_texts * D, EMB_TOL, "text_embeddings");
    free(img), free(txt), free(wi), free(wt);
    json_decref(v);
}

static void check_score(const test_server *s, const golden *g, int patches)
{
    char *body = body_of(g, true, true, NULL);
    json_t *v = post(s->port, "/v1/score", body, 200);
    free(body);
    float *lg = malloc((size_t)g->n_images * g->n_texts * sizeof *lg);
    get_matrix(json_object_get(v, "logits"), lg, g->n_images, g->n_texts);
    float *w = want(g, "logits_per_image", patches);
    expect_close(lg, w, (size_t)g->n_images * g->n_texts, LOGIT_TOL, "logits");
    free(lg), free(w);
    json_decref(v);
}

/* ---- NaFlex -------------------------------------------------------------- */

static golden nf;
static test_server nf_srv;
#define NF_DIM 32

static void nf_start(void)
{
    golden_open(&nf, "siglip2_naflex_e2e");
    ck_assert_int_eq(nf.n_patches, 2);
    /* a 50 ms batching window: the concurrent requests below share batches */
    static const char *const args[] = {"--max-delay-ms", "50", "--max-num-patches", "256", NULL};
    test_server_start(&nf_srv, nf.dir, args);
}

static void nf_stop(void)
{
    test_server_stop(&nf_srv, 15);
    unlink(nf_srv.log_path);
    golden_close(&nf);
}

/* Files and strings in, transformers' embeddings and logits out, at the
 * processor's default max_num_patches and at one a request asks for. */
START_TEST(test_naflex_embed)
{
    check_embed(&nf_srv, &nf, NF_DIM, nf.patches[0], false);
    check_embed(&nf_srv, &nf, NF_DIM, nf.patches[0], true);
    check_embed(&nf_srv, &nf, NF_DIM, nf.patches[1], true);
    check_score(&nf_srv, &nf, nf.patches[0]);
    /* the option changes the answer (the comparison above means something) */
    float *a = want(&nf, "image_embeds", nf.patches[0]), *b = want(&nf, "image_embeds", nf.patches[1]);
    ck_assert(test_max_abs_diff(a, b, (size_t)nf.n_images * NF_DIM) > 1e-2);
    free(a), free(b);
}
END_TEST

/* /v1/embeddings (OpenAI shape) and /v1/classify take the option too. */
START_TEST(test_naflex_other_endpoints)
{
    char body[4096 * 16];
    float *w = want(&nf, "image_embeds", nf.patches[1]);
    snprintf(body, sizeof body, "{\"input\":[\"%s\"],\"max_num_patches\":%d}",
             nf.urls[0], nf.patches[1]);
    json_t *v = post(nf_srv.port, "/v1/embeddings", body, 200);
    json_t *e = json_object_get(json_array_get(json_object_get(v, "data"), 0), "embedding");
    float got[NF_DIM];
    ck_assert_int_eq((int)json_array_size(e), NF_DIM);
    for (int i = 0; i < NF_DIM; i++)
        got[i] = (float)json_number_value(json_array_get(e, (size_t)i));
    expect_close(got, w, NF_DIM, EMB_TOL, "/v1/embeddings");
    json_decref(v);
    free(w);
    /* classify: label scores are sigmoid(logits) of the golden (template "{}") */
    float *lg = want(&nf, "logits_per_image", nf.patches[1]);
    json_t *b = json_object(), *labels = json_array();
    json_object_set_new(b, "image", json_string(nf.urls[1]));
    for (int k = 0; k < 3; k++)
        json_array_append_new(labels, json_string(nf.texts[k]));
    json_object_set_new(b, "labels", labels);
    json_object_set_new(b, "template", json_string("{}"));
    json_object_set_new(b, "max_num_patches", json_integer(nf.patches[1]));
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    v = post(nf_srv.port, "/v1/classify", s, 200);
    free(s);
    json_t *res = json_object_get(v, "labels");
    ck_assert_int_eq((int)json_array_size(res), 3);
    for (size_t i = 0; i < 3; i++) {
        const char *label = json_string_value(json_object_get(json_array_get(res, i), "label"));
        double score = json_number_value(json_object_get(json_array_get(res, i), "score"));
        int k = 0;
        while (k < 3 && strcmp(nf.texts[k], label) != 0)
            k++;
        ck_assert_int_lt(k, 3);
        double p = 1 / (1 + exp(-lg[1 * nf.n_texts + k]));
        ck_assert_msg(fabs(score - p) < 1e-5, "%s: %g vs %g", label, score, p);
    }
    json_decref(v);
    free(lg);
}
END_TEST

typedef struct embed_job {
    int patches;
    double diff;
} embed_job;

static void *embed_thread(void *arg)
{
    embed_job *j = arg;
    char extra[64];
    snprintf(extra, sizeof extra, "\"max_num_patches\":%d", j->patches);
    char *body = body_of(&nf, true, false, extra);
    http_resp r;
    j->diff = 1;
    if (http_post_json(nf_srv.port, "/v1/embed", body, &r) == 0 && r.status == 200) {
        json_t *v = json_loadb(r.body, r.body_len, 0, NULL);
        json_t *m = json_object_get(v, "image_embeddings");
        float *w = test_golden_f32(&nf.f, j->patches == nf.patches[0] ? "image_embeds_64"
                                                                       : "image_embeds_24", NULL);
        double d = 0;
        for (int i = 0; w && i < nf.n_images; i++)
            for (int c = 0; c < NF_DIM; c++)
                d = fmax(d, fabs(json_number_value(json_array_get(json_array_get(m, (size_t)i),
                                                                  (size_t)c)) -
                                 w[i * NF_DIM + c]));
        j->diff = w && json_array_size(m) == (size_t)nf.n_images ? d : 1;
        free(w);
        json_decref(v);
        http_resp_free(&r);
    }
    free(body);
    return NULL;
}

/* The image batch-size histogram's sum (items) and count (batches). */
static void batch_metrics(double *sum, double *count)
{
    http_resp r;
    ck_assert_int_eq(http_get(nf_srv.port, "/metrics", &r), 0);
    *sum = test_metric(r.body, "prism_batch_size_sum{task=\"image-embed\"}");
    *count = test_metric(r.body, "prism_batch_size_count{task=\"image-embed\"}");
    http_resp_free(&r);
    ck_assert(*sum >= 0 && *count >= 0);
}

/* Requests with different max_num_patches at once: their images of
 * different sizes share engine batches (padded, masked, bucketed) and each
 * still gets its own image's embedding. */
START_TEST(test_naflex_mixed_batches)
{
    ck_assert_int_eq(nf.patches[0], 64);
    ck_assert_int_eq(nf.patches[1], 24);
    enum { N = 6 };
    double sum0, count0, sum1, count1;
    batch_metrics(&sum0, &count0);
    pthread_t th[N];
    embed_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i].patches = nf.patches[i % 2];
        pthread_create(&th[i], NULL, embed_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(jobs[i].diff <= EMB_TOL, "request %d (%d patches): diff %g", i,
                      jobs[i].patches, jobs[i].diff);
    }
    /* every image ran, and batches carried more than one request's images */
    batch_metrics(&sum1, &count1);
    ck_assert_int_eq((int)(sum1 - sum0), N * nf.n_images);
    ck_assert_msg(count1 - count0 < N, "%g batches for %d requests", count1 - count0, N);
}
END_TEST

/* The option's limits: over --max-num-patches is 413 naming the field; a
 * bad value 400; the server goes on. */
START_TEST(test_naflex_limits)
{
    static const struct {
        const char *extra;
        int status;
        const char *code;
    } cases[] = {
        {"\"max_num_patches\":257", 413, "too_many_patches"},
        {"\"max_num_patches\":1000000000000", 413, "too_many_patches"},
        {"\"max_num_patches\":0", 400, "invalid_value"},
        {"\"max_num_patches\":\"64\"", 400, "invalid_type"},
        {"\"max_num_patches\":1", 200, NULL}, /* one patch: the image squeezed to 8x8 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *body = body_of(&nf, true, false, cases[k].extra);
        json_t *v = post(nf_srv.port, "/v1/embed", body, cases[k].status);
        free(body);
        if (cases[k].code) {
            json_t *e = json_object_get(v, "error");
            ck_assert_str_eq(json_string_value(json_object_get(e, "code")), cases[k].code);
            ck_assert_str_eq(json_string_value(json_object_get(e, "param")), "max_num_patches");
        }
        json_decref(v);
    }
    check_embed(&nf_srv, &nf, NF_DIM, nf.patches[1], true); /* still right */
}
END_TEST

/* ---- FixRes with the Gemma tokenizer -------------------------------------- */

/* The server (its own) and the CLI against the goldens; max_num_patches is
 * refused on a fixed-resolution model. */
START_TEST(test_fixres_serve_and_cli)
{
    golden g;
    golden_open(&g, "siglip2_fixres_e2e");
    test_server s;
    test_server_start(&s, g.dir, NULL);
    check_embed(&s, &g, NF_DIM, 0, false);
    check_score(&s, &g, 0);
    char *body = body_of(&g, true, false, "\"max_num_patches\":64");
    json_t *v = post(s.port, "/v1/embed", body, 400);
    free(body);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "error"), "param")),
                     "max_num_patches");
    json_decref(v);
    test_server_stop(&s, 15);
    unlink(s.log_path);
    golden_close(&g);
}
END_TEST

/* `prism embed` with image files and strings, both kinds. */
START_TEST(test_cli_embed)
{
    golden g;
    golden_open(&g, _i == 0 ? "siglip2_naflex_e2e" : "siglip2_fixres_e2e");
    size_t cap = 1 << 16, n = 0;
    char *cmd = malloc(cap);
    n += (size_t)snprintf(cmd + n, cap - n, "%s embed --model %s --threads 2", PRISM_BIN, g.dir);
    for (int i = 0; i < g.n_images; i++)
        n += (size_t)snprintf(cmd + n, cap - n, " --image '%s'", g.paths[i]);
    for (int i = 0; i < g.n_texts; i++) {
        char *q = api_base64_encode((const uint8_t *)g.texts[i], strlen(g.texts[i]), NULL);
        /* the text through the shell unchanged: decoded by base64 -d */
        n += (size_t)snprintf(cmd + n, cap - n, " --text \"$(printf %%s '%s' | base64 -d)\"", q);
        free(q);
    }
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s", out);
    json_error_t e;
    json_t *v = json_loads(out, 0, &e);
    ck_assert_msg(v != NULL, "%s: %s", e.text, out);
    float *img = malloc((size_t)g.n_images * NF_DIM * sizeof *img);
    float *txt = malloc((size_t)g.n_texts * NF_DIM * sizeof *txt);
    get_matrix(json_object_get(v, "image_embeddings"), img, g.n_images, NF_DIM);
    get_matrix(json_object_get(v, "text_embeddings"), txt, g.n_texts, NF_DIM);
    float *wi = want(&g, "image_embeds", g.n_patches ? g.patches[0] : 0);
    float *wt = want(&g, "text_embeds", 0);
    expect_close(img, wi, (size_t)g.n_images * NF_DIM, EMB_TOL, "cli image_embeddings");
    expect_close(txt, wt, (size_t)g.n_texts * NF_DIM, EMB_TOL, "cli text_embeddings");
    free(img), free(txt), free(wi), free(wt), free(out), free(cmd);
    json_decref(v);
    golden_close(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_siglip2");
    TCase *tc = tcase_create("naflex");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, nf_start, nf_stop);
    tcase_add_test(tc, test_naflex_embed);
    tcase_add_test(tc, test_naflex_other_endpoints);
    tcase_add_test(tc, test_naflex_mixed_batches);
    tcase_add_test(tc, test_naflex_limits);
    suite_add_tcase(s, tc);
    TCase *fx = tcase_create("fixres_and_cli");
    tcase_set_timeout(fx, 300);
    tcase_add_test(fx, test_fixres_serve_and_cli);
    tcase_add_loop_test(fx, test_cli_embed, 0, 2);
    suite_add_tcase(s, fx);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
