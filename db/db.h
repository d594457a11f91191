/* airlock.db: the SQLite index of the store. Every SQL statement of the
 * project lives in db/. The schema is versioned by PRAGMA user_version;
 * migrations run in BEGIN IMMEDIATE .. COMMIT; a database newer than this
 * binary is refused (AL_E_DB: "... schema version N is newer than this
 * airlock (M)").
 *
 * Tables (see DESIGN.md): blobs, manifests, edges, tags, tag_history, runs.
 * Invariants kept by the callers and by al_db_graph_commit: a blobs row
 * only for a present, verified file; a tag row only once every blob of its
 * graph has a row. */
#ifndef AL_DB_H
#define AL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/bundle.h"
#include "../common/digest.h"
#include "../common/error.h"
#include "../common/platform.h"
#include "../common/ref.h"
#include "../common/store.h"

typedef struct al_db al_db;

/* readonly: opened with SQLITE_OPEN_READONLY (export), works on a
 * read-only copy of the store (immutable fallback when the WAL cannot be
 * created). Read-write: WAL, synchronous=NORMAL, foreign_keys=ON, busy
 * timeout 10 s, migrations applied. */
int al_db_open(al_db **out, const char *path, bool readonly, al_error **err);
void al_db_free(al_db *db);

/* Blobs ------------------------------------------------------------- */
int al_db_blob_add(al_db *db, const char *digest, int64_t size, const char *media_type,
                   al_error **err);
/* *found: a row exists. *size_out (may be NULL) gets its size. */
int al_db_blob_get(al_db *db, const char *digest, bool *found, int64_t *size_out, al_error **err);

/* Graphs ------------------------------------------------------------ */
typedef struct al_graph_manifest {
    char digest[AL_DIGEST_BUF];
    const char *media_type; /* borrowed */
    int64_t size;
    bool is_index;
    bool has_platform;
    al_platform platform; /* for image manifests: from the parent index or the config */
    char config_digest[AL_DIGEST_BUF]; /* "" for indexes */
} al_graph_manifest;

typedef enum { AL_EDGE_MANIFEST = 0, AL_EDGE_CONFIG = 1, AL_EDGE_LAYER = 2 } al_edge_kind;

typedef struct al_graph_edge {
    char parent[AL_DIGEST_BUF];
    char child[AL_DIGEST_BUF];
    al_edge_kind kind;
    int position;
} al_graph_edge;

/* One fetched ref: its root and every manifest and edge beneath it that
 * this run stored (children filtered out by --platform are not listed). */
typedef struct al_graph {
    const char *full_name; /* tags.full_name: "docker.io/library/busybox:1.36", or name@digest */
    const char *source;    /* where it was fetched from: "127.0.0.1:5000/library/busybox" */
    const char *root_digest;
    const char *root_media_type;
    int64_t root_size;
    const al_graph_manifest *manifests;
    size_t n_manifests;
    const al_graph_edge *edges;
    size_t n_edges;
} al_graph;

/* In one transaction: insert manifests and edges (ignoring ones already
 * present), check that every referenced blob has a blobs row (AL_E_DB
 * otherwise: nothing is committed), then upsert the tag row: first_seen
 * on insert, checked_at = now, changed_at = now when the digest differs,
 * and a tag_history row (old, new, run) when it moved. *moved_from (may be
 * NULL) gets the previous digest or "" when the tag is new or unchanged. */
int al_db_graph_commit(al_db *db, const al_graph *g, int64_t run_id, char moved_from[AL_DIGEST_BUF],
                       al_error **err);

/* One write transaction around many of the calls here (BEGIN IMMEDIATE
 * .. COMMIT); al_db_graph_commit then uses a savepoint per graph. A failed
 * commit rolls back. */
int al_db_begin(al_db *db, al_error **err);
int al_db_commit(al_db *db, al_error **err);

/* True when a manifest row exists for digest. */
int al_db_manifest_has(al_db *db, const char *digest, bool *found, al_error **err);

/* Tags -------------------------------------------------------------- */
typedef struct al_tag {
    char *full_name;
    char digest[AL_DIGEST_BUF];
    char *media_type; /* of the root manifest */
    int64_t size;     /* of the root manifest */
    char *source;
    double first_seen, checked_at, changed_at; /* epoch seconds */
} al_tag;
void al_tag_dispose(al_tag *t);

/* *found false when no such tag. */
int al_db_tag_get(al_db *db, const char *full_name, al_tag *out, bool *found, al_error **err);
/* The store's root digest of ref into out, "" when the store has none: a
 * digest ref whose manifest file is present is its own root; otherwise the
 * tag row of "name:tag" (or "name@digest") answers, and *media_type is its
 * media type (malloc'd; NULL when the row has none or there is no row). */
int al_db_ref_root(al_db *db, const al_store *store, const al_ref *ref, char out[AL_DIGEST_BUF],
                   char **media_type, al_error **err);
/* What airlock-fetch's walk of a tag's graph found, kept for the next run:
 * a tag whose digest and selection (--platform, --include-attestations)
 * are those of its last walk is one HEAD, its graph not read again. The
 * graph a digest names never changes, and every row of it exists only when
 * its content is present, so the walk would find the same. Cleared
 * whenever the tag moves (al_db_graph_commit, al_db_graph_apply). */
typedef struct al_tag_walk {
    char digest[AL_DIGEST_BUF];
    char *selection; /* NULL: no walk recorded for this digest */
    char *platforms; /* "linux/amd64,linux/arm64" or "" */
    int blobs;       /* distinct blobs of the graph; -1 when unknown */
} al_tag_walk;
void al_tag_walk_dispose(al_tag_walk *w);
/* *found false when no such tag. Needs schema 3 (a store airlock-fetch
 * opened). */
int al_db_tag_walk_get(al_db *db, const char *full_name, al_tag_walk *out, bool *found,
                       al_error **err);
/* Record a walk of the tag at digest (nothing happens when the tag points
 * elsewhere). */
int al_db_tag_walk_set(al_db *db, const char *full_name, const char *digest, const char *selection,
                       const char *platforms, int blobs, al_error **err);
/* Set checked_at = now (a HEAD found the digest unchanged). */
int al_db_tag_touch(al_db *db, const char *full_name, al_error **err);
/* The same for n tags, a statement per 256 names (the tags a run found
 * unchanged). Names that are not tags are ignored. */
int al_db_tags_touch(al_db *db, const char *const *names, size_t n, al_error **err);
/* Every tag, ordered by full_name. *out malloc'd array of al_tag. */
int al_db_tags_list(al_db *db, al_tag **out, size_t *n_out, al_error **err);
void al_tags_free(al_tag *tags, size_t n);

/* Runs -------------------------------------------------------------- */
/* argv_text must hold no secrets (the caller drops password flags). */
int al_db_run_begin(al_db *db, const char *argv_text, int64_t *run_id_out, al_error **err);
int al_db_run_finish(al_db *db, int64_t run_id, int images_ok, int images_failed, int64_t bytes,
                     al_error **err);

/* Prune with retention (db/db-prune.c) ------------------------------ */
/* What a prune keeps reachable: every tag row that is not being removed,
 * and for each of those tags the `keep` digests it pointed at most
 * recently before its current one (tag_history: a digest counts from the
 * last move away from it), each with its whole graph (child manifests,
 * configs, layers through edges and manifests.config_digest, no deeper
 * than the image graph's level limit, common/graph.h). Blob rows added at
 * or after protect_since stay too (with their graphs), so that the layers
 * a failed image downloaded in this run, or a killed run's finished
 * layers, are not fetched again. Everything
 * else is unreachable: its blobs, manifests and edges rows go. */
typedef struct al_prune_opts {
    const char *const *remove; /* tags.full_name values to drop (borrowed) */
    size_t n_remove;
    int keep;             /* earlier digests kept per tag, >= 0 */
    double protect_since; /* epoch seconds; 0: protect nothing */
    bool dry_run;         /* compute only: the transaction is rolled back */
} al_prune_opts;

typedef struct al_prune_blob {
    char digest[AL_DIGEST_BUF];
    int64_t size;
} al_prune_blob;

typedef struct al_prune_tag {
    char *full_name;
    char digest[AL_DIGEST_BUF];
} al_prune_tag;

typedef struct al_prune_result {
    al_prune_blob *blobs; /* rows deleted (or that would be), ordered by digest */
    size_t n_blobs;
    int64_t bytes;         /* their sizes, summed */
    al_prune_tag *removed; /* tags removed, ordered by name */
    size_t n_removed;
    char **missing; /* opts->remove names that are not tags */
    size_t n_missing;
    size_t n_history_kept; /* earlier (tag, digest) graphs kept by opts->keep */
} al_prune_result;

/* What a prune protects by time (docs/DESIGN.md, "Crash rules"): the
 * start of the earliest run that never finished (killed: its downloads
 * may lack rows) since the last fetch run that did, current_run (the
 * caller's own run) excluded. *since_out is 0 when there is none. */
int al_db_prune_since(al_db *db, int64_t current_run, double *since_out, al_error **err);

/* In one transaction (BEGIN IMMEDIATE, committed with synchronous=FULL so
 * the rows are durably gone before the caller unlinks any file): delete
 * the tags named in opts->remove, then the edges, manifests and blobs rows
 * of everything unreachable. tag_history rows stay (they are the record).
 * The caller then unlinks the files of out->blobs. */
int al_db_prune(al_db *db, const al_prune_opts *opts, al_prune_result *out, al_error **err);
void al_prune_result_dispose(al_prune_result *r);

/* Store inspection (db-query.c) --------------------------------------
 * Read-only bulk queries for airlock-export --list, --inspect and
 * --verify-store. */

typedef struct al_db_blob {
    char digest[AL_DIGEST_BUF];
    int64_t size;
    char *media_type; /* NULL when unknown */
    double added_at;  /* epoch seconds */
} al_db_blob;

typedef struct al_db_manifest {
    char digest[AL_DIGEST_BUF];
    char *media_type;
    bool is_index;
    bool has_platform;
    al_platform platform;              /* valid when has_platform */
    char config_digest[AL_DIGEST_BUF]; /* "" for indexes */
} al_db_manifest;

/* The whole index as one consistent state: every table is read inside a
 * single read transaction, so a fetch committing meanwhile is seen either
 * entirely or not at all. blobs and manifests are sorted by digest, edges
 * by parent (then kind, position) and tags by full_name, for bisection. */
typedef struct al_db_snapshot {
    al_tag *tags;
    size_t n_tags;
    al_db_blob *blobs;
    size_t n_blobs;
    al_db_manifest *manifests;
    size_t n_manifests;
    al_graph_edge *edges;
    size_t n_edges;
    /* tag_history, by full_name, most recent first (al_db_history_load). */
    struct al_db_history *history;
    size_t n_history;
    /* The store's id ("" on schema 1) and the bundles applied to it. */
    char store_id[AL_BUNDLE_ID_BUF];
    struct al_db_bundle *bundles;
    size_t n_bundles;
} al_db_snapshot;

int al_db_snapshot_load(al_db *db, al_db_snapshot *out, al_error **err);
void al_db_snapshot_dispose(al_db_snapshot *s); /* accepts a zeroed snapshot */
/* Lookups by digest; NULL when there is no row. */
const al_db_blob *al_db_snapshot_blob(const al_db_snapshot *s, const char *digest);
const al_db_manifest *al_db_snapshot_manifest(const al_db_snapshot *s, const char *digest);
/* Index of the blob row of digest in s->blobs, or -1. */
long al_db_snapshot_blob_index(const al_db_snapshot *s, const char *digest);
/* The edges whose parent is digest (borrowed, *n_out of them; NULL and 0
 * when none), ordered manifest, config, layer, each by position. */
const al_graph_edge *al_db_snapshot_children(const al_db_snapshot *s, const char *parent,
                                             size_t *n_out);

/* Every blob row of the graph under root (root included, each once):
 * what airlock-fetch --repair re-hashes. Free with al_db_blobs_free. */
int al_db_graph_blobs(al_db *db, const char *root, al_db_blob **out, size_t *n_out, al_error **err);
void al_db_blobs_free(al_db_blob *v, size_t n);

/* SQLite's PRAGMA quick_check: *out gets one malloc'd message per problem
 * (none, and *out NULL, when the file is sound). Free with al_db_messages_free. */
int al_db_quick_check(al_db *db, char ***out, size_t *n_out, al_error **err);
void al_db_messages_free(char **v, size_t n);

/* Bundles (db-bundle.c) ----------------------------------------------
 * The store's id, made when the store is created (schema 2: a store made
 * by an older airlock gets one when airlock-fetch upgrades it), and the
 * bundles airlock-fetch --import applied. */

/* *found false when the database has no id yet (a read-only open of a
 * store no airlock-fetch has upgraded: AL_DB_MIN_READ_VERSION). */
int al_db_store_id(al_db *db, char out[AL_BUNDLE_ID_BUF], bool *found, al_error **err);

/* One applied bundle (bundles row). */
struct al_db_bundle {
    char id[AL_BUNDLE_ID_BUF];
    char source_store[AL_BUNDLE_ID_BUF];
    char base[AL_BUNDLE_ID_BUF]; /* "" when it built on none */
    double created_at;           /* as the bundle says (the connected side's clock) */
    double applied_at;           /* this side's clock */
    int64_t run_id;
    int64_t tags, blobs, bytes; /* carried by it */
};
typedef struct al_db_bundle al_db_bundle;

int al_db_bundle_get(al_db *db, const char *id, al_db_bundle *out, bool *found, al_error **err);
/* The applied bundle from source_store created last. */
int al_db_bundle_last(al_db *db, const char *source_store, al_db_bundle *out, bool *found,
                      al_error **err);
/* Every applied bundle, oldest application first (none on schema 1). */
int al_db_bundles_list(al_db *db, al_db_bundle **out, size_t *n_out, al_error **err);

/* tag_history rows. */
struct al_db_history {
    char *full_name;
    char old_digest[AL_DIGEST_BUF]; /* "" when the tag was first seen */
    char new_digest[AL_DIGEST_BUF];
    double at;
    int64_t run_id;
};
typedef struct al_db_history al_db_history;
/* Every row, ordered by full_name, then most recent first. */
int al_db_history_load(al_db *db, al_db_history **out, size_t *n_out, al_error **err);
void al_db_history_free(al_db_history *v, size_t n);

/* What an import makes visible, all of it in one transaction
 * (synchronous=FULL): blobs rows for the blobs it brought (their files
 * are in blobs/sha256 already), each tag's graph as al_db_graph_commit
 * applies it (manifests, edges, the tag and its history), and the
 * bundles row. Nothing is committed when any part fails. */
typedef struct al_db_import_blob {
    const char *digest;
    int64_t size;
    const char *media_type; /* may be NULL */
} al_db_import_blob;

typedef struct al_db_import {
    const al_db_import_blob *blobs;
    size_t n_blobs;
    const al_graph *graphs; /* one per tag */
    size_t n_graphs;
    const al_db_bundle *bundle; /* applied_at is set here */
} al_db_import;

/* moved (may be NULL) gets, per graph, the digest its tag had before, or
 * "" when the tag is new or did not move. */
int al_db_import_commit(al_db *db, const al_db_import *imp, int64_t run_id,
                        char (*moved)[AL_DIGEST_BUF], al_error **err);

#endif
