/* paligemma.c - PaliGemma from the hub layout (see paligemma.h). */
#include "paligemma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"
#include "siglip.h"
#include "weight_set.h"

struct paligemma_model {
    paligemma_config cfg;
    paligemma_limits lim;
    int max_prompt;              /* image tokens + lim.max_text_tokens */
    prism_backend *be;
    st_weights weights;
    st_weights vision_w, text_w; /* views: the vision tower's and the decoder's names */
    char lm_head[64];
    weight_set ws;               /* the projector */
    siglip_model *vision;
    gemma_model *lm;
    const void *proj_w;          /* [D, E] */
    const float *proj_b;         /* [D] */
    float *proj_out;             /* backend [N, D] */
    float *logits_tmp;           /* host [V] */
    float *logits_dev;           /* backend [V] */
};

/* Where a checkpoint keeps its parts. The hub's files (transformers 4):
 * vision_tower.vision_model.*, multi_modal_projector.linear.*,
 * language_model.model.*, an optional language_model.lm_head.weight;
 * transformers 5.25's save_pretrained writes the vision tower without
 * "vision_model." (vision_tower.embeddings.*, ...). Each is also accepted
 * under "model." (transformers 5's module names). */
static const char *const vision_prefixes[] = {"vision_tower.vision_model.", "vision_tower.",
                                              "model.vision_tower.vision_model.",
                                              "model.vision_tower."};
static const struct {
    const char *proj, *text, *lm_head;
} text_layouts[] = {
    {"multi_modal_projector.linear.", "language_model.model.", "language_model.lm_head.weight"},
    {"model.multi_modal_projector.linear.", "model.language_model.", "lm_head.weight"},
};

bool paligemma_is_model_dir(const char *dir)
{
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    const json_value *mt = root ? json_get(root, "model_type") : NULL;
    bool yes = mt && mt->type == JSON_STRING && strcmp(mt->string, "paligemma") == 0;
    json_free(root);
    return yes;
}

static int parse_root(paligemma_config *cfg, const json_value *root, const char *name,
                      prism_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (root->type != JSON_OBJECT)
        return prism_errorf(err, "%s: top level is not a JSON object", name);
    const json_value *mt = json_get(root, "model_type");
    if (!mt || mt->type != JSON_STRING || strcmp(mt->string, "paligemma") != 0)
        return prism_errorf(err, "%s: model_type must be \"paligemma\"", name);
    const json_value *vc = json_get(root, "vision_config"), *tc = json_get(root, "text_config");
    if (!vc || !tc)
        return prism_errorf(err, "%s: a paligemma config needs vision_config and text_config",
                            name);
    if (siglip_vision_config_from_json(&cfg->vision, vc, name, "vision_config", err) ||
        gemma_config_from_json(&cfg->text, tc, name, "text_config", err))
        return -1;
    const siglip_vision_config *v = &cfg->vision;
    if (v->image_size <= 0 || v->image_size % v->patch_size)
        return prism_errorf(err, "%s: vision_config.image_size %d is not a multiple of "
                            "patch_size %d", name, v->image_size, v->patch_size);
    cfg->n_image_tokens = (v->image_size / v->patch_size) * (v->image_size / v->patch_size);
    /* the hub's configs also say it: text_config.num_image_tokens */
    const json_value *nit = json_get(tc, "num_image_tokens");
    if (nit && nit->type != JSON_NULL &&
        (nit->type != JSON_NUMBER || !nit->is_integer || nit->integer != cfg->n_image_tokens))
        return prism_errorf(err, "%s: text_config.num_image_tokens must be %d, the vision "
                            "tower's (image_size %d / patch_size %d)²", name, cfg->n_image_tokens,
                            v->image_size, v->patch_size);
    /* transformers 5 says image_token_id, the hub's files image_token_index */
    const char *key = "image_token_id";
    const json_value *it = json_get(root, key);
    if (!it || it->type == JSON_NULL)
        it = json_get(root, key = "image_token_index");
    if (!it || it->type != JSON_NUMBER || !it->is_integer || it->integer < 0 ||
        it->integer >= cfg->text.vocab_size)
        return prism_errorf(err, "%s: %s must be a token id below text_config.vocab_size %d",
                            name, key, cfg->text.vocab_size);
    cfg->image_token_index = (int)it->integer;
    return 0;
}

int paligemma_config_parse(paligemma_config *cfg, const char *json, size_t len, const char *name,
                           prism_error *err)
{
    char jerr[256];
    json_value *root = json_parse(json, len, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s: %s", name, jerr);
    int rc = parse_root(cfg, root, name, err);
    json_free(root);
    return rc;
}

int paligemma_load(paligemma_model **out, const char *dir, prism_backend *be,
                   const paligemma_limits *lim, prism_error *err)
{
    *out = NULL;
    if (lim->max_text_tokens < 1 || lim->max_new_tokens < 1 || lim->n_slots < 1)
        return prism_errorf(err, "paligemma limits must be positive");
    paligemma_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->be = be;
    m->lim = *lim;
    ws_init(&m->ws, be, &m->weights);
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    int rc = root ? parse_root(&m->cfg, root, path, err) : prism_errorf(err, "%s", jerr);
    json_free(root);
    if (rc == 0)
        rc = st_weights_open(&m->weights, dir, err);
    int lay = -1, vis = -1;
    for (int i = 0; rc == 0 && i < 2 && lay < 0; i++) {
        char name[160];
        snprintf(name, sizeof name, "%sembed_tokens.weight", text_layouts[i].text);
        if (st_weights_find(&m->weights, name, NULL))
            lay = i;
    }
    for (int i = 0; rc == 0 && i < 4 && vis < 0; i++) {
        char name[160];
        snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", vision_prefixes[i]);
        if (st_weights_find(&m->weights, name, NULL))
            vis = i;
    }
    if (rc == 0 && (lay < 0 || vis < 0))
        rc = prism_errorf(err, "%s: no %s: not a PaliGemma checkpoint (looked for the hub's "
                          "names and transformers 5's)", dir,
                          lay < 0 ? "language_model.model.embed_tokens.weight"
                                  : "vision_tower.vision_model.embeddings.patch_embedding.weight");
    const paligemma_config *c = &m->cfg;
    const int N = c->n_image_tokens;
    m->max_prompt = N + lim->max_text_tokens;
    if (rc == 0) {
        m->vision_w = st_weights_view(&m->weights, "vision_model.", vision_prefixes[vis]);
        m->text_w = st_weights_view(&m->weights, "", text_layouts[lay].text);
        snprintf(m->lm_head, sizeof m->lm_head, "%s", text_layouts[lay].lm_head);
        rc = siglip_vision_load(&m->vision, &c->vision, &m->vision_w, be, 1, err);
    }
    if (rc == 0) {
        const int64_t D = c->text.hidden_size, E = c->vision.t.hidden_size;
        char name[128];
        snprintf(name, sizeof name, "%sweight", text_layouts[lay].proj);
        m->proj_w = ws_load(&m->ws, name, 2, (const int64_t[]){D, E}, true, 0, -1, err);
        snprintf(name, sizeof name, "%sbias", text_layouts[lay].proj);
        m->proj_b = m->proj_w ? ws_load(&m->ws, name, 1, (const int64_t[]){D}, false, 0, -1, err)
                              : NULL;
        rc = m->proj_b ? 0 : -1;
    }
    if (rc == 0) {
        /* rows of a call: a whole prefix, or one token of every slot */
        gemma_limits gl = {.max_tokens = m->max_prompt > lim->n_slots ? m->max_prompt
                                                                     : lim->n_slots,
                           .max_len = m->max_prompt + lim->max_new_tokens,
                           .n_slots = lim->n_slots};
        rc = gemma_load(&m->lm, &c->text, &m->text_w, m->lm_head, be, &gl, err);
    }
    if (rc == 0) {
        m->proj_out = be->ops->alloc(be, (size_t)N * c->text.hidden_size * sizeof(float));
        m->logits_tmp = malloc((size_t)c->text.vocab_size * sizeof(float));
        m->logits_dev = be->ops->alloc(be, (size_t)c->text.vocab_size * sizeof(float));
        if (!m->proj_out || !m->logits_tmp || !m->logits_dev)
            rc = prism_errorf(err, "out of memory for the image features");
    }
    if (rc) {
        paligemma_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void paligemma_free(paligemma_model *m)
{
    if (!m)
        return;
    if (m->proj_out)
        m->be->ops->free(m->be, m->proj_out);
    if (m->logits_dev)
        m->be->ops->free(m->be, m->logits_dev);
    gemma_free(m->lm);
    siglip_free(m->vision);
    ws_release(&m->ws);
    st_weights_close(&m->weights);
    free(m->logits_tmp);
    free(m);
}

const paligemma_config *paligemma_get_config(const paligemma_model *m)
{
    return &m->cfg;
}

/* The prefix through the decoder (no logits). */
static int prefix(paligemma_model *m, int slot, const float *pixels, const int32_t *ids, int n,
                  prism_error *err)
{
    prism_backend *be = m->be;
    const paligemma_config *c = &m->cfg;
    const int N = c->n_image_tokens, D = c->text.hidden_size, E = c->vision.t.hidden_size;
    if (n < 1 || n > m->max_prompt)
        return prism_errorf(err, "%d prompt tokens: outside [1, %d] (%d image tokens and %d "
                            "more)", n, m->max_prompt, N, m->lim.max_text_tokens);
    int n_img = 0;
    for (int i = 0; i < n; i++)
        n_img += ids[i] == c->image_token_index;
    if (n_img != N)
        return prism_errorf(err, "the prompt holds %d image tokens (id %d); the model's image "
                            "gives %d", n_img, c->image_token_index, N);
    const float *feat;
    if (siglip_vision_hidden(m->vision, pixels, 1, &feat, err))
        return prism_error_prefix(err, "vision tower");
    PRISM_CK(be->ops->matmul(be, m->proj_out, feat, m->proj_w, m->proj_b, N, D, E,
                             PRISM_ACT_NONE), "multi_modal_projector");
    if (gemma_embed(m->lm, ids, n, err))
        return -1;
    /* the image token's rows take the projector's rows in order, in runs */
    float *x = gemma_input(m->lm);
    for (int i = 0, k = 0; i < n;) {
        if (ids[i] != c->image_token_index) {
            i++;
            continue;
        }
        int run = 1;
        while (i + run < n && ids[i + run] == c->image_token_index)
            run++;
        PRISM_CK(be->ops->copy_rows(be, x + (size_t)i * D, D, m->proj_out + (size_t)k * D, D, run,
                                    D), "image features");
        i += run;
        k += run;
    }
    return gemma_forward(m->lm, slot, 0, n, 1, NULL, err);
}

int paligemma_prefill(paligemma_model *m, int slot, const float *pixels, const int32_t *ids,
                      int n, float *logits, prism_error *err)
{
    if (prefix(m, slot, pixels, ids, n, err))
        return -1;
    if (!logits)
        return 0;
    prism_backend *be = m->be;
    const int V = m->cfg.text.vocab_size;
    if (gemma_last_logits(m->lm, n, m->logits_dev, err))
        return -1;
    PRISM_CK(be->ops->download(be, logits, m->logits_dev, (size_t)V * sizeof(float)),
             "download logits");
    return 0;
}

int paligemma_prefill_dev(paligemma_model *m, int slot, const float *pixels, const int32_t *ids,
                          int n, float *logits, prism_error *err)
{
    return prefix(m, slot, pixels, ids, n, err) || gemma_last_logits(m->lm, n, logits, err) ? -1
                                                                                              : 0;
}

gemma_model *paligemma_decoder(paligemma_model *m)
{
    return m->lm;
}

int64_t paligemma_param_count(const paligemma_model *m)
{
    return m->ws.n_params + siglip_get_info(m->vision)->n_params + gemma_param_count(m->lm);
}

int paligemma_step(paligemma_model *m, int slot, int pos, int32_t token, float *logits,
                   prism_error *err)
{
    if (gemma_embed(m->lm, &token, 1, err))
        return -1;
    return gemma_forward(m->lm, slot, pos, 1, 1, logits, err);
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

int paligemma_generate_greedy(paligemma_model *m, const float *pixels, const int32_t *ids, int n,
                              int max_new, int32_t eos_id, int32_t *out, int *n_out,
                              prism_error *err)
{
    const int V = m->cfg.text.vocab_size;
    *n_out = 0;
    if (max_new < 1 || max_new > m->lim.max_new_tokens)
        return prism_errorf(err, "max_new_tokens %d: outside [1, %d]", max_new,
                            m->lim.max_new_tokens);
    if (paligemma_prefill(m, 0, pixels, ids, n, m->logits_tmp, err))
        return -1;
    for (int t = 0; t < max_new; t++) {
        const int32_t tok = argmax(m->logits_tmp, V);
        out[(*n_out)++] = tok;
        if (tok == eos_id || t + 1 == max_new)
            break;
        if (paligemma_step(m, 0, n + t, tok, m->logits_tmp, err))
            return -1;
    }
    return 0;
}
