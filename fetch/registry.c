#include "registry.h"

#include <assert.h>
#include <curl/curl.h>
#include <dirent.h>
#include <unistd.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "challenge.h"
#include "hostpolicy.h"
#include "log.h"
#include "manifest.h"
#include "sanitize.h"
#include "util.h"

#define MAX_ROUNDS 16
#define MAX_REDIRECTS 5
#define TOKEN_MAX (1024u * 1024u)

typedef enum { AUTH_UNKNOWN, AUTH_NONE, AUTH_BASIC, AUTH_BEARER } auth_kind;

typedef struct token {
    char *scope;
    char *value;    /* "Bearer ..." */
    double expires; /* monotonic */
} token;

typedef struct host_state {
    char *host;
    bool insecure;      /* --insecure-registry: unverified TLS or plain HTTP */
    bool plain_http_ok; /* insecure, or a local address (docs/DESIGN.md, Security) */
    bool tls_loaded;
    char *ca_pem; /* system CAs + --ca-cert + certs.d CAs, when any extra */
    size_t ca_len;
    char *client_cert, *client_key;
    bool cred_loaded;
    const al_cred *cred; /* borrowed from the creds cache; NULL: anonymous */
    bool plain_http;     /* a plain_http_ok host that does not speak TLS */
    auth_kind auth;
    char *realm, *service;
    token *tokens;
    size_t n_tokens;
    al_error *fatal; /* e.g. wrong credentials: every later call fails with it */
    long rl_limit, rl_remaining, rl_window; /* -1 until the registry tells */
    bool creds_ok;                          /* a token was granted with our credentials */
} host_state;

struct al_registry {
    al_engine *engine;
    al_registry_opts opts;
    al_hostpolicy policy;
    host_state **hosts; /* each allocated on its own: pointers stay valid */
    size_t n_hosts;
};

int al_registry_new(al_registry **out, al_engine *engine, const al_registry_opts *opts,
                    al_error **err)
{
    (void)err;
    al_registry *r = al_xcalloc(1, sizeof(*r));
    r->engine = engine;
    r->opts = *opts;
    r->policy = (al_hostpolicy){opts->insecure_hosts, opts->n_insecure};
    *out = r;
    return 0;
}

void al_registry_free(al_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_hosts; i++) {
        host_state *h = r->hosts[i];
        free(h->host);
        free(h->ca_pem);
        free(h->client_cert);
        free(h->client_key);
        free(h->realm);
        free(h->service);
        for (size_t j = 0; j < h->n_tokens; j++) {
            free(h->tokens[j].scope);
            free(h->tokens[j].value);
        }
        free(h->tokens);
        al_error_free(h->fatal);
        free(h);
    }
    free(r->hosts);
    free(r);
}

bool al_registry_is_insecure(const al_registry *r, const char *host)
{
    return al_hostpolicy_is_insecure(&r->policy, host);
}

static host_state *get_host(al_registry *r, const char *host)
{
    for (size_t i = 0; i < r->n_hosts; i++)
        if (strcmp(r->hosts[i]->host, host) == 0)
            return r->hosts[i];
    r->hosts = al_xrealloc(r->hosts, (r->n_hosts + 1) * sizeof(host_state *));
    host_state *h = al_xcalloc(1, sizeof(*h));
    r->hosts[r->n_hosts++] = h;
    h->host = al_xstrdup(host);
    h->insecure = al_registry_is_insecure(r, host);
    h->plain_http_ok = al_hostpolicy_plain_http_ok(&r->policy, host);
    h->rl_limit = h->rl_remaining = h->rl_window = -1;
    return h;
}

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

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* TLS material for a host: docker's certs.d convention, then the flags.
 * Extra CAs are added to the system's, never instead of them. */
static void load_tls(al_registry *r, host_state *h)
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
        _cleanup_free_ char *dir = al_xasprintf("%s/%s", dirs[i], h->host);
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, de->d_name);
            if (has_suffix(de->d_name, ".crt")) {
                append_file(&extra, &extra_len, path);
            } else if (has_suffix(de->d_name, ".cert")) {
                /* client.cert pairs with client.key */
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

static void apply_tls(al_registry *r, host_state *h, al_request *q)
{
    load_tls(r, h);
    q->insecure = h->insecure;
    q->ca_pem = h->ca_pem;
    q->ca_pem_len = h->ca_len;
    q->client_cert = h->client_cert;
    q->client_key = h->client_key;
}

/* The credentials for a host, looked up once. A failing lookup (missing
 * helper) makes the host fail with that one message. */
static const al_cred *host_cred(al_registry *r, host_state *h)
{
    if (!h->cred_loaded) {
        h->cred_loaded = true;
        if (r->opts.creds != NULL && al_creds_get(r->opts.creds, h->host, &h->cred, &h->fatal) < 0)
            h->cred = NULL;
    }
    return h->cred;
}

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

static void note_quota(host_state *h, const al_request *q)
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
        const host_state *h = r->hosts[i];
        if (h->rl_remaining < 0)
            continue;
        if (k < max)
            out[k] = (al_quota){h->host, h->rl_limit, h->rl_remaining, h->rl_window};
        k++;
    }
    return k;
}

al_call *al_call_new(al_call_op op, const char *host, const char *repo, const char *reference)
{
    al_call *c = al_xcalloc(1, sizeof(*c));
    c->op = op;
    c->host = host;
    c->repo = repo;
    c->reference = reference;
    c->size = -1;
    return c;
}

void al_call_free(al_call *c)
{
    if (c == NULL)
        return;
    al_request_free(c->resp);
    al_error_free(c->err);
    free(c->next_url);
    free(c);
}

static char *scope_of(const al_call *c)
{
    return al_xasprintf("repository:%s:pull", c->repo);
}

static token *find_token(host_state *h, const char *scope)
{
    double now = al_mono();
    for (size_t i = 0; i < h->n_tokens; i++)
        if (strcmp(h->tokens[i].scope, scope) == 0)
            return h->tokens[i].expires > now ? &h->tokens[i] : NULL;
    return NULL;
}

static void drop_token(host_state *h, const char *scope)
{
    for (size_t i = 0; i < h->n_tokens; i++)
        if (strcmp(h->tokens[i].scope, scope) == 0)
            h->tokens[i].expires = 0;
}

static void put_token(host_state *h, const char *scope, char *value, double ttl)
{
    token *t = NULL;
    for (size_t i = 0; i < h->n_tokens; i++)
        if (strcmp(h->tokens[i].scope, scope) == 0)
            t = &h->tokens[i];
    if (t == NULL) {
        h->tokens = al_xrealloc(h->tokens, (h->n_tokens + 1) * sizeof(token));
        t = &h->tokens[h->n_tokens++];
        t->scope = al_xstrdup(scope);
        t->value = NULL;
    }
    free(t->value);
    t->value = value;
    /* Refresh a little early so a token does not expire mid-batch. */
    t->expires = al_mono() + (ttl > 30 ? ttl - 10 : ttl);
}

static char *base_url(const host_state *h)
{
    return al_xasprintf("%s://%s", h->plain_http ? "http" : "https", h->host);
}

static char *call_url(const host_state *h, const al_call *c)
{
    _cleanup_free_ char *base = base_url(h);
    const char *kind =
        (c->op == AL_CALL_MANIFEST_HEAD || c->op == AL_CALL_MANIFEST_GET) ? "manifests" : "blobs";
    return al_xasprintf("%s/v2/%s/%s/%s", base, c->repo, kind, c->reference);
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
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
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

static int http_error(al_error **err, const al_request *q, const char *method)
{
    _cleanup_free_ char *url = al_url_redact(q->url);
    _cleanup_free_ char *detail = registry_error_detail(q);
    al_errc code = q->status == 404                         ? AL_E_NOT_FOUND
                   : (q->status == 401 || q->status == 403) ? AL_E_AUTH
                                                            : AL_E_HTTP;
    return al_error_set(err, code, 0, "%s %s: HTTP %ld %s%s", method, url, q->status,
                        reason_phrase(q->status), detail);
}

static const char *method_of(const al_call *c)
{
    return c->op == AL_CALL_MANIFEST_HEAD ? "HEAD" : "GET";
}

static void finish(al_call *c, al_error *e)
{
    c->done = true;
    al_error_free(c->err);
    c->err = e;
}

/* A cause every call to this host shares: its full message, with what to
 * do, is logged once on stderr, and this call (when given) and every later
 * one to the host fail with a short line that refers to it, instead of the
 * same advice once per image (docs/DESIGN.md, Security). */
static void fail_host(host_state *h, al_call *c, al_error *e, const char *what)
{
    if (h->fatal == NULL) {
        al_error_log("%s", e->msg);
        al_error_set(&h->fatal, e->code, 0, "%s: %s (see the error on stderr)", h->host, what);
    }
    al_error_free(e);
    if (c != NULL)
        finish(c, al_error_copy(h->fatal));
}

/* Credentials go to a token realm only over HTTPS, or over plain HTTP to a
 * host allowed it (docs/DESIGN.md, Security). Otherwise every call to the
 * registry fails, naming the realm, and nothing is sent. */
static bool realm_may_take(al_registry *r, host_state *h, const al_cred *cred)
{
    bool secret = cred != NULL && (cred->user != NULL || cred->identity_token != NULL);
    if (!secret || al_hostpolicy_credentials_ok(&r->policy, h->realm))
        return true;
    _cleanup_free_ char *redacted = al_url_redact(h->realm);
    _cleanup_free_ char *realm = al_sanitize(redacted, 200);
    al_error_set(&h->fatal, AL_E_AUTH, 0,
                 "%s: token realm %s is plain HTTP: credentials (from %s) go only over HTTPS, "
                 "or to a local address or an --insecure-registry host; nothing was sent",
                 h->host, realm, cred->origin);
    return false;
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

/* Fetch bearer tokens for every (host, scope) some pending call lacks. */
static void fetch_tokens(al_registry *r, al_call **calls, size_t n)
{
    al_request **reqs = al_xcalloc(n, sizeof(*reqs));
    host_state **hs = al_xcalloc(n, sizeof(*hs));
    char **scopes = al_xcalloc(n, sizeof(*scopes));
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        al_call *c = calls[i];
        if (c->done || c->next_url != NULL)
            continue;
        host_state *h = get_host(r, c->host);
        if (h->auth != AUTH_BEARER || h->fatal != NULL)
            continue;
        _cleanup_free_ char *scope = scope_of(c);
        if (find_token(h, scope) != NULL)
            continue;
        bool dup = false;
        for (size_t j = 0; j < nr && !dup; j++)
            dup = hs[j] == h && (strcmp(scopes[j], scope) == 0 ||
                                 /* Untried credentials: one token request
                                  * first, so wrong ones fail once. */
                                 (!h->creds_ok && host_cred(r, h) != NULL));
        if (dup)
            continue;
        CURLU *u = curl_url();
        curl_url_set(u, CURLUPART_URL, h->realm, 0);
        if (h->service != NULL) {
            _cleanup_free_ char *q = al_xasprintf("service=%s", h->service);
            curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE);
        }
        _cleanup_free_ char *q2 = al_xasprintf("scope=%s", scope);
        curl_url_set(u, CURLUPART_QUERY, q2, CURLU_APPENDQUERY | CURLU_URLENCODE);
        char *url = NULL;
        CURLUcode uc = curl_url_get(u, CURLUPART_URL, &url, 0);
        curl_url_cleanup(u);
        if (uc != CURLUE_OK) {
            al_error *e = NULL;
            _cleanup_free_ char *realm = al_sanitize(h->realm, 200);
            al_error_set(&e, AL_E_AUTH, 0, "%s: invalid token realm \"%s\"", h->host, realm);
            h->fatal = e;
            continue;
        }
        const al_cred *cred = host_cred(r, h);
        if (!realm_may_take(r, h, cred)) {
            curl_free(url);
            continue;
        }
        al_request *q;
        if (cred != NULL && cred->identity_token != NULL) {
            /* An identity token (docker login via SSO) is an OAuth2
             * refresh token: POST it, as docker does. */
            q = al_request_new(h->realm);
            char *rt = curl_easy_escape(NULL, cred->identity_token, 0);
            char *sv = curl_easy_escape(NULL, h->service ? h->service : "", 0);
            char *sc = curl_easy_escape(NULL, scope, 0);
            q->post_fields = al_xasprintf("grant_type=refresh_token&client_id=airlock&service=%s"
                                          "&scope=%s&refresh_token=%s",
                                          sv, sc, rt);
            memset(rt, 0, strlen(rt));
            curl_free(rt);
            curl_free(sv);
            curl_free(sc);
        } else {
            q = al_request_new(url);
            /* The realm is named by the registry itself; docker sends the
             * registry's credentials there, and so do we. */
            if (cred != NULL && cred->user != NULL)
                q->authorization = al_creds_basic_header(cred->user, cred->password);
        }
        curl_free(url);
        q->mem_cap = TOKEN_MAX;
        _cleanup_free_ char *realm_host = al_url_hostport(h->realm);
        if (realm_host != NULL)
            apply_tls(r, get_host(r, realm_host), q);
        reqs[nr] = q;
        hs[nr] = h;
        scopes[nr] = al_xstrdup(scope);
        nr++;
    }
    al_engine_run(r->engine, reqs, nr);
    for (size_t i = 0; i < nr; i++) {
        al_request *q = reqs[i];
        host_state *h = hs[i];
        _cleanup_free_ char *url = al_url_redact(q->url);
        al_error *e = NULL;
        if (q->err != NULL) {
            e = q->err;
            q->err = NULL;
            al_error_wrap(&e, "%s: token", h->host);
        } else if (q->status < 200 || q->status > 299) {
            http_error(&e, q, "GET");
            al_error_wrap(&e, "%s: token", h->host);
            if (q->status == 401 || q->status == 403)
                e->code = AL_E_AUTH;
        } else {
            json_t *root = json_loadb(q->body ? q->body : "", q->body_len, 0, NULL);
            const char *tok = json_string_value(json_object_get(root, "token"));
            if (tok == NULL)
                tok = json_string_value(json_object_get(root, "access_token"));
            json_int_t ttl = json_integer_value(json_object_get(root, "expires_in"));
            if (tok == NULL || *tok == '\0')
                al_error_set(&e, AL_E_AUTH, 0, "%s: token server %s returned no token", h->host,
                             url);
            else if (!token_is_visible_ascii(tok))
                al_error_set(&e, AL_E_AUTH, 0,
                             "%s: token server %s returned a token holding a byte outside "
                             "visible ASCII (a control byte, a space): refused",
                             h->host, url);
            else {
                put_token(h, scopes[i], al_xasprintf("Bearer %s", tok), ttl > 0 ? (double)ttl : 60);
                h->creds_ok = true;
            }
            json_decref(root);
        }
        if (e != NULL) {
            bool rejected = e->code == AL_E_AUTH && host_cred(r, h) != NULL && !h->creds_ok;
            if (rejected)
                al_error_wrap(&e, "credentials from %s rejected", host_cred(r, h)->origin);
            /* A token that cannot be had fails every call of its scope. */
            for (size_t j = 0; j < n; j++) {
                al_call *c = calls[j];
                if (c->done || strcmp(c->host, h->host) != 0)
                    continue;
                _cleanup_free_ char *s = scope_of(c);
                if (strcmp(s, scopes[i]) == 0)
                    finish(c, al_error_copy(e));
            }
            if (rejected && h->fatal == NULL) {
                /* Wrong credentials: every other call to this registry
                 * fails with this one message, and nothing more is sent. */
                h->fatal = e;
                e = NULL;
            }
            al_error_free(e);
        }
        al_request_free(q);
        free(scopes[i]);
    }
    free(reqs);
    free(hs);
    free(scopes);
}

static char *resolve_location(const char *base, const char *loc)
{
    CURLU *u = curl_url();
    char *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, loc, 0) == CURLUE_OK) {
        char *s = NULL;
        if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
            out = al_xstrdup(s);
            curl_free(s);
        }
    }
    curl_url_cleanup(u);
    return out;
}

/* scheme://host:port of a URL, for the same-origin test. */
static char *origin_of(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        out = al_xasprintf("%s://%s:%s", scheme, host, port);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

static bool same_origin(const char *a, const char *b)
{
    _cleanup_free_ char *oa = origin_of(a);
    _cleanup_free_ char *ob = origin_of(b);
    return oa != NULL && ob != NULL && strcmp(oa, ob) == 0;
}

static al_request *build_request(al_registry *r, host_state *h, al_call *c)
{
    al_request *q;
    if (c->next_url != NULL) {
        q = al_request_new(c->next_url);
    } else {
        _cleanup_free_ char *url = call_url(h, c);
        q = al_request_new(url);
    }
    q->head = c->op == AL_CALL_MANIFEST_HEAD;
    if (c->off_host) {
        /* TLS settings follow the host actually contacted. */
        _cleanup_free_ char *hp = al_url_hostport(q->url);
        if (hp != NULL)
            apply_tls(r, get_host(r, hp), q);
    } else {
        apply_tls(r, h, q);
    }
    if (c->op == AL_CALL_MANIFEST_HEAD || c->op == AL_CALL_MANIFEST_GET) {
        q->accept = al_xstrdup(AL_MANIFEST_ACCEPT);
        q->mem_cap = AL_MANIFEST_MAX;
    } else if (c->op == AL_CALL_BLOB_MEM) {
        q->mem_cap = c->mem_cap;
    } else {
        q->store = c->store;
        snprintf(q->blob_digest, sizeof(q->blob_digest), "%s", c->reference);
        q->blob_size = c->size;
    }
    c->sent_auth = false;
    if (c->off_host) {
        /* A redirect to another origin (a CDN, object storage): no
         * credentials of ours go there, whatever curl would do. */
        return q;
    }
    if (h->auth == AUTH_BEARER) {
        _cleanup_free_ char *scope = scope_of(c);
        token *t = find_token(h, scope);
        if (t != NULL) {
            q->authorization = al_xstrdup(t->value);
            c->sent_auth = true;
        }
    } else if (h->auth == AUTH_BASIC) {
        const al_cred *cred = host_cred(r, h);
        if (cred != NULL && cred->user != NULL) {
            q->authorization = al_creds_basic_header(cred->user, cred->password);
            c->sent_auth = true;
        }
    }
    /* The registry is spoken to in plain HTTP only when it may be, so its
     * credentials never go anywhere else (docs/DESIGN.md, Security). */
    assert(q->authorization == NULL || al_hostpolicy_credentials_ok(&r->policy, q->url));
    return q;
}

/* HTTPS failed at the handshake for a host that may be spoken to in plain
 * HTTP: switch the host to http, once, and send the call again. An
 * --insecure-registry host switches on any handshake failure (as before);
 * a local address, allowed without the flag, only when the peer answered
 * in plain HTTP, and that is said once on stderr. */
static bool retry_over_http(host_state *h, const al_call *c, const al_request *q)
{
    if (!h->plain_http_ok || c->next_url != NULL || q->transport_code != CURLE_SSL_CONNECT_ERROR)
        return false;
    if (h->plain_http) /* another call switched the host while this one was out */
        return strncmp(q->url, "https://", 8) == 0;
    if (!h->insecure && !al_tls_error_is_plain_http(q->err->msg))
        return false;
    h->plain_http = true;
    if (!h->insecure)
        al_info("%s speaks plain HTTP: using it (a local address needs no --insecure-registry)",
                h->host);
    return true;
}

/* A transport failure ends the call. A cause that every call to the host
 * shares (plain HTTP where HTTPS is required, a certificate that does not
 * verify) is said once, with what to do, and fails the host. */
static void transport_failure(host_state *h, al_call *c, al_request *q)
{
    al_error *e = q->err;
    q->err = NULL;
    bool own_host = c->next_url == NULL; /* not a redirect target's failure */
    if (own_host && q->transport_code == CURLE_SSL_CONNECT_ERROR && !h->plain_http_ok &&
        al_tls_error_is_plain_http(e->msg)) {
        al_error *advice = NULL;
        al_error_set(&advice, AL_E_NET, 0,
                     "%s seems to speak plain HTTP, not HTTPS (%s); to fetch from it over plain "
                     "HTTP, pass --insecure-registry %s",
                     h->host, e->msg, h->host);
        al_error_free(e);
        fail_host(h, c, advice, "plain-HTTP registry refused");
        return;
    }
    if (q->transport_code == CURLE_PEER_FAILED_VERIFICATION ||
        q->transport_code == CURLE_SSL_CACERT_BADFILE) {
        al_error_wrap(&e,
                      "TLS verification failed for %s (use --ca-cert FILE, or "
                      "--insecure-registry %s to skip verification)",
                      h->host, h->host);
        if (own_host) {
            fail_host(h, c, e, "TLS verification failed");
            return;
        }
    }
    finish(c, e);
}

/* Handle one response; returns true when the call must go another round. */
static bool handle_response(al_registry *r, host_state *h, al_call *c, al_request *q,
                            bool *probe_ok)
{
    if (q->err != NULL) {
        if (retry_over_http(h, c, q))
            return true;
        transport_failure(h, c, q);
        return false;
    }
    *probe_ok = q->status != 401;
    if (q->status >= 200 && q->status <= 299) {
        finish(c, NULL);
        return false;
    }
    if (q->status >= 300 && q->status <= 399 && q->status != 304 && q->location != NULL &&
        (c->op == AL_CALL_BLOB_MEM || c->op == AL_CALL_BLOB_STORE)) {
        if (c->redirects >= MAX_REDIRECTS) {
            al_error *e = NULL;
            http_error(&e, q, method_of(c));
            al_error_wrap(&e, "too many redirects");
            finish(c, e);
            return false;
        }
        char *next = resolve_location(q->url, q->location);
        if (next == NULL) {
            al_error *e = NULL;
            _cleanup_free_ char *url = al_url_redact(q->url);
            al_error_set(&e, AL_E_HTTP, 0, "GET %s: invalid redirect location", url);
            finish(c, e);
            return false;
        }
        if (!same_origin(next, q->url))
            c->off_host = true; /* once off-host, never back with credentials */
        free(c->next_url);
        c->next_url = next;
        c->redirects++;
        return true;
    }
    if (q->status == 401 && !c->off_host) {
        al_challenge ch;
        al_error *e = NULL;
        if (al_challenge_parse(&ch, q->www_authenticate, &e) < 0) {
            _cleanup_free_ char *url = al_url_redact(q->url);
            al_error_wrap(&e, "%s %s: HTTP 401", method_of(c), url);
            finish(c, e);
            return false;
        }
        const al_cred *cred = host_cred(r, h);
        if (h->fatal != NULL) { /* the credential lookup itself failed */
            al_challenge_dispose(&ch);
            finish(c, al_error_copy(h->fatal));
            return false;
        }
        bool have_creds = cred != NULL && cred->user != NULL;
        bool bearer = ch.scheme == AL_AUTH_SCHEME_BEARER;
        if (bearer) {
            bool changed =
                h->auth != AUTH_BEARER || h->realm == NULL || strcmp(h->realm, ch.realm) != 0;
            h->auth = AUTH_BEARER;
            free(h->realm);
            free(h->service);
            h->realm = ch.realm;
            h->service = ch.service;
            ch.realm = ch.service = NULL;
            al_challenge_dispose(&ch);
            if (!c->sent_auth || changed)
                return true;
            if (!c->refreshed) {
                _cleanup_free_ char *scope = scope_of(c);
                drop_token(h, scope);
                c->refreshed = true;
                return true;
            }
        } else {
            al_challenge_dispose(&ch);
            h->auth = AUTH_BASIC;
            if (!c->sent_auth && have_creds)
                return true;
            if (!have_creds) {
                al_error_set(&e, AL_E_AUTH, 0,
                             "%s requires authentication (HTTP 401 Unauthorized): give "
                             "--username with --password-stdin, or docker login",
                             h->host);
                if (h->fatal == NULL) {
                    h->fatal = e;
                    e = al_error_copy(h->fatal);
                }
                finish(c, e);
                return false;
            }
        }
        http_error(&e, q, method_of(c));
        if (bearer) {
            /* The token server gave a token, the registry refuses it for
             * this repository: a permission matter, per repository. */
            if (cred != NULL)
                al_error_wrap(&e, "%s: credentials from %s give no pull access to %s", h->host,
                              cred->origin, c->repo);
            else
                al_error_wrap(&e, "%s: %s needs credentials (anonymous pull refused)", h->host,
                              c->repo);
        } else {
            al_error_wrap(&e, "%s: authentication failed for user \"%s\" (credentials from %s)",
                          h->host, cred->user, cred->origin);
            /* Later calls to this registry fail with a message that
             * names the registry, not this call's URL. */
            if (h->fatal == NULL)
                al_error_set(&h->fatal, AL_E_AUTH, 0,
                             "%s: authentication failed for user \"%s\" (credentials from %s)",
                             h->host, cred->user, cred->origin);
        }
        finish(c, e);
        return false;
    }
    al_error *e = NULL;
    http_error(&e, q, method_of(c));
    finish(c, e);
    return false;
}

int al_registry_run(al_registry *r, al_call **calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        calls[i]->done = false;
        al_error_clear(&calls[i]->err);
    }
    al_request **reqs = al_xcalloc(n ? n : 1, sizeof(*reqs));
    al_call **sent = al_xcalloc(n ? n : 1, sizeof(*sent));
    for (int round = 0; round < MAX_ROUNDS; round++) {
        /* Calls for hosts that already failed fatally end here. */
        for (size_t i = 0; i < n; i++) {
            al_call *c = calls[i];
            if (c->done)
                continue;
            host_state *h = get_host(r, c->host);
            if (h->fatal != NULL)
                finish(c, al_error_copy(h->fatal));
        }
        fetch_tokens(r, calls, n);
        size_t nr = 0;
        for (size_t i = 0; i < n; i++) {
            al_call *c = calls[i];
            if (c->done)
                continue;
            host_state *h = get_host(r, c->host);
            if (h->fatal != NULL)
                continue;
            if (c->op == AL_CALL_MANIFEST_GET && h->rl_remaining >= 0) {
                /* Docker Hub counts manifest GETs (not HEADs). Send no more
                 * than the quota left, then stop with a clear message
                 * instead of a storm of 429s. */
                if (h->rl_remaining == 0) {
                    al_error *e = NULL;
                    al_error_set(&e, AL_E_HTTP, 0,
                                 "%s: pull rate limit reached (%ld pulls per %ld s): not "
                                 "requesting the manifest of %s; try again later",
                                 h->host, h->rl_limit, h->rl_window, c->repo);
                    finish(c, e);
                    continue;
                }
                size_t gets = 0;
                for (size_t j = 0; j < nr; j++)
                    gets += sent[j]->op == AL_CALL_MANIFEST_GET && get_host(r, sent[j]->host) == h;
                if ((long)gets >= h->rl_remaining)
                    continue; /* next round, with the updated count */
            }
            if (h->auth == AUTH_BEARER && !c->off_host) {
                /* Wait for the scope's token rather than collect a 401. */
                _cleanup_free_ char *scope = scope_of(c);
                if (find_token(h, scope) == NULL)
                    continue;
            }
            if (h->auth == AUTH_UNKNOWN && c->next_url == NULL) {
                /* Learn the host's auth scheme from one request before
                 * sending the others: no burst of 401s. */
                bool probing = false;
                for (size_t j = 0; j < nr && !probing; j++)
                    probing = strcmp(sent[j]->host, c->host) == 0 && sent[j]->next_url == NULL;
                if (probing)
                    continue;
            }
            al_request_free(c->resp);
            c->resp = NULL;
            reqs[nr] = build_request(r, h, c);
            sent[nr] = c;
            nr++;
        }
        if (nr == 0) {
            bool all_done = true;
            for (size_t i = 0; i < n; i++)
                all_done = all_done && calls[i]->done;
            if (all_done)
                break;
            continue;
        }
        al_engine_run(r->engine, reqs, nr);
        for (size_t k = 0; k < nr; k++) {
            al_call *c = sent[k];
            host_state *h = get_host(r, c->host);
            bool probe_ok = false;
            note_quota(h, reqs[k]);
            bool again = handle_response(r, h, c, reqs[k], &probe_ok);
            if (probe_ok && h->auth == AUTH_UNKNOWN && !c->off_host)
                h->auth = AUTH_NONE;
            c->resp = reqs[k];
            if (again)
                c->done = false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!calls[i]->done) {
            al_error *e = NULL;
            al_error_set(&e, AL_E_HTTP, 0, "%s %s/%s: gave up after %d rounds", method_of(calls[i]),
                         calls[i]->host, calls[i]->repo, MAX_ROUNDS);
            finish(calls[i], e);
        }
    }
    free(reqs);
    free(sent);
    return 0;
}
