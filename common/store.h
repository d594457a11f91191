/* The store on disk: an OCI image layout plus airlock's own files.
 *
 *   STORE/oci-layout          {"imageLayoutVersion":"1.0.0"}
 *   STORE/index.json          one descriptor per tag (rewritten atomically)
 *   STORE/blobs/sha256/<hex>  byte-exact content, named by its digest
 *   STORE/tmp/                downloads in progress; never read by export
 *   STORE/lock                flock'd by a writer (fetch)
 *   STORE/gc.lock             the GC lock: shared by readers of blobs,
 *                             exclusive while a prune removes files
 *   STORE/airlock.db          the SQLite index (owned by db/)
 *
 * Writing a blob follows STYLE.md: temp file in STORE/tmp, hash and size
 * checked while streaming, fsync, rename into blobs/, fsync the directory.
 * Only then may the caller insert the database row.
 *
 * Opening rules (docs/DESIGN.md, "The store"): the store directory is
 * opened once by its path (which may hold symlinks the user chose); every
 * file and directory inside it is opened relative to the directory fds
 * kept here, with O_NOFOLLOW, and must turn out to be a regular file (or a
 * directory). New files are created with O_EXCL. A symlink, FIFO or
 * hard link planted inside the store is never followed. */
#ifndef AL_STORE_H
#define AL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

/* The content of STORE/oci-layout, and of oci-layout in an OCI archive. */
#define AL_OCI_LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"

typedef struct al_store al_store;

typedef enum {
    AL_STORE_READONLY = 0, /* export: never writes, works on a read-only copy */
    AL_STORE_WRITE = 1,    /* fetch: creates the layout when missing, takes the lock */
} al_store_mode;

/* Open (and in WRITE mode create) the store at dir.
 *
 * WRITE mode takes an exclusive non-blocking flock on STORE/lock, then
 * checks that the path still names the inode it locked (else it starts
 * over with the new file). When only shared holders are in the way (the
 * instant probe of airlock-export --verify-store), it tries again for up
 * to 2 s; held exclusively (another airlock-fetch): AL_E_BUSY "store DIR
 * is busy: another airlock-fetch holds its lock". Directories it creates
 * are fsynced into their parents.
 *
 * READONLY mode fails with AL_E_NOT_FOUND when dir holds no oci-layout,
 * and takes the GC lock shared for the life of the store object (see
 * al_store_gc_hold), before the caller reads the database. */
int al_store_open(al_store **out, const char *dir, al_store_mode mode, al_error **err);
void al_store_free(al_store *s); /* releases the locks */

const char *al_store_dir(const al_store *s);
/* "STORE/airlock.db" (borrowed). */
const char *al_store_db_path(const al_store *s);

/* Directory fds kept open by the store (borrowed): the store itself,
 * blobs/sha256 and tmp/. -1 for a directory a READONLY store lacks. */
int al_store_root_fd(const al_store *s);
int al_store_blobs_fd(const al_store *s);
int al_store_tmp_fd(const al_store *s);

/* "STORE/blobs/sha256/<hex>" (malloc'd), for messages, or NULL with err
 * when the digest is invalid. Nothing opens a blob by this path. */
char *al_store_blob_path(const al_store *s, const char *digest, al_error **err);

/* True when blobs/sha256/<hex> exists as a regular file (a symlink does
 * not count); *size_out (may be NULL) gets its size. Does not hash. */
bool al_store_has_blob(const al_store *s, const char *digest, int64_t *size_out);

/* Open a blob for reading (O_NOFOLLOW, relative to blobs/sha256). Returns
 * the fd, or AL_E_NOT_FOUND "blob X is not in the store", AL_E_IO
 * "blobs/sha256/<hex> is not a regular file" (a symlink, a FIFO, ...).
 * *size_out (may be NULL) gets its size. */
int al_store_blob_open(const al_store *s, const char *digest, int64_t *size_out, al_error **err);

/* Open a file at the top of the store (oci-layout, index.json) for
 * reading, the same way. AL_E_NOT_FOUND when absent. */
int al_store_file_open(const al_store *s, const char *name, int64_t *size_out, al_error **err);

/* The GC lock (docs/DESIGN.md, "Locking"). Readers of blobs hold it
 * shared for their whole run, so that no prune unlinks a file they are
 * about to read; a prune takes it exclusively for its file sweep only, and
 * never waits for it.
 *
 * al_store_gc_hold: take it shared (waits while a prune sweeps, saying so
 * at info level). On a store where it cannot be had (read-only media
 * without STORE/gc.lock, a filesystem without flock) no prune can run
 * either, and the reader proceeds without it: returns 0. Idempotent. */
int al_store_gc_hold(al_store *s, al_error **err);
/* WRITE stores only: try to take it exclusively, without waiting. *locked
 * says whether it was had (false: a reader holds it). */
int al_store_gc_try_sweep(al_store *s, bool *locked, al_error **err);
/* Drop whatever this store object holds of the GC lock. */
void al_store_gc_release(al_store *s);

/* Streaming writer for one blob. expected_size < 0 means unknown. Writing
 * more than expected_size bytes fails at once with AL_E_SIZE. */
typedef struct al_blob_writer al_blob_writer;
int al_store_blob_begin(al_blob_writer **out, al_store *s, const char *digest,
                        int64_t expected_size, al_error **err);
int al_blob_writer_write(al_blob_writer *w, const void *buf, size_t len, al_error **err);
uint64_t al_blob_writer_written(const al_blob_writer *w);
/* Verify size and digest, fsync, rename into place (an existing target
 * counts as success), fsync blobs/sha256. Frees w in all cases; on failure
 * the temp file is removed. AL_E_DIGEST: "digest mismatch: expected X, got Y";
 * AL_E_SIZE: "size mismatch: expected N bytes, got M". */
int al_blob_writer_commit(al_blob_writer *w, al_error **err);
/* Drop the temp file and free w. Accepts NULL. */
void al_blob_writer_abort(al_blob_writer *w);

/* The steps of al_blob_writer_commit one by one, for a caller that groups
 * the directory fsyncs of many blobs (docs/DESIGN.md, "Crash rules"):
 * verify size and digest (cheap: hashed as bytes came); fsync the file
 * and rename it into blobs/sha256 (publish: touches only w and the
 * store's directory fds, so it may run on another thread; w is then
 * freed with al_blob_writer_abort, which has nothing left to remove);
 * fsync blobs/sha256, which makes every rename before it durable. */
int al_blob_writer_verify(al_blob_writer *w, al_error **err);
int al_blob_writer_publish(al_blob_writer *w, al_error **err);
int al_store_sync_blobs(al_store *s, al_error **err);

/* A resumable writer for STORE/tmp/partial-<hex>, which survives
 * failures, kills and reboots. Nothing is created until the first byte is
 * written (a 404 leaves nothing in tmp/); then the file is created, or
 * continued at resumed_at. The lock held by a WRITE store makes the fixed
 * name safe. Anything at that name but a regular file with one link (a
 * planted symlink, hard link, FIFO) is removed with a warning, never
 * written through, and the download starts afresh. */
int al_store_blob_partial(al_blob_writer **out, al_store *s, const char *digest,
                          int64_t expected_size, al_error **err);
/* Size of the partial file found when the writer was made (0: none). */
uint64_t al_blob_writer_on_disk(const al_blob_writer *w);
/* Hash the partial file found on disk, so the download can continue after
 * it (Range: bytes=resumed_at-). Touches nothing but w and the file: it
 * may run on another thread. *complete: the file is the whole blob and its
 * digest is right (commit it without a request). A partial that is longer
 * than the blob, or whole but wrong, or unreadable, is started over
 * (resumed_at 0). */
int al_blob_writer_rehash(al_blob_writer *w, bool *complete, al_error **err);
/* The server sent the whole blob instead of the range: start over. */
int al_blob_writer_restart(al_blob_writer *w, al_error **err);
/* Bytes kept from before the current attempt (0 after restart). */
uint64_t al_blob_writer_resumed_at(const al_blob_writer *w);
/* Close the file between attempts, keeping it and the hash state: the
 * next write continues after what was written. */
void al_blob_writer_pause(al_blob_writer *w);
/* Close and free w but keep a resumable partial file for later. For other
 * writers this is al_blob_writer_abort. Accepts NULL. */
void al_blob_writer_suspend(al_blob_writer *w);

/* Re-hash blobs/sha256/<hex> against its digest and expected size. */
typedef enum { AL_BLOB_OK, AL_BLOB_MISSING, AL_BLOB_WRONG_SIZE, AL_BLOB_CORRUPT } al_blob_state;
typedef struct al_blob_check {
    al_blob_state state;
    int64_t have;               /* its size on disk (-1 when missing) */
    char actual[AL_DIGEST_BUF]; /* CORRUPT: what it hashes to */
} al_blob_check;
/* Fails only when the file cannot be read (AL_E_IO). Something that is
 * not a regular file counts as WRONG_SIZE. */
int al_store_check_blob(al_store *s, const char *digest, int64_t size, al_blob_check *out,
                        al_error **err);

/* A blob file found damaged (size or digest wrong): move it aside to
 * STORE/tmp/quarantine-<hex> (replacing an older one), so that it can be
 * downloaded again and looked at later. Its database row stays: the
 * download that follows makes it true again. */
int al_store_quarantine(al_store *s, const char *digest, al_error **err);

/* Write a small blob held in memory (a manifest) through the same path. */
int al_store_put_blob(al_store *s, const char *digest, const void *buf, size_t len, al_error **err);

/* Read a whole small blob (manifest, config), refusing more than `cap`
 * bytes (AL_E_SIZE), and verify its digest (AL_E_DIGEST: "blob X is
 * corrupt: content hashes to Y"). *out is malloc'd and NUL-terminated. */
int al_store_read_blob(al_store *s, const char *digest, size_t cap, char **out, size_t *len_out,
                       al_error **err);

/* One entry of index.json. */
typedef struct al_index_entry {
    const char *media_type;
    const char *digest;
    int64_t size;
    const char *full_name; /* io.containerd.image.name */
    const char *ref_name;  /* org.opencontainers.image.ref.name */
} al_index_entry;

/* Rewrite index.json atomically (temp, fsync, rename, fsync dir). */
int al_store_write_index(al_store *s, const al_index_entry *entries, size_t n, al_error **err);

#endif
