/* A push run (push.h): each image, as its answers arrive, from the HEAD of
 * its tag through its blobs (push-blobs.c) to its manifests, children
 * first, and its tag. Every image starts at once; the engine's job limit
 * is the only throttle, and an image's requests carry its place in the
 * list, so images finish in list order. */
#include "push-private.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manifest.h"
#include "util.h"

al_call *al_push_call(push_image *im, al_call_kind kind, const char *reference)
{
    push_run *run = im->run;
    al_call *c = al_call_new(run->reg, kind, run->plan->opts.host, im->repo, reference);
    al_call_set_push(c);
    al_call_set_priority(c, im->priority);
    return c;
}

/* The first failure is the image's. */
static void image_fail(push_image *im, al_error *e)
{
    if (im->failed) {
        al_error_free(e);
        return;
    }
    im->failed = true;
    im->res->status = AL_PUSH_FAILED;
    al_error_free(im->res->err);
    im->res->err = e;
}

static void image_end(push_image *im)
{
    im->res->done_at = al_mono();
    free(im->put_buf);
    im->put_buf = NULL;
}

/* --- manifests, then the tag ------------------------------------------------------------- */

static void put_next(push_image *im);

static void on_put(al_call *c, void *user)
{
    push_image *im = user;
    free(im->put_buf);
    im->put_buf = NULL;
    if (!al_call_ok(c)) {
        const push_manifest *m =
            &im->manifests[im->next < im->n_manifests ? im->next : im->n_manifests - 1];
        al_error *why = al_call_take_error(c), *e = NULL;
        al_error_set(&e, why->code, 0, "%s %s (%s) refused: %s; nothing tagged",
                     im->next < im->n_manifests ? "manifest" : "tag",
                     im->next < im->n_manifests ? m->digest : im->tag, m->media_type, why->msg);
        al_error_free(why);
        image_fail(im, e);
        al_call_free(c);
        image_end(im);
        return;
    }
    al_call_free(c);
    im->res->manifests++;
    im->next++;
    put_next(im);
}

/* The manifests by digest, children first, then the root again under its
 * tag: each with the bytes and media type stored (a rewritten index's
 * own), so the registry keeps the digest. */
static void put_next(push_image *im)
{
    bool tag_step = im->next == im->n_manifests;
    if (im->next > im->n_manifests || (tag_step && im->tag == NULL)) {
        im->res->status = AL_PUSH_PUSHED;
        snprintf(im->res->digest, sizeof(im->res->digest), "%s", im->root);
        image_end(im);
        return;
    }
    const push_manifest *m = &im->manifests[tag_step ? im->n_manifests - 1 : im->next];
    const char *body = m->body;
    size_t len = m->len;
    if (body == NULL) {
        al_error *e = NULL;
        if (al_store_read_blob(im->run->plan->store, m->digest, AL_MANIFEST_MAX, &im->put_buf, &len,
                               &e) < 0) {
            al_error_wrap(&e, "nothing tagged");
            image_fail(im, e);
            image_end(im);
            return;
        }
        body = im->put_buf;
    }
    al_call *c = al_push_call(im, AL_CALL_MANIFEST_PUT, tag_step ? im->tag : m->digest);
    al_call_set_put(c, body, len, m->media_type, m->digest);
    al_call_start(c, on_put, im);
}

/* --- blobs ---------------------------------------------------------------------------------- */

void al_push_image_blob_done(push_image *im, const al_error *e, bool store_fault)
{
    if (e != NULL) {
        /* A blob the store holds damaged: say how it is mended. */
        al_error *copy = NULL;
        al_error_set(&copy, e->code, 0, "%s: nothing tagged%s%s%s", e->msg,
                     store_fault ? " (airlock-fetch --repair " : "",
                     store_fault ? im->res->ref : "", store_fault ? " fetches it again)" : "");
        image_fail(im, copy);
    }
    if (--im->pending > 0)
        return;
    if (im->failed)
        image_end(im);
    else
        put_next(im);
}

static void need_blobs(push_image *im)
{
    im->pending = 1; /* nothing settles the image before every blob is asked for */
    for (size_t i = 0; i < im->n_blobs; i++)
        al_push_blob_need(im->run, im, &im->blobs[i]);
    al_push_image_blob_done(im, NULL, false);
}

/* --- the tag --------------------------------------------------------------------------------- */

static void on_tag_head(al_call *c, void *user)
{
    push_image *im = user;
    const al_request *q = al_call_response(c);
    if (!al_call_ok(c)) {
        image_fail(im, al_call_take_error(c));
        al_call_free(c);
        image_end(im);
        return;
    }
    bool same =
        al_call_found(c) && q->docker_digest != NULL && strcmp(q->docker_digest, im->root) == 0;
    al_call_free(c);
    if (same) {
        /* The tag names what would be pushed: nothing more is sent. */
        im->res->status = AL_PUSH_UNCHANGED;
        snprintf(im->res->digest, sizeof(im->res->digest), "%s", im->root);
        image_end(im);
        return;
    }
    need_blobs(im);
}

static void image_start(push_image *im)
{
    if (!im->selected) {
        im->res->done_at = al_mono();
        return;
    }
    al_call *c = al_push_call(im, AL_CALL_MANIFEST_HEAD, im->tag ? im->tag : im->root);
    al_call_set_absent_ok(c);
    al_call_start(c, on_tag_head, im);
}

void al_push_run(al_push_plan *p, al_registry *reg, al_push_result **results_out)
{
    push_run run = {.plan = p, .reg = reg, .tasks = al_strmap_new(), .holders = al_strmap_new()};
    for (size_t i = 0; i < p->n; i++) {
        p->images[i].run = &run;
        p->images[i].priority = (int64_t)i;
        image_start(&p->images[i]);
    }
    al_engine_run(al_registry_engine(reg));
    al_push_blobs_free(&run);
    for (size_t i = 0; i < p->n; i++)
        p->images[i].run = NULL;
    *results_out = al_steal_ptr(&p->results);
}
