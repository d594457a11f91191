/* Allocation that aborts on failure, cleanup helpers, times and byte counts (see util.h). */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
    fputs("airlock: out of memory\n", stderr);
    abort();
}

void *al_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *al_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *al_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *al_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        oom();
    return p;
}

char *al_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        oom();
    return p;
}

char *al_xvasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        oom();
    return s;
}

char *al_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = al_xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

char *al_format_bytes(char *buf, size_t len, uint64_t bytes)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < AL_ARRAY_SIZE(units)) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

double al_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *al_format_utc(char *buf, size_t len, double epoch)
{
    /* Truncated to the millisecond, with a microsecond of slack: 0.1 is
     * not exact in binary, and a time read back from its text
     * (al_parse_utc) must print as that text. */
    long long ms_total = epoch > 0 ? (long long)(epoch * 1000.0 + 0.001) : 0;
    time_t secs = (time_t)(ms_total / 1000);
    int ms = (int)(ms_total % 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, ms);
    return buf;
}

/* Digits s[at..at+n) as a number, or -1 when one is not a digit. */
static int digits(const char *s, size_t at, size_t n)
{
    int v = 0;
    for (size_t i = at; i < at + n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool al_parse_utc(const char *s, double *out)
{
    /* YYYY-MM-DDTHH:MM:SS[.mmm]Z, position by position: no sign, no space,
     * no other width (sscanf's %d would take " 1" and "+1"). */
    size_t len = strlen(s);
    if ((len != 20 && len != 24) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[len - 1] != 'Z' || (len == 24 && s[19] != '.'))
        return false;
    int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2), h = digits(s, 11, 2),
        mi = digits(s, 14, 2), se = digits(s, 17, 2), ms = len == 24 ? digits(s, 20, 3) : 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 60 || ms < 0)
        return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out = (double)t + ms / 1000.0;
    return true;
}

double al_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int al_create_unique_at(int dirfd, const char *stem, const char *suffix, int flags, char **name_out)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
            rnd =
                (uint64_t)getpid() * 2654435761u ^ (uint64_t)(al_mono() * 1e9) ^ (uint64_t)attempt;
        char *name = al_xasprintf("%.200s.%016llx%s", stem, (unsigned long long)rnd, suffix);
        int fd = openat(dirfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *name_out = name;
            return fd;
        }
        int e = errno;
        free(name);
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

int al_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t al_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

void al_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

void al_fclosep(FILE **f)
{
    if (*f != NULL)
        fclose(*f);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int al_dir_names(int dirfd, const char *rel, char ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    /* A fresh open file description: fdopendir takes it over, and the
     * caller's dirfd keeps its own offset. */
    int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return -e;
    }
    char **v = NULL;
    size_t n = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        v = al_xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = al_xstrdup(de->d_name);
        errno = 0;
    }
    int e = errno;
    closedir(d);
    if (e != 0) {
        al_strv_free(v, n);
        return -e;
    }
    if (n > 0)
        qsort(v, n, sizeof(*v), cmp_name);
    *out = v;
    *n_out = n;
    return 0;
}

void al_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void al_free_secret(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

bool al_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}
