#include "credentials.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct entry {
    char *host; /* normalised key: host[:port] */
    char *user;
    char *password;
} entry;

struct al_creds {
    char *cli_user, *cli_password;
    entry *entries;
    size_t n;
};

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    /* Best effort: do not leave secrets lying in freed memory. */
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
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
           strcmp(host, "registry-1.docker.io") == 0 || strcmp(host, "registry.hub.docker.com") == 0;
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
    memset(buf, 0, len);
    free(buf);
    return ok;
}

int al_creds_parse_docker_config(al_creds *c, const char *buf, size_t len, const char *origin,
                                 al_error **err)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return al_error_set(err, AL_E_USAGE, 0, "%s:%d: invalid JSON: %s", origin, jerr.line,
                            jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return al_error_set(err, AL_E_USAGE, 0, "%s: not a JSON object", origin);
    }
    json_t *auths = json_object_get(root, "auths");
    if (auths != NULL && !json_is_object(auths)) {
        json_decref(root);
        return al_error_set(err, AL_E_USAGE, 0, "%s: \"auths\" is not an object", origin);
    }
    const char *key;
    json_t *val;
    json_object_foreach(auths, key, val)
    {
        if (!json_is_object(val))
            continue;
        char *user = NULL, *password = NULL;
        const char *auth = json_string_value(json_object_get(val, "auth"));
        const char *u = json_string_value(json_object_get(val, "username"));
        const char *p = json_string_value(json_object_get(val, "password"));
        if (auth != NULL && *auth != '\0') {
            if (!decode_auth(auth, &user, &password)) {
                /* Never echo the value: it is a secret. */
                al_error_set(err, AL_E_USAGE, 0,
                             "%s: auths entry for \"%.200s\" has an invalid \"auth\" value",
                             origin, key);
                json_decref(root);
                return AL_E_USAGE;
            }
        } else if (u != NULL && p != NULL) {
            user = al_xstrdup(u);
            password = al_xstrdup(p);
        } else {
            continue; /* credsStore/identitytoken entries: issue #5 */
        }
        c->entries = al_xrealloc(c->entries, (c->n + 1) * sizeof(entry));
        c->entries[c->n++] = (entry){normalise_key(key), user, password};
    }
    json_decref(root);
    return 0;
}

static int load_file(al_creds *c, const char *path, bool must_exist, al_error **err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (!must_exist && errno == ENOENT)
            return 0;
        return al_error_set(err, AL_E_USAGE, errno, "open %s", path);
    }
    char *buf = NULL;
    size_t len = 0;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n > 4u * 1024u * 1024u) {
            fclose(f);
            free(buf);
            return al_error_set(err, AL_E_USAGE, 0, "%s: larger than 4 MiB", path);
        }
        buf = al_xrealloc(buf, len + n);
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    int r = al_creds_parse_docker_config(c, buf ? buf : "", len, path, err);
    if (buf)
        memset(buf, 0, len);
    free(buf);
    return r;
}

int al_creds_new(al_creds **out, const char *user, const char *password, const char *config_path,
                 al_error **err)
{
    al_creds *c = al_xcalloc(1, sizeof(*c));
    if (user != NULL) {
        c->cli_user = al_xstrdup(user);
        c->cli_password = al_xstrdup(password ? password : "");
    }
    int r = 0;
    if (config_path != NULL) {
        r = load_file(c, config_path, true, err);
    } else {
        const char *dir = getenv("DOCKER_CONFIG");
        const char *home = getenv("HOME");
        _cleanup_free_ char *path = NULL;
        if (dir != NULL && *dir != '\0')
            path = al_xasprintf("%s/config.json", dir);
        else if (home != NULL && *home != '\0')
            path = al_xasprintf("%s/.docker/config.json", home);
        if (path != NULL)
            r = load_file(c, path, false, err);
    }
    if (r < 0) {
        al_creds_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void al_creds_free(al_creds *c)
{
    if (c == NULL)
        return;
    wipe_free(c->cli_user);
    wipe_free(c->cli_password);
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].host);
        wipe_free(c->entries[i].user);
        wipe_free(c->entries[i].password);
    }
    free(c->entries);
    free(c);
}

bool al_creds_lookup(const al_creds *c, const char *host, const char **user, const char **password)
{
    if (c->cli_user != NULL) {
        *user = c->cli_user;
        *password = c->cli_password;
        return true;
    }
    _cleanup_free_ char *want = normalise_key(host);
    for (size_t i = 0; i < c->n; i++) {
        const entry *e = &c->entries[i];
        if (strcmp(e->host, want) == 0 || (is_docker_hub(want) && is_docker_hub(e->host))) {
            *user = e->user;
            *password = e->password;
            return true;
        }
    }
    return false;
}

char *al_creds_basic_header(const char *user, const char *password)
{
    _cleanup_free_ char *plain = al_xasprintf("%s:%s", user, password);
    size_t len = strlen(plain);
    char *out = al_xmalloc(6 + 4 * ((len + 2) / 3) + 1);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)len);
    memset(plain, 0, len);
    return out;
}
