/* common/store.c: nothing planted inside the store is followed, and the
 * locks (writer lock, GC lock) hold against replaced files and readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "store.h"
#include "test-helpers.h"

typedef struct {
    char *tmp;
    char *store;
    char *victim; /* outside the store: must keep its bytes */
} fx;

static const char VICTIM[] = "the victim's own bytes\n";
static const char CONTENT[] = "the blob's content, streamed in by a fetch";

static int setup(void **state)
{
    umask(022);
    fx *f = al_xcalloc(1, sizeof(*f));
    f->tmp = th_mkdtemp();
    f->store = al_xasprintf("%s/s", f->tmp);
    f->victim = al_xasprintf("%s/victim", f->tmp);
    th_write_file(f->victim, VICTIM, strlen(VICTIM));
    al_store *s = NULL;
    assert_int_equal(al_store_open(&s, f->store, AL_STORE_WRITE, NULL), 0);
    al_store_free(s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    th_rm_rf(f->tmp);
    free(f->tmp);
    free(f->store);
    free(f->victim);
    free(f);
    return 0;
}

static al_store *open_store(const fx *f, al_store_mode mode)
{
    al_store *s = NULL;
    al_error *err = NULL;
    if (al_store_open(&s, f->store, mode, &err) != 0)
        fail_msg("al_store_open: %s", err ? err->msg : "?");
    return s;
}

static void assert_victim(const fx *f)
{
    size_t len = 0;
    char *got = th_read_file(f->victim, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(VICTIM));
    assert_memory_equal(got, VICTIM, len);
    free(got);
}

static char *in_store(const fx *f, const char *rel)
{
    return al_xasprintf("%s/%s", f->store, rel);
}

static bool is_regular(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Resume a download of CONTENT over whatever plant() put at its partial
 * name; the blob must land as a regular file and the victim stay as is. */
static void resume_over(fx *f, void (*plant)(fx *f, const char *partial))
{
    char digest[AL_DIGEST_BUF];
    al_digest_bytes(digest, CONTENT, strlen(CONTENT));
    char *rel = al_xasprintf("tmp/partial-%s", al_digest_hex(digest));
    char *partial = in_store(f, rel);
    plant(f, partial);
    al_store *s = open_store(f, AL_STORE_WRITE);
    al_blob_writer *w = NULL;
    al_error *err = NULL;
    bool complete = true;
    assert_int_equal(al_store_blob_partial(&w, s, digest, (int64_t)strlen(CONTENT), &err), 0);
    assert_int_equal(al_blob_writer_rehash(w, &complete, &err), 0);
    assert_false(complete);
    assert_int_equal(al_blob_writer_resumed_at(w), 0); /* nothing of it is trusted */
    assert_victim(f);
    assert_int_equal(al_blob_writer_write(w, CONTENT, strlen(CONTENT), &err), 0);
    assert_int_equal(al_blob_writer_commit(w, &err), 0);
    assert_victim(f);
    char *blob_rel = al_xasprintf("blobs/sha256/%s", al_digest_hex(digest));
    char *blob = in_store(f, blob_rel);
    assert_true(is_regular(blob));
    char *got = th_read_file(blob, NULL);
    assert_string_equal(got, CONTENT);
    free(got);
    char *tmpdir = in_store(f, "tmp");
    assert_int_equal(th_count_entries(tmpdir), 0);
    free(tmpdir);
    free(blob);
    free(blob_rel);
    al_store_free(s);
    free(partial);
    free(rel);
}

static void plant_symlink(fx *f, const char *partial)
{
    assert_int_equal(symlink(f->victim, partial), 0);
}
static void plant_hardlink(fx *f, const char *partial)
{
    assert_int_equal(link(f->victim, partial), 0);
}
static void plant_fifo(fx *f, const char *partial)
{
    (void)f;
    assert_int_equal(mkfifo(partial, 0644), 0);
}
static void plant_dangling(fx *f, const char *partial)
{
    char *nowhere = al_xasprintf("%s/nowhere", f->tmp);
    assert_int_equal(symlink(nowhere, partial), 0);
    free(nowhere);
}

static void test_partial_symlink(void **state)
{
    resume_over(*state, plant_symlink);
}
static void test_partial_hardlink(void **state)
{
    resume_over(*state, plant_hardlink);
}
static void test_partial_fifo(void **state)
{
    resume_over(*state, plant_fifo);
}
static void test_partial_dangling(void **state)
{
    fx *f = *state;
    resume_over(f, plant_dangling);
    char *nowhere = al_xasprintf("%s/nowhere", f->tmp);
    assert_int_equal(access(nowhere, F_OK), -1); /* not created through the link */
    free(nowhere);
}

/* A symlink in blobs/sha256 named by a digest, to a file with the right
 * content: not a blob. The next write of that blob replaces the link. */
static void test_blob_symlink(void **state)
{
    fx *f = *state;
    char digest[AL_DIGEST_BUF];
    al_digest_bytes(digest, VICTIM, strlen(VICTIM));
    char *rel = al_xasprintf("blobs/sha256/%s", al_digest_hex(digest));
    char *blob = in_store(f, rel);
    assert_int_equal(symlink(f->victim, blob), 0);
    al_store *s = open_store(f, AL_STORE_WRITE);
    al_error *err = NULL;
    assert_false(al_store_has_blob(s, digest, NULL));
    assert_int_equal(al_store_blob_open(s, digest, NULL, &err), AL_E_IO);
    assert_non_null(strstr(err->msg, "symbolic link"));
    al_error_clear(&err);
    char *out = NULL;
    assert_int_equal(al_store_read_blob(s, digest, 1024, &out, NULL, &err), AL_E_IO);
    al_error_clear(&err);
    assert_int_equal(al_store_put_blob(s, digest, VICTIM, strlen(VICTIM), &err), 0);
    assert_true(is_regular(blob));
    assert_true(al_store_has_blob(s, digest, NULL));
    assert_victim(f);
    al_store_free(s);
    free(blob);
    free(rel);
}

/* Symlinks at the store's own files: refused, never followed. */
static void test_top_symlinks(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    al_store *s = NULL;
    static const char *const names[] = {"lock", "gc.lock", "oci-layout", "index.json",
                                        "airlock.db"};
    for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
        char *p = in_store(f, names[i]);
        unlink(p);
        assert_int_equal(symlink(f->victim, p), 0);
        for (int mode = 0; mode < 2; mode++) {
            /* A reader of a store without a lock file of its own is fine. */
            if (mode == AL_STORE_READONLY && (i == 0 || i == 1 || i == 3))
                continue;
            int r = al_store_open(&s, f->store, (al_store_mode)mode, &err);
            if (r == 0)
                fail_msg("%s open with a symlink at %s succeeded", mode ? "WRITE" : "READONLY",
                         names[i]);
            assert_null(s);
            assert_non_null(strstr(err->msg, names[i]));
            al_error_clear(&err);
            assert_victim(f);
        }
        /* Readers refuse it where they read it. */
        if (i == 3) {
            s = open_store(f, AL_STORE_READONLY);
            assert_int_equal(al_store_file_open(s, "index.json", NULL, &err), AL_E_IO);
            al_error_clear(&err);
            al_store_free(s);
        }
        unlink(p);
        if (i == 2 || i == 3) /* put the layout's files back for the next round */
            th_write_file(p, i == 2 ? "{\"imageLayoutVersion\":\"1.0.0\"}" : "{}", i == 2 ? 30 : 2);
        free(p);
    }
}

/* Writer lock ------------------------------------------------------------ */

typedef struct {
    const char *path;
    int hold_ms;
    int fd;
} holder;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *release_after(void *arg)
{
    holder *h = arg;
    sleep_ms(h->hold_ms);
    flock(h->fd, LOCK_UN);
    return NULL;
}

/* A reader's shared probe of STORE/lock is waited out. */
static void test_lock_waits_for_reader(void **state)
{
    fx *f = *state;
    char *lock = in_store(f, "lock");
    holder h = {lock, 300, open(lock, O_RDONLY)};
    assert_int_equal(flock(h.fd, LOCK_SH), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_after, &h), 0);
    al_store *s = open_store(f, AL_STORE_WRITE);
    pthread_join(th, NULL);
    al_store_free(s);
    close(h.fd);
    free(lock);
}

typedef struct {
    fx *f;
    int old_fd;  /* shared lock on the original lock file */
    int new_fd;  /* exclusive lock on its replacement */
    int wait_ms; /* before the swap */
} swap_args;

/* While the writer waits on the old inode (held shared), replace the lock
 * file and lock the new one exclusively, as another fetch would; then let
 * the old one go. */
static void *swap_lock(void *arg)
{
    swap_args *a = arg;
    sleep_ms(a->wait_ms);
    char *lock = in_store(a->f, "lock");
    char *fresh = in_store(a->f, "lock.new");
    th_write_file(fresh, "", 0);
    a->new_fd = open(fresh, O_RDONLY);
    flock(a->new_fd, LOCK_EX);
    rename(fresh, lock);
    flock(a->old_fd, LOCK_UN);
    free(lock);
    free(fresh);
    return NULL;
}

/* The flock was had, but on an inode the path no longer names: another
 * writer holds the file that counts, so the store is busy. */
static void test_lock_replaced(void **state)
{
    fx *f = *state;
    char *lock = in_store(f, "lock");
    swap_args a = {f, open(lock, O_RDONLY), -1, 300};
    assert_int_equal(flock(a.old_fd, LOCK_SH), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, swap_lock, &a), 0);
    al_store *s = NULL;
    al_error *err = NULL;
    int r = al_store_open(&s, f->store, AL_STORE_WRITE, &err);
    pthread_join(th, NULL);
    if (r == 0)
        fail_msg("the writer took a lock file that had been replaced while another writer held "
                 "the new one");
    assert_int_equal(r, AL_E_BUSY);
    al_error_free(err);
    close(a.old_fd);
    close(a.new_fd);
    /* Released: the new file is the lock now. */
    s = open_store(f, AL_STORE_WRITE);
    al_store_free(s);
    free(lock);
}

/* GC lock ------------------------------------------------------------------ */

typedef struct {
    fx *f;
    double took;
} reader_args;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *open_reader(void *arg)
{
    reader_args *a = arg;
    double t0 = now_s();
    al_store *r = open_store(a->f, AL_STORE_READONLY);
    a->took = now_s() - t0;
    al_store_free(r);
    return NULL;
}

static void test_gc_lock(void **state)
{
    fx *f = *state;
    al_error *err = NULL;
    al_store *w = open_store(f, AL_STORE_WRITE);
    bool locked = true;
    /* A reader holds it shared from its open to its free. */
    al_store *r = open_store(f, AL_STORE_READONLY);
    assert_int_equal(al_store_gc_try_sweep(w, &locked, &err), 0);
    assert_false(locked);
    al_store_free(r);
    assert_int_equal(al_store_gc_try_sweep(w, &locked, &err), 0);
    assert_true(locked);
    /* While a sweep holds it, a reader's open waits. */
    reader_args a = {f, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, open_reader, &a), 0);
    sleep_ms(300);
    al_store_gc_release(w);
    pthread_join(th, NULL);
    assert_true(a.took >= 0.25);
    /* Readers do not take it from each other. */
    al_store *r1 = open_store(f, AL_STORE_READONLY);
    al_store *r2 = open_store(f, AL_STORE_READONLY);
    al_store_free(r1);
    al_store_free(r2);
    /* A READONLY store cannot sweep. */
    r = open_store(f, AL_STORE_READONLY);
    assert_int_equal(al_store_gc_try_sweep(r, &locked, &err), AL_E_USAGE);
    al_error_clear(&err);
    al_store_free(r);
    al_store_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_partial_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_hardlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_dangling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_waits_for_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
