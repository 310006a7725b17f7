/* test_loader.c - loading checkpoints: failures are errors that name the
 * file and the tensor (or config key), never crashes; defaults equal
 * transformers'.
 *
 * Each failure case copies a good tiny checkpoint (tests/data/siglip_tiny_a,
 * or the sharded siglip_tiny_b) to a temporary directory, damages one thing,
 * and checks siglip_load's message. The Check fork mode plus the sanitizer
 * build turn any crash or leak into a failure. Non-finite weights are
 * written into a copy in place (set_value) and refused by every family.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "pali.h"
#include "siglip.h"
#include "test_util.h"

/* Loads dir and requires failure with every one of the given substrings in
 * the message (NULL-terminated list). */
/* Loading dir (a SigLIP checkpoint, or a pali3 one) fails with a message
 * that holds every needle. */
static void expect_load_failure(const char *dir, bool pali, const char *const *needles)
{
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    siglip_model *sm = NULL;
    pali_model *pm = NULL;
    int rc = pali ? pali_load(&pm, dir, be, NULL, &err) : siglip_load(&sm, dir, be, 2, &err);
    ck_assert_msg(rc == -1 && sm == NULL && pm == NULL, "load of a damaged checkpoint succeeded");
    for (const char *const *n = needles; *n; n++)
        ck_assert_msg(strstr(err.msg, *n) != NULL, "message \"%s\" lacks \"%s\"", err.msg, *n);
    prism_backend_destroy(be);
}

#define EXPECT(dir, ...) expect_load_failure(dir, false, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_good_checkpoints_load)
{
    const char *names[] = {"siglip_tiny_a", "siglip_tiny_b", "siglip_tiny_c"};
    for (int i = 0; i < 3; i++) {
        char dir[4096];
        test_data_path(dir, sizeof dir, names[i]);
        prism_backend *be = prism_cpu_backend_create(1, false);
        prism_error err;
        siglip_model *m = NULL;
        ck_assert_msg(siglip_load(&m, dir, be, 2, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(siglip_get_info(m)->n_unused, 0);
        siglip_free(m);
        prism_backend_destroy(be);
    }
}
END_TEST

START_TEST(test_missing_tensor)
{
    char *dir = test_copy_model("siglip_tiny_a");
    test_rewrite_safetensors(dir, &(test_st_edit){.drop = "vision_model.post_layernorm.bias"});
    EXPECT(dir, "model.safetensors", "'vision_model.post_layernorm.bias'", "missing");
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_wrong_shape)
{
    char *dir = test_copy_model("siglip_tiny_a");
    const char *t = "vision_model.encoder.layers.1.mlp.fc1.weight"; /* [64, 32] */
    test_rewrite_safetensors(dir, &(test_st_edit){.reshape = t, .ndim = 2, .shape = {32, 64}});
    EXPECT(dir, "model.safetensors", t, "[32, 64]", "[64, 32]");
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_wrong_rank)
{
    char *dir = test_copy_model("siglip_tiny_a");
    const char *t = "text_model.embeddings.position_embedding.weight"; /* [64, 32] */
    test_rewrite_safetensors(dir, &(test_st_edit){.reshape = t, .ndim = 3, .shape = {64, 2, 16}});
    EXPECT(dir, "model.safetensors", t, "[64, 2, 16]");
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_bad_dtypes)
{
    char *dir = test_copy_model("siglip_tiny_a");
    test_rewrite_safetensors(dir, &(test_st_edit){.retype = "logit_bias", .dtype = "I32"});
    EXPECT(dir, "model.safetensors", "'logit_bias'", "I32", "only F32, F16 and BF16");
    test_rewrite_safetensors(dir, &(test_st_edit){.retype = "logit_scale", .dtype = "Q4"});
    EXPECT(dir, "model.safetensors", "'logit_scale'", "unknown dtype 'Q4'");
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_truncated_file)
{
    char *dir = test_copy_model("siglip_tiny_a");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    char *buf = test_read_file(path, &n);
    /* cut inside the data: the last tensors' ranges leave the file */
    ck_assert_int_eq(truncate(path, (off_t)(n * 7 / 10)), 0);
    EXPECT(dir, "model.safetensors", "outside", "truncated");
    /* cut inside the header */
    ck_assert_int_eq(truncate(path, 100), 0);
    EXPECT(dir, "model.safetensors", "header length", "exceeds the file");
    /* shorter than the length prefix */
    ck_assert_int_eq(truncate(path, 5), 0);
    EXPECT(dir, "model.safetensors", "too short");
    ck_assert_int_eq(truncate(path, 0), 0);
    EXPECT(dir, "model.safetensors", "too short");
    free(buf);
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_malformed_header)
{
    char *dir = test_copy_model("siglip_tiny_a");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *headers[] = {
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]",   /* unclosed */
        "[1, 2, 3]",                                                           /* not an object */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}",                        /* no offsets */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", /* negative */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}",  /* size */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}",  /* reversed */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
        " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",  /* duplicate */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 4]}}",
        "\xff\xfe garbage",
    };
    const char *needles[] = {"malformed JSON header", "not an object", "malformed header entry",
                             "non-integer or negative", "occupies 4 bytes but", "outside",
                             "appears twice", "overflows", "malformed JSON header"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        size_t hl = strlen(headers[i]);
        uint8_t file[512] = {0};
        for (int b = 0; b < 8; b++)
            file[b] = (uint8_t)((uint64_t)hl >> (8 * b));
        memcpy(file + 8, headers[i], hl);
        ck_assert_int_eq(test_write_file(path, file, 8 + hl + 4), 0);
        prism_error err = {0};
        st_file f;
        ck_assert_int_eq(st_file_open(&f, path, &err), -1);
        ck_assert_msg(strstr(err.msg, needles[i]) && strstr(err.msg, "model.safetensors"),
                      "header %zu: message \"%s\" lacks \"%s\"", i, err.msg, needles[i]);
        EXPECT(dir, "model.safetensors");
    }
    test_remove_dir(dir);
}
END_TEST

START_TEST(test_no_weights)
{
    char *dir = test_copy_model("siglip_tiny_a");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    EXPECT(dir, "no model.safetensors or model.safetensors.index.json");
    test_remove_dir(dir);
}
END_TEST

static void write_config(const char *dir, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(test_write_file(path, text, strlen(text)), 0);
}

START_TEST(test_bad_config)
{
    char *dir = test_copy_model("siglip_tiny_a");
    write_config(dir, "{\"model_type\": \"siglip\", ");
    EXPECT(dir, "config.json", "malformed JSON");
    write_config(dir, "{\"model_type\": \"clip\"}");
    EXPECT(dir, "config.json", "model_type must be \"siglip\"", "clip");
    write_config(dir, "{\"model_type\": \"siglip\", \"vision_config\": {\"hidden_size\": \"32\"}}");
    EXPECT(dir, "config.json", "vision_config.hidden_size must be an integer");
    write_config(dir, "{\"model_type\": \"siglip\", \"text_config\": {\"hidden_size\": 32, "
                      "\"num_attention_heads\": 5}, \"vision_config\": {\"hidden_size\": 32}}");
    EXPECT(dir, "config.json", "text_config.hidden_size 32 is not divisible by num_attention_heads 5");
    write_config(dir, "{\"model_type\": \"siglip\", \"vision_config\": {\"hidden_act\": \"quick_gelu\"}}");
    EXPECT(dir, "config.json", "vision_config.hidden_act", "quick_gelu");
    write_config(dir, "{\"model_type\": \"siglip\", \"vision_config\": {\"patch_size\": 0}}");
    EXPECT(dir, "config.json", "vision_config.patch_size");
    write_config(dir, "{\"model_type\": \"siglip\", \"text_config\": [1]}");
    EXPECT(dir, "config.json", "must be objects");
    write_config(dir, "{\"model_type\": \"siglip\", \"text_config\": {\"projection_size\": 16}}");
    EXPECT(dir, "config.json", "projection_size 16 differs from vision_config.hidden_size 768");
    /* a config that is valid but describes another model: the tensors disagree */
    write_config(dir, "{\"model_type\": \"siglip\"}");
    EXPECT(dir, "model.safetensors", "vision_model.embeddings.patch_embedding.weight", "[768, 3, 16, 16]");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    EXPECT(dir, "config.json", "cannot open");
    test_remove_dir(dir);
}
END_TEST

/* transformers' SiglipTextConfig / SiglipVisionConfig defaults (the
 * google/siglip-base-patch16-224 architecture), as in its
 * configuration_siglip.py: the values a hub file may omit. */
START_TEST(test_config_defaults)
{
    siglip_config c;
    prism_error err;
    ck_assert_int_eq(siglip_config_parse(&c, "{\"model_type\": \"siglip\"}", "t", &err), 0);
    const siglip_tower_config *towers[] = {&c.text.t, &c.vision.t};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(towers[i]->hidden_size, 768);
        ck_assert_int_eq(towers[i]->intermediate_size, 3072);
        ck_assert_int_eq(towers[i]->num_hidden_layers, 12);
        ck_assert_int_eq(towers[i]->num_attention_heads, 12);
        ck_assert_float_eq(towers[i]->layer_norm_eps, 1e-6f);
        ck_assert_int_eq(towers[i]->hidden_act, PRISM_ACT_GELU_TANH);
    }
    ck_assert_int_eq(c.text.vocab_size, 32000);
    ck_assert_int_eq(c.text.max_position_embeddings, 64);
    ck_assert_int_eq(c.text.projection_size, 768);
    ck_assert_int_eq(c.text.pad_token_id, 1);
    ck_assert_int_eq(c.vision.num_channels, 3);
    ck_assert_int_eq(c.vision.image_size, 224);
    ck_assert_int_eq(c.vision.patch_size, 16);
    ck_assert(c.vision.vision_use_head);
    /* a partial file: given keys win, the rest stay default; projection_size
     * follows the text hidden size when absent; [n, n] sizes are accepted */
    ck_assert_int_eq(siglip_config_parse(&c, "{\"model_type\": \"siglip\", \"text_config\": "
                                         "{\"hidden_size\": 1152, \"num_attention_heads\": 16},"
                                         "\"vision_config\": {\"hidden_size\": 1152, "
                                         "\"image_size\": [384, 384], \"patch_size\": 14, "
                                         "\"num_attention_heads\": 16, \"hidden_act\": null}}",
                                         "t", &err), 0);
    ck_assert_int_eq(c.text.projection_size, 1152);
    ck_assert_int_eq(c.vision.image_size, 384);
    ck_assert_int_eq(c.vision.patch_size, 14);
    ck_assert_int_eq(c.vision.t.intermediate_size, 3072);
    ck_assert_int_eq(c.vision.t.hidden_act, PRISM_ACT_GELU_TANH);
    ck_assert_int_eq(siglip_config_parse(&c, "{\"model_type\": \"siglip\", \"vision_config\": "
                                         "{\"image_size\": [384, 256]}}", "t", &err), -1);
    ck_assert_msg(strstr(err.msg, "square"), "%s", err.msg);
}
END_TEST

START_TEST(test_sharded_failures)
{
    char *dir = test_copy_model("siglip_tiny_b");
    char path[4200];
    /* a shard named by the index is missing */
    snprintf(path, sizeof path, "%s/model-00003-of-00008.safetensors", dir);
    size_t n;
    char *shard = test_read_file(path, &n);
    unlink(path);
    EXPECT(dir, "model-00003-of-00008.safetensors", "cannot open");
    ck_assert_int_eq(test_write_file(path, shard, n), 0);
    /* a shard is truncated */
    ck_assert_int_eq(truncate(path, (off_t)(n / 2)), 0);
    EXPECT(dir, "model-00003-of-00008.safetensors", "truncated");
    ck_assert_int_eq(test_write_file(path, shard, n), 0);
    free(shard);
    /* the index sends a tensor to a shard that lacks it */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    char *index = test_read_file(path, &n);
    const char *bad_index =
        "{\"metadata\": {}, \"weight_map\": {\"logit_bias\": \"model-00001-of-00008.safetensors\","
        " \"text_model.head.bias\": \"model-00001-of-00008.safetensors\"}}";
    ck_assert_int_eq(test_write_file(path, bad_index, strlen(bad_index)), 0);
    EXPECT(dir, "model-00001-of-00008.safetensors", "text_model.head.bias", "listed in the index");
    const char *evil = "{\"weight_map\": {\"logit_bias\": \"../siglip_tiny_a/model.safetensors\"}}";
    ck_assert_int_eq(test_write_file(path, evil, strlen(evil)), 0);
    EXPECT(dir, "model.safetensors.index.json", "logit_bias", "not a plain file name");
    ck_assert_int_eq(test_write_file(path, "{\"weight_map\": {}}", 18), 0);
    EXPECT(dir, "model.safetensors.index.json", "weight_map");
    ck_assert_int_eq(test_write_file(path, "{\"weight_map\": ", 15), 0);
    EXPECT(dir, "model.safetensors.index.json", "malformed JSON");
    /* restored, the copy loads again: the failures above were the edits' doing */
    ck_assert_int_eq(test_write_file(path, index, n), 0);
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err;
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load(&m, dir, be, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(siglip_get_info(m)->n_files, 8);
    siglip_free(m);
    prism_backend_destroy(be);
    free(index);
    test_remove_dir(dir);
}
END_TEST

/* Overwrites value `index` of tensor `name` (in whichever file of the
 * checkpoint holds it) with the element bytes `v`; returns that file's
 * base name. */
typedef struct file_name {
    char s[256];
} file_name;

static file_name set_value(const char *dir, const char *name, size_t index, const void *v,
                           size_t n)
{
    st_weights w;
    prism_error err = {0};
    ck_assert_msg(st_weights_open(&w, dir, &err) == 0, "%s", err.msg);
    const char *file = NULL;
    const st_tensor *t = st_weights_find(&w, name, &file);
    ck_assert_msg(t != NULL, "no tensor %s", name);
    ck_assert_uint_lt(index, (size_t)t->numel);
    ck_assert_uint_eq(prism_dtype_size(t->dtype), n);
    const st_file *f = NULL;
    for (int i = 0; i < w.n_files; i++)
        if (w.files[i].path == file)
            f = &w.files[i];
    ck_assert_ptr_nonnull(f);
    const long off = (long)(t->data - f->map) + (long)(index * n);
    char path[4300];
    snprintf(path, sizeof path, "%s", file);
    file_name base;
    snprintf(base.s, sizeof base.s, "%s", strrchr(file, '/') + 1);
    st_weights_close(&w);
    FILE *o = fopen(path, "r+b");
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(fseek(o, off, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(v, 1, n, o), n);
    fclose(o);
    return base;
}

static const uint8_t kF32Nan[4] = {0x00, 0x00, 0xc0, 0x7f}, kF32One[4] = {0x00, 0x00, 0x80, 0x3f};
static const uint8_t kBf16PosInf[2] = {0x80, 0x7f}, kBf16One[2] = {0x80, 0x3f};
static const uint8_t kF16NegInf[2] = {0x00, 0xfc}, kF16Nan[2] = {0x01, 0x7c};

/* NaN in an F32 tensor, +Inf in a BF16 one (a sharded checkpoint, a fused
 * q;k;v weight), -Inf and NaN in F16 ones (a scalar read directly):
 * refused, naming file, tensor, value and flat index. */
START_TEST(test_nonfinite_siglip)
{
    char *dir = test_copy_model("siglip_tiny_a");
    const char *t = "vision_model.encoder.layers.1.mlp.fc1.weight";
    file_name file = set_value(dir, t, 37, kF32Nan, 4);
    EXPECT(dir, file.s, t, "NaN", "flat index 37");
    set_value(dir, t, 37, kF32One, 4); /* mended, it loads: the NaN was the cause */
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    siglip_model *m = NULL;
    ck_assert_msg(siglip_load(&m, dir, be, 1, &err) == 0, "%s", err.msg);
    siglip_free(m);
    prism_backend_destroy(be);
    test_remove_dir(dir);

    dir = test_copy_model("siglip_tiny_b");
    t = "text_model.encoder.layers.0.self_attn.k_proj.weight";
    file = set_value(dir, t, 1000, kBf16PosInf, 2);
    ck_assert_str_ne(file.s, "model.safetensors");
    EXPECT(dir, file.s, t, "+Inf", "flat index 1000");
    set_value(dir, t, 1000, kBf16One, 2);
    t = "vision_model.post_layernorm.weight";
    file = set_value(dir, t, 0, kBf16PosInf, 2);
    EXPECT(dir, file.s, t, "+Inf", "flat index 0");
    test_remove_dir(dir);

    dir = test_copy_model("siglip_tiny_c");
    file = set_value(dir, "logit_scale", 0, kF16NegInf, 2);
    EXPECT(dir, file.s, "'logit_scale'", "-Inf", "flat index 0");
    test_remove_dir(dir);
    dir = test_copy_model("siglip_tiny_c");
    t = "text_model.embeddings.token_embedding.weight";
    file = set_value(dir, t, 4095, kF16Nan, 2);
    EXPECT(dir, file.s, t, "NaN", "flat index 4095");
    test_remove_dir(dir);
}
END_TEST

#define EXPECT_PALI(dir, ...) \
    expect_load_failure(dir, true, (const char *const[]){__VA_ARGS__, NULL})

/* pali3: the T5 language model (its embedding table, a feed-forward
 * weight), the projector, in F32, BF16 (sharded) and F16 checkpoints. */
START_TEST(test_nonfinite_pali)
{
    char *dir = test_copy_model("pali3_tiny_a");
    const char *t = "language_model.shared.weight";
    file_name file = set_value(dir, t, 8191, kF32Nan, 4);
    EXPECT_PALI(dir, file.s, t, "NaN", "flat index 8191");
    set_value(dir, t, 8191, kF32One, 4);
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    pali_model *m = NULL;
    ck_assert_msg(pali_load(&m, dir, be, NULL, &err) == 0, "%s", err.msg);
    pali_free(m);
    prism_backend_destroy(be);
    test_remove_dir(dir);

    dir = test_copy_model("pali3_tiny_b");
    t = "multi_modal_projector.linear.weight";
    file = set_value(dir, t, 3, kBf16PosInf, 2);
    EXPECT_PALI(dir, file.s, t, "+Inf", "flat index 3");
    test_remove_dir(dir);

    dir = test_copy_model("pali3_tiny_c");
    t = "language_model.encoder.block.0.layer.1.DenseReluDense.wo.weight";
    file = set_value(dir, t, 17, kF16NegInf, 2);
    EXPECT_PALI(dir, file.s, t, "-Inf", "flat index 17");
    test_remove_dir(dir);
}
END_TEST

/* st_first_nonfinite on IEEE 754 bit patterns: the largest finite values,
 * subnormals and -0 pass; NaN (quiet, signalling, negative) and ±Inf are
 * found at their index, in the first block or a later one. */
START_TEST(test_first_nonfinite)
{
    enum { N = 10000 };
    uint32_t *f32 = malloc(N * sizeof *f32);
    uint16_t *h = malloc(N * sizeof *h);
    ck_assert(f32 && h);
    static const uint32_t finite32[] = {0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000000, 0x3f800000};
    for (size_t i = 0; i < N; i++)
        f32[i] = finite32[i % 5];
    ck_assert_int_eq(st_first_nonfinite(f32, PRISM_DT_F32, N), -1);
    static const uint32_t bad32[] = {0x7fc00000, 0x7f800001, 0xffc00000, 0x7f800000, 0xff800000};
    for (size_t k = 0; k < 5; k++) {
        const size_t at = k * 2311 + 5;
        f32[at] = bad32[k];
        ck_assert_int_eq(st_first_nonfinite(f32, PRISM_DT_F32, N), (int64_t)at);
        ck_assert_int_eq(st_first_nonfinite(f32, PRISM_DT_F32, at), -1); /* n bounds the scan */
        f32[at] = 0x3f800000;
    }
    /* F16: 0x7bff = 65504 is finite, 0x7c00 = +Inf; BF16: 0x7f7f finite, 0x7f80 +Inf */
    static const struct {
        prism_dtype dt;
        uint16_t finite[4], bad[4];
    } halves[] = {
        {PRISM_DT_F16, {0x7bff, 0xfbff, 0x0001, 0x8000}, {0x7c00, 0xfc00, 0x7e00, 0x7c01}},
        {PRISM_DT_BF16, {0x7f7f, 0xff7f, 0x0001, 0x8000}, {0x7f80, 0xff80, 0x7fc0, 0x7f81}},
    };
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < N; i++)
            h[i] = halves[d].finite[i % 4];
        ck_assert_int_eq(st_first_nonfinite(h, halves[d].dt, N), -1);
        for (size_t k = 0; k < 4; k++) {
            const size_t at = k * 3001 + 1;
            h[at] = halves[d].bad[k];
            ck_assert_int_eq(st_first_nonfinite(h, halves[d].dt, N), (int64_t)at);
            h[at] = halves[d].finite[0];
        }
    }
    /* not a float dtype: nothing to check */
    ck_assert_int_eq(st_first_nonfinite(f32, PRISM_DT_I32, N), -1);
    free(f32);
    free(h);
}
END_TEST

/* Half-precision conversions against IEEE 754 bit patterns. */
START_TEST(test_half_conversions)
{
    ck_assert(prism_f16_to_f32(0x3c00) == 1.0f);
    ck_assert(prism_f16_to_f32(0xc000) == -2.0f);
    ck_assert(prism_f16_to_f32(0x7bff) == 65504.0f);
    ck_assert(prism_f16_to_f32(0x0001) == 0x1p-24f);  /* smallest subnormal */
    ck_assert(prism_f16_to_f32(0x03ff) == 0x3ffp-24f); /* largest subnormal */
    ck_assert(prism_f16_to_f32(0x8000) == 0.0f && signbit(prism_f16_to_f32(0x8000)));
    ck_assert(isinf(prism_f16_to_f32(0x7c00)) && prism_f16_to_f32(0xfc00) < 0);
    ck_assert(isnan(prism_f16_to_f32(0x7e00)));
    ck_assert(prism_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(prism_bf16_to_f32(0xc0a0) == -5.0f);
    ck_assert(prism_bf16_to_f32(0x4049) == 3.140625f);
    ck_assert(isinf(prism_bf16_to_f32(0x7f80)));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_good_checkpoints_load);
    tcase_add_test(tc, test_missing_tensor);
    tcase_add_test(tc, test_wrong_shape);
    tcase_add_test(tc, test_wrong_rank);
    tcase_add_test(tc, test_bad_dtypes);
    tcase_add_test(tc, test_truncated_file);
    tcase_add_test(tc, test_malformed_header);
    tcase_add_test(tc, test_no_weights);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_sharded_failures);
    tcase_add_test(tc, test_half_conversions);
    tcase_add_test(tc, test_nonfinite_siglip);
    tcase_add_test(tc, test_nonfinite_pali);
    tcase_add_test(tc, test_first_nonfinite);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
