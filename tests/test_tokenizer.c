/* test_tokenizer.c - the SentencePiece layer and SigLIP's text pipeline
 * against transformers / sentencepiece, plus the loader's refusals and unit
 * tests of the normaliser and the Unicode helpers.
 *
 * Goldens: tools/reference/make_tokenizer_goldens.py trained three small
 * real unigram models (tests/data/tok_siglip, tok_spm_b, tok_spm_c) and dumped, for over
 * 2,000 strings, SiglipTokenizer's 64 input_ids and decode() output and
 * sentencepiece's normalize/encode/decode (format in the script). Ids must
 * be equal, every one: a mismatch reports the first failing string with
 * both id lists.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_model.h"
#include "test_util.h"
#include "tok_golden.h"
#include "tok_unicode.h"
#include "tokenizer.h"


static sp_model *load_sp(const char *rel)
{
    char path[4096];
    test_data_path(path, sizeof path, rel);
    prism_error err = {0};
    sp_model *m = NULL;
    ck_assert_msg(sp_model_load_file(&m, path, &err) == 0, "%s", err.msg);
    return m;
}

/* ------------------------------------------------------------------ golden tests */

START_TEST(test_siglip_golden)
{
    gold g;
    gstr model, uver;
    uint64_t n;
    g_open(&g, "tok_siglip.golden.bin", &model, &uver, &n);
    ck_assert_msg(uver.n == strlen(tok_unicode_version) &&
                      memcmp(uver.s, tok_unicode_version, uver.n) == 0,
                  "goldens are for Unicode %.*s but engine/tok_unicode_tables.c is for %s: "
                  "regenerate the tables and the goldens with the same Python",
                  (int)uver.n, uver.s, tok_unicode_version);
    char dir[4096], rel[512];
    snprintf(rel, sizeof rel, "%.*s", (int)model.n, model.s);
    *strrchr(rel, '/') = '\0';
    test_data_path(dir, sizeof dir, rel);
    prism_error err = {0};
    tok_tokenizer *t = NULL;
    ck_assert_msg(tok_load(&t, dir, &err) == 0, "%s", err.msg);
    const sp_model *m = tok_model(t);
    ck_assert_int_eq(tok_eos_id(t), 1);
    ck_assert_int_eq(tok_pad_id(t), 1);

    tally ids = {0}, ntok = {0}, dskip = {0}, dec = {0}, dec_skip = {0}, spdec = {0};
    tally norm = {0}, enc = {0}, pieces = {0}, rdec = {0};
    long n_siglip = 0, n_long = 0;
    for (uint64_t r = 0; r < n; r++) {
        ck_assert(g.p < g.end);
        int kind = *g.p++;
        if (kind == 1) {
            gstr text = g_str(&g);
            gids want = g_ids(&g);
            uint64_t pad = g_varint(&g);
            gstr want_dskip = g_str(&g);
            ck_assert_int_eq(want.n + pad, TOK_SIGLIP_MAX_LEN);
            int32_t want64[TOK_SIGLIP_MAX_LEN], got[TOK_SIGLIP_MAX_LEN];
            for (size_t i = 0; i < TOK_SIGLIP_MAX_LEN; i++)
                want64[i] = i < want.n ? want.v[i] : tok_pad_id(t);
            int n_tokens = -1;
            n_siglip++;
            n_long += text.n > 1000;
            if (tok_siglip_encode(t, text.s, text.n, got, TOK_SIGLIP_MAX_LEN, &n_tokens, &err) != 0) {
                tally_err(&ids, "tok_siglip_encode", text, err.msg);
            } else {
                tally_ids(&ids, "tok_siglip_encode", text, got, TOK_SIGLIP_MAX_LEN, want64,
                          TOK_SIGLIP_MAX_LEN);
                int32_t nt = n_tokens, wn = (int32_t)want.n;
                tally_ids(&ntok, "n_tokens", text, &nt, 1, &wn, 1);
            }
            char *d = NULL;
            size_t dl = 0;
            if (tok_siglip_decode(t, want64, TOK_SIGLIP_MAX_LEN, true, &d, &dl, &err) != 0)
                tally_err(&dskip, "tok_siglip_decode(skip_special)", text, err.msg);
            else
                tally_str(&dskip, "tok_siglip_decode(skip_special)", text, d, dl, want_dskip.s,
                          want_dskip.n);
            free(d);
            free(want.v);
            if (g_varint(&g))
                check_sp_fields(m, &g, text, &norm, &enc, &pieces, &rdec);
        } else if (kind == 2) {
            gids in = g_ids(&g);
            gstr want_d = g_str(&g), want_ds = g_str(&g), want_sp = g_str(&g);
            char label[64];
            snprintf(label, sizeof label, "ids #%llu", (unsigned long long)r);
            gstr lt = {label, strlen(label)};
            char *d = NULL;
            size_t dl = 0;
            if (tok_siglip_decode(t, in.v, in.n, false, &d, &dl, &err) != 0)
                tally_err(&dec, "tok_siglip_decode", lt, err.msg);
            else
                tally_str(&dec, "tok_siglip_decode", lt, d, dl, want_d.s, want_d.n);
            free(d);
            d = NULL;
            if (tok_siglip_decode(t, in.v, in.n, true, &d, &dl, &err) != 0)
                tally_err(&dec_skip, "tok_siglip_decode(skip_special)", lt, err.msg);
            else
                tally_str(&dec_skip, "tok_siglip_decode(skip_special)", lt, d, dl, want_ds.s,
                          want_ds.n);
            free(d);
            sp_buf b = {0};
            if (sp_decode_ids(m, in.v, in.n, &b, &err) != 0)
                tally_err(&spdec, "sp_decode_ids", lt, err.msg);
            else
                tally_str(&spdec, "sp_decode_ids", lt, b.data, b.len, want_sp.s, want_sp.n);
            sp_buf_free(&b);
            free(in.v);
        } else {
            ck_abort_msg("unexpected record kind %d", kind);
        }
    }
    ck_assert_msg(g.p == g.end, "trailing bytes in golden file");
    printf("tok_siglip: %ld strings (%ld over 1000 bytes)\n", n_siglip, n_long);
    ck_assert_int_ge(n_siglip, 2000);
    report("siglip ids", &ids);
    report("siglip n_tokens", &ntok);
    report("siglip decode(skip) of ids", &dskip);
    report("siglip decode (id lists)", &dec);
    report("siglip decode(skip) (lists)", &dec_skip);
    report("sp decode (id lists)", &spdec);
    report("sp normalize", &norm);
    report("sp encode ids", &enc);
    report("sp encode pieces", &pieces);
    report("sp decode of encode", &rdec);
    tok_free(t);
    free(g.buf);
}
END_TEST

static const char *const sp_goldens[] = {"tok_spm_b.golden.bin", "tok_spm_c.golden.bin"};

START_TEST(test_sp_golden)
{
    gold g;
    gstr model, uver;
    uint64_t n;
    g_open(&g, sp_goldens[_i], &model, &uver, &n);
    char rel[512];
    snprintf(rel, sizeof rel, "%.*s", (int)model.n, model.s);
    sp_model *m = load_sp(rel);
    tally norm = {0}, enc = {0}, pieces = {0}, rdec = {0}, dec = {0};
    for (uint64_t r = 0; r < n; r++) {
        ck_assert(g.p < g.end);
        int kind = *g.p++;
        if (kind == 3) {
            gstr text = g_str(&g);
            check_sp_fields(m, &g, text, &norm, &enc, &pieces, &rdec);
        } else if (kind == 4) {
            gids in = g_ids(&g);
            gstr want = g_str(&g);
            char label[64];
            snprintf(label, sizeof label, "ids #%llu", (unsigned long long)r);
            gstr lt = {label, strlen(label)};
            prism_error err = {0};
            sp_buf b = {0};
            if (sp_decode_ids(m, in.v, in.n, &b, &err) != 0)
                tally_err(&dec, "sp_decode_ids", lt, err.msg);
            else
                tally_str(&dec, "sp_decode_ids", lt, b.data, b.len, want.s, want.n);
            sp_buf_free(&b);
            free(in.v);
        } else {
            ck_abort_msg("unexpected record kind %d", kind);
        }
    }
    ck_assert_msg(g.p == g.end, "trailing bytes in golden file");
    printf("%s:\n", rel);
    report("sp normalize", &norm);
    report("sp encode ids", &enc);
    report("sp encode pieces", &pieces);
    report("sp decode of encode", &rdec);
    report("sp decode (id lists)", &dec);
    sp_model_free(m);
    free(g.buf);
}
END_TEST

/* ------------------------------------------------------------------ crafted models */

typedef struct pbw {
    uint8_t *d;
    size_t n, cap;
} pbw;

static void pbw_raw(pbw *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->d = realloc(w->d, w->cap);
        ck_assert_ptr_nonnull(w->d);
    }
    memcpy(w->d + w->n, p, n);
    w->n += n;
}

static void pbw_varint(pbw *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    pbw_raw(w, b, n);
}

static void pbw_tag(pbw *w, uint32_t field, int wire)
{
    pbw_varint(w, (uint64_t)field << 3 | (uint64_t)wire);
}

static void pbw_bytes(pbw *w, uint32_t field, const void *p, size_t n)
{
    pbw_tag(w, field, 2);
    pbw_varint(w, n);
    pbw_raw(w, p, n);
}

static void pbw_str(pbw *w, uint32_t field, const char *s)
{
    pbw_bytes(w, field, s, strlen(s));
}

static void pbw_msg(pbw *w, uint32_t field, pbw *sub)
{
    pbw_bytes(w, field, sub->d, sub->n);
    free(sub->d);
    *sub = (pbw){0};
}

static void pbw_uint(pbw *w, uint32_t field, uint64_t v)
{
    pbw_tag(w, field, 0);
    pbw_varint(w, v);
}

static void pbw_piece(pbw *w, const char *s, size_t len, float score, int type)
{
    pbw p = {0};
    pbw_bytes(&p, 1, s, len);
    pbw_tag(&p, 2, 5);
    uint32_t u;
    memcpy(&u, &score, 4);
    uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pbw_raw(&p, b, 4);
    if (type != SP_NORMAL)
        pbw_uint(&p, 3, (uint64_t)type);
    pbw_msg(w, 1, &p);
}

/* A small crafted model: pieces <pad>(control) </s>(control) <unk> then
 * normal pieces; flags for the spec fields. */
typedef struct craft {
    int model_type;         /* 0: leave default */
    int no_trainer, no_normalizer;
    int adp, rew, esc;      /* -1 leave default, else 0/1 */
    int ws_suffix;          /* trainer field 24 */
    const uint8_t *charsmap;
    size_t charsmap_len;
    const char *user_defined[4];
} craft;

static const char *const craft_pieces[] = {"\xe2\x96\x81", "a", "b", "c", "\xe2\x96\x81" "a", "ab",
                                           "abc", "\xe2\x96\x81" "b", " ", "x"};

static pbw craft_model(const craft *c)
{
    pbw w = {0};
    pbw_piece(&w, "<pad>", 5, 0, SP_CONTROL);
    pbw_piece(&w, "</s>", 4, 0, SP_CONTROL);
    pbw_piece(&w, "<unk>", 5, 0, SP_UNKNOWN);
    for (size_t i = 0; i < sizeof craft_pieces / sizeof *craft_pieces; i++)
        pbw_piece(&w, craft_pieces[i], strlen(craft_pieces[i]), -1.0f - (float)i, SP_NORMAL);
    for (int i = 0; i < 4 && c->user_defined[i]; i++)
        pbw_piece(&w, c->user_defined[i], strlen(c->user_defined[i]), 0, SP_USER_DEFINED);
    if (!c->no_trainer) {
        pbw t = {0};
        if (c->model_type)
            pbw_uint(&t, 3, (uint64_t)c->model_type);
        if (c->ws_suffix)
            pbw_uint(&t, 24, 1);
        pbw_uint(&t, 40, 2);
        pbw_msg(&w, 2, &t);
    }
    if (!c->no_normalizer) {
        pbw nz = {0};
        pbw_str(&nz, 1, "test");
        if (c->charsmap)
            pbw_bytes(&nz, 2, c->charsmap, c->charsmap_len);
        if (c->adp >= 0)
            pbw_uint(&nz, 3, (uint64_t)c->adp);
        if (c->rew >= 0)
            pbw_uint(&nz, 4, (uint64_t)c->rew);
        if (c->esc >= 0)
            pbw_uint(&nz, 5, (uint64_t)c->esc);
        pbw_msg(&w, 3, &nz);
    }
    return w;
}

static sp_model *craft_load(const craft *c)
{
    pbw w = craft_model(c);
    prism_error err = {0};
    sp_model *m = NULL;
    int rc = sp_model_load_memory(&m, w.d, w.n, "crafted.model", &err);
    free(w.d);
    ck_assert_msg(rc == 0, "%s", err.msg);
    return m;
}

static void expect_load_error(const void *data, size_t len, const char *needle)
{
    prism_error err = {0};
    sp_model *m = (sp_model *)1;
    int rc = sp_model_load_memory(&m, data, len, "bad.model", &err);
    ck_assert_msg(rc == -1, "loading should fail with '%s'", needle);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "bad.model") != NULL, "message lacks the file name: %s", err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "expected '%s' in: %s", needle, err.msg);
}

static void expect_norm(const sp_model *m, const char *in, size_t len, const char *want,
                        size_t want_len)
{
    prism_error err = {0};
    sp_buf b = {0};
    ck_assert_msg(sp_normalize(m, in, len, &b, &err) == 0, "%s", err.msg);
    char e1[256], e2[256], e3[256];
    escape(e1, sizeof e1, b.data ? b.data : "", b.len);
    escape(e2, sizeof e2, want, want_len);
    escape(e3, sizeof e3, in, len);
    ck_assert_msg(b.len == want_len && memcmp(b.data ? b.data : "", want, b.len) == 0,
                  "normalize(\"%s\"): got \"%s\", want \"%s\"", e3, e1, e2);
    sp_buf_free(&b);
}

#define U2581 "\xe2\x96\x81"
#define EXPECT_NORM(m, s, want) expect_norm(m, s, sizeof(s) - 1, want, sizeof(want) - 1)

/* ------------------------------------------------------------------ normaliser unit tests */

START_TEST(test_normalizer_flags)
{
    craft c = {.adp = -1, .rew = -1, .esc = -1};
    sp_model *m = craft_load(&c);
    /* defaults: dummy prefix, extra whitespace removed, ' ' escaped */
    EXPECT_NORM(m, "  a   b  ", U2581 "a" U2581 "b");
    EXPECT_NORM(m, "ab", U2581 "ab");
    EXPECT_NORM(m, "", "");
    EXPECT_NORM(m, "   ", "");
    /* invalid UTF-8: one U+FFFD per bad byte; an encoded U+FFFD stays */
    EXPECT_NORM(m, "a\xff" "b", U2581 "a\xef\xbf\xbd" "b");
    EXPECT_NORM(m, "\xe2\x96", U2581 "\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_NORM(m, "\xed\xa0\x80", U2581 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    EXPECT_NORM(m, "\xc0\xaf", U2581 "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong */
    EXPECT_NORM(m, "\xef\xbf\xbd", U2581 "\xef\xbf\xbd");
    /* an input U+2581 is an ordinary character, but trailing ones go */
    EXPECT_NORM(m, "a" U2581 U2581, U2581 "a");
    sp_model_free(m);

    c.rew = 0;
    m = craft_load(&c);
    EXPECT_NORM(m, "  a  b ", U2581 U2581 U2581 "a" U2581 U2581 "b" U2581);
    sp_model_free(m);

    c.rew = -1;
    c.adp = 0;
    m = craft_load(&c);
    EXPECT_NORM(m, " a b ", "a" U2581 "b");
    sp_model_free(m);

    c.adp = -1;
    c.esc = 0;
    m = craft_load(&c);
    EXPECT_NORM(m, " a  b ", " a b");
    sp_model_free(m);

    c.esc = -1;
    c.ws_suffix = 1;
    m = craft_load(&c);
    EXPECT_NORM(m, " a  b ", "a" U2581 "b" U2581);
    sp_model_free(m);
}
END_TEST

START_TEST(test_normalizer_user_defined)
{
    craft c = {.adp = -1, .rew = -1, .esc = -1, .user_defined = {"<sep>", "x y", NULL}};
    sp_model *m = craft_load(&c);
    /* user-defined symbols are copied verbatim, spaces inside escaped */
    EXPECT_NORM(m, "a<sep>b", U2581 "a<sep>b");
    EXPECT_NORM(m, "x y", U2581 "x" U2581 "y");
    prism_error err = {0};
    sp_encoding e = {0};
    ck_assert_msg(sp_encode(m, "a<sep>b", 7, &e, &err) == 0, "%s", err.msg);
    /* ▁ a <sep> b: the user-defined piece always wins */
    ck_assert_uint_eq(e.n_pieces, 4);
    ck_assert_int_eq(e.pieces[2].id, sp_piece_to_id(m, "<sep>", 5));
    ck_assert_int_eq(sp_id_type(m, e.pieces[2].id), SP_USER_DEFINED);
    sp_encoding_free(&e);
    sp_model_free(m);
}
END_TEST

/* The nmt_nfkc charsmap of the SigLIP-style model: facts checked with
 * sentencepiece's own normalize(). */
START_TEST(test_normalizer_charsmap)
{
    sp_model *m = load_sp("tok_siglip/spiece.model");
    EXPECT_NORM(m, "\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3", U2581 "ABC");           /* ＡＢＣ */
    EXPECT_NORM(m, "\xef\xac\x81", U2581 "fi");                                      /* ﬁ */
    EXPECT_NORM(m, "\xe3\x80\x80" "a\xe3\x80\x80\xe3\x80\x80" "b", U2581 "a" U2581 "b"); /* U+3000 */
    EXPECT_NORM(m, "a\x01" "b", U2581 "ab");                                         /* control removed */
    EXPECT_NORM(m, "a\xe2\x80\x8b" "b", U2581 "a" U2581 "b");                        /* U+200B -> space */
    EXPECT_NORM(m, "a\x00" "b", U2581 "a\x00" "b");                                  /* NUL kept */
    EXPECT_NORM(m, "a" U2581 "b", U2581 "a" U2581 "b");                              /* ▁ -> space */
    EXPECT_NORM(m, "e\xcc\x81", U2581 "\xc3\xa9"); /* e + U+0301 -> é */
    sp_model_free(m);
}
END_TEST

START_TEST(test_encode_unknown_and_decode)
{
    craft c = {.adp = -1, .rew = -1, .esc = -1};
    sp_model *m = craft_load(&c);
    prism_error err = {0};
    sp_encoding e = {0};
    /* "a qqq b" -> ▁ a ▁ qqq ▁ b (▁a and ▁b score below ▁ + a, ▁ + b); q is
     * not in the vocabulary and its run merges into one unknown piece */
    ck_assert_msg(sp_encode(m, "a qqq b", 7, &e, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(e.n_pieces, 6);
    static const int32_t want[] = {3, 4, 3, 2, 3, 5};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(e.pieces[i].id, want[i]);
    ck_assert_uint_eq(e.pieces[3].len, 3);
    ck_assert(memcmp(e.pieces[3].str, "qqq", 3) == 0);
    sp_buf b = {0};
    ck_assert_msg(sp_decode_ids(m, want, 6, &b, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(b.data, "a  \xe2\x81\x87  b"); /* unknown id -> " ⁇ " */
    ck_assert_msg(sp_decode_pieces(m, e.pieces, e.n_pieces, &b, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(b.data, "a qqq b"); /* a non-vocabulary piece decodes as itself */
    int32_t bad = 99;
    ck_assert_int_eq(sp_decode_ids(m, &bad, 1, &b, &err), -1);
    ck_assert_msg(strstr(err.msg, "99"), "%s", err.msg);
    int32_t ctl[] = {0, 1, 4, 0};
    ck_assert_msg(sp_decode_ids(m, ctl, 4, &b, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(b.data, "a"); /* control pieces vanish, leading ▁ dropped */
    sp_buf_free(&b);
    sp_encoding_free(&e);
    sp_model_free(m);
}
END_TEST

/* Viterbi arithmetic and tie-breaking, pinned with crafted models whose
 * answers were taken from sentencepiece 0.2.x's Python wheel:
 *   scores a -0.75, b -0.25 + 2^-26, ab -1, cd -1000: a+b is -1 + 2^-26 in
 *   double but -1 in float, a tie that keeps the earlier "ab" (float sums);
 *   scores a -0.5, b -0.49999994, ab -1, cd -1000: a+b beats ab by one ulp,
 *   but ab + cd == a + b + cd in float; the wheel answers a b cd, as the
 *   optimized encoder does (the lattice encoder would keep ab). */
static sp_model *tie_model(float sa, float sb)
{
    pbw w = {0}, tr = {0}, nz = {0};
    pbw_piece(&w, "<unk>", 5, 0, SP_UNKNOWN);
    pbw_piece(&w, "a", 1, sa, SP_NORMAL);
    pbw_piece(&w, "b", 1, sb, SP_NORMAL);
    pbw_piece(&w, "ab", 2, -1.0f, SP_NORMAL);
    pbw_piece(&w, "cd", 2, -1000.0f, SP_NORMAL);
    pbw_uint(&tr, 3, 1);
    pbw_msg(&w, 2, &tr);
    pbw_str(&nz, 1, "identity");
    pbw_uint(&nz, 3, 0);
    pbw_msg(&w, 3, &nz);
    prism_error err = {0};
    sp_model *m = NULL;
    ck_assert_msg(sp_model_load_memory(&m, w.d, w.n, "tie.model", &err) == 0, "%s", err.msg);
    free(w.d);
    return m;
}

static void expect_ids(sp_model *m, const char *text, const int32_t *want, size_t n)
{
    prism_error err = {0};
    sp_encoding e = {0};
    ck_assert_msg(sp_encode(m, text, strlen(text), &e, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(e.n_pieces, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(e.pieces[i].id, want[i]);
    sp_encoding_free(&e);
}

START_TEST(test_viterbi_ties)
{
    sp_model *m = tie_model(-0.75f, -0.25f + 0x1p-26f);
    static const int32_t float_tie[] = {3, 4}; /* ab cd */
    expect_ids(m, "abcd", float_tie, 2);
    sp_model_free(m);
    m = tie_model(-0.5f, -0.49999994f);
    static const int32_t optimized[] = {1, 2, 4}; /* a b cd */
    expect_ids(m, "abcd", optimized, 3);
    /* unknown characters: "x" and "y" merge into one unknown piece */
    static const int32_t unk[] = {1, 0, 4}; /* a <unk:xy> cd */
    expect_ids(m, "axycd", unk, 3);
    sp_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ loader refusals */

START_TEST(test_load_crafted_errors)
{
    pbw w = {0};
    /* a valid crafted model loads */
    craft ok = {.adp = -1, .rew = -1, .esc = -1};
    sp_model_free(craft_load(&ok));

    craft c = ok;
    c.model_type = 3;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "WORD");
    free(w.d);

    c = ok;
    c.model_type = 4;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "CHAR");
    free(w.d);

    c = ok; /* BPE loads */
    c.model_type = 2;
    sp_model_free(craft_load(&c));

    c = ok;
    c.no_trainer = 1;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "trainer_spec");
    free(w.d);

    c = ok;
    c.no_normalizer = 1;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "normalizer_spec");
    free(w.d);

    /* piece-level problems, each appended to a valid model */
    struct {
        const char *piece;
        size_t len;
        int type;
        const char *needle;
    } bad[] = {
        {"<unk2>", 6, SP_UNKNOWN, "unk is already defined"},
        {"a", 1, SP_NORMAL, "already defined"},
        {"", 0, SP_NORMAL, "is empty"},
        {"q\0r", 3, SP_NORMAL, "NUL"},
        {"<0x41>", 6, SP_BYTE, "byte_fallback is false"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        w = craft_model(&ok);
        pbw_piece(&w, bad[i].piece, bad[i].len, -3, bad[i].type);
        expect_load_error(w.d, w.n, bad[i].needle);
        free(w.d);
    }
    /* the same string as a control and a normal piece is allowed (two maps) */
    w = craft_model(&ok);
    pbw_piece(&w, "x", 1, 0, SP_CONTROL);
    prism_error err = {0};
    sp_model *m = NULL;
    ck_assert_msg(sp_model_load_memory(&m, w.d, w.n, "dup.model", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sp_piece_to_id(m, "x", 1), 13); /* reserved map first */
    sp_model_free(m);
    free(w.d);

    /* unknown piece type */
    w = (pbw){0};
    {
        pbw p = {0};
        pbw_str(&p, 1, "zz");
        pbw_uint(&p, 3, 9);
        pbw_msg(&w, 1, &p);
    }
    expect_load_error(w.d, w.n, "unknown type 9");
    free(w.d);

    /* no unknown piece at all */
    w = (pbw){0};
    pbw_piece(&w, "a", 1, -1, SP_NORMAL);
    {
        pbw t = {0}, nz = {0};
        pbw_uint(&t, 3, 1);
        pbw_msg(&w, 2, &t);
        pbw_str(&nz, 1, "identity");
        pbw_msg(&w, 3, &nz);
    }
    expect_load_error(w.d, w.n, "unk is not defined");
    free(w.d);

    /* byte_fallback without all 256 byte pieces */
    w = craft_model(&ok);
    {
        pbw t = {0};
        pbw_uint(&t, 35, 1);
        pbw_msg(&w, 2, &t); /* merges into trainer_spec */
    }
    pbw_piece(&w, "<0x41>", 6, 0, SP_BYTE);
    expect_load_error(w.d, w.n, "not 256 byte pieces");
    free(w.d);
    w = craft_model(&ok);
    {
        pbw t = {0};
        pbw_uint(&t, 35, 1);
        pbw_msg(&w, 2, &t);
    }
    pbw_piece(&w, "<0xZZ>", 6, 0, SP_BYTE);
    expect_load_error(w.d, w.n, "invalid");
    free(w.d);

    /* wire-level corruption */
    static const uint8_t long_varint[] = {0x98, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_load_error(long_varint, sizeof long_varint, "varint");
    static const uint8_t cut_varint[] = {0x0a, 0x80};
    expect_load_error(cut_varint, sizeof cut_varint, "truncated varint");
    static const uint8_t past_end[] = {0x0a, 0x10, 0x0a, 0x01};
    expect_load_error(past_end, sizeof past_end, "claims 16 bytes");
    static const uint8_t field0[] = {0x02, 0x00};
    expect_load_error(field0, sizeof field0, "invalid field tag");
    static const uint8_t wire6[] = {0x0e};
    expect_load_error(wire6, sizeof wire6, "invalid wire type");
    static const uint8_t bad_wire[] = {0x08, 0x01}; /* pieces as a varint */
    expect_load_error(bad_wire, sizeof bad_wire, "wire type 0");
    static const uint8_t open_group[] = {0x33, 0x08, 0x01}; /* field 6 group, no end */
    expect_load_error(open_group, sizeof open_group, "unterminated group");
    static const uint8_t wrong_end[] = {0x33, 0x3c}; /* start 6, end 7 */
    expect_load_error(wrong_end, sizeof wrong_end, "closed by end tag");
    static const uint8_t stray_end[] = {0x34};
    expect_load_error(stray_end, sizeof stray_end, "end-group");
    uint8_t deep[80];
    for (size_t i = 0; i < sizeof deep; i++)
        deep[i] = 0x33;
    expect_load_error(deep, sizeof deep, "nested");
    {
        pbw p = {0};
        pbw_str(&p, 1, "a");
        pbw_tag(&p, 2, 0); /* score as a varint */
        pbw_varint(&p, 5);
        w = (pbw){0};
        pbw_msg(&w, 1, &p);
        expect_load_error(w.d, w.n, "wire type 0, expected 5");
        free(w.d);
    }
    /* unknown fields, a group among them, are skipped */
    w = craft_model(&ok);
    static const uint8_t extra[] = {0x98, 0x06, 0x07, 0x33, 0x08, 0x01, 0x34, 0xa5, 0x06, 1, 2, 3, 4};
    pbw_raw(&w, extra, sizeof extra);
    m = NULL;
    ck_assert_msg(sp_model_load_memory(&m, w.d, w.n, "extra.model", &err) == 0, "%s", err.msg);
    sp_model_free(m);
    free(w.d);

    /* charsmaps */
    static const uint8_t cm_short[] = {1, 0, 0};
    c = ok;
    c.charsmap = cm_short;
    c.charsmap_len = sizeof cm_short;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "is broken");
    free(w.d);
    static const uint8_t cm_big[] = {0x40, 0, 0, 0, 1, 2, 3, 4, 0};
    c.charsmap = cm_big;
    c.charsmap_len = sizeof cm_big;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "exceeds");
    free(w.d);
    static const uint8_t cm_nonul[] = {4, 0, 0, 0, 0, 0, 0, 0, 'x'};
    c.charsmap = cm_nonul;
    c.charsmap_len = sizeof cm_nonul;
    w = craft_model(&c);
    expect_load_error(w.d, w.n, "NUL-terminated");
    free(w.d);
    /* A two-unit trie mapping "a" (root offset 1: child at 1 ^ 'a') is
     * too short to hold that child: lookups end at the array's end. */
    static const uint8_t cm_tiny[] = {8, 0, 0, 0, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 'z', 0};
    c.charsmap = cm_tiny;
    c.charsmap_len = sizeof cm_tiny;
    m = craft_load(&c);
    EXPECT_NORM(m, "abc", U2581 "abc");
    sp_model_free(m);
}
END_TEST

/* A trie whose only key "a" has a value pointing past the replacement
 * blob is refused at load (every reachable entry is checked); with a good
 * value, "a" maps to the replacement. Units: [0] root, offset 1 (children at
 * 1 ^ c); [1 ^ 'a' = 0x60] label 'a', has_leaf, offset 0x60 ^ 0x61 = 1 so
 * its leaf is at 0x60 ^ 1 = 0x61; [0x61] the leaf, value 50. */
START_TEST(test_charsmap_bad_value)
{
    size_t n_units = 0x62;
    size_t trie = n_units * 4;
    uint8_t *cm = calloc(1, 4 + trie + 2);
    cm[0] = (uint8_t)trie;
    cm[1] = (uint8_t)(trie >> 8);
    uint32_t units[0x62] = {0};
    units[0] = 1u << 10;                          /* offset 1 */
    units[0x60] = 'a' | (1u << 8) | (1u << 10);   /* label a, leaf, offset 1 */
    units[0x61] = (1u << 31) | 50;                /* leaf: value 50 */
    for (size_t i = 0; i < n_units; i++)
        for (int k = 0; k < 4; k++)
            cm[4 + 4 * i + (size_t)k] = (uint8_t)(units[i] >> (8 * k));
    cm[4 + trie] = 'Q';
    cm[4 + trie + 1] = 0;
    craft c = {.adp = -1, .rew = -1, .esc = -1, .charsmap = cm, .charsmap_len = 4 + trie + 2};
    pbw w = craft_model(&c);
    expect_load_error(w.d, w.n, "points past its replacement strings (offset 50 of 2)");
    free(w.d);

    /* the same trie with value 0 maps "a" to "Q" */
    units[0x61] = (1u << 31) | 0;
    for (int k = 0; k < 4; k++)
        cm[4 + 4 * 0x61 + (size_t)k] = (uint8_t)(units[0x61] >> (8 * k));
    sp_model *m = craft_load(&c);
    EXPECT_NORM(m, "bab", U2581 "bQb");
    sp_model_free(m);
    free(cm);
}
END_TEST

START_TEST(test_load_files)
{
    prism_error err = {0};
    tok_tokenizer *t = (tok_tokenizer *)1;
    ck_assert_int_eq(tok_load(&t, "/nonexistent/dir", &err), -1);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err.msg, "/nonexistent/dir/spiece.model") && strstr(err.msg, "cannot open"),
                  "%s", err.msg);
    char dir[4096];
    test_data_path(dir, sizeof dir, "tok_siglip");
    ck_assert_int_eq(tok_load_file(&t, dir, &err), -1); /* a directory */
    ck_assert_msg(strstr(err.msg, dir), "%s", err.msg);

    char *tmp = test_copy_model("tok_spm_c");
    char path[4200];
    snprintf(path, sizeof path, "%s/spiece.model", tmp);
    ck_assert_int_eq(test_write_file(path, "", 0), 0);
    ck_assert_int_eq(tok_load(&t, tmp, &err), -1);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "empty"), "%s", err.msg);
    const char *text = "{\"this\": \"is json, not a model\"}\n";
    ck_assert_int_eq(test_write_file(path, text, strlen(text)), 0);
    ck_assert_int_eq(tok_load(&t, tmp, &err), -1);
    ck_assert_msg(strstr(err.msg, path), "%s", err.msg);
    test_remove_dir(tmp);

    /* a model without "</s>" cannot serve SigLIP's pipeline */
    pbw w = {0}, tr = {0}, nz = {0};
    pbw_piece(&w, "<unk>", 5, 0, SP_UNKNOWN);
    pbw_piece(&w, "a", 1, -1, SP_NORMAL);
    pbw_uint(&tr, 3, 1);
    pbw_msg(&w, 2, &tr);
    pbw_str(&nz, 1, "identity");
    pbw_msg(&w, 3, &nz);
    ck_assert_int_eq(tok_load_memory(&t, w.d, w.n, "noeos.model", &err), -1);
    ck_assert_msg(strstr(err.msg, "noeos.model") && strstr(err.msg, "'</s>'"), "%s", err.msg);
    free(w.d);
}
END_TEST

/* Every truncation of a real model is refused with a message (or, at the
 * full length, loads); the models' protobuf always ends with the
 * normalizer_spec, which the loader requires. */
START_TEST(test_load_truncated)
{
    static const char *const models[] = {"tok_spm_b/spiece.model", "tok_siglip/spiece.model"};
    for (size_t k = 0; k < 2; k++) {
        char path[4096];
        size_t len;
        test_data_path(path, sizeof path, models[k]);
        char *data = test_read_file(path, &len);
        ck_assert_ptr_nonnull(data);
        size_t step = k == 0 ? 1 : 997, tried = 0;
        for (size_t n = 0; n < len; n += (n < 2048 || len - n < 2048) ? 1 : step) {
            prism_error err = {0};
            sp_model *m = NULL;
            char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
            memcpy(copy, data, n);
            int rc = sp_model_load_memory(&m, copy, n, "cut.model", &err);
            free(copy);
            /* The trainer ends the file with an empty denormalizer_spec
             * (2a 00): cutting exactly that off leaves a valid, equivalent
             * model, which no reader can tell from the original. */
            bool empty_tail = (len - n) % 2 == 0;
            for (size_t i = n; i < len && empty_tail; i += 2)
                empty_tail = (data[i] == 0x22 || data[i] == 0x2a) && data[i + 1] == 0;
            if (empty_tail) {
                ck_assert_msg(rc == 0, "%s: %s", models[k], err.msg);
                sp_model_free(m);
                continue;
            }
            ck_assert_msg(rc == -1, "%s truncated to %zu of %zu bytes was accepted", models[k], n,
                          len);
            ck_assert_msg(strncmp(err.msg, "cut.model: ", 11) == 0 && strlen(err.msg) > 15,
                          "bad message at %zu: %s", n, err.msg);
            tried++;
        }
        sp_model *m = NULL;
        prism_error err = {0};
        ck_assert_msg(sp_model_load_memory(&m, data, len, path, &err) == 0, "%s", err.msg);
        sp_model_free(m);
        printf("%s: %zu truncations refused\n", models[k], tried);
        free(data);
    }
}
END_TEST

/* Random byte corruption: loading either fails with a message or gives a
 * model that encodes and decodes without fault (ASan/UBSan watch). */
START_TEST(test_load_corrupted)
{
    char path[4096];
    size_t len;
    test_data_path(path, sizeof path, "tok_spm_b/spiece.model");
    char *data = test_read_file(path, &len);
    ck_assert_ptr_nonnull(data);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int loaded = 0, refused = 0;
    static const char *const texts[] = {"hello world", "  a<sep>b  ", "\xff\xfe", "日本 😀 abc",
                                        ""};
    for (int iter = 0; iter < 3000; iter++) {
        char *copy = malloc(len);
        memcpy(copy, data, len);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            copy[rng % len] = (char)(rng >> 40);
        }
        prism_error err = {0};
        sp_model *m = NULL;
        if (sp_model_load_memory(&m, copy, len, "flip.model", &err) != 0) {
            ck_assert_msg(strncmp(err.msg, "flip.model: ", 12) == 0, "%s", err.msg);
            refused++;
        } else {
            loaded++;
            sp_encoding e = {0};
            sp_buf b = {0};
            for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
                if (sp_encode(m, texts[i], strlen(texts[i]), &e, &err) == 0) {
                    int32_t ids[64];
                    size_t n = e.n_pieces < 64 ? e.n_pieces : 64;
                    for (size_t j = 0; j < n; j++)
                        ids[j] = e.pieces[j].id;
                    ck_assert_int_eq(sp_decode_ids(m, ids, n, &b, &err), 0);
                }
            }
            sp_encoding_free(&e);
            sp_buf_free(&b);
            sp_model_free(m);
        }
        free(copy);
    }
    printf("corruption: %d loaded, %d refused\n", loaded, refused);
    ck_assert_int_gt(refused, 0);
    free(data);
}
END_TEST

/* ------------------------------------------------------------------ Unicode and canonicalisation */

static void expect_lower(const char *in, const char *want)
{
    uint32_t cps[64], low[192];
    size_t bad;
    long n = tok_utf8_decode_strict(in, strlen(in), cps, &bad);
    ck_assert_int_ge(n, 0);
    size_t nl = tok_unicode_lower(cps, (size_t)n, low);
    char out[800];
    size_t w = 0;
    for (size_t i = 0; i < nl; i++)
        w += tok_utf8_encode(low[i], out + w);
    out[w] = '\0';
    ck_assert_msg(strcmp(out, want) == 0, "lower(%s) = %s, want %s", in, out, want);
}

START_TEST(test_unicode_lower)
{
    expect_lower("Hello WORLD", "hello world");
    expect_lower("\xc4\xb0", "i\xcc\x87");                 /* İ -> i + U+0307 */
    /* ΟΔΟΣ -> οδος (final ς) */
    expect_lower("\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82");
    expect_lower("\xce\xa3", "\xcf\x83");                   /* Σ alone -> σ */
    expect_lower("\xce\xa3\xce\x91", "\xcf\x83\xce\xb1");   /* ΣΑ -> σα */
    expect_lower("A\xce\xa3\xcc\x81", "a\xcf\x82\xcc\x81"); /* AΣ + combining acute: final */
    expect_lower("A\xce\xa3\xcc\x81" "B", "a\xcf\x83\xcc\x81" "b"); /* a letter follows */
    expect_lower("A'\xce\xa3", "a'\xcf\x82");               /* ' is case-ignorable */
    expect_lower("1\xce\xa3", "1\xcf\x83");                 /* a digit is not cased */
    expect_lower("\xe1\xba\x9e", "\xc3\x9f");               /* ẞ -> ß */
    expect_lower("\xe2\x85\xab", "\xe2\x85\xbb");           /* Ⅻ -> ⅻ */
    expect_lower("\xe2\x84\xaa", "k");                      /* Kelvin sign */
    expect_lower("\xf0\x90\x90\x80", "\xf0\x90\x90\xa8");   /* Deseret */
    expect_lower("\xe1\x8e\xa0", "\xea\xad\xb0");           /* Cherokee Ꭰ -> ꭰ */
    expect_lower("\xc7\x85", "\xc7\x86");                   /* ǅ -> ǆ */
}
END_TEST

START_TEST(test_unicode_space_and_utf8)
{
    static const uint32_t spaces[] = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20,
                                      0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029, 0x202F,
                                      0x205F, 0x3000};
    for (size_t i = 0; i < sizeof spaces / sizeof *spaces; i++)
        ck_assert_msg(tok_unicode_is_space(spaces[i]), "U+%04X", spaces[i]);
    static const uint32_t not_spaces[] = {0x00, 0x08, 0x21, 0x180E, 0x200B, 0x2581, 0xFEFF, 0x10FFFF};
    for (size_t i = 0; i < sizeof not_spaces / sizeof *not_spaces; i++)
        ck_assert_msg(!tok_unicode_is_space(not_spaces[i]), "U+%04X", not_spaces[i]);

    uint32_t cps[8];
    size_t bad = 99;
    ck_assert_int_eq(tok_utf8_decode_strict("a\xc3\xa9\xf0\x9f\x98\x80", 7, cps, &bad), 3);
    ck_assert_uint_eq(cps[2], 0x1F600);
    static const struct {
        const char *s;
        size_t bad;
    } invalid[] = {{"ab\xff", 2},        {"\xc3", 0},         {"a\xc3(", 1},
                   {"\xc0\x80", 0},      {"\xe0\x80\x80", 0}, {"\xed\xa0\x80", 0},
                   {"\xf4\x90\x80\x80", 0}, {"\x80", 0},      {"\xf8\x88\x80\x80\x80", 0}};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        ck_assert_int_eq(tok_utf8_decode_strict(invalid[i].s, strlen(invalid[i].s), cps, &bad), -1);
        ck_assert_uint_eq(bad, invalid[i].bad);
    }
}
END_TEST

static void expect_canon(const char *in, size_t len, const char *want)
{
    sp_buf b = {0};
    prism_error err = {0};
    ck_assert_msg(tok_siglip_canonicalize(in, len, &b, &err) == 0, "%s", err.msg);
    ck_assert_msg(strcmp(b.data, want) == 0, "canonicalize(%s) = \"%s\", want \"%s\"", in, b.data,
                  want);
    sp_buf_free(&b);
}
#define EXPECT_CANON(s, want) expect_canon(s, sizeof(s) - 1, want)

START_TEST(test_canonicalize)
{
    EXPECT_CANON("  Hello,  World!! ", "hello world");
    EXPECT_CANON("a , b", "a b");
    EXPECT_CANON("a\t\n\x0b\x0c\r\x1c\xc2\x85\xc2\xa0\xe3\x80\x80" "b", "a b");
    EXPECT_CANON("don't stop-me_now", "dont stopmenow");
    EXPECT_CANON("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "");
    EXPECT_CANON("", "");
    EXPECT_CANON(" \t ", "");
    EXPECT_CANON("\xc2\xbf\xc2\xa1\xe2\x80\x94", "\xc2\xbf\xc2\xa1\xe2\x80\x94"); /* not ASCII: kept */
    EXPECT_CANON("a\xe2\x80\x8b" "b", "a\xe2\x80\x8b" "b");  /* U+200B is not \s */
    EXPECT_CANON("\xe2\x96\x81X", "\xe2\x96\x81x");          /* ▁ is not whitespace */
    EXPECT_CANON("a\x00" "B", "a\x00" "b");
    sp_buf b = {0};
    prism_error err = {0};
    ck_assert_int_eq(tok_siglip_canonicalize("ok\xe2\x82", 5, &b, &err), -1);
    ck_assert_msg(strstr(err.msg, "UTF-8") && strstr(err.msg, "byte 2"), "%s", err.msg);
    sp_buf_free(&b);
}
END_TEST

START_TEST(test_siglip_api)
{
    char dir[4096];
    test_data_path(dir, sizeof dir, "tok_siglip");
    prism_error err = {0};
    tok_tokenizer *t = NULL;
    ck_assert_msg(tok_load(&t, dir, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(tok_vocab_size(t), 4000);
    int32_t ids[TOK_SIGLIP_MAX_LEN + 1];
    int n = -1;
    ids[TOK_SIGLIP_MAX_LEN] = 12345; /* guard */
    ck_assert_int_eq(tok_siglip_encode(t, "", 0, ids, TOK_SIGLIP_MAX_LEN, &n, &err), 0);
    ck_assert_int_eq(n, 1);
    for (int i = 0; i < TOK_SIGLIP_MAX_LEN; i++)
        ck_assert_int_eq(ids[i], 1);
    ck_assert_int_eq(ids[TOK_SIGLIP_MAX_LEN], 12345);
    /* NULL text with zero length is the empty string */
    ck_assert_int_eq(tok_siglip_encode(t, NULL, 0, ids, TOK_SIGLIP_MAX_LEN, NULL, &err), 0);
    /* invalid UTF-8 is refused with its offset */
    ck_assert_int_eq(tok_siglip_encode(t, "a photo \xff", 9, ids, TOK_SIGLIP_MAX_LEN, &n, &err), -1);
    ck_assert_msg(strstr(err.msg, "UTF-8") && strstr(err.msg, "byte 8"), "%s", err.msg);
    ck_assert_int_eq(tok_siglip_encode(t, "\xed\xa0\x80", 3, ids, TOK_SIGLIP_MAX_LEN, &n, &err), -1);
    ck_assert_int_eq(tok_siglip_encode(t, "x", 1, ids, 0, &n, &err), -1);
    /* max_len 1: just </s>; max_len 3: two tokens then </s> */
    ck_assert_int_eq(tok_siglip_encode(t, "a photo of a cat", 16, ids, 1, &n, &err), 0);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(n, 1);
    int32_t full[TOK_SIGLIP_MAX_LEN];
    ck_assert_int_eq(tok_siglip_encode(t, "a photo of a cat", 16, full, TOK_SIGLIP_MAX_LEN, &n, &err), 0);
    ck_assert_int_ge(n, 4);
    ck_assert_int_eq(tok_siglip_encode(t, "a photo of a cat", 16, ids, 3, &n, &err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], full[0]);
    ck_assert_int_eq(ids[1], full[1]);
    ck_assert_int_eq(ids[2], 1);
    /* decode */
    char *s = NULL;
    size_t sl = 0;
    ck_assert_int_eq(tok_siglip_decode(t, full, TOK_SIGLIP_MAX_LEN, true, &s, &sl, &err), 0);
    ck_assert_str_eq(s, "a photo of a cat");
    ck_assert_uint_eq(sl, 16);
    free(s);
    int32_t bad[] = {5, 4000};
    ck_assert_int_eq(tok_siglip_decode(t, bad, 2, false, &s, NULL, &err), -1);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.msg, "4000"), "%s", err.msg);
    bad[1] = -1;
    ck_assert_int_eq(tok_siglip_decode(t, bad, 2, true, &s, NULL, &err), -1);
    /* an invalid id after a special token (found by the fuzzer: leaked) */
    int32_t after_special[] = {5, 1, 2, -7};
    ck_assert_int_eq(tok_siglip_decode(t, after_special, 4, false, &s, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "-7"), "%s", err.msg);
    ck_assert_int_eq(tok_siglip_decode(t, NULL, 0, false, &s, &sl, &err), 0);
    ck_assert_str_eq(s, "");
    free(s);
    tok_free(t);
}
END_TEST

/* ------------------------------------------------------------------ reading a prefix */

/* A golden SigLIP record: the text and transformers' 64 ids. */
typedef struct siglip_case {
    gstr text;
    int32_t ids[TOK_SIGLIP_MAX_LEN];
    int n_ids; /* before padding */
} siglip_case;

static void skip_sp_fields(gold *g)
{
    (void)g_str(g);
    free(g_ids(g).v);
    for (uint64_t k = g_varint(g); k > 0; k--) {
        (void)g_varint(g);
        (void)g_str(g);
    }
    uint64_t dflag = g_varint(g);
    if (dflag) {
        ck_assert(dflag - 1 <= (uint64_t)(g->end - g->p));
        g->p += dflag - 1;
    }
}

/* The kind-1 records of tok_siglip.golden.bin (texts point into g->buf). */
static siglip_case *siglip_cases(gold *g, size_t *count)
{
    gstr model, uver;
    uint64_t n;
    g_open(g, "tok_siglip.golden.bin", &model, &uver, &n);
    siglip_case *cs = calloc(n, sizeof *cs);
    size_t k = 0;
    for (uint64_t r = 0; r < n; r++) {
        int kind = *g->p++;
        if (kind == 1) {
            siglip_case *c = &cs[k++];
            c->text = g_str(g);
            gids want = g_ids(g);
            uint64_t pad = g_varint(g);
            ck_assert_int_eq(want.n + pad, TOK_SIGLIP_MAX_LEN);
            for (size_t i = 0; i < TOK_SIGLIP_MAX_LEN; i++)
                c->ids[i] = i < want.n ? want.v[i] : 1;
            c->n_ids = (int)want.n;
            free(want.v);
            (void)g_str(g);
            if (g_varint(g))
                skip_sp_fields(g);
        } else {
            ck_assert_int_eq(kind, 2);
            free(g_ids(g).v);
            (void)g_str(g);
            (void)g_str(g);
            (void)g_str(g);
        }
    }
    ck_assert(g->p == g->end);
    *count = k;
    return cs;
}

static tok_tokenizer *load_tok(const char *rel)
{
    char path[4096];
    test_data_path(path, sizeof path, rel);
    prism_error err = {0};
    tok_tokenizer *t = NULL;
    ck_assert_msg(tok_load_file(&t, path, &err) == 0, "%s", err.msg);
    return t;
}

/* A growable text. */
typedef struct text_buf {
    char *s;
    size_t n, cap;
} text_buf;

static void tb_add(text_buf *b, const char *s, size_t n)
{
    ck_assert_uint_lt(n, (size_t)1 << 32);
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        ck_assert_ptr_nonnull(b->s);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

#define TB_ADDS(b, lit) tb_add(b, lit, sizeof(lit) - 1)

/* The bounded encoder against the whole-text one on text[0..n): same ids,
 * same count. Returns the bytes the bounded one read. */
static size_t expect_prefix_whole(const tok_tokenizer *t, tally *ta, const char *what,
                                  const char *s, size_t n)
{
    int32_t a[TOK_SIGLIP_MAX_LEN], b[TOK_SIGLIP_MAX_LEN + 1];
    int na = -1, nb = -2;
    size_t read = 0;
    prism_error err = {0};
    gstr text = {s, n};
    if (tok_siglip_encode_counted(t, s, n, a, TOK_SIGLIP_MAX_LEN, &na, &read, &err) != 0) {
        tally_err(ta, what, text, err.msg);
        return n;
    }
    if (tok_siglip_encode_whole(t, s, n, b, TOK_SIGLIP_MAX_LEN, &nb, &err) != 0) {
        tally_err(ta, what, text, err.msg);
        return n;
    }
    b[TOK_SIGLIP_MAX_LEN] = nb; /* the count joins the comparison */
    a[0] = na == nb ? a[0] : -1;
    tally_ids(ta, what, text, a, TOK_SIGLIP_MAX_LEN, b, TOK_SIGLIP_MAX_LEN);
    ck_assert_uint_le(read, n);
    return read;
}

/* Start of the character holding byte c + d of the valid UTF-8 text b
 * (clamped to the text). */
static size_t char_start(const text_buf *b, size_t c, long d)
{
    size_t i = d < 0 && (size_t)-d > c ? 0 : (size_t)((long)c + d);
    if (i >= b->n)
        return b->n;
    while (i > 0 && ((unsigned char)b->s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* Long texts made of the golden strings (every 4th, for time), with
 * whitespace runs, special tokens, U+2581, U+3000, punctuation and
 * combining marks as separators, and edits at and around the cut the
 * bounded encoder chose: its ids must be those of the whole text. */
START_TEST(test_siglip_prefix_equals_whole)
{
    gold g;
    size_t n_cases;
    siglip_case *cs = siglip_cases(&g, &n_cases);
    tok_tokenizer *t = load_tok("tok_siglip/spiece.model");
    static const char *const seps[] = {" ", "", "\t\n  ", "</s>", "<unk>", " </s> ",
                                       "\xe2\x96\x81", "\xe3\x80\x80", "!!! ", "\xc2\xa0",
                                       "\xe2\x80\x8b", "<unk> "};
    static const char *const inserts[] = {"</s>", "<unk>", " ", "   \n\t", "\xe2\x96\x81",
                                          "!?", "\xce\xa3", "</s> ", " <unk>", "\xcc\x81",
                                          "e\xcc\x81", "\xef\xac\x81", "...", "\xe3\x80\x80"};
    const size_t target = 12 << 10;
    tally short_t = {0}, rep = {0}, cat = {0}, cut = {0}, trunc = {0}, tail = {0};
    long n_cut = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const gstr s = cs[i].text;
        expect_prefix_whole(t, &short_t, "golden string", s.s, s.n);
        if (i % 4 != 0 || s.n == 0)
            continue;
        /* the string repeated */
        text_buf b = {0};
        while (b.n < target) {
            tb_add(&b, s.s, s.n);
            TB_ADDS(&b, " ");
        }
        expect_prefix_whole(t, &rep, "repeated", b.s, b.n);
        /* the following strings, with separators */
        b.n = 0;
        for (size_t k = i; b.n < target; k = (k + 1) % n_cases) {
            tb_add(&b, cs[k].text.s, cs[k].text.n);
            const char *sep = seps[k % (sizeof seps / sizeof *seps)];
            tb_add(&b, sep, strlen(sep));
        }
        size_t c = expect_prefix_whole(t, &cat, "concatenated", b.s, b.n);
        if (c < b.n) {
            n_cut++;
            /* something inserted just before, at and after the cut */
            for (int d = -1; d <= 1; d++) {
                size_t at = char_start(&b, c, d);
                const size_t n_ins = sizeof inserts / sizeof *inserts;
                const char *ins = inserts[(i / 4 + (size_t)(d + 1)) % n_ins];
                text_buf e = {0};
                tb_add(&e, b.s, at);
                tb_add(&e, ins, strlen(ins));
                tb_add(&e, b.s + at, b.n - at);
                expect_prefix_whole(t, &cut, "insert at the cut", e.s, e.n);
                free(e.s);
            }
            /* the text ending around the cut */
            static const long shift[] = {-5, -2, -1, 0, 1, 2, 5};
            for (size_t k = 0; k < sizeof shift / sizeof *shift; k++)
                expect_prefix_whole(t, &trunc, "cut short", b.s, char_start(&b, c, shift[k]));
        }
        /* the string, then a long tail of punctuation or whitespace only */
        b.n = 0;
        tb_add(&b, s.s, s.n);
        const char *fill = (i / 4) % 2 ? " !?.," : " \t \xe3\x80\x80\n";
        while (b.n < target)
            tb_add(&b, fill, strlen(fill));
        expect_prefix_whole(t, &tail, "punctuation/space tail", b.s, b.n);
        free(b.s);
    }
    printf("prefix vs whole: %zu golden strings, %ld long texts cut early\n", n_cases, n_cut);
    ck_assert_int_ge(n_cut, 100); /* the cut was exercised */
    report("golden strings", &short_t);
    report("repeated", &rep);
    report("concatenated", &cat);
    report("insert at the cut", &cut);
    report("cut short", &trunc);
    report("punctuation/space tail", &tail);
    free(cs);
    tok_free(t);
    free(g.buf);
}
END_TEST

/* Texts thinned with punctuation (deleted by canonicalisation), so that
 * the kept ids end near the cut whatever the density: a cut that loses or
 * changes a piece there shows in the ids. */
START_TEST(test_siglip_prefix_thinned)
{
    gold g;
    size_t n_cases;
    siglip_case *cs = siglip_cases(&g, &n_cases);
    tok_tokenizer *t = load_tok("tok_siglip/spiece.model");
    tally ta = {0}, ins = {0};
    static const char *const inserts[] = {"</s>", " ", "\xcc\x81", "<unk>x", "\xe2\x96\x81"};
    for (size_t i = 0; i < n_cases; i += 29) {
        for (int d = 0; d < 48; d += 4) {
            text_buf b = {0};
            for (size_t k = i; b.n < (8 << 10); k = (k + 1) % n_cases) {
                const gstr s = cs[k].text;
                for (size_t j = 0; j < s.n; j++) {
                    tb_add(&b, s.s + j, 1);
                    if (s.s[j] == ' ')
                        for (int p = 0; p < d; p++)
                            TB_ADDS(&b, ",");
                }
                TB_ADDS(&b, " ");
            }
            size_t c = expect_prefix_whole(t, &ta, "thinned", b.s, b.n);
            if (c < b.n) {
                const char *x = inserts[(i / 29 + (size_t)d) % (sizeof inserts / sizeof *inserts)];
                for (long k = -2; k <= 2; k += 2) {
                    size_t at = char_start(&b, c, k);
                    text_buf e = {0};
                    tb_add(&e, b.s, at);
                    tb_add(&e, x, strlen(x));
                    tb_add(&e, b.s + at, b.n - at);
                    expect_prefix_whole(t, &ins, "thinned, insert at the cut", e.s, e.n);
                    free(e.s);
                }
            }
            free(b.s);
        }
    }
    report("thinned", &ta);
    report("thinned, insert at the cut", &ins);
    free(cs);
    tok_free(t);
    free(g.buf);
}
END_TEST

/* Final sigma and the special tokens right at the window's edge. */
START_TEST(test_siglip_prefix_crafted)
{
    tok_tokenizer *t = load_tok("tok_siglip/spiece.model");
    tally ta = {0};
    static const char *const units[] = {
        "\xce\x9f\xce\x94\xce\x9f\xce\xa3 ",        /* ΟΔΟΣ: final sigma before a space */
        "\xce\xa3\xce\x91\xce\xa3\xe2\x96\x81",    /* ΣΑΣ▁ */
        "</s>", "<unk>", "a</s>b ", "x<unk>\n", "  ", "\xe2\x96\x81\xe2\x96\x81",
        "Hello, World! ", "\xe6\x97\xa5\xe6\x9c\xac ", "\xf0\x9f\x98\x80 ", "A.B.C ",
    };
    const size_t nu = sizeof units / sizeof *units;
    for (size_t a = 0; a < nu; a++)
        for (size_t b = 0; b < nu; b++)
            for (size_t len = 900; len < 1200; len += 37) {
                /* units a and b alternating, to about len bytes, so that
                 * the cut falls on every kind of boundary */
                text_buf tb = {0};
                for (size_t k = 0; tb.n < len + 4096; k++) {
                    const char *u = units[k % 3 == 2 ? b : a];
                    tb_add(&tb, u, strlen(u));
                }
                expect_prefix_whole(t, &ta, "alternating units", tb.s, tb.n);
                free(tb.s);
            }
    report("alternating units", &ta);
    tok_free(t);
}
END_TEST

/* Against transformers: a golden string of 65 or more pieces, followed by
 * a long tail after a space, keeps its golden ids (a tail changes at most
 * the last piece of the string's last chunk); the tail is never read. */
START_TEST(test_siglip_long_text_golden)
{
    gold g;
    size_t n_cases;
    siglip_case *cs = siglip_cases(&g, &n_cases);
    tok_tokenizer *t = load_tok("tok_siglip/spiece.model");
    text_buf tail = {0};
    for (size_t k = 0; tail.n < (64 << 10); k = (k + 7) % n_cases) {
        TB_ADDS(&tail, " ");
        tb_add(&tail, cs[k].text.s, cs[k].text.n);
    }
    long n_long = 0;
    prism_error err = {0};
    for (size_t i = 0; i < n_cases; i++) {
        const gstr s = cs[i].text;
        /* pieces before truncation, from a long max_len: which strings
         * qualify (the expected ids are transformers') */
        int32_t many[1024], got[TOK_SIGLIP_MAX_LEN];
        int n_all = 0, n = 0;
        ck_assert_int_eq(tok_siglip_encode_whole(t, s.s, s.n, many, 1024, &n_all, &err), 0);
        if (n_all < TOK_SIGLIP_MAX_LEN + 2 || n_all == 1024)
            continue;
        n_long++;
        text_buf b = {0};
        tb_add(&b, s.s, s.n);
        tb_add(&b, tail.s, tail.n);
        size_t read = 0;
        ck_assert_int_eq(
            tok_siglip_encode_counted(t, b.s, b.n, got, TOK_SIGLIP_MAX_LEN, &n, &read, &err), 0);
        char e[200];
        escape(e, sizeof e, s.s, s.n);
        for (int k = 0; k < TOK_SIGLIP_MAX_LEN; k++)
            ck_assert_msg(got[k] == cs[i].ids[k], "\"%s\" + tail: id %d is %d, want %d", e, k,
                          got[k], cs[i].ids[k]);
        ck_assert_int_eq(n, cs[i].n_ids);
        ck_assert_msg(read < s.n + 4096, "\"%s\" + tail: read %zu bytes", e, read);
        free(b.s);
    }
    printf("long golden strings checked with a tail: %ld\n", n_long);
    ck_assert_int_ge(n_long, 10);
    free(tail.s);
    free(cs);
    tok_free(t);
    free(g.buf);
}
END_TEST

/* A 16 MB text: only a few KB are tokenized (the rest is UTF-8-checked),
 * the ids are transformers' for the golden string it starts with; invalid
 * UTF-8 at its very end is still refused with its offset. */
START_TEST(test_siglip_reads_bounded_prefix)
{
    gold g;
    size_t n_cases;
    siglip_case *cs = siglip_cases(&g, &n_cases);
    tok_tokenizer *t = load_tok("tok_siglip/spiece.model");
    prism_error err = {0};
    const siglip_case *lc = NULL;
    for (size_t i = 0; i < n_cases && !lc; i++) {
        int32_t many[1024];
        int n_all = 0;
        ck_assert_int_eq(tok_siglip_encode_whole(t, cs[i].text.s, cs[i].text.n, many, 1024,
                                                 &n_all, &err), 0);
        if (n_all >= TOK_SIGLIP_MAX_LEN + 2 && n_all < 1024 && cs[i].text.n < 2048)
            lc = &cs[i];
    }
    ck_assert_ptr_nonnull(lc);
    const size_t big = 16u << 20;
    char *text = malloc(big + 1);
    ck_assert_ptr_nonnull(text);
    memcpy(text, lc->text.s, lc->text.n);
    static const char filler[] = " a photo of a cat, and </s> a dog\n";
    for (size_t i = lc->text.n; i < big; i++)
        text[i] = filler[(i - lc->text.n) % (sizeof filler - 1)];
    text[big] = '\0';
    int32_t ids[TOK_SIGLIP_MAX_LEN];
    int n = 0;
    size_t read = 0;
    ck_assert_int_eq(tok_siglip_encode_counted(t, text, big, ids, TOK_SIGLIP_MAX_LEN, &n, &read,
                                               &err), 0);
    ck_assert_uint_le(read, 4096);
    for (int k = 0; k < TOK_SIGLIP_MAX_LEN; k++)
        ck_assert_int_eq(ids[k], lc->ids[k]);
    /* special tokens alone: cut right after one */
    for (size_t i = 0; i < big; i++)
        text[i] = "</s><unk>"[i % 9];
    ck_assert_int_eq(tok_siglip_encode_counted(t, text, big - big % 9, ids, TOK_SIGLIP_MAX_LEN,
                                               &n, &read, &err), 0);
    ck_assert_uint_le(read, 4096);
    /* the UTF-8 check still covers every byte */
    text[big - 1] = '\xff';
    ck_assert_int_eq(tok_siglip_encode_counted(t, text, big, ids, TOK_SIGLIP_MAX_LEN, &n, &read,
                                               &err), -1);
    char want[64];
    snprintf(want, sizeof want, "byte %zu", big - 1);
    ck_assert_msg(strstr(err.msg, "UTF-8") && strstr(err.msg, want), "%s", err.msg);
    /* no cut position: the text is read whole */
    memset(text, 'q', 64 << 10);
    ck_assert_int_eq(tok_siglip_encode_counted(t, text, 64 << 10, ids, TOK_SIGLIP_MAX_LEN, &n,
                                               &read, &err), 0);
    ck_assert_uint_eq(read, 64 << 10);
    free(text);
    free(cs);
    tok_free(t);
    free(g.buf);
}
END_TEST

/* Models on which a space is not a boundary are read whole: tok_spm_b has
 * a user-defined piece "hello world", tok_spm_c treats whitespace as a
 * suffix; crafted specs that break a condition each. */
START_TEST(test_space_boundary_conditions)
{
    sp_model *m = load_sp("tok_siglip/spiece.model");
    ck_assert(sp_model_space_is_boundary(m)); /* nmt_nfkc charsmap, whitespace-split pieces */
    sp_model_free(m);
    m = load_sp("tok_spm_b/spiece.model");
    ck_assert(!sp_model_space_is_boundary(m));
    sp_model_free(m);
    m = load_sp("tok_spm_c/spiece.model");
    ck_assert(!sp_model_space_is_boundary(m));
    sp_model_free(m);
    craft c = {.adp = -1, .rew = -1, .esc = -1};
    m = craft_load(&c);
    ck_assert(sp_model_space_is_boundary(m));
    sp_model_free(m);
    craft bad[] = {
        {.adp = -1, .rew = -1, .esc = 0},
        {.adp = -1, .rew = -1, .esc = -1, .ws_suffix = 1},
        {.adp = -1, .rew = -1, .esc = -1, .user_defined = {"x y"}},
        {.adp = -1, .rew = -1, .esc = -1, .user_defined = {"a" U2581 "b"}},
        {.adp = -1, .rew = -1, .esc = -1, .user_defined = {"ab\xe2"}},
        {.adp = -1, .rew = -1, .esc = -1, .user_defined = {"ab\xe2\x96"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m = craft_load(&bad[i]);
        ck_assert_msg(!sp_model_space_is_boundary(m), "crafted model %zu", i);
        sp_model_free(m);
    }
    /* leading ▁ is fine */
    craft lead = {.adp = -1, .rew = -1, .esc = -1, .user_defined = {U2581 "xy"}};
    m = craft_load(&lead);
    ck_assert(sp_model_space_is_boundary(m));
    sp_model_free(m);

    /* read whole, and equal to the whole-text encoder */
    tok_tokenizer *t = load_tok("tok_spm_b/spiece.model");
    text_buf b = {0};
    while (b.n < (32 << 10))
        TB_ADDS(&b, "hello world, a photo of a cat ");
    tally ta = {0};
    ck_assert_uint_eq(expect_prefix_whole(t, &ta, "tok_spm_b", b.s, b.n), b.n);
    report("tok_spm_b", &ta);
    free(b.s);
    tok_free(t);
}
END_TEST

/* The contract itself on the nmt_nfkc model: the pieces of A but its last
 * begin the pieces of A + " " + R, for raw (not canonicalised) texts. */
START_TEST(test_space_boundary_property)
{
    gold g;
    size_t n_cases;
    siglip_case *cs = siglip_cases(&g, &n_cases);
    sp_model *m = load_sp("tok_siglip/spiece.model");
    prism_error err = {0};
    long checked = 0, failed = 0;
    char first[512] = "";
    for (size_t i = 0; i + 1 < n_cases; i += 3) {
        const gstr a = cs[i].text, r = cs[i + 1].text;
        text_buf b = {0};
        tb_add(&b, a.s, a.n);
        TB_ADDS(&b, " ");
        tb_add(&b, r.s, r.n);
        sp_encoding ea = {0}, eb = {0};
        ck_assert_int_eq(sp_encode(m, a.s, a.n, &ea, &err), 0);
        ck_assert_int_eq(sp_encode(m, b.s, b.n, &eb, &err), 0);
        size_t k = ea.n_pieces ? ea.n_pieces - 1 : 0;
        bool ok = eb.n_pieces >= k;
        for (size_t j = 0; ok && j < k; j++)
            ok = ea.pieces[j].id == eb.pieces[j].id && ea.pieces[j].len == eb.pieces[j].len &&
                 memcmp(ea.pieces[j].str, eb.pieces[j].str, ea.pieces[j].len) == 0;
        checked++;
        if (!ok && failed++ == 0)
            escape(first, sizeof first, b.s, b.n);
        sp_encoding_free(&ea);
        sp_encoding_free(&eb);
        free(b.s);
    }
    ck_assert_msg(failed == 0, "%ld of %ld: first \"%s\"", failed, checked, first);
    sp_model_free(m);
    free(cs);
    free(g.buf);
}
END_TEST

/* tok_sp_encode_bounded: the whole text's pieces when within the limit,
 * an early answer from a prefix when over it. */
START_TEST(test_sp_encode_bounded)
{
    gold g;
    size_t n_cases;
    siglip_case *cs = siglip_cases(&g, &n_cases);
    tok_tokenizer *t = load_tok("tok_siglip/spiece.model");
    prism_error err = {0};
    for (size_t i = 0; i < n_cases; i += 97) {
        text_buf b = {0};
        for (size_t k = i; b.n < (12 << 10); k = (k + 1) % n_cases) {
            tb_add(&b, cs[k].text.s, cs[k].text.n);
            TB_ADDS(&b, " ");
        }
        sp_encoding whole = {0}, e = {0};
        ck_assert_int_eq(sp_encode(tok_model(t), b.s, b.n, &whole, &err), 0);
        size_t n = 0, read = 0;
        /* within the limit: all pieces, equal */
        ck_assert_int_eq(tok_sp_encode_bounded(t, b.s, b.n, whole.n_pieces, &e, &n, &read, &err),
                         0);
        ck_assert_uint_eq(n, whole.n_pieces);
        ck_assert_uint_eq(e.n_pieces, whole.n_pieces);
        ck_assert_uint_eq(read, b.n);
        for (size_t j = 0; j < n; j++)
            ck_assert_int_eq(e.pieces[j].id, whole.pieces[j].id);
        /* one over: refused, with a count between the limit and the truth */
        int rc = tok_sp_encode_bounded(t, b.s, b.n, whole.n_pieces - 1, &e, &n, &read, &err);
        ck_assert(rc == 1 || (rc == 0 && n == whole.n_pieces));
        if (rc == 1)
            ck_assert(n > whole.n_pieces - 1 && n <= whole.n_pieces);
        /* far over: refused from a prefix */
        ck_assert_int_eq(tok_sp_encode_bounded(t, b.s, b.n, 63, &e, &n, &read, &err), 1);
        ck_assert(n > 63 && n <= whole.n_pieces);
        ck_assert_uint_eq(e.n_pieces, 0);
        ck_assert_uint_lt(read, b.n);
        sp_encoding_free(&whole);
        sp_encoding_free(&e);
        free(b.s);
    }
    /* 16 MB: a few KB encoded */
    const size_t big = 16u << 20;
    char *text = malloc(big);
    ck_assert_ptr_nonnull(text);
    static const char filler[] = "what is the color of the cat on the table? ";
    for (size_t i = 0; i < big; i++)
        text[i] = filler[i % (sizeof filler - 1)];
    sp_encoding e = {0};
    size_t n = 0, read = 0;
    ck_assert_int_eq(tok_sp_encode_bounded(t, text, big, 63, &e, &n, &read, &err), 1);
    ck_assert_uint_le(read, 4096);
    ck_assert_uint_gt(n, 63);
    sp_encoding_free(&e);
    free(text);
    free(cs);
    tok_free(t);
    free(g.buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_siglip_golden);
    tcase_add_loop_test(tc, test_sp_golden, 0, 2);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("loader");
    tcase_set_timeout(tl, 600);
    tcase_add_test(tl, test_load_crafted_errors);
    tcase_add_test(tl, test_charsmap_bad_value);
    tcase_add_test(tl, test_load_files);
    tcase_add_test(tl, test_load_truncated);
    tcase_add_test(tl, test_load_corrupted);
    suite_add_tcase(s, tl);
    TCase *tu = tcase_create("units");
    tcase_add_test(tu, test_normalizer_flags);
    tcase_add_test(tu, test_normalizer_user_defined);
    tcase_add_test(tu, test_normalizer_charsmap);
    tcase_add_test(tu, test_encode_unknown_and_decode);
    tcase_add_test(tu, test_viterbi_ties);
    tcase_add_test(tu, test_unicode_lower);
    tcase_add_test(tu, test_unicode_space_and_utf8);
    tcase_add_test(tu, test_canonicalize);
    tcase_add_test(tu, test_siglip_api);
    suite_add_tcase(s, tu);
    TCase *tp = tcase_create("prefix");
    tcase_set_timeout(tp, 600);
    tcase_add_test(tp, test_siglip_prefix_equals_whole);
    tcase_add_test(tp, test_siglip_prefix_thinned);
    tcase_add_test(tp, test_siglip_prefix_crafted);
    tcase_add_test(tp, test_siglip_long_text_golden);
    tcase_add_test(tp, test_siglip_reads_bounded_prefix);
    tcase_add_test(tp, test_space_boundary_conditions);
    tcase_add_test(tp, test_space_boundary_property);
    tcase_add_test(tp, test_sp_encode_bounded);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
