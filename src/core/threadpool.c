/* Thread pool: one generation counter announces each job; tasks are claimed with an atomic
 * counter so uneven tasks balance themselves. */
#include "core/threadpool.h"
#include "core/dist.h"
#include "core/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct lb_pool {
    int n_threads;              /* including the caller */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint generation;     /* bumped once per job */
    atomic_int next_task;
    atomic_int active;          /* workers still inside the current job */
    atomic_bool quit;
    int n_tasks;
    lb_task_fn fn;
    void *ctx;
};

typedef struct {
    lb_pool *pool;
    int index;
} worker_arg;

static void run_tasks(lb_pool *p, int thread)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->n_tasks)
            break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    lb_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        /* Spin a little: the next matmul of a decode step usually follows within microseconds. */
        unsigned gen = atomic_load(&p->generation);
        for (int spin = 0; gen == seen && spin < 20000 && !atomic_load(&p->quit); spin++) {
            sched_yield();
            gen = atomic_load(&p->generation);
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->mu);
            while ((gen = atomic_load(&p->generation)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            return NULL;
        seen = gen;
        run_tasks(p, index);
        atomic_fetch_sub(&p->active, 1);
    }
}

int lb_cpu_count(void)
{
    /* The cores this process may run on (taskset, a cgroup's cpuset, mpirun binding each rank
     * to its cores), not all the machine has: more threads than cores only queue up. */
    /* Set by a parent that shares the cores out (the pipeline's stages under mpirun), or by
     * a user, as OMP_NUM_THREADS is for OpenMP programs. */
    const char *env = getenv("LOWBIT_THREADS");
    if (env && atoi(env) > 0)
        return atoi(env);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? (int)online : 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        n = CPU_COUNT(&set);
    /* Ranks of one MPI job left unbound on a machine (mpirun --oversubscribe, --bind-to none)
     * share its cores instead of each taking all of them. */
    int local = lb_dist_local_size();
    if (local > 1 && n == online)
        n = n / local > 0 ? n / local : 1;
    return n;
}

lb_pool *lb_pool_create(int n_threads)
{
    if (n_threads <= 0)
        n_threads = lb_cpu_count();
    lb_pool *p = lb_calloc(1, sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->workers = lb_calloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = lb_malloc(sizeof *wa);
        wa->pool = p;
        wa->index = i;
        pthread_create(&p->workers[i], NULL, worker_main, wa);
    }
    return p;
}

void lb_pool_free(lb_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}

int lb_pool_size(const lb_pool *p)
{
    return p ? p->n_threads : 1;
}

void lb_pool_run(lb_pool *p, int n_tasks, lb_task_fn fn, void *ctx)
{
    if (n_tasks <= 0)
        return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->active, p->n_threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    /* The other threads are finishing their last task: spin briefly, then yield, so a worker
     * that lost its core (more threads than cores on a busy machine) gets it back instead of
     * waiting out this thread's whole time slice. */
    for (int spin = 0; atomic_load(&p->active) > 0; spin++)
        if (spin > 64)
            sched_yield();
}
