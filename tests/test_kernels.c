/* Kernels and formats: every dispatched kernel agrees with the portable one and with a double-
 * precision dot over the dequantized row; fp16/bf16 conversions are exact; quantization keeps
 * its error within the format's step. */
#include "check.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "tensor/kernels/kernels.h"
#include "tensor/matmul.h"
#include "tensor/repack.h"
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

static const int TYPES[] = {LB_TYPE_F32, LB_TYPE_F16, LB_TYPE_BF16, LB_TYPE_Q8_0, LB_TYPE_Q4_0,
                            LB_TYPE_Q4_1};

static lb_dot_fn kernel_for(const lb_kernel_set *k, int type)
{
    switch (type) {
    case LB_TYPE_F32: return k->dot_f32;
    case LB_TYPE_F16: return k->dot_f16;
    case LB_TYPE_BF16: return k->dot_bf16;
    case LB_TYPE_Q8_0: return k->dot_q8_0;
    case LB_TYPE_Q4_0: return k->dot_q4_0;
    default: return k->dot_q4_1;
    }
}

static void test_dot_kernels(void)
{
    lb_rng rng;
    lb_rng_seed(&rng, 42);
    const int lens[] = {32, 64, 96, 288, 768, 2048, 4096};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int n = lens[li];
        float *w = malloc((size_t)n * sizeof(float)), *x = malloc((size_t)n * sizeof(float));
        float *deq = malloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++) {
            w[i] = lb_rng_normal(&rng) * 0.5f;
            x[i] = lb_rng_normal(&rng);
        }
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            const lb_type_traits *tr = lb_type_traits_of(TYPES[ti]);
            void *row = malloc(lb_row_bytes(TYPES[ti], n));
            tr->from_float(w, row, n);
            tr->to_float(row, deq, n);
            double exact = 0, mag = 0;
            for (int i = 0; i < n; i++) {
                exact += (double)deq[i] * x[i];
                mag += fabs((double)deq[i] * x[i]);
            }
            double tol = 1e-5 * mag + 1e-6;
            float s = kernel_for(&lb_kernels_scalar, TYPES[ti])(row, x, n);
            CHECK(fabs(s - exact) <= tol, "scalar %s n=%d: %g vs %g", tr->name, n, s, exact);
            if (lb_kernels_avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __builtin_cpu_supports("f16c")) {
                float a = kernel_for(lb_kernels_avx2, TYPES[ti])(row, x, n);
                CHECK(fabs(a - exact) <= tol, "avx2 %s n=%d: %g vs %g", tr->name, n, a, exact);
            }
            /* The installed kernel is one of the two. */
            float d = tr->dot(row, x, n);
            CHECK(fabs(d - exact) <= tol, "dispatched %s n=%d", tr->name, n);
            /* Quantization error stays within half a step of the block's scale; Q4_0 puts the
             * largest magnitude at -8 steps, so the other sign clamps at +7 (up to a full step). */
            if (tr->quantized) {
                for (int b = 0; b < n / 32; b++) {
                    float amax = 0, lo = w[b * 32], hi = w[b * 32];
                    for (int j = 0; j < 32; j++) {
                        amax = fmaxf(amax, fabsf(w[b * 32 + j]));
                        lo = fminf(lo, w[b * 32 + j]);
                        hi = fmaxf(hi, w[b * 32 + j]);
                    }
                    float step = TYPES[ti] == LB_TYPE_Q8_0 ? amax / 127 : TYPES[ti] == LB_TYPE_Q4_0 ? amax / 8 : (hi - lo) / 15;
                    float allowed = TYPES[ti] == LB_TYPE_Q4_0 ? step : step * 0.5f;
                    for (int j = 0; j < 32; j++) {
                        float e = fabsf(deq[b * 32 + j] - w[b * 32 + j]);
                        /* half a step, plus the fp16 rounding of the scale across the range */
                        CHECK(e <= allowed + amax * 2e-3f + 1e-6f, "%s error %g > step %g",
                              tr->name, e, step);
                    }
                }
            }
            free(row);
        }
        free(w);
        free(x);
        free(deq);
    }
}

/* Q8_0 and Q4_0 weights repacked sixteen rows together, against int8 activation blocks: every
 * level gives the same float, bit for bit, for every row of every group and whatever the
 * number of tokens in the call (1 to LB_PTILE), padding rows give 0, and the scalar float is
 * the double-precision sum of the file's dequantized weights times the dequantized
 * activations. Adversarial rows too: Q8_0's -128, an all-zero block, a huge scale beside a
 * tiny one, activations at ±127 in every position, row counts that leave a short group. */
static void test_packed_kernels(void)
{
    lb_rng rng;
    lb_rng_seed(&rng, 9);
    const lb_kernel_set *levels[] = {&lb_kernels_scalar, lb_kernels_level("avx2"),
                                     lb_kernels_level("avx512")};
    const int blocks[] = {1, 2, 3, 7, 24, 64};
    const int row_counts[] = {1, 16, 21, 40};
    for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++)
        for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++)
            for (int kind = 0; kind < 2; kind++)
                for (int pattern = 0; pattern < 3; pattern++) {
                    int nb = blocks[bi], n = nb * 32, rows = row_counts[ri];
                    int type = kind ? LB_TYPE_Q4_0 : LB_TYPE_Q8_0;
                    const lb_type_traits *tr = lb_type_traits_of(type);
                    size_t rb = lb_row_bytes(type, n);
                    float *w = malloc((size_t)n * sizeof(float));
                    float *deq = malloc((size_t)rows * n * sizeof(float));
                    uint8_t *data = malloc((size_t)rows * rb);
                    for (int r = 0; r < rows; r++) {
                        for (int i = 0; i < n; i++)
                            w[i] = lb_rng_normal(&rng) * (pattern == 2 && (i / 32 + r) % 2 ? 1e3f : 0.5f);
                        if (pattern == 2 && r == rows / 2)   /* one all-zero block */
                            memset(w, 0, 32 * sizeof(float));
                        tr->from_float(w, data + (size_t)r * rb, n);
                        if (kind == 0 && pattern == 1)   /* GGUF allows it, the quantizer never writes it */
                            ((lb_block_q8_0 *)(void *)(data + (size_t)r * rb))[0].qs[5] = -128;
                        tr->to_float(data + (size_t)r * rb, deq + (size_t)r * n, n);
                    }
                    lb_tensor t = {.type = type, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = data};
                    lb_packed *P = lb_repack(&t);
                    CHECK(P && P->rows == rows && P->n_blocks == nb, "%s %dx%d repacked", tr->name,
                          rows, n);
                    int8_t *xq = malloc((size_t)LB_PTILE * n);
                    float *xd = malloc((size_t)LB_PTILE * nb * sizeof(float));
                    int32_t *xsum = malloc((size_t)LB_PTILE * nb * sizeof(int32_t));
                    for (int i = 0; i < LB_PTILE * n; i++) {
                        int v = (int)(lb_rng_next(&rng) % 255) - 127;
                        xq[i] = (int8_t)(pattern == 1 ? (i % 2 ? 127 : -127) : v);
                    }
                    for (int b = 0; b < LB_PTILE * nb; b++) {
                        xd[b] = pattern == 2 ? (b % 3 ? 1e-4f : 3.0f) : 0.01f + 0.001f * (float)b;
                        xsum[b] = 0;
                        for (int j = 0; j < 32; j++)
                            xsum[b] += xq[b * 32 + j];
                    }
                    int groups = (rows + LB_PACK_ROWS - 1) / LB_PACK_ROWS;
                    float ref[LB_PTILE * LB_PACK_ROWS], got[LB_PTILE * LB_PACK_ROWS];
                    for (int g = 0; g < groups; g++) {
                        const uint8_t *grp = lb_packed_block(P, g, 0);
                        (kind ? lb_kernels_scalar.pdot_q4_0 : lb_kernels_scalar.pdot_q8_0)(
                            grp, nb, xq, xd, xsum, LB_PTILE, ref);
                        for (int tk = 0; tk < LB_PTILE; tk++)
                            for (int r = 0; r < LB_PACK_ROWS; r++) {
                                int row = g * LB_PACK_ROWS + r;
                                float y = ref[tk * LB_PACK_ROWS + r];
                                if (row >= rows) {
                                    CHECK(y == 0, "%s padding row %d gives %g", tr->name, row, (double)y);
                                    continue;
                                }
                                double exact = 0, mag = 0;
                                for (int i = 0; i < n; i++) {
                                    double p = (double)deq[(size_t)row * n + i] *
                                               ((double)xq[tk * n + i] * xd[tk * nb + i / 32]);
                                    exact += p;
                                    mag += fabs(p);
                                }
                                CHECK(fabs(y - exact) <= 1e-5 * mag + 1e-6,
                                      "scalar %s %dx%d pattern %d row %d token %d: %g vs %g",
                                      tr->name, rows, n, pattern, row, tk, (double)y, exact);
                            }
                        for (size_t li = 0; li < 3; li++) {
                            const lb_kernel_set *k = levels[li];
                            if (!k)
                                continue;
                            for (int nt = 1; nt <= LB_PTILE; nt++) {
                                /* tokens from the last nt, so each token's blocks move */
                                int skip = LB_PTILE - nt;
                                (kind ? k->pdot_q4_0 : k->pdot_q8_0)(
                                    grp, nb, xq + (size_t)skip * n, xd + skip * nb,
                                    xsum + skip * nb, nt, got);
                                CHECK(memcmp(got, ref + skip * LB_PACK_ROWS,
                                             (size_t)nt * LB_PACK_ROWS * sizeof(float)) == 0,
                                      "%s %s %dx%d pattern %d group %d, %d token(s): differs from "
                                      "the scalar kernel", k->name, tr->name, rows, n, pattern, g, nt);
                            }
                        }
                    }
                    free(P);
                    free(w);
                    free(deq);
                    free(data);
                    free(xq);
                    free(xd);
                    free(xsum);
                }
}

/* Activations to int8 blocks: every level gives the scalar kernel's bytes, scales and sums, on
 * random blocks of every magnitude and on the hard cases: halves exactly between two steps
 * (a block whose step is 1, so x is the rounded value), the ±126.5 clamp, NaN, ±infinity,
 * signed zeros, subnormals, the largest floats, an all-zero block. The scalar result is
 * roundf(x / d) clamped to ±127. */
static void test_quantize_q8(void)
{
    enum { NB = 64 };
    const lb_kernel_set *levels[] = {lb_kernels_level("avx2"), lb_kernels_level("avx512")};
    lb_rng rng;
    lb_rng_seed(&rng, 21);
    float *x = malloc(NB * 32 * sizeof(float));
    for (int b = 0; b < NB; b++)
        for (int j = 0; j < 32; j++) {
            float *v = &x[b * 32 + j];
            int kind = b % 8;
            if (kind == 0)        /* step 1: amax 127, every half between two integers */
                *v = j == 0 ? 127.0f : (float)((int)(lb_rng_next(&rng) % 254) - 127) + 0.5f;
            else if (kind == 1)   /* around the clamp and the halves, a unit in the last place off */
                *v = j == 0 ? -127.0f
                            : nextafterf((j % 2 ? 126.5f : -0.5f - (float)(j % 7)),
                                         j % 3 ? INFINITY : -INFINITY);
            else if (kind == 2)   /* the special values */
                *v = (const float[]){NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f, -1e-44f,
                                     3.4e38f}[j % 8];
            else if (kind == 3)   /* all zeros */
                *v = b % 16 == 3 ? 0.0f : -0.0f;
            else if (kind == 4)   /* NaNs beside finite values */
                *v = j % 5 ? lb_rng_normal(&rng) : NAN;
            else
                *v = lb_rng_normal(&rng) * powf(10.0f, (float)(kind - 6) * 12.0f);
        }
    int8_t q[NB * 32], q2[NB * 32];
    float d[NB], d2[NB];
    int32_t sum[NB], sum2[NB];
    lb_kernels_scalar.quantize_q8(x, NB, q, d, sum);
    for (int b = 0; b < NB; b++) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            float r = d[b] > 0 ? x[b * 32 + j] * (1.0f / d[b]) : 0.0f;
            int want = r != r ? 0 : r >= 126.5f ? 127 : r <= -126.5f ? -127 : (int)roundf(r);
            CHECK(q[b * 32 + j] == want, "scalar block %d [%d]: %g -> %d, expected %d", b, j,
                  (double)x[b * 32 + j], q[b * 32 + j], want);
            s += q[b * 32 + j];
        }
        CHECK(s == sum[b], "scalar block %d: sum %d, the codes add up to %d", b, sum[b], s);
    }
    CHECK(q[0] == 127 && q[32 + 0] == -127, "the block's extreme takes the end code");
    for (size_t l = 0; l < 2; l++) {
        if (!levels[l])
            continue;
        levels[l]->quantize_q8(x, NB, q2, d2, sum2);
        CHECK(memcmp(q, q2, sizeof q) == 0 && memcmp(d, d2, sizeof d) == 0 &&
                  memcmp(sum, sum2, sizeof sum) == 0,
              "%s: quantized activations differ from the scalar kernel's", levels[l]->name);
        for (int i = 0; i < NB * 32; i++)
            if (q[i] != q2[i]) {
                CHECK(0, "%s: first difference at block %d [%d]: %g -> %d, scalar %d",
                      levels[l]->name, i / 32, i % 32, (double)x[i], q2[i], q[i]);
                break;
            }
    }
    free(x);
}

/* fp16 rows both ways: every level gives the scalar conversion's bits, for every one of the
 * 65,536 halves (NaNs aside: their payloads may differ) and for floats around every rounding
 * boundary, subnormal halves, overflow to infinity and ties to even included. */
static void test_half_rows(void)
{
    const lb_kernel_set *levels[] = {lb_kernels_level("avx2"), lb_kernels_level("avx512")};
    uint16_t *h = malloc(65536 * sizeof(uint16_t)), *h2 = malloc(65536 * sizeof(uint16_t));
    uint16_t *h3 = malloc(65536 * sizeof(uint16_t));
    float *f = malloc(65536 * sizeof(float)), *g = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    lb_kernels_scalar.f16_to_f32(h, f, 65536);
    for (size_t l = 0; l < 2; l++) {
        if (!levels[l])
            continue;
        levels[l]->f16_to_f32(h, g, 65535);   /* an odd length: the tail too */
        g[65535] = f[65535];
        for (int i = 0; i < 65536; i++)
            if (f[i] == f[i])
                CHECK(memcmp(&f[i], &g[i], 4) == 0, "%s: half 0x%04x -> %g, scalar %g",
                      levels[l]->name, i, (double)g[i], (double)f[i]);
        /* floats: each half's value nudged a little below, at, and halfway to the next */
        lb_rng rng;
        lb_rng_seed(&rng, 3);
        for (int i = 0; i < 65536; i++) {
            uint32_t bits;
            memcpy(&bits, &f[i], 4);
            int k = i % 4;
            bits += k == 0 ? 0 : k == 1 ? 0x1000 : k == 2 ? 0xfff : (uint32_t)(lb_rng_next(&rng) & 0x1fff);
            memcpy(&g[i], &bits, 4);
        }
        lb_kernels_scalar.f32_to_f16(g, h2, 65536);
        levels[l]->f32_to_f16(g, h3, 65533);
        lb_kernels_scalar.f32_to_f16(g + 65533, h3 + 65533, 3);
        for (int i = 0; i < 65536; i++)
            if (g[i] == g[i])
                CHECK(h2[i] == h3[i], "%s: %.9g -> 0x%04x, scalar 0x%04x", levels[l]->name,
                      (double)g[i], h3[i], h2[i]);
    }
    free(h);
    free(h2);
    free(h3);
    free(f);
    free(g);
}

static void test_half_conversions(void)
{
    /* Every half converts to float and back to itself (NaNs stay NaN). */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lb_fp16_to_fp32((uint16_t)h);
        uint16_t back = lb_fp32_to_fp16(f);
        if (isnan(f) ? !isnan(lb_fp16_to_fp32(back)) : back != h)
            bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    CHECK(lb_fp16_to_fp32(0x3c00) == 1.0f && lb_fp16_to_fp32(0xc000) == -2.0f, "1.0 / -2.0");
    CHECK(lb_fp16_to_fp32(0x0001) == ldexpf(1, -24), "smallest subnormal");
    CHECK(lb_fp32_to_fp16(65520.0f) == 0x7c00 && lb_fp32_to_fp16(65519.0f) == 0x7bff, "overflow edge");
    /* Round to nearest even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10. */
    CHECK(lb_fp32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00, "tie rounds to even");
    CHECK(lb_fp32_to_fp16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "tie rounds to even (up)");
    /* Random floats against the rounding rule: the result is the nearest half. */
    lb_rng rng;
    lb_rng_seed(&rng, 1);
    for (int i = 0; i < 100000; i++) {
        float f = lb_rng_normal(&rng) * ldexpf(1, (int)(lb_rng_next(&rng) % 40) - 25);
        uint16_t h = lb_fp32_to_fp16(f);
        float r = lb_fp16_to_fp32(h);
        float up = lb_fp16_to_fp32((uint16_t)(h + 1)), down = h & 0x7fff ? lb_fp16_to_fp32((uint16_t)(h - 1)) : r;
        if (isinf(r))
            continue;
        CHECK(fabsf(f - r) <= fabsf(f - up) && fabsf(f - r) <= fabsf(f - down), "%g -> %g", f, r);
    }
    /* bf16: truncation with round-to-nearest-even. */
    CHECK(lb_bf16_to_fp32(lb_fp32_to_bf16(1.5f)) == 1.5f, "bf16 1.5");
    CHECK(lb_fp32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 tie to even");
    CHECK(isnan(lb_bf16_to_fp32(lb_fp32_to_bf16(NAN))), "bf16 NaN");
}

static void test_traits(void)
{
    CHECK(lb_type_traits_of(13) == NULL, "Q5_K should be unsupported");
    CHECK(lb_type_traits_of(-1) == NULL && lb_type_traits_of(1000) == NULL, "out of range ids");
    CHECK(lb_row_bytes(LB_TYPE_Q4_0, 64) == 36 && lb_row_bytes(LB_TYPE_Q4_0, 65) == 0, "row bytes");
    CHECK(lb_row_bytes(LB_TYPE_Q8_0, 32) == 34 && lb_row_bytes(LB_TYPE_Q4_1, 32) == 20, "block bytes");
    CHECK(strcmp(lb_type_name(LB_TYPE_BF16), "BF16") == 0, "names");
}

/* F32 weights through lb_matmul's tile kernels: every output is the same bits whatever the
 * batch around its token (each token alone, or in batches of every size and remainder of the
 * tiles), the thread count and the rows' place in the tiles; and within float rounding of a
 * double-precision product at every level. Row counts not a multiple of the tiles, one row,
 * inner widths below, at and between multiples of 8. */
static void test_f32_gemm(void)
{
    lb_rng rng;
    lb_rng_seed(&rng, 5);
    lb_pool *pools[3] = {lb_pool_create(1), lb_pool_create(2), lb_pool_create(3)};
    const int shapes[][2] = {{200, 96}, {1, 33}, {64, 288}, {129, 7}, {7, 8}, {513, 64}};
    const int tokens[] = {1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 40};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int rows = shapes[si][0], cols = shapes[si][1];
        for (size_t ti = 0; ti < sizeof tokens / sizeof tokens[0]; ti++) {
            int n = tokens[ti];
            float *W = malloc((size_t)rows * cols * sizeof(float));
            float *x = malloc((size_t)n * cols * sizeof(float));
            float *y[3];
            for (int i = 0; i < rows * cols; i++)
                W[i] = lb_rng_normal(&rng) * 0.1f;
            for (int i = 0; i < n * cols; i++)
                x[i] = lb_rng_normal(&rng);
            lb_tensor t = {.type = LB_TYPE_F32, .n_dims = 2, .ne = {cols, rows, 1, 1}};
            t.data = W;
            t.nbytes = (size_t)rows * cols * sizeof(float);
            for (int p = 0; p < 3; p++) {
                y[p] = malloc((size_t)n * rows * sizeof(float));
                for (int i = 0; i < n * rows; i++)
                    y[p][i] = NAN;
                lb_matmul(pools[p], &t, x, n, y[p]);
            }
            for (int p = 1; p < 3; p++)
                CHECK(memcmp(y[0], y[p], (size_t)n * rows * sizeof(float)) == 0,
                      "%dx%d times %d tokens: %d threads differ from 1", rows, cols, n, p + 1);
            float *alone = malloc((size_t)rows * sizeof(float));
            for (int tk = 0; tk < n; tk++) {
                lb_matmul(pools[1], &t, x + (size_t)tk * cols, 1, alone);
                CHECK(memcmp(alone, y[0] + (size_t)tk * rows, (size_t)rows * sizeof(float)) == 0,
                      "%dx%d: token %d of %d differs from the same token alone", rows, cols, tk,
                      n);
            }
            free(alone);
            float *yl = malloc((size_t)n * rows * sizeof(float));
            const char *levels[] = {"scalar", "avx2", "avx512"};
            for (int l = 0; l < 3; l++) {
                if (lb_matmul_level(pools[0], &t, x, n, yl, levels[l]))
                    continue;
                for (int i = 0; i < n * rows; i++) {
                    double mag = 0;
                    for (int c = 0; c < cols; c++)
                        mag += fabs((double)W[(size_t)(i % rows) * cols + c] *
                                    x[(size_t)(i / rows) * cols + c]);
                    CHECK(fabs(yl[i] - y[0][i]) <= 2e-5 * mag + 1e-6, "%s level %dx%d: %g vs %g",
                          levels[l], rows, cols, yl[i], y[0][i]);
                }
                if (lb_kernels_current() == lb_kernels_level(levels[l]))
                    CHECK(memcmp(yl, y[0], (size_t)n * rows * sizeof(float)) == 0,
                          "level %s in use, but its matmul differs from lb_matmul", levels[l]);
            }
            free(yl);
            for (int tk = 0; tk < n; tk++)
                for (int r = 0; r < rows; r++) {
                    double exact = 0, mag = 0;
                    for (int i = 0; i < cols; i++) {
                        double v = (double)W[(size_t)r * cols + i] * x[(size_t)tk * cols + i];
                        exact += v;
                        mag += fabs(v);
                    }
                    float got = y[0][(size_t)tk * rows + r];
                    CHECK(fabs(got - exact) <= 1e-5 * mag + 1e-6, "%dx%d, %d tokens: y[%d][%d] %g vs %g",
                          rows, cols, n, tk, r, got, exact);
                }
            for (int p = 0; p < 3; p++)
                free(y[p]);
            free(W);
            free(x);
        }
    }
    for (int p = 0; p < 3; p++)
        lb_pool_free(pools[p]);
}

/* Attention's row kernels at every level: rows_dot_f16 is the level's dot_f16 row by row, bit
 * for bit; rows_dot_q8 and rows_axpy (fp32, fp16 and scaled int8 rows) are within a few
 * roundings of a double-precision sum, and rows_axpy adds to what y held. Head sizes of the
 * models in use (8, 48, 64, 128) and odd ones, 1 to 70 rows, rows further apart than they are
 * long, int8 rows reaching ±127. */
static void test_attention_rows(void)
{
    const lb_kernel_set *levels[] = {&lb_kernels_scalar, lb_kernels_level("avx2"),
                                     lb_kernels_level("avx512")};
    const int sizes[] = {1, 7, 8, 13, 48, 64, 67, 128};
    const int counts[] = {1, 3, 8, 17, 64, 70};
    lb_rng rng;
    lb_rng_seed(&rng, 11);
    enum { MAXN = 128, MAXR = 70, LD = MAXN + 5 };
    static float rows[MAXR * LD], x[MAXN], w[MAXR], y[MAXN], y0[MAXN], dots[MAXR];
    static uint16_t rows16[MAXR * LD];
    static int8_t rows8[MAXR * LD];
    static float scale8[MAXR];
    int failures = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            int n = sizes[si], nr = counts[ci];
            for (int i = 0; i < MAXR * LD; i++) {
                rows16[i] = lb_fp32_to_fp16(lb_rng_normal(&rng) * 3.0f);
                rows[i] = lb_fp16_to_fp32(rows16[i]);   /* the same values both ways */
            }
            for (int i = 0; i < MAXR * LD; i++)
                rows8[i] = (int8_t)((int)(lb_rng_next(&rng) % 255) - 127);
            for (int r = 0; r < MAXR; r++)
                scale8[r] = (lb_rng_uniform(&rng) + 0.01f) / 40.0f;
            for (int i = 0; i < n; i++) {
                x[i] = lb_rng_normal(&rng);
                y0[i] = lb_rng_normal(&rng);
            }
            for (int r = 0; r < nr; r++)
                w[r] = lb_rng_uniform(&rng) / (float)nr;
            for (size_t l = 0; l < 3; l++) {
                const lb_kernel_set *k = levels[l];
                if (!k)
                    continue;
                k->rows_dot_f16(rows16, LD, nr, x, n, dots);
                for (int r = 0; r < nr; r++) {
                    float one = k->dot_f16(rows16 + (size_t)r * LD, x, n);
                    if (memcmp(&one, &dots[r], sizeof one) != 0 && failures++ < 5)
                        CHECK(0, "%s rows_dot_f16 n %d row %d/%d: %.9g, dot_f16 %.9g", k->name,
                              n, r, nr, (double)dots[r], (double)one);
                }
                k->rows_dot_q8(rows8, scale8, LD, nr, x, n, dots);
                for (int r = 0; r < nr; r++) {
                    double ref = 0, mag = 0;
                    for (int j = 0; j < n; j++) {
                        ref += (double)rows8[(size_t)r * LD + j] * x[j];
                        mag += fabs((double)rows8[(size_t)r * LD + j] * x[j]);
                    }
                    ref *= scale8[r];
                    mag *= scale8[r];
                    if (fabs(dots[r] - ref) > 4 * (n + 1) * 0x1p-24 * mag && failures++ < 5)
                        CHECK(0, "%s rows_dot_q8 n %d row %d/%d: %.9g, exact %.9g", k->name, n,
                              r, nr, (double)dots[r], ref);
                }
                static const char *const kinds[] = {"f32", "f16", "q8"};
                for (int kind = 0; kind < 3; kind++) {
                    memcpy(y, y0, sizeof y);
                    if (kind == 1)
                        k->rows_axpy_f16(w, rows16, LD, nr, n, y);
                    else if (kind == 2)
                        k->rows_axpy_q8(w, rows8, scale8, LD, nr, n, y);
                    else
                        k->rows_axpy_f32(w, rows, LD, nr, n, y);
                    for (int j = 0; j < n; j++) {
                        double ref = y0[j], mag = fabs(y0[j]);
                        for (int r = 0; r < nr; r++) {
                            size_t at = (size_t)r * LD + (size_t)j;
                            double v = kind == 2 ? (double)scale8[r] * rows8[at] : rows[at];
                            ref += (double)w[r] * v;
                            mag += fabs((double)w[r] * v);
                        }
                        double tol = 4 * (nr + 2) * 0x1p-24 * mag;
                        if (fabs(y[j] - ref) > tol && failures++ < 5)
                            CHECK(0, "%s rows_axpy_%s n %d rows %d col %d: %.9g, exact %.9g",
                                  k->name, kinds[kind], n, nr, j, (double)y[j], ref);
                    }
                }
            }
        }
    CHECK(failures == 0, "attention row kernels: %d mismatches", failures);
}

/* ulps between a float and the exact value (in double) */
static double ulps(float got, double exact)
{
    float e = (float)exact;
    double ulp = (double)nextafterf(fabsf(e), INFINITY) - (double)fabsf(e);
    return fabs((double)got - exact) / ulp;
}

/* The exp recipe: the same bits at every level (tails and the eight lanes' sum included),
 * within a few ulp of e^x wherever it does not flush to 0 or overflow, the edges as
 * documented; SwiGLU's gate the same bits at every level and close to the formula. */
static void test_exp_kernels(void)
{
    const lb_kernel_set *levels[] = {lb_kernels_level("avx2"), lb_kernels_level("avx512")};
    enum { N = 1 << 16 };
    static float x[N], y0[N], y1[N], up[N];
    /* accuracy of the recipe (scalar level), over a sweep of the whole range */
    double worst = 0, worst_at = 0;
    const int sweep = 4000000;
    for (int i = 0; i < sweep; i += N) {
        int m = sweep - i < N ? sweep - i : N;
        for (int j = 0; j < m; j++)
            y0[j] = x[j] = LB_EXP_LO + (LB_EXP_HI - LB_EXP_LO) * (float)(i + j) / (float)sweep;
        lb_kernels_scalar.exp_sum(y0, m, 0.0f);
        for (int j = 0; j < m; j++) {
            double u = ulps(y0[j], exp((double)x[j]));
            if (u > worst) {
                worst = u;
                worst_at = x[j];
            }
        }
    }
    printf("exp recipe: at most %.2f ulp from e^x (at x = %.6g)\n", worst, worst_at);
    CHECK(worst <= 1.5, "exp is %.2f ulp off at x = %.9g", worst, worst_at);

    /* edges */
    float edge[] = {-INFINITY, -1000.0f, nextafterf(LB_EXP_LO, -INFINITY), LB_EXP_LO, -1.0f,
                    -0.0f, 0.0f, 1e-30f, 1.0f, LB_EXP_HI, nextafterf(LB_EXP_HI, INFINITY),
                    1000.0f, INFINITY, NAN};
    int ne = (int)(sizeof edge / sizeof edge[0]);
    memcpy(y0, edge, sizeof edge);
    lb_kernels_scalar.exp_sum(y0, ne, 0.0f);
    CHECK(y0[0] == 0 && y0[1] == 0 && y0[2] == 0, "below the range: %g %g %g", (double)y0[0],
          (double)y0[1], (double)y0[2]);
    CHECK(y0[3] > 0 && y0[5] == 1.0f && y0[6] == 1.0f && y0[7] == 1.0f,
          "e^lo %g, e^-0 %g, e^0 %g, e^1e-30 %g", (double)y0[3], (double)y0[5], (double)y0[6],
          (double)y0[7]);
    CHECK(isfinite(y0[9]) && isinf(y0[10]) && isinf(y0[11]) && isinf(y0[12]) && isnan(y0[13]),
          "e^hi %g, above %g %g %g, NaN %g", (double)y0[9], (double)y0[10], (double)y0[11],
          (double)y0[12], (double)y0[13]);

    /* every level against the scalar one: random sizes (the tails), shifted by a max */
    lb_rng rng;
    lb_rng_seed(&rng, 77);
    for (int l = 0; l < 2; l++) {
        if (!levels[l])
            continue;
        int bad = 0;
        for (int trial = 0; trial < 200; trial++) {
            int n = trial < 40 ? trial : (int)(lb_rng_next(&rng) % 3000);
            float sub = (float)(lb_rng_uniform(&rng) * 20.0 - 10.0);
            for (int j = 0; j < n; j++) {
                x[j] = (float)(lb_rng_uniform(&rng) * 200.0 - 100.0);
                up[j] = (float)(lb_rng_uniform(&rng) * 4.0 - 2.0);
            }
            if (n > ne)
                memcpy(x + n - ne, edge, sizeof edge);   /* edges in the vector body or tail */
            memcpy(y0, x, (size_t)n * sizeof(float));
            memcpy(y1, x, (size_t)n * sizeof(float));
            float s0 = lb_kernels_scalar.exp_sum(y0, n, sub);
            float s1 = levels[l]->exp_sum(y1, n, sub);
            bool same = memcmp(&s0, &s1, sizeof s0) == 0 || (isnan(s0) && isnan(s1));
            for (int j = 0; j < n; j++)
                same &= memcmp(&y0[j], &y1[j], sizeof y0[j]) == 0 || (isnan(y0[j]) && isnan(y1[j]));
            memcpy(y0, x, (size_t)n * sizeof(float));
            memcpy(y1, x, (size_t)n * sizeof(float));
            lb_kernels_scalar.silu_mul(y0, up, n);
            levels[l]->silu_mul(y1, up, n);
            for (int j = 0; j < n; j++)
                same &= memcmp(&y0[j], &y1[j], sizeof y0[j]) == 0 || (isnan(y0[j]) && isnan(y1[j]));
            bad += !same;
        }
        CHECK(bad == 0, "%s: exp_sum or silu_mul differs from the scalar level in %d of 200 "
              "vectors", levels[l]->name, bad);
    }

    /* the sum, and SwiGLU against the formula in double */
    int n = 1000;
    double sum = 0, worst_silu = 0;
    for (int j = 0; j < n; j++) {
        x[j] = (float)(lb_rng_uniform(&rng) * 30.0 - 20.0);
        sum += exp((double)x[j] - 3.0);
    }
    memcpy(y0, x, (size_t)n * sizeof(float));
    float s = lb_exp_sum(y0, n, 3.0f);
    CHECK(fabs(s - sum) <= 1e-5 * sum, "sum %.9g, exactly %.9g", (double)s, sum);
    for (int j = 0; j < n; j++)
        up[j] = 1.0f;
    memcpy(y0, x, (size_t)n * sizeof(float));
    lb_silu_mul(y0, up, n);
    for (int j = 0; j < n; j++) {
        double g = x[j], want = g / (1.0 + exp(-g));
        double err = fabs(y0[j] - want) / fmax(fabs(want), 1e-30);
        worst_silu = err > worst_silu ? err : worst_silu;
    }
    CHECK(worst_silu < 1e-6, "silu relative error %.3g", worst_silu);
}

int main(void)
{
    lb_kernels_init();
    printf("kernels in use: %s\n", lb_kernels_name());
    test_traits();
    test_half_conversions();
    test_dot_kernels();
    test_packed_kernels();
    test_quantize_q8();
    test_half_rows();
    test_f32_gemm();
    test_attention_rows();
    test_exp_kernels();
    return check_finish("test_kernels");
}
