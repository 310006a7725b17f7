/* fuzz_chat.c - libFuzzer target for /v1/chat/completions: the body parser
 * (api_gen_parse_json) and the server-sent events a streamed answer is
 * made of (api_chat_chunk, api_chat_error_end).
 *
 * The input is the JSON body. A parsed request's prompt and model stand in
 * for generated text and the model's name (both client-controlled, so any
 * valid UTF-8): they are written as a role chunk, the whole prompt as one
 * content chunk, the prompt cut at an arbitrary byte into two chunks (as a
 * stream may cut it), a finish chunk and [DONE]; a refused body's error is
 * written as the end of a cut-short stream. Every event must be one line
 * of valid JSON in its shape; the whole prompt must read back byte for
 * byte, and a cut at a character boundary must give both halves back.
 * Every refusal must carry a 4xx status (or 503 out_of_memory), a
 * code and a message naming its param. A broken invariant aborts, which
 * libFuzzer reports as a crash; ASan/UBSan and LeakSanitizer watch the
 * rest. Built only with -DPRISM_FUZZ=ON and clang; see docs/fuzzing.md.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_buf.h"
#include "api_codec.h"
#include "api_gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_chat: invariant failed: %s (%s:%d)\n", #cond,        \
                    __FILE__, __LINE__);                                               \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#define CREATED 1767225600LL

/* The JSON of the event at *p ("data: <one line>\n\n"); *p moves past it.
 * NULL for the closing "data: [DONE]". */
static json_t *next_event(const char **p, const char *end)
{
    CHECK(end - *p >= 8 && memcmp(*p, "data: ", 6) == 0);
    const char *d = *p + 6;
    const char *nl = memchr(d, '\n', (size_t)(end - d));
    CHECK(nl && nl + 1 < end && nl[1] == '\n');
    CHECK(!memchr(d, '\r', (size_t)(nl - d)));
    *p = nl + 2;
    if (nl - d == 6 && memcmp(d, "[DONE]", 6) == 0)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(d, (size_t)(nl - d), 0, &jerr);
    CHECK(j != NULL && json_is_object(j));
    return j;
}

/* A chunk's shape; returns its delta's content (NULL when absent),
 * owned by j. */
static json_t *check_chunk(json_t *j, const char *id, const char *model, const char *role,
                           const char *finish)
{
    const char *jid = json_string_value(json_object_get(j, "id"));
    CHECK(jid && strncmp(jid, "chatcmpl-", 9) == 0 && strcmp(jid + 9, id) == 0);
    CHECK(json_string_value(json_object_get(j, "object")) &&
          strcmp(json_string_value(json_object_get(j, "object")), "chat.completion.chunk") == 0);
    CHECK(json_integer_value(json_object_get(j, "created")) == CREATED);
    const char *jm = json_string_value(json_object_get(j, "model"));
    CHECK(jm && strcmp(jm, model) == 0);
    json_t *choices = json_object_get(j, "choices");
    CHECK(json_array_size(choices) == 1);
    json_t *c = json_array_get(choices, 0);
    json_t *delta = json_object_get(c, "delta");
    CHECK(json_is_object(delta));
    const char *jr = json_string_value(json_object_get(delta, "role"));
    CHECK(role ? jr && strcmp(jr, role) == 0 : json_object_get(delta, "role") == NULL);
    json_t *f = json_object_get(c, "finish_reason");
    CHECK(finish ? json_string_value(f) && strcmp(json_string_value(f), finish) == 0
                 : json_is_null(f));
    return json_object_get(delta, "content");
}

/* True when s[0..n) is content's text exactly. */
static bool content_is(json_t *content, const char *s, size_t n)
{
    return json_is_string(content) && json_string_length(content) == n &&
           memcmp(json_string_value(content), s, n) == 0;
}

/* True when byte k of s starts a character (or is its end). */
static bool char_boundary(const char *s, size_t n, size_t k)
{
    return k == n || ((unsigned char)s[k] & 0xC0) != 0x80;
}

static void stream_events(const api_gen_request *r)
{
    const char *id = r->model ? r->model : "fuzz-1";
    const char *model = r->model ? r->model : "pali3";
    const char *text = r->prompt;
    const size_t n = strlen(text);
    const size_t cut = n ? (size_t)((unsigned char)text[0] * 131u + n) % (n + 1) : 0;
    char *head = malloc(cut + 1);
    CHECK(head != NULL);
    memcpy(head, text, cut);
    head[cut] = '\0';

    api_buf b = {0};
    api_chat_chunk(&b, id, model, CREATED, "assistant", NULL, NULL);
    api_chat_chunk(&b, id, model, CREATED, NULL, text, NULL);
    api_chat_chunk(&b, id, model, CREATED, NULL, head, NULL);
    api_chat_chunk(&b, id, model, CREATED, NULL, text + cut, NULL);
    api_chat_chunk(&b, id, model, CREATED, NULL, NULL, r->stream ? "stop" : "length");
    api_buf_puts(&b, API_SSE_DONE);
    size_t len = 0;
    char *s = api_buf_finish(&b, &len);
    CHECK(s != NULL && strlen(s) == len);
    const char *p = s, *end = s + len;

    json_t *j = next_event(&p, end);
    CHECK(j && check_chunk(j, id, model, "assistant", NULL) == NULL);
    json_decref(j);
    j = next_event(&p, end);
    CHECK(j && content_is(check_chunk(j, id, model, NULL, NULL), text, n));
    json_decref(j);
    const bool whole = char_boundary(text, n, cut);
    j = next_event(&p, end);
    json_t *c = j ? check_chunk(j, id, model, NULL, NULL) : NULL;
    CHECK(json_is_string(c) && (!whole || content_is(c, text, cut)));
    json_decref(j);
    j = next_event(&p, end);
    c = j ? check_chunk(j, id, model, NULL, NULL) : NULL;
    CHECK(json_is_string(c) && (!whole || content_is(c, text + cut, n - cut)));
    json_decref(j);
    j = next_event(&p, end);
    CHECK(j && check_chunk(j, id, model, NULL, r->stream ? "stop" : "length") == NULL);
    json_decref(j);
    CHECK(next_event(&p, end) == NULL && p == end);
    free(s);
    free(head);
}

static void check_refusal(const api_error *e)
{
    CHECK((e->status >= 400 && e->status < 500) || e->id == API_ERR_OUT_OF_MEMORY);
    CHECK(e->code[0] != '\0' && e->message[0] != '\0');
    if (e->id != API_ERR_OUT_OF_MEMORY && e->param[0])
        CHECK(strstr(e->message, e->param) != NULL); /* the message names the field */
    api_buf b = {0};
    api_chat_error_end(&b, e);
    size_t len = 0;
    char *s = api_buf_finish(&b, &len);
    CHECK(s != NULL);
    const char *p = s, *end = s + len;
    json_t *j = next_event(&p, end);
    CHECK(j && json_object_size(j) == 1);
    json_t *err = json_object_get(j, "error");
    CHECK(json_is_object(err) && json_object_size(err) == 4);
    const char *code = json_string_value(json_object_get(err, "code"));
    CHECK(code && strcmp(code, e->code) == 0);
    CHECK(json_is_string(json_object_get(err, "type")) &&
          json_is_string(json_object_get(err, "message")));
    json_t *param = json_object_get(err, "param");
    CHECK(e->param[0] ? json_is_string(param) : json_is_null(param));
    json_decref(j);
    CHECK(next_event(&p, end) == NULL && p == end);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_gen_request r;
    api_error e;
    if (api_gen_parse_json(&r, API_GEN_CHAT, (const char *)data, size, &e) == 0) {
        CHECK(r.image != NULL && r.prompt && r.prompt[0]);
        CHECK(api_utf8_valid(r.prompt, strlen(r.prompt)));
        stream_events(&r);
        api_gen_request_free(&r);
    } else {
        check_refusal(&e);
    }
    return 0;
}
