/* Output sinks for archives: plain, zstd or gzip, counted and written as they go (see sink.h). */
#include "sink.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

struct al_sink {
    int fd; /* borrowed */
    al_sink_kind kind;
    bool finished;
    /* Gathers small writes (tar headers, JSON) so the compressor and the
     * descriptor see big chunks. */
    unsigned char *in;
    size_t in_fill;
    /* Compressed bytes waiting for the descriptor (zstd, gzip). */
    unsigned char *out;
    size_t out_fill;
    ZSTD_CCtx *zc;
    z_stream gz;
    bool gz_init;
    uint64_t bytes_in, bytes_out;
    /* A regular file: where our bytes start in it, and how many of them
     * have been handed to writeback (see start_writeback); -1: not a file. */
    int64_t file_start;
    uint64_t writeback_done;
};

/* Start writeback every this many bytes. */
#define WRITEBACK_STEP (16u << 20)

/* The owner fsyncs the output at the end. Left alone, the kernel would
 * start writing a big tarball back only then (or when its dirty limits
 * are hit), and that fsync would wait for all of it: the disk idles while
 * we copy, then we idle while it writes. Asking for writeback of each
 * finished 16 MiB as we go (SYNC_FILE_RANGE_WRITE: start it, do not wait)
 * overlaps the two, and the final fsync has only the tail left. */
static void start_writeback(al_sink *s)
{
    if (s->file_start < 0 || s->bytes_out - s->writeback_done < WRITEBACK_STEP)
        return;
    (void)sync_file_range(s->fd, s->file_start + (int64_t)s->writeback_done,
                          (int64_t)(s->bytes_out - s->writeback_done), SYNC_FILE_RANGE_WRITE);
    s->writeback_done = s->bytes_out;
}

static int write_fd(al_sink *s, const void *buf, size_t len, al_error **err)
{
    int r = al_write_all(s->fd, buf, len);
    if (r < 0)
        return al_error_set(err, AL_E_IO, -r, "write output");
    s->bytes_out += len;
    start_writeback(s);
    return 0;
}

static int flush_out(al_sink *s, al_error **err)
{
    if (s->out_fill == 0)
        return 0;
    int r = write_fd(s, s->out, s->out_fill, err);
    s->out_fill = 0;
    return r;
}

/* Run the zstd compressor over buf with `mode`; for ZSTD_e_end, until the
 * frame is complete. Output goes out in AL_SINK_BUF pieces. */
static int zstd_feed(al_sink *s, const void *buf, size_t len, ZSTD_EndDirective mode,
                     al_error **err)
{
    ZSTD_inBuffer in = {buf, len, 0};
    for (;;) {
        ZSTD_outBuffer o = {s->out, AL_SINK_BUF, s->out_fill};
        size_t rem = ZSTD_compressStream2(s->zc, &o, &in, mode);
        s->out_fill = o.pos;
        if (ZSTD_isError(rem))
            return al_error_set(err, AL_E_IO, 0, "zstd compression: %s", ZSTD_getErrorName(rem));
        if (s->out_fill == AL_SINK_BUF) {
            int r = flush_out(s, err);
            if (r < 0)
                return r;
        }
        if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size)
            return 0;
    }
}

static int gzip_feed(al_sink *s, const void *buf, size_t len, int flush, al_error **err)
{
    s->gz.next_in = (Bytef *)buf;
    s->gz.avail_in = (uInt)len; /* len <= AL_SINK_BUF, see sink_feed */
    for (;;) {
        s->gz.next_out = s->out + s->out_fill;
        s->gz.avail_out = (uInt)(AL_SINK_BUF - s->out_fill);
        int zr = deflate(&s->gz, flush);
        s->out_fill = AL_SINK_BUF - s->gz.avail_out;
        if (zr == Z_STREAM_ERROR)
            return al_error_set(err, AL_E_IO, 0, "gzip compression failed");
        if (s->out_fill == AL_SINK_BUF) {
            int r = flush_out(s, err);
            if (r < 0)
                return r;
        }
        if (flush == Z_FINISH ? zr == Z_STREAM_END : (s->gz.avail_in == 0 && s->gz.avail_out != 0))
            return 0;
    }
}

static int sink_feed(al_sink *s, const void *buf, size_t len, al_error **err)
{
    switch (s->kind) {
    case AL_SINK_PLAIN: return write_fd(s, buf, len, err);
    case AL_SINK_ZSTD: return zstd_feed(s, buf, len, ZSTD_e_continue, err);
    case AL_SINK_GZIP: {
        /* zlib counts in uInt: feed in buffer-sized slices. */
        const unsigned char *p = buf;
        while (len > 0) {
            size_t n = len < AL_SINK_BUF ? len : AL_SINK_BUF;
            int r = gzip_feed(s, p, n, Z_NO_FLUSH, err);
            if (r < 0)
                return r;
            p += n;
            len -= n;
        }
        return 0;
    }
    }
    assert(!"bad sink kind"); /* al_sink_new accepts no other */
    return al_error_set(err, AL_E_IO, 0, "bad sink kind");
}

int al_sink_new(al_sink **out, int fd, al_sink_kind kind, int level, int threads, al_error **err)
{
    al_sink *s = al_xcalloc(1, sizeof(*s));
    s->fd = fd;
    s->kind = kind;
    s->in = al_xmalloc(AL_SINK_BUF);
    struct stat st;
    off_t pos;
    s->file_start = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (pos = lseek(fd, 0, SEEK_CUR)) >= 0)
        s->file_start = pos;
    if (kind == AL_SINK_ZSTD) {
        s->out = al_xmalloc(AL_SINK_BUF);
        s->zc = ZSTD_createCCtx();
        if (s->zc == NULL)
            abort(); /* only fails on allocation */
        if (level == 0)
            level = AL_SINK_ZSTD_DEFAULT_LEVEL;
        if (threads <= 0) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            threads = n > 0 ? (int)n : 1;
        }
        /* Levels up to 19 use windows of at most 8 MiB; 20-22 go up to
         * 128 MiB, more than a decoder capped at 32 MiB accepts, so those
         * are capped. (ZSTD_getCParams would tell, but it is not in the
         * stable API.) test_sink checks every level's frame header. */
        size_t zr = ZSTD_CCtx_setParameter(s->zc, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(zr) && level > 19)
            zr = ZSTD_CCtx_setParameter(s->zc, ZSTD_c_windowLog, AL_SINK_ZSTD_MAX_WLOG);
        if (!ZSTD_isError(zr))
            zr = ZSTD_CCtx_setParameter(s->zc, ZSTD_c_checksumFlag, 1);
        if (ZSTD_isError(zr)) {
            /* Levels are checked where they are given: this libzstd
             * refuses what the flag accepted. */
            int rc = al_error_set(err, AL_E_UNSUPPORTED, 0, "zstd level %d: %s", level,
                                  ZSTD_getErrorName(zr));
            al_sink_free(s);
            return rc;
        }
        /* A libzstd built without threads refuses workers: then it is
         * single-threaded, which is still correct. */
        if (threads > 1)
            (void)ZSTD_CCtx_setParameter(s->zc, ZSTD_c_nbWorkers, threads);
    } else if (kind == AL_SINK_GZIP) {
        s->out = al_xmalloc(AL_SINK_BUF);
        if (level == 0)
            level = AL_SINK_GZIP_DEFAULT_LEVEL;
        /* windowBits 15 + 16: write a gzip header and trailer. */
        int zr = deflateInit2(&s->gz, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        if (zr != Z_OK) {
            int rc = al_error_set(err, AL_E_UNSUPPORTED, 0, "gzip level %d: %s", level,
                                  zr == Z_STREAM_ERROR ? "invalid" : "init failed");
            al_sink_free(s);
            return rc;
        }
        s->gz_init = true;
    } else {
        assert(kind == AL_SINK_PLAIN);
    }
    *out = s;
    return 0;
}

int al_sink_write(al_sink *s, const void *buf, size_t len, al_error **err)
{
    assert(!s->finished); /* a caller's bug (docs/STYLE.md, Errors) */
    const unsigned char *p = buf;
    s->bytes_in += len;
    while (len > 0) {
        /* A big write with nothing pending skips the copy. */
        if (s->in_fill == 0 && len >= AL_SINK_BUF) {
            size_t n = len - len % AL_SINK_BUF;
            int r = sink_feed(s, p, n, err);
            if (r < 0)
                return r;
            p += n;
            len -= n;
            continue;
        }
        size_t n = AL_SINK_BUF - s->in_fill;
        if (n > len)
            n = len;
        memcpy(s->in + s->in_fill, p, n);
        s->in_fill += n;
        p += n;
        len -= n;
        if (s->in_fill == AL_SINK_BUF) {
            int r = sink_feed(s, s->in, s->in_fill, err);
            s->in_fill = 0;
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* One kernel copy moves at most this much, so a signal is seen soon. */
#define COPY_STEP (64u << 20)
/* Read size when a compressing sink copies a file. */
#define COPY_BUF (256u * 1024u)

enum { COPY_RANGE, COPY_SENDFILE, COPY_READ };

/* Errors that mean "this method cannot do it here", not "it failed":
 * copy_file_range wants regular files on both sides (stdout may be a pipe)
 * and an output without O_APPEND; sendfile wants an output without
 * O_APPEND; old kernels lack either. */
static bool try_next_method(int method, int e)
{
    if (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == EXDEV)
        return true;
    return method == COPY_RANGE && e == EBADF;
}

/* A plain sink: what is gathered goes out first, then the kernel copies
 * the file's pages to the output (page cache to page cache, as `cat`
 * does) without a copy into our buffers and back. */
static int copy_plain(al_sink *s, int fd, uint64_t offset, uint64_t len, al_error **err)
{
    if (s->in_fill > 0) {
        int r = write_fd(s, s->in, s->in_fill, err);
        s->in_fill = 0;
        if (r < 0)
            return r;
    }
    off_t off = (off_t)offset;
    uint64_t left = len;
    int method = COPY_RANGE;
    while (left > 0) {
        size_t want = left < COPY_STEP ? (size_t)left : COPY_STEP;
        ssize_t n;
        if (method == COPY_RANGE) {
            n = copy_file_range(fd, &off, s->fd, NULL, want, 0);
        } else if (method == COPY_SENDFILE) {
            n = sendfile(s->fd, fd, &off, want);
        } else {
            /* s->in is empty: use it as the read buffer. */
            n = pread(fd, s->in, want < AL_SINK_BUF ? want : AL_SINK_BUF, off);
            if (n < 0 && errno != EINTR)
                return al_error_set(err, AL_E_IO, errno, "read input file");
            if (n > 0) {
                int r = al_write_all(s->fd, s->in, (size_t)n);
                if (r < 0)
                    return al_error_set(err, AL_E_IO, -r, "write output");
                off += n;
            }
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (try_next_method(method, errno)) {
                method++;
                continue;
            }
            return al_error_set(err, AL_E_IO, errno, "copy to output");
        }
        if (n == 0)
            return al_error_set(err, AL_E_SIZE, 0, "input file ended %llu bytes early",
                                (unsigned long long)left);
        left -= (uint64_t)n;
        s->bytes_in += (uint64_t)n;
        s->bytes_out += (uint64_t)n;
        start_writeback(s);
    }
    return 0;
}

int al_sink_copy_fd(al_sink *s, int fd, uint64_t offset, uint64_t len, al_error **err)
{
    assert(!s->finished);
    if (s->kind == AL_SINK_PLAIN)
        return copy_plain(s, fd, offset, len, err);
    /* A compressor needs the bytes in user space anyway. */
    _cleanup_free_ unsigned char *buf = al_xmalloc(COPY_BUF);
    uint64_t left = len;
    off_t off = (off_t)offset;
    while (left > 0) {
        ssize_t n = pread(fd, buf, left < COPY_BUF ? (size_t)left : COPY_BUF, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return al_error_set(err, AL_E_IO, errno, "read input file");
        if (n == 0)
            return al_error_set(err, AL_E_SIZE, 0, "input file ended %llu bytes early",
                                (unsigned long long)left);
        int r = al_sink_write(s, buf, (size_t)n, err);
        if (r < 0)
            return r;
        off += n;
        left -= (uint64_t)n;
    }
    return 0;
}

int al_sink_finish(al_sink *s, al_error **err)
{
    if (s->finished)
        return 0;
    s->finished = true;
    int r = 0;
    switch (s->kind) {
    case AL_SINK_PLAIN: r = s->in_fill ? write_fd(s, s->in, s->in_fill, err) : 0; break;
    case AL_SINK_ZSTD: r = zstd_feed(s, s->in, s->in_fill, ZSTD_e_end, err); break;
    case AL_SINK_GZIP: r = gzip_feed(s, s->in, s->in_fill, Z_FINISH, err); break;
    }
    s->in_fill = 0;
    if (r == 0)
        r = flush_out(s, err);
    return r;
}

void al_sink_free(al_sink *s)
{
    if (s == NULL)
        return;
    ZSTD_freeCCtx(s->zc);
    if (s->gz_init)
        deflateEnd(&s->gz);
    free(s->in);
    free(s->out);
    free(s);
}

uint64_t al_sink_bytes_in(const al_sink *s)
{
    return s->bytes_in;
}
uint64_t al_sink_bytes_out(const al_sink *s)
{
    return s->bytes_out;
}

al_sink_kind al_sink_get_kind(const al_sink *s)
{
    return s->kind;
}

const char *al_sink_kind_name(al_sink_kind k)
{
    switch (k) {
    case AL_SINK_PLAIN: return "none";
    case AL_SINK_ZSTD: return "zstd";
    case AL_SINK_GZIP: return "gzip";
    }
    return "?";
}

int al_sink_kind_parse(al_sink_kind *out, const char *s, al_error **err)
{
    if (strcmp(s, "none") == 0)
        *out = AL_SINK_PLAIN;
    else if (strcmp(s, "zstd") == 0)
        *out = AL_SINK_ZSTD;
    else if (strcmp(s, "gzip") == 0)
        *out = AL_SINK_GZIP;
    else
        return al_error_set(err, AL_E_USAGE, 0,
                            "invalid compression \"%s\": expected none, zstd or gzip", s);
    return 0;
}

al_sink_kind al_sink_kind_from_path(const char *path)
{
    if (al_has_suffix(path, ".tar.zst") || al_has_suffix(path, ".tzst"))
        return AL_SINK_ZSTD;
    if (al_has_suffix(path, ".tar.gz") || al_has_suffix(path, ".tgz"))
        return AL_SINK_GZIP;
    return AL_SINK_PLAIN;
}
