/* cli_generate.h - the pali3 subcommands: `prism caption`, `prism ask`,
 * `prism bench` and `prism info` on a PaLI-3-style model
 * (server/cli_generate.c). */
#ifndef PRISM_CLI_GENERATE_H
#define PRISM_CLI_GENERATE_H

#include "cli_io.h"
#include "pali.h"

/* Runs one of CLI_CAPTION, CLI_ASK, CLI_BENCH_PALI3 or CLI_INFO on the
 * pali3 model o->model with options main.c parsed and checked; returns
 * the process exit status: 0, 1 (a failure while running) or 2 (the
 * device cannot be used as asked). */
int cli_generate_main(unsigned cmd, const cli_opts *o);

/* Decodes and preprocesses every --image as SiglipImageProcessor does with
 * o->model's processor settings (their size must be the tower's) into
 * pixel_values [n, 3, S, S] (malloc'd). */
float *cli_read_images(const cli_opts *o, const siglip_vision_config *vc, int *n,
                       prism_error *err);

/* What cli_run_generation runs on the loaded model. */
typedef int (*cli_generation_fn)(unsigned cmd, const cli_opts *o, pali_model *m,
                                 prism_error *err);

/* caption / ask / detect on a PaliGemma or Florence-2 model: the backend
 * --device asks for, the model loaded for o's images and beams (up to 4
 * images decode together) with prompts of at most max_prompt_tokens ids,
 * its tokenizer required; then run. Returns the exit status: 0, 1 (a
 * failure while loading or running, printed) or 2 (the device cannot be
 * used). */
int cli_run_generation(unsigned cmd, const cli_opts *o, int max_prompt_tokens,
                       cli_generation_fn run);

/* Every --image of o as one request of the batched generator
 * (engine/pali.h) with the same prompt ids, greedy or beam search as o
 * asks; results in the images' order into res[o->images.n] (each to be
 * freed with pali_result_free). For PaliGemma and Florence-2, which take
 * image files only (no --pixels). */
int cli_generate_images(pali_model *m, const cli_opts *o, const int32_t *ids, int n_ids,
                        pali_result *res, prism_error *err);

/* The size of each --image as decoded, orientation applied (w[i], h[i]):
 * the frame of the boxes detection answers in. */
int cli_image_sizes(const cli_opts *o, int *w, int *h, prism_error *err);

#endif
