/* Small files written whole and atomically: a temp file in the same
 * directory (so the rename never crosses filesystems, and a reader that
 * globs for the final name never sees it), fsync, rename, fsync of the
 * directory. Reports, lock files: things a nightly job reads. */
#ifndef AL_FILE_H
#define AL_FILE_H

#include <stddef.h>

#include "error.h"

/* Mode 0644. On failure the temp file is removed and path is untouched. */
int al_file_write_atomic(const char *path, const void *buf, size_t len, al_error **err);

#endif
