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
 * prompt, "\n". Decoding is greedy (beams: not yet for PaliGemma).
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
#include "device.h"
#ifdef PRISM_HAVE_IMAGE
#include "image.h"
#endif
#include "paligemma.h"
#include "tokenizer.h"

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

/* The size of each image as decoded (orientation applied): the frame of
 * the boxes. */
static int image_sizes(const cli_opts *o, int *w, int *h, prism_error *err)
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

static int run(unsigned cmd, const cli_opts *o, paligemma_model *m, tok_tokenizer *tok,
               prism_error *err)
{
    const paligemma_config *c = paligemma_get_config(m);
    const int N = c->n_image_tokens, max_prompt = N + PALIGEMMA_CLI_TEXT_TOKENS;
    char prompt[4096], with_nl[4100];
    int32_t *ids = malloc((size_t)max_prompt * sizeof *ids);
    int32_t *out = malloc((size_t)o->max_new_tokens * sizeof *out);
    int *w = calloc((size_t)o->images.n + 1, sizeof *w), *h = calloc((size_t)o->images.n + 1, sizeof *h);
    float *px = NULL;
    int n_img = 0, n_text = 0, rc = 0;
    if (!ids || !out || !w || !h)
        rc = prism_errorf(err, "out of memory");
    if (rc == 0)
        rc = prompt_text(cmd, o, prompt, sizeof prompt, err);
    if (rc == 0) {
        for (int i = 0; i < N; i++)
            ids[i] = c->image_token_index;
        ids[N] = 2; /* <bos> */
        snprintf(with_nl, sizeof with_nl, "%s\n", prompt);
        rc = tok_gemma_encode(tok, with_nl, strlen(with_nl), ids + N + 1, max_prompt - N - 1,
                              &n_text, err);
    }
    if (rc == 0 && o->pixels && o->pixels[0])
        rc = prism_errorf(err, "--pixels is for pali3 models; give PaliGemma --image files");
    if (rc == 0 && !(px = cli_read_images(o, &c->vision, &n_img, err)))
        rc = -1;
    if (rc == 0 && cmd == CLI_DETECT)
        rc = image_sizes(o, w, h, err);
    const size_t per = (size_t)3 * c->vision.image_size * c->vision.image_size;
    for (int i = 0; rc == 0 && i < n_img; i++) {
        int n_out = 0;
        rc = paligemma_generate_greedy(m, px + i * per, ids, N + 1 + n_text,
                                       (int)o->max_new_tokens, 1 /* <eos> */, out, &n_out, err);
        char *text = NULL;
        if (rc == 0)
            rc = tok_gemma_decode(tok, out, (size_t)n_out, true, &text, err);
        if (rc)
            break;
        printf("{\"model\": ");
        cli_print_json_string(stdout, o->model);
        printf(", \"prompt\": ");
        cli_print_json_string(stdout, prompt);
        printf(", \"text\": ");
        cli_print_json_string(stdout, text);
        printf(", \"ids\": [");
        for (int t = 0; t < n_out; t++)
            printf("%s%d", t ? ", " : "", out[t]);
        printf("], \"tokens\": %d, \"finish_reason\": \"%s\"", n_out,
               n_out && out[n_out - 1] == 1 ? "eos" : "length");
        if (cmd == CLI_DETECT) {
            detect_box boxes[64];
            const int nb = detect_parse(text, w[i], h[i], boxes, 64);
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
        free(text);
    }
    free(ids), free(out), free(w), free(h), free(px);
    return rc;
}

int cli_paligemma_main(unsigned cmd, const cli_opts *o)
{
    prism_error err = {0};
    char note[400];
    if (o->num_beams != 1) {
        fprintf(stderr, "prism: --num-beams: PaliGemma decodes greedily in this version\n");
        return 2;
    }
    prism_backend *be = device_backend_create(o->device, o->dtype, (int)o->threads, o->reference,
                                              note, sizeof note, &err);
    if (!be) {
        fprintf(stderr, "prism: %s\n", err.msg);
        return 2;
    }
    paligemma_model *m = NULL;
    tok_tokenizer *tok = NULL;
    paligemma_limits lim = {.max_text_tokens = PALIGEMMA_CLI_TEXT_TOKENS,
                            .max_new_tokens = (int)o->max_new_tokens, .n_slots = 1};
    int rc = 0;
    if (rc == 0)
        rc = paligemma_load(&m, o->model, be, &lim, &err);
    if (rc == 0)
        rc = tok_load_gemma(&tok, o->model, &err);
    if (rc == 0)
        rc = run(cmd, o, m, tok, &err);
    if (rc)
        fprintf(stderr, "prism: %s\n", err.msg);
    tok_free(tok);
    paligemma_free(m);
    prism_backend_destroy(be);
    return rc ? 1 : 0;
}
