/* cli_paligemma.c - `prism caption`, `prism ask` and `prism detect` on a
 * PaliGemma checkpoint as downloaded (engine/paligemma.h).
 *
 *   prism caption --model DIR --image FILE... [--lang en] [--prompt TEXT]
 *   prism ask     --model DIR --image FILE... --question TEXT
 *   prism detect  --model DIR --image FILE... --label cat --label dog
 *
 * The prompt is PaliGemma's task text ("caption en", "answer en QUESTION",
 * "detect cat ; dog", or --prompt as given, e.g. "ocr"); the ids are what
 * PaliGemmaProcessor builds: the image token × image tokens, <bos>, the
 * prompt, "\n". Decoding is greedy, or beam search with --num-beams, on
 * the batched generator the server runs (engine/pali.h).
 *
 * Output, one JSON object per image: {"model", "prompt", "text", "ids",
 * "tokens", "finish_reason"}, and for detect "objects": [{"label",
 * "box": [x_min, y_min, x_max, y_max]}] in the image's pixels (the file as
 * decoded and turned upright, before resizing).
 */
#include "cli_paligemma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_generate.h"
#include "detect.h"
#include "pali.h"

/* <bos>, the prompt and "\n": tokens at most */
#define PALIGEMMA_CLI_TEXT_TOKENS 512

/* The task text of the command. */
static int prompt_text(unsigned cmd, const cli_opts *o, char *out, size_t n, prism_error *err)
{
    size_t k = 0;
    if (o->prompt && o->prompt[0])
        k = (size_t)snprintf(out, n, "%s", o->prompt);
    else if (cmd == CLI_CAPTION)
        k = (size_t)snprintf(out, n, "caption %s", o->lang);
    else if (cmd == CLI_ASK)
        k = (size_t)snprintf(out, n, "answer %s %s", o->lang, o->question);
    else {
        k = (size_t)snprintf(out, n, "detect");
        for (int i = 0; i < o->labels.n && k < n; i++)
            k += (size_t)snprintf(out + k, n - k, "%s%s", i ? " ; " : " ", o->labels.v[i]);
    }
    if (k >= n)
        return prism_errorf(err, "the prompt is longer than %zu bytes", n - 1);
    return 0;
}

static const char *finish_name(pali_finish f)
{
    return f == PALI_FINISH_EOS ? "eos" : f == PALI_FINISH_LENGTH ? "length" : "cancelled";
}

static void print_result(unsigned cmd, const cli_opts *o, const char *prompt, const char *text,
                         const pali_result *r, int w, int h)
{
    printf("{\"model\": ");
    cli_print_json_string(stdout, o->model);
    printf(", \"prompt\": ");
    cli_print_json_string(stdout, prompt);
    printf(", \"text\": ");
    cli_print_json_string(stdout, text);
    printf(", \"ids\": [");
    for (int t = 0; t < r->n_ids; t++)
        printf("%s%d", t ? ", " : "", r->ids[t]);
    printf("], \"tokens\": %d, \"finish_reason\": \"%s\"", r->n_ids, finish_name(r->finish));
    if (cmd == CLI_DETECT) {
        detect_box boxes[64];
        const int nb = detect_parse(text, w, h, boxes, 64);
        printf(", \"objects\": [");
        for (int b = 0; b < nb && b < 64; b++) {
            printf("%s{\"label\": ", b ? ", " : "");
            cli_print_json_string(stdout, boxes[b].label);
            printf(", \"box\": [%.3f, %.3f, %.3f, %.3f]}", boxes[b].x_min, boxes[b].y_min,
                   boxes[b].x_max, boxes[b].y_max);
        }
        printf("]");
    }
    printf("}\n");
}

/* Every image as one request of the batched generator (engine/pali.h):
 * greedy or beam search, results in the images' order. */
static int run(unsigned cmd, const cli_opts *o, pali_model *m, prism_error *err)
{
    const int n_img = o->images.n;
    char prompt[4096];
    int32_t *ids = malloc(PALIGEMMA_CLI_TEXT_TOKENS * sizeof *ids);
    int *w = calloc((size_t)n_img + 1, sizeof *w), *h = calloc((size_t)n_img + 1, sizeof *h);
    pali_result *res = calloc((size_t)n_img + 1, sizeof *res);
    int n_ids = 0, rc = 0;
    if (!ids || !w || !h || !res)
        rc = prism_errorf(err, "out of memory");
    if (rc == 0)
        rc = prompt_text(cmd, o, prompt, sizeof prompt, err);
    if (rc == 0)
        rc = pali_tokenize(m, prompt, ids, PALIGEMMA_CLI_TEXT_TOKENS, &n_ids, err);
    if (rc == 0 && cmd == CLI_DETECT)
        rc = cli_image_sizes(o, w, h, err);
    if (rc == 0)
        rc = cli_generate_images(m, o, ids, n_ids, res, err);
    for (int i = 0; rc == 0 && i < n_img; i++) {
        char *text = NULL;
        rc = pali_detokenize(m, res[i].ids, res[i].n_ids, &text, err);
        if (rc == 0)
            print_result(cmd, o, prompt, text, &res[i], w[i], h[i]);
        free(text);
    }
    for (int i = 0; i < n_img; i++)
        pali_result_free(&res[i]);
    free(ids), free(w), free(h), free(res);
    return rc;
}

int cli_paligemma_main(unsigned cmd, const cli_opts *o)
{
    return cli_run_generation(cmd, o, PALIGEMMA_CLI_TEXT_TOKENS, run);
}
