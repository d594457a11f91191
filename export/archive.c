/* The tarball layouts (docker, OCI, hybrid) written from the store (see archive.h). */
#include "archive.h"
#include "blobcopy.h"
#include "../common/digest.h"
#include "tar.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* Blobs stream through buffers of this size. */
#define CHUNK AL_BLOBCOPY_CHUNK

#define BLOB_DIR "blobs/sha256/"

/* One file under blobs/sha256/. */
typedef struct blob {
    char digest[AL_DIGEST_BUF]; /* its name, and what its content must hash to */
    uint64_t size;
    const char *owner; /* ref of the first image that uses it, for messages (borrowed) */
    bool from_zstd;    /* the content is the zstd blob `src` decompressed */
    char src[AL_DIGEST_BUF];
    uint64_t src_size;
} blob;

struct al_archive {
    al_store *store;          /* borrowed */
    const al_export_set *set; /* borrowed */
    al_archive_opts opts;
    blob *blobs;
    size_t n_blobs, cap_blobs;
    /* Open-addressing table of blob indexes + 1 (0 = empty), keyed by digest. */
    size_t *slots;
    size_t n_slots;
    char *manifest_json, *repositories, *index_json;
    uint64_t tar_size, blob_bytes;
    size_t n_zstd_docker;
    unsigned char *buf, *zbuf;
    uint64_t done; /* tar bytes written, for progress */
};

const char *al_export_format_name(al_export_format f)
{
    switch (f) {
    case AL_FORMAT_HYBRID: return "hybrid";
    case AL_FORMAT_DOCKER: return "docker";
    case AL_FORMAT_OCI: return "oci";
    }
    return "?";
}

int al_export_format_parse(al_export_format *out, const char *s, al_error **err)
{
    static const al_export_format all[] = {AL_FORMAT_HYBRID, AL_FORMAT_DOCKER, AL_FORMAT_OCI};
    for (size_t i = 0; i < AL_ARRAY_SIZE(all); i++) {
        if (strcmp(s, al_export_format_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return al_error_set(err, AL_E_USAGE, 0, "invalid format \"%s\": expected hybrid, docker or oci",
                        s);
}

/* Blob set ------------------------------------------------------------ */

static size_t digest_hash(const char *digest)
{
    /* The hex of a sha256 is as good a hash as any. */
    const char *hex = al_digest_hex(digest);
    size_t h = 0;
    for (size_t i = 0; i < 16; i++)
        h = h * 16 + (size_t)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
    return h;
}

static blob *find_blob(al_archive *a, const char *digest)
{
    if (a->n_slots == 0)
        return NULL;
    for (size_t i = digest_hash(digest) & (a->n_slots - 1);; i = (i + 1) & (a->n_slots - 1)) {
        if (a->slots[i] == 0)
            return NULL;
        blob *b = &a->blobs[a->slots[i] - 1];
        if (strcmp(b->digest, digest) == 0)
            return b;
    }
}

static void rehash(al_archive *a, size_t n_slots)
{
    free(a->slots);
    a->slots = al_xcalloc(n_slots, sizeof(*a->slots));
    a->n_slots = n_slots;
    for (size_t k = 0; k < a->n_blobs; k++) {
        size_t i = digest_hash(a->blobs[k].digest) & (n_slots - 1);
        while (a->slots[i] != 0)
            i = (i + 1) & (n_slots - 1);
        a->slots[i] = k + 1;
    }
}

/* Add a blob unless one of that digest is there already; returns it. */
static blob *add_blob(al_archive *a, const char *digest, uint64_t size, const char *owner)
{
    blob *b = find_blob(a, digest);
    if (b != NULL)
        return b;
    if (a->n_blobs == a->cap_blobs) {
        a->cap_blobs = a->cap_blobs ? 2 * a->cap_blobs : 64;
        a->blobs = al_xrealloc(a->blobs, a->cap_blobs * sizeof(*a->blobs));
    }
    b = &a->blobs[a->n_blobs++];
    memset(b, 0, sizeof(*b));
    snprintf(b->digest, sizeof(b->digest), "%s", digest);
    b->size = size;
    b->owner = owner;
    if (2 * a->n_blobs > a->n_slots)
        rehash(a, a->n_slots ? 2 * a->n_slots : 128);
    else {
        size_t i = digest_hash(digest) & (a->n_slots - 1);
        while (a->slots[i] != 0)
            i = (i + 1) & (a->n_slots - 1);
        a->slots[i] = a->n_blobs;
    }
    return b;
}

static char *blob_name(const char *digest)
{
    return al_xasprintf(BLOB_DIR "%s", al_digest_hex(digest));
}

/* Reading blobs --------------------------------------------------------- */

static ssize_t read_some(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

/* Stream a zstd blob through the decompressor. For each decompressed
 * chunk, `emit` (may be NULL) is called. The source's size and (with
 * verify) digest, and the output's digest against b->digest are checked;
 * *out_size gets the decompressed size. */
typedef int (*emit_fn)(void *ud, const void *buf, size_t len, al_error **err);

static int decompress_blob(al_archive *a, const blob *b, emit_fn emit, void *ud, uint64_t *out_size,
                           al_error **err)
{
    int fd = -1;
    int r = al_blobcopy_open(a->store, b->src, b->src_size, b->owner, &fd, err);
    if (r < 0)
        return r;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (dctx == NULL) {
        close(fd);
        return al_error_set(err, AL_E_IO, 0,
                            "blob %s of %s: zstd cannot make a decompression context (out of "
                            "memory?)",
                            b->src, b->owner);
    }
    al_hasher *hs = a->opts.verify ? al_hasher_new() : NULL;
    al_hasher *hd = a->opts.verify ? al_hasher_new() : NULL;
    uint64_t in_total = 0, out_total = 0;
    size_t last = 0; /* ZSTD's hint: 0 once a frame is complete */
    for (;;) {
        ssize_t n = read_some(fd, a->buf, CHUNK);
        if (n < 0) {
            r = al_error_set(err, AL_E_IO, errno, "blob %s of %s: read", b->src, b->owner);
            break;
        }
        if (n == 0)
            break;
        in_total += (uint64_t)n;
        if (hs)
            al_hasher_update(hs, a->buf, (size_t)n);
        ZSTD_inBuffer in = {a->buf, (size_t)n, 0};
        while (r == 0 && in.pos < in.size) {
            ZSTD_outBuffer o = {a->zbuf, CHUNK, 0};
            last = ZSTD_decompressStream(dctx, &o, &in);
            if (ZSTD_isError(last)) {
                r = al_error_set(err, AL_E_DIGEST, 0, "blob %s of %s is corrupt: zstd: %s", b->src,
                                 b->owner, ZSTD_getErrorName(last));
                break;
            }
            out_total += o.pos;
            if (hd)
                al_hasher_update(hd, a->zbuf, o.pos);
            if (emit && o.pos && (r = emit(ud, a->zbuf, o.pos, err)) < 0)
                al_error_wrap(err, "blob %s of %s", b->src, b->owner);
        }
        if (r < 0)
            break;
    }
    /* Flush what the decoder still holds (output larger than one buffer). */
    while (r == 0 && last != 0) {
        ZSTD_inBuffer in = {NULL, 0, 0};
        ZSTD_outBuffer o = {a->zbuf, CHUNK, 0};
        last = ZSTD_decompressStream(dctx, &o, &in);
        if (ZSTD_isError(last) || o.pos == 0) {
            r = al_error_set(err, AL_E_DIGEST, 0, "blob %s of %s is corrupt: %s", b->src, b->owner,
                             ZSTD_isError(last) ? ZSTD_getErrorName(last)
                                                : "truncated zstd stream");
            break;
        }
        out_total += o.pos;
        if (hd)
            al_hasher_update(hd, a->zbuf, o.pos);
        if (emit && (r = emit(ud, a->zbuf, o.pos, err)) < 0)
            al_error_wrap(err, "blob %s of %s", b->src, b->owner);
    }
    if (r == 0 && in_total != b->src_size)
        r = al_error_set(err, AL_E_SIZE, 0,
                         "blob %s of %s is corrupt: read %llu bytes, expected %llu", b->src,
                         b->owner, (unsigned long long)in_total, (unsigned long long)b->src_size);
    if (r == 0 && hs)
        r = al_blobcopy_check(hs, b->src, "blob", b->owner, err);
    if (r == 0 && hd) {
        char got[AL_DIGEST_BUF];
        al_hasher_final(hd, got);
        if (strcmp(got, b->digest) != 0)
            r = al_error_set(
                err, AL_E_DIGEST, 0,
                "blob %s of %s decompresses to %s, but its config says the layer is %s", b->src,
                b->owner, got, b->digest);
    }
    al_hasher_free(hs);
    al_hasher_free(hd);
    ZSTD_freeDCtx(dctx);
    close(fd);
    if (r == 0)
        *out_size = out_total;
    return r;
}

/* Planning --------------------------------------------------------------- */

static char *repo_tag(const al_export_image *im)
{
    return im->tag ? al_xasprintf("%s:%s", im->name, im->tag) : NULL;
}

/* The name containerd gives the image: name:tag, or name@digest. */
static char *image_name(const al_export_image *im)
{
    return im->tag ? al_xasprintf("%s:%s", im->name, im->tag)
                   : al_xasprintf("%s@%s", im->name, im->root_digest);
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL)
        abort(); /* only on allocation failure */
    json_decref(j);
    return s;
}

static json_t *blob_path_json(const char *digest)
{
    _cleanup_free_ char *name = blob_name(digest);
    return json_string(name);
}

/* manifest.json: one entry per distinct image (same config and layers),
 * with all its tags, and repositories, the legacy tag map. docker_layers
 * holds, per image, the digests manifest.json points at. */
static void build_docker_json(al_archive *a, char (**docker_layers)[AL_DIGEST_BUF])
{
    const al_export_set *set = a->set;
    json_t *manifest = json_array();
    json_t *repos = json_object();
    char **keys = al_xcalloc(set->n_images + 1, sizeof(*keys));
    json_t **entries = al_xcalloc(set->n_images + 1, sizeof(*entries));
    size_t n_entries = 0;
    for (size_t i = 0; i < set->n_images; i++) {
        const al_export_image *im = &set->images[i];
        /* The identity of a docker image: its config and layer files. */
        size_t klen = AL_DIGEST_LEN * (im->n_layers + 1) + 1;
        char *key = al_xmalloc(klen);
        strcpy(key, im->config_digest);
        for (size_t k = 0; k < im->n_layers; k++)
            strcat(key, docker_layers[i][k]);
        _cleanup_free_ char *tag = repo_tag(im);
        json_t *entry = NULL;
        for (size_t e = 0; e < n_entries; e++) {
            if (strcmp(keys[e], key) == 0) {
                entry = entries[e];
                break;
            }
        }
        if (entry == NULL) {
            entry = json_object();
            json_object_set_new(entry, "Config", blob_path_json(im->config_digest));
            json_object_set_new(entry, "RepoTags", json_array());
            json_t *layers = json_array();
            for (size_t k = 0; k < im->n_layers; k++)
                json_array_append_new(layers, blob_path_json(docker_layers[i][k]));
            json_object_set_new(entry, "Layers", layers);
            json_array_append_new(manifest, entry);
            keys[n_entries] = key;
            entries[n_entries++] = entry;
            key = NULL;
        }
        free(key);
        if (tag != NULL) {
            json_t *tags = json_object_get(entry, "RepoTags");
            bool dup = false;
            for (size_t k = 0; k < json_array_size(tags); k++)
                dup = dup || strcmp(json_string_value(json_array_get(tags, k)), tag) == 0;
            if (!dup)
                json_array_append_new(tags, json_string(tag));
            /* Old readers want the top layer's id here; there are no v1
             * layer directories in this layout, so the top layer's blob. */
            json_t *r = json_object_get(repos, im->name);
            if (r == NULL) {
                r = json_object();
                json_object_set_new(repos, im->name, r);
            }
            const char *top = im->n_layers ? docker_layers[i][im->n_layers - 1] : im->config_digest;
            json_object_set_new(r, im->tag, json_string(al_digest_hex(top)));
        }
    }
    for (size_t e = 0; e < n_entries; e++)
        free(keys[e]);
    free(keys);
    free(entries);
    a->manifest_json = dump(manifest);
    a->repositories = dump(repos);
}

/* index.json: one descriptor per image, the registry's own platform
 * manifest, named so that containerd and podman tag it. */
static void build_oci_json(al_archive *a)
{
    const al_export_set *set = a->set;
    json_t *index = json_object();
    json_object_set_new(index, "schemaVersion", json_integer(2));
    json_object_set_new(index, "mediaType", json_string(AL_MT_OCI_INDEX));
    json_t *manifests = json_array();
    for (size_t i = 0; i < set->n_images; i++) {
        const al_export_image *im = &set->images[i];
        json_t *d = json_object();
        json_object_set_new(d, "mediaType", json_string(im->manifest_media_type));
        json_object_set_new(d, "digest", json_string(im->manifest_digest));
        json_object_set_new(d, "size", json_integer(im->manifest_size));
        json_t *ann = json_object();
        _cleanup_free_ char *name = image_name(im);
        json_object_set_new(ann, "io.containerd.image.name", json_string(name));
        if (im->tag != NULL)
            json_object_set_new(ann, "org.opencontainers.image.ref.name", json_string(im->tag));
        json_object_set_new(d, "annotations", ann);
        json_array_append_new(manifests, d);
    }
    json_object_set_new(index, "manifests", manifests);
    a->index_json = dump(index);
}

int al_archive_plan(al_archive **out, al_store *store, const al_export_set *set,
                    const al_archive_opts *opts, al_error **err)
{
    al_archive *a = al_xcalloc(1, sizeof(*a));
    a->store = store;
    a->set = set;
    a->opts = *opts;
    a->buf = al_xmalloc(CHUNK);
    bool oci = opts->format != AL_FORMAT_DOCKER;
    bool docker = opts->format != AL_FORMAT_OCI;
    bool decomp = docker && opts->decompress_zstd;
    if (decomp)
        a->zbuf = al_xmalloc(CHUNK);
    char(**docker_layers)[AL_DIGEST_BUF] = al_xcalloc(set->n_images + 1, sizeof(*docker_layers));
    int r = 0;

    for (size_t i = 0; i < set->n_images && r == 0; i++) {
        const al_export_image *im = &set->images[i];
        docker_layers[i] = al_xcalloc(im->n_layers + 1, sizeof(*docker_layers[i]));
        if (oci)
            add_blob(a, im->manifest_digest, (uint64_t)im->manifest_size, im->ref);
        add_blob(a, im->config_digest, (uint64_t)im->config_size, im->ref);
        bool zstd_as_is = false;
        for (size_t k = 0; k < im->n_layers && r == 0; k++) {
            const al_export_layer *l = &im->layers[k];
            bool unpack = decomp && l->comp == AL_COMP_ZSTD;
            if (oci || !unpack)
                add_blob(a, l->digest, (uint64_t)l->size, im->ref);
            snprintf(docker_layers[i][k], AL_DIGEST_BUF, "%s", l->digest);
            if (docker && l->comp == AL_COMP_ZSTD && !unpack)
                zstd_as_is = true;
            if (!unpack)
                continue;
            if (!im->diff_ids_match || !l->diff_id[0]) {
                r = al_error_set(err, AL_E_UNSUPPORTED, 0,
                                 "%s: cannot write zstd layer %s decompressed: the image config "
                                 "lists no diff_id for it",
                                 im->ref, l->digest);
                break;
            }
            snprintf(docker_layers[i][k], AL_DIGEST_BUF, "%s", l->diff_id);
            if (find_blob(a, l->diff_id) != NULL)
                continue;
            int64_t have = -1;
            if (al_store_has_blob(store, l->diff_id, &have)) {
                /* The store holds the uncompressed layer itself: copy it. */
                add_blob(a, l->diff_id, (uint64_t)have, im->ref);
                continue;
            }
            blob *b = add_blob(a, l->diff_id, 0, im->ref);
            b->from_zstd = true;
            snprintf(b->src, sizeof(b->src), "%s", l->digest);
            b->src_size = (uint64_t)l->size;
            /* The tar header needs the size before the data: a first pass
             * learns it (and checks the diff_id). */
            uint64_t size = 0;
            r = decompress_blob(a, b, NULL, NULL, &size, err);
            b = find_blob(a, l->diff_id);
            b->size = size;
        }
        if (zstd_as_is)
            a->n_zstd_docker++;
    }

    if (r == 0) {
        if (docker)
            build_docker_json(a, docker_layers);
        if (oci)
            build_oci_json(a);
        uint64_t n = al_tar_entry_size("blobs/", 0) + al_tar_entry_size(BLOB_DIR, 0);
        for (size_t i = 0; i < a->n_blobs; i++) {
            _cleanup_free_ char *name = blob_name(a->blobs[i].digest);
            n += al_tar_entry_size(name, a->blobs[i].size);
            a->blob_bytes += a->blobs[i].size;
        }
        if (docker)
            n += al_tar_entry_size("manifest.json", strlen(a->manifest_json)) +
                 al_tar_entry_size("repositories", strlen(a->repositories));
        if (oci)
            n += al_tar_entry_size("index.json", strlen(a->index_json)) +
                 al_tar_entry_size("oci-layout", strlen(AL_OCI_LAYOUT_JSON));
        a->tar_size = n + AL_TAR_TRAILER_SIZE;
    }

    for (size_t i = 0; i < set->n_images; i++)
        free(docker_layers[i]);
    free(docker_layers);
    if (r < 0) {
        al_archive_free(a);
        return r;
    }
    *out = a;
    return 0;
}

void al_archive_free(al_archive *a)
{
    if (a == NULL)
        return;
    free(a->blobs);
    free(a->slots);
    free(a->manifest_json);
    free(a->repositories);
    free(a->index_json);
    free(a->buf);
    free(a->zbuf);
    free(a);
}

uint64_t al_archive_tar_size(const al_archive *a)
{
    return a->tar_size;
}
size_t al_archive_n_blobs(const al_archive *a)
{
    return a->n_blobs;
}
uint64_t al_archive_blob_bytes(const al_archive *a)
{
    return a->blob_bytes;
}
size_t al_archive_n_zstd_docker(const al_archive *a)
{
    return a->n_zstd_docker;
}

/* Writing ---------------------------------------------------------------- */

typedef struct writer {
    al_archive *a;
    al_tar *tar;
    al_blobcopy *copy; /* the plain blobs, verified (blobcopy.h) */
} writer;

static void progress(writer *w)
{
    if (w->a->opts.progress)
        w->a->opts.progress(w->a->opts.progress_ud, al_tar_bytes(w->tar), w->a->tar_size);
}

static void tick(void *ud)
{
    progress(ud);
}

static int emit_tar(void *ud, const void *buf, size_t len, al_error **err)
{
    writer *w = ud;
    int r = al_tar_file_write(w->tar, buf, len, err);
    progress(w);
    return r;
}

static int write_plain_blob(writer *w, const blob *b, al_error **err)
{
    _cleanup_free_ char *name = blob_name(b->digest);
    al_blobcopy_item it = {.size = b->size, .offset = 0, .len = b->size, .owner = b->owner};
    memcpy(it.digest, b->digest, AL_DIGEST_BUF);
    memcpy(it.want, b->digest, AL_DIGEST_BUF);
    int r = al_tar_file_begin(w->tar, name, b->size, err);
    if (r == 0)
        r = al_blobcopy_write(w->copy, &it, err);
    if (r == 0)
        r = al_tar_file_end(w->tar, err);
    return r;
}

static int write_zstd_blob(writer *w, const blob *b, al_error **err)
{
    _cleanup_free_ char *name = blob_name(b->digest);
    int r = al_tar_file_begin(w->tar, name, b->size, err);
    uint64_t size = 0;
    if (r == 0)
        r = decompress_blob(w->a, b, emit_tar, w, &size, err);
    if (r == 0 && (r = al_tar_file_end(w->tar, err)) < 0)
        al_error_wrap(err, "blob %s of %s", b->src, b->owner);
    return r;
}

int al_archive_write(al_archive *a, al_sink *sink, al_error **err)
{
    writer w = {a, al_tar_new(sink, a->opts.mtime), NULL};
    bool oci = a->opts.format != AL_FORMAT_DOCKER;
    bool docker = a->opts.format != AL_FORMAT_OCI;
    w.copy = al_blobcopy_new(a->store, w.tar, al_sink_get_kind(sink) == AL_SINK_PLAIN,
                             a->opts.verify, tick, &w);
    int r = al_tar_add_dir(w.tar, "blobs/", err);
    if (r == 0)
        r = al_tar_add_dir(w.tar, BLOB_DIR, err);
    for (size_t i = 0; i < a->n_blobs && r == 0 && !al_blobcopy_failed(w.copy); i++) {
        const blob *b = &a->blobs[i];
        r = b->from_zstd ? write_zstd_blob(&w, b, err) : write_plain_blob(&w, b, err);
    }
    r = al_blobcopy_finish(w.copy, r, err);
    /* The small files last: every reader collects the whole tar first. */
    if (r == 0 && docker)
        r = al_tar_add_file(w.tar, "manifest.json", a->manifest_json, strlen(a->manifest_json),
                            err);
    if (r == 0 && docker)
        r = al_tar_add_file(w.tar, "repositories", a->repositories, strlen(a->repositories), err);
    if (r == 0 && oci)
        r = al_tar_add_file(w.tar, "index.json", a->index_json, strlen(a->index_json), err);
    if (r == 0 && oci)
        r = al_tar_add_file(w.tar, "oci-layout", AL_OCI_LAYOUT_JSON, strlen(AL_OCI_LAYOUT_JSON),
                            err);
    if (r == 0)
        r = al_tar_finish(w.tar, err);
    if (r == 0 && al_tar_bytes(w.tar) != a->tar_size)
        r = al_error_set(err, AL_E_IO, 0, "internal: wrote %llu tar bytes, planned %llu",
                         (unsigned long long)al_tar_bytes(w.tar), (unsigned long long)a->tar_size);
    if (r == 0)
        progress(&w);
    al_tar_free(w.tar);
    return r;
}
