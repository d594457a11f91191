/* A blob pushed from the store: the BLOB_UPLOAD call's side of its states
 * (fetch/call.c runs the machine; docs/DESIGN.md, "Uploads").
 *
 * The sequence of requests, each one answered before the next (NEXT):
 *
 *   [GET SESSION]                 an upload an earlier attempt or run left:
 *                                 where is it? ("Range: 0-N")
 *   POST .../blobs/uploads/[?mount=DIGEST&from=REPO]
 *                                 201: mounted, done; 202: a new session
 *   PUT SESSION?digest=D          a blob of at most one chunk, whole
 *   PATCH SESSION (Content-Range) a chunk of a larger one, then the next...
 *   PUT SESSION?digest=D          ...and the end, with no body
 *
 * Every byte sent is read from the store's file and hashed as it goes, so a
 * blob found corrupt is never completed at the registry: the request that
 * would carry its last byte is cut, and the call fails with AL_E_DIGEST.
 * After each chunk the session's URL and offset are saved under
 * STORE/tmp/ (fetch/upload-session.h), so a new run resumes there. A cut
 * request is followed by a GET of the session: the registry says how much
 * it holds; the hash is rewound to the chunk's start or carried forward
 * (HASHING) to there. A registry that lost the session (distribution
 * 2.8 keeps only whole chunks, so a cut inside one answers
 * BLOB_UPLOAD_INVALID) has the upload start again from nothing, once, said
 * on stderr. */
#ifndef AL_UPLOAD_H
#define AL_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "call.h"
#include "engine.h"
#include "fsm.h"
#include "store.h"

typedef struct al_upload al_upload;

al_upload *al_upload_new(al_store *store, int64_t size, int64_t chunk, const char *mount_from);
void al_upload_free(al_upload *u); /* accepts NULL */

/* PREPARE: check the store's file, look for a saved session (once).
 * FRESH, or FAIL with c->err set. */
al_fsm_event al_upload_prepare(al_call *c);
/* SEND, before the request is built: whether it goes to the registry's own
 * origin (credentials) or elsewhere (a session Location on another host:
 * none); sets c->off_host. */
void al_upload_before_send(al_call *c);
/* The URL of the next request; base is the registry's
 * "SCHEME://HOST/v2/REPO/blobs/uploads/" (malloc'd). */
char *al_upload_url(const al_call *c, const char *base);
/* SEND: method, body, headers of the next request. */
void al_upload_decorate(al_call *c, al_request *q);
/* Every answer, before it is read: a body that did not go through takes
 * the hash back to where it began; the file is closed. */
void al_upload_answered(al_call *c, const al_request *q);
/* What an answer means for the upload: true with *ev set when it is the
 * upload's to say (a 2xx, a lost session, an out-of-order chunk); false
 * leaves it to the call's common rules (auth, retries, failures). */
bool al_upload_status(al_call *c, const al_request *q, al_fsm_event *ev);
/* HASHING: the store's bytes up to where the registry holds them: begin
 * on the loop (the file opened: 0, or negative with c->err set), the work
 * on the worker thread, then on the loop the event (HASHED or FAIL). */
int al_upload_hash_begin(al_call *c);
void al_upload_hash_work(void *c);
al_fsm_event al_upload_hash_done(al_call *c);
/* The call ended: close what is open. */
void al_upload_end(al_call *c);

uint64_t al_upload_bytes(const al_upload *u);
/* The repository a mount is asked from, while one may still be (its token
 * scope includes pull there); NULL otherwise. */
const char *al_upload_mount_from(const al_upload *u);
bool al_upload_mounted(const al_upload *u);
/* The upload failed because of the store's copy: missing, of the wrong
 * size, unreadable or corrupt (sending it elsewhere fails the same way). */
bool al_upload_source_fault(const al_upload *u);
int al_upload_restarts(const al_upload *u);

#endif
