/* SmoothQuant (Xiao et al. 2022): activations have a few channels with very large values,
 * which ruin int8 per-token quantization; weights do not. Dividing each input channel by s_j
 * (folded into the preceding norm) and multiplying the weights' column j by s_j leaves the
 * product unchanged while moving the difficulty from the activations to the weights:
 *   s_j = max|X_j|^α / max_i |W_ij|^(1−α),
 * the maximum over all the linears that share the input (q, k, v; gate, up). */
#include "quant/quantize.h"

#include <math.h>

void lb_smooth_scales(const float *const *W, const int *rows, int n_lin, int cols,
                      const float *act_max, float alpha, float *s)
{
    for (int c = 0; c < cols; c++) {
        float wmax = 0;
        for (int k = 0; k < n_lin; k++)
            for (int r = 0; r < rows[k]; r++)
                wmax = fmaxf(wmax, fabsf(W[k][(size_t)r * cols + c]));
        float v = 1.0f;
        if (act_max[c] > 0 && wmax > 0)
            v = powf(act_max[c], alpha) / powf(wmax, 1.0f - alpha);
        /* Bounded so that a channel with almost no signal cannot blow up the other side. */
        if (!isfinite(v) || v < 1e-5f)
            v = 1e-5f;
        if (v > 1e5f)
            v = 1e5f;
        s[c] = v;
    }
}
