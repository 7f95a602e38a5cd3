/* State shared by the server's files: the models with their schedulers, requests as the
 * scheduler sees them, metrics, evaluation jobs, and the JSON/HTTP helpers routes use. */
#ifndef LB_SERVER_INTERNAL_H
#define LB_SERVER_INTERNAL_H

#include "core/vec.h"
#include "model/generate.h"
#include "server/server.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- scheduler.c: continuous batching over one engine ---------------------------------- */

typedef struct srv_sched srv_sched;

/* One generated token, kept when a request asks for logprobs. */
typedef struct {
    int id;
    float logprob;
    int n_top;
    int top_id[20];
    float top_lp[20];
} srv_tokinfo;

typedef enum { REQ_QUEUED, REQ_PREFILL, REQ_DECODE, REQ_DONE } srv_req_state;

/* A generation request. The fields above `mu-protected` are set before submission and never
 * change; the protected ones are read and written under the scheduler's mutex; the private
 * ones belong to the scheduler thread. Freed when both holders (submitter, scheduler) let go. */
typedef struct srv_req {
    /* inputs */
    int *prompt;
    int n_prompt;
    int max_new_tokens;
    lb_sampling sampling;
    char **stop;
    int n_stop;
    int n_logprobs;          /* -1: none; else alternatives per token (0..20) */
    bool stream;             /* the waiter wants each token (else only the end) */
    pthread_cond_t cv;       /* its waiter sleeps here (with the scheduler's mutex) */
    /* mu-protected */
    srv_req_state state;
    lb_buf out;              /* text released for streaming so far */
    lb_ivec cuts;            /* out.n after each token's release: one stream event each */
    lb_stop_reason reason;
    int n_generated;
    bool cancelled;
    bool failed;
    char error[256];
    srv_tokinfo *toks;       /* [n_generated] when logprobs were asked for */
    int refs;
    double t_submit, t_first, t_done;
    /* scheduler-private */
    int slot;
    int n_done;              /* prompt tokens already in the cache */
    int last;                /* last token (fed at the next decode step) */
    double t_last;
    lb_sampler *sampler;
    lb_ivec history;
    lb_textstream ts;
    struct srv_req *next;    /* queue link */
} srv_req;

typedef struct srv_metrics srv_metrics;

srv_sched *srv_sched_create(lb_engine *e, srv_metrics *metrics, const char *label);
/* Stops the thread after cancelling whatever is left; frees the scheduler. */
void srv_sched_free(srv_sched *s);

/* A request owning copies of prompt ids and stop strings. */
srv_req *srv_req_new(const int *prompt, int n_prompt, int max_new_tokens,
                     const lb_sampling *sampling, const char *const *stop, int n_stop,
                     int n_logprobs);
/* Queues the request (the scheduler takes a reference). Returns 0, or -1 when the queue is
 * full (the caller still owns its reference). */
int srv_sched_submit(srv_sched *s, srv_req *r, int max_queue);
/* Marks it cancelled (its slot frees at the next step) and drops the caller's reference. */
void srv_sched_release(srv_sched *s, srv_req *r);
/* Waits up to timeout_ms for the request to grow past `seen` bytes or finish. */
void srv_sched_wait(srv_sched *s, srv_req *r, size_t seen, int timeout_ms);
void srv_sched_lock(srv_sched *s);
void srv_sched_unlock(srv_sched *s);
/* Requests queued and slots busy right now. */
void srv_sched_load(srv_sched *s, int *queued, int *busy, int *kv_tokens);
int srv_sched_slots(const srv_sched *s);
void srv_sched_cancel_all(srv_sched *s);

/* ---- metrics.c --------------------------------------------------------------------------- */

srv_metrics *srv_metrics_create(void);
void srv_metrics_free(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *endpoint, int status);
void srv_metrics_tokens(srv_metrics *m, int64_t in, int64_t out);
void srv_metrics_ttft(srv_metrics *m, double seconds);
void srv_metrics_token_latency(srv_metrics *m, double seconds);
/* Prometheus text exposition; the caller adds the gauges it samples (queue, slots, KV). */
void srv_metrics_write(srv_metrics *m, lb_buf *out);

/* ---- the server ------------------------------------------------------------------------ */

typedef struct {
    const char *role;        /* "baseline" or "quantized" */
    char path[1024];
    lb_model *m;
    lb_engine *e;
    srv_sched *sched;
    double load_ms;
    char error[512];         /* why it is not loaded */
    const char *chat_kind;   /* chat template family in use */
    char method[64], dtype[32];
    int bits, group_size;
} srv_model;

typedef struct srv_job srv_job;

struct srv_server {
    srv_config cfg;
    char addr_host[256];
    int port;
    struct MHD_Daemon *daemon;
    srv_metrics *metrics;
    srv_model base, quant;
    atomic_bool ready;
    atomic_bool draining;
    atomic_int in_flight;    /* model requests being served */
    double started_ms;
    pthread_mutex_t jobs_mu;
    srv_job *jobs;
    int n_jobs_made;
    atomic_ulong next_id;
};

/* The model /generate and the OpenAI endpoints use by default. */
srv_model *srv_default_model(srv_server *s);

/* ---- http.c: responses and waiting on a connection --------------------------------------- */

/* Per-connection request state; handlers see the method, path and complete body. */
typedef struct {
    struct MHD_Connection *c;
    const char *endpoint;    /* metrics label of the route */
    const char *method;
    lb_buf body;
    bool too_large;
    int status;              /* of the response queued, for the metrics */
} srv_conn;

/* Queue a response (takes the reference to body). */
enum MHD_Result srv_send_json(srv_conn *cc, int status, json_t *body);
/* OpenAI-style {"error": {"message", "type", "param", "code"}}. param may be NULL. */
enum MHD_Result srv_send_error(srv_conn *cc, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum MHD_Result srv_send_text(srv_conn *cc, int status, const char *type, const char *text,
                              size_t len);
/* Sends lb_error's message as a 400 naming param. */
enum MHD_Result srv_send_bad(srv_conn *cc, const char *param, const lb_error *err);
/* Whether the client behind the connection has gone away. */
bool srv_client_gone(struct MHD_Connection *c);
/* Waits until the request is done, the client goes away (request cancelled: returns false)
 * or the server gives up draining. */
bool srv_wait_done(srv_server *s, srv_sched *sc, srv_req *r, struct MHD_Connection *c);

struct sockaddr;
int srv_http_start(srv_server *s, const struct sockaddr *addr, lb_error *err);
/* Stops accepting connections; those open go on. */
void srv_http_quiesce(srv_server *s);
void srv_http_stop(srv_server *s);

/* ---- routes.c and openai.c ------------------------------------------------------------- */

typedef enum MHD_Result (*srv_handler)(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_health(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_generate(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_metadata(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_evaluate(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_evaluate_get(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_metrics_page(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_playground(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_v1_models(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_v1_completions(srv_server *s, srv_conn *cc, const char *path);
enum MHD_Result srv_v1_chat(srv_server *s, srv_conn *cc, const char *path);

/* Submits r to m and waits for it (routes.c). 0: done, the caller answers and releases r;
 * -1: answered already (429, 503, or the client left), r released. */
int srv_run_request(srv_server *s, srv_conn *cc, srv_model *m, srv_req *r, enum MHD_Result *sent);
uint64_t srv_random_seed(srv_server *s);

/* ---- params.c: request validation shared by routes and openai ---------------------------- */
/* The JSON object of a request body; NULL with err set (empty, malformed, not an object). */
json_t *srv_body_json(const char *data, size_t n, lb_error *err);

/* Parses a JSON object body; on failure sends 400 and returns NULL (*sent set). */
json_t *srv_parse_body(srv_conn *cc, enum MHD_Result *sent);
/* Fails naming the first key of obj that is not in allowed (NULL-terminated). */
int srv_check_fields(json_t *obj, const char *const *allowed, char *param, size_t cap,
                     lb_error *err);

/* Field readers: absent (or null) keeps *out. Fail naming the field. */
int srv_get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, lb_error *err);
int srv_get_num(json_t *obj, const char *key, double lo, double hi, double *out, lb_error *err);
int srv_get_bool(json_t *obj, const char *key, bool *out, lb_error *err);
int srv_get_str(json_t *obj, const char *key, const char **out, lb_error *err);
/* "stop": a string or an array of up to 4 non-empty strings. */
int srv_get_stop(json_t *obj, const char *key, const char **stop, int *n_stop, lb_error *err);

/* A JSON string of generated text; bytes that are not valid UTF-8 become U+FFFD. */
json_t *srv_json_text(const char *text, size_t n);
/* Bytes of text that end on a whole UTF-8 character (a tail still waiting for its
 * continuation bytes is left out), so streamed chunks never split a character. */
size_t srv_utf8_complete(const char *text, size_t n);

/* Tokenizes a prompt for a model and checks it fits the context. */
int srv_encode_prompt(srv_model *m, const char *prompt, bool add_special, int **ids, int *n,
                      lb_error *err);

/* ---- request bodies → parameters, without a connection (also what fuzz_server feeds) ------
 * Each reader starts from the defaults already in *p, validates every field of body and fills
 * *p; strings point into body. On error param names the field and err says why. */
typedef struct {
    const char *prompt;
    long long max_new, top_k, seed;   /* seed -1: random */
    double temperature, top_p;
    const char *stop[4];
    int n_stop;
} srv_gen_params;
/* POST /generate; n_ctx bounds max_new_tokens (defaults above it are cut to it). */
int srv_generate_params(json_t *body, int n_ctx, srv_gen_params *p, char *param, size_t cap,
                        lb_error *err);

/* Sampling and length fields of both OpenAI endpoints. */
typedef struct {
    const char *model;
    long long max_tokens, top_k, seed, n, top_logprobs;
    double temperature, top_p, presence, frequency;
    bool stream, include_usage, echo, logprobs_flag;
    long long logprobs;
    const char *stop[5];
    int n_stop;
    const char *prompt;      /* /v1/completions */
    json_t *messages;        /* /v1/chat/completions: rendered later by srv_chat_render */
} srv_oa_params;
void srv_oa_defaults(const srv_config *cfg, srv_oa_params *p);
/* n_ctx: the smallest context of the models the request may pick. */
int srv_completions_params(json_t *body, int n_ctx, srv_oa_params *p, char *param, size_t cap,
                           lb_error *err);
int srv_chat_params(json_t *body, int n_ctx, srv_oa_params *p, char *param, size_t cap,
                    lb_error *err);

typedef struct {
    long long runs, max_new, limit, ctx;
    const char *prompt, *dataset;
} srv_eval_params;
/* POST /evaluate; max_ctx: the smallest context of the loaded models. */
int srv_evaluate_params(json_t *body, int max_ctx, srv_eval_params *p, char *param, size_t cap,
                        lb_error *err);

/* ---- evaluate.c ------------------------------------------------------------------------- */

void srv_jobs_free(srv_server *s);

/* ---- chat.c --------------------------------------------------------------------------- */

/* Picks the chat template family from the tokenizer's metadata ("chatml" when none). */
const char *srv_chat_kind(const lb_model *m);
/* Renders messages (validated: role + content) into a prompt with the assistant turn open;
 * the stop string that ends an assistant turn goes to *stop. */
int srv_chat_render(const char *kind, json_t *messages, lb_buf *out, const char **stop,
                    char *param, size_t cap, lb_error *err);

#endif
