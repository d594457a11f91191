#include "prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "plan.h"
#include "util.h"

static int blob_cmp(const void *a, const void *b)
{
    return strcmp(((const al_prune_blob *)a)->digest, ((const al_prune_blob *)b)->digest);
}

static bool doomed(const al_prune_result *r, const char *digest)
{
    al_prune_blob key;
    snprintf(key.digest, sizeof(key.digest), "%s", digest);
    return r->n_blobs > 0 &&
           bsearch(&key, r->blobs, r->n_blobs, sizeof(*r->blobs), blob_cmp) != NULL;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted (read fully before anything is unlinked). */
static int list_dir(const char *dir, char ***out, size_t *n_out, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        return al_error_set(err, AL_E_IO, errno, "open directory %s", dir);
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        names = al_xrealloc(names, (n + 1) * sizeof(char *));
        names[n++] = al_xstrdup(de->d_name);
    }
    int e = errno;
    closedir(d);
    if (e != 0) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return al_error_set(err, AL_E_IO, e, "read directory %s", dir);
    }
    if (n > 0)
        qsort(names, n, sizeof(char *), str_cmp);
    *out = names;
    *n_out = n;
    return 0;
}

static int fsync_dir(const char *dir, al_error **err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open directory %s", dir);
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r < 0)
        return al_error_set(err, AL_E_IO, e, "fsync directory %s", dir);
    return 0;
}

/* Steps 3 and 4: the files. */
static int sweep(al_store *store, al_db *db, al_prune_report *rep, al_error **err)
{
    _cleanup_free_ char *dir = al_xasprintf("%s/blobs/sha256", al_store_dir(store));
    char **names = NULL;
    size_t n = 0;
    int r = list_dir(dir, &names, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r == 0; i++) {
        _cleanup_free_ char *digest = al_xasprintf("sha256:%s", names[i]);
        if (!al_digest_valid(digest)) {
            /* Not ours to judge (a temp file of another tool?): left alone. */
            al_warn("prune: %s/%s is not a blob name; left alone", dir, names[i]);
            rep->n_skipped++;
            continue;
        }
        _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, names[i]);
        bool gone_row = doomed(&rep->db, digest);
        if (!gone_row) {
            bool found = false;
            if ((r = al_db_blob_get(db, digest, &found, NULL, err)) < 0)
                break;
            if (found)
                continue;
            struct stat st;
            rep->n_stray++;
            if (lstat(path, &st) == 0)
                rep->stray_bytes += st.st_size;
            al_debug("prune: %s has no database row", digest);
        }
        if (rep->dry_run)
            continue;
        if (unlink(path) < 0 && errno != ENOENT) {
            r = al_error_set(err, AL_E_IO, errno, "prune: remove %s", path);
            break;
        }
        rep->n_unlinked++;
        al_debug("pruned %s", digest);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (r == 0 && !rep->dry_run && rep->n_unlinked > 0)
        r = fsync_dir(dir, err);
    return r;
}

int al_prune_run(al_store *store, al_db *db, const al_prune_opts *opts, al_prune_report *out,
                 al_error **err)
{
    memset(out, 0, sizeof(*out));
    out->dry_run = opts->dry_run;
    out->keep = opts->keep;
    int r = al_db_prune(db, opts, &out->db, err);
    if (r < 0)
        return r;
    if (!opts->dry_run && (r = al_fetch_write_index(store, db, err)) < 0)
        return r;
    return sweep(store, db, out, err);
}

void al_prune_report_dispose(al_prune_report *r)
{
    if (r == NULL)
        return;
    al_prune_result_dispose(&r->db);
    memset(r, 0, sizeof(*r));
}
