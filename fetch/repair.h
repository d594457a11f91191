/* airlock-fetch --repair: re-hash every blob of the graphs of the given
 * tags (a missing file, a wrong size, content that does not hash to its
 * name) and move the damaged ones aside to STORE/tmp/quarantine-<hex>, so
 * that the fetch of those refs that follows downloads them again. Each
 * blob is read once, however many graphs share it. A tag the store does
 * not hold is left to the fetch. */
#ifndef AL_REPAIR_H
#define AL_REPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "store.h"

typedef struct al_repair_report {
    size_t tags;    /* graphs looked at */
    size_t blobs;   /* distinct blobs re-hashed */
    uint64_t bytes; /* their bytes */
    size_t damaged; /* missing, wrong size or corrupt: to be fetched again */
} al_repair_report;

int al_repair_check(al_store *store, al_db *db, char *const *names, size_t n, al_repair_report *out,
                    al_error **err);

#endif
