/* Open-addressing hash map with linear probing; FNV-1a hashes; the table stays at most half full. */
#include "core/strmap.h"
#include "core/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;    /* NULL marks an empty slot */
    size_t len;
    uint64_t hash;
    int value;
} slot;

struct lb_strmap {
    slot *slots;
    size_t cap;   /* power of two */
    size_t count;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

lb_strmap *lb_strmap_create(size_t expected)
{
    lb_strmap *m = lb_calloc(1, sizeof *m);
    m->cap = 16;
    while (m->cap < expected * 2)
        m->cap <<= 1;
    m->slots = lb_calloc(m->cap, sizeof(slot));
    return m;
}

void lb_strmap_free(lb_strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find_slot(slot *slots, size_t cap, const char *key, size_t len, uint64_t h)
{
    size_t i = h & (cap - 1);
    for (;;) {
        slot *s = &slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
        i = (i + 1) & (cap - 1);
    }
}

static void grow(lb_strmap *m)
{
    size_t cap = m->cap * 2;
    slot *slots = lb_calloc(cap, sizeof(slot));
    for (size_t i = 0; i < m->cap; i++) {
        slot *old = &m->slots[i];
        if (old->key)
            *find_slot(slots, cap, old->key, old->len, old->hash) = *old;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

void lb_strmap_put(lb_strmap *m, const char *key, size_t len, int value)
{
    if ((m->count + 1) * 2 > m->cap)
        grow(m);
    uint64_t h = hash_bytes(key, len);
    slot *s = find_slot(m->slots, m->cap, key, len, h);
    if (!s->key) {
        s->key = lb_strndup(key, len);
        s->len = len;
        s->hash = h;
        m->count++;
    }
    s->value = value;
}

bool lb_strmap_get(const lb_strmap *m, const char *key, size_t len, int *value)
{
    const slot *s = find_slot(m->slots, m->cap, key, len, hash_bytes(key, len));
    if (!s->key)
        return false;
    if (value)
        *value = s->value;
    return true;
}

size_t lb_strmap_count(const lb_strmap *m)
{
    return m->count;
}
