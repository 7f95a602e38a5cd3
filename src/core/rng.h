/* Small deterministic PRNG (xoshiro-style 64-bit) so that a seed gives the same stream on
 * every platform: used by sampling, synthetic weights and calibration windows. */
#ifndef LB_RNG_H
#define LB_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} lb_rng;

void lb_rng_seed(lb_rng *r, uint64_t seed);
uint64_t lb_rng_next(lb_rng *r);
/* Uniform in [0, 1). */
float lb_rng_uniform(lb_rng *r);
/* Standard normal (Box–Muller). */
float lb_rng_normal(lb_rng *r);

#endif
