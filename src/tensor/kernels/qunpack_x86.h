/* Unpacking of lowbit's 32-code blocks (see lb_qpack_block) into 32 unsigned bytes in code
 * order, and horizontal sums, shared by the AVX2 and AVX-512 kernels. The includer defines
 * QTARGET, the target attribute its functions are compiled for. */
#ifndef LB_QUNPACK_X86_H
#define LB_QUNPACK_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

QTARGET static inline __m256i qunpack8(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

QTARGET static inline __m256i qunpack4(const uint8_t *p)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)p);
    __m128i mask = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(raw, mask);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    return _mm256_set_m128i(hi, lo);
}

/* 64-bit lane k gets the 8 bytes shifted right by 2k: its bytes are codes 8k..8k+7. */
QTARGET static inline __m256i qunpack2(const uint8_t *p)
{
    int64_t q;
    memcpy(&q, p, 8);
    __m256i v = _mm256_srlv_epi64(_mm256_set1_epi64x(q), _mm256_set_epi64x(6, 4, 2, 0));
    return _mm256_and_si256(v, _mm256_set1_epi8(3));
}

/* The low two bits as for 2-bit codes; byte j's third bit comes from bit j of the word at 8. */
QTARGET static inline __m256i qunpack3(const uint8_t *p)
{
    __m256i lo = qunpack2(p);
    int32_t h;
    memcpy(&h, p + 8, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(h),
                                    _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                                      0x0101010101010101LL, 0));
    __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(4)));
}

/* The sum of eight floats in a fixed tree: lanes l and l+4, then pairs two apart, then the
 * last two (the scalar level's GGUF-block kernels follow the same order). */
QTARGET static inline float hsum_ps(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

QTARGET static inline int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The sums of four vectors' eight int32 lanes each, as one vector of four (p0's first). */
QTARGET static inline __m128i hsum4_epi32(__m256i p0, __m256i p1, __m256i p2, __m256i p3)
{
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

#endif
