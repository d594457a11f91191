/* registries.yaml and hosts.toml for the pushed images (see push-config.h). */
#include "push-config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "util.h"

/* A YAML or TOML double-quoted string: both escape '"' and '\' alike, and
 * names and paths hold no control bytes (a path with one is written with
 * \uXXXX, which both read). */
static char *quoted(const char *s)
{
    size_t n = strlen(s);
    char *out = al_xmalloc(n * 6 + 3);
    char *w = out;
    *w++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *w++ = '\\';
            *w++ = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            w += sprintf(w, "\\u%04x", *p);
        } else {
            *w++ = (char)*p;
        }
    }
    *w++ = '"';
    *w = '\0';
    return out;
}

/* Append to a growing text. */
static void add(char **text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(char **text, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *more = al_xvasprintf(fmt, ap);
    va_end(ap);
    char *t = al_xasprintf("%s%s", *text ? *text : "", more);
    free(*text);
    *text = t;
}

static const char *scheme(const al_push_site *site)
{
    return site->plain_http ? "http" : "https";
}

static void yaml_tls(char **t, const al_push_site *site)
{
    if (site->ca_file == NULL && site->client_cert == NULL && !site->skip_verify)
        return;
    _cleanup_free_ char *host = quoted(site->host);
    add(t, "configs:\n  %s:\n    tls:\n", host);
    if (site->ca_file != NULL) {
        _cleanup_free_ char *ca = quoted(site->ca_file);
        add(t, "      ca_file: %s\n", ca);
    }
    if (site->client_cert != NULL) {
        _cleanup_free_ char *cert = quoted(site->client_cert);
        _cleanup_free_ char *key = quoted(site->client_key ? site->client_key : site->client_cert);
        add(t, "      cert_file: %s\n      key_file: %s\n", cert, key);
    }
    if (site->skip_verify)
        add(t, "      insecure_skip_verify: true\n");
}

char *al_push_registries_yaml(const al_push_site *site, const char *const *upstreams, size_t n)
{
    char *t = NULL;
    add(&t,
        "# k3s/RKE2 registries.yaml, written by airlock-push: the images of these registries\n"
        "# are pulled from %s%s%s, where they were pushed. Credentials for it, when it\n"
        "# wants them, go in configs.\"%s\".auth (airlock-push never writes them).\n"
        "mirrors:\n",
        site->host, site->prefix ? "/" : "", site->prefix ? site->prefix : "", site->host);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *up = quoted(upstreams[i]);
        _cleanup_free_ char *url = al_xasprintf("%s://%s", scheme(site), site->host);
        _cleanup_free_ char *endpoint = quoted(url);
        add(&t, "  %s:\n    endpoint:\n      - %s\n", up, endpoint);
        if (site->prefix != NULL) {
            _cleanup_free_ char *to = al_xasprintf("%s/$1", site->prefix);
            _cleanup_free_ char *rewrite = quoted(to);
            add(&t, "    rewrite:\n      \"^(.*)$\": %s\n", rewrite);
        }
    }
    yaml_tls(&t, site);
    return t;
}

char *al_push_hosts_toml(const al_push_site *site, const char *upstream)
{
    char *t = NULL;
    _cleanup_free_ char *url =
        site->prefix ? al_xasprintf("%s://%s/v2/%s", scheme(site), site->host, site->prefix)
                     : al_xasprintf("%s://%s", scheme(site), site->host);
    _cleanup_free_ char *host = quoted(url);
    add(&t,
        "# containerd hosts.toml, written by airlock-push: %s images are pulled from\n"
        "# %s%s%s, where they were pushed.\n"
        "[host.%s]\n"
        "  capabilities = [\"pull\", \"resolve\"]\n",
        upstream, site->host, site->prefix ? "/" : "", site->prefix ? site->prefix : "", host);
    if (site->prefix != NULL)
        add(&t, "  override_path = true\n");
    if (site->ca_file != NULL) {
        _cleanup_free_ char *ca = quoted(site->ca_file);
        add(&t, "  ca = %s\n", ca);
    }
    if (site->client_cert != NULL) {
        _cleanup_free_ char *cert = quoted(site->client_cert);
        _cleanup_free_ char *key = quoted(site->client_key ? site->client_key : site->client_cert);
        add(&t, "  client = [[%s, %s]]\n", cert, key);
    }
    if (site->skip_verify)
        add(&t, "  skip_verify = true\n");
    return t;
}

static int make_dir(const char *path, al_error **err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return al_error_set(err, AL_E_IO, errno, "mkdir %s", path);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return al_error_set(err, AL_E_IO, errno ? errno : ENOTDIR, "%s is not a directory", path);
    return 0;
}

int al_push_write_hosts_dir(const char *dir, const al_push_site *site, const char *const *upstreams,
                            size_t n, al_error **err)
{
    if (make_dir(dir, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *sub = al_xasprintf("%s/%s", dir, upstreams[i]);
        _cleanup_free_ char *path = al_xasprintf("%s/hosts.toml", sub);
        _cleanup_free_ char *text = al_push_hosts_toml(site, upstreams[i]);
        if (make_dir(sub, err) < 0 || al_file_write_atomic(path, text, strlen(text), err) < 0)
            return -1;
    }
    return 0;
}
