/* lowbit pipeline: one YAML config → quantized models, evaluations, benchmarks, a report. */
#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/config.h"
#include "pipeline/pipeline.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_pipeline(int argc, char **argv)
{
    const char *out = NULL, *only = NULL, *db = NULL;
    bool resume = false, dry = false, check = false;
    const lb_opt opts[] = {
        {"out", 'o', OPT_STRING, &out, "DIR", "output directory: models/, stages/, results.db, report/ "
                                              "(default: the parent of report.output, else out)"},
        {"resume", 0, OPT_FLAG, &resume, NULL, "continue the newest unfinished run of this config "
                                               "(finished stages are always reused)"},
        {"only", 0, OPT_STRING, &only, "STAGE", "run only quantize|perplexity|kld|mc|bench|report, "
                                                "baseline, or one method by name"},
        {"db", 0, OPT_STRING, &db, "PATH", "results database (default: OUT/results.db)"},
        {"dry-run", 'n', OPT_FLAG, &dry, NULL, "list the stages and whether each is cached; run nothing"},
        {"check", 0, OPT_FLAG, &check, NULL, "validate the config and exit"},
    };
    const lb_cmd_spec spec = {
        "lowbit pipeline CONFIG.yaml [--out DIR] [--resume] [--only STAGE] [--db PATH]",
        "Runs the job a YAML config describes: quantizes the model with each method, evaluates "
        "the baseline and every quantized model (perplexity, KLD, multiple-choice tasks), "
        "benchmarks them, stores every result in a SQLite database and writes the report. Each "
        "stage runs as a child process and is cached by a hash of its inputs, so running again "
        "(or with --resume after an interruption) does only what is missing.",
        opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int n_pos = 0;
    int rc = lb_args_parse(&spec, argc, argv, pos, &n_pos);
    if (rc)
        return rc > 0 ? 0 : 1;
    lb_error err;
    if (check) {
        lb_pl_config cfg;
        if (lb_pl_config_load(pos[0], &cfg, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        printf("%s: ok (%d methods)\n", pos[0], cfg.n_methods);
        lb_pl_config_free(&cfg);
        return 0;
    }
    /* Tests point the stages at a stand-in program; everyone else runs this one. */
    const lb_pl_options o = {pos[0], out, db, only, resume, dry, getenv("LOWBIT_PIPELINE_EXE"),
                             LOWBIT_VERSION};
    if (lb_pipeline_run(&o, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}
