/* airlock-fetch --prune: drop what no kept tag reaches, crash-safely.
 *
 * Order (each step safe to be killed after):
 *   1. the database, in one transaction (al_db_prune): removed tags, and
 *      the rows of unreachable blobs, manifests and edges;
 *   2. index.json, rewritten from the remaining tags;
 *   3. the files: every blob file whose row went, and every file in
 *      blobs/sha256 that has no row at all (left by a prune killed between
 *      steps 1 and 3, or by a download whose row never came);
 *   4. fsync of blobs/sha256.
 * A kill between 1 and 3 leaves files without rows, never rows without
 * files: the store stays valid and the next prune sweeps them. The caller
 * holds the store's write lock, so no download is in flight. Partial
 * downloads in STORE/tmp are left alone (the next fetch resumes them). */
#ifndef AL_PRUNE_H
#define AL_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "store.h"

typedef struct al_prune_report {
    al_prune_result db; /* rows removed (or that would be) */
    size_t n_stray;     /* files in blobs/sha256 without a row */
    int64_t stray_bytes;
    size_t n_unlinked; /* files actually removed (0 in a dry run) */
    size_t n_skipped;  /* entries of blobs/sha256 that are not digests: left alone */
    bool dry_run;
    int keep;
} al_prune_report;

/* Prune the store as opts says (see db.h for what is kept). In a dry run
 * nothing changes; the report says what would go. */
int al_prune_run(al_store *store, al_db *db, const al_prune_opts *opts, al_prune_report *out,
                 al_error **err);
void al_prune_report_dispose(al_prune_report *r);

#endif
