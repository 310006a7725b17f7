/* prism_error.c - formatting helpers for prism_error. */
#include "prism_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int error_v(prism_error *err, prism_error_code code, const char *fmt, va_list ap)
{
    if (err) {
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        err->code = code;
    }
    return -1;
}

int prism_errorf(prism_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(err, PRISM_ERR_FAILED, fmt, ap);
    va_end(ap);
    return -1;
}

int prism_error_nomem(prism_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(err, PRISM_ERR_NOMEM, fmt, ap);
    va_end(ap);
    return -1;
}

int prism_error_unsupported(prism_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(err, PRISM_ERR_UNSUPPORTED, fmt, ap);
    va_end(ap);
    return -1;
}

int prism_error_prefix(prism_error *err, const char *fmt, ...)
{
    if (err) {
        char prefix[256], old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        size_t n = strlen(prefix);
        memcpy(err->msg, prefix, n);
        memcpy(err->msg + n, ": ", 3);
        n += 2;
        size_t rest = sizeof err->msg - 1 - n; /* n < 258, so rest > 0 */
        size_t len = strnlen(old, sizeof old - 1);
        if (len > rest)
            len = rest;
        memcpy(err->msg + n, old, len);
        err->msg[n + len] = '\0';
    }
    return -1;
}
