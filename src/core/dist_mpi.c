/* MPI calls behind core/dist.c: see dist_mpi.h. */
#include "core/dist_mpi.h"

#ifdef LOWBIT_HAVE_MPI
#include <mpi.h>
#include <stdio.h>

static int g_rank;

static int mpi_init(int *argc, char ***argv, int *rank, int *size, int *local_size)
{
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    *rank = g_rank;
    *local_size = 1;
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, local_size);
        MPI_Comm_free(&node);
    }
    return 0;
}

static void mpi_finalize(void)
{
    MPI_Finalize();
}

/* MPI counts are ints: large arrays go in slices. */
#define SLICE (1 << 28)

static int sum_in_place(void *v, size_t n, size_t elem, MPI_Datatype type)
{
    for (size_t o = 0; o < n; o += SLICE) {
        int len = (int)(n - o < SLICE ? n - o : SLICE);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)v + o * elem, len, type, MPI_SUM,
                          MPI_COMM_WORLD) != MPI_SUCCESS) {
            fprintf(stderr, "lowbit: MPI_Allreduce failed on rank %d\n", g_rank);
            return -1;
        }
    }
    return 0;
}

static int sum_doubles(double *v, size_t n)
{
    return sum_in_place(v, n, sizeof *v, MPI_DOUBLE);
}

static int sum_counts(long long *v, size_t n)
{
    return sum_in_place(v, n, sizeof *v, MPI_LONG_LONG);
}

static double max_double(double v)
{
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

static int min_int(int v, int *out)
{
    return MPI_Allreduce(&v, out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

static void barrier(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
}

static int bcast(void *buf, size_t n, int root)
{
    for (size_t o = 0; o < n; o += SLICE) {
        int len = (int)(n - o < SLICE ? n - o : SLICE);
        if (MPI_Bcast((char *)buf + o, len, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) {
            fprintf(stderr, "lowbit: MPI_Bcast from rank %d failed on rank %d\n", root, g_rank);
            return -1;
        }
    }
    return 0;
}

static int send_ints(int to, const int *v, int n)
{
    if (MPI_Send(v, n, MPI_INT, to, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "lowbit: MPI_Send from rank %d to %d failed\n", g_rank, to);
        return -1;
    }
    return 0;
}

static int recv_ints(int *from, int *v, int n)
{
    MPI_Status st;
    if (MPI_Recv(v, n, MPI_INT, MPI_ANY_SOURCE, 0, MPI_COMM_WORLD, &st) != MPI_SUCCESS) {
        fprintf(stderr, "lowbit: MPI_Recv on rank %d failed\n", g_rank);
        return -1;
    }
    *from = st.MPI_SOURCE;
    return 0;
}

static bool poll_message(void)
{
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, 0, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    return flag != 0;
}

static void library(char *name, size_t size)
{
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    int n = 0;
    while (lib[n] && lib[n] != ',' && lib[n] != '\n' && n < 80)
        n++;
    snprintf(name, size, "%.*s", n, lib);
}

const lb_dist_mpi_ops lb_dist_mpi = {
    mpi_init, mpi_finalize, sum_doubles, sum_counts, max_double, min_int, barrier, bcast,
    send_ints, recv_ints, poll_message, library,
};

#endif
