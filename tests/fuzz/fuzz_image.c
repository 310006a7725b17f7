/* fuzz_image.c - libFuzzer target for the image path: probe, decode (with
 * orientation), transparent key, resize, normalise.
 *
 * Any input must give either an error with a message or a valid image; a
 * crash, a sanitizer report, a leak or a hang is a bug. The pixel limit is
 * lowered to 4 megapixels so hostile headers cannot make the fuzzer spend
 * its memory on legitimate but huge images. The first byte picks the
 * resize filter and target size, so every filter and up/down-scaling get
 * exercised; it also picks a NaFlex patch size and patch count, and the
 * image goes through image_rgb_to_naflex (any aspect ratio, scaled up to
 * 100x or down). Built only with -DPRISM_FUZZ=ON and clang (scripts/fuzz-smoke.sh,
 * docs/fuzzing.md).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prism_error err = {0};
    image_info info;
    if (image_probe(data, size, &info, &err) == 0) {
        if (info.width <= 0 || info.height <= 0 || info.orientation < 1 || info.orientation > 8)
            abort();
    } else if (!err.msg[0]) {
        abort();
    }

    image_rgb img;
    if (image_decode_rgb(data, size, (size_t)1 << 22, &img, &err) != 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (!img.data || img.width <= 0 || img.height <= 0 || img.width != info.out_width ||
        img.height != info.out_height)
        abort();

    const uint8_t pick = size ? data[size - 1] : 0;
    image_preproc cfg;
    image_preproc_defaults(&cfg);
    cfg.resample = (image_filter)(1 + pick % 5);
    cfg.width = 1 + (pick >> 3) % 48;
    cfg.height = 1 + (pick >> 1) % 40;
    float *pv = malloc(3 * (size_t)cfg.width * cfg.height * sizeof *pv);
    if (pv && image_rgb_to_pixel_values(&img, &cfg, pv, &err) == 0) {
        for (size_t i = 0; i < 3 * (size_t)cfg.width * cfg.height; i++)
            if (!(pv[i] >= -1.0f && pv[i] <= 1.0f))
                abort();
    }
    free(pv);

    image_naflex nf;
    image_naflex_defaults(&nf);
    nf.pre.resample = cfg.resample;
    nf.patch_size = 1 + (pick >> 2) % 16;
    nf.max_num_patches = 1 + (pick >> 4) * 5;
    const size_t row = image_naflex_row_floats(&nf);
    float *patches = malloc((size_t)nf.max_num_patches * row * sizeof *patches);
    int32_t *mask = malloc((size_t)nf.max_num_patches * sizeof *mask);
    int rows = 0, cols = 0;
    err.msg[0] = '\0';
    if (patches && mask &&
        image_rgb_to_naflex(&img, &nf, 64, patches, mask, &rows, &cols, &err) == 0) {
        const size_t valid = (size_t)rows * cols;
        if (rows < 1 || cols < 1 || valid > (size_t)nf.max_num_patches)
            abort();
        for (size_t i = 0; i < (size_t)nf.max_num_patches; i++) {
            if (mask[i] != (i < valid))
                abort();
            for (size_t k = 0; k < row; k++) {
                const float v = patches[i * row + k];
                if (i < valid ? !(v >= -1.0f && v <= 1.0f) : v != 0.0f)
                    abort();
            }
        }
    } else if (patches && mask && !err.msg[0]) {
        abort();
    }
    free(patches);
    free(mask);
    image_rgb_free(&img);
    return 0;
}
