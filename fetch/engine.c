#include "engine.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

/* Bodies of non-2xx responses are kept only up to this size: enough for a
 * registry's JSON error, never a whole HTML page. */
#define ERROR_BODY_CAP (16u * 1024u)
#define BACKOFF_BASE 0.5
#define BACKOFF_CAP 20.0

typedef struct xfer {
    al_request *req;
    CURL *easy;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    al_blob_writer *writer;
    al_error *sink_err;  /* failure inside a callback: abort the transfer */
    double not_before;   /* monotonic time before which a retry may not start */
    double retry_after;  /* from the Retry-After header, seconds, or -1 */
    int64_t range_start; /* from Content-Range of a 206, or -1 */
    uint64_t resumed_at; /* bytes of the blob we asked the server to skip */
    bool bad_range;      /* the 206 did not start where we asked */
    bool fresh_retry;    /* retry once without the partial file */
    bool in_flight;
    bool done;
    struct al_engine *engine; /* for the progress hook (borrowed) */
} xfer;

struct al_engine {
    al_engine_opts opts;
    CURLM *multi;
    CURLSH *share;
    al_engine_stats stats;
};

/* The progress hook (al_engine_opts.progress), checked in one place. */
static void notify(const al_engine *e, al_xfer_event ev, const al_request *r, uint64_t have)
{
    if (e->opts.progress != NULL)
        e->opts.progress(e->opts.progress_user, ev, r, have);
}

void al_engine_opts_default(al_engine_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->jobs = 8;
    o->connect_timeout = 30;
    o->low_speed_time = 60;
    o->low_speed_limit = 1024;
    o->max_retries = 4;
}

int al_engine_new(al_engine **out, const al_engine_opts *opts, al_error **err)
{
    static bool inited;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return al_error_set(err, AL_E_NET, 0, "curl_global_init failed");
        inited = true;
    }
    al_engine *e = al_xcalloc(1, sizeof(*e));
    e->opts = *opts;
    if (e->opts.jobs < 1)
        e->opts.jobs = 1;
    e->multi = curl_multi_init();
    if (e->multi == NULL) {
        free(e);
        return al_error_set(err, AL_E_NET, 0, "curl_multi_init failed");
    }
    /* HTTP/2 multiplexing lets many blob streams share one connection. */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)e->opts.jobs);
    /* DNS and TLS session caches shared by all handles of the run. */
    e->share = curl_share_init();
    curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *out = e;
    return 0;
}

void al_engine_free(al_engine *e)
{
    if (e == NULL)
        return;
    curl_multi_cleanup(e->multi);
    curl_share_cleanup(e->share);
    free(e);
}

const al_engine_stats *al_engine_get_stats(const al_engine *e)
{
    return &e->stats;
}

al_request *al_request_new(const char *url)
{
    al_request *r = al_xcalloc(1, sizeof(*r));
    r->url = al_xstrdup(url);
    r->blob_size = -1;
    r->content_length = -1;
    r->mem_cap = 64 * 1024;
    return r;
}

void al_request_reset_output(al_request *r)
{
    r->status = 0;
    free(r->content_type);
    free(r->docker_digest);
    free(r->www_authenticate);
    free(r->location);
    free(r->body);
    free(r->ratelimit_remaining);
    free(r->ratelimit_limit);
    r->content_type = r->docker_digest = r->www_authenticate = r->location = r->body = NULL;
    r->ratelimit_remaining = r->ratelimit_limit = NULL;
    r->body_len = 0;
    r->bytes = 0;
    r->content_length = -1;
    al_error_clear(&r->err);
}

void al_request_free(al_request *r)
{
    if (r == NULL)
        return;
    al_request_reset_output(r);
    free(r->url);
    free(r->accept);
    if (r->authorization != NULL)
        memset(r->authorization, 0, strlen(r->authorization));
    free(r->authorization);
    if (r->post_fields != NULL)
        memset(r->post_fields, 0, strlen(r->post_fields));
    free(r->post_fields);
    free(r);
}

char *al_url_redact(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    const char *path = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(path - host));
    if (at != NULL)
        host = at + 1;
    size_t path_len = strcspn(path, "?#");
    return al_xasprintf("%.*s%.*s%.*s", scheme_end ? (int)(scheme_end + 3 - url) : 0, url,
                        (int)(path - host), host, (int)path_len, path);
}

/* --- callbacks --------------------------------------------------------- */

static long response_code(xfer *x)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static void append_body(al_request *r, const char *p, size_t n, size_t cap)
{
    if (r->body_len >= cap)
        return;
    if (n > cap - r->body_len)
        n = cap - r->body_len;
    r->body = al_xrealloc(r->body, r->body_len + n + 1);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    al_request *r = x->req;
    size_t n = size * nmemb;
    long code = response_code(x);
    if (code < 200 || code > 299) {
        append_body(r, p, n, ERROR_BODY_CAP);
        return n;
    }
    r->bytes += n;
    if (r->store != NULL) {
        if (x->writer == NULL)
            return 0; /* the partial file could not be opened: sink_err says why */
        if (x->resumed_at > 0 && al_blob_writer_resumed_at(x->writer) > 0) {
            if (code == 200) {
                /* The server ignored our Range and sends everything. */
                if (al_blob_writer_restart(x->writer, &x->sink_err) < 0)
                    return 0;
            } else if (x->range_start != (int64_t)x->resumed_at) {
                x->bad_range = true;
                return 0;
            }
        }
        if (al_blob_writer_write(x->writer, p, n, &x->sink_err) < 0)
            return 0;
        notify(x->engine, AL_XFER_DATA, r, al_blob_writer_written(x->writer));
        return n;
    }
    if (r->body_len + n > r->mem_cap) {
        al_error_set(&x->sink_err, AL_E_SIZE, 0, "response larger than %zu bytes", r->mem_cap);
        return 0;
    }
    append_body(r, p, n, r->mem_cap);
    return n;
}

static char *header_value(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return al_xstrndup(v, (size_t)(end - v));
}

static void set_header(char **slot, char *value)
{
    if (value == NULL)
        return;
    free(*slot);
    *slot = value;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    al_request *r = x->req;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, say): forget earlier headers. */
        free(r->content_type), r->content_type = NULL;
        free(r->docker_digest), r->docker_digest = NULL;
        free(r->www_authenticate), r->www_authenticate = NULL;
        free(r->location), r->location = NULL;
        x->retry_after = -1;
        x->range_start = -1;
        return n;
    }
    set_header(&r->content_type, header_value(p, n, "content-type"));
    set_header(&r->docker_digest, header_value(p, n, "docker-content-digest"));
    set_header(&r->location, header_value(p, n, "location"));
    set_header(&r->ratelimit_remaining, header_value(p, n, "ratelimit-remaining"));
    set_header(&r->ratelimit_limit, header_value(p, n, "ratelimit-limit"));
    char *wa = header_value(p, n, "www-authenticate");
    if (wa != NULL && r->www_authenticate == NULL)
        r->www_authenticate = wa; /* keep the first challenge */
    else
        free(wa);
    _cleanup_free_ char *ra = header_value(p, n, "retry-after");
    if (ra != NULL) {
        char *end;
        double secs = strtod(ra, &end);
        if (end != ra && *end == '\0' && secs >= 0)
            x->retry_after = secs > 300 ? 300 : secs;
        else
            x->retry_after = 5; /* an HTTP date: be modest rather than parse it */
    }
    _cleanup_free_ char *cr = header_value(p, n, "content-range");
    if (cr != NULL && strncmp(cr, "bytes ", 6) == 0)
        x->range_start = strtoll(cr + 6, NULL, 10);
    char *cl = header_value(p, n, "content-length");
    if (cl != NULL) {
        r->content_length = strtoll(cl, NULL, 10);
        free(cl);
    }
    return n;
}

/* AL_DEBUG_HTTP: curl's trace, with credentials cut out of header lines. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userdata)
{
    (void)h;
    (void)userdata;
    if (type != CURLINFO_TEXT && type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
        return 0;
    const char *prefix = type == CURLINFO_TEXT ? "* " : type == CURLINFO_HEADER_IN ? "< " : "> ";
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        /* Redact wherever the header name shows up: curl's HTTP/2 text
         * lines ("h2h3 [authorization: ...]") carry it too. */
        const char *a = memmem(p, len, "uthorization", 12);
        if (a != NULL && a > p && (a[-1] == 'a' || a[-1] == 'A'))
            fprintf(stderr, "%s%.*s: <redacted>\n", prefix, (int)(a + 12 - p), p);
        else if (len > 0)
            fprintf(stderr, "%s%.*s\n", prefix, (int)len, p);
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* --- the loop ------------------------------------------------------------ */

static void xfer_setup(al_engine *e, xfer *x)
{
    al_request *r = x->req;
    al_request_reset_output(r);
    x->errbuf[0] = '\0';
    x->retry_after = -1;
    al_error_clear(&x->sink_err);
    if (x->easy == NULL)
        x->easy = curl_easy_init();
    else
        curl_easy_reset(x->easy);
    CURL *h = x->easy;
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, e->share);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, e->opts.connect_timeout);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, e->opts.low_speed_time);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, e->opts.low_speed_limit);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "airlock/0.1");
    /* We check digests ourselves; transparent decoding would change bytes. */
    curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    if (r->head)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (r->ca_pem != NULL) {
        struct curl_blob blob = {
            .data = (void *)r->ca_pem, .len = r->ca_pem_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (r->client_cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, r->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, r->client_key);
    }
    if (r->post_fields != NULL)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->post_fields);
    if (r->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (e->opts.debug_http) {
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    }
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    if (r->accept != NULL) {
        _cleanup_free_ char *hd = al_xasprintf("Accept: %s", r->accept);
        x->headers = curl_slist_append(x->headers, hd);
    }
    if (r->authorization != NULL) {
        _cleanup_free_ char *hd = al_xasprintf("Authorization: %s", r->authorization);
        x->headers = curl_slist_append(x->headers, hd);
    }
    x->resumed_at = 0;
    x->bad_range = false;
    x->range_start = -1;
    if (r->store != NULL && !r->head) {
        /* Continue a download cut earlier, in this run or a previous one. */
        if (x->fresh_retry) {
            al_blob_writer *old = NULL;
            uint64_t off = 0;
            if (al_store_blob_resume(&old, r->store, r->blob_digest, r->blob_size, &off, NULL) == 0)
                al_blob_writer_restart(old, NULL);
            al_blob_writer_abort(old);
            x->fresh_retry = false;
        }
        if (al_store_blob_resume(&x->writer, r->store, r->blob_digest, r->blob_size, &x->resumed_at,
                                 &x->sink_err) == 0 &&
            x->resumed_at > 0) {
            _cleanup_free_ char *hd =
                al_xasprintf("Range: bytes=%llu-", (unsigned long long)x->resumed_at);
            x->headers = curl_slist_append(x->headers, hd);
            al_debug("resuming %s at byte %llu", r->blob_digest, (unsigned long long)x->resumed_at);
        }
    }
    if (x->headers != NULL)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
}

static bool transient_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_COULDNT_RESOLVE_HOST: return true;
    default: return false;
    }
}

static bool transient_status(long s)
{
    return s == 408 || s == 429 || (s >= 500 && s <= 599 && s != 501);
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

/* A transfer ended: turn curl's and the sink's outcome into the request's
 * result. Returns true when it should be retried. */
static bool xfer_finish(al_engine *e, xfer *x, CURLcode code)
{
    al_request *r = x->req;
    r->status = response_code(x);
    r->transport_code = (int)code;
    /* Count what the server answered: a TLS handshake refused by a plain
     * HTTP --insecure-registry, say, is no request. */
    if (r->status > 0)
        e->stats.requests++;
    bool ok2xx = r->status >= 200 && r->status <= 299;
    _cleanup_free_ char *url = al_url_redact(r->url);
    if (x->bad_range && r->attempts <= e->opts.max_retries) {
        /* A 206 for another range than asked: drop the partial, start over. */
        al_blob_writer_abort(x->writer);
        x->writer = NULL;
        x->fresh_retry = true;
        return true;
    }
    if (x->sink_err != NULL) {
        /* Our own write callback refused: size cap, disk. Not transient. */
        al_blob_writer_abort(x->writer);
        x->writer = NULL;
        r->err = x->sink_err;
        x->sink_err = NULL;
        al_error_wrap(&r->err, "GET %s", url);
        return false;
    }
    if (r->status == 416 && x->resumed_at > 0 && r->attempts <= e->opts.max_retries) {
        al_blob_writer_abort(x->writer);
        x->writer = NULL;
        x->fresh_retry = true;
        return true;
    }
    if (code != CURLE_OK) {
        /* Keep what arrived: the retry (or the next run) continues from it. */
        al_blob_writer_suspend(x->writer);
        x->writer = NULL;
        bool retry = transient_curl(code) && r->attempts <= e->opts.max_retries;
        al_errc ec = AL_E_NET;
        al_error_set(&r->err, ec, 0, "%s %s: %s", r->head ? "HEAD" : "GET", url,
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
        return retry;
    }
    if (transient_status(r->status) && r->attempts <= e->opts.max_retries) {
        al_blob_writer_suspend(x->writer);
        x->writer = NULL;
        return true;
    }
    if (ok2xx && r->store != NULL && !r->head && x->writer != NULL) {
        al_blob_writer *w = x->writer;
        x->writer = NULL;
        bool resumed = al_blob_writer_resumed_at(w) > 0;
        e->stats.blob_bytes += r->bytes;
        if (al_blob_writer_commit(w, &r->err) < 0) {
            /* A resumed download whose digest fails may carry a bad
             * prefix from before a crash: one fresh try. */
            if (resumed && r->err->code == AL_E_DIGEST && r->attempts <= e->opts.max_retries) {
                al_error_clear(&r->err);
                return true;
            }
            al_error_wrap(&r->err, "GET %s", url);
            return false;
        }
    } else {
        /* 3xx, 4xx: the partial stays for the redirected or later attempt. */
        al_blob_writer_suspend(x->writer);
        x->writer = NULL;
    }
    return false;
}

/* Every header value a caller gives (Accept, Authorization) is checked
 * before anything goes on the wire: a CR or LF in it, from a token server
 * say, would add headers of its own. (Range is formatted here from a
 * number.) A request that fails the check is refused, not sent. */
static int check_headers(const al_request *r, al_error **err)
{
    const char *const names[] = {"Accept", "Authorization"};
    const char *const values[] = {r->accept, r->authorization};
    for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; p && *p; p++) {
            if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
                _cleanup_free_ char *url = al_url_redact(r->url);
                return al_error_set(err, AL_E_HTTP, 0,
                                    "%s %s: not sent: the %s header value holds a control byte",
                                    r->head ? "HEAD" : "GET", url, names[i]);
            }
        }
    }
    return 0;
}

static void xfer_start(al_engine *e, xfer *x)
{
    x->req->attempts++;
    xfer_setup(e, x);
    curl_multi_add_handle(e->multi, x->easy);
    x->in_flight = true;
    notify(e, AL_XFER_START, x->req, x->resumed_at);
}

int al_engine_run(al_engine *e, al_request **reqs, size_t n)
{
    if (n == 0)
        return 0;
    xfer *xs = al_xcalloc(n, sizeof(*xs));
    size_t next = 0, remaining = n;
    for (size_t i = 0; i < n; i++) {
        xs[i].req = reqs[i];
        reqs[i]->attempts = 0;
        xs[i].engine = e;
        notify(e, AL_XFER_QUEUED, reqs[i], 0);
        al_request_reset_output(reqs[i]);
        if (check_headers(reqs[i], &reqs[i]->err) < 0) {
            xs[i].done = true;
            remaining--;
            notify(e, AL_XFER_DONE, reqs[i], 0);
        }
    }
    int running = 0;
    /* Requests waiting for a retry are rescanned from `retry_scan`. */
    while (remaining > 0) {
        double now = al_mono();
        double wake = -1;
        /* Refill: retries whose time has come first, then new requests. */
        for (size_t i = 0; i < next && running < e->opts.jobs; i++) {
            xfer *x = &xs[i];
            if (x->done || x->in_flight)
                continue;
            if (x->not_before <= now) {
                xfer_start(e, x);
                running++;
            } else if (wake < 0 || x->not_before < wake) {
                wake = x->not_before;
            }
        }
        while (next < n && running < e->opts.jobs) {
            xfer *x = &xs[next++];
            if (x->done)
                continue; /* refused by check_headers */
            xfer_start(e, x);
            running++;
        }
        int timeout_ms = 1000;
        if (wake >= 0) {
            double ms = (wake - now) * 1000.0;
            timeout_ms = ms < 1 ? 1 : ms > 1000 ? 1000 : (int)ms;
        }
        /* A progress display redraws on a timer: wake at least every 100 ms. */
        int max_wait_ms = e->opts.progress != NULL ? 100 : 1000000;
        if (timeout_ms > max_wait_ms)
            timeout_ms = max_wait_ms;
        int still = 0;
        curl_multi_perform(e->multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode code = msg->data.result;
            curl_multi_remove_handle(e->multi, x->easy);
            x->in_flight = false;
            running--;
            bool retry = xfer_finish(e, x, code);
            notify(e, retry ? AL_XFER_RETRY : AL_XFER_DONE, x->req, x->req->bytes);
            if (retry) {
                double delay = x->retry_after >= 0 ? x->retry_after : backoff(x->req->attempts);
                x->not_before = al_mono() + delay;
                e->stats.retries++;
                _cleanup_free_ char *url = al_url_redact(x->req->url);
                al_debug("retry %d of %s in %.1fs (%s)", x->req->attempts, url, delay,
                         x->req->err ? x->req->err->msg : "HTTP status");
                al_error_clear(&x->req->err);
            } else {
                x->done = true;
                remaining--;
            }
        }
        notify(e, AL_XFER_TICK, NULL, 0);
        if (remaining > 0 && running > 0)
            curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
        else if (remaining > 0 && running == 0 && wake >= 0) {
            double ms = (wake - al_mono()) * 1000.0;
            int wait_ms = ms > max_wait_ms ? max_wait_ms : (int)ms + 1;
            if (ms > 0)
                curl_multi_poll(e->multi, NULL, 0, wait_ms, NULL);
        }
    }
    for (size_t i = 0; i < n; i++) {
        curl_easy_cleanup(xs[i].easy);
        curl_slist_free_all(xs[i].headers);
        al_error_free(xs[i].sink_err);
    }
    free(xs);
    notify(e, AL_XFER_IDLE, NULL, 0);
    return 0;
}
