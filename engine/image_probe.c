/* image_probe.c - format sniffing and header reading for JPEG and PNG.
 *
 * The walks follow Pillow's plugins, because what Pillow reads decides what
 * transformers sees: which EXIF block counts, which transparency a PNG
 * declares, which structural faults make Image.open or load() raise.
 *
 * JPEG (JpegImagePlugin._open): bytes between markers are skipped; FF FF
 * and FF 00 are padding; every marker from FFC0 to FFFE is known (SOFn,
 * DQT, DHT, APPn, COM carry a length; the others none); a lower marker is
 * "no marker found"; the walk ends at SOS. The EXIF payload is the first
 * APP1 "Exif\0\0" segment with the data of every later one appended; the
 * XMP packet is the last APP1 "http://ns.adobe.com/xap/1.0/\0" segment.
 * Pixels are left to libjpeg-turbo.
 *
 * PNG (PngImagePlugin): the chunk walk mirrors _open (up to the first IDAT:
 * CRCs checked, chunk types must be word characters) and load_end (after
 * the image data: CRCs not checked, a short chunk header ends the walk, a
 * short chunk body is "truncated"). Chunks handled as Pillow does: IHDR,
 * PLTE (the last before IDAT), tRNS (last wins, also after IDAT), eXIf and
 * the text chunks (tEXt/zTXt/iTXt: "exif", "Raw profile type exif",
 * "XML:com.adobe.xmp"; compressed text may expand to 1 MiB, 64 MiB in all),
 * acTL/fcTL/fdAT sequence checks. Pixels are left to libspng, fed only
 * IHDR, a palette and the first run of IDAT chunks (image_decode.c).
 */
#include "image_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

const char *image_format_name(image_format f)
{
    return f == IMAGE_FORMAT_JPEG ? "JPEG" : f == IMAGE_FORMAT_PNG ? "PNG" : "unknown";
}

/* Applies the EXIF/XMP decision of Image.getexif + exif_transpose. */
static int decide_orientation(bool have_exif, const uint8_t *exif, size_t exif_len,
                              const uint8_t *xmp, size_t xmp_len)
{
    if (have_exif) {
        int v;
        image_exif_state st = image_exif_orientation(exif, exif_len, &v);
        if (st == IMAGE_EXIF_BROKEN)
            return 1;
        if (st == IMAGE_EXIF_TAG)
            return image_orientation_clamp(v);
    }
    if (xmp)
        return image_orientation_clamp(image_xmp_orientation(xmp, xmp_len));
    return 1;
}

static void finish_info(image_info *info)
{
    bool swap = info->orientation >= 5;
    info->out_width = swap ? info->height : info->width;
    info->out_height = swap ? info->width : info->height;
}

/* ------------------------------------------------------------------ JPEG */

static bool jpeg_marker_has_length(int m)
{
    /* Pillow's MARKER table: handlers that read a length (SOF, DHT, DAC,
     * SOS, DQT, DNL, DRI, DHP, EXP, APPn, COM); the rest stand alone. */
    if (m >= 0xC0 && m <= 0xCF)
        return m != 0xC8;
    if (m >= 0xDA && m <= 0xDF)
        return true;
    if (m >= 0xE0 && m <= 0xEF)
        return true;
    return m == 0xFE;
}

static bool jpeg_is_sof(int m)
{
    return (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) || m == 0xDE;
}

static int jpeg_read_header(const uint8_t *d, size_t len, image_header *h, prism_error *err)
{
    static const char xmp_id[] = "http://ns.adobe.com/xap/1.0/";
    image_info *info = &h->info;
    uint8_t *exif = NULL; /* concatenated Exif segments when there are several */
    const uint8_t *exif1 = NULL, *xmp = NULL;
    size_t exif1_len = 0, exif_len = 0, xmp_len = 0;
    bool have_sof = false;
    int ret = -1;

    size_t pos = 2; /* Pillow reads FF D8 FF, then restarts at that FF */
    for (;;) {
        if (pos >= len)
            goto truncated;
        if (d[pos] != 0xFF) {
            pos++;
            continue;
        }
        if (pos + 1 >= len)
            goto truncated;
        int m = d[pos + 1];
        if (m == 0xFF) { /* fill byte: the second FF may start the marker */
            pos++;
            continue;
        }
        if (m == 0x00) {
            pos += 2;
            continue;
        }
        if (m < 0xC0) {
            prism_errorf(err, "invalid JPEG: no marker found at byte %zu", pos);
            goto out;
        }
        pos += 2;
        if (!jpeg_marker_has_length(m))
            continue;
        if (len - pos < 2)
            goto truncated;
        long n = (long)be16(d + pos) - 2;
        pos += 2;
        if (n < 0)
            n = 0;
        if ((size_t)n > len - pos)
            goto truncated;
        const uint8_t *s = d + pos;
        pos += (size_t)n;

        if (jpeg_is_sof(m)) {
            if (n < 6) {
                prism_errorf(err, "invalid JPEG: SOF segment of %ld bytes", n);
                goto out;
            }
            if (s[0] != 8) {
                prism_error_unsupported(err, "unsupported JPEG: %d-bit samples (only 8-bit)",
                                        s[0]);
                goto out;
            }
            info->height = (int)be16(s + 1);
            info->width = (int)be16(s + 3);
            info->channels = s[5];
            if (info->channels != 1 && info->channels != 3 && info->channels != 4) {
                prism_error_unsupported(err, "unsupported JPEG: %d components", info->channels);
                goto out;
            }
            h->jpeg_sof = m;
            info->progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE;
            have_sof = true;
        } else if (m == 0xDB) {
            for (long i = 0; i < n;) {
                long q = 1 + ((s[i] >> 4) == 0 ? 1 : 2) * 64;
                if (n - i < q) {
                    prism_errorf(err, "invalid JPEG: bad quantization table marker");
                    goto out;
                }
                i += q;
            }
        } else if (m == 0xE1 && n >= 6 && memcmp(s, "Exif\0\0", 6) == 0) {
            if (!exif1) {
                exif1 = s, exif1_len = (size_t)n;
            } else {
                size_t have = exif ? exif_len : exif1_len;
                uint8_t *grown = realloc(exif, have + (size_t)n - 6);
                if (!grown) {
                    prism_errorf(err, "out of memory reading JPEG EXIF");
                    goto out;
                }
                if (!exif)
                    memcpy(grown, exif1, exif1_len);
                memcpy(grown + have, s + 6, (size_t)n - 6);
                exif = grown, exif_len = have + (size_t)n - 6;
            }
        } else if (m == 0xE1 && (size_t)n >= sizeof xmp_id && memcmp(s, xmp_id, sizeof xmp_id) == 0) {
            xmp = s + sizeof xmp_id, xmp_len = (size_t)n - sizeof xmp_id;
        } else if (m == 0xDA) {
            if (!have_sof) {
                prism_errorf(err, "invalid JPEG: scan before any frame header (SOF)");
                goto out;
            }
            int ns = n >= 1 ? s[0] : 0;
            bool sequential = h->jpeg_sof != 0xC2 && h->jpeg_sof != 0xC6 &&
                              h->jpeg_sof != 0xCA && h->jpeg_sof != 0xCE;
            h->jpeg_single_scan = sequential && ns == info->channels;
            break;
        }
    }
    if (info->width <= 0 || info->height <= 0) {
        prism_errorf(err, "invalid JPEG: image size %dx%d", info->width, info->height);
        goto out;
    }
    info->format = IMAGE_FORMAT_JPEG;
    info->bit_depth = 8;
    info->orientation = exif ? decide_orientation(true, exif, exif_len, xmp, xmp_len)
                             : decide_orientation(exif1 != NULL, exif1, exif1_len, xmp, xmp_len);
    finish_info(info);
    ret = 0;
    goto out;
truncated:
    prism_errorf(err, "truncated JPEG: the file ends inside its header");
out:
    free(exif);
    return ret;
}

bool image_jpeg_has_eoi(const uint8_t *d, size_t len)
{
    size_t pos = 2;
    while (pos + 1 < len) {
        if (d[pos] != 0xFF) {
            pos++;
            continue;
        }
        int m = d[pos + 1];
        if (m == 0xFF) {
            pos++;
            continue;
        }
        pos += 2;
        if (m == 0xD9)
            return true;
        if (m == 0x00 || (m >= 0xD0 && m <= 0xD8) || m == 0x01)
            continue;
        if (len - pos < 2)
            return false;
        size_t n = be16(d + pos);
        if (n < 2 || n > len - pos)
            return false;
        pos += n;
        if (m == 0xDA) {
            /* Entropy-coded data: runs to the next marker other than a
             * stuffed zero or a restart marker. */
            for (;;) {
                const uint8_t *ff = memchr(d + pos, 0xFF, len - pos);
                if (!ff)
                    return false;
                pos = (size_t)(ff - d);
                if (pos + 1 >= len)
                    return false;
                int b = d[pos + 1];
                if (b == 0x00 || (b >= 0xD0 && b <= 0xD7)) {
                    pos += 2;
                    continue;
                }
                if (b == 0xFF) {
                    pos++;
                    continue;
                }
                break;
            }
        }
    }
    return false;
}

/* ------------------------------------------------------------------- PNG */

/* Decompresses a text chunk's zlib data as Pillow's _safe_zlib_decompress:
 * at most IMAGE_PNG_MAX_TEXT_CHUNK bytes; more (with input left) is an
 * error; corrupt data gives *ok = false (Pillow then drops the text). The
 * text is kept in *out only when keep is set. Returns -1 on the size error. */
static int png_inflate_text(const uint8_t *src, size_t n, bool keep, uint8_t **out,
                            size_t *out_len, bool *ok, prism_error *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    *out = NULL, *out_len = 0, *ok = false;
    if (inflateInit(&z) != Z_OK)
        return prism_errorf(err, "zlib init failed");
    uint8_t scratch[16384];
    uint8_t *buf = NULL;
    size_t cap = 0, total = 0;
    int zr = Z_OK;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    while (total < IMAGE_PNG_MAX_TEXT_CHUNK) {
        size_t room = IMAGE_PNG_MAX_TEXT_CHUNK - total;
        uint8_t *dst = scratch;
        if (keep) {
            if (cap - total < 65536 && cap < IMAGE_PNG_MAX_TEXT_CHUNK) {
                size_t ncap = cap ? cap * 2 : 65536;
                if (ncap > IMAGE_PNG_MAX_TEXT_CHUNK)
                    ncap = IMAGE_PNG_MAX_TEXT_CHUNK;
                uint8_t *g = realloc(buf, ncap);
                if (!g) {
                    free(buf);
                    inflateEnd(&z);
                    return prism_errorf(err, "out of memory inflating a PNG text chunk");
                }
                buf = g, cap = ncap;
            }
            dst = buf + total;
            if (room > cap - total)
                room = cap - total;
        } else if (room > sizeof scratch) {
            room = sizeof scratch;
        }
        z.next_out = dst;
        z.avail_out = (uInt)room;
        const uInt in_before = z.avail_in;
        zr = inflate(&z, Z_SYNC_FLUSH);
        total += room - z.avail_out;
        if (z.avail_out == room && z.avail_in == in_before && zr == Z_OK)
            break; /* no progress: cannot happen with zlib, but never spin */
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            break; /* corrupt: Pillow catches zlib.error */
        if (z.avail_in == 0 && z.avail_out != 0)
            break; /* input exhausted: a truncated stream is just short text */
        if (zr == Z_BUF_ERROR && z.avail_out != 0)
            break;
    }
    bool corrupt = zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END;
    bool too_big = !corrupt && zr != Z_STREAM_END && total >= IMAGE_PNG_MAX_TEXT_CHUNK &&
                   z.avail_in > 0;
    inflateEnd(&z);
    if (too_big) {
        free(buf);
        return prism_errorf(err, "PNG text chunk expands past %zu bytes (decompression bomb)",
                            IMAGE_PNG_MAX_TEXT_CHUNK);
    }
    if (corrupt) {
        free(buf);
        return 0;
    }
    *ok = true;
    *out_len = total;
    if (keep)
        *out = buf;
    else
        free(buf);
    return 0;
}

/* The values Pillow keeps from text chunks, pointing into the file or into
 * inflated buffers owned here. */
typedef struct png_text_state {
    const uint8_t *exif; /* info["exif"] from eXIf or tEXt "exif" (bytes) */
    size_t exif_len;
    bool have_exif;
    bool exif_is_str;    /* info["exif"] set by zTXt/iTXt: a str, Pillow raises */
    const uint8_t *raw_profile; /* "Raw profile type exif" text */
    size_t raw_profile_len;
    const uint8_t *xmp;
    size_t xmp_len;
    size_t text_memory;
    uint8_t *owned[8]; /* inflated buffers still referenced above */
} png_text_state;

static void png_text_free(png_text_state *t)
{
    for (int i = 0; i < 8; i++)
        free(t->owned[i]);
}

/* Keeps buf alive while referenced (slot per kind: 0 exif, 1 raw profile, 2 xmp). */
static void png_text_own(png_text_state *t, int slot, uint8_t *buf)
{
    free(t->owned[slot]);
    t->owned[slot] = buf;
}

static int png_text_memory(png_text_state *t, size_t n, prism_error *err)
{
    t->text_memory += n;
    if (t->text_memory > IMAGE_PNG_MAX_TEXT_MEMORY)
        return prism_errorf(err, "PNG text chunks hold more than %zu bytes in all",
                            IMAGE_PNG_MAX_TEXT_MEMORY);
    return 0;
}

enum { KEY_OTHER, KEY_EXIF, KEY_RAW_PROFILE, KEY_XMP };

static int png_text_key(const uint8_t *k, size_t n)
{
    if (n == 4 && memcmp(k, "exif", 4) == 0)
        return KEY_EXIF;
    if (n == 21 && memcmp(k, "Raw profile type exif", 21) == 0)
        return KEY_RAW_PROFILE;
    if (n == 17 && memcmp(k, "XML:com.adobe.xmp", 17) == 0)
        return KEY_XMP;
    return KEY_OTHER;
}

static size_t utf8_chars(const uint8_t *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (s[i] & 0xC0) != 0x80;
    return c;
}

/* tEXt, zTXt, iTXt as PngStream.chunk_tEXt/zTXt/iTXt. */
static int png_text_chunk(png_text_state *t, const uint8_t *type, const uint8_t *s, size_t n,
                          bool full, prism_error *err)
{
    const uint8_t *nul = memchr(s, 0, n);
    size_t klen = nul ? (size_t)(nul - s) : n;
    const uint8_t *v = nul ? nul + 1 : s + n;
    size_t vlen = nul ? n - klen - 1 : 0;
    int key = png_text_key(s, klen);

    if (memcmp(type, "tEXt", 4) == 0) {
        if (klen == 0)
            return 0;
        if (key == KEY_EXIF)
            t->exif = v, t->exif_len = vlen, t->have_exif = true, t->exif_is_str = false;
        else if (key == KEY_RAW_PROFILE)
            t->raw_profile = v, t->raw_profile_len = vlen;
        else if (key == KEY_XMP)
            t->xmp = v, t->xmp_len = vlen;
        return png_text_memory(t, vlen, err);
    }

    if (memcmp(type, "zTXt", 4) == 0) {
        if (vlen > 0 && v[0] != 0)
            return prism_errorf(err, "invalid PNG: unknown compression method %d in zTXt chunk",
                                v[0]);
        bool keep = key != KEY_OTHER && klen > 0;
        if (!keep && !full)
            return 0;
        uint8_t *text = NULL;
        size_t tlen = 0;
        bool ok = false;
        if (vlen > 0 && png_inflate_text(v + 1, vlen - 1, keep, &text, &tlen, &ok, err))
            return -1;
        if (klen == 0) {
            free(text);
            return 0;
        }
        /* A corrupt stream or no data leaves the text empty. */
        if (key == KEY_EXIF) {
            t->have_exif = true, t->exif_is_str = true;
            free(text);
        } else if (key == KEY_RAW_PROFILE) {
            png_text_own(t, 1, text);
            t->raw_profile = text ? text : (const uint8_t *)"", t->raw_profile_len = tlen;
        } else if (key == KEY_XMP) {
            png_text_own(t, 2, text);
            t->xmp = text ? text : (const uint8_t *)"", t->xmp_len = tlen;
        } else {
            free(text);
        }
        return png_text_memory(t, tlen, err);
    }

    /* iTXt: keyword \0 flag method lang \0 translated \0 text */
    if (!nul || vlen < 2)
        return 0;
    int cflag = v[0], cmethod = v[1];
    const uint8_t *r = v + 2, *end = s + n;
    const uint8_t *z1 = memchr(r, 0, (size_t)(end - r));
    if (!z1)
        return 0;
    const uint8_t *z2 = memchr(z1 + 1, 0, (size_t)(end - z1 - 1));
    if (!z2)
        return 0;
    const uint8_t *text = z2 + 1;
    size_t tlen = (size_t)(end - text);
    uint8_t *inflated = NULL;
    if (cflag != 0) {
        if (cmethod != 0)
            return 0;
        bool keep = key != KEY_OTHER;
        if (!keep && !full)
            return 0;
        bool ok = false;
        if (png_inflate_text(text, tlen, keep, &inflated, &tlen, &ok, err))
            return -1;
        if (!ok)
            return 0;
        text = inflated ? inflated : (const uint8_t *)"";
    }
    /* Pillow counts the text's characters toward its limit. Text inflated
     * only to be measured (an unkept key) is not held, so its byte count
     * stands in: an upper bound of its characters. */
    const size_t chars = (cflag != 0 && !inflated) ? tlen : utf8_chars(text, tlen);
    if (key == KEY_XMP) {
        png_text_own(t, 2, inflated);
        inflated = NULL;
        t->xmp = text, t->xmp_len = tlen;
    } else if (key == KEY_RAW_PROFILE) {
        png_text_own(t, 1, inflated);
        inflated = NULL;
        t->raw_profile = text, t->raw_profile_len = tlen;
    } else if (key == KEY_EXIF) {
        t->have_exif = true, t->exif_is_str = true;
    }
    free(inflated); /* text may point into it: measured above */
    return png_text_memory(t, chars, err);
}

/* "Raw profile type exif": Pillow keeps the lines after the third and
 * decodes them with bytes.fromhex (whitespace allowed between byte pairs).
 * Returns a malloc'd buffer, or NULL when the hex is invalid. */
static uint8_t *png_raw_profile_bytes(const uint8_t *s, size_t n, size_t *out_len)
{
    size_t i = 0;
    for (int lines = 0; lines < 3; lines++) {
        const uint8_t *nl = memchr(s + i, '\n', n - i);
        if (!nl) {
            i = n;
            break;
        }
        i = (size_t)(nl - s) + 1;
    }
    uint8_t *out = malloc((n - i) / 2 + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == '\n') { /* the joined lines lose their newlines */
            i++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            i++;
            continue;
        }
        int hi = -1, lo = -1;
        for (int j = 0; j < 2; j++) {
            /* the second digit may not be separated by a newline-free gap,
             * but a newline between them vanishes in the join */
            while (j == 1 && i < n && s[i] == '\n')
                i++;
            if (i >= n) {
                free(out);
                return NULL;
            }
            uint8_t h = s[i++];
            int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (v < 0) {
                free(out);
                return NULL;
            }
            if (j == 0)
                hi = v;
            else
                lo = v;
        }
        out[k++] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = k;
    return out;
}

static bool png_is_cid(const uint8_t *t)
{
    for (int i = 0; i < 4; i++) {
        uint8_t c = t[i];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_';
        if (!word)
            return false;
    }
    return true;
}

static int png_read_header(const uint8_t *d, size_t len, bool full, image_header *h,
                           prism_error *err)
{
    image_info *info = &h->info;
    png_text_state t;
    memset(&t, 0, sizeof t);
    int ret = -1;
    bool have_ihdr = false, idat_seen = false, in_idat_run = false;
    long seq_num = -1; /* APNG sequence number; -1 is Pillow's None */
    uint32_t actl_frames = 0;    /* PngStream.im_n_frames; 0 is None */
    bool fctl_before_idat = false;
    bool trns_set = false;
    const uint8_t *trns = NULL;
    size_t trns_len = 0;
    const uint8_t *plte = NULL;
    size_t plte_len = 0;

    size_t pos = 8;
    for (;;) {
        bool after = idat_seen && !in_idat_run;
        if (len - pos < 8) {
            if (!idat_seen) {
                prism_errorf(err, "truncated PNG: the file ends before the image data");
                goto out;
            }
            break; /* Pillow's load_end stops at a short chunk header */
        }
        uint32_t n = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (!png_is_cid(type)) {
            if (idat_seen) {
                in_idat_run = false;
                break; /* load_end: SyntaxError ends the walk */
            }
            prism_errorf(err, "invalid PNG: bad chunk type at byte %zu", pos);
            goto out;
        }
        const uint8_t *s = d + pos + 8;
        bool is_idat = memcmp(type, "IDAT", 4) == 0;
        if (n > len - pos - 8) {
            prism_errorf(err, "truncated PNG: %.4s chunk of %u bytes runs past the end of the file",
                         (const char *)type, n);
            goto out;
        }
        if (is_idat && !idat_seen) {
            if (!have_ihdr) {
                prism_errorf(err, "invalid PNG: image data before IHDR");
                goto out;
            }
            idat_seen = in_idat_run = true;
            h->png_idat_begin = pos;
        }
        if (in_idat_run && !is_idat) {
            in_idat_run = false;
            h->png_idat_end = pos;
            after = true;
        }
        if (!idat_seen) {
            /* Before the image data every chunk's CRC is checked. */
            if (len - pos - 8 - n < 4) {
                prism_errorf(err, "truncated PNG: %.4s chunk without its CRC", (const char *)type);
                goto out;
            }
            uint32_t crc = (uint32_t)crc32(0L, type, 4);
            crc = (uint32_t)crc32(crc, s, n);
            if (crc != be32(s + n)) {
                prism_errorf(err, "invalid PNG: bad CRC in %.4s chunk", (const char *)type);
                goto out;
            }
        }

        if (memcmp(type, "IHDR", 4) == 0 && !after) {
            if (n < 13) {
                prism_errorf(err, "invalid PNG: IHDR chunk of %u bytes", n);
                goto out;
            }
            if (have_ihdr || pos != 8) {
                prism_errorf(err, "invalid PNG: IHDR is not the first chunk or appears twice");
                goto out;
            }
            have_ihdr = true;
            h->png_ihdr = d + pos;
            uint32_t w = be32(s), hh = be32(s + 4);
            int bits = s[8], ct = s[9];
            if (w == 0 || hh == 0 || w > INT32_MAX || hh > INT32_MAX) {
                prism_errorf(err, "invalid PNG: image size %ux%u", w, hh);
                goto out;
            }
            bool valid = (ct == 0 && (bits == 1 || bits == 2 || bits == 4 || bits == 8 || bits == 16)) ||
                         (ct == 3 && (bits == 1 || bits == 2 || bits == 4 || bits == 8)) ||
                         ((ct == 2 || ct == 4 || ct == 6) && (bits == 8 || bits == 16));
            if (!valid) {
                prism_errorf(err, "invalid PNG: bit depth %d with colour type %d", bits, ct);
                goto out;
            }
            if (s[11] != 0) {
                prism_errorf(err, "invalid PNG: unknown filter method %d", s[11]);
                goto out;
            }
            if (s[10] != 0 || s[12] > 1) {
                prism_errorf(err, "invalid PNG: unknown %s method %d",
                             s[10] ? "compression" : "interlace", s[10] ? s[10] : s[12]);
                goto out;
            }
            info->width = (int)w, info->height = (int)hh;
            info->bit_depth = bits;
            h->png_color_type = ct;
            info->channels = ct == 0 || ct == 3 ? 1 : ct == 4 ? 2 : ct == 2 ? 3 : 4;
            info->progressive = s[12] == 1;
        } else if (!have_ihdr) {
            prism_errorf(err, "invalid PNG: the first chunk is %.4s, not IHDR", (const char *)type);
            goto out;
        } else if (memcmp(type, "PLTE", 4) == 0) {
            if (!idat_seen && h->png_color_type == 3) {
                plte = s, plte_len = n;
                if (!h->png_plte_chunk) {
                    h->png_plte_chunk = d + pos;
                    h->png_plte_chunk_len = (size_t)n + 12;
                }
            }
        } else if (memcmp(type, "tRNS", 4) == 0) {
            int ct = h->png_color_type;
            if (ct == 0 || ct == 2) {
                if (n < (ct == 2 ? 6u : 2u)) {
                    prism_errorf(err, "invalid PNG: truncated tRNS chunk");
                    goto out;
                }
            }
            if (ct != 4 && ct != 6)
                trns = s, trns_len = n, trns_set = true;
        } else if (memcmp(type, "IEND", 4) == 0) {
            if (!idat_seen) {
                prism_errorf(err, "invalid PNG: no image data (IEND before any IDAT)");
                goto out;
            }
            break;
        } else if (memcmp(type, "eXIf", 4) == 0) {
            t.exif = s, t.exif_len = n, t.have_exif = true, t.exif_is_str = false;
            /* Pillow prefixes "Exif\0\0"; the parser strips it again. */
        } else if (memcmp(type, "tEXt", 4) == 0 || memcmp(type, "zTXt", 4) == 0 ||
                   memcmp(type, "iTXt", 4) == 0) {
            if (png_text_chunk(&t, type, s, n, full, err))
                goto out;
        } else if (memcmp(type, "acTL", 4) == 0) {
            if (n < 8) {
                prism_errorf(err, "invalid PNG: truncated acTL chunk");
                goto out;
            }
            uint32_t frames = be32(s);
            if (!idat_seen) /* a second acTL makes Pillow drop the animation */
                actl_frames = actl_frames == 0 && frames <= 0x80000000u ? frames : 0;
        } else if (memcmp(type, "fcTL", 4) == 0) {
            /* n_frames counts the IDAT image when no fcTL precedes it;
             * load_end of an animated image stops at the next frame. */
            if (after && actl_frames && actl_frames + !fctl_before_idat > 1)
                break;
            if (!idat_seen)
                fctl_before_idat = true;
            if (n < 26) {
                prism_errorf(err, "invalid APNG: truncated fcTL chunk");
                goto out;
            }
            long seq = (long)be32(s);
            if ((seq_num < 0 && seq != 0) || (seq_num >= 0 && seq_num != seq - 1)) {
                prism_errorf(err, "invalid APNG: frame sequence error");
                goto out;
            }
            seq_num = seq;
            uint64_t fw = be32(s + 4), fh = be32(s + 8), px = be32(s + 12), py = be32(s + 16);
            if (px + fw > (uint64_t)info->width || py + fh > (uint64_t)info->height) {
                prism_errorf(err, "invalid APNG: frame outside the image");
                goto out;
            }
        } else if (memcmp(type, "fdAT", 4) == 0) {
            if (n < 4) {
                prism_errorf(err, "invalid APNG: truncated fdAT chunk");
                goto out;
            }
            long seq = (long)be32(s);
            if (seq_num != seq - 1 || seq_num < 0) {
                prism_errorf(err, "invalid APNG: frame sequence error");
                goto out;
            }
            seq_num = seq;
        }
        pos += 8 + (size_t)n;
        /* The CRC: required before the image data (checked above); after
         * it, a missing CRC only ends the walk at the next header. */
        pos = len - pos < 4 ? len : pos + 4;
    }
    if (in_idat_run || h->png_idat_end == 0)
        h->png_idat_end = pos < len ? pos : len;
    if (h->png_idat_end > len)
        h->png_idat_end = len;

    /* Palette: Pillow keeps PLTE for palette images only, any length; more
     * than 256 entries fails in putpalette. */
    if (plte) {
        if (plte_len > 768) {
            prism_errorf(err, "invalid PNG: palette of %zu entries", plte_len / 3);
            goto out;
        }
        h->png_plte = plte;
        h->png_plte_entries = (int)(plte_len / 3);
    }

    /* Transparency as info["transparency"] after convert("RGB"). */
    if (trns_set) {
        int ct = h->png_color_type;
        if (ct == 3) {
            /* ^\xff*\x00\xff*$: exactly one fully transparent entry. */
            size_t zeros = 0, idx = 0;
            bool simple = trns_len > 0;
            for (size_t i = 0; i < trns_len; i++) {
                if (trns[i] == 0)
                    zeros++, idx = i;
                else if (trns[i] != 0xFF)
                    simple = false;
            }
            if (simple && zeros == 1) {
                h->png_has_key = true, h->png_key_is_int = true;
                h->png_key_value = (int)idx;
            }
        } else if (ct == 0) {
            uint32_t g = be16(trns);
            h->png_has_key = true, h->png_key_is_int = true;
            h->png_key_value = info->bit_depth == 1 ? (g ? 255 : 0) : (int)g;
        } else if (ct == 2) {
            h->png_has_key = true, h->png_key_is_int = false;
            for (int i = 0; i < 3; i++)
                h->png_key_rgb[i] = (uint16_t)be16(trns + 2 * i);
        }
    }

    /* Orientation: info["exif"], else "Raw profile type exif", else XMP. */
    info->format = IMAGE_FORMAT_PNG;
    if (t.have_exif) {
        info->orientation = t.exif_is_str ? 1 : decide_orientation(true, t.exif, t.exif_len, t.xmp, t.xmp_len);
    } else if (t.raw_profile) {
        size_t blen = 0;
        uint8_t *b = png_raw_profile_bytes(t.raw_profile, t.raw_profile_len, &blen);
        info->orientation = b ? decide_orientation(true, b, blen, t.xmp, t.xmp_len) : 1;
        free(b);
    } else {
        info->orientation = decide_orientation(false, NULL, 0, t.xmp, t.xmp_len);
    }
    finish_info(info);
    ret = 0;
out:
    png_text_free(&t);
    return ret;
}

int image_header_read(const uint8_t *data, size_t len, bool full, image_header *h,
                      prism_error *err)
{
    memset(h, 0, sizeof *h);
    if (!data || len == 0)
        return prism_errorf(err, "empty image data");
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return jpeg_read_header(data, len, h, err);
    if (len >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        return png_read_header(data, len, full, h, err);
    if (len >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        return prism_error_unsupported(
            err, "unsupported image format (WebP; JPEG and PNG are supported)");
    if (len >= 6 && (memcmp(data, "GIF87a", 6) == 0 || memcmp(data, "GIF89a", 6) == 0))
        return prism_error_unsupported(
            err, "unsupported image format (GIF; JPEG and PNG are supported)");
    return prism_error_unsupported(err, "unsupported image format (not JPEG or PNG)");
}

int image_probe(const uint8_t *data, size_t len, image_info *out, prism_error *err)
{
    image_header h;
    if (image_header_read(data, len, false, &h, err))
        return -1;
    *out = h.info;
    return 0;
}
