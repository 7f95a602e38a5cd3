/* Log-likelihood scoring of (context, continuation) requests, batched over sequence slots with
 * each group's shared prefix computed once (see loglik.h for the conventions). */
#include "eval/loglik.h"

#include "core/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int lb_ll_encode(const lb_tokenizer *t, const char *context, const char *continuation, bool bos,
                 lb_ll_request *req, lb_error *err)
{
    memset(req, 0, sizeof *req);
    size_t lc = strlen(context), lk = strlen(continuation);
    size_t keep = lc;
    while (keep > 0 && is_space(context[keep - 1]))
        keep--;
    /* whole = context[:keep] + context[keep:] + continuation, i.e. the two strings joined. */
    char *whole = lb_malloc(lc + lk + 1);
    memcpy(whole, context, lc);
    memcpy(whole + lc, continuation, lk + 1);
    int prefix = bos || keep == 0 ? t->bos_id >= 0 ? t->bos_id : t->eos_id : -1;
    if ((bos || keep == 0) && prefix < 0) {
        free(whole);
        return lb_fail(err, "the tokenizer has neither BOS nor EOS to start a request with");
    }
    int *ctx_ids = NULL, *all_ids = NULL, n_ctx_ids = 0, n_all = 0;
    if (keep > 0 && tok_encode(t, whole, keep, false, &ctx_ids, &n_ctx_ids, err)) {
        free(whole);
        return -1;
    }
    /* Empty context: the continuation is encoded alone after the prefix token. */
    const char *rest = keep > 0 ? whole : whole + keep;
    if (tok_encode(t, rest, strlen(rest), false, &all_ids, &n_all, err)) {
        free(whole);
        free(ctx_ids);
        return -1;
    }
    free(whole);
    int skip = keep > 0 ? n_ctx_ids : 0;
    int n_cont = n_all > skip ? n_all - skip : 0;
    if (n_cont == 0) {
        free(ctx_ids);
        free(all_ids);
        return lb_fail(err, "continuation \"%.40s\" encodes to no tokens after its context",
                       continuation);
    }
    int has_prefix = prefix >= 0 ? 1 : 0;
    req->n_tokens = has_prefix + n_ctx_ids + n_cont;
    req->n_cont = n_cont;
    req->tokens = lb_malloc((size_t)req->n_tokens * sizeof(int));
    if (has_prefix)
        req->tokens[0] = prefix;
    if (n_ctx_ids)
        memcpy(req->tokens + has_prefix, ctx_ids, (size_t)n_ctx_ids * sizeof(int));
    memcpy(req->tokens + has_prefix + n_ctx_ids, all_ids + skip, (size_t)n_cont * sizeof(int));
    free(ctx_ids);
    free(all_ids);
    return 0;
}

void lb_ll_request_free(lb_ll_request *req)
{
    free(req->tokens);
    memset(req, 0, sizeof *req);
}

double lb_ll_logprob(const float *row, int n, int target, bool *is_argmax)
{
    float mx = row[0];
    int arg = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > mx) {
            mx = row[i];
            arg = i;
        }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)row[i] - mx);
    if (is_argmax)
        *is_argmax = arg == target;
    return (double)row[target] - mx - log(sum);
}

/* One request as it is fed: cut on the left so that its input fits the context. */
typedef struct {
    const int *tok;
    int len;
    int first;   /* index of the first scored token (>= 1) */
} view;

static view make_view(const lb_ll_request *r, int n_ctx)
{
    view v = {r->tokens, r->n_tokens, 0};
    if (v.len - 1 > n_ctx) {
        int cut = v.len - 1 - n_ctx;
        v.tok += cut;
        v.len -= cut;
    }
    v.first = v.len - r->n_cont;
    if (v.first < 1)
        v.first = 1;
    return v;
}

/* Tokens shared by every request of a group, stopping at the first scored token. */
static int shared_len(const view *v, int n)
{
    int s = v[0].first;
    for (int k = 1; k < n; k++) {
        if (v[k].first < s)
            s = v[k].first;
        int i = 0;
        while (i < s && v[k].tok[i] == v[0].tok[i])
            i++;
        s = i;
    }
    return s;
}

typedef struct {
    int req;      /* request the row scores */
    int target;   /* token it predicts */
    int shared;   /* 1: row of the shared prefix's last token, scores every request with
                     first == S in the group starting at request `req` (count in `target`) */
} row_use;

int lb_ll_score(lb_engine *e, const lb_ll_request *reqs, const int *first, int n_groups,
                int max_tokens, lb_progress *progress, lb_ll_result *out, lb_error *err)
{
    if (max_tokens <= 0)
        max_tokens = 2048;
    const int n_ctx = lb_engine_n_ctx(e), n_seq = lb_engine_n_seq(e);
    const int vocab = lb_engine_model(e)->cfg.vocab_size;
    int n_req = first[n_groups];
    for (int r = 0; r < n_req; r++) {
        if (reqs[r].n_tokens < 2 || reqs[r].n_cont < 1 || reqs[r].n_cont >= reqs[r].n_tokens)
            return lb_fail(err, "request %d has %d tokens with %d to score; expected a context "
                           "token and at least one continuation token", r, reqs[r].n_tokens,
                           reqs[r].n_cont);
        out[r] = (lb_ll_result){0, true, 0};
    }
    view *views = lb_malloc((size_t)(n_req ? n_req : 1) * sizeof(view));
    int *shared = lb_malloc((size_t)(n_groups ? n_groups : 1) * sizeof(int));
    int *reuse = lb_calloc((size_t)(n_groups ? n_groups : 1), sizeof(int));
    /* What each slot's cache holds at positions 0.. from its last group (its shared prefix: the
     * tails overwrote what came after). A group whose prefix starts the same way (MMLU's
     * few-shot examples, TruthfulQA's primer) starts from there instead of position 0. */
    const int **slot_tok = lb_calloc((size_t)n_seq, sizeof(int *));
    int *slot_len = lb_calloc((size_t)n_seq, sizeof(int));
    for (int r = 0; r < n_req; r++)
        views[r] = make_view(&reqs[r], n_ctx);
    for (int g = 0; g < n_groups; g++)
        shared[g] = first[g + 1] > first[g] ? shared_len(views + first[g], first[g + 1] - first[g])
                                            : 0;
    lb_ivec tok = {0}, pos = {0}, seq = {0};
    bool *want = NULL;
    size_t want_cap = 0;
    row_use *uses = NULL;
    size_t uses_cap = 0;
    float *logits = NULL;
    size_t logits_rows = 0;
    int rc = 0;

    int g0 = 0;
    while (g0 < n_groups && rc == 0) {
        /* A pack: consecutive groups, one slot each, within the token budget. */
        int g1 = g0, budget = 0, passes = 0;
        while (g1 < n_groups && g1 - g0 < n_seq) {
            int slot = g1 - g0, S = shared[g1], keep = 0;
            const int *head = S > 0 ? views[first[g1]].tok : NULL;
            /* The last shared token is always run again: its logits may be needed. */
            while (head && keep < S - 1 && keep < slot_len[slot] &&
                   slot_tok[slot][keep] == head[keep])
                keep++;
            reuse[g1] = keep;
            int longest = 0;
            for (int r = first[g1]; r < first[g1 + 1]; r++)
                if (views[r].len - 1 - shared[g1] > longest)
                    longest = views[r].len - 1 - shared[g1];
            int cost = shared[g1] - reuse[g1] + longest;
            if (g1 > g0 && budget + cost > max_tokens)
                break;
            budget += cost;
            if (first[g1 + 1] - first[g1] > passes)
                passes = first[g1 + 1] - first[g1];
            g1++;
        }
        for (int g = g0; g < g1; g++) {
            slot_tok[g - g0] = views[first[g]].tok;
            slot_len[g - g0] = shared[g];
        }
        /* Pass j runs the shared prefix (j == 0) and the j-th request's tail of every group. */
        for (int j = 0; j < passes && rc == 0; j++) {
            tok.n = pos.n = seq.n = 0;
            size_t n_uses = 0;
            for (int g = g0; g < g1; g++) {
                int nr = first[g + 1] - first[g], S = shared[g], slot = g - g0;
                if (j >= nr)
                    continue;
                if (j == 0)
                    for (int i = reuse[g]; i < S; i++) {
                        lb_ivec_push(&tok, views[first[g]].tok[i]);
                        lb_ivec_push(&pos, i);
                        lb_ivec_push(&seq, slot);
                    }
                const view *v = &views[first[g] + j];
                for (int i = S; i < v->len - 1; i++) {
                    lb_ivec_push(&tok, v->tok[i]);
                    lb_ivec_push(&pos, i);
                    lb_ivec_push(&seq, slot);
                }
            }
            if (tok.n == 0)
                continue;
            if ((size_t)tok.n > want_cap) {
                want_cap = (size_t)tok.n;
                want = lb_realloc(want, want_cap * sizeof(bool));
            }
            if ((size_t)tok.n > uses_cap) {
                uses_cap = (size_t)tok.n;
                uses = lb_realloc(uses, uses_cap * sizeof(row_use));
            }
            memset(want, 0, (size_t)tok.n * sizeof(bool));
            /* Mark the rows wanted, in batch order (the order logits come back in). */
            int t = 0;
            for (int g = g0; g < g1; g++) {
                int nr = first[g + 1] - first[g], S = shared[g];
                if (j >= nr)
                    continue;
                if (j == 0 && S > 0) {
                    int count = 0;
                    for (int r = first[g]; r < first[g + 1]; r++)
                        count += views[r].first == S;
                    if (count) {
                        want[t + S - reuse[g] - 1] = true;
                        uses[n_uses++] = (row_use){first[g], g, 1};
                    }
                    t += S - reuse[g];
                }
                int r = first[g] + j;
                const view *v = &views[r];
                for (int i = S; i < v->len - 1; i++, t++)
                    if (i + 1 >= v->first) {
                        want[t] = true;
                        uses[n_uses++] = (row_use){r, v->tok[i + 1], 0};
                    }
            }
            if (n_uses == 0)
                continue;
            if (n_uses > logits_rows) {
                logits_rows = n_uses;
                logits = lb_realloc(logits, logits_rows * (size_t)vocab * sizeof(float));
            }
            lb_batch b = {tok.n, tok.v, pos.v, seq.v, want};
            if (lb_engine_forward(e, &b, logits, err)) {
                rc = -1;
                break;
            }
            for (size_t u = 0; u < n_uses; u++) {
                const float *row = logits + u * (size_t)vocab;
                if (uses[u].shared) {
                    int g = uses[u].target;
                    for (int r = first[g]; r < first[g + 1]; r++) {
                        if (views[r].first != shared[g])
                            continue;
                        bool top;
                        out[r].logprob += lb_ll_logprob(row, vocab, views[r].tok[shared[g]], &top);
                        out[r].greedy = out[r].greedy && top;
                        out[r].n_scored++;
                    }
                } else {
                    int r = uses[u].req;
                    bool top;
                    out[r].logprob += lb_ll_logprob(row, vocab, uses[u].target, &top);
                    out[r].greedy = out[r].greedy && top;
                    out[r].n_scored++;
                }
            }
        }
        lb_progress_add(progress, (uint64_t)(g1 - g0));
        g0 = g1;
    }
    free(views);
    free(shared);
    free(reuse);
    free(slot_tok);
    free(slot_len);
    lb_ivec_free(&tok);
    lb_ivec_free(&pos);
    lb_ivec_free(&seq);
    free(want);
    free(uses);
    free(logits);
    return rc;
}
