/* --split image, one platform's directory (split-run.h). */
#include "split-run.h"
#include "split.h"
#include "../common/log.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *al_split_status_name(al_split_status s)
{
    switch (s) {
    case AL_SPLIT_WRITTEN: return "written";
    case AL_SPLIT_UNCHANGED: return "unchanged";
    case AL_SPLIT_REPLACED: return "replaced";
    case AL_SPLIT_REMOVED: return "removed";
    }
    return "?";
}

void al_split_files_dispose(al_split_files *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->f[i].path);
        free(f->f[i].ref);
    }
    free(f->f);
    memset(f, 0, sizeof(*f));
}

static void note_file(al_split_files *files, const al_split_opts *o, const char *dir,
                      const char *file, const char *ref, const char *digest, al_split_status st,
                      uint64_t bytes)
{
    files->f = al_xrealloc(files->f, (files->n + 1) * sizeof(*files->f));
    al_split_file *f = &files->f[files->n++];
    memset(f, 0, sizeof(*f));
    f->path = al_xasprintf("%s/%s", dir, file);
    f->platform = o->platform;
    f->ref = ref ? al_xstrdup(ref) : NULL;
    if (digest != NULL)
        snprintf(f->manifest_digest, sizeof(f->manifest_digest), "%s", digest);
    f->status = st;
    f->bytes = bytes;
}

static int open_dir(int *out, const char *dir, al_error **err)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return al_error_set(err, AL_E_IO, errno, "create directory %s", dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, errno, "open directory %s", dir);
    *out = fd;
    return 0;
}

/* Every archive name of keep, checked for two refs that would share one. */
static int keep_names(char ***out, const al_export_set *keep, const char *suffix, al_error **err)
{
    char **names = al_xcalloc(keep->n_images + 1, sizeof(*names));
    for (size_t i = 0; i < keep->n_images; i++) {
        names[i] = al_split_name(&keep->images[i], suffix);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(names[k], names[i]) == 0 &&
                strcmp(keep->images[k].ref, keep->images[i].ref) != 0) {
                int r = al_error_set(err, AL_E_UNSUPPORTED, 0,
                                     "%s and %s would share the archive name %s: export them in "
                                     "separate runs",
                                     keep->images[k].ref, keep->images[i].ref, names[i]);
                for (size_t j = 0; j <= i; j++)
                    free(names[j]);
                free(names);
                return r;
            }
        }
    }
    *out = names;
    return 0;
}

/* Remove the earlier archives the state records for this ref. */
static void remove_replaced(al_split_state *st, al_split_files *files, const al_split_opts *o,
                            int dirfd, const char *dir, const char *file, const char *ref)
{
    for (size_t i = 0; i < st->n;) {
        al_split_entry *e = &st->e[i];
        if (strcmp(e->ref, ref) != 0 || strcmp(e->file, file) == 0) {
            i++;
            continue;
        }
        if (unlinkat(dirfd, e->file, 0) == 0 || errno == ENOENT) {
            al_info("removed %s/%s: replaced by %s", dir, e->file, file);
            note_file(files, o, dir, e->file, e->ref, NULL, AL_SPLIT_REPLACED, 0);
        } else {
            al_warn("could not remove %s/%s (replaced by %s): %s", dir, e->file, file,
                    strerror(errno));
        }
        _cleanup_free_ char *gone = al_xstrdup(e->file);
        al_split_state_remove(st, gone); /* moves the last entry to i */
    }
}

static int write_one(al_split_state *st, al_split_files *files, int dirfd, const char *dir,
                     const al_export_set *set, size_t i, const al_split_opts *o,
                     const al_split_writer *w, al_error **err)
{
    const al_export_image *im = &set->images[i];
    _cleanup_free_ char *file = al_split_name(im, al_split_suffix(o->kind));
    char recipe[AL_DIGEST_BUF];
    al_split_recipe(recipe, im, o->format, o->decompress_zstd, o->kind, o->level);
    if (al_split_unchanged(st, dirfd, file, recipe)) {
        const al_split_entry *e = al_split_state_get(st, file);
        al_info("unchanged %s/%s", dir, file);
        note_file(files, o, dir, file, im->ref, im->manifest_digest, AL_SPLIT_UNCHANGED, e->size);
        return 0;
    }
    al_export_set one = {.platform = set->platform, .images = (al_export_image *)im, .n_images = 1};
    _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, file);
    uint64_t bytes = 0;
    int r = w->write(w->ud, &one, path, &bytes, err);
    if (r < 0)
        return r;
    struct stat sb;
    if (fstatat(dirfd, file, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return al_error_set(err, AL_E_IO, errno, "stat %s", path);
    al_split_state_set(st, file, im->ref, recipe, &sb);
    note_file(files, o, dir, file, im->ref, im->manifest_digest, AL_SPLIT_WRITTEN,
              (uint64_t)sb.st_size);
    remove_replaced(st, files, o, dirfd, dir, file, im->ref);
    return 0;
}

static bool listed(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* --clean: airlock's archives of images not selected any more. */
static int clean(al_split_state *st, al_split_files *files, int dirfd, const char *dir, char **keep,
                 size_t n_keep, const al_split_opts *o, al_error **err)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return al_error_set(err, AL_E_IO, errno, "read directory %s", dir);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (!al_split_is_ours(de->d_name) || listed(keep, n_keep, de->d_name) ||
            fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
            continue;
        const al_split_entry *e = al_split_state_get(st, de->d_name);
        if (unlinkat(dirfd, de->d_name, 0) < 0) {
            al_warn("--clean: could not remove %s/%s: %s", dir, de->d_name, strerror(errno));
            continue;
        }
        al_info("removed %s/%s (--clean: not in this export)", dir, de->d_name);
        note_file(files, o, dir, de->d_name, e ? e->ref : NULL, NULL, AL_SPLIT_REMOVED, 0);
        al_split_state_remove(st, de->d_name);
    }
    closedir(d);
    return 0;
}

int al_split_platform(al_split_files *files, const char *dir, const al_export_set *write,
                      const al_export_set *keep, const al_split_opts *o, const al_split_writer *w,
                      al_error **err)
{
    char **names = NULL;
    int r = keep_names(&names, keep, al_split_suffix(o->kind), err);
    if (r < 0)
        return r;
    int dirfd = -1;
    r = open_dir(&dirfd, dir, err);
    al_split_state st;
    memset(&st, 0, sizeof(st));
    if (r == 0)
        al_split_state_load(&st, dirfd);
    for (size_t i = 0; r == 0 && i < write->n_images; i++)
        r = write_one(&st, files, dirfd, dir, write, i, o, w, err);
    if (r == 0 && o->clean)
        r = clean(&st, files, dirfd, dir, names, keep->n_images, o, err);
    /* The state is saved after a failed write too: what was written stays
     * known, so the next run does not write it again. */
    if (dirfd >= 0) {
        al_error *serr = NULL;
        if (al_split_state_save(&st, dir, &serr) < 0 && r == 0) {
            r = serr->code;
            if (err != NULL) {
                al_error_clear(err);
                *err = al_steal_ptr(&serr);
            }
        }
        al_error_free(serr);
        close(dirfd);
    }
    al_split_state_dispose(&st);
    for (size_t i = 0; i < keep->n_images; i++)
        free(names[i]);
    free(names);
    return r;
}
