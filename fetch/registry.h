/* The registry client: builds /v2/ URLs, sends the manifest Accept header,
 * answers auth challenges (basic, bearer tokens cached per repository
 * scope, refreshed once on 401), follows blob redirects without ever
 * sending Authorization to another host, and falls back from HTTPS to
 * plain HTTP only for local and --insecure-registry hosts (hostpolicy.h).
 *
 * Work is submitted in batches of calls (al_registry_run); every HTTP
 * request of a batch goes through the one engine loop. */
#ifndef AL_REGISTRY_H
#define AL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"
#include "engine.h"

typedef struct al_registry al_registry;

typedef struct al_registry_opts {
    al_creds *creds;       /* borrowed; may be NULL */
    char **insecure_hosts; /* borrowed: HOST[:PORT] entries */
    size_t n_insecure;
    const char *ca_cert;     /* --ca-cert: extra CAs for every host, or NULL */
    const char *client_cert; /* --client-cert/--client-key for every host, or NULL */
    const char *client_key;
    /* Directories searched for docker's per-host TLS files
     * (DIR/HOST[:PORT]/{*.crt,client.cert,client.key}); NULL-terminated.
     * NULL means /etc/docker/certs.d and /etc/containers/certs.d. */
    const char *const *certs_dirs;
} al_registry_opts;

int al_registry_new(al_registry **out, al_engine *engine, const al_registry_opts *opts,
                    al_error **err);
void al_registry_free(al_registry *r);

typedef enum {
    AL_CALL_MANIFEST_HEAD,
    AL_CALL_MANIFEST_GET, /* body in memory (AL_MANIFEST_MAX) */
    AL_CALL_BLOB_MEM,     /* small blob (config) in memory, capped at mem_cap */
    AL_CALL_BLOB_STORE,   /* blob streamed into the store, verified */
} al_call_op;

typedef struct al_call {
    al_call_op op;
    const char *host;      /* endpoint host[:port] (borrowed) */
    const char *repo;      /* repository path, e.g. "library/busybox" (borrowed) */
    const char *reference; /* tag or digest (borrowed) */
    size_t mem_cap;        /* AL_CALL_BLOB_MEM */
    al_store *store;       /* AL_CALL_BLOB_STORE (borrowed) */
    int64_t size;          /* AL_CALL_BLOB_STORE: expected size */

    /* Results. */
    al_request *resp; /* final response; owned by the call */
    al_error *err;    /* NULL when the final response was 2xx */
    void *user;

    /* Private. */
    char *next_url;
    bool off_host;
    int redirects;
    bool sent_auth;
    bool refreshed;
    bool done;
} al_call;

al_call *al_call_new(al_call_op op, const char *host, const char *repo, const char *reference);
void al_call_free(al_call *c);

/* Run every call to its end. Returns 0; outcomes are per call. */
int al_registry_run(al_registry *r, al_call **calls, size_t n);

/* Pull quota a registry announced (RateLimit-Limit/-Remaining, as Docker
 * Hub sends on manifest requests). */
typedef struct al_quota {
    const char *host;
    long limit; /* -1 when not sent */
    long remaining;
    long window; /* seconds, -1 when not sent */
} al_quota;
/* Fills up to max entries; returns how many hosts reported a quota. */
size_t al_registry_quotas(const al_registry *r, al_quota *out, size_t max);

/* Whether host is listed with --insecure-registry. */
bool al_registry_is_insecure(const al_registry *r, const char *host);

#endif
