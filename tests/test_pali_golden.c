/* test_pali_golden.c - PaLI-3-style generation against transformers.
 *
 * tools/reference/make_pali3_goldens.py built three tiny random pali3
 * checkpoints (gated-gelu with an untied lm_head, F32; gated-silu tied with
 * 16 buckets / max distance 20, BF16 sharded, with the SigLIP pooling head
 * left in the file; relu tied with the old embed_tokens copies, F16; every
 * one with d_kv ≠ d_model / heads) and dumped, per prompt, transformers'
 * encoder states, first-step logits, and generate() ids for greedy and for
 * beam search (3 beams, length_penalty ≠ 1).
 *
 * Each checkpoint runs on the CPU fast path and on the reference loops (the
 * BF16 one also with BF16 matrix weights, --dtype bf16), all
 * prompts batched (max_batch 2: prefill in chunks) and one at a time, and
 * with so few sequence slots that requests join a running batch as others
 * finish (greedy and beam requests mixed).
 *
 * Tolerances: encoder states and logits within 1e-4 absolute (the issue's
 * bound): both sides compute in float32 with different summation orders
 * (observed ~1e-6 here); a wrong op gives differences of order 0.1.
 * Generated ids must match exactly; the script reports the smallest greedy
 * top-1/top-2 logit gap (4e-4), far above the float differences.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_profile.h"
#include "pali.h"
#include "test_util.h"

static const char *const models[] = {"pali3_tiny_a", "pali3_tiny_b", "pali3_tiny_c"};
#define N_MODELS 3

typedef struct golden {
    st_file f;
    int P, C, S, Lp, T, D, V, G;
    float *pixels, *enc, *logits;
    int32_t *prompt;   /* [P, Lp] */
    int *prompt_len;
    int32_t *greedy, *beam; /* [P, G] */
    int *greedy_len, *beam_len;
    int max_new, num_beams;
    float lp;
} golden;

static int64_t geti(const st_file *f, const char *name, int64_t i)
{
    const st_tensor *t = st_file_find(f, name);
    ck_assert_msg(t && t->dtype == PRISM_DT_I64 && i < t->numel, "golden %s", name);
    int64_t v;
    memcpy(&v, t->data + 8 * i, 8);
    return v;
}

static int32_t *get_ids(const st_file *f, const char *name, int *cols)
{
    const st_tensor *t = st_file_find(f, name);
    ck_assert(t && t->ndim == 2);
    *cols = (int)t->shape[1];
    int32_t *out = malloc((size_t)t->numel * sizeof *out);
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = (int32_t)geti(f, name, i);
    return out;
}

static int *get_lens(const st_file *f, const char *name, int n)
{
    int *out = malloc((size_t)n * sizeof *out);
    for (int i = 0; i < n; i++)
        out[i] = (int)geti(f, name, i);
    return out;
}

static void golden_open(golden *g, const char *model)
{
    char path[4096], name[256];
    prism_error err = {0};
    snprintf(name, sizeof name, "%s.golden.safetensors", model);
    test_data_path(path, sizeof path, name);
    ck_assert_msg(st_file_open(&g->f, path, &err) == 0, "%s", err.msg);
    const st_tensor *pv = st_file_find(&g->f, "pixel_values");
    const st_tensor *es = st_file_find(&g->f, "encoder_states");
    const st_tensor *fl = st_file_find(&g->f, "first_logits");
    ck_assert(pv && es && fl);
    g->P = (int)pv->shape[0];
    g->C = (int)pv->shape[1];
    g->S = (int)pv->shape[2];
    g->T = (int)es->shape[1];
    g->D = (int)es->shape[2];
    g->V = (int)fl->shape[1];
    g->pixels = test_golden_f32(&g->f, "pixel_values", NULL);
    g->enc = test_golden_f32(&g->f, "encoder_states", NULL);
    g->logits = test_golden_f32(&g->f, "first_logits", NULL);
    g->prompt = get_ids(&g->f, "prompt_ids", &g->Lp);
    g->prompt_len = get_lens(&g->f, "prompt_len", g->P);
    g->greedy = get_ids(&g->f, "greedy_ids", &g->G);
    g->beam = get_ids(&g->f, "beam_ids", &g->G);
    g->greedy_len = get_lens(&g->f, "greedy_len", g->P);
    g->beam_len = get_lens(&g->f, "beam_len", g->P);
    g->max_new = (int)geti(&g->f, "max_new_tokens", 0);
    g->num_beams = (int)geti(&g->f, "num_beams", 0);
    float *lp = test_golden_f32(&g->f, "length_penalty", NULL);
    g->lp = lp[0];
    free(lp);
}

static void golden_close(golden *g)
{
    free(g->pixels), free(g->enc), free(g->logits), free(g->prompt), free(g->prompt_len);
    free(g->greedy), free(g->beam), free(g->greedy_len), free(g->beam_len);
    st_file_close(&g->f);
}

static pali_request make_req(const golden *g, int i, bool beam)
{
    return (pali_request){
        .pixels = g->pixels + (size_t)i * g->C * g->S * g->S,
        .prompt_ids = g->prompt + (size_t)i * g->Lp,
        .n_prompt = g->prompt_len[i],
        .max_new_tokens = g->max_new,
        .num_beams = beam ? g->num_beams : 1,
        .length_penalty = g->lp,
    };
}

static void expect_ids(const golden *g, int i, bool beam, const pali_result *r, const char *what)
{
    const int n = beam ? g->beam_len[i] : g->greedy_len[i];
    const int32_t *want = (beam ? g->beam : g->greedy) + (size_t)i * g->G;
    char got[512] = "", exp[512] = "";
    for (int t = 0; t < r->n_ids && t < 40; t++)
        snprintf(got + strlen(got), sizeof got - strlen(got), " %d", r->ids[t]);
    for (int t = 0; t < n; t++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), " %d", want[t]);
    ck_assert_msg(r->n_ids == n && memcmp(r->ids, want, (size_t)n * sizeof *want) == 0,
                  "%s: prompt %d %s: got [%s ] want [%s ]", what, i, beam ? "beam" : "greedy",
                  got, exp);
    const bool eos = n > 0 && want[n - 1] == 1;
    ck_assert_int_eq(r->finish, eos ? PALI_FINISH_EOS : PALI_FINISH_LENGTH);
}

static pali_model *load(const char *model, prism_backend *be, int max_batch, int max_seqs,
                        int max_new)
{
    char dir[4096];
    test_data_path(dir, sizeof dir, model);
    pali_limits lim;
    pali_limits_default(&lim);
    lim.max_batch = max_batch;
    lim.max_seqs = max_seqs;
    lim.max_new_tokens = max_new;
    lim.max_prompt_tokens = 16;
    lim.max_beams = 3;
    prism_error err = {0};
    pali_model *m = NULL;
    ck_assert_msg(pali_load(&m, dir, be, &lim, &err) == 0, "%s", err.msg);
    return m;
}

/* Encoder states, first-step logits, and ids batched and one at a time. */
START_TEST(test_golden)
{
    /* loops 0..5: each model on the fast and the reference path; loop 6:
     * the BF16 checkpoint with BF16 matrix weights, which must compute
     * exactly what float32 weights do (BF16 → float is exact) */
    const bool bf16 = _i == 2 * N_MODELS;
    const char *model = bf16 ? "pali3_tiny_b" : models[_i / 2];
    const bool reference = !bf16 && _i % 2;
    golden g;
    golden_open(&g, model);
    prism_backend *be = prism_cpu_backend_create(2, reference);
    if (bf16)
        ck_assert_int_eq(prism_cpu_backend_set_bf16_matrices(be, true), 0);
    pali_model *m = load(model, be, 2, 16, g.max_new);
    prism_error err = {0};
    const int N = pali_get_config(m)->image_token_count;
    char what[128];
    snprintf(what, sizeof what, "%s (%s)", model, reference ? "reference" : bf16 ? "fast, BF16" : "fast");

    float *states = malloc((size_t)g.T * g.D * sizeof *states);
    float *logits = malloc((size_t)g.V * sizeof *logits);
    for (int i = 0; i < g.P; i++) {
        pali_request r = make_req(&g, i, false);
        ck_assert_msg(pali_encode(m, r.pixels, r.prompt_ids, r.n_prompt, states, &err) == 0,
                      "%s", err.msg);
        const int rows = N + g.prompt_len[i];
        double d = test_max_abs_diff(states, g.enc + (size_t)i * g.T * g.D, (size_t)rows * g.D);
        ck_assert_msg(d <= 1e-4, "%s: prompt %d: encoder states differ by %g", what, i, d);

        pali_gen *gen;
        int h;
        ck_assert_msg(pali_gen_create(&gen, m, &err) == 0, "%s", err.msg);
        ck_assert_msg(pali_gen_start(gen, &r, 1, &h, &err) == 0, "%s", err.msg);
        ck_assert_msg(pali_gen_step(gen, &err) == 0, "%s", err.msg);
        ck_assert_msg(pali_gen_logits(gen, h, logits, &err) == 0, "%s", err.msg);
        d = test_max_abs_diff(logits, g.logits + (size_t)i * g.V, (size_t)g.V);
        ck_assert_msg(d <= 1e-4, "%s: prompt %d: first-step logits differ by %g", what, i, d);
        pali_gen_free(gen);
    }

    pali_request *reqs = malloc((size_t)g.P * sizeof *reqs);
    pali_result *res = malloc((size_t)g.P * sizeof *res);
    for (int beam = 0; beam < 2; beam++) {
        for (int i = 0; i < g.P; i++)
            reqs[i] = make_req(&g, i, beam);
        /* all prompts in one running batch */
        ck_assert_msg(pali_generate(m, reqs, g.P, res, &err) == 0, "%s", err.msg);
        for (int i = 0; i < g.P; i++) {
            expect_ids(&g, i, beam, &res[i], what);
            pali_result_free(&res[i]);
        }
        /* one at a time */
        for (int i = 0; i < g.P; i++) {
            ck_assert_msg(pali_generate(m, &reqs[i], 1, &res[i], &err) == 0, "%s", err.msg);
            expect_ids(&g, i, beam, &res[i], what);
            pali_result_free(&res[i]);
        }
    }
    free(reqs), free(res), free(states), free(logits);
    pali_free(m);
    prism_backend_destroy(be);
    golden_close(&g);
}
END_TEST

/* Continuous batching: 7 sequence slots for 5 greedy + 5 beam requests
 * (20 sequences): requests join the running batch as others finish, and
 * every result still equals the reference. */
START_TEST(test_join_running_batch)
{
    const char *model = models[_i];
    golden g;
    golden_open(&g, model);
    /* through the profile wrapper, which counts backend allocations */
    prism_backend *cpu = prism_cpu_backend_create(2, false);
    prism_backend *be = prism_profile_backend_create(cpu);
    pali_model *m = load(model, be, 3, 7, g.max_new);
    prism_error err = {0};
    const int n = 2 * g.P;
    pali_request *reqs = malloc((size_t)n * sizeof *reqs);
    pali_result *res = malloc((size_t)n * sizeof *res);
    for (int i = 0; i < n; i++) /* interleaved: beam, greedy, beam, ... */
        reqs[i] = make_req(&g, i / 2, i % 2 == 0);
    ck_assert_msg(pali_generate(m, reqs, n, res, &err) == 0, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        expect_ids(&g, i / 2, i % 2 == 0, &res[i], model);
        pali_result_free(&res[i]);
    }

    /* by hand: a request joins after two steps of another */
    pali_gen *gen;
    int h0, h1;
    ck_assert_msg(pali_gen_create(&gen, m, &err) == 0, "%s", err.msg);
    const long allocs = prism_profile_alloc_calls(be); /* load and pali_gen_create: done */
    ck_assert_int_gt(allocs, 0); /* the wrapper sees the model's allocations */
    ck_assert_int_eq(pali_gen_start(gen, &reqs[0], 1, &h0, &err), 0);
    ck_assert_int_eq(pali_gen_step(gen, &err), 0);
    ck_assert_int_eq(pali_gen_step(gen, &err), 0);
    ck_assert_int_eq(pali_gen_start(gen, &reqs[3], 1, &h1, &err), 0);
    ck_assert_int_eq(pali_gen_running(gen), 2);
    const int32_t *ids;
    int nt;
    ck_assert_int_eq(pali_gen_tokens(gen, h1, &ids, &nt), 0); /* greedy: streamable */
    ck_assert_int_eq(nt, 0);
    ck_assert_int_eq(pali_gen_tokens(gen, h0, &ids, &nt), -1); /* beam: not */
    int got = 0;
    while (got < 2) {
        ck_assert_int_eq(pali_gen_step(gen, &err), 0);
        pali_result r;
        while (pali_gen_take(gen, &r)) {
            ck_assert(r.handle == h0 || r.handle == h1);
            expect_ids(&g, r.handle == h0 ? 0 : 1, r.handle == h0, &r, "joined");
            ck_assert(r.ttft_seconds > 0 && r.total_seconds >= r.ttft_seconds);
            pali_result_free(&r);
            got++;
        }
    }
    const pali_gen_stats *st = pali_gen_get_stats(gen);
    ck_assert_int_eq((int)st->requests_started, 2);
    ck_assert_int_eq((int)st->requests_finished, 2);
    ck_assert_int_eq((int)st->ttft_count, 2);
    ck_assert_int_eq(st->running_requests, 0);
    ck_assert_int_eq(st->running_sequences, 0);
    ck_assert_int_eq(pali_gen_free_seqs(gen), 7);
    ck_assert(st->steps >= 2 && st->step_seconds_total > 0);
    /* starting requests and decode steps allocate no backend (device) memory:
     * everything was allocated for the limits at load */
    ck_assert_int_eq(prism_profile_alloc_calls(be), allocs);
    pali_gen_free(gen);
    free(reqs), free(res);
    pali_free(m);
    prism_backend_destroy(be);
    prism_backend_destroy(cpu);
    golden_close(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pali_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_golden, 0, 2 * N_MODELS + 1);
    tcase_add_loop_test(tc, test_join_running_batch, 0, N_MODELS);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
