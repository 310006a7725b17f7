/* tokenizer.c - SigLIP's text pipeline over a SentencePiece model, step for
 * step what transformers' SiglipTokenizer (tokenization_siglip.py and the
 * PreTrainedTokenizer / SentencePieceBackend code under it) does; see
 * tokenizer.h for the steps and docs/tokenizer.md for the reasons.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tok_unicode.h"

static const char kEos[] = "</s>";   /* SiglipTokenizer's eos_token and pad_token */
static const char kUnk[] = "<unk>";  /* its unk_token */
static const char kSpace[] = "\xe2\x96\x81"; /* ▁ */

typedef struct added_node added_node;

struct tok_tokenizer {
    tok_kind kind;
    sp_model *sp;
    int32_t eos_id, unk_tok_id;
    size_t unk_prefix_pieces; /* SigLIP: len(sp.encode("<unk>")) */
    bool prefix_cuts;         /* texts may be cut at spaces (SigLIP: sp_model_space_is_boundary;
                                 SigLIP 2: siglip2_cuts_hold) */
    /* SigLIP 2 */
    int32_t pad_id, bos_id;
    bool add_bos, add_eos, pad_left;
    bool lowercase; /* Siglip2Tokenizer: yes; GemmaTokenizer (PaliGemma): no */
    uint8_t *special; /* Gemma: 1 for ids tokenizer_config.json marks special (n_special of them) */
    int32_t n_special;
    added_node *added; /* trie of the added tokens; node 0 is the root */
    size_t n_added, cap_added;
};

/* ---- loading ---- */

static int tok_init(tok_tokenizer **out, sp_model *sp, prism_error *err)
{
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        sp_model_free(sp);
        return prism_errorf(err, "out of memory");
    }
    t->sp = sp;
    t->kind = TOK_KIND_SIGLIP;
    /* transformers registers "</s>" and "<unk>" as added tokens with the ids
     * they have in the vocabulary; a vocabulary without them would get new
     * ids past its end, which no SigLIP checkpoint has. */
    if (!sp_piece_exists(sp, kEos, 4) || !sp_piece_exists(sp, kUnk, 5)) {
        const char *missing = sp_piece_exists(sp, kEos, 4) ? kUnk : kEos;
        tok_free(t);
        return prism_errorf(err, "the SentencePiece model has no '%s' piece, which SigLIP's "
                                 "tokenizer needs",
                            missing);
    }
    t->eos_id = sp_piece_to_id(sp, kEos, 4);
    t->unk_tok_id = sp_piece_to_id(sp, kUnk, 5);
    sp_encoding enc = {0};
    if (sp_encode(sp, kUnk, 5, &enc, err) != 0) {
        sp_encoding_free(&enc);
        tok_free(t);
        return -1;
    }
    t->unk_prefix_pieces = enc.n_pieces;
    t->prefix_cuts = sp_model_space_is_boundary(sp);
    sp_encoding_free(&enc);
    *out = t;
    return 0;
}

int tok_load_memory(tok_tokenizer **out, const void *data, size_t len, const char *name,
                    prism_error *err)
{
    *out = NULL;
    sp_model *sp;
    if (sp_model_load_memory(&sp, data, len, name, err) != 0)
        return -1;
    if (tok_init(out, sp, err) != 0)
        return prism_error_prefix(err, "%s", name);
    return 0;
}

int tok_load_file(tok_tokenizer **out, const char *spiece_path, prism_error *err)
{
    *out = NULL;
    sp_model *sp;
    if (sp_model_load_file(&sp, spiece_path, err) != 0)
        return -1;
    if (tok_init(out, sp, err) != 0)
        return prism_error_prefix(err, "%s", spiece_path);
    return 0;
}

static char *path_join(const char *dir, const char *file)
{
    size_t n = strlen(dir), f = strlen(file);
    char *p = malloc(n + 1 + f + 1);
    if (p) {
        memcpy(p, dir, n);
        p[n] = '/';
        memcpy(p + n + 1, file, f + 1);
    }
    return p;
}

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* SigLIP 2's settings from tokenizer_config.json (see tok_load). */
static int read_siglip2_config(const char *path, tok_siglip2_config *cfg, prism_error *err)
{
    char msg[256];
    json_value *root = json_parse_file(path, msg, sizeof msg);
    if (!root)
        return prism_errorf(err, "%s", msg);
    int rc = -1;
    const json_value *cls = json_get(root, "tokenizer_class");
    const json_value *bos = json_get(root, "add_bos_token");
    const json_value *eos = json_get(root, "add_eos_token");
    const json_value *side = json_get(root, "padding_side");
    const json_value *trunc = json_get(root, "truncation_side");
    if (root->type != JSON_OBJECT) {
        prism_errorf(err, "%s: not a JSON object", path);
    } else if (!cls || cls->type != JSON_STRING) {
        prism_errorf(err, "%s: no tokenizer_class string", path);
    } else if (strcmp(cls->string, "GemmaTokenizer") != 0 &&
               strcmp(cls->string, "GemmaTokenizerFast") != 0 &&
               strcmp(cls->string, "Siglip2Tokenizer") != 0) {
        prism_errorf(err,
                     "%s: tokenizer_class '%.64s' is not supported with tokenizer.model (only "
                     "GemmaTokenizer, GemmaTokenizerFast, Siglip2Tokenizer)",
                     path, cls->string);
    } else if (!bos || bos->type != JSON_BOOL || !eos || eos->type != JSON_BOOL) {
        prism_errorf(err, "%s: %s must be true or false", path,
                     !bos || bos->type != JSON_BOOL ? "add_bos_token" : "add_eos_token");
    } else if (side && !(side->type == JSON_STRING && (strcmp(side->string, "left") == 0 ||
                                                       strcmp(side->string, "right") == 0))) {
        prism_errorf(err, "%s: padding_side must be \"left\" or \"right\"", path);
    } else if (trunc && !(trunc->type == JSON_STRING && strcmp(trunc->string, "right") == 0)) {
        prism_errorf(err, "%s: truncation_side: only \"right\" is supported", path);
    } else {
        cfg->add_bos = bos->boolean;
        cfg->add_eos = eos->boolean;
        /* Siglip2Tokenizer.padding_side, the class default, is "left" */
        cfg->pad_left = !side || strcmp(side->string, "left") == 0;
        cfg->keep_case = false; /* Siglip2Tokenizer's lowercase; tok_load_gemma turns it off */
        rc = 0;
    }
    json_free(root);
    return rc;
}

/* tokenizer_config.json is there but neither model file is: names the file
 * its tokenizer_class needs (the hub's fast-only repos carry tokenizer.json,
 * which prism does not read). */
static void missing_model_file(const char *config, const char *spiece, const char *bpe,
                               prism_error *err)
{
    char msg[256];
    json_value *root = json_parse_file(config, msg, sizeof msg);
    const json_value *cls = root ? json_get(root, "tokenizer_class") : NULL;
    if (cls && cls->type == JSON_STRING) {
        const bool gemma = strncmp(cls->string, "Gemma", 5) == 0 ||
                           strcmp(cls->string, "Siglip2Tokenizer") == 0;
        prism_errorf(err, "%s: missing, and %s's tokenizer_class '%.64s' needs it",
                     gemma ? bpe : spiece, config, cls->string);
    } else {
        prism_errorf(err, "%s and %s: both missing, and %s has no tokenizer_class string",
                     spiece, bpe, config);
    }
    json_free(root);
}

int tok_load(tok_tokenizer **out, const char *model_dir, prism_error *err)
{
    *out = NULL;
    char *spiece = path_join(model_dir, "spiece.model");
    char *bpe = path_join(model_dir, "tokenizer.model");
    char *config = path_join(model_dir, "tokenizer_config.json");
    int rc = -1;
    if (!spiece || !bpe || !config) {
        prism_errorf(err, "out of memory");
    } else if (!file_exists(spiece) && !file_exists(bpe) && file_exists(config)) {
        missing_model_file(config, spiece, bpe, err);
    } else if (file_exists(spiece) || !file_exists(bpe)) {
        rc = tok_load_file(out, spiece, err);
        if (rc != 0 && !file_exists(spiece))
            prism_errorf(err, "%s: cannot open (and there is no tokenizer.model)", spiece);
    } else {
        tok_siglip2_config cfg;
        if (!file_exists(config))
            prism_errorf(err, "%s: cannot open: %s (needed with tokenizer.model for "
                              "tokenizer_class, add_bos_token, add_eos_token)",
                         config, strerror(errno));
        else if (read_siglip2_config(config, &cfg, err) == 0)
            rc = tok_load_siglip2_file(out, bpe, &cfg, err);
    }
    free(spiece);
    free(bpe);
    free(config);
    return rc;
}

static int added_insert(tok_tokenizer *t, const char *s, size_t n, int32_t id);

/* tokenizer_config.json's added_tokens_decoder: {"ID": {"content", "special"}}.
 * Ids past the pieces become added tokens (a hub PaliGemma's "<image>");
 * "special": true marks an id that decode skips with skip_special. */
static int gemma_added_tokens(tok_tokenizer *t, const char *path, prism_error *err)
{
    char msg[256];
    json_value *root = json_parse_file(path, msg, sizeof msg);
    if (!root)
        return prism_errorf(err, "%s", msg);
    const json_value *ad = json_get(root, "added_tokens_decoder");
    int rc = 0;
    int32_t top = sp_model_piece_count(t->sp);
    for (size_t i = 0; ad && ad->type == JSON_OBJECT && i < ad->count; i++) {
        char *end;
        long id = strtol(ad->keys[i], &end, 10);
        const json_value *e = &ad->items[i], *c = json_get(e, "content"), *sp = json_get(e, "special");
        if (*end || id < 0 || id > (1L << 24) || !c || c->type != JSON_STRING || !c->length) {
            rc = prism_errorf(err, "%s: added_tokens_decoder.%s must be {\"content\": a string, "
                              "\"special\": ...} under a token id", path, ad->keys[i]);
            break;
        }
        top = id + 1 > top ? (int32_t)id + 1 : top;
        (void)sp;
    }
    if (rc == 0 && !(t->special = calloc((size_t)top, 1)))
        rc = prism_errorf(err, "out of memory");
    t->n_special = top;
    for (size_t i = 0; rc == 0 && ad && ad->type == JSON_OBJECT && i < ad->count; i++) {
        const int32_t id = (int32_t)strtol(ad->keys[i], NULL, 10);
        const json_value *e = &ad->items[i], *c = json_get(e, "content"), *sp = json_get(e, "special");
        t->special[id] = sp && sp->type == JSON_BOOL && sp->boolean;
        if (id >= sp_model_piece_count(t->sp) && added_insert(t, c->string, c->length, id) != 0)
            rc = prism_errorf(err, "out of memory");
    }
    json_free(root);
    return rc;
}

int tok_load_gemma(tok_tokenizer **out, const char *model_dir, prism_error *err)
{
    *out = NULL;
    char *bpe = path_join(model_dir, "tokenizer.model");
    char *config = path_join(model_dir, "tokenizer_config.json");
    int rc = -1;
    tok_siglip2_config cfg;
    if (!bpe || !config)
        prism_errorf(err, "out of memory");
    else if (!file_exists(bpe))
        prism_errorf(err, "%s: cannot open (a Gemma tokenizer needs it)", bpe);
    else if (!file_exists(config))
        prism_errorf(err, "%s: cannot open: %s (needed with tokenizer.model for "
                          "tokenizer_class, add_bos_token, add_eos_token)", config, strerror(errno));
    else if (read_siglip2_config(config, &cfg, err) == 0) {
        cfg.keep_case = true;
        rc = tok_load_siglip2_file(out, bpe, &cfg, err);
        if (rc == 0 && (rc = gemma_added_tokens(*out, config, err)) != 0) {
            tok_free(*out);
            *out = NULL;
        }
    }
    free(bpe);
    free(config);
    return rc;
}

void tok_free(tok_tokenizer *t)
{
    if (!t)
        return;
    sp_model_free(t->sp);
    free(t->added);
    free(t->special);
    free(t);
}

const sp_model *tok_model(const tok_tokenizer *t)
{
    return t->sp;
}

int32_t tok_vocab_size(const tok_tokenizer *t)
{
    return sp_model_piece_count(t->sp);
}

int32_t tok_eos_id(const tok_tokenizer *t)
{
    return t->eos_id;
}

int32_t tok_pad_id(const tok_tokenizer *t)
{
    return t->kind != TOK_KIND_SIGLIP ? t->pad_id : t->eos_id;
}

tok_kind tok_get_kind(const tok_tokenizer *t)
{
    return t->kind;
}

bool tok_pads_left(const tok_tokenizer *t)
{
    return t->kind != TOK_KIND_SIGLIP && t->pad_left;
}

/* ---- canonicalisation ---- */

static bool is_ascii_punct(uint32_t c)
{
    /* string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ */
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
}

int tok_siglip_canonicalize(const char *text, size_t len, sp_buf *out, prism_error *err)
{
    sp_buf_clear(out);
    if (sp_buf_append(out, "", 0) != 0)
        return prism_errorf(err, "out of memory");
    if (len == 0)
        return 0;
    if (len > SIZE_MAX / sizeof(uint32_t))
        return prism_errorf(err, "text too long");
    uint32_t *cps = malloc(len * sizeof *cps);
    if (!cps)
        return prism_errorf(err, "out of memory canonicalising %zu bytes", len);
    size_t bad;
    long n = tok_utf8_decode_strict(text, len, cps, &bad);
    if (n < 0) {
        free(cps);
        return prism_errorf(err, "text is not valid UTF-8 (byte %zu)", bad);
    }

    /* lower(), then remove_punctuation, then re.sub(r"\s+", " "), then
     * strip(): drop punctuation, emit one space for each whitespace run
     * between kept characters, none at either end. Lowering looks at the
     * whole chunk (final sigma), so it runs on the decoded code points. */
    bool pending_space = false;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        uint32_t low[3];
        size_t nl = tok_unicode_lower_at(cps, (size_t)n, (size_t)i, low);
        for (size_t k = 0; k < nl && rc == 0; k++) {
            uint32_t c = low[k];
            if (c < 0x80 && is_ascii_punct(c))
                continue;
            if (tok_unicode_is_space(c)) {
                pending_space = out->len > 0;
                continue;
            }
            if (pending_space)
                rc = sp_buf_append(out, " ", 1);
            pending_space = false;
            char u8[4];
            if (rc == 0)
                rc = sp_buf_append(out, u8, tok_utf8_encode(c, u8));
        }
    }
    free(cps);
    if (rc != 0)
        return prism_errorf(err, "out of memory");
    return 0;
}

/* ---- encoding ---- */

typedef struct id_list {
    int32_t *ids;
    size_t n, cap;
    /* The first two tokens' strings matter to step 4: */
    bool first_is_space; /* tokens[0] == "▁" */
    bool second_is_special;
} id_list;

static int ids_push(id_list *l, int32_t id, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *ni = realloc(l->ids, cap * sizeof *ni);
        if (!ni)
            return -1;
        l->ids = ni;
        l->cap = cap;
    }
    if (l->n == 0)
        l->first_is_space = n == 3 && memcmp(s, kSpace, 3) == 0;
    else if (l->n == 1)
        l->second_is_special =
            (n == 4 && memcmp(s, kEos, 4) == 0) || (n == 5 && memcmp(s, kUnk, 5) == 0);
    l->ids[l->n++] = id;
    return 0;
}

/* SiglipTokenizer._tokenize on one chunk between special tokens. A
 * `partial` chunk is a prefix of the text's chunk that ends before a
 * whitespace character: only the ids it shares with the whole chunk are
 * appended (see "reading a prefix" below). */
static int tokenize_chunk(const tok_tokenizer *t, const char *s, size_t n, bool partial,
                          id_list *out, sp_buf *canon, sp_buf *input, sp_encoding *enc,
                          prism_error *err)
{
    if (tok_siglip_canonicalize(s, n, canon, err) != 0)
        return -1;
    sp_buf_clear(input);
    if (sp_buf_append(input, kUnk, 5) != 0 || sp_buf_append(input, canon->data, canon->len) != 0)
        return prism_errorf(err, "out of memory");
    if (sp_encode(t->sp, input->data, input->len, enc, err) != 0)
        return -1;
    size_t from = enc->n_pieces >= t->unk_prefix_pieces ? t->unk_prefix_pieces : 0;
    size_t to = enc->n_pieces;
    if (partial) {
        from = t->unk_prefix_pieces;
        to = enc->n_pieces > 0 ? enc->n_pieces - 1 : 0;
    }
    for (size_t i = from; i < to; i++) {
        const sp_piece *p = &enc->pieces[i];
        /* convert_tokens_to_ids: by piece string (a merged run of unknown
         * characters is not a piece, so it maps to the unknown id) */
        int32_t id = sp_piece_to_id(t->sp, p->str, p->len);
        if (ids_push(out, id, p->str, p->len) != 0)
            return prism_errorf(err, "out of memory");
    }
    return 0;
}

/* Length of the special token at s (0: none). */
static size_t special_at(const char *s, size_t n)
{
    if (n >= 4 && memcmp(s, kEos, 4) == 0)
        return 4;
    if (n >= 5 && memcmp(s, kUnk, 5) == 0)
        return 5;
    return 0;
}

/* Steps 1-3 over text[0..len) (valid UTF-8), appending to l. `prefix`: the
 * text is a prefix of the caller's, cut before a whitespace character or
 * after a special token; its last chunk is then partial. */
static int collect_ids(const tok_tokenizer *t, const char *text, size_t len, bool prefix,
                       id_list *l, prism_error *err)
{
    /* Step 1: "▁" + text.replace("▁", " "). */
    sp_buf s = {0}, canon = {0}, input = {0};
    sp_encoding enc = {0};
    int rc = -1;
    if (sp_buf_append(&s, kSpace, 3) != 0)
        goto oom;
    for (size_t i = 0; i < len;) {
        if (len - i >= 3 && memcmp(text + i, kSpace, 3) == 0) {
            if (sp_buf_append(&s, " ", 1) != 0)
                goto oom;
            i += 3;
        } else {
            size_t j = i + 1;
            while (j < len && !(len - j >= 3 && memcmp(text + j, kSpace, 3) == 0))
                j++;
            if (sp_buf_append(&s, text + i, j - i) != 0)
                goto oom;
            i = j;
        }
    }

    /* Steps 2-3: split around special tokens, tokenize the chunks. */
    size_t chunk = 0;
    for (size_t i = 0; i <= s.len;) {
        size_t k = i < s.len ? special_at(s.data + i, s.len - i) : 0;
        if (k == 0 && i < s.len) {
            i++;
            continue;
        }
        if (i > chunk && tokenize_chunk(t, s.data + chunk, i - chunk, prefix && k == 0, l,
                                        &canon, &input, &enc, err) != 0)
            goto out;
        if (k == 0)
            break; /* end of text */
        if (ids_push(l, k == 4 ? t->eos_id : t->unk_tok_id, s.data + i, k) != 0)
            goto oom;
        i += k;
        chunk = i;
    }
    rc = 0;
    goto out;
oom:
    prism_errorf(err, "out of memory tokenizing %zu bytes", len);
out:
    sp_buf_free(&s);
    sp_buf_free(&canon);
    sp_buf_free(&input);
    sp_encoding_free(&enc);
    return rc;
}

/* ---- reading a prefix ----
 *
 * Only the first max_len - 1 ids survive truncation, so the encoder reads
 * a prefix P of the text, cut at a position c where the text has a
 * whitespace character (re's \s) or "▁", or right after a special token,
 * and keeps the ids of P that are provably the first ids of the whole text
 * T; when they are at least max_len + 1 (step 4 may drop one, step 5 keeps
 * max_len - 1 of the rest, and the whole text has at least as many), the
 * result is T's. Why P's ids, but the last one of its last chunk, begin
 * T's:
 *   - step 1 maps characters one for one, and special tokens contain no
 *     whitespace, so P's chunks and special tokens are T's up to the chunk
 *     that holds c, of which P has a prefix Q ending before the whitespace W;
 *   - canonicalisation of Q + W + Q': lowering is per character except the
 *     final-sigma rule, whose look-around stops at whitespace (neither
 *     cased nor case-ignorable); punctuation removal is per character; W
 *     turns the following text into nothing or " " + more. So canon(T's
 *     chunk) = canon(Q) + Z with Z empty or starting with " ", unless
 *     canon(Q) is empty, in which case "<unk>" alone gives no kept piece;
 *   - sp_model_space_is_boundary (checked at load): the pieces of
 *     "<unk>" + canon(Q) except the last are the first pieces of
 *     "<unk>" + canon(Q) + Z; that is at least n - 1 pieces, so the same
 *     unk_prefix_pieces are dropped from both.
 * A text with no cut position past the window is read whole. Each try
 * doubles the window, so all tries together read about twice the last. */

/* First window in bytes per id kept: generous for any language with
 * spaces, so that one try is the rule (16 bytes per id). */
#define TOK_WINDOW_BYTES_PER_ID 16

static bool cut_char(const char *text, size_t len, size_t i)
{
    unsigned char c = (unsigned char)text[i];
    if (c < 0x80)
        return tok_unicode_is_space(c);
    if (len - i >= 3 && memcmp(text + i, kSpace, 3) == 0)
        return true;
    uint32_t cp;
    size_t bad, n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    return n <= len - i && tok_utf8_decode_strict(text + i, n, &cp, &bad) == 1 &&
           tok_unicode_is_space(cp);
}

/* The first cut position at or after `from` (text is valid UTF-8), or len. */
static size_t next_cut(const char *text, size_t len, size_t from)
{
    size_t i = from;
    while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
        i++; /* to a character start */
    for (; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0) == 0x80)
            continue;
        if (cut_char(text, len, i))
            return i;
        if ((i >= 4 && memcmp(text + i - 4, kEos, 4) == 0) ||
            (i >= 5 && memcmp(text + i - 5, kUnk, 5) == 0))
            return i;
    }
    return len;
}

static size_t sat_mul(size_t a, size_t b)
{
    return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* Steps 1-3 for the first max_len + 1 ids or all of them: a prefix when
 * one suffices, else the whole text. *read: the bytes tokenized. */
static int collect_kept_ids(const tok_tokenizer *t, const char *text, size_t len, int max_len,
                            id_list *l, size_t *read, prism_error *err)
{
    const size_t need = (size_t)max_len + 1;
    size_t window = sat_mul(need, TOK_WINDOW_BYTES_PER_ID);
    while (t->prefix_cuts && window < len) {
        size_t cut = next_cut(text, len, window);
        if (cut >= len)
            break;
        l->n = 0;
        if (collect_ids(t, text, cut, true, l, err) != 0)
            return -1;
        if (l->n >= need) {
            *read = cut;
            return 0;
        }
        window = sat_mul(cut, 2);
    }
    l->n = 0;
    *read = len;
    return collect_ids(t, text, len, false, l, err);
}

static int check_utf8(const char *text, size_t len, prism_error *err)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp;
        size_t bad;
        if (need == 0 || need > len - i || tok_utf8_decode_strict(text + i, need, &cp, &bad) != 1)
            return prism_errorf(err, "text is not valid UTF-8 (byte %zu)", i);
        i += need;
    }
    return 0;
}

/* ==================================================================
 * SigLIP 2: transformers' Siglip2Tokenizer over a Gemma tokenizer.model
 *
 * Siglip2Tokenizer (tokenization_siglip2.py) is the Gemma tokenizer of
 * the tokenizers library with a Lowercase normaliser in front: transformers'
 * GemmaConverter turns the SentencePiece BPE file into a BPE model
 * (byte_fallback, fuse_unk, merges from generate_merges) whose every
 * control and user-defined piece is an added token. For a text:
 *   1. the added tokens (here: every CONTROL, USER_DEFINED and UNKNOWN
 *      piece) are split out of the raw text, leftmost-longest, and map to
 *      their ids;
 *   2. each chunk between them: every character lowered on its own (Rust's
 *      char::to_lowercase: no final-sigma rule; a few characters newer than
 *      Python 3.11's Unicode 14 included, kLowerExtra), ' ' becomes ▁, then
 *      sp_bpe_encode_tokenizers (SP_BPE_TOKENIZERS: merges may cross
 *      spaces; nothing collapses or strips whitespace);
 *   3. the ids are cut to max_len minus the special tokens to add, <bos>
 *      (add_bos_token) and <eos> (add_eos_token) are added, and <pad>
 *      fills up to max_len on the padding side (left by default).
 * ================================================================== */

/* Lowercase mappings that Rust's tables (Unicode 16) have and Python 3.11's
 * (Unicode 14) lack: code points unassigned in Unicode 14. */
static const struct {
    uint32_t first, last, to_first;
} kLowerExtra[] = {
    {0x1C89, 0x1C89, 0x1C8A},   {0xA7CB, 0xA7CB, 0x0264},   {0xA7CC, 0xA7CC, 0xA7CD},
    {0xA7CE, 0xA7CE, 0xA7CF},   {0xA7D2, 0xA7D2, 0xA7D3},   {0xA7D4, 0xA7D4, 0xA7D5},
    {0xA7DA, 0xA7DA, 0xA7DB},   {0xA7DC, 0xA7DC, 0x019B},   {0x10D50, 0x10D65, 0x10D70},
    {0x16EA0, 0x16EB8, 0x16EBB},
};

/* Rust's char::to_lowercase of one character (1 to 3 code points). */
static size_t lower_char(uint32_t cp, uint32_t out[3])
{
    for (size_t k = 0; k < sizeof kLowerExtra / sizeof kLowerExtra[0]; k++)
        if (cp >= kLowerExtra[k].first && cp <= kLowerExtra[k].last) {
            out[0] = kLowerExtra[k].to_first + (cp - kLowerExtra[k].first);
            return 1;
        }
    return tok_unicode_lower_at(&cp, 1, 0, out); /* alone: no final-sigma context */
}

/* The added tokens, in a byte trie (first-child / next-sibling lists). */
typedef struct added_node {
    int32_t child, sibling, id; /* id: the piece ending here, or -1 */
    unsigned char byte;
} added_node;

static int added_insert(tok_tokenizer *t, const char *s, size_t n, int32_t id)
{
    int32_t node = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        int32_t ch = t->added[node].child;
        while (ch >= 0 && t->added[ch].byte != c)
            ch = t->added[ch].sibling;
        if (ch < 0) {
            if (t->n_added == t->cap_added) {
                size_t cap = t->cap_added * 2;
                added_node *na = realloc(t->added, cap * sizeof *na);
                if (!na)
                    return -1;
                t->added = na;
                t->cap_added = cap;
            }
            ch = (int32_t)t->n_added++;
            t->added[ch] = (added_node){-1, t->added[node].child, -1, c};
            t->added[node].child = ch;
        }
        node = ch;
    }
    t->added[node].id = id;
    return 0;
}

/* Longest added token at s (its length, 0: none; *id its id). */
static size_t added_match(const tok_tokenizer *t, const char *s, size_t n, int32_t *id)
{
    size_t best = 0;
    int32_t node = 0;
    for (size_t k = 0; k < n; k++) {
        int32_t ch = t->added[node].child;
        while (ch >= 0 && t->added[ch].byte != (unsigned char)s[k])
            ch = t->added[ch].sibling;
        if (ch < 0)
            break;
        node = ch;
        if (t->added[node].id >= 0) {
            best = k + 1;
            *id = t->added[node].id;
        }
    }
    return best;
}

/* Whether a cut before a space (see "reading a prefix" for SigLIP 2) is a
 * boundary: no piece holds ' ' or a character other than ▁ followed by ▁,
 * and ▁ is a piece. */
static bool siglip2_cuts_hold(const sp_model *sp)
{
    int32_t n = sp_model_piece_count(sp);
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *p = sp_id_to_piece(sp, id, &len);
        if (memchr(p, ' ', len))
            return false;
        for (size_t i = 1; i + 3 <= len; i++)
            if (memcmp(p + i, kSpace, 3) == 0 && !(i >= 3 && memcmp(p + i - 3, kSpace, 3) == 0))
                return false;
    }
    return sp_piece_exists(sp, kSpace, 3);
}

static int siglip2_init(tok_tokenizer **out, sp_model *sp, const tok_siglip2_config *cfg,
                        prism_error *err)
{
    *out = NULL;
    if (sp_model_get_type(sp) != SP_MODEL_BPE) {
        sp_model_free(sp);
        return prism_errorf(err, "trainer_spec.model_type is not BPE, which the Gemma "
                                 "tokenizer of SigLIP 2 is");
    }
    /* transformers' GemmaConverter puts its pad, eos and bos tokens at ids 0-2
     * and Siglip2Tokenizer's defaults name these five; other layouts would get
     * other ids there. */
    static const char *const layout[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<mask>"};
    for (int32_t i = 0; i < 5; i++) {
        size_t len;
        const char *p = sp_id_to_piece(sp, i, &len);
        if (!p || len != strlen(layout[i]) || memcmp(p, layout[i], len) != 0) {
            sp_model_free(sp);
            return prism_errorf(err,
                                "piece %d is not '%s' (the Gemma layout <pad> <eos> <bos> <unk> "
                                "<mask> that SigLIP 2's tokenizer assumes)",
                                (int)i, layout[i]);
        }
    }
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        sp_model_free(sp);
        return prism_errorf(err, "out of memory");
    }
    t->sp = sp;
    t->kind = TOK_KIND_SIGLIP2;
    t->pad_id = 0;
    t->eos_id = 1;
    t->bos_id = 2;
    t->unk_tok_id = 3;
    t->add_bos = cfg->add_bos;
    t->add_eos = cfg->add_eos;
    t->pad_left = cfg->pad_left;
    t->lowercase = !cfg->keep_case;
    if (cfg->keep_case)
        t->kind = TOK_KIND_GEMMA;
    t->cap_added = 256;
    t->added = malloc(t->cap_added * sizeof *t->added);
    if (!t->added) {
        tok_free(t);
        return prism_errorf(err, "out of memory");
    }
    t->added[0] = (added_node){-1, -1, -1, 0};
    t->n_added = 1;
    for (int32_t id = 0; id < sp_model_piece_count(sp); id++) {
        sp_piece_type ty = sp_id_type(sp, id);
        if (ty != SP_CONTROL && ty != SP_USER_DEFINED && ty != SP_UNKNOWN)
            continue;
        size_t len;
        const char *p = sp_id_to_piece(sp, id, &len);
        if (added_insert(t, p, len, id) != 0) {
            tok_free(t);
            return prism_errorf(err, "out of memory");
        }
    }
    t->prefix_cuts = siglip2_cuts_hold(sp);
    *out = t;
    return 0;
}

int tok_load_siglip2_memory(tok_tokenizer **out, const void *data, size_t len, const char *name,
                            const tok_siglip2_config *cfg, prism_error *err)
{
    *out = NULL;
    sp_model *sp;
    if (sp_model_load_memory(&sp, data, len, name, err) != 0)
        return -1;
    if (siglip2_init(out, sp, cfg, err) != 0)
        return prism_error_prefix(err, "%s", name);
    return 0;
}

int tok_load_siglip2_file(tok_tokenizer **out, const char *model_path,
                          const tok_siglip2_config *cfg, prism_error *err)
{
    *out = NULL;
    sp_model *sp;
    if (sp_model_load_file(&sp, model_path, err) != 0)
        return -1;
    if (siglip2_init(out, sp, cfg, err) != 0)
        return prism_error_prefix(err, "%s", model_path);
    return 0;
}

/* Step 2 for one chunk: lower each character (SigLIP 2), ' ' -> ▁, BPE. */
static int siglip2_chunk(const tok_tokenizer *t, const char *s, size_t n, sp_buf *norm,
                         sp_ids *l, prism_error *err)
{
    sp_buf_clear(norm);
    for (size_t j = 0; j < n;) {
        unsigned char c = (unsigned char)s[j];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t cp, low[3];
        size_t bad;
        if (k > n - j || tok_utf8_decode_strict(s + j, k, &cp, &bad) != 1)
            return prism_errorf(err, "text is not valid UTF-8");
        j += k;
        if (cp == ' ') {
            if (sp_buf_append(norm, kSpace, 3) != 0)
                return prism_errorf(err, "out of memory");
            continue;
        }
        size_t nl = t->lowercase ? lower_char(cp, low) : (low[0] = cp, 1);
        for (size_t q = 0; q < nl; q++) {
            char u8[4];
            if (sp_buf_append(norm, u8, tok_utf8_encode(low[q], u8)) != 0)
                return prism_errorf(err, "out of memory");
        }
    }
    return sp_bpe_encode_tokenizers(t->sp, norm->data, norm->len, l, err);
}

/* Steps 1-2 over text[0..len) (valid UTF-8), appending ids to l. */
static int siglip2_collect(const tok_tokenizer *t, const char *text, size_t len, sp_ids *l,
                           prism_error *err)
{
    sp_buf norm = {0};
    int rc = 0;
    size_t chunk = 0;
    for (size_t i = 0; i <= len;) {
        int32_t id = -1;
        size_t k = i < len ? added_match(t, text + i, len - i, &id) : 0;
        if (k == 0 && i < len) {
            i++;
            continue;
        }
        if (i > chunk && (rc = siglip2_chunk(t, text + chunk, i - chunk, &norm, l, err)) != 0)
            break;
        if (k == 0)
            break; /* end of text */
        if (sp_ids_push(l, id) != 0) {
            rc = prism_errorf(err, "out of memory tokenizing %zu bytes", len);
            break;
        }
        i += k;
        chunk = i;
    }
    sp_buf_free(&norm);
    return rc;
}

/* ---- reading a prefix (SigLIP 2) ----
 *
 * A cut at c, where the raw text has ' ' or ▁ and the character before it
 * is neither, when siglip2_cuts_hold: no piece holds ' ' or has a character
 * other than ▁ right before a ▁. Then no added token matches across c (it
 * would hold that character followed by ' ' or ▁), so the text's chunks
 * and added tokens before c are the prefix's; lowering works character by
 * character and never makes or removes a ▁; in the BPE of the chunk that
 * holds c, a symbol across c would be a piece with a character other than ▁
 * before a ▁ (or two characters, none a piece, joined), so no merge ever
 * joins the two sides and each side merges as it would alone (the order of
 * merges on one side does not depend on the other). Every id of the prefix
 * is then one of the whole text's first ids, and K of them settle the
 * result. The windows grow as for SigLIP. A text without such a cut (no
 * spaces: Chinese, Japanese, Thai, or megabytes of one word) is read whole:
 * O(n log n) time and about 100 bytes of memory per byte of text; the
 * server bounds n with max-text-bytes. */

static bool siglip2_is_space_at(const char *text, size_t len, size_t i)
{
    return text[i] == ' ' || (len - i >= 3 && memcmp(text + i, kSpace, 3) == 0);
}

static size_t siglip2_next_cut(const char *text, size_t len, size_t from)
{
    for (size_t i = from > 0 ? from : 1; i < len; i++) {
        if (!siglip2_is_space_at(text, len, i))
            continue;
        /* the character before i */
        size_t p = i - 1;
        while (p > 0 && ((unsigned char)text[p] & 0xC0) == 0x80)
            p--;
        if (!siglip2_is_space_at(text, len, p))
            return i;
    }
    return len;
}

static int siglip2_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                          int max_len, int *n_tokens, bool whole, size_t *bytes_tokenized,
                          prism_error *err)
{
    const int n_special = (int)t->add_bos + (int)t->add_eos;
    if (max_len <= n_special)
        return prism_errorf(err, "max_len must be more than %d (got %d)", n_special, max_len);
    if (len > 0 && !text)
        return prism_errorf(err, "text is NULL");
    if (check_utf8(text, len, err) != 0)
        return -1;
    const size_t keep_max = (size_t)(max_len - n_special);
    sp_ids l = {0};
    size_t read = len;
    int rc = 0;
    bool done = false;
    size_t window = sat_mul(keep_max, TOK_WINDOW_BYTES_PER_ID);
    while (!whole && t->prefix_cuts && window < len && !done) {
        size_t cut = siglip2_next_cut(text, len, window);
        if (cut >= len)
            break;
        l.n = 0;
        if ((rc = siglip2_collect(t, text, cut, &l, err)) != 0)
            break;
        if (l.n >= keep_max) {
            read = cut;
            done = true;
        }
        window = sat_mul(cut, 2);
    }
    if (rc == 0 && !done) {
        l.n = 0;
        rc = siglip2_collect(t, text, len, &l, err);
    }
    if (rc != 0) {
        free(l.ids);
        return -1;
    }
    if (bytes_tokenized)
        *bytes_tokenized = read;
    const size_t keep = l.n < keep_max ? l.n : keep_max;
    const int n = (int)keep + n_special;
    const int pad = max_len - n;
    int w = t->pad_left ? pad : 0;
    if (t->add_bos)
        ids[w++] = t->bos_id;
    for (size_t i = 0; i < keep; i++)
        ids[w++] = l.ids[i];
    if (t->add_eos)
        ids[w++] = t->eos_id;
    for (int i = 0; i < pad; i++)
        ids[t->pad_left ? i : n + i] = t->pad_id;
    if (n_tokens)
        *n_tokens = n;
    free(l.ids);
    return 0;
}

static int siglip_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                         int max_len, int *n_tokens, bool whole, size_t *bytes_tokenized,
                         prism_error *err)
{
    if (t->kind != TOK_KIND_SIGLIP)
        return siglip2_encode(t, text, len, ids, max_len, n_tokens, whole, bytes_tokenized, err);
    if (max_len < 1)
        return prism_errorf(err, "max_len must be at least 1 (got %d)", max_len);
    if (len > 0 && !text)
        return prism_errorf(err, "text is NULL");
    /* Validate all of it first, so that every error names the caller's byte
     * offset, wherever the cut falls. */
    if (check_utf8(text, len, err) != 0)
        return -1;

    id_list l = {0};
    size_t read = len;
    int rc = whole ? collect_ids(t, text, len, false, &l, err)
                   : collect_kept_ids(t, text, len, max_len, &l, &read, err);
    if (rc != 0) {
        free(l.ids);
        return -1;
    }
    if (bytes_tokenized)
        *bytes_tokenized = read;

    /* Step 4 (SiglipTokenizer.tokenize). */
    size_t first = 0;
    if (l.n > 1 && l.first_is_space && l.second_is_special)
        first = 1;
    size_t n = l.n - first;
    const int32_t *seq = n ? l.ids + first : NULL;

    /* Step 5: prepare_for_model with one special token to add. */
    size_t keep = n;
    if (n + 1 > (size_t)max_len)
        keep = (size_t)max_len - 1;
    size_t w = 0;
    for (; w < keep; w++)
        ids[w] = seq[w];
    if (w == 0 || ids[w - 1] != t->eos_id)
        ids[w++] = t->eos_id;
    if (n_tokens)
        *n_tokens = (int)w;
    for (; w < (size_t)max_len; w++)
        ids[w] = t->eos_id; /* pad_token "</s>" */
    free(l.ids);
    return 0;
}

int tok_siglip_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                      int max_len, int *n_tokens, prism_error *err)
{
    return siglip_encode(t, text, len, ids, max_len, n_tokens, false, NULL, err);
}

int tok_siglip_encode_counted(const tok_tokenizer *t, const char *text, size_t len,
                              int32_t *ids, int max_len, int *n_tokens,
                              size_t *bytes_tokenized, prism_error *err)
{
    return siglip_encode(t, text, len, ids, max_len, n_tokens, false, bytes_tokenized, err);
}

int tok_siglip_encode_whole(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                            int max_len, int *n_tokens, prism_error *err)
{
    return siglip_encode(t, text, len, ids, max_len, n_tokens, true, NULL, err);
}

/* ---- plain SentencePiece encoding with a piece limit ---- */

/* The first space at or after `from`, or len. */
static size_t next_space(const char *text, size_t len, size_t from)
{
    const char *p = from < len ? memchr(text + from, ' ', len - from) : NULL;
    return p ? (size_t)(p - text) : len;
}

int tok_sp_encode_bounded(const tok_tokenizer *t, const char *text, size_t len,
                          size_t max_pieces, sp_encoding *enc, size_t *n_pieces,
                          size_t *bytes_tokenized, prism_error *err)
{
    /* A prefix A cut before a space: sp_model_space_is_boundary makes all
     * of A's pieces but one the first pieces of the text, so more than
     * max_pieces + 1 of them settle the answer. */
    size_t window = sat_mul(sat_mul(max_pieces, 2) + 2, TOK_WINDOW_BYTES_PER_ID / 2);
    while (t->prefix_cuts && window < len) {
        size_t cut = next_space(text, len, window);
        if (cut >= len)
            break;
        if (sp_encode(t->sp, text, cut, enc, err) != 0)
            return -1;
        if (enc->n_pieces > max_pieces + 1) {
            *n_pieces = enc->n_pieces - 1;
            if (bytes_tokenized)
                *bytes_tokenized = cut;
            enc->n_pieces = 0;
            return 1;
        }
        window = sat_mul(cut, 2);
    }
    if (sp_encode(t->sp, text, len, enc, err) != 0)
        return -1;
    *n_pieces = enc->n_pieces;
    if (bytes_tokenized)
        *bytes_tokenized = len;
    return 0;
}

/* ---- decoding ---- */

static bool is_special_str(const char *s, size_t n)
{
    return (n == 4 && memcmp(s, kEos, 4) == 0) || (n == 5 && memcmp(s, kUnk, 5) == 0);
}

/* Python's str.strip(): Unicode whitespace off both ends. */
static void strip_unicode_space(const char *s, size_t n, size_t *begin, size_t *end)
{
    size_t b = 0, e = n;
    while (b < e) {
        size_t k = 1;
        while (k < 4 && b + k < e && ((unsigned char)s[b + k] & 0xC0) == 0x80)
            k++;
        uint32_t cp;
        size_t bad;
        if (tok_utf8_decode_strict(s + b, k, &cp, &bad) != 1 || !tok_unicode_is_space(cp))
            break;
        b += k;
    }
    while (e > b) {
        size_t k = 1;
        while (k < 4 && e - k > b && ((unsigned char)s[e - k] & 0xC0) == 0x80)
            k++;
        uint32_t cp;
        size_t bad;
        if (tok_utf8_decode_strict(s + e - k, k, &cp, &bad) != 1 || !tok_unicode_is_space(cp))
            break;
        e -= k;
    }
    *begin = b;
    *end = e;
}

int tok_siglip_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                      char **out, size_t *out_len, prism_error *err)
{
    *out = NULL;
    if (t->kind != TOK_KIND_SIGLIP)
        return prism_errorf(err, "a Gemma tokenizer decodes with tok_gemma_decode");
    sp_buf text = {0}, part = {0};
    sp_piece *cur = malloc((n ? n : 1) * sizeof *cur);
    size_t n_cur = 0;
    bool prev_special = false;
    if (!cur || sp_buf_append(&text, "", 0) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (skip_special && (id == t->eos_id || id == t->unk_tok_id))
            continue;
        size_t pl;
        const char *p = sp_id_to_piece(t->sp, id, &pl);
        if (!p) {
            prism_errorf(err, "invalid token id %d (the vocabulary has %d pieces)", id,
                         sp_model_piece_count(t->sp));
            goto fail;
        }
        if (is_special_str(p, pl)) {
            if (!prev_special && sp_buf_append(&text, " ", 1) != 0)
                goto oom;
            if (sp_decode_pieces(t->sp, cur, n_cur, &part, err) != 0)
                goto fail;
            if (sp_buf_append(&text, part.data, part.len) != 0 ||
                sp_buf_append(&text, p, pl) != 0)
                goto oom;
            prev_special = true;
            n_cur = 0;
        } else {
            cur[n_cur++] = (sp_piece){p, pl, id};
            prev_special = false;
        }
    }
    if (sp_decode_pieces(t->sp, cur, n_cur, &part, err) != 0)
        goto fail;
    if (sp_buf_append(&text, part.data, part.len) != 0)
        goto oom;
    size_t b, e;
    strip_unicode_space(text.data, text.len, &b, &e);
    char *res = malloc(e - b + 1);
    if (!res)
        goto oom;
    memcpy(res, text.data + b, e - b);
    res[e - b] = '\0';
    *out = res;
    if (out_len)
        *out_len = e - b;
    free(cur);
    sp_buf_free(&text);
    sp_buf_free(&part);
    return 0;
oom:
    prism_errorf(err, "out of memory decoding");
fail:
    free(cur);
    sp_buf_free(&text);
    sp_buf_free(&part);
    return -1;
}

/* ---- Gemma (PaliGemma) ---- */

int tok_add_token(tok_tokenizer *t, const char *s, int32_t id, prism_error *err)
{
    if (t->kind == TOK_KIND_SIGLIP)
        return prism_errorf(err, "not a Gemma tokenizer");
    if (!s[0] || id < 0)
        return prism_errorf(err, "an added token needs text and an id");
    if (added_insert(t, s, strlen(s), id) != 0)
        return prism_errorf(err, "out of memory");
    return 0;
}

int tok_gemma_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                     int max, int *n, prism_error *err)
{
    *n = 0;
    if (t->kind == TOK_KIND_SIGLIP)
        return prism_errorf(err, "not a Gemma tokenizer");
    if (len > 0 && !text)
        return prism_errorf(err, "text is NULL");
    if (check_utf8(text, len, err) != 0)
        return -1;
    sp_ids l = {0};
    if (siglip2_collect(t, text, len, &l, err) != 0) {
        free(l.ids);
        return -1;
    }
    int rc = 0;
    if (l.n > (size_t)max)
        rc = prism_errorf(err, "the text is %zu tokens, more than %d", l.n, max);
    else {
        memcpy(ids, l.ids, l.n * sizeof *ids);
        *n = (int)l.n;
    }
    free(l.ids);
    return rc;
}

/* Appends the pending bytes of byte pieces: as they are when they form
 * valid UTF-8, else U+FFFD for each (tokenizers' ByteFallback decoder). */
static int flush_bytes(sp_buf *out, sp_buf *bytes)
{
    int rc = 0;
    if (bytes->len == 0)
        return 0;
    bool valid = true;
    for (size_t i = 0; i < bytes->len && valid;) {
        unsigned char c = (unsigned char)bytes->data[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t cp;
        size_t bad;
        if (k > bytes->len - i || tok_utf8_decode_strict(bytes->data + i, k, &cp, &bad) != 1)
            valid = false;
        i += k;
    }
    if (valid)
        rc = sp_buf_append(out, bytes->data, bytes->len);
    else
        for (size_t i = 0; i < bytes->len && rc == 0; i++)
            rc = sp_buf_append(out, "\xef\xbf\xbd", 3);
    sp_buf_clear(bytes);
    return rc;
}

int tok_gemma_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                     char **out, prism_error *err)
{
    *out = NULL;
    if (t->kind == TOK_KIND_SIGLIP)
        return prism_errorf(err, "not a Gemma tokenizer");
    sp_buf text = {0}, bytes = {0};
    int rc = sp_buf_append(&text, "", 0);
    const int32_t V = sp_model_piece_count(t->sp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const int32_t id = ids[i];
        if (id < 0 || id >= V) {
            if (!skip_special) {
                sp_buf_free(&text), sp_buf_free(&bytes);
                return prism_errorf(err, "token id %d is outside the vocabulary [0, %d)", id, V);
            }
            continue;
        }
        const sp_piece_type ty = sp_id_type(t->sp, id);
        size_t pl;
        const char *p = sp_id_to_piece(t->sp, id, &pl);
        if (ty == SP_BYTE && pl == 6) { /* <0xNN> */
            char hex[3] = {p[3], p[4], 0};
            const char b = (char)strtol(hex, NULL, 16);
            rc = sp_buf_append(&bytes, &b, 1);
            continue;
        }
        rc = flush_bytes(&text, &bytes);
        const bool special = ty == SP_CONTROL || ty == SP_UNKNOWN ||
                             (id < t->n_special && t->special[id]);
        if (rc || (skip_special && special))
            continue;
        for (size_t k = 0; k < pl && rc == 0;) { /* ▁ → ' ' */
            if (pl - k >= 3 && memcmp(p + k, kSpace, 3) == 0) {
                rc = sp_buf_append(&text, " ", 1);
                k += 3;
            } else {
                rc = sp_buf_append(&text, p + k, 1);
                k++;
            }
        }
    }
    if (rc == 0)
        rc = flush_bytes(&text, &bytes);
    sp_buf_free(&bytes);
    if (rc) {
        sp_buf_free(&text);
        return prism_errorf(err, "out of memory decoding");
    }
    char *res = malloc(text.len + 1);
    if (!res) {
        sp_buf_free(&text);
        return prism_errorf(err, "out of memory decoding");
    }
    memcpy(res, text.data, text.len);
    res[text.len] = '\0';
    *out = res;
    sp_buf_free(&text);
    return 0;
}
