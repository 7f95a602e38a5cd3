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

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>

/* Joins the MPI job when the environment says this process was started by mpirun (and MPI
 * was compiled in). Call once, first thing in main. */
void lb_dist_init(int *argc, char ***argv);
void lb_dist_finalize(void);

int lb_dist_rank(void);
int lb_dist_size(void);
bool lb_dist_active(void);   /* more than one rank */
int lb_dist_local_size(void);   /* ranks on this machine, this one included */

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
/* Broadcasts n bytes at buf from rank root to every rank's buf. -1 on an MPI failure. */
int lb_dist_bcast(void *buf, size_t n, int root);

/* Every rank passes its own status (0 or -1 with err set); all get -1 when any rank failed,
 * and a rank that did not fail itself gets a message naming the first rank that did. Keeps
 * the ranks in step: none waits in a merge that a failed rank will never reach. */
int lb_dist_agree(int rc, lb_error *err);

/* Point-to-point messages of a few ints, for work queues (the pipeline's stages): send to a
 * rank; wait for the next message from any rank (its rank in *from); or only look whether
 * one is waiting. Each message is n ints, the same n at both ends. -1 on an MPI failure. */
int lb_dist_send(int to, const int *v, int n);
int lb_dist_recv(int *from, int *v, int n);
bool lb_dist_poll(void);

/* Before exec'ing another lowbit from a rank: removes the launcher's marks from this
 * process's environment so that the child runs as a single process instead of trying to
 * join the MPI job as a rank. */
void lb_dist_detach_env(void);

/* "MPI (Open MPI 4.1.4)" or "none": what this build can do, for --version and reports. */
const char *lb_dist_backend(void);

#endif
