/* pali_internal.h - private to pali.c and pali_gen.c: the model struct and
 * the prefill (vision tower + projector + encoder) they share. */
#ifndef PRISM_PALI_INTERNAL_H
#define PRISM_PALI_INTERNAL_H

#include "florence2.h"
#include "pali.h"
#include "paligemma.h"
#include "safetensors.h"
#include "siglip.h"
#include "t5.h"
#include "tok_bytebpe.h"
#include "tokenizer.h"
#include "weight_set.h"

#define PALI_MAX_EOS 8

struct pali_model {
    pali_config cfg;
    pali_limits lim;
    pali_info info;
    prism_backend *be;
    st_weights weights;
    siglip_model *vision;     /* vision_model.* up to post_layernorm */
    t5_model *t5;             /* language_model.* */
    const void *proj_w;       /* multi_modal_projector.linear.weight [D, E] */
    const float *proj_b;      /* [D] */
    weight_set ws;            /* the projector's imported tensors */
    /* prefill buffers, for max_batch requests */
    float *proj_out;          /* backend [max_batch · N, D] */
    int32_t *ids_dev;         /* backend [max_batch · max_prompt_tokens] */
    int32_t *ids_host;        /* host staging for ids_dev */
    float *pixels_host;       /* host [max_batch, C, S, S]: requests' pixels made contiguous */
    int *lens_host;           /* host [max_batch]: encoder lengths */
    int n_image;              /* N = image tokens */
    tok_tokenizer *tok;       /* spiece.model (PaliGemma: the Gemma tokenizer), or NULL */
    /* a PaliGemma checkpoint (model_type paligemma): the model itself, and
     * vision_model / t5 / the prefill buffers above stay unused */
    paligemma_model *pg;
    char *dir;                /* PaliGemma: the model directory (messages) */
    /* a Florence-2 checkpoint (model_type florence2): DaViT + BART, and
     * vision_model / t5 / the prefill buffers above stay unused */
    florence2_model *f2;
    tok_bytebpe *bpe;         /* Florence-2: BART's byte-level BPE, or NULL */
    /* logits processors from generation_config.json (Florence-2; -1 / 0: off) */
    int32_t dec_start;        /* the decoder's first input (T5 / BART) */
    int32_t forced_bos;       /* the first generated token */
    int32_t forced_eos;       /* the token at the last allowed position */
    int no_repeat_ngram;      /* n: no n-gram occurs twice in a sequence */
    int32_t vocab;            /* the decoder's vocabulary size */
    int32_t eos[PALI_MAX_EOS]; /* generation stops at any of these ids */
    int n_eos;
};

static inline bool pali_is_eos(const pali_model *m, int32_t id)
{
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos[i] == id)
            return true;
    return false;
}

/* Prefill of B ≤ max_batch already-validated requests: vision tower,
 * projector, prompt embedding and encoder. With cache and cross_slots the
 * cross keys/values go there; with states (host [B, T, D]) the encoder
 * output is downloaded (T = N + the longest prompt). */
int pali_prefill(pali_model *m, const pali_request *reqs, int B, t5_cache *cache,
                 const int *cross_slots, float *states, int *T_out, prism_error *err);

/* Checks one request against the model and its limits. */
int pali_request_check(const pali_model *m, const pali_request *r, int index, prism_error *err);

#endif
