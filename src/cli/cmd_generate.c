/* lowbit generate: text from a prompt, streamed to stdout. */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"
#include "model/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int print_piece(const char *text, size_t len, void *user)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = "", *tokenizer = NULL, *stop = NULL;
    int n = 256, threads = 0, ctx = 0, seed = -1, top_k = 40, last_n = 64;
    float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat = 1.0f;
    bool quiet = false, json = false, no_bos = false;
    const char *kv_type = NULL;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &model, "PATH", "model: .gguf, llama2.c .bin, or a Hugging Face directory"},
        {"prompt", 'p', OPT_STRING, &prompt, "TEXT", "prompt (default: empty, start from BOS)"},
        {"n-predict", 'n', OPT_INT, &n, "N", "tokens to generate (default 256)"},
        {"temp", 0, OPT_FLOAT, &temp, "T", "temperature; 0 = greedy (default 0.8)"},
        {"top-k", 0, OPT_INT, &top_k, "K", "keep the K most likely tokens; 0 = all (default 40)"},
        {"top-p", 0, OPT_FLOAT, &top_p, "P", "nucleus sampling mass (default 0.95)"},
        {"min-p", 0, OPT_FLOAT, &min_p, "P", "drop tokens below P x the best one's probability (default 0.05)"},
        {"repeat-penalty", 0, OPT_FLOAT, &repeat, "X", "penalty for repeated tokens; 1 = off (default 1)"},
        {"repeat-last-n", 0, OPT_INT, &last_n, "N", "tokens the penalty looks back over (default 64)"},
        {"seed", 's', OPT_INT, &seed, "S", "random seed (default: from the clock)"},
        {"stop", 0, OPT_STRING, &stop, "TEXT", "stop when this text is generated"},
        {"threads", 't', OPT_INT, &threads, "N", "threads (default: all cores)"},
        LB_OPT_KV_TYPE(kv_type),
        {"ctx", 'c', OPT_INT, &ctx, "N", "context length (default: the model's)"},
        {"tokenizer", 0, OPT_STRING, &tokenizer, "PATH", "llama2.c tokenizer.bin for a .bin model"},
        {"no-bos", 0, OPT_FLAG, &no_bos, NULL, "do not add the BOS token"},
        {"json", 0, OPT_FLAG, &json, NULL, "print the result and timings as JSON"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "print only the generated text"},
    };
    const lb_cmd_spec spec = {
        "lowbit generate -m MODEL [-p PROMPT] [-n N] [--temp T] [options]",
        "Generates text from a prompt and streams it to stdout; timings go to stderr.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (lb_args_kv_type("generate", kv_type))
        return 1;
    if (!model) {
        fprintf(stderr, "generate: -m MODEL is required\n");
        return 1;
    }
    /* A bad option is named before the model is loaded (bounds as lb_sampling_check's). */
    const struct {
        bool ok;
        const char *opt, *want;
        double value;
    } checks[] = {
        {n >= 0, "--n-predict", "0 or more", n},
        {threads >= 0, "--threads", "0 or more", threads},
        {ctx >= 0, "--ctx", "0 or more", ctx},
        {temp >= 0 && temp <= 100, "--temp", "in 0..100", temp},
        {top_k >= 0, "--top-k", "0 or more", top_k},
        {top_p > 0 && top_p <= 1, "--top-p", "in (0, 1]", top_p},
        {min_p >= 0 && min_p < 1, "--min-p", "in [0, 1)", min_p},
        {repeat > 0 && repeat <= 10, "--repeat-penalty", "in (0, 10]", repeat},
        {last_n >= 0, "--repeat-last-n", "0 or more", last_n},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (!checks[i].ok) {
            fprintf(stderr, "generate: %s is %g, expected %s\n", checks[i].opt, checks[i].value,
                    checks[i].want);
            return 1;
        }
    if (quiet || json)
        lb_log_set_level(0);

    lb_error err;
    lb_model *m;
    lb_load_options lo = {tokenizer};
    if (lb_model_load(model, &lo, &m, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    if (ctx == 0 && m->cfg.max_ctx > 4096)
        ctx = 4096;   /* a full 128K-token cache would be wasted on a command-line run */
    lb_engine *e;
    if (lb_engine_create(m, ctx, 1, threads, &e, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        lb_model_free(m);
        return 1;
    }
    lb_gen_params gp = lb_gen_defaults();
    gp.max_new_tokens = n;
    gp.sampling = (lb_sampling){temp, top_k, top_p, min_p, repeat, last_n,
                                seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL)};
    gp.add_special = !no_bos;
    const char *stops[1] = {stop};
    gp.stop = stops;
    gp.n_stop = stop ? 1 : 0;

    if (!json) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    lb_gen_result res;
    if (lb_generate(e, 0, prompt, &gp, json ? NULL : print_piece, NULL, &res, &err)) {
        if (!json)
            fputc('\n', stdout);
        fprintf(stderr, "lowbit: %s\n", err.msg);
        lb_engine_free(e);
        lb_model_free(m);
        return 1;
    }
    double tps = res.decode_ms > 0 ? res.n_generated / (res.decode_ms / 1e3) : 0;
    if (json) {
        /* Minimal JSON writer: escape the completion. */
        printf("{\"prompt_tokens\": %d, \"generated_tokens\": %d, \"prefill_ms\": %.3f, "
               "\"decode_ms\": %.3f, \"decode_tokens_per_second\": %.2f, \"stop_reason\": \"%s\", "
               "\"text\": \"", res.n_prompt, res.n_generated, res.prefill_ms, res.decode_ms, tps,
               lb_stop_reason_name(res.stop_reason));
        for (const unsigned char *p = (const unsigned char *)res.text; *p; p++) {
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if (*p < 0x20)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
        printf("\"}\n");
    } else {
        putchar('\n');
        fflush(stdout);
        lb_log_info("%d prompt tokens in %.1f ms, %d generated in %.1f ms (%.1f tokens/s), "
                    "stop: %s, kernels: %s, threads: %d", res.n_prompt, res.prefill_ms,
                    res.n_generated, res.decode_ms, tps, lb_stop_reason_name(res.stop_reason),
                    lb_kernels_name(), lb_pool_size(lb_engine_pool(e)));
    }
    lb_gen_result_free(&res);
    lb_engine_free(e);
    lb_model_free(m);
    return 0;
}
