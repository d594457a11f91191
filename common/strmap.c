/* The string hash map of strmap.h: FNV-1a, open addressing, linear probing. */
#include "strmap.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

typedef struct slot {
    char *key; /* NULL: empty */
    void *value;
} slot;

struct al_strmap {
    slot *slots;
    size_t cap; /* a power of two */
    size_t n;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

al_strmap *al_strmap_new(void)
{
    al_strmap *m = al_xcalloc(1, sizeof(*m));
    m->cap = 16;
    m->slots = al_xcalloc(m->cap, sizeof(slot));
    return m;
}

void al_strmap_free(al_strmap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find(const al_strmap *m, const char *key)
{
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static void grow(al_strmap *m)
{
    slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = al_xcalloc(m->cap, sizeof(slot));
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key != NULL)
            *find(m, old[i].key) = old[i];
    free(old);
}

void *al_strmap_get(const al_strmap *m, const char *key)
{
    return find(m, key)->value;
}

void *al_strmap_put(al_strmap *m, const char *key, void *value)
{
    slot *s = find(m, key);
    if (s->key != NULL) {
        void *prev = s->value;
        s->value = value;
        return prev;
    }
    if ((m->n + 1) * 10 > m->cap * 7) {
        grow(m);
        s = find(m, key);
    }
    s->key = al_xstrdup(key);
    s->value = value;
    m->n++;
    return NULL;
}

size_t al_strmap_count(const al_strmap *m)
{
    return m->n;
}

void al_strmap_free_with(al_strmap *m, void (*free_value)(void *value))
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != NULL)
            free_value(m->slots[i].value);
    al_strmap_free(m);
}
