/* Portable kernels: plain C, eight partial sums so the compiler can vectorize and so the
 * summation order resembles the SIMD kernels'. */
#include "tensor/kernels/kernels.h"
#include "tensor/repack.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static float dot_f32(const void *row, const float *x, int64_t n)
{
    const float *w = row;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += w[i + k] * x[i + k];
    float s = 0;
    for (; i < n; i++)
        s += w[i] * x[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void gemm_f32(const float *w, size_t ldw, int rows, const float *x, size_t ldx, int nt,
                     int64_t n, float *y, size_t ldy)
{
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < rows; r++)
            y[(size_t)t * ldy + (size_t)r] = dot_f32(w + (size_t)r * ldw, x + (size_t)t * ldx, n);
}

static float dot_f16(const void *row, const float *x, int64_t n)
{
    const uint16_t *w = row;
    float s = 0;
    for (int64_t i = 0; i < n; i++)
        s += lb_fp16_to_fp32(w[i]) * x[i];
    return s;
}

static float dot_bf16(const void *row, const float *x, int64_t n)
{
    const uint16_t *w = row;
    float s = 0;
    for (int64_t i = 0; i < n; i++)
        s += lb_bf16_to_fp32(w[i]) * x[i];
    return s;
}

static float dot_q8_0(const void *row, const float *x, int64_t n)
{
    const lb_block_q8_0 *b = row;
    float s = 0;
    for (int64_t i = 0; i < n / LB_QK; i++, x += LB_QK) {
        float bs = 0;
        for (int j = 0; j < LB_QK; j++)
            bs += (float)b[i].qs[j] * x[j];
        s += lb_fp16_to_fp32(b[i].d) * bs;
    }
    return s;
}

static float dot_q4_0(const void *row, const float *x, int64_t n)
{
    const lb_block_q4_0 *b = row;
    float s = 0;
    for (int64_t i = 0; i < n / LB_QK; i++, x += LB_QK) {
        float bs = 0;
        for (int j = 0; j < LB_QK / 2; j++)
            bs += (float)((b[i].qs[j] & 0x0f) - 8) * x[j] +
                  (float)((b[i].qs[j] >> 4) - 8) * x[j + LB_QK / 2];
        s += lb_fp16_to_fp32(b[i].d) * bs;
    }
    return s;
}

static float dot_q4_1(const void *row, const float *x, int64_t n)
{
    const lb_block_q4_1 *b = row;
    float s = 0;
    for (int64_t i = 0; i < n / LB_QK; i++, x += LB_QK) {
        float bs = 0, xs = 0;
        for (int j = 0; j < LB_QK / 2; j++) {
            bs += (float)(b[i].qs[j] & 0x0f) * x[j] + (float)(b[i].qs[j] >> 4) * x[j + LB_QK / 2];
            xs += x[j] + x[j + LB_QK / 2];
        }
        s += lb_fp16_to_fp32(b[i].d) * bs + lb_fp16_to_fp32(b[i].m) * xs;
    }
    return s;
}

/* ---- GGUF blocks repacked sixteen rows together, against int8 activations ------------ */

/* Row r's weight j of a packed block (tensor/repack.h): chunk j / 4 for Q8_0; for Q4_0 chunk
 * (j % 16) / 4, low nibble below 16, high from 16 on, less 8. */
static int packed_weight(const uint8_t *blk, bool q4, int r, int j)
{
    const uint8_t *chunks = blk + 2 * LB_PACK_ROWS;
    if (!q4)
        return (int8_t)chunks[(j / 4) * 4 * LB_PACK_ROWS + 4 * r + j % 4];
    int k = j % 16;
    uint8_t byte = chunks[(k / 4) * 4 * LB_PACK_ROWS + 4 * r + k % 4];
    return (j < 16 ? byte & 0x0f : byte >> 4) - 8;
}

static void pdot(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd, int nt,
                 bool q4, float *y)
{
    size_t block_bytes = LB_PACK_ROWS * (2 + (q4 ? LB_QK / 2 : LB_QK));
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < LB_PACK_ROWS; r++) {
            float acc = 0;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = group + (size_t)b * block_bytes;
                const int8_t *x = xq + ((size_t)t * (size_t)nb + (size_t)b) * LB_QK;
                int32_t dot = 0;
                for (int j = 0; j < LB_QK; j++)
                    dot += packed_weight(blk, q4, r, j) * x[j];
                uint16_t d;
                memcpy(&d, blk + 2 * r, 2);
                acc = fmaf(lb_fp16_to_fp32(d) * xd[(size_t)t * (size_t)nb + (size_t)b],
                           (float)dot, acc);
            }
            y[t * LB_PACK_ROWS + r] = acc;
        }
}

static void pdot_q8_0(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd,
                      const int32_t *xsum, int nt, float *y)
{
    (void)xsum;
    pdot(group, nb, xq, xd, nt, false, y);
}

static void pdot_q4_0(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd,
                      const int32_t *xsum, int nt, float *y)
{
    (void)xsum;
    pdot(group, nb, xq, xd, nt, true, y);
}

static void quantize_q8(const float *x, int64_t nb, int8_t *q, float *d, int32_t *sum)
{
    for (int64_t b = 0; b < nb; b++, x += LB_QK, q += LB_QK) {
        float amax = 0;
        for (int j = 0; j < LB_QK; j++)
            amax = lb_absmax(amax, x[j]);
        float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < LB_QK; j++) {
            q[j] = (int8_t)lb_q8_round(x[j] * inv);
            s += q[j];
        }
        d[b] = scale;
        sum[b] = s;
    }
}

void lb_qpack_block(const uint8_t codes[32], int bits, uint8_t *out)
{
    switch (bits) {
    case 8:
        for (int j = 0; j < 32; j++)
            out[j] = codes[j];
        break;
    case 4:
        for (int j = 0; j < 16; j++)
            out[j] = (uint8_t)((codes[j] & 15) | (codes[j + 16] & 15) << 4);
        break;
    case 2:
    case 3:
        for (int j = 0; j < 8; j++)
            out[j] = (uint8_t)((codes[j] & 3) | (codes[j + 8] & 3) << 2 |
                               (codes[j + 16] & 3) << 4 | (codes[j + 24] & 3) << 6);
        if (bits == 3) {
            uint32_t hi = 0;
            for (int j = 0; j < 32; j++)
                hi |= (uint32_t)((codes[j] >> 2) & 1) << j;
            for (int k = 0; k < 4; k++)
                out[8 + k] = (uint8_t)(hi >> (8 * k));
        }
        break;
    default:
        break;
    }
}

void lb_qunpack_block(const uint8_t *in, int bits, uint8_t codes[32])
{
    switch (bits) {
    case 8:
        for (int j = 0; j < 32; j++)
            codes[j] = in[j];
        break;
    case 4:
        for (int j = 0; j < 16; j++) {
            codes[j] = in[j] & 15;
            codes[j + 16] = in[j] >> 4;
        }
        break;
    case 2:
    case 3:
        for (int j = 0; j < 32; j++)
            codes[j] = (in[j % 8] >> (2 * (j / 8))) & 3;
        if (bits == 3)
            for (int j = 0; j < 32; j++)
                codes[j] |= (uint8_t)(((in[8 + j / 8] >> (j % 8)) & 1) << 2);
        break;
    default:
        for (int j = 0; j < 32; j++)
            codes[j] = 0;
        break;
    }
}

static void qdot_blocks(const uint8_t *codes, const int8_t *xq, int nb, int bits, int32_t *out)
{
    uint8_t c[32];
    for (int b = 0; b < nb; b++, codes += bits * 4, xq += 32) {
        lb_qunpack_block(codes, bits, c);
        int32_t s = 0;
        for (int j = 0; j < 32; j++)
            s += (int32_t)c[j] * xq[j];
        out[b] = s;
    }
}

static void qdot_tile(const uint8_t *codes, const int8_t *xq, int nb, int bits, int32_t *out)
{
    uint8_t c[32];
    for (int b = 0; b < nb; b++, codes += bits * 4) {
        lb_qunpack_block(codes, bits, c);
        for (int t = 0; t < LB_QTILE; t++, xq += 32) {
            int32_t s = 0;
            for (int j = 0; j < 32; j++)
                s += (int32_t)c[j] * xq[j];
            out[b * LB_QTILE + t] = s;
        }
    }
}

static void qtile2(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_tile(c, x, nb, 2, o); }
static void qtile3(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_tile(c, x, nb, 3, o); }
static void qtile4(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_tile(c, x, nb, 4, o); }
static void qtile8(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_tile(c, x, nb, 8, o); }

static void qdot2(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_blocks(c, x, nb, 2, o); }
static void qdot3(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_blocks(c, x, nb, 3, o); }
static void qdot4(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_blocks(c, x, nb, 4, o); }
static void qdot8(const uint8_t *c, const int8_t *x, int nb, int32_t *o) { qdot_blocks(c, x, nb, 8, o); }

static void f16_to_f32(const uint16_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = lb_fp16_to_fp32(src[i]);
}

static void f32_to_f16(const float *src, uint16_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = lb_fp32_to_fp16(src[i]);
}

static void rows_dot_f16(const uint16_t *rows, size_t ld, int nrows, const float *x, int64_t n,
                         float *y)
{
    for (int r = 0; r < nrows; r++)
        y[r] = dot_f16(rows + (size_t)r * ld, x, n);
}

static void rows_axpy_f32(const float *w, const float *rows, size_t ld, int nrows, int64_t n,
                          float *y)
{
    for (int r = 0; r < nrows; r++)
        for (int64_t j = 0; j < n; j++)
            y[j] += w[r] * rows[(size_t)r * ld + (size_t)j];
}

static void rows_axpy_f16(const float *w, const uint16_t *rows, size_t ld, int nrows, int64_t n,
                          float *y)
{
    for (int r = 0; r < nrows; r++)
        for (int64_t j = 0; j < n; j++)
            y[j] += w[r] * lb_fp16_to_fp32(rows[(size_t)r * ld + (size_t)j]);
}

static void rows_dot_q8(const int8_t *rows, const float *scale, size_t ld, int nrows,
                        const float *x, int64_t n, float *y)
{
    for (int r = 0; r < nrows; r++) {
        const int8_t *q = rows + (size_t)r * ld;
        float acc[8] = {0}, s = 0;
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (int k = 0; k < 8; k++)
                acc[k] += (float)q[j + k] * x[j + k];
        for (; j < n; j++)
            s += (float)q[j] * x[j];
        y[r] = scale[r] * (s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                           ((acc[2] + acc[6]) + (acc[3] + acc[7])));
    }
}

static void rows_axpy_q8(const float *w, const int8_t *rows, const float *scale, size_t ld,
                         int nrows, int64_t n, float *y)
{
    for (int r = 0; r < nrows; r++) {
        float a = w[r] * scale[r];
        for (int64_t j = 0; j < n; j++)
            y[j] += a * (float)rows[(size_t)r * ld + (size_t)j];
    }
}

/* LB_EXP_*'s recipe, each step its own rounding: the file is compiled without contraction
 * of multiplies and adds into fused ones (CMakeLists.txt), as the AVX2 level never fuses. */
static inline float exp_recipe(float x)
{
    if (x != x)
        return x;
    if (x < LB_EXP_LO)
        return 0.0f;
    if (x > LB_EXP_HI)
        return INFINITY;
    float n = nearbyintf(x * LB_EXP_LOG2E);
    float r = x - n * LB_EXP_C1;
    r = r - n * LB_EXP_C2;
    float y = LB_EXP_P0;
    y = y * r + LB_EXP_P1;
    y = y * r + LB_EXP_P2;
    y = y * r + LB_EXP_P3;
    y = y * r + LB_EXP_P4;
    y = y * r + LB_EXP_P5;
    y = y * (r * r) + r + 1.0f;
    union {
        uint32_t u;
        float f;
    } half_scale = {(uint32_t)((int32_t)n + 126) << 23};   /* 2^(n - 1) */
    return y * half_scale.f * 2.0f;
}

static float exp_sum(float *x, int64_t n, float sub)
{
    float lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            x[i + k] = exp_recipe(x[i + k] - sub);
            lane[k] += x[i + k];
        }
    float s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
              ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    for (; i < n; i++) {
        x[i] = exp_recipe(x[i] - sub);
        s += x[i];
    }
    return s;
}

static void silu_mul(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + exp_recipe(-gate[i])) * up[i];
}

const lb_kernel_set lb_kernels_scalar = {
    "scalar", dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0, dot_q4_1, gemm_f32,
    {[2] = qdot2, [3] = qdot3, [4] = qdot4, [8] = qdot8},
    {[2] = qtile2, [3] = qtile3, [4] = qtile4, [8] = qtile8},
    pdot_q8_0,
    pdot_q4_0,
    quantize_q8,
    f16_to_f32,
    f32_to_f16,
    rows_dot_f16,
    rows_axpy_f32,
    rows_axpy_f16,
    rows_dot_q8,
    rows_axpy_q8,
    exp_sum,
    silu_mul,
};
