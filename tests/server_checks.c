/* server_checks.c - answer checks and test images for the server tests
 * (server_checks.h). */
#include "server_checks.h"

#include <check.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "api_codec.h"
#include "openapi_check.h"

json_t *test_json_body(const http_resp *r)
{
    json_error_t e;
    json_t *v = json_loadb(r->body, r->body_len, 0, &e);
    ck_assert_msg(v != NULL, "response is not JSON (%s): %.300s", e.text, r->body);
    return v;
}

json_t *test_get_openapi(int port)
{
    http_resp r;
    ck_assert_int_eq(http_get(port, "/openapi.json", &r), 0);
    json_error_t e;
    json_t *v = json_loadb(r.body, r.body_len, 0, &e);
    ck_assert_msg(v != NULL, "openapi.json: %s", e.text);
    http_resp_free(&r);
    return v;
}

void test_conforms(json_t *openapi, const char *path, const char *method, const http_resp *r)
{
    const char *media = strncmp(path, "/metrics", 8) == 0 ? "text/plain" : "application/json";
    json_t *schema = openapi_response_schema(openapi, path, method, r->status, media);
    ck_assert_msg(schema != NULL, "openapi.yaml does not describe %s %s -> %d", method, path,
                  r->status);
    if (strcmp(media, "text/plain") == 0)
        return;
    json_t *v = test_json_body(r);
    char why[512];
    ck_assert_msg(openapi_validate(openapi, schema, v, why, sizeof why),
                  "%s %s -> %d does not match openapi.yaml: %s\n%.400s", method, path, r->status,
                  why, r->body);
    json_decref(v);
}

void test_expect_error(const http_resp *r, int status, const char *code, const char *param)
{
    ck_assert_msg(r->status == status, "expected %d %s, got %d: %s", status, code, r->status,
                  r->body);
    json_t *v = test_json_body(r);
    json_t *e = json_object_get(v, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
    json_t *p = json_object_get(e, "param");
    if (param)
        ck_assert_msg(json_is_string(p) && strcmp(json_string_value(p), param) == 0,
                      "param: expected %s in %s", param, r->body);
    else
        ck_assert_msg(json_is_null(p), "param: expected null in %s", r->body);
    json_decref(v);
}

static uint8_t *make_rgb(int w, int h, unsigned seed)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    ck_assert_ptr_nonnull(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                p[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)((x * (seed + 3) + y * (c + 1) * (seed + 7) + seed * 40) & 255);
    return p;
}

uint8_t *test_png_from_rgb(const uint8_t *rgb, int w, int h, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ihdr = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8,
                             .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
    spng_set_ihdr(ctx, &ihdr);
    ck_assert_int_eq(spng_encode_image(ctx, rgb, (size_t)w * h * 3, SPNG_FMT_PNG,
                                       SPNG_ENCODE_FINALIZE), 0);
    int err;
    uint8_t *png = spng_get_png_buffer(ctx, len, &err);
    ck_assert_ptr_nonnull(png);
    spng_ctx_free(ctx);
    return png;
}

uint8_t *test_make_png(int w, int h, unsigned seed, size_t *len)
{
    uint8_t *rgb = make_rgb(w, h, seed);
    uint8_t *png = test_png_from_rgb(rgb, w, h, len);
    free(rgb);
    return png;
}

uint8_t *test_make_jpeg(int w, int h, unsigned seed, size_t *len)
{
    uint8_t *rgb = make_rgb(w, h, seed);
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long n = 0;
    ck_assert_int_eq(tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &out, &n, TJSAMP_420, 90, 0), 0);
    uint8_t *copy = malloc(n);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, out, n);
    tjFree(out);
    tjDestroy(tj);
    free(rgb);
    *len = n;
    return copy;
}

/* CRC-32 of PNG chunks (ISO 3309), bit by bit: test data only. */
static uint32_t png_crc(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

void test_png_header_only(uint8_t out[TEST_PNG_HEADER_ONLY_LEN], uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    put_be32(out + 8, 13);
    memcpy(out + 12, "IHDR", 4);
    put_be32(out + 16, w);
    put_be32(out + 20, h);
    out[24] = 8; /* bit depth */
    out[25] = 2; /* RGB */
    out[26] = out[27] = out[28] = 0;
    put_be32(out + 29, png_crc(out + 12, 17));
    static const char *const tail[2] = {"IDAT", "IEND"}; /* empty chunks */
    for (int k = 0; k < 2; k++) {
        uint8_t *c = out + 33 + 12 * k;
        put_be32(c, 0);
        memcpy(c + 4, tail[k], 4);
        put_be32(c + 8, png_crc(c + 4, 4));
    }
}

long test_proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

double test_metric_at(int port, const char *series)
{
    http_resp r;
    ck_assert_int_eq(http_get(port, "/metrics", &r), 0);
    ck_assert_int_eq(r.status, 200);
    double v = test_metric(r.body, series);
    http_resp_free(&r);
    return v;
}

void *test_post_async(void *arg)
{
    test_post *j = arg;
    j->rc = http_post_json(j->port, j->path, j->body, &j->r);
    return NULL;
}

/* Undoes Transfer-Encoding: chunked in place (the test client keeps the raw
 * body); returns the new length. */
size_t test_dechunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        char *end;
        unsigned long n = strtoul(body + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        ck_assert_ptr_nonnull(crlf);
        in = (size_t)(crlf + 2 - body);
        if (n == 0)
            break;
        ck_assert_uint_le(in + n, len);
        memmove(body + out, body + in, n);
        out += n;
        in += n + 2;
    }
    body[out] = '\0';
    return out;
}

json_t *test_st_meta(const char *path, const char *key)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: cannot open", path);
    uint8_t len8[8];
    ck_assert_msg(fread(len8, 1, 8, f) == 8, "%s: too short", path);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | len8[i];
    ck_assert_msg(hl < ((uint64_t)1 << 30), "%s: header length %llu", path,
                  (unsigned long long)hl);
    char *buf = malloc((size_t)hl + 1);
    ck_assert_msg(buf && fread(buf, 1, (size_t)hl, f) == hl, "%s: header", path);
    fclose(f);
    json_error_t e;
    json_t *h = json_loadb(buf, (size_t)hl, 0, &e);
    ck_assert_msg(h != NULL, "%s: %s", path, e.text);
    const char *s = json_string_value(json_object_get(json_object_get(h, "__metadata__"), key));
    json_t *v = s ? json_loads(s, 0, &e) : NULL;
    ck_assert_msg(!s || v != NULL, "%s: metadata %s: %s", path, key, e.text);
    json_decref(h);
    free(buf);
    return v;
}

char *test_data_url(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    const long n = ftell(f);
    ck_assert(n >= 0);
    rewind(f);
    uint8_t *raw = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(raw);
    ck_assert(fread(raw, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    size_t bl;
    char *b64 = api_base64_encode(raw, (size_t)n, &bl);
    ck_assert_ptr_nonnull(b64);
    const char *mime = strstr(path, ".png") ? "image/png" : "image/jpeg";
    char *url = malloc(bl + 64);
    ck_assert_ptr_nonnull(url);
    snprintf(url, bl + 64, "data:%s;base64,%s", mime, b64);
    free(raw), free(b64);
    return url;
}

char *test_sse_content(http_resp *r, int *done, int *deltas)
{
    r->body_len = test_dechunk(r->body, r->body_len);
    size_t cap = r->body_len + 1, len = 0;
    char *acc = malloc(cap);
    ck_assert_ptr_nonnull(acc);
    acc[0] = '\0';
    *done = *deltas = 0;
    char *save = NULL;
    for (char *line = strtok_r(r->body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(strncmp(line, "data: ", 6) == 0, "not an SSE line: %s", line);
        if (strcmp(line + 6, "[DONE]") == 0) {
            *done = 1;
            continue;
        }
        json_error_t e;
        json_t *ev = json_loads(line + 6, 0, &e);
        ck_assert_msg(ev != NULL, "%s", line);
        const char *d = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(ev, "choices"), 0), "delta"),
            "content"));
        if (d) { /* the deltas are shorter than the events that carry them */
            const size_t n = strlen(d);
            ck_assert(len + n < cap);
            memcpy(acc + len, d, n + 1);
            len += n;
            (*deltas)++;
        }
        json_decref(ev);
    }
    return acc;
}
