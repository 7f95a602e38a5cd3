/* GPT-2-family forward pass (gpt2, distilgpt2): learned positions added to the embeddings,
 * pre-norm blocks of LayerNorm → attention (biased projections) → residual, LayerNorm →
 * GELU MLP → residual; final LayerNorm and the tied output head. */
#include "model/engine_internal.h"

#include <stdlib.h>

void gpt2_forward(lb_engine *e, const lb_batch *b, float *logits)
{
    const lb_model *m = e->m;
    const lb_config *c = &m->cfg;
    int n = b->n, dim = c->dim;
    float *pos_row = lb_malloc((size_t)dim * sizeof(float));
    for (int t = 0; t < n; t++) {
        float *x = e->x + (size_t)t * dim;
        lb_tensor_get_row(m->tok_embd, b->token[t], x);
        lb_tensor_get_row(m->pos_embd, b->pos[t], pos_row);
        op_add(x, pos_row, (size_t)dim);
    }
    free(pos_row);

    for (int l = 0; l < c->n_layers; l++) {
        const lb_layer *L = &m->layers[l];
        const float *nb = L->attn_norm_b ? L->attn_norm_b->data : NULL;
        op_layernorm(e->xb, e->x, L->attn_norm->data, nb, n, dim, c->norm_eps);
        op_linear(e, L->wq, L->bq, e->xb, n, e->q);
        op_linear(e, L->wk, L->bk, e->xb, n, e->k);
        op_linear(e, L->wv, L->bv, e->xb, n, e->v);
        op_attention(e, l, b);
        op_linear(e, L->wo, L->bo, e->att, n, e->xb2);
        op_add(e->x, e->xb2, (size_t)n * dim);

        nb = L->ffn_norm_b ? L->ffn_norm_b->data : NULL;
        op_layernorm(e->xb, e->x, L->ffn_norm->data, nb, n, dim, c->norm_eps);
        op_linear(e, L->w_up, L->b_up, e->xb, n, e->hb);
        op_gelu(e->hb, (size_t)n * c->hidden_dim);
        op_linear(e, L->w_down, L->b_down, e->hb, n, e->xb2);
        op_add(e->x, e->xb2, (size_t)n * dim);
    }
    op_logits(e, b, logits);
}
