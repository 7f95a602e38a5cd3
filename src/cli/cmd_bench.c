/* lowbit bench: request latency, throughput and memory of models at several batch sizes, models
 * interleaved in one process; or (--membw) this machine's memory read bandwidth, the roofline
 * that decode speed is judged against. */
#include "bench/bench.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"
#include "core/threadpool.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits "a,b,c" into paths (pointers into a copy the caller frees). */
static int split_models(const char *text, char **copy, const char ***paths, int *n)
{
    *copy = lb_strdup(text);
    *paths = NULL;
    *n = 0;
    int cap = 0;
    char *p = *copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p) {
            fprintf(stderr, "bench: -m '%s': empty model path in the list\n", text);
            return -1;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *paths = lb_realloc(*paths, (size_t)cap * sizeof **paths);
        }
        (*paths)[(*n)++] = p;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int run_membw(int threads, int mib, bool json)
{
    lb_error err;
    double bps;
    if (mib < 1 || mib > 1 << 20) {
        fprintf(stderr, "bench: --membw-mib is %d, expected 1..1048576\n", mib);
        return 1;
    }
    int passes = 5;
    if (lb_bench_membw(threads, (size_t)mib << 20, passes, &bps, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int used = threads > 0 ? threads : lb_cpu_count();
    if (json) {
        lb_result r;
        lb_result_init(&r, "", "", "membw", "read_bandwidth_gb_s", bps / 1e9);
        r.n = passes;
        lb_result_param(&r, "threads", json_integer(used));
        lb_result_param(&r, "buffer_mib", json_integer(mib));
        int rc = lb_results_write_json(stdout, &r, 1);
        lb_result_free(&r);
        return rc ? 1 : 0;
    }
    printf("memory read bandwidth: %.2f GB/s (%d threads, %d MiB buffer, best of %d passes)\n",
           bps / 1e9, used, mib, passes);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *models = NULL, *vs = NULL, *batch_text = "1,4,8,16,32", *seed_text = "1";
    int prompt = 128, gen = 128, reps = 20, warmup = 3, threads = 0, membw_mib = 1024;
    bool json = false, csv = false, md = false, membw = false, quiet = false;
    const char *kv_type = NULL;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &models, "PATH[,PATH...]", "models to measure (any format lowbit loads)"},
        {"vs", 0, OPT_STRING, &vs, "PATH", "baseline measured in the same run, interleaved; adds speedup and memory ratio"},
        {"batch", 'b', OPT_STRING, &batch_text, "N[,N...]", "batch sizes: concurrent sequences (default 1,4,8,16,32)"},
        {"prompt", 'p', OPT_INT, &prompt, "N", "prompt tokens per sequence (default 128)"},
        {"gen", 'n', OPT_INT, &gen, "N", "tokens generated per sequence, the first by the prefill (default 128)"},
        {"reps", 'r', OPT_INT, &reps, "N", "timed requests per model and batch size (default 20)"},
        {"warmup", 0, OPT_INT, &warmup, "N", "untimed requests before them (default 3)"},
        {"threads", 't', OPT_INT, &threads, "N", "threads (default: all cores)"},
        LB_OPT_KV_TYPE(kv_type),
        {"seed", 0, OPT_STRING, &seed_text, "S", "seed of the random prompts (default 1)"},
        {"json", 0, OPT_FLAG, &json, NULL, "results in the shared JSON result schema"},
        {"csv", 0, OPT_FLAG, &csv, NULL, "one CSV row per model and batch size"},
        {"md", 0, OPT_FLAG, &md, NULL, "Markdown table"},
        {"membw", 0, OPT_FLAG, &membw, NULL, "measure the memory read bandwidth instead"},
        {"membw-mib", 0, OPT_INT, &membw_mib, "N", "buffer streamed by --membw (default 1024)"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no progress bar or log"},
    };
    const lb_cmd_spec spec = {
        "lowbit bench -m MODEL[,MODEL...] [--vs BASELINE] [--batch 1,4,8,16,32] [--prompt N]\n"
        "                    [--gen N] [--reps N] [--warmup N] [--threads N] [--json|--csv|--md]\n"
        "       lowbit bench --membw [--threads N] [--membw-mib N] [--json]",
        "Measures each model at each batch size: a batch of B requests is B sequences whose\n"
        "prompts (seeded random tokens) are prefilled in one pass and which then decode one token\n"
        "each per pass, greedily, never stopping early. Reports end-to-end latency (mean, stdev,\n"
        "P50/P95/P99), time to first token, inter-token latency P50/P99, prefill and decode\n"
        "tokens/s, peak resident memory (high-water mark reset per model and batch size), model\n"
        "and KV cache bytes, and bits per weight. Models are interleaved rep by rep, so drift on a\n"
        "shared machine hits them alike; --vs adds ratios against a baseline measured the same way.\n"
        "--membw streams a buffer much larger than the caches and prints the read bandwidth, the\n"
        "roofline for decode (weight bytes read per token / bandwidth).",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (lb_args_kv_type("bench", kv_type))
        return 1;
    if ((int)json + (int)csv + (int)md > 1) {
        fprintf(stderr, "bench: --json, --csv and --md exclude each other\n");
        return 1;
    }
    if (threads < 0 || threads > 4096) {
        fprintf(stderr, "bench: --threads is %d, expected 0..4096\n", threads);
        return 1;
    }
    if (membw) {
        if (models || vs) {
            fprintf(stderr, "bench: --membw measures the machine; give it without -m or --vs\n");
            return 1;
        }
        if (csv || md) {
            fprintf(stderr, "bench: --membw prints text or --json\n");
            return 1;
        }
        return run_membw(threads, membw_mib, json);
    }
    if (!models) {
        fprintf(stderr, "bench: -m MODEL is required (or --membw)\n");
        return 1;
    }
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(seed_text, &end, 10);
    if (errno || end == seed_text || *end || seed_text[0] == '-') {
        fprintf(stderr, "bench: --seed expects an integer from 0 to 2^64-1, got '%s'\n",
                seed_text);
        return 1;
    }

    lb_error err;
    int *batches = NULL, n_batches = 0;
    if (lb_bench_parse_ints(batch_text, "--batch", 4096, &batches, &n_batches, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    char *copy;
    const char **paths;
    int n_paths;
    if (split_models(models, &copy, &paths, &n_paths)) {
        free(batches);
        free(copy);
        free(paths);
        return 1;
    }
    /* The baseline is measured like the others; it leads the table unless already listed. */
    int baseline = -1;
    if (vs) {
        for (int i = 0; i < n_paths; i++)
            if (strcmp(paths[i], vs) == 0)
                baseline = i;
        if (baseline < 0) {
            paths = lb_realloc(paths, (size_t)(n_paths + 1) * sizeof *paths);
            memmove(paths + 1, paths, (size_t)n_paths * sizeof *paths);
            paths[0] = vs;
            n_paths++;
            baseline = 0;
        }
    }
    lb_bench_params p = {
        .models = paths, .n_models = n_paths, .baseline = baseline,
        .batches = batches, .n_batches = n_batches,
        .prompt = prompt, .gen = gen, .reps = reps, .warmup = warmup, .threads = threads,
        .seed = (uint64_t)seed, .progress = !quiet,
    };
    int status = 1;
    lb_bench_row *rows = NULL;
    int n_rows = 0;
    if (lb_bench_check(&p, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        goto out;
    }
    if (quiet)
        lb_log_set_level(0);
    rc = lb_bench_run(&p, &rows, &n_rows, &err);
    if (rc) {
        fprintf(stderr, "bench: %s\n", err.msg);
        goto out;
    }
    if (json) {
        size_t nr;
        lb_result *rs = lb_bench_results(&p, rows, n_rows, &nr);
        int wrc = lb_results_write_json(stdout, rs, nr);
        for (size_t i = 0; i < nr; i++)
            lb_result_free(&rs[i]);
        free(rs);
        if (wrc) {
            fprintf(stderr, "bench: cannot write the results to stdout\n");
            goto out;
        }
    } else if (csv) {
        lb_bench_write_csv(stdout, &p, rows, n_rows);
    } else if (md) {
        lb_bench_write_md(stdout, &p, rows, n_rows);
    } else {
        lb_bench_write_text(stdout, &p, rows, n_rows);
    }
    fflush(stdout);
    status = 0;
out:
    free(rows);
    free(batches);
    free(copy);
    free(paths);
    return status;
}
