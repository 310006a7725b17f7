/* pali.h - PaLI-3-style captioning and VQA: SigLIP vision tower + linear
 * projector + T5/UL2 encoder-decoder, and batched generation over it.
 *
 * A pali3 model directory (docs/pali3.md) holds config.json with
 * model_type "pali3", vision_config (a SiglipVisionConfig), text_config (a
 * T5Config), image_token_count and prompt_templates; model.safetensors (or
 * shards) with vision_model.*, multi_modal_projector.linear.{weight,bias}
 * and language_model.* (T5ForConditionalGeneration names); spiece.model.
 *
 * Generation (pali_gen_*) is built for a server's engine worker: a running
 * batch of requests advances one decoder step per pali_gen_step call, each
 * request stops on its own (</s>, max_new_tokens, or beam search's early
 * stop), and new requests join at any step boundary with pali_gen_start,
 * which runs their vision tower, projector and encoder once. Between two
 * calls the worker is free to run other batches (embeddings). Every buffer
 * (activations, KV caches, beam bookkeeping) is allocated by pali_load and
 * pali_gen_create; steps allocate nothing but result token arrays.
 *
 * Decoding follows transformers' generate(): greedy (num_beams 1) takes the
 * argmax; beam search is transformers 5's vectorised BeamSearch with
 * early_stopping=False (its default): 2·num_beams candidates per step, a
 * finished hypothesis scored sum_logprobs / generated_len^length_penalty
 * (generated_len counts </s>), the "heuristic" early stop. The decoder
 * starts from decoder_start_token_id (0) and the result excludes it.
 *
 * A PaliGemma checkpoint (model_type paligemma) loads through the same
 * pali_load and generates through the same pali_gen_* calls: prompts are
 * its text ids (<bos>, the prompt, "\n"; pali_tokenize makes them), the
 * image tokens are prepended by the engine, the decoder is Gemma with a
 * prefix-LM cache per sequence (pali_gen.c), and generation stops at the
 * checkpoint's eos_token_id (generation_config.json; a list is honoured).
 * pali_encode and the T5 fields of pali_config do not apply to it.
 *
 * A Florence-2 checkpoint (model_type florence2, docs/florence2.md) loads
 * and generates through the same calls too: its prompts are BART ids (<s>,
 * the prompt, </s>; pali_tokenize with the directory's byte-level BPE), the
 * engine puts the image tokens in front, and generation follows its
 * generation_config.json (forced <s> first and </s> last, no repeated
 * n-grams). Results are decoded with pali_decode_florence2.
 *
 * A pali_model and its pali_gen are used by one thread at a time.
 */
#ifndef PRISM_PALI_H
#define PRISM_PALI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "prism_error.h"
#include "siglip_config.h"
#include "t5_config.h"

#define PALI_TEMPLATE_MAX 256

typedef struct pali_config {
    siglip_vision_config vision;
    t5_config text;
    int image_token_count;                    /* (image_size / patch_size)² */
    char caption_template[PALI_TEMPLATE_MAX]; /* "caption {lang}" */
    char vqa_template[PALI_TEMPLATE_MAX];     /* "answer {lang} {question}" */
} pali_config;

/* What pali_load allocates for; requests beyond these are refused. */
typedef struct pali_limits {
    int max_batch;         /* images through the vision tower + encoder together (8) */
    int max_seqs;          /* decoder sequences in one step, beams included (16) */
    int max_new_tokens;    /* per request (128) */
    int max_prompt_tokens; /* prompt ids per request, </s> included (64) */
    int max_beams;         /* num_beams per request (8) */
} pali_limits;

typedef struct pali_info {
    int64_t n_params, n_tensors, n_unused;
    int n_files;
    bool lm_head_tied;
    bool has_tokenizer;
    bool paligemma;        /* model_type paligemma: detection prompts ("detect cat ; dog") */
    bool florence2;        /* model_type florence2: task prompts, <loc_N> results */
} pali_info;

typedef struct pali_model pali_model;

void pali_limits_default(pali_limits *lim);

/* Whether DIR/config.json says model_type "pali3" (false when unreadable). */
bool pali_is_model_dir(const char *dir);
/* Whether DIR holds a model pali_load serves: model_type "pali3",
 * "paligemma" (PaliGemma and PaliGemma 2, docs/paligemma.md) or
 * "florence2" (docs/florence2.md). */
bool pali_is_generation_dir(const char *dir);

/* Reads a pali3 config.json (errors name the file and key). */
int pali_config_load(pali_config *cfg, const char *path, prism_error *err);
int pali_config_parse(pali_config *cfg, const char *json, const char *name, prism_error *err);

int pali_load(pali_model **out, const char *dir, prism_backend *be, const pali_limits *lim,
              prism_error *err);
void pali_free(pali_model *m);

/* The model's config. PaliGemma: its SigLIP tower and image tokens;
 * Florence-2: only vision.image_size and vision.num_channels (the pixels
 * a request passes) and image_token_count are set. */
const pali_config *pali_get_config(const pali_model *m);
/* A PaliGemma model's decoder config (gemma.h), NULL for pali3. */
struct gemma_config;
const struct gemma_config *pali_get_gemma_config(const pali_model *m);
const pali_limits *pali_get_limits(const pali_model *m);
const pali_info *pali_get_info(const pali_model *m);

/* The prompt text of a task from the config's templates: {lang} and
 * {question} are replaced (question may be NULL for captions). Florence-2
 * has no language or question templates: a caption is the task token
 * "<CAPTION>" (which Florence2Processor, florence2_build_prompt, expands
 * into its prompt before pali_tokenize), a question is the question as
 * given; lang is ignored. */
typedef enum pali_task { PALI_TASK_CAPTION, PALI_TASK_VQA } pali_task;
int pali_prompt_text(const pali_model *m, pali_task task, const char *lang,
                     const char *question, char *out, size_t out_len, prism_error *err);

/* T5Tokenizer's encoding of a prompt with the model's spiece.model:
 * SentencePiece encode, then </s> (no SigLIP-style lowercasing or
 * punctuation removal). Fails when the text needs more than max_ids ids
 * (told by a prefix of a long text, whose tail is never encoded) or the
 * model directory has no spiece.model. PaliGemma: <bos>, the prompt, "\n"
 * (Gemma BPE); -2 when the text spells the image token "<image>".
 * Florence-2: the text part of Florence2Processor's input_ids for a prompt
 * already constructed (the processor's task expansion is not done here):
 * BartTokenizer's encoding of "<s>" + text + "</s>" without added special
 * tokens, so added tokens written in the text (<loc_5>, </s>) take their
 * ids as the processor gives them; -2 when the text spells "<image>". */
int pali_tokenize(const pali_model *m, const char *text, int32_t *ids, int max_ids, int *n,
                  prism_error *err);
/* T5Tokenizer.decode(ids, skip_special_tokens=True): pad, </s>, <unk> and
 * ids past the SentencePiece vocabulary (the <extra_id_N> sentinels) are
 * dropped, the rest SentencePiece-decoded. *out is malloc'd. PaliGemma:
 * Gemma's decode with special tokens skipped. Florence-2:
 * pali_decode_florence2 with raw false. */
int pali_detokenize(const pali_model *m, const int32_t *ids, int n, char **out,
                    prism_error *err);

/* A Florence-2 model's text of generated ids (pali_result.ids):
 * BartTokenizer.decode(ids, skip_special_tokens=!raw) of transformers 5.
 * raw true keeps the special tokens (<s>, </s>, <pad>, <loc_N>, ...):
 * the text processor.batch_decode(generated_ids, skip_special_tokens=False)
 * gives, which post_process_generation parses (florence2_post_process);
 * raw false drops them (the plain answer). Ids past the tokenizer but
 * inside the model's vocabulary (padding rows) are left out, as the
 * reference does; a negative id or one past the model's vocabulary is an
 * error. *out is malloc'd and NUL-terminated. */
int pali_decode_florence2(const pali_model *m, const int32_t *ids, int n, bool raw, char **out,
                          prism_error *err);

/* Encoder states of one request (tests, debugging): the T5 encoder output
 * [image_token_count + n_prompt, d_model] (host) for preprocessed pixels
 * [C, S, S] and prompt ids. */
int pali_encode(pali_model *m, const float *pixels, const int32_t *prompt_ids, int n_prompt,
                float *states, prism_error *err);

/* ---- generation -------------------------------------------------------------- */

typedef struct pali_request {
    const float *pixels;       /* [C, S, S] host, preprocessed (SigLIP normalisation) */
    const int32_t *prompt_ids; /* tokenized prompt, </s> included */
    int n_prompt;
    int max_new_tokens;        /* 1..limits.max_new_tokens */
    int num_beams;             /* 1: greedy */
    float length_penalty;      /* beam search only; transformers' default 1.0 */
    double t_submit;           /* prism_now() at arrival (time to first token); 0: now */
    void *user;                /* the caller's, returned in the result */
} pali_request;

typedef enum pali_finish {
    PALI_FINISH_EOS,       /* ended with </s> (included in ids) */
    PALI_FINISH_LENGTH,    /* max_new_tokens reached */
    PALI_FINISH_CANCELLED, /* pali_gen_cancel */
} pali_finish;

typedef struct pali_result {
    int handle;
    void *user;
    int32_t *ids;  /* generated ids (malloc'd; pali_result_free), </s> included */
    int n_ids;
    pali_finish finish;
    float score;           /* beam search: the hypothesis score; greedy: 0 */
    double ttft_seconds;   /* t_submit → first token */
    double total_seconds;  /* t_submit → finished */
} pali_result;

/* Counters a server exports (monotonic unless noted). */
typedef struct pali_gen_stats {
    uint64_t requests_started, requests_finished;
    uint64_t generated_tokens;   /* output positions produced (one per request per step) */
    uint64_t steps;
    double step_seconds_total;   /* decode steps, wall time */
    double last_step_seconds;    /* gauge */
    double prefill_seconds_total; /* pali_gen_start: vision + projector + encoder */
    uint64_t ttft_count;
    double ttft_seconds_total;
    double last_ttft_seconds;    /* gauge */
    int running_requests;        /* gauge */
    int running_sequences;       /* gauge: beams included */
} pali_gen_stats;

typedef struct pali_gen pali_gen;

/* A running batch on m, with KV caches for limits.max_seqs sequences. */
int pali_gen_create(pali_gen **out, pali_model *m, prism_error *err);
void pali_gen_free(pali_gen *g);

/* How many more sequences (a request needs num_beams) and requests can join now. */
int pali_gen_free_seqs(const pali_gen *g);
int pali_gen_free_requests(const pali_gen *g);

/* Admits n requests (all or none): validates them, runs vision tower,
 * projector and encoder (in chunks of max_batch) and computes their cross-
 * attention keys/values; handles[i] (may be NULL) identifies request i. */
int pali_gen_start(pali_gen *g, const pali_request *reqs, int n, int *handles,
                   prism_error *err);
/* One decoder step for every running request (no-op when none). */
int pali_gen_step(pali_gen *g, prism_error *err);
/* Pops one finished request's result: 1 when one was taken, 0 when none. */
int pali_gen_take(pali_gen *g, pali_result *out);
void pali_result_free(pali_result *r);
/* Stops a running request now; its result (finish CANCELLED, the tokens so
 * far of its best beam) becomes available to pali_gen_take. 0, or -1 when
 * the handle is not running. */
int pali_gen_cancel(pali_gen *g, int handle);
/* A running greedy request's tokens so far (streaming); -1 when the handle
 * is not running or uses beam search (its tokens are final only at the end). */
int pali_gen_tokens(const pali_gen *g, int handle, const int32_t **ids, int *n);
/* The logits [V] of a request's first beam at its last step (tests). */
int pali_gen_logits(pali_gen *g, int handle, float *out, prism_error *err);
int pali_gen_running(const pali_gen *g);
const pali_gen_stats *pali_gen_get_stats(const pali_gen *g);

/* Runs n requests to completion on a fresh batch, admitting them as
 * sequences free up (the CLI and the tests use it); results[i] belongs to
 * reqs[i]. */
int pali_generate(pali_model *m, const pali_request *reqs, int n, pali_result *results,
                  prism_error *err);

#endif
