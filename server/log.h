/* log.h - structured log lines on stderr.
 *
 * A line is a message plus key/value fields, written as one JSON object
 * ({"ts":...,"level":"info","msg":"request","request_id":...}) or as text
 * (`2025-01-01T12:00:00.123Z info request request_id=... status=200`).
 * A line is assembled in memory and written with one fwrite, so lines from
 * different threads never interleave.
 */
#ifndef PRISM_SERVER_LOG_H
#define PRISM_SERVER_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "api_buf.h"

typedef enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

typedef struct srv_log {
    bool json;
    log_level level;
    FILE *out;
} srv_log;

/* "json"/"text" and "debug".."error" as the config table spells them. */
void log_init(srv_log *l, const char *format, const char *level, FILE *out);

typedef struct log_line {
    const srv_log *log;
    api_buf b;
    bool on; /* false when the level is filtered out: the calls do nothing */
} log_line;

void log_begin(log_line *ln, const srv_log *l, log_level lv, const char *msg);
void log_str(log_line *ln, const char *key, const char *value);
void log_int(log_line *ln, const char *key, long long value);
void log_num(log_line *ln, const char *key, double value); /* 3 decimals */
void log_end(log_line *ln);

/* One-field convenience: msg with an optional "detail" string. */
void log_msg(const srv_log *l, log_level lv, const char *msg, const char *detail);

#endif
