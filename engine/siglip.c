/* siglip.c - SigLIP and SigLIP 2 vision and text towers, written once
 * against backend.h.
 *
 * Mirrors transformers' modeling_siglip.py (SiglipModel):
 *   vision: conv patch embedding (as patchify + matmul) + position
 *           embeddings → pre-LN encoder → post_layernorm → attention-pooling
 *           head (probe query, packed in_proj, out_proj, LN + MLP residual).
 *   text:   token + position embeddings → the same encoder →
 *           final_layer_norm → last position → head (Linear).
 *   scores: exp(logit_scale)·⟨î, t̂⟩ + logit_bias.
 * and modeling_siglip2.py (Siglip2Model, NaFlex), which differs only in the
 * vision input: patchified pixels [B, L, C·P·P] through a Linear patch
 * embedding, the learned position grid resized to each image's h × w patches
 * (on the host, siglip_naflex.c) and padded to L, and pixel_attention_mask
 * as an additive key mask in every encoder attention and in the pooling
 * head, so padded rows influence nothing. The text tower may take the
 * tokenizer's attention mask the same way.
 */
#include "siglip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "siglip_naflex.h"
#include "weight_set.h"

typedef struct siglip_layer {
    const float *ln1_w, *ln1_b;        /* [E] */
    const void *qkv_w;                 /* q_proj;k_proj;v_proj weights fused: [3E, E] */
    const float *qkv_b;                /* [3E] */
    const void *o_w;                   /* out_proj [E, E] */
    const float *o_b;                  /* [E] */
    const float *ln2_w, *ln2_b;        /* [E] */
    const void *fc1_w, *fc2_w;         /* [I, E], [E, I] matrix weights */
    const float *fc1_b, *fc2_b;        /* [I], [E] */
} siglip_layer;

/* Activation buffers for one chunk of up to max_batch inputs, sized for the
 * larger of the two towers. */
typedef struct siglip_work {
    float *in;      /* pixels [B,C,S,S] or patches [B·N, C·P·P] */
    float *patches;
    int32_t *ids;   /* [B, T] */
    float *x, *h, *attn; /* [B·T, E] */
    float *qkv;          /* [B·T, 3E]: q | k | v per row */
    float *mlp;     /* [B·T, I] */
    float *pooled;  /* [B, E] and head temporaries */
    float *probe_q; /* [E] */
    float *key_mask; /* [B, Tmax] additive key mask (0 or -inf) */
    /* host staging, NaFlex and masked texts */
    float *h_in;       /* NaFlex patches [B·L, C·P·P], padded rows zeroed */
    float *h_pos;      /* NaFlex resized position embeddings [B·L, E] */
    float *h_pos_img;  /* one image's resized grid [L, E] */
    double *h_resize;  /* resize scratch [G, E] */
    float *h_mask;     /* [B, Tmax] */
    float *h_out;      /* NaFlex embeddings of one chunk [B, E], before reordering */
} siglip_work;

struct siglip_model {
    siglip_config cfg;
    siglip_info info;
    prism_backend *be;
    st_weights weights;     /* the checkpoint, when this model opened it */
    const st_weights *wts;  /* &weights, or a caller's (siglip_vision_load) */
    bool vision_only;       /* vision tower without the head, no text tower */
    int max_batch;
    int max_patches;        /* NaFlex: patch rows one image may have */
    int max_rows;           /* NaFlex: patch rows of one chunk (all its images, padded) */
    bool naflex_pad;        /* NaFlex: chunks in call order, padded to their max (benchmarks) */

    /* vision tower (vision_model.*) */
    const void *patch_w;   /* embeddings.patch_embedding.weight [E, C·P·P] */
    const float *patch_b;  /* [E] */
    const float *vpos;     /* embeddings.position_embedding.weight [N, E] */
    float *pos_grid;       /* NaFlex: the same table on the host, float32 [G, G, E] */
    int grid;              /* NaFlex: G = √num_patches */
    siglip_layer *vlayers;
    const float *vpost_w, *vpost_b; /* post_layernorm [E] */
    const float *probe;             /* head.probe [1, 1, E] */
    const void *hin_q, *hin_kv;        /* head.attention.in_proj_weight [3E, E]: rows [0,E), [E,3E) */
    const float *hin_b;                /* head.attention.in_proj_bias [3E] */
    const void *hout_w;                /* head.attention.out_proj.weight [E, E] */
    const float *hout_b;
    const float *hln_w, *hln_b;     /* head.layernorm [E] */
    const void *hfc1_w, *hfc2_w;       /* head.mlp */
    const float *hfc1_b, *hfc2_b;

    /* text tower (text_model.*) */
    const float *tok_emb; /* embeddings.token_embedding.weight [V, E] */
    const float *tpos;    /* embeddings.position_embedding.weight [Tmax, E] */
    siglip_layer *tlayers;
    const float *tfinal_w, *tfinal_b; /* final_layer_norm [E] */
    const void *thead_w;              /* head.weight [Pj, E] */
    const float *thead_b;             /* head.bias [Pj] */

    float logit_scale, logit_bias;

    weight_set ws; /* what importing the tensors made, and their counts */
    siglip_work w;
};

/* ---- loading --------------------------------------------------------------- */

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* Loads `prefix``suffix` with the given shape into dst, or fails the load.
 * LOAD: a float32 vector/table; LOADM: a matrix weight (matmul's w). */
#define LOAD_(dst, matrix, first, count, prefix, suffix, ...)                            \
    do {                                                                                \
        char name_[256];                                                                \
        snprintf(name_, sizeof name_, "%s%s", prefix, suffix);                          \
        if (!((dst) = ws_load(&m->ws, name_, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__),       \
                              matrix, first, count, err)))                              \
            return -1;                                                                  \
    } while (0)
#define LOAD(dst, prefix, suffix, ...) LOAD_(dst, false, 0, -1, prefix, suffix, __VA_ARGS__)
#define LOADM(dst, prefix, suffix, ...) LOAD_(dst, true, 0, -1, prefix, suffix, __VA_ARGS__)

/* q_proj;k_proj;v_proj of a layer as one [3E, E] weight (and [3E] bias):
 * one matmul instead of three, faster at small batch. */
static const void *load_qkv(siglip_model *m, const char *prefix, const char *what, int ndim,
                            const int64_t *shape, bool matrix, prism_error *err)
{
    char q[256], k[256], v[256];
    snprintf(q, sizeof q, "%sself_attn.q_proj.%s", prefix, what);
    snprintf(k, sizeof k, "%sself_attn.k_proj.%s", prefix, what);
    snprintf(v, sizeof v, "%sself_attn.v_proj.%s", prefix, what);
    const char *const names[3] = {q, k, v};
    return ws_load_cat(&m->ws, names, 3, ndim, shape, matrix, err);
}

static int load_layers(siglip_model *m, const char *tower, const siglip_tower_config *tc,
                       siglip_layer **out, prism_error *err)
{
    const int64_t E = tc->hidden_size, I = tc->intermediate_size;
    siglip_layer *L = calloc((size_t)tc->num_hidden_layers + 1, sizeof *L);
    if (!L)
        return prism_errorf(err, "out of memory");
    *out = L;
    for (int i = 0; i < tc->num_hidden_layers; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s.encoder.layers.%d.", tower, i);
        LOAD(L[i].ln1_w, p, "layer_norm1.weight", E);
        LOAD(L[i].ln1_b, p, "layer_norm1.bias", E);
        if (!(L[i].qkv_w = load_qkv(m, p, "weight", 2, SHAPE(E, E), true, err)) ||
            !(L[i].qkv_b = load_qkv(m, p, "bias", 1, SHAPE(E), false, err)))
            return -1;
        LOADM(L[i].o_w, p, "self_attn.out_proj.weight", E, E);
        LOAD(L[i].o_b, p, "self_attn.out_proj.bias", E);
        LOAD(L[i].ln2_w, p, "layer_norm2.weight", E);
        LOAD(L[i].ln2_b, p, "layer_norm2.bias", E);
        LOADM(L[i].fc1_w, p, "mlp.fc1.weight", I, E);
        LOAD(L[i].fc1_b, p, "mlp.fc1.bias", I);
        LOADM(L[i].fc2_w, p, "mlp.fc2.weight", E, I);
        LOAD(L[i].fc2_b, p, "mlp.fc2.bias", E);
    }
    return 0;
}

static int load_scalar(siglip_model *m, const char *name, float *out, prism_error *err)
{
    const st_tensor *t = st_weights_require(m->wts, name, 1, SHAPE(1), err);
    if (!t)
        return -1;
    st_to_f32(out, t->data, t->dtype, 1);
    m->ws.n_params += 1;
    m->ws.n_tensors++;
    return 0;
}

/* The load statistics prism info reports, from the weight set. */
static void fill_info(siglip_model *m)
{
    m->info.n_params = m->ws.n_params;
    m->info.n_tensors = m->ws.n_tensors;
    memcpy(m->info.bytes_by_dtype, m->ws.bytes_by_dtype, sizeof m->info.bytes_by_dtype);
    m->info.bytes_imported = m->ws.bytes_imported;
    m->info.n_files = m->wts->n_files;
}

/* NaFlex's position table [G·G, E], kept as float32 on the host: it is
 * resized per image there (siglip_naflex.c), never read by the backend. */
static int load_pos_grid(siglip_model *m, prism_error *err)
{
    const siglip_vision_config *vc = &m->cfg.vision;
    const int64_t E = vc->t.hidden_size, N = vc->num_patches;
    const st_tensor *t = st_weights_require(m->wts, "vision_model.embeddings.position_embedding.weight",
                                            2, SHAPE(N, E), err);
    if (!t)
        return -1;
    if (!(m->pos_grid = malloc((size_t)N * E * sizeof(float))))
        return prism_errorf(err, "out of memory");
    st_to_f32(m->pos_grid, t->data, t->dtype, (size_t)N * E);
    m->grid = 0;
    while ((m->grid + 1) * (m->grid + 1) <= N)
        m->grid++;
    m->ws.n_params += N * E;
    m->ws.n_tensors++;
    if (t->dtype <= PRISM_DT_BF16)
        m->ws.bytes_by_dtype[t->dtype] += (int64_t)t->nbytes;
    return 0;
}

/* The vision tower up to post_layernorm (what a PaLI-style model uses). */
static int load_vision_tower(siglip_model *m, prism_error *err)
{
    const siglip_vision_config *vc = &m->cfg.vision;
    const int64_t E = vc->t.hidden_size, C = vc->num_channels, P = vc->patch_size,
                  N = vc->num_patches;
    const char *v = "vision_model.";
    if (vc->naflex) {
        /* a Linear over patches already flattened (py, px, c) by the processor */
        LOADM(m->patch_w, v, "embeddings.patch_embedding.weight", E, P * P * C);
        LOAD(m->patch_b, v, "embeddings.patch_embedding.bias", E);
        if (load_pos_grid(m, err))
            return -1;
    } else {
        LOADM(m->patch_w, v, "embeddings.patch_embedding.weight", E, C, P, P);
        LOAD(m->patch_b, v, "embeddings.patch_embedding.bias", E);
        LOAD(m->vpos, v, "embeddings.position_embedding.weight", N, E);
    }
    if (load_layers(m, "vision_model", &vc->t, &m->vlayers, err))
        return -1;
    LOAD(m->vpost_w, v, "post_layernorm.weight", E);
    LOAD(m->vpost_b, v, "post_layernorm.bias", E);
    return 0;
}

static int load_tensors(siglip_model *m, prism_error *err)
{
    const siglip_vision_config *vc = &m->cfg.vision;
    const siglip_text_config *tc = &m->cfg.text;
    const int64_t E = vc->t.hidden_size, I = vc->t.intermediate_size;
    const char *v = "vision_model.";
    if (!vc->vision_use_head)
        return prism_errorf(err, "%s: vision_config.vision_use_head is false: a SigLIP model "
                            "needs the attention-pooling head for image embeddings",
                            m->wts->dir);
    if (load_vision_tower(m, err))
        return -1;
    LOAD(m->probe, v, "head.probe", 1, 1, E);
    LOAD_(m->hin_q, true, 0, E, v, "head.attention.in_proj_weight", 3 * E, E);
    LOAD_(m->hin_kv, true, E, 2 * E, v, "head.attention.in_proj_weight", 3 * E, E);
    LOAD(m->hin_b, v, "head.attention.in_proj_bias", 3 * E);
    LOADM(m->hout_w, v, "head.attention.out_proj.weight", E, E);
    LOAD(m->hout_b, v, "head.attention.out_proj.bias", E);
    LOAD(m->hln_w, v, "head.layernorm.weight", E);
    LOAD(m->hln_b, v, "head.layernorm.bias", E);
    LOADM(m->hfc1_w, v, "head.mlp.fc1.weight", I, E);
    LOAD(m->hfc1_b, v, "head.mlp.fc1.bias", I);
    LOADM(m->hfc2_w, v, "head.mlp.fc2.weight", E, I);
    LOAD(m->hfc2_b, v, "head.mlp.fc2.bias", E);

    const int64_t Et = tc->t.hidden_size, Pj = tc->projection_size;
    const char *t = "text_model.";
    LOAD(m->tok_emb, t, "embeddings.token_embedding.weight", tc->vocab_size, Et);
    LOAD(m->tpos, t, "embeddings.position_embedding.weight", tc->max_position_embeddings, Et);
    if (load_layers(m, "text_model", &tc->t, &m->tlayers, err))
        return -1;
    LOAD(m->tfinal_w, t, "final_layer_norm.weight", Et);
    LOAD(m->tfinal_b, t, "final_layer_norm.bias", Et);
    LOADM(m->thead_w, t, "head.weight", Pj, Et);
    LOAD(m->thead_b, t, "head.bias", Pj);
    if (load_scalar(m, "logit_scale", &m->logit_scale, err) ||
        load_scalar(m, "logit_bias", &m->logit_bias, err))
        return -1;
    return 0;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int alloc_work(siglip_model *m, prism_error *err)
{
    const siglip_vision_config *vc = &m->cfg.vision;
    const siglip_text_config *tc = &m->cfg.text;
    const size_t B = (size_t)m->max_batch;
    /* image rows of a chunk: the fixed grid per image, or NaFlex's budget */
    const size_t N = vc->naflex ? (size_t)m->max_patches : (size_t)vc->num_patches;
    const size_t Rv = vc->naflex ? (size_t)m->max_rows : B * N;
    const size_t Tt = m->vision_only ? 0 : (size_t)tc->max_position_embeddings;
    const size_t rows = max_sz(Rv, B * Tt);
    const size_t E = m->vision_only ? (size_t)vc->t.hidden_size
                                    : max_sz((size_t)vc->t.hidden_size, (size_t)tc->t.hidden_size);
    const size_t I = m->vision_only ? (size_t)vc->t.intermediate_size
                                    : max_sz((size_t)vc->t.intermediate_size,
                                             (size_t)tc->t.intermediate_size);
    const size_t S = (size_t)vc->image_size, C = (size_t)vc->num_channels, P = (size_t)vc->patch_size;
    prism_backend *be = m->be;
    siglip_work *w = &m->w;
    const size_t f = sizeof(float);
    const size_t CPP = C * P * P;
    /* fixed size: pixels in `in`, patchified into `patches`; NaFlex: patches in `in` */
    w->in = be->ops->alloc(be, vc->naflex ? Rv * CPP * f : B * C * S * S * f);
    w->patches = vc->naflex ? NULL : be->ops->alloc(be, B * N * CPP * f);
    w->key_mask = be->ops->alloc(be, rows * f);
    w->h_mask = malloc(rows * f);
    if (vc->naflex) {
        const size_t Ev = (size_t)vc->t.hidden_size;
        w->h_in = malloc(Rv * CPP * f);
        w->h_pos = malloc(Rv * Ev * f);
        w->h_pos_img = malloc(N * Ev * f);
        w->h_resize = malloc((size_t)m->grid * Ev * sizeof(double));
        w->h_out = malloc(B * Ev * f);
        if (!w->h_in || !w->h_pos || !w->h_pos_img || !w->h_resize || !w->h_out)
            return prism_errorf(err, "out of memory");
    }
    w->ids = be->ops->alloc(be, B * Tt * sizeof(int32_t));
    w->x = be->ops->alloc(be, rows * E * f);
    w->h = be->ops->alloc(be, rows * E * f);
    w->qkv = be->ops->alloc(be, rows * 3 * E * f);
    w->attn = be->ops->alloc(be, rows * E * f);
    w->mlp = be->ops->alloc(be, max_sz(rows * I, B * I) * f);
    w->pooled = be->ops->alloc(be, 4 * B * max_sz(E, (size_t)tc->projection_size) * f);
    w->probe_q = be->ops->alloc(be, E * f);
    if (!w->h_mask)
        return prism_errorf(err, "out of memory");
    if (!w->in || (!vc->naflex && !w->patches) || !w->ids || !w->x || !w->h || !w->qkv ||
        !w->attn || !w->mlp || !w->pooled || !w->probe_q || !w->key_mask)
        return prism_errorf(err, "cannot allocate activations for batch %d on the %s backend",
                            m->max_batch, be->ops->name);
    return 0;
}

int siglip_load(siglip_model **out, const char *dir, prism_backend *be, int max_batch,
                prism_error *err)
{
    return siglip_load_ex(out, dir, be, max_batch, 0, err);
}

int siglip_load_ex(siglip_model **out, const char *dir, prism_backend *be, int max_batch,
                   int max_patches, prism_error *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > 4096)
        return prism_errorf(err, "max batch %d is outside [1, 4096]", max_batch);
    if (max_patches < 0 || max_patches > SIGLIP_MAX_PATCHES)
        return prism_errorf(err, "max patches %d is outside [1, %d]", max_patches,
                            SIGLIP_MAX_PATCHES);
    siglip_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->be = be;
    m->max_batch = max_batch;
    m->wts = &m->weights;
    ws_init(&m->ws, be, m->wts);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (siglip_config_load(&m->cfg, path, err)) {
        siglip_free(m);
        return -1;
    }
    m->max_patches = max_patches > 0 ? max_patches : m->cfg.vision.num_patches;
    /* max_batch images of the default size, or one of the largest: a larger
     * max_patches runs fewer images per chunk instead of growing every
     * activation by max_patches / num_patches */
    m->max_rows = max_batch * m->cfg.vision.num_patches;
    if (m->max_rows < m->max_patches)
        m->max_rows = m->max_patches;
    if (st_weights_open(&m->weights, dir, err) || load_tensors(m, err) || alloc_work(m, err)) {
        siglip_free(m);
        return -1;
    }
    fill_info(m);
    int64_t total = 0;
    for (int i = 0; i < m->weights.n_files; i++)
        total += m->weights.files[i].n_tensors;
    m->info.n_unused = total - m->info.n_tensors;
    *out = m;
    return 0;
}

int siglip_vision_load(siglip_model **out, const siglip_vision_config *vc, const st_weights *w,
                       prism_backend *be, int max_batch, prism_error *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > 4096)
        return prism_errorf(err, "max batch %d is outside [1, 4096]", max_batch);
    siglip_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    siglip_config_defaults(&m->cfg);
    m->cfg.vision = *vc;
    if (vc->naflex) {
        free(m);
        return prism_errorf(err, "a NaFlex vision tower cannot be loaded alone");
    }
    m->be = be;
    m->max_batch = max_batch;
    m->wts = w;
    ws_init(&m->ws, be, w);
    m->vision_only = true;
    if (load_vision_tower(m, err) || alloc_work(m, err)) {
        siglip_free(m);
        return -1;
    }
    fill_info(m);
    *out = m;
    return 0;
}

void siglip_free(siglip_model *m)
{
    if (!m)
        return;
    prism_backend *be = m->be;
    ws_release(&m->ws);
    siglip_work *w = &m->w;
    void *bufs[] = {w->in, w->patches, w->ids, w->x, w->h, w->qkv, w->attn,
                    w->mlp, w->pooled, w->probe_q, w->key_mask};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    free(w->h_in);
    free(w->h_pos);
    free(w->h_pos_img);
    free(w->h_resize);
    free(w->h_mask);
    free(w->h_out);
    free(m->pos_grid);
    free(m->vlayers);
    free(m->tlayers);
    if (m->wts == &m->weights)
        st_weights_close(&m->weights);
    free(m);
}

const siglip_config *siglip_get_config(const siglip_model *m) { return &m->cfg; }
const siglip_info *siglip_get_info(const siglip_model *m) { return &m->info; }
int siglip_embed_dim(const siglip_model *m) { return m->cfg.vision.t.hidden_size; }
bool siglip_is_naflex(const siglip_model *m) { return m->cfg.vision.naflex; }
int siglip_patch_size(const siglip_model *m) { return m->cfg.vision.patch_size; }
int siglip_patch_dim(const siglip_model *m)
{
    const siglip_vision_config *vc = &m->cfg.vision;
    return vc->num_channels * vc->patch_size * vc->patch_size;
}
int siglip_max_patches(const siglip_model *m) { return m->cfg.vision.naflex ? m->max_patches : 0; }
void siglip_naflex_set_padding(siglip_model *m, bool pad_to_max) { m->naflex_pad = pad_to_max; }
float siglip_logit_scale(const siglip_model *m) { return m->logit_scale; }
float siglip_logit_bias(const siglip_model *m) { return m->logit_bias; }

/* ---- forward ---------------------------------------------------------------- */

/* One pre-LN encoder layer over x [B·T, E], in place: the out_proj and
 * fc2 GEMMs add their outputs to x themselves (matmul_residual), as
 * `hidden_states = residual + hidden_states` does after each.
 * key_mask: NULL, or additive [B, T] (padding). */
static int encoder_layer(siglip_model *m, const siglip_layer *L, const siglip_tower_config *tc,
                         int B, int T, const float *key_mask, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    siglip_work *w = &m->w;
    const int E = tc->hidden_size, I = tc->intermediate_size, R = B * T;
    const int H = tc->num_attention_heads, d = E / H;
    const float eps = tc->layer_norm_eps;
    PRISM_CK(o->layernorm(be, w->h, w->x, L->ln1_w, L->ln1_b, R, E, eps), "layer_norm1");
    PRISM_CK(o->matmul(be, w->qkv, w->h, L->qkv_w, L->qkv_b, R, 3 * E, E, PRISM_ACT_NONE),
       "q/k/v_proj");
    prism_attn_desc a = {
        .B = B, .H = H, .Tq = T, .Tk = T, .d = d,
        .q_stride = 3 * E, .k_stride = 3 * E, .v_stride = 3 * E, .o_stride = E,
        .q_bstride = (int64_t)T * 3 * E, .k_bstride = (int64_t)T * 3 * E,
        .v_bstride = (int64_t)T * 3 * E, .o_bstride = (int64_t)T * E,
        .scale = 1.0f / sqrtf((float)d), .key_mask = key_mask,
    };
    PRISM_CK(o->attention(be, w->attn, w->qkv, w->qkv + E, w->qkv + 2 * E, &a), "self-attention");
    PRISM_CK(o->matmul_residual(be, w->x, w->attn, L->o_w, L->o_b, w->x, R, E, E),
             "out_proj + residual");
    PRISM_CK(o->layernorm(be, w->h, w->x, L->ln2_w, L->ln2_b, R, E, eps), "layer_norm2");
    PRISM_CK(o->matmul(be, w->mlp, w->h, L->fc1_w, L->fc1_b, R, I, E, tc->hidden_act), "mlp.fc1");
    PRISM_CK(o->matmul_residual(be, w->x, w->mlp, L->fc2_w, L->fc2_b, w->x, R, E, I),
             "mlp.fc2 + residual");
    return 0;
}

/* Vision tower for B ≤ max_batch images: the last hidden state (after
 * post_layernorm) in w->x [B·N, E]. */
static int vision_tower(siglip_model *m, const float *pixels, int B, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    siglip_work *w = &m->w;
    const siglip_vision_config *vc = &m->cfg.vision;
    const int E = vc->t.hidden_size, C = vc->num_channels;
    const int S = vc->image_size, P = vc->patch_size, G = S / P, N = G * G;

    PRISM_CK(o->upload(be, w->in, pixels, (size_t)B * C * S * S * sizeof(float)), "upload");
    PRISM_CK(o->patchify(be, w->patches, w->in, B, C, S, P), "patchify");
    /* patch_embedding: a conv with kernel = stride = P is this matmul. */
    PRISM_CK(o->matmul(be, w->x, w->patches, m->patch_w, m->patch_b, B * N, E, C * P * P,
                 PRISM_ACT_NONE), "patch_embedding");
    PRISM_CK(o->add_rows(be, w->x, m->vpos, B * N, N, E), "position_embedding");
    for (int l = 0; l < vc->t.num_hidden_layers; l++)
        if (encoder_layer(m, &m->vlayers[l], &vc->t, B, N, NULL, err))
            return prism_error_prefix(err, "vision layer %d", l);
    PRISM_CK(o->layernorm(be, w->x, w->x, m->vpost_w, m->vpost_b, B * N, E, vc->t.layer_norm_eps),
             "post_layernorm");
    return 0;
}

int siglip_vision_hidden(siglip_model *m, const float *pixels, int B, const float **out,
                         prism_error *err)
{
    if (B < 1 || B > m->max_batch)
        return prism_errorf(err, "%d images: outside [1, max batch %d]", B, m->max_batch);
    if (vision_tower(m, pixels, B, err))
        return -1;
    *out = m->w.x;
    return 0;
}

static int pooling_head(siglip_model *m, int B, int N, const float *key_mask, prism_error *err);

/* Vision tower + pooling head for B ≤ max_batch images; result in w->pooled. */
static int vision_chunk(siglip_model *m, const float *pixels, int B, prism_error *err)
{
    const int N = m->cfg.vision.num_patches;

    if (vision_tower(m, pixels, B, err))
        return -1;
    return pooling_head(m, B, N, NULL, err);
}

/* The attention-pooling head over w->x [B·N, E] (after post_layernorm);
 * key_mask: NULL or additive [B, N]. Result in w->pooled [B, E]. */
static int pooling_head(siglip_model *m, int B, int N, const float *key_mask, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    siglip_work *w = &m->w;
    const siglip_vision_config *vc = &m->cfg.vision;
    const int E = vc->t.hidden_size, I = vc->t.intermediate_size;
    const int H = vc->t.num_attention_heads;
    const float eps = vc->t.layer_norm_eps;

    /* head: MultiheadAttention(query = probe, key = value = x), packed in_proj;
     * key_padding_mask as the additive key mask. */
    PRISM_CK(o->matmul(be, w->probe_q, m->probe, m->hin_q, m->hin_b, 1, E, E, PRISM_ACT_NONE),
       "head q");
    float *kv = w->qkv; /* [B·N, 2E]: k | v per row */
    PRISM_CK(o->matmul(be, kv, w->x, m->hin_kv, m->hin_b + E, B * N, 2 * E, E, PRISM_ACT_NONE),
       "head k/v");
    prism_attn_desc a = {
        .B = B, .H = H, .Tq = 1, .Tk = N, .d = E / H,
        .q_stride = E, .k_stride = 2 * E, .v_stride = 2 * E, .o_stride = E,
        .q_bstride = 0, /* one probe for every image */
        .k_bstride = (int64_t)N * 2 * E, .v_bstride = (int64_t)N * 2 * E, .o_bstride = E,
        .scale = 1.0f / sqrtf((float)(E / H)), .key_mask = key_mask,
    };
    PRISM_CK(o->attention(be, w->attn, w->probe_q, kv, kv + E, &a), "head attention");
    float *pa = w->pooled, *ph = w->pooled + (size_t)m->max_batch * E;
    PRISM_CK(o->matmul(be, pa, w->attn, m->hout_w, m->hout_b, B, E, E, PRISM_ACT_NONE), "head out_proj");
    PRISM_CK(o->layernorm(be, ph, pa, m->hln_w, m->hln_b, B, E, eps), "head layernorm");
    PRISM_CK(o->matmul(be, w->mlp, ph, m->hfc1_w, m->hfc1_b, B, I, E, vc->t.hidden_act), "head fc1");
    PRISM_CK(o->matmul_residual(be, pa, w->mlp, m->hfc2_w, m->hfc2_b, pa, B, E, I),
             "head fc2 + residual");
    return 0;
}

/* Text tower for B ≤ max_batch sequences of T ids; result in w->pooled.
 * mask: NULL (every position attends to all 64, as SiglipModel without a
 * mask), or the tokenizer's attention_mask [B, T] (0 = padding). */
static int text_chunk(siglip_model *m, const int32_t *ids, const int32_t *mask, int B, int T,
                      prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    siglip_work *w = &m->w;
    const siglip_text_config *tc = &m->cfg.text;
    const int E = tc->t.hidden_size, Pj = tc->projection_size;
    const float *key_mask = NULL;

    PRISM_CK(o->upload(be, w->ids, ids, (size_t)B * T * sizeof(int32_t)), "upload");
    if (mask) {
        for (size_t i = 0; i < (size_t)B * T; i++)
            w->h_mask[i] = mask[i] ? 0.0f : -INFINITY;
        PRISM_CK(o->upload(be, w->key_mask, w->h_mask, (size_t)B * T * sizeof(float)),
                 "upload attention_mask");
        key_mask = w->key_mask;
    }
    PRISM_CK(o->embedding(be, w->x, m->tok_emb, w->ids, B * T, E), "token_embedding");
    PRISM_CK(o->add_rows(be, w->x, m->tpos, B * T, T, E), "position_embedding");
    for (int l = 0; l < tc->t.num_hidden_layers; l++)
        if (encoder_layer(m, &m->tlayers[l], &tc->t, B, T, key_mask, err))
            return prism_error_prefix(err, "text layer %d", l);
    PRISM_CK(o->layernorm(be, w->x, w->x, m->tfinal_w, m->tfinal_b, B * T, E,
                          tc->t.layer_norm_eps),
             "final_layer_norm");
    /* Pool the last position ("sticky" EOS: the tokenizer pads with </s>). */
    float *last = w->pooled + (size_t)m->max_batch * Pj;
    PRISM_CK(o->gather_rows(be, last, w->x, B, T, T - 1, E), "pooling");
    PRISM_CK(o->matmul(be, w->pooled, last, m->thead_w, m->thead_b, B, Pj, E, PRISM_ACT_NONE), "head");
    return 0;
}

/* ---- NaFlex (SigLIP 2) ------------------------------------------------------ */

/* Rows [0, valid) of image b hold every patch its mask marks. */
static int naflex_valid_rows(const int32_t *mask, int L)
{
    int valid = 0;
    for (int t = 0; t < L; t++)
        if (mask[t])
            valid = t + 1;
    return valid;
}

/* Host staging of one chunk of B images idx[0..B), each given as L rows
 * (the caller's padding) of which the first T are kept (every row past T is
 * masked in every image of the chunk): patches with masked rows zeroed, so that
 * nothing in them (not even a NaN) reaches the padded rows' keys; the
 * resized position embeddings, laid out as transformers lays them out
 * (row t < h·w is position t of the h × w grid, every later row takes
 * position 0); the additive key mask. */
static void naflex_stage(siglip_model *m, const float *patches, const int32_t *mask,
                         const int32_t *shapes, const int *idx, int B, int L, int T)
{
    siglip_work *w = &m->w;
    const siglip_vision_config *vc = &m->cfg.vision;
    const size_t E = (size_t)vc->t.hidden_size, CPP = (size_t)siglip_patch_dim(m);
    for (int b = 0; b < B; b++) {
        const int i = idx[b], h = shapes[2 * i], wd = shapes[2 * i + 1], hw = h * wd;
        siglip_resize_pos_grid(m->pos_grid, m->grid, m->grid, (int)E, h, wd, w->h_pos_img,
                               w->h_resize);
        for (int t = 0; t < T; t++) {
            const size_t row = (size_t)b * T + t;
            const bool on = mask[(size_t)i * L + t] != 0;
            if (on)
                memcpy(w->h_in + row * CPP, patches + ((size_t)i * L + t) * CPP, CPP * sizeof(float));
            else
                memset(w->h_in + row * CPP, 0, CPP * sizeof(float));
            memcpy(w->h_pos + row * E, w->h_pos_img + (size_t)(t < hw ? t : 0) * E, E * sizeof(float));
            w->h_mask[row] = on ? 0.0f : -INFINITY;
        }
    }
}

/* NaFlex vision tower + pooling head for B ≤ max_batch images of T ≤
 * max_patches rows (staged by naflex_stage); result in w->pooled. */
static int naflex_chunk(siglip_model *m, int B, int T, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    siglip_work *w = &m->w;
    const siglip_vision_config *vc = &m->cfg.vision;
    const int E = vc->t.hidden_size, K = siglip_patch_dim(m), R = B * T;

    PRISM_CK(o->upload(be, w->in, w->h_in, (size_t)R * K * sizeof(float)), "upload");
    PRISM_CK(o->upload(be, w->attn, w->h_pos, (size_t)R * E * sizeof(float)),
             "upload position embeddings");
    PRISM_CK(o->upload(be, w->key_mask, w->h_mask, (size_t)R * sizeof(float)),
             "upload pixel_attention_mask");
    /* patch_embedding (a Linear over the patchified pixels) + position_embedding */
    PRISM_CK(o->matmul_residual(be, w->x, w->in, m->patch_w, m->patch_b, w->attn, R, E, K),
             "patch_embedding + position_embedding");
    for (int l = 0; l < vc->t.num_hidden_layers; l++)
        if (encoder_layer(m, &m->vlayers[l], &vc->t, B, T, w->key_mask, err))
            return prism_error_prefix(err, "vision layer %d", l);
    PRISM_CK(o->layernorm(be, w->x, w->x, m->vpost_w, m->vpost_b, R, E, vc->t.layer_norm_eps),
             "post_layernorm");
    return pooling_head(m, B, T, w->key_mask, err);
}

/* The checks transformers makes (or whose absence would give NaN): shapes
 * positive and within L, at least one unmasked row per image. */
static int naflex_check(const siglip_model *m, const int32_t *mask, const int32_t *shapes, int n,
                        int L, prism_error *err)
{
    if (!m->cfg.vision.naflex)
        return prism_errorf(err, "not a NaFlex (siglip2) model: use siglip_embed_images");
    if (m->vision_only)
        return prism_errorf(err, "a vision tower loaded alone has no pooling head");
    if (L < 1 || L > m->max_patches)
        return prism_errorf(err, "%d patches per image: outside [1, %d] (the model's max "
                            "patches)", L, m->max_patches);
    for (int b = 0; b < n; b++) {
        const int64_t h = shapes[2 * b], w = shapes[2 * b + 1];
        if (h < 1 || w < 1 || h * w > L)
            return prism_errorf(err, "spatial_shapes[%d] = (%d, %d): h and w must be positive "
                                "and h·w at most the %d patch rows", b, (int)h, (int)w, L);
        if (naflex_valid_rows(mask + (size_t)b * L, L) == 0)
            return prism_errorf(err, "pixel_attention_mask[%d] masks every patch", b);
    }
    return 0;
}

/* An image's place in the call and its patch rows, for bucketing. */
typedef struct naflex_item {
    int index, rows;
} naflex_item;

/* Most rows first; equal counts in call order. */
static int naflex_item_cmp(const void *a, const void *b)
{
    const naflex_item *x = a, *y = b;
    if (x->rows != y->rows)
        return x->rows > y->rows ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Images are run by patch count, largest first, in chunks of at most
 * max_batch whose counts stay within 3/4 of the chunk's largest (one
 * bucket), each chunk over its own largest count: padding a mixed batch to
 * its maximum costs the padded rows' full work (1.7x slower than buckets
 * for a mix of 64/144/256-patch images on 2 cores, docs/engine.md), while
 * an image's result does not depend on the others in its chunk. */
int siglip_embed_naflex(siglip_model *m, const float *patches, const int32_t *mask,
                        const int32_t *spatial_shapes, int n, int max_patches, bool normalize,
                        float *out, prism_error *err)
{
    prism_backend *be = m->be;
    const int E = m->cfg.vision.t.hidden_size, L = max_patches;
    if (naflex_check(m, mask, spatial_shapes, n, L, err))
        return -1;
    naflex_item *items = malloc((size_t)(n > 0 ? n : 1) * sizeof *items);
    int *idx = malloc((size_t)(m->max_batch) * sizeof *idx);
    if (!items || !idx) {
        free(items), free(idx);
        return prism_errorf(err, "out of memory");
    }
    for (int i = 0; i < n; i++)
        items[i] = (naflex_item){i, naflex_valid_rows(mask + (size_t)i * L, L)};
    if (!m->naflex_pad)
        qsort(items, (size_t)n, sizeof *items, naflex_item_cmp);
    int rc = 0;
    for (int s = 0; s < n && rc == 0;) {
        /* rows masked in every image of the chunk are left out: they change nothing */
        int T = items[s].rows, B = 0;
        while (s + B < n && B < m->max_batch &&
               (m->naflex_pad || 4 * items[s + B].rows >= 3 * items[s].rows)) {
            const int T2 = items[s + B].rows > T ? items[s + B].rows : T;
            if ((int64_t)(B + 1) * T2 > m->max_rows)
                break; /* the activations hold max_rows rows */
            idx[B] = items[s + B].index;
            T = T2;
            B++;
        }
        naflex_stage(m, patches, mask, spatial_shapes, idx, B, L, T);
        rc = naflex_chunk(m, B, T, err);
        if (rc == 0 && normalize && be->ops->l2_normalize(be, m->w.pooled, B, E))
            rc = prism_backend_failed(be, err, "l2_normalize");
        if (rc == 0 && be->ops->download(be, m->w.h_out, m->w.pooled, (size_t)B * E * sizeof(float)))
            rc = prism_backend_failed(be, err, "download");
        for (int b = 0; rc == 0 && b < B; b++)
            memcpy(out + (size_t)idx[b] * E, m->w.h_out + (size_t)b * E, (size_t)E * sizeof(float));
        s += B;
    }
    free(items), free(idx);
    return rc;
}

int siglip_embed_images(siglip_model *m, const float *pixels, int n, bool normalize, float *out,
                        prism_error *err)
{
    prism_backend *be = m->be;
    const siglip_vision_config *vc = &m->cfg.vision;
    const int E = vc->t.hidden_size;
    const size_t per = (size_t)vc->num_channels * vc->image_size * vc->image_size;
    if (m->vision_only)
        return prism_errorf(err, "a vision tower loaded alone has no pooling head");
    if (vc->naflex)
        return prism_errorf(err, "a SigLIP 2 NaFlex model takes patchified images "
                            "(siglip_embed_naflex), not fixed-size pixels");
    for (int i = 0; i < n; i += m->max_batch) {
        int B = n - i < m->max_batch ? n - i : m->max_batch;
        if (vision_chunk(m, pixels + (size_t)i * per, B, err))
            return -1;
        if (normalize)
            PRISM_CK(be->ops->l2_normalize(be, m->w.pooled, B, E), "l2_normalize");
        PRISM_CK(be->ops->download(be, out + (size_t)i * E, m->w.pooled, (size_t)B * E * sizeof(float)),
           "download");
    }
    return 0;
}

int siglip_embed_texts(siglip_model *m, const int32_t *ids, int n, int T, bool normalize,
                       float *out, prism_error *err)
{
    return siglip_embed_texts_masked(m, ids, NULL, n, T, normalize, out, err);
}

int siglip_embed_texts_masked(siglip_model *m, const int32_t *ids, const int32_t *mask, int n,
                              int T, bool normalize, float *out, prism_error *err)
{
    prism_backend *be = m->be;
    const siglip_text_config *tc = &m->cfg.text;
    const int Pj = tc->projection_size;
    if (m->vision_only)
        return prism_errorf(err, "a vision tower loaded alone has no text tower");
    if (T < 1 || T > tc->max_position_embeddings)
        return prism_errorf(err, "input_ids: sequence length %d is outside [1, %d]", T,
                            tc->max_position_embeddings);
    for (size_t i = 0; i < (size_t)n * T; i++)
        if (ids[i] < 0 || ids[i] >= tc->vocab_size)
            return prism_errorf(err, "input_ids[%zu][%zu] = %d is outside the vocabulary "
                                "[0, %d)", i / (size_t)T, i % (size_t)T, ids[i], tc->vocab_size);
    for (int i = 0; mask && i < n; i++) {
        int any = 0;
        for (int t = 0; t < T; t++)
            any |= mask[(size_t)i * T + t] != 0;
        if (!any)
            return prism_errorf(err, "attention_mask[%d] masks every position", i);
    }
    for (int i = 0; i < n; i += m->max_batch) {
        int B = n - i < m->max_batch ? n - i : m->max_batch;
        if (text_chunk(m, ids + (size_t)i * T, mask ? mask + (size_t)i * T : NULL, B, T, err))
            return -1;
        if (normalize)
            PRISM_CK(be->ops->l2_normalize(be, m->w.pooled, B, Pj), "l2_normalize");
        PRISM_CK(be->ops->download(be, out + (size_t)i * Pj, m->w.pooled,
                             (size_t)B * Pj * sizeof(float)), "download");
    }
    return 0;
}

void siglip_logits(const siglip_model *m, const float *img, int n_img, const float *txt,
                   int n_txt, float *logits)
{
    const int D = siglip_embed_dim(m);
    const float scale = expf(m->logit_scale);
    for (int i = 0; i < n_img; i++)
        for (int j = 0; j < n_txt; j++) {
            float dot = 0;
            for (int c = 0; c < D; c++)
                dot += img[(size_t)i * D + c] * txt[(size_t)j * D + c];
            logits[(size_t)i * n_txt + j] = dot * scale + m->logit_bias;
        }
}

static double encoder_flops(const siglip_tower_config *t, double T)
{
    double E = t->hidden_size, I = t->intermediate_size;
    /* q,k,v,o projections + scores and weighted sum + MLP, 2 flops per MAC */
    return t->num_hidden_layers * (8.0 * T * E * E + 4.0 * T * T * E + 4.0 * T * E * I);
}

double siglip_image_flops(const siglip_config *cfg)
{
    return siglip_naflex_image_flops(cfg, cfg->vision.num_patches);
}

double siglip_naflex_image_flops(const siglip_config *cfg, int n_patches)
{
    const siglip_vision_config *v = &cfg->vision;
    double E = v->t.hidden_size, I = v->t.intermediate_size;
    double N = n_patches;
    double patch = 2.0 * N * E * v->num_channels * v->patch_size * v->patch_size;
    double head = 4.0 * N * E * E + 4.0 * E * E + 4.0 * N * E + 4.0 * E * I;
    return patch + encoder_flops(&v->t, N) + head;
}

double siglip_text_flops(const siglip_config *cfg, int T)
{
    const siglip_text_config *t = &cfg->text;
    return encoder_flops(&t->t, T) + 2.0 * t->t.hidden_size * t->projection_size;
}
