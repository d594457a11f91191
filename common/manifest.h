/* Manifests: parse the four distributable media types into one small
 * struct. The raw bytes are never modified; this only reads them.
 *
 *   application/vnd.docker.distribution.manifest.v2+json       AL_MK_DOCKER_MANIFEST
 *   application/vnd.docker.distribution.manifest.list.v2+json  AL_MK_DOCKER_LIST
 *   application/vnd.oci.image.manifest.v1+json                 AL_MK_OCI_MANIFEST
 *   application/vnd.oci.image.index.v1+json                    AL_MK_OCI_INDEX
 *
 * Schema 1 (application/vnd.docker.distribution.manifest.v1+json,
 * ...v1+prettyjws, or "schemaVersion": 1) is refused with AL_E_UNSUPPORTED
 * and a message that says so. Inputs above AL_MANIFEST_MAX bytes are
 * refused (AL_E_SIZE). */
#ifndef AL_MANIFEST_H
#define AL_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "platform.h"

#define AL_MANIFEST_MAX (4u * 1024u * 1024u)
#define AL_CONFIG_MAX (8u * 1024u * 1024u)
#define AL_INDEX_MAX_ENTRIES 1024u
#define AL_MANIFEST_MAX_LAYERS 1024u

#define AL_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define AL_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define AL_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define AL_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define AL_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define AL_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
/* What we send as Accept for manifests: the four above. */
#define AL_MANIFEST_ACCEPT                                                                         \
    AL_MT_OCI_INDEX ", " AL_MT_DOCKER_LIST ", " AL_MT_OCI_MANIFEST ", " AL_MT_DOCKER_MANIFEST

typedef enum {
    AL_MK_DOCKER_MANIFEST = 1,
    AL_MK_DOCKER_LIST,
    AL_MK_OCI_MANIFEST,
    AL_MK_OCI_INDEX,
} al_manifest_kind;

typedef struct al_descriptor {
    char *media_type;           /* as written (may be NULL for OCI index children that omit it) */
    char digest[AL_DIGEST_BUF]; /* validated */
    int64_t size;               /* >= 0 */
    bool has_platform;
    al_platform platform; /* normalised; valid when has_platform */
} al_descriptor;

typedef struct al_manifest {
    al_manifest_kind kind;
    const char *media_type; /* one of the AL_MT_* constants (static) */
    /* Image manifests: */
    al_descriptor config;
    al_descriptor *layers;
    size_t n_layers;
    /* Indexes: */
    al_descriptor *children;
    size_t n_children;
} al_manifest;

static inline bool al_manifest_is_index(const al_manifest *m)
{
    return m->kind == AL_MK_DOCKER_LIST || m->kind == AL_MK_OCI_INDEX;
}

/* Parse `len` bytes. `content_type` is the HTTP Content-Type (may be
 * NULL; parameters after ';' are ignored). The body's "mediaType" wins;
 * without it the Content-Type decides; without both, the shape
 * ("manifests" vs "config") does. A mismatch between a present mediaType
 * and the shape is AL_E_PARSE. Every descriptor's digest is validated and
 * its size must be a non-negative integer. */
int al_manifest_parse(al_manifest **out, const void *buf, size_t len, const char *content_type,
                      al_error **err);
void al_manifest_free(al_manifest *m);

/* Media type constant for a kind. */
const char *al_manifest_kind_media_type(al_manifest_kind k);
/* Kind for a media type string (parameters ignored); 0 when not one of the four. */
al_manifest_kind al_manifest_kind_from_media_type(const char *mt);

/* What an image config says about the image: platform, and the
 * uncompressed layer digests (rootfs.diff_ids) in order. */
typedef struct al_image_config {
    al_platform platform;
    bool has_platform;
    char **diff_ids; /* validated digests */
    size_t n_diff_ids;
} al_image_config;

int al_image_config_parse(al_image_config **out, const void *buf, size_t len, al_error **err);
void al_image_config_free(al_image_config *c);

/* Layer compression from a layer media type. */
typedef enum { AL_COMP_NONE, AL_COMP_GZIP, AL_COMP_ZSTD, AL_COMP_UNKNOWN } al_compression;
al_compression al_layer_compression(const char *media_type);

#endif
