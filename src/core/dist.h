/* Work split across processes with MPI, when lowbit runs under mpirun and was built with it;
 * otherwise one process of rank 0 among 1, and every call below is a no-op.
 *
 * Results must not depend on the number of ranks, to the last digit. So work is divided into
 * numbered items (chunks of text, benchmark items, pipeline stages); item i belongs to rank
 * i % size; each rank writes its items' figures into slots of a shared array, and
 * lb_dist_merge adds the arrays element-wise. Every slot is written by exactly one rank and
 * the others contribute exact zeros, so the merged array equals what one process computes,
 * and the caller folds it in item order as a single process would. */
#ifndef LB_DIST_H
#define LB_DIST_H

#include <stdbool.h>
#include <stddef.h>

/* Joins the MPI job when the environment says this process was started by mpirun (and MPI
 * was compiled in). Call once, first thing in main. */
void lb_dist_init(int *argc, char ***argv);
void lb_dist_finalize(void);

int lb_dist_rank(void);
int lb_dist_size(void);
bool lb_dist_active(void);   /* more than one rank */

/* Whether item i is this rank's. */
static inline bool lb_dist_mine(long i)
{
    return i % lb_dist_size() == lb_dist_rank();
}

/* Element-wise sum of v over all ranks, result on every rank. Returns 0, or -1 on an MPI
 * failure (the message goes to stderr). */
int lb_dist_merge(double *v, size_t n);
/* The same for 64-bit counts. */
int lb_dist_merge_counts(long long *v, size_t n);
/* Largest value over all ranks (e.g. a peak memory figure), result on every rank. */
double lb_dist_max(double v);
void lb_dist_barrier(void);
/* Broadcasts an int from rank 0 (e.g. a status that all ranks must act on). */
int lb_dist_bcast_int(int v);

/* "MPI (Open MPI 4.1.4)" or "none": what this build can do, for --version and reports. */
const char *lb_dist_backend(void);

#endif
