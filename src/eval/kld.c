/* KL divergence and related statistics of one model against a baseline (see kld.h). Both
 * engines run the same group of chunks, their logits rows are compared in parallel (one task
 * per scored token), and the per-token figures are kept (the percentiles need them) and summed
 * in order. Under mpirun the passes are shared out among the processes and the figures equal
 * the single-process ones exactly. */
#include "eval/kld.h"
#include "core/dist.h"
#include "core/progress.h"
#include "core/timer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KLD_LOGITS_BUDGET ((size_t)512 << 20)

int lb_kld_check_vocab(const lb_model *q, const lb_model *base, lb_error *err)
{
    if (q->cfg.vocab_size != base->cfg.vocab_size)
        return lb_fail(err, "vocabularies differ: %s has %d tokens, the baseline %s has %d",
                       q->path, q->cfg.vocab_size, base->path, base->cfg.vocab_size);
    if (q->tok && base->tok) {
        const lb_tokenizer *a = q->tok, *b = base->tok;
        int n = a->n_vocab < b->n_vocab ? a->n_vocab : b->n_vocab;
        for (int i = 0; i < n; i++)
            if (a->piece_len[i] != b->piece_len[i] ||
                memcmp(a->pieces[i], b->pieces[i], (size_t)a->piece_len[i]) != 0)
                return lb_fail(err, "vocabularies differ at token %d: %s and the baseline %s "
                               "name it differently", i, q->path, base->path);
    }
    return 0;
}

/* Per-token figures, one array each, indexed by the token's place among all scored tokens. */
enum { F_NLL_Q, F_NLL_B, F_KLD, F_DP, F_SAME, N_FIGURES };

typedef struct {
    const float *lq, *lb;
    const int *targets;
    double *fig[N_FIGURES];   /* at the pass's first scored token */
    int n_vocab;
} cmp_job;

/* log-sum-exp of a row and its first argmax. */
static double row_lse(const float *row, int n, int *argmax)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best])
            best = i;
    double mx = row[best], sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)row[i] - mx);
    *argmax = best;
    return mx + log(sum);
}

static void cmp_task(void *ctx, int task, int thread)
{
    (void)thread;
    cmp_job *j = ctx;
    size_t off = (size_t)task * (size_t)j->n_vocab;
    const float *q = j->lq + off, *b = j->lb + off;
    int top_q, top_b, t = j->targets[task];
    double lse_q = row_lse(q, j->n_vocab, &top_q), lse_b = row_lse(b, j->n_vocab, &top_b);
    double kld = 0;
    for (int i = 0; i < j->n_vocab; i++) {
        double lpb = (double)b[i] - lse_b, lpq = (double)q[i] - lse_q;
        kld += exp(lpb) * (lpb - lpq);
    }
    double nll_q = lse_q - (double)q[t], nll_b = lse_b - (double)b[t];
    j->fig[F_NLL_Q][task] = nll_q;
    j->fig[F_NLL_B][task] = nll_b;
    j->fig[F_KLD][task] = kld;
    j->fig[F_DP][task] = exp(-nll_q) - exp(-nll_b);
    j->fig[F_SAME][task] = top_q == top_b;
}

/* Mean and its standard error, as llama.cpp forms them (no error below 11 values). */
static void mean_se(double sum, double sum2, int64_t n, double *mean, double *se)
{
    *mean = n > 0 ? sum / (double)n : 0;
    double var = n > 0 ? sum2 / (double)n - *mean * *mean : 0;
    *se = var > 0 && n > 10 ? sqrt(var / (double)(n - 1)) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Linear interpolation between the neighbouring order statistics at fraction*(n-1). */
static double percentile(const double *sorted, size_t n, double fraction)
{
    if (fraction <= 0)
        return sorted[0];
    if (fraction >= 1)
        return sorted[n - 1];
    double p = fraction * (double)(n - 1);
    size_t i = (size_t)p;
    double f = p - (double)i;
    size_t j = i + 1 < n ? i + 1 : n - 1;
    return (1 - f) * sorted[i] + f * sorted[j];
}

static double median(const double *sorted, size_t n)
{
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

int lb_kld(lb_engine *q, lb_engine *base, const int *tokens, int64_t n_tokens,
           const lb_ppl_options *opts, lb_kld_result *out, lb_error *err)
{
    memset(out, 0, sizeof *out);
    const lb_model *mq = lb_engine_model(q), *mb = lb_engine_model(base);
    if (lb_kld_check_vocab(mq, mb, err) || lb_ppl_check(q, opts, err) ||
        lb_ppl_check(base, opts, err))
        return -1;
    int n_vocab = mb->cfg.vocab_size;
    if (lb_ppl_check_tokens(tokens, n_tokens, n_vocab, err))
        return -1;
    lb_ppl_window *w;
    int n_w;
    if (lb_ppl_plan(n_tokens, opts, &w, &n_w, err))
        return -1;
    int bos_q = lb_ppl_bos(q, opts), bos_b = lb_ppl_bos(base, opts);

    int slots = lb_engine_n_seq(q) < lb_engine_n_seq(base) ? lb_engine_n_seq(q)
                                                           : lb_engine_n_seq(base);
    int per_pass = opts->batch > 0 && opts->batch < slots ? opts->batch : slots;
    /* Two models' logits for every scored row of the pass: keep them within KLD_LOGITS_BUDGET. */
    size_t chunk_bytes = 2 * (size_t)n_vocab * sizeof(float) * (size_t)opts->ctx;
    while (per_pass > 1 && (size_t)per_pass * chunk_bytes > KLD_LOGITS_BUDGET)
        per_pass--;
    size_t max_rows = (size_t)per_pass * (size_t)opts->ctx;
    float *lq = lb_malloc(max_rows * (size_t)n_vocab * sizeof(float));
    float *lbase = lb_malloc(max_rows * (size_t)n_vocab * sizeof(float));
    int *targets = lb_malloc(max_rows * sizeof *targets);

    /* As in perplexity: whole passes per process under mpirun, every token's figures in their
     * slots, merged, then summed in order as one process would. */
    int64_t *off = lb_ppl_scored_offsets(w, n_w), n_scored = off[n_w];
    uint64_t my_tokens, total_tokens;
    lb_ppl_count_tokens(w, n_w, per_pass, &my_tokens, &total_tokens);
    double *figs = lb_calloc((size_t)N_FIGURES * (size_t)(n_scored ? n_scored : 1), sizeof *figs);
    lb_progress *pb = opts->progress ? lb_progress_start("kld", my_tokens, "tok") : NULL;

    uint64_t done = 0;
    double t0 = lb_now_ms();
    int rc = 0;
    for (int g = 0; g < n_w; g += per_pass) {
        int n = n_w - g < per_pass ? n_w - g : per_pass;
        if (!lb_dist_mine(g / per_pass))
            continue;
        if (lb_ppl_forward(base, tokens, w + g, n, bos_b, lbase, err) ||
            lb_ppl_forward(q, tokens, w + g, n, bos_q, lq, err)) {
            rc = -1;
            break;
        }
        int rows = 0;
        for (int i = 0; i < n; i++)
            for (int p = w[g + i].first; p < w[g + i].len; p++)
                targets[rows++] = tokens[w[g + i].start + p];
        cmp_job job = {lq, lbase, targets, {0}, n_vocab};
        for (int f = 0; f < N_FIGURES; f++)
            job.fig[f] = figs + (size_t)f * (size_t)n_scored + off[g];
        lb_pool_run(lb_engine_pool(q), rows, cmp_task, &job);
        for (int i = 0; i < n; i++)
            done += (uint64_t)w[g + i].len;
        lb_progress_update(pb, done);
    }
    lb_progress_finish(pb);
    rc = lb_dist_agree(rc, err);
    if (rc == 0 && lb_dist_active())
        rc = lb_dist_merge(figs, (size_t)N_FIGURES * (size_t)n_scored);
    double secs = lb_dist_max((lb_now_ms() - t0) / 1e3);
    free(lq);
    free(lbase);
    free(targets);
    free(off);
    free(w);
    if (rc == 0 && n_scored < 2)
        rc = lb_fail(err, "only %lld token(s) scored; statistics need two", (long long)n_scored);
    if (rc) {
        free(figs);
        return -1;
    }

    double s_q = 0, s_q2 = 0, s_b = 0, s_b2 = 0, s_qb = 0, s_k = 0, s_k2 = 0, s_d = 0, s_d2 = 0,
           s_d4 = 0;
    int64_t count = n_scored, same = 0;
    double *klds = figs + (size_t)F_KLD * (size_t)n_scored;
    double *dps = figs + (size_t)F_DP * (size_t)n_scored;
    for (int64_t r = 0; r < count; r++) {
        double nq = figs[(size_t)F_NLL_Q * (size_t)n_scored + (size_t)r];
        double nb = figs[(size_t)F_NLL_B * (size_t)n_scored + (size_t)r];
        double k = klds[r], d = dps[r];
        s_q += nq;
        s_q2 += nq * nq;
        s_b += nb;
        s_b2 += nb * nb;
        s_qb += nq * nb;
        s_k += k;
        s_k2 += k * k;
        s_d += d;
        s_d2 += d * d;
        s_d4 += d * d * d * d;
        same += figs[(size_t)F_SAME * (size_t)n_scored + (size_t)r] != 0;
    }
    int64_t evaluated = (int64_t)total_tokens;

    lb_kld_result *o = out;
    o->n = count;
    o->n_chunks = n_w;
    o->seconds = secs;
    o->tokens_per_s = secs > 0 ? (double)evaluated / secs : 0;
    double lq_mean, lq_se, lb_mean, lb_se;
    mean_se(s_q, s_q2, count, &lq_mean, &lq_se);
    mean_se(s_b, s_b2, count, &lb_mean, &lb_se);
    o->ppl_q = exp(lq_mean);
    o->ppl_q_stderr = o->ppl_q * lq_se;
    o->ppl_base = exp(lb_mean);
    o->ppl_base_stderr = o->ppl_base * lb_se;
    /* Covariance of the two mean log-likelihoods, which the ratio's uncertainty subtracts. */
    double cov = count >= 10 ? (s_qb / (double)count - lq_mean * lb_mean) / (double)(count - 1)
                             : 0;
    o->ln_ppl_cor = lq_se > 0 && lb_se > 0 ? cov / (lq_se * lb_se) : 0;
    o->ln_ratio = lq_mean - lb_mean;
    double v = lq_se * lq_se + lb_se * lb_se - 2 * cov;
    o->ln_ratio_stderr = v > 0 ? sqrt(v) : 0;
    o->ppl_ratio = exp(o->ln_ratio);
    o->ppl_ratio_stderr = o->ppl_ratio * o->ln_ratio_stderr;
    o->ppl_diff = o->ppl_q - o->ppl_base;
    v = o->ppl_q_stderr * o->ppl_q_stderr + o->ppl_base_stderr * o->ppl_base_stderr -
        2 * o->ppl_q * o->ppl_base * cov;
    o->ppl_diff_stderr = v > 0 ? sqrt(v) : 0;
    mean_se(s_k, s_k2, count, &o->kld_mean, &o->kld_stderr);
    mean_se(s_d, s_d2, count, &o->dp_mean, &o->dp_stderr);
    double mse, mse_se;
    mean_se(s_d2, s_d4, count, &mse, &mse_se);
    o->dp_rms = sqrt(mse);
    o->dp_rms_stderr = o->dp_rms > 0 ? 0.5 / o->dp_rms * mse_se : 0;
    o->same_top = (double)same / (double)count;
    o->same_top_stderr = sqrt(o->same_top * (1 - o->same_top) / (double)(count - 1));

    size_t n = (size_t)count;
    qsort(klds, n, sizeof *klds, cmp_double);
    qsort(dps, n, sizeof *dps, cmp_double);
    o->kld_min = klds[0];
    o->kld_max = klds[n - 1];
    o->kld_p999 = percentile(klds, n, 0.999);
    o->kld_p99 = percentile(klds, n, 0.99);
    o->kld_p95 = percentile(klds, n, 0.95);
    o->kld_p90 = percentile(klds, n, 0.90);
    o->kld_median = median(klds, n);
    o->kld_p10 = percentile(klds, n, 0.10);
    o->kld_p5 = percentile(klds, n, 0.05);
    o->kld_p1 = percentile(klds, n, 0.01);
    o->dp_min = dps[0];
    o->dp_max = dps[n - 1];
    o->dp_p99 = percentile(dps, n, 0.99);
    o->dp_p95 = percentile(dps, n, 0.95);
    o->dp_p90 = percentile(dps, n, 0.90);
    o->dp_median = median(dps, n);
    o->dp_p10 = percentile(dps, n, 0.10);
    o->dp_p5 = percentile(dps, n, 0.05);
    o->dp_p1 = percentile(dps, n, 0.01);
    free(figs);
    return 0;
}
