/* json.h - a small JSON reader for the engine's own files.
 *
 * The engine reads three JSON documents: config.json,
 * preprocessor_config.json, model.safetensors.index.json, and each
 * safetensors header. This reader keeps the engine free of library
 * dependencies (so it builds on a machine with only a C compiler and, for
 * the GPU backend, the CUDA toolkit). It parses RFC 8259 JSON into a tree;
 * nesting deeper than JSON_MAX_DEPTH is refused, so hostile input cannot
 * exhaust the stack. The HTTP API uses jansson instead (api/).
 */
#ifndef PRISM_JSON_H
#define PRISM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    bool boolean;
    bool is_integer;   /* a number written without fraction or exponent that fits int64 */
    int64_t integer;
    double number;
    char *string;      /* NUL-terminated UTF-8 (may contain NUL via \u0000: use length) */
    size_t length;
    size_t count;      /* array items or object members */
    json_value *items; /* array items, or object member values */
    char **keys;       /* object member names */
};

/* Parses text[0..len). On failure returns NULL and writes a message with the
 * byte offset into err (err_len bytes). */
json_value *json_parse(const char *text, size_t len, char *err, size_t err_len);
/* Reads and parses a file; the message names the file. */
json_value *json_parse_file(const char *path, char *err, size_t err_len);
void json_free(json_value *v);

/* Object member lookup (first match); NULL when v is not an object or lacks it. */
const json_value *json_get(const json_value *v, const char *key);

#endif
