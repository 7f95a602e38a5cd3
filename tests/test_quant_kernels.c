/* lowbit's group formats at the kernel level: block packing round-trips; every kernel level
 * the CPU supports (scalar, AVX2, AVX-512 VNNI) gives the scalar level's integer block dots and
 * bit-identical matmul outputs (and the same bits for a token alone as in a batch, the
 * multi-token tiles' remainders included), on random and adversarial inputs (odd widths, short last
 * groups, act-order indexes, extreme scales, saturated codes and activations); and the matmul
 * agrees with a double-precision product of the dequantized matrix within the bound that int8
 * activations allow. */
#include "check.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "quant/pack.h"
#include "tensor/kernels/kernels.h"
#include "tensor/matmul.h"
#include "tensor/repack.h"
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

static const char *const LEVELS[] = {"avx2", "avx512"};
static const int BITS[] = {2, 3, 4, 8};

static void test_pack_roundtrip(lb_rng *rng)
{
    for (size_t bi = 0; bi < 4; bi++) {
        int bits = BITS[bi];
        for (int trial = 0; trial < 200; trial++) {
            uint8_t codes[32], back[32], packed[33];
            for (int j = 0; j < 32; j++)
                codes[j] = (uint8_t)(trial == 0 ? 0u : trial == 1 ? (1u << bits) - 1
                                                    : lb_rng_next(rng) % (1u << bits));
            memset(packed, 0xee, sizeof packed);
            lb_qpack_block(codes, bits, packed);
            lb_qunpack_block(packed, bits, back);
            CHECK(memcmp(codes, back, 32) == 0, "%d-bit block round trip, trial %d", bits, trial);
            CHECK(packed[bits * 4] == 0xee, "%d-bit block wrote past %d bytes", bits,
                  bits * 4);
        }
    }
}

static void test_block_dots(lb_rng *rng)
{
    const int nbs[] = {1, 2, 3, 7, 64, 65};
    for (size_t bi = 0; bi < 4; bi++) {
        int bits = BITS[bi], maxq = (1 << bits) - 1;
        for (size_t ni = 0; ni < sizeof nbs / sizeof nbs[0]; ni++) {
            int nb = nbs[ni];
            for (int mode = 0; mode < 3; mode++) {
                uint8_t *codes = malloc((size_t)nb * 32), *packed = malloc((size_t)nb * 32);
                int8_t *xq = malloc((size_t)nb * 32);
                int32_t *want = malloc((size_t)nb * 4), *got = malloc((size_t)nb * 4);
                for (int i = 0; i < nb * 32; i++) {
                    /* mode 1: the largest products (max code, ±127); 2: alternating signs */
                    codes[i] = (uint8_t)(mode ? maxq : (int)(lb_rng_next(rng) % (uint64_t)(maxq + 1)));
                    xq[i] = (int8_t)(mode == 1 ? 127 : mode == 2 ? (i % 2 ? -127 : 127)
                                                     : (int)(lb_rng_next(rng) % 255) - 127);
                }
                for (int b = 0; b < nb; b++) {
                    lb_qpack_block(codes + b * 32, bits, packed + (size_t)b * bits * 4);
                    int32_t s = 0;
                    for (int j = 0; j < 32; j++)
                        s += codes[b * 32 + j] * xq[b * 32 + j];
                    want[b] = s;
                }
                lb_kernels_scalar.qdot_blocks[bits](packed, xq, nb, got);
                CHECK(memcmp(want, got, (size_t)nb * 4) == 0, "scalar %d-bit nb=%d mode %d", bits,
                      nb, mode);
                for (size_t l = 0; l < 2; l++) {
                    const lb_kernel_set *k = lb_kernels_level(LEVELS[l]);
                    if (!k)
                        continue;
                    memset(got, 0, (size_t)nb * 4);
                    k->qdot_blocks[bits](packed, xq, nb, got);
                    CHECK(memcmp(want, got, (size_t)nb * 4) == 0, "%s %d-bit nb=%d mode %d: %d vs %d",
                          LEVELS[l], bits, nb, mode, got[0], want[0]);
                }
                free(codes);
                free(packed);
                free(xq);
                free(want);
                free(got);
            }
        }
    }
}

/* The multi-token block dots (qdot_tile) against the plain sum, at every level: random codes
 * and activations, the largest products of both signs, and tokens that differ from one another
 * (a tile mixing a saturated token, a zero one, and random ones). */
static void test_tile_dots(lb_rng *rng)
{
    const int nbs[] = {1, 2, 3, 7, 64, 65};
    const char *const all[] = {"scalar", "avx2", "avx512"};
    for (size_t bi = 0; bi < 4; bi++) {
        int bits = BITS[bi], maxq = (1 << bits) - 1;
        for (size_t ni = 0; ni < sizeof nbs / sizeof nbs[0]; ni++) {
            int nb = nbs[ni];
            for (int mode = 0; mode < 4; mode++) {
                size_t nx = (size_t)nb * LB_QTILE * 32;
                uint8_t *codes = malloc((size_t)nb * 32), *packed = malloc((size_t)nb * 32);
                int8_t *xq = malloc(nx);
                int32_t *want = malloc((size_t)nb * LB_QTILE * 4);
                int32_t *got = malloc((size_t)nb * LB_QTILE * 4);
                for (int i = 0; i < nb * 32; i++)
                    codes[i] = (uint8_t)(mode == 1 || mode == 2 ? maxq
                                         : (int)(lb_rng_next(rng) % (uint64_t)(maxq + 1)));
                for (size_t i = 0; i < nx; i++) {
                    int t = (int)(i / 32 % LB_QTILE), r = (int)(lb_rng_next(rng) % 255) - 127;
                    /* 1: all +127; 2: -127 and +127 by token; 3: token 0 saturated, token 1
                     * zero, the others random */
                    xq[i] = (int8_t)(mode == 1 ? 127 : mode == 2 ? (t % 2 ? -127 : 127)
                                     : mode == 3 ? (t == 0 ? -127 : t == 1 ? 0 : r) : r);
                }
                for (int b = 0; b < nb; b++) {
                    lb_qpack_block(codes + b * 32, bits, packed + (size_t)b * bits * 4);
                    for (int t = 0; t < LB_QTILE; t++) {
                        int32_t sum = 0;
                        for (int j = 0; j < 32; j++)
                            sum += codes[b * 32 + j] * xq[((size_t)b * LB_QTILE + t) * 32 + j];
                        want[b * LB_QTILE + t] = sum;
                    }
                }
                for (size_t l = 0; l < 3; l++) {
                    const lb_kernel_set *k = lb_kernels_level(all[l]);
                    if (!k)
                        continue;
                    memset(got, 0x55, (size_t)nb * LB_QTILE * 4);
                    k->qdot_tile[bits](packed, xq, nb, got);
                    CHECK(memcmp(want, got, (size_t)nb * LB_QTILE * 4) == 0,
                          "%s tile %d-bit nb=%d mode %d: %d vs %d", all[l], bits, nb, mode,
                          got[0], want[0]);
                }
                free(codes);
                free(packed);
                free(xq);
                free(want);
                free(got);
            }
        }
    }
}

/* One configuration: a random W quantized by RTN (or random codes with an act-order index),
 * packed, multiplied at every level. */
typedef struct {
    int rows, cols, bits, group;
    bool sym, act_order, w8a8;
    float wscale, xscale;
    int n_tok;   /* tokens in the batch: 1..9 covers whole tiles and every remainder */
} mm_case;

static void run_case(lb_pool *pool, lb_rng *rng, const mm_case *c)
{
    int n_tok = c->n_tok;
    float *W = malloc((size_t)c->rows * c->cols * sizeof(float));
    float *x = malloc((size_t)n_tok * c->cols * sizeof(float));
    for (int i = 0; i < c->rows * c->cols; i++)
        W[i] = lb_rng_normal(rng) * c->wscale;
    for (int i = 0; i < n_tok * c->cols; i++)
        x[i] = lb_rng_normal(rng) * c->xscale;
    if (c->cols > 5)
        x[c->cols / 2] = 40 * c->xscale;   /* an outlier channel, as real activations have */
    lb_qweight qw;
    lb_qweight_rtn(W, c->rows, c->cols, c->bits, c->group, c->sym, &qw);
    qw.w8a8 = c->w8a8;
    if (c->act_order) {
        /* A shuffled assignment of columns to groups, as GPTQ's act-order produces. */
        qw.g_idx = malloc((size_t)c->cols * sizeof(int32_t));
        for (int i = 0; i < c->cols; i++)
            qw.g_idx[i] = qw.group_size ? i / qw.group_size : 0;
        for (int i = c->cols - 1; i > 0; i--) {
            int j = (int)(lb_rng_next(rng) % (uint64_t)(i + 1));
            int32_t t = qw.g_idx[i];
            qw.g_idx[i] = qw.g_idx[j];
            qw.g_idx[j] = t;
        }
    }
    lb_error err;
    int mid = 1 << (c->bits - 1);
    bool has_zero = false;
    for (int i = 0; i < c->rows * qw.n_groups; i++)
        has_zero |= qw.zero[i] != mid;
    lb_qlayout *L = lb_qlayout_create(c->rows, c->cols, c->bits, qw.group_size, qw.n_groups,
                                      has_zero, c->w8a8, qw.g_idx, &err);
    CHECK(L != NULL, "layout: %s", err.msg);
    if (!L)
        return;
    lb_tensor t = {.type = lb_qlayout_type(L), .n_dims = 2, .ne = {c->cols, c->rows, 1, 1}};
    snprintf(t.name, sizeof t.name, "w");
    t.data = malloc((size_t)c->rows * L->row_bytes);
    t.nbytes = (size_t)c->rows * L->row_bytes;
    t.qlayout = L;
    lb_qweight_pack(&qw, L, t.data);

    /* the plain form comes back exactly */
    lb_qweight back;
    CHECK(lb_tensor_to_qweight(&t, &back, &err) == 0, "unpack: %s", err.msg);
    CHECK(memcmp(back.q, qw.q, (size_t)c->rows * c->cols) == 0, "codes round trip");
    CHECK(memcmp(back.scale, qw.scale, (size_t)c->rows * qw.n_groups * 4) == 0, "scales");
    CHECK(memcmp(back.zero, qw.zero, (size_t)c->rows * qw.n_groups) == 0, "zeros");
    lb_qweight_free(&back);

    float *ys = malloc((size_t)n_tok * c->rows * sizeof(float));
    float *yl = malloc((size_t)n_tok * c->rows * sizeof(float));
    float *row = malloc((size_t)(c->cols > c->rows ? c->cols : c->rows) * sizeof(float));
    float *deq = malloc((size_t)c->rows * c->cols * sizeof(float));
    lb_qweight_dequant(&qw, deq);
    CHECK(lb_matmul_level(pool, &t, x, n_tok, ys, "scalar") == 0, "scalar level");
    char what[160];
    snprintf(what, sizeof what, "%dx%d %d-bit g%d %s%s%s", c->rows, c->cols, c->bits, c->group,
             c->sym ? "sym" : "asym", c->act_order ? " act-order" : "", c->w8a8 ? " w8a8" : "");
    for (size_t l = 0; l < 2; l++) {
        if (lb_matmul_level(pool, &t, x, n_tok, yl, LEVELS[l]))
            continue;
        CHECK(memcmp(ys, yl, (size_t)n_tok * c->rows * sizeof(float)) == 0,
              "%s: %s differs from scalar (%g vs %g)", what, LEVELS[l], yl[0], ys[0]);
    }
    /* Each token alone gives the same bits as in the batch, whatever its place in the tiles
     * of LB_QTILE tokens (at the level in use, through lb_matmul). */
    lb_matmul(pool, &t, x, n_tok, yl);
    for (int tk = 0; tk < n_tok; tk++) {
        lb_matmul(pool, &t, x + (size_t)tk * c->cols, 1, row);
        CHECK(memcmp(row, yl + (size_t)tk * c->rows, (size_t)c->rows * sizeof(float)) == 0,
              "%s: token %d of %d alone differs from the batch", what, tk, n_tok);
    }
    /* Against the dequantized matrix in double: each activation moves by at most half its
     * quantization step, d/2 <= max|x| / 254 over its block (the whole row for W8A8). */
    double worst = 0;
    for (int tk = 0; tk < n_tok; tk++) {
        const float *xr = x + (size_t)tk * c->cols;
        double xmax = 0;
        for (int i = 0; i < c->cols; i++)
            xmax = fmax(xmax, fabs(xr[i]));
        for (int r = 0; r < c->rows; r++) {
            lb_tensor_get_row(&t, r, row);
            CHECK(memcmp(row, deq + (size_t)r * c->cols, (size_t)c->cols * 4) == 0,
                  "%s: get_row %d is the dequantized row", what, r);
            double exact = 0, bound = 0;
            for (int i = 0; i < c->cols; i++) {
                exact += (double)deq[(size_t)r * c->cols + i] * xr[i];
                bound += fabs(deq[(size_t)r * c->cols + i]) * (xmax / 254.0 + fabs(xr[i]) * 1e-6);
            }
            double e = fabs(ys[(size_t)tk * c->rows + r] - exact);
            CHECK(e <= bound * 1.0001 + 1e-30, "%s: row %d token %d: %g vs %g (bound %g)", what,
                  r, tk, ys[(size_t)tk * c->rows + r], exact, bound);
            worst = fmax(worst, bound > 0 ? e / bound : 0);
        }
    }
    free(ys);
    free(yl);
    free(row);
    free(deq);
    free(t.data);
    free(L);
    free(W);
    free(x);
    lb_qweight_free(&qw);
}

static void test_matmul(void)
{
    lb_rng rng;
    lb_rng_seed(&rng, 7);
    lb_pool *pool = lb_pool_create(2);
    const int cols_list[] = {1, 12, 31, 33, 172, 257};
    const int groups[] = {0, 32, 64, 128};
    for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++)
        for (size_t bi = 0; bi < 4; bi++)
            for (size_t gi = 0; gi < 4; gi++)
                for (int variant = 0; variant < 3; variant++) {
                    mm_case c = {5 + (int)ci, cols_list[ci], BITS[bi], groups[gi], variant == 1,
                                 variant == 2, false, 0.05f, 1.0f,
                                 1 + (int)((ci * 12 + bi * 3 + gi + (size_t)variant) % 9)};
                    run_case(pool, &rng, &c);
                }
    /* W8A8 per channel and per group; extreme scales both ways. */
    const float scales[][2] = {{1e-3f, 1.0f}, {1e-20f, 1e-20f}, {1e15f, 1e10f}, {1.0f, 3e-38f}};
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
        mm_case w8 = {7, 172, 8, 0, true, false, true, scales[s][0], scales[s][1], 5};
        run_case(pool, &rng, &w8);
        w8.group = 64;
        w8.n_tok = 4;
        run_case(pool, &rng, &w8);
        mm_case q4 = {9, 200, 4, 32, false, true, false, scales[s][0], scales[s][1], 9};
        run_case(pool, &rng, &q4);
    }
    lb_pool_free(pool);
}

/* GGUF Q8_0 / Q4_0 through int8 activations (the kernels themselves: test_kernels.c): lb_matmul
 * gives a token the same bits alone as in batches of 1..13 (four-token remainders) and at 1 or
 * 2 threads, and stays within the int8 activations' bound of a double-precision product. */
static void test_gguf_int(lb_rng *rng)
{
    for (int q8 = 0; q8 < 2; q8++) {
        /* through lb_matmul */
        lb_pool *pools[2] = {lb_pool_create(1), lb_pool_create(2)};
        const int shapes[][2] = {{37, 96}, {5, 288}, {64, 32}};
        for (int si = 0; si < 3; si++) {
            int rows = shapes[si][0], cols = shapes[si][1], nmax = 13;
            int type = q8 ? LB_TYPE_Q8_0 : LB_TYPE_Q4_0;
            const lb_type_traits *tr = lb_type_traits_of(type);
            float *W = malloc((size_t)rows * cols * sizeof(float));
            float *deq = malloc((size_t)rows * cols * sizeof(float));
            for (int i = 0; i < rows * cols; i++)
                W[i] = lb_rng_normal(rng) * 0.05f;
            size_t rb = lb_row_bytes(type, cols);
            void *data = malloc((size_t)rows * rb);
            for (int r = 0; r < rows; r++) {
                tr->from_float(W + (size_t)r * cols, (char *)data + (size_t)r * rb, cols);
                tr->to_float((char *)data + (size_t)r * rb, deq + (size_t)r * cols, cols);
            }
            lb_tensor t = {.type = type, .n_dims = 2, .ne = {cols, rows, 1, 1}};
            t.data = data;
            t.nbytes = (size_t)rows * rb;
            float *x = malloc((size_t)nmax * cols * sizeof(float));
            for (int i = 0; i < nmax * cols; i++)
                x[i] = lb_rng_normal(rng) * (i % 37 == 0 ? 30.0f : 1.0f);
            float *alone = malloc((size_t)nmax * rows * sizeof(float));
            float *y = malloc((size_t)nmax * rows * sizeof(float));
            float *y2 = malloc((size_t)nmax * rows * sizeof(float));
            for (int tk = 0; tk < nmax; tk++)
                lb_matmul(pools[0], &t, x + (size_t)tk * cols, 1, alone + (size_t)tk * rows);
            for (int n = 1; n <= nmax; n++) {
                lb_matmul(pools[0], &t, x, n, y);
                lb_matmul(pools[1], &t, x, n, y2);
                CHECK(memcmp(y, alone, (size_t)n * rows * sizeof(float)) == 0,
                      "%s %dx%d: a batch of %d differs from its tokens alone", tr->name, rows,
                      cols, n);
                CHECK(memcmp(y, y2, (size_t)n * rows * sizeof(float)) == 0,
                      "%s %dx%d, %d tokens: 2 threads differ from 1", tr->name, rows, cols, n);
            }
            /* Packed once as at load, or per call as here: the same bits, at every level. A
             * copy describing other rows or data does not use it. */
            lb_packed *P = lb_repack(&t);
            t.packed = P;
            CHECK(lb_tensor_packed(&t) == P, "%s: the packed copy is used", tr->name);
            lb_matmul(pools[1], &t, x, nmax, y2);
            CHECK(memcmp(y, y2, (size_t)nmax * rows * sizeof(float)) == 0,
                  "%s %dx%d: packed at load differs from packed per call", tr->name, rows, cols);
            const char *names[] = {"scalar", "avx2", "avx512"};
            for (int li = 0; li < 3; li++)
                if (lb_matmul_level(pools[1], &t, x, nmax, y2, names[li]) == 0)
                    CHECK(memcmp(y, y2, (size_t)nmax * rows * sizeof(float)) == 0,
                          "%s %dx%d: level %s differs", tr->name, rows, cols, names[li]);
            float *row = malloc((size_t)cols * sizeof(float));
            for (int r = 0; r < rows; r++) {
                lb_tensor_get_row(&t, r, row);
                CHECK(memcmp(row, deq + (size_t)r * cols, (size_t)cols * sizeof(float)) == 0,
                      "%s %dx%d: row %d read from the packed copy differs from the file's",
                      tr->name, rows, cols, r);
            }
            free(row);
            lb_tensor fewer = t, moved = t;
            fewer.ne[1] = rows - 1;
            moved.data = deq;
            CHECK(!lb_tensor_packed(&fewer) && !lb_tensor_packed(&moved),
                  "%s: a stale packed copy is ignored", tr->name);
            t.packed = NULL;
            free(P);
            for (int tk = 0; tk < nmax; tk++)
                for (int r = 0; r < rows; r++) {
                    const float *xr = x + (size_t)tk * cols, *wr = deq + (size_t)r * cols;
                    double exact = 0, bound = 0;
                    for (int b = 0; b < cols / 32; b++) {
                        double amax = 0;
                        for (int j = 0; j < 32; j++)
                            amax = fmax(amax, fabs(xr[b * 32 + j]));
                        for (int j = 0; j < 32; j++) {
                            int i = b * 32 + j;
                            exact += (double)wr[i] * xr[i];
                            bound += fabs(wr[i]) * (amax / 254.0 + fabs(xr[i]) * 1e-6);
                        }
                    }
                    double e = fabs(y[(size_t)tk * rows + r] - exact);
                    CHECK(e <= bound * 1.0001 + 1e-30, "%s %dx%d: row %d token %d: %g vs %g (bound %g)",
                          tr->name, rows, cols, r, tk, y[(size_t)tk * rows + r], exact, bound);
                }
            free(W);
            free(deq);
            free(data);
            free(x);
            free(alone);
            free(y);
            free(y2);
        }
        lb_pool_free(pools[0]);
        lb_pool_free(pools[1]);
    }
}

/* lb_matmul_multi gives each weight exactly lb_matmul's result: packed GGUF weights of one
 * width sharing their activations (two Q8_0 of different heights, a Q4_0), an F32 and a
 * lowbit 4-bit weight beside them, more weights than one job holds, 1 and 7 tokens. */
static void test_matmul_multi(lb_rng *rng)
{
    enum { COLS = 96, COUNT = 6 };
    const int types[COUNT] = {LB_TYPE_Q8_0, LB_TYPE_Q4_0, LB_TYPE_F32, LB_TYPE_LBQ4,
                              LB_TYPE_Q8_0, LB_TYPE_Q4_0};
    const int rows[COUNT] = {37, 16, 8, 20, 5, 33};
    lb_tensor t[COUNT];
    const lb_tensor *ws[COUNT];
    float *ys[COUNT], *single[COUNT];
    lb_qlayout *L = NULL;
    float *x = malloc(7 * COLS * sizeof(float));
    for (int i = 0; i < 7 * COLS; i++)
        x[i] = lb_rng_normal(rng);
    for (int i = 0; i < COUNT; i++) {
        float *W = malloc((size_t)rows[i] * COLS * sizeof(float));
        for (int j = 0; j < rows[i] * COLS; j++)
            W[j] = lb_rng_normal(rng) * 0.05f;
        t[i] = (lb_tensor){.type = types[i], .n_dims = 2, .ne = {COLS, rows[i], 1, 1}};
        if (types[i] == LB_TYPE_LBQ4) {
            lb_qweight qw;
            lb_error err;
            lb_qweight_rtn(W, rows[i], COLS, 4, 32, false, &qw);
            L = lb_qlayout_create(rows[i], COLS, 4, qw.group_size, qw.n_groups, true, false, NULL,
                                  &err);
            t[i].data = malloc((size_t)rows[i] * L->row_bytes);
            t[i].qlayout = L;
            lb_qweight_pack(&qw, L, t[i].data);
            lb_qweight_free(&qw);
        } else {
            const lb_type_traits *tr = lb_type_traits_of(types[i]);
            size_t rb = lb_row_bytes(types[i], COLS);
            t[i].data = malloc((size_t)rows[i] * rb);
            for (int r = 0; r < rows[i]; r++)
                tr->from_float(W + (size_t)r * COLS, (char *)t[i].data + (size_t)r * rb, COLS);
        }
        free(W);
        ws[i] = &t[i];
        ys[i] = malloc(7 * (size_t)rows[i] * sizeof(float));
        single[i] = malloc(7 * (size_t)rows[i] * sizeof(float));
    }
    lb_pool *pool = lb_pool_create(2);
    for (int n = 1; n <= 7; n += 6) {
        for (int i = 0; i < COUNT; i++)
            lb_matmul(pool, ws[i], x, n, single[i]);
        lb_matmul_multi(pool, COUNT, ws, x, n, ys);
        for (int i = 0; i < COUNT; i++)
            CHECK(memcmp(ys[i], single[i], (size_t)n * rows[i] * sizeof(float)) == 0,
                  "multi, %d token(s): weight %d (%s) differs from its lb_matmul", n, i,
                  lb_type_name(types[i]));
    }
    lb_pool_free(pool);
    for (int i = 0; i < COUNT; i++) {
        free(t[i].data);
        free(ys[i]);
        free(single[i]);
    }
    free(L);   /* one allocation, as lb_model_own keeps it */
    free(x);
}

static void test_bad_layouts(void)
{
    lb_error err;
    int32_t gidx[4] = {0, 1, 2, 9};
    CHECK(!lb_qlayout_create(2, 4, 5, 0, 1, false, false, NULL, &err), "5 bits refused");
    CHECK(!lb_qlayout_create(2, 4, 4, 0, 1, false, true, NULL, &err), "W8A8 at 4 bits refused");
    CHECK(!lb_qlayout_create(2, 4, 4, 2, 3, false, false, NULL, &err), "wrong group count");
    CHECK(!lb_qlayout_create(2, 4, 4, 2, 3, false, false, gidx, &err) &&
              strstr(err.msg, "g_idx[3] is 9"), "g_idx out of range: %s", err.msg);
    CHECK(!lb_qlayout_create(0, 4, 4, 0, 1, false, false, NULL, &err), "no rows");
}

int main(void)
{
    lb_rng rng;
    lb_rng_seed(&rng, 1);
    printf("kernels in use: %s; levels:", lb_kernels_name());
    for (size_t l = 0; l < 2; l++)
        printf(" %s=%s", LEVELS[l], lb_kernels_level(LEVELS[l]) ? "yes" : "no");
    printf("\n");
    test_pack_roundtrip(&rng);
    test_block_dots(&rng);
    test_tile_dots(&rng);
    test_matmul();
    test_gguf_int(&rng);
    test_matmul_multi(&rng);
    test_bad_layouts();
    return check_finish("test_quant_kernels");
}
