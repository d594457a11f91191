/* An image whose graph is complete becomes rows (docs/DESIGN.md, "Crash
 * rules"): what it got from the registry (manifests, configs) is staged
 * first, fsynced and renamed in groups (fetch/stage.c); then, with the
 * next group commit after a loop iteration, the blob rows and the graphs
 * of every image ready go in one transaction, a savepoint per graph. A
 * tag found unchanged costs no transaction: its checked_at is set with
 * the others at the end of the run, and index.json is written once then. */
#include "plan-private.h"
#include "stage.h"

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

/* --- rows ---------------------------------------------------------------------------- */

void al_commit_row(run *rn, const char *digest, int64_t size, const char *media_type)
{
    if (rn->n_rows == rn->cap_rows) {
        rn->cap_rows = rn->cap_rows ? 2 * rn->cap_rows : 64;
        rn->rows = al_xrealloc(rn->rows, rn->cap_rows * sizeof(*rn->rows));
    }
    row *w = &rn->rows[rn->n_rows++];
    memcpy(w->digest, digest, sizeof(w->digest));
    w->size = size;
    w->media_type = media_type ? al_xstrdup(media_type) : NULL;
}

void al_commit_row_missing(run *rn, const char *digest, int64_t size, const char *media_type)
{
    bool found = true;
    al_error *e = NULL;
    /* A read, not an upsert: a run that changes nothing writes nothing. */
    if (al_db_blob_get(rn->ctx->db, digest, &found, NULL, &e) < 0 || !found)
        al_commit_row(rn, digest, size, media_type);
    al_error_free(e);
}

static void rows_clear(run *rn)
{
    for (size_t i = 0; i < rn->n_rows; i++)
        free(rn->rows[i].media_type);
    rn->n_rows = 0;
}

void al_commit_free(run *rn)
{
    rows_clear(rn);
    free(rn->rows);
    for (size_t i = 0; i < rn->n_touched; i++)
        free(rn->touched[i]);
    free(rn->touched);
}

/* --- staging ------------------------------------------------------------------------- */

/* A manifest or config of an image, being made durable. */
typedef struct staged {
    image *im;
    char digest[AL_DIGEST_BUF];
    int64_t size;
    char *media_type;
} staged;

static void staged_done(void *user, al_error *err)
{
    staged *sd = user;
    image *im = sd->im;
    if (err != NULL) {
        al_error_wrap(&err, "store %s", sd->digest);
        al_image_fail(im, err);
    } else {
        al_commit_row(im->rn, sd->digest, sd->size, sd->media_type);
        im->res->new_blobs++;
        im->res->new_bytes += (uint64_t)sd->size;
    }
    free(sd->media_type);
    free(sd);
    al_image_release(im);
}

/* One manifest or config: staged when it came from the registry and the
 * store lacks it (a file another image of the run is still staging counts
 * as lacking: a row must wait until a file is durable), else its row made
 * sure of. */
static void stage_one(image *im, const char *digest, const char *body, int64_t size,
                      const char *media_type)
{
    run *rn = im->rn;
    al_stage *st = al_registry_stage(im->ctx->registry, im->ctx->store);
    if (body == NULL ||
        (al_store_has_blob(im->ctx->store, digest, NULL) && !al_stage_pending(st, digest))) {
        al_commit_row_missing(rn, digest, size, media_type);
        return;
    }
    staged *sd = al_xcalloc(1, sizeof(*sd));
    sd->im = im;
    memcpy(sd->digest, digest, sizeof(sd->digest));
    sd->size = size;
    sd->media_type = media_type ? al_xstrdup(media_type) : NULL;
    al_image_hold(im);
    al_stage_buffer(st, digest, body, (size_t)size, staged_done, sd);
}

void al_commit_stage(image *im)
{
    im->phase = IMG_STAGING;
    al_image_hold(im); /* released at the end: then it is queued, or settled */
    bool go = check_platforms(im);
    for (size_t j = 0; go && j < im->n_nodes && !im->failed; j++) {
        const mnode *nd = &im->nodes[j];
        if (!node_kept(im, nd))
            continue;
        stage_one(im, nd->digest, nd->body, nd->size, nd->media_type);
        if (al_manifest_is_index(nd->m))
            continue;
        const al_descriptor *cd = &nd->m->config;
        stage_one(im, cd->digest, nd->config_body, cd->size, cd->media_type);
    }
    al_image_release(im);
}

void al_commit_queue(image *im)
{
    im->phase = IMG_QUEUED;
    im->next_ready = im->rn->ready;
    im->rn->ready = im;
}

/* --- the group commit ----------------------------------------------------------------- */

/* The tag points where it pointed, nothing was downloaded for it, and its
 * graph's rows are all there: nothing to write but checked_at. */
static bool unchanged(image *im, const al_graph *g)
{
    if (!im->had_tag || strcmp(im->stored_digest, g->root_digest) != 0 || im->res->new_blobs > 0)
        return false;
    for (size_t i = 0; i < g->n_manifests; i++) {
        bool found = false;
        if (al_db_manifest_has(im->ctx->db, g->manifests[i].digest, &found, NULL) < 0 || !found)
            return false;
    }
    return true;
}

static void touch_later(image *im)
{
    run *rn = im->rn;
    rn->touched = al_xrealloc(rn->touched, (rn->n_touched + 1) * sizeof(char *));
    rn->touched[rn->n_touched++] = al_xstrdup(im->tag_key);
}

bool al_commit_known(image *im, const char *digest)
{
    const al_tag_walk *w = &im->walked;
    if (w->selection == NULL || !im->had_tag || strcmp(im->stored_digest, digest) != 0)
        return false;
    al_image_result *r = im->res;
    memcpy(r->digest, digest, sizeof(r->digest));
    r->status = AL_IMG_UNCHANGED;
    free(r->platforms);
    r->platforms = al_xstrdup(w->platforms);
    r->graph_blobs = w->blobs;
    im->phase = IMG_KNOWN;
    touch_later(im);
    return true;
}

/* The group's write transaction, begun at its first write: a group of
 * unchanged tags writes nothing. */
typedef struct group {
    run *rn;
    bool open;
    al_error *err; /* the transaction failed: every image of the group did */
} group;

static bool group_write(group *g)
{
    if (!g->open && g->err == NULL && al_db_begin(g->rn->ctx->db, &g->err) == 0)
        g->open = true;
    return g->open;
}

/* Keep what the walk found for the next run (al_commit_known), unless it
 * is what the tag's row says already. Without it the next run walks the
 * graph again: a warning, not a failure. */
static void record_walk(group *grp, image *im)
{
    const al_image_result *r = im->res;
    const al_tag_walk *w = &im->walked;
    if (w->selection != NULL && strcmp(im->stored_digest, r->digest) == 0)
        return;
    al_error *e = NULL;
    if (group_write(grp) &&
        al_db_tag_walk_set(im->ctx->db, im->tag_key, r->digest, im->rn->selection, r->platforms,
                           r->graph_blobs, &e) < 0) {
        al_warn("%s: %s (the next run reads its graph again)", im->tag_key, e->msg);
        al_error_free(e);
    }
}

/* One image's graph and tag, inside the group's transaction. */
static void commit_graph(group *grp, image *im)
{
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
    if (unchanged(im, &g)) {
        touch_later(im);
        set_result(im, &g, moved_from, &plats);
        record_walk(grp, im);
    } else if (group_write(grp) &&
               al_db_graph_commit(im->ctx->db, &g, im->ctx->run_id, moved_from, &e) == 0) {
        set_result(im, &g, moved_from, &plats);
        record_walk(grp, im);
    } else if (e != NULL) {
        al_image_fail(im, e);
    }
    free(gm);
    free(ge);
}

static void write_rows(group *grp)
{
    run *rn = grp->rn;
    for (size_t i = 0; i < rn->n_rows && group_write(grp); i++) {
        const row *w = &rn->rows[i];
        if (al_db_blob_add(rn->ctx->db, w->digest, w->size, w->media_type, &grp->err) < 0)
            break;
    }
    rows_clear(rn);
}

bool al_commit_flush(run *rn)
{
    if (rn->n_rows == 0 && rn->ready == NULL)
        return false;
    image *ready = al_steal_ptr(&rn->ready);
    group grp = {.rn = rn};
    write_rows(&grp); /* first: the graphs below need them */
    for (image *im = ready; im != NULL; im = im->next_ready)
        if (!im->failed && grp.err == NULL)
            commit_graph(&grp, im);
    /* A failed blob row leaves the others: each is true on its own. */
    if (grp.open)
        al_db_commit(rn->ctx->db, grp.err != NULL ? NULL : &grp.err);
    while (ready != NULL) {
        image *im = ready;
        ready = im->next_ready;
        if (grp.err != NULL && !im->failed)
            al_image_fail(im, al_error_copy(grp.err));
        al_image_settle(im);
    }
    al_error_free(grp.err);
    return true;
}

int al_commit_touch(run *rn, al_error **err)
{
    return al_db_tags_touch(rn->ctx->db, (const char *const *)rn->touched, rn->n_touched, err);
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
