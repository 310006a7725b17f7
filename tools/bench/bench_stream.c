/* bench_stream.c - this machine's weight-streaming rate: how fast T threads
 * read a buffer far larger than the caches (the floor under a decode step,
 * which reads every weight once per token).
 *
 *   cc -O3 -march=native -fopenmp tools/bench/bench_stream.c -o /tmp/bench_stream
 *   /tmp/bench_stream [THREADS] [MIB]
 *
 * Each thread sums its contiguous share of a float buffer of MIB MiB (4096
 * by default) with four independent vector chains (AVX-512 where the
 * compiler targets it), so that loads, not adds, set the pace; prints the
 * best of 5 passes in GB/s (10^9 bytes).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Sum of x[0..n), n a multiple of 64, x 64-byte aligned. */
static float sum_block(const float *x, size_t n)
{
#ifdef __AVX512F__
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(x + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(x + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(x + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(x + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#else
    float s[64] = {0};
    for (size_t i = 0; i < n; i += 64)
        for (int k = 0; k < 64; k++)
            s[k] += x[i + k];
    float t = 0;
    for (int k = 0; k < 64; k++)
        t += s[k];
    return t;
#endif
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 4096;
    const size_t n = mib * 1024 * 1024 / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof *buf);
    if (!buf || threads < 1)
        return 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i & 1023) * 1e-3f;
    omp_set_num_threads(threads);
    double best = 1e30, sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = omp_get_wtime(), total = 0;
#pragma omp parallel reduction(+ : total)
        {
            const size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
            const size_t per = n / nt / 64 * 64;
            total += sum_block(buf + id * per, id + 1 == nt ? (n - id * per) / 64 * 64 : per);
        }
        const double dt = omp_get_wtime() - t0;
        best = dt < best ? dt : best;
        sink += total;
    }
    printf("threads %d, %zu MiB: %.1f GB/s (best of 5; checksum %.3g)\n", threads, mib,
           (double)n * sizeof(float) / best / 1e9, sink);
    free(buf);
    return 0;
}
