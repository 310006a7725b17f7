/* image.h - image bytes to SigLIP pixel values, matching transformers.
 *
 * The reference is transformers' own pipeline for an image given as bytes:
 * `load_image` (PIL.Image.open, ImageOps.exif_transpose, convert("RGB")),
 * then the Pillow-backed SigLIP image processor (SiglipImageProcessorPil,
 * what `use_fast=False` selects): resize with Pillow's BICUBIC, x/255,
 * (x - mean)/std, CHW float32. Every step here reproduces Pillow's integer
 * arithmetic and numpy's float order of operations, so the pixel values
 * are the same numbers, not close ones (docs/images.md has the measurements
 * and every decision where Pillow and this code could disagree).
 *
 * Formats: JPEG (libjpeg-turbo's TurboJPEG API) and PNG (libspng), sniffed
 * from the magic bytes. The whole module is compiled only when both
 * libraries are found (PRISM_HAVE_IMAGE is then defined for users of the
 * engine).
 *
 * Every function returns 0 on success and -1 with a message in err on
 * failure; corrupt, truncated, hostile or unsupported input is an error,
 * never a crash. Nothing here keeps global state: calls may run
 * concurrently on different threads.
 */
#ifndef PRISM_IMAGE_H
#define PRISM_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"

/* Pillow's Image.MAX_IMAGE_PIXELS: a default for max_pixels below. */
#define IMAGE_DEFAULT_MAX_PIXELS ((size_t)89478485)

typedef enum image_format {
    IMAGE_FORMAT_JPEG = 1,
    IMAGE_FORMAT_PNG = 2,
} image_format;

/* What the header says, read without decoding pixels. */
typedef struct image_info {
    image_format format;
    int width, height;  /* as stored, before the EXIF orientation */
    int orientation;    /* EXIF orientation 1..8 as transformers applies it (1: none) */
    int out_width;      /* width and height after the orientation (5..8 swap them) */
    int out_height;
    int channels;       /* JPEG components (1, 3, 4) or PNG samples per pixel (1..4) */
    int bit_depth;      /* 8 for JPEG; 1, 2, 4, 8 or 16 for PNG */
    bool progressive;   /* progressive JPEG or interlaced (Adam7) PNG */
} image_info;

/* An 8-bit RGB image, rows top to bottom, 3 bytes per pixel, no padding. */
typedef struct image_rgb {
    int width, height;
    uint8_t *data;      /* malloc'd, width*height*3 bytes; image_rgb_free releases it */
    /* A PNG whose tRNS chunk names one transparent colour keeps it through
     * Pillow's convert("RGB") (info["transparency"]), and transformers'
     * convert_to_rgb then paints every pixel of that exact colour white.
     * image_to_pixel_values applies it (image_rgb_apply_key). */
    bool has_key;
    uint8_t key[3];
} image_rgb;

void image_rgb_free(image_rgb *img);

/* Sniffs the format from the magic bytes and reads the header: size,
 * layout and EXIF orientation (JPEG APP1 Exif/XMP; PNG eXIf, text chunks
 * with raw EXIF or XMP). Fails on an unknown format ("unsupported image
 * format"), or a header that is truncated or invalid. Cheap: no pixel is
 * decoded and nothing proportional to the image size is allocated. */
int image_probe(const uint8_t *data, size_t len, image_info *out, prism_error *err);

/* Decodes to 8-bit RGB as Pillow's Image.open(...).convert("RGB") does
 * (grayscale replicated, palette looked up, alpha dropped, 16-bit samples
 * as Pillow reads them, CMYK with Pillow's formula), then applies the EXIF
 * orientation as ImageOps.exif_transpose does. An image of more than
 * max_pixels pixels (0: IMAGE_DEFAULT_MAX_PIXELS) is refused after the
 * header is read, before any allocation of its size. */
int image_decode_rgb(const uint8_t *data, size_t len, size_t max_pixels, image_rgb *out,
                     prism_error *err);

/* Options beyond image_decode_rgb's defaults. */
typedef struct image_decode_opts {
    size_t max_pixels; /* 0: IMAGE_DEFAULT_MAX_PIXELS */
    /* JPEG only, off (0) by default because it changes the pixels: when > 0,
     * let libjpeg-turbo scale in the DCT domain by 1/2, 1/4 or 1/8, the
     * largest reduction that leaves both sides (after orientation) at least
     * this many pixels. A fast approximation, not what transformers computes. */
    int jpeg_dct_min_side;
} image_decode_opts;

int image_decode_rgb_opts(const uint8_t *data, size_t len, const image_decode_opts *opts,
                          image_rgb *out, prism_error *err);

/* Paints the pixels equal to img->key white, as transformers' convert_to_rgb
 * does for images with a single transparent colour; no-op without a key. */
void image_rgb_apply_key(image_rgb *img);

/* Pillow's resampling filters, numbered as PIL.Image.Resampling. */
typedef enum image_filter {
    IMAGE_FILTER_NEAREST = 0, /* not supported by image_resize */
    IMAGE_FILTER_LANCZOS = 1,
    IMAGE_FILTER_BILINEAR = 2,
    IMAGE_FILTER_BICUBIC = 3,
    IMAGE_FILTER_BOX = 4,
    IMAGE_FILTER_HAMMING = 5,
} image_filter;

/* Pillow's Image.resize((w, h), filter) on an RGB image, bit for bit:
 * separable convolution, support scaled by the reduction factor, 22-bit
 * fixed-point coefficients, horizontal pass then vertical pass through an
 * 8-bit intermediate, a pass skipped when its size is unchanged. out gets a
 * new image (the key is carried over). */
int image_resize(const image_rgb *in, int w, int h, image_filter filter, image_rgb *out,
                 prism_error *err);
int image_resize_bicubic(const image_rgb *in, int w, int h, image_rgb *out, prism_error *err);

/* Where an image_preproc came from (image_preproc_load). */
typedef enum image_preproc_source {
    IMAGE_PREPROC_DEFAULTS,            /* no processor file: SiglipImageProcessor's defaults */
    IMAGE_PREPROC_PREPROCESSOR_CONFIG, /* preprocessor_config.json (transformers 4 layout) */
    IMAGE_PREPROC_PROCESSOR_CONFIG,    /* processor_config.json's "image_processor" (5) */
} image_preproc_source;

/* The image processor settings of a SigLIP checkpoint, with the defaults of
 * transformers' SiglipImageProcessor for every missing key. */
typedef struct image_preproc {
    int width, height;      /* size {"height", "width"}: 224 x 224 */
    image_filter resample;  /* 3 (BICUBIC) */
    bool do_resize;         /* true */
    bool do_rescale;        /* true */
    double rescale_factor;  /* 1/255 */
    bool do_normalize;      /* true */
    double image_mean[3];   /* 0.5 each (IMAGENET_STANDARD_MEAN) */
    double image_std[3];    /* 0.5 each */
    bool do_convert_rgb;    /* true */
    image_preproc_source source; /* set by image_preproc_load */
} image_preproc;

void image_preproc_defaults(image_preproc *cfg);

/* Reads the image processor settings of MODEL_DIR as transformers does:
 * the "image_processor" object of processor_config.json when that file has
 * one (what transformers 5's save_pretrained writes), else
 * preprocessor_config.json (the older layout, most hub checkpoints). With
 * neither, cfg gets the defaults and cfg->source says so: callers log that
 * they are guessing (and take the tower's size). Errors name the file and
 * the key. */
int image_preproc_load(image_preproc *cfg, const char *model_dir, prism_error *err);

/* The file (and key) cfg was read from, for messages: "processor_config.json
 * (image_processor)", "preprocessor_config.json", or "no processor file
 * (SiglipImageProcessor's defaults)". */
const char *image_preproc_source_name(const image_preproc *cfg);

/* Same from JSON text in memory; name is used in messages. */
int image_preproc_parse(image_preproc *cfg, const char *json, size_t len, const char *name,
                        prism_error *err);

/* Rescales and normalises an RGB image of cfg's size into CHW float32 with
 * numpy's operations: float32(float64(v) * rescale_factor), then
 * (x - float32(mean)) / float32(std) in float32. out_chw holds
 * 3 * img->height * img->width floats. */
int image_normalize_chw(const image_rgb *img, const image_preproc *cfg, float *out_chw,
                        prism_error *err);

/* The steps after decoding: transparent-key handling (when do_convert_rgb;
 * img's pixels are changed in place), resize to cfg's size with cfg's
 * filter, rescale, normalise. out_chw holds 3 * cfg->height * cfg->width
 * floats. */
int image_rgb_to_pixel_values(image_rgb *img, const image_preproc *cfg, float *out_chw,
                              prism_error *err);

/* The whole pipeline: image_decode_rgb (orientation included), then
 * image_rgb_to_pixel_values. */
int image_to_pixel_values(const uint8_t *data, size_t len, const image_preproc *cfg,
                          size_t max_pixels, float *out_chw, prism_error *err);

/* SigLIP 2 NaFlex (Siglip2ImageProcessor): each image keeps its aspect
 * ratio, resized so that its sides are multiples of the patch size and it
 * has at most max_num_patches patches, then cut into patches and padded.
 * docs/images.md ("SigLIP 2 NaFlex") has the rule and the measurements. */

#define IMAGE_NAFLEX_MAX_PATCH_SIZE 64        /* patch_size accepted in a config */
#define IMAGE_NAFLEX_MAX_NUM_PATCHES 65536    /* max_num_patches accepted in a config */
#define IMAGE_NAFLEX_DEFAULT_PATCH_LIMIT 4096 /* the per-call limit when the caller passes 0 */

/* The settings of a Siglip2ImageProcessor checkpoint, with its defaults for
 * every missing key. */
typedef struct image_naflex {
    /* resample 2 (BILINEAR), rescale 1/255, mean = std = 0.5, do_resize,
     * do_rescale, do_normalize true, do_convert_rgb false (transformers'
     * None: the hub's files say null); pre.width / pre.height unused (0);
     * pre.source says which file was read */
    image_preproc pre;
    int patch_size;      /* 16 */
    int max_num_patches; /* 256: the rows of pixel_values; a request may ask for another */
} image_naflex;

void image_naflex_defaults(image_naflex *cfg);

/* Reads MODEL_DIR's settings as image_preproc_load does (processor_config.json's
 * "image_processor", else preprocessor_config.json, else the defaults), with
 * Siglip2ImageProcessor's meaning of each key: a null do_* switch is off, a
 * null resample is BILINEAR, 'size' and 'do_center_crop' are ignored;
 * patch_size in 1..IMAGE_NAFLEX_MAX_PATCH_SIZE, max_num_patches in
 * 1..IMAGE_NAFLEX_MAX_NUM_PATCHES. Errors name the file and the key. */
int image_naflex_load(image_naflex *cfg, const char *model_dir, prism_error *err);

/* Same from JSON text in memory; name is used in messages. */
int image_naflex_parse(image_naflex *cfg, const char *json, size_t len, const char *name,
                       prism_error *err);

/* Floats in one row of pixel_values: 3 * patch_size^2. */
static inline size_t image_naflex_row_floats(const image_naflex *cfg)
{
    return 3 * (size_t)cfg->patch_size * (size_t)cfg->patch_size;
}

/* transformers' get_image_size_for_max_num_patches, to the same integers:
 * bisection of the scale s in [1e-6, 100] until the interval is narrower
 * than 1e-5, each side max(patch, ceil(side * s / patch) * patch), keeping
 * the largest s whose (oh / patch) * (ow / patch) <= max_patches. Fails on
 * sides or arguments below 1, a patch above IMAGE_NAFLEX_MAX_PATCH_SIZE,
 * and an image so long and thin that even the smallest scale gives more
 * than max_patches patches. */
int image_naflex_size(int width, int height, int patch, int max_patches, int *out_width,
                      int *out_height, prism_error *err);

/* The steps after decoding, for one image: transparent key (when
 * do_convert_rgb; img's pixels change in place), resize to image_naflex_size
 * (or, with do_resize false, the image as it is: its sides must be
 * multiples of the patch), rescale, normalise, patches. Writes
 * pixel_values [cfg->max_num_patches, image_naflex_row_floats(cfg)] (row
 * r*cols + c is patch (r, c); within a row, pixel (y, x) of the patch at
 * (y*P + x)*3, its R, G, B together; rows past rows*cols are 0), mask
 * [cfg->max_num_patches] (1 for the patches, 0 for the padding; may be
 * NULL) and the patch grid *rows x *cols (spatial_shapes). Refuses a
 * cfg->max_num_patches above max_num_patches_limit (0:
 * IMAGE_NAFLEX_DEFAULT_PATCH_LIMIT), which bounds the memory and time
 * spent: the resized image has at most max_num_patches * P^2 pixels. */
int image_rgb_to_naflex(image_rgb *img, const image_naflex *cfg, int max_num_patches_limit,
                        float *pixel_values, int32_t *mask, int *rows, int *cols,
                        prism_error *err);

/* The whole pipeline: image_decode_rgb (max_pixels as there, orientation
 * included), then image_rgb_to_naflex. A cfg->max_num_patches above the
 * limit is refused before anything is decoded. */
int image_to_naflex(const uint8_t *data, size_t len, const image_naflex *cfg, size_t max_pixels,
                    int max_num_patches_limit, float *pixel_values, int32_t *mask, int *rows,
                    int *cols, prism_error *err);

const char *image_format_name(image_format f);

#endif
