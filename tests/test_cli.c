/* test_cli.c - the `prism` binary end to end: info, embed and score print
 * JSON equal to transformers' outputs; bad use gives a message and a
 * non-zero status. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "json.h"
#include "test_util.h"

static void compare_matrix(const json_value *m, const float *want, int rows, int cols,
                           double tol, const char *what)
{
    ck_assert_msg(m && m->type == JSON_ARRAY && (int)m->count == rows, "%s: %d rows expected",
                  what, rows);
    for (int r = 0; r < rows; r++) {
        ck_assert((int)m->items[r].count == cols);
        for (int c = 0; c < cols; c++) {
            double got = m->items[r].items[c].number, w = want[(size_t)r * cols + c];
            ck_assert_msg(got - w <= tol && w - got <= tol, "%s[%d][%d]: %g vs %g", what, r, c,
                          got, w);
        }
    }
}

START_TEST(test_embed_and_score)
{
    char dir[4096], golden[4096], cmd[12000];
    test_data_path(dir, sizeof dir, "siglip_tiny_b");
    test_data_path(golden, sizeof golden, "siglip_tiny_b.golden.safetensors");
    st_file g;
    prism_error err;
    ck_assert_int_eq(st_file_open(&g, golden, &err), 0);
    float *img = test_golden_f32(&g, "image_embeds", NULL);
    float *txt = test_golden_f32(&g, "text_embeds", NULL);
    float *logits = test_golden_f32(&g, "logits_per_image", NULL);
    const int nI = 3, nT = 4, D = 48;

    int st;
    snprintf(cmd, sizeof cmd, "%s embed --model %s --inputs %s --threads 2", PRISM_BIN, dir, golden);
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 0);
    char jerr[128];
    json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "embed output is not JSON: %s", jerr);
    ck_assert_int_eq(json_get(v, "dim")->integer, D);
    /* 1e-5: the bound of the golden test; the JSON prints 9 significant digits */
    compare_matrix(json_get(v, "image_embeddings"), img, nI, D, 1e-5, "image_embeddings");
    compare_matrix(json_get(v, "text_embeddings"), txt, nT, D, 1e-5, "text_embeddings");
    json_free(v);
    free(out);

    snprintf(cmd, sizeof cmd, "%s score --model %s --inputs %s", PRISM_BIN, dir, golden);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 0);
    v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "score output is not JSON: %s", jerr);
    compare_matrix(json_get(v, "logits"), logits, nI, nT, 1e-4, "logits");
    float probs[12];
    for (int i = 0; i < nI * nT; i++)
        probs[i] = 1.0f / (1.0f + expf(-logits[i]));
    compare_matrix(json_get(v, "probs"), probs, nI, nT, 1e-5, "probs");
    json_free(v);
    free(out);
    free(img), free(txt), free(logits);
    st_file_close(&g);
}
END_TEST

START_TEST(test_info)
{
    char dir[4096], cmd[8400];
    test_data_path(dir, sizeof dir, "siglip_tiny_b");
    snprintf(cmd, sizeof cmd, "%s info --model %s", PRISM_BIN, dir);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 0);
    char jerr[128];
    json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "%s", jerr);
    /* the values tools/reference/make_siglip_goldens.py wrote for siglip_tiny_b */
    ck_assert_int_eq(json_get(v, "files")->integer, 8);
    ck_assert_int_eq(json_get(json_get(v, "vision"), "image_size")->integer, 30);
    ck_assert_int_eq(json_get(json_get(v, "vision"), "patch_size")->integer, 6);
    ck_assert_int_eq(json_get(json_get(v, "text"), "max_position_embeddings")->integer, 16);
    ck_assert_int_eq(json_get(json_get(v, "bytes"), "F32")->integer, 0);
    ck_assert(json_get(json_get(v, "bytes"), "BF16")->integer > 0);
    json_free(v);
    free(out);
}
END_TEST

START_TEST(test_usage_errors)
{
    char cmd[8400], dir[4096];
    int st;
    snprintf(cmd, sizeof cmd, "%s frobnicate 2>&1", PRISM_BIN);
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert(strstr(out, "unknown command 'frobnicate'"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s embed 2>&1", PRISM_BIN);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert(strstr(out, "--model DIR is required"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s embed --model /nonexistent/m 2>&1", PRISM_BIN);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 1);
    ck_assert(strstr(out, "/nonexistent/m/config.json"));
    free(out);
    test_data_path(dir, sizeof dir, "siglip_tiny_a");
    snprintf(cmd, sizeof cmd, "%s embed --model %s --threads zero 2>&1", PRISM_BIN, dir);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert(strstr(out, "--threads"));
    free(out);
    /* inputs made for another model: the shape check names the tensor */
    char other[4096];
    test_data_path(other, sizeof other, "siglip_tiny_b.golden.safetensors");
    snprintf(cmd, sizeof cmd, "%s embed --model %s --inputs %s 2>&1", PRISM_BIN, dir, other);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "pixel_values must have shape [B, 3, 32, 32]"), "%s", out);
    free(out);
}
END_TEST

/* Files and strings straight from the command line: the first two images and
 * texts of the end-to-end golden (tools/reference/make_e2e_goldens.py). */
START_TEST(test_score_files_and_strings)
{
    char dir[4096], golden[4096], cmd[16000];
    test_data_path(dir, sizeof dir, "siglip_tiny_e2e");
    test_data_path(golden, sizeof golden, "siglip_tiny_e2e.golden.safetensors");
    snprintf(cmd, sizeof cmd,
             "%s score --model %s --image %s/pillow/hopper.jpg --image %s/pillow/hopper_gray.jpg "
             "--text 'a photo of a cat' --text 'A PHOTO of a Dog!!'",
             PRISM_BIN, dir, PRISM_TEST_IMAGES, PRISM_TEST_IMAGES);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s", out);
    char jerr[128];
    json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "%s", jerr);
    st_file g;
    prism_error err;
    ck_assert_int_eq(st_file_open(&g, golden, &err), 0);
    int64_t n;
    float *all = test_golden_f32(&g, "logits_per_image", &n); /* [6 images, 5 texts] */
    float want[4] = {all[0], all[1], all[5], all[6]};
    compare_matrix(json_get(v, "logits"), want, 2, 2, 1e-4, "logits");
    free(all);
    st_file_close(&g);
    json_free(v);
    free(out);
}
END_TEST

/* Text embeddings of the demo model from `prism embed ARGS` (status 0). */
static json_value *demo_embed(const char *args, char **out)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s embed --model %s/models/demo --text 'a photo of a cat' "
             "--text 'two dogs' %s 2>&1", PRISM_BIN, PRISM_SOURCE_DIR, args);
    int st;
    *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s: %s", args, *out);
    char jerr[128];
    json_value *v = json_parse(*out, strlen(*out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "%s: %s", jerr, *out);
    return v;
}

/* Largest |a - b| over two embedding matrices of the same shape. */
static double max_diff(const json_value *a, const json_value *b)
{
    const json_value *ma = json_get(a, "text_embeddings"), *mb = json_get(b, "text_embeddings");
    ck_assert(ma && mb && ma->count == mb->count && ma->count == 2);
    double d = 0;
    for (size_t r = 0; r < ma->count; r++)
        for (size_t c = 0; c < ma->items[r].count; c++)
            d = fmax(d, fabs(ma->items[r].items[c].number - mb->items[r].items[c].number));
    return d;
}

/* --device and --dtype (server/device.h) on the command line. */
START_TEST(test_device_and_dtype)
{
    char *o_auto, *o_f32, *o_bf16, *out;
    json_value *v_auto = demo_embed("--device cpu", &o_auto);
    json_value *v_f32 = demo_embed("--device cpu --dtype f32", &o_f32);
    json_value *v_bf16 = demo_embed("--device cpu --dtype bf16", &o_bf16);
    /* dtype auto on the CPU is exact f32 */
    ck_assert_msg(max_diff(v_auto, v_f32) == 0, "auto != f32 on the CPU");
    /* bf16 matrices round each weight to 8 significant bits (<= 2^-9
     * relative): the unit-length embeddings move, by ~1e-3 through the demo
     * model's layers, far less than 2e-2 */
    double d = max_diff(v_bf16, v_f32);
    ck_assert_msg(d > 0 && d < 2e-2, "bf16 vs f32: max |diff| %g", d);
    json_free(v_auto), json_free(v_f32), json_free(v_bf16);
    free(o_auto), free(o_f32), free(o_bf16);

    /* --device cuda: refused without a GPU; where one is, close to the CPU */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s embed --model %s/models/demo --text 'a photo of a cat' "
             "--text 'two dogs' --device cuda --dtype f32 2>&1", PRISM_BIN, PRISM_SOURCE_DIR);
    int st;
    out = test_run(cmd, &st);
    if (st != 0) {
        ck_assert_int_eq(st, 2);
        ck_assert_msg(strstr(out, "--device cuda: no CUDA device found") ||
                          strstr(out, "--device cuda: this build has no CUDA backend"), "%s", out);
        free(out);
    } else {
        free(out);
        json_value *v_gpu = demo_embed("--device cuda --dtype f32", &out);
        v_f32 = demo_embed("--device cpu --dtype f32", &o_f32);
        ck_assert_msg(max_diff(v_gpu, v_f32) < 1e-4, "cuda f32 vs cpu");
        json_free(v_gpu), json_free(v_f32);
        free(out), free(o_f32);
    }

    const struct {
        const char *args, *model, *msg;
    } bad[] = {
        {"embed --device cpu --dtype f16 --text a", "models/demo", "f16 is for --device cuda"},
        {"embed --device gpu --text a", "models/demo", "--device must be one of auto|cpu|cuda"},
        {"embed --dtype f64 --text a", "models/demo", "--dtype must be one of auto|bf16|f16|f32"},
        {"embed --device cuda --reference --text a", "models/demo", "--reference is the CPU's plain loops"},
        {"embed --device cpu --dtype bf16 --reference --text a", "models/demo",
         "--dtype bf16 needs the fast CPU path"},
        {"bench --device cuda --text a", "models/demo", "prism_bench_cuda"},
        {"caption --device cpu --dtype f16 --image x.png", "tests/data/pali3_tiny_a", "f16 is for --device cuda"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s --model %s/%s 2>&1", PRISM_BIN, bad[i].args,
                 PRISM_SOURCE_DIR, bad[i].model);
        out = test_run(cmd, &st);
        ck_assert_msg(st == 2 && strstr(out, bad[i].msg), "%s: status %d: %s", bad[i].args, st,
                      out);
        free(out);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_embed_and_score);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_device_and_dtype);
#ifdef PRISM_TEST_IMAGES
    tcase_add_test(tc, test_score_files_and_strings);
#endif
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
