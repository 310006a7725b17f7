/* json.c - recursive-descent JSON parser (see json.h). */
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t n, pos;
    char *err;
    size_t err_len;
    bool failed;
} parser;

static void fail(parser *p, const char *what)
{
    if (!p->failed && p->err)
        snprintf(p->err, p->err_len, "%s at byte %zu", what, p->pos);
    p->failed = true;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->n &&
           (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
            p->s[p->pos] == '\r'))
        p->pos++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *p, unsigned *out)
{
    if (p->n - p->pos < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[p->pos + i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    p->pos += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string starting at the opening quote; the result is at most as
 * long as the source, so one allocation of the raw length suffices. */
static char *parse_string(parser *p, size_t *len_out)
{
    p->pos++; /* opening quote */
    size_t start = p->pos;
    while (p->pos < p->n && p->s[p->pos] != '"') {
        if (p->s[p->pos] == '\\')
            p->pos++;
        p->pos++;
    }
    if (p->pos >= p->n) {
        fail(p, "unterminated string");
        return NULL;
    }
    size_t end = p->pos;
    char *out = malloc(end - start + 1);
    if (!out) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t o = 0;
    p->pos = start;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            fail(p, "control character in string");
            free(out);
            return NULL;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (read_hex4(p, &cp)) {
                fail(p, "bad \\u escape");
                free(out);
                return NULL;
            }
            if (cp >= 0xD800 && cp < 0xDC00 && end - p->pos >= 6 && p->s[p->pos] == '\\' &&
                p->s[p->pos + 1] == 'u') {
                size_t save = p->pos;
                p->pos += 2;
                if (read_hex4(p, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    p->pos = save;
            }
            if (cp >= 0xD800 && cp < 0xE000)
                cp = 0xFFFD; /* lone surrogate */
            /* \uXXXX (6 source bytes) yields at most 3 bytes, a pair (12) 4 */
            o += put_utf8(out + o, cp);
            break;
        }
        default:
            fail(p, "bad escape in string");
            free(out);
            return NULL;
        }
    }
    p->pos = end + 1;
    out[o] = '\0';
    *len_out = o;
    return out;
}

static void parse_value(parser *p, json_value *v, int depth);

static int grow(parser *p, json_value *v, size_t *cap, bool keys)
{
    if (v->count < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 8;
    json_value *items = realloc(v->items, nc * sizeof *items);
    if (items)
        v->items = items;
    char **k = keys ? realloc(v->keys, nc * sizeof *k) : NULL;
    if (k)
        v->keys = k;
    if (!items || (keys && !k)) {
        fail(p, "out of memory");
        return -1;
    }
    *cap = nc;
    return 0;
}

static void parse_container(parser *p, json_value *v, int depth, bool object)
{
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    char close = object ? '}' : ']';
    size_t cap = 0;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return;
    }
    for (;;) {
        skip_ws(p);
        if (grow(p, v, &cap, object))
            return;
        char *key = NULL;
        if (object) {
            size_t kl;
            if (p->pos >= p->n || p->s[p->pos] != '"') {
                fail(p, "expected a member name");
                return;
            }
            key = parse_string(p, &kl);
            if (!key)
                return;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') {
                free(key);
                fail(p, "expected ':'");
                return;
            }
            p->pos++;
            v->keys[v->count] = key;
        }
        memset(&v->items[v->count], 0, sizeof v->items[0]);
        v->count++; /* counted before parsing so json_free releases partial trees */
        parse_value(p, &v->items[v->count - 1], depth + 1);
        if (p->failed)
            return;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == close) {
            p->pos++;
            return;
        }
        fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return;
    }
}

static void parse_number(parser *p, json_value *v)
{
    size_t start = p->pos;
    bool integral = true;
    if (p->pos < p->n && p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
        fail(p, "invalid value");
        return;
    }
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c == '.' || c == 'e' || c == 'E')
            integral = false;
        else if (!((c >= '0' && c <= '9') || c == '+' || c == '-'))
            break;
        p->pos++;
    }
    char buf[64];
    size_t len = p->pos - start;
    if (len >= sizeof buf) {
        fail(p, "number too long");
        return;
    }
    memcpy(buf, p->s + start, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    v->type = JSON_NUMBER;
    v->number = strtod(buf, &end);
    if (*end != '\0') {
        fail(p, "invalid number");
        return;
    }
    if (integral) {
        errno = 0;
        long long i = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0') {
            v->is_integer = true;
            v->integer = i;
        }
    }
}

static bool match(parser *p, const char *word)
{
    size_t l = strlen(word);
    if (p->n - p->pos >= l && memcmp(p->s + p->pos, word, l) == 0) {
        p->pos += l;
        return true;
    }
    return false;
}

static void parse_value(parser *p, json_value *v, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nesting too deep");
        return;
    }
    skip_ws(p);
    if (p->pos >= p->n) {
        fail(p, "unexpected end of input");
        return;
    }
    char c = p->s[p->pos];
    if (c == '{' || c == '[') {
        parse_container(p, v, depth, c == '{');
    } else if (c == '"') {
        v->type = JSON_STRING;
        v->string = parse_string(p, &v->length);
    } else if (match(p, "true")) {
        v->type = JSON_BOOL;
        v->boolean = true;
    } else if (match(p, "false")) {
        v->type = JSON_BOOL;
    } else if (match(p, "null")) {
        v->type = JSON_NULL;
    } else {
        parse_number(p, v);
    }
}

static void free_children(json_value *v)
{
    for (size_t i = 0; i < v->count; i++) {
        free_children(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
}

void json_free(json_value *v)
{
    if (!v)
        return;
    free_children(v);
    free(v);
}

json_value *json_parse(const char *text, size_t len, char *err, size_t err_len)
{
    parser p = {text, len, 0, err, err_len, false};
    json_value *v = calloc(1, sizeof *v);
    if (!v) {
        fail(&p, "out of memory");
        return NULL;
    }
    parse_value(&p, v, 0);
    skip_ws(&p);
    if (!p.failed && p.pos != p.n)
        fail(&p, "trailing characters");
    if (p.failed) {
        json_free(v);
        return NULL;
    }
    return v;
}

json_value *json_parse_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            if (cap > (64u << 20)) {
                snprintf(err, err_len, "%s: larger than 64 MiB", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                snprintf(err, err_len, "%s: out of memory", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    fclose(f);
    char msg[256];
    json_value *v = json_parse(buf, len, msg, sizeof msg);
    if (!v)
        snprintf(err, err_len, "%s: malformed JSON: %s", path, msg);
    free(buf);
    return v;
}

const json_value *json_get(const json_value *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < v->count; i++)
        if (strcmp(v->keys[i], key) == 0)
            return &v->items[i];
    return NULL;
}
