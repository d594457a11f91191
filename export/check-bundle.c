/* --check of a bundle (check-private.h): the whole bundle, or every volume
 * of one, from the scans of check-scan.c (one streaming pass per file;
 * each member's bytes hashed as they pass).
 *
 * Checked, one problem per line:
 *   - the manifest parses (a newer format is named as such) and its
 *     checksum matches its blob list;
 *   - every member is the manifest, a volume header or blobs/sha256/<hex>,
 *     a regular file, whose bytes hash to its name and whose size is the
 *     one listed;
 *   - every blob the manifest lists (or each part of a split blob) is
 *     there, and nothing else is; a file that ends early is named;
 *   - for volumes: each one's header (its number, the count, the bundle,
 *     the manifest's digest) and its members as it lists them, and every
 *     volume of the set present beside the one named.
 * A split blob is checked through its parts: each part's digest and size,
 * which the manifest (covered by its checksum) binds to the blob; the
 * import joins them and checks the whole digest. */
#include "check-private.h"
#include "../common/bundle.h"
#include "../common/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the manifest names: members the bundle must hold. */
typedef struct want {
    char digest[AL_DIGEST_BUF];
    uint64_t size;
    int found; /* in how many volumes (or 1 for a whole bundle) */
} want;

typedef struct bcheck {
    al_check_result *r;
    al_bundle_manifest m;
    bool have_manifest;
    want *w;
    size_t n_w;
} bcheck;

static int cmp_want(const void *a, const void *b)
{
    return strcmp(((const want *)a)->digest, ((const want *)b)->digest);
}

static want *find_want(bcheck *c, const char *digest)
{
    want key;
    memcpy(key.digest, digest, AL_DIGEST_BUF);
    return bsearch(&key, c->w, c->n_w, sizeof(key), cmp_want);
}

/* "VOLUME: NAME" for a member of a volume set, NAME for a whole bundle. */
static char *member_label(const char *vol_path, const char *name)
{
    return vol_path != NULL ? al_xasprintf("%s: %s", vol_path, name) : al_xstrdup(name);
}

static const al_member *member_named(const al_scan *s, const char *name)
{
    for (size_t i = 0; i < s->n_members && i < 2; i++)
        if (strcmp(s->members[i].name, name) == 0)
            return &s->members[i];
    return NULL;
}

/* The manifest member of s: parsed into c->m, its wanted members listed. */
static void read_manifest(bcheck *c, const al_scan *s, const char *vol_path, char digest[])
{
    const al_member *mm = member_named(s, AL_BUNDLE_MANIFEST_NAME);
    _cleanup_free_ char *label = member_label(vol_path, AL_BUNDLE_MANIFEST_NAME);
    if (mm == NULL || mm->json == NULL) {
        al_check_add(c->r, AL_CHECK_ERROR, vol_path, "%s",
                     mm == NULL ? "no " AL_BUNDLE_MANIFEST_NAME " where it belongs: not a bundle"
                                : AL_BUNDLE_MANIFEST_NAME " could not be read whole");
        return;
    }
    memcpy(digest, mm->digest, AL_DIGEST_BUF);
    al_error *e = NULL;
    if (al_bundle_manifest_parse(&c->m, mm->json, mm->json_len, &e) < 0) {
        al_check_add(c->r, AL_CHECK_ERROR, label, "%s", e->msg);
        al_error_free(e);
        return;
    }
    c->have_manifest = true;
    size_t n = 0;
    for (size_t i = 0; i < c->m.n_blobs; i++)
        n += c->m.blobs[i].n_parts > 0 ? c->m.blobs[i].n_parts : 1;
    c->w = al_xcalloc(n + 1, sizeof(*c->w));
    for (size_t i = 0; i < c->m.n_blobs; i++) {
        const al_bundle_blob *b = &c->m.blobs[i];
        for (size_t k = 0; k < (b->n_parts > 0 ? b->n_parts : 1); k++) {
            want *w = &c->w[c->n_w++];
            memcpy(w->digest, b->n_parts > 0 ? b->parts[k].digest : b->digest, AL_DIGEST_BUF);
            w->size = b->n_parts > 0 ? b->parts[k].size : b->size;
        }
    }
    qsort(c->w, c->n_w, sizeof(*c->w), cmp_want);
}

/* One blob member: its type, name, size and content. listed: the volume
 * header's list (NULL for a whole bundle). */
static void check_member(bcheck *c, const al_member *mb, const char *vol_path,
                         const al_bundle_volume *listed, bool *seen_listed)
{
    _cleanup_free_ char *label = member_label(vol_path, mb->name);
    char digest[AL_DIGEST_BUF];
    if (!al_bundle_member_digest(mb->name, digest)) {
        al_check_add(c->r, AL_CHECK_ERROR, label,
                     "not a bundle member (only " AL_BUNDLE_MANIFEST_NAME ", " AL_BUNDLE_VOLUME_NAME
                     " and blobs/sha256/<digest> are): airlock-fetch "
                     "--import refuses it");
        return;
    }
    if (mb->type != AL_MEMBER_FILE) {
        al_check_add(c->r, AL_CHECK_ERROR, label,
                     "not a regular file (a link, directory or device): refused");
        return;
    }
    c->r->blobs++;
    if (!mb->incomplete && strcmp(mb->digest, digest) != 0)
        al_check_add(c->r, AL_CHECK_ERROR, label, "its content hashes to %s: damaged", mb->digest);
    if (listed != NULL) {
        size_t k = 0;
        while (k < listed->n_members && strcmp(listed->members[k].digest, digest) != 0)
            k++;
        if (k == listed->n_members)
            al_check_add(c->r, AL_CHECK_ERROR, label, "not listed by the volume's header");
        else
            seen_listed[k] = true;
    }
    want *w = c->have_manifest ? find_want(c, digest) : NULL;
    if (c->have_manifest && w == NULL) {
        al_check_add(c->r, AL_CHECK_ERROR, label, "not in the bundle's manifest");
        return;
    }
    if (w != NULL && !mb->incomplete && w->size != mb->size)
        al_check_add(c->r, AL_CHECK_ERROR, label, "%llu bytes; the manifest says %llu",
                     (unsigned long long)mb->size, (unsigned long long)w->size);
    if (w != NULL && w->found++ > 0)
        al_check_add(c->r, AL_CHECK_ERROR, label, "present twice");
}

/* The members of one file, after its leading JSON members. */
static void check_members(bcheck *c, const al_scan *s, size_t first, const char *vol_path,
                          const al_bundle_volume *listed)
{
    bool *seen = al_xcalloc(listed != NULL ? listed->n_members + 1 : 1, sizeof(*seen));
    for (size_t i = first; i < s->n_members; i++)
        check_member(c, &s->members[i], vol_path, listed, seen);
    for (size_t k = 0; listed != NULL && k < listed->n_members && s->read_error == NULL; k++)
        if (!seen[k])
            al_check_add(c->r, AL_CHECK_ERROR, vol_path,
                         "its header lists blobs/sha256/%s, which it lacks",
                         al_digest_hex(listed->members[k].digest));
    free(seen);
    if (s->read_error != NULL) {
        _cleanup_free_ char *label =
            s->read_error_member ? member_label(vol_path, s->read_error_member) : NULL;
        al_check_add(c->r, AL_CHECK_ERROR, label != NULL ? label : vol_path,
                     "the file cannot be read further (%s): truncated or damaged", s->read_error);
    }
}

/* How many members the file starts with that are the volume header or the
 * manifest (its blobs follow). */
static size_t leading(const al_scan *s)
{
    size_t n = 0;
    while (n < s->n_members && n < 2 &&
           (strcmp(s->members[n].name, AL_BUNDLE_VOLUME_NAME) == 0 ||
            strcmp(s->members[n].name, AL_BUNDLE_MANIFEST_NAME) == 0))
        n++;
    return n;
}

static void add_counts(al_check_result *r, const al_scan *s)
{
    r->file_bytes += s->file_bytes;
    r->data_bytes += s->data_bytes;
    r->members += s->n_members;
    if (s->zstd_max_window > r->zstd_window)
        r->zstd_window = s->zstd_max_window;
    r->zstd_frames += s->zstd_frames;
}

/* What the manifest says the bundle carries, as images, and what is
 * missing from it. */
static void finish(bcheck *c)
{
    al_check_result *r = c->r;
    if (!c->have_manifest)
        return;
    size_t missing = 0;
    for (size_t i = 0; i < c->n_w; i++)
        if (c->w[i].found == 0 && missing++ < 5)
            al_check_add(r, AL_CHECK_ERROR, NULL,
                         "blob %s (%llu bytes) that the manifest names is missing", c->w[i].digest,
                         (unsigned long long)c->w[i].size);
    if (missing > 5)
        al_check_add(r, AL_CHECK_ERROR, NULL, "and %zu more blobs the manifest names are missing",
                     missing - 5);
    r->images = al_xcalloc(c->m.n_tags + 1, sizeof(*r->images));
    for (size_t i = 0; i < c->m.n_tags; i++) {
        const al_bundle_tag *t = &c->m.tags[i];
        al_check_image *im = &r->images[r->n_images++];
        im->name = al_check_printable(t->name);
        memcpy(im->manifest_digest, t->digest, AL_DIGEST_BUF);
        for (size_t k = 0; k < t->n_platforms; k++) {
            bool dup = false;
            for (size_t j = 0; j < r->n_platforms && !dup; j++)
                dup = strcmp(r->platforms[j], t->platforms[k]) == 0;
            if (dup)
                continue;
            r->platforms = al_xrealloc(r->platforms, (r->n_platforms + 1) * sizeof(char *));
            r->platforms[r->n_platforms++] = al_check_printable(t->platforms[k]);
        }
    }
    r->blobs = c->m.n_blobs; /* a split blob is one, whatever its parts */
    r->bundle_id = al_xstrdup(c->m.id);
    r->bundle_base = al_xstrdup(c->m.base);
    r->bundle_volumes = c->m.volumes;
}

/* A whole bundle: the manifest first, then blobs. */
static void check_whole(bcheck *c, const al_scan *s)
{
    char digest[AL_DIGEST_BUF];
    read_manifest(c, s, NULL, digest);
    if (c->have_manifest && c->m.volumes != 1)
        al_check_add(c->r, AL_CHECK_ERROR, NULL,
                     "its manifest says %u volumes, but it is no volume (no " AL_BUNDLE_VOLUME_NAME
                     ")",
                     c->m.volumes);
    check_members(c, s, leading(s), NULL, NULL);
    add_counts(c->r, s);
}

/* One volume's scan: its header, the manifest when it is volume 1, its
 * members against its header. *hdr (parsed) is returned for the caller to
 * dispose. */
static bool check_volume(bcheck *c, const al_scan *s, unsigned k, unsigned n, const char *vol_path,
                         const char *manifest_digest, al_bundle_volume *hdr)
{
    const al_member *hm = member_named(s, AL_BUNDLE_VOLUME_NAME);
    al_error *e = NULL;
    if (hm == NULL || hm->json == NULL ||
        al_bundle_volume_parse(hdr, hm->json, hm->json_len, &e) < 0) {
        al_check_add(c->r, AL_CHECK_ERROR, vol_path, "%s",
                     e != NULL ? e->msg : "no readable " AL_BUNDLE_VOLUME_NAME ": not a volume");
        al_error_free(e);
        return false;
    }
    if (hdr->volume != k || hdr->volumes != n)
        al_check_add(c->r, AL_CHECK_ERROR, vol_path,
                     "says it is volume %u of %u; expected %u of %u", hdr->volume, hdr->volumes, k,
                     n);
    if (c->have_manifest && strcmp(hdr->bundle_id, c->m.id) != 0)
        al_check_add(c->r, AL_CHECK_ERROR, vol_path, "a volume of bundle %s, not of %s",
                     hdr->bundle_id, c->m.id);
    if (manifest_digest[0] != '\0' && strcmp(hdr->manifest_digest, manifest_digest) != 0)
        al_check_add(c->r, AL_CHECK_ERROR, vol_path,
                     "its header names manifest %s; the bundle's is %s", hdr->manifest_digest,
                     manifest_digest);
    check_members(c, s, leading(s), vol_path, hdr);
    add_counts(c->r, s);
    return true;
}

static void cover(al_check_result *r, const char *path)
{
    r->covered = al_xrealloc(r->covered, (r->n_covered + 1) * sizeof(*r->covered));
    r->covered[r->n_covered++] = al_xstrdup(path);
}

/* Scan the volume at path; false when it is missing or unreadable. */
static bool scan_volume(al_check_result *r, const char *path, unsigned k, unsigned n, al_scan *out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        al_check_add(r, AL_CHECK_ERROR, NULL, "volume %u of %u (%s) is missing", k, n, path);
        return false;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    al_error *e = NULL;
    if (al_check_scan(out, fd, &e) < 0) {
        al_check_add(r, AL_CHECK_ERROR, path, "%s", e->msg);
        al_error_free(e);
        return false;
    }
    cover(r, path);
    return true;
}

/* Every volume of the set `given` belongs to, in order; `given` was
 * scanned already (its scan is s). */
static void check_volumes(bcheck *c, const al_scan *s, const char *given)
{
    al_bundle_volume h0;
    al_error *e = NULL;
    const al_member *hm = member_named(s, AL_BUNDLE_VOLUME_NAME);
    if (hm == NULL || hm->json == NULL ||
        al_bundle_volume_parse(&h0, hm->json, hm->json_len, &e) < 0) {
        al_check_add(c->r, AL_CHECK_ERROR, NULL, "%s",
                     e != NULL ? e->msg : AL_BUNDLE_VOLUME_NAME " could not be read whole");
        al_error_free(e);
        return;
    }
    unsigned n = h0.volumes, given_k = h0.volume;
    al_bundle_volume_dispose(&h0);
    _cleanup_free_ char *base = NULL;
    unsigned named = 0;
    if (!al_bundle_volume_split(given, &base, &named) || named != given_k) {
        if (n > 1)
            al_check_add(c->r, AL_CHECK_ERROR, NULL,
                         "volume %u of %u, but its name does not end in .%03u: the other volumes "
                         "cannot be found beside it",
                         given_k, n, given_k);
        free(base);
        base = NULL;
    }
    char manifest_digest[AL_DIGEST_BUF] = "";
    for (unsigned k = 1; k <= n; k++) {
        _cleanup_free_ char *path =
            base != NULL ? al_bundle_volume_path(base, k) : al_xstrdup(given);
        if (base == NULL && k != given_k)
            continue;
        al_scan vs;
        bool own = k != given_k;
        if (own && !scan_volume(c->r, path, k, n, &vs))
            continue;
        const al_scan *use = own ? &vs : s;
        if (k == 1)
            read_manifest(c, use, path, manifest_digest);
        al_bundle_volume hdr;
        if (check_volume(c, use, k, n, path, manifest_digest, &hdr))
            al_bundle_volume_dispose(&hdr);
        if (own)
            al_scan_dispose(&vs);
    }
    if (c->have_manifest && c->m.volumes != n)
        al_check_add(c->r, AL_CHECK_ERROR, NULL, "its manifest says %u volumes, its headers %u",
                     c->m.volumes, n);
}

void al_check_bundle(al_check_result *r, const al_scan *s, const char *path)
{
    bcheck c = {.r = r};
    r->kind = "bundle";
    /* Counted here, over every file read. */
    r->file_bytes = r->data_bytes = 0;
    r->members = 0;
    r->zstd_frames = 0;
    if (s->n_members > 0 && strcmp(s->members[0].name, AL_BUNDLE_VOLUME_NAME) == 0) {
        cover(r, path);
        check_volumes(&c, s, path);
    } else {
        check_whole(&c, s);
    }
    finish(&c);
    al_bundle_manifest_dispose(&c.m);
    free(c.w);
}
