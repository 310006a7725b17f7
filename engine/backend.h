/* backend.h - the engine's compute backend interface.
 *
 * A backend is a small table of function pointers (the ggml-backend idea,
 * much smaller): memory (alloc/free/upload/download), weight import, and the
 * ops the models need, listed once, each with its contract, in
 * backend_ops.def. Model code (siglip.c, later t5.c and pali.c) is written
 * once against this table; the CPU backend (backend_cpu.c) and the CUDA
 * backend (cuda/) fill it in.
 *
 * Conventions, shared by every implementation:
 *   - Tensors are dense row-major float32 in backend memory; shapes are
 *     passed as integers. Weights are stored [out, in] as in PyTorch, so
 *     matmul computes y = x·Wᵀ + b.
 *   - Every op returns 0 or -1 (a device error); ops never abort.
 *   - An optional op may be NULL; callers check before use.
 */
#ifndef PRISM_BACKEND_H
#define PRISM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_error.h"

typedef enum prism_act {
    PRISM_ACT_NONE,
    PRISM_ACT_GELU_TANH, /* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
    PRISM_ACT_GELU_ERF,  /* 0.5·x·(1 + erf(x/√2)) */
    PRISM_ACT_RELU,
    PRISM_ACT_SILU,      /* x·sigmoid(x) */
} prism_act;

/* Scaled dot-product attention over B batches and H heads.
 * q row (b, i, head h) starts at q + b·q_bstride + i·q_stride + h·d, and
 * likewise for k, v and out. A batch stride of 0 broadcasts one sequence to
 * every batch (the SigLIP pooling probe). */
typedef struct prism_attn_desc {
    int B, H, Tq, Tk, d;
    int64_t q_stride, k_stride, v_stride, o_stride;
    int64_t q_bstride, k_bstride, v_bstride, o_bstride;
    float scale;            /* multiplies q·kᵀ (1/√d for SigLIP, 1 for T5) */
    const float *bias;      /* optional additive [H, Tq, Tk], shared by batches */
    const float *key_mask;  /* optional additive [B, Tk] (0 or -inf style) */
    bool causal;            /* key j > query i masked out */
    float softcap;          /* > 0: scores become softcap·tanh(scores/softcap) after the
                             * scale, before bias and masks (Gemma 2); 0: off */
} prism_attn_desc;

typedef struct prism_backend prism_backend;

/* A backend's memory, for the /metrics gauges (memory_info). */
typedef struct prism_backend_memory {
    size_t held;         /* bytes this backend allocated and holds: buffers from
                          * alloc, weights it copied or converted, its own
                          * workspaces (weights used in place from the mapping
                          * are not counted) */
    size_t device_total; /* the device's memory and how much of it is free now,
                          * for a backend with a device of its own (CUDA:
                          * cudaMemGetInfo); 0 and 0 on the CPU, whose memory is
                          * the process's */
    size_t device_free;
} prism_backend_memory;

/* For the PRISM_OP rows of backend_ops.def: `PRISM_OP_PARAMS params` is an
 * op's full parameter list, `PRISM_OP_ARGS args` its arguments without the
 * parentheses. */
#define PRISM_OP_PARAMS(...) (prism_backend *be, __VA_ARGS__)
#define PRISM_OP_ARGS(...) __VA_ARGS__

typedef struct prism_backend_ops {
    const char *name;
    void (*destroy)(prism_backend *be);

    /* memory */
    void *(*alloc)(prism_backend *be, size_t bytes);
    void (*free)(prism_backend *be, void *ptr);
    int (*upload)(prism_backend *be, void *dst, const void *src, size_t bytes);
    int (*download)(prism_backend *be, void *dst, const void *src, size_t bytes);
    int (*synchronize)(prism_backend *be);

    /* Imports n values of host data in dtype `dt` (a prism_dtype: F32, F16 or
     * BF16) as a weight.
     *   matrix == false: the result is float32 in backend memory, usable by
     *     any op (biases, norms, embedding tables, the pooling probe).
     *   matrix == true: the result is only ever passed as matmul's `w`, in a
     *     format the backend chooses (the CPU: float32; CUDA: BF16, F16 or
     *     F32 by its --dtype).
     * May return src itself when the backend can use host memory as is (the
     * CPU with aligned F32: no copy of the mapping); *owned tells whether
     * the result must be released with ops->free. NULL when out of memory. */
    const void *(*weight_import)(prism_backend *be, const void *src, int dt, size_t n,
                                 bool matrix, bool *owned);

    /* the ops: one member per row of backend_ops.def, where each op's
     * contract is written */
#define PRISM_OP(name, params, args) int(*name) PRISM_OP_PARAMS params;
#include "backend_ops.def"

    /* ---- errors ---- */

    /* Optional: after an op returned -1 (or alloc/weight_import NULL),
     * writes why into err: the backend's message ("file:line: call:
     * reason" on CUDA) and its code, PRISM_ERR_NOMEM when device memory or
     * another device resource ran out (a later call may succeed). */
    void (*describe_error)(prism_backend *be, prism_error *err);

    /* ---- observability ---- */

    /* Optional: fills *m. May be called from any thread, also while ops
     * run on another; never changes what describe_error reports. 0, or -1
     * when the device cannot be asked (then *m is all zeros). */
    int (*memory_info)(prism_backend *be, prism_backend_memory *m);
} prism_backend_ops;

struct prism_backend {
    const prism_backend_ops *ops;
    int n_threads;
    void *impl; /* backend-private state */
};

/* Fills err after a backend call failed in the model step `what`:
 * "<backend> backend failed in <what>: <the backend's description>", with
 * the backend's error code. Returns -1. */
int prism_backend_failed(prism_backend *be, prism_error *err, const char *what);

/* Model code's check of one backend call, with `be` and `err` in scope. */
#define PRISM_CK(call, what)                                                            \
    do {                                                                                \
        if ((call) != 0)                                                                \
            return prism_backend_failed(be, err, what);                                 \
    } while (0)

/* Parses an activation name as transformers' ACT2FN spells it (0 or -1). */
int prism_act_parse(const char *s, prism_act *act);
const char *prism_act_name(prism_act act);

/* CPU backend. `reference` selects the plain loops (the oracle); otherwise
 * the fast path (OpenBLAS sgemm + OpenMP). n_threads <= 0 means all cores. */
prism_backend *prism_cpu_backend_create(int n_threads, bool reference);
void prism_backend_destroy(prism_backend *be);

/* CPU fast path only: keep matrix weights (weight_import with matrix =
 * true) in BF16 instead of float32, for half the memory traffic of
 * memory-bound matmuls (decode steps). Arithmetic stays float32; F32/F16
 * weights are rounded to BF16 (round to nearest even, as torch's
 * .to(bfloat16)), so outputs differ from float32 weights by ~1e-3
 * relative, while BF16 checkpoints compute exactly as in float32. Must be
 * called before any weight is imported; -1 on the reference backend. */
int prism_cpu_backend_set_bf16_matrices(prism_backend *be, bool on);

/* CPU fast path only: BF16 arithmetic in matmul. x and the matrix weights
 * are rounded to BF16 (round to nearest even), their products are exact in
 * float32 and summed in float32 (oneDNN's BF16 matmul, AVX512-BF16 or AMX;
 * one-row calls by AVX512-BF16 dot products on the same roundings, so a
 * row's result does not depend on its batch beyond the order of float32
 * sums, the flushing of denormals to zero and, from 2 rows on, oneDNN's
 * own bias add and activation inside its kernel).
 * Implies BF16 matrices; everything but matmul stays float32. Returns -1
 * with the reason in why when this build has no oneDNN or the CPU lacks
 * BF16 dot-product instructions (where it would be slower than float32).
 * Before any weight is imported. */
int prism_cpu_bf16_compute_available(char *why, size_t why_len);
int prism_cpu_backend_set_bf16_compute(prism_backend *be, bool on, char *why, size_t why_len);

/* CPU fast path only: int8 arithmetic in matmul. Each row of x is
 * quantized to [0, 255] with its own scale and zero point (its range, per
 * call), each output channel of the weights symmetrically to [-127, 127]
 * at the weight's first use (the model's warm-up; float32 weights only, no
 * BF16 matrices); oneDNN sums the u8 × s8 products exactly in int32
 * (AVX512-VNNI or AMX), then prism removes the zero points and scales.
 * Everything but matmul stays float32. -1 with the reason in why when this
 * build has no oneDNN or the CPU lacks int8 dot-product instructions. */
int prism_cpu_int8_compute_available(char *why, size_t why_len);
int prism_cpu_backend_set_int8_compute(prism_backend *be, bool on, char *why, size_t why_len);

/* Measures this machine's sgemm rate (GFLOP/s, best of repeated runs over at
 * least min_seconds) for y[M,N] = x[M,K]·w[N,K]ᵀ with the threads of a CPU
 * backend: the FLOP floor that benchmarks report against. Returns < 0 on
 * allocation failure. */
double prism_cpu_sgemm_gflops(prism_backend *cpu, int M, int N, int K, double min_seconds);

/* Monotonic clock in seconds. */
double prism_now(void);

#endif
