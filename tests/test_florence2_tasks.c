/* test_florence2_tasks.c - Florence-2's task prompts and post-processing
 * (engine/florence2_tasks.c) against transformers' Florence2Processor.
 *
 * tests/data/florence2_tasks.golden.json.gz is made by
 * tools/reference/make_florence2_task_goldens.py with the real processor:
 * prompts, the task table, post_process_generation on adversarial and
 * random texts for every kind, image size and configuration, and the
 * dequantisation of every bin. Everything is compared exactly: the
 * processor's coordinates are torch int32 values, so there is no tolerance.
 * The rest: linear time on hostile text, limits, configuration files.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "florence2_tasks.h"
#include "json.h"
#include "test_util.h"

#define POLY_TASK "<DESCRIPTION_WITH_POLYGONS>"

static json_value *golden;

static void load_golden(void)
{
    if (golden)
        return;
    char path[1024], cmd[1200];
    test_data_path(path, sizeof path, "florence2_tasks.golden.json.gz");
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    int status;
    char *text = test_run(cmd, &status);
    ck_assert_msg(status == 0, "gzip -dc %s failed", path);
    char msg[256];
    golden = json_parse(text, strlen(text), msg, sizeof msg);
    ck_assert_msg(golden != NULL, "%s: %s", path, msg);
    free(text);
}

static const json_value *gget(const char *key)
{
    load_golden();
    const json_value *v = json_get(golden, key);
    ck_assert_msg(v != NULL, "golden lacks %s", key);
    return v;
}

/* A fresh directory holding processor_config.json with `body`; returns it. */
static char *config_dir(const char *body)
{
    char *dir = strdup("/tmp/prism-f2tasks-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    if (body) {
        char path[256];
        snprintf(path, sizeof path, "%s/processor_config.json", dir);
        ck_assert_int_eq(test_write_file(path, body, strlen(body)), 0);
    }
    return dir;
}

/* Writes a JSON value back as text (enough for the goldens' configs). */
static void json_write(const json_value *v, char **buf, size_t *len, size_t *cap)
{
    char tmp[64];
    const char *s = tmp;
    size_t n;
    switch (v->type) {
    case JSON_NULL: s = "null"; break;
    case JSON_BOOL: s = v->boolean ? "true" : "false"; break;
    case JSON_NUMBER: snprintf(tmp, sizeof tmp, "%.17g", v->number); break;
    default: s = NULL;
    }
    if (v->type == JSON_STRING) {
        n = v->length * 6 + 3;
    } else if (s) {
        n = strlen(s);
    } else {
        n = 2;
    }
    while (*len + n + 1 > *cap) {
        *cap = *cap * 2 + 64;
        *buf = realloc(*buf, *cap);
        ck_assert_ptr_nonnull(*buf);
    }
    if (s) {
        memcpy(*buf + *len, s, n);
        *len += n;
    } else if (v->type == JSON_STRING) {
        (*buf)[(*len)++] = '"';
        for (size_t i = 0; i < v->length; i++) {
            const unsigned char c = (unsigned char)v->string[i];
            if (c == '"' || c == '\\' || c < 0x20)
                *len += (size_t)sprintf(*buf + *len, "\\u%04x", c);
            else
                (*buf)[(*len)++] = (char)c;
        }
        (*buf)[(*len)++] = '"';
    } else {
        const bool obj = v->type == JSON_OBJECT;
        (*buf)[(*len)++] = obj ? '{' : '[';
        for (size_t i = 0; i < v->count; i++) {
            if (i)
                (*buf)[(*len)++] = ',';
            if (obj) {
                json_value key = {.type = JSON_STRING, .string = v->keys[i],
                                  .length = strlen(v->keys[i])};
                json_write(&key, buf, len, cap);
                while (*len + 2 > *cap) {
                    *cap = *cap * 2 + 64;
                    *buf = realloc(*buf, *cap);
                }
                (*buf)[(*len)++] = ':';
            }
            json_write(&v->items[i], buf, len, cap);
            while (*len + 2 > *cap) {
                *cap = *cap * 2 + 64;
                *buf = realloc(*buf, *cap);
            }
        }
        (*buf)[(*len)++] = obj ? '}' : ']';
    }
    (*buf)[*len] = '\0';
}

/* A config loaded from {"post_processor_config": configs[i]} in a temp dir. */
static florence2_post_config *golden_config(size_t i)
{
    const json_value *configs = gget("configs");
    ck_assert_uint_lt(i, configs->count);
    size_t len = 0, cap = 256;
    char *body = malloc(cap);
    len = (size_t)sprintf(body, "{\"post_processor_config\":");
    json_write(&configs->items[i], &body, &len, &cap);
    body = realloc(body, len + 2);
    strcpy(body + len, "}");
    char *dir = config_dir(body);
    florence2_post_config *cfg;
    prism_error err;
    ck_assert_msg(florence2_post_config_load(&cfg, dir, &err) == 0, "%s", err.msg);
    test_remove_dir(dir);
    free(body);
    return cfg;
}

START_TEST(test_task_table)
{
    const json_value *tasks = gget("tasks");
    ck_assert_uint_ge(tasks->count, 15);
    for (size_t i = 0; i < tasks->count; i++) {
        const json_value *c = &tasks->items[i];
        const char *t = c->items[0].string;
        ck_assert_msg(florence2_is_task_token(t) == c->items[1].boolean, "is_task_token(%s)", t);
        ck_assert_str_eq(florence2_post_kind_name(florence2_task_kind(t)), c->items[2].string);
    }
}
END_TEST

START_TEST(test_prompts)
{
    const json_value *prompts = gget("prompts");
    ck_assert_uint_ge(prompts->count, 100);
    char out[4096];
    for (size_t i = 0; i < prompts->count; i++) {
        const json_value *c = &prompts->items[i];
        const char *text = c->items[0].string;
        prism_error err;
        const int rc = florence2_build_prompt(text, out, sizeof out, &err);
        if (c->items[1].type == JSON_STRING) {
            ck_assert_msg(rc == 0, "prompt %zu (%s): %s", i, text, err.msg);
            ck_assert_msg(strcmp(out, c->items[1].string) == 0, "prompt %zu (%s): '%s', want '%s'",
                          i, text, out, c->items[1].string);
        } else {
            ck_assert_msg(rc != 0, "prompt %zu (%s) should fail: %s", i, text,
                          c->items[2].string);
            ck_assert_str_eq(err.msg, c->items[2].string);
        }
    }
    /* a buffer too small is an error, not a cut prompt */
    prism_error err;
    ck_assert_int_ne(florence2_build_prompt("<OD>", out, 10, &err), 0);
    ck_assert_int_ne(florence2_build_prompt("<REGION_TO_OCR>abc", out, 31, &err), 0);
    ck_assert_int_eq(florence2_build_prompt("<REGION_TO_OCR>abc", out, 32, &err), 0);
    ck_assert_str_eq(out, "What text is in the region abc?");
    ck_assert_int_ne(florence2_build_prompt("\xff", out, sizeof out, &err), 0);
}
END_TEST

/* ---- comparing results --------------------------------------------------- */

static bool coords_eq(const double *c, int n, const json_value *want)
{
    if (want->type != JSON_ARRAY || (int)want->count != n)
        return false;
    for (int i = 0; i < n; i++)
        if (!want->items[i].is_integer || c[i] != (double)want->items[i].integer)
            return false;
    return true;
}

static bool str_eq(const char *s, const json_value *want)
{
    return want->type == JSON_STRING && strlen(s) == want->length &&
           memcmp(s, want->string, want->length) == 0;
}

/* Items [from, to) of r as boxes (n coordinates each) or polygon lists. */
static bool items_eq(const florence2_result *r, const int *idx, size_t n_idx, const json_value *geom,
                     const json_value *labels, int box_coords)
{
    if (!geom || !labels || geom->count != n_idx || labels->count != n_idx)
        return false;
    for (size_t k = 0; k < n_idx; k++) {
        const florence2_item *it = &r->items[idx[k]];
        if (!str_eq(it->label, &labels->items[k]))
            return false;
        if (box_coords) {
            if (it->n_polygons != 0 || !coords_eq(it->coords, it->n_coords, &geom->items[k]) ||
                it->n_coords != box_coords)
                return false;
            continue;
        }
        const json_value *polys = &geom->items[k];
        if (polys->type != JSON_ARRAY || (int)polys->count != it->n_polygons)
            return false;
        int off = 0;
        for (int p = 0; p < it->n_polygons; p++) {
            if (!coords_eq(it->coords + off, it->polygon_coords[p], &polys->items[p]))
                return false;
            off += it->polygon_coords[p];
        }
        if (off != it->n_coords)
            return false;
    }
    return true;
}

static bool result_eq(const florence2_result *r, const json_value *want)
{
    int *all = malloc(((size_t)r->n_items + 1) * sizeof *all);
    int *box = malloc(((size_t)r->n_items + 1) * sizeof *box);
    int *poly = malloc(((size_t)r->n_items + 1) * sizeof *poly);
    size_t nb = 0, np = 0;
    for (int i = 0; i < r->n_items; i++) {
        all[i] = i;
        if (r->items[i].n_polygons > 0)
            poly[np++] = i;
        else
            box[nb++] = i;
    }
    bool ok = false;
    const size_t n = (size_t)r->n_items;
    switch (r->kind) {
    case FLORENCE2_POST_PURE_TEXT:
        ok = r->text && str_eq(r->text, want) && r->n_items == 0;
        break;
    case FLORENCE2_POST_OCR:
        ok = items_eq(r, all, n, json_get(want, "quad_boxes"), json_get(want, "labels"), 8);
        break;
    case FLORENCE2_POST_PHRASE_GROUNDING:
    case FLORENCE2_POST_DESCRIPTION_WITH_BBOXES:
    case FLORENCE2_POST_BBOXES:
        ok = items_eq(r, all, n, json_get(want, "bboxes"), json_get(want, "labels"), 4) &&
             want->count == 2;
        break;
    case FLORENCE2_POST_POLYGONS:
    case FLORENCE2_POST_DESCRIPTION_WITH_POLYGONS:
        ok = items_eq(r, all, n, json_get(want, "polygons"), json_get(want, "labels"), 0) &&
             np == n;
        break;
    case FLORENCE2_POST_DESCRIPTION_WITH_BBOXES_OR_POLYGONS:
        ok = items_eq(r, box, nb, json_get(want, "bboxes"), json_get(want, "bboxes_labels"), 4) &&
             items_eq(r, poly, np, json_get(want, "polygons"), json_get(want, "polygons_labels"),
                      0);
        break;
    default:
        break;
    }
    free(all);
    free(box);
    free(poly);
    return ok;
}

static int run_case(const florence2_post_config *cfg, const char *text, const char *task, int w,
                    int h, florence2_result *r, prism_error *err)
{
    if (strcmp(task, POLY_TASK) == 0)
        return florence2_post_process_kind(cfg, text, FLORENCE2_POST_DESCRIPTION_WITH_POLYGONS, w,
                                           h, r, err);
    return florence2_post_process(cfg, text, task, w, h, r, err);
}

/* Every golden case whose config index is in `which`, with cfgs[index]. */
static void check_post(florence2_post_config *const *cfgs, int which)
{
    const json_value *post = gget("post"), *texts = gget("texts"), *sizes = gget("sizes");
    size_t checked = 0, failed = 0;
    for (size_t i = 0; i < post->count; i++) {
        const json_value *c = post->items[i].items;
        if (c[3].integer != which)
            continue;
        const char *text = texts->items[c[0].integer].string;
        const char *task = c[1].string;
        const json_value *size = &sizes->items[c[2].integer];
        const int w = (int)size->items[0].integer, h = (int)size->items[1].integer;
        florence2_result r;
        prism_error err;
        memset(&r, 0x5a, sizeof r);
        const int rc = run_case(cfgs[which], text, task, w, h, &r, &err);
        bool ok;
        if (c[5].type == JSON_STRING) {
            ok = rc != 0;
            if (ok && strstr(c[5].string, "Unsupported parse task"))
                ok = strstr(err.msg, "Unsupported parse task") != NULL;
        } else {
            ok = rc == 0 && result_eq(&r, &c[4]);
        }
        if (rc == 0)
            florence2_result_free(&r);
        checked++;
        if (!ok && failed++ < 10)
            fprintf(stderr, "post case %zu: config %d, %s, %dx%d, text '%.200s': %s\n", i, which,
                    task, w, h, text, rc ? err.msg : "result differs");
    }
    ck_assert_uint_gt(checked, 0);
    ck_assert_msg(failed == 0, "%zu of %zu post-processing cases differ", failed, checked);
}

START_TEST(test_post_default)
{
    /* the defaults three ways: NULL, a directory without the file, and the
     * processor_config.json save_pretrained wrote */
    florence2_post_config *cfgs[1] = {NULL};
    check_post(cfgs, 0);
    prism_error err;
    char *dir = config_dir(NULL);
    ck_assert_int_eq(florence2_post_config_load(&cfgs[0], dir, &err), 0);
    check_post(cfgs, 0);
    florence2_post_config_free(cfgs[0]);
    test_remove_dir(dir);
    dir = config_dir(gget("processor_config_json")->string);
    ck_assert_msg(florence2_post_config_load(&cfgs[0], dir, &err) == 0, "%s", err.msg);
    check_post(cfgs, 0);
    florence2_post_config_free(cfgs[0]);
    test_remove_dir(dir);
    cfgs[0] = golden_config(0);
    check_post(cfgs, 0);
    florence2_post_config_free(cfgs[0]);
}
END_TEST

START_TEST(test_post_configs)
{
    const size_t n = gget("configs")->count;
    ck_assert_uint_eq(n, 3);
    florence2_post_config *cfgs[3] = {NULL, golden_config(1), golden_config(2)};
    check_post(cfgs, 1);
    check_post(cfgs, 2);
    florence2_post_config_free(cfgs[1]);
    florence2_post_config_free(cfgs[2]);
}
END_TEST

START_TEST(test_dequant_every_bin)
{
    const json_value *dq = gget("dequant");
    const json_value *sizes = json_get(dq, "sizes"), *xs = json_get(dq, "x");
    ck_assert_uint_eq(sizes->count, xs->count);
    /* bins b, 0, b, 0 for b = 0..999 as <REGION_PROPOSAL> boxes */
    char *text = malloc(1000 * 4 * 10 + 1);
    size_t len = 0;
    for (int b = 0; b < 1000; b++)
        len += (size_t)sprintf(text + len, "<loc_%d><loc_0><loc_%d><loc_0>", b, b);
    for (size_t s = 0; s < sizes->count; s++) {
        const int w = (int)sizes->items[s].integer;
        florence2_result r;
        prism_error err;
        ck_assert_msg(florence2_post_process(NULL, text, "<REGION_PROPOSAL>", w, 7, &r, &err) == 0,
                      "%s", err.msg);
        ck_assert_int_eq(r.n_items, 1000);
        for (int b = 0; b < 1000; b++) {
            const double want = (double)xs->items[s].items[b].integer;
            ck_assert_msg(r.items[b].coords[0] == want && r.items[b].coords[2] == want,
                          "width %d bin %d: %g, want %g", w, b, r.items[b].coords[0], want);
            ck_assert(r.items[b].coords[1] == 0 && r.items[b].coords[3] == 0); /* 0.5 * 0.007 */
        }
        florence2_result_free(&r);
    }
    free(text);
}
END_TEST

/* ---- limits and hostile text ------------------------------------------- */

static char *repeat(const char *piece, size_t bytes)
{
    const size_t pl = strlen(piece);
    char *s = malloc(bytes + pl + 1);
    size_t n = 0;
    while (n < bytes) {
        memcpy(s + n, piece, pl);
        n += pl;
    }
    s[n] = '\0';
    return s;
}

START_TEST(test_linear_abuse)
{
    /* each must finish at once; a quadratic rescan would take minutes */
    static const char *const pieces[] = {
        "<loc_1>", "word ", "a<loc_1><loc_2><loc_3>", "<loc_1><loc_2><loc_3>\n", "<poly>",
        "<loc_1><poly>", "<poly><loc_1><loc_2><loc_3><loc_4></poly>", "<sep>", "<", "x\n",
        "<loc_1", "<loc_12345678901234567890>", "\xe3\x80\x80", "<loc_1><loc_2><sep>",
    };
    const size_t mb = 1u << 20;
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        char *text = repeat(pieces[p], mb);
        for (int k = 0; k < FLORENCE2_POST_KIND_COUNT; k++) {
            florence2_result r;
            prism_error err;
            if (florence2_post_process_kind(NULL, text, (florence2_post_kind)k, 640, 480, &r,
                                            &err) == 0)
                florence2_result_free(&r);
        }
        free(text);
    }
    /* "<loc_" and a megabyte of digits, twice, then two more tokens */
    char *digits = repeat("7", mb);
    const size_t dl = strlen(digits);
    char *text = malloc(2 * (dl + 7) + 40);
    sprintf(text, "x<loc_%s><loc_%s><loc_1><loc_2>", digits, digits);
    for (int k = 0; k < FLORENCE2_POST_KIND_COUNT; k++) {
        florence2_result r;
        prism_error err;
        if (florence2_post_process_kind(NULL, text, (florence2_post_kind)k, 640, 480, &r, &err) ==
            0)
            florence2_result_free(&r);
    }
    free(text);
    free(digits);

    /* 1 MB of <loc_1>: 149797 tokens, 37449 boxes with empty labels */
    text = repeat("<loc_1>", mb);
    florence2_result r;
    prism_error err;
    ck_assert_int_eq(florence2_post_process(NULL, text, "<REGION_PROPOSAL>", 1000, 1000, &r, &err),
                     0);
    ck_assert_int_eq(r.n_items, (int)((mb + 6) / 7 / 4));
    ck_assert_str_eq(r.items[0].label, "");
    ck_assert(r.items[0].coords[0] == 1 && r.items[0].coords[3] == 1);
    florence2_result_free(&r);
    /* one label for 37449 boxes: shared, not copied */
    char *labelled = malloc(strlen(text) + 4);
    sprintf(labelled, "cat%s", text);
    ck_assert_int_eq(florence2_post_process(NULL, labelled, "<OD>", 1000, 1000, &r, &err), 0);
    ck_assert_int_eq(r.n_items, (int)((mb + 6) / 7 / 4));
    ck_assert_str_eq(r.items[r.n_items - 1].label, "cat");
    ck_assert_ptr_eq(r.items[0].label, r.items[r.n_items - 1].label);
    florence2_result_free(&r);
    free(labelled);
    free(text);
}
END_TEST

START_TEST(test_limits)
{
    florence2_result r;
    prism_error err;
    char *text = repeat("a", FLORENCE2_MAX_TEXT + 1);
    text[FLORENCE2_MAX_TEXT + 1] = '\0';
    ck_assert_int_ne(florence2_post_process(NULL, text, "<CAPTION>", 10, 10, &r, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "longer"));
    text[FLORENCE2_MAX_TEXT] = '\0'; /* exactly the limit is fine */
    ck_assert_int_eq(florence2_post_process(NULL, text, "<CAPTION>", 10, 10, &r, &err), 0);
    ck_assert_uint_eq(strlen(r.text), FLORENCE2_MAX_TEXT);
    florence2_result_free(&r);
    free(text);
    ck_assert_int_ne(florence2_post_process(NULL, "a\xc3", "<CAPTION>", 10, 10, &r, &err), 0);
    ck_assert_int_ne(florence2_post_process(NULL, "a", "<OD>", 0, 10, &r, &err), 0);
    ck_assert_int_ne(florence2_post_process(NULL, "a", "<OD>", 10, -1, &r, &err), 0);
    ck_assert_int_ne(
        florence2_post_process_kind(NULL, "a", FLORENCE2_POST_KIND_COUNT, 10, 10, &r, &err), 0);
    /* an unknown task is pure text, as the processor's table default */
    ck_assert_int_eq(florence2_post_process(NULL, "<s> x<loc_1> </s>", "<NOPE>", 10, 10, &r, &err),
                     0);
    ck_assert_int_eq(r.kind, FLORENCE2_POST_PURE_TEXT);
    ck_assert_str_eq(r.text, "x<loc_1>");
    florence2_result_free(&r);
}
END_TEST

START_TEST(test_rstrip_len)
{
    ck_assert_uint_eq(florence2_rstrip_len("", 0), 0);
    ck_assert_uint_eq(florence2_rstrip_len("abc", 3), 3);
    ck_assert_uint_eq(florence2_rstrip_len("abc \t\n", 6), 3);
    ck_assert_uint_eq(florence2_rstrip_len(" a \xc2\xa0\xe3\x80\x80\x1c", 9), 2);
    ck_assert_uint_eq(florence2_rstrip_len("\xc2\xa0", 2), 0);
    ck_assert_uint_eq(florence2_rstrip_len("a\xe3\x80", 3), 3); /* a cut character stays */
    ck_assert_uint_eq(florence2_rstrip_len("a\xc2\xa9", 3), 3); /* U+00A9 is not space */
    ck_assert_uint_eq(florence2_rstrip_len("a b", 2), 1);
}
END_TEST

/* ---- configuration files ----------------------------------------------- */

static void expect_config_error(const char *body, const char *needle)
{
    char *dir = config_dir(body);
    florence2_post_config *cfg = (florence2_post_config *)1;
    prism_error err;
    ck_assert_msg(florence2_post_config_load(&cfg, dir, &err) != 0, "loaded: %s", body);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
    ck_assert_msg(strstr(err.msg, "processor_config.json") != NULL, "'%s' lacks the file",
                  err.msg);
    test_remove_dir(dir);
}

START_TEST(test_config_files)
{
    expect_config_error("{", "processor_config.json");
    expect_config_error("[]", "object");
    expect_config_error("{\"post_processor_config\": []}", "post_processor_config");
    expect_config_error("{\"post_processor_config\": {\"ocr\": 5}}", "ocr");
    expect_config_error("{\"post_processor_config\": {\"ocr\": {\"PATTERN\": \"(.+)\"}}}",
                        "PATTERN");
    expect_config_error("{\"post_processor_config\": {\"ocr\": {\"AREA_THRESHOLD\": \"x\"}}}",
                        "AREA_THRESHOLD");
    expect_config_error("{\"post_processor_config\": {\"phrase_grounding\": "
                        "{\"banned_grounding_tokens\": [\"a\", 1]}}}",
                        "banned_grounding_tokens[1]");
    expect_config_error("{\"post_processor_config\": {\"phrase_grounding\": "
                        "{\"banned_grounding_tokens\": \"a\"}}}",
                        "banned_grounding_tokens");

    /* a file without the key: the defaults; a lower-case pattern is ignored
     * as the processor ignores it */
    const char *bodies[] = {
        "{\"processor_class\": \"Florence2Processor\"}",
        "{\"post_processor_config\": null}",
    };
    for (int i = 0; i < 2; i++) {
        char *dir = config_dir(bodies[i]);
        florence2_post_config *cfg;
        prism_error err;
        ck_assert_msg(florence2_post_config_load(&cfg, dir, &err) == 0, "%s", err.msg);
        florence2_result r;
        ck_assert_int_eq(florence2_post_process(cfg, "the image<loc_1><loc_2><loc_3><loc_4>",
                                                "<CAPTION_TO_PHRASE_GROUNDING>", 10, 10, &r, &err),
                         0);
        ck_assert_int_eq(r.n_items, 0); /* banned by default */
        florence2_result_free(&r);
        florence2_post_config_free(cfg);
        test_remove_dir(dir);
    }
    char *dir = config_dir("{\"post_processor_config\": {\"ocr\": {\"pattern\": \"(.+)\", "
                           "\"PATTERN\": null}, \"phrase_grounding\": {}}}");
    florence2_post_config *cfg;
    prism_error err;
    ck_assert_msg(florence2_post_config_load(&cfg, dir, &err) == 0, "%s", err.msg);
    florence2_result r;
    ck_assert_int_eq(florence2_post_process(cfg, "the image<loc_1><loc_2><loc_3><loc_4>",
                                            "<CAPTION_TO_PHRASE_GROUNDING>", 10, 10, &r, &err),
                     0);
    ck_assert_int_eq(r.n_items, 1); /* no banned list: kept */
    ck_assert_str_eq(r.items[0].label, "the image");
    florence2_result_free(&r);
    ck_assert_int_ne(florence2_post_process(cfg, "x", "<OD>", 10, 10, &r, &err), 0);
    ck_assert_str_eq(err.msg, "Unsupported parse task: description_with_bboxes");
    florence2_post_config_free(cfg);
    test_remove_dir(dir);
    florence2_post_config_free(NULL);
}
END_TEST

static Suite *florence2_tasks_suite(void)
{
    Suite *s = suite_create("florence2_tasks");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_task_table);
    tcase_add_test(tc, test_prompts);
    tcase_add_test(tc, test_post_default);
    tcase_add_test(tc, test_post_configs);
    tcase_add_test(tc, test_dequant_every_bin);
    tcase_add_test(tc, test_linear_abuse);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_rstrip_len);
    tcase_add_test(tc, test_config_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(florence2_tasks_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    json_free(golden);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
