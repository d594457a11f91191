/* --check of an image archive (docker save, OCI layout, hybrid): what
 * docker load and containerd import would refuse or get wrong, from the
 * member table of one scan (check-scan.h).
 *
 * containerd reads index.json only when oci-layout is there too (else it
 * reads manifest.json); docker before 25 reads manifest.json only. Both
 * views are checked whenever they are present, and the names of the one
 * containerd uses decide what k3s sees. */
#include "check-private.h"
#include "../common/manifest.h"
#include "../common/platform.h"
#include "../common/ref.h"
#include "sink.h"
#include "../common/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINKS 8
#define MAX_DEPTH 4

typedef struct ctx {
    al_check_result *r;
    const al_scan *s;
    const al_member **sorted; /* every member but directories, by name, then order */
    size_t n_sorted;
    bool *used;          /* by order: referenced by a manifest */
    bool containerd_oci; /* containerd reads index.json (oci-layout present) */
} ctx;

static int by_name(const void *a, const void *b)
{
    const al_member *x = *(const al_member *const *)a, *y = *(const al_member *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->order < y->order ? -1 : x->order > y->order);
}

/* The last member of that name (extraction keeps the last one). */
static const al_member *find_raw(const ctx *c, const char *name)
{
    size_t lo = 0, hi = c->n_sorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(c->sorted[mid]->name, name) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && strcmp(c->sorted[lo - 1]->name, name) == 0 ? c->sorted[lo - 1] : NULL;
}

/* "a/b/../c" -> "a/c"; NULL when it is absolute or climbs out. */
static char *normalize(const char *path)
{
    if (path[0] == '/' || path[0] == '\0')
        return NULL;
    _cleanup_free_ char *copy = al_xstrdup(path);
    char *out = al_xcalloc(strlen(path) + 1, 1);
    size_t len = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0) {
            if (len == 0) {
                free(out);
                return NULL;
            }
            while (len > 0 && out[len - 1] != '/')
                len--;
            len = len > 0 ? len - 1 : 0;
            out[len] = '\0';
            continue;
        }
        len += (size_t)sprintf(out + len, "%s%s", len ? "/" : "", t);
    }
    return out;
}

/* Where a link member points, as an archive path; NULL when outside. */
static char *link_target(const al_member *m)
{
    if (m->link == NULL) /* a tar header may name no target at all */
        return NULL;
    if (m->type == AL_MEMBER_HARDLINK)
        return normalize(strncmp(m->link, "./", 2) == 0 ? m->link + 2 : m->link);
    if (m->link[0] == '/')
        return NULL;
    const char *slash = strrchr(m->name, '/');
    _cleanup_free_ char *joined =
        slash ? al_xasprintf("%.*s/%s", (int)(slash - m->name), m->name, m->link)
              : al_xstrdup(m->link);
    return normalize(joined);
}

/* The regular file a name leads to, through links inside the archive. */
static const al_member *find(const ctx *c, const char *name)
{
    const al_member *m = find_raw(c, name);
    for (int i = 0; m != NULL && i < MAX_LINKS; i++) {
        if (m->type == AL_MEMBER_FILE)
            return m;
        if (m->type != AL_MEMBER_SYMLINK && m->type != AL_MEMBER_HARDLINK)
            return NULL;
        _cleanup_free_ char *t = link_target(m);
        m = t ? find_raw(c, t) : NULL;
    }
    return NULL;
}

static void use(ctx *c, const char *name)
{
    /* The name and every link on the way are used. */
    const al_member *m = find_raw(c, name);
    for (int i = 0; m != NULL && i < MAX_LINKS; i++) {
        c->used[m->order] = true;
        if (m->type != AL_MEMBER_SYMLINK && m->type != AL_MEMBER_HARDLINK)
            return;
        _cleanup_free_ char *t = link_target(m);
        m = t ? find_raw(c, t) : NULL;
    }
}

static bool unsafe_name(const char *name)
{
    if (name[0] == '/' || name[0] == '\0')
        return true;
    for (const char *p = name; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == name || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return true;
    return false;
}

/* Names, types and links of every member, before any is trusted. */
static void check_members(ctx *c)
{
    const al_scan *s = c->s;
    for (size_t i = 0; i < s->n_members; i++) {
        const al_member *m = &s->members[i];
        if (unsafe_name(m->name))
            al_check_add(c->r, AL_CHECK_ERROR, m->name,
                         "unsafe member name (absolute or with '..'): an extracting reader "
                         "would write outside its directory");
        if (m->type == AL_MEMBER_OTHER)
            al_check_add(c->r, AL_CHECK_ERROR, m->name,
                         "a device, fifo or socket member: image archives hold none");
        if ((m->type == AL_MEMBER_SYMLINK || m->type == AL_MEMBER_HARDLINK) &&
            (m->link == NULL || m->link[0] == '\0')) {
            al_check_add(c->r, AL_CHECK_ERROR, m->name, "%s with an empty target",
                         m->type == AL_MEMBER_SYMLINK ? "symlink" : "hard link");
        } else if (m->type == AL_MEMBER_SYMLINK || m->type == AL_MEMBER_HARDLINK) {
            _cleanup_free_ char *t = link_target(m);
            _cleanup_free_ char *shown = al_check_printable(m->link);
            if (t == NULL)
                al_check_add(c->r, AL_CHECK_ERROR, m->name,
                             "%s to \"%s\" points outside the archive",
                             m->type == AL_MEMBER_SYMLINK ? "symlink" : "hard link", shown);
            else if (find(c, m->name) == NULL)
                al_check_add(c->r, AL_CHECK_ERROR, m->name,
                             "%s to \"%s\" leads to no file in the archive",
                             m->type == AL_MEMBER_SYMLINK ? "symlink" : "hard link", shown);
        }
    }
    for (size_t i = 0; i + 1 < c->n_sorted; i++) {
        if (strcmp(c->sorted[i]->name, c->sorted[i + 1]->name) != 0)
            continue;
        size_t n = 2;
        while (i + n < c->n_sorted && strcmp(c->sorted[i]->name, c->sorted[i + n]->name) == 0)
            n++;
        al_check_add(c->r, AL_CHECK_ERROR, c->sorted[i]->name,
                     "appears %zu times: readers disagree on which one counts", n);
        i += n - 1;
    }
}

/* A kept JSON member, parsed; NULL (problem recorded) otherwise. */
static json_t *load_json(ctx *c, const al_member *m, const char *what)
{
    if (m->json == NULL) {
        if (m->json_dropped)
            al_check_add(c->r, AL_CHECK_ERROR, m->name,
                         "%s not checked: the archive's JSON exceeds the %u MiB this check keeps",
                         what, AL_SCAN_JSON_BUDGET >> 20);
        else
            al_check_add(c->r, AL_CHECK_ERROR, m->name, "%s is not JSON", what);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(m->json, m->json_len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        _cleanup_free_ char *t = al_check_printable(je.text);
        al_check_add(c->r, AL_CHECK_ERROR, m->name, "%s is not valid JSON: line %d: %s", what,
                     je.line, t);
    }
    return j;
}

static char *blob_path(const char *digest)
{
    return al_xasprintf("blobs/sha256/%s", al_digest_hex(digest));
}

static void add_platform(al_check_result *r, const char *p)
{
    for (size_t i = 0; i < r->n_platforms; i++)
        if (strcmp(r->platforms[i], p) == 0)
            return;
    r->platforms = al_xrealloc(r->platforms, (r->n_platforms + 1) * sizeof(*r->platforms));
    r->platforms[r->n_platforms++] = al_xstrdup(p);
}

static al_check_image *add_image(al_check_result *r, const char *name)
{
    r->images = al_xrealloc(r->images, (r->n_images + 1) * sizeof(*r->images));
    al_check_image *im = &r->images[r->n_images++];
    memset(im, 0, sizeof(*im));
    im->name = name ? al_check_printable(name) : NULL;
    return im;
}

/* Read a config member; NULL (problem recorded) when it is not one. */
static al_image_config *load_config(ctx *c, const al_member *m, al_check_image *im)
{
    if (m->json == NULL) {
        json_decref(load_json(c, m, "the image config"));
        return NULL;
    }
    al_image_config *cfg = NULL;
    al_error *e = NULL;
    if (al_image_config_parse(&cfg, m->json, m->json_len, &e) < 0) {
        al_check_add(c->r, AL_CHECK_ERROR, m->name, "%s", e->msg);
        al_error_free(e);
        return NULL;
    }
    snprintf(im->config_digest, sizeof(im->config_digest), "%s", m->digest);
    im->bytes += m->size;
    if (cfg->has_platform) {
        char buf[96];
        al_platform_format(&cfg->platform, buf, sizeof(buf));
        im->platform = al_xstrdup(buf);
        if (!al_platform_is_unknown(&cfg->platform))
            add_platform(c->r, buf);
    }
    return cfg;
}

/* A layer against its diff_id. */
static void check_layer(ctx *c, const al_member *lm, size_t k, const al_image_config *cfg,
                        const char *who)
{
    if (lm->decomp_error != NULL) {
        al_check_add(c->r, AL_CHECK_ERROR, lm->name, "layer %zu of %s does not decompress: %s",
                     k + 1, who, lm->decomp_error);
        return;
    }
    if (cfg == NULL || k >= cfg->n_diff_ids || lm->diff_id[0] == '\0')
        return;
    /* A blob that is not what its name says is reported once, as such
     * (check_blobs), not again for each image that uses it. */
    if (strncmp(lm->name, "blobs/sha256/", 13) == 0 && strcmp(lm->name + 13, lm->digest + 7) != 0)
        return;
    if (strcmp(lm->diff_id, cfg->diff_ids[k]) != 0)
        al_check_add(c->r, AL_CHECK_ERROR, lm->name,
                     "layer %zu of %s: its content is %s, but the config's diff_id is %s", k + 1,
                     who, lm->diff_id, cfg->diff_ids[k]);
}

/* --- manifest.json (docker save) ---------------------------------------- */

static void docker_names(ctx *c, const al_member *mj, json_t *tags, size_t i, const char **first)
{
    size_t n = json_is_array(tags) ? json_array_size(tags) : 0;
    for (size_t k = 0; k < n; k++) {
        const char *t = json_string_value(json_array_get(tags, k));
        al_ref *ref = NULL;
        al_error *e = NULL;
        if (t == NULL || al_ref_parse(&ref, t, &e) < 0 || ref->digest != NULL) {
            _cleanup_free_ char *shown = al_check_printable(t ? t : "(not a string)");
            al_check_add(c->r, AL_CHECK_ERROR, mj->name,
                         "image %zu: RepoTag \"%s\" is not a name:tag docker load accepts", i + 1,
                         shown);
        } else if (*first == NULL) {
            *first = t;
        }
        al_ref_free(ref);
        al_error_free(e);
    }
    if (n == 0)
        al_check_add(c->r, c->containerd_oci ? AL_CHECK_NOTE : AL_CHECK_ERROR, mj->name,
                     "image %zu has no RepoTags: docker load leaves it untagged%s", i + 1,
                     c->containerd_oci ? "" : ", and containerd imports it under no name");
}

static void docker_entry(ctx *c, const al_member *mj, json_t *e, size_t i)
{
    const char *cpath = json_string_value(json_object_get(e, "Config"));
    json_t *layers = json_object_get(e, "Layers");
    if (cpath == NULL || !json_is_array(layers)) {
        al_check_add(c->r, AL_CHECK_ERROR, mj->name,
                     "image %zu: needs a \"Config\" string and a \"Layers\" array", i + 1);
        return;
    }
    const char *name = NULL;
    docker_names(c, mj, json_object_get(e, "RepoTags"), i, &name);
    _cleanup_free_ char *who = name ? al_check_printable(name) : al_xasprintf("image %zu", i + 1);
    al_check_image *im = add_image(c->r, name);
    im->layers = json_array_size(layers);
    const al_member *cm = find(c, cpath);
    al_image_config *cfg = NULL;
    _cleanup_free_ char *shown = al_check_printable(cpath);
    if (cm == NULL)
        al_check_add(c->r, AL_CHECK_ERROR, mj->name, "%s: its config %s is not in the archive", who,
                     shown);
    else {
        use(c, cpath);
        cfg = load_config(c, cm, im);
    }
    if (cfg != NULL && cfg->n_diff_ids != json_array_size(layers))
        al_check_add(c->r, AL_CHECK_ERROR, mj->name,
                     "%s: %zu layers, but its config lists %zu diff_ids", who,
                     json_array_size(layers), cfg->n_diff_ids);
    for (size_t k = 0; k < json_array_size(layers); k++) {
        const char *lp = json_string_value(json_array_get(layers, k));
        const al_member *lm = lp ? find(c, lp) : NULL;
        if (lm == NULL) {
            _cleanup_free_ char *ls = al_check_printable(lp ? lp : "(not a string)");
            al_check_add(c->r, AL_CHECK_ERROR, mj->name, "%s: layer %zu, %s, is not in the archive",
                         who, k + 1, ls);
            continue;
        }
        use(c, lp);
        im->bytes += lm->size;
        check_layer(c, lm, k, cfg, who);
        if (lm->comp == AL_COMP_ZSTD)
            al_check_add(c->r, AL_CHECK_NOTE, lm->name,
                         "layer %zu of %s is zstd: docker load before 23 cannot read it", k + 1,
                         who);
    }
    if (cfg)
        al_image_config_free(cfg);
}

static void check_docker(ctx *c, const al_member *mj)
{
    json_t *root = load_json(c, mj, "manifest.json");
    if (root == NULL)
        return;
    if (!json_is_array(root) || json_array_size(root) == 0)
        al_check_add(c->r, AL_CHECK_ERROR, mj->name, "is not a non-empty array of images");
    for (size_t i = 0; json_is_array(root) && i < json_array_size(root); i++) {
        json_t *e = json_array_get(root, i);
        if (!json_is_object(e)) {
            al_check_add(c->r, AL_CHECK_ERROR, mj->name, "image %zu is not an object", i + 1);
            continue;
        }
        docker_entry(c, mj, e, i);
    }
    json_decref(root);
}

/* --- index.json (OCI layout) -------------------------------------------- */

/* A blob a descriptor names: present, of that size, marked used. */
static const al_member *desc_blob(ctx *c, const al_descriptor *d, const char *parent,
                                  const char *what, bool must)
{
    _cleanup_free_ char *path = blob_path(d->digest);
    const al_member *m = find(c, path);
    if (m == NULL) {
        if (must)
            al_check_add(c->r, AL_CHECK_ERROR, parent, "%s %s is not in the archive", what,
                         d->digest);
        return NULL;
    }
    use(c, path);
    if (!m->incomplete && (int64_t)m->size != d->size)
        al_check_add(c->r, AL_CHECK_ERROR, path, "%llu bytes, but %s says %s is %lld bytes",
                     (unsigned long long)m->size, parent, what, (long long)d->size);
    return m;
}

/* Two names for the same image: "busybox:1.36" in manifest.json is
 * docker.io/library/busybox:1.36 in index.json. */
static bool same_name(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return true;
    al_ref *x = NULL, *y = NULL;
    bool same = strcmp(a, b) == 0;
    if (!same && al_ref_parse(&x, a, NULL) == 0 && al_ref_parse(&y, b, NULL) == 0) {
        _cleanup_free_ char *fx = al_ref_full(x), *fy = al_ref_full(y);
        same = strcmp(fx, fy) == 0;
    }
    al_ref_free(x);
    al_ref_free(y);
    return same;
}

/* A hybrid archive names each image twice (manifest.json and index.json):
 * the last image added, from index.json, is folded into its docker twice. */
static void merge_with_docker(al_check_result *r)
{
    al_check_image *last = &r->images[r->n_images - 1];
    for (size_t i = 0; i + 1 < r->n_images; i++) {
        al_check_image *im = &r->images[i];
        if (im->manifest_digest[0] || strcmp(im->config_digest, last->config_digest) != 0 ||
            !same_name(im->name, last->name))
            continue;
        memcpy(im->manifest_digest, last->manifest_digest, sizeof(im->manifest_digest));
        if (last->name != NULL) { /* index.json's name: the one containerd keeps */
            free(im->name);
            im->name = al_steal_ptr(&last->name);
        }
        free(last->name);
        free(last->platform);
        r->n_images--;
        return;
    }
}

static bool foreign(const char *mt)
{
    return mt != NULL && (strstr(mt, "nondistributable") || strstr(mt, "foreign"));
}

static void oci_image(ctx *c, const al_member *mm, const al_manifest *man, const char *name)
{
    al_check_image *im = add_image(c->r, name);
    snprintf(im->manifest_digest, sizeof(im->manifest_digest), "%s", mm->digest);
    im->layers = man->n_layers;
    _cleanup_free_ char *who = name ? al_check_printable(name) : al_xstrdup(mm->digest);
    const al_member *cm = desc_blob(c, &man->config, mm->name, "its config", true);
    al_image_config *cfg = cm ? load_config(c, cm, im) : NULL;
    if (cfg != NULL && cfg->n_diff_ids != man->n_layers)
        al_check_add(c->r, AL_CHECK_ERROR, mm->name,
                     "%s: %zu layers, but its config lists %zu diff_ids", who, man->n_layers,
                     cfg->n_diff_ids);
    for (size_t k = 0; k < man->n_layers; k++) {
        const al_descriptor *d = &man->layers[k];
        const al_member *lm = desc_blob(c, d, mm->name, "layer", !foreign(d->media_type));
        if (lm == NULL)
            continue;
        im->bytes += lm->size;
        check_layer(c, lm, k, cfg, who);
    }
    if (cfg)
        al_image_config_free(cfg);
    merge_with_docker(c->r);
}

static void oci_walk(ctx *c, const al_descriptor *d, const char *parent, const char *name,
                     int depth)
{
    bool top = depth == 1;
    bool attest = d->has_platform && al_platform_is_unknown(&d->platform);
    const al_member *mm = desc_blob(c, d, parent, top ? "manifest" : "child manifest", top);
    if (mm == NULL) {
        if (!top && !attest) {
            char p[96] = "a platform";
            if (d->has_platform)
                al_platform_format(&d->platform, p, sizeof(p));
            al_check_add(c->r, AL_CHECK_NOTE, parent,
                         "lists the %s manifest %s, which is not in the archive: consumers "
                         "import the other platforms",
                         p, d->digest);
        }
        return;
    }
    if (mm->json == NULL) {
        json_decref(load_json(c, mm, "the manifest"));
        return;
    }
    al_manifest *man = NULL;
    al_error *e = NULL;
    if (al_manifest_parse(&man, mm->json, mm->json_len, d->media_type, &e) < 0) {
        al_check_add(c->r, AL_CHECK_ERROR, mm->name, "%s", e->msg);
        al_error_free(e);
        return;
    }
    if (!al_manifest_is_index(man))
        oci_image(c, mm, man, name);
    else if (depth >= MAX_DEPTH)
        al_check_add(c->r, AL_CHECK_ERROR, mm->name, "indexes nested more than %d deep", MAX_DEPTH);
    else
        for (size_t i = 0; i < man->n_children; i++)
            oci_walk(c, &man->children[i], mm->name, name, depth + 1);
    al_manifest_free(man);
}

/* The name containerd gives an index.json entry, and whether k3s' kubelet
 * will find it under that name: a full, normalised reference. */
static const char *oci_name(ctx *c, const al_member *ij, json_t *ann, size_t i)
{
    const char *cname = json_string_value(json_object_get(ann, "io.containerd.image.name"));
    const char *rname =
        json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
    const char *name = cname ? cname : rname;
    al_check_severity sev = c->containerd_oci ? AL_CHECK_ERROR : AL_CHECK_NOTE;
    if (name == NULL) {
        al_check_add(c->r, sev, ij->name,
                     "manifest %zu has no io.containerd.image.name nor "
                     "org.opencontainers.image.ref.name: containerd imports it under no name",
                     i + 1);
        return NULL;
    }
    al_ref *ref = NULL;
    al_error *e = NULL;
    _cleanup_free_ char *shown = al_check_printable(name);
    if (al_ref_parse(&ref, name, &e) < 0 || strchr(name, '/') == NULL) {
        al_check_add(c->r, sev, ij->name,
                     "manifest %zu is named \"%s\" (%s), not a full image name: containerd and "
                     "podman would name it otherwise (ctr: a dated import- prefix, podman: "
                     "localhost/)",
                     i + 1, shown,
                     cname ? "io.containerd.image.name" : "org.opencontainers.image.ref.name");
    } else {
        _cleanup_free_ char *full = al_ref_full(ref);
        if (strcmp(full, name) != 0)
            al_check_add(c->r, sev, ij->name,
                         "manifest %zu is named \"%s\": containerd keeps that name as is, but "
                         "the kubelet asks for %s",
                         i + 1, shown, full);
    }
    al_ref_free(ref);
    al_error_free(e);
    return name;
}

static void check_oci(ctx *c, const al_member *ij)
{
    json_t *root = load_json(c, ij, "index.json");
    if (root == NULL)
        return;
    al_manifest *idx = NULL;
    al_error *e = NULL;
    if (al_manifest_parse(&idx, ij->json, ij->json_len, AL_MT_OCI_INDEX, &e) < 0 ||
        !al_manifest_is_index(idx)) {
        al_check_add(c->r, AL_CHECK_ERROR, ij->name, "%s", e ? e->msg : "is not an image index");
        al_error_free(e);
        if (idx)
            al_manifest_free(idx);
        json_decref(root);
        return;
    }
    json_t *list = json_object_get(root, "manifests");
    for (size_t i = 0; i < idx->n_children; i++) {
        json_t *ann = json_object_get(json_array_get(list, i), "annotations");
        const char *name = oci_name(c, ij, ann, i);
        oci_walk(c, &idx->children[i], ij->name, name, 1);
    }
    al_manifest_free(idx);
    json_decref(root);
}

static void check_layout(ctx *c, const al_member *lm)
{
    json_t *j = load_json(c, lm, "oci-layout");
    const char *v = json_string_value(json_object_get(j, "imageLayoutVersion"));
    if (j != NULL && (v == NULL || strcmp(v, "1.0.0") != 0))
        al_check_add(c->r, AL_CHECK_ERROR, lm->name,
                     "imageLayoutVersion is not \"1.0.0\": containerd refuses the archive");
    json_decref(j);
}

/* --- blobs ------------------------------------------------------------------ */

/* Every member under blobs/: named by its content, and used by something. */
static void check_blobs(ctx *c)
{
    const al_scan *s = c->s;
    for (size_t i = 0; i < s->n_members; i++) {
        const al_member *m = &s->members[i];
        if (strncmp(m->name, "blobs/", 6) != 0 || m->type == AL_MEMBER_DIR)
            continue;
        c->r->blobs++;
        const char *rest = m->name + 6;
        _cleanup_free_ char *want = al_xasprintf("%s", rest);
        char *slash = strchr(want, '/');
        if (slash != NULL)
            *slash = ':';
        if (!al_digest_valid(want)) {
            al_check_add(c->r, AL_CHECK_ERROR, m->name,
                         "not a blob name (blobs/sha256/<64 lowercase hex>)");
            continue;
        }
        const al_member *f = find(c, m->name);
        if (f != NULL && !f->incomplete && strcmp(f->digest, want) != 0)
            al_check_add(c->r, AL_CHECK_ERROR, m->name, "%s hashes to %s",
                         f == m ? "content" : "linked content", f->digest);
        if (!c->used[m->order] && find_raw(c, m->name) == m && s->read_error == NULL)
            al_check_add(c->r, AL_CHECK_ERROR, m->name,
                         "an extra blob: nothing in manifest.json or index.json refers to it");
    }
}

/* --- the whole archive -------------------------------------------------------- */

static void check_structure(ctx *c)
{
    const al_member *mj = find(c, "manifest.json");
    const al_member *ij = find(c, "index.json");
    const al_member *lay = find(c, "oci-layout");
    c->containerd_oci = ij != NULL && lay != NULL;
    al_check_result *r = c->r;
    r->kind = mj && c->containerd_oci ? "hybrid" : mj ? "docker" : ij ? "oci" : "unknown";
    if (mj == NULL && ij == NULL) {
        /* A truncated archive lacks them too: its read error says why. */
        if (c->s->read_error == NULL)
            al_check_add(r, AL_CHECK_ERROR, NULL,
                         "neither manifest.json nor index.json: not a docker-save or OCI archive");
        return;
    }
    if (lay != NULL) {
        use(c, "oci-layout");
        check_layout(c, lay);
    }
    if (ij != NULL && lay == NULL)
        al_check_add(r, AL_CHECK_NOTE, "index.json",
                     "no oci-layout: containerd ignores index.json and reads manifest.json");
    if (mj == NULL)
        al_check_add(r, AL_CHECK_NOTE, NULL,
                     "no manifest.json: docker load before 25 cannot read this archive");
    if (mj != NULL)
        check_docker(c, mj);
    if (ij != NULL)
        check_oci(c, ij);
}

void al_check_image_archive(al_check_result *r, const al_scan *s)
{
    ctx c = {.r = r, .s = s};
    c.sorted = al_xcalloc(s->n_members + 1, sizeof(*c.sorted));
    c.used = al_xcalloc(s->n_members + 1, sizeof(*c.used));
    for (size_t i = 0; i < s->n_members; i++)
        if (s->members[i].type != AL_MEMBER_DIR)
            c.sorted[c.n_sorted++] = &s->members[i];
    qsort(c.sorted, c.n_sorted, sizeof(*c.sorted), by_name);

    if (s->read_error != NULL)
        al_check_add(r, AL_CHECK_ERROR, s->read_error_member,
                     "the archive is truncated or damaged: %s", s->read_error);
    if (s->zstd_max_window > ((uint64_t)1 << AL_SINK_ZSTD_MAX_WLOG))
        al_check_add(r, AL_CHECK_ERROR, NULL,
                     "zstd window of %llu MiB: k3s decodes windows up to %u MiB (write it with "
                     "airlock-export, or zstd without --long and below level 20)",
                     (unsigned long long)(s->zstd_max_window >> 20),
                     1u << (AL_SINK_ZSTD_MAX_WLOG - 20));
    check_members(&c);
    check_structure(&c);
    check_blobs(&c);
    free(c.sorted);
    free(c.used);
}
