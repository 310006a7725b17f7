/* api_multipart.h - a multipart/form-data (RFC 7578) parser over a body
 * held in memory.
 *
 * Parts point into the body (no copies). Only what forms send is read:
 * each part's Content-Disposition (form-data; name=...; filename=...) and
 * Content-Type; other part headers are ignored. Anything malformed - no
 * boundary, a part without a name, a missing closing delimiter, too many
 * parts - is an error with a message for a 400 answer.
 */
#ifndef PRISM_API_MULTIPART_H
#define PRISM_API_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#define API_MULTIPART_MAX_PARTS 1024

typedef struct api_part {
    char name[128];
    char filename[256];    /* "" when the part is not a file */
    bool is_file;          /* a filename attribute was present */
    char content_type[128];/* "" when absent */
    const char *data;
    size_t len;
} api_part;

typedef struct api_form {
    api_part *parts; /* malloc'd */
    int n_parts;
} api_form;

/* True when the Content-Type value is multipart/form-data. */
bool api_is_multipart(const char *content_type);

/* True when an image part holds the file's bytes as they are: a file part,
 * or a part whose Content-Type is image/... or application/octet-stream.
 * Any other part holds a data URL or base64 text. The same rule for every
 * endpoint that takes an image part. */
bool api_part_is_raw_image(const api_part *p);

/* Parses body; returns 0, or -1 with a message in msg. */
int api_multipart_parse(api_form *form, const char *content_type, const char *body, size_t len,
                        char *msg, size_t msg_len);
void api_form_free(api_form *form);

#endif
