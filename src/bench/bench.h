/* Performance benchmark: request latency and throughput of one or more models at several batch
 * sizes, in one process, with the models interleaved rep by rep so that drift on a shared
 * machine hits them all alike. A batch of B requests is B sequences (an engine with B slots)
 * whose prompts are prefilled in one forward pass and which then decode one token each per
 * forward pass. Decoding is greedy and ignores end-of-sequence, so every request produces
 * exactly `gen` tokens and every rep does the same work.
 *
 * Also here: peak resident memory per model (the kernel's high-water mark, reset before each
 * measurement) and this machine's memory read bandwidth, for the decode roofline. */
#ifndef LB_BENCH_H
#define LB_BENCH_H

#include "core/error.h"
#include "eval/result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *const *models;   /* paths, measured in this order */
    int n_models;
    int baseline;                /* index into models of the --vs baseline, -1 for none */
    const int *batches;          /* batch sizes, each 1..4096 */
    int n_batches;
    int prompt;                  /* prompt tokens per sequence, >= 1 */
    int gen;                     /* generated tokens per sequence, >= 1 (first from prefill) */
    int reps;                    /* timed requests per model and batch, >= 1 */
    int warmup;                  /* untimed requests before them, >= 0 */
    int threads;                 /* <= 0: every core */
    uint64_t seed;               /* prompt tokens */
    bool progress;               /* progress bar on stderr */
} lb_bench_params;

/* One model at one batch size. Times in milliseconds; NaN where a figure does not exist
 * (decode figures when gen == 1, ratios without a baseline, memory where /proc is closed). */
typedef struct {
    char model[512];             /* path as given */
    char name[128];              /* file's base name, for tables */
    char format[32];             /* type of the layer matrices: "F32", "Q8_0", ... */
    int batch;
    int reps;
    double latency_mean, latency_stdev;     /* end to end, per request */
    double latency_p50, latency_p95, latency_p99;
    double ttft_mean, ttft_stdev;           /* prefill and the first token */
    double itl_p50, itl_p99;                /* between consecutive tokens (one decode pass) */
    int64_t n_itl;                          /* decode passes measured */
    double prefill_tps, decode_tps;         /* tokens per second, all sequences together */
    double prefill_tps_median, decode_tps_median;   /* median over reps of each rep's rate */
    int64_t prefill_tokens, decode_tokens;  /* summed over the timed reps */
    int64_t generated_per_request;          /* tokens produced by one rep, all sequences */
    double peak_rss;             /* bytes: high-water mark while serving this batch */
    bool peak_rss_exact;         /* false: process high-water mark (the reset was refused) */
    double model_bytes;          /* tensor data */
    double kv_bytes;             /* KV cache at this batch and context */
    double bits_per_weight;      /* 8 x model bytes / parameters */
    double bytes_per_token;      /* weight bytes one decode pass must read */
    int64_t params;
    double seconds;              /* wall time of the timed reps */
    /* Against the baseline at the same batch size (baseline / this for times). */
    double speedup;              /* baseline mean latency / this mean latency */
    double prefill_speedup, decode_speedup;
    double memory_ratio;         /* this peak RSS / baseline peak RSS */
    double model_bytes_ratio;
} lb_bench_row;

/* Checks the parameters; the message names the option (--batch, --reps, ...). */
int lb_bench_check(const lb_bench_params *p, lb_error *err);

/* Loads every model (failing before any timing if one cannot be loaded), measures, and returns
 * n_models x n_batches rows, batch-major (all models at the first batch size, then the next). */
int lb_bench_run(const lb_bench_params *p, lb_bench_row **rows, int *n_rows, lb_error *err);

/* One lb_result per metric per row, task "bench", params {batch, prompt, gen, threads, reps}.
 * Free each with lb_result_free and the array with free(). */
lb_result *lb_bench_results(const lb_bench_params *p, const lb_bench_row *rows, int n_rows,
                            size_t *n_results);

/* Tables: aligned text (the default), CSV with a header line, and Markdown. */
void lb_bench_write_text(FILE *out, const lb_bench_params *p, const lb_bench_row *rows, int n);
void lb_bench_write_csv(FILE *out, const lb_bench_params *p, const lb_bench_row *rows, int n);
void lb_bench_write_md(FILE *out, const lb_bench_params *p, const lb_bench_row *rows, int n);

/* Parses a comma-separated list of positive integers ("1,4,8") into a malloc'd array. what names
 * the option for the message. */
int lb_bench_parse_ints(const char *text, const char *what, int max_value, int **values, int *n,
                        lb_error *err);

/* Percentile q in [0, 100] of n sorted values, linear between closest ranks (numpy's default);
 * NaN when n == 0. */
double lb_bench_percentile(const double *sorted, int n, double q);

/* Memory read bandwidth in bytes per second: threads stream over a buffer of `bytes` (much larger
 * than the caches), best of `passes`. */
int lb_bench_membw(int threads, size_t bytes, int passes, double *bytes_per_s, lb_error *err);

/* Resident memory from /proc/self/status: field "VmRSS" or "VmHWM", bytes; -1 if unreadable. */
int64_t lb_bench_proc_bytes(const char *field);
/* Resets the kernel's high-water mark to the current RSS; -1 where that is not permitted. */
int lb_bench_reset_peak(void);

#endif
