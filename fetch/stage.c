/* Blobs made durable in groups (see stage.h). */
#include "stage.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>

#include "strmap.h"
#include "util.h"

typedef struct item {
    al_stage *st;
    char digest[AL_DIGEST_BUF];
    al_blob_writer *w;
    al_error *err;
    al_stage_done_fn done;
    void *user;
    struct item *next;
} item;

struct al_stage {
    al_store *store;
    al_engine *engine;
    al_worker *worker;
    item *gathering; /* published, waiting for the next directory fsync */
    item *syncing;   /* covered by the directory fsync that runs */
    al_error *sync_err;
    bool sync_running;
    al_strmap *pending; /* digest -> items staged and not yet done (as a number) */
    size_t groups;
};

al_stage *al_stage_new(al_store *store, al_engine *engine, al_worker *worker)
{
    al_stage *st = al_xcalloc(1, sizeof(*st));
    st->store = store;
    st->engine = engine;
    st->worker = worker;
    st->pending = al_strmap_new();
    return st;
}

void al_stage_free(al_stage *st)
{
    if (st == NULL)
        return;
    al_strmap_free(st->pending);
    free(st);
}

static void pending_add(al_stage *st, const char *digest, intptr_t d)
{
    intptr_t n = (intptr_t)al_strmap_get(st->pending, digest);
    al_strmap_put(st->pending, digest, (void *)(n + d));
}

bool al_stage_pending(const al_stage *st, const char *digest)
{
    return st != NULL && (intptr_t)al_strmap_get(st->pending, digest) > 0;
}

size_t al_stage_groups(const al_stage *st)
{
    return st->groups;
}

static void finish(item *it, al_error *err)
{
    pending_add(it->st, it->digest, -1);
    al_blob_writer_abort(it->w); /* removes the temp file when it was not renamed */
    it->done(it->user, err);
    free(it);
}

/* --- the directory fsync, one per group -------------------------------------- */

static void sync_work(void *arg)
{
    al_stage *st = arg;
    al_store_sync_blobs(st->store, &st->sync_err);
}

static void start_sync(al_stage *st);

static void sync_done(void *arg)
{
    al_stage *st = arg;
    item *group = al_steal_ptr(&st->syncing);
    al_error *err = al_steal_ptr(&st->sync_err);
    st->sync_running = false;
    start_sync(st); /* the next group first: its blobs waited already */
    while (group != NULL) {
        item *it = group;
        group = it->next;
        finish(it, al_error_copy(err));
    }
    al_error_free(err);
}

static void start_sync(al_stage *st)
{
    if (st->sync_running || st->gathering == NULL)
        return;
    st->syncing = al_steal_ptr(&st->gathering);
    st->sync_running = true;
    st->groups++;
    al_worker_submit(st->worker, sync_work, sync_done, st);
}

/* --- each blob: fsync and rename on a worker ----------------------------------- */

static void publish_work(void *arg)
{
    item *it = arg;
    al_blob_writer_publish(it->w, &it->err);
}

static void publish_done(void *arg)
{
    item *it = arg;
    if (it->err != NULL) {
        finish(it, al_steal_ptr(&it->err));
        return;
    }
    it->next = it->st->gathering;
    it->st->gathering = it;
    start_sync(it->st);
}

void al_stage_blob(al_stage *st, const char *digest, al_blob_writer *w, al_stage_done_fn done,
                   void *user)
{
    item *it = al_xcalloc(1, sizeof(*it));
    it->st = st;
    snprintf(it->digest, sizeof(it->digest), "%s", digest);
    pending_add(st, it->digest, 1);
    it->w = w;
    it->done = done;
    it->user = user;
    al_worker_submit(st->worker, publish_work, publish_done, it);
}

void al_stage_buffer(al_stage *st, const char *digest, const void *buf, size_t len,
                     al_stage_done_fn done, void *user)
{
    al_blob_writer *w = NULL;
    al_error *e = NULL;
    if (al_store_blob_begin(&w, st->store, digest, (int64_t)len, &e) < 0 ||
        al_blob_writer_write(w, buf, len, &e) < 0 || al_blob_writer_verify(w, &e) < 0) {
        al_blob_writer_abort(w);
        done(user, e);
        return;
    }
    al_stage_blob(st, digest, w, done, user);
}
