/* GGUF's Q8_0 / Q4_0 rows against int8 activation blocks (see lb_kernel_set.qdot_q8_0), shared
 * by the AVX2 and AVX-512 kernels. The includer defines QTARGET, includes qunpack_x86.h, and
 * defines block_lanes(w, x): the eight int32 lanes of Σ w·x over elements 4l..4l+3 of one block
 * of signed weights and activations. Both levels' lanes are the same exact integers, so the
 * float results are the same bits. */
#ifndef LB_GGUF_X86_H
#define LB_GGUF_X86_H

/* Q4_0's nibbles are lowbit's 4-bit packing (low nibble j, high nibble j + 16), less 8. */
QTARGET static inline __m256i q4_0_weights(const lb_block_q4_0 *b)
{
    return _mm256_sub_epi8(qunpack4(b->qs), _mm256_set1_epi8(8));
}

QTARGET static inline __m256i q8_0_weights(const lb_block_q8_0 *b)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)b->qs);
}

/* One block's lanes, scaled into acc by a fused multiply-add. */
QTARGET static inline __m256 block_fma(__m256i w, const int8_t *xq, float scale, __m256 acc)
{
    __m256i lanes = block_lanes(w, _mm256_loadu_si256((const __m256i *)xq));
    return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(lanes), acc);
}

/* Four tokens against one row: each weight block is loaded, unpacked and its signs taken
 * once; every token keeps its own accumulator, added in the one-token kernel's order. */
QTARGET static inline void block_fma4(__m256i w, const int8_t *xq, const float *xd, int64_t i,
                                      int64_t nb, float dw, __m256 acc[4])
{
    for (int t = 0; t < 4; t++)
        acc[t] = block_fma(w, xq + (t * nb + i) * LB_QK, dw * xd[t * nb + i], acc[t]);
}

#define GGUF_ROW_KERNELS(type, weights)                                                      \
    QTARGET static float qdot_##type(const void *row, const int8_t *xq, const float *xd,    \
                                     int64_t nb)                                             \
    {                                                                                        \
        const lb_block_##type *b = row;                                                      \
        __m256 acc = _mm256_setzero_ps();                                                    \
        for (int64_t i = 0; i < nb; i++, xq += LB_QK)                                        \
            acc = block_fma(weights(b + i), xq, _cvtsh_ss(b[i].d) * xd[i], acc);             \
        return hsum_ps(acc);                                                                 \
    }                                                                                        \
    QTARGET static void qdot4_##type(const void *row, const int8_t *xq, const float *xd,    \
                                     int64_t nb, float out[4])                               \
    {                                                                                        \
        const lb_block_##type *b = row;                                                      \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),      \
                         _mm256_setzero_ps()};                                               \
        for (int64_t i = 0; i < nb; i++)                                                     \
            block_fma4(weights(b + i), xq, xd, i, nb, _cvtsh_ss(b[i].d), acc);               \
        for (int t = 0; t < 4; t++)                                                          \
            out[t] = hsum_ps(acc[t]);                                                        \
    }

GGUF_ROW_KERNELS(q8_0, q8_0_weights)
GGUF_ROW_KERNELS(q4_0, q4_0_weights)

#endif
