/* lowbit synth: writes a random-weight GGUF model in the shapes of a real one (with a real
 * vocabulary), for measuring speed and memory at sizes that cannot be downloaded here. */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "core/timer.h"
#include "model/synth.h"
#include "tokenizer/loaders.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    bool tty;
    int last;   /* last percentage printed */
} progress_ui;

/* A percentage on stderr: redrawn in place on a terminal, a line every 10 % otherwise. */
static void show_progress(double done, void *user)
{
    progress_ui *ui = user;
    int pct = (int)(done * 100.0);
    if (pct == ui->last || (!ui->tty && ui->last >= 0 && pct / 10 == ui->last / 10))
        return;
    ui->last = pct;
    if (ui->tty)
        fprintf(stderr, "\rsynth: %3d%%%s", pct, pct == 100 ? "\n" : "");
    else
        fprintf(stderr, "synth: %d%%\n", pct);
}

static const struct {
    const char *name;
    lb_type type;
} types[] = {
    {"f32", LB_TYPE_F32}, {"f16", LB_TYPE_F16}, {"q8_0", LB_TYPE_Q8_0},
    {"q4_0", LB_TYPE_Q4_0}, {"q4_1", LB_TYPE_Q4_1},
};

static void human(double x, char *buf, size_t cap, const char *unit)
{
    if (x >= 1e9)
        snprintf(buf, cap, "%.2f G%s", x / 1e9, unit);
    else if (x >= 1e6)
        snprintf(buf, cap, "%.1f M%s", x / 1e6, unit);
    else
        snprintf(buf, cap, "%.1f k%s", x / 1e3, unit);
}

int cmd_synth(int argc, char **argv)
{
    const char *arch = "llama", *preset_name = NULL, *type_name = "f32", *seed_text = "1";
    const char *tokenizer = NULL, *out = NULL;
    int threads = 0;
    bool tied = false, untied = false, quiet = false;
    const lb_opt opts[] = {
        {"arch", 0, OPT_STRING, &arch, "ARCH", "architecture: llama (default)"},
        {"preset", 0, OPT_STRING, &preset_name, "NAME",
         "shape: stories15M, stories110M or llama-1b"},
        {"type", 0, OPT_STRING, &type_name, "TYPE",
         "matrix type: f32 (default), f16, q8_0, q4_0, q4_1; norms stay f32"},
        {"seed", 0, OPT_STRING, &seed_text, "S", "random seed, 0 to 2^64-1 (default 1)"},
        {"tokenizer", 0, OPT_STRING, &tokenizer, "PATH",
         "llama2.c tokenizer.bin (default: $LOWBIT_SHARED or ../shared, models/tokenizer.bin)"},
        {"output", 'o', OPT_STRING, &out, "FILE", "GGUF file to write"},
        {"tied", 0, OPT_FLAG, &tied, NULL, "share token_embd as the output head (no output.weight)"},
        {"untied", 0, OPT_FLAG, &untied, NULL, "write a separate output.weight"},
        {"threads", 't', OPT_INT, &threads, "N", "threads generating weights (default: all cores)"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no progress or summary"},
    };
    const lb_cmd_spec spec = {
        "lowbit synth --preset NAME [--type TYPE] [--seed S] [--tokenizer PATH] -o FILE",
        "Writes a GGUF model with seeded random weights (normal, std 0.02; norms 1) in the\n"
        "shapes of a real model, with a real vocabulary, that lowbit and llama.cpp load.\n"
        "Presets (all with the 32000-token Llama 2 vocabulary):\n"
        "  stories15M   dim 288, ffn 768, 6 layers, 6 heads, ctx 256, separate output head\n"
        "  stories110M  dim 768, ffn 2048, 12 layers, 12 heads, ctx 1024, separate output head\n"
        "  llama-1b     Llama 3.2 1B: dim 2048, ffn 8192, 16 layers, 32 heads, 8 kv heads,\n"
        "               ctx 2048, rope theta 500000, tied embeddings\n"
        "The same seed gives the same file byte for byte. Weights are generated and written\n"
        "block by block, so memory stays small at any size; the file appears only when complete.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;

    if (strcmp(arch, "llama") != 0) {
        fprintf(stderr, "synth: unknown --arch '%s' (expected llama)\n", arch);
        return 1;
    }
    if (!preset_name) {
        fprintf(stderr, "synth: --preset NAME is required (%s)\n", lb_synth_preset_names());
        return 1;
    }
    const lb_synth_preset *preset = lb_synth_preset_find(preset_name);
    if (!preset) {
        fprintf(stderr, "synth: unknown --preset '%s' (expected %s)\n", preset_name,
                lb_synth_preset_names());
        return 1;
    }
    int type = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type_name, types[i].name) == 0)
            type = (int)types[i].type;
    if (type < 0) {
        fprintf(stderr, "synth: unknown --type '%s' (expected f32, f16, q8_0, q4_0 or q4_1)\n",
                type_name);
        return 1;
    }
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(seed_text, &end, 10);
    if (errno || end == seed_text || *end || seed_text[0] == '-') {
        fprintf(stderr, "synth: --seed expects an integer from 0 to 2^64-1, got '%s'\n",
                seed_text);
        return 1;
    }
    if (!out) {
        fprintf(stderr, "synth: -o FILE is required\n");
        return 1;
    }
    if (tied && untied) {
        fprintf(stderr, "synth: --tied and --untied exclude each other\n");
        return 1;
    }
    if (threads < 0) {
        fprintf(stderr, "synth: --threads must not be negative\n");
        return 1;
    }
    /* Fail before any work when the output cannot be created there. */
    if (lb_is_dir(out)) {
        fprintf(stderr, "synth: cannot write %s: it is a directory\n", out);
        return 1;
    }
    char *dir = lb_path_dir(out);
    bool dir_ok = lb_is_dir(dir) && access(dir, W_OK | X_OK) == 0;
    if (!dir_ok) {
        fprintf(stderr, "synth: cannot write %s: directory %s %s\n", out, dir,
                lb_is_dir(dir) ? "is not writable" : "does not exist");
        free(dir);
        return 1;
    }
    free(dir);

    lb_error err;
    lb_tokenizer *tok;
    /* The project's shared data sits beside the checkout; tests point at it explicitly. */
    const char *shared = getenv("LOWBIT_SHARED");
    char *default_tok = lb_path_join(shared && *shared ? shared : "../shared",
                                     "models/tokenizer.bin");
    const char *tok_path = tokenizer ? tokenizer : default_tok;
    int tok_rc = tok_load_llama2c(tok_path, 0, &tok, &err);
    free(default_tok);
    if (tok_rc) {
        fprintf(stderr, "synth: %s%s\n", err.msg,
                tokenizer ? "" : " (give the vocabulary with --tokenizer PATH)");
        return 1;
    }
    lb_synth_preset shape = *preset;
    if (tied || untied)
        shape.tied = tied;
    progress_ui ui = {isatty(2) != 0, -1};
    lb_synth_params sp = {.preset = &shape, .tok = tok, .type = (lb_type)type,
                          .seed = (uint64_t)seed, .n_threads = threads,
                          .progress = quiet ? NULL : show_progress, .progress_user = &ui};
    lb_synth_result res;
    double t0 = lb_now_ms();
    if (lb_synth_write(&sp, out, &res, &err)) {
        if (ui.tty && ui.last >= 0)
            fputc('\n', stderr);
        fprintf(stderr, "synth: %s\n", err.msg);
        tok_free(tok);
        return 1;
    }
    double secs = (lb_now_ms() - t0) / 1e3;
    if (!quiet) {
        char size[32], params[32];
        human((double)res.file_bytes, size, sizeof size, "B");
        human((double)res.n_params, params, sizeof params, "");
        printf("wrote %s: %s (%" PRIu64 " bytes), %s parameters (%" PRId64 "), %d tensors, "
               "%s, %s output head, %d-token vocabulary, seed %llu, %.1f s\n",
               out, size, res.file_bytes, params, res.n_params, res.n_tensors,
               lb_type_name(type), shape.tied ? "tied" : "separate", tok->n_vocab, seed, secs);
    }
    tok_free(tok);
    return 0;
}
