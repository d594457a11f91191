/* airlock-export --bundle OUT: one run, from the store's opening to the
 * run report (main.c parses the flags and hands them over).
 *
 * Order: --since is read, the store opened read-only (holding the GC lock
 * shared), the bundle planned (bundle-plan.h: every problem with a ref is
 * printed, then nothing is written), the files checked for (none may
 * exist without --force), written (bundle-write.h), and the summary
 * printed on stderr. With --json FILE the run report
 * (docs/bundle-report.schema.json) is written for every run that got past
 * the flags, failed or not. */
#ifndef AL_EXPORT_BUNDLE_RUN_H
#define AL_EXPORT_BUNDLE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/reflist.h"
#include "sink.h"

typedef struct al_bundle_run_opts {
    const char *store_dir;
    const char *out; /* --bundle OUT */
    const al_reflist *refs;
    bool all;
    const char *since_path; /* --since FILE or NULL */
    uint64_t volume_size;   /* --volume-size, 0: one file */
    bool compress_set;      /* --compress given; else the kind from OUT's suffix */
    al_sink_kind compress;
    int level;
    bool verify;
    bool force;
    bool progress; /* draw progress on stderr */
    const char *json_path;
    const char *version;
} al_bundle_run_opts;

/* The exit status: 0, 1 (refs at fault, a write failed), 2 (--since is
 * not a file airlock reads), 3 (the store is unusable). */
int al_bundle_run(const al_bundle_run_opts *o);

#endif
