/* Y = X · Wᵀ for a weight W[out][in] of any type and fp32 activations X[n][in]:
 * Y[t][j] = dot(W row j, X row t). Rows of W are split across the pool's threads, and each
 * row is read once per tile of tokens. A token's row of Y is the same bits whatever the batch
 * around it and the thread count. */
#ifndef LB_MATMUL_H
#define LB_MATMUL_H

#include "core/threadpool.h"
#include "tensor/tensor.h"

void lb_matmul(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y);
/* y[i] = w[i] · x for several weights of one input (q, k and v; gate and up), each y[i] what
 * lb_matmul gives: the activations are quantized once where the weights' kernels read them
 * alike, and the rows of all the weights go out as one job, so the threads meet once. */
void lb_matmul_multi(lb_pool *pool, int count, const lb_tensor *const *w, const float *x, int n,
                     float *const *y);
/* Weights per job of lb_matmul_multi (more are run in turns). */
#define LB_MATMUL_MAX 4
/* The same through a named kernel level ("scalar", "avx2", "avx512") for group-quantized, F32,
 * Q8_0 and Q4_0 weights, so tests can compare levels in one process; -1 if the CPU lacks the
 * level or the type has no such kernels. */
int lb_matmul_level(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y,
                    const char *level);

#endif
