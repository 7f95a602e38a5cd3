/* The module lowbit-extras.so: the code that calls the large libraries (libmicrohttpd, cairo
 * and pango, SQLite, libyaml, libcurl, OpenBLAS/LAPACK, MPI) and the commands built on it.
 * The program opens it on first use, so that the commands that only run models (generate,
 * bench, perplexity, ...) start without those libraries in memory. It is looked for beside
 * the program (a build tree), then in ../lib/lowbit from the program's directory (an installed
 * tree: `cmake --install`), or only where LOWBIT_EXTRAS names it. */
#ifndef LB_EXTRAS_H
#define LB_EXTRAS_H

#include "core/error.h"

/* The address of a symbol the module defines, opening the module first if need be; NULL with
 * err naming the module's path and the loader's reason when it cannot be opened or lacks the
 * symbol. From the main thread (command dispatch, joining an MPI job): not thread-safe. */
void *lb_extras_symbol(const char *name, lb_error *err);

#endif
