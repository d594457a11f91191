/* Unit tests for common/sink: plain, zstd and gzip outputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "digest.h"
#include "sink.h"
#include "util.h"

/* Deterministic, partly compressible data: text-like runs with noise. */
static unsigned char *make_data(size_t n)
{
    unsigned char *p = al_xmalloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i / 64) % 3 == 0 ? (unsigned char)(x >> 24) : (unsigned char)('a' + i % 26);
    }
    return p;
}

static int tmpfile_fd(char path[64])
{
    strcpy(path, "/tmp/al-test-sink-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    return fd;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = al_xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Write data through a sink in pieces of the given sizes (cycled), then
 * return the file's bytes. */
static unsigned char *sink_roundtrip(al_sink_kind kind, int level, const unsigned char *data,
                                     size_t n, const size_t *pieces, size_t n_pieces,
                                     size_t *out_len, char path[64])
{
    int fd = tmpfile_fd(path);
    al_sink *s = NULL;
    al_error *err = NULL;
    assert_int_equal(al_sink_new(&s, fd, kind, level, 0, &err), 0);
    size_t off = 0, k = 0;
    while (off < n) {
        size_t len = pieces[k++ % n_pieces];
        if (len > n - off)
            len = n - off;
        assert_int_equal(al_sink_write(s, data + off, len, &err), 0);
        off += len;
    }
    assert_int_equal(al_sink_finish(s, &err), 0);
    assert_int_equal(al_sink_bytes_in(s), n);
    uint64_t out = al_sink_bytes_out(s);
    al_sink_free(s);
    close(fd);
    unsigned char *buf = read_file(path, out_len);
    assert_int_equal(out, *out_len);
    return buf;
}

static unsigned char *zstd_decode(const unsigned char *buf, size_t len, size_t *out_len)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t cap = 1 << 20, fill = 0;
    unsigned char *out = al_xmalloc(cap);
    ZSTD_inBuffer in = {buf, len, 0};
    while (in.pos < in.size) {
        if (cap - fill < (1 << 16)) {
            cap *= 2;
            out = al_xrealloc(out, cap);
        }
        ZSTD_outBuffer o = {out, cap, fill};
        size_t r = ZSTD_decompressStream(d, &o, &in);
        assert_false(ZSTD_isError(r));
        fill = o.pos;
    }
    ZSTD_freeDCtx(d);
    *out_len = fill;
    return out;
}

static unsigned char *gzip_decode(const unsigned char *buf, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    size_t cap = 1 << 20, fill = 0;
    unsigned char *out = al_xmalloc(cap);
    z.next_in = (Bytef *)buf;
    z.avail_in = (uInt)len;
    int r;
    do {
        if (cap - fill < (1 << 16)) {
            cap *= 2;
            out = al_xrealloc(out, cap);
        }
        z.next_out = out + fill;
        z.avail_out = (uInt)(cap - fill);
        r = inflate(&z, Z_NO_FLUSH);
        assert_true(r == Z_OK || r == Z_STREAM_END);
        fill = cap - z.avail_out;
    } while (r != Z_STREAM_END);
    assert_int_equal(z.avail_in, 0); /* nothing after the trailer */
    inflateEnd(&z);
    *out_len = fill;
    return out;
}

static const size_t PIECES_SMALL[] = {1, 511, 512, 7, 4096, 100000};
static const size_t PIECES_BIG[] = {3u << 20, 1u << 20, 17};

static void test_roundtrip_libs(void **state)
{
    (void)state;
    static const struct {
        al_sink_kind kind;
        int level;
        size_t n;
        const size_t *pieces;
        size_t n_pieces;
    } cases[] = {
        {AL_SINK_PLAIN, 0, 0, PIECES_SMALL, 6},
        {AL_SINK_PLAIN, 0, 5000000, PIECES_SMALL, 6},
        {AL_SINK_PLAIN, 0, 9000000, PIECES_BIG, 3},
        {AL_SINK_ZSTD, 0, 0, PIECES_SMALL, 6},
        /* Past the writeback step (16 MiB) more than once. */
        {AL_SINK_PLAIN, 0, 40000000, PIECES_BIG, 3},
        {AL_SINK_ZSTD, 0, 5000000, PIECES_SMALL, 6},
        {AL_SINK_ZSTD, 1, 9000000, PIECES_BIG, 3},
        {AL_SINK_ZSTD, 19, 300000, PIECES_SMALL, 6},
        {AL_SINK_GZIP, 0, 0, PIECES_SMALL, 6},
        {AL_SINK_GZIP, 0, 5000000, PIECES_SMALL, 6},
        {AL_SINK_GZIP, 1, 9000000, PIECES_BIG, 3},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        unsigned char *data = make_data(cases[i].n);
        char path[64];
        size_t len = 0, dlen = 0;
        unsigned char *buf = sink_roundtrip(cases[i].kind, cases[i].level, data, cases[i].n,
                                            cases[i].pieces, cases[i].n_pieces, &len, path);
        unsigned char *dec = NULL;
        switch (cases[i].kind) {
        case AL_SINK_PLAIN:
            dec = buf;
            dlen = len;
            buf = NULL;
            break;
        case AL_SINK_ZSTD: dec = zstd_decode(buf, len, &dlen); break;
        case AL_SINK_GZIP: dec = gzip_decode(buf, len, &dlen); break;
        }
        assert_int_equal(dlen, cases[i].n);
        assert_memory_equal(dec, data, cases[i].n);
        if (cases[i].kind != AL_SINK_PLAIN && cases[i].n > 0)
            assert_true(len < cases[i].n); /* it did compress */
        free(buf);
        free(dec);
        free(data);
        unlink(path);
    }
}

/* The CLIs decode what we write, and agree on the content's digest. */
static void test_roundtrip_cli(void **state)
{
    (void)state;
    static const struct {
        al_sink_kind kind;
        const char *cmd;
    } cases[] = {
        {AL_SINK_ZSTD, "zstd -q -dc"},
        {AL_SINK_GZIP, "gzip -dc"},
    };
    size_t n = 4000000;
    unsigned char *data = make_data(n);
    char want[AL_DIGEST_BUF];
    al_digest_bytes(want, data, n);
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        char path[64];
        size_t len;
        free(sink_roundtrip(cases[i].kind, 0, data, n, PIECES_SMALL, 6, &len, path));
        char *cmd = al_xasprintf("%s %s | sha256sum", cases[i].cmd, path);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char line[256] = "";
        assert_non_null(fgets(line, sizeof(line), p));
        assert_int_equal(pclose(p), 0);
        assert_memory_equal(line, want + 7, AL_DIGEST_HEX_LEN);
        free(cmd);
        unlink(path);
    }
    free(data);
}

/* Every level's frames declare a window a 32 MiB decoder accepts. */
static void test_zstd_window(void **state)
{
    (void)state;
    static const int levels[] = {0, 1, 3, 9, 19, 22};
    size_t n = 2000000;
    unsigned char *data = make_data(n);
    for (size_t i = 0; i < AL_ARRAY_SIZE(levels); i++) {
        char path[64];
        size_t len;
        unsigned char *buf =
            sink_roundtrip(AL_SINK_ZSTD, levels[i], data, n, PIECES_BIG, 3, &len, path);
        ZSTD_frameHeader fh;
        assert_int_equal(ZSTD_getFrameHeader(&fh, buf, len), 0);
        assert_int_equal(fh.frameType, ZSTD_frame);
        assert_true(fh.windowSize <= (1ull << AL_SINK_ZSTD_MAX_WLOG));
        assert_true(fh.checksumFlag);
        /* A decoder limited to 2^25 decodes it. */
        ZSTD_DCtx *d = ZSTD_createDCtx();
        assert_false(ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 25)));
        unsigned char *out = al_xmalloc(n);
        ZSTD_inBuffer in = {buf, len, 0};
        ZSTD_outBuffer o = {out, n, 0};
        size_t r = 1;
        while (in.pos < in.size && r != 0) {
            r = ZSTD_decompressStream(d, &o, &in);
            assert_false(ZSTD_isError(r));
        }
        assert_int_equal(o.pos, n);
        assert_memory_equal(out, data, n);
        ZSTD_freeDCtx(d);
        free(out);
        free(buf);
        unlink(path);
    }
    free(data);
}

static void test_write_error(void **state)
{
    (void)state;
    static const al_sink_kind kinds[] = {AL_SINK_PLAIN, AL_SINK_ZSTD, AL_SINK_GZIP};
    unsigned char *data = make_data(3000000);
    for (size_t i = 0; i < AL_ARRAY_SIZE(kinds); i++) {
        int fd = open("/dev/full", O_WRONLY);
        assert_true(fd >= 0);
        al_sink *s = NULL;
        al_error *err = NULL;
        assert_int_equal(al_sink_new(&s, fd, kinds[i], 0, 1, &err), 0);
        int r = al_sink_write(s, data, 3000000, &err);
        if (r == 0)
            r = al_sink_finish(s, &err);
        assert_int_equal(r, AL_E_IO);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "write output"));
        al_error_free(err);
        al_sink_free(s);
        close(fd);
    }
    free(data);
}

/* A write after finish is a caller's bug: an assert (docs/STYLE.md,
 * Errors), not an error reported as the user's. The child must abort. */
static void test_write_after_finish(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#endif
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fclose(stderr); /* the assert's message is expected */
        int fd = open("/dev/null", O_WRONLY);
        al_sink *s = NULL;
        al_error *err = NULL;
        if (al_sink_new(&s, fd, AL_SINK_ZSTD, 0, 1, &err) == 0 && al_sink_finish(s, &err) == 0)
            al_sink_write(s, "x", 1, &err);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

static void test_bad_level(void **state)
{
    (void)state;
    al_sink *s = NULL;
    al_error *err = NULL;
    assert_int_equal(al_sink_new(&s, 1, AL_SINK_GZIP, 42, 1, &err), AL_E_UNSUPPORTED);
    assert_null(s);
    al_error_free(err);
}

static void test_kind_names(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        al_sink_kind want;
    } paths[] = {
        {"images.tar", AL_SINK_PLAIN},
        {"images.tar.zst", AL_SINK_ZSTD},
        {"x/images.tzst", AL_SINK_ZSTD},
        {"images.tar.gz", AL_SINK_GZIP},
        {"images.tgz", AL_SINK_GZIP},
        {"images", AL_SINK_PLAIN},
        {"images.zst", AL_SINK_PLAIN},
        {"images-{arch}.tar.zst", AL_SINK_ZSTD},
        {"-", AL_SINK_PLAIN},
        {"", AL_SINK_PLAIN},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(paths); i++)
        assert_int_equal(al_sink_kind_from_path(paths[i].path), paths[i].want);

    static const struct {
        const char *s;
        int rc;
        al_sink_kind want;
    } names[] = {
        {"none", 0, AL_SINK_PLAIN}, {"zstd", 0, AL_SINK_ZSTD}, {"gzip", 0, AL_SINK_GZIP},
        {"gz", AL_E_USAGE, 0},      {"", AL_E_USAGE, 0},       {"ZSTD", AL_E_USAGE, 0},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
        al_sink_kind k = AL_SINK_PLAIN;
        al_error *err = NULL;
        assert_int_equal(al_sink_kind_parse(&k, names[i].s, &err), names[i].rc);
        if (names[i].rc == 0) {
            assert_int_equal(k, names[i].want);
            assert_string_equal(al_sink_kind_name(k), names[i].s);
        } else {
            assert_non_null(strstr(err->msg, "compression"));
        }
        al_error_free(err);
    }
}

/* al_sink_copy_fd: the bytes of a file range land after what was gathered,
 * whatever method the output allows: copy_file_range (regular file),
 * sendfile (pipe), read/write (O_APPEND file), or compression. */
enum { OUT_FILE, OUT_APPEND, OUT_PIPE };

static void test_copy_fd(void **state)
{
    (void)state;
    static const struct {
        al_sink_kind kind;
        int out;
        size_t file_len;      /* the input file */
        uint64_t offset, len; /* the range copied */
        int rc;               /* AL_E_SIZE: the file ends first */
    } cases[] = {
        {AL_SINK_PLAIN, OUT_FILE, 3000000, 0, 3000000, 0},
        {AL_SINK_PLAIN, OUT_FILE, 3000000, 12345, 2000000, 0},
        {AL_SINK_PLAIN, OUT_FILE, 100, 0, 0, 0},
        {AL_SINK_PLAIN, OUT_FILE, 100, 50, 51, AL_E_SIZE},
        {AL_SINK_PLAIN, OUT_APPEND, 2500000, 7, 2400000, 0},
        {AL_SINK_PLAIN, OUT_PIPE, 40000, 3, 30000, 0}, /* fits the pipe's buffer */
        {AL_SINK_ZSTD, OUT_FILE, 3000000, 999, 2500000, 0},
        {AL_SINK_GZIP, OUT_FILE, 600000, 0, 600000, 0},
        {AL_SINK_GZIP, OUT_FILE, 600000, 0, 600001, AL_E_SIZE},
    };
    static const char head[] = "gathered first";
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        unsigned char *data = make_data(cases[i].file_len);
        char in_path[64], out_path[64];
        int in = tmpfile_fd(in_path);
        assert_int_equal(al_write_all(in, data, cases[i].file_len), 0);
        int out, pfd[2] = {-1, -1};
        if (cases[i].out == OUT_PIPE) {
            assert_int_equal(pipe(pfd), 0);
            out = pfd[1];
            out_path[0] = '\0';
        } else {
            close(tmpfile_fd(out_path));
            out = open(out_path, O_WRONLY | (cases[i].out == OUT_APPEND ? O_APPEND : 0));
            assert_true(out >= 0);
        }
        /* The input's file position must not matter. */
        assert_true(lseek(in, 17, SEEK_SET) == 17);
        al_sink *s = NULL;
        al_error *err = NULL;
        assert_int_equal(al_sink_new(&s, out, cases[i].kind, 0, 1, &err), 0);
        assert_int_equal(al_sink_write(s, head, sizeof(head) - 1, &err), 0);
        int rc = al_sink_copy_fd(s, in, cases[i].offset, cases[i].len, &err);
        assert_int_equal(rc, cases[i].rc);
        if (rc < 0) {
            assert_non_null(strstr(err->msg, "ended"));
            al_error_clear(&err);
        } else {
            assert_int_equal(al_sink_finish(s, &err), 0);
            assert_int_equal(al_sink_bytes_in(s), sizeof(head) - 1 + cases[i].len);
            size_t len = 0, dlen = 0;
            unsigned char *buf;
            if (cases[i].out == OUT_PIPE) {
                close(pfd[1]);
                buf = al_xmalloc(sizeof(head) + cases[i].len + 1);
                ssize_t n;
                while ((n = read(pfd[0], buf + len, sizeof(head) + cases[i].len - len)) > 0)
                    len += (size_t)n;
            } else {
                buf = read_file(out_path, &len);
            }
            assert_int_equal(al_sink_bytes_out(s), len);
            unsigned char *dec = buf;
            dlen = len;
            if (cases[i].kind == AL_SINK_ZSTD)
                dec = zstd_decode(buf, len, &dlen);
            else if (cases[i].kind == AL_SINK_GZIP)
                dec = gzip_decode(buf, len, &dlen);
            assert_int_equal(dlen, sizeof(head) - 1 + cases[i].len);
            assert_memory_equal(dec, head, sizeof(head) - 1);
            assert_memory_equal(dec + sizeof(head) - 1, data + cases[i].offset, cases[i].len);
            if (dec != buf)
                free(dec);
            free(buf);
        }
        assert_true(lseek(in, 0, SEEK_CUR) == 17);
        al_sink_free(s);
        close(in);
        if (cases[i].out == OUT_PIPE) {
            close(pfd[0]);
            if (rc < 0)
                close(pfd[1]);
        } else {
            close(out);
            unlink(out_path);
        }
        unlink(in_path);
        free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_libs),     cmocka_unit_test(test_roundtrip_cli),
        cmocka_unit_test(test_zstd_window),        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_write_after_finish), cmocka_unit_test(test_bad_level),
        cmocka_unit_test(test_kind_names),         cmocka_unit_test(test_copy_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
