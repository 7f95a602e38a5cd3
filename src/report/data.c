/* The report's figures: result rows of one run arranged per method, derived figures (Δ
 * perplexity, speedup), the Pareto front, recommendations and the executive summary, and the
 * two comparison tables every format renders. */
#include "report/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double *nans(int n)
{
    double *v = lb_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = NAN;
    return v;
}

static int find_or_add(char ***list, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (strcmp((*list)[i], s) == 0)
            return i;
    *list = lb_realloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[*n] = lb_strdup(s);
    return (*n)++;
}

static bool is_ppl(const char *metric) { return strcmp(metric, "perplexity") == 0 || strcmp(metric, "ppl") == 0; }
static bool is_kld(const char *metric)
{
    return strcmp(metric, "kld_mean") == 0 || strcmp(metric, "kld") == 0 || strcmp(metric, "mean_kld") == 0;
}
static bool is_top1(const char *metric)
{
    return strstr(metric, "top1") || strstr(metric, "top_1") || strstr(metric, "same_top");
}
/* The KLD stage's other figures (percentiles, the perplexity pair it also measures) stay in
 * the store and the JSON rows; the tables show the mean and the top-1 agreement. */
static bool is_kld_extra(const char *metric)
{
    return strncmp(metric, "kld_", 4) == 0 || strncmp(metric, "perplexity_", 11) == 0 ||
           strcmp(metric, "dp_rms_pct") == 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

void rp_fmt_num(char *out, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(out, n, "%s", "");
    else if (fabs(v) >= 1e5)
        snprintf(out, n, "%.0f", v);
    else
        snprintf(out, n, "%.4g", v);
}

void rp_fmt_bytes(char *out, size_t n, double v)
{
    if (!isfinite(v) || v <= 0)
        snprintf(out, n, "%s", "");
    else if (v >= 1 << 30)
        snprintf(out, n, "%.2f GiB", v / (1 << 30));
    else if (v >= 1 << 20)
        snprintf(out, n, "%.2f MiB", v / (1 << 20));
    else
        snprintf(out, n, "%.1f KiB", v / 1024);
}

/* ---- tables ---- */

static rp_col *add_col(rp_table *t, const char *head)
{
    if (t->n_cols == t->cap)   /* sized in build_tables; never reached */
        abort();
    rp_col *c = &t->cols[t->n_cols++];
    c->head = lb_strdup(head);
    c->cells = lb_calloc((size_t)t->rows + 1, sizeof *c->cells);
    c->num = nans(t->rows);
    return c;
}

static void set_cell(rp_col *c, int row, double v, const char *fmt)
{
    char s[64] = "";
    if (isfinite(v))
        snprintf(s, sizeof s, fmt, v);
    c->cells[row] = lb_strdup(s);
    c->num[row] = v;
}

static void set_text(rp_col *c, int row, const char *s)
{
    c->cells[row] = lb_strdup(s ? s : "");
}

static void build_tables(rp_data *d)
{
    rp_table *a = &d->tables[0], *p = &d->tables[1];
    a->title = "Accuracy";
    p->title = "Performance";
    a->rows = p->rows = d->nm;
    a->cap = 2 + 2 * d->nds + 4 + d->ntm;
    p->cap = 2 + 5 * d->nb + 3;
    a->cols = lb_calloc((size_t)a->cap, sizeof *a->cols);
    p->cols = lb_calloc((size_t)p->cap, sizeof *p->cols);
    for (int t = 0; t < 2; t++) {
        rp_table *tb = &d->tables[t];
        rp_col *c = add_col(tb, "method");
        rp_col *f = add_col(tb, "format");
        for (int i = 0; i < d->nm; i++) {
            set_text(c, i, d->m[i]->name);
            set_text(f, i, d->m[i]->format[0] ? d->m[i]->format : d->m[i]->method);
        }
    }
    for (int k = 0; k < d->nds; k++) {
        char h[160];
        snprintf(h, sizeof h, "ppl %s", d->ds[k]);
        rp_col *c = add_col(a, h);
        snprintf(h, sizeof h, "± %s", d->ds[k]);
        rp_col *e = add_col(a, h);
        for (int i = 0; i < d->nm; i++) {
            set_cell(c, i, d->ppl[i * d->nds + k], "%.4f");
            set_cell(e, i, d->ppl_se[i * d->nds + k], "%.4f");
        }
    }
    if (d->nds && d->base >= 0) {
        rp_col *c = add_col(a, "Δ ppl"), *q = add_col(a, "Δ ppl %");
        for (int i = 0; i < d->nm; i++) {
            set_cell(c, i, d->dppl[i], "%+.4f");
            set_cell(q, i, d->dppl_pct[i], "%+.2f%%");
        }
    }
    bool any_kld = false, any_top1 = false;
    for (int i = 0; i < d->nm; i++) {
        any_kld |= isfinite(d->kld[i]);
        any_top1 |= isfinite(d->top1[i]);
    }
    if (any_kld) {
        rp_col *c = add_col(a, "KLD");
        for (int i = 0; i < d->nm; i++)
            set_cell(c, i, d->kld[i], "%.6f");
    }
    if (any_top1) {
        rp_col *c = add_col(a, "top-1 agree");
        for (int i = 0; i < d->nm; i++)
            set_cell(c, i, d->top1[i], "%.4f");
    }
    for (int t = 0; t < d->ntm; t++) {
        rp_col *c = add_col(a, d->tm[t]);
        for (int i = 0; i < d->nm; i++) {
            double v = d->tmv[i * d->ntm + t], se = d->tmse[i * d->ntm + t];
            char s[64] = "";
            if (isfinite(v) && isfinite(se))
                snprintf(s, sizeof s, "%.4f ± %.4f", v, se);
            else if (isfinite(v))
                snprintf(s, sizeof s, "%.4f", v);
            c->cells[i] = lb_strdup(s);
            c->num[i] = v;
        }
    }
    for (int b = 0; b < d->nb; b++) {
        char h[64];
        rp_col *cols[5];
        const char *names[5] = {"p50 ms", "p95 ms", "p99 ms", "tok/s", "speedup"};
        for (int k = 0; k < 5; k++) {
            snprintf(h, sizeof h, "b%d %s", d->batch[b], names[k]);
            cols[k] = add_col(p, h);
        }
        for (int i = 0; i < d->nm; i++) {
            int j = i * d->nb + b;
            set_cell(cols[0], i, d->p50[j], "%.3f");
            set_cell(cols[1], i, d->p95[j], "%.3f");
            set_cell(cols[2], i, d->p99[j], "%.3f");
            set_cell(cols[3], i, d->tps[j], "%.1f");
            set_cell(cols[4], i, d->speedup[j], "%.2fx");
        }
    }
    rp_col *mem = add_col(p, "peak memory"), *size = add_col(p, "size"), *bpw = add_col(p, "bits/weight");
    for (int i = 0; i < d->nm; i++) {
        char s[64];
        rp_fmt_bytes(s, sizeof s, d->mem[i]);
        mem->cells[i] = lb_strdup(s);
        mem->num[i] = d->mem[i];
        rp_fmt_bytes(s, sizeof s, d->bytes[i]);
        size->cells[i] = lb_strdup(s);
        size->num[i] = d->bytes[i];
        set_cell(bpw, i, d->bpw[i], "%.3f");
    }
}

/* ---- recommendations ---- */

static void add_rec(rp_data *d, const char *use, int pick, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_rec(rp_data *d, const char *use, int pick, const char *fmt, ...)
{
    if (d->nrec >= 8 || pick < 0)
        return;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    d->rec_case[d->nrec] = lb_strdup(use);
    d->rec_pick[d->nrec] = lb_strdup(d->m[pick]->name);
    d->rec_why[d->nrec] = lb_strdup(why);
    d->nrec++;
}

static void recommend(rp_data *d)
{
    int b0 = 0, bl = d->nb - 1;
    /* Pareto front on (perplexity, bits per weight): nothing else is at least as good on both
     * and better on one. */
    for (int i = 0; i < d->nm; i++) {
        double pi = d->nds ? d->ppl[i * d->nds] : NAN, wi = d->bpw[i];
        if (!isfinite(pi) || !isfinite(wi))
            continue;
        bool dominated = false;
        for (int j = 0; j < d->nm && !dominated; j++) {
            double pj = d->ppl[j * d->nds], wj = d->bpw[j];
            if (j == i || !isfinite(pj) || !isfinite(wj))
                continue;
            dominated = pj <= pi && wj <= wi && (pj < pi || wj < wi);
        }
        d->pareto[i] = !dominated;
    }
    lb_buf names = {0};
    int n_front = 0;
    for (int i = 0; i < d->nm; i++)
        if (d->pareto[i]) {
            lb_buf_appendf(&names, "%s%s", n_front ? ", " : "", d->m[i]->name);
            n_front++;
        }
    if (n_front) {
        d->rec_case[d->nrec] = lb_strdup("Pareto-optimal (perplexity vs bits per weight)");
        d->rec_pick[d->nrec] = lb_strdup(lb_buf_cstr(&names));
        d->rec_why[d->nrec] = lb_strdup("No other model has both lower perplexity and fewer bits per weight.");
        d->nrec++;
    }
    lb_buf_free(&names);

    /* Smallest memory within the budget. */
    if (d->nds && d->base >= 0 && isfinite(d->ppl[d->base * d->nds])) {
        int best = -1;
        for (int i = 0; i < d->nm; i++) {
            double mem = isfinite(d->mem[i]) ? d->mem[i] : d->bytes[i];
            if (!isfinite(d->dppl_pct[i]) || d->dppl_pct[i] > 100 * LB_REPORT_PPL_BUDGET || !isfinite(mem) || mem <= 0)
                continue;
            double bm = best < 0 ? INFINITY : isfinite(d->mem[best]) ? d->mem[best] : d->bytes[best];
            if (mem < bm)
                best = i;
        }
        if (best >= 0) {
            char mb[64];
            bool rss = isfinite(d->mem[best]);
            rp_fmt_bytes(mb, sizeof mb, rss ? d->mem[best] : d->bytes[best]);
            add_rec(d, "Smallest memory within +5% perplexity", best,
                    "It needs the least %s (%s) while its %s perplexity stays within 5%% of the baseline (%+.2f%%).",
                    rss ? "peak memory" : "disk", mb, d->ds[0], d->dppl_pct[best]);
        }
    }
    /* Lowest latency at the smallest batch. */
    if (d->nb) {
        int best = -1;
        for (int i = 0; i < d->nm; i++)
            if (isfinite(d->p50[i * d->nb + b0]) && (best < 0 || d->p50[i * d->nb + b0] < d->p50[best * d->nb + b0]))
                best = i;
        if (best >= 0)
            add_rec(d, "Lowest latency", best, "Its median request latency at batch %d is the lowest measured, %.3f ms.",
                    d->batch[b0], d->p50[best * d->nb + b0]);
    }
    /* Highest accuracy among the quantized models. */
    {
        int best = -1;
        if (d->nds) {
            for (int i = 0; i < d->nm; i++)
                if (i != d->base && isfinite(d->ppl[i * d->nds]) &&
                    (best < 0 || d->ppl[i * d->nds] < d->ppl[best * d->nds]))
                    best = i;
            if (best >= 0)
                add_rec(d, "Highest accuracy (quantized)", best,
                        "It has the lowest %s perplexity of the quantized models, %.4f%s.", d->ds[0],
                        d->ppl[best * d->nds], d->base >= 0 ? " (closest to the baseline)" : "");
        } else if (d->ntm) {
            double bv = -INFINITY;
            for (int i = 0; i < d->nm; i++) {
                double s = 0;
                int k = 0;
                for (int t = 0; t < d->ntm; t++)
                    if (isfinite(d->tmv[i * d->ntm + t])) { s += d->tmv[i * d->ntm + t]; k++; }
                if (i != d->base && k && s / k > bv) { bv = s / k; best = i; }
            }
            if (best >= 0)
                add_rec(d, "Highest accuracy (quantized)", best,
                        "It has the highest mean task score of the quantized models, %.4f.", bv);
        }
    }
    /* Best throughput at the largest batch. */
    if (d->nb) {
        int best = -1;
        for (int i = 0; i < d->nm; i++)
            if (isfinite(d->tps[i * d->nb + bl]) && (best < 0 || d->tps[i * d->nb + bl] > d->tps[best * d->nb + bl]))
                best = i;
        if (best >= 0)
            add_rec(d, "Best throughput at the largest batch", best,
                    "It generates the most tokens per second at batch %d, %.1f tok/s.", d->batch[bl],
                    d->tps[best * d->nb + bl]);
    }
}

static void summarize(rp_data *d)
{
    lb_buf s = {0};
    int nq = d->nm - (d->base >= 0);
    lb_buf_appendf(&s, "Run %lld compared %d quantized model%s", (long long)d->run->id, nq, nq == 1 ? "" : "s");
    if (d->base >= 0)
        lb_buf_appendf(&s, " against the baseline %s", d->m[d->base]->model_path);
    lb_buf_appendf(&s, ".");
    if (d->nds && d->base >= 0 && isfinite(d->ppl[d->base * d->nds]))
        lb_buf_appendf(&s, " The baseline's %s perplexity is %.4f.", d->ds[0], d->ppl[d->base * d->nds]);
    /* The headline: the smallest model within the budget, with what it costs and gains. */
    int pick = -1;
    for (int i = 0; i < d->nm; i++)
        if (i != d->base && isfinite(d->dppl_pct[i]) && d->dppl_pct[i] <= 100 * LB_REPORT_PPL_BUDGET &&
            isfinite(d->bytes[i]) && (pick < 0 || d->bytes[i] < d->bytes[pick]))
            pick = i;
    if (pick >= 0) {
        lb_buf_appendf(&s, " %s keeps perplexity within 5%% (%+.4f, %+.2f%%)", d->m[pick]->name,
                       d->dppl[pick], d->dppl_pct[pick]);
        if (d->base >= 0 && d->bytes[pick] > 0 && isfinite(d->bytes[d->base]))
            lb_buf_appendf(&s, " at %.2fx smaller size", d->bytes[d->base] / d->bytes[pick]);
        if (d->nb && isfinite(d->speedup[pick * d->nb]))
            lb_buf_appendf(&s, " and %.2fx the baseline's speed at batch %d", d->speedup[pick * d->nb], d->batch[0]);
        lb_buf_appendf(&s, ".");
    } else if (d->nds && d->base >= 0) {
        lb_buf_appendf(&s, " No quantized model stays within 5%% of the baseline's perplexity.");
    }
    int failed = 0;
    for (int i = 0; i < d->run->n_stages; i++)
        failed += strcmp(d->run->stages[i].status, "failed") == 0;
    if (failed)
        lb_buf_appendf(&s, " %d stage%s failed; their figures are missing.", failed, failed == 1 ? "" : "s");
    d->summary = lb_strdup(lb_buf_cstr(&s));
    lb_buf_free(&s);
}

void rp_data_build(rp_data *d, const lb_store_run *run)
{
    memset(d, 0, sizeof *d);
    d->run = run;
    d->base = -1;
    d->nm = run->n_methods;
    d->m = lb_calloc((size_t)d->nm + 1, sizeof *d->m);
    for (int i = 0; i < d->nm; i++) {
        d->m[i] = &run->methods[i];
        if (strcmp(run->methods[i].name, "baseline") == 0)
            d->base = i;
    }
    /* Columns first: datasets, task metrics and batch sizes present in the rows. */
    char **tasks = NULL;
    int ntask = 0;
    for (int r = 0; r < run->n_results; r++) {
        const lb_store_result_row *x = &run->results[r];
        if (!x->m)
            continue;
        if (strcmp(x->task, "bench") == 0) {
            bool have = false;
            for (int b = 0; b < d->nb; b++)
                have |= d->batch[b] == x->batch;
            if (!have && x->batch > 0) {
                d->batch = lb_realloc(d->batch, (size_t)(d->nb + 1) * sizeof *d->batch);
                d->batch[d->nb++] = x->batch;
            }
        } else if (is_ppl(x->metric))
            find_or_add(&d->ds, &d->nds, x->task);
        else if (!is_kld(x->metric) && !is_top1(x->metric) && !is_kld_extra(x->metric)) {
            char name[200];
            snprintf(name, sizeof name, "%s %s", x->task, x->metric);
            find_or_add(&tasks, &ntask, name);
        }
    }
    if (d->nb)
        qsort(d->batch, (size_t)d->nb, sizeof *d->batch, cmp_int);
    d->tm = tasks;
    d->ntm = ntask;
    int nm = d->nm;
    d->ppl = nans(nm * d->nds); d->ppl_se = nans(nm * d->nds);
    d->dppl = nans(nm); d->dppl_pct = nans(nm);
    d->kld = nans(nm); d->top1 = nans(nm);
    d->tmv = nans(nm * d->ntm); d->tmse = nans(nm * d->ntm);
    d->p50 = nans(nm * d->nb); d->p95 = nans(nm * d->nb); d->p99 = nans(nm * d->nb);
    d->lat_mean = nans(nm * d->nb); d->tps = nans(nm * d->nb); d->speedup = nans(nm * d->nb);
    d->mem = nans(nm); d->bytes = nans(nm); d->bpw = nans(nm);
    d->pareto = lb_calloc((size_t)nm + 1, sizeof *d->pareto);
    for (int i = 0; i < nm; i++) {
        if (d->m[i]->model_bytes > 0)
            d->bytes[i] = (double)d->m[i]->model_bytes;
        d->bpw[i] = d->m[i]->bpw;
    }
    /* The first row of each figure wins (a re-imported stage replaces its rows, never doubles). */
    for (int r = 0; r < run->n_results; r++) {
        const lb_store_result_row *x = &run->results[r];
        if (!x->m)
            continue;
        int i = (int)(x->m - run->methods);
        if (strcmp(x->task, "bench") == 0) {
            int b = 0;
            while (b < d->nb && d->batch[b] != x->batch) b++;
            if (b == d->nb)
                continue;
            int j = i * d->nb + b;
            double *slot = strcmp(x->metric, "latency_p50_ms") == 0 ? &d->p50[j]
                         : strcmp(x->metric, "latency_p95_ms") == 0 ? &d->p95[j]
                         : strcmp(x->metric, "latency_p99_ms") == 0 ? &d->p99[j]
                         : strcmp(x->metric, "latency_mean_ms") == 0 ? &d->lat_mean[j]
                         : strcmp(x->metric, "decode_tokens_per_s") == 0 ? &d->tps[j] : NULL;
            if (slot && isnan(*slot))
                *slot = x->value;
            /* Peak memory: the largest over batch sizes. */
            if (strcmp(x->metric, "peak_rss_bytes") == 0 && isfinite(x->value) &&
                (isnan(d->mem[i]) || x->value > d->mem[i]))
                d->mem[i] = x->value;
            if (strcmp(x->metric, "bits_per_weight") == 0 && isnan(d->bpw[i]))
                d->bpw[i] = x->value;
            continue;
        }
        if (is_ppl(x->metric)) {
            int k = 0;
            while (strcmp(d->ds[k], x->task)) k++;
            if (isnan(d->ppl[i * d->nds + k])) {
                d->ppl[i * d->nds + k] = x->value;
                d->ppl_se[i * d->nds + k] = x->stderr_;
            }
        } else if (is_kld(x->metric)) {
            if (isnan(d->kld[i])) d->kld[i] = x->value;
        } else if (is_top1(x->metric)) {
            if (isnan(d->top1[i])) d->top1[i] = x->value;
        } else if (!is_kld_extra(x->metric)) {
            char name[200];
            snprintf(name, sizeof name, "%s %s", x->task, x->metric);
            int t = 0;
            while (strcmp(d->tm[t], name)) t++;
            if (isnan(d->tmv[i * d->ntm + t])) {
                d->tmv[i * d->ntm + t] = x->value;
                d->tmse[i * d->ntm + t] = x->stderr_;
            }
        }
    }
    if (d->base >= 0) {
        for (int i = 0; i < nm; i++) {
            if (d->nds) {
                double b = d->ppl[d->base * d->nds], q = d->ppl[i * d->nds];
                d->dppl[i] = q - b;
                d->dppl_pct[i] = 100.0 * (q - b) / b;
            }
            /* Speedup: the baseline's mean latency over this one's, batch by batch. */
            for (int b = 0; b < d->nb; b++) {
                double lb = d->lat_mean[d->base * d->nb + b], lq = d->lat_mean[i * d->nb + b];
                if (isnan(lb)) lb = d->p50[d->base * d->nb + b], lq = d->p50[i * d->nb + b];
                d->speedup[i * d->nb + b] = lb / lq;
            }
        }
    }
    recommend(d);
    summarize(d);
    build_tables(d);
}

void rp_data_free(rp_data *d)
{
    for (int t = 0; t < 2; t++) {
        rp_table *tb = &d->tables[t];
        for (int c = 0; c < tb->n_cols; c++) {
            for (int r = 0; r < tb->rows; r++)
                free(tb->cols[c].cells[r]);
            free(tb->cols[c].cells);
            free(tb->cols[c].num);
            free(tb->cols[c].head);
        }
        free(tb->cols);
    }
    for (int i = 0; i < d->nds; i++) free(d->ds[i]);
    for (int i = 0; i < d->ntm; i++) free(d->tm[i]);
    for (int i = 0; i < d->nrec; i++) {
        free(d->rec_case[i]); free(d->rec_pick[i]); free(d->rec_why[i]);
    }
    free(d->ds); free(d->tm); free(d->m); free(d->batch);
    free(d->ppl); free(d->ppl_se); free(d->dppl); free(d->dppl_pct); free(d->kld); free(d->top1);
    free(d->tmv); free(d->tmse); free(d->p50); free(d->p95); free(d->p99); free(d->lat_mean);
    free(d->tps); free(d->speedup); free(d->mem); free(d->bytes); free(d->bpw); free(d->pareto);
    free(d->summary);
    memset(d, 0, sizeof *d);
}
