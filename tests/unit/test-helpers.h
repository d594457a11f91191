/* Small helpers shared by the unit tests that touch the filesystem:
 * temp directories, recursive removal, directory snapshots, file I/O, and
 * running a check as an unprivileged user (tests run as root in CI, and
 * root ignores permission bits). Header-only so every test_*.c stays a
 * single executable. */
#ifndef AL_TEST_HELPERS_H
#define AL_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* A fresh directory under /tmp, world-traversable so that the
 * unprivileged child of th_run_unprivileged can reach inside. */
static inline char *th_mkdtemp(void)
{
    char *t = al_xstrdup("/tmp/al-test-XXXXXX");
    if (mkdtemp(t) == NULL) {
        perror("mkdtemp");
        abort();
    }
    chmod(t, 0755);
    return t;
}

static int th_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int th_chmod_w_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DP || flag == FTW_DNR)
        chmod(path, 0755);
    else if (S_ISREG(sb->st_mode))
        chmod(path, 0644);
    return 0;
}

static inline void th_rm_rf(const char *path)
{
    if (path == NULL)
        return;
    nftw(path, th_chmod_w_cb, 16, FTW_PHYS);
    nftw(path, th_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int th_chmod_ro_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        chmod(path, 0555);
    else if (S_ISREG(sb->st_mode))
        chmod(path, 0444);
    return 0;
}

/* chmod -R a-w */
static inline void th_make_readonly(const char *path)
{
    nftw(path, th_chmod_ro_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Snapshot of a tree: one line per entry with its type, size and mode.
 * Two equal snapshots mean nothing was created, removed or resized. */
static char *th_snap_buf;
static const char *th_snap_root;
static int th_snap_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    char *line = al_xasprintf("%s %o %lld\n", path + strlen(th_snap_root), (unsigned)sb->st_mode,
                              S_ISDIR(sb->st_mode) ? 0LL : (long long)sb->st_size);
    char *n = al_xasprintf("%s%s", th_snap_buf ? th_snap_buf : "", line);
    free(line);
    free(th_snap_buf);
    th_snap_buf = n;
    return 0;
}

static inline char *th_snapshot(const char *root)
{
    th_snap_buf = NULL;
    th_snap_root = root;
    nftw(root, th_snap_cb, 16, FTW_PHYS);
    char *r = th_snap_buf ? th_snap_buf : al_xstrdup("");
    th_snap_buf = NULL;
    return r;
}

/* Number of entries in a directory, "." and ".." excluded; -1 if absent. */
static inline int th_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static inline char *th_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = al_xmalloc(cap + 1);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = al_xrealloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

static inline void th_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len) {
        perror(path);
        abort();
    }
    fclose(f);
}

/* Run fn(arg) where write permission bits are honoured. As root, fork and
 * drop to nobody (65534) first, since root writes through chmod 0555;
 * otherwise call it in place. Returns fn's result (0 = pass), or 77 when
 * privileges cannot be dropped (the caller skips). */
static inline int th_run_unprivileged(int (*fn)(void *), void *arg)
{
    if (geteuid() != 0)
        return fn(arg);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 77;
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(77);
        _exit(fn(arg));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status))
        return 99;
    return WEXITSTATUS(status);
}

#endif
