/* api_request.c - JSON and multipart bodies to api_request (see
 * api_request.h). Every error names its field: "images[3]", "labels",
 * "dimensions". */
#include "api_request.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_codec.h"
#include "api_multipart.h"

static int oom(api_error *e)
{
    return api_errorf(e, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
}

static int add_image(api_request *r, uint8_t *data, size_t len, api_error *e)
{
    uint8_t **im = realloc(r->images, (size_t)(r->n_images + 1) * sizeof *im);
    if (im)
        r->images = im;
    size_t *il = im ? realloc(r->image_lens, (size_t)(r->n_images + 1) * sizeof *il) : NULL;
    if (il)
        r->image_lens = il;
    if (!im || !il) {
        free(data);
        return oom(e);
    }
    r->images[r->n_images] = data;
    r->image_lens[r->n_images++] = len;
    return 0;
}

/* A text of n bytes against max_text_bytes (413 "text_too_long"). */
static int text_len_check(size_t n, const char *param, const api_limits *lim, api_error *e)
{
    if (lim->max_text_bytes && n > lim->max_text_bytes)
        return api_errorf(e, API_ERR_TEXT_TOO_LONG, param, "%s is %zu bytes; at most %zu", param, n,
                          lim->max_text_bytes);
    return 0;
}

static int add_text(api_request *r, const char *s, size_t n, const char *param,
                    const api_limits *lim, api_error *e)
{
    if (text_len_check(n, param, lim, e))
        return -1;
    if (!api_utf8_valid(s, n))
        return api_errorf(e, API_ERR_INVALID_UTF8, param, "%s: text must be valid UTF-8", param);
    if (memchr(s, '\0', n))
        return api_errorf(e, API_ERR_INVALID_VALUE, param, "%s: text must not contain NUL",
                          param);
    char **t = realloc(r->texts, (size_t)(r->n_texts + 1) * sizeof *t);
    if (!t)
        return oom(e);
    r->texts = t;
    char *c = malloc(n + 1);
    if (!c)
        return oom(e);
    memcpy(c, s, n);
    c[n] = '\0';
    r->texts[r->n_texts++] = c;
    return 0;
}

static int add_input(api_request *r, bool is_image, int index, api_error *e)
{
    api_input *in = realloc(r->inputs, (size_t)(r->n_inputs + 1) * sizeof *in);
    if (!in)
        return oom(e);
    r->inputs = in;
    in[r->n_inputs++] = (api_input){is_image, index};
    return 0;
}

static int check_items(const api_request *r, int more, const api_limits *lim, const char *param,
                       api_error *e)
{
    if (r->n_images + r->n_texts + more > lim->max_items)
        return api_errorf(e, API_ERR_TOO_MANY_ITEMS, param,
                          "%s: at most %d images and texts in one request", param, lim->max_items);
    return 0;
}

/* A JSON array of strings under key; absent or null leaves *arr NULL. */
static int json_string_array(json_t *obj, const char *key, json_t **arr, api_error *e)
{
    json_t *v = json_object_get(obj, key);
    *arr = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, key, "%s must be an array of strings", key);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        if (!json_is_string(it)) {
            char p[64];
            snprintf(p, sizeof p, "%s[%zu]", key, i);
            return api_errorf(e, API_ERR_INVALID_TYPE, p, "%s must be a string", p);
        }
    }
    *arr = v;
    return 0;
}

static int take_images(api_request *r, json_t *arr, const char *key, const api_limits *lim,
                       api_error *e)
{
    size_t i;
    json_t *it;
    if (check_items(r, (int)json_array_size(arr), lim, key, e))
        return -1;
    json_array_foreach(arr, i, it) {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", key, i);
        uint8_t *d;
        size_t n;
        if (api_image_decode(json_string_value(it), json_string_length(it), p, &d, &n, e) ||
            add_image(r, d, n, e))
            return -1;
    }
    return 0;
}

static int take_texts(api_request *r, json_t *arr, const char *key, const api_limits *lim,
                      api_error *e)
{
    size_t i;
    json_t *it;
    if (check_items(r, (int)json_array_size(arr), lim, key, e))
        return -1;
    json_array_foreach(arr, i, it) {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", key, i);
        if (add_text(r, json_string_value(it), json_string_length(it), p, lim, e))
            return -1;
    }
    return 0;
}

static int dimensions_check(long long d, const api_limits *lim, api_error *e)
{
    if (d < 1 || d > lim->embed_dim)
        return api_errorf(e, API_ERR_INVALID_VALUE, "dimensions",
                          "dimensions must be an integer in [1, %d] (the model's width) or null",
                          lim->embed_dim);
    return 0;
}

static int json_dimensions(api_request *r, json_t *obj, const api_limits *lim, api_error *e)
{
    json_t *v = json_object_get(obj, "dimensions");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return api_errorf(e, API_ERR_INVALID_TYPE, "dimensions",
                          "dimensions must be an integer or null");
    if (dimensions_check(json_integer_value(v), lim, e))
        return -1;
    r->dimensions = (int)json_integer_value(v);
    return 0;
}

/* The "{}" in t[0..n), matched left to right without overlap (as
 * apply_template replaces them: "{{}}" holds one). */
static size_t template_slots(const char *t, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i + 1 < n;) {
        if (t[i] == '{' && t[i + 1] == '}') {
            k++;
            i += 2;
        } else {
            i++;
        }
    }
    return k;
}

/* The template on its own: its length, no NUL, at least one "{}". */
static int template_check(const char *t, size_t n, const api_limits *lim, api_error *e)
{
    const size_t max =
        lim->max_template_bytes ? lim->max_template_bytes : API_DEFAULT_MAX_TEMPLATE_BYTES;
    if (n > max)
        return api_errorf(e, API_ERR_TEMPLATE_TOO_LONG, "template",
                          "template is %zu bytes; at most %zu", n, max);
    if (memchr(t, '\0', n))
        return api_errorf(e, API_ERR_INVALID_VALUE, "template", "template must not contain NUL");
    if (!template_slots(t, n))
        return api_errorf(e, API_ERR_INVALID_VALUE, "template",
                          "template must contain {} where the label goes");
    return 0;
}

/* Bytes of a template of tn bytes with its `slots` "{}" each replaced by a
 * label of ln bytes; SIZE_MAX when that does not fit in a size_t. */
static size_t prompt_len(size_t tn, size_t slots, size_t ln)
{
    const size_t fixed = tn - 2 * slots; /* every slot is 2 of the tn bytes */
    if (ln && slots > (SIZE_MAX - 1 - fixed) / ln)
        return SIZE_MAX;
    return fixed + slots * ln;
}

/* Measures every label's prompt before any is built: each against
 * max_text_bytes (413 "text_too_long", "labels[i]"), their sum against
 * max_expanded_bytes (413 "template_too_long"). A size that overflows is
 * refused even without limits. lens[i] receives label i's length. */
static int template_measure(const api_request *r, size_t tn, size_t slots, size_t *lens,
                            const api_limits *lim, api_error *e)
{
    size_t total = 0;
    for (int i = 0; i < r->n_texts; i++) {
        lens[i] = strlen(r->texts[i]);
        const size_t n = prompt_len(tn, slots, lens[i]);
        char p[64];
        snprintf(p, sizeof p, "labels[%d]", i);
        if (n == SIZE_MAX)
            return api_errorf(e, API_ERR_TEXT_TOO_LONG, p,
                              "%s with the template applied is too large to hold", p);
        if (lim->max_text_bytes && n > lim->max_text_bytes)
            return api_errorf(e, API_ERR_TEXT_TOO_LONG, p,
                              "%s with the template applied is %zu bytes; at most %zu", p, n,
                              lim->max_text_bytes);
        total = n > SIZE_MAX - 1 - total ? SIZE_MAX : total + n;
        if (total == SIZE_MAX)
            return api_errorf(e, API_ERR_TEMPLATE_TOO_LONG, "template",
                              "template expands the labels past what memory can hold");
        if (lim->max_expanded_bytes && total > lim->max_expanded_bytes)
            return api_errorf(e, API_ERR_TEMPLATE_TOO_LONG, "template",
                              "template expands the labels past %zu bytes",
                              lim->max_expanded_bytes);
    }
    return 0;
}

/* Applies the classify template t[0..tn) (template_check passed) to every
 * label: each "{}" becomes it. The labels move to r->labels, the prompts
 * take their place in r->texts. */
static int apply_template(api_request *r, const char *t, size_t tn, const api_limits *lim,
                          api_error *e)
{
    const size_t slots = template_slots(t, tn);
    size_t *lens = malloc((r->n_texts ? (size_t)r->n_texts : 1) * sizeof *lens);
    if (!lens)
        return oom(e);
    if (template_measure(r, tn, slots, lens, lim, e)) {
        free(lens);
        return -1;
    }
    r->labels = r->texts;
    r->texts = calloc(r->n_texts ? (size_t)r->n_texts : 1, sizeof *r->texts);
    if (!r->texts) {
        free(lens);
        return oom(e);
    }
    for (int i = 0; i < r->n_texts; i++) {
        char *out = malloc(prompt_len(tn, slots, lens[i]) + 1), *o = out;
        if (!out) {
            free(lens);
            return oom(e);
        }
        for (size_t j = 0; j < tn;) {
            if (j + 1 < tn && t[j] == '{' && t[j + 1] == '}') {
                memcpy(o, r->labels[i], lens[i]);
                o += lens[i];
                j += 2;
            } else {
                *o++ = t[j++];
            }
        }
        *o = '\0';
        r->texts[i] = out;
    }
    free(lens);
    return 0;
}

static int parse_embed(api_request *r, json_t *root, const api_limits *lim, api_error *e)
{
    json_t *imgs, *txts;
    if (json_string_array(root, "images", &imgs, e) || json_string_array(root, "texts", &txts, e))
        return -1;
    size_t ni = imgs ? json_array_size(imgs) : 0, nt = txts ? json_array_size(txts) : 0;
    if (r->op == API_OP_SCORE && (!ni || !nt))
        return api_errorf(e, API_ERR_MISSING_FIELD, !ni ? "images" : "texts",
                          "score needs non-empty images and texts");
    if (ni + nt == 0)
        return api_errorf(e, API_ERR_MISSING_FIELD, "images",
                          "give images or texts (non-empty arrays), or both");
    if ((imgs && take_images(r, imgs, "images", lim, e)) ||
        (txts && take_texts(r, txts, "texts", lim, e)))
        return -1;
    if (r->op == API_OP_EMBED) {
        json_t *n = json_object_get(root, "normalize");
        if (n && !json_is_null(n)) {
            if (!json_is_boolean(n))
                return api_errorf(e, API_ERR_INVALID_TYPE, "normalize", "normalize must be a boolean");
            r->normalize = json_is_true(n);
        }
        if (json_dimensions(r, root, lim, e))
            return -1;
    }
    return 0;
}

static int parse_classify(api_request *r, json_t *root, const api_limits *lim, api_error *e)
{
    json_t *img = json_object_get(root, "image");
    if (!img || json_is_null(img))
        return api_errorf(e, API_ERR_MISSING_FIELD, "image", "image is required");
    if (!json_is_string(img))
        return api_errorf(e, API_ERR_INVALID_TYPE, "image",
                          "image must be a string (a data URL or base64)");
    json_t *labels;
    if (json_string_array(root, "labels", &labels, e))
        return -1;
    if (!labels || json_array_size(labels) == 0)
        return api_errorf(e, API_ERR_MISSING_FIELD, "labels",
                          "labels must be a non-empty array of strings");
    json_t *t = json_object_get(root, "template");
    const char *tmpl = API_DEFAULT_TEMPLATE;
    size_t tn = strlen(tmpl);
    if (t && !json_is_null(t)) {
        if (!json_is_string(t))
            return api_errorf(e, API_ERR_INVALID_TYPE, "template", "template must be a string");
        tmpl = json_string_value(t);
        tn = json_string_length(t);
    }
    if (template_check(tmpl, tn, lim, e))
        return -1;
    uint8_t *d;
    size_t n;
    if (check_items(r, 1, lim, "image", e) ||
        api_image_decode(json_string_value(img), json_string_length(img), "image", &d, &n, e) ||
        add_image(r, d, n, e) || take_texts(r, labels, "labels", lim, e))
        return -1;
    return apply_template(r, tmpl, tn, lim, e);
}

static int parse_embeddings(api_request *r, json_t *root, const api_limits *lim, api_error *e)
{
    json_t *in = json_object_get(root, "input");
    if (!in || json_is_null(in))
        return api_errorf(e, API_ERR_MISSING_FIELD, "input", "input is required");
    json_t *one = NULL;
    if (json_is_string(in)) {
        one = json_array();
        if (!one || json_array_append(one, in))
            return (json_decref(one), oom(e));
        in = one;
    }
    int rc = 0;
    if (!json_is_array(in) || json_array_size(in) == 0) {
        rc = api_errorf(e, API_ERR_INVALID_TYPE, "input",
                        "input must be a string or a non-empty array of strings");
        goto done;
    }
    if ((rc = check_items(r, (int)json_array_size(in), lim, "input", e)))
        goto done;
    size_t i;
    json_t *it;
    json_array_foreach(in, i, it) {
        char p[64];
        snprintf(p, sizeof p, "input[%zu]", i);
        if (!json_is_string(it)) {
            rc = api_errorf(e, API_ERR_INVALID_TYPE, p,
                            "%s must be a string (token-id arrays are not supported)", p);
            goto done;
        }
        const char *s = json_string_value(it);
        size_t n = json_string_length(it);
        if (api_is_image_data_url(s, n)) {
            uint8_t *d;
            size_t dn;
            if ((rc = api_image_decode(s, n, p, &d, &dn, e)) || (rc = add_image(r, d, dn, e)) ||
                (rc = add_input(r, true, r->n_images - 1, e)))
                goto done;
        } else if ((rc = add_text(r, s, n, p, lim, e)) ||
                   (rc = add_input(r, false, r->n_texts - 1, e))) {
            goto done;
        }
    }
    json_t *fmt = json_object_get(root, "encoding_format");
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_is_string(fmt) ? json_string_value(fmt) : "";
        if (strcmp(f, "float") == 0)
            r->base64 = false;
        else if (strcmp(f, "base64") == 0)
            r->base64 = true;
        else {
            rc = api_errorf(e, API_ERR_INVALID_VALUE, "encoding_format",
                            "encoding_format must be \"float\" or \"base64\"");
            goto done;
        }
    }
    json_t *m = json_object_get(root, "model");
    if (m && !json_is_null(m)) {
        if (!json_is_string(m)) {
            rc = api_errorf(e, API_ERR_INVALID_TYPE, "model", "model must be a string");
            goto done;
        }
        if (!(r->model = strdup(json_string_value(m)))) {
            rc = oom(e);
            goto done;
        }
    }
    rc = json_dimensions(r, root, lim, e);
done:
    json_decref(one);
    return rc;
}

static void request_init(api_request *r, api_op op)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->normalize = true;
}

/* max_num_patches (every op): how many patches a NaFlex model may cut each
 * image into; d < 0 stands for a value that is not an integer. */
static int max_patches_check(api_request *r, long long d, const api_limits *lim, api_error *e)
{
    if (lim->max_num_patches <= 0)
        return api_errorf(e, API_ERR_INVALID_VALUE, "max_num_patches",
                          "max_num_patches applies to NaFlex models (model_type siglip2) only; "
                          "this model has a fixed image size");
    if (d < 0)
        return api_errorf(e, API_ERR_INVALID_TYPE, "max_num_patches",
                          "max_num_patches must be an integer");
    if (d < 1)
        return api_errorf(e, API_ERR_INVALID_VALUE, "max_num_patches",
                          "max_num_patches must be at least 1");
    if (d > lim->max_num_patches)
        return api_errorf(e, API_ERR_TOO_MANY_PATCHES, "max_num_patches",
                          "max_num_patches %lld is over this server's limit of %d "
                          "(--max-num-patches)", d, lim->max_num_patches);
    r->max_num_patches = (int)d;
    return 0;
}

static int json_max_patches(api_request *r, json_t *root, const api_limits *lim, api_error *e)
{
    json_t *v = json_object_get(root, "max_num_patches");
    if (!v || json_is_null(v))
        return 0;
    long long d = json_is_integer(v) ? json_integer_value(v) : -1;
    if (json_is_integer(v) && d < 0)
        d = 0; /* negative: a value, not a type, at fault */
    return max_patches_check(r, d, lim, e);
}

int api_request_parse_json(api_request *r, api_op op, const char *body, size_t len,
                           const api_limits *lim, api_error *e)
{
    request_init(r, op);
    json_t *root = api_json_load_object(body, len, e);
    if (!root)
        return -1;
    int rc;
    if (op == API_OP_CLASSIFY)
        rc = parse_classify(r, root, lim, e);
    else if (op == API_OP_EMBEDDINGS)
        rc = parse_embeddings(r, root, lim, e);
    else
        rc = parse_embed(r, root, lim, e);
    if (rc == 0)
        rc = json_max_patches(r, root, lim, e);
    json_decref(root);
    if (rc)
        api_request_free(r);
    return rc;
}

/* A form field's decimal integer, or LLONG_MIN when it is not one. */
static long long form_int(const api_part *p)
{
    char num[24];
    char *end;
    if (p->len == 0 || p->len >= sizeof num)
        return LLONG_MIN;
    memcpy(num, p->data, p->len);
    num[p->len] = '\0';
    errno = 0;
    long long d = strtoll(num, &end, 10);
    return *end || errno ? LLONG_MIN : d;
}

/* "true"/"false"/"1"/"0" as forms send booleans. */
static int form_bool(const api_part *p, bool *out, api_error *e)
{
    if ((p->len == 4 && strncasecmp(p->data, "true", 4) == 0) || (p->len == 1 && p->data[0] == '1'))
        *out = true;
    else if ((p->len == 5 && strncasecmp(p->data, "false", 5) == 0) ||
             (p->len == 1 && p->data[0] == '0'))
        *out = false;
    else
        return api_errorf(e, API_ERR_INVALID_TYPE, p->name, "%s must be true or false", p->name);
    return 0;
}

int api_request_parse_multipart(api_request *r, api_op op, const char *content_type,
                                const char *body, size_t len, const api_limits *lim,
                                api_error *e)
{
    request_init(r, op);
    if (op == API_OP_EMBEDDINGS)
        return api_errorf(e, API_ERR_UNSUPPORTED_MEDIA_TYPE, NULL,
                          "/v1/embeddings takes application/json");
    api_form form;
    char msg[200];
    if (api_multipart_parse(&form, content_type, body, len, msg, sizeof msg))
        return api_errorf(e, API_ERR_INVALID_MULTIPART, NULL, "%s", msg);
    const char *tmpl = API_DEFAULT_TEMPLATE; /* or a part's bytes, inside body */
    size_t tn = strlen(tmpl);
    const char *text_key = op == API_OP_CLASSIFY ? "labels" : "texts";
    const char *text_key1 = op == API_OP_CLASSIFY ? "label" : "text";
    int rc = 0, ni = 0, nt = 0;
    for (int i = 0; i < form.n_parts && rc == 0; i++) {
        const api_part *p = &form.parts[i];
        char param[160];
        if (strcmp(p->name, "image") == 0 || strcmp(p->name, "images") == 0) {
            snprintf(param, sizeof param, "%s[%d]", p->name, ni++);
            if ((rc = check_items(r, 1, lim, p->name, e)))
                break;
            if (op == API_OP_CLASSIFY && r->n_images == 1) {
                rc = api_errorf(e, API_ERR_INVALID_VALUE, "image", "classify takes one image");
                break;
            }
            uint8_t *d;
            size_t n = p->len;
            if (api_part_is_raw_image(p)) {
                if (n == 0) {
                    rc = api_errorf(e, API_ERR_EMPTY_IMAGE, param, "%s: the image is empty", param);
                    break;
                }
                if (!(d = malloc(n))) {
                    rc = oom(e);
                    break;
                }
                memcpy(d, p->data, n);
            } else if ((rc = api_image_decode(p->data, p->len, param, &d, &n, e))) {
                break;
            }
            rc = add_image(r, d, n, e);
        } else if (strcmp(p->name, text_key) == 0 || strcmp(p->name, text_key1) == 0 ||
                   (strncmp(p->name, text_key, strlen(text_key)) == 0 &&
                    strcmp(p->name + strlen(text_key), "[]") == 0)) {
            snprintf(param, sizeof param, "%s[%d]", text_key, nt++);
            if (!(rc = check_items(r, 1, lim, text_key, e)))
                rc = add_text(r, p->data, p->len, param, lim, e);
        } else if (strcmp(p->name, "template") == 0 && op == API_OP_CLASSIFY) {
            if (!(rc = template_check(p->data, p->len, lim, e))) {
                if (!api_utf8_valid(p->data, p->len))
                    rc = api_errorf(e, API_ERR_INVALID_UTF8, "template",
                                    "template must be valid UTF-8");
                tmpl = p->data;
                tn = p->len;
            }
        } else if (strcmp(p->name, "normalize") == 0 && op == API_OP_EMBED) {
            rc = form_bool(p, &r->normalize, e);
        } else if (strcmp(p->name, "dimensions") == 0 && op == API_OP_EMBED) {
            long long d = form_int(p);
            if (!(rc = dimensions_check(d, lim, e)))
                r->dimensions = (int)d;
        } else if (strcmp(p->name, "max_num_patches") == 0) {
            long long d = form_int(p);
            rc = max_patches_check(r, d == LLONG_MIN ? -1 : d < 0 ? 0 : d, lim, e);
        }
        /* other parts are ignored, as JSON bodies' unknown keys are */
    }
    api_form_free(&form);
    if (rc == 0) {
        if (op == API_OP_CLASSIFY && r->n_images == 0)
            rc = api_errorf(e, API_ERR_MISSING_FIELD, "image", "image is required (a file part)");
        else if (op == API_OP_CLASSIFY && r->n_texts == 0)
            rc = api_errorf(e, API_ERR_MISSING_FIELD, "labels",
                            "labels are required (repeat the labels field)");
        else if (op == API_OP_SCORE && (!r->n_images || !r->n_texts))
            rc = api_errorf(e, API_ERR_MISSING_FIELD, !r->n_images ? "images" : "texts",
                            "score needs images and texts");
        else if (r->n_images + r->n_texts == 0)
            rc = api_errorf(e, API_ERR_MISSING_FIELD, "image", "give image parts or texts fields");
        else if (op == API_OP_CLASSIFY)
            rc = apply_template(r, tmpl, tn, lim, e);
    }
    if (rc)
        api_request_free(r);
    return rc;
}

void api_request_free(api_request *r)
{
    for (int i = 0; i < r->n_images; i++)
        free(r->images[i]);
    free(r->images);
    free(r->image_lens);
    for (int i = 0; i < r->n_texts; i++) {
        if (r->texts)
            free(r->texts[i]);
        if (r->labels)
            free(r->labels[i]);
    }
    free(r->texts);
    free(r->labels);
    free(r->inputs);
    free(r->model);
    memset(r, 0, sizeof *r);
}

/* JSON's whitespace only (RFC 8259: space, tab, line feed, carriage return). */
static bool json_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

json_t *api_json_load_object(const char *body, size_t len, api_error *e)
{
    if (!body || json_blank(body, len)) {
        api_errorf(e, API_ERR_INVALID_JSON, NULL,
                   "the request body is empty; send a JSON object");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        api_errorf(e, API_ERR_INVALID_JSON, NULL, "invalid JSON at line %d, column %d: %s",
                   jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        api_errorf(e, API_ERR_INVALID_JSON, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

int api_json_object_check(const char *body, size_t len, api_error *e)
{
    json_t *root = api_json_load_object(body, len, e);
    json_decref(root);
    return root ? 0 : -1;
}
