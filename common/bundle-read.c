/* Reading a bundle file with libarchive (bundle-read.h). */
#include "bundle-read.h"
#include "sanitize.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libarchive reads the file in blocks of this size. */
#define READ_BLOCK (1u << 20)

struct al_bundle_reader {
    char *path;
    int fd;
    struct archive *a;
    bool zstd;
    al_bundle_volume vol;
    bool has_vol;
    char *manifest;
    size_t manifest_len;
    /* The current blob member. */
    char *member;   /* its name, for messages */
    uint64_t size;  /* as its header says */
    uint64_t got;   /* data bytes read so far */
    bool in_member; /* al_bundle_next returned it; data not yet past */
};

static const char *aerr(struct archive *a)
{
    const char *s = archive_error_string(a);
    return s != NULL ? s : "read error";
}

/* "PATH: member NAME: why" (or "PATH: why"), made printable. */
static int fail(al_bundle_reader *r, al_error **err, al_errc code, const char *name,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(al_bundle_reader *r, al_error **err, al_errc code, const char *name,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *why = al_xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *path = al_sanitize(r->path, 1024);
    if (name == NULL)
        return al_error_set(err, code, 0, "%s: %s", path, why);
    _cleanup_free_ char *shown = al_sanitize(name, 300);
    return al_error_set(err, code, 0, "%s: member %s: %s", path, shown, why);
}

const char *al_bundle_reader_path(const al_bundle_reader *r)
{
    return r->path;
}

const al_bundle_volume *al_bundle_reader_volume(const al_bundle_reader *r)
{
    return r->has_vol ? &r->vol : NULL;
}

const char *al_bundle_reader_manifest(const al_bundle_reader *r, size_t *len_out)
{
    if (len_out != NULL)
        *len_out = r->manifest_len;
    return r->manifest;
}

/* What a member's header says it is; 0 when it is a regular file. */
static int check_type(al_bundle_reader *r, struct archive_entry *e, const char *name,
                      al_error **err)
{
    if (archive_entry_hardlink(e) != NULL)
        return fail(r, err, AL_E_PARSE, name,
                    "is a hard link: a bundle holds regular files only (refused)");
    switch (archive_entry_filetype(e)) {
    case AE_IFREG: return 0;
    case AE_IFLNK:
        return fail(r, err, AL_E_PARSE, name,
                    "is a symbolic link: a bundle holds regular files only (refused)");
    case AE_IFDIR:
        return fail(r, err, AL_E_PARSE, name,
                    "is a directory: a bundle holds regular files only (refused)");
    default:
        return fail(r, err, AL_E_PARSE, name,
                    "is a device, FIFO or socket: a bundle holds regular files only (refused)");
    }
}

/* The next member's header; 0 and *e NULL at the end of the archive. */
static int next_header(al_bundle_reader *r, struct archive_entry **e, al_error **err)
{
    int ar = archive_read_next_header(r->a, e);
    if (ar == ARCHIVE_EOF) {
        *e = NULL;
        return 0;
    }
    if (ar < ARCHIVE_WARN)
        return fail(r, err, AL_E_PARSE, NULL, "cannot be read as a tar%s: %s",
                    r->zstd ? ".zst" : "", aerr(r->a));
    return 0;
}

/* Read the whole of a small member (a header or the manifest) into *out. */
static int read_small(al_bundle_reader *r, struct archive_entry *e, const char *name, char **out,
                      size_t *len_out, al_error **err)
{
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if (size < 0 || (uint64_t)size > AL_BUNDLE_MANIFEST_MAX)
        return fail(r, err, AL_E_SIZE, name, "%lld bytes, more than the %u MiB allowed",
                    (long long)size, AL_BUNDLE_MANIFEST_MAX >> 20);
    char *buf = al_xmalloc((size_t)size + 1);
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t n = archive_read_data(r->a, buf + got, (size_t)size - got);
        if (n <= 0) {
            free(buf);
            return fail(r, err, AL_E_PARSE, name, "the file ends inside it (%s): it is truncated",
                        n < 0 ? aerr(r->a) : "no more data");
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len_out = got;
    return 0;
}

/* Neither the manifest nor the volume header nor a blob: refused. */
static int not_member(al_bundle_reader *r, const char *name, al_error **err)
{
    return fail(r, err, AL_E_PARSE, name,
                "not a bundle member (only " AL_BUNDLE_VOLUME_NAME ", " AL_BUNDLE_MANIFEST_NAME
                " and blobs/sha256/<digest> are): refused");
}

static int read_volume_header(al_bundle_reader *r, struct archive_entry *e, al_error **err)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int res = read_small(r, e, AL_BUNDLE_VOLUME_NAME, &text, &len, err);
    if (res == 0 && (res = al_bundle_volume_parse(&r->vol, text, len, err)) < 0)
        return al_error_wrap(err, "%s", r->path);
    r->has_vol = res == 0;
    return res;
}

/* The leading members; al_bundle_next reads the blobs after them. */
static int read_head(al_bundle_reader *r, al_error **err)
{
    struct archive_entry *e = NULL;
    int res = next_header(r, &e, err);
    if (res < 0)
        return res;
    if (e == NULL)
        return fail(r, err, AL_E_PARSE, NULL, "an empty tar: not a bundle");
    const char *name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    if (strcmp(name, AL_BUNDLE_VOLUME_NAME) == 0) {
        if ((res = check_type(r, e, name, err)) < 0 || (res = read_volume_header(r, e, err)) < 0)
            return res;
        if (r->vol.volume != 1)
            return 0; /* the next member is a blob: al_bundle_next reads it */
        if ((res = next_header(r, &e, err)) < 0)
            return res;
        name = e != NULL && archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    }
    if (e == NULL || strcmp(name, AL_BUNDLE_MANIFEST_NAME) != 0)
        return fail(r, err, AL_E_PARSE, e != NULL ? name : NULL,
                    "not a bundle: its %s member must be " AL_BUNDLE_MANIFEST_NAME,
                    r->has_vol ? "second" : "first");
    if ((res = check_type(r, e, name, err)) < 0)
        return res;
    return read_small(r, e, AL_BUNDLE_MANIFEST_NAME, &r->manifest, &r->manifest_len, err);
}

/* zstd or plain, by the first bytes; anything else is no bundle. */
static int sniff(al_bundle_reader *r, al_error **err)
{
    unsigned char b[262] = {0};
    ssize_t n = pread(r->fd, b, sizeof(b), 0);
    if (n < 0)
        return fail(r, err, AL_E_IO, NULL, "read: %s", strerror(errno));
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
        r->zstd = true;
        return 0;
    }
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return fail(r, err, AL_E_PARSE, NULL,
                    "a gzip stream: not a bundle (bundles are .tar or .tar.zst)");
    if (n < 262 || memcmp(b + 257, "ustar", 5) != 0)
        return fail(r, err, AL_E_PARSE, NULL, "neither a tar nor a zstd stream: not a bundle");
    return 0;
}

int al_bundle_open(al_bundle_reader **out, const char *path, al_error **err)
{
    *out = NULL;
    al_bundle_reader *r = al_xcalloc(1, sizeof(*r));
    r->path = al_xstrdup(path);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int res = 0;
    if (r->fd < 0 || fstat(r->fd, &st) < 0)
        res = fail(r, err, errno == ENOENT ? AL_E_NOT_FOUND : AL_E_IO, NULL, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        res = fail(r, err, AL_E_IO, NULL, "not a regular file");
    if (res == 0)
        res = sniff(r, err);
    if (res == 0) {
        (void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        r->a = archive_read_new();
        if (r->a == NULL)
            abort(); /* only on allocation failure */
        archive_read_support_format_tar(r->a);
        if (r->zstd && archive_read_support_filter_zstd(r->a) != ARCHIVE_OK)
            res = fail(r, err, AL_E_UNSUPPORTED, NULL, "this libarchive cannot read zstd: %s",
                       aerr(r->a));
        else if (archive_read_open_fd(r->a, r->fd, READ_BLOCK) != ARCHIVE_OK)
            res = fail(r, err, AL_E_PARSE, NULL, "cannot be read: %s", aerr(r->a));
    }
    if (res == 0)
        res = read_head(r, err);
    if (res < 0) {
        al_bundle_close(r);
        return res;
    }
    *out = r;
    return 0;
}

void al_bundle_close(al_bundle_reader *r)
{
    if (r == NULL)
        return;
    if (r->a != NULL)
        archive_read_free(r->a);
    if (r->fd >= 0)
        close(r->fd);
    al_bundle_volume_dispose(&r->vol);
    free(r->manifest);
    free(r->member);
    free(r->path);
    free(r);
}

int al_bundle_next(al_bundle_reader *r, char digest[AL_DIGEST_BUF], uint64_t *size, al_error **err)
{
    if (r->in_member) {
        int res = al_bundle_skip(r, err);
        if (res < 0)
            return res;
    }
    struct archive_entry *e = NULL;
    int res = next_header(r, &e, err);
    if (res < 0)
        return res;
    if (e == NULL)
        return 0;
    const char *name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    if (!al_bundle_member_digest(name, digest))
        return not_member(r, name, err);
    if ((res = check_type(r, e, name, err)) < 0)
        return res;
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
        return fail(r, err, AL_E_PARSE, name, "its size is not set");
    free(r->member);
    r->member = al_xstrdup(name);
    r->size = (uint64_t)archive_entry_size(e);
    r->got = 0;
    r->in_member = true;
    *size = r->size;
    return 1;
}

int al_bundle_data(al_bundle_reader *r, const void **buf, size_t *len, al_error **err)
{
    if (!r->in_member)
        return 0;
    la_int64_t off = 0;
    int ar = archive_read_data_block(r->a, buf, len, &off);
    if (ar == ARCHIVE_EOF) {
        r->in_member = false;
        if (r->got != r->size)
            return fail(r, err, AL_E_PARSE, r->member, "the file ends inside it: truncated");
        return 0;
    }
    if (ar < ARCHIVE_WARN)
        return fail(r, err, AL_E_PARSE, r->member,
                    "the file ends inside it or is damaged there (%s): truncated?", aerr(r->a));
    /* A sparse member (GNU or pax) would leave holes: bundles have none. */
    if (off < 0 || (uint64_t)off != r->got)
        return fail(r, err, AL_E_PARSE, r->member, "a sparse member: refused");
    r->got += *len;
    if (r->got > r->size)
        return fail(r, err, AL_E_PARSE, r->member, "more data than its size");
    return 1;
}

int al_bundle_skip(al_bundle_reader *r, al_error **err)
{
    if (!r->in_member)
        return 0;
    r->in_member = false;
    if (archive_read_data_skip(r->a) != ARCHIVE_OK)
        return fail(r, err, AL_E_PARSE, r->member,
                    "the file ends inside it or is damaged there (%s): truncated?", aerr(r->a));
    return 0;
}
