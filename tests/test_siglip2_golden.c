/* test_siglip2_golden.c - SigLIP 2 NaFlex outputs against transformers'
 * float32 outputs, and the position-embedding resize against torch.
 *
 * tools/reference/make_siglip2_goldens.py built two tiny random-weight
 * Siglip2Model checkpoints (F32; BF16 with odd widths and more heads than
 * the first) and dumped transformers' outputs for a batch of images of
 * different aspect ratios padded to a common row count with a mask, and for
 * texts with and without the tokenizer's attention mask; and torch's
 * antialiased bilinear resize of random grids to many sizes.
 *
 * Tolerances:
 *   - resize (grid values up to 4): prism computes in double and rounds
 *     once, so it is held to 3e-7 of torch's float64 result (one float
 *     rounding at 4 is 2.4e-7), and to 4e-6 of torch's float32 result,
 *     which is itself up to 2.8e-6 from its float64 result on these grids
 *     (weights and the intermediate pass rounded to float). A wrong filter
 *     (no antialiasing, wrong support or centre) is off by 1e-2 or more.
 *   - embeddings: as test_siglip_golden.c: normalised embeddings within
 *     1e-5 absolute, logits within 1e-4 (exp(scale) ≈ 10 times the cosine's
 *     error), pooled outputs within 1e-5 of the row's largest value. Both
 *     sides compute in float32 with different summation orders (observed
 *     ~3e-7 for embeddings); a wrong mask or position gives ~1e-1.
 *   - a padded batch against each image alone: 1e-6. The arithmetic is the
 *     same but for sgemm's blocking over a different row count and masked
 *     keys' exp(−87) ≈ 1.6e-38 weights on the fast path; without the mask
 *     the padded rows change the embeddings by ~1e-2.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_profile.h"
#include "siglip.h"
#include "siglip_naflex.h"
#include "test_util.h"

typedef struct golden_case {
    const char *name;
    bool reference;
    int max_batch;
} golden_case;

static const golden_case cases[] = {
    {"siglip2_tiny_a", false, 32}, {"siglip2_tiny_a", true, 32}, {"siglip2_tiny_a", false, 2},
    {"siglip2_tiny_b", false, 32}, {"siglip2_tiny_b", true, 32}, {"siglip2_tiny_b", false, 1},
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

/* An integer golden tensor (I32 or I64) as int32. */
static int32_t *golden_i32(const st_file *g, const char *name, int64_t *numel)
{
    const st_tensor *t = st_file_find(g, name);
    ck_assert_msg(t && (t->dtype == PRISM_DT_I64 || t->dtype == PRISM_DT_I32), "golden lacks %s",
                  name);
    int32_t *x = malloc((size_t)t->numel * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == PRISM_DT_I64) {
            int64_t v;
            memcpy(&v, t->data + 8 * i, 8);
            x[i] = (int32_t)v;
        } else {
            memcpy(&x[i], t->data + 4 * i, 4);
        }
    }
    if (numel)
        *numel = t->numel;
    return x;
}

/* The inputs of a golden file. */
typedef struct naflex_inputs {
    st_file g;
    int n, L, K;          /* images, rows per image, C·P·P */
    float *patches;       /* [n, L, K] */
    int32_t *mask;        /* [n, L] */
    int32_t *shapes;      /* [n, 2] */
    int nT, T;
    int32_t *ids, *tmask; /* [nT, T] */
} naflex_inputs;

static void inputs_open(naflex_inputs *in, const char *name)
{
    char gpath[4096], gname[256];
    snprintf(gname, sizeof gname, "%s.golden.safetensors", name);
    test_data_path(gpath, sizeof gpath, gname);
    prism_error err = {0};
    ck_assert_msg(st_file_open(&in->g, gpath, &err) == 0, "%s", err.msg);
    const st_tensor *pv = st_file_find(&in->g, "pixel_values");
    const st_tensor *ii = st_file_find(&in->g, "input_ids");
    ck_assert(pv && pv->ndim == 3 && ii && ii->ndim == 2);
    in->n = (int)pv->shape[0], in->L = (int)pv->shape[1], in->K = (int)pv->shape[2];
    in->nT = (int)ii->shape[0], in->T = (int)ii->shape[1];
    in->patches = test_golden_f32(&in->g, "pixel_values", NULL);
    in->mask = golden_i32(&in->g, "pixel_attention_mask", NULL);
    in->shapes = golden_i32(&in->g, "spatial_shapes", NULL);
    in->ids = golden_i32(&in->g, "input_ids", NULL);
    in->tmask = golden_i32(&in->g, "attention_mask", NULL);
}

static void inputs_close(naflex_inputs *in)
{
    free(in->patches), free(in->mask), free(in->shapes), free(in->ids), free(in->tmask);
    st_file_close(&in->g);
}

/* torch's F.interpolate(bilinear, antialias=True) on grids of many sizes:
 * up, down, mixed, odd, 1 × N, N × 1, unchanged. */
START_TEST(test_resize_vs_torch)
{
    char path[4096];
    test_data_path(path, sizeof path, "siglip2_resize.golden.safetensors");
    st_file g;
    prism_error err = {0};
    ck_assert_msg(st_file_open(&g, path, &err) == 0, "%s", err.msg);
    int64_t nc;
    int32_t *cs = golden_i32(&g, "cases", &nc);
    ck_assert_int_ge(nc / 4, 20);
    double worst = 0, worst32 = 0;
    for (int i = 0; i < nc / 4; i++) {
        const int gh = cs[4 * i], gw = cs[4 * i + 1], h = cs[4 * i + 2], w = cs[4 * i + 3];
        char gn[32], on[32], on64[32];
        snprintf(gn, sizeof gn, "grid_%d", i);
        snprintf(on, sizeof on, "out_%d", i);
        snprintf(on64, sizeof on64, "out64_%d", i);
        int64_t ng, no;
        float *grid = test_golden_f32(&g, gn, &ng), *want = test_golden_f32(&g, on, &no);
        float *want64 = test_golden_f32(&g, on64, NULL);
        const int D = (int)(ng / ((int64_t)gh * gw));
        ck_assert_int_eq(no, (int64_t)h * w * D);
        float *got = malloc((size_t)no * sizeof *got);
        double *scratch = malloc((size_t)gw * D * sizeof *scratch);
        siglip_resize_pos_grid(grid, gh, gw, D, h, w, got, scratch);
        double d = test_max_abs_diff(got, want64, (size_t)no);
        ck_assert_msg(d <= 3e-7, "resize %dx%d -> %dx%d: diff from float64 %g", gh, gw, h, w, d);
        worst = fmax(worst, d);
        d = test_max_abs_diff(got, want, (size_t)no);
        ck_assert_msg(d <= 4e-6, "resize %dx%d -> %dx%d: diff from float32 %g", gh, gw, h, w, d);
        worst32 = fmax(worst32, d);
        free(grid), free(want), free(want64), free(got), free(scratch);
    }
    printf("resize: %d cases, max diff %.3g from torch float64, %.3g from float32\n",
           (int)(nc / 4), worst, worst32);
    free(cs);
    st_file_close(&g);
}
END_TEST

/* The filter itself: weights sum to 1, and a 2x downscale averages over
 * four sources with weights 1/8, 3/8, 3/8, 1/8 (torch's antialiasing;
 * plain bilinear would take two sources at 1/2). */
START_TEST(test_aa_weights)
{
    double wt[SIGLIP_AA_MAX_TAPS];
    int first;
    int n = siglip_aa_weights(8, 4, 1, wt, &first);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(first, 1);
    const double want[4] = {0.125, 0.375, 0.375, 0.125};
    for (int k = 0; k < 4; k++)
        ck_assert_msg(fabs(wt[k] - want[k]) < 1e-12, "tap %d: %g", k, wt[k]);
    for (int in = 1; in <= 40; in++)
        for (int out = 1; out <= 40; out++)
            for (int i = 0; i < out; i++) {
                n = siglip_aa_weights(in, out, i, wt, &first);
                ck_assert(n >= 1 && n <= in && first >= 0 && first + n <= in);
                double s = 0;
                for (int k = 0; k < n; k++)
                    s += wt[k];
                ck_assert_msg(fabs(s - 1) < 1e-12, "%d -> %d at %d: sum %g", in, out, i, s);
            }
}
END_TEST

START_TEST(test_golden)
{
    const golden_case *gc = &cases[_i];
    char dir[4096];
    test_data_path(dir, sizeof dir, gc->name);
    prism_backend *cpu = prism_cpu_backend_create(2, gc->reference);
    ck_assert_ptr_nonnull(cpu);
    prism_backend *be = prism_profile_backend_create(cpu);
    ck_assert_ptr_nonnull(be);
    naflex_inputs in;
    inputs_open(&in, gc->name);
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load_ex(&m, dir, be, gc->max_batch, in.L, &err) == 0, "%s", err.msg);
    ck_assert(siglip_is_naflex(m));
    ck_assert_int_eq(siglip_patch_dim(m), in.K);
    ck_assert_int_eq(siglip_max_patches(m), in.L);
    const long allocs = prism_profile_alloc_calls(be);
    const int n = in.n, nT = in.nT, T = in.T, D = siglip_embed_dim(m);

    float *img = malloc((size_t)n * D * sizeof *img), *img_n = malloc((size_t)n * D * sizeof *img);
    float *txt = malloc((size_t)nT * D * sizeof *txt), *txt_n = malloc((size_t)nT * D * sizeof *txt);
    float *txm = malloc((size_t)nT * D * sizeof *txt), *txm_n = malloc((size_t)nT * D * sizeof *txt);
    float *logits = malloc((size_t)n * nT * sizeof *logits);
    float *logits_m = malloc((size_t)n * nT * sizeof *logits);
    ck_assert_msg(siglip_embed_naflex(m, in.patches, in.mask, in.shapes, n, in.L, false, img, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(siglip_embed_naflex(m, in.patches, in.mask, in.shapes, n, in.L, true, img_n, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(siglip_embed_texts(m, in.ids, nT, T, false, txt, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_texts(m, in.ids, nT, T, true, txt_n, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_texts_masked(m, in.ids, in.tmask, nT, T, false, txm, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(siglip_embed_texts_masked(m, in.ids, in.tmask, nT, T, true, txm_n, &err) == 0,
                  "%s", err.msg);
    siglip_logits(m, img_n, n, txt_n, nT, logits);
    siglip_logits(m, img_n, n, txm_n, nT, logits_m);
    /* activations were allocated at load */
    ck_assert_int_eq(prism_profile_alloc_calls(be), allocs);

    struct {
        const char *key;
        const float *got;
        int rows;
        bool pooled; /* relative to the row's largest value */
    } checks[] = {
        {"image_pooled", img, n, true},         {"image_embeds", img_n, n, false},
        {"text_pooled", txt, nT, true},         {"text_embeds", txt_n, nT, false},
        {"text_pooled_masked", txm, nT, true},  {"text_embeds_masked", txm_n, nT, false},
    };
    for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++) {
        float *want = test_golden_f32(&in.g, checks[k].key, NULL);
        double d = checks[k].pooled ? max_rel_row_diff(checks[k].got, want, checks[k].rows, D)
                                    : test_max_abs_diff(checks[k].got, want,
                                                        (size_t)checks[k].rows * D);
        ck_assert_msg(d <= 1e-5, "%s max %d: %s diff %g", gc->name, gc->max_batch, checks[k].key, d);
        if (!gc->reference && gc->max_batch == 32)
            printf("%s %s: %.3g\n", gc->name, checks[k].key, d);
        free(want);
    }
    float *w_logits = test_golden_f32(&in.g, "logits_per_image", NULL);
    float *w_logits_m = test_golden_f32(&in.g, "logits_per_image_masked", NULL);
    double d = test_max_abs_diff(logits, w_logits, (size_t)n * nT);
    ck_assert_msg(d <= 1e-4, "%s: logits diff %g", gc->name, d);
    d = test_max_abs_diff(logits_m, w_logits_m, (size_t)n * nT);
    ck_assert_msg(d <= 1e-4, "%s: masked-text logits diff %g", gc->name, d);
    /* the text mask matters: masked and unmasked texts differ */
    ck_assert(test_max_abs_diff(txt_n, txm_n, (size_t)nT * D) > 1e-3);

    free(w_logits), free(w_logits_m);
    free(img), free(img_n), free(txt), free(txt_n), free(txm), free(txm_n), free(logits), free(logits_m);
    inputs_close(&in);
    siglip_free(m);
    prism_backend_destroy(be);
    prism_backend_destroy(cpu);
}
END_TEST

/* Each image's resized position embeddings (transformers' pos_resized) from
 * the checkpoint's grid, and the padding rows taking position 0. */
START_TEST(test_pos_resized)
{
    naflex_inputs in;
    inputs_open(&in, "siglip2_tiny_a");
    char path[4096];
    test_data_path(path, sizeof path, "siglip2_tiny_a/model.safetensors");
    st_file ck;
    prism_error err = {0};
    ck_assert_msg(st_file_open(&ck, path, &err) == 0, "%s", err.msg);
    int64_t ng;
    float *grid = test_golden_f32(&ck, "vision_model.embeddings.position_embedding.weight", &ng);
    float *want = test_golden_f32(&in.g, "pos_resized", NULL);
    const int G = 4, E = (int)(ng / (G * G));
    ck_assert_int_eq(ng, (int64_t)G * G * E);
    float *got = malloc((size_t)in.L * E * sizeof *got);
    double *scratch = malloc((size_t)G * E * sizeof *scratch);
    for (int b = 0; b < in.n; b++) {
        const int h = in.shapes[2 * b], w = in.shapes[2 * b + 1];
        siglip_resize_pos_grid(grid, G, G, E, h, w, got, scratch);
        for (int t = h * w; t < in.L; t++)
            memcpy(got + (size_t)t * E, got, (size_t)E * sizeof *got);
        double d = test_max_abs_diff(got, want + (size_t)b * in.L * E, (size_t)in.L * E);
        ck_assert_msg(d <= 1e-6, "image %d (%dx%d): pos_resized diff %g", b, h, w, d);
    }
    free(grid), free(want), free(got), free(scratch);
    st_file_close(&ck);
    inputs_close(&in);
}
END_TEST

/* Padded rows influence nothing: each image alone (no padding) gives what it
 * gives in the padded batch, bucketed or padded to its largest image, and
 * garbage (NaN, huge values) in the padded rows changes no bit of the
 * result. */
START_TEST(test_padding_isolation)
{
    const bool reference = _i == 1;
    char dir[4096];
    test_data_path(dir, sizeof dir, "siglip2_tiny_a");
    naflex_inputs in;
    inputs_open(&in, "siglip2_tiny_a");
    prism_backend *be = prism_cpu_backend_create(2, reference);
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load_ex(&m, dir, be, 8, in.L, &err) == 0, "%s", err.msg);
    const int n = in.n, L = in.L, K = in.K, D = siglip_embed_dim(m);
    float *batch = malloc((size_t)n * D * sizeof *batch), *one = malloc((size_t)D * sizeof *one);
    ck_assert_msg(siglip_embed_naflex(m, in.patches, in.mask, in.shapes, n, L, true, batch, &err) == 0,
                  "%s", err.msg);
    for (int b = 0; b < n; b++) {
        const int hw = in.shapes[2 * b] * in.shapes[2 * b + 1];
        int32_t *mask1 = malloc((size_t)hw * sizeof *mask1);
        for (int t = 0; t < hw; t++)
            mask1[t] = 1;
        ck_assert_msg(siglip_embed_naflex(m, in.patches + (size_t)b * L * K, mask1, in.shapes + 2 * b,
                                          1, hw, true, one, &err) == 0, "%s", err.msg);
        double d = test_max_abs_diff(one, batch + (size_t)b * D, (size_t)D);
        ck_assert_msg(d <= 1e-6, "image %d alone vs in the padded batch: %g", b, d);
        free(mask1);
    }
    /* padding the whole batch to its largest image instead of bucketing */
    float *padded = malloc((size_t)n * D * sizeof *padded);
    siglip_naflex_set_padding(m, true);
    ck_assert_msg(siglip_embed_naflex(m, in.patches, in.mask, in.shapes, n, L, true, padded, &err) == 0,
                  "%s", err.msg);
    siglip_naflex_set_padding(m, false);
    ck_assert_msg(test_max_abs_diff(padded, batch, (size_t)n * D) <= 1e-6, "padded vs bucketed");
    free(padded);
    /* garbage in every padded row */
    float *dirty = malloc((size_t)n * L * K * sizeof *dirty);
    memcpy(dirty, in.patches, (size_t)n * L * K * sizeof *dirty);
    int n_dirty = 0;
    for (int b = 0; b < n; b++)
        for (int t = 0; t < L; t++)
            if (!in.mask[b * L + t])
                for (int k = 0; k < K; k++, n_dirty++)
                    dirty[((size_t)b * L + t) * K + k] = k % 3 == 0 ? NAN : (k % 3 == 1 ? 1e30f : -INFINITY);
    ck_assert_int_gt(n_dirty, 0);
    float *again = malloc((size_t)n * D * sizeof *again);
    ck_assert_msg(siglip_embed_naflex(m, dirty, in.mask, in.shapes, n, L, true, again, &err) == 0,
                  "%s", err.msg);
    ck_assert(memcmp(again, batch, (size_t)n * D * sizeof *again) == 0);
    free(dirty), free(again), free(batch), free(one);
    siglip_free(m);
    prism_backend_destroy(be);
    inputs_close(&in);
}
END_TEST

/* A model loaded for large images (max_patches above num_patches) keeps its
 * activations at max_batch × num_patches rows and runs fewer images per
 * chunk: tiny_a (num_patches 16) at max_batch 3 holds 48 rows, so, padded
 * in call order, images of 15, 16 and 9 rows share a chunk and those of 12
 * and 25 cannot (2 × 25 > 48). Every result still equals transformers'. */
START_TEST(test_row_budget)
{
    char dir[4096];
    test_data_path(dir, sizeof dir, "siglip2_tiny_a");
    naflex_inputs in;
    inputs_open(&in, "siglip2_tiny_a");
    prism_backend *cpu = prism_cpu_backend_create(2, false);
    prism_backend *be = prism_profile_backend_create(cpu);
    prism_error err = {0};
    siglip_model *m = NULL;
    /* loaded for the default size first: what its activations cost */
    ck_assert_msg(siglip_load_ex(&m, dir, be, 3, 0, &err) == 0, "%s", err.msg);
    const size_t base = prism_profile_alloc_bytes(be);
    siglip_free(m);
    ck_assert_msg(siglip_load_ex(&m, dir, be, 3, in.L, &err) == 0, "%s", err.msg);
    ck_assert_int_gt(in.L, siglip_get_config(m)->vision.num_patches);
    /* the same again: 28-row images cost no larger activations */
    ck_assert_uint_eq(prism_profile_alloc_bytes(be), 2 * base);
    const int n = in.n, D = siglip_embed_dim(m);
    float *got = malloc((size_t)n * D * sizeof *got);
    float *want = test_golden_f32(&in.g, "image_pooled", NULL);
    for (int pad = 0; pad < 2; pad++) {
        siglip_naflex_set_padding(m, pad);
        ck_assert_msg(siglip_embed_naflex(m, in.patches, in.mask, in.shapes, n, in.L, false, got,
                                          &err) == 0, "%s", err.msg);
        double d = max_rel_row_diff(got, want, n, D);
        ck_assert_msg(d <= 1e-5, "pad %d: image_pooled diff %g", pad, d);
    }
    free(got), free(want);
    siglip_free(m);
    prism_backend_destroy(be);
    prism_backend_destroy(cpu);
    inputs_close(&in);
}
END_TEST

/* Input checks name the offending input; a NaFlex model refuses fixed-size
 * pixels and a fixed-size model refuses patches. */
START_TEST(test_naflex_input_checks)
{
    char dir[4096];
    test_data_path(dir, sizeof dir, "siglip2_tiny_a");
    naflex_inputs in;
    inputs_open(&in, "siglip2_tiny_a");
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load(&m, dir, be, 2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(siglip_max_patches(m), 16); /* vision_config.num_patches */
    ck_assert_int_eq(siglip_patch_size(m), 4);
    const int D = siglip_embed_dim(m);
    float *out = malloc((size_t)in.n * D * sizeof *out);
    /* the golden batch has 28 rows per image: more than this load's 16 */
    ck_assert_int_eq(siglip_embed_naflex(m, in.patches, in.mask, in.shapes, 1, in.L, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "28 patches"), "%s", err.msg);
    int32_t shapes[2] = {3, 6}, mask[16] = {1, 1, 1};
    ck_assert_int_eq(siglip_embed_naflex(m, in.patches, mask, shapes, 1, 16, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "spatial_shapes[0] = (3, 6)"), "%s", err.msg);
    shapes[1] = 5;
    memset(mask, 0, sizeof mask);
    ck_assert_int_eq(siglip_embed_naflex(m, in.patches, mask, shapes, 1, 16, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "pixel_attention_mask[0]"), "%s", err.msg);
    mask[0] = 1;
    ck_assert_int_eq(siglip_embed_naflex(m, in.patches, mask, shapes, 1, 16, true, out, &err), 0);
    ck_assert_int_eq(siglip_embed_images(m, in.patches, 1, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "siglip_embed_naflex"), "%s", err.msg);
    int32_t ids[16] = {5, 1}, tmask[16] = {0};
    ck_assert_int_eq(siglip_embed_texts_masked(m, ids, tmask, 1, 16, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "attention_mask[0]"), "%s", err.msg);
    siglip_free(m);

    test_data_path(dir, sizeof dir, "siglip_tiny_a");
    ck_assert_msg(siglip_load(&m, dir, be, 2, &err) == 0, "%s", err.msg);
    ck_assert(!siglip_is_naflex(m));
    ck_assert_int_eq(siglip_max_patches(m), 0);
    ck_assert_int_eq(siglip_embed_naflex(m, in.patches, mask, shapes, 1, 16, true, out, &err), -1);
    ck_assert_msg(strstr(err.msg, "siglip_embed_images"), "%s", err.msg);
    siglip_free(m);
    free(out);
    prism_backend_destroy(be);
    inputs_close(&in);
}
END_TEST

/* Published configs: google/siglip2-base-patch16-naflex (siglip2) and a
 * FixRes SigLIP 2 (siglip, Gemma vocabulary) parse with transformers'
 * defaults filled in; a non-square num_patches is refused by key. */
START_TEST(test_configs)
{
    prism_error err = {0};
    siglip_config c;
    const char *naflex = "{\"architectures\": [\"Siglip2Model\"], \"model_type\": \"siglip2\","
                         " \"initializer_factor\": 1.0,"
                         " \"text_config\": {\"model_type\": \"siglip2_text_model\","
                         " \"vocab_size\": 256000},"
                         " \"vision_config\": {\"model_type\": \"siglip2_vision_model\","
                         " \"num_patches\": 256}}";
    ck_assert_msg(siglip_config_parse(&c, naflex, "config.json", &err) == 0, "%s", err.msg);
    ck_assert(c.vision.naflex);
    ck_assert_int_eq(c.vision.num_patches, 256);
    ck_assert_int_eq(c.vision.patch_size, 16);
    ck_assert_int_eq(c.vision.image_size, 0);
    ck_assert_int_eq(c.vision.t.hidden_size, 768);
    ck_assert_int_eq(c.text.vocab_size, 256000);
    ck_assert_int_eq(c.text.max_position_embeddings, 64);

    const char *fixres = "{\"model_type\": \"siglip\", \"text_config\": {\"vocab_size\": 256000},"
                         " \"vision_config\": {\"image_size\": 384, \"patch_size\": 16}}";
    ck_assert_msg(siglip_config_parse(&c, fixres, "config.json", &err) == 0, "%s", err.msg);
    ck_assert(!c.vision.naflex);
    ck_assert_int_eq(c.vision.num_patches, 576);
    ck_assert_int_eq(c.text.vocab_size, 256000);

    const char *bad = "{\"model_type\": \"siglip2\", \"vision_config\": {\"num_patches\": 200}}";
    ck_assert_int_eq(siglip_config_parse(&c, bad, "config.json", &err), -1);
    ck_assert_msg(strstr(err.msg, "config.json: vision_config.num_patches 200 is not a square"),
                  "%s", err.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("siglip2_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_resize_vs_torch);
    tcase_add_test(tc, test_aa_weights);
    tcase_add_loop_test(tc, test_golden, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_pos_resized);
    tcase_add_loop_test(tc, test_padding_isolation, 0, 2);
    tcase_add_test(tc, test_row_budget);
    tcase_add_test(tc, test_naflex_input_checks);
    tcase_add_test(tc, test_configs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
