/* sp_normalizer.c - sentencepiece's Normalizer: the precompiled charsmap and
 * the whitespace rules, plus the UTF-8 reading sentencepiece uses.
 *
 * precompiled_charsmap = <uint32 LE trie size T><T bytes: darts-clone double
 * array, one little-endian uint32 unit each><replacement strings, each
 * NUL-terminated>. At each input position the longest key of the trie that
 * is a prefix of the input is replaced by the string at the key's value
 * offset; without a match one UTF-8 character is copied (an invalid byte
 * becomes U+FFFD and consumes one byte). User-defined pieces are matched
 * before the charsmap and copied verbatim.
 *
 * The darts-clone lookup is reproduced exactly (unit layout: bit 8 = has a
 * leaf, bit 9 = offset is shifted by 8, bits 10.. = offset, low 8 bits +
 * bit 31 = label; a leaf unit's low 31 bits are the value), with every
 * index checked against the array: the file is untrusted, so a unit that
 * points outside the array ends the match instead of a stray read, and
 * the loader walks every reachable entry once to refuse values past the
 * replacement blob (charsmap_validate).
 */
#include <stdlib.h>
#include <string.h>

#include "sp_internal.h"

/* sentencepiece's Normalizer::kMaxTrieResultsSize: only the first 32
 * matches along a key are considered (its builder never exceeds this). */
#define SP_CHARSMAP_MAX_RESULTS 32

static const char kSpaceSymbol[] = "\xe2\x96\x81"; /* U+2581 ▁ */

uint32_t sp_utf8_decode(const unsigned char *s, size_t n, size_t *mblen)
{
    if (n == 0) {
        *mblen = 0;
        return 0xFFFD;
    }
    uint32_t c = s[0];
    if (c < 0x80) {
        *mblen = 1;
        return c;
    }
#define TRAIL(x) (((x) & 0xC0) == 0x80)
#define VALID_CP(x) ((x) < 0xD800 || ((x) >= 0xE000 && (x) <= 0x10FFFF))
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        if (TRAIL(s[1]) && cp >= 0x80 && VALID_CP(cp)) {
            *mblen = 2;
            return cp;
        }
    } else if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = ((c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (TRAIL(s[1]) && TRAIL(s[2]) && cp >= 0x800 && VALID_CP(cp)) {
            *mblen = 3;
            return cp;
        }
    } else if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = ((c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (TRAIL(s[1]) && TRAIL(s[2]) && TRAIL(s[3]) && cp >= 0x10000 && VALID_CP(cp)) {
            *mblen = 4;
            return cp;
        }
    }
#undef TRAIL
#undef VALID_CP
    *mblen = 1;
    return 0xFFFD;
}

bool sp_utf8_valid_char(const unsigned char *s, size_t n, size_t *mblen)
{
    uint32_t c = sp_utf8_decode(s, n, mblen);
    return c != 0xFFFD || *mblen == 3;
}

static uint32_t unit_at(const sp_norm_spec *spec, size_t i)
{
    const uint8_t *u = spec->units + 4 * i;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static size_t unit_offset(uint32_t u)
{
    return (size_t)((u >> 10) << ((u & (1u << 9)) >> 6));
}

/* Walks every node a lookup can reach (the same transitions as
 * charsmap_match, each array index once) and checks every leaf's value
 * against the replacement blob, so that a loaded model never normalises
 * through a bad offset. At most n_units * 256 steps (~10 ms for nmt_nfkc). */
static int charsmap_validate(const sp_norm_spec *spec, const char *name, const char *which,
                             prism_error *err)
{
    uint8_t *seen = calloc(spec->n_units, 1);
    size_t *stack = malloc((size_t)spec->n_units * sizeof *stack + sizeof *stack);
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return prism_errorf(err, "%s: out of memory checking the %s charsmap", name, which);
    }
    size_t top = 0;
    stack[top++] = unit_offset(unit_at(spec, 0)); /* bases to expand */
    int rc = 0;
    while (top > 0 && rc == 0) {
        size_t base = stack[--top];
        for (unsigned c = 0; c < 256; c++) {
            size_t idx = base ^ c;
            if (idx >= spec->n_units)
                continue;
            uint32_t u = unit_at(spec, idx);
            if ((u & ((1u << 31) | 0xFF)) != c)
                continue;
            size_t next = idx ^ unit_offset(u);
            if (((u >> 8) & 1) && next < spec->n_units &&
                (unit_at(spec, next) & 0x7FFFFFFFu) >= spec->repl_len) {
                rc = prism_errorf(err,
                                  "%s: %s precompiled_charsmap entry points past its "
                                  "replacement strings (offset %u of %zu)",
                                  name, which, unit_at(spec, next) & 0x7FFFFFFFu, spec->repl_len);
                break;
            }
            if (!seen[idx]) {
                seen[idx] = 1;
                stack[top++] = next;
            }
        }
    }
    free(seen);
    free(stack);
    return rc;
}

int sp_charsmap_init(sp_norm_spec *spec, const char *name, const char *which,
                     prism_error *err)
{
    spec->units = NULL;
    spec->n_units = 0;
    spec->repl = NULL;
    spec->repl_len = 0;
    if (spec->charsmap.len == 0)
        return 0;
    const uint8_t *b = (const uint8_t *)spec->charsmap.data;
    size_t n = spec->charsmap.len;
    if (n <= 4)
        return prism_errorf(err, "%s: %s precompiled_charsmap is broken (%zu bytes)", name,
                            which, n);
    uint32_t trie_size = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                         (uint32_t)b[3] << 24;
    if (trie_size > n - 4)
        return prism_errorf(err,
                            "%s: %s precompiled_charsmap trie size %u exceeds its %zu-byte blob",
                            name, which, trie_size, n - 4);
    if (trie_size < 4)
        return prism_errorf(err, "%s: %s precompiled_charsmap has an empty trie", name, which);
    spec->units = b + 4;
    spec->n_units = trie_size / 4;
    spec->repl = (const char *)b + 4 + trie_size;
    spec->repl_len = n - 4 - trie_size;
    /* Each replacement is read up to its NUL: the blob must end with one. */
    if (spec->repl_len == 0 || spec->repl[spec->repl_len - 1] != '\0')
        return prism_errorf(err,
                            "%s: %s precompiled_charsmap replacement strings are not "
                            "NUL-terminated",
                            name, which);
    return charsmap_validate(spec, name, which, err);
}

/* darts-clone commonPrefixSearch, keeping the longest of the first
 * SP_CHARSMAP_MAX_RESULTS matches. Returns the match length (0: none). */
static size_t charsmap_match(const sp_norm_spec *spec, const unsigned char *s, size_t n,
                             uint32_t *value)
{
    size_t best = 0, found = 0;
    size_t node = 0;
    uint32_t u = unit_at(spec, 0);
    node ^= unit_offset(u);
    for (size_t i = 0; i < n; i++) {
        node ^= s[i];
        if (node >= spec->n_units)
            break;
        u = unit_at(spec, node);
        if ((u & ((1u << 31) | 0xFF)) != s[i])
            break;
        node ^= unit_offset(u);
        if ((u >> 8) & 1) {
            if (node >= spec->n_units)
                break;
            if (found < SP_CHARSMAP_MAX_RESULTS) {
                best = i + 1;
                *value = unit_at(spec, node) & 0x7FFFFFFFu;
            }
            found++;
        }
    }
    return best;
}

/* Normalizer::NormalizePrefix: the replacement for the longest rule at the
 * start of s, and the bytes it consumes. */
static int normalize_prefix(const sp_model *m, const sp_norm_spec *spec, const char *s,
                            size_t n, const char **rep, size_t *rep_len, size_t *consumed,
                            prism_error *err)
{
    if (m && m->has_user_defined) {
        size_t k = sp_user_defined_prefix(m, s, n);
        if (k > 0) {
            *rep = s;
            *rep_len = *consumed = k;
            return 0;
        }
    }
    if (spec->n_units > 0) {
        uint32_t value = 0;
        size_t k = charsmap_match(spec, (const unsigned char *)s, n, &value);
        if (k > 0) {
            if (value >= spec->repl_len)
                return prism_errorf(err,
                                    "%s: precompiled_charsmap points past its replacement "
                                    "strings (offset %u of %zu)",
                                    m ? m->name : "model", value, spec->repl_len);
            *rep = spec->repl + value;
            *rep_len = strlen(*rep); /* bounded: the blob ends with NUL */
            *consumed = k;
            return 0;
        }
    }
    size_t mblen;
    if (!sp_utf8_valid_char((const unsigned char *)s, n, &mblen)) {
        *rep = "\xEF\xBF\xBD";
        *rep_len = 3;
        *consumed = 1;
    } else {
        *rep = s;
        *rep_len = *consumed = mblen;
    }
    return 0;
}

static bool ends_with(const sp_buf *b, const char *suffix, size_t n)
{
    return b->len >= n && memcmp(b->data + b->len - n, suffix, n) == 0;
}

int sp_normalize_with(const sp_model *m, const sp_norm_spec *spec, bool treat_ws_as_suffix,
                      const char *text, size_t len, sp_buf *out, prism_error *err)
{
    sp_buf_clear(out);
    if (len == 0)
        return 0;
    const char *rep;
    size_t rep_len, used;

    /* Leading whitespace: rules that normalise to exactly " ". */
    if (spec->remove_extra_whitespaces) {
        while (len > 0) {
            if (normalize_prefix(m, spec, text, len, &rep, &rep_len, &used, err) != 0)
                return -1;
            if (!(rep_len == 1 && rep[0] == ' '))
                break;
            text += used;
            len -= used;
        }
    }
    if (len == 0)
        return 0;

    const char *ws = spec->escape_whitespaces ? kSpaceSymbol : " ";
    const size_t ws_len = spec->escape_whitespaces ? 3 : 1;
    if (!treat_ws_as_suffix && spec->add_dummy_prefix && sp_buf_append(out, ws, ws_len) != 0)
        goto oom;

    bool is_prev_space = spec->remove_extra_whitespaces;
    while (len > 0) {
        if (normalize_prefix(m, spec, text, len, &rep, &rep_len, &used, err) != 0)
            return -1;
        while (is_prev_space && rep_len > 0 && rep[0] == ' ') {
            rep++;
            rep_len--;
        }
        if (rep_len > 0) {
            for (size_t i = 0; i < rep_len; i++) {
                int rc = spec->escape_whitespaces && rep[i] == ' '
                             ? sp_buf_append(out, kSpaceSymbol, 3)
                             : sp_buf_append(out, rep + i, 1);
                if (rc != 0)
                    goto oom;
            }
            is_prev_space = rep[rep_len - 1] == ' ';
        }
        text += used;
        len -= used;
        if (!spec->remove_extra_whitespaces)
            is_prev_space = false;
    }

    if (spec->remove_extra_whitespaces) {
        while (ends_with(out, ws, ws_len))
            out->len -= ws_len;
        if (out->data)
            out->data[out->len] = '\0';
    }
    if (treat_ws_as_suffix && spec->add_dummy_prefix && sp_buf_append(out, ws, ws_len) != 0)
        goto oom;
    return 0;
oom:
    return prism_errorf(err, "out of memory normalising text");
}

int sp_normalize(const sp_model *m, const char *text, size_t len, sp_buf *out,
                 prism_error *err)
{
    return sp_normalize_with(m, &m->proto.normalizer,
                             m->proto.trainer.treat_whitespace_as_suffix, text, len, out, err);
}
