/* api_response.h - results to JSON response bodies.
 *
 * Each function returns a malloc'd NUL-terminated JSON document (and its
 * length in *len when len is non-NULL), or NULL when out of memory. Floats
 * are written with 9 significant digits, enough to round-trip a float32,
 * as `prism embed` prints them.
 */
#ifndef PRISM_API_RESPONSE_H
#define PRISM_API_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "api_request.h"

/* POST /v1/embed: {"model","dim","image_embeddings","text_embeddings","usage"}. */
char *api_embed_json(const char *model, int dim, const float *img, int n_img, const float *txt,
                     int n_txt, long text_tokens, size_t *len);

/* POST /v1/score: logits [n_img, n_txt] and probs = sigmoid(logits). */
char *api_score_json(const char *model, const float *logits, int n_img, int n_txt, size_t *len);

/* POST /v1/classify: labels with scores, sorted by score (descending; ties
 * keep the request's order). */
char *api_classify_json(const char *model, char *const *labels, const float *scores, int n,
                        size_t *len);

/* POST /v1/embeddings (OpenAI). vec(i) is input i's embedding, `dim` wide:
 * img[k*dim] for an image input k, txt[k*dim] for a text input k. */
char *api_embeddings_json(const char *model, const api_request *r, const float *img,
                          const float *txt, int dim, long prompt_tokens, size_t *len);

/* One served model, for api_models_json. */
typedef struct api_model_info {
    const char *id;
    int embedding_dim; /* 0: not an embedding model (the field is left out) */
    const char *family; /* "siglip", "pali3", "paligemma" or "florence2" */
} api_model_info;

/* GET /v1/models: OpenAI's model list of the n served models, each with
 * `created` and its `family` (which endpoints and prompts it takes), plus
 * the server's version as "prism_version". */
char *api_models_json(const api_model_info *models, int n, const char *prism_version,
                      int64_t created, size_t *len);

/* {"status": status} for /healthz and /readyz. */
char *api_status_json(const char *status, size_t *len);

#endif
