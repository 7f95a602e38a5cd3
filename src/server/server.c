/* The server's life: settings from flags and the environment, listening before the models are
 * loaded (so /health can say 503), loading the baseline and the quantized model (falling back
 * to the baseline when the quantized one will not load), and a shutdown that drains. */
#include "core/log.h"
#include "core/timer.h"
#include "server/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int env_int(const char *name, long lo, long hi, int *out, lb_error *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return lb_fail(err, "environment %s=%s: expected an integer in %ld..%ld", name, v, lo, hi);
    *out = (int)x;
    return 0;
}

static int env_float(const char *name, double lo, double hi, float *out, lb_error *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !(x >= lo && x <= hi))
        return lb_fail(err, "environment %s=%s: expected a number in %g..%g", name, v, lo, hi);
    *out = (float)x;
    return 0;
}

int srv_config_from_env(srv_config *cfg, lb_error *err)
{
    *cfg = (srv_config){.addr = "127.0.0.1:8080", .parallel = 4, .max_queue = 64,
                        .max_body = 1u << 20, .max_new_tokens = 64, .temperature = 0.8f,
                        .top_k = 40, .drain_seconds = 30};
    const char *v;
    if ((v = getenv("SERVER_ADDR")) && *v)
        cfg->addr = v;
    if ((v = getenv("BASELINE_MODEL_PATH")) && *v)
        cfg->baseline_path = v;
    if ((v = getenv("QUANTIZED_MODEL_PATH")) && *v)
        cfg->quantized_path = v;
    if ((v = getenv("LOWBIT_API_KEY")) && *v)
        cfg->api_key = v;
    if (env_int("MAX_NEW_TOKENS", 1, 1 << 20, &cfg->max_new_tokens, err) ||
        env_float("TEMPERATURE", 0, 100, &cfg->temperature, err) ||
        env_int("TOP_K", 0, 1 << 30, &cfg->top_k, err))
        return -1;
    return 0;
}

static int parse_addr(const char *addr, struct sockaddr_in *sa, char *host, size_t cap, lb_error *err)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= cap)
        return lb_fail(err, "address '%s': expected HOST:PORT (e.g. 127.0.0.1:8080)", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
        return lb_fail(err, "address '%s': port must be 0..65535", addr);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
        return lb_fail(err, "address '%s': host must be an IPv4 address or localhost", addr);
    return 0;
}

int srv_create(const srv_config *cfg, srv_server **out, lb_error *err)
{
    *out = NULL;
    if (cfg->parallel < 1 || cfg->parallel > 256)
        return lb_fail(err, "--parallel %d: expected 1..256 slots", cfg->parallel);
    if (cfg->max_queue < 0)
        return lb_fail(err, "--max-queue %d: expected 0 or more", cfg->max_queue);
    struct sockaddr_in sa;
    char host[256];
    if (parse_addr(cfg->addr, &sa, host, sizeof host, err))
        return -1;
    srv_server *s = lb_calloc(1, sizeof *s);
    s->cfg = *cfg;
    snprintf(s->addr_host, sizeof s->addr_host, "%s", host);
    s->base.role = "baseline";
    s->quant.role = "quantized";
    s->metrics = srv_metrics_create();
    s->started_ms = lb_now_ms();
    pthread_mutex_init(&s->jobs_mu, NULL);
    if (srv_http_start(s, (const struct sockaddr *)&sa, err)) {
        srv_free(s);
        return -1;
    }
    lb_log_info("serve: listening on http://%s:%d", s->addr_host, s->port);
    *out = s;
    return 0;
}

int srv_port(const srv_server *s) { return s->port; }

/* Weight type, bits and group size: the quantizer's record (lowbit.quant.* metadata) when
 * the file has one, else what the first layer's query projection shows. */
static void describe(srv_model *sm)
{
    const lb_model *m = sm->m;
    const lb_tensor *w = m->n_tensors > 0 && m->layers ? m->layers[0].wq : NULL;
    int type = w ? (int)w->type : LB_TYPE_F32;
    snprintf(sm->dtype, sizeof sm->dtype, "%s", lb_type_name(type));
    const lb_type_traits *tr = lb_type_traits_of(type);
    sm->group_size = 0;
    if (m->quant.method[0]) {
        snprintf(sm->method, sizeof sm->method, "%s", m->quant.method);
        sm->bits = m->quant.bits;
        sm->group_size = m->quant.group_size;
    } else if (w && w->qlayout) {
        sm->bits = w->qlayout->bits;
        sm->group_size = w->qlayout->group_size;
        snprintf(sm->method, sizeof sm->method, "%s", w->qlayout->w8a8 ? "w8a8" : "group-quantized");
    } else if (tr && tr->quantized) {
        sm->bits = (int)(tr->block_bytes * 8 / (size_t)tr->block_size);
        sm->group_size = tr->block_size;
        snprintf(sm->method, sizeof sm->method, "gguf-%s", lb_type_name(type));
    } else {
        sm->bits = type == LB_TYPE_F32 ? 32 : 16;
        snprintf(sm->method, sizeof sm->method, "none");
    }
}

static int load_one(srv_server *s, srv_model *sm, const char *path, lb_error *err)
{
    snprintf(sm->path, sizeof sm->path, "%s", path);
    double t0 = lb_now_ms();
    lb_load_options lo = {s->cfg.tokenizer_path};
    if (lb_model_load(path, &lo, &sm->m, err))
        return -1;
    int ctx = s->cfg.ctx;
    if (ctx <= 0)
        ctx = sm->m->cfg.max_ctx > 4096 ? 4096 : sm->m->cfg.max_ctx;
    /* By default the cores are shared out between the models, whose schedulers run at once:
     * two pools each as wide as the machine would only fight over the cores. */
    int threads = s->cfg.threads;
    if (threads <= 0) {
        int n_models = s->cfg.quantized_path ? 2 : 1;
        threads = lb_cpu_count() / n_models > 0 ? lb_cpu_count() / n_models : 1;
    }
    if (lb_engine_create(sm->m, ctx, s->cfg.parallel, threads, &sm->e, err)) {
        lb_model_free(sm->m);
        sm->m = NULL;
        return -1;
    }
    sm->load_ms = lb_now_ms() - t0;
    sm->chat_kind = srv_chat_kind(sm->m);
    describe(sm);
    sm->sched = srv_sched_create(sm->e, s->metrics, sm->role);
    lb_log_info("serve: %s model %s loaded in %.0f ms (%s, %d slots of %d tokens)", sm->role,
                path, sm->load_ms, sm->dtype, s->cfg.parallel, ctx);
    return 0;
}

int srv_load(srv_server *s, lb_error *err)
{
    if (!s->cfg.baseline_path)
        return lb_fail(err, "no baseline model: pass --baseline MODEL or set BASELINE_MODEL_PATH");
    if (load_one(s, &s->base, s->cfg.baseline_path, err))
        return lb_fail_prefix(err, "baseline model: ");
    if (s->cfg.quantized_path) {
        lb_error qerr;
        if (load_one(s, &s->quant, s->cfg.quantized_path, &qerr)) {
            snprintf(s->quant.error, sizeof s->quant.error, "%.500s", qerr.msg);
            lb_log_warn("serve: the quantized model did not load, /generate serves the baseline: %s", qerr.msg);
        }
    } else {
        snprintf(s->quant.error, sizeof s->quant.error, "no quantized model configured");
        lb_log_info("serve: no quantized model configured; /generate serves the baseline");
    }
    s->ready = true;
    return 0;
}

srv_model *srv_default_model(srv_server *s)
{
    return s->quant.sched ? &s->quant : &s->base;
}

void srv_shutdown(srv_server *s)
{
    if (!s->daemon)
        return;
    s->draining = true;
    srv_http_quiesce(s);
    double until = lb_now_ms() + s->cfg.drain_seconds * 1e3;
    int last = -1;
    while (s->in_flight > 0 && lb_now_ms() < until) {
        if (s->in_flight != last)
            lb_log_info("serve: draining, %d request(s) in flight", (int)s->in_flight);
        last = s->in_flight;
        usleep(20000);
    }
    if (s->in_flight > 0) {
        lb_log_warn("serve: %d request(s) still running after %.0f s; cancelling them",
                    (int)s->in_flight, s->cfg.drain_seconds);
        if (s->base.sched)
            srv_sched_cancel_all(s->base.sched);
        if (s->quant.sched)
            srv_sched_cancel_all(s->quant.sched);
    }
    srv_jobs_free(s);
    srv_http_stop(s);
}

static void model_free(srv_model *sm)
{
    srv_sched_free(sm->sched);
    lb_engine_free(sm->e);
    lb_model_free(sm->m);
    sm->sched = NULL;
    sm->e = NULL;
    sm->m = NULL;
}

void srv_free(srv_server *s)
{
    if (!s)
        return;
    s->draining = true;
    if (s->base.sched)
        srv_sched_cancel_all(s->base.sched);
    if (s->quant.sched)
        srv_sched_cancel_all(s->quant.sched);
    srv_jobs_free(s);
    srv_http_stop(s);
    model_free(&s->quant);
    model_free(&s->base);
    srv_metrics_free(s->metrics);
    pthread_mutex_destroy(&s->jobs_mu);
    free(s);
}
