/* db/db-bundle.c: the store id (made at creation, at the migration of an
 * older store, absent in a read-only schema-1 database), the bundles
 * applied, tag history, and the import's one transaction (all or
 * nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "db-private.h"
#include "db.h"
#include "test-helpers.h"
#include "util.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define SRC "fedcba9876543210fedcba9876543210"

typedef struct fixture {
    char *tmp;
    char *path;
} fixture;

static int setup(void **state)
{
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

static al_db *open_db(const char *path, bool ro)
{
    al_db *db = NULL;
    al_error *err = NULL;
    if (al_db_open(&db, path, ro, &err) != 0)
        fail_msg("al_db_open %s: %s", path, err ? err->msg : "?");
    return db;
}

static long long count(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    long long v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void dg(char out[AL_DIGEST_BUF], const char *seed)
{
    al_digest_bytes(out, seed, strlen(seed));
}

static void test_store_id(void **state)
{
    fixture *f = *state;
    char a[AL_BUNDLE_ID_BUF], b[AL_BUNDLE_ID_BUF];
    bool found = false;
    al_db *db = open_db(f->path, false);
    assert_int_equal(al_db_store_id(db, a, &found, NULL), 0);
    assert_true(found);
    assert_true(al_bundle_id_valid(a));
    al_db_free(db);
    /* The same id on every open, read-only too. */
    db = open_db(f->path, true);
    assert_int_equal(al_db_store_id(db, b, &found, NULL), 0);
    assert_true(found);
    assert_string_equal(a, b);
    al_db_free(db);
    /* Another store, another id. */
    char *other = al_xasprintf("%s/other.db", f->tmp);
    db = open_db(other, false);
    assert_int_equal(al_db_store_id(db, b, &found, NULL), 0);
    assert_string_not_equal(a, b);
    al_db_free(db);
    free(other);
}

/* A database as airlock wrote it before schema 2: read-only opens work
 * (no id), and the first read-write open gives it one. */
static void test_migration_from_1(void **state)
{
    fixture *f = *state;
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, al_db_migrations[0], NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "PRAGMA user_version = 1;"
                                  "INSERT INTO tag_history (full_name, old_digest, new_digest, at)"
                                  " VALUES ('docker.io/library/x:1', NULL, 'sha256:aa', 1.0);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);

    al_db *db = open_db(f->path, true);
    char id[AL_BUNDLE_ID_BUF];
    bool found = true;
    assert_int_equal(al_db_store_id(db, id, &found, NULL), 0);
    assert_false(found);
    al_db_bundle *list = NULL;
    size_t n = 9;
    assert_int_equal(al_db_bundles_list(db, &list, &n, NULL), 0);
    assert_int_equal(0, n);
    al_db_free(db);

    db = open_db(f->path, false);
    assert_int_equal(al_db_store_id(db, id, &found, NULL), 0);
    assert_true(found);
    assert_true(al_bundle_id_valid(id));
    al_db_history *hist = NULL;
    assert_int_equal(al_db_history_load(db, &hist, &n, NULL), 0);
    assert_int_equal(1, n); /* kept */
    al_db_history_free(hist, n);
    al_db_free(db);
    assert_int_equal((int)al_db_n_migrations, count(f->path, "PRAGMA user_version"));
}

/* A one-image graph: manifest, config, layer named after `name`. */
typedef struct image {
    char m[AL_DIGEST_BUF], c[AL_DIGEST_BUF], l[AL_DIGEST_BUF];
    al_graph_manifest gm;
    al_graph_edge ge[2];
    al_graph g;
    al_db_import_blob blobs[3];
} image;

static void image_init(image *im, const char *tag, const char *name)
{
    memset(im, 0, sizeof(*im));
    char s[64];
    snprintf(s, sizeof(s), "%s-m", name);
    dg(im->m, s);
    snprintf(s, sizeof(s), "%s-c", name);
    dg(im->c, s);
    snprintf(s, sizeof(s), "%s-l", name);
    dg(im->l, s);
    memcpy(im->gm.digest, im->m, AL_DIGEST_BUF);
    im->gm.media_type = MT_MANIFEST;
    im->gm.size = 10;
    memcpy(im->gm.config_digest, im->c, AL_DIGEST_BUF);
    im->ge[0] = (al_graph_edge){.kind = AL_EDGE_CONFIG};
    memcpy(im->ge[0].parent, im->m, AL_DIGEST_BUF);
    memcpy(im->ge[0].child, im->c, AL_DIGEST_BUF);
    im->ge[1] = (al_graph_edge){.kind = AL_EDGE_LAYER};
    memcpy(im->ge[1].parent, im->m, AL_DIGEST_BUF);
    memcpy(im->ge[1].child, im->l, AL_DIGEST_BUF);
    im->g = (al_graph){.full_name = tag,
                       .source = "bundle",
                       .root_digest = im->m,
                       .root_media_type = MT_MANIFEST,
                       .root_size = 10,
                       .manifests = &im->gm,
                       .n_manifests = 1,
                       .edges = im->ge,
                       .n_edges = 2};
    im->blobs[0] = (al_db_import_blob){im->m, 10, MT_MANIFEST};
    im->blobs[1] = (al_db_import_blob){im->c, 20, NULL};
    im->blobs[2] = (al_db_import_blob){im->l, 100, NULL};
}

static void test_import_commit(void **state)
{
    fixture *f = *state;
    al_db *db = open_db(f->path, false);
    int64_t run = 0;
    assert_int_equal(al_db_run_begin(db, "test", &run, NULL), 0);
    image a, b;
    image_init(&a, "docker.io/library/a:1", "a");
    image_init(&b, "docker.io/library/b:1", "b");
    al_graph graphs[2] = {a.g, b.g};
    al_db_import_blob blobs[6];
    memcpy(blobs, a.blobs, sizeof(a.blobs));
    memcpy(blobs + 3, b.blobs, sizeof(b.blobs));
    al_db_bundle bun = {.created_at = 1000, .tags = 2, .blobs = 6, .bytes = 260};
    snprintf(bun.id, sizeof(bun.id), "0123456789abcdef0123456789abcdef");
    snprintf(bun.source_store, sizeof(bun.source_store), SRC);
    al_db_import imp = {blobs, 6, graphs, 2, &bun};

    /* A graph naming a blob that is not among the rows: nothing at all is
     * committed, not the other image, not the blobs, not the bundle. */
    al_db_import bad = imp;
    bad.n_blobs = 5;
    al_error *err = NULL;
    assert_int_equal(al_db_import_commit(db, &bad, run, NULL, &err), AL_E_DB);
    assert_non_null(strstr(err->msg, b.l));
    al_error_clear(&err);
    assert_int_equal(0, count(f->path, "SELECT count(*) FROM blobs"));
    assert_int_equal(0, count(f->path, "SELECT count(*) FROM tags"));
    assert_int_equal(0, count(f->path, "SELECT count(*) FROM bundles"));

    char moved[2][AL_DIGEST_BUF];
    assert_int_equal(al_db_import_commit(db, &imp, run, moved, &err), 0);
    assert_string_equal("", moved[0]);
    assert_int_equal(6, count(f->path, "SELECT count(*) FROM blobs"));
    assert_int_equal(2, count(f->path, "SELECT count(*) FROM tags"));
    assert_int_equal(4, count(f->path, "SELECT count(*) FROM edges"));
    al_db_bundle got;
    bool found = false;
    assert_int_equal(al_db_bundle_get(db, bun.id, &got, &found, NULL), 0);
    assert_true(found);
    assert_string_equal(SRC, got.source_store);
    assert_string_equal("", got.base);
    assert_int_equal(run, got.run_id);
    assert_true(got.applied_at > 0);

    /* A second bundle from the same source moves tag a; it is the last. */
    image a2;
    image_init(&a2, "docker.io/library/a:1", "a2");
    al_db_bundle bun2 = bun;
    snprintf(bun2.id, sizeof(bun2.id), "1123456789abcdef0123456789abcdef");
    memcpy(bun2.base, bun.id, sizeof(bun2.base));
    bun2.created_at = 2000;
    al_db_import imp2 = {a2.blobs, 3, &a2.g, 1, &bun2};
    assert_int_equal(al_db_import_commit(db, &imp2, run, moved, &err), 0);
    assert_string_equal(a.m, moved[0]);
    assert_int_equal(al_db_bundle_last(db, SRC, &got, &found, NULL), 0);
    assert_true(found);
    assert_string_equal(bun2.id, got.id);
    assert_string_equal(bun.id, got.base);
    assert_int_equal(al_db_bundle_last(db, "00000000000000000000000000000000", &got, &found, NULL),
                     0);
    assert_false(found);

    /* History: per tag, most recent first. */
    al_db_history *h = NULL;
    size_t n = 0;
    assert_int_equal(al_db_history_load(db, &h, &n, NULL), 0);
    assert_int_equal(3, n);
    assert_string_equal("docker.io/library/a:1", h[0].full_name);
    assert_string_equal(a2.m, h[0].new_digest);
    assert_string_equal(a.m, h[0].old_digest);
    assert_string_equal("", h[1].old_digest);
    assert_string_equal("docker.io/library/b:1", h[2].full_name);
    al_db_history_free(h, n);

    al_db_bundle *list = NULL;
    assert_int_equal(al_db_bundles_list(db, &list, &n, NULL), 0);
    assert_int_equal(2, n);
    assert_string_equal(bun.id, list[0].id);
    free(list);
    al_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
