/* Subcommands: each takes its own argv (argv[0] is the command name) and returns the exit
 * status: 0 success, 1 bad input or failure (one line on stderr says why). */
#ifndef LB_COMMANDS_H
#define LB_COMMANDS_H

#define LOWBIT_VERSION "0.1.0"

int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_kld(int argc, char **argv);
int cmd_mc(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* These live in lowbit-extras.so (core/extras.h): main finds them there by name. */
int cmd_pull(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
