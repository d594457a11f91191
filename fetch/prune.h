/* airlock-fetch --prune: drop what no kept tag reaches, crash-safely.
 *
 * Order (each step safe to be killed after):
 *   1. the database, in one transaction (al_db_prune): removed tags, and
 *      the rows of unreachable blobs, manifests and edges;
 *   2. index.json, rewritten from the remaining tags;
 *   3. the files, under the GC lock taken exclusively without waiting:
 *      every blob file whose row went, and every file in blobs/sha256 that
 *      has no row at all (left by a prune killed between steps 1 and 3, or
 *      by a download whose row never came) unless it is protected (below);
 *      when a reader (airlock-export) holds the GC lock, nothing is
 *      unlinked: the files are rowless now, and the next prune removes
 *      them;
 *   4. fsync of blobs/sha256;
 *   5. stale entries of STORE/tmp (below).
 * A kill between 1 and 3 leaves files without rows, never rows without
 * files: the store stays valid and the next prune sweeps them.
 *
 * Protection by time (docs/DESIGN.md, "Crash rules"): opts->protect_since
 * keeps rows added since then (db.h) and, here, rowless files whose mtime
 * is that late: a killed run's finished downloads, which have files but
 * maybe no rows yet, survive a prune that runs before the next fetch.
 *
 * STORE/tmp: temp files of writers (blob-*.tmp, index.json.*.tmp, ...)
 * are all stale, since the caller holds the store's write lock and has
 * no writer of its own open; a partial download (partial-<hex>) goes when
 * its blob is complete in blobs/ already, or when it has not been written
 * to for a day and is older than protect_since (no interrupted run may
 * still resume it); a damaged blob a fetch moved aside (quarantine-<hex>)
 * is kept a day for a look, then goes. Directories are left alone. */
#ifndef AL_PRUNE_H
#define AL_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "store.h"

/* One entry of STORE/tmp that goes (or would). */
typedef struct al_prune_tmp {
    char *name; /* in STORE/tmp */
    int64_t size;
    const char *why; /* static text: "left by an interrupted writer", ... */
} al_prune_tmp;

typedef struct al_prune_report {
    al_prune_result db; /* rows removed (or that would be) */
    size_t n_stray;     /* files in blobs/sha256 without a row, unprotected */
    int64_t stray_bytes;
    size_t n_protected; /* rowless files kept: written since protect_since */
    int64_t protected_bytes;
    size_t n_unlinked; /* files actually removed (0 in a dry run) */
    size_t n_skipped;  /* entries of blobs/sha256 that are not digests: left alone */
    bool deferred;     /* a reader held the GC lock: no file was removed */
    size_t n_deferred; /* the files that were to go, left for the next prune */
    int64_t deferred_bytes;
    al_prune_tmp *tmp; /* STORE/tmp entries removed (or that would be) */
    size_t n_tmp;
    int64_t tmp_bytes;
    bool dry_run;
    int keep;
} al_prune_report;

/* Prune the store as opts says (see db.h for what is kept). In a dry run
 * nothing changes; the report says what would go. */
int al_prune_run(al_store *store, al_db *db, const al_prune_opts *opts, al_prune_report *out,
                 al_error **err);
void al_prune_report_dispose(al_prune_report *r);

#endif
