/* Bundles: what airlock-export --bundle writes and airlock-fetch --import
 * applies (docs/DESIGN.md, "Bundles"; docs/bundle-manifest.schema.json).
 *
 * A bundle is a tar (zstd-compressed when its name ends in .zst):
 *
 *   airlock-volume.json       only in a bundle split into volumes: this
 *                             volume's number, the count, the bundle id, the
 *                             manifest's digest and the members it holds
 *   airlock-bundle.json       the bundle manifest (in volume 1)
 *   blobs/sha256/<hex>        one member per blob, or per part of a blob
 *                             split across volumes: always named by the
 *                             digest of its own bytes
 *
 * The manifest says where the bundle comes from (the source store's id),
 * which bundle it builds on, the tags it carries (name, digest, media type,
 * size, platforms, recent history), every blob it carries (digest, size,
 * and the parts of a split blob) with one checksum over that list, the
 * blobs its tags reach that it does not carry (the far side must hold
 * them), and what the far side holds once it is applied (a valid --since
 * for the next bundle).
 *
 * Everything here parses hostile input: a manifest is refused above
 * AL_BUNDLE_MANIFEST_MAX bytes, every digest is validated, every count is
 * bounded, and a format version newer than this airlock's is refused with
 * AL_E_UNSUPPORTED (never half-read). */
#ifndef AL_BUNDLE_H
#define AL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

#define AL_BUNDLE_FORMAT 1 /* "bundle_format" written; newer ones are refused */
#define AL_BUNDLE_MANIFEST_NAME "airlock-bundle.json"
#define AL_BUNDLE_VOLUME_NAME "airlock-volume.json"
/* A manifest (or volume header) larger than this is refused: it lists
 * every blob, about 100 bytes each, so 64 MiB is over half a million. */
#define AL_BUNDLE_MANIFEST_MAX (64u << 20)
#define AL_BUNDLE_ID_LEN 32 /* 128 random bits, lowercase hex */
#define AL_BUNDLE_ID_BUF (AL_BUNDLE_ID_LEN + 1)
/* Entries of tag_history carried per tag, most recent first. */
#define AL_BUNDLE_HISTORY 10
/* Volumes are OUT.001 ... OUT.NNN. */
#define AL_BUNDLE_MAX_VOLUMES 9999u

typedef struct al_bundle_part {
    char digest[AL_DIGEST_BUF];
    uint64_t size;
} al_bundle_part;

/* A blob the bundle carries; parts (n_parts >= 2) when it is split across
 * volumes, their sizes adding up to size. */
typedef struct al_bundle_blob {
    char digest[AL_DIGEST_BUF];
    uint64_t size;
    al_bundle_part *parts;
    size_t n_parts;
} al_bundle_blob;

typedef struct al_bundle_history {
    char digest[AL_DIGEST_BUF];     /* what the tag pointed at from `at` on */
    char old_digest[AL_DIGEST_BUF]; /* before; "" when the tag was first seen */
    double at;                      /* epoch seconds */
} al_bundle_history;

typedef struct al_bundle_tag {
    char *name; /* tags.full_name: "docker.io/library/busybox:1.36" */
    char digest[AL_DIGEST_BUF];
    char *media_type; /* of the root manifest */
    int64_t size;     /* of the root manifest */
    char **platforms; /* "linux/amd64", ... */
    size_t n_platforms;
    al_bundle_history *history; /* most recent first */
    size_t n_history;
} al_bundle_tag;

/* A (name, digest) pair the far side holds; name NULL: under any name. */
typedef struct al_bundle_held {
    char *name;
    char digest[AL_DIGEST_BUF];
} al_bundle_held;

typedef struct al_bundle_manifest {
    int format;                          /* AL_BUNDLE_FORMAT */
    char *version;                       /* of the airlock that wrote it */
    char id[AL_BUNDLE_ID_BUF];           /* this bundle */
    char source_store[AL_BUNDLE_ID_BUF]; /* the store it was made from */
    char base[AL_BUNDLE_ID_BUF];         /* the bundle it builds on; "" for none */
    char *since_kind;                    /* what --since was ("bundle", "inventory", ...); NULL */
    double created_at;                   /* epoch seconds, millisecond precision */
    unsigned volumes;                    /* 1 when not split */
    al_bundle_tag *tags;
    size_t n_tags;
    al_bundle_blob *blobs; /* carried, in member order */
    size_t n_blobs;
    char checksum[AL_DIGEST_BUF]; /* over blobs: al_bundle_checksum */
    al_bundle_part *omitted;      /* reached by the tags, not carried: the far side holds them */
    size_t n_omitted;
    al_bundle_held *holds; /* what the far side holds once this bundle is applied */
    size_t n_holds;
} al_bundle_manifest;

void al_bundle_manifest_dispose(al_bundle_manifest *m);

/* The checksum of the blob list: the sha256 of one line per blob,
 * "<digest> <size>" followed by " <part digest> <part size>" for each
 * part, and "\n". */
void al_bundle_checksum(const al_bundle_manifest *m, char out[AL_DIGEST_BUF]);

/* The manifest as compact JSON with a trailing newline (malloc'd; *len_out
 * its length). m->checksum is written as it is: set it first. */
char *al_bundle_manifest_json(const al_bundle_manifest *m, size_t *len_out);

/* Parse and validate a manifest. Fails with AL_E_UNSUPPORTED for a newer
 * bundle_format ("bundle format version 2 is newer than this airlock
 * (1)"), AL_E_DIGEST when the checksum does not match the blob list, and
 * AL_E_PARSE for anything else that is not a well-formed manifest, naming
 * the field ("tags[3].digest: ..."). */
int al_bundle_manifest_parse(al_bundle_manifest *out, const char *text, size_t len, al_error **err);

/* The header of one volume of a split bundle. */
typedef struct al_bundle_volume {
    int format;
    char bundle_id[AL_BUNDLE_ID_BUF];
    unsigned volume, volumes;            /* 1-based number, and the count */
    char manifest_digest[AL_DIGEST_BUF]; /* of airlock-bundle.json's bytes */
    al_bundle_part *members;             /* the blob members of this volume, in order */
    size_t n_members;
} al_bundle_volume;

void al_bundle_volume_dispose(al_bundle_volume *v);
char *al_bundle_volume_json(const al_bundle_volume *v, size_t *len_out);
int al_bundle_volume_parse(al_bundle_volume *out, const char *text, size_t len, al_error **err);

/* Member names. */
/* True (and the digest in out) for "blobs/sha256/<64 lowercase hex>". */
bool al_bundle_member_digest(const char *name, char out[AL_DIGEST_BUF]);
/* "blobs/sha256/<hex>" of a valid digest (malloc'd). */
char *al_bundle_member_name(const char *digest);

/* Ids: 32 lowercase hex digits. */
bool al_bundle_id_valid(const char *s);
/* A new random id (getrandom). */
void al_bundle_id_new(char out[AL_BUNDLE_ID_BUF]);

/* Volume file names: "OUT.001" for base "OUT" and n 1 (malloc'd). */
char *al_bundle_volume_path(const char *base, unsigned n);
/* When path ends in ".NNN" (three or more digits, not all zero): true,
 * *base_out its stem (malloc'd) and *n_out the number. */
bool al_bundle_volume_split(const char *path, char **base_out, unsigned *n_out);

#endif
