/* gemma.c - the Gemma / Gemma 2 decoder on a prism backend (see gemma.h).
 *
 * Written against the backend's existing ops only, so every backend runs it:
 *   - RMSNorm's (1 + w) is added once at load (float32, as torch adds it)
 *     and `rmsnorm` does x · rsqrt(mean(x²) + eps) · gamma;
 *   - the √D embedding scale is a `mul` by a buffer holding √D (float32);
 *   - rotary embeddings are q·cos + rotate_half(q)·sin with host-made
 *     tables (rotate_half by two `copy_rows`, its sign folded into sin);
 *   - grouped-query attention is one `attention` call per key/value head:
 *     that head's G = H / KVH query heads become G query rows of each
 *     position ("batch" = position, keys broadcast with a batch stride 0).
 */
#include "gemma.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weight_set.h"

typedef struct gemma_layer {
    const float *ln_in, *ln_post_attn;    /* 1 + w */
    const float *ln_pre_ffn, *ln_post_ffn; /* Gemma 2 */
    const void *q, *k, *v, *o;            /* [H·d, D], [KVH·d, D] ×2, [D, H·d] */
    const void *gate, *up, *down;         /* [I, D] ×2, [D, I] */
} gemma_layer;

struct gemma_model {
    gemma_config cfg;
    gemma_limits lim;
    prism_backend *be;
    const st_weights *w;
    st_weights root;       /* w without its prefix (a separate lm_head's name) */
    weight_set ws, ws_root;
    const st_tensor *embed; /* [V, D] in the checkpoint's dtype: rows converted per call */
    const void *lm_head;   /* [V, D] matrix */
    bool tied;
    gemma_layer *layers;
    const float *final_norm;
    float **norm_host;     /* the (1 + w) vectors made at load */
    const float **norm_dev; /* their imports, where the backend made a copy (else NULL) */
    int n_norm_host;
    /* activations, [max_tokens, ·] */
    float *x, *h, *q, *rot, *attn, *gate, *up;
    float *kt, *vt;        /* a call's new keys/values before they enter the caches */
    float *scale_d;        /* √D in every element of [max_tokens, D] */
    float *cos_q, *sin_q, *cos_k, *sin_k; /* rotary tables of one call */
    float *host_tab;       /* host staging: [max_tokens, H·d] */
    int *pos_host;         /* [max_tokens]: rotary position of each row */
    float *logits;         /* [V] */
    float *softcap_host;   /* [n_slots, V] host, Gemma 2's final soft-capping (else NULL) */
    float *k_cache, *v_cache; /* [n_slots, layers, max_len, KVH·d] */
};

/* ---- config ------------------------------------------------------------ */

typedef struct ctx {
    const char *file, *key;
    prism_error *err;
} ctx;

static bool is_null(const json_value *v)
{
    return !v || v->type == JSON_NULL;
}

static int get_int(ctx *c, const json_value *o, const char *key, int *out, int lo, int hi)
{
    const json_value *v = json_get(o, key);
    if (is_null(v))
        return 0;
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi)
        return prism_errorf(c->err, "%s: %s.%s must be an integer in [%d, %d]", c->file, c->key,
                            key, lo, hi);
    *out = (int)v->integer;
    return 0;
}

static int get_float(ctx *c, const json_value *o, const char *key, float *out, bool positive)
{
    const json_value *v = json_get(o, key);
    if (is_null(v))
        return 0;
    if (v->type != JSON_NUMBER || !isfinite(v->number) || (positive && v->number <= 0))
        return prism_errorf(c->err, "%s: %s.%s must be a %snumber", c->file, c->key, key,
                            positive ? "positive " : "");
    *out = (float)v->number;
    return 0;
}

int gemma_config_from_json(gemma_config *g, const json_value *o, const char *file,
                           const char *key, prism_error *err)
{
    ctx c = {file, key, err};
    if (!o || o->type != JSON_OBJECT)
        return prism_errorf(err, "%s: %s must be an object", file, key);
    const json_value *mt = json_get(o, "model_type");
    const bool g2 = mt && mt->type == JSON_STRING && strcmp(mt->string, "gemma2") == 0;
    if (!mt || mt->type != JSON_STRING || (!g2 && strcmp(mt->string, "gemma") != 0))
        return prism_errorf(err, "%s: %s.model_type must be \"gemma\" or \"gemma2\" (got %.40s)",
                            file, key, mt && mt->type == JSON_STRING ? mt->string : "none");
    /* transformers' GemmaConfig / Gemma2Config defaults (gemma-7b / gemma-2-9b) */
    *g = (gemma_config){.gemma2 = g2, .vocab_size = 256000, .hidden_size = g2 ? 2304 : 3072,
                        .intermediate_size = g2 ? 9216 : 24576,
                        .num_hidden_layers = g2 ? 26 : 28, .num_attention_heads = g2 ? 8 : 16,
                        .num_key_value_heads = g2 ? 4 : 16, .head_dim = 256,
                        .max_position_embeddings = 8192, .rms_norm_eps = 1e-6f,
                        .rope_theta = 10000.0f, .act = PRISM_ACT_GELU_TANH,
                        .query_pre_attn_scalar = 256, .attn_logit_softcapping = g2 ? 50.0f : 0,
                        .final_logit_softcapping = g2 ? 30.0f : 0,
                        .sliding_window = g2 ? 4096 : 0};
    if (get_int(&c, o, "vocab_size", &g->vocab_size, 1, 1 << 24) ||
        get_int(&c, o, "hidden_size", &g->hidden_size, 1, 1 << 16) ||
        get_int(&c, o, "intermediate_size", &g->intermediate_size, 1, 1 << 18) ||
        get_int(&c, o, "num_hidden_layers", &g->num_hidden_layers, 0, 1024) ||
        get_int(&c, o, "num_attention_heads", &g->num_attention_heads, 1, 1024) ||
        get_int(&c, o, "head_dim", &g->head_dim, 2, 4096) ||
        get_int(&c, o, "max_position_embeddings", &g->max_position_embeddings, 1, 1 << 24) ||
        get_float(&c, o, "rms_norm_eps", &g->rms_norm_eps, true) ||
        get_float(&c, o, "rope_theta", &g->rope_theta, true))
        return -1;
    if (get_int(&c, o, "num_key_value_heads", &g->num_key_value_heads, 1, 1024))
        return -1;
    const json_value *rp = json_get(o, "rope_parameters"); /* transformers 5 */
    if (!is_null(rp)) {
        ctx rc = {file, "text_config.rope_parameters", err};
        const json_value *rt = json_get(rp, "rope_type");
        if (rp->type != JSON_OBJECT ||
            (!is_null(rt) && (rt->type != JSON_STRING || strcmp(rt->string, "default") != 0)))
            return prism_errorf(err, "%s: %s.rope_parameters: only rope_type \"default\" is "
                                "supported", file, key);
        if (get_float(&rc, rp, "rope_theta", &g->rope_theta, true))
            return -1;
    }
    const char *act_key = "hidden_activation";
    const json_value *act = json_get(o, act_key);
    if (is_null(act))
        act = json_get(o, act_key = "hidden_act");
    if (!is_null(act) && (act->type != JSON_STRING || prism_act_parse(act->string, &g->act) ||
                          g->act == PRISM_ACT_NONE))
        return prism_errorf(err, "%s: %s.%s: unknown activation", file, key, act_key);
    if (g2) {
        g->query_pre_attn_scalar = (float)g->head_dim;
        if (get_float(&c, o, "query_pre_attn_scalar", &g->query_pre_attn_scalar, true) ||
            get_float(&c, o, "attn_logit_softcapping", &g->attn_logit_softcapping, false) ||
            get_float(&c, o, "final_logit_softcapping", &g->final_logit_softcapping, false) ||
            get_int(&c, o, "sliding_window", &g->sliding_window, 0, 1 << 24))
            return -1;
        for (int l = 0; l < GEMMA_MAX_LAYERS; l++)
            g->sliding[l] = (l + 1) % 2; /* Gemma2Config's default layer_types */
        if (is_null(json_get(o, "attn_logit_softcapping")) && json_get(o, "attn_logit_softcapping"))
            g->attn_logit_softcapping = 0; /* null: off */
        if (is_null(json_get(o, "final_logit_softcapping")) && json_get(o, "final_logit_softcapping"))
            g->final_logit_softcapping = 0;
    } else {
        g->query_pre_attn_scalar = (float)g->head_dim;
    }
    const json_value *lt = json_get(o, "layer_types");
    if (!is_null(lt)) {
        if (lt->type != JSON_ARRAY || (int)lt->count != g->num_hidden_layers)
            return prism_errorf(err, "%s: %s.layer_types must list num_hidden_layers (%d) "
                                "strings", file, key, g->num_hidden_layers);
        for (size_t l = 0; l < lt->count; l++) {
            const json_value *t = &lt->items[l];
            const bool sl = t->type == JSON_STRING && strcmp(t->string, "sliding_attention") == 0;
            if (!sl && !(t->type == JSON_STRING && strcmp(t->string, "full_attention") == 0))
                return prism_errorf(err, "%s: %s.layer_types[%zu] must be \"sliding_attention\" "
                                    "or \"full_attention\"", file, key, l);
            g->sliding[l] = sl;
        }
    }
    if (g->num_hidden_layers > GEMMA_MAX_LAYERS)
        return prism_errorf(err, "%s: %s.num_hidden_layers %d: more than %d", file, key,
                            g->num_hidden_layers, GEMMA_MAX_LAYERS);
    if (g->num_attention_heads % g->num_key_value_heads)
        return prism_errorf(err, "%s: %s.num_attention_heads %d is not a multiple of "
                            "num_key_value_heads %d", file, key, g->num_attention_heads,
                            g->num_key_value_heads);
    if (g->head_dim % 2)
        return prism_errorf(err, "%s: %s.head_dim must be even (rotary halves)", file, key);
    return 0;
}

/* ---- load -------------------------------------------------------------- */

/* A norm vector as 1 + w (float32), imported as a plain weight. */
static const float *load_norm(gemma_model *m, const char *name, prism_error *err)
{
    const int64_t D = m->cfg.hidden_size;
    const st_tensor *t = st_weights_require(m->w, name, 1, &D, err);
    if (!t)
        return NULL;
    float *host = malloc((size_t)D * sizeof *host);
    if (!host) {
        prism_errorf(err, "out of memory");
        return NULL;
    }
    st_to_f32(host, t->data, t->dtype, (size_t)D);
    for (int64_t i = 0; i < D; i++)
        host[i] = 1.0f + host[i];
    bool owned = false;
    const float *out = m->be->ops->weight_import(m->be, host, PRISM_DT_F32, (size_t)D, false,
                                                 &owned);
    m->norm_host[m->n_norm_host] = host; /* the import may be host itself: kept until free */
    m->norm_dev[m->n_norm_host++] = owned ? out : NULL;
    if (!out)
        prism_errorf(err, "%s: cannot import", name);
    m->ws.n_params += D;
    m->ws.n_tensors++;
    return out;
}

static const void *load_mat(gemma_model *m, const char *name, int64_t rows, int64_t cols,
                            prism_error *err)
{
    const int64_t shape[2] = {rows, cols};
    return ws_load(&m->ws, name, 2, shape, true, 0, -1, err);
}

static int load_weights(gemma_model *m, const char *lm_head, prism_error *err)
{
    const gemma_config *c = &m->cfg;
    const int64_t D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size;
    const int64_t Hd = (int64_t)c->num_attention_heads * c->head_dim;
    const int64_t KVd = (int64_t)c->num_key_value_heads * c->head_dim;
    const int64_t vd[2] = {V, D};
    /* the embedding rows are read from the mapping as they are needed
     * (gemma_embed): no float32 copy of a 257216-row table */
    if (!(m->embed = st_weights_require(m->w, "embed_tokens.weight", 2, vd, err)))
        return -1;
    m->ws.n_params += V * D;
    m->ws.n_tensors++;
    /* lm_head: a tensor of its own, or the embedding table again as a matrix */
    m->tied = !lm_head || !st_weights_find(&m->root, lm_head, NULL);
    if (m->tied) {
        if (!(m->lm_head = load_mat(m, "embed_tokens.weight", V, D, err)))
            return -1;
        m->ws.n_params -= V * D; /* counted once */
        m->ws.n_tensors--;
    } else if (!(m->lm_head = ws_load(&m->ws_root, lm_head, 2, vd, true, 0, -1, err))) {
        return -1;
    }
    const int n_norms = 4 * c->num_hidden_layers + 1;
    m->norm_host = calloc((size_t)n_norms, sizeof *m->norm_host);
    m->norm_dev = calloc((size_t)n_norms, sizeof *m->norm_dev);
    m->layers = calloc((size_t)(c->num_hidden_layers ? c->num_hidden_layers : 1),
                       sizeof *m->layers);
    if (!m->norm_host || !m->norm_dev || !m->layers)
        return prism_errorf(err, "out of memory");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        gemma_layer *L = &m->layers[l];
        char n[160];
#define NAME(s) (snprintf(n, sizeof n, "layers.%d.%s", l, s), n)
        if (!(L->ln_in = load_norm(m, NAME("input_layernorm.weight"), err)) ||
            !(L->ln_post_attn = load_norm(m, NAME("post_attention_layernorm.weight"), err)) ||
            !(L->q = load_mat(m, NAME("self_attn.q_proj.weight"), Hd, D, err)) ||
            !(L->k = load_mat(m, NAME("self_attn.k_proj.weight"), KVd, D, err)) ||
            !(L->v = load_mat(m, NAME("self_attn.v_proj.weight"), KVd, D, err)) ||
            !(L->o = load_mat(m, NAME("self_attn.o_proj.weight"), D, Hd, err)) ||
            !(L->gate = load_mat(m, NAME("mlp.gate_proj.weight"), I, D, err)) ||
            !(L->up = load_mat(m, NAME("mlp.up_proj.weight"), I, D, err)) ||
            !(L->down = load_mat(m, NAME("mlp.down_proj.weight"), D, I, err)))
            return -1;
        if (c->gemma2 &&
            (!(L->ln_pre_ffn = load_norm(m, NAME("pre_feedforward_layernorm.weight"), err)) ||
             !(L->ln_post_ffn = load_norm(m, NAME("post_feedforward_layernorm.weight"), err))))
            return -1;
#undef NAME
    }
    if (!(m->final_norm = load_norm(m, "norm.weight", err)))
        return -1;
    return 0;
}

static int alloc_work(gemma_model *m, prism_error *err)
{
    const gemma_config *c = &m->cfg;
    prism_backend *be = m->be;
    const size_t T = (size_t)m->lim.max_tokens, D = (size_t)c->hidden_size;
    const size_t Hd = (size_t)c->num_attention_heads * c->head_dim;
    const size_t KVd = (size_t)c->num_key_value_heads * c->head_dim;
    const size_t I = (size_t)c->intermediate_size, f = sizeof(float);
    const size_t cache = (size_t)m->lim.n_slots * c->num_hidden_layers * m->lim.max_len * KVd;
    float **bufs[] = {&m->x, &m->h, &m->q, &m->rot, &m->attn, &m->gate, &m->up, &m->scale_d,
                      &m->cos_q, &m->sin_q, &m->cos_k, &m->sin_k, &m->kt, &m->vt};
    const size_t sizes[] = {T * D, T * (D > Hd ? D : Hd), T * Hd, T * Hd, T * Hd, T * I, T * I,
                            T * D, T * Hd, T * Hd, T * KVd, T * KVd, T * KVd, T * KVd};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (!(*bufs[i] = be->ops->alloc(be, sizes[i] * f)))
            return prism_errorf(err, "cannot allocate the decoder's activations (%d tokens) on "
                                "the %s backend", m->lim.max_tokens, be->ops->name);
    m->logits = be->ops->alloc(be, (size_t)c->vocab_size * f);
    m->pos_host = malloc(T * sizeof *m->pos_host);
    if (c->final_logit_softcapping > 0 &&
        !(m->softcap_host = malloc((size_t)m->lim.n_slots * c->vocab_size * f)))
        return prism_errorf(err, "out of memory");
    m->k_cache = be->ops->alloc(be, (cache ? cache : 1) * f);
    m->v_cache = be->ops->alloc(be, (cache ? cache : 1) * f);
    m->host_tab = malloc(T * (Hd > D ? Hd : D) * f);
    if (!m->logits || !m->k_cache || !m->v_cache || !m->host_tab || !m->pos_host)
        return prism_errorf(err, "cannot allocate the decoder's KV cache (%zu bytes) on the %s "
                            "backend", 2 * cache * f, be->ops->name);
    const float s = sqrtf((float)c->hidden_size); /* torch: a float32 tensor of hidden**0.5 */
    for (size_t i = 0; i < T * D; i++)
        m->host_tab[i] = s;
    if (be->ops->upload(be, m->scale_d, m->host_tab, T * D * f))
        return prism_backend_failed(be, err, "upload");
    return 0;
}

int gemma_load(gemma_model **out, const gemma_config *cfg, const st_weights *w,
               const char *lm_head, prism_backend *be, const gemma_limits *lim,
               prism_error *err)
{
    *out = NULL;
    if (lim->max_tokens < 1 || lim->max_len < lim->max_tokens || lim->n_slots < 1)
        return prism_errorf(err, "gemma limits: need max_tokens >= 1, max_len >= max_tokens, "
                            "n_slots >= 1");
    gemma_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->cfg = *cfg;
    m->lim = *lim;
    m->be = be;
    m->w = w;
    m->root = st_weights_view(w, NULL, NULL);
    ws_init(&m->ws, be, w);
    ws_init(&m->ws_root, be, &m->root);
    if (load_weights(m, lm_head, err) || alloc_work(m, err)) {
        gemma_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void gemma_free(gemma_model *m)
{
    if (!m)
        return;
    prism_backend *be = m->be;
    float *bufs[] = {m->x, m->h, m->q, m->rot, m->attn, m->gate, m->up, m->scale_d,
                     m->cos_q, m->sin_q, m->cos_k, m->sin_k, m->kt, m->vt, m->logits,
                     m->k_cache, m->v_cache};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    ws_release(&m->ws);
    ws_release(&m->ws_root);
    for (int i = 0; i < m->n_norm_host; i++) {
        if (m->norm_dev[i])
            be->ops->free(be, (void *)m->norm_dev[i]);
        free(m->norm_host[i]);
    }
    free(m->norm_host);
    free(m->norm_dev);
    free(m->layers);
    free(m->host_tab);
    free(m->pos_host);
    free(m->softcap_host);
    free(m);
}

const gemma_config *gemma_get_config(const gemma_model *m) { return &m->cfg; }
bool gemma_lm_head_tied(const gemma_model *m) { return m->tied; }
int64_t gemma_param_count(const gemma_model *m) { return m->ws.n_params + m->ws_root.n_params; }
float *gemma_input(gemma_model *m) { return m->x; }

/* ---- forward ----------------------------------------------------------- */

int gemma_embed(gemma_model *m, const int32_t *ids, int n, prism_error *err)
{
    prism_backend *be = m->be;
    const int D = m->cfg.hidden_size;
    if (n < 1 || n > m->lim.max_tokens)
        return prism_errorf(err, "%d tokens: outside [1, %d]", n, m->lim.max_tokens);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return prism_errorf(err, "token id %d at %d is outside the vocabulary [0, %d)",
                                (int)ids[i], i, m->cfg.vocab_size);
    const size_t row = (size_t)D * prism_dtype_size(m->embed->dtype);
    for (int i = 0; i < n; i++) /* exact: every dtype converts to float32 without rounding */
        if (st_to_f32(m->host_tab + (size_t)i * D, m->embed->data + (size_t)ids[i] * row,
                      m->embed->dtype, (size_t)D))
            return prism_errorf(err, "embed_tokens.weight: dtype cannot be read as float32");
    PRISM_CK(be->ops->upload(be, m->x, m->host_tab, (size_t)n * D * sizeof(float)),
             "embed_tokens");
    PRISM_CK(be->ops->mul(be, m->x, m->x, m->scale_d, (size_t)n * D), "embedding scale");
    return 0;
}

/* cos/sin tables of T rows at rotary positions pos[t] for nh heads:
 * [T, nh·d], cos(p·f_j) and sin with rotate_half's sign (−sin in the first
 * half of each head). The frequencies as torch makes them in float32:
 * 1 / θ^(2j/d), p·f in float32. */
static int rope_tables(gemma_model *m, const int *pos, int T, int nh, float *cos_dev,
                       float *sin_dev, prism_error *err)
{
    prism_backend *be = m->be;
    const int d = m->cfg.head_dim, half = d / 2;
    float *tab = m->host_tab;
    for (int pass = 0; pass < 2; pass++) {
        for (int t = 0; t < T; t++)
            for (int j = 0; j < half; j++) {
                const float ex = (float)(2 * j) / (float)d;
                const float inv = 1.0f / powf(m->cfg.rope_theta, ex);
                const float a = (float)pos[t] * inv;
                const float cv = pass == 0 ? cosf(a) : sinf(a);
                for (int h = 0; h < nh; h++) {
                    float *row = tab + ((size_t)t * nh + h) * d;
                    row[j] = pass == 0 ? cv : -cv;
                    row[j + half] = cv;
                }
            }
        PRISM_CK(be->ops->upload(be, pass == 0 ? cos_dev : sin_dev, tab,
                                 (size_t)T * nh * d * sizeof(float)), "upload rotary tables");
    }
    return 0;
}

/* x [T, nh·d] = x·cos + rotate_half(x)·sin in place. */
static int rope_apply(gemma_model *m, float *x, int T, int nh, const float *cos_t,
                      const float *sin_t, prism_error *err)
{
    prism_backend *be = m->be;
    const int d = m->cfg.head_dim, half = d / 2;
    const size_t n = (size_t)T * nh * d;
    PRISM_CK(be->ops->copy_rows(be, m->rot, d, x + half, d, T * nh, half), "rotate_half");
    PRISM_CK(be->ops->copy_rows(be, m->rot + half, d, x, d, T * nh, half), "rotate_half");
    PRISM_CK(be->ops->mul(be, x, x, cos_t, n), "rope cos");
    PRISM_CK(be->ops->mul(be, m->rot, m->rot, sin_t, n), "rope sin");
    PRISM_CK(be->ops->add(be, x, x, m->rot, n), "rope");
    return 0;
}

/* A run of a call's rows: positions [pos, pos + len) of one slot. */
typedef struct seg {
    int slot, pos, len;
} seg;

static int check_seg(const gemma_model *m, const seg *g, prism_error *err)
{
    if (g->slot < 0 || g->slot >= m->lim.n_slots || g->pos < 0 || g->len < 1 ||
        g->pos + g->len > m->lim.max_len)
        return prism_errorf(err, "gemma: slot %d, positions [%d, %d) outside the limits (%d "
                            "slots, %d positions)", g->slot, g->pos, g->pos + g->len,
                            m->lim.n_slots, m->lim.max_len);
    return 0;
}

/* The layers over the input's T rows, which are the segments' rows in
 * order. Every GEMM takes all T rows; keys and values enter each segment's
 * slot at its positions; a segment's rows attend to its slot's positions
 * [0, pos + len) (a single generated row in a Gemma 2 sliding layer: the
 * last sliding_window of them). */
static int forward_segs(gemma_model *m, const seg *segs, int n_seg, int T, int rope_offset,
                        prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const gemma_config *c = &m->cfg;
    const int D = c->hidden_size, H = c->num_attention_heads, KVH = c->num_key_value_heads;
    const int d = c->head_dim, G = H / KVH, I = c->intermediate_size;
    const int Hd = H * d, KVd = KVH * d;
    const float eps = c->rms_norm_eps;
    if (T < 1 || T > m->lim.max_tokens)
        return prism_errorf(err, "gemma: %d rows in one call; the limit is %d", T,
                            m->lim.max_tokens);
    for (int i = 0, t = 0; i < n_seg; i++) {
        if (check_seg(m, &segs[i], err))
            return -1;
        for (int j = 0; j < segs[i].len; j++)
            m->pos_host[t++] = segs[i].pos + j + rope_offset;
    }
    if (rope_tables(m, m->pos_host, T, H, m->cos_q, m->sin_q, err) ||
        rope_tables(m, m->pos_host, T, KVH, m->cos_k, m->sin_k, err))
        return -1;
    const size_t layer_cache = (size_t)m->lim.max_len * KVd;
    const float scale = 1.0f / sqrtf(c->query_pre_attn_scalar);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const gemma_layer *Ly = &m->layers[l];
        PRISM_CK(o->rmsnorm(be, m->h, m->x, Ly->ln_in, T, D, eps), "input_layernorm");
        PRISM_CK(o->matmul(be, m->q, m->h, Ly->q, NULL, T, Hd, D, PRISM_ACT_NONE), "q_proj");
        PRISM_CK(o->matmul(be, m->kt, m->h, Ly->k, NULL, T, KVd, D, PRISM_ACT_NONE), "k_proj");
        PRISM_CK(o->matmul(be, m->vt, m->h, Ly->v, NULL, T, KVd, D, PRISM_ACT_NONE), "v_proj");
        if (rope_apply(m, m->q, T, H, m->cos_q, m->sin_q, err) ||
            rope_apply(m, m->kt, T, KVH, m->cos_k, m->sin_k, err))
            return prism_error_prefix(err, "layer %d", l);
        for (int i = 0, row = 0; i < n_seg; row += segs[i++].len) {
            const seg *sg = &segs[i];
            const size_t at = ((size_t)sg->slot * c->num_hidden_layers + l) * layer_cache;
            float *kc = m->k_cache + at, *vc = m->v_cache + at;
            const int L = sg->pos + sg->len;
            PRISM_CK(o->copy_rows(be, kc + (size_t)sg->pos * KVd, KVd, m->kt + (size_t)row * KVd,
                                  KVd, sg->len, KVd), "k cache");
            PRISM_CK(o->copy_rows(be, vc + (size_t)sg->pos * KVd, KVd, m->vt + (size_t)row * KVd,
                                  KVd, sg->len, KVd), "v cache");
            int k0 = 0;
            if (sg->len == 1 && c->gemma2 && c->sliding[l] && c->sliding_window > 0 &&
                sg->pos - c->sliding_window + 1 > 0)
                k0 = sg->pos - c->sliding_window + 1;
            const size_t q0 = (size_t)row * Hd;
            for (int g = 0; g < KVH; g++) {
                /* key/value head g serves query heads [g·G, (g+1)·G): G rows per position */
                prism_attn_desc a = {.B = sg->len, .H = 1, .Tq = G, .Tk = L - k0, .d = d,
                                     .q_stride = d, .k_stride = KVd, .v_stride = KVd,
                                     .o_stride = d, .q_bstride = Hd, .k_bstride = 0,
                                     .v_bstride = 0, .o_bstride = Hd, .scale = scale,
                                     .softcap = c->gemma2 ? c->attn_logit_softcapping : 0};
                PRISM_CK(o->attention(be, m->attn + q0 + (size_t)g * G * d,
                                      m->q + q0 + (size_t)g * G * d,
                                      kc + (size_t)k0 * KVd + (size_t)g * d,
                                      vc + (size_t)k0 * KVd + (size_t)g * d, &a), "self_attn");
            }
        }
        if (c->gemma2) { /* a norm between o_proj and the residual add */
            PRISM_CK(o->matmul(be, m->h, m->attn, Ly->o, NULL, T, D, Hd, PRISM_ACT_NONE),
                     "o_proj");
            PRISM_CK(o->rmsnorm(be, m->h, m->h, Ly->ln_post_attn, T, D, eps),
                     "post_attention_layernorm");
            PRISM_CK(o->add(be, m->x, m->x, m->h, (size_t)T * D), "residual");
            PRISM_CK(o->rmsnorm(be, m->h, m->x, Ly->ln_pre_ffn, T, D, eps),
                     "pre_feedforward_layernorm");
        } else {
            PRISM_CK(o->matmul_residual(be, m->x, m->attn, Ly->o, NULL, m->x, T, D, Hd),
                     "o_proj + residual");
            PRISM_CK(o->rmsnorm(be, m->h, m->x, Ly->ln_post_attn, T, D, eps),
                     "post_attention_layernorm");
        }
        PRISM_CK(o->matmul(be, m->gate, m->h, Ly->gate, NULL, T, I, D, c->act), "gate_proj");
        PRISM_CK(o->matmul(be, m->up, m->h, Ly->up, NULL, T, I, D, PRISM_ACT_NONE), "up_proj");
        PRISM_CK(o->mul(be, m->gate, m->gate, m->up, (size_t)T * I), "gate * up");
        if (c->gemma2) {
            PRISM_CK(o->matmul(be, m->h, m->gate, Ly->down, NULL, T, D, I, PRISM_ACT_NONE),
                     "down_proj");
            PRISM_CK(o->rmsnorm(be, m->h, m->h, Ly->ln_post_ffn, T, D, eps),
                     "post_feedforward_layernorm");
            PRISM_CK(o->add(be, m->x, m->x, m->h, (size_t)T * D), "residual");
        } else {
            PRISM_CK(o->matmul_residual(be, m->x, m->gate, Ly->down, NULL, m->x, T, D, I),
                     "down_proj + residual");
        }
    }
    return 0;
}

/* Gemma 2's final soft-capping of host logits, as torch: (l / cap).tanh() · cap in float32. */
static void softcap_host(const gemma_config *c, float *x, size_t n)
{
    const float cap = c->final_logit_softcapping;
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i] / cap) * cap;
}

/* Logits [n, V] (backend memory `out`) of the final norm of input rows
 * `rows` (n consecutive rows of m->x). */
static int lm_head_rows(gemma_model *m, const float *rows, int n, float *out, prism_error *err)
{
    prism_backend *be = m->be;
    const gemma_config *c = &m->cfg;
    const int D = c->hidden_size;
    PRISM_CK(be->ops->rmsnorm(be, m->h, rows, m->final_norm, n, D, c->rms_norm_eps), "norm");
    PRISM_CK(be->ops->matmul(be, out, m->h, m->lm_head, NULL, n, c->vocab_size, D,
                             PRISM_ACT_NONE), "lm_head");
    return 0;
}

/* Soft-caps n rows of backend logits (Gemma 2) on the host: a tanh per
 * logit, so n·V of them. */
static int softcap_rows(gemma_model *m, float *logits, int n, prism_error *err)
{
    prism_backend *be = m->be;
    const gemma_config *c = &m->cfg;
    if (c->final_logit_softcapping <= 0)
        return 0;
    const size_t bytes = (size_t)n * c->vocab_size * sizeof(float);
    PRISM_CK(be->ops->download(be, m->softcap_host, logits, bytes), "download logits");
    softcap_host(c, m->softcap_host, (size_t)n * c->vocab_size);
    PRISM_CK(be->ops->upload(be, logits, m->softcap_host, bytes), "upload logits");
    return 0;
}

int gemma_forward(gemma_model *m, int slot, int pos, int T, int rope_offset, float *logits,
                  prism_error *err)
{
    const seg sg = {.slot = slot, .pos = pos, .len = T};
    if (forward_segs(m, &sg, 1, T, rope_offset, err))
        return -1;
    if (!logits)
        return 0;
    prism_backend *be = m->be;
    const gemma_config *c = &m->cfg;
    if (lm_head_rows(m, m->x + (size_t)(T - 1) * c->hidden_size, 1, m->logits, err))
        return -1;
    PRISM_CK(be->ops->download(be, logits, m->logits, (size_t)c->vocab_size * sizeof(float)),
             "download logits");
    if (c->final_logit_softcapping > 0)
        softcap_host(c, logits, (size_t)c->vocab_size);
    return 0;
}

int gemma_last_logits(gemma_model *m, int T, float *logits, prism_error *err)
{
    if (T < 1 || T > m->lim.max_tokens)
        return prism_errorf(err, "gemma_last_logits: row %d outside [1, %d]", T,
                            m->lim.max_tokens);
    return lm_head_rows(m, m->x + (size_t)(T - 1) * m->cfg.hidden_size, 1, logits, err) ||
                   softcap_rows(m, logits, 1, err)
               ? -1
               : 0;
}

int gemma_decode(gemma_model *m, const gemma_token *toks, int n, int rope_offset, float *logits,
                 prism_error *err)
{
    if (n < 1 || n > m->lim.n_slots || n > m->lim.max_tokens)
        return prism_errorf(err, "gemma_decode: %d sequences; the limit is %d", n,
                            m->lim.n_slots < m->lim.max_tokens ? m->lim.n_slots
                                                               : m->lim.max_tokens);
    seg segs[n];
    int32_t ids[n];
    for (int i = 0; i < n; i++) {
        segs[i] = (seg){.slot = toks[i].slot, .pos = toks[i].pos, .len = 1};
        ids[i] = toks[i].token;
        for (int j = 0; j < i; j++)
            if (segs[j].slot == segs[i].slot)
                return prism_errorf(err, "gemma_decode: slot %d twice in one step", segs[i].slot);
    }
    if (gemma_embed(m, ids, n, err) || forward_segs(m, segs, n, n, rope_offset, err) ||
        lm_head_rows(m, m->x, n, logits, err))
        return -1;
    return softcap_rows(m, logits, n, err);
}

int gemma_cache_copy(gemma_model *m, int dst, int src, int len, prism_error *err)
{
    const gemma_config *c = &m->cfg;
    const int KVd = c->num_key_value_heads * c->head_dim;
    if (dst < 0 || dst >= m->lim.n_slots || src < 0 || src >= m->lim.n_slots || len < 0 ||
        len > m->lim.max_len)
        return prism_errorf(err, "gemma_cache_copy: slots %d <- %d, %d positions: outside the "
                            "limits", dst, src, len);
    if (dst == src || len == 0)
        return 0;
    prism_backend *be = m->be;
    const size_t layer_cache = (size_t)m->lim.max_len * KVd;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const size_t d0 = ((size_t)dst * c->num_hidden_layers + l) * layer_cache;
        const size_t s0 = ((size_t)src * c->num_hidden_layers + l) * layer_cache;
        PRISM_CK(be->ops->copy_rows(be, m->k_cache + d0, KVd, m->k_cache + s0, KVd, len,
                                       KVd), "k cache copy");
        PRISM_CK(be->ops->copy_rows(be, m->v_cache + d0, KVd, m->v_cache + s0, KVd, len,
                                       KVd), "v cache copy");
    }
    return 0;
}
