/* Graph closure over a database snapshot (see closure.h).
 *
 * Nodes are identified by their index in the snapshot's sorted blobs
 * array, so "visited" is a plain bitmap; digests without a row cannot be
 * walked further (nothing says what they reference) and are collected in
 * `missing` instead. */
#include "closure.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct walker {
    const al_db_snapshot *s;
    al_closure *c;
    bool *seen;
    size_t cap;
    char **stack;
    size_t n_stack, cap_stack;
} walker;

static void note_missing(walker *w, const char *digest)
{
    al_closure *c = w->c;
    for (size_t i = 0; i < c->n_missing; i++)
        if (strcmp(c->missing[i], digest) == 0)
            return;
    c->missing = al_xrealloc(c->missing, (c->n_missing + 1) * sizeof(*c->missing));
    c->missing[c->n_missing++] = al_xstrdup(digest);
}

static void push(walker *w, const char *digest)
{
    if (w->n_stack == w->cap_stack) {
        w->cap_stack = w->cap_stack ? 2 * w->cap_stack : 32;
        w->stack = al_xrealloc(w->stack, w->cap_stack * sizeof(*w->stack));
    }
    w->stack[w->n_stack++] = (char *)digest;
}

/* Visit digest: record it; push what it references (in reverse, so that
 * the walk goes in edge order). */
static void visit(walker *w, const char *digest)
{
    const al_db_snapshot *s = w->s;
    al_closure *c = w->c;
    long bi = al_db_snapshot_blob_index(s, digest);
    if (bi < 0) {
        note_missing(w, digest);
        /* A manifest row without its blob row can still be walked. */
        if (al_db_snapshot_manifest(s, digest) == NULL)
            return;
    } else {
        if (w->seen[bi])
            return;
        w->seen[bi] = true;
        c->blobs = al_xrealloc(c->blobs, (c->n + 1) * sizeof(*c->blobs));
        c->blobs[c->n++] = bi;
        c->bytes += s->blobs[bi].size;
    }
    size_t ne = 0;
    const al_graph_edge *e = al_db_snapshot_children(s, digest, &ne);
    const al_db_manifest *m = al_db_snapshot_manifest(s, digest);
    for (size_t i = ne; i-- > 0;)
        push(w, e[i].child);
    /* The config is an edge too, but the manifest row names it
     * independently; a missing config edge must not hide the config. */
    if (m != NULL && m->config_digest[0] != '\0')
        push(w, m->config_digest);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

void al_closure_compute(al_closure *out, const al_db_snapshot *s, const char *root)
{
    memset(out, 0, sizeof(*out));
    walker w = {.s = s, .c = out};
    w.seen = al_xcalloc(s->n_blobs + 1, sizeof(*w.seen));
    push(&w, root);
    while (w.n_stack > 0) {
        const char *d = w.stack[--w.n_stack];
        if (al_db_snapshot_blob_index(s, d) < 0) {
            /* A digest without a row has no "seen" bit: its place in
             * `missing` guards against walking it twice (or in a
             * cycle of a hand-edited edges table). */
            bool again = false;
            for (size_t i = 0; i < out->n_missing && !again; i++)
                again = strcmp(out->missing[i], d) == 0;
            if (again)
                continue;
        }
        visit(&w, d);
    }
    free(w.stack);
    free(w.seen);
    out->sorted = al_xmalloc((out->n + 1) * sizeof(*out->sorted));
    if (out->n > 0)
        memcpy(out->sorted, out->blobs, out->n * sizeof(*out->sorted));
    qsort(out->sorted, out->n, sizeof(*out->sorted), cmp_long);
}

bool al_closure_has(const al_closure *c, long blob_index)
{
    return bsearch(&blob_index, c->sorted, c->n, sizeof(*c->sorted), cmp_long) != NULL;
}

void al_closure_dispose(al_closure *c)
{
    if (c == NULL)
        return;
    free(c->blobs);
    free(c->sorted);
    for (size_t i = 0; i < c->n_missing; i++)
        free(c->missing[i]);
    free(c->missing);
    memset(c, 0, sizeof(*c));
}
