/* Y = X · Wᵀ for a weight W[out][in] of any type and fp32 activations X[n][in]:
 * Y[t][j] = dot(W row j, X row t). Rows of W are split across the pool's threads, and each
 * row is read once per tile of tokens. A token's row of Y is the same bits whatever the batch
 * around it and the thread count. */
#ifndef LB_MATMUL_H
#define LB_MATMUL_H

#include "core/threadpool.h"
#include "tensor/tensor.h"

void lb_matmul(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y);
/* The same through a named kernel level ("scalar", "avx2", "avx512") for group-quantized, F32,
 * Q8_0 and Q4_0 weights, so tests can compare levels in one process; -1 if the CPU lacks the
 * level or the type has no such kernels. */
int lb_matmul_level(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y,
                    const char *level);

#endif
