/* --split image: one archive per image (and platform) in a directory, for
 * k3s' agent/images/, whose import cache (.cache.json) skips an archive
 * whose size and mtime did not change.
 *
 * File names: the image's full name and tag with '/' and ':' made '_',
 * '@', the first 12 hex digits of its platform manifest digest, and the
 * compression's suffix:
 *
 *     docker.io_rancher_mirrored-pause_3.6@1f2e3d4c5b6a.tar.zst
 *     docker.io_library_busybox@9a8b7c6d5e4f.tar.zst   (a digest-only ref)
 *
 * so a name is readable, stable while the image does not change, and a new
 * digest gets a new name. airlock's files are recognised by that shape
 * alone (al_split_is_ours): anything else in the directory is never
 * touched.
 *
 * What makes an archive's bytes is its recipe: the image's name and
 * manifest digest, the format, the compression and level, and this
 * layout's version (AL_SPLIT_RECIPE). The directory keeps a state file,
 * .airlock-split.json (k3s imports no .json), with each archive's recipe
 * and the size, mtime and inode it had when written. An archive whose
 * recipe, size, mtime and inode all still match is left untouched, so
 * k3s skips it; anything else (no state, a file changed by hand, another
 * level) is rewritten. */
#ifndef AL_EXPORT_SPLIT_H
#define AL_EXPORT_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../common/digest.h"
#include "../common/error.h"
#include "sink.h"
#include "archive.h"
#include "select.h"

#define AL_SPLIT_STATE ".airlock-split.json"
/* Bump when the bytes airlock writes for the same recipe change. */
#define AL_SPLIT_RECIPE 1

/* The archive's file name (malloc'd); suffix e.g. ".tar.zst". */
char *al_split_name(const al_export_image *im, const char *suffix);
/* True for a name al_split_name could have made (any suffix it uses). */
bool al_split_is_ours(const char *name);
/* ".tar", ".tar.zst", ".tar.gz". */
const char *al_split_suffix(al_sink_kind kind);

void al_split_recipe(char out[AL_DIGEST_BUF], const al_export_image *im, al_export_format format,
                     bool decompress_zstd, al_sink_kind kind, int level);

typedef struct al_split_entry {
    char *file, *ref;
    char recipe[AL_DIGEST_BUF];
    uint64_t size, ino;
    int64_t mtime_s, mtime_ns;
} al_split_entry;

typedef struct al_split_state {
    al_split_entry *e;
    size_t n;
} al_split_state;

/* Read DIR's state file (dirfd); a missing or unreadable one is an empty
 * state (every archive is then rewritten once). */
void al_split_state_load(al_split_state *out, int dirfd);
void al_split_state_dispose(al_split_state *s);
/* The archive file is there, as written with this recipe, untouched since. */
bool al_split_unchanged(const al_split_state *s, int dirfd, const char *file, const char *recipe);
/* Record (or replace) a file's entry from its stat. */
void al_split_state_set(al_split_state *s, const char *file, const char *ref, const char *recipe,
                        const struct stat *st);
void al_split_state_remove(al_split_state *s, const char *file);
const al_split_entry *al_split_state_get(const al_split_state *s, const char *file);
/* Write the state file into dir, atomically. */
int al_split_state_save(const al_split_state *s, const char *dir, al_error **err);

#endif
