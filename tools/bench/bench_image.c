/* bench_image.c - prism_bench_image: decode + preprocess throughput on one
 * core, the C half of tools/bench/bench_image.py.
 *
 *   prism_bench_image [--seconds S] [--size N] [--dct] FILE...
 *
 * For each file: images per second for the whole pipeline
 * (image_to_pixel_values: decode, orientation, resize to N x N with
 * BICUBIC, rescale, normalise), and the split between decoding and the
 * rest. --dct also times libjpeg-turbo's DCT-domain reduction (off by
 * default in prism because it changes the pixels) and reports how far its
 * pixel_values are from the exact ones. Single-threaded by construction.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Runs fn until `seconds` pass (at least 3 runs); returns seconds per run. */
typedef int (*bench_fn)(void *ctx);
static double time_it(bench_fn fn, void *ctx, double seconds)
{
    int runs = 0;
    double t0 = now(), t;
    do {
        if (fn(ctx)) {
            fprintf(stderr, "benchmark step failed\n");
            exit(1);
        }
        runs++;
        t = now();
    } while (t - t0 < seconds || runs < 3);
    return (t - t0) / runs;
}

typedef struct job {
    const uint8_t *data;
    size_t len;
    image_preproc cfg;
    image_decode_opts opts;
    float *pv;
    image_rgb decoded;
} job;

static int run_pipeline(void *p)
{
    job *j = p;
    prism_error err;
    if (image_to_pixel_values(j->data, j->len, &j->cfg, 0, j->pv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int run_decode(void *p)
{
    job *j = p;
    prism_error err;
    image_rgb img;
    if (image_decode_rgb_opts(j->data, j->len, &j->opts, &img, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    image_rgb_free(&img);
    return 0;
}

static int run_preprocess(void *p)
{
    job *j = p;
    prism_error err;
    return image_rgb_to_pixel_values(&j->decoded, &j->cfg, j->pv, &err);
}

static int run_dct_pipeline(void *p)
{
    job *j = p;
    prism_error err;
    image_rgb img;
    if (image_decode_rgb_opts(j->data, j->len, &j->opts, &img, &err))
        return -1;
    int r = image_rgb_to_pixel_values(&img, &j->cfg, j->pv, &err);
    image_rgb_free(&img);
    return r;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int size = 224;
    bool dct = false;
    int first = 1;
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--seconds") == 0 && first + 1 < argc)
            seconds = atof(argv[++first]);
        else if (strcmp(argv[first], "--size") == 0 && first + 1 < argc)
            size = atoi(argv[++first]);
        else if (strcmp(argv[first], "--dct") == 0)
            dct = true;
        else
            break;
    }
    if (first >= argc || size < 1) {
        fprintf(stderr, "usage: %s [--seconds S] [--size N] [--dct] FILE...\n", argv[0]);
        return 2;
    }
    for (int a = first; a < argc; a++) {
        job j = {0};
        j.data = read_all(argv[a], &j.len);
        if (!j.data) {
            fprintf(stderr, "cannot read %s\n", argv[a]);
            return 1;
        }
        image_preproc_defaults(&j.cfg);
        j.cfg.width = j.cfg.height = size;
        j.pv = malloc(3 * (size_t)size * size * sizeof *j.pv);
        prism_error err;
        image_info info;
        if (image_probe(j.data, j.len, &info, &err) ||
            image_decode_rgb(j.data, j.len, 0, &j.decoded, &err)) {
            fprintf(stderr, "%s: %s\n", argv[a], err.msg);
            return 1;
        }
        double t_all = time_it(run_pipeline, &j, seconds);
        double t_dec = time_it(run_decode, &j, seconds);
        double t_pre = time_it(run_preprocess, &j, seconds);
        printf("%s: %s %dx%d -> %dx%d: %.1f images/s (%.2f ms: decode %.2f ms, resize+normalise %.2f ms)\n",
               argv[a], image_format_name(info.format), info.width, info.height, size, size,
               1.0 / t_all, t_all * 1e3, t_dec * 1e3, t_pre * 1e3);
        if (dct && info.format == IMAGE_FORMAT_JPEG) {
            float *exact = malloc(3 * (size_t)size * size * sizeof *exact);
            run_pipeline(&j);
            memcpy(exact, j.pv, 3 * (size_t)size * size * sizeof *exact);
            j.opts.jpeg_dct_min_side = size;
            double t_dct = time_it(run_dct_pipeline, &j, seconds);
            run_dct_pipeline(&j);
            double worst = 0, sum = 0;
            for (size_t i = 0; i < 3 * (size_t)size * size; i++) {
                double d = fabs((double)exact[i] - j.pv[i]);
                worst = d > worst ? d : worst;
                sum += d;
            }
            printf("  with DCT-domain reduction (--dct, min side %d): %.1f images/s (x%.2f), "
                   "pixel_values max |diff| %.4f, mean %.5f (%.1f and %.2f levels of 255)\n",
                   size, 1.0 / t_dct, t_all / t_dct, worst, sum / (3.0 * size * size),
                   worst * 127.5, sum / (3.0 * size * size) * 127.5);
            free(exact);
        }
        image_rgb_free(&j.decoded);
        free(j.pv);
        free((void *)j.data);
    }
    return 0;
}
