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

/* n_ctx <= 0 uses the model's trained context; n_threads <= 0 uses every core. The KV cache
 * holds n_seq × n_ctx positions in the process's KV type (lb_engine_set_kv_type). */
int lb_engine_create(const lb_model *m, int n_ctx, int n_seq, int n_threads, lb_engine **out,
                     lb_error *err);

/* Element type of the KV caches that engines created from now on hold. F16 halves the cache
 * and what attention reads from it, at the price of rounding keys and values to fp16. Q8
 * keeps each head's row of keys or values (one position) as int8 with one float scale,
 * max|x| / 127, as the activations of the int8 kernels are kept: a little over a quarter of
 * the bytes, for any head size (GGUF's Q8_0 blocks of 32 would not fit heads of 8 or 48). */
typedef enum { LB_KV_F32, LB_KV_F16, LB_KV_Q8 } lb_kv_type;
void lb_engine_set_kv_type(lb_kv_type t);
/* "f32", "f16" or "q8"; -1 for anything else. */
int lb_kv_type_parse(const char *name, lb_kv_type *out);
/* The type engines get: set by lb_engine_set_kv_type, else LOWBIT_KV_CACHE, else F32. */
lb_kv_type lb_engine_kv_type(void);
/* "f32", "f16" or "q8", as lb_kv_type_parse reads them: results say which cache they ran on. */
const char *lb_kv_type_name(lb_kv_type t);
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

/* Block-by-block execution for the quantizers, which feed block l with the outputs of the
 * already-quantized blocks 0..l-1 and need to see what each linear layer is given. */
typedef enum {
    LB_SITE_QKV,    /* attention norm output: input of q, k, v */
    LB_SITE_O,      /* attention output: input of o */
    LB_SITE_FFN,    /* feed-forward norm output: input of gate and up */
    LB_SITE_DOWN,   /* activated hidden state: input of down */
    LB_SITE_COUNT
} lb_site;

/* Called with the n rows (width floats each) a linear layer of `layer` is about to multiply. */
typedef void (*lb_capture_fn)(void *user, int layer, lb_site site, const float *x, int n,
                              int width);
/* fn NULL switches capturing off. */
void lb_engine_set_capture(lb_engine *e, lb_capture_fn fn, void *user);
/* y[n][out] = x[n][in] · w[out][in]ᵀ, as BLAS's sgemm computes it. */
typedef void (*lb_sgemm_fn)(int n, int out, int in, const float *x, const float *w, float *y);
/* With a BLAS sgemm, blocks multiply F32 weights by whole batches (of 16 tokens or more)
 * through it: much faster over the thousands of calibration tokens a quantizer pushes through
 * each block, though not bit-identical to the normal kernels, which is why it is not the
 * default. NULL goes back to the kernels. The caller brings BLAS, so that running a model
 * does not load it. */
void lb_engine_set_gemm(lb_engine *e, lb_sgemm_fn sgemm);
/* Token (and position) embeddings of the batch into x[n][dim]. */
int lb_engine_embed(lb_engine *e, const lb_batch *b, float *x, lb_error *err);
/* Runs block `layer` over x[n][dim] in place; attention writes and reads that layer's cache. */
int lb_engine_block(lb_engine *e, int layer, const lb_batch *b, float *x, lb_error *err);

/* Points where a partial run of a block (lb_engine_block_part) starts or stops: the block's
 * input, the moment just after a site's input went to the capture hook (an lb_site), or the
 * block's output. */
enum { LB_BLOCK_INPUT = -1, LB_BLOCK_OUTPUT = LB_SITE_COUNT };

/* Runs block `layer` over x[n][dim] in place from point `from` to point `to` (from < to), so
 * that a quantizer can quantize a site's linears before the block goes on past them. x holds
 * the residual stream: at any point it is what the block holds there. The input of LB_SITE_O
 * (attention output, n × heads·head_dim) and of LB_SITE_DOWN (activated hidden state,
 * n × hidden_dim) is left in act by a run that stops at that site and read from act by a run
 * that starts there; the other sites' inputs are norms of x, recomputed when a run starts at
 * them. act may be NULL unless the run starts at LB_SITE_O or LB_SITE_DOWN; a run that stops
 * there then drops the rows. */
int lb_engine_block_part(lb_engine *e, int layer, const lb_batch *b, float *x, float *act,
                         int from, int to, lb_error *err);

#endif
