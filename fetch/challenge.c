/* WWW-Authenticate challenges parsed (see challenge.h). */
#include "challenge.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define MAX_HEADER 8192

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* An auth-param's value at *pp: a token, or a quoted string (with
 * backslash escapes). NULL for an unterminated quote. */
static char *parse_value(const char **pp)
{
    const char *p = *pp;
    if (*p != '"') {
        const char *vs = p;
        while (is_token_char(*p) || *p == '/' || *p == ':' || *p == '=')
            p++;
        *pp = p;
        return al_xstrndup(vs, (size_t)(p - vs));
    }
    p++;
    char *buf = al_xmalloc(strlen(p) + 1);
    size_t k = 0;
    while (*p && *p != '"') {
        if (*p == '\\' && p[1])
            p++;
        buf[k++] = *p++;
    }
    if (*p != '"') {
        free(buf);
        return NULL;
    }
    buf[k] = '\0';
    *pp = p + 1;
    return buf;
}

int al_challenge_parse(al_challenge *out, const char *header, al_error **err)
{
    memset(out, 0, sizeof(*out));
    if (header == NULL)
        return al_error_set(err, AL_E_AUTH, 0, "no WWW-Authenticate challenge");
    if (strlen(header) > MAX_HEADER)
        return al_error_set(err, AL_E_PARSE, 0, "WWW-Authenticate header too long");
    const char *p = skip_ws(header);
    const char *s = p;
    while (is_token_char(*p))
        p++;
    size_t slen = (size_t)(p - s);
    if (slen == 6 && strncasecmp(s, "bearer", 6) == 0)
        out->scheme = AL_AUTH_SCHEME_BEARER;
    else if (slen == 5 && strncasecmp(s, "basic", 5) == 0)
        out->scheme = AL_AUTH_SCHEME_BASIC;
    else
        return al_error_set(err, AL_E_AUTH, 0, "unsupported authentication scheme \"%.*s\"",
                            (int)(slen > 40 ? 40 : slen), s);
    /* auth-params: name=token / name="quoted" separated by commas. */
    for (;;) {
        p = skip_ws(p);
        while (*p == ',')
            p = skip_ws(p + 1);
        if (*p == '\0')
            break;
        const char *ns = p;
        while (is_token_char(*p))
            p++;
        size_t nlen = (size_t)(p - ns);
        p = skip_ws(p);
        if (nlen == 0 || *p != '=') {
            /* A second challenge ("Basic, Bearer ...") or junk: stop at the first. */
            if (nlen > 0)
                break;
            al_challenge_dispose(out);
            return al_error_set(err, AL_E_PARSE, 0, "malformed WWW-Authenticate header");
        }
        p = skip_ws(p + 1);
        char *val = parse_value(&p);
        if (val == NULL) {
            al_challenge_dispose(out);
            return al_error_set(err, AL_E_PARSE, 0,
                                "malformed WWW-Authenticate header: unterminated quote");
        }
        char **slot = NULL;
        if (nlen == 5 && strncasecmp(ns, "realm", 5) == 0)
            slot = &out->realm;
        else if (nlen == 7 && strncasecmp(ns, "service", 7) == 0)
            slot = &out->service;
        else if (nlen == 5 && strncasecmp(ns, "scope", 5) == 0)
            slot = &out->scope;
        if (slot != NULL) {
            free(*slot);
            *slot = val;
        } else {
            free(val);
        }
    }
    if (out->scheme == AL_AUTH_SCHEME_BEARER && (out->realm == NULL || *out->realm == '\0')) {
        al_challenge_dispose(out);
        return al_error_set(err, AL_E_PARSE, 0, "Bearer challenge without a realm");
    }
    return 0;
}

void al_challenge_dispose(al_challenge *c)
{
    free(c->realm);
    free(c->service);
    free(c->scope);
    memset(c, 0, sizeof(*c));
}
