/* bench_siglip_cuda.c - SigLIP throughput and latency on the CUDA backend.
 *
 *   prism_bench_cuda MODEL_DIR [--dtype bf16|f16|f32] [--batches 1,32,256]
 *                    [--seconds 2] [--device 0] [--attention auto|simt|tiled] [--json FILE]
 *
 * Loads a (full-size) SigLIP checkpoint with siglip_load on a CUDA backend,
 * measures in the same run the backend's GEMM rate (8192³, weight dtype
 * operands, float32 accumulation and output: the FLOP ceiling), then for
 * each batch size the images/s and texts/s of siglip_embed_images /
 * siglip_embed_texts (host pixels/ids in, normalised embeddings out:
 * upload, every op, download), the FLOP rate that implies and its fraction
 * of the GEMM rate, and batch-1 latency (median of the per-call times).
 * Pixels come from page-locked memory, as a server's decode buffers would.
 * Prints a table, then one JSON object (also written to --json FILE).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "safetensors.h"
#include "backend_profile.h"
#include "siglip.h"

#define MAX_BATCHES 16

typedef struct result {
    const char *task;
    int batch;
    double items_per_s, ms_median, ms_min, tflops, fraction;
    int calls;
} result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_batches(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_BATCHES) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

/* Times one task at batch B: warm-up, then calls until `seconds` passed
 * (at least 5 calls, at most 2000). */
static int time_task(siglip_model *m, prism_backend *be, bool image, int B, double seconds,
                     const float *pixels, const int32_t *ids, int T, float *out, result *r)
{
    prism_error err = {0};
    const siglip_config *cfg = siglip_get_config(m);
    double *times = malloc(2000 * sizeof *times);
    int calls = 0;
    for (int i = 0; i < 3; i++) {
        int rc = image ? siglip_embed_images(m, pixels, B, true, out, &err)
                       : siglip_embed_texts(m, ids, B, T, true, out, &err);
        if (rc) {
            fprintf(stderr, "prism_bench_cuda: %s batch %d failed: %s [%s]\n",
                    image ? "image" : "text", B, err.msg, prism_cuda_last_error(be));
            free(times);
            return -1;
        }
    }
    const double start = prism_now();
    while (calls < 2000 && (calls < 5 || prism_now() - start < seconds)) {
        const double t0 = prism_now();
        int rc = image ? siglip_embed_images(m, pixels, B, true, out, &err)
                       : siglip_embed_texts(m, ids, B, T, true, out, &err);
        if (rc) {
            fprintf(stderr, "prism_bench_cuda: %s batch %d failed: %s [%s]\n",
                    image ? "image" : "text", B, err.msg, prism_cuda_last_error(be));
            free(times);
            return -1;
        }
        times[calls++] = prism_now() - t0;
    }
    const double total = prism_now() - start;
    qsort(times, (size_t)calls, sizeof *times, cmp_double);
    r->task = image ? "image" : "text";
    r->batch = B;
    r->calls = calls;
    r->items_per_s = (double)B * calls / total;
    r->ms_median = 1e3 * times[calls / 2];
    r->ms_min = 1e3 * times[0];
    const double flops = image ? siglip_image_flops(cfg) : siglip_text_flops(cfg, T);
    r->tflops = flops * r->items_per_s * 1e-12;
    free(times);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *json_path = NULL, *dtype_name = "bf16";
    int batches[MAX_BATCHES] = {1, 32, 256}, n_batches = 3, device = 0;
    double seconds = 2.0;
    bool simt = false, tiled = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dtype") && v) {
            dtype_name = v, i++;
        } else if (!strcmp(a, "--batches") && v) {
            if ((n_batches = parse_batches(v, batches)) < 1) {
                fprintf(stderr, "prism_bench_cuda: bad --batches '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--seconds") && v) {
            seconds = atof(v), i++;
        } else if (!strcmp(a, "--device") && v) {
            device = atoi(v), i++;
        } else if (!strcmp(a, "--attention") && v) {
            simt = !strcmp(v, "simt"), tiled = !strcmp(v, "tiled"), i++;
        } else if (!strcmp(a, "--json") && v) {
            json_path = v, i++;
        } else if (a[0] != '-' && !dir) {
            dir = a;
        } else {
            fprintf(stderr, "usage: prism_bench_cuda MODEL_DIR [--dtype bf16|f16|f32] "
                            "[--batches 1,32,256] [--seconds 2] [--device 0] [--attention auto|simt|tiled] "
                            "[--json FILE]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "prism_bench_cuda: no model directory given\n");
        return 2;
    }
    int dt = !strcmp(dtype_name, "bf16") ? PRISM_DT_BF16
             : !strcmp(dtype_name, "f16") ? PRISM_DT_F16
             : !strcmp(dtype_name, "f32") ? PRISM_DT_F32 : -1;
    if (dt < 0) {
        fprintf(stderr, "prism_bench_cuda: --dtype must be bf16, f16 or f32\n");
        return 2;
    }
    if (prism_cuda_device_count() == 0) {
        fprintf(stderr, "prism_bench_cuda: no CUDA device found\n");
        return 1;
    }
    prism_error err = {0};
    prism_backend *be = prism_cuda_backend_create(device, dt, 0, &err);
    if (!be) {
        fprintf(stderr, "prism_bench_cuda: %s\n", err.msg);
        return 1;
    }
    if (simt)
        prism_cuda_set_attention_path(be, PRISM_CUDA_ATTN_SIMT);
    else if (tiled)
        prism_cuda_set_attention_path(be, PRISM_CUDA_ATTN_TILED);
    printf("device: %s (sm_%d), weights %s, attention %s\n", prism_cuda_device_name(be),
           prism_cuda_compute_capability(be), dtype_name, simt ? "float32 (simt)" : tiled ? "tiled tensor cores" : "auto");
    fflush(stdout);

    const double gemm = prism_cuda_gemm_tflops(be, 8192, 8192, 8192, 1.0);
    if (gemm <= 0) {
        fprintf(stderr, "prism_bench_cuda: GEMM rate: %s\n", prism_cuda_last_error(be));
        prism_backend_destroy(be);
        return 1;
    }
    printf("GEMM 8192^3 (%s in, f32 out): %.1f TFLOP/s\n", dtype_name, gemm);
    fflush(stdout);

    int max_b = 1;
    for (int i = 0; i < n_batches; i++)
        max_b = batches[i] > max_b ? batches[i] : max_b;
    /* PRISM_PROFILE=1: the model runs on a timing wrapper, and instead of
     * throughput the bench prints where each batch's time goes per op. */
    prism_backend *prof = getenv("PRISM_PROFILE") ? prism_profile_backend_create(be) : NULL;
    siglip_model *m = NULL;
    double t0 = prism_now();
    if (siglip_load(&m, dir, prof ? prof : be, max_b, &err)) {
        fprintf(stderr, "prism_bench_cuda: %s [%s]\n", err.msg, prism_cuda_last_error(be));
        prism_backend_destroy(be);
        return 1;
    }
    const double load_s = prism_now() - t0;
    const siglip_config *cfg = siglip_get_config(m);
    const siglip_vision_config *vc = &cfg->vision;
    const int T = cfg->text.max_position_embeddings, D = siglip_embed_dim(m);
    printf("model: %s, %lld params, vision %dx%d/%d E=%d L=%d, text T=%d E=%d L=%d; "
           "loaded in %.2f s, %.0f MiB on the device (max batch %d)\n",
           dir, (long long)siglip_get_info(m)->n_params, vc->image_size, vc->image_size,
           vc->patch_size, vc->t.hidden_size, vc->t.num_hidden_layers, T,
           cfg->text.t.hidden_size, cfg->text.t.num_hidden_layers, load_s,
           prism_cuda_bytes_in_use(be) / 1048576.0, max_b);
    fflush(stdout);

    const size_t per_img = (size_t)vc->num_channels * vc->image_size * vc->image_size;
    float *pixels = prism_cuda_host_alloc(be, (size_t)max_b * per_img * sizeof(float));
    int32_t *ids = malloc((size_t)max_b * T * sizeof *ids);
    float *out = malloc((size_t)max_b * D * sizeof *out);
    if (!pixels || !ids || !out) {
        fprintf(stderr, "prism_bench_cuda: out of host memory\n");
        return 1;
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < (size_t)max_b * per_img; i++) {
        s = s * 1664525u + 1013904223u;
        pixels[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
    for (size_t i = 0; i < (size_t)max_b * T; i++) {
        s = s * 1664525u + 1013904223u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)cfg->text.vocab_size);
    }

    /* host → device rate for the pixels alone (part of every image call) */
    double h2d_gbs = 0;
    void *dev = be->ops->alloc(be, (size_t)max_b * per_img * sizeof(float));
    if (dev) {
        const size_t bytes = (size_t)max_b * per_img * sizeof(float);
        be->ops->upload(be, dev, pixels, bytes);
        be->ops->synchronize(be);
        double best = 1e30;
        for (int i = 0; i < 5; i++) {
            double a = prism_now();
            be->ops->upload(be, dev, pixels, bytes);
            be->ops->synchronize(be);
            double t = prism_now() - a;
            best = t < best ? t : best;
        }
        h2d_gbs = bytes / best * 1e-9;
        be->ops->free(be, dev);
    }

    result res[2 * MAX_BATCHES];
    int n_res = 0, failed = 0;
    for (int bi = 0; prof && bi < n_batches; bi++)
        for (int task = 0; task < 2; task++) {
            const int B = batches[bi];
            for (int i = 0; i < 3; i++) {
                if (i == 1)
                    prism_profile_reset(prof); /* after one warm-up call */
                int rc = task == 0 ? siglip_embed_images(m, pixels, B, true, out, &err)
                                   : siglip_embed_texts(m, ids, B, T, true, out, &err);
                if (rc) {
                    fprintf(stderr, "prism_bench_cuda: %s\n", err.msg);
                    failed = 1;
                    break;
                }
            }
            printf("\nprofile: %s batch %d, 2 calls, each op synchronised\n",
                   task == 0 ? "image" : "text", B);
            prism_profile_report(prof, stdout);
        }
    for (int bi = 0; !prof && bi < n_batches; bi++)
        for (int task = 0; task < 2; task++) {
            result *r = &res[n_res];
            if (time_task(m, be, task == 0, batches[bi], seconds, pixels, ids, T, out, r)) {
                failed = 1;
                continue;
            }
            r->fraction = r->tflops / gemm;
            printf("  %-5s batch %4d: %10.1f items/s  median %8.3f ms/call  %6.1f TFLOP/s  "
                   "(%.1f%% of GEMM)\n", r->task, r->batch, r->items_per_s, r->ms_median, r->tflops,
                   100 * r->fraction);
            fflush(stdout);
            n_res++;
        }
    double lat_img = -1, lat_txt = -1;
    for (int i = 0; i < n_res; i++)
        if (res[i].batch == 1) {
            if (!strcmp(res[i].task, "image"))
                lat_img = res[i].ms_median;
            else
                lat_txt = res[i].ms_median;
        }

    printf("\n| task  | batch | items/s | ms/call (median) | TFLOP/s | of GEMM |\n"
           "|-------|------:|--------:|-----------------:|--------:|--------:|\n");
    for (int i = 0; i < n_res; i++)
        printf("| %-5s | %5d | %7.1f | %16.3f | %7.1f | %6.1f%% |\n", res[i].task, res[i].batch,
               res[i].items_per_s, res[i].ms_median, res[i].tflops, 100 * res[i].fraction);
    printf("GEMM rate %.1f TFLOP/s; pixels host→device %.1f GB/s; batch-1 latency image %.3f ms, "
           "text %.3f ms\n\n", gemm, h2d_gbs, lat_img, lat_txt);

    char *json = malloc(8192 + 512 * (size_t)n_res);
    size_t len = 0, cap = 8192 + 512 * (size_t)n_res;
    len += (size_t)snprintf(json + len, cap - len,
                            "{\"bench\":\"prism_cuda\",\"device\":\"%s\",\"dtype\":\"%s\",\"attention\":\"%s\","
                            "\"model\":\"%s\",\"load_s\":%.3f,\"device_mib\":%.1f,"
                            "\"gemm_tflops\":%.2f,\"h2d_gbs\":%.2f,\"latency_ms\":{\"image\":%.4f,"
                            "\"text\":%.4f},\"image_flops\":%.6g,\"text_flops\":%.6g,\"results\":[",
                            prism_cuda_device_name(be), dtype_name, simt ? "simt" : tiled ? "tiled" : "auto", dir, load_s,
                            prism_cuda_bytes_in_use(be) / 1048576.0, gemm, h2d_gbs, lat_img, lat_txt,
                            siglip_image_flops(cfg), siglip_text_flops(cfg, T));
    for (int i = 0; i < n_res; i++)
        len += (size_t)snprintf(json + len, cap - len,
                                "%s{\"task\":\"%s\",\"batch\":%d,\"items_per_s\":%.2f,"
                                "\"ms_median\":%.4f,\"ms_min\":%.4f,\"tflops\":%.2f,"
                                "\"fraction_of_gemm\":%.4f,\"calls\":%d}",
                                i ? "," : "", res[i].task, res[i].batch, res[i].items_per_s,
                                res[i].ms_median, res[i].ms_min, res[i].tflops, res[i].fraction,
                                res[i].calls);
    snprintf(json + len, cap - len, "]}");
    printf("%s\n", json);
    if (json_path) {
        FILE *f = fopen(json_path, "w");
        if (f) {
            fprintf(f, "%s\n", json);
            fclose(f);
        } else {
            fprintf(stderr, "prism_bench_cuda: cannot write %s\n", json_path);
        }
    }
    free(json);
    prism_cuda_host_free(be, pixels);
    free(ids);
    free(out);
    siglip_free(m);
    prism_backend_destroy(prof);
    prism_backend_destroy(be);
    return failed;
}
