/* Allocation helpers (abort on OOM), cleanup attributes and small string
 * helpers shared by every module. */
#ifndef AL_UTIL_H
#define AL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

void *al_xmalloc(size_t n);
void *al_xcalloc(size_t n, size_t size);
void *al_xrealloc(void *p, size_t n);
char *al_xstrdup(const char *s);
char *al_xstrndup(const char *s, size_t n);
char *al_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *al_xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Human-readable byte count ("1.2 MB"), into buf. Returns buf. */
char *al_format_bytes(char *buf, size_t len, uint64_t bytes);

/* Seconds since the epoch, with sub-second precision (CLOCK_REALTIME). */
double al_now(void);
/* "2024-05-01T12:00:00.250Z" (UTC, milliseconds) into buf. Returns buf. */
char *al_format_utc(char *buf, size_t len, double epoch);
/* The inverse: exactly that form (the ".250" part optional), into *out.
 * false for anything else. */
bool al_parse_utc(const char *s, double *out);
/* Monotonic seconds. */
double al_mono(void);

/* s ends with suffix (case matters). */
bool al_has_suffix(const char *s, const char *suffix);

/* Wipe a secret (password, token, Authorization value) with
 * explicit_bzero, then free it. Accepts NULL. */
void al_free_secret(char *s);

/* Create a new file in dirfd named "STEM.<16 random hex>SUFFIX" (STEM cut
 * to 200 bytes), open with `flags` (O_WRONLY or O_RDWR, plus any of
 * O_NONBLOCK...) and O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0644 minus
 * the umask (mkstemp would force 0600). Whatever stands at a name, a
 * planted symlink too, makes it try another; nothing is opened through
 * it. Returns the fd and *name_out (malloc'd), or -errno. */
int al_create_unique_at(int dirfd, const char *stem, const char *suffix, int flags,
                        char **name_out);
/* Write all of buf to fd, retrying on EINTR and short writes. 0 or -errno. */
int al_write_all(int fd, const void *buf, size_t len);
/* Read until len bytes or end of file (EINTR retried): the bytes read,
 * fewer at end of file, or -errno. */
ssize_t al_read_all(int fd, void *buf, size_t len);

/* The names in the directory rel below dirfd ("." for dirfd itself),
 * sorted, without "." and "..". rel is opened with O_NOFOLLOW: a symlink
 * there is refused (-ELOOP or -ENOTDIR), never listed through. *out is a
 * malloc'd array of malloc'd names (al_strv_free). 0 or -errno. */
int al_dir_names(int dirfd, const char *rel, char ***out, size_t *n_out);
void al_strv_free(char **v, size_t n);

/* Cleanup attributes (crun/systemd style). */
static inline void al_freep(void *p)
{
    free(*(void **)p);
}
void al_closep(int *fd);
void al_fclosep(FILE **f);
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(al_freep)
#define _cleanup_close_ _cleanup_(al_closep)
#define _cleanup_fclose_ _cleanup_(al_fclosep)

static inline void *al_steal_ptr_impl(void **pp)
{
    void *p = *pp;
    *pp = NULL;
    return p;
}
#define al_steal_ptr(pp) al_steal_ptr_impl((void **)(pp))
static inline int al_steal_fd(int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}

#define AL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
