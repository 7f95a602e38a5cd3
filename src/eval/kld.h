/* KL divergence of a (quantized) model's next-token distributions from a baseline's, over the
 * same chunks perplexity scores, with the figures llama.cpp's `llama-perplexity
 * --kl-divergence` reports: both perplexities and their ratio/difference with uncertainties
 * that account for their correlation, mean KLD with its standard error and percentiles, the
 * change Δp of the probability of the right token, and how often both models put the same
 * token on top.
 *
 * Unlike llama.cpp, which first saves the baseline's log-probabilities rounded to 16 bits and
 * drops the terms of tokens below e^-16, both models run here chunk by chunk side by side and
 * the sums use every token's exact probability: a model against itself gives 0 exactly. */
#ifndef LB_KLD_H
#define LB_KLD_H

#include "eval/perplexity.h"

typedef struct {
    int64_t n;                 /* tokens scored */
    int n_chunks;
    double ppl_q, ppl_q_stderr;
    double ppl_base, ppl_base_stderr;
    double ln_ppl_cor;         /* correlation of the two models' per-token log-likelihoods */
    double ln_ratio, ln_ratio_stderr;       /* mean ln(PPL(Q)/PPL(base)) */
    double ppl_ratio, ppl_ratio_stderr;
    double ppl_diff, ppl_diff_stderr;       /* PPL(Q) - PPL(base) */
    double kld_mean, kld_stderr;
    double kld_max, kld_p999, kld_p99, kld_p95, kld_p90, kld_median, kld_p10, kld_p5, kld_p1,
        kld_min;
    double dp_mean, dp_stderr;              /* Δp = p_Q(token) - p_base(token) */
    double dp_rms, dp_rms_stderr;
    double dp_max, dp_p99, dp_p95, dp_p90, dp_median, dp_p10, dp_p5, dp_p1, dp_min;
    double same_top, same_top_stderr;       /* fraction of tokens with the same argmax */
    double seconds;
    double tokens_per_s;       /* tokens through each model per second */
} lb_kld_result;

/* Fails when the two models' vocabularies differ (size or pieces), on options that do not fit
 * either engine, or on a text too short for one chunk. tokens come from the baseline's
 * tokenizer. Both engines need as many sequence slots as opts->batch (0: their smaller). */
int lb_kld(lb_engine *q, lb_engine *base, const int *tokens, int64_t n_tokens,
           const lb_ppl_options *opts, lb_kld_result *out, lb_error *err);

/* The vocabulary check lb_kld makes, for callers that want to fail before loading text. */
int lb_kld_check_vocab(const lb_model *q, const lb_model *base, lb_error *err);

#endif
