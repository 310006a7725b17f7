/* test_cli_generate.c - `prism caption` / `prism ask` end to end: the ids
 * printed equal transformers' generate() (golden), for greedy and beam
 * search and several images at once; bad use exits 2 with a message, a
 * runtime failure exits 1. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "json.h"
#include "test_util.h"

static int64_t geti(const st_file *f, const char *name, int64_t i)
{
    const st_tensor *t = st_file_find(f, name);
    ck_assert(t && t->dtype == PRISM_DT_I64 && i < t->numel);
    int64_t v;
    memcpy(&v, t->data + 8 * i, 8);
    return v;
}

START_TEST(test_caption_ids_match_golden)
{
    const bool beam = _i;
    char dir[4096], gpath[4096], cmd[16384];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    test_data_path(gpath, sizeof gpath, "pali3_tiny_a.golden.safetensors");
    /* the golden's pixel_values hold one image per prompt; prompt 1 is [5, 9, </s>] */
    snprintf(cmd, sizeof cmd, "%s caption --model %s --pixels %s --prompt-ids 5,9,1 "
             "--max-new-tokens 12 --threads 1 --num-beams %d --length-penalty %s 2>&1",
             PRISM_BIN, dir, gpath, beam ? 3 : 1, beam ? "-0.4" : "1");
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "exit %d: %s", st, out);
    st_file g;
    prism_error err;
    ck_assert_int_eq(st_file_open(&g, gpath, &err), 0);
    const int G = (int)st_file_find(&g, beam ? "beam_ids" : "greedy_ids")->shape[1];
    const int P = (int)st_file_find(&g, "pixel_values")->shape[0];
    char *line = out;
    for (int i = 0; i < P; i++) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "%d lines expected: %s", P, out);
        *nl = '\0';
        char jerr[128];
        json_value *v = json_parse(line, strlen(line), jerr, sizeof jerr);
        ck_assert_msg(v != NULL, "%s: %s", jerr, line);
        if (i == 1) { /* the image the golden paired with prompt 1 */
            const json_value *ids = json_get(v, "ids");
            const int n = (int)geti(&g, beam ? "beam_len" : "greedy_len", 1);
            ck_assert_msg(ids && (int)ids->count == n, "%s", line);
            for (int t = 0; t < n; t++)
                ck_assert_int_eq(ids->items[t].integer,
                                 geti(&g, beam ? "beam_ids" : "greedy_ids", (int64_t)G + t));
            ck_assert_int_eq(json_get(v, "tokens")->integer, n);
            ck_assert_str_eq(json_get(v, "finish_reason")->string,
                             ids->items[n - 1].integer == 1 ? "eos" : "length");
            ck_assert(json_get(v, "prompt") && json_get(v, "text"));
        }
        json_free(v);
        line = nl + 1;
    }
    st_file_close(&g);
    free(out);
}
END_TEST

/* The prompt from the template and the model's spiece.model: "caption en"
 * tokenizes to golden prompt 0, so image 0's caption is golden greedy 0,
 * and its text is the SentencePiece decoding dumped beside it. */
START_TEST(test_caption_from_template)
{
    char dir[4096], gpath[4096], tpath[4096], cmd[16384], jerr[256];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    test_data_path(gpath, sizeof gpath, "pali3_tiny_a.golden.safetensors");
    test_data_path(tpath, sizeof tpath, "pali3_text.json");
    snprintf(cmd, sizeof cmd, "%s caption --model %s --pixels %s --lang en --max-new-tokens 12 "
             "--threads 1 --dtype f32 2>&1", PRISM_BIN, dir, gpath);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_msg(st == 0, "exit %d: %s", st, out);
    *strchr(out, '\n') = '\0';
    json_value *v = json_parse(out, strlen(out), jerr, sizeof jerr);
    ck_assert_msg(v != NULL, "%s: %s", jerr, out);
    ck_assert_str_eq(json_get(v, "prompt")->string, "caption en");
    st_file g;
    prism_error err;
    ck_assert_int_eq(st_file_open(&g, gpath, &err), 0);
    static const int64_t caption_en[5] = {108, 155, 153, 147, 1};
    for (int t = 0; t < 5; t++) /* golden prompt 0 is "caption en" + </s> */
        ck_assert_int_eq(geti(&g, "prompt_ids", t), caption_en[t]);
    const json_value *ids = json_get(v, "ids");
    const int n = (int)geti(&g, "greedy_len", 0);
    ck_assert_int_eq((int)ids->count, n);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(ids->items[t].integer, geti(&g, "greedy_ids", t));
    json_value *text = json_parse_file(tpath, jerr, sizeof jerr);
    ck_assert_ptr_nonnull(text);
    const json_value *dec0 = &json_get(text, "decode")->items[0];
    ck_assert_str_eq(json_get(v, "text")->string, json_get(dec0, "text")->string);
    json_free(text);
    json_free(v);
    st_file_close(&g);
    free(out);
}
END_TEST

START_TEST(test_bad_use)
{
    char dir[4096], gpath[4096], cmd[16384];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    test_data_path(gpath, sizeof gpath, "pali3_tiny_a.golden.safetensors");
    static const struct {
        const char *args, *needle;
        int status;
    } cases[] = {
        {"caption --pixels %2$s", "--model", 2},
        {"caption --model %1$s", "--pixels", 2},
        {"ask --model %1$s --pixels %2$s", "--question", 2},
        {"caption --model %1$s --pixels %2$s --num-beams 0", "--num-beams", 2},
        {"caption --model %1$s --pixels %2$s --bogus 1", "bogus", 2},
        {"caption --model %1$s/nope --pixels %2$s --prompt-ids 5,1", "config.json", 1},
        {"caption --model %1$s --pixels %1$s/config.json --prompt-ids 5,1", "config.json", 1},
        {"caption --model %1$s --pixels %2$s --prompt-ids 5,x", "prompt-ids", 1},
        {"caption --model %1$s --pixels %2$s --prompt-ids 5,999", "vocabulary", 1},
        {"caption --model %1$s --pixels %2$s --image a.jpg --prompt-ids 5,1", "not both", 1},
        {"caption --model %1$s --image %1$s/nope.jpg", "nope.jpg", 1},
        {"caption --model %1$s --image %1$s/config.json", "not JPEG or PNG", 1},
        {"caption --model %1$s --pixels %2$s --dtype f64", "--dtype", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[8192];
        snprintf(args, sizeof args, cases[i].args, dir, gpath);
        snprintf(cmd, sizeof cmd, "%s %s --threads 1 2>&1", PRISM_BIN, args);
        int st;
        char *out = test_run(cmd, &st);
        ck_assert_msg(st == cases[i].status && strstr(out, cases[i].needle),
                      "%s: exit %d, output \"%s\" (want %d and \"%s\")", args, st, out,
                      cases[i].status, cases[i].needle);
        free(out);
    }
}
END_TEST

/* An image that cannot be read is named with the system's reason. */
START_TEST(test_unreadable_image)
{
    char dir[4096], cmd[8400], want[256];
    test_data_path(dir, sizeof dir, "pali3_tiny_a");
    snprintf(cmd, sizeof cmd, "%s caption --model %s --image /nonexistent/nope.jpg --threads 1 "
             "2>&1", PRISM_BIN, dir);
    int st;
    char *out = test_run(cmd, &st);
    ck_assert_int_eq(st, 1);
    snprintf(want, sizeof want, "cannot read /nonexistent/nope.jpg: %s", strerror(ENOENT));
    ck_assert_msg(strstr(out, want), "%s", out);
    free(out);
}
END_TEST

/* Images of a model directory without a processor file get SigLIP's
 * defaults, and the command says so on stderr; a transformers 5
 * processor_config.json is read (its size is checked against the tower's,
 * and the message names that file). */
START_TEST(test_image_processor_file)
{
    char dir[4096], img[4096], cmd[12400];
    test_data_path(dir, sizeof dir, "pali3_tiny_a"); /* no processor file */
    test_data_path(img, sizeof img, "pillow/hopper.jpg");
    const char *fmt = "%s caption --model %s --image %s --max-new-tokens 2 --threads 1 "
                      "2>&1 >/dev/null";
    snprintf(cmd, sizeof cmd, fmt, PRISM_BIN, dir, img);
    int st;
    char *err = test_run(cmd, &st);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(strstr(err, "no processor_config.json or preprocessor_config.json") &&
                  strstr(err, "defaults"), "%s", err);
    free(err);

    char *copy = test_copy_model("pali3_tiny_a"), path[4200];
    snprintf(path, sizeof path, "%s/processor_config.json", copy);
    static const char *const v5[] = {
        "{\"image_processor\": {\"size\": {\"height\": 16, \"width\": 16}}}",
        "{\"image_processor\": {\"size\": {\"height\": 32, \"width\": 32}}}",
    };
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(test_write_file(path, v5[k], strlen(v5[k])), 0);
        snprintf(cmd, sizeof cmd, fmt, PRISM_BIN, copy, img);
        err = test_run(cmd, &st);
        ck_assert_msg(!strstr(err, "defaults"), "%s", err);
        if (k == 0) {
            ck_assert_int_eq(st, 0);
        } else {
            ck_assert_int_eq(st, 1);
            ck_assert_msg(strstr(err, "processor_config.json (image_processor)") &&
                          strstr(err, "32x32"), "%s", err);
        }
        free(err);
    }
    test_remove_dir(copy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_generate");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_caption_ids_match_golden, 0, 2);
    tcase_add_test(tc, test_caption_from_template);
    tcase_add_test(tc, test_bad_use);
    tcase_add_test(tc, test_unreadable_image);
    tcase_add_test(tc, test_image_processor_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
