/* An index pushed with only the entries that are pushed (push-private.h):
 * what airlock-push does with --partial-index when the store lacks some of
 * an index's entries, and with --platform when it leaves some out. The
 * registry refuses an index that names a manifest it does not hold, so
 * such an index cannot go as stored; its rewrite keeps every other byte's
 * meaning (the entries kept, in order, with their annotations and the
 * index's own fields) and gets a new digest, which the output states.
 *
 * The walk is children first, so an index is seen after every entry it
 * lists: an entry is kept when it was pushed (an image manifest, or an
 * index kept itself, under its new digest and size when rewritten); an
 * attestation is kept only with the manifest it describes. */
#include "push-private.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct kept {
    char digest[AL_DIGEST_BUF]; /* as pushed */
    int64_t size;               /* as pushed, when rewritten */
    bool changed;
} kept;

struct index_rewrite {
    al_strmap *kept; /* stored digest -> kept */
};

index_rewrite *al_push_rewrite_new(void)
{
    index_rewrite *w = al_xcalloc(1, sizeof(*w));
    w->kept = al_strmap_new();
    return w;
}

void al_push_rewrite_free(index_rewrite *w)
{
    if (w == NULL)
        return;
    al_strmap_free_with(w->kept, free);
    free(w);
}

static void keep(index_rewrite *w, const char *stored, const char *digest, int64_t size,
                 bool changed)
{
    kept *k = al_xcalloc(1, sizeof(*k));
    snprintf(k->digest, sizeof(k->digest), "%s", digest);
    k->size = size;
    k->changed = changed;
    free(al_strmap_put(w->kept, stored, k));
}

void al_push_rewrite_keep(index_rewrite *w, const char *digest)
{
    keep(w, digest, digest, -1, false);
}

/* An attestation describes one manifest (buildx writes its digest in the
 * entry's annotations): it goes where that one goes. */
static bool subject_dropped(const index_rewrite *w, json_t *entry)
{
    json_t *ann = json_object_get(entry, "annotations");
    const char *type = json_string_value(json_object_get(ann, "vnd.docker.reference.type"));
    const char *subject = json_string_value(json_object_get(ann, "vnd.docker.reference.digest"));
    return type != NULL && strcmp(type, "attestation-manifest") == 0 && subject != NULL &&
           al_strmap_get(w->kept, subject) == NULL;
}

/* Filter the entries of an index in place; true when any changed. */
static bool filter_entries(const index_rewrite *w, json_t *entries)
{
    bool changed = false;
    for (size_t i = 0; i < json_array_size(entries);) {
        json_t *e = json_array_get(entries, i);
        const char *d = json_string_value(json_object_get(e, "digest"));
        const kept *k = d ? al_strmap_get(w->kept, d) : NULL;
        if (k == NULL || subject_dropped(w, e)) {
            json_array_remove(entries, i);
            changed = true;
            continue;
        }
        if (k->changed) {
            json_object_set_new(e, "digest", json_string(k->digest));
            json_object_set_new(e, "size", json_integer(k->size));
            changed = true;
        }
        i++;
    }
    return changed;
}

int al_push_rewrite_index(index_rewrite *w, const char *digest, const char *body, size_t len,
                          char **out, size_t *out_len, char new_digest[AL_DIGEST_BUF],
                          bool *dropped, al_error **err)
{
    *out = NULL;
    *out_len = 0;
    *dropped = false;
    snprintf(new_digest, AL_DIGEST_BUF, "%s", digest);
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *entries = json_object_get(root, "manifests");
    if (!json_is_array(entries)) {
        json_decref(root);
        return al_error_set(err, AL_E_PARSE, 0, "not an index with a manifests list");
    }
    if (!filter_entries(w, entries)) {
        json_decref(root);
        al_push_rewrite_keep(w, digest);
        return 0;
    }
    if (json_array_size(entries) == 0) {
        json_decref(root);
        *dropped = true;
        return 0;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    *out_len = strlen(text);
    *out = text;
    al_digest_bytes(new_digest, text, *out_len);
    keep(w, digest, new_digest, (int64_t)*out_len, true);
    return 0;
}
