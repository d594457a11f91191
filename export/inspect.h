/* What the store holds, for airlock-export --list and --inspect. Both
 * read one database snapshot (al_db_snapshot_load) and print on `out`
 * (stdout: it is data), as aligned text or, with json, one JSON document.
 *
 * Sizes are compressed sizes as stored: every blob of an image's graph
 * (index, manifests, configs, layers), each counted once per image; the
 * --list total counts a blob shared by several tags once. Dates are
 * ISO-8601 UTC ("2024-05-01T12:00:00Z"). */
#ifndef AL_EXPORT_INSPECT_H
#define AL_EXPORT_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "../common/error.h"
#include "../common/ref.h"
#include "../common/store.h"
#include "../db/db.h"

/* One line per tag (name, digest, platforms, size, first fetched, last
 * changed), each followed by a line per digest the tag moved away from
 * ("  was sha256:... until T", most recent first), then a total line:
 * tags, unique blobs, bytes; and the last bundle applied, when any. JSON:
 * the same, every tag with its recent "history", and "store": its id and
 * the bundles applied. */
int al_inspect_list(FILE *out, const al_db_snapshot *s, bool json, al_error **err);

/* One image: its tag row, every manifest beneath it with config and
 * layers, and for each layer the other tags that share it. Config and
 * layer descriptors (media types as that manifest gives them) come from
 * the image manifest in the store when store is not NULL and the blob is
 * intact, else from the database rows. AL_E_NOT_FOUND "not in store: REF"
 * when no tag matches ref. */
int al_inspect_image(FILE *out, al_store *store, const al_db_snapshot *s, const al_ref *ref,
                     bool json, al_error **err);

/* "2024-05-01T12:00:00Z" into buf (at least 21 bytes); "-" for t <= 0. */
char *al_iso8601(char *buf, size_t len, double t);

#endif
