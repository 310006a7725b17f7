/* api_error.c - the API's error values and their JSON (see api_error.h). */
#include "api_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api_buf.h"

static const struct {
    const char *name;
    int status;
} code_rows[API_ERR_COUNT] = {
#define API_ERROR_CODE_ROW(id, name, status) [API_ERR_##id] = {name, status},
    API_ERROR_CODES(API_ERROR_CODE_ROW)
#undef API_ERROR_CODE_ROW
};

const char *api_code_name(api_code c)
{
    return (unsigned)c < API_ERR_COUNT ? code_rows[c].name : "internal_error";
}

int api_code_status(api_code c)
{
    return (unsigned)c < API_ERR_COUNT ? code_rows[c].status : 500;
}

int api_errorf(api_error *e, api_code code, const char *param, const char *fmt, ...)
{
    if (!e)
        return -1;
    if ((unsigned)code >= API_ERR_COUNT)
        code = API_ERR_INTERNAL_ERROR;
    e->id = code;
    e->status = code_rows[code].status;
    snprintf(e->code, sizeof e->code, "%s", code_rows[code].name);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

const char *api_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 503:
        return "overloaded_error";
    case 504:
        return "timeout_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

void api_error_put(api_buf *b, const api_error *e)
{
    api_buf_puts(b, "{\"error\":{\"type\":\"");
    api_buf_puts(b, api_error_type(e->status));
    api_buf_puts(b, "\",\"code\":");
    api_buf_json_string(b, e->code, strlen(e->code));
    api_buf_puts(b, ",\"message\":");
    api_buf_json_string(b, e->message, strlen(e->message));
    api_buf_puts(b, ",\"param\":");
    if (e->param[0])
        api_buf_json_string(b, e->param, strlen(e->param));
    else
        api_buf_puts(b, "null");
    api_buf_puts(b, "}}");
}

char *api_error_json(const api_error *e)
{
    api_buf b = {0};
    api_error_put(&b, e);
    api_buf_puts(&b, "\n");
    return api_buf_finish(&b, NULL);
}
