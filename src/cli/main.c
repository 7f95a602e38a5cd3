/* lowbit: the command-line front. One file per subcommand; this one dispatches. */
#include "cli/commands.h"
#include "core/dist.h"
#include "core/extras.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

/* A command either runs here (run) or lives in lowbit-extras.so under the name `extras`. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *extras;
    const char *summary;
} commands[] = {
    {"info", cmd_info, NULL, "show a model's architecture, sizes and tensors"},
    {"generate", cmd_generate, NULL, "generate text from a prompt"},
    {"synth", cmd_synth, NULL, "write a random-weight GGUF model of a real architecture and size"},
    {"pull", NULL, "cmd_pull", "download a model from the Hugging Face hub"},
    {"quantize", NULL, "cmd_quantize", "quantize a model (rtn, gptq, awq, smoothquant) with calibration data"},
    {"export", cmd_export, NULL, "export a quantized model for other tools (gguf, gptq, awq, w8a8)"},
    {"perplexity", cmd_perplexity, NULL, "perplexity of a model on a text or dataset"},
    {"kld", cmd_kld, NULL, "KL divergence of a model's predictions from a baseline's"},
    {"mc", cmd_mc, NULL, "multiple-choice benchmark by log-likelihood (hellaswag, piqa, mmlu, ...)"},
    {"bench", cmd_bench, NULL, "latency and throughput across batch sizes"},
    {"serve", NULL, "cmd_serve", "serve models over HTTP (original API and OpenAI-compatible)"},
    {"pipeline", NULL, "cmd_pipeline", "run a YAML pipeline: quantize, evaluate, benchmark, report"},
    {"runs", NULL, "cmd_runs", "list, show and compare runs in the results database"},
    {"report", NULL, "cmd_report", "write a report (md, html, pdf, csv, json) from the results database"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: lowbit COMMAND [options]   (lowbit COMMAND --help for its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lowbit %s (parallel processes: %s)\n", LOWBIT_VERSION, lb_dist_backend());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* Under mpirun every rank runs the same command; the commands that can split
             * their work ask lb_dist_* for their share, the others run whole on each rank. */
            lb_dist_init(&argc, &argv);
            /* What a command prints is the first process's to say: the others compute the
             * same figures (or their share of them) and keep quiet. Their errors still show. */
            if (lb_dist_rank() > 0 && !freopen("/dev/null", "w", stdout))
                fclose(stdout);
            int (*run)(int, char **) = commands[i].run;
            if (!run) {
                lb_error err;
                *(void **)&run = lb_extras_symbol(commands[i].extras, &err);
                if (!run) {
                    fprintf(stderr, "lowbit %s: %s\n", commands[i].name, err.msg);
                    lb_dist_finalize();
                    return 1;
                }
            }
            int status = run(argc - 1, argv + 1);
            lb_dist_finalize();
            return status;
        }
    fprintf(stderr, "lowbit: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
