/* Monotonic wall-clock time, and the process's CPU time. */
#ifndef LB_TIMER_H
#define LB_TIMER_H

double lb_now_ms(void);
/* CPU time of the whole process (every thread), in milliseconds. */
double lb_cpu_ms(void);

#endif
