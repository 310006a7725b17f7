/* bench_florence2.c - prism_bench_florence2: Florence-2 generation speed on
 * the CPU, measured as tools/bench/bench_transformers_florence2.py measures
 * transformers.
 *
 *   prism_bench_florence2 MODEL_DIR [--threads 2] [--batch 1,4] [--new-tokens 16]
 *                         [--repeats 3] [--dtype f32|bf16] [--phases 1]
 *
 * --dtype bf16: matrices in BF16 and BF16 matmul arithmetic (the CPU
 * backend's bf16 compute, as `prism serve --dtype bf16`); f32 otherwise.
 *
 * MODEL_DIR: a florence2 checkpoint (tools/bench/make_florence2_checkpoint.py
 * writes one with Florence-2-base's shapes). Each request is one image of
 * random preprocessed pixels (uniform in [-1, 1), [3, S, S]) and the prompt
 * ids of "<s>What does the image describe?</s>" (Florence2Processor's
 * <CAPTION> prompt; the same ids in the Python script), greedy, through
 * pali_load / pali_gen_* as the server runs it. The checkpoint's generation
 * config applies on both sides (forced <s> first, forced </s> at the last
 * position, no repeated 3-gram); every request must produce exactly
 * --new-tokens ids (it would stop early only if a random-weight model
 * argmaxed </s> on its own, which the run reports as an error; transformers
 * is run with min_new_tokens for the same count).
 *
 * A run: B requests start together (pali_gen_start: vision tower,
 * projector, encoder, cross keys/values), then one decoder step per token.
 * Time to first token = start → end of the first step; median over the
 * repeats. Decode tokens/s = B / the median of every later step's time over
 * all repeats. One warm-up run (batch 1, 2 tokens) first. Peak RSS at the
 * end (getrusage).
 *
 * PRISM_PROFILE=1 times every backend op (each followed by a synchronize)
 * and prints the table after each batch size: for finding where time goes,
 * not for the figures. --phases 1 first times the vision tower + projector
 * of one image and the whole prefill (vision, embedding, encoder) apart.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backend.h"
#include "backend_profile.h"
#include "florence2.h"
#include "pali.h"

#define MAX_BATCHES 8

/* "<s>What does the image describe?</s>" in the BART tokenizer */
static const int32_t prompt_ids[] = {0, 2264, 473, 5, 2274, 6190, 116, 2};
#define N_PROMPT (int)(sizeof prompt_ids / sizeof prompt_ids[0])

/* xorshift64*: reproducible pixels without global state. */
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

typedef struct run_times {
    double ttft;    /* start → end of the first decoder step */
    double prefill; /* pali_gen_start alone */
    int n_steps;    /* later steps written to steps[] */
} run_times;

/* B requests start together and decode n_new tokens each. Returns 0, or -1
 * (err set) when a step fails or a request ends with fewer ids. */
static int run_once(pali_model *m, pali_request *reqs, int B, int n_new, run_times *t,
                    double *steps, prism_error *err)
{
    pali_gen *g;
    if (pali_gen_create(&g, m, err))
        return -1;
    for (int i = 0; i < B; i++)
        reqs[i].max_new_tokens = n_new;
    int rc = 0, short_ids = -1;
    t->n_steps = 0;
    const double t0 = prism_now();
    rc = pali_gen_start(g, reqs, B, NULL, err);
    t->prefill = prism_now() - t0;
    for (int s = 0; rc == 0 && pali_gen_running(g) > 0; s++) {
        const int running = pali_gen_running(g);
        rc = pali_gen_step(g, err);
        if (s == 0)
            t->ttft = prism_now() - t0;
        else if (running == B)
            steps[t->n_steps++] = pali_gen_get_stats(g)->last_step_seconds;
        pali_result r;
        while (pali_gen_take(g, &r)) {
            if (r.n_ids != n_new)
                short_ids = r.n_ids;
            pali_result_free(&r);
        }
    }
    pali_gen_free(g);
    if (rc == 0 && short_ids >= 0)
        rc = prism_errorf(err, "a request stopped after %d of %d tokens (</s> argmaxed early)",
                          short_ids, n_new);
    return rc;
}

/* The vision tower + projector of one image, and a whole batch-1 prefill
 * (vision, embedding, encoder, cross keys/values), on a florence2_model of
 * its own: the best of 3 each (the minimum: on a shared host the other
 * load only adds time), the encoder's share as the difference of the two. */
static int time_phases(const char *dir, prism_backend *be, const float *px, prism_error *err)
{
    florence2_model *f;
    florence2_limits fl;
    florence2_limits_default(&fl);
    if (florence2_load(&f, dir, be, &fl, err))
        return -1;
    const florence2_config *c = florence2_get_config(f);
    float *feat = malloc((size_t)c->n_image_tokens * c->text.d_model * sizeof *feat);
    float *states = malloc((size_t)(c->n_image_tokens + N_PROMPT) * c->text.d_model *
                           sizeof *states);
    double tv[3], te[3];
    int rc = feat && states ? 0 : prism_errorf(err, "out of memory");
    const florence2_input in = {px, prompt_ids, N_PROMPT};
    for (int r = 0; rc == 0 && r < 3; r++) {
        double t0 = prism_now();
        rc = florence2_image_features(f, px, feat, NULL, err);
        tv[r] = prism_now() - t0;
        t0 = prism_now();
        rc = rc ? rc : florence2_encode(f, &in, 1, NULL, NULL, states, NULL, err);
        te[r] = prism_now() - t0;
    }
    if (rc == 0) {
        qsort(tv, 3, sizeof *tv, cmp_double);
        qsort(te, 3, sizeof *te, cmp_double);
        printf("phases (batch 1, best of 3): vision tower + projector %.1f ms; prefill %.1f ms, "
               "of which embedding + encoder %.1f ms\n\n", tv[0] * 1e3, te[0] * 1e3,
               (te[0] - tv[0]) * 1e3);
    }
    free(feat), free(states);
    florence2_free(f);
    return rc;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: prism_bench_florence2 MODEL_DIR [--threads N] [--batch 1,4] "
                        "[--new-tokens N] [--repeats N] [--dtype f32|bf16] [--phases 1]\n");
        return 2;
    }
    const char *dtype = "f32";
    int threads = 2, n_new = 16, repeats = 3, phases = 0, batches[MAX_BATCHES] = {1, 4}, n_batches = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--new-tokens"))
            n_new = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeats"))
            repeats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dtype"))
            dtype = argv[i + 1];
        else if (!strcmp(argv[i], "--phases"))
            phases = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) {
            n_batches = 0;
            for (char *p = argv[i + 1]; *p && n_batches < MAX_BATCHES;) {
                batches[n_batches++] = (int)strtol(p, &p, 10);
                p += *p == ',';
            }
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int maxB = 1;
    for (int i = 0; i < n_batches; i++) {
        if (batches[i] < 1) {
            fprintf(stderr, "--batch: sizes must be positive\n");
            return 2;
        }
        maxB = batches[i] > maxB ? batches[i] : maxB;
    }
    if (threads < 1 || n_new < 2 || repeats < 1) {
        fprintf(stderr, "--threads ≥ 1, --new-tokens ≥ 2, --repeats ≥ 1\n");
        return 2;
    }
    prism_backend *cpu = prism_cpu_backend_create(threads, false), *be = cpu;
    char why[256] = "";
    if (cpu && !strcmp(dtype, "bf16") &&
        (prism_cpu_backend_set_bf16_compute(cpu, true, why, sizeof why) ||
         prism_cpu_backend_set_bf16_matrices(cpu, true))) {
        fprintf(stderr, "--dtype bf16: %s\n", why[0] ? why : "no bf16 matrices");
        return 1;
    }
    if (strcmp(dtype, "f32") && strcmp(dtype, "bf16")) {
        fprintf(stderr, "--dtype: f32 or bf16\n");
        return 2;
    }
    const char *prof_env = getenv("PRISM_PROFILE");
    const bool prof = prof_env && !strcmp(prof_env, "1");
    if (cpu && prof)
        be = prism_profile_backend_create(cpu);
    prism_error err = {0};
    pali_model *m = NULL;
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_batch = maxB > lim.max_batch ? maxB : lim.max_batch;
    lim.max_seqs = maxB > lim.max_seqs ? maxB : lim.max_seqs;
    lim.max_new_tokens = n_new > lim.max_new_tokens ? n_new : lim.max_new_tokens;
    const double tl = prism_now();
    if (!be || pali_load(&m, argv[1], be, &lim, &err)) {
        fprintf(stderr, "%s\n", be ? err.msg : "cannot create the CPU backend");
        return 1;
    }
    const double load_s = prism_now() - tl;
    florence2_config fc;
    image_preproc pre;
    if (florence2_config_load(&fc, &pre, argv[1], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const size_t per = (size_t)fc.vision.in_channels * fc.image_size * fc.image_size;
    float *px = malloc((size_t)maxB * per * sizeof *px);
    pali_request *reqs = calloc((size_t)maxB, sizeof *reqs);
    double *steps = malloc((size_t)repeats * n_new * sizeof *steps);
    double *ttfts = malloc((size_t)repeats * sizeof *ttfts);
    double *prefills = malloc((size_t)repeats * sizeof *prefills);
    if (!px || !reqs || !steps || !ttfts || !prefills) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)maxB * per; i++)
        px[i] = rnd_pixel(&s);
    for (int i = 0; i < maxB; i++)
        reqs[i] = (pali_request){.pixels = px + i * per, .prompt_ids = prompt_ids,
                                 .n_prompt = N_PROMPT, .num_beams = 1, .length_penalty = 1.0f};
    printf("prism %s: %s, %d threads, %d x %d pixels, %d image tokens + %d prompt ids, %d new "
           "tokens (greedy), %d repeats; loaded in %.2f s\n\n",
           argv[1], dtype, threads, fc.image_size, fc.image_size, fc.n_image_tokens,
           N_PROMPT, n_new, repeats, load_s);
    printf("| batch | time to first token ms | prefill ms | decode tokens/s | ms/step (median) "
           "| steps |\n");
    printf("|-------|------------------------|------------|-----------------|------------------"
           "|-------|\n");
    fflush(stdout);
    run_times t;
    int rc = run_once(m, reqs, 1, 2, &t, steps, &err); /* warm-up */
    if (rc == 0 && phases)
        rc = time_phases(argv[1], be, px, &err);
    if (prof)
        prism_profile_reset(be);
    for (int bi = 0; rc == 0 && bi < n_batches; bi++) {
        const int B = batches[bi];
        int ns = 0;
        for (int r = 0; rc == 0 && r < repeats; r++) {
            rc = run_once(m, reqs, B, n_new, &t, steps + ns, &err);
            ns += t.n_steps;
            ttfts[r] = t.ttft;
            prefills[r] = t.prefill;
        }
        if (rc || ns == 0)
            break;
        qsort(steps, (size_t)ns, sizeof *steps, cmp_double);
        qsort(ttfts, (size_t)repeats, sizeof *ttfts, cmp_double);
        qsort(prefills, (size_t)repeats, sizeof *prefills, cmp_double);
        const double med = steps[ns / 2];
        printf("| %5d | %22.1f | %10.1f | %15.2f | %16.2f | %5d |\n", B,
               ttfts[repeats / 2] * 1e3, prefills[repeats / 2] * 1e3, B / med, med * 1e3, ns);
        if (prof) {
            prism_profile_report(be, stdout);
            prism_profile_reset(be);
        }
        fflush(stdout);
    }
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    else
        printf("\npeak RSS %.1f MiB\n", peak_rss_kib() / 1024.0);
    free(px), free(reqs), free(steps), free(ttfts), free(prefills);
    pali_free(m);
    if (be != cpu)
        prism_backend_destroy(be);
    prism_backend_destroy(cpu);
    return rc ? 1 : 0;
}
