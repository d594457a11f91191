/* The blobs an image graph reaches in a database snapshot (db.h "Store
 * inspection"): the root, its child manifests (nested indexes too, up to
 * the graph's level limit: common/graph.h), their configs and layers,
 * following the edges table and each manifest row's config_digest. Used by
 * --list and --inspect for sizes that count a blob once, and by
 * --verify-store to find tags whose graph is incomplete. */
#ifndef AL_EXPORT_CLOSURE_H
#define AL_EXPORT_CLOSURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/graph.h"
#include "../db/db.h"

typedef struct al_closure {
    long *blobs; /* indexes into snap->blobs, each once, in walk order (root first) */
    size_t n;
    long *sorted;   /* the same, ascending, for al_closure_has */
    char **missing; /* referenced digests without a blobs row, each once */
    size_t n_missing;
    int64_t bytes; /* sum of the sizes of blobs[], each counted once */
} al_closure;

/* The snapshot as a source for common/graph.h's walk: a manifest is its
 * manifests row (kind, platform, config) and its edges (entries, layers);
 * AL_E_NOT_FOUND without a row. *out borrows s. */
void al_closure_source(al_graph_source *out, const al_db_snapshot *s);

/* Walk the graph of root in s. Never fails: what is missing is listed. */
void al_closure_compute(al_closure *out, const al_db_snapshot *s, const char *root);
void al_closure_dispose(al_closure *c);
/* The platforms of the image manifests the closure reaches ("linux/amd64",
 * attestations' unknown/unknown left out), each once, in walk order:
 * *out is a malloc'd array of malloc'd strings (al_strv_free). */
size_t al_closure_platforms(const al_db_snapshot *s, const al_closure *c, char ***out);
bool al_closure_has(const al_closure *c, long blob_index);

#endif
