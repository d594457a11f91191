/* export/report: output paths, times, the JSON run report built from a
 * selection and outputs, and the atomic write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "export-report.h"
#include "test-helpers.h"
#include "util.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static al_platform plat(const char *s)
{
    al_platform p;
    al_error *err = NULL;
    assert_int_equal(al_platform_parse(&p, s, &err), 0);
    return p;
}

static void test_output_path(void **state)
{
    (void)state;
    const struct {
        const char *tmpl, *platform, *want;
    } cases[] = {
        {"images-{arch}.tar", "linux/amd64", "images-amd64.tar"},
        {"images-{arch}.tar.zst", "linux/arm64", "images-arm64.tar.zst"},
        {"/k3s/{arch}/airlock-{arch}.tar", "linux/arm/v7", "/k3s/arm-v7/airlock-arm-v7.tar"},
        {"plain.tar", "linux/amd64", "plain.tar"},
        {"-", "linux/amd64", "-"},
        {"{arch}", "linux/s390x", "s390x"},
        {"{arch", "linux/amd64", "{arch"},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_platform p = plat(cases[i].platform);
        char *got = al_export_output_path(cases[i].tmpl, &p);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void test_time(void **state)
{
    (void)state;
    const struct {
        double t;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1714564800.25, "2024-05-01T12:00:00.250Z"},
        {1714564800.9999, "2024-05-01T12:00:00.999Z"},
        {951782400, "2000-02-29T00:00:00.000Z"},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        char buf[40];
        assert_string_equal(al_format_utc(buf, sizeof(buf), cases[i].t), cases[i].want);
    }
}

/* A selection: a:1 found on both platforms, b:1 not in the store at all,
 * c:1 lacking the second platform. */
static void make_selection(al_selection *sel, const al_platform *plats)
{
    al_selection_init(sel);
    sel->n_sets = 2;
    sel->sets = al_xcalloc(2, sizeof(*sel->sets));
    for (size_t p = 0; p < 2; p++) {
        al_export_set *set = &sel->sets[p];
        set->platform = plats[p];
        set->n_images = p == 0 ? 2 : 1;
        set->images = al_xcalloc(set->n_images, sizeof(*set->images));
        for (size_t i = 0; i < set->n_images; i++) {
            al_export_image *im = &set->images[i];
            im->ref = al_xstrdup(i == 0 ? "docker.io/library/a:1" : "docker.io/library/c:1");
            im->name = al_xstrdup(i == 0 ? "docker.io/library/a" : "docker.io/library/c");
            im->platform = plats[p];
            snprintf(im->root_digest, sizeof(im->root_digest), "%s", D1);
            snprintf(im->manifest_digest, sizeof(im->manifest_digest), "%s", D2);
            im->config_size = 100;
            im->n_layers = 2;
            im->layers = al_xcalloc(2, sizeof(*im->layers));
            im->layers[0].size = 1000;
            im->layers[1].size = 20;
            im->n_zstd_layers = i == 0 ? 1 : 0;
        }
    }
    sel->n_problems = 2;
    sel->problems = al_xcalloc(2, sizeof(char *));
    sel->problem_info = al_xcalloc(2, sizeof(*sel->problem_info));
    sel->problems[0] = al_xstrdup("not in store: docker.io/library/b:1");
    sel->problem_info[0] = (al_select_problem){
        .ref = al_xstrdup("docker.io/library/b:1"), .platform = -1, .code = AL_E_NOT_FOUND};
    sel->problems[1] = al_xstrdup("docker.io/library/c:1 has no linux/arm64 manifest");
    sel->problem_info[1] = (al_select_problem){
        .ref = al_xstrdup("docker.io/library/c:1"), .platform = 1, .code = AL_E_NOT_FOUND};
}

static json_t *report_doc(const al_export_report *rep)
{
    char *text = al_export_report_json(rep);
    size_t n = strlen(text);
    assert_true(n > 0 && text[n - 1] == '\n');
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    free(text);
    assert_non_null(doc);
    return doc;
}

static const char *sget(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_int_t iget(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* The same selection, three ways the run can end: nothing written (the
 * problems), both files written, the second file failed. */
static void test_json(void **state)
{
    (void)state;
    al_platform plats[2] = {plat("linux/amd64"), plat("linux/arm64")};
    al_reflist refs;
    al_reflist_init(&refs);
    al_reflist_add_arg(&refs, "a:1", 1);
    al_reflist_add_arg(&refs, "b:1", 2);
    al_reflist_add_arg(&refs, "docker.io/library/c:1", 3);
    assert_int_equal(refs.n_problems, 0);

    const struct {
        const char *name;
        al_output_status out[2];
        bool problems;
        int exit_status;
        const char *statuses; /* of the image entries, in order */
        json_int_t exported, failed, written, bytes;
    } cases[] = {
        {"problems",
         {AL_OUTPUT_NOT_WRITTEN, AL_OUTPUT_NOT_WRITTEN},
         true,
         1,
         "a:not_written c:not_written b:failed a:not_written b:failed c:failed",
         0,
         3,
         0,
         0},
        {"written",
         {AL_OUTPUT_WRITTEN, AL_OUTPUT_WRITTEN},
         false,
         0,
         "a:exported c:exported a:exported",
         3,
         0,
         2,
         3000},
        {"second failed",
         {AL_OUTPUT_WRITTEN, AL_OUTPUT_FAILED},
         false,
         1,
         "a:exported c:exported a:failed",
         2,
         1,
         1,
         1000},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_selection sel;
        make_selection(&sel, plats);
        if (!cases[i].problems) {
            /* As if the selection had found c:1 for both (no problems). */
            for (size_t k = 0; k < sel.n_problems; k++) {
                free(sel.problems[k]);
                free(sel.problem_info[k].ref);
            }
            sel.n_problems = 0;
        }
        al_export_report rep;
        al_export_report_init(&rep, "9.9", "/srv/airlock", "/out/img-{arch}.tar.zst", plats, 2);
        rep.refs = &refs;
        rep.sel = &sel;
        rep.compression = AL_SINK_ZSTD;
        rep.decompress_zstd = true;
        rep.finished_at = rep.started_at + 1.5;
        rep.exit_status = cases[i].exit_status;
        for (size_t p = 0; p < 2; p++) {
            al_export_output *o = &rep.outputs[p];
            o->status = cases[i].out[p];
            if (o->status == AL_OUTPUT_WRITTEN)
                o->bytes = p == 0 ? 1000 : 2000;
            if (o->status == AL_OUTPUT_FAILED)
                al_error_set(&o->error, AL_E_DIGEST, 0, "blob %s is corrupt", D1);
        }
        al_error *e = NULL;
        if (cases[i].exit_status != 0) {
            al_error_set(&e, cases[i].problems ? AL_E_NOT_FOUND : AL_E_DIGEST, 0, "first");
            al_export_report_set_error(&rep, e);
            e = NULL;
            al_error_set(&e, AL_E_IO, 0, "second");
            al_export_report_set_error(&rep, e); /* the first cause stays */
        }

        json_t *doc = report_doc(&rep);
        assert_string_equal(sget(doc, "tool"), "airlock-export");
        assert_string_equal(sget(doc, "compression"), "zstd");
        assert_string_equal(sget(doc, "store"), "/srv/airlock");
        assert_int_equal(iget(doc, "exit_status"), cases[i].exit_status);
        json_t *err = json_object_get(doc, "error");
        if (cases[i].exit_status == 0) {
            assert_true(json_is_null(err));
        } else {
            assert_string_equal(sget(err, "message"), "first");
            json_t *pr = json_object_get(err, "problems");
            assert_int_equal(pr ? json_array_size(pr) : 0, cases[i].problems ? 2 : 0);
        }
        json_t *outs = json_object_get(doc, "outputs");
        assert_int_equal(json_array_size(outs), 2);
        assert_string_equal(sget(json_array_get(outs, 0), "path"), "/out/img-amd64.tar.zst");
        assert_string_equal(sget(json_array_get(outs, 1), "path"), "/out/img-arm64.tar.zst");

        /* "a:exported ..." from the image entries. */
        char got[256] = "";
        json_t *images = json_object_get(doc, "images");
        for (size_t k = 0; k < json_array_size(images); k++) {
            json_t *im = json_array_get(images, k);
            const char *name = sget(im, "name");
            char buf[64];
            snprintf(buf, sizeof(buf), "%s%c:%s", k ? " " : "", name[strlen(name) - 3],
                     sget(im, "status"));
            strncat(got, buf, sizeof(got) - strlen(got) - 1);
            if (strcmp(sget(im, "status"), "failed") == 0)
                assert_non_null(json_object_get(json_object_get(im, "error"), "code"));
            else
                assert_true(json_is_null(json_object_get(im, "error")));
            /* ref as given */
            if (name[strlen(name) - 3] == 'a') {
                assert_string_equal(sget(im, "ref"), "a:1");
                assert_int_equal(iget(im, "bytes"), 1120);
                assert_true(json_is_true(json_object_get(im, "zstd_decompressed")));
            }
            if (name[strlen(name) - 3] == 'c')
                assert_string_equal(sget(im, "ref"), "docker.io/library/c:1");
        }
        assert_string_equal(got, cases[i].statuses);
        json_t *tot = json_object_get(doc, "totals");
        assert_int_equal(iget(tot, "exported"), cases[i].exported);
        assert_int_equal(iget(tot, "failed"), cases[i].failed);
        assert_int_equal(iget(tot, "written"), cases[i].written);
        assert_int_equal(iget(tot, "bytes"), cases[i].bytes);
        json_decref(doc);
        al_export_report_dispose(&rep);
        al_selection_dispose(&sel);
    }
    al_reflist_dispose(&refs);
}

/* The store could not be opened: no selection, outputs not written. */
static void test_json_no_selection(void **state)
{
    (void)state;
    al_platform p = plat("linux/amd64");
    al_export_report rep;
    al_export_report_init(&rep, "9.9", "nope", "x.tar", &p, 1);
    rep.exit_status = 3;
    al_error *e = NULL;
    al_error_set(&e, AL_E_NOT_FOUND, 0, "nope is not an airlock store");
    al_export_report_set_error(&rep, e);
    json_t *doc = report_doc(&rep);
    assert_int_equal(json_array_size(json_object_get(doc, "images")), 0);
    assert_string_equal(sget(json_array_get(json_object_get(doc, "outputs"), 0), "status"),
                        "not_written");
    assert_string_equal(sget(json_object_get(doc, "error"), "code"), "NOT_FOUND");
    assert_null(json_object_get(json_object_get(doc, "error"), "problems"));
    assert_true(json_is_null(json_object_get(doc, "level")));
    json_decref(doc);
    al_export_report_dispose(&rep);
}

static void test_write_text(void **state)
{
    (void)state;
    char *dir = th_mkdtemp();
    char *path = al_xasprintf("%s/report.json", dir);
    al_error *err = NULL;
    const char *texts[] = {"{}\n", "{\"a\": 1}\n", ""};
    for (size_t i = 0; i < AL_ARRAY_SIZE(texts); i++) {
        assert_int_equal(al_export_write_text(path, texts[i], strlen(texts[i]), &err), 0);
        size_t n = 0;
        char *got = th_read_file(path, &n);
        assert_int_equal(n, strlen(texts[i]));
        assert_memory_equal(got, texts[i], n);
        free(got);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(th_count_entries(dir), 1); /* no temp file left */
    }
    /* A directory that is not there: IO, nothing left behind. */
    char *bad = al_xasprintf("%s/no/such/report.json", dir);
    assert_int_equal(al_export_write_text(bad, "{}", 2, &err), AL_E_IO);
    assert_non_null(strstr(err->msg, bad));
    al_error_clear(&err);
    /* The path is a directory: the rename fails, the temp file goes. */
    char *sub = al_xasprintf("%s/sub", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char *inner = al_xasprintf("%s/x", sub);
    th_write_file(inner, "x", 1);
    assert_int_equal(al_export_write_text(sub, "{}", 2, &err), AL_E_IO);
    assert_non_null(strstr(err->msg, "rename"));
    al_error_clear(&err);
    assert_int_equal(th_count_entries(dir), 2); /* report.json and sub */
    free(inner);
    free(sub);
    free(bad);
    free(path);
    th_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_path), cmocka_unit_test(test_time),
        cmocka_unit_test(test_json),        cmocka_unit_test(test_json_no_selection),
        cmocka_unit_test(test_write_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
