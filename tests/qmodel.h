/* Test helper: quantizes every block linear of a loaded model with lb_qweight_rtn, packed
 * (lb_model_set_quantized) or, for a reference, written back dequantized as fp32. */
#ifndef LB_TEST_QMODEL_H
#define LB_TEST_QMODEL_H

#include "model/engine.h"
#include "quant/pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int bits, group;
    bool sym, act_order, w8a8;
} qmodel_cfg;

static const char *const QMODEL_LINEARS[] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                             "ffn_gate", "ffn_up", "ffn_down"};

/* A deterministic act-order index (columns dealt to groups in a shuffled order), and the
 * matrix W requantized on it: each group's grid from the columns that belong to it. */
static void qmodel_act_order(lb_qweight *qw, const float *W, unsigned seed)
{
    qw->g_idx = malloc((size_t)qw->cols * sizeof(int32_t));
    for (int i = 0; i < qw->cols; i++)
        qw->g_idx[i] = qw->group_size ? i / qw->group_size : 0;
    for (int i = qw->cols - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (unsigned)(i + 1));
        int32_t t = qw->g_idx[i];
        qw->g_idx[i] = qw->g_idx[j];
        qw->g_idx[j] = t;
    }
    for (int r = 0; r < qw->rows; r++) {
        const float *w = W + (size_t)r * qw->cols;
        for (int g = 0; g < qw->n_groups; g++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int c = 0; c < qw->cols; c++)
                if (qw->g_idx[c] == g) {
                    lo = fminf(lo, w[c]);
                    hi = fmaxf(hi, w[c]);
                }
            size_t k = (size_t)r * qw->n_groups + g;
            lb_qgrid(lo, hi, qw->bits, qw->sym, &qw->scale[k], &qw->zero[k]);
        }
        for (int c = 0; c < qw->cols; c++) {
            size_t k = (size_t)r * qw->n_groups + qw->g_idx[c];
            qw->q[(size_t)r * qw->cols + c] = lb_qcode(w[c], qw->scale[k], qw->zero[k], qw->bits);
        }
    }
}

/* packed: lb_model_set_quantized; else lb_model_set_f32 of the dequantized matrix. */
static int qmodel_quantize(lb_model *m, const qmodel_cfg *c, bool packed, lb_error *err)
{
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (size_t i = 0; i < sizeof QMODEL_LINEARS / sizeof QMODEL_LINEARS[0]; i++) {
            char name[128];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, QMODEL_LINEARS[i]);
            lb_tensor *t = lb_model_find(m, name);
            if (!t || (packed && t->qlayout))   /* already packed (a fused qkv's views) */
                continue;
            int rows = (int)t->ne[1], cols = (int)t->ne[0];
            float *W = malloc((size_t)rows * cols * sizeof(float));
            for (int r = 0; r < rows; r++)
                lb_tensor_get_row(t, r, W + (size_t)r * cols);
            lb_qweight qw;
            lb_qweight_rtn(W, rows, cols, c->bits, c->group, c->sym, &qw);
            qw.w8a8 = c->w8a8;
            if (c->act_order)
                qmodel_act_order(&qw, W, (unsigned)(l * 7 + (int)i));
            int rc;
            if (packed) {
                rc = lb_model_set_quantized(m, name, &qw, err);
            } else {
                lb_qweight_dequant(&qw, W);
                rc = lb_model_set_f32(m, name, W, err);
            }
            lb_qweight_free(&qw);
            free(W);
            if (rc)
                return -1;
        }
    snprintf(m->quant.method, sizeof m->quant.method, "rtn");
    m->quant.bits = c->bits;
    m->quant.group_size = c->group;
    m->quant.sym = c->sym;
    m->quant.act_order = c->act_order;
    m->quant.w8a8 = c->w8a8;
    return 0;
}

/* Logits of every position of tokens[0..n) in one batch: out[n][vocab]. */
static int qmodel_logits(const lb_model *m, const int *tokens, int n, float *out, lb_error *err)
{
    lb_engine *e;
    if (lb_engine_create(m, n, 1, 2, &e, err))
        return -1;
    int *pos = malloc((size_t)n * sizeof(int)), *seq = calloc((size_t)n, sizeof(int));
    bool *want = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        want[i] = true;
    }
    lb_batch b = {n, tokens, pos, seq, want};
    int rc = lb_engine_forward(e, &b, out, err);
    free(pos);
    free(seq);
    free(want);
    lb_engine_free(e);
    return rc;
}

#endif
