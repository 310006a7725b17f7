/* florence2.c - Florence-2 from the hub layout (see florence2.h). */
#include "florence2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"

struct florence2_model {
    florence2_config cfg;
    florence2_limits lim;
    image_preproc pre;
    prism_backend *be;
    st_weights weights;
    davit_model *vision;
    bart_model *lm;
    int32_t *ids_dev;  /* backend [max_prompt_tokens] */
    float *feat_dev;   /* backend [n_image_tokens, d_model] (florence2_image_features) */
    float *zeros;      /* host [max_prompt_tokens, d_model]: encoder padding rows */
};

void florence2_limits_default(florence2_limits *lim)
{
    *lim = (florence2_limits){.max_batch = 4, .max_seqs = 16, .max_new_tokens = 256,
                              .max_prompt_tokens = 128};
}

bool florence2_is_model_dir(const char *dir)
{
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    const json_value *mt = root ? json_get(root, "model_type") : NULL;
    bool yes = mt && mt->type == JSON_STRING && strcmp(mt->string, "florence2") == 0;
    json_free(root);
    return yes;
}

static int opt_int(const json_value *o, const char *key, int *out, int lo, int hi,
                   const char *file, prism_error *err)
{
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type == JSON_ARRAY && v->count == 1) /* eos_token_id: [2] */
        v = &v->items[0];
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi)
        return prism_errorf(err, "%s: %s must be an integer in [%d, %d]", file, key, lo, hi);
    *out = (int)v->integer;
    return 0;
}

static int load_gen_config(florence2_config *cfg, const char *dir, prism_error *err)
{
    const bart_config *t = &cfg->text;
    florence2_gen_config *g = &cfg->gen;
    /* transformers: the generation config falls back on the model config,
     * whose BART defaults force </s> at the last position; no forced <s> */
    *g = (florence2_gen_config){.decoder_start_token_id = t->decoder_start_token_id,
                                .eos_token_id = t->eos_token_id, .forced_bos_token_id = -1,
                                .forced_eos_token_id = t->eos_token_id, .num_beams = 1};
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fclose(f);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "generation_config.json: %s", jerr);
    const int V = t->vocab_size - 1;
    int rc = root->type != JSON_OBJECT
                 ? prism_errorf(err, "generation_config.json: top level is not an object")
                 : opt_int(root, "decoder_start_token_id", &g->decoder_start_token_id, 0, V,
                           "generation_config.json", err) ||
                       opt_int(root, "eos_token_id", &g->eos_token_id, 0, V,
                               "generation_config.json", err) ||
                       opt_int(root, "forced_bos_token_id", &g->forced_bos_token_id, -1, V,
                               "generation_config.json", err) ||
                       opt_int(root, "forced_eos_token_id", &g->forced_eos_token_id, -1, V,
                               "generation_config.json", err) ||
                       opt_int(root, "no_repeat_ngram_size", &g->no_repeat_ngram_size, 0, 64,
                               "generation_config.json", err) ||
                       opt_int(root, "num_beams", &g->num_beams, 1, 64,
                               "generation_config.json", err);
    json_free(root);
    return rc;
}

int florence2_config_load(florence2_config *cfg, image_preproc *pre, const char *dir,
                          prism_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "config.json: %s", jerr);
    int rc = 0;
    const json_value *mt = json_get(root, "model_type");
    if (root->type != JSON_OBJECT || !mt || mt->type != JSON_STRING ||
        strcmp(mt->string, "florence2") != 0)
        rc = prism_errorf(err, "config.json: model_type must be \"florence2\" (transformers' "
                          "native layout; checkpoints needing trust_remote_code are not "
                          "served)");
    if (!rc)
        rc = davit_config_from_json(&cfg->vision, json_get(root, "vision_config"), "config.json",
                                    "vision_config", err) ||
             bart_config_from_json(&cfg->text, json_get(root, "text_config"), "config.json",
                                   "text_config", err);
    cfg->image_token_id = 51289;
    if (!rc)
        rc = opt_int(root, "image_token_id", &cfg->image_token_id, 0, cfg->text.vocab_size - 1,
                     "config.json", err);
    json_free(root);
    if (rc)
        return -1;
    if (cfg->vision.projection_dim != cfg->text.d_model)
        return prism_errorf(err, "config.json: vision_config.projection_dim %d differs from "
                            "text_config.d_model %d", cfg->vision.projection_dim,
                            cfg->text.d_model);
    if (image_preproc_load(pre, dir, err))
        return -1;
    if (pre->source == IMAGE_PREPROC_DEFAULTS)
        return prism_errorf(err, "%s: no preprocessor_config.json (Florence-2's image size and "
                            "normalisation are read from it)", dir);
    if (pre->width != pre->height)
        return prism_errorf(err, "%s: size %d x %d: only square sizes are served",
                            image_preproc_source_name(pre), pre->width, pre->height);
    cfg->image_size = pre->width;
    const int side = davit_grid_side(&cfg->vision, cfg->image_size);
    if (side < 1)
        return prism_errorf(err, "%s: %d pixels are too few for the vision tower",
                            image_preproc_source_name(pre), cfg->image_size);
    cfg->n_image_tokens = 1 + side * side;
    return load_gen_config(cfg, dir, err);
}

int florence2_load(florence2_model **out, const char *dir, prism_backend *be,
                   const florence2_limits *lim, prism_error *err)
{
    *out = NULL;
    florence2_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->be = be;
    m->lim = *lim;
    if (florence2_config_load(&m->cfg, &m->pre, dir, err) ||
        st_weights_open(&m->weights, dir, err)) {
        free(m);
        return -1;
    }
    const florence2_config *c = &m->cfg;
    bart_limits bl = {.max_enc_batch = lim->max_batch,
                      .max_enc_len = c->n_image_tokens + lim->max_prompt_tokens,
                      .max_dec_seqs = lim->max_seqs, .max_dec_len = lim->max_new_tokens + 1};
    if (lim->max_batch < 1 || lim->max_batch > 64 || lim->max_prompt_tokens < 2 ||
        lim->max_new_tokens < 1 || lim->max_seqs < 1) {
        prism_errorf(err, "Florence-2 limits out of range");
        florence2_free(m);
        return -1;
    }
    if (davit_load(&m->vision, &c->vision, &m->weights, "model.", be, c->image_size,
                   lim->max_batch, err) ||
        bart_load(&m->lm, &c->text, &m->weights, "model.language_model.", "lm_head.weight", be,
                  &bl, err)) {
        prism_error_prefix(err, "%s", dir);
        florence2_free(m);
        return -1;
    }
    m->ids_dev = be->ops->alloc(be, (size_t)lim->max_prompt_tokens * sizeof(int32_t));
    m->feat_dev = be->ops->alloc(be, (size_t)c->n_image_tokens * c->text.d_model *
                                         sizeof(float));
    m->zeros = calloc((size_t)lim->max_prompt_tokens * c->text.d_model, sizeof *m->zeros);
    if (!m->ids_dev || !m->feat_dev || !m->zeros) {
        prism_errorf(err, "cannot allocate Florence-2's prompt buffers");
        florence2_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void florence2_free(florence2_model *m)
{
    if (!m)
        return;
    bart_free(m->lm);
    davit_free(m->vision);
    if (m->ids_dev)
        m->be->ops->free(m->be, m->ids_dev);
    if (m->feat_dev)
        m->be->ops->free(m->be, m->feat_dev);
    st_weights_close(&m->weights);
    free(m->zeros);
    free(m);
}

const florence2_config *florence2_get_config(const florence2_model *m) { return &m->cfg; }
const image_preproc *florence2_get_preproc(const florence2_model *m) { return &m->pre; }
bart_model *florence2_bart(florence2_model *m) { return m->lm; }

int64_t florence2_param_count(const florence2_model *m)
{
    return davit_param_count(m->vision) + bart_param_count(m->lm);
}

int florence2_image_features(florence2_model *m, const float *pixels, float *features,
                             float *last, prism_error *err)
{
    prism_backend *be = m->be;
    const int N = m->cfg.n_image_tokens, D = m->cfg.text.d_model;
    if (davit_forward(m->vision, pixels, 1, m->feat_dev, (int64_t)N * D, last, err))
        return -1;
    PRISM_CK(be->ops->download(be, features, m->feat_dev, (size_t)N * D * sizeof(float)),
             "download");
    return 0;
}

int florence2_encode(florence2_model *m, const florence2_input *in, int B, bart_cache *cache,
                     const int *cross_slots, float *states, int *T_out, prism_error *err)
{
    prism_backend *be = m->be;
    const florence2_config *c = &m->cfg;
    const int N = c->n_image_tokens, D = c->text.d_model;
    if (B < 1 || B > m->lim.max_batch)
        return prism_errorf(err, "%d requests: outside [1, %d]", B, m->lim.max_batch);
    int longest = 0, lens[64];
    for (int b = 0; b < B; b++) {
        if (in[b].n_ids < 1 || in[b].n_ids > m->lim.max_prompt_tokens)
            return prism_errorf(err, "request %d: %d prompt ids (1 to %d)", b, in[b].n_ids,
                                m->lim.max_prompt_tokens);
        for (int i = 0; i < in[b].n_ids; i++)
            if (in[b].ids[i] < 0 || in[b].ids[i] >= c->text.vocab_size ||
                in[b].ids[i] == c->image_token_id)
                return prism_errorf(err, "request %d: prompt id %d at %d is not a text token",
                                    b, in[b].ids[i], i);
        longest = in[b].n_ids > longest ? in[b].n_ids : longest;
        lens[b] = N + in[b].n_ids;
    }
    const int T = N + longest;
    float *x = bart_encoder_input(m->lm);
    /* image tokens straight into the encoder input; padding rows zeroed */
    for (int b = 0; b < B; b++) {
        float *row = x + (size_t)b * T * D;
        if (davit_forward(m->vision, in[b].pixels, 1, row, (int64_t)T * D, NULL, err))
            return prism_error_prefix(err, "request %d", b);
        PRISM_CK(be->ops->upload(be, m->ids_dev, in[b].ids, (size_t)in[b].n_ids *
                                 sizeof(int32_t)), "upload ids");
        if (bart_embed(m->lm, row + (size_t)N * D, m->ids_dev, in[b].n_ids, err))
            return -1;
        const size_t pad = (size_t)(longest - in[b].n_ids) * D;
        if (pad)
            PRISM_CK(be->ops->upload(be, row + (size_t)lens[b] * D, m->zeros, pad * sizeof(float)),
                     "padding");
    }
    if (T_out)
        *T_out = T;
    return bart_encode(m->lm, B, T, lens, cache, cross_slots, states, err);
}
