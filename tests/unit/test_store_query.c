/* db/db-query.c (the snapshot), export/closure.c and export/inspect.c's
 * counting, on a small hand-built database:
 *
 *   tag a:1  index I1 -> M1 (linux/amd64: C1, L1, L2), M2 (linux/arm64: C2, L1)
 *   tag b:1  image M3 (linux/amd64: C3, L1)          L1 shared by a and b
 *   tag c:1  image M4 (linux/amd64: C4, L9)           L9 has no blobs row
 *   tag d:1  index I5 -> X (no blobs row, edge to itself: a cycle)
 *
 * Sizes are distinct powers of two, so every sum names its blobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include <string.h>

#include "closure.h"
#include "db.h"
#include "digest.h"
#include "inspect.h"
#include "test-helpers.h"

enum { I1, M1, M2, C1, C2, L1, L2, M3, C3, M4, C4, L9, I5, X, N_NODES };
static const char *const node_name[N_NODES] = {"I1", "M1", "M2", "C1", "C2", "L1", "L2",
                                               "M3", "C3", "M4", "C4", "L9", "I5", "X"};
static char D[N_NODES][AL_DIGEST_BUF];

static int64_t size_of(int n)
{
    return (int64_t)1 << n;
}

typedef struct {
    char *tmp;
    char *path;
    al_db *db;
    al_db_snapshot snap;
} fixture;

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(h);
}

static void blob(const char *path, int n, const char *mt)
{
    _cleanup_free_ char *sql = al_xasprintf(
        "INSERT INTO blobs VALUES ('%s', %lld, '%s', 1714530000)", D[n], (long long)size_of(n), mt);
    raw_exec(path, sql);
}

static void manifest(const char *path, int n, bool index, const char *arch, int config)
{
    _cleanup_free_ char *sql = al_xasprintf(
        "INSERT INTO manifests VALUES ('%s', '%s', %d, %s, %s, NULL, %s%s%s)", D[n],
        index ? "application/vnd.oci.image.index.v1+json"
              : "application/vnd.oci.image.manifest.v1+json",
        index ? 1 : 0, arch ? "'linux'" : "NULL", arch ? arch : "NULL", config >= 0 ? "'" : "",
        config >= 0 ? D[config] : "NULL", config >= 0 ? "'" : "");
    raw_exec(path, sql);
}

static void edge(const char *path, int parent, int child, const char *kind, int pos)
{
    _cleanup_free_ char *sql = al_xasprintf("INSERT INTO edges VALUES ('%s', '%s', '%s', %d)",
                                            D[parent], D[child], kind, pos);
    raw_exec(path, sql);
}

static void tag(const char *path, const char *name, int root)
{
    _cleanup_free_ char *sql = al_xasprintf(
        "INSERT INTO tags (full_name, digest, media_type, size, source, first_seen, checked_at,"
        " changed_at) VALUES ('%s', '%s', 'application/vnd.oci.image.index.v1+json', %lld,"
        " 'reg/x', 1714530000, 1714600000, 1714540000)",
        name, D[root], (long long)size_of(root));
    raw_exec(path, sql);
}

static int setup(void **state)
{
    for (int i = 0; i < N_NODES; i++)
        al_digest_bytes(D[i], node_name[i], strlen(node_name[i]));
    fixture *f = al_xcalloc(1, sizeof(*f));
    f->tmp = th_mkdtemp();
    f->path = al_xasprintf("%s/airlock.db", f->tmp);
    al_error *err = NULL;
    al_db *rw = NULL;
    if (al_db_open(&rw, f->path, false, &err) != 0)
        fail_msg("open: %s", err->msg);
    al_db_free(rw);
    const char *p = f->path;
    for (int n = 0; n < N_NODES; n++)
        if (n != L9 && n != X)
            blob(p, n, n == L1 || n == L2 || n == L9 ? "layer" : "other");
    manifest(p, I1, true, NULL, -1);
    manifest(p, M1, false, "'amd64'", C1);
    manifest(p, M2, false, "'arm64'", C2);
    manifest(p, M3, false, "'amd64'", C3);
    manifest(p, M4, false, "'amd64'", C4);
    manifest(p, I5, true, NULL, -1);
    edge(p, I1, M1, "manifest", 0);
    edge(p, I1, M2, "manifest", 1);
    edge(p, M1, L2, "layer", 1);
    edge(p, M1, L1, "layer", 0);
    edge(p, M1, C1, "config", 0);
    edge(p, M2, C2, "config", 0);
    edge(p, M2, L1, "layer", 0);
    edge(p, M3, C3, "config", 0);
    edge(p, M3, L1, "layer", 0);
    edge(p, M4, C4, "config", 0);
    edge(p, M4, L9, "layer", 0);
    edge(p, I5, X, "manifest", 0);
    edge(p, X, X, "manifest", 0);
    tag(p, "docker.io/library/b:1", M3);
    tag(p, "docker.io/library/a:1", I1);
    tag(p, "docker.io/library/c:1", M4);
    tag(p, "docker.io/library/d:1", I5);
    if (al_db_open(&f->db, f->path, true, &err) != 0)
        fail_msg("open read-only: %s", err->msg);
    if (al_db_snapshot_load(f->db, &f->snap, &err) != 0)
        fail_msg("snapshot: %s", err->msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    al_db_snapshot_dispose(&f->snap);
    al_db_free(f->db);
    th_rm_rf(f->tmp);
    free(f->tmp);
    free(f->path);
    free(f);
    return 0;
}

static void test_snapshot_sorted_and_lookups(void **state)
{
    fixture *f = *state;
    const al_db_snapshot *s = &f->snap;
    assert_int_equal(s->n_tags, 4);
    assert_string_equal(s->tags[0].full_name, "docker.io/library/a:1");
    assert_string_equal(s->tags[3].full_name, "docker.io/library/d:1");
    assert_int_equal(s->n_blobs, N_NODES - 2);
    for (size_t i = 1; i < s->n_blobs; i++)
        assert_true(strcmp(s->blobs[i - 1].digest, s->blobs[i].digest) < 0);
    for (int n = 0; n < N_NODES; n++) {
        const al_db_blob *b = al_db_snapshot_blob(s, D[n]);
        if (n == L9 || n == X) {
            assert_null(b);
            assert_int_equal(al_db_snapshot_blob_index(s, D[n]), -1);
        } else {
            assert_non_null(b);
            assert_int_equal(b->size, size_of(n));
        }
    }
    const al_db_manifest *m = al_db_snapshot_manifest(s, D[M2]);
    assert_non_null(m);
    assert_true(m->has_platform);
    assert_string_equal(m->platform.arch, "arm64");
    assert_string_equal(m->config_digest, D[C2]);
    assert_null(al_db_snapshot_manifest(s, D[L1]));
    assert_true(al_db_snapshot_manifest(s, D[I1])->is_index);
}

/* Children come back config first, then layers by position, whatever
 * the insertion order. */
static void test_children_order(void **state)
{
    fixture *f = *state;
    size_t n = 0;
    const al_graph_edge *e = al_db_snapshot_children(&f->snap, D[M1], &n);
    assert_int_equal(n, 3);
    assert_int_equal(e[0].kind, AL_EDGE_CONFIG);
    assert_string_equal(e[0].child, D[C1]);
    assert_int_equal(e[1].kind, AL_EDGE_LAYER);
    assert_string_equal(e[1].child, D[L1]);
    assert_string_equal(e[2].child, D[L2]);
    assert_null(al_db_snapshot_children(&f->snap, D[L1], &n));
    assert_int_equal(n, 0);
}

static void test_closures(void **state)
{
    fixture *f = *state;
    static const struct {
        int root;
        int blobs[10];
        int n_blobs;
        int missing[2];
        int n_missing;
    } cases[] = {
        {I1, {I1, M1, M2, C1, C2, L1, L2}, 7, {0}, 0},
        {M3, {M3, C3, L1}, 3, {0}, 0},
        {M4, {M4, C4}, 2, {L9}, 1},
        {I5, {I5}, 1, {X}, 1}, /* the cycle through X ends */
        {L1, {L1}, 1, {0}, 0},
    };
    for (size_t c = 0; c < AL_ARRAY_SIZE(cases); c++) {
        al_closure cl;
        al_closure_compute(&cl, &f->snap, D[cases[c].root]);
        int64_t want = 0;
        for (int i = 0; i < cases[c].n_blobs; i++) {
            want += size_of(cases[c].blobs[i]);
            long bi = al_db_snapshot_blob_index(&f->snap, D[cases[c].blobs[i]]);
            if (!al_closure_has(&cl, bi))
                fail_msg("case %zu: %s not reached", c, node_name[cases[c].blobs[i]]);
        }
        assert_int_equal(cl.n, (size_t)cases[c].n_blobs);
        assert_int_equal(cl.bytes, want);
        assert_int_equal(cl.n_missing, (size_t)cases[c].n_missing);
        for (int i = 0; i < cases[c].n_missing; i++)
            assert_string_equal(cl.missing[i], D[cases[c].missing[i]]);
        /* The root comes first. */
        if (cases[c].root != X)
            assert_string_equal(f->snap.blobs[cl.blobs[0]].digest, D[cases[c].root]);
        al_closure_dispose(&cl);
    }
}

static json_t *run_json(fixture *f, const char *inspect_ref)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    al_error *err = NULL;
    int r;
    if (inspect_ref == NULL) {
        r = al_inspect_list(out, &f->snap, true, &err);
    } else {
        al_ref *ref = NULL;
        assert_int_equal(al_ref_parse(&ref, inspect_ref, NULL), 0);
        r = al_inspect_image(out, NULL, &f->snap, ref, true, &err);
        al_ref_free(ref);
    }
    fclose(out);
    if (r != 0)
        fail_msg("inspect: %s", err->msg);
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    if (j == NULL)
        fail_msg("bad JSON (%s): %s", je.text, buf);
    free(buf);
    return j;
}

static json_t *tag_entry(json_t *list, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(list, "tags"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
            return e;
    }
    fail_msg("no %s", name);
    return NULL;
}

/* Per tag each blob once; in the total, L1 (shared by a and b) once. */
static void test_list_counts_shared_once(void **state)
{
    fixture *f = *state;
    json_t *j = run_json(f, NULL);
    static const struct {
        const char *name;
        int64_t size;
        const char *platforms;
        bool complete;
    } cases[] = {
        {"docker.io/library/a:1", 0, "linux/amd64,linux/arm64", true},
        {"docker.io/library/b:1", 0, "linux/amd64", true},
        {"docker.io/library/c:1", 0, "linux/amd64", false},
        {"docker.io/library/d:1", 0, "", false},
    };
    int64_t sizes[] = {
        size_of(I1) + size_of(M1) + size_of(M2) + size_of(C1) + size_of(C2) + size_of(L1) +
            size_of(L2),
        size_of(M3) + size_of(C3) + size_of(L1),
        size_of(M4) + size_of(C4),
        size_of(I5),
    };
    for (size_t c = 0; c < AL_ARRAY_SIZE(cases); c++) {
        json_t *e = tag_entry(j, cases[c].name);
        assert_int_equal(json_integer_value(json_object_get(e, "size")), sizes[c]);
        assert_int_equal(json_is_true(json_object_get(e, "complete")), cases[c].complete);
        char plats[128] = "";
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(e, "platforms"), i, p)
        {
            size_t l = strlen(plats);
            snprintf(plats + l, sizeof(plats) - l, "%s%s", l ? "," : "", json_string_value(p));
        }
        assert_string_equal(plats, cases[c].platforms);
        assert_string_equal(json_string_value(json_object_get(e, "first_seen")),
                            "2024-05-01T02:20:00Z");
        assert_string_equal(json_string_value(json_object_get(e, "changed_at")),
                            "2024-05-01T05:06:40Z");
    }
    json_t *total = json_object_get(j, "total");
    assert_int_equal(json_integer_value(json_object_get(total, "tags")), 4);
    assert_int_equal(json_integer_value(json_object_get(total, "blobs")), 7 + 2 + 2 + 1);
    assert_int_equal(json_integer_value(json_object_get(total, "size")),
                     sizes[0] + sizes[1] - size_of(L1) + sizes[2] + sizes[3]);
    json_decref(j);
}

/* From the database alone (no store): layers and who shares them. */
static void test_inspect_shared_with(void **state)
{
    fixture *f = *state;
    json_t *j = run_json(f, "a:1");
    assert_string_equal(json_string_value(json_object_get(j, "digest")), D[I1]);
    json_t *ms = json_object_get(j, "manifests");
    assert_int_equal(json_array_size(ms), 3); /* I1, M1, M2 */
    json_t *m1 = json_array_get(ms, 1);
    assert_string_equal(json_string_value(json_object_get(m1, "digest")), D[M1]);
    assert_string_equal(json_string_value(json_object_get(m1, "platform")), "linux/amd64");
    assert_int_equal(json_integer_value(json_object_get(m1, "image_size")),
                     size_of(M1) + size_of(C1) + size_of(L1) + size_of(L2));
    json_t *layers = json_object_get(m1, "layers");
    assert_int_equal(json_array_size(layers), 2);
    json_t *sw = json_object_get(json_array_get(layers, 0), "shared_with");
    assert_int_equal(json_array_size(sw), 1);
    assert_string_equal(json_string_value(json_array_get(sw, 0)), "docker.io/library/b:1");
    assert_int_equal(json_array_size(json_object_get(json_array_get(layers, 1), "shared_with")), 0);
    json_decref(j);

    al_ref *ref = NULL;
    assert_int_equal(al_ref_parse(&ref, "nothere:1", NULL), 0);
    al_error *err = NULL;
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(al_inspect_image(out, NULL, &f->snap, ref, true, &err), AL_E_NOT_FOUND);
    assert_non_null(strstr(err->msg, "not in store: docker.io/library/nothere:1"));
    fclose(out);
    al_error_free(err);
    al_ref_free(ref);
}

static void test_quick_check_clean(void **state)
{
    fixture *f = *state;
    char **msgs = NULL;
    size_t n = 99;
    al_error *err = NULL;
    assert_int_equal(al_db_quick_check(f->db, &msgs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(msgs);
}

static void test_iso8601(void **state)
{
    (void)state;
    static const struct {
        double t;
        const char *want;
    } cases[] = {
        {0, "-"},
        {-5, "-"},
        {1714530000.75, "2024-05-01T02:20:00Z"},
        {86400, "1970-01-02T00:00:00Z"},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        char buf[32];
        assert_string_equal(al_iso8601(buf, sizeof(buf), cases[i].t), cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_sorted_and_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_children_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_counts_shared_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_shared_with, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quick_check_clean, setup, teardown),
        cmocka_unit_test(test_iso8601),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
