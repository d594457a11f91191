/* Writing one tarball for one platform's images.
 *
 * Formats:
 *   hybrid (default)  blobs/sha256/<hex>, manifest.json, repositories,
 *                     index.json, oci-layout: what `ctr export` and Docker
 *                     25 write; docker, containerd and podman all load it.
 *   docker            blobs/sha256/<hex> (configs and layers),
 *                     manifest.json and repositories.
 *   oci               blobs/sha256/<hex> (manifests, configs, layers),
 *                     index.json and oci-layout.
 *
 * Every blob is written once however many images share it, byte-exact
 * from the store. With decompress_zstd, a zstd layer is also written
 * decompressed as blobs/sha256/<diff_id hex>, and manifest.json points at
 * that copy (docker 20.10 cannot read zstd layers); index.json keeps the
 * registry's manifest and so the zstd blob (hybrid writes both).
 *
 * Planning (al_archive_plan) does everything that can fail before output
 * starts, and knows the exact size of the tar stream. With
 * decompress_zstd, it reads each zstd layer once to learn its
 * decompressed size (and checks it against the diff_id), so such layers
 * are read twice; without it, every blob is read exactly once, while it is
 * written. Memory stays flat: blobs stream through one buffer. */
#ifndef AL_EXPORT_ARCHIVE_H
#define AL_EXPORT_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "sink.h"
#include "../common/store.h"
#include "select.h"

typedef enum {
    AL_FORMAT_HYBRID = 0,
    AL_FORMAT_DOCKER = 1,
    AL_FORMAT_OCI = 2,
} al_export_format;

/* "hybrid", "docker", "oci". */
const char *al_export_format_name(al_export_format f);
int al_export_format_parse(al_export_format *out, const char *s, al_error **err);

typedef struct al_archive_opts {
    al_export_format format;
    bool decompress_zstd; /* see above; ignored for oci */
    bool verify;          /* sha256 of every blob while copying; sizes are always checked */
    int64_t mtime;        /* of every tar entry */
    /* Called after each chunk written, with tar bytes done and the total
     * (al_archive_tar_size). May be NULL. */
    void (*progress)(void *ud, uint64_t done, uint64_t total);
    void *progress_ud;
} al_archive_opts;

typedef struct al_archive al_archive;

/* set and store are borrowed and must outlive the archive. Fails when a
 * zstd layer cannot be decompressed to its diff_id (with decompress_zstd). */
int al_archive_plan(al_archive **out, al_store *store, const al_export_set *set,
                    const al_archive_opts *opts, al_error **err);
void al_archive_free(al_archive *a);

/* Exact size of the uncompressed tar stream. */
uint64_t al_archive_tar_size(const al_archive *a);
/* Distinct blobs written and their total size. */
size_t al_archive_n_blobs(const al_archive *a);
uint64_t al_archive_blob_bytes(const al_archive *a);
/* Images whose docker side (manifest.json) carries a zstd layer as is. */
size_t al_archive_n_zstd_docker(const al_archive *a);

/* Write the tar stream into sink (not finished here: the caller ends the
 * sink). A blob that does not match its digest or size stops it:
 * AL_E_DIGEST / AL_E_SIZE "blob sha256:.. of docker.io/x:1 is corrupt: ...". */
int al_archive_write(al_archive *a, al_sink *sink, al_error **err);

#endif
