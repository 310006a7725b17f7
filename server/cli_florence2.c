/* cli_florence2.c - `prism caption`, `prism ask` and `prism detect` on a
 * Florence-2 checkpoint as downloaded (docs/florence2.md).
 *
 *   prism caption --model DIR --image FILE... [--detail detailed]
 *                 [--prompt "<OCR_WITH_REGION>"]
 *   prism ask     --model DIR --image FILE... --question TEXT
 *   prism detect  --model DIR --image FILE... [--label cat --label dog]
 *
 * The task: caption's --detail (brief: <CAPTION>, detailed:
 * <DETAILED_CAPTION>, more_detailed: <MORE_DETAILED_CAPTION>) or --prompt
 * as given (any task token, with its text after it when it takes one);
 * ask's question as is; detect's <OD>, or with labels the phrase grounding
 * task <CAPTION_TO_PHRASE_GROUNDING> on the labels joined with ", ". The
 * prompt is the processor's expansion of the task (engine/florence2_tasks.h),
 * decoding greedy or beam search with --num-beams on the batched generator
 * the server runs, and the answer the processor's post-processing.
 *
 * Output, one JSON object per image: {"model", "task", "prompt", "text",
 * "ids", "tokens", "finish_reason"} ("text": the answer, or for the tasks
 * that locate things the generated text with its special tokens), and for the tasks that locate things
 * "width", "height" and "objects": [{"label", and "box" [x0, y0, x1, y1],
 * "quad" [x0, y0, ..., x3, y3] or "polygons" [[x, y, ...], ...]}] in the
 * image's pixels (the file as decoded and turned upright).
 */
#include "cli_florence2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_generate.h"
#include "florence2_tasks.h"
#include "pali.h"

/* <s>, the prompt and </s>: tokens at most */
#define FLORENCE2_CLI_TEXT_TOKENS 128

/* The task text of the command (before the processor's expansion). */
static int task_text(unsigned cmd, const cli_opts *o, char *out, size_t n, prism_error *err)
{
    static const char *const captions[] = {"<CAPTION>", "<DETAILED_CAPTION>",
                                           "<MORE_DETAILED_CAPTION>"};
    size_t k = 0;
    if (o->prompt && o->prompt[0]) {
        k = (size_t)snprintf(out, n, "%s", o->prompt);
    } else if (cmd == CLI_CAPTION) {
        int d = -1;
        static const char *const names[] = {"brief", "detailed", "more_detailed"};
        for (int i = 0; i < 3; i++)
            if (strcmp(o->detail, names[i]) == 0)
                d = i;
        if (d < 0)
            return prism_errorf(err, "--detail must be brief, detailed or more_detailed");
        k = (size_t)snprintf(out, n, "%s", captions[d]);
    } else if (cmd == CLI_ASK) {
        k = (size_t)snprintf(out, n, "%s", o->question);
    } else if (o->labels.n == 0) {
        k = (size_t)snprintf(out, n, "<OD>");
    } else {
        k = (size_t)snprintf(out, n, "<CAPTION_TO_PHRASE_GROUNDING>");
        for (int i = 0; i < o->labels.n && k < n; i++)
            k += (size_t)snprintf(out + k, n - k, "%s%s", i ? ", " : "", o->labels.v[i]);
    }
    if (k >= n)
        return prism_errorf(err, "the prompt is longer than %zu bytes", n - 1);
    return 0;
}

static const char *finish_name(pali_finish f)
{
    return f == PALI_FINISH_EOS ? "eos" : f == PALI_FINISH_LENGTH ? "length" : "cancelled";
}

static void print_coords(const double *c, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++)
        printf("%s%.3f", i ? ", " : "", c[i]);
    putchar(']');
}

static void print_item(const florence2_item *it)
{
    printf("{\"label\": ");
    cli_print_json_string(stdout, it->label);
    if (it->n_polygons > 0) {
        printf(", \"polygons\": [");
        for (int p = 0, at = 0; p < it->n_polygons; at += it->polygon_coords[p++]) {
            printf("%s", p ? ", " : "");
            print_coords(it->coords + at, it->polygon_coords[p]);
        }
        printf("]}");
        return;
    }
    printf(it->n_coords == 8 ? ", \"quad\": " : ", \"box\": ");
    print_coords(it->coords, it->n_coords);
    printf("}");
}

static void print_result(const cli_opts *o, const char *task, const char *prompt, const char *raw,
                         const florence2_result *f, const pali_result *r, int w, int h)
{
    printf("{\"model\": ");
    cli_print_json_string(stdout, o->model);
    printf(", \"task\": ");
    cli_print_json_string(stdout, task);
    printf(", \"prompt\": ");
    cli_print_json_string(stdout, prompt);
    printf(", \"text\": ");
    cli_print_json_string(stdout, f->text ? f->text : raw);
    printf(", \"ids\": [");
    for (int t = 0; t < r->n_ids; t++)
        printf("%s%d", t ? ", " : "", r->ids[t]);
    printf("], \"tokens\": %d, \"finish_reason\": \"%s\"", r->n_ids, finish_name(r->finish));
    if (f->kind != FLORENCE2_POST_PURE_TEXT) {
        printf(", \"width\": %d, \"height\": %d, \"objects\": [", w, h);
        for (int i = 0; i < f->n_items; i++) {
            printf("%s", i ? ", " : "");
            print_item(&f->items[i]);
        }
        printf("]");
    }
    printf("}\n");
}

/* The task token at the start of text ("<OD>" of "<OD>"), or "" when the
 * text starts with none: the processor post-processes plain text as pure
 * text. */
static void leading_task(const char *text, char *task, size_t n)
{
    task[0] = '\0';
    const char *end = text[0] == '<' ? strchr(text, '>') : NULL;
    if (!end || (size_t)(end - text) + 2 > n)
        return;
    memcpy(task, text, (size_t)(end - text) + 1);
    task[end - text + 1] = '\0';
    if (!florence2_is_task_token(task))
        task[0] = '\0';
}

/* Every image as one request of the batched generator (engine/pali.h):
 * greedy or beam search, results in the images' order. */
static int run(unsigned cmd, const cli_opts *o, pali_model *m, prism_error *err)
{
    const int n_img = o->images.n;
    char text[4096], prompt[4096 + 512], task[64];
    int32_t *ids = malloc(FLORENCE2_CLI_TEXT_TOKENS * sizeof *ids);
    int *w = calloc((size_t)n_img + 1, sizeof *w), *h = calloc((size_t)n_img + 1, sizeof *h);
    pali_result *res = calloc((size_t)n_img + 1, sizeof *res);
    florence2_post_config *post = NULL;
    int n_ids = 0, rc = 0;
    if (!ids || !w || !h || !res)
        rc = prism_errorf(err, "out of memory");
    if (rc == 0)
        rc = task_text(cmd, o, text, sizeof text, err);
    if (rc == 0)
        rc = florence2_build_prompt(text, prompt, sizeof prompt, err);
    if (rc == 0)
        rc = pali_tokenize(m, prompt, ids, FLORENCE2_CLI_TEXT_TOKENS, &n_ids, err);
    if (rc == 0)
        rc = florence2_post_config_load(&post, o->model, err);
    if (rc == 0)
        rc = cli_image_sizes(o, w, h, err);
    if (rc == 0)
        rc = cli_generate_images(m, o, ids, n_ids, res, err);
    leading_task(text, task, sizeof task);
    for (int i = 0; rc == 0 && i < n_img; i++) {
        char *raw = NULL;
        florence2_result f = {0};
        rc = pali_decode_florence2(m, res[i].ids, res[i].n_ids, true, &raw, err);
        if (rc == 0)
            rc = florence2_post_process(post, raw, task[0] ? task : "<CAPTION>", w[i], h[i], &f,
                                        err);
        if (rc == 0)
            print_result(o, task, prompt, raw, &f, &res[i], w[i], h[i]);
        florence2_result_free(&f);
        free(raw);
    }
    for (int i = 0; i < n_img; i++)
        pali_result_free(&res[i]);
    florence2_post_config_free(post);
    free(ids), free(w), free(h), free(res);
    return rc;
}

int cli_florence2_main(unsigned cmd, const cli_opts *o)
{
    return cli_run_generation(cmd, o, FLORENCE2_CLI_TEXT_TOKENS, run);
}
