/* The transfer engine's loop: libcurl multi, a send queue, timers, posts
 * from worker threads (see engine.h). */
#include "engine.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

/* Bodies of non-2xx responses are kept only up to this size: enough for a
 * registry's JSON error, never a whole HTML page. */
#define ERROR_BODY_CAP (16u * 1024u)

typedef struct xfer {
    al_request *req;
    al_request_done_fn done;
    void *user;
    CURL *easy;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    al_error *sink_err; /* failure inside a callback: the transfer is cut */
    struct al_engine *engine;
    uint64_t seq;      /* send order, among equal priorities */
    struct xfer *next; /* the list of requests that failed to start */
} xfer;

struct al_timer {
    double at;
    uint64_t seq;
    void (*fn)(void *);
    void *user;
    struct al_timer *next;
};

typedef struct post {
    void (*fn)(void *);
    void *user;
    struct post *next;
} post;

struct al_engine {
    al_engine_opts opts;
    CURLM *multi;
    CURLSH *share;
    al_engine_stats stats;
    xfer **queue; /* sent, not started: a binary heap by (priority, seq) */
    size_t n_queue, cap_queue;
    uint64_t send_seq;
    xfer *unstarted; /* curl refused them: completed on the next turn */
    int running;
    al_timer *timers;
    size_t n_timers;
    uint64_t timer_seq;
    int holds;
    pthread_mutex_t post_lock;
    post *posts; /* LIFO under the lock; reversed when run */
    void (*iter_fn)(void *);
    void *iter_user;
};

static void notify(const al_engine *e, al_xfer_event ev, const al_request *r, uint64_t have)
{
    if (e->opts.progress != NULL)
        e->opts.progress(e->opts.progress_user, ev, r, have);
}

void al_engine_progress(al_engine *e, al_xfer_event ev, const al_request *r, uint64_t have)
{
    notify(e, ev, r, have);
}

void al_engine_opts_default(al_engine_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->jobs = 8;
    o->connect_timeout = 30;
    o->low_speed_time = 60;
    o->low_speed_limit = 1024;
    o->max_retries = 4;
    o->max_wait = 60;
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
    e->share = curl_share_init();
    if (e->multi == NULL || e->share == NULL) {
        curl_multi_cleanup(e->multi);
        curl_share_cleanup(e->share);
        free(e);
        return al_error_set(err, AL_E_NET, 0, "curl_multi_init failed");
    }
    /* HTTP/2 multiplexing lets many blob streams share one connection. */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)e->opts.jobs);
    /* DNS and TLS session caches shared by all handles of the run. */
    curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    pthread_mutex_init(&e->post_lock, NULL);
    *out = e;
    return 0;
}

void al_engine_free(al_engine *e)
{
    if (e == NULL)
        return;
    /* al_engine_run returns only when nothing is queued, timed or held. */
    while (e->timers != NULL)
        al_engine_cancel(e, e->timers);
    curl_multi_cleanup(e->multi);
    curl_share_cleanup(e->share);
    pthread_mutex_destroy(&e->post_lock);
    free(e->queue);
    free(e);
}

const al_engine_opts *al_engine_get_opts(const al_engine *e)
{
    return &e->opts;
}

const al_engine_stats *al_engine_get_stats(const al_engine *e)
{
    return &e->stats;
}

al_engine_stats *al_engine_stats_mut(al_engine *e)
{
    return &e->stats;
}

al_request *al_request_new(const char *url)
{
    al_request *r = al_xcalloc(1, sizeof(*r));
    r->url = al_xstrdup(url);
    r->blob_size = -1;
    r->content_length = -1;
    r->range_start = -1;
    r->upload_held = -1;
    r->mem_cap = 64 * 1024;
    return r;
}

const char *al_request_method(const al_request *r)
{
    if (r->method != NULL)
        return r->method;
    return r->head ? "HEAD" : r->post_fields ? "POST" : "GET";
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

/* --- timers and posts ------------------------------------------------------ */

al_timer *al_engine_timer(al_engine *e, double at, void (*fn)(void *), void *user)
{
    al_timer *t = al_xcalloc(1, sizeof(*t));
    t->at = at;
    t->seq = e->timer_seq++;
    t->fn = fn;
    t->user = user;
    t->next = e->timers; /* few at a time (calls waiting to retry): a list */
    e->timers = t;
    e->n_timers++;
    return t;
}

void al_engine_cancel(al_engine *e, al_timer *t)
{
    if (t == NULL)
        return;
    al_timer **link = &e->timers;
    while (*link != t)
        link = &(*link)->next;
    *link = t->next;
    e->n_timers--;
    free(t);
}

/* Run the timers that are due. Those a callback adds wait for the next
 * turn (seq), so a timer set for "now" cannot spin the loop; a callback
 * may cancel any timer, so each one is looked up afresh. */
static void run_timers(al_engine *e)
{
    uint64_t limit = e->timer_seq;
    for (;;) {
        double now = al_mono();
        al_timer *t = e->timers;
        while (t != NULL && (t->at > now || t->seq >= limit))
            t = t->next;
        if (t == NULL)
            return;
        void (*fn)(void *) = t->fn;
        void *user = t->user;
        al_engine_cancel(e, t);
        fn(user);
    }
}

void al_engine_hold(al_engine *e)
{
    e->holds++;
}

void al_engine_post(al_engine *e, void (*fn)(void *), void *user)
{
    post *p = al_xcalloc(1, sizeof(*p));
    p->fn = fn;
    p->user = user;
    pthread_mutex_lock(&e->post_lock);
    p->next = e->posts;
    e->posts = p;
    pthread_mutex_unlock(&e->post_lock);
    curl_multi_wakeup(e->multi);
}

static void run_posts(al_engine *e)
{
    pthread_mutex_lock(&e->post_lock);
    post *list = e->posts;
    e->posts = NULL;
    pthread_mutex_unlock(&e->post_lock);
    post *fifo = NULL; /* oldest first */
    while (list != NULL) {
        post *n = list->next;
        list->next = fifo;
        fifo = list;
        list = n;
    }
    while (fifo != NULL) {
        post *n = fifo->next;
        e->holds--;
        fifo->fn(fifo->user);
        free(fifo);
        fifo = n;
    }
}

void al_engine_on_iteration(al_engine *e, void (*fn)(void *), void *user)
{
    e->iter_fn = fn;
    e->iter_user = user;
}

/* --- callbacks --------------------------------------------------------------- */

static long response_code(xfer *x)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static void append_body(al_request *r, const char *p, size_t n)
{
    r->body = al_xrealloc(r->body, r->body_len + n + 1);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* A non-2xx body: keep the start, stop reading at the cap. */
static size_t error_body(al_request *r, const char *p, size_t n)
{
    if (r->body_len + n > ERROR_BODY_CAP) {
        append_body(r, p, ERROR_BODY_CAP - r->body_len);
        r->body_cut = true;
        return 0; /* cut the transfer: the rest is not worth reading */
    }
    append_body(r, p, n);
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    al_request *r = x->req;
    size_t n = size * nmemb;
    r->status = response_code(x);
    if (r->status < 200 || r->status > 299)
        return error_body(r, p, n);
    if (r->body_fn != NULL) {
        if (r->body_fn(r->body_ctx, r, p, n, &x->sink_err) < 0)
            return 0;
        r->bytes += n;
        x->engine->stats.blob_bytes += n;
        notify(x->engine, AL_XFER_DATA, r, (r->status == 206 ? r->resumed_at : 0) + r->bytes);
        return n;
    }
    if (r->body_len + n > r->mem_cap) {
        al_error_set(&x->sink_err, AL_E_SIZE, 0, "response larger than %zu bytes", r->mem_cap);
        return 0;
    }
    append_body(r, p, n);
    r->bytes += n;
    return n;
}

/* The request body (PUT, PATCH): from the caller's source, or memory. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    xfer *x = userdata;
    al_request *r = x->req;
    uint64_t left = r->send_len > (int64_t)r->sent ? (uint64_t)r->send_len - r->sent : 0;
    size_t cap = size * nitems < left ? size * nitems : (size_t)left;
    size_t n = cap;
    if (cap == 0)
        return 0;
    if (r->send_fn == NULL)
        memcpy(buf, r->send_buf + r->sent, cap);
    else if (r->send_fn(r->send_ctx, r, buf, cap, &n, &x->sink_err) < 0)
        return CURL_READFUNC_ABORT;
    if (n == 0 || n > cap) {
        al_error_set(&x->sink_err, AL_E_IO, 0, "the body's source ended after %llu of %lld bytes",
                     (unsigned long long)r->sent, (long long)r->send_len);
        return CURL_READFUNC_ABORT;
    }
    r->sent += n;
    x->engine->stats.sent_bytes += n;
    if (r->blob_upload)
        notify(x->engine, AL_XFER_DATA, r, r->resumed_at + r->sent);
    return n;
}

/* curl goes back in the body when it sends the request again on a new
 * connection (a kept-alive one that turned out closed). The source is read
 * by position, so going back is only a new position; what was hashed
 * stays hashed (fetch/upload.c hashes each byte once). */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
    xfer *x = userdata;
    if (origin != SEEK_SET || offset < 0 || offset > x->req->send_len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->req->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
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

/* A new response (after 100 Continue, say): forget earlier headers. */
static void forget_headers(al_request *r)
{
    char **slots[] = {&r->content_type, &r->docker_digest,       &r->www_authenticate, &r->location,
                      &r->retry_after,  &r->ratelimit_remaining, &r->ratelimit_limit};
    for (size_t i = 0; i < AL_ARRAY_SIZE(slots); i++) {
        free(*slots[i]);
        *slots[i] = NULL;
    }
    r->content_length = -1;
    r->range_start = -1;
    r->upload_held = -1;
}

void al_request_free(al_request *r)
{
    if (r == NULL)
        return;
    forget_headers(r);
    char *owned[] = {r->url, r->accept, r->range, r->body, r->send_type, r->content_range};
    for (size_t i = 0; i < AL_ARRAY_SIZE(owned); i++)
        free(owned[i]);
    al_free_secret(r->authorization);
    al_free_secret(r->post_fields);
    al_error_free(r->err);
    free(r);
}

/* An upload's Range, "0-N" (or "bytes=0-N"): the registry holds N + 1
 * bytes. distribution says "0-0" both for nothing and for one byte; an
 * upload's offsets are whole chunks, so it means nothing. */
static int64_t upload_range(const char *v)
{
    if (strncmp(v, "bytes=", 6) == 0)
        v += 6;
    char *end;
    long long first = strtoll(v, &end, 10);
    if (end == v || first != 0 || *end != '-')
        return -1;
    const char *last_at = end + 1;
    long long last = strtoll(last_at, &end, 10);
    if (end == last_at || last < 0)
        return -1;
    return last == 0 ? 0 : (int64_t)last + 1;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    al_request *r = x->req;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        forget_headers(r);
        return n;
    }
    set_header(&r->content_type, header_value(p, n, "content-type"));
    set_header(&r->docker_digest, header_value(p, n, "docker-content-digest"));
    set_header(&r->location, header_value(p, n, "location"));
    set_header(&r->retry_after, header_value(p, n, "retry-after"));
    set_header(&r->ratelimit_remaining, header_value(p, n, "ratelimit-remaining"));
    set_header(&r->ratelimit_limit, header_value(p, n, "ratelimit-limit"));
    char *wa = header_value(p, n, "www-authenticate");
    if (wa != NULL && r->www_authenticate == NULL)
        r->www_authenticate = wa; /* keep the first challenge */
    else
        free(wa);
    _cleanup_free_ char *cr = header_value(p, n, "content-range");
    if (cr != NULL && strncmp(cr, "bytes ", 6) == 0)
        r->range_start = strtoll(cr + 6, NULL, 10);
    _cleanup_free_ char *cl = header_value(p, n, "content-length");
    if (cl != NULL)
        r->content_length = strtoll(cl, NULL, 10);
    _cleanup_free_ char *rg = header_value(p, n, "range");
    if (rg != NULL)
        r->upload_held = upload_range(rg);
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

/* --- one request ---------------------------------------------------------------- */

static void add_header(xfer *x, const char *name, const char *value)
{
    if (value == NULL)
        return;
    _cleanup_free_ char *hd = al_xasprintf("%s: %s", name, value);
    x->headers = curl_slist_append(x->headers, hd);
    explicit_bzero(hd, strlen(hd)); /* it may be an Authorization */
}

static void set_tls(CURL *h, const al_request *r)
{
    if (r->ca_pem != NULL) {
        struct curl_blob blob = {
            .data = (void *)r->ca_pem, .len = r->ca_pem_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (r->client_cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, r->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, r->client_key);
    }
    if (r->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

static void set_callbacks(CURL *h, xfer *x, bool debug)
{
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    if (debug) {
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    }
}

/* POST (a form, or nothing), PUT and PATCH (a body of send_len bytes). */
static void set_method(xfer *x)
{
    const al_request *r = x->req;
    CURL *h = x->easy;
    bool is_post = r->post_fields != NULL || (r->method != NULL && strcmp(r->method, "POST") == 0);
    if (is_post) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->post_fields ? r->post_fields : "");
        return;
    }
    if (r->method == NULL)
        return;
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    if (strcmp(r->method, "PUT") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, x);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->send_len);
    /* No "Expect: 100-continue": a chunk goes at once, without waiting a
     * second for a proxy that never answers 100. Auth is settled before a
     * body is sent (the registry's gate), so a refused body is rare. */
    x->headers = curl_slist_append(x->headers, "Expect:");
}

static void xfer_setup(al_engine *e, xfer *x)
{
    al_request *r = x->req;
    CURL *h = x->easy;
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    set_callbacks(h, x, e->opts.debug_http);
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
    set_method(x);
    set_tls(h, r);
    add_header(x, "Accept", r->accept);
    add_header(x, "Authorization", r->authorization);
    add_header(x, "Range", r->range);
    add_header(x, "Content-Type", r->send_type);
    add_header(x, "Content-Range", r->content_range);
    if (x->headers != NULL)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
}

/* --- the queue: a binary heap ------------------------------------------------------ */

static bool before(const xfer *a, const xfer *b)
{
    if (a->req->priority != b->req->priority)
        return a->req->priority < b->req->priority;
    return a->seq < b->seq;
}

static void heap_push(al_engine *e, xfer *x)
{
    if (e->n_queue == e->cap_queue) {
        e->cap_queue = e->cap_queue ? 2 * e->cap_queue : 64;
        e->queue = al_xrealloc(e->queue, e->cap_queue * sizeof(*e->queue));
    }
    size_t i = e->n_queue++;
    while (i > 0 && before(x, e->queue[(i - 1) / 2])) {
        e->queue[i] = e->queue[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->queue[i] = x;
}

static xfer *heap_pop(al_engine *e)
{
    xfer *top = e->queue[0];
    xfer *last = e->queue[--e->n_queue];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= e->n_queue)
            break;
        if (c + 1 < e->n_queue && before(e->queue[c + 1], e->queue[c]))
            c++;
        if (!before(e->queue[c], last))
            break;
        e->queue[i] = e->queue[c];
        i = c;
    }
    if (e->n_queue > 0)
        e->queue[i] = last;
    return top;
}

void al_engine_send(al_engine *e, al_request *r, al_request_done_fn done, void *user)
{
    xfer *x = al_xcalloc(1, sizeof(*x));
    x->req = r;
    x->done = done;
    x->user = user;
    x->engine = e;
    x->seq = e->send_seq++;
    heap_push(e, x);
    notify(e, AL_XFER_QUEUED, r, 0);
}

static void xfer_free(xfer *x)
{
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    al_error_free(x->sink_err);
    free(x);
}

/* Every header value a caller gives (Accept, Authorization, Range,
 * Content-Type, Content-Range) is
 * checked before anything goes on the wire: a CR or LF in it, from a token
 * server say, would add headers of its own. A request that fails the
 * check is refused, not sent. */
static int check_headers(const al_request *r, al_error **err)
{
    const char *const names[] = {"Accept", "Authorization", "Range", "Content-Type",
                                 "Content-Range"};
    const char *const values[] = {r->accept, r->authorization, r->range, r->send_type,
                                  r->content_range};
    for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; p && *p; p++) {
            if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
                _cleanup_free_ char *url = al_url_redact(r->url);
                return al_error_set(err, AL_E_HTTP, 0,
                                    "%s %s: not sent: the %s header value holds a control byte",
                                    al_request_method(r), url, names[i]);
            }
        }
    }
    return 0;
}

/* Start the first queued request; when it may not go, or curl refuses
 * it, it completes with that error on the next turn. */
static void start_one(al_engine *e)
{
    xfer *x = heap_pop(e);
    CURLMcode mc = CURLM_OK;
    if (check_headers(x->req, &x->sink_err) == 0 && (x->easy = curl_easy_init()) != NULL) {
        xfer_setup(e, x);
        mc = curl_multi_add_handle(e->multi, x->easy);
    }
    if (x->sink_err != NULL || x->easy == NULL || mc != CURLM_OK) {
        if (x->sink_err == NULL) {
            _cleanup_free_ char *url = al_url_redact(x->req->url);
            al_error_set(&x->sink_err, AL_E_NET, 0, "%s: cannot start the transfer: %s", url,
                         x->easy == NULL ? "curl_easy_init failed" : curl_multi_strerror(mc));
        }
        x->next = e->unstarted;
        e->unstarted = x;
        return;
    }
    e->running++;
    notify(e, AL_XFER_START, x->req, x->req->resumed_at);
}

/* A request ended: fill in what the caller needs, then hand it over. */
static void xfer_finish(al_engine *e, xfer *x, CURLcode code)
{
    al_request *r = x->req;
    if (x->easy != NULL) {
        r->status = response_code(x);
        curl_off_t connect_us = 0;
        curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        r->connected = connect_us > 0 || r->status > 0;
    }
    /* Count what the server answered: a TLS handshake refused by a plain
     * HTTP host, say, is no request. */
    if (r->status > 0)
        e->stats.requests++;
    r->transport_code = (int)code;
    const char *method = al_request_method(r);
    _cleanup_free_ char *url = al_url_redact(r->url);
    if (x->sink_err != NULL) {
        /* Our own callback refused: size cap, disk, a wrong range. */
        r->err = al_steal_ptr(&x->sink_err);
        al_error_wrap(&r->err, "%s %s", method, url);
    } else if (code == CURLE_WRITE_ERROR && r->body_cut) {
        r->transport_code = 0; /* an error answer whose body we chose not to read */
    } else if (code != CURLE_OK) {
        al_error_set(&r->err, AL_E_NET, 0, "%s %s: %s", method, url,
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
    }
    x->done(r, x->user);
}

/* Requests that never went on the wire: their error says why already. */
static void drain_unstarted(al_engine *e)
{
    while (e->unstarted != NULL) {
        xfer *x = e->unstarted;
        e->unstarted = x->next;
        x->req->transport_code = CURLE_FAILED_INIT;
        x->req->err = al_steal_ptr(&x->sink_err);
        x->done(x->req, x->user);
        xfer_free(x);
    }
}

static void drain_done(al_engine *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(e->multi, x->easy);
        e->running--;
        xfer_finish(e, x, code);
        xfer_free(x);
    }
}

static double earliest_timer(const al_engine *e)
{
    double next = -1;
    for (const al_timer *t = e->timers; t != NULL; t = t->next)
        if (next < 0 || t->at < next)
            next = t->at;
    return next;
}

static bool busy(const al_engine *e)
{
    return e->n_queue > 0 || e->unstarted != NULL || e->running > 0 || e->n_timers > 0 ||
           e->holds > 0;
}

/* How long the loop may sleep: until the next timer, at most a second,
 * and 100 ms when a progress display redraws on a timer. */
static int poll_timeout(const al_engine *e, double next_timer)
{
    int ms = 1000;
    if (next_timer >= 0) {
        double d = (next_timer - al_mono()) * 1000.0;
        ms = d < 1 ? 1 : d > 1000 ? 1000 : (int)d + 1;
    }
    if (e->opts.progress != NULL && ms > 100)
        ms = 100;
    return ms;
}

int al_engine_run(al_engine *e)
{
    while (busy(e)) {
        run_timers(e);
        run_posts(e);
        while (e->n_queue > 0 && e->running < e->opts.jobs)
            start_one(e);
        drain_unstarted(e);
        int still = 0;
        curl_multi_perform(e->multi, &still);
        drain_done(e);
        notify(e, AL_XFER_TICK, NULL, 0);
        if (e->iter_fn != NULL)
            e->iter_fn(e->iter_user);
        if (!busy(e))
            break;
        if (e->n_queue > 0 && e->running < e->opts.jobs)
            continue; /* callbacks sent more: start them now */
        curl_multi_poll(e->multi, NULL, 0, poll_timeout(e, earliest_timer(e)), NULL);
    }
    notify(e, AL_XFER_IDLE, NULL, 0);
    return 0;
}
