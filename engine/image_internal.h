/* image_internal.h - what the image_*.c files share and nobody else needs.
 *
 * image_probe.c reads a file's structure (JPEG markers, PNG chunks) the way
 * Pillow's JpegImagePlugin / PngImagePlugin do, collecting what the decoder
 * needs besides the pixels: the EXIF orientation and, for PNG, the palette,
 * tRNS and the byte ranges of the image data. image_meta.c interprets the
 * EXIF and XMP payloads. image_decode.c and image_resize.c use the result.
 */
#ifndef PRISM_IMAGE_INTERNAL_H
#define PRISM_IMAGE_INTERNAL_H

#include "image.h"
#include "json.h"

/* Pillow's ImageFile.SAFEBLOCK: the most a compressed PNG text chunk may
 * expand to (PngImagePlugin.MAX_TEXT_CHUNK) ... */
#define IMAGE_PNG_MAX_TEXT_CHUNK ((size_t)1 << 20)
/* ... and the most text all chunks together may hold (MAX_TEXT_MEMORY). */
#define IMAGE_PNG_MAX_TEXT_MEMORY ((size_t)64 << 20)

typedef struct image_header {
    image_info info;

    /* JPEG */
    int jpeg_sof;            /* the SOF marker's second byte (0xC0 baseline, 0xC2 progressive, ...) */
    bool jpeg_single_scan;   /* sequential, and the first scan holds every component */

    /* PNG */
    int png_color_type;      /* 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA */
    const uint8_t *png_ihdr; /* the IHDR chunk, from its length field to its CRC */
    const uint8_t *png_plte_chunk; /* the first PLTE chunk, whole (NULL if none) */
    size_t png_plte_chunk_len;
    const uint8_t *png_plte; /* palette entries (3 bytes each), from the first PLTE */
    int png_plte_entries;
    size_t png_idat_begin;   /* the first run of consecutive IDAT chunks, whole, */
    size_t png_idat_end;     /* as byte offsets [begin, end) in the file */
    bool png_has_key;        /* transparency as transformers sees it after convert("RGB") */
    bool png_key_is_int;     /* Pillow's info["transparency"] is an int (gray, palette) */
    int png_key_value;       /* that int (gray level or palette index) */
    uint16_t png_key_rgb[3]; /* or the 16-bit RGB triple of an RGB image's tRNS */
} image_header;

/* Reads the header of a JPEG or PNG. With full set (the decode path), also
 * applies the checks Pillow makes while loading that cost work: every
 * compressed PNG text chunk is inflated to check its size, and APNG frame
 * sequence numbers are checked. Without it (image_probe), only chunks that
 * can carry the orientation are inflated. */
int image_header_read(const uint8_t *data, size_t len, bool full, image_header *h,
                      prism_error *err);

/* Whether the JPEG's entropy-coded data runs to an EOI marker; 0 when the
 * file ends first (truncated). Walks markers from SOI. */
bool image_jpeg_has_eoi(const uint8_t *data, size_t len);

/* EXIF payload (the bytes Pillow keeps in info["exif"]) to an orientation,
 * as Pillow's Exif.load + Exif.get(0x0112) read it. */
typedef enum image_exif_state {
    IMAGE_EXIF_NO_TAG,  /* no Orientation entry: Pillow then looks at XMP */
    IMAGE_EXIF_TAG,     /* an Orientation entry: *orientation is its value (1 when unusable) */
    IMAGE_EXIF_BROKEN,  /* the TIFF header is invalid: Pillow raises; we use 1 */
} image_exif_state;

image_exif_state image_exif_orientation(const uint8_t *exif, size_t len, int *orientation);

/* The digit after the first `tiff:Orientation="` or `tiff:Orientation>` in an
 * XMP packet (Pillow's regex), or 0 when there is none. */
int image_xmp_orientation(const uint8_t *xmp, size_t len);

/* The orientation transformers applies: 2..8 transpose, anything else is 1. */
static inline int image_orientation_clamp(int v)
{
    return v >= 2 && v <= 8 ? v : 1;
}

/* image_preproc.c's reading of the image processor settings, shared with
 * image_naflex.c. */

/* Finds MODEL_DIR's image processor object as transformers does: the
 * "image_processor" of processor_config.json when present, else
 * preprocessor_config.json. *node points into *root (json_free(*root) when
 * done), or is NULL when neither file has one (*source says which); name
 * gets "DIR/FILE[: image_processor]" for messages. */
int image_processor_json_load(const char *model_dir, json_value **root, const json_value **node,
                              image_preproc_source *source, char *name, size_t name_len,
                              prism_error *err);

/* The keys both processors share (resample, rescale_factor, do_*,
 * image_mean, image_std), over image_preproc_defaults or, when naflex,
 * image_preproc_naflex_defaults: SigLIP refuses null keys and reads 'size';
 * NaFlex reads null switches as false and a null resample as the default,
 * as Siglip2ImageProcessor does, and ignores 'size'. */
int image_preproc_parse_node(image_preproc *cfg, const json_value *node, bool naflex,
                             const char *name, prism_error *err);

/* Siglip2ImageProcessor's defaults: SigLIP's, with BILINEAR and no
 * convert_to_rgb; width and height 0 (each image has its own). */
void image_preproc_naflex_defaults(image_preproc *cfg);

/* The 256 values channel c of an 8-bit image becomes after rescale and
 * normalise (numpy's float order, see image_normalize_chw). */
void image_normalize_lut(const image_preproc *cfg, int c, float lut[256]);

#endif
