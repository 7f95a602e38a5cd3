/* lowbit kld: how far a quantized model's next-token distributions are from the baseline's
 * over a text, with the figures llama-perplexity --kl-divergence reports. */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/dist.h"
#include "core/log.h"
#include "eval/dataset.h"
#include "eval/kld.h"
#include "eval/result.h"
#include "model/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *weights_format(const lb_model *m)
{
    const lb_tensor *t = m->cfg.n_layers > 0 && m->layers && m->layers[0].wq ? m->layers[0].wq
                                                                              : m->tok_embd;
    const char *name = t ? lb_type_name(t->type) : NULL;
    return name ? name : "?";
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

static void print_text(const lb_kld_result *r)
{
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r->ppl_q, r->ppl_q_stderr);
    printf("Mean PPL(base)                : %10.6f ± %10.6f\n", r->ppl_base, r->ppl_base_stderr);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r->ln_ppl_cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r->ln_ratio, r->ln_ratio_stderr);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", r->ppl_ratio, r->ppl_ratio_stderr);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", r->ppl_diff, r->ppl_diff_stderr);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", r->kld_mean, r->kld_stderr);
    printf("Maximum KLD: %10.6f\n", r->kld_max);
    printf("99.9%%   KLD: %10.6f\n", r->kld_p999);
    printf("99.0%%   KLD: %10.6f\n", r->kld_p99);
    printf("95.0%%   KLD: %10.6f\n", r->kld_p95);
    printf("90.0%%   KLD: %10.6f\n", r->kld_p90);
    printf("Median  KLD: %10.6f\n", r->kld_median);
    printf("10.0%%   KLD: %10.6f\n", r->kld_p10);
    printf(" 5.0%%   KLD: %10.6f\n", r->kld_p5);
    printf(" 1.0%%   KLD: %10.6f\n", r->kld_p1);
    printf("Minimum KLD: %10.6f\n", r->kld_min);
    printf("\n====== Token probability statistics ======\n");
    printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100 * r->dp_mean, 100 * r->dp_stderr);
    printf("Maximum Δp: %6.3f%%\n", 100 * r->dp_max);
    printf("99.0%%   Δp: %6.3f%%\n", 100 * r->dp_p99);
    printf("95.0%%   Δp: %6.3f%%\n", 100 * r->dp_p95);
    printf("90.0%%   Δp: %6.3f%%\n", 100 * r->dp_p90);
    printf("Median  Δp: %6.3f%%\n", 100 * r->dp_median);
    printf("10.0%%   Δp: %6.3f%%\n", 100 * r->dp_p10);
    printf(" 5.0%%   Δp: %6.3f%%\n", 100 * r->dp_p5);
    printf(" 1.0%%   Δp: %6.3f%%\n", 100 * r->dp_p1);
    printf("Minimum Δp: %6.3f%%\n", 100 * r->dp_min);
    printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100 * r->dp_rms, 100 * r->dp_rms_stderr);
    printf("Same top p: %6.3f ± %5.3f %%\n", 100 * r->same_top, 100 * r->same_top_stderr);
}

static void write_json(const lb_kld_result *r, const char *model, const char *format,
                       const char *base, const char *task, int ctx, const char *mode)
{
    const struct {
        const char *metric;
        double value, se;
    } rows[] = {
        {"kld_mean", r->kld_mean, r->kld_stderr},
        {"kld_median", r->kld_median, NAN},
        {"kld_p90", r->kld_p90, NAN},
        {"kld_p95", r->kld_p95, NAN},
        {"kld_p99", r->kld_p99, NAN},
        {"kld_max", r->kld_max, NAN},
        {"same_top_pct", 100 * r->same_top, 100 * r->same_top_stderr},
        {"perplexity", r->ppl_q, r->ppl_q_stderr},
        {"perplexity_base", r->ppl_base, r->ppl_base_stderr},
        {"perplexity_delta", r->ppl_diff, r->ppl_diff_stderr},
        {"perplexity_ratio", r->ppl_ratio, r->ppl_ratio_stderr},
        {"dp_rms_pct", 100 * r->dp_rms, 100 * r->dp_rms_stderr},
    };
    size_t n = sizeof rows / sizeof rows[0];
    lb_result res[sizeof rows / sizeof rows[0]];
    for (size_t i = 0; i < n; i++) {
        lb_result_init(&res[i], model, format, task, rows[i].metric, rows[i].value);
        res[i].stderr_ = rows[i].se;
        res[i].n = r->n;
        res[i].seconds = r->seconds;
        lb_result_param(&res[i], "base", json_string(base));
        lb_result_param(&res[i], "ctx", json_integer(ctx));
        lb_result_param(&res[i], "kv_cache", json_string(lb_kv_type_name(lb_engine_kv_type())));
        lb_result_param(&res[i], "mode", json_string(mode));
        lb_result_param(&res[i], "chunks", json_integer(r->n_chunks));
        lb_result_param(&res[i], "tokens_per_second", json_real(r->tokens_per_s));
    }
    lb_results_write_json(stdout, res, n);
    for (size_t i = 0; i < n; i++)
        lb_result_free(&res[i]);
}

int cmd_kld(int argc, char **argv)
{
    const char *model = NULL, *base = NULL, *file = NULL, *mode = "llamacpp", *data_dir = NULL;
    int ctx = 512, chunks = 0, batch = 0, threads = 0;
    bool json = false, quiet = false;
    const char *kv_type = NULL;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &model, "PATH", "the model to measure (e.g. quantized)"},
        {"base", 0, OPT_STRING, &base, "PATH", "the baseline model (same vocabulary)"},
        {"file", 'f', OPT_STRING, &file, "FILE|NAME", "text, jsonl with a \"text\" field, or wikitext2, c4, tinystories"},
        {"ctx", 'c', OPT_INT, &ctx, "N", "tokens per chunk (default 512)"},
        {"mode", 0, OPT_STRING, &mode, "MODE", "llamacpp (second half of each chunk) or hf (default llamacpp)"},
        {"chunks", 0, OPT_INT, &chunks, "N", "only the first N chunks (default: all)"},
        {"batch", 'b', OPT_INT, &batch, "B", "chunks per forward pass (default: 2048 tokens' worth)"},
        {"threads", 't', OPT_INT, &threads, "N", "threads per model (default: all cores)"},
        LB_OPT_KV_TYPE(kv_type),
        {"data-dir", 0, OPT_STRING, &data_dir, "DIR", "where dataset names resolve (default $LOWBIT_DATA_DIR, else ../shared/datasets)"},
        {"json", 0, OPT_FLAG, &json, NULL, "print the results as JSON (the shared result schema)"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no progress bar"},
    };
    const lb_cmd_spec spec = {
        "lowbit kld -m MODEL --base BASELINE -f FILE|NAME [--ctx N] [--chunks N] [--json]",
        "KL divergence of the model's next-token distributions from the baseline's over the "
        "chunks llama-perplexity scores, its percentiles, same-top-token rate and the change in "
        "perplexity, as llama-perplexity --kl-divergence reports them. Both models run side by "
        "side; nothing is stored between runs.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (lb_args_kv_type("kld", kv_type))
        return 1;
    if (!model || !base || !file) {
        fprintf(stderr, "kld: -m MODEL, --base BASELINE and -f FILE are required\n");
        return 1;
    }
    lb_ppl_options po = lb_ppl_defaults();
    if (lb_ppl_mode_parse(mode, &po.mode)) {
        fprintf(stderr, "kld: --mode is '%s', expected llamacpp or hf\n", mode);
        return 1;
    }
    po.ctx = ctx;
    po.max_chunks = chunks;
    po.batch = batch;
    lb_error err;
    if (threads < 0) {
        fprintf(stderr, "kld: --threads is %d, expected 0 or more\n", threads);
        return 1;
    }
    if (lb_ppl_check(NULL, &po, &err)) {
        fprintf(stderr, "kld: %s\n", err.msg);
        return 1;
    }
    if (json || quiet)
        lb_log_set_level(0);

    char *text = NULL;
    size_t len;
    lb_model *mq = NULL, *mb = NULL;
    lb_engine *eq = NULL, *eb = NULL;
    int *ids = NULL, n_ids = 0, status = 1;
    if (lb_dataset_load_text(file, data_dir, &text, &len, &err) ||
        lb_model_load(base, NULL, &mb, &err) || lb_model_load(model, NULL, &mq, &err) ||
        lb_kld_check_vocab(mq, mb, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        goto done;
    }
    if (!mb->tok) {
        fprintf(stderr, "lowbit: %s: the baseline has no tokenizer\n", base);
        goto done;
    }
    if (tok_encode(mb->tok, text, len, true, &ids, &n_ids, &err)) {
        fprintf(stderr, "lowbit: %s: %s\n", file, err.msg);
        goto done;
    }
    lb_ppl_window *plan;
    int n_chunks;
    if (lb_ppl_plan(n_ids, &po, &plan, &n_chunks, &err)) {
        fprintf(stderr, "lowbit: %s: %s\n", file, err.msg);
        goto done;
    }
    free(plan);
    int n_seq = batch > 0 ? batch : (2048 + ctx - 1) / ctx;
    if (n_seq > n_chunks)
        n_seq = n_chunks;
    if (n_seq < 1)
        n_seq = 1;
    po.batch = n_seq;
    po.progress = !json && !quiet;
    if (lb_engine_create(mb, ctx, n_seq, threads, &eb, &err) ||
        lb_engine_create(mq, ctx, n_seq, threads, &eq, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        goto done;
    }
    lb_kld_result r;
    if (lb_kld(eq, eb, ids, n_ids, &po, &r, &err)) {
        fprintf(stderr, "lowbit: %s: %s\n", file, err.msg);
        goto done;
    }
    if (json)
        write_json(&r, model, weights_format(mq), base, base_name(file), ctx, mode);
    else {
        print_text(&r);
        char procs[48] = "";
        if (lb_dist_active())
            snprintf(procs, sizeof procs, ", %d processes", lb_dist_size());
        printf("\n%s mode, ctx %d, %d chunks: %lld tokens scored in %.2f s (%.0f tokens/s "
               "through each model%s)\n", mode, ctx, r.n_chunks, (long long)r.n, r.seconds,
               r.tokens_per_s, procs);
    }
    status = 0;
done:
    lb_engine_free(eq);
    lb_engine_free(eb);
    free(ids);
    lb_model_free(mq);
    lb_model_free(mb);
    free(text);
    return status;
}
