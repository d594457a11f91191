/* --list and --inspect (see inspect.h). Everything comes from the
 * database snapshot: the store's files are not read, so listing a store
 * of many gigabytes is instant; --verify-store is the command that looks
 * at the files. */
#include "inspect.h"
#include "closure.h"
#include "../common/log.h"
#include "../common/manifest.h"
#include "../common/sanitize.h"
#include "../common/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *al_iso8601(char *buf, size_t len, double t)
{
    if (t <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    time_t secs = (time_t)t;
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
    return buf;
}

static json_t *json_time(double t)
{
    char buf[32];
    return t > 0 ? json_string(al_iso8601(buf, sizeof(buf), t)) : json_null();
}

/* json_string() refuses invalid UTF-8 (a hand-edited database); the text
 * output prints such names sanitised (shown()), JSON gets null rather than
 * failing the whole document. */
static json_t *json_str(const char *s)
{
    json_t *j = s != NULL ? json_string(s) : NULL;
    return j != NULL ? j : json_null();
}

/* Text read back from the database (a tag name, a media type, a source),
 * as the text output prints it: a tampered database may hold control bytes,
 * and they never reach the terminal raw (malloc'd; "-" for NULL or ""). */
static char *shown(const char *s)
{
    return al_sanitize(s != NULL && *s != '\0' ? s : "-", AL_SANITIZE_LINE);
}

static int dump_json(FILE *out, json_t *doc, al_error **err)
{
    if (json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 || fputc('\n', out) < 0)
        return al_error_set(err, AL_E_IO, 0, "write JSON");
    return 0;
}

/* The platforms a closure's image manifests run on, in walk order, each
 * once, attestations left out: "linux/amd64,linux/arm64" (malloc'd; ""
 * when none says). */
static char *closure_platforms(const al_db_snapshot *s, const al_closure *c, json_t *list)
{
    char **v = NULL;
    size_t n = al_closure_platforms(s, c, &v);
    char *text = al_xstrdup("");
    for (size_t i = 0; i < n; i++) {
        char *t = al_xasprintf("%s%s%s", text, *text ? "," : "", v[i]);
        free(text);
        text = t;
        if (list != NULL)
            json_array_append_new(list, json_string(v[i]));
    }
    al_strv_free(v, n);
    return text;
}

/* History and bundles ------------------------------------------------- */

/* The first tag_history row of name in s (by name, most recent first), or
 * -1. */
static long history_of(const al_db_snapshot *s, const char *name)
{
    size_t lo = 0, hi = s->n_history;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->history[mid].full_name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_history && strcmp(s->history[lo].full_name, name) == 0 ? (long)lo : -1;
}

/* The tag's recent history: JSON (every row, up to LIST_HISTORY, the
 * first-seen one included), or text lines for its moves ("was OLD until
 * T"). */
#define LIST_HISTORY 10
static json_t *history_json(const al_db_snapshot *s, const char *name)
{
    json_t *a = json_array();
    long h = history_of(s, name);
    for (size_t k = 0; h >= 0 && (size_t)h < s->n_history && k < LIST_HISTORY; h++, k++) {
        const al_db_history *e = &s->history[h];
        if (strcmp(e->full_name, name) != 0)
            break;
        json_array_append_new(a, json_pack("{s:o, s:o, s:o}", "digest", json_str(e->new_digest),
                                           "old_digest",
                                           e->old_digest[0] ? json_str(e->old_digest) : json_null(),
                                           "at", json_time(e->at)));
    }
    return a;
}

static void history_text(FILE *out, const al_db_snapshot *s, const char *name)
{
    long h = history_of(s, name);
    for (size_t k = 0; h >= 0 && (size_t)h < s->n_history && k < LIST_HISTORY; h++, k++) {
        const al_db_history *e = &s->history[h];
        if (strcmp(e->full_name, name) != 0 || e->old_digest[0] == '\0')
            break;
        char t[32];
        _cleanup_free_ char *old = shown(e->old_digest);
        fprintf(out, "  was %s until %s\n", old, al_iso8601(t, sizeof(t), e->at));
    }
}

static json_t *store_json(const al_db_snapshot *s)
{
    json_t *bundles = json_array();
    for (size_t i = 0; i < s->n_bundles; i++) {
        const al_db_bundle *b = &s->bundles[i];
        json_array_append_new(
            bundles, json_pack("{s:o, s:o, s:o, s:o, s:o}", "id", json_str(b->id), "source_store",
                               json_str(b->source_store), "base_bundle",
                               b->base[0] ? json_str(b->base) : json_null(), "created_at",
                               json_time(b->created_at), "applied_at", json_time(b->applied_at)));
    }
    return json_pack("{s:o, s:o}", "id", s->store_id[0] ? json_str(s->store_id) : json_null(),
                     "bundles", bundles);
}

/* --list ------------------------------------------------------------- */

typedef struct row {
    char *platforms;
    char size[32];
    char first[32], changed[32];
} row;

int al_inspect_list(FILE *out, const al_db_snapshot *s, bool json, al_error **err)
{
    al_closure *cl = al_xcalloc(s->n_tags + 1, sizeof(*cl));
    row *rows = al_xcalloc(s->n_tags + 1, sizeof(*rows));
    bool *in_any = al_xcalloc(s->n_blobs + 1, sizeof(*in_any));
    size_t n_unique = 0;
    int64_t total = 0;
    json_t *doc = json ? json_object() : NULL;
    json_t *tags = json ? json_array() : NULL;

    for (size_t i = 0; i < s->n_tags; i++) {
        const al_tag *t = &s->tags[i];
        al_closure_compute(&cl[i], s, t->digest);
        for (size_t k = 0; k < cl[i].n; k++) {
            long b = cl[i].blobs[k];
            if (!in_any[b]) {
                in_any[b] = true;
                n_unique++;
                total += s->blobs[b].size;
            }
        }
        if (cl[i].n_missing > 0) /* al_log sanitises the name */
            al_warn("%s: %zu blob%s of its graph %s not in the database (run --verify-store)",
                    t->full_name, cl[i].n_missing, cl[i].n_missing == 1 ? "" : "s",
                    cl[i].n_missing == 1 ? "is" : "are");
        json_t *plats = json ? json_array() : NULL;
        rows[i].platforms = closure_platforms(s, &cl[i], plats);
        al_format_bytes(rows[i].size, sizeof(rows[i].size), (uint64_t)cl[i].bytes);
        al_iso8601(rows[i].first, sizeof(rows[i].first), t->first_seen);
        al_iso8601(rows[i].changed, sizeof(rows[i].changed), t->changed_at);
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_str(t->full_name));
            json_object_set_new(o, "digest", json_str(t->digest));
            json_object_set_new(o, "media_type", json_str(t->media_type));
            json_object_set_new(o, "platforms", plats);
            json_object_set_new(o, "size", json_integer(cl[i].bytes));
            json_object_set_new(o, "blobs", json_integer((json_int_t)cl[i].n));
            json_object_set_new(o, "complete", json_boolean(cl[i].n_missing == 0));
            json_object_set_new(o, "source", json_str(t->source));
            json_object_set_new(o, "first_seen", json_time(t->first_seen));
            json_object_set_new(o, "checked_at", json_time(t->checked_at));
            json_object_set_new(o, "changed_at", json_time(t->changed_at));
            json_object_set_new(o, "history", history_json(s, t->full_name));
            json_array_append_new(tags, o);
        }
    }

    int r = 0;
    char tb[32];
    al_format_bytes(tb, sizeof(tb), (uint64_t)total);
    if (json) {
        json_object_set_new(doc, "tags", tags);
        json_t *tot = json_object();
        json_object_set_new(tot, "tags", json_integer((json_int_t)s->n_tags));
        json_object_set_new(tot, "blobs", json_integer((json_int_t)n_unique));
        json_object_set_new(tot, "size", json_integer(total));
        json_object_set_new(doc, "total", tot);
        json_object_set_new(doc, "store", store_json(s));
        r = dump_json(out, doc, err);
    } else {
        /* Aligned columns; a name or platform list longer than its
         * column just pushes the rest of its line. */
        int wn = 4, wp = 9, ws = 4;
        char **names = al_xcalloc(s->n_tags + 1, sizeof(*names));
        for (size_t i = 0; i < s->n_tags; i++) {
            names[i] = shown(s->tags[i].full_name);
            int n = (int)strlen(names[i]), p = (int)strlen(rows[i].platforms),
                z = (int)strlen(rows[i].size);
            wn = n > wn ? n : wn;
            wp = p > wp ? p : wp;
            ws = z > ws ? z : ws;
        }
        fprintf(out, "%-*s  %-71s  %-*s  %*s  %-20s  %s\n", wn, "NAME", "DIGEST", wp, "PLATFORMS",
                ws, "SIZE", "FIRST FETCHED", "LAST CHANGED");
        for (size_t i = 0; i < s->n_tags; i++) {
            _cleanup_free_ char *digest = shown(s->tags[i].digest);
            fprintf(out, "%-*s  %-71s  %-*s  %*s  %-20s  %s\n", wn, names[i], digest, wp,
                    rows[i].platforms[0] ? rows[i].platforms : "-", ws, rows[i].size, rows[i].first,
                    rows[i].changed);
            history_text(out, s, s->tags[i].full_name);
            free(names[i]);
        }
        free(names);
        fprintf(out, "total: %zu tag%s, %zu unique blob%s, %s (%lld bytes)\n", s->n_tags,
                s->n_tags == 1 ? "" : "s", n_unique, n_unique == 1 ? "" : "s", tb,
                (long long)total);
        if (s->n_bundles > 0) {
            const al_db_bundle *b = &s->bundles[s->n_bundles - 1];
            char t1[32], t2[32];
            fprintf(out, "bundles applied: %zu; the last: %s from store %s (made %s, applied %s)\n",
                    s->n_bundles, b->id, b->source_store, al_iso8601(t1, sizeof(t1), b->created_at),
                    al_iso8601(t2, sizeof(t2), b->applied_at));
        }
        if (fflush(out) != 0 || ferror(out))
            r = al_error_set(err, AL_E_IO, 0, "write the list");
    }

    json_decref(doc);
    for (size_t i = 0; i < s->n_tags; i++) {
        al_closure_dispose(&cl[i]);
        free(rows[i].platforms);
    }
    free(cl);
    free(rows);
    free(in_any);
    return r;
}

/* --inspect ---------------------------------------------------------- */

typedef struct ictx {
    FILE *out;
    al_store *store; /* may be NULL: describe from the database only */
    const al_db_snapshot *s;
    size_t self;       /* index of the inspected tag */
    al_closure *all;   /* closure of every tag, for "shared with" */
    json_t *manifests; /* JSON: flat list in walk order; NULL for text */
} ictx;

/* A media type from the database, for the text output (malloc'd). */
static char *mt_text(const char *mt)
{
    return mt != NULL && *mt ? shown(mt) : al_xstrdup("?");
}

/* "1.0 MB" or "missing" when the blob has no row. */
static const char *size_text(char *buf, size_t len, const al_db_blob *b)
{
    if (b == NULL)
        return "missing";
    return al_format_bytes(buf, len, (uint64_t)b->size);
}

static json_t *blob_json(const char *digest, const al_db_blob *b)
{
    json_t *o = json_object();
    json_object_set_new(o, "digest", json_str(digest));
    json_object_set_new(o, "size", b != NULL ? json_integer(b->size) : json_null());
    json_object_set_new(o, "media_type", json_str(b != NULL ? b->media_type : NULL));
    return o;
}

/* The other tags whose graph holds blob: text "a, b" (malloc'd, "" when
 * none) and, for JSON, an array appended to. */
static char *shared_with(const ictx *c, const char *digest, json_t *arr)
{
    long bi = al_db_snapshot_blob_index(c->s, digest);
    char *text = al_xstrdup("");
    if (bi < 0)
        return text;
    for (size_t t = 0; t < c->s->n_tags; t++) {
        if (t == c->self || !al_closure_has(&c->all[t], bi))
            continue;
        const char *name = c->s->tags[t].full_name;
        _cleanup_free_ char *safe = shown(name);
        char *n = al_xasprintf("%s%s%s", text, *text ? ", " : "", safe);
        free(text);
        text = n;
        if (arr != NULL)
            json_array_append_new(arr, json_str(name));
    }
    return text;
}

/* A config or layer as described: from the manifest's own descriptor
 * when the manifest could be read (media types are per manifest: the
 * same layer may be Docker-typed in one image and OCI-typed in another),
 * else from the edges and blobs rows. */
typedef struct item {
    const char *digest;     /* borrowed */
    int64_t size;           /* -1: unknown (no row) */
    const char *media_type; /* borrowed, may be NULL */
} item;

static item db_item(const al_db_snapshot *s, const char *digest)
{
    const al_db_blob *b = al_db_snapshot_blob(s, digest);
    return (item){digest, b ? b->size : -1, b ? b->media_type : NULL};
}

static const char *item_size(char *buf, size_t len, const item *it)
{
    if (it->size < 0)
        return "missing";
    return al_format_bytes(buf, len, (uint64_t)it->size);
}

static json_t *item_json(const item *it)
{
    json_t *o = json_object();
    json_object_set_new(o, "digest", json_str(it->digest));
    json_object_set_new(o, "size", it->size >= 0 ? json_integer(it->size) : json_null());
    json_object_set_new(o, "media_type", json_str(it->media_type));
    return o;
}

static void describe_image(ictx *c, const char *digest, const al_db_manifest *m,
                           const al_db_blob *mb, json_t *jo)
{
    const al_db_snapshot *s = c->s;
    item cfg = {"", -1, NULL};
    item *layers = NULL;
    size_t n_layers = 0;

    al_manifest *pm = NULL;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if (c->store != NULL &&
        al_store_read_blob(c->store, digest, AL_MANIFEST_MAX, &buf, &len, NULL) == 0 &&
        al_manifest_parse(&pm, buf, len, m->media_type, NULL) == 0 && !al_manifest_is_index(pm)) {
        cfg = (item){pm->config.digest, pm->config.size, pm->config.media_type};
        layers = al_xcalloc(pm->n_layers + 1, sizeof(*layers));
        for (size_t i = 0; i < pm->n_layers; i++)
            layers[n_layers++] =
                (item){pm->layers[i].digest, pm->layers[i].size, pm->layers[i].media_type};
    } else {
        size_t ne = 0;
        const al_graph_edge *e = al_db_snapshot_children(s, digest, &ne);
        layers = al_xcalloc(ne + 1, sizeof(*layers));
        if (m->config_digest[0] != '\0')
            cfg = db_item(s, m->config_digest);
        for (size_t i = 0; i < ne; i++) {
            if (e[i].kind == AL_EDGE_CONFIG)
                cfg = db_item(s, e[i].child);
            else if (e[i].kind == AL_EDGE_LAYER)
                layers[n_layers++] = db_item(s, e[i].child);
        }
    }

    char pb[96] = "unknown platform", sb[32];
    if (m->has_platform)
        al_platform_format(&m->platform, pb, sizeof(pb));
    bool attest = m->has_platform && al_platform_is_unknown(&m->platform);
    /* This platform's image: manifest, config and layers, each blob once
     * (an image may repeat a layer). */
    int64_t bytes = (mb != NULL ? mb->size : 0) + (cfg.size > 0 ? cfg.size : 0);
    for (size_t i = 0; i < n_layers; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = strcmp(layers[k].digest, layers[i].digest) == 0;
        if (!dup && layers[i].size > 0)
            bytes += layers[i].size;
    }

    if (c->manifests == NULL) {
        char tb[32];
        fprintf(c->out, "\n%s%s  (%s)\n", pb, attest ? " (attestation)" : "",
                al_format_bytes(tb, sizeof(tb), (uint64_t)bytes));
        _cleanup_free_ char *mmt = mt_text(m->media_type);
        fprintf(c->out, "  manifest  %s  %8s  %s\n", digest,
                mb ? al_format_bytes(sb, sizeof(sb), (uint64_t)mb->size) : "missing", mmt);
        if (cfg.digest[0] != '\0') {
            _cleanup_free_ char *cmt = mt_text(cfg.media_type);
            fprintf(c->out, "  config    %s  %8s  %s\n", cfg.digest,
                    item_size(sb, sizeof(sb), &cfg), cmt);
        }
        for (size_t i = 0; i < n_layers; i++) {
            _cleanup_free_ char *sh = shared_with(c, layers[i].digest, NULL);
            _cleanup_free_ char *lmt = mt_text(layers[i].media_type);
            fprintf(c->out, "  layer %-3zu %s  %8s  %s%s%s\n", i + 1, layers[i].digest,
                    item_size(sb, sizeof(sb), &layers[i]), lmt, *sh ? "  shared with " : "", sh);
        }
    } else {
        json_object_set_new(jo, "platform", m->has_platform ? json_string(pb) : json_null());
        json_object_set_new(jo, "attestation", json_boolean(attest));
        json_object_set_new(jo, "image_size", json_integer(bytes));
        json_object_set_new(jo, "config", cfg.digest[0] ? item_json(&cfg) : json_null());
        json_t *jl = json_array();
        for (size_t i = 0; i < n_layers; i++) {
            json_t *lo = item_json(&layers[i]);
            json_t *arr = json_array();
            free(shared_with(c, layers[i].digest, arr));
            json_object_set_new(lo, "shared_with", arr);
            json_array_append_new(jl, lo);
        }
        json_object_set_new(jo, "layers", jl);
    }
    free(layers);
    if (pm != NULL)
        al_manifest_free(pm);
}

/* One manifest, as the walk (common/graph.h, over the snapshot's rows,
 * parents first) reaches it: an index's header, or an image's
 * description. Each is shown once however often it is listed. */
static int describe(void *ud, const al_graph_node *n, al_error **err)
{
    ictx *c = ud;
    const al_db_snapshot *s = c->s;
    const char *digest = n->digest;
    const al_db_manifest *m = al_db_snapshot_manifest(s, digest);
    const al_db_blob *mb = al_db_snapshot_blob(s, digest);
    char sb[32];
    if (m == NULL) {
        if (c->manifests == NULL)
            fprintf(c->out, "\nmanifest %s: not in the database\n", digest);
        else
            json_array_append_new(c->manifests, blob_json(digest, mb));
        return 0;
    }
    if (n->state == AL_GRAPH_FAILED) {
        /* A row that breaks the graph's rules (a hand-edited database). */
        if (c->manifests == NULL) {
            _cleanup_free_ char *why = shown(n->error->msg);
            fprintf(c->out, "\nmanifest %s: not followed: %s\n", digest, why);
        }
        return 0;
    }
    json_t *jo = NULL;
    if (c->manifests != NULL) {
        jo = blob_json(digest, mb);
        json_object_set_new(jo, "media_type", json_str(m->media_type));
        json_object_set_new(jo, "kind", json_string(m->is_index ? "index" : "manifest"));
        json_array_append_new(c->manifests, jo);
    }
    if (!m->is_index)
        describe_image(c, digest, m, mb, jo);
    else if (n->level > 1 && c->manifests == NULL) {
        _cleanup_free_ char *imt = mt_text(m->media_type);
        fprintf(c->out, "\nindex  %s  %8s  %s\n", digest, size_text(sb, sizeof(sb), mb), imt);
    }
    return 0;
}

/* The tag row for ref: by "name:tag" or "name@digest"; for a digest ref
 * also a tag of that name whose root is that digest. -1 when none. */
static long find_tag(const al_db_snapshot *s, const al_ref *ref)
{
    _cleanup_free_ char *name = al_ref_name(ref);
    _cleanup_free_ char *key = ref->tag != NULL ? al_xasprintf("%s:%s", name, ref->tag)
                                                : al_xasprintf("%s@%s", name, ref->digest);
    for (size_t i = 0; i < s->n_tags; i++)
        if (strcmp(s->tags[i].full_name, key) == 0 &&
            (ref->digest == NULL || strcmp(s->tags[i].digest, ref->digest) == 0))
            return (long)i;
    if (ref->digest == NULL)
        return -1;
    size_t nl = strlen(name);
    for (size_t i = 0; i < s->n_tags; i++) {
        const char *fn = s->tags[i].full_name;
        if (strncmp(fn, name, nl) == 0 && (fn[nl] == ':' || fn[nl] == '@') &&
            strcmp(s->tags[i].digest, ref->digest) == 0)
            return (long)i;
    }
    return -1;
}

int al_inspect_image(FILE *out, al_store *store, const al_db_snapshot *s, const al_ref *ref,
                     bool json, al_error **err)
{
    long ti = find_tag(s, ref);
    if (ti < 0) {
        _cleanup_free_ char *full = al_ref_full(ref);
        return al_error_set(err, AL_E_NOT_FOUND, 0, "not in store: %s", full);
    }
    const al_tag *t = &s->tags[ti];
    ictx c = {.out = out, .store = store, .s = s, .self = (size_t)ti};
    c.all = al_xcalloc(s->n_tags, sizeof(*c.all));
    for (size_t i = 0; i < s->n_tags; i++)
        al_closure_compute(&c.all[i], s, s->tags[i].digest);
    const al_closure *self = &c.all[ti];
    json_t *doc = NULL;
    char b1[32], b2[32], b3[32], sb[32];
    if (json) {
        doc = json_object();
        json_object_set_new(doc, "name", json_str(t->full_name));
        json_object_set_new(doc, "digest", json_str(t->digest));
        json_object_set_new(doc, "media_type", json_str(t->media_type));
        json_object_set_new(doc, "size", json_integer(t->size));
        json_object_set_new(doc, "source", json_str(t->source));
        json_object_set_new(doc, "first_seen", json_time(t->first_seen));
        json_object_set_new(doc, "checked_at", json_time(t->checked_at));
        json_object_set_new(doc, "changed_at", json_time(t->changed_at));
        json_t *plats = json_array();
        free(closure_platforms(s, self, plats));
        json_object_set_new(doc, "platforms", plats);
        json_object_set_new(doc, "total_size", json_integer(self->bytes));
        json_object_set_new(doc, "blobs", json_integer((json_int_t)self->n));
        json_t *miss = json_array();
        for (size_t i = 0; i < self->n_missing; i++)
            json_array_append_new(miss, json_string(self->missing[i]));
        json_object_set_new(doc, "missing", miss);
        c.manifests = json_array();
        json_object_set_new(doc, "manifests", c.manifests);
    } else {
        _cleanup_free_ char *plats = closure_platforms(s, self, NULL);
        _cleanup_free_ char *name = shown(t->full_name);
        _cleanup_free_ char *mt = mt_text(t->media_type);
        _cleanup_free_ char *source = shown(t->source);
        _cleanup_free_ char *digest = shown(t->digest);
        fprintf(out, "%s\n", name);
        fprintf(out, "  digest:      %s\n", digest);
        fprintf(out, "  media type:  %s\n", mt);
        fprintf(out, "  size:        %s (%lld bytes, the root manifest)\n",
                al_format_bytes(sb, sizeof(sb), (uint64_t)t->size), (long long)t->size);
        fprintf(out, "  source:      %s\n", source);
        fprintf(out, "  first seen:  %s\n", al_iso8601(b1, sizeof(b1), t->first_seen));
        fprintf(out, "  checked:     %s\n", al_iso8601(b2, sizeof(b2), t->checked_at));
        fprintf(out, "  changed:     %s\n", al_iso8601(b3, sizeof(b3), t->changed_at));
        fprintf(out, "  platforms:   %s\n", *plats ? plats : "-");
        fprintf(out, "  total:       %s (%lld bytes) in %zu blob%s, each counted once\n",
                al_format_bytes(sb, sizeof(sb), (uint64_t)self->bytes), (long long)self->bytes,
                self->n, self->n == 1 ? "" : "s");
        for (size_t i = 0; i < self->n_missing; i++)
            fprintf(out, "  MISSING:     %s (no blobs row; run --verify-store)\n",
                    self->missing[i]);
    }
    al_graph_source src;
    al_closure_source(&src, s);
    al_descriptor root = {.size = t->size};
    snprintf(root.digest, sizeof(root.digest), "%s", t->digest);
    al_graph_walk_opts o = {.order = AL_GRAPH_PARENTS_FIRST};
    al_graph_walk(&src, &root, &o, describe, &c, NULL);
    int r = 0;
    if (json)
        r = dump_json(out, doc, err);
    else if (fflush(out) != 0 || ferror(out))
        r = al_error_set(err, AL_E_IO, 0, "write the description");
    json_decref(doc);
    for (size_t i = 0; i < s->n_tags; i++)
        al_closure_dispose(&c.all[i]);
    free(c.all);
    return r;
}
