/* encdec_cache.h - the decoder KV caches of an encoder-decoder (T5 / UL2 in
 * t5.c, BART in bart.c), in one backend allocation:
 *   - n_slots self-attention slots: a decoder sequence's keys and values,
 *     [L][Td][2·W] per slot (W = heads · head dim; k | v per position);
 *   - n_cross cross-attention slots: a request's encoder keys and values,
 *     [L][Te][2·W] per slot, with the request's encoder length (0: empty).
 * Beams of one request share its cross slot; a child beam copies its
 * parent's self-attention prefix (encdec_cache_copy).
 */
#ifndef PRISM_ENCDEC_CACHE_H
#define PRISM_ENCDEC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "prism_error.h"

typedef struct encdec_cache {
    prism_backend *be;
    int n_slots, n_cross, Td, Te, L, W;
    float *self;    /* [n_slots][L][Td][2·W] */
    float *cross;   /* [n_cross][L][Te][2·W] */
    int *cross_len; /* [n_cross] encoder positions written */
    size_t bytes;
} encdec_cache;

int encdec_cache_create(encdec_cache **out, prism_backend *be, int n_slots, int n_cross,
                        int layers, int max_dec_len, int max_enc_len, int width,
                        prism_error *err);
void encdec_cache_free(encdec_cache *c);

float *encdec_self_kv(const encdec_cache *c, int slot, int layer);
float *encdec_cross_kv(const encdec_cache *c, int slot, int layer);

/* Claims cross slot `slot` for an encoder output of len positions (checked
 * against the cache). */
int encdec_cross_begin(encdec_cache *c, int slot, int len, prism_error *err);
/* Copies B sequences' cross keys/values of one layer, kv [B·T, 2·W] (rows
 * b·T .. b·T + lens[b]), into their slots. */
int encdec_cross_write(encdec_cache *c, int layer, const float *kv, int B, int T,
                       const int *lens, const int *slots, prism_error *err);

/* One decoder position of one sequence. */
typedef struct encdec_seq {
    int slot;       /* self-attention cache slot */
    int cross_slot; /* its request's cross-attention slot */
    int pos;        /* position of `token` (0: the decoder start token) */
    int32_t token;
} encdec_seq;

/* Checks n sequences of a decode step against the cache (slots, positions
 * below Td, a written cross slot) and the vocabulary, writing their tokens
 * to ids (host, n entries). */
int encdec_check_seqs(const encdec_cache *c, const encdec_seq *seqs, int n, int vocab,
                      int32_t *ids, prism_error *err);

/* Cross-attention of one decoder layer for n sequences: q [n, W] (row
 * stride W, H heads of W/H) against each sequence's cross slot, into out
 * [n, W]; adjacent sequences that share a cross slot go in one call. */
int encdec_cross_attend(encdec_cache *c, int layer, const encdec_seq *seqs, int n, float *out,
                        const float *q, int H, float scale, prism_error *err);

/* Copies positions [0, len) of slot src's self-attention cache to dst. */
int encdec_cache_copy(encdec_cache *c, int dst, int src, int len, prism_error *err);

#endif
