/* airlock-push: images from the store into a registry (the air-gapped
 * side's own registry), byte for byte, so that the target's digests are
 * upstream's (docs/DESIGN.md, "Pushing").
 *
 * Two steps, both here:
 *   al_push_select   what to push, before any traffic: each ref's graph
 *                    walked children first over the store (common/graph.h:
 *                    every manifest hashed as it is read), its target name
 *                    (HOST/PREFIX/upstream path), the entries of its
 *                    indexes the store lacks (refused unless the index may
 *                    be rewritten), two upstream names landing on one
 *                    target repository (a usage error naming both);
 *   al_push_run      per image, as answers arrive: HEAD of the tag (the
 *                    digest there is the one to push: unchanged, nothing
 *                    else is sent); every blob HEAD first, then mounted
 *                    from another repository of the registry that holds it
 *                    in this run, or uploaded (fetch/upload.h), each once
 *                    per repository and digest; then the manifests by
 *                    digest, children first, each PUT with the bytes and
 *                    media type stored; then the tag. A blob that fails
 *                    (found corrupt while it is read, say) fails every
 *                    image that needs it, and nothing is tagged for them. */
#ifndef AL_PUSH_H
#define AL_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "platform.h"
#include "reflist.h"
#include "registry.h"
#include "store.h"

#define AL_PUSH_CHUNK_DEFAULT (16 * 1024 * 1024) /* bytes of one PATCH */

typedef struct al_push_opts {
    const char *host;             /* HOST[:PORT] of the target */
    const char *prefix;           /* PREFIX or NULL: repositories go under it */
    const al_platform *platforms; /* --platform; n_platforms == 0: every one the store holds */
    size_t n_platforms;
    bool partial_index; /* push an index of the entries held when the store lacks some */
    int64_t chunk;      /* --chunk-size */
} al_push_opts;

typedef enum { AL_PUSH_PUSHED, AL_PUSH_UNCHANGED, AL_PUSH_FAILED } al_push_status;

/* One image of the run. */
typedef struct al_push_result {
    char *ref;      /* the store's name: "docker.io/rancher/mirrored-pause:3.6" */
    char *upstream; /* its registry: "docker.io" */
    char *target;   /* "HOST/PREFIX/rancher/mirrored-pause:3.6" */
    al_push_status status;
    char digest[AL_DIGEST_BUF];        /* what the target's tag names ("" when failed early) */
    char stored_digest[AL_DIGEST_BUF]; /* the store's; differs when the index was rewritten */
    char *platforms;                   /* "linux/amd64,linux/arm64" */
    char *left_out; /* entries a rewritten index dropped ("linux/arm64"), or NULL */
    int blobs_pushed, blobs_mounted, blobs_present;
    int manifests; /* manifests PUT (the tag included) */
    int restarts;  /* uploads the registry lost and that started again */
    uint64_t bytes;
    al_error *err;
    double done_at; /* al_mono() when it ended */
} al_push_result;

typedef struct al_push_plan al_push_plan;

/* Resolve every ref of list (and with all, every tag of the store) into
 * plan. Per-image problems (not in the store, a graph the store holds
 * damaged, entries it lacks) become failed results; two upstream names on
 * one target repository is AL_E_USAGE (nothing to push). Other failures:
 * the database. */
int al_push_select(al_push_plan **out, al_store *store, al_db *db, const al_reflist *list, bool all,
                   const al_push_opts *opts, al_error **err);
void al_push_plan_free(al_push_plan *p);
size_t al_push_plan_count(const al_push_plan *p);

/* Push everything the plan holds through reg's engine. *results_out: one
 * per image, in plan order (al_push_results_free). */
void al_push_run(al_push_plan *p, al_registry *reg, al_push_result **results_out);
void al_push_results_free(al_push_result *r, size_t n);

#endif
