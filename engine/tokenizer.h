/* tokenizer.h - the text tokenizer of a model directory and the SigLIP
 * family's text pipelines on top of it: SigLIP's (spiece.model, a unigram
 * SentencePiece model) and SigLIP 2's (tokenizer.model, the Gemma BPE
 * model, with tokenizer_config.json).
 *
 * tok_siglip_encode gives exactly the input_ids of transformers'
 * SiglipTokenizer called as tokenizer(text, padding="max_length",
 * truncation=True, max_length=64) (checked against transformers 5 on the
 * strings in tests/data; docs/tokenizer.md has the details):
 *
 *   1. text = "▁" + text.replace("▁", " ");
 *   2. split around the special tokens "</s>" and "<unk>" written in the
 *      text, which map to their ids directly;
 *   3. each other chunk: Python str.lower(), delete ASCII punctuation
 *      (string.punctuation), collapse runs of Unicode whitespace (re's \s)
 *      to one space and strip; SentencePiece-encode "<unk>" + chunk and
 *      drop as many leading pieces as "<unk>" alone encodes to;
 *   4. drop a leading "▁" piece that is followed by a special token;
 *   5. truncate to max_len - 1 ids when longer than max_len - 1, append
 *      "</s>" unless the ids already end with it, pad with "</s>" (SigLIP's
 *      pad token) to max_len.
 *
 * The text must be valid UTF-8 (Python strings are Unicode; there is no
 * reference behaviour for invalid bytes), otherwise the call fails with an
 * error naming the byte offset. NUL characters are ordinary characters.
 *
 * Only a prefix of a long text is tokenized: one cut where the text has
 * whitespace (or after a special token) far enough in that its ids
 * provably begin the whole text's, when the model allows it
 * (sp_model_space_is_boundary; tokenizer.c has the argument). Time and
 * memory then follow the kept ids, not the text's length; only the UTF-8
 * check reads every byte. A text with no such cut is read whole.
 *
 * For a SigLIP 2 tokenizer (TOK_KIND_SIGLIP2) the same calls give the
 * input_ids of transformers' Siglip2Tokenizer called the same way (what
 * Siglip2Processor does): added tokens (control, user-defined and unknown
 * pieces) split out of the raw text; each chunk lowered character by
 * character, ' ' -> ▁, BPE with byte fallback (tokenizer.c, "SigLIP 2");
 * the ids cut to max_len minus the special tokens, <bos>/<eos> added as
 * tokenizer_config.json's add_bos_token/add_eos_token say (SigLIP 2
 * checkpoints: <eos> only), then <pad> (id 0) on the padding side: left
 * unless tokenizer_config.json's padding_side says "right".
 *
 * A tok_tokenizer is immutable once loaded; concurrent calls are safe.
 */
#ifndef PRISM_TOKENIZER_H
#define PRISM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"
#include "sp_model.h"

#define TOK_SIGLIP_MAX_LEN 64 /* SigLIP's text length (model_max_length) */

typedef struct tok_tokenizer tok_tokenizer;

typedef enum tok_kind {
    TOK_KIND_SIGLIP = 1,  /* spiece.model: transformers' SiglipTokenizer */
    TOK_KIND_SIGLIP2 = 2, /* tokenizer.model: transformers' Siglip2Tokenizer */
    TOK_KIND_GEMMA = 3,   /* tokenizer.model as GemmaTokenizer (PaliGemma): case kept */
} tok_kind;

/* SigLIP 2's settings (tokenizer_config.json). */
typedef struct tok_siglip2_config {
    bool add_bos;  /* add_bos_token */
    bool add_eos;  /* add_eos_token */
    bool pad_left; /* padding_side == "left" (the default) */
    bool keep_case; /* GemmaTokenizer as it is (PaliGemma); false: Siglip2Tokenizer's lowercase */
} tok_siglip2_config;

/* Loads the tokenizer of a model directory:
 *   - <model_dir>/spiece.model when there is one: SigLIP;
 *   - else <model_dir>/tokenizer.model with <model_dir>/tokenizer_config.json:
 *     SigLIP 2; tokenizer_class must be GemmaTokenizer(Fast) or
 *     Siglip2Tokenizer, add_bos_token and add_eos_token must be booleans,
 *     padding_side (optional) "left" or "right", truncation_side (optional)
 *     "right";
 *   - a tokenizer_config.json without either model file is an error naming
 *     the file its tokenizer_class needs;
 * anything else is an error naming the file and the key. */
int tok_load(tok_tokenizer **out, const char *model_dir, prism_error *err);
/* Loads <model_dir>/tokenizer.model with tokenizer_config.json as transformers'
 * GemmaTokenizer (PaliGemma): the Gemma BPE without Siglip2Tokenizer's
 * lowercasing (kind TOK_KIND_GEMMA). Errors name the file and the key. */
int tok_load_gemma(tok_tokenizer **out, const char *model_dir, prism_error *err);

/* Registers s as an added token of id `id` (matched in the raw text before
 * anything else, as transformers' added tokens): PaliGemmaProcessor's
 * "<image>". Gemma kinds only. */
int tok_add_token(tok_tokenizer *t, const char *s, int32_t id, prism_error *err);

/* Gemma (TOK_KIND_GEMMA or SIGLIP2): text → its ids, no special tokens added
 * (added tokens in the text are split out first, as transformers does),
 * at most max ids (-1 past that, with a message). */
int tok_gemma_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                     int max, int *n, prism_error *err);
/* GemmaTokenizer.decode(ids, skip_special_tokens): pieces joined, ▁ → ' ',
 * byte pieces joined into UTF-8 (U+FFFD for each byte of an invalid run),
 * user-defined pieces (PaliGemma's <locNNNN>, <segNNN>) as written; control
 * and unknown pieces, and ids past the vocabulary (PaliGemma's <image>),
 * skipped with skip_special, else an error (ids past the vocabulary) or
 * written. *out is malloc'd and NUL-terminated. */
int tok_gemma_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                     char **out, prism_error *err);

/* Loads a SigLIP 2 tokenizer.model (a SentencePiece BPE model with the Gemma
 * layout: <pad> <eos> <bos> <unk> <mask> as pieces 0-4). */
int tok_load_siglip2_file(tok_tokenizer **out, const char *model_path,
                          const tok_siglip2_config *cfg, prism_error *err);
int tok_load_siglip2_memory(tok_tokenizer **out, const void *data, size_t len, const char *name,
                            const tok_siglip2_config *cfg, prism_error *err);
/* Loads a spiece.model file, or one held in memory (`name` for messages). */
int tok_load_file(tok_tokenizer **out, const char *spiece_path, prism_error *err);
int tok_load_memory(tok_tokenizer **out, const void *data, size_t len, const char *name,
                    prism_error *err);
void tok_free(tok_tokenizer *t);

const sp_model *tok_model(const tok_tokenizer *t);
int32_t tok_vocab_size(const tok_tokenizer *t);
int32_t tok_eos_id(const tok_tokenizer *t); /* id of "</s>" (1 for T5/SigLIP) */
int32_t tok_pad_id(const tok_tokenizer *t); /* SigLIP pads with "</s>" too; SigLIP 2: <pad> */
tok_kind tok_get_kind(const tok_tokenizer *t);
bool tok_pads_left(const tok_tokenizer *t); /* pads come first in the ids (SigLIP 2's default) */

/* SigLIP's text canonicalisation of one chunk (transformers'
 * SiglipTokenizer.canonicalize_text): lower, delete ASCII punctuation,
 * collapse whitespace, strip. text must be valid UTF-8. */
int tok_siglip_canonicalize(const char *text, size_t len, sp_buf *out, prism_error *err);

/* Encodes text into exactly max_len ids (max_len >= 1, SigLIP 2: more than
 * the special tokens it adds; both use TOK_SIGLIP_MAX_LEN). *n_tokens (may
 * be NULL) receives the number of ids that are not padding, special tokens
 * included. */
int tok_siglip_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                      int max_len, int *n_tokens, prism_error *err);
/* tok_siglip_encode, also giving the length of the prefix it tokenized
 * (*bytes_tokenized; len when the text was read whole). */
int tok_siglip_encode_counted(const tok_tokenizer *t, const char *text, size_t len,
                              int32_t *ids, int max_len, int *n_tokens,
                              size_t *bytes_tokenized, prism_error *err);
/* The same steps over the whole text, however long: the definition the
 * prefix rule is held to (tests compare the two). */
int tok_siglip_encode_whole(const tok_tokenizer *t, const char *text, size_t len, int32_t *ids,
                            int max_len, int *n_tokens, prism_error *err);

/* sp_encode(text) that stops early when the text has more than max_pieces
 * pieces. Returns 1 when a prefix cut before a space proves that (enc then
 * holds no pieces; *n_pieces is a lower bound above max_pieces), else 0 with
 * enc holding all the text's pieces (*n_pieces of them, which may still be
 * more than max_pieces); -1 on error. enc is reset first; free it with
 * sp_encoding_free. *bytes_tokenized (may be NULL): how many leading bytes
 * were encoded. */
int tok_sp_encode_bounded(const tok_tokenizer *t, const char *text, size_t len,
                          size_t max_pieces, sp_encoding *enc, size_t *n_pieces,
                          size_t *bytes_tokenized, prism_error *err);

/* transformers' SiglipTokenizer.decode(ids, skip_special_tokens=...)
 * (SigLIP only; an error for SigLIP 2):
 * pieces between special tokens are SentencePiece-decoded, "</s>" and
 * "<unk>" are written as such (or skipped), the result is stripped of
 * Unicode whitespace. *out is a malloc'd NUL-terminated string (free it);
 * out_len may be NULL. An id outside the vocabulary is an error. */
int tok_siglip_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                      char **out, size_t *out_len, prism_error *err);

#endif
