/* Quantized weights into lowbit's runtime group formats and back: see pack.h. */
#include "quant/pack.h"
#include "tensor/kernels/kernels.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far beyond any real model; keeps every size computation inside int and size_t. */
#define MAX_DIM (1 << 24)

static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

lb_qlayout *lb_qlayout_create(int rows, int cols, int bits, int group_size, int n_groups,
                              bool has_zero, bool w8a8, const int32_t *g_idx, lb_error *err)
{
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
        lb_fail(err, "bits is %d (expected 2, 3, 4 or 8)", bits);
        return NULL;
    }
    if (w8a8 && bits != 8) {
        lb_fail(err, "W8A8 needs 8-bit weights, not %d-bit", bits);
        return NULL;
    }
    if (rows < 1 || cols < 1 || rows > MAX_DIM || cols > MAX_DIM) {
        lb_fail(err, "shape is %d x %d (expected 1 to %d each)", rows, cols, MAX_DIM);
        return NULL;
    }
    if (group_size < 0 || group_size > cols) {
        lb_fail(err, "group size is %d (expected 0 to %d)", group_size, cols);
        return NULL;
    }
    int expect = group_size ? (cols + group_size - 1) / group_size : 1;
    if (g_idx ? n_groups < 1 || n_groups > cols : n_groups != expect) {
        lb_fail(err, "%d groups per row do not fit %d columns in groups of %d", n_groups, cols,
                group_size);
        return NULL;
    }
    int *count = lb_calloc((size_t)n_groups, sizeof(int));
    for (int c = 0; c < cols; c++) {
        int g = g_idx ? g_idx[c] : group_size ? c / group_size : 0;
        if (g < 0 || g >= n_groups) {
            free(count);
            lb_fail(err, "g_idx[%d] is %d (expected 0 to %d)", c, g, n_groups - 1);
            return NULL;
        }
        count[g]++;
    }
    int n_blocks = 0;
    for (int g = 0; g < n_groups; g++)
        n_blocks += (count[g] + 31) / 32;

    size_t head = pad4(sizeof(lb_qlayout));
    size_t bg_bytes = (size_t)n_blocks * sizeof(int32_t);
    size_t src_bytes = (size_t)n_blocks * 32 * sizeof(int32_t);
    size_t gi_bytes = g_idx ? (size_t)cols * sizeof(int32_t) : 0;
    lb_qlayout *L = lb_calloc(1, head + bg_bytes + src_bytes + gi_bytes);
    L->bits = bits;
    L->rows = rows;
    L->cols = cols;
    L->group_size = group_size;
    L->n_groups = n_groups;
    L->n_blocks = n_blocks;
    L->has_zero = has_zero;
    L->w8a8 = w8a8;
    L->codes_offset = (size_t)n_groups * sizeof(float) + (has_zero ? pad4((size_t)n_groups) : 0);
    L->row_bytes = L->codes_offset + (size_t)n_blocks * (size_t)bits * 4;
    L->block_group = (int32_t *)(void *)((char *)L + head);
    L->src = (int32_t *)(void *)((char *)L + head + bg_bytes);
    if (g_idx) {
        L->g_idx = (int32_t *)(void *)((char *)L + head + bg_bytes + src_bytes);
        memcpy(L->g_idx, g_idx, gi_bytes);
    }
    /* Groups in order, each taking whole blocks; its columns in increasing order. */
    int *start = lb_calloc((size_t)n_groups, sizeof(int));   /* first slot of each group */
    for (int g = 0, slot = 0; g < n_groups; g++) {
        start[g] = slot;
        int nb = (count[g] + 31) / 32;
        for (int b = 0; b < nb; b++)
            L->block_group[slot / 32 + b] = g;
        slot += nb * 32;
    }
    for (int i = 0; i < n_blocks * 32; i++)
        L->src[i] = -1;
    for (int c = 0; c < cols; c++) {
        int g = g_idx ? g_idx[c] : group_size ? c / group_size : 0;
        L->src[start[g]++] = c;
    }
    free(start);
    free(count);
    return L;
}

lb_type lb_qlayout_type(const lb_qlayout *l)
{
    switch (l->bits) {
    case 2: return LB_TYPE_LBQ2;
    case 3: return LB_TYPE_LBQ3;
    case 4: return LB_TYPE_LBQ4;
    default: return l->w8a8 ? LB_TYPE_LBW8A8 : LB_TYPE_LBQ8;
    }
}

void lb_qweight_pack(const lb_qweight *qw, const lb_qlayout *L, void *out)
{
    size_t bb = (size_t)L->bits * 4;
    for (int r = 0; r < L->rows; r++) {
        uint8_t *row = (uint8_t *)out + (size_t)r * L->row_bytes;
        memset(row, 0, L->row_bytes);
        memcpy(row, qw->scale + (size_t)r * L->n_groups, (size_t)L->n_groups * sizeof(float));
        if (L->has_zero)
            memcpy(row + (size_t)L->n_groups * sizeof(float), qw->zero + (size_t)r * L->n_groups,
                   (size_t)L->n_groups);
        const uint8_t *q = qw->q + (size_t)r * (size_t)L->cols;
        for (int b = 0; b < L->n_blocks; b++) {
            uint8_t codes[32];
            for (int j = 0; j < 32; j++) {
                int c = L->src[b * 32 + j];
                codes[j] = c >= 0 ? q[c] : 0;
            }
            lb_qpack_block(codes, L->bits, row + L->codes_offset + (size_t)b * bb);
        }
    }
}

/* Checks a quantized matrix against the tensor it replaces and against its own bit width. */
static int check_qweight(const lb_model *m, const lb_tensor *t, const lb_qweight *qw,
                         lb_error *err)
{
    if (t->n_dims != 2 || t->ne[0] != qw->cols || t->ne[1] != qw->rows)
        return lb_fail(err, "%s: tensor '%s' is [%" PRId64 ", %" PRId64 "], but the quantized "
                       "weight is %d rows x %d columns", m->path, t->name, t->ne[0], t->ne[1],
                       qw->rows, qw->cols);
    if (qw->bits != 2 && qw->bits != 3 && qw->bits != 4 && qw->bits != 8)
        return lb_fail(err, "%s: quantized '%s' has bits %d (expected 2, 3, 4 or 8)", m->path,
                       t->name, qw->bits);
    int maxq = (1 << qw->bits) - 1;
    size_t n = (size_t)qw->rows * (size_t)qw->cols, ng = (size_t)qw->rows * (size_t)qw->n_groups;
    if (!qw->q || !qw->scale || !qw->zero)
        return lb_fail(err, "%s: quantized '%s' lacks its codes, scales or zero points", m->path,
                       t->name);
    for (size_t i = 0; i < n; i++)
        if (qw->q[i] > maxq)
            return lb_fail(err, "%s: quantized '%s' has code %d at row %zu, column %zu "
                           "(expected at most %d for %d bits)", m->path, t->name, qw->q[i],
                           i / (size_t)qw->cols, i % (size_t)qw->cols, maxq, qw->bits);
    for (size_t i = 0; i < ng; i++) {
        if (qw->zero[i] > maxq)
            return lb_fail(err, "%s: quantized '%s' has zero point %d at row %zu, group %zu "
                           "(expected at most %d)", m->path, t->name, qw->zero[i],
                           i / (size_t)qw->n_groups, i % (size_t)qw->n_groups, maxq);
        if (!isfinite(qw->scale[i]))
            return lb_fail(err, "%s: quantized '%s' has a non-finite scale at row %zu, group "
                           "%zu", m->path, t->name, i / (size_t)qw->n_groups,
                           i % (size_t)qw->n_groups);
    }
    return 0;
}

/* "blk.N.attn_qkv.weight" -> "blk.N.attn_" prefix for its views; 0 if not a fused tensor. */
static bool fused_prefix(const char *name, char *prefix, size_t cap)
{
    const char *p = strstr(name, ".attn_qkv.weight");
    if (!p || p[16] || strncmp(name, "blk.", 4) != 0)
        return false;
    snprintf(prefix, cap, "%.*s.attn_", (int)(p - name), name);
    return true;
}

int lb_model_set_quantized(lb_model *m, const char *name, const lb_qweight *qw, lb_error *err)
{
    lb_tensor *t = lb_model_find(m, name);
    if (!t)
        return lb_fail(err, "%s: no tensor named '%s'", m->path, name);
    if (check_qweight(m, t, qw, err))
        return -1;
    int mid = 1 << (qw->bits - 1);
    bool has_zero = false;
    for (size_t i = 0; i < (size_t)qw->rows * (size_t)qw->n_groups && !has_zero; i++)
        has_zero = qw->zero[i] != mid;
    int gs = qw->group_size >= qw->cols ? 0 : qw->group_size;
    lb_qlayout *L = lb_qlayout_create(qw->rows, qw->cols, qw->bits, gs, qw->n_groups, has_zero,
                                      qw->w8a8, qw->g_idx, err);
    if (!L)
        return lb_fail_prefix(err, "%s: quantized '%s': ", m->path, name);
    void *data = lb_malloc((size_t)qw->rows * L->row_bytes);
    lb_qweight_pack(qw, L, data);
    lb_model_own(m, L);
    lb_model_own(m, data);

    /* Views of a fused tensor follow it into the packed rows. */
    char prefix[LB_MAX_NAME];
    if (fused_prefix(name, prefix, sizeof prefix)) {
        size_t old_rb = lb_tensor_row_bytes(t);
        for (int i = 0; i < m->n_tensors; i++) {
            lb_tensor *v = &m->tensors[i];
            if (!v->view || strncmp(v->name, prefix, strlen(prefix)) != 0 || v->n_dims != 2 ||
                v->data < t->data || old_rb == 0)
                continue;
            size_t row0 = (size_t)((const char *)v->data - (const char *)t->data) / old_rb;
            v->type = lb_qlayout_type(L);
            v->qlayout = L;
            v->packed = NULL;
            v->data = (char *)data + row0 * L->row_bytes;
        }
    }
    t->type = lb_qlayout_type(L);
    t->data = data;
    t->nbytes = (size_t)qw->rows * L->row_bytes;
    t->qlayout = L;
    t->packed = NULL;
    t->view = false;
    return 0;
}

int lb_tensor_to_qweight(const lb_tensor *t, lb_qweight *out, lb_error *err)
{
    const lb_qlayout *L = t->qlayout;
    if (!L)
        return lb_fail(err, "tensor '%s' is %s, not group-quantized", t->name,
                       lb_type_name(t->type));
    int rows = (int)t->ne[1];
    lb_qweight_init(out, rows, L->cols, L->bits, L->group_size, !L->has_zero, L->g_idx != NULL);
    /* lb_qweight_init derives n_groups from the group size; an act-order index decides it. */
    if (out->n_groups != L->n_groups) {
        free(out->scale);
        free(out->zero);
        out->n_groups = L->n_groups;
        out->scale = lb_calloc((size_t)rows * (size_t)L->n_groups, sizeof(float));
        out->zero = lb_calloc((size_t)rows * (size_t)L->n_groups, 1);
    }
    out->w8a8 = L->w8a8;
    if (L->g_idx)
        memcpy(out->g_idx, L->g_idx, (size_t)L->cols * sizeof(int32_t));
    int mid = 1 << (L->bits - 1);
    size_t bb = (size_t)L->bits * 4;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)t->data + (size_t)r * L->row_bytes;
        memcpy(out->scale + (size_t)r * L->n_groups, row, (size_t)L->n_groups * sizeof(float));
        for (int g = 0; g < L->n_groups; g++)
            out->zero[(size_t)r * L->n_groups + g] =
                L->has_zero ? row[(size_t)L->n_groups * sizeof(float) + (size_t)g] : (uint8_t)mid;
        uint8_t *q = out->q + (size_t)r * (size_t)L->cols;
        for (int b = 0; b < L->n_blocks; b++) {
            uint8_t codes[32];
            lb_qunpack_block(row + L->codes_offset + (size_t)b * bb, L->bits, codes);
            for (int j = 0; j < 32; j++)
                if (L->src[b * 32 + j] >= 0)
                    q[L->src[b * 32 + j]] = codes[j];
        }
    }
    return 0;
}
