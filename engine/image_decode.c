/* image_decode.c - JPEG and PNG bytes to 8-bit RGB, as Pillow's
 * Image.open(...).convert("RGB") followed by ImageOps.exif_transpose.
 *
 * JPEG: TurboJPEG decodes with the settings Pillow's decoder uses (the
 * libjpeg defaults: accurate integer IDCT, fancy upsampling, block
 * smoothing), to RGB, gray or CMYK as the file's colour space says; gray
 * is replicated (Pillow's L -> RGB) and CMYK is inverted (Pillow assumes
 * Adobe's inverted CMYK, rawmode "CMYK;I") and converted with Pillow's
 * cmyk2rgb. libjpeg's warnings (corrupt data it recovers from) are
 * ignored, as Pillow ignores them; a file that ends before its EOI marker
 * is refused, as Pillow refuses it ("image file is truncated").
 *
 * PNG: libspng inflates, unfilters and deinterlaces the image data only (it
 * is given the IHDR, a palette and the IDAT chunks; image_probe.c applied
 * Pillow's rules to every other chunk), in the PNG's own sample format
 * (sub-byte gray scaled to 8 bits, palette indices); the conversion to RGB
 * here follows Pillow's unpackers and converters: 1/2/4-bit gray scaled
 * to 0..255, 16-bit gray (mode I;16) clipped to 255, 16-bit colour and
 * alpha reduced to the high byte, palette indices past the PLTE's end
 * black, alpha dropped.
 */
#include "image_internal.h"

#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <zlib.h>

void image_rgb_free(image_rgb *img)
{
    if (img) {
        free(img->data);
        memset(img, 0, sizeof *img);
    }
}

static uint8_t *alloc_rgb(int w, int h)
{
    return malloc((size_t)w * (size_t)h * 3);
}

/* ------------------------------------------------------------------ JPEG */

static int decode_jpeg(const uint8_t *data, size_t len, const image_header *hd,
                       const image_decode_opts *opts, image_rgb *out, prism_error *err)
{
    int ret = -1;
    uint8_t *cmyk = NULL, *rgb = NULL;
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return prism_errorf(err, "cannot start the JPEG decoder: %s", tjGetErrorStr2(NULL));

    /* A file that ends before its EOI marker: Pillow's decoder suspends
     * waiting for more data and reports the file as truncated, even when
     * only the marker is missing (libjpeg reads ahead of the last rows).
     * TurboJPEG would instead pad the data and warn, so it is checked here. */
    const uint8_t *src = data;
    const size_t src_len = len;
    if (!image_jpeg_has_eoi(data, len)) {
        prism_errorf(err, "truncated JPEG: the file ends before its end-of-image marker");
        goto out;
    }

    int w = 0, h = 0, subsamp = 0, cs = 0;
    if (tjDecompressHeader3(tj, src, (unsigned long)src_len, &w, &h, &subsamp, &cs) != 0 &&
        (tjGetErrorCode(tj) != TJERR_WARNING || w <= 0 || h <= 0)) {
        prism_errorf(err, "invalid JPEG: %s", tjGetErrorStr2(tj));
        goto out;
    }
    if (w != hd->info.width || h != hd->info.height) {
        prism_errorf(err, "invalid JPEG: the frame header says %dx%d, the decoder %dx%d",
                     hd->info.width, hd->info.height, w, h);
        goto out;
    }

    /* Optional DCT-domain reduction (off by default). */
    int ow = w, oh = h;
    if (opts->jpeg_dct_min_side > 0) {
        for (int denom = 8; denom >= 2; denom /= 2) {
            int sw = (w + denom - 1) / denom, sh = (h + denom - 1) / denom;
            if (sw >= opts->jpeg_dct_min_side && sh >= opts->jpeg_dct_min_side) {
                ow = sw, oh = sh;
                break;
            }
        }
    }

    int pf = cs == TJCS_GRAY ? TJPF_GRAY : (cs == TJCS_CMYK || cs == TJCS_YCCK) ? TJPF_CMYK
                                                                             : TJPF_RGB;
    rgb = alloc_rgb(ow, oh);
    if (!rgb) {
        prism_errorf(err, "out of memory for a %dx%d image", ow, oh);
        goto out;
    }
    uint8_t *dst = rgb;
    if (pf == TJPF_CMYK) {
        cmyk = malloc((size_t)ow * oh * 4);
        if (!cmyk) {
            prism_errorf(err, "out of memory for a %dx%d image", ow, oh);
            goto out;
        }
        dst = cmyk;
    }
    /* TJFLAG_LIMITSCANS: more than 500 scans is a denial-of-service file. */
    int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
    if (tjDecompress2(tj, src, (unsigned long)src_len, dst, ow, 0, oh, pf, flags) != 0) {
        if (tjGetErrorCode(tj) != TJERR_WARNING) {
            prism_errorf(err, "invalid JPEG: %s", tjGetErrorStr2(tj));
            goto out;
        }
        if (strstr(tjGetErrorStr2(tj), "Premature end")) {
            prism_errorf(err, "truncated JPEG: the file ends before the image data does");
            goto out;
        }
        /* Any other warning: libjpeg recovered, and so does Pillow. */
    }
    size_t n = (size_t)ow * oh;
    if (pf == TJPF_GRAY) {
        for (size_t i = n; i-- > 0;) {
            uint8_t v = rgb[i];
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
        }
    } else if (pf == TJPF_CMYK) {
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = cmyk + 4 * i;
            int nk = p[3]; /* 255 - (255 - k): the inverted K */
            for (int c = 0; c < 3; c++) {
                int v = 255 - p[c];
                int t = v * nk + 128;
                int m = ((t >> 8) + t) >> 8; /* Pillow's MULDIV255 */
                int r = nk - m;
                rgb[3 * i + c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            }
        }
    }
    out->width = ow, out->height = oh, out->data = rgb;
    rgb = NULL;
    ret = 0;
out:
    free(rgb);
    free(cmyk);
    tjDestroy(tj);
    return ret;
}

/* ------------------------------------------------------------------- PNG */

static uint8_t *put_chunk(uint8_t *p, const char *type, const uint8_t *body, uint32_t n)
{
    p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
    memcpy(p + 4, type, 4);
    if (n)
        memcpy(p + 8, body, n);
    uint32_t crc = (uint32_t)crc32(crc32(0L, (const Bytef *)type, 4), n ? body : (const Bytef *)"", n);
    p[8 + n] = (uint8_t)(crc >> 24), p[9 + n] = (uint8_t)(crc >> 16);
    p[10 + n] = (uint8_t)(crc >> 8), p[11 + n] = (uint8_t)crc;
    return p + 12 + n;
}

/* IHDR + a palette libspng accepts + the IDAT run + IEND, with fresh CRCs:
 * Pillow never checks the image data's CRCs (and the header's were checked
 * by the chunk walk), but it does check the zlib stream's Adler-32, which
 * libspng skips when told to ignore CRCs. */
static uint8_t *png_build_stream(const uint8_t *data, const image_header *hd, size_t *out_len)
{
    size_t idat_bytes = hd->png_idat_end - hd->png_idat_begin;
    size_t cap = 8 + 25 + 12 + 768 + idat_bytes + 12 * (idat_bytes / 12 + 1) + 12;
    uint8_t *buf = malloc(cap), *p = buf;
    if (!buf)
        return NULL;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p = put_chunk(p + 8, "IHDR", hd->png_ihdr + 8, 13);
    if (hd->png_color_type == 3) {
        /* Entry i is (i, 0, 0): decoded to RGB8, red is the index, which is
         * looked up in the file's palette here. 2^depth entries make every
         * index valid for libspng. */
        uint8_t plte[768] = {0};
        for (int i = 0; i < 256; i++)
            plte[3 * i] = (uint8_t)i;
        p = put_chunk(p, "PLTE", plte, 3u << hd->info.bit_depth);
    }
    size_t pos = hd->png_idat_begin;
    while (pos + 8 <= hd->png_idat_end) {
        const uint8_t *c = data + pos;
        uint32_t n = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
        if (memcmp(c + 4, "IDAT", 4) != 0 || n > hd->png_idat_end - pos - 8)
            break;
        p = put_chunk(p, "IDAT", c + 8, n);
        pos += 12 + (size_t)n;
    }
    p = put_chunk(p, "IEND", NULL, 0);
    *out_len = (size_t)(p - buf);
    return buf;
}

static const char *spng_reason(int e)
{
    switch (e) {
    case SPNG_EIDAT_TOO_SHORT:
    case SPNG_EOF:
    case SPNG_EIDAT_STREAM:
        return "truncated PNG: the image data ends early";
    case SPNG_EZLIB:
    case SPNG_EFILTER:
        return "invalid PNG: corrupt image data";
    default:
        return "invalid PNG";
    }
}

static int decode_png(const uint8_t *data, const image_header *hd, image_rgb *out,
                      prism_error *err)
{
    int ret = -1;
    const int w = hd->info.width, h = hd->info.height, bits = hd->info.bit_depth;
    const int ct = hd->png_color_type;
    size_t slen = 0, raw_len = 0;
    uint8_t *stream = png_build_stream(data, hd, &slen), *raw = NULL, *rgb = NULL;
    spng_ctx *ctx = spng_ctx_new(0);
    if (!stream || !ctx) {
        prism_errorf(err, "out of memory");
        goto out;
    }
    /* Samples narrower than a byte come out expanded: libspng 0.7.3 packs
     * them wrongly when it deinterlaces SPNG_FMT_PNG output, while its G8
     * (scaled like Pillow's L;1/L;2/L;4 unpackers) and RGB8 paths are right. */
    const int fmt = ct == 3 ? SPNG_FMT_RGB8 : (ct == 0 && bits < 8) ? SPNG_FMT_G8 : SPNG_FMT_PNG;
    int e;
    if ((e = spng_set_image_limits(ctx, (uint32_t)w, (uint32_t)h)) ||
        (e = spng_set_png_buffer(ctx, stream, slen)) ||
        (e = spng_decoded_image_size(ctx, fmt, &raw_len))) {
        prism_errorf(err, "invalid PNG: %s", spng_strerror(e));
        goto out;
    }
    raw = malloc(raw_len ? raw_len : 1);
    rgb = alloc_rgb(w, h);
    if (!raw || !rgb) {
        prism_errorf(err, "out of memory for a %dx%d image", w, h);
        goto out;
    }
    if ((e = spng_decode_image(ctx, raw, raw_len, fmt, 0))) {
        prism_errorf(err, "%s (%s)", spng_reason(e), spng_strerror(e));
        goto out;
    }

    /* Indices past the PLTE's entries (or with no PLTE) are black in Pillow 13. */
    uint8_t pal[256][3];
    memset(pal, 0, sizeof pal);
    if (ct == 3 && hd->png_plte)
        memcpy(pal, hd->png_plte, (size_t)hd->png_plte_entries * 3);

    const size_t stride = raw_len / (size_t)h;
    for (int y = 0; y < h; y++) {
        const uint8_t *r = raw + stride * (size_t)y;
        const uint16_t *r16 = (const uint16_t *)(const void *)r; /* host-endian samples */
        uint8_t *o = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, o += 3) {
            int v;
            switch (ct) {
            case 0:
                /* 16-bit is Pillow's I;16, which convert("RGB") clips */
                v = bits == 16 ? (r16[x] > 255 ? 255 : r16[x]) : r[x];
                o[0] = o[1] = o[2] = (uint8_t)v;
                break;
            case 2:
                for (int c = 0; c < 3; c++)
                    o[c] = bits == 16 ? (uint8_t)(r16[3 * x + c] >> 8) : r[3 * x + c];
                break;
            case 3:
                memcpy(o, pal[r[3 * x]], 3);
                break;
            case 4:
                v = bits == 16 ? r16[2 * x] >> 8 : r[2 * x];
                o[0] = o[1] = o[2] = (uint8_t)v;
                break;
            default: /* 6 */
                for (int c = 0; c < 3; c++)
                    o[c] = bits == 16 ? (uint8_t)(r16[4 * x + c] >> 8) : r[4 * x + c];
                break;
            }
        }
    }

    /* The transparent colour transformers will see (see image_rgb). */
    if (hd->png_has_key) {
        int t = hd->png_key_value;
        out->has_key = true;
        if (ct == 2) {
            for (int c = 0; c < 3; c++)
                out->key[c] = (uint8_t)(hd->png_key_rgb[c] & 0xFF);
        } else if (ct == 3) {
            memcpy(out->key, pal[t > 255 ? 255 : t], 3);
        } else if (bits == 1 || bits == 16) {
            /* Modes 1 and I;16 keep an int through convert("RGB"); Pillow
             * then reads it as the RGB key (int, 0, 0), low byte only. */
            out->key[0] = (uint8_t)(t & 0xFF), out->key[1] = 0, out->key[2] = 0;
        } else {
            uint8_t g = (uint8_t)(t > 255 ? 255 : t); /* putpixel on L clips */
            out->key[0] = out->key[1] = out->key[2] = g;
        }
    }
    out->width = w, out->height = h, out->data = rgb;
    rgb = NULL;
    ret = 0;
out:
    spng_ctx_free(ctx);
    free(stream);
    free(raw);
    free(rgb);
    return ret;
}

/* -------------------------------------------------------------- orientation */

/* ImageOps.exif_transpose: out(x, y) = in(src) with src stepping linearly. */
static int apply_orientation(image_rgb *img, int orientation, prism_error *err)
{
    if (orientation < 2 || orientation > 8)
        return 0;
    const ptrdiff_t W = img->width, H = img->height;
    const bool swap = orientation >= 5;
    const int ow = swap ? img->height : img->width, oh = swap ? img->width : img->height;
    ptrdiff_t base = 0, dx = 1, dy = W;
    switch (orientation) {
    case 2: base = W - 1, dx = -1, dy = W; break;             /* FLIP_LEFT_RIGHT */
    case 3: base = (H - 1) * W + W - 1, dx = -1, dy = -W; break; /* ROTATE_180 */
    case 4: base = (H - 1) * W, dx = 1, dy = -W; break;       /* FLIP_TOP_BOTTOM */
    case 5: base = 0, dx = W, dy = 1; break;                  /* TRANSPOSE */
    case 6: base = (H - 1) * W, dx = -W, dy = 1; break;       /* ROTATE_270 */
    case 7: base = (H - 1) * W + W - 1, dx = -W, dy = -1; break; /* TRANSVERSE */
    case 8: base = W - 1, dx = W, dy = -1; break;             /* ROTATE_90 */
    }
    uint8_t *o = alloc_rgb(ow, oh);
    if (!o)
        return prism_errorf(err, "out of memory for a %dx%d image", ow, oh);
    uint8_t *p = o;
    for (int y = 0; y < oh; y++) {
        ptrdiff_t s = base + y * dy;
        for (int x = 0; x < ow; x++, s += dx, p += 3)
            memcpy(p, img->data + 3 * s, 3);
    }
    free(img->data);
    img->data = o, img->width = ow, img->height = oh;
    return 0;
}

/* ------------------------------------------------------------------ entry */

int image_decode_rgb_opts(const uint8_t *data, size_t len, const image_decode_opts *opts,
                          image_rgb *out, prism_error *err)
{
    memset(out, 0, sizeof *out);
    image_decode_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    image_header hd;
    if (image_header_read(data, len, true, &hd, err))
        return -1;
    size_t limit = opts->max_pixels ? opts->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    size_t pixels = (size_t)hd.info.width * (size_t)hd.info.height;
    if (pixels > limit || pixels > SIZE_MAX / 8)
        return prism_errorf(err, "image too large: %dx%d is %zu pixels, the limit is %zu",
                            hd.info.width, hd.info.height, pixels, limit);
    int r = hd.info.format == IMAGE_FORMAT_JPEG ? decode_jpeg(data, len, &hd, opts, out, err)
                                                : decode_png(data, &hd, out, err);
    if (r)
        return -1;
    if (apply_orientation(out, hd.info.orientation, err)) {
        image_rgb_free(out);
        return -1;
    }
    return 0;
}

int image_decode_rgb(const uint8_t *data, size_t len, size_t max_pixels, image_rgb *out,
                     prism_error *err)
{
    image_decode_opts opts = {.max_pixels = max_pixels};
    return image_decode_rgb_opts(data, len, &opts, out, err);
}

void image_rgb_apply_key(image_rgb *img)
{
    if (!img->has_key)
        return;
    size_t n = (size_t)img->width * img->height;
    const uint8_t *k = img->key;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->data + 3 * i;
        if (p[0] == k[0] && p[1] == k[1] && p[2] == k[2])
            p[0] = p[1] = p[2] = 255;
    }
}
