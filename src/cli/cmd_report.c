/* lowbit report: the report of one run of the results store, in the formats asked for. */
#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/store.h"
#include "report/report.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_report(int argc, char **argv)
{
    const char *db = "results.db", *formats = "md,html,pdf,csv,json", *out = "report";
    int run_id = 0;
    const lb_opt opts[] = {
        {"db", 0, OPT_STRING, &db, "PATH", "results database (default results.db)"},
        {"run", 0, OPT_INT, &run_id, "ID", "run to report (default: the newest)"},
        {"format", 'f', OPT_STRING, &formats, "LIST", "comma-separated: md,html,pdf,csv,json (default all)"},
        {"out", 'o', OPT_STRING, &out, "DIR", "output directory (default report)"},
    };
    const lb_cmd_spec spec = {
        "lowbit report [--db results.db] [--run ID] --format md,html,pdf,csv,json -o DIR",
        "Writes the report of a pipeline run from the results store: an executive summary, "
        "recommendations per use case, comparison tables and charts (accuracy vs speedup, "
        "perplexity vs bits per weight with the Pareto front, memory, latency percentiles, "
        "throughput), and the run's config, machine and lowbit version.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    lb_error err;
    unsigned mask;
    if (run_id < 0) {
        fprintf(stderr, "report: --run is %d, expected a run id (1 or more)\n", run_id);
        return 1;
    }
    if (lb_report_parse_formats(formats, &mask, &err)) {
        fprintf(stderr, "report: %s\n", err.msg);
        return 1;
    }
    FILE *probe = fopen(db, "rb");
    if (!probe) {
        fprintf(stderr, "report: %s: no such results database\n", db);
        return 1;
    }
    fclose(probe);
    lb_store *s;
    if (lb_store_open(db, &s, &err)) {
        fprintf(stderr, "report: %s\n", err.msg);
        return 1;
    }
    lb_store_run run;
    rc = lb_store_load_run(s, run_id, &run, &err);
    if (rc == 0) {
        rc = lb_report_write(&run, out, mask, &err);
        lb_store_run_free(&run);
    }
    lb_store_close(s);
    if (rc) {
        fprintf(stderr, "report: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "report: written to %s\n", out);
    return 0;
}
