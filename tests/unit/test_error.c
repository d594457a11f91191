/* Unit tests for common/error.c: the one exit mapping, copy, demote, wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

/* README, "Exit status": 2 usage or input, 3 store unusable, 1 any other
 * failure. Every code is listed, so a new one must be placed here. */
static void test_exit_mapping(void **state)
{
    (void)state;
    static const struct {
        al_errc code;
        int exit;
    } cases[] = {
        {AL_OK, 0},     {AL_E_USAGE, 2},       {AL_E_IO, 1},     {AL_E_NET, 1},  {AL_E_HTTP, 1},
        {AL_E_AUTH, 1}, {AL_E_NOT_FOUND, 1},   {AL_E_DIGEST, 1}, {AL_E_SIZE, 1}, {AL_E_PARSE, 1},
        {AL_E_DB, 3},   {AL_E_UNSUPPORTED, 1}, {AL_E_BUSY, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(al_errc_exit(cases[i].code), cases[i].exit);
    assert_int_equal(AL_EXIT_OK, 0);
    assert_int_equal(AL_EXIT_FAILED, 1);
    assert_int_equal(AL_EXIT_USAGE, 2);
    assert_int_equal(AL_EXIT_STORE, 3);
}

static void test_copy(void **state)
{
    (void)state;
    assert_null(al_error_copy(NULL));
    al_error *e = NULL;
    al_error_set(&e, AL_E_AUTH, 13, "token");
    al_error *c = al_error_copy(e);
    assert_ptr_not_equal(c, e);
    assert_ptr_not_equal(c->msg, e->msg);
    assert_int_equal(c->code, AL_E_AUTH);
    assert_int_equal(c->sys_errno, 13);
    assert_string_equal(c->msg, e->msg);
    al_error_free(e); /* the copy lives on its own */
    assert_int_equal(al_error_wrap(&c, "registry"), AL_E_AUTH);
    assert_non_null(strstr(c->msg, "registry: token: "));
    al_error_free(c);
}

/* Demoted: one "warning:" line on stderr, and the error is gone. */
static void test_demote(void **state)
{
    (void)state;
    char path[] = "/tmp/al-test-error-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    al_log_set_prog("t");
    al_error *e = NULL;
    al_error_set(&e, AL_E_PARSE, 0, "skipping tag \"x\"");
    al_error_demote(&e);
    al_error_demote(&e); /* nothing left: nothing printed */
    al_error_demote(NULL);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_null(e);
    char buf[256] = "";
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    assert_string_equal(buf, "t: warning: skipping tag \"x\"\n");
    close(fd);
    unlink(path);
}

/* A caller that wants no details passes NULL; the failure is still a
 * failure, and not the user's usage error (exit 2). */
static void test_wrap_null(void **state)
{
    (void)state;
    int r = al_error_wrap(NULL, "ctx");
    assert_true(r < 0);
    assert_int_not_equal(r, AL_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_mapping),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_demote),
        cmocka_unit_test(test_wrap_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
