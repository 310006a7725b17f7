/* test_paligemma_golden.c - PaliGemma (Gemma and Gemma 2 decoders) against
 * transformers (tools/reference/make_paligemma_goldens.py).
 *
 * tests/data/paligemma_tiny_a (gemma, multi-query) and paligemma_tiny_b
 * (gemma2: grouped-query, soft-capping, a 6-position sliding window), hub
 * layout, BF16 weights; the tokenizer tests/data/tok_paligemma (Gemma BPE
 * with PaliGemma's <locNNNN>/<segNNN> pieces). For both models, on the
 * reference and the fast CPU backends:
 *   - pixel values of the image files (SiglipImageProcessor, bicubic):
 *     1e-6, the image pipeline's own bound (test_image);
 *   - the prompt ids PaliGemmaProcessor builds, from the prompt text with
 *     prism's Gemma tokenizer: exact;
 *   - the last prompt position's logits: 1e-4 absolute (logits of a few
 *     units; float32 with another summation order than torch, measured
 *     ~1e-6; the limit held for SigLIP logits);
 *   - greedy ids: exact (the goldens' smallest top-1/top-2 gap is 5e-3,
 *     far above that error);
 *   - the logits of every decode step of case 0: 1e-4 (what the KV cache,
 *     the rotary positions and, in tiny_b, the sliding window give);
 *   - GemmaTokenizer's ids and decoded text of 300 strings: exact.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "image.h"
#include "json.h"
#include "pali.h"
#include "paligemma.h"
#include "safetensors.h"
#include "test_util.h"
#include "tokenizer.h"

#define LOGIT_TOL 1e-4

static const char *const models[] = {"paligemma_tiny_a", "paligemma_tiny_b"};

/* The golden file's images through prism's image pipeline, checked against
 * its pixel_values_<i>: [images, C, S, S]. */
static float *golden_pixels(const st_file *g, const image_preproc *pre, const json_value *images,
                            size_t per)
{
    prism_error err = {0};
    float *px = malloc(images->count * per * sizeof *px);
    for (size_t i = 0; i < images->count; i++) {
        char path[4200], key[48];
        test_data_path(path, sizeof path, images->items[i].string);
        size_t len;
        char *data = test_read_file(path, &len);
        ck_assert_ptr_nonnull(data);
        ck_assert_msg(image_to_pixel_values((const uint8_t *)data, len, pre, (size_t)1 << 26,
                                            px + i * per, &err) == 0, "%s", err.msg);
        snprintf(key, sizeof key, "pixel_values_%zu", i);
        float *want = test_golden_f32(g, key, NULL);
        double d = test_max_abs_diff(px + i * per, want, per);
        ck_assert_msg(d <= 1e-6, "%s: pixel values diff %g", images->items[i].string, d);
        free(want);
        free(data);
    }
    return px;
}

START_TEST(test_generation)
{
    const char *name = models[_i / 2];
    const bool reference = _i % 2;
    char dir[4096], gpath[4200];
    test_data_path(dir, sizeof dir, name);
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    prism_error err = {0};
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    prism_backend *be = prism_cpu_backend_create(2, reference);
    paligemma_limits lim = {.max_text_tokens = 64, .max_new_tokens = 16, .n_slots = 1};
    paligemma_model *m = NULL;
    ck_assert_msg(paligemma_load(&m, dir, be, &lim, &err) == 0, "%s", err.msg);
    tok_tokenizer *tok = NULL;
    ck_assert_msg(tok_load_gemma(&tok, dir, &err) == 0, "%s", err.msg);
    const paligemma_config *c = paligemma_get_config(m);
    const int V = c->text.vocab_size, N = c->n_image_tokens;
    image_preproc pre;
    ck_assert_msg(image_preproc_load(&pre, dir, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(pre.width, c->vision.image_size);

    json_value *images = test_golden_meta(&g, "images"), *cases = test_golden_meta(&g, "cases");
    const size_t per = (size_t)3 * c->vision.image_size * c->vision.image_size;
    float *px = golden_pixels(&g, &pre, images, per);
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t ids[256], out[16];
    for (size_t k = 0; k < cases->count; k++) {
        const int img = (int)cases->items[k].items[0].integer;
        const char *prompt = cases->items[k].items[1].string;
        char key[48], text[512];
        /* the prompt ids as PaliGemmaProcessor builds them */
        for (int i = 0; i < N; i++)
            ids[i] = c->image_token_index;
        ids[N] = 2;
        snprintf(text, sizeof text, "%s\n", prompt);
        int nt = 0;
        ck_assert(tok_gemma_encode(tok, text, strlen(text), ids + N + 1, 200, &nt, &err) == 0);
        int nw;
        snprintf(key, sizeof key, "input_ids_%zu", k);
        int32_t *want_ids = test_golden_ids(&g, key, &nw);
        ck_assert_int_eq(N + 1 + nt, nw);
        ck_assert_msg(memcmp(ids, want_ids, (size_t)nw * sizeof *ids) == 0, "%s: prompt ids",
                      prompt);
        /* the prefix */
        ck_assert_msg(paligemma_prefill(m, 0, px + img * per, ids, nw, logits, &err) == 0, "%s",
                      err.msg);
        snprintf(key, sizeof key, "logits_%zu", k);
        float *want = test_golden_f32(&g, key, NULL);
        double d = test_max_abs_diff(logits, want, (size_t)V);
        ck_assert_msg(d <= LOGIT_TOL, "%s case %zu: prefix logits diff %g", name, k, d);
        free(want);
        /* decode steps against the teacher-forced pass */
        int ng;
        snprintf(key, sizeof key, "greedy_%zu", k);
        int32_t *greedy = test_golden_ids(&g, key, &ng);
        snprintf(key, sizeof key, "steps_%zu", k);
        if (st_file_find(&g, key)) {
            float *steps = test_golden_f32(&g, key, NULL);
            for (int t = 0; t + 1 < ng; t++) {
                ck_assert(paligemma_step(m, 0, nw + t, greedy[t], logits, &err) == 0);
                d = test_max_abs_diff(logits, steps + (size_t)t * V, (size_t)V);
                ck_assert_msg(d <= LOGIT_TOL, "%s case %zu step %d: logits diff %g", name, k, t, d);
            }
            free(steps);
        }
        /* greedy decoding */
        int n_out = 0;
        ck_assert_msg(paligemma_generate_greedy(m, px + img * per, ids, nw, ng, 1, out, &n_out,
                                                &err) == 0, "%s", err.msg);
        ck_assert_int_eq(n_out, ng);
        for (int t = 0; t < ng; t++)
            ck_assert_msg(out[t] == greedy[t], "%s case %zu: id %d is %d, want %d", name, k, t,
                          out[t], greedy[t]);
        free(greedy);
        free(want_ids);
    }
    /* an image-token count that does not match the model is refused */
    ids[0] = 5;
    ck_assert(paligemma_prefill(m, 0, px, ids, N + 3, logits, &err) != 0);
    ck_assert_msg(strstr(err.msg, "image tokens"), "%s", err.msg);
    free(logits), free(px);
    json_free(images), json_free(cases);
    tok_free(tok);
    paligemma_free(m);
    prism_backend_destroy(be);
    st_file_close(&g);
}
END_TEST

/* GemmaTokenizer (case kept, PaliGemma's pieces): ids and decoded text. */
START_TEST(test_tokenizer)
{
    char dir[4096], gpath[4200];
    test_data_path(dir, sizeof dir, "paligemma_tiny_a");
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    prism_error err = {0};
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    tok_tokenizer *tok = NULL;
    ck_assert_msg(tok_load_gemma(&tok, dir, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(tok_get_kind(tok), TOK_KIND_GEMMA);
    /* PaliGemmaProcessor's <image>, after the pieces (the config's image_token_index) */
    paligemma_config pc;
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    size_t clen;
    char *cjson = test_read_file(cpath, &clen);
    ck_assert_msg(paligemma_config_parse(&pc, cjson, clen, cpath, &err) == 0, "%s", err.msg);
    free(cjson);
    ck_assert(tok_add_token(tok, "<image>", pc.image_token_index, &err) == 0);
    json_value *cs = test_golden_meta(&g, "tok_cases");
    ck_assert_int_ge((int)cs->count, 300);
    int32_t ids[4096];
    for (size_t i = 0; i < cs->count; i++) {
        const json_value *s = &cs->items[i].items[0], *want = &cs->items[i].items[1];
        int n = 0;
        ck_assert_msg(tok_gemma_encode(tok, s->string, s->length, ids, 4096, &n, &err) == 0,
                      "%s", err.msg);
        ck_assert_msg(n == (int)want->count, "'%s': %d ids, want %zu", s->string, n, want->count);
        for (int k = 0; k < n; k++)
            ck_assert_msg(ids[k] == want->items[k].integer, "'%s': id %d", s->string, k);
        char *text = NULL;
        ck_assert(tok_gemma_decode(tok, ids, (size_t)n, true, &text, &err) == 0);
        ck_assert_msg(strcmp(text, cs->items[i].items[2].string) == 0, "'%s' decodes to '%s'",
                      s->string, text);
        free(text);
    }
    /* the generated texts, <loc> pieces included */
    json_value *dec = test_golden_meta(&g, "decoded");
    int n;
    int32_t *gr = test_golden_ids(&g, "greedy_0", &n);
    char *text = NULL;
    ck_assert(tok_gemma_decode(tok, gr, (size_t)n, true, &text, &err) == 0);
    ck_assert_str_eq(text, dec->items[0].string);
    free(text), free(gr);
    json_free(dec), json_free(cs);
    tok_free(tok);
    st_file_close(&g);
}
END_TEST

/* The batched generator the server runs (pali_gen through pali_load):
 * every case greedy and with 3 beams, all submitted together so that
 * greedy and beam requests of different lengths share decode steps and
 * beams copy prefix caches between slots; prompts tokenized by
 * pali_tokenize. Ids exact against transformers' generate() (greedy and
 * num_beams=3); a request's ids do not depend on its batch. */
START_TEST(test_batched)
{
    const char *name = models[_i / 2];
    const bool reference = _i % 2;
    char dir[4096], gpath[4200];
    test_data_path(dir, sizeof dir, name);
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    prism_error err = {0};
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    prism_backend *be = prism_cpu_backend_create(2, reference);
    pali_limits lim = {.max_batch = 4, .max_seqs = 16, .max_new_tokens = 16,
                       .max_prompt_tokens = 64, .max_beams = 4};
    pali_model *m = NULL;
    ck_assert_msg(pali_load(&m, dir, be, &lim, &err) == 0, "%s", err.msg);
    ck_assert(pali_get_info(m)->has_tokenizer);
    const pali_config *c = pali_get_config(m);
    const int N = c->image_token_count;
    image_preproc pre;
    ck_assert_msg(image_preproc_load(&pre, dir, &err) == 0, "%s", err.msg);
    json_value *images = test_golden_meta(&g, "images"), *cases = test_golden_meta(&g, "cases");
    const size_t per = (size_t)3 * c->vision.image_size * c->vision.image_size;
    float *px = golden_pixels(&g, &pre, images, per);
    const int nc = (int)cases->count;
    pali_request *reqs = calloc((size_t)2 * nc, sizeof *reqs);
    pali_result *res = calloc((size_t)2 * nc, sizeof *res);
    int32_t *ids = malloc((size_t)nc * 64 * sizeof *ids);
    int32_t *want[2 * nc];
    int n_want[2 * nc];
    for (int k = 0; k < nc; k++) {
        char key[48];
        int np = 0, nw;
        ck_assert_msg(pali_tokenize(m, cases->items[k].items[1].string, ids + k * 64, 64, &np,
                                    &err) == 0, "%s", err.msg);
        snprintf(key, sizeof key, "input_ids_%d", k);
        int32_t *wi = test_golden_ids(&g, key, &nw);
        ck_assert_int_eq(N + np, nw);
        ck_assert(memcmp(ids + k * 64, wi + N, (size_t)np * sizeof *ids) == 0);
        free(wi);
        snprintf(key, sizeof key, "greedy_%d", k);
        want[k] = test_golden_ids(&g, key, &n_want[k]);
        snprintf(key, sizeof key, "beam3_%d", k);
        want[nc + k] = test_golden_ids(&g, key, &n_want[nc + k]);
        const float *img = px + (size_t)cases->items[k].items[0].integer * per;
        /* greedy and beam requests interleaved */
        for (int b = 0; b < 2; b++)
            reqs[2 * k + b] = (pali_request){.pixels = img, .prompt_ids = ids + k * 64,
                                             .n_prompt = np, .max_new_tokens = 12,
                                             .num_beams = b ? 3 : 1, .length_penalty = 1.0f};
    }
    ck_assert_msg(pali_generate(m, reqs, 2 * nc, res, &err) == 0, "%s", err.msg);
    for (int k = 0; k < nc; k++)
        for (int b = 0; b < 2; b++) {
            const pali_result *r = &res[2 * k + b];
            const int w = b * nc + k;
            ck_assert_msg(r->n_ids == n_want[w], "%s case %d, %s: %d ids, want %d", name, k,
                          b ? "3 beams" : "greedy", r->n_ids, n_want[w]);
            for (int t = 0; t < r->n_ids; t++)
                ck_assert_msg(r->ids[t] == want[w][t], "%s case %d, %s: id %d is %d, want %d",
                              name, k, b ? "3 beams" : "greedy", t, r->ids[t], want[w][t]);
        }
    /* the text of greedy case 0, through pali_detokenize */
    json_value *dec = test_golden_meta(&g, "decoded");
    char *text = NULL;
    ck_assert_msg(pali_detokenize(m, res[0].ids, res[0].n_ids, &text, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(text, dec->items[0].string);
    free(text);
    /* a prompt that spells the image token is refused */
    int np;
    ck_assert(pali_tokenize(m, "caption <image> en", ids, 64, &np, &err) != 0);
    ck_assert_msg(strstr(err.msg, "image token"), "%s", err.msg);
    /* and a prompt over the limit */
    ck_assert(pali_tokenize(m, "answer en why is the sky blue and the grass so green", ids, 6,
                            &np, &err) != 0);
    ck_assert_msg(strstr(err.msg, "limit"), "%s", err.msg);
    for (int i = 0; i < 2 * nc; i++) {
        pali_result_free(&res[i]);
        free(want[i]);
    }
    free(reqs), free(res), free(ids), free(px);
    json_free(images), json_free(cases), json_free(dec);
    pali_free(m);
    prism_backend_destroy(be);
    st_file_close(&g);
}
END_TEST

/* A checkpoint whose configs disagree about the image tokens is refused at
 * load, the message naming the file and the key: text_config.
 * num_image_tokens and preprocessor_config.json's image_seq_length must
 * both be the tower's (image_size / patch_size)² (16 here). */
START_TEST(test_image_token_count_refused)
{
    static const struct {
        const char *file, *from, *to, *key;
    } edits[] = {
        {"config.json", "\"text_config\": {", "\"text_config\": {\"num_image_tokens\": 17, ",
         "num_image_tokens"},
        {"preprocessor_config.json", "\"image_seq_length\": 16", "\"image_seq_length\": 64",
         "image_seq_length"},
    };
    prism_backend *be = prism_cpu_backend_create(1, true);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *dir = test_copy_model("paligemma_tiny_a"), path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, edits[i].file);
        size_t n;
        char *text = test_read_file(path, &n);
        char *at = text ? strstr(text, edits[i].from) : NULL;
        ck_assert_msg(at != NULL, "%s has no '%s'", path, edits[i].from);
        size_t cap = n + strlen(edits[i].to) + 1, k = (size_t)(at - text);
        char *out = malloc(cap);
        memcpy(out, text, k);
        snprintf(out + k, cap - k, "%s%s", edits[i].to, at + strlen(edits[i].from));
        ck_assert_int_eq(test_write_file(path, out, strlen(out)), 0);
        pali_limits lim;
        pali_limits_default(&lim);
        pali_model *m = NULL;
        prism_error err = {0};
        ck_assert(pali_load(&m, dir, be, &lim, &err) != 0);
        ck_assert_msg(strstr(err.msg, edits[i].file) && strstr(err.msg, edits[i].key), "%s",
                      err.msg);
        free(text), free(out);
        test_remove_dir(dir);
    }
    prism_backend_destroy(be);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("paligemma_golden");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_generation, 0, 4);
    tcase_add_test(tc, test_tokenizer);
    tcase_add_loop_test(tc, test_batched, 0, 4);
    tcase_add_test(tc, test_image_token_count_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
