/* What the files of a fetch run share (plan.c: images and endpoints;
 * walk.c: one image's graph, node by node; blobs.c: layer downloads shared
 * by images; commit.c: staging, rows in groups, index.json). */
#ifndef AL_PLAN_PRIVATE_H
#define AL_PLAN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "manifest.h"
#include "plan.h"
#include "strmap.h"

/* One manifest of an image's graph. What came from the registry (the
 * manifest and, for an image manifest, its config) is held until the
 * image commits: a failed image leaves nothing of it in the store. */
typedef struct mnode {
    char digest[AL_DIGEST_BUF];
    char *media_type;
    int64_t size;
    int64_t want_size; /* from the parent descriptor, -1 for a root */
    al_manifest *m;
    bool has_platform;
    al_platform platform;
    long parent; /* index of the parent node, -1 for the root */
    int position;
    int level; /* the root is 1 (graph.h) */
    bool resolved;
    bool dropped; /* filtered out by platform (known from its config) */
    char *body;   /* from the registry, to store at commit; NULL when local */
    size_t len;
    char *config_body; /* the same for the config */
    size_t config_len;
} mnode;

struct run;

/* An image walks its graph; then what came from the registry is staged
 * (made durable); then it waits for the next group commit of rows. A tag
 * the HEAD found where the store has it, walked before for this run's
 * selection, skips all that (KNOWN: db.h, al_tag_walk). */
typedef enum { IMG_WALKING, IMG_STAGING, IMG_QUEUED, IMG_KNOWN, IMG_DONE } image_phase;

/* A blob row to write with the next group commit. */
typedef struct row {
    char digest[AL_DIGEST_BUF];
    int64_t size;
    char *media_type;
} row;

typedef struct image {
    al_fetch_ctx *ctx;             /* borrowed */
    struct run *rn;                /* borrowed */
    const al_reflist_entry *entry; /* borrowed */
    al_image_result *res;          /* borrowed */
    char *tag_key;
    char *host;      /* endpoint of the current attempt */
    char *repo;      /* repository path at that endpoint */
    char *source;    /* host/repo, recorded in the tags row */
    size_t endpoint; /* index into the image's endpoint list */
    bool failed;
    bool had_tag;
    char stored_digest[AL_DIGEST_BUF];
    al_tag_walk walked; /* the tag's last walk; its selection NULL when unusable */
    mnode *nodes;
    size_t n_nodes;
    int pending; /* calls, blob waits and staged bodies outstanding */
    image_phase phase;
    struct image *next_ready; /* QUEUED: the run's list of images to commit */
} image;

typedef enum { BLOB_CHECKING, BLOB_FETCHING, BLOB_PRESENT, BLOB_FAILED } blob_state;

typedef struct blob_waiter {
    image *im;
    struct blob_waiter *next;
} blob_waiter;

/* One layer of the run, by digest: downloaded once whatever the number of
 * images that need it. */
typedef struct blob {
    char digest[AL_DIGEST_BUF];
    int64_t size;
    char *media_type;
    blob_state state;
    char *failed_host; /* FAILED: where (another endpoint may still have it) */
    al_error *err;
    blob_waiter *waiters;
    image *credit; /* the image whose request downloaded it */
} blob;

typedef struct run {
    al_fetch_ctx *ctx;
    al_strmap *blobs;  /* digest -> blob */
    al_strmap *warned; /* "host reason" of fallbacks said already */
    image *images;
    size_t n;
    row *rows; /* blob rows for the next group commit */
    size_t n_rows, cap_rows;
    image *ready;    /* staged images for the next group commit */
    char **touched;  /* tags found unchanged: checked_at, once at the end */
    char *selection; /* what decides the part of a graph the run keeps */
    size_t n_touched;
} run;

/* plan.c */
void al_image_fail(image *im, al_error *e);
void al_image_failf(image *im, al_errc code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void al_image_hold(image *im);
void al_image_release(image *im);
/* Committed (or failed at commit): fall back or be done. */
void al_image_settle(image *im);

/* commit.c: the HEAD found a tag where its last walk left it (IMG_KNOWN):
 * its result from that walk, its checked_at with the others. */
bool al_commit_known(image *im, const char *digest);

/* walk.c */
void al_walk_start(image *im);
void al_walk_free_nodes(image *im);

/* blobs.c */
void al_blobs_need(run *rn, image *im, const al_descriptor *d);
void al_blobs_free(run *rn);

/* commit.c */
/* Stage what the image got from the registry; when that is durable the
 * image is queued for the next group commit (al_image_release). */
void al_commit_stage(image *im);
void al_commit_queue(image *im);
/* Write the queued rows and graphs in one transaction, then settle the
 * images (plan.c). Runs after every loop iteration and at the end. False
 * when there was nothing to write. */
bool al_commit_flush(run *rn);
/* The tags found unchanged: checked_at, in batched statements. */
int al_commit_touch(run *rn, al_error **err);
/* A blob now durable in the store: its row goes with the next group. */
void al_commit_row(run *rn, const char *digest, int64_t size, const char *media_type);
/* A blob the store held: its row too, if it has none (a deferred prune
 * leaves files without rows). */
void al_commit_row_missing(run *rn, const char *digest, int64_t size, const char *media_type);
void al_commit_free(run *rn);

#endif
