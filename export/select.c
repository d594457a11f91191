#include "select.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

/* Nested indexes deeper than this are refused (a loop guard: content
 * addressing makes true cycles impossible, but a hostile chain is not). */
#define MAX_INDEX_DEPTH 4

/* One ref resolved to its root manifest. */
typedef struct root {
    al_ref *ref; /* borrowed (from the caller or from owned_refs) */
    char *full;
    char digest[AL_DIGEST_BUF];
    char *media_type; /* from the tag row; NULL for digest refs */
    bool from_all;    /* came from --all, not named */
    al_manifest *m;   /* parsed root; NULL when it could not be read */
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

/* Read and parse a manifest blob, verified. */
static int read_manifest(al_manifest **out, al_store *store, const char *digest,
                         const char *content_type, int64_t want_size, al_error **err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = al_store_read_blob(store, digest, AL_MANIFEST_MAX, &buf, &len, err);
    if (r < 0)
        return r;
    if (want_size >= 0 && (int64_t)len != want_size)
        return al_error_set(err, AL_E_SIZE, 0,
                            "blob %s is corrupt: %zu bytes in the store, its descriptor says %lld",
                            digest, len, (long long)want_size);
    r = al_manifest_parse(out, buf, len, content_type, err);
    if (r < 0)
        return al_error_wrap(err, "manifest %s", digest);
    return 0;
}

/* Where a child manifest of an index says it runs. For a child without a
 * platform field, its config says (read from the store). false when the
 * child is not in the store or says nothing. */
static bool child_platform(al_store *store, const al_descriptor *d, al_platform *out)
{
    if (d->has_platform) {
        *out = d->platform;
        return true;
    }
    al_manifest *m = NULL;
    if (read_manifest(&m, store, d->digest, d->media_type, d->size, NULL) < 0)
        return false;
    bool ok = false;
    if (!al_manifest_is_index(m)) {
        _cleanup_free_ char *cbuf = NULL;
        size_t clen = 0;
        al_image_config *c = NULL;
        if (al_store_read_blob(store, m->config.digest, AL_CONFIG_MAX, &cbuf, &clen, NULL) == 0 &&
            al_image_config_parse(&c, cbuf, clen, NULL) == 0 && c->has_platform) {
            *out = c->platform;
            ok = true;
        }
        if (c)
            al_image_config_free(c);
    }
    al_manifest_free(m);
    return ok;
}

static bool is_index_descriptor(const al_descriptor *d)
{
    return d->media_type != NULL && (strcmp(d->media_type, AL_MT_OCI_INDEX) == 0 ||
                                     strcmp(d->media_type, AL_MT_DOCKER_LIST) == 0);
}

/* What the walk found. */
typedef struct walk {
    const al_platform *want;
    al_descriptor found; /* valid when found.digest[0]; media_type points at found_mt */
    char found_mt[128];
    bool listed_absent; /* the index lists the platform but the store lacks it */
    char have[512];     /* platforms present, "linux/amd64, linux/arm64" */
} walk;

static void note_have(walk *w, const al_platform *p)
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

static int walk_index(walk *w, al_store *store, const al_manifest *idx, int depth, al_error **err)
{
    if (depth > MAX_INDEX_DEPTH)
        return al_error_set(err, AL_E_UNSUPPORTED, 0, "indexes nested more than %d deep",
                            MAX_INDEX_DEPTH);
    for (size_t i = 0; i < idx->n_children && w->found.digest[0] == '\0'; i++) {
        const al_descriptor *d = &idx->children[i];
        bool present = al_store_has_blob(store, d->digest, NULL);
        if (d->has_platform && al_platform_is_unknown(&d->platform))
            continue; /* attestations */
        if (is_index_descriptor(d)) {
            if (!present)
                continue;
            al_manifest *sub = NULL;
            int r = read_manifest(&sub, store, d->digest, d->media_type, d->size, err);
            if (r < 0)
                return r;
            r = al_manifest_is_index(sub) ? walk_index(w, store, sub, depth + 1, err) : 0;
            al_manifest_free(sub);
            if (r < 0)
                return r;
            continue;
        }
        if (!present) {
            if (d->has_platform && al_platform_equal(&d->platform, w->want))
                w->listed_absent = true;
            continue;
        }
        al_platform p;
        if (!child_platform(store, d, &p))
            continue;
        if (al_platform_is_unknown(&p))
            continue;
        note_have(w, &p);
        if (al_platform_equal(&p, w->want)) {
            w->found = *d;
            /* d belongs to an index that is freed before the walk ends. */
            snprintf(w->found_mt, sizeof(w->found_mt), "%s", d->media_type ? d->media_type : "");
            w->found.media_type = w->found_mt[0] ? w->found_mt : NULL;
            w->found.platform = p;
            w->found.has_platform = true;
        }
    }
    return 0;
}

/* Fill im from the image manifest at digest. Problems with the image's
 * blobs come back as errors (the caller turns them into problem lines). */
static int load_image(al_export_image *im, al_store *store, const char *digest,
                      const char *content_type, int64_t size, al_error **err)
{
    al_manifest *m = NULL;
    int r = read_manifest(&m, store, digest, content_type, size, err);
    if (r < 0)
        return r;
    if (al_manifest_is_index(m)) {
        al_manifest_free(m);
        return al_error_set(err, AL_E_PARSE, 0,
                            "manifest %s is an index where an image was expected", digest);
    }
    snprintf(im->manifest_digest, sizeof(im->manifest_digest), "%s", digest);
    im->manifest_media_type = m->media_type;
    if (size < 0) {
        int64_t sz = 0;
        al_store_has_blob(store, digest, &sz);
        size = sz;
    }
    im->manifest_size = size;
    snprintf(im->config_digest, sizeof(im->config_digest), "%s", m->config.digest);
    im->config_size = m->config.size;
    im->config_media_type = m->config.media_type ? al_xstrdup(m->config.media_type) : NULL;

    _cleanup_free_ char *cbuf = NULL;
    size_t clen = 0;
    al_image_config *cfg = NULL;
    r = al_store_read_blob(store, m->config.digest, AL_CONFIG_MAX, &cbuf, &clen, err);
    if (r == 0 && (int64_t)clen != m->config.size)
        r = al_error_set(err, AL_E_SIZE, 0,
                         "blob %s is corrupt: %zu bytes in the store, the manifest says %lld",
                         m->config.digest, clen, (long long)m->config.size);
    if (r == 0) {
        r = al_image_config_parse(&cfg, cbuf, clen, err);
        if (r < 0)
            al_error_wrap(err, "config %s", m->config.digest);
    }
    if (r < 0) {
        al_manifest_free(m);
        return r;
    }
    if (cfg->has_platform && !im->platform.os[0])
        im->platform = cfg->platform;

    im->layers = al_xcalloc(m->n_layers, sizeof(*im->layers));
    im->n_layers = m->n_layers;
    im->diff_ids_match = cfg->n_diff_ids == m->n_layers;
    for (size_t i = 0; i < m->n_layers && r == 0; i++) {
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
        int64_t have = -1;
        if (!al_store_has_blob(store, d->digest, &have))
            r = al_error_set(err, AL_E_NOT_FOUND, 0, "layer %s is missing from the store",
                             d->digest);
        else if (have != d->size)
            r = al_error_set(err, AL_E_SIZE, 0,
                             "blob %s is corrupt: %lld bytes in the store, the manifest says %lld",
                             d->digest, (long long)have, (long long)d->size);
    }
    al_image_config_free(cfg);
    al_manifest_free(m);
    return r;
}

static void add_image(al_export_set *set, al_export_image *im)
{
    set->images = al_xrealloc(set->images, (set->n_images + 1) * sizeof(*set->images));
    set->images[set->n_images++] = *im;
}

/* Resolve a ref to its root digest; false when it is not in the store. */
static int resolve(root *rt, al_store *store, al_db *db, al_error **err)
{
    const al_ref *ref = rt->ref;
    _cleanup_free_ char *name = al_ref_name(ref);
    if (ref->digest != NULL) {
        if (al_store_has_blob(store, ref->digest, NULL)) {
            snprintf(rt->digest, sizeof(rt->digest), "%s", ref->digest);
            return 0;
        }
    }
    _cleanup_free_ char *key = ref->digest ? al_xasprintf("%s@%s", name, ref->digest)
                                           : al_xasprintf("%s:%s", name, ref->tag);
    al_tag t;
    bool found = false;
    memset(&t, 0, sizeof(t));
    int r = al_db_tag_get(db, key, &t, &found, err);
    if (r < 0)
        return r;
    if (found) {
        snprintf(rt->digest, sizeof(rt->digest), "%s", t.digest);
        rt->media_type = t.media_type ? al_xstrdup(t.media_type) : NULL;
    }
    al_tag_dispose(&t);
    return 0;
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
        r = resolve(&roots[i], store, db, err);
        if (r < 0)
            goto out;
        if (roots[i].digest[0] == '\0')
            add_problem(out, roots[i].full, -1, AL_E_NOT_FOUND,
                        al_xasprintf("not in store: %s", roots[i].full));
    }

    /* Phase 2: root manifests, then per platform the image beneath. */
    for (size_t i = 0; i < n_roots; i++) {
        root *rt = &roots[i];
        if (rt->digest[0] == '\0')
            continue;
        al_error *perr = NULL;
        if (read_manifest(&rt->m, store, rt->digest, rt->media_type, -1, &perr) < 0) {
            add_problem(out, rt->full, -1, perr->code, al_xasprintf("%s: %s", rt->full, perr->msg));
            al_error_free(perr);
            continue;
        }
        for (size_t p = 0; p < n_platforms; p++) {
            const al_platform *want = &platforms[p];
            char pbuf[96];
            al_platform_format(want, pbuf, sizeof(pbuf));
            al_export_image im;
            memset(&im, 0, sizeof(im));
            int lr;
            if (al_manifest_is_index(rt->m)) {
                walk w;
                memset(&w, 0, sizeof(w));
                w.want = want;
                lr = walk_index(&w, store, rt->m, 1, &perr);
                if (lr == 0 && w.found.digest[0] == '\0') {
                    char *msg = al_xasprintf(
                        "%s has no %s manifest%s (it has %s)%s", rt->full, pbuf,
                        w.listed_absent ? " in the store" : "", w.have[0] ? w.have : "none",
                        w.listed_absent ? "; fetch it with that --platform" : "");
                    lack_platform(out, rt, (int)p, msg);
                    continue;
                }
                if (lr == 0) {
                    im.platform = w.found.platform;
                    lr = load_image(&im, store, w.found.digest, w.found.media_type, w.found.size,
                                    &perr);
                }
            } else {
                lr = load_image(&im, store, rt->digest, rt->media_type, -1, &perr);
                /* A lone image manifest: its config tells the platform. */
                if (lr == 0 && im.platform.os[0] && !al_platform_equal(&im.platform, want)) {
                    char have[96];
                    al_platform_format(&im.platform, have, sizeof(have));
                    lack_platform(
                        out, rt, (int)p,
                        al_xasprintf("%s has no %s manifest (it has %s)", rt->full, pbuf, have));
                    image_dispose(&im);
                    continue;
                }
                if (lr == 0 && !im.platform.os[0])
                    im.platform = *want; /* the config does not say: take it as asked */
            }
            if (lr < 0) {
                add_problem(out, rt->full, (int)p, perr->code,
                            al_xasprintf("%s: %s", rt->full, perr->msg));
                al_error_clear(&perr);
                image_dispose(&im);
                continue;
            }
            im.ref = al_xstrdup(rt->full);
            im.name = al_ref_name(rt->ref);
            im.tag = rt->ref->tag ? al_xstrdup(rt->ref->tag) : NULL;
            snprintf(im.root_digest, sizeof(im.root_digest), "%s", rt->digest);
            add_image(&out->sets[p], &im);
        }
    }
    r = 0;

out:
    for (size_t i = 0; i < n_roots; i++) {
        free(roots[i].full);
        free(roots[i].media_type);
        if (roots[i].m)
            al_manifest_free(roots[i].m);
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
