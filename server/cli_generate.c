/* cli_generate.c - `prism caption` and `prism ask` over a pali3 model.
 *
 *   prism caption --model DIR --pixels F.safetensors [--lang en]
 *                 [--max-new-tokens N] [--num-beams K] [--length-penalty F]
 *   prism ask     ... --question "what is on the table?"
 *   prism bench   --model PALI3_DIR [--batch 1,8] [--max-new-tokens 32]
 *
 * Every image of pixel_values [B, C, S, S] (preprocessed, as SiglipImage-
 * Processor gives) gets its own request; the requests generate together in
 * one running batch (continuous batching when they exceed --max-seqs).
 * --image FILE (repeatable) decodes and preprocesses JPEG/PNG files as
 * SiglipImageProcessor does (engine/image.h, preprocessor_config.json of
 * the model directory). --prompt-ids "id,id,..." replaces the prompt text
 * (</s> included), for models without spiece.model.
 *
 * Output, one JSON object per image (the /v1/caption answer's fields):
 *   {"model", "prompt", "text", "ids", "tokens", "finish_reason",
 *    "time_to_first_token_ms", "total_ms"}
 */
#include "cli_generate.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli_io.h"
#ifdef PRISM_HAVE_IMAGE
#include "image.h"
#endif
#include "device.h"
#include "json.h"
#include "pali.h"
#include "safetensors.h"

typedef struct gen_opts {
    const char *model, *pixels, *lang, *question, *prompt_ids;
    const char *images[64]; /* --image, repeatable */
    int n_images;
    int max_new_tokens, num_beams, threads, max_seqs;
    float length_penalty;
    const char *device, *dtype; /* device.h */
    bool reference, bench;
    char note[400];             /* the backend that was picked */
    int batches[8], n_batches;
    int repeats;
} gen_opts;

int cli_generate_handles(const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "caption") == 0 || strcmp(cmd, "ask") == 0)
        return 1;
    if (strcmp(cmd, "bench") == 0)
        for (int i = 2; i + 1 < argc; i++)
            if (strcmp(argv[i], "--model") == 0)
                return pali_is_model_dir(argv[i + 1]);
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: prism caption --model DIR --pixels F.safetensors [options]\n"
          "       prism ask     --model DIR --pixels F.safetensors --question TEXT [options]\n"
          "\n"
          "  --model DIR           a pali3 model directory (docs/pali3.md)\n"
          "  --pixels FILE         .safetensors with pixel_values [B, C, S, S], preprocessed\n"
          "  --image FILE          a JPEG or PNG file (repeatable: one request per image)\n"
          "  --lang L              language in the prompt template (default en)\n"
          "  --question TEXT       ask: the question\n"
          "  --prompt-ids LIST     comma-separated prompt ids, </s> included (no tokenizer)\n"
          "  --max-new-tokens N    default 32\n"
          "  --num-beams K         1 = greedy (default)\n"
          "  --length-penalty F    beam search: score / length^F (default 1.0)\n"
          "  --max-seqs N          decoder sequences run together (default 16)\n"
          "  --threads N           CPU threads (default: all cores; env PRISM_THREADS)\n"
          "  --reference           the plain reference loops instead of the fast path\n"
          "  --device auto|cpu|cuda   auto: the GPU when there is one (default)\n"
          "  --dtype auto|bf16|f16|f32  matrix weights: auto = bf16 on a GPU, f32 on the\n"
          "                        CPU; bf16 on the CPU halves the memory traffic of\n"
          "                        decode steps, rounding F32 weights\n"
          "\n"
          "prism bench --model PALI3_DIR [--batch 1,8] [--max-new-tokens 32] [--repeats 3]\n"
          "  time to first token and decode tokens/s on random images\n",
          f);
}

static int parse(int argc, char **argv, gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->lang = "en";
    o->max_new_tokens = 32;
    o->num_beams = 1;
    o->length_penalty = 1.0f;
    o->max_seqs = 16;
    o->device = "auto";
    o->dtype = "auto";
    if (cli_threads_from_env(&o->threads))
        return -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--reference") == 0) {
            o->reference = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "prism: unknown or incomplete option '%s'\n", a);
            return -1;
        }
        if (strcmp(a, "--model") == 0)
            o->model = v;
        else if (strcmp(a, "--pixels") == 0)
            o->pixels = v;
        else if (strcmp(a, "--image") == 0) {
            bad = o->n_images == 64;
            if (!bad)
                o->images[o->n_images++] = v;
        }
        else if (strcmp(a, "--lang") == 0)
            o->lang = v;
        else if (strcmp(a, "--question") == 0)
            o->question = v;
        else if (strcmp(a, "--prompt-ids") == 0)
            o->prompt_ids = v;
        else if (strcmp(a, "--max-new-tokens") == 0)
            bad = cli_parse_int(v, 1, 32768, &o->max_new_tokens);
        else if (strcmp(a, "--num-beams") == 0)
            bad = cli_parse_int(v, 1, 64, &o->num_beams);
        else if (strcmp(a, "--max-seqs") == 0)
            bad = cli_parse_int(v, 1, 4096, &o->max_seqs);
        else if (strcmp(a, "--threads") == 0)
            bad = cli_parse_int(v, 1, 1024, &o->threads);
        else if (strcmp(a, "--dtype") == 0) {
            o->dtype = v;
            bad = !device_dtype_ok(v);
        } else if (strcmp(a, "--device") == 0) {
            o->device = v;
            bad = !device_name_ok(v);
        } else if (strcmp(a, "--repeats") == 0)
            bad = cli_parse_int(v, 1, 1000, &o->repeats);
        else if (strcmp(a, "--batch") == 0) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            o->n_batches = 0;
            for (char *sv, *t = strtok_r(buf, ",", &sv); t && !bad; t = strtok_r(NULL, ",", &sv))
                bad = o->n_batches == 8 || cli_parse_int(t, 1, 1024, &o->batches[o->n_batches++]);
        }
        else if (strcmp(a, "--length-penalty") == 0) {
            char *end;
            o->length_penalty = strtof(v, &end);
            bad = *end != '\0' || !(o->length_penalty > -100 && o->length_penalty < 100);
        } else {
            fprintf(stderr, "prism: unknown option '%s'\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "prism: invalid value '%s' for %s\n", v, a);
            return -1;
        }
        i++;
    }
    if (!o->model) {
        fprintf(stderr, "prism: --model DIR is required\n");
        return -1;
    }
    o->bench = strcmp(argv[1], "bench") == 0;
    if (o->n_batches == 0) {
        o->batches[0] = 1, o->batches[1] = 8;
        o->n_batches = 2;
    }
    if (o->repeats == 0)
        o->repeats = 3;
    if (!o->pixels && !o->n_images && !o->bench) {
        fprintf(stderr, "prism: --pixels FILE (or --image FILE) is required\n");
        return -1;
    }
    if (strcmp(argv[1], "ask") == 0 && !o->question && !o->prompt_ids) {
        fprintf(stderr, "prism: ask needs --question TEXT\n");
        return -1;
    }
    if (o->max_seqs < o->num_beams) {
        fprintf(stderr, "prism: --max-seqs must be at least --num-beams\n");
        return -1;
    }
    return 0;
}

/* pixel_values [B, C, S, S] of the model's geometry, as float32. */
static float *read_pixels(const char *path, const pali_config *c, int *n, prism_error *err)
{
    st_file f;
    if (st_file_open(&f, path, err))
        return NULL;
    const st_tensor *t = st_file_find(&f, "pixel_values");
    const siglip_vision_config *vc = &c->vision;
    float *px = NULL;
    if (!t)
        prism_errorf(err, "%s: no 'pixel_values' tensor", path);
    else if (t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 4096 ||
             t->shape[1] != vc->num_channels || t->shape[2] != vc->image_size ||
             t->shape[3] != vc->image_size)
        prism_errorf(err, "%s: pixel_values must have shape [B, %d, %d, %d] (B ≤ 4096)", path,
                     vc->num_channels, vc->image_size, vc->image_size);
    else if (t->dtype != PRISM_DT_F32 && t->dtype != PRISM_DT_F16 && t->dtype != PRISM_DT_BF16)
        prism_errorf(err, "%s: pixel_values must be F32, F16 or BF16", path);
    else if (!(px = malloc((size_t)t->numel * sizeof *px)))
        prism_errorf(err, "out of memory");
    else {
        st_to_f32(px, t->data, t->dtype, (size_t)t->numel);
        *n = (int)t->shape[0];
    }
    st_file_close(&f);
    return px;
}

/* Decodes and preprocesses every --image into pixel_values [n, 3, S, S]. */
static float *read_images(const gen_opts *o, const pali_config *c, int *n, prism_error *err)
{
#ifdef PRISM_HAVE_IMAGE
    image_preproc pp;
    const int S = c->vision.image_size;
    if (image_preproc_load(&pp, o->model, err))
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", o->model);
    FILE *pf = fopen(path, "rb");
    if (pf)
        fclose(pf);
    else /* no processor file: SigLIP's defaults at the tower's own size */
        pp.width = pp.height = S;
    if (pp.width != S || pp.height != S || c->vision.num_channels != 3) {
        prism_errorf(err, "%s: the image processor's size %dx%d differs from the vision "
                     "tower's %d", path, pp.width, pp.height, S);
        return NULL;
    }
    const size_t per = (size_t)3 * S * S;
    float *px = malloc((size_t)o->n_images * per * sizeof *px);
    if (!px) {
        prism_errorf(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < o->n_images; i++) {
        FILE *f = fopen(o->images[i], "rb");
        uint8_t *data = NULL;
        long len = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (data = malloc((size_t)len + 1)) && fread(data, 1, (size_t)len, f) == (size_t)len) {
            int rc = image_to_pixel_values(data, (size_t)len, &pp, (size_t)1 << 28, px + i * per,
                                           err);
            if (rc)
                prism_error_prefix(err, "%s", o->images[i]);
            free(data);
            fclose(f);
            if (rc) {
                free(px);
                return NULL;
            }
            continue;
        }
        free(data);
        if (f)
            fclose(f);
        free(px);
        prism_errorf(err, "cannot read %s", o->images[i]);
        return NULL;
    }
    *n = o->n_images;
    return px;
#else
    (void)o, (void)c, (void)n;
    prism_errorf(err, "this build has no image decoding (libturbojpeg/libspng): give "
                 "preprocessed --pixels");
    return NULL;
#endif
}

static int parse_ids(const char *s, int32_t *ids, int max, int *n, prism_error *err)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1 << 30 || *n == max)
            return prism_errorf(err, "--prompt-ids: expected up to %d comma-separated ids", max);
        ids[(*n)++] = (int32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return prism_errorf(err, "--prompt-ids: unexpected '%c'", *end);
    }
    return *n ? 0 : prism_errorf(err, "--prompt-ids is empty");
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static int run(const gen_opts *o, bool ask, pali_model *m, prism_error *err)
{
    const pali_config *c = pali_get_config(m);
    const pali_limits *lim = pali_get_limits(m);
    char prompt[4096];
    int32_t *ids = malloc((size_t)lim->max_prompt_tokens * sizeof *ids);
    int n_ids = 0, n_img = 0, rc = 0;
    float *px = NULL;
    pali_request *reqs = NULL;
    pali_result *res = NULL;
    if (!ids)
        return prism_errorf(err, "out of memory");
    if (o->prompt_ids) {
        snprintf(prompt, sizeof prompt, "%s", o->prompt_ids);
        rc = parse_ids(o->prompt_ids, ids, lim->max_prompt_tokens, &n_ids, err);
    } else {
        rc = pali_prompt_text(m, ask ? PALI_TASK_VQA : PALI_TASK_CAPTION, o->lang, o->question,
                              prompt, sizeof prompt, err) ||
             pali_tokenize(m, prompt, ids, lim->max_prompt_tokens, &n_ids, err) ? -1 : 0;
    }
    if (rc == 0 && o->n_images && o->pixels)
        rc = prism_errorf(err, "give --pixels or --image, not both");
    if (rc == 0 && o->n_images && !(px = read_images(o, c, &n_img, err)))
        rc = -1;
    if (rc == 0 && o->pixels && !(px = read_pixels(o->pixels, c, &n_img, err)))
        rc = -1;
    if (rc == 0) {
        reqs = calloc((size_t)n_img, sizeof *reqs);
        res = calloc((size_t)n_img, sizeof *res);
        if (!reqs || !res)
            rc = prism_errorf(err, "out of memory");
    }
    const size_t per = (size_t)c->vision.num_channels * c->vision.image_size * c->vision.image_size;
    for (int i = 0; rc == 0 && i < n_img; i++)
        reqs[i] = (pali_request){.pixels = px + i * per, .prompt_ids = ids, .n_prompt = n_ids,
                                 .max_new_tokens = o->max_new_tokens, .num_beams = o->num_beams,
                                 .length_penalty = o->length_penalty, .t_submit = prism_now()};
    if (rc == 0)
        rc = pali_generate(m, reqs, n_img, res, err);
    for (int i = 0; rc == 0 && i < n_img; i++) {
        char *text = NULL;
        prism_error terr;
        bool have_text = pali_detokenize(m, res[i].ids, res[i].n_ids, &text, &terr) == 0;
        printf("{\"model\": ");
        print_json_string(o->model);
        printf(", \"prompt\": ");
        print_json_string(prompt);
        printf(", \"text\": ");
        if (have_text)
            print_json_string(text);
        else
            printf("null");
        printf(", \"ids\": [");
        for (int t = 0; t < res[i].n_ids; t++)
            printf("%s%d", t ? ", " : "", res[i].ids[t]);
        printf("], \"tokens\": %d, \"finish_reason\": \"%s\", \"time_to_first_token_ms\": %.3f, "
               "\"total_ms\": %.3f}\n", res[i].n_ids,
               res[i].finish == PALI_FINISH_EOS ? "eos" : "length", res[i].ttft_seconds * 1e3,
               res[i].total_seconds * 1e3);
        free(text);
    }
    for (int i = 0; res && i < n_img; i++)
        pali_result_free(&res[i]);
    free(res), free(reqs), free(px), free(ids);
    return rc;
}

/* xorshift64*: reproducible benchmark pixels without global state. */
static float rnd_pixel(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)((*s * 2685821657736338717ull) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run: B requests start together and decode n_new tokens; *ttft gets
 * start → end of the first step (vision + projector + encoder + one decoder
 * step), steps[i] the wall time of decode step i + 1 (the first is part of
 * ttft). Returns the number of later steps, or -1. */
static int run_once(pali_model *m, pali_request *reqs, int B, int n_new, double *ttft,
                    double *steps, prism_error *err)
{
    pali_gen *g;
    if (pali_gen_create(&g, m, err))
        return -1;
    for (int i = 0; i < B; i++)
        reqs[i].max_new_tokens = n_new;
    int n = 0, rc = 0;
    const double t0 = prism_now();
    rc = pali_gen_start(g, reqs, B, NULL, err);
    for (int s = 0; rc == 0 && pali_gen_running(g) > 0; s++) {
        const int running = pali_gen_running(g);
        rc = pali_gen_step(g, err);
        if (s == 0)
            *ttft = prism_now() - t0;
        else if (running == B) /* full-batch steps only */
            steps[n++] = pali_gen_get_stats(g)->last_step_seconds;
        pali_result r;
        while (pali_gen_take(g, &r))
            pali_result_free(&r);
    }
    pali_gen_free(g);
    return rc ? -1 : n;
}

/* Time to first token: best of `repeats` runs; decode tokens/s: B over
 * the median decode step of all runs (robust to the host's other load).
 * tools/bench/bench_transformers_pali3.py measures transformers the same
 * way. */
static int bench(const gen_opts *o, pali_model *m, prism_error *err)
{
    const pali_config *c = pali_get_config(m);
    const size_t per = (size_t)c->vision.num_channels * c->vision.image_size * c->vision.image_size;
    int maxB = 1;
    for (int i = 0; i < o->n_batches; i++)
        maxB = o->batches[i] > maxB ? o->batches[i] : maxB;
    float *px = malloc((size_t)maxB * per * sizeof *px);
    pali_request *reqs = calloc((size_t)maxB, sizeof *reqs);
    double *steps = malloc((size_t)o->repeats * o->max_new_tokens * sizeof *steps);
    static const int32_t prompt[] = {3, 5, 1}; /* a 3-token prompt, like "caption en</s>" */
    if (!px || !reqs || !steps) {
        free(px), free(reqs), free(steps);
        return prism_errorf(err, "out of memory");
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)maxB * per; i++)
        px[i] = rnd_pixel(&s);
    for (int i = 0; i < maxB; i++)
        reqs[i] = (pali_request){.pixels = px + i * per, .prompt_ids = prompt, .n_prompt = 3,
                                 .num_beams = o->num_beams, .length_penalty = 1.0f};
    printf("model %s, %s, %d image tokens, %d new tokens, %d beam(s)\n", o->model, o->note,
           c->image_token_count, o->max_new_tokens, o->num_beams);
    printf("| batch | time to first token ms | decode tokens/s | ms/step (median) | steps |\n");
    printf("|-------|------------------------|-----------------|------------------|-------|\n");
    double ttft = 0;
    int rc = run_once(m, reqs, 1, 2, &ttft, steps, err) < 0 ? -1 : 0; /* warm-up */
    for (int bi = 0; rc == 0 && bi < o->n_batches; bi++) {
        const int B = o->batches[bi];
        double best = 1e30;
        int ns = 0;
        for (int r = 0; rc == 0 && r < o->repeats; r++) {
            int n = run_once(m, reqs, B, o->max_new_tokens, &ttft, steps + ns, err);
            if (n < 0)
                rc = -1;
            ns += n > 0 ? n : 0;
            best = ttft < best ? ttft : best;
        }
        if (rc || ns == 0)
            break;
        qsort(steps, (size_t)ns, sizeof *steps, cmp_double);
        const double med = steps[ns / 2];
        printf("| %5d | %22.1f | %15.2f | %16.2f | %5d |\n", B, best * 1e3, B / med, med * 1e3,
               ns);
        fflush(stdout);
    }
    free(px), free(reqs), free(steps);
    return rc;
}

int cli_generate_main(const char *cmd, int argc, char **argv)
{
    gen_opts o;
    if (parse(argc, argv, &o))
        return 2;
    prism_error err = {0};
    prism_backend *be = device_backend_create(o.device, o.dtype, o.threads, o.reference, o.note,
                                              sizeof o.note, &err);
    if (!be) {
        fprintf(stderr, "prism: %s\n", err.msg);
        return 2;
    }
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_new_tokens = o.max_new_tokens;
    lim.max_seqs = o.max_seqs;
    lim.max_beams = o.num_beams;
    if (o.bench) {
        int maxB = 1;
        for (int i = 0; i < o.n_batches; i++)
            maxB = o.batches[i] > maxB ? o.batches[i] : maxB;
        lim.max_batch = maxB;
        lim.max_seqs = maxB * o.num_beams;
    }
    pali_model *m = NULL;
    int rc = pali_load(&m, o.model, be, &lim, &err);
    if (rc == 0)
        rc = o.bench ? bench(&o, m, &err) : run(&o, strcmp(cmd, "ask") == 0, m, &err);
    if (rc)
        fprintf(stderr, "prism: %s\n", err.msg);
    pali_free(m);
    prism_backend_destroy(be);
    return rc ? 1 : 0;
}
