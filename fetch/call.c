/* One logical call as a state machine: one handler per state, every
 * change through al_call_fire (see call.h, fsm.h). */
#include "call.h"
#include "registry-private.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sanitize.h"
#include "stage.h"
#include "upload.h"
#include "url.h"
#include "util.h"

#define MAX_REDIRECTS 5
#define BACKOFF_BASE 0.5
#define BACKOFF_CAP 20.0

al_call *al_call_new(al_registry *reg, al_call_kind kind, const char *host, const char *repo,
                     const char *reference)
{
    al_call *c = al_xcalloc(1, sizeof(*c));
    c->reg = reg;
    c->kind = kind;
    c->host = al_xstrdup(host);
    c->repo = al_xstrdup(repo);
    c->reference = al_xstrdup(reference);
    c->label = al_xasprintf("%s/%s%s%s", host, repo, strchr(reference, ':') ? "@" : ":", reference);
    c->mem_cap = 64 * 1024;
    c->size = -1;
    c->retry_delay = -1;
    return c;
}

void al_call_free(al_call *c)
{
    if (c == NULL)
        return;
    assert(c->state == AL_CALL_INIT || c->state == AL_CALL_DONE || c->state == AL_CALL_FAILED);
    al_blob_writer_suspend(c->writer);
    al_upload_free(c->up);
    al_request_free(c->req);
    al_error_free(c->err);
    char *owned[] = {c->host, c->repo, c->reference, c->label, c->url, c->put_type, c->put_digest};
    for (size_t i = 0; i < AL_ARRAY_SIZE(owned); i++)
        free(owned[i]);
    al_free_secret(c->token_form);
    al_free_secret(c->token_auth);
    free(c);
}

void al_call_set_mem_cap(al_call *c, size_t cap)
{
    c->mem_cap = cap;
}

void al_call_set_priority(al_call *c, int64_t priority)
{
    c->priority = priority;
}

void al_call_set_store(al_call *c, al_store *store, int64_t size)
{
    c->store = store;
    c->size = size;
}

void al_call_set_push(al_call *c)
{
    c->push = true;
}

void al_call_set_absent_ok(al_call *c)
{
    c->absent_ok = true;
}

void al_call_set_put(al_call *c, const void *body, size_t len, const char *media_type,
                     const char *digest)
{
    assert(c->kind == AL_CALL_MANIFEST_PUT);
    c->put_body = body;
    c->put_len = len;
    c->put_type = al_xstrdup(media_type);
    c->put_digest = al_xstrdup(digest);
}

void al_call_set_upload(al_call *c, al_store *store, int64_t size, int64_t chunk,
                        const char *mount_from)
{
    assert(c->kind == AL_CALL_BLOB_UPLOAD && c->up == NULL);
    c->store = store;
    c->size = size;
    c->up = al_upload_new(store, size, chunk, mount_from);
}

bool al_call_ok(const al_call *c)
{
    return c->state == AL_CALL_DONE;
}

const al_error *al_call_error(const al_call *c)
{
    return c->err;
}

al_error *al_call_take_error(al_call *c)
{
    return al_steal_ptr(&c->err);
}

al_request *al_call_response(const al_call *c)
{
    return c->req;
}

bool al_call_has_body(const al_call *c)
{
    return c->kind != AL_CALL_MANIFEST_HEAD || c->use_get;
}

uint64_t al_call_bytes(const al_call *c)
{
    return c->up != NULL ? al_upload_bytes(c->up) : c->bytes;
}

bool al_call_found(const al_call *c)
{
    return c->found;
}

bool al_call_mounted(const al_call *c)
{
    return c->up != NULL && al_upload_mounted(c->up);
}

bool al_call_source_failed(const al_call *c)
{
    return c->up != NULL && c->state == AL_CALL_FAILED && al_upload_source_fault(c->up);
}

int al_call_restarts(const al_call *c)
{
    return c->up != NULL ? al_upload_restarts(c->up) : 0;
}

al_call_kind al_call_get_kind(const al_call *c)
{
    return c->kind;
}

const char *al_call_reference(const al_call *c)
{
    return c->reference;
}

int al_call_state_of(const al_call *c)
{
    return c->state;
}

/* --- lists --------------------------------------------------------------------- */

void al_call_list_add(call_list *l, al_call *c)
{
    assert(c->list == NULL);
    c->list = l;
    c->prev = NULL;
    c->next = l->head;
    if (l->head != NULL)
        l->head->prev = c;
    l->head = c;
}

void al_call_list_remove(al_call *c)
{
    if (c->list == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->list->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->list = NULL;
    c->prev = c->next = NULL;
}

void al_call_list_fire(call_list *l, al_fsm_event ev, const al_error *why)
{
    /* Oldest first (the list is LIFO), and detached before any event. */
    size_t n = 0;
    for (al_call *c = l->head; c != NULL; c = c->next)
        n++;
    if (n == 0)
        return;
    al_call **v = al_xcalloc(n, sizeof(*v));
    size_t i = n;
    while (l->head != NULL) {
        v[--i] = l->head;
        al_call_list_remove(l->head);
    }
    for (i = 0; i < n; i++) {
        if (ev == AL_EV_FAIL && why != NULL) {
            al_error_free(v[i]->err);
            v[i]->err = al_error_copy(why);
        }
        al_call_fire(v[i], ev);
    }
    free(v);
}

/* --- the states' handlers ---------------------------------------------------------- */

static al_engine *engine_of(const al_call *c)
{
    return al_registry_engine(c->reg);
}

static void fail_with(al_call *c, al_error *e)
{
    al_error_free(c->err);
    c->err = e;
    al_call_fire(c, AL_EV_FAIL);
}

/* PREPARE: what did an earlier attempt, or an earlier run, leave? */
static void on_prepare(al_call *c)
{
    if (c->kind == AL_CALL_BLOB_UPLOAD) {
        al_call_fire(c, al_upload_prepare(c));
        return;
    }
    if (c->kind == AL_CALL_BLOB_STORE && c->writer == NULL) {
        int r = al_store_blob_partial(&c->writer, c->store, c->reference, c->size, NULL);
        assert(r == 0); /* a validated digest and a writable store: the plan's promise */
        (void)r;
    }
    bool partial = c->writer != NULL && al_blob_writer_on_disk(c->writer) > 0;
    al_call_fire(c, partial ? AL_EV_PARTIAL : AL_EV_FRESH);
}

/* HASHING: on a worker thread, which touches only the writer. */
static void hash_work(void *arg)
{
    al_call *c = arg;
    al_blob_writer_rehash(c->writer, &c->complete, NULL);
}

static void hash_done(void *arg)
{
    al_call *c = arg;
    if (c->complete)
        al_debug("%s: the partial download is whole: committed without a request", c->label);
    else if (al_blob_writer_resumed_at(c->writer) > 0)
        al_debug("resuming %s at byte %llu", c->label,
                 (unsigned long long)al_blob_writer_resumed_at(c->writer));
    al_call_fire(c, c->complete ? AL_EV_COMPLETE : AL_EV_HASHED);
}

static void upload_hash_done(void *arg)
{
    al_call *c = arg;
    al_call_fire(c, al_upload_hash_done(c));
}

/* HASHING: a partial download re-hashed, or the store's bytes of an
 * upload hashed up to where the registry holds them, on the worker. */
static void on_hashing(al_call *c)
{
    if (c->kind != AL_CALL_BLOB_UPLOAD) {
        al_worker_submit(c->reg->worker, hash_work, hash_done, c);
        return;
    }
    if (al_upload_hash_begin(c) < 0) {
        al_call_fire(c, AL_EV_FAIL);
        return;
    }
    al_worker_submit(c->reg->worker, al_upload_hash_work, upload_hash_done, c);
}

static void on_admit(al_call *c)
{
    al_error *why = NULL;
    al_fsm_event ev = reg_admit(c->reg, c, &why);
    if (ev == AL_EV_FAIL)
        fail_with(c, why);
    else
        al_call_fire(c, ev);
}

static void on_response(al_request *q, void *user);

/* The 2xx body of a blob download: check that it continues where we
 * asked, then into the partial file. */
static int blob_body(void *ctx, al_request *q, const char *buf, size_t n, al_error **err)
{
    al_call *c = ctx;
    uint64_t at = al_blob_writer_resumed_at(c->writer);
    if (q->bytes == 0 && q->status == 200 && at > 0) {
        int r = al_blob_writer_restart(c->writer, err); /* the server ignored our Range */
        if (r < 0)
            return r;
    } else if (q->bytes == 0 && q->status == 206 && q->range_start != (int64_t)at) {
        c->bad_range = true;
        return al_error_set(err, AL_E_HTTP, 0, "asked for bytes %llu-, got a range from %lld",
                            (unsigned long long)at, (long long)q->range_start);
    }
    return al_blob_writer_write(c->writer, buf, n, err);
}

static void on_send(al_call *c)
{
    al_request_free(c->req);
    if (c->kind == AL_CALL_BLOB_UPLOAD)
        al_upload_before_send(c);
    al_request *q = c->req = reg_build_request(c->reg, c);
    c->bad_range = false;
    if (c->kind == AL_CALL_BLOB_STORE) {
        q->body_fn = blob_body;
        q->body_ctx = c;
        q->blob_download = true;
        snprintf(q->blob_digest, sizeof(q->blob_digest), "%s", c->reference);
        q->blob_size = c->size;
        q->resumed_at = al_blob_writer_resumed_at(c->writer);
        if (q->resumed_at > 0)
            q->range = al_xasprintf("bytes=%llu-", (unsigned long long)q->resumed_at);
    } else if (c->kind == AL_CALL_BLOB_UPLOAD) {
        al_upload_decorate(c, q);
    } else if (c->kind == AL_CALL_MANIFEST_PUT) {
        q->method = "PUT";
        q->send_buf = c->put_body;
        q->send_len = (int64_t)c->put_len;
        q->send_type = al_xstrdup(c->put_type);
    }
    al_engine_send(engine_of(c), q, on_response, c);
}

static void on_redirect(al_call *c)
{
    const al_request *q = c->req;
    _cleanup_free_ char *url = al_url_redact(q->url);
    al_error *e = NULL;
    if (c->redirects >= MAX_REDIRECTS) {
        reg_http_error(&e, q, "GET");
        al_error_wrap(&e, "too many redirects");
        fail_with(c, e);
        return;
    }
    char *next = al_url_resolve(q->url, q->location);
    if (next == NULL) {
        al_error_set(&e, AL_E_HTTP, 0, "GET %s: invalid redirect location", url);
        fail_with(c, e);
        return;
    }
    if (!al_url_same_origin(next, q->url))
        c->off_host = true; /* once off-host, never back with credentials */
    free(c->url);
    c->url = next;
    c->redirects++;
    al_call_fire(c, AL_EV_FOLLOW);
}

static void retry_wake(void *arg)
{
    al_call *c = arg;
    c->timer = NULL;
    al_call_list_remove(c);
    al_call_fire(c, AL_EV_WAKE);
}

static double backoff(int attempt)
{
    double d = BACKOFF_BASE;
    for (int i = 1; i < attempt && d < BACKOFF_CAP; i++)
        d *= 2;
    if (d > BACKOFF_CAP)
        d = BACKOFF_CAP;
    /* Full jitter in [d/2, d): spreads retries of parallel transfers. */
    return d / 2 + (d / 2) * ((double)rand() / ((double)RAND_MAX + 1.0));
}

/* RETRY_WAIT: sleep on the host's list, so that the host going down
 * fails this call at once instead of after its timer. */
static void on_retry_wait(al_call *c)
{
    c->retries++;
    al_engine_stats_mut(engine_of(c))->retries++;
    double delay = c->retry_delay >= 0 ? c->retry_delay : backoff(c->retries);
    c->retry_delay = -1;
    /* A redirect target (a presigned URL) is asked for anew. */
    free(c->url);
    c->url = NULL;
    c->off_host = false;
    c->redirects = 0;
    _cleanup_free_ char *url = al_url_redact(c->req->url);
    al_debug("retry %d of %s in %.1fs (%s)", c->retries, url, delay,
             c->req->err ? c->req->err->msg : "HTTP status");
    al_call_list_add(&reg_host(c->reg, c->host)->sleeping, c);
    c->timer = al_engine_timer(engine_of(c), al_mono() + delay, retry_wake, c);
}

/* --- what an answer means ------------------------------------------------------------ */

static bool transient_status(long s)
{
    return s == 408 || s == 429 || (s >= 500 && s <= 599 && s != 501);
}

/* The answer did not continue where we asked (a 206 for another range, a
 * 416): drop the partial and start over, once per retry. */
static al_fsm_event restart_event(al_call *c, const al_request *q)
{
    al_blob_writer_abort(al_steal_ptr(&c->writer));
    if (reg_may_retry(c->reg, c)) {
        c->retries++;
        return AL_EV_RESTART;
    }
    if (q->err != NULL)
        c->err = al_error_copy(q->err);
    else
        reg_http_error(&c->err, q, al_request_method(q));
    return AL_EV_FAIL;
}

/* 408, 429, 5xx: wait as asked (up to --max-wait), or back off. */
static al_fsm_event retry_status_event(al_call *c, const al_request *q)
{
    const al_engine_opts *o = al_engine_get_opts(engine_of(c));
    double asked = al_retry_after_seconds(q->retry_after);
    if (asked > o->max_wait) {
        al_error *e = NULL;
        reg_http_error(&e, q, al_request_method(q));
        al_error_set(&c->err, e->code, 0,
                     "%s: the registry asks to wait %.0f s before trying again, more than "
                     "--max-wait %.0f s",
                     e->msg, asked, o->max_wait);
        al_error_free(e);
        return AL_EV_FAIL;
    }
    if (!reg_may_retry(c->reg, c)) {
        reg_http_error(&c->err, q, al_request_method(q));
        return AL_EV_FAIL;
    }
    c->retry_delay = asked;
    if (asked >= 1) {
        _cleanup_free_ char *url = al_url_redact(q->url);
        al_engine_progress(engine_of(c), AL_XFER_RETRY, q, q->bytes); /* clears a display */
        c->req_pending = false;
        al_info("%s %s: HTTP %ld: the registry asks to wait %.0f s; trying again then",
                al_request_method(q), url, q->status, asked);
    }
    return AL_EV_RETRY;
}

/* A 2xx: a HEAD found it; a manifest PUT must be stored under its digest. */
static al_fsm_event ok_event(al_call *c, const al_request *q)
{
    c->found = true;
    if (c->kind != AL_CALL_MANIFEST_PUT || q->docker_digest == NULL ||
        strcmp(q->docker_digest, c->put_digest) == 0)
        return AL_EV_OK;
    _cleanup_free_ char *url = al_url_redact(q->url);
    _cleanup_free_ char *said = al_sanitize(q->docker_digest, 100);
    al_error_set(&c->err, AL_E_HTTP, 0,
                 "PUT %s: the registry stored the manifest as %s, not %s (it changed the bytes)",
                 url, said, c->put_digest);
    return AL_EV_FAIL;
}

static al_fsm_event status_event(al_call *c, const al_request *q)
{
    long s = q->status;
    al_fsm_event ev;
    if (c->kind == AL_CALL_BLOB_UPLOAD && al_upload_status(c, q, &ev))
        return ev;
    if (s == 404 && c->absent_ok &&
        (c->kind == AL_CALL_MANIFEST_HEAD || c->kind == AL_CALL_BLOB_HEAD))
        return AL_EV_OK; /* an answer: not there (found stays false) */
    if (c->kind == AL_CALL_MANIFEST_HEAD && !c->use_get && (s == 404 || s == 405 || s == 501)) {
        c->use_get = true; /* a proxy or registry that does not do HEAD */
        c->head_404 = s == 404;
        return AL_EV_USE_GET;
    }
    if (s >= 200 && s <= 299)
        return ok_event(c, q);
    bool blob = c->kind == AL_CALL_BLOB_MEM || c->kind == AL_CALL_BLOB_STORE;
    if (s >= 300 && s <= 399 && s != 304 && q->location != NULL && blob)
        return AL_EV_REDIRECT;
    if (s == 401 && !c->off_host && c->kind != AL_CALL_TOKEN)
        return reg_challenge(c->reg, c, q);
    if (s == 416 && c->kind == AL_CALL_BLOB_STORE && q->resumed_at > 0)
        return restart_event(c, q);
    if (transient_status(s))
        return retry_status_event(c, q);
    reg_http_error(&c->err, q, al_request_method(q));
    return AL_EV_FAIL;
}

static al_fsm_event classify(al_call *c, al_request *q)
{
    c->bytes += q->bytes;
    if (c->kind == AL_CALL_BLOB_UPLOAD)
        al_upload_answered(c, q);
    if (c->bad_range)
        return restart_event(c, q);
    if (c->writer != NULL)
        al_blob_writer_pause(c->writer); /* keep what arrived for the next attempt */
    if (q->err != NULL && q->err->code != AL_E_NET) {
        /* Our own sink refused (size, disk): not worth another try. */
        al_blob_writer_abort(al_steal_ptr(&c->writer));
        c->err = al_error_copy(q->err);
        return AL_EV_FAIL;
    }
    /* What HEAD support says is known before the waiting calls are woken
     * (by the auth probe's answer), so they go with GET at once. */
    if (q->status > 0 && c->kind == AL_CALL_MANIFEST_HEAD)
        reg_head_answer(c->reg, c, q->status);
    if (q->status > 0)
        reg_note_answer(c->reg, c, q); /* the host answered, even if the body was cut */
    if (q->err != NULL)
        return reg_transport_event(c->reg, c, q);
    return status_event(c, q);
}

static void on_response(al_request *q, void *user)
{
    al_call *c = user;
    c->req_pending = true;
    al_fsm_event ev = classify(c, q);
    if (ev != AL_EV_OK && ev != AL_EV_FAIL && c->req_pending) {
        al_engine_progress(engine_of(c), AL_XFER_RETRY, q, q->bytes);
        c->req_pending = false;
    }
    al_call_fire(c, ev);
}

/* The blob is durable in the store (or that failed). */
static void commit_done(void *user, al_error *err)
{
    al_call *c = user;
    if (err == NULL) {
        al_call_fire(c, AL_EV_COMMITTED);
        return;
    }
    if (c->req != NULL) {
        _cleanup_free_ char *url = al_url_redact(c->req->url);
        al_error_wrap(&err, "GET %s", url);
    }
    fail_with(c, err);
}

/* COMMIT: a blob is verified here, then fsynced, renamed into the store
 * and its directory fsynced in a group (fetch/stage.c). */
static void on_commit(al_call *c)
{
    if (c->kind != AL_CALL_BLOB_STORE) {
        al_call_fire(c, AL_EV_COMMITTED);
        return;
    }
    al_blob_writer *w = al_steal_ptr(&c->writer);
    bool resumed = al_blob_writer_resumed_at(w) > 0;
    al_error *e = NULL;
    /* An empty blob never saw a byte: create its file now. */
    if ((al_blob_writer_written(w) > 0 || c->complete || al_blob_writer_write(w, "", 0, &e) == 0) &&
        al_blob_writer_verify(w, &e) == 0) {
        al_stage_blob(al_registry_stage(c->reg, c->store), c->reference, w, commit_done, c);
        return;
    }
    al_blob_writer_abort(w); /* the partial goes: it is not the blob */
    /* A resumed download whose digest fails may carry a bad prefix from
     * before a crash: one fresh try. */
    if (resumed && e->code == AL_E_DIGEST && !c->fresh_try_done) {
        c->fresh_try_done = true;
        al_debug("%s: %s; downloading it again from the start", c->label, e->msg);
        al_error_free(e);
        al_call_fire(c, AL_EV_RESTART);
        return;
    }
    commit_done(c, e);
}

/* DONE, FAILED: leave every list, tell the progress display and the owner. */
static void on_end(al_call *c)
{
    if (c->timer != NULL) {
        al_engine_cancel(engine_of(c), c->timer);
        c->timer = NULL;
    }
    reg_call_ended(c->reg, c);
    if (c->up != NULL)
        al_upload_end(c);
    /* A download that gave up keeps its partial file for the next run. */
    al_blob_writer_suspend(al_steal_ptr(&c->writer));
    if (c->req != NULL && c->req_pending) {
        if (c->state == AL_CALL_FAILED && c->req->err == NULL && c->err != NULL)
            c->req->err = al_error_copy(c->err);
        al_engine_progress(engine_of(c), AL_XFER_DONE, c->req, c->req->bytes);
        c->req_pending = false;
    }
    c->done(c, c->user);
}

static void enter(al_call *c)
{
    switch ((al_call_state)c->state) {
    case AL_CALL_PREPARE: on_prepare(c); break;
    case AL_CALL_HASHING: on_hashing(c); break;
    case AL_CALL_ADMIT: on_admit(c); break;
    case AL_CALL_WAIT_TOKEN: reg_fetch_token(c->reg, c); break;
    case AL_CALL_SEND: on_send(c); break;
    case AL_CALL_REDIRECT: on_redirect(c); break;
    case AL_CALL_RETRY_WAIT: on_retry_wait(c); break;
    case AL_CALL_COMMIT: on_commit(c); break;
    case AL_CALL_DONE:
    case AL_CALL_FAILED: on_end(c); break;
    case AL_CALL_INIT:
    case AL_CALL_WAIT_HOST: /* on the host's list already: woken from there */
    case AL_CALL_N_STATES: break;
    }
}

void al_call_fire(al_call *c, al_fsm_event ev)
{
    al_fsm_fire(AL_FSM_CALL, &c->state, ev, c->label);
    enter(c);
}

void al_call_start(al_call *c, al_call_done_fn done, void *user)
{
    assert(c->state == AL_CALL_INIT);
    c->done = done;
    c->user = user;
    al_call_fire(c, AL_EV_START);
}
