/* safetensors.c - read-only mapping and validation of safetensors files. */
#include "safetensors.h"

#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is refused: real headers are a few hundred KB. */
#define ST_MAX_HEADER (100u << 20)

static const struct {
    const char *name;
    prism_dtype dtype;
    size_t size;
} dtype_table[] = {
    {"F32", PRISM_DT_F32, 4},     {"F16", PRISM_DT_F16, 2},
    {"BF16", PRISM_DT_BF16, 2},   {"F64", PRISM_DT_F64, 8},
    {"I64", PRISM_DT_I64, 8},     {"I32", PRISM_DT_I32, 4},
    {"I16", PRISM_DT_I16, 2},     {"I8", PRISM_DT_I8, 1},
    {"U8", PRISM_DT_U8, 1},       {"BOOL", PRISM_DT_BOOL, 1},
    {"F8_E4M3", PRISM_DT_OTHER8, 1}, {"F8_E5M2", PRISM_DT_OTHER8, 1},
};

const char *prism_dtype_name(prism_dtype dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].dtype == dt)
            return dtype_table[i].name;
    return "?";
}

size_t prism_dtype_size(prism_dtype dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].dtype == dt)
            return dtype_table[i].size;
    return 0;
}

static int dtype_parse(const char *s, prism_dtype *dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(dtype_table[i].name, s) == 0) {
            *dt = dtype_table[i].dtype;
            return 0;
        }
    return -1;
}

float prism_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float prism_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            u = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | man << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int st_to_f32(float *dst, const void *src, prism_dtype dt, size_t n)
{
    const uint8_t *p = src;
    switch (dt) {
    case PRISM_DT_F32:
        memcpy(dst, src, n * sizeof(float));
        return 0;
    case PRISM_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = prism_f16_to_f32(h);
        }
        return 0;
    case PRISM_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = prism_bf16_to_f32(h);
        }
        return 0;
    default:
        return -1;
    }
}

/* Non-finite scan: a value is NaN or ±Inf exactly when its exponent field
 * is all ones. Blocks are OR-reduced without a branch per value (the loop
 * vectorises); only a block that has one is searched for its index. */
#define ST_SCAN_BLOCK 4096

static bool block_nonfinite_16(const uint8_t *p, size_t n, uint16_t exp_mask)
{
    unsigned any = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        any |= (h & exp_mask) == exp_mask;
    }
    return any != 0;
}

static bool block_nonfinite_32(const uint8_t *p, size_t n)
{
    unsigned any = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        any |= (u & 0x7F800000u) == 0x7F800000u;
    }
    return any != 0;
}

static bool value_nonfinite(const uint8_t *p, prism_dtype dt, size_t i)
{
    if (dt == PRISM_DT_F32)
        return block_nonfinite_32(p + 4 * i, 1);
    return block_nonfinite_16(p + 2 * i, 1, dt == PRISM_DT_F16 ? 0x7C00 : 0x7F80);
}

int64_t st_first_nonfinite(const void *src, prism_dtype dt, size_t n)
{
    if (dt != PRISM_DT_F32 && dt != PRISM_DT_F16 && dt != PRISM_DT_BF16)
        return -1;
    const uint8_t *p = src;
    const size_t es = prism_dtype_size(dt);
    for (size_t b = 0; b < n; b += ST_SCAN_BLOCK) {
        const size_t k = n - b < ST_SCAN_BLOCK ? n - b : ST_SCAN_BLOCK;
        const bool any = dt == PRISM_DT_F32   ? block_nonfinite_32(p + es * b, k)
                         : dt == PRISM_DT_F16 ? block_nonfinite_16(p + es * b, k, 0x7C00)
                                              : block_nonfinite_16(p + es * b, k, 0x7F80);
        if (!any)
            continue;
        for (size_t i = b; i < b + k; i++)
            if (value_nonfinite(p, dt, i))
                return (int64_t)i;
    }
    return -1;
}

static int json_get_u64(const json_value *v, uint64_t *out)
{
    if (!v || v->type != JSON_NUMBER || !v->is_integer || v->integer < 0)
        return -1;
    *out = (uint64_t)v->integer;
    return 0;
}

static int parse_entry(st_file *f, const char *name, const json_value *e, st_tensor *t,
                       size_t data_size, uint64_t *begin, prism_error *err)
{
    const json_value *jd = json_get(e, "dtype");
    const json_value *js = json_get(e, "shape");
    const json_value *jo = json_get(e, "data_offsets");
    if (!jd || jd->type != JSON_STRING || !js || js->type != JSON_ARRAY || !jo ||
        jo->type != JSON_ARRAY || jo->count != 2)
        return prism_errorf(err, "%s: malformed header entry for tensor '%s' "
                            "(needs dtype, shape and data_offsets)", f->path, name);
    if (dtype_parse(jd->string, &t->dtype))
        return prism_errorf(err, "%s: tensor '%s' has unknown dtype '%.32s'",
                            f->path, name, jd->string);
    size_t nd = js->count;
    if (nd > ST_MAX_DIMS)
        return prism_errorf(err, "%s: tensor '%s' has %zu dimensions (at most %d)",
                            f->path, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_get_u64(&js->items[i], &d))
            return prism_errorf(err, "%s: tensor '%s' has a non-integer or negative dimension",
                                f->path, name);
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > (uint64_t)INT64_MAX / d)
            return prism_errorf(err, "%s: tensor '%s' shape overflows", f->path, name);
        numel *= d;
    }
    uint64_t b, en;
    if (json_get_u64(&jo->items[0], &b) || json_get_u64(&jo->items[1], &en))
        return prism_errorf(err, "%s: tensor '%s' has invalid data_offsets", f->path, name);
    size_t es = prism_dtype_size(t->dtype);
    if (numel > SIZE_MAX / es)
        return prism_errorf(err, "%s: tensor '%s' is too large", f->path, name);
    if (b > en || en > data_size)
        return prism_errorf(err, "%s: tensor '%s' data [%llu, %llu) lies outside the "
                            "file's %zu data bytes (truncated file?)", f->path, name,
                            (unsigned long long)b, (unsigned long long)en, data_size);
    if (en - b != numel * es)
        return prism_errorf(err, "%s: tensor '%s' occupies %llu bytes but its shape and "
                            "dtype need %llu", f->path, name, (unsigned long long)(en - b),
                            (unsigned long long)(numel * es));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(en - b);
    *begin = b;
    t->name = strdup(name);
    if (!t->name)
        return prism_errorf(err, "out of memory");
    return 0;
}

int st_file_open(st_file *f, const char *path, prism_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return prism_errorf(err, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        prism_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        close(fd);
        prism_errorf(err, "%s: not a regular file", path);
        goto fail;
    }
    if (stt.st_size < 8) {
        close(fd);
        prism_errorf(err, "%s: file is %lld bytes, too short for a safetensors header",
                     path, (long long)stt.st_size);
        goto fail;
    }
    f->size = (size_t)stt.st_size;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        prism_errorf(err, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    f->map = m;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f->map[i];
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8) {
        prism_errorf(err, "%s: header length %llu exceeds the file (%zu bytes): "
                     "truncated or not a safetensors file", path,
                     (unsigned long long)hlen, f->size);
        goto fail;
    }
    char jerr[160];
    json_value *root = json_parse((const char *)f->map + 8, (size_t)hlen, jerr, sizeof jerr);
    if (!root || root->type != JSON_OBJECT) {
        prism_errorf(err, "%s: malformed JSON header: %s", path, root ? "not an object" : jerr);
        json_free(root);
        goto fail;
    }
    size_t data_size = f->size - 8 - (size_t)hlen;
    const uint8_t *data = f->map + 8 + hlen;
    f->tensors = calloc(root->count + 1, sizeof *f->tensors);
    if (!f->tensors) {
        json_free(root);
        prism_errorf(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < root->count; i++) {
        const char *key = root->keys[i];
        if (strcmp(key, "__metadata__") == 0)
            continue;
        if (st_file_find(f, key)) {
            prism_errorf(err, "%s: tensor '%s' appears twice in the header", path, key);
            json_free(root);
            goto fail;
        }
        st_tensor *t = &f->tensors[f->n_tensors];
        uint64_t begin = 0;
        if (parse_entry(f, key, &root->items[i], t, data_size, &begin, err)) {
            json_free(root);
            goto fail;
        }
        t->data = data + begin;
        f->n_tensors++;
    }
    json_free(root);
    return 0;
fail:
    st_file_close(f);
    return -1;
}

void st_file_close(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    if (f->map)
        munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_file_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int shard_name_ok(const char *s)
{
    return s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL && strlen(s) < 256;
}

static int open_sharded(st_weights *w, const char *index_path, prism_error *err)
{
    char jerr[512];
    json_value *root = json_parse_file(index_path, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s", jerr);
    const json_value *map = json_get(root, "weight_map");
    if (!map || map->type != JSON_OBJECT || map->count == 0) {
        json_free(root);
        return prism_errorf(err, "%s: missing or empty \"weight_map\" object", index_path);
    }
    /* Distinct shard names, in first-seen order. */
    const char **names = calloc(map->count, sizeof *names);
    w->files = calloc(map->count, sizeof *w->files);
    if (!names || !w->files) {
        free(names);
        json_free(root);
        return prism_errorf(err, "out of memory");
    }
    int n = 0, rc = 0;
    for (size_t k = 0; k < map->count; k++) {
        const char *key = map->keys[k];
        const json_value *val = &map->items[k];
        if (val->type != JSON_STRING || !shard_name_ok(val->string)) {
            rc = prism_errorf(err, "%s: weight_map entry for tensor '%s' is not a plain "
                              "file name", index_path, key);
            break;
        }
        const char *s = val->string;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], s) == 0;
        if (!seen)
            names[n++] = s;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        char *p = path_join(w->dir, names[i]);
        if (!p) {
            rc = prism_errorf(err, "out of memory");
            break;
        }
        rc = st_file_open(&w->files[w->n_files], p, err);
        free(p);
        if (rc == 0)
            w->n_files++;
    }
    /* Every tensor the index names must be in the shard it names. */
    for (size_t k = 0; rc == 0 && k < map->count; k++) {
        const char *key = map->keys[k], *s = map->items[k].string;
        for (int i = 0; i < w->n_files; i++) {
            const char *base = strrchr(w->files[i].path, '/') + 1;
            if (strcmp(base, s) == 0 && !st_file_find(&w->files[i], key)) {
                rc = prism_errorf(err, "%s: tensor '%s' is listed in the index but "
                                  "missing from this shard", w->files[i].path, key);
                break;
            }
        }
    }
    free(names);
    json_free(root);
    return rc;
}

int st_weights_open(st_weights *w, const char *dir, prism_error *err)
{
    memset(w, 0, sizeof *w);
    w->dir = strdup(dir);
    char *index = path_join(dir, "model.safetensors.index.json");
    char *single = path_join(dir, "model.safetensors");
    int rc;
    if (!w->dir || !index || !single) {
        rc = prism_errorf(err, "out of memory");
    } else if (access(index, F_OK) == 0) {
        rc = open_sharded(w, index, err);
    } else if (access(single, F_OK) == 0) {
        w->files = calloc(1, sizeof *w->files);
        rc = w->files ? st_file_open(&w->files[0], single, err) : prism_errorf(err, "out of memory");
        if (rc == 0)
            w->n_files = 1;
    } else {
        rc = prism_errorf(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    free(index);
    free(single);
    if (rc)
        st_weights_close(w);
    return rc;
}

void st_weights_close(st_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n_files; i++)
        st_file_close(&w->files[i]);
    free(w->files);
    free(w->dir);
    memset(w, 0, sizeof *w);
}

st_weights st_weights_view(const st_weights *w, const char *strip, const char *prefix)
{
    st_weights v = *w;
    v.strip = strip;
    v.prefix = prefix;
    return v;
}

/* The name a view looks up for `name` (into buf), or name itself. */
static const char *view_name(const st_weights *w, const char *name, char *buf, size_t n)
{
    if (!w->prefix)
        return name;
    const size_t k = w->strip ? strlen(w->strip) : 0;
    if (k && strncmp(name, w->strip, k) != 0)
        return name;
    if ((size_t)snprintf(buf, n, "%s%s", w->prefix, name + k) >= n)
        return NULL;
    return buf;
}

const st_tensor *st_weights_find(const st_weights *w, const char *name, const char **file)
{
    char full[512];
    if (!(name = view_name(w, name, full, sizeof full)))
        return NULL;
    for (int i = 0; i < w->n_files; i++) {
        const st_tensor *t = st_file_find(&w->files[i], name);
        if (t) {
            if (file)
                *file = w->files[i].path;
            return t;
        }
    }
    return NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n)
        snprintf(buf + off, n - off, "]");
}

const st_tensor *st_weights_require(const st_weights *w, const char *name, int ndim,
                                    const int64_t *shape, prism_error *err)
{
    const char *file = NULL;
    const st_tensor *t = st_weights_find(w, name, &file);
    char full[512];
    const char *shown = view_name(w, name, full, sizeof full);
    if (!t) {
        prism_errorf(err, "%s: tensor '%s' is missing from the checkpoint",
                     w->n_files == 1 ? w->files[0].path : w->dir, shown ? shown : name);
        return NULL;
    }
    name = shown ? shown : name;
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        prism_errorf(err, "%s: tensor '%s' has shape %s, but config.json implies %s",
                     file, name, got, want);
        return NULL;
    }
    if (t->dtype != PRISM_DT_F32 && t->dtype != PRISM_DT_F16 && t->dtype != PRISM_DT_BF16) {
        prism_errorf(err, "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 weights "
                     "are supported", file, name, prism_dtype_name(t->dtype));
        return NULL;
    }
    const int64_t bad = st_first_nonfinite(t->data, t->dtype, (size_t)t->numel);
    if (bad >= 0) {
        float v;
        st_to_f32(&v, t->data + (size_t)bad * prism_dtype_size(t->dtype), t->dtype, 1);
        prism_errorf(err, "%s: tensor '%s' holds %s at flat index %lld (the first non-finite "
                     "value; weights must be finite)", file, name,
                     isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", (long long)bad);
        return NULL;
    }
    return t;
}
