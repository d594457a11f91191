/* A fetch run: resolve each ref to its image graph (index -> manifests ->
 * config + layers), keep the chosen platforms, download what the store
 * lacks, and commit each complete graph.
 *
 * Every image advances on its own, as its answers arrive: a HEAD that
 * finds the tag unchanged leads to the graph already in the store, a
 * manifest leads at once to its children, a config to its layers. Each
 * layer is downloaded once however many images need it. An image that
 * fails on a mirror starts again on its next endpoint as soon as its last
 * call ended. Whatever the store already holds is read from disk, so a
 * nightly run where nothing moved costs one HEAD per tag, and a digest ref
 * already present costs nothing. */
#ifndef AL_PLAN_H
#define AL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "platform.h"
#include "reflist.h"
#include "registry.h"
#include "store.h"

/* --mirror UPSTREAM=HOST[/PREFIX]: fetch UPSTREAM's images from HOST,
 * under PREFIX/ when given, keeping the upstream name. */
typedef struct al_mirror {
    const char *upstream; /* "docker.io", "quay.io" */
    const char *host;     /* "mirror.local:5000" */
    const char *prefix;   /* "dockerhub" or NULL */
} al_mirror;

typedef struct al_fetch_opts {
    const char *registry_override; /* --registry: the only endpoint for docker.io refs */
    const al_mirror *mirrors;      /* tried in order before the upstream */
    size_t n_mirrors;
    bool no_fallback;             /* never fall back to the upstream itself */
    const al_platform *platforms; /* --platform; n_platforms == 0: all */
    size_t n_platforms;
    bool include_attestations;
    bool rewalk; /* --repair: walk every graph, even of a tag that did not move */
} al_fetch_opts;

typedef enum { AL_IMG_OK, AL_IMG_UNCHANGED, AL_IMG_MOVED, AL_IMG_FAILED } al_image_status;

typedef struct al_image_result {
    char *full_name; /* tags.full_name */
    al_image_status status;
    char digest[AL_DIGEST_BUF];
    char old_digest[AL_DIGEST_BUF]; /* when moved */
    char *platforms;                /* "linux/amd64,linux/arm64" or "" */
    int new_blobs;
    uint64_t new_bytes;
    al_error *err;
    /* For the run report (fetch/report.c). */
    int graph_blobs; /* distinct blobs of the committed graph: manifests, configs, layers */
    double done_at;  /* al_mono() when the image was committed or failed */
} al_image_result;

typedef struct al_fetch_ctx {
    al_store *store;       /* borrowed */
    al_db *db;             /* borrowed */
    al_registry *registry; /* borrowed */
    al_fetch_opts opts;
    int64_t run_id;
} al_fetch_ctx;

/* Fetch every entry of the list. *results_out gets one result per entry
 * (in list order). Returns 0 when the run itself worked (images may still
 * have failed), or a negative code for a store/database failure. */
int al_fetch_run(al_fetch_ctx *ctx, const al_reflist *list, al_image_result **results_out,
                 al_error **err);
void al_image_results_free(al_image_result *r, size_t n);

/* Rewrite STORE/index.json from the tag rows. */
int al_fetch_write_index(al_store *store, al_db *db, al_error **err);

#endif
