/* Blobs made durable in groups (docs/DESIGN.md, "Crash rules"): each
 * verified blob is fsynced and renamed into blobs/sha256 on a worker
 * thread, then one fsync of blobs/sha256 makes every rename of the group
 * durable at once, and only then is each blob's owner told (and may write
 * its row). While one directory fsync runs, the next group gathers: under
 * load the groups grow, and the transfer loop never waits for a disk. */
#ifndef AL_STAGE_H
#define AL_STAGE_H

#include "engine.h"
#include "store.h"
#include "worker.h"

typedef struct al_stage al_stage;

al_stage *al_stage_new(al_store *store, al_engine *engine, al_worker *worker);
void al_stage_free(al_stage *st); /* accepts NULL; only once nothing is staged */

/* done(user, err) runs on the loop's thread once w's blob (digest) is
 * durable in blobs/sha256 (err NULL), or failed (err owned by done, the
 * temp file removed). w must be verified (al_blob_writer_verify); it is
 * taken. */
typedef void (*al_stage_done_fn)(void *user, al_error *err);
void al_stage_blob(al_stage *st, const char *digest, al_blob_writer *w, al_stage_done_fn done,
                   void *user);

/* A small blob held in memory (a manifest, a config): written to a temp
 * file now, then the same. buf is copied out before the call returns. */
void al_stage_buffer(al_stage *st, const char *digest, const void *buf, size_t len,
                     al_stage_done_fn done, void *user);

/* True while a blob of that digest is staged and not yet durable: its
 * file may be in blobs/sha256 already, but a row for it must wait (the
 * caller stages its own copy, or fetches it). st may be NULL. */
bool al_stage_pending(const al_stage *st, const char *digest);

/* Directory fsyncs so far (one per group; tests read it). */
size_t al_stage_groups(const al_stage *st);

#endif
