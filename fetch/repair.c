/* airlock-fetch --repair's first half: find the damaged blobs of the
 * graphs to repair and move them aside (see repair.h). */
#include "repair.h"

#include <string.h>

#include "log.h"
#include "strmap.h"
#include "util.h"

/* One blob: re-hash it, and move it aside when it is damaged. */
static int check_one(al_store *store, const char *name, const al_db_blob *b, al_repair_report *out,
                     al_error **err)
{
    al_blob_check ck;
    if (al_store_check_blob(store, b->digest, b->size, &ck, err) < 0)
        return -1;
    out->blobs++;
    switch (ck.state) {
    case AL_BLOB_OK: out->bytes += (uint64_t)b->size; return 0;
    case AL_BLOB_MISSING: al_warn("repair: %s: blob %s is missing", name, b->digest); break;
    case AL_BLOB_WRONG_SIZE:
        al_warn("repair: %s: blob %s holds %lld bytes, not %lld", name, b->digest,
                (long long)ck.have, (long long)b->size);
        break;
    case AL_BLOB_CORRUPT:
        al_warn("repair: %s: blob %s is corrupt: its content hashes to %s", name, b->digest,
                ck.actual);
        break;
    }
    out->damaged++;
    if (ck.state != AL_BLOB_MISSING && al_store_quarantine(store, b->digest, err) < 0)
        return -1;
    return 0;
}

int al_repair_check(al_store *store, al_db *db, char *const *names, size_t n, al_repair_report *out,
                    al_error **err)
{
    memset(out, 0, sizeof(*out));
    al_strmap *seen = al_strmap_new();
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        al_tag t;
        bool found = false;
        if ((r = al_db_tag_get(db, names[i], &t, &found, err)) < 0 || !found)
            continue;
        al_db_blob *blobs = NULL;
        size_t nb = 0;
        r = al_db_graph_blobs(db, t.digest, &blobs, &nb, err);
        out->tags++;
        for (size_t k = 0; k < nb && r == 0; k++) {
            if (al_strmap_get(seen, blobs[k].digest) != NULL)
                continue;
            al_strmap_put(seen, blobs[k].digest, &seen);
            r = check_one(store, names[i], &blobs[k], out, err);
        }
        al_db_blobs_free(blobs, nb);
        al_tag_dispose(&t);
    }
    al_strmap_free(seen);
    if (r < 0)
        al_error_wrap(err, "repair");
    return r;
}
