/* The inference engine: a model, a thread pool, a KV cache with one slot per sequence, and a
 * batched forward pass. A batch holds any mix of tokens from different sequences at any
 * positions (prefill of a prompt, or one new token for each of several sequences); each token
 * attends to its own sequence's cache up to and including its position. */
#ifndef LB_ENGINE_H
#define LB_ENGINE_H

#include "core/threadpool.h"
#include "model/model.h"

typedef struct {
    int n;
    const int *token;
    const int *pos;
    const int *seq;
    const bool *want_logits;   /* NULL: logits for the last token only */
} lb_batch;

typedef struct lb_engine lb_engine;

/* n_ctx <= 0 uses the model's trained context; n_threads <= 0 uses every core. */
int lb_engine_create(const lb_model *m, int n_ctx, int n_seq, int n_threads, lb_engine **out,
                     lb_error *err);
void lb_engine_free(lb_engine *e);

/* Runs the batch; writes one row of vocab_size logits per token that wants them, in batch
 * order, to logits. Fails (without side effects) on out-of-range tokens, positions or slots. */
int lb_engine_forward(lb_engine *e, const lb_batch *b, float *logits, lb_error *err);

int lb_engine_n_ctx(const lb_engine *e);
int lb_engine_n_seq(const lb_engine *e);
const lb_model *lb_engine_model(const lb_engine *e);
lb_pool *lb_engine_pool(lb_engine *e);
/* Bytes held by the KV cache. */
size_t lb_engine_kv_bytes(const lb_engine *e);

#endif
