/* airlock.db (see db.h). Every SQL statement of the project is in this
 * file or in schema.c.
 *
 * Statements are prepared lazily, once per connection, and kept in
 * db->stmts; each use ends with reset + clear_bindings through the
 * stmt_donep cleanup, so a statement never holds a read snapshot or a
 * stale binding after the function that used it returns. */
#include "db.h"
#include "db-private.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum stmt_id {
    ST_BLOB_ADD,
    ST_BLOB_GET,
    ST_MANIFEST_ADD,
    ST_MANIFEST_HAS,
    ST_EDGE_ADD,
    ST_TAG_DIGEST,
    ST_TAG_INSERT,
    ST_TAG_UPDATE,
    ST_HISTORY_ADD,
    ST_TAG_GET,
    ST_TAG_WALK_GET,
    ST_TAG_WALK_SET,
    ST_TAG_TOUCH,
    ST_TAGS_LIST,
    ST_RUN_BEGIN,
    ST_RUN_FINISH,
    ST_COUNT
};

#define TAG_COLUMNS                                                                                \
    "full_name, digest, media_type, size, source, first_seen, checked_at, changed_at"

static const char *const stmt_sql[ST_COUNT] = {
    /* A second add of the same digest refreshes the size (the caller has
     * just verified the file) and keeps a known media type. */
    [ST_BLOB_ADD] = "INSERT INTO blobs (digest, size, media_type, added_at) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (digest) DO UPDATE SET size = excluded.size,"
                    " media_type = COALESCE(excluded.media_type, blobs.media_type)",
    [ST_BLOB_GET] = "SELECT size FROM blobs WHERE digest = ?1",
    [ST_MANIFEST_ADD] = "INSERT OR IGNORE INTO manifests"
                        " (digest, media_type, is_index, os, arch, variant, config_digest)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_MANIFEST_HAS] = "SELECT 1 FROM manifests WHERE digest = ?1",
    [ST_EDGE_ADD] = "INSERT OR IGNORE INTO edges (parent_digest, child_digest, kind, position)"
                    " VALUES (?1, ?2, ?3, ?4)",
    [ST_TAG_DIGEST] = "SELECT digest FROM tags WHERE full_name = ?1",
    [ST_TAG_INSERT] = "INSERT INTO tags (" TAG_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
    /* changed_at moves only when the digest does; the CASE reads the old
     * digest because SET expressions see the row before the update. */
    [ST_TAG_UPDATE] = "UPDATE tags SET digest = ?2, media_type = ?3, size = ?4, source = ?5,"
                      " checked_at = ?6,"
                      " changed_at = CASE WHEN digest = ?2 THEN changed_at ELSE ?6 END,"
                      " walk_selection = CASE WHEN digest = ?2 THEN walk_selection END,"
                      " walk_platforms = CASE WHEN digest = ?2 THEN walk_platforms END,"
                      " walk_blobs = CASE WHEN digest = ?2 THEN walk_blobs END"
                      " WHERE full_name = ?1",
    [ST_HISTORY_ADD] = "INSERT INTO tag_history (full_name, old_digest, new_digest, at, run_id)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_TAG_GET] = "SELECT " TAG_COLUMNS " FROM tags WHERE full_name = ?1",
    /* Schema 3: only airlock-fetch, which migrates, uses these two. */
    [ST_TAG_WALK_GET] = "SELECT digest, walk_selection, walk_platforms, walk_blobs FROM tags"
                        " WHERE full_name = ?1",
    [ST_TAG_WALK_SET] = "UPDATE tags SET walk_selection = ?2, walk_platforms = ?3, walk_blobs = ?4"
                        " WHERE full_name = ?1 AND digest = ?5",
    [ST_TAG_TOUCH] = "UPDATE tags SET checked_at = ?2 WHERE full_name = ?1",
    [ST_TAGS_LIST] = "SELECT " TAG_COLUMNS " FROM tags ORDER BY full_name",
    [ST_RUN_BEGIN] = "INSERT INTO runs (started_at, argv) VALUES (?1, ?2)",
    [ST_RUN_FINISH] = "UPDATE runs SET finished_at = ?2, images_ok = ?3, images_failed = ?4,"
                      " bytes = ?5 WHERE id = ?1",
};

static const char *const edge_kind_name[] = {
    [AL_EDGE_MANIFEST] = "manifest",
    [AL_EDGE_CONFIG] = "config",
    [AL_EDGE_LAYER] = "layer",
};

struct al_db {
    sqlite3 *h;
    char *path;
    bool readonly;
    sqlite3_stmt *stmts[ST_COUNT];
};

/* Helpers ------------------------------------------------------------ */

static int db_fail(al_db *db, al_error **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int db_fail(al_db *db, al_error **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *ctx = al_xvasprintf(fmt, ap);
    va_end(ap);
    /* "database or disk is full" says more with the system's reason. */
    int sys = sqlite3_system_errno(db->h);
    return al_error_set(err, AL_E_DB, sys, "%s: %s", ctx, sqlite3_errmsg(db->h));
}

static void stmt_donep(sqlite3_stmt **st)
{
    if (*st != NULL) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
    }
}
#define _cleanup_stmt_ _cleanup_(stmt_donep)

/* The cached statement for id, prepared on first use. */
static sqlite3_stmt *stmt_get(al_db *db, enum stmt_id id, al_error **err)
{
    if (db->stmts[id] == NULL &&
        sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &db->stmts[id],
                           NULL) != SQLITE_OK) {
        db_fail(db, err, "prepare statement %d", (int)id);
        return NULL;
    }
    return db->stmts[id];
}

/* NULL binds SQL NULL. The strings outlive the statement's use, which
 * ends with clear_bindings in stmt_donep. */
static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s == NULL ? sqlite3_bind_null(st, i) : sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static const char *empty_null(const char *s)
{
    return s != NULL && *s != '\0' ? s : NULL;
}

static char *column_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return al_xstrdup(t != NULL ? (const char *)t : "");
}

static void column_digest(char out[AL_DIGEST_BUF], sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, AL_DIGEST_BUF, "%s", t != NULL ? (const char *)t : "");
}

/* Run a statement that returns no rows; what/arg name it in errors. */
static int step_done(al_db *db, sqlite3_stmt *st, al_error **err, const char *what, const char *arg)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_fail(db, err, "%s %s", what, arg);
    return 0;
}

/* Run SQL text; what names it in errors (migrations are long). */
static int exec_sql(al_db *db, const char *sql, const char *what, al_error **err)
{
    if (sqlite3_exec(db->h, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, err, "%s", what);
    return 0;
}

static int exec(al_db *db, const char *sql, al_error **err)
{
    return exec_sql(db, sql, sql, err);
}

static void rollback(al_db *db)
{
    /* Errors here mean there is no transaction left to undo. */
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

static int commit(al_db *db, al_error **err)
{
    int r = exec(db, "COMMIT", err);
    if (r < 0)
        rollback(db);
    return r;
}

/* Schema version ----------------------------------------------------- */

static int user_version(al_db *db, int *out, al_error **err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "read schema version of %s", db->path);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return db_fail(db, err, "read schema version of %s", db->path);
    return 0;
}

static int newer_schema(al_db *db, int v, al_error **err)
{
    return al_error_set(err, AL_E_DB, 0,
                        "database %s: schema version %d is newer than this airlock (%zu)", db->path,
                        v, al_db_n_migrations);
}

/* Apply the missing migrations, each in its own BEGIN IMMEDIATE. The
 * version is read again under the write lock, since another airlock may
 * have migrated in between. */
static int migrate(al_db *db, al_error **err)
{
    for (;;) {
        int v = 0;
        int r = exec(db, "BEGIN IMMEDIATE", err);
        if (r < 0)
            return r;
        if ((r = user_version(db, &v, err)) < 0) {
            rollback(db);
            return r;
        }
        if (v < 0 || (size_t)v > al_db_n_migrations) {
            rollback(db);
            return newer_schema(db, v, err);
        }
        if ((size_t)v == al_db_n_migrations)
            return commit(db, err);
        char set_version[64];
        snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d", v + 1);
        if ((r = exec_sql(db, al_db_migrations[v], "apply schema", err)) < 0 ||
            (r = exec(db, set_version, err)) < 0) {
            rollback(db);
            al_error_wrap(err, "database %s: migration to schema version %d", db->path, v + 1);
            return r;
        }
        if ((r = commit(db, err)) < 0)
            return r;
    }
}

/* Open --------------------------------------------------------------- */

static int wal_cb(void *arg, int ncol, char **vals, char **names)
{
    (void)names;
    if (ncol > 0 && vals[0] != NULL)
        snprintf(arg, 16, "%s", vals[0]);
    return 0;
}

static int open_rw(al_db *db, al_error **err)
{
    int rc = sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        return db_fail(db, err, "open database %s", db->path);
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, 10000);
    char mode[16] = "";
    if (sqlite3_exec(db->h, "PRAGMA journal_mode = WAL", wal_cb, mode, NULL) != SQLITE_OK)
        return db_fail(db, err, "open database %s: set WAL mode", db->path);
    if (strcmp(mode, "wal") != 0)
        /* Some filesystems (network mounts) cannot share memory for
         * WAL; SQLite then keeps its rollback journal, which is still
         * correct, only slower with concurrent readers. */
        al_warn("database %s: journal mode is %s, not wal", db->path, mode);
    int r;
    if ((r = exec(db, "PRAGMA synchronous = NORMAL", err)) < 0 ||
        (r = exec(db, "PRAGMA foreign_keys = ON", err)) < 0) {
        al_error_wrap(err, "open database %s", db->path);
        return r;
    }
    return migrate(db, err);
}

/* The URI form of path for SQLITE_OPEN_URI: absolute, with everything
 * but unreserved characters and '/' percent-encoded. */
static char *path_uri(const char *path, const char *query, al_error **err)
{
    _cleanup_free_ char *abs = realpath(path, NULL);
    if (abs == NULL) {
        al_error_set(err, AL_E_IO, errno, "resolve %s", path);
        return NULL;
    }
    size_t n = strlen(abs);
    char *uri = al_xmalloc(5 + 3 * n + strlen(query) + 2);
    char *o = uri + sprintf(uri, "file:");
    for (const char *p = abs; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("/-._~", c) != NULL)
            *o++ = (char)c;
        else
            o += sprintf(o, "%%%02X", c);
    }
    sprintf(o, "?%s", query);
    return uri;
}

static bool file_nonempty(const char *path, bool *exists)
{
    struct stat st;
    *exists = stat(path, &st) == 0;
    return *exists && st.st_size > 0;
}

/* Export reads the database, possibly from a read-only copy of the store.
 * A WAL database needs its -shm file (created on open) unless the
 * directory is writable or both -wal and -shm were copied along (SQLite
 * >= 3.22 reads them without writing). With neither, there is nothing to
 * recover from the WAL, so the file can be opened as immutable. */
static int open_ro(al_db *db, al_error **err)
{
    struct stat st;
    if (stat(db->path, &st) < 0) {
        if (errno == ENOENT)
            return al_error_set(err, AL_E_NOT_FOUND, 0, "database %s not found", db->path);
        return al_error_set(err, AL_E_IO, errno, "stat %s", db->path);
    }
    _cleanup_free_ char *dir = al_xstrdup(db->path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        free(dir);
        dir = al_xstrdup(".");
    } else if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }

    _cleanup_free_ char *uri = NULL;
    if (access(dir, W_OK) != 0) {
        _cleanup_free_ char *wal = al_xasprintf("%s-wal", db->path);
        _cleanup_free_ char *shm = al_xasprintf("%s-shm", db->path);
        bool wal_exists, shm_exists;
        bool wal_full = file_nonempty(wal, &wal_exists);
        file_nonempty(shm, &shm_exists);
        if (wal_full && !shm_exists)
            return al_error_set(err, AL_E_DB, 0,
                                "database %s: its write-ahead log %s cannot be read without %s "
                                "in a read-only directory; copy the store while airlock-fetch "
                                "is not running",
                                db->path, wal, shm);
        if (!wal_full && (uri = path_uri(db->path, "immutable=1", err)) == NULL) {
            al_error_wrap(err, "open database %s", db->path);
            return AL_E_IO;
        }
    }
    int flags = SQLITE_OPEN_READONLY | (uri != NULL ? SQLITE_OPEN_URI : 0);
    if (sqlite3_open_v2(uri != NULL ? uri : db->path, &db->h, flags, NULL) != SQLITE_OK)
        return db_fail(db, err, "open database %s", db->path);
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, 10000);
    int v = 0;
    int r = user_version(db, &v, err);
    if (r < 0)
        return r;
    if (v < 0 || (size_t)v > al_db_n_migrations)
        return newer_schema(db, v, err);
    if (v < AL_DB_MIN_READ_VERSION)
        return al_error_set(err, AL_E_DB, 0,
                            "database %s: schema version %d is older than this airlock (%zu); "
                            "run airlock-fetch on the store to upgrade it",
                            db->path, v, al_db_n_migrations);
    return 0;
}

int al_db_open(al_db **out, const char *path, bool readonly, al_error **err)
{
    *out = NULL;
    if (path == NULL || *path == '\0')
        return al_error_set(err, AL_E_USAGE, 0, "database path is empty");
    al_db *db = al_xcalloc(1, sizeof(*db));
    db->path = al_xstrdup(path);
    db->readonly = readonly;
    int r = readonly ? open_ro(db, err) : open_rw(db, err);
    if (r < 0) {
        al_db_free(db);
        return r;
    }
    *out = db;
    return 0;
}

void al_db_free(al_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(db->stmts[i]);
    /* The last connection to close checkpoints and removes the WAL, so a
     * copy of a closed store is a single self-contained file. */
    sqlite3_close(db->h);
    free(db->path);
    free(db);
}

/* For the other files of db/ (db-private.h): db-query.c's bulk read-only
 * queries and db-prune.c use the connection directly instead of the
 * statement cache above. */
sqlite3 *al_db_sqlite(al_db *db)
{
    return db->h;
}

/* Blobs -------------------------------------------------------------- */

int al_db_blob_add(al_db *db, const char *digest, int64_t size, const char *media_type,
                   al_error **err)
{
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    if (size < 0)
        return al_error_set(err, AL_E_USAGE, 0, "blob %s: negative size %lld", digest,
                            (long long)size);
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_BLOB_ADD, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, digest) || sqlite3_bind_int64(st, 2, size) ||
        bind_text(st, 3, media_type) || sqlite3_bind_double(st, 4, al_now()))
        return db_fail(db, err, "add blob %s", digest);
    return step_done(db, st, err, "add blob", digest);
}

int al_db_blob_get(al_db *db, const char *digest, bool *found, int64_t *size_out, al_error **err)
{
    *found = false;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_BLOB_GET, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, digest))
        return db_fail(db, err, "look up blob %s", digest);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *found = true;
        if (size_out != NULL)
            *size_out = sqlite3_column_int64(st, 0);
        return 0;
    }
    if (rc != SQLITE_DONE)
        return db_fail(db, err, "look up blob %s", digest);
    return 0;
}

/* Graphs ------------------------------------------------------------- */

static int check_graph(const al_graph *g, al_error **err)
{
    int r;
    if (g->full_name == NULL || *g->full_name == '\0')
        return al_error_set(err, AL_E_USAGE, 0, "graph without a name");
    if ((r = al_digest_check(g->root_digest, err)) < 0)
        return r;
    if (g->root_media_type == NULL || g->root_size < 0)
        return al_error_set(err, AL_E_USAGE, 0, "root %s: media type or size missing",
                            g->root_digest);
    for (size_t i = 0; i < g->n_manifests; i++) {
        const al_graph_manifest *m = &g->manifests[i];
        if ((r = al_digest_check(m->digest, err)) < 0)
            return r;
        if (m->config_digest[0] != '\0' && (r = al_digest_check(m->config_digest, err)) < 0)
            return r;
        if (m->media_type == NULL)
            return al_error_set(err, AL_E_USAGE, 0, "manifest %s: media type missing", m->digest);
    }
    for (size_t i = 0; i < g->n_edges; i++) {
        const al_graph_edge *e = &g->edges[i];
        if ((r = al_digest_check(e->parent, err)) < 0 || (r = al_digest_check(e->child, err)) < 0)
            return r;
        if ((unsigned)e->kind >= AL_ARRAY_SIZE(edge_kind_name))
            return al_error_set(err, AL_E_USAGE, 0, "edge %s -> %s: bad kind %d", e->parent,
                                e->child, (int)e->kind);
    }
    return 0;
}

static int require_blob(al_db *db, const al_graph *g, const char *digest, al_error **err)
{
    bool found = false;
    int r = al_db_blob_get(db, digest, &found, NULL, err);
    if (r < 0)
        return r;
    if (!found)
        return al_error_set(err, AL_E_DB, 0,
                            "graph of %s references blob %s which is not in the store",
                            g->full_name, digest);
    return 0;
}

static int require_blobs(al_db *db, const al_graph *g, al_error **err)
{
    int r = require_blob(db, g, g->root_digest, err);
    for (size_t i = 0; r == 0 && i < g->n_manifests; i++) {
        r = require_blob(db, g, g->manifests[i].digest, err);
        if (r == 0 && g->manifests[i].config_digest[0] != '\0')
            r = require_blob(db, g, g->manifests[i].config_digest, err);
    }
    for (size_t i = 0; r == 0 && i < g->n_edges; i++) {
        r = require_blob(db, g, g->edges[i].parent, err);
        if (r == 0)
            r = require_blob(db, g, g->edges[i].child, err);
    }
    return r;
}

static int insert_manifest(al_db *db, const al_graph_manifest *m, al_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_MANIFEST_ADD, err);
    if (st == NULL)
        return AL_E_DB;
    const al_platform *p = m->has_platform ? &m->platform : NULL;
    if (bind_text(st, 1, m->digest) || bind_text(st, 2, m->media_type) ||
        sqlite3_bind_int(st, 3, m->is_index ? 1 : 0) ||
        bind_text(st, 4, p != NULL ? empty_null(p->os) : NULL) ||
        bind_text(st, 5, p != NULL ? empty_null(p->arch) : NULL) ||
        bind_text(st, 6, p != NULL ? empty_null(p->variant) : NULL) ||
        bind_text(st, 7, empty_null(m->config_digest)))
        return db_fail(db, err, "add manifest %s", m->digest);
    return step_done(db, st, err, "add manifest", m->digest);
}

static int insert_edge(al_db *db, const al_graph_edge *e, al_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_EDGE_ADD, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, e->parent) || bind_text(st, 2, e->child) ||
        bind_text(st, 3, edge_kind_name[e->kind]) || sqlite3_bind_int(st, 4, e->position))
        return db_fail(db, err, "add edge %s -> %s", e->parent, e->child);
    return step_done(db, st, err, "add edge to", e->child);
}

/* The tag's current digest into old ("" when there is no such tag). */
static int tag_digest(al_db *db, const char *full_name, char old[AL_DIGEST_BUF], al_error **err)
{
    old[0] = '\0';
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_TAG_DIGEST, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, full_name))
        return db_fail(db, err, "look up tag %s", full_name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        column_digest(old, st, 0);
    else if (rc != SQLITE_DONE)
        return db_fail(db, err, "look up tag %s", full_name);
    return 0;
}

static int add_history(al_db *db, const al_graph *g, const char *old, int64_t run_id, double now,
                       al_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_HISTORY_ADD, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, g->full_name) || bind_text(st, 2, empty_null(old)) ||
        bind_text(st, 3, g->root_digest) || sqlite3_bind_double(st, 4, now) ||
        (run_id > 0 ? sqlite3_bind_int64(st, 5, run_id) : sqlite3_bind_null(st, 5)))
        return db_fail(db, err, "add history of %s", g->full_name);
    return step_done(db, st, err, "add history of", g->full_name);
}

static int upsert_tag(al_db *db, const al_graph *g, int64_t run_id, char moved[AL_DIGEST_BUF],
                      al_error **err)
{
    char old[AL_DIGEST_BUF];
    int r = tag_digest(db, g->full_name, old, err);
    if (r < 0)
        return r;
    double now = al_now();
    bool is_new = old[0] == '\0';
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, is_new ? ST_TAG_INSERT : ST_TAG_UPDATE, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, g->full_name) || bind_text(st, 2, g->root_digest) ||
        bind_text(st, 3, g->root_media_type) || sqlite3_bind_int64(st, 4, g->root_size) ||
        bind_text(st, 5, g->source) || sqlite3_bind_double(st, 6, now))
        return db_fail(db, err, "set tag %s", g->full_name);
    if ((r = step_done(db, st, err, "set tag", g->full_name)) < 0)
        return r;
    /* History records every digest the tag took, its first one included
     * (old_digest NULL), so "what did this tag point at on date X" has
     * an answer from the first fetch on. */
    if (is_new || strcmp(old, g->root_digest) != 0) {
        if ((r = add_history(db, g, old, run_id, now, err)) < 0)
            return r;
        if (!is_new)
            memcpy(moved, old, AL_DIGEST_BUF);
    }
    return 0;
}

static int graph_apply(al_db *db, const al_graph *g, int64_t run_id, char moved[AL_DIGEST_BUF],
                       al_error **err)
{
    int r = require_blobs(db, g, err);
    for (size_t i = 0; r == 0 && i < g->n_manifests; i++)
        r = insert_manifest(db, &g->manifests[i], err);
    for (size_t i = 0; r == 0 && i < g->n_edges; i++)
        r = insert_edge(db, &g->edges[i], err);
    if (r == 0)
        r = upsert_tag(db, g, run_id, moved, err);
    return r;
}

int al_db_graph_apply(al_db *db, const al_graph *g, int64_t run_id, char moved[AL_DIGEST_BUF],
                      al_error **err)
{
    int r = check_graph(g, err);
    if (r < 0)
        return al_error_wrap(err, "graph of %s", g->full_name ? g->full_name : "?");
    return graph_apply(db, g, run_id, moved, err);
}

int al_db_graph_commit(al_db *db, const al_graph *g, int64_t run_id, char moved_from[AL_DIGEST_BUF],
                       al_error **err)
{
    char moved[AL_DIGEST_BUF] = "";
    if (moved_from != NULL)
        moved_from[0] = '\0';
    int r = check_graph(g, err);
    if (r < 0) {
        al_error_wrap(err, "graph of %s", g->full_name ? g->full_name : "?");
        return r;
    }
    /* Inside the caller's transaction (al_db_begin), a savepoint: one
     * graph's failure undoes that graph only. */
    bool nested = !sqlite3_get_autocommit(db->h);
    if ((r = exec(db, nested ? "SAVEPOINT graph" : "BEGIN IMMEDIATE", err)) < 0)
        return r;
    if ((r = graph_apply(db, g, run_id, moved, err)) < 0) {
        if (nested)
            sqlite3_exec(db->h, "ROLLBACK TO graph; RELEASE graph", NULL, NULL, NULL);
        else
            rollback(db);
        return r;
    }
    if ((r = nested ? exec(db, "RELEASE graph", err) : commit(db, err)) < 0)
        return r;
    if (moved_from != NULL)
        memcpy(moved_from, moved, AL_DIGEST_BUF);
    return 0;
}

int al_db_begin(al_db *db, al_error **err)
{
    return exec(db, "BEGIN IMMEDIATE", err);
}

int al_db_commit(al_db *db, al_error **err)
{
    return commit(db, err);
}

/* Names per statement of al_db_tags_touch: well under SQLite's limit on
 * bound parameters (999 before 3.32). */
#define TOUCH_BATCH 256

static int touch_batch(al_db *db, const char *const *names, size_t n, double now, al_error **err)
{
    char *sql = al_xstrdup("UPDATE tags SET checked_at = ?1 WHERE full_name IN (?2");
    for (size_t i = 1; i < n; i++) {
        char *t = al_xasprintf("%s, ?%zu", sql, i + 2);
        free(sql);
        sql = t;
    }
    char *t = al_xasprintf("%s)", sql);
    free(sql);
    sql = t;
    sqlite3_stmt *st = NULL;
    int r = 0;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_double(st, 1, now) != SQLITE_OK)
        r = db_fail(db, err, "touch %zu tags", n);
    for (size_t i = 0; r == 0 && i < n; i++)
        if (bind_text(st, (int)i + 2, names[i]) != SQLITE_OK)
            r = db_fail(db, err, "touch tag %s", names[i]);
    if (r == 0)
        r = step_done(db, st, err, "touch", "tags");
    sqlite3_finalize(st);
    free(sql);
    return r;
}

int al_db_tags_touch(al_db *db, const char *const *names, size_t n, al_error **err)
{
    double now = al_now();
    /* One transaction for all the statements: one commit, not one each. */
    bool own = n > TOUCH_BATCH && sqlite3_get_autocommit(db->h);
    int r = own ? exec(db, "BEGIN IMMEDIATE", err) : 0;
    for (size_t i = 0; r == 0 && i < n; i += TOUCH_BATCH)
        r = touch_batch(db, names + i, n - i < TOUCH_BATCH ? n - i : TOUCH_BATCH, now, err);
    if (own && r == 0)
        r = commit(db, err);
    else if (own)
        rollback(db);
    return r;
}

int al_db_manifest_has(al_db *db, const char *digest, bool *found, al_error **err)
{
    *found = false;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_MANIFEST_HAS, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, digest))
        return db_fail(db, err, "look up manifest %s", digest);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *found = true;
    else if (rc != SQLITE_DONE)
        return db_fail(db, err, "look up manifest %s", digest);
    return 0;
}

/* Tags --------------------------------------------------------------- */

void al_tag_dispose(al_tag *t)
{
    if (t == NULL)
        return;
    free(t->full_name);
    free(t->media_type);
    free(t->source);
    memset(t, 0, sizeof(*t));
}

void al_tags_free(al_tag *tags, size_t n)
{
    if (tags == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        al_tag_dispose(&tags[i]);
    free(tags);
}

/* Columns in TAG_COLUMNS order. */
static void tag_from_row(al_tag *t, sqlite3_stmt *st)
{
    t->full_name = column_dup(st, 0);
    column_digest(t->digest, st, 1);
    t->media_type = column_dup(st, 2);
    t->size = sqlite3_column_int64(st, 3);
    t->source = column_dup(st, 4);
    t->first_seen = sqlite3_column_double(st, 5);
    t->checked_at = sqlite3_column_double(st, 6);
    t->changed_at = sqlite3_column_double(st, 7);
}

/* Run a by-name tag statement and hand its row, if any, to from_row;
 * *found says whether there was one. */
static int tag_lookup(al_db *db, enum stmt_id id, const char *full_name,
                      void (*from_row)(void *out, sqlite3_stmt *st), void *out, bool *found,
                      al_error **err)
{
    *found = false;
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, id, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, full_name))
        return db_fail(db, err, "look up tag %s", full_name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        from_row(out, st);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        return db_fail(db, err, "look up tag %s", full_name);
    }
    return 0;
}

static void tag_row(void *out, sqlite3_stmt *st)
{
    tag_from_row(out, st);
}

int al_db_tag_get(al_db *db, const char *full_name, al_tag *out, bool *found, al_error **err)
{
    memset(out, 0, sizeof(*out));
    return tag_lookup(db, ST_TAG_GET, full_name, tag_row, out, found, err);
}

/* Export and push both start from what the store holds for a ref; this is
 * the one place that says what that is. */
int al_db_ref_root(al_db *db, const al_store *store, const al_ref *ref, char out[AL_DIGEST_BUF],
                   char **media_type, al_error **err)
{
    out[0] = '\0';
    *media_type = NULL;
    if (ref->digest != NULL && al_store_has_blob(store, ref->digest, NULL)) {
        snprintf(out, AL_DIGEST_BUF, "%s", ref->digest);
        return 0;
    }
    _cleanup_free_ char *name = al_ref_name(ref);
    _cleanup_free_ char *key = ref->digest ? al_xasprintf("%s@%s", name, ref->digest)
                                           : al_xasprintf("%s:%s", name, ref->tag);
    al_tag t;
    bool found = false;
    int r = al_db_tag_get(db, key, &t, &found, err);
    if (r == 0 && found) {
        snprintf(out, AL_DIGEST_BUF, "%s", t.digest);
        *media_type = al_steal_ptr(&t.media_type);
    }
    al_tag_dispose(&t);
    return r;
}

void al_tag_walk_dispose(al_tag_walk *w)
{
    if (w == NULL)
        return;
    free(w->selection);
    free(w->platforms);
    memset(w, 0, sizeof(*w));
}

/* Columns of ST_TAG_WALK_GET: digest, selection, platforms, blobs. */
static void walk_row(void *out, sqlite3_stmt *st)
{
    al_tag_walk *w = out;
    column_digest(w->digest, st, 0);
    w->selection = column_dup(st, 1);
    w->platforms = column_dup(st, 2);
    w->blobs = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3);
}

int al_db_tag_walk_get(al_db *db, const char *full_name, al_tag_walk *out, bool *found,
                       al_error **err)
{
    memset(out, 0, sizeof(*out));
    return tag_lookup(db, ST_TAG_WALK_GET, full_name, walk_row, out, found, err);
}

int al_db_tag_walk_set(al_db *db, const char *full_name, const char *digest, const char *selection,
                       const char *platforms, int blobs, al_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_TAG_WALK_SET, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, full_name) || bind_text(st, 2, selection) || bind_text(st, 3, platforms) ||
        sqlite3_bind_int(st, 4, blobs) || bind_text(st, 5, digest))
        return db_fail(db, err, "record the walk of tag %s", full_name);
    return step_done(db, st, err, "record the walk of tag", full_name);
}

int al_db_tag_touch(al_db *db, const char *full_name, al_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_TAG_TOUCH, err);
    if (st == NULL)
        return AL_E_DB;
    if (bind_text(st, 1, full_name) || sqlite3_bind_double(st, 2, al_now()))
        return db_fail(db, err, "touch tag %s", full_name);
    int r = step_done(db, st, err, "touch tag", full_name);
    if (r < 0)
        return r;
    if (sqlite3_changes(db->h) == 0)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "tag %s is not in the store", full_name);
    return 0;
}

int al_db_tags_list(al_db *db, al_tag **out, size_t *n_out, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_TAGS_LIST, err);
    if (st == NULL)
        return AL_E_DB;
    al_tag *tags = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            tags = al_xrealloc(tags, cap * sizeof(*tags));
        }
        tag_from_row(&tags[n++], st);
    }
    if (rc != SQLITE_DONE) {
        al_tags_free(tags, n);
        return db_fail(db, err, "list tags");
    }
    *out = tags;
    *n_out = n;
    return 0;
}

/* Runs --------------------------------------------------------------- */

int al_db_run_begin(al_db *db, const char *argv_text, int64_t *run_id_out, al_error **err)
{
    *run_id_out = 0;
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_RUN_BEGIN, err);
    if (st == NULL)
        return AL_E_DB;
    if (sqlite3_bind_double(st, 1, al_now()) || bind_text(st, 2, argv_text))
        return db_fail(db, err, "begin run");
    int r = step_done(db, st, err, "begin", "run");
    if (r < 0)
        return r;
    *run_id_out = sqlite3_last_insert_rowid(db->h);
    return 0;
}

int al_db_run_finish(al_db *db, int64_t run_id, int images_ok, int images_failed, int64_t bytes,
                     al_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = stmt_get(db, ST_RUN_FINISH, err);
    if (st == NULL)
        return AL_E_DB;
    if (sqlite3_bind_int64(st, 1, run_id) || sqlite3_bind_double(st, 2, al_now()) ||
        sqlite3_bind_int(st, 3, images_ok) || sqlite3_bind_int(st, 4, images_failed) ||
        sqlite3_bind_int64(st, 5, bytes))
        return db_fail(db, err, "finish run %lld", (long long)run_id);
    int r = step_done(db, st, err, "finish", "run");
    if (r < 0)
        return r;
    if (sqlite3_changes(db->h) == 0)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "run %lld not found", (long long)run_id);
    return 0;
}
