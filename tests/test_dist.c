/* The process-level split: items owned round-robin, merged arrays equal to what one process
 * computes. Run plainly by CTest (one rank) and under mpirun by test_dist_mpi.sh. */
#include "check.h"
#include "core/dist.h"
#include "core/dist_mpi.h"

#include <math.h>
#include <stdio.h>

int main(int argc, char **argv)
{
#ifdef LOWBIT_HAVE_MPI
    lb_dist_init_ops(&lb_dist_mpi, &argc, &argv);   /* linked in: no module to open */
#else
    lb_dist_init(&argc, &argv);
#endif
    int rank = lb_dist_rank(), size = lb_dist_size();
    CHECK(rank >= 0 && rank < size, "rank %d of %d", rank, size);

    enum { N = 11 };   /* not a multiple of 2 or 3: uneven shares */
    double v[N] = {0};
    long long c[N] = {0};
    int owned = 0;
    for (int i = 0; i < N; i++)
        if (lb_dist_mine(i)) {
            v[i] = sin(i) * 1e-3 + i;   /* values whose sum depends on order */
            c[i] = (long long)i << 40;
            owned++;
        }
    CHECK(owned == N / size + (rank < N % size), "rank %d owns %d items", rank, owned);
    CHECK(lb_dist_merge(v, N) == 0, "merge failed");
    CHECK(lb_dist_merge_counts(c, N) == 0, "merge_counts failed");
    for (int i = 0; i < N; i++) {
        CHECK(v[i] == sin(i) * 1e-3 + i, "item %d: %.17g", i, v[i]);
        CHECK(c[i] == (long long)i << 40, "item %d: %lld", i, c[i]);
    }
    CHECK(lb_dist_max((double)rank) == (double)(size - 1), "max of ranks");
    CHECK(lb_dist_bcast_int(rank == 0 ? 42 : -1) == 42, "broadcast from rank 0");
    lb_dist_barrier();
    printf("rank %d of %d (%s)\n", rank, size, lb_dist_backend());
    lb_dist_finalize();
    return check_finish("test_dist");
}
