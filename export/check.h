/* airlock-export --check ARCHIVE...: an offline check of an archive made
 * by anything, with no store.
 *
 * al_check_file() reads the file once (check-scan.h), then decides what
 * it is and checks it as such. Today one kind is known: an image archive
 * (docker save, OCI layout, or both: "hybrid"), checked for what docker
 * load and containerd import would reject or get wrong. The bundles that
 * airlock-export --bundle will write are another kind: their check plugs
 * in at the same place (check_kind in check.c), after the same scan.
 *
 * Problems have a severity: an error is something a consumer would
 * refuse or get wrong (a missing blob, a layer that does not decompress
 * to its diff_id, a name containerd would mangle, a zstd window k3s
 * cannot decode, a truncated archive, an unsafe member); a note is worth
 * knowing but loads fine (an index that lists a platform the archive does
 * not carry, a zstd layer docker 20.10 cannot read).
 *
 * A bundle (airlock-export --bundle) is told apart by its first member
 * (the bundle manifest or a volume header) and checked as one
 * (check-bundle.c). A volume is checked with every other volume of its
 * set, found beside it by name: one result for the bundle, which lists
 * the files it read (covered), so that naming several volumes of one
 * bundle checks it once. */
#ifndef AL_EXPORT_CHECK_H
#define AL_EXPORT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../common/digest.h"
#include "../common/error.h"

#define AL_CHECK_REPORT_FORMAT 1

typedef enum { AL_CHECK_ERROR, AL_CHECK_NOTE } al_check_severity;

typedef struct al_check_problem {
    al_check_severity severity;
    char *member; /* printable; NULL when it concerns the archive as a whole */
    char *message;
} al_check_problem;

/* One image as a consumer would load it. */
typedef struct al_check_image {
    char *name;     /* as the archive names it (printable); NULL when unnamed */
    char *platform; /* from its config: "linux/amd64"; NULL when it says none */
    char manifest_digest[AL_DIGEST_BUF]; /* "" for a docker-only entry */
    char config_digest[AL_DIGEST_BUF];
    size_t layers;
    uint64_t bytes; /* config and layers as stored */
} al_check_image;

typedef struct al_check_result {
    char *path;
    const char *kind;        /* "hybrid", "docker", "oci", "unknown" (static) */
    const char *compression; /* "none", "gzip", "zstd", ... (static); NULL if unread */
    size_t zstd_frames;
    uint64_t zstd_window; /* the largest frame window, bytes */
    uint64_t file_bytes, data_bytes;
    size_t members, blobs;
    al_check_image *images;
    size_t n_images;
    char **platforms; /* distinct, sorted */
    size_t n_platforms;
    al_check_problem *problems;
    size_t n_problems, n_errors, n_notes;
    /* A bundle: its id, the bundle it builds on ("" none), its volume
     * count, and every file read (the volumes). NULL/0 otherwise. */
    char *bundle_id, *bundle_base;
    unsigned bundle_volumes;
    char **covered;
    size_t n_covered;
} al_check_result;

/* Check one file. Everything wrong with it (down to "cannot open") is a
 * problem in out; the return value is always 0 (the signature leaves room
 * for failures that are not about the file). */
int al_check_file(al_check_result *out, const char *path, al_error **err);
void al_check_result_dispose(al_check_result *r);
/* True when r read path (a volume of the bundle it checked). */
bool al_check_covers(const al_check_result *r, const char *path);

/* Text: one line per problem, "ARCHIVE: MEMBER: message" (notes say
 * "note:"), then the summary line. */
void al_check_print(FILE *out, const al_check_result *r);
/* The JSON report of several results (docs/check-report.schema.json),
 * malloc'd, one trailing newline. */
char *al_check_report_json(const al_check_result *results, size_t n, const char *version);

#endif
