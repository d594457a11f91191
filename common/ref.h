/* Image references: the docker reference grammar with docker's
 * normalisation.
 *
 *   busybox                 -> docker.io/library/busybox:latest
 *   rancher/pause:3.6       -> docker.io/rancher/pause:3.6
 *   localhost:5000/a/b@sha256:... -> digest-only, no tag
 *   index.docker.io/x       -> docker.io/library/x:latest
 *
 * Rules: the first component is a registry when it contains '.' or ':' or
 * is "localhost"; path components are [a-z0-9]+ joined by separators
 * ('.', '_', '__', '-'+); tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; the
 * name (domain + "/" + path) is at most 255 characters; the digest is
 * validated with al_digest_check. A ref without tag and without digest
 * gets tag "latest". */
#ifndef AL_REF_H
#define AL_REF_H

#include <stdbool.h>

#include "error.h"

typedef struct al_ref {
    char *domain; /* "docker.io", "quay.io", "127.0.0.1:5000" */
    char *path;   /* "library/busybox" */
    char *tag;    /* NULL when digest-only */
    char *digest; /* NULL when none */
} al_ref;

/* Parse and normalise. AL_E_USAGE with the reason, e.g.
 * "invalid reference \"Busybox\": repository name must be lowercase". */
int al_ref_parse(al_ref **out, const char *s, al_error **err);
void al_ref_free(al_ref *r);
al_ref *al_ref_dup(const al_ref *r);

/* "docker.io/library/busybox" (malloc'd). */
char *al_ref_name(const al_ref *r);
/* Full normalised form: name[:tag][@digest] (malloc'd). */
char *al_ref_full(const al_ref *r);
/* docker's familiar form: "busybox:latest", "rancher/pause:3.6",
 * "quay.io/x/y:1" (malloc'd). */
char *al_ref_familiar(const al_ref *r);

/* Host to contact for the ref's domain: "registry-1.docker.io" for
 * docker.io, the domain itself otherwise (borrowed). */
const char *al_ref_endpoint_host(const al_ref *r);

#endif
