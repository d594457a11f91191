/* Writing a bundle's files (bundle-write.h). */
#include "bundle-write.h"
#include "blobcopy.h"
#include "../common/file.h"
#include "tar.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void al_bundle_files_dispose(al_bundle_files *f)
{
    al_strv_free(f->paths, f->n);
    free(f->bytes);
    memset(f, 0, sizeof(*f));
}

void al_bundle_files_of(al_bundle_files *out, const al_bundle_plan *p, const char *path)
{
    memset(out, 0, sizeof(*out));
    out->n = p->m.volumes + 1;
    out->paths = al_xcalloc(out->n + 1, sizeof(*out->paths));
    out->bytes = al_xcalloc(out->n + 1, sizeof(*out->bytes));
    for (unsigned v = 0; v < p->m.volumes; v++)
        out->paths[v] = p->split ? al_bundle_volume_path(path, v + 1) : al_xstrdup(path);
    out->paths[p->m.volumes] = al_xasprintf("%s.json", path);
}

/* One volume being written. */
typedef struct vwriter {
    const al_bundle_plan *p;
    const al_bundle_write_opts *o;
    al_tar *tar;
    uint64_t done_before; /* tar bytes of the volumes before this one */
} vwriter;

static void tick(void *ud)
{
    vwriter *w = ud;
    if (w->o->progress != NULL)
        w->o->progress(w->o->progress_ud, w->done_before + al_tar_bytes(w->tar), w->p->tar_bytes);
}

static int add_header(vwriter *w, unsigned v, al_error **err)
{
    const al_bundle_plan *p = w->p;
    const al_bundle_vol *vol = &p->vols[v - 1];
    al_bundle_volume h = {
        .format = AL_BUNDLE_FORMAT, .volume = v, .volumes = p->m.volumes, .n_members = vol->n};
    memcpy(h.bundle_id, p->m.id, sizeof(h.bundle_id));
    memcpy(h.manifest_digest, p->manifest_digest, sizeof(h.manifest_digest));
    h.members = al_xcalloc(vol->n + 1, sizeof(*h.members));
    for (size_t i = 0; i < vol->n; i++) {
        const al_bundle_member *mb = &p->members[vol->first + i];
        memcpy(h.members[i].digest, mb->digest, AL_DIGEST_BUF);
        h.members[i].size = mb->len;
    }
    size_t len = 0;
    _cleanup_free_ char *text = al_bundle_volume_json(&h, &len);
    free(h.members);
    return al_tar_add_file(w->tar, AL_BUNDLE_VOLUME_NAME, text, len, err);
}

static int add_members(vwriter *w, const al_bundle_vol *vol, al_store *store, al_sink *sink,
                       al_error **err)
{
    al_blobcopy *c = al_blobcopy_new(store, w->tar, al_sink_get_kind(sink) == AL_SINK_PLAIN,
                                     w->o->verify, tick, w);
    int r = 0;
    for (size_t i = vol->first; i < vol->first + vol->n && r == 0 && !al_blobcopy_failed(c); i++) {
        const al_bundle_member *mb = &w->p->members[i];
        al_blobcopy_item it = {
            .size = mb->blob_size, .offset = mb->offset, .len = mb->len, .owner = mb->owner};
        memcpy(it.digest, mb->blob, AL_DIGEST_BUF);
        memcpy(it.want, mb->digest, AL_DIGEST_BUF);
        _cleanup_free_ char *name = al_bundle_member_name(mb->digest);
        r = al_tar_file_begin(w->tar, name, mb->len, err);
        if (r == 0)
            r = al_blobcopy_write(c, &it, err);
        if (r == 0)
            r = al_tar_file_end(w->tar, err);
    }
    return al_blobcopy_finish(c, r, err);
}

/* Volume v (1-based) into the temp file of f: header, manifest (volume
 * 1), members, end of archive. *bytes gets the file's size. */
static int write_volume(vwriter *w, unsigned v, al_store *store, al_file *f, uint64_t *bytes,
                        al_error **err)
{
    const al_bundle_plan *p = w->p;
    const al_bundle_vol *vol = &p->vols[v - 1];
    al_sink *sink = NULL;
    int r = al_sink_new(&sink, al_file_fd(f), w->o->kind, w->o->level, 0, err);
    if (r < 0)
        return r;
    w->tar = al_tar_new(sink, (int64_t)p->m.created_at);
    if (p->split)
        r = add_header(w, v, err);
    if (r == 0 && v == 1)
        r = al_tar_add_file(w->tar, AL_BUNDLE_MANIFEST_NAME, p->manifest_json, p->manifest_len,
                            err);
    if (r == 0)
        r = add_members(w, vol, store, sink, err);
    if (r == 0)
        r = al_tar_finish(w->tar, err);
    if (r == 0 && al_tar_bytes(w->tar) != vol->tar_size)
        r = al_error_set(err, AL_E_IO, 0, "internal: volume %u has %llu tar bytes, planned %llu", v,
                         (unsigned long long)al_tar_bytes(w->tar),
                         (unsigned long long)vol->tar_size);
    if (r == 0)
        r = al_sink_finish(sink, err);
    if (r == 0)
        *bytes = al_sink_bytes_out(sink);
    w->done_before += al_tar_bytes(w->tar);
    al_tar_free(w->tar);
    w->tar = NULL;
    al_sink_free(sink);
    return r;
}

int al_bundle_write(const al_bundle_plan *p, al_store *store, const al_bundle_write_opts *o,
                    al_bundle_files *out, al_error **err)
{
    al_bundle_files_of(out, p, o->out);
    unsigned nv = p->m.volumes;
    al_file **files = al_xcalloc(nv + 1, sizeof(*files));
    vwriter w = {.p = p, .o = o};
    int r = 0;
    for (unsigned v = 1; v <= nv && r == 0; v++) {
        r = al_file_begin(&files[v - 1], out->paths[v - 1], o->force, err);
        if (r == 0)
            r = write_volume(&w, v, store, files[v - 1], &out->bytes[v - 1], err);
        if (r < 0)
            al_error_wrap(err, "write %s", out->paths[v - 1]);
        /* A volume must fit the medium it was cut for (a compressed one
         * was planned with the worst case of growth: this is a guard). */
        if (r == 0 && p->split && o->kind != AL_SINK_PLAIN && out->bytes[v - 1] >= p->volume_size)
            r = al_error_set(err, AL_E_IO, 0, "internal: %s is %llu bytes, over --volume-size",
                             out->paths[v - 1], (unsigned long long)out->bytes[v - 1]);
    }
    /* All volumes are whole: now they appear, then the manifest beside. */
    for (unsigned v = 0; v < nv; v++) {
        if (r == 0)
            r = al_file_commit(files[v], err);
        else
            al_file_abort(files[v]);
        files[v] = NULL;
    }
    free(files);
    al_file *mf = NULL;
    if (r == 0 && (r = al_file_begin(&mf, out->paths[nv], o->force, err)) == 0) {
        r = al_write_all(al_file_fd(mf), p->manifest_json, p->manifest_len);
        if (r < 0) {
            r = al_error_set(err, AL_E_IO, -r, "write %s", out->paths[nv]);
            al_file_abort(mf);
        } else {
            r = al_file_commit(mf, err);
        }
        out->bytes[nv] = p->manifest_len;
    }
    return r;
}
