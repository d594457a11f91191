/* Fuzz target for manifests and indexes: al_manifest_parse without a
 * Content-Type and with each of a set of Content-Types a registry may send.
 * Checks the parsed struct (kinds, limits, valid digests, normalised
 * platforms, printable bounded messages) and two consistency rules of the
 * header: a Content-Type naming the kind that was inferred changes
 * nothing, and a body that carries "mediaType" wins over any Content-Type. */
#include "fuzz-helpers.h"

#include <jansson.h>

#include "manifest.h"

#define MAX_SIZE ((int64_t)1 << 53)

static const char *const content_types[] = {
    AL_MT_DOCKER_MANIFEST,
    AL_MT_DOCKER_LIST,
    AL_MT_OCI_MANIFEST,
    AL_MT_OCI_INDEX "; charset=utf-8",
    "APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON",
    "application/json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "text/html; charset=UTF-8",
    "",
};

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_platform(const al_platform *p)
{
    FUZZ_CHECK(p->os[0] != '\0' && p->arch[0] != '\0', "platform without os or arch");
    FUZZ_CHECK(memchr(p->os, '\0', sizeof(p->os)) && memchr(p->arch, '\0', sizeof(p->arch)) &&
                   memchr(p->variant, '\0', sizeof(p->variant)),
               "platform field not terminated");
    FUZZ_CHECK(!strchr(p->os, '/') && !strchr(p->arch, '/') && !strchr(p->variant, '/'),
               "'/' in a platform field");
    al_platform again;
    FUZZ_CHECK(al_platform_set(&again, p->os, p->arch, p->variant[0] ? p->variant : NULL),
               "normalised platform refused");
    FUZZ_CHECK(al_platform_equal(&again, p), "normalising %s/%s/%s is not idempotent", p->os,
               p->arch, p->variant);
}

static void check_descriptor(const al_descriptor *d, bool need_media_type, bool platform_ok)
{
    FUZZ_CHECK(al_digest_valid(d->digest), "invalid digest kept");
    FUZZ_CHECK(d->size >= 0 && d->size <= MAX_SIZE, "size %lld", (long long)d->size);
    FUZZ_CHECK(!need_media_type || d->media_type != NULL, "descriptor without mediaType");
    FUZZ_CHECK(platform_ok || !d->has_platform, "platform where none is read");
    if (d->has_platform)
        check_platform(&d->platform);
}

static void check_manifest(const al_manifest *m)
{
    FUZZ_CHECK(m->kind >= AL_MK_DOCKER_MANIFEST && m->kind <= AL_MK_OCI_INDEX, "kind %d", m->kind);
    FUZZ_CHECK(m->media_type == al_manifest_kind_media_type(m->kind), "media type of kind");
    FUZZ_CHECK(al_manifest_kind_from_media_type(m->media_type) == m->kind, "kind of media type");
    if (al_manifest_is_index(m)) {
        FUZZ_CHECK(m->n_layers == 0 && m->layers == NULL && m->config.media_type == NULL,
                   "index with image parts");
        FUZZ_CHECK(m->n_children <= AL_INDEX_MAX_ENTRIES, "%zu children", m->n_children);
        for (size_t i = 0; i < m->n_children; i++)
            check_descriptor(&m->children[i], false, true);
    } else {
        FUZZ_CHECK(m->n_children == 0 && m->children == NULL, "image manifest with children");
        FUZZ_CHECK(m->n_layers <= AL_MANIFEST_MAX_LAYERS, "%zu layers", m->n_layers);
        check_descriptor(&m->config, true, false);
        for (size_t i = 0; i < m->n_layers; i++) {
            check_descriptor(&m->layers[i], true, false);
            (void)al_layer_compression(m->layers[i].media_type);
        }
    }
}

static bool descriptor_eq(const al_descriptor *a, const al_descriptor *b)
{
    return str_eq(a->media_type, b->media_type) && strcmp(a->digest, b->digest) == 0 &&
           a->size == b->size && a->has_platform == b->has_platform &&
           (!a->has_platform || al_platform_equal(&a->platform, &b->platform));
}

static bool manifest_eq(const al_manifest *a, const al_manifest *b)
{
    if (a->kind != b->kind || a->n_layers != b->n_layers || a->n_children != b->n_children)
        return false;
    if (!al_manifest_is_index(a) && !descriptor_eq(&a->config, &b->config))
        return false;
    for (size_t i = 0; i < a->n_layers; i++)
        if (!descriptor_eq(&a->layers[i], &b->layers[i]))
            return false;
    for (size_t i = 0; i < a->n_children; i++)
        if (!descriptor_eq(&a->children[i], &b->children[i]))
            return false;
    return true;
}

/* Parse and check; returns the code, *out the manifest on success. */
static int parse(al_manifest **out, const char *buf, size_t size, const char *ct, char **msg)
{
    al_error *err = NULL;
    int rc = al_manifest_parse(out, buf, size, ct, &err);
    *msg = NULL;
    if (rc < 0) {
        FUZZ_CHECK(*out == NULL, "failure left a manifest");
        FUZZ_CHECK(err != NULL && err->code == rc, "failure %d without its error", rc);
        FUZZ_CHECK(rc == AL_E_PARSE || rc == AL_E_SIZE || rc == AL_E_UNSUPPORTED, "code %d", rc);
        FUZZ_CHECK(printable(err->msg) && strlen(err->msg) < 1024,
                   "message not printable or too long (%zu bytes, content type %s)",
                   strlen(err->msg), ct ? ct : "none");
        *msg = al_steal_ptr(&err->msg);
        al_error_free(err);
        return rc;
    }
    FUZZ_CHECK(rc == 0 && *out != NULL && err == NULL, "success without a manifest");
    check_manifest(*out);
    return 0;
}

/* True when the body is a JSON object with a string "mediaType". */
static bool body_has_media_type(const char *buf, size_t size)
{
    json_t *root = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
    bool has = json_is_object(root) && json_is_string(json_object_get(root, "mediaType"));
    json_decref(root);
    return has;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly `size` bytes: al_manifest_parse takes a length, not a string. */
    _cleanup_free_ char *buf = al_xmalloc(size ? size : 1);
    if (size > 0)
        memcpy(buf, data, size);

    al_manifest *base = NULL;
    _cleanup_free_ char *base_msg = NULL;
    int base_rc = parse(&base, buf, size, NULL, &base_msg);
    bool body_wins = body_has_media_type(buf, size);

    if (base != NULL) {
        al_manifest *m = NULL;
        _cleanup_free_ char *msg = NULL;
        const char *ct = al_manifest_kind_media_type(base->kind);
        int rc = parse(&m, buf, size, ct, &msg);
        FUZZ_CHECK(rc == 0, "Content-Type %s, the inferred kind, fails: %s", ct, msg);
        FUZZ_CHECK(manifest_eq(m, base), "Content-Type %s changes the result", ct);
        al_manifest_free(m);
    }
    for (size_t i = 0; i < AL_ARRAY_SIZE(content_types); i++) {
        al_manifest *m = NULL;
        _cleanup_free_ char *msg = NULL;
        int rc = parse(&m, buf, size, content_types[i], &msg);
        if (body_wins) {
            FUZZ_CHECK(rc == base_rc, "body has mediaType, but Content-Type %s turns %d into %d",
                       content_types[i], base_rc, rc);
            FUZZ_CHECK(m == NULL || manifest_eq(m, base), "Content-Type %s changes the result",
                       content_types[i]);
        }
        al_manifest_free(m);
    }
    al_manifest_free(base);
    return 0;
}
