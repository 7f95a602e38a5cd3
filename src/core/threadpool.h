/* A fixed pool of worker threads for data-parallel loops. lb_pool_run splits n tasks over the
 * calling thread and the workers and returns when all are done. Workers spin briefly before
 * sleeping, because a decode step issues many short parallel loops in a row. */
#ifndef LB_THREADPOOL_H
#define LB_THREADPOOL_H

typedef struct lb_pool lb_pool;

/* fn is called once per task index in [0, n_tasks); thread is in [0, lb_pool_size). */
typedef void (*lb_task_fn)(void *ctx, int task, int thread);

/* n_threads <= 0 means one per online core. */
lb_pool *lb_pool_create(int n_threads);
void lb_pool_free(lb_pool *pool);
int lb_pool_size(const lb_pool *pool);
void lb_pool_run(lb_pool *pool, int n_tasks, lb_task_fn fn, void *ctx);

/* Number of online cores. */
int lb_cpu_count(void);

#endif
