/* Placeholders for subcommands being written; each is replaced by its own file. */
#include "cli/commands.h"

#include <stdio.h>

__attribute__((weak)) int cmd_pull(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "lowbit pull: not available yet\n");
    return 1;
}
