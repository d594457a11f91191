/* The OCI layout on disk (see store.h and docs/DESIGN.md, "The store").
 *
 * Everything that lands in the store goes through a uniquely named temp
 * file in STORE/tmp (same filesystem as its destination), is fsync'd, and
 * is renamed into place; the destination directory is then fsync'd so the
 * rename itself survives a crash. A reader therefore sees either the old
 * file or the complete new one, never a torn write.
 *
 * The store's directories are opened once, here, and every name inside
 * them is resolved relative to those fds with O_NOFOLLOW: whoever can
 * write into STORE/tmp or STORE/blobs cannot make airlock write through a
 * symlink to a file elsewhere, nor read one in as a blob. */
#include "store.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define DIR_MODE 0755
#define FILE_MODE 0644
/* Opening anything inside the store: never through a symlink, and
 * O_NONBLOCK so that a planted FIFO cannot hang the open (the flag means
 * nothing for regular files). */
#define IN_STORE (O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
/* A reader's probe of STORE/lock (--verify-store) lasts an instant; a
 * writer that finds only such holders tries again for this long. */
#define READER_WAIT_S 2.0
#define LOCK_PAUSE_NS 20000000L
/* A lock file replaced under us this often in a row is being tampered
 * with; give up rather than loop. */
#define LOCK_REOPENS 20

static const char EMPTY_INDEX_JSON[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":[]}";

struct al_store {
    char *dir;
    char *db_path;
    al_store_mode mode;
    int root_fd;  /* STORE */
    int blobs_fd; /* STORE/blobs/sha256, -1 when a READONLY store lacks it */
    int tmp_fd;   /* STORE/tmp, likewise */
    int lock_fd;  /* STORE/lock, flock'd exclusively; -1 in READONLY mode */
    int gc_fd;    /* STORE/gc.lock; -1 when it cannot be had (READONLY) */
    int gc_held;  /* 0, LOCK_SH or LOCK_EX */
};

struct al_blob_writer {
    al_store *store; /* borrowed */
    char digest[AL_DIGEST_BUF];
    int64_t expected_size; /* < 0: unknown */
    int fd;
    char *tmp_name; /* name in STORE/tmp; NULL once renamed away or kept */
    al_hasher *hasher;
    uint64_t resumed_at; /* bytes of the partial file kept (hashed) when writing began */
    uint64_t on_disk;    /* size of the partial file when the writer was made */
    bool resumable;      /* tmp_name is partial-<hex>, kept by suspend */
    bool verified;       /* size and digest checked: the hasher is finished */
};

/* Small helpers ------------------------------------------------------ */

static int fsync_dirfd(int fd, const char *shown, al_error **err)
{
    if (fsync(fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "fsync directory %s", shown);
    return 0;
}

/* fsync the directory that holds path (a directory we just created). */
static int fsync_parent(const char *path, al_error **err)
{
    _cleanup_free_ char *copy = al_xstrdup(path);
    const char *parent = dirname(copy);
    _cleanup_close_ int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open directory %s", parent);
    return fsync_dirfd(fd, parent, err);
}

/* mkdir -p of the store directory itself: a first fetch may name a
 * location whose parents do not exist yet. These are the user's own
 * directories, so paths (and the symlinks the user put in them) are fine.
 * Each directory created is fsynced into its parent: a store whose
 * directory vanishes in a power cut has lost everything written in it. */
static int make_store_dir(const char *path, al_error **err)
{
    _cleanup_free_ char *p = al_xstrdup(path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if ((p[i] != '/' && p[i] != '\0') || p[i - 1] == '/')
            continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        int r = 0;
        /* stat first: on a read-only filesystem or an unwritable parent,
         * mkdir of an existing directory may fail with EROFS/EACCES. */
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                r = al_error_set(err, AL_E_IO, ENOTDIR, "create directory %s", p);
        } else if (mkdir(p, DIR_MODE) == 0) {
            r = fsync_parent(p, err);
        } else if (errno != EEXIST) {
            r = al_error_set(err, AL_E_IO, errno, "create directory %s", p);
        }
        p[i] = c;
        if (r < 0)
            return r;
    }
    return 0;
}

/* Open the directory name below parent, never through a symlink. */
static int open_subdir(int parent, const char *name, const char *shown, al_error **err)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    if (e == ELOOP || e == ENOTDIR)
        return al_error_set(err, AL_E_IO, 0,
                            "%s is not a directory (a symbolic link or a file stands there)",
                            shown);
    return al_error_set(err, e == ENOENT ? AL_E_NOT_FOUND : AL_E_IO, e, "open directory %s", shown);
}

/* mkdir name below parent unless it is there, fsync parent when it was
 * created, then open it. */
static int make_subdir(int parent, const char *name, const char *shown, al_error **err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            return al_error_set(err, AL_E_IO, errno, "stat %s", shown);
        if (mkdirat(parent, name, DIR_MODE) == 0) {
            int r = fsync_dirfd(parent, shown, err);
            if (r < 0)
                return r;
        } else if (errno != EEXIST) {
            return al_error_set(err, AL_E_IO, errno, "create directory %s", shown);
        }
    }
    return open_subdir(parent, name, shown, err);
}

/* True when name below dirfd is the very file fd has open. */
static bool same_file(int dirfd, const char *name, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* fd must be a regular file; closes it and fails otherwise. */
static int check_regular(int fd, const char *shown, al_error **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return al_error_set(err, AL_E_IO, e, "stat %s", shown);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return al_error_set(err, AL_E_IO, 0, "%s is not a regular file", shown);
    }
    return fd;
}

/* Open a file at the top of the store, never through a symlink. */
static int open_top(const al_store *s, const char *name, int flags, al_error **err)
{
    int fd = openat(s->root_fd, name, flags | IN_STORE, FILE_MODE);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return al_error_set(err, AL_E_IO, 0,
                                "%s/%s is a symbolic link: airlock never follows one in a store",
                                s->dir, name);
        return al_error_set(err, e == ENOENT ? AL_E_NOT_FOUND : AL_E_IO, e, "open %s/%s", s->dir,
                            name);
    }
    _cleanup_free_ char *shown = al_xasprintf("%s/%s", s->dir, name);
    return check_regular(fd, shown, err);
}

/* Create a new file with a unique name in STORE/tmp, open for reading
 * and writing. We do not use mkstemp because it forces mode 0600; store
 * files are 0644 minus the umask like any other file the user creates. */
static int open_unique(al_store *s, const char *prefix, char **name_out, al_error **err)
{
    int fd = al_create_unique_at(s->tmp_fd, prefix, ".tmp", O_RDWR | O_NONBLOCK, name_out);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, -fd, "create a temp file in %s/tmp", s->dir);
    return fd;
}

/* Fill, fsync and close a fresh temp file. Closes fd in all cases. */
static int fill_and_close(int fd, const char *shown, const void *buf, size_t len, al_error **err)
{
    int r = al_write_all(fd, buf, len);
    if (r < 0) {
        close(fd);
        return al_error_set(err, AL_E_IO, -r, "write %s", shown);
    }
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return al_error_set(err, AL_E_IO, e, "fsync %s", shown);
    }
    if (close(fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "close %s", shown);
    return 0;
}

/* Write a small file at STORE/name atomically: temp in STORE/tmp, fsync,
 * rename, fsync STORE. */
static int write_file_atomic(al_store *s, const char *name, const void *buf, size_t len,
                             al_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    int fd = open_unique(s, name, &tmp, err);
    if (fd < 0)
        return al_error_wrap(err, "write %s/%s", s->dir, name);
    _cleanup_free_ char *shown = al_xasprintf("%s/tmp/%s", s->dir, tmp);
    int r = fill_and_close(fd, shown, buf, len, err);
    /* rename replaces whatever stands at the name, a symlink included,
     * without following it. */
    if (r == 0 && renameat(s->tmp_fd, tmp, s->root_fd, name) < 0)
        r = al_error_set(err, AL_E_IO, errno, "rename %s to %s/%s", shown, s->dir, name);
    if (r < 0) {
        unlinkat(s->tmp_fd, tmp, 0);
        return r;
    }
    return fsync_dirfd(s->root_fd, s->dir, err);
}

static int require_write(const al_store *s, al_error **err)
{
    if (s->mode != AL_STORE_WRITE)
        return al_error_set(err, AL_E_USAGE, 0, "store %s is open read-only", s->dir);
    return 0;
}

static void pause_briefly(void)
{
    struct timespec ts = {0, LOCK_PAUSE_NS};
    nanosleep(&ts, NULL);
}

/* Locks -------------------------------------------------------------- */

static int busy(const al_store *s, al_error **err)
{
    return al_error_set(err, AL_E_BUSY, 0, "store %s is busy: another airlock-fetch holds its lock",
                        s->dir);
}

/* The writer lock: flock(LOCK_EX) on STORE/lock, docs/DESIGN.md
 * "Locking". The same fd is retried while only readers hold the file
 * (the shared probe of --verify-store, an instant), so that such a probe
 * never makes a nightly fetch exit 3. Once locked, the path must still
 * name the locked inode: a lock file deleted and recreated in between
 * (by hand, by a cleanup script) would let two writers in, each holding a
 * different inode. */
static int take_writer_lock(al_store *s, al_error **err)
{
    double deadline = al_mono() + READER_WAIT_S;
    int reopens = 0;
    int fd = open_top(s, "lock", O_RDWR | O_CREAT, err);
    if (fd < 0)
        return fd;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (same_file(s->root_fd, "lock", fd)) {
                s->lock_fd = fd;
                return 0;
            }
            close(fd);
            if (++reopens > LOCK_REOPENS)
                return al_error_set(err, AL_E_BUSY, 0,
                                    "store %s: its lock file keeps being replaced", s->dir);
            if ((fd = open_top(s, "lock", O_RDWR | O_CREAT, err)) < 0)
                return fd;
            continue;
        }
        int e = errno;
        if (e != EWOULDBLOCK) {
            close(fd);
            return al_error_set(err, AL_E_IO, e, "lock %s/lock", s->dir);
        }
        /* A shared lock can be had only when no writer holds the file. */
        bool readers_only = flock(fd, LOCK_SH | LOCK_NB) == 0;
        if (readers_only)
            flock(fd, LOCK_UN);
        if (!readers_only || al_mono() > deadline) {
            close(fd);
            return busy(s, err);
        }
        pause_briefly();
    }
}

/* STORE/gc.lock, opened for the mode. A writer creates it (every store a
 * fetch has opened has one) and must have it: it returns a negative
 * al_errc otherwise. A reader opens it read-only, creates it only on a
 * store that an older airlock-fetch left without one, and returns -1 to
 * go on without it where it cannot be had: on a read-only copy no prune
 * can run, and no writer gets past a gc.lock that is not a regular file. */
static int open_gc_lock(al_store *s, al_error **err)
{
    if (s->mode == AL_STORE_WRITE) {
        /* flock works on a read-only fd: gc.lock created by another user
         * (a reader) still serves. */
        int fd = openat(s->root_fd, "gc.lock", O_RDWR | O_CREAT | IN_STORE, FILE_MODE);
        if (fd < 0 && errno == EACCES)
            return open_top(s, "gc.lock", O_RDONLY, err);
        if (fd < 0)
            return open_top(s, "gc.lock", O_RDWR | O_CREAT, err); /* for its message */
        _cleanup_free_ char *shown = al_xasprintf("%s/gc.lock", s->dir);
        return check_regular(fd, shown, err);
    }
    int fd = openat(s->root_fd, "gc.lock", O_RDONLY | IN_STORE);
    if (fd < 0 && errno == ENOENT)
        fd = openat(s->root_fd, "gc.lock", O_RDONLY | O_CREAT | IN_STORE, FILE_MODE);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
        errno = EINVAL;
    }
    if (fd < 0)
        al_debug("%s/gc.lock: %s; reading without the GC lock (no prune can run here)", s->dir,
                 strerror(errno));
    return fd;
}

int al_store_gc_hold(al_store *s, al_error **err)
{
    if (s->gc_held != 0)
        return 0;
    for (int reopens = 0; reopens <= LOCK_REOPENS; reopens++) {
        if (s->gc_fd < 0) {
            int fd = open_gc_lock(s, err);
            if (fd < 0)
                return s->mode == AL_STORE_WRITE ? fd : 0;
            s->gc_fd = fd;
        }
        if (flock(s->gc_fd, LOCK_SH | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK) {
                al_debug("%s/gc.lock: flock: %s; reading without the GC lock", s->dir,
                         strerror(errno));
                return 0;
            }
            /* A prune is removing files: it holds the lock for its sweep
             * only, so this wait is short. */
            al_info("waiting for airlock-fetch to finish removing pruned files from %s", s->dir);
            while (flock(s->gc_fd, LOCK_SH) < 0) {
                if (errno != EINTR)
                    return al_error_set(err, AL_E_IO, errno, "lock %s/gc.lock", s->dir);
            }
        }
        if (same_file(s->root_fd, "gc.lock", s->gc_fd)) {
            s->gc_held = LOCK_SH;
            return 0;
        }
        close(s->gc_fd); /* replaced meanwhile: the lock that counts is the new file */
        s->gc_fd = -1;
    }
    return al_error_set(err, AL_E_IO, 0, "store %s: gc.lock keeps being replaced", s->dir);
}

int al_store_gc_try_sweep(al_store *s, bool *locked, al_error **err)
{
    *locked = false;
    int r = require_write(s, err);
    if (r < 0)
        return r;
    for (int reopens = 0; reopens <= LOCK_REOPENS; reopens++) {
        if (s->gc_fd < 0 && (s->gc_fd = open_gc_lock(s, err)) < 0) {
            r = s->gc_fd;
            s->gc_fd = -1;
            return r;
        }
        if (flock(s->gc_fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno == EWOULDBLOCK)
                return 0;
            return al_error_set(err, AL_E_IO, errno, "lock %s/gc.lock", s->dir);
        }
        if (same_file(s->root_fd, "gc.lock", s->gc_fd)) {
            s->gc_held = LOCK_EX;
            *locked = true;
            return 0;
        }
        close(s->gc_fd);
        s->gc_fd = -1;
    }
    return al_error_set(err, AL_E_IO, 0, "store %s: gc.lock keeps being replaced", s->dir);
}

void al_store_gc_release(al_store *s)
{
    if (s->gc_held != 0 && s->gc_fd >= 0)
        flock(s->gc_fd, LOCK_UN);
    s->gc_held = 0;
}

/* Open / free -------------------------------------------------------- */

static int open_write(al_store *s, al_error **err)
{
    int r = make_store_dir(s->dir, err);
    if (r < 0)
        return r;
    s->root_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open directory %s", s->dir);

    /* Take the lock before creating anything else, so two fetches racing
     * to create a new store do not both write its files. */
    if ((r = take_writer_lock(s, err)) < 0)
        return r;

    _cleanup_free_ char *blobs_shown = al_xasprintf("%s/blobs", s->dir);
    _cleanup_free_ char *sha_shown = al_xasprintf("%s/blobs/sha256", s->dir);
    _cleanup_free_ char *tmp_shown = al_xasprintf("%s/tmp", s->dir);
    _cleanup_close_ int blobs_top = make_subdir(s->root_fd, "blobs", blobs_shown, err);
    if (blobs_top < 0)
        return blobs_top;
    if ((s->blobs_fd = make_subdir(blobs_top, "sha256", sha_shown, err)) < 0)
        return s->blobs_fd;
    if ((s->tmp_fd = make_subdir(s->root_fd, "tmp", tmp_shown, err)) < 0)
        return s->tmp_fd;
    if ((s->gc_fd = open_gc_lock(s, err)) < 0)
        return s->gc_fd;

    /* index.json first, oci-layout last: a READONLY open recognises a
     * store by its oci-layout, so that file appears only once the rest
     * is in place. */
    static const struct {
        const char *name;
        const char *content;
    } files[] = {
        {"index.json", EMPTY_INDEX_JSON},
        {"oci-layout", AL_OCI_LAYOUT_JSON},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(files); i++) {
        struct stat st;
        if (fstatat(s->root_fd, files[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (!S_ISREG(st.st_mode))
                return al_error_set(err, AL_E_IO, 0, "%s/%s is not a regular file", s->dir,
                                    files[i].name);
            continue;
        }
        if (errno != ENOENT)
            return al_error_set(err, AL_E_IO, errno, "stat %s/%s", s->dir, files[i].name);
        r = write_file_atomic(s, files[i].name, files[i].content, strlen(files[i].content), err);
        if (r < 0)
            return r;
    }
    /* The lock files and directories created above, made durable too
     * (write_file_atomic fsyncs STORE when it writes). */
    return fsync_dirfd(s->root_fd, s->dir, err);
}

/* A directory of a READONLY store, or -1 when it is not there (a copy
 * without tmp/; verify reports a missing blobs/). */
static int open_optional(int parent, const char *name)
{
    if (parent < 0)
        return -1;
    return openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int open_readonly(al_store *s, al_error **err)
{
    /* Nothing may be created here: the store may be a read-only copy.
     * (The one exception is an empty gc.lock, see open_gc_lock.) */
    s->root_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return al_error_set(err, AL_E_NOT_FOUND, 0,
                                "%s is not an airlock store (no oci-layout)", s->dir);
        return al_error_set(err, AL_E_IO, errno, "open directory %s", s->dir);
    }
    struct stat st;
    if (fstatat(s->root_fd, "oci-layout", &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return al_error_set(err, AL_E_NOT_FOUND, 0,
                                "%s is not an airlock store (no oci-layout)", s->dir);
        return al_error_set(err, AL_E_IO, errno, "stat %s/oci-layout", s->dir);
    }
    if (!S_ISREG(st.st_mode))
        return al_error_set(err, AL_E_IO, 0, "%s/oci-layout is not a regular file", s->dir);
    _cleanup_close_ int blobs_top = open_optional(s->root_fd, "blobs");
    s->blobs_fd = open_optional(blobs_top, "sha256");
    s->tmp_fd = open_optional(s->root_fd, "tmp");
    /* Before the caller reads the database: rows read under the lock name
     * files that no prune removes until it is released. */
    return al_store_gc_hold(s, err);
}

/* SQLite opens airlock.db (and its -wal and -shm) by path, the one thing
 * in the store not opened through our fds: refuse a database that is not
 * a regular file. (SQLITE_OPEN_NOFOLLOW would refuse a store reached
 * through any symlink in its path, which users legitimately have.) */
static int check_db_files(const al_store *s, al_error **err)
{
    static const char *const names[] = {"airlock.db", "airlock.db-wal", "airlock.db-shm"};
    for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
        struct stat st;
        if (fstatat(s->root_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            return al_error_set(err, AL_E_IO, errno, "stat %s/%s", s->dir, names[i]);
        }
        if (!S_ISREG(st.st_mode))
            return al_error_set(err, AL_E_IO, 0,
                                "%s/%s is not a regular file (a symbolic link?): refusing to "
                                "open it",
                                s->dir, names[i]);
    }
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
    s->mode = mode;
    s->root_fd = s->blobs_fd = s->tmp_fd = s->lock_fd = s->gc_fd = -1;
    int r = mode == AL_STORE_WRITE ? open_write(s, err) : open_readonly(s, err);
    if (r == 0)
        r = check_db_files(s, err);
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
    /* Closing releases the flocks. */
    int fds[] = {s->gc_fd, s->lock_fd, s->tmp_fd, s->blobs_fd, s->root_fd};
    for (size_t i = 0; i < AL_ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(s->dir);
    free(s->db_path);
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

int al_store_root_fd(const al_store *s)
{
    return s->root_fd;
}

int al_store_blobs_fd(const al_store *s)
{
    return s->blobs_fd;
}

int al_store_tmp_fd(const al_store *s)
{
    return s->tmp_fd;
}

char *al_store_blob_path(const al_store *s, const char *digest, al_error **err)
{
    if (al_digest_check(digest, err) < 0)
        return NULL;
    return al_xasprintf("%s/blobs/sha256/%s", s->dir, al_digest_hex(digest));
}

bool al_store_has_blob(const al_store *s, const char *digest, int64_t *size_out)
{
    if (!al_digest_valid(digest) || s->blobs_fd < 0)
        return false;
    struct stat st;
    if (fstatat(s->blobs_fd, al_digest_hex(digest), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode))
        return false;
    if (size_out != NULL)
        *size_out = (int64_t)st.st_size;
    return true;
}

static int open_checked(int fd, const char *shown, int64_t *size_out, al_error **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return al_error_set(err, AL_E_IO, e, "stat %s", shown);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return al_error_set(err, AL_E_IO, 0, "%s is not a regular file", shown);
    }
    if (size_out != NULL)
        *size_out = (int64_t)st.st_size;
    return fd;
}

int al_store_blob_open(const al_store *s, const char *digest, int64_t *size_out, al_error **err)
{
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *shown = al_xasprintf("blobs/sha256/%s", al_digest_hex(digest));
    if (s->blobs_fd < 0)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "blob %s is not in the store (no %s/%s)",
                            digest, s->dir, "blobs/sha256");
    int fd = openat(s->blobs_fd, al_digest_hex(digest), O_RDONLY | IN_STORE);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return al_error_set(err, AL_E_NOT_FOUND, 0, "blob %s is not in the store", digest);
        if (e == ELOOP)
            return al_error_set(err, AL_E_IO, 0, "%s/%s is a symbolic link, not a blob", s->dir,
                                shown);
        return al_error_set(err, AL_E_IO, e, "open %s/%s", s->dir, shown);
    }
    _cleanup_free_ char *full = al_xasprintf("%s/%s", s->dir, shown);
    return open_checked(fd, full, size_out, err);
}

int al_store_file_open(const al_store *s, const char *name, int64_t *size_out, al_error **err)
{
    int fd = open_top(s, name, O_RDONLY, err);
    if (fd < 0)
        return fd;
    _cleanup_free_ char *shown = al_xasprintf("%s/%s", s->dir, name);
    return open_checked(fd, shown, size_out, err);
}

/* Blob writer -------------------------------------------------------- */

static al_blob_writer *writer_new(al_store *s, const char *digest, int64_t expected_size)
{
    al_blob_writer *w = al_xcalloc(1, sizeof(*w));
    w->store = s;
    memcpy(w->digest, digest, AL_DIGEST_BUF);
    w->expected_size = expected_size;
    w->fd = -1;
    w->hasher = al_hasher_new();
    return w;
}

/* "STORE/tmp/NAME", for messages (malloc'd). */
static char *tmp_shown(const al_blob_writer *w)
{
    return al_xasprintf("%s/tmp/%s", w->store->dir, w->tmp_name ? w->tmp_name : "?");
}

int al_store_blob_begin(al_blob_writer **out, al_store *s, const char *digest,
                        int64_t expected_size, al_error **err)
{
    *out = NULL;
    int r = al_digest_check(digest, err);
    if (r < 0)
        return r;
    if ((r = require_write(s, err)) < 0)
        return r;
    al_blob_writer *w = writer_new(s, digest, expected_size);
    /* The prefix names the blob so a stray temp file can be told apart. */
    char prefix[24];
    snprintf(prefix, sizeof(prefix), "blob-%.12s", al_digest_hex(digest));
    w->fd = open_unique(s, prefix, &w->tmp_name, err);
    if (w->fd < 0) {
        r = w->fd;
        al_blob_writer_abort(w);
        return r;
    }
    *out = w;
    return 0;
}

static int open_partial(al_blob_writer *w, al_error **err);

int al_blob_writer_write(al_blob_writer *w, const void *buf, size_t len, al_error **err)
{
    if (w->fd < 0 && w->resumable) {
        int r = open_partial(w, err); /* the first byte: now the file is made */
        if (r < 0)
            return r;
    }
    uint64_t have = al_hasher_size(w->hasher);
    if (w->expected_size >= 0 && (uint64_t)w->expected_size - have < len)
        return al_error_set(err, AL_E_SIZE, 0,
                            "size mismatch: expected %lld bytes, got at least %llu",
                            (long long)w->expected_size, (unsigned long long)(have + len));
    int r = al_write_all(w->fd, buf, len);
    if (r < 0) {
        _cleanup_free_ char *shown = tmp_shown(w);
        return al_error_set(err, AL_E_IO, -r, "write %s", shown);
    }
    al_hasher_update(w->hasher, buf, len);
    return 0;
}

/* Hash the first `len` bytes of fd into w's hasher; a short read means
 * the file changed under us. */
static int rehash_prefix(al_blob_writer *w, int fd, uint64_t len)
{
    size_t bufsize = 1024 * 1024;
    _cleanup_free_ char *buf = al_xmalloc(bufsize);
    uint64_t off = 0;
    while (off < len) {
        uint64_t left = len - off;
        ssize_t n = pread(fd, buf, left < bufsize ? (size_t)left : bufsize, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        al_hasher_update(w->hasher, buf, (size_t)n);
        off += (uint64_t)n;
    }
    return 0;
}

/* Open STORE/tmp/partial-<hex> for writing, creating it when absent, and
 * continue at resumed_at (what is hashed). Anything else at that name
 * than a regular file with one link was planted there (a symlink to a
 * file elsewhere, a hard link to one, a FIFO): the name is removed, never
 * what it points at, and a fresh file is created in its place. */
static int open_partial(al_blob_writer *w, al_error **err)
{
    al_store *s = w->store;
    _cleanup_free_ char *shown = tmp_shown(w);
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = openat(s->tmp_fd, w->tmp_name, O_RDWR | O_CREAT | IN_STORE, FILE_MODE);
        int e = errno;
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink <= 1) {
            if (ftruncate(fd, (off_t)w->resumed_at) < 0 ||
                lseek(fd, (off_t)w->resumed_at, SEEK_SET) < 0) {
                e = errno;
                close(fd);
                return al_error_set(err, AL_E_IO, e, "truncate %s", shown);
            }
            w->fd = fd;
            return 0;
        }
        if (fd >= 0)
            close(fd);
        else if (e != ELOOP && e != ENXIO && e != EISDIR && e != ETXTBSY)
            return al_error_set(err, AL_E_IO, e, "open %s", shown);
        al_warn("%s is not a partial download of airlock's (a symbolic link, hard link or special "
                "file): removed without following it; the download starts afresh",
                shown);
        if (unlinkat(s->tmp_fd, w->tmp_name, 0) < 0 && errno != ENOENT)
            return al_error_set(err, AL_E_IO, errno, "remove %s", shown);
        al_hasher_reset(w->hasher);
        w->resumed_at = 0;
    }
    return al_error_set(err, AL_E_IO, 0, "%s keeps being replaced", shown);
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
    al_blob_writer *w = writer_new(s, digest, expected_size);
    w->resumable = true; /* created at the first byte: a 404 leaves nothing behind */
    w->tmp_name = al_xasprintf("partial-%s", al_digest_hex(digest));
    struct stat st;
    if (fstatat(s->tmp_fd, w->tmp_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        st.st_nlink <= 1)
        w->on_disk = (uint64_t)st.st_size;
    *out = w;
    return 0;
}

uint64_t al_blob_writer_on_disk(const al_blob_writer *w)
{
    return w->on_disk;
}

/* Open the partial file found on disk for reading; -1 when it is not a
 * plain file of ours any more. */
static int open_partial_ro(const al_blob_writer *w)
{
    int fd = openat(w->store->tmp_fd, w->tmp_name, O_RDONLY | IN_STORE);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1)) {
        close(fd);
        return -1;
    }
    return fd;
}

int al_blob_writer_rehash(al_blob_writer *w, bool *complete, al_error **err)
{
    (void)err;
    *complete = false;
    al_hasher_reset(w->hasher);
    w->resumed_at = 0;
    uint64_t have = w->on_disk;
    /* Longer than the blob: not a prefix worth keeping. */
    if (have == 0 || w->expected_size < 0 || have > (uint64_t)w->expected_size)
        return 0;
    _cleanup_close_ int fd = open_partial_ro(w);
    if (fd < 0 || rehash_prefix(w, fd, have) < 0) {
        al_hasher_reset(w->hasher); /* unreadable: the download starts afresh */
        return 0;
    }
    w->resumed_at = have;
    if (have == (uint64_t)w->expected_size) {
        char actual[AL_DIGEST_BUF];
        al_hasher_final(w->hasher, actual);
        *complete = w->verified = strcmp(actual, w->digest) == 0;
        if (!*complete) { /* whole but wrong: start over */
            al_hasher_reset(w->hasher);
            w->resumed_at = 0;
        }
    }
    return 0;
}

int al_blob_writer_restart(al_blob_writer *w, al_error **err)
{
    al_hasher_reset(w->hasher);
    w->resumed_at = 0;
    if (w->fd >= 0 && (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)) {
        _cleanup_free_ char *shown = tmp_shown(w);
        return al_error_set(err, AL_E_IO, errno, "truncate %s", shown);
    }
    return 0;
}

uint64_t al_blob_writer_resumed_at(const al_blob_writer *w)
{
    return w->resumed_at;
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
        free(w->tmp_name);
        w->tmp_name = NULL;
    }
    al_blob_writer_abort(w);
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

int al_blob_writer_verify(al_blob_writer *w, al_error **err)
{
    return verify(w, err);
}

int al_blob_writer_publish(al_blob_writer *w, al_error **err)
{
    int r = verify(w, err);
    if (r < 0)
        return r;
    if (w->fd < 0 && w->resumable) /* a partial found whole: nothing was written this run */
        w->fd = open_partial_ro(w);
    if (w->fd < 0) {
        _cleanup_free_ char *shown = tmp_shown(w);
        return al_error_set(err, AL_E_IO, errno ? errno : EIO, "open %s", shown);
    }
    _cleanup_free_ char *shown = tmp_shown(w);
    if (fsync(w->fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "fsync %s", shown);
    int fd = al_steal_fd(&w->fd);
    if (close(fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "close %s", shown);
    al_store *s = w->store;
    const char *hex = al_digest_hex(w->digest);
    /* renameat replaces an existing target atomically, without following
     * it if it is a symlink. Its content has the same digest (or was
     * corrupt, or planted, and is now healed), and readers holding the
     * old file open keep their inode. */
    if (renameat(s->tmp_fd, w->tmp_name, s->blobs_fd, hex) < 0)
        return al_error_set(err, AL_E_IO, errno, "rename %s to %s/blobs/sha256/%s", shown, s->dir,
                            hex);
    free(w->tmp_name);
    w->tmp_name = NULL; /* nothing left to clean up */
    return 0;
}

int al_store_sync_blobs(al_store *s, al_error **err)
{
    _cleanup_free_ char *dir_shown = al_xasprintf("%s/blobs/sha256", s->dir);
    return fsync_dirfd(s->blobs_fd, dir_shown, err);
}

int al_blob_writer_commit(al_blob_writer *w, al_error **err)
{
    /* No "blob X" context here: the caller adds it, as it does for its
     * download errors. */
    int r = al_blob_writer_publish(w, err);
    if (r == 0)
        r = al_store_sync_blobs(w->store, err);
    al_blob_writer_abort(w);
    return r;
}

void al_blob_writer_abort(al_blob_writer *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_name != NULL)
        unlinkat(w->store->tmp_fd, w->tmp_name, 0);
    free(w->tmp_name);
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
    al_error *e = NULL;
    _cleanup_close_ int fd = al_store_blob_open(s, digest, &out->have, &e);
    if (fd < 0 && e->code == AL_E_IO && e->sys_errno == 0) {
        al_error_free(e); /* not a regular file: as good as a wrong one */
        out->state = AL_BLOB_WRONG_SIZE;
        return 0;
    }
    if (fd < 0 && e->code == AL_E_NOT_FOUND) {
        al_error_free(e);
        out->state = AL_BLOB_MISSING;
        return 0;
    }
    if (fd < 0) {
        int code = e->code;
        if (err != NULL)
            *err = e;
        else
            al_error_free(e);
        return code;
    }
    if (size >= 0 && out->have != size) {
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
    int er = errno;
    al_hasher_final(h, out->actual);
    al_hasher_free(h);
    if (n < 0)
        return al_error_set(err, AL_E_IO, er, "read %s/blobs/sha256/%s", s->dir,
                            al_digest_hex(digest));
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
    const char *hex = al_digest_hex(digest);
    _cleanup_free_ char *name = al_xasprintf("quarantine-%s", hex);
    if (renameat(s->blobs_fd, hex, s->tmp_fd, name) < 0 && errno != ENOENT)
        return al_error_set(err, AL_E_IO, errno, "move %s/blobs/sha256/%s to %s/tmp/%s", s->dir,
                            hex, s->dir, name);
    _cleanup_free_ char *dir_shown = al_xasprintf("%s/blobs/sha256", s->dir);
    return fsync_dirfd(s->blobs_fd, dir_shown, err);
}

/* Reading ------------------------------------------------------------ */

int al_store_read_blob(al_store *s, const char *digest, size_t cap, char **out, size_t *len_out,
                       al_error **err)
{
    *out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    int64_t fsize = 0;
    _cleanup_close_ int fd = al_store_blob_open(s, digest, &fsize, err);
    if (fd < 0)
        return fd;
    if ((uint64_t)fsize > (uint64_t)cap)
        return al_error_set(err, AL_E_SIZE, 0, "blob %s is %lld bytes, more than the %zu allowed",
                            digest, (long long)fsize, cap);
    size_t size = (size_t)fsize;
    _cleanup_free_ char *buf = al_xmalloc(size + 1);
    /* A file that shrank under us reads short: the digest check below
     * catches it. */
    ssize_t n = al_read_all(fd, buf, size);
    if (n < 0)
        return al_error_set(err, AL_E_IO, (int)-n, "read %s/blobs/sha256/%s", s->dir,
                            al_digest_hex(digest));
    size_t got = (size_t)n;
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
