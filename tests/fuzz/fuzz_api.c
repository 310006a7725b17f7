/* fuzz_api.c - libFuzzer target for what an HTTP client controls: request
 * bodies as the API parses them (api/), and the engine's JSON reader
 * (config files, safetensors headers).
 *
 * The first input byte picks what the rest is (mod 12):
 *   0-3  a JSON body for /v1/embed, /v1/score, /v1/classify, /v1/embeddings
 *        (api_request_parse_json);
 *   4    a multipart/form-data body: its first line is the Content-Type
 *        value (boundary and all), the rest the body; parsed as a form
 *        (api_multipart_parse) and as an embed, score and classify request;
 *   5    an image value: a data URL or bare base64 (api_image_decode);
 *   6    JSON for the engine's reader (json_parse), walked when it parses;
 *   7    UTF-8 validation against a reference decoder;
 *   8-10 a JSON body for /v1/caption, /v1/vqa, /v1/chat/completions
 *        (api_gen_parse_json);
 *   11   a Content-Type line and a multipart body for /v1/caption and
 *        /v1/vqa (api_gen_parse_multipart).
 * Every accepted request must respect the limits and hold valid UTF-8
 * texts; every refusal must carry a 4xx status (or 503 out_of_memory)
 * and a message. A broken invariant aborts, which libFuzzer reports
 * as a crash; ASan/UBSan and LeakSanitizer watch the rest.
 * Built only with -DPRISM_FUZZ=ON and clang; see docs/fuzzing.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"
#include "api_gen.h"
#include "api_multipart.h"
#include "api_request.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_api: invariant failed: %s (%s:%d)\n", #cond,         \
                    __FILE__, __LINE__);                                               \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static const api_limits LIMITS = {.max_items = 16, .embed_dim = 32};

static void check_refusal(const api_error *e)
{
    CHECK((e->status >= 400 && e->status < 500) || e->id == API_ERR_OUT_OF_MEMORY);
    CHECK(e->message[0] != '\0');
    CHECK(e->code[0] != '\0');
}

static void check_request(const api_request *r, api_op op)
{
    CHECK(r->op == op);
    CHECK(r->n_images >= 0 && r->n_texts >= 0);
    CHECK(r->n_images + r->n_texts <= LIMITS.max_items);
    for (int i = 0; i < r->n_images; i++)
        CHECK(r->images[i] != NULL);
    for (int i = 0; i < r->n_texts; i++) {
        CHECK(r->texts[i] != NULL);
        CHECK(api_utf8_valid(r->texts[i], strlen(r->texts[i])));
        if (op == API_OP_CLASSIFY)
            CHECK(r->labels && r->labels[i] && api_utf8_valid(r->labels[i], strlen(r->labels[i])));
    }
    CHECK(r->dimensions >= 0 && r->dimensions <= LIMITS.embed_dim);
    if (op == API_OP_EMBEDDINGS) {
        CHECK(r->n_inputs == r->n_images + r->n_texts);
        for (int i = 0; i < r->n_inputs; i++)
            CHECK(r->inputs[i].index >= 0 &&
                  r->inputs[i].index < (r->inputs[i].is_image ? r->n_images : r->n_texts));
    }
}

static void fuzz_json_request(api_op op, const char *body, size_t len)
{
    api_request r;
    api_error e;
    memset(&r, 0, sizeof r);
    if (api_request_parse_json(&r, op, body, len, &LIMITS, &e) == 0)
        check_request(&r, op);
    else
        check_refusal(&e);
    api_request_free(&r);
}

static void fuzz_multipart(const char *in, size_t len)
{
    const char *nl = memchr(in, '\n', len < 300 ? len : 300);
    if (!nl)
        return;
    char ct[301];
    memcpy(ct, in, (size_t)(nl - in));
    ct[nl - in] = '\0';
    const char *body = nl + 1;
    const size_t blen = len - (size_t)(nl + 1 - in);

    api_form form = {0};
    char msg[256];
    if (api_multipart_parse(&form, ct, body, blen, msg, sizeof msg) == 0) {
        CHECK(form.n_parts >= 0 && form.n_parts <= API_MULTIPART_MAX_PARTS);
        for (int i = 0; i < form.n_parts; i++) {
            const api_part *p = &form.parts[i];
            CHECK(p->data >= body && p->data + p->len <= body + blen); /* inside the body */
            CHECK(memchr(p->name, '\0', sizeof p->name) != NULL);
        }
    } else {
        CHECK(msg[0] != '\0');
    }
    api_form_free(&form);

    const api_op ops[] = {API_OP_EMBED, API_OP_SCORE, API_OP_CLASSIFY};
    for (int k = 0; k < 3; k++) {
        api_request r;
        api_error e;
        memset(&r, 0, sizeof r);
        if (api_request_parse_multipart(&r, ops[k], ct, body, blen, &LIMITS, &e) == 0)
            check_request(&r, ops[k]);
        else
            check_refusal(&e);
        api_request_free(&r);
    }
}

static void fuzz_image_value(const char *s, size_t len)
{
    uint8_t *out = NULL;
    size_t n = 0;
    api_error e;
    if (api_image_decode(s, len, "image", &out, &n, &e) == 0) {
        CHECK(out != NULL && n > 0 && n <= len); /* base64 only ever shrinks */
        free(out);
    } else {
        check_refusal(&e);
    }
    bool oom = false;
    uint8_t *raw = api_base64_decode(s, len, &n, &oom);
    if (raw)
        CHECK(n <= len / 4 * 3 + 3);
    free(raw);
}

static size_t walk(const json_value *v, int depth)
{
    CHECK(depth <= JSON_MAX_DEPTH + 1);
    size_t nodes = 1;
    switch (v->type) {
    case JSON_STRING:
        CHECK(v->string != NULL && v->string[v->length] == '\0');
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->count; i++)
            nodes += walk(&v->items[i], depth + 1);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->count; i++) {
            CHECK(v->keys[i] != NULL);
            CHECK(json_get(v, v->keys[i]) != NULL);
            nodes += walk(&v->items[i], depth + 1);
        }
        break;
    case JSON_NUMBER:
        /* both are the nearest double to the same decimal integer */
        if (v->is_integer)
            CHECK((double)v->integer == v->number);
        break;
    default:
        break;
    }
    return nodes;
}

static void fuzz_engine_json(const char *s, size_t len)
{
    char err[256];
    json_value *v = json_parse(s, len, err, sizeof err);
    if (v) {
        walk(v, 0);
        json_free(v);
    } else {
        CHECK(err[0] != '\0');
    }
}

static void check_gen(const api_gen_request *r, api_gen_op op)
{
    CHECK(r->image != NULL);
    if (op == API_GEN_VQA)
        CHECK(r->question && r->question[0] && api_utf8_valid(r->question, strlen(r->question)));
    if (op == API_GEN_CHAT)
        CHECK(r->prompt && r->prompt[0]);
    if (r->lang)
        CHECK(api_utf8_valid(r->lang, strlen(r->lang)));
}

static void fuzz_gen(api_gen_op op, bool multipart, const char *in, size_t len)
{
    const char *ct = NULL, *body = in;
    char ctbuf[301];
    if (multipart) {
        const char *nl = memchr(in, '\n', len < 300 ? len : 300);
        if (!nl)
            return;
        memcpy(ctbuf, in, (size_t)(nl - in));
        ctbuf[nl - in] = '\0';
        ct = ctbuf;
        body = nl + 1;
        len -= (size_t)(nl + 1 - in);
    }
    api_gen_request r;
    api_error e;
    const int rc = multipart ? api_gen_parse_multipart(&r, op, ct, body, len, &e)
                             : api_gen_parse_json(&r, op, body, len, &e);
    if (rc == 0) {
        check_gen(&r, op);
        api_gen_request_free(&r);
    } else {
        check_refusal(&e);
    }
}

/* The reference: a byte-by-byte UTF-8 decoder (RFC 3629). */
static bool utf8_reference(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        uint32_t cp;
        int extra;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F, extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F, extra = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07, extra = 3;
        } else {
            return false;
        }
        if (i + (size_t)extra >= n)
            return false;
        for (int k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (size_t)extra + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    const size_t len = size - 1;
    switch (data[0] % 12) {
    case 0:
    case 1:
    case 2:
    case 3:
        fuzz_json_request((api_op)(data[0] % 4), in, len);
        break;
    case 4:
        fuzz_multipart(in, len);
        break;
    case 5:
        fuzz_image_value(in, len);
        break;
    case 6:
        fuzz_engine_json(in, len);
        break;
    case 7:
        CHECK(api_utf8_valid(in, len) == utf8_reference(data + 1, len));
        break;
    case 8:
    case 9:
    case 10:
        fuzz_gen((api_gen_op)(data[0] % 12 - 8), false, in, len);
        break;
    default:
        fuzz_gen(data[0] % 24 < 12 ? API_GEN_CAPTION : API_GEN_VQA, true, in, len);
        break;
    }
    return 0;
}
