/* test_api.c - api/ without a server: base64 and data URLs, UTF-8, the
 * multipart parser and the request parsers on valid, malformed and random
 * input (under the ASan build this is a small fuzz run: no crash, no leak,
 * every failure an error with a status). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        {API_GEN_CAPTION, "{\"image\":\"aGVsbG8=\",\"max_new_tokens\":1.5}", "invalid_request",
         "max_new_tokens"},
        {API_GEN_CAPTION, "{\"image\":7}", "invalid_request", "image"},
        {API_GEN_CAPTION, "[1]", "invalid_json", NULL},
        {API_GEN_CHAT, "{\"messages\":[]}", "invalid_request", "messages"},
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

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_base64_round_trip);
    tcase_add_test(tc, test_image_values);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_multipart);
    tcase_add_test(tc, test_requests);
    tcase_add_test(tc, test_gen_requests);
    tcase_add_test(tc, test_hostile_bodies);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
