/* bench_bf16_gemm.c - the CPU GEMM candidates for BF16 compute, side by
 * side on SigLIP B/16's shapes: OpenBLAS sgemm (float32, today's path),
 * OpenBLAS sbgemm (when the library has it), and oneDNN's BF16 matmul
 * (BF16 activations and weights, float32 accumulation and output; the
 * activations' conversion counted): weights packed once into the layout
 * the primitive picks, and as prism calls it, the file's [N, K] layout
 * with the primitive looked up per call (oneDNN's primitive cache).
 *
 *   cc -O2 -fopenmp tools/bench/bench_bf16_gemm.c -o /tmp/bench_bf16_gemm -lopenblas -ldnnl
 *   OMP_WAIT_POLICY=passive /tmp/bench_bf16_gemm [THREADS]
 *
 * y[M, N] = x[M, K] · W[N, K]ᵀ, as a linear layer. Prints GFLOP/s per
 * shape (best of 5 runs of at least 0.3 s each).
 */
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        dnnl_status_t st_ = (x);                                                                   \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "%s: %d\n", #x, (int)st_);                                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

typedef struct shape {
    const char *name;
    int M, N, K;
} shape;

typedef void (*sbgemm_fn)(int, int, int, int, int, int, float, const uint16_t *, int,
                          const uint16_t *, int, float, float *, int);

static double best_rate(void (*run)(void *), void *arg, double flop)
{
    double best = 0;
    for (int r = 0; r < 5; r++) {
        int n = 0;
        double t0 = omp_get_wtime(), t;
        do {
            run(arg);
            n++;
            t = omp_get_wtime() - t0;
        } while (t < 0.3);
        const double rate = flop * n / t / 1e9;
        best = rate > best ? rate : best;
    }
    return best;
}

typedef struct job {
    const shape *s;
    float *x, *w, *y;
    uint16_t *xb, *wb;
    sbgemm_fn sbgemm;
    dnnl_primitive_t mm;
    dnnl_memory_t msrc, mwei, mdst;
    dnnl_stream_t stream;
} job;

static void run_sgemm(void *a)
{
    job *j = a;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->s->M, j->s->N, j->s->K, 1.0f, j->x,
                j->s->K, j->w, j->s->K, 0.0f, j->y, j->s->N);
}

static void convert_x(job *j)
{
    const size_t n = (size_t)j->s->M * j->s->K;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        j->xb[i] = to_bf16(j->x[i]);
}

static void run_sbgemm(void *a)
{
    job *j = a;
    convert_x(j);
    j->sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->s->M, j->s->N, j->s->K, 1.0f, j->xb,
              j->s->K, j->wb, j->s->K, 0.0f, j->y, j->s->N);
}

/* As prism's CPU backend calls it: weights in the file's [N, K] layout (no
 * packing), the primitive looked up per call (oneDNN's primitive cache). */
static void run_dnnl_plain(void *a)
{
    job *j = a;
    convert_x(j);
    const shape *s = j->s;
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    const dnnl_dims_t sd = {s->M, s->K}, wd = {s->K, s->N}, dd = {s->M, s->N};
    CK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_bf16, dnnl_ab));
    CK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, dnnl_bf16, dnnl_ba));
    CK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    CK(dnnl_matmul_desc_init(&md, &src_md, &wei_md, NULL, &dst_md));
    dnnl_engine_t eng;
    CK(dnnl_stream_get_engine(j->stream, &eng));
    dnnl_primitive_desc_t pd;
    CK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
    dnnl_primitive_t mm;
    CK(dnnl_primitive_create(&mm, pd));
    dnnl_memory_t ms, mw, mdst;
    CK(dnnl_memory_create(&ms, &src_md, eng, j->xb));
    CK(dnnl_memory_create(&mw, &wei_md, eng, j->wb));
    CK(dnnl_memory_create(&mdst, &dst_md, eng, j->y));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, mdst}};
    CK(dnnl_primitive_execute(mm, j->stream, 3, args));
    CK(dnnl_stream_wait(j->stream));
    dnnl_memory_destroy(ms), dnnl_memory_destroy(mw), dnnl_memory_destroy(mdst);
    dnnl_primitive_destroy(mm), dnnl_primitive_desc_destroy(pd);
}

static void run_dnnl(void *a)
{
    job *j = a;
    convert_x(j);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, j->msrc}, {DNNL_ARG_WEIGHTS, j->mwei},
                               {DNNL_ARG_DST, j->mdst}};
    CK(dnnl_primitive_execute(j->mm, j->stream, 3, args));
    CK(dnnl_stream_wait(j->stream));
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    sbgemm_fn sbgemm = (sbgemm_fn)dlsym(RTLD_DEFAULT, "cblas_sbgemm");
    const dnnl_version_t *v = dnnl_version();
    printf("threads %d; OpenBLAS %s; cblas_sbgemm %s; oneDNN %d.%d.%d (%s)\n", threads,
           openblas_get_config(), sbgemm ? "present" : "absent", v->major, v->minor, v->patch,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
    static const shape shapes[] = {
        {"image qkv (8 x 196 rows)", 1568, 2304, 768}, {"image out_proj", 1568, 768, 768},
        {"image fc1", 1568, 3072, 768},                {"image fc2", 1568, 768, 3072},
        {"text fc1 (8 x 64 rows)", 512, 3072, 768},    {"text fc2", 512, 768, 3072},
    };
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    printf("| shape | M | N | K | sgemm GFLOP/s | sbgemm GFLOP/s | oneDNN bf16, packed | oneDNN bf16, plain, per call | packed / sgemm | plain / sgemm |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        job j = {.s = s, .sbgemm = sbgemm, .stream = stream};
        const size_t xn = (size_t)s->M * s->K, wn = (size_t)s->N * s->K, yn = (size_t)s->M * s->N;
        j.x = malloc(xn * 4), j.w = malloc(wn * 4), j.y = malloc(yn * 4);
        j.xb = malloc(xn * 2), j.wb = malloc(wn * 2);
        for (size_t i = 0; i < xn; i++)
            j.x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < wn; i++) {
            j.w[i] = (float)((i * 40503u) % 997) / 997.0f - 0.5f;
            j.wb[i] = to_bf16(j.w[i]);
        }
        /* oneDNN: src bf16 [M, K] (ab), weights bf16 [K, N] given as W [N, K] (ba), packed
         * into the format the primitive picks (any), dst f32 [M, N] */
        dnnl_memory_desc_t src_md, wei_user_md, wei_md, dst_md;
        const dnnl_dims_t sd = {s->M, s->K}, wd = {s->K, s->N}, dd = {s->M, s->N};
        CK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_bf16, dnnl_ab));
        CK(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wd, dnnl_bf16, dnnl_ba));
        CK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, dnnl_bf16, dnnl_format_tag_any));
        CK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
        dnnl_matmul_desc_t md;
        CK(dnnl_matmul_desc_init(&md, &src_md, &wei_md, NULL, &dst_md));
        dnnl_primitive_desc_t pd;
        CK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
        CK(dnnl_primitive_create(&j.mm, pd));
        const dnnl_memory_desc_t *packed = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_memory_t wuser;
        CK(dnnl_memory_create(&wuser, &wei_user_md, eng, j.wb));
        CK(dnnl_memory_create(&j.mwei, packed, eng, DNNL_MEMORY_ALLOCATE));
        dnnl_primitive_desc_t rpd;
        CK(dnnl_reorder_primitive_desc_create(&rpd, &wei_user_md, eng, packed, eng, NULL));
        dnnl_primitive_t reorder;
        CK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, j.mwei}};
        CK(dnnl_primitive_execute(reorder, stream, 2, rargs));
        CK(dnnl_stream_wait(stream));
        CK(dnnl_memory_create(&j.msrc, &src_md, eng, j.xb));
        CK(dnnl_memory_create(&j.mdst, &dst_md, eng, j.y));
        const double flop = 2.0 * s->M * s->N * s->K;
        const double r_sgemm = best_rate(run_sgemm, &j, flop);
        float *ref = malloc(yn * 4);
        memcpy(ref, j.y, yn * 4);
        const double r_sb = sbgemm ? best_rate(run_sbgemm, &j, flop) : 0;
        const double r_dnnl = best_rate(run_dnnl, &j, flop);
        const double r_plain = best_rate(run_dnnl_plain, &j, flop);
        double err = 0, mag = 0;
        for (size_t i = 0; i < yn; i++) {
            err = fmax(err, fabs(j.y[i] - ref[i]));
            mag = fmax(mag, fabs(ref[i]));
        }
        char sb[32];
        snprintf(sb, sizeof sb, sbgemm ? "%.1f" : "absent", r_sb);
        printf("| %s | %d | %d | %d | %.1f | %s | %.1f | %.1f | %.2fx | %.2fx |\n", s->name, s->M,
               s->N, s->K, r_sgemm, sb, r_dnnl, r_plain, r_dnnl / r_sgemm, r_plain / r_sgemm);
        fprintf(stderr, "%s: bf16 vs f32 max |diff| %.2g of max |y| %.2g\n", s->name, err, mag);
        fflush(stdout);
        dnnl_primitive_destroy(reorder), dnnl_primitive_desc_destroy(rpd);
        dnnl_memory_destroy(wuser), dnnl_memory_destroy(j.mwei), dnnl_memory_destroy(j.msrc);
        dnnl_memory_destroy(j.mdst), dnnl_primitive_destroy(j.mm), dnnl_primitive_desc_destroy(pd);
        free(j.x), free(j.w), free(j.y), free(j.xb), free(j.wb), free(ref);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
