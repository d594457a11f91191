/* The transfer engine's state machines and their one transition table
 * (docs/DESIGN.md, "The transfer engine").
 *
 * Six small machines share the table:
 *   CALL    one logical call: resolve a tag, fetch a manifest, a blob into
 *           memory or into the store, a token (fetch/call.c); push a blob
 *           (a sequence of requests: fetch/upload.c) or a manifest;
 *   AUTH    what a registry wants before it answers (fetch/registry.c);
 *   SCOPE   one bearer token scope of a registry: none, being fetched,
 *           held, refused;
 *   LINK    whether a host answers at all: up, suspect (one call retries,
 *           the others wait), down (every call fails at once);
 *   SCHEME  https, or plain http for a host allowed it that does not speak TLS;
 *   HEAD    whether a registry answers HEAD on manifests, or must be asked
 *           with GET by tag for the rest of the run.
 *
 * Every state change of every machine goes through al_fsm_fire(), which
 * looks the (machine, state, event) up in the table, counts the entry and
 * returns the new state. A pair missing from the table is a programming
 * error (assert). The counters are what the unit tests read to prove every
 * entry was taken. */
#ifndef AL_FSM_H
#define AL_FSM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    AL_FSM_CALL,
    AL_FSM_AUTH,
    AL_FSM_SCOPE,
    AL_FSM_LINK,
    AL_FSM_SCHEME,
    AL_FSM_HEAD,
    AL_FSM_N_MACHINES
} al_fsm_machine;

typedef enum {
    AL_CALL_INIT,       /* created, not started */
    AL_CALL_PREPARE,    /* look for what an earlier attempt left (a partial download, an
                           upload session) */
    AL_CALL_HASHING,    /* a worker thread re-hashes that partial download, or the store's
                           bytes of an upload up to where the registry holds them */
    AL_CALL_ADMIT,      /* ask the registry whether the call may go now */
    AL_CALL_WAIT_HOST,  /* the host is being probed or retried by another call */
    AL_CALL_WAIT_TOKEN, /* a token for the call's scope is being fetched */
    AL_CALL_SEND,       /* one HTTP request queued or in flight */
    AL_CALL_REDIRECT,   /* a 3xx answer: work out where to go next */
    AL_CALL_RETRY_WAIT, /* waiting out a backoff or a Retry-After */
    AL_CALL_COMMIT,     /* the body is complete: verify and keep it */
    AL_CALL_DONE,
    AL_CALL_FAILED,
    AL_CALL_N_STATES
} al_call_state;

typedef enum {
    AL_AUTH_UNKNOWN,    /* nothing sent yet */
    AL_AUTH_PROBING,    /* one call is out without credentials to learn the scheme */
    AL_AUTH_ANONYMOUS,  /* it answered without a challenge */
    AL_AUTH_BASIC_TRY,  /* Basic, our credentials not yet accepted: one call tries them */
    AL_AUTH_BASIC,      /* Basic: credentials on every request */
    AL_AUTH_BEARER_TRY, /* Bearer, our credentials not yet accepted: one token request at a time */
    AL_AUTH_BEARER,     /* Bearer: a token per repository scope */
    AL_AUTH_FAILED,     /* credentials refused or missing: every call fails with one message */
    AL_AUTH_N_STATES
} al_auth_state;

typedef enum {
    AL_SCOPE_NONE,     /* no token */
    AL_SCOPE_FETCHING, /* a token call runs; calls of the scope wait */
    AL_SCOPE_VALID,    /* a token, until it expires or the registry refuses it */
    AL_SCOPE_DENIED,   /* the token service refused: calls of the scope fail */
    AL_SCOPE_N_STATES
} al_scope_state;

typedef enum {
    AL_LINK_UP,
    AL_LINK_SUSPECT, /* a connection failed: one call retries, the others wait */
    AL_LINK_DOWN,    /* unreachable: every call fails at once, with the reason */
    AL_LINK_N_STATES
} al_link_state;

typedef enum { AL_SCHEME_HTTPS, AL_SCHEME_HTTP, AL_SCHEME_N_STATES } al_scheme_state;

typedef enum {
    AL_HEAD_UNKNOWN,
    AL_HEAD_OK,
    AL_HEAD_REFUSED, /* manifests are resolved with GET by tag for the rest of the run */
    AL_HEAD_N_STATES
} al_head_state;

typedef enum {
    /* calls */
    AL_EV_START,      /* al_call_start */
    AL_EV_FRESH,      /* nothing to resume */
    AL_EV_PARTIAL,    /* a partial download to re-hash; an upload the registry holds more of */
    AL_EV_HASHED,     /* re-hashed: resume there (or from 0 when it was unusable) */
    AL_EV_COMPLETE,   /* the partial download is the whole blob, verified */
    AL_EV_GO,         /* admitted: send */
    AL_EV_WAIT_HOST,  /* the host is busy being probed or retried */
    AL_EV_NEED_TOKEN, /* no token for the scope yet */
    AL_EV_WAKE,       /* what the call waited for happened: ask again */
    AL_EV_OK,         /* a 2xx answer, body complete */
    AL_EV_REDIRECT,   /* a 3xx answer with a Location */
    AL_EV_FOLLOW,     /* the redirect target is acceptable */
    AL_EV_CHALLENGED, /* 401: the registry's auth state changed; ask again */
    AL_EV_USE_GET,    /* HEAD refused: resolve the tag with GET */
    AL_EV_USE_HTTP,   /* no TLS on a host allowed plain HTTP */
    AL_EV_RETRY,      /* transient failure, attempts left */
    AL_EV_RESTART,    /* the resume point was wrong: drop the partial, start over */
    AL_EV_COMMITTED,  /* verified and kept */
    AL_EV_NEXT,       /* an upload's step answered: on to its next request */
    AL_EV_FAIL,
    /* auth */
    AL_EV_PROBE,        /* the first call goes out */
    AL_EV_OPEN,         /* an answer without a challenge */
    AL_EV_BASIC,        /* a Basic challenge */
    AL_EV_BEARER,       /* a Bearer challenge, no credentials to try */
    AL_EV_BEARER_CREDS, /* a Bearer challenge, credentials to try */
    AL_EV_ACCEPTED,     /* the registry or its token service took our credentials */
    AL_EV_REJECTED,     /* credentials refused, or needed and missing */
    /* scopes */
    AL_EV_FETCH,
    AL_EV_GRANTED,
    AL_EV_REFUSED,
    AL_EV_EXPIRED,
    /* links */
    AL_EV_CONN_FAIL,
    AL_EV_CONN_OK,
    AL_EV_GIVE_UP,
    AL_EV_FATAL, /* e.g. TLS verification failed: no retry helps */
    /* schemes */
    AL_EV_PLAIN,
    /* HEAD support */
    AL_EV_HEAD_OK,
    AL_EV_HEAD_REFUSED,
    AL_EV_N_EVENTS
} al_fsm_event;

typedef struct al_fsm_entry {
    al_fsm_machine machine;
    int from;
    al_fsm_event event;
    int to;
} al_fsm_entry;

/* Move *state by event; returns the new state (also stored in *state).
 * who names the object in the AL_DEBUG_FSM=1 trace (may be NULL). */
int al_fsm_fire(al_fsm_machine m, int *state, al_fsm_event ev, const char *who);
/* Whether the table has an entry for (m, state, ev). */
int al_fsm_allowed(al_fsm_machine m, int state, al_fsm_event ev);

/* The table and its counters (how often each entry was taken in this
 * process), for tests and the debug trace. */
const al_fsm_entry *al_fsm_table(size_t *n_out);
uint64_t al_fsm_count(size_t entry);
void al_fsm_reset_counts(void);

const char *al_fsm_machine_name(al_fsm_machine m);
const char *al_fsm_state_name(al_fsm_machine m, int state);
const char *al_fsm_event_name(al_fsm_event ev);

#endif
