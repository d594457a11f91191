/* The files side of --prune (see prune.h for the order and the rules). */
#include "prune.h"
#include "upload-session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "plan.h"
#include "util.h"

/* File times come from the kernel's coarse clock, which may lag
 * al_now() by a tick; a file written just after a run began must not
 * look older than it. Erring this way only keeps a file longer. */
#define MTIME_SLACK_S 2.0
/* A partial download untouched for this long is abandoned (unless an
 * interrupted run may still resume it). */
#define PARTIAL_MAX_AGE_S (24.0 * 3600.0)
/* An airlock-push upload session (upload-session.h): kept a week, the age
 * at which distribution purges the abandoned uploads it would resume. */
#define UPLOAD_MAX_AGE_S (7 * 24.0 * 3600.0)

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

static double mtime_of(const struct stat *st)
{
    return (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9;
}

static bool written_since(const struct stat *st, double since)
{
    return since > 0 && mtime_of(st) >= since - MTIME_SLACK_S;
}

/* Whether blobs/sha256/NAME goes: its row went in step 1, or it has none
 * and is not protected. Counts what it decides in rep. */
static int judge_blob(al_store *store, al_db *db, const char *name, double since,
                      al_prune_report *rep, bool *go, int64_t *size, al_error **err)
{
    *go = false;
    _cleanup_free_ char *digest = al_xasprintf("sha256:%s", name);
    struct stat st;
    if (fstatat(al_store_blobs_fd(store), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0; /* gone since it was listed */
        return al_error_set(err, AL_E_IO, errno, "prune: stat %s/blobs/sha256/%s",
                            al_store_dir(store), name);
    }
    if (!al_digest_valid(digest) || S_ISDIR(st.st_mode)) {
        /* Not ours to judge (a temp file of another tool?): left alone. A
         * symlink named by a digest is ours to remove (it is no blob). */
        al_warn("prune: %s/blobs/sha256/%s is not a blob; left alone", al_store_dir(store), name);
        rep->n_skipped++;
        return 0;
    }
    *size = (int64_t)st.st_size;
    if (!doomed(&rep->db, digest)) {
        bool found = false;
        if (al_db_blob_get(db, digest, &found, NULL, err) < 0)
            return AL_E_DB;
        if (found)
            return 0;
        if (written_since(&st, since)) {
            rep->n_protected++;
            rep->protected_bytes += *size;
            al_debug("prune: %s has no row yet but is recent: kept", digest);
            return 0;
        }
        rep->n_stray++;
        rep->stray_bytes += *size;
        al_debug("prune: %s has no database row", digest);
    }
    *go = true;
    return 0;
}

/* The names in a directory of the store, read whole before anything is
 * removed. */
typedef struct dir_list {
    int fd; /* the directory (borrowed from the store) */
    char **names;
    size_t n;
} dir_list;

static int list_names(al_store *store, int fd, const char *what, dir_list *out, al_error **err)
{
    *out = (dir_list){.fd = fd};
    int r = al_dir_names(fd, ".", &out->names, &out->n);
    if (r < 0)
        return al_error_set(err, AL_E_IO, -r, "prune: read %s/%s", al_store_dir(store), what);
    return 0;
}

/* Steps 3 and 4: the files of blobs/sha256. */
static int sweep(al_store *store, al_db *db, double since, al_prune_report *rep, al_error **err)
{
    dir_list d;
    int r = list_names(store, al_store_blobs_fd(store), "blobs/sha256", &d, err);
    if (r < 0)
        return r;
    bool *go = al_xcalloc(d.n + 1, sizeof(*go));
    size_t n_go = 0;
    int64_t go_bytes = 0;
    for (size_t i = 0; i < d.n && r == 0; i++) {
        int64_t size = 0;
        r = judge_blob(store, db, d.names[i], since, rep, &go[i], &size, err);
        n_go += go[i];
        go_bytes += go[i] ? size : 0;
    }
    bool locked = false;
    if (r == 0 && !rep->dry_run && n_go > 0)
        r = al_store_gc_try_sweep(store, &locked, err);
    if (r == 0 && !rep->dry_run && n_go > 0 && !locked) {
        /* An export is reading: the rows are gone, so the files are
         * rowless now and the next prune takes them. */
        rep->deferred = true;
        rep->n_deferred = n_go;
        rep->deferred_bytes = go_bytes;
    }
    for (size_t i = 0; i < d.n && r == 0 && locked; i++) {
        if (!go[i])
            continue;
        if (unlinkat(d.fd, d.names[i], 0) < 0 && errno != ENOENT) {
            r = al_error_set(err, AL_E_IO, errno, "prune: remove %s/blobs/sha256/%s",
                             al_store_dir(store), d.names[i]);
            break;
        }
        rep->n_unlinked++;
        al_debug("pruned sha256:%s", d.names[i]);
    }
    if (locked)
        al_store_gc_release(store);
    free(go);
    al_strv_free(d.names, d.n);
    if (r == 0 && rep->n_unlinked > 0 && fsync(d.fd) < 0)
        r = al_error_set(err, AL_E_IO, errno, "fsync %s/blobs/sha256", al_store_dir(store));
    return r;
}

/* Why STORE/tmp/NAME is stale, or NULL when it stays (prune.h). */
static const char *tmp_stale(al_store *store, const char *name, const struct stat *st, double since,
                             double now)
{
    if (strncmp(name, "quarantine-", 11) == 0) /* kept a day for a look (repair.h) */
        return now - mtime_of(st) > PARTIAL_MAX_AGE_S ? "a damaged blob moved aside over a day ago"
                                                      : NULL;
    if (al_upload_session_is_name(name))
        return now - mtime_of(st) > UPLOAD_MAX_AGE_S
                   ? "an airlock-push upload session left for over a week"
                   : NULL;
    if (strncmp(name, "partial-", 8) != 0)
        return "left by an interrupted writer";
    _cleanup_free_ char *digest = al_xasprintf("sha256:%s", name + 8);
    if (!al_digest_valid(digest))
        return "left by an interrupted writer";
    if (al_store_has_blob(store, digest, NULL))
        return "a partial download of a blob the store holds complete";
    if (now - mtime_of(st) > PARTIAL_MAX_AGE_S && !written_since(st, since))
        return "a partial download not resumed for over a day";
    return NULL;
}

/* An import's staging directory, tmp/import-<bundle id>/, holds verified
 * blobs that a rerun of the same import reuses. Abandoned (untouched for a
 * day, and older than any interrupted run), it goes: its regular files,
 * then the directory. Sets *bytes to what it held; anything in it that is
 * not a regular file leaves it in place. */
static const char *stage_stale(int tfd, const char *name, const struct stat *st, double since,
                               double now, bool dry_run, int64_t *bytes, al_error **err)
{
    *bytes = 0;
    if (strncmp(name, "import-", 7) != 0 || now - mtime_of(st) <= PARTIAL_MAX_AGE_S ||
        written_since(st, since))
        return NULL;
    _cleanup_close_ int dfd = openat(tfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char **names = NULL;
    size_t n = 0;
    if (dfd < 0 || al_dir_names(dfd, ".", &names, &n) < 0)
        return NULL;
    const char *why = "an import not finished for over a day (rerun it to use what it staged)";
    for (size_t i = 0; i < n && why != NULL; i++) {
        struct stat fst;
        if (fstatat(dfd, names[i], &fst, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(fst.st_mode) ||
            written_since(&fst, since) || now - mtime_of(&fst) <= PARTIAL_MAX_AGE_S)
            why = NULL;
        else
            *bytes += (int64_t)fst.st_size;
    }
    for (size_t i = 0; i < n && why != NULL && !dry_run; i++)
        if (unlinkat(dfd, names[i], 0) < 0 && errno != ENOENT)
            why = NULL, al_error_set(err, AL_E_IO, errno, "prune: remove %s/%s", name, names[i]);
    al_strv_free(names, n);
    if (why != NULL && !dry_run && unlinkat(tfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return al_error_set(err, AL_E_IO, errno, "prune: remove directory %s", name), NULL;
    return why;
}

/* Step 5: stale entries of STORE/tmp. */
static int clear_tmp(al_store *store, double since, al_prune_report *rep, al_error **err)
{
    dir_list d;
    int r = list_names(store, al_store_tmp_fd(store), "tmp", &d, err);
    if (r < 0)
        return r;
    double now = al_now();
    for (size_t i = 0; i < d.n && r == 0; i++) {
        struct stat st;
        if (fstatat(d.fd, d.names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        int64_t size = (int64_t)st.st_size;
        const char *why;
        if (S_ISDIR(st.st_mode) && strncmp(d.names[i], "import-", 7) == 0) {
            if ((why = stage_stale(d.fd, d.names[i], &st, since, now, rep->dry_run, &size, err)) ==
                NULL) {
                if (err != NULL && *err != NULL) {
                    r = al_error_wrap(err, "%s/tmp", al_store_dir(store));
                    break;
                }
                continue;
            }
        } else if (S_ISDIR(st.st_mode)) {
            al_warn("prune: %s/tmp/%s is a directory; left alone", al_store_dir(store), d.names[i]);
            continue;
        } else if ((why = tmp_stale(store, d.names[i], &st, since, now)) == NULL) {
            continue;
        } else if (!rep->dry_run && unlinkat(d.fd, d.names[i], 0) < 0 && errno != ENOENT) {
            r = al_error_set(err, AL_E_IO, errno, "prune: remove %s/tmp/%s", al_store_dir(store),
                             d.names[i]);
            break;
        }
        rep->tmp = al_xrealloc(rep->tmp, (rep->n_tmp + 1) * sizeof(*rep->tmp));
        rep->tmp[rep->n_tmp++] = (al_prune_tmp){al_xstrdup(d.names[i]), size, why};
        rep->tmp_bytes += size;
    }
    al_strv_free(d.names, d.n);
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
    if ((r = sweep(store, db, opts->protect_since, out, err)) < 0)
        return r;
    return clear_tmp(store, opts->protect_since, out, err);
}

void al_prune_report_dispose(al_prune_report *r)
{
    if (r == NULL)
        return;
    al_prune_result_dispose(&r->db);
    for (size_t i = 0; i < r->n_tmp; i++)
        free(r->tmp[i].name);
    free(r->tmp);
    memset(r, 0, sizeof(*r));
}
