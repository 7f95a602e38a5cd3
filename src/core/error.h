/* Error reporting: every function that can fail on input returns -1 and fills an lb_error
 * with one line naming the file, the field or offset, and what was expected. */
#ifndef LB_ERROR_H
#define LB_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} lb_error;

/* Formats the message into err (if not NULL) and returns -1, so callers can write
 * `return lb_fail(err, "...")`. */
int lb_fail(lb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with more context ("file.gguf: " + msg). */
int lb_fail_prefix(lb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation that cannot fail on sizes already validated: exits with a message on OOM.
 * Sizes that come from files are checked against the file before they reach these. */
void *lb_malloc(size_t n);
void *lb_calloc(size_t count, size_t size);
void *lb_realloc(void *p, size_t n);
char *lb_strdup(const char *s);
char *lb_strndup(const char *s, size_t n);

#endif
