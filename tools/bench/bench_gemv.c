/* bench_gemv.c - one-row matmul (a batch-1 decode step's shape) on the CPU
 * backend, weights streamed from memory: the rate at which each matmul
 * path reads its weights, beside what the machine can stream
 * (bench_stream.c).
 *
 *   cmake --build build -j2 --target prism_engine
 *   cc -O2 -fopenmp -Iengine tools/bench/bench_gemv.c build/libprism_engine.a \
 *      -o /tmp/bench_gemv -lopenblas -ldnnl -lm
 *   OMP_WAIT_POLICY=passive /tmp/bench_gemv [THREADS]
 *
 * Paths, per shape y[1, N] = x[1, K]·w[N, K]ᵀ:
 *   f32          float32 weights (--dtype f32)
 *   bf16-w       BF16 weights widened to float32 in registers, float32
 *                arithmetic (BF16 matrices without BF16 compute)
 *   bf16-compute x rounded to BF16, BF16 products summed in float32
 *                (--dtype bf16); n/a where the CPU lacks AVX512-BF16
 * Each path cycles through enough copies of w (at least 1.5 GiB) that
 * none is in cache when it is read again; prints the best of 5 passes as
 * GB/s of weight bytes (10^9 bytes a second).
 */
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "safetensors.h"

static double now(void)
{
    return omp_get_wtime();
}

/* GB/s of one path on one shape, or a negative value when it cannot run. */
static double rate(int threads, int mode, int N, int K)
{
    prism_backend *be = prism_cpu_backend_create(threads, false);
    char why[256];
    if (!be)
        return -1;
    if (mode == 1)
        prism_cpu_backend_set_bf16_matrices(be, true);
    if (mode == 2 && prism_cpu_backend_set_bf16_compute(be, true, why, sizeof why)) {
        prism_backend_destroy(be);
        return -2;
    }
    const size_t n = (size_t)N * K, wbytes = n * (mode ? 2 : 4);
    const int copies = (int)((1536ull << 20) / wbytes) + 2;
    float *src = malloc(n * sizeof *src), *x = malloc((size_t)K * sizeof *x),
          *y = malloc((size_t)N * sizeof *y);
    const void **w = calloc((size_t)copies, sizeof *w);
    bool owned = false;
    srand(1);
    for (size_t i = 0; i < n; i++)
        src[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int k = 0; k < K; k++)
        x[k] = (float)rand() / RAND_MAX - 0.5f;
    for (int c = 0; c < copies; c++) {
        /* F32 sources are used in place; copy them so each is its own memory */
        float *s = src;
        if (mode == 0) {
            s = be->ops->alloc(be, n * sizeof *s);
            for (size_t i = 0; i < n; i++)
                s[i] = src[i];
        }
        w[c] = mode == 0 ? s : be->ops->weight_import(be, src, PRISM_DT_F32, n, true, &owned);
    }
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        const double t0 = now();
        for (int c = 0; c < copies; c++)
            be->ops->matmul(be, y, x, w[c], NULL, 1, N, K, PRISM_ACT_NONE);
        const double gbs = (double)wbytes * copies / (now() - t0) / 1e9;
        if (gbs > best)
            best = gbs;
    }
    for (int c = 0; c < copies; c++)
        be->ops->free(be, (void *)w[c]);
    free(w), free(src), free(x), free(y);
    prism_backend_destroy(be);
    return best;
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    static const struct {
        int N, K;
        const char *what;
    } shapes[] = {
        {768, 768, "attention projection (base)"},
        {3072, 768, "MLP up (base)"},
        {768, 3072, "MLP down (base)"},
        {51289, 768, "BART LM head (base)"},
        {4096, 1024, "MLP up (large)"},
    };
    printf("| shape (N x K) | what | f32 GB/s | bf16-w GB/s | bf16-compute GB/s |\n");
    printf("|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        double r[3];
        for (int m = 0; m < 3; m++)
            r[m] = rate(threads, m, shapes[i].N, shapes[i].K);
        printf("| %d x %d | %s | %.1f | %.1f | ", shapes[i].N, shapes[i].K, shapes[i].what,
               r[0], r[1]);
        if (r[2] < 0)
            printf("n/a |\n");
        else
            printf("%.1f |\n", r[2]);
    }
    return 0;
}
