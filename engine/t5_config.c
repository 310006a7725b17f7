/* t5_config.c - T5Config parsing with transformers' defaults, and the
 * relative-position bucket function. */
#include "t5_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WIDTH (1 << 16)
#define MAX_LAYERS 512
#define MAX_VOCAB (1 << 22)

void t5_config_defaults(t5_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 32128;
    c->d_model = 512;
    c->d_kv = 64;
    c->d_ff = 2048;
    c->num_layers = 6;
    c->num_decoder_layers = -1; /* resolved after parsing */
    c->num_heads = 8;
    c->relative_attention_num_buckets = 32;
    c->relative_attention_max_distance = 128;
    c->layer_norm_epsilon = 1e-6f;
    c->dense_act = PRISM_ACT_RELU;
    c->is_gated_act = false;
    c->scale_decoder_outputs = true;
    c->pad_token_id = 0;
    c->eos_token_id = 1;
    c->decoder_start_token_id = -1; /* resolved after parsing */
    snprintf(c->feed_forward_proj, sizeof c->feed_forward_proj, "relu");
}

typedef struct {
    const char *file, *section;
    prism_error *err;
} ctx;

static bool is_null(const json_value *v)
{
    return !v || v->type == JSON_NULL;
}

/* The key or, when absent, its transformers attribute_map alias. */
static const json_value *get2(const json_value *obj, const char *key, const char *alias)
{
    const json_value *v = json_get(obj, key);
    return is_null(v) && alias ? json_get(obj, alias) : v;
}

static int get_int(ctx *c, const json_value *obj, const char *key, const char *alias, int *out,
                   int lo, int hi)
{
    const json_value *v = get2(obj, key, alias);
    if (is_null(v))
        return 0;
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi)
        return prism_errorf(c->err, "%s: %s%s%s must be an integer in [%d, %d]", c->file,
                            c->section, *c->section ? "." : "", key, lo, hi);
    *out = (int)v->integer;
    return 0;
}

static int get_bool(ctx *c, const json_value *obj, const char *key, int *out)
{
    const json_value *v = json_get(obj, key);
    if (is_null(v))
        return 0;
    if (v->type != JSON_BOOL)
        return prism_errorf(c->err, "%s: %s%s%s must be true or false", c->file, c->section,
                            *c->section ? "." : "", key);
    *out = v->boolean;
    return 0;
}

static int parse_ffn(ctx *c, t5_config *t, const json_value *obj)
{
    const json_value *v = json_get(obj, "feed_forward_proj");
    if (is_null(v))
        return 0;
    if (v->type != JSON_STRING || v->length >= sizeof t->feed_forward_proj)
        return prism_errorf(c->err, "%s: %s%sfeed_forward_proj must be a short string", c->file,
                            c->section, *c->section ? "." : "");
    const char *s = v->string, *dash = strchr(s, '-');
    const char *act = s;
    bool gated = false;
    if (dash) {
        if ((size_t)(dash - s) != 5 || strncmp(s, "gated", 5) != 0 || strchr(dash + 1, '-'))
            return prism_errorf(c->err, "%s: %s%sfeed_forward_proj '%s' is not of the form "
                                "'ACT' or 'gated-ACT'", c->file, c->section,
                                *c->section ? "." : "", s);
        gated = true;
        act = dash + 1;
    }
    prism_act a;
    if (gated && strcmp(act, "gelu") == 0)
        a = PRISM_ACT_GELU_TANH; /* transformers: "gated-gelu" means gelu_new */
    else if (prism_act_parse(act, &a))
        return prism_errorf(c->err, "%s: %s%sfeed_forward_proj: unsupported activation '%s' "
                            "(relu, gelu, gelu_new, silu and their gated- forms)", c->file,
                            c->section, *c->section ? "." : "", act);
    t->dense_act = a;
    t->is_gated_act = gated;
    snprintf(t->feed_forward_proj, sizeof t->feed_forward_proj, "%s", s);
    return 0;
}

int t5_config_from_json(t5_config *t, const json_value *obj, const char *file,
                        const char *section, prism_error *err)
{
    t5_config_defaults(t);
    ctx c = {file, section, err};
    if (!obj || obj->type != JSON_OBJECT)
        return prism_errorf(err, "%s: %s must be a JSON object", file, *section ? section : "top level");
    const json_value *mt = json_get(obj, "model_type");
    if (!is_null(mt) && (mt->type != JSON_STRING ||
                         (strcmp(mt->string, "t5") != 0 && strcmp(mt->string, "mt5") != 0)))
        return prism_errorf(err, "%s: %s%smodel_type must be \"t5\" (T5, flan-T5, UL2) or \"mt5\" "
                            "(got %.40s)", file, section, *section ? "." : "",
                            mt->type == JSON_STRING ? mt->string : "not a string");
    const char *dot = *section ? "." : "";
    int tie = -1, scale = -1;
    const json_value *eos = json_get(obj, "eos_token_id");
    if (!is_null(eos) && eos->type == JSON_ARRAY) { /* a list: only one eos is supported */
        if (eos->count != 1)
            return prism_errorf(err, "%s: %s%seos_token_id: %zu end-of-sequence ids; prism "
                                "supports exactly one", file, section, dot, eos->count);
        eos = &eos->items[0];
    }
    if (!is_null(eos)) {
        if (eos->type != JSON_NUMBER || !eos->is_integer || eos->integer < 0 ||
            eos->integer >= MAX_VOCAB)
            return prism_errorf(err, "%s: %s%seos_token_id must be a token id", file, section,
                                dot);
        t->eos_token_id = (int)eos->integer;
    }
    if (get_int(&c, obj, "vocab_size", NULL, &t->vocab_size, 1, MAX_VOCAB) ||
        get_int(&c, obj, "d_model", "hidden_size", &t->d_model, 1, MAX_WIDTH) ||
        get_int(&c, obj, "d_kv", "head_dim", &t->d_kv, 1, MAX_WIDTH) ||
        get_int(&c, obj, "d_ff", NULL, &t->d_ff, 1, 4 * MAX_WIDTH) ||
        get_int(&c, obj, "num_layers", "num_hidden_layers", &t->num_layers, 1, MAX_LAYERS) ||
        get_int(&c, obj, "num_decoder_layers", NULL, &t->num_decoder_layers, 1, MAX_LAYERS) ||
        get_int(&c, obj, "num_heads", "num_attention_heads", &t->num_heads, 1, 1024) ||
        get_int(&c, obj, "relative_attention_num_buckets", NULL,
                &t->relative_attention_num_buckets, 2, 4096) ||
        get_int(&c, obj, "relative_attention_max_distance", NULL,
                &t->relative_attention_max_distance, 1, 1 << 20) ||
        get_int(&c, obj, "pad_token_id", NULL, &t->pad_token_id, 0, MAX_VOCAB) ||
        get_int(&c, obj, "decoder_start_token_id", NULL, &t->decoder_start_token_id, 0,
                MAX_VOCAB) ||
        get_bool(&c, obj, "tie_word_embeddings", &tie) ||
        get_bool(&c, obj, "scale_decoder_outputs", &scale) || parse_ffn(&c, t, obj))
        return -1;
    const json_value *eps = json_get(obj, "layer_norm_epsilon");
    if (!is_null(eps)) {
        if (eps->type != JSON_NUMBER || !(eps->number > 0 && eps->number < 1))
            return prism_errorf(err, "%s: %s%slayer_norm_epsilon must be a number in (0, 1)",
                                file, section, dot);
        t->layer_norm_epsilon = (float)eps->number;
    }
    if (t->num_decoder_layers < 0)
        t->num_decoder_layers = t->num_layers;
    if (t->decoder_start_token_id < 0)
        t->decoder_start_token_id = t->pad_token_id;
    /* configuration_t5.py: scale = tie_word_embeddings is not False, unless
     * the file carries scale_decoder_outputs itself (what transformers 5
     * writes when it saves a T5 config). */
    t->scale_decoder_outputs = scale >= 0 ? scale : tie != 0;
    if ((int64_t)t->num_heads * t->d_kv > 4 * MAX_WIDTH)
        return prism_errorf(err, "%s: %s num_heads·d_kv = %lld is too large", file, section,
                            (long long)t->num_heads * t->d_kv);
    if (t->eos_token_id >= t->vocab_size || t->pad_token_id >= t->vocab_size ||
        t->decoder_start_token_id >= t->vocab_size)
        return prism_errorf(err, "%s: %s eos/pad/decoder_start token ids must be below "
                            "vocab_size %d", file, section, t->vocab_size);
    return 0;
}

int t5_config_parse(t5_config *t, const char *text, const char *name, prism_error *err)
{
    char jerr[256];
    t5_config_defaults(t);
    json_value *root = json_parse(text, strlen(text), jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s: malformed JSON: %s", name, jerr);
    int rc = t5_config_from_json(t, root, name, "", err);
    json_free(root);
    return rc;
}

int t5_relative_bucket(int rel, bool bidirectional, int num_buckets, int max_distance)
{
    int bucket = 0, n = num_buckets;
    if (bidirectional) {
        n /= 2;
        if (rel > 0)
            bucket += n;
        rel = rel < 0 ? -rel : rel;
    } else {
        rel = rel < 0 ? -rel : 0;
    }
    const int max_exact = n / 2;
    if (rel < max_exact)
        return bucket + rel;
    /* torch: log(float(rel) / max_exact) / math.log(max_distance / max_exact)
     * * (n - max_exact), each step in float32 (a Python scalar operand is
     * rounded to float first), then .to(long), which truncates. */
    float v = logf((float)rel / (float)max_exact);
    v = v / (float)log((double)max_distance / (double)max_exact);
    v = v * (float)(n - max_exact);
    long large = max_exact + (long)v;
    if (large > n - 1)
        large = n - 1;
    return bucket + (int)large;
}
