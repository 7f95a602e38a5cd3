/* The pipeline driver: from a validated config, the list of stages (quantize each method;
 * perplexity, KLD and multiple-choice tasks of every model; a benchmark of every model; the
 * report), each run as a child process of this program with its JSON result written
 * atomically to a stage file and imported into the results store.
 *
 * A stage is keyed by a hash of its command line, the identity (size and mtime) of every
 * file it reads and the lowbit version; a stage whose file exists under that key is not run
 * again, so a re-run or --resume after Ctrl-C or kill -9 does only what is missing. */
#ifndef LB_PIPELINE_H
#define LB_PIPELINE_H

#include "core/error.h"

#include <stdbool.h>

typedef struct {
    const char *config_path;
    const char *out_dir;   /* NULL: "out", or the parent of report.output */
    const char *db_path;   /* NULL: <out>/results.db */
    const char *only;      /* NULL, a stage kind (quantize, perplexity, kld, mc, bench, report),
                            * a method name, or "baseline" */
    bool resume;           /* continue the newest unfinished run of this config */
    bool dry_run;          /* list the stages and their cache state, run nothing */
    const char *exe;       /* program run for the stages; NULL: this one (/proc/self/exe) */
    const char *version;
} lb_pl_options;

/* Returns 0 when every stage succeeded (or was cached) and the report was written; -1 with
 * err set otherwise (a failing stage does not stop the independent ones). */
int lb_pipeline_run(const lb_pl_options *o, lb_error *err);

#endif
