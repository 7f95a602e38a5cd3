/* Growable arrays of int and of bytes. */
#ifndef LB_VEC_H
#define LB_VEC_H

#include <stddef.h>

typedef struct {
    int *v;
    int n, cap;
} lb_ivec;

void lb_ivec_push(lb_ivec *a, int x);
void lb_ivec_free(lb_ivec *a);

typedef struct {
    char *v;
    size_t n, cap;
} lb_buf;

void lb_buf_append(lb_buf *b, const void *data, size_t n);
void lb_buf_appendf(lb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NUL-terminates without counting the terminator; returns b->v. */
char *lb_buf_cstr(lb_buf *b);
void lb_buf_free(lb_buf *b);

#endif
