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
 * path, listener, Authorization, Range, Content-Range, body length) for the
 * tests to count.
 *
 * TS_UPLOAD plays a registry's blob upload endpoint, as distribution 2.8
 * does it: POST .../blobs/uploads/ opens a session (202, Location
 * ".../uploads/uN?_state=OFFSET"); PATCH appends a chunk whose
 * Content-Range starts where the session is; GET says where it is (204,
 * "Range: 0-N"); PUT ?digest= appends its body and completes the blob
 * when the data hashes to the digest (201, Docker-Content-Digest). A
 * request whose _state is not the session's size (a chunk was cut inside,
 * and its part kept) is answered 404 BLOB_UPLOAD_INVALID. With `drop`, a
 * PATCH or PUT keeps `cut` bytes of its body and the connection is reset
 * without an answer (a cut inside a chunk). POST ?mount= answers 201 when
 * `mount` is set, else opens a session. */
#ifndef AL_SCRIPTED_SERVER_H
#define AL_SCRIPTED_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    TS_RESPOND, /* status, headers, body */
    TS_CLOSE,   /* close the connection without a word (curl: "empty reply") */
    TS_RESET,   /* send the headers and `cut` body bytes, then a TCP reset */
    TS_STALL,   /* send the headers and `cut` body bytes, then wait stall_ms and close */
    TS_UPLOAD,  /* a registry's upload endpoint (above) */
} ts_action;

typedef struct ts_rule {
    const char *method; /* NULL: any */
    const char *path;   /* a substring of the path; NULL: any */
    /* NULL: any; "": no Authorization; "~": some; "!X": anything but X; else exactly X */
    const char *auth;
    int listener; /* 0 main, 1 alt, -1 any */
    int times;    /* answers this many requests, then lets them pass; 0: no limit */
    int after;    /* lets this many matching requests pass before it answers */
    ts_action action;
    int status;          /* default 200 */
    const char *headers; /* "Name: value\r\n..." */
    const char *body;    /* NULL: empty */
    size_t body_len;     /* 0: strlen(body) */
    bool ranges;         /* answer "Range: bytes=N-" with a 206 of the rest */
    size_t cut;
    int stall_ms;
    bool drop;        /* TS_UPLOAD: keep `cut` bytes of the body, then reset */
    bool mount;       /* TS_UPLOAD: POST ?mount= mounts (201) */
    bool elsewhere;   /* TS_UPLOAD: Locations name the alt listener (another host) */
    bool close_after; /* TS_UPLOAD: answer with "Connection: close" and close: the next
                         request opens a new connection (curl resends a request that
                         met a closed kept-alive one by itself) */
    int delay_ms;     /* wait before answering */
} ts_rule;

typedef struct ts_request {
    char method[16];
    char path[1024];
    char auth[1024];
    char range[128];
    char content_range[64];
    char content_type[128];
    size_t body_len;
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
/* Replace the rules only: the log and TS_UPLOAD's sessions stay (a new
 * run of the client against the same registry). */
void ts_swap_rules(ts_server *s, const ts_rule *rules, size_t n);
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

/* TS_UPLOAD: blobs completed (201) so far, and whether digest is one. */
int ts_uploads_completed(ts_server *s);
bool ts_upload_has(ts_server *s, const char *digest);
/* The body of the last request that carried one (a manifest PUT), copied
 * into buf (NUL-terminated, cut at cap - 1); its length. */
size_t ts_last_body(ts_server *s, char *buf, size_t cap);

#endif
