/* Fuzz target for list files: al_reflist_add_buffer over arbitrary bytes.
 * Checks that every kept entry is a trimmed single word that parses to its
 * ref, that duplicates are kept once, that every problem names its line,
 * and that reading the same buffer twice adds problems but no entries. */
#include "fuzz-helpers.h"

#include "reflist.h"

#define LIST_NAME "fuzz.list"

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* "fuzz.list:N" with 1 <= N <= lines; returns what follows the number. */
static const char *check_origin(const char *s, size_t lines)
{
    size_t plen = strlen(LIST_NAME);
    FUZZ_CHECK(strncmp(s, LIST_NAME ":", plen + 1) == 0, "origin \"%s\"", s);
    char *end = NULL;
    unsigned long long n = strtoull(s + plen + 1, &end, 10);
    FUZZ_CHECK(end != s + plen + 1 && n >= 1 && n <= lines, "line %llu of %zu in \"%s\"", n, lines,
               s);
    return end;
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_list(const al_reflist *l, size_t lines)
{
    FUZZ_CHECK(l->n + l->n_problems <= lines, "%zu entries and %zu problems from %zu lines", l->n,
               l->n_problems, lines);
    for (size_t i = 0; i < l->n; i++) {
        const al_reflist_entry *e = &l->items[i];
        FUZZ_CHECK(e->ref != NULL && e->text != NULL && *e->text != '\0', "entry %zu empty", i);
        FUZZ_CHECK(strpbrk(e->text, " \t\r\n\v\f#") == NULL, "entry text \"%s\" not trimmed",
                   e->text);
        const char *rest = check_origin(e->origin, lines);
        FUZZ_CHECK(*rest == '\0', "origin \"%s\"", e->origin);

        al_ref *r = NULL;
        al_error *err = NULL;
        FUZZ_CHECK(al_ref_parse(&r, e->text, &err) == 0, "entry \"%s\" does not parse: %s", e->text,
                   err ? err->msg : "?");
        _cleanup_free_ char *a = al_ref_full(r);
        _cleanup_free_ char *b = al_ref_full(e->ref);
        FUZZ_CHECK(strcmp(a, b) == 0, "entry \"%s\" holds %s, parses to %s", e->text, b, a);
        al_ref_free(r);
    }
    /* No two entries name the same ref: sorted, no neighbours are equal
     * (n log n, so that long inputs do not slow the fuzzer down). */
    char **full = al_xcalloc(l->n ? l->n : 1, sizeof(*full));
    for (size_t i = 0; i < l->n; i++)
        full[i] = al_ref_full(l->items[i].ref);
    qsort(full, l->n, sizeof(*full), str_ptr_cmp);
    for (size_t i = 1; i < l->n; i++)
        FUZZ_CHECK(strcmp(full[i - 1], full[i]) != 0, "duplicate %s kept", full[i]);
    for (size_t i = 0; i < l->n; i++)
        free(full[i]);
    free(full);
    for (size_t i = 0; i < l->n_problems; i++) {
        const char *rest = check_origin(l->problems[i], lines);
        FUZZ_CHECK(strncmp(rest, ": ", 2) == 0 && rest[2] != '\0', "problem \"%s\"",
                   l->problems[i]);
        FUZZ_CHECK(printable(l->problems[i]) && strlen(l->problems[i]) < 1024,
                   "problem not printable or too long");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
    char *buf = al_xmalloc(size ? size : 1);
    if (size > 0)
        memcpy(buf, data, size);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += buf[i] == '\n';

    al_reflist l;
    al_reflist_init(&l);
    al_reflist_add_buffer(&l, LIST_NAME, buf, size);
    check_list(&l, lines);

    size_t n = l.n, n_problems = l.n_problems;
    al_reflist_add_buffer(&l, LIST_NAME, buf, size);
    FUZZ_CHECK(l.n == n, "second read added entries: %zu -> %zu", n, l.n);
    FUZZ_CHECK(l.n_problems == 2 * n_problems, "second read: %zu problems, then %zu", n_problems,
               l.n_problems);

    al_reflist_dispose(&l);
    free(buf);
    return 0;
}
