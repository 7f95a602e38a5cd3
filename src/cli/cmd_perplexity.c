/* lowbit perplexity: perplexity of a model over a text file or a named dataset, in llama.cpp's
 * convention (comparable with llama-perplexity) or the GPTQ/Hugging Face one. */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/dist.h"
#include "core/log.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "eval/result.h"
#include "model/engine.h"

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

typedef struct {
    bool print;
    int printed;
} running;

/* Running estimates as llama-perplexity prints them: [1]x,[2]y,... */
static void on_chunk(void *user, int chunk, double ppl)
{
    running *r = user;
    if (!r->print)
        return;
    printf("[%d]%.4f,", chunk, ppl);
    if (++r->printed % 16 == 0)
        putchar('\n');
    fflush(stdout);
}

int cmd_perplexity(int argc, char **argv)
{
    const char *model = NULL, *file = NULL, *mode = "llamacpp", *data_dir = NULL,
               *tokenizer = NULL;
    int ctx = 512, stride = 0, chunks = 0, batch = 0, threads = 0;
    bool json = false, quiet = false;
    const char *kv_type = NULL;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &model, "PATH", "model: .gguf, llama2.c .bin, or a Hugging Face directory"},
        {"file", 'f', OPT_STRING, &file, "FILE|NAME", "text, jsonl with a \"text\" field, or wikitext2, c4, tinystories"},
        {"ctx", 'c', OPT_INT, &ctx, "N", "tokens per chunk (default 512)"},
        {"stride", 0, OPT_INT, &stride, "S", "hf mode: start a window every S tokens (default: ctx, no overlap)"},
        {"mode", 0, OPT_STRING, &mode, "MODE", "llamacpp (as llama-perplexity) or hf (as GPTQ/AWQ) (default llamacpp)"},
        {"chunks", 0, OPT_INT, &chunks, "N", "score only the first N chunks (default: all)"},
        {"batch", 'b', OPT_INT, &batch, "B", "chunks per forward pass (default: 2048 tokens' worth)"},
        {"threads", 't', OPT_INT, &threads, "N", "threads (default: all cores)"},
        LB_OPT_KV_TYPE(kv_type),
        {"data-dir", 0, OPT_STRING, &data_dir, "DIR", "where dataset names resolve (default $LOWBIT_DATA_DIR, else ../shared/datasets)"},
        {"tokenizer", 0, OPT_STRING, &tokenizer, "PATH", "llama2.c tokenizer.bin for a .bin model"},
        {"json", 0, OPT_FLAG, &json, NULL, "print the result as JSON (the shared result schema)"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no running estimates or progress"},
    };
    const lb_cmd_spec spec = {
        "lowbit perplexity -m MODEL -f FILE|NAME [--ctx N] [--mode llamacpp|hf] [options]",
        "Perplexity of the model over a text. llamacpp mode scores as llama-perplexity "
        "(chunks of ctx tokens, BOS first, second half scored); hf mode as the GPTQ/AWQ papers "
        "(windows of ctx tokens, every token after a window's first scored, optional stride).",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (lb_args_kv_type("perplexity", kv_type))
        return 1;
    if (!model || !file) {
        fprintf(stderr, "perplexity: -m MODEL and -f FILE are required\n");
        return 1;
    }
    lb_ppl_options po = lb_ppl_defaults();
    if (lb_ppl_mode_parse(mode, &po.mode)) {
        fprintf(stderr, "perplexity: --mode is '%s', expected llamacpp or hf\n", mode);
        return 1;
    }
    po.ctx = ctx;
    po.stride = stride;
    po.max_chunks = chunks;
    po.batch = batch;
    lb_error err;
    if (threads < 0) {
        fprintf(stderr, "perplexity: --threads is %d, expected 0 or more\n", threads);
        return 1;
    }
    if (lb_ppl_check(NULL, &po, &err)) {
        fprintf(stderr, "perplexity: %s\n", err.msg);
        return 1;
    }
    if (json || quiet)
        lb_log_set_level(0);

    char *text;
    size_t len;
    if (lb_dataset_load_text(file, data_dir, &text, &len, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    lb_model *m;
    lb_load_options lo = {tokenizer};
    if (lb_model_load(model, &lo, &m, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        free(text);
        return 1;
    }
    int *ids = NULL, n_ids = 0;
    if (!m->tok) {
        fprintf(stderr, "lowbit: %s: the model has no tokenizer\n", model);
        goto fail;
    }
    if (tok_encode(m->tok, text, len, true, &ids, &n_ids, &err)) {
        fprintf(stderr, "lowbit: %s: %s\n", file, err.msg);
        goto fail;
    }
    lb_ppl_window *plan;
    int n_chunks;
    if (lb_ppl_plan(n_ids, &po, &plan, &n_chunks, &err)) {
        fprintf(stderr, "lowbit: %s: %s\n", file, err.msg);
        goto fail;
    }
    free(plan);
    /* Enough chunks side by side to fill about 2048 tokens per pass: small models spend most
     * of a one-chunk pass waking threads, and larger batches make the matrix products
     * efficient; more buys little and costs KV cache. */
    int n_seq = batch > 0 ? batch : (2048 + ctx - 1) / ctx;
    if (n_seq > n_chunks)
        n_seq = n_chunks;
    if (n_seq < 1)
        n_seq = 1;
    po.batch = n_seq;
    lb_engine *e;
    if (lb_engine_create(m, ctx, n_seq, threads, &e, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        goto fail;
    }
    running run = {!json && !quiet, 0};
    po.on_chunk = on_chunk;
    po.user = &run;
    po.progress = !json && !quiet;
    lb_ppl_result res;
    if (lb_perplexity(e, ids, n_ids, &po, &res, &err)) {
        if (run.printed)
            putchar('\n');
        fprintf(stderr, "lowbit: %s: %s\n", file, err.msg);
        lb_engine_free(e);
        goto fail;
    }
    if (json) {
        lb_result r;
        /* task: the dataset's name when a shortcut was given, else the file's base name */
        lb_result_init(&r, model, weights_format(m), base_name(file), "perplexity", res.ppl);
        r.stderr_ = res.ppl_stderr;
        r.n = res.n_scored;
        r.seconds = res.seconds;
        lb_result_param(&r, "mode", json_string(mode));
        lb_result_param(&r, "ctx", json_integer(ctx));
        lb_result_param(&r, "kv_cache", json_string(lb_kv_type_name(lb_engine_kv_type())));
        if (po.mode == LB_PPL_HF)
            lb_result_param(&r, "stride", json_integer(stride > 0 ? stride : ctx));
        lb_result_param(&r, "chunks", json_integer(res.n_chunks));
        lb_result_param(&r, "tokens_evaluated", json_integer(res.n_tokens));
        lb_result_param(&r, "tokens_per_second", json_real(res.tokens_per_s));
        lb_result_param(&r, "batch", json_integer(n_seq));
        lb_result_param(&r, "threads", json_integer(lb_pool_size(lb_engine_pool(e))));
        if (lb_dist_active())
            lb_result_param(&r, "processes", json_integer(lb_dist_size()));
        lb_results_write_json(stdout, &r, 1);
        lb_result_free(&r);
    } else {
        if (run.printed % 16)
            putchar('\n');
        printf("Final estimate: PPL = %.4f +/- %.5f\n", res.ppl, res.ppl_stderr);
        char procs[48] = "";
        if (lb_dist_active())
            snprintf(procs, sizeof procs, "%d processes x ", lb_dist_size());
        int threads_used = lb_pool_size(lb_engine_pool(e));
        printf("%s mode, ctx %d, %d chunks: %lld tokens scored, %lld evaluated in %.2f s "
               "(%.0f tokens/s, %s%d thread%s, %d chunks per pass)\n",
               mode, ctx, res.n_chunks, (long long)res.n_scored, (long long)res.n_tokens,
               res.seconds, res.tokens_per_s, procs, threads_used, threads_used == 1 ? "" : "s",
               n_seq);
    }
    lb_engine_free(e);
    free(ids);
    lb_model_free(m);
    free(text);
    return 0;
fail:
    free(ids);
    lb_model_free(m);
    free(text);
    return 1;
}
