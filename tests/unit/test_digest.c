/* Unit tests for common/digest: validation and streaming SHA-256. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "digest.h"

static const char *EMPTY =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void test_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        al_errc want; /* 0 valid */
    } cases[] = {
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0},
        {"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", AL_E_PARSE},
        {"sha256:../../x", AL_E_PARSE},
        {"sha256:", AL_E_PARSE},
        {"", AL_E_PARSE},
        {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", AL_E_PARSE},
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", AL_E_PARSE},
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", AL_E_PARSE},
        {"md5:d41d8cd98f00b204e9800998ecf8427e", AL_E_PARSE},
        {"sha512:"
         "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d28"
         "77eec2f63b931bd47417a81a538327af927da3e",
         AL_E_UNSUPPORTED},
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/", AL_E_PARSE},
        {"SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", AL_E_PARSE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_error *err = NULL;
        int r = al_digest_check(cases[i].s, &err);
        assert_int_equal(r, cases[i].want);
        assert_int_equal(al_digest_valid(cases[i].s), cases[i].want == 0);
        if (r != 0) {
            assert_non_null(err);
            assert_non_null(strstr(err->msg, "digest"));
        }
        al_error_free(err);
    }
    assert_false(al_digest_valid(NULL));
}

/* Digests come from registries' JSON: their bytes are quoted in messages
 * with anything but printable ASCII replaced, so that an escape sequence
 * never reaches the terminal (found by the manifest and config fuzzers). */
static void test_message_printable(void **state)
{
    (void)state;
    static const struct {
        const char *s, *msg;
    } cases[] = {
        {"sha256:\x1b[31mred", "invalid digest \"sha256:?[31mred\": '?' is not a hex digit"},
        {"sha216:e3\x7f", "invalid digest \"sha216:e3?\": algorithm must be sha256"},
        {"\x1b]0;title\x07", "invalid digest \"?]0;title?\": missing algorithm"},
        {"sha512:\n", "unsupported digest algorithm \"sha512\" in \"sha512:?\": only sha256 is "
                      "supported"},
        {"sha256:ab\xc3\xa9", "invalid digest \"sha256:ab??\": '?' is not a hex digit"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_error *err = NULL;
        assert_true(al_digest_check(cases[i].s, &err) < 0);
        assert_non_null(err);
        assert_string_equal(err->msg, cases[i].msg);
        al_error_free(err);
    }
    /* Long input is cut at 80 bytes. */
    char long_s[200];
    memset(long_s, 'x', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    al_error *err = NULL;
    assert_true(al_digest_check(long_s, &err) < 0);
    assert_true(strlen(err->msg) < 120);
    al_error_free(err);
}

static void test_hash(void **state)
{
    (void)state;
    char out[AL_DIGEST_BUF];
    al_digest_bytes(out, "", 0);
    assert_string_equal(out, EMPTY);
    al_hasher *h = al_hasher_new();
    al_hasher_update(h, "ab", 2);
    al_hasher_update(h, "c", 1);
    assert_int_equal(al_hasher_size(h), 3);
    al_hasher_final(h, out);
    assert_string_equal(out,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* reusable after final */
    al_hasher_final(h, out);
    assert_string_equal(out, EMPTY);
    al_hasher_free(h);
    assert_string_equal(al_digest_hex(EMPTY), EMPTY + 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_message_printable),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
