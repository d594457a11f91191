/* Unit tests for common/sanitize.c: controls and bad UTF-8 escaped, cap on whole units. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"

static void test_table(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"manifest unknown", "manifest unknown"},
        {"", ""},
        /* C0 controls, DEL */
        {"a\x1b[31mred", "a\\x1b[31mred"},
        {"x\nFAKE: ok", "x\\x0aFAKE: ok"},
        {"cr\rlf", "cr\\x0dlf"},
        {"tab\there", "tab\\x09here"},
        {"del\x7f", "del\\x7f"},
        {"bell\a", "bell\\x07"},
        /* valid UTF-8 stays */
        {"caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x90\xb3", "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x90\xb3"},
        {"\xc2\xa0nbsp", "\xc2\xa0nbsp"},
        /* C1 controls in UTF-8: CSI U+009B, NEL U+0085 */
        {"\xc2\x9b"
         "31m",
         "\\xc2\\x9b31m"},
        {"\xc2\x85", "\\xc2\\x85"},
        /* raw C1 bytes (not UTF-8) */
        {"\x9b"
         "2J",
         "\\x9b2J"},
        /* invalid UTF-8: stray continuation, overlong, surrogate, > U+10FFFF, cut short */
        {"\x80", "\\x80"},
        {"\xc0\xaf", "\\xc0\\xaf"},
        {"\xe0\x80\xaf", "\\xe0\\x80\\xaf"},
        {"\xed\xa0\x80", "\\xed\\xa0\\x80"},
        {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},
        {"\xe2\x86", "\\xe2\\x86"},
        {"\xe2\x86x", "\\xe2\\x86x"},
        {"\xff", "\\xff"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = al_sanitize(cases[i].in, 1000);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
        free(got);
    }
}

static void test_null_and_nul_bytes(void **state)
{
    (void)state;
    char *s = al_sanitize(NULL, 10);
    assert_string_equal(s, "");
    free(s);
    s = al_sanitize_n("a\0b", 3, 100);
    assert_string_equal(s, "a\\x00b");
    free(s);
}

/* The cap counts output bytes and never cuts a character or an escape. */
static void test_cap(void **state)
{
    (void)state;
    char *s = al_sanitize("abcdefghij", 4);
    assert_string_equal(s, "abcd...");
    free(s);
    s = al_sanitize("abcd", 4);
    assert_string_equal(s, "abcd");
    free(s);
    s = al_sanitize("ab\x1b", 5); /* the escape needs 4 bytes: only "ab" fit */
    assert_string_equal(s, "ab...");
    free(s);
    s = al_sanitize("a\xe2\x86\x92", 3); /* the arrow needs 3 bytes: only "a" fits */
    assert_string_equal(s, "a...");
    free(s);
    s = al_sanitize("\x1b\x1b\x1b", 0);
    assert_string_equal(s, "...");
    free(s);
}

/* Whatever the input, the output holds no control byte (no byte below 0x20,
 * no DEL, no C1 in UTF-8 form), and it is clean: sanitised again it stays
 * the same, so every byte >= 0x80 left is part of valid UTF-8. */
static void test_every_byte(void **state)
{
    (void)state;
    unsigned char in[512];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 7 + 3);
    char *s = al_sanitize_n((const char *)in, sizeof(in), 100000);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        assert_true(*p >= 0x20 && *p != 0x7f);
        if (*p == 0xc2)
            assert_false(p[1] >= 0x80 && p[1] <= 0x9f);
    }
    char *again = al_sanitize(s, 100000);
    assert_string_equal(again, s);
    free(again);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_null_and_nul_bytes),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
