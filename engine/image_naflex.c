/* image_naflex.c - SigLIP 2 NaFlex preprocessing: an image at its own aspect
 * ratio to a padded sequence of patches, as transformers'
 * Siglip2ImageProcessorPil computes it.
 *
 * Per image (Siglip2ImageProcessorPil._preprocess):
 *   convert_to_rgb only when do_convert_rgb (the checkpoints say null: off);
 *   resize (Pillow, cfg->pre.resample, BILINEAR by default) to the size
 *     get_image_size_for_max_num_patches picks (image_naflex_size);
 *   rescale and normalise in numpy's float order (image_normalize_lut);
 *   convert_image_to_patches: CHW reshaped to
 *     (C, rows, P, cols, P) -> transpose (1, 3, 2, 4, 0) -> (rows*cols, P*P*C),
 *     so a patch is its P rows of P pixels, each pixel's 3 channels together;
 *   pad_along_first_dim: zero rows up to max_num_patches, mask 1 then 0;
 *   spatial_shapes = (rows, cols).
 */
#include "image_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* get_scaled_image_size: ceil(size * scale / patch) * patch, at least one
 * patch. Python's float arithmetic is IEEE double, as here; the ceiling is
 * an exact integer (at most 2^31 * 100 / patch, well inside int64). */
static int64_t naflex_scaled_side(double scale, int size, int patch)
{
    const double scaled = (double)size * scale;
    const int64_t side = (int64_t)ceil(scaled / (double)patch) * patch;
    return side > patch ? side : patch;
}

int image_naflex_size(int width, int height, int patch, int max_patches, int *out_width,
                      int *out_height, prism_error *err)
{
    if (width < 1 || height < 1)
        return prism_errorf(err, "naflex: invalid image size %dx%d", width, height);
    if (patch < 1 || patch > IMAGE_NAFLEX_MAX_PATCH_SIZE)
        return prism_errorf(err, "naflex: patch size %d is not in 1..%d", patch,
                            IMAGE_NAFLEX_MAX_PATCH_SIZE);
    if (max_patches < 1)
        return prism_errorf(err, "naflex: max_num_patches %d must be at least 1", max_patches);

    /* get_image_size_for_max_num_patches: bisect the scale between eps/10
     * and 100 until the interval is narrower than eps, keeping the largest
     * scale seen whose patch count fits. */
    const double eps = 1e-5;
    double scale_min = eps / 10, scale_max = 100.0;
    while (scale_max - scale_min >= eps) {
        const double scale = (scale_min + scale_max) / 2;
        const int64_t th = naflex_scaled_side(scale, height, patch);
        const int64_t tw = naflex_scaled_side(scale, width, patch);
        /* (th / patch) * (tw / patch): Python's true division, then a float
         * product compared with the int */
        const double num_patches = ((double)th / patch) * ((double)tw / patch);
        if (num_patches <= max_patches)
            scale_min = scale;
        else
            scale_max = scale;
    }
    const int64_t th = naflex_scaled_side(scale_min, height, patch);
    const int64_t tw = naflex_scaled_side(scale_min, width, patch);
    /* Even the smallest scale can give too many patches to a very long,
     * thin image (transformers then returns more rows than max_num_patches,
     * which no batch can hold). */
    if ((th / patch) * (tw / patch) > max_patches)
        return prism_errorf(err, "naflex: a %dx%d image needs at least %lld patches of %d, more "
                                 "than max_num_patches %d",
                            width, height, (long long)((th / patch) * (tw / patch)), patch,
                            max_patches);
    *out_width = (int)tw;
    *out_height = (int)th;
    return 0;
}

void image_naflex_defaults(image_naflex *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    image_preproc_naflex_defaults(&cfg->pre);
    cfg->patch_size = 16;
    cfg->max_num_patches = 256;
}

static int get_positive_int(const json_value *root, const char *key, int max, int *out,
                            const char *name, prism_error *err)
{
    const json_value *v = json_get(root, key);
    if (!v)
        return 0;
    if (v->type == JSON_NULL) /* transformers fails on None in arithmetic */
        return prism_errorf(err, "%s: '%s' is null", name, key);
    if (!v->is_integer || v->integer < 1 || v->integer > max)
        return prism_errorf(err, "%s: '%s' must be an integer in 1..%d", name, key, max);
    *out = (int)v->integer;
    return 0;
}

static int parse_node(image_naflex *cfg, const json_value *node, const char *name,
                      prism_error *err)
{
    image_naflex_defaults(cfg);
    if (image_preproc_parse_node(&cfg->pre, node, true, name, err))
        return -1;
    return get_positive_int(node, "patch_size", IMAGE_NAFLEX_MAX_PATCH_SIZE, &cfg->patch_size,
                            name, err) ||
                   get_positive_int(node, "max_num_patches", IMAGE_NAFLEX_MAX_NUM_PATCHES,
                                    &cfg->max_num_patches, name, err)
               ? -1
               : 0;
}

int image_naflex_parse(image_naflex *cfg, const char *json, size_t len, const char *name,
                       prism_error *err)
{
    char jerr[256];
    json_value *root = json_parse(json, len, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s: %s", name, jerr);
    int r = parse_node(cfg, root, name, err);
    json_free(root);
    return r;
}

int image_naflex_load(image_naflex *cfg, const char *model_dir, prism_error *err)
{
    char name[4200];
    json_value *root;
    const json_value *node;
    image_preproc_source source;
    image_naflex_defaults(cfg);
    if (image_processor_json_load(model_dir, &root, &node, &source, name, sizeof name, err))
        return -1;
    if (!node)
        return 0; /* IMAGE_PREPROC_DEFAULTS */
    int r = parse_node(cfg, node, name, err);
    cfg->pre.source = source;
    json_free(root);
    return r;
}

/* convert_image_to_patches + pad_along_first_dim on an 8-bit image whose
 * sides are multiples of the patch size. */
static void naflex_patches(const image_rgb *img, const image_naflex *cfg, float *pixel_values,
                           int32_t *mask)
{
    const int P = cfg->patch_size;
    const int rows = img->height / P, cols = img->width / P;
    const size_t row_floats = image_naflex_row_floats(cfg);
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        image_normalize_lut(&cfg->pre, c, lut[c]);
    float *o = pixel_values;
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++)
            for (int py = 0; py < P; py++) {
                const size_t y = (size_t)r * P + py, x = (size_t)q * P;
                const uint8_t *s = img->data + (y * img->width + x) * 3;
                for (int px = 0; px < P; px++, s += 3, o += 3) {
                    o[0] = lut[0][s[0]];
                    o[1] = lut[1][s[1]];
                    o[2] = lut[2][s[2]];
                }
            }
    const size_t valid = (size_t)rows * cols;
    memset(o, 0, ((size_t)cfg->max_num_patches - valid) * row_floats * sizeof *o);
    if (mask)
        for (int i = 0; i < cfg->max_num_patches; i++)
            mask[i] = (size_t)i < valid;
}

int image_rgb_to_naflex(image_rgb *img, const image_naflex *cfg, int max_num_patches_limit,
                        float *pixel_values, int32_t *mask, int *rows, int *cols,
                        prism_error *err)
{
    const int limit = max_num_patches_limit > 0 ? max_num_patches_limit
                                                : IMAGE_NAFLEX_DEFAULT_PATCH_LIMIT;
    const int P = cfg->patch_size, n = cfg->max_num_patches;
    if (n < 1 || n > limit)
        return prism_errorf(err, "naflex: max_num_patches %d is not in 1..%d", n, limit);
    if (P < 1 || P > IMAGE_NAFLEX_MAX_PATCH_SIZE)
        return prism_errorf(err, "naflex: patch size %d is not in 1..%d", P,
                            IMAGE_NAFLEX_MAX_PATCH_SIZE);
    if (!img->data || img->width <= 0 || img->height <= 0)
        return prism_errorf(err, "naflex: empty image");
    if (cfg->pre.do_convert_rgb)
        image_rgb_apply_key(img);
    if (!cfg->pre.do_resize) {
        if (img->width % P || img->height % P)
            return prism_errorf(err, "naflex: image is %dx%d, not a multiple of patch_size %d, "
                                     "and do_resize is false",
                                img->width, img->height, P);
        if ((int64_t)(img->width / P) * (img->height / P) > n)
            return prism_errorf(err, "naflex: image is %dx%d: %lld patches of %d, more than "
                                     "max_num_patches %d, and do_resize is false",
                                img->width, img->height,
                                (long long)(img->width / P) * (img->height / P), P, n);
        naflex_patches(img, cfg, pixel_values, mask);
        *rows = img->height / P, *cols = img->width / P;
        return 0;
    }
    int w, h;
    if (image_naflex_size(img->width, img->height, P, n, &w, &h, err))
        return -1;
    image_rgb sized;
    if (image_resize(img, w, h, cfg->pre.resample, &sized, err))
        return -1;
    naflex_patches(&sized, cfg, pixel_values, mask);
    image_rgb_free(&sized);
    *rows = h / P, *cols = w / P;
    return 0;
}

int image_to_naflex(const uint8_t *data, size_t len, const image_naflex *cfg, size_t max_pixels,
                    int max_num_patches_limit, float *pixel_values, int32_t *mask, int *rows,
                    int *cols, prism_error *err)
{
    /* the cheap refusal before any decoding */
    const int limit = max_num_patches_limit > 0 ? max_num_patches_limit
                                                : IMAGE_NAFLEX_DEFAULT_PATCH_LIMIT;
    if (cfg->max_num_patches < 1 || cfg->max_num_patches > limit)
        return prism_errorf(err, "naflex: max_num_patches %d is not in 1..%d",
                            cfg->max_num_patches, limit);
    image_rgb img;
    if (image_decode_rgb(data, len, max_pixels, &img, err))
        return -1;
    int r = image_rgb_to_naflex(&img, cfg, limit, pixel_values, mask, rows, cols, err);
    image_rgb_free(&img);
    return r;
}
