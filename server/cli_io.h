/* cli_io.h - the CLI's file inputs and JSON printing. */
#ifndef PRISM_CLI_IO_H
#define PRISM_CLI_IO_H

#include <stdint.h>
#include <stdio.h>

#include "prism_error.h"
#include "siglip_config.h"

/* Preprocessed inputs read from a .safetensors file: `pixel_values`
 * [B, C, S, S] (F32/F16/BF16) and/or `input_ids` [B, T] (I64 or I32). */
typedef struct cli_inputs {
    float *pixels;
    int n_images;
    int32_t *ids;
    int n_texts, text_len;
} cli_inputs;

int cli_inputs_read(cli_inputs *in, const char *path, const siglip_config *cfg,
                    prism_error *err);
void cli_inputs_free(cli_inputs *in);

/* The same from image files and strings, through the server's input
 * pipelines (server/inputs.h): decode + resize + normalise, tokenize. */
int cli_inputs_from_files(cli_inputs *in, const char *model_dir, const siglip_config *cfg,
                          const char *const *images, int n_images, const char *const *texts,
                          int n_texts, prism_error *err);

/* Parses a whole decimal integer in [lo, hi] into *out (0), else -1. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* The commands' default thread count: PRISM_THREADS when set (*threads
 * unchanged otherwise). -1 with a message on stderr when it is not an
 * integer in [1, 1024]. */
int cli_threads_from_env(int *threads);

/* Prints rows×cols floats as a JSON array of arrays. */
void cli_print_matrix(FILE *f, const float *x, int rows, int cols);

#endif
