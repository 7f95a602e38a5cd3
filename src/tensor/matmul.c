/* Row-parallel matrix multiply over the type-traits dot kernels. */
#include "tensor/matmul.h"

typedef struct {
    const lb_tensor *w;
    const float *x;
    float *y;
    int n;
    int rows_per_task;
    size_t row_bytes;
    lb_dot_fn dot;
} matmul_job;

/* Tokens are processed in tiles so a tile of activations stays in cache while a block of
 * weight rows streams past it. */
#define TOKEN_TILE 8

static void matmul_task(void *ctx, int task, int thread)
{
    (void)thread;
    const matmul_job *j = ctx;
    int64_t in = j->w->ne[0], out = j->w->ne[1];
    int64_t r0 = (int64_t)task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < out ? r0 + j->rows_per_task : out;
    const char *base = j->w->data;
    for (int t0 = 0; t0 < j->n; t0 += TOKEN_TILE) {
        int t1 = t0 + TOKEN_TILE < j->n ? t0 + TOKEN_TILE : j->n;
        for (int64_t r = r0; r < r1; r++) {
            const void *row = base + (size_t)r * j->row_bytes;
            for (int t = t0; t < t1; t++)
                j->y[(size_t)t * (size_t)out + (size_t)r] = j->dot(row, j->x + (size_t)t * (size_t)in, in);
        }
    }
}

void lb_matmul(lb_pool *pool, const lb_tensor *w, const float *x, int n, float *y)
{
    const lb_type_traits *tr = lb_type_traits_of(w->type);
    int64_t out = w->ne[1];
    int threads = lb_pool_size(pool);
    /* Enough tasks to balance across threads, few enough that each amortizes its dispatch. */
    int64_t per = out / ((int64_t)threads * 8);
    if (per < 4)
        per = 4;
    matmul_job job = {w, x, y, n, (int)per, lb_row_bytes(w->type, w->ne[0]), tr->dot};
    lb_pool_run(pool, (int)((out + per - 1) / per), matmul_task, &job);
}
