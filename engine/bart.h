/* bart.h - the BART encoder-decoder (Florence-2's language model) on a
 * prism backend.
 *
 * Mirrors transformers' modeling_bart.py (BartModel) in the form generation
 * needs, with the same calls as t5.h:
 *   - bart_encode runs the encoder over inputs_embeds the caller wrote
 *     (Florence-2: projected image tokens, then the embedded prompt), for a
 *     right-padded batch, and writes every decoder layer's cross-attention
 *     keys and values for each request into a cache "cross slot";
 *   - bart_decode_step advances any set of sequences by one token each:
 *     every sequence has its own self-attention KV cache (a slot) and
 *     position, so sequences of different requests and lengths decode
 *     together, and beams of one request share one cross slot.
 * BART as computed there:
 *   embeddings: tokens × √d_model when scale_embedding (the image features
 *               are not scaled), + learned positions (row pos + 2), then
 *               layernorm_embedding;
 *   layers:     post-norm: x = LN(x + SelfAttn(x)); decoder: x = LN(x +
 *               CrossAttn(x, enc)); x = LN(x + fc2(act(fc1(x)))); attention
 *               scores × head_dim^-0.5, every projection with a bias;
 *   head:       lm_head.weight (tied: shared.weight) without a bias; no
 *               final norm.
 * Activations are allocated at load for the limits given, caches by
 * bart_cache_create. A bart_model is used by one thread at a time.
 */
#ifndef PRISM_BART_H
#define PRISM_BART_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "encdec_cache.h"
#include "json.h"
#include "prism_error.h"
#include "safetensors.h"

typedef struct bart_config {
    int vocab_size, d_model;
    int encoder_layers, decoder_layers;
    int encoder_heads, decoder_heads;
    int encoder_ffn, decoder_ffn;
    int max_position_embeddings;
    bool scale_embedding;
    prism_act act;          /* activation_function */
    float layer_norm_eps;   /* nn.LayerNorm's default, 1e-5 */
    int pad_token_id, bos_token_id, eos_token_id, decoder_start_token_id;
} bart_config;

/* Reads a BartConfig object (transformers' defaults for absent keys);
 * errors name the file and `key`.member. */
int bart_config_from_json(bart_config *c, const json_value *o, const char *file, const char *key,
                          prism_error *err);

typedef struct bart_model bart_model;
typedef encdec_cache bart_cache; /* encdec_cache.h */

typedef struct bart_limits {
    int max_enc_batch; /* sequences encoded by one bart_encode call */
    int max_enc_len;   /* encoder positions per sequence (≤ max_position_embeddings) */
    int max_dec_seqs;  /* sequences in one bart_decode_step call */
    int max_dec_len;   /* decoder positions per sequence (≤ max_position_embeddings) */
} bart_limits;

/* Loads `prefix`shared.weight, `prefix`encoder.*, `prefix`decoder.* and
 * lm_head (the tensor named `lm_head`, shared.weight when it is absent)
 * from w, which must stay open while the model lives. */
int bart_load(bart_model **out, const bart_config *cfg, const st_weights *w, const char *prefix,
              const char *lm_head, prism_backend *be, const bart_limits *lim, prism_error *err);
void bart_free(bart_model *m);

const bart_config *bart_get_config(const bart_model *m);
bool bart_lm_head_tied(const bart_model *m);
int64_t bart_param_count(const bart_model *m);
int64_t bart_tensor_count(const bart_model *m);

/* The encoder's input buffer [max_enc_batch · max_enc_len, d_model]
 * (backend memory): row b·T + t is position t of sequence b for the T of
 * the next bart_encode call. */
float *bart_encoder_input(bart_model *m);
/* Writes the token embeddings of ids (backend memory, n of them, checked
 * against the vocabulary) to out (backend memory, [n, d_model]), scaled as
 * the model's embedding scales them. */
int bart_embed(bart_model *m, float *out, const int32_t *ids_dev, int n, prism_error *err);

int bart_cache_create(bart_cache **out, bart_model *m, int n_slots, int n_cross,
                      prism_error *err);

/* Encodes B sequences of lens[b] ≤ T positions from bart_encoder_input
 * (rows past lens[b] are padding and must hold finite values). With cache
 * and cross_slots, writes each sequence's cross keys/values to its slot;
 * with states (host, [B, T, d_model]), downloads the encoder output. */
int bart_encode(bart_model *m, int B, int T, const int *lens, bart_cache *cache,
                const int *cross_slots, float *states, prism_error *err);

typedef encdec_seq bart_dec_seq; /* one decoder position of one sequence */

/* Runs n ≤ max_dec_seqs sequences one position forward and leaves the
 * logits [n, V] in bart_logits (backend memory). Sequences that share a
 * cross slot should be adjacent. */
int bart_decode_step(bart_model *m, bart_cache *cache, const bart_dec_seq *seqs, int n,
                     prism_error *err);
float *bart_logits(bart_model *m);

/* A cache is freed with encdec_cache_free; a beam's prefix is copied
 * with encdec_cache_copy. */

#endif
