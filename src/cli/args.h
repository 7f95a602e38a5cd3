/* Option parsing shared by the subcommands: a table of options, --help generated from it,
 * and errors that name the option and what it expected. */
#ifndef LB_ARGS_H
#define LB_ARGS_H

#include <stdbool.h>

typedef enum { OPT_FLAG, OPT_STRING, OPT_INT, OPT_FLOAT } lb_opt_kind;

typedef struct {
    const char *name;    /* long name without "--" */
    char short_name;     /* 0 for none */
    lb_opt_kind kind;
    void *dest;          /* bool*, const char**, int*, float* */
    const char *arg;     /* placeholder shown in help, e.g. "N" */
    const char *help;
} lb_opt;

typedef struct {
    const char *usage;       /* "lowbit generate -m MODEL [options]" */
    const char *description; /* one paragraph */
    const lb_opt *opts;
    int n_opts;
    int min_positional, max_positional;
} lb_cmd_spec;

/* Parses argv. Returns 0 to go on, 1 after printing --help (exit 0), -1 on a bad option
 * (message printed, exit 1). Positional arguments are collected in order. */
int lb_args_parse(const lb_cmd_spec *spec, int argc, char **argv, const char **positional,
                  int *n_positional);

/* The --kv-type option of the commands that run models, and what it does: the KV caches of
 * every engine the command creates (NULL keeps the default). Prints "CMD: --kv-type X: ..."
 * and returns -1 for a name other than f32, f16 or q8. */
#define LB_OPT_KV_TYPE(var)                                                                 \
    {"kv-type", 0, OPT_STRING, &(var), "T",                                                 \
     "KV cache: f32, f16 for half the memory, q8 for a little over a quarter (int8 rows, "  \
     "one scale each) (default f32, or $LOWBIT_KV_CACHE)"}
int lb_args_kv_type(const char *cmd, const char *name);

#endif
