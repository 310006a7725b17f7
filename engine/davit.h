/* davit.h - Florence-2's vision side: the DaViT backbone and the
 * multi-modal projector that turns its last stage into image tokens.
 *
 * Mirrors transformers' modeling_florence2.py (Florence2VisionBackbone,
 * Florence2MultiModalProjector). Tokens are kept channels-last, [B, h, w,
 * C] as rows of C floats, between the stages:
 *   stage s:  a convolutional patch embedding (k×k, stride, padding; a
 *             LayerNorm over the input channels before it when
 *             patch_prenorm, else over the output channels after it), then
 *             depths[s] blocks, each a spatial block and a channel block:
 *   block:    x += dwconv3x3(x); x += Attn(LN(x)); x += dwconv3x3(x);
 *             x += fc2(act(fc1(LN(x))))
 *             where Attn is window attention (windows of window_size² tokens,
 *             the grid zero-padded on the bottom and right to whole windows,
 *             the padding attended to as transformers does) in the spatial
 *             block, and channel attention (per group of C/G channels: the
 *             channels attend to each other over all h·w positions, scores ×
 *             (h·w)^-0.5) in the channel block;
 *   projector: + learned 2-D positions (column embedding | row embedding),
 *             + the first sinusoidal "temporal" embedding, then the mean
 *             token followed by the h·w tokens, × image_projection, LayerNorm:
 *             1 + h·w image tokens of projection_dim.
 *
 * The convolutions, window partitions and channel attention are computed
 * here on host-addressable backend memory: the model loads on the CPU
 * backends only (an error names the backend otherwise). The matmuls,
 * LayerNorms and window attention go through the backend's ops.
 */
#ifndef PRISM_DAVIT_H
#define PRISM_DAVIT_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "json.h"
#include "prism_error.h"
#include "safetensors.h"

#define DAVIT_MAX_STAGES 8

typedef struct davit_config {
    int n_stages;
    int in_channels;
    int depths[DAVIT_MAX_STAGES], patch_size[DAVIT_MAX_STAGES];
    int patch_stride[DAVIT_MAX_STAGES], patch_padding[DAVIT_MAX_STAGES];
    bool patch_prenorm[DAVIT_MAX_STAGES];
    int embed_dim[DAVIT_MAX_STAGES], num_heads[DAVIT_MAX_STAGES], num_groups[DAVIT_MAX_STAGES];
    int window_size;
    int mlp_hidden[DAVIT_MAX_STAGES]; /* int(embed_dim · mlp_ratio) */
    bool qkv_bias;
    prism_act act;
    int projection_dim, max_position_embeddings, max_temporal_embeddings;
} davit_config;

/* Reads a Florence2VisionConfig object (transformers' defaults for absent
 * keys); errors name the file and `key`.member. */
int davit_config_from_json(davit_config *c, const json_value *o, const char *file,
                           const char *key, prism_error *err);
/* The side of the last stage's grid for image_size² pixels, and whether the
 * learned 2-D positions cover it. */
int davit_grid_side(const davit_config *c, int image_size);

typedef struct davit_model davit_model;

/* Loads `prefix`vision_tower.* and `prefix`multi_modal_projector.* for
 * images of image_size² pixels, up to max_batch at once. w must stay open
 * while the model lives. */
int davit_load(davit_model **out, const davit_config *cfg, const st_weights *w,
               const char *prefix, prism_backend *be, int image_size, int max_batch,
               prism_error *err);
void davit_free(davit_model *m);

int davit_n_tokens(const davit_model *m); /* 1 + h·w */
int64_t davit_param_count(const davit_model *m);
int64_t davit_tensor_count(const davit_model *m);

/* Image tokens of B ≤ max_batch images: pixels (host, [B, C, S, S],
 * preprocessed) → out (backend memory, rows b·out_bstride + t for token t,
 * projection_dim floats each). With last (host, [B, h·w, C_last], may be
 * NULL) the backbone's last stage is downloaded too (channels-last). */
int davit_forward(davit_model *m, const float *pixels, int B, float *out, int64_t out_bstride,
                  float *last, prism_error *err);

#endif
