/* The thread pool: every task of every job runs exactly once, on a thread index in range, and
 * a job's results are all in place when lb_pool_run returns, over many short jobs in a row
 * (as a decode step issues them), with more threads than the machine has cores, with jobs of
 * one task and of fewer tasks than threads, and after the workers have gone to sleep. Also the
 * core count: LOWBIT_THREADS overrides it, and a process pinned to one core counts one. */
#include "check.h"
#include "core/threadpool.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    atomic_int *runs;   /* per task: how many times it ran */
    int n_threads;
    atomic_int bad_thread;
    int job;
    int *stamp;         /* per task: the job that last ran it */
} job_ctx;

static void count_task(void *ctx, int task, int thread)
{
    job_ctx *j = ctx;
    atomic_fetch_add(&j->runs[task], 1);
    if (thread < 0 || thread >= j->n_threads)
        atomic_fetch_add(&j->bad_thread, 1);
    j->stamp[task] = j->job;
}

static void run_jobs(int n_threads, int n_jobs, int max_tasks)
{
    lb_pool *p = lb_pool_create(n_threads);
    CHECK(lb_pool_size(p) == n_threads, "pool of %d has size %d", n_threads, lb_pool_size(p));
    atomic_int *runs = calloc((size_t)max_tasks, sizeof *runs);
    int *stamp = calloc((size_t)max_tasks, sizeof *stamp);
    int wrong = 0, unfinished = 0;
    unsigned seed = 12345;
    for (int job = 1; job <= n_jobs; job++) {
        seed = seed * 1103515245u + 12345u;
        int n = 1 + (int)((seed >> 8) % (unsigned)max_tasks);
        for (int t = 0; t < n; t++)
            atomic_store(&runs[t], 0);
        job_ctx j = {runs, n_threads, 0, job, stamp};
        lb_pool_run(p, n, count_task, &j);
        for (int t = 0; t < n; t++) {
            wrong += atomic_load(&runs[t]) != 1;
            unfinished += stamp[t] != job;
        }
        CHECK(atomic_load(&j.bad_thread) == 0, "job %d: thread index out of range", job);
        /* Now and then long enough for the workers to stop spinning and sleep. */
        if (job % 500 == 0) {
            struct timespec ts = {0, 60 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(wrong == 0, "%d threads: %d task(s) did not run exactly once", n_threads, wrong);
    CHECK(unfinished == 0, "%d threads: %d task(s) not finished when lb_pool_run returned",
          n_threads, unfinished);
    lb_pool_free(p);
    free(runs);
    free(stamp);
}

static void test_cpu_count(void)
{
    setenv("LOWBIT_THREADS", "3", 1);
    CHECK(lb_cpu_count() == 3, "LOWBIT_THREADS=3 gives %d", lb_cpu_count());
    unsetenv("LOWBIT_THREADS");
    cpu_set_t saved, one;
    if (sched_getaffinity(0, sizeof saved, &saved) != 0)
        return;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &saved)) {
            CPU_SET(c, &one);
            break;
        }
    if (sched_setaffinity(0, sizeof one, &one) == 0) {
        CHECK(lb_cpu_count() == 1, "pinned to one core, counts %d", lb_cpu_count());
        sched_setaffinity(0, sizeof saved, &saved);
    }
    CHECK(lb_cpu_count() >= 1, "no cores counted");
}

int main(void)
{
    run_jobs(2, 4000, 64);
    run_jobs(4, 3000, 7);     /* often fewer tasks than threads */
    run_jobs(8, 2000, 300);   /* more threads than this machine has cores */
    run_jobs(3, 2000, 1);     /* one task: the caller alone */
    test_cpu_count();
    return check_finish("test_threadpool");
}
