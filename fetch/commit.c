/* An image whose graph is complete becomes rows: manifests, edges and its
 * tag in one transaction (al_db_graph_commit), after every blob it names
 * has its row; then index.json (see docs/DESIGN.md, "Crash rules"). */
#include "plan-private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* A node is kept when it and its chain of parents are. */
static bool node_kept(const image *im, const mnode *nd)
{
    while (nd != NULL) {
        if (nd->dropped)
            return false;
        nd = nd->parent >= 0 ? &im->nodes[nd->parent] : NULL;
    }
    return true;
}

static int digest_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Report hook: distinct digests among the graph's manifests and the
 * children of its edges (configs, layers), each blob counted once. */
static int count_graph_blobs(const al_graph *g)
{
    const char **all = al_xcalloc(g->n_manifests + g->n_edges + 1, sizeof(*all));
    size_t n = 0;
    for (size_t i = 0; i < g->n_manifests; i++)
        all[n++] = g->manifests[i].digest;
    for (size_t i = 0; i < g->n_edges; i++)
        all[n++] = g->edges[i].child;
    qsort(all, n, sizeof(*all), digest_ptr_cmp);
    int distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(all[i - 1], all[i]) != 0;
    free(all);
    return distinct;
}

static void add_edge(al_graph_edge **ge, size_t *n, const char *parent, const char *child,
                     al_edge_kind kind, int position)
{
    *ge = al_xrealloc(*ge, (*n + 1) * sizeof(**ge));
    al_graph_edge *e = &(*ge)[(*n)++];
    memcpy(e->parent, parent, sizeof(e->parent));
    memcpy(e->child, child, sizeof(e->child));
    e->kind = kind;
    e->position = position;
}

/* Append a platform to a list: "linux/amd64,linux/arm64" (sep ","). */
static void add_platform(char **plats, const al_platform *p, const char *sep)
{
    if (al_platform_is_unknown(p))
        return;
    char pb[96];
    char *t =
        al_xasprintf("%s%s%s", *plats, **plats ? sep : "", al_platform_format(p, pb, sizeof(pb)));
    free(*plats);
    *plats = t;
}

/* The rows of one kept node: its manifest row and its edges. */
static void node_rows(const image *im, const mnode *nd, al_graph_manifest *g, al_graph_edge **ge,
                      size_t *nge)
{
    memcpy(g->digest, nd->digest, sizeof(g->digest));
    g->media_type = nd->media_type;
    g->size = nd->size;
    g->is_index = al_manifest_is_index(nd->m);
    g->has_platform = nd->has_platform;
    g->platform = nd->platform;
    if (nd->parent >= 0)
        add_edge(ge, nge, im->nodes[nd->parent].digest, nd->digest, AL_EDGE_MANIFEST, nd->position);
    if (g->is_index)
        return;
    const al_descriptor *cd = &nd->m->config;
    memcpy(g->config_digest, cd->digest, sizeof(g->config_digest));
    add_edge(ge, nge, nd->digest, cd->digest, AL_EDGE_CONFIG, 0);
    for (size_t l = 0; l < nd->m->n_layers; l++)
        add_edge(ge, nge, nd->digest, nd->m->layers[l].digest, AL_EDGE_LAYER, (int)l);
}

/* Store a manifest or config the registry sent (body), with its row; it
 * counts as new for the image's report. One the store held already (body
 * NULL) gets its row made sure of: a prune may have left the file and
 * removed the row. */
static int store_small(image *im, const char *digest, const char *body, size_t len,
                       const char *media_type, al_error **err)
{
    al_fetch_ctx *ctx = im->ctx;
    if (body != NULL) {
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

/* The manifests and configs of the kept nodes, into the store (those that
 * came from the registry) and with their rows. */
static int store_bodies(image *im, al_error **err)
{
    for (size_t j = 0; j < im->n_nodes; j++) {
        const mnode *nd = &im->nodes[j];
        if (!node_kept(im, nd))
            continue;
        if (store_small(im, nd->digest, nd->body, (size_t)nd->size, nd->media_type, err) < 0)
            return -1;
        if (al_manifest_is_index(nd->m))
            continue;
        const al_descriptor *cd = &nd->m->config;
        if (store_small(im, cd->digest, nd->config_body, (size_t)cd->size, cd->media_type, err) < 0)
            return -1;
    }
    return 0;
}

/* Every image must keep at least one image manifest; say what the index
 * offers when none is left. */
static bool check_platforms(image *im)
{
    size_t kept = 0;
    for (size_t j = 0; j < im->n_nodes; j++)
        kept += !al_manifest_is_index(im->nodes[j].m) && node_kept(im, &im->nodes[j]);
    if (kept > 0)
        return true;
    _cleanup_free_ char *have = al_xstrdup("");
    const mnode *root = &im->nodes[0];
    if (al_manifest_is_index(root->m)) {
        for (size_t c = 0; c < root->m->n_children; c++) {
            const al_descriptor *d = &root->m->children[c];
            if (d->has_platform)
                add_platform(&have, &d->platform, ", ");
        }
    } else if (root->has_platform) {
        add_platform(&have, &root->platform, ", ");
    }
    al_image_failf(im, AL_E_NOT_FOUND, "no manifest for the requested platforms (it has %s)",
                   *have ? have : "none");
    return false;
}

static void set_result(image *im, const al_graph *g, const char *moved_from, char **plats)
{
    al_image_result *r = im->res;
    memcpy(r->digest, g->root_digest, sizeof(r->digest));
    if (moved_from[0] != '\0') {
        r->status = AL_IMG_MOVED;
        memcpy(r->old_digest, moved_from, sizeof(r->old_digest));
    } else if (im->had_tag && r->new_blobs == 0) {
        r->status = AL_IMG_UNCHANGED;
    } else {
        r->status = AL_IMG_OK;
    }
    free(r->platforms);
    r->platforms = al_steal_ptr(plats);
    r->graph_blobs = count_graph_blobs(g);
}

void al_commit_image(image *im)
{
    if (!check_platforms(im))
        return;
    al_graph_manifest *gm = al_xcalloc(im->n_nodes, sizeof(*gm));
    al_graph_edge *ge = NULL;
    size_t ngm = 0, nge = 0;
    _cleanup_free_ char *plats = al_xstrdup("");
    for (size_t j = 0; j < im->n_nodes; j++) {
        const mnode *nd = &im->nodes[j];
        if (!node_kept(im, nd))
            continue;
        node_rows(im, nd, &gm[ngm++], &ge, &nge);
        if (!al_manifest_is_index(nd->m) && nd->has_platform)
            add_platform(&plats, &nd->platform, ",");
    }
    const mnode *root = &im->nodes[0];
    al_graph g = {.full_name = im->tag_key,
                  .source = im->source,
                  .root_digest = root->digest,
                  .root_media_type = root->media_type,
                  .root_size = root->size,
                  .manifests = gm,
                  .n_manifests = ngm,
                  .edges = ge,
                  .n_edges = nge};
    char moved_from[AL_DIGEST_BUF] = "";
    al_error *e = NULL;
    /* index.json follows each commit, so a crash loses at most the entry
     * of the graph being committed (and the next run repairs it). */
    if (store_bodies(im, &e) == 0 &&
        al_db_graph_commit(im->ctx->db, &g, im->ctx->run_id, moved_from, &e) == 0 &&
        al_fetch_write_index(im->ctx->store, im->ctx->db, &e) == 0)
        set_result(im, &g, moved_from, &plats);
    if (e != NULL)
        al_image_fail(im, e);
    free(gm);
    free(ge);
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
