/* test_json.c - the engine's JSON reader (engine/json.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static json_value *parse(const char *s)
{
    char err[128];
    return json_parse(s, strlen(s), err, sizeof err);
}

START_TEST(test_values)
{
    json_value *v = parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}, \"c\": []} ");
    ck_assert_ptr_nonnull(v);
    const json_value *a = json_get(v, "a");
    ck_assert(a && a->type == JSON_ARRAY && a->count == 6);
    ck_assert(a->items[0].is_integer && a->items[0].integer == 1);
    ck_assert(!a->items[1].is_integer && a->items[1].number == -2500.0);
    ck_assert(a->items[2].type == JSON_BOOL && a->items[2].boolean);
    ck_assert(a->items[3].type == JSON_BOOL && !a->items[3].boolean);
    ck_assert(a->items[4].type == JSON_NULL);
    ck_assert(a->items[5].type == JSON_STRING && strcmp(a->items[5].string, "x") == 0);
    ck_assert(json_get(v, "b")->type == JSON_OBJECT && json_get(v, "b")->count == 0);
    ck_assert(json_get(v, "c")->type == JSON_ARRAY && json_get(v, "c")->count == 0);
    ck_assert_ptr_null(json_get(v, "zz"));
    ck_assert_ptr_null(json_get(a, "a")); /* not an object */
    json_free(v);
    v = parse("9223372036854775807");
    ck_assert(v->is_integer && v->integer == INT64_MAX);
    json_free(v);
    v = parse("9223372036854775808"); /* past int64: a double, not an integer */
    ck_assert(!v->is_integer && v->number > 9.2e18);
    json_free(v);
}
END_TEST

START_TEST(test_strings)
{
    json_value *v = parse("\"q\\\"b\\\\s\\/n\\nt\\t\\u00e9\\u4e2d\\ud83d\\ude00\\ud800x\"");
    ck_assert_ptr_nonnull(v);
    /* é, 中, 😀, and a lone surrogate replaced by U+FFFD */
    const char want[] = "q\"b\\s/n\nt\t\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xef\xbf\xbdx";
    ck_assert_uint_eq(v->length, sizeof want - 1);
    ck_assert(memcmp(v->string, want, sizeof want - 1) == 0);
    json_free(v);
}
END_TEST

START_TEST(test_errors)
{
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "tru", "nul", "01x",
                         "\"abc", "\"\\q\"", "\"\\u12\"", "{} x", "[1 2]", "{1: 2}", "-",
                         "\"a\x01\"", "1.5.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        json_value *v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
        ck_assert_msg(v == NULL, "accepted bad input %zu: %s", i, bad[i]);
        ck_assert_msg(strstr(err, "at byte"), "no position in \"%s\"", err);
    }
}
END_TEST

START_TEST(test_depth_limit)
{
    char deep[2 * (JSON_MAX_DEPTH + 10) + 1];
    int n = JSON_MAX_DEPTH + 10;
    for (int i = 0; i < n; i++)
        deep[i] = '[', deep[2 * n - 1 - i] = ']';
    deep[2 * n] = '\0';
    char err[128];
    ck_assert_ptr_null(json_parse(deep, strlen(deep), err, sizeof err));
    ck_assert(strstr(err, "too deep"));
    n = JSON_MAX_DEPTH;
    for (int i = 0; i < n; i++)
        deep[i] = '[', deep[2 * n - 1 - i] = ']';
    deep[2 * n] = '\0';
    json_value *v = json_parse(deep, strlen(deep), err, sizeof err);
    ck_assert_ptr_nonnull(v);
    json_free(v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_depth_limit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
