/* What the tests of the transfer engine share (test_transfer.c and
 * transfer-push.c, one executable, so that one test proves every entry of
 * the transition table was taken): the scripted server, a fixture (a
 * store, an engine, credentials, a registry client) and helpers to start
 * calls and make blobs. */
#ifndef AL_TRANSFER_FIXTURE_H
#define AL_TRANSFER_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "credentials.h"
#include "engine.h"
#include "fsm.h"
#include "registry.h"
#include "scripted-server.h"
#include "store.h"
#include "test-helpers.h"
#include "util.h"

extern ts_server *srv;

typedef struct fx {
    char *dir;
    al_store *store;
    al_engine *engine;
    al_creds *creds;
    al_registry *reg;
    char *insecure[2];
    const char *certs_dirs[2];
} fx;

typedef struct fx_opts {
    const char *user, *pass;
    bool secure; /* the main listener is not --insecure-registry: https only */
    int retries;
    double max_wait;
} fx_opts;

/* An engine and a registry client over f's store. */
static inline void fx_connect(fx *f, const fx_opts *o)
{
    al_engine_opts eo;
    al_engine_opts_default(&eo);
    eo.jobs = 4;
    eo.max_retries = o->retries ? o->retries : 2;
    eo.connect_timeout = 5;
    eo.low_speed_time = 1;
    eo.max_wait = o->max_wait ? o->max_wait : 60;
    assert_int_equal(al_engine_new(&f->engine, &eo, NULL), 0);
    assert_int_equal(al_creds_new(&f->creds, o->user, o->pass, NULL, NULL), 0);
    size_t n = 0;
    if (!o->secure)
        f->insecure[n++] = (char *)ts_host(srv);
    f->insecure[n++] = (char *)ts_alt_host(srv);
    f->certs_dirs[0] = f->dir; /* no certs.d of this machine */
    al_registry_opts ro = {.creds = f->creds,
                           .insecure_hosts = f->insecure,
                           .n_insecure = n,
                           .certs_dirs = f->certs_dirs};
    assert_int_equal(al_registry_new(&f->reg, f->engine, &ro, NULL), 0);
}

static inline void fx_open(fx *f, const fx_opts *o)
{
    memset(f, 0, sizeof(*f));
    f->dir = th_mkdtemp();
    assert_int_equal(al_store_open(&f->store, f->dir, AL_STORE_WRITE, NULL), 0);
    fx_connect(f, o);
}

/* A new run over the same store: what the last one learnt is forgotten. */
static inline void fx_reconnect(fx *f, const fx_opts *o)
{
    al_registry_free(f->reg);
    al_engine_free(f->engine);
    al_creds_free(f->creds);
    fx_connect(f, o);
}

static inline void fx_close(fx *f)
{
    al_registry_free(f->reg);
    al_engine_free(f->engine);
    al_creds_free(f->creds);
    al_store_free(f->store);
    th_rm_rf(f->dir);
    free(f->dir);
}

static inline void count_done(al_call *c, void *user)
{
    (void)c;
    (*(int *)user)++;
}

extern int n_done;

static inline al_call *start(fx *f, al_call_kind kind, const char *host, const char *repo,
                             const char *ref)
{
    al_call *c = al_call_new(f->reg, kind, host, repo, ref);
    al_call_start(c, count_done, &n_done);
    return c;
}

static inline al_call *start_blob(fx *f, const char *host, const char *repo, const char *digest,
                                  int64_t size)
{
    al_call *c = al_call_new(f->reg, AL_CALL_BLOB_STORE, host, repo, digest);
    al_call_set_store(c, f->store, size);
    al_call_start(c, count_done, &n_done);
    return c;
}

/* One call, run to its end. */
static inline al_call *run1(fx *f, al_call_kind kind, const char *repo, const char *ref)
{
    al_call *c = start(f, kind, ts_host(srv), repo, ref);
    al_engine_run(f->engine);
    return c;
}

static inline void assert_failed_with(const al_call *c, const char *text)
{
    assert_false(al_call_ok(c));
    assert_non_null(al_call_error(c));
    if (strstr(al_call_error(c)->msg, text) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", al_call_error(c)->msg, text);
}

/* A blob with deterministic content, and the rules' strings for it. */
typedef struct blob {
    char body[200000];
    size_t len;
    char digest[AL_DIGEST_BUF];
    char path[256];
} blob;

static inline void make_blob(blob *b, const char *repo, size_t len)
{
    for (size_t i = 0; i < len; i++)
        b->body[i] = (char)('a' + (i * 7 + i / 13) % 26);
    b->len = len;
    al_digest_bytes(b->digest, b->body, len);
    snprintf(b->path, sizeof(b->path), "/v2/%s/blobs/%s", repo, b->digest);
}

/* While debugging: the requests the server saw. */
__attribute__((unused)) static inline void dump_log(void)
{
    ts_request q;
    for (size_t i = 0; ts_request_at(srv, i, &q); i++)
        fprintf(stderr, "  %zu: %s %s [%d] auth=%s range=%s\n", i, q.method, q.path, q.listener,
                q.auth, q.range);
}

static inline bool file_has(const char *dir, const char *sub, const char *hexof)
{
    _cleanup_free_ char *p = al_xasprintf("%s/%s%s", dir, sub, al_digest_hex(hexof));
    return access(p, F_OK) == 0;
}

static const char MANIFEST[] = "{\"schemaVersion\":2}";
#define OK_MANIFEST(path_)                                                                         \
    {                                                                                              \
        .method = "GET", .path = path_, .body = MANIFEST, .listener = -1                           \
    }

#endif
