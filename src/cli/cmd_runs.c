/* lowbit runs: the results store from the command line — list the runs, show one, compare two
 * figure by figure. */
#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == 0 || *end || errno || v <= 0) {
        fprintf(stderr, "runs: \"%s\" is not a run id (a positive integer; lowbit runs list shows them)\n", s);
        return -1;
    }
    *id = v;
    return 0;
}

static void fmt_value(char *out, size_t n, double v, double se)
{
    if (!isfinite(v))
        snprintf(out, n, "-");
    else if (isfinite(se))
        snprintf(out, n, "%.6g ± %.3g", v, se);
    else
        snprintf(out, n, "%.6g", v);
}

static void show(const lb_store_run *r)
{
    printf("run %lld  %s  started %s  finished %s\n", (long long)r->id, r->status, r->started,
           r->finished[0] ? r->finished : "-");
    printf("config %s (sha256 %.16s)  lowbit %s\n", r->config_path, r->config_hash, r->version);
    printf("machine %s, %d cores, %.1f GiB\n\n", r->machine.cpu, r->machine.cores,
           (double)r->machine.mem_bytes / (1 << 30));
    printf("%-20s %-12s %-22s %12s %8s  %s\n", "method", "kind", "format", "bytes", "bpw", "options");
    for (int i = 0; i < r->n_methods; i++) {
        const lb_store_method_row *m = &r->methods[i];
        printf("%-20s %-12s %-22s %12lld %8.3f  %s\n", m->name, m->method, m->format[0] ? m->format : "-",
               (long long)m->model_bytes, m->bpw, m->options);
    }
    printf("\n%-20s %-14s %-24s %6s %24s %10s\n", "method", "task", "metric", "batch", "value", "n");
    for (int i = 0; i < r->n_results; i++) {
        const lb_store_result_row *x = &r->results[i];
        char v[64], b[16] = "";
        fmt_value(v, sizeof v, x->value, x->stderr_);
        if (x->batch)
            snprintf(b, sizeof b, "%d", x->batch);
        printf("%-20s %-14s %-24s %6s %24s %10lld\n", x->m ? x->m->name : "?", x->task, x->metric, b, v,
               (long long)x->n);
    }
    int failed = 0;
    for (int i = 0; i < r->n_stages; i++)
        failed += strcmp(r->stages[i].status, "failed") == 0;
    printf("\n%d stages (%d failed)\n", r->n_stages, failed);
}

static const lb_store_result_row *find_row(const lb_store_run *r, const lb_store_result_row *x)
{
    for (int i = 0; i < r->n_results; i++) {
        const lb_store_result_row *y = &r->results[i];
        if (y->m && x->m && strcmp(y->m->name, x->m->name) == 0 && strcmp(y->task, x->task) == 0 &&
            strcmp(y->metric, x->metric) == 0 && y->batch == x->batch)
            return y;
    }
    return NULL;
}

static void compare(const lb_store_run *a, const lb_store_run *b)
{
    printf("run %lld (%s) vs run %lld (%s)\n\n", (long long)a->id, a->started, (long long)b->id, b->started);
    printf("%-20s %-14s %-24s %6s %14s %14s %12s %9s\n", "method", "task", "metric", "batch", "A", "B",
           "B - A", "change");
    int only_a = 0, shared = 0;
    for (int i = 0; i < a->n_results; i++) {
        const lb_store_result_row *x = &a->results[i], *y = find_row(b, x);
        if (!y) {
            only_a++;
            continue;
        }
        shared++;
        char bs[16] = "", pct[32] = "";
        if (x->batch)
            snprintf(bs, sizeof bs, "%d", x->batch);
        if (isfinite(x->value) && isfinite(y->value) && x->value != 0)
            snprintf(pct, sizeof pct, "%+.2f%%", 100 * (y->value - x->value) / fabs(x->value));
        printf("%-20s %-14s %-24s %6s %14.6g %14.6g %+12.4g %9s\n", x->m->name, x->task, x->metric, bs,
               x->value, y->value, y->value - x->value, pct);
    }
    int only_b = 0;
    for (int i = 0; i < b->n_results; i++)
        only_b += find_row(a, &b->results[i]) == NULL;
    printf("\n%d figures in both, %d only in run %lld, %d only in run %lld\n", shared, only_a,
           (long long)a->id, only_b, (long long)b->id);
}

int cmd_runs(int argc, char **argv)
{
    const char *db = "results.db";
    const lb_opt opts[] = {
        {"db", 0, OPT_STRING, &db, "PATH", "results database (default results.db)"},
    };
    const lb_cmd_spec spec = {
        "lowbit runs list | show ID | compare ID ID  [--db PATH]",
        "Lists the pipeline runs kept in the results store, shows one run's methods and figures, "
        "or compares two runs figure by figure (same method, task, metric and batch size).",
        opts, 1, 1, 3};
    const char *pos[3];
    int n = 0;
    int rc = lb_args_parse(&spec, argc, argv, pos, &n);
    if (rc)
        return rc > 0 ? 0 : 1;
    const char *verb = pos[0];
    int want = strcmp(verb, "list") == 0 ? 1 : strcmp(verb, "show") == 0 ? 2 : strcmp(verb, "compare") == 0 ? 3 : 0;
    if (!want) {
        fprintf(stderr, "runs: \"%s\" is not one of list, show, compare\n", verb);
        return 1;
    }
    if (n != want) {
        fprintf(stderr, "runs %s: expected %s\n", verb, want == 1 ? "no arguments" : want == 2 ? "one run id" : "two run ids");
        return 1;
    }
    int64_t ids[2] = {0, 0};
    for (int i = 1; i < n; i++)
        if (parse_id(pos[i], &ids[i - 1]))
            return 1;
    FILE *probe = fopen(db, "rb");
    if (!probe) {
        fprintf(stderr, "runs: %s: no such results database\n", db);
        return 1;
    }
    fclose(probe);
    lb_store *s;
    lb_error err;
    if (lb_store_open(db, &s, &err)) {
        fprintf(stderr, "runs: %s\n", err.msg);
        return 1;
    }
    rc = 0;
    if (want == 1) {
        lb_store_run *runs;
        int nr;
        if (lb_store_list_runs(s, &runs, &nr, &err))
            rc = -1;
        else {
            printf("%5s  %-20s  %-20s  %-9s  %7s  %s\n", "id", "started", "finished", "status", "results", "config");
            for (int i = 0; i < nr; i++)
                printf("%5lld  %-20s  %-20s  %-9s  %7d  %s\n", (long long)runs[i].id, runs[i].started,
                       runs[i].finished[0] ? runs[i].finished : "-", runs[i].status, runs[i].n_results,
                       runs[i].config_path);
            lb_store_runs_free(runs, nr);
        }
    } else {
        lb_store_run a, b;
        if (lb_store_load_run(s, ids[0], &a, &err))
            rc = -1;
        else if (want == 2) {
            show(&a);
            lb_store_run_free(&a);
        } else {
            if (lb_store_load_run(s, ids[1], &b, &err))
                rc = -1;
            else {
                compare(&a, &b);
                lb_store_run_free(&b);
            }
            lb_store_run_free(&a);
        }
    }
    lb_store_close(s);
    if (rc) {
        fprintf(stderr, "runs: %s\n", err.msg);
        return 1;
    }
    return 0;
}
