/* Messages on stderr, prefixed "lowbit: ". */
#include "core/log.h"
#include "core/dist.h"

#include <stdarg.h>
#include <stdio.h>

static int g_level = 1;   /* set once from the command line, before any threads start */

void lb_log_set_level(int level) { g_level = level; }
int lb_log_level(void) { return g_level; }

static void vlog(const char *tag, const char *fmt, va_list ap)
{
    fprintf(stderr, "lowbit: %s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void lb_log_info(const char *fmt, ...)
{
    /* Under mpirun the first process tells what the job does; the others would repeat it. */
    if (g_level < 1 || lb_dist_rank() > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void lb_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void lb_log_debug(const char *fmt, ...)
{
    if (g_level < 2)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}
