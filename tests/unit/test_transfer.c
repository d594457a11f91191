/* fetch/call, fetch/registry and fetch/engine against the scripted HTTP
 * server (tests/unit/scripted-server.c): auth challenge sequences
 * (anonymous, Basic, Bearer, wrong credentials once per registry, a token
 * expiring mid-run, insufficient scope), redirects (same host; another
 * host, which gets no credentials), retries (429 with Retry-After, 5xx, a
 * reset, a stall), resume (Range after a cut, a 200 ignoring Range, a 206
 * for the wrong range, 416, a partial download left on disk), hosts that
 * do not answer; and the push calls (transfer-push.c). The last test
 * checks that every entry of the transition table (fetch/fsm.c) was taken
 * at least once. */
#include "transfer-fixture.h"
#include "transfer-push.h"

ts_server *srv;
int n_done;
static char *cfg_dir; /* an empty DOCKER_CONFIG: no ambient credentials */
static blob B;        /* big enough to be cut and resumed */

/* --- anonymous, and the first call probing alone ------------------------------------ */

static void test_anonymous(void **state)
{
    (void)state;
    ts_rule rules[] = {OK_MANIFEST("/v2/anon/manifests/")};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    /* Three calls at once: one goes first (https, then plain http, since
     * the host may use it), the others wait for its answer. */
    al_call *c[3];
    for (int i = 0; i < 3; i++) {
        char ref[8];
        snprintf(ref, sizeof(ref), "t%d", i);
        c[i] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "anon", ref);
    }
    al_engine_run(f.engine);
    for (int i = 0; i < 3; i++) {
        assert_true(al_call_ok(c[i]));
        assert_string_equal(al_call_response(c[i])->body, MANIFEST);
        al_call_free(c[i]);
    }
    assert_int_equal(ts_count(srv, "GET", "/v2/anon/manifests/", 0), 3);
    assert_int_equal(ts_count_auth(srv, NULL, NULL, -1), 0);
    fx_close(&f);
}

/* A 404 is final: one request, an error that names it. */
static void test_not_found(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/nf/",
         .status = 404,
         .body = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"x\"}]}"}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "nf", "1");
    assert_failed_with(c, "HTTP 404 Not Found (MANIFEST_UNKNOWN: x)");
    assert_int_equal(ts_count(srv, NULL, "/v2/nf/", 0), 1);
    al_call_free(c);
    fx_close(&f);
}

/* A 404 with a body past 16 KiB: the body is cut there, the answer stays a 404. */
static void test_error_body_cut(void **state)
{
    (void)state;
    static char big[100000];
    memset(big, 'x', sizeof(big) - 1);
    ts_rule rules[] = {{.path = "/v2/cut/", .status = 404, .body = big}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "cut", "1");
    assert_failed_with(c, "HTTP 404");
    assert_true(al_call_response(c)->body_cut);
    assert_int_equal(al_call_response(c)->body_len, 16 * 1024);
    al_call_free(c);
    fx_close(&f);
}

/* --- Basic ------------------------------------------------------------------------------ */

static char *basic_ok, *basic_bad;
#define BASIC_CHALLENGE "WWW-Authenticate: Basic realm=\"test\"\r\n"

static void test_basic(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/priv/", .auth = basic_ok, .body = MANIFEST},
        {.path = "/v2/priv/", .status = 401, .headers = BASIC_CHALLENGE},
    };
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){.user = "u", .pass = "p"});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "priv", "1");
    assert_true(al_call_ok(c));
    al_call_free(c);
    /* Known now: the next call sends the credentials at once. */
    c = run1(&f, AL_CALL_MANIFEST_GET, "priv", "2");
    assert_true(al_call_ok(c));
    assert_int_equal(ts_count(srv, NULL, "/v2/priv/manifests/2", 0), 1);
    al_call_free(c);
    fx_close(&f);
}

/* Wrong credentials: refused once for the whole registry; the calls that
 * waited fail with the same message, a later call fails without a request. */
static void test_basic_wrong(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/priv/", .auth = basic_ok, .body = MANIFEST},
        {.path = "/v2/priv/", .status = 401, .headers = BASIC_CHALLENGE},
    };
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){.user = "u", .pass = "wrong"});
    al_call *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "priv", i ? "b" : "a");
    al_engine_run(f.engine);
    for (int i = 0; i < 3; i++) {
        assert_failed_with(c[i], "authentication failed for user \"u\"");
        al_call_free(c[i]);
    }
    assert_int_equal(ts_count_auth(srv, NULL, NULL, -1), 1);
    al_call *late = run1(&f, AL_CALL_MANIFEST_GET, "priv", "c");
    assert_failed_with(late, "authentication failed");
    assert_int_equal(ts_count(srv, NULL, "/v2/priv/manifests/c", 0), 0);
    al_call_free(late);
    fx_close(&f);
}

/* A registry that wants credentials we do not have. */
static void test_basic_none(void **state)
{
    (void)state;
    ts_rule rules[] = {{.path = "/v2/priv/", .status = 401, .headers = BASIC_CHALLENGE}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "priv", "1");
    assert_failed_with(c, "requires authentication");
    al_call_free(c);
    fx_close(&f);
}

/* --- Bearer --------------------------------------------------------------------------- */

#define BEARER_CHALLENGE                                                                           \
    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:%PORT%/token\",service=\"svc\"\r\n"
static const char TOKEN_A[] = "{\"token\":\"tokA\",\"expires_in\":300}";
static const char TOKEN_B[] = "{\"access_token\":\"tokB\",\"expires_in\":300}";

/* Anonymous tokens, one per repository scope, fetched once per scope
 * however many calls wait for it. */
static void test_bearer_anonymous(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/token", .body = TOKEN_A},
        {.path = "/v2/", .auth = "Bearer tokA", .body = MANIFEST},
        {.path = "/v2/", .status = 401, .headers = BEARER_CHALLENGE},
    };
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c[4];
    c[0] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "pub/a", "1");
    c[1] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "pub/a", "2");
    c[2] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "pub/a", "3");
    c[3] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "pub/b", "1");
    al_engine_run(f.engine);
    for (int i = 0; i < 4; i++) {
        assert_true(al_call_ok(c[i]));
        al_call_free(c[i]);
    }
    assert_int_equal(ts_count(srv, "GET", "/token?service=svc&scope=repository%3apub%2fa", 0), 1);
    assert_int_equal(ts_count(srv, "GET", "/token?service=svc&scope=repository%3apub%2fb", 0), 1);
    assert_int_equal(ts_count_auth(srv, NULL, "/token", -1), 0); /* anonymous */
    fx_close(&f);
}

/* Credentials: the first token request tries them alone; once accepted,
 * the other scopes get theirs. */
static void test_bearer_credentials(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/token", .auth = basic_ok, .body = TOKEN_A},
        {.path = "/token", .status = 401, .body = "{\"details\":\"bad\"}"},
        {.path = "/v2/", .auth = "Bearer tokA", .body = MANIFEST},
        {.path = "/v2/", .status = 401, .headers = BEARER_CHALLENGE},
    };
    ts_set_rules(srv, rules, 4);
    fx f;
    fx_open(&f, &(fx_opts){.user = "u", .pass = "p"});
    al_call *c[3];
    for (int i = 0; i < 3; i++) {
        char repo[16];
        snprintf(repo, sizeof(repo), "priv/r%d", i);
        c[i] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), repo, "1");
    }
    al_engine_run(f.engine);
    for (int i = 0; i < 3; i++) {
        assert_true(al_call_ok(c[i]));
        al_call_free(c[i]);
    }
    assert_int_equal(ts_count_auth(srv, "GET", "/token", 0), 3);
    fx_close(&f);
}

/* Wrong credentials: one token request, one message for every call. */
static void test_bearer_wrong_credentials(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/token", .auth = basic_ok, .body = TOKEN_A},
        {.path = "/token", .status = 401, .body = "{\"details\":\"bad\"}"},
        {.path = "/v2/", .status = 401, .headers = BEARER_CHALLENGE},
    };
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){.user = "u", .pass = "wrong"});
    al_call *c[4];
    for (int i = 0; i < 4; i++) {
        char repo[16];
        snprintf(repo, sizeof(repo), "priv/r%d", i % 3);
        c[i] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), repo, i == 3 ? "2" : "1");
    }
    al_engine_run(f.engine);
    for (int i = 0; i < 4; i++) {
        assert_failed_with(c[i], "credentials from --username rejected");
        al_call_free(c[i]);
    }
    assert_int_equal(ts_count(srv, "GET", "/token", 0), 1);
    fx_close(&f);
}

/* A token that stops working mid-run is renewed once, and the run goes on. */
static void test_token_expires_midrun(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/token", .times = 1, .body = TOKEN_A},
        {.path = "/token", .body = TOKEN_B},
        {.path = "/v2/", .auth = "Bearer tokA", .times = 1, .body = MANIFEST},
        {.path = "/v2/", .auth = "Bearer tokB", .body = MANIFEST},
        {.path = "/v2/", .status = 401, .headers = BEARER_CHALLENGE},
    };
    ts_set_rules(srv, rules, 5);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "pub/x", "1");
    assert_true(al_call_ok(c));
    al_call_free(c);
    c = run1(&f, AL_CALL_MANIFEST_GET, "pub/x", "2"); /* tokA refused now */
    assert_true(al_call_ok(c));
    al_call_free(c);
    assert_int_equal(ts_count(srv, "GET", "/token", 0), 2);
    assert_int_equal(ts_count(srv, "GET", "/v2/pub/x/manifests/2", 0), 2);
    fx_close(&f);
}

/* A token without the scope the registry wants: renewed once, then the
 * call fails, saying whose credentials lack access. */
static void test_insufficient_scope(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/token", .body = TOKEN_A},
        {.path = "/v2/",
         .status = 401,
         .headers = BEARER_CHALLENGE,
         .body = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"insufficient_scope\"}]}"},
    };
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "private/app", "1");
    assert_failed_with(c, "private/app needs credentials (anonymous pull refused)");
    assert_int_equal(ts_count(srv, "GET", "/token", 0), 2);
    al_call_free(c);
    fx_close(&f);
}

/* The token service refuses an anonymous scope: its calls fail, later ones
 * of the scope too, without asking again. */
static void test_scope_refused(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/token", .status = 403, .body = "{\"errors\":[{\"code\":\"DENIED\"}]}"},
        {.path = "/v2/", .status = 401, .headers = BEARER_CHALLENGE},
    };
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "secret/x", "1");
    assert_failed_with(c, "HTTP 403");
    al_call_free(c);
    c = run1(&f, AL_CALL_MANIFEST_GET, "secret/x", "2");
    assert_failed_with(c, "HTTP 403");
    al_call_free(c);
    assert_int_equal(ts_count(srv, "GET", "/token", 0), 1);
    fx_close(&f);
}

/* A registry that answers some repositories anonymously and challenges
 * for others: the scheme is learnt from the later challenge. */
static void anon_then(const char *challenge, const char *user, const char *want_err)
{
    ts_rule rules[] = {
        {.path = "/token", .body = TOKEN_A},
        {.path = "/v2/open/", .body = MANIFEST},
        {.path = "/v2/closed/", .auth = "Bearer tokA", .body = MANIFEST},
        {.path = "/v2/closed/", .auth = basic_ok, .body = MANIFEST},
        {.path = "/v2/closed/", .status = 401, .headers = challenge},
    };
    ts_set_rules(srv, rules, 5);
    fx f;
    fx_open(&f, &(fx_opts){.user = user, .pass = user ? "p" : NULL});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "open", "1");
    assert_true(al_call_ok(c));
    al_call_free(c);
    c = run1(&f, AL_CALL_MANIFEST_GET, "closed", "1");
    if (want_err == NULL)
        assert_true(al_call_ok(c));
    else
        assert_failed_with(c, want_err);
    al_call_free(c);
    fx_close(&f);
}

static void test_anonymous_then_challenged(void **state)
{
    (void)state;
    anon_then(BASIC_CHALLENGE, "u", NULL);
    anon_then(BEARER_CHALLENGE, NULL, NULL);
    anon_then(BEARER_CHALLENGE, "u", NULL);
    anon_then(BASIC_CHALLENGE, NULL, "requires authentication");
}

/* --- redirects --------------------------------------------------------------------------- */

/* Same origin: followed with the credentials; another host: followed
 * without them. */
static void test_redirects(void **state)
{
    (void)state;
    make_blob(&B, "priv", 5000);
    static char to_self[512], to_alt[512];
    snprintf(to_self, sizeof(to_self), "Location: /store%s\r\n", B.path);
    snprintf(to_alt, sizeof(to_alt), "Location: http://127.0.0.2:%%ALT%%/cdn%s?sig=1\r\n", B.path);
    ts_rule rules[] = {
        {.path = "/cdn/", .listener = 1, .body = B.body, .body_len = B.len},
        {.path = "/store/", .auth = basic_ok, .body = B.body, .body_len = B.len},
        {.path = B.path, .auth = basic_ok, .times = 1, .status = 307, .headers = to_self},
        {.path = B.path, .auth = basic_ok, .status = 307, .headers = to_alt},
        {.path = "/v2/", .status = 401, .headers = BASIC_CHALLENGE},
    };
    ts_set_rules(srv, rules, 5);
    fx f;
    fx_open(&f, &(fx_opts){.user = "u", .pass = "p"});
    al_call *c = start_blob(&f, ts_host(srv), "priv", B.digest, (int64_t)B.len);
    al_engine_run(f.engine);
    assert_true(al_call_ok(c));
    assert_int_equal(ts_count_auth(srv, "GET", "/store/", 0), 1);
    al_call_free(c);
    /* Delete it and fetch it again: this time the registry sends it away. */
    assert_true(file_has(f.dir, "blobs/sha256/", B.digest));
    _cleanup_free_ char *p = al_xasprintf("%s/blobs/sha256/%s", f.dir, al_digest_hex(B.digest));
    unlink(p);
    c = start_blob(&f, ts_host(srv), "priv", B.digest, (int64_t)B.len);
    al_engine_run(f.engine);
    assert_true(al_call_ok(c));
    assert_int_equal(ts_count(srv, "GET", "/cdn/", 1), 1);
    assert_int_equal(ts_count_auth(srv, NULL, NULL, 1), 0); /* no credentials there */
    al_call_free(c);
    fx_close(&f);
}

static void test_redirect_loop(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/loop/", .status = 302, .headers = "Location: /v2/loop/blobs/x\r\n"}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_BLOB_MEM, "loop",
                      "sha256:0000000000000000000000000000000000000000000000000000000000000000");
    assert_failed_with(c, "too many redirects");
    al_call_free(c);
    fx_close(&f);
}

/* --- retries --------------------------------------------------------------------------- */

static void test_retry_after(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/busy/manifests/1",
         .times = 1,
         .status = 429,
         .headers = "Retry-After: 1\r\n"},
        {.path = "/v2/busy/manifests/1", .body = MANIFEST},
        {.path = "/v2/busy/manifests/2", .status = 429, .headers = "Retry-After: 999999\r\n"},
    };
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){.max_wait = 5});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "busy", "1");
    assert_true(al_call_ok(c));
    assert_int_equal(ts_count(srv, "GET", "/v2/busy/manifests/1", 0), 2);
    al_call_free(c);
    /* More than --max-wait: no wait, no retry, and the time asked is said. */
    c = run1(&f, AL_CALL_MANIFEST_GET, "busy", "2");
    assert_failed_with(c, "asks to wait 999999 s before trying again, more than --max-wait 5 s");
    assert_int_equal(ts_count(srv, "GET", "/v2/busy/manifests/2", 0), 1);
    al_call_free(c);
    fx_close(&f);
}

static void test_retry_5xx(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/flaky/manifests/1", .times = 2, .status = 503},
        {.path = "/v2/flaky/manifests/1", .body = MANIFEST},
        {.path = "/v2/flaky/manifests/2", .status = 500},
    };
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "flaky", "1");
    assert_true(al_call_ok(c));
    al_call_free(c);
    c = run1(&f, AL_CALL_MANIFEST_GET, "flaky", "2");
    assert_failed_with(c, "HTTP 500");
    assert_int_equal(ts_count(srv, "GET", "/v2/flaky/manifests/2", 0), 3); /* 1 + --retries 2 */
    al_call_free(c);
    fx_close(&f);
}

/* --- resume ------------------------------------------------------------------------------ */

/* A download of B (made by the caller) cut after `cut` bytes (by rule 0),
 * then rule 1 for the rest. */
static al_call *cut_then(fx *f, ts_action how, size_t cut, ts_rule then, ts_rule *after)
{
    ts_rule rules[4] = {
        {.path = B.path,
         .times = 1,
         .action = how,
         .body = B.body,
         .body_len = B.len,
         .cut = cut,
         .stall_ms = 4000},
        then,
    };
    size_t n = 2;
    if (after != NULL)
        rules[n++] = *after;
    rules[n++] = (ts_rule){.path = B.path, .ranges = true, .body = B.body, .body_len = B.len};
    for (size_t i = 1; i < n; i++)
        if (rules[i].path == NULL)
            rules[i].path = B.path;
    ts_set_rules(srv, rules, n);
    al_call *c = start_blob(f, ts_host(srv), "big", B.digest, (int64_t)B.len);
    al_engine_run(f->engine);
    return c;
}

static void request_range(int i, char *out, size_t cap)
{
    ts_request q;
    out[0] = '\0';
    if (ts_request_at(srv, (size_t)i, &q))
        snprintf(out, cap, "%s", q.range);
}

static void assert_stored(fx *f, al_call *c)
{
    if (!al_call_ok(c)) {
        dump_log();
        fail_msg("the blob was not stored: %s", al_call_error(c) ? al_call_error(c)->msg : "?");
    }
    assert_true(file_has(f->dir, "blobs/sha256/", B.digest));
    assert_false(file_has(f->dir, "tmp/partial-", B.digest));
}

/* Reset mid-body, then a stall: each retry asks for the rest. */
static void test_resume_after_cut(void **state)
{
    (void)state;
    make_blob(&B, "big", sizeof(B.body));
    fx f;
    fx_open(&f, &(fx_opts){0});
    char range[128];
    al_call *c = cut_then(&f, TS_RESET, 70000,
                          (ts_rule){.ranges = true, .body = B.body, .body_len = B.len}, NULL);
    assert_stored(&f, c);
    request_range(1, range, sizeof(range));
    assert_string_equal(range, "bytes=70000-");
    al_call_free(c);
    fx_close(&f);

    fx_open(&f, &(fx_opts){0});
    c = cut_then(&f, TS_STALL, 50000, (ts_rule){.ranges = true, .body = B.body, .body_len = B.len},
                 NULL);
    assert_stored(&f, c);
    request_range(1, range, sizeof(range));
    assert_string_equal(range, "bytes=50000-");
    al_call_free(c);
    fx_close(&f);
}

/* A server that ignores Range and sends everything: written from 0. */
static void test_resume_200(void **state)
{
    (void)state;
    make_blob(&B, "big", sizeof(B.body));
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = cut_then(&f, TS_RESET, 70000, (ts_rule){.body = B.body, .body_len = B.len}, NULL);
    assert_stored(&f, c);
    assert_int_equal(ts_count(srv, "GET", B.path, 0), 2);
    al_call_free(c);
    fx_close(&f);
}

/* A 206 for another range than asked, or a 416: the partial is dropped
 * and the blob fetched from the start. */
static void test_resume_wrong_range(void **state)
{
    (void)state;
    static char wrong[128];
    snprintf(wrong, sizeof(wrong), "Content-Range: bytes 10-%zu/%zu\r\n", sizeof(B.body) - 1,
             sizeof(B.body));
    make_blob(&B, "big", sizeof(B.body));
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c =
        cut_then(&f, TS_RESET, 70000,
                 (ts_rule){.times = 1, .status = 206, .headers = wrong, .body = "xxxxxxxx"},
                 &(ts_rule){.times = 1, .body = B.body, .body_len = B.len});
    assert_stored(&f, c);
    char range[128];
    request_range(2, range, sizeof(range));
    assert_string_equal(range, ""); /* the third request starts over */
    al_call_free(c);
    fx_close(&f);

    fx_open(&f, &(fx_opts){0});
    c = cut_then(&f, TS_RESET, 70000, (ts_rule){.times = 1, .status = 416},
                 &(ts_rule){.times = 1, .body = B.body, .body_len = B.len});
    assert_stored(&f, c);
    request_range(2, range, sizeof(range));
    assert_string_equal(range, "");
    al_call_free(c);
    fx_close(&f);
}

static void write_partial(fx *f, const char *data, size_t len)
{
    _cleanup_free_ char *p = al_xasprintf("%s/tmp/partial-%s", f->dir, al_digest_hex(B.digest));
    th_write_file(p, data, len);
}

/* A partial download an earlier run left: re-hashed, then continued; a
 * whole one committed without a request; one with a bad prefix fails its
 * digest once and is fetched again from the start. */
static void test_partial_on_disk(void **state)
{
    (void)state;
    make_blob(&B, "big", sizeof(B.body));
    ts_rule rules[] = {{.path = B.path, .ranges = true, .body = B.body, .body_len = B.len}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    write_partial(&f, B.body, 123456);
    al_call *c = start_blob(&f, ts_host(srv), "big", B.digest, (int64_t)B.len);
    al_engine_run(f.engine);
    assert_stored(&f, c);
    char range[128];
    request_range(0, range, sizeof(range));
    assert_string_equal(range, "bytes=123456-");
    al_call_free(c);
    fx_close(&f);

    ts_set_rules(srv, rules, 1);
    fx_open(&f, &(fx_opts){0});
    write_partial(&f, B.body, B.len);
    c = start_blob(&f, ts_host(srv), "big", B.digest, (int64_t)B.len);
    al_engine_run(f.engine);
    assert_stored(&f, c);
    assert_int_equal(ts_count(srv, NULL, NULL, -1), 0);
    assert_int_equal(al_call_bytes(c), 0);
    al_call_free(c);
    fx_close(&f);

    ts_set_rules(srv, rules, 1);
    fx_open(&f, &(fx_opts){0});
    static char junk[1000];
    memset(junk, 'z', sizeof(junk));
    write_partial(&f, junk, sizeof(junk));
    c = start_blob(&f, ts_host(srv), "big", B.digest, (int64_t)B.len);
    al_engine_run(f.engine);
    assert_stored(&f, c);
    assert_int_equal(ts_count(srv, "GET", B.path, 0), 2);
    al_call_free(c);
    fx_close(&f);
}

/* A big partial download is re-hashed on the worker thread: the call
 * waits in HASHING while the loop runs other calls to their end. */
static void test_hashing_off_loop(void **state)
{
    (void)state;
    make_blob(&B, "big", sizeof(B.body));
    ts_rule rules[] = {OK_MANIFEST("/v2/small/"), {.path = B.path, .status = 404}};
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){0});
    size_t big = 64u << 20;
    char *junk = al_xcalloc(1, big);
    _cleanup_free_ char *p = al_xasprintf("%s/tmp/partial-%s", f.dir, al_digest_hex(B.digest));
    th_write_file(p, junk, big);
    free(junk);
    /* The blob "is" bigger than its partial: the prefix is hashed first. */
    al_call *watched = start_blob(&f, ts_host(srv), "big", B.digest, (int64_t)big * 2);
    assert_int_equal(al_call_state_of(watched), AL_CALL_HASHING); /* not hashed inline */
    al_call *m = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "small", "1");
    al_engine_run(f.engine);
    assert_true(al_call_ok(m));
    assert_false(al_call_ok(watched)); /* 404 for the rest */
    al_call_free(m);
    al_call_free(watched);
    fx_close(&f);
}

/* Content that is not what its digest says: refused, nothing stored. */
static void test_digest_mismatch(void **state)
{
    (void)state;
    make_blob(&B, "bad", 3000);
    static char other[3000];
    memset(other, 'q', sizeof(other));
    ts_rule rules[] = {{.path = B.path, .body = other, .body_len = sizeof(other)}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = start_blob(&f, ts_host(srv), "bad", B.digest, (int64_t)B.len);
    al_engine_run(f.engine);
    assert_failed_with(c, "digest mismatch");
    assert_false(file_has(f.dir, "blobs/sha256/", B.digest));
    _cleanup_free_ char *tmp = al_xasprintf("%s/tmp", f.dir);
    assert_int_equal(th_count_entries(tmp), 0);
    al_call_free(c);
    fx_close(&f);
}

/* --- hosts that do not answer -------------------------------------------------------- */

/* Connections refused: one call retries, the others wait, then all fail
 * at once with what happened; a later call fails without trying. */
static void test_host_unreachable(void **state)
{
    (void)state;
    ts_set_rules(srv, NULL, 0);
    fx f;
    fx_open(&f, &(fx_opts){0});
    char dead[32];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", ts_dead_port());
    al_call *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = start(&f, AL_CALL_MANIFEST_GET, dead, "x", i ? "b" : "a");
    al_engine_run(f.engine);
    for (int i = 0; i < 3; i++) {
        assert_failed_with(c[i], "is unreachable after 3 attempts");
        al_call_free(c[i]);
    }
    al_call *late = start(&f, AL_CALL_MANIFEST_GET, dead, "x", "c");
    al_engine_run(f.engine);
    assert_failed_with(late, "is unreachable");
    al_call_free(late);
    fx_close(&f);
}

/* A server that accepts and hangs up: counted in connections, not time. */
static void test_host_closes(void **state)
{
    (void)state;
    ts_rule rules[] = {{.path = "/v2/", .action = TS_CLOSE}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){.secure = false});
    int before = ts_accepts(srv);
    al_call *c[5];
    for (int i = 0; i < 5; i++) {
        char ref[8];
        snprintf(ref, sizeof(ref), "%d", i);
        c[i] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "gone", ref);
    }
    al_engine_run(f.engine);
    for (int i = 0; i < 5; i++) {
        assert_failed_with(c[i], "is unreachable after 3 attempts");
        al_call_free(c[i]);
    }
    /* One TLS attempt, then 3 plain ones by the call that probes. */
    assert_int_equal(ts_accepts(srv) - before, 4);
    fx_close(&f);
}

/* It hangs up once, then answers: the waiting calls go on. */
static void test_host_recovers(void **state)
{
    (void)state;
    ts_rule rules[] = {{.path = "/v2/", .times = 1, .action = TS_CLOSE}, OK_MANIFEST("/v2/")};
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "back", i ? "b" : "a");
    al_engine_run(f.engine);
    for (int i = 0; i < 3; i++) {
        assert_true(al_call_ok(c[i]));
        al_call_free(c[i]);
    }
    fx_close(&f);
}

/* Two requests in flight when the host starts hanging up: the second to
 * notice waits for the first one's retries instead of retrying too. */
static void test_host_fails_while_busy(void **state)
{
    (void)state;
    /* Connection: close, so that neither later call reuses (and curl
     * silently retries) that connection. */
    ts_rule rules[] = {
        {.path = "/v2/busy/manifests/0", .body = MANIFEST, .headers = "Connection: close\r\n"},
        {.path = "/v2/busy/", .times = 2, .action = TS_CLOSE},
        OK_MANIFEST("/v2/busy/")};
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "busy", "0"); /* the scheme is known now */
    assert_true(al_call_ok(c));
    al_call_free(c);
    al_call *a = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "busy", "1");
    al_call *b = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "busy", "2");
    al_engine_run(f.engine);
    assert_true(al_call_ok(a));
    assert_true(al_call_ok(b));
    al_call_free(a);
    al_call_free(b);
    fx_close(&f);
}

/* A call sleeping before a retry fails at once when its host goes down. */
static void test_sleeper_fails_with_host(void **state)
{
    (void)state;
    ts_rule rules[] = {
        {.path = "/v2/s/manifests/0", .body = MANIFEST, .headers = "Connection: close\r\n"},
        {.path = "/v2/s/manifests/1",
         .status = 503,
         .headers = "Retry-After: 30\r\nConnection: close\r\n"},
        {.path = "/v2/s/manifests/2", .action = TS_CLOSE}};
    ts_set_rules(srv, rules, 3);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "s", "0");
    al_call_free(c);
    al_call *sleeper = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "s", "1");
    al_call *doomed = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "s", "2");
    al_engine_run(f.engine);
    assert_failed_with(doomed, "is unreachable");
    assert_failed_with(sleeper, "is unreachable"); /* not the 503, and not 30 s later */
    assert_int_equal(ts_count(srv, "GET", "/v2/s/manifests/1", 0), 1);
    al_call_free(sleeper);
    al_call_free(doomed);
    fx_close(&f);
}

/* Local, not --insecure-registry: plain HTTP only once the peer answered
 * TLS in plain HTTP (said once on stderr); a TLS failure of another kind
 * fails every call of the host at once, and nothing goes in plain HTTP. */
static void test_tls(void **state)
{
    (void)state;
    ts_rule rules[] = {OK_MANIFEST("/v2/")};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){.secure = true});
    al_call *c = run1(&f, AL_CALL_MANIFEST_GET, "t", "0");
    assert_true(al_call_ok(c)); /* "wrong version number": plain HTTP it is */
    al_call_free(c);
    fx_close(&f);

    ts_set_rules(srv, rules, 1);
    ts_on_tls(srv, true);
    fx_open(&f, &(fx_opts){.secure = true});
    al_call *cs[2];
    cs[0] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "t", "1");
    cs[1] = start(&f, AL_CALL_MANIFEST_GET, ts_host(srv), "t", "2");
    al_engine_run(f.engine);
    ts_on_tls(srv, false);
    for (int i = 0; i < 2; i++) {
        assert_false(al_call_ok(cs[i]));
        al_call_free(cs[i]);
    }
    assert_int_equal(ts_count(srv, NULL, NULL, -1), 0);
    fx_close(&f);
}

/* --- HEAD -------------------------------------------------------------------------- */

static void test_head(void **state)
{
    (void)state;
    static char digest_hdr[128];
    char d[AL_DIGEST_BUF];
    al_digest_bytes(d, MANIFEST, strlen(MANIFEST));
    snprintf(digest_hdr, sizeof(digest_hdr), "Docker-Content-Digest: %s\r\n", d);
    ts_rule rules[] = {
        {.method = "HEAD", .path = "/v2/h/", .headers = digest_hdr, .body = MANIFEST}};
    ts_set_rules(srv, rules, 1);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_HEAD, "h", "1");
    assert_true(al_call_ok(c));
    assert_false(al_call_has_body(c));
    assert_string_equal(al_call_response(c)->docker_digest, d);
    al_call_free(c);
    fx_close(&f);
}

/* A registry (or a proxy) that refuses HEAD: GET by tag, and for the rest
 * of the run no HEAD at all. */
static void test_head_refused(void **state)
{
    (void)state;
    ts_rule rules[] = {{.method = "HEAD", .path = "/v2/", .status = 405},
                       {.method = "GET", .path = "/v2/nohead/", .body = MANIFEST}};
    ts_set_rules(srv, rules, 2);
    fx f;
    fx_open(&f, &(fx_opts){0});
    al_call *c = run1(&f, AL_CALL_MANIFEST_HEAD, "nohead", "1");
    assert_true(al_call_ok(c));
    assert_true(al_call_has_body(c));
    assert_string_equal(al_call_response(c)->body, MANIFEST);
    al_call_free(c);
    c = run1(&f, AL_CALL_MANIFEST_HEAD, "nohead", "2");
    assert_true(al_call_ok(c));
    assert_int_equal(ts_count(srv, "HEAD", NULL, 0), 1);
    assert_int_equal(ts_count(srv, "GET", NULL, 0), 2);
    al_call_free(c);
    fx_close(&f);
}

/* --- the table ---------------------------------------------------------------------- */

/* Every entry of fetch/fsm.c's table was taken by the tests above. */
static void test_every_transition_taken(void **state)
{
    (void)state;
    size_t n;
    const al_fsm_entry *t = al_fsm_table(&n);
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (al_fsm_count(i) > 0)
            continue;
        fprintf(stderr, "never taken: %s %s --%s--> %s\n", al_fsm_machine_name(t[i].machine),
                al_fsm_state_name(t[i].machine, t[i].from), al_fsm_event_name(t[i].event),
                al_fsm_state_name(t[i].machine, t[i].to));
        missing++;
    }
    assert_int_equal(missing, 0);
}

static int group_setup(void **state)
{
    (void)state;
    cfg_dir = th_mkdtemp();
    setenv("DOCKER_CONFIG", cfg_dir, 1);
    unsetenv("REGISTRY_AUTH_FILE");
    unsetenv("XDG_RUNTIME_DIR");
    basic_ok = al_creds_basic_header("u", "p");
    basic_bad = al_creds_basic_header("u", "wrong");
    srv = ts_start();
    al_fsm_reset_counts();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ts_stop(srv);
    free(basic_ok);
    free(basic_bad);
    th_rm_rf(cfg_dir);
    free(cfg_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anonymous),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_error_body_cut),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_basic_wrong),
        cmocka_unit_test(test_basic_none),
        cmocka_unit_test(test_bearer_anonymous),
        cmocka_unit_test(test_bearer_credentials),
        cmocka_unit_test(test_bearer_wrong_credentials),
        cmocka_unit_test(test_token_expires_midrun),
        cmocka_unit_test(test_insufficient_scope),
        cmocka_unit_test(test_scope_refused),
        cmocka_unit_test(test_anonymous_then_challenged),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_redirect_loop),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_5xx),
        cmocka_unit_test(test_resume_after_cut),
        cmocka_unit_test(test_resume_200),
        cmocka_unit_test(test_resume_wrong_range),
        cmocka_unit_test(test_partial_on_disk),
        cmocka_unit_test(test_hashing_off_loop),
        cmocka_unit_test(test_digest_mismatch),
        cmocka_unit_test(test_host_unreachable),
        cmocka_unit_test(test_host_closes),
        cmocka_unit_test(test_host_recovers),
        cmocka_unit_test(test_host_fails_while_busy),
        cmocka_unit_test(test_sleeper_fails_with_host),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_head_refused),
        AL_TRANSFER_PUSH_TESTS,
        cmocka_unit_test(test_every_transition_taken),
    };
    if (getenv("AL_TEST_FILTER") != NULL) /* e.g. AL_TEST_FILTER=test_head* while debugging */
        cmocka_set_test_filter(getenv("AL_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
