/* Diagnostics on stderr. Level: 0 quiet (errors only), 1 normal, 2 verbose. */
#ifndef LB_LOG_H
#define LB_LOG_H

void lb_log_set_level(int level);
int lb_log_level(void);
void lb_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lb_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lb_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
