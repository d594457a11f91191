/* What fetch/call.c, fetch/registry.c and fetch/upload.c share: the call,
 * the host and the token scope records, and the registry's side of a
 * call's states (the admission gate, request decoration, what an answer
 * means for the host). Nothing outside these files includes it. */
#ifndef AL_REGISTRY_PRIVATE_H
#define AL_REGISTRY_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "call.h"
#include "credentials.h"
#include "engine.h"
#include "fsm.h"
#include "hostpolicy.h"
#include "registry.h"
#include "strmap.h"
#include "worker.h"

/* An intrusive list of calls waiting for something (a host, a scope) or
 * sleeping in RETRY_WAIT. A call is on at most one list. */
typedef struct call_list {
    al_call *head;
} call_list;

typedef struct scope scope;
typedef struct reghost reghost;

struct al_call {
    al_registry *reg; /* borrowed */
    al_call_kind kind;
    int state; /* al_call_state */
    char *host, *repo, *reference;
    char *label; /* "GET host/repo/reference", for traces and messages */
    size_t mem_cap;
    al_store *store; /* BLOB_STORE (borrowed) */
    int64_t size;    /* BLOB_STORE: expected size */
    int64_t priority;

    al_request *req;        /* the current or last request */
    al_blob_writer *writer; /* BLOB_STORE: the partial file and its hash */
    bool bad_range;         /* the answer did not continue where we asked */
    bool fresh_try_done;    /* a resumed download failed its digest once already */
    bool complete;          /* HASHING found the partial whole and right */
    uint64_t bytes;         /* downloaded by this call */
    char *url;              /* a redirect's target; NULL: the registry's own URL */
    bool off_host;          /* redirected to another origin: never credentials */
    int redirects;
    int retries;
    double retry_delay;   /* asked for by Retry-After, or -1: back off */
    bool req_pending;     /* req ended but the progress display has not been told */
    bool sent_auth;       /* the last request carried our credentials or a token */
    uint64_t token_gen;   /* which token it carried */
    bool refreshed;       /* the scope's token was renewed once for this call */
    bool use_get;         /* MANIFEST_HEAD: the registry refused HEAD */
    bool head_404;        /* ...because HEAD said 404 (a GET that works means it lied) */
    bool counted_get;     /* counted in the host's manifest GETs in flight */
    bool push;            /* scope "pull,push" */
    bool absent_ok;       /* HEADs: a 404 is an answer */
    bool found;           /* HEADs: the registry has it */
    const char *put_body; /* MANIFEST_PUT (borrowed) */
    size_t put_len;
    char *put_type, *put_digest;
    struct al_upload *up; /* BLOB_UPLOAD (fetch/upload.h) */
    al_timer *timer;
    al_error *err;
    al_call_done_fn done;
    void *user;

    /* TOKEN calls: the scope they fetch for, the token URL, the form. */
    scope *for_scope;
    char *token_form;
    char *token_auth;

    call_list *list; /* the list it is on, or NULL */
    al_call *prev, *next;
};

struct scope {
    char *name;  /* "repository:library/busybox:pull" */
    reghost *h;  /* borrowed */
    int state;   /* al_scope_state */
    char *token; /* "Bearer ..." (wiped when dropped) */
    uint64_t gen;
    double expires; /* monotonic */
    al_error *err;  /* DENIED: why */
    call_list waiting;
};

struct reghost {
    char *name;         /* host[:port] */
    bool insecure;      /* --insecure-registry: unverified TLS or plain HTTP */
    bool plain_http_ok; /* insecure, or a local address (docs/DESIGN.md, Security) */
    bool tls_loaded;
    char *ca_pem; /* system CAs + --ca-cert + certs.d CAs, when any extra */
    size_t ca_len;
    char *client_cert, *client_key;
    bool cred_loaded;
    const al_cred *cred;          /* borrowed from the creds cache; NULL: anonymous */
    al_error *cred_err;           /* the lookup failed (a missing helper) */
    int auth, link, scheme, head; /* the machines' states (fsm.h) */
    al_call *auth_prober;         /* AUTH PROBING: the call that went first */
    al_call *link_prober;         /* LINK SUSPECT: the call that retries */
    int token_calls;              /* token calls in flight (BEARER_TRY allows one) */
    char *realm, *service;
    al_strmap *scopes;                      /* name -> scope */
    al_error *auth_err;                     /* AUTH FAILED: every call fails with it */
    al_error *down_err;                     /* LINK DOWN: every call fails with it */
    call_list waiting;                      /* WAIT_HOST */
    call_list sleeping;                     /* RETRY_WAIT */
    int manifest_gets;                      /* in flight, for the pull quota */
    long rl_limit, rl_remaining, rl_window; /* -1 until the registry tells */
};

struct al_registry {
    al_engine *engine;
    al_worker *worker;
    struct al_stage *stage; /* made at first use */
    al_registry_opts opts;
    al_hostpolicy policy;
    al_strmap *hosts;    /* name -> reghost */
    reghost **host_list; /* the same, in creation order (quotas, freeing) */
    size_t n_hosts;
};

/* Lists. */
void al_call_list_add(call_list *l, al_call *c);
void al_call_list_remove(al_call *c);
/* Fire ev (WAKE or FAIL) at every call of l; with FAIL each gets a copy
 * of why. The list is emptied first: calls may join it again. */
void al_call_list_fire(call_list *l, al_fsm_event ev, const al_error *why);
/* Fire an event at a call and run the new state's handler. */
void al_call_fire(al_call *c, al_fsm_event ev);

/* The registry's side (registry.c). */
reghost *reg_host(al_registry *r, const char *name);
/* ADMIT: GO, WAIT_HOST (the call is put on the host's list), NEED_TOKEN
 * (on the scope's list) or FAIL (*why set). */
al_fsm_event reg_admit(al_registry *r, al_call *c, al_error **why);
/* WAIT_TOKEN's handler: start the scope's token call if none runs. */
void reg_fetch_token(al_registry *r, al_call *c);
/* SEND: the request for the call's next attempt (URL, TLS, auth). */
al_request *reg_build_request(al_registry *r, al_call *c);
/* An answer arrived (any status): the host's link, auth probe, quota. */
void reg_note_answer(al_registry *r, al_call *c, const al_request *q);
/* A request that got no answer: the event for the call. */
al_fsm_event reg_transport_event(al_registry *r, al_call *c, const al_request *q);
/* A 401 from the registry itself: CHALLENGED or FAIL (c->err set). */
al_fsm_event reg_challenge(al_registry *r, al_call *c, const al_request *q);
/* HEAD on a manifest: what the answer says about HEAD support. */
void reg_head_answer(al_registry *r, al_call *c, long status);
/* The call ended (DONE or FAILED): leave every list and counter. */
void reg_call_ended(al_registry *r, al_call *c);
/* "GET URL: HTTP 404 Not Found (CODE: message)" into *err. */
int reg_http_error(al_error **err, const al_request *q, const char *method);
/* Whether the registry's error body names code (errors[].code). */
bool reg_error_code_is(const al_request *q, const char *code);
bool reg_may_retry(const al_registry *r, const al_call *c);

#endif
