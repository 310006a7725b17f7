/* image_meta.c - the EXIF Orientation tag and XMP's tiff:Orientation, read
 * the way Pillow reads them.
 *
 * transformers' load_image calls ImageOps.exif_transpose, which asks
 * Image.getexif() for tag 0x0112. Pillow's reading has quirks that decide
 * whether an image is rotated, so they are reproduced here (Image.Exif.load
 * and TiffImagePlugin.ImageFileDirectory_v2.load in Pillow 12/13):
 *
 *  - up to two leading "Exif\0\0" are stripped; an empty rest means no EXIF;
 *  - the 8-byte TIFF header must start with one of Pillow's PREFIXES
 *    (II*\0, MM\0*, and the byte-swapped variants); little-endian BigTIFF
 *    makes Pillow raise (struct.error), as does a header shorter than 8;
 *  - IFD0 entries are read in order; an unknown field type is skipped; the
 *    first kept entry of a tag wins (later duplicates are skipped); an entry
 *    whose out-of-line data would bring the running total past the
 *    payload's size is skipped; an entry whose data lies (partly) outside
 *    the payload ends the IFD there (_safe_read raises OSError, caught
 *    around the whole loop), and so does running out of bytes;
 *  - the Orientation value is the entry's first value; integer types give
 *    an int, FLOAT/DOUBLE a float and RATIONAL an IFDRational, which all
 *    compare (and hash) equal to 2..8 when integral; BYTE, ASCII and
 *    UNDEFINED give bytes/str, which never rotate.
 *
 * XMP (Image.getexif, when IFD0 has no Orientation): the first match of
 * the regex tiff:Orientation(="|>)([0-9]).
 */
#include "image_internal.h"

#include <math.h>
#include <string.h>

static uint32_t rd16(const uint8_t *p, bool be)
{
    return be ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}

static uint32_t rd32(const uint8_t *p, bool be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Bytes per value of the TIFF field types Pillow registers a loader for;
 * 0 for types it skips. */
static unsigned tiff_unit_size(unsigned type)
{
    switch (type) {
    case 1: case 2: case 6: case 7: /* BYTE, ASCII, SBYTE, UNDEFINED */
        return 1;
    case 3: case 8: /* SHORT, SSHORT */
        return 2;
    case 4: case 9: case 11: case 13: /* LONG, SLONG, FLOAT, IFD */
        return 4;
    case 5: case 10: case 12: case 16: /* RATIONAL, SRATIONAL, DOUBLE, LONG8 */
        return 8;
    default:
        return 0;
    }
}

/* The first value of an Orientation entry as transformers' dict lookup sees
 * it: 2..8 when it compares equal to one of them, else 1. */
static int orientation_value(unsigned type, const uint8_t *d, bool be)
{
    double v;
    switch (type) {
    case 3: v = rd16(d, be); break;
    case 8: v = (int16_t)rd16(d, be); break;
    case 4: case 13: v = rd32(d, be); break;
    case 9: v = (int32_t)rd32(d, be); break;
    case 6: v = (int8_t)d[0]; break;
    case 16: {
        uint64_t hi = rd32(d + (be ? 0 : 4), be), lo = rd32(d + (be ? 4 : 0), be);
        v = hi ? 0 : (double)lo;
        break;
    }
    case 11: {
        uint32_t bits = rd32(d, be);
        float f;
        memcpy(&f, &bits, sizeof f);
        v = f;
        break;
    }
    case 12: {
        uint64_t hi = rd32(d + (be ? 0 : 4), be), lo = rd32(d + (be ? 4 : 0), be);
        uint64_t bits = hi << 32 | lo;
        memcpy(&v, &bits, sizeof v);
        break;
    }
    case 5: case 10: {
        double num = type == 5 ? (double)rd32(d, be) : (double)(int32_t)rd32(d, be);
        double den = type == 5 ? (double)rd32(d + 4, be) : (double)(int32_t)rd32(d + 4, be);
        if (den == 0)
            return 1; /* IFDRational(n, 0) is NaN */
        if (fmod(num, den) != 0)
            return 1;
        v = num / den;
        break;
    }
    default: /* BYTE -> bytes, ASCII -> str, UNDEFINED -> bytes */
        return 1;
    }
    if (v == 2 || v == 3 || v == 4 || v == 5 || v == 6 || v == 7 || v == 8)
        return (int)v;
    return 1;
}

image_exif_state image_exif_orientation(const uint8_t *exif, size_t len, int *orientation)
{
    *orientation = 1;
    for (int i = 0; i < 2 && len >= 6 && memcmp(exif, "Exif\0\0", 6) == 0; i++)
        exif += 6, len -= 6;
    if (len == 0)
        return IMAGE_EXIF_NO_TAG;
    if (len < 4)
        return IMAGE_EXIF_BROKEN;
    static const char prefixes[6][4] = {
        {'M', 'M', 0, 0x2a}, {'I', 'I', 0x2a, 0}, {'M', 'M', 0x2a, 0},
        {'I', 'I', 0, 0x2a}, {'M', 'M', 0, 0x2b}, {'I', 'I', 0x2b, 0},
    };
    bool known = false;
    for (int i = 0; i < 6; i++)
        known = known || memcmp(exif, prefixes[i], 4) == 0;
    /* BigTIFF (byte 2 == 43) needs 16 header bytes; Pillow reads 8 and fails. */
    if (!known || len < 8 || exif[2] == 0x2b)
        return IMAGE_EXIF_BROKEN;
    const bool be = exif[0] == 'M';

    size_t pos = rd32(exif + 4, be);
    if (pos > len || len - pos < 2)
        return IMAGE_EXIF_NO_TAG;
    unsigned count = rd16(exif + pos, be);
    pos += 2;
    bool found = false;
    int value = 1;
    uint8_t stored[65536 / 8] = {0}; /* tags already kept: a later duplicate is skipped */
    uint64_t total = 0;              /* bytes of out-of-line data asked for so far */
    for (unsigned i = 0; i < count; i++, pos += 12) {
        if (len - pos < 12)
            break;
        const uint8_t *e = exif + pos;
        unsigned tag = rd16(e, be), type = rd16(e + 2, be);
        if (stored[tag >> 3] & (1u << (tag & 7)))
            continue;
        uint64_t n = rd32(e + 4, be);
        unsigned unit = tiff_unit_size(type);
        if (unit == 0)
            continue;
        uint64_t size = n * unit;
        const uint8_t *d = e + 8;
        if (size > 4) {
            uint64_t off = rd32(e + 8, be);
            total += size;
            if (total > len)
                continue; /* "Tag data larger than file": skipped */
            if (off > len || len - off < size)
                break; /* OSError("Truncated File Read") ends the IFD */
            d = exif + off;
        } else if (size == 0) {
            continue;
        }
        stored[tag >> 3] |= (uint8_t)(1u << (tag & 7));
        if (tag == 0x0112) {
            found = true;
            value = orientation_value(type, d, be);
        }
    }
    if (!found)
        return IMAGE_EXIF_NO_TAG;
    *orientation = value;
    return IMAGE_EXIF_TAG;
}

int image_xmp_orientation(const uint8_t *xmp, size_t len)
{
    static const char key[] = "tiff:Orientation";
    const size_t k = sizeof key - 1;
    for (size_t i = 0; i + k < len; i++) {
        if (xmp[i] != 't' || memcmp(xmp + i, key, k) != 0)
            continue;
        size_t j = i + k;
        if (j + 1 < len && xmp[j] == '=' && xmp[j + 1] == '"')
            j += 2;
        else if (xmp[j] == '>')
            j += 1;
        else
            continue;
        if (j < len && xmp[j] >= '0' && xmp[j] <= '9')
            return xmp[j] - '0';
    }
    return 0;
}
