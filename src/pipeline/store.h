/* The results store: one SQLite database (results.db) that keeps every pipeline run, the
 * models and methods it made, the stages it ran and every result row, so runs can be listed,
 * shown and compared long after their output directories are gone.
 *
 * Tables: runs (when, config text and hash, lowbit version, machine), methods (per run: name,
 * method, options as JSON; "baseline" is one), models (per method: path, format, bytes, bits per
 * weight), stages (per run: input hash, kind, status, timings) and results (one row per
 * result-schema row, linked to its run, method, model and stage). The database runs in WAL
 * mode and every write is one transaction, so a writer killed at any point leaves the rows of
 * whole stages or none of them. */
#ifndef LB_PIPELINE_STORE_H
#define LB_PIPELINE_STORE_H

#include "core/error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lb_store lb_store;

typedef struct {
    char cpu[256];
    int cores;
    int64_t mem_bytes;
} lb_machine;

/* CPU model, online cores and total memory of this machine (from /proc). */
void lb_machine_probe(lb_machine *m);

/* Opens or creates the database and its tables. */
int lb_store_open(const char *path, lb_store **out, lb_error *err);
void lb_store_close(lb_store *s);

typedef struct {
    const char *config_path, *config_text, *config_hash, *version, *out_dir;
} lb_run_info;

int lb_store_run_begin(lb_store *s, const lb_run_info *ri, const lb_machine *m, int64_t *run_id,
                       lb_error *err);
/* status: "finished", "failed" (a run never finished stays "running"). */
int lb_store_run_end(lb_store *s, int64_t run_id, const char *status, lb_error *err);
/* The newest run of this config hash that did not finish; *run_id 0 when there is none. */
int lb_store_unfinished_run(lb_store *s, const char *config_hash, int64_t *run_id, lb_error *err);

/* Insert or update by (run, name). options_json may be NULL. */
int lb_store_method(lb_store *s, int64_t run, const char *name, const char *method,
                    const char *options_json, int64_t *id, lb_error *err);
/* Insert or update by (run, method). bpw NaN when unknown. */
int lb_store_model(lb_store *s, int64_t run, int64_t method_id, const char *path,
                   const char *format, int64_t bytes, double bpw, int64_t *id, lb_error *err);
/* Insert or update by (run, key). */
int lb_store_stage(lb_store *s, int64_t run, const char *key, const char *kind, const char *name,
                   const char *status, double seconds, bool cached, lb_error *err);
/* Replaces the result rows of (run, stage key) with the objects of `results` (the schema's
 * array), all in one transaction together with the stage's status "done". */
int lb_store_results(lb_store *s, int64_t run, int64_t method_id, int64_t model_id,
                     const char *stage_key, json_t *results, lb_error *err);

/* ---- reading ---- */

typedef struct {
    int64_t id;
    char *name, *method, *options;    /* options: JSON text or "" */
    char *model_path, *format;        /* "" when no model yet */
    int64_t model_bytes;
    double bpw;                        /* NaN: unknown */
} lb_store_method_row;

typedef struct {
    int64_t id;
    const lb_store_method_row *m;      /* into the run's methods */
    char *model, *format, *task, *metric, *params, *stage;
    double value, stderr_, seconds;    /* stderr NaN: none */
    int64_t n;
    int batch;                         /* params.batch, 0 when absent */
} lb_store_result_row;

typedef struct {
    char *key, *kind, *name, *status;
    double seconds;
    bool cached;
} lb_store_stage_row;

typedef struct {
    int64_t id;
    char *started, *finished, *status;
    char *config_path, *config_text, *config_hash, *version, *out_dir;
    lb_machine machine;
    lb_store_method_row *methods;
    int n_methods;
    lb_store_result_row *results;
    int n_results;
    lb_store_stage_row *stages;
    int n_stages;
} lb_store_run;

/* id 0: the newest run. */
int lb_store_load_run(lb_store *s, int64_t id, lb_store_run *run, lb_error *err);
void lb_store_run_free(lb_store_run *run);

/* Run headers (no methods, results or stages), newest first; n_results counted. */
int lb_store_list_runs(lb_store *s, lb_store_run **runs, int *n, lb_error *err);
void lb_store_runs_free(lb_store_run *runs, int n);

#endif
