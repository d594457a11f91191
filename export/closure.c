/* Graph closure over a database snapshot (see closure.h).
 *
 * The walk is common/graph.h's, over the snapshot's rows instead of blob
 * bytes: a manifests row and its edges stand for the manifest's body, so
 * the levels, the limit and the cycle guard are those of every other walk.
 * Blobs are identified by their index in the snapshot's sorted blobs
 * array, so "counted" is a plain bitmap; digests without a row cannot be
 * walked further (nothing says what they reference) and are collected in
 * `missing` instead. */
#include "closure.h"
#include "../common/graph.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

/* A descriptor for digest as the rows know it: the manifests row gives the
 * media type and platform, the blobs row the size (-1 without one). */
static void row_descriptor(al_descriptor *out, const al_db_snapshot *s, const char *digest,
                           bool manifest_child)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->digest, sizeof(out->digest), "%s", digest);
    const al_db_blob *b = al_db_snapshot_blob(s, digest);
    out->size = b != NULL ? b->size : -1;
    const al_db_manifest *m = manifest_child ? al_db_snapshot_manifest(s, digest) : NULL;
    if (m != NULL) {
        out->media_type = m->media_type ? al_xstrdup(m->media_type) : NULL;
        out->has_platform = m->has_platform;
        out->platform = m->platform;
    } else if (!manifest_child && b != NULL && b->media_type != NULL) {
        out->media_type = al_xstrdup(b->media_type);
    }
}

/* The graph source's manifest hook: the manifest d names, built from its
 * manifests row (kind, config) and edges (entries, layers). */
static int rows_manifest(void *ud, const al_descriptor *d, al_manifest **out, al_error **err)
{
    const al_db_snapshot *s = ud;
    const al_db_manifest *row = al_db_snapshot_manifest(s, d->digest);
    if (row == NULL)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "%s has no manifests row", d->digest);
    al_manifest *m = al_xcalloc(1, sizeof(*m));
    /* is_index is what fetch recorded from the body; the media type only
     * picks the family. */
    al_manifest_kind k = al_manifest_kind_from_media_type(row->media_type);
    bool k_index = k == AL_MK_DOCKER_LIST || k == AL_MK_OCI_INDEX;
    if (k == 0 || k_index != row->is_index)
        k = row->is_index ? AL_MK_OCI_INDEX : AL_MK_OCI_MANIFEST;
    m->kind = k;
    m->media_type = al_manifest_kind_media_type(k);
    size_t ne = 0;
    const al_graph_edge *e = al_db_snapshot_children(s, d->digest, &ne);
    if (row->is_index) {
        m->children = al_xcalloc(ne + 1, sizeof(*m->children));
        for (size_t i = 0; i < ne; i++)
            if (e[i].kind == AL_EDGE_MANIFEST)
                row_descriptor(&m->children[m->n_children++], s, e[i].child, true);
    } else {
        /* The row names the config independently of the edges: a missing
         * config edge must not hide the config. */
        const char *config = row->config_digest;
        m->layers = al_xcalloc(ne + 1, sizeof(*m->layers));
        for (size_t i = 0; i < ne; i++) {
            if (e[i].kind == AL_EDGE_CONFIG && config[0] == '\0')
                config = e[i].child;
            else if (e[i].kind == AL_EDGE_LAYER)
                row_descriptor(&m->layers[m->n_layers++], s, e[i].child, false);
        }
        if (config[0] != '\0')
            row_descriptor(&m->config, s, config, false);
    }
    *out = m;
    return 0;
}

void al_closure_source(al_graph_source *out, const al_db_snapshot *s)
{
    *out = (al_graph_source){.manifest = rows_manifest, .ud = (void *)s};
}

typedef struct walker {
    const al_db_snapshot *s;
    al_closure *c;
    bool *counted;
} walker;

static void note_missing(walker *w, const char *digest)
{
    al_closure *c = w->c;
    for (size_t i = 0; i < c->n_missing; i++)
        if (strcmp(c->missing[i], digest) == 0)
            return;
    c->missing = al_xrealloc(c->missing, (c->n_missing + 1) * sizeof(*c->missing));
    c->missing[c->n_missing++] = al_xstrdup(digest);
}

/* Count a blob of the graph once, or list it as missing. */
static void reach(walker *w, const char *digest)
{
    if (digest[0] == '\0')
        return;
    long bi = al_db_snapshot_blob_index(w->s, digest);
    if (bi < 0) {
        note_missing(w, digest);
        return;
    }
    if (w->counted[bi])
        return;
    w->counted[bi] = true;
    al_closure *c = w->c;
    c->blobs = al_xrealloc(c->blobs, (c->n + 1) * sizeof(*c->blobs));
    c->blobs[c->n++] = bi;
    c->bytes += w->s->blobs[bi].size;
}

/* Every node the walk reaches is a blob of the graph, even one it could
 * not follow: a leaf named where a manifest was expected (no manifests
 * row), or a part the graph's rules refuse. An image manifest adds its
 * config and layers. */
static int visit(void *ud, const al_graph_node *n, al_error **err)
{
    walker *w = ud;
    reach(w, n->digest);
    if (n->state != AL_GRAPH_VISITED || n->kind != AL_GRAPH_IMAGE)
        return 0;
    reach(w, n->m->config.digest);
    for (size_t i = 0; i < n->m->n_layers; i++)
        reach(w, n->m->layers[i].digest);
    return 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

void al_closure_compute(al_closure *out, const al_db_snapshot *s, const char *root)
{
    memset(out, 0, sizeof(*out));
    walker w = {.s = s, .c = out};
    w.counted = al_xcalloc(s->n_blobs + 1, sizeof(*w.counted));
    al_graph_source src;
    al_closure_source(&src, s);
    al_descriptor rd;
    row_descriptor(&rd, s, root, true);
    al_graph_walk_opts o = {.order = AL_GRAPH_PARENTS_FIRST};
    al_graph_walk(&src, &rd, &o, visit, &w, NULL);
    free(rd.media_type);
    free(w.counted);
    out->sorted = al_xmalloc((out->n + 1) * sizeof(*out->sorted));
    if (out->n > 0)
        memcpy(out->sorted, out->blobs, out->n * sizeof(*out->sorted));
    qsort(out->sorted, out->n, sizeof(*out->sorted), cmp_long);
}

bool al_closure_has(const al_closure *c, long blob_index)
{
    return bsearch(&blob_index, c->sorted, c->n, sizeof(*c->sorted), cmp_long) != NULL;
}

void al_closure_dispose(al_closure *c)
{
    if (c == NULL)
        return;
    free(c->blobs);
    free(c->sorted);
    for (size_t i = 0; i < c->n_missing; i++)
        free(c->missing[i]);
    free(c->missing);
    memset(c, 0, sizeof(*c));
}

size_t al_closure_platforms(const al_db_snapshot *s, const al_closure *c, char ***out)
{
    char **v = al_xcalloc(c->n + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const al_db_manifest *m = al_db_snapshot_manifest(s, s->blobs[c->blobs[i]].digest);
        if (m == NULL || m->is_index || !m->has_platform || al_platform_is_unknown(&m->platform))
            continue;
        char pb[96];
        al_platform_format(&m->platform, pb, sizeof(pb));
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(v[k], pb) == 0;
        if (!dup)
            v[n++] = al_xstrdup(pb);
    }
    *out = v;
    return n;
}
