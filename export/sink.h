/* Output sinks: where a tarball's bytes go. A sink writes to a file
 * descriptor, either as is, or through a streaming zstd or gzip
 * compressor. Writes are gathered into a large buffer (AL_SINK_BUF) so
 * that the descriptor sees few, big writes whatever the callers' sizes.
 *
 * zstd: level 3 by default, one worker thread per CPU, and a window of at
 * most 2^AL_SINK_ZSTD_MAX_WLOG bytes so that decoders with a 32 MiB memory
 * cap (k3s) can read the stream. gzip: zlib deflate with a gzip header. */
#ifndef AL_SINK_H
#define AL_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define AL_SINK_BUF (1u << 20)
#define AL_SINK_ZSTD_MAX_WLOG 25 /* 32 MiB */
#define AL_SINK_ZSTD_DEFAULT_LEVEL 3
#define AL_SINK_GZIP_DEFAULT_LEVEL 6

typedef enum {
    AL_SINK_PLAIN = 0,
    AL_SINK_ZSTD = 1,
    AL_SINK_GZIP = 2,
} al_sink_kind;

typedef struct al_sink al_sink;

/* A sink over fd (borrowed: never closed by the sink). level 0 picks the
 * default of the kind; it is ignored for AL_SINK_PLAIN. threads: zstd
 * worker threads, 0 = one per online CPU, 1 = no worker (single thread). */
int al_sink_new(al_sink **out, int fd, al_sink_kind kind, int level, int threads, al_error **err);

/* Append len bytes. Fails with AL_E_IO when the descriptor does. */
int al_sink_write(al_sink *s, const void *buf, size_t len, al_error **err);

/* Append len bytes of the file fd, from offset (fd's file position is
 * neither used nor moved). A plain sink lets the kernel copy them
 * (copy_file_range, else sendfile) so they never pass through user space;
 * a compressing sink reads and compresses them. AL_E_SIZE when the file
 * ends before len bytes (the bytes before are written), AL_E_IO when a
 * read or write fails. */
int al_sink_copy_fd(al_sink *s, int fd, uint64_t offset, uint64_t len, al_error **err);

/* Compress and write out everything pending and end the compressed stream
 * (zstd frame epilogue, gzip trailer). The sink accepts no more writes. */
int al_sink_finish(al_sink *s, al_error **err);

void al_sink_free(al_sink *s);

/* Bytes given to the sink so far, and bytes written to the descriptor. */
uint64_t al_sink_bytes_in(const al_sink *s);
uint64_t al_sink_bytes_out(const al_sink *s);

al_sink_kind al_sink_get_kind(const al_sink *s);

/* "none", "zstd", "gzip". */
const char *al_sink_kind_name(al_sink_kind k);
/* Parse "none"/"zstd"/"gzip" (AL_E_USAGE otherwise). */
int al_sink_kind_parse(al_sink_kind *out, const char *s, al_error **err);
/* Kind from a file name's suffix: .tar.zst/.tzst zstd, .tar.gz/.tgz gzip,
 * anything else plain. */
al_sink_kind al_sink_kind_from_path(const char *path);

#endif
