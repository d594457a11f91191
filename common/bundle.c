/* The bundle manifest and volume header: JSON in and out, the checksum,
 * member and volume names (see bundle.h). */
#include "bundle.h"
#include "jsondoc.h"
#include "ref.h"
#include "sanitize.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define BLOB_PREFIX "blobs/sha256/"
/* A JSON integer above 2^53 is not exact in most readers. */
#define MAX_SIZE ((uint64_t)1 << 53)
/* Bounds on lists, far above any real store, so that a hostile manifest
 * cannot ask for absurd allocations before its size cap does. */
#define MAX_ITEMS 10000000u
#define MAX_PARTS 1000000u
#define MAX_PLATFORMS 1024u
#define MAX_TEXT 4096u

/* --- small helpers ------------------------------------------------------- */

bool al_bundle_id_valid(const char *s)
{
    if (s == NULL || strlen(s) != AL_BUNDLE_ID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

void al_bundle_id_new(char out[AL_BUNDLE_ID_BUF])
{
    unsigned char rnd[AL_BUNDLE_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            abort(); /* no randomness at all: nothing sensible to do */
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

bool al_bundle_member_digest(const char *name, char out[AL_DIGEST_BUF])
{
    size_t pre = strlen(BLOB_PREFIX);
    if (strncmp(name, BLOB_PREFIX, pre) != 0)
        return false;
    char d[AL_DIGEST_BUF + 8];
    if (strlen(name + pre) != AL_DIGEST_HEX_LEN)
        return false;
    snprintf(d, sizeof(d), "sha256:%s", name + pre);
    if (!al_digest_valid(d))
        return false;
    memcpy(out, d, AL_DIGEST_BUF);
    return true;
}

char *al_bundle_member_name(const char *digest)
{
    return al_xasprintf(BLOB_PREFIX "%s", al_digest_hex(digest));
}

char *al_bundle_volume_path(const char *base, unsigned n)
{
    return al_xasprintf("%s.%03u", base, n);
}

bool al_bundle_volume_split(const char *path, char **base_out, unsigned *n_out)
{
    const char *dot = strrchr(path, '.');
    if (dot == NULL || dot == path || strlen(dot + 1) < 3 || strlen(dot + 1) > 9)
        return false;
    unsigned long n = 0;
    for (const char *p = dot + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (unsigned long)(*p - '0');
    }
    if (n == 0 || n > AL_BUNDLE_MAX_VOLUMES)
        return false;
    *base_out = al_xstrndup(path, (size_t)(dot - path));
    *n_out = (unsigned)n;
    return true;
}

/* --- checksum ------------------------------------------------------------ */

void al_bundle_checksum(const al_bundle_manifest *m, char out[AL_DIGEST_BUF])
{
    al_hasher *h = al_hasher_new();
    char line[AL_DIGEST_BUF + 32];
    for (size_t i = 0; i < m->n_blobs; i++) {
        const al_bundle_blob *b = &m->blobs[i];
        int n = snprintf(line, sizeof(line), "%s %llu", b->digest, (unsigned long long)b->size);
        al_hasher_update(h, line, (size_t)n);
        for (size_t k = 0; k < b->n_parts; k++) {
            n = snprintf(line, sizeof(line), " %s %llu", b->parts[k].digest,
                         (unsigned long long)b->parts[k].size);
            al_hasher_update(h, line, (size_t)n);
        }
        al_hasher_update(h, "\n", 1);
    }
    al_hasher_final(h, out);
    al_hasher_free(h);
}

/* --- writing ------------------------------------------------------------- */

static json_t *part_json(const al_bundle_part *p)
{
    return json_pack("{s:s, s:I}", "digest", p->digest, "size", (json_int_t)p->size);
}

static json_t *tag_json(const al_bundle_tag *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", al_json_str_or_null(t->name));
    json_object_set_new(o, "digest", json_string(t->digest));
    json_object_set_new(o, "media_type", al_json_str_or_null(t->media_type));
    json_object_set_new(o, "size", json_integer((json_int_t)t->size));
    json_t *pl = json_array();
    for (size_t i = 0; i < t->n_platforms; i++)
        json_array_append_new(pl, al_json_str_or_null(t->platforms[i]));
    json_object_set_new(o, "platforms", pl);
    json_t *hist = json_array();
    for (size_t i = 0; i < t->n_history; i++) {
        const al_bundle_history *h = &t->history[i];
        json_t *e = json_object();
        json_object_set_new(e, "digest", json_string(h->digest));
        json_object_set_new(e, "old_digest", al_json_str_or_null(h->old_digest));
        json_object_set_new(e, "at", al_json_utc(h->at));
        json_array_append_new(hist, e);
    }
    json_object_set_new(o, "history", hist);
    return o;
}

static json_t *blob_json(const al_bundle_blob *b)
{
    json_t *o = json_pack("{s:s, s:I}", "digest", b->digest, "size", (json_int_t)b->size);
    if (b->n_parts > 0) {
        json_t *parts = json_array();
        for (size_t k = 0; k < b->n_parts; k++)
            json_array_append_new(parts, part_json(&b->parts[k]));
        json_object_set_new(o, "parts", parts);
    }
    return o;
}

static char *dump(json_t *root, size_t *len_out)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
        abort(); /* only on allocation failure: every string was checked */
    char *out = al_xasprintf("%s\n", text);
    free(text);
    if (len_out != NULL)
        *len_out = strlen(out);
    return out;
}

char *al_bundle_manifest_json(const al_bundle_manifest *m, size_t *len_out)
{
    json_t *o = json_object();
    json_object_set_new(o, "bundle_format", json_integer(m->format));
    json_object_set_new(o, "tool", json_string("airlock-export"));
    json_object_set_new(o, "version", al_json_str_or_null(m->version));
    json_object_set_new(o, "bundle_id", json_string(m->id));
    json_object_set_new(o, "source_store", json_string(m->source_store));
    json_object_set_new(o, "base_bundle", al_json_str_or_null(m->base));
    json_object_set_new(o, "since", al_json_str_or_null(m->since_kind));
    json_object_set_new(o, "created_at", al_json_utc(m->created_at));
    json_object_set_new(o, "volumes", json_integer(m->volumes));
    json_t *tags = json_array();
    for (size_t i = 0; i < m->n_tags; i++)
        json_array_append_new(tags, tag_json(&m->tags[i]));
    json_object_set_new(o, "tags", tags);
    json_t *blobs = json_array();
    for (size_t i = 0; i < m->n_blobs; i++)
        json_array_append_new(blobs, blob_json(&m->blobs[i]));
    json_object_set_new(o, "blobs", blobs);
    json_object_set_new(o, "blobs_checksum", json_string(m->checksum));
    json_t *om = json_array();
    for (size_t i = 0; i < m->n_omitted; i++)
        json_array_append_new(om, part_json(&m->omitted[i]));
    json_object_set_new(o, "omitted", om);
    json_t *holds = json_array();
    for (size_t i = 0; i < m->n_holds; i++)
        json_array_append_new(holds,
                              json_pack("{s:o, s:s}", "name", al_json_str_or_null(m->holds[i].name),
                                        "digest", m->holds[i].digest));
    json_object_set_new(o, "holds", holds);
    return dump(o, len_out);
}

char *al_bundle_volume_json(const al_bundle_volume *v, size_t *len_out)
{
    json_t *o = json_object();
    json_object_set_new(o, "bundle_format", json_integer(v->format));
    json_object_set_new(o, "bundle_id", json_string(v->bundle_id));
    json_object_set_new(o, "volume", json_integer(v->volume));
    json_object_set_new(o, "volumes", json_integer(v->volumes));
    json_object_set_new(o, "manifest_digest", al_json_str_or_null(v->manifest_digest));
    json_t *mem = json_array();
    for (size_t i = 0; i < v->n_members; i++)
        json_array_append_new(mem, part_json(&v->members[i]));
    json_object_set_new(o, "members", mem);
    return dump(o, len_out);
}

/* --- parsing ------------------------------------------------------------- */

/* Errors name the field: "tags[3].digest: ...". The field path is built
 * from printf arguments that are our own literals and indexes. */
static int bad(al_error **err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(al_error **err, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *why = al_xvasprintf(fmt, ap);
    va_end(ap);
    return al_error_set(err, AL_E_PARSE, 0, "%s: %s", field, why);
}

static json_t *field(json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

static int get_digest(json_t *o, const char *key, const char *where, char out[AL_DIGEST_BUF],
                      bool nullable, al_error **err)
{
    json_t *j = field(o, key);
    _cleanup_free_ char *f = al_xasprintf("%s%s%s", where, *where ? "." : "", key);
    if (nullable && (j == NULL || json_is_null(j))) {
        out[0] = '\0';
        return 0;
    }
    const char *s = json_string_value(j);
    if (s == NULL)
        return bad(err, f, "expected a digest string");
    if (!al_digest_valid(s)) {
        _cleanup_free_ char *shown = al_sanitize(s, 100);
        return bad(err, f, "\"%s\" is not a sha256 digest", shown);
    }
    memcpy(out, s, AL_DIGEST_BUF);
    return 0;
}

static int get_size(json_t *o, const char *key, const char *where, uint64_t *out, al_error **err)
{
    json_t *j = field(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < 0 ||
        (uint64_t)json_integer_value(j) > MAX_SIZE) {
        _cleanup_free_ char *f = al_xasprintf("%s.%s", where, key);
        return bad(err, f, "expected a size (an integer from 0 to 2^53)");
    }
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

/* A string of at most MAX_TEXT bytes (malloc'd into *out), or NULL when
 * nullable and absent. */
static int get_text(json_t *o, const char *key, const char *where, char **out, bool nullable,
                    al_error **err)
{
    json_t *j = field(o, key);
    *out = NULL;
    if (nullable && (j == NULL || json_is_null(j)))
        return 0;
    const char *s = json_string_value(j);
    if (s == NULL || strlen(s) == 0 || strlen(s) > MAX_TEXT || strlen(s) != json_string_length(j)) {
        _cleanup_free_ char *f = al_xasprintf("%s%s%s", where, *where ? "." : "", key);
        return bad(err, f, "expected a string of 1 to %u bytes", MAX_TEXT);
    }
    *out = al_xstrdup(s);
    return 0;
}

static int get_id(json_t *o, const char *key, char out[AL_BUNDLE_ID_BUF], bool nullable,
                  al_error **err)
{
    json_t *j = field(o, key);
    if (nullable && (j == NULL || json_is_null(j))) {
        out[0] = '\0';
        return 0;
    }
    const char *s = json_string_value(j);
    if (!al_bundle_id_valid(s))
        return bad(err, key, "expected %d lowercase hex digits", AL_BUNDLE_ID_LEN);
    memcpy(out, s, AL_BUNDLE_ID_BUF);
    return 0;
}

static int get_time(json_t *o, const char *key, const char *where, double *out, al_error **err)
{
    const char *s = json_string_value(field(o, key));
    if (s == NULL || !al_parse_utc(s, out)) {
        _cleanup_free_ char *f = al_xasprintf("%s%s%s", where, *where ? "." : "", key);
        return bad(err, f, "expected a UTC time (2025-05-01T02:00:00.000Z)");
    }
    return 0;
}

static int get_array(json_t *o, const char *key, size_t max, json_t **out, al_error **err)
{
    json_t *j = field(o, key);
    if (!json_is_array(j))
        return bad(err, key, "expected an array");
    if (json_array_size(j) > max)
        return bad(err, key, "more than %zu entries", max);
    *out = j;
    return 0;
}

/* "bundle_format": present, an integer, and not newer than ours. */
static int get_format(json_t *root, int *out, al_error **err)
{
    json_t *j = field(root, "bundle_format");
    if (!json_is_integer(j) || json_integer_value(j) < 1)
        return bad(err, "bundle_format", "expected a version number");
    if (json_integer_value(j) > AL_BUNDLE_FORMAT)
        return al_error_set(err, AL_E_UNSUPPORTED, 0,
                            "bundle format version %lld is newer than this airlock (%d): "
                            "upgrade airlock on this side",
                            (long long)json_integer_value(j), AL_BUNDLE_FORMAT);
    *out = (int)json_integer_value(j);
    return 0;
}

static int parse_part(json_t *j, const char *where, al_bundle_part *out, al_error **err)
{
    if (!json_is_object(j))
        return bad(err, where, "expected an object");
    int r = get_digest(j, "digest", where, out->digest, false, err);
    if (r == 0)
        r = get_size(j, "size", where, &out->size, err);
    return r;
}

static int parse_parts(json_t *j, const char *where, al_bundle_blob *b, al_error **err)
{
    json_t *parts = field(j, "parts");
    if (parts == NULL || json_is_null(parts))
        return 0;
    _cleanup_free_ char *f = al_xasprintf("%s.parts", where);
    if (!json_is_array(parts) || json_array_size(parts) < 2 || json_array_size(parts) > MAX_PARTS)
        return bad(err, f, "expected an array of 2 to %u parts", MAX_PARTS);
    b->n_parts = json_array_size(parts);
    b->parts = al_xcalloc(b->n_parts, sizeof(*b->parts));
    uint64_t sum = 0;
    for (size_t k = 0; k < b->n_parts; k++) {
        _cleanup_free_ char *pf = al_xasprintf("%s[%zu]", f, k);
        int r = parse_part(json_array_get(parts, k), pf, &b->parts[k], err);
        if (r < 0)
            return r;
        if (b->parts[k].size == 0)
            return bad(err, pf, "a part is never empty");
        sum += b->parts[k].size;
    }
    if (sum != b->size)
        return bad(err, f, "the parts add up to %llu bytes, the blob is %llu",
                   (unsigned long long)sum, (unsigned long long)b->size);
    return 0;
}

static int cmp_digest(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Each digest of the list (structs whose first member is the digest) once. */
static int check_unique(const void *items, size_t n, size_t stride, const char *what,
                        al_error **err)
{
    if (n < 2)
        return 0;
    char(*d)[AL_DIGEST_BUF] = al_xcalloc(n, AL_DIGEST_BUF);
    for (size_t i = 0; i < n; i++)
        memcpy(d[i], (const char *)items + i * stride, AL_DIGEST_BUF);
    qsort(d, n, AL_DIGEST_BUF, cmp_digest);
    int r = 0;
    for (size_t i = 1; i < n && r == 0; i++)
        if (strcmp(d[i - 1], d[i]) == 0)
            r = bad(err, what, "%s is listed twice", d[i]);
    free(d);
    return r;
}

static int parse_blobs(json_t *root, al_bundle_manifest *m, al_error **err)
{
    json_t *arr = NULL;
    int r = get_array(root, "blobs", MAX_ITEMS, &arr, err);
    if (r < 0)
        return r;
    m->n_blobs = json_array_size(arr);
    m->blobs = al_xcalloc(m->n_blobs + 1, sizeof(*m->blobs));
    for (size_t i = 0; i < m->n_blobs && r == 0; i++) {
        _cleanup_free_ char *w = al_xasprintf("blobs[%zu]", i);
        json_t *j = json_array_get(arr, i);
        al_bundle_blob *b = &m->blobs[i];
        r = json_is_object(j) ? 0 : bad(err, w, "expected an object");
        if (r == 0)
            r = get_digest(j, "digest", w, b->digest, false, err);
        if (r == 0)
            r = get_size(j, "size", w, &b->size, err);
        if (r == 0)
            r = parse_parts(j, w, b, err);
    }
    if (r == 0)
        r = check_unique(m->blobs, m->n_blobs, sizeof(*m->blobs), "blobs", err);
    return r;
}

static int parse_history(json_t *j, const char *where, al_bundle_tag *t, al_error **err)
{
    json_t *arr = field(j, "history");
    if (arr == NULL || json_is_null(arr))
        return 0;
    _cleanup_free_ char *f = al_xasprintf("%s.history", where);
    if (!json_is_array(arr) || json_array_size(arr) > 1000)
        return bad(err, f, "expected an array of at most 1000 entries");
    t->n_history = json_array_size(arr);
    t->history = al_xcalloc(t->n_history + 1, sizeof(*t->history));
    for (size_t i = 0; i < t->n_history; i++) {
        _cleanup_free_ char *w = al_xasprintf("%s[%zu]", f, i);
        json_t *e = json_array_get(arr, i);
        al_bundle_history *h = &t->history[i];
        int r = json_is_object(e) ? 0 : bad(err, w, "expected an object");
        if (r == 0)
            r = get_digest(e, "digest", w, h->digest, false, err);
        if (r == 0)
            r = get_digest(e, "old_digest", w, h->old_digest, true, err);
        if (r == 0)
            r = get_time(e, "at", w, &h->at, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_platforms(json_t *j, const char *where, al_bundle_tag *t, al_error **err)
{
    json_t *arr = field(j, "platforms");
    _cleanup_free_ char *f = al_xasprintf("%s.platforms", where);
    if (!json_is_array(arr) || json_array_size(arr) > MAX_PLATFORMS)
        return bad(err, f, "expected an array of at most %u platforms", MAX_PLATFORMS);
    t->n_platforms = json_array_size(arr);
    t->platforms = al_xcalloc(t->n_platforms + 1, sizeof(*t->platforms));
    for (size_t i = 0; i < t->n_platforms; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s == NULL || *s == '\0' || strlen(s) > 255)
            return bad(err, f, "entry %zu is not a platform name", i);
        t->platforms[i] = al_xstrdup(s);
    }
    return 0;
}

/* A tag's name must be a reference in the normal form the tags table
 * holds (al_ref_full of its parse): a name that would print otherwise, or
 * hold control bytes, never reaches the database. A name in holds may
 * also be a bare repository name (what --since keys a digest-only ref
 * by). */
static int check_name(const char *name, const char *where, bool bare_ok, al_error **err)
{
    al_ref *ref = NULL;
    al_error *e = NULL;
    int r = al_ref_parse(&ref, name, &e);
    _cleanup_free_ char *full = r == 0 ? al_ref_full(ref) : NULL;
    _cleanup_free_ char *bare = r == 0 ? al_ref_name(ref) : NULL;
    al_ref_free(ref);
    _cleanup_free_ char *f = al_xasprintf("%s.name", where);
    if (r < 0) {
        r = bad(err, f, "%s", e->msg);
        al_error_free(e);
        return r;
    }
    if (strcmp(full, name) != 0 && !(bare_ok && strcmp(bare, name) == 0)) {
        _cleanup_free_ char *shown = al_sanitize(name, 300);
        return bad(err, f, "\"%s\" is not in normal form (%s)", shown, full);
    }
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const al_bundle_tag *)a)->name, ((const al_bundle_tag *)b)->name);
}

/* Each tag name once (sorted copies of the structs: n log n). */
static int check_unique_tags(const al_bundle_manifest *m, al_error **err)
{
    if (m->n_tags < 2)
        return 0;
    al_bundle_tag *t = al_xcalloc(m->n_tags, sizeof(*t));
    memcpy(t, m->tags, m->n_tags * sizeof(*t));
    qsort(t, m->n_tags, sizeof(*t), cmp_name);
    int r = 0;
    for (size_t i = 1; i < m->n_tags && r == 0; i++)
        if (strcmp(t[i - 1].name, t[i].name) == 0)
            r = bad(err, "tags", "tag %s is listed twice", t[i].name);
    free(t);
    return r;
}

static int parse_tag(json_t *j, const char *w, al_bundle_tag *t, al_error **err)
{
    if (!json_is_object(j))
        return bad(err, w, "expected an object");
    uint64_t size = 0;
    int r = get_text(j, "name", w, &t->name, false, err);
    if (r == 0)
        r = check_name(t->name, w, false, err);
    if (r == 0)
        r = get_digest(j, "digest", w, t->digest, false, err);
    if (r == 0)
        r = get_text(j, "media_type", w, &t->media_type, false, err);
    if (r == 0)
        r = get_size(j, "size", w, &size, err);
    t->size = (int64_t)size;
    if (r == 0)
        r = parse_platforms(j, w, t, err);
    if (r == 0)
        r = parse_history(j, w, t, err);
    return r;
}

static int parse_tags(json_t *root, al_bundle_manifest *m, al_error **err)
{
    json_t *arr = NULL;
    int r = get_array(root, "tags", MAX_ITEMS, &arr, err);
    if (r < 0)
        return r;
    m->n_tags = json_array_size(arr);
    m->tags = al_xcalloc(m->n_tags + 1, sizeof(*m->tags));
    for (size_t i = 0; i < m->n_tags && r == 0; i++) {
        _cleanup_free_ char *w = al_xasprintf("tags[%zu]", i);
        r = parse_tag(json_array_get(arr, i), w, &m->tags[i], err);
    }
    if (r == 0)
        r = check_unique_tags(m, err);
    return r;
}

static int parse_omitted(json_t *root, al_bundle_manifest *m, al_error **err)
{
    json_t *arr = NULL;
    int r = get_array(root, "omitted", MAX_ITEMS, &arr, err);
    if (r < 0)
        return r;
    m->n_omitted = json_array_size(arr);
    m->omitted = al_xcalloc(m->n_omitted + 1, sizeof(*m->omitted));
    for (size_t i = 0; i < m->n_omitted && r == 0; i++) {
        _cleanup_free_ char *w = al_xasprintf("omitted[%zu]", i);
        r = parse_part(json_array_get(arr, i), w, &m->omitted[i], err);
    }
    if (r == 0)
        r = check_unique(m->omitted, m->n_omitted, sizeof(*m->omitted), "omitted", err);
    return r;
}

static int parse_holds(json_t *root, al_bundle_manifest *m, al_error **err)
{
    json_t *arr = NULL;
    int r = get_array(root, "holds", MAX_ITEMS, &arr, err);
    if (r < 0)
        return r;
    m->n_holds = json_array_size(arr);
    m->holds = al_xcalloc(m->n_holds + 1, sizeof(*m->holds));
    for (size_t i = 0; i < m->n_holds && r == 0; i++) {
        _cleanup_free_ char *w = al_xasprintf("holds[%zu]", i);
        json_t *j = json_array_get(arr, i);
        al_bundle_held *h = &m->holds[i];
        r = json_is_object(j) ? 0 : bad(err, w, "expected an object");
        if (r == 0)
            r = get_text(j, "name", w, &h->name, true, err);
        if (r == 0 && h->name != NULL)
            r = check_name(h->name, w, true, err);
        if (r == 0)
            r = get_digest(j, "digest", w, h->digest, false, err);
    }
    return r;
}

/* An omitted blob is one the bundle does not carry. */
static int check_disjoint(const al_bundle_manifest *m, al_error **err)
{
    if (m->n_omitted == 0 || m->n_blobs == 0)
        return 0;
    char(*d)[AL_DIGEST_BUF] = al_xcalloc(m->n_blobs, AL_DIGEST_BUF);
    for (size_t i = 0; i < m->n_blobs; i++)
        memcpy(d[i], m->blobs[i].digest, AL_DIGEST_BUF);
    qsort(d, m->n_blobs, AL_DIGEST_BUF, cmp_digest);
    int r = 0;
    for (size_t i = 0; i < m->n_omitted && r == 0; i++)
        if (bsearch(m->omitted[i].digest, d, m->n_blobs, AL_DIGEST_BUF, cmp_digest) != NULL)
            r = bad(err, "omitted", "%s is carried and omitted at once", m->omitted[i].digest);
    free(d);
    return r;
}

static int parse_head(json_t *root, al_bundle_manifest *m, al_error **err)
{
    int r = get_format(root, &m->format, err);
    json_t *vol = field(root, "volumes");
    if (r == 0)
        r = get_text(root, "version", "", &m->version, true, err);
    if (r == 0)
        r = get_id(root, "bundle_id", m->id, false, err);
    if (r == 0)
        r = get_id(root, "source_store", m->source_store, false, err);
    if (r == 0)
        r = get_id(root, "base_bundle", m->base, true, err);
    if (r == 0 && strcmp(m->base, m->id) == 0)
        r = bad(err, "base_bundle", "a bundle cannot build on itself");
    if (r == 0)
        r = get_text(root, "since", "", &m->since_kind, true, err);
    if (r == 0)
        r = get_time(root, "created_at", "", &m->created_at, err);
    if (r == 0 && (!json_is_integer(vol) || json_integer_value(vol) < 1 ||
                   json_integer_value(vol) > AL_BUNDLE_MAX_VOLUMES))
        r = bad(err, "volumes", "expected a count from 1 to %u", AL_BUNDLE_MAX_VOLUMES);
    if (r == 0)
        m->volumes = (unsigned)json_integer_value(vol);
    return r;
}

static int load(json_t **out, const char *text, size_t len, const char *what, al_error **err)
{
    *out = NULL;
    if (len > AL_BUNDLE_MANIFEST_MAX)
        return al_error_set(err, AL_E_SIZE, 0, "%s is %zu bytes, more than the %u MiB allowed",
                            what, len, AL_BUNDLE_MANIFEST_MAX >> 20);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        _cleanup_free_ char *why = al_sanitize(je.text, 200);
        return al_error_set(err, AL_E_PARSE, 0, "%s: not valid JSON: line %d: %s", what, je.line,
                            why);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return al_error_set(err, AL_E_PARSE, 0, "%s: not a JSON object", what);
    }
    *out = root;
    return 0;
}

int al_bundle_manifest_parse(al_bundle_manifest *out, const char *text, size_t len, al_error **err)
{
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    int lr = load(&root, text, len, "bundle manifest", err);
    if (lr < 0)
        return lr;
    /* The format first: a newer manifest is refused as such, not as
     * whatever of its fields this airlock does not understand. */
    int r = parse_head(root, out, err);
    if (r == 0)
        r = parse_tags(root, out, err);
    if (r == 0)
        r = parse_blobs(root, out, err);
    if (r == 0)
        r = get_digest(root, "blobs_checksum", "", out->checksum, false, err);
    if (r == 0)
        r = parse_omitted(root, out, err);
    if (r == 0)
        r = check_disjoint(out, err);
    if (r == 0)
        r = parse_holds(root, out, err);
    if (r == 0) {
        char sum[AL_DIGEST_BUF];
        al_bundle_checksum(out, sum);
        if (strcmp(sum, out->checksum) != 0)
            r = al_error_set(err, AL_E_DIGEST, 0,
                             "bundle manifest: its blob list hashes to %s, not to its "
                             "blobs_checksum %s: the manifest was damaged",
                             sum, out->checksum);
    }
    json_decref(root);
    if (r < 0) {
        if (r != AL_E_UNSUPPORTED && r != AL_E_DIGEST && r != AL_E_SIZE)
            al_error_wrap(err, "bundle manifest");
        al_bundle_manifest_dispose(out);
    }
    return r;
}

int al_bundle_volume_parse(al_bundle_volume *out, const char *text, size_t len, al_error **err)
{
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    int lr = load(&root, text, len, "volume header", err);
    if (lr < 0)
        return lr;
    int r = get_format(root, &out->format, err);
    json_t *vol = field(root, "volume"), *vols = field(root, "volumes"), *arr = NULL;
    if (r == 0)
        r = get_id(root, "bundle_id", out->bundle_id, false, err);
    if (r == 0 && (!json_is_integer(vols) || json_integer_value(vols) < 1 ||
                   json_integer_value(vols) > AL_BUNDLE_MAX_VOLUMES))
        r = bad(err, "volumes", "expected a count from 1 to %u", AL_BUNDLE_MAX_VOLUMES);
    if (r == 0 && (!json_is_integer(vol) || json_integer_value(vol) < 1 ||
                   json_integer_value(vol) > json_integer_value(vols)))
        r = bad(err, "volume", "expected a number from 1 to the count");
    if (r == 0) {
        out->volume = (unsigned)json_integer_value(vol);
        out->volumes = (unsigned)json_integer_value(vols);
        r = get_digest(root, "manifest_digest", "", out->manifest_digest, false, err);
    }
    if (r == 0)
        r = get_array(root, "members", MAX_ITEMS, &arr, err);
    if (r == 0) {
        out->n_members = json_array_size(arr);
        out->members = al_xcalloc(out->n_members + 1, sizeof(*out->members));
    }
    for (size_t i = 0; r == 0 && i < out->n_members; i++) {
        _cleanup_free_ char *w = al_xasprintf("members[%zu]", i);
        r = parse_part(json_array_get(arr, i), w, &out->members[i], err);
    }
    if (r == 0)
        r = check_unique(out->members, out->n_members, sizeof(*out->members), "members", err);
    json_decref(root);
    if (r < 0) {
        if (r != AL_E_UNSUPPORTED)
            al_error_wrap(err, "volume header");
        al_bundle_volume_dispose(out);
    }
    return r;
}

/* --- disposal ------------------------------------------------------------ */

void al_bundle_manifest_dispose(al_bundle_manifest *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_tags; i++) {
        al_bundle_tag *t = &m->tags[i];
        free(t->name);
        free(t->media_type);
        for (size_t k = 0; k < t->n_platforms; k++)
            free(t->platforms[k]);
        free(t->platforms);
        free(t->history);
    }
    free(m->tags);
    for (size_t i = 0; i < m->n_blobs; i++)
        free(m->blobs[i].parts);
    free(m->blobs);
    free(m->omitted);
    for (size_t i = 0; i < m->n_holds; i++)
        free(m->holds[i].name);
    free(m->holds);
    free(m->version);
    free(m->since_kind);
    memset(m, 0, sizeof(*m));
}

void al_bundle_volume_dispose(al_bundle_volume *v)
{
    if (v == NULL)
        return;
    free(v->members);
    memset(v, 0, sizeof(*v));
}
