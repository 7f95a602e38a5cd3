/* Process-level work split: see dist.h. Compiled with MPI when LOWBIT_HAVE_MPI is defined;
 * without it, a single-rank stand-in with the same interface. */
#include "core/dist.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef LOWBIT_HAVE_MPI
#include <mpi.h>

static int g_rank, g_size = 1, g_local_size = 1;
static bool g_joined;

/* Open MPI, MPICH and Slurm launchers each leave their mark in the environment; a plain
 * `lowbit ...` does not initialize MPI at all, so it starts as fast as without it. */
static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                            "MPI_LOCALNRANKS"};

static bool launched_by_mpi(void)
{
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        if (getenv(launcher_vars[i])) return true;
    return false;
}

void lb_dist_detach_env(void)
{
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        unsetenv(launcher_vars[i]);
}

void lb_dist_init(int *argc, char ***argv)
{
    if (g_joined || !launched_by_mpi()) return;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "lowbit: MPI_Init failed; running as a single process\n");
        return;
    }
    g_joined = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &g_local_size);
        MPI_Comm_free(&node);
    }
}

void lb_dist_finalize(void)
{
    if (g_joined) MPI_Finalize();
    g_joined = false;
}

int lb_dist_rank(void) { return g_rank; }
int lb_dist_size(void) { return g_size; }
int lb_dist_local_size(void) { return g_local_size; }
bool lb_dist_active(void) { return g_size > 1; }

/* MPI counts are ints: large arrays go in slices. */
#define SLICE (1 << 28)

int lb_dist_merge(double *v, size_t n)
{
    if (g_size <= 1) return 0;
    for (size_t o = 0; o < n; o += SLICE) {
        int len = (int)(n - o < SLICE ? n - o : SLICE);
        if (MPI_Allreduce(MPI_IN_PLACE, v + o, len, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD)) {
            fprintf(stderr, "lowbit: MPI_Allreduce failed on rank %d\n", g_rank);
            return -1;
        }
    }
    return 0;
}

int lb_dist_merge_counts(long long *v, size_t n)
{
    if (g_size <= 1) return 0;
    for (size_t o = 0; o < n; o += SLICE) {
        int len = (int)(n - o < SLICE ? n - o : SLICE);
        if (MPI_Allreduce(MPI_IN_PLACE, v + o, len, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD)) {
            fprintf(stderr, "lowbit: MPI_Allreduce failed on rank %d\n", g_rank);
            return -1;
        }
    }
    return 0;
}

double lb_dist_max(double v)
{
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

void lb_dist_barrier(void)
{
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

int lb_dist_bcast_int(int v)
{
    if (g_size > 1) MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return v;
}

int lb_dist_bcast(void *buf, size_t n, int root)
{
    if (g_size <= 1) return 0;
    for (size_t o = 0; o < n; o += SLICE) {
        int len = (int)(n - o < SLICE ? n - o : SLICE);
        if (MPI_Bcast((char *)buf + o, len, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) {
            fprintf(stderr, "lowbit: MPI_Bcast from rank %d failed on rank %d\n", root, g_rank);
            return -1;
        }
    }
    return 0;
}

int lb_dist_agree(int rc, lb_error *err)
{
    if (g_size <= 1) return rc;
    /* The smallest failing rank, or g_size when none failed. */
    int mine = rc ? g_rank : g_size, first;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return lb_fail(err, "MPI_Allreduce failed on rank %d", g_rank);
    if (first == g_size) return 0;
    if (!rc) lb_fail(err, "process %d of %d failed (its message is above)", first, g_size);
    return -1;
}

int lb_dist_send(int to, const int *v, int n)
{
    if (MPI_Send(v, n, MPI_INT, to, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "lowbit: MPI_Send from rank %d to %d failed\n", g_rank, to);
        return -1;
    }
    return 0;
}

int lb_dist_recv(int *from, int *v, int n)
{
    MPI_Status st;
    if (MPI_Recv(v, n, MPI_INT, MPI_ANY_SOURCE, 0, MPI_COMM_WORLD, &st) != MPI_SUCCESS) {
        fprintf(stderr, "lowbit: MPI_Recv on rank %d failed\n", g_rank);
        return -1;
    }
    *from = st.MPI_SOURCE;
    return 0;
}

bool lb_dist_poll(void)
{
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, 0, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    return flag != 0;
}

const char *lb_dist_backend(void)
{
    static char name[96];
    if (!name[0]) {
        char lib[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(lib, &len);
        int n = 0;
        while (lib[n] && lib[n] != ',' && lib[n] != '\n' && n < 80) n++;
        snprintf(name, sizeof name, "MPI (%.*s)", n, lib);
    }
    return name;
}

#else

void lb_dist_init(int *argc, char ***argv) { (void)argc, (void)argv; }
void lb_dist_finalize(void) {}
int lb_dist_rank(void) { return 0; }
int lb_dist_size(void) { return 1; }
int lb_dist_local_size(void) { return 1; }
bool lb_dist_active(void) { return false; }
int lb_dist_merge(double *v, size_t n) { (void)v, (void)n; return 0; }
int lb_dist_merge_counts(long long *v, size_t n) { (void)v, (void)n; return 0; }
double lb_dist_max(double v) { return v; }
void lb_dist_barrier(void) {}
int lb_dist_bcast_int(int v) { return v; }
int lb_dist_agree(int rc, lb_error *err) { (void)err; return rc; }
int lb_dist_bcast(void *buf, size_t n, int root) { (void)buf, (void)n, (void)root; return 0; }
/* With one rank there is nobody to talk to: any message is a caller's mistake. */
int lb_dist_send(int to, const int *v, int n) { (void)to, (void)v, (void)n; return -1; }
int lb_dist_recv(int *from, int *v, int n) { (void)from, (void)v, (void)n; return -1; }
bool lb_dist_poll(void) { return false; }
void lb_dist_detach_env(void) {}

#endif
