/* Unit tests of --check's pieces: the zstd frame header reader (against
 * what libzstd itself says), the streaming scan of a small tar with
 * compressed members, and printable names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader: the reference */
#include <zstd.h>

#include "check-private.h"
#include "check-scan.h"
#include "digest.h"
#include "util.h"

static unsigned char *make_data(size_t n)
{
    unsigned char *p = al_xmalloc(n);
    uint32_t x = 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i / 32) % 2 ? (unsigned char)(x >> 24) : (unsigned char)('a' + i % 26);
    }
    return p;
}

/* A frame made with these parameters: our window is libzstd's. */
static void one_frame(size_t n, int level, int wlog, bool pledge)
{
    unsigned char *src = make_data(n);
    size_t cap = ZSTD_compressBound(n);
    unsigned char *dst = al_xmalloc(cap);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    if (wlog)
        ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wlog);
    size_t got;
    if (pledge) {
        got = ZSTD_compress2(c, dst, cap, src, n);
    } else {
        /* Size unknown, as when streaming: no single segment. */
        ZSTD_outBuffer o = {dst, cap, 0};
        ZSTD_inBuffer in = {src, n, 0};
        ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue);
        while (ZSTD_compressStream2(c, &o, &in, ZSTD_e_end) != 0)
            ;
        got = o.pos;
    }
    assert_false(ZSTD_isError(got));
    ZSTD_frameHeader fh;
    assert_int_equal(0, ZSTD_getFrameHeader(&fh, dst, got));
    uint64_t w = 0;
    assert_int_equal(1, al_zstd_frame_window(dst, got, &w));
    assert_int_equal(fh.windowSize, w);
    /* Too short a prefix is refused, never read past. */
    assert_int_equal(-1, al_zstd_frame_window(dst, 4, &w));
    ZSTD_freeCCtx(c);
    free(src);
    free(dst);
}

static void test_frame_window(void **state)
{
    (void)state;
    one_frame(1000, 3, 0, true);     /* single segment, 2-byte content size */
    one_frame(100, 3, 0, true);      /* single segment, 1-byte content size */
    one_frame(300000, 19, 0, true);  /* 4-byte content size */
    one_frame(300000, 3, 0, false);  /* window descriptor */
    one_frame(300000, 3, 26, false); /* 64 MiB window */
    one_frame(300000, 3, 27, false); /* 128 MiB */
    /* libzstd writes power-of-two windows only: a mantissa by hand
     * (exponent 7, mantissa 3: 2^17 + 3 * 2^14). */
    static const unsigned char mantissa[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3 | 3};
    uint64_t wm = 0;
    assert_int_equal(1, al_zstd_frame_window(mantissa, sizeof(mantissa), &wm));
    assert_int_equal(131072 + 3 * 16384, wm);
    static const unsigned char skippable[] = {0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0};
    uint64_t w = 0;
    assert_int_equal(0, al_zstd_frame_window(skippable, sizeof(skippable), &w));
    static const unsigned char junk[] = "not zstd";
    assert_int_equal(-1, al_zstd_frame_window(junk, sizeof(junk), &w));
}

/* A ustar header for a regular file. */
static void tar_header(unsigned char h[512], const char *name, size_t size, char type)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011zo", size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static void tar_add(FILE *f, const char *name, const void *data, size_t len)
{
    unsigned char h[512];
    tar_header(h, name, len, '0');
    fwrite(h, 1, 512, f);
    fwrite(data, 1, len, f);
    static const unsigned char pad[512];
    fwrite(pad, 1, (512 - len % 512) % 512, f);
}

static size_t gzip_of(unsigned char *out, size_t cap, const unsigned char *in, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(Z_OK, deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY));
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(Z_STREAM_END, deflate(&z, Z_FINISH));
    size_t got = cap - z.avail_out;
    deflateEnd(&z);
    return got;
}

static void test_scan(void **state)
{
    (void)state;
    size_t n = 200000;
    unsigned char *raw = make_data(n);
    size_t cap = n + 1024;
    unsigned char *gz = al_xmalloc(cap), *zs = al_xmalloc(ZSTD_compressBound(n));
    size_t gz_len = gzip_of(gz, cap, raw, n);
    size_t zs_len = ZSTD_compress(zs, ZSTD_compressBound(n), raw, n, 3);
    char path[] = "/tmp/al-test-check-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(dup(fd), "w");
    tar_add(f, "./a.json", "{\"x\": 1}\n", 9);
    tar_add(f, "layer.gz", gz, gz_len);
    tar_add(f, "layer.zst", zs, zs_len);
    tar_add(f, "plain", raw, n);
    static const unsigned char end[1024];
    fwrite(end, 1, sizeof(end), f);
    fclose(f);

    al_scan s;
    assert_int_equal(0, al_check_scan(&s, fd, NULL));
    assert_null(s.read_error);
    assert_string_equal("none", s.compression);
    assert_int_equal(4, s.n_members);
    char want[AL_DIGEST_BUF];
    al_digest_bytes(want, raw, n);
    assert_string_equal("a.json", s.members[0].name);
    assert_non_null(s.members[0].json);
    assert_string_equal("{\"x\": 1}\n", s.members[0].json);
    for (size_t i = 1; i < 4; i++) {
        assert_null(s.members[i].decomp_error);
        assert_string_equal(want, s.members[i].diff_id); /* all three are the same bytes */
        assert_int_equal(n, s.members[i].diff_size);
        assert_null(s.members[i].json);
    }
    assert_int_equal(AL_COMP_GZIP, s.members[1].comp);
    assert_int_equal(AL_COMP_ZSTD, s.members[2].comp);
    assert_int_equal(AL_COMP_NONE, s.members[3].comp);
    al_digest_bytes(want, gz, gz_len);
    assert_string_equal(want, s.members[1].digest);
    al_scan_dispose(&s);

    /* Cut inside the gzip member: a read error naming it. */
    assert_int_equal(0, ftruncate(fd, 512 + 512 + 512 + (off_t)gz_len / 2));
    assert_int_equal(0, al_check_scan(&s, fd, NULL));
    assert_non_null(s.read_error);
    assert_string_equal("layer.gz", s.read_error_member);
    assert_true(s.members[1].incomplete);
    al_scan_dispose(&s);
    close(fd);
    unlink(path);
    free(raw);
    free(gz);
    free(zs);
}

static void test_printable(void **state)
{
    (void)state;
    /* Terminal escapes and invalid UTF-8 escaped; valid UTF-8 kept. */
    char *p = al_check_printable("a\x1b[31mb\nc\xc3\xa9\xff");
    assert_string_equal("a\\x1b[31mb\\x0ac\xc3\xa9\\xff", p);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_window),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
