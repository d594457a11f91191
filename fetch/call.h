/* One logical call to a registry, run as a small state machine (the CALL
 * machine of fsm.h; docs/DESIGN.md, "The transfer engine"):
 *
 *   INIT -> PREPARE -> [HASHING] -> ADMIT -> [WAIT_HOST | WAIT_TOKEN] -> SEND
 *        -> [REDIRECT -> SEND] -> [RETRY_WAIT -> ADMIT] -> COMMIT -> DONE | FAILED
 *
 * PREPARE looks for what an earlier attempt left (a partial download,
 * re-hashed off the loop in HASHING; one already whole is committed with
 * no request). ADMIT asks the registry (fetch/registry.c) whether the call
 * may go: the host may be being probed for its auth scheme or retried
 * after a failed connection (WAIT_HOST), a token for the scope may be on
 * its way (WAIT_TOKEN), the host may be down or have refused our
 * credentials (FAILED). SEND is one HTTP request through the engine; its
 * answer becomes one event: OK, REDIRECT, CHALLENGED (401), USE_GET (HEAD
 * refused), USE_HTTP, RETRY, WAIT_HOST, RESTART (wrong range) or FAIL.
 * COMMIT keeps the result (a blob is verified and renamed into the store).
 * The done callback runs once, at DONE or FAILED, and may start other
 * calls; the owner frees the call there or later.
 *
 * An upload (BLOB_UPLOAD: POST, PATCH..., PUT; fetch/upload.c) fits the
 * same shape: PREPARE finds an upload session an earlier run saved, each
 * answered step is NEXT (back to ADMIT, so a long upload renews its token
 * like any call), and a registry that holds more of the upload than was
 * hashed sends the call to HASHING first (PARTIAL). A manifest PUT is an
 * ordinary call with a body. */
#ifndef AL_CALL_H
#define AL_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "store.h"

struct al_registry;

typedef enum {
    AL_CALL_MANIFEST_HEAD, /* resolve a tag (GET by tag when the registry refuses HEAD) */
    AL_CALL_MANIFEST_GET,  /* body in memory (AL_MANIFEST_MAX) */
    AL_CALL_BLOB_MEM,      /* small blob (config) in memory, capped at mem_cap */
    AL_CALL_BLOB_STORE,    /* blob streamed into the store, verified, resumable */
    AL_CALL_TOKEN,         /* a bearer token (started by the registry itself) */
    AL_CALL_BLOB_HEAD,     /* is a blob at the registry? (al_call_found) */
    AL_CALL_BLOB_UPLOAD,   /* push a blob from the store: mount, or POST -> PUT / PATCH... -> PUT */
    AL_CALL_MANIFEST_PUT,  /* push a manifest's bytes under their media type */
} al_call_kind;

typedef struct al_call al_call;
typedef void (*al_call_done_fn)(al_call *c, void *user);

/* host: endpoint host[:port]; repo: repository path ("library/busybox");
 * reference: tag or digest. All copied. */
al_call *al_call_new(struct al_registry *reg, al_call_kind kind, const char *host, const char *repo,
                     const char *reference);
void al_call_free(al_call *c); /* accepts NULL; only once the call has ended */

void al_call_set_mem_cap(al_call *c, size_t cap);                  /* BLOB_MEM */
void al_call_set_store(al_call *c, al_store *store, int64_t size); /* BLOB_STORE */

/* Its requests' place among those waiting for a slot (lower first). */
void al_call_set_priority(al_call *c, int64_t priority);

/* Push: the call's token scope is "repository:REPO:pull,push". */
void al_call_set_push(al_call *c);
/* MANIFEST_HEAD, BLOB_HEAD: a 404 is an answer, not a failure (the call
 * ends DONE with al_call_found false; MANIFEST_HEAD then asks no GET). */
void al_call_set_absent_ok(al_call *c);
/* MANIFEST_PUT: the bytes (borrowed until the call ends), their media type
 * (Content-Type) and the digest the registry must answer with
 * (Docker-Content-Digest; a mismatch fails the call). */
void al_call_set_put(al_call *c, const void *body, size_t len, const char *media_type,
                     const char *digest);
/* BLOB_UPLOAD: the blob (the call's reference) comes from store, size
 * bytes; bodies of at most chunk bytes (a blob that fits goes in one PUT);
 * mount_from (copied, may be NULL): a repository of the same registry that
 * holds it, mounted from before anything is uploaded. */
void al_call_set_upload(al_call *c, al_store *store, int64_t size, int64_t chunk,
                        const char *mount_from);

void al_call_start(al_call *c, al_call_done_fn done, void *user);

/* Results, valid after done. */
bool al_call_ok(const al_call *c);
const al_error *al_call_error(const al_call *c);
al_error *al_call_take_error(al_call *c);
/* The last response (NULL when none was needed: a partial found whole). */
al_request *al_call_response(const al_call *c);
/* A MANIFEST_HEAD that was answered with GET: its response has the body. */
bool al_call_has_body(const al_call *c);
/* BLOB_STORE: bytes downloaded by this call (0 when the partial was whole).
 * BLOB_UPLOAD: bytes the registry accepted from this call. */
uint64_t al_call_bytes(const al_call *c);
/* HEADs: the registry has it (2xx). */
bool al_call_found(const al_call *c);
/* BLOB_UPLOAD: mounted from another repository (nothing uploaded); how
 * often the registry lost the upload and it started again (at most 1). */
bool al_call_mounted(const al_call *c);
int al_call_restarts(const al_call *c);
/* BLOB_UPLOAD: it failed because of the store's copy of the blob (missing,
 * the wrong size, unreadable, corrupt), not because of the registry. */
bool al_call_source_failed(const al_call *c);
al_call_kind al_call_get_kind(const al_call *c);
const char *al_call_reference(const al_call *c);
int al_call_state_of(const al_call *c);

#endif
