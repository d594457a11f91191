/* Manifests and image configs: the four distributable media types parsed (see manifest.h). */
#include "manifest.h"
#include "util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Sizes are JSON numbers; Go registries and JavaScript tools lose precision
 * past 2^53, so a bigger "size" is a lie or an attack either way. */
#define MAX_JSON_SIZE ((int64_t)1 << 53)

static const char SCHEMA1_MSG[] = "schema 1 manifests are not supported (deprecated by docker); "
                                  "re-push the image with a current client";

/* jansson (>= 2.11) provides json_decrefp for cleanup attributes. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Length of a media type without parameters and surrounding blanks;
 * *start is moved past leading blanks. */
static size_t media_type_span(const char **start)
{
    const char *s = *start;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, ";");
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *start = s;
    return n;
}

/* Media types compare case-insensitively (RFC 6838). */
static bool media_type_is(const char *mt, const char *want)
{
    if (mt == NULL)
        return false;
    size_t n = media_type_span(&mt);
    return n == strlen(want) && strncasecmp(mt, want, n) == 0;
}

static bool is_schema1(const char *mt)
{
    return media_type_is(mt, "application/vnd.docker.distribution.manifest.v1+json") ||
           media_type_is(mt, "application/vnd.docker.distribution.manifest.v1+prettyjws");
}

/* Content-Types that say nothing about which manifest this is; registries
 * send them for OCI manifests that were pushed without a mediaType. */
static bool is_generic_json(const char *mt)
{
    return media_type_is(mt, "application/json") || media_type_is(mt, "application/octet-stream") ||
           media_type_is(mt, "text/plain");
}

const char *al_manifest_kind_media_type(al_manifest_kind k)
{
    switch (k) {
    case AL_MK_DOCKER_MANIFEST: return AL_MT_DOCKER_MANIFEST;
    case AL_MK_DOCKER_LIST: return AL_MT_DOCKER_LIST;
    case AL_MK_OCI_MANIFEST: return AL_MT_OCI_MANIFEST;
    case AL_MK_OCI_INDEX: return AL_MT_OCI_INDEX;
    }
    return NULL;
}

al_manifest_kind al_manifest_kind_from_media_type(const char *mt)
{
    static const al_manifest_kind kinds[] = {AL_MK_DOCKER_MANIFEST, AL_MK_DOCKER_LIST,
                                             AL_MK_OCI_MANIFEST, AL_MK_OCI_INDEX};
    for (size_t i = 0; i < AL_ARRAY_SIZE(kinds); i++)
        if (media_type_is(mt, al_manifest_kind_media_type(kinds[i])))
            return kinds[i];
    return 0;
}

/* al_error_wrap() that hands back r: with err NULL, al_error_wrap has
 * nothing to wrap and would not return the real code. */
static int wrap(int r, al_error **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wrap(int r, al_error **err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return r;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *ctx = al_xvasprintf(fmt, ap);
    va_end(ap);
    al_error_wrap(err, "%s", ctx);
    return r;
}

/* Printable, bounded copy of untrusted text for an error message. */
static char *sanitize(const char *s)
{
    size_t n = strnlen(s, 160);
    char *out = al_xstrndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 32 || (unsigned char)out[i] >= 127)
            out[i] = '?';
    return out;
}

/* The media type without parameters, made safe to print. */
static char *media_type_for_msg(const char *mt)
{
    size_t n = media_type_span(&mt);
    _cleanup_free_ char *essence = al_xstrndup(mt, n);
    return sanitize(essence);
}

static void descriptor_dispose(al_descriptor *d)
{
    free(d->media_type);
    d->media_type = NULL;
}

/* Optional string member: NULL when absent, error when of another type. */
static int get_opt_string(const char **out, json_t *obj, const char *key, al_error **err)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return al_error_set(err, AL_E_PARSE, 0, "\"%s\" must be a string", key);
    *out = json_string_value(v);
    return 0;
}

static int parse_platform(al_descriptor *d, json_t *pj, al_error **err)
{
    if (!json_is_object(pj))
        return al_error_set(err, AL_E_PARSE, 0, "\"platform\" must be an object");
    const char *os, *arch, *variant;
    int r;
    if ((r = get_opt_string(&os, pj, "os", err)) < 0 ||
        (r = get_opt_string(&arch, pj, "architecture", err)) < 0 ||
        (r = get_opt_string(&variant, pj, "variant", err)) < 0)
        return wrap(r, err, "platform");
    /* Both specs require os and architecture; an entry without them cannot
     * be matched against anything, and guessing would pick wrong images. */
    if (os == NULL || *os == '\0' || arch == NULL || *arch == '\0')
        return al_error_set(err, AL_E_PARSE, 0,
                            "platform: \"os\" and \"architecture\" are required");
    if (!al_platform_set(&d->platform, os, arch, variant)) {
        _cleanup_free_ char *o = sanitize(os), *a = sanitize(arch);
        _cleanup_free_ char *v = sanitize(variant ? variant : "");
        return al_error_set(err, AL_E_PARSE, 0,
                            "platform \"%s/%s%s%s\": a field is too long or has characters "
                            "outside a-z, 0-9, '_', '.', '-'",
                            o, a, *v ? "/" : "", v);
    }
    d->has_platform = true;
    return 0;
}

/* Fill d from a descriptor object. `what` names it in messages
 * ("config", "layers[3]", "manifests[0]"). */
static int parse_descriptor(al_descriptor *d, json_t *j, bool need_media_type, bool want_platform,
                            const char *what, al_error **err)
{
    memset(d, 0, sizeof(*d));
    int r;
    if (!json_is_object(j))
        return al_error_set(err, AL_E_PARSE, 0, "%s: descriptor must be an object", what);

    const char *mt;
    if ((r = get_opt_string(&mt, j, "mediaType", err)) < 0)
        return wrap(r, err, "%s", what);
    if (mt == NULL && need_media_type)
        return al_error_set(err, AL_E_PARSE, 0, "%s: missing \"mediaType\"", what);

    json_t *dj = json_object_get(j, "digest");
    if (dj == NULL)
        return al_error_set(err, AL_E_PARSE, 0, "%s: missing \"digest\"", what);
    if (!json_is_string(dj))
        return al_error_set(err, AL_E_PARSE, 0, "%s: \"digest\" must be a string", what);
    if ((r = al_digest_check(json_string_value(dj), err)) < 0)
        return wrap(r, err, "%s", what);

    json_t *sj = json_object_get(j, "size");
    if (sj == NULL)
        return al_error_set(err, AL_E_PARSE, 0, "%s: missing \"size\"", what);
    if (!json_is_integer(sj))
        return al_error_set(err, AL_E_PARSE, 0, "%s: \"size\" must be an integer", what);
    json_int_t size = json_integer_value(sj);
    if (size < 0)
        return al_error_set(err, AL_E_PARSE, 0, "%s: negative \"size\" %lld", what,
                            (long long)size);
    if (size > MAX_JSON_SIZE)
        return al_error_set(err, AL_E_PARSE, 0, "%s: \"size\" %lld is above 2^53", what,
                            (long long)size);

    json_t *pj = json_object_get(j, "platform");
    if (want_platform && pj != NULL && (r = parse_platform(d, pj, err)) < 0)
        return wrap(r, err, "%s", what);

    /* Only now take ownership, so a failure above leaves nothing to free. */
    memcpy(d->digest, json_string_value(dj), AL_DIGEST_BUF);
    d->size = (int64_t)size;
    d->media_type = mt ? al_xstrdup(mt) : NULL;
    return 0;
}

/* Parse an array member into a malloc'd descriptor array. */
static int parse_descriptor_array(al_descriptor **out, size_t *n_out, json_t *arr, const char *key,
                                  size_t max, bool need_media_type, bool want_platform,
                                  al_error **err)
{
    *out = NULL;
    *n_out = 0;
    if (!json_is_array(arr))
        return al_error_set(err, AL_E_PARSE, 0, "\"%s\" must be an array", key);
    size_t n = json_array_size(arr);
    if (n > max)
        return al_error_set(err, AL_E_SIZE, 0, "\"%s\" has %zu entries, more than the limit of %zu",
                            key, n, max);
    al_descriptor *list = al_xcalloc(n, sizeof(*list));
    for (size_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof(what), "%s[%zu]", key, i);
        int r = parse_descriptor(&list[i], json_array_get(arr, i), need_media_type, want_platform,
                                 what, err);
        if (r < 0) {
            for (size_t k = 0; k < i; k++)
                descriptor_dispose(&list[k]);
            free(list);
            return r;
        }
    }
    *out = list;
    *n_out = n;
    return 0;
}

void al_manifest_free(al_manifest *m)
{
    if (m == NULL)
        return;
    descriptor_dispose(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        descriptor_dispose(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_children; i++)
        descriptor_dispose(&m->children[i]);
    free(m->children);
    free(m);
}

static void manifest_freep(al_manifest **m)
{
    al_manifest_free(*m);
}

static int load_object(json_t **out, const void *buf, size_t len, const char *what, al_error **err)
{
    json_error_t jerr;
    /* Duplicate keys are refused: two readers picking different values of
     * one key is how confusion attacks on signed JSON work. */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson quotes the input near the error: keep control bytes out. */
        _cleanup_free_ char *why = sanitize(jerr.text);
        return al_error_set(err, AL_E_PARSE, 0, "%s is not valid JSON: %s (line %d, column %d)",
                            what, why, jerr.line, jerr.column);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return al_error_set(err, AL_E_PARSE, 0, "%s is not a JSON object", what);
    }
    *out = root;
    return 0;
}

int al_manifest_parse(al_manifest **out, const void *buf, size_t len, const char *content_type,
                      al_error **err)
{
    *out = NULL;
    if (len > AL_MANIFEST_MAX)
        return al_error_set(err, AL_E_SIZE, 0, "manifest is %zu bytes, more than the limit of %u",
                            len, AL_MANIFEST_MAX);
    _cleanup_json_ json_t *root = NULL;
    int r = load_object(&root, buf, len, "manifest", err);
    if (r < 0) {
        /* A proxy's or portal's HTML page is better reported by what the
         * server said it is than by where the JSON parser gave up. */
        const char *ct = content_type;
        if (ct != NULL && media_type_span(&ct) > 0 && !is_generic_json(content_type) &&
            al_manifest_kind_from_media_type(content_type) == 0 && !is_schema1(content_type)) {
            _cleanup_free_ char *s = media_type_for_msg(content_type);
            return al_error_set(err, AL_E_UNSUPPORTED, 0,
                                "unsupported manifest media type \"%s\" (from Content-Type)", s);
        }
        return r;
    }

    const char *body_mt;
    if ((r = get_opt_string(&body_mt, root, "mediaType", err)) < 0)
        return wrap(r, err, "manifest");
    json_t *sv = json_object_get(root, "schemaVersion");

    /* Schema 1 first: it has its own, actionable message whatever else is wrong. */
    if (is_schema1(body_mt) || (body_mt == NULL && is_schema1(content_type)) ||
        (json_is_integer(sv) && json_integer_value(sv) == 1))
        return al_error_set(err, AL_E_UNSUPPORTED, 0, "%s", SCHEMA1_MSG);

    const char *declared = body_mt;
    if (declared == NULL && content_type != NULL && !is_generic_json(content_type)) {
        const char *ct = content_type;
        if (media_type_span(&ct) > 0)
            declared = content_type;
    }

    json_t *manifests = json_object_get(root, "manifests");
    json_t *config = json_object_get(root, "config");
    if (manifests != NULL && config != NULL)
        return al_error_set(err, AL_E_PARSE, 0,
                            "manifest has both \"manifests\" and \"config\": neither an index nor "
                            "an image manifest");

    al_manifest_kind kind;
    if (declared != NULL) {
        kind = al_manifest_kind_from_media_type(declared);
        if (kind == 0) {
            _cleanup_free_ char *s = media_type_for_msg(declared);
            return al_error_set(err, AL_E_UNSUPPORTED, 0,
                                "unsupported manifest media type \"%s\" (%s)", s,
                                body_mt ? "from mediaType" : "from Content-Type");
        }
        bool index = kind == AL_MK_DOCKER_LIST || kind == AL_MK_OCI_INDEX;
        if (index && manifests == NULL && config != NULL)
            return al_error_set(err, AL_E_PARSE, 0,
                                "media type %s says index, but the body is an image manifest "
                                "(\"config\", no \"manifests\")",
                                al_manifest_kind_media_type(kind));
        if (!index && config == NULL && manifests != NULL)
            return al_error_set(err, AL_E_PARSE, 0,
                                "media type %s says image manifest, but the body is an index "
                                "(\"manifests\", no \"config\")",
                                al_manifest_kind_media_type(kind));
    } else if (manifests != NULL) {
        /* OCI makes mediaType optional; docker always writes it. */
        kind = AL_MK_OCI_INDEX;
    } else if (config != NULL) {
        kind = AL_MK_OCI_MANIFEST;
    } else {
        return al_error_set(err, AL_E_PARSE, 0,
                            "manifest has no mediaType and neither \"manifests\" nor \"config\"");
    }

    if (sv == NULL)
        return al_error_set(err, AL_E_PARSE, 0, "manifest: missing \"schemaVersion\"");
    if (!json_is_integer(sv))
        return al_error_set(err, AL_E_PARSE, 0, "manifest: \"schemaVersion\" must be an integer");
    if (json_integer_value(sv) != 2)
        return al_error_set(err, AL_E_UNSUPPORTED, 0,
                            "manifest: schemaVersion %lld is not supported (%s needs 2)",
                            (long long)json_integer_value(sv), al_manifest_kind_media_type(kind));

    _cleanup_(manifest_freep) al_manifest *m = al_xcalloc(1, sizeof(*m));
    m->kind = kind;
    m->media_type = al_manifest_kind_media_type(kind);

    if (al_manifest_is_index(m)) {
        if (manifests == NULL)
            return al_error_set(err, AL_E_PARSE, 0, "index: missing \"manifests\"");
        /* Children's media types are kept as written: nested indexes and
         * artifacts are legal, and the planner decides what to follow. */
        r = parse_descriptor_array(&m->children, &m->n_children, manifests, "manifests",
                                   AL_INDEX_MAX_ENTRIES, false, true, err);
        if (r < 0)
            return r;
    } else {
        if (config == NULL)
            return al_error_set(err, AL_E_PARSE, 0, "image manifest: missing \"config\"");
        r = parse_descriptor(&m->config, config, true, false, "config", err);
        if (r < 0)
            return r;
        json_t *layers = json_object_get(root, "layers");
        if (layers == NULL)
            return al_error_set(err, AL_E_PARSE, 0, "image manifest: missing \"layers\"");
        r = parse_descriptor_array(&m->layers, &m->n_layers, layers, "layers",
                                   AL_MANIFEST_MAX_LAYERS, true, false, err);
        if (r < 0)
            return r;
    }
    *out = al_steal_ptr(&m);
    return 0;
}

void al_image_config_free(al_image_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_diff_ids; i++)
        free(c->diff_ids[i]);
    free(c->diff_ids);
    free(c);
}

static void image_config_freep(al_image_config **c)
{
    al_image_config_free(*c);
}

int al_image_config_parse(al_image_config **out, const void *buf, size_t len, al_error **err)
{
    *out = NULL;
    if (len > AL_CONFIG_MAX)
        return al_error_set(err, AL_E_SIZE, 0,
                            "image config is %zu bytes, more than the limit of %u", len,
                            AL_CONFIG_MAX);
    _cleanup_json_ json_t *root = NULL;
    int r = load_object(&root, buf, len, "image config", err);
    if (r < 0)
        return r;

    _cleanup_(image_config_freep) al_image_config *c = al_xcalloc(1, sizeof(*c));
    const char *os, *arch, *variant;
    if ((r = get_opt_string(&os, root, "os", err)) < 0 ||
        (r = get_opt_string(&arch, root, "architecture", err)) < 0 ||
        (r = get_opt_string(&variant, root, "variant", err)) < 0)
        return wrap(r, err, "image config");
    /* Artifact configs (OCI 1.1, e.g. the empty "{}") carry no platform. */
    if (os != NULL && *os && arch != NULL && *arch) {
        if (!al_platform_set(&c->platform, os, arch, variant)) {
            _cleanup_free_ char *o = sanitize(os), *a = sanitize(arch);
            return al_error_set(err, AL_E_PARSE, 0,
                                "image config: platform \"%s/%s\" has a field that is too long "
                                "or has unexpected characters",
                                o, a);
        }
        c->has_platform = true;
    }

    json_t *rootfs = json_object_get(root, "rootfs");
    if (rootfs != NULL) {
        if (!json_is_object(rootfs))
            return al_error_set(err, AL_E_PARSE, 0, "image config: \"rootfs\" must be an object");
        json_t *ids = json_object_get(rootfs, "diff_ids");
        if (ids != NULL) {
            if (!json_is_array(ids))
                return al_error_set(err, AL_E_PARSE, 0,
                                    "image config: \"rootfs.diff_ids\" must be an array");
            size_t n = json_array_size(ids);
            /* One diff_id per layer: more than a manifest may carry is no image we can use. */
            if (n > AL_MANIFEST_MAX_LAYERS)
                return al_error_set(err, AL_E_SIZE, 0,
                                    "image config: %zu diff_ids, more than the limit of %u", n,
                                    AL_MANIFEST_MAX_LAYERS);
            c->diff_ids = al_xcalloc(n, sizeof(*c->diff_ids));
            for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(ids, i);
                if (!json_is_string(v))
                    return al_error_set(err, AL_E_PARSE, 0,
                                        "image config: rootfs.diff_ids[%zu] must be a string", i);
                if ((r = al_digest_check(json_string_value(v), err)) < 0)
                    return wrap(r, err, "image config: rootfs.diff_ids[%zu]", i);
                c->diff_ids[i] = al_xstrdup(json_string_value(v));
                c->n_diff_ids = i + 1;
            }
        }
    }
    *out = al_steal_ptr(&c);
    return 0;
}

/* The first n bytes of s end with suffix, in any case (media types). */
static bool ends_with_nocase(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

al_compression al_layer_compression(const char *media_type)
{
    if (media_type == NULL)
        return AL_COMP_UNKNOWN;
    const char *s = media_type;
    size_t n = media_type_span(&s);
    /* By suffix, so the foreign (docker) and nondistributable (OCI) layer
     * types land with their plain siblings. Docker spells ".tar.gzip",
     * OCI "+gzip". A bare "tar" must follow a '.', so "application/x-tar"
     * stays UNKNOWN. */
    if (ends_with_nocase(s, n, ".tar+gzip") || ends_with_nocase(s, n, ".tar.gzip"))
        return AL_COMP_GZIP;
    if (ends_with_nocase(s, n, ".tar+zstd") || ends_with_nocase(s, n, ".tar.zstd"))
        return AL_COMP_ZSTD;
    if (ends_with_nocase(s, n, ".tar"))
        return AL_COMP_NONE;
    return AL_COMP_UNKNOWN;
}
