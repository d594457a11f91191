/* fetch/report: totals, the JSON report, the lock file, atomic writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "report.h"
#include "test-helpers.h"
#include "util.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

/* ok, moved, failed, unchanged, and a digest ref. */
static al_image_result *results(size_t *n)
{
    al_image_result *r = al_xcalloc(5, sizeof(*r));
    r[0] = (al_image_result){.full_name = al_xstrdup("docker.io/library/a:1"),
                             .status = AL_IMG_OK,
                             .platforms = al_xstrdup("linux/amd64,linux/arm64/v8"),
                             .new_blobs = 5,
                             .new_bytes = 1000,
                             .graph_blobs = 7,
                             .done_at = 12.5};
    snprintf(r[0].digest, sizeof(r[0].digest), "%s", D1);
    r[1] = (al_image_result){.full_name = al_xstrdup("docker.io/library/b:1"),
                             .status = AL_IMG_MOVED,
                             .platforms = al_xstrdup("linux/amd64"),
                             .new_blobs = 2,
                             .new_bytes = 300,
                             .graph_blobs = 3,
                             .done_at = 12.5};
    snprintf(r[1].digest, sizeof(r[1].digest), "%s", D2);
    snprintf(r[1].old_digest, sizeof(r[1].old_digest), "%s", D3);
    r[2] = (al_image_result){.full_name = al_xstrdup("docker.io/library/c:1"),
                             .status = AL_IMG_FAILED,
                             .new_blobs = 1,
                             .new_bytes = 50,
                             .done_at = 11};
    al_error_set(&r[2].err, AL_E_AUTH, 0,
                 "GET http://r/v2/c/manifests/1: HTTP 401\nline two\x1b[2J");
    r[3] = (al_image_result){.full_name = al_xstrdup("docker.io/library/d:1"),
                             .status = AL_IMG_UNCHANGED,
                             .platforms = al_xstrdup(""),
                             .graph_blobs = 3,
                             .done_at = 12.5};
    snprintf(r[3].digest, sizeof(r[3].digest), "%s", D3);
    r[4] = (al_image_result){.full_name = al_xstrdup("docker.io/library/e@" D1),
                             .status = AL_IMG_OK,
                             .platforms = al_xstrdup("linux/amd64"),
                             .graph_blobs = 3,
                             .done_at = 12.5};
    snprintf(r[4].digest, sizeof(r[4].digest), "%s", D1);
    *n = 5;
    return r;
}

static void test_totals(void **state)
{
    (void)state;
    size_t n;
    al_image_result *r = results(&n);
    al_report_totals t;
    al_report_totals_of(&t, r, n);
    assert_int_equal(t.images, 5);
    assert_int_equal(t.ok, 4);
    assert_int_equal(t.unchanged, 1);
    assert_int_equal(t.moved, 1);
    assert_int_equal(t.failed, 1);
    /* What the failed image downloaded counts too. */
    assert_int_equal(t.new_blobs, 8);
    assert_int_equal(t.bytes, 1350);
    al_report_totals_of(&t, r, 0);
    assert_int_equal(t.images, 0);
    assert_int_equal(t.bytes, 0);
    al_image_results_free(r, n);
}

static void test_names_and_time(void **state)
{
    (void)state;
    assert_string_equal(al_report_status_name(AL_IMG_OK), "ok");
    assert_string_equal(al_report_status_name(AL_IMG_UNCHANGED), "unchanged");
    assert_string_equal(al_report_status_name(AL_IMG_MOVED), "moved");
    assert_string_equal(al_report_status_name(AL_IMG_FAILED), "failed");
    static const struct {
        double t;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1700000000.25, "2023-11-14T22:13:20.250Z"},
        {1700000000.9999, "2023-11-14T22:13:20.999Z"},
        {951782400, "2000-02-29T00:00:00.000Z"},
    };
    char buf[40];
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++)
        assert_string_equal(al_format_utc(buf, sizeof(buf), cases[i].t), cases[i].want);
}

static al_report base_report(const al_image_result *r, size_t n)
{
    return (al_report){.run_id = 42,
                       .started_at = 1700000000.0,
                       .finished_at = 1700000003.5,
                       .t0 = 10.0,
                       .store_dir = "/srv/store",
                       .version = "0.1.0",
                       .results = r,
                       .n_results = n,
                       .seconds = 3.25,
                       .exit_status = 1};
}

static void test_json(void **state)
{
    (void)state;
    size_t n;
    al_image_result *r = results(&n);
    al_engine_stats st = {.requests = 17, .retries = 2};
    al_report rep = base_report(r, n);
    rep.stats = &st;
    char *text = al_report_json(&rep);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "report_format")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "run_id")), 42);
    assert_int_equal(json_integer_value(json_object_get(j, "exit_status")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "started_at")),
                        "2023-11-14T22:13:20.000Z");
    assert_true(json_is_null(json_object_get(j, "error")));
    assert_null(json_object_get(j, "prune"));
    json_t *imgs = json_object_get(j, "images");
    assert_int_equal(json_array_size(imgs), 5);

    json_t *a = json_array_get(imgs, 0);
    assert_string_equal(json_string_value(json_object_get(a, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(a, "digest")), D1);
    assert_true(json_is_null(json_object_get(a, "old_digest")));
    json_t *pl = json_object_get(a, "platforms");
    assert_int_equal(json_array_size(pl), 2);
    assert_string_equal(json_string_value(json_array_get(pl, 1)), "linux/arm64/v8");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "blobs"), "new")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "blobs"), "present")),
                     2);
    assert_true(json_real_value(json_object_get(a, "seconds")) == 2.5);

    json_t *b = json_array_get(imgs, 1);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "moved");
    assert_string_equal(json_string_value(json_object_get(b, "old_digest")), D3);

    json_t *c = json_array_get(imgs, 2);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "failed");
    assert_true(json_is_null(json_object_get(c, "digest")));
    assert_int_equal(json_array_size(json_object_get(c, "platforms")), 0);
    json_t *e = json_object_get(c, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "AUTH");
    /* The message is sanitised: no newline, no ESC, even JSON-escaped. */
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "GET http://r/v2/c/manifests/1: HTTP 401\\x0aline two\\x1b[2J");
    assert_int_equal(json_integer_value(json_object_get(c, "bytes")), 50);

    json_t *d = json_array_get(imgs, 3);
    assert_int_equal(json_array_size(json_object_get(d, "platforms")), 0);

    json_t *t = json_object_get(j, "totals");
    assert_int_equal(json_integer_value(json_object_get(t, "ok")), 4);
    assert_int_equal(json_integer_value(json_object_get(t, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "bytes")), 1350);
    assert_int_equal(json_integer_value(json_object_get(t, "requests")), 17);
    assert_int_equal(json_integer_value(json_object_get(t, "retries")), 2);
    json_decref(j);
    free(text);

    /* A run that never got going: no run id, the error, no images. */
    al_error *err = NULL;
    al_error_set(&err, AL_E_BUSY, 0, "store /s is busy");
    rep = base_report(NULL, 0);
    rep.run_id = 0;
    rep.exit_status = 3;
    rep.error = err;
    text = al_report_json(&rep);
    j = json_loads(text, 0, &je);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "run_id")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "BUSY");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "totals"), "requests")),
                     0);
    json_decref(j);
    free(text);
    al_error_free(err);
    al_image_results_free(r, n);
}

static void test_json_prune(void **state)
{
    (void)state;
    al_prune_report p = {.dry_run = true, .keep = 2, .n_stray = 1, .stray_bytes = 9};
    al_prune_tag tag = {.full_name = "docker.io/library/x:1"};
    snprintf(tag.digest, sizeof(tag.digest), "%s", D2);
    char *missing[] = {"docker.io/library/y:1"};
    p.db.removed = &tag;
    p.db.n_removed = 1;
    p.db.missing = missing;
    p.db.n_missing = 1;
    p.db.n_blobs = 4;
    p.db.bytes = 4096;
    p.db.n_history_kept = 3;
    al_report rep = base_report(NULL, 0);
    rep.prune = &p;
    char *text = al_report_json(&rep);
    json_t *j = json_loads(text, 0, NULL);
    json_t *pj = json_object_get(j, "prune");
    assert_non_null(pj);
    assert_true(json_is_true(json_object_get(pj, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(pj, "keep")), 2);
    assert_int_equal(json_integer_value(json_object_get(pj, "blobs")), 4);
    assert_int_equal(json_integer_value(json_object_get(pj, "bytes")), 4096);
    assert_int_equal(json_integer_value(json_object_get(pj, "earlier_graphs_kept")), 3);
    assert_int_equal(json_integer_value(json_object_get(pj, "stray_files")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(pj, "tags_removed"), 0), "digest")),
                        D2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(pj, "tags_not_found"), 0)),
                        "docker.io/library/y:1");
    json_decref(j);
    free(text);
}

static void test_lock_text(void **state)
{
    (void)state;
    size_t n;
    al_image_result *r = results(&n);
    al_report rep = base_report(r, n);
    char *text = al_report_lock_text(&rep);
    const char *want_tail = "docker.io/library/a:1@" D1 "\n"
                            "docker.io/library/b:1@" D2 "\n"
                            "# FAILED docker.io/library/c:1: GET http://r/v2/c/manifests/1: "
                            "HTTP 401\\x0aline two\\x1b[2J\n"
                            "docker.io/library/d:1@" D3 "\n"
                            "docker.io/library/e@" D1 "\n";
    assert_true(strlen(text) > strlen(want_tail));
    assert_string_equal(text + strlen(text) - strlen(want_tail), want_tail);
    assert_non_null(strstr(text, "# airlock-fetch lock file: the images of run 42"));
    assert_non_null(strstr(text, "# written 2023-11-14T22:13:23.500Z from store /srv/store\n"));
    /* Every line is a comment or a pinned ref. */
    for (char *line = text; *line; line = strchr(line, '\n') + 1) {
        char *at = strstr(line, "@sha256:");
        assert_true(line[0] == '#' || (at != NULL && at < strchr(line, '\n')));
    }
    free(text);
    al_image_results_free(r, n);
}

static void test_write_file(void **state)
{
    (void)state;
    char *dir = th_mkdtemp();
    char *path = al_xasprintf("%s/report.json", dir);
    al_error *err = NULL;
    assert_int_equal(al_file_write_atomic(path, "one\n", 4, &err), 0);
    assert_int_equal(al_file_write_atomic(path, "two\n", 4, &err), 0);
    FILE *f = fopen(path, "r");
    char buf[16] = "";
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "two\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* Nothing but the file is left in the directory. */
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        entries += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 1);

    char *bad = al_xasprintf("%s/no/such/dir/r.json", dir);
    assert_int_equal(al_file_write_atomic(bad, "x", 1, &err), AL_E_IO);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, bad));
    al_error_free(err);
    free(bad);
    /* A relative name is written in the current directory. */
    char *cwd = getcwd(NULL, 0);
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(al_file_write_atomic("rel.txt", "r\n", 2, NULL), 0);
    assert_int_equal(chdir(cwd), 0);
    free(cwd);
    char *rel = al_xasprintf("%s/rel.txt", dir);
    assert_int_equal(access(rel, F_OK), 0);
    free(rel);
    th_rm_rf(dir);
    free(dir);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals),    cmocka_unit_test(test_names_and_time),
        cmocka_unit_test(test_json),      cmocka_unit_test(test_json_prune),
        cmocka_unit_test(test_lock_text), cmocka_unit_test(test_write_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
