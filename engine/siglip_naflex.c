/* siglip_naflex.c - the per-image position-embedding resize of SigLIP 2
 * NaFlex models (see siglip_naflex.h), on the host in double precision. */
#include "siglip_naflex.h"

#include <math.h>
#include <string.h>

/* torch's aa_filter for bilinear: a triangle of half-width 1. */
static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

int siglip_aa_weights(int n_in, int n_out, int i, double *wt, int *first)
{
    /* align_corners=False: source coordinate of output i is scale·(i + 0.5) */
    const double scale = (double)n_in / n_out;
    const double support = scale >= 1.0 ? scale : 1.0;
    const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    const double center = scale * (i + 0.5);
    /* the window [center − support, center + support), rounded as torch does
     * (truncation of a value + 0.5) and clipped to the input */
    int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
    lo = lo < 0 ? 0 : lo;
    hi = hi > n_in ? n_in : hi;
    double total = 0;
    int n = 0;
    for (int j = lo; j < hi; j++, n++) {
        wt[n] = triangle((j - center + 0.5) * invscale);
        total += wt[n];
    }
    if (total != 0)
        for (int k = 0; k < n; k++)
            wt[k] /= total;
    *first = lo;
    return n;
}

void siglip_resize_pos_grid(const float *grid, int gh, int gw, int D, int h, int w, float *out,
                            double *scratch)
{
    double wy[SIGLIP_AA_MAX_TAPS], wx[SIGLIP_AA_MAX_TAPS];
    for (int y = 0; y < h; y++) {
        /* rows first: scratch[gw, D] = Σ_k wy[k]·grid[y0 + k, :, :] */
        int y0, ny = siglip_aa_weights(gh, h, y, wy, &y0);
        memset(scratch, 0, (size_t)gw * D * sizeof *scratch);
        for (int k = 0; k < ny; k++) {
            const float *src = grid + (size_t)(y0 + k) * gw * D;
            for (size_t c = 0; c < (size_t)gw * D; c++)
                scratch[c] += wy[k] * src[c];
        }
        /* then columns: out[y, x, :] = Σ_k wx[k]·scratch[x0 + k, :] */
        for (int x = 0; x < w; x++) {
            int x0, nx = siglip_aa_weights(gw, w, x, wx, &x0);
            float *o = out + ((size_t)y * w + x) * D;
            for (int c = 0; c < D; c++) {
                double acc = 0;
                for (int k = 0; k < nx; k++)
                    acc += wx[k] * scratch[(size_t)(x0 + k) * D + c];
                o[c] = (float)acc;
            }
        }
    }
}
