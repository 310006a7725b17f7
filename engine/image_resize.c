/* image_resize.c - Pillow's convolution resize (Image.resize with BICUBIC,
 * BILINEAR, LANCZOS, BOX or HAMMING) on 8-bit RGB, bit for bit.
 *
 * The algorithm of Pillow's libImaging/Resample.c, rewritten for packed RGB:
 *
 *  1. For each output column (then row) the filter is centred at
 *     (i + 0.5) * scale, scale = in / out; when shrinking, its support is
 *     widened by the scale (antialiasing). Source taps run from
 *     (int)(center - support + 0.5) to (int)(center + support + 0.5),
 *     clipped to the image; weights are filter((j - center + 0.5) / scale)
 *     normalised to sum 1, in double.
 *  2. Weights become fixed point with 22 fractional bits (32 - 8 - 2),
 *     rounded half away from zero.
 *  3. Two passes through an 8-bit intermediate image; each sum starts at
 *     half an LSB and is shifted down and clamped to 0..255. Horizontal
 *     first (over only the source rows the vertical pass will read),
 *     except, since Pillow 13, when the height shrinks by more than twice
 *     as many pixels as the width: then vertical first. The order changes
 *     results by a few levels, so it is reproduced exactly (measured
 *     against Pillow 13.0 on 1,300 size combinations). A pass whose size
 *     does not change is skipped.
 *
 * Every double operation is written in Pillow's order; the engine's image
 * files are compiled with -ffp-contract=off so no multiply-add is fused
 * (Pillow's wheels are built for baseline x86-64, which has no FMA).
 */
#include "image_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define PRECISION_BITS (32 - 8 - 2)

typedef struct resample_filter {
    double (*fn)(double x);
    double support;
} resample_filter;

static double filter_box(double x)
{
    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double filter_bilinear(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_hamming(double x)
{
    if (x < 0.0)
        x = -x;
    if (x == 0.0)
        return 1.0;
    if (x >= 1.0)
        return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double filter_bicubic(double x)
{
    /* Keys' cubic convolution with a = -0.5, spelled as Pillow spells it. */
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * -0.5;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double filter_lanczos(double x)
{
    if (-3.0 <= x && x < 3.0)
        return sinc(x) * sinc(x / 3);
    return 0.0;
}

/* Per output index: first source tap, tap count, and ksize weights. */
typedef struct resample_coeffs {
    int ksize;
    int *bounds; /* [out][2]: xmin, count */
    int32_t *k;  /* [out][ksize], fixed point */
} resample_coeffs;

static void coeffs_free(resample_coeffs *c)
{
    free(c->bounds);
    free(c->k);
}

static int coeffs_compute(int in_size, int out_size, const resample_filter *f, resample_coeffs *c,
                          prism_error *err)
{
    const float in0 = 0.0f, in1 = (float)in_size; /* Pillow's box, as floats */
    double scale, filterscale;
    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0)
        filterscale = 1.0;
    const double support = f->support * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    if (out_size > INT_MAX / (ksize * (int)sizeof(double)))
        return prism_errorf(err, "resize: %d output pixels with %d taps overflow", out_size, ksize);

    double *kk = malloc((size_t)out_size * ksize * sizeof *kk);
    c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
    c->k = malloc((size_t)out_size * ksize * sizeof *c->k);
    c->ksize = ksize;
    if (!kk || !c->bounds || !c->k) {
        free(kk);
        coeffs_free(c);
        return prism_errorf(err, "out of memory for resize coefficients");
    }
    const double inv_filterscale = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = &kk[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * inv_filterscale);
            k[x] = w;
            ww += w;
        }
        if (ww != 0.0)
            for (x = 0; x < xmax; x++)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        c->k[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PRECISION_BITS))
                            : (int32_t)(0.5 + kk[i] * (1 << PRECISION_BITS));
    free(kk);
    return 0;
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow's lookup assumes */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Four int32 lanes (R, G, B, and a lane that is ignored): one multiply per
 * tap instead of three. GNU C vector extensions, as in GCC and clang. */
typedef int32_t v4i32 __attribute__((vector_size(16)));

static inline v4i32 load_px4(const uint8_t *p)
{
    uint8_t b[4];
    memcpy(b, p, 4); /* R G B + the next pixel's R, multiplied and discarded */
    return (v4i32){b[0], b[1], b[2], b[3]};
}

static inline v4i32 load_px3(const uint8_t *p)
{
    return (v4i32){p[0], p[1], p[2], 0};
}

/* Rows [row0, row0 + out_h) of src (width src_w) into dst (out_w wide). */
static void pass_horizontal(const uint8_t *src, int src_w, int row0, uint8_t *dst, int out_w,
                            int out_h, const resample_coeffs *c)
{
    for (int yy = 0; yy < out_h; yy++) {
        const uint8_t *line = src + (size_t)(yy + row0) * src_w * 3;
        uint8_t *o = dst + (size_t)yy * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            const int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int32_t *k = &c->k[(size_t)xx * c->ksize];
            const uint8_t *p = line + (size_t)xmin * 3;
            /* A 4-byte load of the row's last pixel could read past the
             * image: that tap takes the 3-byte load. */
            const int n4 = xmin + xmax == src_w ? xmax - 1 : xmax;
            v4i32 s = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                       1 << (PRECISION_BITS - 1), 0};
            int x = 0;
            for (; x < n4; x++, p += 3)
                s += load_px4(p) * k[x];
            for (; x < xmax; x++, p += 3)
                s += load_px3(p) * k[x];
            o[3 * xx + 0] = clip8(s[0]);
            o[3 * xx + 1] = clip8(s[1]);
            o[3 * xx + 2] = clip8(s[2]);
        }
    }
}

/* Row by row with an accumulator line, so the source is read in order. */
static void pass_vertical(const uint8_t *src, int w, uint8_t *dst, int out_h,
                          const resample_coeffs *c, int32_t *acc)
{
    const size_t row = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        const int ymin = c->bounds[yy * 2], ymax = c->bounds[yy * 2 + 1];
        const int32_t *k = &c->k[(size_t)yy * c->ksize];
        for (size_t i = 0; i < row; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ymax; y++) {
            const uint8_t *p = src + (size_t)(ymin + y) * row;
            const int32_t ky = k[y];
            for (size_t i = 0; i < row; i++)
                acc[i] += p[i] * ky;
        }
        uint8_t *o = dst + (size_t)yy * row;
        for (size_t i = 0; i < row; i++)
            o[i] = clip8(acc[i]);
    }
}

static const resample_filter *filter_for(image_filter f)
{
    static const resample_filter box = {filter_box, 0.5}, bilinear = {filter_bilinear, 1.0},
                                 hamming = {filter_hamming, 1.0}, bicubic = {filter_bicubic, 2.0},
                                 lanczos = {filter_lanczos, 3.0};
    switch (f) {
    case IMAGE_FILTER_BOX: return &box;
    case IMAGE_FILTER_BILINEAR: return &bilinear;
    case IMAGE_FILTER_HAMMING: return &hamming;
    case IMAGE_FILTER_BICUBIC: return &bicubic;
    case IMAGE_FILTER_LANCZOS: return &lanczos;
    default: return NULL;
    }
}

int image_resize(const image_rgb *in, int w, int h, image_filter filter, image_rgb *out,
                 prism_error *err)
{
    memset(out, 0, sizeof *out);
    const resample_filter *f = filter_for(filter);
    if (!f)
        return prism_errorf(err, "resize: unsupported resampling filter %d (supported: 1 LANCZOS, "
                                 "2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)", (int)filter);
    if (w <= 0 || h <= 0 || w > 65535 || h > 65535)
        return prism_errorf(err, "resize: invalid output size %dx%d", w, h);
    if (!in->data || in->width <= 0 || in->height <= 0)
        return prism_errorf(err, "resize: empty input image");

    const bool need_h = w != in->width, need_v = h != in->height;
    /* Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when
     * the height shrinks by more than twice as many pixels as the width. */
    const bool vertical_first =
        h < in->height && (int64_t)in->height - h > 2 * ((int64_t)in->width - w);
    resample_coeffs cv = {0}, ch = {0};
    uint8_t *tmp = NULL, *dst = NULL;
    int32_t *acc = NULL;
    int ret = -1;
    if (coeffs_compute(in->height, h, f, &cv, err))
        return -1;
    if (need_h && coeffs_compute(in->width, w, f, &ch, err))
        goto out;
    dst = malloc((size_t)w * h * 3);
    acc = malloc((size_t)(w > in->width ? w : in->width) * 3 * sizeof *acc);
    if (!dst || !acc)
        goto oom;

    if (need_h && need_v && vertical_first) {
        tmp = malloc((size_t)in->width * h * 3);
        if (!tmp)
            goto oom;
        pass_vertical(in->data, in->width, tmp, h, &cv, acc);
        pass_horizontal(tmp, in->width, 0, dst, w, h, &ch);
    } else if (need_h) {
        /* Only the source rows the vertical pass reads. */
        const int ybox_first = cv.bounds[0];
        const int ybox_last = cv.bounds[h * 2 - 2] + cv.bounds[h * 2 - 1];
        const int rows = ybox_last - ybox_first;
        for (int i = 0; i < h; i++)
            cv.bounds[i * 2] -= ybox_first;
        if (need_v) {
            tmp = malloc((size_t)w * rows * 3);
            if (!tmp)
                goto oom;
            pass_horizontal(in->data, in->width, ybox_first, tmp, w, rows, &ch);
            pass_vertical(tmp, w, dst, h, &cv, acc);
        } else {
            pass_horizontal(in->data, in->width, ybox_first, dst, w, rows, &ch);
        }
    } else if (need_v) {
        pass_vertical(in->data, in->width, dst, h, &cv, acc);
    } else {
        memcpy(dst, in->data, (size_t)w * h * 3);
    }
    out->width = w, out->height = h, out->data = dst;
    out->has_key = in->has_key;
    memcpy(out->key, in->key, 3);
    dst = NULL;
    ret = 0;
    goto out;
oom:
    prism_errorf(err, "out of memory resizing %dx%d to %dx%d", in->width, in->height, w, h);
out:
    free(dst);
    free(tmp);
    free(acc);
    coeffs_free(&cv);
    coeffs_free(&ch);
    return ret;
}

int image_resize_bicubic(const image_rgb *in, int w, int h, image_rgb *out, prism_error *err)
{
    return image_resize(in, w, h, IMAGE_FILTER_BICUBIC, out, err);
}
