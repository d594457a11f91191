/* What a fetch run leaves besides the store: --json and --lock (see report.h). */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sanitize.h"
#include "jsondoc.h"
#include "util.h"

void al_report_totals_of(al_report_totals *out, const al_image_result *r, size_t n)
{
    memset(out, 0, sizeof(*out));
    out->images = (int)n;
    for (size_t i = 0; i < n; i++) {
        out->new_blobs += r[i].new_blobs;
        out->bytes += r[i].new_bytes;
        switch (r[i].status) {
        case AL_IMG_FAILED: out->failed++; continue;
        case AL_IMG_UNCHANGED: out->unchanged++; break;
        case AL_IMG_MOVED: out->moved++; break;
        case AL_IMG_OK: break;
        }
        out->ok++;
    }
}

const char *al_report_status_name(al_image_status s)
{
    switch (s) {
    case AL_IMG_OK: return "ok";
    case AL_IMG_UNCHANGED: return "unchanged";
    case AL_IMG_MOVED: return "moved";
    case AL_IMG_FAILED: return "failed";
    }
    return "failed";
}

/* --- JSON ------------------------------------------------------------------ */

static json_t *image_json(const al_report *rep, const al_image_result *r)
{
    bool failed = r->status == AL_IMG_FAILED;
    int present = failed ? 0 : r->graph_blobs - r->new_blobs;
    double secs = r->done_at > 0 && r->done_at >= rep->t0 ? r->done_at - rep->t0 : 0;
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:{s:i, s:i}, s:I, s:f, s:o}", "ref",
                     r->full_name ? r->full_name : "", "status", al_report_status_name(r->status),
                     "digest", failed ? json_null() : al_json_str_or_null(r->digest), "old_digest",
                     r->status == AL_IMG_MOVED ? al_json_str_or_null(r->old_digest) : json_null(),
                     "platforms", al_json_list(failed ? NULL : r->platforms), "blobs", "new",
                     r->new_blobs, "present", present < 0 ? 0 : present, "bytes",
                     (json_int_t)r->new_bytes, "seconds", secs, "error",
                     al_json_error(failed ? r->err : NULL));
}

static json_t *prune_json(const al_prune_report *p)
{
    json_t *removed = json_array();
    for (size_t i = 0; i < p->db.n_removed; i++) {
        /* A name read back from the database, sanitised like any. */
        _cleanup_free_ char *name = al_sanitize(p->db.removed[i].full_name, AL_SANITIZE_LINE);
        json_array_append_new(
            removed, json_pack("{s:s, s:s}", "ref", name, "digest", p->db.removed[i].digest));
    }
    json_t *missing = json_array();
    for (size_t i = 0; i < p->db.n_missing; i++)
        json_array_append_new(missing, json_string(p->db.missing[i]));
    json_t *o =
        json_pack("{s:b, s:i, s:o, s:o, s:I, s:I, s:I, s:I, s:I}", "dry_run", p->dry_run, "keep",
                  p->keep, "tags_removed", removed, "tags_not_found", missing,
                  "earlier_graphs_kept", (json_int_t)p->db.n_history_kept, "blobs",
                  (json_int_t)p->db.n_blobs, "bytes", (json_int_t)p->db.bytes, "stray_files",
                  (json_int_t)p->n_stray, "stray_bytes", (json_int_t)p->stray_bytes);
    json_object_update_new(
        o,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "protected_files", (json_int_t)p->n_protected,
                  "protected_bytes", (json_int_t)p->protected_bytes, "deferred_files",
                  (json_int_t)p->n_deferred, "deferred_bytes", (json_int_t)p->deferred_bytes,
                  "tmp_files", (json_int_t)p->n_tmp, "tmp_bytes", (json_int_t)p->tmp_bytes));
    return o;
}

static json_t *time_or_null(double t)
{
    return t > 0 ? al_json_utc(t) : json_null();
}

static json_t *import_json(const al_import_summary *s)
{
    _cleanup_free_ char *path = al_sanitize(s->bundle, AL_SANITIZE_LINE);
    /* "o" hands each value over; the order is the schema's. */
    return json_pack("{s:s?, s:o, s:o, s:o, s:o, s:I, s:s?, s:o, s:I, s:I, s:I, s:I}", "bundle",
                     path, "bundle_id", al_json_str_or_null(s->id), "source_store",
                     al_json_str_or_null(s->source_store), "base_bundle",
                     al_json_str_or_null(s->base), "created_at", time_or_null(s->created_at),
                     "volumes", (json_int_t)s->volumes, "status", s->status, "applied_at",
                     time_or_null(s->applied_at), "blobs", (json_int_t)s->blobs, "blobs_new",
                     (json_int_t)s->blobs_new, "omitted", (json_int_t)s->omitted, "bytes_new",
                     (json_int_t)s->bytes_new);
}

char *al_report_json(const al_report *rep)
{
    al_report_totals tot;
    al_report_totals_of(&tot, rep->results, rep->n_results);
    json_t *images = json_array();
    for (size_t i = 0; i < rep->n_results; i++)
        json_array_append_new(images, image_json(rep, &rep->results[i]));
    json_t *totals =
        json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:f}", "images", tot.images, "ok",
                  tot.ok, "unchanged", tot.unchanged, "moved", tot.moved, "failed", tot.failed,
                  "new_blobs", tot.new_blobs, "bytes", (json_int_t)tot.bytes, "requests",
                  (json_int_t)(rep->stats ? rep->stats->requests : 0), "retries",
                  (json_int_t)(rep->stats ? rep->stats->retries : 0), "seconds", rep->seconds);
    json_t *root = json_pack(
        "{s:i, s:s, s:s, s:o, s:s, s:o, s:o, s:i, s:o, s:o, s:o}", "report_format",
        AL_REPORT_FORMAT, "tool", "airlock-fetch", "version", rep->version ? rep->version : "",
        "run_id", rep->run_id > 0 ? json_integer(rep->run_id) : json_null(), "store",
        rep->store_dir ? rep->store_dir : "", "started_at", al_json_utc(rep->started_at),
        "finished_at", al_json_utc(rep->finished_at), "exit_status", rep->exit_status, "error",
        al_json_error(rep->error), "images", images, "totals", totals);
    if (rep->prune != NULL)
        json_object_set_new(root, "prune", prune_json(rep->prune));
    if (rep->import != NULL)
        json_object_set_new(root, "import", import_json(rep->import));
    return al_json_document(root);
}

/* --- lock file ------------------------------------------------------------ */

char *al_report_lock_text(const al_report *rep)
{
    char when[40];
    _cleanup_free_ char *store = al_sanitize(rep->store_dir, AL_SANITIZE_LINE);
    char *text = al_xasprintf("# airlock-fetch lock file: the images of run %lld pinned by digest\n"
                              "# written %s from store %s\n"
                              "# use it as a list: airlock-export -f FILE, airlock-fetch -f FILE\n",
                              (long long)rep->run_id,
                              al_format_utc(when, sizeof(when), rep->finished_at), store);
    for (size_t i = 0; i < rep->n_results; i++) {
        const al_image_result *r = &rep->results[i];
        char *line;
        if (r->status == AL_IMG_FAILED) {
            /* A comment stays one line of printable text: the message
             * may quote a registry. */
            _cleanup_free_ char *msg =
                al_sanitize(r->err ? r->err->msg : "unknown error", AL_SANITIZE_LINE);
            line = al_xasprintf("# FAILED %s: %s\n", r->full_name, msg);
        } else if (strchr(r->full_name, '@') != NULL) {
            line = al_xasprintf("%s\n", r->full_name); /* a digest ref is pinned already */
        } else {
            line = al_xasprintf("%s@%s\n", r->full_name, r->digest);
        }
        char *t = al_xasprintf("%s%s", text, line);
        free(text);
        free(line);
        text = t;
    }
    return text;
}

/* --- atomic write ------------------------------------------------------------ */
