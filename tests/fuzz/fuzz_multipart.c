/* fuzz_multipart.c - libFuzzer target for the multipart/form-data request
 * parsers: api_multipart_parse, api_request_parse_multipart for every op
 * (/v1/embed, /v1/score, /v1/classify; /v1/embeddings refuses forms) and
 * api_gen_parse_multipart for /v1/caption and /v1/vqa (/v1/chat/completions
 * refuses forms).
 *
 * The input's first bytes make the Content-Type, so the fuzzer only has to
 * find the boundary in the body, not learn to spell a header:
 *   byte 0, bits 0-2  boundary length, 1 to 8;
 *           bit 3     the boundary quoted (boundary="...");
 *           bit 4     a charset parameter before the boundary;
 *           bits 5-6  the limits (see LIMITS: the server's defaults, or
 *                     small template, text and prompt-total limits);
 *           bit 7     the media type in capitals;
 *   bytes 1..n        the boundary; a byte outside RFC 2046's boundary
 *                     characters becomes a letter;
 *   the rest          the body.
 * Every accepted request must respect the limits (items, text and prompt
 * sizes), hold valid UTF-8 texts and prompts that contain their label;
 * every refusal must carry a 4xx status (or 503 out_of_memory), a
 * code, a message naming its param, and serialise to valid JSON. A broken
 * invariant aborts, which libFuzzer reports as a crash; ASan/UBSan and
 * LeakSanitizer watch the rest. Built only with -DPRISM_FUZZ=ON and clang;
 * see docs/fuzzing.md.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"
#include "api_gen.h"
#include "api_multipart.h"
#include "api_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_multipart: invariant failed: %s (%s:%d)\n", #cond,   \
                    __FILE__, __LINE__);                                               \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* 0: what the server passes by default (max_template_bytes 0 = 1024);
 * 1-3: limits small enough for short inputs to cross them. */
static const api_limits LIMITS[4] = {
    {.max_items = 16, .embed_dim = 32, .max_expanded_bytes = 65536},
    {.max_items = 16, .embed_dim = 32, .max_template_bytes = 16, .max_text_bytes = 24,
     .max_expanded_bytes = 64},
    {.max_items = 8, .embed_dim = 4, .max_text_bytes = 8},
    {.max_items = 16, .embed_dim = 32, .max_template_bytes = 8, .max_expanded_bytes = 40},
};

/* RFC 2046's bchars (without the space, which may not end a boundary) */
static const char BCHARS[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";

static void check_refusal(const api_error *e)
{
    CHECK((e->status >= 400 && e->status < 500) || e->id == API_ERR_OUT_OF_MEMORY);
    CHECK(e->code[0] != '\0' && e->message[0] != '\0');
    if (e->id != API_ERR_OUT_OF_MEMORY && e->param[0])
        CHECK(strstr(e->message, e->param) != NULL); /* the message names the field */
    char *doc = api_error_json(e);
    CHECK(doc != NULL);
    json_error_t jerr;
    json_t *j = json_loads(doc, 0, &jerr);
    CHECK(j != NULL);
    json_t *err = json_object_get(j, "error");
    CHECK(json_is_object(err) && json_object_size(err) == 4);
    CHECK(json_string_value(json_object_get(err, "code")) &&
          strcmp(json_string_value(json_object_get(err, "code")), e->code) == 0);
    json_decref(j);
    free(doc);
}

static void check_request(const api_request *r, api_op op, const api_limits *lim)
{
    CHECK(r->op == op && r->n_images >= 0 && r->n_texts >= 0);
    CHECK(r->n_images + r->n_texts <= lim->max_items);
    CHECK(r->n_images + r->n_texts > 0);
    for (int i = 0; i < r->n_images; i++)
        CHECK(r->images[i] != NULL && r->image_lens[i] > 0);
    size_t total = 0;
    for (int i = 0; i < r->n_texts; i++) {
        const size_t n = strlen(r->texts[i]);
        CHECK(api_utf8_valid(r->texts[i], n));
        if (lim->max_text_bytes)
            CHECK(n <= lim->max_text_bytes);
        total += n;
        if (op == API_OP_CLASSIFY) {
            CHECK(r->labels && r->labels[i]);
            CHECK(api_utf8_valid(r->labels[i], strlen(r->labels[i])));
            CHECK(strstr(r->texts[i], r->labels[i]) != NULL); /* every template has a {} */
        }
    }
    if (op == API_OP_CLASSIFY) {
        CHECK(r->n_images == 1 && r->n_texts > 0);
        if (lim->max_expanded_bytes)
            CHECK(total <= lim->max_expanded_bytes);
    }
    if (op == API_OP_SCORE)
        CHECK(r->n_images > 0 && r->n_texts > 0);
    CHECK(r->dimensions >= 0 && r->dimensions <= lim->embed_dim);
}

static void check_gen(const api_gen_request *r, api_gen_op op)
{
    CHECK(r->image != NULL);
    if (op == API_GEN_VQA)
        CHECK(r->question && r->question[0] && api_utf8_valid(r->question, strlen(r->question)));
    if (r->lang)
        CHECK(api_utf8_valid(r->lang, strlen(r->lang)));
}

static void fuzz_form(const char *ct, const char *body, size_t len)
{
    api_form form;
    char msg[256];
    if (api_multipart_parse(&form, ct, body, len, msg, sizeof msg) == 0) {
        CHECK(form.n_parts >= 0 && form.n_parts <= API_MULTIPART_MAX_PARTS);
        for (int i = 0; i < form.n_parts; i++) {
            const api_part *p = &form.parts[i];
            CHECK(p->data >= body && p->data + p->len <= body + len); /* inside the body */
            CHECK(p->name[0] != '\0' && memchr(p->name, '\0', sizeof p->name));
            CHECK(memchr(p->filename, '\0', sizeof p->filename));
            CHECK(memchr(p->content_type, '\0', sizeof p->content_type));
        }
        api_form_free(&form);
    } else {
        CHECK(msg[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t cfg = data[0];
    size_t bn = 1 + (cfg & 7);
    if (bn > size - 1)
        bn = size - 1;
    char boundary[9];
    for (size_t i = 0; i < bn; i++) {
        const char c = (char)data[1 + i];
        boundary[i] = c && strchr(BCHARS, c) ? c : (char)('a' + data[1 + i] % 26);
    }
    boundary[bn] = '\0';
    char ct[96];
    snprintf(ct, sizeof ct, "%s;%s boundary=%s%s%s",
             cfg & 0x80 ? "MULTIPART/FORM-DATA" : "multipart/form-data",
             cfg & 0x10 ? " charset=utf-8;" : "", cfg & 8 ? "\"" : "", boundary,
             cfg & 8 ? "\"" : "");
    CHECK(api_is_multipart(ct));
    const api_limits *lim = &LIMITS[(cfg >> 5) & 3];
    const char *body = (const char *)data + 1 + bn;
    const size_t len = size - 1 - bn;

    fuzz_form(ct, body, len);

    const api_op ops[] = {API_OP_EMBED, API_OP_SCORE, API_OP_CLASSIFY, API_OP_EMBEDDINGS};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        api_request r;
        api_error e;
        if (api_request_parse_multipart(&r, ops[k], ct, body, len, lim, &e) == 0) {
            CHECK(ops[k] != API_OP_EMBEDDINGS);
            check_request(&r, ops[k], lim);
            api_request_free(&r);
        } else {
            check_refusal(&e);
        }
    }
    const api_gen_op gops[] = {API_GEN_CAPTION, API_GEN_VQA, API_GEN_CHAT};
    for (size_t k = 0; k < sizeof gops / sizeof gops[0]; k++) {
        api_gen_request g;
        api_error e;
        if (api_gen_parse_multipart(&g, gops[k], ct, body, len, &e) == 0) {
            CHECK(gops[k] != API_GEN_CHAT);
            check_gen(&g, gops[k]);
            api_gen_request_free(&g);
        } else {
            check_refusal(&e);
        }
    }
    return 0;
}
