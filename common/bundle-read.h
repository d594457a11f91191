/* Reading one bundle file (a whole bundle, or one volume), as hostile
 * input: what airlock-fetch --import applies, and what --since reads a
 * manifest from.
 *
 * The file is read once, front to back, by libarchive (tar: ustar, pax,
 * GNU; plain or zstd, told by its first bytes, never by its name). No
 * member name ever becomes a path, and only these members are accepted,
 * in this order:
 *
 *   airlock-volume.json   first, in a volume (at most AL_BUNDLE_MANIFEST_MAX)
 *   airlock-bundle.json   in a whole bundle, or volume 1 (the same cap)
 *   blobs/sha256/<hex>    regular files named by a valid digest
 *
 * Anything else (a path elsewhere, "../x", a directory, a symbolic or hard
 * link, a device, a FIFO) is refused, naming the member. A file that ends
 * inside a member (truncated) is refused naming that member. Memory: the
 * two JSON members and libarchive's buffers; member data streams through
 * al_bundle_data() in libarchive's blocks. */
#ifndef AL_BUNDLE_READ_H
#define AL_BUNDLE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "digest.h"
#include "error.h"

typedef struct al_bundle_reader al_bundle_reader;

/* Open path and read its leading members: the volume header when there is
 * one, then the manifest when this file carries it. Fails (naming path)
 * when the file cannot be read, is not a tar, or its first members are
 * not those above; a volume header or manifest that does not parse fails
 * with that parser's code (AL_E_UNSUPPORTED for a newer format). */
int al_bundle_open(al_bundle_reader **out, const char *path, al_error **err);
void al_bundle_close(al_bundle_reader *r);

const char *al_bundle_reader_path(const al_bundle_reader *r);
/* The volume header, or NULL for a whole bundle. */
const al_bundle_volume *al_bundle_reader_volume(const al_bundle_reader *r);
/* The manifest's bytes (NUL-terminated; *len_out its length), or NULL when
 * this file does not carry it (volumes after the first). */
const char *al_bundle_reader_manifest(const al_bundle_reader *r, size_t *len_out);

/* The next blob member: 1 with its digest (from its name) and size, 0 at
 * the end of the file, or a negative code for a member that is refused or
 * an archive that cannot be read further (truncated, corrupt). */
int al_bundle_next(al_bundle_reader *r, char digest[AL_DIGEST_BUF], uint64_t *size, al_error **err);
/* The current member's data, piece by piece: 1 with *buf and *len, 0 at
 * its end (after exactly its size), negative when the file ends inside it
 * or cannot be read. */
int al_bundle_data(al_bundle_reader *r, const void **buf, size_t *len, al_error **err);
/* Move past the current member's data (without reading it, when the file
 * is plain and libarchive can seek). */
int al_bundle_skip(al_bundle_reader *r, al_error **err);

#endif
