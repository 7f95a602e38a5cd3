/* Hugging Face quantized checkpoints, both ways: lowbit writes them (lowbit export --format
 * gptq|awq|w8a8) and reads them back (hf_model.c calls the readers below).
 *
 * gptq (AutoGPTQ / vLLM "gptq", checkpoint_format "gptq"): per linear layer
 *   qweight  I32 [in * bits / 32, out]   32 input rows per `bits` words, as one little-endian
 *                                        bit stream: row k of the 32 at bits k*bits (so 3-bit
 *                                        values straddle words, as AutoGPTQ packs them)
 *   qzeros   I32 [n_groups, out * bits / 32]  the same stream along the outputs, holding
 *                                        zero - 1 (AutoGPTQ's convention; a zero point of 0
 *                                        cannot be stored and is refused)
 *   scales   F16 [n_groups, out]
 *   g_idx    I32 [in]                    group of each input row (act-order or i / group)
 *   + quantize_config.json and config.json "quantization_config" (bits, group_size (-1: per
 *   channel), desc_act, sym, damp_percent, static_groups, true_sequential, quant_method).
 *   in and out must be multiples of 32 (AutoGPTQ's QuantLinear requires it).
 * awq (AutoAWQ GEMM, version "gemm"): 4-bit, groups of 32/64/128, no act-order
 *   qweight  I32 [in, out / 8]           8 outputs per word, nibble i holds output
 *                                        8c + (0, 2, 4, 6, 1, 3, 5, 7)[i]
 *   qzeros   I32 [in / group, out / 8]   the same order, zero points as they are
 *   scales   F16 [in / group, out]
 *   + config.json "quantization_config" {quant_method "awq", bits, group_size, zero_point,
 *   version "gemm"} (and quant_config.json in AutoAWQ's spelling).
 * w8a8 (compressed-tensors "int-quantized", what llm-compressor writes for SmoothQuant W8A8):
 *   weight        I8  [out, in]   symmetric int8 per output channel
 *   weight_scale  F16 [out, 1]
 *   activations int8 per token, dynamic (no stored input scales); the smoothed norms are the
 *   checkpoint's norm weights.
 * Everything else (embeddings, norms, head) is written as F16 (F32 with fp32), Llama names
 * and Hugging Face's RoPE layout (q/k rows un-permuted from GGUF's adjacent pairs), with
 * config.json and tokenizer files, into a directory that appears only when complete. */
#ifndef LB_EXPORT_HF_H
#define LB_EXPORT_HF_H

#include "core/error.h"
#include "model/model.h"
#include "quant/qweight.h"

typedef enum { LB_HF_GPTQ, LB_HF_AWQ, LB_HF_W8A8 } lb_hf_format;

typedef struct {
    bool fp32;   /* unquantized tensors as F32 instead of F16 */
} lb_export_hf_opts;

/* Writes dir (which must not exist yet). -1 with one line, nothing at dir, when the model is
 * not quantized, a tensor's layout cannot be held by the format, or the write fails. */
int lb_export_hf(const lb_model *m, const char *dir, lb_hf_format fmt,
                 const lb_export_hf_opts *opts, lb_error *err);

/* ---- reading (used by hf_model.c) ---- */

/* Tensor data as the reader needs it (row-major shape, outermost first). */
typedef struct {
    const char *dtype;   /* "I32", "F16", "F32", "I8" */
    int n_dims;
    const int64_t *shape;
    const void *data;
} lb_hf_part;

/* GPTQ parts -> lb_qweight (rows = out, cols = in); bits and group size from the config
 * (group 0: per channel). g_idx may have data NULL (then i / group). */
int lb_hf_gptq_to_qweight(const char *name, int bits, int group, int64_t in, int64_t out,
                          const lb_hf_part *qweight, const lb_hf_part *qzeros,
                          const lb_hf_part *scales, const lb_hf_part *g_idx, lb_qweight *qw,
                          lb_error *err);
int lb_hf_awq_to_qweight(const char *name, int group, int64_t in, int64_t out,
                         const lb_hf_part *qweight, const lb_hf_part *qzeros,
                         const lb_hf_part *scales, lb_qweight *qw, lb_error *err);
int lb_hf_w8a8_to_qweight(const char *name, int64_t in, int64_t out, const lb_hf_part *weight,
                          const lb_hf_part *scale, lb_qweight *qw, lb_error *err);

#endif
