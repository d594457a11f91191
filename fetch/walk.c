/* One image's graph, walked as its answers arrive: the root (HEAD for a
 * known tag, GET otherwise, or a digest), each index's wanted children at
 * once, each image manifest's config, then its layers (blobs.c). A blob
 * the store already holds is read from disk, and one found damaged there
 * is moved aside and fetched again. Every manifest and config is stored,
 * with its row, as soon as it is accepted. */
#include "plan-private.h"

#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "log.h"
#include "util.h"

/* A call of the walk and the node it is for. */
typedef struct step {
    image *im;
    size_t node;
} step;

static size_t add_node(image *im, long parent, int level)
{
    im->nodes = al_xrealloc(im->nodes, (im->n_nodes + 1) * sizeof(mnode));
    mnode *n = &im->nodes[im->n_nodes];
    memset(n, 0, sizeof(*n));
    n->want_size = -1;
    n->parent = parent;
    n->level = level;
    return im->n_nodes++;
}

static void node_dispose(mnode *n)
{
    al_manifest_free(n->m);
    char *owned[] = {n->media_type, n->body, n->config_body};
    for (size_t i = 0; i < AL_ARRAY_SIZE(owned); i++)
        free(owned[i]);
}

void al_walk_free_nodes(image *im)
{
    for (size_t i = 0; i < im->n_nodes; i++)
        node_dispose(&im->nodes[i]);
    free(im->nodes);
    im->nodes = NULL;
    im->n_nodes = 0;
}

/* --platform and --include-attestations as the graph's selection. */
static al_graph_select selection(const al_fetch_ctx *ctx)
{
    return (al_graph_select){.platforms = ctx->opts.platforms,
                             .n_platforms = ctx->opts.n_platforms,
                             .attestations = ctx->opts.include_attestations};
}

/* Start a call for the image; cb gets the step back. */
static void start_call(image *im, size_t node, al_call *c, al_call_done_fn cb)
{
    step *s = al_xcalloc(1, sizeof(*s));
    s->im = im;
    s->node = node;
    al_image_hold(im);
    al_call_set_priority(c, im - im->rn->images);
    al_call_start(c, cb, s);
}

/* The end of a call of the walk: free it, release the image. */
static void end_step(step *s, al_call *c)
{
    image *im = s->im;
    al_call_free(c);
    free(s);
    al_image_release(im);
}

/* Read a manifest or config from the store. Returns 1 with the body, 0
 * when the store lacks it (or held it damaged: then it is moved aside and
 * fetched again), -1 on another failure (the image failed). */
static int read_local(image *im, const char *digest, size_t cap, char **body, size_t *len)
{
    al_store *store = im->ctx->store;
    if (!al_store_has_blob(store, digest, NULL))
        return 0;
    al_error *e = NULL;
    if (al_store_read_blob(store, digest, cap, body, len, &e) == 0)
        return 1;
    if (e->code == AL_E_DIGEST) {
        al_warn("%s: %s; moving it aside and fetching it again", im->tag_key, e->msg);
        al_error_clear(&e);
        if (al_store_quarantine(store, digest, &e) == 0)
            return 0;
    }
    al_image_fail(im, e);
    return -1;
}

/* --- manifests ------------------------------------------------------------------- */

static void resolve_node(image *im, size_t j);
static void need_config(image *im, size_t j);

/* The children the graph says to visit next (graph.h: nested indexes,
 * wanted platforms, each digest once), each resolved at once; a child
 * another index of this image already listed is fetched once. */
static void add_children(image *im, size_t j)
{
    const al_manifest *m = im->nodes[j].m;
    char parent[AL_DIGEST_BUF];
    memcpy(parent, im->nodes[j].digest, sizeof(parent));
    int level = im->nodes[j].level;
    al_graph_select sel = selection(im->ctx);
    _cleanup_free_ size_t *next = NULL;
    size_t n_next = 0;
    al_error *e = NULL;
    if (al_graph_next(&next, &n_next, parent, m, level, &sel, &e) < 0) {
        al_image_fail(im, e);
        return;
    }
    for (size_t k = 0; k < n_next && !im->failed; k++) {
        const al_descriptor *d = &m->children[next[k]];
        bool dup = false;
        for (size_t i = 0; i < im->n_nodes && !dup; i++)
            dup = strcmp(im->nodes[i].digest, d->digest) == 0;
        if (dup)
            continue;
        size_t c = add_node(im, (long)j, level + 1); /* may move im->nodes */
        mnode *n = &im->nodes[c];
        memcpy(n->digest, d->digest, sizeof(n->digest));
        n->want_size = d->size;
        n->media_type = d->media_type ? al_xstrdup(d->media_type) : NULL;
        n->has_platform = d->has_platform;
        n->platform = d->platform;
        n->position = (int)next[k];
        resolve_node(im, c);
    }
}

/* Accept a manifest body for node j: digest, size, parse; hold it (when
 * it came from the registry), then go on to its children or its config.
 * body is consumed. */
static void accept_manifest(image *im, size_t j, char *body, size_t len, const char *content_type,
                            const char *expect, bool local)
{
    _cleanup_free_ char *owned = body;
    mnode *n = &im->nodes[j];
    char got[AL_DIGEST_BUF];
    al_digest_bytes(got, body, len);
    /* The descriptor that named it; a root has none (its body says). */
    al_descriptor named = {.media_type = n->media_type, .size = n->want_size};
    memcpy(named.digest, got, sizeof(got));
    al_error *e = NULL;
    if (expect != NULL && strcmp(got, expect) != 0)
        al_error_set(&e, AL_E_DIGEST, 0, "manifest %s: digest mismatch: content hashes to %s",
                     expect, got);
    else if (al_graph_accept_manifest(&n->m, n->parent >= 0 ? &named : NULL, n->level, body, len,
                                      content_type, &e) < 0)
        al_error_wrap(&e, "manifest %s", got);
    if (e != NULL) {
        al_image_fail(im, e);
        return;
    }
    if (!local) {
        n->body = al_steal_ptr(&owned);
        n->len = len;
    }
    memcpy(n->digest, got, sizeof(got));
    n->size = (int64_t)len;
    free(n->media_type);
    n->media_type = al_xstrdup(n->m->media_type);
    n->resolved = true;
    if (al_manifest_is_index(n->m))
        add_children(im, j);
    else
        need_config(im, j);
}

static void on_manifest(al_call *c, void *user)
{
    step *s = user;
    image *im = s->im;
    if (!al_call_ok(c)) {
        al_image_fail(im, al_call_take_error(c));
    } else if (!im->failed) {
        al_request *q = al_call_response(c);
        char *body = q->body ? al_steal_ptr(&q->body) : al_xstrdup("");
        const char *ref = al_call_reference(c);
        const char *expect = al_digest_valid(ref) ? ref : NULL;
        if (expect == NULL && q->docker_digest != NULL) {
            al_error *e = NULL;
            if (al_digest_check(q->docker_digest, &e) < 0) {
                al_error_wrap(&e, "Docker-Content-Digest of %s", ref);
                al_image_fail(im, e);
                free(body);
                end_step(s, c);
                return;
            }
            expect = q->docker_digest;
        }
        accept_manifest(im, s->node, body, q->body_len, q->content_type, expect, false);
    }
    end_step(s, c);
}

static void get_manifest(image *im, size_t j, const char *reference)
{
    al_call *c =
        al_call_new(im->ctx->registry, AL_CALL_MANIFEST_GET, im->host, im->repo, reference);
    start_call(im, j, c, on_manifest);
}

/* A node whose digest is known: from the store, else from the registry. */
static void resolve_node(image *im, size_t j)
{
    char digest[AL_DIGEST_BUF];
    memcpy(digest, im->nodes[j].digest, sizeof(digest));
    char *body = NULL;
    size_t len = 0;
    int r = read_local(im, digest, AL_MANIFEST_MAX, &body, &len);
    if (r > 0)
        accept_manifest(im, j, body, len, NULL, digest, true);
    else if (r == 0)
        get_manifest(im, j, digest);
}

/* --- configs and layers ---------------------------------------------------------- */

static void start_layers(image *im, size_t j)
{
    const al_manifest *m = im->nodes[j].m;
    for (size_t l = 0; l < m->n_layers && !im->failed; l++)
        al_blobs_need(im->rn, im, &m->layers[l]);
}

/* Accept node j's config: digest, size, the platform of a single-platform
 * image (its config says what it runs on); hold it; then its layers. */
static void accept_config(image *im, size_t j, char *body, size_t len, bool local)
{
    _cleanup_free_ char *owned = body;
    mnode *n = &im->nodes[j];
    const al_descriptor *cd = &n->m->config;
    char got[AL_DIGEST_BUF];
    al_digest_bytes(got, body, len);
    al_error *e = NULL;
    al_image_config *cfg = NULL;
    /* The graph's rule: the size its descriptor gives, and a config export
     * can read (a JSON object), else nothing of the image is stored. */
    if (strcmp(got, cd->digest) != 0)
        al_error_set(&e, AL_E_DIGEST, 0, "config %s: digest mismatch: content hashes to %s",
                     cd->digest, got);
    else if (al_graph_accept_config(&cfg, cd, body, len, &e) < 0)
        al_error_wrap(&e, "config %s", cd->digest);
    if (e != NULL) {
        al_image_fail(im, e);
        return;
    }
    if (!n->has_platform && cfg->has_platform) {
        /* A single-platform image: its config says what it runs on.
         * Configs of non-image artifacts have no platform; keep those. */
        n->has_platform = true;
        n->platform = cfg->platform;
        al_graph_select sel = selection(im->ctx);
        n->dropped = !al_graph_platform_wanted(&sel, &n->platform);
    }
    al_image_config_free(cfg);
    if (!local) {
        n->config_body = al_steal_ptr(&owned);
        n->config_len = len;
    }
    if (!n->dropped)
        start_layers(im, j);
}

static void on_config(al_call *c, void *user)
{
    step *s = user;
    image *im = s->im;
    if (!al_call_ok(c)) {
        al_error *e = al_call_take_error(c);
        al_error_wrap(&e, "config %s", al_call_reference(c));
        al_image_fail(im, e);
    } else if (!im->failed) {
        al_request *q = al_call_response(c);
        char *body = q->body ? al_steal_ptr(&q->body) : al_xstrdup("");
        accept_config(im, s->node, body, q->body_len, false);
    }
    end_step(s, c);
}

static void need_config(image *im, size_t j)
{
    const al_descriptor *cd = &im->nodes[j].m->config;
    if (cd->size > (int64_t)AL_CONFIG_MAX) {
        al_image_failf(im, AL_E_SIZE, "config %s is larger than the 8 MiB limit", cd->digest);
        return;
    }
    char *body = NULL;
    size_t len = 0;
    int r = read_local(im, cd->digest, AL_CONFIG_MAX, &body, &len);
    if (r > 0) {
        accept_config(im, j, body, len, true);
    } else if (r == 0) {
        al_call *c =
            al_call_new(im->ctx->registry, AL_CALL_BLOB_MEM, im->host, im->repo, cd->digest);
        al_call_set_mem_cap(c, AL_CONFIG_MAX);
        start_call(im, j, c, on_config);
    }
}

/* --- the root ------------------------------------------------------------------------ */

/* HEAD of a known tag: its digest leads to the graph (in the store when
 * unchanged). A registry that refused HEAD was asked with GET: then the
 * answer is the root itself. */
static void on_head(al_call *c, void *user)
{
    step *s = user;
    image *im = s->im;
    al_request *q = al_call_response(c);
    if (!al_call_ok(c)) {
        al_image_fail(im, al_call_take_error(c));
        end_step(s, c);
    } else if (al_call_has_body(c)) {
        on_manifest(c, user); /* ends the step */
    } else if (q->docker_digest != NULL && al_digest_valid(q->docker_digest)) {
        /* Unchanged since a walk of the same selection: nothing to read. */
        if (!al_commit_known(im, q->docker_digest)) {
            memcpy(im->nodes[0].digest, q->docker_digest, AL_DIGEST_BUF);
            resolve_node(im, 0);
        }
        end_step(s, c);
    } else {
        get_manifest(im, 0, im->entry->ref->tag); /* no usable digest header */
        end_step(s, c);
    }
}

void al_walk_start(image *im)
{
    const al_ref *ref = im->entry->ref;
    size_t root = add_node(im, -1, 1);
    if (ref->digest != NULL) {
        memcpy(im->nodes[root].digest, ref->digest, AL_DIGEST_BUF);
        resolve_node(im, root);
    } else if (im->had_tag) {
        al_call *c =
            al_call_new(im->ctx->registry, AL_CALL_MANIFEST_HEAD, im->host, im->repo, ref->tag);
        start_call(im, root, c, on_head);
    } else {
        get_manifest(im, root, ref->tag);
    }
}
