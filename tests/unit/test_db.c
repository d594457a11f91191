/* Unit tests for db/db: schema, migrations, blobs, graphs, tags, runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <string.h>

#include "db.h"
#include "digest.h"
#include "test-helpers.h"

#define SCHEMA_VERSION 3 /* bump with each migration */

typedef struct {
    char *tmp;
    char *path; /* TMP/airlock.db */
} fixture;

static int setup(void **state)
{
    umask(022);
    fixture *f = al_xcalloc(1, sizeof(*f));
    f->tmp = th_mkdtemp();
    f->path = al_xasprintf("%s/airlock.db", f->tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    th_rm_rf(f->tmp);
    free(f->tmp);
    free(f->path);
    free(f);
    return 0;
}

static al_db *open_db(const char *path, bool readonly)
{
    al_db *db = NULL;
    al_error *err = NULL;
    if (al_db_open(&db, path, readonly, &err) != 0)
        fail_msg("al_db_open %s: %s", path, err ? err->msg : "?");
    return db;
}

/* Raw SQL on a separate connection, to look behind the API. */
static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    long long v = -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(h);
}

static void dg(char out[AL_DIGEST_BUF], const char *seed)
{
    al_digest_bytes(out, seed, strlen(seed));
}

/* Open / migrations -------------------------------------------------- */

static void test_open_migrations_idempotent(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        al_db *db = open_db(f->path, false);
        al_db_free(db);
        assert_int_equal(raw_int(f->path, "PRAGMA user_version"), SCHEMA_VERSION);
    }
    static const char *tables[] = {"blobs",       "manifests", "edges",      "tags",
                                   "tag_history", "runs",      "store_meta", "bundles"};
    for (size_t i = 0; i < AL_ARRAY_SIZE(tables); i++) {
        char *sql = al_xasprintf("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name = '%s'",
                                 tables[i]);
        assert_int_equal(raw_int(f->path, sql), 1);
        free(sql);
    }
    /* Persistent WAL mode; the closed database is one file again. */
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(h);
    char *wal = al_xasprintf("%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), -1);
    free(wal);
    /* Re-opening keeps data. */
    al_db *db = open_db(f->path, false);
    char d[AL_DIGEST_BUF];
    dg(d, "x");
    assert_int_equal(al_db_blob_add(db, d, 1, NULL, NULL), 0);
    al_db_free(db);
    db = open_db(f->path, false);
    bool found = false;
    assert_int_equal(al_db_blob_get(db, d, &found, NULL, NULL), 0);
    assert_true(found);
    al_db_free(db);
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    al_db_free(open_db(f->path, false));
    char *sql = al_xasprintf("PRAGMA user_version = %d", SCHEMA_VERSION + 1);
    raw_exec(f->path, sql);
    free(sql);
    for (int ro = 0; ro < 2; ro++) {
        al_db *db = (al_db *)1;
        al_error *err = NULL;
        assert_int_equal(al_db_open(&db, f->path, ro, &err), AL_E_DB);
        assert_null(db);
        char *want = al_xasprintf("schema version %d is newer than this airlock (%d)",
                                  SCHEMA_VERSION + 1, SCHEMA_VERSION);
        assert_non_null(strstr(err->msg, want));
        assert_non_null(strstr(err->msg, f->path));
        free(want);
        al_error_free(err);
    }
    /* Untouched by the refused opens. */
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), SCHEMA_VERSION + 1);
}

static void test_open_errors(void **state)
{
    fixture *f = *state;
    al_db *db = NULL;
    al_error *err = NULL;
    /* Read-only: missing file is NOT_FOUND and is not created. */
    assert_int_equal(al_db_open(&db, f->path, true, &err), AL_E_NOT_FOUND);
    assert_non_null(strstr(err->msg, "not found"));
    al_error_clear(&err);
    assert_int_equal(access(f->path, F_OK), -1);
    assert_int_equal(al_db_open(&db, "", false, &err), AL_E_USAGE);
    al_error_clear(&err);

    /* Read-only on a database no airlock has migrated yet. */
    raw_exec(f->path, "CREATE TABLE t (x)");
    assert_int_equal(al_db_open(&db, f->path, true, &err), AL_E_DB);
    assert_non_null(strstr(err->msg, "older than this airlock"));
    al_error_clear(&err);

    /* Not a database at all. */
    char *junk = al_xasprintf("%s/junk.db", f->tmp);
    const char *text = "this is not sqlite, just some text long enough to have a header......."
                       "................................................................";
    th_write_file(junk, text, strlen(text));
    for (int ro = 0; ro < 2; ro++) {
        assert_int_equal(al_db_open(&db, junk, ro, &err), AL_E_DB);
        assert_null(db);
        al_error_clear(&err);
    }
    /* Read-write where the directory does not exist. */
    char *nodir = al_xasprintf("%s/no/such/dir/airlock.db", f->tmp);
    assert_int_equal(al_db_open(&db, nodir, false, &err), AL_E_DB);
    al_error_clear(&err);
    free(nodir);
    free(junk);
}

/* Blobs -------------------------------------------------------------- */

static void test_blobs(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    al_error *err = NULL;
    static const struct {
        const char *seed;
        int64_t size;
        const char *media_type;
    } cases[] = {
        {"a", 0, NULL},
        {"b", 1, "application/vnd.oci.image.layer.v1.tar+gzip"},
        {"c", INT64_C(5000000000), "application/vnd.oci.image.config.v1+json"},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        char d[AL_DIGEST_BUF];
        dg(d, cases[i].seed);
        bool found = true;
        assert_int_equal(al_db_blob_get(db, d, &found, NULL, &err), 0);
        assert_false(found);
        assert_int_equal(al_db_blob_add(db, d, cases[i].size, cases[i].media_type, &err), 0);
        int64_t size = -1;
        assert_int_equal(al_db_blob_get(db, d, &found, &size, &err), 0);
        assert_true(found);
        assert_int_equal(size, cases[i].size);
        /* Adding again is fine and keeps a known media type. */
        assert_int_equal(al_db_blob_add(db, d, cases[i].size, NULL, &err), 0);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs WHERE media_type IS NOT NULL"),
                     2);

    static const char *bad[] = {"sha256:../../x", "", "sha256:ABC", "md5:x"};
    for (size_t i = 0; i < AL_ARRAY_SIZE(bad); i++) {
        bool found = true;
        assert_int_equal(al_db_blob_add(db, bad[i], 1, NULL, &err), AL_E_PARSE);
        al_error_clear(&err);
        assert_int_equal(al_db_blob_get(db, bad[i], &found, NULL, &err), AL_E_PARSE);
        assert_false(found);
        al_error_clear(&err);
        assert_int_equal(al_db_manifest_has(db, bad[i], &found, &err), AL_E_PARSE);
        al_error_clear(&err);
    }
    char d[AL_DIGEST_BUF];
    dg(d, "neg");
    assert_int_equal(al_db_blob_add(db, d, -1, NULL, &err), AL_E_USAGE);
    al_error_clear(&err);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 3);
    al_db_free(db);
}

/* Graphs ------------------------------------------------------------- */

#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"

/* index -> two image manifests, each with a config and two layers (one
 * layer shared). Digests derive from a tag so graphs can differ. */
typedef struct {
    char index[AL_DIGEST_BUF];
    char man[2][AL_DIGEST_BUF];
    char cfg[2][AL_DIGEST_BUF];
    char layer[3][AL_DIGEST_BUF];
    al_graph_manifest manifests[3];
    al_graph_edge edges[8];
    al_graph g;
} test_graph;

static void graph_init(test_graph *t, const char *name, const char *variant)
{
    memset(t, 0, sizeof(*t));
    char *s;
    s = al_xasprintf("%s-index", variant);
    dg(t->index, s);
    free(s);
    for (int i = 0; i < 2; i++) {
        s = al_xasprintf("%s-man%d", variant, i);
        dg(t->man[i], s);
        free(s);
        s = al_xasprintf("%s-cfg%d", variant, i);
        dg(t->cfg[i], s);
        free(s);
    }
    for (int i = 0; i < 3; i++) {
        s = al_xasprintf("%s-layer%d", variant, i);
        dg(t->layer[i], s);
        free(s);
    }
    al_graph_manifest *m = t->manifests;
    memcpy(m[0].digest, t->index, AL_DIGEST_BUF);
    m[0].media_type = MT_INDEX;
    m[0].size = 500;
    m[0].is_index = true;
    for (int i = 0; i < 2; i++) {
        memcpy(m[1 + i].digest, t->man[i], AL_DIGEST_BUF);
        m[1 + i].media_type = MT_MANIFEST;
        m[1 + i].size = 400;
        m[1 + i].has_platform = true;
        /* Set directly: common/platform.c is another module. */
        snprintf(m[1 + i].platform.os, sizeof(m[1 + i].platform.os), "linux");
        snprintf(m[1 + i].platform.arch, sizeof(m[1 + i].platform.arch), "%s",
                 i == 0 ? "amd64" : "arm");
        snprintf(m[1 + i].platform.variant, sizeof(m[1 + i].platform.variant), "%s",
                 i == 0 ? "" : "v7");
        memcpy(m[1 + i].config_digest, t->cfg[i], AL_DIGEST_BUF);
    }
    al_graph_edge *e = t->edges;
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        memcpy(e[n].parent, t->index, AL_DIGEST_BUF);
        memcpy(e[n].child, t->man[i], AL_DIGEST_BUF);
        e[n].kind = AL_EDGE_MANIFEST;
        e[n++].position = i;
    }
    for (int i = 0; i < 2; i++) {
        memcpy(e[n].parent, t->man[i], AL_DIGEST_BUF);
        memcpy(e[n].child, t->cfg[i], AL_DIGEST_BUF);
        e[n].kind = AL_EDGE_CONFIG;
        e[n++].position = 0;
        for (int l = 0; l < 2; l++) {
            memcpy(e[n].parent, t->man[i], AL_DIGEST_BUF);
            memcpy(e[n].child, t->layer[i + l], AL_DIGEST_BUF); /* layer1 shared */
            e[n].kind = AL_EDGE_LAYER;
            e[n++].position = l;
        }
    }
    t->g.full_name = name;
    t->g.source = "127.0.0.1:5000/library/busybox";
    t->g.root_digest = t->index;
    t->g.root_media_type = MT_INDEX;
    t->g.root_size = 500;
    t->g.manifests = t->manifests;
    t->g.n_manifests = 3;
    t->g.edges = t->edges;
    t->g.n_edges = n;
}

/* Add blob rows for every digest of t, except `skip` (may be NULL). */
static void graph_add_blobs(al_db *db, test_graph *t, const char *skip)
{
    const char *all[] = {t->index,  t->man[0],   t->man[1],   t->cfg[0],
                         t->cfg[1], t->layer[0], t->layer[1], t->layer[2]};
    for (size_t i = 0; i < AL_ARRAY_SIZE(all); i++) {
        if (skip != NULL && strcmp(all[i], skip) == 0)
            continue;
        assert_int_equal(al_db_blob_add(db, all[i], 100, NULL, NULL), 0);
    }
}

static void assert_rows(const char *path, int manifests, int edges, int tags, int history)
{
    assert_int_equal(raw_int(path, "SELECT count(*) FROM manifests"), manifests);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM edges"), edges);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM tags"), tags);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM tag_history"), history);
}

static void test_graph_commit(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    test_graph t;
    graph_init(&t, "docker.io/library/busybox:1.36", "v1");
    graph_add_blobs(db, &t, NULL);
    int64_t run = 0;
    al_error *err = NULL;
    assert_int_equal(al_db_run_begin(db, "airlock-fetch busybox", &run, &err), 0);
    char moved[AL_DIGEST_BUF] = "junk";
    double before = al_now();
    assert_int_equal(al_db_graph_commit(db, &t.g, run, moved, &err), 0);
    assert_null(err);
    assert_string_equal(moved, "");
    assert_rows(f->path, 3, 8, 1, 1);

    bool found = false;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(al_db_manifest_has(db, t.man[i], &found, &err), 0);
        assert_true(found);
    }
    assert_int_equal(al_db_manifest_has(db, t.cfg[0], &found, &err), 0);
    assert_false(found);

    al_tag tag;
    assert_int_equal(al_db_tag_get(db, "docker.io/library/busybox:1.36", &tag, &found, &err), 0);
    assert_true(found);
    assert_string_equal(tag.full_name, "docker.io/library/busybox:1.36");
    assert_string_equal(tag.digest, t.index);
    assert_string_equal(tag.media_type, MT_INDEX);
    assert_int_equal(tag.size, 500);
    assert_string_equal(tag.source, "127.0.0.1:5000/library/busybox");
    assert_true(tag.first_seen >= before && tag.first_seen <= al_now());
    assert_true(tag.checked_at == tag.first_seen && tag.changed_at == tag.first_seen);
    al_tag_dispose(&tag);
    al_tag_dispose(NULL);

    /* What the rows say. */
    char *sql = al_xasprintf("SELECT count(*) FROM manifests WHERE os = 'linux' AND arch = 'arm' "
                             "AND variant = 'v7' AND config_digest = '%s' AND is_index = 0",
                             t.cfg[1]);
    assert_int_equal(raw_int(f->path, sql), 1);
    free(sql);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM manifests WHERE os = 'linux' AND "
                                      "arch = 'amd64' AND variant IS NULL"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM manifests WHERE is_index = 1 AND "
                                      "os IS NULL AND config_digest IS NULL"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM edges WHERE kind = 'layer'"), 4);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM edges WHERE kind = 'manifest'"), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM edges WHERE kind = 'config'"), 2);
    sql = al_xasprintf("SELECT count(*) FROM tag_history WHERE old_digest IS NULL AND "
                       "new_digest = '%s' AND run_id = %lld",
                       t.index, (long long)run);
    assert_int_equal(raw_int(f->path, sql), 1);
    free(sql);

    /* A second name for the same graph shares its rows. */
    t.g.full_name = "docker.io/library/busybox:latest";
    assert_int_equal(al_db_graph_commit(db, &t.g, run, NULL, &err), 0);
    assert_rows(f->path, 3, 8, 2, 2);
    al_db_free(db);
}

static void test_graph_missing_blob(void **state)
{
    fixture *f = *state;
    test_graph t;
    graph_init(&t, "docker.io/library/busybox:1.36", "v1");
    const char *missing[] = {t.index, t.man[1], t.cfg[0], t.layer[2], t.layer[1]};
    for (size_t i = 0; i < AL_ARRAY_SIZE(missing); i++) {
        unlink(f->path);
        al_db *db = open_db(f->path, false);
        graph_add_blobs(db, &t, missing[i]);
        char moved[AL_DIGEST_BUF] = "junk";
        al_error *err = NULL;
        assert_int_equal(al_db_graph_commit(db, &t.g, 0, moved, &err), AL_E_DB);
        char *want = al_xasprintf("graph of docker.io/library/busybox:1.36 references blob %s "
                                  "which is not in the store",
                                  missing[i]);
        assert_string_equal(err->msg, want);
        free(want);
        al_error_free(err);
        assert_string_equal(moved, "");
        assert_rows(f->path, 0, 0, 0, 0);
        /* The connection is usable afterwards (no transaction left open). */
        assert_int_equal(al_db_blob_add(db, missing[i], 100, NULL, NULL), 0);
        assert_int_equal(al_db_graph_commit(db, &t.g, 0, moved, NULL), 0);
        assert_rows(f->path, 3, 8, 1, 1);
        al_db_free(db);
    }
}

/* A failure after manifests and edges were inserted (here: a trigger
 * refusing the tag row) must roll all of them back. */
static void test_graph_rollback(void **state)
{
    fixture *f = *state;
    al_db_free(open_db(f->path, false));
    raw_exec(f->path, "CREATE TRIGGER refuse_tag BEFORE INSERT ON tags "
                      "BEGIN SELECT RAISE(ABORT, 'tag refused by test'); END");
    al_db *db = open_db(f->path, false);
    test_graph t;
    graph_init(&t, "docker.io/library/busybox:1.36", "v1");
    graph_add_blobs(db, &t, NULL);
    char moved[AL_DIGEST_BUF] = "junk";
    al_error *err = NULL;
    assert_int_equal(al_db_graph_commit(db, &t.g, 0, moved, &err), AL_E_DB);
    assert_non_null(strstr(err->msg, "tag refused by test"));
    assert_non_null(strstr(err->msg, "docker.io/library/busybox:1.36"));
    al_error_clear(&err);
    assert_string_equal(moved, "");
    assert_rows(f->path, 0, 0, 0, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 8);
    raw_exec(f->path, "DROP TRIGGER refuse_tag");
    assert_int_equal(al_db_graph_commit(db, &t.g, 0, moved, &err), 0);
    assert_rows(f->path, 3, 8, 1, 1);
    al_db_free(db);
}

static void test_graph_invalid(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    test_graph t;
    graph_init(&t, "docker.io/library/busybox:1.36", "v1");
    graph_add_blobs(db, &t, NULL);
    static const struct {
        int what;
        al_errc want;
    } cases[] = {
        {0, AL_E_PARSE}, /* edge child "sha256:../../x" */
        {1, AL_E_PARSE}, /* root digest */
        {2, AL_E_USAGE}, /* no name */
        {3, AL_E_USAGE}, /* edge kind out of range */
        {4, AL_E_PARSE}, /* config digest */
        {5, AL_E_USAGE}, /* manifest without media type */
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        test_graph b;
        graph_init(&b, "docker.io/library/busybox:1.36", "v1");
        switch (cases[i].what) {
        case 0: strcpy(b.edges[3].child, "sha256:../../x"); break;
        case 1: b.g.root_digest = "sha256:nope"; break;
        case 2: b.g.full_name = ""; break;
        case 3: b.edges[0].kind = (al_edge_kind)7; break;
        case 4: strcpy(b.manifests[1].config_digest, "sha256:Z"); break;
        case 5: b.manifests[2].media_type = NULL; break;
        }
        al_error *err = NULL;
        assert_int_equal(al_db_graph_commit(db, &b.g, 0, NULL, &err), cases[i].want);
        assert_non_null(strstr(err->msg, "graph of"));
        al_error_free(err);
        assert_rows(f->path, 0, 0, 0, 0);
    }
    al_db_free(db);
}

/* Tags --------------------------------------------------------------- */

static void test_tag_moved(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    const char *name = "docker.io/library/alpine:3";
    test_graph a, b;
    graph_init(&a, name, "a");
    graph_init(&b, name, "b");
    graph_add_blobs(db, &a, NULL);
    graph_add_blobs(db, &b, NULL);
    int64_t run1 = 0, run2 = 0, run3 = 0;
    al_error *err = NULL;
    assert_int_equal(al_db_run_begin(db, "one", &run1, &err), 0);
    assert_int_equal(al_db_run_begin(db, "two", &run2, &err), 0);
    assert_int_equal(al_db_run_begin(db, "three", &run3, &err), 0);

    char moved[AL_DIGEST_BUF];
    assert_int_equal(al_db_graph_commit(db, &a.g, run1, moved, &err), 0);
    assert_string_equal(moved, "");
    al_tag t1, t2, t3;
    bool found;
    assert_int_equal(al_db_tag_get(db, name, &t1, &found, &err), 0);

    /* Same digest again: no move, checked_at advances, changed_at stays. */
    assert_int_equal(al_db_graph_commit(db, &a.g, run2, moved, &err), 0);
    assert_string_equal(moved, "");
    assert_int_equal(al_db_tag_get(db, name, &t2, &found, &err), 0);
    assert_true(t2.checked_at > t1.checked_at);
    assert_true(t2.changed_at == t1.changed_at);
    assert_true(t2.first_seen == t1.first_seen);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tag_history"), 1);

    /* Moved to b. */
    b.g.source = "mirror.example/library/alpine";
    assert_int_equal(al_db_graph_commit(db, &b.g, run3, moved, &err), 0);
    assert_string_equal(moved, a.index);
    assert_int_equal(al_db_tag_get(db, name, &t3, &found, &err), 0);
    assert_string_equal(t3.digest, b.index);
    assert_string_equal(t3.source, "mirror.example/library/alpine");
    assert_true(t3.changed_at > t2.changed_at);
    assert_true(t3.changed_at == t3.checked_at);
    assert_true(t3.first_seen == t1.first_seen);
    char *sql = al_xasprintf("SELECT run_id FROM tag_history WHERE full_name = '%s' AND "
                             "old_digest = '%s' AND new_digest = '%s'",
                             name, a.index, b.index);
    assert_int_equal(raw_int(f->path, sql), run3);
    free(sql);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tag_history"), 2);
    /* Both graphs' manifests are kept; nothing is deleted by a move. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM manifests"), 6);
    al_tag_dispose(&t1);
    al_tag_dispose(&t2);
    al_tag_dispose(&t3);

    /* Unknown tag. */
    al_tag none;
    found = true;
    assert_int_equal(al_db_tag_get(db, "docker.io/library/nope:1", &none, &found, &err), 0);
    assert_false(found);
    al_tag_dispose(&none);
    al_db_free(db);
}

static void test_tag_touch(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    test_graph a;
    graph_init(&a, "docker.io/library/busybox:1.36", "a");
    graph_add_blobs(db, &a, NULL);
    al_error *err = NULL;
    assert_int_equal(al_db_graph_commit(db, &a.g, 0, NULL, &err), 0);
    al_tag t1, t2;
    bool found;
    assert_int_equal(al_db_tag_get(db, a.g.full_name, &t1, &found, &err), 0);
    assert_int_equal(al_db_tag_touch(db, a.g.full_name, &err), 0);
    assert_int_equal(al_db_tag_get(db, a.g.full_name, &t2, &found, &err), 0);
    assert_true(t2.checked_at > t1.checked_at);
    assert_true(t2.changed_at == t1.changed_at);
    assert_string_equal(t2.digest, t1.digest);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tag_history"), 1);
    al_tag_dispose(&t1);
    al_tag_dispose(&t2);

    assert_int_equal(al_db_tag_touch(db, "docker.io/library/nope:1", &err), AL_E_NOT_FOUND);
    assert_non_null(strstr(err->msg, "docker.io/library/nope:1"));
    al_error_free(err);
    al_db_free(db);
}

/* Many tags found unchanged: one batched update (a statement per 256
 * names); names that are no tag are ignored. */
static void test_tags_touch(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    test_graph a;
    graph_init(&a, "x", "a");
    graph_add_blobs(db, &a, NULL);
    enum { N = 300 };
    char *names[N + 1];
    for (int i = 0; i < N; i++) {
        names[i] = al_xasprintf("docker.io/library/app%03d:1", i);
        a.g.full_name = names[i];
        assert_int_equal(al_db_graph_commit(db, &a.g, 0, NULL, NULL), 0);
    }
    names[N] = al_xstrdup("docker.io/library/nope:1");
    raw_exec(f->path, "UPDATE tags SET checked_at = 1, changed_at = 1");
    al_error *err = NULL;
    assert_int_equal(al_db_tags_touch(db, (const char *const *)names, N + 1, &err), 0);
    assert_null(err);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags WHERE checked_at > 1"), N);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags WHERE changed_at = 1"), N);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags"), N);
    /* Only the names given. */
    raw_exec(f->path, "UPDATE tags SET checked_at = 1");
    assert_int_equal(al_db_tags_touch(db, (const char *const *)names + 10, 5, &err), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags WHERE checked_at > 1"), 5);
    assert_int_equal(al_db_tags_touch(db, NULL, 0, &err), 0);
    for (int i = 0; i <= N; i++)
        free(names[i]);
    al_db_free(db);
}

/* A run's group commit: blob rows and several graphs in one transaction
 * (al_db_begin); a graph that fails undoes itself only (a savepoint), and
 * nothing is visible to another reader before the commit. */
static void test_group_commit(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    test_graph a, b;
    graph_init(&a, "docker.io/library/a:1", "a");
    graph_init(&b, "docker.io/library/b:1", "b");
    al_error *err = NULL;
    assert_int_equal(al_db_begin(db, &err), 0);
    graph_add_blobs(db, &a, NULL);
    graph_add_blobs(db, &b, b.layer[2]);
    assert_int_equal(al_db_graph_commit(db, &a.g, 0, NULL, &err), 0);
    assert_int_equal(al_db_graph_commit(db, &b.g, 0, NULL, &err), AL_E_DB);
    assert_non_null(strstr(err->msg, "docker.io/library/b:1"));
    al_error_clear(&err);
    a.g.full_name = "docker.io/library/a:2";
    assert_int_equal(al_db_graph_commit(db, &a.g, 0, NULL, &err), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 0);
    assert_rows(f->path, 0, 0, 0, 0);
    assert_int_equal(al_db_commit(db, &err), 0);
    assert_null(err);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM blobs"), 15);
    assert_rows(f->path, 3, 8, 2, 2);
    /* Outside a transaction, a graph commits on its own again. */
    assert_int_equal(al_db_blob_add(db, b.layer[2], 100, NULL, NULL), 0);
    assert_int_equal(al_db_graph_commit(db, &b.g, 0, NULL, &err), 0);
    assert_rows(f->path, 6, 16, 3, 3);
    al_db_free(db);
}

/* One long name, spelled once (clang warns on implicit literal joins). */
#define ALPINE_AT_DIGEST                                                                           \
    ("docker.io/library/alpine@sha256:"                                                            \
     "1111111111111111111111111111111111111111111111111111111111111111")

static void test_tags_list(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    al_tag *tags = (al_tag *)1;
    size_t n = 99;
    al_error *err = NULL;
    assert_int_equal(al_db_tags_list(db, &tags, &n, &err), 0);
    assert_int_equal(n, 0);
    al_tags_free(tags, n);

    /* Inserted out of order; listed in byte order of full_name. */
    static const char *names[] = {
        "quay.io/coreos/etcd:v3.5",
        "docker.io/library/busybox:latest",
        "docker.io/library/alpine:3.19",
        "docker.io/library/busybox:1.36",
        ALPINE_AT_DIGEST,
        "127.0.0.1:5000/x:1",
        "docker.io/Library/Z:1", /* upper case sorts before lower case */
    };
    static const char *want[] = {
        "127.0.0.1:5000/x:1",
        "docker.io/Library/Z:1",
        "docker.io/library/alpine:3.19",
        ALPINE_AT_DIGEST,
        "docker.io/library/busybox:1.36",
        "docker.io/library/busybox:latest",
        "quay.io/coreos/etcd:v3.5",
    };
    test_graph t;
    graph_init(&t, names[0], "v");
    graph_add_blobs(db, &t, NULL);
    for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
        t.g.full_name = names[i];
        t.g.source = i % 2 ? NULL : "src";
        assert_int_equal(al_db_graph_commit(db, &t.g, 0, NULL, &err), 0);
    }
    assert_int_equal(al_db_tags_list(db, &tags, &n, &err), 0);
    assert_int_equal(n, AL_ARRAY_SIZE(want));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(tags[i].full_name, want[i]);
        assert_string_equal(tags[i].digest, t.index);
        assert_non_null(tags[i].source); /* NULL source reads back as "" */
    }
    al_tags_free(tags, n);
    al_tags_free(NULL, 0);
    al_db_free(db);
}

/* Runs --------------------------------------------------------------- */

static void test_runs(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    al_error *err = NULL;
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            al_db_run_begin(db, i == 1 ? NULL : "airlock-fetch -f list", &ids[i], &err), 0);
        assert_true(ids[i] > 0);
        if (i > 0)
            assert_true(ids[i] > ids[i - 1]);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs WHERE finished_at IS NULL"), 3);
    assert_int_equal(al_db_run_finish(db, ids[1], 4, 1, INT64_C(123456789012), &err), 0);
    char *sql = al_xasprintf("SELECT count(*) FROM runs WHERE id = %lld AND images_ok = 4 AND "
                             "images_failed = 1 AND bytes = 123456789012 AND "
                             "finished_at >= started_at AND argv IS NULL",
                             (long long)ids[1]);
    assert_int_equal(raw_int(f->path, sql), 1);
    free(sql);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs WHERE finished_at IS NULL"), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs WHERE argv = "
                                      "'airlock-fetch -f list'"),
                     2);
    assert_int_equal(al_db_run_finish(db, 999, 0, 0, 0, &err), AL_E_NOT_FOUND);
    al_error_free(err);
    al_db_free(db);
}

/* Read-only ---------------------------------------------------------- */

static void fill_one_tag(al_db *db, const char *name)
{
    test_graph t;
    graph_init(&t, name, "ro");
    graph_add_blobs(db, &t, NULL);
    assert_int_equal(al_db_graph_commit(db, &t.g, 0, NULL, NULL), 0);
}

static void test_readonly_writable_dir(void **state)
{
    fixture *f = *state;
    al_db *rw = open_db(f->path, false);
    fill_one_tag(rw, "docker.io/library/busybox:1.36");
    al_db_free(rw);

    al_db *db = open_db(f->path, true);
    al_tag *tags = NULL;
    size_t n = 0;
    al_error *err = NULL;
    assert_int_equal(al_db_tags_list(db, &tags, &n, &err), 0);
    assert_int_equal(n, 1);
    al_tags_free(tags, n);
    /* Writes are refused by SQLite. */
    assert_int_equal(al_db_run_begin(db, "x", &(int64_t){0}, &err), AL_E_DB);
    assert_non_null(strstr(err->msg, "readonly"));
    al_error_clear(&err);
    assert_int_equal(al_db_tag_touch(db, "docker.io/library/busybox:1.36", &err), AL_E_DB);
    al_error_clear(&err);
    al_db_free(db);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM runs"), 0);
}

typedef struct {
    const char *path;
    size_t want_tags;
    al_errc want_rc;
    const char *want_msg;
} ro_args;

/* Runs as nobody (when root) against a chmod a-w directory. Returns 0
 * when all checks pass. */
static int readonly_dir_checks(void *arg)
{
    ro_args *a = arg;
    _cleanup_free_ char *dir = al_xstrdup(a->path);
    *strrchr(dir, '/') = '\0';
    if (access(dir, W_OK) == 0)
        return 1; /* setup wrong: the directory is writable */
    al_db *db = NULL;
    al_error *err = NULL;
    int r = al_db_open(&db, a->path, true, &err);
    int rc = 0;
    if (r != (int)a->want_rc) {
        fprintf(stderr, "open: got %d (%s), want %d\n", r, err ? err->msg : "", a->want_rc);
        rc = 2;
    } else if (r != 0) {
        if (a->want_msg != NULL && strstr(err->msg, a->want_msg) == NULL) {
            fprintf(stderr, "message: %s\n", err->msg);
            rc = 3;
        }
    } else {
        al_tag *tags = NULL;
        size_t n = 0;
        if (al_db_tags_list(db, &tags, &n, &err) != 0) {
            fprintf(stderr, "list: %s\n", err->msg);
            rc = 4;
        } else if (n != a->want_tags) {
            fprintf(stderr, "list: %zu tags, want %zu\n", n, a->want_tags);
            rc = 5;
        }
        al_tags_free(tags, n);
    }
    al_error_free(err);
    al_db_free(db);
    return rc;
}

static void run_ro_case(const char *dir, ro_args *a)
{
    char *before = th_snapshot(dir);
    int rc = th_run_unprivileged(readonly_dir_checks, a);
    if (rc == 77) {
        free(before);
        skip();
    }
    assert_int_equal(rc, 0);
    char *after = th_snapshot(dir);
    assert_string_equal(before, after); /* no -wal, -shm or journal created */
    free(before);
    free(after);
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *buf = th_read_file(from, &len);
    assert_non_null(buf);
    th_write_file(to, buf, len);
    free(buf);
}

static void test_readonly_dir_immutable(void **state)
{
    fixture *f = *state;
    /* A closed store: one file, which only opens through immutable=1 in
     * a read-only directory. A name that needs URI escaping. */
    char *dir = al_xasprintf("%s/ro copy?#%%", f->tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    char *path = al_xasprintf("%s/airlock.db", dir);
    al_db *rw = open_db(path, false);
    fill_one_tag(rw, "docker.io/library/busybox:1.36");
    fill_one_tag(rw, "docker.io/library/busybox:latest");
    al_db_free(rw);
    th_make_readonly(dir);
    ro_args a = {path, 2, 0, NULL};
    run_ro_case(dir, &a);
    free(path);
    free(dir);
}

static void test_readonly_dir_with_wal(void **state)
{
    fixture *f = *state;
    /* Copy a database while a writer holds it open: the data is in the
     * -wal, and -shm exists. */
    al_db *rw = open_db(f->path, false);
    fill_one_tag(rw, "docker.io/library/busybox:1.36");
    char *wal = al_xasprintf("%s-wal", f->path);
    char *shm = al_xasprintf("%s-shm", f->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    assert_true(st.st_size > 0);

    char *dir = al_xasprintf("%s/copy", f->tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    char *path = al_xasprintf("%s/airlock.db", dir);
    char *cwal = al_xasprintf("%s-wal", path);
    char *cshm = al_xasprintf("%s-shm", path);
    copy_file(f->path, path);
    copy_file(wal, cwal);
    copy_file(shm, cshm);
    al_db_free(rw);

    th_make_readonly(dir);
    ro_args a = {path, 1, 0, NULL};
    run_ro_case(dir, &a);

    /* Without its -shm the WAL cannot be read: refuse rather than show a
     * database that silently lacks the WAL's commits. */
    chmod(dir, 0755);
    assert_int_equal(unlink(cshm), 0);
    th_make_readonly(dir);
    ro_args b = {path, 0, AL_E_DB, "write-ahead log"};
    run_ro_case(dir, &b);
    free(wal);
    free(shm);
    free(cwal);
    free(cshm);
    free(path);
    free(dir);
}

/* What the store holds for a ref: a present digest is its own root, else the
 * tag row of name:tag or name@digest answers, else nothing. */
static void test_ref_root(void **state)
{
    fixture *f = *state;
    char *dir = al_xasprintf("%s/store", f->tmp);
    al_store *store = NULL;
    al_error *err = NULL;
    assert_int_equal(al_store_open(&store, dir, AL_STORE_WRITE, &err), 0);
    al_db *db = open_db(al_store_db_path(store), false);
    test_graph t;
    graph_init(&t, "docker.io/library/busybox:1.36", "v1");
    graph_add_blobs(db, &t, NULL);
    int64_t run = 0;
    assert_int_equal(al_db_run_begin(db, "airlock-fetch busybox", &run, &err), 0);
    assert_int_equal(al_db_graph_commit(db, &t.g, run, NULL, &err), 0);
    char *by_digest = al_xasprintf("docker.io/library/busybox@%s", t.man[1]);
    t.g.full_name = by_digest; /* a tag row for a digest ref, its file absent */
    assert_int_equal(al_db_graph_commit(db, &t.g, run, NULL, &err), 0);
    char *file = al_xasprintf("%s/blobs/sha256/%s", dir, al_digest_hex(t.man[0]));
    th_write_file(file, "x", 1);
    char absent[AL_DIGEST_BUF];
    dg(absent, "absent");

    char *ref_man0 = al_xasprintf("busybox@%s", t.man[0]);
    char *ref_man1 = al_xasprintf("busybox@%s", t.man[1]);
    char *ref_absent = al_xasprintf("busybox@%s", absent);
    const struct {
        const char *ref, *digest, *media_type;
    } cases[] = {
        {"busybox:1.36", t.index, MT_INDEX}, /* the tag row */
        {"busybox:1.37", "", NULL},          /* no row */
        {ref_man0, t.man[0], NULL},          /* the file, no row needed */
        {ref_man1, t.index, MT_INDEX},       /* the name@digest row */
        {ref_absent, "", NULL},              /* neither */
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_ref *ref = NULL;
        assert_int_equal(al_ref_parse(&ref, cases[i].ref, &err), 0);
        char out[AL_DIGEST_BUF] = "junk";
        char junk[] = "junk";
        char *mt = junk; /* must be overwritten: NULL or the row's */
        assert_int_equal(al_db_ref_root(db, store, ref, out, &mt, &err), 0);
        assert_null(err);
        assert_string_equal(out, cases[i].digest);
        if (cases[i].media_type == NULL)
            assert_null(mt);
        else
            assert_string_equal(mt, cases[i].media_type);
        free(mt);
        al_ref_free(ref);
    }
    free(ref_man0);
    free(ref_man1);
    free(ref_absent);
    free(file);
    free(by_digest);
    al_db_free(db);
    al_store_free(store);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_migrations_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_missing_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_writable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_dir_immutable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_dir_with_wal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
