/* encdec_cache.c - decoder KV caches of an encoder-decoder (see encdec_cache.h). */
#include "encdec_cache.h"

#include <stdlib.h>

int encdec_cache_create(encdec_cache **out, prism_backend *be, int n_slots, int n_cross,
                        int layers, int max_dec_len, int max_enc_len, int width,
                        prism_error *err)
{
    *out = NULL;
    encdec_cache *c = calloc(1, sizeof *c);
    if (!c)
        return prism_errorf(err, "out of memory");
    c->be = be;
    c->n_slots = n_slots;
    c->n_cross = n_cross;
    c->Td = max_dec_len;
    c->Te = max_enc_len;
    c->L = layers;
    c->W = width;
    const size_t self = (size_t)n_slots * c->L * c->Td * 2 * c->W * sizeof(float);
    const size_t cross = (size_t)n_cross * c->L * c->Te * 2 * c->W * sizeof(float);
    c->self = be->ops->alloc(be, self);
    c->cross = be->ops->alloc(be, cross);
    c->cross_len = calloc((size_t)n_cross + 1, sizeof *c->cross_len);
    c->bytes = self + cross;
    if (!c->self || !c->cross || !c->cross_len) {
        encdec_cache_free(c);
        return prism_errorf(err, "cannot allocate %zu bytes of KV cache on the %s backend",
                            self + cross, be->ops->name);
    }
    *out = c;
    return 0;
}

void encdec_cache_free(encdec_cache *c)
{
    if (!c)
        return;
    if (c->self)
        c->be->ops->free(c->be, c->self);
    if (c->cross)
        c->be->ops->free(c->be, c->cross);
    free(c->cross_len);
    free(c);
}

float *encdec_self_kv(const encdec_cache *c, int slot, int layer)
{
    return c->self + (((size_t)slot * c->L + layer) * c->Td) * 2 * c->W;
}

float *encdec_cross_kv(const encdec_cache *c, int slot, int layer)
{
    return c->cross + (((size_t)slot * c->L + layer) * c->Te) * 2 * c->W;
}

int encdec_cross_begin(encdec_cache *c, int slot, int len, prism_error *err)
{
    if (slot < 0 || slot >= c->n_cross)
        return prism_errorf(err, "cross slot %d is outside [0, %d)", slot, c->n_cross);
    if (len < 1 || len > c->Te)
        return prism_errorf(err, "encoder length %d is outside [1, %d]", len, c->Te);
    c->cross_len[slot] = len;
    return 0;
}

int encdec_cross_write(encdec_cache *c, int layer, const float *kv, int B, int T,
                       const int *lens, const int *slots, prism_error *err)
{
    prism_backend *be = c->be;
    const int w2 = 2 * c->W;
    for (int b = 0; b < B; b++)
        PRISM_CK(be->ops->copy_rows(be, encdec_cross_kv(c, slots[b], layer), w2,
                                    kv + (size_t)b * T * w2, w2, lens[b], w2),
                 "cross k/v copy");
    return 0;
}

int encdec_check_seqs(const encdec_cache *c, const encdec_seq *seqs, int n, int vocab,
                      int32_t *ids, prism_error *err)
{
    for (int s = 0; s < n; s++) {
        const encdec_seq *q = &seqs[s];
        if (q->slot < 0 || q->slot >= c->n_slots || q->cross_slot < 0 ||
            q->cross_slot >= c->n_cross || q->pos < 0 || q->pos >= c->Td || q->token < 0 ||
            q->token >= vocab || c->cross_len[q->cross_slot] < 1)
            return prism_errorf(err, "decoder sequence %d: slot %d, cross slot %d, position %d "
                                "or token %d out of range", s, q->slot, q->cross_slot, q->pos,
                                q->token);
        ids[s] = q->token;
    }
    return 0;
}

int encdec_cross_attend(encdec_cache *c, int layer, const encdec_seq *seqs, int n, float *out,
                        const float *q, int H, float scale, prism_error *err)
{
    prism_backend *be = c->be;
    const int W = c->W;
    for (int s = 0; s < n;) {
        int e = s + 1;
        while (e < n && seqs[e].cross_slot == seqs[s].cross_slot)
            e++;
        const float *kv = encdec_cross_kv(c, seqs[s].cross_slot, layer);
        prism_attn_desc a = {
            .B = e - s, .H = H, .Tq = 1, .Tk = c->cross_len[seqs[s].cross_slot], .d = W / H,
            .q_stride = W, .k_stride = 2 * W, .v_stride = 2 * W, .o_stride = W,
            .q_bstride = W, .k_bstride = 0, .v_bstride = 0, .o_bstride = W,
            .scale = scale,
        };
        PRISM_CK(be->ops->attention(be, out + (size_t)s * W, q + (size_t)s * W, kv, kv + W, &a),
                 "cross-attention");
        s = e;
    }
    return 0;
}

int encdec_cache_copy(encdec_cache *c, int dst, int src, int len, prism_error *err)
{
    prism_backend *be = c->be;
    if (dst == src || len == 0)
        return 0;
    if (dst < 0 || src < 0 || dst >= c->n_slots || src >= c->n_slots || len < 0 || len > c->Td)
        return prism_errorf(err, "cache copy %d -> %d of %d positions out of range", src, dst,
                            len);
    for (int l = 0; l < c->L; l++)
        PRISM_CK(be->ops->copy_rows(be, encdec_self_kv(c, dst, l), 0, encdec_self_kv(c, src, l),
                                    0, 1, len * 2 * c->W), "cache copy");
    return 0;
}
