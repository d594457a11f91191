/* The image graph's rules and its walk (see graph.h; docs/DESIGN.md, "The
 * image graph").
 *
 * The walk is depth-first and recursive: recursion is bounded by the level
 * limit, and only the manifests on the current path are held in memory.
 * Digests already reached are kept in a small hash set so that a manifest
 * listed twice, or shared by two indexes, is visited once. */
#include "graph.h"
#include "util.h"

#include <assert.h>
#include <string.h>

al_graph_kind al_graph_kind_of(const char *media_type)
{
    if (media_type == NULL)
        return AL_GRAPH_EITHER;
    switch (al_manifest_kind_from_media_type(media_type)) {
    case AL_MK_DOCKER_LIST:
    case AL_MK_OCI_INDEX: return AL_GRAPH_INDEX;
    case AL_MK_DOCKER_MANIFEST:
    case AL_MK_OCI_MANIFEST: return AL_GRAPH_IMAGE;
    }
    return AL_GRAPH_OTHER;
}

static const char *kind_text(al_graph_kind k)
{
    switch (k) {
    case AL_GRAPH_INDEX: return "an index";
    case AL_GRAPH_IMAGE: return "an image manifest";
    case AL_GRAPH_EITHER: return "a manifest";
    case AL_GRAPH_OTHER: break;
    }
    return "not a manifest";
}

bool al_graph_platform_wanted(const al_graph_select *sel, const al_platform *p)
{
    if (sel == NULL)
        return true;
    if (al_platform_is_unknown(p))
        return sel->attestations;
    if (sel->n_platforms == 0)
        return true;
    for (size_t i = 0; i < sel->n_platforms; i++)
        if (al_platform_equal(&sel->platforms[i], p))
            return true;
    return false;
}

/* The one message for the limit, wherever it is hit. */
static int too_deep(al_error **err, const char *digest, int level)
{
    return al_error_set(err, AL_E_UNSUPPORTED, 0,
                        "index %s is at level %d: indexes nest at most %d levels deep (the root "
                        "is level 1)",
                        digest, level, AL_GRAPH_MAX_INDEX_LEVELS);
}

int al_graph_check_manifest(const al_descriptor *d, const al_manifest *m, int level, al_error **err)
{
    al_graph_kind want = d != NULL ? al_graph_kind_of(d->media_type) : AL_GRAPH_EITHER;
    al_graph_kind got = al_manifest_is_index(m) ? AL_GRAPH_INDEX : AL_GRAPH_IMAGE;
    if (want == AL_GRAPH_OTHER)
        return al_error_set(err, AL_E_PARSE, 0, "its descriptor's media type is not a manifest's");
    if (want != AL_GRAPH_EITHER && want != got)
        return al_error_set(
            err, AL_E_PARSE, 0, "its descriptor names %s (%s), but the content is %s (%s)",
            kind_text(want),
            al_manifest_kind_media_type(al_manifest_kind_from_media_type(d->media_type)),
            kind_text(got), m->media_type);
    if (got == AL_GRAPH_INDEX && level > AL_GRAPH_MAX_INDEX_LEVELS)
        return al_error_set(err, AL_E_UNSUPPORTED, 0,
                            "an index at level %d: indexes nest at most %d levels deep (the root "
                            "is level 1)",
                            level, AL_GRAPH_MAX_INDEX_LEVELS);
    /* An image manifest deeper than N + 1 has an index above it deeper
     * than N, refused when that index was accepted. */
    return 0;
}

int al_graph_accept_manifest(al_manifest **out, const al_descriptor *d, int level, const void *body,
                             size_t len, const char *content_type, al_error **err)
{
    *out = NULL;
    if (d != NULL && d->size >= 0 && (int64_t)len != d->size)
        return al_error_set(err, AL_E_SIZE, 0, "size mismatch: expected %lld bytes, got %zu",
                            (long long)d->size, len);
    const char *ct = content_type != NULL ? content_type : d != NULL ? d->media_type : NULL;
    al_manifest *m = NULL;
    int r = al_manifest_parse(&m, body, len, ct, err);
    if (r < 0)
        return r;
    if ((r = al_graph_check_manifest(d, m, level, err)) < 0) {
        al_manifest_free(m);
        return r;
    }
    *out = m;
    return 0;
}

int al_graph_accept_config(al_image_config **out, const al_descriptor *config, const void *body,
                           size_t len, al_error **err)
{
    *out = NULL;
    if (config->size >= 0 && (int64_t)len != config->size)
        return al_error_set(err, AL_E_SIZE, 0, "size mismatch: expected %lld bytes, got %zu",
                            (long long)config->size, len);
    return al_image_config_parse(out, body, len, err);
}

/* Whether an index entry is followed, from its descriptor alone. */
static bool entry_selected(const al_descriptor *d, const al_graph_select *sel)
{
    al_graph_kind k = al_graph_kind_of(d->media_type);
    if (k == AL_GRAPH_OTHER)
        return false;
    /* Attestations first: buildx lists them as image manifests, but an
     * index marked unknown/unknown is one too. */
    if (d->has_platform && al_platform_is_unknown(&d->platform))
        return al_graph_platform_wanted(sel, &d->platform);
    /* A nested index's own platform field is advisory: its entries carry
     * the platforms that count. */
    if (k == AL_GRAPH_INDEX || !d->has_platform)
        return true;
    return al_graph_platform_wanted(sel, &d->platform);
}

int al_graph_next(size_t **out, size_t *n_out, const char *digest, const al_manifest *m, int level,
                  const al_graph_select *sel, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    if (!al_manifest_is_index(m))
        return 0;
    _cleanup_free_ size_t *list = al_xcalloc(m->n_children + 1, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < m->n_children; i++) {
        const al_descriptor *d = &m->children[i];
        if (strcmp(d->digest, digest) == 0)
            return al_error_set(err, AL_E_PARSE, 0, "index %s lists itself (entry %zu): a cycle",
                                digest, i);
        if (!entry_selected(d, sel))
            continue;
        if (al_graph_kind_of(d->media_type) == AL_GRAPH_INDEX &&
            level + 1 > AL_GRAPH_MAX_INDEX_LEVELS)
            return too_deep(err, d->digest, level + 1);
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(m->children[list[k]].digest, d->digest) == 0;
        if (!dup)
            list[n++] = i;
    }
    if (n > 0) {
        *out = al_steal_ptr(&list);
        *n_out = n;
    }
    return 0;
}

int al_graph_node_error(const al_graph_node *n, al_error **err)
{
    assert(n->state == AL_GRAPH_FAILED && n->error != NULL);
    return al_error_set(err, n->error->code, 0, "%s", n->error->msg);
}

/* --- the walk ------------------------------------------------------------ */

/* Digests reached: open addressing, FNV-1a over the text. */
typedef struct seen_set {
    char (*slots)[AL_DIGEST_BUF];
    size_t cap, n;
} seen_set;

static size_t seen_slot(const seen_set *s, const char *digest)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = digest; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    size_t i = (size_t)h & (s->cap - 1);
    while (s->slots[i][0] != '\0' && strcmp(s->slots[i], digest) != 0)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static bool seen_has(const seen_set *s, const char *digest)
{
    return s->cap > 0 && s->slots[seen_slot(s, digest)][0] != '\0';
}

static void seen_add(seen_set *s, const char *digest)
{
    if (2 * (s->n + 1) > s->cap) {
        seen_set bigger = {.cap = s->cap ? 2 * s->cap : 64};
        bigger.slots = al_xcalloc(bigger.cap, sizeof(*bigger.slots));
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i][0] != '\0')
                memcpy(bigger.slots[seen_slot(&bigger, s->slots[i])], s->slots[i], AL_DIGEST_BUF);
        bigger.n = s->n;
        free(s->slots);
        *s = bigger;
    }
    size_t i = seen_slot(s, digest);
    if (s->slots[i][0] == '\0') {
        snprintf(s->slots[i], AL_DIGEST_BUF, "%s", digest);
        s->n++;
    }
}

typedef struct walker {
    const al_graph_source *src;
    const al_graph_walk_opts *o;
    al_graph_visit_fn visit;
    void *ud;
    seen_set seen;
    const char *path[AL_GRAPH_MAX_INDEX_LEVELS + 2]; /* digests from the root down */
    int depth;
} walker;

static bool on_path(const walker *w, const char *digest)
{
    for (int i = 0; i < w->depth; i++)
        if (strcmp(w->path[i], digest) == 0)
            return true;
    return false;
}

/* Hand a FAILED node to the visitor; e is consumed. */
static int visit_failed(walker *w, al_graph_node *n, al_error *e, const char *at, al_error **err)
{
    n->state = AL_GRAPH_FAILED;
    n->error = e;
    n->error_digest = at;
    int r = w->visit(w->ud, n, err);
    al_error_free(e);
    return r;
}

/* The manifest n names, from the source, checked against its descriptor. */
static int load_manifest(walker *w, al_graph_node *n, al_manifest **out, al_error **err)
{
    if (w->src->manifest != NULL) {
        int r = w->src->manifest(w->src->ud, n->desc, out, err);
        if (r < 0)
            return r;
        if ((r = al_graph_check_manifest(n->desc, *out, n->level, err)) < 0) {
            al_manifest_free(*out);
            *out = NULL;
            return al_error_wrap(err, "manifest %s", n->digest);
        }
        return 0;
    }
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    int r = w->src->read(w->src->ud, n->digest, AL_MANIFEST_MAX, &body, &len, err);
    if (r < 0)
        return r;
    n->size = (int64_t)len;
    if ((r = al_graph_accept_manifest(out, n->desc, n->level, body, len, NULL, err)) < 0)
        return al_error_wrap(err, "manifest %s", n->digest);
    return 0;
}

static int load_config(walker *w, const al_descriptor *cd, al_image_config **out, al_error **err)
{
    if (w->src->read == NULL)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "config %s: the source holds no blobs",
                            cd->digest);
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    int r = w->src->read(w->src->ud, cd->digest, AL_CONFIG_MAX, &body, &len, err);
    if (r < 0)
        return r;
    if ((r = al_graph_accept_config(out, cd, body, len, err)) < 0)
        return al_error_wrap(err, "config %s", cd->digest);
    return 0;
}

/* An image manifest is loaded: read its config when asked to or when it
 * alone can say the platform, then visit it as selected or not. */
static int visit_image(walker *w, al_graph_node *n, al_error **err)
{
    const al_graph_select *sel = w->o->select;
    bool platform_matters = sel != NULL && !(sel->n_platforms == 0 && sel->attestations);
    al_image_config *cfg = NULL;
    if (w->o->configs || (!n->has_platform && platform_matters)) {
        al_error *e = NULL;
        if (load_config(w, &n->m->config, &cfg, &e) < 0) {
            al_error_wrap(&e, "manifest %s", n->digest);
            return visit_failed(w, n, e, n->m->config.digest, err);
        }
        if (!n->has_platform && cfg->has_platform) {
            n->has_platform = true;
            n->platform = cfg->platform;
        }
    }
    n->config = cfg;
    bool wanted = !n->has_platform || al_graph_platform_wanted(sel, &n->platform);
    n->state = wanted ? AL_GRAPH_VISITED : AL_GRAPH_SKIPPED;
    int r = w->visit(w->ud, n, err);
    al_image_config_free(cfg);
    n->config = NULL;
    return r;
}

static int walk_node(walker *w, const al_descriptor *d, const char *parent, size_t position,
                     int level, al_error **err);

static int walk_index(walker *w, al_graph_node *n, al_error **err)
{
    const al_manifest *m = n->m;
    int r = 0;
    if (w->o->order == AL_GRAPH_PARENTS_FIRST && (r = w->visit(w->ud, n, err)) != 0)
        return r;
    /* Indexes are refused above level N, so a path holds at most N. */
    assert(w->depth < (int)AL_ARRAY_SIZE(w->path));
    w->path[w->depth++] = n->digest;
    for (size_t i = 0; i < m->n_children && r == 0; i++)
        r = walk_node(w, &m->children[i], n->digest, i, n->level + 1, err);
    w->depth--;
    if (r == 0 && w->o->order == AL_GRAPH_CHILDREN_FIRST)
        r = w->visit(w->ud, n, err);
    return r;
}

/* Before loading: is the entry followed at all? *load says to load it;
 * otherwise the node is settled here and the visitor's answer returned (0
 * for a digest already reached, which is not visited again). */
static int screen(walker *w, al_graph_node *n, bool *load, al_error **err)
{
    *load = false;
    if (n->parent == NULL) {
        *load = true;
        return 0;
    }
    if (n->kind == AL_GRAPH_OTHER || !entry_selected(n->desc, w->o->select)) {
        n->state = AL_GRAPH_SKIPPED;
        return w->visit(w->ud, n, err);
    }
    if (on_path(w, n->digest)) {
        al_error *e = NULL;
        al_error_set(&e, AL_E_PARSE, 0,
                     "index %s lists %s, which is itself or an index above it: a cycle", n->parent,
                     n->digest);
        return visit_failed(w, n, e, n->parent, err);
    }
    if (seen_has(&w->seen, n->digest))
        return 0;
    if (n->kind == AL_GRAPH_INDEX && n->level > AL_GRAPH_MAX_INDEX_LEVELS) {
        seen_add(&w->seen, n->digest);
        al_error *e = NULL;
        too_deep(&e, n->digest, n->level);
        return visit_failed(w, n, e, n->digest, err);
    }
    *load = true;
    return 0;
}

static int walk_node(walker *w, const al_descriptor *d, const char *parent, size_t position,
                     int level, al_error **err)
{
    al_graph_node n = {
        .digest = d->digest,
        .desc = d,
        .parent = parent,
        .position = position,
        .level = level,
        .kind = al_graph_kind_of(d->media_type),
        .size = d->size,
        .has_platform = d->has_platform,
        .platform = d->platform,
    };
    bool load = false;
    int r = screen(w, &n, &load, err);
    if (!load)
        return r;
    seen_add(&w->seen, n.digest);
    al_manifest *m = NULL;
    al_error *e = NULL;
    if (load_manifest(w, &n, &m, &e) < 0)
        return visit_failed(w, &n, e, n.digest, err);
    n.m = m;
    n.kind = al_manifest_is_index(m) ? AL_GRAPH_INDEX : AL_GRAPH_IMAGE;
    if (n.kind == AL_GRAPH_IMAGE) {
        r = visit_image(w, &n, err);
    } else {
        n.state = AL_GRAPH_VISITED;
        r = walk_index(w, &n, err);
    }
    al_manifest_free(m);
    return r;
}

int al_graph_walk(const al_graph_source *src, const al_descriptor *root,
                  const al_graph_walk_opts *opts, al_graph_visit_fn visit, void *ud, al_error **err)
{
    walker w = {.src = src, .o = opts, .visit = visit, .ud = ud};
    int r = walk_node(&w, root, NULL, 0, 1, err);
    free(w.seen.slots);
    return r == AL_GRAPH_STOP ? 0 : r;
}

static int store_read(void *ud, const char *digest, size_t cap, char **out, size_t *len,
                      al_error **err)
{
    return al_store_read_blob(ud, digest, cap, out, len, err);
}

void al_graph_store_source(al_graph_source *out, al_store *store)
{
    *out = (al_graph_source){.read = store_read, .ud = store};
}
