/* weight_set.c - importing checkpoint tensors into a backend (weight_set.h). */
#include "weight_set.h"

#include <stdlib.h>
#include <string.h>

void ws_init(weight_set *s, prism_backend *be, const st_weights *w)
{
    memset(s, 0, sizeof *s);
    s->be = be;
    s->w = w;
}

void ws_release(weight_set *s)
{
    for (int i = 0; i < s->n_owned; i++)
        s->be->ops->free(s->be, s->owned[i]);
    free(s->owned);
    for (int i = 0; i < s->n_host; i++)
        free(s->host[i]);
    free(s->host);
    s->owned = s->host = NULL;
    s->n_owned = s->n_host = s->cap_owned = s->cap_host = 0;
}

static int push_ptr(void ***list, int *n, int *cap, void *p)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 32;
        void **l = realloc(*list, (size_t)c * sizeof *l);
        if (!l)
            return -1;
        *list = l;
        *cap = c;
    }
    (*list)[(*n)++] = p;
    return 0;
}

static void count(weight_set *s, const st_tensor *t)
{
    s->n_params += t->numel;
    s->n_tensors++;
    if (t->dtype <= PRISM_DT_BF16)
        s->bytes_by_dtype[t->dtype] += (int64_t)t->nbytes;
}

/* weight_import, keeping what it allocates. */
static const void *import(weight_set *s, const void *src, int dt, size_t n, bool matrix,
                          const char *name, prism_error *err)
{
    bool owned = false;
    const void *p = s->be->ops->weight_import(s->be, src, dt, n, matrix, &owned);
    if (!p) {
        prism_errorf(err, "%s: cannot import tensor '%s' into the %s backend", s->w->dir, name,
                     s->be->ops->name);
        return NULL;
    }
    if (owned) {
        if (push_ptr(&s->owned, &s->n_owned, &s->cap_owned, (void *)p)) {
            s->be->ops->free(s->be, (void *)p);
            prism_errorf(err, "out of memory");
            return NULL;
        }
        s->bytes_imported += (int64_t)(n * sizeof(float));
    }
    return p;
}

const void *ws_load(weight_set *s, const char *name, int ndim, const int64_t *shape, bool matrix,
                    int64_t first, int64_t count_rows, prism_error *err)
{
    const st_tensor *t = st_weights_require(s->w, name, ndim, shape, err);
    if (!t)
        return NULL;
    const int64_t row = shape[0] ? t->numel / shape[0] : 0;
    if (count_rows < 0)
        count_rows = shape[0];
    if (first == 0)
        count(s, t);
    const uint8_t *src = t->data + (size_t)(first * row) * prism_dtype_size(t->dtype);
    return import(s, src, t->dtype, (size_t)(count_rows * row), matrix, name, err);
}

const void *ws_load_cat(weight_set *s, const char *const *names, int n, int ndim,
                        const int64_t *shape, bool matrix, prism_error *err)
{
    if (n == 1)
        return ws_load(s, names[0], ndim, shape, matrix, 0, -1, err);
    const st_tensor *t[8];
    if (n < 1 || n > 8) {
        prism_errorf(err, "ws_load_cat: %d tensors (1 to 8)", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!(t[i] = st_weights_require(s->w, names[i], ndim, shape, err)))
            return NULL;
    const size_t each = (size_t)t[0]->numel;
    float *host = malloc((size_t)n * each * sizeof *host);
    if (!host || push_ptr(&s->host, &s->n_host, &s->cap_host, host)) {
        free(host);
        prism_errorf(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        st_to_f32(host + i * each, t[i]->data, t[i]->dtype, each);
        count(s, t[i]);
    }
    s->bytes_imported += (int64_t)((size_t)n * each * sizeof *host);
    return import(s, host, PRISM_DT_F32, (size_t)n * each, matrix, names[0], err);
}
