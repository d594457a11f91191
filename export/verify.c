/* --verify-store (see verify.h for what is checked and why in this order).
 *
 * Hashing reads each file once, sequentially, in 1 MiB chunks, so a store
 * of many gigabytes is checked at disk speed with flat memory. */
#include "verify.h"
#include "closure.h"
#include "../common/bundle.h"
#include "../common/graph.h"
#include "../common/manifest.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)
/* index.json holds one small descriptor per tag. */
#define INDEX_JSON_MAX (64u * 1024u * 1024u)
/* Per incomplete tag, name this many blobs, then "and N more". */
#define MAX_NAMED 6

typedef enum { FS_OK = 0, FS_CORRUPT, FS_UNREADABLE, FS_GONE } fstate;

typedef struct bfile {
    char digest[AL_DIGEST_BUF];
    int64_t size;
    fstate state;
} bfile;

typedef struct verifier {
    al_verify_report *rep;
    al_store *store;
    al_db *db;
    const char *dir;
    al_db_snapshot snap;
    bfile *files; /* sorted by digest */
    size_t n_files;
    al_verify_progress_fn progress;
    void *progress_ud;
} verifier;

static void problem(verifier *v, al_verify_severity sev, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problem(verifier *v, al_verify_severity sev, const char *kind, const char *fmt, ...)
{
    al_verify_report *r = v->rep;
    va_list ap;
    va_start(ap, fmt);
    char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    r->problems = al_xrealloc(r->problems, (r->n_problems + 1) * sizeof(*r->problems));
    r->problems[r->n_problems++] = (al_verify_problem){sev, kind, msg};
    if (sev == AL_VERIFY_ERROR)
        r->n_errors++;
    else
        r->n_infos++;
}
#define verr(v, kind, ...) problem(v, AL_VERIFY_ERROR, kind, __VA_ARGS__)
#define vinfo(v, kind, ...) problem(v, AL_VERIFY_INFO, kind, __VA_ARGS__)

void al_verify_report_dispose(al_verify_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_problems; i++)
        free(r->problems[i].message);
    free(r->problems);
    memset(r, 0, sizeof(*r));
}

/* True when an airlock-fetch holds STORE/lock. The probe takes a shared
 * lock for an instant; a fetch starting in that instant sees that only a
 * reader is in its way and tries again (store.h, al_store_open). */
static bool writer_active(const al_store *s)
{
    _cleanup_close_ int fd =
        openat(al_store_root_fd(s), "lock", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0)
        return errno == EWOULDBLOCK;
    flock(fd, LOCK_UN);
    return false;
}

static bool hex_name(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == AL_DIGEST_HEX_LEN;
}

/* The names in rel below dirfd, sorted (see al_dir_names). *n_out = 0
 * and false when the directory cannot be read (errno kept). */
static bool list_dir(int dirfd, const char *rel, char ***out, size_t *n_out)
{
    int r = dirfd < 0 ? -ENOENT : al_dir_names(dirfd, rel, out, n_out);
    if (r < 0)
        errno = -r;
    return r == 0;
}

/* Layout ------------------------------------------------------------- */

/* A small JSON file at the top of the store, opened as store.h says (a
 * symlink is not followed). NULL with a problem of kind `kind` reported. */
static json_t *load_top_json(verifier *v, const char *name, size_t max, const char *kind)
{
    al_error *e = NULL;
    int64_t size = 0;
    _cleanup_close_ int fd = al_store_file_open(v->store, name, &size, &e);
    if (fd < 0) {
        verr(v, kind, "%s: %s", name, e ? e->msg : "cannot open");
        al_error_free(e);
        return NULL;
    }
    if ((uint64_t)size > max) {
        verr(v, kind, "%s: %lld bytes, more than airlock ever writes", name, (long long)size);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        verr(v, kind, "%s: line %d: %s", name, je.line, je.text);
    return j;
}

static void check_layout(verifier *v)
{
    json_t *j = load_top_json(v, "oci-layout", 4096, "layout");
    const char *ver =
        j != NULL ? json_string_value(json_object_get(j, "imageLayoutVersion")) : NULL;
    if (j == NULL)
        return;
    if (ver == NULL || strcmp(ver, "1.0.0") != 0)
        verr(v, "layout", "oci-layout: imageLayoutVersion is %s%s%s, expected \"1.0.0\"",
             ver ? "\"" : "", ver ? ver : "missing", ver ? "\"" : "");
    json_decref(j);
}

static void check_database(verifier *v, char **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        verr(v, "database", "airlock.db: %s", msgs[i]);
}

/* Rows that point at blobs without a row, and malformed digests. */
static void check_references(verifier *v)
{
    const al_db_snapshot *s = &v->snap;
    for (size_t i = 0; i < s->n_blobs; i++)
        if (!al_digest_valid(s->blobs[i].digest))
            verr(v, "database", "blobs row with an invalid digest \"%s\"", s->blobs[i].digest);
    for (size_t i = 0; i < s->n_manifests; i++) {
        const al_db_manifest *m = &s->manifests[i];
        if (al_db_snapshot_blob(s, m->digest) == NULL)
            verr(v, "dangling", "manifests row %s has no blobs row", m->digest);
        if (m->config_digest[0] != '\0' && al_db_snapshot_blob(s, m->config_digest) == NULL)
            verr(v, "dangling", "manifest %s: its config %s has no blobs row", m->digest,
                 m->config_digest);
    }
    static const char *const kind_name[] = {"manifest", "config", "layer"};
    for (size_t i = 0; i < s->n_edges; i++) {
        const al_graph_edge *e = &s->edges[i];
        const char *k = kind_name[e->kind];
        if (al_db_snapshot_manifest(s, e->parent) == NULL)
            verr(v, "dangling", "edge %s -> %s (%s): the parent has no manifests row", e->parent,
                 e->child, k);
        if (al_db_snapshot_blob(s, e->child) == NULL)
            verr(v, "dangling", "manifest %s references %s %s, which has no blobs row", e->parent,
                 k, e->child);
        else if (e->kind == AL_EDGE_MANIFEST && al_db_snapshot_manifest(s, e->child) == NULL)
            verr(v, "dangling", "index %s references manifest %s, which has no manifests row",
                 e->parent, e->child);
    }
    for (size_t i = 0; i < s->n_tags; i++) {
        const al_tag *t = &s->tags[i];
        if (!al_digest_valid(t->digest))
            verr(v, "database", "tag %s: invalid digest \"%s\"", t->full_name, t->digest);
        else if (al_db_snapshot_blob(s, t->digest) == NULL)
            verr(v, "dangling", "tag %s points at %s, which has no blobs row", t->full_name,
                 t->digest);
        else if (al_db_snapshot_manifest(s, t->digest) == NULL)
            verr(v, "dangling", "tag %s points at %s, which has no manifests row", t->full_name,
                 t->digest);
    }
}

/* Files -------------------------------------------------------------- */

/* Hash one file of blobs/sha256 (opened as store.h says: never through a
 * symlink); FS_GONE when it vanished since it was listed. */
static fstate hash_file(verifier *v, const char *want, int64_t *size_out, char *buf, uint64_t *done,
                        uint64_t total)
{
    al_error *e = NULL;
    _cleanup_close_ int fd = al_store_blob_open(v->store, want, NULL, &e);
    if (fd < 0) {
        bool gone = fd == AL_E_NOT_FOUND;
        if (!gone)
            verr(v, "io", "%s", e->msg);
        al_error_free(e);
        return gone ? FS_GONE : FS_UNREADABLE;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    al_hasher *h = al_hasher_new();
    ssize_t n;
    for (;;) {
        n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        al_hasher_update(h, buf, (size_t)n);
        *done += (uint64_t)n;
        if (v->progress != NULL)
            v->progress(v->progress_ud, *done, total);
    }
    if (n < 0) {
        verr(v, "io", "read blobs/sha256/%s: %s", al_digest_hex(want), strerror(errno));
        al_hasher_free(h);
        return FS_UNREADABLE;
    }
    *size_out = (int64_t)al_hasher_size(h);
    char got[AL_DIGEST_BUF];
    al_hasher_final(h, got);
    al_hasher_free(h);
    v->rep->blobs_hashed++;
    v->rep->bytes_hashed += (uint64_t)*size_out;
    if (strcmp(got, want) != 0) {
        verr(v, "corrupt", "blobs/sha256/%s: content hashes to %s", al_digest_hex(want), got);
        return FS_CORRUPT;
    }
    return FS_OK;
}

static void scan_blobs(verifier *v)
{
    char **top = NULL, **names = NULL;
    size_t n_top = 0, n = 0;
    int blobs_fd = al_store_blobs_fd(v->store);
    if (!list_dir(al_store_root_fd(v->store), "blobs", &top, &n_top)) {
        verr(v, "layout", "blobs/: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < n_top; i++)
        if (strcmp(top[i], "sha256") != 0)
            verr(v, "stray", "blobs/%s: not part of the layout (only blobs/sha256 is)", top[i]);
    al_strv_free(top, n_top);
    if (!list_dir(blobs_fd, ".", &names, &n)) {
        verr(v, "layout", "blobs/sha256/: %s", strerror(errno));
        return;
    }
    /* Sizes first, for progress over the whole run. */
    uint64_t total = 0, done = 0;
    bool *regular = al_xcalloc(n + 1, sizeof(*regular));
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (fstatat(blobs_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                verr(v, "io", "blobs/sha256/%s: %s", names[i], strerror(errno));
            continue;
        }
        if (!hex_name(names[i])) {
            verr(v, "stray", "blobs/sha256/%s: not named by a sha256 digest", names[i]);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            verr(v, "stray", "blobs/sha256/%s: not a regular file", names[i]);
            continue;
        }
        regular[i] = true;
        total += (uint64_t)st.st_size;
    }
    _cleanup_free_ char *buf = al_xmalloc(READ_CHUNK);
    v->files = al_xcalloc(n + 1, sizeof(*v->files));
    for (size_t i = 0; i < n; i++) {
        if (!regular[i])
            continue;
        bfile *f = &v->files[v->n_files];
        snprintf(f->digest, sizeof(f->digest), "sha256:%s", names[i]);
        f->state = hash_file(v, f->digest, &f->size, buf, &done, total);
        if (f->state != FS_GONE)
            v->n_files++;
    }
    free(regular);
    al_strv_free(names, n);
}

static const bfile *find_file(const verifier *v, const char *digest)
{
    size_t lo = 0, hi = v->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->files[mid].digest, digest);
        if (c == 0)
            return &v->files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Files against blobs rows. A disagreement is confirmed with a fresh
 * read (autocommit: the newest committed state) before it is reported. */
static int check_files_vs_rows(verifier *v, al_error **err)
{
    const al_db_snapshot *s = &v->snap;
    for (size_t i = 0; i < v->n_files; i++) {
        const bfile *f = &v->files[i];
        const al_db_blob *b = al_db_snapshot_blob(s, f->digest);
        if (b == NULL) {
            bool found = false;
            int64_t size = 0;
            if (al_db_blob_get(v->db, f->digest, &found, &size, err) < 0)
                return al_error_wrap(err, "verify");
            /* A fetch writes a blob's row with the group commit after
             * the file's rename (DESIGN.md, "Crash rules"), so while one
             * runs a file may briefly have none. */
            if (!found && v->rep->writer_active)
                vinfo(v, "unindexed",
                      "blobs/sha256/%s (%lld bytes) has no blobs row yet (airlock-fetch is "
                      "running: it adds the row with its next group commit)",
                      al_digest_hex(f->digest), (long long)f->size);
            else if (!found)
                /* Not an error: the file was checked against its name
                 * above, and a fetch or prune cut short between its file
                 * and database steps leaves exactly this. The next prune
                 * removes it; the next fetch that needs it adds the row. */
                vinfo(v, "unindexed",
                      "blobs/sha256/%s (%lld bytes) has no blobs row (unreferenced; the next "
                      "airlock-fetch --prune removes it)",
                      al_digest_hex(f->digest), (long long)f->size);
            continue;
        }
        if (f->state == FS_OK && b->size != f->size)
            verr(v, "size", "blobs/sha256/%s is %lld bytes, its blobs row says %lld",
                 al_digest_hex(f->digest), (long long)f->size, (long long)b->size);
    }
    for (size_t i = 0; i < s->n_blobs; i++) {
        const al_db_blob *b = &s->blobs[i];
        if (!al_digest_valid(b->digest) || find_file(v, b->digest) != NULL)
            continue;
        bool found = false;
        if (al_db_blob_get(v->db, b->digest, &found, NULL, err) < 0)
            return al_error_wrap(err, "verify");
        if (found && !al_store_has_blob(v->store, b->digest, NULL))
            verr(v, "missing", "%s (%lld bytes, %s) has a blobs row but no file blobs/sha256/%s",
                 b->digest, (long long)b->size, b->media_type ? b->media_type : "?",
                 al_digest_hex(b->digest));
    }
    return 0;
}

/* Tags --------------------------------------------------------------- */

typedef struct damage {
    char **items; /* "sha256:… (no file)" */
    size_t n;
} damage;

static void damage_add(damage *d, const char *digest, const char *why)
{
    for (size_t i = 0; i < d->n; i++)
        if (strncmp(d->items[i], digest, AL_DIGEST_LEN) == 0)
            return;
    d->items = al_xrealloc(d->items, (d->n + 1) * sizeof(*d->items));
    d->items[d->n++] = al_xasprintf("%s (%s)", digest, why);
}

/* Why the blob is not usable, or NULL when it is. want_size < 0: any. */
static const char *blob_trouble(const verifier *v, const char *digest, int64_t want_size)
{
    const al_db_blob *b = al_db_snapshot_blob(&v->snap, digest);
    const bfile *f = find_file(v, digest);
    if (f == NULL)
        return b == NULL ? "no file, no blobs row" : "no file";
    if (f->state == FS_CORRUPT)
        return "corrupt";
    if (f->state != FS_OK)
        return "unreadable";
    if (b == NULL)
        return "no blobs row";
    if (b->size != f->size || (want_size >= 0 && want_size != f->size))
        return "wrong size";
    return NULL;
}

static bool has_edge(const al_db_snapshot *s, const char *parent, al_edge_kind kind,
                     const char *child)
{
    size_t ne = 0;
    const al_graph_edge *e = al_db_snapshot_children(s, parent, &ne);
    for (size_t i = 0; i < ne; i++)
        if (e[i].kind == kind && strcmp(e[i].child, child) == 0)
            return true;
    return false;
}

/* One tag's graph walked over the blobs themselves (common/graph.h): what
 * export would read, by the rules fetch and export follow. */
typedef struct tag_walk {
    verifier *v;
    const al_closure *c; /* the tag's graph as its rows record it */
    damage *d;
    bool *reported; /* per blob row: a problem about it was reported (once for every tag) */
} tag_walk;

/* Only what the tag's rows name is its graph: an index may list platforms
 * that were not fetched, and other tags' blobs may sit in the store. */
static bool in_graph(const tag_walk *t, const char *digest)
{
    long bi = al_db_snapshot_blob_index(&t->v->snap, digest);
    return bi >= 0 && al_closure_has(t->c, bi);
}

static bool first_report(const tag_walk *t, const char *digest)
{
    long bi = al_db_snapshot_blob_index(&t->v->snap, digest);
    if (bi < 0 || t->reported[bi])
        return false;
    t->reported[bi] = true;
    return true;
}

/* An image manifest's own descriptors: its config and layers must be
 * there with the sizes it gives, whatever the edges say. */
static void check_image_manifest(tag_walk *t, const al_graph_node *n)
{
    verifier *v = t->v;
    const al_manifest *m = n->m;
    const char *why = blob_trouble(v, m->config.digest, m->config.size);
    if (why != NULL)
        damage_add(t->d, m->config.digest, why);
    bool edges_ok = has_edge(&v->snap, n->digest, AL_EDGE_CONFIG, m->config.digest);
    for (size_t i = 0; i < m->n_layers; i++) {
        const al_descriptor *l = &m->layers[i];
        if ((why = blob_trouble(v, l->digest, l->size)) != NULL)
            damage_add(t->d, l->digest, why);
        edges_ok = edges_ok && has_edge(&v->snap, n->digest, AL_EDGE_LAYER, l->digest);
    }
    if (!edges_ok && first_report(t, n->digest))
        verr(v, "database", "manifest %s: its edges rows do not list every blob it references",
             n->digest);
}

static int tag_visit(void *ud, const al_graph_node *n, al_error **err)
{
    tag_walk *t = ud;
    if (!in_graph(t, n->digest))
        return 0;
    if (n->state == AL_GRAPH_VISITED && n->kind == AL_GRAPH_IMAGE) {
        check_image_manifest(t, n);
        return 0;
    }
    if (n->state != AL_GRAPH_FAILED)
        return 0;
    /* A file that is absent, unreadable or does not hash to its name is
     * already a problem of its own (missing, io, corrupt). What is left is
     * content that hashes right but that export could not use: a body that
     * does not parse or is not what its descriptor says, a config that is
     * not an image config, an index nested too deep. */
    if (n->error->code == AL_E_NOT_FOUND || n->error->code == AL_E_DIGEST ||
        n->error->code == AL_E_IO)
        return 0;
    if (first_report(t, n->error_digest))
        verr(t->v, "corrupt", "%s", n->error->msg);
    damage_add(t->d, n->error_digest, "refused by the graph rules");
    return 0;
}

static void check_tags(verifier *v)
{
    const al_db_snapshot *s = &v->snap;
    bool *reported = al_xcalloc(s->n_blobs + 1, sizeof(*reported));
    al_graph_source src;
    al_graph_store_source(&src, v->store);
    al_graph_walk_opts o = {.configs = true};
    for (size_t t = 0; t < s->n_tags; t++) {
        const al_tag *tag = &s->tags[t];
        if (!al_digest_valid(tag->digest))
            continue;
        al_closure c;
        al_closure_compute(&c, s, tag->digest);
        damage d = {0};
        for (size_t i = 0; i < c.n_missing; i++)
            damage_add(&d, c.missing[i],
                       al_store_has_blob(v->store, c.missing[i], NULL) ? "no blobs row"
                                                                       : "no file, no blobs row");
        for (size_t i = 0; i < c.n; i++) {
            const char *digest = s->blobs[c.blobs[i]].digest;
            const char *why = blob_trouble(v, digest, -1);
            if (why != NULL)
                damage_add(&d, digest, why);
        }
        tag_walk tw = {.v = v, .c = &c, .d = &d, .reported = reported};
        al_descriptor root = {.media_type = tag->media_type, .size = -1};
        snprintf(root.digest, sizeof(root.digest), "%s", tag->digest);
        al_graph_walk(&src, &root, &o, tag_visit, &tw, NULL);
        if (d.n > 0) {
            char *list = al_xstrdup("");
            for (size_t i = 0; i < d.n && i < MAX_NAMED; i++) {
                char *n = al_xasprintf("%s%s%s", list, i ? ", " : "", d.items[i]);
                free(list);
                list = n;
            }
            verr(v, "incomplete", "%s: %zu blob%s of its graph %s unusable: %s%s", tag->full_name,
                 d.n, d.n == 1 ? "" : "s", d.n == 1 ? "is" : "are", list,
                 d.n > MAX_NAMED ? ", ..." : "");
            free(list);
        }
        al_strv_free(d.items, d.n);
        al_closure_dispose(&c);
    }
    free(reported);
}

/* index.json --------------------------------------------------------- */

static void index_problem(verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void index_problem(verifier *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    if (v->rep->writer_active)
        vinfo(v, "index",
              "index.json: %s (airlock-fetch is running: it rewrites index.json when its run ends)",
              msg);
    else
        verr(v, "index", "index.json: %s", msg);
}

/* index.json behind the tags: a fetch rewrites it once, when its run
 * ends, so a fetch killed before that leaves exactly this (a new tag
 * without its entry, or a moved tag's entry still on a previous, complete
 * graph).
 * The layout is still valid and the next airlock-fetch rewrites the file,
 * so it is a note, not an error. */
static void index_behind(verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void index_behind(verifier *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    vinfo(v, "index",
          "index.json: %s (it lags the tags: a fetch was cut short before rewriting it; the next "
          "airlock-fetch rewrites it)",
          msg);
}

static const char *json_str_at(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void check_index(verifier *v)
{
    const al_db_snapshot *s = &v->snap;
    json_t *root = load_top_json(v, "index.json", INDEX_JSON_MAX, "layout");
    if (root == NULL)
        return;
    json_t *list = json_object_get(root, "manifests");
    if (!json_is_array(list)) {
        verr(v, "layout", "index.json: no \"manifests\" array");
        json_decref(root);
        return;
    }
    bool *listed = al_xcalloc(s->n_tags + 1, sizeof(*listed));
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_t *ann = json_object_get(e, "annotations");
        const char *name = json_str_at(ann, "io.containerd.image.name");
        const char *ref_name = json_str_at(ann, "org.opencontainers.image.ref.name");
        const char *digest = json_str_at(e, "digest");
        const char *mt = json_str_at(e, "mediaType");
        json_t *jsize = json_object_get(e, "size");
        if (name == NULL)
            name = ref_name;
        if (name == NULL) {
            index_problem(v, "entry %zu (%s) has no io.containerd.image.name annotation", i,
                          digest ? digest : "no digest");
            continue;
        }
        const al_tag *t = NULL;
        size_t ti = 0;
        for (ti = 0; ti < s->n_tags && t == NULL; ti++)
            if (strcmp(s->tags[ti].full_name, name) == 0)
                t = &s->tags[ti];
        if (t == NULL) {
            index_problem(v, "extra entry %s (%s): no such tag in airlock.db", name,
                          digest ? digest : "no digest");
            continue;
        }
        ti--;
        if (listed[ti]) {
            index_problem(v, "%s is listed more than once", name);
            continue;
        }
        listed[ti] = true;
        if (digest != NULL && strcmp(digest, t->digest) != 0 && !v->rep->writer_active &&
            al_db_snapshot_blob(s, digest) != NULL) {
            /* The previous digest of a moved tag: its graph is still here. */
            index_behind(v, "%s: digest %s, the tag has moved to %s", name, digest, t->digest);
            continue;
        }
        if (digest == NULL || strcmp(digest, t->digest) != 0)
            index_problem(v, "%s: digest %s, the tag says %s", name, digest ? digest : "missing",
                          t->digest);
        if (!json_is_integer(jsize) || json_integer_value(jsize) != t->size)
            index_problem(v, "%s: size %lld, the tag says %lld", name,
                          json_is_integer(jsize) ? (long long)json_integer_value(jsize) : -1LL,
                          (long long)t->size);
        if (mt == NULL || t->media_type == NULL || strcmp(mt, t->media_type) != 0)
            index_problem(v, "%s: mediaType %s, the tag says %s", name, mt ? mt : "missing",
                          t->media_type ? t->media_type : "nothing");
        const char *cname = json_str_at(ann, "io.containerd.image.name");
        if (cname == NULL || strcmp(cname, t->full_name) != 0)
            index_problem(v, "%s: annotation io.containerd.image.name is %s", name,
                          cname ? cname : "missing");
        if (ref_name == NULL || strcmp(ref_name, t->full_name) != 0)
            index_problem(v, "%s: annotation org.opencontainers.image.ref.name is %s", name,
                          ref_name ? ref_name : "missing");
    }
    for (size_t t = 0; t < s->n_tags; t++)
        if (!listed[t]) {
            if (v->rep->writer_active)
                index_problem(v, "tag %s (%s) has no entry", s->tags[t].full_name,
                              s->tags[t].digest);
            else
                index_behind(v, "tag %s (%s) has no entry", s->tags[t].full_name,
                             s->tags[t].digest);
        }
    free(listed);
    json_decref(root);
}

/* tmp/ --------------------------------------------------------------- */

/* "import-<bundle id>": where airlock-fetch --import stages a bundle. */
static bool import_dir(const char *name)
{
    return strncmp(name, "import-", 7) == 0 && al_bundle_id_valid(name + 7);
}

/* An import's staging directory: what it holds is verified (each file was
 * hashed before it got its name), and a rerun of the import uses it. */
static void note_import(verifier *v, int tmp_fd, const char *name)
{
    char **names = NULL;
    size_t n = 0;
    uint64_t bytes = 0;
    _cleanup_close_ int fd = openat(tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && al_dir_names(fd, ".", &names, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct stat st;
            if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                bytes += (uint64_t)st.st_size;
        }
        al_strv_free(names, n);
    }
    char sb[32];
    al_format_bytes(sb, sizeof(sb), bytes);
    if (v->rep->writer_active)
        vinfo(v, "tmp", "tmp/%s (%zu files, %s): in use by the running airlock-fetch --import",
              name, n, sb);
    else
        vinfo(v, "tmp",
              "tmp/%s (%zu files, %s): an interrupted import of bundle %s (its files are "
              "verified): airlock-fetch --import with that bundle completes it without reading "
              "them again; nothing of it is visible in the store until then",
              name, n, sb, name + 7);
}

static void check_tmp(verifier *v)
{
    int tmp_fd = al_store_tmp_fd(v->store);
    char **names = NULL;
    size_t n = 0;
    if (!list_dir(tmp_fd, ".", &names, &n))
        return; /* a fresh or read-only copy may have none; nothing reads it */
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (fstatat(tmp_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        char sb[32];
        al_format_bytes(sb, sizeof(sb), (uint64_t)st.st_size);
        if (S_ISDIR(st.st_mode) && import_dir(names[i]))
            note_import(v, tmp_fd, names[i]);
        else if (S_ISDIR(st.st_mode))
            vinfo(v, "tmp", "tmp/%s (a directory): not made by airlock; --prune leaves it alone",
                  names[i]);
        else if (v->rep->writer_active)
            vinfo(v, "tmp", "tmp/%s (%s): in use by the running airlock-fetch", names[i], sb);
        else if (strncmp(names[i], "upload-", 7) == 0 && strchr(names[i], '.') == NULL)
            vinfo(v, "tmp",
                  "tmp/%s (%s): an airlock-push upload that did not finish; the next push of "
                  "that blob to that registry resumes it (--prune clears it after a week)",
                  names[i], sb);
        else if (strncmp(names[i], "partial-", 8) == 0)
            vinfo(v, "tmp",
                  "tmp/%s (%s): a partial download; the next airlock-fetch resumes it (--prune "
                  "clears it once it is a day old and unwanted)",
                  names[i], sb);
        else
            vinfo(v, "tmp",
                  "tmp/%s (%s): left over by an interrupted airlock-fetch; the next --prune "
                  "removes it",
                  names[i], sb);
    }
    al_strv_free(names, n);
}

int al_verify_store(al_verify_report *out, al_store *store, al_db *db,
                    al_verify_progress_fn progress, void *progress_ud, al_error **err)
{
    memset(out, 0, sizeof(*out));
    verifier v = {
        .rep = out,
        .store = store,
        .db = db,
        .dir = al_store_dir(store),
        .progress = progress,
        .progress_ud = progress_ud,
    };
    out->writer_active = writer_active(store);

    char **msgs = NULL;
    size_t n_msgs = 0;
    int r = al_db_quick_check(db, &msgs, &n_msgs, err);
    if (r == 0) {
        check_database(&v, msgs, n_msgs);
        al_db_messages_free(msgs, n_msgs);
        /* The snapshot before the files: see verify.h. */
        r = al_db_snapshot_load(db, &v.snap, err);
    }
    if (r == 0) {
        out->n_tags = v.snap.n_tags;
        check_layout(&v);
        check_references(&v);
        scan_blobs(&v);
        /* A fetch that started while the files were hashed counts too. */
        out->writer_active = out->writer_active || writer_active(store);
        r = check_files_vs_rows(&v, err);
    }
    if (r == 0) {
        check_tags(&v);
        check_index(&v);
        check_tmp(&v);
    }
    al_db_snapshot_dispose(&v.snap);
    free(v.files);
    if (r < 0)
        al_verify_report_dispose(out);
    return r;
}
