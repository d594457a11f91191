/* The OCI layout on disk (see store.h and STYLE.md "Storage rules").
 *
 * Everything that lands in the store goes through a uniquely named temp
 * file in STORE/tmp (same filesystem as its destination), is fsync'd, and
 * is renamed into place; the destination directory is then fsync'd so the
 * rename itself survives a crash. A reader therefore sees either the old
 * file or the complete new one, never a torn write. */
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define DIR_MODE 0755
#define FILE_MODE 0644

static const char OCI_LAYOUT_JSON[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
static const char EMPTY_INDEX_JSON[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":[]}";

struct al_store {
    char *dir;
    char *db_path;
    char *blobs_dir; /* STORE/blobs/sha256 */
    char *tmp_dir;   /* STORE/tmp */
    al_store_mode mode;
    int lock_fd; /* -1 in READONLY mode */
};

struct al_blob_writer {
    al_store *store; /* borrowed */
    char digest[AL_DIGEST_BUF];
    int64_t expected_size; /* < 0: unknown */
    int fd;
    char *tmp_path;
    al_hasher *hasher;
    uint64_t resumed_at; /* bytes of the partial file kept (hashed) when writing began */
    uint64_t on_disk;    /* size of the partial file when the writer was made */
    bool resumable;      /* tmp_path is STORE/tmp/partial-<hex>, kept by suspend */
    bool verified;       /* size and digest checked: the hasher is finished */
};

/* Small helpers ------------------------------------------------------ */

static int fsync_dir(const char *dir, al_error **err)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open directory %s", dir);
    if (fsync(fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "fsync directory %s", dir);
    return 0;
}

static int mkdir_one(const char *path, al_error **err)
{
    /* stat first: on a read-only filesystem or an unwritable parent,
     * mkdir of an existing directory may fail with EROFS/EACCES. */
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return al_error_set(err, AL_E_IO, ENOTDIR, "create directory %s", path);
        return 0;
    }
    if (mkdir(path, DIR_MODE) < 0 && errno != EEXIST)
        return al_error_set(err, AL_E_IO, errno, "create directory %s", path);
    return 0;
}

/* mkdir -p: the store directory may be given as a path whose parents do
 * not exist yet (first fetch into a new location). */
static int mkdir_parents(const char *path, al_error **err)
{
    _cleanup_free_ char *p = al_xstrdup(path);
    for (char *c = p + 1; *c != '\0'; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        int r = mkdir_one(p, err);
        *c = '/';
        if (r < 0)
            return r;
    }
    return mkdir_one(p, err);
}

/* Create a new file with a unique name under dir. We do not use mkstemp
 * because it forces mode 0600; store files are 0644 minus the umask like
 * any other file the user creates. */
static int open_unique(const char *dir, const char *prefix, char **path_out, al_error **err)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            rnd =
                (uint64_t)getpid() * 2654435761u ^ (uint64_t)(al_mono() * 1e9) ^ (uint64_t)attempt;
        char *path = al_xasprintf("%s/%s.%016llx.tmp", dir, prefix, (unsigned long long)rnd);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
        if (fd >= 0) {
            *path_out = path;
            return fd;
        }
        int e = errno;
        free(path);
        if (e != EEXIST)
            return al_error_set(err, AL_E_IO, e, "create temp file in %s", dir);
    }
    return al_error_set(err, AL_E_IO, EEXIST, "create temp file in %s", dir);
}

/* Fill, fsync and close a fresh temp file. Closes fd in all cases. */
static int fill_and_close(int fd, const char *path, const void *buf, size_t len, al_error **err)
{
    int r = al_write_all(fd, buf, len);
    if (r < 0) {
        close(fd);
        return al_error_set(err, AL_E_IO, -r, "write %s", path);
    }
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return al_error_set(err, AL_E_IO, e, "fsync %s", path);
    }
    if (close(fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "close %s", path);
    return 0;
}

/* Write a small file at STORE/name atomically: temp in STORE/tmp, fsync,
 * rename, fsync STORE. */
static int write_file_atomic(al_store *s, const char *name, const void *buf, size_t len,
                             al_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *dst = al_xasprintf("%s/%s", s->dir, name);
    int fd = open_unique(s->tmp_dir, name, &tmp, err);
    if (fd < 0) {
        al_error_wrap(err, "write %s", dst);
        return fd;
    }
    int r = fill_and_close(fd, tmp, buf, len, err);
    if (r == 0 && rename(tmp, dst) < 0)
        r = al_error_set(err, AL_E_IO, errno, "rename %s to %s", tmp, dst);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_dir(s->dir, err);
}

static int require_write(const al_store *s, al_error **err)
{
    if (s->mode != AL_STORE_WRITE)
        return al_error_set(err, AL_E_USAGE, 0, "store %s is open read-only", s->dir);
    return 0;
}

/* Open / free -------------------------------------------------------- */

static int open_write(al_store *s, al_error **err)
{
    int r = mkdir_parents(s->dir, err);
    if (r < 0)
        return r;

    /* Take the lock before creating anything else, so two fetches racing
     * to create a new store do not both write its files. */
    _cleanup_free_ char *lock_path = al_xasprintf("%s/lock", s->dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
    if (s->lock_fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open %s", lock_path);
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return al_error_set(err, AL_E_BUSY, 0,
                                "store %s is busy: another airlock-fetch holds its lock", s->dir);
        return al_error_set(err, AL_E_IO, errno, "lock %s", lock_path);
    }

    _cleanup_free_ char *blobs = al_xasprintf("%s/blobs", s->dir);
    if ((r = mkdir_one(blobs, err)) < 0 || (r = mkdir_one(s->blobs_dir, err)) < 0 ||
        (r = mkdir_one(s->tmp_dir, err)) < 0)
        return r;

    /* index.json first, oci-layout last: a READONLY open recognises a
     * store by its oci-layout, so that file appears only once the rest
     * is in place. */
    static const struct {
        const char *name;
        const char *content;
    } files[] = {
        {"index.json", EMPTY_INDEX_JSON},
        {"oci-layout", OCI_LAYOUT_JSON},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *path = al_xasprintf("%s/%s", s->dir, files[i].name);
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (!S_ISREG(st.st_mode))
                return al_error_set(err, AL_E_IO, 0, "%s is not a regular file", path);
            continue;
        }
        if (errno != ENOENT)
            return al_error_set(err, AL_E_IO, errno, "stat %s", path);
        r = write_file_atomic(s, files[i].name, files[i].content, strlen(files[i].content), err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int open_readonly(al_store *s, al_error **err)
{
    /* Nothing may be created here: the store may be a read-only copy. */
    _cleanup_free_ char *layout = al_xasprintf("%s/oci-layout", s->dir);
    struct stat st;
    if (stat(layout, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return al_error_set(err, AL_E_NOT_FOUND, 0,
                                "%s is not an airlock store (no oci-layout)", s->dir);
        return al_error_set(err, AL_E_IO, errno, "stat %s", layout);
    }
    if (!S_ISREG(st.st_mode))
        return al_error_set(err, AL_E_IO, 0, "%s is not a regular file", layout);
    return 0;
}

int al_store_open(al_store **out, const char *dir, al_store_mode mode, al_error **err)
{
    *out = NULL;
    if (dir == NULL || *dir == '\0')
        return al_error_set(err, AL_E_USAGE, 0, "store directory is empty");
    al_store *s = al_xcalloc(1, sizeof(*s));
    /* Drop trailing slashes so joined paths read cleanly ("/" stays). */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    s->dir = al_xstrndup(dir, n);
    s->db_path = al_xasprintf("%s/airlock.db", s->dir);
    s->blobs_dir = al_xasprintf("%s/blobs/sha256", s->dir);
    s->tmp_dir = al_xasprintf("%s/tmp", s->dir);
    s->mode = mode;
    s->lock_fd = -1;
    int r = mode == AL_STORE_WRITE ? open_write(s, err) : open_readonly(s, err);
    if (r < 0) {
        al_store_free(s);
        return r;
    }
    *out = s;
    return 0;
}

void al_store_free(al_store *s)
{
    if (s == NULL)
        return;
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->dir);
    free(s->db_path);
    free(s->blobs_dir);
    free(s->tmp_dir);
    free(s);
}

const char *al_store_dir(const al_store *s)
{
    return s->dir;
}

const char *al_store_db_path(const al_store *s)
{
    return s->db_path;
}

char *al_store_blob_path(const al_store *s, const char *digest, al_error **err)
{
    if (al_digest_check(digest, err) < 0)
        return NULL;
    return al_xasprintf("%s/%s", s->blobs_dir, al_digest_hex(digest));
}

bool al_store_has_blob(const al_store *s, const char *digest, int64_t *size_out)
{
    if (!al_digest_valid(digest))
        return false;
    _cleanup_free_ char *path = al_xasprintf("%s/%s", s->blobs_dir, al_digest_hex(digest));
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    if (size_out != NULL)
        *size_out = (int64_t)st.st_size;
    return true;
}

/* Blob writer -------------------------------------------------------- */

int al_store_blob_begin(al_blob_writer **out, al_store *s, const char *digest,
                        int64_t expected_size, al_error **err)
{
    *out = NULL;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    if ((r = require_write(s, err)) < 0)
        return r;
    al_blob_writer *w = al_xcalloc(1, sizeof(*w));
    w->store = s;
    memcpy(w->digest, digest, AL_DIGEST_BUF);
    w->expected_size = expected_size;
    /* The prefix names the blob so a stray temp file can be told apart. */
    char prefix[24];
    snprintf(prefix, sizeof(prefix), "blob-%.12s", al_digest_hex(digest));
    w->fd = open_unique(s->tmp_dir, prefix, &w->tmp_path, err);
    if (w->fd < 0) {
        int e = w->fd;
        free(w);
        return e;
    }
    w->hasher = al_hasher_new();
    *out = w;
    return 0;
}

static int open_partial(al_blob_writer *w, al_error **err);

int al_blob_writer_write(al_blob_writer *w, const void *buf, size_t len, al_error **err)
{
    if (w->fd < 0 && w->resumable) {
        int r = open_partial(w, err);
        if (r < 0)
            return r;
    }
    uint64_t have = al_hasher_size(w->hasher);
    if (w->expected_size >= 0 && (uint64_t)w->expected_size - have < len)
        return al_error_set(err, AL_E_SIZE, 0,
                            "size mismatch: expected %lld bytes, got at least %llu",
                            (long long)w->expected_size, (unsigned long long)(have + len));
    int r = al_write_all(w->fd, buf, len);
    if (r < 0)
        return al_error_set(err, AL_E_IO, -r, "write %s", w->tmp_path);
    al_hasher_update(w->hasher, buf, len);
    return 0;
}

/* Hash the first `len` bytes of the partial file into w's hasher; a
 * short read means the file changed under us. */
static int rehash_prefix(al_blob_writer *w, uint64_t len, al_error **err)
{
    _cleanup_close_ int fd = open(w->tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open %s", w->tmp_path);
    size_t bufsize = 1024 * 1024;
    _cleanup_free_ char *buf = al_xmalloc(bufsize);
    uint64_t left = len;
    while (left > 0) {
        ssize_t n = read(fd, buf, left < bufsize ? (size_t)left : bufsize);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return al_error_set(err, AL_E_IO, n < 0 ? errno : EIO, "read %s", w->tmp_path);
        al_hasher_update(w->hasher, buf, (size_t)n);
        left -= (uint64_t)n;
    }
    return 0;
}

int al_store_blob_partial(al_blob_writer **out, al_store *s, const char *digest,
                          int64_t expected_size, al_error **err)
{
    *out = NULL;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    if ((r = require_write(s, err)) < 0)
        return r;
    al_blob_writer *w = al_xcalloc(1, sizeof(*w));
    w->store = s;
    memcpy(w->digest, digest, AL_DIGEST_BUF);
    w->expected_size = expected_size;
    w->resumable = true;
    w->fd = -1; /* created at the first byte: a 404 leaves nothing behind */
    w->hasher = al_hasher_new();
    w->tmp_path = al_xasprintf("%s/partial-%s", s->tmp_dir, al_digest_hex(digest));
    struct stat st;
    if (lstat(w->tmp_path, &st) == 0 && S_ISREG(st.st_mode))
        w->on_disk = (uint64_t)st.st_size;
    *out = w;
    return 0;
}

uint64_t al_blob_writer_on_disk(const al_blob_writer *w)
{
    return w->on_disk;
}

int al_blob_writer_rehash(al_blob_writer *w, bool *complete, al_error **err)
{
    *complete = false;
    al_hasher_reset(w->hasher);
    w->resumed_at = 0;
    uint64_t have = w->on_disk;
    if (have == 0)
        return 0;
    /* Longer than the blob: not a prefix worth keeping. */
    if (w->expected_size < 0 || have > (uint64_t)w->expected_size) {
        w->on_disk = 0;
        return 0;
    }
    int r = rehash_prefix(w, have, err);
    if (r < 0) {
        al_hasher_reset(w->hasher);
        w->on_disk = 0;
        return r;
    }
    w->resumed_at = have;
    if (have == (uint64_t)w->expected_size) {
        char actual[AL_DIGEST_BUF];
        al_hasher_final(w->hasher, actual);
        *complete = w->verified = strcmp(actual, w->digest) == 0;
        if (!*complete) { /* whole but wrong: start over */
            al_hasher_reset(w->hasher);
            w->resumed_at = w->on_disk = 0;
        }
    }
    return 0;
}

/* The partial file, created or continued at the first byte written. */
static int open_partial(al_blob_writer *w, al_error **err)
{
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, FILE_MODE);
    if (w->fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open %s", w->tmp_path);
    struct stat st;
    if (fstat(w->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return al_error_set(err, AL_E_IO, errno ? errno : EINVAL, "%s is not a regular file",
                            w->tmp_path);
    if (ftruncate(w->fd, (off_t)w->resumed_at) < 0 ||
        lseek(w->fd, (off_t)w->resumed_at, SEEK_SET) < 0)
        return al_error_set(err, AL_E_IO, errno, "truncate %s", w->tmp_path);
    return 0;
}

int al_blob_writer_restart(al_blob_writer *w, al_error **err)
{
    al_hasher_reset(w->hasher);
    w->resumed_at = 0;
    if (w->fd >= 0 && (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0))
        return al_error_set(err, AL_E_IO, errno, "truncate %s", w->tmp_path);
    return 0;
}

uint64_t al_blob_writer_resumed_at(const al_blob_writer *w)
{
    return w->resumed_at;
}

void al_blob_writer_suspend(al_blob_writer *w)
{
    if (w == NULL)
        return;
    if (w->resumable) {
        /* Keep what arrived for the next attempt or run. No fsync: after a
         * power cut the re-hash and the final digest check catch garbage. */
        if (w->fd >= 0)
            close(w->fd);
        w->fd = -1;
        free(w->tmp_path);
        w->tmp_path = NULL;
    }
    al_blob_writer_abort(w);
}

void al_blob_writer_pause(al_blob_writer *w)
{
    if (w->fd < 0)
        return;
    close(w->fd);
    w->fd = -1;
    /* What was written is hashed: the next write continues there. */
    w->resumed_at = w->on_disk = al_hasher_size(w->hasher);
}

uint64_t al_blob_writer_written(const al_blob_writer *w)
{
    return al_hasher_size(w->hasher);
}

static int verify(al_blob_writer *w, al_error **err)
{
    if (w->verified)
        return 0;
    uint64_t got = al_hasher_size(w->hasher);
    if (w->expected_size >= 0 && got != (uint64_t)w->expected_size)
        return al_error_set(err, AL_E_SIZE, 0, "size mismatch: expected %lld bytes, got %llu",
                            (long long)w->expected_size, (unsigned long long)got);
    char actual[AL_DIGEST_BUF];
    al_hasher_final(w->hasher, actual);
    if (strcmp(actual, w->digest) != 0)
        return al_error_set(err, AL_E_DIGEST, 0, "digest mismatch: expected %s, got %s", w->digest,
                            actual);
    w->verified = true;
    return 0;
}

static int commit_inner(al_blob_writer *w, al_error **err)
{
    int r = verify(w, err);
    if (r < 0)
        return r;
    if (w->fd < 0) /* a partial found complete: nothing was written this run */
        w->fd = open(w->tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (w->fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open %s", w->tmp_path);
    if (fsync(w->fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "fsync %s", w->tmp_path);
    int fd = al_steal_fd(&w->fd);
    if (close(fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "close %s", w->tmp_path);
    _cleanup_free_ char *dst = al_xasprintf("%s/%s", w->store->blobs_dir, al_digest_hex(w->digest));
    /* rename() replaces an existing target atomically. Its content has
     * the same digest (or was corrupt, and is now healed), and readers
     * holding the old file open keep their inode. */
    if (rename(w->tmp_path, dst) < 0)
        return al_error_set(err, AL_E_IO, errno, "rename %s to %s", w->tmp_path, dst);
    free(w->tmp_path);
    w->tmp_path = NULL; /* nothing left to clean up */
    return fsync_dir(w->store->blobs_dir, err);
}

int al_blob_writer_commit(al_blob_writer *w, al_error **err)
{
    /* No "blob X" context here: the caller adds it, as it does for its
     * download errors. */
    int r = commit_inner(w, err);
    al_blob_writer_abort(w);
    return r;
}

void al_blob_writer_abort(al_blob_writer *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_path != NULL)
        unlink(w->tmp_path);
    free(w->tmp_path);
    al_hasher_free(w->hasher);
    free(w);
}

int al_store_put_blob(al_store *s, const char *digest, const void *buf, size_t len, al_error **err)
{
    al_blob_writer *w = NULL;
    int r = al_store_blob_begin(&w, s, digest, (int64_t)len, err);
    if (r < 0)
        return r;
    if ((r = al_blob_writer_write(w, buf, len, err)) < 0) {
        al_blob_writer_abort(w);
        return r;
    }
    return al_blob_writer_commit(w, err);
}

int al_store_check_blob(al_store *s, const char *digest, int64_t size, al_blob_check *out,
                        al_error **err)
{
    memset(out, 0, sizeof(*out));
    out->have = -1;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = al_xasprintf("%s/%s", s->blobs_dir, al_digest_hex(digest));
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 && (errno == ENOENT || errno == ELOOP)) {
        out->state = AL_BLOB_MISSING;
        return 0;
    }
    if (fd < 0 || fstat(fd, &st) < 0)
        return al_error_set(err, AL_E_IO, errno, "open %s", path);
    out->have = (int64_t)st.st_size;
    if (!S_ISREG(st.st_mode) || (size >= 0 && st.st_size != size)) {
        out->state = AL_BLOB_WRONG_SIZE;
        return 0;
    }
    al_hasher *h = al_hasher_new();
    size_t bufsize = 1024 * 1024;
    _cleanup_free_ char *buf = al_xmalloc(bufsize);
    ssize_t n;
    while ((n = read(fd, buf, bufsize)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            al_hasher_update(h, buf, (size_t)n);
    int e = errno;
    al_hasher_final(h, out->actual);
    al_hasher_free(h);
    if (n < 0)
        return al_error_set(err, AL_E_IO, e, "read %s", path);
    out->state = strcmp(out->actual, digest) == 0 ? AL_BLOB_OK : AL_BLOB_CORRUPT;
    return 0;
}

int al_store_quarantine(al_store *s, const char *digest, al_error **err)
{
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    if ((r = require_write(s, err)) < 0)
        return r;
    _cleanup_free_ char *src = al_xasprintf("%s/%s", s->blobs_dir, al_digest_hex(digest));
    _cleanup_free_ char *dst = al_xasprintf("%s/quarantine-%s", s->tmp_dir, al_digest_hex(digest));
    if (rename(src, dst) < 0 && errno != ENOENT)
        return al_error_set(err, AL_E_IO, errno, "move %s to %s", src, dst);
    return fsync_dir(s->blobs_dir, err);
}

/* Reading ------------------------------------------------------------ */

int al_store_read_blob(al_store *s, const char *digest, size_t cap, char **out, size_t *len_out,
                       al_error **err)
{
    *out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = al_xasprintf("%s/%s", s->blobs_dir, al_digest_hex(digest));
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return al_error_set(err, AL_E_NOT_FOUND, 0, "blob %s is not in the store", digest);
        return al_error_set(err, AL_E_IO, errno, "open %s", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return al_error_set(err, AL_E_IO, errno, "stat %s", path);
    if (!S_ISREG(st.st_mode))
        return al_error_set(err, AL_E_IO, 0, "%s is not a regular file", path);
    if ((uint64_t)st.st_size > (uint64_t)cap)
        return al_error_set(err, AL_E_SIZE, 0, "blob %s is %lld bytes, more than the %zu allowed",
                            digest, (long long)st.st_size, cap);
    size_t size = (size_t)st.st_size;
    _cleanup_free_ char *buf = al_xmalloc(size + 1);
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return al_error_set(err, AL_E_IO, errno, "read %s", path);
        }
        if (n == 0)
            break; /* shrank under us: the digest check below catches it */
        got += (size_t)n;
    }
    buf[got] = '\0';
    char actual[AL_DIGEST_BUF];
    al_digest_bytes(actual, buf, got);
    if (strcmp(actual, digest) != 0)
        return al_error_set(err, AL_E_DIGEST, 0, "blob %s is corrupt: content hashes to %s", digest,
                            actual);
    *out = al_steal_ptr(&buf);
    if (len_out != NULL)
        *len_out = got;
    return 0;
}

/* index.json --------------------------------------------------------- */

int al_store_write_index(al_store *s, const al_index_entry *entries, size_t n, al_error **err)
{
    int r = require_write(s, err);
    if (r < 0)
        return r;
    json_auto_t *root = json_object();
    json_t *list = json_array();
    json_object_set_new(root, "schemaVersion", json_integer(2));
    json_object_set_new(root, "mediaType", json_string("application/vnd.oci.image.index.v1+json"));
    json_object_set_new(root, "manifests", list);
    for (size_t i = 0; i < n; i++) {
        const al_index_entry *e = &entries[i];
        if ((r = al_digest_check(e->digest, err)) < 0) {
            al_error_wrap(err, "write index.json: entry %zu", i);
            return r;
        }
        if (e->media_type == NULL || e->full_name == NULL || e->size < 0)
            return al_error_set(err, AL_E_USAGE, 0,
                                "write index.json: entry %zu (%s) is incomplete", i, e->digest);
        json_t *ann = json_object();
        /* json_string() returns NULL on invalid UTF-8; names come from
         * parsed refs, so that would be a caller bug. */
        json_t *fn = json_string(e->full_name);
        json_t *rn = e->ref_name != NULL ? json_string(e->ref_name) : NULL;
        json_t *mt = json_string(e->media_type);
        if (fn == NULL || mt == NULL || (e->ref_name != NULL && rn == NULL)) {
            json_decref(fn);
            json_decref(rn);
            json_decref(mt);
            json_decref(ann);
            return al_error_set(err, AL_E_USAGE, 0,
                                "write index.json: entry %zu is not valid UTF-8", i);
        }
        json_object_set_new(ann, "io.containerd.image.name", fn);
        if (rn != NULL)
            json_object_set_new(ann, "org.opencontainers.image.ref.name", rn);
        json_t *d = json_object();
        json_object_set_new(d, "mediaType", mt);
        json_object_set_new(d, "digest", json_string(e->digest));
        json_object_set_new(d, "size", json_integer(e->size));
        json_object_set_new(d, "annotations", ann);
        json_array_append_new(list, d);
    }
    /* Compact and in insertion order: the same tags give the same bytes. */
    _cleanup_free_ char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return al_error_set(err, AL_E_IO, 0, "write index.json: serialisation failed");
    return write_file_atomic(s, "index.json", text, strlen(text), err);
}
