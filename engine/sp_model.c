/* sp_model.c - loading a SentencePiece unigram or BPE model and
 * encoding/decoding with it (see sp_model.h for what is reproduced from
 * sentencepiece and from the tokenizers library).
 *
 * Load-time checks mirror sentencepiece's ModelInterface/unigram::Model
 * (non-empty pieces, no duplicates within the reserved or the normal map,
 * exactly one unknown piece, byte pieces only with byte_fallback and then
 * all 256 of them, a unigram or BPE model type), plus a few of our own for files
 * sentencepiece would read out of bounds or mis-index (a trainer_spec and a
 * normalizer_spec must be present, pieces may not contain NUL bytes, the
 * charsmap must be self-consistent).
 *
 * Viterbi follows unigram::Model::EncodeOptimized: one pass over character
 * starts, every piece matching there updates the best path ending where it
 * ends, a later candidate replaces an earlier one only when strictly
 * greater. Path scores are float sums compared as floats: that is what the
 * sentencepiece 0.2 wheel transformers uses does (two crafted models in
 * tests/test_tokenizer.c pin it down: neither double sums nor the lattice
 * encoder give its answers). User-defined pieces score
 * length_in_bytes * max_score - 0.1, where max_score starts at FLT_MIN as
 * in sentencepiece.
 */
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_internal.h"

static const char kSpaceSymbol[] = "\xe2\x96\x81";
#define SP_UNK_PENALTY 10.0f

/* ---- sp_buf ---- */

int sp_buf_append(sp_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *nd = realloc(b->data, cap);
        if (!nd)
            return -1;
        b->data = nd;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

void sp_buf_clear(sp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sp_buf_free(sp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- vocabulary hash ---- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static const sp_str *slot_str(const sp_model *m, const sp_vocab_slot *s)
{
    int32_t id = s->reserved_id >= 0 ? s->reserved_id : s->normal_id;
    return &m->proto.pieces[id].str;
}

static sp_vocab_slot *vocab_find(const sp_model *m, const char *s, size_t n)
{
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & m->vocab_mask;; i = (i + 1) & m->vocab_mask) {
        sp_vocab_slot *slot = &m->vocab[i];
        if (!slot->used)
            return slot;
        if (slot->hash == h) {
            const sp_str *k = slot_str(m, slot);
            if (k->len == n && memcmp(k->data, s, n) == 0)
                return slot;
        }
    }
}

static bool is_normal_map_type(int32_t t)
{
    return t == SP_NORMAL || t == SP_USER_DEFINED || t == SP_UNUSED;
}

/* "<0xXX>" with upper-case hex, as sentencepiece's ByteToPiece writes it. */
static int piece_to_byte(const sp_str *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (s->len != 6 || memcmp(s->data, "<0x", 3) != 0 || s->data[5] != '>')
        return -1;
    const char *hi = memchr(hex, s->data[3], 16), *lo = memchr(hex, s->data[4], 16);
    if (!hi || !lo || !s->data[3] || !s->data[4])
        return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

/* ---- piece trie ---- */

static int trie_new_node(sp_trie *t)
{
    if (t->n_nodes == t->cap_nodes) {
        uint32_t cap = t->cap_nodes ? t->cap_nodes * 2 : 1024;
        int32_t *nv = realloc(t->value, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        t->value = nv;
        t->cap_nodes = cap;
    }
    t->value[t->n_nodes] = -1;
    return (int)t->n_nodes++;
}

static inline uint32_t trie_slot_hash(uint32_t key)
{
    key ^= key >> 16;
    key *= 0x7feb352du;
    key ^= key >> 15;
    key *= 0x846ca68bu;
    key ^= key >> 16;
    return key;
}

/* The child of node along byte c, or UINT32_MAX. */
static inline uint32_t trie_child(const sp_trie *t, uint32_t node, unsigned char c)
{
    uint32_t key = (node << 8 | c) + 1;
    for (uint32_t i = trie_slot_hash(key) & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const sp_trie_slot *s = &t->slots[i];
        if (s->key == key)
            return s->child;
        if (s->key == 0)
            return UINT32_MAX;
    }
}

static int trie_build(sp_model *m, prism_error *err)
{
    sp_trie *t = &m->trie;
    size_t total = 1;
    for (int32_t i = 0; i < m->proto.n_pieces; i++)
        if (is_normal_map_type(m->proto.pieces[i].type))
            total += m->proto.pieces[i].str.len;
    if (total >= (1u << 23))
        return prism_errorf(err, "%s: pieces too long in total (%zu bytes)", m->name, total);
    uint32_t cap = 16;
    while (cap < 2 * total)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots || trie_new_node(t) < 0)
        return prism_errorf(err, "%s: out of memory building the piece trie", m->name);
    t->slot_mask = cap - 1;
    for (int32_t id = 0; id < m->proto.n_pieces; id++) {
        const sp_piece_def *p = &m->proto.pieces[id];
        if (!is_normal_map_type(p->type))
            continue;
        uint32_t node = 0;
        for (size_t k = 0; k < p->str.len; k++) {
            unsigned char c = (unsigned char)p->str.data[k];
            uint32_t key = (node << 8 | c) + 1;
            uint32_t i = trie_slot_hash(key) & t->slot_mask;
            while (t->slots[i].key != 0 && t->slots[i].key != key)
                i = (i + 1) & t->slot_mask;
            if (t->slots[i].key == 0) {
                int nn = trie_new_node(t);
                if (nn < 0)
                    return prism_errorf(err, "%s: out of memory building the piece trie",
                                        m->name);
                t->slots[i].key = key;
                t->slots[i].child = (uint32_t)nn;
            }
            node = t->slots[i].child;
        }
        t->value[node] = id; /* unique: duplicates were refused */
    }
    return 0;
}

size_t sp_user_defined_prefix(const sp_model *m, const char *s, size_t n)
{
    size_t best = 0;
    uint32_t node = 0;
    for (size_t k = 0; k < n; k++) {
        node = trie_child(&m->trie, node, (unsigned char)s[k]);
        if (node == UINT32_MAX)
            break;
        int32_t id = m->trie.value[node];
        if (id >= 0 && m->proto.pieces[id].type == SP_USER_DEFINED)
            best = k + 1;
    }
    return best;
}

/* ---- the space boundary (sp_model_space_is_boundary) ---- */

/* The darts-clone unit layout of sp_normalizer.c (see there). */
static uint32_t charsmap_unit(const sp_norm_spec *spec, size_t i)
{
    const uint8_t *u = spec->units + 4 * i;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static size_t charsmap_offset(uint32_t u)
{
    return (size_t)((u >> 10) << ((u & (1u << 9)) >> 6));
}

/* The replacement string at blob offset v is valid UTF-8 (v is in range:
 * charsmap_validate checked every reachable leaf). */
static bool repl_valid_utf8(const sp_norm_spec *spec, uint32_t v)
{
    const unsigned char *r = (const unsigned char *)spec->repl + v;
    size_t n = strlen((const char *)r);
    for (size_t i = 0; i < n;) {
        size_t mb;
        if (!sp_utf8_valid_char(r + i, n - i, &mb))
            return false;
        i += mb;
    }
    return true;
}

/* Whether no charsmap rule crosses a space (no key has byte ' ' past its
 * first byte; a key that starts with ' ' is replaced by a string that starts
 * with ' ') and every replacement string is valid UTF-8; true without a
 * charsmap. The walk of sp_normalizer.c's charsmap_validate (the same
 * darts-clone transitions as its lookup), each (array index, under a
 * leading space) pair once; a node a crafted array reaches twice is
 * expanded under each flag, so the answer errs towards false. */
static bool charsmap_space_safe(const sp_norm_spec *spec)
{
    if (spec->n_units == 0)
        return true;
    uint8_t *seen = calloc(spec->n_units, 1);
    size_t *stack = malloc(2 * ((size_t)spec->n_units + 1) * sizeof *stack);
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return false;
    }
    size_t top = 0;
    bool ok = true;
    /* entries: base << 1 | under_space; the root is expanded separately */
    const size_t root = charsmap_offset(charsmap_unit(spec, 0));
    for (unsigned c = 0; c < 256 && ok; c++) {
        size_t idx = root ^ c;
        if (idx >= spec->n_units)
            continue;
        uint32_t u = charsmap_unit(spec, idx);
        if ((u & ((1u << 31) | 0xFF)) != c)
            continue;
        size_t next = idx ^ charsmap_offset(u);
        if (((u >> 8) & 1) && next < spec->n_units) {
            uint32_t v = charsmap_unit(spec, next) & 0x7FFFFFFFu;
            ok = repl_valid_utf8(spec, v) && (c != ' ' || spec->repl[v] == ' ');
        }
        uint8_t bit = c == ' ' ? 2 : 1;
        if (!(seen[idx] & bit)) {
            seen[idx] |= bit;
            stack[top++] = next << 1 | (c == ' ');
        }
    }
    while (top > 0 && ok) {
        size_t e = stack[--top], base = e >> 1;
        bool under_space = e & 1;
        for (unsigned c = 0; c < 256 && ok; c++) {
            size_t idx = base ^ c;
            if (idx >= spec->n_units)
                continue;
            uint32_t u = charsmap_unit(spec, idx);
            if ((u & ((1u << 31) | 0xFF)) != c)
                continue;
            if (c == ' ') {
                ok = false; /* a key with ' ' past its first byte */
                break;
            }
            size_t next = idx ^ charsmap_offset(u);
            if (((u >> 8) & 1) && next < spec->n_units) {
                uint32_t v = charsmap_unit(spec, next) & 0x7FFFFFFFu;
                ok = repl_valid_utf8(spec, v) && (!under_space || spec->repl[v] == ' ');
            }
            uint8_t bit = under_space ? 2 : 1;
            if (!(seen[idx] & bit)) {
                seen[idx] |= bit;
                stack[top++] = next << 1 | under_space;
            }
        }
    }
    free(seen);
    free(stack);
    return ok;
}

static bool has_space_symbol_after_first_byte(const sp_str *s)
{
    for (size_t i = 1; i + 3 <= s->len; i++)
        if (memcmp(s->data + i, kSpaceSymbol, 3) == 0)
            return true;
    return false;
}

static bool utf8_valid(const sp_str *s)
{
    const unsigned char *p = (const unsigned char *)s->data;
    for (size_t i = 0; i < s->len;) {
        size_t mb;
        if (!sp_utf8_valid_char(p + i, s->len - i, &mb))
            return false;
        i += mb;
    }
    return true;
}

/* The conditions of sp_model_space_is_boundary, for the normaliser
 * (rules never cross a space, so the normalised text of A is a prefix of
 * that of A + " " + R, followed there by ▁ or nothing; valid UTF-8 out, so
 * the Viterbi walk over characters stops exactly where A's text ends) and
 * for the encoder (no piece it matches can start before a ▁ and end after
 * its first byte, so every path through the lattice passes that ▁). */
bool sp_model_space_is_boundary(const sp_model *m)
{
    const sp_norm_spec *ns = &m->proto.normalizer;
    if (m->proto.trainer.model_type != SP_MODEL_UNIGRAM)
        return false; /* the argument is about Viterbi paths */
    if (!ns->escape_whitespaces || m->proto.trainer.treat_whitespace_as_suffix)
        return false;
    if (!charsmap_space_safe(ns))
        return false;
    for (int32_t i = 0; i < m->proto.n_pieces; i++) {
        const sp_piece_def *p = &m->proto.pieces[i];
        if (p->type != SP_NORMAL && p->type != SP_USER_DEFINED)
            continue; /* the only types Viterbi matches */
        const sp_str *s = &p->str;
        if (has_space_symbol_after_first_byte(s))
            return false;
        if ((s->len >= 2 && (unsigned char)s->data[s->len - 1] == 0xE2) ||
            (s->len >= 3 && memcmp(s->data + s->len - 2, kSpaceSymbol, 2) == 0))
            return false; /* would end inside a ▁ */
        if (p->type == SP_USER_DEFINED &&
            (memchr(s->data + 1, ' ', s->len - 1) != NULL || !utf8_valid(s)))
            return false; /* the normaliser copies these verbatim */
    }
    return true;
}

/* ---- loading ---- */

static int model_init(sp_model *m, prism_error *err)
{
    const sp_proto *p = &m->proto;
    const char *name = m->name;
    if (!p->trainer.present || !p->normalizer.present)
        return prism_errorf(err,
                            "%s: not a SentencePiece model (no %s; truncated or not a "
                            "spiece.model file)",
                            name, !p->trainer.present ? "trainer_spec" : "normalizer_spec");
    if (p->trainer.model_type != SP_MODEL_UNIGRAM && p->trainer.model_type != SP_MODEL_BPE) {
        static const char *types[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        int32_t t = p->trainer.model_type;
        return prism_errorf(err,
                            "%s: trainer_spec.model_type %s (%d) is not supported, only UNIGRAM "
                            "and BPE",
                            name, t >= 0 && t <= 4 ? types[t] : "unknown", t);
    }
    if (p->n_pieces == 0)
        return prism_errorf(err, "%s: the model has no pieces", name);

    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)p->n_pieces)
        cap *= 2;
    m->vocab = calloc(cap, sizeof *m->vocab);
    if (!m->vocab)
        return prism_errorf(err, "%s: out of memory", name);
    m->vocab_mask = cap - 1;

    m->unk_id = -1;
    m->min_score = FLT_MAX;
    m->max_score = FLT_MIN;
    for (int i = 0; i < 256; i++)
        m->byte_ids[i] = -1;
    int32_t n_normal = 0;
    for (int32_t i = 0; i < p->n_pieces; i++) {
        const sp_piece_def *pc = &p->pieces[i];
        if (pc->str.len == 0)
            return prism_errorf(err, "%s: piece %d is empty", name, i);
        if (memchr(pc->str.data, '\0', pc->str.len))
            return prism_errorf(err, "%s: piece %d contains a NUL byte", name, i);
        sp_vocab_slot *slot = vocab_find(m, pc->str.data, pc->str.len);
        bool normal = is_normal_map_type(pc->type);
        int32_t *dst = normal ? &slot->normal_id : &slot->reserved_id;
        if (slot->used && *dst >= 0)
            return prism_errorf(err, "%s: piece %d '%.*s' is already defined (piece %d)", name,
                                i, (int)(pc->str.len > 64 ? 64 : pc->str.len), pc->str.data,
                                *dst);
        if (!slot->used) {
            slot->used = true;
            slot->hash = hash_bytes(pc->str.data, pc->str.len);
            slot->normal_id = slot->reserved_id = -1;
        }
        *dst = i;
        if (normal)
            n_normal++;
        if (pc->type == SP_USER_DEFINED)
            m->has_user_defined = true;
        if (pc->type == SP_UNKNOWN) {
            if (m->unk_id >= 0)
                return prism_errorf(err, "%s: unk is already defined (pieces %d and %d)", name,
                                    m->unk_id, i);
            m->unk_id = i;
        }
        if (pc->type == SP_BYTE) {
            if (!p->trainer.byte_fallback)
                return prism_errorf(err,
                                    "%s: byte piece %d is found although byte_fallback is false",
                                    name, i);
            int b = piece_to_byte(&pc->str);
            if (b < 0)
                return prism_errorf(err, "%s: byte piece %d '%.*s' is invalid", name, i,
                                    (int)(pc->str.len > 16 ? 16 : pc->str.len), pc->str.data);
            m->byte_ids[b] = i;
        }
        if (pc->type == SP_NORMAL) {
            if (pc->score < m->min_score)
                m->min_score = pc->score;
            if (pc->score > m->max_score)
                m->max_score = pc->score;
        }
    }
    if (m->unk_id < 0)
        return prism_errorf(err, "%s: unk is not defined (no piece of type UNKNOWN)", name);
    if (p->trainer.byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_ids[b] < 0)
                return prism_errorf(err,
                                    "%s: there are not 256 byte pieces although byte_fallback "
                                    "is true (<0x%02X> is missing)",
                                    name, b);
    if (n_normal == 0)
        return prism_errorf(err, "%s: no normal pieces are loaded", name);
    m->hf_tab_is_byte = p->trainer.byte_fallback && !vocab_find(m, "\t", 1)->used;
    if (trie_build(m, err) != 0)
        return -1;
    if (sp_charsmap_init(&m->proto.normalizer, name, "normalizer_spec", err) != 0)
        return -1;
    if (sp_charsmap_init(&m->proto.denormalizer, name, "denormalizer_spec", err) != 0)
        return -1;
    return 0;
}

int sp_model_load_memory(sp_model **out, const void *data, size_t len, const char *name,
                         prism_error *err)
{
    *out = NULL;
    sp_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "%s: out of memory", name);
    m->name = strdup(name);
    m->bytes = malloc(len ? len : 1);
    if (!m->name || !m->bytes) {
        sp_model_free(m);
        return prism_errorf(err, "%s: out of memory", name);
    }
    if (len)
        memcpy(m->bytes, data, len);
    m->n_bytes = len;
    if (len == 0) {
        sp_model_free(m);
        return prism_errorf(err, "%s: empty file, not a SentencePiece model", name);
    }
    if (sp_proto_parse(&m->proto, m->bytes, len, m->name, err) != 0 || model_init(m, err) != 0) {
        sp_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int sp_model_load_file(sp_model **out, const char *path, prism_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return prism_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > ((size_t)1 << 31)) {
                free(buf);
                fclose(f);
                return prism_errorf(err, "%s: larger than 2 GiB, not a SentencePiece model",
                                    path);
            }
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return prism_errorf(err, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(buf);
        return prism_errorf(err, "%s: read error (is it a directory?)", path);
    }
    int rc = sp_model_load_memory(out, buf, len, path, err);
    free(buf);
    return rc;
}

void sp_model_free(sp_model *m)
{
    if (!m)
        return;
    sp_proto_free(&m->proto);
    free(m->trie.value);
    free(m->trie.slots);
    free(m->vocab);
    free(m->bytes);
    free(m->name);
    free(m);
}

/* ---- vocabulary queries ---- */

int32_t sp_model_piece_count(const sp_model *m)
{
    return m->proto.n_pieces;
}

sp_model_type sp_model_get_type(const sp_model *m)
{
    return (sp_model_type)m->proto.trainer.model_type;
}

int32_t sp_model_unk_id(const sp_model *m)
{
    return m->unk_id;
}

int32_t sp_piece_to_id(const sp_model *m, const char *piece, size_t len)
{
    const sp_vocab_slot *s = vocab_find(m, piece, len);
    if (s->used)
        return s->reserved_id >= 0 ? s->reserved_id : s->normal_id;
    return m->unk_id;
}

bool sp_piece_exists(const sp_model *m, const char *piece, size_t len)
{
    return vocab_find(m, piece, len)->used;
}

const char *sp_id_to_piece(const sp_model *m, int32_t id, size_t *len)
{
    if (id < 0 || id >= m->proto.n_pieces)
        return NULL;
    *len = m->proto.pieces[id].str.len;
    return m->proto.pieces[id].str.data;
}

sp_piece_type sp_id_type(const sp_model *m, int32_t id)
{
    if (id < 0 || id >= m->proto.n_pieces)
        return (sp_piece_type)0;
    return (sp_piece_type)m->proto.pieces[id].type;
}

float sp_id_score(const sp_model *m, int32_t id)
{
    if (id < 0 || id >= m->proto.n_pieces)
        return 0.0f;
    return m->proto.pieces[id].score;
}

/* ---- encoding ---- */

typedef struct sp_span {
    size_t begin, end;
    int32_t id;
} sp_span;

typedef struct best_path {
    int32_t id;
    float score;
    int64_t start; /* -1: not reached yet */
} best_path;

static int enc_push(sp_encoding *enc, const char *s, size_t n, int32_t id)
{
    if (enc->n_pieces == enc->cap_pieces) {
        size_t cap = enc->cap_pieces ? enc->cap_pieces * 2 : 32;
        sp_piece *np = realloc(enc->pieces, cap * sizeof *np);
        if (!np)
            return -1;
        enc->pieces = np;
        enc->cap_pieces = cap;
    }
    enc->pieces[enc->n_pieces++] = (sp_piece){s, n, id};
    return 0;
}

void sp_encoding_free(sp_encoding *enc)
{
    sp_buf_free(&enc->normalized);
    free(enc->pieces);
    enc->pieces = NULL;
    enc->n_pieces = enc->cap_pieces = 0;
}

/* PopulateSentencePieceText: merge runs of unknown pieces, or split them
 * into byte pieces when the model has byte_fallback. */
static int populate_pieces(const sp_model *m, const unsigned char *s, const sp_span *spans,
                           size_t n, sp_encoding *enc)
{
    const sp_piece_def *pieces = m->proto.pieces;
    const bool byte_fallback = m->proto.trainer.byte_fallback;
    bool prev_unk = false;
    for (size_t i = 0; i < n; i++) {
        const size_t b = spans[i].begin, end = spans[i].end;
        const int32_t id = spans[i].id;
        const bool is_unk = pieces[id].type == SP_UNKNOWN;
        if (is_unk && byte_fallback) {
            for (size_t k = b; k < end; k++) {
                int32_t bid = m->byte_ids[s[k]];
                if (enc_push(enc, pieces[bid].str.data, pieces[bid].str.len, bid) != 0)
                    return -1;
            }
        } else if (is_unk && prev_unk) {
            enc->pieces[enc->n_pieces - 1].len += end - b; /* contiguous in normalized */
        } else if (enc_push(enc, (const char *)s + b, end - b, id) != 0) {
            return -1;
        }
        prev_unk = is_unk;
    }
    return 0;
}

/* unigram::Model::EncodeOptimized over enc->normalized (not empty). */
static int encode_unigram(const sp_model *m, sp_encoding *enc, prism_error *err)
{
    const size_t size = enc->normalized.len;
    const unsigned char *s = (const unsigned char *)enc->normalized.data;
    const sp_piece_def *pieces = m->proto.pieces;
    const float unk_score = m->min_score - SP_UNK_PENALTY;

    if (size > SIZE_MAX / sizeof(best_path) - 1)
        return prism_errorf(err, "text too long to encode");
    best_path *best = malloc((size + 1) * sizeof *best);
    if (!best)
        return prism_errorf(err, "out of memory encoding %zu bytes", size);
    for (size_t i = 0; i <= size; i++)
        best[i] = (best_path){-1, 0.0f, -1};

    size_t start = 0;
    while (start < size) {
        const float till_here = best[start].score;
        size_t mblen = sp_one_char_len(s[start]);
        if (mblen > size - start)
            mblen = size - start;
        bool has_single_node = false;
        uint32_t node = 0;
        for (size_t k = start; k < size; k++) {
            node = trie_child(&m->trie, node, s[k]);
            if (node == UINT32_MAX)
                break;
            int32_t id = m->trie.value[node];
            if (id < 0 || pieces[id].type == SP_UNUSED)
                continue;
            const size_t length = k + 1 - start;
            const float score = pieces[id].type == SP_USER_DEFINED
                                    ? (float)((double)((float)length * m->max_score) - 0.1)
                                    : pieces[id].score;
            const float cand = score + till_here;
            best_path *target = &best[k + 1];
            if (target->start == -1 || cand > target->score) {
                target->score = cand;
                target->start = (int64_t)start;
                target->id = id;
            }
            if (!has_single_node && length == mblen)
                has_single_node = true;
        }
        if (!has_single_node) {
            best_path *target = &best[start + mblen];
            const float cand = unk_score + till_here;
            if (target->start == -1 || cand > target->score) {
                target->score = cand;
                target->start = (int64_t)start;
                target->id = m->unk_id;
            }
        }
        start += mblen;
    }

    /* Backtrack into spans. */
    size_t n = 0;
    for (size_t end = size; end > 0; end = (size_t)best[end].start) {
        if (best[end].start < 0 || (size_t)best[end].start >= end) {
            free(best);
            return prism_errorf(err, "internal error: broken Viterbi path");
        }
        n++;
    }
    sp_span *spans = malloc((n ? n : 1) * sizeof *spans);
    if (!spans) {
        free(best);
        return prism_errorf(err, "out of memory encoding");
    }
    size_t j = n;
    for (size_t end = size; end > 0; end = (size_t)best[end].start)
        spans[--j] = (sp_span){(size_t)best[end].start, end, best[end].id};
    free(best);
    int rc = populate_pieces(m, s, spans, n, enc);
    free(spans);
    if (rc != 0)
        return prism_errorf(err, "out of memory encoding");
    return 0;
}

/* ---- BPE ----
 *
 * One merge loop serves two sets of rules (sp_bpe_rules):
 *   - SP_BPE_SENTENCEPIECE, bpe::Model::Encode: the normalised text is
 *     split into characters, a user-defined piece matched at a position
 *     being one frozen symbol; an adjacent pair is a candidate when its
 *     concatenation is a normal, user-defined or unused piece; the
 *     candidate whose piece has the highest score is merged first, the
 *     leftmost among equal scores; a final symbol that is an unused piece
 *     is split back the way its last candidate was formed.
 *   - SP_BPE_TOKENIZERS, the tokenizers library's BPE model over the
 *     vocabulary and merge list that transformers' converter
 *     (GemmaConverter with generate_merges) derives from the same file: a
 *     character that is not a piece becomes its byte pieces <0xNN>; a pair
 *     is a merge when both strings and their concatenation are pieces of
 *     any type; merges are ranked by the merged piece's score (higher
 *     first), then the left and right strings' lengths in code points
 *     (longer first), then the ids of the merged, left and right pieces
 *     (lower first): generate_merges' stable sort. The lowest rank is
 *     merged first, the leftmost among equal ranks. The converter's
 *     vocabulary calls piece <0x09> "\t" when the model has no "\t" piece,
 *     and a string held by two pieces (the reserved and the normal map)
 *     belongs to the higher id.
 * Both keep candidates in a binary heap and skip the stale ones, so a word
 * of n characters costs O(n log n) time and O(n) memory.
 */

typedef struct bpe_sym {
    uint32_t begin, len; /* span of the text covered (bytes) */
    int32_t id;          /* SP_BPE_TOKENIZERS: the piece; else -1 */
    int32_t prev, next;  /* neighbours, -1 at the ends */
    bool alive, freeze;
    bool text;           /* its string is the text of its span (else the piece's) */
} bpe_sym;

typedef struct bpe_cand {
    int32_t left, right;
    uint32_t llen, rlen; /* the symbols' span lengths when pushed */
    int32_t lid, rid, piece;
    float score;
    uint32_t lchars, rchars; /* SP_BPE_TOKENIZERS: code points of the two strings */
} bpe_cand;

typedef struct bpe_rev { /* SP_BPE_SENTENCEPIECE: how an unused piece was formed */
    uint32_t begin, len, left_len;
} bpe_rev;

typedef struct bpe_state {
    const sp_model *m;
    const unsigned char *text;
    sp_bpe_rules rules;
    bpe_sym *sym;
    size_t n_sym;
    bpe_cand *heap;
    size_t n_heap, cap_heap;
    bpe_rev *rev;
    size_t n_rev, cap_rev;
    sp_buf tmp;
} bpe_state;

/* The converter's vocabulary (SP_BPE_TOKENIZERS): the id of a string, or -1. */
static int32_t hf_vocab_id(const sp_model *m, const char *s, size_t n)
{
    if (m->hf_tab_is_byte) {
        if (n == 1 && s[0] == '\t')
            return m->byte_ids[0x09];
        if (n == 6 && memcmp(s, "<0x09>", 6) == 0)
            return -1;
    }
    const sp_vocab_slot *slot = vocab_find(m, s, n);
    if (!slot->used)
        return -1;
    return slot->reserved_id > slot->normal_id ? slot->reserved_id : slot->normal_id;
}

static const char *hf_piece_str(const sp_model *m, int32_t id, size_t *n)
{
    if (m->hf_tab_is_byte && id == m->byte_ids[0x09]) {
        *n = 1;
        return "\t";
    }
    *n = m->proto.pieces[id].str.len;
    return m->proto.pieces[id].str.data;
}

static const char *sym_str(const bpe_state *st, const bpe_sym *y, size_t *n)
{
    if (y->text) {
        *n = y->len;
        return (const char *)st->text + y->begin;
    }
    return hf_piece_str(st->m, y->id, n);
}

static uint32_t utf8_chars(const char *s, size_t n)
{
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* True when a should be merged before b. */
static bool cand_before(sp_bpe_rules rules, const bpe_cand *a, const bpe_cand *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    if (rules == SP_BPE_TOKENIZERS) {
        if (a->lchars != b->lchars)
            return a->lchars > b->lchars;
        if (a->rchars != b->rchars)
            return a->rchars > b->rchars;
        if (a->piece != b->piece)
            return a->piece < b->piece;
        if (a->lid != b->lid)
            return a->lid < b->lid;
        if (a->rid != b->rid)
            return a->rid < b->rid;
    }
    return a->left < b->left;
}

static int heap_push(bpe_state *st, const bpe_cand *c)
{
    if (st->n_heap == st->cap_heap) {
        size_t cap = st->cap_heap ? st->cap_heap * 2 : 64;
        bpe_cand *nh = realloc(st->heap, cap * sizeof *nh);
        if (!nh)
            return -1;
        st->heap = nh;
        st->cap_heap = cap;
    }
    size_t i = st->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(st->rules, c, &st->heap[parent]))
            break;
        st->heap[i] = st->heap[parent];
        i = parent;
    }
    st->heap[i] = *c;
    return 0;
}

static bpe_cand heap_pop(bpe_state *st)
{
    bpe_cand top = st->heap[0];
    bpe_cand last = st->heap[--st->n_heap];
    size_t i = 0, n = st->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cand_before(st->rules, &st->heap[c + 1], &st->heap[c]))
            c++;
        if (!cand_before(st->rules, &st->heap[c], &last))
            break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n > 0)
        st->heap[i] = last;
    return top;
}

/* MaybeAddNewSymbolPair: pushes the pair (l, r) when it can merge. */
static int bpe_consider(bpe_state *st, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    const bpe_sym *a = &st->sym[l], *b = &st->sym[r];
    if (a->freeze || b->freeze)
        return 0;
    const sp_model *m = st->m;
    size_t la, lb;
    const char *sa = sym_str(st, a, &la), *sb = sym_str(st, b, &lb);
    const char *cat;
    if (a->text && b->text) {
        cat = sa; /* adjacent spans of the text */
    } else {
        sp_buf_clear(&st->tmp);
        if (sp_buf_append(&st->tmp, sa, la) != 0 || sp_buf_append(&st->tmp, sb, lb) != 0)
            return -1;
        cat = st->tmp.data;
    }
    bpe_cand c = {l, r, a->len, b->len, a->id, b->id, -1, 0.0f, 0, 0};
    if (st->rules == SP_BPE_TOKENIZERS) {
        c.piece = hf_vocab_id(m, cat, la + lb);
        if (c.piece < 0)
            return 0;
        c.score = c.piece <= 2 ? 0.0f : m->proto.pieces[c.piece].score;
        c.lchars = utf8_chars(sa, la);
        c.rchars = utf8_chars(sb, lb);
    } else {
        const sp_vocab_slot *slot = vocab_find(m, cat, la + lb);
        if (!slot->used || slot->normal_id < 0)
            return 0;
        c.piece = slot->normal_id;
        c.score = m->proto.pieces[c.piece].score;
        if (m->proto.pieces[c.piece].type == SP_UNUSED) {
            if (st->n_rev == st->cap_rev) {
                size_t cap = st->cap_rev ? st->cap_rev * 2 : 16;
                bpe_rev *nr = realloc(st->rev, cap * sizeof *nr);
                if (!nr)
                    return -1;
                st->rev = nr;
                st->cap_rev = cap;
            }
            st->rev[st->n_rev++] = (bpe_rev){a->begin, a->len + b->len, a->len};
        }
    }
    return heap_push(st, &c);
}

/* Appends symbol i (span begin..begin+len) to spans, splitting unused
 * pieces back as SentencePiece's resegment does. */
static int sp_reseg(const bpe_state *st, uint32_t begin, uint32_t len, sp_span **spans,
                    size_t *n, size_t *cap, int depth)
{
    const sp_model *m = st->m;
    const char *w = (const char *)st->text + begin;
    int32_t id = sp_piece_to_id(m, w, len);
    if (m->proto.pieces[id].type == SP_UNUSED && depth < 64) {
        const bpe_rev *found = NULL;
        for (size_t k = st->n_rev; k-- > 0;) {
            const bpe_rev *r = &st->rev[k];
            if (r->len == len && memcmp(st->text + r->begin, w, len) == 0) {
                found = r;
                break;
            }
        }
        if (found) {
            /* the left and right strings of the record, found in this span */
            if (sp_reseg(st, begin, found->left_len, spans, n, cap, depth + 1) != 0)
                return -1;
            return sp_reseg(st, begin + found->left_len, len - found->left_len, spans, n, cap,
                            depth + 1);
        }
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        sp_span *ns = realloc(*spans, nc * sizeof *ns);
        if (!ns)
            return -1;
        *spans = ns;
        *cap = nc;
    }
    (*spans)[(*n)++] = (sp_span){begin, (size_t)begin + len, id};
    return 0;
}

static void bpe_state_free(bpe_state *st)
{
    free(st->sym);
    free(st->heap);
    free(st->rev);
    sp_buf_free(&st->tmp);
}

/* Adds a symbol at the end of the list. */
static void bpe_add(bpe_state *st, uint32_t begin, uint32_t len, int32_t id, bool freeze,
                    bool text)
{
    int32_t i = (int32_t)st->n_sym++;
    st->sym[i] = (bpe_sym){begin, len, id, i - 1, -1, true, freeze, text};
    if (i > 0)
        st->sym[i - 1].next = i;
}

/* The merge loop over the symbols in st. */
static int bpe_merge_all(bpe_state *st)
{
    for (size_t i = 1; i < st->n_sym; i++)
        if (bpe_consider(st, (int32_t)i - 1, (int32_t)i) != 0)
            return -1;
    while (st->n_heap > 0) {
        bpe_cand c = heap_pop(st);
        bpe_sym *a = &st->sym[c.left], *b = &st->sym[c.right];
        if (!a->alive || !b->alive || a->next != c.right || a->len != c.llen ||
            b->len != c.rlen || a->id != c.lid || b->id != c.rid)
            continue; /* stale */
        a->len += b->len;
        a->id = st->rules == SP_BPE_TOKENIZERS ? c.piece : -1;
        a->text = a->text && b->text;
        a->next = b->next;
        if (b->next >= 0)
            st->sym[b->next].prev = c.left;
        b->alive = false;
        if (bpe_consider(st, a->prev, c.left) != 0 || bpe_consider(st, c.left, a->next) != 0)
            return -1;
    }
    return 0;
}

static int bpe_alloc(bpe_state *st, size_t n_syms)
{
    if (n_syms > (size_t)INT32_MAX / 2)
        return -1;
    st->sym = malloc((n_syms ? n_syms : 1) * sizeof *st->sym);
    return st->sym ? 0 : -1;
}

/* bpe::Model::Encode over enc->normalized (not empty). */
static int encode_bpe_sp(const sp_model *m, sp_encoding *enc, prism_error *err)
{
    const size_t size = enc->normalized.len;
    const char *s = enc->normalized.data;
    if (size > UINT32_MAX / 2)
        return prism_errorf(err, "text too long to encode");
    bpe_state st = {.m = m, .text = (const unsigned char *)s, .rules = SP_BPE_SENTENCEPIECE};
    sp_span *spans = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    if (bpe_alloc(&st, size) != 0)
        goto oom;
    for (size_t i = 0; i < size;) {
        size_t k = m->has_user_defined ? sp_user_defined_prefix(m, s + i, size - i) : 0;
        bool frozen = k > 0;
        if (!frozen) {
            k = sp_one_char_len((unsigned char)s[i]);
            if (k > size - i)
                k = size - i;
        }
        bpe_add(&st, (uint32_t)i, (uint32_t)k, -1, frozen, true);
        i += k;
    }
    if (bpe_merge_all(&st) != 0)
        goto oom;
    for (int32_t i = 0; i >= 0 && (size_t)i < st.n_sym; i = st.sym[i].next)
        if (sp_reseg(&st, st.sym[i].begin, st.sym[i].len, &spans, &n, &cap, 0) != 0)
            goto oom;
    rc = populate_pieces(m, st.text, spans, n, enc);
    if (rc != 0)
        goto oom;
    goto out;
oom:
    rc = prism_errorf(err, "out of memory encoding");
out:
    free(spans);
    bpe_state_free(&st);
    return rc;
}

int sp_ids_push(sp_ids *l, int32_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *ni = realloc(l->ids, cap * sizeof *ni);
        if (!ni)
            return -1;
        l->ids = ni;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

int sp_bpe_encode_tokenizers(const sp_model *m, const char *text, size_t len, sp_ids *out,
                             prism_error *err)
{
    if (m->proto.trainer.model_type != SP_MODEL_BPE)
        return prism_errorf(err, "%s: not a BPE model", m->name);
    if (len == 0)
        return 0;
    if (len > UINT32_MAX / 2)
        return prism_errorf(err, "text too long to encode");
    bpe_state st = {.m = m, .text = (const unsigned char *)text, .rules = SP_BPE_TOKENIZERS};
    int rc = -1;
    if (bpe_alloc(&st, len) != 0)
        goto oom;
    bool prev_unk = false;
    for (size_t i = 0; i < len;) {
        size_t k = sp_one_char_len((unsigned char)text[i]);
        if (k > len - i)
            k = len - i;
        int32_t id = hf_vocab_id(m, text + i, k);
        if (id >= 0) {
            bpe_add(&st, (uint32_t)i, (uint32_t)k, id, false, true);
            prev_unk = false;
        } else if (m->proto.trainer.byte_fallback) {
            /* (a character holding byte 0x09 is "\t", found above) */
            for (size_t b = 0; b < k; b++)
                bpe_add(&st, (uint32_t)(i + b), 1, m->byte_ids[(unsigned char)text[i + b]],
                        false, false);
            prev_unk = false;
        } else if (prev_unk) {
            st.sym[st.n_sym - 1].len += (uint32_t)k; /* fuse_unk */
        } else {
            bpe_add(&st, (uint32_t)i, (uint32_t)k, m->unk_id, false, false);
            prev_unk = true;
        }
        i += k;
    }
    if (bpe_merge_all(&st) != 0)
        goto oom;
    for (int32_t i = 0; i >= 0 && (size_t)i < st.n_sym; i = st.sym[i].next)
        if (sp_ids_push(out, st.sym[i].id) != 0)
            goto oom;
    rc = 0;
    goto out;
oom:
    rc = prism_errorf(err, "out of memory encoding");
out:
    bpe_state_free(&st);
    return rc;
}

int sp_encode(const sp_model *m, const char *text, size_t len, sp_encoding *enc,
              prism_error *err)
{
    enc->n_pieces = 0;
    if (sp_normalize(m, text, len, &enc->normalized, err) != 0)
        return -1;
    if (enc->normalized.len == 0)
        return 0;
    if (m->proto.trainer.model_type == SP_MODEL_BPE)
        return encode_bpe_sp(m, enc, err);
    return encode_unigram(m, enc, err);
}

/* ---- decoding ---- */

static int append_bytes_as_utf8(sp_buf *out, const unsigned char *b, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t used;
        if (!sp_utf8_valid_char(b + off, n - off, &used)) {
            if (sp_buf_append(out, "\xEF\xBF\xBD", 3) != 0)
                return -1;
            off += 1;
        } else {
            if (sp_buf_append(out, b + off, used) != 0)
                return -1;
            off += used;
        }
    }
    return 0;
}

/* Appends s with every ▁ replaced by ' '. */
static int append_unescaped(sp_buf *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 3 && memcmp(s + i, kSpaceSymbol, 3) == 0) {
            if (sp_buf_append(out, " ", 1) != 0)
                return -1;
            i += 3;
        } else {
            if (sp_buf_append(out, s + i, 1) != 0)
                return -1;
            i++;
        }
    }
    return 0;
}

int sp_decode_pieces(const sp_model *m, const sp_piece *pieces, size_t n, sp_buf *out,
                     prism_error *err)
{
    sp_buf_clear(out);
    if (sp_buf_append(out, "", 0) != 0)
        return prism_errorf(err, "out of memory decoding");
    const sp_norm_spec *ns = &m->proto.normalizer;
    const bool strip_bos_ws = ns->add_dummy_prefix || ns->remove_extra_whitespaces;
    unsigned char *bytes = NULL;
    size_t n_bytes = 0;
    bool is_bos_ws = true, bos_ws_seen = false;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *w = pieces[i].str;
        size_t wl = pieces[i].len;
        int32_t id = sp_piece_to_id(m, w, wl);
        int32_t type = m->proto.pieces[id].type;
        if (type == SP_BYTE) {
            if (!bytes && !(bytes = malloc(n)))
                rc = -1;
            else
                bytes[n_bytes++] = (unsigned char)piece_to_byte(&m->proto.pieces[id].str);
            continue;
        }
        if (n_bytes) {
            rc = append_bytes_as_utf8(out, bytes, n_bytes);
            n_bytes = 0;
            if (rc != 0)
                break;
        }
        if (bos_ws_seen || out->len > 0)
            is_bos_ws = false;
        bos_ws_seen = false;
        if (type == SP_CONTROL)
            continue;
        if (type == SP_UNKNOWN) {
            const sp_str *up = &m->proto.pieces[id].str;
            if (up->len == wl && memcmp(up->data, w, wl) == 0)
                rc = sp_buf_append(out, m->proto.trainer.unk_surface.data,
                                   m->proto.trainer.unk_surface.len);
            else
                rc = sp_buf_append(out, w, wl);
            continue;
        }
        if (is_bos_ws && strip_bos_ws) {
            if (wl >= 3 && memcmp(w, kSpaceSymbol, 3) == 0) {
                w += 3;
                wl -= 3;
                /* with remove_extra_whitespaces every leading ▁ piece is
                 * stripped, so the bos state is kept */
                bos_ws_seen = !ns->remove_extra_whitespaces;
            }
        }
        rc = append_unescaped(out, w, wl);
    }
    if (rc == 0 && n_bytes)
        rc = append_bytes_as_utf8(out, bytes, n_bytes);
    free(bytes);
    if (rc != 0)
        return prism_errorf(err, "out of memory decoding");

    if (m->proto.denormalizer.present && m->proto.denormalizer.n_units > 0) {
        sp_buf tmp = {0};
        if (sp_normalize_with(NULL, &m->proto.denormalizer, false, out->data, out->len, &tmp,
                              err) != 0) {
            sp_buf_free(&tmp);
            return -1;
        }
        sp_buf_free(out);
        *out = tmp;
        if (!out->data && sp_buf_append(out, "", 0) != 0)
            return prism_errorf(err, "out of memory decoding");
    }
    return 0;
}

int sp_decode_ids(const sp_model *m, const int32_t *ids, size_t n, sp_buf *out,
                  prism_error *err)
{
    sp_piece *pieces = malloc((n ? n : 1) * sizeof *pieces);
    if (!pieces)
        return prism_errorf(err, "out of memory decoding");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->proto.n_pieces) {
            free(pieces);
            return prism_errorf(err, "invalid id %d (the vocabulary has %d pieces)", ids[i],
                                m->proto.n_pieces);
        }
        const sp_piece_def *p = &m->proto.pieces[ids[i]];
        pieces[i] = (sp_piece){p->str.data, p->str.len, ids[i]};
    }
    int rc = sp_decode_pieces(m, pieces, n, out, err);
    free(pieces);
    return rc;
}
