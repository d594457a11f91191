#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int al_file_write_atomic(const char *path, const void *buf, size_t len, al_error **err)
{
    _cleanup_free_ char *dir = al_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        free(dir);
        dir = al_xstrdup(".");
    } else {
        slash[slash == dir ? 1 : 0] = '\0'; /* "/x" -> "/" */
    }
    _cleanup_free_ char *tmp = al_xasprintf("%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "create %s", tmp);
    int e = 0;
    const char *what = "write";
    int wr = al_write_all(fd, buf, len);
    if (wr < 0)
        e = -wr;
    else if (fchmod(fd, 0644) < 0) /* mkstemp makes 0600; these files are for others to read */
        e = errno, what = "chmod";
    else if (fsync(fd) < 0)
        e = errno, what = "fsync";
    if (close(fd) < 0 && e == 0)
        e = errno, what = "close";
    if (e == 0 && rename(tmp, path) < 0)
        e = errno, what = "rename";
    if (e != 0) {
        unlink(tmp);
        return al_error_set(err, AL_E_IO, e, "%s %s", what, path);
    }
    /* The rename is done; a directory that refuses fsync (some network
     * filesystems) does not undo it. */
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        (void)fsync(dfd);
    return 0;
}
