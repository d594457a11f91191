/* What a push takes from the store (see push.h): each ref to its root
 * digest, its graph walked children first (common/graph.h, the store as
 * the source: every manifest and config hashed as read), the blobs and
 * manifests in the order they go, the entries of its indexes the store
 * lacks, its name at the target. No network. */
#include "push-private.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "log.h"
#include "ref.h"
#include "util.h"

/* A growing list of labels, each once, joined by sep. */
static void add_to(char **list, const char *label, const char *sep)
{
    if (*list != NULL) {
        size_t n = strlen(label);
        for (const char *p = *list; (p = strstr(p, label)) != NULL; p += n)
            if ((p == *list || p[-1] == ' ' || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
                return;
    }
    char *next = *list ? al_xasprintf("%s%s%s", *list, sep, label) : al_xstrdup(label);
    free(*list);
    *list = next;
}

/* For people: "linux/arm64, an attestation (sha256:abcd...)". */
static void add_label(char **list, const char *label)
{
    add_to(list, label, ", ");
}

/* What one entry is, for a person: its platform, or what kind it is. */
static char *entry_label(const al_graph_node *n)
{
    char p[96];
    if (n->has_platform && al_platform_is_unknown(&n->platform))
        return al_xasprintf("an attestation (%.19s)", n->digest);
    if (n->has_platform)
        return al_xstrdup(al_platform_format(&n->platform, p, sizeof(p)));
    if (n->kind == AL_GRAPH_OTHER)
        return al_xasprintf("%.19s (%s)", n->digest,
                            n->desc->media_type ? n->desc->media_type : "no media type");
    return al_xasprintf("%.19s", n->digest);
}

/* One walk of an image's graph. */
typedef struct picker {
    al_store *store;
    push_image *im;
    index_rewrite *rw;
    al_strmap *blob_seen;
    char *platforms;
    char *missing;  /* entries the store lacks */
    char *excluded; /* entries --platform leaves out */
    al_error *err;
} picker;

static void add_manifest(push_image *im, const char *digest, const char *media_type, char *body,
                         size_t len)
{
    im->manifests = al_xrealloc(im->manifests, (im->n_manifests + 1) * sizeof(push_manifest));
    push_manifest *m = &im->manifests[im->n_manifests++];
    snprintf(m->digest, sizeof(m->digest), "%s", digest);
    m->media_type = al_xstrdup(media_type);
    m->body = body;
    m->len = len;
}

static void add_blob(picker *w, const al_descriptor *d)
{
    push_image *im = w->im;
    if (al_strmap_get(w->blob_seen, d->digest) != NULL)
        return;
    al_strmap_put(w->blob_seen, d->digest, w);
    im->blobs = al_xrealloc(im->blobs, (im->n_blobs + 1) * sizeof(push_blob_ref));
    push_blob_ref *b = &im->blobs[im->n_blobs++];
    snprintf(b->digest, sizeof(b->digest), "%s", d->digest);
    b->size = d->size;
}

static int visit_image(picker *w, const al_graph_node *n)
{
    const al_manifest *m = n->m;
    add_blob(w, &m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        add_blob(w, &m->layers[i]);
    add_manifest(w->im, n->digest, m->media_type, NULL, 0);
    al_push_rewrite_keep(w->rw, n->digest);
    char p[96];
    if (n->has_platform && !al_platform_is_unknown(&n->platform))
        add_to(&w->platforms, al_platform_format(&n->platform, p, sizeof(p)), ",");
    return 0;
}

/* An index, after its children: as stored, or rewritten to the entries
 * kept, or dropped when none is. */
static int visit_index(picker *w, const al_graph_node *n, al_error **err)
{
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    if (al_store_read_blob(w->store, n->digest, AL_MANIFEST_MAX, &body, &len, err) < 0)
        return al_error_wrap(err, "index %s", n->digest);
    char *out = NULL;
    size_t out_len = 0;
    char digest[AL_DIGEST_BUF];
    bool dropped = false;
    if (al_push_rewrite_index(w->rw, n->digest, body, len, &out, &out_len, digest, &dropped, err) <
        0)
        return al_error_wrap(err, "index %s", n->digest);
    if (!dropped)
        add_manifest(w->im, digest, n->m->media_type, out, out_len);
    return 0;
}

static int pick_visit(void *ud, const al_graph_node *n, al_error **err)
{
    picker *w = ud;
    _cleanup_free_ char *label = entry_label(n);
    if (n->state == AL_GRAPH_FAILED) {
        bool absent = n->parent != NULL && n->error->code == AL_E_NOT_FOUND &&
                      n->error_digest != NULL && strcmp(n->error_digest, n->digest) == 0;
        if (!absent) {
            al_graph_node_error(n, &w->err);
            return AL_GRAPH_STOP;
        }
        add_label(&w->missing, label);
        return 0;
    }
    if (n->state == AL_GRAPH_SKIPPED) {
        /* Not a manifest airlock mirrors (fetch never stored it), or a
         * platform --platform leaves out. */
        add_label(n->kind == AL_GRAPH_OTHER ? &w->missing : &w->excluded, label);
        return 0;
    }
    int r = n->kind == AL_GRAPH_INDEX ? visit_index(w, n, err) : visit_image(w, n);
    if (r < 0) {
        w->err = al_steal_ptr(err);
        return AL_GRAPH_STOP;
    }
    return 0;
}

/* --- one image ---------------------------------------------------------------------------- */

static void image_fail(push_image *im, al_errc code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void image_fail(push_image *im, al_errc code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    al_error_free(im->res->err);
    im->res->err = NULL;
    al_error_vset(&im->res->err, code, 0, fmt, ap);
    va_end(ap);
    im->res->status = AL_PUSH_FAILED;
    im->selected = false;
}

/* The walk's verdict: an index missing entries goes only rewritten, and
 * only when asked to (--partial-index) or when --platform left some out. */
static void settle(push_image *im, picker *w, const al_push_opts *o)
{
    if (w->err != NULL) {
        image_fail(im, w->err->code, "%s", w->err->msg);
        return;
    }
    if (w->missing != NULL && !o->partial_index) {
        image_fail(im, AL_E_NOT_FOUND,
                   "its index lists entries the store lacks (%s): the registry would refuse it; "
                   "fetch them (airlock-fetch, --include-attestations for attestations), or pass "
                   "--partial-index to push an index of the entries held (a new digest)",
                   w->missing);
        return;
    }
    if (im->n_manifests == 0) {
        image_fail(im, AL_E_NOT_FOUND, "nothing of it to push: no platform it has is selected");
        return;
    }
    snprintf(im->root, sizeof(im->root), "%s", im->manifests[im->n_manifests - 1].digest);
    if (w->missing != NULL)
        add_label(&w->excluded, w->missing);
    im->res->left_out = al_steal_ptr(&w->excluded);
    im->res->platforms = al_steal_ptr(&w->platforms);
    if (im->res->platforms == NULL)
        im->res->platforms = al_xstrdup("");
    im->selected = true;
}

static void walk_image(push_image *im, al_store *store, const char *media_type,
                       const al_push_opts *o)
{
    picker w = {
        .store = store, .im = im, .rw = al_push_rewrite_new(), .blob_seen = al_strmap_new()};
    al_graph_source src;
    al_graph_store_source(&src, store);
    al_descriptor rd = {.media_type = (char *)media_type, .size = -1};
    snprintf(rd.digest, sizeof(rd.digest), "%s", im->res->stored_digest);
    al_graph_select sel = {
        .platforms = o->platforms, .n_platforms = o->n_platforms, .attestations = true};
    al_graph_walk_opts wo = {.order = AL_GRAPH_CHILDREN_FIRST, .select = &sel, .configs = true};
    al_error *e = NULL;
    if (al_graph_walk(&src, &rd, &wo, pick_visit, &w, &e) < 0 && w.err == NULL)
        w.err = e;
    else
        al_error_free(e);
    settle(im, &w, o);
    al_push_rewrite_free(w.rw);
    al_strmap_free(w.blob_seen);
    free(w.platforms);
    free(w.missing);
    free(w.excluded);
    al_error_free(w.err);
}

static int image_init(push_image *im, al_push_result *res, const al_ref *ref, al_store *store,
                      al_db *db, const al_push_opts *o, al_error **err)
{
    im->res = res;
    res->ref = al_ref_full(ref);
    res->upstream = al_xstrdup(ref->domain);
    res->status = AL_PUSH_PUSHED;
    im->repo = o->prefix ? al_xasprintf("%s/%s", o->prefix, ref->path) : al_xstrdup(ref->path);
    im->tag = ref->tag ? al_xstrdup(ref->tag) : NULL;
    res->target = ref->tag ? al_xasprintf("%s/%s:%s", o->host, im->repo, ref->tag)
                           : al_xasprintf("%s/%s@%s", o->host, im->repo, ref->digest);
    _cleanup_free_ char *media_type = NULL;
    if (al_db_ref_root(db, store, ref, res->stored_digest, &media_type, err) < 0)
        return -1;
    if (res->stored_digest[0] == '\0')
        image_fail(im, AL_E_NOT_FOUND, "not in the store");
    else
        walk_image(im, store, media_type, o);
    return 0;
}

/* --- the plan ------------------------------------------------------------------------------- */

/* The refs of the run: the list's, then with all every tag of the store,
 * each full name once. *out: owned refs. */
static int gather(al_ref ***out, size_t *n_out, al_db *db, const al_reflist *list, bool all,
                  al_error **err)
{
    al_strmap *seen = al_strmap_new();
    al_ref **refs = al_xcalloc(list->n + 1, sizeof(*refs));
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++) {
        _cleanup_free_ char *full = al_ref_full(list->items[i].ref);
        if (al_strmap_get(seen, full) == NULL) {
            al_strmap_put(seen, full, seen);
            refs[n++] = al_ref_dup(list->items[i].ref);
        }
    }
    al_tag *tags = NULL;
    size_t n_tags = 0;
    int r = all ? al_db_tags_list(db, &tags, &n_tags, err) : 0;
    refs = al_xrealloc(refs, (n + n_tags + 1) * sizeof(*refs));
    for (size_t i = 0; r == 0 && i < n_tags; i++) {
        al_ref *ref = NULL;
        al_error *e = NULL;
        if (al_ref_parse(&ref, tags[i].full_name, &e) < 0) {
            al_error_wrap(&e, "skipping tag \"%s\"", tags[i].full_name); /* a hand-made row */
            al_error_demote(&e);
            continue;
        }
        _cleanup_free_ char *full = al_ref_full(ref);
        if (al_strmap_get(seen, full) != NULL) {
            al_ref_free(ref);
            continue;
        }
        al_strmap_put(seen, full, seen);
        refs[n++] = ref;
    }
    if (tags != NULL)
        al_tags_free(tags, n_tags);
    al_strmap_free(seen);
    *out = refs;
    *n_out = n;
    return r;
}

/* Two upstream names on one target repository would overwrite each other's
 * tags: a usage error naming both, before anything is sent. */
static int check_names(al_ref **refs, size_t n, const al_push_opts *o, al_error **err)
{
    al_strmap *by_repo = al_strmap_new();
    char **names = al_xcalloc(n + 1, sizeof(char *));
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        names[i] = al_ref_name(refs[i]);
        _cleanup_free_ char *repo =
            o->prefix ? al_xasprintf("%s/%s", o->prefix, refs[i]->path) : al_xstrdup(refs[i]->path);
        const char *other = al_strmap_get(by_repo, repo);
        if (other != NULL && strcmp(other, names[i]) != 0)
            r = al_error_set(err, AL_E_USAGE, 0,
                             "%s and %s would both be pushed to %s/%s: push them in two runs, "
                             "with a different --to PREFIX each",
                             other, names[i], o->host, repo);
        else
            al_strmap_put(by_repo, repo, names[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    al_strmap_free(by_repo);
    return r;
}

int al_push_select(al_push_plan **out, al_store *store, al_db *db, const al_reflist *list, bool all,
                   const al_push_opts *opts, al_error **err)
{
    al_ref **refs = NULL;
    size_t n = 0;
    int r = gather(&refs, &n, db, list, all, err);
    if (r == 0)
        r = check_names(refs, n, opts, err);
    al_push_plan *p = al_xcalloc(1, sizeof(*p));
    p->store = store;
    p->opts = *opts;
    p->images = al_xcalloc(n + 1, sizeof(push_image));
    p->results = al_xcalloc(n + 1, sizeof(al_push_result));
    for (size_t i = 0; i < n && r == 0; i++) {
        r = image_init(&p->images[i], &p->results[i], refs[i], store, db, opts, err);
        p->n = i + 1;
    }
    for (size_t i = 0; i < n; i++)
        al_ref_free(refs[i]);
    free(refs);
    if (r < 0) {
        al_push_plan_free(p);
        return r;
    }
    *out = p;
    return 0;
}

size_t al_push_plan_count(const al_push_plan *p)
{
    return p->n;
}

void al_push_plan_free(al_push_plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        push_image *im = &p->images[i];
        for (size_t k = 0; k < im->n_manifests; k++) {
            free(im->manifests[k].media_type);
            free(im->manifests[k].body);
        }
        free(im->manifests);
        free(im->blobs);
        free(im->repo);
        free(im->tag);
        free(im->put_buf);
    }
    free(p->images);
    al_push_results_free(p->results, p->n);
    free(p);
}

void al_push_results_free(al_push_result *r, size_t n)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        char *owned[] = {r[i].ref, r[i].upstream, r[i].target, r[i].platforms, r[i].left_out};
        for (size_t k = 0; k < AL_ARRAY_SIZE(owned); k++)
            free(owned[k]);
        al_error_free(r[i].err);
    }
    free(r);
}
