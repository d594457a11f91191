/* The registry client: hosts and what the run learnt about them, the
 * admission gate, tokens, requests and what answers mean (see registry.h
 * and registry-private.h). */
#include "registry.h"
#include "registry-private.h"

#include <assert.h>
#include <curl/curl.h>
#include <dirent.h>
#include <stddef.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "challenge.h"
#include "hostpolicy.h"
#include "log.h"
#include "manifest.h"
#include "sanitize.h"
#include "stage.h"
#include "upload.h"
#include "url.h"
#include "util.h"

#define TOKEN_MAX (1024u * 1024u)

static void scope_free(void *value)
{
    scope *s = value;
    free(s->name);
    al_free_secret(s->token);
    al_error_free(s->err);
    free(s);
}

static void host_free(reghost *h)
{
    char *owned[] = {h->name, h->ca_pem, h->client_cert, h->client_key, h->realm, h->service};
    for (size_t i = 0; i < AL_ARRAY_SIZE(owned); i++)
        free(owned[i]);
    al_strmap_free_with(h->scopes, scope_free);
    al_error_free(h->cred_err);
    al_error_free(h->auth_err);
    al_error_free(h->down_err);
    free(h);
}

int al_registry_new(al_registry **out, al_engine *engine, const al_registry_opts *opts,
                    al_error **err)
{
    (void)err;
    al_registry *r = al_xcalloc(1, sizeof(*r));
    r->engine = engine;
    r->opts = *opts;
    r->policy = (al_hostpolicy){opts->insecure_hosts, opts->n_insecure};
    r->hosts = al_strmap_new();
    /* Two threads: re-hashing a partial and fsyncing finished files go on
     * side by side. */
    r->worker = al_worker_new(engine, 2);
    *out = r;
    return 0;
}

void al_registry_free(al_registry *r)
{
    if (r == NULL)
        return;
    al_worker_free(r->worker);
    al_stage_free(r->stage);
    for (size_t i = 0; i < r->n_hosts; i++)
        host_free(r->host_list[i]);
    free(r->host_list);
    al_strmap_free(r->hosts);
    free(r);
}

al_engine *al_registry_engine(const al_registry *r)
{
    return r->engine;
}

al_stage *al_registry_stage(al_registry *r, al_store *store)
{
    if (r->stage == NULL)
        r->stage = al_stage_new(store, r->engine, r->worker);
    return r->stage;
}

bool al_registry_is_insecure(const al_registry *r, const char *name)
{
    return al_hostpolicy_is_insecure(&r->policy, name);
}

bool al_registry_plain_http(const al_registry *r, const char *name)
{
    const reghost *h = al_strmap_get(r->hosts, name);
    return h != NULL && h->scheme == AL_SCHEME_HTTP;
}

reghost *reg_host(al_registry *r, const char *name)
{
    reghost *h = al_strmap_get(r->hosts, name);
    if (h != NULL)
        return h;
    h = al_xcalloc(1, sizeof(*h));
    h->name = al_xstrdup(name);
    h->insecure = al_registry_is_insecure(r, name);
    h->plain_http_ok = al_hostpolicy_plain_http_ok(&r->policy, name);
    h->scopes = al_strmap_new();
    h->rl_limit = h->rl_remaining = h->rl_window = -1;
    /* Every machine starts in its state 0: UNKNOWN, UP, HTTPS, UNKNOWN. */
    al_strmap_put(r->hosts, name, h);
    r->host_list = al_xrealloc(r->host_list, (r->n_hosts + 1) * sizeof(reghost *));
    r->host_list[r->n_hosts++] = h;
    return h;
}

/* --- TLS material and credentials ------------------------------------------- */

static bool append_file(char **buf, size_t *len, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        *buf = al_xrealloc(*buf, *len + n + 2);
        memcpy(*buf + *len, chunk, n);
        *len += n;
    }
    fclose(f);
    if (*buf != NULL) {
        (*buf)[(*len)++] = '\n'; /* PEM files need not end in a newline */
        (*buf)[*len] = '\0';
    }
    return true;
}

/* One certs.d directory: *.crt files are CAs, client.cert pairs with
 * client.key. */
static void scan_certs_dir(reghost *h, const char *dir, char **extra, size_t *extra_len)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, de->d_name);
        if (al_has_suffix(de->d_name, ".crt")) {
            append_file(extra, extra_len, path);
        } else if (al_has_suffix(de->d_name, ".cert")) {
            char *key = al_xasprintf("%.*s.key", (int)(strlen(path) - 5), path);
            if (access(key, R_OK) == 0) {
                free(h->client_cert);
                free(h->client_key);
                h->client_cert = al_steal_ptr(&path);
                h->client_key = key;
            } else {
                al_warn("%s has no matching .key file: ignored", path);
                free(key);
            }
        }
    }
    closedir(d);
}

/* TLS material for a host: docker's certs.d convention, then the flags.
 * Extra CAs are added to the system's, never instead of them. */
static void load_tls(al_registry *r, reghost *h)
{
    if (h->tls_loaded)
        return;
    h->tls_loaded = true;
    static const char *const default_dirs[] = {"/etc/docker/certs.d", "/etc/containers/certs.d",
                                               NULL};
    const char *const *dirs = r->opts.certs_dirs ? r->opts.certs_dirs : default_dirs;
    char *extra = NULL;
    size_t extra_len = 0;
    for (size_t i = 0; dirs[i] != NULL && h->client_cert == NULL; i++) {
        _cleanup_free_ char *dir = al_xasprintf("%s/%s", dirs[i], h->name);
        scan_certs_dir(h, dir, &extra, &extra_len);
    }
    if (r->opts.ca_cert != NULL)
        append_file(&extra, &extra_len, r->opts.ca_cert);
    if (h->client_cert == NULL && r->opts.client_cert != NULL) {
        h->client_cert = al_xstrdup(r->opts.client_cert);
        h->client_key = al_xstrdup(r->opts.client_key ? r->opts.client_key : r->opts.client_cert);
    }
    if (extra == NULL)
        return;
    char *all = NULL;
    size_t all_len = 0;
    curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (vi->cainfo != NULL)
        append_file(&all, &all_len, vi->cainfo);
    all = al_xrealloc(all, all_len + extra_len + 1);
    memcpy(all + all_len, extra, extra_len);
    all_len += extra_len;
    all[all_len] = '\0';
    free(extra);
    h->ca_pem = all;
    h->ca_len = all_len;
}

static void apply_tls(al_registry *r, reghost *h, al_request *q)
{
    load_tls(r, h);
    q->insecure = h->insecure;
    q->ca_pem = h->ca_pem;
    q->ca_pem_len = h->ca_len;
    q->client_cert = h->client_cert;
    q->client_key = h->client_key;
}

/* The credentials for a host, looked up once. A failing lookup (missing
 * helper) is kept: the host's auth then fails with that one message. */
static const al_cred *host_cred(al_registry *r, reghost *h)
{
    if (!h->cred_loaded) {
        h->cred_loaded = true;
        if (r->opts.creds != NULL &&
            al_creds_get(r->opts.creds, h->name, &h->cred, &h->cred_err) < 0)
            h->cred = NULL;
    }
    return h->cred;
}

static bool has_login(const al_cred *c)
{
    return c != NULL && (c->user != NULL || c->identity_token != NULL);
}

/* --- quotas, Retry-After, error text --------------------------------------------- */

/* "76;w=21600" -> 76 and 21600. */
static void parse_quota(const char *v, long *count, long *window)
{
    if (v == NULL)
        return;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || n < 0)
        return;
    *count = n;
    const char *w = strstr(end, "w=");
    if (w != NULL && window != NULL)
        *window = strtol(w + 2, NULL, 10);
}

static void note_quota(reghost *h, const al_request *q)
{
    long remaining = -1, limit = -1, window = -1;
    parse_quota(q->ratelimit_remaining, &remaining, &window);
    parse_quota(q->ratelimit_limit, &limit, &window);
    /* Concurrent answers arrive in any order: the lowest count is the
     * newest. */
    if (remaining >= 0 && (h->rl_remaining < 0 || remaining < h->rl_remaining))
        h->rl_remaining = remaining;
    if (limit >= 0)
        h->rl_limit = limit;
    if (window >= 0)
        h->rl_window = window;
}

size_t al_registry_quotas(const al_registry *r, al_quota *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_hosts; i++) {
        const reghost *h = r->host_list[i];
        if (h->rl_remaining < 0)
            continue;
        if (k < max)
            out[k] = (al_quota){h->name, h->rl_limit, h->rl_remaining, h->rl_window};
        k++;
    }
    return k;
}

double al_retry_after_seconds(const char *v)
{
    if (v == NULL || *v == '\0')
        return -1;
    char *end;
    double secs = strtod(v, &end);
    if (end != v && *end == '\0')
        return secs >= 0 ? secs : -1;
    time_t at = curl_getdate(v, NULL); /* an HTTP date */
    if (at < 0)
        return -1;
    double d = (double)at - al_now();
    return d > 0 ? d : 0;
}

static const char *reason_phrase(long s)
{
    switch (s) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

/* "(MANIFEST_UNKNOWN: manifest unknown)" from a registry's error body. */
static char *registry_error_detail(const al_request *q)
{
    if (q->body == NULL || q->body_len == 0)
        return al_xstrdup("");
    json_t *root = json_loadb(q->body, q->body_len, 0, NULL);
    json_t *e0 = json_array_get(json_object_get(root, "errors"), 0);
    const char *code = json_string_value(json_object_get(e0, "code"));
    const char *msg = json_string_value(json_object_get(e0, "message"));
    char *out;
    if (code != NULL) {
        /* The registry's words, escaped and capped before they join a
         * message: no ESC sequence, no newline forging a result line. */
        _cleanup_free_ char *c = al_sanitize(code, 60);
        _cleanup_free_ char *m = al_sanitize(msg, 200);
        out = al_xasprintf(" (%s%s%s)", c, msg ? ": " : "", m);
    } else if (q->content_type != NULL && strstr(q->content_type, "html") != NULL)
        out = al_xstrdup(" (the server answered with an HTML page, not a registry API response)");
    else
        out = al_xstrdup("");
    json_decref(root);
    return out;
}

bool reg_error_code_is(const al_request *q, const char *code)
{
    if (q->body == NULL || q->body_len == 0)
        return false;
    json_t *root = json_loadb(q->body, q->body_len, 0, NULL);
    json_t *errors = json_object_get(root, "errors");
    bool found = false;
    for (size_t i = 0; i < json_array_size(errors) && !found; i++) {
        const char *c = json_string_value(json_object_get(json_array_get(errors, i), "code"));
        found = c != NULL && strcmp(c, code) == 0;
    }
    json_decref(root);
    return found;
}

int reg_http_error(al_error **err, const al_request *q, const char *method)
{
    _cleanup_free_ char *url = al_url_redact(q->url);
    _cleanup_free_ char *detail = registry_error_detail(q);
    al_errc code = q->status == 404                         ? AL_E_NOT_FOUND
                   : (q->status == 401 || q->status == 403) ? AL_E_AUTH
                                                            : AL_E_HTTP;
    const char *reason = reason_phrase(q->status);
    return al_error_set(err, code, 0, "%s %s: HTTP %ld%s%s%s", method, url, q->status,
                        *reason ? " " : "", reason, detail);
}

/* --- waking, failing ----------------------------------------------------------------- */

static void fire_host(reghost *h, al_fsm_machine m, int *state, al_fsm_event ev)
{
    al_fsm_fire(m, state, ev, h->name);
}

/* The host's auth state changed: the waiting calls ask again (or fail). */
static void auth_changed(reghost *h)
{
    if (h->auth == AL_AUTH_FAILED)
        al_call_list_fire(&h->waiting, AL_EV_FAIL, h->auth_err);
    else
        al_call_list_fire(&h->waiting, AL_EV_WAKE, NULL);
}

static void fail_auth(reghost *h, al_error *e)
{
    al_error_free(h->auth_err);
    h->auth_err = e;
    fire_host(h, AL_FSM_AUTH, &h->auth, AL_EV_REJECTED);
    auth_changed(h);
}

/* The host went down: every call that waits for it fails now, with the
 * one message that says why. */
static void link_down(reghost *h, al_fsm_event ev, al_error *why)
{
    al_error_free(h->down_err);
    h->down_err = why;
    fire_host(h, AL_FSM_LINK, &h->link, ev);
    h->link_prober = NULL;
    al_call_list_fire(&h->waiting, AL_EV_FAIL, h->down_err);
    al_call_list_fire(&h->sleeping, AL_EV_FAIL, h->down_err);
}

/* --- the gate -------------------------------------------------------------------------- */

/* The token scope a call needs: pull, or pull and push for a push (one
 * token serves every request of the repository's push, its HEADs too);
 * a mount also needs pull on the repository it mounts from. Several
 * scopes are one name, separated by spaces (token_url asks for each). */
static scope *get_scope(reghost *h, const al_call *c)
{
    const char *from = c->up != NULL ? al_upload_mount_from(c->up) : NULL;
    _cleanup_free_ char *name =
        from != NULL ? al_xasprintf("repository:%s:pull,push repository:%s:pull", c->repo, from)
                     : al_xasprintf("repository:%s:%s", c->repo, c->push ? "pull,push" : "pull");
    scope *s = al_strmap_get(h->scopes, name);
    if (s == NULL) {
        s = al_xcalloc(1, sizeof(*s));
        s->name = al_steal_ptr(&name);
        s->h = h;
        al_strmap_put(h->scopes, s->name, s);
    }
    return s;
}

/* Bearer hosts: a call goes when its scope holds a live token. */
static al_fsm_event scope_gate(reghost *h, al_call *c, al_error **why)
{
    scope *s = get_scope(h, c);
    if (s->state == AL_SCOPE_VALID && s->expires <= al_mono())
        al_fsm_fire(AL_FSM_SCOPE, &s->state, AL_EV_EXPIRED, s->name);
    if (s->state == AL_SCOPE_VALID)
        return AL_EV_GO;
    if (s->state == AL_SCOPE_DENIED) {
        *why = al_error_copy(s->err);
        return AL_EV_FAIL;
    }
    /* Untried credentials: one token request at a time, so wrong ones
     * fail once per registry, not once per repository. */
    if (s->state == AL_SCOPE_NONE && h->auth == AL_AUTH_BEARER_TRY && h->token_calls > 0) {
        al_call_list_add(&h->waiting, c);
        return AL_EV_WAIT_HOST;
    }
    /* WAIT_TOKEN's handler starts the token call when none runs. */
    al_call_list_add(&s->waiting, c);
    return AL_EV_NEED_TOKEN;
}

/* The pull quota (Docker Hub counts manifest GETs): none left fails the
 * call with a clear message; no more in flight than what is left. */
static al_fsm_event quota_gate(reghost *h, al_call *c, al_error **why)
{
    bool get = c->kind == AL_CALL_MANIFEST_GET || (c->kind == AL_CALL_MANIFEST_HEAD && c->use_get);
    if (!get || h->rl_remaining < 0)
        return AL_EV_GO;
    if (h->rl_remaining == 0) {
        al_error_set(why, AL_E_HTTP, 0,
                     "%s: pull rate limit reached (%ld pulls per %ld s): not requesting the "
                     "manifest of %s; try again later",
                     h->name, h->rl_limit, h->rl_window, c->repo);
        return AL_EV_FAIL;
    }
    if (h->manifest_gets >= h->rl_remaining) {
        al_call_list_add(&h->waiting, c);
        return AL_EV_WAIT_HOST;
    }
    return AL_EV_GO;
}

al_fsm_event reg_admit(al_registry *r, al_call *c, al_error **why)
{
    reghost *h = reg_host(r, c->host);
    if (h->link == AL_LINK_DOWN) {
        *why = al_error_copy(h->down_err);
        return AL_EV_FAIL;
    }
    if (h->link == AL_LINK_SUSPECT && h->link_prober == NULL)
        h->link_prober = c; /* the one that retried it ended: this call tries */
    if (h->link == AL_LINK_SUSPECT && h->link_prober != c) {
        al_call_list_add(&h->waiting, c);
        return AL_EV_WAIT_HOST;
    }
    if (c->kind == AL_CALL_TOKEN)
        return AL_EV_GO;
    if (h->auth == AL_AUTH_FAILED) {
        *why = al_error_copy(h->auth_err);
        return AL_EV_FAIL;
    }
    al_fsm_event q = quota_gate(h, c, why);
    if (q != AL_EV_GO)
        return q;
    switch (h->auth) {
    case AL_AUTH_UNKNOWN:
        /* Learn the scheme from one request before sending the others:
         * no burst of 401s. */
        fire_host(h, AL_FSM_AUTH, &h->auth, AL_EV_PROBE);
        h->auth_prober = c;
        return AL_EV_GO;
    case AL_AUTH_PROBING:
    case AL_AUTH_BASIC_TRY:
        /* One call asks (first without credentials, then with them); the
         * others wait for the verdict. One that ended unanswered hands
         * the question on. */
        if (h->auth_prober == NULL)
            h->auth_prober = c;
        if (h->auth_prober == c)
            return AL_EV_GO;
        al_call_list_add(&h->waiting, c);
        return AL_EV_WAIT_HOST;
    case AL_AUTH_BEARER_TRY:
    case AL_AUTH_BEARER: return scope_gate(h, c, why);
    default: return AL_EV_GO; /* ANONYMOUS, BASIC */
    }
}

/* --- tokens ------------------------------------------------------------------------ */

/* realm?service=...&scope=... */
static char *token_url(const reghost *h, const scope *s)
{
    CURLU *u = curl_url();
    if (u == NULL || curl_url_set(u, CURLUPART_URL, h->realm, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    if (h->service != NULL) {
        _cleanup_free_ char *q = al_xasprintf("service=%s", h->service);
        curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE);
    }
    for (const char *p = s->name; *p != '\0';) {
        size_t n = strcspn(p, " ");
        _cleanup_free_ char *q2 = al_xasprintf("scope=%.*s", (int)n, p);
        curl_url_set(u, CURLUPART_QUERY, q2, CURLU_APPENDQUERY | CURLU_URLENCODE);
        p += n + (p[n] == ' ');
    }
    char *url = NULL, *out = NULL;
    if (curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK)
        out = al_xstrdup(url);
    curl_free(url);
    curl_url_cleanup(u);
    return out;
}

/* An identity token (docker login via SSO) is an OAuth2 refresh token:
 * POST it, as docker does. */
static char *refresh_form(const reghost *h, const scope *s, const char *identity_token)
{
    char *rt = curl_easy_escape(NULL, identity_token, 0);
    char *sv = curl_easy_escape(NULL, h->service ? h->service : "", 0);
    char *sc = curl_easy_escape(NULL, s->name, 0);
    char *form = al_xasprintf("grant_type=refresh_token&client_id=airlock&service=%s"
                              "&scope=%s&refresh_token=%s",
                              sv, sc, rt);
    explicit_bzero(rt, strlen(rt));
    curl_free(rt);
    curl_free(sv);
    curl_free(sc);
    return form;
}

/* A bearer token goes into an Authorization header: only visible ASCII
 * (RFC 6750's token68 is a subset), so that a CR LF from a token server
 * never becomes a header of its own. The token itself is never shown. */
static bool token_is_visible_ascii(const char *tok)
{
    for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

/* Parse a token answer into s (GRANTED), or say why not. */
static int accept_token(scope *s, const al_request *q, al_error **err)
{
    json_t *root = json_loadb(q->body ? q->body : "", q->body_len, 0, NULL);
    const char *tok = json_string_value(json_object_get(root, "token"));
    if (tok == NULL)
        tok = json_string_value(json_object_get(root, "access_token"));
    json_int_t ttl = json_integer_value(json_object_get(root, "expires_in"));
    _cleanup_free_ char *url = al_url_redact(q->url);
    if (tok == NULL || *tok == '\0') {
        json_decref(root);
        return al_error_set(err, AL_E_AUTH, 0, "token server %s returned no token", url);
    }
    if (!token_is_visible_ascii(tok)) {
        json_decref(root);
        return al_error_set(err, AL_E_AUTH, 0,
                            "token server %s returned a token holding a byte outside visible "
                            "ASCII (a control byte, a space): refused",
                            url);
    }
    al_free_secret(s->token);
    s->token = al_xasprintf("Bearer %s", tok);
    s->gen++;
    double life = ttl > 0 ? (double)ttl : 60;
    /* Renew a little early so a token does not expire in flight. */
    s->expires = al_mono() + (life > 30 ? life - 10 : life);
    json_decref(root);
    al_fsm_fire(AL_FSM_SCOPE, &s->state, AL_EV_GRANTED, s->name);
    return 0;
}

static void token_refused(al_registry *r, scope *s, al_error *e)
{
    reghost *h = s->h;
    bool rejected = e->code == AL_E_AUTH && h->auth == AL_AUTH_BEARER_TRY;
    if (rejected)
        al_error_wrap(&e, "credentials from %s rejected", host_cred(r, h)->origin);
    al_error_free(s->err);
    s->err = e;
    al_fsm_fire(AL_FSM_SCOPE, &s->state, AL_EV_REFUSED, s->name);
    if (rejected)
        fail_auth(h, al_error_copy(e)); /* wrong credentials: one message per registry */
    al_call_list_fire(&s->waiting, AL_EV_FAIL, s->err);
}

static void token_done(al_call *tc, void *user)
{
    al_registry *r = user;
    scope *s = tc->for_scope;
    reghost *h = s->h;
    h->token_calls--;
    al_error *e = NULL;
    if (!al_call_ok(tc))
        e = al_call_take_error(tc);
    else
        accept_token(s, tc->req, &e);
    al_call_free(tc);
    if (e != NULL) {
        al_error_wrap(&e, "%s: token", h->name);
        token_refused(r, s, e);
        return;
    }
    if (h->auth == AL_AUTH_BEARER_TRY) {
        fire_host(h, AL_FSM_AUTH, &h->auth, AL_EV_ACCEPTED);
        auth_changed(h);
    }
    al_call_list_fire(&s->waiting, AL_EV_WAKE, NULL);
}

/* Credentials go to a token realm only over HTTPS, or over plain HTTP to
 * a host allowed it (docs/DESIGN.md, Security). Otherwise the scope is
 * refused, naming the realm; with credentials still untried, every call
 * of the registry fails with that message; nothing is sent. */
static bool realm_may_take(al_registry *r, reghost *h, scope *s, const al_cred *cred)
{
    if (!has_login(cred) || al_hostpolicy_credentials_ok(&r->policy, h->realm))
        return true;
    _cleanup_free_ char *redacted = al_url_redact(h->realm);
    _cleanup_free_ char *realm = al_sanitize(redacted, 200);
    al_error *e = NULL;
    al_error_set(&e, AL_E_AUTH, 0,
                 "%s: token realm %s is plain HTTP: credentials (from %s) go only over HTTPS, "
                 "or to a local address or an --insecure-registry host; nothing was sent",
                 h->name, realm, cred->origin);
    al_error_free(s->err);
    s->err = al_error_copy(e);
    al_fsm_fire(AL_FSM_SCOPE, &s->state, AL_EV_REFUSED, s->name);
    if (h->auth == AL_AUTH_BEARER_TRY)
        fail_auth(h, al_error_copy(e));
    al_call_list_fire(&s->waiting, AL_EV_FAIL, e);
    al_error_free(e);
    return false;
}

static void start_token(al_registry *r, scope *s)
{
    reghost *h = s->h;
    al_fsm_fire(AL_FSM_SCOPE, &s->state, AL_EV_FETCH, s->name);
    _cleanup_free_ char *url = token_url(h, s);
    _cleanup_free_ char *realm_host = url ? al_url_hostport(url) : NULL;
    if (realm_host == NULL) {
        al_error *e = NULL;
        _cleanup_free_ char *realm = al_sanitize(h->realm, 200);
        al_error_set(&e, AL_E_AUTH, 0, "%s: invalid token realm \"%s\"", h->name, realm);
        token_refused(r, s, e);
        return;
    }
    const al_cred *cred = host_cred(r, h);
    if (!realm_may_take(r, h, s, cred))
        return;
    al_call *tc = al_call_new(r, AL_CALL_TOKEN, realm_host, "", "token");
    tc->url = al_steal_ptr(&url);
    tc->for_scope = s;
    tc->mem_cap = TOKEN_MAX;
    tc->priority = INT64_MIN; /* calls wait for it: before anything else */
    /* The realm is named by the registry itself; docker sends the
     * registry's credentials there, and so do we. */
    if (cred != NULL && cred->identity_token != NULL)
        tc->token_form = refresh_form(h, s, cred->identity_token);
    else if (cred != NULL && cred->user != NULL)
        tc->token_auth = al_creds_basic_header(cred->user, cred->password);
    h->token_calls++;
    al_call_start(tc, token_done, r);
}

void reg_fetch_token(al_registry *r, al_call *c)
{
    scope *s = (scope *)(void *)((char *)c->list - offsetof(scope, waiting));
    if (s->state == AL_SCOPE_NONE)
        start_token(r, s);
}

/* --- requests ---------------------------------------------------------------------- */

static bool manifest_kind(al_call_kind k)
{
    return k == AL_CALL_MANIFEST_HEAD || k == AL_CALL_MANIFEST_GET || k == AL_CALL_MANIFEST_PUT;
}

static char *call_url(const reghost *h, const al_call *c)
{
    const char *scheme = h->scheme == AL_SCHEME_HTTP ? "http" : "https";
    if (c->kind == AL_CALL_BLOB_UPLOAD) {
        _cleanup_free_ char *base =
            al_xasprintf("%s://%s/v2/%s/blobs/uploads/", scheme, h->name, c->repo);
        return al_upload_url(c, base);
    }
    return al_xasprintf("%s://%s/v2/%s/%s/%s", scheme, h->name, c->repo,
                        manifest_kind(c->kind) ? "manifests" : "blobs", c->reference);
}

/* Authorization for the registry itself: Basic, or the scope's token. */
static void add_auth(al_registry *r, reghost *h, al_call *c, al_request *q)
{
    if (h->auth == AL_AUTH_BASIC || h->auth == AL_AUTH_BASIC_TRY) {
        const al_cred *cred = host_cred(r, h);
        if (cred != NULL && cred->user != NULL) {
            q->authorization = al_creds_basic_header(cred->user, cred->password);
            c->sent_auth = true;
        }
    } else if (h->auth == AL_AUTH_BEARER || h->auth == AL_AUTH_BEARER_TRY) {
        scope *s = get_scope(h, c);
        if (s->state == AL_SCOPE_VALID) {
            q->authorization = al_xstrdup(s->token);
            c->sent_auth = true;
            c->token_gen = s->gen;
        }
    }
}

al_request *reg_build_request(al_registry *r, al_call *c)
{
    reghost *h = reg_host(r, c->host);
    if (c->kind == AL_CALL_MANIFEST_HEAD && h->head == AL_HEAD_REFUSED)
        c->use_get = true; /* learnt earlier in the run */
    _cleanup_free_ char *own = c->url == NULL ? call_url(h, c) : NULL;
    al_request *q = al_request_new(c->url != NULL ? c->url : own);
    q->head = (c->kind == AL_CALL_MANIFEST_HEAD && !c->use_get) || c->kind == AL_CALL_BLOB_HEAD;
    q->priority = c->priority;
    c->sent_auth = false;
    if (c->off_host) {
        /* A redirect to another origin (a CDN, object storage): TLS as
         * that host wants it, and no credentials of ours. */
        _cleanup_free_ char *hp = al_url_hostport(q->url);
        apply_tls(r, hp != NULL ? reg_host(r, hp) : h, q);
    } else {
        apply_tls(r, h, q);
    }
    switch (c->kind) {
    case AL_CALL_MANIFEST_HEAD:
    case AL_CALL_MANIFEST_GET:
        q->accept = al_xstrdup(AL_MANIFEST_ACCEPT);
        q->mem_cap = AL_MANIFEST_MAX;
        break;
    case AL_CALL_TOKEN:
        q->mem_cap = c->mem_cap;
        q->post_fields = c->token_form ? al_xstrdup(c->token_form) : NULL;
        q->authorization = c->token_auth ? al_xstrdup(c->token_auth) : NULL;
        return q;
    default: q->mem_cap = c->mem_cap; break;
    }
    if (!c->off_host)
        add_auth(r, h, c, q);
    /* The registry is spoken to in plain HTTP only when it may be, so its
     * credentials never go anywhere else (docs/DESIGN.md, Security). */
    assert(q->authorization == NULL || al_hostpolicy_credentials_ok(&r->policy, q->url));
    bool get = c->kind == AL_CALL_MANIFEST_GET || (c->kind == AL_CALL_MANIFEST_HEAD && c->use_get);
    if (get && !c->counted_get) {
        h->manifest_gets++;
        c->counted_get = true;
    }
    return q;
}

/* --- answers ---------------------------------------------------------------------- */

static void uncount_get(reghost *h, al_call *c)
{
    if (!c->counted_get)
        return;
    c->counted_get = false;
    h->manifest_gets--;
    if (h->rl_remaining >= 0) /* a quota slot may have opened */
        al_call_list_fire(&h->waiting, AL_EV_WAKE, NULL);
}

void reg_note_answer(al_registry *r, al_call *c, const al_request *q)
{
    reghost *h = reg_host(r, c->host);
    if (c->off_host)
        return; /* another origin's answer says nothing about the registry */
    if (h->link == AL_LINK_SUSPECT && h->link_prober == c) {
        h->link_prober = NULL;
        fire_host(h, AL_FSM_LINK, &h->link, AL_EV_CONN_OK);
        al_call_list_fire(&h->waiting, AL_EV_WAKE, NULL);
    }
    note_quota(h, q);
    uncount_get(h, c);
    if (h->auth == AL_AUTH_PROBING && h->auth_prober == c && q->status != 401) {
        h->auth_prober = NULL;
        fire_host(h, AL_FSM_AUTH, &h->auth, AL_EV_OPEN);
        auth_changed(h);
    } else if (h->auth == AL_AUTH_BASIC_TRY && h->auth_prober == c && c->sent_auth &&
               q->status != 401) {
        h->auth_prober = NULL;
        fire_host(h, AL_FSM_AUTH, &h->auth, AL_EV_ACCEPTED);
        auth_changed(h);
    }
}

void reg_head_answer(al_registry *r, al_call *c, long status)
{
    reghost *h = reg_host(r, c->host);
    if (h->head != AL_HEAD_UNKNOWN || c->off_host)
        return;
    bool ok = status >= 200 && status <= 299;
    /* 405 and 501 say it outright; a 404 to HEAD may be a missing tag, or
     * a proxy that lies: the GET by tag that follows tells. */
    bool refused = !c->use_get && (status == 405 || status == 501);
    if (!c->use_get && ok)
        fire_host(h, AL_FSM_HEAD, &h->head, AL_EV_HEAD_OK);
    else if (refused || (c->use_get && c->head_404 && ok))
        fire_host(h, AL_FSM_HEAD, &h->head, AL_EV_HEAD_REFUSED);
}

bool reg_may_retry(const al_registry *r, const al_call *c)
{
    return c->retries < al_engine_get_opts(r->engine)->max_retries;
}

/* No answer from a host: a connection that could not be made (refused,
 * unresolvable, timed out) or that was dropped before a status line came
 * (closed or reset without a word) is the host's problem, and is retried
 * by one call while the others wait. A transfer cut after its status line
 * is that transfer's. */
static bool connection_failed(const al_request *q)
{
    switch (q->transport_code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING: return true;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR: return q->status == 0;
    case CURLE_OPERATION_TIMEDOUT: return !q->connected;
    default: return false;
    }
}

static bool transient_transport(int code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
    }
}

static bool tls_failed(int code)
{
    return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
           code == CURLE_SSL_CONNECT_ERROR;
}

static al_fsm_event host_unreachable(al_registry *r, reghost *h, al_call *c, const al_request *q)
{
    if (h->link == AL_LINK_UP) {
        fire_host(h, AL_FSM_LINK, &h->link, AL_EV_CONN_FAIL);
        h->link_prober = c;
    } else if (h->link_prober != c) {
        al_call_list_add(&h->waiting, c); /* the prober decides for everyone */
        return AL_EV_WAIT_HOST;
    }
    if (reg_may_retry(r, c))
        return AL_EV_RETRY;
    al_error *why = NULL;
    al_error_set(&why, AL_E_NET, 0, "%s is unreachable after %d attempts: %s", h->name,
                 c->retries + 1, q->err ? q->err->msg : "no answer");
    c->err = al_error_copy(why);
    link_down(h, AL_EV_GIVE_UP, why);
    return AL_EV_FAIL;
}

/* A cause every call to the host shares: its full message, with what to
 * do, is logged once on stderr, and every call to the host fails with a
 * short line that refers to it (docs/DESIGN.md, Security). */
static al_fsm_event host_refused(reghost *h, al_call *c, al_error *full, const char *what)
{
    al_error_log("%s", full->msg);
    al_error *why = NULL;
    al_error_set(&why, full->code, 0, "%s: %s (see the error on stderr)", h->name, what);
    al_error_free(full);
    c->err = al_error_copy(why);
    link_down(h, AL_EV_FATAL, why);
    return AL_EV_FAIL;
}

/* The TLS handshake failed. A host allowed plain HTTP switches to it: an
 * --insecure-registry host on any handshake failure, a local address only
 * when the peer answered in plain HTTP (said once on stderr). Otherwise
 * nothing will reach the host: every call fails. */
static al_fsm_event tls_event(reghost *h, al_call *c, const al_request *q)
{
    bool plain_answer = al_tls_error_is_plain_http(q->err->msg);
    bool handshake = q->transport_code == CURLE_SSL_CONNECT_ERROR;
    if (h->scheme == AL_SCHEME_HTTP && strncmp(q->url, "https://", 8) == 0)
        return AL_EV_USE_HTTP; /* another call switched the host meanwhile */
    if (handshake && h->plain_http_ok && (h->insecure || plain_answer)) {
        fire_host(h, AL_FSM_SCHEME, &h->scheme, AL_EV_PLAIN);
        if (!h->insecure)
            al_info("%s speaks plain HTTP: using it (a local address needs no "
                    "--insecure-registry)",
                    h->name);
        return AL_EV_USE_HTTP;
    }
    al_error *full = al_error_copy(q->err);
    if (handshake && plain_answer) {
        al_error_set(&full, AL_E_NET, 0,
                     "%s seems to speak plain HTTP, not HTTPS (%s); to fetch from it over plain "
                     "HTTP, pass --insecure-registry %s",
                     h->name, q->err->msg, h->name);
        return host_refused(h, c, full, "plain-HTTP registry refused");
    }
    if (!handshake) {
        al_error_wrap(&full,
                      "TLS verification failed for %s (use --ca-cert FILE, or "
                      "--insecure-registry %s to skip verification)",
                      h->name, h->name);
        return host_refused(h, c, full, "TLS verification failed");
    }
    c->err = al_error_copy(full);
    link_down(h, AL_EV_FATAL, full);
    return AL_EV_FAIL;
}

al_fsm_event reg_transport_event(al_registry *r, al_call *c, const al_request *q)
{
    reghost *h = reg_host(r, c->host);
    if (c->off_host) /* a CDN's trouble: retry from the registry, which signs anew */
        return reg_may_retry(r, c) ? AL_EV_RETRY : AL_EV_FAIL;
    if (h->link == AL_LINK_DOWN) {
        c->err = al_error_copy(h->down_err);
        return AL_EV_FAIL;
    }
    if (tls_failed(q->transport_code))
        return tls_event(h, c, q);
    if (connection_failed(q))
        return host_unreachable(r, h, c, q);
    if (transient_transport(q->transport_code) && reg_may_retry(r, c))
        return AL_EV_RETRY;
    c->err = al_error_copy(q->err);
    return AL_EV_FAIL;
}

/* --- 401 ------------------------------------------------------------------------------ */

/* A Bearer challenge: learn the realm; a call that carried a token has it
 * renewed once (it expired, or lacks the scope), then fails. */
static al_fsm_event bearer_challenge(al_registry *r, reghost *h, al_call *c, al_challenge *ch,
                                     const al_request *q)
{
    free(h->realm);
    free(h->service);
    h->realm = al_steal_ptr(&ch->realm);
    h->service = al_steal_ptr(&ch->service);
    if (h->auth == AL_AUTH_PROBING || h->auth == AL_AUTH_ANONYMOUS) {
        h->auth_prober = NULL;
        fire_host(h, AL_FSM_AUTH, &h->auth,
                  has_login(host_cred(r, h)) ? AL_EV_BEARER_CREDS : AL_EV_BEARER);
        auth_changed(h);
        return AL_EV_CHALLENGED;
    }
    if (h->auth != AL_AUTH_BEARER && h->auth != AL_AUTH_BEARER_TRY) {
        reg_http_error(&c->err, q, al_request_method(q));
        return AL_EV_FAIL; /* a Bearer challenge to Basic credentials */
    }
    if (!c->sent_auth)
        return AL_EV_CHALLENGED; /* it went out before the host asked for tokens */
    scope *s = get_scope(h, c);
    if (!c->refreshed) {
        c->refreshed = true;
        if (s->state == AL_SCOPE_VALID && s->gen == c->token_gen)
            al_fsm_fire(AL_FSM_SCOPE, &s->state, AL_EV_EXPIRED, s->name);
        return AL_EV_CHALLENGED;
    }
    /* The token service gave a token, the registry refuses it for this
     * repository: a permission matter, per repository. */
    const al_cred *cred = host_cred(r, h);
    reg_http_error(&c->err, q, al_request_method(q));
    if (has_login(cred))
        al_error_wrap(&c->err, "%s: credentials from %s give no %s access to %s", h->name,
                      cred->origin, c->push ? "push" : "pull", c->repo);
    else
        al_error_wrap(&c->err, "%s: %s needs credentials (anonymous %s refused)", h->name, c->repo,
                      c->push ? "push" : "pull");
    return AL_EV_FAIL;
}

/* A Basic challenge: our credentials, tried by one call before the others
 * send them; or one message for the whole registry when there are none or
 * they are wrong. */
static al_fsm_event basic_challenge(al_registry *r, reghost *h, al_call *c, const al_request *q)
{
    const al_cred *cred = host_cred(r, h);
    bool have = cred != NULL && cred->user != NULL;
    bool learning = h->auth == AL_AUTH_PROBING || h->auth == AL_AUTH_ANONYMOUS;
    if (learning && have) {
        h->auth_prober = c; /* the call that learnt it tries the credentials */
        fire_host(h, AL_FSM_AUTH, &h->auth, AL_EV_BASIC);
        auth_changed(h);
        return AL_EV_CHALLENGED;
    }
    if ((h->auth == AL_AUTH_BASIC_TRY || h->auth == AL_AUTH_BASIC) && !c->sent_auth)
        return AL_EV_CHALLENGED; /* it went out before the host asked */
    al_error *e = NULL;
    if (h->auth == AL_AUTH_BASIC_TRY)
        al_error_set(&e, AL_E_AUTH, 0,
                     "%s: authentication failed for user \"%s\" (credentials from %s)", h->name,
                     cred->user, cred->origin);
    else if (learning)
        al_error_set(&e, AL_E_AUTH, 0,
                     "%s requires authentication (HTTP 401 Unauthorized): give --username "
                     "with --password-stdin, or docker login",
                     h->name);
    if (e == NULL) {
        /* Accepted credentials refused for this repository, or a Basic
         * challenge from a Bearer registry. */
        reg_http_error(&c->err, q, al_request_method(q));
        if (h->auth == AL_AUTH_BASIC)
            al_error_wrap(&c->err, "%s: credentials from %s give no access to %s", h->name,
                          cred->origin, c->repo);
        return AL_EV_FAIL;
    }
    h->auth_prober = NULL;
    c->err = al_error_copy(e);
    fail_auth(h, e);
    return AL_EV_FAIL;
}

al_fsm_event reg_challenge(al_registry *r, al_call *c, const al_request *q)
{
    reghost *h = reg_host(r, c->host);
    al_challenge ch;
    al_error *e = NULL;
    if (al_challenge_parse(&ch, q->www_authenticate, &e) < 0) {
        _cleanup_free_ char *url = al_url_redact(q->url);
        al_error_wrap(&e, "%s %s: HTTP 401", al_request_method(q), url);
        c->err = e;
        return AL_EV_FAIL;
    }
    host_cred(r, h);
    al_fsm_event ev;
    if (h->cred_err != NULL && (h->auth == AL_AUTH_PROBING || h->auth == AL_AUTH_ANONYMOUS)) {
        /* the credential lookup itself failed (a missing helper) */
        h->auth_prober = NULL;
        c->err = al_error_copy(h->cred_err);
        fail_auth(h, al_error_copy(h->cred_err));
        ev = AL_EV_FAIL;
    } else if (ch.scheme == AL_AUTH_SCHEME_BEARER) {
        ev = bearer_challenge(r, h, c, &ch, q);
    } else {
        ev = basic_challenge(r, h, c, q);
    }
    al_challenge_dispose(&ch);
    return ev;
}

void reg_call_ended(al_registry *r, al_call *c)
{
    reghost *h = reg_host(r, c->host);
    al_call_list_remove(c);
    uncount_get(h, c);
    /* A prober that ended without settling its question hands it on. */
    if (h->link_prober == c) {
        h->link_prober = NULL;
        al_call_list_fire(&h->waiting, AL_EV_WAKE, NULL);
    }
    if (h->auth_prober == c) {
        h->auth_prober = NULL;
        al_call_list_fire(&h->waiting, AL_EV_WAKE, NULL);
    }
}
