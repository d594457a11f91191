/* The push calls against the scripted server playing a registry's upload
 * endpoint (TS_UPLOAD): HEADs that find nothing, a small blob in one PUT,
 * a large one in chunks, a connection cut between two chunks (the same run
 * asks where the upload is and goes on), a run that gave up and the next
 * one resuming from the saved session (the registry's bytes hashed off the
 * loop), a cut inside a chunk (the registry loses the upload: it starts
 * again, once; twice fails), a blob corrupt in the store (its last byte is
 * never sent), found corrupt while hashing, missing from the store, a
 * mount (and its token scope) and its fallback, manifest PUTs. */
#include "transfer-fixture.h"
#include "transfer-push.h"
#include "manifest.h"
#include "upload-session.h"

#define UPLOADS                                                                                    \
    {                                                                                              \
        .path = "/blobs/uploads/", .action = TS_UPLOAD, .listener = -1                             \
    }
#define CHUNK 65536

static blob S; /* fits in one chunk */
static blob L; /* four chunks */

static void put_in_store(fx *f, const blob *b)
{
    assert_int_equal(al_store_put_blob(f->store, b->digest, b->body, b->len, NULL), 0);
}

/* Replace the store's file by other bytes of the same size. */
static void corrupt_in_store(fx *f, const blob *b)
{
    _cleanup_free_ char *p = al_xasprintf("%s/blobs/sha256/%s", f->dir, al_digest_hex(b->digest));
    int fd = open(p, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    for (size_t i = 0; i < b->len; i++) {
        char x = (char)(b->body[i] ^ (i == b->len / 2 ? 1 : 0));
        assert_int_equal(write(fd, &x, 1), 1);
    }
    close(fd);
}

static al_call *start_upload(fx *f, const char *repo, const blob *b, const char *from)
{
    al_call *c = al_call_new(f->reg, AL_CALL_BLOB_UPLOAD, ts_host(srv), repo, b->digest);
    al_call_set_push(c);
    al_call_set_upload(c, f->store, (int64_t)b->len, CHUNK, from);
    al_call_start(c, count_done, &n_done);
    return c;
}

static al_call *upload1(fx *f, const char *repo, const blob *b, const char *from)
{
    al_call *c = start_upload(f, repo, b, from);
    al_engine_run(f->engine);
    return c;
}

static bool session_saved(const fx *f, const char *repo, const blob *b)
{
    _cleanup_free_ char *name = al_upload_session_name(ts_host(srv), repo, b->digest);
    _cleanup_free_ char *p = al_xasprintf("%s/tmp/%s", f->dir, name);
    return access(p, F_OK) == 0;
}

static void setup_blobs(void)
{
    if (S.len == 0) {
        make_blob(&S, "up", 5000);
        make_blob(&L, "up", 200000);
    }
}

/* --- HEADs -------------------------------------------------------------------------------- */

void test_push_heads(void **state)
{
    (void)state;
    setup_blobs();
    char path[300];
    snprintf(path, sizeof(path), "/v2/h/blobs/%s", S.digest);
    ts_rule rules[] = {{.method = "HEAD", .path = path}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    /* A tag that is not there: one HEAD, no GET after it. */
    al_call *c = al_call_new(f.reg, AL_CALL_MANIFEST_HEAD, ts_host(srv), "h", "1");
    al_call_set_absent_ok(c);
    al_call_start(c, count_done, &n_done);
    al_engine_run(f.engine);
    assert_true(al_call_ok(c));
    assert_false(al_call_found(c));
    assert_int_equal(ts_count(srv, NULL, "/manifests/", -1), 1);
    al_call_free(c);
    const blob *bs[] = {&S, &L};
    for (int i = 0; i < 2; i++) {
        c = al_call_new(f.reg, AL_CALL_BLOB_HEAD, ts_host(srv), "h", bs[i]->digest);
        al_call_set_absent_ok(c);
        al_call_start(c, count_done, &n_done);
        al_engine_run(f.engine);
        assert_true(al_call_ok(c));
        assert_int_equal(al_call_found(c), i == 0);
        al_call_free(c);
    }
    assert_int_equal(ts_count(srv, "HEAD", "/blobs/", 0), 2);
    fx_close(&f);
}

/* --- uploads -------------------------------------------------------------------------------- */

void test_push_small_blob(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {UPLOADS};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    put_in_store(&f, &S);
    al_call *c = upload1(&f, "up", &S, NULL);
    assert_true(al_call_ok(c));
    assert_true(ts_upload_has(srv, S.digest));
    assert_int_equal(al_call_bytes(c), S.len);
    assert_int_equal(ts_count(srv, "POST", NULL, -1), 1);
    assert_int_equal(ts_count(srv, "PUT", NULL, -1), 1);
    assert_int_equal(ts_count(srv, "PATCH", NULL, -1), 0);
    ts_request q;
    assert_true(ts_request_at(srv, 1, &q));
    assert_string_equal(q.content_type, "application/octet-stream");
    assert_int_equal(q.body_len, S.len);
    al_call_free(c);
    fx_close(&f);
}

void test_push_chunked(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {UPLOADS};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_true(al_call_ok(c));
    assert_true(ts_upload_has(srv, L.digest));
    assert_int_equal(al_call_bytes(c), L.len);
    assert_int_equal(ts_count(srv, "PATCH", NULL, -1), 4);
    ts_request q;
    for (size_t i = 0; i < 4; i++) {
        assert_true(ts_request_at(srv, 1 + i, &q));
        char want[64];
        size_t from = i * CHUNK, to = i == 3 ? L.len - 1 : from + CHUNK - 1;
        snprintf(want, sizeof(want), "%zu-%zu", from, to);
        assert_string_equal(q.content_range, want);
    }
    assert_true(ts_request_at(srv, 5, &q));
    assert_string_equal(q.method, "PUT");
    assert_int_equal(q.body_len, 0);
    assert_false(session_saved(&f, "up", &L)); /* done: nothing to resume */
    al_call_free(c);
    fx_close(&f);
}

/* The first chunk is answered on a connection that then closes, so the
 * second goes on a new one (curl resends by itself a request that meets a
 * closed kept-alive connection). */
#define FIRST_CHUNK_THEN_CLOSE                                                                     \
    {                                                                                              \
        .method = "PATCH", .path = "/blobs/uploads/", .times = 1, .action = TS_UPLOAD,             \
        .close_after = true                                                                        \
    }

/* The connection closes as the second chunk is sent, before the registry
 * took any of it: the retry asks where the upload is and goes on there. */
void test_push_cut_between_chunks(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {
        FIRST_CHUNK_THEN_CLOSE,
        {.method = "PATCH", .path = "/blobs/uploads/", .times = 1, .action = TS_CLOSE},
        UPLOADS};
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_true(al_call_ok(c));
    assert_true(ts_upload_has(srv, L.digest));
    assert_int_equal(ts_count(srv, "POST", NULL, -1), 1); /* not started again */
    assert_int_equal(ts_count(srv, "GET", "/blobs/uploads/", -1), 1);
    assert_int_equal(al_call_restarts(c), 0);
    al_call_free(c);
    fx_close(&f);
}

/* A run gives up after the first chunk; the next one finds the saved
 * session, asks where it is, hashes the store's first chunk off the loop
 * and sends the rest: no POST. */
void test_push_resume_next_run(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {FIRST_CHUNK_THEN_CLOSE,
                       {.method = "PATCH", .path = "/blobs/uploads/", .action = TS_CLOSE},
                       UPLOADS};
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){.retries = 1});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_false(al_call_ok(c));
    assert_true(session_saved(&f, "up", &L));
    al_call_free(c);
    int posts = ts_count(srv, "POST", NULL, -1);
    int gets = ts_count(srv, "GET", "/blobs/uploads/", -1);

    ts_rule now[] = {UPLOADS};
    ts_swap_rules(srv, now, 1);
    fx_reconnect(&f, &(fx_opts){0});
    c = upload1(&f, "up", &L, NULL);
    assert_true(al_call_ok(c));
    assert_true(ts_upload_has(srv, L.digest));
    assert_int_equal(ts_count(srv, "POST", NULL, -1), posts);
    assert_int_equal(ts_count(srv, "GET", "/blobs/uploads/", -1), gets + 1);
    assert_int_equal(al_call_bytes(c), L.len - CHUNK); /* the rest only */
    assert_false(session_saved(&f, "up", &L));
    al_call_free(c);
    fx_close(&f);
}

/* A cut inside the second chunk: the registry kept part of it, so the
 * session is invalid (as distribution 2.8 answers); the upload starts
 * again, once. */
void test_push_cut_inside_chunk(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {FIRST_CHUNK_THEN_CLOSE,
                       {.method = "PATCH",
                        .path = "/blobs/uploads/",
                        .times = 1,
                        .action = TS_UPLOAD,
                        .drop = true,
                        .cut = 1000},
                       UPLOADS};
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_true(al_call_ok(c));
    assert_true(ts_upload_has(srv, L.digest));
    assert_int_equal(al_call_restarts(c), 1);
    assert_int_equal(ts_count(srv, "POST", NULL, -1), 2);
    al_call_free(c);
    fx_close(&f);
}

void test_push_lost_twice(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {{.method = "PATCH",
                        .path = "/blobs/uploads/",
                        .after = 1,
                        .times = 1,
                        .action = TS_UPLOAD,
                        .drop = true,
                        .cut = 1000},
                       {.method = "PATCH",
                        .path = "/blobs/uploads/",
                        .after = 2,
                        .times = 1,
                        .action = TS_UPLOAD,
                        .drop = true,
                        .cut = 1000},
                       UPLOADS};
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_failed_with(c, "lost the upload");
    assert_failed_with(c, "BLOB_UPLOAD_INVALID");
    assert_false(al_call_source_failed(c)); /* the registry's doing, not the store's */
    assert_int_equal(ts_uploads_completed(srv), 0);
    al_call_free(c);
    fx_close(&f);
}

/* A blob whose store copy does not hash to its digest is never completed:
 * the request that would carry its last byte is cut. */
void test_push_corrupt(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {UPLOADS};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    const blob *bs[] = {&S, &L};
    for (int i = 0; i < 2; i++) {
        put_in_store(&f, bs[i]);
        corrupt_in_store(&f, bs[i]);
        al_call *c = upload1(&f, "up", bs[i], NULL);
        assert_failed_with(c, "is corrupt in the store");
        assert_int_equal(al_call_error(c)->code, AL_E_DIGEST);
        assert_true(al_call_source_failed(c));
        al_call_free(c);
    }
    assert_int_equal(ts_uploads_completed(srv), 0);
    assert_int_equal(ts_count(srv, "PUT", NULL, -1), 0);
    fx_close(&f);
}

/* Every chunk went, the end did not (the registry failed the PUT); the
 * store's copy is damaged before the next run, which hashes what the
 * registry holds (all of it) and finds it corrupt: no PUT. */
void test_push_corrupt_found_hashing(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {{.method = "PUT", .path = "/blobs/uploads/", .status = 503}, UPLOADS};
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){.retries = 1});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_failed_with(c, "503");
    al_call_free(c);
    assert_true(session_saved(&f, "up", &L));
    int puts = ts_count(srv, "PUT", NULL, -1);
    corrupt_in_store(&f, &L);
    fx_reconnect(&f, &(fx_opts){0});
    c = upload1(&f, "up", &L, NULL);
    assert_failed_with(c, "is corrupt in the store");
    assert_int_equal(ts_count(srv, "PUT", NULL, -1), puts);
    al_call_free(c);
    fx_close(&f);
}

void test_push_not_in_store(void **state)
{
    (void)state;
    setup_blobs();
    ts_rule rules[] = {UPLOADS};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = upload1(&f, "up", &S, NULL);
    assert_failed_with(c, "is not in the store");
    assert_true(al_call_source_failed(c));
    assert_int_equal(ts_count(srv, NULL, NULL, -1), 0);
    al_call_free(c);
    fx_close(&f);
}

/* "%3A" -> ":" and the like, in place. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '%' && r[1] && r[2]) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* A blob another repository of the registry holds is mounted from it: the
 * token asked for covers push here and pull there. A registry that
 * answers the mount with a session (202) gets the blob uploaded. */
void test_push_mount(void **state)
{
    (void)state;
    setup_blobs();
    static const char bearer[] =
        "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:%PORT%/token\",service=\"svc\"\r\n";
    ts_rule rules[] = {
        {.path = "/token", .body = "{\"token\":\"tokM\",\"expires_in\":300}"},
        {.path = "/v2/", .auth = "", .status = 401, .headers = bearer},
        {.path = "/v2/up/blobs/uploads/", .action = TS_UPLOAD, .mount = true},
        {.path = "/blobs/uploads/", .action = TS_UPLOAD},
    };
    ts_set_rules(srv, rules, 4);
    fx f;
    fx_open(&f, &(fx_opts){0});
    put_in_store(&f, &S);
    al_call *c = upload1(&f, "up", &S, "other");
    assert_true(al_call_ok(c));
    assert_true(al_call_mounted(c));
    assert_int_equal(al_call_bytes(c), 0);
    assert_int_equal(ts_count(srv, "PUT", NULL, -1), 0);
    ts_request q;
    bool scoped = false;
    for (size_t i = 0; ts_request_at(srv, i, &q); i++) {
        unescape(q.path);
        if (strncmp(q.path, "/token", 6) == 0)
            scoped = strstr(q.path, "scope=repository:up:pull,push") != NULL &&
                     strstr(q.path, "scope=repository:other:pull") != NULL;
    }
    assert_true(scoped);
    al_call_free(c);

    c = upload1(&f, "up2", &S, "other"); /* no mount there: a session, then the blob */
    assert_true(al_call_ok(c));
    assert_false(al_call_mounted(c));
    assert_true(ts_upload_has(srv, S.digest));
    al_call_free(c);
    fx_close(&f);
}

/* A session Location on another host: the upload goes there without the
 * registry's credentials (as a redirect would), retries included. */
void test_push_session_elsewhere(void **state)
{
    (void)state;
    setup_blobs();
    _cleanup_free_ char *basic = al_creds_basic_header("u", "p");
    ts_rule rules[] = {
        {.listener = 0,
         .auth = "",
         .status = 401,
         .headers = "WWW-Authenticate: Basic realm=\"r\"\r\n"},
        {.listener = 0, .method = "POST", .auth = basic, .action = TS_UPLOAD, .elsewhere = true},
        {.listener = 1, .method = "PATCH", .times = 1, .action = TS_CLOSE},
        {.listener = 1, .path = "/blobs/uploads/", .action = TS_UPLOAD, .elsewhere = true},
    };
    ts_set_rules(srv, rules, 4);
    fx f;
    fx_open(&f, &(fx_opts){.user = "u", .pass = "p"});
    put_in_store(&f, &L);
    al_call *c = upload1(&f, "up", &L, NULL);
    assert_true(al_call_ok(c));
    assert_true(ts_upload_has(srv, L.digest));
    assert_true(ts_count(srv, "PATCH", NULL, 1) >= 4); /* the chunks went to the other host */
    assert_int_equal(ts_count_auth(srv, NULL, NULL, 1), 0);
    assert_true(ts_count_auth(srv, "POST", NULL, 0) >= 1);
    al_call_free(c);
    fx_close(&f);
}

/* --- manifests -------------------------------------------------------------------------------- */

static al_call *put_manifest(fx *f, const char *ref, const char *body, const char *digest)
{
    al_call *c = al_call_new(f->reg, AL_CALL_MANIFEST_PUT, ts_host(srv), "m", ref);
    al_call_set_push(c);
    al_call_set_put(c, body, strlen(body), AL_MT_OCI_MANIFEST, digest);
    al_call_start(c, count_done, &n_done);
    al_engine_run(f->engine);
    return c;
}

void test_push_manifest(void **state)
{
    (void)state;
    static const char body[] = "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_OCI_MANIFEST "\"}";
    char d[AL_DIGEST_BUF];
    al_digest_bytes(d, body, strlen(body));
    static char right[128], wrong[128];
    snprintf(right, sizeof(right), "Docker-Content-Digest: %s\r\n", d);
    snprintf(wrong, sizeof(wrong), "Docker-Content-Digest: sha256:%064d\r\n", 0);
    ts_rule rules[] = {
        {.method = "PUT", .path = "/v2/m/manifests/1", .status = 201, .headers = right},
        {.method = "PUT", .path = "/v2/m/manifests/2", .status = 201, .headers = wrong},
        {.method = "PUT",
         .path = "/v2/m/manifests/3",
         .status = 400,
         .body = "{\"errors\":[{\"code\":\"MANIFEST_INVALID\",\"message\":\"manifest invalid\"}]}"},
    };
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = put_manifest(&f, "1", body, d);
    assert_true(al_call_ok(c));
    char got[256];
    assert_int_equal(ts_last_body(srv, got, sizeof(got)), strlen(body));
    assert_string_equal(got, body);
    ts_request q;
    assert_true(ts_request_at(srv, 0, &q));
    assert_string_equal(q.content_type, AL_MT_OCI_MANIFEST);
    al_call_free(c);
    c = put_manifest(&f, "2", body, d);
    assert_failed_with(c, "stored the manifest as sha256:000");
    al_call_free(c);
    c = put_manifest(&f, "3", body, d);
    assert_failed_with(c, "HTTP 400 Bad Request (MANIFEST_INVALID: manifest invalid)");
    al_call_free(c);
    fx_close(&f);
}
