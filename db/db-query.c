/* Read-only bulk queries over airlock.db for airlock-export's store tools
 * (--list, --inspect, --verify-store); see "Store inspection" in db.h.
 *
 * These run once per program run and read whole tables, so they prepare
 * their statements on the spot instead of using db.c's cache: the cache
 * exists for statements that run once per blob or tag. */
#include "db.h"
#include "db-private.h"
#include "util.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int q_fail(sqlite3 *h, al_error **err, const char *what)
{
    return al_error_set(err, AL_E_DB, 0, "%s: %s", what, sqlite3_errmsg(h));
}

static void finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* NULL is a no-op */
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? al_xstrdup((const char *)t) : NULL;
}

static void col_digest(char out[AL_DIGEST_BUF], sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, AL_DIGEST_BUF, "%s", t != NULL ? (const char *)t : "");
}

/* Grow *arr (of elem bytes) so that index n fits. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? 2 * *cap : 64;
    return al_xrealloc(arr, *cap * elem);
}

static int load_tags(sqlite3 *h, al_db_snapshot *s, al_error **err)
{
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT full_name, digest, media_type, size, source, first_seen,"
                           " checked_at, changed_at FROM tags ORDER BY full_name",
                           -1, &st, NULL) != SQLITE_OK)
        return q_fail(h, err, "read tags");
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->tags = grow(s->tags, s->n_tags, &cap, sizeof(*s->tags));
        al_tag *t = &s->tags[s->n_tags++];
        memset(t, 0, sizeof(*t));
        t->full_name = col_text(st, 0);
        if (t->full_name == NULL)
            t->full_name = al_xstrdup("");
        col_digest(t->digest, st, 1);
        t->media_type = col_text(st, 2);
        t->size = sqlite3_column_int64(st, 3);
        t->source = col_text(st, 4);
        t->first_seen = sqlite3_column_double(st, 5);
        t->checked_at = sqlite3_column_double(st, 6);
        t->changed_at = sqlite3_column_double(st, 7);
    }
    return rc == SQLITE_DONE ? 0 : q_fail(h, err, "read tags");
}

static int load_blobs(sqlite3 *h, al_db_snapshot *s, al_error **err)
{
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT digest, size, media_type, added_at FROM blobs ORDER BY digest",
                           -1, &st, NULL) != SQLITE_OK)
        return q_fail(h, err, "read blobs");
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->blobs = grow(s->blobs, s->n_blobs, &cap, sizeof(*s->blobs));
        al_db_blob *b = &s->blobs[s->n_blobs++];
        col_digest(b->digest, st, 0);
        b->size = sqlite3_column_int64(st, 1);
        b->media_type = col_text(st, 2);
        b->added_at = sqlite3_column_double(st, 3);
    }
    return rc == SQLITE_DONE ? 0 : q_fail(h, err, "read blobs");
}

static int load_manifests(sqlite3 *h, al_db_snapshot *s, al_error **err)
{
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT digest, media_type, is_index, os, arch, variant, config_digest"
                           " FROM manifests ORDER BY digest",
                           -1, &st, NULL) != SQLITE_OK)
        return q_fail(h, err, "read manifests");
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->manifests = grow(s->manifests, s->n_manifests, &cap, sizeof(*s->manifests));
        al_db_manifest *m = &s->manifests[s->n_manifests++];
        memset(m, 0, sizeof(*m));
        col_digest(m->digest, st, 0);
        m->media_type = col_text(st, 1);
        m->is_index = sqlite3_column_int(st, 2) != 0;
        const char *os = (const char *)sqlite3_column_text(st, 3);
        const char *arch = (const char *)sqlite3_column_text(st, 4);
        const char *variant = (const char *)sqlite3_column_text(st, 5);
        if (os != NULL && arch != NULL)
            m->has_platform = al_platform_set(&m->platform, os, arch, variant);
        col_digest(m->config_digest, st, 6);
    }
    return rc == SQLITE_DONE ? 0 : q_fail(h, err, "read manifests");
}

static int load_edges(sqlite3 *h, al_db_snapshot *s, al_error **err)
{
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT parent_digest, child_digest, kind, position FROM edges"
                           " ORDER BY parent_digest,"
                           " CASE kind WHEN 'manifest' THEN 0 WHEN 'config' THEN 1 ELSE 2 END,"
                           " position",
                           -1, &st, NULL) != SQLITE_OK)
        return q_fail(h, err, "read edges");
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->edges = grow(s->edges, s->n_edges, &cap, sizeof(*s->edges));
        al_graph_edge *e = &s->edges[s->n_edges++];
        col_digest(e->parent, st, 0);
        col_digest(e->child, st, 1);
        const char *kind = (const char *)sqlite3_column_text(st, 2);
        e->kind = kind == NULL                    ? AL_EDGE_LAYER
                  : strcmp(kind, "manifest") == 0 ? AL_EDGE_MANIFEST
                  : strcmp(kind, "config") == 0   ? AL_EDGE_CONFIG
                                                  : AL_EDGE_LAYER;
        e->position = sqlite3_column_int(st, 3);
    }
    return rc == SQLITE_DONE ? 0 : q_fail(h, err, "read edges");
}

int al_db_snapshot_load(al_db *db, al_db_snapshot *out, al_error **err)
{
    memset(out, 0, sizeof(*out));
    sqlite3 *h = al_db_sqlite(db);
    /* A deferred transaction takes its read snapshot at the first SELECT
     * and keeps it until COMMIT: in WAL mode a writer may commit
     * meanwhile without either side waiting. */
    if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return q_fail(h, err, "begin read transaction");
    int r = load_tags(h, out, err);
    if (r == 0)
        r = load_blobs(h, out, err);
    if (r == 0)
        r = load_manifests(h, out, err);
    if (r == 0)
        r = load_edges(h, out, err);
    if (r == 0)
        r = al_db_history_load(db, &out->history, &out->n_history, err);
    bool found = false;
    if (r == 0)
        r = al_db_store_id(db, out->store_id, &found, err);
    if (r == 0)
        r = al_db_bundles_list(db, &out->bundles, &out->n_bundles, err);
    /* Read-only: ending it can only fail if it is already gone. */
    sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
    if (r < 0)
        al_db_snapshot_dispose(out);
    return r;
}

void al_db_snapshot_dispose(al_db_snapshot *s)
{
    if (s == NULL)
        return;
    al_tags_free(s->tags, s->n_tags);
    for (size_t i = 0; i < s->n_blobs; i++)
        free(s->blobs[i].media_type);
    free(s->blobs);
    for (size_t i = 0; i < s->n_manifests; i++)
        free(s->manifests[i].media_type);
    free(s->manifests);
    free(s->edges);
    al_db_history_free(s->history, s->n_history);
    free(s->bundles);
    memset(s, 0, sizeof(*s));
}

/* First index in [0, n) whose key is >= digest; keys are the digest
 * member at offset off of elements of size elem, sorted ascending. */
static size_t lower_bound(const void *base, size_t n, size_t elem, size_t off, const char *digest)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *key = (const char *)base + mid * elem + off;
        if (strcmp(key, digest) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long al_db_snapshot_blob_index(const al_db_snapshot *s, const char *digest)
{
    size_t i =
        lower_bound(s->blobs, s->n_blobs, sizeof(*s->blobs), offsetof(al_db_blob, digest), digest);
    return i < s->n_blobs && strcmp(s->blobs[i].digest, digest) == 0 ? (long)i : -1;
}

const al_db_blob *al_db_snapshot_blob(const al_db_snapshot *s, const char *digest)
{
    long i = al_db_snapshot_blob_index(s, digest);
    return i < 0 ? NULL : &s->blobs[i];
}

const al_db_manifest *al_db_snapshot_manifest(const al_db_snapshot *s, const char *digest)
{
    size_t i = lower_bound(s->manifests, s->n_manifests, sizeof(*s->manifests),
                           offsetof(al_db_manifest, digest), digest);
    return i < s->n_manifests && strcmp(s->manifests[i].digest, digest) == 0 ? &s->manifests[i]
                                                                             : NULL;
}

const al_graph_edge *al_db_snapshot_children(const al_db_snapshot *s, const char *parent,
                                             size_t *n_out)
{
    size_t i = lower_bound(s->edges, s->n_edges, sizeof(*s->edges), offsetof(al_graph_edge, parent),
                           parent);
    size_t j = i;
    while (j < s->n_edges && strcmp(s->edges[j].parent, parent) == 0)
        j++;
    *n_out = j - i;
    return j > i ? &s->edges[i] : NULL;
}

int al_db_quick_check(al_db *db, char ***out, size_t *n_out, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3 *h = al_db_sqlite(db);
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
        return q_fail(h, err, "check database");
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *msg = (const char *)sqlite3_column_text(st, 0);
        if (msg == NULL || strcmp(msg, "ok") == 0)
            continue;
        v = grow(v, n, &cap, sizeof(*v));
        v[n++] = al_xstrdup(msg);
    }
    if (rc != SQLITE_DONE) {
        al_db_messages_free(v, n);
        return q_fail(h, err, "check database");
    }
    *out = v;
    *n_out = n;
    return 0;
}

void al_db_messages_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The blobs of one graph (for airlock-fetch --repair) --------------------- */

int al_db_graph_blobs(al_db *db, const char *root, al_db_blob **out, size_t *n_out, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3 *h = al_db_sqlite(db);
    _cleanup_(finalizep) sqlite3_stmt *st = NULL;
    /* Edges reach child manifests, configs and layers; each blob once. */
    if (sqlite3_prepare_v2(
            h,
            "WITH RECURSIVE g(d) AS (SELECT ?1"
            " UNION SELECT e.child_digest FROM edges e JOIN g ON e.parent_digest = g.d)"
            " SELECT b.digest, b.size, b.media_type, b.added_at"
            " FROM g JOIN blobs b ON b.digest = g.d ORDER BY b.digest",
            -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, root, -1, SQLITE_STATIC) != SQLITE_OK)
        return q_fail(h, err, "read the blobs of a graph");
    al_db_blob *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        v = grow(v, n, &cap, sizeof(*v));
        al_db_blob *b = &v[n++];
        col_digest(b->digest, st, 0);
        b->size = sqlite3_column_int64(st, 1);
        b->media_type = col_text(st, 2);
        b->added_at = sqlite3_column_double(st, 3);
    }
    if (rc != SQLITE_DONE) {
        al_db_blobs_free(v, n);
        return q_fail(h, err, "read the blobs of a graph");
    }
    *out = v;
    *n_out = n;
    return 0;
}

void al_db_blobs_free(al_db_blob *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].media_type);
    free(v);
}
