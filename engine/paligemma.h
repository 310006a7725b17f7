/* paligemma.h - PaliGemma (google/paligemma-*, model_type paligemma): SigLIP
 * vision tower → linear projector → Gemma decoder, from the hub layout.
 *
 * A checkpoint as downloaded: config.json (model_type "paligemma",
 * vision_config a SiglipVisionConfig, text_config a GemmaConfig,
 * image_token_index / image_token_id), model.safetensors or shards with
 * either naming (the hub's files: vision_tower.vision_model.*,
 * multi_modal_projector.linear.*, language_model.model.*; transformers 5's
 * save_pretrained: model.vision_tower.vision_model.*, model.
 * multi_modal_projector.linear.*, model.language_model.*, lm_head.weight).
 *
 * The prompt is the processor's input_ids: image_seq_length copies of the
 * image token, <bos>, the prompt, "\n". The image token's rows take the
 * projector's outputs in order; the rest are Gemma's scaled embeddings;
 * the whole prompt is the prefix (bidirectional), each generated token sees
 * the prefix and the tokens before it. Rotary positions count from 1, as
 * transformers' PaliGemmaModel. docs/paligemma.md has the details.
 */
#ifndef PRISM_PALIGEMMA_H
#define PRISM_PALIGEMMA_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "gemma.h"
#include "prism_error.h"
#include "siglip_config.h"

typedef struct paligemma_config {
    siglip_vision_config vision;
    gemma_config text;
    int image_token_index;
    int n_image_tokens;   /* (image_size / patch_size)² */
} paligemma_config;

typedef struct paligemma_limits {
    int max_text_tokens;   /* input_ids per request besides the image tokens (<bos>,
                            * prompt, "\n") */
    int max_new_tokens;
    int n_slots;           /* requests with a KV cache at once */
} paligemma_limits;

typedef struct paligemma_model paligemma_model;

/* Whether DIR/config.json says model_type "paligemma". */
bool paligemma_is_model_dir(const char *dir);
int paligemma_config_parse(paligemma_config *cfg, const char *json, size_t len, const char *name,
                           prism_error *err);

int paligemma_load(paligemma_model **out, const char *dir, prism_backend *be,
                   const paligemma_limits *lim, prism_error *err);
void paligemma_free(paligemma_model *m);
const paligemma_config *paligemma_get_config(const paligemma_model *m);

/* The prefix of one request into `slot`: pixels [C, S, S] (host, SigLIP-
 * normalised), ids [n] (host: the processor's input_ids, exactly
 * n_image_tokens of them the image token); logits (host [vocab], may be
 * NULL) of the last position. */
int paligemma_prefill(paligemma_model *m, int slot, const float *pixels, const int32_t *ids,
                      int n, float *logits, prism_error *err);
/* The same with the logits in backend memory [vocab] (the batched
 * generation in pali_gen.c keeps them there for its top-k). */
int paligemma_prefill_dev(paligemma_model *m, int slot, const float *pixels, const int32_t *ids,
                          int n, float *logits, prism_error *err);
/* The decoder, for batched steps (gemma_decode) and beam cache copies. */
gemma_model *paligemma_decoder(paligemma_model *m);
int64_t paligemma_param_count(const paligemma_model *m);

/* One generated token at position pos (n + the tokens before it) of slot. */
int paligemma_step(paligemma_model *m, int slot, int pos, int32_t token, float *logits,
                   prism_error *err);

/* Greedy decoding of one request: argmax (lowest id on ties) until eos_id
 * (included) or max_new tokens; out gets the generated ids. */
int paligemma_generate_greedy(paligemma_model *m, const float *pixels, const int32_t *ids, int n,
                              int max_new, int32_t eos_id, int32_t *out, int *n_out,
                              prism_error *err);

#endif
