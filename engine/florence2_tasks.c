/* florence2_tasks.c - Florence-2's task prompts and post-processing (see
 * florence2_tasks.h), as transformers' Florence2Processor and
 * Florence2PostProcessor compute them.
 *
 * The processor parses generated text with regular expressions. Each one is
 * reproduced here by a hand-written scanner that gives the same matches in
 * one pass (a regex engine would backtrack quadratically on hostile text):
 *
 *   ocr              (.+?)(<loc_\d+>){8}, findall
 *   boxes            ([^<]+(?:<loc_\d+>){4,}) or, for an empty phrase
 *                    allowed, (?:<loc_\d+>){4,}; the phrase is
 *                    ^\s*(.*?)(?=<loc_|...) of the match; boxes are
 *                    (<loc_\d+>){4} groups
 *   polygons         the same with <loc_\d+>|<sep>|<poly>|</poly> as the
 *                    repeated token; instances <poly>(.*?)</poly>; each
 *                    polygon ((?:<loc_\d+>)+)(?:<sep>|$)
 *
 * Text is UTF-8 (checked first); positions are bytes, and every rule that
 * moves one character at a time in Python moves here to the next '<' or
 * '\n', which cannot lie inside a multi-byte character. \d is Python's:
 * any Unicode decimal digit, whose value int() takes; \s, strip() and
 * isspace() are Python's whitespace (tok_unicode_is_space); '.' is any
 * character but '\n'.
 *
 * Dequantisation is the post-processor's torch code, in float32:
 *   coord = int32(float32(float32(bin) + 0.5f) * float32(size / 1000.0))
 * where size / 1000.0 is a Python (double) division and int32() truncates;
 * a float32 product out of int32's range gives INT32_MIN, as torch's
 * .int() does on x86.
 */
#include "florence2_tasks.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tok_unicode.h"

/* ---- tables ------------------------------------------------------------ */

/* Florence2Processor.tasks_answer_post_processing_type */
static const struct {
    const char *task;
    florence2_post_kind kind;
} task_kinds[] = {
    {"<OCR>", FLORENCE2_POST_PURE_TEXT},
    {"<OCR_WITH_REGION>", FLORENCE2_POST_OCR},
    {"<CAPTION>", FLORENCE2_POST_PURE_TEXT},
    {"<DETAILED_CAPTION>", FLORENCE2_POST_PURE_TEXT},
    {"<MORE_DETAILED_CAPTION>", FLORENCE2_POST_PURE_TEXT},
    {"<OD>", FLORENCE2_POST_DESCRIPTION_WITH_BBOXES},
    {"<DENSE_REGION_CAPTION>", FLORENCE2_POST_DESCRIPTION_WITH_BBOXES},
    {"<CAPTION_TO_PHRASE_GROUNDING>", FLORENCE2_POST_PHRASE_GROUNDING},
    {"<REFERRING_EXPRESSION_SEGMENTATION>", FLORENCE2_POST_POLYGONS},
    {"<REGION_TO_SEGMENTATION>", FLORENCE2_POST_POLYGONS},
    {"<OPEN_VOCABULARY_DETECTION>", FLORENCE2_POST_DESCRIPTION_WITH_BBOXES_OR_POLYGONS},
    {"<REGION_TO_CATEGORY>", FLORENCE2_POST_PURE_TEXT},
    {"<REGION_TO_DESCRIPTION>", FLORENCE2_POST_PURE_TEXT},
    {"<REGION_TO_OCR>", FLORENCE2_POST_PURE_TEXT},
    {"<REGION_PROPOSAL>", FLORENCE2_POST_BBOXES},
};
#define N_TASK_KINDS (sizeof task_kinds / sizeof task_kinds[0])

/* The processor's names of the kinds (post_processor_config's keys). */
static const char *const kind_names[FLORENCE2_POST_KIND_COUNT] = {
    [FLORENCE2_POST_PURE_TEXT] = "pure_text",
    [FLORENCE2_POST_OCR] = "ocr",
    [FLORENCE2_POST_PHRASE_GROUNDING] = "phrase_grounding",
    [FLORENCE2_POST_POLYGONS] = "polygons",
    [FLORENCE2_POST_DESCRIPTION_WITH_BBOXES] = "description_with_bboxes",
    [FLORENCE2_POST_DESCRIPTION_WITH_POLYGONS] = "description_with_polygons",
    [FLORENCE2_POST_DESCRIPTION_WITH_BBOXES_OR_POLYGONS] = "description_with_bboxes_or_polygons",
    [FLORENCE2_POST_BBOXES] = "bboxes",
};

/* task_prompts_without_inputs, in the processor's (checking) order */
static const struct {
    const char *task, *prompt;
} prompts_plain[] = {
    {"<OCR>", "What is the text in the image?"},
    {"<OCR_WITH_REGION>", "What is the text in the image, with regions?"},
    {"<CAPTION>", "What does the image describe?"},
    {"<DETAILED_CAPTION>", "Describe in detail what is shown in the image."},
    {"<MORE_DETAILED_CAPTION>", "Describe with a paragraph what is shown in the image."},
    {"<OD>", "Locate the objects with category name in the image."},
    {"<DENSE_REGION_CAPTION>", "Locate the objects in the image, with their descriptions."},
    {"<REGION_PROPOSAL>", "Locate the region proposals in the image."},
};

/* task_prompts_with_input: the prompt is before + input + after */
static const struct {
    const char *task, *before, *after;
} prompts_input[] = {
    {"<CAPTION_TO_PHRASE_GROUNDING>", "Locate the phrases in the caption: ", ""},
    {"<REFERRING_EXPRESSION_SEGMENTATION>", "Locate ", " in the image with mask"},
    {"<REGION_TO_SEGMENTATION>", "What is the polygon mask of region ", ""},
    {"<OPEN_VOCABULARY_DETECTION>", "Locate ", " in the image."},
    {"<REGION_TO_CATEGORY>", "What is the region ", "?"},
    {"<REGION_TO_DESCRIPTION>", "What does the region ", " describe?"},
    {"<REGION_TO_OCR>", "What text is in the region ", "?"},
};

/* The OCR pattern the post-processor uses when its config names none. */
static const char ocr_default_pattern[] =
    "(.+?)<loc_(\\d+)><loc_(\\d+)><loc_(\\d+)><loc_(\\d+)><loc_(\\d+)><loc_(\\d+)>"
    "<loc_(\\d+)><loc_(\\d+)>";

/* banned_grounding_tokens as transformers' conversion script
 * (convert_florence2_original_pytorch_to_hf.py) writes them, repeats kept. */
static const char *const default_banned[] = {
    "it", "I", "me", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "hers",
    "they", "them", "their", "theirs", "one", "oneself", "we", "us", "our", "ours", "you",
    "your", "yours", "they", "them", "their", "theirs", "mine", "yours", "his", "hers", "its",
    "ours", "yours", "theirs", "myself", "yourself", "himself", "herself", "itself",
    "ourselves", "yourselves", "themselves", "this", "that", "these", "those", "who", "whom",
    "whose", "which", "what", "who", "whom", "whose", "which", "that", "all", "another", "any",
    "anybody", "anyone", "anything", "each", "everybody", "everyone", "everything", "few",
    "many", "nobody", "none", "one", "several", "some", "somebody", "someone", "something",
    "each other", "one another", "myself", "yourself", "himself", "herself", "itself",
    "ourselves", "yourselves", "themselves", "the image", "image", "images", "the", "a", "an",
    "a group", "other objects", "lots", "a set",
};
#define N_DEFAULT_BANNED (sizeof default_banned / sizeof default_banned[0])

/* First code points of the runs of ten Unicode decimal digits (category Nd)
 * past ASCII, Unicode 14.0 (Python 3.11's unicodedata): cp - start is the
 * digit's value. */
static const uint32_t nd_starts[] = {
    0x660,   0x6F0,   0x7C0,   0x966,   0x9E6,   0xA66,   0xAE6,   0xB66,   0xBE6,   0xC66,
    0xCE6,   0xD66,   0xDE6,   0xE50,   0xED0,   0xF20,   0x1040,  0x1090,  0x17E0,  0x1810,
    0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,
    0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0,
    0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950,
    0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC,
    0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
};

/* CPython's default sys.get_int_max_str_digits(): int() of a longer
 * digit string raises. */
#define PY_INT_MAX_STR_DIGITS 4300

/* ---- configuration ----------------------------------------------------- */

typedef struct banned_token {
    const char *s;
    size_t len;
} banned_token;

struct florence2_post_config {
    unsigned kinds;        /* bit 1 << kind for each kind post_processor_config has */
    double area_threshold; /* ocr.AREA_THRESHOLD */
    size_t n_banned;
    banned_token *banned;  /* sorted by (length, bytes) for bsearch */
    char *banned_store;    /* the strings, when they came from a file */
};

static int banned_cmp(const void *a, const void *b)
{
    const banned_token *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

/* The conversion script's configuration, its banned list in the caller's
 * array of N_DEFAULT_BANNED. */
static void config_defaults(florence2_post_config *c, banned_token *banned)
{
    memset(c, 0, sizeof *c);
    c->kinds = (1u << FLORENCE2_POST_KIND_COUNT) - 1;
    for (size_t i = 0; i < N_DEFAULT_BANNED; i++)
        banned[i] = (banned_token){default_banned[i], strlen(default_banned[i])};
    qsort(banned, N_DEFAULT_BANNED, sizeof *banned, banned_cmp);
    c->banned = banned;
    c->n_banned = N_DEFAULT_BANNED;
}

void florence2_post_config_free(florence2_post_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->banned);
    free(cfg->banned_store);
    free(cfg);
}

/* The "ocr" member: PATTERN (null or the default) and AREA_THRESHOLD. The
 * lower-case "pattern" and "area_threshold" the conversion script writes
 * are not what the post-processor reads, and are ignored as it ignores
 * them. */
static int config_read_ocr(florence2_post_config *c, const json_value *ocr, const char *path,
                           prism_error *err)
{
    const json_value *pat = json_get(ocr, "PATTERN");
    if (pat && pat->type != JSON_NULL &&
        (pat->type != JSON_STRING || pat->length != strlen(ocr_default_pattern) ||
         memcmp(pat->string, ocr_default_pattern, pat->length) != 0))
        return prism_errorf(err,
                            "%s: post_processor_config.ocr.PATTERN: only the default OCR "
                            "pattern is supported",
                            path);
    const json_value *thr = json_get(ocr, "AREA_THRESHOLD");
    if (thr) {
        if (thr->type != JSON_NUMBER)
            return prism_errorf(err, "%s: post_processor_config.ocr.AREA_THRESHOLD: not a number",
                                path);
        c->area_threshold = thr->number;
    }
    return 0;
}

static int config_read_banned(florence2_post_config *c, const json_value *pg, const char *path,
                              prism_error *err)
{
    const json_value *list = json_get(pg, "banned_grounding_tokens");
    if (!list || list->type == JSON_NULL)
        return 0;
    if (list->type != JSON_ARRAY)
        return prism_errorf(err,
                            "%s: post_processor_config.phrase_grounding.banned_grounding_tokens: "
                            "not an array",
                            path);
    size_t total = 0;
    for (size_t i = 0; i < list->count; i++) {
        if (list->items[i].type != JSON_STRING)
            return prism_errorf(err,
                                "%s: post_processor_config.phrase_grounding."
                                "banned_grounding_tokens[%zu]: not a string",
                                path, i);
        total += list->items[i].length + 1;
    }
    c->banned = malloc((list->count ? list->count : 1) * sizeof *c->banned);
    c->banned_store = malloc(total ? total : 1);
    if (!c->banned || !c->banned_store)
        return prism_error_nomem(err, "%s: banned_grounding_tokens: out of memory", path);
    char *p = c->banned_store;
    for (size_t i = 0; i < list->count; i++) {
        const json_value *s = &list->items[i];
        memcpy(p, s->string, s->length);
        p[s->length] = '\0';
        c->banned[i] = (banned_token){p, s->length};
        p += s->length + 1;
    }
    c->n_banned = list->count;
    qsort(c->banned, c->n_banned, sizeof *c->banned, banned_cmp);
    return 0;
}

static int config_read(florence2_post_config *c, const json_value *ppc, const char *path,
                       prism_error *err)
{
    for (size_t i = 0; i < ppc->count; i++) {
        const json_value *v = &ppc->items[i];
        int kind = -1;
        for (int k = 0; k < FLORENCE2_POST_KIND_COUNT; k++)
            if (strcmp(ppc->keys[i], kind_names[k]) == 0)
                kind = k;
        if (kind < 0)
            continue; /* the post-processor never looks at other keys */
        if (v->type != JSON_OBJECT)
            return prism_errorf(err, "%s: post_processor_config.%s: not an object", path,
                                ppc->keys[i]);
        c->kinds |= 1u << kind;
        if (kind == FLORENCE2_POST_OCR && config_read_ocr(c, v, path, err) != 0)
            return -1;
        if (kind == FLORENCE2_POST_PHRASE_GROUNDING && !c->banned &&
            config_read_banned(c, v, path, err) != 0)
            return -1;
    }
    return 0;
}

int florence2_post_config_load(florence2_post_config **out, const char *dir, prism_error *err)
{
    *out = NULL;
    florence2_post_config *c = calloc(1, sizeof *c);
    if (!c)
        return prism_error_nomem(err, "florence2 post-processing config: out of memory");
    char path[4096];
    if (snprintf(path, sizeof path, "%s/processor_config.json", dir) >= (int)sizeof path) {
        free(c);
        return prism_errorf(err, "%s: path too long", dir);
    }
    FILE *f = fopen(path, "rb");
    const json_value *ppc = NULL;
    json_value *root = NULL;
    if (!f && errno != ENOENT) {
        free(c);
        return prism_errorf(err, "%s: %s", path, strerror(errno));
    }
    if (f) {
        fclose(f);
        char msg[256];
        root = json_parse_file(path, msg, sizeof msg);
        if (!root) {
            free(c);
            return prism_errorf(err, "%s", msg);
        }
        if (root->type != JSON_OBJECT) {
            json_free(root);
            free(c);
            return prism_errorf(err, "%s: not a JSON object", path);
        }
        ppc = json_get(root, "post_processor_config");
        if (ppc && ppc->type == JSON_NULL)
            ppc = NULL;
        if (ppc && ppc->type != JSON_OBJECT) {
            json_free(root);
            free(c);
            return prism_errorf(err, "%s: post_processor_config: not an object", path);
        }
    }
    if (!ppc) { /* no file, or a file without the key: the conversion script's */
        json_free(root);
        c->banned = malloc(N_DEFAULT_BANNED * sizeof *c->banned);
        if (!c->banned) {
            free(c);
            return prism_error_nomem(err, "florence2 post-processing config: out of memory");
        }
        banned_token *b = c->banned;
        config_defaults(c, b);
        *out = c;
        return 0;
    }
    int rc = config_read(c, ppc, path, err);
    json_free(root);
    if (rc != 0) {
        florence2_post_config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* ---- tasks and prompts ------------------------------------------------- */

bool florence2_is_task_token(const char *text)
{
    for (size_t i = 0; i < N_TASK_KINDS; i++)
        if (strcmp(text, task_kinds[i].task) == 0)
            return true;
    return false;
}

florence2_post_kind florence2_task_kind(const char *task)
{
    for (size_t i = 0; i < N_TASK_KINDS; i++)
        if (strcmp(task, task_kinds[i].task) == 0)
            return task_kinds[i].kind;
    return FLORENCE2_POST_PURE_TEXT;
}

const char *florence2_post_kind_name(florence2_post_kind kind)
{
    return (unsigned)kind < FLORENCE2_POST_KIND_COUNT ? kind_names[kind] : "unknown";
}

static bool is_space_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    uint32_t cp;
    *len = tok_utf8_char(s, n, i, &cp);
    return *len && tok_unicode_is_space(cp);
}

/* Python str.strip() of s[*a, *b) (valid UTF-8): narrows the range. */
static void strip_range(const char *s, size_t *a, size_t *b)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len;
    while (*a < *b && is_space_at(u, *b, *a, &len))
        *a += len;
    while (*b > *a) {
        size_t start = *b - 1;
        while (start > *a && (u[start] & 0xC0) == 0x80)
            start--;
        if (!is_space_at(u, *b, start, &len) || start + len != *b)
            break;
        *b = start;
    }
}

size_t florence2_rstrip_len(const char *text, size_t len)
{
    const unsigned char *u = (const unsigned char *)text;
    while (len > 0) {
        size_t start = len - 1, clen;
        while (start > 0 && len - start < 4 && (u[start] & 0xC0) == 0x80)
            start--;
        if (!is_space_at(u, len, start, &clen) || start + clen != len)
            break;
        len = start;
    }
    return len;
}

static int check_utf8(const char *s, size_t n, const char *what, prism_error *err)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = tok_utf8_char(u, n, i, &cp);
        if (!len)
            return prism_errorf(err, "%s: not UTF-8 at byte %zu", what, i);
        i += len;
    }
    return 0;
}

int florence2_build_prompt(const char *text, char *out, size_t out_len, prism_error *err)
{
    const size_t n = strlen(text);
    if (check_utf8(text, n, "florence2 prompt", err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof prompts_plain / sizeof prompts_plain[0]; i++) {
        if (!strstr(text, prompts_plain[i].task))
            continue;
        if (strcmp(text, prompts_plain[i].task) != 0)
            return prism_errorf(err, "Task token %s should be the only content in the prompt.",
                                prompts_plain[i].task);
        if (strlen(prompts_plain[i].prompt) + 1 > out_len)
            return prism_errorf(err, "florence2 prompt: longer than %zu bytes", out_len);
        strcpy(out, prompts_plain[i].prompt);
        return 0;
    }
    for (size_t i = 0; i < sizeof prompts_input / sizeof prompts_input[0]; i++) {
        const char *tok = prompts_input[i].task;
        if (!strstr(text, tok))
            continue;
        const size_t before = strlen(prompts_input[i].before);
        const size_t after = strlen(prompts_input[i].after);
        const size_t tl = strlen(tok);
        /* text.replace(task, ""), then strip */
        char *rest = malloc(n + 1);
        if (!rest)
            return prism_error_nomem(err, "florence2 prompt: out of memory");
        size_t rn = 0;
        for (const char *p = text;;) {
            const char *hit = strstr(p, tok);
            const size_t take = hit ? (size_t)(hit - p) : strlen(p);
            memcpy(rest + rn, p, take);
            rn += take;
            if (!hit)
                break;
            p = hit + tl;
        }
        size_t a = 0, b = rn;
        strip_range(rest, &a, &b);
        if (before + (b - a) + after + 1 > out_len) {
            free(rest);
            return prism_errorf(err, "florence2 prompt: longer than %zu bytes", out_len);
        }
        memcpy(out, prompts_input[i].before, before);
        memcpy(out + before, rest + a, b - a);
        memcpy(out + before + (b - a), prompts_input[i].after, after + 1);
        free(rest);
        return 0;
    }
    if (n + 1 > out_len)
        return prism_errorf(err, "florence2 prompt: longer than %zu bytes", out_len);
    memcpy(out, text, n + 1);
    return 0;
}

/* ---- location tokens --------------------------------------------------- */

/* A <loc_N> bin as int() and torch.tensor see it. */
typedef struct loc_bin {
    int64_t value;
    bool too_long; /* more than PY_INT_MAX_STR_DIGITS digits: int() raises */
    bool past_i64; /* past INT64_MAX: torch.tensor raises */
} loc_bin;

/* The value of the decimal digit (\d) at s[i], its length in *len; -1 when
 * there is none. */
static int digit_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    if (s[i] >= '0' && s[i] <= '9') {
        *len = 1;
        return s[i] - '0';
    }
    uint32_t cp;
    if (s[i] < 0x80 || !(*len = tok_utf8_char(s, n, i, &cp)))
        return -1;
    size_t lo = 0, hi = sizeof nd_starts / sizeof nd_starts[0];
    while (lo < hi) { /* the last start <= cp */
        const size_t mid = (lo + hi) / 2;
        if (nd_starts[mid] <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || cp - nd_starts[lo - 1] >= 10)
        return -1;
    return (int)(cp - nd_starts[lo - 1]);
}

/* Length of the token <loc_\d+> at t[i] (0 when none there); its bin into
 * *bin when bin is not NULL. */
static size_t loc_at(const char *t, size_t n, size_t i, loc_bin *bin)
{
    const unsigned char *u = (const unsigned char *)t;
    if (n - i < 7 || memcmp(t + i, "<loc_", 5) != 0)
        return 0;
    size_t j = i + 5, len, digits = 0;
    loc_bin b = {0, false, false};
    int d;
    while (j < n && (d = digit_at(u, n, j, &len)) >= 0) {
        if (!b.past_i64) {
            if (b.value > (INT64_MAX - d) / 10)
                b.past_i64 = true;
            else
                b.value = b.value * 10 + d;
        }
        digits++;
        j += len;
    }
    if (digits == 0 || j >= n || t[j] != '>')
        return 0;
    b.too_long = digits > PY_INT_MAX_STR_DIGITS;
    if (bin)
        *bin = b;
    return j + 1 - i;
}

/* The polygon parser's repeated token: <loc_\d+>, <sep>, <poly> or </poly>. */
static size_t ptoken_at(const char *t, size_t n, size_t i)
{
    static const char *const lit[] = {"<sep>", "<poly>", "</poly>"};
    size_t len = loc_at(t, n, i, NULL);
    if (len)
        return len;
    for (int k = 0; k < 3; k++) {
        const size_t l = strlen(lit[k]);
        if (n - i >= l && memcmp(t + i, lit[k], l) == 0)
            return l;
    }
    return 0;
}

static bool starts_with(const char *t, size_t n, size_t i, const char *lit)
{
    const size_t l = strlen(lit);
    return n - i >= l && memcmp(t + i, lit, l) == 0;
}

/* float32 arithmetic of the post-processor's dequantize, one coordinate. */
static double dequant_one(int64_t bin, int size)
{
    const float per_bin = (float)((double)size / 1000.0);
    const float v = ((float)bin + 0.5f) * per_bin;
    if (!(v >= -2147483648.0f && v < 2147483648.0f))
        return (double)INT32_MIN; /* x86 cvttss2si, torch's .int() */
    return (double)(int32_t)v;
}

/* ---- results ----------------------------------------------------------- */

typedef struct parse_ctx {
    const florence2_post_config *cfg;
    int width, height;
    florence2_result *res;
    int cap;             /* items allocated */
    prism_error *err;
} parse_ctx;

void florence2_result_free(florence2_result *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_items; i++) {
        if (i == 0 || r->items[i].label != r->items[i - 1].label)
            free(r->items[i].label);
        free(r->items[i].coords);
        free(r->items[i].polygon_coords);
    }
    free(r->items);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* Bins to coordinates (x, y alternating), raising as int() / torch.tensor
 * would. */
static int dequant(parse_ctx *c, const loc_bin *bins, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        if (bins[i].too_long)
            return prism_errorf(c->err, "Exceeds the limit (%d digits) for integer string "
                                        "conversion", PY_INT_MAX_STR_DIGITS);
        if (bins[i].past_i64)
            return prism_errorf(c->err, "Overflow when unpacking long long");
        out[i] = dequant_one(bins[i].value, i % 2 == 0 ? c->width : c->height);
    }
    return 0;
}

static char *dup_range(const char *s, size_t a, size_t b)
{
    char *r = malloc(b - a + 1);
    if (r) {
        memcpy(r, s + a, b - a);
        r[b - a] = '\0';
    }
    return r;
}

/* A new item with the label (which the caller still owns on failure). */
static florence2_item *item_add(parse_ctx *c, char *label)
{
    florence2_result *r = c->res;
    if (r->n_items == c->cap) {
        const int cap = c->cap ? c->cap * 2 : 16;
        florence2_item *it = realloc(r->items, (size_t)cap * sizeof *it);
        if (!it) {
            prism_error_nomem(c->err, "florence2 post-processing: out of memory");
            return NULL;
        }
        r->items = it;
        c->cap = cap;
    }
    florence2_item *it = &r->items[r->n_items++];
    memset(it, 0, sizeof *it);
    it->label = label;
    return it;
}

/* Growing arrays of bins and polygon lengths, reused across phrases. */
typedef struct bin_vec {
    loc_bin *v;
    size_t n, cap;
} bin_vec;

static int bin_push(parse_ctx *c, bin_vec *b, loc_bin x)
{
    if (b->n == b->cap) {
        const size_t cap = b->cap ? b->cap * 2 : 64;
        loc_bin *v = realloc(b->v, cap * sizeof *v);
        if (!v)
            return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
    return 0;
}

/* ---- OCR --------------------------------------------------------------- */

/* The number of <loc_> tokens in a row at t[i], counting at most max. */
static size_t loc_run(const char *t, size_t n, size_t i, size_t max)
{
    size_t k = 0, len;
    while (k < max && i < n && (len = loc_at(t, n, i, NULL)) != 0)
        k++, i += len;
    return k;
}

static int ocr_add(parse_ctx *c, const char *t, size_t a, size_t q, const loc_bin *bins)
{
    double quad[8];
    if (dequant(c, bins, 8, quad) != 0)
        return -1;
    if (c->cfg->area_threshold > 0) {
        /* the processor's shoelace sum runs over i = 0..2 only, in Python ints */
        __int128 s = 0;
        for (int i = 0; i < 3; i++)
            s += (__int128)(int64_t)quad[2 * i] * (int64_t)quad[2 * i + 3] -
                 (__int128)(int64_t)quad[2 * i + 2] * (int64_t)quad[2 * i + 1];
        const double area = 0.5 * (double)(s < 0 ? -s : s);
        if (area < (double)((int64_t)c->width * c->height) * c->cfg->area_threshold)
            return 0;
    }
    size_t la = a, lb = q;
    strip_range(t, &la, &lb);
    char *label = dup_range(t, la, lb);
    double *coords = malloc(sizeof quad);
    florence2_item *it = label && coords ? item_add(c, label) : NULL;
    if (!it) {
        free(coords);
        free(label);
        if (!label || !coords)
            return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
        return -1;
    }
    memcpy(coords, quad, sizeof quad);
    it->coords = coords;
    it->n_coords = 8;
    return 0;
}

/* findall((.+?)<loc_(\d+)>{8}): from a start p, the first q past p's
 * character with eight tokens at q and no '\n' in [p, q). A '\n' at q ends
 * every match that starts at or before it: the scan goes on past it, and no
 * position is looked at twice. */
static int parse_ocr(parse_ctx *c, const char *t, size_t n)
{
    size_t p = 0;
    while (p < n) {
        if (t[p] == '\n') {
            p++;
            continue;
        }
        size_t q = p + 1;
        while (q < n && t[q] != '\n' && !(t[q] == '<' && loc_run(t, n, q, 8) == 8))
            q++;
        if (q == n)
            return 0;
        if (t[q] == '\n') {
            p = q + 1;
            continue;
        }
        loc_bin bins[8];
        size_t e = q;
        for (int k = 0; k < 8; k++)
            e += loc_at(t, n, e, &bins[k]);
        if (ocr_add(c, t, p, q, bins) != 0)
            return -1;
        p = e;
    }
    return 0;
}

/* ---- boxes ------------------------------------------------------------- */

static bool is_banned(const florence2_post_config *cfg, const char *s, size_t len)
{
    const banned_token key = {s, len};
    return cfg->n_banned &&
           bsearch(&key, cfg->banned, cfg->n_banned, sizeof key, banned_cmp) != NULL;
}

/* ^\s*(.*?)(?=<loc_|...) on a phrase whose first '<' (at lt) starts a
 * token: the match is [a, lt) unless a '\n' follows the leading
 * whitespace; false then. */
static bool phrase_match(const char *t, size_t a, size_t lt)
{
    const unsigned char *u = (const unsigned char *)t;
    size_t i = a, len;
    while (i < lt && is_space_at(u, lt, i, &len))
        i += len;
    return memchr(t + i, '\n', lt - i) == NULL;
}

/* One phrase of the box kinds: label t[a, b), then the tokens [b, e). */
static int boxes_phrase(parse_ctx *c, const char *t, size_t n, size_t a, size_t b, size_t e,
                        bool grounding, bin_vec *bins)
{
    if (!phrase_match(t, a, b))
        return 0;
    size_t la = a, lb = b;
    strip_range(t, &la, &lb);
    if (grounding && is_banned(c->cfg, t + la, lb - la))
        return 0;
    bins->n = 0;
    for (size_t i = b; i < e;) {
        loc_bin x;
        i += loc_at(t, n, i, &x);
        if (bin_push(c, bins, x) != 0)
            return -1;
    }
    const size_t n_boxes = bins->n / 4;
    /* every bin of every box through int() and the tensor before any box */
    double *all = malloc((n_boxes ? n_boxes : 1) * 4 * sizeof *all);
    if (!all)
        return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
    if (dequant(c, bins->v, n_boxes * 4, all) != 0) {
        free(all);
        return -1;
    }
    char *label = malloc(lb - la + 1); /* encode("ascii", "ignore") */
    if (!label) {
        free(all);
        return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
    }
    size_t ln = 0;
    for (size_t i = la; i < lb; i++)
        if ((unsigned char)t[i] < 0x80)
            label[ln++] = t[i];
    label[ln] = '\0';
    for (size_t k = 0; k < n_boxes; k++) {
        florence2_item *it = item_add(c, label);
        double *coords = it ? malloc(4 * sizeof *coords) : NULL;
        if (!coords) {
            free(all);
            if (k == 0 && !it)
                free(label);
            if (it) /* the item holds the label now; the result frees it */
                return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
            return -1;
        }
        memcpy(coords, all + 4 * k, 4 * sizeof *coords);
        it->coords = coords;
        it->n_coords = 4;
    }
    if (n_boxes == 0)
        free(label);
    free(all);
    return 0;
}

/* findall of ([^<]+(?:T){4,}) (with_phrase) or (?:T){4,}, T the token
 * tok_at recognises: calls fn for each match [a, e) with the tokens from b.
 * A run of non-'<' characters matches from its first scanned character or
 * not at all, so each run and each '<' is looked at once (and at most four
 * tokens past it). */
typedef int (*phrase_fn)(parse_ctx *c, const char *t, size_t n, size_t a, size_t b, size_t e,
                         void *arg);

static size_t tok_run(const char *t, size_t n, size_t i, size_t max, bool poly, size_t *end)
{
    size_t k = 0, len;
    while (k < max && i < n && (len = poly ? ptoken_at(t, n, i) : loc_at(t, n, i, NULL)) != 0)
        k++, i += len;
    if (end)
        *end = i;
    return k;
}

static int find_phrases(parse_ctx *c, const char *t, size_t n, bool with_phrase, bool poly,
                        phrase_fn fn, void *arg)
{
    size_t p = 0;
    while (p < n) {
        size_t b = p;
        if (with_phrase) {
            if (t[p] == '<') {
                p++;
                continue;
            }
            const char *lt = memchr(t + p, '<', n - p);
            if (!lt)
                return 0;
            b = (size_t)(lt - t);
        } else if (t[p] != '<') {
            const char *lt = memchr(t + p, '<', n - p);
            if (!lt)
                return 0;
            p = (size_t)(lt - t);
            continue;
        }
        if (tok_run(t, n, b, 4, poly, NULL) < 4) {
            p = with_phrase ? b : p + 1;
            continue;
        }
        size_t e;
        tok_run(t, n, b, SIZE_MAX, poly, &e);
        if (fn(c, t, n, p, b, e, arg) != 0)
            return -1;
        p = e;
    }
    return 0;
}

typedef struct boxes_arg {
    bool grounding;
    bin_vec bins;
} boxes_arg;

static int boxes_cb(parse_ctx *c, const char *t, size_t n, size_t a, size_t b, size_t e,
                    void *arg)
{
    boxes_arg *x = arg;
    return boxes_phrase(c, t, n, a, b, e, x->grounding, &x->bins);
}

static int parse_boxes(parse_ctx *c, const char *t, size_t n, bool with_phrase, bool grounding)
{
    boxes_arg x = {grounding, {NULL, 0, 0}};
    const int rc = find_phrases(c, t, n, with_phrase, false, boxes_cb, &x);
    free(x.bins.v);
    return rc;
}

/* ---- polygons ---------------------------------------------------------- */

typedef struct poly_arg {
    bin_vec bins;
    int *lens;
    size_t n_lens, cap_lens;
} poly_arg;

/* One instance t[a, z): its polygons ((?:<loc_\d+>)+)(?:<sep>|$) into an
 * item labelled `label`; *added whether one was (the item then holds the
 * label). */
static int poly_instance(parse_ctx *c, const char *t, size_t a, size_t z, char *label,
                         poly_arg *x, bool *added)
{
    *added = false;
    x->bins.n = 0;
    x->n_lens = 0;
    for (size_t i = a; i < z;) {
        if (t[i] != '<') {
            const char *lt = memchr(t + i, '<', z - i);
            i = lt ? (size_t)(lt - t) : z;
            continue;
        }
        size_t len = loc_at(t, z, i, NULL);
        if (!len) {
            i++;
            continue;
        }
        size_t r1 = i;
        const size_t first = x->bins.n;
        loc_bin bin;
        while (r1 < z && (len = loc_at(t, z, r1, &bin)) != 0) {
            if (bin_push(c, &x->bins, bin) != 0)
                return -1;
            r1 += len;
        }
        const bool sep = starts_with(t, z, r1, "<sep>");
        if (r1 != z && !sep) { /* every suffix of this run fails the same way */
            x->bins.n = first;
            i = r1;
            continue;
        }
        size_t count = x->bins.n - first;
        for (size_t k = first; k < x->bins.n; k++) /* int() of each, odd one included */
            if (x->bins.v[k].too_long)
                return dequant(c, &x->bins.v[k], 1, &(double){0});
        if (count % 2 == 1) {
            x->bins.n--;
            count--;
        }
        if (x->n_lens == x->cap_lens) {
            const size_t cap = x->cap_lens ? x->cap_lens * 2 : 16;
            int *l = realloc(x->lens, cap * sizeof *l);
            if (!l)
                return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
            x->lens = l;
            x->cap_lens = cap;
        }
        x->lens[x->n_lens++] = (int)count;
        i = sep ? r1 + 5 : z;
    }
    if (x->n_lens == 0)
        return 0;
    double *coords = malloc((x->bins.n ? x->bins.n : 1) * sizeof *coords);
    int *lens = malloc(x->n_lens * sizeof *lens);
    if (!coords || !lens) {
        free(coords);
        free(lens);
        return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
    }
    /* each polygon's bins are (x, y) pairs from its start: an even offset */
    if (dequant(c, x->bins.v, x->bins.n, coords) != 0) {
        free(coords);
        free(lens);
        return -1;
    }
    memcpy(lens, x->lens, x->n_lens * sizeof *lens);
    florence2_item *it = item_add(c, label);
    if (!it) {
        free(coords);
        free(lens);
        return -1;
    }
    *added = true;
    it->coords = coords;
    it->n_coords = (int)x->bins.n;
    it->polygon_coords = lens;
    it->n_polygons = (int)x->n_lens;
    return 0;
}

/* The first "<loc_" or "<poly>" at or after i in [i, e), or e. */
static size_t next_phrase_end(const char *t, size_t i, size_t e)
{
    for (; i < e; i++)
        if (t[i] == '<' && (starts_with(t, e, i, "<loc_") || starts_with(t, e, i, "<poly>")))
            return i;
    return e;
}

static int poly_cb(parse_ctx *c, const char *t, size_t n, size_t a, size_t b, size_t e,
                   void *arg)
{
    poly_arg *x = arg;
    (void)n;
    (void)b;
    /* re.sub(r"^<loc_\d+>", "", phrase_text, count=1) */
    const size_t s0 = a + loc_at(t, e, a, NULL);
    /* ^\s*(.*?)(?=<od>|</od>|<box>|</box>|<bbox>|</bbox>|<loc_|<poly>): only
     * <loc_ and <poly> can occur in a phrase */
    const unsigned char *u = (const unsigned char *)t;
    size_t i = s0, len;
    while (i < e && is_space_at(u, e, i, &len))
        i += len;
    const size_t end = next_phrase_end(t, i, e);
    if (end == e || memchr(t + i, '\n', end - i))
        return 0;
    size_t la = s0, lb = end;
    strip_range(t, &la, &lb);
    char *label = dup_range(t, la, lb);
    if (!label)
        return prism_error_nomem(c->err, "florence2 post-processing: out of memory");
    bool shared = false, added;
    /* '<' occurs in a phrase only in its tokens, so substring tests and
     * <poly>(.*?)</poly> are token scans */
    bool has_open = false, has_close = false;
    for (size_t k = a; k < e; k++)
        if (t[k] == '<') {
            has_open = has_open || starts_with(t, e, k, "<poly>");
            has_close = has_close || starts_with(t, e, k, "</poly>");
        }
    int rc = 0;
    if (has_open && has_close) {
        size_t k = a;
        while (rc == 0 && k < e) {
            if (t[k] != '<' || !starts_with(t, e, k, "<poly>")) {
                k++;
                continue;
            }
            size_t j = k + 6;
            while (j < e && !(t[j] == '<' && starts_with(t, e, j, "</poly>")))
                j++;
            if (j == e)
                break; /* no </poly> after this <poly>, nor after any later one */
            rc = poly_instance(c, t, k + 6, j, label, x, &added);
            shared = shared || added;
            k = j + 7;
        }
    } else {
        rc = poly_instance(c, t, a, e, label, x, &added);
        shared = added;
    }
    if (!shared)
        free(label);
    return rc;
}

static int parse_polygons(parse_ctx *c, const char *t, size_t n, bool with_phrase)
{
    poly_arg x = {{NULL, 0, 0}, NULL, 0, 0};
    const int rc = find_phrases(c, t, n, with_phrase, true, poly_cb, &x);
    free(x.bins.v);
    free(x.lens);
    return rc;
}

/* ---- post_process_generation ------------------------------------------- */

/* s.replace(pat, "") in place; returns the new length. */
static size_t remove_all(char *s, size_t n, const char *pat)
{
    const size_t pl = strlen(pat);
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        if (s[r] == pat[0] && n - r >= pl && memcmp(s + r, pat, pl) == 0) {
            r += pl;
            continue;
        }
        s[w++] = s[r++];
    }
    s[w] = '\0';
    return w;
}

int florence2_post_process_kind(const florence2_post_config *cfg, const char *text,
                                florence2_post_kind kind, int width, int height,
                                florence2_result *out, prism_error *err)
{
    florence2_post_config defaults;
    banned_token default_list[N_DEFAULT_BANNED];
    if (!cfg) {
        config_defaults(&defaults, default_list);
        cfg = &defaults;
    }
    if ((unsigned)kind >= FLORENCE2_POST_KIND_COUNT)
        return prism_errorf(err, "florence2 post-processing: unknown kind %d", (int)kind);
    if (!(cfg->kinds & (1u << kind)))
        return prism_errorf(err, "Unsupported parse task: %s", kind_names[kind]);
    if (width < 1 || height < 1)
        return prism_errorf(err, "florence2 post-processing: image size %dx%d", width, height);
    const size_t n0 = strnlen(text, FLORENCE2_MAX_TEXT + 1);
    if (n0 > FLORENCE2_MAX_TEXT)
        return prism_errorf(err, "florence2 post-processing: text longer than %u bytes",
                            FLORENCE2_MAX_TEXT);
    if (check_utf8(text, n0, "florence2 generated text", err) != 0)
        return -1;
    char *t = malloc(n0 + 1);
    if (!t)
        return prism_error_nomem(err, "florence2 post-processing: out of memory");
    memcpy(t, text, n0 + 1);

    florence2_result res = {.kind = kind};
    parse_ctx c = {cfg, width, height, &res, 0, err};
    int rc = 0;
    size_t n = remove_all(t, n0, "<s>");
    n = remove_all(t, n, "</s>");
    if (kind == FLORENCE2_POST_PURE_TEXT) { /* <pad> stays, as the processor leaves it */
        size_t a = 0, b = n;
        strip_range(t, &a, &b);
        memmove(t, t + a, b - a);
        t[b - a] = '\0';
        res.text = t;
        *out = res;
        return 0;
    }
    n = remove_all(t, n, "<pad>");
    switch (kind) {
    case FLORENCE2_POST_OCR:
        rc = parse_ocr(&c, t, n);
        break;
    case FLORENCE2_POST_PHRASE_GROUNDING:
        rc = parse_boxes(&c, t, n, true, true);
        break;
    case FLORENCE2_POST_DESCRIPTION_WITH_BBOXES:
        rc = parse_boxes(&c, t, n, true, false);
        break;
    case FLORENCE2_POST_BBOXES:
        rc = parse_boxes(&c, t, n, false, false);
        break;
    case FLORENCE2_POST_POLYGONS:
        rc = parse_polygons(&c, t, n, false);
        break;
    case FLORENCE2_POST_DESCRIPTION_WITH_POLYGONS:
        rc = parse_polygons(&c, t, n, true);
        break;
    case FLORENCE2_POST_DESCRIPTION_WITH_BBOXES_OR_POLYGONS:
        /* the choice looks at the text before <s>, </s> and <pad> go */
        if (strstr(text, "<poly>"))
            rc = parse_polygons(&c, t, n, true);
        else
            rc = parse_boxes(&c, t, n, true, false);
        break;
    default:
        break;
    }
    free(t);
    if (rc != 0) {
        florence2_result_free(&res);
        return -1;
    }
    *out = res;
    return 0;
}

int florence2_post_process(const florence2_post_config *cfg, const char *text, const char *task,
                           int width, int height, florence2_result *out, prism_error *err)
{
    return florence2_post_process_kind(cfg, text, florence2_task_kind(task), width, height, out,
                                       err);
}
