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
    /* GGUF's Q8_0 and Q4_0 weights repacked sixteen rows together (tensor/repack.h), one
     * group of rows of nb blocks, against nt tokens (1 to LB_PTILE) of activations quantized
     * to int8 per block of 32: token t's blocks at xq + t·nb·32, their scales at xd + t·nb
     * and their sums Σ_j xq at xsum + t·nb. For row r < 16 and token t,
     *   y[t·16 + r] = Σ_b (d_rb · xd_tb) · dot_rtb
     * where dot is the exact integer Σ_j w·xq of the block, and the sum is one fused multiply-
     * add per block in block order from 0. So every level, every nt and every row's place in
     * the group give the same float for a row and a token. */
    void (*pdot_q8_0)(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd,
                      const int32_t *xsum, int nt, float *y);
    void (*pdot_q4_0)(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd,
                      const int32_t *xsum, int nt, float *y);
    /* Activations to int8 blocks of 32, as the GGUF kernels read them: for each of nb blocks
     * of x (32 floats), d = max|x| / 127 (NaNs ignored), q = lb_q8_round(x · (1 / d)) (0
     * throughout an all-zero block), sum = Σ q. Exact IEEE operations in a fixed order: the
     * same integers and scales at every level. */
    void (*quantize_q8)(const float *x, int64_t nb, int8_t *q, float *d, int32_t *sum);
    /* Rows of fp16 to fp32 and back, rounding to nearest even (the KV cache in F16): the
     * values of lb_fp16_to_fp32 / lb_fp32_to_fp16 at every level, NaN payloads aside. */
    void (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    void (*f32_to_f16)(const float *src, uint16_t *dst, int64_t n);
    /* Attention over cached keys and values, rows of n elements ld apart. rows_dot_f16:
     * y[r] = dot_f16(row r, x, n) for r < nrows, each the level's dot_f16 exactly.
     * rows_axpy_*: y[j] += Σ_r w[r] · row_r[j] for j < n, the rows added in order r = 0, 1, ...
     * (one multiply-add per row and element; the scalar level rounds the product first). */
    void (*rows_dot_f16)(const uint16_t *rows, size_t ld, int nrows, const float *x, int64_t n,
                         float *y);
    void (*rows_axpy_f32)(const float *w, const float *rows, size_t ld, int nrows, int64_t n,
                          float *y);
    void (*rows_axpy_f16)(const float *w, const uint16_t *rows, size_t ld, int nrows, int64_t n,
                          float *y);
    /* The same for int8 rows that each carry a float scale (a Q8 KV cache): y[r] = scale[r] ·
     * Σ_j row_r[j] · x[j], and y[j] += Σ_r (w[r] · scale[r]) · row_r[j]. */
    void (*rows_dot_q8)(const int8_t *rows, const float *scale, size_t ld, int nrows,
                        const float *x, int64_t n, float *y);
    void (*rows_axpy_q8)(const float *w, const int8_t *rows, const float *scale, size_t ld,
                         int nrows, int64_t n, float *y);
    /* Softmax's exponentials: x[i] = e^(x[i] − sub) in place for i < n, returning their sum.
     * The exp is the one below (LB_EXP_*), so every level gives the same bits; the sum runs in
     * eight lanes (element i of the whole eights in lane i mod 8, the lanes then combined as
     * ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)), the rest added after in order), the same at
     * every level too. */
    float (*exp_sum)(float *x, int64_t n, float sub);
    /* SwiGLU: gate[i] = gate[i] / (1 + e^(−gate[i])) · up[i], with the same exp. */
    void (*silu_mul)(float *gate, const float *up, int64_t n);
} lb_kernel_set;

/* The exp of exp_sum and silu_mul, one recipe at every level: n = round-half-even(x · log2 e),
 * r = (x − n · C1) − n · C2 (C1 + C2 = ln 2, C1 short enough that n · C1 is exact), then
 * e^r ≈ ((((P0·r + P1)·r + P2)·r + P3)·r + P4)·r + P5) · r² + r + 1 (Cephes' expf
 * coefficients), times 2^(n−1) and then 2 (so that n = 128 stays a normal power of two).
 * Every step is a separate IEEE multiply or add (never fused), hence the same bits at every
 * level. Below LB_EXP_LO the result is 0, above LB_EXP_HI +inf, a NaN stays NaN; between, it
 * is within a few ulp of e^x (test_kernels measures it). */
#define LB_EXP_LO (-86.5f)
#define LB_EXP_HI 88.72f
#define LB_EXP_LOG2E 1.44269504088896341f
#define LB_EXP_C1 0.693359375f
#define LB_EXP_C2 (-2.12194440e-4f)
#define LB_EXP_P0 1.9875691500e-4f
#define LB_EXP_P1 1.3981999507e-3f
#define LB_EXP_P2 8.3334519073e-3f
#define LB_EXP_P3 4.1665795894e-2f
#define LB_EXP_P4 1.6666665459e-1f
#define LB_EXP_P5 5.0000001201e-1f

/* Tokens per tile of the group formats' multi-token block dots (qdot_tile). */
#define LB_QTILE 4
/* The most tokens one call of the packed Q8_0 / Q4_0 kernels takes. */
#define LB_PTILE 4

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

/* max(m, |v|) for m never NaN (a NaN v leaves m), as the quantizers take a block's range. */
static inline float lb_absmax(float m, float v)
{
    float a = v < 0 ? -v : v;
    return a > m ? a : m;
}

/* An activation over its step to int8: rounded half away from zero (roundf), ±127 at most,
 * 0 for NaN, without libm's call. Truncating r + 0.49999997 with r's sign is roundf(r) for
 * every float (checked over all 2^32); NaN or overflow must not become undefined
 * conversions. */
static inline int lb_q8_round(float r)
{
    return r >= 126.5f    ? 127
           : r <= -126.5f ? -127
           : r == r       ? (int)(r + (r < 0 ? -0x1.fffffep-2f : 0x1.fffffep-2f))
                          : 0;
}

/* Block layouts shared by the kernels (GGUF's). */
#define LB_QK 32
typedef struct { uint16_t d; int8_t qs[LB_QK]; } lb_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[LB_QK / 2]; } lb_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[LB_QK / 2]; } lb_block_q4_1;

#endif
