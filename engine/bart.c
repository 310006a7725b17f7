/* bart.c - BART encoder-decoder, written once against backend.h (see bart.h). */
#include "bart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weight_set.h"

typedef struct bart_attn {
    const void *qkv;         /* q;k;v fused [3·D, D] (self) or q [D, D] (cross) */
    const float *qkv_b;      /* [3·D] or [D] */
    const void *kv;          /* cross only: k;v fused [2·D, D] */
    const float *kv_b;       /* [2·D] */
    const void *o;           /* out_proj [D, D] */
    const float *o_b;
    const float *ln_w, *ln_b; /* the LayerNorm after the residual add */
} bart_attn;

typedef struct bart_ffn {
    const void *fc1, *fc2;   /* [F, D], [D, F] */
    const float *fc1_b, *fc2_b;
    const float *ln_w, *ln_b; /* final_layer_norm */
} bart_ffn;

typedef struct bart_layer {
    bart_attn self, cross;   /* cross unused in the encoder */
    bart_ffn ffn;
} bart_layer;

struct bart_model {
    bart_config cfg;
    bart_limits lim;
    prism_backend *be;
    const st_weights *w;
    char prefix[96];
    weight_set ws;
    bool tied;
    float *embed;                /* shared.weight × embed_scale [V, D], owned when scaled */
    const float *shared;         /* shared.weight as imported */
    const void *lm_head;         /* [V, D] matrix */
    const float *enc_pos, *dec_pos;          /* embed_positions.weight [P + 2, D] */
    const float *enc_ln_w, *enc_ln_b, *dec_ln_w, *dec_ln_b; /* layernorm_embedding */
    bart_layer *enc, *dec;
    /* activations */
    float *ex, *eh, *eqkv, *eattn, *ef, *emask, *ekv;  /* encoder */
    float *dx, *dh, *dqkv, *dattn, *df, *logits;       /* decoder */
    int32_t *dids;
    float *host_mask;
    int32_t *host_ids;
};

/* ---- config ------------------------------------------------------------------ */

typedef struct ctx {
    const char *file, *key;
    prism_error *err;
} ctx;

static int get_int(ctx *c, const json_value *o, const char *key, int *out, int lo, int hi)
{
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi)
        return prism_errorf(c->err, "%s: %s.%s must be an integer in [%d, %d]", c->file, c->key,
                            key, lo, hi);
    *out = (int)v->integer;
    return 0;
}

int bart_config_from_json(bart_config *b, const json_value *o, const char *file, const char *key,
                          prism_error *err)
{
    ctx c = {file, key, err};
    if (!o || o->type != JSON_OBJECT)
        return prism_errorf(err, "%s: %s must be an object", file, key);
    const json_value *mt = json_get(o, "model_type");
    if (!mt || mt->type != JSON_STRING || strcmp(mt->string, "bart") != 0)
        return prism_errorf(err, "%s: %s.model_type must be \"bart\" (got %.40s)", file, key,
                            mt && mt->type == JSON_STRING ? mt->string : "none");
    /* transformers' BartConfig defaults (facebook/bart-large) */
    *b = (bart_config){.vocab_size = 50265, .d_model = 1024, .encoder_layers = 12,
                       .decoder_layers = 12, .encoder_heads = 16, .decoder_heads = 16,
                       .encoder_ffn = 4096, .decoder_ffn = 4096, .max_position_embeddings = 1024,
                       .act = PRISM_ACT_GELU_ERF, .layer_norm_eps = 1e-5f, .pad_token_id = 1,
                       .bos_token_id = 0, .eos_token_id = 2, .decoder_start_token_id = 2};
    if (get_int(&c, o, "vocab_size", &b->vocab_size, 1, 1 << 24) ||
        get_int(&c, o, "d_model", &b->d_model, 1, 1 << 16) ||
        get_int(&c, o, "encoder_layers", &b->encoder_layers, 0, 1024) ||
        get_int(&c, o, "decoder_layers", &b->decoder_layers, 1, 1024) ||
        get_int(&c, o, "encoder_attention_heads", &b->encoder_heads, 1, 1024) ||
        get_int(&c, o, "decoder_attention_heads", &b->decoder_heads, 1, 1024) ||
        get_int(&c, o, "encoder_ffn_dim", &b->encoder_ffn, 1, 1 << 18) ||
        get_int(&c, o, "decoder_ffn_dim", &b->decoder_ffn, 1, 1 << 18) ||
        get_int(&c, o, "max_position_embeddings", &b->max_position_embeddings, 1, 1 << 20) ||
        get_int(&c, o, "pad_token_id", &b->pad_token_id, 0, 1 << 24) ||
        get_int(&c, o, "bos_token_id", &b->bos_token_id, 0, 1 << 24) ||
        get_int(&c, o, "eos_token_id", &b->eos_token_id, 0, 1 << 24) ||
        get_int(&c, o, "decoder_start_token_id", &b->decoder_start_token_id, 0, 1 << 24))
        return -1;
    const json_value *se = json_get(o, "scale_embedding");
    if (se && se->type != JSON_NULL) {
        if (se->type != JSON_BOOL)
            return prism_errorf(err, "%s: %s.scale_embedding must be true or false", file, key);
        b->scale_embedding = se->boolean;
    }
    const json_value *act = json_get(o, "activation_function");
    if (act && act->type != JSON_NULL &&
        (act->type != JSON_STRING || prism_act_parse(act->string, &b->act)))
        return prism_errorf(err, "%s: %s.activation_function: unsupported (%.40s)", file, key,
                            act->type == JSON_STRING ? act->string : "not a string");
    if (b->d_model % b->encoder_heads || b->d_model % b->decoder_heads)
        return prism_errorf(err, "%s: %s.d_model %d is not a multiple of the attention heads",
                            file, key, b->d_model);
    if (b->decoder_start_token_id >= b->vocab_size || b->eos_token_id >= b->vocab_size)
        return prism_errorf(err, "%s: %s: decoder_start_token_id and eos_token_id must be below "
                            "vocab_size %d", file, key, b->vocab_size);
    /* the encoder stack of a Florence-2 checkpoint may be empty in principle,
     * but its layernorm_embedding is still applied: nothing else to check */
    return 0;
}

/* ---- loading ----------------------------------------------------------------- */

static const void *load(bart_model *m, const char *name, int64_t rows, int64_t cols, bool matrix,
                        prism_error *err)
{
    char full[320];
    snprintf(full, sizeof full, "%s%s", m->prefix, name);
    const int64_t shape[2] = {rows, cols};
    return ws_load(&m->ws, full, cols > 0 ? 2 : 1, shape, matrix, 0, -1, err);
}

/* q;k;v (n = 3) or k;v (n = 2) of `p` (…self_attn.) fused, weights and biases. */
static int load_fused(bart_model *m, const char *p, const char *const *which, int n,
                      const void **w, const float **b, prism_error *err)
{
    char wn[3][320], bn[3][320];
    const char *wp[3], *bp[3];
    const int64_t D = m->cfg.d_model;
    for (int i = 0; i < n; i++) {
        snprintf(wn[i], sizeof wn[i], "%s%s%s_proj.weight", m->prefix, p, which[i]);
        snprintf(bn[i], sizeof bn[i], "%s%s%s_proj.bias", m->prefix, p, which[i]);
        wp[i] = wn[i];
        bp[i] = bn[i];
    }
    const int64_t ws[2] = {D, D}, bs[1] = {D};
    if (!(*w = ws_load_cat(&m->ws, wp, n, 2, ws, true, err)) ||
        !(*b = ws_load_cat(&m->ws, bp, n, 1, bs, false, err)))
        return -1;
    return 0;
}

static int load_attn(bart_model *m, const char *p, const char *name, bool cross, bart_attn *a,
                     prism_error *err)
{
    static const char *const qkv[] = {"q", "k", "v"}, *const kv[] = {"k", "v"};
    char q[160], n[200];
    const int64_t D = m->cfg.d_model;
    snprintf(q, sizeof q, "%s%s.", p, name);
    if (load_fused(m, q, qkv, cross ? 1 : 3, &a->qkv, &a->qkv_b, err))
        return -1;
    if (cross && load_fused(m, q, kv, 2, &a->kv, &a->kv_b, err))
        return -1;
    snprintf(n, sizeof n, "%sout_proj.weight", q);
    if (!(a->o = load(m, n, D, D, true, err)))
        return -1;
    snprintf(n, sizeof n, "%sout_proj.bias", q);
    if (!(a->o_b = load(m, n, D, 0, false, err)))
        return -1;
    snprintf(n, sizeof n, "%s%s_layer_norm.weight", p, name);
    if (!(a->ln_w = load(m, n, D, 0, false, err)))
        return -1;
    snprintf(n, sizeof n, "%s%s_layer_norm.bias", p, name);
    return (a->ln_b = load(m, n, D, 0, false, err)) ? 0 : -1;
}

static int load_layer(bart_model *m, const char *stack, int l, bool dec, prism_error *err)
{
    bart_layer *L = dec ? &m->dec[l] : &m->enc[l];
    const int64_t D = m->cfg.d_model, F = dec ? m->cfg.decoder_ffn : m->cfg.encoder_ffn;
    char p[96], n[160];
    snprintf(p, sizeof p, "%s.layers.%d.", stack, l);
    if (load_attn(m, p, "self_attn", false, &L->self, err) ||
        (dec && load_attn(m, p, "encoder_attn", true, &L->cross, err)))
        return -1;
    bart_ffn *f = &L->ffn;
    struct {
        const void **dst;
        const char *name;
        int64_t rows, cols;
        bool matrix;
    } t[] = {
        {(const void **)&f->fc1, "fc1.weight", F, D, true},
        {(const void **)&f->fc1_b, "fc1.bias", F, 0, false},
        {(const void **)&f->fc2, "fc2.weight", D, F, true},
        {(const void **)&f->fc2_b, "fc2.bias", D, 0, false},
        {(const void **)&f->ln_w, "final_layer_norm.weight", D, 0, false},
        {(const void **)&f->ln_b, "final_layer_norm.bias", D, 0, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        snprintf(n, sizeof n, "%s%s", p, t[i].name);
        if (!(*t[i].dst = load(m, n, t[i].rows, t[i].cols, t[i].matrix, err)))
            return -1;
    }
    return 0;
}

static int load_weights(bart_model *m, const char *lm_head, prism_error *err)
{
    const bart_config *c = &m->cfg;
    const int64_t D = c->d_model, V = c->vocab_size, P = c->max_position_embeddings + 2;
    prism_backend *be = m->be;
    if (!(m->shared = load(m, "shared.weight", V, D, false, err)))
        return -1;
    m->tied = st_weights_find(m->w, lm_head, NULL) == NULL;
    const int64_t shape[2] = {V, D};
    if (m->tied) {
        if (!(m->lm_head = load(m, "shared.weight", V, D, true, err)))
            return -1;
        m->ws.n_params -= V * D; /* the same tensor, counted once */
        m->ws.n_tensors--;
    } else if (!(m->lm_head = ws_load(&m->ws, lm_head, 2, shape, true, 0, -1, err))) {
        return -1;
    }
    m->embed = (float *)m->shared;
    if (c->scale_embedding) {
        /* BartScaledWordEmbedding: embedding × float32(√d_model), one
         * float32 multiply per value, made once here */
        const float s = (float)sqrt((double)D);
        const size_t n = (size_t)V * (size_t)D;
        float *h = malloc(n * sizeof *h);
        m->embed = be->ops->alloc(be, n * sizeof(float));
        int rc = !h || !m->embed || be->ops->download(be, h, m->shared, n * sizeof *h);
        if (!rc) {
            for (size_t i = 0; i < n; i++)
                h[i] *= s;
            rc = be->ops->upload(be, m->embed, h, n * sizeof *h);
        }
        free(h);
        if (rc)
            return prism_errorf(err, "cannot allocate the scaled embedding table (%zu bytes)",
                                n * sizeof(float));
    }
    if (!(m->enc_pos = load(m, "encoder.embed_positions.weight", P, D, false, err)) ||
        !(m->dec_pos = load(m, "decoder.embed_positions.weight", P, D, false, err)) ||
        !(m->enc_ln_w = load(m, "encoder.layernorm_embedding.weight", D, 0, false, err)) ||
        !(m->enc_ln_b = load(m, "encoder.layernorm_embedding.bias", D, 0, false, err)) ||
        !(m->dec_ln_w = load(m, "decoder.layernorm_embedding.weight", D, 0, false, err)) ||
        !(m->dec_ln_b = load(m, "decoder.layernorm_embedding.bias", D, 0, false, err)))
        return -1;
    m->enc = calloc((size_t)c->encoder_layers + 1, sizeof *m->enc);
    m->dec = calloc((size_t)c->decoder_layers + 1, sizeof *m->dec);
    if (!m->enc || !m->dec)
        return prism_errorf(err, "out of memory");
    for (int l = 0; l < c->encoder_layers; l++)
        if (load_layer(m, "encoder", l, false, err))
            return -1;
    for (int l = 0; l < c->decoder_layers; l++)
        if (load_layer(m, "decoder", l, true, err))
            return -1;
    return 0;
}

static int alloc_work(bart_model *m, prism_error *err)
{
    prism_backend *be = m->be;
    const bart_config *c = &m->cfg;
    const size_t f = sizeof(float), D = (size_t)c->d_model;
    const size_t Fe = (size_t)c->encoder_ffn, Fd = (size_t)c->decoder_ffn;
    const size_t R = (size_t)m->lim.max_enc_batch * (size_t)m->lim.max_enc_len;
    const size_t S = (size_t)m->lim.max_dec_seqs;
    void **bufs[] = {(void **)&m->ex, (void **)&m->eh, (void **)&m->eqkv, (void **)&m->eattn,
                     (void **)&m->ef, (void **)&m->emask, (void **)&m->ekv, (void **)&m->dx,
                     (void **)&m->dh, (void **)&m->dqkv, (void **)&m->dattn, (void **)&m->df,
                     (void **)&m->logits, (void **)&m->dids};
    const size_t sizes[] = {R * D * f, R * D * f, R * 3 * D * f, R * D * f, R * Fe * f, R * f,
                            R * 2 * D * f, S * D * f, S * D * f, S * 3 * D * f, S * D * f,
                            S * Fd * f, S * (size_t)c->vocab_size * f, S * sizeof(int32_t)};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = be->ops->alloc(be, sizes[i])))
            return prism_errorf(err, "cannot allocate BART activations (%zu bytes) on the %s "
                                "backend", sizes[i], be->ops->name);
    if (!(m->host_mask = malloc(R * f)) || !(m->host_ids = malloc(S * sizeof(int32_t))))
        return prism_errorf(err, "out of memory");
    return 0;
}

int bart_load(bart_model **out, const bart_config *cfg, const st_weights *w, const char *prefix,
              const char *lm_head, prism_backend *be, const bart_limits *lim, prism_error *err)
{
    *out = NULL;
    const prism_backend_ops *o = be->ops;
    if (!o->topk || !o->copy_rows)
        return prism_errorf(err, "the %s backend lacks an op BART generation needs (topk, "
                            "copy_rows)", o->name);
    if (lim->max_enc_batch < 1 || lim->max_enc_len < 1 || lim->max_dec_seqs < 1 ||
        lim->max_dec_len < 1 || lim->max_enc_len > cfg->max_position_embeddings ||
        lim->max_dec_len > cfg->max_position_embeddings)
        return prism_errorf(err, "BART limits out of range: encoder %d and decoder %d positions "
                            "(the model has %d)", lim->max_enc_len, lim->max_dec_len,
                            cfg->max_position_embeddings);
    bart_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->cfg = *cfg;
    m->lim = *lim;
    m->be = be;
    m->w = w;
    ws_init(&m->ws, be, w);
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    if (load_weights(m, lm_head, err) || alloc_work(m, err)) {
        bart_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void bart_free(bart_model *m)
{
    if (!m)
        return;
    prism_backend *be = m->be;
    if (m->embed && m->embed != m->shared)
        be->ops->free(be, m->embed);
    ws_release(&m->ws);
    void *bufs[] = {m->ex, m->eh, m->eqkv, m->eattn, m->ef, m->emask, m->ekv, m->dx, m->dh,
                    m->dqkv, m->dattn, m->df, m->logits, m->dids};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    free(m->host_mask);
    free(m->host_ids);
    free(m->enc);
    free(m->dec);
    free(m);
}

const bart_config *bart_get_config(const bart_model *m) { return &m->cfg; }
bool bart_lm_head_tied(const bart_model *m) { return m->tied; }
int64_t bart_param_count(const bart_model *m) { return m->ws.n_params; }
int64_t bart_tensor_count(const bart_model *m) { return m->ws.n_tensors; }
float *bart_encoder_input(bart_model *m) { return m->ex; }
float *bart_logits(bart_model *m) { return m->logits; }

int bart_embed(bart_model *m, float *out, const int32_t *ids_dev, int n, prism_error *err)
{
    prism_backend *be = m->be;
    PRISM_CK(be->ops->embedding(be, out, m->embed, ids_dev, n, m->cfg.d_model), "embed_tokens");
    return 0;
}

/* ---- caches -------------------------------------------------------------------- */

int bart_cache_create(bart_cache **out, bart_model *m, int n_slots, int n_cross,
                     prism_error *err)
{
    return encdec_cache_create(out, m->be, n_slots, n_cross,
                               m->cfg.decoder_layers, m->lim.max_dec_len,
                               m->lim.max_enc_len, m->cfg.d_model, err);
}


/* ---- forward ------------------------------------------------------------------- */

/* x = LayerNorm(x + h) over R rows (post-norm residual). */
static int add_norm(bart_model *m, float *x, float *h, const float *w, const float *b, int R,
                    prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const int D = m->cfg.d_model;
    if (o->add_layernorm) {
        PRISM_CK(o->add_layernorm(be, x, h, x, w, b, R, D, m->cfg.layer_norm_eps),
                 "residual + layer_norm");
        return 0;
    }
    PRISM_CK(o->add(be, x, x, h, (size_t)R * D), "residual");
    PRISM_CK(o->layernorm(be, x, x, w, b, R, D, m->cfg.layer_norm_eps), "layer_norm");
    return 0;
}

/* x = LN(x + fc2(act(fc1(x)))); h [R, D] and f [R, F] scratch. */
static int ffn(bart_model *m, const bart_ffn *f, float *x, float *h, float *fbuf, int R, int F,
               prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const int D = m->cfg.d_model;
    PRISM_CK(o->matmul(be, fbuf, x, f->fc1, f->fc1_b, R, F, D, m->cfg.act), "fc1");
    PRISM_CK(o->matmul(be, h, fbuf, f->fc2, f->fc2_b, R, D, F, PRISM_ACT_NONE), "fc2");
    return add_norm(m, x, h, f->ln_w, f->ln_b, R, err);
}

int bart_encode(bart_model *m, int B, int T, const int *lens, bart_cache *cache,
                const int *cross_slots, float *states, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const bart_config *c = &m->cfg;
    const int D = c->d_model, H = c->encoder_heads, R = B * T;
    if (B < 1 || B > m->lim.max_enc_batch || T < 1 || T > m->lim.max_enc_len)
        return prism_errorf(err, "encoder batch %d x %d is outside the limits %d x %d", B, T,
                            m->lim.max_enc_batch, m->lim.max_enc_len);
    bool padded = false;
    for (int b = 0; b < B; b++) {
        if (lens[b] < 1 || lens[b] > T)
            return prism_errorf(err, "encoder length %d is outside [1, %d]", lens[b], T);
        for (int t = 0; t < T; t++)
            m->host_mask[b * T + t] = t < lens[b] ? 0.0f : -INFINITY;
        padded |= lens[b] < T;
    }
    if (padded)
        PRISM_CK(o->upload(be, m->emask, m->host_mask, (size_t)R * sizeof(float)), "upload mask");
    /* positions 0..T-1 are rows 2..T+1 of the table (BART's offset) */
    PRISM_CK(o->add_rows(be, m->ex, m->enc_pos + 2 * (size_t)D, R, T, D), "embed_positions");
    PRISM_CK(o->layernorm(be, m->ex, m->ex, m->enc_ln_w, m->enc_ln_b, R, D, c->layer_norm_eps),
             "layernorm_embedding");
    const int dh = D / H;
    prism_attn_desc a = {
        .B = B, .H = H, .Tq = T, .Tk = T, .d = dh,
        .q_stride = 3 * D, .k_stride = 3 * D, .v_stride = 3 * D, .o_stride = D,
        .q_bstride = (int64_t)T * 3 * D, .k_bstride = (int64_t)T * 3 * D,
        .v_bstride = (int64_t)T * 3 * D, .o_bstride = (int64_t)T * D,
        .scale = (float)pow((double)dh, -0.5), .key_mask = padded ? m->emask : NULL,
    };
    for (int l = 0; l < c->encoder_layers; l++) {
        const bart_layer *L = &m->enc[l];
        PRISM_CK(o->matmul(be, m->eqkv, m->ex, L->self.qkv, L->self.qkv_b, R, 3 * D, D,
                           PRISM_ACT_NONE), "q/k/v");
        PRISM_CK(o->attention(be, m->eattn, m->eqkv, m->eqkv + D, m->eqkv + 2 * D, &a),
                 "encoder self-attention");
        PRISM_CK(o->matmul(be, m->eh, m->eattn, L->self.o, L->self.o_b, R, D, D, PRISM_ACT_NONE),
                 "out_proj");
        if (add_norm(m, m->ex, m->eh, L->self.ln_w, L->self.ln_b, R, err) ||
            ffn(m, &L->ffn, m->ex, m->eh, m->ef, R, c->encoder_ffn, err))
            return prism_error_prefix(err, "encoder layer %d", l);
    }
    if (states)
        PRISM_CK(o->download(be, states, m->ex, (size_t)R * D * sizeof(float)), "download");
    if (!cache || !cross_slots)
        return 0;
    for (int b = 0; b < B; b++)
        if (encdec_cross_begin(cache, cross_slots[b], lens[b], err))
            return -1;
    for (int l = 0; l < c->decoder_layers; l++) {
        const bart_attn *x = &m->dec[l].cross;
        PRISM_CK(o->matmul(be, m->ekv, m->ex, x->kv, x->kv_b, R, 2 * D, D, PRISM_ACT_NONE),
                 "cross k/v");
        if (encdec_cross_write(cache, l, m->ekv, B, T, lens, cross_slots, err))
            return -1;
    }
    return 0;
}

int bart_decode_step(bart_model *m, bart_cache *cache, const encdec_seq *seqs, int n,
                     prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const bart_config *c = &m->cfg;
    const int D = c->d_model, H = c->decoder_heads, dh = D / H;
    const float scale = (float)pow((double)dh, -0.5);
    if (n < 1 || n > m->lim.max_dec_seqs)
        return prism_errorf(err, "%d sequences: outside [1, %d]", n, m->lim.max_dec_seqs);
    int32_t *ids = m->host_ids;
    if (encdec_check_seqs(cache, seqs, n, c->vocab_size, ids, err))
        return -1;
    PRISM_CK(o->upload(be, m->dids, ids, (size_t)n * sizeof *ids), "upload ids");
    PRISM_CK(o->embedding(be, m->dx, m->embed, m->dids, n, D), "embed_tokens");
    for (int s = 0; s < n; s++)
        PRISM_CK(o->add_rows(be, m->dx + (size_t)s * D, m->dec_pos + (size_t)(seqs[s].pos + 2) * D,
                             1, 1, D), "embed_positions");
    PRISM_CK(o->layernorm(be, m->dx, m->dx, m->dec_ln_w, m->dec_ln_b, n, D, c->layer_norm_eps),
             "layernorm_embedding");
    for (int l = 0; l < c->decoder_layers; l++) {
        const bart_layer *L = &m->dec[l];
        PRISM_CK(o->matmul(be, m->dqkv, m->dx, L->self.qkv, L->self.qkv_b, n, 3 * D, D,
                           PRISM_ACT_NONE), "q/k/v");
        for (int s = 0; s < n; s++) {
            float *kv = encdec_self_kv(cache, seqs[s].slot, l);
            PRISM_CK(o->copy_rows(be, kv + (size_t)seqs[s].pos * 2 * D, 2 * D,
                                  m->dqkv + (size_t)s * 3 * D + D, 3 * D, 1, 2 * D),
                     "cache append");
            prism_attn_desc a = {
                .B = 1, .H = H, .Tq = 1, .Tk = seqs[s].pos + 1, .d = dh,
                .q_stride = 3 * D, .k_stride = 2 * D, .v_stride = 2 * D, .o_stride = D,
                .scale = scale,
            };
            PRISM_CK(o->attention(be, m->dattn + (size_t)s * D, m->dqkv + (size_t)s * 3 * D, kv,
                                  kv + D, &a), "decoder self-attention");
        }
        PRISM_CK(o->matmul(be, m->dh, m->dattn, L->self.o, L->self.o_b, n, D, D, PRISM_ACT_NONE),
                 "out_proj");
        if (add_norm(m, m->dx, m->dh, L->self.ln_w, L->self.ln_b, n, err))
            return prism_error_prefix(err, "decoder layer %d", l);
        PRISM_CK(o->matmul(be, m->dqkv, m->dx, L->cross.qkv, L->cross.qkv_b, n, D, D,
                           PRISM_ACT_NONE), "cross q");
        if (encdec_cross_attend(cache, l, seqs, n, m->dattn, m->dqkv, H, scale, err))
            return -1;
        PRISM_CK(o->matmul(be, m->dh, m->dattn, L->cross.o, L->cross.o_b, n, D, D,
                           PRISM_ACT_NONE), "cross out_proj");
        if (add_norm(m, m->dx, m->dh, L->cross.ln_w, L->cross.ln_b, n, err) ||
            ffn(m, &L->ffn, m->dx, m->dh, m->df, n, c->decoder_ffn, err))
            return prism_error_prefix(err, "decoder layer %d", l);
    }
    PRISM_CK(o->matmul(be, m->logits, m->dx, m->lm_head, NULL, n, c->vocab_size, D,
                       PRISM_ACT_NONE), "lm_head");
    return 0;
}
