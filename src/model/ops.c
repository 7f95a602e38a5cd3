/* Building blocks of the forward passes: norms, RoPE, attention over the KV cache, activations,
 * and the output head. All work on rows of fp32 activations. */
#include "model/engine_internal.h"
#include "tensor/matmul.h"

#include <math.h>
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
    for (size_t i = 0; i < count; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
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
    lb_engine *e;
    int layer;
    const lb_batch *b;
} attn_job;

static void attention_task(void *ctx, int task, int thread)
{
    const attn_job *j = ctx;
    lb_engine *e = j->e;
    const lb_config *c = &e->m->cfg;
    int hd = c->head_dim, t = task / c->n_heads, h = task % c->n_heads;
    int kvh = h / (c->n_heads / c->n_kv_heads);
    int seq = j->b->seq[t], pos = j->b->pos[t];
    const float *q = e->q + ((size_t)t * c->n_heads + h) * hd;
    float *scores = e->att_scores + (size_t)thread * e->n_ctx;
    float scale = 1.0f / sqrtf((float)hd), max = -INFINITY;
    for (int p = 0; p <= pos; p++) {
        const float *k = kv_row(e, e->k_cache, seq, j->layer, p) + (size_t)kvh * hd;
        scores[p] = lb_dot_f32(q, k, hd) * scale;
        if (scores[p] > max)
            max = scores[p];
    }
    float sum = 0;
    for (int p = 0; p <= pos; p++) {
        scores[p] = expf(scores[p] - max);
        sum += scores[p];
    }
    float *restrict out = e->att + ((size_t)t * c->n_heads + h) * hd;
    memset(out, 0, (size_t)hd * sizeof(float));
    float inv_sum = 1.0f / sum;
    for (int p = 0; p <= pos; p++) {
        const float *restrict v = kv_row(e, e->v_cache, seq, j->layer, p) + (size_t)kvh * hd;
        float w = scores[p] * inv_sum;
        for (int i = 0; i < hd; i++)
            out[i] += w * v[i];
    }
}

void op_attention(lb_engine *e, int layer, const lb_batch *b)
{
    size_t row = (size_t)e->kv_dim * sizeof(float);
    for (int t = 0; t < b->n; t++) {
        memcpy(kv_row(e, e->k_cache, b->seq[t], layer, b->pos[t]), e->k + (size_t)t * e->kv_dim, row);
        memcpy(kv_row(e, e->v_cache, b->seq[t], layer, b->pos[t]), e->v + (size_t)t * e->kv_dim, row);
    }
    attn_job job = {e, layer, b};
    lb_pool_run(e->pool, b->n * e->m->cfg.n_heads, attention_task, &job);
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
