/* Row-parallel matrix multiply over the type-traits dot kernels, and over lowbit's group
 * formats (an lb_qlayout on the tensor): their activations are quantized to int8 once per
 * call, then every weight row is integer block dots plus a float combination per group. */
#include "tensor/matmul.h"
#include "tensor/kernels/kernels.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>

typedef void (*qdot_fn)(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out);

typedef struct {
    const lb_tensor *w;
    const float *x;
    float *y;
    int n;
    int rows_per_task;
    size_t row_bytes;
    lb_dot_fn dot;
    /* F32 weights: the level's tile kernel instead of dot */
    void (*gemm)(const float *w, size_t ldw, int rows, const float *x, size_t ldx, int nt,
                 int64_t n, float *y, size_t ldy);
    /* group formats: per token, n_blocks*32 int8 activations, a scale and a sum per block */
    const int8_t *xq;
    const float *xd;
    const int32_t *xsum;
    qdot_fn qdot;
} matmul_job;

/* Tokens are processed in tiles so a tile of activations stays in cache while a block of
 * weight rows streams past it. */
#define TOKEN_TILE 8
/* F32 weights: a multiple of the AVX2 tile's three tokens. */
#define F32_TOKEN_TILE 9
/* Blocks whose integer dots are gathered on the stack before being combined. */
#define QCHUNK 64

/* Quantizes the activations of n tokens into the layout's gathered, padded block order.
 * Per block of 32 (per token for W8A8): d = max|x| / 127, xq = round(x / d) — the same rounding
 * whatever the kernel level, so every level sees the same integers. */
static void quantize_acts(const lb_qlayout *L, const float *x, int n, int8_t *xq, float *xd,
                          int32_t *xsum)
{
    int nb = L->n_blocks;
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * (size_t)L->cols;
        int8_t *q = xq + (size_t)t * (size_t)nb * 32;
        float *d = xd + (size_t)t * (size_t)nb;
        int32_t *s = xsum + (size_t)t * (size_t)nb;
        float row_max = 0;
        if (L->w8a8)
            for (int c = 0; c < L->cols; c++)
                row_max = fmaxf(row_max, fabsf(xr[c]));
        for (int b = 0; b < nb; b++) {
            const int32_t *src = L->src + (size_t)b * 32;
            float v[32], amax = 0;
            for (int j = 0; j < 32; j++) {
                v[j] = src[j] >= 0 ? xr[src[j]] : 0.0f;
                amax = fmaxf(amax, fabsf(v[j]));
            }
            if (L->w8a8)
                amax = row_max;
            float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
            int32_t sum = 0;
            for (int j = 0; j < 32; j++) {
                float r = roundf(v[j] * inv);
                /* NaN or overflow in the input must not become undefined conversions. */
                int qi = r >= 127.0f ? 127 : r <= -127.0f ? -127 : r == r ? (int)r : 0;
                q[b * 32 + j] = (int8_t)qi;
                sum += qi;
            }
            d[b] = scale;
            s[b] = sum;
        }
    }
}

/* One weight row against one token's quantized activations:
 *   y = Σ_g scale_g · Σ_{b in g} d_b · (dot_b − zero_g · sum_b)
 * combined in block order, so the result depends only on the integer dots. W8A8 shares one d
 * per token, so a group's sum stays an exact integer until its single float multiply. */
static float qrow(const lb_qlayout *L, const uint8_t *row, const int8_t *xq, const float *xd,
                  const int32_t *xsum, qdot_fn qdot)
{
    const float *scale = (const float *)(const void *)row;
    const uint8_t *zero = row + (size_t)L->n_groups * sizeof(float);
    const uint8_t *codes = row + L->codes_offset;
    size_t bb = (size_t)L->bits * 4;
    int mid = 1 << (L->bits - 1);
    int32_t dots[QCHUNK];
    float y = 0, acc = 0;
    int64_t iacc = 0;
    int cur = L->n_blocks ? L->block_group[0] : 0;
    for (int b0 = 0; b0 < L->n_blocks; b0 += QCHUNK) {
        int nb = L->n_blocks - b0 < QCHUNK ? L->n_blocks - b0 : QCHUNK;
        qdot(codes + (size_t)b0 * bb, xq + (size_t)b0 * 32, nb, dots);
        for (int i = 0; i < nb; i++) {
            int b = b0 + i, g = L->block_group[b];
            if (g != cur) {
                y += L->w8a8 ? scale[cur] * (xd[0] * (float)iacc) : scale[cur] * acc;
                acc = 0;
                iacc = 0;
                cur = g;
            }
            int32_t z = L->has_zero ? zero[g] : mid;
            int32_t v = dots[i] - z * xsum[b];
            if (L->w8a8)
                iacc += v;
            else
                acc += xd[b] * (float)v;
        }
    }
    if (L->n_blocks)
        y += L->w8a8 ? scale[cur] * (xd[0] * (float)iacc) : scale[cur] * acc;
    return y;
}

static void matmul_task(void *ctx, int task, int thread)
{
    (void)thread;
    const matmul_job *j = ctx;
    int64_t in = j->w->ne[0], out = j->w->ne[1];
    int64_t r0 = (int64_t)task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < out ? r0 + j->rows_per_task : out;
    const char *base = j->w->data;
    const lb_qlayout *L = j->w->qlayout;
    if (j->gemm) {
        const float *w = (const float *)(const void *)base + (size_t)r0 * (size_t)in;
        for (int t0 = 0; t0 < j->n; t0 += F32_TOKEN_TILE) {
            int nt = j->n - t0 < F32_TOKEN_TILE ? j->n - t0 : F32_TOKEN_TILE;
            j->gemm(w, (size_t)in, (int)(r1 - r0), j->x + (size_t)t0 * (size_t)in, (size_t)in,
                    nt, in, j->y + (size_t)t0 * (size_t)out + (size_t)r0, (size_t)out);
        }
        return;
    }
    for (int t0 = 0; t0 < j->n; t0 += TOKEN_TILE) {
        int t1 = t0 + TOKEN_TILE < j->n ? t0 + TOKEN_TILE : j->n;
        for (int64_t r = r0; r < r1; r++) {
            const void *row = base + (size_t)r * j->row_bytes;
            float *y = j->y + (size_t)r;
            if (L) {
                size_t nb = (size_t)L->n_blocks;
                for (int t = t0; t < t1; t++)
                    y[(size_t)t * (size_t)out] =
                        qrow(L, row, j->xq + (size_t)t * nb * 32, j->xd + (size_t)t * nb,
                             j->xsum + (size_t)t * nb, j->qdot);
            } else {
                for (int t = t0; t < t1; t++)
                    y[(size_t)t * (size_t)out] = j->dot(row, j->x + (size_t)t * (size_t)in, in);
            }
        }
    }
}

static void matmul_with(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y,
                        const lb_kernel_set *k);

void lb_matmul(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y)
{
    matmul_with(pool, w, x, n, y, lb_kernels_current());
}

int lb_matmul_level(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y,
                    const char *level)
{
    const lb_kernel_set *k = lb_kernels_level(level);
    if (!k || (!w->qlayout && w->type != LB_TYPE_F32))
        return -1;
    if (!w->qlayout) {
        /* fp32 rows: this level's tile kernel over the whole matrix in one call */
        k->gemm_f32(w->data, (size_t)w->ne[0], (int)w->ne[1], x, (size_t)w->ne[0], n, w->ne[0],
                    y, (size_t)w->ne[1]);
        return 0;
    }
    matmul_with(pool, w, x, n, y, k);
    return 0;
}

static void matmul_with(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y,
                        const lb_kernel_set *k)
{
    const lb_type_traits *tr = lb_type_traits_of(w->type);
    int64_t out = w->ne[1];
    int threads = lb_pool_size(pool);
    /* Enough tasks to balance across threads, few enough that each amortizes its dispatch. */
    int64_t per = out / ((int64_t)threads * 8);
    if (per < 4)
        per = 4;
    per = (per + 3) / 4 * 4;   /* whole 4-row tiles of the F32 kernels */
    matmul_job job = {w, x, y, n, (int)per, lb_tensor_row_bytes(w), tr->dot, NULL, 0, 0, 0, 0};
    if (w->type == LB_TYPE_F32 && !w->qlayout)
        job.gemm = k->gemm_f32;
    int8_t *xq = NULL;
    float *xd = NULL;
    int32_t *xsum = NULL;
    if (w->qlayout) {
        const lb_qlayout *L = w->qlayout;
        size_t nb = (size_t)L->n_blocks * (size_t)(n > 0 ? n : 1);
        xq = lb_malloc(nb * 32);
        xd = lb_malloc(nb * sizeof(float));
        xsum = lb_malloc(nb * sizeof(int32_t));
        quantize_acts(L, x, n, xq, xd, xsum);
        job.xq = xq;
        job.xd = xd;
        job.xsum = xsum;
        job.qdot = k->qdot_blocks[L->bits];
    }
    lb_pool_run(pool, (int)((out + per - 1) / per), matmul_task, &job);
    free(xq);
    free(xd);
    free(xsum);
}
