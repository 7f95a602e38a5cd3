/* Perplexity in llama.cpp's and in the GPTQ/Hugging Face conventions (see perplexity.h).
 * Windows are planned once, run several at a time as separate sequences of one forward pass,
 * and scored in parallel row by row; the sums are then taken in window order so the figure
 * does not depend on the thread count, nor on how many processes shared the passes. */
#include "eval/perplexity.h"
#include "core/dist.h"
#include "core/progress.h"
#include "core/timer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Logits memory one forward pass may fill before the batch of windows is made smaller. */
#define PPL_LOGITS_BUDGET ((size_t)256 << 20)

lb_ppl_options lb_ppl_defaults(void)
{
    lb_ppl_options o;
    memset(&o, 0, sizeof o);
    o.mode = LB_PPL_LLAMACPP;
    o.ctx = 512;
    return o;
}

int lb_ppl_check(const lb_engine *e, const lb_ppl_options *o, lb_error *err)
{
    if (o->mode != LB_PPL_LLAMACPP && o->mode != LB_PPL_HF)
        return lb_fail(err, "perplexity mode %d is not llamacpp or hf", (int)o->mode);
    /* llamacpp mode scores positions ctx/2+1 .. ctx-1: a context under 4 scores nothing. */
    int min_ctx = o->mode == LB_PPL_LLAMACPP ? 4 : 2;
    if (o->ctx < min_ctx)
        return lb_fail(err, "--ctx is %d, expected at least %d", o->ctx, min_ctx);
    if (e && o->ctx > lb_engine_n_ctx(e))
        return lb_fail(err, "--ctx is %d, longer than the engine's context of %d", o->ctx,
                       lb_engine_n_ctx(e));
    if (o->stride < 0 || o->stride > o->ctx)
        return lb_fail(err, "--stride is %d, expected 1..ctx (%d), or 0 for none", o->stride,
                       o->ctx);
    if (o->stride > 0 && o->stride < o->ctx && o->mode != LB_PPL_HF)
        return lb_fail(err, "--stride applies to --mode hf only");
    if (o->max_chunks < 0)
        return lb_fail(err, "--chunks is %d, expected 0 (all) or more", o->max_chunks);
    if (o->batch < 0)
        return lb_fail(err, "--batch is %d, expected 0 (auto) or more", o->batch);
    return 0;
}

int lb_ppl_mode_parse(const char *name, lb_ppl_mode *out)
{
    if (strcmp(name, "llamacpp") == 0)
        *out = LB_PPL_LLAMACPP;
    else if (strcmp(name, "hf") == 0)
        *out = LB_PPL_HF;
    else
        return -1;
    return 0;
}

int lb_ppl_check_tokens(const int *tokens, int64_t n_tokens, int n_vocab, lb_error *err)
{
    for (int64_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return lb_fail(err, "token %lld is id %d, outside the vocabulary (0..%d)",
                           (long long)i, tokens[i], n_vocab - 1);
    return 0;
}

int lb_ppl_plan(int64_t n_tokens, const lb_ppl_options *o, lb_ppl_window **out, int *n_out,
                lb_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (lb_ppl_check(NULL, o, err))
        return -1;
    int64_t ctx = o->ctx, n = 0;
    lb_ppl_window *w = NULL;
    if (o->mode == LB_PPL_LLAMACPP) {
        if (n_tokens < 2 * ctx)
            return lb_fail(err, "the text has %lld tokens; llamacpp mode with --ctx %d needs at "
                           "least %lld (two chunks, as llama-perplexity)", (long long)n_tokens,
                           o->ctx, (long long)(2 * ctx));
        n = n_tokens / ctx;
        if (o->max_chunks > 0 && n > o->max_chunks)
            n = o->max_chunks;
        if (n > INT32_MAX / 2)
            return lb_fail(err, "the text gives %lld chunks, too many", (long long)n);
        w = lb_malloc((size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++)
            w[i] = (lb_ppl_window){i * ctx, o->ctx, o->ctx / 2 + 1};
    } else if (o->stride == 0 || o->stride == o->ctx) {
        if (n_tokens < ctx)
            return lb_fail(err, "the text has %lld tokens, fewer than one window of --ctx %d",
                           (long long)n_tokens, o->ctx);
        n = n_tokens / ctx;
        if (o->max_chunks > 0 && n > o->max_chunks)
            n = o->max_chunks;
        if (n > INT32_MAX / 2)
            return lb_fail(err, "the text gives %lld windows, too many", (long long)n);
        w = lb_malloc((size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++)
            w[i] = (lb_ppl_window){i * ctx, o->ctx, 1};
    } else {
        /* The Hugging Face guide's sliding window: start every stride tokens, end at most ctx
         * later, score only what the previous window left unscored, stop at the text's end. */
        if (n_tokens < ctx)
            return lb_fail(err, "the text has %lld tokens, fewer than one window of --ctx %d",
                           (long long)n_tokens, o->ctx);
        int64_t stride = o->stride, total = (n_tokens - ctx + stride - 1) / stride + 1;
        if (o->max_chunks > 0 && total > o->max_chunks)
            total = o->max_chunks;
        if (total > INT32_MAX / 2)
            return lb_fail(err, "the text gives %lld windows, too many", (long long)total);
        w = lb_malloc((size_t)total * sizeof *w);
        int64_t prev_end = 0;
        for (int64_t begin = 0; n < total; begin += stride) {
            int64_t end = begin + ctx < n_tokens ? begin + ctx : n_tokens;
            int64_t first = prev_end - begin > 1 ? prev_end - begin : 1;
            w[n++] = (lb_ppl_window){begin, (int)(end - begin), (int)first};
            prev_end = end;
            if (end == n_tokens)
                break;
        }
    }
    *out = w;
    *n_out = (int)n;
    return 0;
}

int lb_ppl_bos(const lb_engine *e, const lb_ppl_options *o)
{
    const lb_model *m = lb_engine_model(e);
    if (o->mode != LB_PPL_LLAMACPP || !m->tok || !m->tok->add_bos)
        return -1;
    return m->tok->bos_id;
}

int lb_ppl_forward(lb_engine *e, const int *tokens, const lb_ppl_window *w, int n, int bos,
                   float *logits, lb_error *err)
{
    if (n <= 0 || n > lb_engine_n_seq(e))
        return lb_fail(err, "%d windows for %d sequence slots", n, lb_engine_n_seq(e));
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += (size_t)w[i].len;
    int *tok = lb_malloc(total * sizeof *tok);
    int *pos = lb_malloc(total * sizeof *pos);
    int *seq = lb_malloc(total * sizeof *seq);
    bool *want = lb_malloc(total * sizeof *want);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < w[i].len; p++, k++) {
            tok[k] = p == 0 && bos >= 0 ? bos : tokens[w[i].start + p];
            pos[k] = p;
            seq[k] = i;
            /* Row p predicts token p + 1; the scored tokens are first .. len-1. */
            want[k] = p >= w[i].first - 1 && p < w[i].len - 1;
        }
    lb_batch b = {(int)total, tok, pos, seq, want};
    int rc = lb_engine_forward(e, &b, logits, err);
    free(tok);
    free(pos);
    free(seq);
    free(want);
    return rc;
}

double lb_nll_row(const float *row, int n_vocab, int target)
{
    float mx = row[0];
    for (int i = 1; i < n_vocab; i++)
        if (row[i] > mx)
            mx = row[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++)
        sum += expf(row[i] - mx);
    return -((double)(row[target] - mx) - log(sum));
}

typedef struct {
    const float *logits;
    const int *targets;
    double *nll;
    int n_vocab;
} nll_job;

static void nll_task(void *ctx, int task, int thread)
{
    (void)thread;
    nll_job *j = ctx;
    j->nll[task] = lb_nll_row(j->logits + (size_t)task * j->n_vocab, j->n_vocab, j->targets[task]);
}

int64_t *lb_ppl_scored_offsets(const lb_ppl_window *w, int n)
{
    int64_t *off = lb_malloc(((size_t)n + 1) * sizeof *off);
    off[0] = 0;
    for (int i = 0; i < n; i++)
        off[i + 1] = off[i] + (w[i].len - w[i].first);
    return off;
}

void lb_ppl_count_tokens(const lb_ppl_window *w, int n, int per_pass, uint64_t *mine,
                         uint64_t *total)
{
    *mine = *total = 0;
    for (int i = 0; i < n; i++) {
        *total += (uint64_t)w[i].len;
        if (lb_dist_mine(i / per_pass))
            *mine += (uint64_t)w[i].len;
    }
}

/* Running sums over the per-token figures, taken in window order whichever process or pass
 * computed them. */
typedef struct {
    double sum, sum2;
    int64_t count;
    int windows;   /* folded so far */
} ppl_fold;

static void fold_windows(ppl_fold *f, const double *nll, const int64_t *off, int upto,
                         const lb_ppl_options *o)
{
    for (; f->windows < upto; f->windows++) {
        for (int64_t k = off[f->windows]; k < off[f->windows + 1]; k++) {
            f->sum += nll[k];
            f->sum2 += nll[k] * nll[k];
            f->count++;
        }
        if (o->on_chunk)
            o->on_chunk(o->user, f->windows + 1, exp(f->sum / (double)f->count));
    }
}

int lb_perplexity(lb_engine *e, const int *tokens, int64_t n_tokens, const lb_ppl_options *opts,
                  lb_ppl_result *out, lb_error *err)
{
    memset(out, 0, sizeof *out);
    if (lb_ppl_check(e, opts, err))
        return -1;
    int n_vocab = lb_engine_model(e)->cfg.vocab_size;
    if (lb_ppl_check_tokens(tokens, n_tokens, n_vocab, err))
        return -1;
    lb_ppl_window *w;
    int n_w;
    if (lb_ppl_plan(n_tokens, opts, &w, &n_w, err))
        return -1;
    int bos = lb_ppl_bos(e, opts);

    /* Windows per pass: as asked (or every slot), fewer when their logits would not fit. */
    int per_pass = opts->batch > 0 ? opts->batch : lb_engine_n_seq(e);
    if (per_pass > lb_engine_n_seq(e))
        per_pass = lb_engine_n_seq(e);
    size_t row_bytes = (size_t)n_vocab * sizeof(float) * (size_t)opts->ctx;
    if (per_pass > 1 && (size_t)per_pass * row_bytes > PPL_LOGITS_BUDGET)
        per_pass = (int)(PPL_LOGITS_BUDGET / row_bytes) > 1 ? (int)(PPL_LOGITS_BUDGET / row_bytes) : 1;

    size_t max_rows = (size_t)per_pass * (size_t)opts->ctx;
    float *logits = lb_malloc(max_rows * (size_t)n_vocab * sizeof(float));
    int *targets = lb_malloc(max_rows * sizeof *targets);
    /* Every scored token's figure has its slot; under mpirun each process fills the slots of
     * its own passes (whole passes, as one process would run them) and the merge fills in the
     * rest, so the sums below are the single-process ones to the last bit. */
    int64_t *off = lb_ppl_scored_offsets(w, n_w);
    double *nll = lb_calloc((size_t)(off[n_w] ? off[n_w] : 1), sizeof *nll);

    uint64_t my_tokens, total_tokens;
    lb_ppl_count_tokens(w, n_w, per_pass, &my_tokens, &total_tokens);
    lb_progress *pb = opts->progress ? lb_progress_start("perplexity", my_tokens, "tok") : NULL;

    double t0 = lb_now_ms();
    ppl_fold fold = {0};
    uint64_t done = 0;
    int rc = 0;
    for (int g = 0; g < n_w && rc == 0; g += per_pass) {
        int n = n_w - g < per_pass ? n_w - g : per_pass;
        if (!lb_dist_mine(g / per_pass))
            continue;
        if (lb_ppl_forward(e, tokens, w + g, n, bos, logits, err)) {
            rc = -1;
            break;
        }
        int rows = 0;
        for (int i = 0; i < n; i++)
            for (int p = w[g + i].first; p < w[g + i].len; p++)
                targets[rows++] = tokens[w[g + i].start + p];
        nll_job job = {logits, targets, nll + off[g], n_vocab};
        lb_pool_run(lb_engine_pool(e), rows, nll_task, &job);
        /* Alone, the running estimate can follow the passes as they finish. */
        if (!lb_dist_active())
            fold_windows(&fold, nll, off, g + n, opts);
        for (int i = 0; i < n; i++)
            done += (uint64_t)w[g + i].len;
        lb_progress_update(pb, done);
    }
    lb_progress_finish(pb);
    rc = lb_dist_agree(rc, err);
    if (rc == 0 && lb_dist_active())
        rc = lb_dist_merge(nll, (size_t)off[n_w]);
    if (rc == 0)
        fold_windows(&fold, nll, off, n_w, opts);
    double secs = lb_dist_max((lb_now_ms() - t0) / 1e3);
    free(logits);
    free(targets);
    free(nll);
    free(off);
    free(w);
    if (rc)
        return -1;
    int64_t count = fold.count;
    if (count < 2)
        return lb_fail(err, "only %lld token(s) scored; a standard error needs two",
                       (long long)count);
    double mean = fold.sum / (double)count, var = fold.sum2 / (double)count - mean * mean;
    out->nll_mean = mean;
    out->ppl = exp(mean);
    out->ppl_stderr = var > 0 ? out->ppl * sqrt(var / (double)(count - 1)) : 0;
    out->n_scored = count;
    out->n_tokens = (int64_t)total_tokens;
    out->n_chunks = n_w;
    out->seconds = secs;
    out->tokens_per_s = secs > 0 ? (double)total_tokens / secs : 0;
    return 0;
}

int lb_perplexity_text(lb_engine *e, const char *text, size_t len, const lb_ppl_options *opts,
                       lb_ppl_result *out, lb_error *err)
{
    const lb_model *m = lb_engine_model(e);
    if (!m->tok)
        return lb_fail(err, "%s: the model has no tokenizer", m->path);
    int *ids, n_ids;
    if (tok_encode(m->tok, text, len, true, &ids, &n_ids, err))
        return -1;
    int rc = lb_perplexity(e, ids, n_ids, opts, out, err);
    free(ids);
    return rc;
}
