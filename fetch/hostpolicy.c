/* Host policy: which hosts may be spoken to in plain HTTP, and where credentials may go. */
#include "hostpolicy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* The host part of "host[:port]" or "[v6]:port", into buf. */
static bool host_part(const char *hostport, char *buf, size_t len)
{
    const char *end;
    if (hostport[0] == '[') {
        end = strchr(hostport, ']');
        if (end == NULL)
            return false;
        hostport++;
    } else {
        end = strchr(hostport, ':');
        if (end == NULL)
            end = hostport + strlen(hostport);
    }
    size_t n = (size_t)(end - hostport);
    if (n == 0 || n >= len)
        return false;
    memcpy(buf, hostport, n);
    buf[n] = '\0';
    return true;
}

bool al_host_is_local(const char *hostport)
{
    char host[256];
    if (hostport == NULL || !host_part(hostport, host, sizeof(host)))
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    unsigned char a4[4], a6[16];
    if (inet_pton(AF_INET, host, a4) == 1)
        return a4[0] == 127;
    if (inet_pton(AF_INET6, host, a6) == 1) {
        static const unsigned char loop6[16] = {[15] = 1};
        return memcmp(a6, loop6, sizeof(loop6)) == 0;
    }
    return false;
}

bool al_hostpolicy_is_insecure(const al_hostpolicy *p, const char *hostport)
{
    for (size_t i = 0; i < p->n_insecure; i++)
        if (strcmp(p->insecure_hosts[i], hostport) == 0)
            return true;
    return false;
}

bool al_hostpolicy_plain_http_ok(const al_hostpolicy *p, const char *hostport)
{
    return al_host_is_local(hostport) || al_hostpolicy_is_insecure(p, hostport);
}

char *al_url_hostport(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        out = port ? al_xasprintf("%s:%s", host, port) : al_xstrdup(host);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

bool al_hostpolicy_credentials_ok(const al_hostpolicy *p, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    bool ok = false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK) {
        if (strcmp(scheme, "https") == 0) {
            ok = true;
        } else if (strcmp(scheme, "http") == 0) {
            _cleanup_free_ char *hp = al_url_hostport(url);
            ok = hp != NULL && al_hostpolicy_plain_http_ok(p, hp);
        }
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

bool al_tls_error_is_plain_http(const char *msg)
{
    /* OpenSSL reads "HTTP/1.1 400" as a TLS record of an unknown version
     * (1.1.1 and 3.x say "wrong version number"; older ones "unknown
     * protocol" or "packet length too long"). */
    return msg != NULL && (strstr(msg, "wrong version number") != NULL ||
                           strstr(msg, "unknown protocol") != NULL ||
                           strstr(msg, "packet length too long") != NULL);
}
