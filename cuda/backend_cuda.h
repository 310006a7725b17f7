/* backend_cuda.h - the CUDA backend's C API (the ops themselves are reached
 * through engine/backend.h's table).
 *
 * A CUDA backend owns one device context user, one stream, one cuBLAS and
 * one cuBLASLt handle, a GEMM workspace and a conversion scratch buffer;
 * all of it lives in be->impl (no global state). Matrix weights are kept on
 * the device as BF16 (default), F16 or F32; every other tensor is float32.
 * Device memory is allocated only by alloc/weight_import (load time) and by
 * the GEMM-rate measurement; ops never allocate (see docs/cuda.md).
 *
 * Everything here is plain C and usable from C; the implementation is in
 * .cu files compiled by nvcc. Functions that take a backend must be given
 * one made by prism_cuda_backend_create.
 */
#ifndef PRISM_BACKEND_CUDA_H
#define PRISM_BACKEND_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "prism_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is no GPU, no driver, or the
 * driver is too old for this build (never crashes, never aborts). */
int prism_cuda_device_count(void);

/* Creates a backend on `device` whose matrix weights are stored as
 * `weight_dtype` (PRISM_DT_BF16, PRISM_DT_F16 or PRISM_DT_F32 from
 * safetensors.h). GEMMs always accumulate in float32; with F32 weights they
 * are exact float32 (no TF32). `arena_hint` is the minimum size in bytes of
 * the activation-conversion scratch buffer (0: grown automatically by each
 * alloc so that any allocated buffer can be converted). Returns NULL with a
 * message in err when the device, its memory or a library is unavailable. */
prism_backend *prism_cuda_backend_create(int device, int weight_dtype, size_t arena_hint,
                                         prism_error *err);

/* The message of the last failed op, allocation or import on this backend
 * ("" when none failed yet). Messages name the file and line of the failed
 * CUDA or cuBLAS call. */
const char *prism_cuda_last_error(const prism_backend *be);

/* The device's name ("NVIDIA H100 80GB HBM3") and compute capability. */
const char *prism_cuda_device_name(const prism_backend *be);
int prism_cuda_compute_capability(const prism_backend *be); /* e.g. 90 */

/* Weight dtype of this backend (PRISM_DT_BF16, PRISM_DT_F16, PRISM_DT_F32). */
int prism_cuda_weight_dtype(const prism_backend *be);

/* Device memory: bytes this backend holds (allocations + weights + its own
 * buffers), and the device's free/total bytes (cudaMemGetInfo). */
size_t prism_cuda_bytes_in_use(const prism_backend *be);
int prism_cuda_mem_info(prism_backend *be, size_t *free_bytes, size_t *total_bytes);

/* GEMM paths, for tests: AUTO uses cuBLASLt with a fused bias epilogue where
 * a plan exists and falls back to cublasGemmEx + a bias/activation kernel;
 * GEMMEX always takes the fallback. */
enum { PRISM_CUDA_GEMM_AUTO = 0, PRISM_CUDA_GEMM_GEMMEX = 1 };
void prism_cuda_set_gemm_path(prism_backend *be, int path);

/* Attention paths, for tests and benchmarks: AUTO uses the tensor-core
 * kernels on BF16/F16 backends for head dims ≥ 16 (q, k, v and the
 * probabilities rounded to the weight dtype, float32 sums) — the one with
 * K/V resident in shared memory where the keys fit (Tk ≤ 336 at d ≤ 64,
 * 176 at d ≤ 128), the tiled one beyond — and the float32 kernel
 * otherwise; TILED always takes the tiled tensor-core kernel (same
 * condition), SIMT always the float32 kernel. The environment variable
 * PRISM_CUDA_ATTENTION=tiled|simt sets a new backend's default. */
enum { PRISM_CUDA_ATTN_AUTO = 0, PRISM_CUDA_ATTN_SIMT = 1, PRISM_CUDA_ATTN_TILED = 2 };
void prism_cuda_set_attention_path(prism_backend *be, int path);

/* How many matmul inputs this backend has converted to its weight dtype
 * (one conversion pass each) since it was created, for tests: an input
 * that the op which wrote it also wrote in the weight dtype (layernorm,
 * rmsnorm, attention, mul, matmul's activation pass) is not converted
 * again. 0 on F32 backends, which convert nothing. */
unsigned long long prism_cuda_conversions(const prism_backend *be);

/* Measures the GEMM rate of this backend's matmul path in TFLOP/s:
 * y[M,N] (float32) = x[M,K]·w[N,K]ᵀ with x and w in the weight dtype and
 * float32 accumulation, best over repeated runs for at least min_seconds
 * (CUDA events). Allocates its own operands (not for the request path).
 * Returns < 0 on failure (message in prism_cuda_last_error). */
double prism_cuda_gemm_tflops(prism_backend *be, int M, int N, int K, double min_seconds);

/* Page-locked host memory, for callers that upload large inputs often
 * (uploads from it run at full PCIe speed without a staging copy). NULL on
 * failure. Free with prism_cuda_host_free. */
void *prism_cuda_host_alloc(prism_backend *be, size_t bytes);
void prism_cuda_host_free(prism_backend *be, void *p);

#ifdef __cplusplus
}
#endif

#endif
