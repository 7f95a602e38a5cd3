/* Kernel sets, one per instruction-set level. tensor.c installs one set into the traits table
 * at start-up. Every set computes the same quantities; only summation order may differ. */
#ifndef LB_KERNELS_H
#define LB_KERNELS_H

#include <stdint.h>

typedef struct {
    const char *name;
    float (*dot_f32)(const void *row, const float *x, int64_t n);
    float (*dot_f16)(const void *row, const float *x, int64_t n);
    float (*dot_bf16)(const void *row, const float *x, int64_t n);
    float (*dot_q8_0)(const void *row, const float *x, int64_t n);
    float (*dot_q4_0)(const void *row, const float *x, int64_t n);
    float (*dot_q4_1)(const void *row, const float *x, int64_t n);
} lb_kernel_set;

extern const lb_kernel_set lb_kernels_scalar;
/* NULL where the compiler cannot target AVX2. */
extern const lb_kernel_set *const lb_kernels_avx2;

/* Block layouts shared by the kernels (GGUF's). */
#define LB_QK 32
typedef struct { uint16_t d; int8_t qs[LB_QK]; } lb_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[LB_QK / 2]; } lb_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[LB_QK / 2]; } lb_block_q4_1;

#endif
