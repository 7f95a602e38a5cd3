/* Placeholders for subcommands still being built. Each is a weak symbol: the file that
 * implements a command (cmd_NAME.c) defines the strong one and the linker takes it, so
 * commands land one by one without touching this file. Remove an entry once it has landed. */
#include "cli/commands.h"

#include <stdio.h>

static int not_yet(const char *name)
{
    fprintf(stderr, "lowbit %s: not available in this build yet\n", name);
    return 1;
}

#define PENDING(name) \
    __attribute__((weak)) int cmd_##name(int argc, char **argv) { (void)argc; (void)argv; return not_yet(#name); }

PENDING(quantize)
PENDING(export)
PENDING(perplexity)
PENDING(kld)
PENDING(mc)
PENDING(bench)
PENDING(serve)
PENDING(pipeline)
PENDING(runs)
PENDING(report)
