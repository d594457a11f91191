/* Shared by the files of the import (import.h): import.c (the run: the
 * bundle's files, the checks, the commit, the output), import-stage.c
 * (volumes into STORE/tmp/import-<id>/, and from there into blobs/) and
 * import-graph.c (every tag's graph, and the rows it makes). */
#ifndef AL_IMPORT_PRIVATE_H
#define AL_IMPORT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle-read.h"
#include "bundle.h"
#include "db.h"
#include "error.h"
#include "plan.h"
#include "store.h"

/* A carried blob. */
typedef struct imp_blob {
    bool present;     /* blobs/sha256 holds it already (with its size) */
    bool staged;      /* tmp/import-<id>/<hex> holds it, verified */
    bool fresh;       /* staged by this run (read from the bundle now) */
    char *media_type; /* from a descriptor met in the walk; NULL until then */
    size_t first_tag; /* the first tag (index) whose graph reaches it */
    bool reached;     /* some tag's graph reaches it */
} imp_blob;

/* A member the bundle must hold: a whole blob, or one part of one. One
 * entry per digest (sorted), whatever it stands for. */
typedef struct imp_member {
    char digest[AL_DIGEST_BUF];
    uint64_t size;
    size_t blob; /* the carried blob it is, or is a part of */
    bool seen;   /* read from the bundle, or not needed (its blob is here) */
} imp_member;

typedef struct al_import {
    const char *path; /* BUNDLE as given (borrowed) */
    char **vol_paths; /* the files to read, in order */
    unsigned n_vols;
    al_bundle_reader *first; /* vol_paths[0], open since the manifest was read */
    al_bundle_manifest m;
    char manifest_digest[AL_DIGEST_BUF];
    char *source; /* tags.source of the tags it sets: "bundle <id>" */
    al_store *store;
    al_db *db;
    int64_t run_id;
    /* Staging: STORE/tmp/import-<id>. */
    char *stage_name;
    int stage_fd;
    imp_blob *blobs;   /* parallel to m.blobs */
    size_t *by_digest; /* indexes of m.blobs sorted by digest */
    imp_member *members;
    size_t n_members;
    uint64_t bytes_read; /* staged from the bundle by this run */
    size_t n_fresh;
    /* Per tag (parallel to m.tags): its graph's rows and its result. */
    al_graph *graphs;
    al_image_result *results;
    double t0;
} al_import;

/* The carried blob of that digest, or -1. */
long imp_blob_index(const al_import *imp, const char *digest);

/* import-stage.c */
/* Open (creating it) STORE/tmp/import-<id>; note what is staged already. */
int imp_stage_open(al_import *imp, al_error **err);
/* Read every volume into the staging directory; join split blobs; every
 * member the manifest names must have come (or its blob be here). */
int imp_stage_read(al_import *imp, al_error **err);
/* Rename the staged blobs into blobs/sha256 and fsync it. */
int imp_stage_publish(al_import *imp, al_error **err);
/* Remove the staging directory (after the commit, or for a no-op). */
void imp_stage_remove(al_store *store, const char *stage_name);

/* import-graph.c */
/* Walk every tag's graph over the staged and stored blobs; fill graphs[],
 * results[] (platforms, new blobs) and the blobs' media types. Fails,
 * naming the tag and the blob, when a graph is incomplete. */
int imp_graphs(al_import *imp, al_error **err);
void imp_graphs_dispose(al_import *imp);

#endif
