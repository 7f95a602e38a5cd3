/* Portable kernels: plain C, eight partial sums so the compiler can vectorize and so the
 * summation order resembles the SIMD kernels'. */
#include "tensor/kernels/kernels.h"
#include "tensor/tensor.h"

#include <math.h>

#include <stdbool.h>

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

/* ---- GGUF blocks against int8 activations, in the AVX2 kernel's lanes ----------------- */

/* The AVX2 kernel's final reduction (hsum): lanes l and l+4, then pairs two apart, then the
 * last two. */
static float lanes_sum(const float a[8])
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* Adds block b's products w·x to the lanes: lane l holds elements 4l..4l+3, in exact integers,
 * times the block's scale, by one fused multiply-add each as _mm256_fmadd_ps does. */
static void lanes_add(float acc[8], const int8_t *w, const int8_t *x, float scale)
{
    for (int l = 0; l < 8; l++) {
        int32_t v = 0;
        for (int j = 4 * l; j < 4 * l + 4; j++)
            v += (int32_t)w[j] * (int32_t)x[j];
        acc[l] = fmaf(scale, (float)v, acc[l]);
    }
}

static float qdot_q8_0(const void *row, const int8_t *xq, const float *xd, int64_t nb)
{
    const lb_block_q8_0 *b = row;
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++, xq += LB_QK)
        lanes_add(acc, b[i].qs, xq, lb_fp16_to_fp32(b[i].d) * xd[i]);
    return lanes_sum(acc);
}

static float qdot_q4_0(const void *row, const int8_t *xq, const float *xd, int64_t nb)
{
    const lb_block_q4_0 *b = row;
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++, xq += LB_QK) {
        int8_t w[LB_QK];
        for (int j = 0; j < LB_QK / 2; j++) {
            w[j] = (int8_t)((b[i].qs[j] & 0x0f) - 8);
            w[j + LB_QK / 2] = (int8_t)((b[i].qs[j] >> 4) - 8);
        }
        lanes_add(acc, w, xq, lb_fp16_to_fp32(b[i].d) * xd[i]);
    }
    return lanes_sum(acc);
}

static void qdot4_q8_0(const void *row, const int8_t *xq, const float *xd, int64_t nb,
                       float out[4])
{
    for (int t = 0; t < 4; t++)
        out[t] = qdot_q8_0(row, xq + t * nb * LB_QK, xd + t * nb, nb);
}

static void qdot4_q4_0(const void *row, const int8_t *xq, const float *xd, int64_t nb,
                       float out[4])
{
    for (int t = 0; t < 4; t++)
        out[t] = qdot_q4_0(row, xq + t * nb * LB_QK, xd + t * nb, nb);
}

/* ---- lowbit's group formats ---------------------------------------------------------- */

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

const lb_kernel_set lb_kernels_scalar = {
    "scalar", dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0, dot_q4_1, gemm_f32,
    {[2] = qdot2, [3] = qdot3, [4] = qdot4, [8] = qdot8},
    {[2] = qtile2, [3] = qtile3, [4] = qtile4, [8] = qtile8},
    qdot_q8_0,
    qdot_q4_0,
    qdot4_q8_0,
    qdot4_q4_0,
    f16_to_f32,
    f32_to_f16,
};
