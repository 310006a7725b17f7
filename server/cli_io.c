/* cli_io.c - reading inputs for the `prism` subcommands, printing JSON. */
#include "cli_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "safetensors.h"

uint8_t *cli_read_file(const char *path, size_t *len, prism_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        prism_errorf(err, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    uint8_t *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    if (!buf) {
        prism_errorf(err, "cannot read %s: out of memory", path);
    } else if (ferror(f)) {
        prism_errorf(err, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

int cli_inputs_read(cli_inputs *in, const char *path, const siglip_config *cfg, prism_error *err)
{
    memset(in, 0, sizeof *in);
    st_file f;
    if (st_file_open(&f, path, err))
        return -1;
    int rc = 0;
    const st_tensor *pv = st_file_find(&f, "pixel_values");
    const st_tensor *ii = st_file_find(&f, "input_ids");
    const siglip_vision_config *vc = &cfg->vision;
    if (!pv && !ii)
        rc = prism_errorf(err, "%s: holds neither 'pixel_values' nor 'input_ids'", path);
    const st_tensor *am = st_file_find(&f, "attention_mask");
    if (rc == 0 && pv && vc->naflex)
        rc = prism_errorf(err, "%s: pixel_values for a SigLIP 2 NaFlex model: give the image "
                          "files instead (--image), which prism patchifies itself", path);
    if (rc == 0 && pv) {
        if (pv->ndim != 4 || pv->shape[1] != vc->num_channels || pv->shape[2] != vc->image_size ||
            pv->shape[3] != vc->image_size)
            rc = prism_errorf(err, "%s: pixel_values must have shape [B, %d, %d, %d]", path,
                              vc->num_channels, vc->image_size, vc->image_size);
        else if (pv->dtype != PRISM_DT_F32 && pv->dtype != PRISM_DT_F16 &&
                 pv->dtype != PRISM_DT_BF16)
            rc = prism_errorf(err, "%s: pixel_values must be F32, F16 or BF16", path);
        else if (pv->shape[0] < 1 || pv->shape[0] > 1 << 20)
            rc = prism_errorf(err, "%s: pixel_values batch %lld is out of range", path,
                              (long long)pv->shape[0]);
        else if (!(in->pixels = malloc((size_t)pv->numel * sizeof(float))))
            rc = prism_errorf(err, "out of memory");
        else {
            st_to_f32(in->pixels, pv->data, pv->dtype, (size_t)pv->numel);
            in->n_images = (int)pv->shape[0];
        }
    }
    if (rc == 0 && ii) {
        if (ii->ndim != 2 || (ii->dtype != PRISM_DT_I64 && ii->dtype != PRISM_DT_I32))
            rc = prism_errorf(err, "%s: input_ids must be a 2-D I64 or I32 tensor", path);
        else if (ii->shape[0] < 1 || ii->shape[0] > 1 << 20 || ii->shape[1] < 1 ||
                 ii->shape[1] > cfg->text.max_position_embeddings)
            rc = prism_errorf(err, "%s: input_ids shape [%lld, %lld] is out of range "
                              "(length at most %d)", path, (long long)ii->shape[0],
                              (long long)ii->shape[1], cfg->text.max_position_embeddings);
        else if (!(in->ids = malloc((size_t)ii->numel * sizeof(int32_t))))
            rc = prism_errorf(err, "out of memory");
        else {
            for (int64_t i = 0; i < ii->numel; i++) {
                int64_t v;
                if (ii->dtype == PRISM_DT_I64) {
                    memcpy(&v, ii->data + 8 * i, 8);
                } else {
                    int32_t v32;
                    memcpy(&v32, ii->data + 4 * i, 4);
                    v = v32;
                }
                if (v < 0 || v >= cfg->text.vocab_size) {
                    rc = prism_errorf(err, "%s: input_ids value %lld at flat index %lld is "
                                      "outside the vocabulary [0, %d)", path, (long long)v,
                                      (long long)i, cfg->text.vocab_size);
                    break;
                }
                in->ids[i] = (int32_t)v;
            }
            in->n_texts = (int)ii->shape[0];
            in->text_len = (int)ii->shape[1];
        }
    }
    if (rc == 0 && ii && am) {
        if (am->ndim != 2 || am->shape[0] != ii->shape[0] || am->shape[1] != ii->shape[1] ||
            (am->dtype != PRISM_DT_I64 && am->dtype != PRISM_DT_I32))
            rc = prism_errorf(err, "%s: attention_mask must be I64 or I32 with input_ids' shape",
                              path);
        else if (!(in->text_mask = malloc((size_t)am->numel * sizeof(int32_t))))
            rc = prism_errorf(err, "out of memory");
        for (int64_t i = 0; rc == 0 && i < am->numel; i++) {
            int64_t v = 0;
            if (am->dtype == PRISM_DT_I64) {
                memcpy(&v, am->data + 8 * i, 8);
            } else {
                int32_t v32;
                memcpy(&v32, am->data + 4 * i, 4);
                v = v32;
            }
            in->text_mask[i] = v != 0;
        }
    }
    st_file_close(&f);
    if (rc)
        cli_inputs_free(in);
    return rc;
}

void cli_note_image_defaults(const char *model_dir, int size)
{
    fprintf(stderr, "prism: note: %s has no processor_config.json or preprocessor_config.json: "
            "images are preprocessed with SiglipImageProcessor's defaults (bicubic, rescale "
            "1/255, mean and std 0.5) at the vision tower's %dx%d\n", model_dir, size, size);
}

/* NaFlex: each image cut into its own patch rows, then padded to the
 * largest into in->pixels with its mask and spatial shape. */
static int naflex_from_files(cli_inputs *in, inputs_ctx *ic, const char *const *images, int n,
                             prism_error *err)
{
    const size_t K = inputs_patch_floats(ic);
    float **own = calloc((size_t)(n ? n : 1), sizeof *own);
    in->shapes = malloc((size_t)(n ? n : 1) * 2 * sizeof(int32_t));
    int rc = own && in->shapes ? 0 : prism_errorf(err, "out of memory");
    int L = 1;
    api_error e;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t len;
        uint8_t *data = cli_read_file(images[i], &len, err);
        int rows = 0, cols = 0;
        if (!data)
            rc = -1;
        else if (inputs_image_check(ic, data, len, (size_t)1 << 32, images[i], &e) ||
                 inputs_image_patches(ic, data, len, (size_t)1 << 32, 0, 0, &own[i], &rows, &cols,
                                      images[i], &e))
            rc = prism_errorf(err, "%s", e.message);
        free(data);
        in->shapes[2 * i] = rows;
        in->shapes[2 * i + 1] = cols;
        L = rows * cols > L ? rows * cols : L;
    }
    if (rc == 0) {
        in->pixels = calloc((size_t)(n ? n : 1) * L * K, sizeof(float));
        in->patch_mask = calloc((size_t)(n ? n : 1) * L, sizeof(int32_t));
        if (!in->pixels || !in->patch_mask)
            rc = prism_errorf(err, "out of memory");
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        const int hw = in->shapes[2 * i] * in->shapes[2 * i + 1];
        memcpy(in->pixels + (size_t)i * L * K, own[i], (size_t)hw * K * sizeof(float));
        for (int t = 0; t < hw; t++)
            in->patch_mask[(size_t)i * L + t] = 1;
    }
    for (int i = 0; own && i < n; i++)
        free(own[i]);
    free(own);
    in->max_patches = L;
    return rc;
}

int cli_inputs_from_files(cli_inputs *in, const char *model_dir, const siglip_config *cfg,
                          const char *const *images, int n_images, const char *const *texts,
                          int n_texts, prism_error *err)
{
    memset(in, 0, sizeof *in);
    inputs_ctx *ic;
    if (inputs_load(&ic, model_dir, cfg, err))
        return -1;
    if (n_images && inputs_image_defaults(ic)) {
        char note[4500];
        inputs_defaults_note(ic, model_dir, note, sizeof note);
        fprintf(stderr, "prism: note: %s\n", note);
    }
    const size_t per = inputs_image_floats(ic);
    const int T = inputs_text_len(ic);
    int rc = 0;
    if (!inputs_naflex(ic))
        in->pixels = malloc((size_t)(n_images ? n_images : 1) * per * sizeof(float));
    in->ids = malloc((size_t)(n_texts ? n_texts : 1) * T * sizeof(int32_t));
    if (inputs_text_masked(ic))
        in->text_mask = malloc((size_t)(n_texts ? n_texts : 1) * T * sizeof(int32_t));
    if ((!inputs_naflex(ic) && !in->pixels) || !in->ids ||
        (inputs_text_masked(ic) && !in->text_mask))
        rc = prism_errorf(err, "out of memory");
    api_error e;
    if (rc == 0 && inputs_naflex(ic))
        rc = naflex_from_files(in, ic, images, n_images, err);
    for (int i = 0; rc == 0 && !inputs_naflex(ic) && i < n_images; i++) {
        size_t len;
        uint8_t *data = cli_read_file(images[i], &len, err);
        if (!data) {
            rc = -1;
        } else if (inputs_image_check(ic, data, len, (size_t)1 << 32, images[i], &e) ||
                   inputs_image(ic, data, len, (size_t)1 << 32, in->pixels + (size_t)i * per,
                                images[i], &e)) {
            rc = prism_errorf(err, "%s", e.message);
        }
        free(data);
    }
    for (int i = 0; rc == 0 && i < n_texts; i++) {
        int ntok;
        if (inputs_text(ic, texts[i], in->ids + (size_t)i * T, &ntok, "text", &e))
            rc = prism_errorf(err, "%s", e.message);
        else if (in->text_mask)
            inputs_text_mask(ic, ntok, in->text_mask + (size_t)i * T);
    }
    inputs_free(ic);
    in->n_images = n_images;
    in->n_texts = n_texts;
    in->text_len = T;
    if (rc)
        cli_inputs_free(in);
    return rc;
}

void cli_inputs_free(cli_inputs *in)
{
    free(in->pixels);
    free(in->patch_mask);
    free(in->shapes);
    free(in->ids);
    free(in->text_mask);
    memset(in, 0, sizeof *in);
}

void cli_print_matrix(FILE *f, const float *x, int rows, int cols)
{
    fputc('[', f);
    for (int r = 0; r < rows; r++) {
        fputs(r ? ",\n  [" : "\n  [", f);
        for (int c = 0; c < cols; c++)
            fprintf(f, c ? ",%.9g" : "%.9g", (double)x[(size_t)r * cols + c]);
        fputc(']', f);
    }
    fputs(rows ? "\n]" : "]", f);
}

void cli_print_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int column_width(const cli_column *c)
{
    const int h = (int)strlen(c->name);
    return c->width > h ? c->width : h;
}

void cli_table_header(FILE *f, const cli_column *cols, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(f, cols[i].left ? "| %-*s " : "| %*s ", column_width(&cols[i]), cols[i].name);
    fputs("|\n", f);
    for (int i = 0; i < n; i++) { /* "---:" marks a right-aligned column */
        fputc('|', f);
        for (int k = 0; k < column_width(&cols[i]) + 1; k++)
            fputc('-', f);
        fputc(cols[i].left ? '-' : ':', f);
    }
    fputs("|\n", f);
}

void cli_table_row(FILE *f, const cli_column *cols, int n, const char *const *cells)
{
    for (int i = 0; i < n; i++)
        fprintf(f, cols[i].left ? "| %-*s " : "| %*s ", column_width(&cols[i]), cells[i]);
    fputs("|\n", f);
}
