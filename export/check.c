/* --check: open, scan once, dispatch on what the file is, print, report. */
#include "check-private.h"
#include "../common/bundle.h"
#include "../common/sanitize.h"
#include "../common/jsondoc.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *al_check_printable(const char *s)
{
    /* The project's one sanitiser (common/sanitize.h). */
    return al_sanitize(s, AL_SANITIZE_LINE);
}

void al_check_add(al_check_result *r, al_check_severity sev, const char *member, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *raw = al_xvasprintf(fmt, ap);
    va_end(ap);
    /* Its parts are sanitised already; once more for whatever a parser's
     * message carried (al_sanitize leaves clean text as it is). */
    char *msg = al_sanitize(raw, AL_SANITIZE_LINE);
    r->problems = al_xrealloc(r->problems, (r->n_problems + 1) * sizeof(*r->problems));
    r->problems[r->n_problems++] = (al_check_problem){
        .severity = sev,
        .member = member ? al_check_printable(member) : NULL,
        .message = msg,
    };
    if (sev == AL_CHECK_ERROR)
        r->n_errors++;
    else
        r->n_notes++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the file is, from what the scan found: a bundle starts with its
 * manifest or a volume header. */
static void check_kind(al_check_result *r, const al_scan *s, const char *path)
{
    if (s->bundle)
        al_check_bundle(r, s, path);
    else
        al_check_image_archive(r, s);
}

bool al_check_covers(const al_check_result *r, const char *path)
{
    _cleanup_free_ char *a = realpath(path, NULL);
    for (size_t i = 0; a != NULL && i < r->n_covered; i++) {
        _cleanup_free_ char *b = realpath(r->covered[i], NULL);
        if (b != NULL && strcmp(a, b) == 0)
            return true;
    }
    return false;
}

int al_check_file(al_check_result *out, const char *path, al_error **err)
{
    memset(out, 0, sizeof(*out));
    out->path = al_xstrdup(path);
    out->kind = "unknown";
    /* A bundle in volumes, named by the stem of its volumes' names. */
    _cleanup_free_ char *v1 = al_bundle_volume_path(path, 1);
    struct stat vst;
    if (stat(path, &vst) < 0 && errno == ENOENT && stat(v1, &vst) == 0)
        path = v1;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        al_check_add(out, AL_CHECK_ERROR, NULL, "cannot open: %s", strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        al_check_add(out, AL_CHECK_ERROR, NULL, "not a regular file");
        return 0;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    al_scan s;
    al_error *e = NULL;
    if (al_check_scan(&s, fd, &e) < 0) {
        al_check_add(out, AL_CHECK_ERROR, NULL, "%s", e->msg);
        al_error_free(e);
        return 0;
    }
    out->compression = s.compression;
    out->zstd_frames = s.zstd_frames;
    out->zstd_window = s.zstd_max_window;
    out->file_bytes = s.file_bytes;
    out->data_bytes = s.data_bytes;
    out->members = s.n_members;
    check_kind(out, &s, path);
    if (out->n_platforms > 1)
        qsort(out->platforms, out->n_platforms, sizeof(*out->platforms), cmp_str);
    al_scan_dispose(&s);
    (void)err;
    return 0;
}

void al_check_result_dispose(al_check_result *r)
{
    for (size_t i = 0; i < r->n_problems; i++) {
        free(r->problems[i].member);
        free(r->problems[i].message);
    }
    free(r->problems);
    for (size_t i = 0; i < r->n_images; i++) {
        free(r->images[i].name);
        free(r->images[i].platform);
    }
    free(r->images);
    for (size_t i = 0; i < r->n_platforms; i++)
        free(r->platforms[i]);
    free(r->platforms);
    free(r->path);
    free(r->bundle_id);
    free(r->bundle_base);
    al_strv_free(r->covered, r->n_covered);
    memset(r, 0, sizeof(*r));
}

/* --- text --------------------------------------------------------------------- */

static void print_summary(FILE *out, const al_check_result *r, const char *path)
{
    char b[32], w[48] = "";
    if (r->compression != NULL && strcmp(r->compression, "zstd") == 0)
        snprintf(w, sizeof(w), ", window %llu KiB", (unsigned long long)(r->zstd_window >> 10));
    char notes[48] = "";
    if (r->n_notes > 0)
        snprintf(notes, sizeof(notes), ", %zu note%s", r->n_notes, r->n_notes == 1 ? "" : "s");
    fprintf(out, "%s: %s: %s archive (%s%s), %zu image%s (", path,
            r->n_errors == 0 ? "ok" : "FAILED", r->kind, r->compression ? r->compression : "?", w,
            r->n_images, r->n_images == 1 ? "" : "s");
    for (size_t i = 0; i < r->n_platforms; i++)
        fprintf(out, "%s%s", i ? ", " : "", r->platforms[i]);
    char bundle[128] = "";
    if (r->bundle_id != NULL)
        snprintf(bundle, sizeof(bundle), ", bundle %s (%s, %u volume%s)", r->bundle_id,
                 r->bundle_base && *r->bundle_base ? "a delta" : "complete", r->bundle_volumes,
                 r->bundle_volumes == 1 ? "" : "s");
    fprintf(out, "%s), %zu blobs, %s in %zu members%s; %zu problem%s%s\n",
            r->n_platforms ? "" : "no platform", r->blobs,
            al_format_bytes(b, sizeof(b), r->data_bytes), r->members, bundle, r->n_errors,
            r->n_errors == 1 ? "" : "s", notes);
}

void al_check_print(FILE *out, const al_check_result *r)
{
    _cleanup_free_ char *path = al_check_printable(r->path);
    for (size_t i = 0; i < r->n_problems; i++) {
        const al_check_problem *p = &r->problems[i];
        fprintf(out, "%s: %s%s%s%s\n", path, p->member ? p->member : "", p->member ? ": " : "",
                p->severity == AL_CHECK_NOTE ? "note: " : "", p->message);
    }
    print_summary(out, r, path);
}

/* --- JSON --------------------------------------------------------------------- */

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *result_json(const al_check_result *r)
{
    _cleanup_free_ char *path = al_check_printable(r->path);
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "ok", json_boolean(r->n_errors == 0));
    json_object_set_new(o, "kind", json_string(r->kind));
    json_object_set_new(o, "compression", jstr(r->compression));
    json_object_set_new(o, "zstd_frames", json_integer((json_int_t)r->zstd_frames));
    json_object_set_new(o, "zstd_window", json_integer((json_int_t)r->zstd_window));
    json_object_set_new(o, "file_bytes", json_integer((json_int_t)r->file_bytes));
    json_object_set_new(o, "data_bytes", json_integer((json_int_t)r->data_bytes));
    json_object_set_new(o, "members", json_integer((json_int_t)r->members));
    json_object_set_new(o, "blobs", json_integer((json_int_t)r->blobs));
    json_t *plats = json_array();
    for (size_t i = 0; i < r->n_platforms; i++)
        json_array_append_new(plats, json_string(r->platforms[i]));
    json_object_set_new(o, "platforms", plats);
    json_t *imgs = json_array();
    for (size_t i = 0; i < r->n_images; i++) {
        const al_check_image *im = &r->images[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", jstr(im->name));
        json_object_set_new(j, "platform", jstr(im->platform));
        json_object_set_new(j, "manifest_digest",
                            im->manifest_digest[0] ? json_string(im->manifest_digest)
                                                   : json_null());
        json_object_set_new(j, "config_digest",
                            im->config_digest[0] ? json_string(im->config_digest) : json_null());
        json_object_set_new(j, "layers", json_integer((json_int_t)im->layers));
        json_object_set_new(j, "bytes", json_integer((json_int_t)im->bytes));
        json_array_append_new(imgs, j);
    }
    json_object_set_new(o, "images", imgs);
    json_t *probs = json_array();
    for (size_t i = 0; i < r->n_problems; i++) {
        const al_check_problem *p = &r->problems[i];
        json_t *j = json_object();
        json_object_set_new(j, "severity",
                            json_string(p->severity == AL_CHECK_ERROR ? "error" : "note"));
        json_object_set_new(j, "member", jstr(p->member));
        json_object_set_new(j, "message", json_string(p->message));
        json_array_append_new(probs, j);
    }
    json_object_set_new(o, "problems", probs);
    json_t *bundle = json_null();
    if (r->bundle_id != NULL) {
        json_t *files = json_array();
        for (size_t i = 0; i < r->n_covered; i++) {
            _cleanup_free_ char *p = al_check_printable(r->covered[i]);
            json_array_append_new(files, json_string(p));
        }
        bundle = json_pack("{s:s, s:o, s:i, s:o}", "id", r->bundle_id, "base_bundle",
                           *r->bundle_base ? json_string(r->bundle_base) : json_null(), "volumes",
                           (int)r->bundle_volumes, "files", files);
    }
    json_object_set_new(o, "bundle", bundle);
    json_object_set_new(o, "errors", json_integer((json_int_t)r->n_errors));
    json_object_set_new(o, "notes", json_integer((json_int_t)r->n_notes));
    return o;
}

char *al_check_report_json(const al_check_result *results, size_t n, const char *version)
{
    json_t *root = json_object();
    size_t bad = 0;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        bad += results[i].n_errors > 0;
        json_array_append_new(list, result_json(&results[i]));
    }
    json_object_set_new(root, "report_format", json_integer(AL_CHECK_REPORT_FORMAT));
    json_object_set_new(root, "tool", json_string("airlock-export"));
    json_object_set_new(root, "command", json_string("check"));
    json_object_set_new(root, "version", json_string(version));
    json_object_set_new(root, "ok", json_boolean(bad == 0));
    json_object_set_new(root, "archives_failed", json_integer((json_int_t)bad));
    json_object_set_new(root, "archives", list);
    return al_json_document(root);
}
