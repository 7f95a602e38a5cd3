/* Portable kernels: plain C, eight partial sums so the compiler can vectorize and so the
 * summation order resembles the SIMD kernels'. */
#include "tensor/kernels/kernels.h"
#include "tensor/tensor.h"

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

const lb_kernel_set lb_kernels_scalar = {
    "scalar", dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0, dot_q4_1,
};
