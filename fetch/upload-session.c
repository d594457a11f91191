/* Saved upload sessions in STORE/tmp (see upload-session.h). */
#include "upload-session.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "util.h"

#define SESSION_MAX 16384 /* bytes: a URL and a few numbers */

char *al_upload_session_name(const char *host, const char *repo, const char *digest)
{
    _cleanup_free_ char *where = al_xasprintf("%s/%s", host, repo);
    char d[AL_DIGEST_BUF];
    al_digest_bytes(d, where, strlen(where));
    return al_xasprintf("upload-%s-%.16s", al_digest_hex(digest), al_digest_hex(d));
}

bool al_upload_session_is_name(const char *name)
{
    if (strncmp(name, "upload-", 7) != 0 || strlen(name) != 7 + 64 + 1 + 16)
        return false;
    for (const char *p = name + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) && p != name + 7 + 64)
            return false;
    return name[7 + 64] == '-';
}

/* The file's text, at most SESSION_MAX bytes; NULL when absent or not a
 * regular file. */
static char *read_small(int dir, const char *name)
{
    _cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SESSION_MAX)
        return NULL;
    char *buf = al_xmalloc((size_t)st.st_size + 1);
    ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
    if (n != st.st_size) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int al_upload_session_load(al_store *s, const char *host, const char *repo, const char *digest,
                           int64_t size, char **url, int64_t *offset, al_error **err)
{
    int dir = al_store_tmp_fd(s);
    _cleanup_free_ char *name = al_upload_session_name(host, repo, digest);
    _cleanup_free_ char *text = dir >= 0 ? read_small(dir, name) : NULL;
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    const char *r = json_string_value(json_object_get(root, "registry"));
    const char *p = json_string_value(json_object_get(root, "repository"));
    const char *d = json_string_value(json_object_get(root, "digest"));
    const char *u = json_string_value(json_object_get(root, "url"));
    json_int_t sz = json_integer_value(json_object_get(root, "size"));
    json_int_t off = json_integer_value(json_object_get(root, "offset"));
    /* Only a session of this very blob, at this place, within its size. */
    bool ok = r && p && d && u && strcmp(r, host) == 0 && strcmp(p, repo) == 0 &&
              strcmp(d, digest) == 0 && sz == size && off > 0 && off <= size;
    if (ok) {
        *url = al_xstrdup(u);
        *offset = off;
    }
    json_decref(root);
    if (!ok)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "no saved upload of %s", digest);
    return 0;
}

static char *session_text(const char *host, const char *repo, const char *digest, int64_t size,
                          const char *url, int64_t offset)
{
    char when[40];
    json_t *o = json_object();
    json_object_set_new(o, "format", json_integer(1));
    json_object_set_new(o, "registry", json_string(host));
    json_object_set_new(o, "repository", json_string(repo));
    json_object_set_new(o, "digest", json_string(digest));
    json_object_set_new(o, "size", json_integer(size));
    json_object_set_new(o, "url", json_string(url));
    json_object_set_new(o, "offset", json_integer(offset));
    json_object_set_new(o, "saved_at", json_string(al_format_utc(when, sizeof(when), al_now())));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* A URL that names a user ("https://u:p@host/...") may carry a secret: it
 * is not written down. */
static bool url_has_user(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t n = strcspn(host, "/?#");
    return memchr(host, '@', n) != NULL;
}

int al_upload_session_save(al_store *s, const char *host, const char *repo, const char *digest,
                           int64_t size, const char *url, int64_t offset, al_error **err)
{
    int dir = al_store_tmp_fd(s);
    if (dir < 0)
        return al_error_set(err, AL_E_IO, 0, "%s has no tmp/ directory", al_store_dir(s));
    if (url_has_user(url))
        return al_error_set(err, AL_E_UNSUPPORTED, 0, "the upload URL names a user: not saved");
    _cleanup_free_ char *name = al_upload_session_name(host, repo, digest);
    _cleanup_free_ char *text = session_text(host, repo, digest, size, url, offset);
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
        rnd = (uint64_t)getpid() ^ (uint64_t)(al_mono() * 1e9);
    _cleanup_free_ char *tmp = al_xasprintf("%s.%016llx.tmp", name, (unsigned long long)rnd);
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "create %s/tmp/%s", al_store_dir(s), tmp);
    int w = al_write_all(fd, text, strlen(text));
    if (w == 0 && fsync(fd) < 0)
        w = -errno;
    close(fd);
    if (w == 0 && renameat(dir, tmp, dir, name) < 0)
        w = -errno;
    if (w < 0) {
        unlinkat(dir, tmp, 0);
        return al_error_set(err, AL_E_IO, -w, "write %s/tmp/%s", al_store_dir(s), name);
    }
    return 0;
}

void al_upload_session_drop(al_store *s, const char *host, const char *repo, const char *digest)
{
    int dir = al_store_tmp_fd(s);
    if (dir < 0)
        return;
    _cleanup_free_ char *name = al_upload_session_name(host, repo, digest);
    unlinkat(dir, name, 0);
}
