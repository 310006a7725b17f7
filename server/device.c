/* device.c - --device / --dtype to a backend (device.h). */
#include "device.h"

#include <stdio.h>
#include <string.h>

#include "safetensors.h"
#ifdef PRISM_HAVE_CUDA
#include "backend_cuda.h"
#endif

bool device_name_ok(const char *s)
{
    return !strcmp(s, "auto") || !strcmp(s, "cpu") || !strcmp(s, "cuda");
}

bool device_dtype_ok(const char *s)
{
    return !strcmp(s, "auto") || !strcmp(s, "bf16") || !strcmp(s, "f16") || !strcmp(s, "f32") ||
           !strcmp(s, "int8");
}

static prism_backend *cpu_backend(const char *dtype, int threads, bool reference, char *why,
                                  size_t why_len, prism_error *err)
{
    why[0] = '\0';
    if (!strcmp(dtype, "f16")) {
        prism_errorf(err, "--dtype f16: the CPU keeps matrix weights in f32 or bf16 (f16 is for "
                     "--device cuda)");
        return NULL;
    }
    if ((!strcmp(dtype, "bf16") || !strcmp(dtype, "int8")) && reference) {
        prism_errorf(err, "--dtype %s needs the fast CPU path (not --reference)", dtype);
        return NULL;
    }
    prism_backend *be = prism_cpu_backend_create(threads, reference);
    if (!be) {
        prism_errorf(err, "cannot create the CPU backend");
        return NULL;
    }
    if (!strcmp(dtype, "int8") && prism_cpu_backend_set_int8_compute(be, true, why, why_len)) {
        prism_backend_destroy(be);
        prism_errorf(err, "--dtype int8: %s", why);
        return NULL;
    }
    /* bf16: BF16 arithmetic where the CPU has it, else BF16 weights with
     * float32 arithmetic (half the weight memory and traffic), said why */
    if (!strcmp(dtype, "bf16") && prism_cpu_backend_set_bf16_compute(be, true, why, why_len) &&
        prism_cpu_backend_set_bf16_matrices(be, true)) {
        prism_backend_destroy(be);
        prism_errorf(err, "--dtype bf16: this CPU backend cannot keep bf16 matrices");
        return NULL;
    }
    return be;
}

prism_backend *device_backend_create(const char *device, const char *dtype, int threads,
                                     bool reference, char *note, size_t note_len,
                                     prism_error *err)
{
    const bool want_cuda = !strcmp(device, "cuda");
    if (want_cuda && !strcmp(dtype, "int8")) {
        prism_errorf(err, "--dtype int8 is for the CPU (AVX512-VNNI); the GPU takes bf16, f16 "
                     "or f32");
        return NULL;
    }
    if (want_cuda && reference) {
        prism_errorf(err, "--reference is the CPU's plain loops: it takes --device cpu or auto");
        return NULL;
    }
    const char *why_cpu = !strcmp(device, "cpu")   ? "asked for"
                          : reference              ? "--reference"
                          : !strcmp(dtype, "int8") ? "--dtype int8"
                                                 : NULL;
#ifdef PRISM_HAVE_CUDA
    if (!why_cpu) {
        if (prism_cuda_device_count() > 0) {
            const int dt = !strcmp(dtype, "f32")   ? PRISM_DT_F32
                           : !strcmp(dtype, "f16") ? PRISM_DT_F16
                                                   : PRISM_DT_BF16;
            prism_backend *be = prism_cuda_backend_create(0, dt, 0, err);
            if (be)
                snprintf(note, note_len, "cuda: %s, sm_%d, %s matrix weights",
                         prism_cuda_device_name(be), prism_cuda_compute_capability(be),
                         dt == PRISM_DT_F32 ? "f32" : dt == PRISM_DT_F16 ? "f16" : "bf16");
            return be;
        }
        if (want_cuda) {
            prism_errorf(err, "--device cuda: no CUDA device found");
            return NULL;
        }
        why_cpu = "no CUDA device found";
    }
#else
    if (want_cuda) {
        prism_errorf(err, "--device cuda: this build has no CUDA backend (configure with "
                     "-DPRISM_CUDA=ON where the CUDA toolkit is installed)");
        return NULL;
    }
    if (!why_cpu)
        why_cpu = "this build has no CUDA backend";
#endif
    char why[200];
    prism_backend *be = cpu_backend(dtype, threads, reference, why, sizeof why, err);
    if (be && !strcmp(dtype, "bf16"))
        snprintf(note, note_len, "cpu: %s, %d threads, %s", why_cpu, be->n_threads,
                 why[0] ? "bf16 matrix weights with float32 arithmetic: BF16 arithmetic is "
                          "off because " : "bf16 arithmetic (oneDNN BF16 matmuls)");
    else if (be && !strcmp(dtype, "int8"))
        snprintf(note, note_len, "cpu: %s, %d threads, int8 arithmetic (oneDNN int8 matmuls, "
                 "dynamic per-row activation scales)", why_cpu, be->n_threads);
    else if (be)
        snprintf(note, note_len, "cpu: %s, %d threads, f32 matrix weights", why_cpu,
                 be->n_threads);
    if (be && why[0]) {
        const size_t k = strlen(note);
        snprintf(note + k, note_len - k, "%s", why);
    }
    return be;
}
