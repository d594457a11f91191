/* Image reference parsing with docker's normalisation.
 *
 * The grammar is docker/distribution's, checked by hand instead of with
 * regular expressions so that each failure can say which part is wrong.
 * Parsing runs in reading order: split the text into name, tag and digest,
 * then check the name (registry, then path), the tag and the digest, and
 * report the first problem found. */
#include "ref.h"
#include "digest.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128
#define DOCKER_DOMAIN "docker.io"
#define LEGACY_DOCKER_DOMAIN "index.docker.io"
#define DOCKER_ENDPOINT "registry-1.docker.io"
#define OFFICIAL_PREFIX "library/"
/* Longest input quoted whole in an error message; longer ones are cut. */
#define QUOTE_MAX 100
#define QUOTE_KEEP 80

/* Our own classifiers: <ctype.h> depends on the locale. */
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c);
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
    return is_alnum(c) || c == '_';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The input as it may appear in a message: printable ASCII only, and cut
 * when huge (a list line can be 4 KiB of junk). */
static char *quote_text(const char *s)
{
    size_t n = strlen(s);
    size_t show = n > QUOTE_MAX ? QUOTE_KEEP : n;
    char *q = al_xmalloc(show + 4);
    for (size_t i = 0; i < show; i++)
        q[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (show < n)
        memcpy(q + show, "...", 4);
    else
        q[show] = '\0';
    return q;
}

static int fail(al_error **err, const char *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(al_error **err, const char *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *reason = al_xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *q = quote_text(s);
    return al_error_set(err, AL_E_USAGE, 0, "invalid reference \"%s\": %s", q, reason);
}

/* A piece of the input, for "%.*s" in messages. */
typedef struct {
    const char *p;
    size_t n;
} span;

static char *span_quote(span sp)
{
    _cleanup_free_ char *tmp = al_xstrndup(sp.p, sp.n);
    return quote_text(tmp);
}

/* domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool domain_component_ok(const char *c, size_t n)
{
    if (n == 0 || !is_alnum(c[0]) || !is_alnum(c[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_alnum(c[i]) && c[i] != '-')
            return false;
    return true;
}

/* registry := (host | "[" ipv6 "]") [":" port]. Returns a malloc'd reason,
 * or NULL when valid. Upper case is allowed here: docker's grammar does,
 * and hostnames are case-insensitive anyway. */
static char *check_domain(span d)
{
    _cleanup_free_ char *q = span_quote(d);
    size_t i = 0;
    if (d.n > 0 && d.p[0] == '[') {
        const char *close = memchr(d.p, ']', d.n);
        if (close == NULL)
            return al_xasprintf("registry \"%s\": unterminated IPv6 address", q);
        size_t end = (size_t)(close - d.p);
        if (end == 1)
            return al_xasprintf("registry \"%s\": empty IPv6 address", q);
        for (size_t k = 1; k < end; k++)
            if (!is_hex(d.p[k]) && d.p[k] != ':')
                return al_xasprintf("registry \"%s\": invalid IPv6 address", q);
        i = end + 1;
    } else {
        size_t host_end = 0;
        while (host_end < d.n && d.p[host_end] != ':')
            host_end++;
        size_t start = 0;
        for (size_t k = 0; k <= host_end; k++) {
            if (k < host_end && d.p[k] != '.')
                continue;
            if (!domain_component_ok(d.p + start, k - start))
                return al_xasprintf(
                    "registry \"%s\": invalid host name (letters, digits and '-' between dots)", q);
            start = k + 1;
        }
        i = host_end;
    }
    if (i == d.n)
        return NULL;
    if (d.p[i] != ':')
        return al_xasprintf("registry \"%s\": unexpected text after the host", q);
    size_t digits = d.n - i - 1;
    if (digits == 0)
        return al_xasprintf("registry \"%s\": empty port", q);
    unsigned long port = 0;
    for (size_t k = i + 1; k < d.n; k++) {
        if (!is_digit(d.p[k]))
            return al_xasprintf("registry \"%s\": port must be a number", q);
        /* Cap early so a long run of digits cannot overflow. */
        if (port <= 65535)
            port = port * 10 + (unsigned long)(d.p[k] - '0');
    }
    /* Stricter than docker's grammar (any digits): a port that cannot
     * exist is better refused here, before any network traffic. */
    if (port == 0 || port > 65535)
        return al_xasprintf("registry \"%s\": port out of range", q);
    return NULL;
}

/* path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
 * Returns a malloc'd reason, or NULL when valid. */
static char *check_path_component(span c)
{
    if (c.n == 0)
        return al_xstrdup("empty path component");
    _cleanup_free_ char *q = span_quote(c);
    if (!is_lower_alnum(c.p[0]))
        return al_xasprintf("path component \"%s\" must start with a letter or digit", q);
    if (!is_lower_alnum(c.p[c.n - 1]))
        return al_xasprintf("path component \"%s\" must end with a letter or digit", q);
    size_t i = 0;
    while (i < c.n) {
        while (i < c.n && is_lower_alnum(c.p[i]))
            i++;
        if (i == c.n)
            break;
        if (c.p[i] == '.') {
            i++;
        } else if (c.p[i] == '_') {
            i++;
            if (i < c.n && c.p[i] == '_')
                i++;
        } else if (c.p[i] == '-') {
            while (i < c.n && c.p[i] == '-')
                i++;
        } else {
            return al_xasprintf("path component \"%s\": invalid character '%c'", q,
                                c.p[i] >= 0x20 && c.p[i] < 0x7f ? c.p[i] : '?');
        }
        /* The end is alphanumeric (checked above), so i < c.n here. */
        if (!is_lower_alnum(c.p[i]))
            return al_xasprintf("path component \"%s\": invalid separator (use '.', '_', "
                                "'__' or dashes between letters and digits)",
                                q);
    }
    return NULL;
}

static bool span_has_upper(span sp)
{
    for (size_t i = 0; i < sp.n; i++)
        if (sp.p[i] >= 'A' && sp.p[i] <= 'Z')
            return true;
    return false;
}

/* Characters that may appear anywhere in a reference. Checking them first
 * turns "busy box" or a stray control byte into a clear message. */
static bool ref_char_ok(char c)
{
    return is_word(c) || c == '.' || c == '-' || c == '/' || c == ':' || c == '@' || c == '[' ||
           c == ']';
}

static bool is_hex64_id(const char *s, size_t n)
{
    if (n != AL_DIGEST_HEX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return true;
}

/* The first path component names a registry when it looks like a host:
 * it has a '.' or a ':' (port), is an IPv6 literal, or is "localhost".
 * Otherwise the whole name is a Docker Hub repository. */
static bool looks_like_domain(span c)
{
    return memchr(c.p, '.', c.n) != NULL || memchr(c.p, ':', c.n) != NULL ||
           (c.n > 0 && c.p[0] == '[') || (c.n == 9 && memcmp(c.p, "localhost", 9) == 0);
}

int al_ref_parse(al_ref **out, const char *s, al_error **err)
{
    *out = NULL;
    if (s == NULL || *s == '\0')
        return fail(err, "", "empty reference");
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        if (ref_char_ok(s[i]))
            continue;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            return fail(err, s, "invalid character '%c' at position %zu", c, i + 1);
        return fail(err, s, "invalid byte 0x%02x at position %zu", c, i + 1);
    }
    if (is_hex64_id(s, len))
        return fail(err, s, "a 64-character hex string is an image ID, not a repository name");

    /* Split: name [":" tag] ["@" digest]. The name and tag never contain
     * '@'; the tag is after the last ':' that follows the last '/', so a
     * registry port ("host:5000/x") is not taken for a tag. */
    const char *at = strchr(s, '@');
    size_t name_tag_len = at ? (size_t)(at - s) : len;
    const char *slash = memrchr(s, '/', name_tag_len);
    const char *after_slash = slash ? slash + 1 : s;
    const char *colon = memrchr(after_slash, ':', name_tag_len - (size_t)(after_slash - s));
    span name = {s, colon ? (size_t)(colon - s) : name_tag_len};
    span tag = {NULL, 0};
    if (colon)
        tag = (span){colon + 1, name_tag_len - name.n - 1};

    if (name.n == 0)
        return fail(err, s, "empty repository name");

    /* Registry, then path. */
    span domain = {NULL, 0};
    span path = name;
    const char *first_slash = memchr(name.p, '/', name.n);
    if (first_slash != NULL) {
        span first = {name.p, (size_t)(first_slash - name.p)};
        if (looks_like_domain(first)) {
            domain = first;
            path = (span){first_slash + 1, name.n - first.n - 1};
        }
    } else if (name.p[0] == '[') {
        return fail(err, s, "missing repository path after the registry");
    }
    if (domain.p != NULL) {
        _cleanup_free_ char *why = check_domain(domain);
        if (why)
            return fail(err, s, "%s", why);
        if (path.n == 0)
            return fail(err, s, "missing repository path after the registry");
    }
    /* docker checks case before the grammar: the message is the one users
     * know, and it is the real problem in "Busybox" or "rancher/Pause". */
    if (span_has_upper(path))
        return fail(err, s, "repository name must be lowercase");
    size_t start = 0;
    for (size_t k = 0; k <= path.n; k++) {
        if (k < path.n && path.p[k] != '/')
            continue;
        _cleanup_free_ char *why = check_path_component((span){path.p + start, k - start});
        if (why)
            return fail(err, s, "%s", why);
        start = k + 1;
    }

    if (colon) {
        if (tag.n == 0)
            return fail(err, s, "empty tag after ':'");
        if (tag.n > TAG_MAX_LEN)
            return fail(err, s, "tag longer than %d characters", TAG_MAX_LEN);
        bool ok = is_word(tag.p[0]);
        for (size_t k = 1; ok && k < tag.n; k++)
            ok = is_word(tag.p[k]) || tag.p[k] == '.' || tag.p[k] == '-';
        if (!ok) {
            _cleanup_free_ char *q = span_quote(tag);
            return fail(err, s,
                        "invalid tag \"%s\" (letters, digits, '_', '.' and '-', not starting "
                        "with '.' or '-')",
                        q);
        }
    }

    if (at) {
        if (at[1] == '\0')
            return fail(err, s, "empty digest after '@'");
        al_error *derr = NULL;
        if (al_digest_check(at + 1, &derr) < 0) {
            int r = fail(err, s, "%s", derr ? derr->msg : "invalid digest");
            al_error_free(derr);
            return r;
        }
    }

    /* Normalise: the legacy Hub name, then the implicit "library/". */
    _cleanup_free_ char *dom = NULL;
    if (domain.p == NULL || (domain.n == strlen(LEGACY_DOCKER_DOMAIN) &&
                             memcmp(domain.p, LEGACY_DOCKER_DOMAIN, domain.n) == 0))
        dom = al_xstrdup(DOCKER_DOMAIN);
    else
        dom = al_xstrndup(domain.p, domain.n);
    _cleanup_free_ char *pth = NULL;
    if (strcmp(dom, DOCKER_DOMAIN) == 0 && memchr(path.p, '/', path.n) == NULL)
        pth = al_xasprintf(OFFICIAL_PREFIX "%.*s", (int)path.n, path.p);
    else
        pth = al_xstrndup(path.p, path.n);

    size_t name_len = strlen(dom) + 1 + strlen(pth);
    if (name_len > NAME_MAX_LEN)
        return fail(err, s, "repository name too long (%zu characters, max %d)", name_len,
                    NAME_MAX_LEN);

    al_ref *r = al_xcalloc(1, sizeof(*r));
    r->domain = al_steal_ptr(&dom);
    r->path = al_steal_ptr(&pth);
    if (colon)
        r->tag = al_xstrndup(tag.p, tag.n);
    else if (!at)
        r->tag = al_xstrdup("latest");
    if (at)
        r->digest = al_xstrdup(at + 1);
    *out = r;
    return 0;
}

void al_ref_free(al_ref *r)
{
    if (r == NULL)
        return;
    free(r->domain);
    free(r->path);
    free(r->tag);
    free(r->digest);
    free(r);
}

al_ref *al_ref_dup(const al_ref *r)
{
    if (r == NULL)
        return NULL;
    al_ref *d = al_xcalloc(1, sizeof(*d));
    d->domain = al_xstrdup(r->domain);
    d->path = al_xstrdup(r->path);
    d->tag = r->tag ? al_xstrdup(r->tag) : NULL;
    d->digest = r->digest ? al_xstrdup(r->digest) : NULL;
    return d;
}

char *al_ref_name(const al_ref *r)
{
    return al_xasprintf("%s/%s", r->domain, r->path);
}

static char *with_suffix(const char *name, const al_ref *r)
{
    return al_xasprintf("%s%s%s%s%s", name, r->tag ? ":" : "", r->tag ? r->tag : "",
                        r->digest ? "@" : "", r->digest ? r->digest : "");
}

char *al_ref_full(const al_ref *r)
{
    _cleanup_free_ char *name = al_ref_name(r);
    return with_suffix(name, r);
}

/* docker's FamiliarString: drop "docker.io/", and "library/" when a single
 * component follows it ("library/a/b" keeps its prefix, as in docker).
 * Unlike docker, a Hub path whose first component looks like a registry
 * ("docker.io/localhost/x", "docker.io/a.b/c") keeps "docker.io/": without
 * it the familiar form would name another registry when parsed again. */
char *al_ref_familiar(const al_ref *r)
{
    if (strcmp(r->domain, DOCKER_DOMAIN) != 0)
        return al_ref_full(r);
    const char *slash = strchr(r->path, '/');
    if (slash != NULL && looks_like_domain((span){r->path, (size_t)(slash - r->path)}))
        return al_ref_full(r);
    const char *p = r->path;
    size_t plen = strlen(OFFICIAL_PREFIX);
    if (strncmp(p, OFFICIAL_PREFIX, plen) == 0 && strchr(p + plen, '/') == NULL)
        p += plen;
    return with_suffix(p, r);
}

const char *al_ref_endpoint_host(const al_ref *r)
{
    if (strcmp(r->domain, DOCKER_DOMAIN) == 0)
        return DOCKER_ENDPOINT;
    return r->domain;
}
