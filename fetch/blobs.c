/* Layers shared by the images of a run: each digest is looked up in the
 * store once and downloaded at most once per endpoint, whatever the number
 * of images that need it; its row goes with the group commit that follows
 * its file's (fetch/commit.c), so a run killed later loses no finished
 * layer. */
#include "plan-private.h"
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static void blob_free(void *value)
{
    blob *b = value;
    while (b->waiters != NULL) {
        blob_waiter *w = b->waiters;
        b->waiters = w->next;
        free(w);
    }
    free(b->media_type);
    free(b->failed_host);
    al_error_free(b->err);
    free(b);
}

void al_blobs_free(run *rn)
{
    al_strmap_free_with(rn->blobs, blob_free);
    rn->blobs = NULL;
}

static void add_waiter(blob *b, image *im)
{
    blob_waiter *w = al_xcalloc(1, sizeof(*w));
    w->im = im;
    w->next = b->waiters;
    b->waiters = w;
    al_image_hold(im);
}

/* The blob is settled (present or failed): tell every image waiting. */
static void settle(blob *b)
{
    blob_waiter *list = b->waiters;
    b->waiters = NULL;
    while (list != NULL) {
        blob_waiter *w = list;
        list = w->next;
        if (b->state == BLOB_FAILED) {
            al_error *e = NULL;
            al_error_set(&e, b->err->code, 0, "blob %s: %s", b->digest, b->err->msg);
            al_image_fail(w->im, e);
        }
        image *im = w->im;
        free(w);
        al_image_release(im);
    }
}

static void mark_failed(blob *b, const char *host, al_error *e)
{
    b->state = BLOB_FAILED;
    free(b->failed_host);
    b->failed_host = al_xstrdup(host);
    al_error_free(b->err);
    b->err = e;
}

static void on_fetched(al_call *c, void *user)
{
    blob *b = user;
    run *rn = b->credit->rn;
    if (al_call_ok(c)) {
        al_commit_row(rn, b->digest, b->size, b->media_type);
        b->state = BLOB_PRESENT;
        b->credit->res->new_blobs++;
        b->credit->res->new_bytes += al_call_bytes(c);
    } else {
        mark_failed(b, b->credit->host, al_call_take_error(c));
    }
    al_call_free(c);
    settle(b);
}

static void fetch(blob *b, image *im)
{
    b->state = BLOB_FETCHING;
    b->credit = im;
    add_waiter(b, im);
    al_call *c = al_call_new(im->ctx->registry, AL_CALL_BLOB_STORE, im->host, im->repo, b->digest);
    al_call_set_store(c, im->ctx->store, b->size);
    al_call_set_priority(c, im - im->rn->images);
    al_call_start(c, on_fetched, b);
}

/* What the store holds of a blob: present (its row made sure of), or to
 * be fetched; a file of the wrong size is moved aside first. */
static void check_store(blob *b, image *im)
{
    al_fetch_ctx *ctx = im->ctx;
    int64_t have = -1;
    /* A file the run is still staging (a config that is also a layer) is
     * not durable yet: this blob is fetched on its own. */
    if (!al_store_has_blob(ctx->store, b->digest, &have) ||
        al_stage_pending(al_registry_stage(ctx->registry, ctx->store), b->digest))
        return;
    al_error *e = NULL;
    if (have != b->size) {
        al_warn("%s: blob %s: the store holds %lld bytes but the manifest says %lld; moving it "
                "aside and fetching it again",
                im->tag_key, b->digest, (long long)have, (long long)b->size);
        if (al_store_quarantine(ctx->store, b->digest, &e) < 0)
            mark_failed(b, im->host, e);
        return;
    }
    al_commit_row_missing(im->rn, b->digest, b->size, b->media_type);
    b->state = BLOB_PRESENT;
}

void al_blobs_need(run *rn, image *im, const al_descriptor *d)
{
    blob *b = al_strmap_get(rn->blobs, d->digest);
    if (b == NULL) {
        b = al_xcalloc(1, sizeof(*b));
        memcpy(b->digest, d->digest, sizeof(b->digest));
        b->size = d->size;
        b->media_type = d->media_type ? al_xstrdup(d->media_type) : NULL;
        b->state = BLOB_CHECKING;
        al_strmap_put(rn->blobs, b->digest, b);
        check_store(b, im);
        if (b->state == BLOB_CHECKING) {
            fetch(b, im);
            return;
        }
    }
    switch (b->state) {
    case BLOB_PRESENT: return;
    case BLOB_FETCHING: add_waiter(b, im); return;
    case BLOB_FAILED:
        if (strcmp(b->failed_host, im->host) != 0) {
            fetch(b, im); /* another endpoint may have it */
            return;
        }
        al_image_failf(im, b->err->code, "blob %s: %s", b->digest, b->err->msg);
        return;
    case BLOB_CHECKING: return;
    }
}
