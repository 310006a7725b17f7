/* tok_bytebpe.c - BART's byte-level BPE (Florence-2's tokenizer), step for
 * step what transformers' RobertaTokenizer over the tokenizers library does
 * (tok_bytebpe.h lists the steps; docs/tokenizer.md the reasons).
 *
 * Design notes.
 *
 * What transformers 5 runs. BartTokenizer is RobertaTokenizer, which does
 * not load tokenizer.json's pipeline as it is: it takes the vocabulary and
 * merges out of it and builds BPE(vocab, merges) with no unknown token, no
 * dropout and no subword affixes, a ByteLevel pre-tokenizer (add_prefix_space
 * from tokenizer_config.json) and a ByteLevel decoder, then adds the tokens
 * of tokenizer_config.json's added_tokens_decoder. The loader therefore
 * refuses a tokenizer.json whose pipeline is something else (its settings
 * would be silently replaced), and checks that tokenizer_config.json's
 * added tokens are tokenizer.json's.
 *
 * BPE cost. The reference merges with a priority queue (lowest rank, then
 * leftmost position); so does bpe_word below, with stale entries dropped
 * when popped (an entry is live when the pair now at its position has the
 * entry's rank: a merge rank names one pair, and the pair at a position only
 * ever grows). Each merge pushes at most two entries, so a word of n bytes
 * costs O(n log n) time and O(n) memory. No word is cut: cutting a word
 * would change its merges.
 *
 * Memory. Everything is allocated at load; an encode call allocates its BPE
 * workspace (sized by the longest regex match of the text) and frees it
 * before returning.
 */
#include "tok_bytebpe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"

/* ------------------------------------------------------------------ tables */

/* One added token. */
typedef struct bb_added {
    uint32_t off, len; /* content in the arena */
    int32_t id;
    bool lstrip, rstrip, normalized, special;
} bb_added;

/* A byte trie of added token contents (leftmost-longest matching). */
typedef struct bb_trie_node {
    int32_t child, sibling;
    int32_t token; /* index into added[], -1 */
    uint8_t byte;
} bb_trie_node;

typedef struct bb_trie {
    bb_trie_node *nodes;
    size_t n, cap;
    int32_t root[256]; /* node of each first byte, -1 */
} bb_trie;

/* Open-addressing map from a string (in the arena) to an int32. */
typedef struct bb_strmap {
    uint32_t *off, *len;
    int32_t *val;
    size_t n, cap;
    int32_t *slots; /* entry index, -1 empty */
    size_t mask;
} bb_strmap;

/* Merge ranks: (left id, right id) → (rank, merged id). */
typedef struct bb_mergemap {
    uint64_t *keys; /* UINT64_MAX empty */
    int32_t *rank, *merged;
    size_t mask, n;
} bb_mergemap;

#define BB_ID_SPECIAL 1u
#define BB_ID_ADDED 2u
#define BB_NO_TOKEN UINT32_MAX

struct tok_bytebpe {
    char *arena;
    size_t arena_len, arena_cap;
    bb_strmap vocab;        /* the BPE model's vocabulary */
    bb_strmap added_map;    /* added token content → index into added[] */
    bb_added *added;
    size_t n_added;
    bb_trie trie_raw, trie_norm; /* not normalized / normalized added tokens */
    bb_mergemap merges;
    int32_t n_ids;          /* 1 + the largest id */
    uint32_t *id_off, *id_len; /* token string of each id (id_len BB_NO_TOKEN: none) */
    uint8_t *id_flags;
    int32_t byte_id[256];   /* vocabulary id of each byte's symbol, -1 */
    int16_t cp_byte[324];   /* byte of each byte-level character, -1 */
    int32_t bos_id, eos_id, pad_id;
};

/* ------------------------------------------------------------------ small helpers */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* splitmix64 finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Copies bytes into the arena; returns their offset, or -1 when out of memory. */
static int64_t arena_put(tok_bytebpe *t, const char *s, size_t n)
{
    if (t->arena_len + n + 1 > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 65536;
        while (cap < t->arena_len + n + 1)
            cap *= 2;
        if (cap > UINT32_MAX)
            return -1;
        char *a = realloc(t->arena, cap);
        if (!a)
            return -1;
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = '\0';
    int64_t off = (int64_t)t->arena_len;
    t->arena_len += n + 1;
    return off;
}

static void strmap_free(bb_strmap *m)
{
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Slot of s in the map: its entry's slot, or the empty slot where it goes. */
static size_t strmap_slot(const bb_strmap *m, const char *arena, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    for (;;) {
        int32_t e = m->slots[i];
        if (e < 0 || (m->len[e] == n && memcmp(arena + m->off[e], s, n) == 0))
            return i;
        i = (i + 1) & m->mask;
    }
}

static int32_t strmap_get(const bb_strmap *m, const char *arena, const char *s, size_t n)
{
    if (!m->slots)
        return -1;
    int32_t e = m->slots[strmap_slot(m, arena, s, n)];
    return e < 0 ? -1 : m->val[e];
}

/* Makes room for `cap` entries (fixed once set: maps are filled once). */
static int strmap_init(bb_strmap *m, size_t cap)
{
    size_t slots = 16;
    while (slots < 2 * cap + 2)
        slots *= 2;
    m->off = malloc((cap ? cap : 1) * sizeof *m->off);
    m->len = malloc((cap ? cap : 1) * sizeof *m->len);
    m->val = malloc((cap ? cap : 1) * sizeof *m->val);
    m->slots = malloc(slots * sizeof *m->slots);
    if (!m->off || !m->len || !m->val || !m->slots)
        return -1;
    memset(m->slots, 0xff, slots * sizeof *m->slots);
    m->mask = slots - 1;
    m->cap = cap;
    m->n = 0;
    return 0;
}

/* Adds s → val; returns 1 when s was already there (nothing changes), 0
 * when added, -1 out of memory. */
static int strmap_add(tok_bytebpe *t, bb_strmap *m, const char *s, size_t n, int32_t val)
{
    size_t slot = strmap_slot(m, t->arena, s, n);
    if (m->slots[slot] >= 0)
        return 1;
    if (m->n == m->cap)
        return -1;
    int64_t off = arena_put(t, s, n);
    if (off < 0)
        return -1;
    m->off[m->n] = (uint32_t)off;
    m->len[m->n] = (uint32_t)n;
    m->val[m->n] = val;
    m->slots[slot] = (int32_t)m->n++;
    return 0;
}

static void trie_free(bb_trie *tr)
{
    free(tr->nodes);
    tr->nodes = NULL;
    tr->n = tr->cap = 0;
}

static int32_t trie_new_node(bb_trie *tr, uint8_t byte)
{
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? 2 * tr->cap : 256;
        bb_trie_node *nn = realloc(tr->nodes, cap * sizeof *nn);
        if (!nn)
            return -1;
        tr->nodes = nn;
        tr->cap = cap;
    }
    tr->nodes[tr->n] = (bb_trie_node){.child = -1, .sibling = -1, .token = -1, .byte = byte};
    return (int32_t)tr->n++;
}

static int trie_add(bb_trie *tr, const unsigned char *s, size_t n, int32_t token)
{
    int32_t parent = -1, node = -1;
    for (size_t i = 0; i < n; i++) {
        node = parent < 0 ? tr->root[s[i]] : tr->nodes[parent].child;
        while (node >= 0 && tr->nodes[node].byte != s[i])
            node = tr->nodes[node].sibling;
        if (node < 0) {
            if ((node = trie_new_node(tr, s[i])) < 0)
                return -1;
            if (parent < 0) {
                tr->root[s[i]] = node;
            } else {
                tr->nodes[node].sibling = tr->nodes[parent].child;
                tr->nodes[parent].child = node;
            }
        }
        parent = node;
    }
    tr->nodes[node].token = token;
    return 0;
}

/* The leftmost-longest match at or after pos: 1 with its span and token. */
static int trie_find(const bb_trie *tr, const unsigned char *s, size_t n, size_t pos,
                     size_t *mstart, size_t *mend, int32_t *token)
{
    for (size_t p = pos; p < n; p++) {
        int32_t node = tr->root[s[p]];
        int32_t best = -1;
        size_t best_end = 0;
        for (size_t i = p; node >= 0;) {
            if (tr->nodes[node].token >= 0) {
                best = tr->nodes[node].token;
                best_end = i + 1;
            }
            if (++i == n)
                break;
            node = tr->nodes[node].child;
            while (node >= 0 && tr->nodes[node].byte != s[i])
                node = tr->nodes[node].sibling;
        }
        if (best >= 0) {
            *mstart = p;
            *mend = best_end;
            *token = best;
            return 1;
        }
    }
    return 0;
}

static void mergemap_free(bb_mergemap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

static int mergemap_init(bb_mergemap *m, size_t cap)
{
    size_t slots = 16;
    while (slots < 2 * cap + 2)
        slots *= 2;
    m->keys = malloc(slots * sizeof *m->keys);
    m->rank = malloc(slots * sizeof *m->rank);
    m->merged = malloc(slots * sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged)
        return -1;
    memset(m->keys, 0xff, slots * sizeof *m->keys);
    m->mask = slots - 1;
    return 0;
}

/* A pair listed twice keeps its last rank, as the reference's map does. */
static void mergemap_put(bb_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)hash_u64(key) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key)
        i = (i + 1) & m->mask;
    m->n += m->keys[i] == UINT64_MAX;
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

/* Rank of the pair (a, b), -1 when it does not merge; *merged its id. */
static int32_t mergemap_get(const bb_mergemap *m, int32_t a, int32_t b, int32_t *merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)hash_u64(key) & m->mask;
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) {
            *merged = m->merged[i];
            return m->rank[i];
        }
        i = (i + 1) & m->mask;
    }
    return -1;
}

/* ------------------------------------------------------------------ Unicode */

enum { CLS_OTHER, CLS_LETTER, CLS_NUMBER, CLS_SPACE };

/* The class of a code point in GPT-2's regex: \p{L}, \p{N}, \s or neither. */
static int char_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return CLS_LETTER;
        if (cp >= '0' && cp <= '9')
            return CLS_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) /* not 0x1C-0x1F: not White_Space */
            return CLS_SPACE;
        return CLS_OTHER;
    }
    if (tok_unicode_in_ranges(tok_bytebpe_letter_ranges, tok_bytebpe_letter_count, cp))
        return CLS_LETTER;
    if (tok_unicode_in_ranges(tok_bytebpe_number_ranges, tok_bytebpe_number_count, cp))
        return CLS_NUMBER;
    if (tok_unicode_in_ranges(tok_bytebpe_space_ranges, tok_bytebpe_space_count, cp))
        return CLS_SPACE;
    return CLS_OTHER;
}

/* Class of the (valid) character at s[i]; *len its byte length. */
static int class_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    uint32_t cp = 0;
    *len = tok_utf8_char(s, n, i, &cp);
    return char_class(cp);
}

/* ------------------------------------------------------------------ encoding */

typedef struct bb_enc {
    const tok_bytebpe *t;
    int32_t *ids;
    size_t max, n;
    prism_error *err;
    /* BPE workspace, for words of up to cap bytes */
    int32_t *sym, *prev, *next;
    uint64_t *heap;
    size_t cap, heap_n;
} bb_enc;

static int emit(bb_enc *e, int32_t id)
{
    if (e->n == e->max)
        return prism_errorf(e->err, "the text has more than %zu tokens", e->max);
    e->ids[e->n++] = id;
    return 0;
}

static void heap_push(bb_enc *e, uint64_t v)
{
    size_t i = e->heap_n++;
    while (i > 0 && e->heap[(i - 1) / 2] > v) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = v;
}

static uint64_t heap_pop(bb_enc *e)
{
    uint64_t top = e->heap[0], v = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && e->heap[c + 1] < e->heap[c])
            c++;
        if (e->heap[c] >= v)
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = v;
    return top;
}

/* Queues the pair starting at symbol i, if it merges. Entries order by
 * (rank, position): the lowest rank first, the leftmost of equal ones. */
static void push_pair(bb_enc *e, int32_t i)
{
    int32_t j = e->next[i], merged;
    if (j < 0)
        return;
    int32_t rank = mergemap_get(&e->t->merges, e->sym[i], e->sym[j], &merged);
    if (rank >= 0)
        heap_push(e, ((uint64_t)(uint32_t)rank << 32) | (uint32_t)i);
}

static int grow_workspace(bb_enc *e, size_t n)
{
    if (n <= e->cap)
        return 0;
    size_t cap = e->cap ? e->cap : 64;
    while (cap < n)
        cap *= 2;
    free(e->sym);
    free(e->prev);
    free(e->next);
    free(e->heap);
    e->sym = malloc(cap * sizeof *e->sym);
    e->prev = malloc(cap * sizeof *e->prev);
    e->next = malloc(cap * sizeof *e->next);
    e->heap = malloc(3 * cap * sizeof *e->heap); /* n - 1 pairs + 2 per merge */
    e->cap = cap;
    if (!e->sym || !e->prev || !e->next || !e->heap) {
        e->cap = 0;
        return prism_error_nomem(e->err, "out of memory for a word of %zu bytes", n);
    }
    return 0;
}

/* One BPE word: the bytes of one regex match. */
static int bpe_word(bb_enc *e, const unsigned char *s, size_t n)
{
    const tok_bytebpe *t = e->t;
    if (grow_workspace(e, n) != 0)
        return -1;
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id >= 0) /* a byte without a symbol in the vocabulary is dropped */
            e->sym[m++] = id;
    }
    for (int32_t i = 0; i < m; i++) {
        e->prev[i] = i - 1;
        e->next[i] = i + 1 < m ? i + 1 : -1;
    }
    e->heap_n = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        push_pair(e, i);
    while (e->heap_n) {
        uint64_t top = heap_pop(e);
        int32_t i = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32), merged = -1;
        int32_t j = e->next[i];
        if (e->sym[i] < 0 || j < 0 ||
            mergemap_get(&t->merges, e->sym[i], e->sym[j], &merged) != rank)
            continue; /* stale: one of the two has merged since */
        e->sym[i] = merged;
        e->sym[j] = -1;
        e->next[i] = e->next[j];
        if (e->next[j] >= 0)
            e->prev[e->next[j]] = i;
        if (e->prev[i] >= 0)
            push_pair(e, e->prev[i]);
        push_pair(e, i);
    }
    for (int32_t i = m ? 0 : -1; i >= 0; i = e->next[i])
        if (emit(e, e->sym[i]) != 0)
            return -1;
    return 0;
}

static bool is_contraction(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    static const char *const tails[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (size_t k = 0; k < sizeof tails / sizeof tails[0]; k++) {
        size_t l = strlen(tails[k]);
        if (i + 1 + l <= n && memcmp(s + i + 1, tails[k], l) == 0) {
            *len = 1 + l;
            return true;
        }
    }
    return false;
}

/* End of the run of characters of class cls starting at i. */
static size_t class_run(const unsigned char *s, size_t n, size_t i, int cls, size_t *last)
{
    size_t l;
    *last = i;
    while (i < n && class_at(s, n, i, &l) == cls) {
        *last = i;
        i += l;
    }
    return i;
}

/* GPT-2's regex over s[0..n), each match a BPE word:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static int pretokenize(bb_enc *e, const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, l, last;
    while (i < n) {
        size_t end;
        int cls = class_at(s, n, i, &l);
        if (s[i] == '\'' && is_contraction(s, n, i, &end)) {
            end += i;
        } else if (cls != CLS_SPACE) { /* \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+ */
            end = class_run(s, n, i, cls, &last);
        } else {
            int next_cls = s[i] == ' ' && i + 1 < n ? class_at(s, n, i + 1, &l) : CLS_SPACE;
            if (next_cls != CLS_SPACE) { /* " ?" then a run */
                end = class_run(s, n, i + 1, next_cls, &last);
            } else { /* \s+(?!\S): the run, less its last character unless at the end */
                end = class_run(s, n, i, CLS_SPACE, &last);
                if (end < n && last > i)
                    end = last;
            }
        }
        if (bpe_word(e, s + i, end - i) != 0)
            return -1;
        i = end;
    }
    return 0;
}

/* Start of the White_Space run that ends s[0..end). */
static size_t space_run_start(const unsigned char *s, size_t end)
{
    while (end > 0) {
        size_t b = end - 1;
        while (b > 0 && (s[b] & 0xC0) == 0x80)
            b--;
        size_t l;
        if (class_at(s, end, b, &l) != CLS_SPACE)
            break;
        end = b;
    }
    return end;
}

/* Length of the White_Space run at the start of s[0..n). */
static size_t space_run_len(const unsigned char *s, size_t n)
{
    size_t last;
    return class_run(s, n, 0, CLS_SPACE, &last);
}

typedef int (*gap_fn)(bb_enc *e, const char *s, size_t n);

/* Splits s[0..n) around the added tokens of one trie: each match is its
 * token's id (with the spaces lstrip / rstrip take), each stretch between
 * matches goes to gap. The search goes on after a match's own end; a span
 * that an rstrip took is not searched again for a start, as in the reference. */
static int split_added(bb_enc *e, const bb_trie *tr, const char *text, size_t n, gap_fn gap)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t start_offset = 0, pos = 0, mstart, mend;
    int32_t k;
    while (pos < n && trie_find(tr, s, n, pos, &mstart, &mend, &k)) {
        const bb_added *a = &e->t->added[k];
        size_t start = mstart, stop = mend;
        pos = mend;
        if (a->lstrip) {
            size_t ns = space_run_start(s, start);
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip)
            stop += space_run_len(s + stop, n - stop);
        if (start_offset < start && gap(e, text + start_offset, start - start_offset) != 0)
            return -1;
        if (emit(e, a->id) != 0)
            return -1;
        start_offset = stop;
    }
    if (start_offset != n && gap(e, text + start_offset, n - start_offset) != 0)
        return -1;
    return 0;
}

static int split_normalized(bb_enc *e, const char *s, size_t n)
{
    return split_added(e, &e->t->trie_norm, s, n, pretokenize);
}

int tok_bytebpe_encode(const tok_bytebpe *t, const char *text, size_t len, int32_t *ids,
                       size_t max_ids, size_t *n_ids, prism_error *err)
{
    *n_ids = 0;
    if (len > TOK_BYTEBPE_MAX_TEXT)
        return prism_errorf(err, "the text is %zu bytes, more than the tokenizer's limit of %zu",
                            len, TOK_BYTEBPE_MAX_TEXT);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = tok_utf8_char(s, len, i, &cp);
        if (l == 0)
            return prism_errorf(err, "the text is not valid UTF-8 (byte %zu)", i);
        i += l;
    }
    bb_enc e = {.t = t, .ids = ids, .max = max_ids, .err = err};
    int rc = split_added(&e, &t->trie_raw, text, len, split_normalized);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    if (rc == 0)
        *n_ids = e.n;
    return rc;
}

/* ------------------------------------------------------------------ decoding */

typedef struct bb_buf {
    char *p;
    size_t n, cap;
} bb_buf;

static int buf_put(bb_buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* Appends bytes as UTF-8, each maximal invalid sequence (the longest
 * prefix of a valid sequence, or one byte) replaced by U+FFFD: Rust's
 * String::from_utf8_lossy, and Python's errors="replace". */
static int put_lossy(bb_buf *out, const unsigned char *s, size_t n)
{
    static const char fffd[] = "\xef\xbf\xbd";
    size_t i = 0, run = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = tok_utf8_char(s, n, i, &cp);
        if (l) {
            i += l;
            continue;
        }
        if (buf_put(out, s + run, i - run) != 0 || buf_put(out, fffd, 3) != 0)
            return -1;
        /* how many bytes the invalid sequence spans: the lead byte and the
         * continuation bytes that were still allowed */
        unsigned c = s[i];
        size_t want = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        size_t k = 1;
        while (k < want && i + k < n) {
            unsigned b = s[i + k];
            unsigned lo = 0x80, hi = 0xBF;
            if (k == 1) {
                lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
                hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
            }
            if (b < lo || b > hi)
                break;
            k++;
        }
        i += k;
        run = i;
    }
    return buf_put(out, s + run, n - run);
}

int tok_bytebpe_decode(const tok_bytebpe *t, const int32_t *ids, size_t n, bool skip_special,
                       char **out, size_t *out_len, prism_error *err)
{
    *out = NULL;
    bb_buf bytes = {0}, text = {0};
    for (size_t k = 0; k < n; k++) {
        int32_t id = ids[k];
        if (id < 0) {
            free(bytes.p);
            return prism_errorf(err, "decode: id %d (position %zu) is negative", id, k);
        }
        if (id >= t->n_ids || t->id_len[id] == BB_NO_TOKEN)
            continue; /* the reference skips ids it has no token for */
        if (skip_special && (t->id_flags[id] & BB_ID_SPECIAL))
            continue;
        const unsigned char *s = (const unsigned char *)t->arena + t->id_off[id];
        size_t len = t->id_len[id], m = 0;
        uint8_t mapped[TOK_BYTEBPE_MAX_ADDED_LEN > TOK_BYTEBPE_MAX_TOKEN_LEN
                           ? TOK_BYTEBPE_MAX_ADDED_LEN : TOK_BYTEBPE_MAX_TOKEN_LEN];
        bool all = true;
        for (size_t i = 0; i < len && all;) {
            uint32_t cp = 0;
            size_t l = tok_utf8_char(s, len, i, &cp);
            all = l && cp < 324 && t->cp_byte[cp] >= 0;
            if (all)
                mapped[m++] = (uint8_t)t->cp_byte[cp];
            i += l ? l : 1;
        }
        /* a token with a character outside the byte-level alphabet is its own UTF-8 */
        if (buf_put(&bytes, all ? mapped : s, all ? m : len) != 0) {
            free(bytes.p);
            return prism_error_nomem(err, "decode: out of memory");
        }
    }
    int rc = put_lossy(&text, (const unsigned char *)(bytes.p ? bytes.p : ""), bytes.n);
    free(bytes.p);
    if (rc == 0 && !text.p)
        rc = buf_put(&text, "", 0);
    if (rc != 0) {
        free(text.p);
        return prism_error_nomem(err, "decode: out of memory");
    }
    *out = text.p;
    if (out_len)
        *out_len = text.n;
    return 0;
}

/* ------------------------------------------------------------------ lookups */

int32_t tok_bytebpe_token_id(const tok_bytebpe *t, const char *s, size_t len)
{
    int32_t k = strmap_get(&t->added_map, t->arena, s, len);
    if (k >= 0)
        return t->added[k].id;
    return strmap_get(&t->vocab, t->arena, s, len);
}

const char *tok_bytebpe_id_token(const tok_bytebpe *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_ids || t->id_len[id] == BB_NO_TOKEN)
        return NULL;
    *len = t->id_len[id];
    return t->arena + t->id_off[id];
}

int32_t tok_bytebpe_vocab_size(const tok_bytebpe *t) { return t->n_ids; }
int32_t tok_bytebpe_bos_id(const tok_bytebpe *t) { return t->bos_id; }
int32_t tok_bytebpe_eos_id(const tok_bytebpe *t) { return t->eos_id; }
int32_t tok_bytebpe_pad_id(const tok_bytebpe *t) { return t->pad_id; }

bool tok_bytebpe_is_special(const tok_bytebpe *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && (t->id_flags[id] & BB_ID_SPECIAL);
}

void tok_bytebpe_free(tok_bytebpe *t)
{
    if (!t)
        return;
    strmap_free(&t->vocab);
    strmap_free(&t->added_map);
    trie_free(&t->trie_raw);
    trie_free(&t->trie_norm);
    mergemap_free(&t->merges);
    free(t->added);
    free(t->id_off);
    free(t->id_len);
    free(t->id_flags);
    free(t->arena);
    free(t);
}

/* ------------------------------------------------------------------ loading */

/* What a load reads, for messages. */
typedef struct bb_load {
    tok_bytebpe *t;
    char dir[3072];
    char file[4096]; /* the file being read */
    char vocab_file[4096]; /* the file the vocabulary came from */
    prism_error *err;
} bb_load;

static int bad(bb_load *L, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<file>: <key>: <message>" */
static int bad(bb_load *L, const char *key, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return prism_errorf(L->err, "%s: %s: %s", L->file, key, msg);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static json_value *parse_file(bb_load *L, const char *name)
{
    snprintf(L->file, sizeof L->file, "%s/%s", L->dir, name);
    char msg[400];
    json_value *v = json_parse_file(L->file, msg, sizeof msg);
    if (!v)
        prism_errorf(L->err, "%s", msg);
    else if (v->type != JSON_OBJECT) {
        prism_errorf(L->err, "%s: not a JSON object", L->file);
        json_free(v);
        v = NULL;
    }
    return v;
}

/* An optional boolean member (absent or null: def). */
static int get_bool(bb_load *L, const json_value *o, const char *key, bool def, bool *out)
{
    const json_value *v = json_get(o, key);
    *out = def;
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_BOOL)
        return bad(L, key, "not a boolean");
    *out = v->boolean;
    return 0;
}

/* A member that must be absent, null, or the empty string. */
static int want_empty(bb_load *L, const json_value *o, const char *key, const char *what)
{
    const json_value *v = json_get(o, key);
    if (v && v->type != JSON_NULL && !(v->type == JSON_STRING && v->length == 0))
        return bad(L, key, "%s is not supported (a BART tokenizer has none)", what);
    return 0;
}

/* A "type" member equal to want. */
static int want_type(bb_load *L, const json_value *o, const char *key, const char *want)
{
    const json_value *v = json_get(o, "type");
    if (!v || v->type != JSON_STRING)
        return bad(L, key, "missing \"type\" (expected \"%s\")", want);
    if (strcmp(v->string, want) != 0)
        return bad(L, key, "type '%s' is not supported (a byte-level BPE tokenizer has \"%s\")",
                   v->string, want);
    return 0;
}

static int add_vocab_entry(bb_load *L, const char *tok, size_t len, const json_value *idv,
                           int32_t *max_id)
{
    char key[64];
    snprintf(key, sizeof key, "model.vocab[\"%.20s\"]", tok);
    if (!idv->is_integer || idv->integer < 0 || idv->integer >= TOK_BYTEBPE_MAX_VOCAB)
        return bad(L, key, "the id is not an integer in [0, %d)", TOK_BYTEBPE_MAX_VOCAB);
    if (len == 0 || len > TOK_BYTEBPE_MAX_TOKEN_LEN)
        return bad(L, key, "a token of %zu bytes (1 to %d allowed)", len,
                   TOK_BYTEBPE_MAX_TOKEN_LEN);
    int rc = strmap_add(L->t, &L->t->vocab, tok, len, (int32_t)idv->integer);
    if (rc < 0)
        return prism_error_nomem(L->err, "%s: out of memory", L->file);
    if (rc > 0)
        return bad(L, key, "listed twice");
    if ((int32_t)idv->integer > *max_id)
        *max_id = (int32_t)idv->integer;
    return 0;
}

static int load_vocab(bb_load *L, const json_value *vocab, int32_t *max_id)
{
    if (!vocab || vocab->type != JSON_OBJECT)
        return bad(L, "model.vocab", "missing or not an object");
    if (vocab->count == 0 || vocab->count > TOK_BYTEBPE_MAX_VOCAB)
        return bad(L, "model.vocab", "%zu entries (1 to %d allowed)", vocab->count,
                   TOK_BYTEBPE_MAX_VOCAB);
    snprintf(L->vocab_file, sizeof L->vocab_file, "%s", L->file);
    if (strmap_init(&L->t->vocab, vocab->count) != 0)
        return prism_error_nomem(L->err, "%s: out of memory", L->file);
    for (size_t i = 0; i < vocab->count; i++)
        if (add_vocab_entry(L, vocab->keys[i], strlen(vocab->keys[i]), &vocab->items[i],
                            max_id) != 0)
            return -1;
    return 0;
}

/* One merge: both parts and their concatenation in the vocabulary. */
static int add_merge(bb_load *L, const char *key, const char *a, size_t na, const char *b,
                     size_t nb, int32_t rank)
{
    tok_bytebpe *t = L->t;
    char both[2 * TOK_BYTEBPE_MAX_TOKEN_LEN];
    int32_t ia = strmap_get(&t->vocab, t->arena, a, na);
    int32_t ib = strmap_get(&t->vocab, t->arena, b, nb);
    if (ia < 0 || ib < 0)
        return bad(L, key, "'%.*s' is not in the vocabulary", (int)((ia < 0 ? na : nb) & 0xff),
                   ia < 0 ? a : b);
    if (na + nb > sizeof both)
        return bad(L, key, "the merged token is too long");
    memcpy(both, a, na);
    memcpy(both + na, b, nb);
    int32_t im = strmap_get(&t->vocab, t->arena, both, na + nb);
    if (im < 0)
        return bad(L, key, "the merged token '%.*s' is not in the vocabulary",
                   (int)((na + nb) & 0xff), both);
    mergemap_put(&t->merges, ia, ib, rank, im);
    return 0;
}

static int load_merges_json(bb_load *L, const json_value *merges)
{
    if (!merges || merges->type != JSON_ARRAY)
        return bad(L, "model.merges", "missing or not an array");
    if (merges->count > TOK_BYTEBPE_MAX_VOCAB)
        return bad(L, "model.merges", "%zu merges (at most %d)", merges->count,
                   TOK_BYTEBPE_MAX_VOCAB);
    if (mergemap_init(&L->t->merges, merges->count) != 0)
        return prism_error_nomem(L->err, "%s: out of memory", L->file);
    for (size_t i = 0; i < merges->count; i++) {
        const json_value *m = &merges->items[i];
        char key[48];
        snprintf(key, sizeof key, "model.merges[%zu]", i);
        if (m->type == JSON_STRING) { /* "a b" */
            const char *sp = memchr(m->string, ' ', m->length);
            if (!sp || memchr(sp + 1, ' ', m->length - (size_t)(sp + 1 - m->string)))
                return bad(L, key, "not two tokens separated by one space");
            if (add_merge(L, key, m->string, (size_t)(sp - m->string), sp + 1,
                          m->length - (size_t)(sp + 1 - m->string), (int32_t)i) != 0)
                return -1;
        } else if (m->type == JSON_ARRAY && m->count == 2 && m->items[0].type == JSON_STRING &&
                   m->items[1].type == JSON_STRING) {
            if (add_merge(L, key, m->items[0].string, m->items[0].length, m->items[1].string,
                          m->items[1].length, (int32_t)i) != 0)
                return -1;
        } else {
            return bad(L, key, "neither \"a b\" nor [\"a\", \"b\"]");
        }
    }
    return 0;
}

/* merges.txt: an optional "#version" line, then "a b" per line. */
static int load_merges_txt(bb_load *L)
{
    snprintf(L->file, sizeof L->file, "%s/merges.txt", L->dir);
    FILE *f = fopen(L->file, "rb");
    if (!f)
        return prism_errorf(L->err, "%s: cannot open: %s", L->file, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            if (cap >= (64u << 20)) {
                free(buf);
                fclose(f);
                return prism_errorf(L->err, "%s: larger than 64 MiB", L->file);
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf)
        return prism_error_nomem(L->err, "%s: out of memory", L->file);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    int rc = mergemap_init(&L->t->merges, lines + 1) == 0 ? 0 : -1;
    if (rc != 0)
        prism_error_nomem(L->err, "%s: out of memory", L->file);
    int32_t rank = 0;
    for (size_t i = 0, line = 1; rc == 0 && i < n; line++) {
        char *eol = memchr(buf + i, '\n', n - i);
        size_t end = eol ? (size_t)(eol - buf) : n, len = end - i;
        if (len && buf[i + len - 1] == '\r')
            len--;
        char key[48];
        snprintf(key, sizeof key, "line %zu", line);
        if (len == 0 || (line == 1 && len >= 8 && memcmp(buf + i, "#version", 8) == 0)) {
            /* blank line or header */
        } else if (rank >= TOK_BYTEBPE_MAX_VOCAB) {
            rc = bad(L, key, "more than %d merges", TOK_BYTEBPE_MAX_VOCAB);
        } else {
            char *sp = memchr(buf + i, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - (buf + i))))
                rc = bad(L, key, "not two tokens separated by one space");
            else
                rc = add_merge(L, key, buf + i, (size_t)(sp - (buf + i)), sp + 1,
                               len - (size_t)(sp + 1 - (buf + i)), rank++);
        }
        i = end + 1;
    }
    free(buf);
    return rc;
}

/* One added token from an object with content and the flags. */
static int add_added(bb_load *L, const char *key, const json_value *o, int64_t id)
{
    tok_bytebpe *t = L->t;
    const json_value *c = json_get(o, "content");
    if (o->type != JSON_OBJECT || !c || c->type != JSON_STRING)
        return bad(L, key, "not an object with a \"content\" string");
    if (id < 0 || id >= TOK_BYTEBPE_MAX_VOCAB)
        return bad(L, key, "the id is not an integer in [0, %d)", TOK_BYTEBPE_MAX_VOCAB);
    if (c->length == 0)
        return 0; /* the reference ignores empty added tokens */
    if (c->length > TOK_BYTEBPE_MAX_ADDED_LEN)
        return bad(L, key, "a token of %zu bytes (at most %d)", c->length,
                   TOK_BYTEBPE_MAX_ADDED_LEN);
    uint32_t cp;
    for (size_t i = 0, l; i < c->length; i += l)
        if ((l = tok_utf8_char((const unsigned char *)c->string, c->length, i, &cp)) == 0)
            return bad(L, key, "the content is not valid UTF-8");
    bool single_word;
    bb_added a = {.id = (int32_t)id};
    if (get_bool(L, o, "single_word", false, &single_word) != 0 ||
        get_bool(L, o, "lstrip", false, &a.lstrip) != 0 ||
        get_bool(L, o, "rstrip", false, &a.rstrip) != 0 ||
        get_bool(L, o, "normalized", false, &a.normalized) != 0 ||
        get_bool(L, o, "special", false, &a.special) != 0)
        return prism_error_prefix(L->err, "%s", key);
    if (single_word)
        return bad(L, key, "single_word added tokens are not supported");
    int rc = strmap_add(t, &t->added_map, c->string, c->length, (int32_t)t->n_added);
    if (rc < 0)
        return prism_error_nomem(L->err, "%s: out of memory", L->file);
    if (rc > 0)
        return bad(L, key, "'%s' is listed twice", c->string);
    a.off = t->added_map.off[t->added_map.n - 1];
    a.len = (uint32_t)c->length;
    t->added[t->n_added++] = a;
    return 0;
}

static int init_added(bb_load *L, size_t count, const char *key)
{
    if (count > TOK_BYTEBPE_MAX_ADDED)
        return bad(L, key, "%zu added tokens (at most %d)", count, TOK_BYTEBPE_MAX_ADDED);
    L->t->added = malloc((count ? count : 1) * sizeof *L->t->added);
    if (!L->t->added || strmap_init(&L->t->added_map, count) != 0)
        return prism_error_nomem(L->err, "%s: out of memory", L->file);
    return 0;
}

/* tokenizer.json: the model, the pipeline around it, the added tokens. */
static int load_tokenizer_json(bb_load *L, int32_t *max_id)
{
    json_value *root = parse_file(L, "tokenizer.json");
    if (!root)
        return -1;
    int rc = -1;
    const json_value *model = json_get(root, "model"), *v;
    const json_value *pre = json_get(root, "pre_tokenizer"), *dec = json_get(root, "decoder");
    const json_value *added = json_get(root, "added_tokens");
    bool flag;
    if (!model || model->type != JSON_OBJECT) {
        bad(L, "model", "missing or not an object");
        goto out;
    }
    if (want_type(L, model, "model.type", "BPE") != 0)
        goto out;
    v = json_get(model, "dropout");
    if (v && v->type != JSON_NULL && !(v->type == JSON_NUMBER && v->number == 0.0)) {
        bad(L, "model.dropout", "BPE dropout is not supported");
        goto out;
    }
    if (want_empty(L, model, "continuing_subword_prefix", "model.continuing_subword_prefix") ||
        want_empty(L, model, "end_of_word_suffix", "model.end_of_word_suffix"))
        goto out;
    if (get_bool(L, model, "byte_fallback", false, &flag) != 0 || flag) {
        if (flag)
            bad(L, "model.byte_fallback", "true is not supported (byte-level BPE has no fallback)");
        goto out;
    }
    if (get_bool(L, model, "ignore_merges", false, &flag) != 0 || flag) {
        if (flag)
            bad(L, "model.ignore_merges", "true is not supported");
        goto out;
    }
    v = json_get(root, "normalizer");
    if (v && v->type != JSON_NULL) {
        bad(L, "normalizer", "a normalizer is not supported (BART has none)");
        goto out;
    }
    if (!pre || pre->type != JSON_OBJECT) {
        bad(L, "pre_tokenizer", "missing (a byte-level BPE tokenizer has ByteLevel)");
        goto out;
    }
    if (want_type(L, pre, "pre_tokenizer.type", "ByteLevel") != 0)
        goto out;
    if (get_bool(L, pre, "add_prefix_space", false, &flag) != 0 || flag) {
        if (flag)
            bad(L, "pre_tokenizer.add_prefix_space", "true is not supported (BART: false)");
        goto out;
    }
    if (get_bool(L, pre, "use_regex", true, &flag) != 0 || !flag) {
        if (!flag)
            bad(L, "pre_tokenizer.use_regex", "false is not supported (BART: true)");
        goto out;
    }
    if (!dec || dec->type != JSON_OBJECT) {
        bad(L, "decoder", "missing (a byte-level BPE tokenizer has ByteLevel)");
        goto out;
    }
    if (want_type(L, dec, "decoder.type", "ByteLevel") != 0)
        goto out;
    if (load_vocab(L, json_get(model, "vocab"), max_id) != 0 ||
        load_merges_json(L, json_get(model, "merges")) != 0)
        goto out;
    if (added && added->type != JSON_ARRAY && added->type != JSON_NULL) {
        bad(L, "added_tokens", "not an array");
        goto out;
    }
    size_t n_added = added && added->type == JSON_ARRAY ? added->count : 0;
    if (init_added(L, n_added, "added_tokens") != 0)
        goto out;
    for (size_t i = 0; i < n_added; i++) {
        char key[48];
        snprintf(key, sizeof key, "added_tokens[%zu]", i);
        const json_value *id = json_get(&added->items[i], "id");
        if (!id || !id->is_integer) {
            bad(L, key, "no integer \"id\"");
            goto out;
        }
        if (add_added(L, key, &added->items[i], id->integer) != 0)
            goto out;
    }
    rc = 0;
out:
    json_free(root);
    return rc;
}

/* vocab.json + merges.txt, added tokens from tokenizer_config.json. */
static int load_vocab_merges(bb_load *L, const json_value *cfg, const char *cfg_path,
                             int32_t *max_id)
{
    json_value *vocab = parse_file(L, "vocab.json");
    if (!vocab)
        return -1;
    int rc = load_vocab(L, vocab, max_id);
    json_free(vocab);
    if (rc != 0 || load_merges_txt(L) != 0)
        return -1;
    snprintf(L->file, sizeof L->file, "%s", cfg_path);
    const json_value *dec = cfg ? json_get(cfg, "added_tokens_decoder") : NULL;
    if (!dec || dec->type != JSON_OBJECT)
        return bad(L, "added_tokens_decoder", "missing (there is no tokenizer.json to take the "
                                              "added tokens from)");
    if (init_added(L, dec->count, "added_tokens_decoder") != 0)
        return -1;
    for (size_t i = 0; i < dec->count; i++) {
        char key[64], *end;
        snprintf(key, sizeof key, "added_tokens_decoder[\"%.20s\"]", dec->keys[i]);
        errno = 0;
        long long id = strtoll(dec->keys[i], &end, 10);
        if (end == dec->keys[i] || *end || errno)
            return bad(L, key, "the key is not an id");
        if (add_added(L, key, &dec->items[i], id) != 0)
            return -1;
    }
    return 0;
}

/* tokenizer_config.json's added_tokens_decoder, which transformers adds the
 * tokens from, must be tokenizer.json's added tokens. */
static int check_config_added(bb_load *L, const json_value *dec)
{
    tok_bytebpe *t = L->t;
    if (!dec || dec->type == JSON_NULL)
        return 0;
    if (dec->type != JSON_OBJECT)
        return bad(L, "added_tokens_decoder", "not an object");
    if (dec->count != t->n_added)
        return bad(L, "added_tokens_decoder", "%zu tokens, tokenizer.json has %zu", dec->count,
                   t->n_added);
    for (size_t i = 0; i < dec->count; i++) {
        char key[64];
        snprintf(key, sizeof key, "added_tokens_decoder[\"%.20s\"]", dec->keys[i]);
        const json_value *o = &dec->items[i], *c = json_get(o, "content");
        if (o->type != JSON_OBJECT || !c || c->type != JSON_STRING)
            return bad(L, key, "not an object with a \"content\" string");
        int32_t k = strmap_get(&t->added_map, t->arena, c->string, c->length);
        const bb_added *a = k >= 0 ? &t->added[k] : NULL;
        bool lstrip, rstrip, normalized, special, single_word;
        if (get_bool(L, o, "lstrip", false, &lstrip) || get_bool(L, o, "rstrip", false, &rstrip) ||
            get_bool(L, o, "normalized", false, &normalized) ||
            get_bool(L, o, "special", false, &special) ||
            get_bool(L, o, "single_word", false, &single_word))
            return prism_error_prefix(L->err, "%s", key);
        char id_str[24];
        if (a)
            snprintf(id_str, sizeof id_str, "%d", a->id);
        if (!a || strcmp(id_str, dec->keys[i]) != 0 || a->lstrip != lstrip ||
            a->rstrip != rstrip || a->normalized != normalized || a->special != special ||
            single_word)
            return bad(L, key, "'%s' differs from tokenizer.json's added token", c->string);
    }
    return 0;
}

/* A special token named in tokenizer_config.json: a string or {"content": ...}. */
static int config_token(bb_load *L, const json_value *cfg, const char *key, const char *def,
                        int32_t *id)
{
    const json_value *v = cfg ? json_get(cfg, key) : NULL;
    const char *s = def;
    size_t n = strlen(def);
    if (v && v->type == JSON_OBJECT)
        v = json_get(v, "content");
    if (v && v->type == JSON_STRING) {
        s = v->string;
        n = v->length;
    } else if (v && v->type != JSON_NULL) {
        return bad(L, key, "not a string");
    }
    *id = tok_bytebpe_token_id(L->t, s, n);
    if (*id < 0 && v && v->type == JSON_STRING)
        return bad(L, key, "'%s' is not a token of the vocabulary", s);
    return 0;
}

static int check_config(bb_load *L, const json_value *cfg, bool from_json)
{
    bool flag;
    const json_value *cls = json_get(cfg, "tokenizer_class");
    if (cls && cls->type != JSON_NULL) {
        static const char *const ok[] = {"BartTokenizer", "BartTokenizerFast", "RobertaTokenizer",
                                         "RobertaTokenizerFast"};
        bool known = false;
        for (size_t i = 0; cls->type == JSON_STRING && i < sizeof ok / sizeof ok[0]; i++)
            known |= strcmp(cls->string, ok[i]) == 0;
        if (!known)
            return bad(L, "tokenizer_class", "'%s' is not a byte-level BPE (BART) tokenizer",
                       cls->type == JSON_STRING ? cls->string : "?");
    }
    if (get_bool(L, cfg, "add_prefix_space", false, &flag) != 0)
        return -1;
    if (flag)
        return bad(L, "add_prefix_space", "true is not supported (BART: false)");
    if (get_bool(L, cfg, "clean_up_tokenization_spaces", false, &flag) != 0 ||
        get_bool(L, cfg, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
                 false, &flag) != 0)
        return -1;
    if (flag)
        return bad(L, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
                   "true is not supported");
    if (from_json && check_config_added(L, json_get(cfg, "added_tokens_decoder")) != 0)
        return -1;
    return 0;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 for U+0100.. in byte order. */
static void byte_maps(tok_bytebpe *t)
{
    int extra = 0;
    memset(t->cp_byte, 0xff, sizeof t->cp_byte);
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)extra++;
        t->cp_byte[cp] = (int16_t)b;
        char u[4];
        size_t l = tok_utf8_encode(cp, u);
        t->byte_id[b] = strmap_get(&t->vocab, t->arena, u, l);
    }
}

/* id → token, the special flags, the two tries. */
static int finish(bb_load *L, int32_t max_id)
{
    tok_bytebpe *t = L->t;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id > max_id)
            max_id = t->added[k].id;
    t->n_ids = max_id + 1;
    t->id_off = calloc((size_t)t->n_ids, sizeof *t->id_off);
    t->id_len = malloc((size_t)t->n_ids * sizeof *t->id_len);
    t->id_flags = calloc((size_t)t->n_ids, 1);
    if (!t->id_off || !t->id_len || !t->id_flags)
        return prism_error_nomem(L->err, "tokenizer: out of memory");
    memset(t->id_len, 0xff, (size_t)t->n_ids * sizeof *t->id_len);
    for (size_t e = 0; e < t->vocab.n; e++) {
        int32_t id = t->vocab.val[e];
        if (t->id_len[id] != BB_NO_TOKEN)
            return prism_errorf(L->err, "%s: model.vocab: id %d is given to two tokens",
                                L->vocab_file, id);
        t->id_off[id] = t->vocab.off[e];
        t->id_len[id] = t->vocab.len[e];
    }
    memset(t->trie_raw.root, 0xff, sizeof t->trie_raw.root);
    memset(t->trie_norm.root, 0xff, sizeof t->trie_norm.root);
    for (size_t k = 0; k < t->n_added; k++) {
        const bb_added *a = &t->added[k];
        t->id_off[a->id] = a->off;
        t->id_len[a->id] = a->len;
        t->id_flags[a->id] |= BB_ID_ADDED;
        bb_trie *tr = a->normalized ? &t->trie_norm : &t->trie_raw;
        if (trie_add(tr, (const unsigned char *)t->arena + a->off, a->len, (int32_t)k) != 0)
            return prism_error_nomem(L->err, "tokenizer: out of memory");
    }
    /* decode skips an id when its token's text is a special added token's */
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (t->id_len[id] == BB_NO_TOKEN)
            continue;
        int32_t k = strmap_get(&t->added_map, t->arena, t->arena + t->id_off[id], t->id_len[id]);
        if (k >= 0 && t->added[k].special)
            t->id_flags[id] |= BB_ID_SPECIAL;
    }
    byte_maps(t);
    return 0;
}

int tok_bytebpe_load(tok_bytebpe **out, const char *model_dir, prism_error *err)
{
    *out = NULL;
    bb_load L = {.err = err};
    snprintf(L.dir, sizeof L.dir, "%s", model_dir);
    L.t = calloc(1, sizeof *L.t);
    if (!L.t)
        return prism_error_nomem(err, "tokenizer: out of memory");
    char cfg_path[4096], json_path[4096], vocab_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", model_dir);
    snprintf(json_path, sizeof json_path, "%s/tokenizer.json", model_dir);
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", model_dir);
    json_value *cfg = NULL;
    int32_t max_id = -1;
    int rc = -1;
    bool from_json = file_exists(json_path);
    if (file_exists(cfg_path) && !(cfg = parse_file(&L, "tokenizer_config.json")))
        goto fail;
    if (!from_json && !file_exists(vocab_path)) {
        prism_errorf(err, "%s: cannot open (and there is no vocab.json with merges.txt)",
                     json_path);
        goto fail;
    }
    if (from_json ? load_tokenizer_json(&L, &max_id) : load_vocab_merges(&L, cfg, cfg_path,
                                                                          &max_id))
        goto fail;
    if (finish(&L, max_id) != 0)
        goto fail;
    snprintf(L.file, sizeof L.file, "%s", cfg_path);
    if (cfg && check_config(&L, cfg, from_json) != 0)
        goto fail;
    if (config_token(&L, cfg, "bos_token", "<s>", &L.t->bos_id) != 0 ||
        config_token(&L, cfg, "eos_token", "</s>", &L.t->eos_id) != 0 ||
        config_token(&L, cfg, "pad_token", "<pad>", &L.t->pad_id) != 0)
        goto fail;
    rc = 0;
fail:
    json_free(cfg);
    if (rc != 0) {
        tok_bytebpe_free(L.t);
        return -1;
    }
    *out = L.t;
    return 0;
}
