/* URL helpers of the registry client (see url.h), on curl's URL parser. */
#include "url.h"

#include <curl/curl.h>
#include <string.h>

#include "util.h"

char *al_url_resolve(const char *base, const char *loc)
{
    CURLU *u = curl_url();
    char *out = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
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

/* scheme://host:port of a URL. */
static char *origin_of(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
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

bool al_url_same_origin(const char *a, const char *b)
{
    _cleanup_free_ char *oa = origin_of(a);
    _cleanup_free_ char *ob = origin_of(b);
    return oa != NULL && ob != NULL && strcmp(oa, ob) == 0;
}
