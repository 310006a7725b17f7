/* main.c - the `prism` binary: subcommands over the engine.
 *
 *   prism info     --model DIR                   what was loaded, as JSON (SigLIP or pali3)
 *   prism embed    --model DIR --image F --text S   embeddings, as JSON
 *   prism score    --model DIR --inputs F.st     logits and probabilities, as JSON
 *   prism classify --model DIR --image F --label L...   zero-shot labels, as JSON
 *   prism bench    --model DIR                   throughput against the sgemm floor
 *   prism caption | ask --model PALI3_DIR ...    generation (cli_generate.c)
 *   prism serve    --model DIR [options]         the HTTP server (serve.c, config.c)
 *
 * Every subcommand's options are rows of one table below (opts.h): a row
 * says which commands take it, so `prism CMD --help` lists exactly those.
 * A usage error exits 2, a failure while running 1.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_request.h"
#include "backend.h"
#include "cli_generate.h"
#include "cli_florence2.h"
#include "cli_paligemma.h"
#include "florence2.h"
#include "paligemma.h"
#include "cli_io.h"
#include "device.h"
#include "opts.h"
#include "pali.h"
#include "serve.h"
#include "siglip.h"

#define F(field) offsetof(cli_opts, field)

/* Which commands take a row. */
#define SIGLIP_IN (CLI_EMBED | CLI_SCORE)
#define PALI_RUN (CLI_CAPTION | CLI_ASK)
#define GEN_RUN (PALI_RUN | CLI_DETECT)

static const opt_spec cli_rows[] = {
    {"model", OPT_STR, F(model), "", 0, 0, NULL,
     "SigLIP model directory as the hub ships it (config.json, model.safetensors, "
     "spiece.model, processor_config.json or preprocessor_config.json)", .required = true,
     .arg = "DIR", .cmds = SIGLIP_IN | CLI_CLASSIFY | CLI_BENCH},
    {"model", OPT_STR, F(model), "", 0, 0, NULL,
     "a SigLIP model directory as the hub ships it, or a pali3 one (docs/pali3.md)",
     .required = true, .arg = "DIR", .cmds = CLI_INFO},
    {"model", OPT_STR, F(model), "", 0, 0, NULL,
     "a pali3 model directory (docs/pali3.md), or a PaliGemma or Florence-2 one as the hub "
     "ships it (docs/paligemma.md, docs/florence2.md)", .required = true, .arg = "DIR",
     .cmds = PALI_RUN},
    {"model", OPT_STR, F(model), "", 0, 0, NULL, "a pali3 model directory (docs/pali3.md)",
     .required = true, .arg = "DIR", .cmds = CLI_BENCH_PALI3},
    {"model", OPT_STR, F(model), "", 0, 0, NULL,
     "a PaliGemma or Florence-2 model directory as the hub ships it (docs/paligemma.md, "
     "docs/florence2.md)", .required = true, .arg = "DIR", .cmds = CLI_DETECT},
    {"inputs", OPT_STR, F(inputs), "", 0, 0, NULL,
     ".safetensors with pixel_values [B, C, S, S] and/or input_ids [B, T], preprocessed "
     "(instead of --image and --text)", .arg = "FILE", .cmds = SIGLIP_IN},
    {"image", OPT_LIST, F(images), NULL, 0, 0, NULL,
     "a JPEG or PNG file, decoded and preprocessed as the server does", .arg = "FILE",
     .cmds = SIGLIP_IN | CLI_CLASSIFY | GEN_RUN},
    {"text", OPT_LIST, F(texts), NULL, 0, 0, NULL,
     "a text, tokenized with the model's spiece.model", .arg = "TEXT", .cmds = SIGLIP_IN},
    {"label", OPT_LIST, F(labels), NULL, 0, 0, NULL, "a candidate label", .required = true,
     .arg = "TEXT", .cmds = CLI_CLASSIFY},
    {"label", OPT_LIST, F(labels), NULL, 0, 0, NULL,
     "an object to find (PaliGemma: the prompt is \"detect A ; B\"; Florence-2: phrase "
     "grounding of \"A, B\", all objects (<OD>) without labels)", .arg = "TEXT",
     .cmds = CLI_DETECT},
    {"prompt", OPT_STR, F(prompt), "", 0, 0, NULL,
     "PaliGemma, Florence-2: the task text itself (\"ocr\", \"caption es\"; \"<OCR>\", "
     "\"<OD>\", ...) instead of the command's", .arg = "TEXT", .cmds = GEN_RUN},
    {"detail", OPT_STR, F(detail), "brief", 0, 0, NULL,
     "Florence-2: how detailed a caption: brief, detailed or more_detailed", .arg = "LEVEL",
     .cmds = CLI_CAPTION},
    {"template", OPT_STR, F(label_template), API_DEFAULT_TEMPLATE, 0, 0, NULL,
     "the text each label is put into: every {} becomes the label (as POST /v1/classify)",
     .arg = "TEXT", .cmds = CLI_CLASSIFY},
    {"pixels", OPT_STR, F(pixels), "", 0, 0, NULL,
     ".safetensors with pixel_values [B, C, S, S], preprocessed (instead of --image)",
     .arg = "FILE", .cmds = PALI_RUN},
    {"lang", OPT_STR, F(lang), "en", 0, 0, NULL, "language in the prompt template",
     .arg = "L", .cmds = PALI_RUN},
    {"question", OPT_STR, F(question), "", 0, 0, NULL, "the question", .arg = "TEXT",
     .cmds = CLI_ASK},
    {"prompt-ids", OPT_STR, F(prompt_ids), "", 0, 0, NULL,
     "comma-separated prompt ids, </s> included, instead of the template (a model without "
     "spiece.model)", .arg = "ID,ID,...", .cmds = PALI_RUN},
    {"max-new-tokens", OPT_INT, F(max_new_tokens), "32", 1, 32768, NULL,
     "tokens generated at most per image", .cmds = GEN_RUN | CLI_BENCH_PALI3},
    {"num-beams", OPT_INT, F(num_beams), "1", 1, 64, NULL,
     "beam search width (1: greedy; PaliGemma: greedy only)", .arg = "K",
     .cmds = GEN_RUN | CLI_BENCH_PALI3},
    {"length-penalty", OPT_NUM, F(length_penalty), "1", -100, 100, NULL,
     "beam search: a finished hypothesis scores sum_logprobs / length^F", .arg = "F",
     .cmds = PALI_RUN},
    {"max-seqs", OPT_INT, F(max_seqs), "16", 1, 4096, NULL,
     "decoder sequences (beams count one each) run together; more images wait their turn",
     .cmds = PALI_RUN},
    {"device", OPT_CHOICE, F(device), "auto", 0, 0, "auto|cpu|cuda",
     .help = "compute device: auto takes the GPU when this build has CUDA and one is present, else "
     "the CPU"},
    {"dtype", OPT_CHOICE, F(dtype), "auto", 0, 0, "auto|bf16|f16|f32|int8",
     .help = "matmul arithmetic: auto = bf16 on a GPU, f32 (exact) on the CPU; bf16 on the CPU "
     "computes in BF16 where it can; int8 is CPU only; f16 is GPU only"},
    {"threads", OPT_INT, F(threads), "0", 0, 1024, NULL, "CPU threads (0: all cores)",
     .env = true},
    {"max-batch", OPT_INT, F(max_batch), "32", 1, 4096, NULL, "inputs run together",
     .cmds = SIGLIP_IN | CLI_CLASSIFY},
    {"no-normalize", OPT_FLAG, F(no_normalize), NULL, 0, 0, NULL,
     "print the pooled outputs instead of unit vectors", .cmds = CLI_EMBED},
    {"reference", OPT_FLAG, F(reference), NULL, 0, 0, NULL,
     .help = "the CPU's plain reference loops instead of the fast path"},
    {"batch", OPT_INTS, F(batches), "1,8,32", 1, 4096, NULL, "batch sizes measured",
     .cmds = CLI_BENCH},
    {"batch", OPT_INTS, F(batches), "1,8", 1, 1024, NULL,
     "batch sizes measured (requests started together)", .cmds = CLI_BENCH_PALI3},
    {"min-time", OPT_NUM, F(min_time), "3", 0, 3600, NULL, "seconds per measurement",
     .arg = "SEC", .cmds = CLI_BENCH},
    {"json", OPT_FLAG, F(json), NULL, 0, 0, NULL,
     "one JSON object per line instead of a table", .cmds = CLI_BENCH},
    {"repeats", OPT_INT, F(repeats), "3", 1, 1000, NULL,
     "runs per batch size (time to first token: the best; decode: the median step)",
     .cmds = CLI_BENCH_PALI3},
};

typedef struct cli_command {
    const char *name;
    unsigned bit;
    const char *usage; /* the help before the options */
    const char *footer;
} cli_command;

static const cli_command commands[] = {
    {"info", CLI_INFO,
     "usage: prism info --model DIR [options]\n\n"
     "Prints what was loaded as JSON: the configuration of a SigLIP or pali3 model,\n"
     "its files, tensors, parameters and bytes by dtype.\n\noptions:\n", NULL},
    {"embed", CLI_EMBED,
     "usage: prism embed --model DIR (--image FILE | --text TEXT)... [options]\n"
     "       prism embed --model DIR --inputs FILE [options]\n\n"
     "Prints image and/or text embeddings as JSON, L2-normalised unless --no-normalize.\n\n"
     "options:\n", NULL},
    {"score", CLI_SCORE,
     "usage: prism score --model DIR --image FILE... --text TEXT... [options]\n"
     "       prism score --model DIR --inputs FILE [options]\n\n"
     "Prints logits (images x texts) and probs = sigmoid(logits) as JSON, each pair\n"
     "independent, as SigLIP is trained.\n\noptions:\n", NULL},
    {"classify", CLI_CLASSIFY,
     "usage: prism classify --model DIR --image FILE... --label TEXT... [options]\n\n"
     "Zero-shot labels, as POST /v1/classify computes them: each label goes into the\n"
     "template, and its score is sigmoid(logit) of the image against that text. Prints\n"
     "one JSON object per image, {\"model\", \"image\", \"labels\": [{\"label\", \"score\"}]},\n"
     "labels sorted by score (ties keep the order given).\n\noptions:\n", NULL},
    {"bench", CLI_BENCH,
     "usage: prism bench --model DIR [options]\n\n"
     "Images/s and texts/s of a SigLIP model at several batch sizes on the CPU, beside\n"
     "this machine's sgemm rate measured in the same run (a markdown table, or JSON).\n\n"
     "options:\n",
     "\nWith a pali3 or PaliGemma model, bench measures generation and takes other options:\n"
     "prism bench --model PALI3_DIR --help lists them.\n"},
    {"caption", CLI_CAPTION,
     "usage: prism caption --model PALI3_DIR (--image FILE... | --pixels FILE) [options]\n\n"
     "Captions from a pali3 model, one JSON object per image: {\"model\", \"prompt\",\n"
     "\"text\", \"ids\", \"tokens\", \"finish_reason\", \"time_to_first_token_ms\",\n"
     "\"total_ms\"}. The images generate together in one running batch. PaliGemma and\n"
     "Florence-2 models take --image files (Florence-2: --detail, or a task token as\n"
     "--prompt; docs/florence2.md).\n\noptions:\n",
     NULL},
    {"ask", CLI_ASK,
     "usage: prism ask --model PALI3_DIR (--image FILE... | --pixels FILE) --question TEXT\n"
     "                 [options]\n\n"
     "Answers to a question about each image from a pali3 model, one JSON object per\n"
     "image (the fields of prism caption).\n\noptions:\n", NULL},
    {"detect", CLI_DETECT,
     "usage: prism detect --model DIR --image FILE... [--label TEXT...] [options]\n\n"
     "Objects in each image from a PaliGemma model (the prompt \"detect A ; B\"; labels\n"
     "required) or a Florence-2 one (<OD> without labels, phrase grounding with them),\n"
     "one JSON object per image: the fields of prism caption and \"objects\":\n"
     "[{\"label\", \"box\": [x_min, y_min, x_max, y_max]}] in the image's pixels.\n\n"
     "options:\n", NULL},
    {"bench", CLI_BENCH_PALI3,
     "usage: prism bench --model PALI3_DIR [options]\n\n"
     "Time to first token and decode tokens/s of a pali3 model on random images, a\n"
     "markdown table.\n\noptions:\n", NULL},
};

static void usage(FILE *f)
{
    fputs("usage: prism <command> --model DIR [options]\n"
          "       prism <command> --help      the command's options\n"
          "       prism --version\n"
          "\n"
          "commands:\n"
          "  info      the loaded model's configuration and tensors (JSON; SigLIP or pali3)\n"
          "  embed     image and/or text embeddings (JSON)\n"
          "  score     image x text logits and sigmoid probabilities (JSON)\n"
          "  classify  zero-shot labels for images, sorted by score (JSON)\n"
          "  bench     throughput at several batch sizes: SigLIP beside this machine's\n"
          "            sgemm rate, pali3 time to first token and decode rate\n"
          "  caption   captions from a pali3, PaliGemma or Florence-2 model (JSON)\n"
          "  ask       answers to a question about an image (pali3, PaliGemma,\n"
          "            Florence-2; JSON)\n"
          "  detect    boxes and labels of objects in an image (PaliGemma, Florence-2;\n"
          "            JSON)\n"
          "  serve     the HTTP server (docs/api.md)\n",
          f);
}

/* The command called `name` (for bench: the one for the model's kind). */
static const cli_command *find_command(const char *name, int argc, char **argv)
{
    unsigned want = 0;
    if (strcmp(name, "bench") == 0) {
        const char *model = opts_peek(argc, argv, 2, "model");
        want = model && pali_is_generation_dir(model) ? CLI_BENCH_PALI3 : CLI_BENCH;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0 && (!want || commands[i].bit == want))
            return &commands[i];
    return NULL;
}

/* What the table cannot say: options that go together or exclude each other. */
static int check_opts(unsigned cmd, const cli_opts *o, char *msg, size_t n)
{
    const bool files = o->images.n || o->texts.n;
    if ((cmd & SIGLIP_IN) && o->inputs[0] && files)
        snprintf(msg, n, "give --inputs FILE or --image/--text, not both");
    else if ((cmd & SIGLIP_IN) && !o->inputs[0] && !files)
        snprintf(msg, n, "--inputs FILE, or --image FILE / --text TEXT, is required");
    else if (cmd == CLI_CLASSIFY && !o->images.n)
        snprintf(msg, n, "--image FILE is required");
    else if (cmd == CLI_CLASSIFY && !strstr(o->label_template, "{}"))
        snprintf(msg, n, "--template must contain {} where the label goes");
    else if ((cmd & PALI_RUN) && !o->pixels[0] && !o->images.n)
        snprintf(msg, n, "--pixels FILE (or --image FILE) is required");
    else if (cmd == CLI_DETECT && !o->images.n)
        snprintf(msg, n, "--image FILE is required");
    else if (cmd == CLI_DETECT && !o->labels.n && !o->prompt[0] &&
             !florence2_is_model_dir(o->model))
        snprintf(msg, n, "detect needs --label TEXT (or --prompt \"detect ...\")");
    else if (cmd == CLI_CAPTION && strcmp(o->detail, "brief") != 0 &&
             !florence2_is_model_dir(o->model))
        snprintf(msg, n, "--detail other than brief needs a Florence-2 model");
    else if (cmd == CLI_ASK && !o->question[0] && !o->prompt_ids[0] && !o->prompt[0])
        snprintf(msg, n, "ask needs --question TEXT");
    else if ((cmd & PALI_RUN) && o->max_seqs < o->num_beams)
        snprintf(msg, n, "--max-seqs must be at least --num-beams");
    else if (cmd == CLI_BENCH && strcmp(o->device, "cuda") == 0)
        snprintf(msg, n, "bench measures the CPU against its sgemm rate; on a GPU use "
                         "prism_bench_cuda (docs/cuda.md)");
    else
        return 0;
    return -1;
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
    printf("{\n  \"model\": ");
    cli_print_json_string(stdout, o->model);
    printf(",\n  \"model_type\": \"siglip\",\n");
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
           c->vision.naflex ? c->vision.num_patches
                            : (c->vision.image_size / c->vision.patch_size) *
                                  (c->vision.image_size / c->vision.patch_size));
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
        if (in->max_patches ? siglip_embed_naflex(m, in->pixels, in->patch_mask, in->shapes,
                                                  in->n_images, in->max_patches, normalize, *img,
                                                  err)
                            : siglip_embed_images(m, in->pixels, in->n_images, normalize, *img,
                                                  err))
            return -1;
    }
    if (in->n_texts) {
        *txt = malloc((size_t)in->n_texts * D * sizeof(float));
        if (!*txt)
            return prism_errorf(err, "out of memory");
        if (siglip_embed_texts_masked(m, in->ids, in->text_mask, in->n_texts, in->text_len,
                                      normalize, *txt, err))
            return -1;
    }
    return 0;
}

static int cmd_embed_or_score(siglip_model *m, const cli_opts *o, bool score, prism_error *err)
{
    cli_inputs in;
    if (o->inputs[0] ? cli_inputs_read(&in, o->inputs, siglip_get_config(m), err)
                     : cli_inputs_from_files(&in, o->model, siglip_get_config(m), o->images.v,
                                             o->images.n, o->texts.v, o->texts.n, err))
        return -1;
    float *img = NULL, *txt = NULL;
    int rc = 0;
    if (score && (!in.n_images || !in.n_texts))
        rc = prism_errorf(err, "score needs both images and texts");
    if (rc == 0)
        rc = run_inputs(m, &in, score || !o->no_normalize, &img, &txt, err);
    const int D = siglip_embed_dim(m);
    if (rc == 0 && !score) {
        printf("{\"model\": ");
        cli_print_json_string(stdout, o->model);
        printf(", \"dim\": %d,\n\"image_embeddings\": ", D);
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
            printf("{\"model\": ");
            cli_print_json_string(stdout, o->model);
            printf(",\n\"logits\": ");
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

/* The template with every "{}" (left to right) replaced by the label, as
 * POST /v1/classify builds its prompts; malloc'd, NULL when out of memory. */
static char *apply_template(const char *t, const char *label)
{
    const size_t tn = strlen(t), ln = strlen(label);
    size_t slots = 0;
    for (size_t j = 0; j + 1 < tn;)
        j += t[j] == '{' && t[j + 1] == '}' ? (slots++, 2) : 1;
    char *out = malloc(tn - 2 * slots + slots * ln + 1), *p = out;
    for (size_t j = 0; out && j < tn;) {
        if (j + 1 < tn && t[j] == '{' && t[j + 1] == '}') {
            memcpy(p, label, ln);
            p += ln;
            j += 2;
        } else {
            *p++ = t[j++];
        }
    }
    if (out)
        *p = '\0';
    return out;
}

/* One image's answer: labels by descending score, ties in the order given. */
static void print_classified(const cli_opts *o, int image, const float *scores, int *order)
{
    const int n = o->labels.n;
    for (int i = 0; i < n; i++) { /* insertion sort: stable, label lists are short */
        int j = i;
        while (j > 0 && scores[order[j - 1]] < scores[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    printf("{\"model\": ");
    cli_print_json_string(stdout, o->model);
    printf(", \"image\": ");
    cli_print_json_string(stdout, o->images.v[image]);
    printf(", \"labels\": [");
    for (int k = 0; k < n; k++) {
        printf("%s{\"label\": ", k ? ", " : "");
        cli_print_json_string(stdout, o->labels.v[order[k]]);
        printf(", \"score\": %.9g}", (double)scores[order[k]]);
    }
    printf("]}\n");
}

static int cmd_classify(siglip_model *m, const cli_opts *o, prism_error *err)
{
    const int nI = o->images.n, nL = o->labels.n;
    const char *prompts[OPT_LIST_MAX] = {0};
    int rc = 0;
    for (int i = 0; rc == 0 && i < nL; i++)
        if (!(prompts[i] = apply_template(o->label_template, o->labels.v[i])))
            rc = prism_errorf(err, "out of memory");
    cli_inputs in = {0};
    float *img = NULL, *txt = NULL;
    float *scores = malloc((size_t)nI * nL * sizeof *scores);
    int *order = malloc((size_t)nL * sizeof *order);
    if (rc == 0 && (!scores || !order))
        rc = prism_errorf(err, "out of memory");
    if (rc == 0)
        rc = cli_inputs_from_files(&in, o->model, siglip_get_config(m), o->images.v, nI, prompts,
                                   nL, err);
    if (rc == 0)
        rc = run_inputs(m, &in, true, &img, &txt, err);
    if (rc == 0) {
        siglip_logits(m, img, nI, txt, nL, scores);
        for (size_t k = 0; k < (size_t)nI * nL; k++)
            scores[k] = 1.0f / (1.0f + expf(-scores[k]));
        for (int i = 0; i < nI; i++)
            print_classified(o, i, scores + (size_t)i * nL, order);
    }
    cli_inputs_free(&in);
    for (int i = 0; i < nL; i++)
        free((char *)prompts[i]);
    free(img), free(txt), free(scores), free(order);
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

/* The bench table: every cell as wide as its column. */
static const cli_column bench_cols[] = {
    {"task", 5, true},     {"batch", 5, false},   {"items/s", 9, false}, {"ms/batch", 10, false},
    {"GFLOP/s", 8, false}, {"of sgemm", 8, false}, {"iters", 6, false},
};
#define N_BENCH_COLS (int)(sizeof bench_cols / sizeof bench_cols[0])

static int bench_task(siglip_model *m, const cli_opts *o, bool images, int B, double sgemm,
                      prism_error *err)
{
    const siglip_config *c = siglip_get_config(m);
    const int D = siglip_embed_dim(m), T = c->text.max_position_embeddings;
    /* NaFlex: square images of the default patch budget */
    const bool naflex = siglip_is_naflex(m);
    const int side = naflex ? (int)sqrt((double)c->vision.num_patches) : 0, L = side * side;
    const size_t per = naflex ? (size_t)L * siglip_patch_dim(m)
                              : (size_t)c->vision.num_channels * c->vision.image_size *
                                    c->vision.image_size;
    int32_t *pmask = naflex && images ? malloc((size_t)B * L * sizeof(int32_t)) : NULL;
    int32_t *shapes = naflex && images ? malloc((size_t)B * 2 * sizeof(int32_t)) : NULL;
    float *pix = images ? malloc((size_t)B * per * sizeof(float)) : NULL;
    int32_t *ids = images ? NULL : malloc((size_t)B * T * sizeof(int32_t));
    float *out = malloc((size_t)B * D * sizeof(float));
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int rc = 0;
    if ((images && !pix) || (!images && !ids) || !out ||
        (naflex && images && (!pmask || !shapes))) {
        rc = prism_errorf(err, "out of memory");
        goto done;
    }
    for (int i = 0; pmask && i < B * L; i++)
        pmask[i] = 1;
    for (int i = 0; shapes && i < 2 * B; i++)
        shapes[i] = side;
    for (size_t i = 0; images && i < (size_t)B * per; i++)
        pix[i] = (float)(rng_next(&s) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
    for (size_t i = 0; !images && i < (size_t)B * T; i++)
        ids[i] = (int32_t)(rng_next(&s) % (uint64_t)c->text.vocab_size);
#define RUN() (images ? (naflex ? siglip_embed_naflex(m, pix, pmask, shapes, B, L, true, out, err) \
                               : siglip_embed_images(m, pix, B, true, out, err)) \
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
    double flops = B * (images ? (naflex ? siglip_naflex_image_flops(c, L) : siglip_image_flops(c))
                               : siglip_text_flops(c, T));
    double gf = flops / mean * 1e-9;
    if (o->json) {
        printf("{\"task\": \"%s\", \"batch\": %d, \"iters\": %d, \"items_per_s\": %.3f, "
               "\"ms_per_batch\": %.3f, \"best_ms\": %.3f, \"gflops\": %.2f, "
               "\"sgemm_gflops\": %.2f, \"fraction_of_sgemm\": %.4f}\n",
               images ? "image" : "text", B, iters, B / mean, mean * 1e3, best * 1e3, gf, sgemm,
               gf / sgemm);
    } else {
        char cells[N_BENCH_COLS][32];
        snprintf(cells[0], sizeof cells[0], "%s", images ? "image" : "text");
        snprintf(cells[1], sizeof cells[1], "%d", B);
        snprintf(cells[2], sizeof cells[2], "%.2f", B / mean);
        snprintf(cells[3], sizeof cells[3], "%.1f", mean * 1e3);
        snprintf(cells[4], sizeof cells[4], "%.1f", gf);
        snprintf(cells[5], sizeof cells[5], "%.1f%%", 100.0 * gf / sgemm);
        snprintf(cells[6], sizeof cells[6], "%d", iters);
        const char *row[N_BENCH_COLS];
        for (int i = 0; i < N_BENCH_COLS; i++)
            row[i] = cells[i];
        cli_table_row(stdout, bench_cols, N_BENCH_COLS, row);
    }
    fflush(stdout);
done:
    free(pix);
    free(pmask);
    free(shapes);
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
        printf("{\"model\": ");
        cli_print_json_string(stdout, o->model);
        printf(", \"backend\": \"%s\", \"threads\": %d, "
               "\"sgemm_gflops\": %.2f, \"gflop_per_image\": %.3f, \"gflop_per_text\": %.3f}\n",
               be->ops->name, be->n_threads, sgemm, siglip_image_flops(c) * 1e-9,
               siglip_text_flops(c, c->text.max_position_embeddings) * 1e-9);
    } else {
        printf("model %s, backend %s, %d threads\n", o->model, be->ops->name, be->n_threads);
        printf("sgemm 2048x2048x2048: %.1f GFLOP/s; %.2f GFLOP per image, %.2f per text\n\n",
               sgemm, siglip_image_flops(c) * 1e-9,
               siglip_text_flops(c, c->text.max_position_embeddings) * 1e-9);
        cli_table_header(stdout, bench_cols, N_BENCH_COLS);
    }
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < o->batches.n; i++)
            if (bench_task(m, o, t == 0, (int)o->batches.v[i], sgemm, err))
                return -1;
    return 0;
}

/* info, embed, score, classify and bench on a SigLIP model. */
static int run_siglip(unsigned cmd, const cli_opts *o)
{
    prism_error err = {0};
    char note[400];
    prism_backend *be = device_backend_create(cmd == CLI_BENCH ? "cpu" : o->device, o->dtype,
                                              (int)o->threads, o->reference, note, sizeof note,
                                              &err);
    if (!be) {
        fprintf(stderr, "prism: %s\n", err.msg);
        return 2;
    }
    int max_batch = cmd == CLI_INFO ? 1 : (int)o->max_batch;
    for (int i = 0; cmd == CLI_BENCH && i < o->batches.n; i++) /* each batch in one run */
        max_batch = (int)o->batches.v[i] > max_batch ? (int)o->batches.v[i] : max_batch;
    siglip_model *m = NULL;
    /* NaFlex: images of up to 4096 patches, the most the image pipeline cuts
     * when the caller sets no limit (IMAGE_NAFLEX_DEFAULT_PATCH_LIMIT); the
     * activations stay those of max_batch default-size images */
    int rc = siglip_load_ex(&m, o->model, be, max_batch, 4096, &err);
    if (rc == 0) {
        if (cmd == CLI_INFO)
            rc = cmd_info(m, o, be);
        else if (cmd == CLI_BENCH)
            rc = cmd_bench(m, o, be, &err);
        else if (cmd == CLI_CLASSIFY)
            rc = cmd_classify(m, o, &err);
        else
            rc = cmd_embed_or_score(m, o, cmd == CLI_SCORE, &err);
    }
    if (rc)
        fprintf(stderr, "prism: %s\n", err.msg);
    siglip_free(m);
    prism_backend_destroy(be);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("prism %s\n", PRISM_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve_main(argc, argv, 2);
    const cli_command *c = find_command(argv[1], argc, argv);
    if (!c) {
        fprintf(stderr, "prism: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    char prog[64], msg[512];
    snprintf(prog, sizeof prog, "prism %s", c->name);
    const opt_table table = {.prog = prog, .usage = c->usage, .footer = c->footer,
                             .rows = cli_rows, .n_rows = sizeof cli_rows / sizeof cli_rows[0],
                             .cmd = c->bit};
    cli_opts o = {0};
    int rc = opts_parse(&table, &o, argc, argv, 2, stdout, msg, sizeof msg);
    if (rc == 0)
        rc = check_opts(c->bit, &o, msg, sizeof msg);
    if (rc) {
        if (rc < 0)
            fprintf(stderr, "prism: %s\n", msg);
        return rc < 0 ? 2 : 0;
    }
    if ((c->bit & GEN_RUN) && paligemma_is_model_dir(o.model))
        return cli_paligemma_main(c->bit, &o);
    if ((c->bit & GEN_RUN) && florence2_is_model_dir(o.model))
        return cli_florence2_main(c->bit, &o);
    if (c->bit == CLI_DETECT) {
        fprintf(stderr, "prism: detect needs a PaliGemma or Florence-2 model (config.json's "
                "model_type \"paligemma\" or \"florence2\"); %s is not one\n", o.model);
        return 2;
    }
    if (c->bit & (CLI_CAPTION | CLI_ASK | CLI_BENCH_PALI3))
        return cli_generate_main(c->bit, &o);
    if (c->bit == CLI_INFO && pali_is_generation_dir(o.model))
        return cli_generate_main(CLI_INFO, &o);
    return run_siglip(c->bit, &o);
}
