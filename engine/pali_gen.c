/* pali_gen.c - batched, step-wise generation over a pali3 model.
 *
 * Design (continuous batching, one engine thread):
 *   - a pali_gen owns an encdec_cache (T5's, or BART's for Florence-2)
 *     with max_seqs self-attention slots and max_seqs cross-attention
 *     slots, and max_seqs request records, all
 *     allocated at pali_gen_create; a request with K beams holds K slots
 *     and one record (its cross slot is its record index);
 *   - pali_gen_start admits requests (prefill: vision, projector, encoder,
 *     cross k/v) while slots are free; pali_gen_step gathers one decoder
 *     position of every running beam into one t5_decode_step (so requests
 *     of different lengths share every GEMM), picks tokens per request, and
 *     retires the requests that finished;
 *   - beam search reorders beams by moving slot ownership, copying a KV
 *     prefix only when a parent beam has several children.
 *
 * A PaliGemma model (m->pg) runs the same loop on its Gemma decoder: its
 * prefill (vision, projector, the whole prefix into beam 0's slot) already
 * gives the first logits, kept per request in first_logits; later steps
 * feed each beam's last token through one gemma_decode; a beam's history
 * in its slot is the prefix plus its tokens, copied whole for a new child.
 *
 * A Florence-2 model (m->f2) runs the T5 loop on its BART decoder
 * (bart_cache, bart_decode_step). Its generation_config.json adds
 * transformers' logits processors, applied after the top-k (process()):
 * forced <s> first and </s> last (the forced token alone, log-probability
 * 0; the rest −inf), and no repeated n-grams (the top-k asks for as many
 * extra candidates as the row has banned tokens, and the banned ones are
 * dropped: what transformers gets by setting them to −inf before its
 * top-k, with log-probabilities normalised over the whole row as its are).
 *
 * Beam search mirrors transformers 5 GenerationMixin._beam_search with
 * early_stopping=False, float32 throughout (see the comments at each step);
 * a request's result does not depend on which other requests share its
 * batch (transformers' own batched beam search has the same property).
 */
#include "pali_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEG_INF_SCORE (-1.0e9f) /* transformers' "impossible" score */

typedef struct gen_req {
    bool running;
    int handle;
    void *user;
    int K, max_new;
    float lp;
    int cur;            /* tokens generated so far by every running beam */
    int n_prefix;       /* PaliGemma: image tokens + prompt (the cache positions before cur) */
    bool unsat;         /* is_early_stop_heuristic_unsatisfied */
    double t_submit, t_first;
    int row0, nrows;    /* rows of this request in the current step's logits */
    size_t base;        /* its top-k results: row b at base + b·k in idx/val */
    /* running beams, best first */
    int *slot;          /* [K] */
    float *score;       /* [K] accumulated log-probabilities */
    int32_t *tok;       /* [K][max_new_limit] */
    /* finished hypotheses (transformers' `sequences`/`beam_scores`) */
    float *fscore;      /* [K] */
    bool *fflag;        /* [K] is_sent_finished */
    int *flen;          /* [K] */
    int32_t *ftok;      /* [K][max_new_limit] */
} gen_req;

typedef struct cand {
    float score;        /* accumulated log-probability */
    int parent, token;
    int64_t order;      /* tie-break: flat index beam·V + token, as in torch.topk over K·V */
} cand;

struct pali_gen {
    pali_model *m;
    encdec_cache *cache; /* T5's or, for Florence-2, BART's */
    int S, Kmax, Tmax;  /* max_seqs, max_beams, max_new_tokens */
    int KW;             /* top-k entries per row: 2·Kmax + Tmax (banned n-gram tokens) */
    int32_t *banned;    /* [S][Tmax]: banned tokens of each row this step */
    int *n_banned;      /* [S] */
    gen_req *req;       /* [S] */
    bool *slot_used;    /* [S] */
    int next_handle;
    encdec_seq *seqs;   /* [S] */
    int32_t *idx_dev, *idx_host; /* [S · 2Kmax] */
    float *val_dev, *val_host;
    cand *cands, *top;  /* [Kmax · 2Kmax], [2Kmax] */
    int32_t *tmp_tok;   /* [Kmax][Tmax] */
    int *tmp_slot;
    float *tmp_score;
    const float *logits; /* the last step's logits [rows, V] (backend) */
    /* PaliGemma */
    float *first_logits; /* [S, V] backend: the prefill's logits, by request record */
    float *step_logits;  /* [S, V] backend */
    gemma_token *gtoks;  /* [S] */
    int32_t *prefix_ids; /* [N + max_prompt_tokens] host */
    pali_result *done;  /* finished, not yet taken */
    int n_done, cap_done;
    pali_gen_stats stats;
};

/* ---- lifecycle --------------------------------------------------------------- */

int pali_gen_create(pali_gen **out, pali_model *m, prism_error *err)
{
    *out = NULL;
    pali_gen *g = calloc(1, sizeof *g);
    if (!g)
        return prism_errorf(err, "out of memory");
    g->m = m;
    g->S = m->lim.max_seqs;
    g->Kmax = m->lim.max_beams;
    g->Tmax = m->lim.max_new_tokens;
    g->KW = 2 * g->Kmax + (m->no_repeat_ngram > 0 ? g->Tmax : 0);
    g->next_handle = 1;
    const size_t S = (size_t)g->S, K = (size_t)g->Kmax, T = (size_t)g->Tmax;
    prism_backend *be = m->be;
    if ((m->t5 && t5_cache_create(&g->cache, m->t5, g->S, g->S, err)) ||
        (m->f2 && bart_cache_create(&g->cache, florence2_bart(m->f2), g->S, g->S, err))) {
        free(g);
        return -1;
    }
    if (m->pg) {
        const size_t V = (size_t)m->vocab;
        g->first_logits = be->ops->alloc(be, S * V * sizeof(float));
        g->step_logits = be->ops->alloc(be, S * V * sizeof(float));
        g->gtoks = malloc(S * sizeof *g->gtoks);
        g->prefix_ids = malloc((size_t)(m->n_image + m->lim.max_prompt_tokens) *
                               sizeof *g->prefix_ids);
        if (!g->first_logits || !g->step_logits || !g->gtoks || !g->prefix_ids) {
            pali_gen_free(g);
            return prism_errorf(err, "cannot allocate the logits of %d sequences", g->S);
        }
    }
    g->req = calloc(S, sizeof *g->req);
    g->slot_used = calloc(S, sizeof *g->slot_used);
    g->seqs = calloc(S, sizeof *g->seqs);
    g->banned = malloc(S * T * sizeof *g->banned);
    g->n_banned = calloc(S, sizeof *g->n_banned);
    const size_t KW = (size_t)g->KW;
    g->idx_dev = be->ops->alloc(be, S * KW * sizeof(int32_t));
    g->val_dev = be->ops->alloc(be, S * KW * sizeof(float));
    g->idx_host = malloc(S * KW * sizeof(int32_t));
    g->val_host = malloc(S * KW * sizeof(float));
    g->cands = malloc(K * 2 * K * sizeof *g->cands);
    g->top = malloc(3 * K * sizeof *g->top);
    g->tmp_tok = malloc(K * T * sizeof *g->tmp_tok);
    g->tmp_slot = malloc(K * sizeof *g->tmp_slot);
    g->tmp_score = malloc(K * sizeof *g->tmp_score);
    bool ok = g->req && g->slot_used && g->seqs && g->banned && g->n_banned &&
              g->idx_dev && g->val_dev && g->idx_host &&
              g->val_host && g->cands && g->top && g->tmp_tok && g->tmp_slot && g->tmp_score;
    for (size_t i = 0; ok && i < S; i++) {
        gen_req *r = &g->req[i];
        r->slot = malloc(K * sizeof *r->slot);
        r->score = malloc(K * sizeof *r->score);
        r->tok = malloc(K * T * sizeof *r->tok);
        r->fscore = malloc(K * sizeof *r->fscore);
        r->fflag = malloc(K * sizeof *r->fflag);
        r->flen = malloc(K * sizeof *r->flen);
        r->ftok = malloc(K * T * sizeof *r->ftok);
        ok = r->slot && r->score && r->tok && r->fscore && r->fflag && r->flen && r->ftok;
    }
    if (!ok) {
        pali_gen_free(g);
        return prism_errorf(err, "out of memory");
    }
    *out = g;
    return 0;
}

void pali_gen_free(pali_gen *g)
{
    if (!g)
        return;
    prism_backend *be = g->m->be;
    for (int i = 0; g->req && i < g->S; i++) {
        gen_req *r = &g->req[i];
        free(r->slot), free(r->score), free(r->tok), free(r->fscore), free(r->fflag);
        free(r->flen), free(r->ftok);
    }
    for (int i = 0; i < g->n_done; i++)
        pali_result_free(&g->done[i]);
    free(g->done);
    free(g->req), free(g->slot_used), free(g->seqs);
    free(g->banned), free(g->n_banned);
    if (g->idx_dev)
        be->ops->free(be, g->idx_dev);
    if (g->val_dev)
        be->ops->free(be, g->val_dev);
    free(g->idx_host), free(g->val_host), free(g->cands), free(g->top);
    free(g->tmp_tok), free(g->tmp_slot), free(g->tmp_score);
    if (g->first_logits)
        be->ops->free(be, g->first_logits);
    if (g->step_logits)
        be->ops->free(be, g->step_logits);
    free(g->gtoks), free(g->prefix_ids);
    encdec_cache_free(g->cache);
    free(g);
}

int pali_gen_free_seqs(const pali_gen *g)
{
    int n = 0;
    for (int i = 0; i < g->S; i++)
        n += !g->slot_used[i];
    return n;
}

int pali_gen_free_requests(const pali_gen *g)
{
    int n = 0;
    for (int i = 0; i < g->S; i++)
        n += !g->req[i].running;
    return n;
}

int pali_gen_running(const pali_gen *g)
{
    return g->stats.running_requests;
}

const pali_gen_stats *pali_gen_get_stats(const pali_gen *g)
{
    return &g->stats;
}

void pali_result_free(pali_result *r)
{
    if (r) {
        free(r->ids);
        r->ids = NULL;
    }
}

static gen_req *find(const pali_gen *g, int handle)
{
    for (int i = 0; i < g->S; i++)
        if (g->req[i].running && g->req[i].handle == handle)
            return &g->req[i];
    return NULL;
}

/* ---- admission ------------------------------------------------------------------ */

/* PaliGemma: request q's prefix (image tokens, then its prompt ids) into
 * the first free slot, which its beam 0 takes; the logits of its last
 * position into first_logits[rec]. */
static int prefill_gemma(pali_gen *g, const pali_request *q, int rec, prism_error *err)
{
    pali_model *m = g->m;
    const int N = m->n_image;
    int slot = 0;
    while (g->slot_used[slot])
        slot++;
    for (int i = 0; i < N; i++)
        g->prefix_ids[i] = paligemma_get_config(m->pg)->image_token_index;
    memcpy(g->prefix_ids + N, q->prompt_ids, (size_t)q->n_prompt * sizeof *g->prefix_ids);
    return paligemma_prefill_dev(m->pg, slot, q->pixels, g->prefix_ids, N + q->n_prompt,
                                 g->first_logits + (size_t)rec * m->vocab, err);
}

int pali_gen_start(pali_gen *g, const pali_request *reqs, int n, int *handles,
                   prism_error *err)
{
    pali_model *m = g->m;
    int need = 0;
    for (int i = 0; i < n; i++) {
        if (pali_request_check(m, &reqs[i], i, err))
            return -1;
        need += reqs[i].num_beams;
    }
    if (need > pali_gen_free_seqs(g) || n > pali_gen_free_requests(g))
        return prism_errorf(err, "no room: %d requests with %d sequences asked, %d requests "
                            "and %d sequences free", n, need, pali_gen_free_requests(g),
                            pali_gen_free_seqs(g));
    const double t0 = prism_now();
    int cross[m->lim.max_batch];
    gen_req *rs[m->lim.max_batch];
    for (int i0 = 0; i0 < n; i0 += m->lim.max_batch) {
        const int B = n - i0 < m->lim.max_batch ? n - i0 : m->lim.max_batch;
        /* reserve records and slots */
        for (int b = 0, ri = 0; b < B; b++) {
            while (g->req[ri].running)
                ri++;
            cross[b] = ri;
            rs[b] = &g->req[ri++];
        }
        if (m->t5 && pali_prefill(m, reqs + i0, B, g->cache, cross, NULL, NULL, err))
            return -1; /* requests of earlier chunks stay admitted */
        if (m->f2) {
            florence2_input in[m->lim.max_batch];
            for (int b = 0; b < B; b++)
                in[b] = (florence2_input){reqs[i0 + b].pixels, reqs[i0 + b].prompt_ids,
                                          reqs[i0 + b].n_prompt};
            if (florence2_encode(m->f2, in, B, g->cache, cross, NULL, NULL, err))
                return -1;
        }
        for (int b = 0; b < B; b++) {
            const pali_request *q = &reqs[i0 + b];
            gen_req *r = rs[b];
            if (m->pg && prefill_gemma(g, q, (int)(r - g->req), err))
                return -1; /* the requests before it stay admitted */
            r->n_prefix = m->n_image + q->n_prompt;
            r->running = true;
            r->handle = g->next_handle++;
            if (g->next_handle <= 0)
                g->next_handle = 1;
            r->user = q->user;
            r->K = q->num_beams;
            r->max_new = q->max_new_tokens;
            r->lp = q->length_penalty;
            r->cur = 0;
            r->unsat = true;
            r->t_submit = q->t_submit > 0 ? q->t_submit : t0;
            r->t_first = 0;
            r->nrows = 0; /* no logits until its first step */
            for (int k = 0, s = 0; k < r->K; k++) {
                while (g->slot_used[s])
                    s++;
                g->slot_used[s] = true;
                r->slot[k] = s;
                /* transformers: beam 0 starts at 0, the others at -1e9, so the
                 * first step expands beam 0 alone */
                r->score[k] = k == 0 ? 0.0f : NEG_INF_SCORE;
                r->fscore[k] = NEG_INF_SCORE;
                r->fflag[k] = false;
                r->flen[k] = 0;
            }
            if (handles)
                handles[i0 + b] = r->handle;
            g->stats.requests_started++;
            g->stats.running_requests++;
            g->stats.running_sequences += r->K;
        }
    }
    g->stats.prefill_seconds_total += prism_now() - t0;
    return 0;
}

/* ---- finishing ------------------------------------------------------------------ */

static int push_result(pali_gen *g, gen_req *r, const int32_t *ids, int n, pali_finish finish,
                       float score)
{
    if (g->n_done == g->cap_done) {
        int c = g->cap_done ? 2 * g->cap_done : 16;
        pali_result *d = realloc(g->done, (size_t)c * sizeof *d);
        if (!d)
            return -1;
        g->done = d;
        g->cap_done = c;
    }
    pali_result *res = &g->done[g->n_done];
    res->ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *res->ids);
    if (!res->ids)
        return -1;
    memcpy(res->ids, ids, (size_t)n * sizeof *ids);
    res->n_ids = n;
    res->handle = r->handle;
    res->user = r->user;
    res->finish = finish;
    res->score = score;
    const double now = prism_now();
    res->ttft_seconds = r->t_first > 0 ? r->t_first - r->t_submit : 0;
    res->total_seconds = now - r->t_submit;
    g->n_done++;
    return 0;
}

static int retire(pali_gen *g, gen_req *r, const int32_t *ids, int n, pali_finish finish,
                  float score, prism_error *err)
{
    int rc = push_result(g, r, ids, n, finish, score) ? prism_errorf(err, "out of memory") : 0;
    for (int k = 0; k < r->K; k++)
        g->slot_used[r->slot[k]] = false;
    r->running = false;
    g->stats.requests_finished++;
    g->stats.running_requests--;
    g->stats.running_sequences -= r->K;
    return rc;
}

int pali_gen_take(pali_gen *g, pali_result *out)
{
    if (g->n_done == 0)
        return 0;
    *out = g->done[0];
    memmove(g->done, g->done + 1, (size_t)(g->n_done - 1) * sizeof *g->done);
    g->n_done--;
    return 1;
}

int pali_gen_cancel(pali_gen *g, int handle)
{
    gen_req *r = find(g, handle);
    prism_error err;
    if (!r)
        return -1;
    if (r->K == 1 || r->fflag[0])
        return retire(g, r, r->K == 1 ? r->tok : r->ftok, r->K == 1 ? r->cur : r->flen[0],
                      PALI_FINISH_CANCELLED, r->K == 1 ? 0.0f : r->fscore[0], &err);
    return retire(g, r, r->tok, r->cur, PALI_FINISH_CANCELLED, r->score[0], &err);
}

int pali_gen_tokens(const pali_gen *g, int handle, const int32_t **ids, int *n)
{
    gen_req *r = find(g, handle);
    if (!r || r->K != 1)
        return -1;
    *ids = r->tok;
    *n = r->cur;
    return 0;
}

int pali_gen_logits(pali_gen *g, int handle, float *out, prism_error *err)
{
    gen_req *r = NULL;
    for (int i = 0; i < g->S; i++) /* also right after the request finished */
        if (g->req[i].handle == handle)
            r = &g->req[i];
    if (!r || r->nrows < 1)
        return prism_errorf(err, "request %d has no logits", handle);
    prism_backend *be = g->m->be;
    const int V = g->m->vocab;
    if (be->ops->download(be, out, g->logits + (size_t)r->row0 * V,
                          (size_t)V * sizeof(float)))
        return prism_backend_failed(be, err, "download");
    return 0;
}

/* ---- one step ---------------------------------------------------------------------- */

/* torch.topk order: larger first; equal scores by flat index. */
static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* The greedy update: argmax, append, stop at </s> or the length limit. */
static int step_greedy(pali_gen *g, gen_req *r, prism_error *err)
{
    const int32_t t = g->idx_host[r->base];
    r->tok[r->cur++] = t;
    if (pali_is_eos(g->m, t))
        return retire(g, r, r->tok, r->cur, PALI_FINISH_EOS, 0.0f, err);
    if (r->cur >= r->max_new)
        return retire(g, r, r->tok, r->cur, PALI_FINISH_LENGTH, 0.0f, err);
    return 0;
}

/* A beam's cached history into another slot: T5's decoder positions
 * 0..cur (this step's included); PaliGemma's prefix and the tokens fed so
 * far (the newest token enters the cache at the next step). */
static int copy_history(pali_gen *g, const gen_req *r, int dst, int src, prism_error *err)
{
    if (g->m->pg)
        return gemma_cache_copy(paligemma_decoder(g->m->pg), dst, src, r->n_prefix + r->cur, err);
    return encdec_cache_copy(g->cache, dst, src, r->cur + 1, err);
}

/* One beam-search step of transformers' _beam_search for one request
 * (batch item), cur_len = r->cur + 1 (the decoder start token counts),
 * decoder_prompt_len = 1, max_length = max_new + 1. */
static int step_beam(pali_gen *g, gen_req *r, int V, prism_error *err)
{
    const int K = r->K, K2 = 2 * K, T = g->Tmax;
    /* b. accumulated log-probs: log_softmax(logits) + running_beam_scores;
     * c. top 2K over K·V. A beam's own top 2K contain every candidate of
     *    it that can make the global top 2K. On the first step only beam 0
     *    ran: the others score −1e9 + logprob and cannot be among the top 2K
     *    (V ≥ 2K is checked at load). */
    int nc = 0;
    for (int b = 0; b < r->nrows; b++)
        for (int i = 0; i < K2; i++) {
            cand *c = &g->cands[nc++];
            const size_t at = r->base + (size_t)b * K2 + i;
            c->score = g->val_host[at] + r->score[b];
            c->parent = b;
            c->token = g->idx_host[at];
            c->order = (int64_t)b * V + c->token;
        }
    qsort(g->cands, (size_t)nc, sizeof *g->cands, cand_cmp);
    cand *top = g->cands; /* the first 2K, sorted */
    const int gen_len = r->cur + 1; /* cur_len + 1 - decoder_prompt_len */
    /* d. stopping criteria of each candidate sequence (length cur_len + 1) */
    bool hits[2 * g->Kmax], all_hit = true;
    for (int i = 0; i < K2; i++) {
        hits[i] = pali_is_eos(g->m, top[i].token) || gen_len >= r->max_new;
        all_hit &= hits[i];
    }
    /* f. finished hypotheses: merge K old with the 2K new, keep the top K.
     * New ones: score / gen_len^lp (Python float power, applied in float32),
     * −1e9 when improvement is impossible, −1e9 unless among the first K and
     * hitting a stop. Computed before e. reorders the running beams. */
    const float denom = (float)pow((double)gen_len, (double)r->lp);
    cand *mg = g->top; /* [3K]: reuse .parent as the source index */
    int nm = 0;
    for (int k = 0; k < K; k++)
        mg[nm++] = (cand){.score = r->fscore[k], .parent = k, .order = k};
    for (int i = 0; i < K2; i++) {
        float s = top[i].score / denom;
        if (!r->unsat)
            s += NEG_INF_SCORE;
        if (!(hits[i] && i < K))
            s += NEG_INF_SCORE;
        mg[nm++] = (cand){.score = s, .parent = K + i, .order = K + i};
    }
    qsort(mg, (size_t)nm, sizeof *mg, cand_cmp);
    /* new finished set into tmp (sources may be old finished entries) */
    float nf_score[g->Kmax];
    bool nf_flag[g->Kmax];
    int nf_len[g->Kmax];
    for (int k = 0; k < K; k++) {
        const int src = mg[k].parent;
        int32_t *dst = g->tmp_tok + (size_t)k * T;
        nf_score[k] = mg[k].score;
        if (src < K) {
            nf_flag[k] = r->fflag[src];
            nf_len[k] = r->flen[src];
            memcpy(dst, r->ftok + (size_t)src * T, (size_t)r->flen[src] * sizeof *dst);
        } else {
            const cand *c = &top[src - K];
            nf_flag[k] = hits[src - K] && src - K < K;
            nf_len[k] = gen_len;
            memcpy(dst, r->tok + (size_t)c->parent * T, (size_t)r->cur * sizeof *dst);
            dst[r->cur] = c->token;
        }
    }
    for (int k = 0; k < K; k++) {
        r->fscore[k] = nf_score[k];
        r->fflag[k] = nf_flag[k];
        r->flen[k] = nf_len[k];
        memcpy(r->ftok + (size_t)k * T, g->tmp_tok + (size_t)k * T,
               (size_t)nf_len[k] * sizeof *r->ftok);
    }
    /* e. running beams for the next step: top K of score − 1e9·hit */
    cand run[2 * g->Kmax];
    for (int i = 0; i < K2; i++) {
        run[i] = top[i];
        run[i].score = top[i].score + (hits[i] ? NEG_INF_SCORE : 0.0f);
        run[i].order = i;
    }
    qsort(run, (size_t)K2, sizeof *run, cand_cmp);
    /* Slots: a parent's first child takes over its slot; further children
     * take the slots of parents without children and copy the KV prefix
     * (positions 0..cur, this step's included). */
    int children[g->Kmax];
    memset(children, 0, sizeof children);
    for (int k = 0; k < K; k++)
        children[run[k].parent]++;
    int spare[g->Kmax], n_spare = 0;
    for (int b = 0; b < K; b++) /* beams that did not run, or have no child */
        if (b >= r->nrows || children[b] == 0)
            spare[n_spare++] = r->slot[b];
    bool taken[g->Kmax];
    memset(taken, 0, sizeof taken);
    for (int k = 0; k < K; k++) {
        const int p = run[k].parent;
        int slot;
        if (!taken[p]) {
            taken[p] = true;
            slot = r->slot[p];
        } else {
            slot = spare[--n_spare];
            if (copy_history(g, r, slot, r->slot[p], err))
                return -1;
        }
        g->tmp_slot[k] = slot;
        g->tmp_score[k] = run[k].score;
        int32_t *dst = g->tmp_tok + (size_t)k * T;
        memcpy(dst, r->tok + (size_t)p * T, (size_t)r->cur * sizeof *dst);
        dst[r->cur] = run[k].token;
    }
    for (int k = 0; k < K; k++) {
        r->slot[k] = g->tmp_slot[k];
        r->score[k] = g->tmp_score[k];
        memcpy(r->tok + (size_t)k * T, g->tmp_tok + (size_t)k * T,
               (size_t)(r->cur + 1) * sizeof *r->tok);
    }
    r->cur++;
    /* g. the early-stop heuristic (early_stopping=False): the best running
     * score at the current length against the worst finished score */
    const float best = r->score[0] / (float)pow((double)r->cur, (double)r->lp);
    float worst_all = r->fscore[0];
    for (int k = 1; k < K; k++)
        worst_all = r->fscore[k] < worst_all ? r->fscore[k] : worst_all;
    bool improvable = false;
    for (int k = 0; k < K; k++)
        improvable |= best > (r->fflag[k] ? worst_all : NEG_INF_SCORE);
    r->unsat = r->unsat && improvable;
    if (!r->unsat || all_hit) {
        const int n = r->flen[0];
        pali_finish f = n > 0 && pali_is_eos(g->m, r->ftok[n - 1]) ? PALI_FINISH_EOS
                                                                    : PALI_FINISH_LENGTH;
        return retire(g, r, r->ftok, n, f, r->fscore[0], err);
    }
    return 0;
}

/* T5: one decoder position of every running beam, rows in request order. */
static int rows_t5(pali_gen *g, prism_error *err)
{
    const t5_config *tc = &g->m->cfg.text;
    int n = 0;
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        if (!r->running)
            continue;
        r->row0 = n;
        r->nrows = r->cur == 0 ? 1 : r->K; /* the first step expands beam 0 alone */
        for (int b = 0; b < r->nrows; b++)
            g->seqs[n++] = (encdec_seq){
                .slot = r->slot[b], .cross_slot = i, .pos = r->cur,
                .token = r->cur == 0 ? tc->decoder_start_token_id
                                     : r->tok[(size_t)b * g->Tmax + r->cur - 1],
            };
    }
    if (n > 0 && t5_decode_step(g->m->t5, g->cache, g->seqs, n, err))
        return -1;
    g->logits = t5_logits(g->m->t5);
    return n;
}

/* Florence-2 (BART): as rows_t5. */
static int rows_bart(pali_gen *g, prism_error *err)
{
    bart_model *lm = florence2_bart(g->m->f2);
    int n = 0;
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        if (!r->running)
            continue;
        r->row0 = n;
        r->nrows = r->cur == 0 ? 1 : r->K;
        for (int b = 0; b < r->nrows; b++)
            g->seqs[n++] = (encdec_seq){
                .slot = r->slot[b], .cross_slot = i, .pos = r->cur,
                .token = r->cur == 0 ? g->m->dec_start
                                     : r->tok[(size_t)b * g->Tmax + r->cur - 1],
            };
    }
    if (n > 0 && bart_decode_step(lm, g->cache, g->seqs, n, err))
        return -1;
    g->logits = bart_logits(lm);
    return n;
}

/* transformers' NoRepeatNGramLogitsProcessor for one row: the tokens that
 * would repeat an n-gram of the sequence (decoder start token, then the
 * row's tokens); returns how many, written to out. */
static int banned_tokens(const pali_gen *g, const gen_req *r, int b, int32_t *out)
{
    const int n = g->m->no_repeat_ngram, len = r->cur + 1;
    if (n <= 0 || len + 1 < n)
        return 0;
    const int32_t *t = r->tok + (size_t)b * g->Tmax; /* seq[i] = i ? t[i - 1] : start */
#define SEQ(i) ((i) == 0 ? g->m->dec_start : t[(i) - 1])
    int nb = 0;
    for (int i = 0; i + n <= len; i++) { /* n-gram at i: its first n − 1 against the tail */
        bool same = true;
        for (int j = 0; j < n - 1 && same; j++)
            same = SEQ(i + j) == SEQ(len - n + 1 + j);
        if (same)
            out[nb++] = SEQ(i + n - 1);
    }
#undef SEQ
    return nb;
}

/* The forced token of a request at this step, or -1. */
static int32_t forced_token(const pali_gen *g, const gen_req *r)
{
    if (r->cur == 0 && g->m->forced_bos >= 0)
        return g->m->forced_bos;
    if (r->cur == r->max_new - 1 && g->m->forced_eos >= 0)
        return g->m->forced_eos;
    return -1;
}

/* After the top-k: each row of r holds kk candidates at base + b·kk;
 * compacts them to k per row at base + b·k, dropping banned tokens, or
 * replaces them by the forced token (log-probability 0) and −inf fillers. */
static void process(pali_gen *g, gen_req *r, int row_first, int k, int kk)
{
    const int32_t forced = forced_token(g, r);
    for (int b = 0; b < r->nrows; b++) {
        int32_t *idx = g->idx_host + r->base, *bn = g->banned + (size_t)(row_first + b) * g->Tmax;
        float *val = g->val_host + r->base;
        const int nb = g->n_banned[row_first + b];
        if (forced >= 0) {
            idx[(size_t)b * k] = forced;
            val[(size_t)b * k] = 0.0f;
            for (int i = 1, t = 0; i < k; i++, t++) {
                t += t == forced;
                idx[(size_t)b * k + i] = t;
                val[(size_t)b * k + i] = -INFINITY;
            }
            continue;
        }
        int w = 0;
        for (int i = 0; i < kk && w < k; i++) {
            const int32_t tok = idx[(size_t)b * kk + i];
            bool ban = false;
            for (int j = 0; j < nb && !ban; j++)
                ban = bn[j] == tok;
            if (ban)
                continue;
            idx[(size_t)b * k + w] = tok;
            val[(size_t)b * k + w] = val[(size_t)b * kk + i];
            w++;
        }
    }
}

/* PaliGemma: the beams that have tokens to feed go through one
 * gemma_decode (rows first); requests at their first step take their
 * prefill's logits (rows after them). */
static int rows_gemma(pali_gen *g, prism_error *err)
{
    pali_model *m = g->m;
    prism_backend *be = m->be;
    const size_t V = (size_t)m->vocab;
    int n = 0;
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        if (!r->running || r->cur == 0)
            continue;
        r->row0 = n;
        r->nrows = r->K;
        for (int b = 0; b < r->K; b++)
            g->gtoks[n++] = (gemma_token){.slot = r->slot[b], .pos = r->n_prefix + r->cur - 1,
                                          .token = r->tok[(size_t)b * g->Tmax + r->cur - 1]};
    }
    /* rotary positions count from 1, as in the prefill */
    if (n > 0 && gemma_decode(paligemma_decoder(m->pg), g->gtoks, n, 1, g->step_logits, err))
        return -1;
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        if (!r->running || r->cur != 0)
            continue;
        r->row0 = n++;
        r->nrows = 1;
        PRISM_CK(be->ops->copy_rows(be, g->step_logits + (size_t)r->row0 * V, V,
                                    g->first_logits + (size_t)i * V, V, 1, V), "first logits");
    }
    g->logits = g->step_logits;
    return n;
}

int pali_gen_step(pali_gen *g, prism_error *err)
{
    pali_model *m = g->m;
    prism_backend *be = m->be;
    const int V = m->vocab;
    const double t0 = prism_now();
    const int n = m->pg ? rows_gemma(g, err) : m->f2 ? rows_bart(g, err) : rows_t5(g, err);
    if (n <= 0)
        return n;
    const float *logits = g->logits;
    int kks[g->S];
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        if (!r->running)
            continue;
        const int k = r->K == 1 ? 1 : 2 * r->K;
        int most = 0; /* the row with the most banned tokens sets the extra candidates */
        for (int b = 0; b < r->nrows; b++) {
            const int row = r->row0 + b;
            g->n_banned[row] = banned_tokens(g, r, b, g->banned + (size_t)row * g->Tmax);
            most = g->n_banned[row] > most ? g->n_banned[row] : most;
        }
        const int kk = k + most < V ? k + most : V;
        kks[i] = kk;
        r->base = (size_t)r->row0 * g->KW; /* disjoint: kk ≤ KW per row */
        if (be->ops->topk(be, g->idx_dev + r->base, kk == 1 ? NULL : g->val_dev + r->base,
                          logits + (size_t)r->row0 * V, r->nrows, V, kk, r->K > 1))
            return prism_backend_failed(be, err, "topk");
    }
    if (be->ops->download(be, g->idx_host, g->idx_dev, (size_t)n * g->KW * sizeof(int32_t)) ||
        be->ops->download(be, g->val_host, g->val_dev, (size_t)n * g->KW * sizeof(float)))
        return prism_backend_failed(be, err, "download");
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        const int k = r->K == 1 ? 1 : 2 * r->K;
        if (r->running && (kks[i] != k || forced_token(g, r) >= 0))
            process(g, r, r->row0, k, kks[i]);
    }
    const double now = prism_now();
    for (int i = 0; i < g->S; i++) {
        gen_req *r = &g->req[i];
        if (!r->running)
            continue;
        if (r->cur == 0) {
            r->t_first = now;
            g->stats.ttft_count++;
            g->stats.ttft_seconds_total += now - r->t_submit;
            g->stats.last_ttft_seconds = now - r->t_submit;
        }
        g->stats.generated_tokens++;
        if (r->K == 1 ? step_greedy(g, r, err) : step_beam(g, r, V, err))
            return -1;
    }
    const double dt = prism_now() - t0;
    g->stats.steps++;
    g->stats.step_seconds_total += dt;
    g->stats.last_step_seconds = dt;
    return 0;
}

/* ---- run to completion ------------------------------------------------------------- */

int pali_generate(pali_model *m, const pali_request *reqs, int n, pali_result *results,
                  prism_error *err)
{
    pali_gen *g;
    if (pali_gen_create(&g, m, err))
        return -1;
    int *handles = malloc((size_t)(n > 0 ? n : 1) * sizeof *handles);
    int next = 0, got = 0, rc = 0;
    if (!handles)
        rc = prism_errorf(err, "out of memory");
    for (int i = 0; i < n; i++)
        results[i].ids = NULL;
    while (rc == 0 && got < n) {
        /* admit as many waiting requests as fit, in order */
        int cnt = 0, seqs = 0;
        while (next + cnt < n && cnt < pali_gen_free_requests(g) &&
               seqs + reqs[next + cnt].num_beams <= pali_gen_free_seqs(g)) {
            seqs += reqs[next + cnt].num_beams;
            cnt++;
        }
        if (cnt > 0) {
            if ((rc = pali_gen_start(g, reqs + next, cnt, handles + next, err)) != 0)
                break;
            next += cnt;
        } else if (pali_gen_running(g) == 0) {
            rc = pali_request_check(m, &reqs[next], next, err) ? -1
                 : prism_errorf(err, "request %d needs %d sequences; the model allows %d", next,
                                reqs[next].num_beams, m->lim.max_seqs);
            break;
        }
        if ((rc = pali_gen_step(g, err)) != 0)
            break;
        pali_result res;
        while (pali_gen_take(g, &res)) {
            for (int i = 0; i < next; i++)
                if (handles[i] == res.handle) {
                    results[i] = res;
                    got++;
                    break;
                }
        }
    }
    if (rc)
        for (int i = 0; i < n; i++)
            pali_result_free(&results[i]);
    free(handles);
    pali_gen_free(g);
    return rc;
}
