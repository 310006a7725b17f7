/* api_error.h - the one error shape of the HTTP API.
 *
 * Every failure a client can cause becomes an api_error: an HTTP status, a
 * machine-readable code, the request field at fault (param) and a message
 * for humans. It is serialised as
 *   {"error": {"type": ..., "code": ..., "message": ..., "param": ...}}
 * with `type` derived from the status (OpenAI's vocabulary), `param` null
 * when no single field is at fault.
 */
#ifndef PRISM_API_ERROR_H
#define PRISM_API_ERROR_H

typedef struct api_error {
    int status;        /* HTTP status: 400, 401, 404, 405, 413, 415, 422, 500, 503, 504 */
    char code[48];     /* e.g. "missing_field", "queue_full" */
    char param[96];    /* e.g. "images[2]"; "" when none */
    char message[400];
} api_error;

/* Fills e and returns -1, so parsers can `return api_errorf(...)`. param may
 * be NULL. */
int api_errorf(api_error *e, int status, const char *code, const char *param, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

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
