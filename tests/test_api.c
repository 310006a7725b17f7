/* test_api.c - api/ without a server: base64 and data URLs, UTF-8, the
 * multipart parser and the request parsers on valid, malformed and random
 * input (under the ASan build this is a small fuzz run: no crash, no leak,
 * every failure an error with a status). */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_buf.h"
#include "api_codec.h"
#include "api_gen.h"
#include "api_multipart.h"
#include "api_request.h"
#include "api_response.h"

START_TEST(test_base64_round_trip)
{
    uint8_t data[300];
    for (int i = 0; i < 300; i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n < 300; n += 7) {
        size_t len;
        char *s = api_base64_encode(data, n, &len);
        ck_assert_uint_eq(len, (n + 2) / 3 * 4);
        bool oom;
        size_t back;
        uint8_t *d = api_base64_decode(s, len, &back, &oom);
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(back, n);
        ck_assert(memcmp(d, data, n) == 0);
        free(d);
        free(s);
    }
    bool oom;
    size_t n;
    uint8_t *d = api_base64_decode("aGVs\nbG8", 8, &n, &oom); /* whitespace, no padding */
    ck_assert(d && n == 5 && memcmp(d, "hello", 5) == 0);
    free(d);
    ck_assert_ptr_null(api_base64_decode("aGVsb", 5, &n, &oom));  /* 1 leftover digit */
    ck_assert_ptr_null(api_base64_decode("aG=Vs", 5, &n, &oom));  /* data after padding */
    ck_assert_ptr_null(api_base64_decode("a$b=", 4, &n, &oom));
}
END_TEST

START_TEST(test_image_values)
{
    api_error e;
    uint8_t *d;
    size_t n;
    ck_assert_int_eq(api_image_decode("data:image/png;base64,aGVsbG8=", 30, "images[0]", &d, &n, &e), 0);
    ck_assert(n == 5 && memcmp(d, "hello", 5) == 0);
    free(d);
    ck_assert_int_eq(api_image_decode("HTTPS://x/y.png", 15, "image", &d, &n, &e), -1);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.code, "unsupported_image_source");
    ck_assert_str_eq(e.param, "image");
    ck_assert_int_eq(api_image_decode("data:text/plain;base64,aGVsbG8=", 31, "p", &d, &n, &e), -1);
    ck_assert_int_eq(e.status, 415);
    ck_assert_int_eq(api_image_decode("data:image/png,raw", 18, "p", &d, &n, &e), -1);
    ck_assert_str_eq(e.code, "invalid_data_url");
    ck_assert_int_eq(api_image_decode("", 0, "p", &d, &n, &e), -1);
    ck_assert_str_eq(e.code, "empty_image");
}
END_TEST

START_TEST(test_utf8)
{
    ck_assert(api_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    ck_assert(!api_utf8_valid("\xc3", 1));             /* truncated */
    ck_assert(!api_utf8_valid("\xc0\xaf", 2));         /* overlong */
    ck_assert(!api_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    ck_assert(!api_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}
END_TEST

START_TEST(test_multipart)
{
    const char *ct = "multipart/form-data; boundary=\"b-1\"";
    const char body[] = "preamble\r\n--b-1\r\nContent-Disposition: form-data; name=\"image\"; "
                        "filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--x\r\n"
                        "--b-1\r\nContent-Disposition: form-data; name=labels\r\n\r\ncat\r\n"
                        "--b-1--\r\n";
    api_form f;
    char msg[200];
    ck_assert_int_eq(api_multipart_parse(&f, ct, body, sizeof body - 1, msg, sizeof msg), 0);
    ck_assert_int_eq(f.n_parts, 2);
    ck_assert_str_eq(f.parts[0].name, "image");
    ck_assert(f.parts[0].is_file);
    ck_assert_str_eq(f.parts[0].content_type, "image/png");
    ck_assert_uint_eq(f.parts[0].len, 8); /* "PNG\r\n--x": data, not a boundary */
    ck_assert_str_eq(f.parts[1].name, "labels");
    ck_assert(f.parts[1].len == 3 && memcmp(f.parts[1].data, "cat", 3) == 0);
    api_form_free(&f);
    /* truncated: no closing delimiter */
    ck_assert_int_eq(api_multipart_parse(&f, ct, body, 120, msg, sizeof msg), -1);
    ck_assert_int_eq(api_multipart_parse(&f, "multipart/form-data", body, sizeof body - 1, msg,
                                         sizeof msg), -1);
}
END_TEST

START_TEST(test_requests)
{
    api_limits lim = {.max_items = 4, .embed_dim = 8};
    api_request r;
    api_error e;
    const char *ok = "{\"images\":[\"aGVsbG8=\"],\"texts\":[\"a\",\"b\"],\"normalize\":false,"
                     "\"dimensions\":4,\"extra\":1}";
    ck_assert_int_eq(api_request_parse_json(&r, API_OP_EMBED, ok, strlen(ok), &lim, &e), 0);
    ck_assert(r.n_images == 1 && r.n_texts == 2 && !r.normalize && r.dimensions == 4);
    api_request_free(&r);
    const char *cl = "{\"image\":\"aGVsbG8=\",\"labels\":[\"cat\",\"dog\"],\"template\":\"{} and {}\"}";
    ck_assert_int_eq(api_request_parse_json(&r, API_OP_CLASSIFY, cl, strlen(cl), &lim, &e), 0);
    ck_assert_str_eq(r.texts[1], "dog and dog");
    ck_assert_str_eq(r.labels[0], "cat");
    api_request_free(&r);
    const char *oa = "{\"input\":[\"x\",\"data:image/png;base64,aGVsbG8=\"],\"encoding_format\":\"base64\"}";
    ck_assert_int_eq(api_request_parse_json(&r, API_OP_EMBEDDINGS, oa, strlen(oa), &lim, &e), 0);
    ck_assert(r.n_inputs == 2 && !r.inputs[0].is_image && r.inputs[1].is_image && r.base64);
    api_request_free(&r);
    const char *dup = "{\"texts\":[\"a\"],\"texts\":[\"b\"]}";
    ck_assert_int_eq(api_request_parse_json(&r, API_OP_EMBED, dup, strlen(dup), &lim, &e), -1);
    ck_assert_str_eq(e.code, "invalid_json");
    const char *many = "{\"texts\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}";
    ck_assert_int_eq(api_request_parse_json(&r, API_OP_EMBED, many, strlen(many), &lim, &e), -1);
    ck_assert_int_eq(e.status, 413);
    char *json = api_error_json(&e);
    ck_assert(strstr(json, "\"type\":\"invalid_request_error\"") && strstr(json, "\"param\":\"texts\""));
    free(json);
}
END_TEST

/* Generation bodies (api_gen.c): fields, defaults left to the server,
 * required fields named, chat parts, multipart file vs value. */
START_TEST(test_gen_requests)
{
    api_gen_request r;
    api_error e;
    const char *vqa = "{\"image\":\"aGVsbG8=\",\"question\":\"what is it\",\"lang\":\"de\","
                      "\"num_beams\":0,\"model\":\"m\"}";
    ck_assert_int_eq(api_gen_parse_json(&r, API_GEN_VQA, vqa, strlen(vqa), &e), 0);
    ck_assert_str_eq(r.question, "what is it");
    ck_assert_str_eq(r.lang, "de");
    ck_assert_str_eq(r.model, "m");
    ck_assert(!r.image_raw && r.image_len == 8 && memcmp(r.image, "aGVsbG8=", 8) == 0);
    /* given 0 is not absent: the server refuses it rather than defaulting */
    ck_assert(r.has_num_beams && r.num_beams == 0 && !r.has_max_new_tokens);
    api_gen_request_free(&r);

    const struct {
        api_gen_op op;
        const char *body, *code, *param;
    } bad[] = {
        {API_GEN_CAPTION, "{\"lang\":\"en\"}", "missing_field", "image"},
        {API_GEN_VQA, "{\"image\":\"aGVsbG8=\"}", "missing_field", "question"},
        {API_GEN_VQA, "{\"image\":\"aGVsbG8=\",\"question\":\"\"}", "missing_field", "question"},
        /* the codes of the embedding endpoints for the same faults */
        {API_GEN_CAPTION, "{\"image\":\"aGVsbG8=\",\"max_new_tokens\":1.5}", "invalid_type",
         "max_new_tokens"},
        {API_GEN_CAPTION, "{\"image\":7}", "invalid_type", "image"},
        {API_GEN_VQA, "{\"image\":\"aGVsbG8=\",\"question\":\"why\",\"lang\":[\"en\"]}",
         "invalid_type", "lang"},
        {API_GEN_CAPTION, "[1]", "invalid_json", NULL},
        {API_GEN_CAPTION, "", "invalid_json", NULL},
        {API_GEN_CHAT, "{}", "missing_field", "messages"},
        {API_GEN_CHAT, "{\"messages\":{}}", "invalid_type", "messages"},
        {API_GEN_CHAT, "{\"messages\":[]}", "missing_field", "messages"},
        {API_GEN_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", "missing_field",
         "messages[0].content"},
        {API_GEN_CHAT, "{\"messages\":[{\"content\":\"a\"},{\"content\":7}]}", "invalid_type",
         "messages[1].content"},
        {API_GEN_CHAT, "{\"messages\":[\"hi\"]}", "invalid_type", "messages[0]"},
        {API_GEN_CHAT, "{\"stream\":\"yes\",\"messages\":[{\"content\":\"a\"}]}", "invalid_type",
         "stream"},
        {API_GEN_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"caption en\"}]}",
         "missing_field", "image_url"},
        {API_GEN_CHAT, "{\"messages\":[{\"content\":[{\"type\":\"image_url\",\"image_url\":"
                       "{\"url\":\"data:image/png;base64,aGVsbG8=\"}}]}]}", "missing_field", "text"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(api_gen_parse_json(&r, bad[i].op, bad[i].body, strlen(bad[i].body), &e),
                         -1);
        ck_assert_msg(strcmp(e.code, bad[i].code) == 0 && e.status == 400, "%s: %d %s", bad[i].body,
                      e.status, e.code);
        ck_assert_msg(bad[i].param ? strcmp(e.param, bad[i].param) == 0 : e.param[0] == '\0',
                      "%s: param %s", bad[i].body, e.param);
        ck_assert_msg(strstr(e.message, e.param), "%s: the message names %s: %s", bad[i].body,
                      e.param, e.message);
        ck_assert_int_eq(e.status, api_code_status(e.id));
    }

    /* chat: the last message's parts; max_new_tokens wins over max_tokens */
    const char *chat = "{\"stream\":true,\"max_tokens\":5,\"max_new_tokens\":7,\"messages\":["
                       "{\"role\":\"user\",\"content\":\"ignored\"},{\"role\":\"user\",\"content\":["
                       "{\"type\":\"text\",\"text\":\"answer en what\"},{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"data:image/png;base64,aGVsbG8=\"}}]}]}";
    ck_assert_int_eq(api_gen_parse_json(&r, API_GEN_CHAT, chat, strlen(chat), &e), 0);
    ck_assert(r.stream && r.has_max_new_tokens && r.max_new_tokens == 7);
    ck_assert_str_eq(r.prompt, "answer en what");
    ck_assert_str_eq(r.image, "data:image/png;base64,aGVsbG8=");
    api_gen_request_free(&r);

    /* multipart: a file part is raw bytes, a plain field an image value */
    const char *ct = "multipart/form-data; boundary=B";
    const char file[] = "--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\""
                        "\r\n\r\n\x89PNG\r\n--B\r\nContent-Disposition: form-data; name=\"question\""
                        "\r\n\r\nwhat\r\n--B\r\nContent-Disposition: form-data; name=\"num_beams\""
                        "\r\n\r\n2\r\n--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_VQA, ct, file, sizeof file - 1, &e), 0);
    ck_assert(r.image_raw && r.image_len == 4 && memcmp(r.image, "\x89PNG", 4) == 0);
    ck_assert(r.has_num_beams && r.num_beams == 2);
    ck_assert_str_eq(r.question, "what");
    api_gen_request_free(&r);
    const char *value = "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\naGVsbG8=\r\n"
                        "--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_CAPTION, ct, value, strlen(value), &e), 0);
    ck_assert(!r.image_raw && r.image_len == 8);
    api_gen_request_free(&r);
    const char badq[] = "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\naGVsbG8=\r\n"
                        "--B\r\nContent-Disposition: form-data; name=\"question\"\r\n\r\n\xff\xfe"
                        "\r\n--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_VQA, ct, badq, sizeof badq - 1, &e), -1);
    ck_assert_str_eq(e.param, "question");
    const char badn[] = "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\naGVsbG8=\r\n"
                        "--B\r\nContent-Disposition: form-data; name=\"max_new_tokens\"\r\n\r\n12x"
                        "\r\n--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_CAPTION, ct, badn, sizeof badn - 1, &e),
                     -1);
    ck_assert_str_eq(e.param, "max_new_tokens");
    ck_assert_str_eq(e.code, "invalid_type");
    /* an image part typed image/... (no filename) holds the file, as on the
     * embedding endpoints; empty, it is empty_image there and here */
    const char typed[] = "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n"
                         "Content-Type: image/png\r\n\r\nhello\r\n--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_CAPTION, ct, typed, sizeof typed - 1, &e),
                     0);
    ck_assert(r.image_raw && r.image_len == 5 && memcmp(r.image, "hello", 5) == 0);
    api_gen_request_free(&r);
    api_request er;
    api_limits elim = {.max_items = 4, .embed_dim = 8};
    ck_assert_int_eq(
        api_request_parse_multipart(&er, API_OP_EMBED, ct, typed, sizeof typed - 1, &elim, &e), 0);
    ck_assert(er.n_images == 1 && er.image_lens[0] == 5);
    api_request_free(&er);
    const char empty[] = "--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n"
                         "\r\n\r\n--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_CAPTION, ct, empty, sizeof empty - 1, &e),
                     -1);
    ck_assert_str_eq(e.code, "empty_image");
    ck_assert_str_eq(e.param, "image");
    ck_assert_int_eq(
        api_request_parse_multipart(&er, API_OP_EMBED, ct, empty, sizeof empty - 1, &elim, &e), -1);
    ck_assert_str_eq(e.code, "empty_image");
    /* one image: a second image part is refused, not silently replacing the first */
    const char two[] = "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\naGVsbG8=\r\n"
                       "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\naGVsbG8=\r\n"
                       "--B--\r\n";
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_CAPTION, ct, two, sizeof two - 1, &e), -1);
    ck_assert_str_eq(e.code, "invalid_value");
    ck_assert_str_eq(e.param, "image");
    /* a NUL in lang, invalid UTF-8 in question */
    const char nul_lang[] = "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\naGVsbG8="
                            "\r\n--B\r\nContent-Disposition: form-data; name=\"lang\"\r\n\r\ne\0n"
                            "\r\n--B--\r\n";
    ck_assert_int_eq(
        api_gen_parse_multipart(&r, API_GEN_CAPTION, ct, nul_lang, sizeof nul_lang - 1, &e), -1);
    ck_assert_str_eq(e.code, "invalid_value");
    ck_assert_str_eq(e.param, "lang");
    ck_assert_int_eq(api_gen_parse_multipart(&r, API_GEN_VQA, ct, badq, sizeof badq - 1, &e), -1);
    ck_assert_str_eq(e.code, "invalid_utf8");
}
END_TEST

/* Empty and malformed bodies: a message a person can act on (never
 * jansson's "wrong arguments" for a body it was not given). */
START_TEST(test_json_body_messages)
{
    api_error e;
    const char *empty[] = {"", "  \r\n\t "};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_ptr_null(api_json_load_object(empty[i], strlen(empty[i]), &e));
        ck_assert_str_eq(e.code, "invalid_json");
        ck_assert_int_eq(e.status, 400);
        ck_assert_msg(strstr(e.message, "the request body is empty"), "%s", e.message);
    }
    ck_assert_ptr_null(api_json_load_object(NULL, 0, &e));
    ck_assert_msg(strstr(e.message, "the request body is empty"), "%s", e.message);
    /* a malformed body: where (the third line, the column of the bad token)
     * and what jansson found there */
    const char *bad = "{\n  \"texts\": [\"a\"],\n  \"x\": nope\n}";
    ck_assert_ptr_null(api_json_load_object(bad, strlen(bad), &e));
    ck_assert_str_eq(e.code, "invalid_json");
    ck_assert_msg(strncmp(e.message, "invalid JSON at line 3, column ", 31) == 0, "%s", e.message);
    ck_assert_msg(strstr(e.message, "nope") && !strstr(e.message, "-1"), "%s", e.message);
    const char *arr = "[1]";
    ck_assert_ptr_null(api_json_load_object(arr, strlen(arr), &e));
    ck_assert_str_eq(e.message, "the request body must be a JSON object");
}
END_TEST

/* The code table: names unique, each with one status, and every api_error
 * made from a row carries that row's name and status. */
START_TEST(test_error_code_rows)
{
    for (int i = 0; i < API_ERR_COUNT; i++) {
        const char *name = api_code_name((api_code)i);
        const int status = api_code_status((api_code)i);
        ck_assert_msg(status >= 400 && status < 600, "%s: status %d", name, status);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(name, api_code_name((api_code)j)) != 0, "%s twice", name);
        api_error e;
        ck_assert_int_eq(api_errorf(&e, (api_code)i, "p", "m %d", i), -1);
        ck_assert_str_eq(e.code, name);
        ck_assert_int_eq(e.status, status);
        ck_assert_int_eq(e.id, i);
    }
    ck_assert_str_eq(api_code_name(API_ERR_OUT_OF_MEMORY), "out_of_memory");
    ck_assert_int_eq(api_code_status(API_ERR_UNSUPPORTED_IMAGE_FORMAT), 415);
}
END_TEST

/* GET /v1/models: the version beside OpenAI's list; embedding_dim only for
 * an embedding model. */
START_TEST(test_models_json)
{
    const api_model_info m[2] = {{"sig\"lip", 32, "siglip"}, {"pali", 0, "florence2"}};
    size_t len;
    char *s = api_models_json(m, 2, "9.8.7-x", 1234, &len);
    ck_assert_ptr_nonnull(s);
    json_error_t je;
    json_t *v = json_loadb(s, len, 0, &je);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(json_string_value(json_object_get(v, "prism_version")), "9.8.7-x");
    ck_assert_str_eq(json_string_value(json_object_get(v, "object")), "list");
    json_t *data = json_object_get(v, "data");
    ck_assert_uint_eq(json_array_size(data), 2);
    json_t *a = json_array_get(data, 0), *b = json_array_get(data, 1);
    ck_assert_str_eq(json_string_value(json_object_get(a, "id")), "sig\"lip");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "embedding_dim")), 32);
    ck_assert_int_eq(json_integer_value(json_object_get(b, "created")), 1234);
    ck_assert_ptr_null(json_object_get(b, "embedding_dim"));
    ck_assert_str_eq(json_string_value(json_object_get(a, "family")), "siglip");
    ck_assert_str_eq(json_string_value(json_object_get(b, "family")), "florence2");
    json_decref(v);
    free(s);
}
END_TEST

/* A multipart/form-data body (boundary "B") of n fields name=value; a value
 * is vlen bytes, or a C string when vlen is 0. The caller frees it. */
typedef struct form_field {
    const char *name, *value;
    size_t vlen;
} form_field;

static char *form_body(const form_field *f, int n, size_t *len)
{
    api_buf b = {0};
    for (int i = 0; i < n; i++) {
        api_buf_printf(&b, "--B\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n\r\n",
                       f[i].name, strcmp(f[i].name, "image") == 0 ? "; filename=\"a.png\"" : "");
        api_buf_putn(&b, f[i].value, f[i].vlen ? f[i].vlen : strlen(f[i].value));
        api_buf_puts(&b, "\r\n");
    }
    api_buf_puts(&b, "--B--\r\n");
    char *body = api_buf_finish(&b, len);
    ck_assert_ptr_nonnull(body);
    return body;
}

#define FORM_CT "multipart/form-data; boundary=B"

/* A classify request's prompts for a template and labels, as JSON and as a
 * form: both must give the same prompts. want[i] is label i's prompt. */
static void check_prompts(const char *tmpl, const char *const *labels, int n,
                          const char *const *want)
{
    api_limits lim = {.max_items = 16, .embed_dim = 8};
    api_buf b = {0};
    api_buf_puts(&b, "{\"image\":\"aGVsbG8=\",\"template\":");
    api_buf_json_string(&b, tmpl, strlen(tmpl));
    api_buf_puts(&b, ",\"labels\":[");
    form_field f[18] = {{"image", "PNG", 0}, {"template", tmpl, 0}};
    for (int i = 0; i < n; i++) {
        api_buf_puts(&b, i ? "," : "");
        api_buf_json_string(&b, labels[i], strlen(labels[i]));
        f[2 + i] = (form_field){"labels", labels[i], 0};
    }
    api_buf_puts(&b, "]}");
    size_t jlen, flen;
    char *json = api_buf_finish(&b, &jlen), *form = form_body(f, n + 2, &flen);
    for (int k = 0; k < 2; k++) {
        api_request r;
        api_error e;
        int rc = k == 0 ? api_request_parse_json(&r, API_OP_CLASSIFY, json, jlen, &lim, &e)
                        : api_request_parse_multipart(&r, API_OP_CLASSIFY, FORM_CT, form, flen,
                                                      &lim, &e);
        ck_assert_msg(rc == 0, "template %s (%s): %s", tmpl, k ? "form" : "json", e.message);
        ck_assert_int_eq(r.n_texts, n);
        for (int i = 0; i < n; i++) {
            ck_assert_str_eq(r.texts[i], want[i]);
            ck_assert_str_eq(r.labels[i], labels[i]);
        }
        api_request_free(&r);
    }
    free(json);
    free(form);
}

/* max_num_patches: taken by every op, in JSON and in forms, bounded by the
 * server's limit, refused on a fixed-resolution model. */
START_TEST(test_max_num_patches)
{
    static const struct {
        api_op op;
        const char *json; /* with %s for the field's value */
        const char *form_text_key;
    } ops[] = {
        {API_OP_EMBED, "{\"images\":[\"aGVsbG8=\"],\"max_num_patches\":%s}", "texts"},
        {API_OP_SCORE, "{\"images\":[\"aGVsbG8=\"],\"texts\":[\"a\"],\"max_num_patches\":%s}",
         "texts"},
        {API_OP_CLASSIFY, "{\"image\":\"aGVsbG8=\",\"labels\":[\"a\"],\"max_num_patches\":%s}",
         "labels"},
        {API_OP_EMBEDDINGS, "{\"input\":[\"a\"],\"max_num_patches\":%s}", NULL},
    };
    static const struct {
        const char *value;
        int max; /* the server's limit (0: a fixed-resolution model) */
        int want;                 /* parsed value, or -1 */
        const char *code;
    } cases[] = {
        {"256", 1024, 256, NULL},     {"1024", 1024, 1024, NULL},
        {"null", 1024, 0, NULL},      {"1025", 1024, -1, "too_many_patches"},
        {"0", 1024, -1, "invalid_value"}, {"-5", 1024, -1, "invalid_value"},
        {"\"256\"", 1024, -1, "invalid_type"}, {"2.5", 1024, -1, "invalid_type"},
        {"256", 0, -1, "invalid_value"},
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            api_limits lim = {.max_items = 16, .embed_dim = 8, .max_num_patches = cases[c].max};
            char body[256];
            snprintf(body, sizeof body, ops[o].json, cases[c].value);
            api_request r;
            api_error e;
            int rc = api_request_parse_json(&r, ops[o].op, body, strlen(body), &lim, &e);
            if (cases[c].want >= 0) {
                ck_assert_msg(rc == 0, "%s: %s", body, e.message);
                ck_assert_int_eq(r.max_num_patches, cases[c].want);
                api_request_free(&r);
            } else {
                ck_assert_msg(rc == -1, "%s parsed", body);
                ck_assert_str_eq(e.code, cases[c].code);
                ck_assert_str_eq(e.param, "max_num_patches");
            }
            if (!ops[o].form_text_key || strcmp(cases[c].value, "null") == 0 ||
                strcmp(cases[c].value, "2.5") == 0 || cases[c].value[0] == '"')
                continue;
            /* the same as a form field */
            form_field f[3] = {{"image", "PNG", 0}, {ops[o].form_text_key, "a", 0},
                               {"max_num_patches", cases[c].value, 0}};
            size_t flen;
            char *form = form_body(f, 3, &flen);
            rc = api_request_parse_multipart(&r, ops[o].op, FORM_CT, form, flen, &lim, &e);
            if (cases[c].want >= 0) {
                ck_assert_msg(rc == 0, "form %s: %s", cases[c].value, e.message);
                ck_assert_int_eq(r.max_num_patches, cases[c].want);
                api_request_free(&r);
            } else {
                ck_assert_msg(rc == -1, "form %s parsed", cases[c].value);
                ck_assert_str_eq(e.code, cases[c].code);
            }
            free(form);
        }
    }
    /* a form value that is not a number */
    api_limits lim = {.max_items = 16, .embed_dim = 8, .max_num_patches = 1024};
    form_field f[2] = {{"image", "PNG", 0}, {"max_num_patches", "lots", 0}};
    size_t flen;
    char *form = form_body(f, 2, &flen);
    api_request r;
    api_error e;
    ck_assert_int_eq(api_request_parse_multipart(&r, API_OP_EMBED, FORM_CT, form, flen, &lim, &e),
                     -1);
    ck_assert_str_eq(e.code, "invalid_type");
    free(form);
}
END_TEST

/* How templates become prompts: every "{}" left to right, without overlap,
 * and nothing else touched. */
START_TEST(test_template_prompts)
{
    const char *cat[] = {"cat"}, *two[] = {"cat", "a dog"};
    check_prompts("a photo of {}.", two, 2,
                  (const char *[]){"a photo of cat.", "a photo of a dog."});
    check_prompts("{}", cat, 1, (const char *[]){"cat"});
    check_prompts("{{}}", cat, 1, (const char *[]){"{cat}"});
    check_prompts("}{}{", cat, 1, (const char *[]){"}cat{"});
    check_prompts("{}{}", cat, 1, (const char *[]){"catcat"});
    check_prompts("{ } {}", cat, 1, (const char *[]){"{ } cat"});
    check_prompts("\xc3\xa9{}\xc3\xbc", (const char *[]){"\xc3\x9f"}, 1,
                  (const char *[]){"\xc3\xa9\xc3\x9f\xc3\xbc"});
    check_prompts("<{}>", (const char *[]){""}, 1, (const char *[]){"<>"});
}
END_TEST

/* One refusal of a JSON or form body: status, code and param. */
static void expect_refusal(api_op op, const char *ct, const char *body, size_t len,
                           const api_limits *lim, int status, const char *code, const char *param)
{
    api_request r;
    api_error e;
    int rc = ct ? api_request_parse_multipart(&r, op, ct, body, len, lim, &e)
                : api_request_parse_json(&r, op, body, len, lim, &e);
    ck_assert_msg(rc == -1, "accepted: %.80s", body);
    ck_assert_msg(e.status == status && strcmp(e.code, code) == 0 && strcmp(e.param, param) == 0,
                  "%.80s: got %d %s %s (%s)", body, e.status, e.code, e.param, e.message);
    ck_assert_msg(strstr(e.message, param) != NULL, "the message names %s: %s", param, e.message);
}

static void expect_ok(api_op op, const char *ct, const char *body, size_t len,
                      const api_limits *lim)
{
    api_request r;
    api_error e;
    int rc = ct ? api_request_parse_multipart(&r, op, ct, body, len, lim, &e)
                : api_request_parse_json(&r, op, body, len, lim, &e);
    ck_assert_msg(rc == 0, "%.80s: %s", body, e.message);
    api_request_free(&r);
}

/* A classify body with one template and labels, as JSON (form false) or a form. */
static char *classify_body(bool form, const char *tmpl, const char *const *labels, int n,
                           size_t *len)
{
    if (form) {
        form_field f[8] = {{"image", "PNG", 0}, {"template", tmpl, 0}};
        for (int i = 0; i < n; i++)
            f[2 + i] = (form_field){"labels", labels[i], 0};
        return form_body(f, n + 2, len);
    }
    api_buf b = {0};
    api_buf_printf(&b, "{\"image\":\"aGVsbG8=\",\"template\":\"%s\",\"labels\":[", tmpl);
    for (int i = 0; i < n; i++)
        api_buf_printf(&b, "%s\"%s\"", i ? "," : "", labels[i]);
    api_buf_puts(&b, "]}");
    return api_buf_finish(&b, len);
}

/* max_template_bytes (1024 when 0), JSON and form alike: at the limit
 * passes, one byte over is a 413 naming "template". */
START_TEST(test_template_length_limit)
{
    char t1024[1025], t1025[1026];
    memset(t1024, 'a', 1022);
    memcpy(t1024 + 1022, "{}", 3);
    memset(t1025, 'a', 1023);
    memcpy(t1025 + 1023, "{}", 3);
    ck_assert_uint_eq(strlen(t1024), 1024);
    ck_assert_uint_eq(strlen(t1025), 1025);
    const char *cat[] = {"cat"};
    for (int form = 0; form < 2; form++) {
        const char *ct = form ? FORM_CT : NULL;
        api_limits lim = {.max_items = 16, .embed_dim = 8};
        size_t n;
        char *b = classify_body(form, t1024, cat, 1, &n);
        expect_ok(API_OP_CLASSIFY, ct, b, n, &lim);
        free(b);
        b = classify_body(form, t1025, cat, 1, &n);
        expect_refusal(API_OP_CLASSIFY, ct, b, n, &lim, 413, "template_too_long", "template");
        free(b);
        lim.max_template_bytes = 10; /* "0123456{}x" is 10 bytes */
        b = classify_body(form, "0123456{}x", cat, 1, &n);
        expect_ok(API_OP_CLASSIFY, ct, b, n, &lim);
        free(b);
        b = classify_body(form, "01234567{}x", cat, 1, &n);
        expect_refusal(API_OP_CLASSIFY, ct, b, n, &lim, 413, "template_too_long", "template");
        free(b);
        b = classify_body(form, "no slot", cat, 1, &n);
        expect_refusal(API_OP_CLASSIFY, ct, b, n, &lim, 400, "invalid_value", "template");
        free(b);
    }
    /* a form's template with NUL or bytes that are not UTF-8 (JSON strings
     * hold neither: jansson refuses both) */
    api_limits lim = {.max_items = 16, .embed_dim = 8};
    size_t n;
    char *b = form_body(
        (form_field[]){{"image", "PNG", 0}, {"labels", "a", 0}, {"template", "{}\0x", 4}}, 3, &n);
    expect_refusal(API_OP_CLASSIFY, FORM_CT, b, n, &lim, 400, "invalid_value", "template");
    free(b);
    b = form_body(
        (form_field[]){{"image", "PNG", 0}, {"labels", "a", 0}, {"template", "{}\xff", 0}}, 3, &n);
    expect_refusal(API_OP_CLASSIFY, FORM_CT, b, n, &lim, 400, "invalid_utf8", "template");
    free(b);
}
END_TEST

/* max_text_bytes on label prompts (template applied) and
 * max_expanded_bytes on their sum, JSON and form alike. */
START_TEST(test_prompt_limits)
{
    for (int form = 0; form < 2; form++) {
        const char *ct = form ? FORM_CT : NULL;
        api_limits lim = {.max_items = 16, .embed_dim = 8, .max_text_bytes = 8};
        size_t n;
        /* "{}-{}-{}" with "ab" is "ab-ab-ab": 8 bytes; with "abc" 11 */
        char *b = classify_body(form, "{}-{}-{}", (const char *[]){"ab", "cd"}, 2, &n);
        expect_ok(API_OP_CLASSIFY, ct, b, n, &lim);
        free(b);
        b = classify_body(form, "{}-{}-{}", (const char *[]){"ab", "abc"}, 2, &n);
        expect_refusal(API_OP_CLASSIFY, ct, b, n, &lim, 413, "text_too_long", "labels[1]");
        free(b);
        /* a label over the limit on its own */
        b = classify_body(form, "{}", (const char *[]){"123456789"}, 1, &n);
        expect_refusal(API_OP_CLASSIFY, ct, b, n, &lim, 413, "text_too_long", "labels[0]");
        free(b);
        /* three prompts of 8 bytes: 24 in all */
        lim = (api_limits){.max_items = 16, .embed_dim = 8, .max_expanded_bytes = 24};
        b = classify_body(form, "{}-{}-{}", (const char *[]){"ab", "cd", "ef"}, 3, &n);
        expect_ok(API_OP_CLASSIFY, ct, b, n, &lim);
        lim.max_expanded_bytes = 23;
        expect_refusal(API_OP_CLASSIFY, ct, b, n, &lim, 413, "template_too_long", "template");
        free(b);
    }
}
END_TEST

/* max_text_bytes on texts and text inputs: the item is named. */
START_TEST(test_text_limits)
{
    api_limits lim = {.max_items = 16, .embed_dim = 8, .max_text_bytes = 3};
    const char *ok = "{\"texts\":[\"abc\",\"\xc3\xa9\"]}"; /* 3 and 2 bytes */
    expect_ok(API_OP_EMBED, NULL, ok, strlen(ok), &lim);
    const char *over = "{\"texts\":[\"abc\",\"abcd\"]}";
    expect_refusal(API_OP_EMBED, NULL, over, strlen(over), &lim, 413, "text_too_long", "texts[1]");
    /* "éé" is 4 bytes, 2 characters: bytes are counted */
    const char *score = "{\"images\":[\"aGVsbG8=\"],\"texts\":[\"\xc3\xa9\xc3\xa9\"]}";
    expect_refusal(API_OP_SCORE, NULL, score, strlen(score), &lim, 413, "text_too_long",
                   "texts[0]");
    /* images among the inputs are not texts: a long data URL passes */
    const char *in = "{\"input\":[\"data:image/png;base64,aGVsbG8=\",\"abc\",\"abcd\"]}";
    expect_refusal(API_OP_EMBEDDINGS, NULL, in, strlen(in), &lim, 413, "text_too_long", "input[2]");
    const char *in_ok = "{\"input\":[\"data:image/png;base64,aGVsbG8=\",\"abc\"]}";
    expect_ok(API_OP_EMBEDDINGS, NULL, in_ok, strlen(in_ok), &lim);
    const char *one = "{\"input\":\"abcd\"}";
    expect_refusal(API_OP_EMBEDDINGS, NULL, one, strlen(one), &lim, 413, "text_too_long",
                   "input[0]");
    size_t n;
    char *b = form_body((form_field[]){{"texts", "abc", 0}, {"texts", "abcd", 0}}, 2, &n);
    expect_refusal(API_OP_EMBED, FORM_CT, b, n, &lim, 413, "text_too_long", "texts[1]");
    lim.max_text_bytes = 4;
    expect_ok(API_OP_EMBED, FORM_CT, b, n, &lim);
    lim.max_text_bytes = 0; /* no limit */
    expect_ok(API_OP_EMBED, FORM_CT, b, n, &lim);
    free(b);
}
END_TEST

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

typedef struct parse_outcome {
    int rc;
    api_error e;
} parse_outcome;

/* Parses a body in a child process whose address space may grow by only
 * 256 MiB (not under AddressSanitizer, whose shadow memory needs far more
 * address space; there the parse runs without the cap), so a parser that
 * allocates gigabytes fails the test instead of the machine. */
static parse_outcome parse_capped(api_op op, const char *ct, const char *body, size_t len,
                                  const api_limits *lim)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        close(fd[0]);
#ifndef UNDER_ASAN
        unsigned long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%lu", &pages) != 1)
            _exit(3);
        fclose(f);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
        if (setrlimit(RLIMIT_AS, &rl))
            _exit(4);
#endif
        parse_outcome o = {0};
        api_request r;
        o.rc = ct ? api_request_parse_multipart(&r, op, ct, body, len, lim, &o.e)
                  : api_request_parse_json(&r, op, body, len, lim, &o.e);
        if (o.rc == 0)
            api_request_free(&r);
        _exit(write(fd[1], &o, sizeof o) == (ssize_t)sizeof o ? 0 : 5);
    }
    close(fd[1]);
    parse_outcome o;
    memset(&o, 0, sizeof o);
    ssize_t got = read(fd[0], &o, sizeof o);
    close(fd[0]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == (ssize_t)sizeof o,
                  "the capped parse died (status %d)", st);
    return o;
}

static void expect_capped(parse_outcome o, const char *code, const char *param)
{
    ck_assert_msg(o.rc == -1 && o.e.status == 413 && strcmp(o.e.code, code) == 0 &&
                      strcmp(o.e.param, param) == 0,
                  "got rc %d, %d %s %s (%s)", o.rc, o.e.status, o.e.code, o.e.param, o.e.message);
}

/* One label of 1,000,000 bytes in a template of 1,000 "{}" would make a
 * gigabyte of prompts from a 1 MB body. Refused with a 413 before any
 * prompt is built, under a 256 MiB address-space cap. */
START_TEST(test_template_amplification)
{
    const size_t label = 1000000, slots = 1000;
    api_buf b = {0};
    api_buf_puts(&b, "{\"image\":\"aGVsbG8=\",\"labels\":[\"");
    for (size_t i = 0; i < label; i++)
        api_buf_putn(&b, "x", 1);
    api_buf_puts(&b, "\"],\"template\":\"");
    for (size_t i = 0; i < slots; i++)
        api_buf_putn(&b, "{}", 2);
    api_buf_puts(&b, "\"}");
    size_t len;
    char *json = api_buf_finish(&b, &len);
    ck_assert_ptr_nonnull(json);

    /* the server's limits today: the template alone is over 1024 bytes */
    api_limits lim = {.max_items = 256, .embed_dim = 8};
    expect_capped(parse_capped(API_OP_CLASSIFY, NULL, json, len, &lim), "template_too_long",
                  "template");
    /* a template limit that lets it through: the prompts' total (the body
     * limit, 32 MiB) or one prompt's size stops it */
    lim.max_template_bytes = 2 * slots;
    lim.max_expanded_bytes = 32u << 20;
    parse_outcome o = parse_capped(API_OP_CLASSIFY, NULL, json, len, &lim);
    expect_capped(o, "template_too_long", "template");
    ck_assert_msg(strstr(o.e.message, "33554432"), "the message gives the limit: %s", o.e.message);
    lim.max_text_bytes = 4096;
    expect_capped(parse_capped(API_OP_CLASSIFY, NULL, json, len, &lim), "text_too_long",
                  "labels[0]");
    free(json);

    /* the same as a form: 512 "{}" fit the default template limit */
    char *x = malloc(label + 1), tmpl[1025];
    ck_assert_ptr_nonnull(x);
    memset(x, 'x', label);
    x[label] = '\0';
    for (int i = 0; i < 512; i++)
        memcpy(tmpl + 2 * i, "{}", 2);
    tmpl[1024] = '\0';
    char *form = form_body(
        (form_field[]){{"image", "PNG", 0}, {"labels", x, 0}, {"template", tmpl, 0}}, 3, &len);
    lim = (api_limits){.max_items = 256, .embed_dim = 8, .max_expanded_bytes = 32u << 20};
    expect_capped(parse_capped(API_OP_CLASSIFY, FORM_CT, form, len, &lim), "template_too_long",
                  "template");
    free(form);
    free(x);
}
END_TEST

/* The JSON of the server-sent event at *p ("data: <one line>\n\n"); *p
 * moves past it. */
static json_t *next_event(const char **p)
{
    ck_assert_msg(strncmp(*p, "data: ", 6) == 0, "an event starts with 'data: ': %.40s", *p);
    const char *d = *p + 6, *end = strstr(d, "\n\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_msg(!memchr(d, '\n', (size_t)(end - d)) && !memchr(d, '\r', (size_t)(end - d)),
                  "an event's data is one line");
    json_error_t err;
    json_t *j = json_loadb(d, (size_t)(end - d), 0, &err);
    ck_assert_msg(j != NULL, "event data is not JSON: %s: %.*s", err.text, (int)(end - d), d);
    *p = end + 2;
    return j;
}

static void check_chunk(json_t *j, const char *role, const char *content, const char *finish)
{
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "chatcmpl-req-7");
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
    ck_assert(json_integer_value(json_object_get(j, "created")) == 4102444800LL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "pali \"3\"");
    json_t *choices = json_object_get(j, "choices");
    ck_assert_uint_eq(json_array_size(choices), 1);
    json_t *c = json_array_get(choices, 0);
    ck_assert(json_integer_value(json_object_get(c, "index")) == 0 &&
              json_is_integer(json_object_get(c, "index")));
    json_t *delta = json_object_get(c, "delta");
    ck_assert(json_is_object(delta));
    ck_assert_uint_eq(json_object_size(delta), (role != NULL) + (content != NULL));
    if (role)
        ck_assert_str_eq(json_string_value(json_object_get(delta, "role")), role);
    if (content) {
        json_t *t = json_object_get(delta, "content");
        ck_assert_uint_eq(json_string_length(t), strlen(content));
        ck_assert(memcmp(json_string_value(t), content, strlen(content)) == 0);
    }
    json_t *f = json_object_get(c, "finish_reason");
    if (finish)
        ck_assert_str_eq(json_string_value(f), finish);
    else
        ck_assert(json_is_null(f));
    json_decref(j);
}

/* The chunks of a streamed chat completion: each event one line of JSON in
 * OpenAI's shape, content and model escaped and read back as sent. */
START_TEST(test_chat_chunks)
{
    const char *text = "say \"hi\"\nline 2\r\n\ttab \\ back/slash \x01\x1f "
                       "\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xe2\x80\xa8";
    api_buf b = {0};
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, "assistant", NULL, NULL);
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, NULL, text, NULL);
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, "assistant", "both", NULL);
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, NULL, "", NULL);
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, NULL, NULL, "stop");
    api_buf_puts(&b, API_SSE_DONE);
    char *s = api_buf_finish(&b, NULL);
    ck_assert_ptr_nonnull(s);
    const char *p = s;
    check_chunk(next_event(&p), "assistant", NULL, NULL);
    check_chunk(next_event(&p), NULL, text, NULL);
    check_chunk(next_event(&p), "assistant", "both", NULL);
    check_chunk(next_event(&p), NULL, "", NULL);
    check_chunk(next_event(&p), NULL, NULL, "stop");
    ck_assert_str_eq(p, "data: [DONE]\n\n");
    free(s);

    /* bytes that are not UTF-8 (a cut sequence, a stray continuation, an
     * overlong) arrive as U+FFFD (EF BF BD), the rest unchanged */
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, NULL, "a\xe6\x97 b\x80 \xc0\xaf", NULL);
    s = api_buf_finish(&b, NULL);
    p = s;
    check_chunk(next_event(&p), NULL,
                "a\xef\xbf\xbd\xef\xbf\xbd b\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd", NULL);
    ck_assert_str_eq(p, "");
    free(s);
}
END_TEST

/* A stream cut short: the error in the one shape as an event, then [DONE]. */
START_TEST(test_chat_error_end)
{
    api_error e;
    api_errorf(&e, API_ERR_DRAINING, NULL, "the server is shutting down: \"bye\"");
    api_buf b = {0};
    api_chat_chunk(&b, "req-7", "pali \"3\"", 4102444800LL, NULL, "partial", NULL);
    api_chat_error_end(&b, &e);
    char *s = api_buf_finish(&b, NULL);
    ck_assert_ptr_nonnull(s);
    const char *p = s;
    check_chunk(next_event(&p), NULL, "partial", NULL);
    json_t *j = next_event(&p);
    json_t *err = json_object_get(j, "error");
    ck_assert_uint_eq(json_object_size(j), 1);
    ck_assert_uint_eq(json_object_size(err), 4);
    ck_assert_str_eq(json_string_value(json_object_get(err, "type")), "overloaded_error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "draining");
    ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
                     "the server is shutting down: \"bye\"");
    ck_assert(json_is_null(json_object_get(err, "param")));
    json_decref(j);
    ck_assert_str_eq(p, "data: [DONE]\n\n");
    free(s);

    /* an engine failure, with a param holding bytes that are not UTF-8 */
    api_errorf(&e, API_ERR_INFERENCE_FAILED, "x\xff", "decode step failed");
    api_chat_error_end(&b, &e);
    s = api_buf_finish(&b, NULL);
    p = s;
    j = next_event(&p);
    err = json_object_get(j, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "type")), "server_error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "param")), "x\xef\xbf\xbd");
    json_decref(j);
    ck_assert_str_eq(p, "data: [DONE]\n\n");
    free(s);
}
END_TEST

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random mutations of valid bodies: every outcome is success or an error
 * with a 4xx/5xx status; nothing crashes or leaks (ASan build). */
START_TEST(test_hostile_bodies)
{
    const char *seeds[] = {
        "{\"images\":[\"data:image/png;base64,aGVsbG8=\"],\"texts\":[\"a cat\"],\"dimensions\":3}",
        "{\"image\":\"aGVsbG8=\",\"labels\":[\"a\",\"b\"],\"template\":\"x {} y\"}",
        "{\"input\":[\"t\",\"data:image/jpeg;base64,/9j/\"],\"encoding_format\":\"float\"}",
        "--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f\"\r\n\r\nxyz\r\n"
        "--B\r\nContent-Disposition: form-data; name=\"labels\"\r\n\r\ncat\r\n--B--\r\n",
    };
    api_limits lim = {.max_items = 8, .embed_dim = 16};
    uint64_t s = 0x12345678abcdefull;
    char buf[512];
    for (int it = 0; it < 20000; it++) {
        int k = (int)(rng(&s) % 4);
        size_t n = strlen(seeds[k]);
        memcpy(buf, seeds[k], n);
        int muts = 1 + (int)(rng(&s) % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = rng(&s) % n;
            switch (rng(&s) % 3) {
            case 0: buf[pos] = (char)rng(&s); break;
            case 1: n = pos; break; /* truncate */
            default: buf[pos] = "{}[]\",:\\-\r\n=0"[rng(&s) % 14];
            }
            if (n == 0)
                break;
        }
        api_request r;
        api_error e = {0};
        int rc;
        if (k == 3)
            rc = api_request_parse_multipart(&r, API_OP_CLASSIFY, "multipart/form-data; boundary=B",
                                             buf, n, &lim, &e);
        else
            rc = api_request_parse_json(&r, k == 0 ? API_OP_EMBED : k == 1 ? API_OP_CLASSIFY
                                                                            : API_OP_EMBEDDINGS,
                                        buf, n, &lim, &e);
        if (rc == 0)
            api_request_free(&r);
        else
            ck_assert_msg(e.status >= 400 && e.status < 600 && e.code[0], "no error status");
    }
}
END_TEST

/* A stream sends the decoded text up to a trailing U+FFFD: "é" split over
 * two byte-fallback ids decodes as "caf\uFFFD" after the first; sending
 * that would put a character in the stream that the final "café" lacks. */
START_TEST(test_stream_settled)
{
    static const struct {
        const char *text;
        size_t want;
    } cases[] = {
        {"caf\xEF\xBF\xBD", 3},             /* the partial character held back */
        {"caf\xEF\xBF\xBD\xEF\xBF\xBD", 3}, /* several */
        {"\xEF\xBF\xBD" "caf", 6},             /* settled: later text followed it */
        {"caf\xC3\xA9", 5},                  /* complete */
        {"", 0},
        {"\xBF\xBD", 2},                     /* not a whole U+FFFD */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_uint_eq(api_stream_settled_len(cases[i].text, strlen(cases[i].text)),
                          cases[i].want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_base64_round_trip);
    tcase_add_test(tc, test_image_values);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_multipart);
    tcase_add_test(tc, test_max_num_patches);
    tcase_add_test(tc, test_requests);
    tcase_add_test(tc, test_gen_requests);
    tcase_add_test(tc, test_json_body_messages);
    tcase_add_test(tc, test_error_code_rows);
    tcase_add_test(tc, test_models_json);
    tcase_add_test(tc, test_template_prompts);
    tcase_add_test(tc, test_template_length_limit);
    tcase_add_test(tc, test_prompt_limits);
    tcase_add_test(tc, test_text_limits);
    tcase_add_test(tc, test_template_amplification);
    tcase_add_test(tc, test_chat_chunks);
    tcase_add_test(tc, test_chat_error_end);
    tcase_add_test(tc, test_stream_settled);
    tcase_add_test(tc, test_hostile_bodies);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
