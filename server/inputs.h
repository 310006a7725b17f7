/* inputs.h - the server's one door to the engine's input pipelines.
 *
 * Images (file bytes → normalised CHW floats, engine/image.h) and texts
 * (UTF-8 → SigLIP's token ids, engine/tokenizer.h) are reached only through
 * these functions, which turn engine errors into API errors: an unknown
 * format is a 415, an image over the pixel limit a 413 (read from its header
 * before any pixel is decoded), a corrupt file or invalid text a 400.
 *
 * A model directory without spiece.model can embed images only, and a
 * build without the image libraries texts only: the missing path answers
 * 422 with a message saying why, never a made-up result.
 *
 * Every function is safe to call from several preprocessing workers at
 * once.
 */
#ifndef PRISM_SERVER_INPUTS_H
#define PRISM_SERVER_INPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_error.h"
#include "prism_error.h"
#include "siglip_config.h"

typedef struct inputs_ctx inputs_ctx;

/* Loads what MODEL_DIR has for the model cfg: the processor settings (their
 * size must be the model's image size; NaFlex: their patch_size the
 * model's) and the tokenizer (spiece.model, or tokenizer.model with
 * tokenizer_config.json; its vocabulary must fit the model's). Fails on
 * files that exist but are wrong or incomplete. */
int inputs_load(inputs_ctx **out, const char *model_dir, const siglip_config *cfg,
                prism_error *err);
void inputs_free(inputs_ctx *in);

bool inputs_have_images(const inputs_ctx *in);
bool inputs_have_texts(const inputs_ctx *in);
/* True when the model directory has no processor file and images are
 * preprocessed with SiglipImageProcessor's defaults (image.h): worth a
 * warning, since transformers would refuse such a directory. */
bool inputs_image_defaults(const inputs_ctx *in);
/* What those defaults are, for that warning (model directory dir). */
void inputs_defaults_note(const inputs_ctx *in, const char *dir, char *buf, size_t n);
/* Why images/texts are unavailable (for logs and 422 messages). */
const char *inputs_why_no_images(const inputs_ctx *in);
const char *inputs_why_no_texts(const inputs_ctx *in);

int inputs_text_len(const inputs_ctx *in);      /* ids per text (T) */
size_t inputs_image_floats(const inputs_ctx *in); /* floats per image (C*S*S); 0 for NaFlex */

/* NaFlex (SigLIP 2, model_type siglip2): images are patch rows. */
bool inputs_naflex(const inputs_ctx *in);
int inputs_default_patches(const inputs_ctx *in); /* the processor's max_num_patches */
size_t inputs_patch_floats(const inputs_ctx *in); /* floats per patch row (3*P*P) */

/* Whether the model gets the tokenizer's attention mask (SigLIP 2's Gemma
 * tokenizer returns one and the model applies it; SigLIP's returns none),
 * and that mask for a text of n_tokens ids (inputs_text_len values, 1 for
 * the ids, 0 for the padding, on the side the tokenizer pads). */
bool inputs_text_masked(const inputs_ctx *in);
void inputs_text_mask(const inputs_ctx *in, int n_tokens, int32_t *mask);

/* Reads the image header only: 415 for an unknown format, 413 above
 * max_pixels, 400 for a broken header. `param` names the field. The same
 * rule for every endpoint, whichever model the image goes to. */
int inputs_probe_image(const uint8_t *data, size_t len, size_t max_pixels, const char *param,
                       api_error *e);
/* inputs_probe_image, after checking that the model takes images. */
int inputs_image_check(const inputs_ctx *in, const uint8_t *data, size_t len, size_t max_pixels,
                       const char *param, api_error *e);
/* Decodes, resizes and normalises into chw (inputs_image_floats floats). */
int inputs_image(const inputs_ctx *in, const uint8_t *data, size_t len, size_t max_pixels,
                 float *chw, const char *param, api_error *e);
/* NaFlex: decodes, resizes to at most max_num_patches patches (0: the
 * processor's default; above patch_limit is refused) keeping the aspect
 * ratio, normalises and cuts into *rows x *cols patch rows: *patches
 * (malloc'd, rows*cols*inputs_patch_floats floats; the caller frees it). */
int inputs_image_patches(const inputs_ctx *in, const uint8_t *data, size_t len,
                         size_t max_pixels, int max_num_patches, int patch_limit,
                         float **patches, int *rows, int *cols, const char *param,
                         api_error *e);
/* Tokenizes text into ids (inputs_text_len ids); *n_tokens gets the count
 * before padding. */
int inputs_text(const inputs_ctx *in, const char *text, int32_t *ids, int *n_tokens,
                const char *param, api_error *e);

#endif
