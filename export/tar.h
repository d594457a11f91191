/* A minimal tar writer over an al_sink: regular files and directories,
 * POSIX ustar headers, owner 0:0, mode 0644 (0755 for directories), a
 * fixed mtime. A name longer than the ustar name field is split into
 * prefix + name when it can be; otherwise, and for sizes of 8 GiB and
 * more, a PAX extended header ('x') carries the value. Nothing else gets a
 * PAX header, so an archive of blobs costs 512 bytes of header per file.
 *
 * A file is streamed: al_tar_file_begin(name, size) writes the header,
 * al_tar_file_write() appends data (never more than `size` in total), and
 * al_tar_file_end() checks that exactly `size` bytes came and pads the
 * data to 512 bytes. al_tar_finish() writes the two zero blocks that end
 * the archive; the sink itself is finished by its owner. */
#ifndef AL_TAR_H
#define AL_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "sink.h"

#define AL_TAR_BLOCK 512u

typedef struct al_tar al_tar;

/* sink is borrowed. mtime: seconds since the epoch put on every entry. */
al_tar *al_tar_new(al_sink *sink, int64_t mtime);
void al_tar_free(al_tar *t);

/* A directory entry; a trailing '/' is added when missing. */
int al_tar_add_dir(al_tar *t, const char *name, al_error **err);

int al_tar_file_begin(al_tar *t, const char *name, uint64_t size, al_error **err);
/* AL_E_SIZE when the data would exceed the size given to begin. */
int al_tar_file_write(al_tar *t, const void *buf, size_t len, al_error **err);
/* Like al_tar_file_write, with len bytes of the file fd from offset (see
 * al_sink_copy_fd: a plain sink copies them in the kernel). */
int al_tar_file_copy_fd(al_tar *t, int fd, uint64_t offset, uint64_t len, al_error **err);
/* AL_E_SIZE when fewer bytes than announced were written. */
int al_tar_file_end(al_tar *t, al_error **err);

/* A whole file from memory: begin + write + end. */
int al_tar_add_file(al_tar *t, const char *name, const void *buf, size_t len, al_error **err);

/* End of archive: two zero blocks. */
int al_tar_finish(al_tar *t, al_error **err);

/* Bytes the archive will hold for one entry of this name and data size
 * (headers, data, padding), to plan a whole archive's size in advance. A
 * directory is an entry of size 0 whose name ends in '/'. */
uint64_t al_tar_entry_size(const char *name, uint64_t size);
/* Bytes of the end-of-archive marker. */
#define AL_TAR_TRAILER_SIZE (2u * AL_TAR_BLOCK)

/* Bytes written through this writer so far (headers, data, padding). */
uint64_t al_tar_bytes(const al_tar *t);

#endif
