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
        /* the engine embeds NaFlex patches (siglip_embed_naflex); the request
         * path that cuts images into them is not wired to it yet */
        snprintf(in->why_no_images, sizeof in->why_no_images,
                 "images for NaFlex models (model_type siglip2) are not served by this "
                 "version (only their texts)");
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
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/spiece.model", dir);
    if (stat(path, &st) != 0) {
        snprintf(in->why_no_texts, sizeof in->why_no_texts,
                 "the model directory has no spiece.model, so texts cannot be tokenized");
    } else {
        if (tok_load(&in->tok, dir, err)) {
            inputs_free(in);
            return -1;
        }
        if (tok_vocab_size(in->tok) > cfg->text.vocab_size) {
            prism_errorf(err, "%s: %d pieces, more than the model's vocab_size %d", path,
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
    return in->have_images && in->pre.source == IMAGE_PREPROC_DEFAULTS;
#else
    (void)in;
    return false;
#endif
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
    return (size_t)in->channels * in->image_size * in->image_size;
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
    prism_error err = {0};
    if (image_to_pixel_values(data, len, &in->pre, max_pixels, chw, &err))
        return api_errorf(e, API_ERR_INVALID_IMAGE, param, "%s: %s", param, err.msg);
    return 0;
#else
    (void)data, (void)len, (void)max_pixels, (void)chw;
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
