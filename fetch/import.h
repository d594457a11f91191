/* airlock-fetch --import BUNDLE: apply a bundle that airlock-export
 * --bundle wrote on the connected side (docs/DESIGN.md, "Bundles").
 *
 *   1. find the bundle's files (BUNDLE, or its volumes BUNDLE.001 ...: all
 *      of them must be there) and read its manifest;
 *   2. under the store's writer lock: a bundle applied before is a no-op;
 *      one whose base this store never applied, or older than the last
 *      one applied from its source store, is refused, naming the bundle
 *      that must come first; a blob it omits must be in this store;
 *   3. stream every volume: each blob member is hashed as it is read and
 *      lands, verified and fsynced, in STORE/tmp/import-<bundle id>/ (a
 *      rerun reuses what is there; what the store holds already is
 *      skipped); parts of a blob split across volumes are joined and the
 *      whole checked;
 *   4. walk every tag's graph (common/graph.h) over what came and what
 *      the store holds: it must be complete;
 *   5. only then: the verified files are renamed into blobs/sha256, and one
 *      transaction writes their rows, every tag (moved as a fetch moves
 *      it: tag_history records it) and the bundles row; index.json is
 *      rewritten; the staging directory goes.
 *
 * Nothing of the bundle is visible (rows, blobs/ files, tags, index.json)
 * before step 5, and a bundle that fails anywhere before it changes
 * nothing visible. Memory: the manifest and a table of its members; blob
 * data streams. */
#ifndef AL_IMPORT_H
#define AL_IMPORT_H

#include <stdbool.h>

typedef struct al_import_opts {
    const char *bundle;    /* BUNDLE as given */
    const char *store_dir; /* --store */
    const char *json_path; /* --json FILE or NULL */
    const char *argv_text; /* for the runs row (holds no secret) */
    const char *version;
} al_import_opts;

/* The whole run: the exit status (0 applied or already applied, 1 the
 * bundle was refused or is damaged, 2 usage, 3 the store is unusable). */
int al_import_run(const al_import_opts *o);

#endif
