/* airlock-export --bundle: writing the planned bundle (bundle-plan.h).
 *
 * Every file is written through common/file.h: a temp file beside it,
 * fsync, rename. The volumes are all written first and renamed into place
 * only when the last one is complete, then OUT.json beside them: a bundle
 * whose OUT.json is there is whole. Without force an existing OUT, volume
 * or OUT.json is never replaced. Blobs go through export/blobcopy.h (each
 * opened once, verified as it is copied), under the GC lock the store
 * holds for readers. */
#ifndef AL_EXPORT_BUNDLE_WRITE_H
#define AL_EXPORT_BUNDLE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "sink.h"
#include "../common/store.h"
#include "bundle-plan.h"

typedef struct al_bundle_write_opts {
    const char *out; /* OUT: the bundle, or the stem of its volumes OUT.001 ... */
    bool force;      /* replace existing files */
    al_sink_kind kind;
    int level;   /* 0: the kind's default */
    bool verify; /* sha256 of every blob while copying (sizes are always checked) */
    void (*progress)(void *ud, uint64_t done, uint64_t total);
    void *progress_ud;
} al_bundle_write_opts;

/* What was written: the volume files (or OUT), then OUT.json. */
typedef struct al_bundle_files {
    char **paths;
    uint64_t *bytes; /* each file's size */
    size_t n;
} al_bundle_files;

void al_bundle_files_dispose(al_bundle_files *f);

/* The files a plan writes (OUT or its volumes, then OUT.json), without
 * writing them: for the check that none exists. */
void al_bundle_files_of(al_bundle_files *out, const al_bundle_plan *p, const char *path);

int al_bundle_write(const al_bundle_plan *p, al_store *store, const al_bundle_write_opts *o,
                    al_bundle_files *out, al_error **err);

#endif
