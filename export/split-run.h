/* --split image, one platform's directory: write the archives that are new
 * or changed, leave the others untouched, remove the ones they replace,
 * and with --clean the rest of airlock's archives there (split.h says
 * which files are airlock's). The archive itself is written by the
 * caller's writer, so every archive airlock writes goes through one
 * function (main.c). */
#ifndef AL_EXPORT_SPLIT_RUN_H
#define AL_EXPORT_SPLIT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "sink.h"
#include "archive.h"
#include "select.h"

typedef struct al_split_writer {
    /* Write the archive of `one` (one image) to path, atomically; *bytes
     * gets the file's size. */
    int (*write)(void *ud, const al_export_set *one, const char *path, uint64_t *bytes,
                 al_error **err);
    void *ud;
} al_split_writer;

typedef enum {
    AL_SPLIT_WRITTEN,
    AL_SPLIT_UNCHANGED, /* there, same recipe, untouched: left alone */
    AL_SPLIT_REPLACED,  /* an earlier archive of the same ref, removed after its successor */
    AL_SPLIT_REMOVED,   /* --clean: an image no longer exported */
} al_split_status;

/* One file of the directory, for the log and the run report. */
typedef struct al_split_file {
    char *path;
    int platform; /* index into the run's platforms */
    char *ref;    /* the image's full ref; for removed files, the one the state names, or NULL */
    char manifest_digest[AL_DIGEST_BUF]; /* "" for removed files */
    al_split_status status;
    uint64_t bytes;
} al_split_file;

typedef struct al_split_opts {
    al_export_format format;
    bool decompress_zstd;
    al_sink_kind kind;
    int level;
    bool clean;
    int platform; /* index, copied into each al_split_file */
} al_split_opts;

typedef struct al_split_files {
    al_split_file *f;
    size_t n;
} al_split_files;

/* write: the images to write (when new or changed). keep: every image
 * selected for this platform (--clean keeps their archives, those that
 * --since left out included). dir is created when missing. Stops at the
 * first archive that cannot be written. */
int al_split_platform(al_split_files *files, const char *dir, const al_export_set *write,
                      const al_export_set *keep, const al_split_opts *o, const al_split_writer *w,
                      al_error **err);

void al_split_files_dispose(al_split_files *f);
const char *al_split_status_name(al_split_status s);

#endif
