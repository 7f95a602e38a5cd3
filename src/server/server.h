/* lowbit serve: an HTTP server over one baseline model and an optional quantized one, with
 * the original service's API (/health, /generate, /generate/baseline, /metadata, /evaluate),
 * OpenAI-compatible endpoints (/v1/completions, /v1/chat/completions, /v1/models) with SSE
 * streaming, Prometheus /metrics and a playground page at /. Requests are served by one
 * continuous-batching scheduler per model. */
#ifndef LB_SERVER_H
#define LB_SERVER_H

#include "core/error.h"

#include <stddef.h>

typedef struct {
    const char *baseline_path;    /* required */
    const char *quantized_path;   /* optional; on failure to load, /generate serves the baseline */
    const char *tokenizer_path;   /* llama2.c tokenizer.bin for .bin models (NULL: beside them) */
    const char *addr;             /* "host:port"; port 0 picks a free one */
    const char *api_key;          /* NULL or "": no authentication */
    int threads;                  /* compute threads per model (0: every core) */
    int parallel;                 /* sequence slots per model */
    int ctx;                      /* context per slot (0: the model's, at most 4096) */
    int max_queue;                /* requests waiting for a slot before 429 */
    size_t max_body;              /* bytes of a request body */
    int max_new_tokens;           /* default when a request names none */
    float temperature;
    int top_k;
    double drain_seconds;         /* how long a shutdown waits for requests in flight */
} srv_config;

/* Defaults, then SERVER_ADDR, BASELINE_MODEL_PATH, QUANTIZED_MODEL_PATH, MAX_NEW_TOKENS,
 * TEMPERATURE, TOP_K and LOWBIT_API_KEY from the environment. A malformed value is an error
 * naming the variable. */
int srv_config_from_env(srv_config *cfg, lb_error *err);

typedef struct srv_server srv_server;

/* Starts listening (GET /health answers 503 until the models are loaded). */
int srv_create(const srv_config *cfg, srv_server **out, lb_error *err);
/* The port actually bound (useful with port 0). */
int srv_port(const srv_server *s);
/* Loads the models and starts the schedulers; fails only when the baseline cannot be loaded. */
int srv_load(srv_server *s, lb_error *err);
/* Stops taking new requests, lets those in flight finish (up to drain_seconds), then stops. */
void srv_shutdown(srv_server *s);
void srv_free(srv_server *s);

#endif
