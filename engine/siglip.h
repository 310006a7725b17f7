/* siglip.h - the SigLIP / SigLIP 2 dual encoder on a prism backend.
 *
 * siglip_load reads a model directory exactly as the Hugging Face hub ships
 * it (config.json + model.safetensors or its sharded form), checks every
 * tensor's name and shape against the config, imports the weights into the
 * backend and allocates activations for `max_batch` inputs at once. Larger
 * requests are run in chunks of max_batch.
 *
 * model_type "siglip" (SigLIP, and SigLIP 2 FixRes checkpoints) takes
 * fixed-size images (siglip_embed_images); "siglip2" (SigLIP 2 NaFlex) takes
 * patchified images of any aspect ratio with a mask (siglip_embed_naflex).
 * The text tower is the same for both.
 *
 * A siglip_model is used by one thread at a time (its activation buffers
 * are reused across calls); the engine worker owns it.
 */
#ifndef PRISM_SIGLIP_H
#define PRISM_SIGLIP_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "prism_error.h"
#include "safetensors.h"
#include "siglip_config.h"

typedef struct siglip_model siglip_model;

typedef struct siglip_info {
    int64_t n_params;      /* floats in all tensors the model uses */
    int64_t n_tensors;     /* tensors the model uses */
    int64_t n_unused;      /* tensors in the checkpoint the model ignores */
    int n_files;           /* safetensors files (1, or the shard count) */
    int64_t bytes_by_dtype[3]; /* F32, F16, BF16 bytes on disk, used tensors */
    int64_t bytes_imported;    /* bytes converted to float32 at load */
} siglip_info;

/* The most patch rows per image a NaFlex model may be loaded for. */
#define SIGLIP_MAX_PATCHES 16384

int siglip_load(siglip_model **out, const char *dir, prism_backend *be, int max_batch,
                prism_error *err);
/* As siglip_load; a NaFlex model takes images of up to max_patches patch
 * rows each (0: vision_config.num_patches, which is also
 * Siglip2ImageProcessor's default max_num_patches, 256). Its activations
 * hold max_batch × num_patches rows (or max_patches, if more): images larger
 * than num_patches run in smaller chunks rather than every activation
 * growing by max_patches / num_patches. Ignored for fixed-size models. */
int siglip_load_ex(siglip_model **out, const char *dir, prism_backend *be, int max_batch,
                   int max_patches, prism_error *err);
void siglip_free(siglip_model *m);

const siglip_config *siglip_get_config(const siglip_model *m);
const siglip_info *siglip_get_info(const siglip_model *m);
/* Width of an embedding (vision hidden size == text projection size). */
int siglip_embed_dim(const siglip_model *m);
float siglip_logit_scale(const siglip_model *m); /* the raw parameter; exp() is applied */
float siglip_logit_bias(const siglip_model *m);

/* Image embeddings: pixels [n, C, S, S] float32 (host, already normalised
 * as SiglipImageProcessor does) → out [n, dim] (host). With `normalize` the
 * rows are L2-normalised, else they are the pooler output. */
int siglip_embed_images(siglip_model *m, const float *pixels, int n, bool normalize, float *out,
                        prism_error *err);

/* Text embeddings: ids [n, T] (host), 1 ≤ T ≤ max_position_embeddings →
 * out [n, dim] (host). The last position is pooled, as transformers does.
 * Every position attends to every other (pads included), as SiglipModel
 * does: its tokenizer returns no attention mask. */
int siglip_embed_texts(siglip_model *m, const int32_t *ids, int n, int T, bool normalize,
                       float *out, prism_error *err);

/* The same with an attention mask [n, T] (host; 0 = padding, masked as
 * keys; NULL = none): what Siglip2Model computes when given the
 * attention_mask its Gemma tokenizer returns. The last position is still
 * the one pooled. A row that masks every position is refused. */
int siglip_embed_texts_masked(siglip_model *m, const int32_t *ids, const int32_t *mask, int n,
                              int T, bool normalize, float *out, prism_error *err);

/* NaFlex (model_type siglip2). */
bool siglip_is_naflex(const siglip_model *m);
int siglip_patch_size(const siglip_model *m);       /* P */
int siglip_patch_dim(const siglip_model *m);        /* C·P·P: one patch row */
int siglip_max_patches(const siglip_model *m);      /* rows per image loaded for; 0 if fixed-size */

/* Image embeddings of a NaFlex model, as Siglip2Model.get_image_features:
 *   patches [n, max_patches, C·P·P] (host): each image's patches in raster
 *     order, each patch (py, px, c), normalised, as Siglip2ImageProcessor
 *     writes pixel_values; rows past the image are padding;
 *   mask [n, max_patches] (host): pixel_attention_mask, nonzero = a patch;
 *   spatial_shapes [n, 2] (host): (h, w) patches of each image, h·w ≤
 *     max_patches;
 *   max_patches ≤ siglip_max_patches(m).
 * Images of different sizes run in one call, bucketed: by patch count,
 * largest first, in chunks of up to max_batch images of similar counts
 * (and no more rows than the activations hold, see siglip_load_ex),
 * each computed over its own longest image (rows masked in all of them are
 * dropped), the others padded and masked. Padded rows change nothing:
 * their values are never read. out [n, dim] (host), in the call's order. */
int siglip_embed_naflex(siglip_model *m, const float *patches, const int32_t *mask,
                        const int32_t *spatial_shapes, int n, int max_patches, bool normalize,
                        float *out, prism_error *err);

/* pad_to_max: siglip_embed_naflex runs chunks of max_batch images in call
 * order, each padded to its largest, instead of buckets (the same results;
 * tools/bench/bench_naflex.c compares the two). */
void siglip_naflex_set_padding(siglip_model *m, bool pad_to_max);

/* The vision tower alone, for PaLI-style models: loads vision_model.*
 * (patch and position embeddings, encoder layers, post_layernorm; not the
 * pooling head) from a checkpoint the caller opened and keeps open while m
 * lives. Only siglip_vision_hidden and siglip_free apply to such a model. */
int siglip_vision_load(siglip_model **out, const siglip_vision_config *vc, const st_weights *w,
                       prism_backend *be, int max_batch, prism_error *err);

/* The last hidden state (after post_layernorm) of B ≤ max_batch images
 * (pixels [B, C, S, S], host): *out points to [B·N, E] in backend memory,
 * valid until the next call on m. */
int siglip_vision_hidden(siglip_model *m, const float *pixels, int B, const float **out,
                         prism_error *err);

/* logits[i, j] = exp(logit_scale)·⟨img_i, txt_j⟩ + logit_bias over
 * L2-normalised embeddings (logits_per_image). Host arrays. */
void siglip_logits(const siglip_model *m, const float *img, int n_img, const float *txt,
                   int n_txt, float *logits);

/* The work of one image / one text of length T, in floating-point
 * operations (2 per multiply-add), for throughput reports. */
double siglip_image_flops(const siglip_config *cfg);
/* The same for an image of n_patches patches (NaFlex). */
double siglip_naflex_image_flops(const siglip_config *cfg, int n_patches);
double siglip_text_flops(const siglip_config *cfg, int T);

#endif
