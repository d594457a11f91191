/* Unit tests for common/store: the layout, blob writers, index.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "digest.h"
#include "store.h"
#include "test-helpers.h"

typedef struct {
    char *tmp;   /* mkdtemp root, removed in teardown */
    char *store; /* TMP/s (not yet created) */
} fixture;

static int setup(void **state)
{
    umask(022);
    fixture *f = al_xcalloc(1, sizeof(*f));
    f->tmp = th_mkdtemp();
    f->store = al_xasprintf("%s/s", f->tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    th_rm_rf(f->tmp);
    free(f->tmp);
    free(f->store);
    free(f);
    return 0;
}

static al_store *open_store(const char *dir, al_store_mode mode)
{
    al_store *s = NULL;
    al_error *err = NULL;
    int r = al_store_open(&s, dir, mode, &err);
    if (r != 0)
        fail_msg("al_store_open %s: %s", dir, err ? err->msg : "?");
    return s;
}

static char *path_in(const char *dir, const char *rel)
{
    return al_xasprintf("%s/%s", dir, rel);
}

static void assert_mode(const char *dir, const char *rel, mode_t want)
{
    char *p = path_in(dir, rel);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, want);
    free(p);
}

static void assert_file_content(const char *dir, const char *rel, const char *want)
{
    char *p = path_in(dir, rel);
    char *got = th_read_file(p, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    free(p);
}

static int entries_in(const char *dir, const char *rel)
{
    char *p = path_in(dir, rel);
    int n = th_count_entries(p);
    free(p);
    return n;
}

static const char EMPTY_INDEX[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":[]}";

/* Open / create ------------------------------------------------------ */

static void test_create_layout(void **state)
{
    fixture *f = *state;
    /* A nested path whose parents do not exist yet, with a trailing slash. */
    char *nested = al_xasprintf("%s/a/b/store/", f->tmp);
    al_store *s = open_store(nested, AL_STORE_WRITE);
    char *want_dir = al_xasprintf("%s/a/b/store", f->tmp);
    assert_string_equal(al_store_dir(s), want_dir);
    char *want_db = al_xasprintf("%s/airlock.db", want_dir);
    assert_string_equal(al_store_db_path(s), want_db);

    assert_file_content(want_dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    assert_file_content(want_dir, "index.json", EMPTY_INDEX);
    static const struct {
        const char *rel;
        mode_t mode;
    } modes[] = {
        {"", 0755},           {"blobs", 0755},      {"blobs/sha256", 0755}, {"tmp", 0755},
        {"oci-layout", 0644}, {"index.json", 0644}, {"lock", 0644},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(modes); i++)
        assert_mode(want_dir, modes[i].rel, modes[i].mode);
    /* The atomic writes left nothing behind. */
    assert_int_equal(entries_in(want_dir, "tmp"), 0);
    assert_int_equal(entries_in(want_dir, "blobs/sha256"), 0);
    al_store_free(s);
    free(nested);
    free(want_dir);
    free(want_db);
}

static void test_umask_applies(void **state)
{
    fixture *f = *state;
    umask(077);
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    umask(022);
    assert_mode(f->store, "blobs", 0700);
    assert_mode(f->store, "index.json", 0600);
    al_store_free(s);
}

static void test_reopen_keeps_files(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    al_store_free(s);
    /* A reopen must not rewrite an existing index. */
    char *idx = path_in(f->store, "index.json");
    th_write_file(idx, "{\"custom\":1}", 12);
    s = open_store(f->store, AL_STORE_WRITE);
    al_store_free(s);
    s = open_store(f->store, AL_STORE_READONLY);
    al_store_free(s);
    assert_file_content(f->store, "index.json", "{\"custom\":1}");
    free(idx);
}

static void test_lock_busy(void **state)
{
    fixture *f = *state;
    al_store *a = open_store(f->store, AL_STORE_WRITE);
    for (int i = 0; i < 2; i++) { /* still busy after a failed attempt */
        al_store *b = NULL;
        al_error *err = NULL;
        assert_int_equal(al_store_open(&b, f->store, AL_STORE_WRITE, &err), AL_E_BUSY);
        assert_null(b);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "is busy: another airlock-fetch holds its lock"));
        assert_non_null(strstr(err->msg, f->store));
        al_error_free(err);
    }
    /* Readers do not take the lock. */
    al_store *r = open_store(f->store, AL_STORE_READONLY);
    al_store_free(r);
    al_store_free(a);
    /* Released by free. */
    al_store *c = open_store(f->store, AL_STORE_WRITE);
    al_store_free(c);
}

static void test_open_errors(void **state)
{
    fixture *f = *state;
    al_store *s = (al_store *)1;
    al_error *err = NULL;
    assert_int_equal(al_store_open(&s, "", AL_STORE_WRITE, &err), AL_E_USAGE);
    assert_null(s);
    al_error_clear(&err);

    /* READONLY on a missing directory: NOT_FOUND, and nothing created. */
    assert_int_equal(al_store_open(&s, f->store, AL_STORE_READONLY, &err), AL_E_NOT_FOUND);
    assert_non_null(strstr(err->msg, "not an airlock store"));
    al_error_clear(&err);
    struct stat st;
    assert_int_equal(stat(f->store, &st), -1);

    /* READONLY on a directory that is not a store. */
    assert_int_equal(mkdir(f->store, 0755), 0);
    assert_int_equal(al_store_open(&s, f->store, AL_STORE_READONLY, &err), AL_E_NOT_FOUND);
    al_error_clear(&err);
    assert_int_equal(th_count_entries(f->store), 0);

    /* WRITE where a file stands in for a directory. */
    char *blobs = path_in(f->store, "blobs");
    th_write_file(blobs, "x", 1);
    assert_int_equal(al_store_open(&s, f->store, AL_STORE_WRITE, &err), AL_E_IO);
    assert_null(s);
    al_error_clear(&err);
    free(blobs);
}

/* Blobs -------------------------------------------------------------- */

static char *make_content(size_t len, unsigned seed)
{
    char *b = al_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        b[i] = (char)((i * 31 + seed) & 0xff);
    return b;
}

static void test_blob_write_ok(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    static const struct {
        size_t len;
        size_t chunk;
        bool known_size;
    } cases[] = {
        {0, 1, true},      {0, 1, false},         {1, 1, true},           {100, 7, true},
        {100, 100, false}, {200000, 16384, true}, {200000, 65536, false}, {65536, 65536, true},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        size_t len = cases[i].len;
        char *buf = make_content(len, (unsigned)i);
        char digest[AL_DIGEST_BUF];
        al_digest_bytes(digest, buf, len);
        al_blob_writer *w = NULL;
        al_error *err = NULL;
        assert_int_equal(
            al_store_blob_begin(&w, s, digest, cases[i].known_size ? (int64_t)len : -1, &err), 0);
        assert_int_equal(entries_in(f->store, "tmp"), 1);
        for (size_t off = 0; off < len; off += cases[i].chunk) {
            size_t n = len - off < cases[i].chunk ? len - off : cases[i].chunk;
            assert_int_equal(al_blob_writer_write(w, buf + off, n, &err), 0);
            assert_int_equal(al_blob_writer_written(w), off + n);
        }
        assert_int_equal(al_blob_writer_commit(w, &err), 0);
        assert_null(err);

        int64_t size = -1;
        assert_true(al_store_has_blob(s, digest, &size));
        assert_true(al_store_has_blob(s, digest, NULL));
        assert_int_equal(size, (int64_t)len);
        char *path = al_store_blob_path(s, digest, &err);
        char *want = al_xasprintf("%s/blobs/sha256/%s", f->store, al_digest_hex(digest));
        assert_string_equal(path, want);
        size_t got_len = 0;
        char *got = th_read_file(path, &got_len);
        assert_int_equal(got_len, len);
        assert_memory_equal(got, buf, len);
        assert_int_equal(entries_in(f->store, "tmp"), 0);

        /* Writing the same blob again succeeds (existing target). */
        assert_int_equal(al_store_put_blob(s, digest, buf, len, &err), 0);
        assert_true(al_store_has_blob(s, digest, NULL));
        free(got);
        free(path);
        free(want);
        free(buf);
    }
    assert_int_equal(entries_in(f->store, "blobs/sha256"), 7); /* distinct contents */
    assert_int_equal(entries_in(f->store, "tmp"), 0);
    al_store_free(s);
}

static void test_blob_digest_mismatch(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    char want[AL_DIGEST_BUF], actual[AL_DIGEST_BUF];
    al_digest_bytes(want, "hello", 5);
    al_digest_bytes(actual, "hellO", 5);
    for (int known = 0; known < 2; known++) {
        al_blob_writer *w = NULL;
        al_error *err = NULL;
        assert_int_equal(al_store_blob_begin(&w, s, want, known ? 5 : -1, &err), 0);
        assert_int_equal(al_blob_writer_write(w, "hel", 3, &err), 0);
        assert_int_equal(al_blob_writer_write(w, "lO", 2, &err), 0);
        assert_int_equal(al_blob_writer_commit(w, &err), AL_E_DIGEST);
        char *msg = al_xasprintf("digest mismatch: expected %s, got %s", want, actual);
        assert_string_equal(err->msg, msg);
        free(msg);
        al_error_free(err);
        assert_false(al_store_has_blob(s, want, NULL));
        assert_false(al_store_has_blob(s, actual, NULL));
        assert_int_equal(entries_in(f->store, "blobs/sha256"), 0);
        assert_int_equal(entries_in(f->store, "tmp"), 0);
    }
    /* put_blob goes through the same check. */
    al_error *err = NULL;
    assert_int_equal(al_store_put_blob(s, want, "hellO", 5, &err), AL_E_DIGEST);
    al_error_free(err);
    assert_int_equal(entries_in(f->store, "blobs/sha256"), 0);
    assert_int_equal(entries_in(f->store, "tmp"), 0);
    al_store_free(s);
}

static void test_blob_size(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    char digest[AL_DIGEST_BUF];
    al_digest_bytes(digest, "0123456789", 10);
    static const struct {
        int64_t expected;
        const char *chunks[3];
        int fail_at_write; /* index of the chunk whose write fails, -1: commit fails */
        const char *msg;
    } cases[] = {
        /* More than announced: refused by the write that crosses it. */
        {5, {"0123", "456789", NULL}, 1, "size mismatch: expected 5 bytes, got at least 10"},
        {0, {"0", NULL, NULL}, 0, "size mismatch: expected 0 bytes, got at least 1"},
        {9, {"012345678", "9", NULL}, 1, "size mismatch: expected 9 bytes, got at least 10"},
        /* Fewer than announced: caught at commit. */
        {11, {"0123456789", NULL, NULL}, -1, "size mismatch: expected 11 bytes, got 10"},
        {20, {"01234", NULL, NULL}, -1, "size mismatch: expected 20 bytes, got 5"},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_blob_writer *w = NULL;
        al_error *err = NULL;
        assert_int_equal(al_store_blob_begin(&w, s, digest, cases[i].expected, &err), 0);
        int r = 0;
        int j;
        for (j = 0; j < 3 && cases[i].chunks[j] != NULL; j++) {
            r = al_blob_writer_write(w, cases[i].chunks[j], strlen(cases[i].chunks[j]), &err);
            if (r < 0)
                break;
        }
        if (cases[i].fail_at_write >= 0) {
            assert_int_equal(r, AL_E_SIZE);
            assert_int_equal(j, cases[i].fail_at_write);
            /* The refused bytes were not counted. */
            assert_true(al_blob_writer_written(w) <= (uint64_t)cases[i].expected);
            al_blob_writer_abort(w);
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(al_blob_writer_commit(w, &err), AL_E_SIZE);
        }
        assert_string_equal(err->msg, cases[i].msg);
        al_error_free(err);
        assert_int_equal(entries_in(f->store, "blobs/sha256"), 0);
        assert_int_equal(entries_in(f->store, "tmp"), 0);
    }
    al_blob_writer_abort(NULL);
    al_store_free(s);
}

static void test_invalid_digest(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    char *before = th_snapshot(f->tmp);
    static const char *bad[] = {
        "sha256:../../x",
        "sha256:../../../../../../tmp/evil",
        "",
        "sha256:",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha512:"
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d287"
        "7eec2f63b931bd47417a81a538327af927da3e",
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(bad); i++) {
        al_error *err = NULL;
        assert_null(al_store_blob_path(s, bad[i], &err));
        assert_non_null(err);
        assert_true(err->code == AL_E_PARSE || err->code == AL_E_UNSUPPORTED);
        al_error_clear(&err);

        assert_false(al_store_has_blob(s, bad[i], NULL));

        al_blob_writer *w = (al_blob_writer *)1;
        assert_true(al_store_blob_begin(&w, s, bad[i], 1, &err) < 0);
        assert_null(w);
        assert_non_null(strstr(err->msg, "digest"));
        al_error_clear(&err);

        assert_true(al_store_put_blob(s, bad[i], "x", 1, &err) < 0);
        al_error_clear(&err);

        char *out = (char *)1;
        assert_true(al_store_read_blob(s, bad[i], 100, &out, NULL, &err) < 0);
        assert_null(out);
        al_error_clear(&err);
    }
    assert_false(al_store_has_blob(s, NULL, NULL));
    /* Nothing anywhere changed: no temp file, no stray "x". */
    char *after = th_snapshot(f->tmp);
    assert_string_equal(before, after);
    free(before);
    free(after);
    al_store_free(s);
}

static void test_read_blob(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    const char *content = "{\"schemaVersion\":2}";
    size_t len = strlen(content);
    char digest[AL_DIGEST_BUF];
    al_digest_bytes(digest, content, len);
    al_error *err = NULL;
    assert_int_equal(al_store_put_blob(s, digest, content, len, &err), 0);

    static const struct {
        size_t cap;
        int want;
    } caps[] = {{1 << 20, 0}, {19, 0}, {18, AL_E_SIZE}, {0, AL_E_SIZE}};
    for (size_t i = 0; i < AL_ARRAY_SIZE(caps); i++) {
        char *out = NULL;
        size_t got = 123;
        assert_int_equal(al_store_read_blob(s, digest, caps[i].cap, &out, &got, &err),
                         caps[i].want);
        if (caps[i].want == 0) {
            assert_int_equal(got, len);
            assert_string_equal(out, content); /* NUL-terminated */
            free(out);
        } else {
            assert_null(out);
            assert_non_null(strstr(err->msg, "more than the"));
            al_error_clear(&err);
        }
    }

    /* Missing blob. */
    char other[AL_DIGEST_BUF];
    al_digest_bytes(other, "nope", 4);
    char *out = NULL;
    assert_int_equal(al_store_read_blob(s, other, 100, &out, NULL, &err), AL_E_NOT_FOUND);
    al_error_clear(&err);

    /* Flip one byte in place: same size, wrong content. */
    char *path = al_store_blob_path(s, digest, &err);
    char *bytes = th_read_file(path, NULL);
    bytes[5] ^= 0x01;
    chmod(path, 0644);
    th_write_file(path, bytes, len);
    char actual[AL_DIGEST_BUF];
    al_digest_bytes(actual, bytes, len);
    assert_int_equal(al_store_read_blob(s, digest, 100, &out, NULL, &err), AL_E_DIGEST);
    assert_null(out);
    char *msg = al_xasprintf("blob %s is corrupt: content hashes to %s", digest, actual);
    assert_string_equal(err->msg, msg);
    al_error_clear(&err);
    /* has_blob does not hash: it still says present. */
    assert_true(al_store_has_blob(s, digest, NULL));
    /* Rewriting the verified content heals it. */
    assert_int_equal(al_store_put_blob(s, digest, content, len, &err), 0);
    assert_int_equal(al_store_read_blob(s, digest, 100, &out, NULL, &err), 0);
    free(out);

    /* A directory in place of a blob is not a blob. */
    char *dpath = al_store_blob_path(s, other, &err);
    assert_int_equal(mkdir(dpath, 0755), 0);
    assert_false(al_store_has_blob(s, other, NULL));
    assert_int_equal(al_store_read_blob(s, other, 100, &out, NULL, &err), AL_E_IO);
    al_error_clear(&err);
    free(dpath);
    free(msg);
    free(bytes);
    free(path);
    al_store_free(s);
}

/* index.json --------------------------------------------------------- */

static void test_write_index(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    const char *d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const char *d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    al_index_entry entries[] = {
        {"application/vnd.oci.image.index.v1+json", d1, 1609, "docker.io/library/busybox:1.36",
         "1.36"},
        {"application/vnd.docker.distribution.manifest.v2+json", d2, 527,
         "docker.io/library/alpine@" /* digest ref: no ref name */, NULL},
    };
    al_error *err = NULL;
    assert_int_equal(al_store_write_index(s, entries, 2, &err), 0);
    const char *want =
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
        "\"manifests\":["
        "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
        "\"digest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\","
        "\"size\":1609,\"annotations\":{\"io.containerd.image.name\":"
        "\"docker.io/library/busybox:1.36\",\"org.opencontainers.image.ref.name\":\"1.36\"}},"
        "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"digest\":\"sha256:2222222222222222222222222222222222222222222222222222222222222222\","
        "\"size\":527,\"annotations\":{\"io.containerd.image.name\":"
        "\"docker.io/library/alpine@\"}}]}";
    assert_file_content(f->store, "index.json", want);
    assert_mode(f->store, "index.json", 0644);
    assert_int_equal(entries_in(f->store, "tmp"), 0);

    /* It parses and the same input gives the same bytes. */
    char *p = path_in(f->store, "index.json");
    json_error_t jerr;
    json_t *j = json_load_file(p, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "manifests")), 2);
    json_decref(j);
    assert_int_equal(al_store_write_index(s, entries, 2, &err), 0);
    assert_file_content(f->store, "index.json", want);

    /* An invalid entry fails before anything is written. */
    al_index_entry bad[] = {entries[0], entries[1]};
    bad[1].digest = "sha256:../../x";
    assert_int_equal(al_store_write_index(s, bad, 2, &err), AL_E_PARSE);
    assert_non_null(strstr(err->msg, "index.json"));
    al_error_clear(&err);
    bad[1] = entries[1];
    bad[1].media_type = NULL;
    assert_int_equal(al_store_write_index(s, bad, 2, &err), AL_E_USAGE);
    al_error_clear(&err);
    bad[1] = entries[1];
    bad[1].full_name = "\xff\xfe";
    assert_int_equal(al_store_write_index(s, bad, 2, &err), AL_E_USAGE);
    al_error_clear(&err);
    assert_file_content(f->store, "index.json", want);

    /* Back to empty. */
    assert_int_equal(al_store_write_index(s, NULL, 0, &err), 0);
    assert_file_content(f->store, "index.json", EMPTY_INDEX);
    assert_int_equal(entries_in(f->store, "tmp"), 0);
    free(p);
    al_store_free(s);
}

/* Read-only ---------------------------------------------------------- */

typedef struct {
    const char *store;
    const char *digest;
    const char *content;
} ro_args;

/* Runs (possibly in an unprivileged child) against a chmod a-w store.
 * Returns 0 when every check passes, else the number of the failing one. */
static int readonly_checks(void *arg)
{
    ro_args *a = arg;
    al_store *s = NULL;
    al_error *err = NULL;
    int rc = 0;
    char *dir = al_xstrdup(a->store);
    char *tmp = al_xasprintf("%s/tmp", a->store);
    if (access(dir, W_OK) == 0 || access(tmp, W_OK) == 0)
        rc = 1; /* the test setup itself is wrong: writes would succeed */
    else if (al_store_open(&s, a->store, AL_STORE_READONLY, &err) != 0)
        rc = 2;
    else if (!al_store_has_blob(s, a->digest, NULL))
        rc = 3;
    else {
        char *out = NULL;
        if (al_store_read_blob(s, a->digest, 1024, &out, NULL, &err) != 0 ||
            strcmp(out, a->content) != 0)
            rc = 4;
        free(out);
        al_blob_writer *w = NULL;
        if (rc == 0 && al_store_blob_begin(&w, s, a->digest, 1, &err) != AL_E_USAGE)
            rc = 5;
        al_error_clear(&err);
        if (rc == 0 && al_store_write_index(s, NULL, 0, &err) != AL_E_USAGE)
            rc = 6;
        al_error_clear(&err);
        /* A WRITE open must fail, not half-create anything. */
        al_store *wr = NULL;
        if (rc == 0 && al_store_open(&wr, a->store, AL_STORE_WRITE, &err) == 0)
            rc = 7;
        al_store_free(wr);
    }
    al_error_free(err);
    al_store_free(s);
    free(dir);
    free(tmp);
    return rc;
}

static void test_readonly_copy(void **state)
{
    fixture *f = *state;
    al_store *s = open_store(f->store, AL_STORE_WRITE);
    const char *content = "config";
    char digest[AL_DIGEST_BUF];
    al_digest_bytes(digest, content, strlen(content));
    al_error *err = NULL;
    assert_int_equal(al_store_put_blob(s, digest, content, strlen(content), &err), 0);
    al_store_free(s);

    /* Without chmod: a READONLY open and reads create nothing. */
    char *before = th_snapshot(f->tmp);
    ro_args a = {f->store, digest, content};
    s = open_store(f->store, AL_STORE_READONLY);
    assert_true(al_store_has_blob(s, digest, NULL));
    char *out = NULL;
    assert_int_equal(al_store_read_blob(s, digest, 100, &out, NULL, &err), 0);
    free(out);
    al_store_free(s);
    char *after = th_snapshot(f->tmp);
    assert_string_equal(before, after);
    free(after);

    /* chmod -R a-w, as a copy on read-only media would be. Root writes
     * through permission bits, so as root the checks run in a child that
     * dropped to nobody. */
    th_make_readonly(f->store);
    free(before);
    before = th_snapshot(f->tmp);
    int rc = th_run_unprivileged(readonly_checks, &a);
    if (rc == 77) {
        free(before);
        skip();
    }
    assert_int_equal(rc, 0);
    after = th_snapshot(f->tmp);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_umask_applies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_write_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_digest_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
