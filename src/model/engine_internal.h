/* The engine's state, shared by engine.c and the per-architecture forward passes. */
#ifndef LB_ENGINE_INTERNAL_H
#define LB_ENGINE_INTERNAL_H

#include "model/engine.h"

/* Query heads one attention task of the token path handles at most (ops.c). */
#define ATT_CHUNK_HEADS 8

struct lb_engine {
    const lb_model *m;
    lb_pool *pool;
    int n_ctx, n_seq;
    int kv_dim;
    void *k_cache, *v_cache;   /* [n_seq][n_layers][n_kv_heads][n_ctx][head_dim] of float,
                                * fp16 or int8 (kv_type) */
    float *k_scale, *v_scale;  /* Q8: each head row's scale, [n_seq][n_layers][n_kv_heads]
                                * [n_ctx] (the row's kv_index / head_dim) */
    lb_kv_type kv_type;
    float *kv_rows;            /* F16 and Q8 caches, per thread: 2 * att_run_ldk head rows
                                * expanded to fp32 for the blocked attention's kernels */
    float *rope_freqs;         /* [head_dim / 2] */
    /* Scratch for a batch of up to cap tokens. */
    int cap;
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2;
    float *att_scores;         /* [threads][ATT_CHUNK_HEADS][n_ctx] */
    /* Scratch of the blocked attention over runs of positions (ops.c), grown on demand:
     * per thread, K of a head transposed and a few score rows, and the K and V row pointers. */
    float *att_run;            /* [threads][(head_dim + 4) * att_run_ldk] */
    const float **att_rows;    /* [threads][2 * att_run_ldk] */
    int att_run_ldk;
    /* Quantizers' view of each linear layer's input (lb_engine_set_capture); NULL normally. */
    lb_capture_fn capture;
    void *capture_user;
    lb_sgemm_fn sgemm;         /* lb_engine_set_gemm: F32 linears through BLAS */
};

/* Index of the first element of kv head kvh's cached row at (sequence, layer, position). A
 * head's rows are consecutive positions, so attention streams through them. */
/* Bytes of one cached key or value element; then with a Q8 row's scale shared out over its
 * head_dim elements (for estimates: lb_engine_kv_bytes counts exactly). */
static inline size_t kv_elem_bytes(lb_kv_type t)
{
    return t == LB_KV_F32 ? sizeof(float) : t == LB_KV_F16 ? sizeof(uint16_t) : sizeof(int8_t);
}

static inline double kv_bytes_per_elem(lb_kv_type t, int head_dim)
{
    return (double)kv_elem_bytes(t) + (t == LB_KV_Q8 ? (double)sizeof(float) / head_dim : 0.0);
}

static inline size_t kv_index(const lb_engine *e, int seq, int layer, int kvh, int pos)
{
    const lb_config *c = &e->m->cfg;
    size_t head = ((size_t)seq * (size_t)c->n_layers + (size_t)layer) * (size_t)c->n_kv_heads +
                  (size_t)kvh;
    return (head * (size_t)e->n_ctx + (size_t)pos) * (size_t)c->head_dim;
}

/* ops.c: building blocks over n rows of width dim. */
void op_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps);
void op_layernorm(float *out, const float *x, const float *w, const float *b, int n, int dim,
                  float eps);
void op_add_bias(float *x, const float *b, int n, int dim);
void op_add(float *x, const float *y, size_t count);
void op_rope(const lb_engine *e, float *vecs, int n_heads, const lb_batch *b);
void op_swiglu(float *gate, const float *up, size_t count);
void op_gelu(float *x, size_t count);
/* Writes this layer's k, v rows into the cache, then attention for every token and head. */
void op_attention(lb_engine *e, int layer, const lb_batch *b);
/* Final norm and output head for the tokens that want logits. */
void op_logits(lb_engine *e, const lb_batch *b, float *logits);
/* Linear layer with optional bias. */
void op_linear(lb_engine *e, const lb_tensor *w, const lb_tensor *bias, const float *x, int n,
               float *y);

/* op_linear, or BLAS for F32 weights when the engine was asked to (engine.c). */
void block_linear(lb_engine *e, const lb_tensor *w, const lb_tensor *bias, const float *x, int n,
                  float *y);
/* Several linears of one input x (q, k, v; gate, up): y[i] = w[i] · x + bias[i] (bias[i] may
 * be NULL), each what block_linear gives, in one job where the kernels allow. */
void block_linears(lb_engine *e, int count, const lb_tensor *const *w,
                   const lb_tensor *const *bias, const float *x, int n, float *const *y);
/* Both architectures' attention input: e->q, e->k, e->v from the normed rows in e->xb. */
void block_qkv(lb_engine *e, const lb_layer *L, int n);

/* llama.c, gpt2.c: embeddings into e->x, a block (or part of one, between the points of
 * lb_engine_block_part) over e->x in place, the whole pass. */
void llama_embed(lb_engine *e, const lb_batch *b);
void llama_block(lb_engine *e, int layer, const lb_batch *b, int from, int to);
void llama_forward(lb_engine *e, const lb_batch *b, float *logits);
void gpt2_embed(lb_engine *e, const lb_batch *b);
void gpt2_block(lb_engine *e, int layer, const lb_batch *b, int from, int to);
void gpt2_forward(lb_engine *e, const lb_batch *b, float *logits);

/* Hands a linear layer's input rows to the capture hook, if one is set. */
static inline void engine_capture(lb_engine *e, int layer, lb_site site, const float *x, int n,
                                  int width)
{
    if (e->capture)
        e->capture(e->capture_user, layer, site, x, n, width);
}

#endif
