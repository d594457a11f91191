/* The registry client: the distribution protocol's side of every call
 * (fetch/call.h). Per host it keeps what the run learnt, each as an
 * explicit state of fsm.h: the auth scheme (probed by the first call,
 * Basic, or Bearer with one token per repository scope, fetched by a token
 * call the scope's calls wait for), whether the host answers at all (a
 * connection failure makes one call retry while the others wait, and when
 * it gives up every call of the host fails at once), https or plain http
 * (local and --insecure-registry hosts that do not speak TLS: hostpolicy.h),
 * and whether HEAD on
 * manifests works (else GET by tag, for the rest of the run). It builds
 * each request: /v2/ URLs, the manifest Accept header, TLS material per
 * host (certs.d, --ca-cert, client certificates), Authorization only for
 * the registry itself and the token service it names, never with a
 * redirect to another host. It also keeps the pull quota a registry
 * announces (RateLimit-*). */
#ifndef AL_REGISTRY_H
#define AL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"
#include "engine.h"
#include "store.h"

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

/* Also starts the worker thread that re-hashes partial downloads. */
int al_registry_new(al_registry **out, al_engine *engine, const al_registry_opts *opts,
                    al_error **err);
void al_registry_free(al_registry *r);
al_engine *al_registry_engine(const al_registry *r);
/* Where the run's blobs are made durable in groups (fetch/stage.h): one
 * per store, made at first use, on the registry's worker threads. */
struct al_stage *al_registry_stage(al_registry *r, al_store *store);

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

/* Whether the run spoke to host in plain HTTP (SCHEME machine: a local or
 * --insecure-registry host that does not speak TLS). */
bool al_registry_plain_http(const al_registry *r, const char *host);

/* Whether host is listed with --insecure-registry. */
bool al_registry_is_insecure(const al_registry *r, const char *host);

/* Seconds a Retry-After value asks for (delta-seconds or an HTTP date),
 * or -1 when absent or unreadable. */
double al_retry_after_seconds(const char *value);

#endif
