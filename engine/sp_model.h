/* sp_model.h - a SentencePiece unigram or BPE model: load, normalise,
 * encode, decode.
 *
 * A C re-implementation of what sentencepiece's SentencePieceProcessor does
 * for a unigram `spiece.model` (the T5/SigLIP/PaLI tokenizers) or a BPE
 * `tokenizer.model` (Gemma, SigLIP 2), written to give exactly its pieces
 * and ids:
 *
 *   - the model file is the ModelProto protobuf, read by a bounds-checked
 *     wire-format reader (sp_proto.c); a truncated or corrupt file is an
 *     error naming the file and what is wrong;
 *   - normalisation (sp_normalizer.c): user-defined symbols first, then the
 *     precompiled charsmap (a darts-clone double-array trie over UTF-8 plus
 *     a blob of NUL-terminated replacement strings, longest prefix wins),
 *     invalid UTF-8 bytes become U+FFFD one byte at a time, then the dummy
 *     prefix, extra-whitespace removal and escaping of ' ' as U+2581 (▁);
 *   - BPE encoding (sp_model.c, "BPE"): characters (user-defined pieces
 *     whole and frozen) merged pairwise, the pair whose concatenation is
 *     the highest-scoring piece first, the leftmost among equal scores;
 *     unknown symbols then as below. sp_bpe_encode_tokenizers is the other
 *     reading of the same file, the one transformers' tokenizers library
 *     makes of it (byte fallback before merging, merge ranks from
 *     generate_merges);
 *   - unigram encoding: Viterbi over all vocabulary pieces that match at each
 *     character (sentencepiece's "optimized" encoder, including its float
 *     arithmetic and tie-breaking), an unknown node of score
 *     min_score - 10 where no one-character piece matches, consecutive
 *     unknown pieces merged into one (or split into <0xXX> byte pieces when
 *     the model has byte_fallback);
 *   - decoding: control pieces vanish, the unknown piece becomes the
 *     trainer's unk_surface (" ⁇ "), ▁ becomes ' ', the leading ▁ is
 *     dropped, byte pieces are reassembled into UTF-8 (U+FFFD for invalid
 *     bytes), and the denormaliser runs when the model has one.
 *
 * An sp_model is immutable after loading: any number of threads may encode
 * and decode with one model at once. Nothing here has global state.
 */
#ifndef PRISM_SP_MODEL_H
#define PRISM_SP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"

typedef struct sp_model sp_model;

/* TrainerSpec.ModelType values that load. */
typedef enum sp_model_type {
    SP_MODEL_UNIGRAM = 1,
    SP_MODEL_BPE = 2,
} sp_model_type;

/* The two readings of a BPE model (sp_model.c, "BPE"). */
typedef enum sp_bpe_rules {
    SP_BPE_SENTENCEPIECE, /* sentencepiece's bpe::Model (sp_encode) */
    SP_BPE_TOKENIZERS,    /* tokenizers' BPE over transformers' conversion */
} sp_bpe_rules;

/* A growable list of ids. */
typedef struct sp_ids {
    int32_t *ids;
    size_t n, cap;
} sp_ids;
int sp_ids_push(sp_ids *l, int32_t id); /* -1 when memory runs out */

/* ModelProto.SentencePiece.Type values. */
typedef enum sp_piece_type {
    SP_NORMAL = 1,
    SP_UNKNOWN = 2,
    SP_CONTROL = 3,
    SP_USER_DEFINED = 4,
    SP_UNUSED = 5,
    SP_BYTE = 6,
} sp_piece_type;

/* A growable byte string (always NUL-terminated when data is non-NULL). */
typedef struct sp_buf {
    char *data;
    size_t len, cap;
} sp_buf;

/* One piece of an encoding. str points into the encoding's normalized text,
 * or into the model (byte-fallback pieces "<0xXX>"); it is not
 * NUL-terminated. For a merged run of unknown characters str is their
 * normalized text and id is the unknown id, as sentencepiece returns them. */
typedef struct sp_piece {
    const char *str;
    size_t len;
    int32_t id;
} sp_piece;

typedef struct sp_encoding {
    sp_buf normalized; /* the normalised input */
    sp_piece *pieces;
    size_t n_pieces, cap_pieces;
} sp_encoding;

/* Loads a model from a file (read into memory) or from bytes (copied).
 * `name` is used in error messages. On failure *out is NULL. */
int sp_model_load_file(sp_model **out, const char *path, prism_error *err);
int sp_model_load_memory(sp_model **out, const void *data, size_t len, const char *name,
                         prism_error *err);
void sp_model_free(sp_model *m);

/* Vocabulary. sp_piece_to_id follows sentencepiece: control/unknown/byte
 * pieces first, then normal/user-defined/unused pieces, else the unknown id. */
sp_model_type sp_model_get_type(const sp_model *m);
int32_t sp_model_piece_count(const sp_model *m);
int32_t sp_model_unk_id(const sp_model *m);
int32_t sp_piece_to_id(const sp_model *m, const char *piece, size_t len);
/* NULL when id is out of range; else the piece (len in *len, not NUL-terminated). */
const char *sp_id_to_piece(const sp_model *m, int32_t id, size_t *len);
sp_piece_type sp_id_type(const sp_model *m, int32_t id); /* 0 when out of range */
float sp_id_score(const sp_model *m, int32_t id);
/* True when `piece` is exactly the piece string of some vocabulary entry. */
bool sp_piece_exists(const sp_model *m, const char *piece, size_t len);

/* Whether a space is a boundary the model's encoding never crosses: for
 * all byte strings A and R, the pieces of sp_encode(A) except its last are
 * the first pieces of sp_encode(A + " " + R) (the last may differ: a piece
 * of unknown characters can merge with one after the space). Decided from
 * the model on each call (a walk over its charsmap and pieces, about a
 * millisecond: callers keep the answer); it holds when
 *   - spaces are escaped as ▁ and not treated as a suffix;
 *   - no precompiled_charsmap key has ' ' past its first byte, a key that
 *     starts with ' ' is replaced by a string that starts with ' ', and
 *     every replacement string is valid UTF-8;
 *   - no normal or user-defined piece has ▁ past its first byte or ends
 *     with the first one or two bytes of ▁; no user-defined piece has ' '
 *     past its first byte or is invalid UTF-8.
 * Proof: normalisation walks rules left to right and none spans the space,
 * so A's walk is B's up to the space; there B emits ▁ (a rule for ' '
 * starts with ' ') unless A's output already ends with ▁ (then stripped
 * from A's text) or nothing but whitespace follows (then B's text is A's).
 * So A's normalised text is a prefix of B's, followed there by ▁ or by
 * nothing; it is valid UTF-8, so the Viterbi walk reaches its end; no
 * matched piece and no one-character unknown node spans that position, so
 * the best path to it, the same float sums in both, is part of B's best
 * path. Unknown pieces merge only with their neighbour. SentencePiece
 * models trained with split_by_whitespace (T5, SigLIP) satisfy it. Always
 * false for a BPE model (the argument is about Viterbi paths). */
bool sp_model_space_is_boundary(const sp_model *m);

/* Normalises text (any bytes) as sentencepiece's Normalizer does; appends
 * to out after clearing it. */
int sp_normalize(const sp_model *m, const char *text, size_t len, sp_buf *out,
                 prism_error *err);

/* Encodes text (any bytes; invalid UTF-8 becomes U+FFFD as in
 * sentencepiece). enc is reset first; free it with sp_encoding_free. */
int sp_encode(const sp_model *m, const char *text, size_t len, sp_encoding *enc,
              prism_error *err);
void sp_encoding_free(sp_encoding *enc);

/* The tokenizers library's BPE model (transformers' GemmaConverter, with
 * byte_fallback and fuse_unk) over text that is already normalised (the
 * caller has replaced ' ' by ▁ and lowered it as it needs; text should be
 * valid UTF-8): appends the ids to out. BPE models only. */
int sp_bpe_encode_tokenizers(const sp_model *m, const char *text, size_t len, sp_ids *out,
                             prism_error *err);

/* Decodes ids (error on an id out of range) or piece strings (each mapped
 * with sp_piece_to_id, as SentencePieceProcessor::DecodePieces does) into
 * out, which is cleared first. */
int sp_decode_ids(const sp_model *m, const int32_t *ids, size_t n, sp_buf *out,
                  prism_error *err);
int sp_decode_pieces(const sp_model *m, const sp_piece *pieces, size_t n, sp_buf *out,
                     prism_error *err);

/* sp_buf helpers. Appending fails only when memory runs out. */
int sp_buf_append(sp_buf *b, const void *data, size_t len);
void sp_buf_clear(sp_buf *b);
void sp_buf_free(sp_buf *b);

#endif
