/* The transfer engine's loop: one libcurl multi handle driving every HTTP
 * request of a run (curl's loop: poll -> perform -> info_read -> refill),
 * plus the timers and cross-thread posts that wake it.
 *
 * The engine knows nothing about registries and runs no batches: a request
 * is sent with al_engine_send() and its completion callback runs as soon
 * as it ends, from inside al_engine_run(); the callback may send more. At
 * most `jobs` requests are in flight (the job limit is the only throttle);
 * the others wait in the order of their priority, then of sending: a run
 * gives the requests of the images it started first the lower numbers,
 * so images finish (and free their memory) in list order rather than all
 * at the end. Retries, redirects and auth are the
 * caller's (fetch/call.c): here one request is one HTTP exchange, so
 * Authorization never follows a redirect by accident.
 *
 * A 2xx body goes to the request's body function when it has one (a blob
 * download), else into memory up to mem_cap; a non-2xx body is kept up to
 * 16 KiB, and the transfer is cut there (a registry's JSON error fits; an
 * endless page is not read). A request body (PUT, PATCH: an upload's
 * chunk, a manifest) comes from the request's send function, read as curl
 * sends it, or from memory: an upload is streamed, never held whole. */
#ifndef AL_ENGINE_H
#define AL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

struct al_request;

/* Progress hook (see fetch/progress.h). QUEUED when a request is sent,
 * START when it goes on the wire, DATA as 2xx body bytes arrive (`have`:
 * bytes of the resource held so far, a resumed download counting what was
 * on disk), RETRY or DONE when the caller has decided what an ended
 * request means (al_engine_progress), TICK on every loop iteration (r
 * NULL; the loop then wakes at least every 100 ms) and IDLE when
 * al_engine_run returns. */
typedef enum {
    AL_XFER_QUEUED,
    AL_XFER_START,
    AL_XFER_DATA,
    AL_XFER_RETRY,
    AL_XFER_DONE,
    AL_XFER_TICK,
    AL_XFER_IDLE,
} al_xfer_event;
typedef void (*al_engine_progress_fn)(void *user, al_xfer_event ev, const struct al_request *r,
                                      uint64_t have);

typedef struct al_engine_opts {
    int jobs;             /* concurrent requests (default 8) */
    long connect_timeout; /* seconds */
    long low_speed_time;  /* seconds below low_speed_limit bytes/s before a stall is cut */
    long low_speed_limit; /* bytes per second */
    int max_retries;      /* per call, for transient failures (used by fetch/call.c) */
    double max_wait;      /* longest Retry-After honoured, seconds (--max-wait) */
    bool debug_http;      /* AL_DEBUG_HTTP=1: curl's trace on stderr, credentials redacted */
    al_engine_progress_fn progress; /* NULL: no progress reporting */
    void *progress_user;            /* borrowed, passed to progress */
} al_engine_opts;

void al_engine_opts_default(al_engine_opts *o);

typedef struct al_engine al_engine;
int al_engine_new(al_engine **out, const al_engine_opts *opts, al_error **err);
void al_engine_free(al_engine *e);
const al_engine_opts *al_engine_get_opts(const al_engine *e);

/* A 2xx body sink: called with each chunk; a negative return (with *err
 * set) cuts the transfer, and the request ends with that error. The
 * status and headers are known when it is first called. */
typedef int (*al_body_fn)(void *ctx, struct al_request *r, const char *buf, size_t n,
                          al_error **err);

/* A request body source (an upload from the store): fill buf with up to
 * cap bytes of what comes next, *n_out of them (more than 0 until the
 * body's send_len bytes are given). A negative return (with *err set)
 * cuts the transfer, and the request ends with that error. */
typedef int (*al_send_fn)(void *ctx, struct al_request *r, char *buf, size_t cap, size_t *n_out,
                          al_error **err);

typedef struct al_request {
    /* Input. */
    char *url;           /* owned */
    bool head;           /* HEAD instead of GET */
    bool insecure;       /* skip TLS peer/host verification (--insecure-registry) */
    char *accept;        /* Accept header value, owned, may be NULL */
    char *authorization; /* full header value ("Bearer x"), owned, may be NULL; never logged */
    char *range;         /* Range header value ("bytes=N-"), owned, may be NULL */
    char *post_fields;   /* POST this urlencoded form instead of GET (owned; secrets: wiped) */
    /* Another method: "POST" (an empty body, or post_fields), "PUT" or
     * "PATCH" (with the body below). NULL: GET, or HEAD with head. Static
     * strings. */
    const char *method;
    char *send_type;      /* Content-Type of the body sent, owned, may be NULL */
    char *content_range;  /* Content-Range of a chunk ("N-M"), owned, may be NULL */
    int64_t send_len;     /* PUT, PATCH: the body's length (0: empty) */
    const char *send_buf; /* the body, when send_fn is NULL (borrowed) */
    al_send_fn send_fn;   /* the body from a source (an upload from the store), or NULL */
    void *send_ctx;
    const char *ca_pem; /* CA bundle (PEM text) replacing the default, or NULL (borrowed) */
    size_t ca_pem_len;
    const char *client_cert; /* client certificate and key files for mTLS, or NULL (borrowed) */
    const char *client_key;
    int64_t priority;   /* lower starts sooner (among requests waiting for a slot) */
    size_t mem_cap;     /* memory body: refuse bodies larger than this (AL_E_SIZE) */
    al_body_fn body_fn; /* 2xx body sink instead of memory, or NULL */
    void *body_ctx;
    /* For the progress display: a blob download into the store. */
    bool blob_download;
    char blob_digest[AL_DIGEST_BUF];
    int64_t blob_size;
    uint64_t resumed_at; /* bytes of the blob held before this request */
    /* For the progress display: a blob upload. blob_final marks the
     * request whose 2xx means the registry holds the blob whole. */
    bool blob_upload;
    bool blob_final;

    /* Output. */
    long status; /* HTTP status, 0 when no response */
    char *content_type;
    char *docker_digest; /* Docker-Content-Digest */
    char *www_authenticate;
    char *location;
    char *retry_after;         /* Retry-After, as sent */
    char *ratelimit_remaining; /* RateLimit-Remaining ("76;w=21600"), as sent */
    char *ratelimit_limit;     /* RateLimit-Limit */
    int64_t content_length;    /* -1 when unknown */
    int64_t range_start;       /* first byte of a 206's Content-Range, -1 when none */
    int64_t upload_held;       /* an upload's Range ("0-N"): the bytes the registry holds, N + 1
                                  ("0-0" counts as none); -1 when not sent */
    char *body; /* memory body, or the first 16 KiB of a non-2xx body; NUL-terminated */
    size_t body_len;
    bool body_cut;      /* a non-2xx body longer than 16 KiB: the rest was not read */
    uint64_t bytes;     /* 2xx body bytes received */
    uint64_t sent;      /* request body bytes handed to the transfer */
    int transport_code; /* CURLcode, 0 when the exchange completed */
    bool connected;     /* a connection to the server was established */
    al_error *err;      /* transport or sink failure; NULL when a whole response arrived */

    void *user; /* caller's */
} al_request;

al_request *al_request_new(const char *url);
void al_request_free(al_request *r); /* wipes the secrets it holds */
/* "GET", "HEAD", "POST", "PUT", "PATCH": for messages. */
const char *al_request_method(const al_request *r);

typedef void (*al_request_done_fn)(al_request *r, void *user);

/* Queue r; done(r, user) runs from al_engine_run when it has ended
 * (r->status, or r->err for a transport failure). r stays the caller's
 * and must live until then. */
void al_engine_send(al_engine *e, al_request *r, al_request_done_fn done, void *user);

/* Call fn(user) from the loop once al_mono() >= at. Returns a handle for
 * al_engine_cancel (valid until fn has run). */
typedef struct al_timer al_timer;
al_timer *al_engine_timer(al_engine *e, double at, void (*fn)(void *), void *user);
void al_engine_cancel(al_engine *e, al_timer *t);

/* Work done by another thread: al_engine_hold (on the loop's thread)
 * before handing it over, then al_engine_post (from any thread) to have
 * fn(user) run on the loop's thread; the loop does not return while a
 * hold is outstanding. */
void al_engine_hold(al_engine *e);
void al_engine_post(al_engine *e, void (*fn)(void *), void *user);

/* Called after every loop iteration (e.g. to commit what the iteration
 * finished in one transaction). At most one; NULL removes it. */
void al_engine_on_iteration(al_engine *e, void (*fn)(void *), void *user);

/* Drive everything sent, timed or held until nothing is left. Returns 0. */
int al_engine_run(al_engine *e);

/* The caller's verdict on an ended request, for the progress hook
 * (RETRY or DONE). */
void al_engine_progress(al_engine *e, al_xfer_event ev, const al_request *r, uint64_t have);

/* Counters for the whole run. */
typedef struct al_engine_stats {
    uint64_t requests;   /* HTTP requests answered (any status) */
    uint64_t blob_bytes; /* 2xx body bytes written to body functions (blobs) */
    uint64_t sent_bytes; /* request body bytes sent (uploads, manifests), retries included */
    uint64_t retries;    /* counted by the callers (fetch/call.c) */
} al_engine_stats;
const al_engine_stats *al_engine_get_stats(const al_engine *e);
al_engine_stats *al_engine_stats_mut(al_engine *e);

/* "scheme://host[:port]/path" without userinfo and query, for messages
 * (malloc'd). Presigned redirect URLs carry credentials in the query. */
char *al_url_redact(const char *url);

#endif
