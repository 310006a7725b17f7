/* test_florence2_golden.c - Florence-2 (DaViT + BART) against transformers
 * (tools/reference/make_florence2_goldens.py).
 *
 * tests/data/florence2_tiny_a (window 4: three of the four stages pad
 * their windows; scale_embedding false) and florence2_tiny_b (window 3,
 * scale_embedding true), float32 weights, on the reference and the fast
 * CPU backends:
 *   - pixel values of the image files (CLIPImageProcessor: bicubic,
 *     ImageNet mean and std): 1e-6, the image pipeline's own bound;
 *   - the vision tower's last stage: 1e-5 of its largest magnitude (its
 *     residual stream has no final norm and reaches 150 with these random
 *     weights; float32 in another summation order than torch's
 *     convolutions and GEMMs over 5 blocks, measured 2.3e-6 relative);
 *   - the projector's image tokens (after its LayerNorm, a few units):
 *     1e-4 absolute;
 *   - the BART encoder's output over image tokens + prompt: 1e-4;
 *   - the first decoder step's logits: 1e-4, and the logits at every
 *     position of case 0's greedy sequence through the KV cache: 1e-4;
 *   - generation through the batched generator (pali_generate: every case
 *     greedy and with 3 beams, all in one run) with the checkpoint's
 *     generation_config.json: forced <s> first and </s> at the length
 *     limit, no repeated 3-grams: ids exact (the goldens' smallest top-1 /
 *     top-2 logit gap is 4.9e-3, far above the 1e-4 logit error).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "florence2.h"
#include "image.h"
#include "json.h"
#include "pali.h"
#include "safetensors.h"
#include "test_util.h"

#define TOL 1e-4

static const char *const models[] = {"florence2_tiny_a", "florence2_tiny_b"};

typedef struct fixture {
    st_file g;
    prism_backend *be;
    florence2_model *m;
    json_value *images, *cases;
    float *px;     /* [images, 3, S, S] */
    size_t per;
} fixture;

static void open_fixture(fixture *f, int i)
{
    const char *name = models[i / 2];
    const bool reference = i % 2;
    char dir[4096], gpath[4200];
    test_data_path(dir, sizeof dir, name);
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    prism_error err = {0};
    ck_assert_msg(st_file_open(&f->g, gpath, &err) == 0, "%s", err.msg);
    f->be = prism_cpu_backend_create(2, reference);
    florence2_limits lim;
    florence2_limits_default(&lim);
    lim.max_new_tokens = 16;
    lim.max_prompt_tokens = 32;
    ck_assert_msg(florence2_load(&f->m, dir, f->be, &lim, &err) == 0, "%s", err.msg);
    f->images = test_golden_meta(&f->g, "images");
    f->cases = test_golden_meta(&f->g, "cases");
    const florence2_config *c = florence2_get_config(f->m);
    const image_preproc *pre = florence2_get_preproc(f->m);
    f->per = (size_t)3 * c->image_size * c->image_size;
    f->px = malloc(f->images->count * f->per * sizeof *f->px);
    for (size_t k = 0; k < f->images->count; k++) {
        char path[4200], key[48];
        test_data_path(path, sizeof path, f->images->items[k].string);
        size_t len;
        char *data = test_read_file(path, &len);
        ck_assert_ptr_nonnull(data);
        ck_assert_msg(image_to_pixel_values((const uint8_t *)data, len, pre, (size_t)1 << 26,
                                            f->px + k * f->per, &err) == 0, "%s", err.msg);
        snprintf(key, sizeof key, "pixel_values_%zu", k);
        float *want = test_golden_f32(&f->g, key, NULL);
        double d = test_max_abs_diff(f->px + k * f->per, want, f->per);
        ck_assert_msg(d <= 1e-6, "%s: pixel values diff %g", f->images->items[k].string, d);
        free(want);
        free(data);
    }
}

static void close_fixture(fixture *f)
{
    florence2_free(f->m);
    prism_backend_destroy(f->be);
    json_free(f->images);
    json_free(f->cases);
    free(f->px);
    st_file_close(&f->g);
}

START_TEST(test_vision)
{
    fixture f;
    open_fixture(&f, _i);
    const florence2_config *c = florence2_get_config(f.m);
    const int N = c->n_image_tokens, D = c->text.d_model;
    const int C = c->vision.embed_dim[c->vision.n_stages - 1], hw = N - 1;
    prism_error err = {0};
    float *feat = malloc((size_t)N * D * sizeof *feat), *last = malloc((size_t)hw * C *
                                                                       sizeof *last);
    for (size_t k = 0; k < f.images->count; k++) {
        ck_assert_msg(florence2_image_features(f.m, f.px + k * f.per, feat, last, &err) == 0,
                      "%s", err.msg);
        char key[48];
        snprintf(key, sizeof key, "vision_%zu", k);
        float *want = test_golden_f32(&f.g, key, NULL); /* [C, h, w] */
        double d = 0, mag = 0;
        for (int t = 0; t < hw; t++)
            for (int ch = 0; ch < C; ch++) {
                const float w = want[(size_t)ch * hw + t];
                d = fmax(d, fabs(last[(size_t)t * C + ch] - w));
                mag = fmax(mag, fabs(w));
            }
        ck_assert_msg(d <= 1e-5 * mag, "%s image %zu: last stage diff %g (largest value %g)",
                      models[_i / 2], k, d, mag);
        free(want);
        snprintf(key, sizeof key, "image_features_%zu", k);
        want = test_golden_f32(&f.g, key, NULL);
        d = test_max_abs_diff(feat, want, (size_t)N * D);
        ck_assert_msg(d <= TOL, "%s image %zu: image features diff %g", models[_i / 2], k, d);
        free(want);
    }
    free(feat);
    free(last);
    close_fixture(&f);
}
END_TEST

START_TEST(test_encoder_and_logits)
{
    fixture f;
    open_fixture(&f, _i);
    const florence2_config *c = florence2_get_config(f.m);
    const int N = c->n_image_tokens, D = c->text.d_model, V = c->text.vocab_size;
    bart_model *lm = florence2_bart(f.m);
    prism_error err = {0};
    bart_cache *cache = NULL;
    ck_assert_msg(bart_cache_create(&cache, lm, 1, 1, &err) == 0, "%s", err.msg);
    float *logits = malloc((size_t)V * sizeof *logits);
    for (size_t k = 0; k < f.cases->count; k++) {
        char key[48];
        const int img = (int)f.cases->items[k].items[0].integer;
        int n_ids;
        snprintf(key, sizeof key, "input_ids_%zu", k);
        int32_t *ids = test_golden_ids(&f.g, key, &n_ids);
        for (int t = 0; t < N; t++)
            ck_assert_int_eq(ids[t], c->image_token_id);
        florence2_input in = {f.px + (size_t)img * f.per, ids + N, n_ids - N};
        float *states = malloc((size_t)n_ids * D * sizeof *states);
        int T = 0, slot = 0;
        ck_assert_msg(florence2_encode(f.m, &in, 1, cache, &slot, states, &T, &err) == 0, "%s",
                      err.msg);
        ck_assert_int_eq(T, n_ids);
        snprintf(key, sizeof key, "encoder_%zu", k);
        float *want = test_golden_f32(&f.g, key, NULL);
        double d = test_max_abs_diff(states, want, (size_t)n_ids * D);
        ck_assert_msg(d <= TOL, "%s case %zu: encoder diff %g", models[_i / 2], k, d);
        free(want);
        /* the first step, then (case 0) every step of the greedy sequence */
        int n_steps = 1, n_greedy = 0;
        int32_t *greedy = NULL;
        float *steps = NULL;
        if (k == 0) {
            greedy = test_golden_ids(&f.g, "greedy_0", &n_greedy);
            steps = test_golden_f32(&f.g, "steps_0", NULL);
            n_steps = n_greedy;
        }
        snprintf(key, sizeof key, "logits_%zu", k);
        float *first = test_golden_f32(&f.g, key, NULL);
        for (int s = 0; s < n_steps; s++) {
            bart_dec_seq q = {.slot = 0, .cross_slot = 0, .pos = s,
                              .token = s ? greedy[s - 1] : c->gen.decoder_start_token_id};
            ck_assert_msg(bart_decode_step(lm, cache, &q, 1, &err) == 0, "%s", err.msg);
            ck_assert_int_eq(f.be->ops->download(f.be, logits, bart_logits(lm),
                                                 (size_t)V * sizeof *logits), 0);
            const float *ref = s ? steps + (size_t)s * V : first;
            d = test_max_abs_diff(logits, ref, (size_t)V);
            ck_assert_msg(d <= TOL, "%s case %zu step %d: logits diff %g", models[_i / 2], k, s,
                          d);
        }
        free(first);
        free(greedy);
        free(steps);
        free(states);
        free(ids);
    }
    free(logits);
    encdec_cache_free(cache);
    close_fixture(&f);
}
END_TEST

START_TEST(test_generate)
{
    fixture f;
    open_fixture(&f, _i);
    const florence2_config *c = florence2_get_config(f.m);
    const int N = c->n_image_tokens;
    char dir[4096];
    test_data_path(dir, sizeof dir, models[_i / 2]);
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_batch = 4;
    lim.max_prompt_tokens = 32;
    lim.max_new_tokens = 16;
    prism_error err = {0};
    pali_model *pm = NULL;
    ck_assert_msg(pali_load(&pm, dir, f.be, &lim, &err) == 0, "%s", err.msg);
    const int n_cases = (int)f.cases->count, n = 2 * n_cases;
    pali_request *reqs = calloc((size_t)n, sizeof *reqs);
    int32_t **ids = calloc((size_t)n_cases, sizeof *ids);
    for (int k = 0; k < n_cases; k++) {
        char key[48];
        int n_ids;
        snprintf(key, sizeof key, "input_ids_%d", k);
        ids[k] = test_golden_ids(&f.g, key, &n_ids);
        const int img = (int)f.cases->items[k].items[0].integer;
        for (int beams = 0; beams < 2; beams++)
            reqs[2 * k + beams] = (pali_request){
                .pixels = f.px + (size_t)img * f.per, .prompt_ids = ids[k] + N,
                .n_prompt = n_ids - N, .max_new_tokens = 12, .num_beams = beams ? 3 : 1,
                .length_penalty = 1.0f};
    }
    pali_result *res = calloc((size_t)n, sizeof *res);
    ck_assert_msg(pali_generate(pm, reqs, n, res, &err) == 0, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        char key[48];
        int n_want;
        snprintf(key, sizeof key, "%s_%d", i % 2 ? "beam3" : "greedy", i / 2);
        int32_t *want = test_golden_ids(&f.g, key, &n_want);
        bool same = res[i].n_ids == n_want;
        for (int t = 0; same && t < n_want; t++)
            same = res[i].ids[t] == want[t];
        char got_s[256] = "", want_s[256] = "";
        for (int t = 0; t < res[i].n_ids && t < 20; t++)
            snprintf(got_s + strlen(got_s), sizeof got_s - strlen(got_s), " %d", res[i].ids[t]);
        for (int t = 0; t < n_want && t < 20; t++)
            snprintf(want_s + strlen(want_s), sizeof want_s - strlen(want_s), " %d", want[t]);
        ck_assert_msg(same, "%s %s: got [%s ] want [%s ]", models[_i / 2], key, got_s, want_s);
        free(want);
        pali_result_free(&res[i]);
    }
    for (int k = 0; k < n_cases; k++)
        free(ids[k]);
    free(ids);
    free(res);
    free(reqs);
    pali_free(pm);
    close_fixture(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("florence2_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_vision, 0, 4);
    tcase_add_loop_test(tc, test_encoder_and_logits, 0, 4);
    tcase_add_loop_test(tc, test_generate, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
