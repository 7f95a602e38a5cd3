/* Building blocks of the forward passes: norms, RoPE, attention over the KV cache, activations,
 * and the output head. All work on rows of fp32 activations. */
#include "model/engine_internal.h"
#include "tensor/kernels/kernels.h"
#include "tensor/matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void op_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps)
{
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        float *o = out + (size_t)t * dim;
        float ss = 0;
        for (int i = 0; i < dim; i++)
            ss += xr[i] * xr[i];
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++)
            o[i] = xr[i] * scale * w[i];
    }
}

void op_layernorm(float *out, const float *x, const float *w, const float *b, int n, int dim,
                  float eps)
{
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        float *o = out + (size_t)t * dim;
        float mean = 0, var = 0;
        for (int i = 0; i < dim; i++)
            mean += xr[i];
        mean /= (float)dim;
        for (int i = 0; i < dim; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        float scale = 1.0f / sqrtf(var / (float)dim + eps);
        for (int i = 0; i < dim; i++)
            o[i] = (xr[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
    }
}

void op_add_bias(float *x, const float *b, int n, int dim)
{
    for (int t = 0; t < n; t++)
        for (int i = 0; i < dim; i++)
            x[(size_t)t * dim + i] += b[i];
}

void op_add(float *x, const float *y, size_t count)
{
    for (size_t i = 0; i < count; i++)
        x[i] += y[i];
}

void op_linear(lb_engine *e, const lb_tensor *w, const lb_tensor *bias, const float *x, int n,
               float *y)
{
    lb_matmul(e->pool, w, x, n, y);
    if (bias)
        op_add_bias(y, bias->data, n, (int)w->ne[1]);
}

void op_rope(const lb_engine *e, float *vecs, int n_heads, const lb_batch *b)
{
    const lb_config *c = &e->m->cfg;
    int hd = c->head_dim, half = hd / 2;
    for (int t = 0; t < b->n; t++) {
        for (int i = 0; i < half; i++) {
            float angle = (float)b->pos[t] * e->rope_freqs[i];
            float cs = cosf(angle), sn = sinf(angle);
            for (int h = 0; h < n_heads; h++) {
                float *v = vecs + ((size_t)t * n_heads + h) * hd;
                int a = c->rope_style == LB_ROPE_ADJACENT ? 2 * i : i;
                int z = c->rope_style == LB_ROPE_ADJACENT ? 2 * i + 1 : i + half;
                float v0 = v[a], v1 = v[z];
                v[a] = v0 * cs - v1 * sn;
                v[z] = v0 * sn + v1 * cs;
            }
        }
    }
}

void op_swiglu(float *gate, const float *up, size_t count)
{
    lb_silu_mul(gate, up, (int64_t)count);
}

/* GPT-2's "gelu_new": the tanh approximation. */
void op_gelu(float *x, size_t count)
{
    const float k = 0.7978845608028654f;   /* sqrt(2/pi) */
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

typedef struct {
    int t0, n, seq, p0;   /* batch rows t0..t0+n-1, one sequence, positions p0..p0+n-1 */
} attn_run;

typedef struct {
    lb_engine *e;
    int layer;
    const lb_batch *b;
    const attn_run *runs;   /* rows the blocked path (attend_run_head) has done */
    int n_runs;
    int hpt;                /* query heads per task of the token path */
} attn_job;

/* Positions of one head's cached keys or values the token path reads at a time. */
#define KV_BLOCK 64

/* Rows p0..p0+n-1 of kv head kvh's cached keys or values (consecutive in the cache), as fp32:
 * in place for an F32 cache, expanded into tmp[n · head_dim] for an F16 or Q8 one (scale is
 * the Q8 cache's scales, k_scale or v_scale with cache). */
static inline const float *cached_rows(const lb_engine *e, const void *cache, const float *scale,
                                       int seq, int layer, int kvh, int p0, int n, float *tmp)
{
    int hd = e->m->cfg.head_dim;
    size_t i = kv_index(e, seq, layer, kvh, p0);
    if (e->kv_type == LB_KV_F32)
        return (const float *)cache + i;
    if (e->kv_type == LB_KV_F16) {
        lb_fp16_row_to_fp32((const uint16_t *)cache + i, tmp, (int64_t)n * hd);
        return tmp;
    }
    const int8_t *q = (const int8_t *)cache + i;
    const float *d = scale + i / (size_t)hd;
    for (int r = 0; r < n; r++)
        for (int j = 0; j < hd; j++)
            tmp[(size_t)r * hd + j] = d[r] * (float)q[(size_t)r * hd + j];
    return tmp;
}

/* Consecutive cached rows of one kv head as the token path's kernels read them, in the
 * cache's own type: the kernels widen fp16 and int8 (times each row's scale) as they go. */
typedef struct {
    lb_kv_type type;
    const void *rows;
    const float *scale;   /* Q8: each row's */
} kv_block;

static inline kv_block cached_block(const lb_engine *e, const void *cache, const float *scale,
                                    int seq, int layer, int kvh, int p0)
{
    size_t i = kv_index(e, seq, layer, kvh, p0);
    const char *rows = (const char *)cache + i * kv_elem_bytes(e->kv_type);
    return (kv_block){e->kv_type, rows,
                      e->kv_type == LB_KV_Q8 ? scale + i / (size_t)e->m->cfg.head_dim : NULL};
}

/* s[i] = q · row i of the block, for its n rows. */
static inline void block_dots(kv_block k, int n, int hd, const float *q, float *s)
{
    if (k.type == LB_KV_F16)
        lb_rows_dot_f16(k.rows, (size_t)hd, n, q, hd, s);
    else if (k.type == LB_KV_Q8)
        lb_rows_dot_q8(k.rows, k.scale, (size_t)hd, n, q, hd, s);
    else
        lb_rows_dot_f32(k.rows, (size_t)hd, n, q, hd, s);
}

/* out += Σ_i w[i] · row i of the block, rows in order. */
static inline void block_axpy(kv_block v, int n, int hd, const float *w, float *out)
{
    if (v.type == LB_KV_F16)
        lb_rows_axpy_f16(w, v.rows, (size_t)hd, n, hd, out);
    else if (v.type == LB_KV_Q8)
        lb_rows_axpy_q8(w, v.rows, v.scale, (size_t)hd, n, hd, out);
    else
        lb_rows_axpy_f32(w, v.rows, (size_t)hd, n, hd, out);
}

/* Floats of lb_engine.kv_rows per thread: the blocked path's 2 · att_run_ldk head rows. */
static inline size_t kv_rows_per_thread(const lb_engine *e)
{
    return 2 * (size_t)e->att_run_ldk * (size_t)e->m->cfg.head_dim;
}

/* This thread's room for expanded F16 or Q8 rows (see lb_engine.kv_rows). */
static inline float *thread_rows(const lb_engine *e, int thread)
{
    return e->kv_rows + (size_t)thread * kv_rows_per_thread(e);
}

/* The token path's query heads per task: several heads per task, so that a batch of few
 * tokens still makes enough tasks for the threads without each reading only a sliver of the
 * cache; at most ATT_CHUNK_HEADS (the scores scratch holds that many). */
static int heads_per_task(const lb_engine *e, int n_tokens)
{
    int n_heads = e->m->cfg.n_heads, threads = lb_pool_size(e->pool);
    int chunks = (2 * threads + n_tokens - 1) / n_tokens;
    if (chunks < (n_heads + ATT_CHUNK_HEADS - 1) / ATT_CHUNK_HEADS)
        chunks = (n_heads + ATT_CHUNK_HEADS - 1) / ATT_CHUNK_HEADS;
    if (chunks > n_heads)
        chunks = n_heads;
    return (n_heads + chunks - 1) / chunks;
}

/* Token t's query heads h0..h1-1 against every cached position of its sequence. Each head's
 * arithmetic is the one-head loop's (dot, softmax, weighted sum in position order); the
 * loops only run over each kv head's keys, then values, in blocks of consecutive positions,
 * read once for all the query heads that share them. */
static void attention_task(void *ctx, int task, int thread)
{
    const attn_job *j = ctx;
    lb_engine *e = j->e;
    const lb_config *c = &e->m->cfg;
    int hd = c->head_dim, chunks = (c->n_heads + j->hpt - 1) / j->hpt;
    int t = task / chunks, h0 = task % chunks * j->hpt;
    int h1 = h0 + j->hpt < c->n_heads ? h0 + j->hpt : c->n_heads;
    for (int r = 0; r < j->n_runs; r++)
        if (t >= j->runs[r].t0 && t < j->runs[r].t0 + j->runs[r].n)
            return;
    int group = c->n_heads / c->n_kv_heads;
    int seq = j->b->seq[t], pos = j->b->pos[t];
    float *scores = e->att_scores + (size_t)thread * ATT_CHUNK_HEADS * (size_t)e->n_ctx;
    float scale = 1.0f / sqrtf((float)hd), max[ATT_CHUNK_HEADS], inv_sum[ATT_CHUNK_HEADS];
    for (int h = h0; h < h1; h++)
        max[h - h0] = -INFINITY;
    for (int h = h0; h < h1;) {   /* the query heads of one kv head at a time */
        int kvh = h / group, hn = (kvh + 1) * group < h1 ? (kvh + 1) * group : h1;
        for (int p0 = 0; p0 <= pos; p0 += KV_BLOCK) {
            int np = pos + 1 - p0 < KV_BLOCK ? pos + 1 - p0 : KV_BLOCK;
            kv_block k = cached_block(e, e->k_cache, e->k_scale, seq, j->layer, kvh, p0);
            for (int g = h; g < hn; g++) {
                const float *q = e->q + ((size_t)t * c->n_heads + g) * hd;
                float *sg = scores + (size_t)(g - h0) * e->n_ctx + p0;
                block_dots(k, np, hd, q, sg);
                for (int i = 0; i < np; i++) {
                    sg[i] *= scale;
                    if (sg[i] > max[g - h0])
                        max[g - h0] = sg[i];
                }
            }
        }
        h = hn;
    }
    for (int h = h0; h < h1; h++) {
        float *sh = scores + (size_t)(h - h0) * e->n_ctx;
        inv_sum[h - h0] = 1.0f / lb_exp_sum(sh, pos + 1, max[h - h0]);
        memset(e->att + ((size_t)t * c->n_heads + h) * hd, 0, (size_t)hd * sizeof(float));
    }
    for (int h = h0; h < h1;) {
        int kvh = h / group, hn = (kvh + 1) * group < h1 ? (kvh + 1) * group : h1;
        for (int p0 = 0; p0 <= pos; p0 += KV_BLOCK) {
            int np = pos + 1 - p0 < KV_BLOCK ? pos + 1 - p0 : KV_BLOCK;
            kv_block v = cached_block(e, e->v_cache, e->v_scale, seq, j->layer, kvh, p0);
            for (int g = h; g < hn; g++) {
                const float *sg = scores + (size_t)(g - h0) * e->n_ctx + p0;
                float w[KV_BLOCK];
                for (int i = 0; i < np; i++)
                    w[i] = sg[i] * inv_sum[g - h0];
                block_axpy(v, np, hd, w, e->att + ((size_t)t * c->n_heads + g) * hd);
            }
        }
        h = hn;
    }
}

/* ---- attention for runs of consecutive positions (prefill, calibration) ------------------ */

/* The run kernels below are compiled once per instruction set and picked at load time, so the
 * vectorizer can use the lanes the CPU has (the rest of the file stays portable). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define RUN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RUN_CLONES
#endif

#define RUN_LANES 16   /* keys (scores) or head dimensions (outputs) per inner loop */
#define RUN_QUERIES 4  /* queries sharing each load of keys or values */
#define RUN_MIN 16     /* shorter runs go token by token */


typedef struct {
    lb_engine *e;
    int layer;
    const attn_run *runs;
    int ldk;              /* scratch row length: the longest run's keys, rounded up */
} run_job;

/* RUN_LANES floats as one value of GCC's (and clang's) vector extension: each clone lowers it
 * to the widest registers it has. Loads and stores go through memcpy (no alignment needed). */
typedef float lanes __attribute__((vector_size(RUN_LANES * sizeof(float))));

/* Macros rather than functions: a vector passed by value would change the ABI per clone. */
#define LANES_LOAD(v, p) memcpy(&(v), (p), sizeof(lanes))
#define LANES_STORE(p, v) memcpy((p), &(v), sizeof(lanes))

/* Steps both run kernels share. */

/* K of the head transposed into kT[hd][ldk] (keys along the rows), zero past the last key. */
static inline void run_transpose_keys(const float *const *k_rows, int np, int hd, float *kT,
                                      int ldk)
{
    for (int d = 0; d < hd; d++) {
        float *row = kT + (size_t)d * ldk;
        for (int p = 0; p < np; p++)
            row[p] = k_rows[p][d];
        for (int p = np; p < ldk; p++)
            row[p] = 0.0f;
    }
}

/* Softmax over the scores of each of the group's m queries (query r sees keys 0 .. p_first +
 * r), zeros up to lim; the rows of S past m become all zeros. */
static inline void run_softmax_group(float *S, int ldk, int m, int p_first, int lim)
{
    for (int r = 0; r < RUN_QUERIES; r++) {
        float *sr = S + (size_t)r * ldk;
        if (r >= m) {
            memset(sr, 0, (size_t)lim * sizeof(float));
            continue;
        }
        int pos = p_first + r;
        float max = -INFINITY;
        for (int p = 0; p <= pos; p++)
            if (sr[p] > max)
                max = sr[p];
        float inv_sum = 1.0f / lb_exp_sum(sr, pos + 1, max);
        for (int p = 0; p <= pos; p++)
            sr[p] *= inv_sum;
        for (int p = pos + 1; p < lim; p++)
            sr[p] = 0.0f;
    }
}

/* The weighted sums of V for head dimensions d0 .. hd-1 past the last full vector. */
static inline void run_sum_tail(const float *S, int ldk, const float *const *v_rows, int m,
                                int lim, int d0, int hd, float *out, size_t out_stride)
{
    for (; d0 < hd; d0++)
        for (int r = 0; r < m; r++) {
            const float *sr = S + (size_t)r * ldk;
            float acc = 0;
            for (int p = 0; p < lim; p++)
                acc += sr[p] * v_rows[p][d0];
            out[(size_t)r * out_stride + d0] = acc;
        }
}

/* One head over one run: K of the head transposed (keys along the lanes), scores for
 * RUN_QUERIES queries at a time, softmax row by row, then the weighted sums of V with the head's
 * dimensions along the lanes. Each score is the same dot product times the scale as in
 * attention_task, and each output the same sum over positions in the same order; only the
 * order inside the dot products differs. */
RUN_CLONES static void attend_run_head_generic(const float *restrict q, size_t q_stride,
                                       const float *const *k_rows, const float *const *v_rows,
                                       int n, int p0, int hd, float scale, float *restrict kT,
                                       float *restrict S, int ldk, float *restrict out,
                                       size_t out_stride)
{
    run_transpose_keys(k_rows, p0 + n, hd, kT, ldk);
    float *s0 = S, *s1 = S + ldk, *s2 = S + 2 * (size_t)ldk, *s3 = S + 3 * (size_t)ldk;
    for (int i0 = 0; i0 < n; i0 += RUN_QUERIES) {
        int m = n - i0 < RUN_QUERIES ? n - i0 : RUN_QUERIES;
        int lim = p0 + i0 + m;   /* keys seen by the last query of the group */
        const float *q0 = q + (size_t)i0 * q_stride;
        const float *q1 = q + (size_t)(i0 + (m > 1 ? 1 : 0)) * q_stride;
        const float *q2 = q + (size_t)(i0 + (m > 2 ? 2 : 0)) * q_stride;
        const float *q3 = q + (size_t)(i0 + (m > 3 ? 3 : 0)) * q_stride;
        for (int p = 0; p < lim; p += RUN_LANES) {
            lanes a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int d = 0; d < hd; d++) {
                lanes k;
                LANES_LOAD(k, kT + (size_t)d * ldk + p);
                a0 += q0[d] * k;
                a1 += q1[d] * k;
                a2 += q2[d] * k;
                a3 += q3[d] * k;
            }
            a0 *= scale;
            a1 *= scale;
            a2 *= scale;
            a3 *= scale;
            LANES_STORE(s0 + p, a0);
            LANES_STORE(s1 + p, a1);
            LANES_STORE(s2 + p, a2);
            LANES_STORE(s3 + p, a3);
        }
        run_softmax_group(S, ldk, m, p0 + i0, lim);
        int d0 = 0;
        for (; d0 + RUN_LANES <= hd; d0 += RUN_LANES) {
            lanes o0 = {0}, o1 = {0}, o2 = {0}, o3 = {0};
            for (int p = 0; p < lim; p++) {
                lanes v;
                LANES_LOAD(v, v_rows[p] + d0);
                o0 += s0[p] * v;
                o1 += s1[p] * v;
                o2 += s2[p] * v;
                o3 += s3[p] * v;
            }
            const lanes o[RUN_QUERIES] = {o0, o1, o2, o3};
            for (int r = 0; r < m; r++)
                LANES_STORE(out + (size_t)(i0 + r) * out_stride + d0, o[r]);
        }
        run_sum_tail(S, ldk, v_rows, m, lim, d0, hd, out + (size_t)i0 * out_stride, out_stride);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RUN_AVX2 __attribute__((target("avx2,fma")))

/* attend_run_head_generic written out for AVX2 + FMA: 16 keys (two registers) by 4 queries
 * per step of the scores, 16 head dimensions by 4 queries per step of the sums, so that eight
 * independent accumulators hide the FMA latency and nothing spills. */
RUN_AVX2 static void attend_run_head_avx2(const float *restrict q, size_t q_stride,
                                          const float *const *k_rows,
                                          const float *const *v_rows, int n, int p0, int hd,
                                          float scale, float *restrict kT, float *restrict S,
                                          int ldk, float *restrict out, size_t out_stride)
{
    run_transpose_keys(k_rows, p0 + n, hd, kT, ldk);
    float *sr[RUN_QUERIES];
    for (int r = 0; r < RUN_QUERIES; r++)
        sr[r] = S + (size_t)r * ldk;
    __m256 vs = _mm256_set1_ps(scale);
    for (int i0 = 0; i0 < n; i0 += RUN_QUERIES) {
        int m = n - i0 < RUN_QUERIES ? n - i0 : RUN_QUERIES;
        int lim = p0 + i0 + m;
        const float *qr[RUN_QUERIES];
        for (int r = 0; r < RUN_QUERIES; r++)
            qr[r] = q + (size_t)(i0 + (r < m ? r : 0)) * q_stride;
        for (int p = 0; p < lim; p += 16) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            const float *kd = kT + p;
            for (int d = 0; d < hd; d++, kd += ldk) {
                __m256 k0 = _mm256_loadu_ps(kd), k1 = _mm256_loadu_ps(kd + 8);
                __m256 x = _mm256_broadcast_ss(qr[0] + d);
                a0 = _mm256_fmadd_ps(x, k0, a0);
                b0 = _mm256_fmadd_ps(x, k1, b0);
                x = _mm256_broadcast_ss(qr[1] + d);
                a1 = _mm256_fmadd_ps(x, k0, a1);
                b1 = _mm256_fmadd_ps(x, k1, b1);
                x = _mm256_broadcast_ss(qr[2] + d);
                a2 = _mm256_fmadd_ps(x, k0, a2);
                b2 = _mm256_fmadd_ps(x, k1, b2);
                x = _mm256_broadcast_ss(qr[3] + d);
                a3 = _mm256_fmadd_ps(x, k0, a3);
                b3 = _mm256_fmadd_ps(x, k1, b3);
            }
            _mm256_storeu_ps(sr[0] + p, _mm256_mul_ps(a0, vs));
            _mm256_storeu_ps(sr[0] + p + 8, _mm256_mul_ps(b0, vs));
            _mm256_storeu_ps(sr[1] + p, _mm256_mul_ps(a1, vs));
            _mm256_storeu_ps(sr[1] + p + 8, _mm256_mul_ps(b1, vs));
            _mm256_storeu_ps(sr[2] + p, _mm256_mul_ps(a2, vs));
            _mm256_storeu_ps(sr[2] + p + 8, _mm256_mul_ps(b2, vs));
            _mm256_storeu_ps(sr[3] + p, _mm256_mul_ps(a3, vs));
            _mm256_storeu_ps(sr[3] + p + 8, _mm256_mul_ps(b3, vs));
        }
        run_softmax_group(S, ldk, m, p0 + i0, lim);
        int d0 = 0;
        for (; d0 + 16 <= hd; d0 += 16) {
            __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
            __m256 u0 = o0, u1 = o0, u2 = o0, u3 = o0;
            for (int p = 0; p < lim; p++) {
                const float *vp = v_rows[p] + d0;
                __m256 v0 = _mm256_loadu_ps(vp), v1 = _mm256_loadu_ps(vp + 8);
                __m256 w = _mm256_broadcast_ss(sr[0] + p);
                o0 = _mm256_fmadd_ps(w, v0, o0);
                u0 = _mm256_fmadd_ps(w, v1, u0);
                w = _mm256_broadcast_ss(sr[1] + p);
                o1 = _mm256_fmadd_ps(w, v0, o1);
                u1 = _mm256_fmadd_ps(w, v1, u1);
                w = _mm256_broadcast_ss(sr[2] + p);
                o2 = _mm256_fmadd_ps(w, v0, o2);
                u2 = _mm256_fmadd_ps(w, v1, u2);
                w = _mm256_broadcast_ss(sr[3] + p);
                o3 = _mm256_fmadd_ps(w, v0, o3);
                u3 = _mm256_fmadd_ps(w, v1, u3);
            }
            const __m256 lo[RUN_QUERIES] = {o0, o1, o2, o3}, hi[RUN_QUERIES] = {u0, u1, u2, u3};
            for (int r = 0; r < m; r++) {
                float *o = out + (size_t)(i0 + r) * out_stride + d0;
                _mm256_storeu_ps(o, lo[r]);
                _mm256_storeu_ps(o + 8, hi[r]);
            }
        }
        run_sum_tail(S, ldk, v_rows, m, lim, d0, hd, out + (size_t)i0 * out_stride, out_stride);
    }
}
#endif

static void attend_run_head(const float *q, size_t q_stride, const float *const *k_rows,
                            const float *const *v_rows, int n, int p0, int hd, float scale,
                            float *kT, float *S, int ldk, float *out, size_t out_stride)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        attend_run_head_avx2(q, q_stride, k_rows, v_rows, n, p0, hd, scale, kT, S, ldk, out,
                             out_stride);
        return;
    }
#endif
    attend_run_head_generic(q, q_stride, k_rows, v_rows, n, p0, hd, scale, kT, S, ldk, out,
                            out_stride);
}

static void run_task(void *ctx, int task, int thread)
{
    const run_job *j = ctx;
    lb_engine *e = j->e;
    const lb_config *c = &e->m->cfg;
    int hd = c->head_dim, h = task % c->n_heads;
    const attn_run *run = &j->runs[task / c->n_heads];
    int kvh = h / (c->n_heads / c->n_kv_heads), np = run->p0 + run->n;
    size_t per_thread = (size_t)(hd + RUN_QUERIES) * (size_t)j->ldk;
    float *kT = e->att_run + (size_t)thread * per_thread;
    float *S = kT + (size_t)hd * j->ldk;
    const float **k_rows = e->att_rows + (size_t)thread * 2 * (size_t)j->ldk;
    const float **v_rows = k_rows + j->ldk;
    float *rows = e->kv_type != LB_KV_F32 ? thread_rows(e, thread) : NULL;
    const float *k = cached_rows(e, e->k_cache, e->k_scale, run->seq, j->layer, kvh, 0, np, rows);
    const float *v = cached_rows(e, e->v_cache, e->v_scale, run->seq, j->layer, kvh, 0, np,
                                 rows ? rows + (size_t)j->ldk * hd : NULL);
    for (int p = 0; p < np; p++) {
        k_rows[p] = k + (size_t)p * hd;
        v_rows[p] = v + (size_t)p * hd;
    }
    size_t qd = (size_t)c->n_heads * hd;
    attend_run_head(e->q + (size_t)run->t0 * qd + (size_t)h * hd, qd, k_rows, v_rows, run->n,
                    run->p0, hd, 1.0f / sqrtf((float)hd), kT, S, j->ldk,
                    e->att + (size_t)run->t0 * qd + (size_t)h * hd, qd);
}

/* One head row to int8 over its own scale, max|x| / 127, rounded as lb_q8_round rounds
 * activations (an all-zero row keeps scale 0 and zeros). */
static void q8_row(const float *x, int n, int8_t *q, float *scale)
{
    float amax = 0;
    for (int j = 0; j < n; j++)
        amax = lb_absmax(amax, x[j]);
    float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; j++)
        q[j] = (int8_t)lb_q8_round(x[j] * inv);
    *scale = d;
}

/* Writes one token's keys or values (kv_dim floats, head after head) into the cache at its
 * sequence and position: each head's slice into that head's rows. */
static void cache_store(lb_engine *e, void *cache, float *scale, const float *src, int seq,
                        int layer, int pos)
{
    int hd = e->m->cfg.head_dim;
    for (int kvh = 0; kvh < e->m->cfg.n_kv_heads; kvh++) {
        size_t i = kv_index(e, seq, layer, kvh, pos);
        const float *head = src + (size_t)kvh * hd;
        if (e->kv_type == LB_KV_F16)
            lb_fp32_row_to_fp16(head, (uint16_t *)cache + i, hd);
        else if (e->kv_type == LB_KV_Q8)
            q8_row(head, hd, (int8_t *)cache + i, scale + i / (size_t)hd);
        else
            memcpy((float *)cache + i, head, (size_t)hd * sizeof(float));
    }
}

void op_attention(lb_engine *e, int layer, const lb_batch *b)
{
    for (int t = 0; t < b->n; t++) {
        const float *k = e->k + (size_t)t * e->kv_dim, *v = e->v + (size_t)t * e->kv_dim;
        cache_store(e, e->k_cache, e->k_scale, k, b->seq[t], layer, b->pos[t]);
        cache_store(e, e->v_cache, e->v_scale, v, b->seq[t], layer, b->pos[t]);
    }
    /* Runs of RUN_MIN or more tokens of one sequence at consecutive positions take the
     * blocked path; the other tokens go one by one. */
    int n_heads = e->m->cfg.n_heads, n_runs = 0, longest = 0;
    attn_run *runs = NULL;
    for (int t = 0; t < b->n;) {
        int u = t + 1;
        while (u < b->n && b->seq[u] == b->seq[t] && b->pos[u] == b->pos[u - 1] + 1)
            u++;
        if (u - t >= RUN_MIN) {
            runs = lb_realloc(runs, (size_t)(n_runs + 1) * sizeof *runs);
            runs[n_runs++] = (attn_run){t, u - t, b->seq[t], b->pos[t]};
            if (b->pos[u - 1] + 1 > longest)
                longest = b->pos[u - 1] + 1;
        }
        t = u;
    }
    int hd = e->m->cfg.head_dim;
    size_t threads = (size_t)lb_pool_size(e->pool);
    int ldk = n_runs ? (longest + RUN_LANES - 1) / RUN_LANES * RUN_LANES : 1;
    if (ldk > e->att_run_ldk) {   /* the first call, or a longer run than any before */
        free(e->att_run);
        free(e->att_rows);
        free(e->kv_rows);
        e->att_run = lb_malloc(threads * (size_t)(hd + RUN_QUERIES) * (size_t)ldk *
                               sizeof(float));
        e->att_rows = lb_malloc(threads * 2 * (size_t)ldk * sizeof(float *));
        e->att_run_ldk = ldk;
        e->kv_rows = e->kv_type != LB_KV_F32
                         ? lb_malloc(threads * kv_rows_per_thread(e) * sizeof(float))
                         : NULL;
    }
    if (n_runs) {
        run_job rj = {e, layer, runs, ldk};
        lb_pool_run(e->pool, n_runs * n_heads, run_task, &rj);
    }
    int n_single = b->n;
    for (int r = 0; r < n_runs; r++)
        n_single -= runs[r].n;
    attn_job job = {e, layer, b, runs, n_runs, heads_per_task(e, n_single > 0 ? n_single : 1)};
    if (n_single > 0)
        lb_pool_run(e->pool, b->n * ((n_heads + job.hpt - 1) / job.hpt), attention_task, &job);
    free(runs);
}

void op_logits(lb_engine *e, const lb_batch *b, float *logits)
{
    const lb_model *m = e->m;
    int dim = m->cfg.dim, n_out = 0;
    /* Gather the rows that want logits, so the head runs once over just those. */
    for (int t = 0; t < b->n; t++) {
        bool want = b->want_logits ? b->want_logits[t] : t == b->n - 1;
        if (want) {
            memmove(e->xb + (size_t)n_out * dim, e->x + (size_t)t * dim, (size_t)dim * sizeof(float));
            n_out++;
        }
    }
    if (!n_out)
        return;
    if (m->cfg.arch == LB_ARCH_GPT2)
        op_layernorm(e->xb, e->xb, m->out_norm->data, m->out_norm_b ? m->out_norm_b->data : NULL,
                     n_out, dim, m->cfg.norm_eps);
    else
        op_rmsnorm(e->xb, e->xb, m->out_norm->data, n_out, dim, m->cfg.norm_eps);
    lb_matmul(e->pool, m->output, e->xb, n_out, logits);
}
