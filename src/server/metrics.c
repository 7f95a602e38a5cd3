/* Counters and histograms for GET /metrics in Prometheus' text format: requests by endpoint
 * and status, tokens in and out, time to first token and time per output token. Gauges that
 * are sampled at scrape time (queue depth, busy slots, KV-cache use) are written by the route. */
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 96
#define N_BUCKETS 12

typedef struct {
    const double *bounds;     /* N_BUCKETS upper bounds in seconds, ascending */
    uint64_t counts[N_BUCKETS + 1];
    uint64_t n;
    double sum;
} histogram;

struct srv_metrics {
    pthread_mutex_t mu;
    struct {
        char endpoint[48];
        int status;
        uint64_t n;
    } series[MAX_SERIES];
    int n_series;
    uint64_t tokens_in, tokens_out;
    histogram ttft, tpot;
};

static const double ttft_bounds[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25, 0.5, 1, 2.5, 10};
static const double tpot_bounds[N_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01, 0.025, 0.05, 0.1, 0.25, 1};

srv_metrics *srv_metrics_create(void)
{
    srv_metrics *m = lb_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->ttft.bounds = ttft_bounds;
    m->tpot.bounds = tpot_bounds;
    return m;
}

void srv_metrics_free(srv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void srv_metrics_request(srv_metrics *m, const char *endpoint, int status)
{
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_series && !(m->series[i].status == status && strcmp(m->series[i].endpoint, endpoint) == 0))
        i++;
    if (i == m->n_series && m->n_series < MAX_SERIES) {
        snprintf(m->series[i].endpoint, sizeof m->series[i].endpoint, "%s", endpoint);
        m->series[i].status = status;
        m->n_series++;
    }
    if (i < m->n_series)
        m->series[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(srv_metrics *m, int64_t in, int64_t out)
{
    pthread_mutex_lock(&m->mu);
    m->tokens_in += (uint64_t)in;
    m->tokens_out += (uint64_t)out;
    pthread_mutex_unlock(&m->mu);
}

static void observe(histogram *h, double v)
{
    int b = 0;
    while (b < N_BUCKETS && v > h->bounds[b])
        b++;
    h->counts[b]++;
    h->n++;
    h->sum += v;
}

void srv_metrics_ttft(srv_metrics *m, double seconds)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_token_latency(srv_metrics *m, double seconds)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->tpot, seconds);
    pthread_mutex_unlock(&m->mu);
}

static void write_histogram(lb_buf *out, const char *name, const char *help, const histogram *h)
{
    lb_buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < N_BUCKETS; b++) {
        cum += h->counts[b];
        lb_buf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[b], (unsigned long long)cum);
    }
    cum += h->counts[N_BUCKETS];
    lb_buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    lb_buf_appendf(out, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
}

void srv_metrics_write(srv_metrics *m, lb_buf *out)
{
    pthread_mutex_lock(&m->mu);
    lb_buf_appendf(out, "# HELP lowbit_requests_total HTTP requests by endpoint and status.\n"
                        "# TYPE lowbit_requests_total counter\n");
    for (int i = 0; i < m->n_series; i++)
        lb_buf_appendf(out, "lowbit_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                       m->series[i].endpoint, m->series[i].status, (unsigned long long)m->series[i].n);
    lb_buf_appendf(out, "# HELP lowbit_prompt_tokens_total Prompt tokens admitted.\n"
                        "# TYPE lowbit_prompt_tokens_total counter\nlowbit_prompt_tokens_total %llu\n",
                   (unsigned long long)m->tokens_in);
    lb_buf_appendf(out, "# HELP lowbit_generated_tokens_total Tokens generated.\n"
                        "# TYPE lowbit_generated_tokens_total counter\nlowbit_generated_tokens_total %llu\n",
                   (unsigned long long)m->tokens_out);
    write_histogram(out, "lowbit_time_to_first_token_seconds",
                    "Time from submission to the first generated token.", &m->ttft);
    write_histogram(out, "lowbit_time_per_output_token_seconds",
                    "Time between consecutive generated tokens of a request.", &m->tpot);
    pthread_mutex_unlock(&m->mu);
}
