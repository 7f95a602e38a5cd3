/* A quantized weight matrix in plain, unpacked form: the contract between the quantization
 * methods (RTN, GPTQ, AWQ and SmoothQuant produce one per linear layer) and the runtime
 * formats and exports (which pack it into tensor types, GGUF, or Hugging Face layouts).
 *
 *   W[r][c] ≈ scale[r][g] * (q[r][c] - zero[r][g]),   g = g_idx ? g_idx[c] : c / group_size
 *
 * Groups run along the input dimension (cols); group_size 0 means one group per output row
 * (per channel). The last group may be short (stories260K's FFN width is 172). Codes and zero
 * points are unsigned integers in 0 .. 2^bits - 1; a symmetric weight has zero = 2^(bits-1)
 * in every group. */
#ifndef LB_QWEIGHT_H
#define LB_QWEIGHT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int rows, cols;        /* out_features, in_features */
    int bits;              /* 2, 3, 4 or 8 */
    int group_size;        /* 0: per output channel */
    int n_groups;          /* per row */
    bool sym;
    uint8_t *q;            /* [rows][cols] codes */
    float *scale;          /* [rows][n_groups] */
    uint8_t *zero;         /* [rows][n_groups] */
    int32_t *g_idx;        /* [cols] group of each input column (GPTQ act-order); NULL: c / group_size */
    bool w8a8;             /* SmoothQuant: activations are quantized to int8 per token at run time */
} lb_qweight;

/* Allocates the arrays (g_idx only when with_g_idx); zero-filled. */
void lb_qweight_init(lb_qweight *w, int rows, int cols, int bits, int group_size, bool sym,
                     bool with_g_idx);
void lb_qweight_free(lb_qweight *w);

static inline int lb_qweight_group_of(const lb_qweight *w, int col)
{
    if (w->g_idx) return w->g_idx[col];
    return w->group_size > 0 ? col / w->group_size : 0;
}

/* The quantization grid for values in [lo, hi]; codes decode as scale · (code − zero).
 * asymmetric (GPTQ's): the range widened to include 0, scale = (hi - lo) / maxq,
 *   zero = round(-lo / scale);
 * symmetric, zero = 2^(bits-1), chosen so that the value of largest magnitude is exact:
 *   8 bits: scale = max|x| / 127, codes 1..255 (int8 −127..127, as Q8_0 and per-channel int8);
 *   fewer: scale = v / −2^(bits-1) for v the value of largest magnitude with its sign, which
 *   lands on code 0 and leaves all 2^bits codes in use (as Q4_0; the scale may be negative).
 * GPTQ's own symmetric grid, 2m / maxq, puts +m half a step past the last code, so the
 * largest positive weight of every row or group was clipped (RTN int8 per channel cost
 * +0.15 % perplexity on stories260K instead of +0.02 %).
 * An all-zero range gets scale 1 so every code decodes to 0 exactly. */
void lb_qgrid(float lo, float hi, int bits, bool sym, float *scale, uint8_t *zero);

/* round(x / scale) + zero, clamped to 0 .. 2^bits - 1. */
static inline uint8_t lb_qcode(float x, float scale, int zero, int bits)
{
    float v = __builtin_roundf(x / scale) + (float)zero;
    float maxq = (float)((1 << bits) - 1);
    if (v < 0) v = 0;
    if (v > maxq) v = maxq;
    return (uint8_t)v;
}

/* Expands to fp32: out[rows][cols]. */
void lb_qweight_dequant(const lb_qweight *w, float *out);

/* Round-to-nearest of an fp32 matrix W[rows][cols]: each group gets the grid of its own min and
 * max. The reference every calibrated method is measured against. */
void lb_qweight_rtn(const float *W, int rows, int cols, int bits, int group_size, bool sym,
                    lb_qweight *out);

#endif
