/* Llama-family forward pass (Llama 2/3, Mistral, TinyLlama, SmolLM, Qwen2):
 * pre-norm blocks of RMSNorm → attention with RoPE and grouped-query heads → residual,
 * RMSNorm → SwiGLU feed-forward → residual; final RMSNorm and the output head. */
#include "model/engine_internal.h"

void llama_embed(lb_engine *e, const lb_batch *b)
{
    const lb_model *m = e->m;
    int dim = m->cfg.dim;
    for (int t = 0; t < b->n; t++)
        lb_model_get_row(m, m->tok_embd, b->token[t], e->x + (size_t)t * dim);
}

/* The block from point `from` to point `to` (see lb_engine_block_part): each case begins
 * where a partial run that stopped at that site resumes. */
void llama_block(lb_engine *e, int l, const lb_batch *b, int from, int to)
{
    const lb_config *c = &e->m->cfg;
    const lb_layer *L = &e->m->layers[l];
    int n = b->n, dim = c->dim;
    switch (from) {
    case LB_BLOCK_INPUT:
    case LB_SITE_QKV:
        op_rmsnorm(e->xb, e->x, L->attn_norm->data, n, dim, c->norm_eps);
        if (from == LB_BLOCK_INPUT) {
            engine_capture(e, l, LB_SITE_QKV, e->xb, n, dim);
            if (to == LB_SITE_QKV)
                return;
        }
        block_qkv(e, L, n);
        op_rope(e, e->q, c->n_heads, b);
        op_rope(e, e->k, c->n_kv_heads, b);
        op_attention(e, l, b);
        engine_capture(e, l, LB_SITE_O, e->att, n, c->n_heads * c->head_dim);
        if (to == LB_SITE_O)
            return;
        /* fall through */
    case LB_SITE_O:
        block_linear(e, L->wo, L->bo, e->att, n, e->xb2);
        op_add(e->x, e->xb2, (size_t)n * dim);
        /* fall through */
    case LB_SITE_FFN:
        op_rmsnorm(e->xb, e->x, L->ffn_norm->data, n, dim, c->norm_eps);
        if (from != LB_SITE_FFN) {
            engine_capture(e, l, LB_SITE_FFN, e->xb, n, dim);
            if (to == LB_SITE_FFN)
                return;
        }
        block_linears(e, 2, (const lb_tensor *[]){L->w_gate, L->w_up},
                      (const lb_tensor *[]){NULL, L->b_up}, e->xb, n,
                      (float *[]){e->hb, e->hb2});
        op_swiglu(e->hb, e->hb2, (size_t)n * c->hidden_dim);
        engine_capture(e, l, LB_SITE_DOWN, e->hb, n, c->hidden_dim);
        if (to == LB_SITE_DOWN)
            return;
        /* fall through */
    case LB_SITE_DOWN:
        block_linear(e, L->w_down, L->b_down, e->hb, n, e->xb2);
        op_add(e->x, e->xb2, (size_t)n * dim);
    }
}

void llama_forward(lb_engine *e, const lb_batch *b, float *logits)
{
    llama_embed(e, b);
    for (int l = 0; l < e->m->cfg.n_layers; l++)
        llama_block(e, l, b, LB_BLOCK_INPUT, LB_BLOCK_OUTPUT);
    op_logits(e, b, logits);
}
