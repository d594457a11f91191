/* The transfer engine: one libcurl multi handle driving every HTTP request
 * of a run (curl's loop: poll -> perform -> info_read -> refill).
 *
 * The engine knows nothing about registries. It runs a batch of requests to
 * completion with at most `jobs` in flight, retries transient failures with
 * exponential backoff, and hands each response to a sink: a bounded memory
 * buffer (manifests, tokens, error bodies) or a store blob writer that
 * verifies size and digest as bytes arrive. Redirects are not followed here:
 * the caller sees 3xx and decides (so Authorization never leaks). */
#ifndef AL_ENGINE_H
#define AL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "store.h"

struct al_request;

/* Progress hook (see fetch/progress.h). The engine tells it what happens
 * to each request: QUEUED when al_engine_run receives it, START for each
 * attempt, DATA as body bytes arrive (`have`: bytes of the resource held so
 * far, a resumed download counting what was already on disk), RETRY or
 * DONE when an attempt ends, TICK on every loop iteration (r NULL; the loop
 * then wakes at least every 100 ms, so a display redraws on a timer
 * without anyone sleeping) and IDLE when al_engine_run returns. */
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
    int jobs;             /* concurrent transfers (default 8) */
    long connect_timeout; /* seconds */
    long low_speed_time;  /* seconds below low_speed_limit bytes/s before a stall is cut */
    long low_speed_limit; /* bytes per second */
    int max_retries;      /* per request, for transient failures */
    bool debug_http;      /* AL_DEBUG_HTTP=1: curl's trace on stderr, credentials redacted */
    al_engine_progress_fn progress; /* NULL: no progress reporting */
    void *progress_user;            /* borrowed, passed to progress */
} al_engine_opts;

void al_engine_opts_default(al_engine_opts *o);

typedef struct al_engine al_engine;
int al_engine_new(al_engine **out, const al_engine_opts *opts, al_error **err);
void al_engine_free(al_engine *e);

typedef struct al_request {
    /* Input. */
    char *url;           /* owned */
    bool head;           /* HEAD instead of GET */
    bool insecure;       /* skip TLS peer/host verification (--insecure-registry) */
    char *accept;        /* Accept header value, owned, may be NULL */
    char *authorization; /* full header value ("Bearer x"), owned, may be NULL; never logged */
    char *post_fields;   /* POST this urlencoded form instead of GET (owned; secrets: wiped) */
    const char *ca_pem;  /* CA bundle (PEM text) replacing the default, or NULL (borrowed) */
    size_t ca_pem_len;
    const char *client_cert; /* client certificate and key files for mTLS, or NULL (borrowed) */
    const char *client_key;
    size_t mem_cap; /* memory sink: refuse bodies larger than this (AL_E_SIZE) */
    /* Blob sink: when `store` is set, a 2xx body is streamed into a blob
     * writer for `blob_digest` with `blob_size`; commit verifies both. */
    al_store *store; /* borrowed */
    char blob_digest[AL_DIGEST_BUF];
    int64_t blob_size;

    /* Output (reset before each attempt). */
    long status; /* final HTTP status, 0 when no response */
    char *content_type;
    char *docker_digest; /* Docker-Content-Digest */
    char *www_authenticate;
    char *location;
    char *ratelimit_remaining; /* RateLimit-Remaining ("76;w=21600"), as sent */
    char *ratelimit_limit;     /* RateLimit-Limit */
    int64_t content_length;    /* -1 when unknown */
    char *body; /* memory sink, or the first bytes of a non-2xx body; NUL-terminated */
    size_t body_len;
    uint64_t bytes; /* body bytes received in the successful attempt */
    int attempts;
    int transport_code; /* CURLcode of the last attempt, 0 when a response arrived */
    al_error *err;      /* transport or sink failure; NULL when a response was received */

    void *user; /* caller's */

    /* Engine-private. */
    void *priv;
} al_request;

al_request *al_request_new(const char *url);
/* Reset the output fields (before re-running a request). */
void al_request_reset_output(al_request *r);
void al_request_free(al_request *r);

/* Run every request to completion (success, HTTP status, or error after
 * retries). Returns 0; per-request outcomes are in each request. HTTP
 * statuses 408, 429 and 5xx, and transient transport errors, are retried
 * up to max_retries times honouring Retry-After. */
int al_engine_run(al_engine *e, al_request **reqs, size_t n);

/* Counters for the whole run. */
typedef struct al_engine_stats {
    uint64_t requests;   /* HTTP requests answered (any status) */
    uint64_t blob_bytes; /* bytes written into blobs */
    uint64_t retries;
} al_engine_stats;
const al_engine_stats *al_engine_get_stats(const al_engine *e);

/* "scheme://host[:port]/path" without userinfo and query, for messages
 * (malloc'd). Presigned redirect URLs carry credentials in the query. */
char *al_url_redact(const char *url);

#endif
