/* --since FILE: the digests the far side holds, from whichever kind of
 * file it is (since.h). */
#include "since.h"
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

static void add_named(al_since *s, const char *ref_text, const char *digest)
{
    al_ref *r = NULL;
    if (ref_text != NULL && al_ref_parse(&r, ref_text, NULL) == 0) {
        _cleanup_free_ char *k = key_of(r);
        add(s, k, digest);
    } else {
        add(s, NULL, digest);
    }
    al_ref_free(r);
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
    int r;
    if (tool != NULL && strcmp(tool, "airlock-export") == 0 &&
        json_is_array(json_object_get(root, "outputs"))) {
        s->kind = "report";
        r = read_report(s, root, err);
    } else if (json_is_array(json_object_get(root, "tags"))) {
        s->kind = "inventory";
        r = read_inventory(s, root, err);
    } else {
        r = al_error_set(err, AL_E_USAGE, 0,
                         "--since %s: a JSON file airlock does not know (expected an "
                         "airlock-export --json report or an airlock-export --list --json "
                         "inventory)",
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
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return al_error_set(err, AL_E_USAGE, n < 0 ? errno : 0, "--since %s: read", path);
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int al_since_load(al_since *out, const char *path, al_error **err)
{
    memset(out, 0, sizeof(*out));
    out->path = al_xstrdup(path);
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
