/* The benchmark's building blocks: percentiles as numpy computes them, the batch-list parser,
 * the resident-memory figures from /proc (a 64 MiB mapping raises the high-water mark by that
 * much, and the reset brings it back down), and the bandwidth measurement's checks. */
#include "check.h"
#include "bench/bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void check_percentiles(void)
{
    /* Reference: /usr/bin/python3 -c "import numpy as np; print(np.percentile(ARR, Q))" for
     * Q in 0, 50, 95, 99, 100 (numpy's default, linear interpolation). */
    static const struct {
        double v[8];
        int n;
        double want[5];
    } cases[] = {
        {{1, 2, 3}, 3, {1.0, 2.0, 2.9, 2.98, 3.0}},
        {{10, 20, 30, 40, 50, 60, 70}, 7, {10.0, 40.0, 67.0, 69.4, 70.0}},
        {{5.5}, 1, {5.5, 5.5, 5.5, 5.5, 5.5}},
        {{0.25, 8.0}, 2, {0.25, 4.125, 7.6125, 7.9225, 8.0}},
    };
    static const double qs[5] = {0, 50, 95, 99, 100};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int k = 0; k < 5; k++) {
            double got = lb_bench_percentile(cases[c].v, cases[c].n, qs[k]);
            CHECK(fabs(got - cases[c].want[k]) < 1e-12, "case %zu q%g: %.15g, want %.15g", c,
                  qs[k], got, cases[c].want[k]);
        }
    CHECK(isnan(lb_bench_percentile(NULL, 0, 50)), "empty input gives NaN");
}

static void check_parse(void)
{
    lb_error err;
    int *v, n;
    CHECK(lb_bench_parse_ints("1,4,8,16,32", "--batch", 4096, &v, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 5 && v[0] == 1 && v[1] == 4 && v[2] == 8 && v[3] == 16 && v[4] == 32, "values");
    free(v);
    CHECK(lb_bench_parse_ints("4096", "--batch", 4096, &v, &n, &err) == 0 && n == 1 &&
          v[0] == 4096, "upper bound accepted");
    free(v);
    static const char *bad[] = {"", "0", "1,,4", "4,", ",4", "1,x", "-1", "1 ,2", "4097",
                                "99999999999999999999", "2.5", "+3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        int rc = lb_bench_parse_ints(bad[i], "--batch", 4096, &v, &n, &err);
        CHECK(rc == -1 && v == NULL && n == 0, "'%s' accepted", bad[i]);
        CHECK(strstr(err.msg, "--batch") && !strchr(err.msg, '\n'), "'%s': message '%s'",
              bad[i], err.msg);
    }
    /* More than 64 values is refused. */
    char many[400] = "";
    for (int i = 0; i < 65; i++)
        strcat(many, i ? ",1" : "1");
    CHECK(lb_bench_parse_ints(many, "--batch", 4096, &v, &n, &err) == -1, "65 values accepted");
}

static void check_memory(void)
{
    int64_t rss = lb_bench_proc_bytes("VmRSS"), hwm = lb_bench_proc_bytes("VmHWM");
    CHECK(rss > 0 && hwm >= rss, "VmRSS %lld, VmHWM %lld", (long long)rss, (long long)hwm);
    CHECK(lb_bench_proc_bytes("NoSuchField") == -1, "unknown field");
    if (lb_bench_reset_peak() != 0) {
        printf("clear_refs refused here: peak-reset checks skipped\n");
        return;
    }
    /* mmap, not malloc: a sanitizer's allocator would keep freed memory resident. */
    const size_t size = (size_t)64 << 20;
    int64_t before = lb_bench_proc_bytes("VmHWM");
    unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap");
    if (p == MAP_FAILED)
        return;
    memset(p, 1, size);
    int64_t peak = lb_bench_proc_bytes("VmHWM");
    CHECK(peak - before >= (int64_t)(60u << 20), "touching 64 MiB raised the peak by %lld bytes",
          (long long)(peak - before));
    munmap(p, size);
    CHECK(lb_bench_reset_peak() == 0, "second reset");
    int64_t after = lb_bench_proc_bytes("VmHWM");
    CHECK(after <= peak - (int64_t)(60u << 20), "reset left the peak at %lld (was %lld)",
          (long long)after, (long long)peak);
}

static void check_membw(void)
{
    lb_error err;
    double bps;
    CHECK(lb_bench_membw(1, (size_t)8 << 20, 2, &bps, &err) == 0, "%s", err.msg);
    CHECK(bps > 1e8 && isfinite(bps), "bandwidth %g bytes/s", bps);
    /* An odd size: the slices' tails are read too. */
    CHECK(lb_bench_membw(3, ((size_t)5 << 20) + 24, 1, &bps, &err) == 0 && bps > 0, "%s",
          err.msg);
    CHECK(lb_bench_membw(1, 1000, 1, &bps, &err) == -1 && isnan(bps), "tiny buffer accepted");
    CHECK(lb_bench_membw(1, (size_t)8 << 20, 0, &bps, &err) == -1, "zero passes accepted");
    CHECK(lb_bench_membw(-1, (size_t)8 << 20, 1, &bps, &err) == -1, "negative threads accepted");
}

static void check_params(void)
{
    lb_error err;
    const char *models[] = {"a.gguf"};
    int batches[] = {1, 4};
    lb_bench_params p = {models, 1, -1, batches, 2, 8, 8, 3, 1, 1, 1, false};
    CHECK(lb_bench_check(&p, &err) == 0, "%s", err.msg);
    lb_bench_params q = p;
    q.baseline = 1;
    CHECK(lb_bench_check(&q, &err) == -1 && strstr(err.msg, "--vs"), "baseline out of range");
    q = p;
    q.n_batches = 0;
    CHECK(lb_bench_check(&q, &err) == -1 && strstr(err.msg, "--batch"), "no batch");
    q = p;
    q.gen = 0;
    CHECK(lb_bench_check(&q, &err) == -1 && strstr(err.msg, "--gen"), "gen 0");
    q = p;
    q.n_models = 0;
    CHECK(lb_bench_check(&q, &err) == -1 && strstr(err.msg, "-m"), "no model");
    lb_bench_row *rows = (lb_bench_row *)1;
    int n = 7;
    q = p;
    q.reps = 0;
    CHECK(lb_bench_run(&q, &rows, &n, &err) == -1 && rows == NULL && n == 0, "run checks");
}

int main(void)
{
    check_percentiles();
    check_parse();
    check_memory();
    check_membw();
    check_params();
    return check_finish("test_bench_stats");
}
