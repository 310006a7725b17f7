/* t5.h - the T5 / UL2 encoder-decoder on a prism backend.
 *
 * Mirrors transformers' modeling_t5.py (T5ForConditionalGeneration) in the
 * form generation needs:
 *   - t5_encode runs the encoder once per request over inputs_embeds the
 *     caller wrote (PaLI: projected image tokens + embedded prompt), for a
 *     right-padded batch, and writes every decoder layer's cross-attention
 *     keys and values for each request into a t5_cache "cross slot";
 *   - t5_decode_step advances any set of sequences by one token each: every
 *     sequence has its own self-attention KV cache (a "slot") and position,
 *     so sequences of different requests and lengths decode together, and
 *     beams of one request share one cross slot.
 * Weights are imported at load (matrix weights fused where one GEMM beats
 * several: q;k;v, and cross k;v); activations are allocated at load for the
 * limits given, caches by t5_cache_create. Nothing is allocated per step.
 *
 * A t5_model is used by one thread at a time.
 */
#ifndef PRISM_T5_H
#define PRISM_T5_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "encdec_cache.h"
#include "prism_error.h"
#include "safetensors.h"
#include "t5_config.h"

typedef struct t5_model t5_model;
typedef encdec_cache t5_cache; /* encdec_cache.h */

typedef struct t5_limits {
    int max_enc_batch; /* sequences encoded by one t5_encode call */
    int max_enc_len;   /* encoder positions per sequence */
    int max_dec_seqs;  /* sequences in one t5_decode_step call */
    int max_dec_len;   /* decoder positions (inputs) per sequence */
} t5_limits;

/* Loads `prefix`shared.weight, `prefix`encoder.*, `prefix`decoder.* and
 * `prefix`lm_head.weight (optional: shared.weight when absent) from w,
 * which must stay open while the model lives. Errors name the file and
 * tensor. */
int t5_load(t5_model **out, const t5_config *cfg, const st_weights *w, const char *prefix,
            prism_backend *be, const t5_limits *lim, prism_error *err);
void t5_free(t5_model *m);

const t5_config *t5_get_config(const t5_model *m);
bool t5_lm_head_tied(const t5_model *m);       /* no lm_head.weight in the checkpoint */
int64_t t5_param_count(const t5_model *m);     /* floats in the tensors used */
int64_t t5_tensor_count(const t5_model *m);

/* shared.weight [V, d_model], float32 in backend memory (prompt embedding). */
const float *t5_embedding_table(const t5_model *m);
/* The encoder's input buffer, [max_enc_batch · max_enc_len, d_model] in
 * backend memory: row b·T + t is position t of sequence b for the T of the
 * next t5_encode call. */
float *t5_encoder_input(t5_model *m);

/* Self-attention caches for n_slots sequences of up to max_dec_len
 * positions, and cross-attention keys/values for n_cross requests of up to
 * max_enc_len encoder positions, in one allocation. */
int t5_cache_create(t5_cache **out, t5_model *m, int n_slots, int n_cross, prism_error *err);

/* Encodes B sequences of lens[b] ≤ T positions from t5_encoder_input (rows
 * past lens[b] are padding; they must hold finite values). With cache and
 * cross_slots, writes each sequence's cross keys/values to its slot; with
 * states (host, [B, T, d_model]), downloads the encoder output. */
int t5_encode(t5_model *m, int B, int T, const int *lens, t5_cache *cache,
              const int *cross_slots, float *states, prism_error *err);

typedef encdec_seq t5_dec_seq; /* one decoder position of one sequence */

/* Runs n ≤ max_dec_seqs sequences one position forward: appends each
 * token's keys/values to its slot at pos, and leaves the logits [n, V] in
 * t5_logits (backend memory). Sequences that share a cross slot should be
 * adjacent (their cross-attention runs as one call). */
int t5_decode_step(t5_model *m, t5_cache *cache, const t5_dec_seq *seqs, int n,
                   prism_error *err);
float *t5_logits(t5_model *m);

/* A cache is freed with encdec_cache_free; a beam's prefix is copied
 * with encdec_cache_copy. */

#endif
