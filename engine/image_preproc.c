/* image_preproc.c - the image processor settings and the pipeline from image
 * bytes to SigLIP's pixel_values.
 *
 * The order and float types are those of transformers' Pillow backend
 * (image_processing_backends.PilBackend, SiglipImageProcessorPil):
 *   convert_to_rgb (a single transparent colour becomes white),
 *   resize (Pillow, cfg->resample, to exactly height x width),
 *   rescale: float32(float64(v) * rescale_factor),
 *   normalize: (x - float32(mean)) / float32(std), in float32,
 * channels first.
 *
 * The same reading serves SigLIP 2's NaFlex processor (image_naflex.c),
 * which keeps None where a file says null: a null do_* switch is off, a
 * null resample is the default, 'size' and 'do_center_crop' are not used.
 */
#include "image_internal.h"

#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void image_preproc_defaults(image_preproc *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->width = cfg->height = 224;
    cfg->resample = IMAGE_FILTER_BICUBIC;
    cfg->do_resize = cfg->do_rescale = cfg->do_normalize = cfg->do_convert_rgb = true;
    cfg->rescale_factor = 1.0 / 255.0;
    for (int c = 0; c < 3; c++)
        cfg->image_mean[c] = cfg->image_std[c] = 0.5;
}

void image_preproc_naflex_defaults(image_preproc *cfg)
{
    image_preproc_defaults(cfg);
    cfg->width = cfg->height = 0; /* the size comes from each image */
    cfg->resample = IMAGE_FILTER_BILINEAR;
    cfg->do_convert_rgb = false;  /* Siglip2ImageProcessor's None */
}

/* A key set to null: transformers keeps None, which is not the default
 * (image_mean: null fails, do_resize: null skips the resize), so such a
 * file is refused rather than guessed at. */
static int check_not_null(const json_value *root, const char *name, prism_error *err)
{
    static const char *const used[] = {"size", "resample", "rescale_factor", "do_resize",
                                       "do_rescale", "do_normalize", "do_convert_rgb",
                                       "image_mean", "image_std"};
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++) {
        const json_value *v = json_get(root, used[i]);
        if (v && v->type == JSON_NULL)
            return prism_errorf(err, "%s: '%s' is null", name, used[i]);
    }
    return 0;
}

static bool present(const json_value *v)
{
    return v && v->type != JSON_NULL;
}

/* A missing key keeps *out; null leaves it too unless null_is_false (NaFlex:
 * transformers keeps None, and `if None:` is false). */
static int get_bool(const json_value *root, const char *key, bool *out, bool null_is_false,
                    const char *name, prism_error *err)
{
    const json_value *v = json_get(root, key);
    if (v && v->type == JSON_NULL && null_is_false)
        *out = false;
    if (!present(v))
        return 0;
    if (v->type != JSON_BOOL)
        return prism_errorf(err, "%s: '%s' must be true or false", name, key);
    *out = v->boolean;
    return 0;
}

static int get_triple(const json_value *root, const char *key, double out[3], bool positive,
                      const char *name, prism_error *err)
{
    const json_value *v = json_get(root, key);
    if (!present(v))
        return 0;
    double t[3];
    if (v->type == JSON_NUMBER) {
        t[0] = t[1] = t[2] = v->number;
    } else if (v->type == JSON_ARRAY && v->count == 3) {
        for (int c = 0; c < 3; c++) {
            if (v->items[c].type != JSON_NUMBER)
                return prism_errorf(err, "%s: '%s' must hold numbers", name, key);
            t[c] = v->items[c].number;
        }
    } else {
        return prism_errorf(err, "%s: '%s' must be a number or a list of 3 numbers", name, key);
    }
    for (int c = 0; c < 3; c++) {
        if (positive && !(t[c] > 0))
            return prism_errorf(err, "%s: '%s' must be positive", name, key);
        out[c] = t[c];
    }
    return 0;
}

static int parse_size(image_preproc *cfg, const json_value *root, const char *name,
                      prism_error *err)
{
    const json_value *size = json_get(root, "size");
    if (!present(size))
        return 0;
    const json_value *hh = json_get(size, "height"), *ww = json_get(size, "width");
    if (size->type != JSON_OBJECT || !present(hh) || !present(ww)) {
        /* An int or {"shortest_edge"} keeps the aspect ratio in
         * transformers; SigLIP's towers need a fixed square input. */
        return prism_errorf(err, "%s: 'size' must be {\"height\": H, \"width\": W}", name);
    }
    if (!hh->is_integer || !ww->is_integer || hh->integer < 1 || ww->integer < 1 ||
        hh->integer > 8192 || ww->integer > 8192)
        return prism_errorf(err, "%s: 'size' height and width must be integers in 1..8192",
                            name);
    cfg->height = (int)hh->integer, cfg->width = (int)ww->integer;
    return 0;
}

/* NaFlex: a key transformers needs, set to null, fails there too
 * (rescale_factor with do_rescale, image_mean / image_std with do_normalize). */
static int check_needed_not_null(const image_preproc *cfg, const json_value *root,
                                 const char *name, prism_error *err)
{
    const json_value *v;
    if (cfg->do_rescale && (v = json_get(root, "rescale_factor")) && v->type == JSON_NULL)
        return prism_errorf(err, "%s: 'rescale_factor' is null and do_rescale is true", name);
    static const char *const norm[] = {"image_mean", "image_std"};
    for (int i = 0; i < 2; i++)
        if (cfg->do_normalize && (v = json_get(root, norm[i])) && v->type == JSON_NULL)
            return prism_errorf(err, "%s: '%s' is null and do_normalize is true", name, norm[i]);
    return 0;
}

int image_preproc_parse_node(image_preproc *cfg, const json_value *root, bool naflex,
                             const char *name, prism_error *err)
{
    if (root->type != JSON_OBJECT)
        return prism_errorf(err, "%s: not a JSON object", name);
    if (naflex)
        image_preproc_naflex_defaults(cfg);
    else
        image_preproc_defaults(cfg);
    if (!naflex && (check_not_null(root, name, err) || parse_size(cfg, root, name, err)))
        return -1;
    const json_value *rs = json_get(root, "resample");
    if (present(rs)) {
        if (!rs->is_integer || rs->integer < 1 || rs->integer > 5)
            return prism_errorf(err, "%s: 'resample' %s is not supported (1 LANCZOS, 2 BILINEAR, "
                                     "3 BICUBIC, 4 BOX, 5 HAMMING)",
                                name, rs->is_integer && rs->integer == 0 ? "0 (NEAREST)" : "value");
        cfg->resample = (image_filter)rs->integer;
    }
    const json_value *rf = json_get(root, "rescale_factor");
    if (present(rf)) {
        if (rf->type != JSON_NUMBER)
            return prism_errorf(err, "%s: 'rescale_factor' must be a number", name);
        cfg->rescale_factor = rf->number;
    }
    if (get_bool(root, "do_resize", &cfg->do_resize, naflex, name, err) ||
        get_bool(root, "do_rescale", &cfg->do_rescale, naflex, name, err) ||
        get_bool(root, "do_normalize", &cfg->do_normalize, naflex, name, err) ||
        get_bool(root, "do_convert_rgb", &cfg->do_convert_rgb, naflex, name, err) ||
        get_triple(root, "image_mean", cfg->image_mean, false, name, err) ||
        get_triple(root, "image_std", cfg->image_std, true, name, err))
        return -1;
    if (naflex) /* Siglip2ImageProcessor has no crop step */
        return check_needed_not_null(cfg, root, name, err);
    bool crop = false;
    if (get_bool(root, "do_center_crop", &crop, false, name, err))
        return -1;
    if (crop)
        return prism_errorf(err, "%s: 'do_center_crop' is not supported", name);
    return 0;
}

int image_preproc_parse(image_preproc *cfg, const char *json, size_t len, const char *name,
                        prism_error *err)
{
    char jerr[256];
    json_value *root = json_parse(json, len, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s: %s", name, jerr);
    int r = image_preproc_parse_node(cfg, root, false, name, err);
    json_free(root);
    return r;
}

/* Parses DIR/FILE into *root; *root stays NULL when the file does not
 * exist. */
static int read_json(const char *dir, const char *file, json_value **root, prism_error *err)
{
    char path[4096];
    *root = NULL;
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
        return prism_errorf(err, "model directory path too long");
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : prism_errorf(err, "%s: %s", path, strerror(errno));
    fclose(f);
    char jerr[256];
    *root = json_parse_file(path, jerr, sizeof jerr);
    return *root ? 0 : prism_errorf(err, "%s", jerr);
}

int image_processor_json_load(const char *model_dir, json_value **root, const json_value **node,
                              image_preproc_source *source, char *name, size_t name_len,
                              prism_error *err)
{
    *node = NULL;
    *source = IMAGE_PREPROC_DEFAULTS;
    /* transformers 5: processor_config.json nests the image processor's
     * settings, and wins over preprocessor_config.json when it does */
    if (read_json(model_dir, "processor_config.json", root, err))
        return -1;
    const json_value *nested = *root && (*root)->type == JSON_OBJECT
                                   ? json_get(*root, "image_processor") : NULL;
    if (nested && nested->type != JSON_NULL) {
        snprintf(name, name_len, "%s/processor_config.json: image_processor", model_dir);
        *node = nested;
        *source = IMAGE_PREPROC_PROCESSOR_CONFIG;
        return 0;
    }
    json_free(*root);
    if (read_json(model_dir, "preprocessor_config.json", root, err))
        return -1;
    if (!*root)
        return 0;
    snprintf(name, name_len, "%s/preprocessor_config.json", model_dir);
    *node = *root;
    *source = IMAGE_PREPROC_PREPROCESSOR_CONFIG;
    return 0;
}

int image_preproc_load(image_preproc *cfg, const char *model_dir, prism_error *err)
{
    char name[4200];
    json_value *root;
    const json_value *node;
    image_preproc_source source;
    image_preproc_defaults(cfg);
    if (image_processor_json_load(model_dir, &root, &node, &source, name, sizeof name, err))
        return -1;
    if (!node)
        return 0; /* IMAGE_PREPROC_DEFAULTS */
    int r = image_preproc_parse_node(cfg, node, false, name, err);
    cfg->source = source;
    json_free(root);
    return r;
}

const char *image_preproc_source_name(const image_preproc *cfg)
{
    switch (cfg->source) {
    case IMAGE_PREPROC_PROCESSOR_CONFIG:
        return "processor_config.json (image_processor)";
    case IMAGE_PREPROC_PREPROCESSOR_CONFIG:
        return "preprocessor_config.json";
    default:
        return "no processor file (SiglipImageProcessor's defaults)";
    }
}

void image_normalize_lut(const image_preproc *cfg, int c, float lut[256])
{
    /* numpy: np.array(mean, dtype=float32), image float32 */
    const float mean = (float)cfg->image_mean[c], std = (float)cfg->image_std[c];
    for (int v = 0; v < 256; v++) {
        float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
        if (cfg->do_normalize)
            x = (x - mean) / std;
        lut[v] = x;
    }
}

int image_normalize_chw(const image_rgb *img, const image_preproc *cfg, float *out_chw,
                        prism_error *err)
{
    if (!img->data || img->width <= 0 || img->height <= 0)
        return prism_errorf(err, "normalize: empty image");
    const size_t plane = (size_t)img->width * img->height;
    for (int c = 0; c < 3; c++) {
        float lut[256];
        image_normalize_lut(cfg, c, lut);
        const uint8_t *p = img->data + c;
        float *o = out_chw + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++)
            o[i] = lut[p[3 * i]];
    }
    return 0;
}

int image_rgb_to_pixel_values(image_rgb *img, const image_preproc *cfg, float *out_chw,
                              prism_error *err)
{
    if (cfg->do_convert_rgb)
        image_rgb_apply_key(img);
    if (!cfg->do_resize) {
        if (img->width != cfg->width || img->height != cfg->height)
            return prism_errorf(err, "image is %dx%d and do_resize is false; the model needs %dx%d",
                                img->width, img->height, cfg->width, cfg->height);
        return image_normalize_chw(img, cfg, out_chw, err);
    }
    image_rgb sized;
    if (image_resize(img, cfg->width, cfg->height, cfg->resample, &sized, err))
        return -1;
    int r = image_normalize_chw(&sized, cfg, out_chw, err);
    image_rgb_free(&sized);
    return r;
}

int image_to_pixel_values(const uint8_t *data, size_t len, const image_preproc *cfg,
                          size_t max_pixels, float *out_chw, prism_error *err)
{
    image_rgb img;
    if (image_decode_rgb(data, len, max_pixels, &img, err))
        return -1;
    int r = image_rgb_to_pixel_values(&img, cfg, out_chw, err);
    image_rgb_free(&img);
    return r;
}
