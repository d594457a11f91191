/* The streaming pass of --check: libarchive reads, we hash (check-scan.h). */
#include "check-scan.h"
#include "../common/bundle.h"
#include "../common/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/* 128 KiB: what zstd's streaming API recommends for each side
 * (ZSTD_DStreamInSize/OutSize), and plenty for sequential reads; 1 MiB
 * buffers made each check (and each of the fuzzer's runs) map and fault
 * in 3 MiB. */
#define READ_BUF (1u << 17)
#define OUT_BUF (1u << 17)
/* Enough bytes for any zstd frame header (ZSTD_FRAMEHEADERSIZE_MAX). */
#define ZSTD_HEADER_MAX 18

/* --- zstd frame headers ------------------------------------------------- */

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i > 0; i--)
        v = v << 8 | p[i - 1];
    return v;
}

int al_zstd_frame_window(const unsigned char *buf, size_t len, uint64_t *window)
{
    if (len < 4)
        return -1;
    uint32_t magic = (uint32_t)le(buf, 4);
    if ((magic & 0xFFFFFFF0u) == 0x184D2A50u)
        return 0; /* skippable frame */
    if (magic != 0xFD2FB528u || len < 5)
        return -1;
    unsigned fhd = buf[4];
    unsigned fcs_flag = fhd >> 6, single = (fhd >> 5) & 1, did_flag = fhd & 3;
    size_t pos = 5;
    if (!single) {
        if (len < pos + 1)
            return -1;
        unsigned wd = buf[pos];
        uint64_t base = (uint64_t)1 << (10 + (wd >> 3));
        *window = base + (base / 8) * (wd & 7);
        return 1;
    }
    /* Single segment: the window is the content size. */
    static const size_t did_size[] = {0, 1, 2, 4};
    static const size_t fcs_size[] = {1, 2, 4, 8};
    pos += did_size[did_flag];
    size_t n = fcs_size[fcs_flag];
    if (len < pos + n)
        return -1;
    *window = le(buf + pos, n) + (n == 2 ? 256 : 0);
    return 1;
}

/* --- the archive's outer zstd, decoded here ---------------------------- */

typedef struct zreader {
    int fd;
    ZSTD_DCtx *d;
    unsigned char *in, *out;
    size_t in_len, in_pos;
    bool eof, frame_start;
    size_t last; /* ZSTD_decompressStream's hint; 0 at a frame's end */
    al_scan *scan;
} zreader;

static int refill(zreader *z, struct archive *a)
{
    memmove(z->in, z->in + z->in_pos, z->in_len - z->in_pos);
    z->in_len -= z->in_pos;
    z->in_pos = 0;
    while (!z->eof && z->in_len < READ_BUF) {
        ssize_t n = read(z->fd, z->in + z->in_len, READ_BUF - z->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            archive_set_error(a, errno, "read");
            return -1;
        }
        if (n == 0)
            z->eof = true;
        z->in_len += (size_t)n;
        break;
    }
    return 0;
}

/* At a frame's start: note its window; refuse one this check cannot decode. */
static int frame_header(zreader *z, struct archive *a)
{
    if (z->in_len - z->in_pos < ZSTD_HEADER_MAX && !z->eof && refill(z, a) < 0)
        return -1;
    uint64_t w = 0;
    int k = al_zstd_frame_window(z->in + z->in_pos, z->in_len - z->in_pos, &w);
    if (k < 0) {
        archive_set_error(a, EILSEQ, "zstd: not a zstd frame after frame %zu",
                          z->scan->zstd_frames);
        return -1;
    }
    z->scan->zstd_frames++;
    if (w > z->scan->zstd_max_window)
        z->scan->zstd_max_window = w;
    if (w > ((uint64_t)1 << AL_SCAN_ZSTD_WLOG_LIMIT)) {
        archive_set_error(a, EILSEQ,
                          "zstd: frame %zu needs a %llu MiB window, more than this check decodes "
                          "(%u MiB)",
                          z->scan->zstd_frames, (unsigned long long)(w >> 20),
                          1u << (AL_SCAN_ZSTD_WLOG_LIMIT - 20));
        return -1;
    }
    z->frame_start = false;
    return 0;
}

static la_ssize_t zread(struct archive *a, void *ud, const void **buf)
{
    zreader *z = ud;
    for (;;) {
        if (z->in_pos == z->in_len && !z->eof && refill(z, a) < 0)
            return -1;
        if (z->in_pos == z->in_len && z->eof) {
            if (!z->frame_start || z->scan->zstd_frames == 0) {
                archive_set_error(a, EILSEQ,
                                  "zstd: the stream is truncated (frame %zu is incomplete)",
                                  z->scan->zstd_frames);
                return -1;
            }
            return 0;
        }
        if (z->frame_start && frame_header(z, a) < 0)
            return -1;
        ZSTD_inBuffer in = {z->in, z->in_len, z->in_pos};
        ZSTD_outBuffer o = {z->out, OUT_BUF, 0};
        size_t r = ZSTD_decompressStream(z->d, &o, &in);
        z->in_pos = in.pos;
        if (ZSTD_isError(r)) {
            archive_set_error(a, EILSEQ, "zstd: %s", ZSTD_getErrorName(r));
            return -1;
        }
        if (r == 0)
            z->frame_start = true;
        if (o.pos > 0) {
            *buf = z->out;
            return (la_ssize_t)o.pos;
        }
    }
}

/* --- one member's bytes -------------------------------------------------- */

typedef struct member_hash {
    al_member *m;
    bool bundle; /* al_scan.bundle */
    al_hasher *raw, *dec;
    unsigned char head[4];
    size_t head_len;
    bool decided;
    z_stream z;
    bool z_on, z_end;
    ZSTD_DCtx *zd; /* reused across members */
    size_t zlast;
    unsigned char *obuf; /* OUT_BUF */
    /* JSON keeping */
    int first; /* the first byte that is not white space; -1 before it */
    bool keep;
    size_t json_cap;
    uint64_t *budget;
} member_hash;

static void set_decomp_error(member_hash *h, const char *what, const char *detail)
{
    if (h->m->decomp_error == NULL)
        h->m->decomp_error = al_xasprintf("%s%s", what, detail);
}

static void feed_gzip(member_hash *h, const unsigned char *p, size_t n)
{
    h->z.next_in = (Bytef *)p;
    h->z.avail_in = (uInt)n;
    while (h->z.avail_in > 0 && h->m->decomp_error == NULL) {
        if (h->z_end) {
            /* Another gzip member may follow (a multi-member stream). */
            if (h->z.next_in[0] != 0x1f) {
                set_decomp_error(h, "", "data after the end of the gzip stream");
                return;
            }
            inflateReset(&h->z);
            h->z_end = false;
        }
        h->z.next_out = h->obuf;
        h->z.avail_out = OUT_BUF;
        int zr = inflate(&h->z, Z_NO_FLUSH);
        size_t got = OUT_BUF - h->z.avail_out;
        al_hasher_update(h->dec, h->obuf, got);
        if (zr == Z_STREAM_END)
            h->z_end = true;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            set_decomp_error(h, "gzip: ", h->z.msg ? h->z.msg : "corrupt stream");
        else if (zr == Z_BUF_ERROR && got == 0)
            break;
    }
}

static void feed_zstd(member_hash *h, const unsigned char *p, size_t n)
{
    ZSTD_inBuffer in = {p, n, 0};
    while (in.pos < in.size && h->m->decomp_error == NULL) {
        ZSTD_outBuffer o = {h->obuf, OUT_BUF, 0};
        h->zlast = ZSTD_decompressStream(h->zd, &o, &in);
        if (ZSTD_isError(h->zlast)) {
            set_decomp_error(h, "zstd: ", ZSTD_getErrorName(h->zlast));
            return;
        }
        al_hasher_update(h->dec, h->obuf, o.pos);
    }
    /* Output the decoder still holds for the input it has. */
    while (h->m->decomp_error == NULL && h->zlast != 0) {
        ZSTD_outBuffer o = {h->obuf, OUT_BUF, 0};
        ZSTD_inBuffer none = {NULL, 0, 0};
        h->zlast = ZSTD_decompressStream(h->zd, &o, &none);
        if (ZSTD_isError(h->zlast)) {
            set_decomp_error(h, "zstd: ", ZSTD_getErrorName(h->zlast));
            return;
        }
        if (o.pos == 0)
            break;
        al_hasher_update(h->dec, h->obuf, o.pos);
    }
}

static void decide(member_hash *h)
{
    h->decided = true;
    const unsigned char *b = h->head;
    if (h->bundle) {
        h->m->comp = AL_COMP_NONE;
    } else if (h->head_len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        h->m->comp = AL_COMP_GZIP;
        memset(&h->z, 0, sizeof(h->z));
        h->z_on = inflateInit2(&h->z, 15 + 16) == Z_OK;
        if (!h->z_on)
            set_decomp_error(h, "", "gzip: cannot start the decoder");
    } else if (h->head_len == 4 && le(b, 4) == 0xFD2FB528u) {
        h->m->comp = AL_COMP_ZSTD;
        ZSTD_DCtx_reset(h->zd, ZSTD_reset_session_and_parameters);
        ZSTD_DCtx_setParameter(h->zd, ZSTD_d_windowLogMax, AL_SCAN_ZSTD_WLOG_LIMIT);
        h->zlast = 1;
    } else {
        h->m->comp = AL_COMP_NONE;
    }
    if (h->m->comp != AL_COMP_NONE)
        h->dec = al_hasher_new();
}

static void feed_content(member_hash *h, const unsigned char *p, size_t n)
{
    if (h->m->comp == AL_COMP_GZIP && h->z_on)
        feed_gzip(h, p, n);
    else if (h->m->comp == AL_COMP_ZSTD)
        feed_zstd(h, p, n);
}

static void keep_json(member_hash *h, const unsigned char *p, size_t n)
{
    al_member *m = h->m;
    for (size_t i = 0; h->first < 0 && i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            h->first = p[i];
    if (h->first >= 0 && h->first != '{' && h->first != '[')
        h->keep = false;
    if (!h->keep) {
        free(m->json);
        m->json = NULL;
        m->json_len = 0;
        return;
    }
    if (m->json_len + n > h->json_cap) {
        h->keep = false;
        keep_json(h, p, 0);
        return;
    }
    memcpy(m->json + m->json_len, p, n);
    m->json_len += n;
}

static void hash_bytes(member_hash *h, const unsigned char *p, size_t n)
{
    al_hasher_update(h->raw, p, n);
    keep_json(h, p, n);
    if (!h->decided) {
        size_t take = 4 - h->head_len < n ? 4 - h->head_len : n;
        memcpy(h->head + h->head_len, p, take);
        h->head_len += take;
        if (h->head_len < 4)
            return;
        decide(h);
        feed_content(h, h->head, h->head_len);
        p += take;
        n -= take;
    }
    feed_content(h, p, n);
}

static void hash_begin(member_hash *h, al_member *m, uint64_t *budget)
{
    h->m = m;
    h->raw = al_hasher_new();
    h->dec = NULL;
    h->head_len = 0;
    h->decided = false;
    h->z_on = h->z_end = false;
    h->budget = budget;
    h->first = -1;
    h->keep = m->size <= AL_CONFIG_MAX;
    if (h->bundle)
        h->keep =
            m->size <= AL_BUNDLE_MANIFEST_MAX && (strcmp(m->name, AL_BUNDLE_MANIFEST_NAME) == 0 ||
                                                  strcmp(m->name, AL_BUNDLE_VOLUME_NAME) == 0);
    h->json_cap = 0;
    if (h->keep) {
        if (m->size + 1 > *budget) {
            h->keep = false;
        } else {
            h->json_cap = (size_t)m->size;
            m->json = al_xmalloc(h->json_cap + 1);
        }
    }
}

static void hash_end(member_hash *h, bool complete)
{
    al_member *m = h->m;
    if (!h->decided)
        decide(h);
    al_hasher_final(h->raw, m->digest);
    if (m->comp == AL_COMP_NONE) {
        snprintf(m->diff_id, sizeof(m->diff_id), "%s", m->digest);
        m->diff_size = m->size;
    } else {
        if (complete && m->comp == AL_COMP_GZIP && !h->z_end)
            set_decomp_error(h, "", "gzip: the stream is truncated");
        if (complete && m->comp == AL_COMP_ZSTD && h->zlast != 0)
            set_decomp_error(h, "", "zstd: the stream is truncated");
        m->diff_size = al_hasher_size(h->dec);
        if (m->decomp_error == NULL && complete)
            al_hasher_final(h->dec, m->diff_id);
    }
    if (h->z_on)
        inflateEnd(&h->z);
    al_hasher_free(h->raw);
    al_hasher_free(h->dec);
    h->raw = h->dec = NULL;
    bool looks_json = h->first == '{' || h->first == '[';
    if (m->json != NULL && h->keep && looks_json && m->json_len == m->size) {
        m->json[m->json_len] = '\0';
        *h->budget -= m->json_len + 1;
    } else {
        m->json_dropped = looks_json && complete && m->size <= AL_CONFIG_MAX;
        free(m->json);
        m->json = NULL;
        m->json_len = 0;
    }
}

/* --- members ------------------------------------------------------------- */

static al_member_type type_of(struct archive_entry *e)
{
    if (archive_entry_hardlink(e) != NULL)
        return AL_MEMBER_HARDLINK;
    switch (archive_entry_filetype(e)) {
    case AE_IFREG: return AL_MEMBER_FILE;
    case AE_IFDIR: return AL_MEMBER_DIR;
    case AE_IFLNK: return AL_MEMBER_SYMLINK;
    default: return AL_MEMBER_OTHER;
    }
}

static al_member *add_member(al_scan *s, struct archive_entry *e)
{
    if (s->n_members % 256 == 0)
        s->members = al_xrealloc(s->members, (s->n_members + 256) * sizeof(*s->members));
    al_member *m = &s->members[s->n_members];
    memset(m, 0, sizeof(*m));
    m->order = s->n_members++;
    const char *name = archive_entry_pathname(e);
    if (name == NULL)
        name = "";
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    m->name = al_xstrdup(name);
    m->type = type_of(e);
    const char *link = m->type == AL_MEMBER_HARDLINK  ? archive_entry_hardlink(e)
                       : m->type == AL_MEMBER_SYMLINK ? archive_entry_symlink(e)
                                                      : NULL;
    if (link != NULL)
        m->link = al_xstrdup(link);
    m->size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
                  ? (uint64_t)archive_entry_size(e)
                  : 0;
    return m;
}

/* Stream one member's data through the hashers. false when the archive
 * could not be read (s->read_error is set). */
static bool read_member(struct archive *a, al_scan *s, member_hash *h, uint64_t *budget)
{
    al_member *m = &s->members[s->n_members - 1];
    hash_begin(h, m, budget);
    uint64_t pos = 0;
    static const unsigned char zeros[4096];
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(a, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            s->read_error =
                al_xstrdup(archive_error_string(a) ? archive_error_string(a) : "read error");
            s->read_error_member = al_xstrdup(m->name);
            m->incomplete = true;
            hash_end(h, false);
            return false;
        }
        /* A sparse member's holes read as zeros. */
        while (off >= 0 && (uint64_t)off > pos) {
            size_t n =
                (uint64_t)off - pos < sizeof(zeros) ? (size_t)((uint64_t)off - pos) : sizeof(zeros);
            hash_bytes(h, zeros, n);
            pos += n;
        }
        hash_bytes(h, buf, len);
        pos += len;
    }
    m->size = pos;
    s->data_bytes += pos;
    hash_end(h, true);
    return true;
}

static const char *sniff(int fd, bool *ours)
{
    unsigned char b[6] = {0};
    ssize_t n = pread(fd, b, sizeof(b), 0);
    *ours = false;
    if (n >= 4 && (le(b, 4) == 0xFD2FB528u || (le(b, 4) & 0xFFFFFFF0u) == 0x184D2A50u)) {
        *ours = true;
        return "zstd";
    }
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return "gzip";
    if (n >= 3 && memcmp(b, "BZh", 3) == 0)
        return "bzip2";
    if (n >= 6 && memcmp(b,
                         "\xfd"
                         "7zXZ\0",
                         6) == 0)
        return "xz";
    if (n >= 4 && le(b, 4) == 0x184D2204u)
        return "lz4";
    return "none";
}

static int open_archive(struct archive *a, al_scan *s, int fd, zreader *z)
{
    bool ours = false;
    s->compression = sniff(fd, &ours);
    archive_read_support_format_tar(a);
    if (ours) {
        z->fd = fd;
        z->scan = s;
        z->frame_start = true;
        z->d = ZSTD_createDCtx();
        if (z->d == NULL)
            abort(); /* only on allocation failure */
        ZSTD_DCtx_setParameter(z->d, ZSTD_d_windowLogMax, AL_SCAN_ZSTD_WLOG_LIMIT);
        z->in = al_xmalloc(READ_BUF);
        z->out = al_xmalloc(OUT_BUF);
        return archive_read_open(a, z, NULL, zread, NULL);
    }
    if (strcmp(s->compression, "gzip") == 0)
        archive_read_support_filter_gzip(a);
    else if (strcmp(s->compression, "bzip2") == 0)
        archive_read_support_filter_bzip2(a);
    else if (strcmp(s->compression, "xz") == 0)
        archive_read_support_filter_xz(a);
    else if (strcmp(s->compression, "lz4") == 0)
        archive_read_support_filter_lz4(a);
    return archive_read_open_fd(a, fd, READ_BUF);
}

int al_check_scan(al_scan *out, int fd, al_error **err)
{
    memset(out, 0, sizeof(*out));
    struct stat st;
    if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return al_error_set(err, AL_E_IO, errno, "read");
    out->file_bytes = (uint64_t)st.st_size;
    struct archive *a = archive_read_new();
    if (a == NULL)
        abort();
    zreader z;
    memset(&z, 0, sizeof(z));
    member_hash h;
    memset(&h, 0, sizeof(h));
    h.obuf = al_xmalloc(OUT_BUF);
    h.zd = ZSTD_createDCtx();
    if (h.zd == NULL)
        abort();
    uint64_t budget = AL_SCAN_JSON_BUDGET;
    if (open_archive(a, out, fd, &z) != ARCHIVE_OK) {
        out->read_error =
            al_xstrdup(archive_error_string(a) ? archive_error_string(a) : "cannot read it");
    } else {
        for (;;) {
            struct archive_entry *e;
            int r = archive_read_next_header(a, &e);
            if (r == ARCHIVE_EOF)
                break;
            if (r < ARCHIVE_WARN) {
                out->read_error =
                    al_xstrdup(archive_error_string(a) ? archive_error_string(a) : "read error");
                break;
            }
            if (out->n_members >= AL_SCAN_MAX_MEMBERS) {
                out->read_error =
                    al_xasprintf("more than %u members: not an image archive", AL_SCAN_MAX_MEMBERS);
                break;
            }
            al_member *m = add_member(out, e);
            if (out->n_members == 1 && (strcmp(m->name, AL_BUNDLE_MANIFEST_NAME) == 0 ||
                                        strcmp(m->name, AL_BUNDLE_VOLUME_NAME) == 0)) {
                /* A bundle: room for its manifest and volume header. */
                out->bundle = h.bundle = true;
                budget = 2 * (uint64_t)AL_BUNDLE_MANIFEST_MAX + 2;
            }
            if (m->type == AL_MEMBER_FILE && !read_member(a, out, &h, &budget))
                break;
        }
    }
    archive_read_free(a);
    ZSTD_freeDCtx(z.d);
    free(z.in);
    free(z.out);
    ZSTD_freeDCtx(h.zd);
    free(h.obuf);
    return 0;
}

void al_scan_dispose(al_scan *s)
{
    for (size_t i = 0; i < s->n_members; i++) {
        free(s->members[i].name);
        free(s->members[i].link);
        free(s->members[i].decomp_error);
        free(s->members[i].json);
    }
    free(s->members);
    free(s->read_error);
    free(s->read_error_member);
    memset(s, 0, sizeof(*s));
}
