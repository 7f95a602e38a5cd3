/* Thread pool. Each job gets a ticket: its generation in the high 32 bits and the index of
 * its next unclaimed task in the low 32. A thread claims a task by advancing the ticket, and
 * only while the generation is the one it joined, so a late thread never takes a task of a
 * job it has not seen published. The caller returns when every task has finished; it never
 * waits for a worker that found nothing left to do, which is what keeps a job short on a
 * machine with more threads than free cores (a worker without a core only misses the job). */
#include "core/threadpool.h"
#include "core/dist.h"
#include "core/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct lb_pool {
    int n_threads;              /* including the caller */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    _Atomic uint64_t ticket;    /* generation << 32 | next task of the current job */
    atomic_int n_tasks;         /* of the current job */
    atomic_int done;            /* tasks of the current job finished */
    atomic_int sleeping;        /* workers waiting on the condition */
    atomic_bool quit;
    lb_task_fn fn;              /* of the current job: written before its ticket is published */
    void *ctx;
};

typedef struct {
    lb_pool *pool;
    int index;
} worker_arg;

static uint32_t generation_of(uint64_t ticket)
{
    return (uint32_t)(ticket >> 32);
}

/* The task index of a job's ticket while the caller is still filling in the job: the new
 * generation is already out, so nobody can claim a task of the old job any more (whose count
 * of tasks is about to change under it), and nobody claims one of the new job yet. */
#define SETTING_UP UINT32_MAX

/* Claims and runs tasks of job gen until none is left or a newer job has begun. */
static void run_job(lb_pool *p, uint32_t gen, int thread)
{
    uint64_t cur = atomic_load(&p->ticket);
    for (;;) {
        if (generation_of(cur) != gen)
            return;
        if ((uint32_t)cur == SETTING_UP) {   /* its tasks are a moment away */
            cur = atomic_load(&p->ticket);
            continue;
        }
        if ((uint32_t)cur >= (uint32_t)atomic_load(&p->n_tasks))
            return;
        if (!atomic_compare_exchange_weak(&p->ticket, &cur, cur + 1))
            continue;   /* cur now holds the ticket as it is */
        /* Holding an unfinished task of gen, the job cannot end: fn and ctx are its own. */
        p->fn(p->ctx, (int)(uint32_t)cur, thread);
        atomic_fetch_add(&p->done, 1);
        cur = atomic_load(&p->ticket);
    }
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    lb_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    uint32_t seen = 0;
    for (;;) {
        /* Spin a little: the next matmul of a decode step usually follows within microseconds. */
        uint32_t gen = generation_of(atomic_load(&p->ticket));
        for (int spin = 0; gen == seen && spin < 20000 && !atomic_load(&p->quit); spin++) {
            sched_yield();
            gen = generation_of(atomic_load(&p->ticket));
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->mu);
            /* Counted before looking again: the caller either sees this worker asleep and
             * wakes it, or this worker sees the caller's new ticket. */
            atomic_fetch_add(&p->sleeping, 1);
            while ((gen = generation_of(atomic_load(&p->ticket))) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            return NULL;
        seen = gen;
        run_job(p, gen, index);
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
    uint32_t gen = generation_of(atomic_load(&p->ticket)) + 1;
    atomic_store(&p->ticket, (uint64_t)gen << 32 | SETTING_UP);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->n_tasks, n_tasks);
    atomic_store(&p->done, 0);
    atomic_store(&p->ticket, (uint64_t)gen << 32);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_job(p, gen, 0);
    /* Only tasks other threads are still running are waited for: spin briefly, then yield,
     * so a worker that lost its core mid-task gets it back sooner. */
    for (int spin = 0; atomic_load(&p->done) < n_tasks; spin++)
        if (spin > 64)
            sched_yield();
}
