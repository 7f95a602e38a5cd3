/* A string → int hash map (open addressing) for vocabularies and merge tables.
 * Keys are byte strings with explicit length (they may contain NUL); the map copies them. */
#ifndef LB_STRMAP_H
#define LB_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lb_strmap lb_strmap;

lb_strmap *lb_strmap_create(size_t expected);
void lb_strmap_free(lb_strmap *m);
/* Inserts or replaces. */
void lb_strmap_put(lb_strmap *m, const char *key, size_t len, int value);
/* Returns true and sets *value when the key is present. */
bool lb_strmap_get(const lb_strmap *m, const char *key, size_t len, int *value);
size_t lb_strmap_count(const lb_strmap *m);

#endif
