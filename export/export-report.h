/* airlock-export's run report (--json FILE), described by
 * docs/export-report.schema.json, and the atomic file write that the
 * report and the store tools' JSON (--list/--inspect/--verify-store
 * --json FILE) share.
 *
 * The report is assembled at the end of a run from what main already
 * holds: the refs as given, the selection (images found, and the problems
 * that stopped the run before any output), and one entry per output file
 * that main fills as each tarball is written. It is written for every run
 * that got past the argument checks (exit 0, 1 or 3), never for a usage
 * error (exit 2): the same policy as airlock-fetch --json. */
#ifndef AL_EXPORT_REPORT_H
#define AL_EXPORT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../common/platform.h"
#include "../common/reflist.h"
#include "sink.h"
#include "archive.h"
#include "select.h"

#define AL_EXPORT_REPORT_FORMAT 1 /* "report_format"; bump on an incompatible change */

typedef enum {
    AL_OUTPUT_NOT_WRITTEN = 0, /* the run stopped before this file */
    AL_OUTPUT_WRITTEN = 1,
    AL_OUTPUT_FAILED = 2, /* started and removed again (its .partial) */
} al_output_status;

/* One tarball: one per requested platform. */
typedef struct al_export_output {
    char *path; /* OUT with {arch} replaced; "-" for stdout */
    al_platform platform;
    al_output_status status;
    uint64_t bytes;      /* written to the file (after compression); 0 unless written */
    uint64_t tar_bytes;  /* the uncompressed tar stream */
    size_t blobs;        /* distinct blobs in it */
    uint64_t blob_bytes; /* their size as stored */
    size_t images;
    double seconds;
    al_error *error; /* why this file failed, or NULL */
} al_export_output;

/* An image left out of one platform's tarball by --skip-missing-platforms. */
/* An image left out of one platform's output: by --skip-missing-platforms
 * (why "platform"), or because --since FILE says the far side holds it
 * (why "since", with its digests, so that this report can be the next
 * run's --since). */
typedef struct al_export_skip {
    char *ref;       /* full normalised ref */
    int platform;    /* index into outputs */
    char *reason;    /* "docker.io/x:1 has no linux/arm64 manifest (it has linux/amd64)" */
    const char *why; /* "platform" or "since" (static) */
    char root_digest[AL_DIGEST_BUF], manifest_digest[AL_DIGEST_BUF]; /* since only */
} al_export_skip;

typedef struct al_export_report {
    const char *version;            /* borrowed */
    const char *store_dir;          /* borrowed, as given */
    double started_at, finished_at; /* epoch seconds */
    al_export_format format;
    al_sink_kind compression; /* of OUT (from --compress or its suffix) */
    int level;                /* --level; 0 = the kind's default */
    bool decompress_zstd, verify, all;
    const al_reflist *refs;    /* borrowed: the refs as given */
    const al_selection *sel;   /* borrowed; NULL until the selection was made */
    al_export_output *outputs; /* owned, n_outputs; in platform order */
    size_t n_outputs;
    const al_export_skip *skipped; /* borrowed; --skip-missing-platforms */
    size_t n_skipped;
    bool skip_missing_platforms;
    const char *since_path;             /* borrowed; --since FILE or NULL */
    const struct al_split_files *split; /* borrowed; --split image, else NULL */
    int exit_status;
    al_error *error; /* owned: what stopped the run, or NULL */
} al_export_report;

/* Fill the run-wide fields and one not-written output per platform, path
 * from the template (al_export_output_path). store_dir, version and refs
 * are borrowed. */
void al_export_report_init(al_export_report *rep, const char *version, const char *store_dir,
                           const char *output, const al_platform *platforms, size_t n_platforms);
void al_export_report_dispose(al_export_report *rep);

/* Record what stopped the run (kept when one is already there: the first
 * cause is the one worth reading). Takes e. */
void al_export_report_set_error(al_export_report *rep, al_error *e);

/* OUT with every {arch} replaced by the platform's file-name tag. */
char *al_export_output_path(const char *tmpl, const al_platform *p);

/* The JSON text (malloc'd, one trailing newline). */
char *al_export_report_json(const al_export_report *rep);

/* Write text to path atomically (al_file_write_atomic); "-" writes to
 * stdout. */
int al_export_write_text(const char *path, const char *text, size_t len, al_error **err);

#endif
