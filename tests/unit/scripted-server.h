/* A scripted HTTP/1.1 server for the unit tests of the transfer engine,
 * the registry client and the plan: real sockets on 127.0.0.1 (and a
 * second listener on 127.0.0.2, "another host" for redirects), one thread
 * per connection, keep-alive, and answers chosen by rules:
 *
 *   {.method = "GET", .path = "/v2/a/blobs/", .times = 1, .action = TS_RESET, .cut = 100}
 *
 * The first rule that matches a request and has not used up its `times`
 * answers it. Headers and bodies may name the server: "%PORT%" and
 * "%ALT%" become the two listeners' ports. Every request is logged (method,
 * path, listener, Authorization, Range) for the tests to count. */
#ifndef AL_SCRIPTED_SERVER_H
#define AL_SCRIPTED_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    TS_RESPOND, /* status, headers, body */
    TS_CLOSE,   /* close the connection without a word (curl: "empty reply") */
    TS_RESET,   /* send the headers and `cut` body bytes, then a TCP reset */
    TS_STALL,   /* send the headers and `cut` body bytes, then wait stall_ms and close */
} ts_action;

typedef struct ts_rule {
    const char *method; /* NULL: any */
    const char *path;   /* a substring of the path; NULL: any */
    /* NULL: any; "": no Authorization; "~": some; "!X": anything but X; else exactly X */
    const char *auth;
    int listener; /* 0 main, 1 alt, -1 any */
    int times;    /* answers this many requests, then lets them pass; 0: no limit */
    ts_action action;
    int status;          /* default 200 */
    const char *headers; /* "Name: value\r\n..." */
    const char *body;    /* NULL: empty */
    size_t body_len;     /* 0: strlen(body) */
    bool ranges;         /* answer "Range: bytes=N-" with a 206 of the rest */
    size_t cut;
    int stall_ms;
} ts_rule;

typedef struct ts_request {
    char method[16];
    char path[1024];
    char auth[1024];
    char range[128];
    int listener;
} ts_request;

typedef struct ts_server ts_server;

ts_server *ts_start(void);
void ts_stop(ts_server *s); /* accepts NULL */
int ts_port(const ts_server *s);
int ts_alt_port(const ts_server *s);
/* "127.0.0.1:PORT" (static buffer per server). */
const char *ts_host(const ts_server *s);
const char *ts_alt_host(const ts_server *s);

/* Replace the rules (copied; their strings are borrowed until the next
 * call) and forget the log. */
void ts_set_rules(ts_server *s, const ts_rule *rules, size_t n);
/* Requests matching method/path substring/listener (NULL, NULL, -1: all). */
int ts_count(ts_server *s, const char *method, const char *path, int listener);
/* The same, carrying an Authorization header. */
int ts_count_auth(ts_server *s, const char *method, const char *path, int listener);
/* Connections accepted so far (both listeners). */
int ts_accepts(ts_server *s);
/* A copy of request i of the log (false when there is none). */
bool ts_request_at(ts_server *s, size_t i, ts_request *out);

/* What a TLS handshake meets on these plain sockets: by default a plain
 * "HTTP/1.1 400" (curl: "wrong version number", a registry speaking plain
 * HTTP); with hang_up, the connection closed without a word (a TLS
 * failure of another kind). */
void ts_on_tls(ts_server *s, bool hang_up);

/* A port on 127.0.0.1 where nothing listens: connections are refused. */
int ts_dead_port(void);

#endif
