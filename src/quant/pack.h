/* Packing quantized weights (lb_qweight, qweight.h) into lowbit's runtime group formats, and
 * back. A packed tensor has type LBQ2/LBQ3/LBQ4/LBQ8 (or LBW8A8) and an lb_qlayout
 * (tensor.h); lb_matmul runs it with integer block kernels, never expanding the matrix.
 *
 * Semantics of lb_model_set_quantized(m, name, qw):
 *   - name is a weight matrix of m with ne[0] == qw->cols and ne[1] == qw->rows;
 *   - qw: bits 2, 3, 4 or 8; any group size (0 = per channel; a short last group is fine);
 *     an optional g_idx (act-order: any assignment of columns to groups 0..n_groups-1);
 *     w8a8 needs bits 8 (activations are then quantized per token at run time);
 *     every code and zero < 2^bits, every scale finite;
 *   - the tensor's storage is replaced by a packed copy the model owns (qw is not kept; the
 *     caller still frees it); handles in m->layers keep pointing at the tensor;
 *   - the matmul then computes, per output row r and token x,
 *       y_r = Σ_g scale[r][g] · Σ_{c: group(c) = g} (q[r][c] − zero[r][g]) · x̂_c
 *     where x̂ is x quantized to int8 per block of 32 gathered columns (per token for W8A8):
 *     the same as lb_qweight_dequant's matrix times x, up to that activation rounding;
 *   - GPT-2's fused attn_qkv: quantize the views blk.N.attn_q/k/v.weight one by one (each
 *     becomes a tensor of its own; lb_model_save then drops the fused tensor once all three are
 *     replaced), or the fused tensor itself (its views are re-pointed into the packed rows);
 *   - bits, group size, zero points and g_idx are recorded per tensor in its lb_qlayout; the
 *     whole run's settings go in m->quant (model.h), which the quantizer fills.
 * Returns -1 with a one-line message naming the tensor and the field on bad input. */
#ifndef LB_PACK_H
#define LB_PACK_H

#include "core/error.h"
#include "model/model.h"
#include "quant/qweight.h"

int lb_model_set_quantized(lb_model *m, const char *name, const lb_qweight *qw, lb_error *err);

/* A layout for a rows × cols weight; g_idx (copied) may be NULL. One heap block: free() it
 * (or hand it to lb_model_own). NULL with a message when the parameters are invalid. */
lb_qlayout *lb_qlayout_create(int rows, int cols, int bits, int group_size, int n_groups,
                              bool has_zero, bool w8a8, const int32_t *g_idx, lb_error *err);
/* The tensor type of a layout: LBQ2 … LBQ8, LBW8A8. */
lb_type lb_qlayout_type(const lb_qlayout *l);

/* Packs qw into rows × row_bytes bytes at out (the layout must come from qw's parameters). */
void lb_qweight_pack(const lb_qweight *qw, const lb_qlayout *l, void *out);
/* The plain quantized matrix of a group-quantized tensor (or of rows r0..r0+rows of it); the
 * exports start here. -1 when the tensor has no group layout. */
int lb_tensor_to_qweight(const lb_tensor *t, lb_qweight *out, lb_error *err);

#endif
