/* Shared by check.c (dispatch, output) and the checkers of each kind of
 * archive (check-image.c). */
#ifndef AL_EXPORT_CHECK_PRIVATE_H
#define AL_EXPORT_CHECK_PRIVATE_H

#include "check-scan.h"
#include "check.h"

/* Record a problem; member may be NULL (the archive as a whole) and is
 * made printable here. */
void al_check_add(al_check_result *r, al_check_severity sev, const char *member, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

/* s through al_sanitize (control bytes and invalid UTF-8 as \xNN, one
 * line; malloc'd): member names and JSON strings come from the archive and
 * may hold anything. */
char *al_check_printable(const char *s);

/* An image archive: docker save, OCI layout, or both. */
void al_check_image_archive(al_check_result *r, const al_scan *s);

/* A bundle, or a volume of one (and then every other volume of its set,
 * found beside path): s is the scan of path. */
void al_check_bundle(al_check_result *r, const al_scan *s, const char *path);

#endif
