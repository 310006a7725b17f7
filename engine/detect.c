/* detect.c - location tokens to boxes (see detect.h). */
#include "detect.h"

#include <ctype.h>
#include <string.h>

/* "<locDDDD>" (digits fixed) or "<segDDD>" at s: the number, or -1. */
static int tag_at(const char *s, const char *name, int digits)
{
    const size_t k = strlen(name);
    if (s[0] != '<' || strncmp(s + 1, name, k) != 0)
        return -1;
    int v = 0;
    for (int i = 0; i < digits; i++) {
        const char c = s[1 + k + i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    return s[1 + k + digits] == '>' ? v : -1;
}

static const char *skip_space(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

int detect_parse(const char *text, int width, int height, detect_box *out, int max)
{
    int n = 0;
    const char *s = text;
    while (*s) {
        int loc[4], i;
        const char *p = s;
        for (i = 0; i < 4; i++, p += 9)
            if ((loc[i] = tag_at(p, "loc", 4)) < 0)
                break;
        if (i < 4) { /* not a group here: on to the next character */
            s++;
            continue;
        }
        p = skip_space(p);
        int segs = 0;
        const char *q = p;
        while (segs < 16 && tag_at(q, "seg", 3) >= 0)
            q += 8, segs++;
        if (segs == 16)
            p = skip_space(q);
        const char *lab = p;
        while (*p && *p != ';' && *p != '<')
            p++;
        const char *end = p;
        while (end > lab && isspace((unsigned char)end[-1]))
            end--;
        if (n < max) {
            detect_box *b = &out[n];
            memcpy(b->loc, loc, sizeof loc);
            b->y_min = loc[0] / 1024.0 * height;
            b->x_min = loc[1] / 1024.0 * width;
            b->y_max = loc[2] / 1024.0 * height;
            b->x_max = loc[3] / 1024.0 * width;
            size_t len = (size_t)(end - lab);
            if (len >= DETECT_LABEL_MAX) { /* cut before a UTF-8 continuation byte */
                len = DETECT_LABEL_MAX - 1;
                while (len > 0 && ((unsigned char)lab[len] & 0xC0) == 0x80)
                    len--;
            }
            memcpy(b->label, lab, len);
            b->label[len] = '\0';
            b->has_segments = segs == 16;
        }
        n++;
        s = *p == ';' ? p + 1 : p;
    }
    return n;
}
