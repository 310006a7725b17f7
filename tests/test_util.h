/* test_util.h - helpers shared by prism's C tests. */
#ifndef PRISM_TEST_UTIL_H
#define PRISM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Absolute path of a file under tests/data (static buffer per call site is
 * avoided: the caller passes one). */
const char *test_data_path(char *buf, size_t n, const char *name);

/* A float32 copy of a golden tensor; fails the test when missing. */
float *test_golden_f32(const st_file *f, const char *name, int64_t *numel);

/* The engine's JSON tree (engine/json.h). */
typedef struct json_value json_value;

/* The golden file's __metadata__ entry `key`, a string holding JSON, parsed
 * (json_free); fails the test when missing. */
json_value *test_golden_meta(const st_file *f, const char *key);

/* An I64 golden tensor as int32 (malloc'd); *n its length. */
int32_t *test_golden_ids(const st_file *f, const char *name, int *n);

/* Largest |a - b| over n values; NaN when either side has a NaN the other
 * lacks. */
double test_max_abs_diff(const float *a, const float *b, size_t n);

/* Makes a fresh temporary directory and copies every regular file of
 * tests/data/<src> into it; returns a malloc'd path. */
char *test_copy_model(const char *src);

/* One change to a safetensors file, for tests of damaged checkpoints. */
typedef struct test_st_edit {
    const char *drop;    /* tensor to leave out */
    const char *reshape; /* tensor whose header shape changes */
    int ndim;
    int64_t shape[4];
    bool resize_data;    /* the reshaped tensor's bytes follow its new shape (zero-padded or
                          * cut), so only the shape is wrong; else they stay as they were */
    const char *retype;  /* tensor whose dtype string changes */
    const char *dtype;
} test_st_edit;

/* Rewrites dir/model.safetensors from the original with the edit applied. */
void test_rewrite_safetensors(const char *dir, const test_st_edit *e);

/* Removes a directory made by test_copy_model and its files. */
void test_remove_dir(char *dir);

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
char *test_read_file(const char *path, size_t *len);
int test_write_file(const char *path, const void *data, size_t len);

/* Runs a shell command; returns its stdout (malloc'd) and its exit status
 * (-1 when it did not exit normally). */
char *test_run(const char *cmd, int *status);

#endif
