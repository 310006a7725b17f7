/* api_error.h - the one error shape of the HTTP API.
 *
 * Every failure a client can cause becomes an api_error: an HTTP status, a
 * machine-readable code, the request field at fault (param) and a message
 * for humans. It is serialised as
 *   {"error": {"type": ..., "code": ..., "message": ..., "param": ...}}
 * with `type` derived from the status (OpenAI's vocabulary), `param` null
 * when no single field is at fault.
 *
 * API_ERROR_CODES is the whole vocabulary: an error can only be made from
 * one of its rows (api_errorf takes an api_code, not a string), and each code
 * has one HTTP status, whichever endpoint answers it. docs/api.md's Errors
 * table and api/openapi.yaml's Error.code enum list the same codes with the
 * same statuses; tests/test_error_codes.c compares the three.
 */
#ifndef PRISM_API_ERROR_H
#define PRISM_API_ERROR_H

/* X(ID, "code", status): one row per code the server can answer with. */
#define API_ERROR_CODES(X)                                                                    \
    /* 400: the request is malformed */                                                       \
    X(INVALID_FRAMING, "invalid_framing", 400)                                                \
    X(INVALID_JSON, "invalid_json", 400)                                                      \
    X(INVALID_MULTIPART, "invalid_multipart", 400)                                            \
    X(MISSING_FIELD, "missing_field", 400)                                                    \
    X(INVALID_TYPE, "invalid_type", 400)                                                      \
    X(INVALID_VALUE, "invalid_value", 400)                                                    \
    X(INVALID_UTF8, "invalid_utf8", 400)                                                      \
    X(INVALID_TEXT, "invalid_text", 400)                                                      \
    X(PROMPT_TOO_LONG, "prompt_too_long", 400)                                                \
    X(UNSUPPORTED_IMAGE_SOURCE, "unsupported_image_source", 400)                              \
    X(INVALID_DATA_URL, "invalid_data_url", 400)                                              \
    X(INVALID_BASE64, "invalid_base64", 400)                                                  \
    X(EMPTY_IMAGE, "empty_image", 400)                                                        \
    X(INVALID_IMAGE, "invalid_image", 400)                                                    \
    X(INVALID_API_KEY, "invalid_api_key", 401)                                                \
    X(NOT_FOUND, "not_found", 404)                                                            \
    X(MODEL_NOT_FOUND, "model_not_found", 404)                                                \
    X(METHOD_NOT_ALLOWED, "method_not_allowed", 405)                                          \
    X(BODY_TIMEOUT, "body_timeout", 408)                                                      \
    X(LENGTH_REQUIRED, "length_required", 411)                                                \
    /* 413: over a limit */                                                                   \
    X(BODY_TOO_LARGE, "body_too_large", 413)                                                  \
    X(TOO_MANY_ITEMS, "too_many_items", 413)                                                  \
    X(TEXT_TOO_LONG, "text_too_long", 413)                                                    \
    X(TEMPLATE_TOO_LONG, "template_too_long", 413)                                            \
    X(IMAGE_TOO_LARGE, "image_too_large", 413)                                                \
    X(TOO_MANY_TOKENS, "too_many_tokens", 413)                                                \
    X(TOO_MANY_BEAMS, "too_many_beams", 413)                                                  \
    X(TOO_MANY_PATCHES, "too_many_patches", 413)                                              \
    X(UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415)                                  \
    X(UNSUPPORTED_IMAGE_FORMAT, "unsupported_image_format", 415)                              \
    /* 422: valid, but this server cannot do it */                                            \
    X(MODEL_NOT_LOADED, "model_not_loaded", 422)                                              \
    X(TEXTS_UNSUPPORTED, "texts_unsupported", 422)                                            \
    X(IMAGES_UNSUPPORTED, "images_unsupported", 422)                                          \
    /* never sent: the client is gone; logged and counted as 499 */                           \
    X(CLIENT_DISCONNECTED, "client_disconnected", 499)                                        \
    X(INFERENCE_FAILED, "inference_failed", 500)                                              \
    X(INTERNAL_ERROR, "internal_error", 500)                                                  \
    X(UNSUPPORTED_TRANSFER_ENCODING, "unsupported_transfer_encoding", 501)                    \
    /* 503: retry (Retry-After: 1), here later or on another replica */                       \
    X(SERVER_BUSY, "server_busy", 503)                                                        \
    X(QUEUE_FULL, "queue_full", 503)                                                          \
    X(OUT_OF_MEMORY, "out_of_memory", 503)                                                    \
    X(LOADING, "loading", 503)                                                                \
    X(DRAINING, "draining", 503)                                                              \
    X(SHUTTING_DOWN, "shutting_down", 503)                                                    \
    X(DEVICE_LOST, "device_lost", 503)                                                        \
    X(DEADLINE_EXCEEDED, "deadline_exceeded", 504)

typedef enum api_code {
#define API_ERROR_CODE_ENUM(id, name, status) API_ERR_##id,
    API_ERROR_CODES(API_ERROR_CODE_ENUM)
#undef API_ERROR_CODE_ENUM
    API_ERR_COUNT
} api_code;

typedef struct api_error {
    int status;        /* HTTP status, from the code's row */
    api_code id;
    char code[48];     /* the code's name, e.g. "missing_field", "queue_full" */
    char param[96];    /* e.g. "images[2]"; "" when none */
    char message[400];
} api_error;

/* The code's name ("missing_field") and HTTP status (400). */
const char *api_code_name(api_code c);
int api_code_status(api_code c);

/* Fills e (status from the code's row) and returns -1, so parsers can
 * `return api_errorf(...)`. param may be NULL. */
int api_errorf(api_error *e, api_code code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "invalid_request_error", "authentication_error", "overloaded_error",
 * "timeout_error" or "server_error", by status. */
const char *api_error_type(int status);

/* The error as a JSON document (malloc'd, NUL-terminated, ending in a
 * newline; NULL when out of memory). */
char *api_error_json(const api_error *e);

/* Appends the same object (no newline) to b: for documents that carry an
 * error inside them, e.g. the last event of a cut-short stream. */
struct api_buf;
void api_error_put(struct api_buf *b, const api_error *e);

#endif
