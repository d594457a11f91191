/* Tar headers and streams as docker load and containerd read them (see tar.h). */
#include "tar.h"
#include "util.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ustar field offsets and lengths (POSIX.1-1988). */
enum {
    F_NAME = 0,
    L_NAME = 100,
    F_MODE = 100,
    L_MODE = 8,
    F_UID = 108,
    L_UID = 8,
    F_GID = 116,
    L_GID = 8,
    F_SIZE = 124,
    L_SIZE = 12,
    F_MTIME = 136,
    L_MTIME = 12,
    F_CHKSUM = 148,
    L_CHKSUM = 8,
    F_TYPE = 156,
    F_MAGIC = 257,
    F_VERSION = 263,
    F_DEVMAJOR = 329,
    L_DEVMAJOR = 8,
    F_DEVMINOR = 337,
    L_DEVMINOR = 8,
    F_PREFIX = 345,
    L_PREFIX = 155,
};

/* Largest value an 11-digit octal field holds: 8 GiB - 1. */
#define OCTAL11_MAX 077777777777ULL

struct al_tar {
    al_sink *sink; /* borrowed */
    int64_t mtime;
    bool in_file;
    uint64_t size, written;
    uint64_t bytes;
    char *name; /* of the open file, for messages */
};

static const unsigned char zeros[AL_TAR_TRAILER_SIZE]; /* padding and the end marker */

static uint64_t round_block(uint64_t n)
{
    return (n + AL_TAR_BLOCK - 1) / AL_TAR_BLOCK * AL_TAR_BLOCK;
}

/* Where to split name into ustar prefix and name: the index of the '/'
 * that separates them, 0 when the whole name fits the name field, -1 when
 * no split works (PAX needed). */
static long ustar_split(const char *name)
{
    size_t len = strlen(name);
    if (len <= L_NAME)
        return 0;
    if (len > L_PREFIX + 1 + L_NAME)
        return -1;
    /* The rightmost '/' that leaves a prefix within 155 bytes gives the
     * shortest remaining name; the remaining name must be non-empty. A
     * trailing '/' of a directory is not a separator. */
    for (size_t i = len - 1; i-- > 0;) {
        if (name[i] != '/')
            continue;
        if (i > L_PREFIX)
            continue;
        if (len - i - 1 > L_NAME)
            return -1; /* moving left only lengthens the name part */
        if (i == 0)
            return -1;
        return (long)i;
    }
    return -1;
}

static size_t ndigits(size_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* One PAX record "LEN key=value\n", where LEN counts the whole record
 * including its own digits. */
static char *pax_record(const char *key, const char *value)
{
    size_t base = 1 + strlen(key) + 1 + strlen(value) + 1; /* ' ' '=' '\n' */
    size_t total = base + ndigits(base);
    if (ndigits(total) != ndigits(base))
        total = base + ndigits(total);
    return al_xasprintf("%zu %s=%s\n", total, key, value);
}

/* PAX data for an entry, or NULL when plain ustar suffices. */
static char *pax_data(const char *name, uint64_t size)
{
    char *path = ustar_split(name) < 0 ? pax_record("path", name) : NULL;
    char *sz = NULL;
    if (size > OCTAL11_MAX) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)size);
        sz = pax_record("size", buf);
    }
    if (path == NULL && sz == NULL)
        return NULL;
    char *out = al_xasprintf("%s%s", path ? path : "", sz ? sz : "");
    free(path);
    free(sz);
    return out;
}

uint64_t al_tar_entry_size(const char *name, uint64_t size)
{
    uint64_t n = AL_TAR_BLOCK + round_block(size);
    _cleanup_free_ char *pax = pax_data(name, size);
    if (pax != NULL)
        n += AL_TAR_BLOCK + round_block(strlen(pax));
    return n;
}

static void put_octal(unsigned char *hdr, size_t off, size_t len, uint64_t v)
{
    /* len - 1 digits and a NUL. */
    char buf[32];
    snprintf(buf, sizeof(buf), "%0*llo", (int)(len - 1), (unsigned long long)v);
    memcpy(hdr + off, buf, len - 1);
    hdr[off + len - 1] = '\0';
}

/* GNU base-256 for a size that does not fit in octal: high bit of the
 * first byte set, big-endian value in the rest. Go's archive/tar, GNU tar
 * and bsdtar read it; the PAX size record says the same for others. */
static void put_base256(unsigned char *hdr, size_t off, size_t len, uint64_t v)
{
    memset(hdr + off, 0, len);
    for (size_t i = 0; i < 8; i++)
        hdr[off + len - 1 - i] = (unsigned char)(v >> (8 * i));
    hdr[off] |= 0x80;
}

static void fill_header(unsigned char hdr[AL_TAR_BLOCK], const char *name, uint64_t size, char type,
                        unsigned mode, int64_t mtime)
{
    memset(hdr, 0, AL_TAR_BLOCK);
    size_t len = strlen(name);
    long split = ustar_split(name);
    if (split > 0) {
        memcpy(hdr + F_PREFIX, name, (size_t)split);
        memcpy(hdr + F_NAME, name + split + 1, len - (size_t)split - 1);
    } else {
        /* Fits, or PAX carries the full path and this is a truncated hint. */
        memcpy(hdr + F_NAME, name, len < L_NAME ? len : L_NAME);
    }
    put_octal(hdr, F_MODE, L_MODE, mode);
    put_octal(hdr, F_UID, L_UID, 0);
    put_octal(hdr, F_GID, L_GID, 0);
    if (size > OCTAL11_MAX)
        put_base256(hdr, F_SIZE, L_SIZE, size);
    else
        put_octal(hdr, F_SIZE, L_SIZE, size);
    put_octal(hdr, F_MTIME, L_MTIME, (uint64_t)mtime);
    hdr[F_TYPE] = (unsigned char)type;
    memcpy(hdr + F_MAGIC, "ustar", 6); /* with its NUL */
    memcpy(hdr + F_VERSION, "00", 2);
    put_octal(hdr, F_DEVMAJOR, L_DEVMAJOR, 0);
    put_octal(hdr, F_DEVMINOR, L_DEVMINOR, 0);
    /* Checksum: sum of all bytes with the checksum field as spaces,
     * written as six octal digits, NUL, space. */
    memset(hdr + F_CHKSUM, ' ', L_CHKSUM);
    unsigned sum = 0;
    for (size_t i = 0; i < AL_TAR_BLOCK; i++)
        sum += hdr[i];
    char buf[16];
    snprintf(buf, sizeof(buf), "%06o", sum & 0777777);
    memcpy(hdr + F_CHKSUM, buf, 6);
    hdr[F_CHKSUM + 6] = '\0';
    hdr[F_CHKSUM + 7] = ' ';
}

static int emit(al_tar *t, const void *buf, size_t len, al_error **err)
{
    int r = al_sink_write(t->sink, buf, len, err);
    if (r == 0)
        t->bytes += len;
    return r;
}

static int pad(al_tar *t, uint64_t size, al_error **err)
{
    size_t rest = (size_t)(round_block(size) - size);
    return rest ? emit(t, zeros, rest, err) : 0;
}

static int write_header(al_tar *t, const char *name, uint64_t size, char type, unsigned mode,
                        al_error **err)
{
    unsigned char hdr[AL_TAR_BLOCK];
    _cleanup_free_ char *pax = pax_data(name, size);
    if (pax != NULL) {
        /* The extended header's own name is informative only. */
        const char *base = strrchr(name, '/');
        base = base && base[1] ? base + 1 : name;
        _cleanup_free_ char *pname = al_xasprintf("PaxHeaders/%.80s", base);
        size_t plen = strlen(pax);
        fill_header(hdr, pname, plen, 'x', 0644, t->mtime);
        int r = emit(t, hdr, sizeof(hdr), err);
        if (r == 0)
            r = emit(t, pax, plen, err);
        if (r == 0)
            r = pad(t, plen, err);
        if (r < 0)
            return r;
    }
    fill_header(hdr, name, size, type, mode, t->mtime);
    return emit(t, hdr, sizeof(hdr), err);
}

static int check_name(const char *name, al_error **err)
{
    if (name[0] == '\0' || name[0] == '/' || strlen(name) > 4096)
        return al_error_set(err, AL_E_USAGE, 0, "tar: invalid entry name \"%s\"", name);
    return 0;
}

al_tar *al_tar_new(al_sink *sink, int64_t mtime)
{
    al_tar *t = al_xcalloc(1, sizeof(*t));
    t->sink = sink;
    if (mtime < 0)
        mtime = 0;
    if ((uint64_t)mtime > OCTAL11_MAX)
        mtime = (int64_t)OCTAL11_MAX;
    t->mtime = mtime;
    return t;
}

void al_tar_free(al_tar *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t);
}

int al_tar_add_dir(al_tar *t, const char *name, al_error **err)
{
    assert(!t->in_file); /* the open entry must be ended first: a caller's bug */
    int r = check_name(name, err);
    if (r < 0)
        return r;
    size_t len = strlen(name);
    _cleanup_free_ char *dname =
        name[len - 1] == '/' ? al_xstrdup(name) : al_xasprintf("%s/", name);
    return write_header(t, dname, 0, '5', 0755, err);
}

int al_tar_file_begin(al_tar *t, const char *name, uint64_t size, al_error **err)
{
    assert(!t->in_file); /* the open entry must be ended first: a caller's bug */
    int r = check_name(name, err);
    if (r < 0)
        return r;
    r = write_header(t, name, size, '0', 0644, err);
    if (r < 0)
        return r;
    free(t->name);
    t->name = al_xstrdup(name);
    t->in_file = true;
    t->size = size;
    t->written = 0;
    return 0;
}

int al_tar_file_write(al_tar *t, const void *buf, size_t len, al_error **err)
{
    assert(t->in_file); /* no entry open: a caller's bug */
    if (len > t->size - t->written)
        return al_error_set(err, AL_E_SIZE, 0, "tar: %s: more than the announced %llu bytes",
                            t->name, (unsigned long long)t->size);
    int r = emit(t, buf, len, err);
    if (r == 0)
        t->written += len;
    return r;
}

int al_tar_file_copy_fd(al_tar *t, int fd, uint64_t offset, uint64_t len, al_error **err)
{
    assert(t->in_file); /* no entry open: a caller's bug */
    if (len > t->size - t->written)
        return al_error_set(err, AL_E_SIZE, 0, "tar: %s: more than the announced %llu bytes",
                            t->name, (unsigned long long)t->size);
    uint64_t before = al_sink_bytes_in(t->sink);
    int r = al_sink_copy_fd(t->sink, fd, offset, len, err);
    /* Count what went out, also when the copy stopped early. */
    uint64_t n = al_sink_bytes_in(t->sink) - before;
    t->written += n;
    t->bytes += n;
    return r;
}

int al_tar_file_end(al_tar *t, al_error **err)
{
    assert(t->in_file); /* no entry open: a caller's bug */
    if (t->written != t->size)
        return al_error_set(err, AL_E_SIZE, 0, "tar: %s: %llu bytes written, %llu announced",
                            t->name, (unsigned long long)t->written, (unsigned long long)t->size);
    t->in_file = false;
    return pad(t, t->size, err);
}

int al_tar_add_file(al_tar *t, const char *name, const void *buf, size_t len, al_error **err)
{
    int r = al_tar_file_begin(t, name, len, err);
    if (r == 0)
        r = al_tar_file_write(t, buf, len, err);
    if (r == 0)
        r = al_tar_file_end(t, err);
    return r;
}

int al_tar_finish(al_tar *t, al_error **err)
{
    assert(!t->in_file); /* the open entry must be ended first: a caller's bug */
    return emit(t, zeros, AL_TAR_TRAILER_SIZE, err);
}

uint64_t al_tar_bytes(const al_tar *t)
{
    return t->bytes;
}
