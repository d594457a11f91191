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
 * An upload (POST, PATCH..., PUT) fits the same shape: PREPARE finds the
 * upload session to resume, SEND's OK moves to the next request of the
 * sequence. It is not built yet. */
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

void al_call_start(al_call *c, al_call_done_fn done, void *user);

/* Results, valid after done. */
bool al_call_ok(const al_call *c);
const al_error *al_call_error(const al_call *c);
al_error *al_call_take_error(al_call *c);
/* The last response (NULL when none was needed: a partial found whole). */
al_request *al_call_response(const al_call *c);
/* A MANIFEST_HEAD that was answered with GET: its response has the body. */
bool al_call_has_body(const al_call *c);
/* BLOB_STORE: bytes downloaded by this call (0 when the partial was whole). */
uint64_t al_call_bytes(const al_call *c);
al_call_kind al_call_get_kind(const al_call *c);
const char *al_call_reference(const al_call *c);
int al_call_state_of(const al_call *c);

#endif
