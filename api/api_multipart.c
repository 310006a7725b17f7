/* api_multipart.c - multipart/form-data parsing (see api_multipart.h). */
#include "api_multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool api_is_multipart(const char *ct)
{
    while (ct && (*ct == ' ' || *ct == '\t'))
        ct++;
    return ct && strncasecmp(ct, "multipart/form-data", 19) == 0 &&
           (ct[19] == '\0' || ct[19] == ';' || ct[19] == ' ');
}

bool api_part_is_raw_image(const api_part *p)
{
    return p->is_file || strncasecmp(p->content_type, "image/", 6) == 0 ||
           strncasecmp(p->content_type, "application/octet-stream", 24) == 0;
}

/* Finds parameter `key` in a header value "type; k1=v1; k2="v2""; copies its
 * value (unquoted) into out. Returns true when found. */
static bool header_param(const char *v, size_t vn, const char *key, char *out, size_t out_n)
{
    size_t kn = strlen(key);
    size_t i = 0;
    bool in_quotes = false;
    while (i < vn) {
        /* advance to the next ';' outside quotes */
        if (v[i] == '"')
            in_quotes = !in_quotes;
        if (v[i] != ';' || in_quotes) {
            i++;
            continue;
        }
        i++;
        while (i < vn && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i + kn < vn && strncasecmp(v + i, key, kn) == 0 && v[i + kn] == '=') {
            i += kn + 1;
            size_t o = 0;
            if (i < vn && v[i] == '"') {
                i++;
                while (i < vn && v[i] != '"') {
                    if (v[i] == '\\' && i + 1 < vn)
                        i++;
                    if (o + 1 < out_n)
                        out[o++] = v[i];
                    i++;
                }
            } else {
                while (i < vn && v[i] != ';' && v[i] != ' ' && v[i] != '\t') {
                    if (o + 1 < out_n)
                        out[o++] = v[i];
                    i++;
                }
            }
            out[o] = '\0';
            return true;
        }
    }
    return false;
}

static const char *find_bytes(const char *h, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0 || hn < nn)
        return NULL;
    const char *end = h + hn - nn;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, nn) == 0)
            return p;
    }
    return NULL;
}

static int fail(char *msg, size_t msg_len, const char *text)
{
    snprintf(msg, msg_len, "%s", text);
    return -1;
}

int api_multipart_parse(api_form *form, const char *ct, const char *body, size_t len, char *msg,
                        size_t msg_len)
{
    memset(form, 0, sizeof *form);
    char boundary[80];
    if (!ct || !header_param(ct, strlen(ct), "boundary", boundary, sizeof boundary) ||
        boundary[0] == '\0' || strlen(boundary) > 70)
        return fail(msg, msg_len, "multipart/form-data needs a boundary parameter of 1 to 70 "
                                  "characters");
    char delim[84];
    int dn = snprintf(delim, sizeof delim, "--%s", boundary);
    /* the first delimiter may follow a preamble; later ones follow CRLF */
    const char *p = find_bytes(body, len, delim, (size_t)dn);
    if (!p)
        return fail(msg, msg_len, "multipart body: the boundary never occurs");
    const char *end = body + len;
    char ndelim[88];
    int ndn = snprintf(ndelim, sizeof ndelim, "\r\n--%s", boundary);
    int cap = 0;
    for (;;) {
        p += dn;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0; /* the closing delimiter; an epilogue is ignored */
        /* transport padding, then CRLF */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            goto bad;
        p += 2;
        /* a part with no headers (CRLF at once) has no name: refused below */
        const char *hend = find_bytes(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *dend;
        api_part part;
        memset(&part, 0, sizeof part);
        bool has_name = false;
        if (!hend || (end - p >= 2 && p[0] == '\r' && p[1] == '\n'))
            goto bad;
        /* headers: lines in [p, hend) */
        for (const char *line = p; line < hend;) {
            const char *eol = find_bytes(line, (size_t)(hend + 2 - line), "\r\n", 2);
            size_t ln = (size_t)(eol - line);
            const char *colon = memchr(line, ':', ln);
            if (colon) {
                size_t kn = (size_t)(colon - line);
                const char *v = colon + 1;
                size_t vn = ln - kn - 1;
                while (vn && (*v == ' ' || *v == '\t'))
                    v++, vn--;
                if (kn == 19 && strncasecmp(line, "Content-Disposition", 19) == 0) {
                    if (vn < 9 || strncasecmp(v, "form-data", 9) != 0)
                        goto bad;
                    has_name = header_param(v, vn, "name", part.name, sizeof part.name);
                    part.is_file =
                        header_param(v, vn, "filename", part.filename, sizeof part.filename);
                } else if (kn == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
                    size_t cn = vn < sizeof part.content_type - 1 ? vn : sizeof part.content_type - 1;
                    memcpy(part.content_type, v, cn);
                    part.content_type[cn] = '\0';
                }
            }
            line = eol + 2;
        }
        if (!has_name || part.name[0] == '\0')
            return (api_form_free(form), fail(msg, msg_len, "multipart body: a part has no "
                                                            "Content-Disposition form-data name"));
        part.data = hend + 4;
        dend = find_bytes(part.data, (size_t)(end - part.data), ndelim, (size_t)ndn);
        if (!dend)
            return (api_form_free(form), fail(msg, msg_len, "multipart body: missing closing "
                                                            "boundary (truncated?)"));
        part.len = (size_t)(dend - part.data);
        if (form->n_parts == API_MULTIPART_MAX_PARTS)
            return (api_form_free(form), fail(msg, msg_len, "multipart body: too many parts"));
        if (form->n_parts == cap) {
            cap = cap ? cap * 2 : 8;
            api_part *np = realloc(form->parts, (size_t)cap * sizeof *np);
            if (!np)
                return (api_form_free(form), fail(msg, msg_len, "out of memory"));
            form->parts = np;
        }
        form->parts[form->n_parts++] = part;
        p = dend + 2; /* at "--boundary" */
    }
bad:
    api_form_free(form);
    return fail(msg, msg_len, "multipart body: malformed part delimiter or headers");
}

void api_form_free(api_form *form)
{
    free(form->parts);
    form->parts = NULL;
    form->n_parts = 0;
}
