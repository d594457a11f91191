/* The transition table of the transfer engine's machines, and the one
 * function every state change goes through (see fsm.h). */
#include "fsm.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row: machine M, from state f, on event e, to state t. Why it
 * happens is said beside it (and in docs/DESIGN.md). */
#define ROW(M, f, e, t)                                                                            \
    {                                                                                              \
        AL_FSM_##M, AL_##M##_##f, AL_EV_##e, AL_##M##_##t                                          \
    }

static const al_fsm_entry table[] = {
    /* A call: find its resume point, get admitted, send, follow, retry,
     * keep the result. */
    ROW(CALL, INIT, START, PREPARE),  /* a call starts by looking for an earlier attempt's work */
    ROW(CALL, PREPARE, FRESH, ADMIT), /* nothing to resume */
    ROW(CALL, PREPARE, PARTIAL, HASHING), /* a partial download: re-hash it off the loop */
    ROW(CALL, PREPARE, FAIL, FAILED),  /* an upload's store file is missing or of the wrong size */
    ROW(CALL, HASHING, HASHED, ADMIT), /* resume after the verified prefix (or from 0) */
    ROW(CALL, HASHING, COMPLETE, COMMIT),     /* the partial is the whole blob: no request */
    ROW(CALL, HASHING, FAIL, FAILED),         /* an upload's store file could not be read */
    ROW(CALL, ADMIT, GO, SEND),               /* the registry lets it go */
    ROW(CALL, ADMIT, WAIT_HOST, WAIT_HOST),   /* another call probes or retries the host */
    ROW(CALL, ADMIT, NEED_TOKEN, WAIT_TOKEN), /* a token for its scope is on the way */
    ROW(CALL, ADMIT, FAIL, FAILED), /* host down, credentials refused, scope denied, quota spent */
    ROW(CALL, WAIT_HOST, WAKE, ADMIT),   /* the host's state changed */
    ROW(CALL, WAIT_HOST, FAIL, FAILED),  /* the host went down or refused our credentials */
    ROW(CALL, WAIT_TOKEN, WAKE, ADMIT),  /* the token arrived (or the scope changed) */
    ROW(CALL, WAIT_TOKEN, FAIL, FAILED), /* the token service refused the scope */
    ROW(CALL, SEND, OK, COMMIT),         /* a 2xx answer, body complete */
    ROW(CALL, SEND, NEXT, ADMIT),        /* an upload's step done: its next request (POST ->
                                            PATCH... -> PUT), admitted like any other */
    ROW(CALL, SEND, PARTIAL, HASHING),   /* the registry holds more of an upload than was hashed:
                                            hash the store's bytes up to there, off the loop */
    ROW(CALL, SEND, REDIRECT, REDIRECT), /* a 3xx answer with a Location */
    ROW(CALL, SEND, CHALLENGED, ADMIT),  /* 401: new auth scheme, or the token expired */
    ROW(CALL, SEND, USE_GET, ADMIT),     /* HEAD refused on manifests: ask with GET */
    ROW(CALL, SEND, USE_HTTP, ADMIT),    /* no TLS on a host allowed plain HTTP */
    ROW(CALL, SEND, RETRY, RETRY_WAIT),  /* a transient failure with attempts left */
    ROW(CALL, SEND, WAIT_HOST,
        WAIT_HOST),                      /* connection failed while another call retries the host */
    ROW(CALL, SEND, RESTART, PREPARE),   /* 206 for another range, or 416: start the blob over */
    ROW(CALL, SEND, FAIL, FAILED),       /* a permanent failure, or no attempts left */
    ROW(CALL, REDIRECT, FOLLOW, SEND),   /* go to the Location (no credentials to another host) */
    ROW(CALL, REDIRECT, FAIL, FAILED),   /* too many redirects, or an unusable Location */
    ROW(CALL, RETRY_WAIT, WAKE, ADMIT),  /* the wait is over */
    ROW(CALL, RETRY_WAIT, FAIL, FAILED), /* the host went down meanwhile */
    ROW(CALL, COMMIT, COMMITTED, DONE),  /* verified and kept */
    ROW(CALL, COMMIT, RESTART, PREPARE), /* a resumed download fails its digest: one fresh try */
    ROW(CALL, COMMIT, FAIL, FAILED),     /* digest or size mismatch, disk error */
    /* A registry's auth scheme, learnt from the first answer. */
    ROW(AUTH, UNKNOWN, PROBE, PROBING),   /* the first call goes out alone, without credentials */
    ROW(AUTH, PROBING, OPEN, ANONYMOUS),  /* it answered without a challenge */
    ROW(AUTH, PROBING, BASIC, BASIC_TRY), /* Basic challenge, credentials to try once */
    ROW(AUTH, PROBING, BEARER, BEARER),   /* Bearer challenge, anonymous tokens */
    ROW(AUTH, PROBING, BEARER_CREDS, BEARER_TRY), /* Bearer challenge, credentials to try once */
    ROW(AUTH, PROBING, REJECTED, FAILED),         /* it wants credentials we do not have */
    ROW(AUTH, ANONYMOUS, BASIC, BASIC_TRY), /* a later answer asks for Basic, credentials at hand */
    ROW(AUTH, ANONYMOUS, BEARER, BEARER),   /* a later answer asks for a token */
    ROW(AUTH, ANONYMOUS, BEARER_CREDS,
        BEARER_TRY), /* a later answer asks for a token, credentials at hand */
    ROW(AUTH, ANONYMOUS, REJECTED, FAILED), /* a later answer wants credentials we do not have */
    ROW(AUTH, BASIC_TRY, ACCEPTED, BASIC), /* an answer to our credentials: every call sends them */
    ROW(AUTH, BASIC_TRY, REJECTED, FAILED),  /* 401 to our Basic credentials */
    ROW(AUTH, BEARER_TRY, ACCEPTED, BEARER), /* the token service took our credentials */
    ROW(AUTH, BEARER_TRY, REJECTED, FAILED), /* the token service refused our credentials */
    /* One bearer token scope (repository:NAME:pull). */
    ROW(SCOPE, NONE, FETCH, FETCHING),     /* a call needs a token: one token call for the scope */
    ROW(SCOPE, FETCHING, GRANTED, VALID),  /* a token: the waiting calls go */
    ROW(SCOPE, FETCHING, REFUSED, DENIED), /* no token: the waiting calls fail */
    ROW(SCOPE, VALID, EXPIRED, NONE),      /* expired, or refused by the registry */
    /* A host's reachability. */
    ROW(LINK, UP, CONN_FAIL, SUSPECT), /* a connection failed: this call retries, others wait */
    ROW(LINK, UP, FATAL, DOWN),        /* TLS verification failed: nothing will reach it */
    ROW(LINK, SUSPECT, CONN_OK, UP),   /* it answered again: the waiting calls go */
    ROW(LINK, SUSPECT, GIVE_UP, DOWN), /* no attempts left: every call of the host fails */
    /* https, or plain http for a host allowed it. */
    ROW(SCHEME, HTTPS, PLAIN, HTTP), /* the host does not speak TLS and may use plain HTTP */
    /* HEAD on manifests. */
    ROW(HEAD, UNKNOWN, HEAD_OK, OK), /* HEAD on a manifest answered 2xx */
    ROW(HEAD, UNKNOWN, HEAD_REFUSED,
        REFUSED), /* HEAD refused, GET worked: GET for the rest of the run */
};

#define N_ENTRIES (sizeof(table) / sizeof(table[0]))

static uint64_t counts[N_ENTRIES];
static short lookup[AL_FSM_N_MACHINES][AL_CALL_N_STATES][AL_EV_N_EVENTS];
static bool lookup_built;

static void build_lookup(void)
{
    memset(lookup, 0xff, sizeof(lookup)); /* -1: no entry */
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const al_fsm_entry *t = &table[i];
        assert(t->from < AL_CALL_N_STATES && t->to < AL_CALL_N_STATES);
        assert(lookup[t->machine][t->from][t->event] == -1); /* one entry per pair */
        lookup[t->machine][t->from][t->event] = (short)i;
    }
    lookup_built = true;
}

static int entry_of(al_fsm_machine m, int state, al_fsm_event ev)
{
    if (!lookup_built)
        build_lookup();
    if ((unsigned)m >= AL_FSM_N_MACHINES || state < 0 || state >= AL_CALL_N_STATES ||
        (unsigned)ev >= AL_EV_N_EVENTS)
        return -1;
    return lookup[m][state][ev];
}

int al_fsm_allowed(al_fsm_machine m, int state, al_fsm_event ev)
{
    return entry_of(m, state, ev) >= 0;
}

int al_fsm_fire(al_fsm_machine m, int *state, al_fsm_event ev, const char *who)
{
    int i = entry_of(m, *state, ev);
    if (i < 0) {
        fprintf(stderr, "airlock: no transition %s %s --%s-->\n", al_fsm_machine_name(m),
                al_fsm_state_name(m, *state), al_fsm_event_name(ev));
        abort(); /* a programming error: the table is the whole story */
    }
    counts[i]++;
    static int trace = -1;
    if (trace < 0) {
        const char *v = getenv("AL_DEBUG_FSM");
        trace = v != NULL && strcmp(v, "1") == 0;
    }
    if (trace)
        fprintf(stderr, "fsm: %s %s: %s --%s--> %s\n", al_fsm_machine_name(m), who ? who : "",
                al_fsm_state_name(m, *state), al_fsm_event_name(ev),
                al_fsm_state_name(m, table[i].to));
    *state = table[i].to;
    return *state;
}

const al_fsm_entry *al_fsm_table(size_t *n_out)
{
    *n_out = N_ENTRIES;
    return table;
}

uint64_t al_fsm_count(size_t entry)
{
    return entry < N_ENTRIES ? counts[entry] : 0;
}

void al_fsm_reset_counts(void)
{
    memset(counts, 0, sizeof(counts));
}

const char *al_fsm_machine_name(al_fsm_machine m)
{
    static const char *const names[] = {"call", "auth", "scope", "link", "scheme", "head"};
    return (unsigned)m < AL_FSM_N_MACHINES ? names[m] : "?";
}

static const char *const call_names[] = {"INIT",       "PREPARE",    "HASHING", "ADMIT",
                                         "WAIT_HOST",  "WAIT_TOKEN", "SEND",    "REDIRECT",
                                         "RETRY_WAIT", "COMMIT",     "DONE",    "FAILED"};
static const char *const auth_names[] = {"UNKNOWN", "PROBING",    "ANONYMOUS", "BASIC_TRY",
                                         "BASIC",   "BEARER_TRY", "BEARER",    "FAILED"};
static const char *const scope_names[] = {"NONE", "FETCHING", "VALID", "DENIED"};
static const char *const link_names[] = {"UP", "SUSPECT", "DOWN"};
static const char *const scheme_names[] = {"HTTPS", "HTTP"};
static const char *const head_names[] = {"UNKNOWN", "OK", "REFUSED"};

const char *al_fsm_state_name(al_fsm_machine m, int s)
{
    static const struct {
        const char *const *names;
        int n;
    } by_machine[] = {
        {call_names, AL_CALL_N_STATES},     {auth_names, AL_AUTH_N_STATES},
        {scope_names, AL_SCOPE_N_STATES},   {link_names, AL_LINK_N_STATES},
        {scheme_names, AL_SCHEME_N_STATES}, {head_names, AL_HEAD_N_STATES},
    };
    if ((unsigned)m >= AL_FSM_N_MACHINES || s < 0 || s >= by_machine[m].n)
        return "?";
    return by_machine[m].names[s];
}

const char *al_fsm_event_name(al_fsm_event ev)
{
    static const char *const names[] = {
        "start",        "fresh",       "partial",  "hashed",  "complete", "go",
        "wait_host",    "need_token",  "wake",     "ok",      "redirect", "follow",
        "challenged",   "use_get",     "use_http", "retry",   "restart",  "committed",
        "next",         "fail",        "probe",    "open",    "basic",    "bearer",
        "bearer_creds", "accepted",    "rejected", "fetch",   "granted",  "refused",
        "expired",      "conn_fail",   "conn_ok",  "give_up", "fatal",    "plain",
        "head_ok",      "head_refused"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == AL_EV_N_EVENTS, "event names");
    return (unsigned)ev < AL_EV_N_EVENTS ? names[ev] : "?";
}
