/* siglip_naflex.h - host-side pieces of SigLIP 2's NaFlex vision input.
 *
 * A NaFlex model (model_type siglip2) sees an image as h × w patches (its
 * spatial shape), padded to the batch's max_patches rows with a mask. Its
 * learned position embeddings are a G × G grid that is resized to h × w per
 * image, as transformers' Siglip2VisionEmbeddings does with
 * F.interpolate(mode="bilinear", align_corners=False, antialias=True) in
 * float32. The resize is at most max_patches × D values per image, so the
 * model does it on the host and uploads the result: no backend op.
 */
#ifndef PRISM_SIGLIP_NAFLEX_H
#define PRISM_SIGLIP_NAFLEX_H

/* The most source positions one output position can read: the taps lie
 * inside the input, whose side is at most 256 (MAX_GRID of the config). */
#define SIGLIP_AA_MAX_TAPS 256

/* The antialiased linear ("triangle") filter of torch's
 * _upsample_bilinear2d_aa along one axis, input size n_in → n_out, output
 * position i: scale = n_in / n_out; the triangle's half-width (support) is
 * max(scale, 1), so a downscale averages over every source it covers and an
 * upscale is plain linear interpolation; weights normalised to sum to 1.
 * Writes *first (the first source index) and returns the tap count t
 * (≤ n_in): output i = Σ_k wt[k]·src[*first + k]. */
int siglip_aa_weights(int n_in, int n_out, int i, double *wt, int *first);

/* Resizes a position grid [gh, gw, D] (row-major: row, column, channel) to
 * [h, w, D] (out, row-major) with that filter along each axis, in double
 * precision, rounded once to float. gh, gw ≤ 256. scratch: gw·D doubles.
 * The result equals torch's
 *   F.interpolate(grid.permute(2,0,1)[None], size=(h, w), mode="bilinear",
 *                 align_corners=False, antialias=True)[0].permute(1,2,0)
 * up to torch's float32 rounding. */
void siglip_resize_pos_grid(const float *grid, int gh, int gw, int D, int h, int w, float *out,
                            double *scratch);

#endif
