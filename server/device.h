/* device.h - the backend that --device, --dtype and --threads ask for, one
 * rule for `prism serve` and the command-line tools.
 *
 *   --device auto   CUDA when this build has it and a GPU is present, else
 *                   the CPU (the default)
 *   --device cpu    the CPU
 *   --device cuda   the first GPU; an error when there is none
 *   --dtype auto    matrix weights in bf16 on a GPU, f32 on the CPU (the
 *                   default: fast on the GPU, exact on the CPU)
 *   --dtype bf16    bf16 matrices on either (the CPU's fast path computes
 *                   in f32 from bf16 weights: half the memory traffic)
 *   --dtype f16     GPU only
 *   --dtype f32     exact f32 on either (no TF32 on the GPU)
 */
#ifndef PRISM_DEVICE_H
#define PRISM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

/* Creates the backend for values that passed device_name_ok and
 * device_dtype_ok (the callers' option parsers check them, so a bad value
 * is reported as a usage error). `reference` takes the CPU's plain
 * reference loops (auto then means the CPU; cuda is an error). On success
 * *note says what
 * was picked and why ("cuda: NVIDIA H200, sm_90, bf16 matrix weights",
 * "cpu: no CUDA device found", ...). NULL with a message naming the
 * option in err. */
prism_backend *device_backend_create(const char *device, const char *dtype, int threads,
                                     bool reference, char *note, size_t note_len,
                                     prism_error *err);

/* Whether s is one of the values above ("auto|cpu|cuda", "auto|bf16|f16|f32"). */
bool device_name_ok(const char *s);
bool device_dtype_ok(const char *s);

#endif
