/* Unit tests of airlock-push's parts that need no network: the cluster's
 * configuration against golden files (push-config.c: tests/data/push/),
 * an index rewritten to the entries pushed (push-index.c), and the saved
 * upload sessions (upload-session.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "push-config.h"
#include "push-private.h"
#include "test-helpers.h"
#include "upload-session.h"
#include "util.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define DX "sha256:4444444444444444444444444444444444444444444444444444444444444444"

static char *golden(const char *name)
{
    _cleanup_free_ char *p = al_xasprintf("%s/push/%s", getenv("AL_TEST_DATA"), name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        fail_msg("no golden file %s", p);
    char *buf = al_xcalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_text(const char *want_file, const char *got)
{
    _cleanup_free_ char *want = golden(want_file);
    if (strcmp(want, got) != 0)
        fail_msg("%s differs:\n--- want\n%s--- got\n%s", want_file, want, got);
}

/* --- registries.yaml, hosts.toml ------------------------------------------------------------- */

static void test_config_tls_prefix(void **state)
{
    (void)state;
    al_push_site site = {.host = "registry.local:5000",
                         .prefix = "site/mirror",
                         .skip_verify = true,
                         .ca_file = "/etc/ssl/a \"quoted\" ca.pem",
                         .client_cert = "/etc/ssl/client.pem",
                         .client_key = "/etc/ssl/client.key"};
    const char *ups[] = {"docker.io", "quay.io"};
    _cleanup_free_ char *yaml = al_push_registries_yaml(&site, ups, 2);
    assert_text("registries-tls.yaml", yaml);
    _cleanup_free_ char *toml = al_push_hosts_toml(&site, "quay.io");
    assert_text("hosts-tls.toml", toml);
}

static void test_config_plain(void **state)
{
    (void)state;
    al_push_site site = {.host = "10.0.0.5:5000", .plain_http = true};
    const char *ups[] = {"docker.io"};
    _cleanup_free_ char *yaml = al_push_registries_yaml(&site, ups, 1);
    assert_text("registries-plain.yaml", yaml);
    _cleanup_free_ char *toml = al_push_hosts_toml(&site, "docker.io");
    assert_text("hosts-plain.toml", toml);
}

static void test_hosts_dir(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = th_mkdtemp();
    _cleanup_free_ char *hd = al_xasprintf("%s/certs.d", dir);
    al_push_site site = {.host = "10.0.0.5:5000", .plain_http = true};
    const char *ups[] = {"docker.io", "quay.io"};
    assert_int_equal(al_push_write_hosts_dir(hd, &site, ups, 2, NULL), 0);
    for (int i = 0; i < 2; i++) {
        _cleanup_free_ char *p = al_xasprintf("%s/%s/hosts.toml", hd, ups[i]);
        assert_int_equal(access(p, R_OK), 0);
    }
    /* A file where the directory should be: one error, naming it. */
    _cleanup_free_ char *bad = al_xasprintf("%s/file", dir);
    FILE *f = fopen(bad, "w");
    fclose(f);
    al_error *e = NULL;
    assert_true(al_push_write_hosts_dir(bad, &site, ups, 1, &e) < 0);
    assert_non_null(strstr(e->msg, "is not a directory"));
    al_error_free(e);
    th_rm_rf(dir);
}

/* --- an index rewritten ------------------------------------------------------------------------
 */

static const char INDEX[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D1
    "\",\"size\":10,"
    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D2
    "\",\"size\":11,"
    "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D3
    "\",\"size\":12,"
    "\"annotations\":{\"vnd.docker.reference.digest\":\"" D2 "\",\"vnd.docker.reference.type\":"
    "\"attestation-manifest\"},\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}],"
    "\"annotations\":{\"org.example\":\"kept\"}}";

static char *digests_of(const char *body)
{
    json_t *root = json_loads(body, 0, NULL);
    json_t *m = json_object_get(root, "manifests");
    char *out = al_xstrdup("");
    for (size_t i = 0; i < json_array_size(m); i++) {
        const char *d = json_string_value(json_object_get(json_array_get(m, i), "digest"));
        char *t = al_xasprintf("%s%s%.8s", out, *out ? " " : "", d + 7);
        free(out);
        out = t;
    }
    json_decref(root);
    return out;
}

static void test_rewrite(void **state)
{
    (void)state;
    char nd[AL_DIGEST_BUF], od[AL_DIGEST_BUF];
    char *out = NULL;
    size_t len = 0;
    bool dropped = false;
    al_digest_bytes(od, INDEX, strlen(INDEX));

    /* Everything pushed: the index goes as stored. */
    index_rewrite *w = al_push_rewrite_new();
    al_push_rewrite_keep(w, D1);
    al_push_rewrite_keep(w, D2);
    al_push_rewrite_keep(w, D3);
    assert_int_equal(
        al_push_rewrite_index(w, od, INDEX, strlen(INDEX), &out, &len, nd, &dropped, NULL), 0);
    assert_null(out);
    assert_false(dropped);
    assert_string_equal(nd, od);
    al_push_rewrite_free(w);

    /* arm64 not held: its attestation goes with it; the rest is kept. */
    w = al_push_rewrite_new();
    al_push_rewrite_keep(w, D1);
    al_push_rewrite_keep(w, D3);
    assert_int_equal(
        al_push_rewrite_index(w, od, INDEX, strlen(INDEX), &out, &len, nd, &dropped, NULL), 0);
    assert_non_null(out);
    _cleanup_free_ char *left = digests_of(out);
    assert_string_equal(left, "11111111");
    assert_non_null(strstr(out, "\"org.example\":\"kept\""));
    char want[AL_DIGEST_BUF];
    al_digest_bytes(want, out, len);
    assert_string_equal(nd, want);
    assert_string_not_equal(nd, od);

    /* An index above it names the rewritten one by its new digest and size. */
    _cleanup_free_ char *outer = al_xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
        "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":"
        "\"%s\",\"size\":%zu}]}",
        od, strlen(INDEX));
    char *out2 = NULL;
    size_t len2 = 0;
    char nd2[AL_DIGEST_BUF];
    assert_int_equal(
        al_push_rewrite_index(w, DX, outer, strlen(outer), &out2, &len2, nd2, &dropped, NULL), 0);
    assert_non_null(out2);
    _cleanup_free_ char *size_text = al_xasprintf("\"size\":%zu", len);
    assert_non_null(strstr(out2, nd));
    assert_non_null(strstr(out2, size_text));
    free(out2);
    free(out);
    al_push_rewrite_free(w);

    /* Nothing held: the index is dropped. */
    w = al_push_rewrite_new();
    assert_int_equal(
        al_push_rewrite_index(w, od, INDEX, strlen(INDEX), &out, &len, nd, &dropped, NULL), 0);
    assert_true(dropped);
    assert_null(out);
    al_push_rewrite_free(w);

    /* Not an index at all. */
    w = al_push_rewrite_new();
    al_error *e = NULL;
    assert_true(al_push_rewrite_index(w, od, "{}", 2, &out, &len, nd, &dropped, &e) < 0);
    al_error_free(e);
    al_push_rewrite_free(w);
}

/* --- upload sessions
 * ------------------------------------------------------------------------------ */

static void test_sessions(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = th_mkdtemp();
    al_store *s = NULL;
    assert_int_equal(al_store_open(&s, dir, AL_STORE_WRITE, NULL), 0);
    const char *url = "http://r:5000/v2/a/b/blobs/uploads/u1?_state=x";
    assert_int_equal(al_upload_session_save(s, "r:5000", "a/b", D1, 1000, url, 400, NULL), 0);
    _cleanup_free_ char *name = al_upload_session_name("r:5000", "a/b", D1);
    assert_true(al_upload_session_is_name(name));
    assert_false(al_upload_session_is_name("upload-x"));
    assert_false(al_upload_session_is_name("partial-1111"));

    char *got = NULL;
    int64_t off = 0;
    assert_int_equal(al_upload_session_load(s, "r:5000", "a/b", D1, 1000, &got, &off, NULL), 0);
    assert_string_equal(got, url);
    assert_int_equal(off, 400);
    free(got);
    /* Another place, another blob, another size: not this session. */
    assert_true(al_upload_session_load(s, "r:5001", "a/b", D1, 1000, &got, &off, NULL) < 0);
    assert_true(al_upload_session_load(s, "r:5000", "a/c", D1, 1000, &got, &off, NULL) < 0);
    assert_true(al_upload_session_load(s, "r:5000", "a/b", D1, 999, &got, &off, NULL) < 0);
    /* A URL that names a user is never written down. */
    al_error *e = NULL;
    assert_true(al_upload_session_save(s, "r:5000", "a/b", D2, 1000, "https://u:secret@r:5000/v2/x",
                                       10, &e) < 0);
    al_error_free(e);
    _cleanup_free_ char *n2 = al_upload_session_name("r:5000", "a/b", D2);
    _cleanup_free_ char *p2 = al_xasprintf("%s/tmp/%s", dir, n2);
    assert_int_not_equal(access(p2, F_OK), 0);
    /* A file that is not JSON is no session. */
    FILE *f = fopen(p2, "w");
    fputs("garbage", f);
    fclose(f);
    assert_true(al_upload_session_load(s, "r:5000", "a/b", D2, 1000, &got, &off, NULL) < 0);
    al_upload_session_drop(s, "r:5000", "a/b", D1);
    assert_true(al_upload_session_load(s, "r:5000", "a/b", D1, 1000, &got, &off, NULL) < 0);
    al_store_free(s);
    th_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_tls_prefix), cmocka_unit_test(test_config_plain),
        cmocka_unit_test(test_hosts_dir),         cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
