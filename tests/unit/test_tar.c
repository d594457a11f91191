/* Unit tests for common/tar: headers and long names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sink.h"
#include "tar.h"
#include "util.h"

/* A tar writer over a plain sink into a temp file. */
typedef struct fixture {
    char path[64];
    int fd;
    al_sink *sink;
    al_tar *tar;
} fixture;

static void fx_open(fixture *fx, int64_t mtime)
{
    strcpy(fx->path, "/tmp/al-test-tar-XXXXXX");
    fx->fd = mkstemp(fx->path);
    assert_true(fx->fd >= 0);
    al_error *err = NULL;
    assert_int_equal(al_sink_new(&fx->sink, fx->fd, AL_SINK_PLAIN, 0, 1, &err), 0);
    fx->tar = al_tar_new(fx->sink, mtime);
}

/* Finish the sink and return the file's bytes. */
static unsigned char *fx_close(fixture *fx, size_t *len)
{
    al_error *err = NULL;
    assert_int_equal(al_sink_finish(fx->sink, &err), 0);
    al_tar_free(fx->tar);
    al_sink_free(fx->sink);
    close(fx->fd);
    FILE *f = fopen(fx->path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = al_xmalloc(*len + 1);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static uint64_t octal(const unsigned char *p, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    return v;
}

static void check_header(const unsigned char *h)
{
    assert_memory_equal(h + 257,
                        "ustar\0"
                        "00",
                        8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    assert_int_equal(octal(h + 148, 8), sum);
    assert_int_equal(h[148 + 6], '\0');
    assert_int_equal(h[148 + 7], ' ');
    assert_int_equal(octal(h + 108, 8), 0); /* uid */
    assert_int_equal(octal(h + 116, 8), 0); /* gid */
}

static char *repeat(char c, size_t n)
{
    char *s = al_xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Header fields of one regular file, per name shape. */
static void test_header_fields(void **state)
{
    (void)state;
    char *n100 = repeat('a', 100);
    char *n101 = repeat('b', 101);
    char *p150 = repeat('p', 150);
    char *long_split = al_xasprintf("%s/%s", p150, n100); /* 251: prefix 150 + name 100 */
    char *c200 = repeat('c', 200);
    char *long_component = al_xasprintf("d/%s", c200); /* no split possible: PAX */
    static const char *blob =
        "blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const struct {
        const char *name;
        const char *want_name;   /* name field */
        const char *want_prefix; /* prefix field */
        int pax;
    } cases[] = {
        {"manifest.json", "manifest.json", "", 0},
        {blob, blob, "", 0},
        {n100, n100, "", 0},
        {long_split, n100, p150, 0},
        {n101, NULL, "", 1},
        {long_component, NULL, "", 1},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        fixture fx;
        fx_open(&fx, 1700000000);
        al_error *err = NULL;
        assert_int_equal(al_tar_add_file(fx.tar, cases[i].name, "hello", 5, &err), 0);
        uint64_t planned = al_tar_entry_size(cases[i].name, 5);
        assert_int_equal(al_tar_bytes(fx.tar), planned);
        size_t len;
        unsigned char *buf = fx_close(&fx, &len);
        assert_int_equal(len, planned);
        const unsigned char *h = buf;
        if (cases[i].pax) {
            check_header(h);
            assert_int_equal(h[156], 'x');
            size_t plen = (size_t)octal(h + 124, 12);
            char *rec = al_xasprintf("path=%s\n", cases[i].name);
            /* "LEN path=...\n" with LEN counting itself. */
            char *p = (char *)h + 512;
            char *sp = memchr(p, ' ', plen);
            assert_non_null(sp);
            assert_int_equal(strtoul(p, NULL, 10), plen);
            assert_memory_equal(sp + 1, rec, strlen(rec));
            free(rec);
            h += 512 + (plen + 511) / 512 * 512;
        }
        check_header(h);
        assert_int_equal(h[156], '0');
        assert_int_equal(octal(h + 100, 8), 0644);
        assert_int_equal(octal(h + 124, 12), 5);
        assert_int_equal(octal(h + 136, 12), 1700000000);
        if (cases[i].want_name) {
            assert_memory_equal(h, cases[i].want_name, strlen(cases[i].want_name));
            if (strlen(cases[i].want_name) < 100)
                assert_int_equal(h[strlen(cases[i].want_name)], 0);
        }
        assert_memory_equal(h + 345, cases[i].want_prefix, strlen(cases[i].want_prefix) + 1);
        assert_memory_equal(h + 512, "hello", 5);
        for (size_t k = 517; k < 1024; k++)
            assert_int_equal(h[k], 0);
        free(buf);
        unlink(fx.path);
    }
    free(n100);
    free(n101);
    free(p150);
    free(c200);
    free(long_split);
    free(long_component);
}

/* Sizes past the 11-digit octal limit: base-256 plus a PAX size record. */
static void test_big_size(void **state)
{
    (void)state;
    static const struct {
        uint64_t size;
        int pax;
    } cases[] = {
        {0, 0},
        {077777777777ULL, 0},
        {077777777777ULL + 1, 1},
        {20ULL << 30, 1},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        fixture fx;
        fx_open(&fx, 0);
        al_error *err = NULL;
        assert_int_equal(al_tar_file_begin(fx.tar, "big", cases[i].size, &err), 0);
        uint64_t hdr = al_tar_bytes(fx.tar);
        uint64_t data = (cases[i].size + 511) / 512 * 512;
        assert_int_equal(al_tar_entry_size("big", cases[i].size), hdr + data);
        size_t len;
        unsigned char *buf = fx_close(&fx, &len);
        assert_int_equal(len, hdr);
        const unsigned char *h = buf;
        if (cases[i].pax) {
            assert_int_equal(h[156], 'x');
            char *rec = al_xasprintf("size=%llu\n", (unsigned long long)cases[i].size);
            assert_non_null(strstr((const char *)h + 512, rec));
            free(rec);
            h += 1024;
            check_header(h);
            assert_true(h[124] & 0x80);
            uint64_t v = 0;
            for (size_t k = 124 + 4; k < 136; k++)
                v = (v << 8) | h[k];
            assert_int_equal(v, cases[i].size);
        } else {
            check_header(h);
            assert_int_equal(octal(h + 124, 12), cases[i].size);
        }
        free(buf);
        unlink(fx.path);
    }
}

static void test_size_enforced(void **state)
{
    (void)state;
    fixture fx;
    fx_open(&fx, 0);
    al_error *err = NULL;
    assert_int_equal(al_tar_file_begin(fx.tar, "f", 4, &err), 0);
    assert_int_equal(al_tar_file_write(fx.tar, "abc", 3, &err), 0);
    assert_int_equal(al_tar_file_write(fx.tar, "de", 2, &err), AL_E_SIZE);
    al_error_clear(&err);
    assert_int_equal(al_tar_file_end(fx.tar, &err), AL_E_SIZE);
    assert_non_null(strstr(err->msg, "3 bytes written, 4 announced"));
    al_error_clear(&err);
    assert_int_equal(al_tar_file_write(fx.tar, "d", 1, &err), 0);
    assert_int_equal(al_tar_file_end(fx.tar, &err), 0);
    static const char *bad[] = {"", "/abs"};
    for (size_t i = 0; i < AL_ARRAY_SIZE(bad); i++) {
        assert_int_equal(al_tar_file_begin(fx.tar, bad[i], 0, &err), AL_E_USAGE);
        al_error_clear(&err);
    }
    size_t len;
    free(fx_close(&fx, &len));
    unlink(fx.path);
}

/* Misuse of the writer's states is a caller's bug: an assert (docs/STYLE.md,
 * Errors), not an error the program would report as the user's. Each case
 * runs in a child, which must die of SIGABRT. */
static void misuse(int which)
{
    fixture fx;
    fx_open(&fx, 0);
    al_error *err = NULL;
    if (which >= 2 && which <= 4)
        al_tar_file_begin(fx.tar, "f", 1, &err);
    switch (which) {
    case 0: al_tar_file_write(fx.tar, "x", 1, &err); break;    /* no entry open */
    case 1: al_tar_file_end(fx.tar, &err); break;              /* no entry open */
    case 2: al_tar_add_dir(fx.tar, "d", &err); break;          /* "f" still open */
    case 3: al_tar_finish(fx.tar, &err); break;                /* "f" still open */
    case 4: al_tar_file_begin(fx.tar, "g", 0, &err); break;    /* "f" still open */
    case 5: al_tar_file_copy_fd(fx.tar, 0, 0, 1, &err); break; /* no entry open */
    }
    unlink(fx.path);
    _exit(0);
}

static void test_misuse_asserts(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#endif
    for (int which = 0; which < 6; which++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            fclose(stderr); /* the assert's message is expected */
            misuse(which);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
            fail_msg("misuse %d: the child did not abort (status %d)", which, status);
    }
}

/* al_tar_file_copy_fd: file ranges mixed with writes, sizes enforced, the
 * archive the same as when the bytes are written. */
static void test_copy_fd(void **state)
{
    (void)state;
    char in_path[] = "/tmp/al-test-tar-in-XXXXXX";
    int in = mkstemp(in_path);
    assert_true(in >= 0);
    static const char content[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    assert_int_equal(al_write_all(in, content, sizeof(content) - 1), 0);
    static const struct {
        uint64_t size;     /* announced */
        uint64_t off, len; /* copied from the file, after writing "W" */
        int rc_copy, rc_end;
    } cases[] = {
        {11, 0, 10, 0, 0},                  /* W + 10 bytes */
        {31, 5, 30, 0, 0},                  /* W + 30 bytes, from offset 5 */
        {5, 0, 10, AL_E_SIZE, AL_E_SIZE},   /* more than announced: refused, nothing copied */
        {30, 30, 10, AL_E_SIZE, AL_E_SIZE}, /* the file ends first */
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        fixture a, b;
        fx_open(&a, 0);
        fx_open(&b, 0);
        al_error *err = NULL;
        assert_int_equal(al_tar_file_begin(a.tar, "f", cases[i].size, &err), 0);
        assert_int_equal(al_tar_file_write(a.tar, "W", 1, &err), 0);
        assert_int_equal(al_tar_file_copy_fd(a.tar, in, cases[i].off, cases[i].len, &err),
                         cases[i].rc_copy);
        al_error_clear(&err);
        assert_int_equal(al_tar_file_end(a.tar, &err), cases[i].rc_end);
        al_error_clear(&err);
        if (cases[i].rc_end == 0) {
            /* The same entry, written from memory. */
            assert_int_equal(al_tar_file_begin(b.tar, "f", cases[i].size, &err), 0);
            assert_int_equal(al_tar_file_write(b.tar, "W", 1, &err), 0);
            assert_int_equal(al_tar_file_write(b.tar, content + cases[i].off, cases[i].len, &err),
                             0);
            assert_int_equal(al_tar_file_end(b.tar, &err), 0);
            assert_int_equal(al_tar_finish(a.tar, &err), 0);
            assert_int_equal(al_tar_finish(b.tar, &err), 0);
            assert_int_equal(al_tar_bytes(a.tar),
                             al_tar_entry_size("f", cases[i].size) + AL_TAR_TRAILER_SIZE);
        }
        size_t la, lb;
        unsigned char *ba = fx_close(&a, &la);
        unsigned char *bb = fx_close(&b, &lb);
        if (cases[i].rc_end == 0) {
            assert_int_equal(la, lb);
            assert_memory_equal(ba, bb, la);
        }
        free(ba);
        free(bb);
        unlink(a.path);
        unlink(b.path);
    }
    close(in);
    unlink(in_path);
}

/* What GNU tar makes of an archive: names, sizes, types, content. */
static void test_gnu_tar_roundtrip(void **state)
{
    (void)state;
    char *c200 = repeat('c', 200);
    char *p120 = repeat('p', 120);
    char *split = al_xasprintf("%s/%s", p120, "split-file.json");
    char *pax = al_xasprintf("dir/%s", c200);
    fixture fx;
    fx_open(&fx, 0);
    al_error *err = NULL;
    size_t big = 3 * 512 + 17;
    char *bigdata = al_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        bigdata[i] = (char)('A' + i % 26);
    uint64_t plan = 0;
    assert_int_equal(al_tar_add_dir(fx.tar, "blobs", &err), 0);
    plan += al_tar_entry_size("blobs/", 0);
    assert_int_equal(al_tar_add_dir(fx.tar, "blobs/sha256/", &err), 0);
    plan += al_tar_entry_size("blobs/sha256/", 0);
    assert_int_equal(al_tar_add_file(fx.tar, "blobs/sha256/empty", "", 0, &err), 0);
    plan += al_tar_entry_size("blobs/sha256/empty", 0);
    /* Streamed in odd pieces. */
    assert_int_equal(al_tar_file_begin(fx.tar, "big.bin", big, &err), 0);
    for (size_t off = 0; off < big; off += 100)
        assert_int_equal(
            al_tar_file_write(fx.tar, bigdata + off, big - off < 100 ? big - off : 100, &err), 0);
    assert_int_equal(al_tar_file_end(fx.tar, &err), 0);
    plan += al_tar_entry_size("big.bin", big);
    assert_int_equal(al_tar_add_file(fx.tar, split, "{}", 2, &err), 0);
    plan += al_tar_entry_size(split, 2);
    assert_int_equal(al_tar_add_file(fx.tar, pax, "pax", 3, &err), 0);
    plan += al_tar_entry_size(pax, 3);
    assert_int_equal(al_tar_finish(fx.tar, &err), 0);
    plan += AL_TAR_TRAILER_SIZE;
    assert_int_equal(al_tar_bytes(fx.tar), plan);
    size_t len;
    free(fx_close(&fx, &len));
    assert_int_equal(len, plan);

    char *cmd = al_xasprintf("tar -tvf %s 2>&1", fx.path);
    FILE *p = popen(cmd, "r");
    char line[1024];
    const struct {
        const char *perm;
        const char *size;
        const char *name;
    } want[] = {
        {"drwxr-xr-x", " 0 ", "blobs/"},
        {"drwxr-xr-x", " 0 ", "blobs/sha256/"},
        {"-rw-r--r--", " 0 ", "blobs/sha256/empty"},
        {"-rw-r--r--", " 1553 ", "big.bin"},
        {"-rw-r--r--", " 2 ", split},
        {"-rw-r--r--", " 3 ", pax},
    };
    size_t n = 0;
    while (fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = '\0';
        assert_true(n < AL_ARRAY_SIZE(want));
        assert_memory_equal(line, want[n].perm, 10);
        assert_non_null(strstr(line, " 0/0 "));
        assert_non_null(strstr(line, want[n].size));
        assert_non_null(strstr(line, "1970-01-01"));
        size_t ll = strlen(line), nl = strlen(want[n].name);
        assert_true(ll > nl);
        assert_string_equal(line + ll - nl, want[n].name);
        assert_int_equal(line[ll - nl - 1], ' ');
        n++;
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(n, AL_ARRAY_SIZE(want));
    free(cmd);

    /* Content survives extraction. */
    cmd = al_xasprintf("tar -xOf %s big.bin", fx.path);
    p = popen(cmd, "r");
    char *got = al_xmalloc(big + 10);
    assert_int_equal(fread(got, 1, big + 10, p), big);
    assert_int_equal(pclose(p), 0);
    assert_memory_equal(got, bigdata, big);
    free(got);
    free(cmd);

    free(bigdata);
    free(c200);
    free(p120);
    free(split);
    free(pax);
    unlink(fx.path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_fields), cmocka_unit_test(test_big_size),
        cmocka_unit_test(test_size_enforced), cmocka_unit_test(test_gnu_tar_roundtrip),
        cmocka_unit_test(test_copy_fd),       cmocka_unit_test(test_misuse_asserts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
