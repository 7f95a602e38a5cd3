/* Monotonic wall-clock time. */
#ifndef LB_TIMER_H
#define LB_TIMER_H

double lb_now_ms(void);

#endif
