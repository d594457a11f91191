/* One airlock-export --bundle run (bundle-run.h). */
#include "bundle-run.h"
#include "bundle-plan.h"
#include "bundle-write.h"
#include "export-report.h"
#include "since.h"
#include "../common/jsondoc.h"
#include "../common/log.h"
#include "../common/sanitize.h"
#include "../common/store.h"
#include "../common/util.h"
#include "../db/db.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPORT_FORMAT 1

/* Everything one run holds, released in one place. */
typedef struct brun {
    const al_bundle_run_opts *o;
    double started_at;
    al_since since;
    bool since_loaded;
    al_store *store;
    al_db *db;
    al_ref **refs;
    al_bundle_plan plan;
    bool planned;
    al_bundle_files files;
    bool written;
    al_error *error; /* what stopped the run */
} brun;

static int fail(brun *R, al_error *e, int exit_code)
{
    al_error_log("%s", e != NULL ? e->msg : "unknown error");
    if (R->error == NULL)
        R->error = e;
    else
        al_error_free(e);
    return exit_code;
}

/* Terminal progress: at most ten redraws a second. */
typedef struct progress {
    double start, last;
} progress;

static void draw(void *ud, uint64_t done, uint64_t total)
{
    progress *p = ud;
    double now = al_mono();
    if (done < total && now - p->last < 0.1)
        return;
    p->last = now;
    char a[32], b[32];
    fprintf(stderr, "\r\033[Kbundle: %3.0f%% %s / %s",
            total ? 100.0 * (double)done / (double)total : 100.0,
            al_format_bytes(a, sizeof(a), done), al_format_bytes(b, sizeof(b), total));
    if (done >= total)
        fputs("\r\033[K", stderr);
}

/* --- the report ------------------------------------------------------------- */

static json_t *bundle_json(const brun *R)
{
    const al_bundle_plan *p = &R->plan;
    json_t *b = json_object();
    json_object_set_new(b, "id", json_string(p->m.id));
    json_object_set_new(b, "source_store", json_string(p->m.source_store));
    json_object_set_new(b, "base_bundle", al_json_str_or_null(p->m.base));
    json_object_set_new(b, "since", al_json_str_or_null(p->m.since_kind));
    json_object_set_new(b, "tags", json_integer((json_int_t)p->m.n_tags));
    json_object_set_new(b, "blobs", json_integer((json_int_t)p->m.n_blobs));
    json_object_set_new(b, "blob_bytes", json_integer((json_int_t)p->carried_bytes));
    json_object_set_new(b, "omitted", json_integer((json_int_t)p->m.n_omitted));
    json_object_set_new(b, "omitted_bytes", json_integer((json_int_t)p->omitted_bytes));
    json_object_set_new(b, "volumes", json_integer(p->m.volumes));
    json_t *files = json_array();
    for (size_t i = 0; R->written && i < R->files.n; i++)
        json_array_append_new(files, json_pack("{s:o, s:I}", "path",
                                               al_json_str_or_null(R->files.paths[i]), "bytes",
                                               (json_int_t)R->files.bytes[i]));
    json_object_set_new(b, "files", files);
    return b;
}

static char *report_json(const brun *R, int exit_code)
{
    const al_bundle_run_opts *o = R->o;
    json_t *root = json_object();
    json_object_set_new(root, "report_format", json_integer(REPORT_FORMAT));
    json_object_set_new(root, "tool", json_string("airlock-export"));
    json_object_set_new(root, "command", json_string("bundle"));
    json_object_set_new(root, "version", json_string(o->version));
    json_object_set_new(root, "store", al_json_str_or_null(o->store_dir));
    json_object_set_new(root, "output", al_json_str_or_null(o->out));
    json_object_set_new(root, "since", al_json_str_or_null(o->since_path));
    json_object_set_new(root, "started_at", al_json_utc(R->started_at));
    json_object_set_new(root, "finished_at", al_json_utc(al_now()));
    json_object_set_new(root, "exit_status", json_integer(exit_code));
    json_t *err = json_null();
    if (R->error != NULL) {
        _cleanup_free_ char *msg = al_sanitize(R->error->msg, AL_SANITIZE_LINE);
        err = json_pack("{s:s, s:s}", "message", msg, "code", al_errc_name(R->error->code));
    }
    json_object_set_new(root, "error", err);
    json_t *probs = json_array();
    for (size_t i = 0; R->planned && i < R->plan.n_problems; i++) {
        _cleanup_free_ char *msg = al_sanitize(R->plan.problems[i], AL_SANITIZE_LINE);
        json_array_append_new(probs, json_string(msg));
    }
    json_object_set_new(root, "problems", probs);
    json_object_set_new(root, "bundle",
                        R->planned && R->plan.n_problems == 0 ? bundle_json(R) : json_null());
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
        abort(); /* only on allocation failure */
    char *out = al_xasprintf("%s\n", text);
    free(text);
    return out;
}

/* --- the run ----------------------------------------------------------------- */

/* Without --force, none of the files may exist (lstat: a dangling symlink
 * at a name counts); the renames refuse to replace one anyway, this says
 * so before anything is written. */
static int check_files(brun *R)
{
    al_bundle_files f;
    al_bundle_files_of(&f, &R->plan, R->o->out);
    int rc = 0;
    for (size_t i = 0; i < f.n && rc == 0; i++) {
        struct stat st;
        if (!R->o->force && lstat(f.paths[i], &st) == 0) {
            al_error *e = NULL;
            al_error_set(&e, AL_E_IO, 0, "%s exists: nothing written (--force replaces it)",
                         f.paths[i]);
            rc = fail(R, e, AL_EXIT_FAILED);
        }
    }
    al_bundle_files_dispose(&f);
    return rc;
}

static void summary(const brun *R)
{
    const al_bundle_plan *p = &R->plan;
    char b1[32], b2[32], b3[32];
    uint64_t out_bytes = 0;
    for (size_t i = 0; i + 1 < R->files.n; i++)
        out_bytes += R->files.bytes[i];
    al_info("wrote bundle %s (%s%s%s): %zu tag%s, %zu blob%s carried (%s), %zu omitted (%s: the "
            "far side holds them); %u file%s, %s; its manifest: %s",
            R->o->out, p->m.id, p->m.base[0] ? ", builds on " : ", complete",
            p->m.base[0] ? p->m.base : "", p->m.n_tags, p->m.n_tags == 1 ? "" : "s", p->m.n_blobs,
            p->m.n_blobs == 1 ? "" : "s", al_format_bytes(b1, sizeof(b1), p->carried_bytes),
            p->m.n_omitted, al_format_bytes(b2, sizeof(b2), p->omitted_bytes), p->m.volumes,
            p->m.volumes == 1 ? "" : "s", al_format_bytes(b3, sizeof(b3), out_bytes),
            R->files.paths[R->files.n - 1]);
}

static int plan_and_write(brun *R)
{
    const al_bundle_run_opts *o = R->o;
    al_bundle_opts bo = {
        .kind = o->compress_set ? o->compress : al_sink_kind_from_path(o->out),
        .volume_size = o->volume_size,
        .since = R->since_loaded ? &R->since : NULL,
        .version = o->version,
    };
    al_error *err = NULL;
    if (al_bundle_plan_make(&R->plan, R->store, R->db, R->refs, o->refs->n, o->all, &bo, &err) < 0)
        return fail(R, err, al_errc_exit(err->code));
    R->planned = true;
    if (R->plan.n_problems > 0) {
        for (size_t i = 0; i < R->plan.n_problems; i++)
            al_error_log("%s", R->plan.problems[i]);
        al_error_set(&err, R->plan.problem_code, 0, "nothing written: %zu problem%s",
                     R->plan.n_problems, R->plan.n_problems == 1 ? "" : "s");
        return fail(R, err, AL_EXIT_FAILED);
    }
    int rc = check_files(R);
    if (rc != 0)
        return rc;
    progress pg = {al_mono(), 0};
    al_bundle_write_opts wo = {.out = o->out,
                               .force = o->force,
                               .kind = bo.kind,
                               .level = o->level,
                               .verify = o->verify,
                               .progress = o->progress ? draw : NULL,
                               .progress_ud = &pg};
    int r = al_bundle_write(&R->plan, R->store, &wo, &R->files, &err);
    if (o->progress)
        fputs("\r\033[K", stderr);
    if (r < 0)
        return fail(R, err, al_errc_exit(err->code));
    R->written = true;
    summary(R);
    return 0;
}

static int run(brun *R)
{
    const al_bundle_run_opts *o = R->o;
    al_error *err = NULL;
    if (o->since_path != NULL) {
        if (al_since_load(&R->since, o->since_path, &err) < 0) {
            al_error_log("%s", err->msg);
            al_error_free(err);
            return AL_EXIT_USAGE;
        }
        R->since_loaded = true;
        al_info("--since %s (%s): %zu digests the far side holds", o->since_path, R->since.kind,
                R->since.n);
    }
    if (al_store_open(&R->store, o->store_dir, AL_STORE_READONLY, &err) < 0 ||
        al_db_open(&R->db, al_store_db_path(R->store), true, &err) < 0)
        return fail(R, err, AL_EXIT_STORE);
    R->refs = al_xcalloc(o->refs->n + 1, sizeof(*R->refs));
    for (size_t i = 0; i < o->refs->n; i++)
        R->refs[i] = o->refs->items[i].ref;
    return plan_and_write(R);
}

int al_bundle_run(const al_bundle_run_opts *o)
{
    brun R = {.o = o, .started_at = al_now()};
    int rc = run(&R);
    if (o->json_path != NULL && rc != AL_EXIT_USAGE) {
        _cleanup_free_ char *text = report_json(&R, rc);
        al_error *err = NULL;
        if (al_export_write_text(o->json_path, text, strlen(text), &err) < 0) {
            al_error_log("--json: %s", err->msg);
            al_error_free(err);
            if (rc == 0)
                rc = AL_EXIT_FAILED;
        }
    }
    if (R.planned)
        al_bundle_plan_dispose(&R.plan);
    al_bundle_files_dispose(&R.files);
    if (R.since_loaded)
        al_since_dispose(&R.since);
    free(R.refs);
    if (R.db != NULL)
        al_db_free(R.db);
    if (R.store != NULL)
        al_store_free(R.store);
    al_error_free(R.error);
    return rc;
}
