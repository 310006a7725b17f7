/* test_t5.c - T5/pali3 units: relative-position buckets against
 * transformers' table, T5Config defaults and derived values, pali3 config
 * errors, load failures that name file and tensor, prompt templates and
 * request validation.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "json.h"
#include "pali.h"
#include "t5_config.h"
#include "test_util.h"

/* ---- buckets ---------------------------------------------------------------------- */

/* transformers' _relative_position_bucket for rel -600..600 (dumped by
 * make_pali3_goldens.py), for 4 (num_buckets, max_distance) pairs, both
 * directions: exact equality over the whole range, where float rounding of
 * the log formula decides bucket edges. */
START_TEST(test_buckets_match_transformers)
{
    static const int cfg[][2] = {{32, 128}, {16, 20}, {64, 256}, {8, 16}};
    char path[4096];
    prism_error err;
    st_file f;
    test_data_path(path, sizeof path, "t5_buckets.safetensors");
    ck_assert_msg(st_file_open(&f, path, &err) == 0, "%s", err.msg);
    int checked = 0;
    for (int c = 0; c < 4; c++)
        for (int bi = 0; bi < 2; bi++) {
            char name[96];
            snprintf(name, sizeof name, "buckets_%d_%d_%s", cfg[c][0], cfg[c][1],
                     bi ? "bidirectional" : "causal");
            const st_tensor *t = st_file_find(&f, name);
            ck_assert_msg(t && t->dtype == PRISM_DT_I32 && t->numel == 1201, "%s", name);
            for (int i = 0; i < 1201; i++) {
                int32_t want;
                memcpy(&want, t->data + 4 * i, 4);
                int got = t5_relative_bucket(i - 600, bi, cfg[c][0], cfg[c][1]);
                ck_assert_msg(got == want, "%s: rel %d: bucket %d, transformers %d", name,
                              i - 600, got, want);
                checked++;
            }
        }
    ck_assert_int_eq(checked, 8 * 1201);
    st_file_close(&f);
}
END_TEST

/* ---- T5Config ---------------------------------------------------------------------- */

START_TEST(test_t5_config_defaults)
{
    t5_config c;
    prism_error err = {0};
    ck_assert_msg(t5_config_parse(&c, "{}", "t", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(c.vocab_size, 32128);
    ck_assert_int_eq(c.d_model, 512);
    ck_assert_int_eq(c.d_kv, 64);
    ck_assert_int_eq(c.d_ff, 2048);
    ck_assert_int_eq(c.num_layers, 6);
    ck_assert_int_eq(c.num_decoder_layers, 6);
    ck_assert_int_eq(c.num_heads, 8);
    ck_assert_int_eq(c.relative_attention_num_buckets, 32);
    ck_assert_int_eq(c.relative_attention_max_distance, 128);
    ck_assert(c.layer_norm_epsilon == 1e-6f);
    ck_assert(c.dense_act == PRISM_ACT_RELU && !c.is_gated_act);
    ck_assert(c.scale_decoder_outputs); /* tie_word_embeddings defaults to true */
    ck_assert_int_eq(c.pad_token_id, 0);
    ck_assert_int_eq(c.eos_token_id, 1);
    ck_assert_int_eq(c.decoder_start_token_id, 0);

    /* flan-T5-base as the hub writes it */
    ck_assert_msg(t5_config_parse(&c, "{\"model_type\": \"t5\", \"d_ff\": 2048, \"d_kv\": 64, "
                                  "\"d_model\": 768, \"num_heads\": 12, \"num_layers\": 12, "
                                  "\"feed_forward_proj\": \"gated-gelu\", "
                                  "\"tie_word_embeddings\": false, \"eos_token_id\": 1, "
                                  "\"decoder_start_token_id\": 0, \"pad_token_id\": 0}",
                                  "flan", &err) == 0, "%s", err.msg);
    ck_assert(c.dense_act == PRISM_ACT_GELU_TANH && c.is_gated_act); /* gelu_new */
    ck_assert(!c.scale_decoder_outputs);
    ck_assert_int_eq(c.num_decoder_layers, 12);

    /* what transformers 5 writes when it saves: tie true + scale key, the key wins */
    ck_assert(t5_config_parse(&c, "{\"tie_word_embeddings\": true, \"scale_decoder_outputs\": "
                                  "false}", "t", &err) == 0 && !c.scale_decoder_outputs);
    ck_assert(t5_config_parse(&c, "{\"tie_word_embeddings\": false, \"scale_decoder_outputs\": "
                                  "true}", "t", &err) == 0 && c.scale_decoder_outputs);
    ck_assert(t5_config_parse(&c, "{\"feed_forward_proj\": \"gated-silu\", "
                                  "\"num_decoder_layers\": 3, \"eos_token_id\": [1]}", "t",
                              &err) == 0);
    ck_assert(c.dense_act == PRISM_ACT_SILU && c.is_gated_act && c.num_decoder_layers == 3);
    ck_assert(t5_config_parse(&c, "{\"feed_forward_proj\": \"gelu\"}", "t", &err) == 0 &&
              c.dense_act == PRISM_ACT_GELU_ERF && !c.is_gated_act); /* ACT2FN["gelu"] */
    ck_assert(t5_config_parse(&c, "{\"hidden_size\": 64, \"num_attention_heads\": 2, "
                                  "\"pad_token_id\": 5}", "t", &err) == 0);
    ck_assert(c.d_model == 64 && c.num_heads == 2 && c.decoder_start_token_id == 5);
}
END_TEST

START_TEST(test_t5_config_errors)
{
    static const char *const bad[][2] = {
        {"{\"feed_forward_proj\": \"fancy-gelu\"}", "feed_forward_proj"},
        {"{\"feed_forward_proj\": \"gated-gelu-x\"}", "feed_forward_proj"},
        {"{\"feed_forward_proj\": \"gated-tanh\"}", "tanh"},
        {"{\"model_type\": \"umt5\"}", "model_type"},
        {"{\"d_model\": 0}", "d_model"},
        {"{\"d_kv\": 1.5}", "d_kv"},
        {"{\"eos_token_id\": [1, 2]}", "eos_token_id"},
        {"{\"vocab_size\": 10, \"eos_token_id\": 12}", "vocab_size"},
        {"{\"tie_word_embeddings\": \"no\"}", "tie_word_embeddings"},
        {"{\"layer_norm_epsilon\": -1}", "layer_norm_epsilon"},
        {"[1]", "object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t5_config c;
        prism_error err = {0};
        ck_assert_msg(t5_config_parse(&c, bad[i][0], "cfg.json", &err) == -1, "accepted %s",
                      bad[i][0]);
        ck_assert_msg(strstr(err.msg, bad[i][1]) && strstr(err.msg, "cfg.json"),
                      "%s: message \"%s\" lacks \"%s\"", bad[i][0], err.msg, bad[i][1]);
    }
}
END_TEST

/* ---- pali3 config and loading ----------------------------------------------------------- */

START_TEST(test_pali_config)
{
    pali_config c;
    prism_error err = {0};
    ck_assert_msg(pali_config_parse(&c, "{\"model_type\": \"pali3\", \"vision_config\": {}, "
                                    "\"text_config\": {}}", "p", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(c.image_token_count, 196); /* SigLIP-B/16-224 defaults */
    ck_assert_str_eq(c.caption_template, "caption {lang}");
    ck_assert_str_eq(c.vqa_template, "answer {lang} {question}");
    ck_assert_int_eq(c.text.d_model, 512);
    static const char *const bad[][2] = {
        {"{\"model_type\": \"siglip\", \"vision_config\": {}, \"text_config\": {}}", "pali3"},
        {"{\"model_type\": \"pali3\", \"vision_config\": {}}", "text_config"},
        {"{\"model_type\": \"pali3\", \"vision_config\": {}, \"text_config\": {}, "
         "\"image_token_count\": 197}", "image_token_count"},
        {"{\"model_type\": \"pali3\", \"vision_config\": {\"hidden_act\": \"x\"}, "
         "\"text_config\": {}}", "vision_config.hidden_act"},
        {"{\"model_type\": \"pali3\", \"vision_config\": {}, \"text_config\": "
         "{\"feed_forward_proj\": \"no-relu\"}}", "text_config.feed_forward_proj"},
        {"{\"model_type\": \"pali3\", \"vision_config\": {}, \"text_config\": {}, "
         "\"prompt_templates\": {\"caption\": 3}}", "prompt_templates.caption"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(pali_config_parse(&c, bad[i][0], "p.json", &err) == -1, "accepted %s",
                      bad[i][0]);
        ck_assert_msg(strstr(err.msg, bad[i][1]), "message \"%s\" lacks \"%s\"", err.msg,
                      bad[i][1]);
    }
}
END_TEST

static void expect_load_failure(const char *dir, const char *const *needles)
{
    const char *what = needles[0];
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    pali_model *m = NULL;
    ck_assert_msg(pali_load(&m, dir, be, NULL, &err) == -1 && !m, "damaged checkpoint (%s) loaded",
                  what);
    for (const char *const *n = needles; *n; n++)
        ck_assert_msg(strstr(err.msg, *n), "message \"%s\" lacks \"%s\"", err.msg, *n);
    prism_backend_destroy(be);
}
#define EXPECT(dir, ...) expect_load_failure(dir, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_load_failures)
{
    static const char *const drops[] = {
        "language_model.lm_head.weight", /* absent: tied, loads (checked below) */
        "language_model.decoder.block.1.layer.1.EncDecAttention.k.weight",
        "language_model.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "language_model.decoder.block.0.layer.2.DenseReluDense.wi_1.weight",
        "language_model.decoder.final_layer_norm.weight",
        "multi_modal_projector.linear.bias",
        "vision_model.post_layernorm.weight",
        "language_model.shared.weight",
    };
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        char *dir = test_copy_model("pali3_tiny_a");
        test_rewrite_safetensors(dir, &(test_st_edit){.drop = drops[i]});
        if (i == 0) {
            prism_backend *be = prism_cpu_backend_create(1, false);
            prism_error err = {0};
            pali_model *m = NULL;
            ck_assert_msg(pali_load(&m, dir, be, NULL, &err) == 0, "%s", err.msg);
            ck_assert(pali_get_info(m)->lm_head_tied);
            pali_free(m);
            prism_backend_destroy(be);
        } else {
            EXPECT(dir, drops[i], "model.safetensors");
        }
        test_remove_dir(dir);
    }
    /* wrong shapes: a projector for another width, a bias table for other heads */
    char *dir = test_copy_model("pali3_tiny_a");
    test_rewrite_safetensors(dir, &(test_st_edit){.reshape = "multi_modal_projector.linear.weight",
                                                  .ndim = 2, .shape = {32, 15},
                                                  .resize_data = true});
    EXPECT(dir, "multi_modal_projector.linear.weight", "model.safetensors", "15");
    test_remove_dir(dir);
    dir = test_copy_model("pali3_tiny_a");
    test_rewrite_safetensors(
        dir, &(test_st_edit){.reshape = "language_model.decoder.block.0.layer.0.SelfAttention."
                                        "relative_attention_bias.weight",
                             .ndim = 2, .shape = {32, 5}, .resize_data = true});
    EXPECT(dir, "relative_attention_bias", "model.safetensors");
    test_remove_dir(dir);
    /* a config that does not match the weights */
    dir = test_copy_model("pali3_tiny_a");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    char *cfg = test_read_file(path, &n);
    char *at = strstr(cfg, "\"d_kv\": 6");
    ck_assert_ptr_nonnull(at);
    at[8] = '8';
    ck_assert_int_eq(test_write_file(path, cfg, n), 0);
    EXPECT(dir, "SelfAttention", "model.safetensors");
    free(cfg);
    test_remove_dir(dir);
    /* sharded: a tensor whose shard is missing */
    dir = test_copy_model("pali3_tiny_b");
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    unlink(path);
    EXPECT(dir, "model-00002-of-00002.safetensors");
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_prompts_and_requests)
{
    char dir[4096];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    pali_model *m = NULL;
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_seqs = 4;
    lim.max_beams = 4;
    ck_assert_msg(pali_load(&m, dir, be, &lim, &err) == 0, "%s", err.msg);
    char buf[64];
    ck_assert_int_eq(pali_prompt_text(m, PALI_TASK_CAPTION, "de", NULL, buf, sizeof buf, &err), 0);
    ck_assert_str_eq(buf, "caption de");
    ck_assert_int_eq(pali_prompt_text(m, PALI_TASK_VQA, "en", "what is {lang}?", buf, sizeof buf,
                                      &err), 0);
    ck_assert_str_eq(buf, "answer en what is {lang}?"); /* no re-expansion */
    ck_assert_int_eq(pali_prompt_text(m, PALI_TASK_VQA, "en", NULL, buf, sizeof buf, &err), -1);
    ck_assert_int_eq(pali_prompt_text(m, PALI_TASK_VQA, "en", "a very long question indeed, "
                                      "longer than the buffer", buf, 20, &err), -1);

    const pali_config *c = pali_get_config(m);
    const size_t per = (size_t)3 * c->vision.image_size * c->vision.image_size;
    float *px = calloc(per, sizeof *px);
    int32_t ids[3] = {10, 11, 1};
    pali_gen *g;
    ck_assert_int_eq(pali_gen_create(&g, m, &err), 0);
    pali_request ok = {.pixels = px, .prompt_ids = ids, .n_prompt = 3, .max_new_tokens = 5,
                       .num_beams = 1, .length_penalty = 1};
    struct {
        pali_request r;
        const char *needle;
    } bad[] = {
        {ok, NULL}, {ok, NULL}, {ok, NULL}, {ok, NULL}, {ok, NULL}, {ok, NULL},
    };
    bad[0].r.pixels = NULL, bad[0].needle = "image";
    bad[1].r.n_prompt = 0, bad[1].needle = "prompt";
    bad[2].r.max_new_tokens = 129, bad[2].needle = "max_new_tokens";
    bad[3].r.num_beams = 5, bad[3].needle = "num_beams";
    bad[4].r.prompt_ids = (const int32_t[]){256}, bad[4].r.n_prompt = 1,
    bad[4].needle = "vocabulary";
    bad[5].r.num_beams = 3, bad[5].needle = NULL; /* fits alone ... */
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(pali_gen_start(g, &bad[i].r, 1, NULL, &err), -1);
        ck_assert_msg(strstr(err.msg, bad[i].needle), "\"%s\" lacks %s", err.msg, bad[i].needle);
    }
    /* ... but not with a greedy request and another beam request: 1 + 3 + 3 > 4 */
    pali_request two[3] = {ok, bad[5].r, bad[5].r};
    ck_assert_int_eq(pali_gen_start(g, two, 3, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "no room"), "%s", err.msg);
    ck_assert_int_eq(pali_gen_running(g), 0); /* all or none */
    int h[2];
    ck_assert_int_eq(pali_gen_start(g, two, 2, h, &err), 0);
    ck_assert_int_eq(pali_gen_free_seqs(g), 0);
    ck_assert_int_eq(pali_gen_step(g, &err), 0);
    ck_assert_int_eq(pali_gen_cancel(g, h[1]), 0);
    ck_assert_int_eq(pali_gen_cancel(g, h[1]), -1);
    pali_result r;
    ck_assert_int_eq(pali_gen_take(g, &r), 1);
    ck_assert_int_eq(r.handle, h[1]);
    ck_assert_int_eq(r.finish, PALI_FINISH_CANCELLED);
    pali_result_free(&r);
    ck_assert_int_eq(pali_gen_free_seqs(g), 3);
    pali_gen_free(g); /* frees a running request and unread results */
    free(px);
    pali_free(m);
    prism_backend_destroy(be);
}
END_TEST

/* Prompt tokenization (SentencePiece + </s>) and output decoding against
 * tools/reference's dump (tests/data/pali3_text.json). */
START_TEST(test_text)
{
    char dir[4096], path[4096], jerr[256];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    test_data_path(path, sizeof path, "pali3_text.json");
    json_value *doc = json_parse_file(path, jerr, sizeof jerr);
    ck_assert_msg(doc != NULL, "%s", jerr);
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    pali_model *m = NULL;
    ck_assert_msg(pali_load(&m, dir, be, NULL, &err) == 0, "%s", err.msg);
    ck_assert(pali_get_info(m)->has_tokenizer);
    const json_value *enc = json_get(doc, "encode"), *dec = json_get(doc, "decode");
    ck_assert(enc && dec && enc->count >= 5 && dec->count >= 5);
    int32_t ids[64];
    for (size_t i = 0; i < enc->count; i++) {
        const char *text = json_get(&enc->items[i], "text")->string;
        const json_value *want = json_get(&enc->items[i], "ids");
        int n = 0;
        ck_assert_msg(pali_tokenize(m, text, ids, 64, &n, &err) == 0, "%s", err.msg);
        ck_assert_msg(n == (int)want->count, "\"%s\": %d ids, want %zu", text, n, want->count);
        for (int t = 0; t < n; t++)
            ck_assert_msg(ids[t] == want->items[t].integer, "\"%s\": id %d is %d, want %lld",
                          text, t, ids[t], (long long)want->items[t].integer);
    }
    ck_assert_int_eq(pali_tokenize(m, "answer en what is the color of the cat?", ids, 5, NULL,
                                   &err), -1); /* over the limit */
    ck_assert_msg(strstr(err.msg, "limit"), "%s", err.msg);
    ck_assert_msg(!strstr(err.msg, "at least"), "a short prompt is counted exactly: %s", err.msg);
    /* a 16 MB prompt is refused from a prefix: its count is a lower bound */
    const size_t big = 16u << 20;
    char *huge = malloc(big + 1);
    ck_assert_ptr_nonnull(huge);
    static const char q[] = "answer en what is the color of the cat? ";
    for (size_t i = 0; i < big; i++)
        huge[i] = q[i % (sizeof q - 1)];
    huge[big] = '\0';
    int n_huge = 0;
    ck_assert_int_eq(pali_tokenize(m, huge, ids, 64, &n_huge, &err), -1);
    ck_assert_msg(strstr(err.msg, "at least") && strstr(err.msg, "the limit is 64"), "%s",
                  err.msg);
    /* a long prompt within the limit: a golden prompt with every space made
     * 4000 wide (the normaliser collapses whitespace) keeps its golden ids */
    bool found = false;
    for (size_t i = 0; i < enc->count; i++) {
        const char *text = json_get(&enc->items[i], "text")->string;
        const json_value *want = json_get(&enc->items[i], "ids");
        if (strcmp(text, "answer en what is the color of the cat?") != 0)
            continue;
        size_t w = 0;
        for (const char *c = text; *c; c++)
            for (int k = 0; k < (*c == ' ' ? 4000 : 1); k++)
                huge[w++] = *c;
        huge[w] = '\0';
        int n = 0;
        ck_assert_msg(pali_tokenize(m, huge, ids, 64, &n, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(n, (int)want->count);
        for (int t = 0; t < n; t++)
            ck_assert_int_eq(ids[t], want->items[t].integer);
        found = true;
    }
    ck_assert(found);
    free(huge);
    for (size_t i = 0; i < dec->count; i++) {
        const json_value *jids = json_get(&dec->items[i], "ids");
        const char *want = json_get(&dec->items[i], "text")->string;
        int n = (int)jids->count;
        for (int t = 0; t < n; t++)
            ids[t] = (int32_t)jids->items[t].integer;
        char *text = NULL;
        ck_assert_msg(pali_detokenize(m, ids, n, &text, &err) == 0, "%s", err.msg);
        ck_assert_msg(strcmp(text, want) == 0, "decode %zu: \"%s\", want \"%s\"", i, text, want);
        free(text);
    }
    /* specials are dropped: pad, </s>, <unk>, sentinels past the pieces */
    int32_t sp_ids[] = {0, 2, 200, 255, 1};
    char *text = NULL;
    ck_assert_int_eq(pali_detokenize(m, sp_ids, 5, &text, &err), 0);
    ck_assert_str_eq(text, "");
    free(text);
    pali_free(m);
    prism_backend_destroy(be);
    json_free(doc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("t5");
    TCase *tc = tcase_create("t5");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_buckets_match_transformers);
    tcase_add_test(tc, test_t5_config_defaults);
    tcase_add_test(tc, test_t5_config_errors);
    tcase_add_test(tc, test_pali_config);
    tcase_add_test(tc, test_load_failures);
    tcase_add_test(tc, test_prompts_and_requests);
    tcase_add_test(tc, test_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
