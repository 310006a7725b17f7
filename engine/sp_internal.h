/* sp_internal.h - types shared by the SentencePiece files (sp_proto.c,
 * sp_normalizer.c, sp_model.c); not part of the engine's interface.
 */
#ifndef PRISM_SP_INTERNAL_H
#define PRISM_SP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"
#include "sp_model.h"

/* A string inside the model file's bytes (not NUL-terminated). */
typedef struct sp_str {
    const char *data;
    size_t len;
} sp_str;

/* NormalizerSpec (also used for denormalizer_spec), with proto2 defaults,
 * plus the decoded precompiled charsmap. */
typedef struct sp_norm_spec {
    bool present;
    sp_str name;
    sp_str charsmap;
    bool add_dummy_prefix;         /* default true */
    bool remove_extra_whitespaces; /* default true */
    bool escape_whitespaces;       /* default true */
    /* Decoded charsmap: darts-clone units (little-endian uint32 each) and
     * the blob of NUL-terminated replacement strings. n_units == 0: none. */
    const uint8_t *units;
    uint32_t n_units;
    const char *repl;
    size_t repl_len;
} sp_norm_spec;

/* The TrainerSpec fields the tokenizer needs, with proto2 defaults. */
typedef struct sp_trainer_spec {
    bool present;
    int32_t model_type;              /* default 1 = UNIGRAM (sp_model_type) */
    bool byte_fallback;              /* default false */
    bool treat_whitespace_as_suffix; /* default false */
    bool has_unk_surface;
    sp_str unk_surface; /* default " \xE2\x81\x87 " */
} sp_trainer_spec;

typedef struct sp_piece_def {
    sp_str str;
    float score;
    int32_t type; /* sp_piece_type */
} sp_piece_def;

/* The parsed ModelProto. Strings point into the bytes that were parsed. */
typedef struct sp_proto {
    sp_piece_def *pieces;
    int32_t n_pieces, cap_pieces;
    sp_trainer_spec trainer;
    sp_norm_spec normalizer, denormalizer;
} sp_proto;

/* Parses a serialized ModelProto; `name` prefixes error messages. */
int sp_proto_parse(sp_proto *out, const uint8_t *data, size_t len, const char *name,
                   prism_error *err);
void sp_proto_free(sp_proto *p);

/* The piece trie: a byte-labelled trie of every normal, user-defined and
 * unused piece, with children found through one open-addressing hash table
 * keyed by (node, byte). */
typedef struct sp_trie_slot {
    uint32_t key;   /* parent node << 8 | byte, + 1 (0 = empty slot) */
    uint32_t child; /* child node */
} sp_trie_slot;

typedef struct sp_trie {
    int32_t *value; /* per node: piece id ending here, or -1 */
    uint32_t n_nodes, cap_nodes;
    sp_trie_slot *slots;
    uint32_t slot_mask; /* capacity - 1 (a power of two) */
} sp_trie;

/* One entry of the piece-string hash table. sentencepiece keeps two maps:
 * reserved pieces (control, unknown, byte) and normal pieces (normal,
 * user-defined, unused); one string may be in both. */
typedef struct sp_vocab_slot {
    int32_t reserved_id; /* -1 none */
    int32_t normal_id;   /* -1 none */
    uint32_t hash;
    bool used;
} sp_vocab_slot;

struct sp_model {
    char *name;     /* file name for messages */
    uint8_t *bytes; /* our copy of the file; every sp_str points into it */
    size_t n_bytes;
    sp_proto proto;
    int32_t unk_id;
    float min_score, max_score; /* over NORMAL pieces, FLT_MAX / FLT_MIN start */
    bool has_user_defined;
    int32_t byte_ids[256]; /* byte-fallback piece per byte, or -1 */
    /* transformers' converter names piece <0x09> "\t" when no piece is "\t"
     * (SP_BPE_TOKENIZERS rules only) */
    bool hf_tab_is_byte;
    sp_trie trie;
    sp_vocab_slot *vocab;
    uint32_t vocab_mask;
};

/* UTF-8 as sentencepiece reads it (util.h): the lead byte's length table,
 * and a decoder that returns U+FFFD with *mblen = 1 on any malformed,
 * overlong, surrogate or out-of-range sequence. */
static inline size_t sp_one_char_len(unsigned char c)
{
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}
uint32_t sp_utf8_decode(const unsigned char *s, size_t n, size_t *mblen);
/* True when the character at s is valid UTF-8 (an encoded U+FFFD counts). */
bool sp_utf8_valid_char(const unsigned char *s, size_t n, size_t *mblen);

/* Charsmap decoding at load time: splits spec->charsmap into trie units and
 * replacement blob, refusing blobs that would be read out of bounds. */
int sp_charsmap_init(sp_norm_spec *spec, const char *name, const char *which,
                     prism_error *err);

/* Normalizer::Normalize for one spec. `m` supplies the user-defined-symbol
 * matcher (NULL for the denormaliser, which has none). */
int sp_normalize_with(const sp_model *m, const sp_norm_spec *spec, bool treat_ws_as_suffix,
                      const char *text, size_t len, sp_buf *out, prism_error *err);

/* Longest user-defined piece that is a prefix of s[0..n), in bytes (0: none). */
size_t sp_user_defined_prefix(const sp_model *m, const char *s, size_t n);

#endif
