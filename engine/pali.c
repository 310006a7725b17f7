/* pali.c - the pali3 model: config, loading, prompts, prefill; and the
 * PaliGemma and Florence-2 checkpoints behind the same API (loading,
 * prompts, tokenizers).
 *
 * PaLI-3 assembly (MODEL-SPEC.md): Z = SigLIP last hidden state (after
 * post_layernorm, no pooling head); V = multi_modal_projector.linear(Z);
 * encoder input = concat(V, shared[prompt ids]), attended in full; the
 * decoder starts from decoder_start_token_id.
 */
#include "pali_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tokenizer.h"

void pali_limits_default(pali_limits *lim)
{
    lim->max_batch = 8;
    lim->max_seqs = 16;
    lim->max_new_tokens = 128;
    lim->max_prompt_tokens = 64;
    lim->max_beams = 8;
}

bool pali_is_model_dir(const char *dir)
{
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    const json_value *mt = root ? json_get(root, "model_type") : NULL;
    bool yes = mt && mt->type == JSON_STRING && strcmp(mt->string, "pali3") == 0;
    json_free(root);
    return yes;
}

/* ---- config ------------------------------------------------------------------ */

bool pali_is_generation_dir(const char *dir)
{
    return pali_is_model_dir(dir) || paligemma_is_model_dir(dir) || florence2_is_model_dir(dir);
}

static int get_template(const json_value *obj, const char *key, char *dst, const char *file,
                        prism_error *err)
{
    const json_value *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STRING || v->length >= PALI_TEMPLATE_MAX || strlen(v->string) != v->length)
        return prism_errorf(err, "%s: prompt_templates.%s must be a string shorter than %d bytes",
                            file, key, PALI_TEMPLATE_MAX);
    memcpy(dst, v->string, v->length + 1);
    return 0;
}

static int parse_root(pali_config *cfg, const json_value *root, const char *name,
                      prism_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->caption_template, PALI_TEMPLATE_MAX, "caption {lang}");
    snprintf(cfg->vqa_template, PALI_TEMPLATE_MAX, "answer {lang} {question}");
    if (root->type != JSON_OBJECT)
        return prism_errorf(err, "%s: top level is not a JSON object", name);
    const json_value *mt = json_get(root, "model_type");
    if (!mt || mt->type != JSON_STRING || strcmp(mt->string, "pali3") != 0)
        return prism_errorf(err, "%s: model_type must be \"pali3\" (got %.40s)", name,
                            mt && mt->type == JSON_STRING ? mt->string : "none");
    const json_value *vc = json_get(root, "vision_config"), *tc = json_get(root, "text_config");
    if (!vc || !tc)
        return prism_errorf(err, "%s: a pali3 config needs vision_config and text_config", name);
    if (siglip_vision_config_from_json(&cfg->vision, vc, name, "vision_config", err) ||
        t5_config_from_json(&cfg->text, tc, name, "text_config", err))
        return -1;
    const int G = cfg->vision.image_size / cfg->vision.patch_size, N = G * G;
    const json_value *itc = json_get(root, "image_token_count");
    cfg->image_token_count = N;
    if (itc && itc->type != JSON_NULL) {
        if (itc->type != JSON_NUMBER || !itc->is_integer || itc->integer != N)
            return prism_errorf(err, "%s: image_token_count must be %d, the vision tower's "
                                "(image_size / patch_size)²", name, N);
    }
    const json_value *pt = json_get(root, "prompt_templates");
    if (pt && pt->type != JSON_NULL) {
        if (pt->type != JSON_OBJECT)
            return prism_errorf(err, "%s: prompt_templates must be an object", name);
        if (get_template(pt, "caption", cfg->caption_template, name, err) ||
            get_template(pt, "vqa", cfg->vqa_template, name, err))
            return -1;
    }
    return 0;
}

int pali_config_parse(pali_config *cfg, const char *text, const char *name, prism_error *err)
{
    char jerr[256];
    json_value *root = json_parse(text, strlen(text), jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s: malformed JSON: %s", name, jerr);
    int rc = parse_root(cfg, root, name, err);
    json_free(root);
    return rc;
}

int pali_config_load(pali_config *cfg, const char *path, prism_error *err)
{
    char jerr[512];
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s", jerr);
    int rc = parse_root(cfg, root, path, err);
    json_free(root);
    return rc;
}

/* ---- loading ------------------------------------------------------------------- */

static int check_limits(const pali_limits *l, prism_error *err)
{
    if (l->max_batch < 1 || l->max_batch > 1024 || l->max_seqs < 1 || l->max_seqs > 4096 ||
        l->max_new_tokens < 1 || l->max_new_tokens > 32768 || l->max_prompt_tokens < 1 ||
        l->max_prompt_tokens > 32768 || l->max_beams < 1 || l->max_beams > l->max_seqs)
        return prism_errorf(err, "generation limits out of range (batch %d, sequences %d, new "
                            "tokens %d, prompt tokens %d, beams %d)", l->max_batch, l->max_seqs,
                            l->max_new_tokens, l->max_prompt_tokens, l->max_beams);
    return 0;
}

/* The projector's tensors, counted and owned by the model's weight set. */
static const void *load_proj(pali_model *m, const char *name, int ndim, const int64_t *shape,
                             bool matrix, prism_error *err)
{
    return ws_load(&m->ws, name, ndim, shape, matrix, 0, -1, err);
}

/* generation_config.json's eos_token_id (an id or a list of them), else
 * text_config.eos_token_id, else Gemma's <eos> (1): what generate() stops on. */
static int paligemma_eos(pali_model *m, const char *dir, prism_error *err)
{
    static const char *const files[] = {"generation_config.json", "config.json"};
    m->eos[0] = 1;
    m->n_eos = 1;
    for (int f = 0; f < 2; f++) {
        char path[4096], jerr[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        json_value *root = json_parse_file(path, jerr, sizeof jerr);
        const json_value *v = root ? json_get(root, "eos_token_id") : NULL;
        if (root && f == 1 && !v) {
            const json_value *tc = json_get(root, "text_config");
            v = tc ? json_get(tc, "eos_token_id") : NULL;
        }
        int n = 0, rc = 0;
        if (v && v->type == JSON_NUMBER && v->is_integer) {
            m->eos[n++] = (int32_t)v->integer;
        } else if (v && v->type == JSON_ARRAY) {
            for (size_t i = 0; i < v->count && rc == 0; i++) {
                const json_value *e = &v->items[i];
                if (e->type != JSON_NUMBER || !e->is_integer || n == PALI_MAX_EOS)
                    rc = prism_errorf(err, "%s: eos_token_id must be up to %d token ids", path,
                                      PALI_MAX_EOS);
                else
                    m->eos[n++] = (int32_t)e->integer;
            }
        } else if (v && v->type != JSON_NULL) {
            rc = prism_errorf(err, "%s: eos_token_id must be a token id or a list of them", path);
        }
        for (int i = 0; i < n && rc == 0; i++)
            if (m->eos[i] < 0 || m->eos[i] >= m->vocab)
                rc = prism_errorf(err, "%s: eos_token_id %d is outside the vocabulary [0, %d)",
                                  path, (int)m->eos[i], (int)m->vocab);
        json_free(root);
        if (rc)
            return -1;
        if (n > 0) {
            m->n_eos = n;
            return 0;
        }
    }
    return 0;
}

/* preprocessor_config.json's image_seq_length (PaliGemmaProcessor's count
 * of <image> tokens), when given, must be the vision tower's. */
static int check_image_seq_length(const pali_model *m, const char *dir, prism_error *err)
{
    char path[4096], jerr[256];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    const json_value *v = root ? json_get(root, "image_seq_length") : NULL;
    int rc = 0;
    if (v && v->type != JSON_NULL &&
        (v->type != JSON_NUMBER || !v->is_integer || v->integer != m->n_image))
        rc = prism_errorf(err, "%s: image_seq_length must be %d, the vision tower's image "
                          "tokens", path, m->n_image);
    json_free(root);
    return rc;
}

/* Whether dir/name can be opened for reading. */
static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* A PaliGemma checkpoint behind the pali API: the prompt templates are
 * PaliGemma's task prefixes, prompts are Gemma-tokenized (tokenizer.model
 * or tokenizer.json, optional as spiece.model is for pali3). */
static int load_paligemma(pali_model *m, const char *dir, prism_error *err)
{
    const paligemma_limits pl = {.max_text_tokens = m->lim.max_prompt_tokens,
                                 .max_new_tokens = m->lim.max_new_tokens,
                                 .n_slots = m->lim.max_seqs};
    if (!(m->dir = strdup(dir)))
        return prism_errorf(err, "out of memory");
    if (paligemma_load(&m->pg, dir, m->be, &pl, err))
        return -1;
    const paligemma_config *c = paligemma_get_config(m->pg);
    m->cfg.vision = c->vision;
    m->cfg.image_token_count = m->n_image = c->n_image_tokens;
    snprintf(m->cfg.caption_template, PALI_TEMPLATE_MAX, "caption {lang}");
    snprintf(m->cfg.vqa_template, PALI_TEMPLATE_MAX, "answer {lang} {question}");
    m->vocab = c->text.vocab_size;
    if (m->vocab < 2 * m->lim.max_beams)
        return prism_errorf(err, "%s: vocab_size %d is too small for %d beams", dir,
                            (int)m->vocab, m->lim.max_beams);
    if (paligemma_eos(m, dir, err) || check_image_seq_length(m, dir, err))
        return -1;
    const bool have_tok = file_exists(dir, "tokenizer.model") || file_exists(dir, "tokenizer.json");
    /* PaliGemmaProcessor adds "<image>" to the tokenizer: a prompt that
     * spells it gets the image token, which tokenize_gemma refuses */
    if (have_tok && (tok_load_gemma(&m->tok, dir, err) ||
                     tok_add_token(m->tok, "<image>", c->image_token_index, err)))
        return -1;
    m->info.has_tokenizer = m->tok != NULL;
    m->info.paligemma = true;
    m->info.n_params = paligemma_param_count(m->pg);
    m->info.lm_head_tied = gemma_lm_head_tied(paligemma_decoder(m->pg));
    return 0;
}

/* Florence-2's tokenizer (tokenizer.json, else vocab.json + merges.txt;
 * optional: without one prompts and results are ids). Florence2Processor
 * writes the image token as the string "<image>", so the tokenizer's id of
 * it must be the config's image_token_id; every tokenizer id must be a row
 * of the model's vocabulary (which may be larger: checkpoints pad it). */
static int load_florence2_tokenizer(pali_model *m, const char *dir, prism_error *err)
{
    if (!file_exists(dir, "tokenizer.json") && !file_exists(dir, "vocab.json"))
        return 0;
    if (tok_bytebpe_load(&m->bpe, dir, err))
        return -1;
    const florence2_config *c = florence2_get_config(m->f2);
    const int32_t image = tok_bytebpe_token_id(m->bpe, "<image>", 7);
    if (image != c->image_token_id)
        return prism_errorf(err, "%s: the tokenizer's id of \"<image>\" is %d (-1: none) but "
                            "config.json's image_token_id is %d", dir, (int)image,
                            c->image_token_id);
    const int32_t n = tok_bytebpe_vocab_size(m->bpe);
    if (n > m->vocab)
        return prism_errorf(err, "%s: the tokenizer has %d tokens, more than config.json's "
                            "text_config.vocab_size %d", dir, (int)n, (int)m->vocab);
    if (tok_bytebpe_bos_id(m->bpe) < 0 || tok_bytebpe_eos_id(m->bpe) < 0)
        return prism_errorf(err, "%s: the tokenizer has no id for its bos_token or eos_token",
                            dir);
    return 0;
}

/* A Florence-2 checkpoint behind the pali API: prompts are its text ids
 * (<s>, the prompt, </s>), the image tokens come first, generation follows
 * its generation_config.json (forced <s> and </s>, no repeated n-grams).
 * The prompt templates are the caption task token and the bare question
 * (Florence-2 has no VQA task). */
static int load_florence2(pali_model *m, const char *dir, prism_error *err)
{
    const florence2_limits fl = {.max_batch = m->lim.max_batch, .max_seqs = m->lim.max_seqs,
                                 .max_new_tokens = m->lim.max_new_tokens,
                                 .max_prompt_tokens = m->lim.max_prompt_tokens};
    if (!(m->dir = strdup(dir)))
        return prism_errorf(err, "out of memory");
    if (florence2_load(&m->f2, dir, m->be, &fl, err))
        return -1;
    const florence2_config *c = florence2_get_config(m->f2);
    m->cfg.image_token_count = m->n_image = c->n_image_tokens;
    /* the pixels callers pass: [3, S, S] at the processor's size (DaViT
     * has no SigLIP config; these two fields are all pali_config says) */
    m->cfg.vision.image_size = c->image_size;
    m->cfg.vision.num_channels = c->vision.in_channels;
    m->vocab = c->text.vocab_size;
    if (m->vocab < 2 * m->lim.max_beams)
        return prism_errorf(err, "%s: vocab_size %d is too small for %d beams", dir,
                            (int)m->vocab, m->lim.max_beams);
    m->eos[0] = c->gen.eos_token_id;
    m->n_eos = 1;
    m->dec_start = c->gen.decoder_start_token_id;
    m->forced_bos = c->gen.forced_bos_token_id;
    m->forced_eos = c->gen.forced_eos_token_id;
    m->no_repeat_ngram = c->gen.no_repeat_ngram_size;
    snprintf(m->cfg.caption_template, PALI_TEMPLATE_MAX, "<CAPTION>");
    snprintf(m->cfg.vqa_template, PALI_TEMPLATE_MAX, "{question}");
    if (load_florence2_tokenizer(m, dir, err))
        return -1;
    m->info.has_tokenizer = m->bpe != NULL;
    m->info.florence2 = true;
    m->info.n_params = florence2_param_count(m->f2);
    m->info.lm_head_tied = bart_lm_head_tied(florence2_bart(m->f2));
    return 0;
}

int pali_load(pali_model **out, const char *dir, prism_backend *be, const pali_limits *lim,
              prism_error *err)
{
    *out = NULL;
    pali_limits dl;
    if (!lim) {
        pali_limits_default(&dl);
        lim = &dl;
    }
    if (check_limits(lim, err))
        return -1;
    pali_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->be = be;
    ws_init(&m->ws, be, &m->weights);
    m->lim = *lim;
    m->forced_bos = m->forced_eos = -1;
    if (florence2_is_model_dir(dir)) {
        if (load_florence2(m, dir, err)) {
            pali_free(m);
            return -1;
        }
        *out = m;
        return 0;
    }
    if (paligemma_is_model_dir(dir)) {
        if (load_paligemma(m, dir, err)) {
            pali_free(m);
            return -1;
        }
        *out = m;
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = pali_config_load(&m->cfg, path, err) || st_weights_open(&m->weights, dir, err);
    const siglip_vision_config *vc = &m->cfg.vision;
    const t5_config *tc = &m->cfg.text;
    m->n_image = m->cfg.image_token_count;
    const int64_t E = vc->t.hidden_size, D = tc->d_model;
    if (rc == 0 && tc->vocab_size < 2 * lim->max_beams)
        rc = prism_errorf(err, "%s: vocab_size %d is too small for %d beams", path,
                          tc->vocab_size, lim->max_beams);
    if (rc == 0)
        rc = siglip_vision_load(&m->vision, vc, &m->weights, be, lim->max_batch, err);
    if (rc == 0) {
        m->proj_w = load_proj(m, "multi_modal_projector.linear.weight", 2,
                              (const int64_t[]){D, E}, true, err);
        m->proj_b = m->proj_w ? load_proj(m, "multi_modal_projector.linear.bias", 1,
                                          (const int64_t[]){D}, false, err) : NULL;
        rc = m->proj_b ? 0 : -1;
    }
    if (rc == 0) {
        t5_limits tl = {
            .max_enc_batch = lim->max_batch,
            .max_enc_len = m->n_image + lim->max_prompt_tokens,
            .max_dec_seqs = lim->max_seqs,
            .max_dec_len = lim->max_new_tokens,
        };
        rc = t5_load(&m->t5, tc, &m->weights, "language_model.", be, &tl, err);
    }
    if (rc == 0) {
        const size_t per = (size_t)vc->num_channels * vc->image_size * vc->image_size;
        const size_t B = (size_t)lim->max_batch;
        m->proj_out = be->ops->alloc(be, B * m->n_image * D * sizeof(float));
        m->ids_dev = be->ops->alloc(be, B * lim->max_prompt_tokens * sizeof(int32_t));
        m->ids_host = malloc(B * lim->max_prompt_tokens * sizeof(int32_t));
        m->pixels_host = malloc(B * per * sizeof(float));
        m->lens_host = malloc(B * sizeof(int));
        if (!m->proj_out || !m->ids_dev || !m->ids_host || !m->pixels_host || !m->lens_host)
            rc = prism_errorf(err, "cannot allocate prefill buffers for batch %d", lim->max_batch);
    }
    if (rc == 0) { /* spiece.model is optional: without it prompts come as ids */
        snprintf(path, sizeof path, "%s/spiece.model", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            if (tok_load(&m->tok, dir, err))
                rc = -1;
            else if (sp_model_piece_count(tok_model(m->tok)) > tc->vocab_size)
                rc = prism_errorf(err, "%s: %d pieces, more than text_config.vocab_size %d",
                                  path, sp_model_piece_count(tok_model(m->tok)), tc->vocab_size);
        }
    }
    if (rc) {
        pali_free(m);
        return -1;
    }
    m->info.has_tokenizer = m->tok != NULL;
    const siglip_info *vi = siglip_get_info(m->vision);
    m->info.n_params = m->ws.n_params + vi->n_params + t5_param_count(m->t5);
    m->info.n_tensors = m->ws.n_tensors + vi->n_tensors + t5_tensor_count(m->t5);
    m->info.n_files = m->weights.n_files;
    int64_t total = 0;
    for (int i = 0; i < m->weights.n_files; i++)
        total += m->weights.files[i].n_tensors;
    m->info.n_unused = total - m->info.n_tensors;
    m->info.lm_head_tied = t5_lm_head_tied(m->t5);
    m->vocab = tc->vocab_size;
    m->eos[0] = tc->eos_token_id;
    m->n_eos = 1;
    m->dec_start = tc->decoder_start_token_id;
    *out = m;
    return 0;
}

void pali_free(pali_model *m)
{
    if (!m)
        return;
    prism_backend *be = m->be;
    siglip_free(m->vision);
    t5_free(m->t5);
    paligemma_free(m->pg);
    florence2_free(m->f2);
    tok_bytebpe_free(m->bpe);
    free(m->dir);
    ws_release(&m->ws);
    if (m->proj_out)
        be->ops->free(be, m->proj_out);
    if (m->ids_dev)
        be->ops->free(be, m->ids_dev);
    free(m->ids_host);
    free(m->pixels_host);
    free(m->lens_host);
    tok_free(m->tok);
    st_weights_close(&m->weights);
    free(m);
}

const pali_config *pali_get_config(const pali_model *m) { return &m->cfg; }
const gemma_config *pali_get_gemma_config(const pali_model *m)
{
    return m->pg ? &paligemma_get_config(m->pg)->text : NULL;
}
const pali_limits *pali_get_limits(const pali_model *m) { return &m->lim; }
const pali_info *pali_get_info(const pali_model *m) { return &m->info; }

/* ---- prompts --------------------------------------------------------------------- */

int pali_prompt_text(const pali_model *m, pali_task task, const char *lang,
                     const char *question, char *out, size_t out_len, prism_error *err)
{
    const char *tpl = task == PALI_TASK_VQA ? m->cfg.vqa_template : m->cfg.caption_template;
    size_t n = 0;
    if (!lang)
        lang = "en";
    if (task == PALI_TASK_VQA && !question)
        return prism_errorf(err, "a question is required");
    for (const char *p = tpl; *p;) {
        const char *sub = NULL;
        size_t skip = 1;
        if (strncmp(p, "{lang}", 6) == 0)
            sub = lang, skip = 6;
        else if (strncmp(p, "{question}", 10) == 0)
            sub = question ? question : "", skip = 10;
        const char *src = sub ? sub : p;
        size_t len = sub ? strlen(sub) : 1;
        if (n + len + 1 > out_len)
            return prism_errorf(err, "prompt longer than %zu bytes", out_len - 1);
        memcpy(out + n, src, len);
        n += len;
        p += skip;
    }
    out[n] = '\0';
    return 0;
}

/* ---- prefill ---------------------------------------------------------------------- */

int pali_request_check(const pali_model *m, const pali_request *r, int i, prism_error *err)
{
    if (!r->pixels)
        return prism_errorf(err, "request %d: no image", i);
    if (r->n_prompt < 1 || r->n_prompt > m->lim.max_prompt_tokens || !r->prompt_ids)
        return prism_errorf(err, "request %d: prompt of %d tokens is outside [1, %d]", i,
                            r->n_prompt, m->lim.max_prompt_tokens);
    for (int t = 0; t < r->n_prompt; t++)
        if (r->prompt_ids[t] < 0 || r->prompt_ids[t] >= m->vocab)
            return prism_errorf(err, "request %d: prompt id %d = %d is outside the vocabulary "
                                "[0, %d)", i, t, r->prompt_ids[t], (int)m->vocab);
        else if ((m->pg && r->prompt_ids[t] == paligemma_get_config(m->pg)->image_token_index) ||
                 (m->f2 && r->prompt_ids[t] == florence2_get_config(m->f2)->image_token_id))
            return prism_errorf(err, "request %d: prompt id %d is the image token %d: the image "
                                "tokens come from the image", i, t, r->prompt_ids[t]);
    if (r->max_new_tokens < 1 || r->max_new_tokens > m->lim.max_new_tokens)
        return prism_errorf(err, "request %d: max_new_tokens %d is outside [1, %d]", i,
                            r->max_new_tokens, m->lim.max_new_tokens);
    if (r->num_beams < 1 || r->num_beams > m->lim.max_beams)
        return prism_errorf(err, "request %d: num_beams %d is outside [1, %d]", i, r->num_beams,
                            m->lim.max_beams);
    if (!(r->length_penalty > -100 && r->length_penalty < 100))
        return prism_errorf(err, "request %d: length_penalty must be a number in (-100, 100)", i);
    return 0;
}

int pali_prefill(pali_model *m, const pali_request *reqs, int B, t5_cache *cache,
                 const int *cross_slots, float *states, int *T_out, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const siglip_vision_config *vc = &m->cfg.vision;
    const t5_config *tc = &m->cfg.text;
    const int N = m->n_image, E = vc->t.hidden_size, D = tc->d_model;
    const size_t per = (size_t)vc->num_channels * vc->image_size * vc->image_size;
    int P = 0, *lens = m->lens_host;
    for (int b = 0; b < B; b++) {
        P = reqs[b].n_prompt > P ? reqs[b].n_prompt : P;
        memcpy(m->pixels_host + b * per, reqs[b].pixels, per * sizeof(float));
    }
    const int T = N + P;
    const float *z;
    if (siglip_vision_hidden(m->vision, m->pixels_host, B, &z, err))
        return prism_error_prefix(err, "vision tower");
    PRISM_CK(o->matmul(be, m->proj_out, z, m->proj_w, m->proj_b, B * N, D, E, PRISM_ACT_NONE),
       "multi_modal_projector");
    /* prompt ids, each padded to P with pad_token_id (finite rows that the
     * encoder's key mask hides) */
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < P; t++)
            m->ids_host[b * P + t] = t < reqs[b].n_prompt ? reqs[b].prompt_ids[t]
                                                          : tc->pad_token_id;
        lens[b] = N + reqs[b].n_prompt;
    }
    PRISM_CK(o->upload(be, m->ids_dev, m->ids_host, (size_t)B * P * sizeof(int32_t)), "upload ids");
    float *x = t5_encoder_input(m->t5);
    for (int b = 0; b < B; b++) {
        PRISM_CK(o->copy_rows(be, x + (size_t)b * T * D, D, m->proj_out + (size_t)b * N * D, D, N, D),
           "image tokens");
        PRISM_CK(o->embedding(be, x + ((size_t)b * T + N) * D, t5_embedding_table(m->t5),
                        m->ids_dev + b * P, P, D), "prompt embedding");
    }
    if (T_out)
        *T_out = T;
    return t5_encode(m->t5, B, T, lens, cache, cross_slots, states, err);
}

int pali_encode(pali_model *m, const float *pixels, const int32_t *prompt_ids, int n_prompt,
                float *states, prism_error *err)
{
    if (m->pg)
        return prism_errorf(err, "pali_encode: a PaliGemma model has no encoder");
    if (m->f2)
        return prism_errorf(err, "pali_encode: use florence2_encode for a Florence-2 model");
    pali_request r = {.pixels = pixels, .prompt_ids = prompt_ids, .n_prompt = n_prompt,
                      .max_new_tokens = 1, .num_beams = 1, .length_penalty = 1.0f};
    if (pali_request_check(m, &r, 0, err))
        return -1;
    return pali_prefill(m, &r, 1, NULL, NULL, states, NULL, err);
}

/* ---- text ---------------------------------------------------------------------------- */

/* PaliGemmaProcessor's text part: <bos>, the prompt, "\n" (Gemma BPE, no
 * lowercasing); the image tokens are the engine's. A prompt that spells the
 * image token ("<image>") is refused: it would take an image row. */
static int tokenize_gemma(const pali_model *m, const char *text, int32_t *ids, int max_ids,
                          int *n, prism_error *err)
{
    if (!m->tok)
        return prism_errorf(err, "%s has no tokenizer.model or tokenizer.json: give the "
                            "prompt as token ids", m->dir);
    if (max_ids < 2)
        return prism_errorf(err, "the prompt limit %d leaves no room for the text", max_ids);
    const size_t len = strlen(text);
    char *with_nl = malloc(len + 2);
    if (!with_nl)
        return prism_errorf(err, "out of memory");
    memcpy(with_nl, text, len);
    memcpy(with_nl + len, "\n", 2);
    ids[0] = 2; /* <bos> */
    int k = 0;
    int rc = tok_gemma_encode(m->tok, with_nl, len + 1, ids + 1, max_ids - 1, &k, err);
    free(with_nl);
    if (rc)
        return prism_error_prefix(err, "the prompt is over the limit of %d tokens", max_ids);
    const int32_t image = paligemma_get_config(m->pg)->image_token_index;
    for (int i = 1; i <= k; i++)
        if (ids[i] == image) {
            prism_errorf(err, "the prompt holds the image token <image> (id %d); the image "
                         "gives the image tokens", (int)image);
            return -2;
        }
    *n = k + 1;
    return 0;
}

/* Florence2Processor's text part for a constructed prompt: the processor
 * writes "<image>" + bos_token + prompt + eos_token and tokenizes it without
 * special tokens; the engine gives the image tokens, this the rest, from
 * the same string ("<s>" + text + "</s>") so that it matches as written,
 * added tokens in the text included. A prompt that spells the image token
 * is refused: it would take an image row. */
static int tokenize_florence2(const pali_model *m, const char *text, int32_t *ids, int max_ids,
                              int *n, prism_error *err)
{
    if (!m->bpe)
        return prism_errorf(err, "%s has no tokenizer.json or vocab.json: give the prompt as "
                            "token ids", m->dir);
    size_t bos_len, eos_len;
    const char *bos = tok_bytebpe_id_token(m->bpe, tok_bytebpe_bos_id(m->bpe), &bos_len);
    const char *eos = tok_bytebpe_id_token(m->bpe, tok_bytebpe_eos_id(m->bpe), &eos_len);
    const size_t len = strlen(text);
    for (size_t i = 0; i < len;) { /* an encoding error below is then the limit */
        uint32_t cp;
        const size_t l = tok_utf8_char((const unsigned char *)text, len, i, &cp);
        if (l == 0)
            return prism_errorf(err, "the prompt is not valid UTF-8 (byte %zu)", i);
        i += l;
    }
    char *whole = malloc(bos_len + len + eos_len);
    if (!whole)
        return prism_errorf(err, "out of memory");
    memcpy(whole, bos, bos_len);
    memcpy(whole + bos_len, text, len);
    memcpy(whole + bos_len + len, eos, eos_len);
    size_t k = 0;
    int rc = tok_bytebpe_encode(m->bpe, whole, bos_len + len + eos_len, ids,
                                max_ids > 0 ? (size_t)max_ids : 0, &k, err);
    free(whole);
    if (rc)
        return prism_error_prefix(err, "the prompt is over the limit of %d tokens", max_ids);
    const int32_t image = florence2_get_config(m->f2)->image_token_id;
    for (size_t i = 0; i < k; i++)
        if (ids[i] == image) {
            prism_errorf(err, "the prompt holds the image token <image> (id %d); the image "
                         "gives the image tokens", (int)image);
            return -2;
        }
    *n = (int)k;
    return 0;
}

/* transformers 5's T5Tokenizer (tokenization_t5.py): the charsmap
 * normaliser, WhitespaceSplit + Metaspace("▁", prepend always) per word,
 * Unigram, then "$A </s>". SentencePiece's own encoder gives the same
 * pieces: its normaliser collapses whitespace and prefixes "▁", and unigram
 * pieces never span a "▁" inside them. Special-token strings written in
 * the text ("</s>", "<pad>", "<extra_id_0>") are encoded as plain text, not
 * as their ids (a user's question cannot inject control tokens; HF would
 * map them). A prompt over the limit is refused as soon as a prefix shows
 * it (tok_sp_encode_bounded), without encoding all of a huge text. */
int pali_tokenize(const pali_model *m, const char *text, int32_t *ids, int max_ids, int *n,
                  prism_error *err)
{
    if (m->pg)
        return tokenize_gemma(m, text, ids, max_ids, n, err);
    if (m->f2)
        return tokenize_florence2(m, text, ids, max_ids, n, err);
    if (!m->tok)
        return prism_errorf(err, "%s has no spiece.model: give the prompt as token ids",
                            m->weights.dir);
    sp_encoding enc = {0};
    size_t n_pieces = 0;
    const size_t max_pieces = max_ids > 1 ? (size_t)max_ids - 1 : 0;
    int over = tok_sp_encode_bounded(m->tok, text, strlen(text), max_pieces, &enc, &n_pieces,
                                     NULL, err);
    int rc = over < 0 ? -1 : 0;
    if (over == 1 || (over == 0 && n_pieces + 1 > (size_t)(max_ids > 0 ? max_ids : 0)))
        rc = prism_errorf(err, "the prompt needs %s%zu tokens; the limit is %d",
                          over == 1 ? "at least " : "", n_pieces + 1, max_ids);
    for (size_t i = 0; rc == 0 && i < enc.n_pieces; i++)
        ids[i] = enc.pieces[i].id;
    if (rc == 0) {
        ids[enc.n_pieces] = m->cfg.text.eos_token_id;
        *n = (int)enc.n_pieces + 1;
    }
    sp_encoding_free(&enc);
    return rc;
}

/* T5Tokenizer.decode(skip_special_tokens=True): the special tokens (pad,
 * </s>, <unk>, the <extra_id_N> sentinels past the SentencePiece
 * vocabulary, and the unused rows up to vocab_size) are dropped, then
 * SentencePiece decoding (▁ → space, the leading space dropped). */
int pali_detokenize(const pali_model *m, const int32_t *ids, int n, char **out,
                    prism_error *err)
{
    *out = NULL;
    if (m->f2)
        return pali_decode_florence2(m, ids, n, false, out, err);
    if (m->pg) {
        if (!m->tok)
            return prism_errorf(err, "%s has no Gemma tokenizer", m->dir);
        return tok_gemma_decode(m->tok, ids, (size_t)(n > 0 ? n : 0), true, out, err);
    }
    if (!m->tok)
        return prism_errorf(err, "%s has no spiece.model", m->weights.dir);
    const sp_model *sp = tok_model(m->tok);
    const int32_t pieces = sp_model_piece_count(sp), unk = sp_model_unk_id(sp);
    const t5_config *tc = &m->cfg.text;
    int32_t *keep = malloc((size_t)(n > 0 ? n : 1) * sizeof *keep);
    if (!keep)
        return prism_errorf(err, "out of memory");
    int k = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < pieces && ids[i] != tc->pad_token_id &&
            ids[i] != tc->eos_token_id && ids[i] != unk)
            keep[k++] = ids[i];
    sp_buf b = {0};
    int rc = sp_decode_ids(sp, keep, (size_t)k, &b, err);
    free(keep);
    if (rc == 0 && sp_buf_append(&b, "", 1)) /* NUL-terminate */
        rc = prism_errorf(err, "out of memory");
    if (rc) {
        sp_buf_free(&b);
        return -1;
    }
    *out = b.data;
    return 0;
}

/* BartTokenizer.decode (tok_bytebpe_decode); ids outside the model's rows
 * are the caller's error, not something the reference would decode. */
int pali_decode_florence2(const pali_model *m, const int32_t *ids, int n, bool raw, char **out,
                          prism_error *err)
{
    *out = NULL;
    if (!m->f2)
        return prism_errorf(err, "pali_decode_florence2: not a Florence-2 model");
    if (!m->bpe)
        return prism_errorf(err, "%s has no tokenizer.json or vocab.json", m->dir);
    if (n < 0 || (n > 0 && !ids))
        return prism_errorf(err, "decode: %d ids", n);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return prism_errorf(err, "decode: id %d (position %d) is outside the vocabulary "
                                "[0, %d)", ids[i], i, (int)m->vocab);
    return tok_bytebpe_decode(m->bpe, ids, (size_t)n, !raw, out, NULL, err);
}
