/* Store blobs copied into a tar stream, verified: what every tarball and
 * every bundle volume is mostly made of (archive.c, bundle-write.c).
 *
 *   al_blobcopy *c;
 *   al_blobcopy_new(&c, store, tar, verify, tick, ud);
 *   for each blob (or part of one):
 *       al_tar_file_begin(tar, name, len);
 *       al_blobcopy_write(c, &item, &err);
 *       al_tar_file_end(tar);
 *   r = al_blobcopy_finish(c, r, &err);   // the verifier's verdict too
 *
 * A blob is opened once, relative to blobs/sha256 and never through a
 * symlink (store.h); whatever reads it afterwards (the copy, the hash)
 * reads that fd, so the bytes hashed are the bytes written. Into a plain
 * sink the kernel copies the bytes (copy_file_range, as cat does) and a
 * second thread hashes the same fd, reading the pages the copy just
 * brought into the page cache, never waited for until the end: on two
 * free cores verification costs no wall time. Into a compressing sink the
 * bytes pass through user space anyway and are hashed on the way. A
 * corrupt blob has been copied by the time it is found, but the caller
 * fails and removes its temp output, so no output holds it; al_blobcopy_
 * failed() lets it stop early. Memory: one 1 MiB buffer and the
 * verifier's 256 KiB, whatever the blob sizes. */
#ifndef AL_EXPORT_BLOBCOPY_H
#define AL_EXPORT_BLOBCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/digest.h"
#include "../common/error.h"
#include "../common/store.h"
#include "tar.h"

/* Blobs stream through buffers of this size. */
#define AL_BLOBCOPY_CHUNK (1u << 20)

/* One range of a store blob: the whole blob (offset 0, len = size, want =
 * digest), or a part of it (want: the part's own digest). */
typedef struct al_blobcopy_item {
    char digest[AL_DIGEST_BUF]; /* the blob in the store */
    uint64_t size;              /* its size (checked against the file) */
    uint64_t offset, len;       /* the range copied */
    char want[AL_DIGEST_BUF];   /* what the range must hash to */
    const char *owner;          /* names it in messages (borrowed, outlives the copy) */
} al_blobcopy_item;

/* Open blobs/sha256/<hex> (digest) for reading and check its size:
 * AL_E_NOT_FOUND "blob X of OWNER is missing from the store", AL_E_SIZE
 * "blob X of OWNER is corrupt: N bytes in the store, expected M". */
int al_blobcopy_open(al_store *store, const char *digest, uint64_t want_size, const char *owner,
                     int *fd_out, al_error **err);

/* Compare h's digest with want: AL_E_DIGEST "WHAT WANT of OWNER is
 * corrupt: content hashes to X". h is finished. */
int al_blobcopy_check(al_hasher *h, const char *want, const char *what, const char *owner,
                      al_error **err);

typedef struct al_blobcopy al_blobcopy;

/* store and tar are borrowed. plain: the tar's sink is AL_SINK_PLAIN (the
 * kernel may copy). verify: hash every range (sizes are always checked).
 * tick (may be NULL) is called after every piece written. */
al_blobcopy *al_blobcopy_new(al_store *store, al_tar *tar, bool plain, bool verify,
                             void (*tick)(void *ud), void *ud);
/* Write it->len bytes of the blob as the data of the tar entry the caller
 * began. AL_E_SIZE when the file changed size while it was read. */
int al_blobcopy_write(al_blobcopy *c, const al_blobcopy_item *it, al_error **err);
/* The verifier found a corrupt blob: the caller may stop writing. */
bool al_blobcopy_failed(const al_blobcopy *c);
/* Wait for the verifier and free c. r is the caller's result so far; the
 * verifier's failure becomes the result when r is 0. */
int al_blobcopy_finish(al_blobcopy *c, int r, al_error **err);

#endif
