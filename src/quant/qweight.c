/* Plain quantized matrices and round-to-nearest: see qweight.h. */
#include "quant/qweight.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lb_qweight_init(lb_qweight *w, int rows, int cols, int bits, int group_size, bool sym,
                     bool with_g_idx)
{
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->bits = bits;
    w->group_size = group_size > 0 && group_size < cols ? group_size : 0;
    w->n_groups = w->group_size ? (cols + w->group_size - 1) / w->group_size : 1;
    w->sym = sym;
    w->q = lb_calloc((size_t)rows * (size_t)cols, 1);
    w->scale = lb_calloc((size_t)rows * (size_t)w->n_groups, sizeof(float));
    w->zero = lb_calloc((size_t)rows * (size_t)w->n_groups, 1);
    if (with_g_idx) w->g_idx = lb_calloc((size_t)cols, sizeof(int32_t));
}

void lb_qweight_free(lb_qweight *w)
{
    if (!w) return;
    free(w->q);
    free(w->scale);
    free(w->zero);
    free(w->g_idx);
    memset(w, 0, sizeof *w);
}

void lb_qgrid(float lo, float hi, int bits, bool sym, float *scale, uint8_t *zero)
{
    float maxq = (float)((1 << bits) - 1);
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (hi == lo) {
        *scale = 1.0f;
        *zero = sym ? (uint8_t)(1 << (bits - 1)) : 0;
        return;
    }
    if (sym) {
        float half = (float)(1 << (bits - 1));
        float v = -lo >= hi ? lo : hi;   /* the value of largest magnitude, with its sign */
        *scale = bits == 8 ? fabsf(v) / (half - 1.0f) : v / -half;
        *zero = (uint8_t)half;
        return;
    }
    *scale = (hi - lo) / maxq;
    float z = roundf(-lo / *scale);
    *zero = (uint8_t)(z < 0 ? 0 : z > maxq ? maxq : z);
}

void lb_qweight_dequant(const lb_qweight *w, float *out)
{
    for (int r = 0; r < w->rows; r++) {
        const uint8_t *q = w->q + (size_t)r * w->cols;
        const float *s = w->scale + (size_t)r * w->n_groups;
        const uint8_t *z = w->zero + (size_t)r * w->n_groups;
        float *o = out + (size_t)r * w->cols;
        for (int c = 0; c < w->cols; c++) {
            int g = lb_qweight_group_of(w, c);
            o[c] = s[g] * ((float)q[c] - (float)z[g]);
        }
    }
}

void lb_qweight_rtn(const float *W, int rows, int cols, int bits, int group_size, bool sym,
                    lb_qweight *out)
{
    lb_qweight_init(out, rows, cols, bits, group_size, sym, false);
    int gs = out->group_size ? out->group_size : cols;
    for (int r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * cols;
        for (int g = 0; g < out->n_groups; g++) {
            int c0 = g * gs, c1 = c0 + gs < cols ? c0 + gs : cols;
            float lo = w[c0], hi = w[c0];
            for (int c = c0 + 1; c < c1; c++) {
                lo = fminf(lo, w[c]);
                hi = fmaxf(hi, w[c]);
            }
            float scale;
            uint8_t zero;
            lb_qgrid(lo, hi, bits, sym, &scale, &zero);
            out->scale[(size_t)r * out->n_groups + g] = scale;
            out->zero[(size_t)r * out->n_groups + g] = zero;
            for (int c = c0; c < c1; c++)
                out->q[(size_t)r * cols + c] = lb_qcode(w[c], scale, zero, bits);
        }
    }
}
