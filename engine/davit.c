/* davit.c - Florence-2's DaViT backbone and projector (see davit.h). */
#include "davit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PRISM_HAVE_BLAS
#include <cblas.h>
#endif

#include "weight_set.h"

typedef struct davit_sub {    /* one spatial or channel block */
    const float *conv1_w, *conv1_b, *conv2_w, *conv2_b; /* depthwise [C, 9], [C] */
    const float *n1_w, *n1_b, *n2_w, *n2_b;
    const void *qkv, *proj, *fc1, *fc2;
    const float *qkv_b, *proj_b, *fc1_b, *fc2_b;
} davit_sub;

typedef struct davit_stage {
    const void *conv_w;       /* [Cout, Cin·k·k] */
    const float *conv_b, *norm_w, *norm_b;
    davit_sub *spatial, *channel; /* [depth] */
    int H, W;                 /* output grid for the loaded image size */
} davit_stage;

struct davit_model {
    davit_config cfg;
    prism_backend *be;
    const st_weights *w;
    char prefix[64];
    weight_set ws;
    int image_size, max_batch, side, n_tokens;
    davit_stage st[DAVIT_MAX_STAGES];
    const void *img_proj;                 /* [P, C_last] */
    const float *proj_ln_w, *proj_ln_b;
    float *pos;                           /* [h·w, C_last]: column | row embeddings */
    float *temporal;                      /* [C_last]: the first temporal embedding */
    /* activations (host-addressable backend memory) */
    float *x, *h, *pad, *big, *cols, *tok; /* see alloc_work */
    float *dw_t;                          /* [9, C_max]: dwconv3_add's weights */
    size_t n_x, n_big, n_cols;
};

/* ---- config ------------------------------------------------------------------ */

static int get_ints(const json_value *o, const char *key, int *out, int *n, int lo, int hi,
                    const char *file, const char *pkey, prism_error *err)
{
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_ARRAY || v->count < 1 || v->count > DAVIT_MAX_STAGES)
        return prism_errorf(err, "%s: %s.%s must be a list of 1 to %d integers", file, pkey, key,
                            DAVIT_MAX_STAGES);
    for (size_t i = 0; i < v->count; i++) {
        const json_value *e = &v->items[i];
        if (e->type == JSON_BOOL && lo == 0 && hi == 1) {
            out[i] = e->boolean;
            continue;
        }
        if (e->type != JSON_NUMBER || !e->is_integer || e->integer < lo || e->integer > hi)
            return prism_errorf(err, "%s: %s.%s[%zu] must be in [%d, %d]", file, pkey, key, i,
                                lo, hi);
        out[i] = (int)e->integer;
    }
    *n = (int)v->count;
    return 0;
}

static int get_int(const json_value *o, const char *key, int *out, int lo, int hi,
                   const char *file, const char *pkey, prism_error *err)
{
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi)
        return prism_errorf(err, "%s: %s.%s must be an integer in [%d, %d]", file, pkey, key,
                            lo, hi);
    *out = (int)v->integer;
    return 0;
}

int davit_config_from_json(davit_config *c, const json_value *o, const char *file,
                           const char *key, prism_error *err)
{
    if (!o || o->type != JSON_OBJECT)
        return prism_errorf(err, "%s: %s must be an object", file, key);
    /* transformers' Florence2VisionConfig defaults (Florence-2-base) */
    static const davit_config base = {
        .n_stages = 4, .in_channels = 3, .depths = {1, 1, 9, 1}, .patch_size = {7, 3, 3, 3},
        .patch_stride = {4, 2, 2, 2}, .patch_padding = {3, 1, 1, 1},
        .patch_prenorm = {false, true, true, true}, .embed_dim = {128, 256, 512, 1024},
        .num_heads = {4, 8, 16, 32}, .num_groups = {4, 8, 16, 32}, .window_size = 12,
        .qkv_bias = true, .act = PRISM_ACT_GELU_ERF, .projection_dim = 1024,
        .max_position_embeddings = 50, .max_temporal_embeddings = 100,
    };
    *c = base;
    int n[8] = {4, 4, 4, 4, 4, 4, 4, 4}, prenorm[DAVIT_MAX_STAGES];
    for (int i = 0; i < DAVIT_MAX_STAGES; i++)
        prenorm[i] = c->patch_prenorm[i];
    if (get_ints(o, "depths", c->depths, &n[0], 0, 256, file, key, err) ||
        get_ints(o, "patch_size", c->patch_size, &n[1], 1, 64, file, key, err) ||
        get_ints(o, "patch_stride", c->patch_stride, &n[2], 1, 64, file, key, err) ||
        get_ints(o, "patch_padding", c->patch_padding, &n[3], 0, 64, file, key, err) ||
        get_ints(o, "patch_prenorm", prenorm, &n[4], 0, 1, file, key, err) ||
        get_ints(o, "embed_dim", c->embed_dim, &n[5], 1, 1 << 14, file, key, err) ||
        get_ints(o, "num_heads", c->num_heads, &n[6], 1, 1024, file, key, err) ||
        get_ints(o, "num_groups", c->num_groups, &n[7], 1, 1024, file, key, err) ||
        get_int(o, "in_channels", &c->in_channels, 1, 16, file, key, err) ||
        get_int(o, "window_size", &c->window_size, 1, 256, file, key, err) ||
        get_int(o, "projection_dim", &c->projection_dim, 1, 1 << 16, file, key, err) ||
        get_int(o, "max_position_embeddings", &c->max_position_embeddings, 1, 4096, file, key,
                err) ||
        get_int(o, "max_temporal_embeddings", &c->max_temporal_embeddings, 1, 1 << 16, file,
                key, err))
        return -1;
    c->n_stages = n[5];
    for (int i = 0; i < 8; i++)
        if (n[i] != c->n_stages)
            return prism_errorf(err, "%s: %s: depths, patch_size, patch_stride, patch_padding, "
                                "patch_prenorm, embed_dim, num_heads and num_groups must have "
                                "one entry per stage (%d)", file, key, c->n_stages);
    double ratio = 4.0;
    const json_value *mr = json_get(o, "mlp_ratio");
    if (mr && mr->type != JSON_NULL) {
        if (mr->type != JSON_NUMBER || !(mr->number > 0) || mr->number > 64)
            return prism_errorf(err, "%s: %s.mlp_ratio must be a positive number", file, key);
        ratio = mr->number;
    }
    for (int s = 0; s < c->n_stages; s++) {
        c->patch_prenorm[s] = prenorm[s] != 0;
        c->mlp_hidden[s] = (int)(c->embed_dim[s] * ratio); /* Python's int(): truncation */
        if (c->embed_dim[s] % c->num_heads[s] || c->embed_dim[s] % c->num_groups[s])
            return prism_errorf(err, "%s: %s: embed_dim[%d] = %d is not a multiple of num_heads "
                                "and num_groups", file, key, s, c->embed_dim[s]);
        if (c->mlp_hidden[s] < 1)
            return prism_errorf(err, "%s: %s.mlp_ratio gives no hidden units", file, key);
    }
    const json_value *qb = json_get(o, "qkv_bias");
    if (qb && qb->type != JSON_NULL) {
        if (qb->type != JSON_BOOL)
            return prism_errorf(err, "%s: %s.qkv_bias must be true or false", file, key);
        c->qkv_bias = qb->boolean;
    }
    const json_value *act = json_get(o, "activation_function");
    if (act && act->type != JSON_NULL &&
        (act->type != JSON_STRING || prism_act_parse(act->string, &c->act)))
        return prism_errorf(err, "%s: %s.activation_function: unsupported", file, key);
    if (c->embed_dim[c->n_stages - 1] < 2)
        return prism_errorf(err, "%s: %s: the last embed_dim must be at least 2", file, key);
    return 0;
}

static int conv_out(int n, int k, int stride, int pad)
{
    return (n + 2 * pad - k) / stride + 1;
}

int davit_grid_side(const davit_config *c, int image_size)
{
    int side = image_size;
    for (int s = 0; s < c->n_stages; s++) {
        if (side + 2 * c->patch_padding[s] < c->patch_size[s])
            return 0;
        side = conv_out(side, c->patch_size[s], c->patch_stride[s], c->patch_padding[s]);
    }
    return side;
}

/* ---- loading ----------------------------------------------------------------- */

static const void *load(davit_model *m, const char *name, int ndim, const int64_t *shape,
                        bool matrix, prism_error *err)
{
    char full[320];
    snprintf(full, sizeof full, "%s%s", m->prefix, name);
    return ws_load(&m->ws, full, ndim, shape, matrix, 0, -1, err);
}

#define LOADV(dst, n0, ...)                                                                  \
    do {                                                                                     \
        char nm_[256];                                                                       \
        snprintf(nm_, sizeof nm_, __VA_ARGS__);                                              \
        const int64_t sh_[1] = {(n0)};                                                       \
        if (!((dst) = load(m, nm_, 1, sh_, false, err)))                                     \
            return -1;                                                                       \
    } while (0)
#define LOADM(dst, r, c, ...)                                                                \
    do {                                                                                     \
        char nm_[256];                                                                       \
        snprintf(nm_, sizeof nm_, __VA_ARGS__);                                              \
        const int64_t sh_[2] = {(r), (c)};                                                   \
        if (!((dst) = load(m, nm_, 2, sh_, true, err)))                                      \
            return -1;                                                                       \
    } while (0)

static int load_sub(davit_model *m, int s, int j, const char *kind, const char *attn,
                    davit_sub *b, prism_error *err)
{
    const int64_t C = m->cfg.embed_dim[s], F = m->cfg.mlp_hidden[s];
    const int64_t dw[4] = {C, 1, 3, 3};
    char p[160];
    snprintf(p, sizeof p, "vision_tower.blocks.%d.%d.%s.", s, j, kind);
    char nm[256];
    snprintf(nm, sizeof nm, "%sconv1.weight", p);
    if (!(b->conv1_w = load(m, nm, 4, dw, false, err)))
        return -1;
    snprintf(nm, sizeof nm, "%sconv2.weight", p);
    if (!(b->conv2_w = load(m, nm, 4, dw, false, err)))
        return -1;
    LOADV(b->conv1_b, C, "%sconv1.bias", p);
    LOADV(b->conv2_b, C, "%sconv2.bias", p);
    LOADV(b->n1_w, C, "%snorm1.weight", p);
    LOADV(b->n1_b, C, "%snorm1.bias", p);
    LOADV(b->n2_w, C, "%snorm2.weight", p);
    LOADV(b->n2_b, C, "%snorm2.bias", p);
    LOADM(b->qkv, 3 * C, C, "%s%s.qkv.weight", p, attn);
    b->qkv_b = NULL;
    if (m->cfg.qkv_bias)
        LOADV(b->qkv_b, 3 * C, "%s%s.qkv.bias", p, attn);
    LOADM(b->proj, C, C, "%s%s.proj.weight", p, attn);
    LOADV(b->proj_b, C, "%s%s.proj.bias", p, attn);
    LOADM(b->fc1, F, C, "%sffn.fc1.weight", p);
    LOADV(b->fc1_b, F, "%sffn.fc1.bias", p);
    LOADM(b->fc2, C, F, "%sffn.fc2.weight", p);
    LOADV(b->fc2_b, C, "%sffn.fc2.bias", p);
    return 0;
}

/* The projector's position tables for the loaded grid, made on the host:
 * pos[y·w + x] = column_embeddings[x] | row_embeddings[y]; temporal = row 0
 * of visual_temporal_embed.pos_idx_to_embed (sin 0, cos 0 alternating when
 * the checkpoint leaves that buffer out: what transformers computes). */
static int make_positions(davit_model *m, prism_error *err)
{
    prism_backend *be = m->be;
    const int C = m->cfg.embed_dim[m->cfg.n_stages - 1], half = C / 2, n = m->side;
    const int P = m->cfg.max_position_embeddings;
    if (n > P)
        return prism_errorf(err, "%d x %d pixels give a %d x %d grid; the position embeddings "
                            "cover %d x %d", m->image_size, m->image_size, n, n, P, P);
    char nm[256];
    snprintf(nm, sizeof nm, "%smulti_modal_projector.image_position_embed.row_embeddings.weight",
             m->prefix);
    const int64_t rs[2] = {P, half}, cs[2] = {P, C - half};
    const float *row = ws_load(&m->ws, nm, 2, rs, false, 0, -1, err);
    if (!row)
        return -1;
    snprintf(nm, sizeof nm,
             "%smulti_modal_projector.image_position_embed.column_embeddings.weight", m->prefix);
    const float *col = ws_load(&m->ws, nm, 2, cs, false, 0, -1, err);
    if (!col)
        return -1;
    const float *tmp = NULL;
    snprintf(nm, sizeof nm, "%smulti_modal_projector.visual_temporal_embed.pos_idx_to_embed",
             m->prefix);
    if (st_weights_find(m->w, nm, NULL)) {
        const int64_t ts[2] = {m->cfg.max_temporal_embeddings, C};
        if (!(tmp = ws_load(&m->ws, nm, 2, ts, false, 0, 1, err)))
            return -1;
    }
    const size_t np = (size_t)n * n * C;
    float *hr = malloc((size_t)P * half * sizeof *hr), *hc = malloc((size_t)P * (C - half) *
                                                                     sizeof *hc);
    float *hp = malloc(np * sizeof *hp), *ht = malloc((size_t)C * sizeof *ht);
    m->pos = be->ops->alloc(be, np * sizeof(float));
    m->temporal = be->ops->alloc(be, (size_t)C * sizeof(float));
    int rc = !hr || !hc || !hp || !ht || !m->pos || !m->temporal ||
             be->ops->download(be, hr, row, (size_t)P * half * sizeof *hr) ||
             be->ops->download(be, hc, col, (size_t)P * (C - half) * sizeof *hc) ||
             (tmp && be->ops->download(be, ht, tmp, (size_t)C * sizeof *ht));
    if (!rc) {
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                float *d = hp + ((size_t)y * n + x) * C;
                memcpy(d, hc + (size_t)x * (C - half), (size_t)(C - half) * sizeof *d);
                memcpy(d + (C - half), hr + (size_t)y * half, (size_t)half * sizeof *d);
            }
        if (!tmp)
            for (int i = 0; i < C; i++)
                ht[i] = (i & 1) ? 1.0f : 0.0f;
        rc = be->ops->upload(be, m->pos, hp, np * sizeof *hp) ||
             be->ops->upload(be, m->temporal, ht, (size_t)C * sizeof *ht);
    }
    free(hr);
    free(hc);
    free(hp);
    free(ht);
    return rc ? prism_errorf(err, "cannot make the projector's position tables") : 0;
}

static int load_weights(davit_model *m, prism_error *err)
{
    const davit_config *c = &m->cfg;
    int side = m->image_size;
    for (int s = 0; s < c->n_stages; s++) {
        davit_stage *S = &m->st[s];
        const int64_t Ci = s ? c->embed_dim[s - 1] : c->in_channels, Co = c->embed_dim[s];
        const int64_t k = c->patch_size[s];
        side = conv_out(side, c->patch_size[s], c->patch_stride[s], c->patch_padding[s]);
        S->H = S->W = side;
        const int64_t cw[4] = {Co, Ci, k, k};
        char nm[160];
        snprintf(nm, sizeof nm, "vision_tower.convs.%d.conv.weight", s);
        if (!(S->conv_w = load(m, nm, 4, cw, true, err)))
            return -1;
        LOADV(S->conv_b, Co, "vision_tower.convs.%d.conv.bias", s);
        const int64_t nc = c->patch_prenorm[s] ? Ci : Co;
        LOADV(S->norm_w, nc, "vision_tower.convs.%d.norm.weight", s);
        LOADV(S->norm_b, nc, "vision_tower.convs.%d.norm.bias", s);
        S->spatial = calloc((size_t)c->depths[s] + 1, sizeof *S->spatial);
        S->channel = calloc((size_t)c->depths[s] + 1, sizeof *S->channel);
        if (!S->spatial || !S->channel)
            return prism_errorf(err, "out of memory");
        for (int j = 0; j < c->depths[s]; j++)
            if (load_sub(m, s, j, "spatial_block", "window_attn", &S->spatial[j], err) ||
                load_sub(m, s, j, "channel_block", "channel_attn", &S->channel[j], err))
                return -1;
    }
    const int64_t C = c->embed_dim[c->n_stages - 1];
    LOADM(m->img_proj, c->projection_dim, C, "multi_modal_projector.image_projection.weight");
    LOADV(m->proj_ln_w, c->projection_dim, "multi_modal_projector.image_proj_norm.weight");
    LOADV(m->proj_ln_b, c->projection_dim, "multi_modal_projector.image_proj_norm.bias");
    return make_positions(m, err);
}

/* Buffer sizes: the largest activation of any stage for max_batch images. */
static int alloc_work(davit_model *m, prism_error *err)
{
    prism_backend *be = m->be;
    const davit_config *c = &m->cfg;
    const size_t Bm = (size_t)m->max_batch, ws = (size_t)c->window_size;
    size_t nx = 0, nbig = 0, ncols = 0, side = (size_t)m->image_size;
    for (int s = 0; s < c->n_stages; s++) {
        const size_t Ci = s ? (size_t)c->embed_dim[s - 1] : (size_t)c->in_channels;
        const size_t C = (size_t)c->embed_dim[s], k = (size_t)c->patch_size[s];
        const size_t in = Bm * side * side * Ci; /* the stage's input, prenormed */
        side = (size_t)m->st[s].H;
        const size_t hw = Bm * side * side, hp = (side + ws - 1) / ws * ws;
        const size_t padded = Bm * hp * hp;
        nx = nx > in ? nx : in;
        nx = nx > hw * C ? nx : hw * C;
        nx = nx > padded * C ? nx : padded * C;
        ncols = ncols > hw * Ci * k * k ? ncols : hw * Ci * k * k;
        const size_t scores = C * C / (size_t)c->num_groups[s]; /* channel attention */
        nx = nx > scores ? nx : scores;
        const size_t big[] = {padded * 3 * C, hw * (size_t)c->mlp_hidden[s], hw * 3 * C};
        for (int i = 0; i < 3; i++)
            nbig = nbig > big[i] ? nbig : big[i];
    }
    const size_t C = (size_t)c->embed_dim[c->n_stages - 1];
    const size_t ntok = Bm * (size_t)m->n_tokens;
    nx = nx > ntok * C ? nx : ntok * C;
    m->n_x = nx;
    m->n_big = nbig;
    m->n_cols = ncols;
    size_t cmax = 0;
    for (int s = 0; s < c->n_stages; s++)
        cmax = cmax > (size_t)c->embed_dim[s] ? cmax : (size_t)c->embed_dim[s];
    float **bufs[] = {&m->x, &m->h, &m->pad, &m->big, &m->cols, &m->tok, &m->dw_t};
    const size_t sizes[] = {nx, nx, nx, nbig, ncols, ntok * C, 9 * cmax};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = be->ops->alloc(be, sizes[i] * sizeof(float))))
            return prism_errorf(err, "cannot allocate DaViT activations (%zu bytes) on the %s "
                                "backend", sizes[i] * sizeof(float), be->ops->name);
    return 0;
}

int davit_load(davit_model **out, const davit_config *cfg, const st_weights *w,
               const char *prefix, prism_backend *be, int image_size, int max_batch,
               prism_error *err)
{
    *out = NULL;
    if (strncmp(be->ops->name, "cpu", 3) != 0)
        return prism_errorf(err, "Florence-2's vision tower runs on the CPU backend only (its "
                            "convolutions and window moves are host code); the %s backend was "
                            "asked for", be->ops->name);
    const int side = davit_grid_side(cfg, image_size);
    if (image_size < 1 || side < 1 || max_batch < 1)
        return prism_errorf(err, "%d x %d pixels are too few for the vision tower's "
                            "convolutions", image_size, image_size);
    davit_model *m = calloc(1, sizeof *m);
    if (!m)
        return prism_errorf(err, "out of memory");
    m->cfg = *cfg;
    m->be = be;
    m->w = w;
    m->image_size = image_size;
    m->max_batch = max_batch;
    m->side = side;
    m->n_tokens = 1 + side * side;
    ws_init(&m->ws, be, w);
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    if (load_weights(m, err) || alloc_work(m, err)) {
        davit_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void davit_free(davit_model *m)
{
    if (!m)
        return;
    prism_backend *be = m->be;
    ws_release(&m->ws);
    float *bufs[] = {m->pos, m->temporal, m->x, m->h, m->pad, m->big, m->cols, m->tok, m->dw_t};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    for (int s = 0; s < DAVIT_MAX_STAGES; s++) {
        free(m->st[s].spatial);
        free(m->st[s].channel);
    }
    free(m);
}

int davit_n_tokens(const davit_model *m) { return m->n_tokens; }
int64_t davit_param_count(const davit_model *m) { return m->ws.n_params; }
int64_t davit_tensor_count(const davit_model *m) { return m->ws.n_tensors; }

/* ---- host ops (CPU backends: backend memory is host memory) ------------------ */

/* cols[(b·Ho + oy)·Wo + ox][(c·k + ky)·k + kx] = x at (b, c, oy·st − pad + ky,
 * ox·st − pad + kx), 0 outside; x is channels-first [B, C, H, W] (pixels)
 * when nchw, else channels-last [B, H, W, C]. The row order matches a
 * convolution weight [Cout, C, k, k] flattened. */
static void im2col(float *cols, const float *x, bool nchw, int B, int H, int W, int C, int k,
                   int st, int pad, int Ho, int Wo, int n_threads)
{
    const int64_t K = (int64_t)C * k * k;
#pragma omp parallel for collapse(2) num_threads(n_threads) if (n_threads > 1)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float *r = cols + (((int64_t)b * Ho + oy) * Wo + ox) * K;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < k; ky++) {
                        const int iy = oy * st - pad + ky;
                        for (int kx = 0; kx < k; kx++) {
                            const int ix = ox * st - pad + kx;
                            float v = 0.0f;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                v = nchw ? x[(((int64_t)b * C + c) * H + iy) * W + ix]
                                         : x[(((int64_t)b * H + iy) * W + ix) * C + c];
                            r[((int64_t)c * k + ky) * k + kx] = v;
                        }
                    }
            }
}

/* y = x + depthwise 3×3 convolution of x (padding 1, bias), channels-last.
 * wt is scratch of 9·C floats: the weights [C, 9] transposed to [9, C], so
 * that the loops run over contiguous channels and vectorise. Each channel
 * sums its taps in the order ky, kx from 0 (the taps outside the grid left
 * out), then adds the bias and x: the same float operations, in the same
 * order, as the scalar loop over (c, ky, kx). */
static void dwconv3_add(float *y, const float *x, const float *w, const float *bias, float *wt,
                        int B, int H, int W, int C, int n_threads)
{
    for (int c = 0; c < C; c++)
        for (int t = 0; t < 9; t++)
            wt[(int64_t)t * C + c] = w[c * 9 + t];
#pragma omp parallel for collapse(2) num_threads(n_threads) if (n_threads > 1)
    for (int b = 0; b < B; b++)
        for (int yy = 0; yy < H; yy++)
            for (int xx = 0; xx < W; xx++) {
                const int64_t o = (((int64_t)b * H + yy) * W + xx) * C;
                float *restrict acc = y + o;
                for (int c = 0; c < C; c++)
                    acc[c] = 0.0f;
                for (int ky = 0; ky < 3; ky++) {
                    const int iy = yy + ky - 1;
                    if (iy < 0 || iy >= H)
                        continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const int ix = xx + kx - 1;
                        if (ix < 0 || ix >= W)
                            continue;
                        const float *restrict xi = x + (((int64_t)b * H + iy) * W + ix) * C;
                        const float *restrict wk = wt + (int64_t)(ky * 3 + kx) * C;
                        for (int c = 0; c < C; c++)
                            acc[c] += wk[c] * xi[c];
                    }
                }
                const float *restrict xo = x + o;
                for (int c = 0; c < C; c++)
                    acc[c] = (acc[c] + bias[c]) + xo[c];
            }
}

/* Window partition of channels-last [B, H, W, C] into [B, nY, nX, ws, ws, C]
 * (zeros past the grid), or back (reverse: crop). */
static void windows(float *win, float *x, bool reverse, int B, int H, int W, int C, int ws,
                    int n_threads)
{
    const int nY = (H + ws - 1) / ws, nX = (W + ws - 1) / ws;
#pragma omp parallel for collapse(2) num_threads(n_threads) if (n_threads > 1)
    for (int b = 0; b < B; b++)
        for (int py = 0; py < nY * ws; py++)
            for (int px = 0; px < nX * ws; px++) {
                const int wy = py / ws, iy = py % ws, wx = px / ws, ix = px % ws;
                float *w = win + ((((((int64_t)b * nY + wy) * nX + wx) * ws + iy) * ws) + ix) * C;
                const bool in = py < H && px < W;
                float *s = in ? x + (((int64_t)b * H + py) * W + px) * C : NULL;
                if (reverse) {
                    if (in)
                        memcpy(s, w, (size_t)C * sizeof *s);
                } else if (in) {
                    memcpy(w, s, (size_t)C * sizeof *w);
                } else {
                    memset(w, 0, (size_t)C * sizeof *w);
                }
            }
}

/* Channel attention of one image: qkv [N, 3C] (q | k | v, channel g·Cg + i
 * of group g) → out [N, C]: per group, A = softmax(scale · Q·Kᵀ) over the
 * Cg channels, Q[i][n] = q[n][g·Cg + i]; out[n][g·Cg + i] = Σ_j A[i][j]·V[j][n]. */
static void channel_attn(float *out, const float *qkv, int N, int C, int G, float scale,
                         float *A, int n_threads)
{
    const int Cg = C / G;
    for (int g = 0; g < G; g++) {
        const float *q = qkv + (int64_t)g * Cg, *k = q + C, *v = q + 2 * C;
        float *a = A + (int64_t)g * Cg * Cg;
#ifdef PRISM_HAVE_BLAS
        (void)n_threads;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cg, Cg, N, 1.0f, q, 3 * C, k,
                    3 * C, 0.0f, a, Cg);
#else
#pragma omp parallel for num_threads(n_threads) if (n_threads > 1)
        for (int i = 0; i < Cg; i++)
            for (int j = 0; j < Cg; j++) {
                float acc = 0.0f;
                for (int n = 0; n < N; n++)
                    acc += q[(int64_t)n * 3 * C + i] * k[(int64_t)n * 3 * C + j];
                a[i * Cg + j] = acc;
            }
#endif
        for (int i = 0; i < Cg; i++) { /* softmax(scale · scores) per row */
            float *r = a + (int64_t)i * Cg, mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < Cg; j++) {
                r[j] *= scale;
                mx = r[j] > mx ? r[j] : mx;
            }
            for (int j = 0; j < Cg; j++)
                sum += (r[j] = expf(r[j] - mx));
            for (int j = 0; j < Cg; j++)
                r[j] /= sum;
        }
#ifdef PRISM_HAVE_BLAS
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Cg, Cg, 1.0f, v, 3 * C, a, Cg,
                    0.0f, out + (int64_t)g * Cg, C);
#else
#pragma omp parallel for num_threads(n_threads) if (n_threads > 1)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < Cg; i++) {
                float acc = 0.0f;
                for (int j = 0; j < Cg; j++)
                    acc += a[i * Cg + j] * v[(int64_t)n * 3 * C + j];
                out[(int64_t)n * C + (int64_t)g * Cg + i] = acc;
            }
#endif
    }
}

/* ---- forward ------------------------------------------------------------------- */

/* x += fc2(act(fc1(LN2(x)))) after x = x + dwconv2(x); h is scratch. */
static int mlp_half(davit_model *m, const davit_sub *b, int s, int R, int H, int W, int Bn,
                    prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const int C = m->cfg.embed_dim[s], F = m->cfg.mlp_hidden[s];
    dwconv3_add(m->h, m->x, b->conv2_w, b->conv2_b, m->dw_t, Bn, H, W, C, be->n_threads);
    float *t = m->x;
    m->x = m->h;
    m->h = t;
    PRISM_CK(o->layernorm(be, m->h, m->x, b->n2_w, b->n2_b, R, C, 1e-5f), "norm2");
    PRISM_CK(o->matmul(be, m->big, m->h, b->fc1, b->fc1_b, R, F, C, m->cfg.act), "fc1");
    PRISM_CK(o->matmul(be, m->h, m->big, b->fc2, b->fc2_b, R, C, F, PRISM_ACT_NONE), "fc2");
    PRISM_CK(o->add(be, m->x, m->x, m->h, (size_t)R * C), "residual");
    return 0;
}

static int spatial_block(davit_model *m, const davit_sub *b, int s, int Bn, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const int C = m->cfg.embed_dim[s], H = m->st[s].H, W = m->st[s].W, R = Bn * H * W;
    const int ws = m->cfg.window_size, nY = (H + ws - 1) / ws, nX = (W + ws - 1) / ws;
    const int nW = Bn * nY * nX, T = ws * ws, heads = m->cfg.num_heads[s], d = C / heads;
    dwconv3_add(m->h, m->x, b->conv1_w, b->conv1_b, m->dw_t, Bn, H, W, C, be->n_threads);
    float *t = m->x;
    m->x = m->h;
    m->h = t;
    PRISM_CK(o->layernorm(be, m->h, m->x, b->n1_w, b->n1_b, R, C, 1e-5f), "norm1");
    windows(m->pad, m->h, false, Bn, H, W, C, ws, be->n_threads);
    const int Rp = nW * T;
    PRISM_CK(o->matmul(be, m->big, m->pad, b->qkv, b->qkv_b, Rp, 3 * C, C, PRISM_ACT_NONE),
             "window qkv");
    prism_attn_desc a = {
        .B = nW, .H = heads, .Tq = T, .Tk = T, .d = d,
        .q_stride = 3 * C, .k_stride = 3 * C, .v_stride = 3 * C, .o_stride = C,
        .q_bstride = (int64_t)T * 3 * C, .k_bstride = (int64_t)T * 3 * C,
        .v_bstride = (int64_t)T * 3 * C, .o_bstride = (int64_t)T * C,
        .scale = (float)pow((double)d, -0.5),
    };
    PRISM_CK(o->attention(be, m->h, m->big, m->big + C, m->big + 2 * C, &a), "window attention");
    PRISM_CK(o->matmul(be, m->pad, m->h, b->proj, b->proj_b, Rp, C, C, PRISM_ACT_NONE),
             "window proj");
    windows(m->pad, m->h, true, Bn, H, W, C, ws, be->n_threads);
    PRISM_CK(o->add(be, m->x, m->x, m->h, (size_t)R * C), "residual");
    return mlp_half(m, b, s, R, H, W, Bn, err);
}

static int channel_block(davit_model *m, const davit_sub *b, int s, int Bn, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const int C = m->cfg.embed_dim[s], H = m->st[s].H, W = m->st[s].W, N = H * W, R = Bn * N;
    const int G = m->cfg.num_groups[s];
    dwconv3_add(m->h, m->x, b->conv1_w, b->conv1_b, m->dw_t, Bn, H, W, C, be->n_threads);
    float *t = m->x;
    m->x = m->h;
    m->h = t;
    PRISM_CK(o->layernorm(be, m->h, m->x, b->n1_w, b->n1_b, R, C, 1e-5f), "norm1");
    PRISM_CK(o->matmul(be, m->big, m->h, b->qkv, b->qkv_b, R, 3 * C, C, PRISM_ACT_NONE),
             "channel qkv");
    const float scale = (float)pow((double)N, -0.5);
    for (int i = 0; i < Bn; i++) /* scores [G, Cg, Cg] live in pad (C·C/G ≤ its size) */
        channel_attn(m->h + (int64_t)i * N * C, m->big + (int64_t)i * N * 3 * C, N, C, G, scale,
                     m->pad, be->n_threads);
    PRISM_CK(o->matmul(be, m->pad, m->h, b->proj, b->proj_b, R, C, C, PRISM_ACT_NONE),
             "channel proj");
    PRISM_CK(o->add(be, m->x, m->x, m->pad, (size_t)R * C), "residual");
    return mlp_half(m, b, s, R, H, W, Bn, err);
}

int davit_forward(davit_model *m, const float *pixels, int B, float *out, int64_t out_bstride,
                  float *last, prism_error *err)
{
    prism_backend *be = m->be;
    const prism_backend_ops *o = be->ops;
    const davit_config *c = &m->cfg;
    if (B < 1 || B > m->max_batch)
        return prism_errorf(err, "%d images: outside [1, %d]", B, m->max_batch);
    int H = m->image_size, W = m->image_size;
    for (int s = 0; s < c->n_stages; s++) {
        davit_stage *S = &m->st[s];
        const int Ci = s ? c->embed_dim[s - 1] : c->in_channels, Co = c->embed_dim[s];
        const int k = c->patch_size[s], R = B * S->H * S->W;
        const float *src = pixels;
        if (s > 0) {
            src = m->x;
            if (c->patch_prenorm[s]) {
                PRISM_CK(o->layernorm(be, m->h, m->x, S->norm_w, S->norm_b, B * H * W, Ci, 1e-5f),
                         "patch norm");
                src = m->h;
            }
        }
        im2col(m->cols, src, s == 0, B, H, W, Ci, k, c->patch_stride[s], c->patch_padding[s],
               S->H, S->W, be->n_threads);
        PRISM_CK(o->matmul(be, m->x, m->cols, S->conv_w, S->conv_b, R, Co, Ci * k * k,
                           PRISM_ACT_NONE), "patch conv");
        if (!c->patch_prenorm[s])
            PRISM_CK(o->layernorm(be, m->x, m->x, S->norm_w, S->norm_b, R, Co, 1e-5f),
                     "patch norm");
        H = S->H;
        W = S->W;
        for (int j = 0; j < c->depths[s]; j++)
            if (spatial_block(m, &S->spatial[j], s, B, err) ||
                channel_block(m, &S->channel[j], s, B, err))
                return prism_error_prefix(err, "vision stage %d block %d", s, j);
    }
    const int C = c->embed_dim[c->n_stages - 1], N = H * W, T = m->n_tokens;
    if (last)
        PRISM_CK(o->download(be, last, m->x, (size_t)B * N * C * sizeof(float)), "download");
    /* projector: + positions, + temporal; [mean, tokens]; projection; LayerNorm */
    PRISM_CK(o->add_rows(be, m->x, m->pos, B * N, N, C), "image_position_embed");
    PRISM_CK(o->add_rows(be, m->x, m->temporal, B * N, 1, C), "visual_temporal_embed");
    for (int b = 0; b < B; b++) {
        const float *xb = m->x + (int64_t)b * N * C;
        float *tb = m->tok + (int64_t)b * T * C;
        for (int i = 0; i < C; i++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += xb[(int64_t)n * C + i];
            tb[i] = (float)(acc / N);
        }
        memcpy(tb + C, xb, (size_t)N * C * sizeof *tb);
    }
    const int P = c->projection_dim;
    for (int b = 0; b < B; b++) {
        float *ob = out + (int64_t)b * out_bstride;
        PRISM_CK(o->matmul(be, ob, m->tok + (int64_t)b * T * C, m->img_proj, NULL, T, P, C,
                           PRISM_ACT_NONE), "image_projection");
        PRISM_CK(o->layernorm(be, ob, ob, m->proj_ln_w, m->proj_ln_b, T, P, 1e-5f),
                 "image_proj_norm");
    }
    return 0;
}
