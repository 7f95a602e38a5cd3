/* GPT-2-family forward pass (gpt2, distilgpt2): learned positions added to the embeddings,
 * pre-norm blocks of LayerNorm → attention (biased projections) → residual, LayerNorm →
 * GELU MLP → residual; final LayerNorm and the tied output head. */
#include "model/engine_internal.h"

#include <stdlib.h>

void gpt2_embed(lb_engine *e, const lb_batch *b)
{
    const lb_model *m = e->m;
    int dim = m->cfg.dim;
    float *pos_row = lb_malloc((size_t)dim * sizeof(float));
    for (int t = 0; t < b->n; t++) {
        float *x = e->x + (size_t)t * dim;
        lb_model_get_row(m, m->tok_embd, b->token[t], x);
        lb_model_get_row(m, m->pos_embd, b->pos[t], pos_row);
        op_add(x, pos_row, (size_t)dim);
    }
    free(pos_row);
}

/* The block from point `from` to point `to`, as llama_block. */
void gpt2_block(lb_engine *e, int l, const lb_batch *b, int from, int to)
{
    const lb_config *c = &e->m->cfg;
    const lb_layer *L = &e->m->layers[l];
    int n = b->n, dim = c->dim;
    const float *nb;
    switch (from) {
    case LB_BLOCK_INPUT:
    case LB_SITE_QKV:
        nb = L->attn_norm_b ? L->attn_norm_b->data : NULL;
        op_layernorm(e->xb, e->x, L->attn_norm->data, nb, n, dim, c->norm_eps);
        if (from == LB_BLOCK_INPUT) {
            engine_capture(e, l, LB_SITE_QKV, e->xb, n, dim);
            if (to == LB_SITE_QKV)
                return;
        }
        block_qkv(e, L, n);
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
        nb = L->ffn_norm_b ? L->ffn_norm_b->data : NULL;
        op_layernorm(e->xb, e->x, L->ffn_norm->data, nb, n, dim, c->norm_eps);
        if (from != LB_SITE_FFN) {
            engine_capture(e, l, LB_SITE_FFN, e->xb, n, dim);
            if (to == LB_SITE_FFN)
                return;
        }
        block_linear(e, L->w_up, L->b_up, e->xb, n, e->hb);
        op_gelu(e->hb, (size_t)n * c->hidden_dim);
        engine_capture(e, l, LB_SITE_DOWN, e->hb, n, c->hidden_dim);
        if (to == LB_SITE_DOWN)
            return;
        /* fall through */
    case LB_SITE_DOWN:
        block_linear(e, L->w_down, L->b_down, e->hb, n, e->xb2);
        op_add(e->x, e->xb2, (size_t)n * dim);
    }
}

void gpt2_forward(lb_engine *e, const lb_batch *b, float *logits)
{
    gpt2_embed(e, b);
    for (int l = 0; l < e->m->cfg.n_layers; l++)
        gpt2_block(e, l, b, LB_BLOCK_INPUT, LB_BLOCK_OUTPUT);
    op_logits(e, b, logits);
}
