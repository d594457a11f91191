/* A hash map from strings to pointers, for the lookups a run makes once per
 * image or per blob (hosts, token scopes, blobs by digest, list
 * duplicates): constant time where a scan of every earlier entry would make
 * a run of n tags cost n^2.
 *
 * Keys are copied; values are the caller's (al_strmap_free_with frees
 * them, for a map that owns them). Open addressing with linear probing;
 * the table doubles at 70% load. No removal: a run only ever adds. */
#ifndef AL_STRMAP_H
#define AL_STRMAP_H

#include <stddef.h>

typedef struct al_strmap al_strmap;

al_strmap *al_strmap_new(void);
void al_strmap_free(al_strmap *m); /* accepts NULL; frees the keys, not the values */

/* The value stored under key, or NULL. */
void *al_strmap_get(const al_strmap *m, const char *key);
/* Store value under key, replacing any earlier value (which is returned, or NULL). */
void *al_strmap_put(al_strmap *m, const char *key, void *value);
size_t al_strmap_count(const al_strmap *m);

/* al_strmap_free, after free_value has been called on every value: for a
 * map that owns its values after all. Accepts NULL. */
void al_strmap_free_with(al_strmap *m, void (*free_value)(void *value));

#endif
