/* t5.c - T5 / UL2 encoder-decoder, written once against backend.h.
 *
 * Mirrors transformers' modeling_t5.py:
 *   sublayer:  x = x + f(RMSNorm(x))   (T5LayerNorm: no mean, no bias)
 *   attention: softmax(q·kᵀ + position_bias + mask)·v, NO 1/√d scaling;
 *              inner width H·d_kv; block 0's relative_attention_bias is
 *              computed once per stack and reused by every layer
 *   encoder:   self-attention (bidirectional buckets), FFN; final RMSNorm
 *   decoder:   causal self-attention (causal buckets, KV cache),
 *              cross-attention (no position bias), FFN; final RMSNorm,
 *              × d_model^-0.5 when scale_decoder_outputs, then lm_head
 *   FFN:       wo(act(wi·x)) or wo(act(wi_0·x) ⊙ wi_1·x) (gated)
 *
 * Buckets are computed on the host at load (t5_relative_bucket, torch's
 * float arithmetic) into one table per stack covering every relative
 * position the limits allow; the backend's rel_bias op expands them.
 */
#include "t5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weight_set.h"

typedef struct t5_ffn {
    const float *ln;        /* layer_norm.weight [D] */
    const void *wi, *wi1;   /* wi / wi_0 [F, D]; wi_1 [F, D] when gated, else NULL */
    const void *wo;         /* [D, F] */
} t5_ffn;

typedef struct t5_enc_layer {
    const float *ln1;      /* layer.0.layer_norm.weight [D] */
    const void *qkv;       /* SelfAttention q;k;v fused [3·I, D] (I = H·d_kv) */
    const void *o;         /* SelfAttention.o [D, I] */
    t5_ffn ff;             /* layer.1 */
} t5_enc_layer;

typedef struct t5_dec_layer {
    const float *ln1;      /* layer.0.layer_norm.weight */
    const void *qkv;       /* SelfAttention q;k;v [3·I, D] */
    const void *o;         /* SelfAttention.o [D, I] */
    const float *lnx;      /* layer.1.layer_norm.weight */
    const void *xq;        /* EncDecAttention.q [I, D] */
    const void *xkv;       /* EncDecAttention k;v fused [2·I, D] */
    const void *xo;        /* EncDecAttention.o [D, I] */
    t5_ffn ff;             /* layer.2 */
} t5_dec_layer;

struct t5_model {
    t5_config cfg;
    t5_limits lim;
    prism_backend *be;
    const st_weights *w;
    char prefix[64];
    weight_set ws; /* imported tensors: what they own, their counts */
    bool tied;

    const float *shared;         /* shared.weight [V, D] (float32 table) */
    const void *lm_head;         /* lm_head.weight or shared.weight, as a matrix [V, D] */
    const float *enc_rel, *dec_rel; /* relative_attention_bias.weight [nb, H] */
    t5_enc_layer *enc;
    t5_dec_layer *dec;
    const float *enc_final;      /* encoder.final_layer_norm.weight [D] */
    float *dec_final;            /* decoder.final_layer_norm.weight [D], × d_model^-0.5 if scaled */
    int32_t *enc_buckets, *dec_buckets; /* backend memory, rel0 = Tmax − 1 */
    int Tmax;


    /* activations */
    float *ex, *eh, *eqkv, *eattn, *ef0, *ef1, *ebias, *emask, *ekv; /* encoder */
    float *dx, *dh, *dqkv, *dattn, *df0, *df1, *dbias, *logits;      /* decoder */
    int32_t *dids;
    float *host_mask; /* [max_enc_batch · max_enc_len] staging for the key mask */
    int32_t *host_ids; /* [max_dec_seqs] staging for decoder inputs */
};

/* ---- loading ---------------------------------------------------------------- */

/* Loads n same-shaped [rows, cols] tensors `prefix`names[i] (under the
 * model's prefix), concatenated along rows when n > 1, as one weight. */
static const void *load_cat(t5_model *m, const char *prefix, const char *const *names, int n,
                            int64_t rows, int64_t cols, bool matrix, prism_error *err)
{
    char full[3][320];
    const char *ptrs[3];
    const int64_t shape[2] = {rows, cols};
    if (n < 1 || n > 3) {
        prism_errorf(err, "t5: %d tensors to concatenate (1 to 3)", n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        snprintf(full[i], sizeof full[i], "%s%s%s", m->prefix, prefix, names[i]);
        ptrs[i] = full[i];
    }
    return ws_load_cat(&m->ws, ptrs, n, cols > 0 ? 2 : 1, shape, matrix, err);
}

#define CAT(dst, matrix, prefix, rows, cols, ...)                                          \
    do {                                                                                \
        static const char *const names_[] = {__VA_ARGS__};                              \
        if (!((dst) = load_cat(m, prefix, names_, (int)(sizeof names_ / sizeof *names_),  \
                               rows, cols, matrix, err)))                               \
            return -1;                                                                  \
    } while (0)
#define VEC(dst, prefix, name, n) CAT(dst, false, prefix, n, 0, name)
#define MAT(dst, prefix, rows, cols, ...) CAT(dst, true, prefix, rows, cols, __VA_ARGS__)

static int load_ffn(t5_model *m, const char *p, t5_ffn *f, prism_error *err)
{
    const int64_t D = m->cfg.d_model, F = m->cfg.d_ff;
    VEC(f->ln, p, "layer_norm.weight", D);
    if (m->cfg.is_gated_act) {
        MAT(f->wi, p, F, D, "DenseReluDense.wi_0.weight");
        MAT(f->wi1, p, F, D, "DenseReluDense.wi_1.weight");
    } else {
        MAT(f->wi, p, F, D, "DenseReluDense.wi.weight");
        f->wi1 = NULL;
    }
    MAT(f->wo, p, D, F, "DenseReluDense.wo.weight");
    return 0;
}

static int load_weights(t5_model *m, prism_error *err)
{
    const t5_config *c = &m->cfg;
    const int64_t D = c->d_model, I = (int64_t)c->num_heads * c->d_kv, V = c->vocab_size;
    const int64_t nb = c->relative_attention_num_buckets, H = c->num_heads;
    char p[128];
    CAT(m->shared, false, "", V, D, "shared.weight"); /* the embedding table */
    char name[320];
    snprintf(name, sizeof name, "%slm_head.weight", m->prefix);
    m->tied = st_weights_find(m->w, name, NULL) == NULL;
    if (m->tied) { /* the same tensor again, as a matrix weight (no copy on the CPU) */
        CAT(m->lm_head, true, "", V, D, "shared.weight");
        m->ws.n_params -= V * D; /* counted once */
        m->ws.n_tensors--;
    } else {
        CAT(m->lm_head, true, "", V, D, "lm_head.weight");
    }
    CAT(m->enc_rel, false, "encoder.block.0.layer.0.SelfAttention.", nb, H,
        "relative_attention_bias.weight");
    CAT(m->dec_rel, false, "decoder.block.0.layer.0.SelfAttention.", nb, H,
        "relative_attention_bias.weight");
    m->enc = calloc((size_t)c->num_layers, sizeof *m->enc);
    m->dec = calloc((size_t)c->num_decoder_layers, sizeof *m->dec);
    if (!m->enc || !m->dec)
        return prism_errorf(err, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        t5_enc_layer *L = &m->enc[l];
        snprintf(p, sizeof p, "encoder.block.%d.layer.0.", l);
        VEC(L->ln1, p, "layer_norm.weight", D);
        MAT(L->qkv, p, I, D, "SelfAttention.q.weight", "SelfAttention.k.weight",
            "SelfAttention.v.weight");
        MAT(L->o, p, D, I, "SelfAttention.o.weight");
        snprintf(p, sizeof p, "encoder.block.%d.layer.1.", l);
        if (load_ffn(m, p, &L->ff, err))
            return -1;
    }
    for (int l = 0; l < c->num_decoder_layers; l++) {
        t5_dec_layer *L = &m->dec[l];
        snprintf(p, sizeof p, "decoder.block.%d.layer.0.", l);
        VEC(L->ln1, p, "layer_norm.weight", D);
        MAT(L->qkv, p, I, D, "SelfAttention.q.weight", "SelfAttention.k.weight",
            "SelfAttention.v.weight");
        MAT(L->o, p, D, I, "SelfAttention.o.weight");
        snprintf(p, sizeof p, "decoder.block.%d.layer.1.", l);
        VEC(L->lnx, p, "layer_norm.weight", D);
        MAT(L->xq, p, I, D, "EncDecAttention.q.weight");
        MAT(L->xkv, p, I, D, "EncDecAttention.k.weight", "EncDecAttention.v.weight");
        MAT(L->xo, p, D, I, "EncDecAttention.o.weight");
        snprintf(p, sizeof p, "decoder.block.%d.layer.2.", l);
        if (load_ffn(m, p, &L->ff, err))
            return -1;
    }
    VEC(m->enc_final, "encoder.", "final_layer_norm.weight", D);
    const float *df;
    VEC(df, "decoder.", "final_layer_norm.weight", D);
    /* The LM-head rescale folded into the final norm's weight: transformers
     * multiplies the normed output by d_model**-0.5 (a float32 multiply by
     * the scalar rounded to float); folding it changes the result by at most
     * one rounding (~1e-7 relative). */
    float *hd = malloc((size_t)D * sizeof *hd);
    if (!hd)
        return prism_errorf(err, "out of memory");
    const float s = c->scale_decoder_outputs ? (float)pow((double)D, -0.5) : 1.0f;
    m->be->ops->download(m->be, hd, df, (size_t)D * sizeof *hd);
    for (int64_t i = 0; i < D; i++)
        hd[i] *= s;
    m->dec_final = m->be->ops->alloc(m->be, (size_t)D * sizeof(float));
    int rc = m->dec_final ? m->be->ops->upload(m->be, m->dec_final, hd, (size_t)D * sizeof *hd) : -1;
    free(hd);
    if (rc)
        return prism_errorf(err, "cannot allocate the decoder's final norm");
    return 0;
}

static int make_buckets(t5_model *m, prism_error *err)
{
    const t5_config *c = &m->cfg;
    const int T = m->Tmax, n = 2 * T - 1;
    int32_t *e = malloc((size_t)n * sizeof *e), *d = malloc((size_t)n * sizeof *d);
    m->enc_buckets = m->be->ops->alloc(m->be, (size_t)n * sizeof(int32_t));
    m->dec_buckets = m->be->ops->alloc(m->be, (size_t)n * sizeof(int32_t));
    int rc = -1;
    if (e && d && m->enc_buckets && m->dec_buckets) {
        for (int i = 0; i < n; i++) {
            int rel = i - (T - 1);
            e[i] = t5_relative_bucket(rel, true, c->relative_attention_num_buckets,
                                      c->relative_attention_max_distance);
            d[i] = t5_relative_bucket(rel, false, c->relative_attention_num_buckets,
                                      c->relative_attention_max_distance);
        }
        rc = m->be->ops->upload(m->be, m->enc_buckets, e, (size_t)n * sizeof *e) ||
             m->be->ops->upload(m->be, m->dec_buckets, d, (size_t)n * sizeof *d);
    }
    free(e);
    free(d);
    return rc ? prism_errorf(err, "cannot allocate the position-bucket tables") : 0;
}

static int alloc_work(t5_model *m, prism_error *err)
{
    prism_backend *be = m->be;
    const t5_config *c = &m->cfg;
    const size_t f = sizeof(float), D = (size_t)c->d_model, F = (size_t)c->d_ff;
    const size_t I = (size_t)c->num_heads * c->d_kv, H = (size_t)c->num_heads;
    const size_t Be = (size_t)m->lim.max_enc_batch, Te = (size_t)m->lim.max_enc_len;
    const size_t R = Be * Te, S = (size_t)m->lim.max_dec_seqs, Td = (size_t)m->lim.max_dec_len;
    void **bufs[] = {(void **)&m->ex, (void **)&m->eh, (void **)&m->eqkv, (void **)&m->eattn,
                     (void **)&m->ef0, (void **)&m->ef1, (void **)&m->ebias, (void **)&m->emask,
                     (void **)&m->ekv, (void **)&m->dx, (void **)&m->dh, (void **)&m->dqkv,
                     (void **)&m->dattn, (void **)&m->df0, (void **)&m->df1, (void **)&m->dbias,
                     (void **)&m->logits, (void **)&m->dids};
    const size_t sizes[] = {R * D * f, R * D * f, R * 3 * I * f, R * I * f,
                            R * F * f, R * F * f, H * Te * Te * f, R * f,
                            R * 2 * I * f, S * D * f, S * D * f, S * 3 * I * f,
                            S * I * f, S * F * f, S * F * f, S * H * Td * f,
                            S * (size_t)c->vocab_size * f, S * sizeof(int32_t)};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = be->ops->alloc(be, sizes[i])))
            return prism_errorf(err, "cannot allocate T5 activations (%zu bytes) on the %s "
                                "backend", sizes[i], be->ops->name);
    if (!(m->host_mask = malloc(R * f)) || !(m->host_ids = malloc(S * sizeof(int32_t))))
        return prism_errorf(err, "out of memory");
    return 0;
}

int t5_load(t5_model **out, const t5_config *cfg, const st_weights *w, const char *prefix,
            prism_backend *be, const t5_limits *lim, prism_error *err)
{
    *out = NULL;
    const prism_backend_ops *o = be->ops;
    if (!o->rmsnorm || !o->mul || !o->rel_bias || !o->topk || !o->copy_rows)
        return prism_errorf(err, "the %s backend lacks an op T5 generation needs (rmsnorm, mul, "
                            "rel_bias, topk, copy_rows)", o->name);
    if (lim->max_enc_batch < 1 || lim->max_enc_len < 1 || lim->max_dec_seqs < 1 ||
        lim->max_dec_len < 1 || lim->max_enc_len > 65536 || lim->max_dec_len > 65536)
        return prism_errorf(err, "T5 limits out of range");
    t5_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->cfg = *cfg;
    m->lim = *lim;
    m->be = be;
    m->w = w;
    ws_init(&m->ws, be, w);
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    m->Tmax = lim->max_enc_len > lim->max_dec_len ? lim->max_enc_len : lim->max_dec_len;
    if (load_weights(m, err) || make_buckets(m, err) || alloc_work(m, err)) {
        t5_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void t5_free(t5_model *m)
{
    if (!m)
        return;
    prism_backend *be = m->be;
    ws_release(&m->ws);
    void *bufs[] = {m->dec_final, m->enc_buckets, m->dec_buckets, m->ex, m->eh, m->eqkv,
                    m->eattn, m->ef0, m->ef1, m->ebias, m->emask, m->ekv, m->dx, m->dh,
                    m->dqkv, m->dattn, m->df0, m->df1, m->dbias, m->logits, m->dids};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    free(m->host_mask);
    free(m->host_ids);
    free(m->enc);
    free(m->dec);
    free(m);
}

const t5_config *t5_get_config(const t5_model *m) { return &m->cfg; }
bool t5_lm_head_tied(const t5_model *m) { return m->tied; }
int64_t t5_param_count(const t5_model *m) { return m->ws.n_params; }
int64_t t5_tensor_count(const t5_model *m) { return m->ws.n_tensors; }
const float *t5_embedding_table(const t5_model *m) { return m->shared; }
float *t5_encoder_input(t5_model *m) { return m->ex; }
float *t5_logits(t5_model *m) { return m->logits; }

/* ---- caches -------------------------------------------------------------------- */

int t5_cache_create(t5_cache **out, t5_model *m, int n_slots, int n_cross,
                   prism_error *err)
{
    return encdec_cache_create(out, m->be, n_slots, n_cross,
                               m->cfg.num_decoder_layers, m->lim.max_dec_len,
                               m->lim.max_enc_len, m->cfg.num_heads * m->cfg.d_kv, err);
}


/* ---- forward ------------------------------------------------------------------- */

/* x += FFN(RMSNorm(x)) over R rows (wo adds its output to x itself); f0,
 * f1 are [R, F] scratch, h [R, D]. */
static int ffn(t5_model *m, const t5_ffn *f, float *x, float *h, float *f0, float *f1, int R,
               prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const t5_config *c = &m->cfg;
    const int D = c->d_model, F = c->d_ff;
    PRISM_CK(o->rmsnorm(be, h, x, f->ln, R, D, c->layer_norm_epsilon), "FFN layer_norm");
    PRISM_CK(o->matmul(be, f0, h, f->wi, NULL, R, F, D, c->dense_act), "FFN wi");
    if (f->wi1) {
        PRISM_CK(o->matmul(be, f1, h, f->wi1, NULL, R, F, D, PRISM_ACT_NONE), "FFN wi_1");
        PRISM_CK(o->mul(be, f0, f0, f1, (size_t)R * F), "FFN gate");
    }
    PRISM_CK(o->matmul_residual(be, x, f0, f->wo, NULL, x, R, D, F), "FFN wo + residual");
    return 0;
}

int t5_encode(t5_model *m, int B, int T, const int *lens, t5_cache *cache,
              const int *cross_slots, float *states, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const t5_config *c = &m->cfg;
    const int D = c->d_model, H = c->num_heads, dk = c->d_kv, I = H * dk, R = B * T;
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
    PRISM_CK(o->rel_bias(be, m->ebias, m->enc_rel, m->enc_buckets, m->Tmax - 1, H, T, T, 0),
       "encoder position bias");
    prism_attn_desc a = {
        .B = B, .H = H, .Tq = T, .Tk = T, .d = dk,
        .q_stride = 3 * I, .k_stride = 3 * I, .v_stride = 3 * I, .o_stride = I,
        .q_bstride = (int64_t)T * 3 * I, .k_bstride = (int64_t)T * 3 * I,
        .v_bstride = (int64_t)T * 3 * I, .o_bstride = (int64_t)T * I,
        .scale = 1.0f, .bias = m->ebias, .key_mask = padded ? m->emask : NULL,
    };
    for (int l = 0; l < c->num_layers; l++) {
        const t5_enc_layer *L = &m->enc[l];
        PRISM_CK(o->rmsnorm(be, m->eh, m->ex, L->ln1, R, D, c->layer_norm_epsilon), "layer_norm");
        PRISM_CK(o->matmul(be, m->eqkv, m->eh, L->qkv, NULL, R, 3 * I, D, PRISM_ACT_NONE), "q/k/v");
        PRISM_CK(o->attention(be, m->eattn, m->eqkv, m->eqkv + I, m->eqkv + 2 * I, &a),
           "encoder self-attention");
        PRISM_CK(o->matmul_residual(be, m->ex, m->eattn, L->o, NULL, m->ex, R, D, I),
                 "o + residual");
        if (ffn(m, &L->ff, m->ex, m->eh, m->ef0, m->ef1, R, err))
            return prism_error_prefix(err, "encoder layer %d", l);
    }
    PRISM_CK(o->rmsnorm(be, m->ex, m->ex, m->enc_final, R, D, c->layer_norm_epsilon),
       "encoder final_layer_norm");
    if (states)
        PRISM_CK(o->download(be, states, m->ex, (size_t)R * D * sizeof(float)), "download");
    if (!cache || !cross_slots)
        return 0;
    for (int b = 0; b < B; b++)
        if (encdec_cross_begin(cache, cross_slots[b], lens[b], err))
            return -1;
    for (int l = 0; l < c->num_decoder_layers; l++) {
        PRISM_CK(o->matmul(be, m->ekv, m->ex, m->dec[l].xkv, NULL, R, 2 * I, D, PRISM_ACT_NONE),
           "cross k/v");
        if (encdec_cross_write(cache, l, m->ekv, B, T, lens, cross_slots, err))
            return -1;
    }
    return 0;
}

int t5_decode_step(t5_model *m, t5_cache *cache, const encdec_seq *seqs, int n,
                   prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const t5_config *c = &m->cfg;
    const int D = c->d_model, H = c->num_heads, dk = c->d_kv, I = H * dk;
    const int Td = m->lim.max_dec_len;
    if (n < 1 || n > m->lim.max_dec_seqs)
        return prism_errorf(err, "%d sequences: outside [1, %d]", n, m->lim.max_dec_seqs);
    int32_t *ids = m->host_ids;
    if (encdec_check_seqs(cache, seqs, n, c->vocab_size, ids, err))
        return -1;
    PRISM_CK(o->upload(be, m->dids, ids, (size_t)n * sizeof *ids), "upload ids");
    PRISM_CK(o->embedding(be, m->dx, m->shared, m->dids, n, D), "embed_tokens");
    /* Block 0's position bias, reused by every layer: query at pos, keys 0..pos. */
    for (int s = 0; s < n; s++)
        PRISM_CK(o->rel_bias(be, m->dbias + (size_t)s * H * Td, m->dec_rel, m->dec_buckets,
                       m->Tmax - 1, H, 1, seqs[s].pos + 1, seqs[s].pos),
           "decoder position bias");
    for (int l = 0; l < c->num_decoder_layers; l++) {
        const t5_dec_layer *L = &m->dec[l];
        PRISM_CK(o->rmsnorm(be, m->dh, m->dx, L->ln1, n, D, c->layer_norm_epsilon), "layer_norm");
        PRISM_CK(o->matmul(be, m->dqkv, m->dh, L->qkv, NULL, n, 3 * I, D, PRISM_ACT_NONE), "q/k/v");
        for (int s = 0; s < n; s++) {
            float *kv = encdec_self_kv(cache, seqs[s].slot, l);
            PRISM_CK(o->copy_rows(be, kv + (size_t)seqs[s].pos * 2 * I, 2 * I,
                            m->dqkv + (size_t)s * 3 * I + I, 3 * I, 1, 2 * I), "cache append");
            prism_attn_desc a = {
                .B = 1, .H = H, .Tq = 1, .Tk = seqs[s].pos + 1, .d = dk,
                .q_stride = 3 * I, .k_stride = 2 * I, .v_stride = 2 * I, .o_stride = I,
                .scale = 1.0f, .bias = m->dbias + (size_t)s * H * Td,
            };
            PRISM_CK(o->attention(be, m->dattn + (size_t)s * I, m->dqkv + (size_t)s * 3 * I, kv,
                            kv + I, &a), "decoder self-attention");
        }
        PRISM_CK(o->matmul_residual(be, m->dx, m->dattn, L->o, NULL, m->dx, n, D, I),
                 "o + residual");

        PRISM_CK(o->rmsnorm(be, m->dh, m->dx, L->lnx, n, D, c->layer_norm_epsilon), "layer_norm");
        PRISM_CK(o->matmul(be, m->dqkv, m->dh, L->xq, NULL, n, I, D, PRISM_ACT_NONE), "cross q");
        if (encdec_cross_attend(cache, l, seqs, n, m->dattn, m->dqkv, H, 1.0f, err))
            return -1;
        PRISM_CK(o->matmul_residual(be, m->dx, m->dattn, L->xo, NULL, m->dx, n, D, I),
                 "cross o + residual");
        if (ffn(m, &L->ff, m->dx, m->dh, m->df0, m->df1, n, err))
            return prism_error_prefix(err, "decoder layer %d", l);
    }
    PRISM_CK(o->rmsnorm(be, m->dh, m->dx, m->dec_final, n, D, c->layer_norm_epsilon),
       "decoder final_layer_norm");
    PRISM_CK(o->matmul(be, m->logits, m->dh, m->lm_head, NULL, n, c->vocab_size, D, PRISM_ACT_NONE),
       "lm_head");
    return 0;
}
