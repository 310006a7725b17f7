/* florence2.h - Florence-2 (transformers' native layout: model_type
 * "florence2", Florence2ForConditionalGeneration) from a model directory as
 * downloaded: config.json, model.safetensors (or shards),
 * preprocessor_config.json (CLIPImageProcessor), generation_config.json.
 *
 * The model: the DaViT vision tower and projector (davit.h) make 1 + h·w
 * image tokens; Florence2Processor writes the prompt as <image> × (1 + h·w),
 * <s>, the prompt's ids, </s>; the image tokens' rows of the BART encoder's
 * input are the image features (in order), the rest the scaled token
 * embeddings (bart.h); the BART decoder generates from
 * decoder_start_token_id.
 *
 * Generation settings come from generation_config.json as transformers
 * reads them (absent keys: the BART text config's, then transformers'
 * defaults): decoder_start_token_id, eos_token_id, forced_bos_token_id
 * (the first generated token), forced_eos_token_id (the token at the last
 * allowed position), no_repeat_ngram_size, num_beams (the default beam
 * count).
 *
 * A florence2_model is used by one thread at a time.
 */
#ifndef PRISM_FLORENCE2_H
#define PRISM_FLORENCE2_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "bart.h"
#include "davit.h"
#include "image.h"
#include "prism_error.h"

typedef struct florence2_gen_config {
    int decoder_start_token_id;
    int eos_token_id;
    int forced_bos_token_id;  /* -1: none */
    int forced_eos_token_id;  /* -1: none */
    int no_repeat_ngram_size; /* 0: off */
    int num_beams;            /* the checkpoint's default */
} florence2_gen_config;

typedef struct florence2_config {
    davit_config vision;
    bart_config text;
    int image_token_id;
    int image_size;           /* preprocessor_config.json's square size */
    int n_image_tokens;       /* 1 + h·w */
    florence2_gen_config gen;
} florence2_config;

typedef struct florence2_limits {
    int max_batch;         /* images through the vision tower + encoder together */
    int max_seqs;          /* decoder sequences in one step, beams included */
    int max_new_tokens;    /* per request */
    int max_prompt_tokens; /* text ids per request (<s> and </s> included) */
} florence2_limits;

void florence2_limits_default(florence2_limits *lim);

/* Whether DIR/config.json says model_type "florence2". */
bool florence2_is_model_dir(const char *dir);

/* Reads DIR's config.json, preprocessor_config.json and
 * generation_config.json (errors name the file and key). */
int florence2_config_load(florence2_config *cfg, image_preproc *pre, const char *dir,
                          prism_error *err);

typedef struct florence2_model florence2_model;

int florence2_load(florence2_model **out, const char *dir, prism_backend *be,
                   const florence2_limits *lim, prism_error *err);
void florence2_free(florence2_model *m);

const florence2_config *florence2_get_config(const florence2_model *m);
const image_preproc *florence2_get_preproc(const florence2_model *m);
bart_model *florence2_bart(florence2_model *m);
int64_t florence2_param_count(const florence2_model *m);

/* Image tokens of one image (pixels host [3, S, S], preprocessed) into
 * features (host [n_image_tokens, d_model]); last (host, may be NULL) gets
 * the vision tower's last stage [h·w, C] channels-last. */
int florence2_image_features(florence2_model *m, const float *pixels, float *features,
                             float *last, prism_error *err);

/* One request of a prefill: preprocessed pixels and the prompt's text ids
 * (<s>, the prompt, </s>; no image tokens). */
typedef struct florence2_input {
    const float *pixels;
    const int32_t *ids;
    int n_ids;
} florence2_input;

/* Vision tower, projector, embedding and encoder of B ≤ max_batch
 * requests; cross keys/values to cache (with cross_slots) and/or encoder
 * output to states (host [B, T, d_model], T = n_image_tokens + the longest
 * n_ids; *T_out receives T). */
int florence2_encode(florence2_model *m, const florence2_input *in, int B, bart_cache *cache,
                     const int *cross_slots, float *states, int *T_out, prism_error *err);

#endif
