/* Process-level work split: see dist.h. A process started by mpirun (in a build with MPI)
 * joins the job through the MPI side in lowbit-extras.so (dist_mpi.h); any other process is
 * rank 0 of 1, and every call below is a no-op. */
#include "core/dist.h"
#include "core/dist_mpi.h"
#include "core/extras.h"

#include <stdio.h>
#include <stdlib.h>

static int g_rank, g_size = 1, g_local_size = 1;
/* The MPI side, once joined. */
static const lb_dist_mpi_ops *g_mpi;

/* Open MPI, MPICH and Slurm launchers each leave their mark in the environment; a plain
 * `lowbit ...` does not load MPI at all, so it starts as fast as without it. */
static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                            "MPI_LOCALNRANKS"};

static bool launched_by_mpi(void)
{
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        if (getenv(launcher_vars[i]))
            return true;
    return false;
}

void lb_dist_detach_env(void)
{
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        unsetenv(launcher_vars[i]);
}

/* The module's MPI table, or NULL in a build without MPI (err says why). */
static const lb_dist_mpi_ops *mpi_ops(lb_error *err)
{
#ifdef LOWBIT_HAVE_MPI
    return lb_extras_symbol(LB_DIST_MPI_SYMBOL, err);
#else
    lb_fail(err, "this build has no MPI");
    return NULL;
#endif
}

void lb_dist_init_ops(const lb_dist_mpi_ops *ops, int *argc, char ***argv)
{
    if (g_mpi || !launched_by_mpi())
        return;
    if (ops->init(argc, argv, &g_rank, &g_size, &g_local_size)) {
        fprintf(stderr, "lowbit: MPI_Init failed; running as a single process\n");
        return;
    }
    g_mpi = ops;
}

void lb_dist_init(int *argc, char ***argv)
{
    if (g_mpi || !launched_by_mpi())
        return;
    lb_error err;
    const lb_dist_mpi_ops *ops = mpi_ops(&err);
    if (!ops) {
        fprintf(stderr, "lowbit: started by an MPI launcher, but %s; running as a single process\n",
                err.msg);
        return;
    }
    lb_dist_init_ops(ops, argc, argv);
}

void lb_dist_finalize(void)
{
    if (g_mpi)
        g_mpi->finalize();
    g_mpi = NULL;
}

int lb_dist_rank(void) { return g_rank; }
int lb_dist_size(void) { return g_size; }
int lb_dist_local_size(void) { return g_local_size; }
bool lb_dist_active(void) { return g_size > 1; }

int lb_dist_merge(double *v, size_t n)
{
    return g_size > 1 ? g_mpi->sum_doubles(v, n) : 0;
}

int lb_dist_merge_counts(long long *v, size_t n)
{
    return g_size > 1 ? g_mpi->sum_counts(v, n) : 0;
}

double lb_dist_max(double v)
{
    return g_size > 1 ? g_mpi->max(v) : v;
}

void lb_dist_barrier(void)
{
    if (g_size > 1)
        g_mpi->barrier();
}

int lb_dist_bcast_int(int v)
{
    if (g_size > 1)
        g_mpi->bcast(&v, sizeof v, 0);
    return v;
}

int lb_dist_bcast(void *buf, size_t n, int root)
{
    return g_size > 1 ? g_mpi->bcast(buf, n, root) : 0;
}

int lb_dist_agree(int rc, lb_error *err)
{
    if (g_size <= 1)
        return rc;
    /* The smallest failing rank, or g_size when none failed. */
    int first;
    if (g_mpi->min_int(rc ? g_rank : g_size, &first))
        return lb_fail(err, "MPI_Allreduce failed on rank %d", g_rank);
    if (first == g_size)
        return 0;
    if (!rc)
        lb_fail(err, "process %d of %d failed (its message is above)", first, g_size);
    return -1;
}

/* With one rank there is nobody to talk to: any message is a caller's mistake. */
int lb_dist_send(int to, const int *v, int n)
{
    return g_mpi ? g_mpi->send(to, v, n) : -1;
}

int lb_dist_recv(int *from, int *v, int n)
{
    return g_mpi ? g_mpi->recv(from, v, n) : -1;
}

bool lb_dist_poll(void)
{
    return g_mpi && g_mpi->poll();
}

const char *lb_dist_backend(void)
{
    static char name[96];
    if (!name[0]) {
        lb_error err;
        const lb_dist_mpi_ops *ops = g_mpi ? g_mpi : mpi_ops(&err);
        char lib[88];
        if (ops) {
            ops->library(lib, sizeof lib);
            snprintf(name, sizeof name, "MPI (%s)", lib);
        } else {
            snprintf(name, sizeof name, "none");
        }
    }
    return name;
}
