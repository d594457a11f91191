/* airlock-push --json (see push-report.h). */
#include "push-report.h"

#include <jansson.h>
#include <string.h>

#include "jsondoc.h"

void al_push_totals_of(al_push_totals *out, const al_push_result *r, size_t n)
{
    memset(out, 0, sizeof(*out));
    out->images = (int)n;
    for (size_t i = 0; i < n; i++) {
        out->pushed += r[i].status == AL_PUSH_PUSHED;
        out->unchanged += r[i].status == AL_PUSH_UNCHANGED;
        out->failed += r[i].status == AL_PUSH_FAILED;
        out->blobs_pushed += r[i].blobs_pushed;
        out->blobs_mounted += r[i].blobs_mounted;
        out->blobs_present += r[i].blobs_present;
        out->manifests += r[i].manifests;
        out->restarts += r[i].restarts;
        out->bytes += r[i].bytes;
    }
}

const char *al_push_status_name(al_push_status s)
{
    switch (s) {
    case AL_PUSH_PUSHED: return "pushed";
    case AL_PUSH_UNCHANGED: return "unchanged";
    case AL_PUSH_FAILED: break;
    }
    return "failed";
}

static json_t *image_json(const al_push_report *rep, const al_push_result *r)
{
    bool failed = r->status == AL_PUSH_FAILED;
    double secs = r->done_at > 0 && r->done_at >= rep->t0 ? r->done_at - rep->t0 : 0;
    json_t *o = json_object();
    json_object_set_new(o, "ref", json_string(r->ref ? r->ref : ""));
    json_object_set_new(o, "upstream", json_string(r->upstream ? r->upstream : ""));
    json_object_set_new(o, "target", json_string(r->target ? r->target : ""));
    json_object_set_new(o, "status", json_string(al_push_status_name(r->status)));
    json_object_set_new(o, "digest", failed ? json_null() : al_json_str_or_null(r->digest));
    json_object_set_new(o, "stored_digest", al_json_str_or_null(r->stored_digest));
    json_object_set_new(o, "index_rewritten",
                        json_boolean(!failed && strcmp(r->digest, r->stored_digest) != 0));
    json_object_set_new(o, "left_out", al_json_list(r->left_out));
    json_object_set_new(o, "platforms", al_json_list(failed ? NULL : r->platforms));
    json_object_set_new(o, "blobs",
                        json_pack("{s:i, s:i, s:i}", "pushed", r->blobs_pushed, "mounted",
                                  r->blobs_mounted, "present", r->blobs_present));
    json_object_set_new(o, "manifests", json_integer(r->manifests));
    json_object_set_new(o, "restarted_uploads", json_integer(r->restarts));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
    json_object_set_new(o, "seconds", json_real(secs));
    json_object_set_new(o, "error", al_json_error(failed ? r->err : NULL));
    return o;
}

static json_t *totals_json(const al_push_report *rep)
{
    al_push_totals t;
    al_push_totals_of(&t, rep->results, rep->n_results);
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "images", t.images,
                          "pushed", t.pushed, "unchanged", t.unchanged, "failed", t.failed,
                          "blobs_pushed", t.blobs_pushed, "blobs_mounted", t.blobs_mounted,
                          "blobs_present", t.blobs_present, "manifests", t.manifests,
                          "restarted_uploads", t.restarts, "bytes", (json_int_t)t.bytes);
    json_object_set_new(o, "bytes_sent",
                        json_integer((json_int_t)(rep->stats ? rep->stats->sent_bytes : 0)));
    json_object_set_new(o, "requests",
                        json_integer((json_int_t)(rep->stats ? rep->stats->requests : 0)));
    json_object_set_new(o, "retries",
                        json_integer((json_int_t)(rep->stats ? rep->stats->retries : 0)));
    json_object_set_new(o, "seconds", json_real(rep->seconds));
    return o;
}

char *al_push_report_json(const al_push_report *rep)
{
    json_t *images = json_array();
    for (size_t i = 0; i < rep->n_results; i++)
        json_array_append_new(images, image_json(rep, &rep->results[i]));
    json_t *root = json_object();
    json_object_set_new(root, "report_format", json_integer(AL_PUSH_REPORT_FORMAT));
    json_object_set_new(root, "tool", json_string("airlock-push"));
    json_object_set_new(root, "version", json_string(rep->version ? rep->version : ""));
    json_object_set_new(root, "store", json_string(rep->store_dir ? rep->store_dir : ""));
    json_object_set_new(root, "target",
                        json_pack("{s:s, s:o, s:o}", "registry", rep->host ? rep->host : "",
                                  "prefix", al_json_str_or_null(rep->prefix), "scheme",
                                  al_json_str_or_null(rep->scheme)));
    json_object_set_new(root, "started_at", al_json_utc(rep->started_at));
    json_object_set_new(root, "finished_at", al_json_utc(rep->finished_at));
    json_object_set_new(root, "exit_status", json_integer(rep->exit_status));
    json_object_set_new(root, "error", al_json_error(rep->error));
    json_object_set_new(root, "images", images);
    json_object_set_new(root, "totals", totals_json(rep));
    json_object_set_new(root, "files",
                        json_pack("{s:o, s:o}", "registries_yaml",
                                  al_json_str_or_null(rep->registries_yaml), "hosts_dir",
                                  al_json_str_or_null(rep->hosts_dir)));
    return al_json_document(root);
}
