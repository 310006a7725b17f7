/* cli_generate.c - the pali3 subcommands: `prism caption`, `prism ask`,
 * `prism bench` and `prism info` on a pali3 model.
 *
 *   prism caption --model DIR --pixels F.safetensors [--lang en]
 *                 [--max-new-tokens N] [--num-beams K] [--length-penalty F]
 *   prism ask     ... --question "what is on the table?"
 *   prism bench   --model PALI3_DIR [--batch 1,8] [--max-new-tokens 32]
 *   prism info    --model PALI3_DIR
 *
 * The options come parsed (main.c's table, cli_io.h's cli_opts). Every
 * image of pixel_values [B, C, S, S] (preprocessed, as SiglipImage-
 * Processor gives) gets its own request; the requests generate together in
 * one running batch (continuous batching when they exceed --max-seqs).
 * --image FILE (repeatable) decodes and preprocesses JPEG/PNG files as
 * SiglipImageProcessor does (engine/image.h: the model directory's
 * processor settings). --prompt-ids "id,id,..." replaces the prompt text
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
#include "gemma.h"
#include "pali.h"
#include "safetensors.h"

/* The size of each image as decoded (orientation applied): the frame of
 * the boxes. */
int cli_image_sizes(const cli_opts *o, int *w, int *h, prism_error *err)
{
#ifdef PRISM_HAVE_IMAGE
    for (int i = 0; i < o->images.n; i++) {
        size_t len;
        uint8_t *data = cli_read_file(o->images.v[i], &len, err);
        image_info info;
        int rc = data ? image_probe(data, len, &info, err) : -1;
        free(data);
        if (rc)
            return prism_error_prefix(err, "%s", o->images.v[i]);
        w[i] = info.out_width;
        h[i] = info.out_height;
    }
    return 0;
#else
    (void)o, (void)w, (void)h;
    return prism_errorf(err, "this build has no image decoding");
#endif
}

int cli_generate_images(pali_model *m, const cli_opts *o, const int32_t *ids, int n_ids,
                        pali_result *res, prism_error *err)
{
    if (o->pixels && o->pixels[0])
        return prism_errorf(err, "--pixels is for pali3 models; give this model --image files");
    const pali_config *c = pali_get_config(m);
    int n_img = 0;
    float *px = cli_read_images(o, &c->vision, &n_img, err);
    if (!px)
        return -1;
    pali_request *reqs = calloc((size_t)n_img + 1, sizeof *reqs);
    int rc = reqs ? 0 : prism_errorf(err, "out of memory");
    const size_t per = (size_t)3 * c->vision.image_size * c->vision.image_size;
    for (int i = 0; rc == 0 && i < n_img; i++)
        reqs[i] = (pali_request){.pixels = px + i * per, .prompt_ids = ids, .n_prompt = n_ids,
                                 .max_new_tokens = (int)o->max_new_tokens,
                                 .num_beams = (int)o->num_beams, .length_penalty = 1.0f};
    if (rc == 0)
        rc = pali_generate(m, reqs, n_img, res, err);
    free(px), free(reqs);
    return rc;
}

int cli_run_generation(unsigned cmd, const cli_opts *o, int max_prompt_tokens,
                       cli_generation_fn run)
{
    prism_error err = {0};
    char note[400];
    prism_backend *be = device_backend_create(o->device, o->dtype, (int)o->threads, o->reference,
                                              note, sizeof note, &err);
    if (!be) {
        fprintf(stderr, "prism: %s\n", err.msg);
        return 2;
    }
    const int beams = (int)o->num_beams, together = o->images.n < 4 ? o->images.n : 4;
    pali_limits lim = {.max_batch = 1, .max_seqs = beams * (together > 0 ? together : 1),
                       .max_new_tokens = (int)o->max_new_tokens,
                       .max_prompt_tokens = max_prompt_tokens, .max_beams = beams};
    pali_model *m = NULL;
    int rc = pali_load(&m, o->model, be, &lim, &err);
    if (rc == 0 && !pali_get_info(m)->has_tokenizer)
        rc = prism_errorf(&err, "%s has no tokenizer (tokenizer.model or tokenizer.json; "
                          "Florence-2: tokenizer.json, or vocab.json and merges.txt)", o->model);
    if (rc == 0)
        rc = run(cmd, o, m, &err);
    if (rc)
        fprintf(stderr, "prism: %s\n", err.msg);
    pali_free(m);
    prism_backend_destroy(be);
    return rc ? 1 : 0;
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

float *cli_read_images(const cli_opts *o, const siglip_vision_config *vc, int *n,
                       prism_error *err)
{
#ifdef PRISM_HAVE_IMAGE
    image_preproc pp;
    const int S = vc->image_size;
    if (image_preproc_load(&pp, o->model, err))
        return NULL;
    if (pp.source == IMAGE_PREPROC_DEFAULTS) { /* SigLIP's defaults at the tower's size */
        pp.width = pp.height = S;
        cli_note_image_defaults(o->model, S);
    }
    if (pp.width != S || pp.height != S || vc->num_channels != 3) {
        prism_errorf(err, "%s/%s: the image processor's size %dx%d differs from the vision "
                     "tower's %d", o->model, image_preproc_source_name(&pp), pp.width,
                     pp.height, S);
        return NULL;
    }
    const size_t per = (size_t)3 * S * S;
    float *px = malloc((size_t)o->images.n * per * sizeof *px);
    if (!px) {
        prism_errorf(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < o->images.n; i++) {
        size_t len;
        uint8_t *data = cli_read_file(o->images.v[i], &len, err);
        int rc = data ? image_to_pixel_values(data, len, &pp, (size_t)1 << 28, px + i * per, err)
                      : -1;
        if (rc && data)
            prism_error_prefix(err, "%s", o->images.v[i]);
        free(data);
        if (rc) {
            free(px);
            return NULL;
        }
    }
    *n = o->images.n;
    return px;
#else
    (void)o, (void)vc, (void)n;
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

static int run(const cli_opts *o, bool ask, pali_model *m, prism_error *err)
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
    if (o->prompt_ids[0]) {
        snprintf(prompt, sizeof prompt, "%s", o->prompt_ids);
        rc = parse_ids(o->prompt_ids, ids, lim->max_prompt_tokens, &n_ids, err);
    } else {
        rc = pali_prompt_text(m, ask ? PALI_TASK_VQA : PALI_TASK_CAPTION, o->lang, o->question,
                              prompt, sizeof prompt, err) ||
             pali_tokenize(m, prompt, ids, lim->max_prompt_tokens, &n_ids, err) ? -1 : 0;
    }
    if (rc == 0 && o->images.n && o->pixels[0])
        rc = prism_errorf(err, "give --pixels or --image, not both");
    if (rc == 0 && o->images.n && !(px = cli_read_images(o, &c->vision, &n_img, err)))
        rc = -1;
    if (rc == 0 && o->pixels[0] && !(px = read_pixels(o->pixels, c, &n_img, err)))
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
                                 .max_new_tokens = (int)o->max_new_tokens,
                                 .num_beams = (int)o->num_beams,
                                 .length_penalty = (float)o->length_penalty,
                                 .t_submit = prism_now()};
    if (rc == 0)
        rc = pali_generate(m, reqs, n_img, res, err);
    for (int i = 0; rc == 0 && i < n_img; i++) {
        char *text = NULL;
        prism_error terr;
        bool have_text = pali_detokenize(m, res[i].ids, res[i].n_ids, &text, &terr) == 0;
        printf("{\"model\": ");
        cli_print_json_string(stdout, o->model);
        printf(", \"prompt\": ");
        cli_print_json_string(stdout, prompt);
        printf(", \"text\": ");
        if (have_text)
            cli_print_json_string(stdout, text);
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

static const cli_column bench_cols[] = {
    {"batch", 5, false},
    {"time to first token ms", 10, false},
    {"decode tokens/s", 10, false},
    {"ms/step (median)", 10, false},
    {"steps", 6, false},
};
#define N_BENCH_COLS (int)(sizeof bench_cols / sizeof bench_cols[0])

static int largest_batch(const cli_opts *o)
{
    int maxB = 1;
    for (int i = 0; i < o->batches.n; i++)
        maxB = (int)o->batches.v[i] > maxB ? (int)o->batches.v[i] : maxB;
    return maxB;
}

/* Time to first token: best of `repeats` runs; decode tokens/s: B over
 * the median decode step of all runs (robust to the host's other load).
 * tools/bench/bench_transformers_pali3.py measures transformers the same
 * way. */
static int bench(const cli_opts *o, const char *note, pali_model *m, prism_error *err)
{
    const pali_config *c = pali_get_config(m);
    const size_t per = (size_t)c->vision.num_channels * c->vision.image_size * c->vision.image_size;
    const int maxB = largest_batch(o);
    float *px = malloc((size_t)maxB * per * sizeof *px);
    pali_request *reqs = calloc((size_t)maxB, sizeof *reqs);
    double *steps = malloc((size_t)o->repeats * o->max_new_tokens * sizeof *steps);
    /* a 3-token prompt: like "caption en</s>" for pali3; for PaliGemma <bos>
     * and two ids, after the image tokens (ending in <eos> would make a
     * random-weight model, whose tied head echoes the last token, stop at once) */
    static const int32_t prompt_pali3[] = {3, 5, 1}, prompt_gemma[] = {2, 3, 5};
    const int32_t *prompt = pali_get_info(m)->paligemma ? prompt_gemma : prompt_pali3;
    if (!px || !reqs || !steps) {
        free(px), free(reqs), free(steps);
        return prism_errorf(err, "out of memory");
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)maxB * per; i++)
        px[i] = rnd_pixel(&s);
    for (int i = 0; i < maxB; i++)
        reqs[i] = (pali_request){.pixels = px + i * per, .prompt_ids = prompt, .n_prompt = 3,
                                 .num_beams = (int)o->num_beams, .length_penalty = 1.0f};
    printf("model %s, %s, %d image tokens, %lld new tokens, %lld beam(s)\n\n", o->model, note,
           c->image_token_count, o->max_new_tokens, o->num_beams);
    cli_table_header(stdout, bench_cols, N_BENCH_COLS);
    double ttft = 0;
    int rc = run_once(m, reqs, 1, 2, &ttft, steps, err) < 0 ? -1 : 0; /* warm-up */
    for (int bi = 0; rc == 0 && bi < o->batches.n; bi++) {
        const int B = (int)o->batches.v[bi];
        double best = 1e30;
        int ns = 0;
        for (int r = 0; rc == 0 && r < o->repeats; r++) {
            int n = run_once(m, reqs, B, (int)o->max_new_tokens, &ttft, steps + ns, err);
            if (n < 0)
                rc = -1;
            ns += n > 0 ? n : 0;
            best = ttft < best ? ttft : best;
        }
        if (rc || ns == 0)
            break;
        qsort(steps, (size_t)ns, sizeof *steps, cmp_double);
        const double med = steps[ns / 2];
        char cells[N_BENCH_COLS][32];
        snprintf(cells[0], sizeof cells[0], "%d", B);
        snprintf(cells[1], sizeof cells[1], "%.1f", best * 1e3);
        snprintf(cells[2], sizeof cells[2], "%.2f", B / med);
        snprintf(cells[3], sizeof cells[3], "%.2f", med * 1e3);
        snprintf(cells[4], sizeof cells[4], "%d", ns);
        const char *row[N_BENCH_COLS] = {cells[0], cells[1], cells[2], cells[3], cells[4]};
        cli_table_row(stdout, bench_cols, N_BENCH_COLS, row);
        fflush(stdout);
    }
    free(px), free(reqs), free(steps);
    return rc;
}

/* PaliGemma's decoder, the last member of `prism info`'s object. */
static void print_gemma(const gemma_config *g)
{
    printf("  \"text\": {\"model_type\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d, "
           "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
           "\"num_key_value_heads\": %d, \"head_dim\": %d, \"rms_norm_eps\": %g, "
           "\"rope_theta\": %g, \"query_pre_attn_scalar\": %g, \"attn_logit_softcapping\": %g, "
           "\"final_logit_softcapping\": %g, \"sliding_window\": %d}\n}\n",
           g->gemma2 ? "gemma2" : "gemma", g->vocab_size, g->hidden_size, g->intermediate_size,
           g->num_hidden_layers, g->num_attention_heads, g->num_key_value_heads, g->head_dim,
           (double)g->rms_norm_eps, (double)g->rope_theta, (double)g->query_pre_attn_scalar,
           (double)g->attn_logit_softcapping, (double)g->final_logit_softcapping,
           g->sliding_window);
}

static void print_info(const cli_opts *o, pali_model *m, prism_backend *be)
{
    const pali_config *c = pali_get_config(m);
    const pali_info *in = pali_get_info(m);
    const siglip_vision_config *v = &c->vision;
    const t5_config *t = &c->text;
    printf("{\n  \"model\": ");
    cli_print_json_string(stdout, o->model);
    printf(",\n  \"model_type\": \"%s\",\n", in->paligemma ? "paligemma" : "pali3");
    printf("  \"backend\": \"%s\",\n  \"threads\": %d,\n", be->ops->name, be->n_threads);
    if (!in->paligemma)
        printf("  \"files\": %d,\n  \"tensors\": %lld,\n  \"unused_tensors\": %lld,\n",
               in->n_files, (long long)in->n_tensors, (long long)in->n_unused);
    printf("  \"parameters\": %lld,\n", (long long)in->n_params);
    printf("  \"lm_head_tied\": %s,\n  \"has_tokenizer\": %s,\n",
           in->lm_head_tied ? "true" : "false", in->has_tokenizer ? "true" : "false");
    printf("  \"image_token_count\": %d,\n", c->image_token_count);
    printf("  \"prompt_templates\": {\"caption\": ");
    cli_print_json_string(stdout, c->caption_template);
    printf(", \"vqa\": ");
    cli_print_json_string(stdout, c->vqa_template);
    printf("},\n");
    printf("  \"vision\": {\"hidden_size\": %d, \"intermediate_size\": %d, "
           "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"layer_norm_eps\": %g, "
           "\"hidden_act\": \"%s\", \"num_channels\": %d, \"image_size\": %d, "
           "\"patch_size\": %d},\n",
           v->t.hidden_size, v->t.intermediate_size, v->t.num_hidden_layers,
           v->t.num_attention_heads, (double)v->t.layer_norm_eps, prism_act_name(v->t.hidden_act),
           v->num_channels, v->image_size, v->patch_size);
    if (in->paligemma) {
        print_gemma(pali_get_gemma_config(m));
        return;
    }
    printf("  \"text\": {\"vocab_size\": %d, \"d_model\": %d, \"d_kv\": %d, \"d_ff\": %d, "
           "\"num_layers\": %d, \"num_decoder_layers\": %d, \"num_heads\": %d, "
           "\"relative_attention_num_buckets\": %d, \"relative_attention_max_distance\": %d, "
           "\"layer_norm_epsilon\": %g, \"feed_forward_proj\": ",
           t->vocab_size, t->d_model, t->d_kv, t->d_ff, t->num_layers, t->num_decoder_layers,
           t->num_heads, t->relative_attention_num_buckets, t->relative_attention_max_distance,
           (double)t->layer_norm_epsilon);
    cli_print_json_string(stdout, t->feed_forward_proj);
    printf(", \"is_gated_act\": %s, \"pad_token_id\": %d, \"eos_token_id\": %d, "
           "\"decoder_start_token_id\": %d}\n}\n",
           t->is_gated_act ? "true" : "false", t->pad_token_id, t->eos_token_id,
           t->decoder_start_token_id);
}

int cli_generate_main(unsigned cmd, const cli_opts *o)
{
    prism_error err = {0};
    char note[400];
    if (o->prompt && o->prompt[0]) {
        fprintf(stderr, "prism: --prompt is for PaliGemma models; a pali3 model builds its "
                "prompt from --lang and --question (or takes --prompt-ids)\n");
        return 2;
    }
    prism_backend *be = device_backend_create(o->device, o->dtype, (int)o->threads, o->reference,
                                              note, sizeof note, &err);
    if (!be) {
        fprintf(stderr, "prism: %s\n", err.msg);
        return 2;
    }
    pali_limits lim;
    pali_limits_default(&lim);
    if (cmd & (CLI_CAPTION | CLI_ASK)) {
        lim.max_new_tokens = (int)o->max_new_tokens;
        lim.max_seqs = (int)o->max_seqs;
        lim.max_beams = (int)o->num_beams;
    } else if (cmd == CLI_BENCH_PALI3) {
        lim.max_new_tokens = (int)o->max_new_tokens;
        lim.max_beams = (int)o->num_beams;
        lim.max_batch = largest_batch(o);
        lim.max_seqs = lim.max_batch * lim.max_beams;
    } else { /* info: the smallest buffers */
        lim.max_batch = lim.max_seqs = lim.max_beams = 1;
    }
    pali_model *m = NULL;
    int rc = pali_load(&m, o->model, be, &lim, &err);
    if (rc == 0 && cmd == CLI_INFO)
        print_info(o, m, be);
    else if (rc == 0)
        rc = cmd == CLI_BENCH_PALI3 ? bench(o, note, m, &err) : run(o, cmd == CLI_ASK, m, &err);
    if (rc)
        fprintf(stderr, "prism: %s\n", err.msg);
    pali_free(m);
    prism_backend_destroy(be);
    return rc ? 1 : 0;
}
