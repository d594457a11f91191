/* Output files that appear whole under their final name: tarballs,
 * reports, lock files (and, next, per-image archives and bundles).
 *
 *   al_file *f;
 *   al_file_begin(&f, "out/images.tar", force, &err);   // temp file beside it
 *   write(al_file_fd(f), ...);
 *   al_file_commit(f, &err);    // or al_file_abort(f)
 *
 * The temp file lives in OUT's own directory (so the rename never crosses
 * filesystems) under a unique name that ends in ".partial", which k3s and
 * RKE2 do not import from their images directory: "images.tar.3f9c01d2a4
 * b58e67.partial". It is created relative to the directory's fd with
 * O_CREAT|O_EXCL|O_NOFOLLOW, so nothing planted beside OUT (a symlink at
 * any name) is written through, and two writers of one OUT never share a
 * temp file. Commit is fsync, rename, fsync of the directory:
 *   - without force, rename(RENAME_NOREPLACE): an OUT that exists, or
 *     appeared since the caller checked, is never replaced (AL_E_IO "OUT
 *     exists"); of two writers racing for one OUT exactly one wins;
 *   - with force, a plain rename over the old OUT (if OUT is a symlink,
 *     the link itself is replaced, never its target).
 * A filesystem whose rename refuses RENAME_NOREPLACE (some network and
 * FUSE ones) gets link() then unlink() of the temp name (link fails on an
 * existing OUT just as atomically); one without hard links either gets a
 * check for OUT followed by the rename: there, and only there, a writer
 * that creates OUT between the two is replaced.
 * docs/DESIGN.md, "Output files". */
#ifndef AL_FILE_H
#define AL_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct al_file al_file;

/* Create the temp file for path (mode 0644 minus the umask). The
 * directory part of path may hold symlinks the user chose; the temp file
 * and OUT are names in it. */
int al_file_begin(al_file **out, const char *path, bool force, al_error **err);
/* The temp file's fd, open for writing (owned by f). */
int al_file_fd(const al_file *f);
/* The final path, as given (borrowed). */
const char *al_file_path(const al_file *f);
/* fsync, close, rename into place (see above), fsync the directory.
 * Frees f in all cases; on failure the temp file is removed and OUT is as
 * it was. */
int al_file_commit(al_file *f, al_error **err);
/* Remove the temp file and free f. Accepts NULL. */
void al_file_abort(al_file *f);
/* Remove the temp files of every al_file not yet committed or aborted;
 * for a signal handler (async-signal-safe: unlinkat only). */
void al_file_abort_all(void);

/* A whole small file (a report, a lock file) written through the above,
 * replacing an existing one. */
int al_file_write_atomic(const char *path, const void *buf, size_t len, al_error **err);

#endif
