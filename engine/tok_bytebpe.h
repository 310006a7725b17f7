/* tok_bytebpe.h - BART's byte-level BPE tokenizer (the one Florence-2
 * checkpoints ship: RoBERTa's vocabulary layout, GPT-2's pre-tokenizer,
 * Florence's added tokens), exact against transformers' BartTokenizer
 * (RobertaTokenizer on the tokenizers library) on the strings in
 * tests/data; docs/tokenizer.md has the details.
 *
 * tok_bytebpe_encode gives tokenizer(text, add_special_tokens=False)
 * ["input_ids"], what Florence2Processor asks for (it writes <s> and </s>
 * into the text itself):
 *
 *   1. added tokens are split out of the raw text: first the ones that are
 *      not "normalized", then, in the text between them, the normalized ones
 *      (there is no normalizer, so both match the text as written); each
 *      pass takes the leftmost match, the longest one starting there, and
 *      goes on after it; lstrip / rstrip tokens also take the white space
 *      (Unicode White_Space) before / after them;
 *   2. each piece of text between added tokens is split by GPT-2's regex
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      (no prefix space is added);
 *   3. each regex match, as UTF-8 bytes, is one BPE word over the 256
 *      byte symbols (GPT-2's bytes_to_unicode characters): the pair with the
 *      lowest merge rank is merged, the leftmost of equal pairs first, until
 *      no pair has a rank; the symbols' vocabulary ids are the output. A
 *      byte whose symbol is not in the vocabulary is dropped (the model has
 *      no unknown token), as the reference does.
 *
 * BPE runs with a priority queue of candidate pairs, so a word of n bytes
 * costs O(n log n) whatever its content (1 MB of one letter included); the
 * added-token scan costs at most TOK_BYTEBPE_MAX_ADDED_LEN steps per byte.
 *
 * The text must be valid UTF-8 (Python strings are Unicode; there is no
 * reference behaviour for invalid bytes), otherwise the call fails with an
 * error naming the byte offset. NUL characters are ordinary characters.
 *
 * A tok_bytebpe is immutable once loaded; concurrent calls are safe. There
 * is no global mutable state.
 */
#ifndef PRISM_TOK_BYTEBPE_H
#define PRISM_TOK_BYTEBPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"
#include "tok_unicode.h"

/* Load-time limits (an error naming the file and key past them). */
#define TOK_BYTEBPE_MAX_VOCAB (1 << 22)      /* model vocabulary entries, merges, largest id */
#define TOK_BYTEBPE_MAX_TOKEN_LEN 1024       /* bytes of one vocabulary token */
#define TOK_BYTEBPE_MAX_ADDED (1 << 18)      /* added tokens */
#define TOK_BYTEBPE_MAX_ADDED_LEN 256        /* bytes of one added token */
#define TOK_BYTEBPE_MAX_TEXT ((size_t)1 << 30) /* bytes of one text to encode */

typedef struct tok_bytebpe tok_bytebpe;

/* Loads the tokenizer of a model directory:
 *   - <model_dir>/tokenizer.json when there is one: model.type "BPE" (no
 *     dropout, no subword prefix or suffix, no byte fallback, ignore_merges
 *     false), no normalizer, pre_tokenizer ByteLevel with add_prefix_space
 *     false and use_regex true, decoder ByteLevel, the added_tokens (flags
 *     single_word false; lstrip, rstrip, normalized and special as given);
 *   - else <model_dir>/vocab.json + merges.txt, with the added tokens of
 *     tokenizer_config.json's added_tokens_decoder;
 *   - <model_dir>/tokenizer_config.json (optional): tokenizer_class a Bart or
 *     Roberta tokenizer, add_prefix_space false, bos_token / eos_token /
 *     pad_token (default "<s>", "</s>", "<pad>"), added_tokens_decoder
 *     equal to tokenizer.json's added tokens (transformers takes them from
 *     here), clean_up_tokenization_spaces (transformers 5 ignores it for BPE
 *     models; the BPE override that would apply it is refused).
 * Anything else is an error naming the file and the key. */
int tok_bytebpe_load(tok_bytebpe **out, const char *model_dir, prism_error *err);
void tok_bytebpe_free(tok_bytebpe *t);

/* text[0..len) → its ids, no special tokens added; at most max_ids of them
 * (-1 with a message past that). *n_ids receives the count. */
int tok_bytebpe_encode(const tok_bytebpe *t, const char *text, size_t len, int32_t *ids,
                       size_t max_ids, size_t *n_ids, prism_error *err);

/* tokenizer.decode(ids, skip_special_tokens=skip_special) of transformers 5:
 * each id's token (an added token's content, else the vocabulary's), special
 * added tokens left out with skip_special, ids past the vocabulary left out
 * (as the reference does); each token mapped back to bytes through the
 * byte-level characters (a token with a character outside them, such as an
 * added token with a space, as its own UTF-8); the bytes read as UTF-8 with
 * U+FFFD for each maximal invalid sequence. No clean-up of spaces (what
 * transformers 5 does for a BPE model whatever clean_up_tokenization_spaces
 * says). A negative id is an error. *out is malloc'd and NUL-terminated;
 * out_len may be NULL. */
int tok_bytebpe_decode(const tok_bytebpe *t, const int32_t *ids, size_t n, bool skip_special,
                       char **out, size_t *out_len, prism_error *err);

/* The id of a token string (an added token first, then the vocabulary),
 * e.g. "<loc_5>", "</s>", "<image>"; -1 when there is none. */
int32_t tok_bytebpe_token_id(const tok_bytebpe *t, const char *s, size_t len);
/* The token string of an id (NULL past the vocabulary); not NUL-terminated. */
const char *tok_bytebpe_id_token(const tok_bytebpe *t, int32_t id, size_t *len);
/* len(tokenizer): one more than the largest id. */
int32_t tok_bytebpe_vocab_size(const tok_bytebpe *t);
int32_t tok_bytebpe_bos_id(const tok_bytebpe *t); /* -1 when the token has no id */
int32_t tok_bytebpe_eos_id(const tok_bytebpe *t);
int32_t tok_bytebpe_pad_id(const tok_bytebpe *t);
bool tok_bytebpe_is_special(const tok_bytebpe *t, int32_t id);

/* The character classes of the regex (tok_bytebpe_tables.c, generated by
 * tools/gen_tok_bytebpe_tables.py). */
extern const char tok_bytebpe_unicode_source[];
extern const tok_range tok_bytebpe_letter_ranges[];
extern const size_t tok_bytebpe_letter_count;
extern const tok_range tok_bytebpe_number_ranges[];
extern const size_t tok_bytebpe_number_count;
extern const tok_range tok_bytebpe_space_ranges[];
extern const size_t tok_bytebpe_space_count;

#endif
