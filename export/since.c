/* --since FILE: the digests the far side holds, from whichever kind of
 * file it is (since.h). */
#include "since.h"
#include "../common/bundle-read.h"
#include "../common/ref.h"
#include "../common/reflist.h"
#include "../common/sanitize.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void add(al_since *s, const char *name, const char *digest)
{
    if (!al_digest_valid(digest))
        return;
    if (s->n % 64 == 0)
        s->entries = al_xrealloc(s->entries, (s->n + 64) * sizeof(*s->entries));
    al_since_entry *e = &s->entries[s->n++];
    e->name = name ? al_xstrdup(name) : NULL;
    snprintf(e->digest, sizeof(e->digest), "%s", digest);
}

/* name:tag of a ref (no digest): the key images are matched on. */
static char *key_of(const al_ref *r)
{
    _cleanup_free_ char *name = al_ref_name(r);
    return r->tag ? al_xasprintf("%s:%s", name, r->tag) : al_xstrdup(name);
}

char *al_since_key(const char *ref_text)
{
    al_ref *r = NULL;
    if (ref_text == NULL || al_ref_parse(&r, ref_text, NULL) < 0)
        return NULL;
    char *k = key_of(r);
    al_ref_free(r);
    return k;
}

static void add_named(al_since *s, const char *ref_text, const char *digest)
{
    _cleanup_free_ char *k = al_since_key(ref_text);
    add(s, k, digest);
}

/* --- readers ------------------------------------------------------------------ */

/* airlock-export --json: exported images, and those its --since skipped. */
static int read_report(al_since *s, json_t *root, al_error **err)
{
    json_t *images = json_object_get(root, "images"), *im;
    size_t i;
    json_array_foreach(images, i, im)
    {
        const char *st = json_string_value(json_object_get(im, "status"));
        if (st == NULL || strcmp(st, "exported") != 0)
            continue;
        const char *name = json_string_value(json_object_get(im, "name"));
        add_named(s, name, json_string_value(json_object_get(im, "root_digest")));
        add_named(s, name, json_string_value(json_object_get(im, "manifest_digest")));
    }
    json_t *skipped = json_object_get(root, "skipped");
    json_array_foreach(skipped, i, im)
    {
        const char *why = json_string_value(json_object_get(im, "why"));
        if (why == NULL || strcmp(why, "since") != 0)
            continue;
        const char *name = json_string_value(json_object_get(im, "name"));
        add_named(s, name, json_string_value(json_object_get(im, "root_digest")));
        add_named(s, name, json_string_value(json_object_get(im, "manifest_digest")));
    }
    (void)err;
    return 0;
}

/* airlock-export --list --json on the far store: its complete tags. */
static int read_inventory(al_since *s, json_t *root, al_error **err)
{
    json_t *tags = json_object_get(root, "tags"), *t;
    size_t i;
    json_array_foreach(tags, i, t)
    {
        if (json_is_false(json_object_get(t, "complete")))
            continue;
        add_named(s, json_string_value(json_object_get(t, "name")),
                  json_string_value(json_object_get(t, "digest")));
    }
    (void)err;
    return 0;
}

/* A bundle's manifest: what the far side holds once it is applied. */
static int read_bundle(al_since *s, const char *buf, size_t len, al_error **err)
{
    al_bundle_manifest m;
    int r = al_bundle_manifest_parse(&m, buf, len, err);
    if (r < 0)
        return al_error_wrap(err, "--since %s", s->path);
    s->kind = "bundle";
    memcpy(s->bundle_id, m.id, sizeof(s->bundle_id));
    memcpy(s->source_store, m.source_store, sizeof(s->source_store));
    for (size_t i = 0; i < m.n_holds; i++)
        add(s, m.holds[i].name, m.holds[i].digest);
    al_bundle_manifest_dispose(&m);
    return 0;
}

/* A lock file, or any list whose every ref is pinned by digest. */
static int read_lock(al_since *s, const char *buf, size_t len, al_error **err)
{
    al_reflist l;
    al_reflist_init(&l);
    al_reflist_add_buffer(&l, s->path, buf, len);
    int r = 0;
    if (l.n_problems > 0)
        r = al_error_set(err, AL_E_USAGE, 0, "--since: %s", l.problems[0]);
    for (size_t i = 0; r == 0 && i < l.n; i++) {
        const al_reflist_entry *e = &l.items[i];
        if (e->ref->digest == NULL) {
            r = al_error_set(err, AL_E_USAGE, 0,
                             "--since: %s: \"%s\" has no digest: --since needs what the far side "
                             "holds (airlock-fetch --lock writes pinned refs)",
                             e->origin, e->text);
            break;
        }
        _cleanup_free_ char *k = key_of(e->ref);
        add(s, k, e->ref->digest);
    }
    if (r == 0 && l.n == 0)
        r = al_error_set(err, AL_E_USAGE, 0, "--since %s: no refs in it", s->path);
    al_reflist_dispose(&l);
    return r;
}

/* JSON: which document it is, by what it says it is. */
static int read_json(al_since *s, const char *buf, size_t len, al_error **err)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, 0, &je);
    if (root == NULL) {
        _cleanup_free_ char *why = al_sanitize(je.text, 200);
        return al_error_set(err, AL_E_USAGE, 0, "--since %s: not valid JSON: line %d: %s", s->path,
                            je.line, why);
    }
    const char *tool = json_string_value(json_object_get(root, "tool"));
    const char *command = json_string_value(json_object_get(root, "command"));
    int r;
    if (json_object_get(root, "bundle_format") != NULL) {
        r = read_bundle(s, buf, len, err);
    } else if (command != NULL && strcmp(command, "bundle") == 0) {
        r = al_error_set(err, AL_E_USAGE, 0,
                         "--since %s: the run report of an airlock-export --bundle; give the "
                         "bundle itself or the manifest written beside it (OUT.json)",
                         s->path);
    } else if (tool != NULL && strcmp(tool, "airlock-export") == 0 &&
               json_is_array(json_object_get(root, "outputs"))) {
        s->kind = "report";
        r = read_report(s, root, err);
    } else if (json_is_array(json_object_get(root, "tags"))) {
        s->kind = "inventory";
        r = read_inventory(s, root, err);
    } else {
        r = al_error_set(err, AL_E_USAGE, 0,
                         "--since %s: a JSON file airlock does not know (expected a bundle "
                         "manifest, an airlock-export --json report or an airlock-export "
                         "--list --json inventory)",
                         s->path);
    }
    json_decref(root);
    return r;
}

static int read_file(char **out, size_t *len, const char *path, al_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return al_error_set(err, AL_E_USAGE, errno, "--since %s", path);
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)AL_SINCE_MAX)
        return al_error_set(err, AL_E_USAGE, 0, "--since %s: not a regular file of at most %u MiB",
                            path, AL_SINCE_MAX >> 20);
    char *buf = al_xmalloc((size_t)st.st_size + 1);
    ssize_t n = al_read_all(fd, buf, (size_t)st.st_size);
    if (n != (ssize_t)st.st_size) {
        free(buf);
        return al_error_set(err, AL_E_USAGE, n < 0 ? (int)-n : 0, "--since %s: read", path);
    }
    size_t got = (size_t)n;
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

/* A tar or zstd stream: a bundle (or one of its volumes), whatever it is
 * named. */
static bool is_archive(const char *path)
{
    unsigned char b[262] = {0};
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, b, sizeof(b), 0) : -1;
    return (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) ||
           (n == (ssize_t)sizeof(b) && memcmp(b + 257, "ustar", 5) == 0);
}

/* The manifest of a bundle file: its airlock-bundle.json member. */
static int read_bundle_file(al_since *s, al_error **err)
{
    al_bundle_reader *r = NULL;
    int res = al_bundle_open(&r, s->path, err);
    if (res < 0)
        return al_error_wrap(err, "--since");
    size_t len = 0;
    const char *text = al_bundle_reader_manifest(r, &len);
    const al_bundle_volume *v = al_bundle_reader_volume(r);
    if (text == NULL)
        res = al_error_set(err, AL_E_USAGE, 0,
                           "--since %s: volume %u of %u of a bundle, which carries no manifest: "
                           "give volume 1, or the manifest written beside the bundle (OUT.json)",
                           s->path, v != NULL ? v->volume : 0, v != NULL ? v->volumes : 0);
    else
        res = read_bundle(s, text, len, err);
    al_bundle_close(r);
    return res;
}

int al_since_load(al_since *out, const char *path, al_error **err)
{
    memset(out, 0, sizeof(*out));
    out->path = al_xstrdup(path);
    if (is_archive(path)) {
        int r = read_bundle_file(out, err);
        if (r < 0)
            al_since_dispose(out);
        return r;
    }
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = read_file(&buf, &len, path, err);
    if (r < 0)
        return r;
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", buf[i]) != NULL)
        i++;
    if (i < len && buf[i] == '{') {
        r = read_json(out, buf, len, err);
    } else {
        out->kind = "lock";
        r = read_lock(out, buf, len, err);
    }
    if (r < 0)
        al_since_dispose(out);
    return r;
}

void al_since_dispose(al_since *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->entries[i].name);
    free(s->entries);
    free(s->path);
    memset(s, 0, sizeof(*s));
}

bool al_since_holds(const al_since *s, const char *name, const char *digest)
{
    if (digest == NULL)
        return false;
    for (size_t i = 0; i < s->n; i++) {
        const al_since_entry *e = &s->entries[i];
        if (strcmp(e->digest, digest) == 0 && (e->name == NULL || strcmp(e->name, name) == 0))
            return true;
    }
    return false;
}
