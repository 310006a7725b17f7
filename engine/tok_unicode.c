/* tok_unicode.c - lookups in the generated Unicode tables: Python's
 * str.lower() (CPython's lower_ucs4 + handle_capital_sigma) and
 * str.isspace(), and strict UTF-8 conversion.
 */
#include "tok_unicode.h"

bool tok_unicode_in_ranges(const tok_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].last < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && r[lo].first <= cp && cp <= r[lo].last;
}

bool tok_unicode_is_space(uint32_t cp)
{
    if (cp < 0x80) /* fast path: \t \n \v \f \r, 0x1c-0x1f, ' ' */
        return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    return tok_unicode_in_ranges(tok_space_ranges, tok_space_count, cp);
}

static bool is_case_ignorable(uint32_t cp)
{
    return tok_unicode_in_ranges(tok_case_ignorable_ranges, tok_case_ignorable_count, cp);
}

static bool is_cased(uint32_t cp)
{
    return tok_unicode_in_ranges(tok_cased_ranges, tok_cased_count, cp);
}

/* Appends the full lowercase mapping of one code point (context-free). */
static size_t lower_one(uint32_t cp, uint32_t *out)
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    for (size_t i = 0; i < tok_lower_multis_count; i++) {
        if (tok_lower_multis[i].cp == cp) {
            for (uint8_t k = 0; k < tok_lower_multis[i].n; k++)
                out[k] = tok_lower_multis[i].out[k];
            return tok_lower_multis[i].n;
        }
    }
    size_t lo = 0, hi = tok_lower_runs_count; /* last run with first <= cp */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tok_lower_runs[mid].first <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const tok_lower_run *r = &tok_lower_runs[lo - 1];
        uint32_t k = cp - r->first;
        if (k % r->stride == 0 && k / r->stride < r->count) {
            out[0] = (uint32_t)((int64_t)cp + r->delta);
            return 1;
        }
    }
    out[0] = cp;
    return 1;
}

/* CPython's handle_capital_sigma: U+03A3 is final (U+03C2) when a cased
 * letter precedes it (skipping case-ignorable ones) and none follows. */
static uint32_t lower_sigma(const uint32_t *cps, size_t n, size_t i)
{
    size_t j = i; /* j = index + 1 of the first non-ignorable before i, 0 if none */
    uint32_t c = 0;
    while (j > 0 && is_case_ignorable(cps[j - 1]))
        j--;
    if (j > 0)
        c = cps[j - 1];
    bool final = j > 0 && is_cased(c);
    if (final && i + 1 < n) {
        size_t k = i + 1;
        for (; k < n; k++) {
            c = cps[k];
            if (!is_case_ignorable(c))
                break;
        }
        final = k == n || !is_cased(c);
    }
    return final ? 0x3C2 : 0x3C3;
}

size_t tok_unicode_lower_at(const uint32_t *cps, size_t n, size_t i, uint32_t out[3])
{
    if (cps[i] == 0x3A3) {
        out[0] = lower_sigma(cps, n, i);
        return 1;
    }
    return lower_one(cps[i], out);
}

size_t tok_unicode_lower(const uint32_t *cps, size_t n, uint32_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += tok_unicode_lower_at(cps, n, i, out + w);
    return w;
}

size_t tok_utf8_char(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if (i + k >= n)
            return 0;
        unsigned b = s[i + k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
            return 0;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

long tok_utf8_decode_strict(const char *s, size_t len, uint32_t *cps, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    long n = 0;
    for (size_t i = 0; i < len;) {
        const size_t l = tok_utf8_char(u, len, i, &cps[n]);
        if (l == 0) {
            *bad = i;
            return -1;
        }
        n++;
        i += l;
    }
    return n;
}

size_t tok_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}
