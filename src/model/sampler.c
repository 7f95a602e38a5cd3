/* Sampler. Candidates are sorted by logit only as far as the filters need them. */
#include "model/sampler.h"
#include "core/rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct lb_sampler {
    lb_sampling p;
    int n_vocab;
    lb_rng rng;
    int *idx;
    float *prob;
    float last_prob;
};

lb_sampling lb_sampling_defaults(void)
{
    return (lb_sampling){0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0};
}

int lb_sampling_check(const lb_sampling *p, lb_error *err)
{
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return lb_fail(err, "temperature %g is outside 0..100", p->temperature);
    if (p->top_k < 0)
        return lb_fail(err, "top_k %d is negative", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return lb_fail(err, "top_p %g is outside (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p < 1))
        return lb_fail(err, "min_p %g is outside [0, 1)", p->min_p);
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= 10))
        return lb_fail(err, "repeat_penalty %g is outside (0, 10]", p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return lb_fail(err, "repeat_last_n %d is negative", p->repeat_last_n);
    return 0;
}

lb_sampler *lb_sampler_create(const lb_sampling *p, int n_vocab)
{
    lb_sampler *s = lb_calloc(1, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    lb_rng_seed(&s->rng, p->seed);
    s->idx = lb_malloc((size_t)n_vocab * sizeof(int));
    s->prob = lb_malloc((size_t)n_vocab * sizeof(float));
    return s;
}

void lb_sampler_free(lb_sampler *s)
{
    if (!s)
        return;
    free(s->idx);
    free(s->prob);
    free(s);
}

float lb_sampler_last_prob(const lb_sampler *s) { return s->last_prob; }

static int by_logit_desc(const void *a, const void *b, void *ctx)
{
    const float *logits = ctx;
    float x = logits[*(const int *)a], y = logits[*(const int *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;   /* ties: lower id first, deterministic */
}

/* Elements whose maximum is taken before looking for its first place. */
#define ARGMAX_BLOCK 64

int lb_argmax(const float *x, int n)
{
    /* Block by block: a block's maximum (a loop the compiler vectorizes) is compared with the
     * best so far, and only a block that beats it is searched for the first place of its
     * maximum. The first index of the largest value, NaNs never winning, as one scan with
     * x[i] > x[best] gives (-0 and +0 compare equal, so either sign of the block's maximum
     * finds the same place). */
    int best = 0;
    float top = x[0];
    if (top != top)
        return 0;   /* nothing compares greater than a NaN in front */
    for (int b0 = 0; b0 < n; b0 += ARGMAX_BLOCK) {
        int b1 = b0 + ARGMAX_BLOCK < n ? b0 + ARGMAX_BLOCK : n;
        float m = top;
        for (int i = b0; i < b1; i++)
            m = x[i] > m ? x[i] : m;
        if (m > top) {
            for (int i = b0; i < b1; i++)
                if (x[i] == m) {
                    best = i;
                    break;
                }
            top = m;
        }
    }
    return best;
}

/* Moves the k largest logits to the front of idx, sorted (partial selection, then sort). */
static void select_top(const float *logits, int *idx, int n, int k)
{
    /* Threshold by a min-heap would be faster; a bounded insertion keeps it simple and exact. */
    int filled = 0;
    for (int i = 0; i < n; i++) {
        if (filled == k && logits[i] <= logits[idx[k - 1]])
            continue;
        int j = filled < k ? filled++ : k - 1;
        while (j > 0 && (logits[idx[j - 1]] < logits[i] ||
                         (logits[idx[j - 1]] == logits[i] && idx[j - 1] > i))) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
}

int lb_sampler_sample(lb_sampler *s, float *logits, const int *history, int n_history)
{
    int n = s->n_vocab;
    const lb_sampling *p = &s->p;
    if (p->repeat_penalty != 1.0f && history) {
        int from = n_history - p->repeat_last_n > 0 ? n_history - p->repeat_last_n : 0;
        for (int i = from; i < n_history; i++) {
            int t = history[i];
            if (t < 0 || t >= n)
                continue;
            /* Penalize once per distinct token: skip if it appeared later in the window. */
            bool seen_later = false;
            for (int j = i + 1; j < n_history && !seen_later; j++)
                seen_later = history[j] == t;
            if (seen_later)
                continue;
            logits[t] = logits[t] > 0 ? logits[t] / p->repeat_penalty : logits[t] * p->repeat_penalty;
        }
    }
    if (p->temperature == 0.0f) {
        s->last_prob = 1.0f;
        return lb_argmax(logits, n);
    }
    int k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    if (k < n) {
        select_top(logits, s->idx, n, k);
    } else {
        for (int i = 0; i < n; i++)
            s->idx[i] = i;
        qsort_r(s->idx, (size_t)n, sizeof(int), by_logit_desc, logits);
    }
    /* Softmax over the k candidates at the temperature. */
    float max = logits[s->idx[0]], sum = 0;
    for (int i = 0; i < k; i++) {
        s->prob[i] = expf((logits[s->idx[i]] - max) / p->temperature);
        sum += s->prob[i];
    }
    for (int i = 0; i < k; i++)
        s->prob[i] /= sum;
    /* top-p: the smallest prefix whose mass reaches p; min-p: drop tokens below min_p × best. */
    int keep = k;
    if (p->top_p < 1.0f) {
        float cum = 0;
        for (int i = 0; i < k; i++) {
            cum += s->prob[i];
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        float floor_p = p->min_p * s->prob[0];
        int i = 1;
        while (i < keep && s->prob[i] >= floor_p)
            i++;
        keep = i;
    }
    float mass = 0;
    for (int i = 0; i < keep; i++)
        mass += s->prob[i];
    float r = lb_rng_uniform(&s->rng) * mass, cum = 0;
    int choice = keep - 1;
    for (int i = 0; i < keep; i++) {
        cum += s->prob[i];
        if (r < cum) {
            choice = i;
            break;
        }
    }
    s->last_prob = s->prob[choice] / mass;
    return s->idx[choice];
}
