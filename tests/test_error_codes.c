/* test_error_codes.c - the error vocabulary is documented, all of it.
 *
 * The server can only answer with a code from API_ERROR_CODES
 * (api/api_error.h: api_errorf takes an api_code, so the compiler refuses
 * any other). This test compares that list with docs/api.md's Errors table
 * and with the Error schema's code enum in the OpenAPI document the server
 * serves (api/openapi.yaml, converted at build time), in both directions
 * and with the status of each code. The last test plants mistakes in copies
 * of both documents to show that each comparison can fail.
 */
#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_error.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

#define MAX_CODES 256

typedef struct code_row {
    char name[48];
    int status;
} code_row;

typedef struct code_list {
    code_row rows[MAX_CODES];
    int n;
} code_list;

static int list_add(code_list *l, const char *name, size_t len, int status, char *why, size_t n)
{
    if (l->n == MAX_CODES || len == 0 || len >= sizeof l->rows[0].name) {
        snprintf(why, n, "code '%.*s': too many codes or a bad name", (int)(len > 60 ? 60 : len),
                 name);
        return -1;
    }
    for (int i = 0; i < l->n; i++)
        if (strlen(l->rows[i].name) == len && memcmp(l->rows[i].name, name, len) == 0) {
            snprintf(why, n, "code '%s' listed twice", l->rows[i].name);
            return -1;
        }
    memcpy(l->rows[l->n].name, name, len);
    l->rows[l->n].name[len] = '\0';
    l->rows[l->n++].status = status;
    return 0;
}

static void source_codes(code_list *l)
{
    char why[200];
    l->n = 0;
    for (int i = 0; i < API_ERR_COUNT; i++) {
        const char *name = api_code_name((api_code)i);
        ck_assert_msg(list_add(l, name, strlen(name), api_code_status((api_code)i), why,
                               sizeof why) == 0,
                      "api_error.h: %s", why);
    }
}

/* One line of md starting at p (without its newline); *next is the line
 * after it, or NULL at the end. */
static size_t line_at(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *next = nl ? nl + 1 : NULL;
    return (size_t)((nl ? nl : end) - p);
}

/* A table row "| `code` | 415 | ..." into l. */
static int docs_row(const char *s, size_t len, code_list *l, char *why, size_t n)
{
    const char *name = s + 3; /* after "| `" */
    const char *tick = memchr(name, '`', len - 3);
    if (!tick || (size_t)(tick - s) + 4 > len || memcmp(tick, "` | ", 4) != 0) {
        snprintf(why, n, "docs/api.md: not a '| `code` | status | when |' row: %.*s",
                 (int)(len > 80 ? 80 : len), s);
        return -1;
    }
    char *stop;
    long status = strtol(tick + 4, &stop, 10);
    if (stop != tick + 7 || strncmp(stop, " |", 2) != 0) {
        snprintf(why, n, "docs/api.md: row of %.*s: no three-digit status", (int)(tick - name),
                 name);
        return -1;
    }
    return list_add(l, name, (size_t)(tick - name), (int)status, why, n);
}

/* The code table of md's "## Errors" section: one table, its header
 * "| code | status | when |"; a code row anywhere else in the section (a
 * table split by a paragraph) is an error. */
static int docs_codes(const char *md, code_list *l, char *why, size_t n)
{
    l->n = 0;
    const char *sec = strstr(md, "\n## Errors\n");
    if (!sec) {
        snprintf(why, n, "docs/api.md: no '## Errors' section");
        return -1;
    }
    sec += 1;
    const char *end = strstr(sec + 3, "\n## ");
    if (!end)
        end = sec + strlen(sec);
    static const char header[] = "| code | status | when |";
    enum { BEFORE, RULE, ROWS, AFTER } state = BEFORE;
    for (const char *p = sec, *next; p && p < end; p = next) {
        size_t len = line_at(p, end, &next);
        const bool row = len > 3 && strncmp(p, "| `", 3) == 0;
        if (state == BEFORE && len == sizeof header - 1 && memcmp(p, header, len) == 0) {
            state = RULE;
        } else if (state == RULE) {
            if (len < 5 || strncmp(p, "| ---", 5) != 0) {
                snprintf(why, n, "docs/api.md: the code table's header has no '| --- |' line");
                return -1;
            }
            state = ROWS;
        } else if (state == ROWS && row) {
            if (docs_row(p, len, l, why, n))
                return -1;
        } else if (state == ROWS && len > 0 && p[0] == '|') {
            snprintf(why, n, "docs/api.md: a row of the code table without a `code`: %.*s",
                     (int)(len > 80 ? 80 : len), p);
            return -1;
        } else if (state == ROWS) {
            state = AFTER;
        } else if (row) {
            snprintf(why, n, "docs/api.md: a code row outside the code table (is the table split?):"
                     " %.*s", (int)(len > 80 ? 80 : len), p);
            return -1;
        }
    }
    if (state == BEFORE) {
        snprintf(why, n, "docs/api.md: no '%s' table in Errors", header);
        return -1;
    }
    return 0;
}

/* components.schemas.Error.properties.error.properties.code of the API
 * description, or NULL. */
static json_t *error_code_schema(json_t *doc)
{
    static const char *const path[] = {"components", "schemas", "Error", "properties", "error",
                                       "properties", "code"};
    json_t *v = doc;
    for (size_t i = 0; v && i < sizeof path / sizeof path[0]; i++)
        v = json_object_get(v, path[i]);
    return v;
}

/* components.schemas.Error: error.code's enum, each with its status at the
 * start of the matching x-enum-descriptions entry ("415: ..."). */
static int openapi_codes(json_t *doc, code_list *l, char *why, size_t n)
{
    l->n = 0;
    json_t *code = error_code_schema(doc);
    json_t *en = json_object_get(code, "enum"), *desc = json_object_get(code, "x-enum-descriptions");
    if (!json_is_array(en) || !json_is_array(desc) || json_array_size(en) != json_array_size(desc)) {
        snprintf(why, n, "openapi: Error.error.code needs an enum and an x-enum-descriptions of the "
                 "same length");
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(en, i, v) {
        const char *d = json_string_value(json_array_get(desc, i));
        char *stop = NULL;
        long status = d ? strtol(d, &stop, 10) : 0;
        if (!json_is_string(v) || !d || stop != d + 3 || strncmp(stop, ": ", 2) != 0) {
            snprintf(why, n, "openapi: code enum entry %zu: not a string with a description "
                     "starting 'NNN: '", i);
            return -1;
        }
        if (list_add(l, json_string_value(v), json_string_length(v), (int)status, why, n))
            return -1;
    }
    return 0;
}

static const code_row *find(const code_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->rows[i].name, name) == 0)
            return &l->rows[i];
    return NULL;
}

/* Every code of src in doc with the same status, and no other code in doc. */
static int compare(const code_list *src, const code_list *doc, const char *where, char *why,
                   size_t n)
{
    for (int i = 0; i < src->n; i++) {
        const code_row *d = find(doc, src->rows[i].name);
        if (!d) {
            snprintf(why, n, "%s does not list '%s' (%d), which the server can answer", where,
                     src->rows[i].name, src->rows[i].status);
            return -1;
        }
        if (d->status != src->rows[i].status) {
            snprintf(why, n, "%s gives '%s' status %d; the server answers it with %d", where,
                     d->name, d->status, src->rows[i].status);
            return -1;
        }
    }
    for (int i = 0; i < doc->n; i++)
        if (!find(src, doc->rows[i].name)) {
            snprintf(why, n, "%s lists '%s', which is not in API_ERROR_CODES", where,
                     doc->rows[i].name);
            return -1;
        }
    return 0;
}

static char *read_docs(void)
{
    const char *path = PRISM_SOURCE_DIR "/docs/api.md";
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(fread(s, 1, (size_t)len, f), (size_t)len);
    s[len] = '\0';
    fclose(f);
    return s;
}

static json_t *load_openapi(void)
{
    json_error_t je;
    json_t *doc = json_loadb(api_openapi_json, api_openapi_json_len, 0, &je);
    ck_assert_msg(doc != NULL, "openapi.json: %s", je.text);
    return doc;
}

static code_list src, got;

START_TEST(test_docs_table_lists_every_code)
{
    char why[300] = "";
    char *md = read_docs();
    source_codes(&src);
    ck_assert_msg(docs_codes(md, &got, why, sizeof why) == 0, "%s", why);
    ck_assert_msg(compare(&src, &got, "docs/api.md's Errors table", why, sizeof why) == 0, "%s",
                  why);
    free(md);
}
END_TEST

START_TEST(test_openapi_enum_lists_every_code)
{
    char why[300] = "";
    json_t *doc = load_openapi();
    source_codes(&src);
    ck_assert_msg(openapi_codes(doc, &got, why, sizeof why) == 0, "%s", why);
    ck_assert_msg(compare(&src, &got, "openapi.yaml's Error code enum", why, sizeof why) == 0,
                  "%s", why);
    json_decref(doc);
}
END_TEST

/* A copy of s with the first occurrence of `from` replaced by `to`. */
static char *replaced(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    ck_assert_msg(at != NULL, "'%s' not found", from);
    size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to), sl = strlen(s);
    char *out = malloc(sl - fl + tl + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, s, a);
    memcpy(out + a, to, tl);
    memcpy(out + a + tl, at + fl, sl - a - fl + 1);
    return out;
}

/* The comparisons catch each kind of mistake: a code left out, one that
 * does not exist, a wrong status, a duplicate, a table split in two. */
START_TEST(test_checks_find_planted_mistakes)
{
    char why[300];
    char *md = read_docs();
    source_codes(&src);
    const char *row = "| `queue_full` | 503 |";
    const struct {
        const char *from, *to, *expect;
    } plants[] = {
        {row, "| `queue_full_x` | 503 |", "does not list 'queue_full'"},
        {row, "| `queue_full` | 429 |", "status 429"},
        {"| `draining` | 503 |", "| `queue_full` | 503 |", "listed twice"},
        {"| `deadline_exceeded` | 504 |", "\nA note.\n\n| `deadline_exceeded` | 504 |",
         "outside the code table"},
    };
    for (size_t i = 0; i < sizeof plants / sizeof plants[0]; i++) {
        char *bad = replaced(md, plants[i].from, plants[i].to);
        why[0] = '\0';
        int rc = docs_codes(bad, &got, why, sizeof why);
        if (rc == 0)
            rc = compare(&src, &got, "docs", why, sizeof why);
        ck_assert_msg(rc == -1 && strstr(why, plants[i].expect), "plant %zu: rc %d, '%s'", i, rc,
                      why);
        free(bad);
    }
    /* an extra row: a code the server cannot answer */
    char *extra = replaced(md, row, "| `made_up` | 400 | x |\n| `queue_full` | 503 |");
    ck_assert_int_eq(docs_codes(extra, &got, why, sizeof why), 0);
    ck_assert_int_eq(compare(&src, &got, "docs", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "'made_up', which is not in API_ERROR_CODES"), "%s", why);
    free(extra);
    free(md);

    json_t *doc = load_openapi();
    json_t *code = error_code_schema(doc);
    json_t *en = json_object_get(code, "enum"), *desc = json_object_get(code, "x-enum-descriptions");
    ck_assert_int_eq(openapi_codes(doc, &got, why, sizeof why), 0);
    /* a wrong status */
    char *d0 = strdup(json_string_value(json_array_get(desc, 0)));
    json_array_set_new(desc, 0, json_string("599: planted"));
    ck_assert_int_eq(openapi_codes(doc, &got, why, sizeof why), 0);
    ck_assert_int_eq(compare(&src, &got, "openapi", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "status 599"), "%s", why);
    json_array_set_new(desc, 0, json_string(d0));
    free(d0);
    /* a code left out, then one made up */
    char *last = strdup(json_string_value(json_array_get(en, json_array_size(en) - 1)));
    json_array_remove(en, json_array_size(en) - 1);
    json_array_remove(desc, json_array_size(desc) - 1);
    ck_assert_int_eq(openapi_codes(doc, &got, why, sizeof why), 0);
    ck_assert_int_eq(compare(&src, &got, "openapi", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "does not list") && strstr(why, last), "%s", why);
    free(last);
    json_array_append_new(en, json_string("made_up"));
    json_array_append_new(desc, json_string("400: planted"));
    ck_assert_int_eq(openapi_codes(doc, &got, why, sizeof why), 0);
    ck_assert_int_eq(compare(&src, &got, "openapi", why, sizeof why), -1);
    /* descriptions out of step with the enum */
    json_array_remove(desc, 0);
    ck_assert_int_eq(openapi_codes(doc, &got, why, sizeof why), -1);
    json_decref(doc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("error_codes");
    TCase *tc = tcase_create("error_codes");
    tcase_add_test(tc, test_docs_table_lists_every_code);
    tcase_add_test(tc, test_openapi_enum_lists_every_code);
    tcase_add_test(tc, test_checks_find_planted_mistakes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
