/* gpu_harness.h - a tiny test harness for the GPU tests (no Check needed).
 *
 * Each check prints one line ("ok   ..." or "FAIL file:line: ..."); the
 * program ends with gh_finish, which prints exactly
 *     N passed, N failed, N skipped
 * and returns the exit status: 1 when any check failed, GH_EXIT_SKIPPED (77,
 * ctest's SKIP_RETURN_CODE for these tests) when nothing ran because a test
 * called gh_skip (no GPU here) and passed nothing, else 0. A skipped test is
 * reported as skipped by ctest, never counted as passed. State lives in a gh_state
 * the test owns; header-only, static functions.
 */
#ifndef PRISM_GPU_HARNESS_H
#define PRISM_GPU_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define GH_EXIT_SKIPPED 77

typedef struct gh_state {
    int passed, failed, skipped;
    bool quiet_ok; /* print passing checks? (failures always print) */
} gh_state;

static void gh_vreport(gh_state *h, bool ok, const char *file, int line, const char *fmt,
                       va_list ap) __attribute__((format(printf, 5, 0)));

static void gh_vreport(gh_state *h, bool ok, const char *file, int line, const char *fmt,
                       va_list ap)
{
    if (ok) {
        h->passed++;
        if (h->quiet_ok)
            return;
        printf("ok   ");
    } else {
        h->failed++;
        printf("FAIL %s:%d: ", file, line);
    }
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

static bool gh_check_at(gh_state *h, bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool gh_check_at(gh_state *h, bool ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gh_vreport(h, ok, file, line, fmt, ap);
    va_end(ap);
    return ok;
}

/* GH_CHECK(h, condition, "printf-style description", ...): records and
 * prints one check; evaluates to the condition. */
#define GH_CHECK(h, cond, ...) gh_check_at((h), (cond), __FILE__, __LINE__, __VA_ARGS__)

static void gh_skip(gh_state *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void gh_skip(gh_state *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("SKIP ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    h->skipped++;
    fflush(stdout);
}

static int gh_finish(gh_state *h)
{
    printf("%d passed, %d failed, %d skipped\n", h->passed, h->failed, h->skipped);
    fflush(stdout);
    if (h->failed)
        return EXIT_FAILURE;
    return h->passed == 0 && h->skipped > 0 ? GH_EXIT_SKIPPED : EXIT_SUCCESS;
}

#endif
