/* Progress bar for long work (quantization, evaluation, benchmarks, pipeline stages).
 * On a terminal it redraws one stderr line at most ten times a second with the fraction done,
 * the rate and an ETA; when stderr is not a terminal it prints a plain line at each tenth so
 * logs stay readable. LOWBIT_PROGRESS=0 silences it, =1 forces the terminal form. */
#ifndef LB_PROGRESS_H
#define LB_PROGRESS_H

#include <stdint.h>

typedef struct lb_progress lb_progress;

/* unit names what is counted ("tok", "items", "layers"). Never fails; returns NULL only
 * when progress is switched off, and every function accepts NULL. */
lb_progress *lb_progress_start(const char *label, uint64_t total, const char *unit);
void lb_progress_update(lb_progress *p, uint64_t done);
void lb_progress_add(lb_progress *p, uint64_t n);
/* Ends the line with the total time; frees p. */
void lb_progress_finish(lb_progress *p);

#endif
