/* test_util.c - helpers shared by prism's C tests. */
#include "test_util.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"

const char *test_data_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", PRISM_TEST_DATA, name);
    return buf;
}

float *test_golden_f32(const st_file *f, const char *name, int64_t *numel)
{
    const st_tensor *t = st_file_find(f, name);
    ck_assert_msg(t != NULL, "golden file lacks '%s'", name);
    float *x = malloc((size_t)t->numel * sizeof *x);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(st_to_f32(x, t->data, t->dtype, (size_t)t->numel), 0);
    if (numel)
        *numel = t->numel;
    return x;
}

json_value *test_golden_meta(const st_file *f, const char *key)
{
    size_t n;
    char *buf = test_read_file(f->path, &n);
    ck_assert_ptr_nonnull(buf);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | (uint8_t)buf[i];
    char err[128];
    json_value *h = json_parse(buf + 8, (size_t)hl, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    const json_value *s = json_get(json_get(h, "__metadata__"), key);
    ck_assert_msg(s && s->type == JSON_STRING, "metadata %s", key);
    json_value *v = json_parse(s->string, s->length, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    json_free(h);
    free(buf);
    return v;
}

int32_t *test_golden_ids(const st_file *f, const char *name, int *n)
{
    const st_tensor *t = st_file_find(f, name);
    ck_assert_msg(t && t->dtype == PRISM_DT_I64, "golden %s", name);
    int32_t *x = malloc((size_t)t->numel * sizeof *x);
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, t->data + 8 * i, 8);
        x[i] = (int32_t)v;
    }
    *n = (int)t->numel;
    return x;
}

double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i]))
            return NAN;
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
    }
    return m;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

int test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

char *test_copy_model(const char *src)
{
    char tmpl[] = "/tmp/prism-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    char from[4096];
    test_data_path(from, sizeof from, src);
    DIR *d = opendir(from);
    ck_assert_msg(d != NULL, "cannot open %s", from);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char a[4600], b[4600];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", tmpl, e->d_name);
        size_t n;
        char *buf = test_read_file(a, &n);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(test_write_file(b, buf, n), 0);
        free(buf);
    }
    closedir(d);
    return strdup(tmpl);
}

void test_remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p[4600];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

char *test_run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, len = 0, r;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    while ((r = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (len + 1 == cap) {
            out = realloc(out, cap *= 2);
            ck_assert_ptr_nonnull(out);
        }
    }
    out[len] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

void test_rewrite_safetensors(const char *dir, const test_st_edit *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    prism_error err;
    st_file f;
    ck_assert_msg(st_file_open(&f, path, &err) == 0, "%s", err.msg);
    size_t cap = 1 << 20, hl = 0, dl = 0, data_cap = f.size;
    char *hdr = malloc(cap);
    uint8_t *data = malloc(data_cap);
    ck_assert(hdr && data);
    hl += (size_t)snprintf(hdr + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (e->drop && strcmp(t->name, e->drop) == 0)
            continue;
        int ndim = t->ndim;
        const int64_t *shape = t->shape;
        size_t n = t->nbytes;
        if (e->reshape && strcmp(t->name, e->reshape) == 0) {
            ndim = e->ndim;
            shape = e->shape;
            if (e->resize_data) {
                n = prism_dtype_size(t->dtype);
                for (int d = 0; d < ndim; d++)
                    n *= (size_t)shape[d];
            }
        }
        const char *dt = prism_dtype_name(t->dtype);
        if (e->retype && strcmp(t->name, e->retype) == 0)
            dt = e->dtype;
        hl += (size_t)snprintf(hdr + hl, cap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                               t->name, dt);
        for (int d = 0; d < ndim; d++)
            hl += (size_t)snprintf(hdr + hl, cap - hl, "%s%lld", d ? "," : "", (long long)shape[d]);
        hl += (size_t)snprintf(hdr + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", dl, dl + n);
        if (dl + n > data_cap) {
            data = realloc(data, data_cap = 2 * (dl + n));
            ck_assert_ptr_nonnull(data);
        }
        memset(data + dl, 0, n);
        memcpy(data + dl, t->data, n < t->nbytes ? n : t->nbytes);
        dl += n;
    }
    hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
    st_file_close(&f);
    FILE *o = fopen(path, "wb");
    ck_assert_ptr_nonnull(o);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    ck_assert(fwrite(len, 1, 8, o) == 8 && fwrite(hdr, 1, hl, o) == hl &&
              fwrite(data, 1, dl, o) == dl);
    fclose(o);
    free(hdr);
    free(data);
}
