/* opts.c - the option-table parser behind every `prism` subcommand (opts.h). */
#include "opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Help lines wrap before this column. */
#define HELP_WIDTH 79

static bool row_applies(const opt_table *t, const opt_spec *o)
{
    return t->cmd == 0 || o->cmds == 0 || (o->cmds & t->cmd) != 0;
}

static bool row_has_env(const opt_table *t, const opt_spec *o)
{
    return (o->env || t->env_all) && o->type != OPT_LIST && o->type != OPT_FLAG;
}

void opts_env_name(const opt_spec *o, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "PRISM_");
    for (const char *p = o->name; *p && k + 1 < n; p++)
        buf[k++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    buf[k] = '\0';
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && strncmp(p, v, n) == 0)
            return true;
        p += k + (bar ? 1 : 0);
    }
    return false;
}

/* A whole decimal integer in [min, max]. */
static int parse_int(const char *v, double min, double max, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end || errno || x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

/* A number with an optional K/M/G suffix (base 1024 or 1000) in [min, max]. */
static int parse_scaled(const char *v, double base, double min, double max, long long *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*end == 'K' || *end == 'k')
        x *= base, end++;
    else if (*end == 'M' || *end == 'm')
        x *= base * base, end++;
    else if (*end == 'G' || *end == 'g')
        x *= base * base * base, end++;
    if (*v == '\0' || *end || errno || !(x >= min && x <= max))
        return -1;
    *out = (long long)x;
    return 0;
}

/* Why a value was refused: what the option takes. */
static void describe_bad(const opt_spec *o, const char *v, char *msg, size_t msg_len)
{
    switch (o->type) {
    case OPT_CHOICE:
        snprintf(msg, msg_len, "must be one of %s, not '%s'", o->choices, v);
        break;
    case OPT_INT:
        snprintf(msg, msg_len, "must be an integer in [%.0f, %.0f], not '%s'", o->min, o->max, v);
        break;
    case OPT_SIZE:
    case OPT_COUNT:
        snprintf(msg, msg_len, "must be a number in [%.0f, %.0f] (K, M, G suffixes), not '%s'",
                 o->min, o->max, v);
        break;
    case OPT_INTS:
        snprintf(msg, msg_len, "must be up to %d comma-separated integers in [%.0f, %.0f], "
                 "not '%s'", OPT_INTS_MAX, o->min, o->max, v);
        break;
    case OPT_LIST:
        snprintf(msg, msg_len, "may be given at most %.0f times",
                 o->max > 0 ? o->max : (double)OPT_LIST_MAX);
        break;
    default:
        snprintf(msg, msg_len, "must be a number in [%g, %g], not '%s'", o->min, o->max, v);
        break;
    }
}

static int parse_ints(const opt_spec *o, const char *v, opt_ints *out)
{
    opt_ints r = {.n = 0};
    for (const char *p = v;;) {
        const char *comma = strchr(p, ',');
        size_t k = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        if (r.n == OPT_INTS_MAX || k == 0 || k >= sizeof item)
            return -1;
        memcpy(item, p, k);
        item[k] = '\0';
        if (parse_int(item, o->min, o->max, &r.v[r.n++]))
            return -1;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = r;
    return 0;
}

/* Parses v into the row's field; writes why not into msg. */
static int set_value(void *dst, const opt_spec *o, const char *v, char *msg, size_t msg_len)
{
    char *field = (char *)dst + o->offset;
    int bad = 0;
    switch (o->type) {
    case OPT_STR:
        *(const char **)field = v;
        break;
    case OPT_CHOICE:
        bad = !choice_ok(o->choices, v);
        if (!bad)
            *(const char **)field = v;
        break;
    case OPT_INT:
        bad = parse_int(v, o->min, o->max, (long long *)field);
        break;
    case OPT_SIZE:
    case OPT_COUNT:
        bad = parse_scaled(v, o->type == OPT_SIZE ? 1024 : 1000, o->min, o->max,
                           (long long *)field);
        break;
    case OPT_NUM: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        bad = *v == '\0' || *end || errno || !(x >= o->min && x <= o->max);
        if (!bad)
            *(double *)field = x;
        break;
    }
    case OPT_FLAG:
        *(bool *)field = true;
        break;
    case OPT_LIST: {
        opt_list *l = (opt_list *)field;
        const int max = o->max > 0 && o->max < OPT_LIST_MAX ? (int)o->max : OPT_LIST_MAX;
        bad = l->n >= max;
        if (!bad)
            l->v[l->n++] = v;
        break;
    }
    case OPT_INTS:
        bad = parse_ints(o, v, (opt_ints *)field);
        break;
    }
    if (bad)
        describe_bad(o, v, msg, msg_len);
    return bad ? -1 : 0;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* The row of `--name[=value]` that applies, or NULL; *nn gets the name's length. */
static const opt_spec *find_row(const opt_table *t, const char *arg, size_t *nn)
{
    const char *name = arg + 2, *eq = strchr(name, '=');
    *nn = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t i = 0; i < t->n_rows; i++) {
        const opt_spec *o = &t->rows[i];
        if (row_applies(t, o) && strlen(o->name) == *nn && strncmp(o->name, name, *nn) == 0)
            return o;
    }
    return NULL;
}

/* Whether --help or -h stands where an option may (not as another one's value). */
static bool help_asked(const opt_table *t, int argc, char **argv, int first)
{
    for (int a = first; a < argc; a++) {
        if (is_help(argv[a]))
            return true;
        size_t nn;
        const opt_spec *o = strncmp(argv[a], "--", 2) == 0 ? find_row(t, argv[a], &nn) : NULL;
        if (o && o->type != OPT_FLAG && !strchr(argv[a], '='))
            a++; /* its value */
    }
    return false;
}

static int parse_argv(const opt_table *t, void *dst, int argc, char **argv, int first,
                      char *msg, size_t msg_len)
{
    char why[256];
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(msg, msg_len, "unexpected argument '%s' (see %s --help)", arg, t->prog);
            return -1;
        }
        size_t nn;
        const opt_spec *o = find_row(t, arg, &nn);
        if (!o) {
            snprintf(msg, msg_len, "unknown option '%.*s' (see %s --help)", (int)nn + 2, arg,
                     t->prog);
            return -1;
        }
        const char *eq = strchr(arg, '=');
        if (o->type == OPT_FLAG) {
            if (eq) {
                snprintf(msg, msg_len, "--%s takes no value", o->name);
                return -1;
            }
            *(bool *)((char *)dst + o->offset) = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!v) {
            snprintf(msg, msg_len, "--%s needs a value", o->name);
            return -1;
        }
        if (set_value(dst, o, v, why, sizeof why)) {
            snprintf(msg, msg_len, "--%s %s", o->name, why);
            return -1;
        }
    }
    return 0;
}

int opts_parse(const opt_table *t, void *dst, int argc, char **argv, int first, FILE *out,
               char *msg, size_t msg_len)
{
    char why[256], env[64];
    if (help_asked(t, argc, argv, first)) {
        opts_print_help(t, out);
        return 1;
    }
    for (size_t i = 0; i < t->n_rows; i++) {
        const opt_spec *o = &t->rows[i];
        if (!row_applies(t, o))
            continue;
        if (o->type == OPT_STR) /* never NULL: "" when there is no default */
            *(const char **)((char *)dst + o->offset) = o->def ? o->def : "";
        else if (o->def && o->def[0] && set_value(dst, o, o->def, why, sizeof why)) {
            snprintf(msg, msg_len, "default of --%s %s", o->name, why);
            return -1;
        }
    }
    for (size_t i = 0; i < t->n_rows; i++) {
        const opt_spec *o = &t->rows[i];
        if (!row_applies(t, o) || !row_has_env(t, o))
            continue;
        opts_env_name(o, env, sizeof env);
        const char *v = getenv(env);
        if (v && set_value(dst, o, v, why, sizeof why)) {
            snprintf(msg, msg_len, "%s %s", env, why);
            return -1;
        }
    }
    if (parse_argv(t, dst, argc, argv, first, msg, msg_len))
        return -1;
    for (size_t i = 0; i < t->n_rows; i++) {
        const opt_spec *o = &t->rows[i];
        if (!row_applies(t, o) || !o->required)
            continue;
        const char *field = (const char *)dst + o->offset;
        bool empty = o->type == OPT_LIST ? ((const opt_list *)field)->n == 0
                     : o->type == OPT_STR || o->type == OPT_CHOICE
                         ? !*(const char *const *)field || !**(const char *const *)field
                         : false;
        if (empty) {
            if (row_has_env(t, o)) {
                opts_env_name(o, env, sizeof env);
                snprintf(msg, msg_len, "--%s %s (or %s) is required", o->name,
                         o->arg ? o->arg : "VALUE", env);
            } else {
                snprintf(msg, msg_len, "--%s %s is required", o->name, o->arg ? o->arg : "VALUE");
            }
            return -1;
        }
    }
    return 0;
}

/* ---- help ---------------------------------------------------------------- */

/* Prints text from column `col` (the cursor is there), wrapping at word
 * boundaries before HELP_WIDTH; continuation lines are indented to col. */
static void print_wrapped(FILE *out, const char *text, int col)
{
    int x = col;
    const char *p = text;
    bool first_word = true;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        int w = (int)strcspn(p, " ");
        if (!first_word && x + 1 + w > HELP_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            x = col;
        } else if (!first_word) {
            fputc(' ', out);
            x++;
        }
        fwrite(p, 1, (size_t)w, out);
        x += w;
        p += w;
        first_word = false;
    }
    fputc('\n', out);
}

static const char *value_name(const opt_spec *o)
{
    if (o->arg)
        return o->arg;
    switch (o->type) {
    case OPT_STR:
    case OPT_LIST:
        return o->secret ? "KEY" : "TEXT";
    case OPT_CHOICE:
        return o->choices;
    case OPT_SIZE:
        return "BYTES";
    case OPT_COUNT:
        return "COUNT";
    case OPT_INT:
        return "N";
    case OPT_INTS:
        return "N,N,...";
    case OPT_FLAG:
        return "";
    default:
        return "X";
    }
}

static void flag_text(const opt_spec *o, char *buf, size_t n)
{
    const char *v = value_name(o);
    snprintf(buf, n, "--%s%s%s", o->name, v[0] ? " " : "", v);
}

static void print_row(const opt_table *t, const opt_spec *o, int col, FILE *out)
{
    char flag[96], env[64], line[768];
    flag_text(o, flag, sizeof flag);
    fprintf(out, "  %-*s ", col - 3, flag);
    if ((int)strlen(flag) > col - 3)
        fprintf(out, "\n%*s", col, "");
    snprintf(line, sizeof line, "%s%s", o->help, o->type == OPT_LIST ? " (repeatable)" : "");
    print_wrapped(out, line, col);
    const bool has_def = o->def && o->def[0];
    if (row_has_env(t, o)) {
        opts_env_name(o, env, sizeof env);
        snprintf(line, sizeof line, "env %s, default %s", env, has_def ? o->def : "(none)");
    } else if (has_def && o->type != OPT_FLAG) {
        snprintf(line, sizeof line, "default %s", o->def);
    } else {
        return;
    }
    fprintf(out, "%*s", col, "");
    print_wrapped(out, line, col);
}

void opts_print_help(const opt_table *t, FILE *out)
{
    fputs(t->usage, out);
    int col = 0;
    for (size_t i = 0; i < t->n_rows; i++) {
        char flag[96];
        flag_text(&t->rows[i], flag, sizeof flag);
        int w = (int)strlen(flag);
        if (row_applies(t, &t->rows[i]) && w <= 34 && w > col)
            col = w;
    }
    col += 3; /* two spaces before the flag, one after */
    bool any_testing = false;
    for (size_t i = 0; i < t->n_rows; i++) {
        const opt_spec *o = &t->rows[i];
        if (!row_applies(t, o))
            continue;
        if (o->testing)
            any_testing = true;
        else
            print_row(t, o, col, out);
    }
    if (any_testing) {
        fputs("\ntesting only (for the test suite; never needed in production):\n", out);
        for (size_t i = 0; i < t->n_rows; i++)
            if (row_applies(t, &t->rows[i]) && t->rows[i].testing)
                print_row(t, &t->rows[i], col, out);
    }
    if (t->footer)
        fputs(t->footer, out);
}

void opts_describe(const opt_table *t, const void *src, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_rows && k + 1 < n; i++) {
        const opt_spec *o = &t->rows[i];
        if (!row_applies(t, o) || o->testing)
            continue;
        const char *field = (const char *)src + o->offset;
        char v[300];
        switch (o->type) {
        case OPT_STR:
        case OPT_CHOICE: {
            const char *s = *(const char *const *)field;
            s = s ? s : "";
            snprintf(v, sizeof v, "%s", o->secret ? (*s ? "(set)" : "") : s);
            break;
        }
        case OPT_NUM:
            snprintf(v, sizeof v, "%g", *(const double *)field);
            break;
        case OPT_FLAG:
            snprintf(v, sizeof v, "%s", *(const bool *)field ? "true" : "false");
            break;
        case OPT_LIST:
            snprintf(v, sizeof v, "%d", ((const opt_list *)field)->n);
            break;
        case OPT_INTS: {
            const opt_ints *l = (const opt_ints *)field;
            size_t m = 0;
            v[0] = '\0';
            for (int j = 0; j < l->n && m + 1 < sizeof v; j++)
                m += (size_t)snprintf(v + m, sizeof v - m, "%s%lld", j ? "," : "", l->v[j]);
            break;
        }
        default:
            snprintf(v, sizeof v, "%lld", *(const long long *)field);
            break;
        }
        int w = snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "", o->name, v);
        if (w < 0)
            break;
        k += (size_t)w;
    }
}

const char *opts_peek(int argc, char **argv, int first, const char *name)
{
    const size_t nn = strlen(name);
    const char *found = NULL;
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, nn) != 0)
            continue;
        if (arg[2 + nn] == '=')
            found = arg + 3 + nn;
        else if (arg[2 + nn] == '\0' && a + 1 < argc)
            found = argv[++a];
    }
    return found;
}
