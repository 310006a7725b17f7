/* api_gen.c - generation request bodies to api_gen_request (api_gen.h).
 * Every error names its field. */
#include "api_gen.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"
#include "api_multipart.h"
#include "api_request.h"

static int oom(api_error *e)
{
    return api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
}

/* A NUL-terminated copy of s[0..n) into *dst (replacing what was there). */
static int set_copy(char **dst, const char *s, size_t n, api_error *e)
{
    char *c = malloc(n + 1);
    if (!c)
        return oom(e);
    memcpy(c, s, n);
    c[n] = '\0';
    free(*dst);
    *dst = c;
    return 0;
}

/* The integer at key, when present and not null (*has tells). */
static int get_int(json_t *o, const char *key, long long *out, bool *has, api_error *e)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, key, "%s must be an integer", key);
    *out = (long long)json_integer_value(v);
    *has = true;
    return 0;
}

/* The string at key, when present and not null, copied into *dst. */
static int get_str(json_t *o, const char *key, char **dst, size_t *len, api_error *e)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, key, "%s must be a string", key);
    if (len)
        *len = json_string_length(v);
    return set_copy(dst, json_string_value(v), json_string_length(v), e);
}

/* OpenAI chat: the last message's content: a string, or parts of which one
 * "text" and one "image_url" (a data URL) are read. */
static int parse_chat(api_gen_request *r, json_t *root, api_error *e)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs || json_is_null(msgs))
        return api_errorf(e, API_ERR_MISSING_FIELD, "messages", "messages is required");
    if (!json_is_array(msgs))
        return api_errorf(e, API_ERR_INVALID_TYPE, "messages", "messages must be an array");
    if (json_array_size(msgs) == 0)
        return api_errorf(e, API_ERR_MISSING_FIELD, "messages", "messages must not be empty");
    json_t *st = json_object_get(root, "stream");
    if (st && !json_is_null(st) && !json_is_boolean(st))
        return api_errorf(e, API_ERR_INVALID_TYPE, "stream", "stream must be a boolean");
    r->stream = json_is_true(st);
    if (get_int(root, "max_tokens", &r->max_new_tokens, &r->has_max_new_tokens, e) ||
        get_int(root, "max_completion_tokens", &r->max_new_tokens, &r->has_max_new_tokens, e) ||
        get_int(root, "max_new_tokens", &r->max_new_tokens, &r->has_max_new_tokens, e) ||
        get_int(root, "num_beams", &r->num_beams, &r->has_num_beams, e))
        return -1;
    const size_t last = json_array_size(msgs) - 1;
    json_t *m = json_array_get(msgs, last);
    char param[64];
    snprintf(param, sizeof param, "messages[%zu]", last);
    if (!json_is_object(m))
        return api_errorf(e, API_ERR_INVALID_TYPE, param, "%s must be an object", param);
    json_t *content = json_object_get(m, "content");
    snprintf(param, sizeof param, "messages[%zu].content", last);
    if (json_is_string(content)) {
        if (set_copy(&r->prompt, json_string_value(content), json_string_length(content), e))
            return -1;
    } else if (json_is_array(content)) {
        size_t i;
        json_t *p;
        json_array_foreach(content, i, p) {
            const char *type = json_string_value(json_object_get(p, "type"));
            if (!type)
                continue;
            if (strcmp(type, "text") == 0) {
                json_t *t = json_object_get(p, "text");
                if (json_is_string(t) &&
                    set_copy(&r->prompt, json_string_value(t), json_string_length(t), e))
                    return -1;
            } else if (strcmp(type, "image_url") == 0) {
                json_t *u = json_object_get(p, "image_url");
                if (json_is_object(u))
                    u = json_object_get(u, "url");
                if (json_is_string(u)) {
                    r->image_len = json_string_length(u);
                    if (set_copy(&r->image, json_string_value(u), r->image_len, e))
                        return -1;
                }
            }
        }
    } else if (!content || json_is_null(content)) {
        return api_errorf(e, API_ERR_MISSING_FIELD, param,
                          "%s is required (a string or an array of parts)", param);
    } else {
        return api_errorf(e, API_ERR_INVALID_TYPE, param,
                          "%s must be a string or an array of parts", param);
    }
    if (!r->image)
        return api_errorf(e, API_ERR_MISSING_FIELD, "image_url",
                          "the last message needs an image_url part (a data URL)");
    if (!r->prompt || !r->prompt[0])
        return api_errorf(e, API_ERR_MISSING_FIELD, "text",
                          "the last message needs a text part: the prompt, e.g. \"caption en\"");
    return 0;
}

/* One detection label appended to r->labels (" ; " between labels). */
static int add_label(api_gen_request *r, const char *s, size_t n, api_error *e)
{
    if (r->n_labels == API_DETECT_MAX_LABELS)
        return api_errorf(e, API_ERR_TOO_MANY_ITEMS, "labels", "labels: at most %d labels",
                          API_DETECT_MAX_LABELS);
    if (n == 0)
        return api_errorf(e, API_ERR_INVALID_VALUE, "labels", "labels: label %d is empty",
                          r->n_labels);
    if (n > API_DETECT_LABEL_MAX)
        return api_errorf(e, API_ERR_INVALID_VALUE, "labels",
                          "labels: label %d is longer than %d bytes", r->n_labels,
                          API_DETECT_LABEL_MAX);
    if (!api_utf8_valid(s, n))
        return api_errorf(e, API_ERR_INVALID_UTF8, "labels", "labels: label %d is not valid UTF-8",
                          r->n_labels);
    for (size_t i = 0; i < n; i++)
        if (s[i] == ';' || s[i] == '<' || s[i] == '\n' || s[i] == '\r' || s[i] == '\0')
            return api_errorf(e, API_ERR_INVALID_VALUE, "labels",
                              "labels: label %d holds '%s', which the model's output uses "
                              "between objects", r->n_labels,
                              s[i] == ';' ? ";" : s[i] == '<' ? "<" : s[i] ? "a line break"
                                                                           : "NUL");
    const size_t old = r->labels ? strlen(r->labels) : 0;
    char *j = realloc(r->labels, old + (old ? 3 : 0) + n + 1);
    if (!j)
        return oom(e);
    if (old)
        memcpy(j + old, " ; ", 3);
    memcpy(j + old + (old ? 3 : 0), s, n);
    j[old + (old ? 3 : 0) + n] = '\0';
    r->labels = j;
    r->n_labels++;
    return 0;
}

/* detect's labels: an array of strings. */
static int get_labels(api_gen_request *r, json_t *root, api_error *e)
{
    json_t *v = json_object_get(root, "labels");
    if (!v || json_is_null(v))
        return 0; /* check_fields says it is required */
    if (!json_is_array(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, "labels",
                          "labels must be an array of strings, e.g. [\"cat\", \"dog\"]");
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s))
            return api_errorf(e, API_ERR_INVALID_TYPE, "labels",
                              "labels: item %zu is not a string", i);
        if (add_label(r, json_string_value(s), json_string_length(s), e))
            return -1;
    }
    return 0;
}

/* caption's detail from its text. */
static int set_detail(api_gen_request *r, const char *s, size_t n, api_error *e)
{
    static const char *const names[] = {"brief", "detailed", "more_detailed"};
    for (int i = 0; i < 3; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) {
            r->detail = (api_caption_detail)i;
            r->has_detail = true;
            return 0;
        }
    return api_errorf(e, API_ERR_INVALID_VALUE, "detail",
                      "detail must be \"brief\", \"detailed\" or \"more_detailed\"");
}

static int get_detail(api_gen_request *r, json_t *root, api_error *e)
{
    json_t *v = json_object_get(root, "detail");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, "detail", "detail must be a string");
    return set_detail(r, json_string_value(v), json_string_length(v), e);
}

static int get_regions(api_gen_request *r, json_t *root, api_error *e)
{
    json_t *v = json_object_get(root, "regions");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, "regions", "regions must be a boolean");
    r->regions = json_is_true(v);
    return 0;
}

/* What every op requires once the fields are read. */
static int check_fields(api_gen_request *r, api_gen_op op, size_t question_len, api_error *e)
{
    if (op == API_GEN_CHAT)
        return 0; /* parse_chat checked its own */
    if (!r->image)
        return api_errorf(e, API_ERR_MISSING_FIELD, "image", "image is required");
    if (op == API_GEN_VQA && (!r->question || !question_len))
        return api_errorf(e, API_ERR_MISSING_FIELD, "question", "question is required");
    if (r->question && !api_utf8_valid(r->question, question_len))
        return api_errorf(e, API_ERR_INVALID_UTF8, "question", "question must be valid UTF-8");
    if (r->question && memchr(r->question, 0, question_len))
        return api_errorf(e, API_ERR_INVALID_VALUE, "question", "question must not contain NUL");
    if (r->lang && !api_utf8_valid(r->lang, strlen(r->lang)))
        return api_errorf(e, API_ERR_INVALID_UTF8, "lang", "lang must be valid UTF-8");
    return 0;
}

int api_gen_parse_json(api_gen_request *r, api_gen_op op, const char *body, size_t len,
                       api_error *e)
{
    memset(r, 0, sizeof *r);
    json_t *root = api_json_load_object(body, len, e);
    if (!root)
        return -1;
    size_t qlen = 0;
    int rc;
    if (get_str(root, "model", &r->model, NULL, e))
        rc = -1;
    else if (op == API_GEN_CHAT)
        rc = parse_chat(r, root, e);
    else
        rc = get_str(root, "image", &r->image, &r->image_len, e) ||
                     get_str(root, "question", &r->question, &qlen, e) ||
                     get_str(root, "lang", &r->lang, NULL, e) ||
                     get_int(root, "max_new_tokens", &r->max_new_tokens,
                             &r->has_max_new_tokens, e) ||
                     get_int(root, "num_beams", &r->num_beams, &r->has_num_beams, e) ||
                     (op == API_GEN_DETECT && get_labels(r, root, e)) ||
                     (op == API_GEN_CAPTION && get_detail(r, root, e)) ||
                     (op == API_GEN_OCR && get_regions(r, root, e))
                 ? -1
                 : 0;
    json_decref(root);
    if (rc == 0)
        rc = check_fields(r, op, qlen, e);
    if (rc)
        api_gen_request_free(r);
    return rc;
}

/* A form field holding an integer. */
static int form_int(const api_part *p, long long *out, bool *has, api_error *e)
{
    char tmp[32];
    if (p->len == 0 || p->len >= sizeof tmp)
        return api_errorf(e, API_ERR_INVALID_TYPE, p->name, "%s must be an integer", p->name);
    memcpy(tmp, p->data, p->len);
    tmp[p->len] = '\0';
    char *end;
    long long v = strtoll(tmp, &end, 10);
    if (*end)
        return api_errorf(e, API_ERR_INVALID_TYPE, p->name, "%s must be an integer", p->name);
    *out = v;
    *has = true;
    return 0;
}

int api_gen_parse_multipart(api_gen_request *r, api_gen_op op, const char *content_type,
                            const char *body, size_t len, api_error *e)
{
    memset(r, 0, sizeof *r);
    if (op == API_GEN_CHAT)
        return api_errorf(e, API_ERR_UNSUPPORTED_MEDIA_TYPE, NULL,
                          "/v1/chat/completions takes JSON");
    api_form form = {0};
    char msg[200];
    if (api_multipart_parse(&form, content_type, body, len, msg, sizeof msg))
        return api_errorf(e, API_ERR_INVALID_MULTIPART, NULL, "%s", msg);
    size_t qlen = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < form.n_parts; i++) {
        const api_part *p = &form.parts[i];
        if (strcmp(p->name, "image") == 0) {
            if (r->image) {
                rc = api_errorf(e, API_ERR_INVALID_VALUE, "image", "image: one image per request");
                break;
            }
            r->image_raw = api_part_is_raw_image(p);
            r->image_len = p->len;
            if (r->image_raw && p->len == 0)
                rc = api_errorf(e, API_ERR_EMPTY_IMAGE, "image", "image: the image is empty");
            else
                rc = set_copy(&r->image, p->data, p->len, e);
        } else if (strcmp(p->name, "question") == 0) {
            qlen = p->len;
            rc = set_copy(&r->question, p->data, p->len, e);
        } else if (strcmp(p->name, "lang") == 0) {
            if (memchr(p->data, 0, p->len))
                rc = api_errorf(e, API_ERR_INVALID_VALUE, "lang", "lang must not contain NUL");
            else
                rc = set_copy(&r->lang, p->data, p->len, e);
        } else if (op == API_GEN_DETECT && strcmp(p->name, "label") == 0) {
            rc = add_label(r, p->data, p->len, e);
        } else if (op == API_GEN_CAPTION && strcmp(p->name, "detail") == 0) {
            rc = set_detail(r, p->data, p->len, e);
        } else if (op == API_GEN_OCR && strcmp(p->name, "regions") == 0) {
            if (p->len == 4 && memcmp(p->data, "true", 4) == 0)
                r->regions = true;
            else if (p->len == 5 && memcmp(p->data, "false", 5) == 0)
                r->regions = false;
            else
                rc = api_errorf(e, API_ERR_INVALID_VALUE, "regions",
                                "regions must be \"true\" or \"false\"");
        } else if (strcmp(p->name, "max_new_tokens") == 0) {
            rc = form_int(p, &r->max_new_tokens, &r->has_max_new_tokens, e);
        } else if (strcmp(p->name, "num_beams") == 0) {
            rc = form_int(p, &r->num_beams, &r->has_num_beams, e);
        }
    }
    api_form_free(&form);
    if (rc == 0)
        rc = check_fields(r, op, qlen, e);
    if (rc)
        api_gen_request_free(r);
    return rc;
}

size_t api_stream_settled_len(const char *text, size_t len)
{
    while (len >= 3 && memcmp(text + len - 3, "\xEF\xBF\xBD", 3) == 0)
        len -= 3;
    return len;
}

void api_gen_request_free(api_gen_request *r)
{
    free(r->image);
    free(r->question);
    free(r->lang);
    free(r->prompt);
    free(r->labels);
    free(r->model);
    memset(r, 0, sizeof *r);
}

void api_chat_chunk(api_buf *b, const char *id, const char *model, int64_t created,
                    const char *role, const char *content, const char *finish)
{
    api_buf full = {0}; /* "chatcmpl-<id>", escaped as one string */
    api_buf_puts(&full, "chatcmpl-");
    api_buf_puts(&full, id);
    if (full.oom)
        b->oom = true; /* sticky, as a failed append of b itself would be */
    api_buf_puts(b, "data: {\"id\":");
    api_buf_json_string(b, full.data ? full.data : "", full.len);
    api_buf_free(&full);
    api_buf_printf(b, ",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64 ",\"model\":",
                   created);
    api_buf_json_string(b, model, strlen(model));
    api_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{");
    if (role) {
        api_buf_puts(b, "\"role\":");
        api_buf_json_string(b, role, strlen(role));
    }
    if (content) {
        api_buf_puts(b, role ? ",\"content\":" : "\"content\":");
        api_buf_json_string(b, content, strlen(content));
    }
    api_buf_puts(b, "},\"finish_reason\":");
    if (finish)
        api_buf_json_string(b, finish, strlen(finish));
    else
        api_buf_puts(b, "null");
    api_buf_puts(b, "}]}\n\n");
}

void api_chat_error_end(api_buf *b, const api_error *e)
{
    api_buf_puts(b, "data: ");
    api_error_put(b, e);
    api_buf_puts(b, "\n\n" API_SSE_DONE);
}
