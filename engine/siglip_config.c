/* siglip_config.c - config.json parsing with transformers' defaults. */
#include "siglip_config.h"

#include "json.h"

#include <stdlib.h>
#include <string.h>

/* Sanity caps: anything past these is a corrupt file, not a model. */
#define MAX_WIDTH (1 << 16)
#define MAX_LAYERS 512
#define MAX_VOCAB (1 << 22)
#define MAX_IMAGE 8192
#define MAX_GRID 256 /* NaFlex position grid side: num_patches ≤ 65536 */

void siglip_config_defaults(siglip_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    siglip_tower_config tower = {
        .hidden_size = 768,
        .intermediate_size = 3072,
        .num_hidden_layers = 12,
        .num_attention_heads = 12,
        .layer_norm_eps = 1e-6f,
        .hidden_act = PRISM_ACT_GELU_TANH,
    };
    cfg->text.t = tower;
    cfg->text.vocab_size = 32000;
    cfg->text.max_position_embeddings = 64;
    cfg->text.projection_size = 0; /* = hidden_size, resolved after parsing */
    cfg->text.pad_token_id = 1;
    cfg->text.bos_token_id = 49406;
    cfg->text.eos_token_id = 49407;
    cfg->vision.t = tower;
    cfg->vision.num_channels = 3;
    cfg->vision.image_size = 224;
    cfg->vision.patch_size = 16;
    cfg->vision.num_patches = (224 / 16) * (224 / 16);
    cfg->vision.vision_use_head = true;
}

/* Siglip2VisionConfig's defaults (google/siglip2-base-patch16-naflex): the
 * same towers, no image_size, a 16 × 16 position grid. */
static void siglip2_vision_defaults(siglip_vision_config *v)
{
    v->naflex = true;
    v->image_size = 0;
    v->num_patches = 256;
}

typedef struct {
    const char *file;
    const char *section;
    prism_error *err;
} ctx;

static bool is_null(const json_value *v)
{
    return !v || v->type == JSON_NULL;
}

static int get_int(ctx *c, const json_value *obj, const char *key, int *out, int lo, int hi)
{
    const json_value *v = json_get(obj, key);
    if (is_null(v))
        return 0;
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi)
        return prism_errorf(c->err, "%s: %s.%s must be an integer in [%d, %d]", c->file,
                            c->section, key, lo, hi);
    *out = (int)v->integer;
    return 0;
}

/* image_size / patch_size may also be written [h, w]; only squares exist for SigLIP. */
static int get_square(ctx *c, const json_value *obj, const char *key, int *out, int hi)
{
    const json_value *v = json_get(obj, key);
    if (v && v->type == JSON_ARRAY) {
        if (v->count != 2 || v->items[0].type != JSON_NUMBER || !v->items[0].is_integer ||
            v->items[1].type != JSON_NUMBER || v->items[1].integer != v->items[0].integer ||
            v->items[0].integer < 1 || v->items[0].integer > hi)
            return prism_errorf(c->err, "%s: %s.%s must be an integer or [n, n] (square) in "
                                "[1, %d]", c->file, c->section, key, hi);
        *out = (int)v->items[0].integer;
        return 0;
    }
    return get_int(c, obj, key, out, 1, hi);
}

static int get_float(ctx *c, const json_value *obj, const char *key, float *out)
{
    const json_value *v = json_get(obj, key);
    if (is_null(v))
        return 0;
    if (v->type != JSON_NUMBER || v->number < 0 || v->number > 1)
        return prism_errorf(c->err, "%s: %s.%s must be a number in [0, 1]", c->file,
                            c->section, key);
    *out = (float)v->number;
    return 0;
}

static int parse_tower(ctx *c, const json_value *obj, siglip_tower_config *t)
{
    if (get_int(c, obj, "hidden_size", &t->hidden_size, 1, MAX_WIDTH) ||
        get_int(c, obj, "intermediate_size", &t->intermediate_size, 1, 4 * MAX_WIDTH) ||
        get_int(c, obj, "num_hidden_layers", &t->num_hidden_layers, 0, MAX_LAYERS) ||
        get_int(c, obj, "num_attention_heads", &t->num_attention_heads, 1, MAX_WIDTH) ||
        get_float(c, obj, "layer_norm_eps", &t->layer_norm_eps))
        return -1;
    const json_value *act = json_get(obj, "hidden_act");
    if (!is_null(act)) {
        bool str = act->type == JSON_STRING;
        if (!str || prism_act_parse(act->string, &t->hidden_act))
            return prism_errorf(c->err, "%s: %s.hidden_act: unsupported activation %s%.40s%s "
                                "(gelu_pytorch_tanh, gelu, relu, silu)", c->file, c->section,
                                str ? "'" : "", str ? act->string : "(not a string)",
                                str ? "'" : "");
    }
    if (t->hidden_size % t->num_attention_heads != 0)
        return prism_errorf(c->err, "%s: %s.hidden_size %d is not divisible by "
                            "num_attention_heads %d", c->file, c->section, t->hidden_size,
                            t->num_attention_heads);
    return 0;
}

static int parse_vision(siglip_vision_config *v, const json_value *vc, const char *name,
                        const char *section, prism_error *err)
{
    ctx c = {name, section, err};
    int rc = parse_tower(&c, vc, &v->t);
    if (rc == 0)
        rc = get_int(&c, vc, "num_channels", &v->num_channels, 1, 16) ||
             get_square(&c, vc, "patch_size", &v->patch_size, MAX_IMAGE) ? -1 : 0;
    if (rc == 0 && !v->naflex) {
        rc = get_square(&c, vc, "image_size", &v->image_size, MAX_IMAGE);
        int g = v->image_size / v->patch_size;
        v->num_patches = g * g;
    }
    if (rc == 0 && v->naflex) {
        /* Siglip2VisionEmbeddings reshapes the table to a square grid */
        rc = get_int(&c, vc, "num_patches", &v->num_patches, 1, MAX_GRID * MAX_GRID);
        int g = 0;
        while (rc == 0 && (g + 1) * (g + 1) <= v->num_patches)
            g++;
        if (rc == 0 && g * g != v->num_patches)
            rc = prism_errorf(err, "%s: %s.num_patches %d is not a square: the position "
                              "embeddings are a √num_patches × √num_patches grid", name,
                              section, v->num_patches);
    }
    const json_value *uh = json_get(vc, "vision_use_head");
    if (rc == 0 && !is_null(uh)) {
        if (uh->type != JSON_BOOL)
            rc = prism_errorf(err, "%s: %s.vision_use_head must be true or false", name, section);
        else
            v->vision_use_head = uh->boolean;
    }
    if (rc == 0 && !v->naflex && v->patch_size > v->image_size)
        rc = prism_errorf(err, "%s: %s.patch_size %d exceeds image_size %d", name, section,
                          v->patch_size, v->image_size);
    return rc;
}

int siglip_vision_config_from_json(siglip_vision_config *vc, const json_value *obj,
                                   const char *file, const char *section, prism_error *err)
{
    siglip_config cfg;
    siglip_config_defaults(&cfg);
    *vc = cfg.vision;
    if (!obj || obj->type != JSON_OBJECT)
        return prism_errorf(err, "%s: %s must be a JSON object", file, section);
    return parse_vision(vc, obj, file, section, err);
}

static int parse_root(siglip_config *cfg, const json_value *root, const char *name,
                      prism_error *err)
{
    siglip_config_defaults(cfg);
    int rc = 0;
    ctx c = {name, "", err};
    const json_value *mt = json_get(root, "model_type");
    const json_value *tc = json_get(root, "text_config");
    const json_value *vc = json_get(root, "vision_config");
    if (root->type != JSON_OBJECT) {
        rc = prism_errorf(err, "%s: top level is not a JSON object", name);
    } else if (!mt || mt->type != JSON_STRING ||
               (strcmp(mt->string, "siglip") != 0 && strcmp(mt->string, "siglip2") != 0)) {
        rc = prism_errorf(err, "%s: model_type must be \"siglip\" or \"siglip2\" (got %.40s)",
                          name, mt && mt->type == JSON_STRING ? mt->string : "none");
    } else if (strcmp(mt->string, "siglip2") == 0) {
        siglip2_vision_defaults(&cfg->vision);
    } else if ((!is_null(tc) && tc->type != JSON_OBJECT) ||
               (!is_null(vc) && vc->type != JSON_OBJECT)) {
        rc = prism_errorf(err, "%s: text_config and vision_config must be objects", name);
    }
    if (rc == 0 && tc && tc->type == JSON_OBJECT) {
        c.section = "text_config";
        rc = parse_tower(&c, tc, &cfg->text.t);
        if (rc == 0)
            rc = get_int(&c, tc, "vocab_size", &cfg->text.vocab_size, 1, MAX_VOCAB) ||
                 get_int(&c, tc, "max_position_embeddings", &cfg->text.max_position_embeddings,
                         1, 1 << 16) ||
                 get_int(&c, tc, "projection_size", &cfg->text.projection_size, 1, MAX_WIDTH) ||
                 get_int(&c, tc, "pad_token_id", &cfg->text.pad_token_id, 0, MAX_VOCAB) ||
                 get_int(&c, tc, "bos_token_id", &cfg->text.bos_token_id, 0, 1 << 30) ||
                 get_int(&c, tc, "eos_token_id", &cfg->text.eos_token_id, 0, 1 << 30) ? -1 : 0;
    }
    if (rc == 0 && vc && vc->type == JSON_OBJECT)
        rc = parse_vision(&cfg->vision, vc, name, "vision_config", err);
    if (cfg->text.projection_size == 0)
        cfg->text.projection_size = cfg->text.t.hidden_size;
    if (rc == 0 && cfg->text.projection_size != cfg->vision.t.hidden_size)
        rc = prism_errorf(err, "%s: text_config.projection_size %d differs from "
                          "vision_config.hidden_size %d: the embeddings cannot be compared",
                          name, cfg->text.projection_size, cfg->vision.t.hidden_size);
    return rc;
}

int siglip_config_parse(siglip_config *cfg, const char *text, const char *name, prism_error *err)
{
    char jerr[256];
    siglip_config_defaults(cfg);
    json_value *root = json_parse(text, strlen(text), jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s: malformed JSON: %s", name, jerr);
    int rc = parse_root(cfg, root, name, err);
    json_free(root);
    return rc;
}

int siglip_config_load(siglip_config *cfg, const char *path, prism_error *err)
{
    char jerr[512];
    siglip_config_defaults(cfg);
    json_value *root = json_parse_file(path, jerr, sizeof jerr);
    if (!root)
        return prism_errorf(err, "%s", jerr);
    int rc = parse_root(cfg, root, path, err);
    json_free(root);
    return rc;
}
