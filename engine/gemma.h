/* gemma.h - the Gemma / Gemma 2 decoder (PaliGemma's language model) on a
 * prism backend.
 *
 * What it computes, as transformers' GemmaModel / Gemma2Model (docs/
 * paligemma.md has the formulas and where they are read from):
 *   embeddings · √hidden (float32) → layers → RMSNorm → logits = x · Eᵀ
 *   (the embedding table: tied) [Gemma 2: tanh soft-capped];
 *   a layer: x += o(attn(rope(q), rope(k), v)) of RMSNorm(x), then
 *   x += down(gelu_tanh(gate(h)) ⊙ up(h)) of h = RMSNorm(x) [Gemma 2: each
 *   sub-block's output RMSNorm'd again before the residual add];
 *   RMSNorm(x) = x · rsqrt(mean(x²) + eps) · (1 + w);
 *   grouped-query attention (num_key_value_heads ≤ num_attention_heads,
 *   1 for multi-query), scale head_dim^-½ [Gemma 2: query_pre_attn_scalar^-½];
 *   rotary embeddings on q and k (rotate-half form, base rope_theta).
 *
 * Attention is prefix-LM style: every row of a gemma_forward call sees every
 * cached position of its slot and every row of the call (PaliGemma's
 * image + prompt prefix is bidirectional, sliding windows included, as
 * transformers' block mask ORs it in); a generated token runs alone
 * (T = 1) and so sees exactly the positions before it and itself, in a
 * sliding layer only the last sliding_window of them.
 */
#ifndef PRISM_GEMMA_H
#define PRISM_GEMMA_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "json.h"
#include "prism_error.h"
#include "safetensors.h"

#define GEMMA_MAX_LAYERS 512

typedef struct gemma_config {
    bool gemma2;               /* model_type gemma2 */
    int vocab_size;
    int hidden_size;           /* D */
    int intermediate_size;     /* I */
    int num_hidden_layers;
    int num_attention_heads;   /* H */
    int num_key_value_heads;   /* KVH; H % KVH == 0 */
    int head_dim;              /* d */
    int max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    prism_act act;             /* hidden_activation / hidden_act: gelu_pytorch_tanh */
    /* Gemma 2 */
    float query_pre_attn_scalar; /* the attention scale is its -½ power */
    float attn_logit_softcapping;  /* 0: none */
    float final_logit_softcapping; /* 0: none */
    int sliding_window;            /* 0: none */
    /* layer_types: 1 where a layer is "sliding_attention" (Gemma 2's
     * default: every even layer) */
    uint8_t sliding[GEMMA_MAX_LAYERS];
} gemma_config;

/* Reads a text_config object (transformers' GemmaConfig / Gemma2Config
 * defaults for missing keys); errors name `file` and `key`.key. */
int gemma_config_from_json(gemma_config *c, const json_value *obj, const char *file,
                           const char *key, prism_error *err);

typedef struct gemma_limits {
    int max_tokens; /* rows of one gemma_forward call */
    int max_len;    /* cached positions per slot */
    int n_slots;    /* sequences with a cache */
} gemma_limits;

typedef struct gemma_model gemma_model;

/* Loads embed_tokens.weight, layers.N.*, norm.weight from w (a view whose
 * prefix leads to the decoder) and the LM head: lm_head (a full name in
 * w's files, NULL or absent: tied to the embeddings). */
int gemma_load(gemma_model **out, const gemma_config *cfg, const st_weights *w,
               const char *lm_head, prism_backend *be, const gemma_limits *lim,
               prism_error *err);
void gemma_free(gemma_model *m);

const gemma_config *gemma_get_config(const gemma_model *m);
bool gemma_lm_head_tied(const gemma_model *m);
int64_t gemma_param_count(const gemma_model *m);

/* The input rows of the next gemma_forward, [max_tokens, D] backend memory. */
float *gemma_input(gemma_model *m);
/* Rows [0, n) of the input = embedding(ids) · √D (ids in [0, vocab_size)). */
int gemma_embed(gemma_model *m, const int32_t *ids, int n, prism_error *err);

/* Runs the input's T rows as positions [pos, pos + T) of `slot` (cached
 * there for later calls); rotary positions are pos + rope_offset + row
 * (PaliGemma counts from 1). With logits (host, [vocab_size]) the last
 * row's logits are written. */
int gemma_forward(gemma_model *m, int slot, int pos, int T, int rope_offset, float *logits,
                  prism_error *err);

/* After a gemma_forward of T rows without logits: the last row's logits
 * into backend memory [vocab_size] (Gemma 2: soft-capped). */
int gemma_last_logits(gemma_model *m, int T, float *logits, prism_error *err);

/* One generated token of each of n sequences in one call (continuous
 * batching: every GEMM takes the n rows): toks[i].token at position
 * toks[i].pos of slot toks[i].slot (distinct slots, n ≤ n_slots and ≤
 * max_tokens), rotary position pos + rope_offset. logits: backend memory
 * [n, vocab_size], row i for toks[i] (Gemma 2: soft-capped). */
typedef struct gemma_token {
    int slot, pos;
    int32_t token;
} gemma_token;
int gemma_decode(gemma_model *m, const gemma_token *toks, int n, int rope_offset, float *logits,
                 prism_error *err);

/* Copies positions [0, len) of slot src's keys and values into slot dst
 * (beam search: a beam that takes over another's history). */
int gemma_cache_copy(gemma_model *m, int dst, int src, int len, prism_error *err);

#endif
