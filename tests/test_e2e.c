/* test_e2e.c - file bytes and strings → embeddings, against transformers'
 * processor + model (tools/reference/make_e2e_goldens.py).
 *
 * The checkpoint tests/data/siglip_tiny_e2e carries a real sentencepiece
 * model and a preprocessor_config.json; the images are files of Pillow's
 * test corpus kept in tests/data/pillow (JPEG, grey JPEG, EXIF-rotated JPEG, PNG with alpha, a
 * palette PNG with tRNS). Each step is compared: pixel_values (1e-6, the
 * image pipeline's own bound), input_ids (exact), embeddings (1e-5) and
 * logits (1e-4), the bounds of test_siglip_golden.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "image.h"
#include "json.h"
#include "siglip.h"
#include "test_util.h"
#include "tokenizer.h"

/* The golden file's __metadata__ entry KEY, a JSON list of strings. */
static json_value *golden_list(const char *path, const char *key)
{
    size_t n;
    char *buf = test_read_file(path, &n);
    ck_assert_ptr_nonnull(buf);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | (uint8_t)buf[i];
    char err[128];
    json_value *h = json_parse(buf + 8, (size_t)hl, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    const json_value *s = json_get(json_get(h, "__metadata__"), key);
    ck_assert(s && s->type == JSON_STRING);
    json_value *list = json_parse(s->string, s->length, err, sizeof err);
    ck_assert_msg(list && list->type == JSON_ARRAY, "%s", err);
    json_free(h);
    free(buf);
    return list;
}

START_TEST(test_files_and_strings_to_embeddings)
{
    char dir[4096], gpath[4096];
    test_data_path(dir, sizeof dir, "siglip_tiny_e2e");
    test_data_path(gpath, sizeof gpath, "siglip_tiny_e2e.golden.safetensors");
    prism_error err = {0};
    prism_backend *be = prism_cpu_backend_create(2, false);
    siglip_model *m = NULL;
    tok_tokenizer *tok = NULL;
    image_preproc pre;
    ck_assert_msg(siglip_load(&m, dir, be, 4, &err) == 0, "%s", err.msg);
    ck_assert_msg(tok_load(&tok, dir, &err) == 0, "%s", err.msg);
    ck_assert_msg(image_preproc_load(&pre, dir, &err) == 0, "%s", err.msg);
    const siglip_config *c = siglip_get_config(m);
    ck_assert_int_eq(pre.width, c->vision.image_size);

    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    json_value *images = golden_list(gpath, "images"), *texts = golden_list(gpath, "texts");
    const int nI = (int)images->count, nT = (int)texts->count, D = siglip_embed_dim(m);
    const int S = c->vision.image_size, T = c->text.max_position_embeddings;
    const size_t per = (size_t)3 * S * S;

    float *pixels = malloc((size_t)nI * per * sizeof *pixels);
    for (int i = 0; i < nI; i++) {
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", PRISM_TEST_IMAGES, images->items[i].string);
        size_t len;
        char *bytes = test_read_file(path, &len);
        ck_assert_msg(bytes != NULL, "cannot read %s", path);
        ck_assert_msg(image_to_pixel_values((const uint8_t *)bytes, len, &pre, 0,
                                            pixels + i * per, &err) == 0, "%s: %s", path, err.msg);
        free(bytes);
    }
    float *want_px = test_golden_f32(&g, "pixel_values", NULL);
    double d = test_max_abs_diff(pixels, want_px, (size_t)nI * per);
    ck_assert_msg(d <= 1e-6, "pixel_values differ by %g", d);

    int32_t *ids = malloc((size_t)nT * T * sizeof *ids);
    const st_tensor *want_ids = st_file_find(&g, "input_ids");
    for (int i = 0; i < nT; i++) {
        const json_value *s = &texts->items[i];
        ck_assert_msg(tok_siglip_encode(tok, s->string, s->length, ids + (size_t)i * T, T, NULL,
                                        &err) == 0, "%s", err.msg);
        for (int t = 0; t < T; t++) {
            int64_t w;
            memcpy(&w, want_ids->data + 8 * ((size_t)i * T + t), 8);
            ck_assert_msg(ids[(size_t)i * T + t] == w, "text %d \"%s\": id %d is %d, want %lld", i,
                          s->string, t, ids[(size_t)i * T + t], (long long)w);
        }
    }

    float *img = malloc((size_t)nI * D * sizeof *img), *txt = malloc((size_t)nT * D * sizeof *txt);
    float *logits = malloc((size_t)nI * nT * sizeof *logits);
    ck_assert_msg(siglip_embed_images(m, pixels, nI, true, img, &err) == 0, "%s", err.msg);
    ck_assert_msg(siglip_embed_texts(m, ids, nT, T, true, txt, &err) == 0, "%s", err.msg);
    siglip_logits(m, img, nI, txt, nT, logits);
    float *w_img = test_golden_f32(&g, "image_embeds", NULL);
    float *w_txt = test_golden_f32(&g, "text_embeds", NULL);
    float *w_log = test_golden_f32(&g, "logits_per_image", NULL);
    d = test_max_abs_diff(img, w_img, (size_t)nI * D);
    ck_assert_msg(d <= 1e-5, "image_embeds differ by %g", d);
    d = test_max_abs_diff(txt, w_txt, (size_t)nT * D);
    ck_assert_msg(d <= 1e-5, "text_embeds differ by %g", d);
    d = test_max_abs_diff(logits, w_log, (size_t)nI * nT);
    ck_assert_msg(d <= 1e-4, "logits differ by %g", d);

    free(pixels), free(want_px), free(ids), free(img), free(txt), free(logits);
    free(w_img), free(w_txt), free(w_log);
    json_free(images);
    json_free(texts);
    st_file_close(&g);
    tok_free(tok);
    siglip_free(m);
    prism_backend_destroy(be);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_files_and_strings_to_embeddings);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
