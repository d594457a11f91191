/* Output files beside their final name (see file.h). */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define FILE_MODE 0644
/* Room for the final name's stem in the temp name: ".<16 hex>.partial"
 * must still fit in NAME_MAX (255). */
#define STEM_MAX 200
/* Temp files a signal handler may have to remove: one tarball and a
 * report, or every volume of a bundle (they are renamed into place only
 * once the last is written). 1024 slots of 264 bytes. */
#define MAX_PENDING 1024

struct al_file {
    char *path;  /* as given */
    char *base;  /* final name in the directory */
    char *tmp;   /* temp name in the directory */
    int dir_fd;  /* the directory of path */
    int fd;      /* the temp file */
    bool force;  /* replace an existing final name */
    int pending; /* slot in pending[], -1 when none */
};

/* What al_file_abort_all removes. A slot is filled before `used` is set
 * and `used` cleared before it is reused, so a handler that runs in
 * between sees either nothing or a whole entry. Main thread only. */
static struct {
    volatile sig_atomic_t used;
    int dir_fd;
    char name[256];
} pending[MAX_PENDING];

static int pending_add(int dir_fd, const char *name)
{
    for (int i = 0; i < MAX_PENDING; i++) {
        if (pending[i].used)
            continue;
        pending[i].dir_fd = dir_fd;
        snprintf(pending[i].name, sizeof(pending[i].name), "%s", name);
        pending[i].used = 1;
        return i;
    }
    return -1; /* not cleaned up by a signal; still by abort */
}

static void pending_drop(al_file *f)
{
    if (f->pending >= 0)
        pending[f->pending].used = 0;
    f->pending = -1;
}

void al_file_abort_all(void)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i].used)
            unlinkat(pending[i].dir_fd, pending[i].name, 0);
}

static void file_free(al_file *f)
{
    pending_drop(f);
    if (f->fd >= 0)
        close(f->fd);
    if (f->dir_fd >= 0)
        close(f->dir_fd);
    free(f->path);
    free(f->base);
    free(f->tmp);
    free(f);
}

/* Split path into its directory (opened) and final name. */
static int open_dir_of(al_file *f, al_error **err)
{
    const char *slash = strrchr(f->path, '/');
    _cleanup_free_ char *dir = NULL;
    if (slash == NULL) {
        dir = al_xstrdup(".");
        f->base = al_xstrdup(f->path);
    } else {
        dir = slash == f->path ? al_xstrdup("/") : al_xstrndup(f->path, (size_t)(slash - f->path));
        f->base = al_xstrdup(slash + 1);
    }
    if (f->base[0] == '\0' || strcmp(f->base, ".") == 0 || strcmp(f->base, "..") == 0)
        return al_error_set(err, AL_E_USAGE, 0, "%s: not a file name", f->path);
    f->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dir_fd < 0)
        return al_error_set(err, AL_E_IO, errno, "create %s: open directory %s", f->path, dir);
    return 0;
}

int al_file_begin(al_file **out, const char *path, bool force, al_error **err)
{
    *out = NULL;
    al_file *f = al_xcalloc(1, sizeof(*f));
    f->path = al_xstrdup(path);
    f->dir_fd = f->fd = f->pending = -1;
    f->force = force;
    int r = open_dir_of(f, err);
    if (r == 0) {
        char stem[STEM_MAX + 1];
        snprintf(stem, sizeof(stem), "%.*s", STEM_MAX, f->base);
        f->fd = al_create_unique_at(f->dir_fd, stem, ".partial", O_WRONLY, &f->tmp);
        if (f->fd >= 0) {
            f->pending = pending_add(f->dir_fd, f->tmp);
            *out = f;
            return 0;
        }
        r = al_error_set(err, AL_E_IO, -f->fd, "create a temp file beside %s", path);
        f->fd = -1;
    }
    free(f->tmp);
    f->tmp = NULL; /* nothing of ours to remove */
    file_free(f);
    return r;
}

int al_file_fd(const al_file *f)
{
    return f->fd;
}

const char *al_file_path(const al_file *f)
{
    return f->path;
}

static int exists_error(const al_file *f, al_error **err)
{
    return al_error_set(err, AL_E_IO, 0,
                        "%s exists (written meanwhile by another process?): not replaced "
                        "(--force replaces it)",
                        f->path);
}

/* Rename without replacing, on filesystems that cannot say so to
 * rename: a hard link fails on an existing name just as atomically.
 * Without hard links either, check then rename (the documented race). */
static int place_fallback(al_file *f, al_error **err)
{
    if (linkat(f->dir_fd, f->tmp, f->dir_fd, f->base, 0) == 0) {
        unlinkat(f->dir_fd, f->tmp, 0);
        return 0;
    }
    if (errno == EEXIST)
        return exists_error(f, err);
    if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EMLINK)
        return al_error_set(err, AL_E_IO, errno, "link %s", f->path);
    struct stat st;
    if (fstatat(f->dir_fd, f->base, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return exists_error(f, err);
    if (renameat(f->dir_fd, f->tmp, f->dir_fd, f->base) < 0)
        return al_error_set(err, AL_E_IO, errno, "rename to %s", f->path);
    return 0;
}

static int place(al_file *f, al_error **err)
{
    if (f->force) {
        if (renameat(f->dir_fd, f->tmp, f->dir_fd, f->base) < 0)
            return al_error_set(err, AL_E_IO, errno, "rename to %s", f->path);
        return 0;
    }
    if (renameat2(f->dir_fd, f->tmp, f->dir_fd, f->base, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST)
        return exists_error(f, err);
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
        return place_fallback(f, err);
    return al_error_set(err, AL_E_IO, errno, "rename to %s", f->path);
}

int al_file_commit(al_file *f, al_error **err)
{
    int r = 0;
    if (fsync(f->fd) < 0)
        r = al_error_set(err, AL_E_IO, errno, "fsync %s", f->path);
    int fd = al_steal_fd(&f->fd);
    if (close(fd) < 0 && r == 0)
        r = al_error_set(err, AL_E_IO, errno, "close %s", f->path);
    if (r == 0)
        r = place(f, err);
    if (r < 0) {
        al_file_abort(f);
        return r;
    }
    pending_drop(f);
    /* The rename is done; a directory that refuses fsync (some network
     * filesystems) does not undo it, so only a real I/O error counts. */
    if (fsync(f->dir_fd) < 0 && errno == EIO)
        r = al_error_set(err, AL_E_IO, errno, "fsync the directory of %s", f->path);
    free(f->tmp);
    f->tmp = NULL;
    file_free(f);
    return r;
}

void al_file_abort(al_file *f)
{
    if (f == NULL)
        return;
    pending_drop(f);
    if (f->tmp != NULL && f->dir_fd >= 0)
        unlinkat(f->dir_fd, f->tmp, 0);
    file_free(f);
}

int al_file_write_atomic(const char *path, const void *buf, size_t len, al_error **err)
{
    al_file *f = NULL;
    int r = al_file_begin(&f, path, true, err);
    if (r < 0)
        return r;
    int wr = al_write_all(al_file_fd(f), buf, len);
    if (wr < 0) {
        al_file_abort(f);
        return al_error_set(err, AL_E_IO, -wr, "write %s", path);
    }
    return al_file_commit(f, err);
}
