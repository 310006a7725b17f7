/* tok_unicode.h - Python-exact Unicode helpers for the SigLIP text pipeline:
 * str.lower() (with CPython's final-sigma rule), str.isspace(), and strict
 * UTF-8 decoding. The tables are generated from Python by
 * tools/gen_tok_unicode_tables.py into tok_unicode_tables.c.
 */
#ifndef PRISM_TOK_UNICODE_H
#define PRISM_TOK_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Code points first, first + stride, ... (count of them) lowercase to
 * cp + delta. Runs are sorted and do not overlap. */
typedef struct tok_lower_run {
    uint32_t first;
    uint16_t count;
    uint8_t stride;
    int32_t delta;
} tok_lower_run;

typedef struct tok_lower_multi {
    uint32_t cp;
    uint8_t n;
    uint32_t out[3];
} tok_lower_multi;

typedef struct tok_range {
    uint32_t first, last;
} tok_range;

extern const char tok_unicode_version[];
extern const tok_lower_run tok_lower_runs[];
extern const size_t tok_lower_runs_count;
extern const tok_lower_multi tok_lower_multis[];
extern const size_t tok_lower_multis_count;
extern const tok_range tok_space_ranges[];
extern const size_t tok_space_count;
extern const tok_range tok_cased_ranges[];
extern const size_t tok_cased_count;
extern const tok_range tok_case_ignorable_ranges[];
extern const size_t tok_case_ignorable_count;

/* Whether cp lies in one of the n sorted, disjoint ranges r (binary search). */
bool tok_unicode_in_ranges(const tok_range *r, size_t n, uint32_t cp);

/* Python's str.isspace() for one code point. */
bool tok_unicode_is_space(uint32_t cp);

/* Python's str.lower() of cps[0..n) (code points), written to out, which
 * must hold 3 * n code points. Returns the number written. */
size_t tok_unicode_lower(const uint32_t *cps, size_t n, uint32_t *out);
/* The same for the one code point cps[i] (1 to 3 code points into out);
 * the rest of cps is its context (final sigma). */
size_t tok_unicode_lower_at(const uint32_t *cps, size_t n, size_t i, uint32_t out[3]);

/* Strict UTF-8 (RFC 3629: no overlongs, surrogates or values past
 * U+10FFFF). tok_utf8_char decodes the character at s[i] (i < n) into *cp
 * and returns its length, 0 when the bytes there are not one. */
size_t tok_utf8_char(const unsigned char *s, size_t n, size_t i, uint32_t *cp);
/* Decodes s[0..len) into cps (len entries suffice); returns the
 * number of code points, or -1 with the offending byte offset in *bad. */
long tok_utf8_decode_strict(const char *s, size_t len, uint32_t *cps, size_t *bad);

/* Encodes one code point (< 0x110000) into out (4 bytes); returns its length. */
size_t tok_utf8_encode(uint32_t cp, char *out);

#endif
