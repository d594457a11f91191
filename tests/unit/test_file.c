/* common/file.c: output files that appear whole beside their final name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "test-helpers.h"

/* Filesystems without RENAME_NOREPLACE, and without hard links either
 * (vfat): this binary is linked with --wrap=renameat2 and --wrap=linkat
 * (tests/CMakeLists.txt), and these stand in for them when told to. */
static int no_noreplace, no_links;
int __real_renameat2(int odir, const char *old, int ndir, const char *new_, unsigned int flags);
int __real_linkat(int odir, const char *old, int ndir, const char *new_, int flags);
int __wrap_renameat2(int odir, const char *old, int ndir, const char *new_, unsigned int flags)
{
    if (no_noreplace && flags != 0) {
        errno = EINVAL;
        return -1;
    }
    return __real_renameat2(odir, old, ndir, new_, flags);
}
int __wrap_linkat(int odir, const char *old, int ndir, const char *new_, int flags)
{
    if (no_links) {
        errno = EPERM;
        return -1;
    }
    return __real_linkat(odir, old, ndir, new_, flags);
}

typedef struct {
    char *dir;
    char *out;    /* DIR/out.tar */
    char *victim; /* DIR/victim: must keep its bytes */
} fx;

static int setup(void **state)
{
    umask(022);
    fx *f = al_xcalloc(1, sizeof(*f));
    f->dir = th_mkdtemp();
    f->out = al_xasprintf("%s/out.tar", f->dir);
    f->victim = al_xasprintf("%s/victim", f->dir);
    th_write_file(f->victim, "victim\n", 7);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    no_noreplace = no_links = 0;
    th_rm_rf(f->dir);
    free(f->dir);
    free(f->out);
    free(f->victim);
    free(f);
    return 0;
}

static void assert_content(const char *path, const char *want)
{
    char *got = th_read_file(path, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static int write_via(const char *path, bool force, const char *text, al_error **err)
{
    al_file *w = NULL;
    int r = al_file_begin(&w, path, force, err);
    if (r < 0)
        return r;
    assert_int_equal(write(al_file_fd(w), text, strlen(text)), (ssize_t)strlen(text));
    return al_file_commit(w, err);
}

/* The temp file: beside OUT, named OUT.<hex>.partial, gone after commit. */
static void test_temp_beside(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    al_file *w = NULL;
    assert_int_equal(al_file_begin(&w, f->out, false, &err), 0);
    assert_string_equal(al_file_path(w), f->out);
    assert_int_equal(th_count_entries(f->dir), 2); /* victim + temp */
    assert_int_equal(access(f->out, F_OK), -1);
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", al_file_fd(w));
    char target[4096] = "";
    assert_true(readlink(link, target, sizeof(target) - 1) > 0);
    char *prefix = al_xasprintf("%s.", f->out);
    assert_memory_equal(target, prefix, strlen(prefix));
    assert_non_null(strstr(target, ".partial"));
    assert_string_equal(target + strlen(target) - strlen(".partial"), ".partial");
    /* OUT.<16 hex>.partial: a name nobody can plant a link at beforehand. */
    assert_int_equal(strlen(target), strlen(f->out) + 1 + 16 + strlen(".partial"));
    free(prefix);
    assert_int_equal(write(al_file_fd(w), "one", 3), 3);
    assert_int_equal(al_file_commit(w, &err), 0);
    assert_content(f->out, "one");
    assert_int_equal(th_count_entries(f->dir), 2); /* victim + out */
    struct stat st;
    assert_int_equal(stat(f->out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

/* Without force an existing OUT stays, and the temp file goes. */
static void test_noreplace(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    assert_int_equal(write_via(f->out, false, "first", &err), 0);
    assert_int_equal(write_via(f->out, false, "second", &err), AL_E_IO);
    assert_non_null(strstr(err->msg, "exists"));
    assert_non_null(strstr(err->msg, f->out));
    al_error_clear(&err);
    assert_content(f->out, "first");
    assert_int_equal(th_count_entries(f->dir), 2);
    assert_int_equal(write_via(f->out, true, "third", &err), 0);
    assert_content(f->out, "third");
}

/* OUT appears while a writer writes (another process won the race): the
 * commit fails, OUT stays the winner's. */
static void test_race_lost(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    al_file *a = NULL, *b = NULL;
    assert_int_equal(al_file_begin(&a, f->out, false, &err), 0);
    assert_int_equal(al_file_begin(&b, f->out, false, &err), 0);
    assert_int_equal(write(al_file_fd(a), "a", 1), 1);
    assert_int_equal(write(al_file_fd(b), "b", 1), 1);
    assert_int_equal(al_file_commit(b, &err), 0);
    assert_int_equal(al_file_commit(a, &err), AL_E_IO);
    al_error_clear(&err);
    assert_content(f->out, "b");
    assert_int_equal(th_count_entries(f->dir), 2);
}

/* A symlink planted at OUT: never written through. Without force it is
 * "exists"; with force the link itself is replaced. */
static void test_symlink_at_out(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    assert_int_equal(symlink(f->victim, f->out), 0);
    assert_int_equal(write_via(f->out, false, "x", &err), AL_E_IO);
    al_error_clear(&err);
    assert_content(f->victim, "victim\n");
    assert_int_equal(write_via(f->out, true, "forced", &err), 0);
    assert_content(f->victim, "victim\n");
    struct stat st;
    assert_int_equal(lstat(f->out, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_content(f->out, "forced");
    /* A link planted at OUT.partial (the fixed temp name of earlier
     * versions) is no temp file of ours either. */
    char *old_tmp = al_xasprintf("%s.partial", f->out);
    assert_int_equal(symlink(f->victim, old_tmp), 0);
    assert_int_equal(write_via(f->out, true, "again", &err), 0);
    assert_content(f->victim, "victim\n");
    assert_content(f->out, "again");
    free(old_tmp);
    /* A dangling link counts as OUT too. */
    char *dangling = al_xasprintf("%s/dangling.tar", f->dir);
    char *nowhere = al_xasprintf("%s/nowhere", f->dir);
    assert_int_equal(symlink(nowhere, dangling), 0);
    assert_int_equal(write_via(dangling, false, "x", &err), AL_E_IO);
    al_error_clear(&err);
    assert_int_equal(access(nowhere, F_OK), -1);
    free(dangling);
    free(nowhere);
}

/* The fallbacks keep the promise: an existing OUT is never replaced
 * without force, and the temp file never stays behind. */
static void test_fallbacks(void **state)
{
    fx *f = *state;
    for (int mode = 1; mode <= 2; mode++) {
        no_noreplace = 1;
        no_links = mode == 2;
        al_error *err = NULL;
        char *path = al_xasprintf("%s/fallback-%d.tar", f->dir, mode);
        assert_int_equal(write_via(path, false, "first", &err), 0);
        assert_content(path, "first");
        assert_int_equal(write_via(path, false, "second", &err), AL_E_IO);
        assert_non_null(strstr(err->msg, "exists"));
        al_error_clear(&err);
        assert_content(path, "first");
        assert_int_equal(write_via(path, true, "forced", &err), 0);
        assert_content(path, "forced");
        free(path);
    }
    assert_int_equal(th_count_entries(f->dir), 3); /* victim + two outputs */
}

static void test_abort(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    al_file *w = NULL;
    assert_int_equal(al_file_begin(&w, f->out, true, &err), 0);
    assert_int_equal(th_count_entries(f->dir), 2);
    al_file_abort(w);
    assert_int_equal(th_count_entries(f->dir), 1);
    al_file_abort(NULL);

    /* abort_all (a signal handler's) removes every pending temp file. */
    al_file *a = NULL, *b = NULL;
    char *other = al_xasprintf("%s/other.tar", f->dir);
    assert_int_equal(al_file_begin(&a, f->out, false, &err), 0);
    assert_int_equal(al_file_begin(&b, other, false, &err), 0);
    assert_int_equal(th_count_entries(f->dir), 3);
    al_file_abort_all();
    assert_int_equal(th_count_entries(f->dir), 1);
    al_file_abort(a);
    al_file_abort(b);
    free(other);
}

static void test_errors(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    al_file *w = (al_file *)1;
    char *bad = al_xasprintf("%s/no/such/dir/x.tar", f->dir);
    assert_int_equal(al_file_begin(&w, bad, false, &err), AL_E_IO);
    assert_null(w);
    assert_non_null(strstr(err->msg, bad));
    al_error_clear(&err);
    free(bad);
    char *dir_only = al_xasprintf("%s/", f->dir);
    assert_int_equal(al_file_begin(&w, dir_only, false, &err), AL_E_USAGE);
    al_error_clear(&err);
    free(dir_only);
    /* write_atomic replaces, as reports and lock files want. */
    assert_int_equal(al_file_write_atomic(f->out, "r1", 2, &err), 0);
    assert_int_equal(al_file_write_atomic(f->out, "r2", 2, &err), 0);
    assert_content(f->out, "r2");
    assert_int_equal(th_count_entries(f->dir), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_temp_beside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noreplace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_at_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
