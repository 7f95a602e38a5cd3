/* Kernel sets, one per instruction-set level. tensor.c installs one set into the traits table
 * at start-up. Every set computes the same quantities; only summation order may differ. */
#ifndef LB_KERNELS_H
#define LB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    float (*dot_f32)(const void *row, const float *x, int64_t n);
    float (*dot_f16)(const void *row, const float *x, int64_t n);
    float (*dot_bf16)(const void *row, const float *x, int64_t n);
    float (*dot_q8_0)(const void *row, const float *x, int64_t n);
    float (*dot_q4_0)(const void *row, const float *x, int64_t n);
    float (*dot_q4_1)(const void *row, const float *x, int64_t n);
    /* F32 rows times several tokens: y[t·ldy + r] = Σ_i w[r·ldw + i] · x[t·ldx + i] for
     * r < rows, t < nt. Each output is computed by the same operations in the same order
     * whatever rows, nt and the element's place in them, so a token's result does not depend
     * on the batch around it (nor on how the rows are shared out among threads). */
    void (*gemm_f32)(const float *w, size_t ldw, int rows, const float *x, size_t ldx, int nt,
                     int64_t n, float *y, size_t ldy);
    /* lowbit's group formats: integer dots of nb consecutive 32-code blocks of `bits`-bit
     * unsigned codes (packed as lb_qpack_block does) with nb blocks of int8 activations:
     * out[b] = Σ_j code[b][j] · xq[b][j]. Integers, so every level gives identical results. */
    void (*qdot_blocks[9])(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out);
    /* The same for LB_QTILE tokens at once, each block's codes unpacked once for all of them:
     * xq holds block by block the LB_QTILE tokens' 32 activations one after another (token t
     * of block b at xq + (b·LB_QTILE + t)·32), and out[b·LB_QTILE + t] = Σ_j code[b][j] ·
     * xq[(b·LB_QTILE + t)·32 + j]. Integers again: identical at every level. */
    void (*qdot_tile[9])(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out);
    /* GGUF's Q8_0 and Q4_0 rows of nb blocks against activations quantized to int8 per block
     * of 32 (xq, scales xd), as llama.cpp multiplies them: Σ_b d_b·xd_b·(integer dot of block
     * b). The sum runs in eight float lanes as the AVX2 kernel keeps it (lane l: elements
     * 4l..4l+3 of every block, added by fused multiply-adds), then the lanes are added in
     * hsum's fixed tree, so every level gives the same float. */
    float (*qdot_q8_0)(const void *row, const int8_t *xq, const float *xd, int64_t nb);
    float (*qdot_q4_0)(const void *row, const int8_t *xq, const float *xd, int64_t nb);
    /* The same for four consecutive tokens (token t's blocks at xq + t·nb·32, its scales at
     * xd + t·nb), each weight block unpacked once for all four: out[t] is bit for bit what
     * the one-token kernel gives for token t. */
    void (*qdot4_q8_0)(const void *row, const int8_t *xq, const float *xd, int64_t nb,
                       float out[4]);
    void (*qdot4_q4_0)(const void *row, const int8_t *xq, const float *xd, int64_t nb,
                       float out[4]);
    /* Rows of fp16 to fp32 and back, rounding to nearest even (the KV cache in F16): the
     * values of lb_fp16_to_fp32 / lb_fp32_to_fp16 at every level, NaN payloads aside. */
    void (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    void (*f32_to_f16)(const float *src, uint16_t *dst, int64_t n);
} lb_kernel_set;

/* Tokens per tile of the group formats' multi-token block dots (qdot_tile). */
#define LB_QTILE 4

extern const lb_kernel_set lb_kernels_scalar;
/* NULL where the compiler cannot target AVX2 / AVX-512. */
extern const lb_kernel_set *const lb_kernels_avx2;
/* The AVX-512 level: AVX2's float kernels with AVX-512 VNNI integer block dots. */
extern const lb_kernel_set *const lb_kernels_avx512;

/* Packing of one block of 32 codes (each < 2^bits) for bits 2, 3, 4, 8 into bits*4 bytes:
 *   8: byte j = code j;
 *   4: byte j (j < 16) = code j | code (j+16) << 4;
 *   2: byte j (j < 8) holds codes j, j+8, j+16, j+24 at bits 0, 2, 4, 6;
 *   3: bytes 0..7 hold the low two bits as for 2; bytes 8..11 are a little-endian word whose
 *      bit j is bit 2 of code j.
 * SIMD unpacking of each is a few shifts and masks. */
/* A level by name ("scalar", "avx2", "avx512"); NULL when this CPU or build cannot run it.
 * Tests use it to compare every level the machine supports. */
const lb_kernel_set *lb_kernels_level(const char *name);
/* The level installed by lb_kernels_init. */
const lb_kernel_set *lb_kernels_current(void);

void lb_qpack_block(const uint8_t codes[32], int bits, uint8_t *out);
void lb_qunpack_block(const uint8_t *in, int bits, uint8_t codes[32]);

/* Block layouts shared by the kernels (GGUF's). */
#define LB_QK 32
typedef struct { uint16_t d; int8_t qs[LB_QK]; } lb_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[LB_QK / 2]; } lb_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[LB_QK / 2]; } lb_block_q4_1;

#endif
