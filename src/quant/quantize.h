/* Whole-model quantization: the sequential, block-by-block driver behind `lowbit quantize`.
 *
 * RTN needs no data. The calibrated methods (GPTQ, AWQ, SmoothQuant) run the calibration
 * windows through the model one block at a time: block l sees the outputs of blocks 0..l-1
 * as already quantized, the engine's capture hook hands over each linear layer's input, and
 * only statistics are kept (the Hessian H = 2/N·XᵀX per input shared by a group of linears,
 * per-channel max|x| and mean|x|). The block's linears are then quantized, and the block is
 * run again with its quantized weights to produce the next block's inputs. Memory stays at the
 * statistics plus one activation matrix of the calibration set. */
#ifndef LB_QUANTIZE_H
#define LB_QUANTIZE_H

#include "core/error.h"
#include "model/model.h"
#include "quant/calib.h"
#include "quant/qweight.h"

#include <stdbool.h>

typedef enum {
    LB_QM_RTN,
    LB_QM_GPTQ,
    LB_QM_AWQ,
    LB_QM_SMOOTHQUANT,
} lb_qmethod;

typedef struct {
    lb_qmethod method;
    int bits;              /* 2, 3, 4, 8 (which ones depends on the method) */
    int group_size;        /* 0 (per output channel), 32, 64, 128 */
    bool sym;
    bool act_order;        /* GPTQ */
    bool static_groups;    /* GPTQ with act-order: groups fixed from the original columns */
    bool all_sites_float;  /* GPTQ: every site's Hessian from the float block, instead of
                            * from the block with the linears before it quantized */
    float damp;            /* GPTQ: fraction of the mean Hessian diagonal added to it */
    float alpha;           /* SmoothQuant migration strength; 0 = naive W8A8 (no smoothing) */
    bool awq_clip;         /* AWQ: search a clipping ratio per group after scaling */
    int n_threads;         /* engine pool size; <= 0: all cores */
    const lb_calib *calib; /* required by the calibrated methods, ignored by RTN */
    const char *calib_name; /* base name of the calibration file, recorded in m->quant */
    bool fake;             /* write dequantized fp32 back instead of packed tensors */
    bool progress;         /* progress bar on stderr */
} lb_quant_opts;

/* Defaults: RTN, 4 bits, groups of 128, asymmetric, damp 0.01, alpha 0.5, clipping on. */
lb_quant_opts lb_quant_defaults(void);

const char *lb_qmethod_name(lb_qmethod m);
/* "rtn", "gptq", "awq", "smoothquant" → method; -1 when unknown. */
int lb_qmethod_parse(const char *name, lb_qmethod *out);

/* Whether the method supports these bits and group size (one line naming the option). */
int lb_quant_check(const lb_quant_opts *o, lb_error *err);

/* One quantized linear layer. */
typedef struct {
    char name[LB_MAX_NAME];
    int rows, cols;
    /* Relative output error on the calibration inputs, tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) over up to 128
     * evenly spaced rows; NaN for RTN,
     * which sees no inputs. */
    double rel_error;
    /* GPTQ's own loss, Σ (w − q)² / (2·[H⁻¹]_ii²) over the layer; NaN for other methods. */
    double gptq_loss;
} lb_quant_layer;

/* Where a calibrated run spends its time (lb_quant_report.phase_*). */
typedef enum {
    LB_QP_EMBED,       /* token embeddings of the calibration windows */
    LB_QP_CAPTURE,     /* each block's forward up to its linears' inputs (GPTQ: after the
                        * linears before them in the block were quantized) */
    LB_QP_STATS,       /* input statistics: Hessians X Xᵀ, |x| maxima and means */
    LB_QP_FACTOR,      /* GPTQ: Cholesky factor of the dampened inverse Hessian */
    LB_QP_SOLVE,       /* the method's own work (GPTQ columns, AWQ search, rounding) */
    LB_QP_REPORT,      /* the per-layer output error for the report */
    LB_QP_SHARE,       /* under mpirun: the processes' results of a block passed around */
    LB_QP_REFORWARD,   /* the rest of each block with its quantized weights: the next block's
                        * input (AWQ, SmoothQuant: the whole block again) */
    LB_QP_COMMIT,      /* packing the results into the model */
    LB_QP_COUNT
} lb_quant_phase;

const char *lb_quant_phase_name(lb_quant_phase p);

typedef struct {
    lb_quant_layer *layers;
    int n_layers;
    int64_t n_weights;      /* quantized weights */
    double seconds;
    double phase_s[LB_QP_COUNT];       /* wall seconds per phase */
    double phase_cpu_s[LB_QP_COUNT];   /* CPU seconds per phase (all threads) */
} lb_quant_report;

void lb_quant_report_free(lb_quant_report *r);

/* Quantizes every linear layer of every block in place (packed tensors, or fp32 when
 * o->fake), folds smoothing/scaling factors into the norms and fills m->quant. Fails on an
 * already quantized model, an unsupported architecture or option, or missing calibration. */
int lb_quantize_model(lb_model *m, const lb_quant_opts *o, lb_quant_report *rep, lb_error *err);

/* Shared by the methods (quantize.c). */

/* Σ_r d_r H d_rᵀ for D = A − B (rows × cols) and a symmetric H (cols × cols). */
double lb_quant_hessian_error(const float *A, const float *B, const float *H, int rows, int cols);

/* GPTQ (gptq.c): quantizes W (rows × cols, unchanged) given the Hessian H (cols × cols, full
 * symmetric, unchanged). Rows run in parallel on pool (may be NULL). *loss gets GPTQ's loss. */
struct lb_pool;
int lb_gptq_quantize(const float *W, const float *H, int rows, int cols, int bits,
                     int group_size, bool sym, bool act_order, bool static_groups, float damp,
                     struct lb_pool *pool, lb_qweight *out, double *loss, lb_error *err);
/* The same, adding the wall and CPU milliseconds spent on the inverse factor to factor_ms[0]
 * and factor_ms[1] (factor_ms may be NULL). */
int lb_gptq_quantize_timed(const float *W, const float *H, int rows, int cols, int bits,
                           int group_size, bool sym, bool act_order, bool static_groups,
                           float damp, struct lb_pool *pool, lb_qweight *out, double *loss,
                           double *factor_ms, lb_error *err);

/* AWQ (awq.c). Searches the per-input-channel scale s = mean|x|^α (normalized) over a grid of
 * n_grid values of α in [0, 1) that minimizes Σ over the n_lin linears W_i (rows_i × cols) of
 * the output error of Q(W_i·diag(s))·diag(1/s) under H. Writes s (cols) and returns the best α. */
float lb_awq_search_scale(const float *const *W, const int *rows, int n_lin, int cols,
                          const float *H, const float *mean_abs, int bits, int group_size,
                          bool sym, int n_grid, float *s);
/* Groups quantized with a clipped range: each (row, group) tries max-range ratios 1, 0.975, …
 * 0.525 and keeps the one with the least output error under H's diagonal block for the group. */
void lb_awq_quantize_clipped(const float *W, int rows, int cols, const float *H, int bits,
                             int group_size, bool sym, struct lb_pool *pool, lb_qweight *out);

/* SmoothQuant (smoothquant.c): s_j = max|X_j|^α / max_i |W_ij|^(1−α) over the linears that
 * share the input (n_lin of them, rows_i × cols). Channels with no signal get s = 1. */
void lb_smooth_scales(const float *const *W, const int *rows, int n_lin, int cols,
                      const float *act_max, float alpha, float *s);

#endif
