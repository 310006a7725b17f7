/* bench_naflex.c - prism_bench_naflex: how to batch SigLIP 2 NaFlex images
 * of different patch counts on the CPU.
 *
 *   prism_bench_naflex MODEL_DIR [--threads N] [--seconds S]
 *
 * MODEL_DIR: a siglip2 checkpoint (tools/bench/make_siglip2_checkpoint.py
 * writes one with google/siglip2-base-patch16-naflex's shapes). For two
 * sets of 8 images (one max_num_patches of 256 with mixed aspect ratios;
 * mixed budgets of 64, 144 and 256 patches) it times the image embeddings
 *   pad:    one call, every image padded to the set's largest patch count
 *           (siglip_naflex_set_padding);
 *   bucket: one call, bucketed by patch count inside siglip_embed_naflex
 *           (the default: chunks of similar counts, each padded to its
 *           largest);
 *   single: one call per image, no padding;
 * and reports images/s and the useful GFLOP/s (the padded rows' work not
 * counted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siglip.h"

#define N_IMG 8

typedef struct image_set {
    const char *name;
    int shapes[N_IMG][2];
} image_set;

static const image_set sets[] = {
    {"max_num_patches 256, mixed aspect ratios",
     {{16, 16}, {13, 19}, {19, 13}, {11, 23}, {9, 28}, {14, 18}, {18, 14}, {10, 25}}},
    {"mixed budgets: 64, 144, 256 patches",
     {{8, 8}, {12, 12}, {16, 16}, {6, 10}, {9, 16}, {16, 16}, {8, 8}, {12, 12}}},
};

typedef struct run_ctx {
    siglip_model *m;
    const image_set *set;
    float *patches;   /* per image [256, K] */
    float *out;
    int K, D;
} run_ctx;

static int count(const run_ctx *c, int i)
{
    return c->set->shapes[i][0] * c->set->shapes[i][1];
}

/* One call over images idx[0..n) padded to L rows. */
static int embed_group(run_ctx *c, const int *idx, int n, int L)
{
    float *p = calloc((size_t)n * L * c->K, sizeof *p);
    int32_t *mask = calloc((size_t)n * L, sizeof *mask), shapes[2 * N_IMG];
    prism_error err = {0};
    for (int b = 0; b < n; b++) {
        const int i = idx[b], hw = count(c, i);
        memcpy(p + (size_t)b * L * c->K, c->patches + (size_t)i * 256 * c->K,
               (size_t)hw * c->K * sizeof *p);
        for (int t = 0; t < hw; t++)
            mask[(size_t)b * L + t] = 1;
        shapes[2 * b] = c->set->shapes[i][0];
        shapes[2 * b + 1] = c->set->shapes[i][1];
    }
    int rc = siglip_embed_naflex(c->m, p, mask, shapes, n, L, true, c->out, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    free(p), free(mask);
    return rc;
}

static int run_all(run_ctx *c)
{
    int idx[N_IMG], L = 0;
    for (int i = 0; i < N_IMG; i++)
        idx[i] = i, L = count(c, i) > L ? count(c, i) : L;
    return embed_group(c, idx, N_IMG, L);
}

static int run_pad(run_ctx *c)
{
    siglip_naflex_set_padding(c->m, true);
    int rc = run_all(c);
    siglip_naflex_set_padding(c->m, false);
    return rc;
}

static int run_single(run_ctx *c)
{
    for (int i = 0; i < N_IMG; i++)
        if (embed_group(c, &i, 1, count(c, i)))
            return -1;
    return 0;
}

static double time_it(int (*fn)(run_ctx *), run_ctx *c, double seconds)
{
    if (fn(c)) /* warm-up */
        return -1;
    int runs = 0;
    double t0 = prism_now(), t;
    do {
        if (fn(c))
            return -1;
        runs++;
        t = prism_now() - t0;
    } while (t < seconds || runs < 2);
    return t / runs;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: prism_bench_naflex MODEL_DIR [--threads N] [--seconds S]\n");
        return 2;
    }
    int threads = 2;
    double seconds = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
    }
    prism_backend *be = prism_cpu_backend_create(threads, false);
    prism_error err = {0};
    siglip_model *m = NULL;
    if (!be || siglip_load_ex(&m, argv[1], be, N_IMG, 256, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    run_ctx c = {.m = m, .K = siglip_patch_dim(m), .D = siglip_embed_dim(m)};
    c.patches = malloc((size_t)N_IMG * 256 * c.K * sizeof *c.patches);
    c.out = malloc((size_t)N_IMG * c.D * sizeof *c.out);
    srand(1);
    for (size_t i = 0; i < (size_t)N_IMG * 256 * c.K; i++)
        c.patches[i] = (float)rand() / RAND_MAX * 2 - 1;
    printf("threads %d, %d images per set\n", threads, N_IMG);
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        c.set = &sets[s];
        double useful = 0;
        int rows = 0, maxc = 0;
        for (int i = 0; i < N_IMG; i++) {
            useful += siglip_naflex_image_flops(siglip_get_config(m), count(&c, i));
            rows += count(&c, i);
            maxc = count(&c, i) > maxc ? count(&c, i) : maxc;
        }
        printf("\n%s: %d patch rows, %d padded to the max\n", c.set->name, rows, N_IMG * maxc);
        const char *names[3] = {"pad", "bucket", "single"};
        int (*fns[3])(run_ctx *) = {run_pad, run_all, run_single};
        for (int k = 0; k < 3; k++) {
            double t = time_it(fns[k], &c, seconds);
            if (t < 0)
                return 1;
            printf("  %-7s %7.3f s per set  %6.2f images/s  %6.1f useful GFLOP/s\n", names[k], t,
                   N_IMG / t, useful / t * 1e-9);
        }
    }
    free(c.patches), free(c.out);
    siglip_free(m);
    prism_backend_destroy(be);
    return 0;
}
