/* Unit tests for common/ref: docker's reference grammar and normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "util.h"

#define HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DG "sha256:" HEX

/* Valid references and what they normalise to. */
static const struct {
    const char *in;
    const char *domain, *path, *tag, *digest; /* tag/digest NULL when absent */
    const char *full;
} valid[] = {
    {"busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest"},
    {"busybox:1.36", "docker.io", "library/busybox", "1.36", NULL,
     "docker.io/library/busybox:1.36"},
    {"rancher/pause:3.6", "docker.io", "rancher/pause", "3.6", NULL, "docker.io/rancher/pause:3.6"},
    {"index.docker.io/x", "docker.io", "library/x", "latest", NULL, "docker.io/library/x:latest"},
    {"docker.io/x", "docker.io", "library/x", "latest", NULL, "docker.io/library/x:latest"},
    {"index.docker.io/rancher/x:1", "docker.io", "rancher/x", "1", NULL, "docker.io/rancher/x:1"},
    {"docker.io/library/busybox", "docker.io", "library/busybox", "latest", NULL,
     "docker.io/library/busybox:latest"},
    {"library/busybox", "docker.io", "library/busybox", "latest", NULL,
     "docker.io/library/busybox:latest"},
    {"localhost/x", "localhost", "x", "latest", NULL, "localhost/x:latest"},
    {"localhost:5000/a/b:t", "localhost:5000", "a/b", "t", NULL, "localhost:5000/a/b:t"},
    {"127.0.0.1:5000/x@" DG, "127.0.0.1:5000", "x", NULL, DG, "127.0.0.1:5000/x@" DG},
    {"[::1]:5000/x:t", "[::1]:5000", "x", "t", NULL, "[::1]:5000/x:t"},
    {"[fe80::1]/x", "[fe80::1]", "x", "latest", NULL, "[fe80::1]/x:latest"},
    {"quay.io/a/b:1", "quay.io", "a/b", "1", NULL, "quay.io/a/b:1"},
    {"quay.io/a/b:1@" DG, "quay.io", "a/b", "1", DG, "quay.io/a/b:1@" DG},
    {"busybox@" DG, "docker.io", "library/busybox", NULL, DG, "docker.io/library/busybox@" DG},
    {"busybox:musl@" DG, "docker.io", "library/busybox", "musl", DG,
     "docker.io/library/busybox:musl@" DG},
    {"Example.com/x", "Example.com", "x", "latest", NULL, "Example.com/x:latest"},
    {"my-registry.example.com:443/team/app:v1.2.3-rc_1", "my-registry.example.com:443", "team/app",
     "v1.2.3-rc_1", NULL, "my-registry.example.com:443/team/app:v1.2.3-rc_1"},
    {"a__b", "docker.io", "library/a__b", "latest", NULL, "docker.io/library/a__b:latest"},
    {"a--b", "docker.io", "library/a--b", "latest", NULL, "docker.io/library/a--b:latest"},
    {"a---b", "docker.io", "library/a---b", "latest", NULL, "docker.io/library/a---b:latest"},
    {"a.b", "docker.io", "library/a.b", "latest", NULL, "docker.io/library/a.b:latest"},
    {"a_b.c-d", "docker.io", "library/a_b.c-d", "latest", NULL, "docker.io/library/a_b.c-d:latest"},
    {"localhost", "docker.io", "library/localhost", "latest", NULL,
     "docker.io/library/localhost:latest"},
    /* No '/': "localhost:5000" is the Hub repository "localhost" with tag
     * "5000", as in docker. */
    {"localhost:5000", "docker.io", "library/localhost", "5000", NULL,
     "docker.io/library/localhost:5000"},
    {"x:_", "docker.io", "library/x", "_", NULL, "docker.io/library/x:_"},
    {"x:UPPER", "docker.io", "library/x", "UPPER", NULL, "docker.io/library/x:UPPER"},
    {"ghcr.io/a/b/c/d:e", "ghcr.io", "a/b/c/d", "e", NULL, "ghcr.io/a/b/c/d:e"},
    {"0/1", "docker.io", "0/1", "latest", NULL, "docker.io/0/1:latest"},
    {"registry-1.docker.io/x", "registry-1.docker.io", "x", "latest", NULL,
     "registry-1.docker.io/x:latest"},
};

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < AL_ARRAY_SIZE(valid); i++) {
        al_ref *r = NULL;
        al_error *err = NULL;
        int rc = al_ref_parse(&r, valid[i].in, &err);
        if (rc != 0)
            fail_msg("%s: %s", valid[i].in, err ? err->msg : "?");
        assert_null(err);
        assert_non_null(r);
        assert_string_equal(r->domain, valid[i].domain);
        assert_string_equal(r->path, valid[i].path);
        if (valid[i].tag)
            assert_string_equal(r->tag, valid[i].tag);
        else
            assert_null(r->tag);
        if (valid[i].digest)
            assert_string_equal(r->digest, valid[i].digest);
        else
            assert_null(r->digest);
        char *full = al_ref_full(r);
        assert_string_equal(full, valid[i].full);

        /* The full form is a fixed point of the parser. */
        al_ref *again = NULL;
        assert_int_equal(al_ref_parse(&again, full, NULL), 0);
        char *full2 = al_ref_full(again);
        assert_string_equal(full2, full);

        al_ref *d = al_ref_dup(r);
        char *full3 = al_ref_full(d);
        assert_string_equal(full3, full);

        free(full);
        free(full2);
        free(full3);
        al_ref_free(again);
        al_ref_free(d);
        al_ref_free(r);
    }
}

/* Invalid references: every one names its reason. */
static const struct {
    const char *in;
    const char *why; /* substring of the message */
} invalid[] = {
    {"", "empty reference"},
    {"Busybox", "repository name must be lowercase"},
    {"rancher/Pause:3.6", "repository name must be lowercase"},
    {"quay.io/A/b", "repository name must be lowercase"},
    {"Foo/bar", "repository name must be lowercase"},
    {"a//b", "empty path component"},
    {"a/", "empty path component"},
    {"/a", "empty path component"},
    {"quay.io/a//b", "empty path component"},
    {"quay.io/", "missing repository path"},
    {"busybox:", "empty tag after ':'"},
    {"quay.io:5000/a:", "empty tag after ':'"},
    {"busybox@", "empty digest after '@'"},
    {"busybox:1@", "empty digest after '@'"},
    {"busybox@sha256:abc", "invalid digest \"sha256:abc\""},
    {"busybox@sha256:" HEX "0", "64 hex digits"},
    {"busybox@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
     "hex must be lowercase"},
    {"busybox@md5:d41d8cd98f00b204e9800998ecf8427e", "algorithm must be sha256"},
    {"busybox@" HEX, "missing algorithm"},
    {"busybox@sha256:" HEX "@x", "invalid digest"},
    {"a___b", "invalid separator"},
    {"a..b", "invalid separator"},
    {"a._b", "invalid separator"},
    {"a-_b", "invalid separator"},
    {"-a", "must start with a letter or digit"},
    {"_a", "must start with a letter or digit"},
    {".a", "must start with a letter or digit"},
    {"a-", "must end with a letter or digit"},
    {"a.", "must end with a letter or digit"},
    {"a_", "must end with a letter or digit"},
    {"x/a__", "must end with a letter or digit"},
    {"busybox:.x", "invalid tag"},
    {"busybox:-x", "invalid tag"},
    {"busybox:a:b", "invalid character ':'"},
    {"busy box", "invalid character ' ' at position 5"},
    {"busybox\t", "invalid byte 0x09"},
    {"busybox!", "invalid character '!'"},
    {"busybox#x", "invalid character '#'"},
    {"-example.com/x", "invalid host name"},
    {"example-.com/x", "invalid host name"},
    {"a..com/x", "invalid host name"},
    {"ex_ample.com/x", "invalid host name"},
    {"example.com:/x", "empty port"},
    {"example.com:80a/x", "port must be a number"},
    {"example.com:0/x", "port out of range"},
    {"example.com:65536/x", "port out of range"},
    {"example.com:99999999999999999999999/x", "port out of range"},
    {"[::1/x", "unterminated IPv6"},
    {"[]:5000/x", "empty IPv6 address"},
    {"[::g]/x", "invalid IPv6 address"},
    {"[::1]x/y", "unexpected text after the host"},
    {"[::1]:5000", "missing repository path"},
    {":tag", "empty repository name"},
    {"@" DG, "empty repository name"},
    {HEX, "image ID"},
    {"x/a[b", "invalid character '['"},
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < AL_ARRAY_SIZE(invalid); i++) {
        al_ref *r = (al_ref *)&r; /* must be reset to NULL */
        al_error *err = NULL;
        int rc = al_ref_parse(&r, invalid[i].in, &err);
        if (rc != AL_E_USAGE)
            fail_msg("%s: accepted or wrong code %d", invalid[i].in, rc);
        assert_null(r);
        assert_non_null(err);
        assert_int_equal(err->code, AL_E_USAGE);
        if (strncmp(err->msg, "invalid reference \"", 19) != 0 ||
            strstr(err->msg, invalid[i].why) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", invalid[i].in, err->msg, invalid[i].why);
        al_error_free(err);
    }
}

static void test_lowercase_message(void **state)
{
    (void)state;
    al_ref *r = NULL;
    al_error *err = NULL;
    assert_int_equal(al_ref_parse(&r, "Busybox", &err), AL_E_USAGE);
    assert_string_equal(err->msg,
                        "invalid reference \"Busybox\": repository name must be lowercase");
    al_error_free(err);
    /* err may be NULL: only the code comes back. */
    assert_int_equal(al_ref_parse(&r, "Busybox", NULL), AL_E_USAGE);
    assert_null(r);
}

static char *repeat(char c, size_t n)
{
    char *s = al_xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void expect_result(const char *in, int want, const char *why)
{
    al_ref *r = NULL;
    al_error *err = NULL;
    int rc = al_ref_parse(&r, in, &err);
    assert_int_equal(rc, want);
    if (want == 0) {
        assert_non_null(r);
        assert_null(err);
    } else {
        assert_null(r);
        assert_non_null(err);
        if (strstr(err->msg, why) == NULL)
            fail_msg("message \"%s\" lacks \"%s\"", err->msg, why);
        /* Huge inputs are cut in the message. */
        assert_true(strlen(err->msg) < 400);
    }
    al_ref_free(r);
    al_error_free(err);
}

static void test_lengths(void **state)
{
    (void)state;
    /* "quay.io/" is 8 characters: a path of 247 makes a name of 255. */
    char *p247 = repeat('a', 247);
    char *p248 = repeat('a', 248);
    char *s = al_xasprintf("quay.io/%s", p247);
    expect_result(s, 0, NULL);
    free(s);
    s = al_xasprintf("quay.io/%s", p248);
    expect_result(s, AL_E_USAGE, "repository name too long (256 characters, max 255)");
    free(s);
    /* The limit applies to the normalised name: "docker.io/library/" is 18. */
    char *p237 = repeat('a', 237);
    char *p238 = repeat('a', 238);
    expect_result(p237, 0, NULL);
    expect_result(p238, AL_E_USAGE, "repository name too long");
    free(p237);
    free(p238);
    free(p247);
    free(p248);

    char *t128 = repeat('t', 128);
    char *t129 = repeat('t', 129);
    s = al_xasprintf("busybox:%s", t128);
    expect_result(s, 0, NULL);
    free(s);
    s = al_xasprintf("busybox:%s", t129);
    expect_result(s, AL_E_USAGE, "tag longer than 128 characters");
    free(s);
    free(t128);
    free(t129);

    char *huge = repeat('A', 100000);
    expect_result(huge, AL_E_USAGE, "...\": repository name must be lowercase");
    free(huge);
}

static void test_familiar(void **state)
{
    (void)state;
    static const struct {
        const char *in, *familiar, *host;
    } cases[] = {
        {"docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io"},
        {"busybox", "busybox:latest", "registry-1.docker.io"},
        {"docker.io/rancher/x:1", "rancher/x:1", "registry-1.docker.io"},
        {"index.docker.io/rancher/x:1", "rancher/x:1", "registry-1.docker.io"},
        {"quay.io/a/b:1", "quay.io/a/b:1", "quay.io"},
        {"docker.io/library/a/b:1", "library/a/b:1", "registry-1.docker.io"},
        {"busybox@" DG, "busybox@" DG, "registry-1.docker.io"},
        {"busybox:1@" DG, "busybox:1@" DG, "registry-1.docker.io"},
        {"localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000"},
        {"[::1]:5000/x:t", "[::1]:5000/x:t", "[::1]:5000"},
        {"quay.io/library/x", "quay.io/library/x:latest", "quay.io"},
        /* Found by ref_fuzzer: dropping "docker.io/" here would turn the
         * Hub repository into a ref to the registry "localhost" or "a.b". */
        {"docker.io/localhost/x", "docker.io/localhost/x:latest", "registry-1.docker.io"},
        {"docker.io/a.b/c:1", "docker.io/a.b/c:1", "registry-1.docker.io"},
        {"docker.io/library/localhost", "localhost:latest", "registry-1.docker.io"},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_ref *r = NULL;
        assert_int_equal(al_ref_parse(&r, cases[i].in, NULL), 0);
        char *f = al_ref_familiar(r);
        assert_string_equal(f, cases[i].familiar);
        assert_string_equal(al_ref_endpoint_host(r), cases[i].host);
        free(f);
        al_ref_free(r);
    }
}

static void test_name_and_full(void **state)
{
    (void)state;
    al_ref *r = NULL;
    assert_int_equal(al_ref_parse(&r, "quay.io/a/b@" DG, NULL), 0);
    char *name = al_ref_name(r);
    assert_string_equal(name, "quay.io/a/b");
    char *full = al_ref_full(r);
    assert_string_equal(full, "quay.io/a/b@" DG);
    free(name);
    free(full);
    al_ref_free(r);

    assert_int_equal(al_ref_parse(&r, "busybox:1.36@" DG, NULL), 0);
    full = al_ref_full(r);
    assert_string_equal(full, "docker.io/library/busybox:1.36@" DG);
    free(full);
    al_ref_free(r);

    al_ref_free(NULL);
    assert_null(al_ref_dup(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_lowercase_message),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_familiar),
        cmocka_unit_test(test_name_and_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
