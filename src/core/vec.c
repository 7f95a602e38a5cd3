#include "core/vec.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_ivec_push(lb_ivec *a, int x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = lb_realloc(a->v, (size_t)a->cap * sizeof(int));
    }
    a->v[a->n++] = x;
}

void lb_ivec_free(lb_ivec *a)
{
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static void buf_reserve(lb_buf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1)
        cap *= 2;
    b->v = lb_realloc(b->v, cap);
    b->cap = cap;
}

void lb_buf_append(lb_buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->v + b->n, data, n);
    b->n += n;
    b->v[b->n] = '\0';
}

void lb_buf_appendf(lb_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->v + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

char *lb_buf_cstr(lb_buf *b)
{
    buf_reserve(b, 0);
    b->v[b->n] = '\0';
    return b->v;
}

void lb_buf_free(lb_buf *b)
{
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}
