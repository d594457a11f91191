/* A fetch run: images, their endpoints and fallback, results (see plan.h;
 * one image's graph is walked in walk.c, layers are shared in blobs.c,
 * rows are written in commit.c). */
#include "plan.h"
#include "plan-private.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

void al_image_fail(image *im, al_error *e)
{
    if (im->failed) {
        al_error_free(e);
        return;
    }
    im->failed = true;
    im->res->status = AL_IMG_FAILED;
    im->res->err = e;
}

void al_image_failf(image *im, al_errc code, const char *fmt, ...)
{
    al_error *e = NULL;
    va_list ap;
    va_start(ap, fmt);
    al_error_vset(&e, code, 0, fmt, ap);
    va_end(ap);
    al_image_fail(im, e);
}

/* --- endpoints --------------------------------------------------------------------- */

/* The endpoints to try for a ref, in order: --registry alone; or the
 * mirrors of its registry, then the registry itself unless told not to. */
static size_t endpoint_count(const al_fetch_ctx *ctx, const al_ref *ref)
{
    bool hub = strcmp(ref->domain, "docker.io") == 0;
    if (hub && ctx->opts.registry_override != NULL)
        return 1;
    size_t n = 0;
    for (size_t i = 0; i < ctx->opts.n_mirrors; i++)
        n += strcmp(ctx->opts.mirrors[i].upstream, ref->domain) == 0;
    return n + (n == 0 || !ctx->opts.no_fallback ? 1 : 0);
}

static void set_endpoint(image *im, size_t k)
{
    const al_fetch_ctx *ctx = im->ctx;
    const al_ref *ref = im->entry->ref;
    free(im->host);
    free(im->repo);
    free(im->source);
    im->endpoint = k;
    bool hub = strcmp(ref->domain, "docker.io") == 0;
    const al_mirror *m = NULL;
    if (hub && ctx->opts.registry_override != NULL) {
        im->host = al_xstrdup(ctx->opts.registry_override);
    } else {
        for (size_t i = 0, seen = 0; i < ctx->opts.n_mirrors && m == NULL; i++)
            if (strcmp(ctx->opts.mirrors[i].upstream, ref->domain) == 0 && seen++ == k)
                m = &ctx->opts.mirrors[i];
        im->host = al_xstrdup(m ? m->host : al_ref_endpoint_host(ref));
    }
    if (m != NULL && m->prefix != NULL && *m->prefix != '\0')
        im->repo = al_xasprintf("%s/%s", m->prefix, ref->path);
    else
        im->repo = al_xstrdup(ref->path);
    im->source = al_xasprintf("%s/%s", im->host, im->repo);
}

/* --- an image's life ------------------------------------------------------------------ */

static void image_start(image *im)
{
    im->pending = 0;
    im->failed = false;
    im->phase = IMG_WALKING;
    al_image_hold(im); /* nothing below may finish it before the walk is under way */
    al_walk_start(im);
    al_image_release(im);
}

/* Forget an attempt's work so the image can start again elsewhere. */
static void reset_attempt(image *im)
{
    al_walk_free_nodes(im);
    al_error_free(im->res->err);
    im->res->err = NULL;
    im->res->status = AL_IMG_OK;
    im->res->new_blobs = 0;
    im->res->new_bytes = 0;
}

/* An image leaves its endpoint. A cause its host gave every image (it
 * went down) is said once for the host, not once per image. */
static void warn_fallback(image *im)
{
    const char *why = im->res->err ? im->res->err->msg : "error";
    _cleanup_free_ char *key = al_xasprintf("%s %s", im->host, why);
    if (al_strmap_get(im->rn->warned, key) != NULL) {
        al_debug("%s: %s failed; trying the next endpoint", im->tag_key, im->host);
        return;
    }
    al_strmap_put(im->rn->warned, key, im);
    al_warn("%s: %s failed (%s); trying the next endpoint", im->tag_key, im->host, why);
}

void al_image_settle(image *im)
{
    if (im->failed && im->endpoint + 1 < endpoint_count(im->ctx, im->entry->ref)) {
        /* As k3s' registries.yaml mirrors do: the next endpoint, now. */
        warn_fallback(im);
        reset_attempt(im);
        set_endpoint(im, im->endpoint + 1);
        image_start(im);
        return;
    }
    im->phase = IMG_DONE;
    im->res->done_at = al_mono(); /* report hook */
    al_walk_free_nodes(im);
}

/* Nothing outstanding: the walk ended (stage what came, or settle a
 * failure), or the staging did (queue for the group commit). */
static void image_finish(image *im)
{
    if (!im->failed && im->phase == IMG_WALKING)
        al_commit_stage(im);
    else if (!im->failed && im->phase == IMG_STAGING)
        al_commit_queue(im);
    else
        al_image_settle(im);
}

void al_image_hold(image *im)
{
    im->pending++;
}

void al_image_release(image *im)
{
    if (--im->pending == 0)
        image_finish(im);
}

/* --- the run ------------------------------------------------------------------------- */

static int image_init(al_fetch_ctx *ctx, run *rn, image *im, const al_reflist_entry *entry,
                      al_image_result *res, al_error **err)
{
    im->ctx = ctx;
    im->rn = rn;
    im->entry = entry;
    im->res = res;
    im->tag_key = al_ref_full(entry->ref);
    res->full_name = al_xstrdup(im->tag_key);
    set_endpoint(im, 0);
    bool found = false;
    if (al_db_tag_walk_get(ctx->db, im->tag_key, &im->walked, &found, err) < 0)
        return al_error_wrap(err, "tag %s", im->tag_key);
    if (found) {
        im->had_tag = true;
        memcpy(im->stored_digest, im->walked.digest, sizeof(im->stored_digest));
    }
    /* Another selection (or --repair) walks the graph again. */
    if (im->walked.selection != NULL &&
        (ctx->opts.rewalk || strcmp(im->walked.selection, rn->selection) != 0 ||
         im->walked.platforms == NULL || im->walked.blobs < 0)) {
        free(im->walked.selection);
        im->walked.selection = NULL;
    }
    return 0;
}

/* What decides the part of a graph a run keeps, as a key for al_tag_walk:
 * the same key and the same root digest keep the same graph. */
static char *selection_key(const al_fetch_opts *o)
{
    char *s = al_xstrdup("v1 platforms=");
    for (size_t i = 0; i < o->n_platforms; i++) {
        char pb[96];
        char *t = al_xasprintf("%s%s%s", s, i > 0 ? "," : "",
                               al_platform_format(&o->platforms[i], pb, sizeof(pb)));
        free(s);
        s = t;
    }
    char *t = al_xasprintf("%s%s attestations=%s", s, o->n_platforms == 0 ? "*" : "",
                           o->include_attestations ? "yes" : "no");
    free(s);
    return t;
}

static void image_dispose(image *im)
{
    al_walk_free_nodes(im);
    free(im->tag_key);
    free(im->host);
    free(im->repo);
    free(im->source);
    al_tag_walk_dispose(&im->walked);
}

/* After every loop iteration: the rows of what it finished. */
static void flush(void *user)
{
    al_commit_flush(user);
}

int al_fetch_run(al_fetch_ctx *ctx, const al_reflist *list, al_image_result **results_out,
                 al_error **err)
{
    size_t n = list->n;
    al_image_result *res = al_xcalloc(n ? n : 1, sizeof(*res));
    run rn = {.ctx = ctx,
              .blobs = al_strmap_new(),
              .warned = al_strmap_new(),
              .n = n,
              .selection = selection_key(&ctx->opts)};
    rn.images = al_xcalloc(n ? n : 1, sizeof(image));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = image_init(ctx, &rn, &rn.images[i], &list->items[i], &res[i], err);
    if (rc == 0) {
        al_engine *e = al_registry_engine(ctx->registry);
        al_engine_on_iteration(e, flush, &rn);
        for (size_t i = 0; i < n; i++)
            image_start(&rn.images[i]);
        /* What the loop's last turn left: settling it may start an image
         * on its next endpoint, and then the loop runs again. */
        do
            al_engine_run(e);
        while (al_commit_flush(&rn));
        al_engine_on_iteration(e, NULL, NULL);
        /* Once per run: a run killed before this leaves index.json behind
         * the tags, and the next run brings it in line. */
        if ((rc = al_commit_touch(&rn, err)) == 0)
            rc = al_fetch_write_index(ctx->store, ctx->db, err);
    }
    for (size_t i = 0; i < n; i++)
        image_dispose(&rn.images[i]);
    free(rn.images);
    al_blobs_free(&rn);
    al_commit_free(&rn);
    al_strmap_free(rn.warned);
    free(rn.selection);
    *results_out = res;
    return rc;
}

void al_image_results_free(al_image_result *r, size_t n)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].full_name);
        free(r[i].platforms);
        al_error_free(r[i].err);
    }
    free(r);
}
