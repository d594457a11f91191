/* Prune with retention (see db.h): which rows are unreachable, and their
 * deletion in one transaction.
 *
 * Reachability is computed in SQL over temp tables: the roots (kept tags,
 * their last `keep` earlier digests, rows protected by time), then their
 * closure through edges and manifests.config_digest, to the image graph's
 * level limit (common/graph.h). A prune runs once per
 * process, so its statements are prepared here and finalized at once
 * rather than cached on the connection like db.c's. */
#include "db-private.h"
#include "db.h"
#include "graph.h"
#include "util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_sql(sqlite3 *h, al_error **err, const char *what)
{
    return al_error_set(err, AL_E_DB, 0, "prune: %s: %s", what, sqlite3_errmsg(h));
}

static int exec_sql(sqlite3 *h, const char *sql, const char *what, al_error **err)
{
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail_sql(h, err, what);
    return 0;
}

static void finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st);
}
#define _cleanup_finalize_ _cleanup_(finalizep)

static int prepare(sqlite3 *h, sqlite3_stmt **st, const char *sql, const char *what, al_error **err)
{
    if (sqlite3_prepare_v2(h, sql, -1, st, NULL) != SQLITE_OK)
        return fail_sql(h, err, what);
    return 0;
}

/* The tables of one prune. Dropped first in case an earlier prune on
 * this connection failed half-way. */
static const char setup_sql[] = "DROP TABLE IF EXISTS temp.prune_remove;"
                                "DROP TABLE IF EXISTS temp.prune_roots;"
                                "DROP TABLE IF EXISTS temp.prune_keep;"
                                "CREATE TEMP TABLE prune_remove (name TEXT PRIMARY KEY);"
                                "CREATE TEMP TABLE prune_roots (digest TEXT PRIMARY KEY);"
                                "CREATE TEMP TABLE prune_keep (digest TEXT PRIMARY KEY);";

static const char teardown_sql[] = "DROP TABLE IF EXISTS temp.prune_remove;"
                                   "DROP TABLE IF EXISTS temp.prune_roots;"
                                   "DROP TABLE IF EXISTS temp.prune_keep;";

/* A tag's earlier digests, most recent first: a digest's recency is the
 * last time the tag moved away from it (old_digest of a history row). A
 * digest the tag points at again is current, not earlier. Only digests
 * still in the store count, so that --keep N means N graphs present. */
#define HISTORY_KEPT_SQL                                                                           \
    "SELECT old_digest FROM ("                                                                     \
    "  SELECT h.old_digest, ROW_NUMBER() OVER ("                                                   \
    "    PARTITION BY h.full_name ORDER BY max(h.id) DESC) AS rn"                                  \
    "  FROM tag_history h JOIN tags t ON t.full_name = h.full_name"                                \
    "  WHERE h.old_digest IS NOT NULL AND h.old_digest <> t.digest"                                \
    "    AND h.old_digest IN (SELECT digest FROM blobs)"                                           \
    "    AND t.full_name NOT IN (SELECT name FROM temp.prune_remove)"                              \
    "  GROUP BY h.full_name, h.old_digest"                                                         \
    ") WHERE rn <= ?1"

/* The closure keeps the graph's limit (common/graph.h, DESIGN.md "The
 * image graph"): a root is level 1, manifest edges are followed from
 * levels up to ?1 (AL_GRAPH_MAX_INDEX_LEVELS) and config and layer edges
 * from levels up to ?1 + 1, so prune keeps what the other walks reach and
 * the recursion ends even over a hand-edited edges table with a cycle. A
 * digest reached at several levels gives a row per level (UNION keeps
 * (d, level) pairs), at most N + 2 of them. */
static const char closure_sql[] =
    "INSERT OR IGNORE INTO temp.prune_keep (digest)"
    " WITH RECURSIVE reach(d, level) AS ("
    "   SELECT digest, 1 FROM temp.prune_roots"
    "   UNION"
    "   SELECT e.child_digest, r.level + 1 FROM edges e JOIN reach r ON e.parent_digest = r.d"
    "    WHERE r.level <= CASE e.kind WHEN 'manifest' THEN ?1 ELSE ?1 + 1 END"
    "   UNION"
    "   SELECT m.config_digest, r.level + 1 FROM manifests m JOIN reach r ON m.digest = r.d"
    "    WHERE m.config_digest IS NOT NULL AND r.level <= ?1 + 1"
    " ) SELECT d FROM reach";

/* Deletion order follows the foreign keys: edges, manifests, blobs. An
 * edge goes with its parent, and with its child: within the level limit
 * the closure keeps every child of a kept parent, but an index one level
 * too deep (only a hand-edited database holds one) is kept
 * without what it lists. */
static const char delete_sql[] =
    "DELETE FROM tags WHERE full_name IN (SELECT name FROM temp.prune_remove);"
    "DELETE FROM edges WHERE parent_digest NOT IN (SELECT digest FROM temp.prune_keep)"
    " OR child_digest NOT IN (SELECT digest FROM temp.prune_keep);"
    "DELETE FROM manifests WHERE digest NOT IN (SELECT digest FROM temp.prune_keep);"
    "DELETE FROM blobs WHERE digest NOT IN (SELECT digest FROM temp.prune_keep);";

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return al_xstrdup(t != NULL ? (const char *)t : "");
}

static int fill_remove(sqlite3 *h, const al_prune_opts *opts, al_error **err)
{
    _cleanup_finalize_ sqlite3_stmt *st = NULL;
    int r = prepare(h, &st, "INSERT OR IGNORE INTO temp.prune_remove (name) VALUES (?1)",
                    "list tags to remove", err);
    for (size_t i = 0; r == 0 && i < opts->n_remove; i++) {
        sqlite3_bind_text(st, 1, opts->remove[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = fail_sql(h, err, "list tags to remove");
        sqlite3_reset(st);
    }
    return r;
}

static int list_removed(sqlite3 *h, al_prune_result *out, al_error **err)
{
    _cleanup_finalize_ sqlite3_stmt *st = NULL;
    int r = prepare(h, &st,
                    "SELECT t.full_name, t.digest FROM tags t"
                    " WHERE t.full_name IN (SELECT name FROM temp.prune_remove)"
                    " ORDER BY t.full_name",
                    "find tags to remove", err);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        out->removed = al_xrealloc(out->removed, (out->n_removed + 1) * sizeof(*out->removed));
        al_prune_tag *t = &out->removed[out->n_removed++];
        t->full_name = col_dup(st, 0);
        snprintf(t->digest, sizeof(t->digest), "%s", (const char *)sqlite3_column_text(st, 1));
    }
    if (r == 0 && rc != SQLITE_DONE)
        return fail_sql(h, err, "find tags to remove");
    if (r < 0)
        return r;

    _cleanup_finalize_ sqlite3_stmt *ms = NULL;
    r = prepare(h, &ms,
                "SELECT name FROM temp.prune_remove"
                " WHERE name NOT IN (SELECT full_name FROM tags) ORDER BY name",
                "find tags to remove", err);
    while (r == 0 && (rc = sqlite3_step(ms)) == SQLITE_ROW) {
        out->missing = al_xrealloc(out->missing, (out->n_missing + 1) * sizeof(char *));
        out->missing[out->n_missing++] = col_dup(ms, 0);
    }
    if (r == 0 && rc != SQLITE_DONE)
        return fail_sql(h, err, "find tags to remove");
    return r;
}

static int fill_roots(sqlite3 *h, const al_prune_opts *opts, al_prune_result *out, al_error **err)
{
    int r = exec_sql(h,
                     "INSERT OR IGNORE INTO temp.prune_roots (digest) SELECT digest FROM tags"
                     " WHERE full_name NOT IN (SELECT name FROM temp.prune_remove)",
                     "collect tags", err);
    if (r < 0)
        return r;
    /* Earlier graphs: counted (per tag) for the report, then added. */
    _cleanup_finalize_ sqlite3_stmt *cnt = NULL;
    if ((r = prepare(h, &cnt, "SELECT count(*) FROM (" HISTORY_KEPT_SQL ")", "count history",
                     err)) < 0)
        return r;
    sqlite3_bind_int(cnt, 1, opts->keep);
    if (sqlite3_step(cnt) != SQLITE_ROW)
        return fail_sql(h, err, "count history");
    out->n_history_kept = (size_t)sqlite3_column_int64(cnt, 0);

    _cleanup_finalize_ sqlite3_stmt *hist = NULL;
    if ((r = prepare(h, &hist, "INSERT OR IGNORE INTO temp.prune_roots (digest) " HISTORY_KEPT_SQL,
                     "collect history", err)) < 0)
        return r;
    sqlite3_bind_int(hist, 1, opts->keep);
    if (sqlite3_step(hist) != SQLITE_DONE)
        return fail_sql(h, err, "collect history");

    if (opts->protect_since > 0) {
        _cleanup_finalize_ sqlite3_stmt *prot = NULL;
        if ((r = prepare(h, &prot,
                         "INSERT OR IGNORE INTO temp.prune_roots (digest)"
                         " SELECT digest FROM blobs WHERE added_at >= ?1",
                         "collect new blobs", err)) < 0)
            return r;
        sqlite3_bind_double(prot, 1, opts->protect_since);
        if (sqlite3_step(prot) != SQLITE_DONE)
            return fail_sql(h, err, "collect new blobs");
    }
    _cleanup_finalize_ sqlite3_stmt *walk = NULL;
    if ((r = prepare(h, &walk, closure_sql, "walk graphs", err)) < 0)
        return r;
    sqlite3_bind_int(walk, 1, AL_GRAPH_MAX_INDEX_LEVELS);
    if (sqlite3_step(walk) != SQLITE_DONE)
        return fail_sql(h, err, "walk graphs");
    return 0;
}

static int list_doomed(sqlite3 *h, al_prune_result *out, al_error **err)
{
    _cleanup_finalize_ sqlite3_stmt *st = NULL;
    int r = prepare(h, &st,
                    "SELECT digest, size FROM blobs"
                    " WHERE digest NOT IN (SELECT digest FROM temp.prune_keep) ORDER BY digest",
                    "find unreachable blobs", err);
    if (r < 0)
        return r;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n_blobs == cap) {
            cap = cap ? 2 * cap : 64;
            out->blobs = al_xrealloc(out->blobs, cap * sizeof(*out->blobs));
        }
        al_prune_blob *b = &out->blobs[out->n_blobs++];
        snprintf(b->digest, sizeof(b->digest), "%s", (const char *)sqlite3_column_text(st, 0));
        b->size = sqlite3_column_int64(st, 1);
        out->bytes += b->size;
    }
    if (rc != SQLITE_DONE)
        return fail_sql(h, err, "find unreachable blobs");
    return 0;
}

static int prune_in_tx(sqlite3 *h, const al_prune_opts *opts, al_prune_result *out, al_error **err)
{
    int r;
    if ((r = exec_sql(h, setup_sql, "create work tables", err)) < 0 ||
        (r = fill_remove(h, opts, err)) < 0 || (r = list_removed(h, out, err)) < 0 ||
        (r = fill_roots(h, opts, out, err)) < 0 || (r = list_doomed(h, out, err)) < 0)
        return r;
    if (opts->dry_run)
        return 0;
    if ((r = exec_sql(h, delete_sql, "delete rows", err)) < 0)
        return r;
    return exec_sql(h, teardown_sql, "drop work tables", err);
}

int al_db_prune(al_db *db, const al_prune_opts *opts, al_prune_result *out, al_error **err)
{
    memset(out, 0, sizeof(*out));
    if (opts->keep < 0)
        return al_error_set(err, AL_E_USAGE, 0, "prune: keep must be >= 0, got %d", opts->keep);
    sqlite3 *h = al_db_sqlite(db);
    /* The file unlinks that follow must never run ahead of the deletion:
     * NORMAL may lose the last WAL commit on power loss, FULL syncs it. */
    int r = exec_sql(h, "PRAGMA synchronous = FULL", "set synchronous", err);
    if (r < 0)
        return r;
    if ((r = exec_sql(h, "BEGIN IMMEDIATE", "begin", err)) == 0) {
        r = prune_in_tx(h, opts, out, err);
        if (r < 0 || opts->dry_run) {
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        } else if ((r = exec_sql(h, "COMMIT", "commit", err)) < 0) {
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    /* Back to the connection's usual setting (db.c opens with NORMAL). */
    if (sqlite3_exec(h, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK && r == 0)
        r = fail_sql(h, err, "restore synchronous");
    if (r < 0) {
        al_prune_result_dispose(out);
        memset(out, 0, sizeof(*out));
    }
    return r;
}

/* The runs that never finished after the last fetch run that did (the
 * current run excluded): their downloads may still lack rows. A prune-only
 * run records no images, so it does not count as a fetch that completed,
 * and two prunes in a row after a kill keep the killed run's work. */
static const char since_sql[] =
    "SELECT min(started_at) FROM runs"
    " WHERE finished_at IS NULL AND id <> ?1"
    "   AND id > COALESCE((SELECT max(id) FROM runs WHERE finished_at IS NOT NULL AND id <> ?1"
    "                        AND COALESCE(images_ok, 0) + COALESCE(images_failed, 0) > 0), 0)";

int al_db_prune_since(al_db *db, int64_t current_run, double *since_out, al_error **err)
{
    *since_out = 0;
    sqlite3 *h = al_db_sqlite(db);
    _cleanup_finalize_ sqlite3_stmt *st = NULL;
    int r = prepare(h, &st, since_sql, "find interrupted runs", err);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, current_run);
    if (sqlite3_step(st) != SQLITE_ROW)
        return fail_sql(h, err, "find interrupted runs");
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        *since_out = sqlite3_column_double(st, 0);
    return 0;
}

void al_prune_result_dispose(al_prune_result *r)
{
    if (r == NULL)
        return;
    free(r->blobs);
    for (size_t i = 0; i < r->n_removed; i++)
        free(r->removed[i].full_name);
    free(r->removed);
    for (size_t i = 0; i < r->n_missing; i++)
        free(r->missing[i]);
    free(r->missing);
    memset(r, 0, sizeof(*r));
}
