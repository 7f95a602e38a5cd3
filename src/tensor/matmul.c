/* Row-parallel matrix multiply: F32 weights through register-tiled kernels (rows × tokens);
 * lowbit's group formats (an lb_qlayout on the tensor) and GGUF's Q8_0 / Q4_0 with their
 * activations quantized to int8 once per call, then every weight row is integer block dots
 * against tiles of tokens plus a float combination (for Q8_0 / Q4_0 inside the kernel, on
 * sixteen rows packed together, tensor/repack.h); other types through the type-traits dot
 * kernels.
 * Whatever the path, a token's outputs do not depend on the batch around it, the thread count
 * or the kernel level (for the integer paths). */
#include "tensor/matmul.h"
#include "tensor/kernels/kernels.h"
#include "tensor/repack.h"
#include "core/error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef void (*qtile_fn)(const uint8_t *codes, const int8_t *xq, int nb, int32_t *out);
typedef void (*packed_dot_fn)(const uint8_t *group, int64_t nb, const int8_t *xq,
                              const float *xd, const int32_t *xsum, int nt, float *y);

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
    /* group formats and Q8_0 / Q4_0: the activations of each tile of `lanes` tokens (the
     * last padded with zeros), block by block: the tile's 32 int8 per token, then a scale and
     * a sum per token */
    int8_t *xq;
    float *xd;
    int32_t *xsum;
    qtile_fn qtile;
    int lanes;   /* tokens per tile: LB_QTILE, or 1 (and per-token kernels) below a tile */
    /* GGUF Q8_0 / Q4_0: the weights sixteen rows together, the level's kernel for them, and
     * the activations one token after another (lanes 1) */
    const lb_packed *packed;
    packed_dot_fn pdot;
    void (*quantize)(const float *x, int64_t nb, int8_t *q, float *d, int32_t *sum);
} matmul_job;

/* Tokens are processed in tiles so a tile of activations stays in cache while a block of
 * weight rows streams past it. A multiple of LB_QTILE. */
#define TOKEN_TILE 8
/* F32 weights: a multiple of the AVX2 tile's three tokens and the AVX-512 tile's six. */
#define F32_TOKEN_TILE 12
/* F32 weights: a decode batch of up to this many tokens goes over each slice of rows in one
 * pass rather than in tiles of F32_TOKEN_TILE, the rows read once from L2 instead of twice
 * (batch 16: 1.05x on 110M, 1.06x on 15M, interleaved A/B). */
#define F32_ONE_PASS 16
/* F32 weights: the rows all of a batch's token tiles go over before the next rows, sized to
 * stay in a core's L2 cache. */
#define F32_SLICE_BYTES (256 * 1024)
/* Blocks whose integer dots are gathered on the stack before being combined. */
#define QCHUNK 64

/* Quantizes token t's activations into its place in the layout's gathered, padded block
 * order, in tiles of `lanes` tokens (LB_QTILE, or 1 for batches smaller than a tile): block b
 * of t's tile at ((tile·n_blocks + b)·lanes + t % lanes).
 * Per block of 32 (per token for W8A8): d = max|x| / 127, xq = lb_q8_round(x / d), as the
 * kernels' quantize_q8 does for GGUF's consecutive blocks: every level sees the same integers. */
static void quantize_token(const lb_qlayout *L, const float *xr, int t, int lanes, int8_t *xq,
                           float *xd, int32_t *xsum)
{
    int nb = L->n_blocks;
    size_t first = (size_t)(t / lanes) * (size_t)nb * (size_t)lanes + (size_t)(t % lanes);
    float row_max = 0;
    if (L->w8a8)
        for (int c = 0; c < L->cols; c++)
            row_max = lb_absmax(row_max, xr[c]);
    for (int b = 0; b < nb; b++) {
        size_t at = first + (size_t)b * (size_t)lanes;
        int8_t *q = xq + at * 32;
        const int32_t *src = L->src + (size_t)b * 32;
        float v[32], amax = 0;
        for (int j = 0; j < 32; j++) {
            v[j] = src[j] >= 0 ? xr[src[j]] : 0.0f;
            amax = lb_absmax(amax, v[j]);
        }
        if (L->w8a8)
            amax = row_max;
        float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            q[j] = (int8_t)lb_q8_round(v[j] * inv);
            sum += q[j];
        }
        xd[at] = scale;
        xsum[at] = sum;
    }
}

/* Tokens per task of the activations' quantization. */
#define QUANT_TOKENS 4

static void quantize_task(void *ctx, int task, int thread)
{
    (void)thread;
    const matmul_job *j = ctx;
    int cols = (int)j->w->ne[0];
    int t1 = (task + 1) * QUANT_TOKENS < j->n ? (task + 1) * QUANT_TOKENS : j->n;
    for (int t = task * QUANT_TOKENS; t < t1; t++) {
        const float *xr = j->x + (size_t)t * (size_t)cols;
        if (j->w->qlayout) {
            quantize_token(j->w->qlayout, xr, t, j->lanes, j->xq, j->xd, j->xsum);
        } else {   /* packed GGUF blocks: consecutive columns, token after token */
            size_t at = (size_t)t * (size_t)(cols / 32);
            j->quantize(xr, cols / 32, j->xq + at * 32, j->xd + at, j->xsum + at);
        }
    }
}

/* qrow_tile for one token (the decode path), written out for speed: the same operations as
 * one lane of the tile. */
static float qrow(const lb_qlayout *L, const uint8_t *row, const int8_t *xq, const float *xd,
                  const int32_t *xsum, qtile_fn qdot)
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

/* One weight row against one tile of LB_QTILE tokens' quantized activations, for each token:
 *   y = Σ_g scale_g · Σ_{b in g} d_b · (dot_b − zero_g · sum_b)
 * combined in block order, so the result depends only on the integer dots; the tokens of the
 * tile are lanes that do the same operations side by side, so a token's result does not
 * depend on its tile or its lane. W8A8 shares one d per token, so a group's sum stays an exact
 * integer until its single float multiply. */
static void qrow_tile(const lb_qlayout *L, const uint8_t *row, const int8_t *xq, const float *xd,
                      const int32_t *xsum, qtile_fn qtile, int lanes, float y[LB_QTILE])
{
    const float *scale = (const float *)(const void *)row;
    const uint8_t *zero = row + (size_t)L->n_groups * sizeof(float);
    const uint8_t *codes = row + L->codes_offset;
    size_t bb = (size_t)L->bits * 4;
    int mid = 1 << (L->bits - 1);
    int32_t dots[QCHUNK * LB_QTILE];
    int cur = L->n_blocks ? L->block_group[0] : 0;
    if (lanes == 1) {
        y[0] = qrow(L, row, xq, xd, xsum, qtile);
        return;
    }
#if defined(__SSE2__) && LB_QTILE == 4
    /* The float groups with SSE2, four tokens a register: the scalar loop's operations lane
     * by lane (exact integers, one rounding per multiply and per add, no fused multiply-add),
     * so the same bits as the loop below. z < 256 and |sum| <= 32 · 127 fit int16, so pmaddwd
     * against z (high halves zero) gives z · sum exactly. */
    if (!L->w8a8 && lanes == 4) {
        __m128 yv = _mm_setzero_ps(), acc = _mm_setzero_ps();
        for (int b0 = 0; b0 < L->n_blocks; b0 += QCHUNK) {
            int nb = L->n_blocks - b0 < QCHUNK ? L->n_blocks - b0 : QCHUNK;
            qtile(codes + (size_t)b0 * bb, xq + (size_t)b0 * 32 * LB_QTILE, nb, dots);
            for (int i = 0; i < nb; i++) {
                int b = b0 + i, g = L->block_group[b];
                if (g != cur) {
                    yv = _mm_add_ps(yv, _mm_mul_ps(_mm_set1_ps(scale[cur]), acc));
                    acc = _mm_setzero_ps();
                    cur = g;
                }
                __m128i z = _mm_set1_epi32(L->has_zero ? zero[g] : mid);
                __m128i zs = _mm_madd_epi16(
                    _mm_loadu_si128((const __m128i *)(const void *)(xsum + (size_t)b * 4)), z);
                __m128i v = _mm_sub_epi32(
                    _mm_loadu_si128((const __m128i *)(const void *)(dots + (size_t)i * 4)), zs);
                acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(xd + (size_t)b * 4),
                                                 _mm_cvtepi32_ps(v)));
            }
        }
        if (L->n_blocks)
            yv = _mm_add_ps(yv, _mm_mul_ps(_mm_set1_ps(scale[cur]), acc));
        _mm_storeu_ps(y, yv);
        return;
    }
#endif
    float acc[LB_QTILE] = {0};
    int64_t iacc[LB_QTILE] = {0};
    for (int t = 0; t < lanes; t++)
        y[t] = 0;
    for (int b0 = 0; b0 < L->n_blocks; b0 += QCHUNK) {
        int nb = L->n_blocks - b0 < QCHUNK ? L->n_blocks - b0 : QCHUNK;
        qtile(codes + (size_t)b0 * bb, xq + (size_t)b0 * 32 * (size_t)lanes, nb, dots);
        for (int i = 0; i < nb; i++) {
            int b = b0 + i, g = L->block_group[b];
            if (g != cur) {
                for (int t = 0; t < lanes; t++) {
                    y[t] += L->w8a8 ? scale[cur] * (xd[t] * (float)iacc[t]) : scale[cur] * acc[t];
                    acc[t] = 0;
                    iacc[t] = 0;
                }
                cur = g;
            }
            int32_t z = L->has_zero ? zero[g] : mid;
            const int32_t *d = dots + (size_t)i * (size_t)lanes, *s = xsum + (size_t)b * (size_t)lanes;
            const float *xb = xd + (size_t)b * (size_t)lanes;
            if (L->w8a8)
                for (int t = 0; t < lanes; t++)
                    iacc[t] += d[t] - z * s[t];
            else
                for (int t = 0; t < lanes; t++)
                    acc[t] += xb[t] * (float)(d[t] - z * s[t]);
        }
    }
    if (L->n_blocks)
        for (int t = 0; t < lanes; t++)
            y[t] += L->w8a8 ? scale[cur] * (xd[t] * (float)iacc[t]) : scale[cur] * acc[t];
}

/* Rows [r0, r1) of packed Q8_0 / Q4_0 weights (r0 a multiple of sixteen): each group of
 * sixteen rows against up to LB_PTILE tokens per call, its weights read once per call. */
static void packed_task(const matmul_job *j, int64_t r0, int64_t r1)
{
    const lb_packed *P = j->packed;
    int64_t out = j->w->ne[1], nb = P->n_blocks;
    float part[LB_PTILE * LB_PACK_ROWS];
    /* Groups a slice at a time under every token tile, as for F32 rows (half the size: the
     * activations of a tile are larger next to packed weights). */
    int64_t slice = (int64_t)(F32_SLICE_BYTES / 2 / P->group_bytes);
    slice = slice < 1 ? 1 : slice;
    int64_t g1 = (r1 + LB_PACK_ROWS - 1) / LB_PACK_ROWS;
    for (int64_t s0 = r0 / LB_PACK_ROWS; s0 < g1; s0 += slice) {
        int64_t s1 = s0 + slice < g1 ? s0 + slice : g1;
        for (int t0 = 0; t0 < j->n; t0 += TOKEN_TILE) {
            int t1 = t0 + TOKEN_TILE < j->n ? t0 + TOKEN_TILE : j->n;
            for (int64_t g = s0; g < s1; g++) {
                int64_t row0 = g * LB_PACK_ROWS;
                size_t rows = (size_t)(out - row0 < LB_PACK_ROWS ? out - row0 : LB_PACK_ROWS);
                for (int t = t0; t < t1; t += LB_PTILE) {
                    int nt = t1 - t < LB_PTILE ? t1 - t : LB_PTILE;
                    size_t at = (size_t)t * (size_t)nb;
                    j->pdot(lb_packed_block(P, g, 0), nb, j->xq + at * 32, j->xd + at,
                            j->xsum + at, nt, part);
                    for (int i = 0; i < nt; i++)
                        memcpy(j->y + (size_t)(t + i) * (size_t)out + (size_t)row0,
                               part + i * LB_PACK_ROWS, rows * sizeof(float));
                }
            }
        }
    }
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
    if (j->packed) {
        packed_task(j, r0, r1);
        return;
    }
    if (j->gemm) {
        /* Rows a slice at a time, every token tile over each slice while it is in cache: a
         * task of many rows (the output head) would otherwise stream its rows from memory
         * once per tile. */
        int64_t slice = F32_SLICE_BYTES / ((int64_t)in * (int64_t)sizeof(float));
        slice = slice < 4 ? 4 : slice / 4 * 4;
        for (int64_t s0 = r0; s0 < r1; s0 += slice) {
            int rows = (int)(r1 - s0 < slice ? r1 - s0 : slice);
            const float *w = (const float *)(const void *)base + (size_t)s0 * (size_t)in;
            int tile = j->n <= F32_ONE_PASS ? j->n : F32_TOKEN_TILE;
            for (int t0 = 0; t0 < j->n; t0 += tile) {
                int nt = j->n - t0 < tile ? j->n - t0 : tile;
                j->gemm(w, (size_t)in, rows, j->x + (size_t)t0 * (size_t)in, (size_t)in, nt, in,
                        j->y + (size_t)t0 * (size_t)out + (size_t)s0, (size_t)out);
            }
        }
        return;
    }
    for (int t0 = 0; t0 < j->n; t0 += TOKEN_TILE) {
        int t1 = t0 + TOKEN_TILE < j->n ? t0 + TOKEN_TILE : j->n;
        for (int64_t r = r0; r < r1; r++) {
            const void *row = base + (size_t)r * j->row_bytes;
            float *y = j->y + (size_t)r;
            int lanes = j->lanes;
            if (L) {
                size_t tile = (size_t)L->n_blocks * (size_t)lanes;
                for (int t = t0; t < t1; t += lanes) {
                    float yt[LB_QTILE];
                    size_t k = (size_t)(t / lanes) * tile;
                    qrow_tile(L, row, j->xq + k * 32, j->xd + k, j->xsum + k, j->qtile, lanes,
                              yt);
                    for (int i = 0; i < lanes && t + i < t1; i++)
                        y[(size_t)(t + i) * (size_t)out] = yt[i];
                }
            } else {
                for (int t = t0; t < t1; t++)
                    y[(size_t)t * (size_t)out] = j->dot(row, j->x + (size_t)t * (size_t)in, in);
            }
        }
    }
}

static void matmul_with(lb_pool *pool, int count, const lb_tensor *const *w, const float *x,
                        int n, float *const *y, const lb_kernel_set *k);

void lb_matmul(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y)
{
    matmul_with(pool, 1, &w, x, n, &y, lb_kernels_current());
}

void lb_matmul_multi(lb_pool *pool, int count, const lb_tensor *const *w, const float *x, int n,
                     float *const *y)
{
    for (int i = 0; i < count; i += LB_MATMUL_MAX)
        matmul_with(pool, count - i < LB_MATMUL_MAX ? count - i : LB_MATMUL_MAX, w + i, x, n,
                    y + i, lb_kernels_current());
}

int lb_matmul_level(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y,
                    const char *level)
{
    const lb_kernel_set *k = lb_kernels_level(level);
    if (!k || (!w->qlayout && w->type != LB_TYPE_F32 && !lb_repack_supported(w)))
        return -1;
    if (!w->qlayout && w->type == LB_TYPE_F32) {
        /* fp32 rows: this level's tile kernel over the whole matrix in one call */
        k->gemm_f32(w->data, (size_t)w->ne[0], (int)w->ne[1], x, (size_t)w->ne[0], n, w->ne[0],
                    y, (size_t)w->ne[1]);
        return 0;
    }
    matmul_with(pool, 1, &w, x, n, &y, k);
    return 0;
}

/* Sets up one weight's share of a multiply, all but its quantized activations. A Q8_0 / Q4_0
 * weight always runs packed: a loaded model's weights were packed at load, any other
 * tensor's are packed into *temporary for this call (the same integers in the same order, so
 * the same result either way). */
static void job_prepare(matmul_job *job, const lb_tensor *w, const float *x, int n, float *y,
                        const lb_kernel_set *k, int threads, lb_packed **temporary)
{
    const lb_type_traits *tr = lb_type_traits_of(w->type);
    const lb_packed *packed = NULL;
    *temporary = NULL;
    if (lb_repack_supported(w) && !(packed = lb_tensor_packed(w)))
        packed = *temporary = lb_repack(w);
    /* Enough tasks to balance across threads, few enough that each amortizes its dispatch;
     * whole 4-row tiles of the F32 kernels, whole groups of packed rows. */
    int64_t per = w->ne[1] / ((int64_t)threads * 8);
    if (per < 4)
        per = 4;
    int unit = packed ? LB_PACK_ROWS : 4;
    per = (per + unit - 1) / unit * unit;
    *job = (matmul_job){w, x, y, n, (int)per, lb_tensor_row_bytes(w), tr->dot, NULL,
                        0, 0, 0, 0, 0, 0, 0, 0};
    if (w->type == LB_TYPE_F32 && !w->qlayout)
        job->gemm = k->gemm_f32;
    /* Batches smaller than a tile (decode) run the per-token kernels: a lane of the tile's
     * combination is the per-token loop, so a token's result is the same either way. Packed
     * GGUF blocks keep their activations token by token (as their kernels read them). */
    job->lanes = n >= LB_QTILE && !packed ? LB_QTILE : 1;
    if (packed) {
        job->packed = packed;
        job->pdot = w->type == LB_TYPE_Q8_0 ? k->pdot_q8_0 : k->pdot_q4_0;
        job->quantize = k->quantize_q8;
    }
    const lb_qlayout *L = w->qlayout;
    if (L)
        job->qtile = job->lanes > 1 ? k->qdot_tile[L->bits] : k->qdot_blocks[L->bits];
}

/* Quantizes the job's activations into buffers it then owns. */
static void job_quantize(lb_pool *pool, matmul_job *job)
{
    const lb_qlayout *L = job->w->qlayout;
    int n = job->n;
    /* Whole tiles: the padding tokens' activations are zeros, their outputs dropped. */
    size_t tiles = (size_t)(n > 0 ? (n + job->lanes - 1) / job->lanes : 1);
    size_t nb = (size_t)(L ? L->n_blocks : (int)(job->w->ne[0] / 32)) * tiles * (size_t)job->lanes;
    bool padded = n % job->lanes != 0;
    job->xq = padded ? lb_calloc(nb, 32) : lb_malloc(nb * 32);
    job->xd = padded ? lb_calloc(nb, sizeof(float)) : lb_malloc(nb * sizeof(float));
    job->xsum = padded ? lb_calloc(nb, sizeof(int32_t)) : lb_malloc(nb * sizeof(int32_t));
    lb_pool_run(pool, (n + QUANT_TOKENS - 1) / QUANT_TOKENS, quantize_task, job);
}

/* Packed GGUF weights of the same width read the same activations. */
static bool same_activations(const matmul_job *a, const matmul_job *b)
{
    return a->packed && b->packed && a->w->ne[0] == b->w->ne[0];
}

/* Several weights' jobs run as one: task t belongs to the job whose range holds it. */
typedef struct {
    const matmul_job *jobs;
    int count;
    int first[LB_MATMUL_MAX + 1];   /* first task of each job; first[count]: all tasks */
} multi_job;

static void multi_task(void *ctx, int task, int thread)
{
    const multi_job *mj = ctx;
    int i = 0;
    while (task >= mj->first[i + 1])
        i++;
    matmul_task((void *)&mj->jobs[i], task - mj->first[i], thread);
}

static void matmul_with(lb_pool *pool, int count, const lb_tensor *const *w, const float *x,
                        int n, float *const *y, const lb_kernel_set *k)
{
    matmul_job jobs[LB_MATMUL_MAX];
    lb_packed *temporary[LB_MATMUL_MAX];
    bool owner[LB_MATMUL_MAX] = {false};
    multi_job mj = {jobs, count, {0}};
    for (int i = 0; i < count; i++) {
        job_prepare(&jobs[i], w[i], x, n, y[i], k, lb_pool_size(pool), &temporary[i]);
        if (w[i]->qlayout || jobs[i].packed) {
            int from = -1;
            for (int j = 0; j < i && from < 0; j++)
                if (owner[j] && same_activations(&jobs[j], &jobs[i]))
                    from = j;
            if (from >= 0) {
                jobs[i].xq = jobs[from].xq;
                jobs[i].xd = jobs[from].xd;
                jobs[i].xsum = jobs[from].xsum;
            } else {
                job_quantize(pool, &jobs[i]);
                owner[i] = true;
            }
        }
        int64_t out = w[i]->ne[1];
        mj.first[i + 1] = mj.first[i] + (int)((out + jobs[i].rows_per_task - 1) /
                                              jobs[i].rows_per_task);
    }
    lb_pool_run(pool, mj.first[count], multi_task, &mj);
    for (int i = 0; i < count; i++) {
        free(temporary[i]);
        if (owner[i]) {
            free(jobs[i].xq);
            free(jobs[i].xd);
            free(jobs[i].xsum);
        }
    }
}
