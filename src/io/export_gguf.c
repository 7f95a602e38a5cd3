/* lowbit's group formats -> llama.cpp's Q8_0 / Q4_0 / Q4_1 (see export_gguf.h). */
#include "io/export_gguf.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "quant/pack.h"
#include "tensor/kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lb_export_gguf_type(const lb_tensor *t)
{
    const lb_qlayout *L = t->qlayout;
    if (!L || L->g_idx || L->cols % LB_QK || (L->group_size && L->group_size % LB_QK))
        return -1;
    if (L->bits == 8)
        return L->has_zero ? -1 : LB_TYPE_Q8_0;
    return L->has_zero ? LB_TYPE_Q4_1 : LB_TYPE_Q4_0;
}

/* One row of qw (natural column order) as ggml blocks of the given type. */
static void row_to_blocks(const lb_qweight *qw, int r, int type, void *out)
{
    const uint8_t *q = qw->q + (size_t)r * qw->cols;
    const float *sc = qw->scale + (size_t)r * qw->n_groups;
    const uint8_t *zp = qw->zero + (size_t)r * qw->n_groups;
    for (int b = 0; b < qw->cols / LB_QK; b++) {
        int g = lb_qweight_group_of(qw, b * LB_QK);   /* a block never straddles groups */
        const uint8_t *c = q + b * LB_QK;
        if (type == LB_TYPE_Q8_0) {
            lb_block_q8_0 *o = (lb_block_q8_0 *)out + b;
            o->d = lb_fp32_to_fp16(sc[g]);
            for (int j = 0; j < LB_QK; j++)
                o->qs[j] = (int8_t)(c[j] - zp[g]);
        } else if (type == LB_TYPE_Q4_0) {
            lb_block_q4_0 *o = (lb_block_q4_0 *)out + b;
            o->d = lb_fp32_to_fp16(sc[g]);
            for (int j = 0; j < LB_QK / 2; j++)
                o->qs[j] = (uint8_t)((c[j] - zp[g] + 8) | (c[j + 16] - zp[g] + 8) << 4);
        } else {
            lb_block_q4_1 *o = (lb_block_q4_1 *)out + b;
            o->d = lb_fp32_to_fp16(sc[g]);
            o->m = lb_fp32_to_fp16(-sc[g] * (float)zp[g]);
            for (int j = 0; j < LB_QK / 2; j++)
                o->qs[j] = (uint8_t)(c[j] | c[j + 16] << 4);
        }
    }
}

/* llama.cpp's general.file_type for the type most tensors went to. */
static uint32_t file_type(const lb_export_gguf_opts *o)
{
    if (o->n_q4_0 >= o->n_q4_1 && o->n_q4_0 >= o->n_q8_0 && o->n_q4_0)
        return 2;   /* MOSTLY_Q4_0 */
    if (o->n_q4_1 >= o->n_q8_0 && o->n_q4_1)
        return 3;   /* MOSTLY_Q4_1 */
    if (o->n_q8_0)
        return 7;   /* MOSTLY_Q8_0 */
    return o->fallback_f32 ? 0 : 1;
}

/* The type a tensor is written in. */
static lb_type out_type(const lb_tensor *t, const lb_export_gguf_opts *o)
{
    if (!t->qlayout)
        return t->type;
    int ty = lb_export_gguf_type(t);
    return ty >= 0 ? (lb_type)ty : o->fallback_f32 ? LB_TYPE_F32 : LB_TYPE_F16;
}

static int write_tensor(gguf_writer *w, const lb_tensor *t, lb_type ty, lb_error *err)
{
    if (!t->qlayout)
        return gguf_writer_write(w, t->data, t->nbytes, err);
    lb_qweight qw;
    if (lb_tensor_to_qweight(t, &qw, err))
        return -1;
    size_t rb = lb_row_bytes(ty, qw.cols);
    void *row = lb_malloc(rb);
    float *deq = lb_malloc((size_t)qw.cols * sizeof(float));
    int rc = 0;
    for (int r = 0; r < qw.rows && !rc; r++) {
        if (ty == LB_TYPE_F32 || ty == LB_TYPE_F16) {
            lb_tensor_get_row(t, r, deq);
            lb_type_traits_of(ty)->from_float(deq, row, qw.cols);
        } else {
            row_to_blocks(&qw, r, ty, row);
        }
        rc = gguf_writer_write(w, row, rb, err);
    }
    free(row);
    free(deq);
    lb_qweight_free(&qw);
    return rc;
}

int lb_export_gguf(const lb_model *m, const char *path, lb_export_gguf_opts *opts,
                   lb_error *err)
{
    lb_export_gguf_opts local = {0};
    lb_export_gguf_opts *o = opts ? opts : &local;
    o->n_q8_0 = o->n_q4_0 = o->n_q4_1 = o->n_fallback = o->n_copied = 0;
    if (!lb_model_is_quantized(m))
        return lb_fail(err, "%s: the model is not quantized (no tensor in a lowbit group "
                       "format); quantize it first", m->path);
    if (!m->src_meta)
        return lb_fail(err, "%s: GGUF export needs a model loaded from GGUF", m->path);
    const gguf_file *src = m->src_meta;
    gguf_writer *w = gguf_writer_create();
    for (int64_t i = 0; i < src->n_kv; i++) {
        const gguf_kv *kv = &src->kv[i];
        if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_ARRAY)
            continue;
        gguf_writer_copy_kv(w, kv);
    }
    int rc = 0;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const lb_tensor *t = &m->tensors[i];
        if (!lb_model_tensor_stored(m, t))
            continue;
        lb_type ty = out_type(t, o);
        if (!t->qlayout)
            o->n_copied++;
        else if (ty == LB_TYPE_Q8_0)
            o->n_q8_0++;
        else if (ty == LB_TYPE_Q4_0)
            o->n_q4_0++;
        else if (ty == LB_TYPE_Q4_1)
            o->n_q4_1++;
        else
            o->n_fallback++;
        rc = gguf_writer_add_tensor(w, t->name, ty, t->n_dims, t->ne, err);
    }
    gguf_writer_set_u32(w, "general.file_type", file_type(o));
    if (!rc)
        rc = gguf_writer_open(w, path, err);
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const lb_tensor *t = &m->tensors[i];
        if (lb_model_tensor_stored(m, t))
            rc = write_tensor(w, t, out_type(t, o), err);
    }
    if (!rc)
        rc = gguf_writer_finish(w, err);
    gguf_writer_free(w);
    return rc;
}
