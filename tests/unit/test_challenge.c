#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "challenge.h"
#include "credentials.h"

static void test_challenges(void **state)
{
    (void)state;
    static const struct {
        const char *hdr;
        int want; /* 0 ok, else code */
        al_auth_scheme scheme;
        const char *realm, *service, *scope;
    } cases[] = {
        {"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"",
         0, AL_AUTH_SCHEME_BEARER, "https://auth.docker.io/token", "registry.docker.io",
         "repository:library/busybox:pull"},
        {"bearer realm=\"https://h/t\"", 0, AL_AUTH_SCHEME_BEARER, "https://h/t", NULL, NULL},
        {"Bearer  realm = \"https://h/t\" , service=svc", 0, AL_AUTH_SCHEME_BEARER, "https://h/t", "svc", NULL},
        {"Basic realm=\"Registry Realm\"", 0, AL_AUTH_SCHEME_BASIC, "Registry Realm", NULL, NULL},
        {"Basic", 0, AL_AUTH_SCHEME_BASIC, NULL, NULL, NULL},
        {"Bearer realm=\"a\\\"b\"", 0, AL_AUTH_SCHEME_BEARER, "a\"b", NULL, NULL},
        {"Bearer service=\"x\"", AL_E_PARSE, 0, NULL, NULL, NULL},
        {"Bearer realm=\"unterminated", AL_E_PARSE, 0, NULL, NULL, NULL},
        {"Negotiate abc", AL_E_AUTH, 0, NULL, NULL, NULL},
        {"", AL_E_AUTH, 0, NULL, NULL, NULL},
        {"Bearer =x", AL_E_PARSE, 0, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_challenge ch;
        al_error *err = NULL;
        int r = al_challenge_parse(&ch, cases[i].hdr, &err);
        assert_int_equal(r, cases[i].want);
        if (r == 0) {
            assert_int_equal(ch.scheme, cases[i].scheme);
            if (cases[i].realm)
                assert_string_equal(ch.realm, cases[i].realm);
            else
                assert_null(ch.realm);
            if (cases[i].service)
                assert_string_equal(ch.service, cases[i].service);
            if (cases[i].scope)
                assert_string_equal(ch.scope, cases[i].scope);
            al_challenge_dispose(&ch);
        } else {
            assert_non_null(err);
        }
        al_error_free(err);
    }
    al_challenge ch;
    assert_int_equal(al_challenge_parse(&ch, NULL, NULL), AL_E_AUTH);
}

static void test_docker_config(void **state)
{
    (void)state;
    al_creds *c = NULL;
    /* No default file lookups: an explicit empty config. */
    assert_int_equal(al_creds_new(&c, NULL, NULL, "/dev/null", NULL), AL_E_USAGE);
    setenv("DOCKER_CONFIG", "/nonexistent-airlock-test", 1); /* missing default: not an error */
    assert_int_equal(al_creds_new(&c, NULL, NULL, NULL, NULL), 0);
    const char *cfg = "{\"auths\":{"
                      "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOnNlY3JldA==\"},"
                      "\"reg.example.com:5000\":{\"username\":\"u\",\"password\":\"p:w\"},"
                      "\"https://other.example.com/v2/\":{\"auth\":\"b3RoZXI6cGFzczo=\"},"
                      "\"helper.example.com\":{}}}";
    assert_int_equal(al_creds_parse_docker_config(c, cfg, strlen(cfg), "cfg", NULL), 0);
    const char *u, *p;
    assert_true(al_creds_lookup(c, "registry-1.docker.io", &u, &p));
    assert_string_equal(u, "hub");
    assert_string_equal(p, "secret");
    assert_true(al_creds_lookup(c, "reg.example.com:5000", &u, &p));
    assert_string_equal(p, "p:w");
    assert_true(al_creds_lookup(c, "other.example.com", &u, &p));
    assert_string_equal(u, "other");
    assert_string_equal(p, "pass:");
    assert_false(al_creds_lookup(c, "reg.example.com", &u, &p));
    assert_false(al_creds_lookup(c, "helper.example.com", &u, &p));

    al_error *err = NULL;
    const char *bad = "{\"auths\":{\"h\":{\"auth\":\"not base64!\"}}}";
    assert_int_equal(al_creds_parse_docker_config(c, bad, strlen(bad), "cfg", &err), AL_E_USAGE);
    assert_null(strstr(err->msg, "not base64")); /* the secret is not echoed */
    al_error_free(err);
    err = NULL;
    assert_int_equal(al_creds_parse_docker_config(c, "{", 1, "cfg", &err), AL_E_USAGE);
    assert_non_null(strstr(err->msg, "cfg:1"));
    al_error_free(err);
    al_creds_free(c);

    /* Command-line credentials win. */
    assert_int_equal(al_creds_new(&c, "cli", "pw", NULL, NULL), 0);
    assert_true(al_creds_lookup(c, "anything:1", &u, &p));
    assert_string_equal(u, "cli");
    al_creds_free(c);

    char *h = al_creds_basic_header("user", "password");
    assert_string_equal(h, "Basic dXNlcjpwYXNzd29yZA==");
    free(h);
}

static void test_url_redact(void **state)
{
    (void)state;
    extern char *al_url_redact(const char *url);
    static const char *cases[][2] = {
        {"https://h:5000/v2/x/blobs/sha256:1", "https://h:5000/v2/x/blobs/sha256:1"},
        {"https://user:pw@h/v2/?X-Amz-Signature=abc", "https://h/v2/"},
        {"http://s3.example.com/bucket/obj?sig=1#frag", "http://s3.example.com/bucket/obj"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *r = al_url_redact(cases[i][0]);
        assert_string_equal(r, cases[i][1]);
        free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenges),
        cmocka_unit_test(test_docker_config),
        cmocka_unit_test(test_url_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
