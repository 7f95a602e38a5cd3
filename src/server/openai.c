/* OpenAI-compatible endpoints: GET /v1/models, POST /v1/completions and POST
 * /v1/chat/completions, answered whole (with usage and, when asked, logprobs) or streamed as
 * server-sent events: one `data: {chunk}` per piece of text, a last chunk with the finish
 * reason, optionally a usage chunk, then `data: [DONE]`. */
#include "core/timer.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static srv_model *pick_model(srv_server *s, const char *name, srv_conn *cc, enum MHD_Result *sent)
{
    if (!name)
        return srv_default_model(s);
    srv_model *ms[2] = {&s->quant, &s->base};
    for (int k = 0; k < 2; k++) {
        if (strcmp(name, ms[k]->role) == 0 || (ms[k]->m && strcmp(name, ms[k]->m->cfg.name) == 0)) {
            if (ms[k]->sched)
                return ms[k];
            *sent = srv_send_error(cc, 404, "model", "model '%s' is not loaded: %s", name, ms[k]->error);
            return NULL;
        }
    }
    *sent = srv_send_error(cc, 404, "model", "model '%.200s' does not exist (GET /v1/models lists them)", name);
    return NULL;
}

static json_t *model_entry(const srv_server *s, const srv_model *m)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", m->role, "object", "model", "created",
                     (json_int_t)(time(NULL) - (time_t)((lb_now_ms() - s->started_ms) / 1e3)),
                     "owned_by", "lowbit", "name", m->m->cfg.name, "dtype", m->dtype);
}

enum MHD_Result srv_v1_models(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    json_t *data = json_array();
    if (s->quant.sched)
        json_array_append_new(data, model_entry(s, &s->quant));
    json_array_append_new(data, model_entry(s, &s->base));
    return srv_send_json(cc, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* One completion request as both endpoints share it. */
typedef struct {
    srv_server *s;
    srv_model *m;
    srv_req *r;
    struct MHD_Connection *c;
    bool chat;
    bool include_usage;
    int logprobs;            /* -1 none, else alternatives per token */
    char id[64];
    long long created;
    const char *echo;        /* completions: prompt text echoed before the completion */
    /* streaming state */
    lb_buf pending;
    size_t sent;
    size_t seen;             /* bytes of r->out already sent */
    int toks_seen;
    int phase;               /* 0: first chunk not sent, 1: streaming, 2: [DONE] queued */
} completion;

static const char *finish_name(lb_stop_reason r)
{
    return r == LB_STOP_LENGTH || r == LB_STOP_CONTEXT ? "length" : "stop";
}

/* Text of generated token i as it reads after the token before it. */
static json_t *token_text(const completion *cp, int i, int id)
{
    const lb_tokenizer *tok = cp->m->m->tok;
    int prev = i > 0 ? cp->r->toks[i - 1].id : cp->r->prompt[cp->r->n_prompt - 1];
    char piece[1024];
    int n = tok_decode_token(tok, prev, id, piece, sizeof piece);
    return srv_json_text(piece, (size_t)n);
}

static json_t *bytes_of(json_t *text)
{
    json_t *a = json_array();
    const unsigned char *p = (const unsigned char *)json_string_value(text);
    for (size_t i = 0; i < json_string_length(text); i++)
        json_array_append_new(a, json_integer(p[i]));
    return a;
}

/* logprobs for tokens [from, to) in the endpoint's shape. */
static json_t *logprobs_json(const completion *cp, int from, int to)
{
    if (cp->logprobs < 0)
        return json_null();
    if (cp->chat) {
        json_t *content = json_array();
        for (int i = from; i < to; i++) {
            const srv_tokinfo *t = &cp->r->toks[i];
            json_t *tops = json_array();
            for (int k = 0; k < t->n_top; k++) {
                json_t *tt = token_text(cp, i, t->top_id[k]);
                json_array_append_new(tops, json_pack("{s:O, s:f, s:o}", "token", tt, "logprob",
                                                      (double)t->top_lp[k], "bytes", bytes_of(tt)));
                json_decref(tt);
            }
            json_t *tt = token_text(cp, i, t->id);
            json_array_append_new(content, json_pack("{s:O, s:f, s:o, s:o}", "token", tt, "logprob",
                                                     (double)t->logprob, "bytes", bytes_of(tt),
                                                     "top_logprobs", tops));
            json_decref(tt);
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t offset = cp->echo ? strlen(cp->echo) : 0;
    for (int i = 0; i < from; i++) {
        json_t *tt = token_text(cp, i, cp->r->toks[i].id);
        offset += json_string_length(tt);
        json_decref(tt);
    }
    for (int i = from; i < to; i++) {
        const srv_tokinfo *t = &cp->r->toks[i];
        json_t *tt = token_text(cp, i, t->id);
        json_array_append_new(offs, json_integer((json_int_t)offset));
        offset += json_string_length(tt);
        json_array_append_new(tokens, tt);
        json_array_append_new(lps, json_real(t->logprob));
        json_t *alt = json_object();
        for (int k = 0; k < t->n_top; k++) {
            json_t *at = token_text(cp, i, t->top_id[k]);
            json_object_set_new(alt, json_string_value(at), json_real(t->top_lp[k]));
            json_decref(at);
        }
        json_array_append_new(tops, alt);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
                     "top_logprobs", tops, "text_offset", offs);
}

static json_t *usage_json(const srv_req *r)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", r->n_prompt, "completion_tokens",
                     r->n_generated, "total_tokens", r->n_prompt + r->n_generated);
}

static json_t *envelope(const completion *cp, const char *object, json_t *choice)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", cp->id, "object", object, "created",
                     (json_int_t)cp->created, "model", cp->m->role, "choices", choice);
}

static void add_event(lb_buf *out, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (text) {
        lb_buf_appendf(out, "data: %s\n\n", text);
        free(text);
    }
}

/* Moves whatever the request has produced since the last call into pending as SSE events.
 * Returns true when something was added or the stream ended. */
static bool stream_fill(completion *cp)
{
    srv_req *r = cp->r;
    srv_sched *sc = cp->m->sched;
    if (cp->phase == 0) {
        cp->phase = 1;
        if (cp->chat) {
            json_t *delta = json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", 0, "delta", "role",
                                      "assistant", "content", "", "logprobs", "finish_reason");
            add_event(&cp->pending, envelope(cp, "chat.completion.chunk", delta));
            return true;
        }
        if (cp->echo && cp->echo[0]) {
            json_t *ch = json_pack("{s:s, s:i, s:n, s:n}", "text", cp->echo, "index", 0,
                                   "logprobs", "finish_reason");
            add_event(&cp->pending, envelope(cp, "text_completion", ch));
            return true;
        }
    }
    srv_sched_lock(sc);
    bool done = r->state == REQ_DONE;
    const char *out = r->out.v ? r->out.v : "";
    size_t upto = done ? r->out.n : srv_utf8_complete(out, r->out.n);
    int toks_to = r->n_generated;
    /* One event per token's text, as it was released; a cut inside a character waits. */
    bool added = false;
    for (int k = 0; k < r->cuts.n; k++) {
        size_t cut = (size_t)r->cuts.v[k];
        if (cut <= cp->seen || cut > upto || (k + 1 < r->cuts.n && srv_utf8_complete(out, cut) != cut))
            continue;
        bool last = cut == upto || k + 1 == r->cuts.n || (size_t)r->cuts.v[k + 1] > upto;
        json_t *text = srv_json_text(out + cp->seen, cut - cp->seen);
        json_t *lp = last ? logprobs_json(cp, cp->toks_seen, toks_to) : json_null();
        json_t *ch = cp->chat ? json_pack("{s:i, s:{s:o}, s:o, s:n}", "index", 0, "delta", "content",
                                          text, "logprobs", lp, "finish_reason")
                              : json_pack("{s:o, s:i, s:o, s:n}", "text", text, "index", 0,
                                          "logprobs", lp, "finish_reason");
        add_event(&cp->pending, envelope(cp, cp->chat ? "chat.completion.chunk" : "text_completion", ch));
        cp->seen = cut;
        if (last)
            cp->toks_seen = toks_to;
        added = true;
    }
    json_t *tail_lp = done && toks_to > cp->toks_seen ? logprobs_json(cp, cp->toks_seen, toks_to) : NULL;
    srv_sched_unlock(sc);
    if (tail_lp) {
        /* tokens whose text was cut by a stop string still have their logprobs reported */
        json_t *ch = cp->chat ? json_pack("{s:i, s:{s:s}, s:o, s:n}", "index", 0, "delta", "content",
                                          "", "logprobs", tail_lp, "finish_reason")
                              : json_pack("{s:s, s:i, s:o, s:n}", "text", "", "index", 0,
                                          "logprobs", tail_lp, "finish_reason");
        add_event(&cp->pending, envelope(cp, cp->chat ? "chat.completion.chunk" : "text_completion", ch));
        cp->toks_seen = toks_to;
        added = true;
    }
    if (done) {
        if (r->failed) {
            add_event(&cp->pending, json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", r->error,
                                              "type", "server_error", "param", "code"));
        } else {
            json_t *ch = cp->chat ? json_pack("{s:i, s:{}, s:n, s:s}", "index", 0, "delta", "logprobs",
                                              "finish_reason", finish_name(r->reason))
                                  : json_pack("{s:s, s:i, s:n, s:s}", "text", "", "index", 0,
                                              "logprobs", "finish_reason", finish_name(r->reason));
            add_event(&cp->pending, envelope(cp, cp->chat ? "chat.completion.chunk" : "text_completion", ch));
            if (cp->include_usage) {
                json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", cp->id, "object",
                                      cp->chat ? "chat.completion.chunk" : "text_completion",
                                      "created", (json_int_t)cp->created, "model", cp->m->role,
                                      "choices", "usage", usage_json(r));
                add_event(&cp->pending, u);
            }
        }
        lb_buf_appendf(&cp->pending, "data: [DONE]\n\n");
        cp->phase = 2;
        added = true;
    }
    return added;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    completion *cp = cls;
    while (cp->sent == cp->pending.n) {
        cp->pending.n = 0;
        cp->sent = 0;
        if (cp->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_fill(cp))
            break;
        srv_sched_wait(cp->m->sched, cp->r, cp->seen, 50);
        if (srv_client_gone(cp->c))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = cp->pending.n - cp->sent;
    if (n > max)
        n = max;
    memcpy(buf, cp->pending.v + cp->sent, n);
    cp->sent += n;
    return (ssize_t)n;
}

static void completion_free(completion *cp)
{
    srv_sched_release(cp->m->sched, cp->r);
    cp->s->in_flight--;
    lb_buf_free(&cp->pending);
    free((char *)cp->echo);
    free(cp);
}

static void stream_free(void *cls)
{
    completion_free(cls);
}

/* Sampling and length fields both endpoints take. */
static int read_common(json_t *body, int n_ctx, srv_oa_params *p, char *param, size_t cap,
                       lb_error *err)
{
    int rc = 0;
#define FIELD(name, call) if (rc == 0 && (rc = (call)) != 0) snprintf(param, cap, "%s", name)
    FIELD("model", srv_get_str(body, "model", &p->model, err));
    FIELD("max_tokens", srv_get_int(body, "max_tokens", 1, n_ctx, &p->max_tokens, err));
    FIELD("max_completion_tokens", srv_get_int(body, "max_completion_tokens", 1, n_ctx, &p->max_tokens, err));
    FIELD("temperature", srv_get_num(body, "temperature", 0, 100, &p->temperature, err));
    FIELD("top_p", srv_get_num(body, "top_p", 1e-9, 1, &p->top_p, err));
    FIELD("top_k", srv_get_int(body, "top_k", 0, 1000000, &p->top_k, err));
    FIELD("seed", srv_get_int(body, "seed", 0, INT64_MAX, &p->seed, err));
    FIELD("n", srv_get_int(body, "n", 1, 1, &p->n, err));
    FIELD("presence_penalty", srv_get_num(body, "presence_penalty", 0, 0, &p->presence, err));
    FIELD("frequency_penalty", srv_get_num(body, "frequency_penalty", 0, 0, &p->frequency, err));
    FIELD("stream", srv_get_bool(body, "stream", &p->stream, err));
    FIELD("stop", srv_get_stop(body, "stop", p->stop, &p->n_stop, err));
    const char *user = NULL;
    FIELD("user", srv_get_str(body, "user", &user, err));
    json_t *so = json_object_get(body, "stream_options");
    if (rc == 0 && so && !json_is_null(so)) {
        snprintf(param, cap, "stream_options");
        if (!json_is_object(so))
            rc = lb_fail(err, "field 'stream_options' must be an object");
        else if (json_object_size(so) != (json_object_get(so, "include_usage") ? 1u : 0u))
            rc = lb_fail(err, "field 'stream_options' takes only include_usage");
        else
            rc = srv_get_bool(so, "include_usage", &p->include_usage, err);
    }
    json_t *lb = json_object_get(body, "logit_bias");
    if (rc == 0 && lb && !json_is_null(lb) && !(json_is_object(lb) && json_object_size(lb) == 0)) {
        snprintf(param, cap, "logit_bias");
        rc = lb_fail(err, "field 'logit_bias' is not supported (only {} or null)");
    }
#undef FIELD
    return rc;
}

/* Runs a completion whole or streamed, after the endpoint has validated everything. */
static enum MHD_Result run_completion(srv_server *s, srv_conn *cc, srv_model *m, const srv_oa_params *p,
                                      const int *ids, int n_ids, bool chat, const char *echo)
{
    lb_sampling sp = {(float)p->temperature, (int)p->top_k, (float)p->top_p, 0.0f, 1.0f, 64,
                      p->seed >= 0 ? (uint64_t)p->seed : srv_random_seed(s)};
    int n_lp = chat ? (p->logprobs_flag ? (int)p->top_logprobs : -1) : (int)p->logprobs;
    srv_req *r = srv_req_new(ids, n_ids, (int)p->max_tokens, &sp, p->stop, p->n_stop, n_lp);
    r->stream = p->stream;
    completion *cp = lb_calloc(1, sizeof *cp);
    cp->s = s;
    cp->m = m;
    cp->r = r;
    cp->c = cc->c;
    cp->chat = chat;
    cp->include_usage = p->include_usage;
    cp->logprobs = n_lp;
    cp->created = (long long)time(NULL);
    cp->echo = echo ? lb_strdup(echo) : NULL;
    snprintf(cp->id, sizeof cp->id, "%s-%llx%llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)++s->next_id);
    if (!p->stream) {
        enum MHD_Result sent;
        if (srv_run_request(s, cc, m, r, &sent)) {
            free((char *)cp->echo);
            free(cp);
            return sent;
        }
        json_t *text;
        if (echo) {
            lb_buf t = {0};
            lb_buf_append(&t, echo, strlen(echo));
            lb_buf_append(&t, r->out.v ? r->out.v : "", r->out.n);
            text = srv_json_text(t.v, t.n);
            lb_buf_free(&t);
        } else {
            text = srv_json_text(r->out.v ? r->out.v : "", r->out.n);
        }
        json_t *choice = chat ? json_pack("{s:i, s:{s:s, s:o}, s:o, s:s}", "index", 0, "message", "role",
                                          "assistant", "content", text, "logprobs",
                                          logprobs_json(cp, 0, r->n_generated), "finish_reason",
                                          finish_name(r->reason))
                              : json_pack("{s:o, s:i, s:o, s:s}", "text", text, "index", 0, "logprobs",
                                          logprobs_json(cp, 0, r->n_generated), "finish_reason",
                                          finish_name(r->reason));
        json_t *resp = envelope(cp, chat ? "chat.completion" : "text_completion", choice);
        json_object_set_new(resp, "usage", usage_json(r));
        s->in_flight++;   /* completion_free counts it down */
        completion_free(cp);
        return srv_send_json(cc, 200, resp);
    }
    s->in_flight++;
    if (srv_sched_submit(m->sched, r, s->cfg.max_queue)) {
        completion_free(cp);
        return srv_send_error(cc, 429, NULL, "all %d slots are busy and %d requests are waiting; retry later",
                              srv_sched_slots(m->sched), s->cfg.max_queue);
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                  stream_read, cp, stream_free);
    if (!resp) {
        completion_free(cp);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    cc->status = 200;
    enum MHD_Result rc = MHD_queue_response(cc->c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

void srv_oa_defaults(const srv_config *cfg, srv_oa_params *p)
{
    memset(p, 0, sizeof *p);
    p->max_tokens = cfg->max_new_tokens;
    p->temperature = cfg->temperature;
    p->top_k = cfg->top_k;
    p->top_p = 1.0;
    p->seed = -1;
    p->n = 1;
    p->logprobs = -1;
}

int srv_completions_params(json_t *body, int n_ctx, srv_oa_params *p, char *param, size_t cap,
                           lb_error *err)
{
    static const char *const fields[] = {"model", "prompt", "max_tokens", "temperature", "top_p",
                                         "top_k", "n", "stream", "stream_options", "logprobs",
                                         "echo", "stop", "seed", "user", "presence_penalty",
                                         "frequency_penalty", "logit_bias", "best_of", NULL};
    int rc = srv_check_fields(body, fields, param, cap, err);
    if (rc == 0)
        rc = read_common(body, n_ctx, p, param, cap, err);
    long long best_of = 1;
#define FIELD(name, call) if (rc == 0 && (rc = (call)) != 0) snprintf(param, cap, "%s", name)
    FIELD("logprobs", srv_get_int(body, "logprobs", 0, 5, &p->logprobs, err));
    FIELD("echo", srv_get_bool(body, "echo", &p->echo, err));
    FIELD("best_of", srv_get_int(body, "best_of", 1, 1, &best_of, err));
#undef FIELD
    json_t *pj = json_object_get(body, "prompt");
    if (rc == 0) {
        snprintf(param, cap, "prompt");
        if (json_is_array(pj) && json_array_size(pj) == 1 && json_is_string(json_array_get(pj, 0)))
            pj = json_array_get(pj, 0);
        if (!pj || json_is_null(pj))
            p->prompt = "";
        else if (json_is_string(pj) && strlen(json_string_value(pj)) == json_string_length(pj))
            p->prompt = json_string_value(pj);
        else
            rc = lb_fail(err, "field 'prompt' must be a string (or an array holding one string)");
    }
    return rc;
}

static int min_ctx(const srv_server *s)
{
    int n_ctx = lb_engine_n_ctx(s->base.e);
    if (s->quant.e && lb_engine_n_ctx(s->quant.e) < n_ctx)
        n_ctx = lb_engine_n_ctx(s->quant.e);
    return n_ctx;
}

/* The end both OpenAI endpoints share: the prompt text encoded (a failure names field), the
 * completion run with max_tokens held to the model's context; or, when rc says the request
 * was already refused, the 400 naming param. */
static enum MHD_Result encode_and_run(srv_server *s, srv_conn *cc, srv_model *m,
                                      srv_oa_params *p, int rc, const char *text,
                                      const char *field, bool chat, const char *echo,
                                      char *param, size_t cap, lb_error *err)
{
    int *ids = NULL, n_ids = 0;
    if (rc == 0 && (rc = srv_encode_prompt(m, text, true, &ids, &n_ids, err)) != 0)
        snprintf(param, cap, "%s", field);
    if (rc)
        return srv_send_bad(cc, param, err);
    if (p->max_tokens > lb_engine_n_ctx(m->e))
        p->max_tokens = lb_engine_n_ctx(m->e);
    enum MHD_Result res = run_completion(s, cc, m, p, ids, n_ids, chat, echo);
    free(ids);
    return res;
}

enum MHD_Result srv_v1_completions(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    enum MHD_Result sent;
    json_t *body = srv_parse_body(cc, &sent);
    if (!body)
        return sent;
    char param[128] = "";
    lb_error err;
    srv_oa_params p;
    srv_oa_defaults(&s->cfg, &p);
    int rc = srv_completions_params(body, min_ctx(s), &p, param, sizeof param, &err);
    const char *prompt = p.prompt;
    srv_model *m = NULL;
    if (rc == 0 && !(m = pick_model(s, p.model, cc, &sent))) {
        json_decref(body);
        return sent;
    }
    enum MHD_Result res = encode_and_run(s, cc, m, &p, rc, prompt, "prompt", false,
                                         p.echo ? prompt : NULL, param, sizeof param, &err);
    json_decref(body);
    return res;
}

int srv_chat_params(json_t *body, int n_ctx, srv_oa_params *p, char *param, size_t cap,
                    lb_error *err)
{
    static const char *const fields[] = {"model", "messages", "max_tokens", "max_completion_tokens",
                                         "temperature", "top_p", "top_k", "n", "stream",
                                         "stream_options", "logprobs", "top_logprobs", "stop",
                                         "seed", "user", "presence_penalty", "frequency_penalty",
                                         "logit_bias", NULL};
    int rc = srv_check_fields(body, fields, param, cap, err);
    if (rc == 0)
        rc = read_common(body, n_ctx, p, param, cap, err);
#define FIELD(name, call) if (rc == 0 && (rc = (call)) != 0) snprintf(param, cap, "%s", name)
    FIELD("logprobs", srv_get_bool(body, "logprobs", &p->logprobs_flag, err));
    FIELD("top_logprobs", srv_get_int(body, "top_logprobs", 0, 20, &p->top_logprobs, err));
#undef FIELD
    if (rc == 0 && json_object_get(body, "top_logprobs") && !p->logprobs_flag) {
        snprintf(param, cap, "top_logprobs");
        rc = lb_fail(err, "field 'top_logprobs' needs \"logprobs\": true");
    }
    p->messages = json_object_get(body, "messages");
    return rc;
}

enum MHD_Result srv_v1_chat(srv_server *s, srv_conn *cc, const char *path)
{
    (void)path;
    enum MHD_Result sent;
    json_t *body = srv_parse_body(cc, &sent);
    if (!body)
        return sent;
    char param[128] = "";
    lb_error err;
    srv_oa_params p;
    srv_oa_defaults(&s->cfg, &p);
    int rc = srv_chat_params(body, min_ctx(s), &p, param, sizeof param, &err);
    srv_model *m = NULL;
    if (rc == 0 && !(m = pick_model(s, p.model, cc, &sent))) {
        json_decref(body);
        return sent;
    }
    lb_buf prompt = {0};
    const char *turn_end = NULL;
    if (rc == 0)
        rc = srv_chat_render(m->chat_kind, p.messages, &prompt, &turn_end,
                             param, sizeof param, &err);
    if (rc == 0 && p.n_stop < 5)
        p.stop[p.n_stop++] = turn_end;
    enum MHD_Result res = encode_and_run(s, cc, m, &p, rc, lb_buf_cstr(&prompt), "messages",
                                         true, NULL, param, sizeof param, &err);
    lb_buf_free(&prompt);
    json_decref(body);
    return res;
}
