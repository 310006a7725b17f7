/* backend_cpu_impl.h - private to the CPU backend: what the reference table
 * (backend_cpu_ref.c) and the fast table (backend_cpu.c) share. */
#ifndef PRISM_BACKEND_CPU_IMPL_H
#define PRISM_BACKEND_CPU_IMPL_H

#include <stdlib.h>

#include "backend.h"

extern const prism_backend_ops cpu_ref_ops;
extern const prism_backend_ops cpu_fast_ops;

/* The activation in double precision: the oracle's definition. */
double cpu_act_ref(double x, prism_act act);

void cpu_destroy(prism_backend *be);
void *cpu_alloc(prism_backend *be, size_t bytes);
void cpu_free(prism_backend *be, void *p);
int cpu_memory_info(prism_backend *be, prism_backend_memory *m);
int cpu_copy(prism_backend *be, void *dst, const void *src, size_t bytes);
int cpu_synchronize(prism_backend *be);
const void *cpu_weight_import(prism_backend *be, const void *src, int dt, size_t n,
                              bool matrix, bool *owned);

/* Data-movement ops have one implementation on the CPU (no arithmetic to get
 * wrong twice); they are parallel when be->n_threads > 1. */
int cpu_patchify(prism_backend *be, float *out, const float *img, int B, int C, int S, int P);
int cpu_embedding(prism_backend *be, float *out, const float *table, const int32_t *ids, int n,
                  int dim);
int cpu_add_rows(prism_backend *be, float *y, const float *rows, int n_rows, int period,
                 int cols);
int cpu_gather_rows(prism_backend *be, float *out, const float *x, int n, int64_t stride,
                    int64_t offset, int cols);

/* Each table is generated from backend_ops.def as .op = ref_op / fast_op;
 * these names are the shared functions above. */
#define ref_patchify cpu_patchify
#define ref_embedding cpu_embedding
#define ref_add_rows cpu_add_rows
#define ref_gather_rows cpu_gather_rows
#define fast_patchify cpu_patchify
#define fast_embedding cpu_embedding
#define fast_add_rows cpu_add_rows
#define fast_gather_rows cpu_gather_rows

#endif
