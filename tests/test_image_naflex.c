/* test_image_naflex.c - SigLIP 2 NaFlex preprocessing against transformers'
 * Siglip2ImageProcessorPil.
 *
 * tools/reference/make_naflex_goldens.py wrote tests/data/naflex_goldens.json
 * (+ .safetensors): get_image_size_for_max_num_patches over a sweep of
 * sizes (1x1 .. 4000x3000, extreme aspect ratios) at patch 14 and 16 and
 * max_num_patches 64..1024; for every image of tests/data/pillow,
 * tests/data/images, examples/flower.jpg and (optional) ../shared/testdata
 * the spatial shape, valid rows and CRC-32 of pixel_values at several
 * patch / max_num_patches pairs, a few stored whole; integer-formula images
 * of large and extreme sizes; processor config variants and both file
 * layouts.
 *
 * Tolerances: none. The sizes are integers from the same IEEE double
 * arithmetic; decoding and resizing are Pillow's integer algorithms
 * (tests/test_image.c); rescale and normalise are the same float32
 * operations numpy performs. So the CRC of the float32 bytes must match,
 * and stored tensors are compared within 1e-6 (as asked of the pipeline)
 * and then bit for bit.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "image.h"
#include "json.h"
#include "safetensors.h"
#include "test_util.h"

static json_value *g_manifest;
static st_file g_gold;
static bool g_have_shared;

static const json_value *section(const char *name)
{
    const json_value *v = json_get(g_manifest, name);
    ck_assert_msg(v && v->type == JSON_ARRAY, "manifest lacks '%s'", name);
    return v;
}

static const char *str(const json_value *o, const char *key)
{
    const json_value *v = json_get(o, key);
    ck_assert_msg(v && v->type == JSON_STRING, "manifest entry lacks '%s'", key);
    return v->string;
}

static long long num(const json_value *o, const char *key)
{
    const json_value *v = json_get(o, key);
    ck_assert_msg(v && v->type == JSON_NUMBER && v->is_integer, "manifest entry lacks '%s'", key);
    return v->integer;
}

static uint32_t crc_of(const void *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *b = p;
    while (n > 0) { /* crc32 takes a uInt length */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k);
        b += k, n -= k;
    }
    return (uint32_t)c;
}

/* "data:x", "repo:x" or "shared:x" -> bytes; NULL when the shared corpus is
 * absent (the caller skips). */
static uint8_t *read_source(const char *src, size_t *len)
{
    char path[4096];
    if (strncmp(src, "shared:", 7) == 0) {
        if (!g_have_shared)
            return NULL;
        snprintf(path, sizeof path, "%s/%s", PRISM_SHARED_TESTDATA, src + 7);
    } else if (strncmp(src, "repo:", 5) == 0) {
        snprintf(path, sizeof path, "%s/%s", PRISM_SOURCE_DIR, src + 5);
    } else {
        ck_assert_msg(strncmp(src, "data:", 5) == 0, "bad source %s", src);
        test_data_path(path, sizeof path, src + 5);
    }
    uint8_t *d = (uint8_t *)test_read_file(path, len);
    ck_assert_msg(d != NULL, "cannot read %s", path);
    return d;
}

/* Same integer formula as make_image_goldens.py's formula_image. */
static void formula_image(image_rgb *img, int w, int h)
{
    img->width = w, img->height = h, img->has_key = false;
    img->data = malloc((size_t)w * h * 3);
    ck_assert_ptr_nonnull(img->data);
    for (uint32_t y = 0; y < (uint32_t)h; y++)
        for (uint32_t x = 0; x < (uint32_t)w; x++)
            for (uint32_t c = 0; c < 3; c++) {
                uint32_t v = (x * 73856093u) ^ (y * 19349663u) ^ ((c + 1) * 83492791u);
                v ^= v >> 13;
                v *= 0x5BD1E995u;
                v ^= v >> 15;
                uint32_t smooth = (x * 3 + y * 5 + c * 85) & 255;
                uint32_t block = ((x >> 4) + (y >> 4)) & 1;
                img->data[((size_t)y * w + x) * 3 + c] = (uint8_t)(block ? v & 255 : smooth);
            }
}

/* make_image_goldens.py's lut_image: every value 0..255 in each channel. */
static void lut_image(image_rgb *img)
{
    img->width = img->height = 16, img->has_key = false;
    img->data = malloc(16 * 16 * 3);
    ck_assert_ptr_nonnull(img->data);
    for (int i = 0; i < 256; i++) {
        img->data[3 * i] = (uint8_t)i;
        img->data[3 * i + 1] = (uint8_t)((i * 7 + 3) & 255);
        img->data[3 * i + 2] = (uint8_t)(255 - i);
    }
}

static image_rgb image_copy(const image_rgb *in)
{
    image_rgb out = *in;
    out.data = malloc((size_t)in->width * in->height * 3);
    ck_assert_ptr_nonnull(out.data);
    memcpy(out.data, in->data, (size_t)in->width * in->height * 3);
    return out;
}

/* The output of one image_rgb_to_naflex call. */
typedef struct naflex_out {
    float *pv;
    int32_t *mask;
    int rows, cols;
} naflex_out;

static void out_alloc(naflex_out *o, const image_naflex *cfg)
{
    o->pv = malloc((size_t)cfg->max_num_patches * image_naflex_row_floats(cfg) * sizeof *o->pv);
    o->mask = malloc((size_t)cfg->max_num_patches * sizeof *o->mask);
    ck_assert(o->pv && o->mask);
    /* a value no step writes, so a row left unwritten shows */
    const size_t n = (size_t)cfg->max_num_patches * image_naflex_row_floats(cfg);
    memset(o->pv, 0x7f, n * sizeof *o->pv);
    o->rows = o->cols = -1;
}

static void out_free(naflex_out *o)
{
    free(o->pv);
    free(o->mask);
}

/* Shape, mask and CRC against transformers' values; the stored tensor too
 * when there is one. */
static void check_out(const char *what, const naflex_out *o, const image_naflex *cfg,
                      long long rows, long long cols, long long crc, const char *stored)
{
    ck_assert_msg(o->rows == rows && o->cols == cols,
                  "%s: spatial shape %dx%d, transformers %lldx%lld", what, o->rows, o->cols,
                  rows, cols);
    for (int i = 0; i < cfg->max_num_patches; i++)
        ck_assert_msg(o->mask[i] == (i < rows * cols), "%s: mask[%d] is %d", what, i,
                      (int)o->mask[i]);
    const size_t n = (size_t)cfg->max_num_patches * image_naflex_row_floats(cfg);
    if (stored) {
        int64_t numel;
        float *ref = test_golden_f32(&g_gold, stored, &numel);
        ck_assert_msg((size_t)numel == n, "%s: %s holds %lld values, not %zu", what, stored,
                      (long long)numel, n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(fabsf(o->pv[i] - ref[i]) <= 1e-6f,
                          "%s: pixel_values[%zu] (patch %zu) = %.9g, transformers %.9g", what, i,
                          i / image_naflex_row_floats(cfg), o->pv[i], ref[i]);
        ck_assert_msg(memcmp(o->pv, ref, n * sizeof *ref) == 0, "%s: not bit-identical", what);
        free(ref);
    }
    ck_assert_msg(crc_of(o->pv, n * sizeof *o->pv) == (uint32_t)crc,
                  "%s: pixel_values CRC %08x, transformers %08llx", what,
                  crc_of(o->pv, n * sizeof *o->pv), crc);
}

/* [patch, max_num_patches, rows, cols, crc] runs of one image. */
static void check_runs(const char *what, const image_rgb *img, const json_value *runs,
                       const char *stored)
{
    const json_value *sc = json_get(g_manifest, "store_config");
    for (size_t k = 0; k < runs->count; k++) {
        const json_value *r = &runs->items[k];
        ck_assert(r->type == JSON_ARRAY && r->count == 5);
        image_naflex cfg;
        image_naflex_defaults(&cfg);
        cfg.patch_size = (int)r->items[0].integer;
        cfg.max_num_patches = (int)r->items[1].integer;
        char name[512];
        snprintf(name, sizeof name, "%s patch %d max_num_patches %d", what, cfg.patch_size,
                 cfg.max_num_patches);
        naflex_out o;
        out_alloc(&o, &cfg);
        image_rgb copy = image_copy(img);
        prism_error err = {0};
        ck_assert_msg(image_rgb_to_naflex(&copy, &cfg, 1024, o.pv, o.mask, &o.rows, &o.cols,
                                          &err) == 0,
                      "%s: %s", name, err.msg);
        const bool store = stored && cfg.patch_size == num(sc, "patch") &&
                           cfg.max_num_patches == num(sc, "max_num_patches");
        check_out(name, &o, &cfg, r->items[2].integer, r->items[3].integer, r->items[4].integer,
                  store ? stored : NULL);
        image_rgb_free(&copy);
        out_free(&o);
    }
}

START_TEST(test_sizes)
{
    const json_value *s = json_get(g_manifest, "sizes");
    ck_assert_ptr_nonnull(s);
    const st_tensor *in = st_file_find(&g_gold, str(s, "in"));
    const st_tensor *out = st_file_find(&g_gold, str(s, "out"));
    const json_value *configs = json_get(s, "configs");
    ck_assert(in && out && in->dtype == PRISM_DT_I16 && out->dtype == PRISM_DT_I16);
    ck_assert(configs && configs->type == JSON_ARRAY);
    const int64_t n = in->shape[0];
    ck_assert(in->ndim == 2 && in->shape[1] == 2 && out->ndim == 3 &&
              out->shape[0] == (int64_t)configs->count && out->shape[1] == n);
    ck_assert_int_ge(n, 1000);
    const int16_t *wh = (const int16_t *)in->data, *ref = (const int16_t *)out->data;
    for (size_t k = 0; k < configs->count; k++) {
        const int patch = (int)num(&configs->items[k], "patch");
        const int maxp = (int)num(&configs->items[k], "max_num_patches");
        for (int64_t i = 0; i < n; i++) {
            int ow = 0, oh = 0;
            prism_error err = {0};
            ck_assert_msg(image_naflex_size(wh[2 * i], wh[2 * i + 1], patch, maxp, &ow, &oh,
                                            &err) == 0,
                          "%dx%d: %s", wh[2 * i], wh[2 * i + 1], err.msg);
            const int16_t *e = ref + ((size_t)k * n + i) * 2;
            ck_assert_msg(ow == e[0] && oh == e[1],
                          "%dx%d, patch %d, max_num_patches %d: %dx%d, transformers %dx%d",
                          wh[2 * i], wh[2 * i + 1], patch, maxp, ow, oh, e[0], e[1]);
        }
    }
}
END_TEST

START_TEST(test_files)
{
    const json_value *c = &section("files")->items[_i];
    const char *src = str(c, "src");
    size_t len;
    uint8_t *data = read_source(src, &len);
    if (!data)
        return; /* shared corpus absent: counted as skipped in main */
    const json_value *runs = json_get(c, "runs");
    ck_assert(runs && runs->type == JSON_ARRAY && runs->count > 0);
    const json_value *pv = json_get(c, "pv");
    const char *stored = pv ? pv->string : NULL;

    /* the whole pipeline for the first run ... */
    const json_value *r0 = &runs->items[0];
    image_naflex cfg;
    image_naflex_defaults(&cfg);
    cfg.patch_size = (int)r0->items[0].integer;
    cfg.max_num_patches = (int)r0->items[1].integer;
    naflex_out o;
    out_alloc(&o, &cfg);
    prism_error err = {0};
    ck_assert_msg(image_to_naflex(data, len, &cfg, 0, 0, o.pv, o.mask, &o.rows, &o.cols, &err) ==
                      0,
                  "%s: %s", src, err.msg);
    check_out(src, &o, &cfg, r0->items[2].integer, r0->items[3].integer, r0->items[4].integer,
              NULL);
    out_free(&o);

    /* ... and every run from one decode */
    image_rgb img;
    ck_assert_msg(image_decode_rgb(data, len, 0, &img, &err) == 0, "%s: %s", src, err.msg);
    ck_assert_int_eq(img.width, num(c, "w"));
    ck_assert_int_eq(img.height, num(c, "h"));
    check_runs(src, &img, runs, stored);
    image_rgb_free(&img);
    free(data);
}
END_TEST

START_TEST(test_formula)
{
    const json_value *c = &section("formula")->items[_i];
    image_rgb img;
    formula_image(&img, (int)num(c, "w"), (int)num(c, "h"));
    char what[64];
    snprintf(what, sizeof what, "formula %dx%d", img.width, img.height);
    const json_value *pv = json_get(c, "pv");
    check_runs(what, &img, json_get(c, "runs"), pv ? pv->string : NULL);
    image_rgb_free(&img);
}
END_TEST

/* A model directory holding the config in the entry's layout. */
static char *write_config_dir(const char *layout, const char *settings)
{
    char tmpl[] = "/tmp/prism-naflex-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    char path[4200];
    const char *text = settings;
    if (strcmp(layout, "processor") == 0) {
        char outer[8400];
        snprintf(outer, sizeof outer, "{\"image_processor\": %s, \"processor_class\": "
                                      "\"Siglip2Processor\"}", text);
        snprintf(path, sizeof path, "%s/processor_config.json", tmpl);
        ck_assert_int_eq(test_write_file(path, outer, strlen(outer)), 0);
        /* the older file beside it, which the nested object overrides */
        const char *stale = "{\"patch_size\": 16, \"max_num_patches\": 256}";
        snprintf(path, sizeof path, "%s/preprocessor_config.json", tmpl);
        ck_assert_int_eq(test_write_file(path, stale, strlen(stale)), 0);
    } else if (strcmp(layout, "preprocessor") == 0) {
        snprintf(path, sizeof path, "%s/preprocessor_config.json", tmpl);
        ck_assert_int_eq(test_write_file(path, text, strlen(text)), 0);
    }
    char *dir = strdup(tmpl);
    ck_assert_ptr_nonnull(dir);
    return dir;
}

START_TEST(test_configs)
{
    const json_value *c = &section("configs")->items[_i];
    const char *name = str(c, "name"), *layout = str(c, "layout");
    char *dir = write_config_dir(layout, str(c, "config"));
    image_naflex cfg;
    prism_error err = {0};
    ck_assert_msg(image_naflex_load(&cfg, dir, &err) == 0, "%s: %s", name, err.msg);
    test_remove_dir(dir);
    const image_preproc_source want = strcmp(layout, "processor") == 0
                                          ? IMAGE_PREPROC_PROCESSOR_CONFIG
                                      : strcmp(layout, "preprocessor") == 0
                                          ? IMAGE_PREPROC_PREPROCESSOR_CONFIG
                                          : IMAGE_PREPROC_DEFAULTS;
    ck_assert_int_eq(cfg.pre.source, want);
    ck_assert_int_eq(cfg.patch_size, num(c, "patch"));
    ck_assert_int_eq(cfg.max_num_patches, num(c, "max_num_patches"));

    const json_value *inputs = json_get(c, "inputs");
    for (size_t k = 0; k < inputs->count; k++) {
        const json_value *in = &inputs->items[k];
        char what[512];
        snprintf(what, sizeof what, "config %s, %s", name, str(in, "src"));
        size_t len;
        uint8_t *data = read_source(str(in, "src"), &len);
        naflex_out o;
        out_alloc(&o, &cfg);
        ck_assert_msg(image_to_naflex(data, len, &cfg, 0, 0, o.pv, o.mask, &o.rows, &o.cols,
                                      &err) == 0,
                      "%s: %s", what, err.msg);
        check_out(what, &o, &cfg, num(in, "rows"), num(in, "cols"), num(in, "crc"), NULL);
        out_free(&o);
        free(data);
    }

    /* every value of each channel: one 16x16 patch, compared whole */
    image_naflex lutcfg = cfg;
    lutcfg.patch_size = 16, lutcfg.max_num_patches = 1;
    image_rgb img;
    lut_image(&img);
    naflex_out o;
    out_alloc(&o, &lutcfg);
    ck_assert_msg(image_rgb_to_naflex(&img, &lutcfg, 0, o.pv, o.mask, &o.rows, &o.cols, &err) ==
                      0,
                  "%s: %s", name, err.msg);
    int64_t numel;
    float *ref = test_golden_f32(&g_gold, str(c, "lut"), &numel);
    ck_assert_int_eq(numel, 768);
    ck_assert_msg(memcmp(o.pv, ref, 768 * sizeof *ref) == 0,
                  "config %s: the 0..255 patch is not bit-identical (max |diff| %g)", name,
                  test_max_abs_diff(o.pv, ref, 768));
    free(ref);
    out_free(&o);
    image_rgb_free(&img);
}
END_TEST

/* do_resize false: the image is cut as it is, and must fit the patches. */
START_TEST(test_no_resize)
{
    const json_value *c = json_get(g_manifest, "no_resize");
    ck_assert_ptr_nonnull(c);
    const char *text = str(c, "config");
    image_naflex cfg;
    prism_error err = {0};
    ck_assert_msg(image_naflex_parse(&cfg, text, strlen(text), "no_resize", &err) == 0, "%s",
                  err.msg);
    ck_assert(!cfg.pre.do_resize);
    image_rgb img;
    formula_image(&img, (int)num(c, "w"), (int)num(c, "h"));
    naflex_out o;
    out_alloc(&o, &cfg);
    ck_assert_msg(image_rgb_to_naflex(&img, &cfg, 0, o.pv, o.mask, &o.rows, &o.cols, &err) == 0,
                  "%s", err.msg);
    const size_t n = (size_t)cfg.max_num_patches * image_naflex_row_floats(&cfg);
    check_out("no_resize", &o, &cfg, num(c, "rows"), num(c, "cols"),
              crc_of(o.pv, n * sizeof *o.pv), str(c, "pv"));
    image_rgb_free(&img);

    /* 50 is not a multiple of 16: transformers fails to reshape */
    formula_image(&img, 50, 32);
    ck_assert_int_ne(image_rgb_to_naflex(&img, &cfg, 0, o.pv, o.mask, &o.rows, &o.cols, &err), 0);
    ck_assert_msg(strstr(err.msg, "do_resize"), "%s", err.msg);
    image_rgb_free(&img);
    /* 64x48 is 12 patches, more than the 8 rows */
    formula_image(&img, 64, 48);
    ck_assert_int_ne(image_rgb_to_naflex(&img, &cfg, 0, o.pv, o.mask, &o.rows, &o.cols, &err), 0);
    ck_assert_msg(strstr(err.msg, "max_num_patches"), "%s", err.msg);
    image_rgb_free(&img);
    out_free(&o);
}
END_TEST

/* The caller's bounds: the patch limit, the pixel limit, and sizes no
 * batch can hold. */
START_TEST(test_limits)
{
    char path[4096];
    size_t len;
    uint8_t *data = (uint8_t *)test_read_file(test_data_path(path, sizeof path,
                                                             "pillow/hopper.jpg"), &len);
    ck_assert_ptr_nonnull(data);
    image_naflex cfg;
    image_naflex_defaults(&cfg);
    cfg.max_num_patches = 1024;
    naflex_out o;
    out_alloc(&o, &cfg);
    prism_error err = {0};
    int rows, cols;
    /* max_num_patches above the caller's limit: refused before decoding */
    static const uint8_t junk[] = {1, 2, 3};
    ck_assert_int_ne(image_to_naflex(junk, sizeof junk, &cfg, 0, 512, o.pv, o.mask, &rows, &cols,
                                     &err), 0);
    ck_assert_msg(strstr(err.msg, "max_num_patches 1024"), "%s", err.msg);
    cfg.max_num_patches = IMAGE_NAFLEX_DEFAULT_PATCH_LIMIT + 1;
    ck_assert_int_ne(image_to_naflex(data, len, &cfg, 0, 0, o.pv, o.mask, &rows, &cols, &err), 0);
    cfg.max_num_patches = 1024;
    ck_assert_int_eq(image_to_naflex(data, len, &cfg, 0, 1024, o.pv, o.mask, &rows, &cols, &err),
                     0);
    /* the pixel limit (hopper is 128x128) */
    err.msg[0] = '\0';
    ck_assert_int_ne(image_to_naflex(data, len, &cfg, 128 * 128 - 1, 0, o.pv, o.mask, &rows,
                                     &cols, &err), 0);
    ck_assert_msg(strstr(err.msg, "too large"), "%s", err.msg);
    /* the mask may be left out */
    ck_assert_int_eq(image_to_naflex(data, len, &cfg, 128 * 128, 0, o.pv, NULL, &rows, &cols,
                                     &err), 0);
    out_free(&o);
    free(data);

    /* get_image_size_for_max_num_patches(2000000000, 1, 16, 1) gives
     * (2016, 16): 126 patches, which no row count of 1 holds */
    int ow, oh;
    ck_assert_int_ne(image_naflex_size(1, 2000000000, 16, 1, &ow, &oh, &err), 0);
    ck_assert_msg(strstr(err.msg, "126 patches"), "%s", err.msg);
    ck_assert_int_ne(image_naflex_size(0, 5, 16, 256, &ow, &oh, &err), 0);
    ck_assert_int_ne(image_naflex_size(5, 5, 0, 256, &ow, &oh, &err), 0);
    ck_assert_int_ne(image_naflex_size(5, 5, 16, 0, &ow, &oh, &err), 0);
    ck_assert_int_ne(image_naflex_size(5, 5, IMAGE_NAFLEX_MAX_PATCH_SIZE + 1, 256, &ow, &oh,
                                       &err), 0);
    /* the largest sides the types allow are computed, not overflowed */
    ck_assert_int_eq(image_naflex_size(2147483647, 1, 16, 1024, &ow, &oh, &err), 0);
    ck_assert(ow % 16 == 0 && oh == 16 && (ow / 16) * (oh / 16) <= 1024);
}
END_TEST

/* What transformers does with each key, checked against
 * Siglip2ImageProcessorPil by hand: None in arithmetic fails, None
 * switches are off, 'size' and 'do_center_crop' are not used. */
START_TEST(test_config_keys)
{
    static const struct {
        const char *json;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"{\"patch_size\": null}", "'patch_size' is null"},
        {"{\"max_num_patches\": null}", "'max_num_patches' is null"},
        {"{\"patch_size\": 0}", "'patch_size' must be an integer"},
        {"{\"patch_size\": 65}", "'patch_size' must be an integer"},
        {"{\"patch_size\": 16.5}", "'patch_size' must be an integer"},
        {"{\"max_num_patches\": \"256\"}", "'max_num_patches' must be an integer"},
        {"{\"resample\": 0}", "'resample' 0 (NEAREST) is not supported"},
        {"{\"image_mean\": null}", "'image_mean' is null"},
        {"{\"image_std\": null}", "'image_std' is null"},
        {"{\"rescale_factor\": null}", "'rescale_factor' is null"},
        {"{\"do_rescale\": \"yes\"}", "'do_rescale' must be true or false"},
        {"{\"image_mean\": null, \"do_normalize\": false}", NULL},
        {"{\"rescale_factor\": null, \"do_rescale\": null}", NULL},
        {"{\"size\": {\"shortest_edge\": 5}, \"do_center_crop\": true}", NULL},
        {"[1]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        image_naflex cfg;
        prism_error err = {0};
        int r = image_naflex_parse(&cfg, cases[i].json, strlen(cases[i].json), "cfg.json", &err);
        if (!cases[i].error) {
            ck_assert_msg(r == 0, "%s: %s", cases[i].json, err.msg);
            continue;
        }
        ck_assert_msg(r != 0, "%s accepted", cases[i].json);
        ck_assert_msg(strstr(err.msg, "cfg.json") && strstr(err.msg, cases[i].error),
                      "%s: '%s'", cases[i].json, err.msg);
    }
    /* the defaults, and a null switch turning a default-on step off */
    image_naflex cfg;
    prism_error err = {0};
    const char *nulls = "{\"do_resize\": null, \"do_normalize\": null, \"resample\": null}";
    ck_assert_int_eq(image_naflex_parse(&cfg, nulls, strlen(nulls), "n", &err), 0);
    ck_assert(!cfg.pre.do_resize && !cfg.pre.do_normalize && cfg.pre.do_rescale);
    ck_assert(!cfg.pre.do_convert_rgb && cfg.pre.resample == IMAGE_FILTER_BILINEAR);
    ck_assert_int_eq(cfg.patch_size, 16);
    ck_assert_int_eq(cfg.max_num_patches, 256);

    /* a broken file is named with its key */
    char *dir = write_config_dir("preprocessor", "{\"patch_size\": null}");
    ck_assert_int_ne(image_naflex_load(&cfg, dir, &err), 0);
    ck_assert_msg(strstr(err.msg, "preprocessor_config.json") && strstr(err.msg, "patch_size"),
                  "%s", err.msg);
    test_remove_dir(dir);
    /* SigLIP's reading of the same file is unchanged: null is refused there */
    dir = write_config_dir("preprocessor", "{\"do_convert_rgb\": null}");
    image_preproc pre;
    ck_assert_int_ne(image_preproc_load(&pre, dir, &err), 0);
    ck_assert_int_eq(image_naflex_load(&cfg, dir, &err), 0);
    test_remove_dir(dir);
}
END_TEST

int main(void)
{
    char path[4096], jerr[256];
    g_manifest = json_parse_file(test_data_path(path, sizeof path, "naflex_goldens.json"), jerr,
                                 sizeof jerr);
    if (!g_manifest) {
        fprintf(stderr, "test_image_naflex: %s\n", jerr);
        return EXIT_FAILURE;
    }
    prism_error err = {0};
    if (st_file_open(&g_gold, test_data_path(path, sizeof path, "naflex_goldens.safetensors"),
                     &err)) {
        fprintf(stderr, "test_image_naflex: %s\n", err.msg);
        return EXIT_FAILURE;
    }
    struct stat sb;
    g_have_shared = stat(PRISM_SHARED_TESTDATA "/pillow", &sb) == 0;
    if (!g_have_shared) {
        size_t skipped = 0;
        const json_value *files = json_get(g_manifest, "files");
        for (size_t i = 0; i < files->count; i++) {
            const json_value *src = json_get(&files->items[i], "src");
            skipped += src && src->type == JSON_STRING && strncmp(src->string, "shared:", 7) == 0;
        }
        printf("test_image_naflex: %s not found: %zu shared corpus cases SKIPPED\n",
               PRISM_SHARED_TESTDATA "/pillow", skipped);
    }

    Suite *s = suite_create("image_naflex");
    TCase *tc = tcase_create("image_naflex");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_sizes);
    tcase_add_loop_test(tc, test_files, 0, (int)json_get(g_manifest, "files")->count);
    tcase_add_loop_test(tc, test_formula, 0, (int)json_get(g_manifest, "formula")->count);
    tcase_add_loop_test(tc, test_configs, 0, (int)json_get(g_manifest, "configs")->count);
    tcase_add_test(tc, test_no_resize);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_config_keys);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    st_file_close(&g_gold);
    json_free(g_manifest);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
