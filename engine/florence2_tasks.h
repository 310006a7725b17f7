/* florence2_tasks.h - Florence-2's task prompts and the processor's
 * post-processing of generated text into captions, boxes and regions.
 *
 * Florence-2 is driven by task tokens: "<CAPTION>", "<OD>", "<OCR>", ...
 * Florence2Processor expands a task token into a natural-language prompt
 * (`_construct_prompts`: "<OD>" -> "Locate the objects with category name
 * in the image.", "<CAPTION_TO_PHRASE_GROUNDING>" + text -> the grounding
 * prompt with the text in it), and turns the generated text back into
 * results (`post_process_generation`): location tokens <loc_N> (N in
 * [0, 999], a bin of 1000 across the image) become boxes or quadrilaterals
 * in the input image's pixels. transformers' processor is the reference
 * (tools/reference/make_florence2_task_goldens.py; docs/florence2.md).
 *
 * Nothing here holds global state; a florence2_post_config is read-only
 * after loading and may be shared between threads.
 */
#ifndef PRISM_FLORENCE2_TASKS_H
#define PRISM_FLORENCE2_TASKS_H

#include <stdbool.h>
#include <stddef.h>

#include "prism_error.h"

/* Longest generated text florence2_post_process accepts (bytes). */
#define FLORENCE2_MAX_TEXT (4u << 20)

/* The post-processing kinds of the processor's task table. */
typedef enum florence2_post_kind {
    FLORENCE2_POST_PURE_TEXT,               /* <CAPTION>, <OCR>, ... */
    FLORENCE2_POST_OCR,                     /* <OCR_WITH_REGION> */
    FLORENCE2_POST_PHRASE_GROUNDING,        /* <CAPTION_TO_PHRASE_GROUNDING> */
    FLORENCE2_POST_POLYGONS,                /* <REFERRING_EXPRESSION_SEGMENTATION>, ... */
    FLORENCE2_POST_DESCRIPTION_WITH_BBOXES, /* <OD>, <DENSE_REGION_CAPTION>, ... */
    FLORENCE2_POST_DESCRIPTION_WITH_POLYGONS,
    FLORENCE2_POST_DESCRIPTION_WITH_BBOXES_OR_POLYGONS, /* <OPEN_VOCABULARY_DETECTION>: an item
                                             * with n_polygons > 0 is a polygon instance,
                                             * else a box */
    FLORENCE2_POST_BBOXES,                  /* <REGION_PROPOSAL>: boxes with empty labels */
    FLORENCE2_POST_KIND_COUNT
} florence2_post_kind;

/* The processor's configuration (processor_config.json's
 * "post_processor_config" when present; else the conversion script's
 * defaults): which kinds it supports (a kind it lacks is an error, as the
 * processor raises "Unsupported parse task"), the phrase-grounding
 * banned_grounding_tokens and the OCR AREA_THRESHOLD. A PATTERN other
 * than the default OCR pattern is refused at load. */
typedef struct florence2_post_config florence2_post_config;

/* Loads DIR/processor_config.json when it exists (defaults otherwise).
 * Errors name the file and key. */
int florence2_post_config_load(florence2_post_config **out, const char *dir, prism_error *err);
void florence2_post_config_free(florence2_post_config *cfg);

/* Whether the text is one of the processor's task tokens ("<OD>"). */
bool florence2_is_task_token(const char *text);

/* The post-processing kind of a task token; PURE_TEXT for text that is not
 * a task token, as the processor does. */
florence2_post_kind florence2_task_kind(const char *task);
/* The processor's name of a kind: "pure_text", "ocr", "description_with_bboxes", ... */
const char *florence2_post_kind_name(florence2_post_kind kind);

/* Florence2Processor._construct_prompts for one text: a task token that
 * takes no input must be the whole text and becomes its prompt (any other
 * text containing it is an error whose message names the task, as the
 * processor raises); a text containing a task token that takes an input
 * becomes that task's prompt with the rest of the text (every occurrence of
 * the token removed, then stripped) in it, which may be empty; any other
 * text is kept as is. The prompt is written NUL-terminated into out
 * (out_len bytes; too small is an error). The text must be UTF-8. */
int florence2_build_prompt(const char *text, char *out, size_t out_len, prism_error *err);

/* One result of post-processing. */
typedef struct florence2_item {
    char *label;          /* UTF-8 (owned by the result; consecutive items of one phrase
                           * share one string, as the processor's lists share one str) */
    int n_coords;         /* 4 for a box (x0, y0, x1, y1), 8 for a quad, 2k for a polygon */
    double *coords;       /* pixels of the input image (owned by the result) */
    int n_polygons;       /* POLYGONS kinds: how many polygons (coords holds them in order) */
    int *polygon_coords;  /* n_polygons lengths in coords (owned by the result) */
} florence2_item;

typedef struct florence2_result {
    florence2_post_kind kind;
    char *text;            /* PURE_TEXT: the text (owned); else NULL */
    florence2_item *items; /* the boxes, quads or polygons in order (owned) */
    int n_items;
} florence2_result;

/* Florence2Processor.post_process_generation(text, task, image_size=(w, h)):
 * text is the generated text decoded with special tokens kept (with <s>,
 * </s> and <pad>, as generated). cfg NULL: the defaults. Linear in the
 * text's length; text longer than FLORENCE2_MAX_TEXT, text that is not
 * UTF-8, width or height below 1, a kind cfg lacks, and the processor's own
 * errors (a bin of more than 4300 digits or past int64) are errors. *out is
 * untouched on error; free a result with florence2_result_free. */
int florence2_post_process(const florence2_post_config *cfg, const char *text, const char *task,
                           int width, int height, florence2_result *out, prism_error *err);
/* The same for a post-processing kind instead of a task token (the
 * DESCRIPTION_WITH_POLYGONS kind has no task). */
int florence2_post_process_kind(const florence2_post_config *cfg, const char *text,
                                florence2_post_kind kind, int width, int height,
                                florence2_result *out, prism_error *err);
void florence2_result_free(florence2_result *r);

/* Length of text without its trailing whitespace (Python str.strip's set),
 * for streaming a caption as it grows. */
size_t florence2_rstrip_len(const char *text, size_t len);

#endif
