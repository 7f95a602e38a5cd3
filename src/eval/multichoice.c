/* Multiple-choice scoring: items to log-likelihood requests, requests to acc / acc_norm /
 * mc2 / lambada figures with standard errors (see multichoice.h). */
#include "eval/multichoice.h"

#include "core/dist.h"
#include "core/timer.h"
#include "eval/loglik.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lb_mc_task *lb_mc_task_create(const char *name, lb_mc_kind kind)
{
    lb_mc_task *t = lb_calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    return t;
}

static void item_free(lb_mc_item *it)
{
    for (int i = 0; i < it->n_choices; i++) {
        if (it->contexts)
            free(it->contexts[i]);
        free(it->conts[i]);
    }
    free(it->context);
    free(it->contexts);
    free(it->conts);
    free(it->norm_len);
    free(it->truth);
}

void lb_mc_task_free(lb_mc_task *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_items; i++)
        item_free(&t->items[i]);
    free(t->items);
    for (int i = 0; i < t->n_subtasks; i++)
        free(t->subtasks[i]);
    free(t->subtasks);
    free(t);
}

lb_mc_item *lb_mc_add_item(lb_mc_task *t, int n_choices, int gold)
{
    if (t->n_items == t->cap_items) {
        t->cap_items = t->cap_items ? 2 * t->cap_items : 256;
        t->items = lb_realloc(t->items, (size_t)t->cap_items * sizeof *t->items);
    }
    lb_mc_item *it = &t->items[t->n_items++];
    memset(it, 0, sizeof *it);
    it->n_choices = n_choices;
    it->gold = gold;
    it->subtask = -1;
    it->conts = lb_calloc((size_t)n_choices, sizeof(char *));
    it->norm_len = lb_calloc((size_t)n_choices, sizeof(int));
    return it;
}

void lb_mc_set_choice(lb_mc_item *it, int i, const char *context, const char *join,
                      const char *text)
{
    if (context) {
        if (!it->contexts)
            it->contexts = lb_calloc((size_t)it->n_choices, sizeof(char *));
        free(it->contexts[i]);
        it->contexts[i] = lb_strdup(context);
    }
    size_t lj = strlen(join), lt = strlen(text);
    free(it->conts[i]);
    it->conts[i] = lb_malloc(lj + lt + 1);
    memcpy(it->conts[i], join, lj);
    memcpy(it->conts[i] + lj, text, lt + 1);
    it->norm_len[i] = (int)lt;
}

int lb_mc_subtask(lb_mc_task *t, const char *name)
{
    for (int i = 0; i < t->n_subtasks; i++)
        if (strcmp(t->subtasks[i], name) == 0)
            return i;
    t->subtasks = lb_realloc(t->subtasks, (size_t)(t->n_subtasks + 1) * sizeof(char *));
    t->subtasks[t->n_subtasks] = lb_strdup(name);
    return t->n_subtasks++;
}

void lb_mc_limit(lb_mc_task *t, int n)
{
    if (n <= 0)
        return;
    int *seen = lb_calloc((size_t)t->n_subtasks + 1, sizeof(int));
    int kept = 0;
    for (int i = 0; i < t->n_items; i++) {
        int s = t->items[i].subtask >= 0 ? t->items[i].subtask + 1 : 0;
        if (seen[s]++ < n)
            t->items[kept++] = t->items[i];
        else
            item_free(&t->items[i]);
    }
    t->n_items = kept;
    free(seen);
}

void lb_mc_report_free(lb_mc_report *r)
{
    free(r->m);
    memset(r, 0, sizeof *r);
}

void lb_mc_mean_stderr(const double *x, int n, double *mean, double *se)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = n ? s / n : NAN;
    if (n < 2) {
        *se = NAN;
        return;
    }
    double v = 0;
    for (int i = 0; i < n; i++)
        v += (x[i] - *mean) * (x[i] - *mean);
    *se = sqrt(v / (n - 1)) / sqrt((double)n);
}

static void add_metric(lb_mc_report *r, const char *metric, const char *subtask, double value,
                       double se, int n)
{
    r->m = lb_realloc(r->m, (size_t)(r->n + 1) * sizeof *r->m);
    lb_mc_metric *m = &r->m[r->n++];
    snprintf(m->metric, sizeof m->metric, "%s", metric);
    snprintf(m->subtask, sizeof m->subtask, "%s", subtask ? subtask : "");
    m->value = value;
    m->stderr_ = se;
    m->n = n;
}

/* Per-item outcomes of one metric, summarized for the task and for each subtask. */
static void summarize(lb_mc_report *r, const lb_mc_task *t, const char *metric, const double *x,
                      bool exp_neg /* perplexity from mean log-likelihood */)
{
    int n = t->n_items;
    if (t->n_subtasks == 0) {
        double mean, se;
        lb_mc_mean_stderr(x, n, &mean, &se);
        if (exp_neg) {
            mean = exp(-mean);
            se = mean * se;   /* delta method */
        }
        add_metric(r, metric, NULL, mean, se, n);
        return;
    }
    double *buf = lb_malloc((size_t)(n ? n : 1) * sizeof(double));
    double *means = lb_malloc((size_t)t->n_subtasks * sizeof(double));
    double *ses = lb_malloc((size_t)t->n_subtasks * sizeof(double));
    int *counts = lb_calloc((size_t)t->n_subtasks, sizeof(int));
    double sum = 0, var = 0;
    int k = 0;
    bool var_known = true;   /* a subject of one item has no standard error, nor then has the average */
    for (int s = 0; s < t->n_subtasks; s++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (t->items[i].subtask == s)
                buf[m++] = x[i];
        counts[s] = m;
        lb_mc_mean_stderr(buf, m, &means[s], &ses[s]);
        if (m > 0) {
            sum += means[s];
            var += ses[s] * ses[s];
            var_known = var_known && !isnan(ses[s]);
            k++;
        }
    }
    add_metric(r, metric, NULL, k ? sum / k : NAN, k && var_known ? sqrt(var) / k : NAN, n);
    for (int s = 0; s < t->n_subtasks; s++)
        if (counts[s] > 0)
            add_metric(r, metric, t->subtasks[s], means[s], ses[s], counts[s]);
    free(buf);
    free(means);
    free(ses);
    free(counts);
}

static int argmax_first(const double *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Items are tokenized and scored a chunk at a time so long few-shot prompts never sit in memory
 * all at once. */
enum { CHUNK_ITEMS = 512 };

int lb_mc_evaluate(lb_engine *e, const lb_mc_task *t, const lb_mc_options *o, lb_mc_report *r,
                   lb_error *err)
{
    memset(r, 0, sizeof *r);
    const lb_tokenizer *tok = lb_engine_model(e)->tok;
    if (!tok)
        return lb_fail(err, "the model has no tokenizer to encode the task's text");
    if (t->n_items == 0)
        return lb_fail(err, "task %s has no items", t->name);
    int n = t->n_items;
    double *acc = lb_calloc((size_t)n, sizeof(double));
    double *accn = lb_calloc((size_t)n, sizeof(double));
    double *extra = lb_calloc((size_t)n, sizeof(double));   /* lambada: log-likelihood */
    /* Under mpirun the chunks are shared out among the processes; with few items they are cut
     * smaller so that every process has one. Each item's figures land in its own slot and the
     * merge fills in the others', so the summaries are the single-process ones. */
    int chunk = CHUNK_ITEMS, size = lb_dist_size();
    if ((int64_t)chunk * size > n)
        chunk = (n + size - 1) / size;
    uint64_t mine = 0;
    for (int i0 = 0; i0 < n; i0 += chunk)
        if (lb_dist_mine(i0 / chunk))
            mine += (uint64_t)((n - i0 < chunk) ? n - i0 : chunk);
    lb_progress *p = o->show_progress ? lb_progress_start(t->name, mine, "items") : NULL;
    double t0 = (lb_now_ms() / 1e3);
    int rc = 0;
    for (int i0 = 0; i0 < n && rc == 0; i0 += chunk) {
        int i1 = i0 + chunk < n ? i0 + chunk : n;
        if (!lb_dist_mine(i0 / chunk))
            continue;
        int n_req = 0;
        for (int i = i0; i < i1; i++)
            n_req += t->items[i].n_choices;
        lb_ll_request *reqs = lb_calloc((size_t)n_req, sizeof *reqs);
        lb_ll_result *res = lb_calloc((size_t)n_req, sizeof *res);
        int *first = lb_malloc((size_t)(i1 - i0 + 1) * sizeof(int));
        int q = 0;
        for (int i = i0; i < i1 && rc == 0; i++) {
            const lb_mc_item *it = &t->items[i];
            first[i - i0] = q;
            for (int c = 0; c < it->n_choices; c++, q++) {
                const char *ctx = it->contexts && it->contexts[c] ? it->contexts[c] : it->context;
                if (lb_ll_encode(tok, ctx ? ctx : "", it->conts[c], o->bos, &reqs[q], err)) {
                    lb_fail_prefix(err, "%s item %d choice %d: ", t->name, i + 1, c + 1);
                    rc = -1;
                    break;
                }
                r->tokens += reqs[q].n_tokens;
            }
        }
        first[i1 - i0] = q;
        if (rc == 0 &&
            lb_ll_score(e, reqs, first, i1 - i0, o->max_tokens, p, res, err))
            rc = -1;
        for (int i = i0; i < i1 && rc == 0; i++) {
            const lb_mc_item *it = &t->items[i];
            const lb_ll_result *rs = res + first[i - i0];
            double ll[LB_MC_MAX_CHOICES], nl[LB_MC_MAX_CHOICES];
            int nc = it->n_choices < LB_MC_MAX_CHOICES ? it->n_choices : LB_MC_MAX_CHOICES;
            for (int c = 0; c < nc; c++) {
                ll[c] = rs[c].logprob;
                nl[c] = rs[c].logprob / (it->norm_len[c] > 0 ? it->norm_len[c] : 1);
            }
            switch (t->kind) {
            case LB_MC_CHOICE:
            case LB_MC_PARTIAL:
            case LB_MC_MC1:
                acc[i] = argmax_first(ll, nc) == it->gold;
                accn[i] = argmax_first(nl, nc) == it->gold;
                break;
            case LB_MC_MC2: {
                double pt = 0, pa = 0;
                for (int c = 0; c < nc; c++) {
                    double pr = exp(ll[c]);
                    pa += pr;
                    if (it->truth && it->truth[c])
                        pt += pr;
                }
                acc[i] = pa > 0 ? pt / pa : 0;
                break;
            }
            case LB_MC_LAMBADA:
                acc[i] = rs[0].greedy;
                extra[i] = rs[0].logprob;
                break;
            }
        }
        for (int k = 0; k < q; k++)
            lb_ll_request_free(&reqs[k]);
        free(reqs);
        free(res);
        free(first);
    }
    lb_progress_finish(p);
    rc = lb_dist_agree(rc, err);
    if (rc == 0 && lb_dist_active()) {
        long long tokens = r->tokens;
        if (lb_dist_merge(acc, (size_t)n) || lb_dist_merge(accn, (size_t)n) ||
            lb_dist_merge(extra, (size_t)n) || lb_dist_merge_counts(&tokens, 1))
            rc = lb_fail(err, "merging the processes' scores failed");
        r->tokens = tokens;
    }
    double secs = lb_dist_max((lb_now_ms() / 1e3) - t0);
    if (rc == 0) {
        r->seconds = secs;
        summarize(r, t, "acc", acc, false);
        if (t->kind == LB_MC_CHOICE)
            summarize(r, t, "acc_norm", accn, false);
        if (t->kind == LB_MC_LAMBADA)
            summarize(r, t, "perplexity", extra, true);
    } else {
        lb_mc_report_free(r);
    }
    free(acc);
    free(accn);
    free(extra);
    return rc;
}
