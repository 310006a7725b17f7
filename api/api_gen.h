/* api_gen.h - generation request bodies (/v1/caption, /v1/vqa,
 * /v1/chat/completions, /v1/detect, /v1/ocr) to typed requests.
 *
 * As api_request.h does for the embedding endpoints: a complete body in,
 * the fields out (copied, NUL-terminated), or an api_error naming the field
 * at fault. The server then applies the model (`model` must name it),
 * the default and limits of max_new_tokens and num_beams, builds the
 * prompt and decodes the image.
 */
#ifndef PRISM_API_GEN_H
#define PRISM_API_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_buf.h"
#include "api_error.h"

typedef enum api_gen_op {
    API_GEN_CAPTION, /* POST /v1/caption: image, lang */
    API_GEN_VQA,     /* POST /v1/vqa: image, question, lang */
    API_GEN_CHAT,    /* POST /v1/chat/completions: the last message's text and image_url */
    API_GEN_DETECT,  /* POST /v1/detect: image, labels (optional for Florence-2) */
    API_GEN_OCR,     /* POST /v1/ocr: image, regions (Florence-2) */
} api_gen_op;

/* /v1/caption's `detail` (Florence-2's three caption tasks). */
typedef enum api_caption_detail {
    API_DETAIL_BRIEF,         /* "brief": <CAPTION> */
    API_DETAIL_DETAILED,      /* "detailed": <DETAILED_CAPTION> */
    API_DETAIL_MORE_DETAILED, /* "more_detailed": <MORE_DETAILED_CAPTION> */
} api_caption_detail;

/* /v1/detect: at most this many labels, each at most API_DETECT_LABEL_MAX
 * bytes (the prompt "detect a ; b ; ..." they make stays within the
 * server's prompt-token limit as well, or is refused there). */
#define API_DETECT_MAX_LABELS 32
#define API_DETECT_LABEL_MAX 128

typedef struct api_gen_request {
    char *image;      /* a data URL or base64, or with image_raw the file bytes */
    size_t image_len;
    bool image_raw;   /* a multipart image part holding the file (api_part_is_raw_image) */
    char *question;   /* vqa: valid UTF-8 without NUL */
    char *lang;       /* caption / vqa: NULL when absent */
    char *prompt;     /* chat: the text part, used as the prompt as is */
    char *labels;     /* detect: the labels joined with " ; " (PaliGemma's prompt syntax) */
    int n_labels;
    char *model;      /* NULL when absent */
    long long max_new_tokens; /* chat: also max_tokens, max_completion_tokens */
    long long num_beams;
    bool has_max_new_tokens, has_num_beams; /* given (else the server's defaults) */
    bool stream;      /* chat: server-sent events */
    api_caption_detail detail; /* caption: API_DETAIL_BRIEF when absent */
    bool has_detail;
    bool regions;     /* ocr: the text's regions (quadrilaterals) as well */
} api_gen_request;

/* Parses a JSON body. Absent optional fields stay NULL / not `has_`; `image` (chat:
 * an image_url part), `question` (vqa) and the chat text are required.
 * `labels` (detect: an array of 1 to API_DETECT_MAX_LABELS non-empty
 * strings without ';', '<' or line breaks, which would change what the
 * model's output means) is checked here and required by the server when
 * the model needs it (PaliGemma). `detail` (caption): "brief", "detailed"
 * or "more_detailed"; `regions` (ocr): a boolean. */
int api_gen_parse_json(api_gen_request *r, api_gen_op op, const char *body, size_t len,
                       api_error *e);
/* multipart/form-data for caption, vqa, detect and ocr: an `image` file
 * part (or a field holding a data URL or base64), `question`, `lang`,
 * `label` (detect: one per label, repeated), `detail` (caption), `regions`
 * (ocr: "true" or "false"), `max_new_tokens`, `num_beams`. */
int api_gen_parse_multipart(api_gen_request *r, api_gen_op op, const char *content_type,
                            const char *body, size_t len, api_error *e);
void api_gen_request_free(api_gen_request *r);

/* Streamed chat completions (`stream: true`) are server-sent events, each
 * "data: <JSON>\n\n"; the stream ends with API_SSE_DONE. */
#define API_SSE_DONE "data: [DONE]\n\n"

/* How much of a running generation's decoded text a stream may send: len
 * less any trailing U+FFFD. A byte-fallback tokenizer (Gemma) decodes the
 * first bytes of a character whose last bytes are still to come as
 * U+FFFD; held back, they are sent once later tokens complete them (or
 * with the final text). */
size_t api_stream_settled_len(const char *text, size_t len);

/* Appends one chat.completion.chunk event (OpenAI's shape) to b:
 *   data: {"id":"chatcmpl-<id>","object":"chat.completion.chunk",
 *          "created":<created>,"model":<model>,"choices":[{"index":0,
 *          "delta":{"role":<role>,"content":<content>},
 *          "finish_reason":<finish>}]}\n\n
 * id is the request's id; role and content are left out of the delta when
 * NULL; finish_reason is null when finish is NULL. Every string is escaped
 * (bytes that are not UTF-8 become U+FFFD), so each event's data is one
 * line of valid JSON. */
void api_chat_chunk(api_buf *b, const char *id, const char *model, int64_t created,
                    const char *role, const char *content, const char *finish);

/* Appends the end of a stream cut short after its first event (draining,
 * an engine failure): the error in the API's one shape as an event,
 *   data: {"error":{"type","code","message","param"}}\n\n
 * then API_SSE_DONE. */
void api_chat_error_end(api_buf *b, const api_error *e);

#endif
