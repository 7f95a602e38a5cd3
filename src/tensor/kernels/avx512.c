/* AVX-512 level: the integer block dots of lowbit's group formats with VNNI (vpdpbusd takes
 * unsigned codes times signed activations and accumulates in int32 without saturation, so one
 * kernel serves 2- to 8-bit codes). Float kernels are AVX2's; tensor.c composes the set. */
#include "tensor/kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define QTARGET AVX512
#include "tensor/kernels/qunpack_x86.h"

/* Two blocks per 512-bit register; each half is reduced separately. */
#define QDOT_VNNI(name, unpack, bytes)                                                      \
    AVX512 static void name(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out)  \
    {                                                                                      \
        int b = 0;                                                                         \
        for (; b + 2 <= nb; b += 2, codes += 2 * (bytes), xq += 64) {                      \
            __m512i c = _mm512_inserti64x4(_mm512_castsi256_si512(unpack(codes)),          \
                                           unpack(codes + (bytes)), 1);                    \
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c,                     \
                                            _mm512_loadu_si512((const void *)xq));         \
            out[b] = hsum_epi32(_mm512_castsi512_si256(p));                                \
            out[b + 1] = hsum_epi32(_mm512_extracti64x4_epi64(p, 1));                      \
        }                                                                                  \
        for (; b < nb; b++, codes += (bytes), xq += 32) {                                  \
            __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), unpack(codes),         \
                                            _mm256_loadu_si256((const __m256i *)xq));      \
            out[b] = hsum_epi32(p);                                                        \
        }                                                                                  \
    }

QDOT_VNNI(qdot2, qunpack2, 8)
QDOT_VNNI(qdot3, qunpack3, 12)
QDOT_VNNI(qdot4, qunpack4, 16)
QDOT_VNNI(qdot8, qunpack8, 32)

/* LB_QTILE tokens per block: one vpdpbusd per token on the block's codes, unpacked once. */
#define QTILE_VNNI(name, unpack, bytes)                                                     \
    AVX512 static void name(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out)  \
    {                                                                                      \
        for (int b = 0; b < nb; b++, codes += (bytes), xq += 32 * LB_QTILE) {              \
            __m256i c = unpack(codes), p[LB_QTILE];                                        \
            for (int t = 0; t < LB_QTILE; t++)                                             \
                p[t] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), c,                      \
                                           _mm256_loadu_si256((const __m256i *)(xq + 32 * t))); \
            _mm_storeu_si128((__m128i *)(out + (size_t)b * LB_QTILE),                      \
                             hsum4_epi32(p[0], p[1], p[2], p[3]));                         \
        }                                                                                  \
    }

QTILE_VNNI(qtile2, qunpack2, 8)
QTILE_VNNI(qtile3, qunpack3, 12)
QTILE_VNNI(qtile4, qunpack4, 16)
QTILE_VNNI(qtile8, qunpack8, 32)

/* GGUF's Q8_0 / Q4_0 against int8 activations: AVX2's kernels with vpdpbusd in place of
 * maddubs + madd. Both sum the same four byte products into each int32 lane, exactly, so the
 * lanes, and the float result, are AVX2's bit for bit. */
AVX512 static inline __m256i block_lanes(__m256i w, __m256i x)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w),
                               _mm256_sign_epi8(x, w));
}

#include "tensor/kernels/gguf_x86.h"

static const lb_kernel_set avx512_set = {
    "avx512", 0, 0, 0, 0, 0, 0, 0,
    {[2] = qdot2, [3] = qdot3, [4] = qdot4, [8] = qdot8},
    {[2] = qtile2, [3] = qtile3, [4] = qtile4, [8] = qtile8},
    qdot_q8_0,
    qdot_q4_0,
    qdot4_q8_0,
    qdot4_q4_0,
    0, 0,   /* AVX2's fp16 rows */
};
const lb_kernel_set *const lb_kernels_avx512 = &avx512_set;

#else
const lb_kernel_set *const lb_kernels_avx512 = 0;
#endif
