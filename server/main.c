/* main.c - the `prism` binary: subcommands over the engine.
 *
 *   prism info  --model DIR                  what was loaded, as JSON
 *   prism embed --model DIR --inputs F.st    embeddings, as JSON
 *   prism embed --model DIR --image F --text S   the same from files and strings
 *   prism score --model DIR --inputs F.st    logits and probabilities, as JSON
 *   prism bench --model DIR                  throughput against the sgemm floor
 *   prism serve --model DIR [options]        the HTTP server (serve.c; --help lists options)
 *
 * Inputs are preprocessed tensors (pixel_values / input_ids in a
 * .safetensors file) until the image and text pipelines land.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli_generate.h"
#include "cli_io.h"
#include "device.h"
#include "serve.h"
#include "siglip.h"

typedef struct cli_opts {
    const char *model;
    const char *inputs;
    const char *images[256]; /* --image FILE, repeatable */
    int n_images;
    const char *texts[256];  /* --text STRING, repeatable */
    int n_texts;
    int threads;
    int max_batch;
    const char *device, *dtype; /* device.h */
    bool reference;
    bool normalize;
    bool json;
    double min_time;
    int batches[16];
    int n_batches;
} cli_opts;

static void usage(FILE *f)
{
    fputs("usage: prism <command> --model DIR [options]\n"
          "\n"
          "commands:\n"
          "  info    print the loaded model's configuration and tensors (JSON)\n"
          "  embed   image and/or text embeddings for --inputs (JSON)\n"
          "  score   image x text logits and sigmoid probabilities for --inputs (JSON)\n"
          "  bench   images/s and texts/s at several batch sizes, beside this\n"
          "          machine's sgemm rate measured in the same run\n"
          "  serve   the HTTP server (prism serve --help lists its options)\n"
          "  caption, ask   captions / answers from a pali3 model (prism caption --help)\n"
          "\n"
          "options:\n"
          "  --model DIR       hub-format model directory (config.json, model.safetensors)\n"
          "  --inputs FILE     .safetensors with pixel_values [B,C,S,S] and/or input_ids [B,T]\n"
          "  --image FILE      a JPEG or PNG, decoded and preprocessed as the server does\n"
          "                    (repeatable; instead of --inputs)\n"
          "  --text STRING     a text, tokenized with the model's spiece.model (repeatable)\n"
          "  --device D        auto|cpu|cuda: auto takes the GPU when there is one (default;\n"
          "                    bench always measures the CPU)\n"
          "  --dtype T         auto|bf16|f16|f32 matrix weights: auto = bf16 on a GPU, f32\n"
          "                    on the CPU\n"
          "  --threads N       CPU threads (default: all cores; env PRISM_THREADS)\n"
          "  --max-batch N     inputs run together (default 32)\n"
          "  --no-normalize    embed: print pooled outputs instead of unit vectors\n"
          "  --reference       use the plain reference loops instead of the fast path\n"
          "  --batch LIST      bench: comma-separated batch sizes (default 1,8,32)\n"
          "  --min-time SEC    bench: seconds per measurement (default 3)\n"
          "  --json            bench: one JSON object per line instead of a table\n",
          f);
}

static int parse_opts(int argc, char **argv, cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_batch = 32;
    o->normalize = true;
    o->min_time = 3.0;
    o->device = "auto";
    o->dtype = "auto";
    if (cli_threads_from_env(&o->threads))
        return -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--model") == 0 && val)
            o->model = val;
        else if (strcmp(a, "--inputs") == 0 && val)
            o->inputs = val;
        else if (strcmp(a, "--image") == 0 && val && o->n_images < 256)
            o->images[o->n_images++] = val;
        else if (strcmp(a, "--text") == 0 && val && o->n_texts < 256)
            o->texts[o->n_texts++] = val;
        else if (strcmp(a, "--device") == 0 && val) {
            o->device = val;
            if (!device_name_ok(val)) {
                fprintf(stderr, "prism: --device must be one of auto|cpu|cuda\n");
                return -1;
            }
        } else if (strcmp(a, "--dtype") == 0 && val) {
            o->dtype = val;
            if (!device_dtype_ok(val)) {
                fprintf(stderr, "prism: --dtype must be one of auto|bf16|f16|f32\n");
                return -1;
            }
        } else if (strcmp(a, "--threads") == 0 && val) {
            if (cli_parse_int(val, 1, 1024, &o->threads)) {
                fprintf(stderr, "prism: --threads must be an integer in [1, 1024]\n");
                return -1;
            }
        } else if (strcmp(a, "--max-batch") == 0 && val) {
            if (cli_parse_int(val, 1, 4096, &o->max_batch)) {
                fprintf(stderr, "prism: --max-batch must be an integer in [1, 4096]\n");
                return -1;
            }
        } else if (strcmp(a, "--min-time") == 0 && val) {
            char *end;
            o->min_time = strtod(val, &end);
            if (*end || !(o->min_time >= 0 && o->min_time <= 3600)) {
                fprintf(stderr, "prism: --min-time must be seconds in [0, 3600]\n");
                return -1;
            }
        } else if (strcmp(a, "--batch") == 0 && val) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", val);
            o->n_batches = 0;
            for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->n_batches == 16 || cli_parse_int(t, 1, 4096, &o->batches[o->n_batches++])) {
                    fprintf(stderr, "prism: --batch takes up to 16 sizes in [1, 4096]\n");
                    return -1;
                }
            }
        } else {
            takes = false;
            if (strcmp(a, "--reference") == 0)
                o->reference = true;
            else if (strcmp(a, "--no-normalize") == 0)
                o->normalize = false;
            else if (strcmp(a, "--json") == 0)
                o->json = true;
            else {
                fprintf(stderr, "prism: unknown or incomplete option '%s'\n", a);
                return -1;
            }
        }
        if (takes)
            i++;
    }
    if (!o->model) {
        fprintf(stderr, "prism: --model DIR is required\n");
        return -1;
    }
    if (o->n_batches == 0) {
        o->batches[0] = 1;
        o->batches[1] = 8;
        o->batches[2] = 32;
        o->n_batches = 3;
    }
    return 0;
}

static void print_tower(const char *name, const siglip_tower_config *t)
{
    printf("  \"%s\": {\"hidden_size\": %d, \"intermediate_size\": %d, "
           "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
           "\"layer_norm_eps\": %g, \"hidden_act\": \"%s\"",
           name, t->hidden_size, t->intermediate_size, t->num_hidden_layers,
           t->num_attention_heads, (double)t->layer_norm_eps, prism_act_name(t->hidden_act));
}

static int cmd_info(siglip_model *m, const cli_opts *o, prism_backend *be)
{
    const siglip_config *c = siglip_get_config(m);
    const siglip_info *in = siglip_get_info(m);
    printf("{\n  \"model\": \"%s\",\n  \"model_type\": \"siglip\",\n", o->model);
    printf("  \"backend\": \"%s\",\n  \"threads\": %d,\n", be->ops->name, be->n_threads);
    printf("  \"files\": %d,\n  \"tensors\": %lld,\n  \"unused_tensors\": %lld,\n", in->n_files,
           (long long)in->n_tensors, (long long)in->n_unused);
    printf("  \"parameters\": %lld,\n", (long long)in->n_params);
    printf("  \"bytes\": {\"F32\": %lld, \"F16\": %lld, \"BF16\": %lld},\n",
           (long long)in->bytes_by_dtype[0], (long long)in->bytes_by_dtype[1],
           (long long)in->bytes_by_dtype[2]);
    printf("  \"bytes_converted_to_f32\": %lld,\n", (long long)in->bytes_imported);
    printf("  \"embed_dim\": %d,\n", siglip_embed_dim(m));
    print_tower("vision", &c->vision.t);
    printf(", \"num_channels\": %d, \"image_size\": %d, \"patch_size\": %d, \"num_patches\": %d},\n",
           c->vision.num_channels, c->vision.image_size, c->vision.patch_size,
           (c->vision.image_size / c->vision.patch_size) * (c->vision.image_size / c->vision.patch_size));
    print_tower("text", &c->text.t);
    printf(", \"vocab_size\": %d, \"max_position_embeddings\": %d, \"projection_size\": %d},\n",
           c->text.vocab_size, c->text.max_position_embeddings, c->text.projection_size);
    printf("  \"logit_scale\": %.9g,\n  \"logit_bias\": %.9g,\n", (double)siglip_logit_scale(m),
           (double)siglip_logit_bias(m));
    printf("  \"gflop_per_image\": %.3f,\n  \"gflop_per_text\": %.3f\n}\n",
           siglip_image_flops(c) * 1e-9,
           siglip_text_flops(c, c->text.max_position_embeddings) * 1e-9);
    return 0;
}

/* Runs both towers on the inputs; fills *img / *txt (caller frees). */
static int run_inputs(siglip_model *m, const cli_inputs *in, bool normalize, float **img,
                      float **txt, prism_error *err)
{
    const int D = siglip_embed_dim(m);
    *img = *txt = NULL;
    if (in->n_images) {
        *img = malloc((size_t)in->n_images * D * sizeof(float));
        if (!*img)
            return prism_errorf(err, "out of memory");
        if (siglip_embed_images(m, in->pixels, in->n_images, normalize, *img, err))
            return -1;
    }
    if (in->n_texts) {
        *txt = malloc((size_t)in->n_texts * D * sizeof(float));
        if (!*txt)
            return prism_errorf(err, "out of memory");
        if (siglip_embed_texts(m, in->ids, in->n_texts, in->text_len, normalize, *txt, err))
            return -1;
    }
    return 0;
}

static int cmd_embed_or_score(siglip_model *m, const cli_opts *o, bool score, prism_error *err)
{
    if (!o->inputs && !o->n_images && !o->n_texts)
        return prism_errorf(err, "--inputs FILE, or --image FILE / --text STRING, is required");
    cli_inputs in;
    if (o->inputs ? cli_inputs_read(&in, o->inputs, siglip_get_config(m), err)
                  : cli_inputs_from_files(&in, o->model, siglip_get_config(m), o->images,
                                          o->n_images, o->texts, o->n_texts, err))
        return -1;
    float *img = NULL, *txt = NULL;
    int rc = 0;
    if (score && (!in.n_images || !in.n_texts))
        rc = prism_errorf(err, "score needs both images and texts");
    if (rc == 0)
        rc = run_inputs(m, &in, score || o->normalize, &img, &txt, err);
    const int D = siglip_embed_dim(m);
    if (rc == 0 && !score) {
        printf("{\"model\": \"%s\", \"dim\": %d,\n\"image_embeddings\": ", o->model, D);
        cli_print_matrix(stdout, img, in.n_images, D);
        printf(",\n\"text_embeddings\": ");
        cli_print_matrix(stdout, txt, in.n_texts, D);
        printf("}\n");
    } else if (rc == 0) {
        size_t n = (size_t)in.n_images * in.n_texts;
        float *logits = malloc(n * sizeof(float)), *probs = malloc(n * sizeof(float));
        if (!logits || !probs) {
            rc = prism_errorf(err, "out of memory");
        } else {
            siglip_logits(m, img, in.n_images, txt, in.n_texts, logits);
            for (size_t i = 0; i < n; i++)
                probs[i] = 1.0f / (1.0f + expf(-logits[i]));
            printf("{\"model\": \"%s\",\n\"logits\": ", o->model);
            cli_print_matrix(stdout, logits, in.n_images, in.n_texts);
            printf(",\n\"probs\": ");
            cli_print_matrix(stdout, probs, in.n_images, in.n_texts);
            printf("}\n");
        }
        free(logits);
        free(probs);
    }
    free(img);
    free(txt);
    cli_inputs_free(&in);
    return rc;
}

/* xorshift64*: reproducible benchmark inputs without global state. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int bench_task(siglip_model *m, const cli_opts *o, bool images, int B, double sgemm,
                      prism_error *err)
{
    const siglip_config *c = siglip_get_config(m);
    const int D = siglip_embed_dim(m), T = c->text.max_position_embeddings;
    const size_t per = (size_t)c->vision.num_channels * c->vision.image_size * c->vision.image_size;
    float *pix = images ? malloc((size_t)B * per * sizeof(float)) : NULL;
    int32_t *ids = images ? NULL : malloc((size_t)B * T * sizeof(int32_t));
    float *out = malloc((size_t)B * D * sizeof(float));
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int rc = 0;
    if ((images && !pix) || (!images && !ids) || !out) {
        rc = prism_errorf(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; images && i < (size_t)B * per; i++)
        pix[i] = (float)(rng_next(&s) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
    for (size_t i = 0; !images && i < (size_t)B * T; i++)
        ids[i] = (int32_t)(rng_next(&s) % (uint64_t)c->text.vocab_size);
#define RUN() (images ? siglip_embed_images(m, pix, B, true, out, err) \
                      : siglip_embed_texts(m, ids, B, T, true, out, err))
    if ((rc = RUN()) != 0) /* warm-up */
        goto done;
    int iters = 0;
    double best = 1e30, start = prism_now();
    do {
        double t0 = prism_now();
        if ((rc = RUN()) != 0)
            goto done;
        double dt = prism_now() - t0;
        best = dt < best ? dt : best;
        iters++;
    } while (prism_now() - start < o->min_time);
#undef RUN
    double mean = (prism_now() - start) / iters;
    double flops = B * (images ? siglip_image_flops(c) : siglip_text_flops(c, T));
    double gf = flops / mean * 1e-9;
    if (o->json)
        printf("{\"task\": \"%s\", \"batch\": %d, \"iters\": %d, \"items_per_s\": %.3f, "
               "\"ms_per_batch\": %.3f, \"best_ms\": %.3f, \"gflops\": %.2f, "
               "\"sgemm_gflops\": %.2f, \"fraction_of_sgemm\": %.4f}\n",
               images ? "image" : "text", B, iters, B / mean, mean * 1e3, best * 1e3, gf, sgemm,
               gf / sgemm);
    else
        printf("| %-5s | %5d | %9.2f | %10.1f | %8.1f | %6.1f%% | %5d |\n",
               images ? "image" : "text", B, B / mean, mean * 1e3, gf, 100.0 * gf / sgemm, iters);
    fflush(stdout);
done:
    free(pix);
    free(ids);
    free(out);
    return rc;
}

static int cmd_bench(siglip_model *m, const cli_opts *o, prism_backend *be, prism_error *err)
{
    const siglip_config *c = siglip_get_config(m);
    /* The floor: a large square sgemm on the same threads, measured now. */
    double sgemm = prism_cpu_sgemm_gflops(be, 2048, 2048, 2048, o->min_time);
    if (sgemm <= 0)
        return prism_errorf(err, "cannot allocate the sgemm benchmark");
    if (o->json) {
        printf("{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, "
               "\"sgemm_gflops\": %.2f, \"gflop_per_image\": %.3f, \"gflop_per_text\": %.3f}\n",
               o->model, be->ops->name, be->n_threads, sgemm, siglip_image_flops(c) * 1e-9,
               siglip_text_flops(c, c->text.max_position_embeddings) * 1e-9);
    } else {
        printf("model %s, backend %s, %d threads\n", o->model, be->ops->name, be->n_threads);
        printf("sgemm 2048x2048x2048: %.1f GFLOP/s; %.2f GFLOP per image, %.2f per text\n\n",
               sgemm, siglip_image_flops(c) * 1e-9,
               siglip_text_flops(c, c->text.max_position_embeddings) * 1e-9);
        printf("| task  | batch |  items/s | ms/batch   | GFLOP/s  | sgemm  | iters |\n");
        printf("|-------|-------|----------|------------|----------|--------|-------|\n");
    }
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < o->n_batches; i++)
            if (bench_task(m, o, t == 0, o->batches[i], sgemm, err))
                return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return serve_main(argc, argv, 2);
    if (cli_generate_handles(cmd, argc, argv)) /* caption, ask, pali3 bench: cli_generate.c */
        return cli_generate_main(cmd, argc, argv);
    if (strcmp(cmd, "info") && strcmp(cmd, "embed") && strcmp(cmd, "score") &&
        strcmp(cmd, "bench")) {
        fprintf(stderr, "prism: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    cli_opts o;
    if (parse_opts(argc, argv, &o))
        return 2;
    const bool bench = strcmp(cmd, "bench") == 0;
    if (bench && strcmp(o.device, "cuda") == 0) {
        fprintf(stderr, "prism: bench measures the CPU against its sgemm rate; on a GPU use "
                        "prism_bench_cuda (docs/cuda.md)\n");
        return 2;
    }
    prism_error err = {0};
    char note[400];
    prism_backend *be = device_backend_create(bench ? "cpu" : o.device, o.dtype, o.threads,
                                              o.reference, note, sizeof note, &err);
    if (!be) {
        fprintf(stderr, "prism: %s\n", err.msg);
        return 2;
    }
    siglip_model *m = NULL;
    int rc = siglip_load(&m, o.model, be, o.max_batch, &err);
    if (rc == 0) {
        if (strcmp(cmd, "info") == 0)
            rc = cmd_info(m, &o, be);
        else if (bench)
            rc = cmd_bench(m, &o, be, &err);
        else
            rc = cmd_embed_or_score(m, &o, strcmp(cmd, "score") == 0, &err);
    }
    if (rc)
        fprintf(stderr, "prism: %s\n", err.msg);
    siglip_free(m);
    prism_backend_destroy(be);
    return rc ? 1 : 0;
}
