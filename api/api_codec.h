/* api_codec.h - base64 and the image values of the HTTP API.
 *
 * An image in a JSON body is a string: a data URL
 * (`data:image/png;base64,...`) or bare base64 of the file's bytes. The
 * server fetches nothing: `http://`, `https://` and `file:` values are
 * refused. The format is not taken from the data URL's media type; the
 * server sniffs it from the bytes.
 */
#ifndef PRISM_API_CODEC_H
#define PRISM_API_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_error.h"

/* Decodes standard or URL-safe base64; ASCII whitespace is skipped and the
 * `=` padding is optional. Returns a malloc'd buffer (*out_len bytes; never
 * NULL on success, even for an empty result) or NULL on a bad character,
 * a bad length or out of memory (*oom tells which). */
uint8_t *api_base64_decode(const char *s, size_t n, size_t *out_len, bool *oom);

/* Standard base64 with padding; returns a malloc'd NUL-terminated string. */
char *api_base64_encode(const void *data, size_t n, size_t *out_len);

/* Decodes an image value (data URL or bare base64) into its bytes. `param`
 * names the field in errors (400 "unsupported_image_source" for URLs and
 * files, "invalid_base64", "invalid_data_url", "empty_image"). */
int api_image_decode(const char *s, size_t n, const char *param, uint8_t **out, size_t *out_len,
                     api_error *e);

/* True when s looks like an image data URL (OpenAI /v1/embeddings inputs). */
bool api_is_image_data_url(const char *s, size_t n);

/* True when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
bool api_utf8_valid(const char *s, size_t n);

#endif
