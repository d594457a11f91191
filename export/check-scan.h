/* One streaming pass over an archive someone else may have made (docker
 * save, ctr export, skopeo, a vendor's airgap bundle): every member's
 * name, type and size, the sha256 of its bytes and, when the bytes are a
 * gzip or zstd stream, the sha256 of what they decompress to (a layer's
 * diff_id), computed as the data streams by. Nothing is extracted, no
 * member name ever becomes a path.
 *
 * Why one pass is enough: a docker-save tar may list manifest.json after
 * the layers, so which member is a layer is known only at the end. Rather
 * than keep members or read the archive twice, every member gets both
 * digests while it streams (the decompressed one only when its first
 * bytes are a gzip or zstd magic), and small JSON-looking members are kept
 * in memory (at most AL_SCAN_JSON_BUDGET bytes in all) for the analysis
 * that follows. The cost is decompressing a compressed member that turns
 * out not to be a layer, which image archives do not have.
 *
 * The archive itself may be plain, gzip, zstd (decoded here, so that the
 * window of every frame is seen: k3s' decoder refuses windows above 32 MiB),
 * bzip2, xz or lz4, told apart by their magic bytes, never by the name.
 * Reading is done by libarchive (tar, ustar, pax, GNU). Memory: the member
 * table, the kept JSON, and a few MiB of buffers. */
#ifndef AL_EXPORT_CHECK_SCAN_H
#define AL_EXPORT_CHECK_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/digest.h"
#include "../common/error.h"
#include "../common/manifest.h"

/* Kept JSON-looking members, all together, at most this many bytes; each at
 * most AL_CONFIG_MAX. */
#define AL_SCAN_JSON_BUDGET (64u << 20)
/* An archive with more members than this is not an image archive. */
#define AL_SCAN_MAX_MEMBERS 1000000u
/* The decoder of this check allocates windows up to this size (2^27). */
#define AL_SCAN_ZSTD_WLOG_LIMIT 27

typedef enum {
    AL_MEMBER_FILE,
    AL_MEMBER_DIR,
    AL_MEMBER_SYMLINK,
    AL_MEMBER_HARDLINK,
    AL_MEMBER_OTHER, /* device, fifo, ... */
} al_member_type;

typedef struct al_member {
    char *name; /* as in the archive, a leading "./" removed; NUL-free */
    al_member_type type;
    char *link; /* symlink or hardlink target, else NULL */
    uint64_t size;
    char digest[AL_DIGEST_BUF]; /* sha256 of its bytes (files only) */
    al_compression comp;        /* by magic: NONE, GZIP or ZSTD */
    /* sha256 and size of the decompressed bytes; for uncompressed content
     * the same as digest and size. "" when decompression failed. */
    char diff_id[AL_DIGEST_BUF];
    uint64_t diff_size;
    char *decomp_error; /* why decompression failed, or NULL */
    char *json;         /* the bytes, when they look like JSON and fit; NUL-terminated */
    size_t json_len;
    bool json_dropped; /* looked like JSON, but the budget was spent */
    size_t order;      /* position in the archive */
    bool incomplete;   /* the archive ended inside this member */
} al_member;

typedef struct al_scan {
    al_member *members; /* in archive order */
    size_t n_members;
    const char *compression; /* "none", "gzip", "zstd", "bzip2", "xz", "lz4" (static) */
    size_t zstd_frames;
    uint64_t zstd_max_window; /* the largest window of any frame, in bytes */
    uint64_t file_bytes;      /* size of the archive file */
    uint64_t data_bytes;      /* member bytes read */
    /* The first member is a bundle's manifest or volume header: members
     * are hashed but not decompressed (a bundle's check needs no diff_id),
     * and only those two JSON members are kept, up to the bundle's cap. */
    bool bundle;
    /* The archive could not be read to its end (truncated, corrupt, not a
     * tar): the message, the members read until then are kept. */
    char *read_error;
    char *read_error_member; /* the member being read then, or NULL */
} al_scan;

/* Read the archive on fd (from its start; the descriptor is not closed).
 * A damaged archive is not an error here: it ends in read_error. Fails
 * (AL_E_IO) only when fd cannot be read at all. */
int al_check_scan(al_scan *out, int fd, al_error **err);
void al_scan_dispose(al_scan *s);

/* The window size a zstd frame header announces (RFC 8878, 3.1.1.1.2).
 * buf holds the frame's first len bytes. Returns 1 and sets *window for a
 * frame, 0 for a skippable frame (no window), -1 when buf does not start
 * with a frame header or is too short. */
int al_zstd_frame_window(const unsigned char *buf, size_t len, uint64_t *window);

#endif
