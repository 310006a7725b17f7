/* tok_golden.h - shared by the tokenizer tests: the golden file reader
 * (varints, strings, id lists) and the tallies that count mismatches and
 * report the first one with both sides. */
#ifndef PRISM_TESTS_TOK_GOLDEN_H
#define PRISM_TESTS_TOK_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "sp_model.h"

typedef struct gold {
    const uint8_t *p, *end;
    char *buf;
} gold;

typedef struct gstr {
    const char *s;
    size_t n;
} gstr;

typedef struct gids {
    int32_t *v;
    size_t n;
} gids;

typedef struct tally {
    long checked, failed;
    char first[3072];
} tally;

uint64_t g_varint(gold *g);
gstr g_str(gold *g);
gids g_ids(gold *g);
void g_open(gold *g, const char *name, gstr *model, gstr *unicode_version,
            uint64_t *n_records);
void escape(char *out, size_t cap, const char *s, size_t n);
void format_ids(char *out, size_t cap, const int32_t *ids, size_t n);
void tally_ids(tally *t, const char *what, gstr text, const int32_t *got, size_t ngot,
               const int32_t *want, size_t nwant);
void tally_str(tally *t, const char *what, gstr text, const char *got, size_t ngot,
               const char *want, size_t nwant);
void tally_err(tally *t, const char *what, gstr text, const char *msg);
void check_sp_fields(const sp_model *m, gold *g, gstr text, tally *norm, tally *enc,
                     tally *pieces, tally *dec);
void report(const char *name, const tally *t);

#endif
