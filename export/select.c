/* Which images to export (see select.h): refs to root digests from the
 * tags table, then per platform one walk of the graph (common/graph.h), so
 * that export follows exactly the levels, kinds and platforms fetch does. */
#include "select.h"
#include "../common/graph.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

/* One ref resolved to its root manifest. */
typedef struct root {
    al_ref *ref; /* borrowed (from the caller or from owned_refs) */
    char *full;
    char digest[AL_DIGEST_BUF];
    char *media_type; /* from the tag row; NULL for digest refs */
    bool from_all;    /* came from --all, not named */
} root;

static void add_problem(al_selection *s, const char *ref, int platform, al_errc code, char *msg)
{
    s->problems = al_xrealloc(s->problems, (s->n_problems + 1) * sizeof(*s->problems));
    s->problem_info = al_xrealloc(s->problem_info, (s->n_problems + 1) * sizeof(*s->problem_info));
    s->problem_info[s->n_problems] =
        (al_select_problem){.ref = al_xstrdup(ref), .platform = platform, .code = code};
    s->problems[s->n_problems++] = msg;
}

void al_selection_init(al_selection *s)
{
    memset(s, 0, sizeof(*s));
}

static void image_dispose(al_export_image *im)
{
    free(im->ref);
    free(im->name);
    free(im->tag);
    free(im->config_media_type);
    for (size_t i = 0; i < im->n_layers; i++)
        free(im->layers[i].media_type);
    free(im->layers);
}

void al_selection_dispose(al_selection *s)
{
    for (size_t i = 0; i < s->n_sets; i++) {
        for (size_t k = 0; k < s->sets[i].n_images; k++)
            image_dispose(&s->sets[i].images[k]);
        free(s->sets[i].images);
    }
    free(s->sets);
    for (size_t i = 0; i < s->n_problems; i++) {
        free(s->problems[i]);
        free(s->problem_info[i].ref);
    }
    free(s->problems);
    free(s->problem_info);
    memset(s, 0, sizeof(*s));
}

/* What one walk of a root's graph for one platform found. */
typedef struct pick {
    al_store *store;
    const al_platform *want;
    al_export_image *im; /* filled when found */
    bool found;          /* the image manifest for want was reached */
    al_error *err;       /* its blobs' trouble, or the root's, or a refused part's */
    bool root_failed;    /* err concerns the root: every platform */
    bool listed_absent;  /* an index lists want, the store lacks it */
    char have[512];      /* platforms present, "linux/amd64, linux/arm64" */
} pick;

static void note_have(pick *w, const al_platform *p)
{
    char buf[96];
    al_platform_format(p, buf, sizeof(buf));
    /* Once each. */
    size_t bl = strlen(buf);
    for (const char *q = w->have; (q = strstr(q, buf)) != NULL; q += bl)
        if ((q == w->have || q[-1] == ' ') && (q[bl] == ',' || q[bl] == '\0'))
            return;
    size_t used = strlen(w->have);
    snprintf(w->have + used, sizeof(w->have) - used, "%s%s", used ? ", " : "", buf);
}

/* Fill im from the image manifest the walk accepted (its config read and
 * checked by the graph's rules). Every layer's file must be there with the
 * size the manifest gives. */
static int load_image(al_export_image *im, al_store *store, const al_graph_node *n,
                      const al_platform *want, al_error **err)
{
    const al_manifest *m = n->m;
    const al_image_config *cfg = n->config;
    snprintf(im->manifest_digest, sizeof(im->manifest_digest), "%s", n->digest);
    im->manifest_media_type = m->media_type;
    im->manifest_size = n->size;
    /* A lone image manifest whose config names no platform: take it as asked. */
    im->platform = n->has_platform ? n->platform : *want;
    snprintf(im->config_digest, sizeof(im->config_digest), "%s", m->config.digest);
    im->config_size = m->config.size;
    im->config_media_type = m->config.media_type ? al_xstrdup(m->config.media_type) : NULL;
    im->layers = al_xcalloc(m->n_layers + 1, sizeof(*im->layers));
    im->n_layers = m->n_layers;
    im->diff_ids_match = cfg->n_diff_ids == m->n_layers;
    for (size_t i = 0; i < m->n_layers; i++) {
        const al_descriptor *d = &m->layers[i];
        al_export_layer *l = &im->layers[i];
        snprintf(l->digest, sizeof(l->digest), "%s", d->digest);
        l->size = d->size;
        l->media_type = d->media_type ? al_xstrdup(d->media_type) : NULL;
        l->comp = d->media_type ? al_layer_compression(d->media_type) : AL_COMP_UNKNOWN;
        if (l->comp == AL_COMP_ZSTD)
            im->n_zstd_layers++;
        if (im->diff_ids_match)
            snprintf(l->diff_id, sizeof(l->diff_id), "%s", cfg->diff_ids[i]);
    }
    for (size_t i = 0; i < m->n_layers; i++) {
        const al_descriptor *d = &m->layers[i];
        int64_t have = -1;
        if (!al_store_has_blob(store, d->digest, &have))
            return al_error_set(err, AL_E_NOT_FOUND, 0, "layer %s is missing from the store",
                                d->digest);
        if (have != d->size)
            return al_error_set(err, AL_E_SIZE, 0,
                                "blob %s is corrupt: %lld bytes in the store, the manifest says "
                                "%lld",
                                d->digest, (long long)have, (long long)d->size);
    }
    return 0;
}

static void keep_error(pick *w, const al_graph_node *n)
{
    if (w->err == NULL)
        al_graph_node_error(n, &w->err);
}

/* The walk's visitor: the first image manifest for the platform wins
 * (depth-first, in index order, as docker and containerd pick). A part
 * that cannot be read or breaks the graph's rules matters only where it
 * may hold the platform; a part the store lacks (not fetched for that
 * platform) only says so. */
static int pick_visit(void *ud, const al_graph_node *n, al_error **err)
{
    pick *w = ud;
    if (n->state == AL_GRAPH_FAILED) {
        bool ours = !n->has_platform || al_platform_equal(&n->platform, w->want);
        if (n->parent == NULL) {
            w->root_failed = true;
            keep_error(w, n);
            return AL_GRAPH_STOP;
        }
        if (n->error->code == AL_E_NOT_FOUND)
            w->listed_absent = w->listed_absent || (n->has_platform && ours);
        else if (ours)
            keep_error(w, n);
        return 0;
    }
    if (n->kind != AL_GRAPH_IMAGE)
        return 0;
    if (n->has_platform && !al_platform_is_unknown(&n->platform))
        note_have(w, &n->platform);
    bool match = n->has_platform ? al_platform_equal(&n->platform, w->want) : n->parent == NULL;
    if (n->state != AL_GRAPH_VISITED || !match)
        return 0;
    w->found = true;
    al_error_clear(&w->err); /* a broken part elsewhere does not matter now */
    load_image(w->im, w->store, n, w->want, &w->err);
    return AL_GRAPH_STOP;
}

static void add_image(al_export_set *set, al_export_image *im)
{
    set->images = al_xrealloc(set->images, (set->n_images + 1) * sizeof(*set->images));
    set->images[set->n_images++] = *im;
}

/* A named ref without the platform is an error; an image that only --all
 * brought in is skipped for that platform: "everything there is". */
static void lack_platform(al_selection *out, const root *rt, int platform, char *msg)
{
    if (rt->from_all) {
        al_warn("skipping: %s", msg);
        free(msg);
        return;
    }
    add_problem(out, rt->full, platform, AL_E_NOT_FOUND, msg);
    out->problem_info[out->n_problems - 1].lacks_platform = true;
}

/* Walk rt's graph for one platform (graph.h: the store as the source,
 * that platform selected, every config read and checked) and add the
 * image, or the problem, to out. false when the root itself failed. */
static bool select_platform(al_selection *out, al_store *store, const root *rt, int p,
                            const al_platform *want)
{
    al_graph_source src;
    al_graph_store_source(&src, store);
    al_descriptor rd = {.media_type = rt->media_type, .size = -1};
    snprintf(rd.digest, sizeof(rd.digest), "%s", rt->digest);
    al_graph_select sel = {.platforms = want, .n_platforms = 1};
    al_graph_walk_opts o = {.select = &sel, .configs = true};
    al_export_image im;
    memset(&im, 0, sizeof(im));
    pick w = {.store = store, .want = want, .im = &im};
    al_graph_walk(&src, &rd, &o, pick_visit, &w, NULL);
    if (w.err != NULL) {
        add_problem(out, rt->full, w.root_failed ? -1 : p, w.err->code,
                    al_xasprintf("%s: %s", rt->full, w.err->msg));
        al_error_free(w.err);
        image_dispose(&im);
        return !w.root_failed;
    }
    if (!w.found) {
        char pbuf[96];
        al_platform_format(want, pbuf, sizeof(pbuf));
        lack_platform(out, rt, p,
                      al_xasprintf("%s has no %s manifest%s (it has %s)%s", rt->full, pbuf,
                                   w.listed_absent ? " in the store" : "",
                                   w.have[0] ? w.have : "none",
                                   w.listed_absent ? "; fetch it with that --platform" : ""));
        return true;
    }
    im.ref = al_xstrdup(rt->full);
    im.name = al_ref_name(rt->ref);
    im.tag = rt->ref->tag ? al_xstrdup(rt->ref->tag) : NULL;
    snprintf(im.root_digest, sizeof(im.root_digest), "%s", rt->digest);
    add_image(&out->sets[p], &im);
    return true;
}

static bool full_seen(const root *roots, size_t n, const char *full)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(roots[i].full, full) == 0)
            return true;
    return false;
}

int al_export_select(al_selection *out, al_store *store, al_db *db, al_ref *const *refs,
                     size_t n_refs, bool all, const al_platform *platforms, size_t n_platforms,
                     al_error **err)
{
    al_selection_init(out);
    out->sets = al_xcalloc(n_platforms, sizeof(*out->sets));
    out->n_sets = n_platforms;
    for (size_t p = 0; p < n_platforms; p++)
        out->sets[p].platform = platforms[p];

    root *roots = al_xcalloc(n_refs + 1, sizeof(*roots));
    size_t n_roots = 0;
    al_ref **owned = NULL;
    size_t n_owned = 0;
    al_tag *tags = NULL;
    size_t n_tags = 0;
    int r = 0;

    for (size_t i = 0; i < n_refs; i++) {
        char *full = al_ref_full(refs[i]);
        if (full_seen(roots, n_roots, full)) {
            free(full);
            continue;
        }
        roots[n_roots].ref = refs[i];
        roots[n_roots++].full = full;
    }
    if (all) {
        r = al_db_tags_list(db, &tags, &n_tags, err);
        if (r < 0)
            goto out;
        roots = al_xrealloc(roots, (n_roots + n_tags + 1) * sizeof(*roots));
        owned = al_xcalloc(n_tags + 1, sizeof(*owned));
        for (size_t i = 0; i < n_tags; i++) {
            al_ref *ref = NULL;
            al_error *perr = NULL;
            if (al_ref_parse(&ref, tags[i].full_name, &perr) < 0) {
                /* Not one of ours (a hand-edited database?): say so, go on. */
                al_error_wrap(&perr, "skipping tag \"%s\"", tags[i].full_name);
                al_error_demote(&perr);
                continue;
            }
            owned[n_owned++] = ref;
            char *full = al_ref_full(ref);
            if (full_seen(roots, n_roots, full)) {
                free(full);
                continue;
            }
            memset(&roots[n_roots], 0, sizeof(*roots));
            roots[n_roots].ref = ref;
            roots[n_roots].from_all = true;
            roots[n_roots++].full = full;
        }
    }

    /* Phase 1: every ref to a root digest; all the missing ones listed. */
    for (size_t i = 0; i < n_roots; i++) {
        r = al_db_ref_root(db, store, roots[i].ref, roots[i].digest, &roots[i].media_type, err);
        if (r < 0)
            goto out;
        if (roots[i].digest[0] == '\0')
            add_problem(out, roots[i].full, -1, AL_E_NOT_FOUND,
                        al_xasprintf("not in store: %s", roots[i].full));
    }

    /* Phase 2: per platform, the image beneath each root. */
    for (size_t i = 0; i < n_roots; i++)
        for (size_t p = 0; p < n_platforms && roots[i].digest[0] != '\0'; p++)
            if (!select_platform(out, store, &roots[i], (int)p, &platforms[p]))
                break; /* the root itself is unusable: one problem for every platform */
    r = 0;

out:
    for (size_t i = 0; i < n_roots; i++) {
        free(roots[i].full);
        free(roots[i].media_type);
    }
    free(roots);
    for (size_t i = 0; i < n_owned; i++)
        al_ref_free(owned[i]);
    free(owned);
    if (tags)
        al_tags_free(tags, n_tags);
    if (r < 0)
        al_selection_dispose(out);
    return r;
}
