/* Leaks on purpose: in the sanitizer build, ctest expects LeakSanitizer's report from this
 * program, which shows that leak checking is on for the test programs (a suite that passes
 * with LeakSanitizer silently off would prove nothing about leaks). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char *p = malloc(4096);
    if (!p)
        return 2;
    snprintf(p, 4096, "lost");
    printf("%s at %p\n", p, (void *)p);
    p = NULL;   /* the only pointer is gone before exit: a definite leak */
    return 0;
}
