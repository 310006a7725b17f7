/* api_buf.c - growable string for JSON responses (see api_buf.h). */
#include "api_buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void api_buf_json_string(api_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!buf_reserve(b, n + 2))
        return;
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t k = 2;
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
            } else {
                k = 0;
            }
        }
        if (k)
            api_buf_putn(b, esc, k);
        else
            api_buf_putn(b, (const char *)&s[i], 1);
    }
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
