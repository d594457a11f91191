/* A blob pushed from the store: the steps of the BLOB_UPLOAD call (see
 * upload.h). */
#include "upload.h"
#include "registry-private.h"
#include "upload-session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sanitize.h"
#include "url.h"
#include "util.h"

#define HASH_BUF (1u << 20) /* the worker's reads */

typedef enum {
    UP_START,  /* POST: a new session */
    UP_MOUNT,  /* POST ?mount=&from=: mounted, or a new session */
    UP_STATUS, /* GET SESSION: how much does the registry hold? */
    UP_WHOLE,  /* PUT SESSION?digest=: the whole blob */
    UP_CHUNK,  /* PATCH SESSION: the next chunk */
    UP_FINISH, /* PUT SESSION?digest=: no body, the end */
} up_step;

struct al_upload {
    al_store *store; /* borrowed */
    int64_t size, chunk;
    char *mount_from;
    up_step step;
    char *session;   /* the session's URL: the registry's last Location */
    uint64_t offset; /* bytes the registry confirmed */
    al_hasher *hash; /* the store's bytes 0 .. hashed */
    uint64_t hashed;
    bool verified;   /* all of it hashed, and it is the digest */
    al_hasher *snap; /* the hash where the current body began */
    uint64_t snap_hashed;
    bool snap_valid;
    int64_t len;        /* the current request's body */
    int fd;             /* the store's file while a body or a hash is read, else -1 */
    uint64_t hash_to;   /* HASHING: hash up to here */
    al_error *hash_err; /* HASHING: what went wrong */
    bool looked_for_saved;
    bool restarted, mounted;
    bool source_fault; /* what failed is the store's copy (missing, short, corrupt) */
    uint64_t accepted; /* body bytes the registry took */
};

al_upload *al_upload_new(al_store *store, int64_t size, int64_t chunk, const char *mount_from)
{
    al_upload *u = al_xcalloc(1, sizeof(*u));
    u->store = store;
    u->size = size;
    u->chunk = chunk > 0 ? chunk : size;
    u->mount_from = mount_from ? al_xstrdup(mount_from) : NULL;
    u->hash = al_hasher_new();
    u->snap = al_hasher_new();
    u->fd = -1;
    return u;
}

void al_upload_free(al_upload *u)
{
    if (u == NULL)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u->mount_from);
    free(u->session);
    al_hasher_free(u->hash);
    al_hasher_free(u->snap);
    al_error_free(u->hash_err);
    free(u);
}

uint64_t al_upload_bytes(const al_upload *u)
{
    return u->accepted;
}

const char *al_upload_mount_from(const al_upload *u)
{
    return u->restarted ? NULL : u->mount_from;
}

bool al_upload_source_fault(const al_upload *u)
{
    return u->source_fault;
}

bool al_upload_mounted(const al_upload *u)
{
    return u->mounted;
}

int al_upload_restarts(const al_upload *u)
{
    return u->restarted ? 1 : 0;
}

static void rewind_hash(al_upload *u)
{
    al_hasher_reset(u->hash);
    u->hashed = 0;
}

static void set_session(al_upload *u, char *url)
{
    free(u->session);
    u->session = url;
}

/* --- PREPARE ---------------------------------------------------------------------------- */

/* The store's file must be there with the descriptor's size before a
 * request is made for it; it is opened only while it is read. */
static int check_source(al_call *c, al_error **err)
{
    al_upload *u = c->up;
    int64_t have = -1;
    u->source_fault = true; /* until it passes */
    if (!al_store_has_blob(u->store, c->reference, &have))
        return al_error_set(err, AL_E_NOT_FOUND, 0, "blob %s is not in the store", c->reference);
    if (have != u->size)
        return al_error_set(err, AL_E_SIZE, 0,
                            "blob %s is corrupt: %lld bytes in the store, its descriptor says %lld",
                            c->reference, (long long)have, (long long)u->size);
    u->source_fault = false;
    return 0;
}

al_fsm_event al_upload_prepare(al_call *c)
{
    al_upload *u = c->up;
    if (check_source(c, &c->err) < 0)
        return AL_EV_FAIL;
    rewind_hash(u);
    u->verified = false;
    u->offset = 0;
    set_session(u, NULL);
    if (!u->looked_for_saved) {
        u->looked_for_saved = true;
        char *url = NULL;
        int64_t at = 0;
        if (al_upload_session_load(u->store, c->host, c->repo, c->reference, u->size, &url, &at,
                                   NULL) == 0) {
            al_debug("%s: an earlier run uploaded %lld bytes: asking the registry where it is",
                     c->label, (long long)at);
            set_session(u, url);
            u->step = UP_STATUS;
            return AL_EV_FRESH;
        }
    }
    u->step = u->mount_from != NULL && !u->restarted ? UP_MOUNT : UP_START;
    return AL_EV_FRESH;
}

/* --- SEND ------------------------------------------------------------------------------- */

void al_upload_before_send(al_call *c)
{
    const al_upload *u = c->up;
    bool session = u->step != UP_START && u->step != UP_MOUNT;
    if (!session) {
        c->off_host = false;
        return;
    }
    /* A session's URL is the registry's Location: one on another origin
     * (object storage, another host) gets no credentials, as a redirect
     * gets none (docs/DESIGN.md, Security). Judged at every request: a
     * retry must not forget it. */
    const reghost *h = reg_host(c->reg, c->host);
    _cleanup_free_ char *base =
        al_xasprintf("%s://%s/", h->scheme == AL_SCHEME_HTTP ? "http" : "https", c->host);
    c->off_host = !al_url_same_origin(u->session, base);
}

char *al_upload_url(const al_call *c, const char *base)
{
    const al_upload *u = c->up;
    switch (u->step) {
    case UP_START: return al_xstrdup(base);
    case UP_MOUNT: return al_xasprintf("%s?mount=%s&from=%s", base, c->reference, u->mount_from);
    case UP_STATUS:
    case UP_CHUNK: return al_xstrdup(u->session);
    case UP_WHOLE:
    case UP_FINISH: break;
    }
    return al_xasprintf("%s%sdigest=%s", u->session, strchr(u->session, '?') ? "&" : "?",
                        c->reference);
}

/* The store's file, opened relative to blobs/sha256 (never through a
 * link) while a body is sent. */
static int open_source(al_call *c, al_error **err)
{
    al_upload *u = c->up;
    if (u->fd >= 0)
        return 0;
    int64_t have = -1;
    int fd = al_store_blob_open(u->store, c->reference, &have, err);
    if (fd < 0) {
        u->source_fault = true;
        return fd;
    }
    if (have != u->size) {
        close(fd);
        u->source_fault = true;
        return al_error_set(err, AL_E_SIZE, 0, "blob %s changed size in the store", c->reference);
    }
    u->fd = fd;
    return 0;
}

/* All of the blob hashed: it must be its digest. */
static int verify(al_call *c, al_error **err)
{
    al_upload *u = c->up;
    char got[AL_DIGEST_BUF];
    al_hasher_final(u->hash, got);
    u->source_fault = strcmp(got, c->reference) != 0;
    if (u->source_fault)
        return al_error_set(err, AL_E_DIGEST, 0,
                            "blob %s is corrupt in the store: its content hashes to %s",
                            c->reference, got);
    u->verified = true;
    return 0;
}

/* The body: the store's bytes from offset, hashed as they are read. */
static int send_body(void *ctx, al_request *r, char *buf, size_t cap, size_t *n_out, al_error **err)
{
    al_call *c = ctx;
    al_upload *u = c->up;
    if (open_source(c, err) < 0)
        return -1;
    uint64_t at = u->offset + r->sent;
    ssize_t n = pread(u->fd, buf, cap, (off_t)at);
    u->source_fault = n <= 0;
    if (n < 0)
        return al_error_set(err, AL_E_IO, errno, "read blob %s from the store", c->reference);
    if (n == 0)
        return al_error_set(err, AL_E_SIZE, 0, "blob %s ended at byte %llu in the store",
                            c->reference, (unsigned long long)at);
    if (at == u->hashed) {
        al_hasher_update(u->hash, buf, (size_t)n);
        u->hashed += (uint64_t)n;
        /* The last byte is not sent when the whole does not hash right:
         * the registry never completes a corrupt blob. */
        if (u->hashed == (uint64_t)u->size && !u->verified && verify(c, err) < 0)
            return -1;
    }
    *n_out = (size_t)n;
    return 0;
}

static void with_body(al_call *c, al_request *q, int64_t len)
{
    al_upload *u = c->up;
    q->send_len = u->len = len;
    q->send_fn = send_body;
    q->send_ctx = c;
    q->send_type = al_xstrdup("application/octet-stream");
    /* Where to come back to when this body does not go through. */
    al_hasher_copy(u->snap, u->hash);
    u->snap_hashed = u->hashed;
    u->snap_valid = true;
}

void al_upload_decorate(al_call *c, al_request *q)
{
    al_upload *u = c->up;
    u->len = 0;
    switch (u->step) {
    case UP_START:
    case UP_MOUNT: q->method = "POST"; return;
    case UP_STATUS: return;
    case UP_CHUNK: {
        int64_t left = u->size - (int64_t)u->offset;
        q->method = "PATCH";
        with_body(c, q, left < u->chunk ? left : u->chunk);
        q->content_range = al_xasprintf("%llu-%llu", (unsigned long long)u->offset,
                                        (unsigned long long)(u->offset + (uint64_t)u->len - 1));
        break;
    }
    case UP_WHOLE:
        q->method = "PUT";
        with_body(c, q, u->size);
        break;
    case UP_FINISH: q->method = "PUT"; break;
    }
    q->blob_upload = true;
    q->blob_final = u->step != UP_CHUNK;
    snprintf(q->blob_digest, sizeof(q->blob_digest), "%s", c->reference);
    q->blob_size = u->size;
    q->resumed_at = u->offset;
}

/* --- answers ------------------------------------------------------------------------------ */

void al_upload_answered(al_call *c, const al_request *q)
{
    al_upload *u = c->up;
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    bool ok = q->err == NULL && q->status >= 200 && q->status <= 299;
    if (ok || !u->snap_valid)
        return;
    /* The body did not go through: the hash goes back to where it began,
     * and the registry is asked where the upload stands before more is
     * sent (a cut chunk may be partly there, or not at all). A small blob
     * starts a new session: its cut PUT leaves the old one unusable. */
    al_hasher_copy(u->hash, u->snap);
    u->hashed = u->snap_hashed;
    u->snap_valid = false;
    if (u->step == UP_CHUNK)
        u->step = UP_STATUS;
    else if (u->step == UP_WHOLE)
        u->step = UP_START;
}

/* The session a 202 names. */
static bool take_location(al_call *c, const al_request *q)
{
    al_upload *u = c->up;
    if (q->location == NULL)
        return u->session != NULL;
    char *next = al_url_resolve(q->url, q->location);
    if (next == NULL)
        return false;
    set_session(u, next);
    return true;
}

/* Where the registry stands is known (held bytes): what next. */
static al_fsm_event resume_at(al_call *c, uint64_t held)
{
    al_upload *u = c->up;
    if (held > (uint64_t)u->size) {
        al_error_set(&c->err, AL_E_HTTP, 0,
                     "the registry says it holds %llu bytes of blob %s, which has %lld",
                     (unsigned long long)held, c->reference, (long long)u->size);
        return AL_EV_FAIL;
    }
    u->offset = held;
    if (held < u->hashed) /* a hash cannot go back: hash again up to there */
        rewind_hash(u);
    if (held > u->hashed) {
        u->hash_to = held;
        return AL_EV_PARTIAL;
    }
    u->step = held == (uint64_t)u->size ? UP_FINISH : UP_CHUNK;
    if (u->step == UP_FINISH && !u->verified && verify(c, &c->err) < 0)
        return AL_EV_FAIL;
    return AL_EV_NEXT;
}

/* A 2xx to POST: a session (202), or, for a mount, the blob itself (201). */
static al_fsm_event started(al_call *c, const al_request *q)
{
    al_upload *u = c->up;
    if (u->step == UP_MOUNT && q->status == 201) {
        u->mounted = true;
        return AL_EV_OK;
    }
    if (u->step == UP_MOUNT)
        al_debug("%s: not mounted from %s: uploading it", c->label, u->mount_from);
    if (!take_location(c, q)) {
        _cleanup_free_ char *url = al_url_redact(q->url);
        al_error_set(&c->err, AL_E_HTTP, 0, "POST %s: HTTP %ld without a Location", url, q->status);
        return AL_EV_FAIL;
    }
    u->offset = 0;
    u->step = u->size <= u->chunk ? UP_WHOLE : UP_CHUNK;
    return AL_EV_NEXT;
}

/* A chunk the registry took: save where it stands, then the next. */
static al_fsm_event chunk_taken(al_call *c, const al_request *q)
{
    al_upload *u = c->up;
    u->offset += (uint64_t)u->len;
    u->accepted += (uint64_t)u->len;
    u->snap_valid = false;
    if (!take_location(c, q)) {
        al_error_set(&c->err, AL_E_HTTP, 0, "PATCH: HTTP %ld without a Location", q->status);
        return AL_EV_FAIL;
    }
    al_error *e = NULL;
    if (al_upload_session_save(u->store, c->host, c->repo, c->reference, u->size, u->session,
                               (int64_t)u->offset, &e) < 0) {
        al_error_wrap(&e, "the upload of %s can be resumed in this run only", c->reference);
        al_debug("%s", e->msg);
        al_error_free(e);
    }
    u->step = u->offset == (uint64_t)u->size ? UP_FINISH : UP_CHUNK;
    return AL_EV_NEXT;
}

/* The last PUT: the registry names the blob it now holds. */
static al_fsm_event finished(al_call *c, const al_request *q)
{
    al_upload *u = c->up;
    if (u->step == UP_WHOLE)
        u->accepted += (uint64_t)u->len;
    u->snap_valid = false;
    al_upload_session_drop(u->store, c->host, c->repo, c->reference);
    if (q->docker_digest != NULL && strcmp(q->docker_digest, c->reference) != 0) {
        _cleanup_free_ char *said = al_sanitize(q->docker_digest, 100);
        al_error_set(&c->err, AL_E_HTTP, 0, "the registry stored blob %s as %s", c->reference,
                     said);
        return AL_EV_FAIL;
    }
    return AL_EV_OK;
}

/* The registry lost the session (distribution 2.8 after a cut inside a
 * chunk: BLOB_UPLOAD_INVALID; an expired or purged one:
 * BLOB_UPLOAD_UNKNOWN): start again from nothing, once, and say so. */
static al_fsm_event lost(al_call *c, const al_request *q)
{
    al_upload *u = c->up;
    al_upload_session_drop(u->store, c->host, c->repo, c->reference);
    if (u->restarted) {
        reg_http_error(&c->err, q, al_request_method(q));
        al_error_wrap(&c->err, "the registry lost the upload of %s again", c->reference);
        return AL_EV_FAIL;
    }
    u->restarted = true;
    al_warn("%s/%s: the registry lost the upload of %s at byte %llu (%s: a cut inside a chunk, "
            "which it does not keep, or an expired session): uploading it again from the start",
            c->host, c->repo, c->reference, (unsigned long long)u->offset,
            reg_error_code_is(q, "BLOB_UPLOAD_INVALID") ? "BLOB_UPLOAD_INVALID"
                                                        : "BLOB_UPLOAD_UNKNOWN");
    return AL_EV_RESTART;
}

bool al_upload_status(al_call *c, const al_request *q, al_fsm_event *ev)
{
    al_upload *u = c->up;
    long s = q->status;
    bool session_req = strcmp(al_request_method(q), "POST") != 0;
    if (s >= 200 && s <= 299) {
        switch (u->step) {
        case UP_START:
        case UP_MOUNT: *ev = started(c, q); break;
        case UP_STATUS:
            take_location(c, q);
            *ev = resume_at(c, q->upload_held > 0 ? (uint64_t)q->upload_held : 0);
            break;
        case UP_CHUNK: *ev = chunk_taken(c, q); break;
        case UP_WHOLE:
        case UP_FINISH: *ev = finished(c, q); break;
        }
        return true;
    }
    if (session_req && (s == 404 || s == 400) &&
        (reg_error_code_is(q, "BLOB_UPLOAD_INVALID") ||
         reg_error_code_is(q, "BLOB_UPLOAD_UNKNOWN"))) {
        *ev = lost(c, q);
        return true;
    }
    if (s == 416 && strcmp(al_request_method(q), "PATCH") == 0) {
        /* A chunk that does not start where the registry is: ask it
         * (al_upload_answered made the next step the question). */
        *ev = AL_EV_NEXT;
        return true;
    }
    return false;
}

/* --- HASHING ------------------------------------------------------------------------------- */

void al_upload_hash_work(void *arg)
{
    al_call *c = arg;
    al_upload *u = c->up;
    char *buf = al_xmalloc(HASH_BUF);
    while (u->hashed < u->hash_to && u->hash_err == NULL) {
        uint64_t want = u->hash_to - u->hashed;
        ssize_t n = pread(u->fd, buf, want < HASH_BUF ? (size_t)want : HASH_BUF, (off_t)u->hashed);
        if (n <= 0)
            al_error_set(&u->hash_err, n < 0 ? AL_E_IO : AL_E_SIZE, n < 0 ? errno : 0,
                         "read blob %s from the store at byte %llu", c->reference,
                         (unsigned long long)u->hashed);
        else {
            al_hasher_update(u->hash, buf, (size_t)n);
            u->hashed += (uint64_t)n;
        }
    }
    free(buf);
}

int al_upload_hash_begin(al_call *c)
{
    return open_source(c, &c->err);
}

al_fsm_event al_upload_hash_done(al_call *c)
{
    al_upload *u = c->up;
    close(u->fd);
    u->fd = -1;
    if (u->hash_err != NULL) {
        u->source_fault = true;
        al_error_free(c->err);
        c->err = al_steal_ptr(&u->hash_err);
        return AL_EV_FAIL;
    }
    al_debug("%s: the registry holds %llu bytes: hashed them, going on from there", c->label,
             (unsigned long long)u->hashed);
    u->offset = u->hashed;
    u->step = u->hashed == (uint64_t)u->size ? UP_FINISH : UP_CHUNK;
    if (u->step == UP_FINISH && !u->verified && verify(c, &c->err) < 0)
        return AL_EV_FAIL;
    return AL_EV_HASHED;
}

void al_upload_end(al_call *c)
{
    al_upload *u = c->up;
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
}
