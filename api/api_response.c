/* api_response.c - JSON response bodies (see api_response.h). */
#include "api_response.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_buf.h"
#include "api_codec.h"

static void put_model(api_buf *b, const char *model)
{
    api_buf_puts(b, "{\"model\":");
    api_buf_json_string(b, model, strlen(model));
}

static void put_matrix(api_buf *b, const float *x, int rows, int cols)
{
    api_buf_puts(b, "[");
    for (int r = 0; r < rows; r++) {
        if (r)
            api_buf_puts(b, ",");
        api_buf_float_array(b, x + (size_t)r * cols, (size_t)cols);
    }
    api_buf_puts(b, "]");
}

char *api_embed_json(const char *model, int dim, const float *img, int n_img, const float *txt,
                     int n_txt, long text_tokens, size_t *len)
{
    api_buf b = {0};
    put_model(&b, model);
    api_buf_printf(&b, ",\"dim\":%d,\"image_embeddings\":", dim);
    put_matrix(&b, img, n_img, dim);
    api_buf_puts(&b, ",\"text_embeddings\":");
    put_matrix(&b, txt, n_txt, dim);
    api_buf_printf(&b, ",\"usage\":{\"images\":%d,\"text_tokens\":%ld}}\n", n_img, text_tokens);
    return api_buf_finish(&b, len);
}

char *api_score_json(const char *model, const float *logits, int n_img, int n_txt, size_t *len)
{
    api_buf b = {0};
    put_model(&b, model);
    api_buf_puts(&b, ",\"logits\":");
    put_matrix(&b, logits, n_img, n_txt);
    api_buf_puts(&b, ",\"probs\":[");
    for (int i = 0; i < n_img; i++) {
        api_buf_puts(&b, i ? ",[" : "[");
        for (int j = 0; j < n_txt; j++) {
            if (j)
                api_buf_puts(&b, ",");
            api_buf_float(&b, 1.0f / (1.0f + expf(-logits[(size_t)i * n_txt + j])));
        }
        api_buf_puts(&b, "]");
    }
    api_buf_puts(&b, "]}\n");
    return api_buf_finish(&b, len);
}

char *api_classify_json(const char *model, char *const *labels, const float *scores, int n,
                        size_t *len)
{
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order)
        return NULL;
    /* insertion sort: stable, and label lists are short */
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && scores[order[j - 1]] < scores[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    api_buf b = {0};
    put_model(&b, model);
    api_buf_puts(&b, ",\"labels\":[");
    for (int k = 0; k < n; k++) {
        int i = order[k];
        api_buf_puts(&b, k ? ",{\"label\":" : "{\"label\":");
        api_buf_json_string(&b, labels[i], strlen(labels[i]));
        api_buf_puts(&b, ",\"score\":");
        api_buf_float(&b, scores[i]);
        api_buf_puts(&b, "}");
    }
    api_buf_puts(&b, "]}\n");
    free(order);
    return api_buf_finish(&b, len);
}

char *api_embeddings_json(const char *model, const api_request *r, const float *img,
                          const float *txt, int dim, long prompt_tokens, size_t *len)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < r->n_inputs; i++) {
        const api_input *in = &r->inputs[i];
        const float *v = (in->is_image ? img : txt) + (size_t)in->index * dim;
        api_buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":",
                       i ? "," : "", i);
        if (r->base64) {
            /* OpenAI's base64 encoding: the little-endian float32 bytes */
            size_t n;
            char *s = api_base64_encode(v, (size_t)dim * sizeof(float), &n);
            if (!s) {
                api_buf_free(&b);
                return NULL;
            }
            api_buf_puts(&b, "\"");
            api_buf_putn(&b, s, n);
            api_buf_puts(&b, "\"");
            free(s);
        } else {
            api_buf_float_array(&b, v, (size_t)dim);
        }
        api_buf_puts(&b, "}");
    }
    api_buf_puts(&b, "],\"model\":");
    api_buf_json_string(&b, model, strlen(model));
    api_buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}\n", prompt_tokens,
                   prompt_tokens);
    return api_buf_finish(&b, len);
}

char *api_models_json(const api_model_info *models, int n, const char *prism_version,
                      int64_t created, size_t *len)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"object\":\"list\",\"prism_version\":");
    api_buf_json_string(&b, prism_version, strlen(prism_version));
    api_buf_puts(&b, ",\"data\":[");
    for (int i = 0; i < n; i++) {
        api_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
        api_buf_json_string(&b, models[i].id, strlen(models[i].id));
        api_buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"prism\"",
                       (long long)created);
        api_buf_puts(&b, ",\"family\":");
        api_buf_json_string(&b, models[i].family, strlen(models[i].family));
        if (models[i].embedding_dim > 0)
            api_buf_printf(&b, ",\"embedding_dim\":%d", models[i].embedding_dim);
        api_buf_puts(&b, "}");
    }
    api_buf_puts(&b, "]}\n");
    return api_buf_finish(&b, len);
}

char *api_status_json(const char *status, size_t *len)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"status\":");
    api_buf_json_string(&b, status, strlen(status));
    api_buf_puts(&b, "}\n");
    return api_buf_finish(&b, len);
}
