/* log.c - structured log lines (see log.h). */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_init(srv_log *l, const char *format, const char *level, FILE *out)
{
    l->json = strcmp(format, "json") == 0;
    l->level = LOG_INFO;
    for (int i = 0; i < 4; i++)
        if (strcmp(level, level_names[i]) == 0)
            l->level = (log_level)i;
    l->out = out;
}

void log_begin(log_line *ln, const srv_log *l, log_level lv, const char *msg)
{
    memset(ln, 0, sizeof *ln);
    ln->log = l;
    ln->on = lv >= l->level;
    if (!ln->on)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (l->json) {
        api_buf_printf(&ln->b, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"msg\":", ts,
                       (int)(tv.tv_usec / 1000), level_names[lv]);
        api_buf_json_string(&ln->b, msg, strlen(msg));
    } else {
        api_buf_printf(&ln->b, "%s.%03dZ %s %s", ts, (int)(tv.tv_usec / 1000), level_names[lv],
                       msg);
    }
}

static void put_key(log_line *ln, const char *key)
{
    if (ln->log->json) {
        api_buf_puts(&ln->b, ",");
        api_buf_json_string(&ln->b, key, strlen(key));
        api_buf_puts(&ln->b, ":");
    } else {
        api_buf_printf(&ln->b, " %s=", key);
    }
}

void log_str(log_line *ln, const char *key, const char *value)
{
    if (!ln->on)
        return;
    put_key(ln, key);
    if (!value)
        value = "";
    /* text: bare when it has no blanks, quotes or '=', else a JSON string */
    bool bare = !ln->log->json && value[0] && !strpbrk(value, " \t\r\n\"=\\");
    if (bare)
        api_buf_puts(&ln->b, value);
    else
        api_buf_json_string(&ln->b, value, strlen(value));
}

void log_int(log_line *ln, const char *key, long long value)
{
    if (!ln->on)
        return;
    put_key(ln, key);
    api_buf_printf(&ln->b, "%lld", value);
}

void log_num(log_line *ln, const char *key, double value)
{
    if (!ln->on)
        return;
    put_key(ln, key);
    api_buf_printf(&ln->b, "%.3f", value);
}

void log_end(log_line *ln)
{
    if (!ln->on)
        return;
    api_buf_puts(&ln->b, ln->log->json ? "}\n" : "\n");
    size_t n;
    char *s = api_buf_finish(&ln->b, &n);
    if (s) {
        fwrite(s, 1, n, ln->log->out);
        fflush(ln->log->out);
    }
    free(s);
}

void log_msg(const srv_log *l, log_level lv, const char *msg, const char *detail)
{
    log_line ln;
    log_begin(&ln, l, lv, msg);
    if (detail)
        log_str(&ln, "detail", detail);
    log_end(&ln);
}
