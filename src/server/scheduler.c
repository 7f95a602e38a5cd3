/* Continuous batching. One thread owns an engine with one KV-cache slot per sequence. Each
 * step it admits queued requests into free slots, then builds ONE batch holding a decode token
 * for every request already generating and prefill chunks of newly admitted prompts, runs the
 * forward pass, and samples each request with its own sampler. Requests join and leave
 * between steps; a cancelled request frees its slot at the next step. Consumers (HTTP
 * threads) read released text under the mutex and sleep on their request's own condition,
 * signalled per token for a stream and only at the end otherwise, so waiting clients cost
 * the scheduler nothing. */
#include "core/log.h"
#include "core/timer.h"
#include "server/internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tokens one step may carry: enough to prefill short prompts in one go, small enough that
 * requests already decoding are not held up for long by a long prompt. */
#define STEP_TOKENS 256

struct srv_sched {
    lb_engine *e;
    srv_metrics *metrics;
    char label[32];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;       /* the scheduler sleeps on it when idle */
    srv_req *q_head, *q_tail;
    int n_queued;
    srv_req **active;          /* [n_slots]; NULL where free */
    int n_active;
    int kv_tokens;             /* cache positions in use */
    bool stop;
    /* step scratch (scheduler thread only) */
    int *tok, *pos, *seq;
    bool *want;
    srv_req **row_owner;
    float *logits;
    float *raw;                /* one row, for log-probabilities */
};

srv_req *srv_req_new(const int *prompt, int n_prompt, int max_new_tokens,
                     const lb_sampling *sampling, const char *const *stop, int n_stop,
                     int n_logprobs)
{
    srv_req *r = lb_calloc(1, sizeof *r);
    r->prompt = lb_malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof(int));
    memcpy(r->prompt, prompt, (size_t)n_prompt * sizeof(int));
    r->n_prompt = n_prompt;
    r->max_new_tokens = max_new_tokens;
    r->sampling = *sampling;
    r->n_stop = n_stop;
    r->stop = lb_calloc((size_t)(n_stop > 0 ? n_stop : 1), sizeof(char *));
    for (int i = 0; i < n_stop; i++)
        r->stop[i] = lb_strdup(stop[i]);
    r->n_logprobs = n_logprobs;
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->slot = -1;
    r->t_submit = lb_now_ms();
    return r;
}

static void req_free(srv_req *r)
{
    pthread_cond_destroy(&r->cv);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    lb_buf_free(&r->out);
    lb_ivec_free(&r->cuts);
    free(r->toks);
    lb_sampler_free(r->sampler);
    lb_ivec_free(&r->history);
    lb_textstream_free(&r->ts);
    free(r);
}

/* Under mu. */
static void req_unref(srv_req *r)
{
    if (--r->refs == 0)
        req_free(r);
}

void srv_sched_lock(srv_sched *s) { pthread_mutex_lock(&s->mu); }
void srv_sched_unlock(srv_sched *s) { pthread_mutex_unlock(&s->mu); }
int srv_sched_slots(const srv_sched *s) { return lb_engine_n_seq(s->e); }

int srv_sched_submit(srv_sched *s, srv_req *r, int max_queue)
{
    pthread_mutex_lock(&s->mu);
    int free_slots = lb_engine_n_seq(s->e) - s->n_active;
    /* Requests that will find a free slot at the next step do not count as waiting. */
    if (s->stop || s->n_queued - free_slots >= max_queue) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    r->refs++;
    r->state = REQ_QUEUED;
    r->t_submit = lb_now_ms();
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->n_queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_sched_release(srv_sched *s, srv_req *r)
{
    pthread_mutex_lock(&s->mu);
    if (r->state != REQ_DONE)
        r->cancelled = true;
    req_unref(r);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

void srv_sched_wait(srv_sched *s, srv_req *r, size_t seen, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)timeout_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&s->mu);
    while (r->state != REQ_DONE && r->out.n == seen)
        if (pthread_cond_timedwait(&r->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->mu);
}

void srv_sched_load(srv_sched *s, int *queued, int *busy, int *kv_tokens)
{
    pthread_mutex_lock(&s->mu);
    *queued = s->n_queued;
    *busy = s->n_active;
    *kv_tokens = s->kv_tokens;
    pthread_mutex_unlock(&s->mu);
}

/* Under mu: the request leaves its slot (if any) and the scheduler lets go of it. */
static void finish(srv_sched *s, srv_req *r, lb_stop_reason reason)
{
    r->reason = reason;
    r->state = REQ_DONE;
    r->t_done = lb_now_ms();
    pthread_cond_signal(&r->cv);
    if (r->slot >= 0) {
        s->active[r->slot] = NULL;
        s->n_active--;
        r->slot = -1;
    }
    req_unref(r);
}

static void fail_all(srv_sched *s, const char *why)
{
    while (s->q_head) {
        srv_req *r = s->q_head;
        s->q_head = r->next;
        s->n_queued--;
        r->failed = true;
        snprintf(r->error, sizeof r->error, "%s", why);
        finish(s, r, LB_STOP_CALLER);
    }
    s->q_tail = NULL;
    int n = lb_engine_n_seq(s->e);
    for (int i = 0; i < n; i++)
        if (s->active[i]) {
            s->active[i]->failed = true;
            snprintf(s->active[i]->error, sizeof s->active[i]->error, "%s", why);
            finish(s, s->active[i], LB_STOP_CALLER);
        }
}

/* Only marks: the scheduler thread may be in the middle of a step with these requests, so it
 * is the one that takes them out of their slots. */
void srv_sched_cancel_all(srv_sched *s)
{
    pthread_mutex_lock(&s->mu);
    int n = lb_engine_n_seq(s->e);
    for (srv_req *r = s->q_head; r; r = r->next) {
        r->cancelled = r->failed = true;
        snprintf(r->error, sizeof r->error, "the server is shutting down");
    }
    for (int i = 0; i < n; i++)
        if (s->active[i]) {
            s->active[i]->cancelled = s->active[i]->failed = true;
            snprintf(s->active[i]->error, sizeof s->active[i]->error, "the server is shutting down");
        }
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

/* Under mu: cancelled requests leave; queued ones take free slots. */
static void admit(srv_sched *s)
{
    int n = lb_engine_n_seq(s->e);
    for (int i = 0; i < n; i++)
        if (s->active[i] && s->active[i]->cancelled)
            finish(s, s->active[i], LB_STOP_CALLER);
    for (int i = 0; i < n && s->q_head; i++) {
        if (s->active[i])
            continue;
        srv_req *r = NULL;
        while (s->q_head && !r) {
            r = s->q_head;
            s->q_head = r->next;
            s->n_queued--;
            r->next = NULL;
            if (r->cancelled) {
                finish(s, r, LB_STOP_CALLER);
                r = NULL;
            }
        }
        if (!s->q_head)
            s->q_tail = NULL;
        if (!r)
            break;
        r->slot = i;
        r->state = REQ_PREFILL;
        r->n_done = 0;
        s->active[i] = r;
        s->n_active++;
        srv_metrics_tokens(s->metrics, r->n_prompt, 0);
    }
}

/* Log-probabilities of the model's own distribution (before any sampling filter) for the
 * chosen token and the best alternatives. */
static void token_logprobs(const float *logits, int vocab, int n_top, srv_tokinfo *ti)
{
    float mx = logits[0];
    for (int i = 1; i < vocab; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    ti->n_top = 0;
    for (int k = 0; k < n_top && k < vocab; k++) {
        int best = -1;
        for (int i = 0; i < vocab; i++) {
            bool taken = false;
            for (int j = 0; j < ti->n_top && !taken; j++)
                taken = ti->top_id[j] == i;
            if (!taken && (best < 0 || logits[i] > logits[best]))
                best = i;
        }
        ti->top_id[k] = best;
        ti->top_lp[k] = logits[best] - lse;
        ti->n_top++;
    }
    ti->logprob = lse;   /* the caller subtracts: logprob = logit[chosen] - lse */
}

/* One sampled token for r from its row of logits; updates r under mu. */
static void advance(srv_sched *s, srv_req *r, float *logits)
{
    const lb_model *m = lb_engine_model(s->e);
    const lb_tokenizer *tok = m->tok;
    int vocab = m->cfg.vocab_size;
    srv_tokinfo ti = {0};
    float lse = 0;
    if (r->n_logprobs >= 0) {
        token_logprobs(logits, vocab, r->n_logprobs, &ti);
        lse = ti.logprob;
        memcpy(s->raw, logits, (size_t)vocab * sizeof(float));   /* the sampler rescales */
    }
    int next = lb_sampler_sample(r->sampler, logits, r->history.v, r->history.n);
    if (r->n_logprobs >= 0)
        ti.logprob = s->raw[next] - lse;
    double now = lb_now_ms();
    bool ends = lb_token_ends_text(tok, next);
    size_t from = 0, len = 0;
    bool stopped = false;
    if (!ends) {
        char piece[1024];
        int prev = r->history.v[r->history.n - 1];
        lb_ivec_push(&r->history, next);
        int plen = tok_decode_token(tok, prev, next, piece, sizeof piece);
        stopped = lb_textstream_push(&r->ts, piece, (size_t)plen, &from, &len);
    }
    int n_gen_after = r->history.n - r->n_prompt;
    lb_stop_reason reason = LB_STOP_LENGTH;
    bool done = true;
    if (ends)
        reason = LB_STOP_EOS;
    else if (stopped)
        reason = LB_STOP_STRING;
    else if (n_gen_after >= r->max_new_tokens)
        reason = LB_STOP_LENGTH;
    else if (r->history.n >= lb_engine_n_ctx(s->e))
        reason = LB_STOP_CONTEXT;
    else
        done = false;

    pthread_mutex_lock(&s->mu);
    r->state = REQ_DECODE;
    if (len > 0)
        lb_buf_append(&r->out, r->ts.text.v + from, len);
    if (done && !stopped) {
        lb_textstream_flush(&r->ts, &from, &len);
        if (len > 0)
            lb_buf_append(&r->out, r->ts.text.v + from, len);
    }
    if (r->cuts.n == 0 || r->cuts.v[r->cuts.n - 1] != (int)r->out.n)
        lb_ivec_push(&r->cuts, (int)r->out.n);
    if (!ends) {
        if (r->n_logprobs >= 0) {
            r->toks = lb_realloc(r->toks, (size_t)(r->n_generated + 1) * sizeof *r->toks);
            ti.id = next;
            r->toks[r->n_generated] = ti;
        }
        r->n_generated++;
        if (r->n_generated == 1) {
            r->t_first = now;
            srv_metrics_ttft(s->metrics, (now - r->t_submit) / 1e3);
        } else {
            srv_metrics_token_latency(s->metrics, (now - r->t_last) / 1e3);
        }
        r->t_last = now;
        srv_metrics_tokens(s->metrics, 0, 1);
    }
    if (done)
        finish(s, r, reason);
    else {
        r->last = next;
        if (r->stream && len > 0)
            pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Under mu, on the scheduler thread (histories are its own): cache positions in use. */
static void count_kv(srv_sched *s)
{
    int used = 0, n = lb_engine_n_seq(s->e);
    for (int i = 0; i < n; i++)
        if (s->active[i])
            used += s->active[i]->history.n;
    s->kv_tokens = used;
}

static void *sched_main(void *arg)
{
    srv_sched *s = arg;
    const lb_model *m = lb_engine_model(s->e);
    int n_slots = lb_engine_n_seq(s->e), vocab = m->cfg.vocab_size;
    srv_req **mine = lb_calloc((size_t)n_slots, sizeof *mine);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->q_head && s->n_active == 0)
            pthread_cond_wait(&s->work, &s->mu);
        if (s->stop) {
            fail_all(s, "the server is shutting down");
            pthread_mutex_unlock(&s->mu);
            break;
        }
        admit(s);
        count_kv(s);
        /* Requests in slots stay there until this thread finishes them, so a snapshot is safe
         * to use outside the lock (each holds the scheduler's reference). */
        int n_mine = 0;
        for (int i = 0; i < n_slots; i++)
            if (s->active[i])
                mine[n_mine++] = s->active[i];
        pthread_mutex_unlock(&s->mu);
        if (n_mine == 0)
            continue;

        /* Decode tokens first (one each), then prompt chunks in the room that is left. */
        int n = 0, n_rows = 0;
        for (int k = 0; k < n_mine; k++) {
            srv_req *r = mine[k];
            if (r->state != REQ_DECODE)
                continue;
            s->tok[n] = r->last;
            s->pos[n] = r->history.n - 1;
            s->seq[n] = r->slot;
            s->want[n] = true;
            s->row_owner[n_rows++] = r;
            n++;
        }
        for (int k = 0; k < n_mine && n < STEP_TOKENS; k++) {
            srv_req *r = mine[k];
            if (r->state != REQ_PREFILL)
                continue;
            if (r->n_done == 0) {
                r->sampler = lb_sampler_create(&r->sampling, vocab);
                for (int i = 0; i < r->n_prompt; i++)
                    lb_ivec_push(&r->history, r->prompt[i]);
                lb_textstream_init(&r->ts, (const char *const *)r->stop, r->n_stop);
            }
            int chunk = r->n_prompt - r->n_done;
            if (chunk > STEP_TOKENS - n)
                chunk = STEP_TOKENS - n;
            for (int i = 0; i < chunk; i++) {
                s->tok[n] = r->prompt[r->n_done + i];
                s->pos[n] = r->n_done + i;
                s->seq[n] = r->slot;
                s->want[n] = false;
                n++;
            }
            r->n_done += chunk;
            if (r->n_done == r->n_prompt) {
                s->want[n - 1] = true;
                s->row_owner[n_rows++] = r;
            }
        }
        if (n == 0)
            continue;
        lb_batch b = {n, s->tok, s->pos, s->seq, s->want};
        lb_error err;
        if (lb_engine_forward(s->e, &b, s->logits, &err)) {
            pthread_mutex_lock(&s->mu);
            for (int k = 0; k < n_mine; k++) {
                mine[k]->failed = true;
                snprintf(mine[k]->error, sizeof mine[k]->error, "%.250s", err.msg);
                finish(s, mine[k], LB_STOP_CALLER);
            }
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        for (int k = 0; k < n_rows; k++) {
            srv_req *r = s->row_owner[k];
            advance(s, r, s->logits + (size_t)k * vocab);
        }
        pthread_mutex_lock(&s->mu);
        count_kv(s);
        pthread_mutex_unlock(&s->mu);
    }
    free(mine);
    return NULL;
}

srv_sched *srv_sched_create(lb_engine *e, srv_metrics *metrics, const char *label)
{
    srv_sched *s = lb_calloc(1, sizeof *s);
    s->e = e;
    s->metrics = metrics;
    snprintf(s->label, sizeof s->label, "%s", label);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    int n_slots = lb_engine_n_seq(e);
    int cap = STEP_TOKENS + n_slots;
    s->active = lb_calloc((size_t)n_slots, sizeof *s->active);
    s->tok = lb_malloc((size_t)cap * sizeof(int));
    s->pos = lb_malloc((size_t)cap * sizeof(int));
    s->seq = lb_malloc((size_t)cap * sizeof(int));
    s->want = lb_malloc((size_t)cap * sizeof(bool));
    s->row_owner = lb_malloc((size_t)cap * sizeof(srv_req *));
    size_t vocab = (size_t)lb_engine_model(e)->cfg.vocab_size;
    s->logits = lb_malloc((size_t)n_slots * vocab * sizeof(float));
    s->raw = lb_malloc(vocab * sizeof(float));
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        lb_log_warn("server: cannot start the %s scheduler thread", label);
        abort();
    }
    return s;
}

void srv_sched_free(srv_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    free(s->active);
    free(s->tok);
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->row_owner);
    free(s->logits);
    free(s->raw);
    free(s);
}
