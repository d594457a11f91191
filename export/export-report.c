/* airlock-export --json FILE: the run report, and the store tools' JSON (see export-report.h). */
#include "export-report.h"
#include "file.h"
#include "split-run.h"
#include "../common/sanitize.h"
#include "../common/jsondoc.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *al_export_output_path(const char *tmpl, const al_platform *p)
{
    char arch[96];
    al_platform_arch_tag(p, arch, sizeof(arch));
    const char *at = strstr(tmpl, "{arch}");
    if (at == NULL)
        return al_xstrdup(tmpl);
    /* Every occurrence. */
    char *out = al_xstrndup(tmpl, (size_t)(at - tmpl));
    const char *rest = at + 6;
    for (;;) {
        const char *next = strstr(rest, "{arch}");
        size_t n = next ? (size_t)(next - rest) : strlen(rest);
        char *o = al_xasprintf("%s%s%.*s", out, arch, (int)n, rest);
        free(out);
        out = o;
        if (next == NULL)
            break;
        rest = next + 6;
    }
    return out;
}

void al_export_report_init(al_export_report *rep, const char *version, const char *store_dir,
                           const char *output, const al_platform *platforms, size_t n_platforms)
{
    memset(rep, 0, sizeof(*rep));
    rep->version = version;
    rep->store_dir = store_dir;
    rep->started_at = al_now();
    rep->verify = true;
    rep->outputs = al_xcalloc(n_platforms + 1, sizeof(*rep->outputs));
    rep->n_outputs = n_platforms;
    for (size_t i = 0; i < n_platforms; i++) {
        rep->outputs[i].platform = platforms[i];
        rep->outputs[i].path = al_export_output_path(output, &platforms[i]);
    }
}

void al_export_report_dispose(al_export_report *rep)
{
    for (size_t i = 0; i < rep->n_outputs; i++) {
        free(rep->outputs[i].path);
        al_error_free(rep->outputs[i].error);
    }
    free(rep->outputs);
    al_error_free(rep->error);
    memset(rep, 0, sizeof(*rep));
}

void al_export_report_set_error(al_export_report *rep, al_error *e)
{
    if (rep->error == NULL)
        rep->error = e;
    else
        al_error_free(e);
}

/* --- JSON ------------------------------------------------------------------ */

/* json_string() refuses invalid UTF-8 (a path or a hand-edited database
 * can hold any bytes): such a string is written with its bad bytes as '?'
 * rather than dropped, so that the report still names it. */
static json_t *str(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    _cleanup_free_ char *t = al_xstrdup(s);
    for (unsigned char *p = (unsigned char *)t; *p; p++)
        if (*p >= 0x80)
            *p = '?';
    return json_string(t);
}

/* A message for people (an error, a problem): it may quote a database row
 * or a file name, so it is sanitised like every printed message. */
static json_t *text_json(const char *msg)
{
    _cleanup_free_ char *safe = al_sanitize(msg, AL_SANITIZE_LINE);
    return json_string(safe);
}

static json_t *plat_json(const al_platform *p)
{
    char buf[96];
    return json_string(al_platform_format(p, buf, sizeof(buf)));
}

static json_t *error_json(const al_error *e, const al_selection *sel)
{
    if (e == NULL)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "message", text_json(e->msg && *e->msg ? e->msg : "unknown error"));
    json_object_set_new(o, "code", json_string(al_errc_name(e->code)));
    /* Each ref or platform that stopped the run, one line each. */
    if (sel != NULL && sel->n_problems > 0) {
        json_t *list = json_array();
        for (size_t i = 0; i < sel->n_problems; i++)
            json_array_append_new(list, text_json(sel->problems[i]));
        json_object_set_new(o, "problems", list);
    }
    return o;
}

/* The ref as the user wrote it (argument or list line), matched by its
 * full form; NULL for an image that only --all brought in. */
static const char *given_text(const al_reflist *refs, const char *full)
{
    if (refs == NULL)
        return NULL;
    for (size_t i = 0; i < refs->n; i++) {
        _cleanup_free_ char *f = al_ref_full(refs->items[i].ref);
        if (strcmp(f, full) == 0)
            return refs->items[i].text;
    }
    return NULL;
}

static const char *image_status(al_output_status s)
{
    switch (s) {
    case AL_OUTPUT_WRITTEN: return "exported";
    case AL_OUTPUT_FAILED: return "failed";
    case AL_OUTPUT_NOT_WRITTEN: break;
    }
    return "not_written";
}

static const char *output_status(al_output_status s)
{
    switch (s) {
    case AL_OUTPUT_WRITTEN: return "written";
    case AL_OUTPUT_FAILED: return "failed";
    case AL_OUTPUT_NOT_WRITTEN: break;
    }
    return "not_written";
}

typedef struct counts {
    size_t images, exported, failed;
} counts;

static void add_images(json_t *list, counts *c, const al_export_report *rep, size_t p)
{
    const al_export_output *out = &rep->outputs[p];
    const al_export_set *set = p < rep->sel->n_sets ? &rep->sel->sets[p] : NULL;
    bool decompress = rep->decompress_zstd && rep->format != AL_FORMAT_OCI;
    for (size_t i = 0; set != NULL && i < set->n_images; i++) {
        const al_export_image *im = &set->images[i];
        uint64_t bytes = (uint64_t)im->config_size;
        for (size_t k = 0; k < im->n_layers; k++)
            bytes += (uint64_t)im->layers[k].size;
        json_t *o = json_object();
        json_object_set_new(o, "ref", str(given_text(rep->refs, im->ref)));
        json_object_set_new(o, "name", str(im->ref));
        json_object_set_new(o, "platform", plat_json(&out->platform));
        json_object_set_new(o, "output", str(out->path));
        json_object_set_new(o, "status", json_string(image_status(out->status)));
        json_object_set_new(o, "root_digest", json_string(im->root_digest));
        json_object_set_new(o, "manifest_digest", json_string(im->manifest_digest));
        json_object_set_new(o, "layers", json_integer((json_int_t)im->n_layers));
        json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
        json_object_set_new(o, "zstd_layers", json_integer((json_int_t)im->n_zstd_layers));
        json_object_set_new(o, "zstd_decompressed", json_boolean(decompress && im->n_zstd_layers));
        json_object_set_new(o, "error", error_json(out->error, NULL));
        json_array_append_new(list, o);
        c->images++;
        c->exported += out->status == AL_OUTPUT_WRITTEN;
        c->failed += out->status == AL_OUTPUT_FAILED;
    }
    /* The refs that could not be selected for this platform: each is an
     * image that failed, with the problem as its error. */
    for (size_t i = 0; i < rep->sel->n_problems; i++) {
        const al_select_problem *pi = &rep->sel->problem_info[i];
        if (pi->platform >= 0 && (size_t)pi->platform != p)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "ref", str(given_text(rep->refs, pi->ref)));
        json_object_set_new(o, "name", str(pi->ref));
        json_object_set_new(o, "platform", plat_json(&out->platform));
        json_object_set_new(o, "output", str(out->path));
        json_object_set_new(o, "status", json_string("failed"));
        json_object_set_new(o, "root_digest", json_null());
        json_object_set_new(o, "manifest_digest", json_null());
        json_object_set_new(o, "layers", json_integer(0));
        json_object_set_new(o, "bytes", json_integer(0));
        json_object_set_new(o, "zstd_layers", json_integer(0));
        json_object_set_new(o, "zstd_decompressed", json_false());
        json_t *e = json_object();
        json_object_set_new(e, "message", text_json(rep->sel->problems[i]));
        json_object_set_new(e, "code", json_string(al_errc_name(pi->code)));
        json_object_set_new(o, "error", e);
        json_array_append_new(list, o);
        c->images++;
        c->failed++;
    }
}

static size_t skipped_for(const al_export_report *rep, size_t p)
{
    size_t n = 0;
    for (size_t i = 0; i < rep->n_skipped; i++)
        n += rep->skipped[i].platform == (int)p;
    return n;
}

static json_t *skipped_json(const al_export_report *rep)
{
    json_t *list = json_array();
    for (size_t i = 0; i < rep->n_skipped; i++) {
        const al_export_skip *k = &rep->skipped[i];
        json_t *o = json_object();
        json_object_set_new(o, "ref", str(given_text(rep->refs, k->ref)));
        json_object_set_new(o, "name", str(k->ref));
        json_object_set_new(o, "platform", plat_json(&rep->outputs[k->platform].platform));
        json_object_set_new(o, "output", str(rep->outputs[k->platform].path));
        json_object_set_new(o, "why", json_string(k->why ? k->why : "platform"));
        json_object_set_new(o, "reason", str(k->reason));
        json_object_set_new(o, "root_digest",
                            k->root_digest[0] ? json_string(k->root_digest) : json_null());
        json_object_set_new(o, "manifest_digest",
                            k->manifest_digest[0] ? json_string(k->manifest_digest) : json_null());
        json_array_append_new(list, o);
    }
    return list;
}

/* --split image: every file of the directories, written or not. */
static json_t *archives_json(const al_export_report *rep)
{
    json_t *list = json_array();
    for (size_t i = 0; rep->split != NULL && i < rep->split->n; i++) {
        const al_split_file *f = &rep->split->f[i];
        json_t *o = json_object();
        json_object_set_new(o, "path", str(f->path));
        json_object_set_new(o, "platform", plat_json(&rep->outputs[f->platform].platform));
        json_object_set_new(o, "name", str(f->ref));
        json_object_set_new(o, "manifest_digest",
                            f->manifest_digest[0] ? json_string(f->manifest_digest) : json_null());
        json_object_set_new(o, "status", json_string(al_split_status_name(f->status)));
        json_object_set_new(o, "bytes", json_integer((json_int_t)f->bytes));
        json_array_append_new(list, o);
    }
    return list;
}

static json_t *output_json(const al_export_output *o, size_t skipped)
{
    json_t *j = json_object();
    json_object_set_new(j, "path", str(o->path));
    json_object_set_new(j, "platform", plat_json(&o->platform));
    json_object_set_new(j, "status", json_string(output_status(o->status)));
    json_object_set_new(j, "bytes", json_integer((json_int_t)o->bytes));
    json_object_set_new(j, "tar_bytes", json_integer((json_int_t)o->tar_bytes));
    json_object_set_new(j, "blobs", json_integer((json_int_t)o->blobs));
    json_object_set_new(j, "blob_bytes", json_integer((json_int_t)o->blob_bytes));
    json_object_set_new(j, "images", json_integer((json_int_t)o->images));
    json_object_set_new(j, "skipped", json_integer((json_int_t)skipped));
    json_object_set_new(j, "seconds", json_real(o->seconds));
    json_object_set_new(j, "error", error_json(o->error, NULL));
    return j;
}

char *al_export_report_json(const al_export_report *rep)
{
    json_t *root = json_object();
    json_object_set_new(root, "report_format", json_integer(AL_EXPORT_REPORT_FORMAT));
    json_object_set_new(root, "tool", json_string("airlock-export"));
    json_object_set_new(root, "version", str(rep->version ? rep->version : ""));
    json_object_set_new(root, "store", str(rep->store_dir ? rep->store_dir : ""));
    json_object_set_new(root, "started_at", al_json_utc(rep->started_at));
    json_object_set_new(root, "finished_at", al_json_utc(rep->finished_at));
    json_object_set_new(root, "format", json_string(al_export_format_name(rep->format)));
    json_object_set_new(root, "compression", json_string(al_sink_kind_name(rep->compression)));
    json_object_set_new(root, "level", rep->level > 0 ? json_integer(rep->level) : json_null());
    json_object_set_new(root, "decompress_zstd_layers", json_boolean(rep->decompress_zstd));
    json_object_set_new(root, "verify", json_boolean(rep->verify));
    json_object_set_new(root, "all", json_boolean(rep->all));
    json_object_set_new(root, "skip_missing_platforms", json_boolean(rep->skip_missing_platforms));
    json_object_set_new(root, "since", str(rep->since_path));
    json_object_set_new(root, "split", json_boolean(rep->split != NULL));
    json_t *plats = json_array();
    for (size_t i = 0; i < rep->n_outputs; i++)
        json_array_append_new(plats, plat_json(&rep->outputs[i].platform));
    json_object_set_new(root, "platforms", plats);
    json_object_set_new(root, "exit_status", json_integer(rep->exit_status));
    json_object_set_new(root, "error", error_json(rep->error, rep->sel));

    json_t *outputs = json_array();
    json_t *images = json_array();
    counts c = {0};
    uint64_t bytes = 0, blobs = 0;
    size_t written = 0;
    for (size_t p = 0; p < rep->n_outputs; p++) {
        const al_export_output *o = &rep->outputs[p];
        json_array_append_new(outputs, output_json(o, skipped_for(rep, p)));
        if (rep->sel != NULL)
            add_images(images, &c, rep, p);
        if (o->status == AL_OUTPUT_WRITTEN) {
            written++;
            bytes += o->bytes;
            blobs += o->blobs;
        }
    }
    json_object_set_new(root, "outputs", outputs);
    json_object_set_new(root, "images", images);
    json_object_set_new(root, "skipped", skipped_json(rep));
    json_object_set_new(root, "archives", archives_json(rep));
    json_t *tot = json_object();
    json_object_set_new(tot, "outputs", json_integer((json_int_t)rep->n_outputs));
    json_object_set_new(tot, "written", json_integer((json_int_t)written));
    json_object_set_new(tot, "images", json_integer((json_int_t)c.images));
    json_object_set_new(tot, "exported", json_integer((json_int_t)c.exported));
    json_object_set_new(tot, "failed", json_integer((json_int_t)c.failed));
    json_object_set_new(tot, "skipped", json_integer((json_int_t)rep->n_skipped));
    json_object_set_new(tot, "blobs", json_integer((json_int_t)blobs));
    json_object_set_new(tot, "bytes", json_integer((json_int_t)bytes));
    double secs = rep->finished_at - rep->started_at;
    json_object_set_new(tot, "seconds", json_real(secs > 0 ? secs : 0));
    json_object_set_new(root, "totals", tot);

    return al_json_document(root);
}

/* --- atomic write ------------------------------------------------------------ */

static int write_stdout(const char *text, size_t len, al_error **err)
{
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
        return al_error_set(err, AL_E_IO, errno, "write stdout");
    return 0;
}

int al_export_write_text(const char *path, const char *text, size_t len, al_error **err)
{
    if (strcmp(path, "-") == 0)
        return write_stdout(text, len, err);
    return al_file_write_atomic(path, text, len, err);
}
