/* test_tok_bytebpe.c - BART's byte-level BPE (Florence-2's tokenizer)
 * against transformers' BartTokenizer.
 *
 * Goldens: tools/reference/make_bytebpe_goldens.py trained a small byte-level
 * BPE with the tokenizers library, laid it out as a Florence-2 checkpoint's
 * tokenizer (tests/data/tok_bart: tokenizer.json, vocab.json, merges.txt,
 * tokenizer_config.json with the 1,000 <loc_N> and the other Florence
 * tokens) and dumped, for over 4,000 strings, tokenizer(text,
 * add_special_tokens=False)'s ids and their decode with both
 * skip_special_tokens values, and the decodes of random id lists. Every id
 * and every byte must be equal.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "tok_bytebpe.h"
#include "tok_golden.h"

static tok_bytebpe *load_dir(const char *dir)
{
    prism_error err = {0};
    tok_bytebpe *t = NULL;
    ck_assert_msg(tok_bytebpe_load(&t, dir, &err) == 0, "%s", err.msg);
    return t;
}

static tok_bytebpe *load_fixture(void)
{
    char path[4096];
    test_data_path(path, sizeof path, "tok_bart");
    return load_dir(path);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ goldens */

/* A decode field: 0 (the text itself) or length + 1 and the bytes. */
static gstr g_dec(gold *g, gstr text)
{
    uint64_t flag = g_varint(g);
    if (!flag)
        return text;
    ck_assert(flag - 1 <= (uint64_t)(g->end - g->p));
    gstr r = {(const char *)g->p, (size_t)(flag - 1)};
    g->p += flag - 1;
    return r;
}

static void check_decode(const tok_bytebpe *t, tally *ta, const char *what, gstr text,
                         const int32_t *ids, size_t n, bool skip, gstr want)
{
    char *out = NULL;
    size_t len = 0;
    prism_error err = {0};
    if (tok_bytebpe_decode(t, ids, n, skip, &out, &len, &err) != 0) {
        tally_err(ta, what, text, err.msg);
        return;
    }
    ck_assert(out[len] == '\0');
    tally_str(ta, what, text, out, len, want.s, want.n);
    free(out);
}

/* Encodes every golden text with t and tallies the ids (and, when dec is
 * set, the decodes and the decode-only records). */
static void run_goldens(const tok_bytebpe *t, bool dec, const char *label)
{
    gold g;
    gstr model, uver;
    uint64_t n;
    g_open(&g, "tok_bart.golden.bin", &model, &uver, &n);
    tally enc = {0}, d0 = {0}, d1 = {0}, l0 = {0}, l1 = {0};
    size_t n_text = 0, n_lists = 0, max_ids = 0;
    for (uint64_t r = 0; r < n; r++) {
        ck_assert(g.p < g.end);
        uint8_t kind = *g.p++;
        if (kind == 6) {
            gstr text = g_str(&g);
            gids want = g_ids(&g);
            gstr want0 = g_dec(&g, text), want1 = g_dec(&g, text);
            size_t cap = text.n + 1, got_n = 0;
            int32_t *got = malloc(cap * sizeof *got);
            prism_error err = {0};
            if (tok_bytebpe_encode(t, text.s, text.n, got, cap, &got_n, &err) != 0) {
                tally_err(&enc, "tok_bytebpe_encode", text, err.msg);
            } else {
                tally_ids(&enc, "tok_bytebpe_encode", text, got, got_n, want.v, want.n);
                max_ids = got_n > max_ids ? got_n : max_ids;
            }
            if (dec) {
                check_decode(t, &d0, "decode", text, want.v, want.n, false, want0);
                check_decode(t, &d1, "decode(skip_special)", text, want.v, want.n, true, want1);
            }
            free(got);
            free(want.v);
            n_text++;
        } else {
            ck_assert_int_eq(kind, 7);
            gids ids = g_ids(&g);
            gstr want0 = g_str(&g), want1 = g_str(&g);
            char label_ids[512];
            format_ids(label_ids, sizeof label_ids, ids.v, ids.n);
            gstr what = {label_ids, strlen(label_ids)};
            if (dec) {
                check_decode(t, &l0, "decode", what, ids.v, ids.n, false, want0);
                check_decode(t, &l1, "decode(skip_special)", what, ids.v, ids.n, true, want1);
            }
            free(ids.v);
            n_lists++;
        }
    }
    ck_assert_msg(g.p == g.end, "trailing bytes in golden file");
    printf("%s: %zu strings (up to %zu ids), %zu id lists; tables: %s, goldens: Unicode %.*s\n",
           label, n_text, max_ids, n_lists, tok_bytebpe_unicode_source, (int)uver.n, uver.s);
    ck_assert_uint_ge(n_text, 2000);
    report("encode ids", &enc);
    if (dec) {
        ck_assert_uint_ge(n_lists, 300);
        report("decode of the ids", &d0);
        report("decode, skip_special", &d1);
        report("decode of id lists", &l0);
        report("decode of id lists, skip", &l1);
    }
    free(g.buf);
}

START_TEST(test_golden)
{
    tok_bytebpe *t = load_fixture();
    run_goldens(t, true, "tok_bart (tokenizer.json)");
    tok_bytebpe_free(t);
}
END_TEST

/* Without tokenizer.json: vocab.json + merges.txt and tokenizer_config.json's
 * added tokens give the same ids. */
START_TEST(test_golden_vocab_merges)
{
    char *dir = test_copy_model("tok_bart");
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    ck_assert_int_eq(unlink(path), 0);
    tok_bytebpe *t = load_dir(dir);
    run_goldens(t, true, "tok_bart (vocab.json + merges.txt)");
    tok_bytebpe_free(t);
    test_remove_dir(dir);
}
END_TEST

/* ------------------------------------------------------------------ lookups */

static int32_t id_of(const tok_bytebpe *t, const char *s)
{
    return tok_bytebpe_token_id(t, s, strlen(s));
}

START_TEST(test_lookups)
{
    tok_bytebpe *t = load_fixture();
    /* the layout the golden script wrote: 4,000 trained tokens and <mask>, then Florence's */
    ck_assert_int_eq(tok_bytebpe_bos_id(t), 0);
    ck_assert_int_eq(tok_bytebpe_pad_id(t), 1);
    ck_assert_int_eq(tok_bytebpe_eos_id(t), 2);
    ck_assert_int_eq(id_of(t, "<s>"), 0);
    ck_assert_int_eq(id_of(t, "</s>"), 2);
    ck_assert_int_eq(id_of(t, "<unk>"), 3);
    ck_assert_int_eq(id_of(t, "<mask>"), 4000);
    ck_assert_int_eq(id_of(t, "<od>"), 4001);
    ck_assert_int_eq(id_of(t, "<loc_0>"), 4005);
    ck_assert_int_eq(id_of(t, "<loc_5>"), 4010);
    ck_assert_int_eq(id_of(t, "<loc_999>"), 5004);
    ck_assert_int_eq(id_of(t, "<and>"), 5024);
    ck_assert_int_eq(id_of(t, "<image>"), 5025); /* florence2's image_token_id: after <and> */
    ck_assert_int_eq(id_of(t, " (c)"), 5028);
    ck_assert_int_eq(tok_bytebpe_vocab_size(t), 5029);
    ck_assert_int_eq(id_of(t, "<loc_1000>"), -1);
    ck_assert_int_eq(id_of(t, ""), -1);
    ck_assert_int_eq(id_of(t, "!"), 0 + id_of(t, "!")); /* a byte symbol */
    ck_assert_int_ge(id_of(t, "!"), 4);
    ck_assert(tok_bytebpe_is_special(t, 4010));
    ck_assert(tok_bytebpe_is_special(t, 0));
    ck_assert(!tok_bytebpe_is_special(t, 5028));
    ck_assert(!tok_bytebpe_is_special(t, 5029));
    size_t len = 0;
    const char *s = tok_bytebpe_id_token(t, 5025, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq((int)len, 7);
    ck_assert(memcmp(s, "<image>", 7) == 0);
    ck_assert_ptr_null(tok_bytebpe_id_token(t, 5029, &len));
    ck_assert_ptr_null(tok_bytebpe_id_token(t, -1, &len));
    /* a Florence prompt as the processor writes it */
    static const char prompt[] = "<image><s>What does the image describe?</s>";
    int32_t ids[64];
    size_t n = 0;
    prism_error err = {0};
    ck_assert_msg(tok_bytebpe_encode(t, prompt, strlen(prompt), ids, 64, &n, &err) == 0, "%s",
                  err.msg);
    ck_assert_uint_ge(n, 5);
    ck_assert_int_eq(ids[0], 5025);
    ck_assert_int_eq(ids[1], 0);
    ck_assert_int_eq(ids[n - 1], 2);
    char *out = NULL;
    ck_assert_int_eq(tok_bytebpe_decode(t, ids, n, true, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "What does the image describe?");
    free(out);
    tok_bytebpe_free(t);
}
END_TEST

/* ------------------------------------------------------------------ limits and abuse */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Encodes text (bound: one id per byte), checks the decode gives it back. */
static size_t encode_roundtrip(const tok_bytebpe *t, const char *what, const char *text,
                               size_t len)
{
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    size_t n = 0;
    prism_error err = {0};
    double t0 = now_ms();
    ck_assert_msg(tok_bytebpe_encode(t, text, len, ids, len + 1, &n, &err) == 0, "%s: %s", what,
                  err.msg);
    double t1 = now_ms();
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_le(n, len);
    char *out = NULL;
    size_t out_len = 0;
    ck_assert_int_eq(tok_bytebpe_decode(t, ids, n, false, &out, &out_len, &err), 0);
    ck_assert_msg(out_len == len && memcmp(out, text, len) == 0, "%s: decode differs", what);
    printf("  %-34s %8zu bytes -> %7zu ids in %7.1f ms\n", what, len, n, t1 - t0);
    free(out);
    free(ids);
    return n;
}

START_TEST(test_abuse)
{
    tok_bytebpe *t = load_fixture();
    const size_t big = 1u << 20;
    char *text = malloc(big + 8);

    /* one word of 1 MB: one BPE word, O(n log n) merges */
    memset(text, 'l', big);
    size_t n = encode_roundtrip(t, "1 MB of 'l'", text, big);
    ck_assert_uint_eq(n, big / 2); /* "ll" is in the vocabulary, "llll" is not */
    memset(text, 'a', big);
    encode_roundtrip(t, "1 MB of 'a'", text, big);
    for (size_t i = 0; i < big; i++)
        text[i] = "ab"[i % 2];
    encode_roundtrip(t, "1 MB of 'ab'", text, big);
    /* 1 MB of white space (the \s+(?!\S) rule) and of one CJK character */
    memset(text, ' ', big);
    text[big - 1] = 'x';
    encode_roundtrip(t, "1 MB of spaces", text, big);
    for (size_t i = 0; i + 3 <= big; i += 3)
        memcpy(text + i, "\xe4\xb8\x80", 3);
    encode_roundtrip(t, "1 MB of U+4E00", text, big - big % 3);
    /* near-misses of added tokens everywhere: the added-token scan */
    for (size_t i = 0; i + 6 <= big; i += 6)
        memcpy(text + i, "<loc_1", 6);
    encode_roundtrip(t, "1 MB of '<loc_1'", text, big - big % 6);

    /* 1 MB of random code points (no surrogates), as UTF-8 */
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    size_t len = 0;
    while (len + 4 <= big) {
        uint64_t r = rng_next(&seed);
        uint32_t cp;
        switch (r % 4) {
        case 0: cp = (uint32_t)(r >> 8) % 0x80; break;
        case 1: cp = 0x80 + (uint32_t)(r >> 8) % 0x780; break;
        case 2: cp = 0x800 + (uint32_t)(r >> 8) % 0xF800; break;
        default: cp = 0x10000 + (uint32_t)(r >> 8) % 0x100000; break;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        len += tok_utf8_encode(cp, text + len);
    }
    encode_roundtrip(t, "1 MB of random code points", text, len);

    /* the id bound */
    int32_t ids[8];
    size_t got = 99;
    prism_error err = {0};
    static const char photo[] = "a photo of a cat";
    ck_assert(tok_bytebpe_encode(t, photo, strlen(photo), ids, 2, &got, &err) != 0);
    ck_assert_msg(strstr(err.msg, "more than 2 tokens") != NULL, "%s", err.msg);
    ck_assert_uint_eq(got, 0);
    memset(text, 'a', big);
    ck_assert(tok_bytebpe_encode(t, text, big, ids, 8, &got, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "more than 8 tokens"));
    ck_assert_int_eq(tok_bytebpe_encode(t, "", 0, ids, 0, &got, &err), 0);
    ck_assert_uint_eq(got, 0);

    /* invalid UTF-8 names the byte */
    static const struct {
        const char *s;
        size_t len, at;
    } bad[] = {
        {"ab\xff" "c", 4, 2},      {"a\xe2\x82", 3, 1},      {"\xc0\x80", 2, 0},
        {"xx\xed\xa0\x80", 5, 2},  {"\xf4\x90\x80\x80", 4, 0}, {"ok \x80", 4, 3},
        {"<s>\xc3(", 5, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "(byte %zu)", bad[i].at);
        ck_assert(tok_bytebpe_encode(t, bad[i].s, bad[i].len, ids, 8, &got, &err) != 0);
        ck_assert_msg(strstr(err.msg, want) && strstr(err.msg, "UTF-8"), "case %zu: %s", i,
                      err.msg);
    }
    /* a negative id */
    char *out = NULL;
    int32_t neg[] = {5, -1};
    ck_assert(tok_bytebpe_decode(t, neg, 2, false, &out, NULL, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "position 1"));
    ck_assert_ptr_null(out);
    free(text);
    tok_bytebpe_free(t);
}
END_TEST

/* ------------------------------------------------------------------ threads */

typedef struct thread_arg {
    const tok_bytebpe *t;
    int seed;
    int bad;
} thread_arg;

static void *encode_many(void *p)
{
    thread_arg *a = p;
    static const char *const texts[] = {"<image><s>Locate the objects in the image.</s>",
                                        "a <loc_1><loc_2> b's  c\t\td", "Ünïcödé 東京 123 ٣٤"};
    int32_t first[3][64];
    size_t first_n[3];
    for (int k = 0; k < 2000; k++) {
        int i = (k + a->seed) % 3;
        int32_t ids[64];
        size_t n = 0;
        prism_error err = {0};
        if (tok_bytebpe_encode(a->t, texts[i], strlen(texts[i]), ids, 64, &n, &err) != 0) {
            a->bad++;
            continue;
        }
        if (k < 3) {
            memcpy(first[i], ids, n * sizeof *ids);
            first_n[i] = n;
        } else if (n != first_n[i] || memcmp(ids, first[i], n * sizeof *ids) != 0) {
            a->bad++;
        }
    }
    return NULL;
}

START_TEST(test_threads)
{
    tok_bytebpe *t = load_fixture();
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){.t = t, .seed = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, encode_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].bad, 0);
    }
    tok_bytebpe_free(t);
}
END_TEST

/* ------------------------------------------------------------------ loading */

static char *g_json, *g_config;
static size_t g_json_len, g_config_len;

/* s with the one occurrence of `from` replaced by `to` (malloc'd). */
static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    ck_assert_msg(at != NULL, "fixture lacks '%s'", from);
    ck_assert_msg(strstr(at + 1, from) == NULL, "fixture has '%s' twice", from);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    size_t a = (size_t)(at - s);
    memcpy(r, s, a);
    strcpy(r + a, to);
    strcat(r, at + strlen(from));
    return r;
}

/* A directory with the given tokenizer.json and tokenizer_config.json (NULL:
 * left out); loading must fail with a message holding both needles. */
static void expect_fail(const char *json, const char *config, const char *file,
                        const char *needle)
{
    char dir[] = "/tmp/prism_tok_bytebpe_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char jp[512], cp[512];
    snprintf(jp, sizeof jp, "%s/tokenizer.json", dir);
    snprintf(cp, sizeof cp, "%s/tokenizer_config.json", dir);
    if (json)
        ck_assert_int_eq(test_write_file(jp, json, strlen(json)), 0);
    if (config)
        ck_assert_int_eq(test_write_file(cp, config, strlen(config)), 0);
    tok_bytebpe *t = NULL;
    prism_error err = {0};
    int rc = tok_bytebpe_load(&t, dir, &err);
    ck_assert_msg(rc != 0, "loading should fail with '%s'", needle);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
    ck_assert_msg(strstr(err.msg, file) != NULL, "'%s' lacks '%s'", err.msg, file);
    unlink(jp);
    unlink(cp);
    rmdir(dir);
}

static void expect_json_fail(const char *from, const char *to, const char *needle)
{
    char *json = replace_once(g_json, from, to);
    expect_fail(json, g_config, "tokenizer.json", needle);
    free(json);
}

static void expect_config_fail(const char *from, const char *to, const char *needle)
{
    char *config = replace_once(g_config, from, to);
    expect_fail(g_json, config, "tokenizer_config.json", needle);
    free(config);
}

START_TEST(test_load_errors)
{
    char path[4096];
    test_data_path(path, sizeof path, "tok_bart/tokenizer.json");
    g_json = test_read_file(path, &g_json_len);
    test_data_path(path, sizeof path, "tok_bart/tokenizer_config.json");
    g_config = test_read_file(path, &g_config_len);
    ck_assert_ptr_nonnull(g_json);
    ck_assert_ptr_nonnull(g_config);

    expect_fail(NULL, NULL, "tokenizer.json", "cannot open");
    expect_fail("{\"model\": ", g_config, "tokenizer.json", "");
    expect_fail("[1]", g_config, "tokenizer.json", "not a JSON object");
    expect_fail("{}", NULL, "tokenizer.json", "model: missing");
    expect_json_fail("\"type\":\"BPE\"", "\"type\":\"Unigram\"", "model.type: type 'Unigram'");
    expect_json_fail("\"type\":\"BPE\"", "\"kind\":\"BPE\"", "model.type: missing");
    expect_json_fail("\"dropout\":null", "\"dropout\":0.1", "model.dropout");
    expect_json_fail("\"byte_fallback\":false", "\"byte_fallback\":true", "model.byte_fallback");
    expect_json_fail("\"end_of_word_suffix\":\"\"", "\"end_of_word_suffix\":\"</w>\"",
                     "model.end_of_word_suffix");
    expect_json_fail("\"normalizer\":null", "\"normalizer\":{\"type\":\"NFC\"}", "normalizer");
    expect_json_fail("\"pre_tokenizer\":{\"type\":\"ByteLevel\"",
                     "\"pre_tokenizer\":{\"type\":\"Metaspace\"", "pre_tokenizer.type");
    expect_json_fail("\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
                     "\"post_processor\"",
                     "\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
                     "\"post_processor\"",
                     "pre_tokenizer.add_prefix_space");
    expect_json_fail("\"decoder\":{\"type\":\"ByteLevel\"", "\"decoder\":{\"type\":\"WordPiece\"",
                     "decoder.type");
    expect_json_fail("\"vocab\":{", "\"vocab\":{\"bad\":-4,", "model.vocab[\"bad\"]");
    expect_json_fail("\"vocab\":{", "\"vocab\":{\"dup\":7,", "id 7 is given to two tokens");
    expect_json_fail("\"merges\":[", "\"merges\":[[\"qqq\",\"a\"],", "model.merges[0]");
    expect_json_fail("\"merges\":[", "\"merges\":[\"a b c\",", "model.merges[0]");
    expect_json_fail("\"merges\":[", "\"merges\":[7,", "model.merges[0]");
    expect_json_fail("\"content\":\"<od>\",\"single_word\":false",
                     "\"content\":\"<od>\",\"single_word\":true", "added_tokens[5]: single_word");
    expect_json_fail("\"content\":\"<od>\"", "\"content\":\"<s>\"", "added_tokens[5]");
    expect_json_fail("{\"id\":4001,", "{\"id\":\"x\",", "added_tokens[5]: no integer");

    expect_config_fail("\"tokenizer_class\": \"BartTokenizer\"",
                       "\"tokenizer_class\": \"T5Tokenizer\"", "tokenizer_class: 'T5Tokenizer'");
    expect_config_fail("\"add_prefix_space\": false", "\"add_prefix_space\": true",
                       "add_prefix_space");
    expect_config_fail("\"content\": \"<od>\",\n   \"lstrip\": false",
                       "\"content\": \"<od>\",\n   \"lstrip\": true",
                       "added_tokens_decoder[\"4001\"]");
    expect_config_fail("\"bos_token\": \"<s>\"", "\"bos_token\": \"<nope>\"", "bos_token");
    expect_config_fail("\"bos_token\": \"<s>\"", "\"bos_token\": 5", "bos_token");

    /* without tokenizer.json the config's added tokens are required */
    char *dir = test_copy_model("tok_bart");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    ck_assert_int_eq(unlink(path), 0);
    char *config = replace_once(g_config, "\"added_tokens_decoder\"", "\"added_tokens_elsewhere\"");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    ck_assert_int_eq(test_write_file(path, config, strlen(config)), 0);
    tok_bytebpe *t = NULL;
    prism_error err = {0};
    ck_assert(tok_bytebpe_load(&t, dir, &err) != 0);
    ck_assert_msg(strstr(err.msg, "tokenizer_config.json: added_tokens_decoder: missing"), "%s",
                  err.msg);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    ck_assert_int_eq(test_write_file(path, "#version: 0.2\nzzzq a\n", 21), 0);
    ck_assert(tok_bytebpe_load(&t, dir, &err) != 0);
    ck_assert_msg(strstr(err.msg, "merges.txt: line 2"), "%s", err.msg);
    free(config);
    test_remove_dir(dir);
    free(g_json);
    free(g_config);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tok_bytebpe");
    TCase *tc = tcase_create("bytebpe");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_golden);
    tcase_add_test(tc, test_golden_vocab_merges);
    tcase_add_test(tc, test_lookups);
    tcase_add_test(tc, test_abuse);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_load_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
