/* safetensors.h - memory-mapped safetensors files and sharded checkpoints.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON mapping tensor names to {dtype, shape, data_offsets}, then the raw
 * data. st_file_open maps the file read-only and validates every header
 * entry (known dtype, shape product × element size == byte range, range
 * inside the file), so later code can trust each st_tensor it is given.
 *
 * st_weights is a whole checkpoint: one model.safetensors, or the shards
 * listed by model.safetensors.index.json. Tensor data is never copied here.
 * st_weights_require is the gate every weight a model uses passes through:
 * besides name, shape and dtype it refuses a tensor holding NaN or ±Inf
 * (one linear pass over its bytes), so a damaged checkpoint fails at load
 * instead of serving NaN embeddings.
 */
#ifndef PRISM_SAFETENSORS_H
#define PRISM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"

typedef enum prism_dtype {
    PRISM_DT_F32,
    PRISM_DT_F16,
    PRISM_DT_BF16,
    PRISM_DT_F64,
    PRISM_DT_I64,
    PRISM_DT_I32,
    PRISM_DT_I16,
    PRISM_DT_I8,
    PRISM_DT_U8,
    PRISM_DT_BOOL,
    PRISM_DT_OTHER8, /* 1-byte types we carry but never compute with (F8_*) */
} prism_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    prism_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; /* points into the mapping */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    char *path;
    uint8_t *map;
    size_t size;
    st_tensor *tensors;
    int n_tensors;
} st_file;

const char *prism_dtype_name(prism_dtype dt);
size_t prism_dtype_size(prism_dtype dt);

int st_file_open(st_file *f, const char *path, prism_error *err);
void st_file_close(st_file *f);
const st_tensor *st_file_find(const st_file *f, const char *name);

/* Converts n elements of an F32/F16/BF16 tensor to float. */
int st_to_f32(float *dst, const void *src, prism_dtype dt, size_t n);
float prism_bf16_to_f32(uint16_t h);
float prism_f16_to_f32(uint16_t h);

/* The flat index of the first NaN or ±Inf among the n values of an
 * F32/F16/BF16 array (an all-ones exponent field), or -1 when every value is
 * finite (and for any other dtype). One linear pass, no allocation. */
int64_t st_first_nonfinite(const void *src, prism_dtype dt, size_t n);

typedef struct st_weights {
    char *dir;
    st_file *files;
    int n_files;
    /* a view's renaming (st_weights_view): a looked-up name that starts
     * with `strip` has it replaced by `prefix`; NULL: names as given */
    const char *strip, *prefix;
} st_weights;

/* Opens DIR/model.safetensors, or the shards named by
 * DIR/model.safetensors.index.json when that exists. */
int st_weights_open(st_weights *w, const char *dir, prism_error *err);
void st_weights_close(st_weights *w);

/* A view of w for one model nested in another's checkpoint: a lookup of
 * STRIP REST finds PREFIX REST (PaliGemma's SigLIP asks for
 * "vision_model.X" and finds "vision_tower.X": strip "vision_model.",
 * prefix "vision_tower."; strip "" puts the prefix before every name; a
 * name without STRIP is looked up as it is). It shares w's files: never
 * close it; it is valid while w is open; the strings are not copied. */
st_weights st_weights_view(const st_weights *w, const char *strip, const char *prefix);

/* Finds a tensor by name in any shard; *file gets the shard's path. */
const st_tensor *st_weights_find(const st_weights *w, const char *name,
                                 const char **file);

/* Looks up a tensor that must exist with exactly the given shape and a
 * floating dtype (F32/F16/BF16), every value finite; fills err naming the
 * file and the tensor otherwise (and both shapes, or the first non-finite
 * value's flat index). */
const st_tensor *st_weights_require(const st_weights *w, const char *name,
                                    int ndim, const int64_t *shape,
                                    prism_error *err);

#endif
