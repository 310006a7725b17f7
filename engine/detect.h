/* detect.h - PaliGemma's detection output (`detect cat ; dog`) as boxes.
 *
 * The model writes, for each object, four location tokens <locYYYY> (y_min,
 * x_min, y_max, x_max, each a bin in [0, 1023] of 1024 across the image),
 * optionally 16 <segNNN> tokens, then the label, objects separated by " ; ":
 *   "<loc0256><loc0128><loc0768><loc0896> cat ; <loc...>... dog"
 * The rule is big_vision's (the PaliGemma demo's parser): a coordinate is
 * bin / 1024 of the image's height or width; the label is the text after
 * the tokens up to the next ';' or '<' (or the end), spaces trimmed; text
 * that is not such a group is skipped. docs/paligemma.md quotes it.
 */
#ifndef PRISM_DETECT_H
#define PRISM_DETECT_H

#include <stddef.h>

#define DETECT_LABEL_MAX 256

typedef struct detect_box {
    double x_min, y_min, x_max, y_max; /* pixels of the input image */
    int loc[4];                        /* the bins as written: y_min, x_min, y_max, x_max */
    char label[DETECT_LABEL_MAX];      /* UTF-8, cut at a character boundary when longer */
    int has_segments;                  /* 16 <segNNN> tokens followed the box (not decoded) */
} detect_box;

/* Parses text (NUL-terminated) for an image of width x height: at most max
 * boxes into out; returns how many were found (all of them, even past
 * max). */
int detect_parse(const char *text, int width, int height, detect_box *out, int max);

#endif
