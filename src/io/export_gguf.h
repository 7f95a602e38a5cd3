/* Export of a lowbit-quantized model as a GGUF that llama.cpp loads: each group-quantized
 * tensor is written in the standard ggml type that holds it exactly (up to fp16 scales):
 *   8-bit symmetric                      -> Q8_0  (d = scale, q = code - 128)
 *   2/3/4-bit symmetric                  -> Q4_0  (d = scale, q = code - zero + 8)
 *   2/3/4-bit with zero points           -> Q4_1  (d = scale, m = -scale * zero, q = code)
 * when its groups are 32 wide or a multiple of 32 (per channel included) and its width is a
 * multiple of 32 with no act-order index; any other tensor (a 172-wide row, an act-order
 * index, 8-bit with zero points) is written dequantized as F16 (or F32). Q8_0/Q4_0/Q4_1 keep
 * their scales as fp16, so a scale moves by at most 2^-11 of itself. Unquantized tensors and
 * all metadata are copied as they are. */
#ifndef LB_EXPORT_GGUF_H
#define LB_EXPORT_GGUF_H

#include "model/model.h"

typedef struct {
    bool fallback_f32;   /* tensors that do not map: F32 instead of F16 */
    /* filled: how many tensors went to each kind */
    int n_q8_0, n_q4_0, n_q4_1, n_fallback, n_copied;
} lb_export_gguf_opts;

/* The ggml type a quantized tensor maps to (LB_TYPE_Q8_0, _Q4_0, _Q4_1), or -1. */
int lb_export_gguf_type(const lb_tensor *t);

/* Writes path atomically; -1 with a message (nothing at path) when the model is not
 * quantized, was not loaded from GGUF, or the write fails. */
int lb_export_gguf(const lb_model *m, const char *path, lb_export_gguf_opts *opts,
                   lb_error *err);

#endif
