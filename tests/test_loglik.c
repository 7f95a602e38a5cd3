/* Log-likelihood scoring against a direct computation: every request's log-probability must
 * equal the sum of log-softmax values worked out here, in double, from the logits of one plain
 * lb_engine_forward of the whole request in its own slot, and is_greedy must match the argmax
 * found here. Covers groups with a shared context, several groups per pass, passes cut by a
 * small token budget, requests cut on the left by a short context, the harness's tokenization
 * rules (trailing context space moves to the continuation, empty context → BOS), and the
 * sample standard error. Uses the real stories260K model. */
#include "check.h"
#include "eval/loglik.h"
#include "eval/multichoice.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reference: feed tokens[0..n-2] (the last n_ctx of them) into slot 0 with every logit, and
 * score the last n_cont tokens. */
static double direct(lb_engine *e, const lb_ll_request *r, bool *greedy, int *n_scored)
{
    const lb_model *m = lb_engine_model(e);
    int vocab = m->cfg.vocab_size, n_ctx = lb_engine_n_ctx(e);
    const int *tok = r->tokens;
    int len = r->n_tokens;
    if (len - 1 > n_ctx) {
        tok += len - 1 - n_ctx;
        len = n_ctx + 1;
    }
    int n_in = len - 1;
    int *pos = malloc(sizeof(int) * (size_t)n_in), *seq = calloc((size_t)n_in, sizeof(int));
    bool *want = malloc((size_t)n_in);
    for (int i = 0; i < n_in; i++) {
        pos[i] = i;
        want[i] = true;
    }
    float *logits = malloc(sizeof(float) * (size_t)n_in * (size_t)vocab);
    lb_batch b = {n_in, tok, pos, seq, want};
    lb_error err;
    CHECK(lb_engine_forward(e, &b, logits, &err) == 0, "%s", err.msg);
    double sum = 0;
    *greedy = true;
    *n_scored = 0;
    int first = len - r->n_cont < 1 ? 1 : len - r->n_cont;
    for (int i = first; i < len; i++) {
        const float *row = logits + (size_t)(i - 1) * vocab;
        double z = 0;
        int best = 0;
        for (int v = 0; v < vocab; v++) {
            z += exp((double)row[v]);
            if (row[v] > row[best])
                best = v;
        }
        sum += (double)row[tok[i]] - log(z);
        *greedy = *greedy && best == tok[i];
        (*n_scored)++;
    }
    free(pos);
    free(seq);
    free(want);
    free(logits);
    return sum;
}

static bool same_tokens(const lb_ll_request *a, const lb_ll_request *b)
{
    return a->n_tokens == b->n_tokens && a->n_cont == b->n_cont &&
           memcmp(a->tokens, b->tokens, sizeof(int) * (size_t)a->n_tokens) == 0;
}

int main(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", test_env("LOWBIT_SHARED"));
    lb_error err;
    lb_model *m;
    if (lb_model_load(path, NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const lb_tokenizer *tok = m->tok;

    /* Tokenization rules. */
    lb_ll_request a, b;
    CHECK(lb_ll_encode(tok, "Once upon a time ", "there was", true, &a, &err) == 0, "%s", err.msg);
    CHECK(lb_ll_encode(tok, "Once upon a time", " there was", true, &b, &err) == 0, "%s", err.msg);
    CHECK(same_tokens(&a, &b), "trailing context space should move to the continuation");
    CHECK(a.tokens[0] == tok->bos_id, "BOS first, got %d", a.tokens[0]);
    int *ids, n_ids, *ctx_ids, n_ctx_ids;
    CHECK(tok_encode(tok, "Once upon a time there was", 26, false, &ids, &n_ids, &err) == 0, "%s",
          err.msg);
    CHECK(tok_encode(tok, "Once upon a time", 16, false, &ctx_ids, &n_ctx_ids, &err) == 0, "%s",
          err.msg);
    CHECK(a.n_tokens == 1 + n_ids && a.n_cont == n_ids - n_ctx_ids &&
              memcmp(a.tokens + 1, ids, sizeof(int) * (size_t)n_ids) == 0,
          "whole string encoded once, continuation = its tokens after the context's");
    free(ids);
    free(ctx_ids);
    lb_ll_request_free(&b);
    CHECK(lb_ll_encode(tok, "Once upon a time", " there was", false, &b, &err) == 0, "%s", err.msg);
    CHECK(b.n_tokens == a.n_tokens - 1 && b.tokens[0] != tok->bos_id, "no BOS without bos");
    lb_ll_request_free(&b);
    CHECK(lb_ll_encode(tok, "", "Lily", false, &b, &err) == 0, "%s", err.msg);
    CHECK(b.tokens[0] == tok->bos_id && b.n_cont == b.n_tokens - 1, "empty context → BOS");
    lb_ll_request_free(&b);
    CHECK(lb_ll_encode(tok, "Once", "", true, &b, &err) == -1 && strstr(err.msg, "no tokens"),
          "an empty continuation is refused: %s", err.msg);
    lb_ll_request_free(&a);

    /* Groups: four choices sharing a context, a single request, a partial-scoring pair with
     * different contexts and one continuation, and a greedy-friendly continuation. */
    const char *texts[][2] = {
        {"Once upon a time, there was a little girl named", " Lily."},
        {"Once upon a time, there was a little girl named", " Max."},
        {"Once upon a time, there was a little girl named", " Lily who loved to play."},
        {"Once upon a time, there was a little girl named", " a big red ball"},
        {"Once upon a time, there was a little girl named", " Sue."},
        {"Once upon a time, there was a little girl named", " Tom."},
        {"One day, she saw a big, red ball.", " She wanted to play with it."},
        {"Tom and Sue went to the park. Tom", " was happy."},
        {"Tom and Sue went to the park. Sue", " was happy."},
        {"", "Once upon a time"},
    };
    /* Group 1 repeats group 0's context: when it lands in the slot group 0 used, it starts
     * from the prefix already in the cache. */
    const int first[] = {0, 4, 6, 7, 9, 10};
    const int n_groups = 5, n_req = 10;
    lb_ll_request reqs[10];
    for (int i = 0; i < n_req; i++)
        CHECK(lb_ll_encode(tok, texts[i][0], texts[i][1], true, &reqs[i], &err) == 0, "%s",
              err.msg);

    for (int pass = 0; pass < 3; pass++) {
        /* 0: all groups in one pass; 1: a budget of 8 tokens, one group per pass, so each
         * group finds the previous one's prefix in its slot; 2: a context of 12 tokens so the
         * long requests lose their left end. */
        int n_ctx = pass == 2 ? 12 : 0, budget = pass == 1 ? 8 : 0;
        lb_engine *e;
        CHECK(lb_engine_create(m, n_ctx, pass == 1 ? 1 : 4, 1, &e, &err) == 0, "%s", err.msg);
        lb_ll_result out[10];
        CHECK(lb_ll_score(e, reqs, first, n_groups, budget, NULL, out, &err) == 0, "%s", err.msg);
        int greedy_seen = 0;
        for (int i = 0; i < n_req; i++) {
            bool g;
            int ns;
            double ref = direct(e, &reqs[i], &g, &ns);
            CHECK(fabs(out[i].logprob - ref) < 1e-4 * (1 + fabs(ref)),
                  "setting %d request %d: logprob %.6f, direct %.6f", pass, i, out[i].logprob,
                  ref);
            CHECK(out[i].greedy == g, "setting %d request %d: greedy %d, direct %d", pass, i,
                  out[i].greedy, g);
            CHECK(out[i].n_scored == ns, "setting %d request %d: %d scored, direct %d", pass, i,
                  out[i].n_scored, ns);
            CHECK(out[i].logprob < 0, "log-probability %.4f should be negative", out[i].logprob);
            greedy_seen += g;
        }
        if (pass == 0) {
            CHECK(greedy_seen >= 1, "\"Once upon a time\" from BOS is this model's greedy text");
            CHECK(out[0].logprob > out[3].logprob, "\" Lily.\" (%.3f) should beat \" a big red "
                  "ball\" (%.3f) after \"named\"", out[0].logprob, out[3].logprob);
        }
        lb_engine_free(e);
    }
    for (int i = 0; i < n_req; i++)
        lb_ll_request_free(&reqs[i]);

    /* Sample standard error of the mean: x = 1,0,1,1 → mean .75, sd .5, se .25. */
    double x[] = {1, 0, 1, 1}, mean, se;
    lb_mc_mean_stderr(x, 4, &mean, &se);
    CHECK(fabs(mean - 0.75) < 1e-12 && fabs(se - 0.25) < 1e-12, "mean %g se %g", mean, se);

    lb_model_free(m);
    return check_finish("test_loglik");
}
