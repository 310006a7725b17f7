/* prism_error.h - the error value every fallible engine call fills in.
 *
 * Engine functions return 0 on success and -1 on failure; on failure they
 * write a one-line, human-readable message into the caller's prism_error
 * (naming the file, tensor or config key at fault). Nothing in the engine
 * aborts or exits on bad input.
 */
#ifndef PRISM_ERROR_H
#define PRISM_ERROR_H

#include <stddef.h>

/* What kind of failure: the server answers PRISM_ERR_NOMEM with 503 (retry
 * later), PRISM_ERR_DEVICE_LOST with 503 and then fails its health check,
 * PRISM_ERR_UNSUPPORTED from an image probe with 415, everything else with
 * 4xx/500 by where it happened. */
typedef enum prism_error_code {
    PRISM_ERR_FAILED = 0,  /* bad input, bad file, a device fault */
    PRISM_ERR_NOMEM,       /* host or device memory (or another device resource) ran out */
    PRISM_ERR_DEVICE_LOST, /* the device cannot compute any more (a sticky CUDA error such
                            * as an illegal address): only a new process recovers */
    PRISM_ERR_UNSUPPORTED  /* well-formed input of a kind not supported (an image format
                            * other than JPEG and PNG, a 12-bit JPEG) */
} prism_error_code;

typedef struct prism_error {
    char msg[512];
    prism_error_code code;
} prism_error;

/* Formats msg into err (if err is non-NULL), sets code PRISM_ERR_FAILED and
 * returns -1, so callers can write `return prism_errorf(err, "...", ...);`. */
int prism_errorf(prism_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* As prism_errorf, with code PRISM_ERR_NOMEM. */
int prism_error_nomem(prism_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* As prism_errorf, with code PRISM_ERR_UNSUPPORTED. */
int prism_error_unsupported(prism_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "<prefix>: <old message>"; the code stays.
 * Returns -1. */
int prism_error_prefix(prism_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
