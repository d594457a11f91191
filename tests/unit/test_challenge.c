/* Unit tests for fetch/challenge: WWW-Authenticate parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
        {"Bearer "
         "realm=\"https://auth.docker.io/"
         "token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"",
         0, AL_AUTH_SCHEME_BEARER, "https://auth.docker.io/token", "registry.docker.io",
         "repository:library/busybox:pull"},
        {"bearer realm=\"https://h/t\"", 0, AL_AUTH_SCHEME_BEARER, "https://h/t", NULL, NULL},
        {"Bearer  realm = \"https://h/t\" , service=svc", 0, AL_AUTH_SCHEME_BEARER, "https://h/t",
         "svc", NULL},
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
    const al_cred *cr;
    assert_int_equal(al_creds_get(c, "registry-1.docker.io", &cr, NULL), 0);
    assert_string_equal(cr->user, "hub");
    assert_string_equal(cr->password, "secret");
    assert_string_equal(cr->origin, "cfg");
    assert_int_equal(al_creds_get(c, "reg.example.com:5000", &cr, NULL), 0);
    assert_string_equal(cr->password, "p:w");
    assert_int_equal(al_creds_get(c, "other.example.com", &cr, NULL), 0);
    assert_string_equal(cr->user, "other");
    assert_string_equal(cr->password, "pass:");
    assert_int_equal(al_creds_get(c, "reg.example.com", &cr, NULL), 0);
    assert_null(cr);
    assert_int_equal(al_creds_get(c, "helper.example.com", &cr, NULL), 0);
    assert_null(cr);
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
    assert_int_equal(al_creds_get(c, "anything:1", &cr, NULL), 0);
    assert_string_equal(cr->user, "cli");
    assert_string_equal(cr->origin, "--username");
    al_creds_free(c);

    char *h = al_creds_basic_header("user", "password");
    assert_string_equal(h, "Basic dXNlcjpwYXNzd29yZA==");
    free(h);
}

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
}

static void test_helpers(void **state)
{
    (void)state;
    char dir[] = "/tmp/al-test-creds-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512], cfg[512], auth[512];
    /* A helper that answers for one server and says "not found" otherwise. */
    snprintf(path, sizeof(path), "%s/docker-credential-fake", dir);
    write_file(
        path,
        "#!/bin/sh\nread s\n"
        "case \"$s\" in\n"
        "reg.example.com) echo '{\"ServerURL\":\"x\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n"
        "tok.example.com) echo "
        "'{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"rt\"}';;\n"
        "https://index.docker.io/v1/) echo '{\"Username\":\"hub\",\"Secret\":\"h\"}';;\n"
        "*) echo 'credentials not found in native keychain'; exit 1;;\n"
        "esac\n",
        0755);
    snprintf(path, sizeof(path), "%s/docker-credential-broken", dir);
    write_file(path, "#!/bin/sh\necho oops >&2; exit 3\n", 0755);
    char newpath[1024];
    snprintf(newpath, sizeof(newpath), "%s:%s", dir, getenv("PATH"));
    setenv("PATH", newpath, 1);
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    write_file(cfg,
               "{\"credsStore\":\"fake\",\"credHelpers\":{\"broken.example.com\":\"broken\","
               "\"missing.example.com\":\"nosuchhelper\"},"
               "\"auths\":{\"plain.example.com\":{\"auth\":\"cDpx\"}}}",
               0600);
    snprintf(auth, sizeof(auth), "%s/auth.json", dir);
    write_file(auth, "{\"auths\":{\"reg.example.com\":{\"auth\":\"YXU6YXA=\"}}}", 0600);

    al_creds *c = NULL;
    const al_cred *cr;
    al_error *err = NULL;
    unsetenv("REGISTRY_AUTH_FILE");
    unsetenv("XDG_RUNTIME_DIR");
    assert_int_equal(al_creds_new(&c, NULL, NULL, cfg, NULL), 0);
    assert_int_equal(al_creds_get(c, "reg.example.com", &cr, NULL), 0);
    assert_string_equal(cr->user, "hu"); /* credsStore */
    assert_non_null(strstr(cr->origin, "docker-credential-fake"));
    assert_int_equal(al_creds_get(c, "tok.example.com", &cr, NULL), 0);
    assert_null(cr->user);
    assert_string_equal(cr->identity_token, "rt");
    assert_int_equal(al_creds_get(c, "registry-1.docker.io", &cr, NULL), 0);
    assert_string_equal(cr->user, "hub");
    /* The store has nothing: auths entries are next. */
    assert_int_equal(al_creds_get(c, "plain.example.com", &cr, NULL), 0);
    assert_string_equal(cr->user, "p");
    assert_int_equal(al_creds_get(c, "none.example.com", &cr, NULL), 0);
    assert_null(cr);
    assert_int_equal(al_creds_get(c, "broken.example.com", &cr, &err), AL_E_AUTH);
    assert_non_null(strstr(err->msg, "docker-credential-broken"));
    assert_non_null(strstr(err->msg, "exit 3"));
    al_error_clear(&err);
    assert_int_equal(al_creds_get(c, "missing.example.com", &cr, &err), AL_E_AUTH);
    assert_non_null(strstr(err->msg, "docker-credential-nosuchhelper"));
    assert_non_null(strstr(err->msg, "not installed"));
    al_error_clear(&err);
    al_creds_free(c);

    /* containers auth.json outranks docker's helpers. */
    setenv("REGISTRY_AUTH_FILE", auth, 1);
    assert_int_equal(al_creds_new(&c, NULL, NULL, cfg, NULL), 0);
    assert_int_equal(al_creds_get(c, "reg.example.com", &cr, NULL), 0);
    assert_string_equal(cr->user, "au");
    assert_string_equal(cr->origin, auth);
    al_creds_free(c);
    /* A named auth file that is missing is an error. */
    setenv("REGISTRY_AUTH_FILE", "/nonexistent/auth.json", 1);
    assert_int_equal(al_creds_new(&c, NULL, NULL, cfg, &err), AL_E_USAGE);
    al_error_clear(&err);
    unsetenv("REGISTRY_AUTH_FILE");

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
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
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_url_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
