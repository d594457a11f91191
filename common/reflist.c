/* Reference lists from arguments and list files.
 *
 * Nothing here stops at the first bad line: every problem is collected so
 * that the user can fix a whole list in one go, and the programs refuse to
 * start any network traffic while problems remain. */
#include "reflist.h"
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096
/* A list of refs is small; anything this big is the wrong file. */
#define FILE_MAX_LEN (64u * 1024 * 1024)
#define STDIN_NAME "<stdin>"
#define INITIAL_CAP 8

void al_reflist_init(al_reflist *l)
{
    memset(l, 0, sizeof(*l));
}

void al_reflist_dispose(al_reflist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        al_ref_free(l->items[i].ref);
        free(l->items[i].text);
        free(l->items[i].origin);
    }
    free(l->items);
    for (size_t i = 0; i < l->n_problems; i++)
        free(l->problems[i]);
    free(l->problems);
    free(l->seen);
    al_reflist_init(l);
}

/* The struct has no capacity field: capacity is implied by n (at least
 * INITIAL_CAP, doubling), so grow exactly when n reaches it. */
static void *grow(void *arr, size_t n, size_t elem)
{
    if (n == 0)
        return al_xrealloc(arr, INITIAL_CAP * elem);
    if (n >= INITIAL_CAP && (n & (n - 1)) == 0)
        return al_xrealloc(arr, 2 * n * elem);
    return arr;
}

static void add_problem(al_reflist *l, char *msg)
{
    l->problems = grow(l->problems, l->n_problems, sizeof(*l->problems));
    l->problems[l->n_problems++] = msg;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool ref_eq(const al_ref *a, const al_ref *b)
{
    return str_eq(a->domain, b->domain) && str_eq(a->path, b->path) && str_eq(a->tag, b->tag) &&
           str_eq(a->digest, b->digest);
}

/* FNV-1a over the parts ref_eq compares, each followed by a separator
 * byte that no part contains (so "a"+"bc" and "ab"+"c" differ). */
static uint64_t hash_part(uint64_t h, const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (h ^ (s == NULL ? 0x01u : 0x02u)) * 1099511628211u;
}

static uint64_t ref_hash(const al_ref *r)
{
    uint64_t h = 14695981039346656037u;
    h = hash_part(h, r->domain);
    h = hash_part(h, r->path);
    h = hash_part(h, r->tag);
    return hash_part(h, r->digest);
}

/* Slot of ref in the set: the one holding an equal item, or the empty one
 * where it would go. Slots hold item index + 1; 0 is empty. */
static size_t seen_slot(const al_reflist *l, const al_ref *ref)
{
    size_t mask = l->seen_cap - 1;
    size_t i = (size_t)ref_hash(ref) & mask;
    while (l->seen[i] != 0 && !ref_eq(l->items[l->seen[i] - 1].ref, ref))
        i = (i + 1) & mask;
    return i;
}

/* Keep the set at most half full: rebuild it twice as large. */
static void seen_reserve(al_reflist *l)
{
    if (l->seen_cap != 0 && (l->n + 1) * 2 <= l->seen_cap)
        return;
    size_t cap = l->seen_cap ? l->seen_cap * 2 : 64;
    free(l->seen);
    l->seen = al_xcalloc(cap, sizeof(*l->seen));
    l->seen_cap = cap;
    for (size_t k = 0; k < l->n; k++)
        l->seen[seen_slot(l, l->items[k].ref)] = k + 1;
}

/* Takes ownership of ref and origin. The first occurrence of a ref wins,
 * so its origin is the one reported later. */
static void add_entry(al_reflist *l, al_ref *ref, const char *text, char *origin)
{
    seen_reserve(l);
    size_t slot = seen_slot(l, ref);
    if (l->seen[slot] != 0) {
        al_ref_free(ref);
        free(origin);
        return;
    }
    l->items = grow(l->items, l->n, sizeof(*l->items));
    l->items[l->n++] = (al_reflist_entry){
        .ref = ref,
        .text = al_xstrdup(text),
        .origin = origin,
    };
    l->seen[slot] = l->n;
}

/* Parse text; on failure record "origin: reason" as a problem. */
static void add_text(al_reflist *l, const char *text, char *origin)
{
    al_ref *ref = NULL;
    al_error *err = NULL;
    if (al_ref_parse(&ref, text, &err) < 0) {
        add_problem(l, al_xasprintf("%s: %s", origin, err ? err->msg : "invalid reference"));
        al_error_free(err);
        free(origin);
        return;
    }
    add_entry(l, ref, text, origin);
}

void al_reflist_add_arg(al_reflist *l, const char *text, int argno)
{
    add_text(l, text, al_xasprintf("argument %d", argno));
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void add_line(al_reflist *l, const char *name, size_t lineno, const char *p, size_t n)
{
    char *origin = al_xasprintf("%s:%zu", name, lineno);
    if (n > LINE_MAX_LEN) {
        add_problem(l,
                    al_xasprintf("%s: line too long (%zu bytes, max %d)", origin, n, LINE_MAX_LEN));
        free(origin);
        return;
    }
    /* Checked before the comment is cut: a NUL anywhere means a binary or
     * UTF-16 file, and a ref read from it would be a guess. */
    if (memchr(p, '\0', n) != NULL) {
        add_problem(l, al_xasprintf("%s: line contains a NUL byte", origin));
        free(origin);
        return;
    }
    /* A ref never contains '#', so the first one starts the comment. */
    const char *hash = memchr(p, '#', n);
    if (hash != NULL)
        n = (size_t)(hash - p);
    while (n > 0 && is_space(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_space(p[n - 1]))
        n--;
    if (n == 0) {
        free(origin);
        return;
    }
    size_t word = 0;
    while (word < n && !is_space(p[word]))
        word++;
    _cleanup_free_ char *text = al_xstrndup(p, word);
    if (word < n) {
        /* Report a bad first word as such; otherwise the extra text. */
        al_ref *ref = NULL;
        al_error *err = NULL;
        if (al_ref_parse(&ref, text, &err) < 0)
            add_problem(l, al_xasprintf("%s: %s", origin, err ? err->msg : "invalid reference"));
        else
            add_problem(l, al_xasprintf("%s: unexpected text after reference \"%s\" (one "
                                        "reference per line)",
                                        origin, text));
        al_ref_free(ref);
        al_error_free(err);
        free(origin);
        return;
    }
    add_text(l, text, origin);
}

void al_reflist_add_buffer(al_reflist *l, const char *name, const char *buf, size_t len)
{
    /* Editors on Windows like to start files with a UTF-8 byte order mark. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    size_t lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        add_line(l, name, lineno, buf + pos, end - pos);
        pos = end + 1;
    }
}

/* Read all of fd into a malloc'd buffer. 0 or -errno (-EFBIG when huge). */
static int read_all(int fd, char **out, size_t *out_len)
{
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = al_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= FILE_MAX_LEN)
                return -EFBIG;
            cap *= 2;
            buf = al_xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *out = al_steal_ptr(&buf);
    *out_len = len;
    return 0;
}

int al_reflist_add_file(al_reflist *l, const char *path, al_error **err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? STDIN_NAME : path;
    _cleanup_close_ int fd = -1;
    if (!is_stdin) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return al_error_set(err, AL_E_IO, errno, "open %s", path);
    }
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    /* stdin is read through its fd but not closed: it is not ours. */
    int r = read_all(is_stdin ? STDIN_FILENO : fd, &buf, &len);
    if (r == -EFBIG)
        return al_error_set(err, AL_E_SIZE, 0, "read %s: larger than %u MiB, not a list of refs",
                            name, FILE_MAX_LEN / (1024 * 1024));
    if (r < 0)
        return al_error_set(err, AL_E_IO, -r, "read %s", name);
    al_reflist_add_buffer(l, name, buf, len);
    return 0;
}
