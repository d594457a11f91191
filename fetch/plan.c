#include "plan.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "log.h"
#include "manifest.h"
#include "util.h"

/* One manifest of an image's graph, held in memory (capped at
 * AL_MANIFEST_MAX) until the graph is committed. */
typedef struct mnode {
    char digest[AL_DIGEST_BUF];
    char *media_type;
    int64_t size;
    int64_t want_size; /* from the parent descriptor, -1 for a root */
    char *body;
    size_t len;
    bool local; /* already in the store */
    al_manifest *m;
    bool has_platform;
    al_platform platform;
    char parent[AL_DIGEST_BUF]; /* "" for the root */
    int position;
    int level;     /* the root is 1 (graph.h) */
    bool resolved; /* body present and parsed */
    bool dropped;  /* filtered out by platform */
    /* Image manifests: the config. */
    char *config_body;
    size_t config_len;
    bool config_local;
} mnode;

typedef struct image {
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
    char *root_reference; /* what to GET for the root: tag or digest */
    bool root_from_store;
    mnode *nodes;
    size_t n_nodes;
} image;

typedef struct blob_need {
    char digest[AL_DIGEST_BUF];
    int64_t size;
    const char *media_type; /* borrowed from a manifest */
    bool present;
    bool downloaded;
    uint64_t bytes;
    al_error *err;
    image *first; /* image that gets the credit in its "new blobs" */
} blob_need;

static void fail(image *im, al_error *e)
{
    if (im->failed) {
        al_error_free(e);
        return;
    }
    im->failed = true;
    im->res->status = AL_IMG_FAILED;
    im->res->err = e;
}

static void failf(image *im, al_errc code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(image *im, al_errc code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    al_error *e = NULL;
    al_error_set(&e, code, 0, "%s", msg);
    fail(im, e);
}

static mnode *add_node(image *im)
{
    im->nodes = al_xrealloc(im->nodes, (im->n_nodes + 1) * sizeof(mnode));
    mnode *n = &im->nodes[im->n_nodes++];
    memset(n, 0, sizeof(*n));
    n->want_size = -1;
    return n;
}

static void free_nodes(image *im)
{
    for (size_t i = 0; i < im->n_nodes; i++) {
        mnode *n = &im->nodes[i];
        free(n->media_type);
        free(n->body);
        free(n->config_body);
        al_manifest_free(n->m);
    }
    free(im->nodes);
}

/* --platform and --include-attestations as the graph's selection. */
static al_graph_select selection(const al_fetch_ctx *ctx)
{
    return (al_graph_select){.platforms = ctx->opts.platforms,
                             .n_platforms = ctx->opts.n_platforms,
                             .attestations = ctx->opts.include_attestations};
}

/* Accept a manifest body: check its digest, then the graph's rules (size,
 * kind against its descriptor, level), and for an index queue the children
 * the graph says to visit next. Returns false when the image failed. */
static bool accept_manifest(al_fetch_ctx *ctx, image *im, size_t idx, char *body, size_t len,
                            const char *content_type, const char *expect_digest)
{
    mnode *n = &im->nodes[idx];
    char got[AL_DIGEST_BUF];
    al_digest_bytes(got, body, len);
    if (expect_digest != NULL && strcmp(got, expect_digest) != 0) {
        free(body);
        failf(im, AL_E_DIGEST, "manifest %s: digest mismatch: content hashes to %s", expect_digest,
              got);
        return false;
    }
    /* The descriptor that named it; a root has none (its body says). */
    al_descriptor named = {.media_type = n->media_type, .size = n->want_size};
    memcpy(named.digest, got, sizeof(got));
    al_error *e = NULL;
    if (al_graph_accept_manifest(&n->m, n->parent[0] ? &named : NULL, n->level, body, len,
                                 content_type, &e) < 0) {
        free(body);
        al_error_wrap(&e, "manifest %s", got);
        fail(im, e);
        return false;
    }
    memcpy(n->digest, got, sizeof(got));
    n->body = body;
    n->len = len;
    n->size = (int64_t)len;
    free(n->media_type);
    n->media_type = al_xstrdup(n->m->media_type);
    n->resolved = true;
    if (!al_manifest_is_index(n->m))
        return true;
    /* Copy what we need before add_node() moves the array. */
    al_manifest *m = n->m;
    char parent[AL_DIGEST_BUF];
    memcpy(parent, n->digest, sizeof(parent));
    int level = n->level;
    al_graph_select sel = selection(ctx);
    _cleanup_free_ size_t *next = NULL;
    size_t n_next = 0;
    if (al_graph_next(&next, &n_next, parent, m, level, &sel, &e) < 0) {
        fail(im, e);
        return false;
    }
    for (size_t k = 0; k < n_next; k++) {
        size_t i = next[k];
        const al_descriptor *d = &m->children[i];
        /* A child another index of this image already listed is fetched once. */
        bool dup = false;
        for (size_t j = 0; j < im->n_nodes && !dup; j++)
            dup = strcmp(im->nodes[j].digest, d->digest) == 0;
        if (dup)
            continue;
        mnode *c = add_node(im);
        memcpy(c->digest, d->digest, sizeof(c->digest));
        c->want_size = d->size;
        c->media_type = d->media_type ? al_xstrdup(d->media_type) : NULL;
        c->has_platform = d->has_platform;
        c->platform = d->platform;
        memcpy(c->parent, parent, sizeof(parent));
        c->position = (int)i;
        c->level = level + 1;
    }
    return true;
}

/* Read a manifest or config from the store when present. */
static bool read_local(al_fetch_ctx *ctx, const char *digest, size_t cap, char **body, size_t *len,
                       al_error **err)
{
    if (!al_store_has_blob(ctx->store, digest, NULL))
        return false;
    if (al_store_read_blob(ctx->store, digest, cap, body, len, err) < 0)
        return false;
    return true;
}

static const char *call_host(const image *im)
{
    return im->host;
}

/* --- phase 1: roots ------------------------------------------------------ */

static void resolve_roots(al_fetch_ctx *ctx, image **ims, size_t n)
{
    al_call **calls = al_xcalloc(n ? n : 1, sizeof(*calls));
    size_t nc = 0;
    /* HEAD known tags; digest refs first look in the store. */
    for (size_t i = 0; i < n; i++) {
        image *im = ims[i];
        const al_ref *ref = im->entry->ref;
        mnode *root = add_node(im);
        root->level = 1;
        if (ref->digest != NULL) {
            im->root_reference = al_xstrdup(ref->digest);
            continue;
        }
        if (im->had_tag) {
            al_call *c = al_call_new(AL_CALL_MANIFEST_HEAD, call_host(im), im->repo, ref->tag);
            c->user = im;
            calls[nc++] = c;
        } else {
            im->root_reference = al_xstrdup(ref->tag);
        }
    }
    al_registry_run(ctx->registry, calls, nc);
    for (size_t k = 0; k < nc; k++) {
        al_call *c = calls[k];
        image *im = c->user;
        if (c->err != NULL) {
            fail(im, c->err);
            c->err = NULL;
        } else if (c->resp->docker_digest != NULL && al_digest_valid(c->resp->docker_digest)) {
            im->root_reference = al_xstrdup(c->resp->docker_digest);
        } else {
            /* No usable digest header: GET the tag. */
            im->root_reference = al_xstrdup(im->entry->ref->tag);
        }
        al_call_free(c);
    }
    /* GET roots that the store lacks. */
    nc = 0;
    for (size_t i = 0; i < n; i++) {
        image *im = ims[i];
        if (im->failed)
            continue;
        const char *r = im->root_reference;
        if (al_digest_valid(r)) {
            char *body = NULL;
            size_t len = 0;
            al_error *e = NULL;
            if (read_local(ctx, r, AL_MANIFEST_MAX, &body, &len, &e)) {
                im->nodes[0].local = true;
                accept_manifest(ctx, im, 0, body, len, NULL, r);
                continue;
            }
            if (e != NULL) {
                fail(im, e);
                continue;
            }
        }
        al_call *c = al_call_new(AL_CALL_MANIFEST_GET, call_host(im), im->repo, r);
        c->user = im;
        calls[nc++] = c;
    }
    al_registry_run(ctx->registry, calls, nc);
    for (size_t k = 0; k < nc; k++) {
        al_call *c = calls[k];
        image *im = c->user;
        if (c->err != NULL) {
            fail(im, c->err);
            c->err = NULL;
            al_call_free(c);
            continue;
        }
        al_request *q = c->resp;
        const char *expect = al_digest_valid(c->reference) ? c->reference : NULL;
        if (expect == NULL && q->docker_digest != NULL) {
            al_error *e = NULL;
            if (al_digest_check(q->docker_digest, &e) < 0) {
                al_error_wrap(&e, "Docker-Content-Digest of %s", c->reference);
                fail(im, e);
                al_call_free(c);
                continue;
            }
            expect = q->docker_digest;
        }
        char *body = q->body ? q->body : al_xstrdup("");
        q->body = NULL;
        accept_manifest(ctx, im, 0, body, q->body_len, q->content_type, expect);
        al_call_free(c);
    }
    free(calls);
}

/* --- phase 2: child manifests, level by level ---------------------------- */

/* One pass per level. It ends because the graph bounds the levels: an
 * index deeper than AL_GRAPH_MAX_INDEX_LEVELS fails its image (accept_manifest)
 * and so never adds children. */
static void resolve_children(al_fetch_ctx *ctx, image **ims, size_t n)
{
    for (;;) {
        size_t cap = 0;
        for (size_t i = 0; i < n; i++)
            cap += ims[i]->n_nodes;
        al_call **calls = al_xcalloc(cap ? cap : 1, sizeof(*calls));
        size_t *idx = al_xcalloc(cap ? cap : 1, sizeof(*idx));
        size_t nc = 0;
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            image *im = ims[i];
            if (im->failed)
                continue;
            size_t count = im->n_nodes; /* nodes added below belong to the next level */
            for (size_t j = 0; j < count && !im->failed; j++) {
                mnode *nd = &im->nodes[j];
                if (nd->resolved)
                    continue;
                any = true;
                char *body = NULL;
                size_t len = 0;
                al_error *e = NULL;
                if (read_local(ctx, nd->digest, AL_MANIFEST_MAX, &body, &len, &e)) {
                    char d[AL_DIGEST_BUF];
                    memcpy(d, nd->digest, sizeof(d));
                    nd->local = true;
                    accept_manifest(ctx, im, j, body, len, nd->media_type, d);
                    continue;
                }
                if (e != NULL) {
                    fail(im, e);
                    break;
                }
                al_call *c = al_call_new(AL_CALL_MANIFEST_GET, call_host(im), im->repo, nd->digest);
                c->user = im;
                idx[nc] = j;
                calls[nc++] = c;
            }
        }
        al_registry_run(ctx->registry, calls, nc);
        for (size_t k = 0; k < nc; k++) {
            al_call *c = calls[k];
            image *im = c->user;
            if (c->err != NULL) {
                fail(im, c->err);
                c->err = NULL;
            } else if (!im->failed) {
                al_request *q = c->resp;
                char *body = q->body ? q->body : al_xstrdup("");
                q->body = NULL;
                char d[AL_DIGEST_BUF];
                memcpy(d, im->nodes[idx[k]].digest, sizeof(d));
                accept_manifest(ctx, im, idx[k], body, q->body_len, q->content_type, d);
            }
            al_call_free(c);
        }
        free(calls);
        free(idx);
        if (!any)
            return;
    }
}

/* --- phase 3: configs and platform selection ----------------------------- */

static void accept_config(al_fetch_ctx *ctx, image *im, mnode *nd, char *body, size_t len)
{
    const al_descriptor *cd = &nd->m->config;
    char got[AL_DIGEST_BUF];
    al_digest_bytes(got, body, len);
    if (strcmp(got, cd->digest) != 0) {
        free(body);
        failf(im, AL_E_DIGEST, "config %s: digest mismatch: content hashes to %s", cd->digest, got);
        return;
    }
    /* The graph's rule: the size its descriptor gives, and a config export
     * can read (a JSON object), else nothing of the image is stored. */
    al_image_config *cfg = NULL;
    al_error *e = NULL;
    if (al_graph_accept_config(&cfg, cd, body, len, &e) < 0) {
        free(body);
        al_error_wrap(&e, "config %s", cd->digest);
        fail(im, e);
        return;
    }
    nd->config_body = body;
    nd->config_len = len;
    if (!nd->has_platform && cfg->has_platform) {
        /* A single-platform image: its config says what it runs on. Configs
         * of non-image artifacts have no platform; keep those. */
        nd->has_platform = true;
        nd->platform = cfg->platform;
        al_graph_select sel = selection(ctx);
        if (!al_graph_platform_wanted(&sel, &nd->platform))
            nd->dropped = true;
    }
    al_image_config_free(cfg);
}

static void resolve_configs(al_fetch_ctx *ctx, image **ims, size_t n)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += ims[i]->n_nodes;
    al_call **calls = al_xcalloc(cap ? cap : 1, sizeof(*calls));
    mnode **owners = al_xcalloc(cap ? cap : 1, sizeof(*owners));
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        image *im = ims[i];
        for (size_t j = 0; j < im->n_nodes && !im->failed; j++) {
            mnode *nd = &im->nodes[j];
            if (al_manifest_is_index(nd->m))
                continue;
            const al_descriptor *cd = &nd->m->config;
            if (cd->size > (int64_t)AL_CONFIG_MAX) {
                failf(im, AL_E_SIZE, "config %s is larger than the 8 MiB limit", cd->digest);
                break;
            }
            char *body = NULL;
            size_t len = 0;
            al_error *e = NULL;
            if (read_local(ctx, cd->digest, AL_CONFIG_MAX, &body, &len, &e)) {
                nd->config_local = true;
                accept_config(ctx, im, nd, body, len);
                continue;
            }
            if (e != NULL) {
                fail(im, e);
                break;
            }
            al_call *c = al_call_new(AL_CALL_BLOB_MEM, call_host(im), im->repo, cd->digest);
            c->mem_cap = AL_CONFIG_MAX;
            c->user = im;
            owners[nc] = nd;
            calls[nc++] = c;
        }
    }
    al_registry_run(ctx->registry, calls, nc);
    for (size_t k = 0; k < nc; k++) {
        al_call *c = calls[k];
        image *im = c->user;
        if (c->err != NULL) {
            al_error_wrap(&c->err, "config %s", c->reference);
            fail(im, c->err);
            c->err = NULL;
        } else if (!im->failed) {
            char *body = c->resp->body ? c->resp->body : al_xstrdup("");
            c->resp->body = NULL;
            accept_config(ctx, im, owners[k], body, c->resp->body_len);
        }
        al_call_free(c);
    }
    free(calls);
    free(owners);

    /* Every image must keep at least one image manifest. */
    for (size_t i = 0; i < n; i++) {
        image *im = ims[i];
        if (im->failed)
            continue;
        size_t kept = 0;
        _cleanup_free_ char *have = al_xstrdup("");
        for (size_t j = 0; j < im->n_nodes; j++) {
            mnode *nd = &im->nodes[j];
            if (al_manifest_is_index(nd->m))
                continue;
            if (!nd->dropped)
                kept++;
            if (nd->has_platform) {
                char pb[96];
                char *t = al_xasprintf("%s%s%s", have, *have ? ", " : "",
                                       al_platform_format(&nd->platform, pb, sizeof(pb)));
                free(have);
                have = t;
            }
        }
        if (kept == 0) {
            /* List what the index offers, not only what we looked at. */
            const mnode *root = &im->nodes[0];
            if (al_manifest_is_index(root->m)) {
                free(have);
                have = al_xstrdup("");
                for (size_t c = 0; c < root->m->n_children; c++) {
                    const al_descriptor *d = &root->m->children[c];
                    if (!d->has_platform || al_platform_is_unknown(&d->platform))
                        continue;
                    char pb[96];
                    char *t = al_xasprintf("%s%s%s", have, *have ? ", " : "",
                                           al_platform_format(&d->platform, pb, sizeof(pb)));
                    free(have);
                    have = t;
                }
            }
            failf(im, AL_E_NOT_FOUND, "no manifest for the requested platforms (it has %s)",
                  *have ? have : "none");
        }
    }
}

/* --- phase 4: layers ----------------------------------------------------- */

static int need_cmp(const void *a, const void *b)
{
    return strcmp(((const blob_need *)a)->digest, ((const blob_need *)b)->digest);
}

static blob_need *find_need(blob_need *needs, size_t n, const char *digest)
{
    blob_need key;
    snprintf(key.digest, sizeof(key.digest), "%s", digest);
    return bsearch(&key, needs, n, sizeof(*needs), need_cmp);
}

static bool node_kept(const image *im, const mnode *nd)
{
    if (nd->dropped)
        return false;
    /* A node is kept when its chain of parents is. */
    if (nd->parent[0] == '\0')
        return true;
    for (size_t i = 0; i < im->n_nodes; i++)
        if (strcmp(im->nodes[i].digest, nd->parent) == 0)
            return node_kept(im, &im->nodes[i]);
    return false;
}

static void fetch_layers(al_fetch_ctx *ctx, image **ims, size_t n, blob_need **needs_out,
                         size_t *n_needs_out)
{
    size_t cap = 0, nn = 0;
    blob_need *needs = NULL;
    for (size_t i = 0; i < n; i++) {
        image *im = ims[i];
        if (im->failed)
            continue;
        for (size_t j = 0; j < im->n_nodes; j++) {
            mnode *nd = &im->nodes[j];
            if (al_manifest_is_index(nd->m) || !node_kept(im, nd))
                continue;
            for (size_t l = 0; l < nd->m->n_layers; l++) {
                const al_descriptor *d = &nd->m->layers[l];
                if (nn == cap) {
                    cap = cap ? cap * 2 : 64;
                    needs = al_xrealloc(needs, cap * sizeof(*needs));
                }
                blob_need *b = &needs[nn++];
                memset(b, 0, sizeof(*b));
                memcpy(b->digest, d->digest, sizeof(b->digest));
                b->size = d->size;
                b->media_type = d->media_type;
                b->first = im;
            }
        }
    }
    /* Sort and keep one per digest; mergesort-stable order is not needed,
     * but the first image in list order gets the credit. */
    if (nn > 0)
        qsort(needs, nn, sizeof(*needs), need_cmp);
    size_t u = 0;
    for (size_t i = 0; i < nn; i++) {
        if (u > 0 && strcmp(needs[u - 1].digest, needs[i].digest) == 0) {
            if (needs[i].first < needs[u - 1].first)
                needs[u - 1].first = needs[i].first;
            continue;
        }
        needs[u++] = needs[i];
    }
    nn = u;
    al_call **calls = al_xcalloc(nn ? nn : 1, sizeof(*calls));
    size_t nc = 0;
    for (size_t i = 0; i < nn; i++) {
        blob_need *b = &needs[i];
        int64_t have = -1;
        if (al_store_has_blob(ctx->store, b->digest, &have)) {
            if (have == b->size) {
                b->present = true;
                continue;
            }
            /* A file whose size disagrees with the manifest: the manifest
             * is wrong for this digest. Fail the images that need it. */
            al_error_set(&b->err, AL_E_SIZE, 0,
                         "blob %s: the store holds %lld bytes but the manifest says %lld",
                         b->digest, (long long)have, (long long)b->size);
            continue;
        }
        al_call *c = al_call_new(AL_CALL_BLOB_STORE, b->first->host, b->first->repo, b->digest);
        c->store = ctx->store;
        c->size = b->size;
        c->user = b;
        calls[nc++] = c;
    }
    al_registry_run(ctx->registry, calls, nc);
    for (size_t k = 0; k < nc; k++) {
        al_call *c = calls[k];
        blob_need *b = c->user;
        if (c->err != NULL) {
            b->err = c->err;
            c->err = NULL;
        } else {
            b->downloaded = true;
            b->bytes = c->resp->bytes;
        }
        al_call_free(c);
    }
    free(calls);
    /* Rows for every layer that is now in the store. */
    for (size_t i = 0; i < nn; i++) {
        blob_need *b = &needs[i];
        if (b->err != NULL)
            continue;
        al_error *e = NULL;
        if (al_db_blob_add(ctx->db, b->digest, b->size, b->media_type, &e) < 0)
            b->err = e;
    }
    *needs_out = needs;
    *n_needs_out = nn;
}

/* --- phase 5: commit ----------------------------------------------------- */

/* Store a manifest or config held in memory; count it as new for the
 * image's report when it was downloaded in this run. */
static int store_small(al_fetch_ctx *ctx, image *im, const char *digest, const char *body,
                       size_t len, const char *media_type, bool local, al_error **err)
{
    if (!local) {
        bool had = al_store_has_blob(ctx->store, digest, NULL);
        if (al_store_put_blob(ctx->store, digest, body, len, err) < 0)
            return al_error_wrap(err, "store %s", digest);
        if (!had) {
            im->res->new_blobs++;
            im->res->new_bytes += len;
        }
    }
    return al_db_blob_add(ctx->db, digest, (int64_t)len, media_type, err);
}

static int digest_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Report hook: distinct digests among the graph's manifests and the
 * children of its edges (configs, layers), each blob counted once. */
static int count_graph_blobs(const al_graph_manifest *gm, size_t ngm, const al_graph_edge *ge,
                             size_t nge)
{
    const char **all = al_xcalloc(ngm + nge + 1, sizeof(*all));
    size_t n = 0;
    for (size_t i = 0; i < ngm; i++)
        all[n++] = gm[i].digest;
    for (size_t i = 0; i < nge; i++)
        all[n++] = ge[i].child;
    qsort(all, n, sizeof(*all), digest_ptr_cmp);
    int distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(all[i - 1], all[i]) != 0;
    free(all);
    return distinct;
}

static void commit_image(al_fetch_ctx *ctx, image *im, blob_need *needs, size_t nn)
{
    /* Layers first: any failure fails the image. */
    for (size_t j = 0; j < im->n_nodes && !im->failed; j++) {
        mnode *nd = &im->nodes[j];
        if (al_manifest_is_index(nd->m) || !node_kept(im, nd))
            continue;
        for (size_t l = 0; l < nd->m->n_layers; l++) {
            blob_need *b = find_need(needs, nn, nd->m->layers[l].digest);
            if (b != NULL && b->err != NULL) {
                al_error *e = al_error_copy(b->err);
                al_error_wrap(&e, "blob %s", b->digest);
                fail(im, e);
                return;
            }
        }
    }
    if (im->failed)
        return;
    al_graph_manifest *gm = al_xcalloc(im->n_nodes, sizeof(*gm));
    al_graph_edge *ge = NULL;
    size_t ngm = 0, nge = 0, cap_e = 0;
    _cleanup_free_ char *plats = al_xstrdup("");
    al_error *e = NULL;
    for (size_t j = 0; j < im->n_nodes; j++) {
        mnode *nd = &im->nodes[j];
        if (!node_kept(im, nd))
            continue;
        if (store_small(ctx, im, nd->digest, nd->body, nd->len, nd->media_type, nd->local, &e) < 0)
            break;
        al_graph_manifest *g = &gm[ngm++];
        memcpy(g->digest, nd->digest, sizeof(g->digest));
        g->media_type = nd->media_type;
        g->size = nd->size;
        g->is_index = al_manifest_is_index(nd->m);
        g->has_platform = nd->has_platform;
        g->platform = nd->platform;
        size_t need_edges = 1 + (g->is_index ? 0 : 1 + nd->m->n_layers);
        if (nge + need_edges > cap_e) {
            cap_e = (nge + need_edges) * 2;
            ge = al_xrealloc(ge, cap_e * sizeof(*ge));
        }
        if (nd->parent[0] != '\0') {
            al_graph_edge *ed = &ge[nge++];
            memcpy(ed->parent, nd->parent, sizeof(ed->parent));
            memcpy(ed->child, nd->digest, sizeof(ed->child));
            ed->kind = AL_EDGE_MANIFEST;
            ed->position = nd->position;
        }
        if (g->is_index)
            continue;
        const al_descriptor *cd = &nd->m->config;
        memcpy(g->config_digest, cd->digest, sizeof(g->config_digest));
        if (store_small(ctx, im, cd->digest, nd->config_body, nd->config_len, cd->media_type,
                        nd->config_local, &e) < 0)
            break;
        al_graph_edge *ed = &ge[nge++];
        memcpy(ed->parent, nd->digest, sizeof(ed->parent));
        memcpy(ed->child, cd->digest, sizeof(ed->child));
        ed->kind = AL_EDGE_CONFIG;
        ed->position = 0;
        for (size_t l = 0; l < nd->m->n_layers; l++) {
            ed = &ge[nge++];
            memcpy(ed->parent, nd->digest, sizeof(ed->parent));
            memcpy(ed->child, nd->m->layers[l].digest, sizeof(ed->child));
            ed->kind = AL_EDGE_LAYER;
            ed->position = (int)l;
        }
        if (nd->has_platform && !al_platform_is_unknown(&nd->platform)) {
            char pb[96];
            char *t = al_xasprintf("%s%s%s", plats, *plats ? "," : "",
                                   al_platform_format(&nd->platform, pb, sizeof(pb)));
            free(plats);
            plats = t;
        }
    }
    if (e == NULL) {
        const mnode *root = &im->nodes[0];
        al_graph g = {
            .full_name = im->tag_key,
            .source = im->source,
            .root_digest = root->digest,
            .root_media_type = root->media_type,
            .root_size = root->size,
            .manifests = gm,
            .n_manifests = ngm,
            .edges = ge,
            .n_edges = nge,
        };
        char moved_from[AL_DIGEST_BUF] = "";
        /* index.json follows each commit, so a crash loses at most the
         * entry of the graph being committed (and the next run repairs it). */
        if (al_db_graph_commit(ctx->db, &g, ctx->run_id, moved_from, &e) == 0 &&
            al_fetch_write_index(ctx->store, ctx->db, &e) == 0) {
            al_image_result *r = im->res;
            memcpy(r->digest, root->digest, sizeof(r->digest));
            if (moved_from[0] != '\0') {
                r->status = AL_IMG_MOVED;
                memcpy(r->old_digest, moved_from, sizeof(r->old_digest));
            } else if (im->had_tag && r->new_blobs == 0) {
                r->status = AL_IMG_UNCHANGED;
            } else {
                r->status = AL_IMG_OK;
            }
            r->platforms = al_steal_ptr(&plats);
            r->graph_blobs = count_graph_blobs(gm, ngm, ge, nge);
        }
    }
    if (e != NULL)
        fail(im, e);
    free(gm);
    free(ge);
}

/* --- the run ------------------------------------------------------------- */

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

static void set_endpoint(const al_fetch_ctx *ctx, image *im, size_t k)
{
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

/* Forget an attempt's work so the image can start again elsewhere. */
static void reset_attempt(image *im)
{
    free_nodes(im);
    im->nodes = NULL;
    im->n_nodes = 0;
    free(im->root_reference);
    im->root_reference = NULL;
    im->failed = false;
    al_error_free(im->res->err);
    im->res->err = NULL;
    im->res->status = AL_IMG_OK;
}

static void run_pass(al_fetch_ctx *ctx, image **ims, size_t n)
{
    resolve_roots(ctx, ims, n);
    resolve_children(ctx, ims, n);
    resolve_configs(ctx, ims, n);
    blob_need *needs = NULL;
    size_t nn = 0;
    fetch_layers(ctx, ims, n, &needs, &nn);
    for (size_t i = 0; i < nn; i++) {
        if (needs[i].downloaded) {
            needs[i].first->res->new_blobs++;
            needs[i].first->res->new_bytes += needs[i].bytes;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!ims[i]->failed)
            commit_image(ctx, ims[i], needs, nn);
    for (size_t i = 0; i < n; i++) /* report hook */
        ims[i]->res->done_at = al_mono();
    for (size_t i = 0; i < nn; i++)
        al_error_free(needs[i].err);
    free(needs);
}

int al_fetch_run(al_fetch_ctx *ctx, const al_reflist *list, al_image_result **results_out,
                 al_error **err)
{
    size_t n = list->n;
    al_image_result *res = al_xcalloc(n ? n : 1, sizeof(*res));
    image *ims = al_xcalloc(n ? n : 1, sizeof(*ims));
    image **active = al_xcalloc(n ? n : 1, sizeof(*active));
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        image *im = &ims[i];
        const al_ref *ref = list->items[i].ref;
        im->entry = &list->items[i];
        im->res = &res[i];
        im->tag_key = al_ref_full(ref);
        res[i].full_name = al_xstrdup(im->tag_key);
        set_endpoint(ctx, im, 0);
        al_tag t;
        bool found = false;
        if (al_db_tag_get(ctx->db, im->tag_key, &t, &found, err) < 0) {
            rc = al_error_wrap(err, "tag %s", im->tag_key);
            goto out;
        }
        if (found) {
            im->had_tag = true;
            memcpy(im->stored_digest, t.digest, sizeof(im->stored_digest));
            al_tag_dispose(&t);
        }
        active[i] = im;
    }
    /* A run killed between a commit and its index.json left the file one
     * entry behind: bring it back in line with the tags first. */
    if ((rc = al_fetch_write_index(ctx->store, ctx->db, err)) < 0)
        goto out;
    /* Each pass runs the images still to do; one that failed on a mirror
     * goes to its next endpoint, as k3s' registries.yaml mirrors do. */
    size_t na = n;
    while (na > 0) {
        run_pass(ctx, active, na);
        size_t next = 0;
        for (size_t i = 0; i < na; i++) {
            image *im = active[i];
            if (!im->failed || im->endpoint + 1 >= endpoint_count(ctx, im->entry->ref))
                continue;
            al_warn("%s: %s failed (%s); trying the next endpoint", im->tag_key, im->host,
                    im->res->err ? im->res->err->msg : "error");
            reset_attempt(im);
            set_endpoint(ctx, im, im->endpoint + 1);
            active[next++] = im;
        }
        na = next;
    }
    rc = al_fetch_write_index(ctx->store, ctx->db, err);
out:
    for (size_t i = 0; i < n; i++) {
        free_nodes(&ims[i]);
        free(ims[i].tag_key);
        free(ims[i].host);
        free(ims[i].repo);
        free(ims[i].source);
        free(ims[i].root_reference);
    }
    free(ims);
    free(active);
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

int al_fetch_write_index(al_store *store, al_db *db, al_error **err)
{
    al_tag *tags = NULL;
    size_t n = 0;
    if (al_db_tags_list(db, &tags, &n, err) < 0)
        return al_error_wrap(err, "index.json");
    al_index_entry *ents = al_xcalloc(n ? n : 1, sizeof(*ents));
    for (size_t i = 0; i < n; i++) {
        ents[i].media_type = tags[i].media_type;
        ents[i].digest = tags[i].digest;
        ents[i].size = tags[i].size;
        ents[i].full_name = tags[i].full_name;
        ents[i].ref_name = tags[i].full_name;
    }
    int r = al_store_write_index(store, ents, n, err);
    free(ents);
    al_tags_free(tags, n);
    return r;
}
