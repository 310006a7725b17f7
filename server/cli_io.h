/* cli_io.h - the CLI's options, file inputs and JSON printing. */
#ifndef PRISM_CLI_IO_H
#define PRISM_CLI_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "opts.h"
#include "prism_error.h"
#include "siglip_config.h"

/* The subcommands, as opt_spec.cmds bits: which options each one takes
 * (main.c's table). bench is two commands, by the model it is given. */
enum {
    CLI_INFO = 1u << 0,
    CLI_EMBED = 1u << 1,
    CLI_SCORE = 1u << 2,
    CLI_CLASSIFY = 1u << 3,
    CLI_BENCH = 1u << 4,       /* a SigLIP model: throughput beside the sgemm floor */
    CLI_CAPTION = 1u << 5,
    CLI_ASK = 1u << 6,
    CLI_BENCH_PALI3 = 1u << 7, /* a pali3 model: time to first token, decode rate */
    CLI_DETECT = 1u << 8,      /* a PaliGemma model: boxes */
};

/* Every subcommand's options, filled by opts_parse from main.c's table;
 * a command reads only the fields of the rows it takes. */
typedef struct cli_opts {
    const char *model, *device, *dtype; /* device.h */
    long long threads;                  /* 0: all cores */
    bool reference;
    /* SigLIP: info, embed, score, classify, bench */
    const char *inputs;                 /* preprocessed .safetensors */
    opt_list images, texts, labels;
    const char *label_template;         /* classify: "{}" becomes each label */
    long long max_batch;
    bool no_normalize, json;
    double min_time;
    opt_ints batches;
    /* pali3: caption, ask, bench */
    const char *pixels, *lang, *question, *prompt_ids;
    const char *prompt;                 /* PaliGemma, Florence-2: the task text as given */
    const char *detail;                 /* Florence-2 caption: brief, detailed, more_detailed */
    long long max_new_tokens, num_beams, max_seqs, repeats;
    double length_penalty;
} cli_opts;

/* Preprocessed inputs read from a .safetensors file: `pixel_values`
 * [B, C, S, S] (F32/F16/BF16) and/or `input_ids` [B, T] (I64 or I32), with
 * `attention_mask` [B, T] when the file has one (what a SigLIP 2 tokenizer
 * returns). Not for NaFlex images (image files only). */
typedef struct cli_inputs {
    float *pixels;
    int n_images;
    /* NaFlex (SigLIP 2): pixels is [n_images, max_patches, patch floats],
     * padded, with the mask [n_images, max_patches] and the spatial shapes
     * [n_images, 2] siglip_embed_naflex takes; max_patches 0 otherwise */
    int32_t *patch_mask, *shapes;
    int max_patches;
    int32_t *ids;
    int32_t *text_mask; /* the tokenizer's attention mask [n_texts, text_len] or NULL */
    int n_texts, text_len;
} cli_inputs;

int cli_inputs_read(cli_inputs *in, const char *path, const siglip_config *cfg,
                    prism_error *err);
void cli_inputs_free(cli_inputs *in);

/* Says on stderr that MODEL_DIR has no image processor file, so images get
 * SiglipImageProcessor's defaults at the tower's SIZE (engine/image.h). */
void cli_note_image_defaults(const char *model_dir, int size);

/* The same from image files and strings, through the server's input
 * pipelines (server/inputs.h): decode + resize + normalise, tokenize. */
int cli_inputs_from_files(cli_inputs *in, const char *model_dir, const siglip_config *cfg,
                          const char *const *images, int n_images, const char *const *texts,
                          int n_texts, prism_error *err);

/* A whole file (malloc'd, *len bytes), or NULL with "cannot read PATH:
 * <the system's reason>" in err. */
uint8_t *cli_read_file(const char *path, size_t *len, prism_error *err);

/* Prints rows×cols floats as a JSON array of arrays. */
void cli_print_matrix(FILE *f, const float *x, int rows, int cols);

/* A markdown table whose columns line up: every cell is padded to its
 * column's width (at least the header's), numbers right-aligned. */
typedef struct cli_column {
    const char *name;
    int width;
    bool left; /* left-aligned (text) */
} cli_column;
void cli_table_header(FILE *f, const cli_column *cols, int n);
void cli_table_row(FILE *f, const cli_column *cols, int n, const char *const *cells);

/* Prints s as a JSON string (quotes, escapes). */
void cli_print_json_string(FILE *f, const char *s);

#endif
