/* test_tokenizer_bpe.c - SentencePiece BPE models and SigLIP 2's text
 * pipeline (the Gemma tokenizer with lowering) against transformers'
 * Siglip2Tokenizer and sentencepiece.
 *
 * Goldens: tools/reference/make_gemma_tokenizer_goldens.py trained two small
 * BPE models with the Gemma layout (tests/data/tok_gemma, tok_gemma_b),
 * made from each the directory a SigLIP 2 checkpoint ships (tokenizer.model,
 * the converter's tokenizer.json, tokenizer_config.json) and dumped, for
 * over 2,000 strings, Siglip2Tokenizer's 64 input_ids and sentencepiece's
 * own normalize/encode/decode. Every id must be equal.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sp_model.h"
#include "test_util.h"
#include "tok_golden.h"
#include "tokenizer.h"



static tok_tokenizer *load_dir(const char *rel)
{
    char path[4096];
    test_data_path(path, sizeof path, rel);
    prism_error err = {0};
    tok_tokenizer *t = NULL;
    ck_assert_msg(tok_load(&t, path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(tok_get_kind(t), TOK_KIND_SIGLIP2);
    return t;
}

/* ------------------------------------------------------------------ goldens */

static const char *const goldens[] = {"tok_gemma.golden.bin", "tok_gemma_b.golden.bin"};

START_TEST(test_siglip2_golden)
{
    gold g;
    gstr model, uver;
    uint64_t n;
    g_open(&g, goldens[_i], &model, &uver, &n);
    char rel[512];
    snprintf(rel, sizeof rel, "%.*s", (int)model.n, model.s);
    tok_tokenizer *t = load_dir(rel);
    const sp_model *m = tok_model(t);
    tally ids_t = {0}, ntok = {0}, whole_t = {0}, norm = {0}, enc = {0}, pieces = {0}, dec = {0};
    size_t n_long = 0;
    for (uint64_t r = 0; r < n; r++) {
        ck_assert(g.p < g.end);
        ck_assert_int_eq(*g.p++, 5);
        gstr text = g_str(&g);
        gids want = g_ids(&g);
        uint64_t want_n = g_varint(&g);
        ck_assert_uint_eq(want.n, TOK_SIGLIP_MAX_LEN);
        int32_t got[TOK_SIGLIP_MAX_LEN], whole[TOK_SIGLIP_MAX_LEN];
        int got_n = -1, whole_n = -1;
        prism_error err = {0};
        if (tok_siglip_encode(t, text.s, text.n, got, TOK_SIGLIP_MAX_LEN, &got_n, &err) != 0) {
            tally_err(&ids_t, "tok_siglip_encode", text, err.msg);
        } else {
            tally_ids(&ids_t, "tok_siglip_encode", text, got, TOK_SIGLIP_MAX_LEN, want.v, want.n);
            int32_t gn = got_n, wn = (int32_t)want_n;
            tally_ids(&ntok, "n_tokens", text, &gn, 1, &wn, 1);
        }
        if (tok_siglip_encode_whole(t, text.s, text.n, whole, TOK_SIGLIP_MAX_LEN, &whole_n,
                                    &err) != 0)
            tally_err(&whole_t, "tok_siglip_encode_whole", text, err.msg);
        else
            tally_ids(&whole_t, "tok_siglip_encode_whole", text, whole, TOK_SIGLIP_MAX_LEN,
                      want.v, want.n);
        n_long += text.n > 1000;
        if (g_varint(&g))
            check_sp_fields(m, &g, text, &norm, &enc, &pieces, &dec);
        free(want.v);
    }
    ck_assert_msg(g.p == g.end, "trailing bytes in golden file");
    printf("%s: %llu strings (%zu over 1000 bytes), pads on the %s\n", rel,
           (unsigned long long)n, n_long, tok_pads_left(t) ? "left" : "right");
    report("siglip2 ids", &ids_t);
    report("siglip2 n_tokens", &ntok);
    report("siglip2 ids (whole text)", &whole_t);
    report("sp (BPE) normalize", &norm);
    report("sp (BPE) encode ids", &enc);
    report("sp (BPE) encode pieces", &pieces);
    report("sp (BPE) decode of encode", &dec);
    tok_free(t);
    free(g.buf);
}
END_TEST

/* ------------------------------------------------------------------ reading a prefix */

/* Long texts built from the golden strings: the prefix reading equals the
 * whole-text definition, and a long text with spaces reads a few KB. */
START_TEST(test_siglip2_prefix)
{
    gold g;
    gstr model, uver;
    uint64_t n;
    g_open(&g, goldens[_i], &model, &uver, &n);
    char rel[512];
    snprintf(rel, sizeof rel, "%.*s", (int)model.n, model.s);
    tok_tokenizer *t = load_dir(rel);
    gstr *texts = calloc(n, sizeof *texts);
    for (uint64_t r = 0; r < n; r++) {
        g.p++;
        texts[r] = g_str(&g);
        free(g_ids(&g).v);
        (void)g_varint(&g);
        if (g_varint(&g)) { /* skip the SP fields */
            (void)g_str(&g);
            free(g_ids(&g).v);
            for (uint64_t k = g_varint(&g); k > 0; k--) {
                (void)g_varint(&g);
                (void)g_str(&g);
            }
            uint64_t d = g_varint(&g);
            g.p += d ? d - 1 : 0;
        }
    }
    static const char *const seps[] = {" ", "  ", "\t", "\n", " \n ", "<eos>", "\xe2\x96\x81", "x ",
                                       " <start_of_turn> ", "\xe3\x80\x80", ". "};
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    long checked = 0, reads = 0;
    for (uint64_t r = 0; r < n; r += 3) {
        size_t len = 0;
        for (uint64_t k = r; len < 12000; k = (k * 7 + 3) % n) {
            gstr a = texts[k];
            const char *sep = seps[(k + r) % (sizeof seps / sizeof seps[0])];
            if (len + a.n + strlen(sep) >= cap)
                break;
            memcpy(buf + len, a.s, a.n);
            len += a.n;
            memcpy(buf + len, sep, strlen(sep));
            len += strlen(sep);
        }
        int32_t a[TOK_SIGLIP_MAX_LEN], b[TOK_SIGLIP_MAX_LEN];
        int na, nb;
        size_t read = 0;
        prism_error err = {0};
        ck_assert_msg(tok_siglip_encode_counted(t, buf, len, a, TOK_SIGLIP_MAX_LEN, &na, &read,
                                                &err) == 0, "%s", err.msg);
        ck_assert_msg(tok_siglip_encode_whole(t, buf, len, b, TOK_SIGLIP_MAX_LEN, &nb, &err) == 0,
                      "%s", err.msg);
        ck_assert_msg(na == nb && memcmp(a, b, sizeof a) == 0,
                      "prefix and whole differ on the text built from string %llu",
                      (unsigned long long)r);
        checked++;
        reads += read < len;
    }
    printf("%s: %ld long texts, prefix == whole, %ld read in part\n", rel, checked, reads);
    ck_assert_int_gt(reads, checked / 2);
    /* 16 MB of words: a few KB tokenized */
    const size_t big = 16u << 20;
    char *text = malloc(big);
    static const char filler[] = "a photo of the cat on the table ";
    for (size_t i = 0; i < big; i++)
        text[i] = filler[i % (sizeof filler - 1)];
    int32_t ids[TOK_SIGLIP_MAX_LEN];
    int nt;
    size_t read;
    prism_error err = {0};
    ck_assert(tok_siglip_encode_counted(t, text, big, ids, TOK_SIGLIP_MAX_LEN, &nt, &read,
                                        &err) == 0);
    ck_assert_int_eq(nt, TOK_SIGLIP_MAX_LEN);
    ck_assert_uint_le(read, 4096);
    text[big - 1] = (char)0xff; /* still checked to the end */
    ck_assert(tok_siglip_encode(t, text, big, ids, TOK_SIGLIP_MAX_LEN, &nt, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    free(text);
    free(buf);
    free(texts);
    tok_free(t);
    free(g.buf);
}
END_TEST

/* ------------------------------------------------------------------ loading */

static char *g_model;
static size_t g_model_len;

/* A directory with tokenizer.model and the given tokenizer_config.json (NULL:
 * none); returns the error message of tok_load ("" when it loads). */
static void expect_dir(const char *config, const char *needle)
{
    char dir[] = "/tmp/prism_tok_bpe_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char mp[512], cp[512];
    snprintf(mp, sizeof mp, "%s/tokenizer.model", dir);
    snprintf(cp, sizeof cp, "%s/tokenizer_config.json", dir);
    ck_assert_int_eq(test_write_file(mp, g_model, g_model_len), 0);
    if (config)
        ck_assert_int_eq(test_write_file(cp, config, strlen(config)), 0);
    tok_tokenizer *t = NULL;
    prism_error err = {0};
    int rc = tok_load(&t, dir, &err);
    if (needle) {
        ck_assert_msg(rc != 0, "loading should fail with '%s' (config %s)", needle,
                      config ? config : "none");
        ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
        ck_assert_ptr_nonnull(strstr(err.msg, config ? "tokenizer_config.json" : "tokenizer_config"));
    } else {
        ck_assert_msg(rc == 0, "%s", err.msg);
        tok_free(t);
    }
    unlink(mp);
    unlink(cp);
    rmdir(dir);
}

START_TEST(test_siglip2_load)
{
    char path[4096];
    test_data_path(path, sizeof path, "tok_gemma/tokenizer.model");
    g_model = test_read_file(path, &g_model_len);
    ck_assert_ptr_nonnull(g_model);
    expect_dir(NULL, "cannot open");
    expect_dir("[1]", "not a JSON object");
    expect_dir("{\"add_bos_token\": false, \"add_eos_token\": true}", "tokenizer_class");
    expect_dir("{\"tokenizer_class\": \"T5Tokenizer\", \"add_bos_token\": false, "
               "\"add_eos_token\": true}",
               "tokenizer_class 'T5Tokenizer'");
    expect_dir("{\"tokenizer_class\": \"GemmaTokenizer\", \"add_bos_token\": false}",
               "add_eos_token");
    expect_dir("{\"tokenizer_class\": \"GemmaTokenizer\", \"add_eos_token\": true}",
               "add_bos_token");
    expect_dir("{\"tokenizer_class\": \"Siglip2Tokenizer\", \"add_bos_token\": false, "
               "\"add_eos_token\": true, \"padding_side\": \"middle\"}",
               "padding_side");
    expect_dir("{\"tokenizer_class\": \"Siglip2Tokenizer\", \"add_bos_token\": false, "
               "\"add_eos_token\": true, \"truncation_side\": \"left\"}",
               "truncation_side");
    expect_dir("{\"tokenizer_class\": \"GemmaTokenizerFast\", \"add_bos_token\": true, "
               "\"add_eos_token\": false, \"padding_side\": \"right\"}",
               NULL);

    /* the Gemma layout is required, and a BPE model */
    tok_siglip2_config cfg = {.add_bos = false, .add_eos = true, .pad_left = true};
    tok_tokenizer *t = NULL;
    prism_error err = {0};
    char unigram[4096];
    test_data_path(unigram, sizeof unigram, "tok_siglip/spiece.model");
    ck_assert(tok_load_siglip2_file(&t, unigram, &cfg, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "BPE"));
    ck_assert_ptr_nonnull(strstr(err.msg, "spiece.model"));
    char spm_b[4096];
    test_data_path(spm_b, sizeof spm_b, "tok_spm_b/spiece.model");
    ck_assert(tok_load_siglip2_file(&t, spm_b, &cfg, &err) != 0);

    /* no tokenizer at all */
    char dir[] = "/tmp/prism_tok_bpe_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert(tok_load(&t, dir, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "spiece.model: cannot open (and there is no tokenizer.model)"));
    rmdir(dir);

    /* encoding limits and the SigLIP-only decode */
    ck_assert_int_eq(tok_load_siglip2_memory(&t, g_model, g_model_len, "mem", &cfg, &err), 0);
    int32_t ids[4];
    ck_assert(tok_siglip_encode(t, "a", 1, ids, 1, NULL, &err) != 0); /* <eos> needs a slot */
    ck_assert_int_eq(tok_siglip_encode(t, "a", 1, ids, 2, NULL, &err), 0);
    ck_assert_int_eq(ids[1], tok_eos_id(t));
    ck_assert(tok_siglip_encode(t, "a\xc3", 2, ids, 4, NULL, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "byte 1"));
    char *out = NULL;
    ck_assert(tok_siglip_decode(t, ids, 1, false, &out, NULL, &err) != 0);
    ck_assert_int_eq(tok_pad_id(t), 0);
    ck_assert_int_eq(tok_eos_id(t), 1);
    tok_free(t);
    free(g_model);
}
END_TEST

/* A Gemma-size vocabulary: tok_gemma's model plus synthetic pieces up to
 * 262,144 (pieces appended to a protobuf join its repeated field). */
START_TEST(test_bpe_large_vocabulary)
{
    char path[4096];
    size_t len;
    test_data_path(path, sizeof path, "tok_gemma/tokenizer.model");
    char *base = test_read_file(path, &len);
    ck_assert_ptr_nonnull(base);
    const int32_t target = 262144;
    size_t cap = len + (size_t)target * 24;
    unsigned char *buf = malloc(cap);
    memcpy(buf, base, len);
    size_t w = len;
    for (int32_t i = 0; i < target - 4000; i++) {
        char piece[16];
        int pl = snprintf(piece, sizeof piece, "\xe2\x96\x81q%07d", i);
        float score = -5000.0f - (float)i;
        unsigned char msg[32];
        size_t m = 0;
        msg[m++] = 0x0a; /* piece */
        msg[m++] = (unsigned char)pl;
        memcpy(msg + m, piece, (size_t)pl);
        m += (size_t)pl;
        msg[m++] = 0x15; /* score, fixed32 */
        memcpy(msg + m, &score, 4);
        m += 4;
        buf[w++] = 0x0a; /* ModelProto.pieces */
        buf[w++] = (unsigned char)m;
        memcpy(buf + w, msg, m);
        w += m;
    }
    tok_siglip2_config cfg = {.add_bos = false, .add_eos = true, .pad_left = true};
    tok_tokenizer *t = NULL;
    prism_error err = {0};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_assert_msg(tok_load_siglip2_memory(&t, buf, w, "large", &cfg, &err) == 0, "%s", err.msg);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("a BPE model of %d pieces (%zu bytes) loads in %.1f ms\n",
           tok_vocab_size(t), w, ms);
    ck_assert_int_ge(tok_vocab_size(t), target - 10);
    int32_t ids[TOK_SIGLIP_MAX_LEN];
    int n;
    ck_assert_int_eq(tok_siglip_encode(t, "a photo q0000012", 16, ids, TOK_SIGLIP_MAX_LEN, &n,
                                       &err), 0);
    tok_free(t);
    free(buf);
    free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer_bpe");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_siglip2_golden, 0, 2);
    tcase_add_loop_test(tc, test_siglip2_prefix, 0, 2);
    tcase_add_test(tc, test_siglip2_load);
    tcase_add_test(tc, test_bpe_large_vocabulary);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
