/* What a fetch run leaves behind besides the store: the machine-readable
 * report (--json FILE, described by docs/fetch-report.schema.json) and the
 * lock file (--lock FILE: every ref of the run pinned by the digest
 * fetched, usable as a list for airlock-export -f or airlock-fetch -f).
 *
 * Both files are written atomically (temp file in the same directory,
 * fsync, rename, fsync of the directory). Neither holds credentials: no
 * command line, no headers; error messages carry redacted URLs only. */
#ifndef AL_REPORT_H
#define AL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "plan.h"
#include "prune.h"

#define AL_REPORT_FORMAT 1 /* "report_format" of the JSON; bump on incompatible change */

/* airlock-fetch --import BUNDLE: what was applied (the "import" object). */
typedef struct al_import_summary {
    const char *bundle;       /* BUNDLE as given */
    const char *id;           /* "" until the manifest was read */
    const char *source_store; /* "" likewise */
    const char *base;         /* "" for a bundle built on none */
    double created_at;        /* 0 until the manifest was read */
    unsigned volumes;
    const char *status; /* "applied", "already applied", "refused" */
    double applied_at;  /* when it was applied (now, or the first time); 0 when refused */
    size_t blobs;       /* carried by the bundle */
    size_t blobs_new;   /* read from it by this run */
    size_t omitted;     /* reached by its tags, held here already */
    uint64_t bytes_new;
} al_import_summary;

typedef struct al_report {
    int64_t run_id;                 /* 0 when the run never got a runs row */
    double started_at, finished_at; /* epoch seconds */
    double t0;                      /* al_mono() when the fetch started (image durations) */
    const char *store_dir;          /* borrowed */
    const char *version;            /* "0.1.0" */
    const al_image_result *results; /* borrowed; n_results entries */
    size_t n_results;
    const al_engine_stats *stats; /* NULL when no fetch ran */
    double seconds;               /* duration of the fetch */
    int exit_status;
    const al_error *error;           /* what stopped the run, or NULL (borrowed) */
    const al_prune_report *prune;    /* NULL when no prune was asked for */
    const al_import_summary *import; /* NULL unless --import */
} al_report;

/* Totals over the images, as the summary line and the runs table use them:
 * ok counts every image that did not fail (unchanged and moved included);
 * new_blobs and bytes count every image, failed ones too (what a failed
 * image downloaded is stored all the same). */
typedef struct al_report_totals {
    int images, ok, unchanged, moved, failed;
    int new_blobs;
    uint64_t bytes;
} al_report_totals;
void al_report_totals_of(al_report_totals *out, const al_image_result *r, size_t n);

/* "ok", "unchanged", "moved", "failed". */
const char *al_report_status_name(al_image_status s);

/* The texts (malloc'd). */
char *al_report_json(const al_report *rep);
char *al_report_lock_text(const al_report *rep);

#endif
