/* Unit tests for common/platform: parsing, normalising, matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "platform.h"

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        al_errc want;
        const char *os, *arch, *variant; /* expected, normalised */
        const char *msg;                 /* substring of the error */
    } cases[] = {
        {"linux/amd64", 0, "linux", "amd64", "", NULL},
        {"linux/amd64/v1", 0, "linux", "amd64", "", NULL},
        {"linux/amd64/v2", 0, "linux", "amd64", "v2", NULL},
        {"linux/amd64/1", 0, "linux", "amd64", "", NULL},
        {"linux/x86_64", 0, "linux", "amd64", "", NULL},
        {"linux/arm64", 0, "linux", "arm64", "", NULL},
        {"linux/arm64/v8", 0, "linux", "arm64", "", NULL},
        {"linux/arm64/8", 0, "linux", "arm64", "", NULL},
        {"linux/aarch64", 0, "linux", "arm64", "", NULL},
        {"linux/aarch64/v8", 0, "linux", "arm64", "", NULL},
        {"linux/arm", 0, "linux", "arm", "v7", NULL},
        {"linux/arm/7", 0, "linux", "arm", "v7", NULL},
        {"linux/arm/v6", 0, "linux", "arm", "v6", NULL},
        {"linux/arm/6", 0, "linux", "arm", "v6", NULL},
        {"linux/armhf", 0, "linux", "arm", "v7", NULL},
        {"linux/armel", 0, "linux", "arm", "v6", NULL},
        {"linux/i386", 0, "linux", "386", "", NULL},
        {"linux/386", 0, "linux", "386", "", NULL},
        {"linux/ppc64le", 0, "linux", "ppc64le", "", NULL},
        {"linux/s390x", 0, "linux", "s390x", "", NULL},
        {"linux/riscv64", 0, "linux", "riscv64", "", NULL},
        {"windows/amd64", 0, "windows", "amd64", "", NULL},
        {"unknown/unknown", 0, "unknown", "unknown", "", NULL},
        /* a variant of an architecture without version rules is kept as is */
        {"linux/mips64le/7", 0, "linux", "mips64le", "7", NULL},
        /* bad forms */
        {"", AL_E_USAGE, NULL, NULL, NULL, "expected os/arch"},
        {"linux", AL_E_USAGE, NULL, NULL, NULL, "expected os/arch"},
        {"linux/", AL_E_USAGE, NULL, NULL, NULL, "empty architecture"},
        {"/amd64", AL_E_USAGE, NULL, NULL, NULL, "empty os"},
        {"/", AL_E_USAGE, NULL, NULL, NULL, "empty os"},
        {"linux/arm/", AL_E_USAGE, NULL, NULL, NULL, "empty variant"},
        {"linux//v7", AL_E_USAGE, NULL, NULL, NULL, "empty architecture"},
        {"linux/amd64/v8/x", AL_E_USAGE, NULL, NULL, NULL, "too many parts"},
        {"Linux/amd64", AL_E_USAGE, NULL, NULL, NULL, "lower case"},
        {"linux/AMD64", AL_E_USAGE, NULL, NULL, NULL, "lower case"},
        {"linux/arm/V7", AL_E_USAGE, NULL, NULL, NULL, "lower case"},
        {"linux/amd 64", AL_E_USAGE, NULL, NULL, NULL, "unexpected character"},
        {"linux/x86-64", AL_E_USAGE, NULL, NULL, NULL, "unexpected character '-'"},
        {"linux/amd64,linux/arm64", AL_E_USAGE, NULL, NULL, NULL, "unexpected character ','"},
        {"linux/../etc", AL_E_USAGE, NULL, NULL, NULL, "may not start with '.'"},
        {"linux/..", AL_E_USAGE, NULL, NULL, NULL, "may not start with '.'"},
        {"linux/arm/.", AL_E_USAGE, NULL, NULL, NULL, "may not start with '.'"},
        {"linux/../../x", AL_E_USAGE, NULL, NULL, NULL, "too many parts"},
        {"abcdefghijabcdefghijabcdefghij12/amd64", AL_E_USAGE, NULL, NULL, NULL, "os is too long"},
        {"abcdefghijabcdefghijabcdefghij1/amd64", 0, "abcdefghijabcdefghijabcdefghij1", "amd64", "",
         NULL},
        {"linux/abcdefghijabcdefghijabcdefghij12", AL_E_USAGE, NULL, NULL, NULL,
         "architecture is too long"},
        {"linux/arm/abcdefghijabcdef", AL_E_USAGE, NULL, NULL, NULL, "variant is too long"},
        {"linux/arm/abcdefghijabcde", 0, "linux", "arm", "abcdefghijabcde", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_error *err = NULL;
        al_platform p;
        int r = al_platform_parse(&p, cases[i].in, &err);
        if (r != (int)cases[i].want)
            fail_msg("case %zu \"%s\": got %d (%s), want %d", i, cases[i].in, r,
                     err ? err->msg : "-", cases[i].want);
        if (r == 0) {
            assert_null(err);
            assert_string_equal(p.os, cases[i].os);
            assert_string_equal(p.arch, cases[i].arch);
            assert_string_equal(p.variant, cases[i].variant);
        } else {
            assert_non_null(err);
            assert_int_equal(err->code, cases[i].want);
            if (strstr(err->msg, cases[i].msg) == NULL)
                fail_msg("case %zu \"%s\": message \"%s\" lacks \"%s\"", i, cases[i].in, err->msg,
                         cases[i].msg);
        }
        al_error_free(err);
    }
    /* err may be NULL: the code is still returned */
    al_platform p;
    assert_int_equal(al_platform_parse(&p, "linux", NULL), AL_E_USAGE);
    assert_int_equal(al_platform_parse(&p, NULL, NULL), AL_E_USAGE);
}

static void test_parse_list(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        al_errc want;
        const char *formatted[4]; /* expected entries, in order */
    } cases[] = {
        {"linux/amd64", 0, {"linux/amd64"}},
        {"linux/amd64,linux/arm64", 0, {"linux/amd64", "linux/arm64"}},
        {"linux/arm64,linux/arm64/v8,linux/aarch64", 0, {"linux/arm64"}},
        {"linux/amd64,linux/arm/v7,linux/amd64,linux/arm", 0, {"linux/amd64", "linux/arm/v7"}},
        {"linux/amd64,,linux/arm64", 0, {"linux/amd64", "linux/arm64"}},
        {",linux/amd64,", 0, {"linux/amd64"}},
        {"linux/amd64, linux/s390x", 0, {"linux/amd64", "linux/s390x"}},
        {"linux/arm/v6,linux/arm/v7,linux/arm/v8",
         0,
         {"linux/arm/v6", "linux/arm/v7", "linux/arm/v8"}},
        {"", AL_E_USAGE, {NULL}},
        {",,", AL_E_USAGE, {NULL}},
        {" , ", AL_E_USAGE, {NULL}},
        {"linux/amd64,linux", AL_E_USAGE, {NULL}},
        {"linux/amd64,Linux/arm64", AL_E_USAGE, {NULL}},
        {"linux/amd64;linux/arm64", AL_E_USAGE, {NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_error *err = NULL;
        al_platform *list = (al_platform *)&err; /* must be reset */
        size_t n = 99;
        int r = al_platform_parse_list(&list, &n, cases[i].in, &err);
        if (r != (int)cases[i].want)
            fail_msg("case %zu \"%s\": got %d (%s)", i, cases[i].in, r, err ? err->msg : "-");
        if (r == 0) {
            size_t want_n = 0;
            while (want_n < 4 && cases[i].formatted[want_n])
                want_n++;
            assert_int_equal(n, want_n);
            for (size_t k = 0; k < n; k++) {
                char buf[96];
                assert_string_equal(al_platform_format(&list[k], buf, sizeof(buf)),
                                    cases[i].formatted[k]);
            }
        } else {
            assert_null(list);
            assert_int_equal(n, 0);
            assert_non_null(err);
            assert_non_null(strstr(err->msg, "platform"));
        }
        free(list);
        al_error_free(err);
    }
}

static void test_set(void **state)
{
    (void)state;
    static const struct {
        const char *os, *arch, *variant;
        bool ok;
        const char *formatted;
    } cases[] = {
        {"linux", "amd64", NULL, true, "linux/amd64"},
        {"linux", "arm64", "v8", true, "linux/arm64"},
        {"linux", "arm", NULL, true, "linux/arm/v7"},
        {"linux", "arm", "", true, "linux/arm/v7"},
        {"linux", "arm", "v5", true, "linux/arm/v5"},
        {"Linux", "X86_64", NULL, true, "linux/amd64"}, /* JSON may carry any case */
        {"linux", "x86-64", NULL, true, "linux/amd64"},
        {"unknown", "unknown", NULL, true, "unknown/unknown"},
        {NULL, NULL, NULL, true, "/"},
        {"linux", "abcdefghijabcdefghijabcdefghij12", NULL, false, NULL},
        {"linux", "arm", "abcdefghijabcdef", false, NULL},
        {"linux", "../../x", NULL, false, NULL},
        {"linux", "amd64", "v1/x", false, NULL},
        {"linux", "..", NULL, false, NULL},
        {".", "amd64", NULL, false, NULL},
        {"lin ux", "amd64", NULL, false, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_platform p;
        bool ok = al_platform_set(&p, cases[i].os, cases[i].arch, cases[i].variant);
        if (ok != cases[i].ok)
            fail_msg("case %zu: got %d", i, ok);
        if (ok) {
            char buf[96];
            assert_string_equal(al_platform_format(&p, buf, sizeof(buf)), cases[i].formatted);
        }
    }
}

static void test_equal_unknown(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool equal;
    } cases[] = {
        {"linux/arm64", "linux/arm64/v8", true},  {"linux/arm64", "linux/aarch64", true},
        {"linux/arm", "linux/arm/v7", true},      {"linux/arm/7", "linux/armhf", true},
        {"linux/amd64", "linux/x86_64", true},    {"linux/amd64/v1", "linux/amd64", true},
        {"linux/amd64", "linux/amd64/v2", false}, {"linux/arm/v6", "linux/arm/v7", false},
        {"linux/amd64", "windows/amd64", false},  {"linux/arm64", "linux/arm", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_platform a, b;
        assert_int_equal(al_platform_parse(&a, cases[i].a, NULL), 0);
        assert_int_equal(al_platform_parse(&b, cases[i].b, NULL), 0);
        if (al_platform_equal(&a, &b) != cases[i].equal)
            fail_msg("case %zu: %s vs %s", i, cases[i].a, cases[i].b);
    }
    al_platform p;
    assert_int_equal(al_platform_parse(&p, "unknown/unknown", NULL), 0);
    assert_true(al_platform_is_unknown(&p));
    assert_int_equal(al_platform_parse(&p, "linux/unknown", NULL), 0);
    assert_false(al_platform_is_unknown(&p));
    assert_int_equal(al_platform_parse(&p, "unknown/amd64", NULL), 0);
    assert_false(al_platform_is_unknown(&p));
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        const char *in, *formatted, *tag;
    } cases[] = {
        {"linux/arm/v7", "linux/arm/v7", "arm-v7"},
        {"linux/arm", "linux/arm/v7", "arm-v7"},
        {"linux/arm/v6", "linux/arm/v6", "arm-v6"},
        {"linux/arm64/v8", "linux/arm64", "arm64"},
        {"linux/amd64", "linux/amd64", "amd64"},
        {"linux/amd64/v3", "linux/amd64/v3", "amd64-v3"},
        {"linux/i386", "linux/386", "386"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_platform p;
        char buf[96];
        assert_int_equal(al_platform_parse(&p, cases[i].in, NULL), 0);
        assert_ptr_equal(al_platform_format(&p, buf, sizeof(buf)), buf);
        assert_string_equal(buf, cases[i].formatted);
        assert_ptr_equal(al_platform_arch_tag(&p, buf, sizeof(buf)), buf);
        assert_string_equal(buf, cases[i].tag);
    }
    /* a short buffer truncates but stays terminated */
    al_platform p;
    char small[6];
    assert_int_equal(al_platform_parse(&p, "linux/arm/v7", NULL), 0);
    assert_string_equal(al_platform_format(&p, small, sizeof(small)), "linux");
}

static void test_host(void **state)
{
    (void)state;
    al_platform h;
    al_platform_host(&h);
    assert_string_equal(h.os, "linux");
    assert_true(h.arch[0] != '\0');
    /* host is already normalised: parsing its formatted form gives it back */
    char buf[96];
    al_platform again;
    assert_int_equal(al_platform_parse(&again, al_platform_format(&h, buf, sizeof(buf)), NULL), 0);
    assert_true(al_platform_equal(&h, &again));

    struct utsname u;
    assert_int_equal(uname(&u), 0);
    if (strcmp(u.machine, "x86_64") == 0) {
        assert_string_equal(h.arch, "amd64");
        assert_string_equal(h.variant, "");
    } else if (strcmp(u.machine, "aarch64") == 0) {
        assert_string_equal(h.arch, "arm64");
        assert_string_equal(h.variant, "");
    } else if (strcmp(u.machine, "armv7l") == 0) {
        assert_string_equal(h.arch, "arm");
        assert_string_equal(h.variant, "v7");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),  cmocka_unit_test(test_parse_list),
        cmocka_unit_test(test_set),    cmocka_unit_test(test_equal_unknown),
        cmocka_unit_test(test_format), cmocka_unit_test(test_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
