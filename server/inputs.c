/* inputs.c - image and text pipelines behind one adapter (see inputs.h).
 *
 * Compiled against engine/image.h and engine/tokenizer.h when the engine
 * has them; a build without one answers 422 for that input kind.
 */
#include "inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if __has_include("image.h") && defined(PRISM_HAVE_IMAGE)
#define INPUTS_IMAGES 1
#include "image.h"
#else
#define INPUTS_IMAGES 0
#endif
#if __has_include("tokenizer.h")
#define INPUTS_TEXTS 1
#include "tokenizer.h"
#else
#define INPUTS_TEXTS 0
#endif

struct inputs_ctx {
    int text_len;
    int channels, image_size;
    char why_no_images[256], why_no_texts[600];
#if INPUTS_IMAGES
    image_preproc pre;
    bool have_images;
    bool naflex;    /* SigLIP 2 NaFlex: images become patch rows (nf) */
    image_naflex nf;
#endif
#if INPUTS_TEXTS
    tok_tokenizer *tok;
#endif
};

int inputs_load(inputs_ctx **out, const char *dir, const siglip_config *cfg, prism_error *err)
{
    inputs_ctx *in = calloc(1, sizeof *in);
    if (!in)
        return prism_errorf(err, "out of memory");
    in->channels = cfg->vision.num_channels;
    in->image_size = cfg->vision.image_size;
    /* SigLIP's tokenizer pads to 64 (model_max_length); a model built with
     * fewer positions gets that many */
    in->text_len = cfg->text.max_position_embeddings < 64 ? cfg->text.max_position_embeddings : 64;
#if INPUTS_IMAGES
    if (cfg->vision.naflex) {
        if (image_naflex_load(&in->nf, dir, err)) {
            inputs_free(in);
            return -1;
        }
        if (in->nf.pre.source == IMAGE_PREPROC_DEFAULTS) { /* logged (inputs_image_defaults) */
            in->nf.patch_size = cfg->vision.patch_size;
            in->nf.max_num_patches = cfg->vision.num_patches;
        }
        if (in->nf.patch_size != cfg->vision.patch_size || in->channels != 3) {
            prism_errorf(err, "%s/%s: patch_size %d does not match the model's patch_size %d "
                         "(3 channels)", dir, image_preproc_source_name(&in->nf.pre),
                         in->nf.patch_size, cfg->vision.patch_size);
            inputs_free(in);
            return -1;
        }
        in->naflex = in->have_images = true;
        goto texts;
    }
    if (image_preproc_load(&in->pre, dir, err)) {
        inputs_free(in);
        return -1;
    }
    if (in->pre.source == IMAGE_PREPROC_DEFAULTS) /* the caller says so (inputs_image_defaults) */
        in->pre.width = in->pre.height = in->image_size;
    if (in->pre.width != in->image_size || in->pre.height != in->image_size ||
        in->channels != 3) {
        prism_errorf(err, "%s/%s: size %dx%d does not match the model's image_size %d "
                     "(3 channels)", dir, image_preproc_source_name(&in->pre), in->pre.width,
                     in->pre.height, in->image_size);
        inputs_free(in);
        return -1;
    }
    in->have_images = true;
#else
    snprintf(in->why_no_images, sizeof in->why_no_images,
             "this build of prism has no image decoder (libjpeg-turbo and libspng were not "
             "found when it was built)");
#endif
#if INPUTS_IMAGES
texts:;
#endif
#if INPUTS_TEXTS
    /* a directory with no tokenizer file at all serves images only; one
     * with some of them must have what they need (tok_load says what) */
    static const char *const tok_files[] = {"spiece.model", "tokenizer.model",
                                            "tokenizer_config.json"};
    bool any = false;
    for (size_t k = 0; k < sizeof tok_files / sizeof tok_files[0]; k++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, tok_files[k]);
        any = any || stat(path, &st) == 0;
    }
    if (!any) {
        snprintf(in->why_no_texts, sizeof in->why_no_texts,
                 "the model directory has no tokenizer (spiece.model, or tokenizer.model with "
                 "tokenizer_config.json), so texts cannot be tokenized");
    } else {
        if (tok_load(&in->tok, dir, err)) {
            inputs_free(in);
            return -1;
        }
        if (tok_vocab_size(in->tok) > cfg->text.vocab_size) {
            prism_errorf(err, "%s/%s: %d pieces, more than config.json's text_config.vocab_size "
                         "%d", dir, tok_get_kind(in->tok) == TOK_KIND_SIGLIP ? "spiece.model"
                                                                             : "tokenizer.model",
                         (int)tok_vocab_size(in->tok), cfg->text.vocab_size);
            inputs_free(in);
            return -1;
        }
    }
#else
    snprintf(in->why_no_texts, sizeof in->why_no_texts,
             "this build of prism has no tokenizer");
#endif
    (void)dir;
    *out = in;
    return 0;
}

void inputs_free(inputs_ctx *in)
{
    if (!in)
        return;
#if INPUTS_TEXTS
    tok_free(in->tok);
#endif
    free(in);
}

bool inputs_have_images(const inputs_ctx *in)
{
#if INPUTS_IMAGES
    return in->have_images;
#else
    (void)in;
    return false;
#endif
}

bool inputs_image_defaults(const inputs_ctx *in)
{
#if INPUTS_IMAGES
    return in->have_images &&
           (in->naflex ? in->nf.pre.source : in->pre.source) == IMAGE_PREPROC_DEFAULTS;
#else
    (void)in;
    return false;
#endif
}

void inputs_defaults_note(const inputs_ctx *in, const char *dir, char *buf, size_t n)
{
#if INPUTS_IMAGES
    if (in->naflex) {
        snprintf(buf, n, "%s has no processor_config.json or preprocessor_config.json: images "
                 "are preprocessed with Siglip2ImageProcessor's defaults (bilinear, rescale "
                 "1/255, mean and std 0.5) in patches of the model's %d pixels, at most its "
                 "num_patches %d", dir, in->nf.patch_size, in->nf.max_num_patches);
        return;
    }
#endif
    snprintf(buf, n, "%s has no processor_config.json or preprocessor_config.json: images are "
             "preprocessed with SiglipImageProcessor's defaults (bicubic, rescale 1/255, mean "
             "and std 0.5) at the vision tower's %dx%d", dir, in->image_size, in->image_size);
}

bool inputs_have_texts(const inputs_ctx *in)
{
#if INPUTS_TEXTS
    return in->tok != NULL;
#else
    (void)in;
    return false;
#endif
}

const char *inputs_why_no_images(const inputs_ctx *in)
{
    return in->why_no_images;
}

const char *inputs_why_no_texts(const inputs_ctx *in)
{
    return in->why_no_texts;
}

int inputs_text_len(const inputs_ctx *in)
{
    return in->text_len;
}

size_t inputs_image_floats(const inputs_ctx *in)
{
#if INPUTS_IMAGES
    if (in->naflex)
        return 0;
#endif
    return (size_t)in->channels * in->image_size * in->image_size;
}

bool inputs_naflex(const inputs_ctx *in)
{
#if INPUTS_IMAGES
    return in->naflex;
#else
    (void)in;
    return false;
#endif
}

int inputs_default_patches(const inputs_ctx *in)
{
#if INPUTS_IMAGES
    return in->naflex ? in->nf.max_num_patches : 0;
#else
    (void)in;
    return 0;
#endif
}

size_t inputs_patch_floats(const inputs_ctx *in)
{
#if INPUTS_IMAGES
    return in->naflex ? image_naflex_row_floats(&in->nf) : 0;
#else
    (void)in;
    return 0;
#endif
}

bool inputs_text_masked(const inputs_ctx *in)
{
#if INPUTS_TEXTS
    return in->tok && tok_get_kind(in->tok) == TOK_KIND_SIGLIP2;
#else
    (void)in;
    return false;
#endif
}

void inputs_text_mask(const inputs_ctx *in, int n_tokens, int32_t *mask)
{
    const int T = in->text_len;
#if INPUTS_TEXTS
    const bool left = in->tok && tok_pads_left(in->tok);
#else
    const bool left = false;
#endif
    for (int t = 0; t < T; t++)
        mask[t] = left ? t >= T - n_tokens : t < n_tokens;
}

int inputs_probe_image(const uint8_t *data, size_t len, size_t max_pixels, const char *param,
                       api_error *e)
{
#if INPUTS_IMAGES
    image_info info;
    prism_error err = {0};
    if (image_probe(data, len, &info, &err)) {
        if (err.code == PRISM_ERR_UNSUPPORTED) /* the message says what is supported */
            return api_errorf(e, API_ERR_UNSUPPORTED_IMAGE_FORMAT, param, "%s: %s", param,
                              err.msg);
        return api_errorf(e, API_ERR_INVALID_IMAGE, param, "%s: %s", param, err.msg);
    }
    if ((size_t)info.width * (size_t)info.height > max_pixels)
        return api_errorf(e, API_ERR_IMAGE_TOO_LARGE, param,
                          "%s: %dx%d is %zu pixels, over the limit of %zu", param, info.width,
                          info.height, (size_t)info.width * (size_t)info.height, max_pixels);
    return 0;
#else
    (void)data, (void)len, (void)max_pixels;
    return api_errorf(e, API_ERR_IMAGES_UNSUPPORTED, param, "%s: this build has no image decoding",
                      param);
#endif
}

int inputs_image_check(const inputs_ctx *in, const uint8_t *data, size_t len, size_t max_pixels,
                       const char *param, api_error *e)
{
    if (!inputs_have_images(in))
        return api_errorf(e, API_ERR_IMAGES_UNSUPPORTED, param, "%s: %s", param,
                          in->why_no_images);
    return inputs_probe_image(data, len, max_pixels, param, e);
}

int inputs_image(const inputs_ctx *in, const uint8_t *data, size_t len, size_t max_pixels,
                 float *chw, const char *param, api_error *e)
{
    if (!inputs_have_images(in))
        return api_errorf(e, API_ERR_IMAGES_UNSUPPORTED, param, "%s: %s", param,
                          in->why_no_images);
#if INPUTS_IMAGES
    if (in->naflex)
        return api_errorf(e, API_ERR_INTERNAL_ERROR, param,
                          "%s: a NaFlex model takes patches (inputs_image_patches)", param);
    prism_error err = {0};
    if (image_to_pixel_values(data, len, &in->pre, max_pixels, chw, &err))
        return api_errorf(e, API_ERR_INVALID_IMAGE, param, "%s: %s", param, err.msg);
    return 0;
#else
    (void)data, (void)len, (void)max_pixels, (void)chw;
    return -1;
#endif
}

int inputs_image_patches(const inputs_ctx *in, const uint8_t *data, size_t len,
                         size_t max_pixels, int max_num_patches, int patch_limit,
                         float **patches, int *rows, int *cols, const char *param,
                         api_error *e)
{
    *patches = NULL;
    if (!inputs_have_images(in))
        return api_errorf(e, API_ERR_IMAGES_UNSUPPORTED, param, "%s: %s", param,
                          in->why_no_images);
#if INPUTS_IMAGES
    if (!in->naflex)
        return api_errorf(e, API_ERR_INTERNAL_ERROR, param, "%s: not a NaFlex model", param);
    image_naflex cfg = in->nf;
    if (max_num_patches > 0)
        cfg.max_num_patches = max_num_patches;
    const size_t row = image_naflex_row_floats(&cfg);
    float *pv = malloc((size_t)cfg.max_num_patches * row * sizeof *pv);
    if (!pv)
        return api_errorf(e, API_ERR_OUT_OF_MEMORY, param, "%s: out of memory", param);
    prism_error err = {0};
    if (image_to_naflex(data, len, &cfg, max_pixels, patch_limit, pv, NULL, rows, cols, &err)) {
        free(pv);
        return api_errorf(e, API_ERR_INVALID_IMAGE, param, "%s: %s", param, err.msg);
    }
    /* keep the image's own rows only: the batch pads them */
    float *fit = realloc(pv, (size_t)*rows * *cols * row * sizeof *pv);
    *patches = fit ? fit : pv;
    return 0;
#else
    (void)data, (void)len, (void)max_pixels, (void)max_num_patches, (void)patch_limit, (void)rows,
        (void)cols;
    return -1;
#endif
}

int inputs_text(const inputs_ctx *in, const char *text, int32_t *ids, int *n_tokens,
                const char *param, api_error *e)
{
    if (!inputs_have_texts(in))
        return api_errorf(e, API_ERR_TEXTS_UNSUPPORTED, param, "%s: %s", param,
                          in->why_no_texts);
#if INPUTS_TEXTS
    prism_error err = {0};
    if (tok_siglip_encode(in->tok, text, strlen(text), ids, in->text_len, n_tokens, &err))
        return api_errorf(e, API_ERR_INVALID_TEXT, param, "%s: %s", param, err.msg);
    return 0;
#else
    (void)text, (void)ids, (void)n_tokens;
    return -1;
#endif
}
