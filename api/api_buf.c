/* api_buf.c - growable string for JSON responses (see api_buf.h). */
#include "api_buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"

static bool buf_reserve(api_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void api_buf_putn(api_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void api_buf_puts(api_buf *b, const char *s)
{
    api_buf_putn(b, s, strlen(s));
}

void api_buf_printf(api_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        api_buf_putn(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Bytes of the valid UTF-8 sequence at s[0..n), 0 when none starts there. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    const size_t k = s[0] < 0x80                   ? 1
                   : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                   : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                   : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                  : 0;
    return k && k <= n && api_utf8_valid((const char *)s, k) ? k : 0;
}

void api_buf_json_string(api_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    if (!buf_reserve(b, n + 2))
        return;
    b->data[b->len++] = '"';
    size_t run = 0; /* start of the bytes not yet written, copied as they are */
    for (size_t i = 0; i < n;) {
        const unsigned char c = u[i];
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t k = 2, seq = 1;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c < 0x20) {
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                k = 6;
            } else if (c < 0x80 || (seq = utf8_seq(u + i, n - i)) > 0) {
                k = 0;
            } else {
                memcpy(esc + 1, "ufffd", 5); /* not UTF-8: U+FFFD REPLACEMENT CHARACTER */
                k = 6;
                seq = 1;
            }
        }
        if (k) {
            if (i > run)
                api_buf_putn(b, s + run, i - run);
            api_buf_putn(b, esc, k);
            run = i + seq;
        }
        i += seq;
    }
    if (n > run)
        api_buf_putn(b, s + run, n - run);
    api_buf_putn(b, "\"", 1);
}

void api_buf_float(api_buf *b, float x)
{
    if (!isfinite(x)) {
        api_buf_putn(b, "null", 4);
        return;
    }
    if (!buf_reserve(b, 32))
        return;
    int n = snprintf(b->data + b->len, 32, "%.9g", (double)x);
    b->len += (size_t)n;
}

void api_buf_float_array(api_buf *b, const float *x, size_t n)
{
    api_buf_putn(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            api_buf_putn(b, ",", 1);
        api_buf_float(b, x[i]);
    }
    api_buf_putn(b, "]", 1);
}

char *api_buf_finish(api_buf *b, size_t *len)
{
    if (!buf_reserve(b, 0)) {
        api_buf_free(b);
        return NULL;
    }
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void api_buf_free(api_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
