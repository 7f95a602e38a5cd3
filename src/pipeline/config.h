/* The pipeline's YAML job description: the model, the calibration text, the quantization
 * methods with their options, the evaluations, the benchmark and the report. Everything is
 * checked when the file is read, before any work starts, so a typo fails in a second with the
 * key and its line ("config.yaml:7: methods[1].bits: 5 is not one of 2, 3, 4, 8 for gptq")
 * rather than an hour into a run.
 *
 * Relative input paths are looked up in the current directory first, then beside the config
 * file; the resolved path is stored. */
#ifndef LB_PIPELINE_CONFIG_H
#define LB_PIPELINE_CONFIG_H

#include "core/error.h"

#include <stdbool.h>

typedef struct {
    char *name;         /* unique, [A-Za-z0-9._-]+: names files and report rows */
    char *method;       /* rtn, gptq, awq, smoothquant */
    int bits;
    int group_size;     /* 0: per output channel */
    bool act_order;
    bool sym;
    bool sym_set;       /* sym given in the file (otherwise the method's default) */
    double alpha;       /* smoothquant migration strength; NaN: default */
    double damp;        /* gptq dampening; NaN: default */
    int line;
} lb_pl_method;

typedef struct {
    char *path;          /* the config file as given */
    char *text;          /* its bytes, stored with every run */
    char *model;         /* resolved */
    char *calib_file;    /* resolved; NULL when no calibration block */
    int calib_samples, calib_seqlen;
    lb_pl_method *methods;
    int n_methods;
    char **ppl;          /* dataset names or resolved files */
    int n_ppl;
    char **tasks;
    int n_tasks;
    bool kld;
    int limit;           /* multiple-choice items per task; 0 = all */
    int ctx;             /* perplexity context; 0 = the command's default */
    int ppl_chunks;      /* perplexity windows; 0 = all */
    bool bench;          /* a benchmark block is present */
    int *batch_sizes;
    int n_batch;
    int prompt, gen, reps;
    char **formats;      /* md, html, pdf, csv, json */
    int n_formats;
    char *report_output; /* NULL: <out>/report */
} lb_pl_config;

/* Reads and validates path. On error *cfg is left empty and err names file:line: key. */
int lb_pl_config_load(const char *path, lb_pl_config *cfg, lb_error *err);
/* Same, from text already in memory (path names it in messages and anchors relative paths). */
int lb_pl_config_parse(const char *path, const char *text, size_t len, lb_pl_config *cfg,
                       lb_error *err);
void lb_pl_config_free(lb_pl_config *cfg);

/* Whether name is a perplexity dataset the perplexity command knows by name. */
bool lb_pl_known_dataset(const char *name);

#endif
