/* The scripted HTTP/1.1 server of the unit tests (see scripted-server.h). */
#include "scripted-server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "digest.h"

typedef struct rule_state {
    ts_rule r;
    int hits;
    int seen; /* matching requests, answered or let pass (`after`) */
} rule_state;

/* One upload session of TS_UPLOAD. */
typedef struct upload {
    char *data;
    size_t len, cap;
    bool done;
} upload;

#define MAX_UPLOADS 256

struct ts_server {
    int lfd[2];
    int port[2];
    char host[2][32];
    int stop_pipe[2];
    pthread_t accept_thread;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    rule_state *rules;
    size_t n_rules;
    ts_request *log;
    size_t n_log, cap_log;
    int accepts;
    int active;
    bool stopping;
    bool tls_hang_up;
    upload uploads[MAX_UPLOADS];
    int n_uploads;
    char (*completed)[AL_DIGEST_BUF];
    int n_completed;
    char *last_body;
    size_t last_body_len;
};

typedef struct conn {
    ts_server *s;
    int fd;
    int listener;
} conn;

static int listen_on(const char *addr, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        perror("scripted server: bind");
        abort();
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* --- requests ------------------------------------------------------------------- */

/* Wait until fd has data; false when the server stops first. */
static bool readable(ts_server *s, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop_pipe[0], .events = POLLIN}};
    while (poll(p, 2, -1) < 0)
        if (errno != EINTR)
            return false;
    return !(p[1].revents & POLLIN);
}

static ssize_t read_some(ts_server *s, int fd, char *buf, size_t n)
{
    return readable(s, fd) ? read(fd, buf, n) : -1;
}

/* Read one request head (up to the blank line) and its body into *buf
 * (grown as needed; *cap its size), *len bytes in all; false at EOF. */
static bool read_request(ts_server *s, int fd, char **buf, size_t *cap, size_t *len)
{
    size_t n = 0, want = 0;
    for (;;) {
        (*buf)[n] = '\0';
        char *end = want == 0 ? strstr(*buf, "\r\n\r\n") : NULL;
        if (end != NULL) {
            size_t head = (size_t)(end + 4 - *buf);
            const char *cl = strcasestr(*buf, "\r\ncontent-length:");
            want = head + (cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (want > 0 && n >= want) {
            *len = n;
            return true;
        }
        if (n + 65536 + 1 > *cap) {
            *cap = (n + 65536 + 1) * 2;
            *buf = realloc(*buf, *cap);
        }
        ssize_t r = read_some(s, fd, *buf + n, 65536);
        if (r <= 0)
            return false;
        n += (size_t)r;
        if ((*buf)[0] == 0x16) {
            /* A TLS handshake on this plain HTTP socket: say so the way
             * plain servers do, and hang up (curl: "wrong version number"). */
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            if (!s->tls_hang_up)
                send(fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL);
            return false;
        }
    }
}

static void header_copy(const char *buf, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    char pat[64];
    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    const char *h = strcasestr(buf, pat);
    if (h == NULL)
        return;
    h += strlen(pat);
    while (*h == ' ')
        h++;
    size_t n = strcspn(h, "\r\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, h, n);
    out[n] = '\0';
}

static void parse_request(const char *buf, size_t len, int listener, ts_request *q)
{
    memset(q, 0, sizeof(*q));
    sscanf(buf, "%15s %1023s", q->method, q->path);
    header_copy(buf, "Authorization", q->auth, sizeof(q->auth));
    header_copy(buf, "Range", q->range, sizeof(q->range));
    header_copy(buf, "Content-Range", q->content_range, sizeof(q->content_range));
    header_copy(buf, "Content-Type", q->content_type, sizeof(q->content_type));
    const char *end = strstr(buf, "\r\n\r\n");
    q->body_len = end ? len - (size_t)(end + 4 - buf) : 0;
    q->listener = listener;
}

static bool auth_matches(const char *want, const char *have)
{
    if (want == NULL)
        return true;
    if (*want == '\0')
        return *have == '\0';
    if (strcmp(want, "~") == 0)
        return *have != '\0';
    if (*want == '!')
        return strcmp(want + 1, have) != 0;
    return strcmp(want, have) == 0;
}

/* The rule for q (a copy), counting its hit; false: none matched. */
static bool pick_rule(ts_server *s, const ts_request *q, ts_rule *out)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    if (s->n_log == s->cap_log) {
        s->cap_log = s->cap_log ? 2 * s->cap_log : 64;
        s->log = realloc(s->log, s->cap_log * sizeof(*s->log));
    }
    s->log[s->n_log++] = *q;
    for (size_t i = 0; i < s->n_rules && !found; i++) {
        rule_state *rs = &s->rules[i];
        const ts_rule *r = &rs->r;
        if ((r->method && strcmp(r->method, q->method) != 0) ||
            (r->path && strstr(q->path, r->path) == NULL) ||
            (r->listener >= 0 && r->listener != q->listener) || !auth_matches(r->auth, q->auth))
            continue;
        if (rs->seen++ < r->after || (r->times > 0 && rs->hits >= r->times))
            continue;
        rs->hits++;
        *out = *r;
        found = true;
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* --- answers ------------------------------------------------------------------------ */

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* "%PORT%" and "%ALT%" replaced by the listeners' ports (malloc'd). */
static char *expand(const ts_server *s, const char *t)
{
    size_t cap = strlen(t) * 2 + 64, n = 0;
    char *out = malloc(cap);
    while (*t) {
        if (strncmp(t, "%PORT%", 6) == 0 || strncmp(t, "%ALT%", 5) == 0) {
            bool alt = t[1] == 'A';
            n += (size_t)snprintf(out + n, cap - n, "%d", s->port[alt]);
            t += alt ? 5 : 6;
        } else {
            out[n++] = *t++;
        }
        if (n + 16 >= cap)
            out = realloc(out, cap *= 2);
    }
    out[n] = '\0';
    return out;
}

static const char *reason(int status)
{
    return status < 300   ? "OK"
           : status < 400 ? "Redirect"
           : status < 500 ? "Client Error"
                          : "Server Error";
}

/* Sleep up to ms, or until the server stops. */
static void nap(ts_server *s, int ms)
{
    struct pollfd p = {.fd = s->stop_pipe[0], .events = POLLIN};
    poll(&p, 1, ms);
}

/* Answer q by rule r; false: close the connection afterwards. */
static bool answer(ts_server *s, int fd, const ts_request *q, const ts_rule *r)
{
    if (r->action == TS_CLOSE)
        return false;
    /* A body with a length is binary: sent as it is. */
    char *body;
    size_t len;
    if (r->body != NULL && r->body_len > 0) {
        len = r->body_len;
        body = malloc(len);
        memcpy(body, r->body, len);
    } else {
        body = r->body ? expand(s, r->body) : calloc(1, 1);
        len = strlen(body);
    }
    int status = r->status ? r->status : 200;
    size_t from = 0;
    char extra[256] = "";
    if (r->ranges && strncmp(q->range, "bytes=", 6) == 0 && status == 200) {
        from = strtoul(q->range + 6, NULL, 10);
        if (from > len)
            from = len;
        status = 206;
        snprintf(extra, sizeof(extra), "Content-Range: bytes %zu-%zu/%zu\r\n", from,
                 len ? len - 1 : 0, len);
    }
    char *headers = expand(s, r->headers ? r->headers : "");
    char head[4096];
    int hn = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                      status, reason(status), len - from, extra, headers);
    free(headers);
    write_all(fd, head, (size_t)hn);
    bool head_only = strcmp(q->method, "HEAD") == 0;
    size_t send_n = head_only ? 0 : len - from;
    if (r->action == TS_RESET || r->action == TS_STALL)
        send_n = r->cut < send_n ? r->cut : send_n;
    write_all(fd, body + from, send_n);
    free(body);
    if (r->action == TS_STALL)
        nap(s, r->stall_ms);
    if (r->action == TS_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    return r->action == TS_RESPOND;
}

/* --- TS_UPLOAD: a registry's upload endpoint ---------------------------------------- */

static void keep_body(ts_server *s, const char *body, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&s->lock);
    free(s->last_body);
    s->last_body = malloc(n);
    memcpy(s->last_body, body, n);
    s->last_body_len = n;
    pthread_mutex_unlock(&s->lock);
}

/* One answer; with close, "Connection: close" (the caller then closes). */
static void reply(int fd, bool close, int status, const char *headers, const char *body)
{
    char head[2048];
    int hn =
        snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
                 reason(status), strlen(body), headers, close ? "Connection: close\r\n" : "");
    write_all(fd, head, (size_t)hn);
    write_all(fd, body, strlen(body));
}

static void append(upload *u, const char *p, size_t n)
{
    if (u->len + n + 1 > u->cap) {
        u->cap = (u->len + n + 1) * 2;
        u->data = realloc(u->data, u->cap);
    }
    memcpy(u->data + u->len, p, n);
    u->len += n;
}

/* "/v2/REPO/blobs/uploads/u7?_state=N": session 7, state N (-1: none). */
static upload *session_of(ts_server *s, const char *path, long *state)
{
    const char *u = strstr(path, "/blobs/uploads/u");
    const char *st = strstr(path, "_state=");
    *state = st ? strtol(st + 7, NULL, 10) : -1;
    if (u == NULL)
        return NULL;
    int id = atoi(u + 16);
    return id >= 0 && id < s->n_uploads ? &s->uploads[id] : NULL;
}

/* Location and Range of a session; the Location is relative, or on the
 * alt listener (alt_port > 0). */
static void session_headers(char *out, size_t cap, const char *path, int id, size_t len,
                            int alt_port)
{
    const char *up = strstr(path, "/blobs/uploads/");
    char origin[64] = "";
    if (alt_port > 0)
        snprintf(origin, sizeof(origin), "http://127.0.0.2:%d", alt_port);
    snprintf(out, cap, "Location: %s%.*s/blobs/uploads/u%d?_state=%zu\r\nRange: 0-%zu\r\n", origin,
             (int)(up - path), path, id, len, len > 0 ? len - 1 : 0);
}

static const char *const invalid_body =
    "{\"errors\":[{\"code\":\"BLOB_UPLOAD_INVALID\",\"message\":\"blob upload invalid\"}]}";

/* PUT ?digest=: the data must hash to it. */
static void complete(ts_server *s, int fd, bool cl, upload *u, const char *path)
{
    const char *d = strstr(path, "digest=");
    char got[AL_DIGEST_BUF], hdr[160];
    al_digest_bytes(got, u->data ? u->data : "", u->len);
    if (d == NULL || strncmp(d + 7, got, AL_DIGEST_LEN) != 0) {
        reply(fd, cl, 400, "", "{\"errors\":[{\"code\":\"DIGEST_INVALID\"}]}");
        return;
    }
    u->done = true;
    s->completed = realloc(s->completed, (size_t)(s->n_completed + 1) * sizeof(*s->completed));
    memcpy(s->completed[s->n_completed++], got, AL_DIGEST_BUF);
    snprintf(hdr, sizeof(hdr), "Docker-Content-Digest: %s\r\n", got);
    reply(fd, cl, 201, hdr, "");
}

/* Answer q as a registry's upload endpoint; false: close the connection. */
static bool upload_answer(ts_server *s, int fd, const ts_request *q, const ts_rule *r,
                          const char *body)
{
    char hdr[1400];
    pthread_mutex_lock(&s->lock);
    long state;
    upload *u = session_of(s, q->path, &state);
    bool go_on = !r->close_after;
    bool cl = r->close_after;
    int alt = r->elsewhere ? s->port[1] : 0;
    if (strcmp(q->method, "POST") == 0 && r->mount && strstr(q->path, "mount=") != NULL) {
        reply(fd, cl, 201, "", "");
    } else if (strcmp(q->method, "POST") == 0 && s->n_uploads < MAX_UPLOADS) {
        int id = s->n_uploads++;
        memset(&s->uploads[id], 0, sizeof(upload));
        session_headers(hdr, sizeof(hdr), q->path, id, 0, alt);
        reply(fd, cl, 202, hdr, "");
    } else if (u == NULL || u->done || (state >= 0 && (size_t)state != u->len)) {
        reply(fd, cl, 404, "", invalid_body); /* distribution: the state says another size */
    } else if (r->drop) {
        append(u, body, r->cut < q->body_len ? r->cut : q->body_len);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        go_on = false;
    } else if (strcmp(q->method, "GET") == 0) {
        session_headers(hdr, sizeof(hdr), q->path, (int)(u - s->uploads), u->len, alt);
        reply(fd, cl, 204, hdr, "");
    } else if (strcmp(q->method, "PATCH") == 0 && strtoul(q->content_range, NULL, 10) != u->len) {
        reply(fd, cl, 416, "", "{\"errors\":[{\"code\":\"BLOB_UPLOAD_INVALID\"}]}");
    } else if (strcmp(q->method, "PATCH") == 0) {
        append(u, body, q->body_len);
        session_headers(hdr, sizeof(hdr), q->path, (int)(u - s->uploads), u->len, alt);
        reply(fd, cl, 202, hdr, "");
    } else {
        append(u, body, q->body_len);
        complete(s, fd, cl, u, q->path);
    }
    pthread_mutex_unlock(&s->lock);
    return go_on;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    ts_server *s = c->s;
    size_t cap = 1 << 17, len;
    char *buf = malloc(cap);
    while (!s->stopping && read_request(s, c->fd, &buf, &cap, &len)) {
        ts_request q;
        parse_request(buf, len, c->listener, &q);
        keep_body(s, buf + len - q.body_len, q.body_len);
        ts_rule r = {0}; /* pick_rule fills it; gcc -O2 cannot see that */
        if (!pick_rule(s, &q, &r))
            r = (ts_rule){.status = 404, .body = "{\"errors\":[{\"code\":\"NOT_SCRIPTED\"}]}"};
        if (r.delay_ms > 0)
            nap(s, r.delay_ms);
        bool go_on = r.action == TS_UPLOAD ? upload_answer(s, c->fd, &q, &r, buf + len - q.body_len)
                                           : answer(s, c->fd, &q, &r);
        if (!go_on)
            break;
    }
    free(buf);
    close(c->fd);
    pthread_mutex_lock(&s->lock);
    s->active--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    free(c);
    return NULL;
}

/* --- the server ---------------------------------------------------------------------- */

static void *accept_main(void *arg)
{
    ts_server *s = arg;
    for (;;) {
        struct pollfd p[3] = {{.fd = s->stop_pipe[0], .events = POLLIN},
                              {.fd = s->lfd[0], .events = POLLIN},
                              {.fd = s->lfd[1], .events = POLLIN}};
        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        for (int l = 0; l < 2; l++) {
            if (!(p[l + 1].revents & POLLIN))
                continue;
            int fd = accept4(s->lfd[l], NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            conn *c = calloc(1, sizeof(*c));
            c->s = s;
            c->fd = fd;
            c->listener = l;
            pthread_mutex_lock(&s->lock);
            s->accepts++;
            s->active++;
            pthread_mutex_unlock(&s->lock);
            pthread_t t;
            pthread_create(&t, NULL, conn_main, c);
            pthread_detach(t);
        }
    }
    return NULL;
}

ts_server *ts_start(void)
{
    ts_server *s = calloc(1, sizeof(*s));
    s->lfd[0] = listen_on("127.0.0.1", &s->port[0]);
    s->lfd[1] = listen_on("127.0.0.2", &s->port[1]);
    snprintf(s->host[0], sizeof(s->host[0]), "127.0.0.1:%d", s->port[0]);
    snprintf(s->host[1], sizeof(s->host[1]), "127.0.0.2:%d", s->port[1]);
    if (pipe2(s->stop_pipe, O_CLOEXEC) < 0)
        abort();
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_create(&s->accept_thread, NULL, accept_main, s);
    return s;
}

void ts_stop(ts_server *s)
{
    if (s == NULL)
        return;
    s->stopping = true;
    if (write(s->stop_pipe[1], "x", 1) != 1) /* wakes every poll on the other end */
        abort();
    pthread_join(s->accept_thread, NULL);
    close(s->lfd[0]);
    close(s->lfd[1]);
    pthread_mutex_lock(&s->lock);
    while (s->active > 0) /* connection threads see the pipe or their peer's close */
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    free(s->rules);
    free(s->log);
    for (int i = 0; i < s->n_uploads; i++)
        free(s->uploads[i].data);
    free(s->completed);
    free(s->last_body);
    free(s);
}

int ts_port(const ts_server *s)
{
    return s->port[0];
}

int ts_alt_port(const ts_server *s)
{
    return s->port[1];
}

const char *ts_host(const ts_server *s)
{
    return s->host[0];
}

const char *ts_alt_host(const ts_server *s)
{
    return s->host[1];
}

void ts_set_rules(ts_server *s, const ts_rule *rules, size_t n)
{
    pthread_mutex_lock(&s->lock);
    free(s->rules);
    s->rules = calloc(n ? n : 1, sizeof(*s->rules));
    for (size_t i = 0; i < n; i++)
        s->rules[i].r = rules[i];
    s->n_rules = n;
    s->n_log = 0;
    for (int i = 0; i < s->n_uploads; i++)
        free(s->uploads[i].data);
    s->n_uploads = 0;
    s->n_completed = 0;
    pthread_mutex_unlock(&s->lock);
}

void ts_swap_rules(ts_server *s, const ts_rule *rules, size_t n)
{
    pthread_mutex_lock(&s->lock);
    free(s->rules);
    s->rules = calloc(n ? n : 1, sizeof(*s->rules));
    for (size_t i = 0; i < n; i++)
        s->rules[i].r = rules[i];
    s->n_rules = n;
    pthread_mutex_unlock(&s->lock);
}

static int count(ts_server *s, const char *method, const char *path, int listener, bool auth)
{
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_log; i++) {
        const ts_request *q = &s->log[i];
        if ((method && strcmp(method, q->method) != 0) || (path && !strstr(q->path, path)) ||
            (listener >= 0 && listener != q->listener) || (auth && q->auth[0] == '\0'))
            continue;
        n++;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

int ts_count(ts_server *s, const char *method, const char *path, int listener)
{
    return count(s, method, path, listener, false);
}

int ts_count_auth(ts_server *s, const char *method, const char *path, int listener)
{
    return count(s, method, path, listener, true);
}

int ts_accepts(ts_server *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->accepts;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool ts_request_at(ts_server *s, size_t i, ts_request *out)
{
    pthread_mutex_lock(&s->lock);
    bool ok = i < s->n_log;
    if (ok)
        *out = s->log[i];
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void ts_on_tls(ts_server *s, bool hang_up)
{
    s->tls_hang_up = hang_up;
}

int ts_dead_port(void)
{
    int port;
    int fd = listen_on("127.0.0.1", &port);
    close(fd); /* nothing listens there now */
    return port;
}

int ts_uploads_completed(ts_server *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->n_completed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool ts_upload_has(ts_server *s, const char *digest)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_completed && !found; i++)
        found = strcmp(s->completed[i], digest) == 0;
    pthread_mutex_unlock(&s->lock);
    return found;
}

size_t ts_last_body(ts_server *s, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->last_body_len < cap - 1 ? s->last_body_len : cap - 1;
    if (s->last_body != NULL)
        memcpy(buf, s->last_body, n);
    buf[n] = '\0';
    size_t len = s->last_body_len;
    pthread_mutex_unlock(&s->lock);
    return len;
}
