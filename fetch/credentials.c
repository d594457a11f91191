/* Registry credentials from flags, auth.json, config.json and credential helpers (see
 * credentials.h). */
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define CONFIG_MAX (4u * 1024u * 1024u)
#define HELPER_OUTPUT_MAX (64u * 1024u)

extern char **environ;

typedef struct entry {
    char *host; /* normalised key: host[:port] */
    al_cred cred;
    bool containers; /* from a containers auth.json: outranks docker's helpers */
} entry;

typedef struct helper_map {
    char *host;
    char *helper;
    char *origin;
} helper_map;

typedef struct cache_slot {
    char *host;
    al_cred *cred; /* NULL: none */
} cache_slot;

struct al_creds {
    al_cred *cli;
    entry *entries; /* in precedence order: auth.json first, then config.json */
    size_t n;
    helper_map *helpers; /* credHelpers */
    size_t n_helpers;
    char *store_helper; /* credsStore */
    char *store_origin;
    cache_slot *cache;
    size_t n_cache;
};

static void cred_dispose(al_cred *c)
{
    al_free_secret(c->user);
    al_free_secret(c->password);
    al_free_secret(c->identity_token);
    free(c->origin);
    memset(c, 0, sizeof(*c));
}

/* "https://index.docker.io/v1/" -> "index.docker.io"; "host:5000/" -> "host:5000". */
static char *normalise_key(const char *key)
{
    const char *p = strstr(key, "://");
    p = p ? p + 3 : key;
    size_t len = strcspn(p, "/");
    char *k = al_xstrndup(p, len);
    for (char *c = k; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return k;
}

static bool is_docker_hub(const char *host)
{
    return strcmp(host, "index.docker.io") == 0 || strcmp(host, "docker.io") == 0 ||
           strcmp(host, "registry-1.docker.io") == 0 ||
           strcmp(host, "registry.hub.docker.com") == 0;
}

static bool same_registry(const char *a, const char *b)
{
    return strcmp(a, b) == 0 || (is_docker_hub(a) && is_docker_hub(b));
}

static bool decode_auth(const char *b64, char **user, char **password)
{
    size_t len = strlen(b64);
    if (len == 0 || len % 4 != 0 || len > 16384)
        return false;
    unsigned char *buf = al_xmalloc(len);
    int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
    if (n < 0) {
        free(buf);
        return false;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (b64[len - 1] == '=')
        n--;
    if (b64[len - 2] == '=')
        n--;
    char *colon = memchr(buf, ':', (size_t)n);
    bool ok = colon != NULL && memchr(buf, '\0', (size_t)n) == NULL;
    if (ok) {
        *user = al_xstrndup((char *)buf, (size_t)(colon - (char *)buf));
        *password = al_xstrndup(colon + 1, (size_t)((char *)buf + n - colon - 1));
    }
    explicit_bzero(buf, len);
    free(buf);
    return ok;
}

/* Helper names become part of a program name: keep them to a safe set. */
static bool valid_helper_name(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static int parse_config(al_creds *c, const char *buf, size_t len, const char *origin,
                        bool containers, al_error **err)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return al_error_set(err, AL_E_USAGE, 0, "%s:%d: invalid JSON: %s", origin, jerr.line,
                            jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = al_error_set(err, AL_E_USAGE, 0, "%s: not a JSON object", origin);
        goto out;
    }
    json_t *auths = json_object_get(root, "auths");
    if (auths != NULL && !json_is_object(auths)) {
        rc = al_error_set(err, AL_E_USAGE, 0, "%s: \"auths\" is not an object", origin);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(auths, key, val)
    {
        if (!json_is_object(val))
            continue;
        al_cred cred = {0};
        const char *auth = json_string_value(json_object_get(val, "auth"));
        const char *u = json_string_value(json_object_get(val, "username"));
        const char *p = json_string_value(json_object_get(val, "password"));
        const char *it = json_string_value(json_object_get(val, "identitytoken"));
        if (auth != NULL && *auth != '\0') {
            if (!decode_auth(auth, &cred.user, &cred.password)) {
                /* Never echo the value: it is a secret. */
                rc = al_error_set(err, AL_E_USAGE, 0,
                                  "%s: auths entry for \"%.200s\" has an invalid \"auth\" value",
                                  origin, key);
                goto out;
            }
        } else if (u != NULL && p != NULL) {
            cred.user = al_xstrdup(u);
            cred.password = al_xstrdup(p);
        }
        if (it != NULL && *it != '\0')
            cred.identity_token = al_xstrdup(it);
        if (cred.user == NULL && cred.identity_token == NULL)
            continue; /* a placeholder written next to credsStore */
        cred.origin = al_xstrdup(origin);
        c->entries = al_xrealloc(c->entries, (c->n + 1) * sizeof(entry));
        c->entries[c->n++] = (entry){normalise_key(key), cred, containers};
    }
    json_t *helpers = json_object_get(root, "credHelpers");
    json_object_foreach(helpers, key, val)
    {
        const char *name = json_string_value(val);
        if (!valid_helper_name(name)) {
            rc = al_error_set(err, AL_E_USAGE, 0,
                              "%s: credHelpers entry for \"%.200s\" is not a valid helper name",
                              origin, key);
            goto out;
        }
        c->helpers = al_xrealloc(c->helpers, (c->n_helpers + 1) * sizeof(helper_map));
        c->helpers[c->n_helpers++] =
            (helper_map){normalise_key(key), al_xstrdup(name), al_xstrdup(origin)};
    }
    json_t *store = json_object_get(root, "credsStore");
    if (store != NULL && c->store_helper == NULL) {
        const char *name = json_string_value(store);
        if (!valid_helper_name(name)) {
            rc = al_error_set(err, AL_E_USAGE, 0, "%s: \"credsStore\" is not a valid helper name",
                              origin);
            goto out;
        }
        c->store_helper = al_xstrdup(name);
        c->store_origin = al_xstrdup(origin);
    }
out:
    json_decref(root);
    return rc;
}

int al_creds_parse_docker_config(al_creds *c, const char *buf, size_t len, const char *origin,
                                 al_error **err)
{
    return parse_config(c, buf, len, origin, false, err);
}

static int load_file(al_creds *c, const char *path, bool must_exist, bool containers,
                     al_error **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!must_exist && errno == ENOENT)
            return 0;
        return al_error_set(err, AL_E_USAGE, errno, "open %s", path);
    }
    char *buf = NULL;
    size_t len = 0;
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || len + (size_t)n > CONFIG_MAX) {
            int e = n < 0 ? errno : 0;
            close(fd);
            if (buf)
                explicit_bzero(buf, len);
            free(buf);
            return e ? al_error_set(err, AL_E_USAGE, e, "read %s", path)
                     : al_error_set(err, AL_E_USAGE, 0, "%s: larger than 4 MiB", path);
        }
        buf = al_xrealloc(buf, len + (size_t)n);
        memcpy(buf + len, chunk, (size_t)n);
        len += (size_t)n;
    }
    close(fd);
    int r = parse_config(c, buf ? buf : "", len, path, containers, err);
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
    return r;
}

int al_creds_new(al_creds **out, const char *user, const char *password, const char *docker_config,
                 al_error **err)
{
    al_creds *c = al_xcalloc(1, sizeof(*c));
    if (user != NULL) {
        c->cli = al_xcalloc(1, sizeof(al_cred));
        c->cli->user = al_xstrdup(user);
        c->cli->password = al_xstrdup(password ? password : "");
        c->cli->origin = al_xstrdup("--username");
    }
    int r = 0;
    /* containers auth.json first, as skopeo and podman read it. */
    const char *raf = getenv("REGISTRY_AUTH_FILE");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (raf != NULL && *raf != '\0') {
        r = load_file(c, raf, true, true, err);
    } else if (xdg != NULL && *xdg != '\0') {
        _cleanup_free_ char *p = al_xasprintf("%s/containers/auth.json", xdg);
        r = load_file(c, p, false, true, err);
    }
    if (r == 0) {
        if (docker_config != NULL) {
            r = load_file(c, docker_config, true, false, err);
        } else {
            const char *dir = getenv("DOCKER_CONFIG");
            const char *home = getenv("HOME");
            _cleanup_free_ char *path = NULL;
            if (dir != NULL && *dir != '\0')
                path = al_xasprintf("%s/config.json", dir);
            else if (home != NULL && *home != '\0')
                path = al_xasprintf("%s/.docker/config.json", home);
            if (path != NULL)
                r = load_file(c, path, false, false, err);
        }
    }
    if (r == 0)
        *out = c;
    else
        al_creds_free(c);
    return r;
}

static void helper_dispose(helper_map *h)
{
    char *owned[] = {h->host, h->helper, h->origin};
    for (size_t i = 0; i < AL_ARRAY_SIZE(owned); i++)
        free(owned[i]);
}

void al_creds_free(al_creds *c)
{
    if (c == NULL)
        return;
    if (c->cli != NULL) {
        cred_dispose(c->cli);
        free(c->cli);
    }
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].host);
        cred_dispose(&c->entries[i].cred);
    }
    free(c->entries);
    for (size_t i = 0; i < c->n_helpers; i++)
        helper_dispose(&c->helpers[i]);
    free(c->helpers);
    free(c->store_helper);
    free(c->store_origin);
    for (size_t i = 0; i < c->n_cache; i++) {
        free(c->cache[i].host);
        if (c->cache[i].cred != NULL) {
            cred_dispose(c->cache[i].cred);
            free(c->cache[i].cred);
        }
    }
    free(c->cache);
    free(c);
}

/* A helper's answer, up to HELPER_OUTPUT_MAX bytes (NUL-terminated). */
static char *read_helper_output(int fd, size_t *len_out)
{
    char *buf = al_xmalloc(HELPER_OUTPUT_MAX + 1);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, HELPER_OUTPUT_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == HELPER_OUTPUT_MAX)
            break;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* {"Username": ..., "Secret": ...}; Username "<token>" is an identity token. */
static int helper_cred(const char *buf, size_t len, const char *prog, al_cred **out, al_error **err)
{
    json_t *root = json_loadb(buf, len, 0, NULL);
    const char *u = json_string_value(json_object_get(root, "Username"));
    const char *s = json_string_value(json_object_get(root, "Secret"));
    if (u == NULL || s == NULL) {
        json_decref(root);
        return al_error_set(err, AL_E_AUTH, 0,
                            "credential helper %s: output is not {\"Username\",\"Secret\"} JSON",
                            prog);
    }
    al_cred *c = al_xcalloc(1, sizeof(*c));
    if (strcmp(u, "<token>") == 0) {
        c->identity_token = al_xstrdup(s);
    } else {
        c->user = al_xstrdup(u);
        c->password = al_xstrdup(s);
    }
    c->origin = al_xasprintf("credential helper %s", prog);
    json_decref(root);
    *out = c;
    return 0;
}

/* Run `docker-credential-NAME get` with server on stdin. *out NULL when the
 * helper has no credentials for it. */
static int run_helper(const char *name, const char *server, const char *origin, al_cred **out,
                      al_error **err)
{
    *out = NULL;
    _cleanup_free_ char *prog = al_xasprintf("docker-credential-%s", name);
    int in[2], outp[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return al_error_set(err, AL_E_AUTH, errno, "credential helper %s: pipe", prog);
    if (pipe2(outp, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return al_error_set(err, AL_E_AUTH, errno, "credential helper %s: pipe", prog);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, outp[1], STDOUT_FILENO);
    char *argv[] = {prog, (char *)"get", NULL};
    pid_t pid;
    int sr = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(outp[1]);
    if (sr != 0) {
        close(in[1]);
        close(outp[0]);
        if (sr == ENOENT)
            return al_error_set(err, AL_E_AUTH, 0,
                                "credential helper %s (named in %s) is not installed: not found "
                                "in PATH",
                                prog, origin);
        return al_error_set(err, AL_E_AUTH, sr, "credential helper %s: cannot run it", prog);
    }
    /* The server name is tiny: one write fits the pipe buffer. A helper
     * that exits without reading gives EPIPE, which we ignore. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    (void)al_write_all(in[1], server, strlen(server));
    close(in[1]);
    sigaction(SIGPIPE, &old, NULL);
    size_t len = 0;
    char *buf = read_helper_output(outp[0], &len);
    close(outp[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* The helpers' protocol: this text on stdout means "none". */
        if (strstr(buf, "credentials not found") == NULL)
            rc = al_error_set(err, AL_E_AUTH, 0, "credential helper %s get for %s failed (exit %d)",
                              prog, server, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        goto out;
    }
    rc = helper_cred(buf, len, prog, out, err);
out:
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

static al_cred *copy_cred(const al_cred *src)
{
    al_cred *c = al_xcalloc(1, sizeof(*c));
    c->user = src->user ? al_xstrdup(src->user) : NULL;
    c->password = src->password ? al_xstrdup(src->password) : NULL;
    c->identity_token = src->identity_token ? al_xstrdup(src->identity_token) : NULL;
    c->origin = al_xstrdup(src->origin);
    return c;
}

static int lookup(al_creds *c, const char *want, al_cred **out, al_error **err)
{
    *out = NULL;
    if (c->cli != NULL) {
        *out = copy_cred(c->cli);
        return 0;
    }
    /* Docker Hub is stored under its historical key. */
    const char *server = is_docker_hub(want) ? "https://index.docker.io/v1/" : want;
    size_t i;
    /* auth.json entries come first in c->entries (loaded first). A helper
     * named for this very host outranks plain auths entries of
     * config.json, as in docker. */
    for (i = 0; i < c->n; i++) {
        const entry *e = &c->entries[i];
        if (e->containers && same_registry(e->host, want)) {
            *out = copy_cred(&e->cred);
            return 0;
        }
    }
    for (i = 0; i < c->n_helpers; i++)
        if (same_registry(c->helpers[i].host, want))
            return run_helper(c->helpers[i].helper, server, c->helpers[i].origin, out, err);
    if (c->store_helper != NULL) {
        int r = run_helper(c->store_helper, server, c->store_origin, out, err);
        if (r < 0 || *out != NULL)
            return r;
    }
    for (i = 0; i < c->n; i++) {
        const entry *e = &c->entries[i];
        if (!e->containers && same_registry(e->host, want)) {
            *out = copy_cred(&e->cred);
            return 0;
        }
    }
    return 0;
}

int al_creds_get(al_creds *c, const char *host, const al_cred **out, al_error **err)
{
    *out = NULL;
    _cleanup_free_ char *want = normalise_key(host);
    for (size_t i = 0; i < c->n_cache; i++)
        if (strcmp(c->cache[i].host, want) == 0) {
            *out = c->cache[i].cred;
            return 0;
        }
    al_cred *found = NULL;
    int r = lookup(c, want, &found, err);
    if (r < 0)
        return r;
    c->cache = al_xrealloc(c->cache, (c->n_cache + 1) * sizeof(cache_slot));
    c->cache[c->n_cache++] = (cache_slot){al_steal_ptr(&want), found};
    *out = found;
    return 0;
}

char *al_creds_basic_header(const char *user, const char *password)
{
    _cleanup_free_ char *plain = al_xasprintf("%s:%s", user, password);
    size_t len = strlen(plain);
    char *out = al_xmalloc(6 + 4 * ((len + 2) / 3) + 1);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)len);
    explicit_bzero(plain, len);
    return out;
}

char *al_creds_read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = al_xmalloc(cap);
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 >= cap) {
            char *bigger = al_xmalloc(cap * 2);
            memcpy(bigger, buf, len);
            explicit_bzero(buf, cap); /* realloc would leave a copy behind */
            free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return buf;
}
