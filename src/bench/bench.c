/* The benchmark: see bench.h. Three phases, so that one model's pages never inflate another's
 * memory figure and no model is timed while another is half-loaded:
 *   1. every model is loaded once and checked (a bad path fails before anything is timed);
 *   2. memory: one model at a time, one request per batch size with the kernel's high-water
 *      mark reset just before it;
 *   3. timing: all models loaded, and for each batch size warm-up then timed requests,
 *      alternating models rep by rep (and the order every other rep). */
#include "bench/bench.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "core/timer.h"
#include "model/engine.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tensor/tensor.h"

#include <ctype.h>
#include <errno.h>
#include <immintrin.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lb_bench_percentile(const double *sorted, int n, double q)
{
    if (n <= 0)
        return NAN;
    if (q <= 0)
        return sorted[0];
    if (q >= 100)
        return sorted[n - 1];
    double rank = q / 100.0 * (n - 1);
    int lo = (int)rank;
    if (lo >= n - 1)
        return sorted[n - 1];
    double frac = rank - lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static double mean_of(const double *v, int n)
{
    if (n <= 0)
        return NAN;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* Sample standard deviation; 0 for a single value. */
static double stdev_of(const double *v, int n)
{
    if (n <= 0)
        return NAN;
    if (n == 1)
        return 0;
    double m = mean_of(v, n), s = 0;
    for (int i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

/* ---- options ---- */

int lb_bench_parse_ints(const char *text, const char *what, int max_value, int **values, int *n,
                        lb_error *err)
{
    *values = NULL;
    *n = 0;
    if (!text || !*text)
        return lb_fail(err, "%s is empty, expected a comma-separated list like 1,4,8", what);
    int v[64], count = 0;
    const char *p = text;
    for (;;) {
        const char *start = p;
        long long x = 0;
        while (isdigit((unsigned char)*p)) {
            if (x <= (long long)INT_MAX)   /* beyond that it is too large anyway */
                x = x * 10 + (*p - '0');
            p++;
        }
        if (p == start || (*p != ',' && *p != '\0'))
            return lb_fail(err, "%s '%s': expected positive integers separated by commas",
                           what, text);
        if (x < 1 || x > max_value)
            return lb_fail(err, "%s '%s': %.*s is outside 1..%d", what, text,
                           (int)(p - start), start, max_value);
        if (count == 64)
            return lb_fail(err, "%s '%s': more than 64 values", what, text);
        v[count++] = (int)x;
        if (*p == '\0')
            break;
        p++;   /* the comma; a trailing one leaves an empty item, refused above */
    }
    *values = lb_malloc((size_t)count * sizeof **values);
    memcpy(*values, v, (size_t)count * sizeof *v);
    *n = count;
    return 0;
}

int lb_bench_check(const lb_bench_params *p, lb_error *err)
{
    if (p->n_models < 1)
        return lb_fail(err, "-m: no model given");
    if (p->baseline >= p->n_models)
        return lb_fail(err, "--vs: baseline index %d outside the %d models", p->baseline,
                       p->n_models);
    if (p->n_batches < 1)
        return lb_fail(err, "--batch: no batch size given");
    for (int i = 0; i < p->n_batches; i++)
        if (p->batches[i] < 1 || p->batches[i] > 4096)
            return lb_fail(err, "--batch: %d is outside 1..4096", p->batches[i]);
    if (p->prompt < 1 || p->prompt > 1 << 20)
        return lb_fail(err, "--prompt is %d, expected 1..1048576", p->prompt);
    if (p->gen < 1 || p->gen > 1 << 20)
        return lb_fail(err, "--gen is %d, expected 1..1048576", p->gen);
    if (p->reps < 1 || p->reps > 1000000)
        return lb_fail(err, "--reps is %d, expected 1..1000000", p->reps);
    if (p->warmup < 0 || p->warmup > 1000000)
        return lb_fail(err, "--warmup is %d, expected 0..1000000", p->warmup);
    if (p->threads < 0 || p->threads > 4096)
        return lb_fail(err, "--threads is %d, expected 0..4096", p->threads);
    /* Products bound the buffers (prompt tokens of a batch, timings kept per decode pass). */
    const int64_t most = (int64_t)1 << 26;
    for (int i = 0; i < p->n_batches; i++)
        if ((int64_t)p->batches[i] * p->prompt > most)
            return lb_fail(err, "--batch %d x --prompt %d is %lld prompt tokens in one pass, "
                           "expected at most %lld", p->batches[i], p->prompt,
                           (long long)p->batches[i] * p->prompt, (long long)most);
    if ((int64_t)p->reps * p->gen > most)
        return lb_fail(err, "--reps %d x --gen %d is more than %lld timed decode passes",
                       p->reps, p->gen, (long long)most);
    return 0;
}

/* ---- /proc memory figures ---- */

int64_t lb_bench_proc_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t flen = strlen(field);
    int64_t bytes = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            long long kb;
            if (sscanf(line + flen + 1, "%lld", &kb) == 1 && kb >= 0)
                bytes = (int64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return bytes;
}

int lb_bench_reset_peak(void)
{
    /* "5" resets the peak RSS to the current RSS (Linux 4.0+); containers may refuse it. */
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, "5", 1);
    close(fd);
    return w == 1 ? 0 : -1;
}

/* ---- one model under test ---- */

typedef struct {
    const char *path;
    lb_model *m;
    lb_engine *e;
    int *prompts;      /* batch x prompt tokens */
    float *logits;     /* batch x vocab */
    int *tok, *pos, *seq, *next;
    bool *want;
    int cap_tokens;    /* sized for this many batch tokens */
    /* timed samples of the current batch size */
    double *latency, *ttft, *itl;
    double *prefill_rate, *decode_rate;   /* per rep, tokens/s */
    int n_lat, n_itl;
    double prefill_ms, decode_ms, seconds;
    int64_t generated;
} subject;

static const char *base_name(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *s = path;
    for (size_t i = 0; i + 1 < len; i++)
        if (path[i] == '/')
            s = path + i + 1;
    return s;
}

static const char *model_format(const lb_model *m)
{
    const lb_tensor *t = NULL;
    if (m->cfg.n_layers > 0 && m->layers && m->layers[0].wq)
        t = m->layers[0].wq;
    else if (m->tok_embd)
        t = m->tok_embd;
    const char *name = t ? lb_type_name(t->type) : NULL;
    return name ? name : "?";
}

/* Weight bytes one decode pass reads: everything except the embedding tables, of which one row
 * per token is read (unless the embedding doubles as the output head, which is read whole). */
static double weight_bytes_per_token(const lb_model *m)
{
    double bytes = (double)lb_model_bytes(m);
    const lb_tensor *tabs[2] = {m->tok_embd, m->pos_embd};
    for (int i = 0; i < 2; i++) {
        const lb_tensor *t = tabs[i];
        if (!t || t->view || t == m->output || t->ne[1] < 1)
            continue;
        bytes -= (double)t->nbytes;
        bytes += (double)t->nbytes / (double)t->ne[1];
    }
    return bytes;
}

/* Deterministic prompts: sequence s of every model starts with BOS (when there is one) followed
 * by seeded random ids that are neither BOS nor EOS. */
static void make_prompts(subject *s, const lb_bench_params *p, int batch)
{
    const lb_tokenizer *tok = s->m->tok;
    int vocab = s->m->cfg.vocab_size;
    int bos = tok ? tok->bos_id : -1, eos = tok ? tok->eos_id : -1;
    for (int q = 0; q < batch; q++) {
        lb_rng rng;
        lb_rng_seed(&rng, p->seed * 1000003u + (uint64_t)q);
        int *row = s->prompts + (size_t)q * p->prompt;
        for (int i = 0; i < p->prompt; i++) {
            if (i == 0 && bos >= 0 && bos < vocab) {
                row[i] = bos;
                continue;
            }
            int id;
            do
                id = (int)(lb_rng_next(&rng) % (uint64_t)vocab);
            while (id == bos || id == eos);
            row[i] = id;
        }
    }
}

/* Creates the engine for this batch size and sizes the buffers. */
static int subject_prepare(subject *s, const lb_bench_params *p, int batch, lb_error *err)
{
    lb_engine_free(s->e);
    s->e = NULL;
    if (lb_engine_create(s->m, p->prompt + p->gen, batch, p->threads, &s->e, err))
        return lb_fail_prefix(err, "%s: ", s->path);
    int vocab = s->m->cfg.vocab_size;
    int ntok = batch * p->prompt > batch ? batch * p->prompt : batch;
    free(s->prompts);
    free(s->logits);
    free(s->tok);
    free(s->pos);
    free(s->seq);
    free(s->next);
    free(s->want);
    s->prompts = lb_malloc((size_t)batch * (size_t)p->prompt * sizeof(int));
    s->logits = lb_malloc((size_t)batch * (size_t)vocab * sizeof(float));
    s->tok = lb_malloc((size_t)ntok * sizeof(int));
    s->pos = lb_malloc((size_t)ntok * sizeof(int));
    s->seq = lb_malloc((size_t)ntok * sizeof(int));
    s->want = lb_malloc((size_t)ntok * sizeof(bool));
    s->next = lb_malloc((size_t)batch * sizeof(int));
    s->cap_tokens = ntok;
    make_prompts(s, p, batch);
    return 0;
}

/* One request of `batch` sequences: prefill all prompts in one pass, then gen-1 decode passes.
 * When record is set the times go into the subject's samples. */
static int subject_request(subject *s, const lb_bench_params *p, int batch, bool record,
                           lb_error *err)
{
    int vocab = s->m->cfg.vocab_size, P = p->prompt;
    int n = batch * P;
    for (int q = 0; q < batch; q++)
        for (int i = 0; i < P; i++) {
            int t = q * P + i;
            s->tok[t] = s->prompts[(size_t)q * P + i];
            s->pos[t] = i;
            s->seq[t] = q;
            s->want[t] = i == P - 1;
        }
    lb_batch b = {n, s->tok, s->pos, s->seq, s->want};
    double t0 = lb_now_ms();
    if (lb_engine_forward(s->e, &b, s->logits, err))
        return lb_fail_prefix(err, "%s: prefill: ", s->path);
    for (int q = 0; q < batch; q++)
        s->next[q] = lb_argmax(s->logits + (size_t)q * vocab, vocab);
    double t1 = lb_now_ms(), prev = t1;
    for (int g = 1; g < p->gen; g++) {
        for (int q = 0; q < batch; q++) {
            s->tok[q] = s->next[q];
            s->pos[q] = P + g - 1;
            s->seq[q] = q;
            s->want[q] = true;
        }
        lb_batch d = {batch, s->tok, s->pos, s->seq, s->want};
        if (lb_engine_forward(s->e, &d, s->logits, err))
            return lb_fail_prefix(err, "%s: decode: ", s->path);
        for (int q = 0; q < batch; q++)
            s->next[q] = lb_argmax(s->logits + (size_t)q * vocab, vocab);
        double now = lb_now_ms();
        if (record)
            s->itl[s->n_itl++] = now - prev;
        prev = now;
    }
    if (record) {
        s->latency[s->n_lat] = prev - t0;
        s->ttft[s->n_lat] = t1 - t0;
        s->prefill_rate[s->n_lat] = t1 > t0 ? (double)batch * P / ((t1 - t0) / 1e3) : NAN;
        s->decode_rate[s->n_lat] =
            prev > t1 ? (double)batch * (p->gen - 1) / ((prev - t1) / 1e3) : NAN;
        s->n_lat++;
        s->prefill_ms += t1 - t0;
        s->decode_ms += prev - t1;
        s->seconds += (prev - t0) / 1e3;
        s->generated = (int64_t)batch * p->gen;
    }
    return 0;
}

static void subject_release(subject *s)
{
    lb_engine_free(s->e);
    lb_model_free(s->m);
    free(s->prompts);
    free(s->logits);
    free(s->tok);
    free(s->pos);
    free(s->seq);
    free(s->next);
    free(s->want);
    free(s->latency);
    free(s->ttft);
    free(s->itl);
    free(s->prefill_rate);
    free(s->decode_rate);
    memset(s, 0, sizeof *s);
}

static int load_subject(subject *s, const char *path, lb_error *err)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    if (lb_model_load(path, NULL, &s->m, err))
        return -1;
    if (s->m->cfg.vocab_size < 3)
        return lb_fail(err, "%s: vocabulary of %d tokens, expected at least 3", path,
                       s->m->cfg.vocab_size);
    return 0;
}

/* Fills the row's static figures (model, memory) from a loaded subject. */
static void row_describe(lb_bench_row *r, const subject *s, int batch)
{
    snprintf(r->model, sizeof r->model, "%s", s->path);
    snprintf(r->name, sizeof r->name, "%s", base_name(s->path));
    snprintf(r->format, sizeof r->format, "%s", model_format(s->m));
    r->batch = batch;
    r->model_bytes = (double)lb_model_bytes(s->m);
    r->params = lb_model_params(s->m);
    r->bits_per_weight = r->params > 0 ? 8.0 * r->model_bytes / (double)r->params : NAN;
    r->bytes_per_token = weight_bytes_per_token(s->m);
    r->kv_bytes = s->e ? (double)lb_engine_kv_bytes(s->e) : NAN;
}

/* Median of the finite values (sorted in place); NaN when there are none. */
static double median_rate(double *v, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    qsort(v, (size_t)k, sizeof(double), cmp_double);
    return lb_bench_percentile(v, k, 50);
}

static void row_timing(lb_bench_row *r, subject *s, const lb_bench_params *p, int batch)
{
    r->reps = s->n_lat;
    qsort(s->latency, (size_t)s->n_lat, sizeof(double), cmp_double);
    qsort(s->itl, (size_t)s->n_itl, sizeof(double), cmp_double);
    r->latency_mean = mean_of(s->latency, s->n_lat);
    r->latency_stdev = stdev_of(s->latency, s->n_lat);
    r->latency_p50 = lb_bench_percentile(s->latency, s->n_lat, 50);
    r->latency_p95 = lb_bench_percentile(s->latency, s->n_lat, 95);
    r->latency_p99 = lb_bench_percentile(s->latency, s->n_lat, 99);
    r->ttft_mean = mean_of(s->ttft, s->n_lat);
    r->ttft_stdev = stdev_of(s->ttft, s->n_lat);
    r->itl_p50 = lb_bench_percentile(s->itl, s->n_itl, 50);
    r->itl_p99 = lb_bench_percentile(s->itl, s->n_itl, 99);
    r->n_itl = s->n_itl;
    r->prefill_tokens = (int64_t)s->n_lat * batch * p->prompt;
    r->decode_tokens = (int64_t)s->n_itl * batch;
    r->prefill_tps = s->prefill_ms > 0 ? r->prefill_tokens / (s->prefill_ms / 1e3) : NAN;
    r->decode_tps = s->decode_ms > 0 && r->decode_tokens > 0
                        ? r->decode_tokens / (s->decode_ms / 1e3) : NAN;
    r->generated_per_request = s->generated;
    /* Medians of the per-rep rates: one stalled rep on a shared machine does not move them. */
    r->prefill_tps_median = median_rate(s->prefill_rate, s->n_lat);
    r->decode_tps_median = median_rate(s->decode_rate, s->n_lat);
    r->seconds = s->seconds;
}

static double ratio(double num, double den)
{
    return isfinite(num) && isfinite(den) && den > 0 ? num / den : NAN;
}

int lb_bench_run(const lb_bench_params *p, lb_bench_row **rows_out, int *n_rows, lb_error *err)
{
    *rows_out = NULL;
    *n_rows = 0;
    if (lb_bench_check(p, err))
        return -1;
    int nm = p->n_models, nb = p->n_batches;
    subject *subs = lb_calloc((size_t)nm, sizeof *subs);
    lb_bench_row *rows = lb_calloc((size_t)nm * nb, sizeof *rows);
    int rc = -1;

    /* 1. Every model loads, before anything is measured. */
    for (int i = 0; i < nm; i++) {
        if (load_subject(&subs[i], p->models[i], err))
            goto done;
        subject_release(&subs[i]);
    }

    uint64_t total = (uint64_t)nm * nb * (uint64_t)(1 + p->warmup + p->reps);
    lb_progress *bar = p->progress ? lb_progress_start("bench", total, "req") : NULL;

    /* 2. Memory, one model at a time. The peak is reset after the previous engine is gone and
     *    freed memory is handed back, so it holds this model, this engine and the process. */
    bool exact_all = true;
    for (int i = 0; i < nm; i++) {
        subject *s = &subs[i];
        if (load_subject(s, p->models[i], err))
            goto fail_bar;
        for (int j = 0; j < nb; j++) {
            int batch = p->batches[j];
            lb_bench_row *r = &rows[(size_t)j * nm + i];
            if (subject_prepare(s, p, batch, err))
                goto fail_bar;
            malloc_trim(0);
            bool exact = lb_bench_reset_peak() == 0;
            if (subject_request(s, p, batch, false, err))
                goto fail_bar;
            int64_t hwm = lb_bench_proc_bytes("VmHWM");
            row_describe(r, s, batch);
            r->peak_rss = hwm >= 0 ? (double)hwm : NAN;
            r->peak_rss_exact = exact && hwm >= 0;
            exact_all = exact_all && exact;
            lb_progress_add(bar, 1);
        }
        subject_release(s);
    }
    (void)exact_all;

    /* 3. Timing, all models loaded, interleaved. */
    for (int i = 0; i < nm; i++) {
        if (load_subject(&subs[i], p->models[i], err))
            goto fail_bar;
        subs[i].latency = lb_malloc((size_t)p->reps * sizeof(double));
        subs[i].ttft = lb_malloc((size_t)p->reps * sizeof(double));
        subs[i].itl = lb_malloc((size_t)p->reps * (size_t)p->gen * sizeof(double));
        subs[i].prefill_rate = lb_malloc((size_t)p->reps * sizeof(double));
        subs[i].decode_rate = lb_malloc((size_t)p->reps * sizeof(double));
    }
    for (int j = 0; j < nb; j++) {
        int batch = p->batches[j];
        for (int i = 0; i < nm; i++) {
            subject *s = &subs[i];
            if (subject_prepare(s, p, batch, err))
                goto fail_bar;
            s->n_lat = s->n_itl = 0;
            s->prefill_ms = s->decode_ms = s->seconds = 0;
        }
        for (int w = 0; w < p->warmup; w++)
            for (int i = 0; i < nm; i++) {
                if (subject_request(&subs[i], p, batch, false, err))
                    goto fail_bar;
                lb_progress_add(bar, 1);
            }
        for (int rep = 0; rep < p->reps; rep++)
            for (int k = 0; k < nm; k++) {
                /* Every other rep runs the models in reverse, so none always goes first. */
                int i = rep % 2 ? nm - 1 - k : k;
                if (subject_request(&subs[i], p, batch, true, err))
                    goto fail_bar;
                lb_progress_add(bar, 1);
            }
        for (int i = 0; i < nm; i++) {
            lb_bench_row *r = &rows[(size_t)j * nm + i];
            row_timing(r, &subs[i], p, batch);
            r->kv_bytes = (double)lb_engine_kv_bytes(subs[i].e);
        }
        /* This batch size's engines are not needed while the next is measured. */
        for (int i = 0; i < nm; i++) {
            lb_engine_free(subs[i].e);
            subs[i].e = NULL;
        }
    }
    lb_progress_finish(bar);
    bar = NULL;

    /* Ratios against the baseline at the same batch size. */
    for (int j = 0; j < nb; j++)
        for (int i = 0; i < nm; i++) {
            lb_bench_row *r = &rows[(size_t)j * nm + i];
            r->speedup = r->prefill_speedup = r->decode_speedup = NAN;
            r->memory_ratio = r->model_bytes_ratio = NAN;
            if (p->baseline < 0)
                continue;
            const lb_bench_row *b = &rows[(size_t)j * nm + p->baseline];
            r->speedup = ratio(b->latency_mean, r->latency_mean);
            r->prefill_speedup = ratio(r->prefill_tps, b->prefill_tps);
            r->decode_speedup = ratio(r->decode_tps, b->decode_tps);
            r->memory_ratio = ratio(r->peak_rss, b->peak_rss);
            r->model_bytes_ratio = ratio(r->model_bytes, b->model_bytes);
        }
    *rows_out = rows;
    *n_rows = nm * nb;
    rows = NULL;
    rc = 0;
    goto done;

fail_bar:
    lb_progress_finish(bar);
done:
    for (int i = 0; i < nm; i++)
        subject_release(&subs[i]);
    free(subs);
    free(rows);
    return rc;
}

/* ---- results in the shared schema ---- */

typedef struct {
    const char *metric;
    double value, stderr_;
    int64_t n;
    bool ratio;   /* only with a baseline */
} metric_def;

lb_result *lb_bench_results(const lb_bench_params *p, const lb_bench_row *rows, int n_rows,
                            size_t *n_results)
{
    enum { PER_ROW = 32 };   /* more than the metrics below */
    lb_result *rs = lb_calloc((size_t)n_rows * PER_ROW + 1, sizeof *rs);
    size_t k = 0;
    for (int i = 0; i < n_rows; i++) {
        const lb_bench_row *r = &rows[i];
        double sq = sqrt((double)(r->reps > 0 ? r->reps : 1));
        const metric_def defs[] = {
            {"latency_mean_ms", r->latency_mean, r->latency_stdev / sq, r->reps, false},
            {"latency_stdev_ms", r->latency_stdev, NAN, r->reps, false},
            {"latency_p50_ms", r->latency_p50, NAN, r->reps, false},
            {"latency_p95_ms", r->latency_p95, NAN, r->reps, false},
            {"latency_p99_ms", r->latency_p99, NAN, r->reps, false},
            {"ttft_ms", r->ttft_mean, r->ttft_stdev / sq, r->reps, false},
            {"itl_p50_ms", r->itl_p50, NAN, r->n_itl, false},
            {"itl_p99_ms", r->itl_p99, NAN, r->n_itl, false},
            {"prefill_tokens_per_s", r->prefill_tps, NAN, r->prefill_tokens, false},
            {"decode_tokens_per_s", r->decode_tps, NAN, r->decode_tokens, false},
            {"prefill_tokens_per_s_median", r->prefill_tps_median, NAN, r->reps, false},
            {"decode_tokens_per_s_median", r->decode_tps_median, NAN, r->reps, false},
            {"generated_tokens", (double)r->generated_per_request, NAN, r->reps, false},
            {"peak_rss_bytes", r->peak_rss, NAN, 1, false},
            {"model_bytes", r->model_bytes, NAN, r->params, false},
            {"kv_cache_bytes", r->kv_bytes, NAN, 1, false},
            {"bits_per_weight", r->bits_per_weight, NAN, r->params, false},
            {"weight_bytes_per_token", r->bytes_per_token, NAN, 1, false},
            {"speedup", r->speedup, NAN, r->reps, true},
            {"prefill_speedup", r->prefill_speedup, NAN, r->prefill_tokens, true},
            {"decode_speedup", r->decode_speedup, NAN, r->decode_tokens, true},
            {"memory_ratio", r->memory_ratio, NAN, 1, true},
            {"model_bytes_ratio", r->model_bytes_ratio, NAN, 1, true},
        };
        for (size_t d = 0; d < sizeof defs / sizeof defs[0]; d++) {
            if (defs[d].ratio && p->baseline < 0)
                continue;
            lb_result *res = &rs[k++];
            lb_result_init(res, r->model, r->format, "bench", defs[d].metric, defs[d].value);
            res->stderr_ = defs[d].stderr_;
            res->n = defs[d].n;
            res->seconds = r->seconds;
            lb_result_param(res, "batch", json_integer(r->batch));
            lb_result_param(res, "prompt", json_integer(p->prompt));
            lb_result_param(res, "gen", json_integer(p->gen));
            lb_result_param(res, "threads", json_integer(p->threads > 0 ? p->threads
                                                                         : lb_cpu_count()));
            lb_result_param(res, "reps", json_integer(r->reps));
            lb_result_param(res, "warmup", json_integer(p->warmup));
            lb_result_param(res, "kernels", json_string(lb_kernels_name()));
            lb_result_param(res, "kv_cache", json_string(lb_kv_type_name(lb_engine_kv_type())));
            if (defs[d].ratio)
                lb_result_param(res, "baseline", json_string(p->models[p->baseline]));
            if (strcmp(defs[d].metric, "peak_rss_bytes") == 0)
                lb_result_param(res, "exact", json_boolean(r->peak_rss_exact));
        }
    }
    *n_results = k;
    return rs;
}

/* ---- tables ---- */

static const char *fmt_num(char *buf, size_t cap, double v, int decimals)
{
    if (!isfinite(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.*f", decimals, v);
    return buf;
}

static const char *fmt_mib(char *buf, size_t cap, double bytes)
{
    return fmt_num(buf, cap, bytes / (1024.0 * 1024.0), 1);
}

/* Column layout shared by the text and Markdown tables. */
typedef struct {
    const char *head;
    int width;
} column;

static const column text_cols[] = {
    {"model", 0}, {"format", 6}, {"batch", 5}, {"lat_mean_ms", 11}, {"lat_sd_ms", 9},
    {"lat_p50_ms", 10}, {"lat_p95_ms", 10}, {"lat_p99_ms", 10}, {"ttft_ms", 9},
    {"itl_p50_ms", 10}, {"itl_p99_ms", 10}, {"prefill_tok/s", 13}, {"decode_tok/s", 12},
    {"peak_rss_MiB", 12}, {"model_MiB", 9}, {"kv_MiB", 8}, {"bpw", 6},
    {"speedup", 7}, {"prefill_x", 9}, {"decode_x", 8}, {"mem_ratio", 9},
};
enum { N_BASE_COLS = 17, N_ALL_COLS = 21 };

static void row_cells(const lb_bench_row *r, char cells[N_ALL_COLS][48])
{
    snprintf(cells[0], 48, "%.47s", r->name);
    snprintf(cells[1], 48, "%s", r->format);
    snprintf(cells[2], 48, "%d", r->batch);
    fmt_num(cells[3], 48, r->latency_mean, 2);
    fmt_num(cells[4], 48, r->latency_stdev, 2);
    fmt_num(cells[5], 48, r->latency_p50, 2);
    fmt_num(cells[6], 48, r->latency_p95, 2);
    fmt_num(cells[7], 48, r->latency_p99, 2);
    fmt_num(cells[8], 48, r->ttft_mean, 2);
    fmt_num(cells[9], 48, r->itl_p50, 3);
    fmt_num(cells[10], 48, r->itl_p99, 3);
    fmt_num(cells[11], 48, r->prefill_tps, 1);
    fmt_num(cells[12], 48, r->decode_tps, 1);
    fmt_mib(cells[13], 48, r->peak_rss);
    if (isfinite(r->peak_rss) && !r->peak_rss_exact)
        strcat(cells[13], "*");
    fmt_mib(cells[14], 48, r->model_bytes);
    fmt_mib(cells[15], 48, r->kv_bytes);
    fmt_num(cells[16], 48, r->bits_per_weight, 2);
    fmt_num(cells[17], 48, r->speedup, 3);
    fmt_num(cells[18], 48, r->prefill_speedup, 3);
    fmt_num(cells[19], 48, r->decode_speedup, 3);
    fmt_num(cells[20], 48, r->memory_ratio, 3);
}

static void write_settings(FILE *out, const lb_bench_params *p, const char *prefix)
{
    fprintf(out, "%sprompt %d, gen %d, %d reps after %d warm-up, %d threads, kernels %s, KV cache %s",
            prefix, p->prompt, p->gen, p->reps, p->warmup,
            p->threads > 0 ? p->threads : lb_cpu_count(), lb_kernels_name(),
            lb_kv_type_name(lb_engine_kv_type()));
    if (p->baseline >= 0)
        fprintf(out, ", baseline %s", base_name(p->models[p->baseline]));
    fputc('\n', out);
}

void lb_bench_write_text(FILE *out, const lb_bench_params *p, const lb_bench_row *rows, int n)
{
    int ncols = p->baseline >= 0 ? N_ALL_COLS : N_BASE_COLS;
    int name_w = 5;
    for (int i = 0; i < n; i++) {
        int len = (int)strlen(rows[i].name);
        if (len > 47)
            len = 47;
        if (len > name_w)
            name_w = len;
    }
    write_settings(out, p, "");
    for (int c = 0; c < ncols; c++)
        fprintf(out, c == 0 ? "%-*s" : "  %*s", c == 0 ? name_w : text_cols[c].width,
                text_cols[c].head);
    fputc('\n', out);
    char cells[N_ALL_COLS][48];
    bool inexact = false;
    for (int i = 0; i < n; i++) {
        row_cells(&rows[i], cells);
        inexact = inexact || (isfinite(rows[i].peak_rss) && !rows[i].peak_rss_exact);
        for (int c = 0; c < ncols; c++)
            fprintf(out, c == 0 ? "%-*s" : "  %*s", c == 0 ? name_w : text_cols[c].width,
                    cells[c]);
        fputc('\n', out);
    }
    if (inexact)
        fprintf(out, "* the peak could not be reset here: it is the process's high-water mark\n");
}

void lb_bench_write_md(FILE *out, const lb_bench_params *p, const lb_bench_row *rows, int n)
{
    int ncols = p->baseline >= 0 ? N_ALL_COLS : N_BASE_COLS;
    write_settings(out, p, "");
    fputc('\n', out);
    fputc('|', out);
    for (int c = 0; c < ncols; c++)
        fprintf(out, " %s |", text_cols[c].head);
    fputs("\n|", out);
    for (int c = 0; c < ncols; c++)
        fputs(c < 2 ? " --- |" : " ---: |", out);
    fputc('\n', out);
    char cells[N_ALL_COLS][48];
    for (int i = 0; i < n; i++) {
        row_cells(&rows[i], cells);
        fputc('|', out);
        for (int c = 0; c < ncols; c++) {
            fputc(' ', out);
            for (const char *q = cells[c]; *q; q++) {
                if (*q == '|')
                    fputc('\\', out);
                fputc(*q, out);
            }
            fputs(" |", out);
        }
        fputc('\n', out);
    }
}

static void csv_text(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_num(FILE *out, double v)
{
    fputc(',', out);
    if (isfinite(v))
        fprintf(out, "%.10g", v);
}

void lb_bench_write_csv(FILE *out, const lb_bench_params *p, const lb_bench_row *rows, int n)
{
    fputs("model,format,batch,prompt,gen,reps,threads,latency_mean_ms,latency_stdev_ms,"
          "latency_p50_ms,latency_p95_ms,latency_p99_ms,ttft_ms,ttft_stdev_ms,itl_p50_ms,"
          "itl_p99_ms,prefill_tokens_per_s,decode_tokens_per_s,prefill_tokens_per_s_median,"
          "decode_tokens_per_s_median,generated_tokens,peak_rss_bytes,"
          "model_bytes,kv_cache_bytes,bits_per_weight,weight_bytes_per_token,params,speedup,"
          "prefill_speedup,decode_speedup,memory_ratio,model_bytes_ratio\n", out);
    int threads = p->threads > 0 ? p->threads : lb_cpu_count();
    for (int i = 0; i < n; i++) {
        const lb_bench_row *r = &rows[i];
        csv_text(out, r->model);
        fputc(',', out);
        csv_text(out, r->format);
        fprintf(out, ",%d,%d,%d,%d,%d", r->batch, p->prompt, p->gen, r->reps, threads);
        const double v[] = {r->latency_mean, r->latency_stdev, r->latency_p50, r->latency_p95,
                            r->latency_p99, r->ttft_mean, r->ttft_stdev, r->itl_p50, r->itl_p99,
                            r->prefill_tps, r->decode_tps, r->prefill_tps_median,
                            r->decode_tps_median, (double)r->generated_per_request,
                            r->peak_rss, r->model_bytes, r->kv_bytes, r->bits_per_weight,
                            r->bytes_per_token, (double)r->params, r->speedup,
                            r->prefill_speedup, r->decode_speedup, r->memory_ratio,
                            r->model_bytes_ratio};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
            csv_num(out, v[k]);
        fputc('\n', out);
    }
}

/* ---- memory bandwidth ---- */

typedef struct {
    const uint64_t *buf;
    size_t words;
    int n_slices;
    int width;         /* 512, 256 or 64: widest loads this CPU has */
    uint64_t *sums;    /* one per slice, so the reads cannot be optimized away */
} membw_job;

/* Each thread streams one contiguous slice, as a decode step streams a weight matrix. The widest
 * loads matter: with plain 64-bit loads two cores reach only ~80 % of what they can pull. */
__attribute__((target("avx512f"))) static uint64_t sum_avx512(const uint64_t *b, size_t n)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(b + i));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(b + i + 8));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(b + i + 16));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(b + i + 24));
    }
    /* Lanes summed as unsigned: the reduce intrinsic adds signed and may overflow. */
    uint64_t lanes[8], t = 0;
    _mm512_storeu_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
    for (int k = 0; k < 8; k++)
        t += lanes[k];
    for (; i < n; i++)
        t += b[i];
    return t;
}

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *b, size_t n)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(b + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(b + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(b + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(b + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    uint64_t t = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++)
        t += b[i];
    return t;
}

static uint64_t sum_plain(const uint64_t *b, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += b[i];
        s1 += b[i + 1];
        s2 += b[i + 2];
        s3 += b[i + 3];
    }
    for (; i < n; i++)
        s0 += b[i];
    return s0 + s1 + s2 + s3;
}

static void membw_task(void *ctx, int task, int thread)
{
    (void)thread;
    membw_job *j = ctx;
    /* Slice bounds on 64-byte lines so the aligned vector loads stay aligned. */
    size_t lines = j->words / 8;
    size_t lo = lines * (size_t)task / (size_t)j->n_slices * 8;
    size_t hi = task + 1 == j->n_slices ? j->words
                                        : lines * (size_t)(task + 1) / (size_t)j->n_slices * 8;
    const uint64_t *b = j->buf + lo;
    size_t n = hi - lo;
    j->sums[task] = j->width == 512 ? sum_avx512(b, n)
                    : j->width == 256 ? sum_avx2(b, n) : sum_plain(b, n);
}

typedef struct {
    uint64_t *buf;
    size_t words, chunk_words;
} fill_job;

static void fill_task(void *ctx, int task, int thread)
{
    (void)thread;
    fill_job *j = ctx;
    size_t lo = (size_t)task * j->chunk_words;
    size_t hi = lo + j->chunk_words < j->words ? lo + j->chunk_words : j->words;
    for (size_t i = lo; i < hi; i++)
        j->buf[i] = i * 0x9E3779B97F4A7C15ull;
}

int lb_bench_membw(int threads, size_t bytes, int passes, double *bytes_per_s, lb_error *err)
{
    *bytes_per_s = NAN;
    if (bytes < (1u << 20) || bytes > ((size_t)1 << 40))
        return lb_fail(err, "--membw-mib: buffer of %zu bytes, expected 1 MiB to 1 TiB", bytes);
    if (passes < 1 || passes > 1000)
        return lb_fail(err, "membw: %d passes, expected 1..1000", passes);
    if (threads < 0 || threads > 4096)
        return lb_fail(err, "--threads is %d, expected 0..4096", threads);
    size_t words = bytes / sizeof(uint64_t);
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, words * sizeof(uint64_t)) != 0 || !buf)
        return lb_fail(err, "membw: cannot allocate %zu MiB", bytes >> 20);
    lb_pool *pool = lb_pool_create(threads);
    int n_slices = lb_pool_size(pool);
    /* Pages are touched in 1 MiB chunks by whichever thread is free, so they are real. */
    const size_t chunk_words = (size_t)1 << 17;
    fill_job fj = {buf, words, chunk_words};
    lb_pool_run(pool, (int)((words + chunk_words - 1) / chunk_words), fill_task, &fj);
    __builtin_cpu_init();
    int width = __builtin_cpu_supports("avx512f") ? 512 : __builtin_cpu_supports("avx2") ? 256 : 64;
    const char *env = getenv("LOWBIT_KERNELS");
    if (env && strcmp(env, "scalar") == 0)
        width = 64;
    uint64_t *sums = lb_calloc((size_t)n_slices, sizeof *sums);
    membw_job mj = {buf, words, n_slices, width, sums};
    double best = 0;
    for (int pass = 0; pass < passes + 1; pass++) {
        double t0 = lb_now_ms();
        lb_pool_run(pool, n_slices, membw_task, &mj);
        double ms = lb_now_ms() - t0;
        /* The first pass only warms up the threads and the TLB. */
        if (pass > 0 && ms > 0) {
            double bw = (double)(words * sizeof(uint64_t)) / (ms / 1e3);
            if (bw > best)
                best = bw;
        }
    }
    lb_pool_free(pool);
    free(sums);
    free(buf);
    *bytes_per_s = best;
    return 0;
}
