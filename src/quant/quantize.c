/* The sequential quantization driver (see quantize.h): options, the capture of calibration
 * statistics block by block, and the per-block work of each method. */
#include "quant/quantize.h"
#include "core/log.h"
#include "core/dist.h"
#include "core/progress.h"
#include "core/timer.h"
#include "model/engine.h"
#include "quant/pack.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

lb_quant_opts lb_quant_defaults(void)
{
    lb_quant_opts o;
    memset(&o, 0, sizeof o);
    o.method = LB_QM_RTN;
    o.bits = 4;
    o.group_size = 128;
    o.damp = 0.01f;
    o.alpha = 0.5f;
    o.awq_clip = true;
    return o;
}

static const char *const method_names[] = {"rtn", "gptq", "awq", "smoothquant"};

const char *lb_qmethod_name(lb_qmethod m)
{
    return (unsigned)m < 4 ? method_names[m] : "?";
}

int lb_qmethod_parse(const char *name, lb_qmethod *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, method_names[i]) == 0) {
            *out = (lb_qmethod)i;
            return 0;
        }
    return -1;
}

int lb_quant_check(const lb_quant_opts *o, lb_error *err)
{
    const char *name = lb_qmethod_name(o->method);
    int b = o->bits, g = o->group_size;
    if (g != 0 && g != 32 && g != 64 && g != 128)
        return lb_fail(err, "--group-size %d: expected 0 (per channel), 32, 64 or 128", g);
    switch (o->method) {
    case LB_QM_RTN:
    case LB_QM_GPTQ:
        if (b != 2 && b != 3 && b != 4 && b != 8)
            return lb_fail(err, "--bits %d: %s supports 2, 3, 4 or 8", b, name);
        break;
    case LB_QM_AWQ:
        if (b != 3 && b != 4)
            return lb_fail(err, "--bits %d: awq supports 3 or 4 (weight-only groups)", b);
        if (g == 0)
            return lb_fail(err, "--group-size 0: awq needs groups of 32, 64 or 128");
        break;
    case LB_QM_SMOOTHQUANT:
        if (b != 8)
            return lb_fail(err, "--bits %d: smoothquant is W8A8 and supports 8 only", b);
        if (g != 0)
            return lb_fail(err, "--group-size %d: smoothquant quantizes weights per output "
                           "channel (0 only)", g);
        break;
    default:
        return lb_fail(err, "unknown quantization method %d", (int)o->method);
    }
    if (o->act_order && o->method != LB_QM_GPTQ)
        return lb_fail(err, "--act-order applies to gptq only (method is %s)", name);
    if (o->static_groups && o->method != LB_QM_GPTQ)
        return lb_fail(err, "--static-groups applies to gptq only (method is %s)", name);
    if (o->all_sites_float && o->method != LB_QM_GPTQ)
        return lb_fail(err, "--no-true-sequential applies to gptq only (method is %s)", name);
    if (!(o->damp > 0 && o->damp < 1))
        return lb_fail(err, "--damp %g: expected a fraction in (0, 1)", (double)o->damp);
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return lb_fail(err, "--alpha %g: expected a value in [0, 1]", (double)o->alpha);
    return 0;
}

static const char *const phase_names[LB_QP_COUNT] = {
    "embed", "capture", "stats", "factor", "solve", "report", "share", "reforward", "commit"};

const char *lb_quant_phase_name(lb_quant_phase p)
{
    return (unsigned)p < LB_QP_COUNT ? phase_names[p] : "?";
}

/* Wall and CPU clocks at one moment, for charging the time since then to a phase. */
typedef struct {
    double wall, cpu;
} stamp;

static stamp stamp_now(void)
{
    return (stamp){lb_now_ms(), lb_cpu_ms()};
}

/* Adds the time since *since to phase p (negative k moves it out of p) and returns now. */
static stamp charge(lb_quant_report *r, lb_quant_phase p, stamp since, double k)
{
    stamp now = stamp_now();
    r->phase_s[p] += k * (now.wall - since.wall) / 1e3;
    r->phase_cpu_s[p] += k * (now.cpu - since.cpu) / 1e3;
    return now;
}

void lb_quant_report_free(lb_quant_report *r)
{
    if (!r)
        return;
    free(r->layers);
    memset(r, 0, sizeof *r);
}

double lb_quant_hessian_error(const float *A, const float *B, const float *H, int rows, int cols)
{
    size_t n = (size_t)rows * (size_t)cols;
    float *D = lb_malloc(n * sizeof(float));
    float *T = lb_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        D[i] = A[i] - (B ? B[i] : 0.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, cols, 1.0f, D, cols, H,
                cols, 0.0f, T, cols);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)D[i] * T[i];
    free(D);
    free(T);
    return s;
}

/* The calibration passes' F32 linears through BLAS (lb_engine_set_gemm). */
static void blas_sgemm(int n, int out, int in, const float *x, const float *w, float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f,
                y, out);
}

/* ---- statistics of each linear layer's input --------------------------------------------- */

typedef struct {
    int width;
    float *H;          /* [width][width]: Σ x xᵀ, upper triangle while accumulating */
    float *abs_max;    /* [width] */
    double *abs_sum;   /* [width] */
    float *abs_mean;   /* [width], after finishing */
    int64_t n;
} site_stats;

typedef struct {
    site_stats site[LB_SITE_COUNT];
    lb_quant_report *rep;   /* the time of the statistics moves from capture to stats */
    bool abs_stats;         /* |x| maxima and means (AWQ, SmoothQuant; GPTQ needs only H) */
    int want;               /* the one site whose inputs are wanted, or -1 for all of them */
} capture_state;

static void stats_init(site_stats *s, int width, bool hessian)
{
    memset(s, 0, sizeof *s);
    s->width = width;
    if (hessian)
        s->H = lb_calloc((size_t)width * (size_t)width, sizeof(float));
    s->abs_max = lb_calloc((size_t)width, sizeof(float));
    s->abs_sum = lb_calloc((size_t)width, sizeof(double));
    s->abs_mean = lb_calloc((size_t)width, sizeof(float));
}

static void stats_reset(site_stats *s)
{
    size_t w = (size_t)s->width;
    if (s->H)
        memset(s->H, 0, w * w * sizeof(float));
    memset(s->abs_max, 0, w * sizeof(float));
    memset(s->abs_sum, 0, w * sizeof(double));
    s->n = 0;
}

static void stats_free(site_stats *s)
{
    free(s->H);
    free(s->abs_max);
    free(s->abs_sum);
    free(s->abs_mean);
}

/* H becomes the full symmetric 2/N·XᵀX (GPTQ's scaling), abs_mean the mean |x|. */
static void stats_finish(site_stats *s)
{
    int w = s->width;
    double inv = s->n > 0 ? 1.0 / (double)s->n : 0.0;
    for (int j = 0; j < w; j++)
        s->abs_mean[j] = (float)(s->abs_sum[j] * inv);
    if (!s->H)
        return;
    float k = (float)(2.0 * inv);
    for (int i = 0; i < w; i++) {
        float *row = s->H + (size_t)i * w;
        for (int j = i; j < w; j++)
            row[j] *= k;
        for (int j = 0; j < i; j++)
            row[j] = s->H[(size_t)j * w + i];
    }
}

static void on_capture(void *user, int layer, lb_site site, const float *x, int n, int width)
{
    (void)layer;
    capture_state *cs = user;
    site_stats *s = &cs->site[site];
    if (cs->want >= 0 && (int)site != cs->want)
        return;   /* a site already done, passed again on the way to the next one */
    if (width != s->width)
        return;   /* cannot happen: widths come from the same config */
    stamp t0 = stamp_now();
    if (s->H)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, width, n, 1.0f, x, width, 1.0f, s->H,
                    width);
    for (int t = 0; t < n && cs->abs_stats; t++) {
        const float *row = x + (size_t)t * width;
        for (int j = 0; j < width; j++) {
            float a = fabsf(row[j]);
            s->abs_sum[j] += a;
            if (a > s->abs_max[j])
                s->abs_max[j] = a;
        }
    }
    s->n += n;
    charge(cs->rep, LB_QP_CAPTURE, t0, -1.0);
    charge(cs->rep, LB_QP_STATS, t0, 1.0);
}

/* ---- the linears of a block ------------------------------------------------------------- */

enum { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };

static const lb_site lin_site[LIN_COUNT] = {LB_SITE_QKV, LB_SITE_QKV, LB_SITE_QKV, LB_SITE_O,
                                            LB_SITE_FFN, LB_SITE_FFN, LB_SITE_DOWN};

/* Sets of a block's linears, a bit each (bit i: linear i). */
#define ALL_LINEARS ((1u << LIN_COUNT) - 1)

static unsigned site_linears(lb_site site)
{
    unsigned mask = 0;
    for (int i = 0; i < LIN_COUNT; i++)
        if (lin_site[i] == site)
            mask |= 1u << i;
    return mask;
}

static bool in_set(unsigned mask, int i)
{
    return (mask >> i) & 1u;
}

typedef struct {
    lb_tensor *t;      /* NULL when the architecture has none (GPT-2's gate) */
    float *W;          /* fp32 copy [rows][cols], modified by scaling before quantization */
    int rows, cols;
} linear;

static lb_tensor *layer_linear(const lb_layer *L, int i)
{
    lb_tensor *const all[LIN_COUNT] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return all[i];
}

static void linear_load(linear *li, lb_tensor *t)
{
    li->t = t;
    li->W = NULL;
    if (!t)
        return;
    li->cols = (int)t->ne[0];
    li->rows = (int)t->ne[1];
    li->W = lb_malloc((size_t)li->rows * (size_t)li->cols * sizeof(float));
    for (int r = 0; r < li->rows; r++)
        lb_tensor_get_row(t, r, li->W + (size_t)r * li->cols);
}

/* Puts a quantized matrix into the model: packed for the runtime kernels, or (fake) expanded
 * back to fp32 so the float engine runs the quantized values. */
static int commit(lb_model *m, const linear *li, const lb_qweight *qw, bool fake, lb_error *err)
{
    if (!fake)
        return lb_model_set_quantized(m, li->t->name, qw, err);
    float *deq = lb_malloc((size_t)li->rows * (size_t)li->cols * sizeof(float));
    lb_qweight_dequant(qw, deq);
    int rc = lb_model_set_f32(m, li->t->name, deq, err);
    free(deq);
    return rc;
}

/* Writes the scaled copy of a norm (or its bias) back into the model. */
static int set_vector(lb_model *m, const lb_tensor *t, const float *v, lb_error *err)
{
    return lb_model_set_f32(m, t->name, v, err);
}

static float *tensor_copy(const lb_tensor *t)
{
    int64_t n = lb_tensor_nelements(t);
    float *v = lb_malloc((size_t)n * sizeof(float));
    int64_t cols = t->ne[0];
    for (int64_t r = 0; r < n / cols; r++)
        lb_tensor_get_row(t, r, v + r * cols);
    return v;
}

typedef struct {
    lb_model *m;
    const lb_quant_opts *o;
    lb_pool *pool;
    lb_quant_report *rep;
    lb_qweight pending[LIN_COUNT];   /* this block's results, until they go into the model */
    int owner[LIN_COUNT];            /* the process that quantizes each (see assign_linears) */
} run_ctx;

static bool mine(const run_ctx *rc, int i)
{
    return rc->owner[i] == lb_dist_rank();
}

/* Keeps a block's quantized matrix (taking ownership) until the block is finished. */
static void stage(run_ctx *rc, int i, lb_qweight *qw)
{
    lb_qweight_free(&rc->pending[i]);
    rc->pending[i] = *qw;
    memset(qw, 0, sizeof *qw);
}

/* Puts the block's staged matrices into the model (or only drops them after a failure). */
static int commit_block(run_ctx *rc, linear *lin, int status, lb_error *err)
{
    for (int i = 0; i < LIN_COUNT; i++) {
        if (rc->pending[i].q && !status)
            status = commit(rc->m, &lin[i], &rc->pending[i], rc->o->fake, err);
        lb_qweight_free(&rc->pending[i]);
    }
    return status;
}

/* The rest of a block, and the next block's inputs, come from the block run with its quantized
 * weights expanded to fp32, as in the GPTQ paper (and fast through BLAS). The tensors are
 * pointed at the expanded values for the runs and restored afterwards; nothing of the model
 * is replaced yet. */
typedef struct {
    lb_tensor saved[LIN_COUNT];
    float *values[LIN_COUNT];
} expanded_block;

/* Expands the staged matrices of the linears in mask (x zeroed at the block's start). */
static void expand_linears(run_ctx *rc, linear *lin, unsigned mask, expanded_block *x)
{
    for (int i = 0; i < LIN_COUNT; i++) {
        if (!in_set(mask, i) || x->values[i] || !rc->pending[i].q || !lin[i].t)
            continue;
        lb_tensor *t = lin[i].t;
        size_t n = (size_t)lin[i].rows * (size_t)lin[i].cols;
        x->values[i] = lb_malloc(n * sizeof(float));
        lb_qweight_dequant(&rc->pending[i], x->values[i]);
        x->saved[i] = *t;
        t->type = LB_TYPE_F32;
        t->data = x->values[i];
        t->nbytes = n * sizeof(float);
        t->qlayout = NULL;
        t->packed = NULL;
    }
}

static void restore_block(linear *lin, expanded_block *x)
{
    for (int i = 0; i < LIN_COUNT; i++)
        if (x->values[i]) {
            *lin[i].t = x->saved[i];
            free(x->values[i]);
            x->values[i] = NULL;
        }
}

#define REPORT_ROWS 128

static void report_layer(run_ctx *rc, const linear *li, const lb_qweight *qw, const float *H,
                         double gptq_loss)
{
    lb_quant_report *rep = rc->rep;
    stamp t0 = stamp_now();
    lb_quant_layer *q = &rep->layers[rep->n_layers++];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", li->t->name);
    q->rows = li->rows;
    q->cols = li->cols;
    q->gptq_loss = gptq_loss;
    q->rel_error = NAN;
    if (H) {
        /* Measured on at most REPORT_ROWS evenly spaced rows: the figure is a ratio, and the
         * full product would cost as much as GPTQ itself on a large layer. */
        int step = (li->rows + REPORT_ROWS - 1) / REPORT_ROWS, n = 0, cols = li->cols;
        float *deq = lb_malloc((size_t)li->rows * (size_t)cols * sizeof(float));
        float *a = lb_malloc((size_t)REPORT_ROWS * (size_t)cols * sizeof(float));
        float *b = lb_malloc((size_t)REPORT_ROWS * (size_t)cols * sizeof(float));
        lb_qweight_dequant(qw, deq);
        for (int r = 0; r < li->rows; r += step, n++) {
            memcpy(a + (size_t)n * cols, li->W + (size_t)r * cols, (size_t)cols * sizeof(float));
            memcpy(b + (size_t)n * cols, deq + (size_t)r * cols, (size_t)cols * sizeof(float));
        }
        double e = lb_quant_hessian_error(a, b, H, n, cols);
        double base = lb_quant_hessian_error(a, NULL, H, n, cols);
        q->rel_error = base > 0 ? e / base : 0.0;
        free(deq);
        free(a);
        free(b);
    }
    rep->n_weights += (int64_t)li->rows * li->cols;
    charge(rep, LB_QP_SOLVE, t0, -1.0);
    charge(rep, LB_QP_REPORT, t0, 1.0);
}

/* Scales input columns of W by s (W·diag(s)). */
static void scale_cols(float *W, int rows, int cols, const float *s)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            W[(size_t)r * cols + c] *= s[c];
}

/* H' = S⁻¹ H S⁻¹: the statistics of inputs divided by s. */
static void scale_hessian(float *H, int n, const float *s)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            H[(size_t)i * n + j] /= s[i] * s[j];
}

/* Divides a norm's weight (and bias) by s: the norm's output, the linears' input, shrinks by s. */
static int fold_into_norm(lb_model *m, const lb_tensor *w, const lb_tensor *b, const float *s,
                          lb_error *err)
{
    const lb_tensor *ts[2] = {w, b};
    for (int k = 0; k < 2; k++) {
        if (!ts[k])
            continue;
        float *v = tensor_copy(ts[k]);
        int64_t n = lb_tensor_nelements(ts[k]);
        for (int64_t j = 0; j < n; j++)
            v[j] /= s[j];
        int rc = set_vector(m, ts[k], v, err);
        free(v);
        if (rc)
            return -1;
    }
    return 0;
}

/* ---- a block's linears shared among processes (mpirun) --------------------------------- */

/* Every process runs the calibration forward passes and finds the same statistics; the
 * linears of a block, independent given those, are then divided among the processes: the
 * costliest first (GPTQ's solve grows as rows x cols² plus cols³ for its Cholesky), each to
 * the process with the least work so far. GPTQ divides each site's linears (mask) in turn,
 * AWQ the whole block's. Every process computes the same assignment; alone, everything is
 * process 0's. */
static void assign_linears(run_ctx *rc, const linear *lin, unsigned mask)
{
    int n = lb_dist_size() < LIN_COUNT ? lb_dist_size() : LIN_COUNT;
    double load[LIN_COUNT] = {0};
    bool placed[LIN_COUNT] = {false};
    for (int i = 0; i < LIN_COUNT; i++)
        rc->owner[i] = 0;
    for (;;) {
        int best = -1;
        double best_cost = -1;
        for (int i = 0; i < LIN_COUNT; i++) {
            double r = lin[i].rows, c = lin[i].cols, cost = r * c * c + c * c * c;
            if (lin[i].t && in_set(mask, i) && !placed[i] && cost > best_cost) {
                best = i;
                best_cost = cost;
            }
        }
        if (best < 0)
            break;
        int to = 0;
        for (int k = 1; k < n; k++)
            if (load[k] < load[to])
                to = k;
        placed[best] = true;
        rc->owner[best] = to;
        load[to] += best_cost;
    }
}

/* A quantized matrix from process root to all: its shape first, so the others can allocate. */
static int share_qweight(lb_qweight *w, int root)
{
    int head[8] = {w->rows, w->cols, w->bits, w->group_size, w->n_groups, w->sym,
                   w->g_idx != NULL, w->w8a8};
    if (lb_dist_bcast(head, sizeof head, root))
        return -1;
    if (lb_dist_rank() != root) {
        lb_qweight_free(w);
        lb_qweight_init(w, head[0], head[1], head[2], head[3], head[5], head[6]);
        w->w8a8 = head[7];
        if (w->n_groups != head[4])
            return -1;
    }
    size_t cells = (size_t)head[0] * (size_t)head[1], groups = (size_t)head[0] * (size_t)head[4];
    if (lb_dist_bcast(w->q, cells, root) || lb_dist_bcast(w->scale, groups * sizeof(float), root) ||
        lb_dist_bcast(w->zero, groups, root))
        return -1;
    return w->g_idx ? lb_dist_bcast(w->g_idx, (size_t)head[1] * sizeof(int32_t), root) : 0;
}

/* After each process quantized its share of the linears in mask (their report rows appended
 * from index base, in linear order): every process receives the others' matrices and report
 * rows, so all of them continue with the whole set, and the report lists it in linear order. */
static int share_linears(run_ctx *rc, linear *lin, unsigned mask, int base, int status,
                         lb_error *err)
{
    if (!lb_dist_active())
        return status;
    if (lb_dist_agree(status, err))
        return -1;
    lb_quant_report *rep = rc->rep;
    lb_quant_layer rows[LIN_COUNT];
    int n = 0, own = 0;
    for (int i = 0; i < LIN_COUNT; i++) {
        if (!lin[i].t || !in_set(mask, i))
            continue;
        lb_quant_layer row;
        memset(&row, 0, sizeof row);
        if (mine(rc, i))
            row = rep->layers[base + own++];
        else
            rep->n_weights += (int64_t)lin[i].rows * lin[i].cols;
        if (lb_dist_bcast(&row, sizeof row, rc->owner[i]) ||
            share_qweight(&rc->pending[i], rc->owner[i]))
            return lb_fail(err, "%s: passing it between the processes failed", lin[i].t->name);
        rows[n++] = row;
    }
    memcpy(rep->layers + base, rows, (size_t)n * sizeof *rows);
    rep->n_layers = base + n;
    return 0;
}

/* ---- per-block work of each method ------------------------------------------------------ */

static int block_rtn(run_ctx *rc, linear *lin, lb_error *err)
{
    const lb_quant_opts *o = rc->o;
    for (int i = 0; i < LIN_COUNT; i++) {
        if (!lin[i].t)
            continue;
        lb_qweight qw;
        lb_qweight_rtn(lin[i].W, lin[i].rows, lin[i].cols, o->bits, o->group_size, o->sym, &qw);
        report_layer(rc, &lin[i], &qw, NULL, NAN);
        stage(rc, i, &qw);
    }
    return 0;
}

/* GPTQ of the linears in mask (this process's share of them), all fed by one site. */
static int gptq_linears(run_ctx *rc, linear *lin, unsigned mask, capture_state *cs,
                        lb_error *err)
{
    const lb_quant_opts *o = rc->o;
    for (int i = 0; i < LIN_COUNT; i++) {
        if (!lin[i].t || !in_set(mask, i) || !mine(rc, i))
            continue;
        const float *H = cs->site[lin_site[i]].H;
        lb_qweight qw;
        double loss = 0, factor_ms[2] = {0, 0};
        int r = lb_gptq_quantize_timed(lin[i].W, H, lin[i].rows, lin[i].cols, o->bits,
                                       o->group_size, o->sym, o->act_order, o->static_groups,
                                       o->damp, rc->pool, &qw, &loss, factor_ms, err);
        for (int k = 0; k < 2; k++) {
            double *by_clock = k ? rc->rep->phase_cpu_s : rc->rep->phase_s;
            by_clock[LB_QP_FACTOR] += factor_ms[k] / 1e3;
            by_clock[LB_QP_SOLVE] -= factor_ms[k] / 1e3;
        }
        if (r)
            return lb_fail_prefix(err, "%s: ", lin[i].t->name);
        report_layer(rc, &lin[i], &qw, H, loss);
        stage(rc, i, &qw);
    }
    return 0;
}

/* AWQ's scale search for one group of linears sharing an input, the fold of the scales into
 * what precedes them, and the matching change of the input statistics. */
static void awq_scale_group(run_ctx *rc, linear *lin, const int *idx, int n_idx, site_stats *st,
                            float *s)
{
    const float *Ws[3];
    int rows[3];
    for (int k = 0; k < n_idx; k++) {
        Ws[k] = lin[idx[k]].W;
        rows[k] = lin[idx[k]].rows;
    }
    float alpha = lb_awq_search_scale(Ws, rows, n_idx, st->width, st->H, st->abs_mean,
                                      rc->o->bits, rc->o->group_size, rc->o->sym, 20, s);
    lb_log_debug("awq: %s: alpha %.2f", lin[idx[0]].t->name, (double)alpha);
    for (int k = 0; k < n_idx; k++)
        scale_cols(lin[idx[k]].W, lin[idx[k]].rows, lin[idx[k]].cols, s);
    scale_hessian(st->H, st->width, s);
}

static int block_awq(run_ctx *rc, int l, linear *lin, capture_state *cs, lb_error *err)
{
    lb_model *m = rc->m;
    const lb_config *c = &m->cfg;
    const lb_layer *L = &m->layers[l];
    const lb_quant_opts *o = rc->o;
    int wide = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    if (c->n_heads * c->head_dim > wide)
        wide = c->n_heads * c->head_dim;
    float *s = lb_malloc((size_t)wide * sizeof(float));
    int rcode = 0;

    /* attention norm → q, k, v */
    const int qkv[3] = {LIN_Q, LIN_K, LIN_V};
    awq_scale_group(rc, lin, qkv, 3, &cs->site[LB_SITE_QKV], s);
    if (fold_into_norm(m, L->attn_norm, L->attn_norm_b, s, err))
        goto fail;

    /* v → o, when every o input channel has its own v row (no grouped-query sharing) */
    if (c->n_heads == c->n_kv_heads && lin[LIN_V].rows == lin[LIN_O].cols) {
        const int oi[1] = {LIN_O};
        awq_scale_group(rc, lin, oi, 1, &cs->site[LB_SITE_O], s);
        linear *v = &lin[LIN_V];
        for (int r = 0; r < v->rows; r++)
            for (int k = 0; k < v->cols; k++)
                v->W[(size_t)r * v->cols + k] /= s[r];
        if (L->bv && fold_into_norm(m, L->bv, NULL, s, err))
            goto fail;
    }

    /* ffn norm → gate, up */
    const int ffn[2] = {LIN_GATE, LIN_UP};
    if (lin[LIN_GATE].t)
        awq_scale_group(rc, lin, ffn, 2, &cs->site[LB_SITE_FFN], s);
    else
        awq_scale_group(rc, lin, ffn + 1, 1, &cs->site[LB_SITE_FFN], s);
    if (fold_into_norm(m, L->ffn_norm, L->ffn_norm_b, s, err))
        goto fail;

    /* up → down: SwiGLU is linear in up; GPT-2's GELU is not, so it keeps down unscaled */
    if (lin[LIN_GATE].t) {
        const int di[1] = {LIN_DOWN};
        awq_scale_group(rc, lin, di, 1, &cs->site[LB_SITE_DOWN], s);
        linear *up = &lin[LIN_UP];
        for (int r = 0; r < up->rows; r++)
            for (int k = 0; k < up->cols; k++)
                up->W[(size_t)r * up->cols + k] /= s[r];
        if (L->b_up && fold_into_norm(m, L->b_up, NULL, s, err))
            goto fail;
    }

    for (int i = 0; i < LIN_COUNT; i++) {
        if (!lin[i].t || !mine(rc, i))
            continue;
        const float *H = cs->site[lin_site[i]].H;
        lb_qweight qw;
        /* AWQ leaves q and k unclipped: attention scores amplify their errors */
        bool clip = o->awq_clip && i != LIN_Q && i != LIN_K;
        if (clip)
            lb_awq_quantize_clipped(lin[i].W, lin[i].rows, lin[i].cols, H, o->bits,
                                    o->group_size, o->sym, rc->pool, &qw);
        else
            lb_qweight_rtn(lin[i].W, lin[i].rows, lin[i].cols, o->bits, o->group_size, o->sym,
                           &qw);
        report_layer(rc, &lin[i], &qw, H, NAN);
        stage(rc, i, &qw);
    }
    free(s);
    return 0;
fail:
    rcode = -1;
    free(s);
    return rcode;
}

static int block_smoothquant(run_ctx *rc, int l, linear *lin, capture_state *cs, lb_error *err)
{
    lb_model *m = rc->m;
    const lb_layer *L = &m->layers[l];
    const lb_quant_opts *o = rc->o;
    if (o->alpha > 0) {
        float *s = lb_malloc((size_t)m->cfg.dim * sizeof(float));
        /* attention norm → q, k, v; ffn norm → gate, up */
        for (int part = 0; part < 2; part++) {
            int idx[3], n = 0;
            if (part == 0) {
                idx[n++] = LIN_Q, idx[n++] = LIN_K, idx[n++] = LIN_V;
            } else {
                if (lin[LIN_GATE].t)
                    idx[n++] = LIN_GATE;
                idx[n++] = LIN_UP;
            }
            const float *Ws[3];
            int rows[3];
            for (int k = 0; k < n; k++) {
                Ws[k] = lin[idx[k]].W;
                rows[k] = lin[idx[k]].rows;
            }
            site_stats *st = &cs->site[part == 0 ? LB_SITE_QKV : LB_SITE_FFN];
            lb_smooth_scales(Ws, rows, n, st->width, st->abs_max, o->alpha, s);
            for (int k = 0; k < n; k++)
                scale_cols(lin[idx[k]].W, lin[idx[k]].rows, lin[idx[k]].cols, s);
            int r = part == 0 ? fold_into_norm(m, L->attn_norm, L->attn_norm_b, s, err)
                              : fold_into_norm(m, L->ffn_norm, L->ffn_norm_b, s, err);
            if (r) {
                free(s);
                return -1;
            }
        }
        free(s);
    }
    for (int i = 0; i < LIN_COUNT; i++) {
        if (!lin[i].t)
            continue;
        lb_qweight qw;
        lb_qweight_rtn(lin[i].W, lin[i].rows, lin[i].cols, 8, 0, true, &qw);
        qw.w8a8 = true;
        report_layer(rc, &lin[i], &qw, NULL, NAN);
        stage(rc, i, &qw);
    }
    return 0;
}

/* ---- the driver ------------------------------------------------------------------------- */

#define CALIB_BATCH_TOKENS 2048

static int check_model(const lb_model *m, lb_error *err)
{
    if (m->cfg.arch != LB_ARCH_LLAMA && m->cfg.arch != LB_ARCH_GPT2)
        return lb_fail(err, "%s: architecture %s cannot be quantized", m->path,
                       m->cfg.arch_name);
    if (m->quant.method[0])
        return lb_fail(err, "%s: model is already quantized (%s, %d bits); quantize a float "
                       "model (F32, F16 or BF16)", m->path, m->quant.method, m->quant.bits);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int i = 0; i < LIN_COUNT; i++) {
            const lb_tensor *t = layer_linear(&m->layers[l], i);
            if (!t)
                continue;
            const lb_type_traits *tr = lb_type_traits_of(t->type);
            if (!tr || tr->quantized)
                return lb_fail(err, "%s: tensor '%s' is already quantized (%s); quantize a "
                               "float model (F32, F16 or BF16)", m->path, t->name,
                               lb_type_name(t->type));
        }
    return 0;
}

/* The run's settings, which lb_model_save records and `lowbit info` shows. */
static void fill_info(lb_model *m, const lb_quant_opts *o)
{
    lb_quant_info *q = &m->quant;
    memset(q, 0, sizeof *q);
    snprintf(q->method, sizeof q->method, "%s%s", lb_qmethod_name(o->method),
             o->method == LB_QM_SMOOTHQUANT && o->alpha == 0 ? "-naive" : "");
    bool sq = o->method == LB_QM_SMOOTHQUANT;
    q->bits = sq ? 8 : o->bits;
    q->group_size = sq ? 0 : o->group_size;
    q->sym = sq ? true : o->sym;
    q->act_order = o->method == LB_QM_GPTQ && o->act_order;
    q->w8a8 = sq;
    q->alpha = sq ? o->alpha : 0.0f;
    q->damp = o->method == LB_QM_GPTQ ? o->damp : 0.0f;
    if (o->method != LB_QM_RTN && o->calib) {
        q->calib_samples = o->calib->n_samples;
        q->calib_seqlen = o->calib->seqlen;
        if (o->calib_name)
            snprintf(q->calib_file, sizeof q->calib_file, "%s", o->calib_name);
    }
}

/* The calibration windows' run through the blocks. */
typedef struct {
    lb_engine *e;
    const lb_calib *cal;
    lb_quant_report *rep;
    int B;              /* windows per forward pass */
    int *pos, *seq;     /* positions and sequence slots of B windows */
    float *tmp;         /* residual streams of B windows, for runs on a copy */
} calib_run;

/* Up to this many bytes, GPTQ keeps every window's input of o and of down between the runs
 * that stop and resume there (stories110M, 128 x 512 tokens: 512 MiB). */
#define SITE_ROWS_BYTES ((size_t)1 << 30)

/* How run_windows treats the windows. */
typedef struct {
    capture_state *cs;   /* the capture hook's state, or NULL to capture nothing */
    bool on_copy;        /* run on a copy of each pass's residual streams, leaving X as it was */
} run_mode;

/* Runs block l from point `from` to point `to` (lb_engine_block_part) over every window: the
 * residual streams in X, the inputs of o or down (where the run starts or stops at them) in
 * act, or dropped with act NULL. The time is charged to phase p. */
static int run_windows(calib_run *cr, int l, int from, int to, float *X, float *act,
                       run_mode mode, lb_quant_phase p, lb_error *err)
{
    const lb_config *c = &lb_engine_model(cr->e)->cfg;
    int L = cr->cal->seqlen, S = cr->cal->n_samples;
    int site = from == LB_SITE_O || from == LB_SITE_DOWN ? from : to;
    size_t act_width = site == LB_SITE_O ? (size_t)c->n_heads * (size_t)c->head_dim
                                         : (size_t)c->hidden_dim;
    size_t win = (size_t)L * (size_t)c->dim;
    stamp t0 = stamp_now();
    lb_engine_set_capture(cr->e, mode.cs ? on_capture : NULL, mode.cs);
    int status = 0;
    for (int s = 0; s < S && !status; s += cr->B) {
        int nb = S - s < cr->B ? S - s : cr->B;
        lb_batch b = {nb * L, cr->cal->tokens + (size_t)s * L, cr->pos, cr->seq, NULL};
        float *x = X + (size_t)s * win, *rows = act ? act + (size_t)s * L * act_width : NULL;
        if (mode.on_copy) {
            memcpy(cr->tmp, x, (size_t)nb * win * sizeof(float));
            x = cr->tmp;
        }
        status = lb_engine_block_part(cr->e, l, &b, x, rows, from, to, err);
    }
    lb_engine_set_capture(cr->e, NULL, NULL);
    charge(cr->rep, p, t0, 1.0);
    return status;
}

/* Quantizes the linears in mask, divided among the processes, and passes the results round. */
static int solve_linears(run_ctx *rc, linear *lin, unsigned mask, capture_state *cs, int l,
                         lb_error *err)
{
    stamp t = stamp_now();
    int base = rc->rep->n_layers, status;
    if (rc->o->method == LB_QM_SMOOTHQUANT)
        memset(rc->owner, 0, sizeof rc->owner);
    else
        assign_linears(rc, lin, mask);
    if (rc->o->method == LB_QM_GPTQ)
        status = gptq_linears(rc, lin, mask, cs, err);
    else if (rc->o->method == LB_QM_AWQ)
        status = block_awq(rc, l, lin, cs, err);
    else
        status = block_smoothquant(rc, l, lin, cs, err);   /* cheap: each process whole */
    t = charge(rc->rep, LB_QP_SOLVE, t, 1.0);
    status = share_linears(rc, lin, mask, base, status, err);
    charge(rc->rep, LB_QP_SHARE, t, 1.0);
    return status;
}

/* GPTQ of block l, site by site in the block's order (AutoGPTQ's "true sequential"): the
 * windows run up to a site, its Hessian is gathered and its linears are quantized, and the
 * run goes on from there with them quantized, so that each later linear is fitted to the
 * inputs it will really get. Every linear is multiplied once per window, as in one forward
 * pass. Without act (too large to keep), the input of o or down is not kept, and the run
 * resumes from the site before it instead. */
static int block_gptq(run_ctx *rc, calib_run *cr, int l, linear *lin, capture_state *cs,
                      float *X, float *act, expanded_block *xb, lb_error *err)
{
    int at = LB_BLOCK_INPUT, status = 0;
    for (int site = 0; site < LB_SITE_COUNT && !status; site++) {
        stats_reset(&cs->site[site]);
        cs->want = site;
        status = run_windows(cr, l, at, site, X, act, (run_mode){cs, false}, LB_QP_CAPTURE,
                             err);
        cs->want = -1;
        if (status)
            break;
        if (act || (site != LB_SITE_O && site != LB_SITE_DOWN))
            at = site;
        stamp t = stamp_now();
        stats_finish(&cs->site[site]);
        charge(rc->rep, LB_QP_STATS, t, 1.0);
        unsigned mask = site_linears((lb_site)site);
        status = solve_linears(rc, lin, mask, cs, l, err);
        if (!status)
            expand_linears(rc, lin, mask, xb);
    }
    if (!status)
        status = run_windows(cr, l, at, LB_BLOCK_OUTPUT, X, act, (run_mode){NULL, false},
                             LB_QP_REFORWARD, err);
    return status;
}

/* AWQ and SmoothQuant of block l (and GPTQ without true-sequential): their scales move
 * between linears of different sites, so the statistics of all four sites come from one float
 * run up to down's input (on copies of the residual streams), the whole block is scaled and
 * quantized, and the block then runs again with its quantized weights for the next block's
 * input. */
static int block_scaled(run_ctx *rc, calib_run *cr, int l, linear *lin, capture_state *cs,
                        float *X, expanded_block *xb, lb_error *err)
{
    for (int k = 0; k < LB_SITE_COUNT; k++)
        stats_reset(&cs->site[k]);
    if (run_windows(cr, l, LB_BLOCK_INPUT, LB_SITE_DOWN, X, NULL, (run_mode){cs, true},
                    LB_QP_CAPTURE, err))
        return -1;
    stamp t = stamp_now();
    for (int k = 0; k < LB_SITE_COUNT; k++)
        stats_finish(&cs->site[k]);
    charge(rc->rep, LB_QP_STATS, t, 1.0);
    if (solve_linears(rc, lin, ALL_LINEARS, cs, l, err))
        return -1;
    expand_linears(rc, lin, ALL_LINEARS, xb);
    return run_windows(cr, l, LB_BLOCK_INPUT, LB_BLOCK_OUTPUT, X, NULL, (run_mode){NULL, false},
                       LB_QP_REFORWARD, err);
}

static void free_linears(linear *lin)
{
    for (int i = 0; i < LIN_COUNT; i++) {
        free(lin[i].W);
        lin[i].W = NULL;
    }
}

int lb_quantize_model(lb_model *m, const lb_quant_opts *o, lb_quant_report *rep, lb_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (lb_quant_check(o, err) || check_model(m, err))
        return -1;
    bool calibrated = o->method != LB_QM_RTN;
    if (calibrated && (!o->calib || o->calib->n_samples <= 0))
        return lb_fail(err, "%s needs calibration data (--calib)", lb_qmethod_name(o->method));
    double t0 = lb_now_ms();
    const lb_config *c = &m->cfg;
    rep->layers = lb_calloc((size_t)c->n_layers * LIN_COUNT, sizeof(lb_quant_layer));
    lb_progress *bar = o->progress ? lb_progress_start("quantize", (uint64_t)c->n_layers,
                                                       "blocks") : NULL;
    run_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.m = m;
    rc.o = o;
    rc.rep = rep;
    linear lin[LIN_COUNT];
    memset(lin, 0, sizeof lin);
    int status = 0;

    if (!calibrated) {
        lb_pool *pool = lb_pool_create(o->n_threads);
        rc.pool = pool;
        for (int l = 0; l < c->n_layers && !status; l++) {
            for (int i = 0; i < LIN_COUNT; i++)
                linear_load(&lin[i], layer_linear(&m->layers[l], i));
            status = block_rtn(&rc, lin, err);
            status = commit_block(&rc, lin, status, err);
            free_linears(lin);
            lb_progress_update(bar, (uint64_t)l + 1);
        }
        lb_pool_free(pool);
        lb_progress_finish(bar);
        rep->seconds = (lb_now_ms() - t0) / 1e3;
        if (!status)
            fill_info(m, o);
        return status;
    }

    const lb_calib *cal = o->calib;
    calib_run cr;
    memset(&cr, 0, sizeof cr);
    cr.cal = cal;
    cr.rep = rep;
    int L = cal->seqlen, S = cal->n_samples, dim = c->dim;
    /* Windows go through each block CALIB_BATCH_TOKENS' worth at a time, one sequence slot
     * each: bigger matrix products, and fewer, longer updates of the Hessians. */
    int B = L < CALIB_BATCH_TOKENS ? CALIB_BATCH_TOKENS / L : 1;
    if (B > S)
        B = S;
    cr.B = B;
    if (lb_engine_create(m, L, B, o->n_threads, &cr.e, err)) {
        lb_progress_finish(bar);
        return -1;
    }
    rc.pool = lb_engine_pool(cr.e);
    lb_engine_set_gemm(cr.e, blas_sgemm);
    cr.pos = lb_malloc((size_t)B * L * sizeof(int));
    cr.seq = lb_malloc((size_t)B * L * sizeof(int));
    for (int t = 0; t < B * L; t++) {
        cr.pos[t] = t % L;
        cr.seq[t] = t / L;
    }
    size_t win = (size_t)L * (size_t)dim;
    float *X = lb_malloc((size_t)S * win * sizeof(float));   /* block inputs, then outputs */
    cr.tmp = lb_malloc((size_t)B * win * sizeof(float));
    /* GPTQ keeps the inputs of o and down, which come out of the block's middle, where they
     * fit in SITE_ROWS_BYTES; otherwise it recomputes them from the site before. */
    int qd = c->n_heads * c->head_dim, wide = qd > c->hidden_dim ? qd : c->hidden_dim;
    size_t act_bytes = (size_t)S * L * (size_t)wide * sizeof(float);
    bool sequential = o->method == LB_QM_GPTQ && !o->all_sites_float;
    float *act = sequential && act_bytes <= SITE_ROWS_BYTES ? lb_malloc(act_bytes) : NULL;
    capture_state cs;
    cs.rep = rep;
    cs.abs_stats = o->method != LB_QM_GPTQ;
    cs.want = -1;
    bool hess = o->method == LB_QM_GPTQ || o->method == LB_QM_AWQ;
    stats_init(&cs.site[LB_SITE_QKV], dim, hess);
    stats_init(&cs.site[LB_SITE_O], qd, hess);
    stats_init(&cs.site[LB_SITE_FFN], dim, hess);
    stats_init(&cs.site[LB_SITE_DOWN], c->hidden_dim, hess);

    stamp t = stamp_now();
    for (int s = 0; s < S && !status; s += B) {
        int nb = S - s < B ? S - s : B;
        lb_batch b = {nb * L, cal->tokens + (size_t)s * L, cr.pos, cr.seq, NULL};
        status = lb_engine_embed(cr.e, &b, X + (size_t)s * win, err);
    }
    charge(rep, LB_QP_EMBED, t, 1.0);
    for (int l = 0; l < c->n_layers && !status; l++) {
        for (int i = 0; i < LIN_COUNT; i++)
            linear_load(&lin[i], layer_linear(&m->layers[l], i));
        expanded_block xb;
        memset(&xb, 0, sizeof xb);
        if (sequential)
            status = block_gptq(&rc, &cr, l, lin, &cs, X, act, &xb, err);
        else
            status = block_scaled(&rc, &cr, l, lin, &cs, X, &xb, err);
        restore_block(lin, &xb);
        t = stamp_now();
        status = commit_block(&rc, lin, status, err);
        free_linears(lin);
        charge(rep, LB_QP_COMMIT, t, 1.0);
        lb_progress_update(bar, (uint64_t)l + 1);
    }
    lb_progress_finish(bar);
    for (int k = 0; k < LB_SITE_COUNT; k++)
        stats_free(&cs.site[k]);
    free(X);
    free(cr.tmp);
    free(act);
    free(cr.pos);
    free(cr.seq);
    lb_engine_free(cr.e);
    rep->seconds = (lb_now_ms() - t0) / 1e3;
    if (!status)
        fill_info(m, o);
    return status;
}
