/* api_buf.h - a growable string for writing JSON responses.
 *
 * Responses carry thousands of floats; writing them with snprintf into one
 * buffer is several times faster than building a jansson tree. Out of
 * memory is sticky: after a failed append, `oom` is set, later appends do
 * nothing and api_buf_finish returns NULL.
 */
#ifndef PRISM_API_BUF_H
#define PRISM_API_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct api_buf {
    char *data;
    size_t len, cap;
    bool oom;
} api_buf;

void api_buf_puts(api_buf *b, const char *s);
void api_buf_putn(api_buf *b, const char *s, size_t n);
void api_buf_printf(api_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal of s[0..n), quoted and escaped. Each byte that
 * does not start a valid UTF-8 sequence is written as \ufffd (U+FFFD), so
 * the literal is valid JSON whatever the bytes; valid UTF-8 is kept as is. */
void api_buf_json_string(api_buf *b, const char *s, size_t n);
/* A float as %.9g (round-trips float32); NaN and ±Inf, which JSON cannot
 * spell, as null. */
void api_buf_float(api_buf *b, float x);
/* [x0,x1,...] of n floats. */
void api_buf_float_array(api_buf *b, const float *x, size_t n);
/* Returns the NUL-terminated text (caller frees), or NULL after an OOM. */
char *api_buf_finish(api_buf *b, size_t *len);
void api_buf_free(api_buf *b);

#endif
