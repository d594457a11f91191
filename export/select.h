/* Which images to export: refs (and/or every tag) and platforms -> for
 * each platform, the list of image manifests in the store, with their
 * configs and layers.
 *
 * A tag ref is looked up in the tags table by its full normalised name
 * ("docker.io/library/busybox:1.36"); a digest ref uses its digest when
 * that blob is in the store (else the tags row "name@digest"). The graph
 * beneath it is walked by common/graph.h's rules (the store as the source,
 * every blob hashed as read, nested indexes up to the same limit as fetch,
 * attestation entries skipped) to the first image manifest for the
 * platform, whose config must parse; every layer's file must be there with
 * the size the manifest gives.
 *
 * Problems that concern one ref (not in the store, lacks the platform,
 * corrupt or missing blob) are collected, all of them, so that the caller
 * can print them and stop before writing anything. */
#ifndef AL_EXPORT_SELECT_H
#define AL_EXPORT_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/digest.h"
#include "../common/error.h"
#include "../common/manifest.h"
#include "../common/platform.h"
#include "../common/ref.h"
#include "../common/store.h"
#include "../db/db.h"

typedef struct al_export_layer {
    char digest[AL_DIGEST_BUF];
    int64_t size;
    char *media_type; /* as in the manifest; may be NULL */
    al_compression comp;
    char diff_id[AL_DIGEST_BUF]; /* from the config; "" when it has none for this layer */
} al_export_layer;

typedef struct al_export_image {
    char *ref;  /* full normalised ref, for messages: "docker.io/library/x:1" or "...@sha256:.." */
    char *name; /* "docker.io/library/x" */
    char *tag;  /* NULL for a digest-only ref */
    al_platform platform; /* the one selected */
    char root_digest[AL_DIGEST_BUF];
    /* The image (platform) manifest, byte-exact in the store. */
    char manifest_digest[AL_DIGEST_BUF];
    const char *manifest_media_type; /* static AL_MT_* */
    int64_t manifest_size;
    char config_digest[AL_DIGEST_BUF];
    int64_t config_size;
    char *config_media_type; /* may be NULL */
    al_export_layer *layers;
    size_t n_layers;
    size_t n_zstd_layers;
    bool diff_ids_match; /* the config lists one diff_id per layer */
} al_export_image;

/* The images for one platform, in the order of the refs. */
typedef struct al_export_set {
    al_platform platform;
    al_export_image *images;
    size_t n_images;
} al_export_set;

/* What one problem concerns, for the run report (--json FILE). */
typedef struct al_select_problem {
    char *ref;           /* full normalised ref, as in al_export_image.ref */
    int platform;        /* index into sets; -1 when it concerns every platform */
    al_errc code;        /* AL_E_NOT_FOUND (not in store, lacks the platform), else the blob's */
    bool lacks_platform; /* the image has no manifest for this platform (nothing is broken) */
} al_select_problem;

typedef struct al_selection {
    al_export_set *sets; /* one per requested platform, in order */
    size_t n_sets;
    char **problems;                 /* one line each, e.g. "not in store: docker.io/library/x:1" */
    al_select_problem *problem_info; /* parallel to problems */
    size_t n_problems;
} al_selection;

void al_selection_init(al_selection *s);
void al_selection_dispose(al_selection *s);

/* refs (borrowed) may be empty when all is set; with all, every tag row
 * is added after the refs (duplicates once). Returns 0 when the selection
 * was made, even with problems (the caller checks n_problems); a negative
 * code only when the database fails. */
int al_export_select(al_selection *out, al_store *store, al_db *db, al_ref *const *refs,
                     size_t n_refs, bool all, const al_platform *platforms, size_t n_platforms,
                     al_error **err);

#endif
