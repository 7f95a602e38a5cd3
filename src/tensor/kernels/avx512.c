/* AVX-512 level: the integer block dots of lowbit's group formats and GGUF's packed Q8_0 /
 * Q4_0 with VNNI (vpdpbusd takes unsigned codes times signed activations and accumulates in
 * int32 without saturation, so one kernel serves 2- to 8-bit codes), and F32 rows times
 * tokens in sixteen lanes. The other float kernels are AVX2's; tensor.c composes the set. */
#include "tensor/kernels/kernels.h"
#include "tensor/repack.h"

#include <stdbool.h>
#include <string.h>

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

/* ---- F32 rows times several tokens ------------------------------------------------------ *
 * As AVX2's gemm_f32 with sixteen lanes: every output is one chain acc += w[i..i+15] ·
 * x[i..i+15] over each whole 16 in order, then the lanes' fixed reduction, then the last
 * n % 16 products one by one. Tiles only run several chains side by side, so an output does
 * not depend on the tile it fell in (nor on the batch, nor on the threads). Where the CPU has
 * full-width 512-bit units this is twice the multiply-adds per instruction of AVX2. */

AVX512 static inline float f32_finish16(__m512 acc, const float *w, const float *x, int64_t i,
                                        int64_t n)
{
    float s = _mm512_reduce_add_ps(acc);
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

/* Bytes ahead of the weights being multiplied that the wider tiles prefetch. */
#define PREFETCH_AHEAD 1024

#define GEMM_TILE16(name, R, T)                                                              \
    AVX512 static void name(const float *w, size_t ldw, const float *x, size_t ldx, int64_t n, \
                            float *y, size_t ldy)                                             \
    {                                                                                         \
        __m512 acc[R][T];                                                                     \
        for (int r = 0; r < (R); r++)                                                         \
            for (int t = 0; t < (T); t++)                                                     \
                acc[r][t] = _mm512_setzero_ps();                                              \
        int64_t i = 0;                                                                        \
        for (; i + 16 <= n; i += 16) {                                                        \
            __m512 xv[T];                                                                     \
            for (int t = 0; t < (T); t++)                                                     \
                xv[t] = _mm512_loadu_ps(x + (size_t)t * ldx + i);                             \
            for (int r = 0; r < (R); r++) {                                                   \
                __m512 wv = _mm512_loadu_ps(w + (size_t)r * ldw + i);                         \
                if ((T) > 1) /* compute-heavy tiles fetch their rows ahead themselves */      \
                    _mm_prefetch((const char *)(w + (size_t)r * ldw + i) + PREFETCH_AHEAD,     \
                                 _MM_HINT_T0);                                                \
                for (int t = 0; t < (T); t++)                                                 \
                    acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);                        \
            }                                                                                 \
        }                                                                                     \
        for (int r = 0; r < (R); r++)                                                         \
            for (int t = 0; t < (T); t++)                                                     \
                y[(size_t)t * ldy + (size_t)r] =                                              \
                    f32_finish16(acc[r][t], w + (size_t)r * ldw, x + (size_t)t * ldx, i, n);  \
    }

/* 4 × 6: twenty-four chains, six activation and one weight register of the thirty-two. */
GEMM_TILE16(tile16_4x6, 4, 6)
GEMM_TILE16(tile16_4x5, 4, 5)
GEMM_TILE16(tile16_4x4, 4, 4)
GEMM_TILE16(tile16_4x3, 4, 3)
GEMM_TILE16(tile16_4x2, 4, 2)
GEMM_TILE16(tile16_4x1, 4, 1)
/* One token (decode): eight rows' chains side by side, enough loads in flight to stream. */
GEMM_TILE16(tile16_8x1, 8, 1)
GEMM_TILE16(tile16_1x1, 1, 1)

AVX512 static void gemm_f32(const float *w, size_t ldw, int rows, const float *x, size_t ldx,
                            int nt, int64_t n, float *y, size_t ldy)
{
    typedef void (*tile_fn)(const float *, size_t, const float *, size_t, int64_t, float *,
                            size_t);
    static const tile_fn edge[6] = {0, tile16_4x1, tile16_4x2, tile16_4x3, tile16_4x4,
                                    tile16_4x5};
    int r = 0;
    if (nt == 1)
        for (; r + 8 <= rows; r += 8)
            tile16_8x1(w + (size_t)r * ldw, ldw, x, ldx, n, y + r, ldy);
    for (; r + 4 <= rows; r += 4) {
        const float *wr = w + (size_t)r * ldw;
        int t = 0;
        for (; t + 6 <= nt; t += 6)
            tile16_4x6(wr, ldw, x + (size_t)t * ldx, ldx, n, y + (size_t)t * ldy + r, ldy);
        if (nt > t)
            edge[nt - t](wr, ldw, x + (size_t)t * ldx, ldx, n, y + (size_t)t * ldy + r, ldy);
    }
    for (; r < rows; r++)
        for (int t = 0; t < nt; t++)
            tile16_1x1(w + (size_t)r * ldw, ldw, x + (size_t)t * ldx, ldx, n,
                       y + (size_t)t * ldy + r, ldy);
}

/* ---- GGUF's Q8_0 / Q4_0 repacked sixteen rows together (tensor/repack.h) --------------- *
 * One 512-bit register holds the same four weights of the group's sixteen rows, so vpdpbusd
 * against one broadcast word of a token's activations adds four products to each row's
 * int32 lane: eight of them make the block's sixteen dots, with no horizontal sums. vpdpbusd
 * takes the weights unsigned: Q4_0's nibbles as they are (0..15) and Q8_0's bytes offset by
 * 128, each block then less 8 or 128 times the activations' sum. Exact integers, the scalar
 * kernel's, then its one fused multiply-add per block. */

/* Activation bytes 4g..4g+3 in every lane, broadcast straight from memory. */
AVX512 static inline __m512i word512(const int8_t *x, int g)
{
    return _mm512_broadcastd_epi32(_mm_loadu_si32(x + 4 * g));
}

/* Token t's int32 dots of one block: w[g] holds weights 4g..4g+3 of the sixteen rows; the
 * offset, bias times the activations' sum, is taken as the sum shifted left by log2(bias). */
AVX512 static inline __m512i block_dots(const __m512i w[8], const int8_t *x, const int32_t *sum,
                                        int shift)
{
    /* one chain from the offset's negation: the tokens of a call and the blocks in flight
     * hide its latency */
    __m512i acc = _mm512_sub_epi32(_mm512_setzero_si512(),
                                   _mm512_slli_epi32(_mm512_set1_epi32(*sum), (unsigned)shift));
    for (int g = 0; g < 8; g++)
        acc = _mm512_dpbusd_epi32(acc, w[g], word512(x, g));
    return acc;
}

/* Bytes ahead of the block being multiplied that the packed kernels prefetch. */
#define PACKED_AHEAD 4096

/* nt tokens (a constant where inlined, so the accumulators stay in registers). */
AVX512 static inline __attribute__((always_inline)) void
pdot_tokens(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd,
            const int32_t *xsum, const int nt, const bool q4, float *y)
{
    const size_t block_bytes = LB_PACK_ROWS * (2 + (q4 ? LB_QK / 2 : LB_QK));
    const int shift = q4 ? 3 : 7;   /* bias 8 or 128 */
    __m512 acc[LB_PTILE];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, group += block_bytes) {
        /* the weights stream from memory once: ask for them a few blocks ahead */
        for (size_t off = 0; off < block_bytes; off += 64)
            _mm_prefetch((const char *)group + PACKED_AHEAD + off, _MM_HINT_T0);
        __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)group));
        const uint8_t *chunks = group + 2 * LB_PACK_ROWS;
        __m512i w[8];
        if (q4) {
            const __m512i low = _mm512_set1_epi8(0x0f);
            for (int k = 0; k < 4; k++) {
                __m512i c = _mm512_loadu_si512((const void *)(chunks + 64 * k));
                w[k] = _mm512_and_si512(c, low);
                w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(c, 4), low);
            }
        } else {
            for (int g = 0; g < 8; g++)
                w[g] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(chunks + 64 * g)),
                                        _mm512_set1_epi8((char)0x80));
        }
        for (int t = 0; t < nt; t++) {
            size_t at = (size_t)t * (size_t)nb + (size_t)b;
            __m512i dots = block_dots(w, xq + at * LB_QK, xsum + at, shift);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd[at])),
                                     _mm512_cvtepi32_ps(dots), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(y + t * LB_PACK_ROWS, acc[t]);
}

#define PDOT_VNNI(name, q4)                                                                 \
    AVX512 static void name(const uint8_t *group, int64_t nb, const int8_t *xq,            \
                            const float *xd, const int32_t *xsum, int nt, float *y)        \
    {                                                                                      \
        switch (nt) {                                                                      \
        case 1: pdot_tokens(group, nb, xq, xd, xsum, 1, q4, y); break;                      \
        case 2: pdot_tokens(group, nb, xq, xd, xsum, 2, q4, y); break;                      \
        case 3: pdot_tokens(group, nb, xq, xd, xsum, 3, q4, y); break;                      \
        default: pdot_tokens(group, nb, xq, xd, xsum, 4, q4, y); break;                     \
        }                                                                                  \
    }

PDOT_VNNI(pdot_q8_0, false)
PDOT_VNNI(pdot_q4_0, true)

/* ---- activations to int8 blocks ------------------------------------------------------- *
 * The scalar quantize_q8's operations lane by lane: |x| by clearing the sign, the maximum
 * with the running one second (so a NaN lane keeps it, as lb_absmax does), the same division
 * and reciprocal, one rounded multiply (kept from fusing with the add that follows), then
 * lb_q8_round's add and truncation with its three exceptions as masks. */
AVX512 static inline __m512i round_q8_16(__m512 r)
{
    /* r's sign on 0.49999997, in integer operations (AVX-512F has no float and / or) */
    __m512i ri = _mm512_castps_si512(r);
    __m512 half = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_and_si512(ri, _mm512_set1_epi32(INT32_MIN)), _mm512_set1_epi32(0x3effffff)));
    __m512i q = _mm512_cvttps_epi32(_mm512_add_ps(r, half));
    q = _mm512_mask_mov_epi32(q, _mm512_cmp_ps_mask(r, _mm512_set1_ps(126.5f), _CMP_GE_OQ),
                              _mm512_set1_epi32(127));
    q = _mm512_mask_mov_epi32(q, _mm512_cmp_ps_mask(r, _mm512_set1_ps(-126.5f), _CMP_LE_OQ),
                              _mm512_set1_epi32(-127));
    return _mm512_mask_mov_epi32(q, _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q),
                                 _mm512_setzero_si512());
}

AVX512 static void quantize_q8(const float *x, int64_t nb, int8_t *q, float *d, int32_t *sum)
{
    for (int64_t b = 0; b < nb; b++, x += LB_QK, q += LB_QK) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
        m = _mm512_max_ps(_mm512_abs_ps(v1), m);
        float amax = _mm512_reduce_max_ps(m);
        float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
        __m512 r0 = _mm512_mul_ps(v0, _mm512_set1_ps(inv));
        __m512 r1 = _mm512_mul_ps(v1, _mm512_set1_ps(inv));
        __asm__("" : "+v"(r0), "+v"(r1));   /* rounded here, never fused into the add */
        __m512i q0 = round_q8_16(r0), q1 = round_q8_16(r1);
        _mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(void *)(q + 16), _mm512_cvtepi32_epi8(q1));
        d[b] = scale;
        sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

static const lb_kernel_set avx512_set = {
    "avx512", 0, 0, 0, 0, 0, 0, gemm_f32,
    {[2] = qdot2, [3] = qdot3, [4] = qdot4, [8] = qdot8},
    {[2] = qtile2, [3] = qtile3, [4] = qtile4, [8] = qtile8},
    pdot_q8_0,
    pdot_q4_0,
    quantize_q8,
    0, 0,      /* AVX2's fp16 rows */
    0, 0, 0, 0, 0,   /* and attention's row kernels */
    0, 0,            /* and the exp kernels */
};
const lb_kernel_set *const lb_kernels_avx512 = &avx512_set;

#else
const lb_kernel_set *const lb_kernels_avx512 = 0;
#endif
