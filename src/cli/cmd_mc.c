/* lowbit mc: multiple-choice benchmarks scored by log-likelihood as lm-evaluation-harness
 * scores them (HellaSwag, PIQA, ARC, COPA, BoolQ, WinoGrande, LAMBADA, MMLU, TruthfulQA). */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"
#include "eval/multichoice.h"
#include "eval/result.h"
#include "eval/tasks/tasks.h"
#include "model/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void weights_format(const lb_model *m, char *out, size_t cap)
{
    if (m->quant.method[0]) {
        snprintf(out, cap, "%s-int%d%s", m->quant.method, m->quant.bits,
                 m->quant.group_size > 0 ? "" : "-pc");
        if (m->quant.group_size > 0)
            snprintf(out + strlen(out), cap - strlen(out), "-g%d", m->quant.group_size);
        return;
    }
    const lb_tensor *t = m->cfg.n_layers > 0 && m->layers && m->layers[0].wq ? m->layers[0].wq
                                                                              : m->tok_embd;
    const char *name = t ? lb_type_name(t->type) : NULL;
    snprintf(out, cap, "%s", name ? name : "?");
}

/* One JSON object per item, so prompts can be checked against other tools. */
static void dump_items(const lb_mc_task *t)
{
    for (int i = 0; i < t->n_items; i++) {
        const lb_mc_item *it = &t->items[i];
        json_t *o = json_object();
        if (it->context)
            json_object_set_new(o, "context", json_string(it->context));
        json_t *conts = json_array(), *ctxs = it->contexts ? json_array() : NULL;
        for (int c = 0; c < it->n_choices; c++) {
            json_array_append_new(conts, json_string(it->conts[c]));
            if (ctxs)
                json_array_append_new(ctxs, json_string(it->contexts[c]));
        }
        if (ctxs)
            json_object_set_new(o, "contexts", ctxs);
        json_object_set_new(o, "continuations", conts);
        json_object_set_new(o, "gold", json_integer(it->gold));
        if (it->truth) {
            json_t *tr = json_array();
            for (int c = 0; c < it->n_choices; c++)
                json_array_append_new(tr, json_integer(it->truth[c]));
            json_object_set_new(o, "truth", tr);
        }
        if (it->subtask >= 0)
            json_object_set_new(o, "subtask", json_string(t->subtasks[it->subtask]));
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s)
            puts(s);
        free(s);
        json_decref(o);
    }
}

int cmd_mc(int argc, char **argv)
{
    const char *model = NULL, *task = NULL, *data = NULL, *data_dir = NULL, *tokenizer = NULL;
    int limit = 0, shots = -1, seed = 1234, batch = 32, tokens = 2048, threads = 0, ctx = 0;
    bool json = false, no_bos = false, quiet = false, dump = false;
    const char *kv_type = NULL;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &model, "PATH", "model: .gguf, llama2.c .bin, or a Hugging Face directory"},
        {"task", 0, OPT_STRING, &task, "TASK", "hellaswag, piqa, arc_easy, arc_challenge, copa, boolq, winogrande, lambada, mmlu, truthfulqa_mc1, truthfulqa_mc2"},
        {"data", 0, OPT_STRING, &data, "PATH", "the task's file (MMLU: its directory); default: the task's file under the data directory"},
        {"data-dir", 0, OPT_STRING, &data_dir, "DIR", "data directory (default $LOWBIT_DATA_DIR, else ../shared/datasets)"},
        {"limit", 0, OPT_INT, &limit, "N", "score only the first N items (of each subject for MMLU; 0 = all)"},
        {"shots", 0, OPT_INT, &shots, "K", "few-shot examples (default: MMLU 5 from dev/, others 0)"},
        {"seed", 0, OPT_INT, &seed, "S", "seed that picks few-shot examples without a dev split (default 1234)"},
        {"batch", 0, OPT_INT, &batch, "B", "questions scored side by side in one forward pass (default 32)"},
        {"tokens", 0, OPT_INT, &tokens, "N", "tokens per forward pass at most (default 2048)"},
        {"threads", 't', OPT_INT, &threads, "N", "threads (default: all cores)"},
        LB_OPT_KV_TYPE(kv_type),
        {"ctx", 'c', OPT_INT, &ctx, "N", "context length; longer requests lose their left end (default: the model's, at most 2048)"},
        {"tokenizer", 0, OPT_STRING, &tokenizer, "PATH", "llama2.c tokenizer.bin for a .bin model"},
        {"no-bos", 0, OPT_FLAG, &no_bos, NULL, "no BOS before contexts (the harness's default for Hugging Face models)"},
        {"json", 0, OPT_FLAG, &json, NULL, "print the results in the shared result schema"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no progress bar"},
        {"dump", 0, OPT_FLAG, &dump, NULL, "print the task's items (prompts, continuations, gold) as JSON lines and stop; no model needed"},
    };
    const lb_cmd_spec spec = {
        "lowbit mc -m MODEL --task TASK [--data PATH] [--limit N] [--shots K] [--json]",
        "Scores a multiple-choice benchmark by the log-likelihood of each choice given its "
        "context, as lm-evaluation-harness does: acc (sum of log-probabilities) and acc_norm "
        "(divided by the choice's length in bytes) with their standard errors; MMLU per subject "
        "and macro-averaged; TruthfulQA MC2 as the mass of the true answers; LAMBADA as greedy "
        "last-word accuracy and perplexity; WinoGrande by partial scoring.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (lb_args_kv_type("mc", kv_type))
        return 1;
    if ((!model && !dump) || !task) {
        fprintf(stderr, "mc: -m MODEL and --task TASK are required\n");
        return 1;
    }
    const struct {
        bool ok;
        const char *opt, *want;
        int value;
    } checks[] = {
        {limit >= 0, "--limit", "0 or more", limit},
        {shots >= -1 && shots <= 100, "--shots", "in 0..100", shots},
        {batch >= 1 && batch <= 4096, "--batch", "in 1..4096", batch},
        {tokens >= 1, "--tokens", "1 or more", tokens},
        {threads >= 0, "--threads", "0 or more", threads},
        {ctx >= 0, "--ctx", "0 or more", ctx},
        {seed >= 0, "--seed", "0 or more", seed},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (!checks[i].ok) {
            fprintf(stderr, "mc: %s is %d, expected %s\n", checks[i].opt, checks[i].value,
                    checks[i].want);
            return 1;
        }
    if (quiet || json)
        lb_log_set_level(0);

    lb_error err;
    lb_mc_task *t;
    lb_task_options to = {shots, (uint64_t)seed};
    /* The data are checked before the model is loaded, so a bad file is named at once. */
    if (lb_task_load(task, data, data_dir, &to, &t, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    lb_mc_limit(t, limit);
    if (dump) {
        dump_items(t);
        lb_mc_task_free(t);
        return 0;
    }
    lb_model *m;
    lb_load_options lo = {tokenizer};
    if (lb_model_load(model, &lo, &m, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        lb_mc_task_free(t);
        return 1;
    }
    if (ctx == 0)
        ctx = m->cfg.max_ctx < 2048 ? m->cfg.max_ctx : 2048;
    lb_engine *e;
    if (lb_engine_create(m, ctx, batch, threads, &e, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        lb_model_free(m);
        lb_mc_task_free(t);
        return 1;
    }
    lb_mc_options mo = {!no_bos, tokens, !quiet && !json};
    lb_mc_report rep;
    rc = lb_mc_evaluate(e, t, &mo, &rep, &err);
    if (rc) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
    } else if (json) {
        char format[64];
        weights_format(m, format, sizeof format);
        lb_result *res = lb_calloc((size_t)rep.n, sizeof *res);
        for (int i = 0; i < rep.n; i++) {
            char name[192];
            snprintf(name, sizeof name, "%s%s%s", t->name, rep.m[i].subtask[0] ? "_" : "",
                     rep.m[i].subtask);
            lb_result_init(&res[i], model, format, name, rep.m[i].metric, rep.m[i].value);
            res[i].stderr_ = rep.m[i].stderr_;
            res[i].n = rep.m[i].n;
            res[i].seconds = rep.seconds;
            lb_result_param(&res[i], "shots", json_integer(shots >= 0 ? shots
                                                           : strcmp(task, "mmlu") == 0 ? 5 : 0));
            lb_result_param(&res[i], "limit", json_integer(limit));
            lb_result_param(&res[i], "bos", json_boolean(!no_bos));
            lb_result_param(&res[i], "ctx", json_integer(ctx));
            lb_result_param(&res[i], "kv_cache", json_string(lb_kv_type_name(lb_engine_kv_type())));
            lb_result_param(&res[i], "batch", json_integer(batch));
            if (data)
                lb_result_param(&res[i], "data", json_string(data));
        }
        lb_results_write_json(stdout, res, (size_t)rep.n);
        for (int i = 0; i < rep.n; i++)
            lb_result_free(&res[i]);
        free(res);
    } else {
        printf("%-40s %-11s %8s %8s %7s\n", "task", "metric", "value", "stderr", "n");
        for (int i = 0; i < rep.n; i++) {
            char name[160];
            snprintf(name, sizeof name, "%s%s%s", rep.m[i].subtask[0] ? "  " : "",
                     rep.m[i].subtask[0] ? rep.m[i].subtask : t->name, "");
            bool pct = strcmp(rep.m[i].metric, "perplexity") != 0;
            double k = pct ? 100.0 : 1.0;
            printf("%-40s %-11s %8.4f %8.4f %7d\n", name, rep.m[i].metric, rep.m[i].value * k,
                   isnan(rep.m[i].stderr_) ? NAN : rep.m[i].stderr_ * k, rep.m[i].n);
        }
        printf("(acc and acc_norm in %%; %d items, %lld tokens in %.2f s, %.0f tokens/s)\n",
               t->n_items, rep.tokens, rep.seconds,
               rep.seconds > 0 ? (double)rep.tokens / rep.seconds : 0.0);
    }
    lb_mc_report_free(&rep);
    lb_engine_free(e);
    lb_model_free(m);
    lb_mc_task_free(t);
    return rc ? 1 : 0;
}
