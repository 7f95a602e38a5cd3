/* AWQ (Lin et al. 2023): activation-aware weight quantization. Input channels that carry large
 * activations matter most, so their weights are scaled up by s before rounding (and the input
 * divided by s, folded into whatever produces it), which shrinks their relative rounding error.
 * s = mean|x|^α, with α chosen on a grid to minimize the layer's output error on the
 * calibration data. That error needs no activations kept: for an effective weight W' it is
 * tr((W' − W) H (W' − W)ᵀ) with H the inputs' second moment, which the driver accumulates
 * anyway. A clipping search then shrinks each group's range where that lowers the error. */
#include "core/threadpool.h"
#include "quant/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Output error of W quantized after scaling by s, under H. */
static double scaled_error(const float *W, int rows, int cols, const float *H, const float *s,
                           int bits, int group_size, bool sym)
{
    size_t n = (size_t)rows * (size_t)cols;
    float *Ws = lb_malloc(n * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            Ws[(size_t)r * cols + c] = W[(size_t)r * cols + c] * s[c];
    lb_qweight qw;
    lb_qweight_rtn(Ws, rows, cols, bits, group_size, sym, &qw);
    lb_qweight_dequant(&qw, Ws);
    lb_qweight_free(&qw);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            Ws[(size_t)r * cols + c] /= s[c];
    double e = lb_quant_hessian_error(W, Ws, H, rows, cols);
    free(Ws);
    return e;
}

float lb_awq_search_scale(const float *const *W, const int *rows, int n_lin, int cols,
                          const float *H, const float *mean_abs, int bits, int group_size,
                          bool sym, int n_grid, float *s)
{
    float *cand = lb_malloc((size_t)cols * sizeof(float));
    double best = INFINITY;
    float best_alpha = 0;
    for (int c = 0; c < cols; c++)
        s[c] = 1.0f;
    for (int g = 0; g < n_grid; g++) {
        float alpha = (float)g / (float)n_grid;
        float lo = INFINITY, hi = 0;
        for (int c = 0; c < cols; c++) {
            float v = powf(mean_abs[c], alpha);
            cand[c] = v > 1e-4f ? v : 1e-4f;
            lo = fminf(lo, cand[c]);
            hi = fmaxf(hi, cand[c]);
        }
        /* Centred on 1 in the log domain, so neither the weights nor the inputs drift. */
        float norm = sqrtf(lo * hi);
        for (int c = 0; c < cols; c++)
            cand[c] /= norm;
        double e = 0;
        for (int k = 0; k < n_lin; k++)
            e += scaled_error(W[k], rows[k], cols, H, cand, bits, group_size, sym);
        if (e < best) {
            best = e;
            best_alpha = alpha;
            memcpy(s, cand, (size_t)cols * sizeof(float));
        }
    }
    free(cand);
    return best_alpha;
}

#define AWQ_CLIP_STEPS 20
#define AWQ_CLIP_MIN 0.5f   /* the range shrinks down to just above half its maximum */

typedef struct {
    const float *W, *H;
    int rows, cols, bits, gs;
    bool sym;
    lb_qweight *out;
} clip_job;

/* d_g H_gg d_gᵀ for the group's slice d of a row's error. */
static double group_error(const float *d, int n, const float *H, int cols, int c0)
{
    double s = 0;
    for (int a = 0; a < n; a++) {
        const float *h = H + (size_t)(c0 + a) * cols + c0;
        double t = 0;
        for (int b = 0; b < n; b++)
            t += (double)h[b] * d[b];
        s += t * d[a];
    }
    return s;
}

static void clip_row(void *ctx, int r, int thread)
{
    (void)thread;
    clip_job *j = ctx;
    int gs = j->gs ? j->gs : j->cols, ng = j->out->n_groups;
    const float *w = j->W + (size_t)r * j->cols;
    float d[1024];
    float *buf = gs <= 1024 ? d : lb_malloc((size_t)gs * sizeof(float));
    for (int g = 0; g < ng; g++) {
        int c0 = g * gs, n = c0 + gs < j->cols ? gs : j->cols - c0;
        float lo = w[c0], hi = w[c0];
        for (int k = 1; k < n; k++) {
            lo = fminf(lo, w[c0 + k]);
            hi = fmaxf(hi, w[c0 + k]);
        }
        float amax = fmaxf(-lo, hi);
        double best = INFINITY;
        float best_scale = 1;
        uint8_t best_zero = 0;
        for (int step = 0; step < AWQ_CLIP_STEPS; step++) {
            float m = amax * (1.0f - (1.0f - AWQ_CLIP_MIN) * (float)step / AWQ_CLIP_STEPS);
            float clo = fmaxf(lo, -m), chi = fminf(hi, m);
            float scale;
            uint8_t zero;
            lb_qgrid(clo, chi, j->bits, j->sym, &scale, &zero);
            for (int k = 0; k < n; k++) {
                uint8_t q = lb_qcode(w[c0 + k], scale, zero, j->bits);
                buf[k] = scale * ((float)q - (float)zero) - w[c0 + k];
            }
            double e = group_error(buf, n, j->H, j->cols, c0);
            if (e < best) {
                best = e;
                best_scale = scale;
                best_zero = zero;
            }
        }
        j->out->scale[(size_t)r * ng + g] = best_scale;
        j->out->zero[(size_t)r * ng + g] = best_zero;
        for (int k = 0; k < n; k++)
            j->out->q[(size_t)r * j->cols + c0 + k] =
                lb_qcode(w[c0 + k], best_scale, best_zero, j->bits);
    }
    if (buf != d)
        free(buf);
}

void lb_awq_quantize_clipped(const float *W, int rows, int cols, const float *H, int bits,
                             int group_size, bool sym, struct lb_pool *pool, lb_qweight *out)
{
    lb_qweight_init(out, rows, cols, bits, group_size, sym, false);
    clip_job j = {W, H, rows, cols, bits, out->group_size, sym, out};
    if (pool)
        lb_pool_run(pool, rows, clip_row, &j);
    else
        for (int r = 0; r < rows; r++)
            clip_row(&j, r, 0);
}
