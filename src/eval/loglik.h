/* Log-likelihood of a continuation given a context, scored the way lm-evaluation-harness
 * scores its loglikelihood requests:
 *  - trailing whitespace of the context moves to the front of the continuation;
 *  - the context is encoded alone, context + continuation is encoded whole, and the
 *    continuation's tokens are the whole encoding's tokens after the context's count;
 *  - an empty context is replaced by the BOS token (the harness's prefix token);
 *  - the model is fed (context + continuation) without its last token, cut on the left to the
 *    engine's context, and each continuation token is scored by the log-softmax of the logits
 *    one position before it; is_greedy says whether every continuation token was the argmax.
 * With bos (llama.cpp's convention, and the harness's add_bos_token=True) BOS is put in front
 * of every context.
 *
 * Requests come in groups that share their context (the choices of one question): a group's
 * longest common token prefix is run once in one sequence slot, and each request's remaining
 * tokens are run in turn over that prefix, several groups side by side in one forward pass. */
#ifndef LB_LOGLIK_H
#define LB_LOGLIK_H

#include "core/error.h"
#include "core/progress.h"
#include "model/engine.h"

#include <stdbool.h>

typedef struct {
    int *tokens;     /* context tokens followed by the continuation's; owned */
    int n_tokens;
    int n_cont;      /* the last n_cont tokens are scored; at least 1 */
} lb_ll_request;

typedef struct {
    double logprob;  /* sum of the continuation tokens' log-probabilities */
    bool greedy;     /* every continuation token was the most likely one */
    int n_scored;    /* continuation tokens scored (fewer than n_cont only if n_cont > n_ctx) */
} lb_ll_result;

/* Tokenizes one (context, continuation) pair as described above into req (tokens malloc'd).
 * Fails when the continuation encodes to no token. */
int lb_ll_encode(const lb_tokenizer *t, const char *context, const char *continuation, bool bos,
                 lb_ll_request *req, lb_error *err);
void lb_ll_request_free(lb_ll_request *req);

/* Scores n_groups groups; group g holds requests [first[g], first[g + 1]) (first has
 * n_groups + 1 entries). Groups are packed into forward passes of at most max_tokens tokens
 * (<= 0: 2048) and at most lb_engine_n_seq(e) groups. progress (may be NULL) advances by one
 * per group. out has one entry per request. Deterministic for a given engine and max_tokens. */
int lb_ll_score(lb_engine *e, const lb_ll_request *reqs, const int *first, int n_groups,
                int max_tokens, lb_progress *progress, lb_ll_result *out, lb_error *err);

/* log-softmax of row[target] over n entries, and whether target is the argmax (first max). */
double lb_ll_logprob(const float *row, int n, int target, bool *is_argmax);

#endif
