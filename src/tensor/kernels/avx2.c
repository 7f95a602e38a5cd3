/* AVX2 + FMA + F16C kernels, compiled for those instructions per function so the rest of the
 * program stays portable; tensor.c installs them only when the CPU reports the features. */
#include "tensor/kernels/kernels.h"
#include "tensor/repack.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define QTARGET AVX2
#include "tensor/kernels/qunpack_x86.h"

AVX2 static float dot_f32(const void *row, const float *x, int64_t n)
{
    const float *w = row;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

/* ---- F32 rows times several tokens ----------------------------------------------------- */

/* Every output of gemm_f32 is one chain of eight lanes: acc += w[i..i+7] · x[i..i+7] for each
 * whole 8 in order, then hsum, then the last n % 8 products one by one. Tiles of rows × tokens
 * only run several such chains side by side, so an output's value does not depend on the tile
 * it fell in. f32_finish is the one place the chain ends, so that its scalar tail is compiled
 * (and contracted) the same way for every tile. */
AVX2 static inline float f32_finish(__m256 acc, const float *w, const float *x, int64_t i,
                                    int64_t n)
{
    float s = hsum_ps(acc);
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

/* R rows × T tokens, the R·T chains in registers; the GEMM_TILE_ARGS are gemm_f32's. With
 * AHEAD > 0 the loop also asks for AHEAD rows' worth of floats from `ahead` on, AHEAD · 8 a
 * step (a line every other step for one row, four lines a step for eight), so that they have
 * arrived by the time the tile is done. */
#define GEMM_TILE(TARGET, name, R, T, AHEAD)                                                \
    TARGET static void name(const float *w, size_t ldw, const float *x, size_t ldx,          \
                            int64_t n, float *y, size_t ldy, const float *ahead)             \
    {                                                                                        \
        (void)ahead;                                                                         \
        __m256 acc[R][T];                                                                    \
        for (int r = 0; r < (R); r++)                                                        \
            for (int t = 0; t < (T); t++)                                                    \
                acc[r][t] = _mm256_setzero_ps();                                             \
        int64_t i = 0;                                                                       \
        for (; i + 8 <= n; i += 8) {                                                         \
            for (int l = 0; l < ((AHEAD) + 1) / 2; l++)                                      \
                _mm_prefetch((const char *)(ahead + (size_t)(AHEAD) * (size_t)i) + 64 * l,   \
                             _MM_HINT_T0);                                                   \
            __m256 xv[T];                                                                    \
            for (int t = 0; t < (T); t++)                                                    \
                xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx + i);                            \
            for (int r = 0; r < (R); r++) {                                                  \
                __m256 wv = _mm256_loadu_ps(w + (size_t)r * ldw + i);                        \
                for (int t = 0; t < (T); t++)                                                \
                    acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);                       \
            }                                                                                \
        }                                                                                    \
        for (int r = 0; r < (R); r++)                                                        \
            for (int t = 0; t < (T); t++)                                                    \
                y[(size_t)t * ldy + (size_t)r] =                                             \
                    f32_finish(acc[r][t], w + (size_t)r * ldw, x + (size_t)t * ldx, i, n);   \
    }

/* 4 × 3: twelve chains, three activation and one weight register of the sixteen. */
GEMM_TILE(AVX2, tile_4x3, 4, 3, 0)
GEMM_TILE(AVX2, tile_4x3_ahead, 4, 3, 1)
GEMM_TILE(AVX2, tile_4x2, 4, 2, 0)
GEMM_TILE(AVX2, tile_4x1, 4, 1, 0)
/* One token (decode): eight rows' chains side by side, enough loads in flight to stream. */
GEMM_TILE(AVX2, tile_8x1, 8, 1, 0)
/* Rows of a few hundred columns are too short a stream each for the hardware prefetcher to
 * lock on before it ends, so on such rows the tile asks for the next eight rows itself:
 * 1.09x on 15M's 288 columns, but 0.84x on 110M's 768, where the hardware does it better
 * (interleaved A/B runs of F32 decode). */
#define F32_SHORT_ROW 512
GEMM_TILE(AVX2, tile_8x1_ahead, 8, 1, 8)
GEMM_TILE(AVX2, tile_1x1, 1, 1, 0)

/* Several tokens: the first token tile over a block of four rows waits on its weights, which
 * come from memory, while the later tiles find them in L1. So the first four tiles of a block
 * each fetch one row of the next block as they run: the rows arrive behind work that does
 * not wait on them. */
AVX2 static void gemm_f32(const float *w, size_t ldw, int rows, const float *x, size_t ldx,
                          int nt, int64_t n, float *y, size_t ldy)
{
    int r = 0;
    if (nt == 1)
        for (; r + 8 <= rows; r += 8) {
            if (n <= F32_SHORT_ROW && ldw == (size_t)n && r + 16 <= rows)
                tile_8x1_ahead(w + (size_t)r * ldw, ldw, x, ldx, n, y + r, ldy,
                               w + (size_t)(r + 8) * ldw);
            else
                tile_8x1(w + (size_t)r * ldw, ldw, x, ldx, n, y + r, ldy, NULL);
        }
    for (; r + 4 <= rows; r += 4) {
        const float *wr = w + (size_t)r * ldw;
        int t = 0;
        for (; t + 3 <= nt; t += 3) {
            if (t / 3 < 4 && r + 8 <= rows)
                tile_4x3_ahead(wr, ldw, x + (size_t)t * ldx, ldx, n, y + (size_t)t * ldy + r,
                               ldy, wr + (size_t)(4 + t / 3) * ldw);
            else
                tile_4x3(wr, ldw, x + (size_t)t * ldx, ldx, n, y + (size_t)t * ldy + r, ldy,
                         NULL);
        }
        if (nt - t == 2)
            tile_4x2(wr, ldw, x + (size_t)t * ldx, ldx, n, y + (size_t)t * ldy + r, ldy, NULL);
        else if (nt - t == 1)
            tile_4x1(wr, ldw, x + (size_t)t * ldx, ldx, n, y + (size_t)t * ldy + r, ldy, NULL);
    }
    for (; r < rows; r++)
        for (int t = 0; t < nt; t++)
            tile_1x1(w + (size_t)r * ldw, ldw, x + (size_t)t * ldx, ldx, n,
                     y + (size_t)t * ldy + r, ldy, NULL);
}

AVX2 static inline float dot_f16_inline(const void *row, const float *x, int64_t n)
{
    const uint16_t *w = row;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += _cvtsh_ss(w[i]) * x[i];
    return s;
}

AVX2 static float dot_f16(const void *row, const float *x, int64_t n)
{
    return dot_f16_inline(row, x, n);
}

AVX2 static float dot_bf16(const void *row, const float *x, int64_t n)
{
    const uint16_t *w = row;
    __m256 a0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wi = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 wf = _mm256_castsi256_ps(_mm256_slli_epi32(wi, 16));
        a0 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), a0);
    }
    float s = hsum_ps(a0);
    for (; i < n; i++) {
        uint32_t bits = (uint32_t)w[i] << 16;
        float f;
        __builtin_memcpy(&f, &bits, 4);
        s += f * x[i];
    }
    return s;
}

AVX2 static inline __m256 i8x8_to_ps(const int8_t *q)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

AVX2 static float dot_q8_0(const void *row, const float *x, int64_t n)
{
    const lb_block_q8_0 *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / LB_QK; i++, x += LB_QK) {
        __m256 s = _mm256_mul_ps(i8x8_to_ps(b[i].qs), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(i8x8_to_ps(b[i].qs + 8), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(i8x8_to_ps(b[i].qs + 16), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(i8x8_to_ps(b[i].qs + 24), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), s, acc);
    }
    return hsum_ps(acc);
}

/* Unpacks 16 packed nibbles into two groups of 8 low nibbles and 8 high ones... as 4 × 8 floats:
 * elements 0–15 come from the low nibbles, 16–31 from the high ones. */
AVX2 static inline void nibbles_to_ps(const uint8_t *qs, __m256 out[4])
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m128i mask = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(raw, mask);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

AVX2 static float dot_q4_0(const void *row, const float *x, int64_t n)
{
    const lb_block_q4_0 *b = row;
    const __m256 eight = _mm256_set1_ps(8.0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / LB_QK; i++, x += LB_QK) {
        __m256 q[4];
        nibbles_to_ps(b[i].qs, q);
        __m256 s = _mm256_mul_ps(_mm256_sub_ps(q[0], eight), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(_mm256_sub_ps(q[1], eight), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(_mm256_sub_ps(q[2], eight), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(_mm256_sub_ps(q[3], eight), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), s, acc);
    }
    return hsum_ps(acc);
}

AVX2 static float dot_q4_1(const void *row, const float *x, int64_t n)
{
    const lb_block_q4_1 *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / LB_QK; i++, x += LB_QK) {
        __m256 q[4];
        nibbles_to_ps(b[i].qs, q);
        __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
        __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
        __m256 s = _mm256_mul_ps(q[0], x0);
        s = _mm256_fmadd_ps(q[1], x1, s);
        s = _mm256_fmadd_ps(q[2], x2, s);
        s = _mm256_fmadd_ps(q[3], x3, s);
        __m256 xs = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), s, acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b[i].m)), xs, acc);
    }
    return hsum_ps(acc);
}

/* ---- lowbit's group formats: integer block dots -------------------------------------- */

/* Codes below 16 times int8 activations: maddubs's pairwise int16 sums cannot saturate
 * (2 · 15 · 127 < 32767). */
#define QDOT_SMALL(name, unpack, bytes)                                                     \
    AVX2 static void name(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out)    \
    {                                                                                      \
        const __m256i ones = _mm256_set1_epi16(1);                                         \
        for (int b = 0; b < nb; b++, codes += (bytes), xq += 32) {                         \
            __m256i c = unpack(codes);                                                     \
            __m256i x = _mm256_loadu_si256((const __m256i *)xq);                           \
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(c, x), ones);               \
            out[b] = hsum_epi32(p);                                                        \
        }                                                                                  \
    }

QDOT_SMALL(qdot2, qunpack2, 8)
QDOT_SMALL(qdot3, qunpack3, 12)
QDOT_SMALL(qdot4, qunpack4, 16)

/* 8-bit codes would saturate maddubs, so widen both sides to int16 first. */
AVX2 static void qdot8(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out)
{
    for (int b = 0; b < nb; b++, codes += 32, xq += 32) {
        __m128i c0 = _mm_loadu_si128((const __m128i *)codes);
        __m128i c1 = _mm_loadu_si128((const __m128i *)(codes + 16));
        __m128i x0 = _mm_loadu_si128((const __m128i *)xq);
        __m128i x1 = _mm_loadu_si128((const __m128i *)(xq + 16));
        __m256i p = _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), _mm256_cvtepi8_epi16(x0));
        p = _mm256_add_epi32(p, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c1),
                                                  _mm256_cvtepi8_epi16(x1)));
        out[b] = hsum_epi32(p);
    }
}

/* LB_QTILE tokens per block: the codes unpacked once, one product vector per token, the
 * four block sums reduced together and stored side by side. */
#define QTILE_SMALL(name, unpack, bytes)                                                    \
    AVX2 static void name(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out)    \
    {                                                                                      \
        const __m256i ones = _mm256_set1_epi16(1);                                         \
        for (int b = 0; b < nb; b++, codes += (bytes), xq += 32 * LB_QTILE) {              \
            __m256i c = unpack(codes), p[LB_QTILE];                                        \
            for (int t = 0; t < LB_QTILE; t++) {                                           \
                __m256i x = _mm256_loadu_si256((const __m256i *)(xq + 32 * t));            \
                p[t] = _mm256_madd_epi16(_mm256_maddubs_epi16(c, x), ones);                \
            }                                                                              \
            _mm_storeu_si128((__m128i *)(out + (size_t)b * LB_QTILE),                      \
                             hsum4_epi32(p[0], p[1], p[2], p[3]));                         \
        }                                                                                  \
    }

QTILE_SMALL(qtile2, qunpack2, 8)
QTILE_SMALL(qtile3, qunpack3, 12)
QTILE_SMALL(qtile4, qunpack4, 16)

AVX2 static void qtile8(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out)
{
    for (int b = 0; b < nb; b++, codes += 32, xq += 32 * LB_QTILE) {
        __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)codes));
        __m256i c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(codes + 16)));
        __m256i p[LB_QTILE];
        for (int t = 0; t < LB_QTILE; t++) {
            const int8_t *x = xq + 32 * t;
            __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x));
            __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + 16)));
            p[t] = _mm256_add_epi32(_mm256_madd_epi16(c0, x0), _mm256_madd_epi16(c1, x1));
        }
        _mm_storeu_si128((__m128i *)(out + (size_t)b * LB_QTILE),
                         hsum4_epi32(p[0], p[1], p[2], p[3]));
    }
}

/* ---- GGUF's Q8_0 / Q4_0 repacked sixteen rows together (tensor/repack.h) --------------- *
 * A 256-bit register holds the same four weights of eight rows (each 64-byte chunk is two
 * such halves), so maddubs against a broadcast word of activations gives each row's pair
 * sums in its 32-bit lane; madd against ones finishes the row's four products. Exact
 * integers, the scalar kernel's, then its one fused multiply-add per block. */

/* Q4_0: eight rows' dots of one block, the nibbles unsigned (0..15) and the block then less
 * 8 times the activations' sum. The int16 pair sums of all eight words cannot overflow:
 * 8 · 2 · 15 · 127 = 30,480. */
/* Activation bytes 4g..4g+3 in every lane, broadcast straight from memory. */
AVX2 static inline __m256i word256(const int8_t *x, int g)
{
    return _mm256_broadcastd_epi32(_mm_loadu_si32(x + 4 * g));
}

AVX2 static inline __m256i q4_0_dots(const __m256i w[8], const int8_t *x, const int32_t *sum)
{
    __m256i p = _mm256_maddubs_epi16(w[0], word256(x, 0));
    for (int g = 1; g < 8; g++)
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w[g], word256(x, g)));
    return _mm256_sub_epi32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)),
                            _mm256_slli_epi32(_mm256_set1_epi32(*sum), 3));
}

/* Q8_0: the weights' signs move onto the activations (maddubs takes unsigned × signed), and
 * each word's pair sums (at most 2 · 128 · 127) widen to int32 before the next is added. */
AVX2 static inline __m256i q8_0_dots(const uint8_t *chunks, const int8_t *x)
{
    __m256i acc = _mm256_setzero_si256();
    for (int g = 0; g < 8; g++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(chunks + 64 * g));
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w),
                                         _mm256_sign_epi8(word256(x, g), w));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    return acc;
}

/* Bytes ahead of the block being multiplied that the packed kernels prefetch. */
#define PACKED_AHEAD 4096

/* Rows 8h..8h+7 of the group for nt tokens (a constant where inlined). */
AVX2 static inline __attribute__((always_inline)) void
pdot_half(const uint8_t *group, int64_t nb, const int8_t *xq, const float *xd,
          const int32_t *xsum, const int nt, const bool q4, int h, float *y)
{
    const size_t block_bytes = LB_PACK_ROWS * (2 + (q4 ? LB_QK / 2 : LB_QK));
    __m256 acc[LB_PTILE];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, group += block_bytes) {
        /* the weights stream from memory once: the first half asks for them ahead (the second
         * finds the group in cache) */
        for (size_t off = 0; h == 0 && off < block_bytes; off += 64)
            _mm_prefetch((const char *)group + PACKED_AHEAD + off, _MM_HINT_T0);
        __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(group + 16 * h)));
        const uint8_t *chunks = group + 2 * LB_PACK_ROWS + 32 * h;
        __m256i w[8];
        if (q4) {
            const __m256i low = _mm256_set1_epi8(0x0f);
            for (int k = 0; k < 4; k++) {
                __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(chunks + 64 * k));
                w[k] = _mm256_and_si256(c, low);
                w[k + 4] = _mm256_and_si256(_mm256_srli_epi16(c, 4), low);
            }
        }
        for (int t = 0; t < nt; t++) {
            size_t at = (size_t)t * (size_t)nb + (size_t)b;
            const int8_t *x = xq + at * LB_QK;
            __m256i dots = q4 ? q4_0_dots(w, x, xsum + at) : q8_0_dots(chunks, x);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[at])),
                                     _mm256_cvtepi32_ps(dots), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(y + t * LB_PACK_ROWS + 8 * h, acc[t]);
}

/* One token (decode): both halves of the group in one pass over its blocks, so each weight
 * byte is read once and each activation word is broadcast once for all sixteen rows. The
 * int16 pair sums are added in another order than q4_0_dots adds them, which integers do not
 * notice; the float combination is pdot_half's, row by row. */
AVX2 static inline __attribute__((always_inline)) void
pdot_one(const uint8_t *group, int64_t nb, const int8_t *x, const float *xd, const int32_t *xsum,
         const bool q4, float *y)
{
    const size_t block_bytes = LB_PACK_ROWS * (2 + (q4 ? LB_QK / 2 : LB_QK));
    const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, group += block_bytes, x += LB_QK) {
        for (size_t off = 0; off < block_bytes; off += 64)
            _mm_prefetch((const char *)group + PACKED_AHEAD + off, _MM_HINT_T0);
        const uint8_t *chunks = group + 2 * LB_PACK_ROWS;
        __m256i dots0, dots1;
        if (q4) {
            __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
            for (int k = 0; k < 4; k++) {
                __m256i xl = word256(x, k), xh = word256(x, k + 4);
                __m256i c0 = _mm256_loadu_si256((const __m256i *)(const void *)(chunks + 64 * k));
                __m256i c1 = _mm256_loadu_si256((const __m256i *)(const void *)(chunks + 64 * k + 32));
                p0 = _mm256_add_epi16(p0, _mm256_add_epi16(
                    _mm256_maddubs_epi16(_mm256_and_si256(c0, low), xl),
                    _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(c0, 4), low), xh)));
                p1 = _mm256_add_epi16(p1, _mm256_add_epi16(
                    _mm256_maddubs_epi16(_mm256_and_si256(c1, low), xl),
                    _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(c1, 4), low), xh)));
            }
            __m256i bias = _mm256_slli_epi32(_mm256_set1_epi32(xsum[b]), 3);
            dots0 = _mm256_sub_epi32(_mm256_madd_epi16(p0, ones), bias);
            dots1 = _mm256_sub_epi32(_mm256_madd_epi16(p1, ones), bias);
        } else {   /* the halves' words broadcast once when inlined side by side */
            dots0 = q8_0_dots(chunks, x);
            dots1 = q8_0_dots(chunks + 32, x);
        }
        __m256 xs = _mm256_set1_ps(xd[b]);
        __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)group));
        __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(group + 16)));
        acc0 = _mm256_fmadd_ps(_mm256_mul_ps(d0, xs), _mm256_cvtepi32_ps(dots0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_mul_ps(d1, xs), _mm256_cvtepi32_ps(dots1), acc1);
    }
    _mm256_storeu_ps(y, acc0);
    _mm256_storeu_ps(y + 8, acc1);
}

#define PDOT_AVX2(name, q4)                                                                 \
    AVX2 static void name(const uint8_t *group, int64_t nb, const int8_t *xq,              \
                          const float *xd, const int32_t *xsum, int nt, float *y)          \
    {                                                                                      \
        if (nt == 1) {                                                                     \
            pdot_one(group, nb, xq, xd, xsum, q4, y);                                      \
            return;                                                                        \
        }                                                                                  \
        for (int h = 0; h < 2; h++)                                                        \
            switch (nt) {                                                                  \
            case 2: pdot_half(group, nb, xq, xd, xsum, 2, q4, h, y); break;                 \
            case 3: pdot_half(group, nb, xq, xd, xsum, 3, q4, h, y); break;                 \
            default: pdot_half(group, nb, xq, xd, xsum, 4, q4, h, y); break;                \
            }                                                                              \
    }

PDOT_AVX2(pdot_q8_0, false)
PDOT_AVX2(pdot_q4_0, true)

/* ---- activations to int8 blocks ------------------------------------------------------- *
 * The scalar quantize_q8's operations lane by lane (see the AVX-512 kernel). */
AVX2 static inline __m256i round_q8_8(__m256 r)
{
    const __m256 half = _mm256_set1_ps(0x1.fffffep-2f), sign = _mm256_set1_ps(-0.0f);
    __m256i q = _mm256_cvttps_epi32(_mm256_add_ps(r, _mm256_or_ps(_mm256_and_ps(r, sign), half)));
    q = _mm256_blendv_epi8(q, _mm256_set1_epi32(127),
                           _mm256_castps_si256(_mm256_cmp_ps(r, _mm256_set1_ps(126.5f), _CMP_GE_OQ)));
    q = _mm256_blendv_epi8(q, _mm256_set1_epi32(-127),
                           _mm256_castps_si256(_mm256_cmp_ps(r, _mm256_set1_ps(-126.5f), _CMP_LE_OQ)));
    return _mm256_andnot_si256(_mm256_castps_si256(_mm256_cmp_ps(r, r, _CMP_UNORD_Q)), q);
}

AVX2 static void quantize_q8(const float *x, int64_t nb, int8_t *q, float *d, int32_t *sum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; b++, x += LB_QK, q += LB_QK) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);
        }
        /* the lanes' maximum: exact in any order */
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
        __m256i qi[4];
        for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_mul_ps(v[k], _mm256_set1_ps(inv));
            __asm__("" : "+x"(r));   /* rounded here, never fused into the add */
            qi[k] = round_q8_8(r);
        }
        /* int32 to int8 in order: packs interleave 128-bit lanes, the permute restores them */
        __m256i p16a = _mm256_packs_epi32(qi[0], qi[1]), p16b = _mm256_packs_epi32(qi[2], qi[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(void *)q, p8);
        d[b] = scale;
        sum[b] = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]),
                                             _mm256_add_epi32(qi[2], qi[3])));
    }
}

/* ---- fp16 rows (F16C) ------------------------------------------------------------------ */

AVX2 static void f16_to_f32(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

AVX2 static void f32_to_f16(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* ---- attention's rows ------------------------------------------------------------------ */

AVX2 static void rows_dot_f16(const uint16_t *rows, size_t ld, int nrows, const float *x,
                              int64_t n, float *y)
{
    for (int r = 0; r < nrows; r++)
        y[r] = dot_f16_inline(rows + (size_t)r * ld, x, n);
}

/* Cached rows of attention: fp32, fp16, or int8 with a scale per row (applied to the row's
 * weight, outside the lanes). */
enum { ROW_F32, ROW_F16, ROW_I8 };

/* Lanes j..j+7 of a row as floats (exact widening), and element j alone. */
AVX2 static inline __m256 row_lanes(const void *row, int kind, int64_t j)
{
    if (kind == ROW_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)row + j)));
    if (kind == ROW_I8)
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
            _mm_loadl_epi64((const __m128i *)(const void *)((const int8_t *)row + j))));
    return _mm256_loadu_ps((const float *)row + j);
}

AVX2 static inline float row_value(const void *row, int kind, int64_t j)
{
    return kind == ROW_F16 ? _cvtsh_ss(((const uint16_t *)row)[j])
           : kind == ROW_I8 ? (float)((const int8_t *)row)[j]
                            : ((const float *)row)[j];
}

/* y[j..j+8·4) stays in four registers while every row adds its weighted lanes; then one vector
 * at a time, then the last n % 8 elements one by one, each column's additions in row order.
 * Inlined with a constant kind, so each wrapper below is its own loop. */
AVX2 static inline __attribute__((always_inline)) void
rows_axpy(const float *w, const void *rows, int kind, size_t elem, const float *scale, size_t ld,
          int nrows, int64_t n, float *y)
{
#define ROW(r) ((const char *)rows + (size_t)(r) * ld * elem)
#define WEIGHT(r) (scale ? w[r] * scale[r] : w[r])
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 a0 = _mm256_loadu_ps(y + j), a1 = _mm256_loadu_ps(y + j + 8);
        __m256 a2 = _mm256_loadu_ps(y + j + 16), a3 = _mm256_loadu_ps(y + j + 24);
        for (int r = 0; r < nrows; r++) {
            __m256 wr = _mm256_set1_ps(WEIGHT(r));
            a0 = _mm256_fmadd_ps(wr, row_lanes(ROW(r), kind, j), a0);
            a1 = _mm256_fmadd_ps(wr, row_lanes(ROW(r), kind, j + 8), a1);
            a2 = _mm256_fmadd_ps(wr, row_lanes(ROW(r), kind, j + 16), a2);
            a3 = _mm256_fmadd_ps(wr, row_lanes(ROW(r), kind, j + 24), a3);
        }
        _mm256_storeu_ps(y + j, a0);
        _mm256_storeu_ps(y + j + 8, a1);
        _mm256_storeu_ps(y + j + 16, a2);
        _mm256_storeu_ps(y + j + 24, a3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 a = _mm256_loadu_ps(y + j);
        for (int r = 0; r < nrows; r++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(WEIGHT(r)), row_lanes(ROW(r), kind, j), a);
        _mm256_storeu_ps(y + j, a);
    }
    for (; j < n; j++)
        for (int r = 0; r < nrows; r++)
            y[j] = fmaf(WEIGHT(r), row_value(ROW(r), kind, j), y[j]);
#undef ROW
#undef WEIGHT
}

AVX2 static void rows_axpy_f32(const float *w, const float *rows, size_t ld, int nrows, int64_t n,
                               float *y)
{
    rows_axpy(w, rows, ROW_F32, sizeof(float), NULL, ld, nrows, n, y);
}

AVX2 static void rows_axpy_f16(const float *w, const uint16_t *rows, size_t ld, int nrows,
                               int64_t n, float *y)
{
    rows_axpy(w, rows, ROW_F16, sizeof(uint16_t), NULL, ld, nrows, n, y);
}

AVX2 static void rows_axpy_q8(const float *w, const int8_t *rows, const float *scale, size_t ld,
                              int nrows, int64_t n, float *y)
{
    rows_axpy(w, rows, ROW_I8, 1, scale, ld, nrows, n, y);
}

AVX2 static void rows_dot_q8(const int8_t *rows, const float *scale, size_t ld, int nrows,
                             const float *x, int64_t n, float *y)
{
    for (int r = 0; r < nrows; r++) {
        const int8_t *q = rows + (size_t)r * ld;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 16 <= n; j += 16) {
            a0 = _mm256_fmadd_ps(row_lanes(q, ROW_I8, j), _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(row_lanes(q, ROW_I8, j + 8), _mm256_loadu_ps(x + j + 8), a1);
        }
        for (; j + 8 <= n; j += 8)
            a0 = _mm256_fmadd_ps(row_lanes(q, ROW_I8, j), _mm256_loadu_ps(x + j), a0);
        float s = hsum_ps(_mm256_add_ps(a0, a1));
        for (; j < n; j++)
            s += (float)q[j] * x[j];
        y[r] = scale[r] * s;
    }
}

/* ---- exp (kernels.h's LB_EXP_* recipe) --------------------------------------------------
 * Eight lanes of the scalar level's exp_recipe, step for step. The multiplies and adds are
 * separate instructions: the file is compiled without contracting them (CMakeLists.txt), so
 * no step is fused and the bits are the scalar level's. */
AVX2 static inline __m256 exp_recipe8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(LB_EXP_LO), hi = _mm256_set1_ps(LB_EXP_HI);
    /* max(lo, x) and min(hi, ·) return x itself when it is NaN, which then runs through */
    __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(LB_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(LB_EXP_C1)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(LB_EXP_C2)));
    __m256 y = _mm256_set1_ps(LB_EXP_P0);
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(LB_EXP_P1));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(LB_EXP_P2));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(LB_EXP_P3));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(LB_EXP_P4));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(LB_EXP_P5));
    y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(y, _mm256_mul_ps(r, r)), r),
                      _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126)), 23);
    y = _mm256_mul_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(bits)), _mm256_set1_ps(2.0f));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
}

AVX2 static float exp_sum(float *x, int64_t n, float sub)
{
    const __m256 s8 = _mm256_set1_ps(sub);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_recipe8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s8));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float s = hsum_ps(acc);
    if (i < n) {   /* the tail through the same lanes, then added in order */
        float tail[8] = {0};
        memcpy(tail, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(tail, exp_recipe8(_mm256_sub_ps(_mm256_loadu_ps(tail), s8)));
        memcpy(x + i, tail, (size_t)(n - i) * sizeof(float));
        for (int k = 0; k < n - i; k++)
            s += tail[k];
    }
    return s;
}

AVX2 static void silu_mul(float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp_recipe8(_mm256_xor_ps(g, neg));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                                 _mm256_loadu_ps(up + i)));
    }
    if (i < n) {
        float g[8] = {0}, u[8] = {0};
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
        silu_mul(g, u, 8);
        memcpy(gate + i, g, (size_t)(n - i) * sizeof(float));
    }
}

static const lb_kernel_set avx2_set = {
    "avx2", dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0, dot_q4_1, gemm_f32,
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
const lb_kernel_set *const lb_kernels_avx2 = &avx2_set;

#else
const lb_kernel_set *const lb_kernels_avx2 = 0;
#endif
