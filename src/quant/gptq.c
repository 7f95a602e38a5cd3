/* GPTQ (Frantar et al. 2022): quantizes a weight matrix column by column, each column's
 * rounding error spread over the columns not yet quantized through the inverse Hessian of the
 * layer's inputs, so that the layer's output on the calibration data moves as little as
 * possible. Columns go in blocks of 128 with the update of the columns after a block applied
 * at once (lazy batch updates); H⁻¹ enters as the upper Cholesky factor of the dampened
 * inverse, computed in double with LAPACK. Every output row is independent of the others given
 * that factor, so within a block of columns rows are split over the thread pool; the lazy
 * update of the later columns is one matrix product (BLAS). */
#include "core/threadpool.h"
#include "core/timer.h"
#include "quant/quantize.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GPTQ_BLOCK 128
#define GPTQ_ROWS_PER_TASK 16

typedef struct {
    double d;
    int i;
} diag_entry;

static int by_diag_desc(const void *a, const void *b)
{
    const diag_entry *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? 1 : -1;
    return x->i - y->i;   /* stable among equals */
}

typedef struct {
    const float *U;       /* [cols][cols] upper Cholesky factor of H⁻¹, permuted order */
    float *Wp;            /* [rows][cols] working copy, permuted columns */
    const int *perm;      /* permuted position → original column */
    int rows, cols, bits, gs;
    bool sym, dynamic_groups;
    const int *group_of;  /* permuted position → group index */
    lb_qweight *out;
    double *task_loss;
    float *E;             /* [rows][GPTQ_BLOCK] scaled errors of the current block */
    int i1, i2;           /* the current block of columns */
} gptq_job;

static void group_grid(const float *w, int n, int bits, bool sym, float *scale, uint8_t *zero)
{
    float lo = w[0], hi = w[0];
    for (int k = 1; k < n; k++) {
        lo = fminf(lo, w[k]);
        hi = fmaxf(hi, w[k]);
    }
    lb_qgrid(lo, hi, bits, sym, scale, zero);
}

/* One block of columns [i1, i2) for a chunk of rows: quantize column by column, spreading each
 * error over the block's remaining columns; the errors, scaled, go to E for the lazy update. */
static void gptq_block_rows(void *ctx, int task, int thread)
{
    (void)thread;
    gptq_job *j = ctx;
    int r0 = task * GPTQ_ROWS_PER_TASK;
    int r1 = r0 + GPTQ_ROWS_PER_TASK < j->rows ? r0 + GPTQ_ROWS_PER_TASK : j->rows;
    int cols = j->cols, ng = j->out->n_groups, i1 = j->i1, i2 = j->i2;
    double loss = 0;
    for (int r = r0; r < r1; r++) {
        float *w = j->Wp + (size_t)r * cols;
        float *sc = j->out->scale + (size_t)r * ng;
        uint8_t *zp = j->out->zero + (size_t)r * ng;
        float *er = j->E + (size_t)r * GPTQ_BLOCK;
        for (int i = i1; i < i2; i++) {
            const float *u = j->U + (size_t)i * cols;
            int g = j->group_of[i];
            if (j->dynamic_groups && i % j->gs == 0) {
                int n = i + j->gs < cols ? j->gs : cols - i;
                group_grid(w + i, n, j->bits, j->sym, &sc[g], &zp[g]);
            }
            float x = w[i];
            uint8_t q = lb_qcode(x, sc[g], zp[g], j->bits);
            float dq = sc[g] * ((float)q - (float)zp[g]);
            j->out->q[(size_t)r * cols + j->perm[i]] = q;
            float e = (x - dq) / u[i];
            loss += 0.5 * (double)e * e;
            for (int c = i + 1; c < i2; c++)
                w[c] -= e * u[c];
            er[i - i1] = e;
        }
    }
    j->task_loss[task] += loss;
}

/* The upper Cholesky factor U of (H + λI)⁻¹ (H⁻¹ = UᵀU), in double; λ grows tenfold when the
 * matrix is not positive definite. */
static int inverse_factor(double *H, int n, double damp, float *U, lb_error *err)
{
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += H[(size_t)i * n + i];
    mean /= n;
    double *A = lb_malloc((size_t)n * (size_t)n * sizeof(double));
    for (int attempt = 0; attempt < 6; attempt++, damp *= 10) {
        memcpy(A, H, (size_t)n * (size_t)n * sizeof(double));
        for (int i = 0; i < n; i++)
            A[(size_t)i * n + i] += damp * mean;
        /* Row-major upper triangle = column-major lower: LAPACK works on the matrix as it
         * lies (A symmetric), with no transposed copies. */
        if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, A, n) != 0)
            continue;
        if (LAPACKE_dpotri_work(LAPACK_COL_MAJOR, 'L', n, A, n) != 0)
            continue;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < i; k++)
                A[(size_t)i * n + k] = A[(size_t)k * n + i];
        if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, A, n) != 0)
            continue;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++)
                U[(size_t)i * n + k] = k >= i ? (float)A[(size_t)i * n + k] : 0.0f;
        free(A);
        return 0;
    }
    free(A);
    return lb_fail(err, "Hessian of %d columns is not positive definite even with %g of its mean "
                   "diagonal added (--damp)", n, damp / 10);
}

int lb_gptq_quantize(const float *W, const float *H, int rows, int cols, int bits,
                     int group_size, bool sym, bool act_order, bool static_groups, float damp,
                     struct lb_pool *pool, lb_qweight *out, double *loss, lb_error *err)
{
    return lb_gptq_quantize_timed(W, H, rows, cols, bits, group_size, sym, act_order,
                                  static_groups, damp, pool, out, loss, NULL, err);
}

int lb_gptq_quantize_timed(const float *W, const float *H, int rows, int cols, int bits,
                           int group_size, bool sym, bool act_order, bool static_groups,
                           float damp, struct lb_pool *pool, lb_qweight *out, double *loss,
                           double *factor_ms, lb_error *err)
{
    size_t nn = (size_t)cols * (size_t)cols;
    lb_qweight_init(out, rows, cols, bits, group_size, sym, false);
    int gs = out->group_size;   /* 0 when one group covers the row */
    float *Wp = lb_malloc((size_t)rows * (size_t)cols * sizeof(float));
    int *perm = lb_malloc((size_t)cols * sizeof(int));
    int *group_of = lb_malloc((size_t)cols * sizeof(int));
    double *Hd = lb_malloc(nn * sizeof(double));
    float *U = lb_malloc(nn * sizeof(float));

    /* Dead inputs (never nonzero in the calibration data): any value is as good, so GPTQ
     * zeroes the weight and gives the column a unit diagonal to keep H invertible. */
    bool *dead = lb_calloc((size_t)cols, sizeof(bool));
    for (int i = 0; i < cols; i++)
        dead[i] = H[(size_t)i * cols + i] == 0.0f;

    diag_entry *order = lb_malloc((size_t)cols * sizeof(diag_entry));
    for (int i = 0; i < cols; i++)
        order[i] = (diag_entry){dead[i] ? 1.0 : (double)H[(size_t)i * cols + i], i};
    if (act_order)
        qsort(order, (size_t)cols, sizeof *order, by_diag_desc);
    for (int i = 0; i < cols; i++)
        perm[i] = order[i].i;
    free(order);

    for (int i = 0; i < cols; i++) {
        int pi = perm[i];
        for (int k = 0; k < cols; k++)
            Hd[(size_t)i * cols + k] = dead[pi] || dead[perm[k]]
                                           ? (i == k ? 1.0 : 0.0)
                                           : (double)H[(size_t)pi * cols + perm[k]];
    }
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++)
            Wp[(size_t)r * cols + i] = dead[perm[i]] ? 0.0f : W[(size_t)r * cols + perm[i]];

    double w0 = lb_now_ms(), c0 = lb_cpu_ms();
    int frc = inverse_factor(Hd, cols, damp, U, err);
    if (factor_ms) {
        factor_ms[0] += lb_now_ms() - w0;
        factor_ms[1] += lb_cpu_ms() - c0;
    }
    if (frc) {
        free(Wp); free(perm); free(group_of); free(Hd); free(U); free(dead);
        lb_qweight_free(out);
        return -1;
    }
    free(Hd);

    /* Groups: one per row; fixed in advance from the original columns (static groups); or
     * formed in processing order from the updated columns as they arrive (GPTQ's default,
     * which with act-order scatters each group over the columns and so needs g_idx). */
    bool dynamic = gs > 0 && !static_groups;
    for (int i = 0; i < cols; i++)
        group_of[i] = gs == 0 ? 0 : dynamic ? i / gs : perm[i] / gs;
    if (gs == 0 || !dynamic) {
        int span = gs ? gs : cols;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < out->n_groups; g++) {
                int c0 = g * span, n = c0 + span < cols ? span : cols - c0;
                float *tmp = lb_malloc((size_t)n * sizeof(float));
                for (int k = 0; k < n; k++)
                    tmp[k] = dead[c0 + k] ? 0.0f : W[(size_t)r * cols + c0 + k];
                group_grid(tmp, n, bits, sym, &out->scale[(size_t)r * out->n_groups + g],
                           &out->zero[(size_t)r * out->n_groups + g]);
                free(tmp);
            }
    }
    if (act_order && dynamic) {
        out->g_idx = lb_malloc((size_t)cols * sizeof(int32_t));
        for (int i = 0; i < cols; i++)
            out->g_idx[perm[i]] = group_of[i];
    }
    free(dead);

    int n_tasks = (rows + GPTQ_ROWS_PER_TASK - 1) / GPTQ_ROWS_PER_TASK;
    gptq_job job = {U, Wp, perm, rows, cols, bits, gs, sym, dynamic, group_of, out,
                    lb_calloc((size_t)n_tasks, sizeof(double)),
                    lb_malloc((size_t)rows * GPTQ_BLOCK * sizeof(float)), 0, 0};
    for (int i1 = 0; i1 < cols; i1 += GPTQ_BLOCK) {
        int i2 = i1 + GPTQ_BLOCK < cols ? i1 + GPTQ_BLOCK : cols;
        job.i1 = i1;
        job.i2 = i2;
        if (pool)
            lb_pool_run(pool, n_tasks, gptq_block_rows, &job);
        else
            for (int t = 0; t < n_tasks; t++)
                gptq_block_rows(&job, t, 0);
        /* Lazy batch update of every later column at once: W[:, i2:] -= E · U[i1:i2, i2:]. */
        if (i2 < cols)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols - i2, i2 - i1,
                        -1.0f, job.E, GPTQ_BLOCK, U + (size_t)i1 * cols + i2, cols, 1.0f,
                        Wp + i2, cols);
    }
    double total = 0;
    for (int t = 0; t < n_tasks; t++)
        total += job.task_loss[t];
    *loss = total;
    free(job.task_loss);
    free(job.E);
    free(Wp);
    free(perm);
    free(group_of);
    free(U);
    return 0;
}
