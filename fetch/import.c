/* airlock-fetch --import BUNDLE (import.h): the bundle's files, the chain
 * rule, the commit, what is printed and reported. The staging is in
 * import-stage.c, the graphs in import-graph.c. */
#include "import.h"
#include "import-private.h"
#include "file.h"
#include "log.h"
#include "report.h"
#include "sanitize.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Omitted blobs this store lacks: name this many, then count the rest. */
#define MAX_NAMED 3

/* --- lookups ------------------------------------------------------------------ */

static const al_bundle_manifest *sort_ctx;

static int cmp_blob_idx(const void *a, const void *b)
{
    return strcmp(sort_ctx->blobs[*(const size_t *)a].digest,
                  sort_ctx->blobs[*(const size_t *)b].digest);
}

long imp_blob_index(const al_import *imp, const char *digest)
{
    size_t lo = 0, hi = imp->m.n_blobs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(imp->m.blobs[imp->by_digest[mid]].digest, digest);
        if (c == 0)
            return (long)imp->by_digest[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const imp_member *)a)->digest, ((const imp_member *)b)->digest);
}

/* The blob index, and the members the tar must hold (one per digest). */
static void index_manifest(al_import *imp)
{
    const al_bundle_manifest *m = &imp->m;
    imp->blobs = al_xcalloc(m->n_blobs + 1, sizeof(*imp->blobs));
    imp->by_digest = al_xcalloc(m->n_blobs + 1, sizeof(*imp->by_digest));
    size_t n = 0;
    for (size_t i = 0; i < m->n_blobs; i++) {
        imp->by_digest[i] = i;
        n += m->blobs[i].n_parts > 0 ? m->blobs[i].n_parts : 1;
    }
    sort_ctx = m;
    qsort(imp->by_digest, m->n_blobs, sizeof(*imp->by_digest), cmp_blob_idx);
    imp->members = al_xcalloc(n + 1, sizeof(*imp->members));
    for (size_t i = 0; i < m->n_blobs; i++) {
        const al_bundle_blob *b = &m->blobs[i];
        for (size_t k = 0; k < (b->n_parts > 0 ? b->n_parts : 1); k++) {
            imp_member *mb = &imp->members[imp->n_members++];
            memcpy(mb->digest, b->n_parts > 0 ? b->parts[k].digest : b->digest, AL_DIGEST_BUF);
            mb->size = b->n_parts > 0 ? b->parts[k].size : b->size;
            mb->blob = i;
        }
    }
    qsort(imp->members, imp->n_members, sizeof(*imp->members), cmp_member);
    size_t u = 0; /* a part with the bytes of a whole blob: one member */
    for (size_t i = 0; i < imp->n_members; i++)
        if (u == 0 || strcmp(imp->members[u - 1].digest, imp->members[i].digest) != 0)
            imp->members[u++] = imp->members[i];
    imp->n_members = u;
}

/* --- the bundle's files -------------------------------------------------------- */

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Volume 1 (or the whole bundle), from the path as given: BUNDLE, any of
 * its volumes BUNDLE.NNN, or the stem of them. *base_out: the stem when
 * the bundle is in volumes. */
static int open_first(al_import *imp, char **base_out, al_error **err)
{
    const char *path = imp->path;
    *base_out = NULL;
    if (!is_file(path)) {
        _cleanup_free_ char *v1 = al_bundle_volume_path(path, 1);
        if (!is_file(v1))
            return al_error_set(err, AL_E_NOT_FOUND, 0, "%s: no such bundle (nor %s)", path, v1);
        *base_out = al_xstrdup(path);
        return al_bundle_open(&imp->first, v1, err);
    }
    int r = al_bundle_open(&imp->first, path, err);
    const al_bundle_volume *v = r == 0 ? al_bundle_reader_volume(imp->first) : NULL;
    if (r < 0 || v == NULL)
        return r;
    unsigned n = 0;
    if (!al_bundle_volume_split(path, base_out, &n) || n != v->volume)
        return al_error_set(err, AL_E_USAGE, 0,
                            "%s is volume %u of %u of a bundle, but its name does not end in "
                            ".%03u: keep the names airlock-export gave the volumes",
                            path, v->volume, v->volumes, v->volume);
    if (v->volume == 1)
        return 0;
    al_bundle_close(imp->first);
    imp->first = NULL;
    _cleanup_free_ char *v1 = al_bundle_volume_path(*base_out, 1);
    if (!is_file(v1))
        return al_error_set(err, AL_E_NOT_FOUND, 0,
                            "volume 1 of %u (%s) is missing: nothing was imported", v->volumes, v1);
    return al_bundle_open(&imp->first, v1, err);
}

/* Every volume must be there before a byte is read. */
static int find_volumes(al_import *imp, const char *base, al_error **err)
{
    const al_bundle_volume *v = al_bundle_reader_volume(imp->first);
    if (v == NULL && imp->m.volumes != 1)
        return al_error_set(err, AL_E_PARSE, 0,
                            "%s: its manifest says %u volumes, but it is no volume", imp->path,
                            imp->m.volumes);
    imp->n_vols = v != NULL ? v->volumes : 1;
    if (imp->n_vols != imp->m.volumes || (v != NULL && strcmp(v->bundle_id, imp->m.id) != 0))
        return al_error_set(err, AL_E_PARSE, 0,
                            "%s: its volume header and its manifest disagree (bundle %s, %u "
                            "volumes)",
                            al_bundle_reader_path(imp->first), imp->m.id, imp->m.volumes);
    imp->vol_paths = al_xcalloc(imp->n_vols + 1, sizeof(*imp->vol_paths));
    size_t missing = 0;
    const char *first_missing = NULL;
    for (unsigned k = 1; k <= imp->n_vols; k++) {
        imp->vol_paths[k - 1] =
            base != NULL ? al_bundle_volume_path(base, k) : al_xstrdup(imp->path);
        if (!is_file(imp->vol_paths[k - 1]) && missing++ == 0)
            first_missing = imp->vol_paths[k - 1];
    }
    if (missing == 0)
        return 0;
    unsigned k = 1;
    while (imp->vol_paths[k - 1] != first_missing)
        k++;
    char more[64] = "";
    if (missing > 1)
        snprintf(more, sizeof(more), " (and %zu more)", missing - 1);
    return al_error_set(err, AL_E_NOT_FOUND, 0,
                        "volume %u of %u (%s) is missing%s: nothing was imported", k, imp->n_vols,
                        first_missing, more);
}

static int read_manifest(al_import *imp, al_error **err)
{
    _cleanup_free_ char *base = NULL;
    int r = open_first(imp, &base, err);
    if (r < 0)
        return r;
    size_t len = 0;
    const char *text = al_bundle_reader_manifest(imp->first, &len);
    if ((r = al_bundle_manifest_parse(&imp->m, text, len, err)) < 0)
        return al_error_wrap(err, "%s", al_bundle_reader_path(imp->first));
    al_digest_bytes(imp->manifest_digest, text, len);
    const al_bundle_volume *v = al_bundle_reader_volume(imp->first);
    if (v != NULL && strcmp(v->manifest_digest, imp->manifest_digest) != 0)
        return al_error_set(err, AL_E_DIGEST, 0,
                            "%s: its manifest hashes to %s, its volume header says %s: damaged",
                            al_bundle_reader_path(imp->first), imp->manifest_digest,
                            v->manifest_digest);
    if ((r = find_volumes(imp, base, err)) < 0)
        return r;
    index_manifest(imp);
    imp->source = al_xasprintf("bundle %s", imp->m.id);
    return 0;
}

/* --- the chain rule ----------------------------------------------------------- */

static char *when(double t, char *buf, size_t len)
{
    return al_format_utc(buf, len, t);
}

/* 1: applied before (a no-op), 0: go on, negative: refused. */
static int check_chain(al_import *imp, al_db_bundle *before, al_error **err)
{
    const al_bundle_manifest *m = &imp->m;
    bool found = false;
    int r = al_db_bundle_get(imp->db, m->id, before, &found, err);
    if (r < 0 || found)
        return r < 0 ? r : 1;
    if (m->base[0] != '\0') {
        al_db_bundle base;
        if ((r = al_db_bundle_get(imp->db, m->base, &base, &found, err)) < 0)
            return r;
        if (!found)
            return al_error_set(err, AL_E_NOT_FOUND, 0,
                                "bundle %s builds on bundle %s, which this store never applied: "
                                "apply %s first",
                                m->id, m->base, m->base);
    }
    al_db_bundle last;
    if ((r = al_db_bundle_last(imp->db, m->source_store, &last, &found, err)) < 0)
        return r;
    char t1[40], t2[40];
    if (found && m->created_at < last.created_at)
        return al_error_set(err, AL_E_UNSUPPORTED, 0,
                            "bundle %s (made %s) is older than bundle %s (made %s), the last "
                            "applied from store %s: it would move tags back; make a new bundle "
                            "--since the manifest of %s",
                            m->id, when(m->created_at, t1, sizeof(t1)), last.id,
                            when(last.created_at, t2, sizeof(t2)), m->source_store, last.id);
    return 0;
}

/* Every blob the bundle omits must be here (a row, with its size): what
 * --since said the far side holds must be true of this store. */
static int check_omitted(al_import *imp, al_error **err)
{
    const al_bundle_manifest *m = &imp->m;
    size_t missing = 0;
    _cleanup_free_ char *named = al_xstrdup("");
    for (size_t i = 0; i < m->n_omitted; i++) {
        bool found = false;
        int64_t size = -1;
        int r = al_db_blob_get(imp->db, m->omitted[i].digest, &found, &size, err);
        if (r < 0)
            return r;
        if (found && (uint64_t)size == m->omitted[i].size)
            continue;
        if (missing++ < MAX_NAMED) {
            char *t = al_xasprintf("%s%s%s", named, *named ? ", " : "", m->omitted[i].digest);
            free(named);
            named = t;
        }
    }
    if (missing == 0)
        return 0;
    char more[64] = "";
    if (missing > MAX_NAMED)
        snprintf(more, sizeof(more), " and %zu more", missing - MAX_NAMED);
    return al_error_set(err, AL_E_NOT_FOUND, 0,
                        "bundle %s omits %zu blob%s this store lacks (%s%s): it was made --since "
                        "%s that does not describe this store%s%s; make one --since an inventory "
                        "of this store (airlock-export --list --json)",
                        m->id, missing, missing == 1 ? "" : "s", named, more,
                        m->since_kind ? m->since_kind : "a file",
                        m->base[0] ? ", or this store pruned what bundle " : "",
                        m->base[0] ? m->base : "");
}

/* --- the commit ---------------------------------------------------------------- */

static int commit(al_import *imp, char (*moved)[AL_DIGEST_BUF], al_error **err)
{
    const al_bundle_manifest *m = &imp->m;
    al_db_import_blob *rows = al_xcalloc(m->n_blobs + 1, sizeof(*rows));
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->n_blobs; i++) {
        rows[i] = (al_db_import_blob){m->blobs[i].digest, (int64_t)m->blobs[i].size,
                                      imp->blobs[i].media_type};
        bytes += m->blobs[i].size;
    }
    al_db_bundle b = {.created_at = m->created_at,
                      .tags = (int64_t)m->n_tags,
                      .blobs = (int64_t)m->n_blobs,
                      .bytes = (int64_t)bytes};
    memcpy(b.id, m->id, sizeof(b.id));
    memcpy(b.source_store, m->source_store, sizeof(b.source_store));
    memcpy(b.base, m->base, sizeof(b.base));
    al_db_import di = {rows, m->n_blobs, imp->graphs, m->n_tags, &b};
    int r = imp_stage_publish(imp, err);
    if (r == 0)
        r = al_db_import_commit(imp->db, &di, imp->run_id, moved, err);
    free(rows);
    return r;
}

/* Status of each tag: moved (the commit says from what), unchanged (it
 * was at that digest already), or new. */
static int tag_states(al_import *imp, bool *had_same, al_error **err)
{
    for (size_t t = 0; t < imp->m.n_tags; t++) {
        al_tag tag;
        bool found = false;
        int r = al_db_tag_get(imp->db, imp->m.tags[t].name, &tag, &found, err);
        if (r < 0)
            return r;
        had_same[t] = found && strcmp(tag.digest, imp->m.tags[t].digest) == 0;
        al_tag_dispose(&tag);
    }
    return 0;
}

static int apply(al_import *imp, al_error **err)
{
    int r = imp_stage_open(imp, err);
    if (r == 0)
        r = imp_stage_read(imp, err);
    if (r == 0)
        r = imp_graphs(imp, err);
    bool *had_same = al_xcalloc(imp->m.n_tags + 1, sizeof(*had_same));
    char(*moved)[AL_DIGEST_BUF] = al_xcalloc(imp->m.n_tags + 1, AL_DIGEST_BUF);
    if (r == 0)
        r = tag_states(imp, had_same, err);
    if (r == 0)
        r = commit(imp, moved, err);
    for (size_t t = 0; r == 0 && t < imp->m.n_tags; t++) {
        al_image_result *res = &imp->results[t];
        res->done_at = al_mono();
        if (moved[t][0] != '\0') {
            res->status = AL_IMG_MOVED;
            memcpy(res->old_digest, moved[t], AL_DIGEST_BUF);
        } else {
            res->status = had_same[t] ? AL_IMG_UNCHANGED : AL_IMG_OK;
        }
    }
    free(had_same);
    free(moved);
    if (r == 0) {
        /* Visible now; index.json follows the tags (it may lag, never lead). */
        r = al_fetch_write_index(imp->store, imp->db, err);
        imp_stage_remove(imp->store, imp->stage_name);
    }
    return r;
}

/* --- output ------------------------------------------------------------------------ */

static const char *word(al_image_status s)
{
    return s == AL_IMG_MOVED ? "moved" : s == AL_IMG_UNCHANGED ? "unchanged" : "ok";
}

static void print_results(const al_import *imp, double elapsed)
{
    al_report_totals t;
    al_report_totals_of(&t, imp->results, imp->m.n_tags);
    for (size_t i = 0; i < imp->m.n_tags; i++) {
        const al_image_result *r = &imp->results[i];
        char b[32];
        if (r->status == AL_IMG_MOVED)
            printf("%-9s %s  %s -> %s  %s  %d new blob%s, %s\n", word(r->status), r->full_name,
                   r->old_digest, r->digest, r->platforms, r->new_blobs,
                   r->new_blobs == 1 ? "" : "s", al_format_bytes(b, sizeof(b), r->new_bytes));
        else
            printf("%-9s %s  %s  %s  %d new blob%s, %s\n", word(r->status), r->full_name, r->digest,
                   r->platforms, r->new_blobs, r->new_blobs == 1 ? "" : "s",
                   al_format_bytes(b, sizeof(b), r->new_bytes));
    }
    char b[32];
    _cleanup_free_ char *base =
        imp->m.base[0] ? al_xasprintf("builds on %s", imp->m.base) : al_xstrdup("complete");
    printf("imported bundle %s (%s; from store %s): %zu tag%s: %d ok, %d moved, %d unchanged; "
           "%zu new blob%s, %s in %.1fs\n",
           imp->m.id, base, imp->m.source_store, imp->m.n_tags, imp->m.n_tags == 1 ? "" : "s",
           t.ok - t.moved - t.unchanged, t.moved, t.unchanged, imp->n_fresh,
           imp->n_fresh == 1 ? "" : "s", al_format_bytes(b, sizeof(b), imp->bytes_read), elapsed);
}

/* --- the run --------------------------------------------------------------------- */

typedef struct run {
    const al_import_opts *o;
    al_import imp;
    double started_at;
    al_import_summary sum;
    bool noop;
    al_db_bundle before;
    al_error *err;
} run;

static int open_store(run *R, al_error **err)
{
    al_import *imp = &R->imp;
    int r = al_store_open(&imp->store, R->o->store_dir, AL_STORE_WRITE, err);
    if (r == 0)
        r = al_db_open(&imp->db, al_store_db_path(imp->store), false, err);
    if (r == 0)
        r = al_db_run_begin(imp->db, R->o->argv_text, &imp->run_id, err);
    return r;
}

/* An exit status. */
static int import_bundle(run *R)
{
    al_import *imp = &R->imp;
    int r = read_manifest(imp, &R->err);
    if (r < 0)
        return al_errc_exit(r);
    if (open_store(R, &R->err) < 0)
        return AL_EXIT_STORE;
    int c = check_chain(imp, &R->before, &R->err);
    if (c < 0)
        return al_errc_exit(c);
    if (c == 1) {
        R->noop = true;
        /* A rerun after a crash that followed the commit: finish its work. */
        _cleanup_free_ char *stage = al_xasprintf("import-%s", imp->m.id);
        imp_stage_remove(imp->store, stage);
        r = al_fetch_write_index(imp->store, imp->db, &R->err);
        return r < 0 ? al_errc_exit(r) : 0;
    }
    if ((r = check_omitted(imp, &R->err)) < 0 || (r = apply(imp, &R->err)) < 0)
        return r == AL_E_DB ? AL_EXIT_STORE : al_errc_exit(r);
    return 0;
}

static void fill_summary(run *R, int exit_code)
{
    al_import *imp = &R->imp;
    al_import_summary *s = &R->sum;
    s->bundle = R->o->bundle;
    s->id = imp->m.id;
    s->source_store = imp->m.source_store;
    s->base = imp->m.base;
    s->created_at = imp->m.created_at;
    s->volumes = imp->n_vols;
    s->status = exit_code != 0 ? "refused" : R->noop ? "already applied" : "applied";
    s->applied_at = exit_code != 0 ? 0 : R->noop ? R->before.applied_at : al_now();
    s->blobs = imp->m.n_blobs;
    s->blobs_new = imp->n_fresh;
    s->omitted = imp->m.n_omitted;
    s->bytes_new = imp->bytes_read;
}

static int write_report(run *R, int exit_code)
{
    al_import *imp = &R->imp;
    fill_summary(R, exit_code);
    bool ok = exit_code == 0 && !R->noop;
    al_report rep = {.run_id = imp->run_id,
                     .started_at = R->started_at,
                     .finished_at = al_now(),
                     .t0 = imp->t0,
                     .store_dir = R->o->store_dir,
                     .version = R->o->version,
                     .results = ok ? imp->results : NULL,
                     .n_results = ok ? imp->m.n_tags : 0,
                     .seconds = al_mono() - imp->t0,
                     .exit_status = exit_code,
                     .error = R->err,
                     .import = &R->sum};
    _cleanup_free_ char *json = al_report_json(&rep);
    al_error *we = NULL;
    if (al_file_write_atomic(R->o->json_path, json, strlen(json), &we) < 0) {
        al_error_log("--json: %s", we->msg);
        al_error_free(we);
        return exit_code == 0 ? AL_EXIT_FAILED : exit_code;
    }
    return exit_code;
}

static void run_dispose(run *R)
{
    al_import *imp = &R->imp;
    al_bundle_close(imp->first);
    al_strv_free(imp->vol_paths, imp->n_vols);
    for (size_t i = 0; imp->blobs != NULL && i < imp->m.n_blobs; i++)
        free(imp->blobs[i].media_type);
    free(imp->blobs);
    free(imp->by_digest);
    free(imp->members);
    imp_graphs_dispose(imp);
    if (imp->results != NULL)
        al_image_results_free(imp->results, imp->m.n_tags);
    if (imp->stage_fd > 0)
        close(imp->stage_fd);
    free(imp->stage_name);
    free(imp->source);
    al_bundle_manifest_dispose(&imp->m);
    al_db_free(imp->db);
    al_store_free(imp->store);
    al_error_free(R->err);
}

int al_import_run(const al_import_opts *o)
{
    run R = {.o = o, .started_at = al_now()};
    R.imp.path = o->bundle;
    R.imp.t0 = al_mono();
    R.imp.stage_fd = -1;
    int rc = import_bundle(&R);
    double elapsed = al_mono() - R.imp.t0;
    if (rc == 0 && R.noop) {
        char t[40];
        printf("bundle %s was applied on %s (run %lld): nothing to do\n", R.imp.m.id,
               when(R.before.applied_at, t, sizeof(t)), (long long)R.before.run_id);
    } else if (rc == 0) {
        print_results(&R.imp, elapsed);
    } else if (R.err != NULL) {
        al_error_log("%s", R.err->msg);
    }
    fflush(stdout);
    if (R.imp.db != NULL && R.imp.run_id > 0) {
        al_report_totals t;
        al_report_totals_of(&t, R.imp.results, rc == 0 && !R.noop ? R.imp.m.n_tags : 0);
        al_error *fe = NULL;
        if (al_db_run_finish(R.imp.db, R.imp.run_id, t.ok, 0, (int64_t)R.imp.bytes_read, &fe) < 0 &&
            rc == 0) {
            al_error_log("%s", fe->msg);
            rc = AL_EXIT_STORE;
        }
        al_error_free(fe);
    }
    if (o->json_path != NULL)
        rc = write_report(&R, rc);
    run_dispose(&R);
    return rc;
}
