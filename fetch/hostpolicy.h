/* Where plain HTTP and credentials may go (docs/DESIGN.md, "Security").
 *
 * Plain HTTP is allowed for a local address (localhost, 127.0.0.0/8, ::1),
 * as docker allows it, and for a host named by --insecure-registry. The
 * user's credentials (Basic auth to a registry or a token realm, an
 * identity token, a bearer token) go only over HTTPS, or over plain HTTP
 * to such a host: a TLS registry that names an http:// realm elsewhere
 * gets nothing. */
#ifndef AL_HOSTPOLICY_H
#define AL_HOSTPOLICY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct al_hostpolicy {
    char **insecure_hosts; /* borrowed: --insecure-registry HOST[:PORT] entries */
    size_t n_insecure;
} al_hostpolicy;

/* "localhost", an IPv4 address in 127.0.0.0/8 or "[::1]", with or
 * without ":PORT". By name only: nothing is resolved. */
bool al_host_is_local(const char *hostport);

/* hostport is named by --insecure-registry (exactly, port included). */
bool al_hostpolicy_is_insecure(const al_hostpolicy *p, const char *hostport);

/* Plain HTTP may be used with hostport: local, or --insecure-registry. */
bool al_hostpolicy_plain_http_ok(const al_hostpolicy *p, const char *hostport);

/* Credentials may be sent to url: https, or http to a host that
 * al_hostpolicy_plain_http_ok allows. Any other URL (another scheme, one
 * that does not parse) gets none. */
bool al_hostpolicy_credentials_ok(const al_hostpolicy *p, const char *url);

/* The TLS handshake failed because the peer answered in plain HTTP
 * (OpenSSL's "wrong version number"), judged from curl's error text. */
bool al_tls_error_is_plain_http(const char *curl_message);

/* "host[:port]" of a URL (malloc'd), or NULL when it does not parse. */
char *al_url_hostport(const char *url);

#endif
