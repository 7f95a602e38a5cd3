/* Next-token sampling: repetition penalty, then greedy (temperature 0) or temperature with
 * top-k, top-p and min-p filters, drawn from a seeded generator so runs repeat exactly. */
#ifndef LB_SAMPLER_H
#define LB_SAMPLER_H

#include "core/error.h"

#include <stdint.h>

typedef struct {
    float temperature;     /* 0: greedy */
    int top_k;             /* 0: off */
    float top_p;           /* 1: off */
    float min_p;           /* 0: off */
    float repeat_penalty;  /* 1: off */
    int repeat_last_n;     /* tokens of history the penalty looks at */
    uint64_t seed;
} lb_sampling;

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty. */
lb_sampling lb_sampling_defaults(void);
/* The first index of the largest of n values (n >= 1); NaNs never win. Greedy decoding. */
int lb_argmax(const float *x, int n);
/* Rejects absurd values (negative temperature, top-p outside (0,1], …) naming the field. */
int lb_sampling_check(const lb_sampling *p, lb_error *err);

typedef struct lb_sampler lb_sampler;

lb_sampler *lb_sampler_create(const lb_sampling *p, int n_vocab);
void lb_sampler_free(lb_sampler *s);
/* Picks a token; logits are modified. history holds the tokens so far (for the penalty). */
int lb_sampler_sample(lb_sampler *s, float *logits, const int *history, int n_history);
/* Probability the last draw's distribution gave its token (1 for greedy). */
float lb_sampler_last_prob(const lb_sampler *s);

#endif
