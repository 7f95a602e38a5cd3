/* The original service's API: GET /health, POST /generate (the quantized model, or the
 * baseline when that one is not loaded), POST /generate/baseline, GET /metadata, and the
 * Prometheus page GET /metrics. */
#include "core/timer.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

enum MHD_Result srv_health(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    if (!s->ready)
        return srv_send_json(cc, 503, json_pack("{s:s}", "status", "loading"));
    if (s->draining)
        return srv_send_json(cc, 503, json_pack("{s:s}", "status", "draining"));
    return srv_send_json(cc, 200, json_pack("{s:s, s:{s:b, s:b}, s:s, s:f}", "status", "ok",
                                            "models", "baseline", s->base.sched != NULL,
                                            "quantized", s->quant.sched != NULL, "default",
                                            srv_default_model(s)->role, "uptime_s",
                                            (lb_now_ms() - s->started_ms) / 1e3));
}

uint64_t srv_random_seed(srv_server *s)
{
    uint64_t x = (uint64_t)(lb_now_ms() * 1e3) ^ ((uint64_t)++s->next_id * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    return x * 0xBF58476D1CE4E5B9ull;
}

int srv_run_request(srv_server *s, srv_conn *cc, srv_model *m, srv_req *r, enum MHD_Result *sent)
{
    s->in_flight++;
    if (srv_sched_submit(m->sched, r, s->cfg.max_queue)) {
        s->in_flight--;
        srv_sched_release(m->sched, r);
        *sent = srv_send_error(cc, 429, NULL, "all %d slots are busy and %d requests are waiting; retry later",
                               srv_sched_slots(m->sched), s->cfg.max_queue);
        return -1;
    }
    bool ok = srv_wait_done(s, m->sched, r, cc->c);
    s->in_flight--;
    if (!ok) {
        /* The client left: its slot frees at the next step, and no answer is owed (counted in
         * the metrics as nginx counts it, 499). */
        srv_sched_release(m->sched, r);
        cc->status = 499;
        *sent = MHD_NO;
        return -1;
    }
    if (r->failed) {
        *sent = srv_send_error(cc, 503, NULL, "generation stopped: %s", r->error);
        srv_sched_release(m->sched, r);
        return -1;
    }
    return 0;
}

static json_t *model_block(const srv_model *m)
{
    return json_pack("{s:s, s:b, s:s, s:I}", "name", m->m->cfg.name, "quantized",
                     strcmp(m->role, "quantized") == 0, "dtype", m->dtype, "size_bytes",
                     (json_int_t)lb_model_bytes(m->m));
}

int srv_generate_params(json_t *body, int n_ctx, srv_gen_params *p, char *param, size_t cap,
                        lb_error *err)
{
    static const char *const fields[] = {"prompt", "max_new_tokens", "temperature", "top_k",
                                         "top_p", "seed", "stop", NULL};
    if (p->max_new > n_ctx)
        p->max_new = n_ctx;
    int rc = srv_check_fields(body, fields, param, cap, err);
#define FIELD(name, call) if (rc == 0 && (rc = (call)) != 0) snprintf(param, cap, "%s", name)
    FIELD("prompt", srv_get_str(body, "prompt", &p->prompt, err));
    if (rc == 0 && !p->prompt) {
        snprintf(param, cap, "prompt");
        rc = lb_fail(err, "field 'prompt' is required (a string)");
    }
    FIELD("max_new_tokens", srv_get_int(body, "max_new_tokens", 1, n_ctx, &p->max_new, err));
    FIELD("temperature", srv_get_num(body, "temperature", 0, 100, &p->temperature, err));
    FIELD("top_k", srv_get_int(body, "top_k", 0, 1000000, &p->top_k, err));
    FIELD("top_p", srv_get_num(body, "top_p", 1e-9, 1, &p->top_p, err));
    FIELD("seed", srv_get_int(body, "seed", 0, INT64_MAX, &p->seed, err));
    FIELD("stop", srv_get_stop(body, "stop", p->stop, &p->n_stop, err));
#undef FIELD
    return rc;
}

enum MHD_Result srv_generate(srv_server *s, srv_conn *cc, const char *path)
{
    enum MHD_Result sent;
    json_t *body = srv_parse_body(cc, &sent);
    if (!body)
        return sent;
    srv_model *m = strcmp(path, "/generate/baseline") == 0 ? &s->base : srv_default_model(s);
    char param[128] = "";
    lb_error err;
    srv_gen_params p = {.max_new = s->cfg.max_new_tokens, .top_k = s->cfg.top_k, .seed = -1,
                        .temperature = s->cfg.temperature, .top_p = 1.0};
    int rc = srv_generate_params(body, lb_engine_n_ctx(m->e), &p, param, sizeof param, &err);
    int *ids = NULL, n_ids = 0;
    if (rc == 0 && (rc = srv_encode_prompt(m, p.prompt, true, &ids, &n_ids, &err)) != 0)
        snprintf(param, sizeof param, "prompt");
    if (rc) {
        json_decref(body);
        return srv_send_bad(cc, param, &err);
    }
    lb_sampling sp = {(float)p.temperature, (int)p.top_k, (float)p.top_p, 0.0f, 1.0f, 64,
                      p.seed >= 0 ? (uint64_t)p.seed : srv_random_seed(s)};
    srv_req *r = srv_req_new(ids, n_ids, (int)p.max_new, &sp, p.stop, p.n_stop, -1);
    free(ids);
    if (srv_run_request(s, cc, m, r, &sent)) {
        json_decref(body);
        return sent;
    }
    double ms = r->t_done - r->t_submit;
    json_t *resp = json_pack("{s:s, s:o, s:i, s:f, s:f, s:o}", "prompt", p.prompt, "completion",
                             srv_json_text(r->out.v, r->out.n), "tokens_generated", r->n_generated, "total_time_ms", ms,
                             "tokens_per_second", ms > 0 ? r->n_generated / (ms / 1e3) : 0.0,
                             "model", model_block(m));
    srv_sched_release(m->sched, r);
    json_decref(body);
    return srv_send_json(cc, 200, resp);
}

static json_t *model_meta(srv_server *s, const srv_model *m)
{
    if (!m->m)
        return json_pack("{s:s, s:b, s:s, s:s}", "role", m->role, "loaded", false, "path",
                         m->path[0] ? m->path : (m == &s->quant && s->cfg.quantized_path ? s->cfg.quantized_path : ""),
                         "error", m->error);
    const lb_config *c = &m->m->cfg;
    int64_t params = lb_model_params(m->m);
    size_t bytes = lb_model_bytes(m->m);
    json_t *q = json_null();
    if (m->m->quant.method[0]) {
        const lb_quant_info *qi = &m->m->quant;
        json_decref(q);
        q = json_pack("{s:s, s:i, s:i, s:b, s:b, s:b, s:f, s:f, s:i, s:i, s:s}", "method", qi->method,
                      "bits", qi->bits, "group_size", qi->group_size, "sym", qi->sym, "act_order",
                      qi->act_order, "w8a8", qi->w8a8, "alpha", (double)qi->alpha, "damp",
                      (double)qi->damp, "calib_samples", qi->calib_samples, "calib_seqlen",
                      qi->calib_seqlen, "calib_file", qi->calib_file);
    }
    return json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:o, s:f, s:I, s:i, s:i, s:f, "
                     "s:s, s:s, s:i, s:i, s:i, s:i, s:I, s:s, s:o}",
                     "role", m->role, "loaded", true, "name", c->name, "path", m->path,
                     "format", m->m->format, "architecture", c->arch_name, "parameters",
                     (json_int_t)params, "method", m->method, "bits", m->bits, "group_size",
                     m->group_size > 0 ? json_integer(m->group_size) : json_null(),
                     "bits_per_weight", params > 0 ? 8.0 * (double)bytes / (double)params : 0.0,
                     "size_bytes", (json_int_t)bytes, "context_length", c->max_ctx, "n_ctx",
                     lb_engine_n_ctx(m->e), "load_time_ms", m->load_ms, "kernels",
                     lb_kernels_name(), "chat_template", m->chat_kind, "slots",
                     lb_engine_n_seq(m->e), "threads", lb_pool_size(lb_engine_pool(m->e)),
                     "vocab_size", c->vocab_size, "layers", c->n_layers, "kv_cache_bytes",
                     (json_int_t)lb_engine_kv_bytes(m->e), "kv_cache_type",
                     lb_kv_type_name(lb_engine_kv_type()), "quantization", q);
}

enum MHD_Result srv_metadata(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    json_t *j = json_pack("{s:o, s:o, s:s, s:{s:i, s:i, s:I, s:i, s:f, s:i}}", "baseline",
                          model_meta(s, &s->base), "quantized", model_meta(s, &s->quant),
                          "default", srv_default_model(s)->role, "server", "parallel",
                          s->cfg.parallel, "max_queue", s->cfg.max_queue, "max_body",
                          (json_int_t)s->cfg.max_body, "max_new_tokens", s->cfg.max_new_tokens,
                          "temperature", (double)s->cfg.temperature, "top_k", s->cfg.top_k);
    return srv_send_json(cc, 200, j);
}

enum MHD_Result srv_metrics_page(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    lb_buf out = {0};
    srv_metrics_write(s->metrics, &out);
    lb_buf_appendf(&out, "# HELP lowbit_requests_in_flight Generation requests being served.\n"
                         "# TYPE lowbit_requests_in_flight gauge\nlowbit_requests_in_flight %d\n",
                   (int)s->in_flight);
    static const char *gauges[][2] = {
        {"lowbit_queue_depth", "Requests waiting for a slot."},
        {"lowbit_slots_busy", "Sequence slots generating."},
        {"lowbit_slots_total", "Sequence slots."},
        {"lowbit_kv_cache_tokens", "KV-cache positions in use."},
        {"lowbit_kv_cache_capacity_tokens", "KV-cache positions in all slots."},
        {"lowbit_kv_cache_usage_ratio", "Fraction of KV-cache positions in use."},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        lb_buf_appendf(&out, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g][0], gauges[g][1], gauges[g][0]);
        const srv_model *ms[2] = {&s->base, &s->quant};
        for (int k = 0; k < 2; k++) {
            if (!ms[k]->sched)
                continue;
            int queued, busy, kv;
            srv_sched_load(ms[k]->sched, &queued, &busy, &kv);
            double cap = (double)lb_engine_n_ctx(ms[k]->e) * lb_engine_n_seq(ms[k]->e);
            double vals[] = {queued, busy, lb_engine_n_seq(ms[k]->e), kv, cap, cap > 0 ? kv / cap : 0};
            lb_buf_appendf(&out, "%s{model=\"%s\"} %g\n", gauges[g][0], ms[k]->role, vals[g]);
        }
    }
    enum MHD_Result rc = srv_send_text(cc, 200, "text/plain; version=0.0.4", out.v, out.n);
    lb_buf_free(&out);
    return rc;
}
