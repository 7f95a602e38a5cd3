/* Progress bar: see progress.h. */
#include "core/progress.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lb_progress {
    char label[64];
    char unit[16];
    uint64_t total, done;
    double t0, last_draw;
    int tty;
    int last_tenth;
};

static int progress_mode(void)
{
    /* Under mpirun only the first process draws: the others' bars would overwrite its line. */
    if (lb_dist_rank() > 0) return -1;
    const char *env = getenv("LOWBIT_PROGRESS");
    if (env && strcmp(env, "0") == 0) return -1;
    if (env && strcmp(env, "1") == 0) return 1;
    if (lb_log_level() == 0) return -1;
    return isatty(STDERR_FILENO) ? 1 : 0;
}

static void format_seconds(double s, char *out, size_t n)
{
    if (s < 0 || s > 360000) snprintf(out, n, "--:--");
    else if (s >= 3600) snprintf(out, n, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else snprintf(out, n, "%02d:%02d", (int)s / 60, (int)s % 60);
}

static void draw(lb_progress *p, int final)
{
    double elapsed = (lb_now_ms() - p->t0) / 1000.0;
    double frac = p->total ? (double)p->done / (double)p->total : 0.0;
    if (frac > 1) frac = 1;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    char eta[32], spent[32];
    format_seconds(rate > 0 ? (double)(p->total - (p->done < p->total ? p->done : p->total)) / rate : -1,
                   eta, sizeof eta);
    format_seconds(elapsed, spent, sizeof spent);
    if (p->tty) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int filled = (int)(frac * WIDTH + 0.5);
        for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '#' : '.';
        bar[WIDTH] = 0;
        fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu %s  %.1f %s/s  %s %s\033[K%s", p->label, bar,
                frac * 100, (unsigned long long)p->done, (unsigned long long)p->total, p->unit,
                rate, p->unit, final ? "in" : "ETA", final ? spent : eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "%s: %3.0f%% %llu/%llu %s, %.1f %s/s, %s %s\n", p->label, frac * 100,
                (unsigned long long)p->done, (unsigned long long)p->total, p->unit, rate, p->unit,
                final ? "took" : "ETA", final ? spent : eta);
    }
    fflush(stderr);
}

lb_progress *lb_progress_start(const char *label, uint64_t total, const char *unit)
{
    int mode = progress_mode();
    if (mode < 0) return NULL;
    lb_progress *p = lb_calloc(1, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "");
    p->total = total;
    p->tty = mode;
    p->t0 = p->last_draw = lb_now_ms();
    return p;
}

void lb_progress_update(lb_progress *p, uint64_t done)
{
    if (!p) return;
    p->done = done;
    if (p->tty) {
        double now = lb_now_ms();
        if (now - p->last_draw >= 100) {
            p->last_draw = now;
            draw(p, 0);
        }
    } else if (p->total) {
        int tenth = (int)(10 * (done < p->total ? done : p->total) / p->total);
        if (tenth > p->last_tenth && tenth < 10) {
            p->last_tenth = tenth;
            draw(p, 0);
        }
    }
}

void lb_progress_add(lb_progress *p, uint64_t n)
{
    if (p) lb_progress_update(p, p->done + n);
}

void lb_progress_finish(lb_progress *p)
{
    if (!p) return;
    draw(p, 1);
    free(p);
}
