/* What the files of a push share (push-select.c: the plan from the store;
 * push-index.c: an index rewritten to the entries pushed; push-run.c: the
 * images' calls; push-blobs.c: blobs shared by images, mounts). */
#ifndef AL_PUSH_PRIVATE_H
#define AL_PUSH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "push.h"
#include "strmap.h"

/* A manifest to PUT, by digest, in the order they go (children first, the
 * root last). */
typedef struct push_manifest {
    char digest[AL_DIGEST_BUF]; /* what is PUT */
    char *media_type;           /* its Content-Type: the body's own mediaType, else the entry's */
    char *body;                 /* a rewritten index's bytes; NULL: read from the store */
    size_t len;
} push_manifest;

typedef struct push_blob_ref {
    char digest[AL_DIGEST_BUF];
    int64_t size;
} push_blob_ref;

struct push_run;

typedef struct push_image {
    al_push_result *res;      /* borrowed: the run's result for it */
    char *repo;               /* target repository path: "PREFIX/rancher/mirrored-pause" */
    char *tag;                /* NULL: pushed by digest only */
    char root[AL_DIGEST_BUF]; /* what is pushed (the rewritten index's when rewritten) */
    push_manifest *manifests;
    size_t n_manifests;
    push_blob_ref *blobs; /* configs and layers, each once */
    size_t n_blobs;
    bool selected; /* the plan holds it; false: res->err says why not */

    /* The run. */
    struct push_run *run;
    int64_t priority;
    int pending;   /* blob tasks outstanding */
    bool failed;   /* a blob or a call failed: res->err */
    size_t next;   /* manifests PUT so far */
    char *put_buf; /* the body of the PUT in flight (from the store) */
} push_image;

struct al_push_plan {
    al_store *store; /* borrowed */
    al_push_opts opts;
    push_image *images;
    al_push_result *results; /* parallel to images; handed to the caller by al_push_run */
    size_t n;
};

/* push-index.c: the children-first walk's indexes, as pushed. */
typedef struct index_rewrite index_rewrite;
index_rewrite *al_push_rewrite_new(void);
void al_push_rewrite_free(index_rewrite *w);
/* An entry pushed as it is (an image manifest, or an index left whole). */
void al_push_rewrite_keep(index_rewrite *w, const char *digest);
/* An index (digest, its stored bytes) visited after its children: *out
 * gets the bytes to push, rewritten to the entries kept when any is not
 * (malloc'd, *out_len), or NULL when it goes as stored; *dropped is true
 * when no entry is left (the index is not pushed at all). The new digest
 * goes in new_digest. */
int al_push_rewrite_index(index_rewrite *w, const char *digest, const char *body, size_t len,
                          char **out, size_t *out_len, char new_digest[AL_DIGEST_BUF],
                          bool *dropped, al_error **err);

/* push-blobs.c: one task per (repository, digest): HEAD, then a mount or
 * an upload; images that need it wait. */
typedef struct push_run {
    al_push_plan *plan;
    al_registry *reg;
    al_strmap *tasks;   /* "REPO@DIGEST" -> blob task */
    al_strmap *holders; /* DIGEST -> digest record: a repository that holds it */
} push_run;

void al_push_blob_need(push_run *run, push_image *im, const push_blob_ref *b);
void al_push_blobs_free(push_run *run);

/* push-run.c: an image's blob task ended (ok, or with e: the image fails;
 * store_fault: e is the store copy's, which airlock-fetch --repair mends). */
void al_push_image_blob_done(push_image *im, const al_error *e, bool store_fault);
/* A call of the run: host, push scope, the image's priority. */
al_call *al_push_call(push_image *im, al_call_kind kind, const char *reference);

#endif
