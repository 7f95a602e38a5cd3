/* Engine set-up, batch validation, scratch sizing and dispatch to the architecture's forward. */
#include "model/engine_internal.h"
#include "core/log.h"
#include "tensor/matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* RoPE inverse frequencies, with Llama 3.1's scaling of the long wavelengths when configured. */
static void rope_frequencies(const lb_config *c, float *freqs)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = pow((double)c->rope_theta, -2.0 * i / (double)c->head_dim);
        if (c->rope_scaling_factor > 0 && c->rope_orig_ctx > 0) {
            double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            double lo_wavelen = c->rope_orig_ctx / lo, hi_wavelen = c->rope_orig_ctx / hi;
            if (wavelen > lo_wavelen) {
                f /= c->rope_scaling_factor;
            } else if (wavelen >= hi_wavelen && hi != lo) {
                double smooth = (c->rope_orig_ctx / wavelen - lo) / (hi - lo);
                f = (1.0 - smooth) * f / c->rope_scaling_factor + smooth * f;
            }
        }
        freqs[i] = (float)f;
    }
}

static int g_kv_type = -1;   /* -1: not set, LOWBIT_KV_CACHE decides */

void lb_engine_set_kv_type(lb_kv_type t)
{
    g_kv_type = (int)t;
}

int lb_kv_type_parse(const char *name, lb_kv_type *out)
{
    if (strcmp(name, "f32") == 0 || strcmp(name, "F32") == 0)
        *out = LB_KV_F32;
    else if (strcmp(name, "f16") == 0 || strcmp(name, "F16") == 0)
        *out = LB_KV_F16;
    else if (strcmp(name, "q8") == 0 || strcmp(name, "Q8") == 0)
        *out = LB_KV_Q8;
    else
        return -1;
    return 0;
}

const char *lb_kv_type_name(lb_kv_type t)
{
    return t == LB_KV_F16 ? "f16" : t == LB_KV_Q8 ? "q8" : "f32";
}

lb_kv_type lb_engine_kv_type(void)
{
    if (g_kv_type >= 0)
        return (lb_kv_type)g_kv_type;
    const char *env = getenv("LOWBIT_KV_CACHE");
    lb_kv_type t = LB_KV_F32;
    if (env && *env && lb_kv_type_parse(env, &t))
        lb_log_warn("LOWBIT_KV_CACHE=%s: expected f32, f16 or q8; using f32", env);
    return t;
}

int lb_engine_create(const lb_model *m, int n_ctx, int n_seq, int n_threads, lb_engine **out,
                     lb_error *err)
{
    *out = NULL;
    const lb_config *c = &m->cfg;
    if (n_ctx <= 0)
        n_ctx = c->max_ctx;
    if (n_ctx > c->max_ctx && c->arch == LB_ARCH_GPT2)
        return lb_fail(err, "context %d is longer than the model's %d learned positions", n_ctx,
                       c->max_ctx);
    if (n_seq <= 0 || n_seq > 4096)
        return lb_fail(err, "sequence slots must be 1..4096 (got %d)", n_seq);
    size_t kv_dim = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    lb_kv_type type = lb_engine_kv_type();
    size_t elem = kv_elem_bytes(type);
    double bytes = 2.0 * n_seq * (double)c->n_layers * n_ctx * (double)kv_dim *
                   kv_bytes_per_elem(type, c->head_dim);
    if (bytes > 64.0 * (1ull << 30))
        return lb_fail(err, "a KV cache for %d sequences of %d tokens needs %.1f GiB; ask for a "
                       "shorter context (--ctx)", n_seq, n_ctx, bytes / (1ull << 30));
    lb_engine *e = lb_calloc(1, sizeof *e);
    e->m = m;
    e->n_ctx = n_ctx;
    e->n_seq = n_seq;
    e->kv_dim = (int)kv_dim;
    size_t cache = (size_t)n_seq * (size_t)c->n_layers * (size_t)n_ctx * kv_dim;
    e->kv_type = type;
    e->k_cache = lb_calloc(cache, elem);
    e->v_cache = lb_calloc(cache, elem);
    if (type == LB_KV_Q8) {
        e->k_scale = lb_calloc(cache / (size_t)c->head_dim, sizeof(float));
        e->v_scale = lb_calloc(cache / (size_t)c->head_dim, sizeof(float));
    }
    e->rope_freqs = lb_calloc((size_t)c->head_dim / 2 + 1, sizeof(float));
    rope_frequencies(c, e->rope_freqs);
    e->pool = lb_pool_create(n_threads);
    e->att_scores = lb_calloc((size_t)lb_pool_size(e->pool) * ATT_CHUNK_HEADS * (size_t)n_ctx,
                              sizeof(float));
    *out = e;
    return 0;
}

void lb_engine_free(lb_engine *e)
{
    if (!e)
        return;
    lb_pool_free(e->pool);
    float *bufs[] = {e->k_cache, e->v_cache, e->k_scale, e->v_scale, e->rope_freqs, e->x, e->xb, e->xb2, e->q,
                     e->k, e->v, e->att, e->hb, e->hb2, e->att_scores};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(e->att_run);
    free(e->att_rows);
    free(e->kv_rows);
    free(e);
}

static void ensure_scratch(lb_engine *e, int n)
{
    if (n <= e->cap)
        return;
    const lb_config *c = &e->m->cfg;
    size_t qd = (size_t)c->n_heads * c->head_dim;
    size_t wide = (size_t)c->dim > qd ? (size_t)c->dim : qd;
    size_t sn = (size_t)n;
    e->x = lb_realloc(e->x, sn * c->dim * sizeof(float));
    e->xb = lb_realloc(e->xb, sn * wide * sizeof(float));
    e->xb2 = lb_realloc(e->xb2, sn * wide * sizeof(float));
    e->q = lb_realloc(e->q, sn * qd * sizeof(float));
    e->k = lb_realloc(e->k, sn * e->kv_dim * sizeof(float));
    e->v = lb_realloc(e->v, sn * e->kv_dim * sizeof(float));
    e->att = lb_realloc(e->att, sn * qd * sizeof(float));
    e->hb = lb_realloc(e->hb, sn * c->hidden_dim * sizeof(float));
    e->hb2 = lb_realloc(e->hb2, sn * c->hidden_dim * sizeof(float));
    e->cap = n;
}

static int check_batch(const lb_engine *e, const lb_batch *b, lb_error *err)
{
    const lb_config *c = &e->m->cfg;
    if (b->n <= 0)
        return lb_fail(err, "empty batch");
    for (int t = 0; t < b->n; t++) {
        if (b->token[t] < 0 || b->token[t] >= c->vocab_size)
            return lb_fail(err, "token id %d is outside the vocabulary (0..%d)", b->token[t],
                           c->vocab_size - 1);
        if (b->pos[t] < 0 || b->pos[t] >= e->n_ctx)
            return lb_fail(err, "position %d is outside the context of %d tokens", b->pos[t],
                           e->n_ctx);
        if (b->seq[t] < 0 || b->seq[t] >= e->n_seq)
            return lb_fail(err, "sequence %d is outside the %d slots", b->seq[t], e->n_seq);
    }
    return 0;
}

int lb_engine_forward(lb_engine *e, const lb_batch *b, float *logits, lb_error *err)
{
    if (check_batch(e, b, err))
        return -1;
    ensure_scratch(e, b->n);
    if (e->m->cfg.arch == LB_ARCH_GPT2)
        gpt2_forward(e, b, logits);
    else
        llama_forward(e, b, logits);
    return 0;
}

void lb_engine_set_capture(lb_engine *e, lb_capture_fn fn, void *user)
{
    e->capture = fn;
    e->capture_user = fn ? user : NULL;
}

void lb_engine_set_gemm(lb_engine *e, lb_sgemm_fn sgemm)
{
    e->sgemm = sgemm;
}

void block_linear(lb_engine *e, const lb_tensor *w, const lb_tensor *bias, const float *x, int n,
                  float *y)
{
    if (!e->sgemm || w->type != LB_TYPE_F32 || n < 16) {
        op_linear(e, w, bias, x, n, y);
        return;
    }
    int in = (int)w->ne[0], out = (int)w->ne[1];
    e->sgemm(n, out, in, x, w->data, y);
    if (bias)
        op_add_bias(y, bias->data, n, out);
}

void block_linears(lb_engine *e, int count, const lb_tensor *const *w,
                   const lb_tensor *const *bias, const float *x, int n, float *const *y)
{
    bool blas = false;
    for (int i = 0; i < count; i++)
        blas |= e->sgemm && w[i]->type == LB_TYPE_F32 && n >= 16;
    if (blas) {
        for (int i = 0; i < count; i++)
            block_linear(e, w[i], bias[i], x, n, y[i]);
        return;
    }
    lb_matmul_multi(e->pool, count, w, x, n, y);
    for (int i = 0; i < count; i++)
        if (bias[i])
            op_add_bias(y[i], bias[i]->data, n, (int)w[i]->ne[1]);
}

void block_qkv(lb_engine *e, const lb_layer *L, int n)
{
    block_linears(e, 3, (const lb_tensor *[]){L->wq, L->wk, L->wv},
                  (const lb_tensor *[]){L->bq, L->bk, L->bv}, e->xb, n,
                  (float *[]){e->q, e->k, e->v});
}

int lb_engine_embed(lb_engine *e, const lb_batch *b, float *x, lb_error *err)
{
    if (check_batch(e, b, err))
        return -1;
    ensure_scratch(e, b->n);
    if (e->m->cfg.arch == LB_ARCH_GPT2)
        gpt2_embed(e, b);
    else
        llama_embed(e, b);
    memcpy(x, e->x, (size_t)b->n * (size_t)e->m->cfg.dim * sizeof(float));
    return 0;
}

int lb_engine_block(lb_engine *e, int layer, const lb_batch *b, float *x, lb_error *err)
{
    return lb_engine_block_part(e, layer, b, x, NULL, LB_BLOCK_INPUT, LB_BLOCK_OUTPUT, err);
}

/* The rows that a partial run leaves in, or takes from, the caller's act at a site, or NULL
 * where the site's input is recomputed from x. */
static float *site_rows(const lb_engine *e, int point, size_t *width)
{
    const lb_config *c = &e->m->cfg;
    if (point == LB_SITE_O) {
        *width = (size_t)c->n_heads * (size_t)c->head_dim;
        return e->att;
    }
    if (point == LB_SITE_DOWN) {
        *width = (size_t)c->hidden_dim;
        return e->hb;
    }
    return NULL;
}

int lb_engine_block_part(lb_engine *e, int layer, const lb_batch *b, float *x, float *act,
                         int from, int to, lb_error *err)
{
    if (layer < 0 || layer >= e->m->cfg.n_layers)
        return lb_fail(err, "block %d is outside the model's %d layers", layer,
                       e->m->cfg.n_layers);
    if (from < LB_BLOCK_INPUT || to > LB_BLOCK_OUTPUT || from >= to)
        return lb_fail(err, "block part %d..%d: expected a start before its end", from, to);
    if (check_batch(e, b, err))
        return -1;
    ensure_scratch(e, b->n);
    size_t width, n = (size_t)b->n;
    float *in = site_rows(e, from, &width);
    if (in && !act)
        return lb_fail(err, "block part starting at site %d needs its input rows", from);
    if (in)
        memcpy(in, act, n * width * sizeof(float));
    size_t bytes = n * (size_t)e->m->cfg.dim * sizeof(float);
    memcpy(e->x, x, bytes);
    if (e->m->cfg.arch == LB_ARCH_GPT2)
        gpt2_block(e, layer, b, from, to);
    else
        llama_block(e, layer, b, from, to);
    memcpy(x, e->x, bytes);
    float *out = site_rows(e, to, &width);
    if (out && act)
        memcpy(act, out, n * width * sizeof(float));
    return 0;
}

int lb_engine_n_ctx(const lb_engine *e) { return e->n_ctx; }
int lb_engine_n_seq(const lb_engine *e) { return e->n_seq; }
const lb_model *lb_engine_model(const lb_engine *e) { return e->m; }
lb_pool *lb_engine_pool(lb_engine *e) { return e->pool; }

size_t lb_engine_kv_bytes(const lb_engine *e)
{
    size_t elems = 2 * (size_t)e->n_seq * (size_t)e->m->cfg.n_layers * (size_t)e->n_ctx *
                   (size_t)e->kv_dim;
    size_t scales = e->kv_type == LB_KV_Q8 ? elems / (size_t)e->m->cfg.head_dim : 0;
    return elems * kv_elem_bytes(e->kv_type) + scales * sizeof(float);
}
