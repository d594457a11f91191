/* The import's graphs: every tag the bundle carries is walked by common/
 * graph.h's rules over what the bundle brought (staged) and what this
 * store holds, and the walk gives the rows to write, as a fetch writes
 * them: a manifests row per manifest, edges to child manifests (with
 * their place), to the config and to each layer.
 *
 * The connected store kept only the platforms it fetched, so an index's
 * entry may name a manifest that neither side has: such an entry is not
 * part of the stored graph (no rows, as on the connected side) and is
 * passed over. A blob the bundle carries or omits, or that this store
 * has a row for, is part of it: that one missing or damaged fails the
 * import, naming the tag and the blob. The walk reads a blob from this
 * store only when it has a row (a file without one is a killed run's,
 * nothing a graph may rest on), and hashes everything it reads. */
#include "import-private.h"
#include "graph.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct walker {
    al_import *imp;
    size_t tag; /* index into m.tags */
    al_graph_manifest *gm;
    size_t ngm, cap_m;
    al_graph_edge *ge;
    size_t nge, cap_e;
    char *platforms; /* "linux/amd64,linux/arm64" */
    char **reached;  /* digests of the graph, for its blob count */
    size_t n_reached, cap_r;
} walker;

/* --- the source ------------------------------------------------------------- */

static bool far_row(al_import *imp, const char *digest, int64_t *size)
{
    bool found = false;
    return al_db_blob_get(imp->db, digest, &found, size, NULL) == 0 && found;
}

/* A staged blob's bytes, hashed as read (at most cap). */
static int read_staged(al_import *imp, const char *digest, size_t cap, char **out, size_t *len,
                       al_error **err)
{
    _cleanup_close_ int fd =
        openat(imp->stage_fd, al_digest_hex(digest), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return al_error_set(err, AL_E_IO, errno, "staged blob %s: unreadable", digest);
    if ((uint64_t)st.st_size > cap)
        return al_error_set(err, AL_E_SIZE, 0, "blob %s is %lld bytes, more than the %zu allowed",
                            digest, (long long)st.st_size, cap);
    char *buf = al_xmalloc((size_t)st.st_size + 1);
    ssize_t n = al_read_all(fd, buf, (size_t)st.st_size);
    size_t got = n < 0 ? 0 : (size_t)n; /* a short read fails the digest below */
    buf[got] = '\0';
    char actual[AL_DIGEST_BUF];
    al_digest_bytes(actual, buf, got);
    if (strcmp(actual, digest) != 0) {
        free(buf);
        return al_error_set(err, AL_E_DIGEST, 0, "staged blob %s is corrupt: content hashes to %s",
                            digest, actual);
    }
    *out = buf;
    *len = got;
    return 0;
}

static int src_read(void *ud, const char *digest, size_t cap, char **out, size_t *len,
                    al_error **err)
{
    al_import *imp = ud;
    long i = imp_blob_index(imp, digest);
    if (i >= 0 && imp->blobs[i].staged && !imp->blobs[i].present)
        return read_staged(imp, digest, cap, out, len, err);
    if ((i >= 0 && imp->blobs[i].present) || far_row(imp, digest, NULL))
        return al_store_read_blob(imp->store, digest, cap, out, len, err);
    return al_error_set(err, AL_E_NOT_FOUND, 0, "blob %s is neither in bundle %s nor in this store",
                        digest, imp->m.id);
}

/* Part of the stored graph: the bundle names it, or this store has it. */
static bool known(al_import *imp, const char *digest)
{
    if (imp_blob_index(imp, digest) >= 0 || far_row(imp, digest, NULL))
        return true;
    for (size_t i = 0; i < imp->m.n_omitted; i++)
        if (strcmp(imp->m.omitted[i].digest, digest) == 0)
            return true;
    return false;
}

/* --- the rows ---------------------------------------------------------------- */

static void note(walker *w, const char *digest, const char *media_type)
{
    if (w->n_reached == w->cap_r) {
        w->cap_r = w->cap_r ? 2 * w->cap_r : 32;
        w->reached = al_xrealloc(w->reached, w->cap_r * sizeof(*w->reached));
    }
    w->reached[w->n_reached++] = al_xstrdup(digest);
    long i = imp_blob_index(w->imp, digest);
    if (i < 0)
        return;
    imp_blob *b = &w->imp->blobs[i];
    if (b->media_type == NULL && media_type != NULL)
        b->media_type = al_xstrdup(media_type);
    if (!b->reached) {
        b->reached = true;
        b->first_tag = w->tag;
    }
}

static al_graph_edge *edge(walker *w, const char *parent, const char *child, al_edge_kind kind,
                           int position)
{
    if (w->nge == w->cap_e) {
        w->cap_e = w->cap_e ? 2 * w->cap_e : 16;
        w->ge = al_xrealloc(w->ge, w->cap_e * sizeof(*w->ge));
    }
    al_graph_edge *e = &w->ge[w->nge++];
    memcpy(e->parent, parent, AL_DIGEST_BUF);
    memcpy(e->child, child, AL_DIGEST_BUF);
    e->kind = kind;
    e->position = position;
    return e;
}

static void add_platform(walker *w, const al_platform *p)
{
    char pb[96];
    al_platform_format(p, pb, sizeof(pb));
    for (const char *q = w->platforms; (q = strstr(q, pb)) != NULL; q++)
        if ((q == w->platforms || q[-1] == ',') && (q[strlen(pb)] == ',' || !q[strlen(pb)]))
            return;
    char *t = al_xasprintf("%s%s%s", w->platforms, *w->platforms ? "," : "", pb);
    free(w->platforms);
    w->platforms = t;
}

/* Config and layers of an image manifest: edges, and every layer must be
 * here with the size its descriptor gives. */
static int image_edges(walker *w, const al_graph_node *n, al_error **err)
{
    al_import *imp = w->imp;
    const al_manifest *m = n->m;
    edge(w, n->digest, m->config.digest, AL_EDGE_CONFIG, 0);
    note(w, m->config.digest, m->config.media_type);
    for (size_t l = 0; l < m->n_layers; l++) {
        const al_descriptor *d = &m->layers[l];
        edge(w, n->digest, d->digest, AL_EDGE_LAYER, (int)l);
        note(w, d->digest, d->media_type);
        long i = imp_blob_index(imp, d->digest);
        int64_t have = -1;
        if (i >= 0)
            have = (int64_t)imp->m.blobs[i].size;
        else if (!far_row(imp, d->digest, &have))
            return al_error_set(err, AL_E_NOT_FOUND, 0,
                                "%s: layer %s of %s is neither in bundle %s nor in this store",
                                imp->m.tags[w->tag].name, d->digest, n->digest, imp->m.id);
        if (have != d->size)
            return al_error_set(err, AL_E_SIZE, 0,
                                "%s: layer %s of %s is %lld bytes here, its descriptor says %lld",
                                imp->m.tags[w->tag].name, d->digest, n->digest, (long long)have,
                                (long long)d->size);
    }
    if (n->has_platform && !al_platform_is_unknown(&n->platform))
        add_platform(w, &n->platform);
    return 0;
}

static int visit(void *ud, const al_graph_node *n, al_error **err)
{
    walker *w = ud;
    al_import *imp = w->imp;
    if (n->state == AL_GRAPH_SKIPPED)
        return 0;
    if (n->state == AL_GRAPH_FAILED) {
        /* An entry for a platform the connected side did not fetch. */
        if (n->error != NULL && n->error->code == AL_E_NOT_FOUND && n->parent != NULL &&
            !known(imp, n->digest))
            return 0;
        int r = al_graph_node_error(n, err);
        al_error_wrap(err, "%s", imp->m.tags[w->tag].name);
        return r;
    }
    if (w->ngm == w->cap_m) {
        w->cap_m = w->cap_m ? 2 * w->cap_m : 8;
        w->gm = al_xrealloc(w->gm, w->cap_m * sizeof(*w->gm));
    }
    al_graph_manifest *g = &w->gm[w->ngm++];
    memset(g, 0, sizeof(*g));
    memcpy(g->digest, n->digest, AL_DIGEST_BUF);
    const char *mt =
        n->desc != NULL && n->desc->media_type != NULL ? n->desc->media_type : n->m->media_type;
    g->media_type = al_xstrdup(mt);
    g->size = n->size;
    g->is_index = n->kind == AL_GRAPH_INDEX;
    g->has_platform = n->has_platform;
    g->platform = n->platform;
    note(w, n->digest, mt);
    if (n->parent != NULL)
        edge(w, n->parent, n->digest, AL_EDGE_MANIFEST, (int)n->position);
    if (g->is_index)
        return 0;
    memcpy(g->config_digest, n->m->config.digest, AL_DIGEST_BUF);
    return image_edges(w, n, err);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The tag's result, before the commit says whether it moved. */
static void fill_result(walker *w, al_image_result *res)
{
    al_import *imp = w->imp;
    qsort(w->reached, w->n_reached, sizeof(*w->reached), cmp_str);
    for (size_t i = 0; i < w->n_reached; i++) {
        if (i > 0 && strcmp(w->reached[i - 1], w->reached[i]) == 0)
            continue;
        res->graph_blobs++;
        long b = imp_blob_index(imp, w->reached[i]);
        if (b >= 0 && imp->blobs[b].fresh && imp->blobs[b].first_tag == w->tag) {
            res->new_blobs++;
            res->new_bytes += imp->m.blobs[b].size;
        }
    }
    res->platforms = al_steal_ptr(&w->platforms);
}

static int walk_tag(al_import *imp, size_t t, al_error **err)
{
    const al_bundle_tag *bt = &imp->m.tags[t];
    walker w = {.imp = imp, .tag = t, .platforms = al_xstrdup("")};
    al_descriptor root = {.media_type = bt->media_type, .size = bt->size};
    memcpy(root.digest, bt->digest, AL_DIGEST_BUF);
    al_graph_source src = {.read = src_read, .ud = imp};
    al_graph_walk_opts opts = {.order = AL_GRAPH_PARENTS_FIRST, .select = NULL, .configs = true};
    int r = al_graph_walk(&src, &root, &opts, visit, &w, err);
    al_image_result *res = &imp->results[t];
    res->full_name = al_xstrdup(bt->name);
    memcpy(res->digest, bt->digest, AL_DIGEST_BUF);
    if (r == 0)
        fill_result(&w, res);
    imp->graphs[t] = (al_graph){.full_name = bt->name,
                                .source = imp->source,
                                .root_digest = bt->digest,
                                .root_media_type = bt->media_type,
                                .root_size = bt->size,
                                .manifests = w.gm,
                                .n_manifests = w.ngm,
                                .edges = w.ge,
                                .n_edges = w.nge};
    al_strv_free(w.reached, w.n_reached);
    free(w.platforms);
    return r;
}

int imp_graphs(al_import *imp, al_error **err)
{
    imp->graphs = al_xcalloc(imp->m.n_tags + 1, sizeof(*imp->graphs));
    imp->results = al_xcalloc(imp->m.n_tags + 1, sizeof(*imp->results));
    for (size_t t = 0; t < imp->m.n_tags; t++) {
        int r = walk_tag(imp, t, err);
        if (r < 0)
            return r;
    }
    return 0;
}

void imp_graphs_dispose(al_import *imp)
{
    for (size_t t = 0; imp->graphs != NULL && t < imp->m.n_tags; t++) {
        for (size_t i = 0; i < imp->graphs[t].n_manifests; i++)
            free((char *)imp->graphs[t].manifests[i].media_type);
        free((void *)imp->graphs[t].manifests);
        free((void *)imp->graphs[t].edges);
    }
    free(imp->graphs);
    imp->graphs = NULL;
}
