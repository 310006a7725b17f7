/* api_codec.c - base64, image values, UTF-8 checks (see api_codec.h). */
#include "api_codec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

uint8_t *api_base64_decode(const char *s, size_t n, size_t *out_len, bool *oom)
{
    *oom = false;
    uint8_t *out = malloc(n / 4 * 3 + 3);
    if (!out) {
        *oom = true;
        return NULL;
    }
    size_t o = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) /* a bad character, or data after padding */
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        digits++;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* 1 leftover digit cannot encode a byte; padding must complete a quad */
    if (digits % 4 == 1 || pad > 2 || (pad && (digits + pad) % 4))
        goto bad;
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}

char *api_base64_encode(const void *data, size_t n, size_t *out_len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    size_t len = (n + 2) / 3 * 4;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    return n >= k && strncasecmp(s, p, k) == 0;
}

bool api_is_image_data_url(const char *s, size_t n)
{
    return has_prefix(s, n, "data:image/");
}

int api_image_decode(const char *s, size_t n, const char *param, uint8_t **out, size_t *out_len,
                     api_error *e)
{
    *out = NULL;
    if (has_prefix(s, n, "http://") || has_prefix(s, n, "https://") || has_prefix(s, n, "file:") ||
        has_prefix(s, n, "ftp://"))
        return api_errorf(e, API_ERR_UNSUPPORTED_IMAGE_SOURCE, param,
                          "%s: images must be sent inline as a data URL or base64; the server "
                          "fetches no URLs or files",
                          param);
    if (has_prefix(s, n, "data:")) {
        const char *comma = memchr(s, ',', n);
        if (!comma)
            return api_errorf(e, API_ERR_INVALID_DATA_URL, param,
                              "%s: a data URL needs a ',' before its data", param);
        size_t hl = (size_t)(comma - s);
        /* the header must end in ";base64": percent-encoded images are not supported */
        if (hl < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
            return api_errorf(e, API_ERR_INVALID_DATA_URL, param,
                              "%s: a data URL must be base64-encoded (data:image/...;base64,...)",
                              param);
        if (!has_prefix(s, n, "data:image/") && !has_prefix(s, n, "data:application/octet-stream"))
            return api_errorf(e, API_ERR_UNSUPPORTED_MEDIA_TYPE, param,
                              "%s: the data URL's media type is not an image", param);
        n -= hl + 1;
        s = comma + 1;
    }
    bool oom;
    uint8_t *d = api_base64_decode(s, n, out_len, &oom);
    if (!d)
        return oom ? api_errorf(e, API_ERR_OUT_OF_MEMORY, param, "out of memory")
                   : api_errorf(e, API_ERR_INVALID_BASE64, param,
                                "%s: not valid base64 (nor a data URL)", param);
    if (*out_len == 0) {
        free(d);
        return api_errorf(e, API_ERR_EMPTY_IMAGE, param, "%s: the image is empty", param);
    }
    *out = d;
    return 0;
}

bool api_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}
