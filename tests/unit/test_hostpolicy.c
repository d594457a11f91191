/* Unit tests for fetch/hostpolicy.c: local hosts, where plain HTTP and credentials may go. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hostpolicy.h"

static void test_local(void **state)
{
    (void)state;
    static const struct {
        const char *hostport;
        bool local;
    } cases[] = {
        {"localhost", true},
        {"localhost:5000", true},
        {"LOCALHOST:5000", true},
        {"127.0.0.1", true},
        {"127.0.0.1:5000", true},
        {"127.1.2.3:80", true},
        {"127.255.255.255", true},
        {"[::1]:5000", true},
        {"[::1]", true},
        {"128.0.0.1:5000", false},
        {"126.255.255.255", false},
        {"10.231.0.2:5000", false},
        {"0.0.0.0:5000", false},
        {"[::2]:5000", false},
        {"[::ffff:10.0.0.1]:5000", false},
        {"localhost.example.com:5000", false},
        {"127.0.0.1.nip.io:5000", false},
        {"mylocalhost", false},
        {"registry-1.docker.io", false},
        {"", false},
        {"[::1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (al_host_is_local(cases[i].hostport) != cases[i].local)
            fail_msg("al_host_is_local(\"%s\") != %d", cases[i].hostport, cases[i].local);
    assert_false(al_host_is_local(NULL));
}

static void test_plain_http_and_credentials(void **state)
{
    (void)state;
    char *insecure[] = {"10.231.0.2:5000", "mirror.lan"};
    al_hostpolicy p = {insecure, 2};
    assert_true(al_hostpolicy_plain_http_ok(&p, "10.231.0.2:5000"));
    assert_false(al_hostpolicy_plain_http_ok(&p, "10.231.0.3:5000")); /* that host only */
    assert_false(al_hostpolicy_plain_http_ok(&p, "10.231.0.2:5001")); /* port included */
    assert_false(al_hostpolicy_plain_http_ok(&p, "10.231.0.2"));
    assert_true(al_hostpolicy_plain_http_ok(&p, "mirror.lan"));
    assert_true(al_hostpolicy_plain_http_ok(&p, "127.0.0.1:5000"));

    static const struct {
        const char *url;
        bool ok;
    } cases[] = {
        {"https://auth.example.com/token", true},
        {"https://10.9.9.9:444/token?service=x", true},
        {"HTTPS://auth.example.com/token", true},
        {"http://auth.example.com/token", false},
        {"http://10.231.0.3:5000/token", false},
        {"http://10.231.0.2:5000/token", true},
        {"http://mirror.lan/token", true},
        {"http://mirror.lan:80/token", false}, /* not the name the flag gave */
        {"http://127.0.0.1:8080/token", true},
        {"http://localhost/token", true},
        {"http://[::1]:8080/token", true},
        {"http://user:pw@evil.example/token", false},
        {"ftp://127.0.0.1/token", false},
        {"file:///etc/passwd", false},
        {"not a url", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (al_hostpolicy_credentials_ok(&p, cases[i].url) != cases[i].ok)
            fail_msg("al_hostpolicy_credentials_ok(\"%s\") != %d", cases[i].url, cases[i].ok);
    al_hostpolicy none = {NULL, 0};
    assert_false(al_hostpolicy_credentials_ok(&none, "http://10.231.0.2:5000/token"));
    assert_true(al_hostpolicy_credentials_ok(&none, "http://127.0.0.1:5000/token"));
}

static void test_plain_http_error_text(void **state)
{
    (void)state;
    assert_true(al_tls_error_is_plain_http(
        "GET https://10.231.0.2:5000/v2/: OpenSSL/3.0.15: error:0A00010B:SSL routines::wrong "
        "version number"));
    assert_true(al_tls_error_is_plain_http("error:1408F10B:SSL routines:ssl3_get_record:wrong "
                                           "version number"));
    assert_false(al_tls_error_is_plain_http("SSL certificate problem: unable to get local issuer "
                                            "certificate"));
    assert_false(al_tls_error_is_plain_http("Connection refused"));
    assert_false(al_tls_error_is_plain_http(NULL));
}

static void test_url_hostport(void **state)
{
    (void)state;
    char *hp = al_url_hostport("http://127.0.0.1:5000/v2/x");
    assert_string_equal(hp, "127.0.0.1:5000");
    free(hp);
    hp = al_url_hostport("https://auth.docker.io/token?scope=x");
    assert_string_equal(hp, "auth.docker.io");
    free(hp);
    hp = al_url_hostport("http://[::1]:8080/token");
    assert_string_equal(hp, "[::1]:8080");
    free(hp);
    assert_null(al_url_hostport("::"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_plain_http_and_credentials),
        cmocka_unit_test(test_plain_http_error_text),
        cmocka_unit_test(test_url_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
