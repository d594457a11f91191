/* airlock-export --bundle: what a bundle carries, decided before a byte is
 * written (docs/DESIGN.md, "Bundles").
 *
 *   tags      the refs given (or every tag with --all), each a tags row of
 *             the store at its current digest, its graph complete
 *   reached   the blobs those tags' graphs reach: the walk of common/
 *             graph.h over the database snapshot's rows (closure.h)
 *   held      the blobs the far side holds: the graphs, in this store, of
 *             the digests --since names (a bundle or its OUT.json says what
 *             the far side holds once it is applied; an inventory, a lock
 *             file or a report say it directly)
 *   carried   reached minus held, in walk order, each once
 *   omitted   reached and held: the far side must have them
 *
 * With a volume size, every member must fit in a volume: a blob larger
 * than a volume can take is split into parts, each named by its own
 * digest, which are learnt here by reading the blob once (the manifest,
 * which lists them, comes before the blobs). Volumes are then filled in
 * member order, each one smaller than the size given: tar headers, the
 * volume header, the manifest (in volume 1) and, for zstd, the worst-case
 * growth of incompressible data are accounted for.
 *
 * Problems that concern one ref (not in the store, an incomplete graph)
 * are collected, all of them, so that the caller prints them and writes
 * nothing. */
#ifndef AL_EXPORT_BUNDLE_PLAN_H
#define AL_EXPORT_BUNDLE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/bundle.h"
#include "../common/error.h"
#include "../common/ref.h"
#include "sink.h"
#include "../common/store.h"
#include "../db/db.h"
#include "since.h"

/* Smallest --volume-size: a volume must take a useful part of a blob. */
#define AL_BUNDLE_MIN_VOLUME (1u << 20)

typedef struct al_bundle_opts {
    al_sink_kind kind;     /* of every volume: from OUT's suffix or --compress */
    uint64_t volume_size;  /* 0: one file */
    const al_since *since; /* borrowed; NULL: a complete bundle */
    const char *version;   /* of this airlock, for the manifest */
} al_bundle_opts;

/* One tar member of blob data: a whole blob, or one part of a split one. */
typedef struct al_bundle_member {
    char digest[AL_DIGEST_BUF]; /* its name and what its bytes hash to */
    char blob[AL_DIGEST_BUF];   /* the store blob it comes from */
    uint64_t blob_size;
    uint64_t offset, len; /* the range of that blob */
    const char *owner;    /* the first tag that carries it, for messages (borrowed) */
} al_bundle_member;

typedef struct al_bundle_vol {
    size_t first, n;   /* its members: members[first .. first + n) */
    uint64_t tar_size; /* exact, once the manifest is final */
} al_bundle_vol;

typedef struct al_bundle_plan {
    al_bundle_manifest m; /* complete: id, tags, blobs with parts, checksum, omitted, holds */
    char *manifest_json;  /* its text: the member and OUT.json */
    size_t manifest_len;
    char manifest_digest[AL_DIGEST_BUF];
    al_bundle_member *members;
    size_t n_members;
    al_bundle_vol *vols;  /* m.volumes of them */
    bool split;           /* written as volumes OUT.001 ..., each with its header */
    uint64_t volume_size; /* every volume file is smaller (split only) */
    uint64_t carried_bytes, omitted_bytes;
    uint64_t tar_bytes; /* all volumes, uncompressed */
    char **problems;    /* one line each; nothing is written when there is one */
    size_t n_problems;
    al_errc problem_code; /* of the first problem */
} al_bundle_plan;

/* Decide the bundle: the refs (borrowed; with all, every tag too), what
 * the far side holds, the members and the volumes. Returns 0 with
 * out->n_problems > 0 when refs are at fault, a negative code when the
 * store cannot be read or a blob split into parts is damaged. */
int al_bundle_plan_make(al_bundle_plan *out, al_store *store, al_db *db, al_ref *const *refs,
                        size_t n_refs, bool all, const al_bundle_opts *opts, al_error **err);
void al_bundle_plan_dispose(al_bundle_plan *p);

/* "4G", "700M", "1048576": a --volume-size (powers of 1024). */
int al_bundle_parse_size(uint64_t *out, const char *s, al_error **err);

#endif
