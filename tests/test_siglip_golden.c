/* test_siglip_golden.c - SigLIP outputs against transformers' float32 outputs.
 *
 * tools/reference/make_siglip_goldens.py built three tiny random-weight
 * checkpoints (F32 single file; BF16 sharded; F16 with odd widths) and dumped
 * transformers' outputs for fixed inputs. Each is run on the CPU fast path
 * and on the reference loops, and with a max batch smaller than the input
 * count (chunked execution).
 *
 * Tolerances: normalised embeddings within 1e-5 absolute and logits within
 * 1e-4, as the issue asks. Both sides compute in float32 with different
 * summation orders; the observed differences are ~2e-7 (embeddings) and ~2e-6
 * (logits = exp(scale)·cos + bias, with exp(scale) ≈ 10), so these bounds
 * leave a 50x margin while still catching any real error (a wrong op gives
 * differences of order 0.1). Pooled (unnormalised) outputs are held to
 * 1e-5 relative to the row's largest value.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_profile.h"
#include "siglip.h"
#include "test_util.h"

typedef struct golden_case {
    const char *name;
    bool reference;
    int max_batch;
} golden_case;

static const golden_case cases[] = {
    {"siglip_tiny_a", false, 32}, {"siglip_tiny_a", true, 32}, {"siglip_tiny_a", false, 2},
    {"siglip_tiny_b", false, 32}, {"siglip_tiny_b", true, 32}, {"siglip_tiny_b", false, 1},
    {"siglip_tiny_c", false, 32}, {"siglip_tiny_c", true, 32}, {"siglip_tiny_c", false, 3},
};

static double max_rel_row_diff(const float *got, const float *want, int rows, int cols)
{
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double scale = 1e-30;
        for (int c = 0; c < cols; c++)
            scale = fmax(scale, fabs(want[(size_t)r * cols + c]));
        double d = test_max_abs_diff(got + (size_t)r * cols, want + (size_t)r * cols, (size_t)cols);
        worst = fmax(worst, d / scale);
    }
    return worst;
}

START_TEST(test_golden)
{
    const golden_case *gc = &cases[_i];
    char dir[4096], gpath[4096], gname[256];
    test_data_path(dir, sizeof dir, gc->name);
    snprintf(gname, sizeof gname, "%s.golden.safetensors", gc->name);
    test_data_path(gpath, sizeof gpath, gname);

    /* through the profile wrapper, which counts backend allocations */
    prism_backend *cpu = prism_cpu_backend_create(2, gc->reference);
    ck_assert_ptr_nonnull(cpu);
    prism_backend *be = prism_profile_backend_create(cpu);
    ck_assert_ptr_nonnull(be);
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load(&m, dir, be, gc->max_batch, &err) == 0, "%s", err.msg);
    const long allocs = prism_profile_alloc_calls(be);
    ck_assert_int_gt(allocs, 0); /* the wrapper sees the model's allocations */
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);

    const st_tensor *pv = st_file_find(&g, "pixel_values");
    const st_tensor *ii = st_file_find(&g, "input_ids");
    ck_assert(pv && ii && ii->dtype == PRISM_DT_I64);
    const int nI = (int)pv->shape[0], nT = (int)ii->shape[0], T = (int)ii->shape[1];
    const int D = siglip_embed_dim(m);
    float *pixels = test_golden_f32(&g, "pixel_values", NULL);
    int32_t *ids = malloc((size_t)nT * T * sizeof *ids);
    for (int64_t i = 0; i < ii->numel; i++) {
        int64_t v;
        memcpy(&v, ii->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    float *img = malloc((size_t)nI * D * sizeof *img), *txt = malloc((size_t)nT * D * sizeof *txt);
    float *img_n = malloc((size_t)nI * D * sizeof *img), *txt_n = malloc((size_t)nT * D * sizeof *txt);
    float *logits = malloc((size_t)nI * nT * sizeof *logits);

    ck_assert_msg(siglip_embed_images(m, pixels, nI, false, img, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_texts(m, ids, nT, T, false, txt, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_images(m, pixels, nI, true, img_n, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_texts(m, ids, nT, T, true, txt_n, &err) == 0, "%s", err.msg);
    siglip_logits(m, img_n, nI, txt_n, nT, logits);
    /* the forward passes allocated no backend (device) memory: activations
     * were allocated for max_batch at load */
    ck_assert_int_eq(prism_profile_alloc_calls(be), allocs);

    float *w_img = test_golden_f32(&g, "image_pooled", NULL);
    float *w_txt = test_golden_f32(&g, "text_pooled", NULL);
    float *w_img_n = test_golden_f32(&g, "image_embeds", NULL);
    float *w_txt_n = test_golden_f32(&g, "text_embeds", NULL);
    float *w_logits = test_golden_f32(&g, "logits_per_image", NULL);

    double d;
    d = max_rel_row_diff(img, w_img, nI, D);
    ck_assert_msg(d <= 1e-5, "%s: image pooled rel diff %g", gc->name, d);
    d = max_rel_row_diff(txt, w_txt, nT, D);
    ck_assert_msg(d <= 1e-5, "%s: text pooled rel diff %g", gc->name, d);
    d = test_max_abs_diff(img_n, w_img_n, (size_t)nI * D);
    ck_assert_msg(d <= 1e-5, "%s: image_embeds diff %g", gc->name, d);
    d = test_max_abs_diff(txt_n, w_txt_n, (size_t)nT * D);
    ck_assert_msg(d <= 1e-5, "%s: text_embeds diff %g", gc->name, d);
    d = test_max_abs_diff(logits, w_logits, (size_t)nI * nT);
    ck_assert_msg(d <= 1e-4, "%s: logits diff %g", gc->name, d);

    free(w_img), free(w_txt), free(w_img_n), free(w_txt_n), free(w_logits);
    free(pixels), free(ids), free(img), free(txt), free(img_n), free(txt_n), free(logits);
    st_file_close(&g);
    siglip_free(m);
    prism_backend_destroy(be);
    prism_backend_destroy(cpu);
}
END_TEST

/* BF16 and int8 compute (`--dtype bf16` / `int8` where the CPU has
 * AVX512-BF16 / AVX512-VNNI) against transformers' float32 outputs on the
 * three goldens: the cosine of every normalised image and text embedding
 * with transformers' is at least 0.999 (BF16) or 0.995 (int8), the bounds
 * the issue sets (measured ≥ 0.99997 and ≥ 0.9995 here, docs/
 * BENCHMARKS.md); every image's top label (highest logit) is transformers'
 * wherever transformers' top two logits are further apart than 4x the
 * largest logit change measured on these models (BF16 0.055, int8 ≤ 0.21:
 * exp(scale) ≈ 10 times a cosine change), 0.2 and 0.8. The output must
 * differ from float32 (the arithmetic really is BF16 / int8). Where the CPU
 * or build cannot: skipped with the reason. */
START_TEST(test_golden_lowp)
{
    static const char *const names[] = {"siglip_tiny_a", "siglip_tiny_b", "siglip_tiny_c"};
    const char *name = names[_i % 3];
    const bool int8 = _i >= 3;
    const double min_cos = int8 ? 0.995 : 0.999, clear_gap = int8 ? 0.8 : 0.2;
    char dir[4096], gpath[4096], gname[256], why[200];
    test_data_path(dir, sizeof dir, name);
    snprintf(gname, sizeof gname, "%s.golden.safetensors", name);
    test_data_path(gpath, sizeof gpath, gname);
    prism_backend *be = prism_cpu_backend_create(2, false);
    if (int8 ? prism_cpu_backend_set_int8_compute(be, true, why, sizeof why)
             : prism_cpu_backend_set_bf16_compute(be, true, why, sizeof why)) {
        printf("test_golden_lowp %s %s: SKIPPED: %s\n", name, int8 ? "int8" : "bf16", why);
        prism_backend_destroy(be);
        return;
    }
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load(&m, dir, be, 32, &err) == 0, "%s", err.msg);
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    const st_tensor *pv = st_file_find(&g, "pixel_values"), *ii = st_file_find(&g, "input_ids");
    const int nI = (int)pv->shape[0], nT = (int)ii->shape[0], T = (int)ii->shape[1];
    const int D = siglip_embed_dim(m);
    float *pixels = test_golden_f32(&g, "pixel_values", NULL);
    int32_t *ids = malloc((size_t)nT * T * sizeof *ids);
    for (int64_t i = 0; i < ii->numel; i++) {
        int64_t v;
        memcpy(&v, ii->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    float *img = malloc((size_t)nI * D * sizeof *img), *txt = malloc((size_t)nT * D * sizeof *txt);
    float *logits = malloc((size_t)nI * nT * sizeof *logits);
    ck_assert_msg(siglip_embed_images(m, pixels, nI, true, img, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_texts(m, ids, nT, T, true, txt, &err) == 0, "%s", err.msg);
    siglip_logits(m, img, nI, txt, nT, logits);
    float *w_img = test_golden_f32(&g, "image_embeds", NULL);
    float *w_txt = test_golden_f32(&g, "text_embeds", NULL);
    float *w_logits = test_golden_f32(&g, "logits_per_image", NULL);
    double worst = 1, moved = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int n = pass ? nT : nI;
        const float *got = pass ? txt : img, *want = pass ? w_txt : w_img;
        for (int r = 0; r < n; r++) {
            double dot = 0, gg = 0, ww = 0;
            for (int c = 0; c < D; c++) {
                const double a = got[(size_t)r * D + c], b = want[(size_t)r * D + c];
                dot += a * b, gg += a * a, ww += b * b;
                moved = fmax(moved, fabs(a - b));
            }
            worst = fmin(worst, dot / sqrt(gg * ww));
        }
    }
    const char *dt = int8 ? "int8" : "BF16";
    ck_assert_msg(worst >= min_cos, "%s: %s embedding cosine %g below %g", name, dt, worst,
                  min_cos);
    ck_assert_msg(moved > 1e-5, "%s: %s output equals float32's (%g): not %s arithmetic?", name,
                  dt, moved, dt);
    for (int i = 0; i < nI; i++) {
        int best = 0, second = -1, got_best = 0;
        for (int t = 1; t < nT; t++) {
            if (w_logits[(size_t)i * nT + t] > w_logits[(size_t)i * nT + best]) {
                second = best;
                best = t;
            } else if (second < 0 ||
                       w_logits[(size_t)i * nT + t] > w_logits[(size_t)i * nT + second]) {
                second = t;
            }
            if (logits[(size_t)i * nT + t] > logits[(size_t)i * nT + got_best])
                got_best = t;
        }
        if (second >= 0 &&
            w_logits[(size_t)i * nT + best] - w_logits[(size_t)i * nT + second] > clear_gap)
            ck_assert_msg(got_best == best, "%s image %d: top label %d, transformers' %d", name,
                          i, got_best, best);
    }
    printf("test_golden_lowp %s %s: worst embedding cosine %.6f, largest change %.2g\n", name,
           dt, worst, moved);
    free(w_img), free(w_txt), free(w_logits), free(pixels), free(ids), free(img), free(txt);
    free(logits);
    st_file_close(&g);
    siglip_free(m);
    prism_backend_destroy(be);
}
END_TEST

/* Shorter texts than the model's maximum are valid in transformers (the
 * position table is sliced); out-of-vocabulary ids are refused by index. */
START_TEST(test_text_input_checks)
{
    char dir[4096];
    test_data_path(dir, sizeof dir, "siglip_tiny_a");
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load(&m, dir, be, 4, &err) == 0, "%s", err.msg);
    int32_t ids[2 * 65] = {0};
    float out[2 * 64];
    ids[3] = 1000; /* vocab is 1000 */
    ck_assert_int_eq(siglip_embed_texts(m, ids, 1, 8, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "input_ids[0][3]") && strstr(err.msg, "1000"), "%s", err.msg);
    ck_assert_int_eq(siglip_embed_texts(m, ids, 1, 65, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "65"), "%s", err.msg);
    ids[3] = 5;
    ck_assert_int_eq(siglip_embed_texts(m, ids, 2, 8, true, out, &err), 0);
    siglip_free(m);
    prism_backend_destroy(be);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("siglip_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_golden, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_text_input_checks);
    tcase_add_loop_test(tc, test_golden_lowp, 0, 6);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
