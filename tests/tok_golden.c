/* tok_golden.c - the reader of the tokenizer golden files written by
 * tools/reference/make_tokenizer_goldens.py and make_gemma_tokenizer_goldens.py,
 * and the mismatch tallies the tokenizer tests report with (tok_golden.h).
 */
#include "tok_golden.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* ------------------------------------------------------------------ golden file reader */

uint64_t g_varint(gold *g)
{
    uint64_t v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        ck_assert_msg(g->p < g->end, "golden file truncated");
        uint8_t b = *g->p++;
        v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80))
            return v;
    }
    ck_abort_msg("golden file: bad varint");
    return 0;
}

/* A string view into the file (NOT NUL-terminated). */
gstr g_str(gold *g)
{
    uint64_t n = g_varint(g);
    ck_assert_msg(n <= (uint64_t)(g->end - g->p), "golden file: string past end");
    gstr r = {(const char *)g->p, (size_t)n};
    g->p += n;
    return r;
}

gids g_ids(gold *g)
{
    gids r;
    r.n = (size_t)g_varint(g);
    ck_assert(r.n < 1000000);
    r.v = malloc((r.n ? r.n : 1) * sizeof *r.v);
    for (size_t i = 0; i < r.n; i++)
        r.v[i] = (int32_t)g_varint(g);
    return r;
}

void g_open(gold *g, const char *name, gstr *model, gstr *unicode_version,
            uint64_t *n_records)
{
    char path[4096];
    size_t len;
    test_data_path(path, sizeof path, name);
    g->buf = test_read_file(path, &len);
    ck_assert_msg(g->buf != NULL, "cannot read %s (run tools/reference/make_tokenizer_goldens.py)",
                  path);
    g->p = (const uint8_t *)g->buf;
    g->end = g->p + len;
    ck_assert_msg(len > 8 && memcmp(g->p, "PRISMTOK", 8) == 0, "%s: not a golden file", path);
    g->p += 8;
    ck_assert_int_eq(g_varint(g), 1);
    *n_records = g_varint(g);
    *model = g_str(g);
    *unicode_version = g_str(g);
    (void)g_str(g); /* versions, informational */
}

/* ------------------------------------------------------------------ mismatch reports */

/* Printable form of bytes: ASCII as is, everything else \xNN (UTF-8 bytes). */
void escape(char *out, size_t cap, const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[w++] = (char)c;
        else
            w += (size_t)snprintf(out + w, cap - w, "\\x%02x", c);
    }
    if (w + 8 >= cap && cap > 4)
        memcpy(out + cap - 5, "...", 4), w = cap - 2;
    out[w] = '\0';
}

void format_ids(char *out, size_t cap, const int32_t *ids, size_t n)
{
    size_t w = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && w + 16 < cap; i++)
        w += (size_t)snprintf(out + w, cap - w, "%s%d", i ? " " : "", ids[i]);
}

void tally_ids(tally *t, const char *what, gstr text, const int32_t *got, size_t ngot,
               const int32_t *want, size_t nwant)
{
    t->checked++;
    if (ngot == nwant && memcmp(got, want, ngot * sizeof *got) == 0)
        return;
    if (t->failed++ == 0) {
        char e[1024], a[1000], b[1000];
        escape(e, sizeof e, text.s, text.n);
        format_ids(a, sizeof a, got, ngot);
        format_ids(b, sizeof b, want, nwant);
        snprintf(t->first, sizeof t->first, "%s of \"%s\":\n  got  [%s]\n  want [%s]", what, e, a,
                 b);
    }
}

void tally_str(tally *t, const char *what, gstr text, const char *got, size_t ngot,
               const char *want, size_t nwant)
{
    t->checked++;
    if (ngot == nwant && memcmp(got, want, ngot) == 0)
        return;
    if (t->failed++ == 0) {
        char e[1000], a[1000], b[1000];
        escape(e, sizeof e, text.s, text.n);
        escape(a, sizeof a, got, ngot);
        escape(b, sizeof b, want, nwant);
        snprintf(t->first, sizeof t->first, "%s of \"%s\":\n  got  \"%s\"\n  want \"%s\"", what, e,
                 a, b);
    }
}

void tally_err(tally *t, const char *what, gstr text, const char *msg)
{
    t->checked++;
    if (t->failed++ == 0) {
        char e[1000];
        escape(e, sizeof e, text.s, text.n);
        snprintf(t->first, sizeof t->first, "%s of \"%s\" failed: %s", what, e, msg);
    }
}

/* ------------------------------------------------------------------ SP-level checks */

/* The SP fields of a record: normalize, encode ids, piece strings, decode. */
void check_sp_fields(const sp_model *m, gold *g, gstr text, tally *norm, tally *enc,
                     tally *pieces, tally *dec)
{
    gstr want_norm = g_str(g);
    gids want_ids = g_ids(g);
    uint64_t n_exc = g_varint(g);
    /* expected piece strings: the vocabulary's, except the listed ones */
    gstr *want_pieces = calloc(want_ids.n ? want_ids.n : 1, sizeof *want_pieces);
    for (size_t i = 0; i < want_ids.n; i++) {
        size_t pl = 0;
        const char *p = sp_id_to_piece(m, want_ids.v[i], &pl);
        want_pieces[i] = (gstr){p ? p : "", pl};
    }
    for (uint64_t k = 0; k < n_exc; k++) {
        uint64_t idx = g_varint(g);
        gstr s = g_str(g);
        ck_assert(idx < want_ids.n);
        want_pieces[idx] = s;
    }
    uint64_t dflag = g_varint(g);
    gstr want_dec = text;
    if (dflag) {
        ck_assert(dflag - 1 <= (uint64_t)(g->end - g->p));
        want_dec = (gstr){(const char *)g->p, (size_t)(dflag - 1)};
        g->p += dflag - 1;
    }

    prism_error err = {0};
    sp_buf nb = {0};
    if (sp_normalize(m, text.s, text.n, &nb, &err) != 0)
        tally_err(norm, "sp_normalize", text, err.msg);
    else
        tally_str(norm, "sp_normalize", text, nb.data ? nb.data : "", nb.len, want_norm.s,
                  want_norm.n);
    sp_buf_free(&nb);

    sp_encoding e = {0};
    if (sp_encode(m, text.s, text.n, &e, &err) != 0) {
        tally_err(enc, "sp_encode", text, err.msg);
    } else {
        int32_t *ids = malloc((e.n_pieces ? e.n_pieces : 1) * sizeof *ids);
        for (size_t i = 0; i < e.n_pieces; i++)
            ids[i] = e.pieces[i].id;
        tally_ids(enc, "sp_encode", text, ids, e.n_pieces, want_ids.v, want_ids.n);
        if (e.n_pieces == want_ids.n) {
            for (size_t i = 0; i < e.n_pieces; i++) {
                tally_str(pieces, "sp_encode piece", text, e.pieces[i].str, e.pieces[i].len,
                          want_pieces[i].s, want_pieces[i].n);
            }
        }
        sp_buf db = {0};
        if (sp_decode_ids(m, ids, e.n_pieces, &db, &err) != 0)
            tally_err(dec, "sp_decode_ids", text, err.msg);
        else
            tally_str(dec, "sp_decode_ids", text, db.data, db.len, want_dec.s, want_dec.n);
        sp_buf_free(&db);
        free(ids);
    }
    sp_encoding_free(&e);
    free(want_pieces);
    free(want_ids.v);
}

void report(const char *name, const tally *t)
{
    printf("  %-28s %6ld checked, %ld mismatched\n", name, t->checked, t->failed);
    ck_assert_msg(t->failed == 0, "%s: %ld of %ld mismatched; first: %s", name, t->failed,
                  t->checked, t->first);
}
