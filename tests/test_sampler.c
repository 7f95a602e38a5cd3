/* Sampling: empirical frequencies follow the softmax at the temperature; top-k, top-p and
 * min-p cut exactly the tokens they should; the penalty demotes repeated tokens; seeds repeat. */
#include "check.h"
#include "model/sampler.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define V 6
static const float LOGITS[V] = {2.0f, 1.5f, 1.0f, 0.0f, -1.0f, -3.0f};

/* Draws n samples and returns the frequency of each token. */
static void frequencies(lb_sampling p, int n, double *freq)
{
    lb_sampler *s = lb_sampler_create(&p, V);
    memset(freq, 0, V * sizeof(double));
    for (int i = 0; i < n; i++) {
        float l[V];
        memcpy(l, LOGITS, sizeof l);
        freq[lb_sampler_sample(s, l, NULL, 0)] += 1.0 / n;
    }
    lb_sampler_free(s);
}

static void softmax(float temp, double *p)
{
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += p[i] = exp(LOGITS[i] / temp);
    for (int i = 0; i < V; i++)
        p[i] /= sum;
}

/* lb_argmax is the plain scan's first index of the largest value, NaNs never winning: on ties
 * within and across its blocks, signed zeros, infinities, NaNs in front and among the values,
 * and lengths around its block size. */
static void test_argmax(void)
{
    uint64_t state = 7;
    float x[300];
    for (int trial = 0; trial < 4000; trial++) {
        int n = 1 + trial % 300;
        for (int i = 0; i < n; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            int r = (int)(state >> 33) % 16;
            x[i] = r < 8 ? (float)(r % 4) : r == 8 ? NAN : r == 9 ? -0.0f : r == 10 ? 0.0f
                   : r == 11 ? -INFINITY : r == 12 && trial % 7 == 0 ? INFINITY : -(float)r;
        }
        if (trial % 11 == 0)
            x[0] = NAN;
        int want = 0;
        for (int i = 1; i < n; i++)
            if (x[i] > x[want])
                want = i;
        int got = lb_argmax(x, n);
        CHECK(got == want, "trial %d, n %d: argmax %d, the scan says %d", trial, n, got, want);
    }
}

int main(void)
{
    test_argmax();
    const int N = 200000;
    double f[V], ref[V];
    lb_sampling p = {1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 123};

    /* Plain temperature sampling matches the softmax (4 standard errors). */
    for (float temp = 0.5f; temp <= 2.0f; temp *= 2) {
        p.temperature = temp;
        frequencies(p, N, f);
        softmax(temp, ref);
        for (int i = 0; i < V; i++) {
            double se = sqrt(ref[i] * (1 - ref[i]) / N) + 1e-9;
            CHECK(fabs(f[i] - ref[i]) < 4 * se + 1e-4, "T=%g token %d: %g vs %g", temp, i, f[i], ref[i]);
        }
    }

    /* top-k 2: only the two best, renormalized. */
    p.temperature = 1.0f;
    p.top_k = 2;
    frequencies(p, N, f);
    softmax(1.0f, ref);
    double z = ref[0] + ref[1];
    CHECK(fabs(f[0] - ref[0] / z) < 0.01 && fabs(f[1] - ref[1] / z) < 0.01, "top-k 2: %g %g", f[0], f[1]);
    for (int i = 2; i < V; i++)
        CHECK(f[i] == 0, "top-k 2 drew token %d", i);

    /* top-p: the smallest prefix reaching p. softmax(T=1) = .462 .280 .170 .063 .023 .003,
     * so 0.8 keeps three tokens (.742 < .8 <= .912). */
    p.top_k = 0;
    p.top_p = 0.8f;
    frequencies(p, N, f);
    CHECK(f[0] > 0 && f[1] > 0 && f[2] > 0 && f[3] == 0 && f[4] == 0, "top-p 0.8 kept %g %g %g %g %g",
          f[0], f[1], f[2], f[3], f[4]);

    /* min-p 0.3: keeps tokens with p >= 0.3 * p(best) = .139: tokens 0, 1, 2. */
    p.top_p = 1.0f;
    p.min_p = 0.3f;
    frequencies(p, N, f);
    CHECK(f[2] > 0 && f[3] == 0, "min-p 0.3: token 2 %g, token 3 %g", f[2], f[3]);
    p.min_p = 0.0f;

    /* Greedy ignores the seed; top-k 1 is greedy too. */
    lb_sampling g = {0.0f, 40, 0.95f, 0.05f, 1.0f, 64, 1};
    lb_sampler *s = lb_sampler_create(&g, V);
    float l[V];
    memcpy(l, LOGITS, sizeof l);
    CHECK(lb_sampler_sample(s, l, NULL, 0) == 0, "greedy");
    lb_sampler_free(s);

    /* Repetition penalty 10 on token 0 (positive logit divided) makes token 1 the greedy pick;
     * a negative logit is multiplied, pushing it further down. */
    g.repeat_penalty = 10.0f;
    s = lb_sampler_create(&g, V);
    int hist[] = {0, 0, 4};
    memcpy(l, LOGITS, sizeof l);
    CHECK(lb_sampler_sample(s, l, hist, 3) == 1, "penalty");
    CHECK(fabsf(l[0] - 0.2f) < 1e-6f && fabsf(l[4] + 10.0f) < 1e-6f, "penalized logits %g %g", l[0], l[4]);
    lb_sampler_free(s);

    /* Same seed, same draws; different seed, different draws. */
    int a[64], b[64], c[64];
    lb_sampling r = {1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 99};
    for (int run = 0; run < 3; run++) {
        r.seed = run == 2 ? 100 : 99;
        s = lb_sampler_create(&r, V);
        for (int i = 0; i < 64; i++) {
            memcpy(l, LOGITS, sizeof l);
            (run == 0 ? a : run == 1 ? b : c)[i] = lb_sampler_sample(s, l, NULL, 0);
        }
        lb_sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed differs");
    CHECK(memcmp(a, c, sizeof a) != 0, "different seeds agree");

    /* Absurd parameters are refused, naming the field. */
    lb_error err;
    lb_sampling bad = lb_sampling_defaults();
    bad.temperature = -1;
    CHECK(lb_sampling_check(&bad, &err) != 0 && strstr(err.msg, "temperature"), "temp -1");
    bad = lb_sampling_defaults();
    bad.top_p = 0;
    CHECK(lb_sampling_check(&bad, &err) != 0 && strstr(err.msg, "top_p"), "top_p 0");
    bad = lb_sampling_defaults();
    bad.top_k = -5;
    CHECK(lb_sampling_check(&bad, &err) != 0 && strstr(err.msg, "top_k"), "top_k -5");
    bad = lb_sampling_defaults();
    bad.temperature = NAN;
    CHECK(lb_sampling_check(&bad, &err) != 0, "temperature NaN");
    bad = lb_sampling_defaults();
    CHECK(lb_sampling_check(&bad, &err) == 0, "defaults rejected: %s", err.msg);
    return check_finish("test_sampler");
}
