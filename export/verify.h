/* airlock-export --verify-store: re-hash every blob and check that the
 * database, index.json and the files agree.
 *
 * Checked, each problem reported once, one line each:
 *   corrupt     a file in blobs/sha256 whose content does not hash to its name,
 *               or a manifest or config of a tag's graph that export could
 *               not use (common/graph.h: it does not parse, is not what
 *               its descriptor says, or nests indexes too deep)
 *   unindexed   a blob file without a blobs row
 *   missing     a blobs row without a file
 *   size        a blobs row whose size differs from its file's
 *   dangling    a manifests, edges or tags row referencing a blob without a row
 *   incomplete  a tag whose graph lacks a blob or holds a damaged one (from
 *               the edges and from each image manifest's own descriptors)
 *   index       index.json disagreeing with the tags table: missing, extra,
 *               duplicate entries, wrong digest, size, media type or annotations
 *   stray       anything in blobs/ that is not a regular file named by a digest
 *   database    SQLite's quick_check, invalid digests in rows
 *   layout      oci-layout, index.json or blobs/sha256 unreadable or malformed
 *   io          a file that could not be read
 *   tmp         (info) files left in tmp/: partial downloads are expected, and an
 *               import's staging directory (tmp/import-<bundle id>/, verified blobs)
 *
 * Works on a read-only store and while airlock-fetch writes to it: the
 * database is read in one read transaction, before the files are listed;
 * a file/row disagreement is confirmed against a fresh read before it is
 * reported (a fetch commits a file before its row, so a file newer than
 * the snapshot is not an orphan). While a fetch holds the store's lock,
 * two disagreements are its normal state and are reported as info: files
 * it downloaded whose rows it adds when the whole batch is in, and
 * index.json, which lags the tags table until the end of its run. */
#ifndef AL_EXPORT_VERIFY_H
#define AL_EXPORT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../common/store.h"
#include "../db/db.h"

typedef enum { AL_VERIFY_ERROR = 0, AL_VERIFY_INFO = 1 } al_verify_severity;

typedef struct al_verify_problem {
    al_verify_severity severity;
    const char *kind; /* static: "corrupt", "missing", ... (see above) */
    char *message;    /* names the file, row or tag concerned */
} al_verify_problem;

typedef struct al_verify_report {
    al_verify_problem *problems; /* in the order found */
    size_t n_problems;
    size_t n_errors, n_infos;
    uint64_t blobs_hashed; /* files in blobs/sha256 that were read */
    uint64_t bytes_hashed;
    size_t n_tags;
    bool writer_active; /* an airlock-fetch held the store's lock */
} al_verify_report;

/* Called after each chunk hashed: bytes done of the total to hash. */
typedef void (*al_verify_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* Returns 0 when the check ran (the verdict is in out->n_errors), a
 * negative code when it could not (the database cannot be read). */
int al_verify_store(al_verify_report *out, al_store *store, al_db *db,
                    al_verify_progress_fn progress, void *progress_ud, al_error **err);
void al_verify_report_dispose(al_verify_report *r);

#endif
