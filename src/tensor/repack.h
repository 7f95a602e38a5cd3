/* GGUF's Q8_0 and Q4_0 weights repacked for the matrix-multiply kernels: sixteen rows
 * interleaved, so that one SIMD register holds the same four weights of sixteen rows and one
 * broadcast activation word serves all of them (lb_kernel_set.pdot_q8_0 / pdot_q4_0).
 *
 * Rows go in groups of LB_PACK_ROWS (the last group padded with zero rows), each group block
 * after block: for block b of the group's rows,
 *   uint16 d[16]                         the rows' fp16 scales, row order;
 *   Q8_0: 8 chunks of 64 bytes, chunk g = rows 0..15's weights 4g..4g+3 (int8);
 *   Q4_0: 4 chunks of 64 bytes, chunk k = rows 0..15's bytes qs[4k..4k+3], whose low nibbles
 *         are weights 4k..4k+3 and high nibbles weights 16+4k..16+4k+3 (unsigned, less 8).
 * The same bytes as the file's, reordered: a packed tensor is exactly as large, and the
 * integers every kernel sees are the file's. */
#ifndef LB_REPACK_H
#define LB_REPACK_H

#include "tensor/tensor.h"

#define LB_PACK_ROWS 16

struct lb_packed {
    const void *from;     /* the tensor data it was built from */
    lb_type type;         /* LB_TYPE_Q8_0 or LB_TYPE_Q4_0 */
    int64_t rows, cols;
    int64_t n_blocks;     /* per row: cols / 32 */
    size_t block_bytes;   /* one block of a group's 16 rows */
    size_t group_bytes;   /* n_blocks * block_bytes */
    uint8_t *data;        /* ceil(rows / 16) groups, 64-byte aligned */
};

/* True for the types that have a packed layout (Q8_0, Q4_0 with whole 32-column blocks). */
bool lb_repack_supported(const lb_tensor *t);
/* The packed copy of a 2-D weight, one allocation (free() releases it); NULL when the type has
 * no packed layout. Aborts on allocation failure, like lb_malloc. */
lb_packed *lb_repack(const lb_tensor *t);
/* The same in steps, so a loader can hand back the source's pages as it goes: the allocation
 * (NULL as above), then groups [g0, g1) of rows from the tensor's data. */
lb_packed *lb_repack_begin(const lb_tensor *t);
void lb_repack_groups(lb_packed *p, int64_t g0, int64_t g1);
/* t's packed copy when it still describes t (same data, type and shape), else NULL: a tensor
 * whose data was replaced after load (quantized, set to fp32) or a view of some of its rows
 * does not use a stale copy. */
const lb_packed *lb_tensor_packed(const lb_tensor *t);
/* Row r as fp32 (cols values): the file's row, from the packed copy (an embedding tied to a
 * packed output head reads its rows here rather than the file's pages). */
void lb_packed_get_row(const lb_packed *p, int64_t r, float *dst);
/* Block b of packed rows' group g. */
static inline const uint8_t *lb_packed_block(const lb_packed *p, int64_t g, int64_t b)
{
    return p->data + (size_t)g * p->group_bytes + (size_t)b * p->block_bytes;
}

#endif
