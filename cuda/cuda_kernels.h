/* cuda_kernels.h - launchers for the CUDA backend's own kernels (kernels.cu).
 *
 * Private to cuda/ and included only by .cu files. Each launcher enqueues
 * its kernel on `stream` and returns the launch status (cudaGetLastError
 * right after the launch), or cudaErrorInvalidValue for arguments a kernel
 * cannot take (the caller turns either into a message with file and line).
 *
 * Shapes are the ones of engine/backend.h; every tensor is float32 except
 * the "shadow" outputs: an optional BF16/F16 copy of an op's output,
 * written in the same pass, that the next matmul uses as its converted
 * input (see backend_cuda.cu, "conversion cache").
 */
#ifndef PRISM_CUDA_KERNELS_H
#define PRISM_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "backend.h"

/* Element type of a shadow / converted copy. */
enum cuda_half_kind { HALF_NONE = 0, HALF_BF16 = 1, HALF_F16 = 2 };

/* dst[i] = (bf16|f16) src[i], round to nearest even. */
cudaError_t k_convert(void *dst, int kind, const float *src, size_t n, cudaStream_t stream);

/* Host data in F32/F16/BF16 (as prism_dtype) → device dst in `kind`
 * (HALF_NONE = float32), on the device: src_dev holds the raw bytes. */
cudaError_t k_convert_raw(void *dst, int dst_kind, const void *src_dev, int src_dtype, size_t n,
                          cudaStream_t stream);

/* y[m,n] = act(y[m,n] + bias[n]) for m < M, n < N (bias may be NULL);
 * shadow (kind != HALF_NONE) gets the result in half precision too. */
cudaError_t k_bias_act(float *y, const float *bias, size_t M, int N, prism_act act, void *shadow,
                       int kind, cudaStream_t stream);

cudaError_t k_layernorm(float *y, const float *x, const float *g, const float *b, int rows,
                        int cols, float eps, void *shadow, int kind, cudaStream_t stream);
/* x += h, then y = layernorm(x) (y may alias x or h), in one pass. */
cudaError_t k_add_layernorm(float *x, const float *h, float *y, const float *g, const float *b,
                            int rows, int cols, float eps, void *shadow, int kind,
                            cudaStream_t stream);
cudaError_t k_rmsnorm(float *y, const float *x, const float *g, int rows, int cols, float eps,
                      void *shadow, int kind, cudaStream_t stream);
cudaError_t k_l2_normalize(float *x, int rows, int cols, cudaStream_t stream);
cudaError_t k_softmax(float *x, int rows, int cols, cudaStream_t stream);

cudaError_t k_add(float *y, const float *a, const float *b, size_t n, cudaStream_t stream);
/* y = a·b elementwise; shadow (kind != HALF_NONE) gets y in half precision. */
cudaError_t k_mul(float *y, const float *a, const float *b, size_t n, void *shadow, int kind,
                  cudaStream_t stream);
cudaError_t k_activate(float *x, size_t n, prism_act act, cudaStream_t stream);

cudaError_t k_patchify(float *out, const float *img, int B, int C, int S, int P,
                       cudaStream_t stream);
cudaError_t k_embedding(float *out, const float *table, const int32_t *ids, int n, int dim,
                        cudaStream_t stream);
cudaError_t k_add_rows(float *y, const float *rows, int n_rows, int period, int cols,
                       cudaStream_t stream);
cudaError_t k_gather_rows(float *out, const float *x, int n, int64_t stride, int64_t offset,
                          int cols, cudaStream_t stream);

/* Generation ops, as engine/backend.h: T5 relative-position bias gather,
 * strided row copy, and per-row top-k (one block per row; ties and NaN
 * ordered as the reference; log_softmax != 0 turns values into
 * log-probabilities; val may be NULL). */
cudaError_t k_rel_bias(float *out, const float *weight, const int32_t *buckets, int rel0, int H,
                       int Tq, int Tk, int q_offset, cudaStream_t stream);
cudaError_t k_copy_rows(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int n,
                        int cols, cudaStream_t stream);
cudaError_t k_topk(int32_t *idx, float *val, const float *x, int rows, int cols, int k,
                   int log_softmax, cudaStream_t stream);

/* Largest head dimension the attention kernel takes (Gemma's 256; the
 * tensor-core kernels take up to 128, wider heads run the float32 one). */
#define CUDA_ATTN_MAX_D 256

/* Fused attention (online softmax). tc_kind HALF_NONE: float32 throughout
 * on the CUDA cores; HALF_BF16 / HALF_F16: q, k, v and the probabilities
 * rounded to that type for mma.sync tensor-core products (sm_80+), sums in
 * float32. shadow, when kind != HALF_NONE, receives the output in half
 * precision at the same offsets (the caller passes it only when out's rows
 * are contiguous). flash != 0 (tensor cores, d ≥ 16) tries the kernel with
 * every key and value of a block resident in shared memory first and takes
 * the tiled tensor-core kernel where the rows do not fit. */
cudaError_t k_attention(float *out, const float *q, const float *k, const float *v,
                        const prism_attn_desc *a, void *shadow, int kind, int tc_kind,
                        int flash, cudaStream_t stream);

/* Fills n values of `kind` (HALF_NONE = float32) with a deterministic
 * pseudo-random pattern in [-1, 1) (benchmark operands; never zeros). */
cudaError_t k_fill_pattern(void *dst, int kind, size_t n, uint32_t seed, cudaStream_t stream);

#endif
