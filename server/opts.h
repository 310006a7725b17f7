/* opts.h - command-line options from a declarative table.
 *
 * A command describes its options as rows: the flag (without "--"), the
 * type, the offset of the field it fills in the command's own struct, the
 * default (as text, parsed like any other value), the range or choices,
 * and one line of help. opts_parse fills the struct from the defaults, then
 * the environment (PRISM_ + the flag in upper case, '-' as '_', for rows
 * that ask for it), then argv (a flag wins); opts_print_help prints the
 * same table. `prism serve` (config.c) and every other subcommand (main.c)
 * use it.
 *
 * Values are `--name VALUE` or `--name=VALUE`; OPT_FLAG rows take none.
 * `--help` or `-h` anywhere prints the help instead. A bad value is an
 * error naming the option or variable and saying what it must be.
 */
#ifndef PRISM_SERVER_OPTS_H
#define PRISM_SERVER_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum opt_type {
    OPT_STR,    /* const char *: the text as given */
    OPT_CHOICE, /* const char *: one of `choices` ("a|b|c") */
    OPT_INT,    /* long long: a decimal integer in [min, max] */
    OPT_NUM,    /* double in [min, max] */
    OPT_SIZE,   /* long long bytes in [min, max]; K, M, G suffixes are powers of 1024 */
    OPT_COUNT,  /* long long in [min, max]; K, M, G suffixes are 10^3, 10^6, 10^9 */
    OPT_FLAG,   /* bool: true when given; takes no value */
    OPT_LIST,   /* opt_list: repeatable, each use adds one text (at most max, when set) */
    OPT_INTS,   /* opt_ints: comma-separated integers in [min, max]; replaces the default */
} opt_type;

#define OPT_LIST_MAX 256
#define OPT_INTS_MAX 16

typedef struct opt_list {
    const char *v[OPT_LIST_MAX]; /* pointers into argv */
    int n;
} opt_list;

typedef struct opt_ints {
    long long v[OPT_INTS_MAX];
    int n;
} opt_ints;

typedef struct opt_spec {
    const char *name;    /* flag without "--" */
    opt_type type;
    size_t offset;       /* of the field in the command's struct */
    const char *def;     /* default, as text ("" or NULL: none) */
    double min, max;     /* OPT_INT/NUM/SIZE/COUNT/INTS; OPT_LIST: most uses (0: OPT_LIST_MAX) */
    const char *choices; /* OPT_CHOICE: "a|b|c" */
    const char *help;
    bool secret;         /* never printed: opts_describe shows "(set)" */
    bool testing;        /* testing only: left out of opts_describe, listed last in help */
    bool required;       /* an empty value after parsing is an error */
    bool env;            /* also read from PRISM_<NAME> (see opt_table.env_all) */
    const char *arg;     /* the value's name in help ("DIR"); NULL: from the type */
    unsigned cmds;       /* the commands that take it (opt_table.cmd); 0: every one */
} opt_spec;

typedef struct opt_table {
    const char *prog;    /* "prism serve": in messages and help */
    const char *usage;   /* the help text before the options (usage line, description) */
    const char *footer;  /* printed after the options; may be NULL */
    const opt_spec *rows;
    size_t n_rows;
    unsigned cmd;        /* only rows with (cmds & cmd) or cmds == 0 apply; 0: every row */
    bool env_all;        /* every row (but lists and flags) has an environment variable */
} opt_table;

/* Fills dst from the defaults, the environment and argv[first..argc).
 * Returns 0; 1 when --help was given (the help printed to out); -1 with a
 * message in msg that names the option or variable. */
int opts_parse(const opt_table *t, void *dst, int argc, char **argv, int first, FILE *out,
               char *msg, size_t msg_len);

/* The help: t->usage, then every row that applies with its value name,
 * help, environment variable and default, the testing-only rows under
 * their own heading, then t->footer. */
void opts_print_help(const opt_table *t, FILE *out);

/* The values in src as space-separated name=value pairs (secret rows as
 * "(set)" or empty, testing rows left out), for a log line. */
void opts_describe(const opt_table *t, const void *src, char *buf, size_t n);

/* The environment variable of a row: PRISM_ + the flag in upper case. */
void opts_env_name(const opt_spec *o, char *buf, size_t n);

/* The value given to --name in argv[first..argc) (the last one), or NULL:
 * for a command that must know one option (the model) before it can pick
 * its table. */
const char *opts_peek(int argc, char **argv, int first, const char *name);

#endif
