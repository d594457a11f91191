/* Reference lists: refs from the command line and list files (-f FILE,
 * "-" = stdin). One ref per line; '#' starts a comment (whole line or
 * after the ref); blank lines and surrounding whitespace are ignored.
 * Lines longer than 4096 bytes are rejected. Every problem is collected as
 * "FILE:LINE: reason" so that the caller can print all of them and stop
 * before any network traffic. Duplicates (same full ref) are kept once. */
#ifndef AL_REFLIST_H
#define AL_REFLIST_H

#include <stddef.h>

#include "error.h"
#include "ref.h"

typedef struct al_reflist_entry {
    al_ref *ref;
    char *text;   /* the ref as written, trimmed */
    char *origin; /* "list.txt:12" or "argument 3" */
} al_reflist_entry;

typedef struct al_reflist {
    al_reflist_entry *items;
    size_t n;
    char **problems; /* "FILE:LINE: reason" lines */
    size_t n_problems;
    /* Private: an open-addressing set of item indexes keyed by the ref's
     * parts, so that the duplicate check costs O(1) per line and a list of
     * 100,000 refs parses in linear time. */
    size_t *seen;
    size_t seen_cap; /* a power of two, or 0 */
} al_reflist;

void al_reflist_init(al_reflist *l);
void al_reflist_dispose(al_reflist *l);

/* Add one ref given as an argument. A bad ref becomes a problem
 * ("argument N: reason"); returns 0 anyway. */
void al_reflist_add_arg(al_reflist *l, const char *text, int argno);

/* Read a list file ("-" = stdin). Bad lines become problems. Returns a
 * negative code only when the file itself cannot be read (err set:
 * "open list.txt: No such file or directory"). */
int al_reflist_add_file(al_reflist *l, const char *path, al_error **err);

/* Parse the content of a list given as a buffer; `name` is used for
 * origins. Used by add_file and by tests/fuzzers. */
void al_reflist_add_buffer(al_reflist *l, const char *name, const char *buf, size_t len);

#endif
