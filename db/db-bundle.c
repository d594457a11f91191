/* The database side of bundles (db.h, "Bundles"): the store's id, the
 * bundles a store applied, tag history for the manifest and --list, and
 * the one transaction that makes an imported bundle visible.
 *
 * Like db-query.c these statements run a few times per program run, so
 * they are prepared on the spot rather than cached. */
#include "db.h"
#include "db-private.h"
#include "util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(sqlite3 *h, al_error **err, const char *what)
{
    return al_error_set(err, AL_E_DB, 0, "%s: %s", what, sqlite3_errmsg(h));
}

static void finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* NULL is a no-op */
}

static int prepare(sqlite3 *h, sqlite3_stmt **st, const char *sql, const char *what, al_error **err)
{
    if (sqlite3_prepare_v2(h, sql, -1, st, NULL) != SQLITE_OK)
        return fail(h, err, what);
    return 0;
}

static void col_copy(char *out, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

/* A table that migration 2 added is absent: a read-only open of a
 * database at schema 1 (AL_DB_MIN_READ_VERSION). */
static int has_table(sqlite3 *h, const char *name, bool *out, al_error **err)
{
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    int r = prepare(h, &st, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    "look up a table", err);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(h, err, "look up a table");
    *out = rc == SQLITE_ROW;
    return 0;
}

int al_db_store_id(al_db *db, char out[AL_BUNDLE_ID_BUF], bool *found, al_error **err)
{
    out[0] = '\0';
    *found = false;
    sqlite3 *h = al_db_sqlite(db);
    bool there = false;
    int r = has_table(h, "store_meta", &there, err);
    if (r < 0 || !there)
        return r;
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if ((r = prepare(h, &st, "SELECT value FROM store_meta WHERE key = 'store_id'",
                     "read the store id", err)) < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        col_copy(out, AL_BUNDLE_ID_BUF, st, 0);
        *found = out[0] != '\0';
        return 0;
    }
    return rc == SQLITE_DONE ? 0 : fail(h, err, "read the store id");
}

/* --- bundles applied ------------------------------------------------------- */

#define BUNDLE_COLUMNS                                                                             \
    "bundle_id, source_store, base_bundle, created_at, applied_at, run_id, tags, blobs, bytes"

static void bundle_from_row(al_db_bundle *b, sqlite3_stmt *st)
{
    memset(b, 0, sizeof(*b));
    col_copy(b->id, sizeof(b->id), st, 0);
    col_copy(b->source_store, sizeof(b->source_store), st, 1);
    col_copy(b->base, sizeof(b->base), st, 2);
    b->created_at = sqlite3_column_double(st, 3);
    b->applied_at = sqlite3_column_double(st, 4);
    b->run_id = sqlite3_column_int64(st, 5);
    b->tags = sqlite3_column_int64(st, 6);
    b->blobs = sqlite3_column_int64(st, 7);
    b->bytes = sqlite3_column_int64(st, 8);
}

static int bundle_query(al_db *db, const char *sql, const char *arg, al_db_bundle *out, bool *found,
                        al_error **err)
{
    *found = false;
    memset(out, 0, sizeof(*out));
    sqlite3 *h = al_db_sqlite(db);
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    int r = prepare(h, &st, sql, "read the bundles applied", err);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        bundle_from_row(out, st);
        *found = true;
        return 0;
    }
    return rc == SQLITE_DONE ? 0 : fail(h, err, "read the bundles applied");
}

int al_db_bundle_get(al_db *db, const char *id, al_db_bundle *out, bool *found, al_error **err)
{
    return bundle_query(db, "SELECT " BUNDLE_COLUMNS " FROM bundles WHERE bundle_id = ?1", id, out,
                        found, err);
}

int al_db_bundle_last(al_db *db, const char *source_store, al_db_bundle *out, bool *found,
                      al_error **err)
{
    return bundle_query(db,
                        "SELECT " BUNDLE_COLUMNS " FROM bundles WHERE source_store = ?1"
                        " ORDER BY created_at DESC, applied_at DESC LIMIT 1",
                        source_store, out, found, err);
}

int al_db_bundles_list(al_db *db, al_db_bundle **out, size_t *n_out, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3 *h = al_db_sqlite(db);
    bool there = false;
    int r = has_table(h, "bundles", &there, err);
    if (r < 0 || !there)
        return r;
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if ((r = prepare(h, &st, "SELECT " BUNDLE_COLUMNS " FROM bundles ORDER BY applied_at, rowid",
                     "list the bundles applied", err)) < 0)
        return r;
    al_db_bundle *v = NULL;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n % 16 == 0)
            v = al_xrealloc(v, (n + 16) * sizeof(*v));
        bundle_from_row(&v[n++], st);
    }
    if (rc != SQLITE_DONE) {
        free(v);
        return fail(h, err, "list the bundles applied");
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* --- tag history ----------------------------------------------------------- */

int al_db_history_load(al_db *db, al_db_history **out, size_t *n_out, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3 *h = al_db_sqlite(db);
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    int r = prepare(h, &st,
                    "SELECT full_name, old_digest, new_digest, at, run_id FROM tag_history"
                    " ORDER BY full_name, id DESC",
                    "read the tag history", err);
    if (r < 0)
        return r;
    al_db_history *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = al_xrealloc(v, cap * sizeof(*v));
        }
        al_db_history *e = &v[n++];
        const unsigned char *name = sqlite3_column_text(st, 0);
        e->full_name = al_xstrdup(name != NULL ? (const char *)name : "");
        col_copy(e->old_digest, sizeof(e->old_digest), st, 1);
        col_copy(e->new_digest, sizeof(e->new_digest), st, 2);
        e->at = sqlite3_column_double(st, 3);
        e->run_id = sqlite3_column_int64(st, 4);
    }
    if (rc != SQLITE_DONE) {
        al_db_history_free(v, n);
        return fail(h, err, "read the tag history");
    }
    *out = v;
    *n_out = n;
    return 0;
}

void al_db_history_free(al_db_history *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].full_name);
    free(v);
}

/* --- the import's commit --------------------------------------------------- */

static int exec(sqlite3 *h, const char *sql, al_error **err)
{
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(h, err, sql);
    return 0;
}

static int insert_bundle(sqlite3 *h, const al_db_bundle *b, int64_t run_id, al_error **err)
{
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    int r = prepare(h, &st,
                    "INSERT INTO bundles (" BUNDLE_COLUMNS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    "record the bundle", err);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b->source_store, -1, SQLITE_STATIC);
    if (b->base[0] != '\0')
        sqlite3_bind_text(st, 3, b->base, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, b->created_at);
    sqlite3_bind_double(st, 5, al_now());
    if (run_id > 0)
        sqlite3_bind_int64(st, 6, run_id);
    sqlite3_bind_int64(st, 7, b->tags);
    sqlite3_bind_int64(st, 8, b->blobs);
    sqlite3_bind_int64(st, 9, b->bytes);
    if (sqlite3_step(st) != SQLITE_DONE)
        return fail(h, err, "record the bundle");
    return 0;
}

static int import_in_tx(al_db *db, const al_db_import *imp, int64_t run_id,
                        char (*moved)[AL_DIGEST_BUF], al_error **err)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < imp->n_blobs; i++)
        r = al_db_blob_add(db, imp->blobs[i].digest, imp->blobs[i].size, imp->blobs[i].media_type,
                           err);
    for (size_t i = 0; r == 0 && i < imp->n_graphs; i++) {
        char old[AL_DIGEST_BUF] = "";
        r = al_db_graph_apply(db, &imp->graphs[i], run_id, old, err);
        if (moved != NULL)
            memcpy(moved[i], old, AL_DIGEST_BUF);
    }
    if (r == 0)
        r = insert_bundle(al_db_sqlite(db), imp->bundle, run_id, err);
    return r;
}

int al_db_import_commit(al_db *db, const al_db_import *imp, int64_t run_id,
                        char (*moved)[AL_DIGEST_BUF], al_error **err)
{
    sqlite3 *h = al_db_sqlite(db);
    /* FULL: once this returns, the import removes its staging directory;
     * the commit must not be lost to a power cut after that (NORMAL may
     * lose the last WAL commit). */
    int r = exec(h, "PRAGMA synchronous = FULL", err);
    if (r == 0 && (r = exec(h, "BEGIN IMMEDIATE", err)) == 0) {
        r = import_in_tx(db, imp, run_id, moved, err);
        if (r == 0)
            r = exec(h, "COMMIT", err);
        if (r < 0)
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    }
    if (sqlite3_exec(h, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK && r == 0)
        r = fail(h, err, "restore synchronous");
    return r;
}
