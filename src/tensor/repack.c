/* Sixteen-row interleaving of Q8_0 / Q4_0 weights (layout in repack.h). */
#include "tensor/repack.h"
#include "tensor/kernels/kernels.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

bool lb_repack_supported(const lb_tensor *t)
{
    return !t->qlayout && (t->type == LB_TYPE_Q8_0 || t->type == LB_TYPE_Q4_0) &&
           t->ne[0] > 0 && t->ne[0] % LB_QK == 0 && t->ne[1] > 0 && t->ne[2] == 1 &&
           t->ne[3] == 1;
}

lb_packed *lb_repack_begin(const lb_tensor *t)
{
    if (!lb_repack_supported(t))
        return NULL;
    int64_t rows = t->ne[1], nb = t->ne[0] / LB_QK;
    int64_t groups = (rows + LB_PACK_ROWS - 1) / LB_PACK_ROWS;
    /* sixteen of the file's blocks: the same bytes, reordered */
    size_t block_bytes = LB_PACK_ROWS * lb_type_traits_of(t->type)->block_bytes;
    /* the header, then the data at the next 64-byte boundary */
    size_t data_bytes = (size_t)groups * (size_t)nb * block_bytes;
    lb_packed *p = lb_malloc(sizeof(lb_packed) + 64 + data_bytes);
    uintptr_t data = ((uintptr_t)(p + 1) + 63) & ~(uintptr_t)63;
    *p = (lb_packed){t->data, t->type, rows, t->ne[0], nb, block_bytes,
                     (size_t)nb * block_bytes, (uint8_t *)data};
    return p;
}

void lb_repack_groups(lb_packed *p, int64_t g0, int64_t g1)
{
    size_t src_block = lb_type_traits_of(p->type)->block_bytes, payload = src_block - 2;
    size_t row_bytes = lb_row_bytes(p->type, p->cols);
    for (int64_t g = g0; g < g1; g++)
        for (int64_t b = 0; b < p->n_blocks; b++) {
            uint8_t *dst = (uint8_t *)lb_packed_block(p, g, b);
            memset(dst, 0, p->block_bytes);   /* padding rows: zero scale, zero codes */
            for (int r = 0; r < LB_PACK_ROWS && g * LB_PACK_ROWS + r < p->rows; r++) {
                const uint8_t *blk = (const uint8_t *)p->from +
                                     (size_t)(g * LB_PACK_ROWS + r) * row_bytes +
                                     (size_t)b * src_block;
                memcpy(dst + 2 * r, blk, 2);   /* the fp16 scale */
                /* four bytes of the row per chunk, the chunks one after another */
                for (size_t c = 0; c < payload / 4; c++)
                    memcpy(dst + 2 * LB_PACK_ROWS + c * 4 * LB_PACK_ROWS + 4 * (size_t)r,
                           blk + 2 + 4 * c, 4);
            }
        }
}

lb_packed *lb_repack(const lb_tensor *t)
{
    lb_packed *p = lb_repack_begin(t);
    if (p)
        lb_repack_groups(p, 0, (p->rows + LB_PACK_ROWS - 1) / LB_PACK_ROWS);
    return p;
}

void lb_packed_get_row(const lb_packed *p, int64_t r, float *dst)
{
    const lb_type_traits *tr = lb_type_traits_of(p->type);
    size_t payload = tr->block_bytes - 2;   /* the block's weights after its fp16 scale */
    int64_t g = r / LB_PACK_ROWS;
    int i = (int)(r % LB_PACK_ROWS);
    uint8_t blk[2 + LB_QK];   /* the file's block, gathered back */
    for (int64_t b = 0; b < p->n_blocks; b++) {
        const uint8_t *src = lb_packed_block(p, g, b);
        memcpy(blk, src + 2 * i, 2);
        for (size_t c = 0; c < payload / 4; c++)
            memcpy(blk + 2 + 4 * c, src + 2 * LB_PACK_ROWS + c * 4 * LB_PACK_ROWS + 4 * (size_t)i, 4);
        tr->to_float(blk, dst + b * LB_QK, LB_QK);
    }
}

const lb_packed *lb_tensor_packed(const lb_tensor *t)
{
    const lb_packed *p = t->packed;
    if (p && p->from == t->data && p->type == t->type && p->cols == t->ne[0] &&
        p->rows == t->ne[1] && !t->qlayout)
        return p;
    return NULL;
}
