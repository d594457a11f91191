/* al_db_prune: what is kept (tags, N previous digests, protected rows),
 * what goes (blobs, manifests, edges), --remove, dry runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "graph.h"
#include "test-helpers.h"
#include "util.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"

typedef struct fixture {
    char *tmp;
    char *path;
    al_db *db;
} fixture;

static int setup(void **state)
{
    fixture *f = al_xcalloc(1, sizeof(*f));
    f->tmp = th_mkdtemp();
    f->path = al_xasprintf("%s/airlock.db", f->tmp);
    al_error *err = NULL;
    if (al_db_open(&f->db, f->path, false, &err) != 0)
        fail_msg("al_db_open: %s", err ? err->msg : "?");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    al_db_free(f->db);
    th_rm_rf(f->tmp);
    free(f->tmp);
    free(f->path);
    free(f);
    return 0;
}

static void dg(char out[AL_DIGEST_BUF], const char *seed)
{
    al_digest_bytes(out, seed, strlen(seed));
}

static long long count(fixture *f, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
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

static bool has_blob(fixture *f, const char *seed)
{
    char d[AL_DIGEST_BUF];
    dg(d, seed);
    bool found = false;
    assert_int_equal(al_db_blob_get(f->db, d, &found, NULL, NULL), 0);
    return found;
}

/* An image "<name>": manifest, config and layer "<name>-m/-c/-l" (10,
 * 20, 100 bytes), plus a layer named `shared` when given. Committed as
 * tag `tag`. */
static void commit_image(fixture *f, const char *tag, const char *name, const char *shared)
{
    char *ms = al_xasprintf("%s-m", name), *cs = al_xasprintf("%s-c", name),
         *ls = al_xasprintf("%s-l", name);
    char m[AL_DIGEST_BUF], c[AL_DIGEST_BUF], l[AL_DIGEST_BUF], s[AL_DIGEST_BUF];
    dg(m, ms);
    dg(c, cs);
    dg(l, ls);
    assert_int_equal(al_db_blob_add(f->db, m, 10, MT_MANIFEST, NULL), 0);
    assert_int_equal(al_db_blob_add(f->db, c, 20, NULL, NULL), 0);
    assert_int_equal(al_db_blob_add(f->db, l, 100, NULL, NULL), 0);
    al_graph_manifest gm = {.media_type = MT_MANIFEST, .size = 10};
    memcpy(gm.digest, m, sizeof(m));
    memcpy(gm.config_digest, c, sizeof(c));
    al_graph_edge ge[3];
    memset(ge, 0, sizeof(ge));
    size_t ne = 0;
    memcpy(ge[ne].parent, m, sizeof(m));
    memcpy(ge[ne].child, c, sizeof(c));
    ge[ne++].kind = AL_EDGE_CONFIG;
    memcpy(ge[ne].parent, m, sizeof(m));
    memcpy(ge[ne].child, l, sizeof(l));
    ge[ne++].kind = AL_EDGE_LAYER;
    if (shared != NULL) {
        dg(s, shared);
        assert_int_equal(al_db_blob_add(f->db, s, 1000, NULL, NULL), 0);
        memcpy(ge[ne].parent, m, sizeof(m));
        memcpy(ge[ne].child, s, sizeof(s));
        ge[ne].kind = AL_EDGE_LAYER;
        ge[ne++].position = 1;
    }
    al_graph g = {.full_name = tag,
                  .source = "test",
                  .root_digest = m,
                  .root_media_type = MT_MANIFEST,
                  .root_size = 10,
                  .manifests = &gm,
                  .n_manifests = 1,
                  .edges = ge,
                  .n_edges = ne};
    al_error *err = NULL;
    if (al_db_graph_commit(f->db, &g, 0, NULL, &err) != 0)
        fail_msg("commit %s: %s", tag, err ? err->msg : "?");
    free(ms);
    free(cs);
    free(ls);
}

/* "x:1" moved A -> B -> C -> D; "y:1" is E, which shares a layer with A. */
static void history(fixture *f)
{
    commit_image(f, "x:1", "A", "shared");
    commit_image(f, "x:1", "B", NULL);
    commit_image(f, "x:1", "C", NULL);
    commit_image(f, "x:1", "D", NULL);
    commit_image(f, "y:1", "E", "shared");
}

static void test_keep(void **state)
{
    static const struct {
        int keep;
        const char *kept; /* images whose blobs stay */
        const char *gone; /* images whose blobs go */
        size_t n_history; /* earlier graphs kept */
    } cases[] = {
        {0, "DE", "ABC", 0}, {1, "CDE", "AB", 1},  {2, "BCDE", "A", 2},
        {3, "ABCDE", "", 3}, {10, "ABCDE", "", 3},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        void *st = NULL;
        setup(&st);
        fixture *f = st;
        history(f);
        al_prune_opts o = {.keep = cases[i].keep};
        al_prune_result r;
        al_error *err = NULL;
        if (al_db_prune(f->db, &o, &r, &err) != 0)
            fail_msg("prune: %s", err ? err->msg : "?");
        assert_int_equal(r.n_history_kept, cases[i].n_history);
        assert_int_equal(r.n_blobs, 3 * strlen(cases[i].gone));
        assert_int_equal(r.bytes, 130 * (int64_t)strlen(cases[i].gone));
        for (const char *p = cases[i].kept; *p; p++) {
            char name[8];
            snprintf(name, sizeof(name), "%c-l", *p);
            assert_true(has_blob(f, name));
            snprintf(name, sizeof(name), "%c-c", *p);
            assert_true(has_blob(f, name));
        }
        for (const char *p = cases[i].gone; *p; p++) {
            char name[8];
            snprintf(name, sizeof(name), "%c-m", *p);
            assert_false(has_blob(f, name));
        }
        /* The layer A shares with E always stays. */
        assert_true(has_blob(f, "shared"));
        /* Nothing dangles. */
        assert_int_equal(count(f, "SELECT count(*) FROM edges WHERE parent_digest NOT IN"
                                  " (SELECT digest FROM manifests)"),
                         0);
        assert_int_equal(count(f, "SELECT count(*) FROM manifests"), 5 - strlen(cases[i].gone));
        /* History is the record: it stays. */
        assert_int_equal(count(f, "SELECT count(*) FROM tag_history"), 5);
        al_prune_result_dispose(&r);
        teardown(&st);
    }
}

static void test_dry_run_changes_nothing(void **state)
{
    fixture *f = *state;
    history(f);
    const char *rm[] = {"docker.io/library/y:1", "y:1"};
    al_prune_opts o = {.keep = 0, .dry_run = true, .remove = rm, .n_remove = 2};
    al_prune_result r;
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    /* A, B, C and E go, with the shared layer (y:1 removed). */
    assert_int_equal(r.n_blobs, 4 * 3 + 1);
    assert_int_equal(r.n_removed, 1);
    assert_string_equal(r.removed[0].full_name, "y:1");
    assert_int_equal(r.n_missing, 1);
    assert_string_equal(r.missing[0], "docker.io/library/y:1");
    for (size_t i = 1; i < r.n_blobs; i++)
        assert_true(strcmp(r.blobs[i - 1].digest, r.blobs[i].digest) < 0);
    al_prune_result_dispose(&r);
    assert_int_equal(count(f, "SELECT count(*) FROM blobs"), 5 * 3 + 1);
    assert_int_equal(count(f, "SELECT count(*) FROM tags"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM edges"), 5 * 2 + 2);
    /* And again: the work tables of the first run are gone or replaced. */
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_int_equal(r.n_blobs, 4 * 3 + 1);
    al_prune_result_dispose(&r);
}

static void test_remove(void **state)
{
    fixture *f = *state;
    history(f);
    const char *rm[] = {"y:1"};
    al_prune_opts o = {.keep = 5, .remove = rm, .n_remove = 1};
    al_prune_result r;
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_int_equal(r.n_removed, 1);
    assert_int_equal(r.n_missing, 0);
    assert_int_equal(count(f, "SELECT count(*) FROM tags WHERE full_name = 'y:1'"), 0);
    assert_false(has_blob(f, "E-m"));
    assert_false(has_blob(f, "E-l"));
    /* x:1 keeps A (--keep 5), and so the layer A shares. */
    assert_true(has_blob(f, "shared"));
    assert_true(has_blob(f, "A-m"));
    al_prune_result_dispose(&r);
    /* Once A goes too, so does the shared layer. */
    o = (al_prune_opts){.keep = 0};
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_false(has_blob(f, "shared"));
    assert_true(has_blob(f, "D-l"));
    al_prune_result_dispose(&r);
}

static void test_protect_since(void **state)
{
    fixture *f = *state;
    history(f);
    double t = al_now();
    usleep(2000);
    /* A layer a failed image downloaded in this run: a row, no graph. */
    char d[AL_DIGEST_BUF];
    dg(d, "orphan-of-this-run");
    assert_int_equal(al_db_blob_add(f->db, d, 5, NULL, NULL), 0);
    al_prune_opts o = {.keep = 0, .protect_since = t};
    al_prune_result r;
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_true(has_blob(f, "orphan-of-this-run"));
    assert_false(has_blob(f, "A-m"));
    al_prune_result_dispose(&r);
    o.protect_since = 0;
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_int_equal(r.n_blobs, 1);
    assert_false(has_blob(f, "orphan-of-this-run"));
    al_prune_result_dispose(&r);
}

static void test_moved_back(void **state)
{
    /* x:1: A -> B -> A. The current digest is not an "earlier" one; B is. */
    fixture *f = *state;
    commit_image(f, "x:1", "A", NULL);
    commit_image(f, "x:1", "B", NULL);
    commit_image(f, "x:1", "A", NULL);
    al_prune_opts o = {.keep = 1};
    al_prune_result r;
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_int_equal(r.n_history_kept, 1);
    assert_int_equal(r.n_blobs, 0);
    al_prune_result_dispose(&r);
    o.keep = 0;
    assert_int_equal(al_db_prune(f->db, &o, &r, NULL), 0);
    assert_int_equal(r.n_blobs, 3);
    assert_false(has_blob(f, "B-m"));
    assert_true(has_blob(f, "A-m"));
    al_prune_result_dispose(&r);
}

/* A chain of `indexes` indexes "I1".."In" above an image "Z" (manifest,
 * config, layer), committed as tag `tag`. */
static void commit_chain(fixture *f, const char *tag, int indexes)
{
    al_graph_manifest gm[AL_GRAPH_MAX_INDEX_LEVELS + 3];
    al_graph_edge ge[AL_GRAPH_MAX_INDEX_LEVELS + 4];
    memset(gm, 0, sizeof(gm));
    memset(ge, 0, sizeof(ge));
    char d[AL_GRAPH_MAX_INDEX_LEVELS + 3][AL_DIGEST_BUF];
    assert_true(indexes <= AL_GRAPH_MAX_INDEX_LEVELS + 1);
    size_t ne = 0;
    for (int i = 0; i <= indexes; i++) {
        char name[16];
        snprintf(name, sizeof(name), i < indexes ? "I%d" : "Z-m", i + 1);
        dg(d[i], name);
        assert_int_equal(al_db_blob_add(f->db, d[i], 10, MT_MANIFEST, NULL), 0);
        memcpy(gm[i].digest, d[i], AL_DIGEST_BUF);
        gm[i].media_type = MT_MANIFEST;
        gm[i].size = 10;
        gm[i].is_index = i < indexes;
        if (i > 0) {
            memcpy(ge[ne].parent, d[i - 1], AL_DIGEST_BUF);
            memcpy(ge[ne].child, d[i], AL_DIGEST_BUF);
            ge[ne++].kind = AL_EDGE_MANIFEST;
        }
    }
    char c[AL_DIGEST_BUF], l[AL_DIGEST_BUF];
    dg(c, "Z-c");
    dg(l, "Z-l");
    assert_int_equal(al_db_blob_add(f->db, c, 20, NULL, NULL), 0);
    assert_int_equal(al_db_blob_add(f->db, l, 100, NULL, NULL), 0);
    memcpy(gm[indexes].config_digest, c, AL_DIGEST_BUF);
    memcpy(ge[ne].parent, d[indexes], AL_DIGEST_BUF);
    memcpy(ge[ne].child, c, AL_DIGEST_BUF);
    ge[ne++].kind = AL_EDGE_CONFIG;
    memcpy(ge[ne].parent, d[indexes], AL_DIGEST_BUF);
    memcpy(ge[ne].child, l, AL_DIGEST_BUF);
    ge[ne++].kind = AL_EDGE_LAYER;
    al_graph g = {.full_name = tag,
                  .source = "test",
                  .root_digest = d[0],
                  .root_media_type = MT_MANIFEST,
                  .root_size = 10,
                  .manifests = gm,
                  .n_manifests = (size_t)indexes + 1,
                  .edges = ge,
                  .n_edges = ne};
    al_error *err = NULL;
    if (al_db_graph_commit(f->db, &g, 0, NULL, &err) != 0)
        fail_msg("commit %s: %s", tag, err ? err->msg : "?");
}

/* Prune keeps what the graph's walks reach: N index levels above an image
 * keep it all; one more and the image beneath is not part of the graph. A
 * cycle in a hand-edited edges table ends. */
static void test_depth_limit(void **state)
{
    for (int extra = 0; extra < 2; extra++) {
        void *st = NULL;
        setup(&st);
        fixture *f = st;
        commit_chain(f, "deep:1", AL_GRAPH_MAX_INDEX_LEVELS + extra);
        char i1[AL_DIGEST_BUF];
        dg(i1, "I1");
        sqlite3 *h = NULL;
        assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
        char *sql = al_xasprintf("INSERT INTO edges VALUES ('%s', '%s', 'manifest', 99)", i1, i1);
        assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
        free(sql);
        sqlite3_close(h);
        al_prune_opts o = {.keep = 0};
        al_prune_result r;
        al_error *err = NULL;
        if (al_db_prune(f->db, &o, &r, &err) != 0)
            fail_msg("prune: %s", err ? err->msg : "?");
        assert_int_equal(r.n_blobs, extra ? 3 : 0);
        assert_true(has_blob(f, "I1"));
        assert_int_equal(has_blob(f, "Z-m"), !extra);
        assert_int_equal(has_blob(f, "Z-l"), !extra);
        /* The index one level too deep is named, so it stays; not below it. */
        char last[16];
        snprintf(last, sizeof(last), "I%d", AL_GRAPH_MAX_INDEX_LEVELS + extra);
        assert_true(has_blob(f, last));
        al_prune_result_dispose(&r);
        teardown(&st);
    }
    (void)state;
}

static void test_bad_keep(void **state)
{
    fixture *f = *state;
    al_prune_opts o = {.keep = -1};
    al_prune_result r;
    al_error *err = NULL;
    assert_int_equal(al_db_prune(f->db, &o, &r, &err), AL_E_USAGE);
    assert_non_null(err);
    al_error_free(err);
    assert_int_equal(r.n_blobs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep),
        cmocka_unit_test_setup_teardown(test_dry_run_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protect_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_keep, setup, teardown),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
