/* POST /evaluate: a background job on both models, answered at once with an id and polled
 * with GET /evaluate/{id} (progress, then the figures, also as rows of the shared result
 * schema). Without a dataset it is a short latency benchmark run through the same schedulers
 * that serve requests: latency P50/P95/P99, time to first token, tokens/s and the quantized
 * model's speedup. With {"dataset", "limit"} it is a perplexity run (llama.cpp's convention,
 * `limit` chunks of `ctx` tokens) on an engine of its own beside the serving one. */
#include "core/timer.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "eval/result.h"
#include "server/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_JOBS_KEPT 32
#define MAX_JOBS_RUNNING 2

struct srv_job {
    srv_server *s;
    char id[32];
    pthread_t thread;
    /* settings */
    int runs, max_new_tokens;
    char *prompt;
    char *dataset;           /* perplexity run when set */
    int limit, ctx;
    /* under s->jobs_mu */
    const char *status;      /* "running", "done", "failed" */
    double progress;
    char error[512];
    json_t *result;
    bool finished;
    struct srv_job *next;
};

static double percentile(double *v, int n, double q)
{
    /* linear interpolation between closest ranks (numpy's default) on sorted values */
    if (n == 0)
        return NAN;
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void set_progress(srv_job *j, double p)
{
    pthread_mutex_lock(&j->s->jobs_mu);
    j->progress = p;
    pthread_mutex_unlock(&j->s->jobs_mu);
}

typedef struct {
    double p50, p95, p99, mean_ms, ttft_p50, tps;
    int64_t tokens;
    double seconds;
} bench_figures;

/* Runs the prompt `runs` times one after another on m; -1 when stopped or failed. */
static int bench_model(srv_job *j, srv_model *m, int done_before, int total, bench_figures *f,
                       char *why, size_t cap)
{
    srv_server *s = j->s;
    int *ids, n_ids;
    lb_error err;
    if (srv_encode_prompt(m, j->prompt, true, &ids, &n_ids, &err)) {
        snprintf(why, cap, "%.500s", err.msg);
        return -1;
    }
    double *lat = lb_calloc((size_t)j->runs, sizeof(double)), *ttft = lb_calloc((size_t)j->runs, sizeof(double));
    int64_t tokens = 0;
    double total_ms = 0;
    int rc = 0;
    for (int i = 0; i < j->runs && rc == 0; i++) {
        lb_sampling sp = {0.0f, 0, 1.0f, 0.0f, 1.0f, 64, (uint64_t)i};
        srv_req *r = srv_req_new(ids, n_ids, j->max_new_tokens, &sp, NULL, 0, -1);
        if (srv_sched_submit(m->sched, r, s->cfg.max_queue)) {
            srv_sched_release(m->sched, r);
            snprintf(why, cap, "the %s model's queue is full", m->role);
            rc = -1;
            break;
        }
        for (;;) {
            srv_sched_lock(m->sched);
            bool done = r->state == REQ_DONE;
            size_t seen = r->out.n;
            srv_sched_unlock(m->sched);
            if (done || s->draining)
                break;
            srv_sched_wait(m->sched, r, seen, 50);
        }
        srv_sched_lock(m->sched);
        bool ok = r->state == REQ_DONE && !r->failed;
        srv_sched_unlock(m->sched);
        if (!ok) {
            snprintf(why, cap, "%s", s->draining ? "the server is shutting down" : r->error);
            srv_sched_release(m->sched, r);
            rc = -1;
            break;
        }
        lat[i] = r->t_done - r->t_submit;
        ttft[i] = r->n_generated > 0 ? r->t_first - r->t_submit : lat[i];
        tokens += r->n_generated;
        total_ms += lat[i];
        srv_sched_release(m->sched, r);
        set_progress(j, (double)(done_before + i + 1) / total);
    }
    if (rc == 0) {
        qsort(lat, (size_t)j->runs, sizeof(double), cmp_double);
        qsort(ttft, (size_t)j->runs, sizeof(double), cmp_double);
        f->p50 = percentile(lat, j->runs, 0.50);
        f->p95 = percentile(lat, j->runs, 0.95);
        f->p99 = percentile(lat, j->runs, 0.99);
        f->ttft_p50 = percentile(ttft, j->runs, 0.50);
        f->mean_ms = total_ms / j->runs;
        f->tokens = tokens;
        f->seconds = total_ms / 1e3;
        f->tps = total_ms > 0 ? tokens / (total_ms / 1e3) : 0;
    }
    free(ids);
    free(lat);
    free(ttft);
    return rc;
}

static json_t *figures_json(const srv_model *m, const bench_figures *f)
{
    return json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "model", m->role, "name",
                     m->m->cfg.name, "dtype", m->dtype, "latency_p50_ms", f->p50, "latency_p95_ms",
                     f->p95, "latency_p99_ms", f->p99, "latency_mean_ms", f->mean_ms,
                     "ttft_p50_ms", f->ttft_p50, "tokens_per_second", f->tps, "tokens",
                     (json_int_t)f->tokens);
}

static void add_rows(json_t *rows, const srv_job *j, const srv_model *m, const bench_figures *f)
{
    const char *metrics[] = {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "tokens_per_s"};
    double vals[] = {f->p50, f->p95, f->p99, f->ttft_p50, f->tps};
    for (int k = 0; k < 5; k++) {
        lb_result r;
        lb_result_init(&r, m->path, m->dtype, "serve-bench", metrics[k], vals[k]);
        r.n = k == 4 ? f->tokens : j->runs;
        r.seconds = f->seconds;
        lb_result_param(&r, "runs", json_integer(j->runs));
        lb_result_param(&r, "max_new_tokens", json_integer(j->max_new_tokens));
        lb_result_param(&r, "slots", json_integer(lb_engine_n_seq(m->e)));
        json_array_append_new(rows, lb_result_to_json(&r));
        lb_result_free(&r);
    }
}

typedef struct {
    srv_job *j;
    int done_before, total;
} ppl_progress;

static void on_chunk(void *user, int chunk, double ppl_so_far)
{
    (void)ppl_so_far;
    ppl_progress *p = user;
    set_progress(p->j, (double)(p->done_before + chunk) / p->total);
}

/* Perplexity of one model on the job's text, on an engine of its own (the serving engine
 * belongs to its scheduler thread). */
static int ppl_model(srv_job *j, srv_model *m, const char *text, size_t len, int done_before,
                     int total, lb_ppl_result *res, char *why, size_t cap)
{
    lb_error err;
    lb_engine *e;
    int slots = j->limit < 4 ? j->limit : 4;
    int threads = j->s->cfg.threads > 0 ? j->s->cfg.threads : 1;
    if (lb_engine_create(m->m, j->ctx, slots, threads, &e, &err)) {
        snprintf(why, cap, "%.500s", err.msg);
        return -1;
    }
    lb_ppl_options o = lb_ppl_defaults();
    o.ctx = j->ctx;
    o.max_chunks = j->limit;
    ppl_progress pp = {j, done_before, total};
    o.on_chunk = on_chunk;
    o.user = &pp;
    int rc = lb_perplexity_text(e, text, len, &o, res, &err);
    if (rc)
        snprintf(why, cap, "%s model: %.500s", m->role, err.msg);
    lb_engine_free(e);
    return rc;
}

static json_t *ppl_json(const srv_model *m, const lb_ppl_result *r)
{
    return json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:i, s:f, s:f}", "model", m->role, "name",
                     m->m->cfg.name, "dtype", m->dtype, "perplexity", r->ppl, "stderr",
                     r->ppl_stderr, "tokens_scored", (json_int_t)r->n_scored, "chunks",
                     r->n_chunks, "seconds", r->seconds, "tokens_per_second", r->tokens_per_s);
}

static json_t *ppl_row(const srv_job *j, const srv_model *m, const lb_ppl_result *r)
{
    lb_result row;
    lb_result_init(&row, m->path, m->dtype, j->dataset, "perplexity", r->ppl);
    row.stderr_ = r->ppl_stderr;
    row.n = r->n_scored;
    row.seconds = r->seconds;
    lb_result_param(&row, "ctx", json_integer(j->ctx));
    lb_result_param(&row, "chunks", json_integer(r->n_chunks));
    lb_result_param(&row, "mode", json_string("llamacpp"));
    json_t *o = lb_result_to_json(&row);
    lb_result_free(&row);
    return o;
}

static json_t *run_ppl(srv_job *j, srv_model **ms, int n_models, char *why, size_t cap)
{
    char *text;
    size_t len;
    lb_error err;
    if (lb_dataset_load_text(j->dataset, NULL, &text, &len, &err)) {
        snprintf(why, cap, "%.500s", err.msg);
        return NULL;
    }
    /* Only the first `limit` chunks are scored: tokenizing a generous prefix gives the same
     * tokens for them as the whole text would, at a fraction of the cost. */
    size_t keep = (size_t)(j->limit + 2) * (size_t)j->ctx * 16;
    if (len > keep)
        len = keep;
    lb_ppl_result r[2];
    int rc = 0;
    for (int k = 0; k < n_models && rc == 0 && !j->s->draining; k++)
        rc = ppl_model(j, ms[k], text, len, k * j->limit, n_models * j->limit, &r[k], why, cap);
    free(text);
    if (rc == 0 && j->s->draining) {
        snprintf(why, cap, "the server is shutting down");
        rc = -1;
    }
    if (rc)
        return NULL;
    json_t *rows = json_array();
    json_array_append_new(rows, ppl_row(j, ms[0], &r[0]));
    json_t *q = json_null(), *inc = json_null();
    if (n_models == 2) {
        json_array_append_new(rows, ppl_row(j, ms[1], &r[1]));
        json_decref(q);
        json_decref(inc);
        q = ppl_json(ms[1], &r[1]);
        inc = json_real(100.0 * (r[1].ppl / r[0].ppl - 1.0));
    }
    return json_pack("{s:s, s:o, s:o, s:o, s:{s:s, s:i, s:i, s:s}, s:o}", "task", "perplexity",
                     "baseline", ppl_json(ms[0], &r[0]), "quantized", q, "perplexity_increase_pct",
                     inc, "settings", "dataset", j->dataset, "ctx", j->ctx, "limit", j->limit,
                     "mode", "llamacpp", "results", rows);
}

static void *job_main(void *arg)
{
    srv_job *j = arg;
    srv_server *s = j->s;
    srv_model *ms[2] = {&s->base, s->quant.sched ? &s->quant : NULL};
    int n_models = ms[1] ? 2 : 1;
    bench_figures f[2] = {0};
    char why[512] = "";
    int rc = 0;
    for (int k = 0; k < n_models && rc == 0 && !j->dataset; k++)
        rc = bench_model(j, ms[k], k * j->runs, n_models * j->runs, &f[k], why, sizeof why);
    json_t *result = NULL;
    if (j->dataset) {
        result = run_ppl(j, ms, n_models, why, sizeof why);
        rc = result ? 0 : -1;
    }
    if (rc == 0 && !j->dataset) {
        json_t *rows = json_array();
        add_rows(rows, j, ms[0], &f[0]);
        json_t *q = json_null();
        json_t *speedup = json_null(), *lat_speedup = json_null();
        if (ms[1]) {
            add_rows(rows, j, ms[1], &f[1]);
            json_decref(q);
            q = figures_json(ms[1], &f[1]);
            json_decref(speedup);
            json_decref(lat_speedup);
            speedup = json_real(f[0].tps > 0 ? f[1].tps / f[0].tps : 0);
            lat_speedup = json_real(f[1].p50 > 0 ? f[0].p50 / f[1].p50 : 0);
        }
        result = json_pack("{s:s, s:o, s:o, s:o, s:o, s:{s:i, s:i, s:s}, s:o}", "task", "latency", "baseline",
                           figures_json(ms[0], &f[0]), "quantized", q, "speedup", speedup,
                           "latency_speedup", lat_speedup, "settings", "runs", j->runs,
                           "max_new_tokens", j->max_new_tokens, "prompt", j->prompt, "results", rows);
    }
    pthread_mutex_lock(&s->jobs_mu);
    j->result = result;
    j->status = rc == 0 && result ? "done" : "failed";
    if (rc == 0 && !result)
        snprintf(j->error, sizeof j->error, "could not encode the results");
    else if (rc)
        snprintf(j->error, sizeof j->error, "%.500s", why);
    if (rc == 0)
        j->progress = 1.0;
    j->finished = true;
    pthread_mutex_unlock(&s->jobs_mu);
    return NULL;
}

static json_t *job_json(const srv_job *j)
{
    json_t *o = json_pack("{s:s, s:s, s:f}", "id", j->id, "status", j->status, "progress", j->progress);
    if (j->result)
        json_object_set(o, "result", j->result);
    if (j->error[0])
        json_object_set_new(o, "error", json_string(j->error));
    return o;
}

static void job_free(srv_job *j)
{
    pthread_join(j->thread, NULL);
    json_decref(j->result);
    free(j->prompt);
    free(j->dataset);
    free(j);
}

int srv_evaluate_params(json_t *body, int max_ctx, srv_eval_params *p, char *param, size_t cap,
                        lb_error *err)
{
    static const char *const fields[] = {"runs", "max_new_tokens", "prompt", "dataset", "limit",
                                         "ctx", NULL};
    int rc = srv_check_fields(body, fields, param, cap, err);
    if (p->ctx > max_ctx)
        p->ctx = max_ctx;
#define FIELD(name, call) if (rc == 0 && (rc = (call)) != 0) snprintf(param, cap, "%s", name)
    FIELD("runs", srv_get_int(body, "runs", 1, 100, &p->runs, err));
    FIELD("max_new_tokens", srv_get_int(body, "max_new_tokens", 1, 256, &p->max_new, err));
    FIELD("prompt", srv_get_str(body, "prompt", &p->prompt, err));
    FIELD("dataset", srv_get_str(body, "dataset", &p->dataset, err));
    FIELD("limit", srv_get_int(body, "limit", 1, 256, &p->limit, err));
    FIELD("ctx", srv_get_int(body, "ctx", 16, max_ctx, &p->ctx, err));
#undef FIELD
    bool ppl_fields = json_object_get(body, "limit") || json_object_get(body, "ctx");
    if (rc == 0 && ppl_fields && !p->dataset) {
        snprintf(param, cap, "dataset");
        rc = lb_fail(err, "field 'dataset' is required with limit/ctx (wikitext2, c4 or tinystories)");
    }
    /* Only the named datasets: a path from the network must not choose files to read. */
    if (rc == 0 && p->dataset && strcmp(p->dataset, "wikitext2") && strcmp(p->dataset, "c4") &&
        strcmp(p->dataset, "tinystories")) {
        snprintf(param, cap, "dataset");
        rc = lb_fail(err, "field 'dataset' must be wikitext2, c4 or tinystories");
    }
    return rc;
}

enum MHD_Result srv_evaluate(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    json_t *body;
    enum MHD_Result sent;
    if (cc->body.n == 0)
        body = json_object();
    else if (!(body = srv_parse_body(cc, &sent)))
        return sent;
    char param[128] = "";
    lb_error err;
    int max_ctx = lb_engine_n_ctx(s->base.e);
    if (s->quant.e && lb_engine_n_ctx(s->quant.e) < max_ctx)
        max_ctx = lb_engine_n_ctx(s->quant.e);
    srv_eval_params p = {.runs = 5, .max_new = 32, .limit = 8, .ctx = 256,
                         .prompt = "Once upon a time"};
    int rc = srv_evaluate_params(body, max_ctx, &p, param, sizeof param, &err);
    const char *prompt = p.prompt, *dataset = p.dataset;
    if (rc == 0) {
        /* the prompt must fit both models; checked now so the client hears it, not the job */
        int *ids, n;
        srv_model *ms[2] = {&s->base, &s->quant};
        for (int k = 0; k < 2 && rc == 0; k++)
            if (ms[k]->sched) {
                if ((rc = srv_encode_prompt(ms[k], prompt, true, &ids, &n, &err)) == 0)
                    free(ids);
                else
                    snprintf(param, sizeof param, "prompt");
            }
    }
    if (rc) {
        json_decref(body);
        return srv_send_bad(cc, param, &err);
    }
    pthread_mutex_lock(&s->jobs_mu);
    /* Keep the newest jobs: finished ones beyond the limit are dropped, oldest first. */
    int kept = 0, running = 0;
    for (srv_job *j = s->jobs; j; j = j->next) {
        kept++;
        running += !j->finished;
    }
    if (running >= MAX_JOBS_RUNNING) {
        pthread_mutex_unlock(&s->jobs_mu);
        json_decref(body);
        return srv_send_error(cc, 429, NULL, "%d evaluations are already running; poll them and retry", running);
    }
    while (kept >= MAX_JOBS_KEPT) {
        srv_job **pp = &s->jobs, **oldest = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->finished)
                oldest = pp;   /* the list is newest first, so the last finished is the oldest */
        if (!oldest)
            break;
        srv_job *dead = *oldest;
        *oldest = dead->next;
        job_free(dead);
        kept--;
    }
    srv_job *j = lb_calloc(1, sizeof *j);
    j->s = s;
    snprintf(j->id, sizeof j->id, "eval-%d", ++s->n_jobs_made);
    j->runs = (int)p.runs;
    j->max_new_tokens = (int)p.max_new;
    j->prompt = lb_strdup(prompt);
    j->dataset = dataset ? lb_strdup(dataset) : NULL;
    j->limit = (int)p.limit;
    j->ctx = (int)p.ctx;
    j->status = "running";
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        pthread_mutex_unlock(&s->jobs_mu);
        free(j->prompt);
        free(j->dataset);
        free(j);
        json_decref(body);
        return srv_send_error(cc, 503, NULL, "cannot start the evaluation thread");
    }
    j->next = s->jobs;
    s->jobs = j;
    json_t *resp = json_pack("{s:s, s:s, s:f, s:s}", "id", j->id, "status", "running", "progress", 0.0,
                             "poll", "");
    char poll[64];
    snprintf(poll, sizeof poll, "/evaluate/%s", j->id);
    json_object_set_new(resp, "poll", json_string(poll));
    pthread_mutex_unlock(&s->jobs_mu);
    json_decref(body);
    return srv_send_json(cc, 202, resp);
}

enum MHD_Result srv_evaluate_get(srv_server *s, srv_conn *cc, const char *path)
{
    const char *id = path + strlen("/evaluate/");
    pthread_mutex_lock(&s->jobs_mu);
    json_t *o = NULL;
    for (srv_job *j = s->jobs; j && !o; j = j->next)
        if (strcmp(j->id, id) == 0)
            o = job_json(j);
    pthread_mutex_unlock(&s->jobs_mu);
    if (!o)
        return srv_send_error(cc, 404, NULL, "no evaluation with id '%.64s'", id);
    return srv_send_json(cc, 200, o);
}

void srv_jobs_free(srv_server *s)
{
    pthread_mutex_lock(&s->jobs_mu);
    srv_job *j = s->jobs;
    s->jobs = NULL;
    pthread_mutex_unlock(&s->jobs_mu);
    while (j) {
        srv_job *next = j->next;
        job_free(j);   /* the job sees `draining` and stops at its next wait */
        j = next;
    }
}
