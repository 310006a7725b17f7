/* api_request.h - HTTP request bodies to typed requests.
 *
 * The server hands a complete body (JSON, or multipart/form-data for the
 * endpoints that take files) to these parsers and gets back an api_request
 * with images already base64-decoded to their file bytes, or an api_error
 * naming the field at fault. Nothing here knows HTTP transport or the model
 * beyond the limits passed in; images are not probed or decoded here (the
 * server's preprocessing workers do that).
 */
#ifndef PRISM_API_REQUEST_H
#define PRISM_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_error.h"

typedef enum api_op {
    API_OP_EMBED,      /* POST /v1/embed */
    API_OP_SCORE,      /* POST /v1/score */
    API_OP_CLASSIFY,   /* POST /v1/classify */
    API_OP_EMBEDDINGS, /* POST /v1/embeddings (OpenAI) */
} api_op;

#define API_DEFAULT_TEMPLATE "a photo of {}."
/* max_template_bytes when api_limits leaves it 0 */
#define API_DEFAULT_MAX_TEMPLATE_BYTES 1024

/* What one request may ask for. Classify prompts are measured before they
 * are built: a label of L bytes in a template of T bytes with k "{}" makes
 * a prompt of T + k * (L - 2) bytes, so a short body cannot make the parser
 * allocate far more than it. */
typedef struct api_limits {
    int max_items; /* images + texts (labels) in one request; more is a 413 */
    int embed_dim; /* `dimensions` must lie in [1, embed_dim] */
    size_t max_template_bytes; /* classify `template`; more is a 413 "template_too_long";
                                  0: API_DEFAULT_MAX_TEMPLATE_BYTES */
    size_t max_text_bytes;     /* one text, label prompt (template applied) or text input;
                                  more is a 413 "text_too_long" naming it; 0: no limit */
    size_t max_expanded_bytes; /* all label prompts of a classify request together; more is
                                  a 413 "template_too_long"; 0: no limit */
    int max_num_patches;       /* NaFlex models: the largest max_num_patches a request may
                                  ask for (more is a 413 "too_many_patches"); 0: the model
                                  has a fixed resolution and the field is refused (400) */
} api_limits;

typedef struct api_input {
    bool is_image;
    int index; /* into images[] or texts[] */
} api_input;

typedef struct api_request {
    api_op op;
    int n_images;
    uint8_t **images;   /* file bytes, one malloc'd buffer each */
    size_t *image_lens;
    int n_texts;
    char **texts;       /* NUL-terminated UTF-8; classify: label prompts (template applied) */
    char **labels;      /* classify: the labels as sent, n_texts of them */
    bool normalize;     /* embed: L2-normalise (default true) */
    int dimensions;     /* 0: the model's width; else truncate (and re-normalise) */
    int n_inputs;       /* embeddings: the inputs in request order */
    api_input *inputs;
    bool base64;        /* embeddings: encoding_format "base64" */
    char *model;        /* embeddings: the model field, NULL when absent */
    int max_num_patches; /* NaFlex images: patches per image at most; 0: the model's default */
} api_request;

int api_request_parse_json(api_request *r, api_op op, const char *body, size_t len,
                           const api_limits *lim, api_error *e);

/* multipart/form-data for embed, score and classify: file parts named
 * `image` or `images` (raw bytes; a non-file part of that name holds a data
 * URL or base64), repeated `texts` / `labels` fields, and `template`,
 * `normalize`, `dimensions`, `max_num_patches` fields. */
int api_request_parse_multipart(api_request *r, api_op op, const char *content_type,
                                const char *body, size_t len, const api_limits *lim,
                                api_error *e);

void api_request_free(api_request *r);

/* Checks that body is one JSON object (400 "invalid_json" otherwise), for
 * endpoints that refuse every request but must still tell a malformed one
 * (400) from an impossible one (422). */
int api_json_object_check(const char *body, size_t len, api_error *e);

/* The body as a jansson object (duplicate keys refused), or NULL with a 400
 * "invalid_json" in e; the body parsers' common first step. The caller
 * json_decref()s it. */
struct json_t;
struct json_t *api_json_load_object(const char *body, size_t len, api_error *e);

#endif
