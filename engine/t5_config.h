/* t5_config.h - T5Config (T5, T5 v1.1, flan-T5, UL2) as read from JSON.
 *
 * Every field starts at transformers' T5Config default and is overwritten
 * only by keys the file has (hub files omit defaults). Two derived values
 * follow transformers 5's configuration_t5.py exactly:
 *   - feed_forward_proj "ACT" or "gated-ACT" gives the activation and
 *     is_gated_act; "gated-gelu" means gelu_new (the tanh approximation);
 *   - scale_decoder_outputs (the d_model^-0.5 rescale before the LM head):
 *     the file's own scale_decoder_outputs when it has one, else true
 *     unless tie_word_embeddings is false.
 * Whether the LM head is lm_head.weight or shared.weight is decided by the
 * checkpoint (t5.c), not by the config: transformers 5 always ties, except
 * when lm_head.weight is present with other values than shared.weight.
 */
#ifndef PRISM_T5_CONFIG_H
#define PRISM_T5_CONFIG_H

#include <stdbool.h>

#include "backend.h"
#include "json.h"
#include "prism_error.h"

typedef struct t5_config {
    int vocab_size;                      /* 32128 */
    int d_model;                         /* 512 */
    int d_kv;                            /* 64: per-head width; H·d_kv need not be d_model */
    int d_ff;                            /* 2048 */
    int num_layers;                      /* 6 (encoder) */
    int num_decoder_layers;              /* = num_layers when absent */
    int num_heads;                       /* 8 */
    int relative_attention_num_buckets;  /* 32 */
    int relative_attention_max_distance; /* 128 */
    float layer_norm_epsilon;            /* 1e-6 */
    prism_act dense_act;                 /* from feed_forward_proj ("relu") */
    bool is_gated_act;
    bool scale_decoder_outputs;          /* true (tie_word_embeddings defaults to true) */
    int pad_token_id;                    /* 0 */
    int eos_token_id;                    /* 1 */
    int decoder_start_token_id;          /* = pad_token_id when absent (T5 hub files say 0) */
    char feed_forward_proj[32];          /* as written, for `prism info` */
} t5_config;

void t5_config_defaults(t5_config *c);

/* Reads a T5Config JSON object (a T5 config.json, or the text_config of a
 * pali3 config.json). `file` and `section` name the place in messages. */
int t5_config_from_json(t5_config *c, const json_value *obj, const char *file,
                        const char *section, prism_error *err);

/* Same, from JSON text (tests). */
int t5_config_parse(t5_config *c, const char *json, const char *name, prism_error *err);

/* The bucket of relative position rel = key − query, exactly as
 * transformers' T5Attention._relative_position_bucket computes it (float32
 * log, division by the double log(max_distance / max_exact) rounded to
 * float, truncation toward zero). */
int t5_relative_bucket(int rel, bool bidirectional, int num_buckets, int max_distance);

#endif
