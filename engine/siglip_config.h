/* siglip_config.h - SiglipConfig / Siglip2Config as read from a hub config.json.
 *
 * Hub config files omit every value equal to transformers' default, so each
 * field starts at transformers' default (SiglipTextConfig /
 * SiglipVisionConfig, or their Siglip2 twins, whose defaults are the same
 * apart from the vision input) and is overwritten only by keys the file has.
 *
 * model_type "siglip" is a fixed-resolution model (image_size × image_size
 * pixels, a conv patch embedding); "siglip2" is NaFlex: patchified input of
 * any aspect ratio, a Linear patch embedding and a learned position grid of
 * num_patches entries resized per image.
 */
#ifndef PRISM_SIGLIP_CONFIG_H
#define PRISM_SIGLIP_CONFIG_H

#include <stdbool.h>

#include "backend.h"
#include "json.h"
#include "prism_error.h"

typedef struct siglip_tower_config {
    int hidden_size;         /* E */
    int intermediate_size;   /* MLP width */
    int num_hidden_layers;
    int num_attention_heads; /* H; E % H == 0 */
    float layer_norm_eps;
    prism_act hidden_act;
} siglip_tower_config;

typedef struct siglip_text_config {
    siglip_tower_config t;
    int vocab_size;
    int max_position_embeddings; /* text length the model was built for (64) */
    int projection_size;         /* head output width; defaults to hidden_size */
    int pad_token_id, bos_token_id, eos_token_id;
} siglip_text_config;

typedef struct siglip_vision_config {
    siglip_tower_config t;
    int num_channels;
    int image_size; /* S; 0 for NaFlex (any size) */
    int patch_size; /* P; N = (S/P)^2 patches */
    int num_patches; /* position embeddings: (S/P)^2, or NaFlex's num_patches
                      * (a square: a √num_patches × √num_patches grid) */
    bool naflex;     /* model_type siglip2 */
    bool vision_use_head;
} siglip_vision_config;

typedef struct siglip_config {
    siglip_text_config text;
    siglip_vision_config vision;
} siglip_config;

/* Fills cfg with transformers' defaults (google/siglip-base-patch16-224). */
void siglip_config_defaults(siglip_config *cfg);

/* Reads PATH (a config.json with model_type "siglip" or "siglip2"); errors
 * name the file and the offending key. */
int siglip_config_load(siglip_config *cfg, const char *path, prism_error *err);

/* Reads a SiglipVisionConfig object (the vision_config of a pali3
 * config.json) over transformers' defaults; messages name `file` and
 * `section`. */
int siglip_vision_config_from_json(siglip_vision_config *vc, const json_value *obj,
                                   const char *file, const char *section, prism_error *err);

/* Same, from a JSON text already in memory (tests use it). */
int siglip_config_parse(siglip_config *cfg, const char *json, const char *name,
                        prism_error *err);

#endif
