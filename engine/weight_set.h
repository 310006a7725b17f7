/* weight_set.h - checkpoint tensors imported into a backend, and what that
 * import owns.
 *
 * Every model (siglip.c, t5.c, pali.c) loads its tensors through one
 * weight_set: each tensor is checked against the shape its config implies
 * (st_weights_require: missing, mis-shaped or non-float tensors, and
 * tensors holding NaN or ±Inf, are errors naming the file and the tensor),
 * imported with the backend's
 * weight_import, and counted; every copy made on the way (a backend's
 * converted weights, host buffers for fused tensors that a backend may use
 * in place) is released by ws_release.
 */
#ifndef PRISM_WEIGHT_SET_H
#define PRISM_WEIGHT_SET_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "prism_error.h"
#include "safetensors.h"

typedef struct weight_set {
    prism_backend *be;
    const st_weights *w;
    void **owned;         /* backend memory, released with ops->free */
    int n_owned, cap_owned;
    void **host;          /* host memory a backend may alias, released with free() */
    int n_host, cap_host;
    int64_t n_params;     /* values in the tensors used, each tensor counted once */
    int64_t n_tensors;    /* tensors used */
    int64_t bytes_by_dtype[3]; /* F32, F16, BF16 bytes on disk of the tensors used */
    int64_t bytes_imported;    /* float32 bytes made at load (conversions, fused copies) */
} weight_set;

void ws_init(weight_set *s, prism_backend *be, const st_weights *w);
void ws_release(weight_set *s);

/* Imports tensor `name` (shape checked against ndim/shape), or its outer
 * rows [first, first + count) (count < 0: all; the tensor is counted when
 * first == 0). `matrix`: the result is only ever matmul's w (see
 * backend.h). NULL with err filled on failure. */
const void *ws_load(weight_set *s, const char *name, int ndim, const int64_t *shape, bool matrix,
                    int64_t first, int64_t count, prism_error *err);

/* Imports the concatenation of n same-shaped tensors along their outer
 * dimension as one weight (fused q;k;v projections); n == 1 is ws_load of
 * the whole tensor, without a copy where the backend allows. */
const void *ws_load_cat(weight_set *s, const char *const *names, int n, int ndim,
                        const int64_t *shape, bool matrix, prism_error *err);

#endif
