/* test_cli.c - the `prism` binary end to end: info, embed and score print
 * JSON equal to transformers' outputs; classify equals score on the
 * prompts it builds; every subcommand has its own --help; bad use gives a
 * message and a non-zero status. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "backend.h"
#include "json.h"
#include "safetensors.h"
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
    snprintf(cmd, sizeof cmd, "%s embed --model /m 2>&1", PRISM_BIN);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert_msg(strstr(out, "--inputs FILE, or --image FILE / --text TEXT, is required"), "%s",
                  out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s embed --model /m --inputs x.st --text a 2>&1", PRISM_BIN);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert_msg(strstr(out, "not both"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s embed --model /m --text a extra 2>&1", PRISM_BIN);
    out = test_run(cmd, &st);
    ck_assert_int_eq(st, 2);
    ck_assert_msg(strstr(out, "unexpected argument 'extra'"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s embed --model /nonexistent/m --text a 2>&1", PRISM_BIN);
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
    /* int8 where the CPU has VNNI: 8-bit inputs and weights move the demo's
     * embeddings by ~1e-2 (test_siglip_golden bounds int8 by cosine); where
     * it has not, refused with the reason */
    char why[200];
    if (prism_cpu_int8_compute_available(why, sizeof why) == 0) {
        char *o_i8;
        json_value *v_i8 = demo_embed("--device cpu --dtype int8", &o_i8);
        d = max_diff(v_i8, v_f32);
        ck_assert_msg(d > 0 && d < 1e-1, "int8 vs f32: max |diff| %g", d);
        json_free(v_i8), free(o_i8);
    }
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
        {"embed --dtype f64 --text a", "models/demo", "--dtype must be one of auto|bf16|f16|f32|int8"},
        {"embed --device cuda --dtype int8 --text a", "models/demo", "--dtype int8 is for the CPU"},
        {"embed --device cpu --dtype int8 --reference --text a", "models/demo",
         "--dtype int8 needs the fast CPU path"},
        {"embed --device cuda --reference --text a", "models/demo", "--reference is the CPU's plain loops"},
        {"embed --device cpu --dtype bf16 --reference --text a", "models/demo",
         "--dtype bf16 needs the fast CPU path"},
        {"bench --device cuda", "models/demo", "prism_bench_cuda"},
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


/* `prism CMD --help`: status 0, the command's own usage on stdout, the
 * options it takes and none that it does not. */
START_TEST(test_help_per_command)
{
    static const struct {
        const char *args, *usage;
        const char *has[6], *lacks[6];
    } cases[] = {
        {"info", "usage: prism info", {"--model DIR", "--device", "--threads N", "PRISM_THREADS"},
         {"--image", "--text", "--label", "--min-time", "--question"}},
        {"embed", "usage: prism embed", {"--inputs", "--image FILE", "--text TEXT",
         "--no-normalize", "(repeatable)"}, {"--label", "--min-time", "--question", "--pixels"}},
        {"score", "usage: prism score", {"--inputs", "--image FILE", "--text TEXT"},
         {"--no-normalize", "--label", "--template", "--json"}},
        {"classify", "usage: prism classify", {"--image FILE", "--label TEXT", "--template"},
         {"--text", "--inputs", "--no-normalize", "--question"}},
        {"bench", "usage: prism bench --model DIR", {"--batch", "--min-time", "--json"},
         {"--image", "--text", "--repeats", "--question"}},
        {"caption", "usage: prism caption", {"--pixels", "--image FILE", "--lang", "--num-beams"},
         {"--question", "--label", "--min-time", "--text"}},
        {"ask", "usage: prism ask", {"--question TEXT", "--pixels", "--num-beams"},
         {"--label", "--min-time", "--text", "--inputs"}},
        {"bench --model %s/tests/data/pali3_tiny_a", "usage: prism bench --model PALI3_DIR",
         {"--repeats", "--max-new-tokens", "--batch"}, {"--min-time", "--json", "--image"}},
        {"serve", "usage: prism serve", {"--max-batch-image", "PRISM_MAX_BATCH_IMAGE"},
         {"--label TEXT", "--min-time"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4400], cmd[8400];
        snprintf(args, sizeof args, cases[i].args, PRISM_SOURCE_DIR);
        snprintf(cmd, sizeof cmd, "%s %s --help", PRISM_BIN, args);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st == 0, "%s --help: status %d", args, st);
        ck_assert_msg(strncmp(out, cases[i].usage, strlen(cases[i].usage)) == 0,
                      "%s --help begins \"%.60s\"", args, out);
        for (int k = 0; k < 6 && cases[i].has[k]; k++)
            ck_assert_msg(strstr(out, cases[i].has[k]), "%s --help lacks %s", args,
                          cases[i].has[k]);
        for (int k = 0; k < 6 && cases[i].lacks[k]; k++)
            ck_assert_msg(!strstr(out, cases[i].lacks[k]), "%s --help lists %s", args,
                          cases[i].lacks[k]);
        free(out);
    }
}
END_TEST

/* --help wins wherever it stands as an option, but is an ordinary value
 * after an option that takes one. */
START_TEST(test_help_position)
{
    char cmd[8400];
    int st;
    snprintf(cmd, sizeof cmd, "%s embed --device nonsense --help 2>&1", PRISM_BIN);
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 0);
    ck_assert(strstr(out, "usage: prism embed"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s embed --model %s/models/demo --text --help", PRISM_BIN,
             PRISM_SOURCE_DIR);
    out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s", out);
    char jerr[128];
    json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "%s: %s", jerr, out);
    ck_assert_int_eq((int)json_get(v, "text_embeddings")->count, 1);
    json_free(v);
    free(out);
}
END_TEST

/* `prism --version` and `prism version` print the project's version, as
 * CMakeLists.txt's project() line declares it. */
START_TEST(test_version)
{
    char path[4096], want[64] = "prism ";
    snprintf(path, sizeof path, "%s/CMakeLists.txt", PRISM_SOURCE_DIR);
    char *cml = test_read_file(path, NULL);
    const char *p = strstr(cml, "project(prism VERSION ");
    ck_assert_ptr_nonnull(p);
    p += strlen("project(prism VERSION ");
    size_t n = strspn(p, "0123456789.");
    ck_assert(n > 0 && n < 32);
    strncat(want, p, n);
    strcat(want, "\n");
    free(cml);
    const char *forms[] = {"--version", "version"};
    for (int i = 0; i < 2; i++) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "%s %s", PRISM_BIN, forms[i]);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_int_eq(st, 0);
        ck_assert_str_eq(out, want);
        free(out);
    }
}
END_TEST

/* --threads 0 and PRISM_THREADS=0 mean every core, as in prism serve; the
 * range and the variable are named when a value is refused. */
START_TEST(test_threads_zero)
{
    static const struct {
        const char *env, *flag, *msg;
        int status;
    } cases[] = {
        {"", "--threads 0", NULL, 0},
        {"PRISM_THREADS=0", "", NULL, 0},
        {"PRISM_THREADS=1", "--threads 0", NULL, 0},
        {"", "--threads 1025", "--threads must be an integer in [0, 1024], not '1025'", 2},
        {"PRISM_THREADS=all", "", "PRISM_THREADS must be an integer in [0, 1024], not 'all'", 2},
        {"", "--threads", "--threads needs a value", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "%s %s embed --model %s/models/demo --text a %s 2>&1",
                 cases[i].env, PRISM_BIN, PRISM_SOURCE_DIR, cases[i].flag);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st == cases[i].status, "%s %s: status %d: %s", cases[i].env, cases[i].flag,
                      st, out);
        if (cases[i].msg)
            ck_assert_msg(strstr(out, cases[i].msg), "%s", out);
        else
            ck_assert_msg(strstr(out, "\"text_embeddings\""), "%s", out);
        free(out);
    }
}
END_TEST

/* A checkpoint prism cannot serve is refused at start, naming the file and
 * the key: an unknown model_type; a tokenizer_config.json whose tokenizer
 * file is missing; a --max-num-patches below a NaFlex model's default. */
START_TEST(test_unservable_checkpoints)
{
    char path[4200], cmd[8800];
    char *dir = test_copy_model("siglip2_tiny_a");
    struct {
        const char *file, *content, *flags, *want[3];
    } cases[] = {
        {"config.json", "{\"model_type\": \"clip\"}", "",
         {"config.json", "model_type", "clip"}},
        {"tokenizer_config.json",
         "{\"tokenizer_class\": \"GemmaTokenizer\", \"add_bos_token\": false, "
         "\"add_eos_token\": true}", "",
         {"tokenizer.model", "tokenizer_class", "GemmaTokenizer"}},
        {"tokenizer_config.json", "{\"tokenizer_class\": \"SiglipTokenizer\"}", "",
         {"spiece.model", "tokenizer_class", "SiglipTokenizer"}},
        {NULL, NULL, "--max-num-patches 8", {"--max-num-patches 8", "max_num_patches 16", NULL}},
    };
    size_t cfg_len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *config = test_read_file(path, &cfg_len);
    ck_assert_ptr_nonnull(config);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        ck_assert_int_eq(test_write_file(path, config, cfg_len), 0);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        unlink(path);
        if (cases[k].file) {
            snprintf(path, sizeof path, "%s/%s", dir, cases[k].file);
            ck_assert_int_eq(test_write_file(path, cases[k].content, strlen(cases[k].content)), 0);
        }
        snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 %s 2>&1", PRISM_BIN, dir,
                 cases[k].flags);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st != 0, "case %zu started: %s", k, out);
        for (int w = 0; w < 3 && cases[k].want[w]; w++)
            ck_assert_msg(strstr(out, cases[k].want[w]), "case %zu: no '%s' in %s", k,
                          cases[k].want[w], out);
        free(out);
    }
    free(config);
    test_remove_dir(dir);
}
END_TEST

/* PaliGemma from the command line: caption, ask and detect on the hub-layout
 * checkpoint tests/data/paligemma_tiny_a give transformers' greedy ids and
 * text (tools/reference/make_paligemma_goldens.py, cases 0-2: flower.jpg
 * with "caption en", "answer en what is in the image?", "detect cat ;
 * dog"), and beam search's ids (num_beams=3) for two images at once. */
START_TEST(test_paligemma)
{
    char dir[4096], gpath[4200], img[4200], cmd[20000];
    test_data_path(dir, sizeof dir, "paligemma_tiny_a");
    test_data_path(img, sizeof img, "pillow/flower.jpg");
    snprintf(gpath, sizeof gpath, "%s.golden.safetensors", dir);
    prism_error err = {0};
    st_file g;
    ck_assert_msg(st_file_open(&g, gpath, &err) == 0, "%s", err.msg);
    static const char *const runs[] = {
        "caption --model %s --image %s --max-new-tokens 12",
        "ask --model %s --image %s --question 'what is in the image?' --max-new-tokens 12",
        "detect --model %s --image %s --label cat --label dog --max-new-tokens 12",
    };
    static const char *const prompts[] = {"caption en", "answer en what is in the image?",
                                          "detect cat ; dog"};
    for (int k = 0; k < 3; k++) {
        int n = snprintf(cmd, sizeof cmd, "%s ", PRISM_BIN);
        snprintf(cmd + n, sizeof cmd - n, runs[k], dir, img);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st == 0, "%s: %s", cmd, out);
        char jerr[128];
        json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
        ck_assert_msg(v != NULL, "%s: %s", jerr, out);
        ck_assert_str_eq(json_get(v, "prompt")->string, prompts[k]);
        char key[32];
        snprintf(key, sizeof key, "greedy_%d", k);
        const st_tensor *want = st_file_find(&g, key);
        const json_value *ids = json_get(v, "ids");
        ck_assert_int_eq((int)ids->count, (int)want->numel);
        for (int64_t t = 0; t < want->numel; t++) {
            int64_t w;
            memcpy(&w, want->data + 8 * t, 8);
            ck_assert_int_eq(ids->items[t].integer, w);
        }
        if (k == 2)
            ck_assert(json_get(v, "objects") && json_get(v, "objects")->type == JSON_ARRAY);
        json_free(v);
        free(out);
    }
    /* beam search over two images at once: transformers' num_beams=3 ids
     * of cases 0 (flower.jpg) and 4 (hopper.jpg), one line each, in order */
    char img2[4200];
    test_data_path(img2, sizeof img2, "pillow/hopper.jpg");
    snprintf(cmd, sizeof cmd, "%s caption --model %s --image %s --image %s --num-beams 3 "
             "--max-new-tokens 12", PRISM_BIN, dir, img, img2);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s: %s", cmd, out);
    char *line = out;
    for (int k = 0; k < 2; k++) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "%s", out);
        *nl = '\0';
        char jerr[128], key[32];
        json_value *v = json_parse(line, strlen(line), jerr, sizeof jerr);
        ck_assert_msg(v != NULL, "%s: %s", jerr, line);
        snprintf(key, sizeof key, "beam3_%d", k ? 4 : 0);
        const st_tensor *want = st_file_find(&g, key);
        const json_value *ids = json_get(v, "ids");
        ck_assert_int_eq((int)ids->count, (int)want->numel);
        for (int64_t t = 0; t < want->numel; t++) {
            int64_t w;
            memcpy(&w, want->data + 8 * t, 8);
            ck_assert_msg(ids->items[t].integer == w, "%s: id %d", key, (int)t);
        }
        json_free(v);
        line = nl + 1;
    }
    free(out);
    /* prism info: the checkpoint's own numbers (parameters: every tensor of
     * the file once, the head being tied; the decoder's config keys) */
    {
        char dirb[4096], fpath[4200];
        test_data_path(dirb, sizeof dirb, "paligemma_tiny_b");
        snprintf(cmd, sizeof cmd, "%s info --model %s", PRISM_BIN, dirb);
        out = test_run(cmd, &st);
        ck_assert_msg(st == 0, "%s: %s", cmd, out);
        char jerr[128];
        json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
        ck_assert_msg(v != NULL, "%s: %s", jerr, out);
        ck_assert_str_eq(json_get(v, "model_type")->string, "paligemma");
        snprintf(fpath, sizeof fpath, "%s/model.safetensors", dirb);
        st_file f;
        ck_assert_msg(st_file_open(&f, fpath, &err) == 0, "%s", err.msg);
        int64_t total = 0;
        for (int i = 0; i < f.n_tensors; i++)
            total += f.tensors[i].numel;
        ck_assert_int_eq(json_get(v, "parameters")->integer, total);
        st_file_close(&f);
        const json_value *text = json_get(v, "text");
        ck_assert_str_eq(json_get(text, "model_type")->string, "gemma2");
        snprintf(fpath, sizeof fpath, "%s/config.json", dirb);
        size_t clen;
        char *cj = test_read_file(fpath, &clen);
        json_value *cfg = json_parse(cj, clen, jerr, sizeof jerr);
        ck_assert_ptr_nonnull(cfg);
        const json_value *tc = json_get(cfg, "text_config");
        static const char *const keys[] = {"num_key_value_heads", "head_dim", "sliding_window",
                                           "num_hidden_layers"};
        for (int i = 0; i < 4; i++)
            ck_assert_msg(json_get(text, keys[i])->integer == json_get(tc, keys[i])->integer,
                          "%s", keys[i]);
        json_free(cfg), json_free(v);
        free(cj), free(out);
    }
    /* a pali3-only option and detect on a SigLIP model are refused */
    static const char *const bad[] = {
        "caption --model %s --image %s --pixels x.safetensors",
        "detect --model %s/../../../models/demo --image %s --label cat",
    };
    static const int bad_status[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        int n = snprintf(cmd, sizeof cmd, "%s ", PRISM_BIN);
        n += snprintf(cmd + n, sizeof cmd - n, bad[k], dir, img);
        snprintf(cmd + n, sizeof cmd - n, " 2>&1");
        out = test_run(cmd, &st);
        ck_assert_msg(st == bad_status[k], "%s: status %d: %s", cmd, st, out);
        free(out);
    }
    st_file_close(&g);
}
END_TEST

/* A file that cannot be read is named with the system's reason. */
START_TEST(test_unreadable_image)
{
    char cmd[4400], want[256];
    snprintf(cmd, sizeof cmd, "%s embed --model %s/models/demo --image /nonexistent/nope.jpg 2>&1",
             PRISM_BIN, PRISM_SOURCE_DIR);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 1);
    snprintf(want, sizeof want, "cannot read /nonexistent/nope.jpg: %s", strerror(ENOENT));
    ck_assert_msg(strstr(out, want), "%s", out);
    free(out);
}
END_TEST

/* `prism info` on a pali3 directory: the configuration its config.json
 * (written by tools/reference) gives, key by key. */
START_TEST(test_info_pali3)
{
    char dir[4096], path[4200], cmd[8400], jerr[128];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    snprintf(cmd, sizeof cmd, "%s info --model %s --threads 1", PRISM_BIN, dir);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s", out);
    json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "%s: %s", jerr, out);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_value *cfg = json_parse_file(path, jerr, sizeof jerr);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(json_get(v, "model_type")->string, "pali3");
    ck_assert_int_eq(json_get(v, "image_token_count")->integer,
                     json_get(cfg, "image_token_count")->integer);
    const json_value *tmpl = json_get(cfg, "prompt_templates");
    ck_assert_str_eq(json_get(json_get(v, "prompt_templates"), "caption")->string,
                     json_get(tmpl, "caption")->string);
    ck_assert_str_eq(json_get(json_get(v, "prompt_templates"), "vqa")->string,
                     json_get(tmpl, "vqa")->string);
    static const char *const sections[2][2] = {{"vision_config", "vision"},
                                               {"text_config", "text"}};
    for (int s = 0; s < 2; s++) {
        const json_value *want = json_get(cfg, sections[s][0]);
        const json_value *got = json_get(v, sections[s][1]);
        ck_assert_msg(got != NULL, "no \"%s\" in %s", sections[s][1], out);
        int compared = 0;
        for (size_t k = 0; k < want->count; k++) {
            const char *key = want->keys[k];
            const json_value *w = &want->items[k], *g = json_get(got, key);
            if (!g || (w->type != JSON_NUMBER && w->type != JSON_STRING))
                continue; /* what info does not print (model_type, tie_word_embeddings) */
            if (w->type == JSON_NUMBER)
                ck_assert_msg(g->number == w->number, "%s.%s: %g vs %g", sections[s][1], key,
                              g->number, w->number);
            else
                ck_assert_str_eq(g->string, w->string);
            compared++;
        }
        /* every size in the file is printed (the tiny config sets 7 vision and 10 text keys) */
        ck_assert_msg(compared >= (s == 0 ? 6 : 10), "%s: only %d keys compared", sections[s][1],
                      compared);
    }
    /* transformers' T5Config default for what the file leaves out */
    ck_assert_int_eq(json_get(json_get(v, "text"), "num_decoder_layers")->integer,
                     json_get(json_get(cfg, "text_config"), "num_layers")->integer);
    ck_assert(json_get(v, "parameters")->integer > 0);
    json_free(cfg);
    json_free(v);
    free(out);
}
END_TEST

/* The '|' of every line of a markdown table stand in the same columns, and
 * the second line is the separator. Returns the number of table lines. */
static int check_table(const char *out)
{
    const char *first = NULL;
    size_t first_len = 0;
    int lines = 0;
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (*p == '|') {
            if (!first) {
                first = p, first_len = len;
            } else {
                ck_assert_msg(len == first_len, "table line of %zu chars, header %zu:\n%s", len,
                              first_len, out);
                for (size_t i = 0; i < len; i++)
                    ck_assert_msg((p[i] == '|') == (first[i] == '|'),
                                  "column %zu of a row and the header differ:\n%s", i, out);
            }
            if (lines == 1)
                ck_assert_msg(strspn(p, "|-:") == len, "not a separator line:\n%s", out);
            lines++;
        }
        p += len + (nl ? 1 : 0);
    }
    return lines;
}

START_TEST(test_bench_table_aligned)
{
    char cmd[8400];
    int st;
    snprintf(cmd, sizeof cmd, "%s bench --model %s/models/demo --batch 1,2 --min-time 0 "
             "--threads 2", PRISM_BIN, PRISM_SOURCE_DIR);
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s", out);
    ck_assert_int_eq(check_table(out), 2 + 4); /* header, separator, image and text x 2 */
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --model %s/tests/data/pali3_tiny_a --batch 1,2 "
             "--max-new-tokens 3 --repeats 1 --threads 2", PRISM_BIN, PRISM_SOURCE_DIR);
    out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s", out);
    ck_assert_int_eq(check_table(out), 2 + 2);
    free(out);
}
END_TEST

#ifdef PRISM_TEST_IMAGES
/* One `prism classify`/`prism score` run on the end-to-end golden model's
 * images; returns the parsed JSON lines (one per image for classify). */
static char *run_ok(const char *args)
{
    char cmd[16000];
    snprintf(cmd, sizeof cmd, "%s %s --model %s/tests/data/siglip_tiny_e2e --image "
             "%s/pillow/hopper.jpg --image %s/pillow/flower.jpg --threads 2 2>&1", PRISM_BIN, args,
             PRISM_SOURCE_DIR, PRISM_TEST_IMAGES, PRISM_TEST_IMAGES);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "%s: %s", args, out);
    return out;
}

/* classify's score of each label is score's probability for the prompt it
 * makes (every {} of the template replaced by the label), per image, and
 * the labels come sorted by it. */
START_TEST(test_classify_equals_score)
{
    static const struct {
        const char *classify, *texts[3];
    } cases[] = {
        /* the default template, "a photo of {}." (docs/api.md, POST /v1/classify) */
        {"--label cat --label 'a dog' --label 'Hopper!'",
         {"a photo of cat.", "a photo of a dog.", "a photo of Hopper!."}},
        {"--label cat --label 'a dog' --label 'Hopper!' --template '{} and {{}}'",
         {"cat and {cat}", "a dog and {a dog}", "Hopper! and {Hopper!}"}},
    };
    const char *labels[3] = {"cat", "a dog", "Hopper!"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char args[1024];
        snprintf(args, sizeof args, "classify %s", cases[c].classify);
        char *cl = run_ok(args);
        snprintf(args, sizeof args, "score --text '%s' --text '%s' --text '%s'",
                 cases[c].texts[0], cases[c].texts[1], cases[c].texts[2]);
        char *sc = run_ok(args);
        char jerr[128];
        json_value *score = json_parse(sc, strlen(sc), jerr, sizeof jerr);
        ck_assert_msg(score != NULL, "%s: %s", jerr, sc);
        const json_value *probs = json_get(score, "probs");
        char *line = cl;
        for (int img = 0; img < 2; img++) {
            char *nl = strchr(line, '\n');
            ck_assert_msg(nl != NULL, "2 lines expected: %s", cl);
            *nl = '\0';
            json_value *v = json_parse(line, strlen(line), jerr, sizeof jerr);
            ck_assert_msg(v != NULL, "%s: %s", jerr, line);
            ck_assert(strstr(json_get(v, "image")->string, img ? "flower.jpg" : "hopper.jpg"));
            const json_value *got = json_get(v, "labels");
            ck_assert_int_eq((int)got->count, 3);
            for (int k = 0; k < 3; k++) {
                const char *label = json_get(&got->items[k], "label")->string;
                const double s = json_get(&got->items[k], "score")->number;
                int t = 0;
                while (t < 3 && strcmp(labels[t], label) != 0)
                    t++;
                ck_assert_msg(t < 3, "unknown label %s", label);
                /* the same float32 from the same inputs, printed with 9 digits */
                const double want = probs->items[img].items[t].number;
                ck_assert_msg(fabs(s - want) <= 1e-7, "image %d, %s: %.9g vs score's %.9g", img,
                              label, s, want);
                if (k)
                    ck_assert(s <= json_get(&got->items[k - 1], "score")->number);
            }
            json_free(v);
            line = nl + 1;
        }
        json_free(score);
        free(cl), free(sc);
    }
}
END_TEST

/* Equal scores keep the order the labels were given in. Two labels that
 * differ only past the model's text length (64 tokens: the rest is cut)
 * give the same token ids; the reference loops (--reference) compute every
 * row of a batch alike, so their scores are equal. */
START_TEST(test_classify_ties_keep_order)
{
    char base[1024] = "";
    for (int i = 0; i < 100; i++)
        strcat(base, "cat ");
    for (int o = 0; o < 2; o++) {
        char args[4096];
        snprintf(args, sizeof args, "classify --reference --template '{}' --label '%s%s' "
                 "--label '%s%s'", base, o ? "two" : "one", base, o ? "one" : "two");
        char *out = run_ok(args);
        *strchr(out, '\n') = '\0';
        char jerr[128];
        json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
        ck_assert_msg(v != NULL, "%s: %s", jerr, out);
        const json_value *l = json_get(v, "labels");
        ck_assert(json_get(&l->items[0], "score")->number ==
                  json_get(&l->items[1], "score")->number);
        const char *first = json_get(&l->items[0], "label")->string;
        ck_assert_str_eq(first + strlen(base), o ? "two" : "one");
        json_free(v);
        free(out);
    }
}
END_TEST
#endif

START_TEST(test_classify_usage_errors)
{
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"--image x.jpg", "--label TEXT is required"},
        {"--label cat", "--image FILE is required"},
        {"--image x.jpg --label cat --template 'a photo'", "--template must contain {}"},
        {"--image x.jpg --label cat --text a", "unknown option '--text'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "%s classify --model %s/models/demo %s 2>&1", PRISM_BIN,
                 PRISM_SOURCE_DIR, cases[i].args);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st == 2 && strstr(out, cases[i].msg), "%s: status %d: %s", cases[i].args,
                      st, out);
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
    tcase_add_test(tc, test_help_per_command);
    tcase_add_test(tc, test_help_position);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_threads_zero);
    tcase_add_test(tc, test_unreadable_image);
    tcase_add_test(tc, test_unservable_checkpoints);
    tcase_add_test(tc, test_paligemma);
    tcase_add_test(tc, test_info_pali3);
    tcase_add_test(tc, test_bench_table_aligned);
    tcase_add_test(tc, test_classify_usage_errors);
#ifdef PRISM_TEST_IMAGES
    tcase_add_test(tc, test_score_files_and_strings);
    tcase_add_test(tc, test_classify_equals_score);
    tcase_add_test(tc, test_classify_ties_keep_order);
#endif
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
