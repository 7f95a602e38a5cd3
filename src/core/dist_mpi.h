/* The MPI side of core/dist.c, in lowbit-extras.so (core/extras.h) so that a process that is
 * not an MPI rank never loads the MPI library. dist.c keeps the rank and size; these
 * functions only talk to the other ranks, and exist in builds with MPI. */
#ifndef LB_DIST_MPI_H
#define LB_DIST_MPI_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    /* Joins the job: 0 with the rank, the size and the ranks on this machine, -1 when
     * MPI_Init failed. */
    int (*init)(int *argc, char ***argv, int *rank, int *size, int *local_size);
    void (*finalize)(void);
    /* In-place element-wise sums over all ranks; -1 on an MPI failure. */
    int (*sum_doubles)(double *v, size_t n);
    int (*sum_counts)(long long *v, size_t n);
    double (*max)(double v);
    /* The smallest of every rank's v, in *out; -1 on an MPI failure. */
    int (*min_int)(int v, int *out);
    void (*barrier)(void);
    int (*bcast)(void *buf, size_t n, int root);
    int (*send)(int to, const int *v, int n);
    int (*recv)(int *from, int *v, int n);
    bool (*poll)(void);
    /* "Open MPI 4.1.4": the library's name and version. */
    void (*library)(char *name, size_t size);
} lb_dist_mpi_ops;

/* The module's table, found by name (LB_DIST_MPI_SYMBOL). */
#define LB_DIST_MPI_SYMBOL "lb_dist_mpi"
extern const lb_dist_mpi_ops lb_dist_mpi;

/* lb_dist_init with a table at hand, for a program linked with the MPI side itself (the
 * test programs, which link everything) rather than opening the module. */
void lb_dist_init_ops(const lb_dist_mpi_ops *ops, int *argc, char ***argv);

#endif
