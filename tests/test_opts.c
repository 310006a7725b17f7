/* test_opts.c - the option tables (server/opts.h) and `prism serve`'s
 * settings (server/config.h) as a library: defaults, the environment,
 * flags, every kind of bad value, help layout, and the startup line. */
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "opts.h"

typedef struct demo_opts {
    const char *name, *mode;
    long long n, bytes;
    double x;
    bool verbose;
    opt_list files;
    opt_ints sizes;
    const char *secret_key, *hook;
} demo_opts;

#define F(field) offsetof(demo_opts, field)

enum { CMD_A = 1, CMD_B = 2 };

static const opt_spec rows[] = {
    {"name", OPT_STR, F(name), "", 0, 0, NULL, "a name", .required = true, .arg = "NAME"},
    {"mode", OPT_CHOICE, F(mode), "fast", 0, 0, "fast|slow", .help = "how"},
    {"n", OPT_INT, F(n), "4", 0, 10, NULL, "a count", .env = true},
    {"bytes", OPT_SIZE, F(bytes), "1K", 0, 1048576, NULL, "a size", .cmds = CMD_A},
    {"x", OPT_NUM, F(x), "0.5", -1, 1, NULL, "a number", .cmds = CMD_B},
    {"verbose", OPT_FLAG, F(verbose), NULL, 0, 0, NULL, .help = "talk"},
    {"file", OPT_LIST, F(files), NULL, 0, 3, NULL, "a file", .arg = "FILE"},
    {"sizes", OPT_INTS, F(sizes), "1,2", 1, 100, NULL, .help = "sizes"},
    {"secret-key", OPT_STR, F(secret_key), "", 0, 0, NULL, "a key", .secret = true},
    {"hook", OPT_STR, F(hook), "", 0, 0, NULL, "for tests", .testing = true},
};

static const opt_table table_a = {.prog = "demo a", .usage = "usage: demo a\n", .rows = rows,
                                  .n_rows = sizeof rows / sizeof rows[0], .cmd = CMD_A};

/* Parses a NULL-terminated argument list; returns opts_parse's status. */
static int parse(const opt_table *t, demo_opts *o, char *msg, const char *const *args)
{
    char *argv[32] = {"demo"};
    int argc = 1;
    while (args[argc - 1])
        argv[argc] = (char *)args[argc - 1], argc++;
    memset(o, 0, sizeof *o);
    FILE *null = fopen("/dev/null", "w");
    int rc = opts_parse(t, o, argc, argv, 1, null, msg, 256);
    fclose(null);
    return rc;
}

START_TEST(test_values)
{
    demo_opts o;
    char msg[256];
    unsetenv("PRISM_N");
    const char *a1[] = {"--name", "x", "--file", "a", "--file=b", "--verbose", "--sizes",
                        "3,40,5", "--bytes", "2K", "--mode=slow", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, a1), 0);
    ck_assert_str_eq(o.name, "x");
    ck_assert_str_eq(o.mode, "slow");
    ck_assert_int_eq(o.n, 4); /* default */
    ck_assert_int_eq(o.bytes, 2048);
    ck_assert(o.verbose);
    ck_assert_int_eq(o.files.n, 2);
    ck_assert_str_eq(o.files.v[1], "b");
    ck_assert_int_eq(o.sizes.n, 3);
    ck_assert_int_eq(o.sizes.v[1], 40);
    ck_assert_str_eq(o.secret_key, ""); /* a text without default is "", never NULL */
    /* the environment sets, a flag wins */
    setenv("PRISM_N", "7", 1);
    const char *a2[] = {"--name", "x", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, a2), 0);
    ck_assert_int_eq(o.n, 7);
    const char *a3[] = {"--name", "x", "--n", "2", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, a3), 0);
    ck_assert_int_eq(o.n, 2);
    /* a row without .env is not read from the environment */
    setenv("PRISM_MODE", "bogus", 1);
    ck_assert_int_eq(parse(&table_a, &o, msg, a2), 0);
    ck_assert_str_eq(o.mode, "fast");
    unsetenv("PRISM_MODE");
    setenv("PRISM_N", "11", 1);
    ck_assert_int_eq(parse(&table_a, &o, msg, a2), -1);
    ck_assert_str_eq(msg, "PRISM_N must be an integer in [0, 10], not '11'");
    unsetenv("PRISM_N");
}
END_TEST

START_TEST(test_errors)
{
    static const struct {
        const char *args[8];
        const char *msg;
    } cases[] = {
        {{"--n", "1", NULL}, "--name NAME is required"},
        {{"--name", "x", "--n", "1.5", NULL}, "--n must be an integer in [0, 10], not '1.5'"},
        {{"--name", "x", "--n", NULL}, "--n needs a value"},
        {{"--name", "x", "--mode", "slower", NULL}, "--mode must be one of fast|slow, not 'slower'"},
        {{"--name", "x", "--bytes", "2M", NULL}, "--bytes must be a number in [0, 1048576]"},
        {{"--name", "x", "--verbose=yes", NULL}, "--verbose takes no value"},
        {{"--name", "x", "--sizes", "1,,2", NULL}, "--sizes must be up to 16 comma-separated"},
        {{"--name", "x", "--sizes", "1,101", NULL}, "--sizes must be up to 16 comma-separated"},
        {{"--name", "x", "--file", NULL}, "--file needs a value"},
        {{"--name", "x", "--x", "0", NULL}, "unknown option '--x' (see demo a --help)"},
        {{"--name", "x", "stray", NULL}, "unexpected argument 'stray' (see demo a --help)"},
        {{"--name", "x", "--bogus=1", NULL}, "unknown option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        demo_opts o;
        char msg[256] = "";
        ck_assert_msg(parse(&table_a, &o, msg, cases[i].args) == -1, "case %zu accepted", i);
        ck_assert_msg(strstr(msg, cases[i].msg), "case %zu: \"%s\", want \"%s\"", i, msg,
                      cases[i].msg);
    }
    /* a list takes at most its .max values */
    demo_opts o;
    char msg[256];
    const char *many[] = {"--name", "x", "--file", "a", "--file", "b", "--file", "c",
                          "--file", "d", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, many), -1);
    ck_assert_msg(strstr(msg, "--file may be given at most 3 times"), "%s", msg);
}
END_TEST

/* --help anywhere an option may stand; a value that reads "--help" is a value. */
START_TEST(test_help_detection)
{
    demo_opts o;
    char msg[256];
    const char *a1[] = {"--n", "99", "--help", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, a1), 1);
    const char *a2[] = {"-h", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, a2), 1);
    const char *a3[] = {"--name", "--help", NULL};
    ck_assert_int_eq(parse(&table_a, &o, msg, a3), 0);
    ck_assert_str_eq(o.name, "--help");
}
END_TEST

/* What print(f) writes, as a malloc'd string. */
static char *printed(const opt_table *t, void (*print)(const opt_table *, FILE *))
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    print(t, f);
    long n = ftell(f);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void print_serve_help(const opt_table *t, FILE *f)
{
    (void)t;
    config_print_help(f);
}

static char *help_text(const opt_table *t)
{
    return printed(t, opts_print_help);
}

/* Help: only the command's rows, environment and default lines, testing
 * rows last under their own heading, no line past 79 columns. */
START_TEST(test_help_layout)
{
    char *h = help_text(&table_a);
    ck_assert(strncmp(h, "usage: demo a\n", 14) == 0);
    ck_assert_msg(strstr(h, "--bytes BYTES") && !strstr(h, "--x X"), "%s", h);
    ck_assert_msg(strstr(h, "--file FILE") && strstr(h, "a file (repeatable)"), "%s", h);
    ck_assert_msg(strstr(h, "env PRISM_N, default 4") && strstr(h, "default fast"), "%s", h);
    ck_assert_msg(!strstr(h, "PRISM_MODE"), "%s", h);
    const char *testing = strstr(h, "testing only");
    ck_assert_msg(testing && strstr(testing, "--hook") && !strstr(testing, "--name"), "%s", h);
    free(h);
    const opt_table table_b = {.prog = "demo b", .usage = "", .rows = rows,
                               .n_rows = sizeof rows / sizeof rows[0], .cmd = CMD_B};
    h = help_text(&table_b);
    ck_assert_msg(strstr(h, "--x X") && !strstr(h, "--bytes"), "%s", h);
    free(h);
    /* serve's help: long help texts wrap */
    char *buf = printed(NULL, print_serve_help);
    for (char *line = buf; *line;) {
        size_t n = strcspn(line, "\n");
        ck_assert_msg(n <= 79, "a help line of %zu columns: %.*s", n, (int)n, line);
        line += n + (line[n] ? 1 : 0);
    }
    const char *serve_testing = strstr(buf, "testing only");
    ck_assert_msg(serve_testing && strstr(serve_testing, "--test-fault") &&
                      strstr(serve_testing, "--test-batch-sleep-ms"), "%s", buf);
    ck_assert_msg(strstr(buf, "--test-fault") > serve_testing, "testing rows are listed last");
    free(buf);
}
END_TEST

/* The startup line: every setting but the testing-only ones, the key hidden. */
START_TEST(test_config_describe)
{
    char *argv[] = {"prism", "serve", "--model", "m", "--api-key", "s3cret", "--test-fault",
                    "matmul:1", "--test-batch-sleep-ms", "5", "--max-items", "9"};
    srv_config cfg;
    char msg[256], line[4096];
    ck_assert_int_eq(config_parse(&cfg, 12, argv, 2, stdout, msg, sizeof msg), 0);
    ck_assert_str_eq(cfg.test_fault, "matmul:1");
    ck_assert(cfg.test_batch_sleep_ms == 5);
    config_describe(&cfg, line, sizeof line);
    ck_assert_msg(strstr(line, "model=m ") == line, "%s", line);
    ck_assert_msg(strstr(line, " max-items=9"), "%s", line);
    ck_assert_msg(strstr(line, " api-key=(set)") && !strstr(line, "s3cret"), "%s", line);
    ck_assert_msg(!strstr(line, "test-"), "%s", line);
    /* serve's messages, unchanged by the shared parser */
    char *noarg[] = {"prism", "serve"};
    unsetenv("PRISM_MODEL");
    ck_assert_int_eq(config_parse(&cfg, 2, noarg, 2, stdout, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "--model DIR (or PRISM_MODEL) is required");
    char *bad[] = {"prism", "serve", "--model", "m", "--frob"};
    ck_assert_int_eq(config_parse(&cfg, 5, bad, 2, stdout, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "unknown option '--frob' (see prism serve --help)");
    /* --threads 0: all cores, the same range as the other commands */
    char *t0[] = {"prism", "serve", "--model", "m", "--threads", "0"};
    ck_assert_int_eq(config_parse(&cfg, 6, t0, 2, stdout, msg, sizeof msg), 0);
    ck_assert_int_eq(cfg.threads, 0);
}
END_TEST

START_TEST(test_peek)
{
    char *argv[] = {"prism", "bench", "--model", "a", "--batch", "1", "--model=b"};
    ck_assert_str_eq(opts_peek(7, argv, 2, "model"), "b");
    ck_assert_str_eq(opts_peek(4, argv, 2, "model"), "a");
    ck_assert_ptr_null(opts_peek(7, argv, 2, "mod"));
    ck_assert_ptr_null(opts_peek(3, argv, 2, "model"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opts");
    TCase *tc = tcase_create("opts");
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_help_detection);
    tcase_add_test(tc, test_help_layout);
    tcase_add_test(tc, test_config_describe);
    tcase_add_test(tc, test_peek);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
