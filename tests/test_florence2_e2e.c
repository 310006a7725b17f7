/* test_florence2_e2e.c - Florence-2 from prompt text to generated text
 * through the pali API, against transformers' Florence2Processor and
 * generate() (tools/reference/make_florence2_e2e_goldens.py).
 *
 * tests/data/florence2_tiny_tok is a tiny random Florence-2 whose
 * vocabulary is the BART byte-level BPE of tests/data/tok_bart (<loc_N>
 * rows scaled up so that outputs hold location tokens). For twenty cases
 * (task prompts as the processor constructs them, questions, Unicode text,
 * added tokens written in the text; five image files):
 *   - pali_tokenize(prompt): the text part of the processor's input_ids
 *     (<s>, the prompt, </s>), exact;
 *   - every case greedy and with 3 beams through one pali_gen (requests
 *     join in small groups at step boundaries, sequences limited so that
 *     later ones wait for earlier ones to finish), on both CPU backends:
 *     ids exact (the goldens' smallest top-1 / top-2 gap is 2e-3, far
 *     above the engine's 1e-4 logit error, test_florence2_golden.c), and
 *     pali_decode_florence2 with special tokens kept (what
 *     post_process_generation parses) and skipped, and pali_detokenize,
 *     exact against batch_decode. The goldens' "answer" (post-processing)
 *     is not checked here;
 *   - refusals: "<image>" in the text (-2), a prompt over the limit,
 *     invalid UTF-8, ids outside the vocabulary for decoding, a tokenizer
 *     whose "<image>" is not config.json's image_token_id; and a directory
 *     without tokenizer files (has_tokenizer false, text calls refused).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "image.h"
#include "json.h"
#include "pali.h"
#include "test_util.h"

#define MODEL "florence2_tiny_tok"
#define MAX_PROMPT 64

typedef struct fixture {
    prism_backend *be;
    pali_model *m;
    json_value *golden;
    const json_value *cases;
    int n_cases, max_new;
    float *px;    /* [n_cases, 3, S, S]: each case's image */
    size_t per;
} fixture;

static const json_value *member(const json_value *o, const char *key, json_type type)
{
    const json_value *v = json_get(o, key);
    ck_assert_msg(v && v->type == type, "golden: %s missing or of the wrong type", key);
    return v;
}

/* A JSON array of ids (malloc'd, at least one element). */
static int32_t *json_ids(const json_value *a, int *n)
{
    ck_assert(a->type == JSON_ARRAY);
    int32_t *ids = malloc((a->count + 1) * sizeof *ids);
    for (size_t i = 0; i < a->count; i++)
        ids[i] = (int32_t)a->items[i].integer;
    *n = (int)a->count;
    return ids;
}

static void ids_str(char *buf, size_t cap, const int32_t *ids, int n)
{
    buf[0] = '\0';
    for (int t = 0; t < n && strlen(buf) + 16 < cap; t++)
        snprintf(buf + strlen(buf), cap - strlen(buf), " %d", ids[t]);
}

static void open_fixture(fixture *f, bool reference)
{
    char dir[4096], path[4200], jerr[512];
    test_data_path(dir, sizeof dir, MODEL);
    snprintf(path, sizeof path, "%s.golden.json", dir);
    f->golden = json_parse_file(path, jerr, sizeof jerr);
    ck_assert_msg(f->golden != NULL, "%s", jerr);
    f->cases = member(f->golden, "cases", JSON_ARRAY);
    f->n_cases = (int)f->cases->count;
    f->max_new = (int)member(f->golden, "max_new_tokens", JSON_NUMBER)->integer;
    f->be = prism_cpu_backend_create(2, reference);
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_batch = 3;
    lim.max_seqs = 12;
    lim.max_beams = 3;
    lim.max_new_tokens = f->max_new;
    lim.max_prompt_tokens = MAX_PROMPT;
    prism_error err = {0};
    ck_assert_msg(pali_load(&f->m, dir, f->be, &lim, &err) == 0, "%s", err.msg);
    image_preproc pre;
    ck_assert_msg(image_preproc_load(&pre, dir, &err) == 0, "%s", err.msg);
    f->per = (size_t)3 * pre.width * pre.height;
    f->px = malloc((size_t)f->n_cases * f->per * sizeof *f->px);
    for (int k = 0; k < f->n_cases; k++) {
        const json_value *c = &f->cases->items[k];
        test_data_path(path, sizeof path, member(c, "image", JSON_STRING)->string);
        size_t len;
        char *data = test_read_file(path, &len);
        ck_assert_ptr_nonnull(data);
        image_rgb img;
        ck_assert_msg(image_decode_rgb((const uint8_t *)data, len, (size_t)1 << 26, &img, &err)
                      == 0, "%s", err.msg);
        ck_assert_int_eq(img.width, member(c, "width", JSON_NUMBER)->integer);
        ck_assert_int_eq(img.height, member(c, "height", JSON_NUMBER)->integer);
        ck_assert_msg(image_rgb_to_pixel_values(&img, &pre, f->px + k * f->per, &err) == 0,
                      "%s", err.msg);
        image_rgb_free(&img);
        free(data);
    }
}

static void close_fixture(fixture *f)
{
    pali_free(f->m);
    prism_backend_destroy(f->be);
    json_free(f->golden);
    free(f->px);
}

START_TEST(test_tokenize)
{
    fixture f;
    open_fixture(&f, false);
    const pali_info *info = pali_get_info(f.m);
    ck_assert(info->florence2 && info->has_tokenizer && !info->paligemma);
    prism_error err = {0};
    int32_t ids[MAX_PROMPT];
    for (int k = 0; k < f.n_cases; k++) {
        const json_value *c = &f.cases->items[k];
        const char *prompt = member(c, "prompt", JSON_STRING)->string;
        int n_want, n = -1;
        int32_t *want = json_ids(member(c, "input_ids", JSON_ARRAY), &n_want);
        ck_assert_msg(pali_tokenize(f.m, prompt, ids, MAX_PROMPT, &n, &err) == 0, "case %d: %s",
                      k, err.msg);
        char got_s[1024], want_s[1024];
        ids_str(got_s, sizeof got_s, ids, n);
        ids_str(want_s, sizeof want_s, want, n_want);
        ck_assert_msg(n == n_want && memcmp(ids, want, (size_t)n * sizeof *ids) == 0,
                      "case %d (%s): got [%s ] want [%s ]", k, prompt, got_s, want_s);
        /* exactly as many ids as the prompt needs fit; one fewer does not */
        ck_assert_msg(pali_tokenize(f.m, prompt, ids, n_want, &n, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(pali_tokenize(f.m, prompt, ids, n_want - 1, &n, &err), -1);
        ck_assert_msg(strstr(err.msg, "over the limit") != NULL, "%s", err.msg);
        free(want);
    }
    /* the image token written in the text */
    int n = 0;
    ck_assert_int_eq(pali_tokenize(f.m, "what is <image> here", ids, MAX_PROMPT, &n, &err), -2);
    ck_assert_msg(strstr(err.msg, "<image>") != NULL, "%s", err.msg);
    ck_assert_int_eq(pali_tokenize(f.m, "<image>", ids, MAX_PROMPT, &n, &err), -2);
    /* over the limit: a long text is refused, not truncated */
    char longtext[4096] = "";
    for (int i = 0; i < 200; i++)
        strcat(longtext, "a dog ");
    ck_assert_int_eq(pali_tokenize(f.m, longtext, ids, MAX_PROMPT, &n, &err), -1);
    ck_assert_msg(strstr(err.msg, "over the limit of 64 tokens") != NULL, "%s", err.msg);
    ck_assert_int_eq(pali_tokenize(f.m, "a", ids, 1, &n, &err), -1);
    ck_assert_int_eq(pali_tokenize(f.m, "a", ids, 0, &n, &err), -1);
    ck_assert_int_eq(pali_tokenize(f.m, "caf\xc3", ids, MAX_PROMPT, &n, &err), -1);
    ck_assert_msg(strstr(err.msg, "UTF-8 (byte 3)") != NULL, "%s", err.msg);
    /* prompt templates: the caption task token, the bare question */
    char buf[64];
    ck_assert_int_eq(pali_prompt_text(f.m, PALI_TASK_CAPTION, "de", NULL, buf, sizeof buf, &err),
                     0);
    ck_assert_str_eq(buf, "<CAPTION>");
    ck_assert_int_eq(pali_prompt_text(f.m, PALI_TASK_VQA, "en", "what is {lang}?", buf,
                                      sizeof buf, &err), 0);
    ck_assert_str_eq(buf, "what is {lang}?");
    ck_assert_int_eq(pali_prompt_text(f.m, PALI_TASK_VQA, "en", NULL, buf, sizeof buf, &err),
                     -1);
    close_fixture(&f);
}
END_TEST

/* Every case greedy and with 3 beams through one pali_gen: a few requests
 * join (one pali_gen_start) before each step while sequences are free. */
static void generate_all(fixture *f, const pali_request *reqs, int n, pali_result *res)
{
    prism_error err = {0};
    pali_gen *g = NULL;
    ck_assert_msg(pali_gen_create(&g, f->m, &err) == 0, "%s", err.msg);
    int next = 0, done = 0, steps = 0;
    while (done < n) {
        int k = 0, seqs = 0;
        while (next + k < n && k < 3 && pali_gen_free_requests(g) > k &&
               seqs + reqs[next + k].num_beams <= pali_gen_free_seqs(g))
            seqs += reqs[next + k++].num_beams;
        if (k > 0) {
            ck_assert_msg(pali_gen_start(g, reqs + next, k, NULL, &err) == 0, "%s", err.msg);
            next += k;
        }
        ck_assert_msg(pali_gen_running(g) > 0, "nothing running, %d of %d done", done, n);
        ck_assert_msg(pali_gen_step(g, &err) == 0, "%s", err.msg);
        ck_assert_int_lt(++steps, 100 * n);
        pali_result r;
        while (pali_gen_take(g, &r) == 1) {
            const int i = *(const int *)r.user;
            ck_assert(i >= 0 && i < n && res[i].ids == NULL);
            res[i] = r;
            done++;
        }
    }
    ck_assert_int_eq(next, n);
    pali_gen_free(g);
}

static void check_text(const pali_model *m, const pali_result *r, const json_value *want,
                       const char *what)
{
    prism_error err = {0};
    char *raw = NULL, *pure = NULL, *detok = NULL;
    ck_assert_msg(pali_decode_florence2(m, r->ids, r->n_ids, true, &raw, &err) == 0, "%s: %s",
                  what, err.msg);
    ck_assert_msg(pali_decode_florence2(m, r->ids, r->n_ids, false, &pure, &err) == 0, "%s: %s",
                  what, err.msg);
    ck_assert_msg(pali_detokenize(m, r->ids, r->n_ids, &detok, &err) == 0, "%s: %s", what,
                  err.msg);
    const char *want_raw = member(want, "raw", JSON_STRING)->string;
    const char *want_pure = member(want, "pure", JSON_STRING)->string;
    ck_assert_msg(strcmp(raw, want_raw) == 0, "%s raw: got \"%s\" want \"%s\"", what, raw,
                  want_raw);
    ck_assert_msg(strcmp(pure, want_pure) == 0, "%s pure: got \"%s\" want \"%s\"", what, pure,
                  want_pure);
    ck_assert_str_eq(detok, want_pure);
    free(raw);
    free(pure);
    free(detok);
}

START_TEST(test_generate)
{
    fixture f;
    open_fixture(&f, _i == 1);
    prism_error err = {0};
    const int n = 2 * f.n_cases;
    pali_request *reqs = calloc((size_t)n, sizeof *reqs);
    int *index = calloc((size_t)n, sizeof *index);
    int32_t **prompts = calloc((size_t)f.n_cases, sizeof *prompts);
    for (int k = 0; k < f.n_cases; k++) {
        const json_value *c = &f.cases->items[k];
        int np = 0;
        prompts[k] = malloc(MAX_PROMPT * sizeof **prompts);
        ck_assert_msg(pali_tokenize(f.m, member(c, "prompt", JSON_STRING)->string, prompts[k],
                                    MAX_PROMPT, &np, &err) == 0, "%s", err.msg);
        for (int b = 0; b < 2; b++) {
            const int i = 2 * k + b;
            index[i] = i;
            reqs[i] = (pali_request){.pixels = f.px + (size_t)k * f.per,
                                     .prompt_ids = prompts[k], .n_prompt = np,
                                     .max_new_tokens = f.max_new, .num_beams = b ? 3 : 1,
                                     .length_penalty = 1.0f, .user = &index[i]};
        }
    }
    pali_result *res = calloc((size_t)n, sizeof *res);
    generate_all(&f, reqs, n, res);
    for (int i = 0; i < n; i++) {
        const json_value *c = &f.cases->items[i / 2];
        const json_value *want = member(c, i % 2 ? "beam3" : "greedy", JSON_OBJECT);
        char what[160];
        snprintf(what, sizeof what, "case %d %s (%s, %s)", i / 2, i % 2 ? "beam3" : "greedy",
                 member(c, "text", JSON_STRING)->string, _i ? "reference" : "fast");
        int n_want;
        int32_t *want_ids = json_ids(member(want, "ids", JSON_ARRAY), &n_want);
        char got_s[1024], want_s[1024];
        ids_str(got_s, sizeof got_s, res[i].ids, res[i].n_ids);
        ids_str(want_s, sizeof want_s, want_ids, n_want);
        ck_assert_msg(res[i].n_ids == n_want &&
                      memcmp(res[i].ids, want_ids, (size_t)n_want * sizeof *want_ids) == 0,
                      "%s: got [%s ] want [%s ]", what, got_s, want_s);
        check_text(f.m, &res[i], want, what);
        free(want_ids);
        pali_result_free(&res[i]);
    }
    for (int k = 0; k < f.n_cases; k++)
        free(prompts[k]);
    free(prompts);
    free(res);
    free(index);
    free(reqs);
    close_fixture(&f);
}
END_TEST

START_TEST(test_decode_errors)
{
    fixture f;
    open_fixture(&f, false);
    prism_error err = {0};
    char *out = (char *)"untouched";
    const int32_t past[] = {0, 52, 5029, 2}, negative[] = {0, -1}, big[] = {INT32_MAX};
    ck_assert_int_eq(pali_decode_florence2(f.m, past, 4, true, &out, &err), -1);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err.msg, "5029") != NULL, "%s", err.msg);
    ck_assert_int_eq(pali_decode_florence2(f.m, negative, 2, false, &out, &err), -1);
    ck_assert_int_eq(pali_decode_florence2(f.m, big, 1, true, &out, &err), -1);
    ck_assert_int_eq(pali_detokenize(f.m, past, 4, &out, &err), -1);
    ck_assert_int_eq(pali_decode_florence2(f.m, past, -1, true, &out, &err), -1);
    /* nothing to decode: the empty text */
    ck_assert_msg(pali_decode_florence2(f.m, past, 0, true, &out, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(out, "");
    free(out);
    /* special tokens: kept raw, dropped otherwise (4005 is <loc_0>, 5025 <image>) */
    const int32_t special[] = {0, 4005, 5025, 2};
    ck_assert_int_eq(pali_decode_florence2(f.m, special, 4, true, &out, &err), 0);
    ck_assert_str_eq(out, "<s><loc_0><image></s>");
    free(out);
    ck_assert_int_eq(pali_decode_florence2(f.m, special, 4, false, &out, &err), 0);
    ck_assert_str_eq(out, "");
    free(out);
    close_fixture(&f);
}
END_TEST

/* config.json with one "key": value replaced (the file as the script writes it). */
static void edit_config(const char *dir, const char *from, const char *to)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = test_read_file(path, &len);
    ck_assert_ptr_nonnull(text);
    char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "config.json has no %s", from);
    char *out = malloc(len + strlen(to) + 1);
    const size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    ck_assert_int_eq(test_write_file(path, out, strlen(out)), 0);
    free(out);
    free(text);
}

START_TEST(test_load_checks)
{
    prism_backend *be = prism_cpu_backend_create(1, false);
    prism_error err = {0};
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_prompt_tokens = MAX_PROMPT;
    pali_model *m = NULL;
    char dir[4096];
    ck_assert(pali_is_generation_dir(test_data_path(dir, sizeof dir, MODEL)));
    /* the tokenizer's <image> is 5025: config.json says 5024 */
    char *bad = test_copy_model(MODEL);
    edit_config(bad, "\"image_token_id\": 5025", "\"image_token_id\": 5024");
    ck_assert_int_eq(pali_load(&m, bad, be, &lim, &err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "5025") && strstr(err.msg, "5024") &&
                  strstr(err.msg, "image_token_id"), "%s", err.msg);
    test_remove_dir(bad);
    /* no tokenizer files: the model loads; text calls are refused */
    char *bare = test_copy_model(MODEL);
    static const char *const tok_files[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                            "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", bare, tok_files[i]);
        ck_assert_int_eq(unlink(path), 0);
    }
    ck_assert_msg(pali_load(&m, bare, be, &lim, &err) == 0, "%s", err.msg);
    ck_assert(pali_get_info(m)->florence2 && !pali_get_info(m)->has_tokenizer);
    int32_t ids[8];
    int n;
    char *out = NULL;
    ck_assert_int_eq(pali_tokenize(m, "a", ids, 8, &n, &err), -1);
    ck_assert_msg(strstr(err.msg, "tokenizer.json") != NULL, "%s", err.msg);
    ck_assert_int_eq(pali_decode_florence2(m, ids, 0, true, &out, &err), -1);
    ck_assert_int_eq(pali_detokenize(m, ids, 0, &out, &err), -1);
    pali_free(m);
    test_remove_dir(bare);
    prism_backend_destroy(be);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("florence2_e2e");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_tokenize);
    tcase_add_loop_test(tc, test_generate, 0, 2);
    tcase_add_test(tc, test_decode_errors);
    tcase_add_test(tc, test_load_checks);
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
