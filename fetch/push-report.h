/* What a push run leaves besides the registry's new content: the
 * machine-readable report (--json FILE, described by
 * docs/push-report.schema.json), written atomically. It holds no
 * credentials: no command line, no headers, redacted URLs only. */
#ifndef AL_PUSH_REPORT_H
#define AL_PUSH_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "push.h"

#define AL_PUSH_REPORT_FORMAT 1

typedef struct al_push_totals {
    int images, pushed, unchanged, failed;
    int blobs_pushed, blobs_mounted, blobs_present, manifests, restarts;
    uint64_t bytes;
} al_push_totals;
void al_push_totals_of(al_push_totals *out, const al_push_result *r, size_t n);

/* "pushed", "unchanged", "failed". */
const char *al_push_status_name(al_push_status s);

typedef struct al_push_report {
    const char *version;
    const char *store_dir;
    const char *host, *prefix;
    const char *scheme; /* "https", "http", or NULL when never spoken to */
    double started_at, finished_at, t0, seconds;
    const al_push_result *results;
    size_t n_results;
    const al_engine_stats *stats;            /* NULL when nothing was sent */
    const char *registries_yaml, *hosts_dir; /* files written, or NULL */
    int exit_status;
    const al_error *error; /* what stopped the run, or NULL */
} al_push_report;

char *al_push_report_json(const al_push_report *rep);

#endif
