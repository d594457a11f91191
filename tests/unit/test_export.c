/* export/select + export/archive against a small store made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "archive.h"
#include "db.h"
#include "digest.h"
#include "graph.h"
#include "manifest.h"
#include "ref.h"
#include "select.h"
#include "sink.h"
#include "store.h"
#include "util.h"
#include "verify.h"

#define MT_LAYER_GZ "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

typedef struct fx {
    char dir[64];
    al_store *s;
    al_db *db;
} fx;

typedef struct img {
    char manifest[AL_DIGEST_BUF];
    size_t manifest_size;
    char config[AL_DIGEST_BUF];
    char layer[AL_DIGEST_BUF];
    char diff_id[AL_DIGEST_BUF];
} img;

static int setup(void **state)
{
    fx *f = al_xcalloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/al-test-export-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    al_error *err = NULL;
    assert_int_equal(al_store_open(&f->s, f->dir, AL_STORE_WRITE, &err), 0);
    assert_int_equal(al_db_open(&f->db, al_store_db_path(f->s), false, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    al_db_free(f->db);
    al_store_free(f->s);
    char *cmd = al_xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static void put(fx *f, const void *buf, size_t len, char out[AL_DIGEST_BUF])
{
    al_error *err = NULL;
    al_digest_bytes(out, buf, len);
    assert_int_equal(al_store_put_blob(f->s, out, buf, len, &err), 0);
    assert_int_equal(al_db_blob_add(f->db, out, (int64_t)len, "application/octet-stream", &err), 0);
}

static void put_json(fx *f, json_t *j, char out[AL_DIGEST_BUF], size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT);
    *len = strlen(s);
    put(f, s, *len, out);
    free(s);
    json_decref(j);
}

/* One OCI image manifest with one layer whose uncompressed bytes are
 * `content` (stored as is with a gzip media type, or zstd-compressed).
 * bad_diff_id: the config lies about the layer. */
static void make_image(fx *f, const char *arch, const char *content, bool zstd, bool bad_diff_id,
                       img *out)
{
    size_t clen = strlen(content);
    al_digest_bytes(out->diff_id, content, clen);
    size_t llen = clen;
    if (zstd) {
        size_t cap = ZSTD_compressBound(clen);
        char *z = al_xmalloc(cap);
        llen = ZSTD_compress(z, cap, content, clen, 3);
        assert_false(ZSTD_isError(llen));
        put(f, z, llen, out->layer);
        free(z);
    } else {
        put(f, content, clen, out->layer);
    }
    char lie[AL_DIGEST_BUF];
    al_digest_bytes(lie, "lie", 3);
    json_t *cfg =
        json_pack("{s:s, s:s, s:{s:s, s:[s]}}", "architecture", arch, "os", "linux", "rootfs",
                  "type", "layers", "diff_ids", bad_diff_id ? lie : out->diff_id);
    size_t cfg_len;
    put_json(f, cfg, out->config, &cfg_len);
    json_t *m = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2,
                          "mediaType", AL_MT_OCI_MANIFEST, "config", "mediaType", AL_MT_OCI_CONFIG,
                          "digest", out->config, "size", (json_int_t)cfg_len, "layers", "mediaType",
                          zstd ? MT_LAYER_ZSTD : MT_LAYER_GZ, "digest", out->layer, "size",
                          (json_int_t)llen);
    put_json(f, m, out->manifest, &out->manifest_size);
}

/* An OCI index over images, plus an attestation entry whose blob is absent. */
static void make_index(fx *f, const img *imgs, const char **archs, size_t n,
                       char out[AL_DIGEST_BUF], size_t *len)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:{s:s, s:s}}", "mediaType",
                                              AL_MT_OCI_MANIFEST, "digest", imgs[i].manifest,
                                              "size", (json_int_t)imgs[i].manifest_size, "platform",
                                              "architecture", archs[i], "os", "linux"));
    char att[AL_DIGEST_BUF];
    al_digest_bytes(att, "attestation", 11);
    json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:{s:s, s:s}}", "mediaType",
                                          AL_MT_OCI_MANIFEST, "digest", att, "size", 11, "platform",
                                          "architecture", "unknown", "os", "unknown"));
    json_t *idx = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", AL_MT_OCI_INDEX,
                            "manifests", list);
    put_json(f, idx, out, len);
}

static void tag(fx *f, const char *full_name, const char *digest, const char *mt, size_t size)
{
    al_graph g = {.full_name = full_name,
                  .source = "test",
                  .root_digest = digest,
                  .root_media_type = mt,
                  .root_size = (int64_t)size};
    al_error *err = NULL;
    assert_int_equal(al_db_graph_commit(f->db, &g, 0, NULL, &err), 0);
}

static void tag_image(fx *f, const char *full_name, const img *im)
{
    tag(f, full_name, im->manifest, AL_MT_OCI_MANIFEST, im->manifest_size);
}

static al_platform plat(const char *s)
{
    al_platform p;
    assert_int_equal(al_platform_parse(&p, s, NULL), 0);
    return p;
}

static void select_refs(fx *f, const char **texts, size_t n, bool all, const al_platform *plats,
                        size_t n_plats, al_selection *sel)
{
    al_ref **refs = al_xcalloc(n + 1, sizeof(*refs));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(al_ref_parse(&refs[i], texts[i], NULL), 0);
    al_error *err = NULL;
    assert_int_equal(al_export_select(sel, f->s, f->db, refs, n, all, plats, n_plats, &err), 0);
    for (size_t i = 0; i < n; i++)
        al_ref_free(refs[i]);
    free(refs);
}

static void test_select_index(void **state)
{
    fx *f = *state;
    img im[2];
    const char *archs[] = {"amd64", "arm64"};
    make_image(f, "amd64", "layer amd64", false, false, &im[0]);
    make_image(f, "arm64", "layer arm64", true, false, &im[1]);
    char idx[AL_DIGEST_BUF];
    size_t idx_len;
    make_index(f, im, archs, 2, idx, &idx_len);
    tag(f, "docker.io/library/a:1", idx, AL_MT_OCI_INDEX, idx_len);

    al_platform plats[] = {plat("linux/amd64"), plat("linux/arm64/v8")};
    const char *refs[] = {"a:1"};
    al_selection sel;
    select_refs(f, refs, 1, false, plats, 2, &sel);
    assert_int_equal(sel.n_problems, 0);
    assert_int_equal(sel.n_sets, 2);
    for (size_t p = 0; p < 2; p++) {
        assert_int_equal(sel.sets[p].n_images, 1);
        const al_export_image *e = &sel.sets[p].images[0];
        assert_string_equal(e->ref, "docker.io/library/a:1");
        assert_string_equal(e->name, "docker.io/library/a");
        assert_string_equal(e->tag, "1");
        assert_string_equal(e->root_digest, idx);
        assert_string_equal(e->manifest_digest, im[p].manifest);
        assert_int_equal(e->manifest_size, im[p].manifest_size);
        assert_string_equal(e->config_digest, im[p].config);
        assert_int_equal(e->n_layers, 1);
        assert_string_equal(e->layers[0].digest, im[p].layer);
        assert_string_equal(e->layers[0].diff_id, im[p].diff_id);
        assert_true(e->diff_ids_match);
        assert_int_equal(e->n_zstd_layers, p == 1 ? 1 : 0);
        assert_true(al_platform_equal(&e->platform, &plats[p]));
    }
    al_selection_dispose(&sel);
}

static void test_select_problems(void **state)
{
    fx *f = *state;
    img a, b;
    const char *archs[] = {"amd64"};
    make_image(f, "amd64", "a", false, false, &a);
    char idx[AL_DIGEST_BUF];
    size_t idx_len;
    make_index(f, &a, archs, 1, idx, &idx_len);
    tag(f, "docker.io/library/a:1", idx, AL_MT_OCI_INDEX, idx_len);
    make_image(f, "arm64", "b", false, false, &b);
    tag_image(f, "docker.io/library/b:1", &b);
    char digest_ref[200];
    snprintf(digest_ref, sizeof(digest_ref), "quay.io/x/a@%s", a.manifest);
    /* Its blob is in the store, though no tag row names it. */

    char *lone = al_xasprintf("%s has no linux/s390x manifest (it has linux/amd64)", digest_ref);
    const struct {
        const char *platform;
        const char *want[6];
    } cases[] = {
        {"linux/amd64",
         {"not in store: docker.io/library/missing:1",
          "not in store: docker.io/library/c@sha256:"
          "1111111111111111111111111111111111111111111111111111111111111111",
          "docker.io/library/b:1 has no linux/amd64 manifest (it has linux/arm64)", NULL}},
        {"linux/s390x",
         {"not in store: docker.io/library/missing:1",
          "not in store: docker.io/library/c@sha256:"
          "1111111111111111111111111111111111111111111111111111111111111111",
          "docker.io/library/a:1 has no linux/s390x manifest (it has linux/amd64)",
          "docker.io/library/b:1 has no linux/s390x manifest (it has linux/arm64)", lone, NULL}},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        const char *refs[] = {
            "a:1", "missing:1",
            "c@sha256:1111111111111111111111111111111111111111111111111111111111111111", "b:1",
            digest_ref};
        al_platform p = plat(cases[i].platform);
        al_selection sel;
        select_refs(f, refs, AL_ARRAY_SIZE(refs), false, &p, 1, &sel);
        size_t n_want = 0;
        while (cases[i].want[n_want])
            n_want++;
        assert_int_equal(sel.n_problems, n_want);
        for (size_t k = 0; k < n_want; k++)
            assert_string_equal(sel.problems[k], cases[i].want[k]);
        /* What each concerns (the run report): the ref, the platform when
         * only that one is lacking, NOT_FOUND for all of these. */
        const char *want_ref[] = {
            "docker.io/library/missing:1",
            "docker.io/library/c@sha256:"
            "1111111111111111111111111111111111111111111111111111111111111111",
            i == 0 ? "docker.io/library/b:1" : "docker.io/library/a:1", "docker.io/library/b:1",
            digest_ref};
        for (size_t k = 0; k < n_want; k++) {
            assert_string_equal(sel.problem_info[k].ref, want_ref[k]);
            assert_int_equal(sel.problem_info[k].platform, k < 2 ? -1 : 0);
            assert_int_equal(sel.problem_info[k].code, AL_E_NOT_FOUND);
        }
        /* The digest ref was found: quay.io/x/a@... by its blob. */
        if (i == 0) {
            assert_int_equal(sel.sets[0].n_images, 2);
            assert_string_equal(sel.sets[0].images[1].ref, digest_ref);
            assert_null(sel.sets[0].images[1].tag);
        }
        al_selection_dispose(&sel);
    }
    free(lone);
    /* --all: an image without the platform is skipped, not a problem. */
    al_platform p = plat("linux/amd64");
    al_selection sel;
    select_refs(f, NULL, 0, true, &p, 1, &sel);
    assert_int_equal(sel.n_problems, 0);
    assert_int_equal(sel.sets[0].n_images, 1);
    assert_string_equal(sel.sets[0].images[0].ref, "docker.io/library/a:1");
    al_selection_dispose(&sel);
}

/* Write one set through a plain sink into a file; returns the rc. */
static int write_archive(fx *f, const al_export_set *set, al_archive_opts *o, const char *path,
                         al_archive **keep, al_error **err)
{
    al_archive *a = NULL;
    int r = al_archive_plan(&a, f->s, set, o, err);
    if (r < 0)
        return r;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    al_sink *sink = NULL;
    assert_int_equal(al_sink_new(&sink, fd, AL_SINK_PLAIN, 0, 1, err), 0);
    r = al_archive_write(a, sink, err);
    if (r == 0)
        r = al_sink_finish(sink, err);
    al_sink_free(sink);
    close(fd);
    if (r == 0) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal((uint64_t)st.st_size, al_archive_tar_size(a));
    }
    if (keep && r == 0)
        *keep = a;
    else
        al_archive_free(a);
    return r;
}

/* Output of `tar FLAGS PATH [MEMBER]`. */
static char *tar_cmd(const char *flags, const char *path, const char *member)
{
    char *cmd = al_xasprintf("tar %s %s %s", flags, path, member ? member : "");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *out = al_xmalloc(cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2)
            out = al_xrealloc(out, cap *= 2);
    }
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    free(cmd);
    return out;
}

static json_t *tar_json(const char *path, const char *name)
{
    char *s = tar_cmd("-xOf", path, name);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    free(s);
    return j;
}

static size_t count_lines(const char *listing, const char *line)
{
    size_t n = 0, len = strlen(line);
    for (const char *p = listing; (p = strstr(p, line)) != NULL; p += len)
        if ((p == listing || p[-1] == '\n') && p[len] == '\n')
            n++;
    return n;
}

static void test_archive_formats(void **state)
{
    fx *f = *state;
    /* Two tags of one image: one manifest.json entry, two index.json
     * descriptors, each blob once. */
    img a;
    make_image(f, "amd64", "shared layer", false, false, &a);
    tag_image(f, "docker.io/library/a:1", &a);
    tag_image(f, "docker.io/library/a:latest", &a);
    al_platform p = plat("linux/amd64");
    const char *refs[] = {"a:1", "a:latest"};
    al_selection sel;
    select_refs(f, refs, 2, false, &p, 1, &sel);
    assert_int_equal(sel.n_problems, 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/out.tar", f->dir);

    static const struct {
        al_export_format format;
        bool manifest_json, index_json, manifest_blob;
    } cases[] = {
        {AL_FORMAT_HYBRID, true, true, true},
        {AL_FORMAT_DOCKER, true, false, false},
        {AL_FORMAT_OCI, false, true, true},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_archive_opts o = {.format = cases[i].format, .verify = true};
        al_error *err = NULL;
        al_archive *arch = NULL;
        assert_int_equal(write_archive(f, &sel.sets[0], &o, path, &arch, &err), 0);
        assert_int_equal(al_archive_n_blobs(arch), cases[i].manifest_blob ? 3 : 2);
        al_archive_free(arch);
        char *list = tar_cmd("-tf", path, NULL);
        char line[128];
        snprintf(line, sizeof(line), "blobs/sha256/%s", al_digest_hex(a.layer));
        assert_int_equal(count_lines(list, line), 1);
        snprintf(line, sizeof(line), "blobs/sha256/%s", al_digest_hex(a.config));
        assert_int_equal(count_lines(list, line), 1);
        snprintf(line, sizeof(line), "blobs/sha256/%s", al_digest_hex(a.manifest));
        assert_int_equal(count_lines(list, line), cases[i].manifest_blob ? 1 : 0);
        assert_int_equal(count_lines(list, "manifest.json"), cases[i].manifest_json);
        assert_int_equal(count_lines(list, "repositories"), cases[i].manifest_json);
        assert_int_equal(count_lines(list, "index.json"), cases[i].index_json);
        assert_int_equal(count_lines(list, "oci-layout"), cases[i].index_json);
        free(list);
        if (cases[i].manifest_json) {
            /* One entry, both tags. */
            json_t *m = tar_json(path, "manifest.json");
            assert_int_equal(json_array_size(m), 1);
            json_t *e = json_array_get(m, 0);
            snprintf(line, sizeof(line), "blobs/sha256/%s", al_digest_hex(a.config));
            assert_string_equal(json_string_value(json_object_get(e, "Config")), line);
            json_t *tags = json_object_get(e, "RepoTags");
            assert_int_equal(json_array_size(tags), 2);
            assert_string_equal(json_string_value(json_array_get(tags, 0)),
                                "docker.io/library/a:1");
            assert_string_equal(json_string_value(json_array_get(tags, 1)),
                                "docker.io/library/a:latest");
            json_t *layers = json_object_get(e, "Layers");
            snprintf(line, sizeof(line), "blobs/sha256/%s", al_digest_hex(a.layer));
            assert_int_equal(json_array_size(layers), 1);
            assert_string_equal(json_string_value(json_array_get(layers, 0)), line);
            json_decref(m);
            json_t *r = tar_json(path, "repositories");
            assert_non_null(json_object_get(json_object_get(r, "docker.io/library/a"), "latest"));
            json_decref(r);
        }
        if (cases[i].index_json) {
            json_t *idx = tar_json(path, "index.json");
            json_t *ms = json_object_get(idx, "manifests");
            assert_int_equal(json_array_size(ms), 2);
            static const char *names[] = {"docker.io/library/a:1", "docker.io/library/a:latest"};
            static const char *refnames[] = {"1", "latest"};
            for (size_t k = 0; k < 2; k++) {
                json_t *d = json_array_get(ms, k);
                assert_string_equal(json_string_value(json_object_get(d, "digest")), a.manifest);
                assert_int_equal(json_integer_value(json_object_get(d, "size")), a.manifest_size);
                json_t *ann = json_object_get(d, "annotations");
                assert_string_equal(
                    json_string_value(json_object_get(ann, "io.containerd.image.name")), names[k]);
                assert_string_equal(
                    json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name")),
                    refnames[k]);
            }
            json_decref(idx);
        }
    }
    al_selection_dispose(&sel);
}

static void flip_byte(fx *f, const char *digest)
{
    char *path = al_store_blob_path(f->s, digest, NULL);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, 0), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, 0), 1);
    close(fd);
    free(path);
}

static void test_archive_corrupt(void **state)
{
    fx *f = *state;
    img a;
    make_image(f, "amd64", "some layer bytes", false, false, &a);
    tag_image(f, "docker.io/library/a:1", &a);
    al_platform p = plat("linux/amd64");
    const char *refs[] = {"a:1"};
    al_selection sel;
    select_refs(f, refs, 1, false, &p, 1, &sel);
    assert_int_equal(sel.n_problems, 0);
    flip_byte(f, a.layer);
    char path[128];
    snprintf(path, sizeof(path), "%s/out.tar", f->dir);
    al_archive_opts o = {.format = AL_FORMAT_HYBRID, .verify = true};
    al_error *err = NULL;
    assert_int_equal(write_archive(f, &sel.sets[0], &o, path, NULL, &err), AL_E_DIGEST);
    char *want =
        al_xasprintf("blob %s of docker.io/library/a:1 is corrupt: content hashes to", a.layer);
    assert_non_null(strstr(err->msg, want));
    free(want);
    al_error_clear(&err);
    /* --no-verify: the hash is skipped, the size still checked. */
    o.verify = false;
    assert_int_equal(write_archive(f, &sel.sets[0], &o, path, NULL, &err), 0);
    char *lpath = al_store_blob_path(f->s, a.layer, NULL);
    assert_int_equal(truncate(lpath, 3), 0);
    free(lpath);
    assert_int_equal(write_archive(f, &sel.sets[0], &o, path, NULL, &err), AL_E_SIZE);
    assert_non_null(strstr(err->msg, "is corrupt: 3 bytes in the store"));
    al_error_clear(&err);
    al_selection_dispose(&sel);
    /* And select says so before anything is written. */
    select_refs(f, refs, 1, false, &p, 1, &sel);
    assert_int_equal(sel.n_problems, 1);
    assert_non_null(strstr(sel.problems[0], "is corrupt"));
    assert_non_null(strstr(sel.problems[0], a.layer));
    assert_int_equal(sel.problem_info[0].code, AL_E_SIZE);
    assert_int_equal(sel.problem_info[0].platform, 0);
    assert_string_equal(sel.problem_info[0].ref, "docker.io/library/a:1");
    al_selection_dispose(&sel);
}

static void test_archive_zstd(void **state)
{
    fx *f = *state;
    static const char content[] = "pretend this is a layer tar; zstd compresses it";
    img z, bad;
    make_image(f, "amd64", content, true, false, &z);
    tag_image(f, "docker.io/library/z:1", &z);
    make_image(f, "amd64", "other content", true, true, &bad);
    tag_image(f, "docker.io/library/bad:1", &bad);
    al_platform p = plat("linux/amd64");
    char path[128];
    snprintf(path, sizeof(path), "%s/out.tar", f->dir);
    const char *refs[] = {"z:1"};
    al_selection sel;
    select_refs(f, refs, 1, false, &p, 1, &sel);
    assert_int_equal(sel.n_problems, 0);

    static const struct {
        al_export_format format;
        bool decompress;
        size_t n_blobs, n_zstd_docker;
        bool docker_points_at_diff_id, zstd_blob_written;
    } cases[] = {
        {AL_FORMAT_HYBRID, false, 3, 1, false, true}, {AL_FORMAT_HYBRID, true, 4, 0, true, true},
        {AL_FORMAT_DOCKER, true, 2, 0, true, false},  {AL_FORMAT_DOCKER, false, 2, 1, false, true},
        {AL_FORMAT_OCI, true, 3, 0, false, true},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_archive_opts o = {
            .format = cases[i].format, .decompress_zstd = cases[i].decompress, .verify = true};
        al_error *err = NULL;
        al_archive *arch = NULL;
        assert_int_equal(write_archive(f, &sel.sets[0], &o, path, &arch, &err), 0);
        assert_int_equal(al_archive_n_blobs(arch), cases[i].n_blobs);
        assert_int_equal(al_archive_n_zstd_docker(arch), cases[i].n_zstd_docker);
        al_archive_free(arch);
        char *list = tar_cmd("-tf", path, NULL);
        char zname[128], dname[128];
        snprintf(zname, sizeof(zname), "blobs/sha256/%s", al_digest_hex(z.layer));
        snprintf(dname, sizeof(dname), "blobs/sha256/%s", al_digest_hex(z.diff_id));
        assert_int_equal(count_lines(list, zname), cases[i].zstd_blob_written);
        assert_int_equal(count_lines(list, dname), cases[i].docker_points_at_diff_id);
        free(list);
        if (cases[i].format != AL_FORMAT_OCI) {
            json_t *m = tar_json(path, "manifest.json");
            const char *l0 = json_string_value(
                json_array_get(json_object_get(json_array_get(m, 0), "Layers"), 0));
            assert_string_equal(l0, cases[i].docker_points_at_diff_id ? dname : zname);
            json_decref(m);
        }
        if (cases[i].docker_points_at_diff_id) {
            char *data = tar_cmd("-xOf", path, dname);
            assert_string_equal(data, content);
            free(data);
        }
    }
    al_selection_dispose(&sel);

    /* A config whose diff_id does not match the decompressed layer. */
    const char *brefs[] = {"bad:1"};
    select_refs(f, brefs, 1, false, &p, 1, &sel);
    assert_int_equal(sel.n_problems, 0);
    al_archive_opts o = {.format = AL_FORMAT_HYBRID, .decompress_zstd = true, .verify = true};
    al_archive *arch = NULL;
    al_error *err = NULL;
    assert_int_equal(al_archive_plan(&arch, f->s, &sel.sets[0], &o, &err), AL_E_DIGEST);
    assert_non_null(strstr(err->msg, "decompresses to"));
    assert_non_null(strstr(err->msg, "docker.io/library/bad:1"));
    al_error_free(err);
    al_selection_dispose(&sel);
}

/* Rows for a graph as fetch commits them: manifests and edges. */
static void commit_rows(fx *f, const char *full_name, const char *root, const char *root_mt,
                        size_t root_size, const al_graph_manifest *gm, size_t ngm,
                        const al_graph_edge *ge, size_t nge)
{
    al_graph g = {.full_name = full_name,
                  .source = "test",
                  .root_digest = root,
                  .root_media_type = root_mt,
                  .root_size = (int64_t)root_size,
                  .manifests = gm,
                  .n_manifests = ngm,
                  .edges = ge,
                  .n_edges = nge};
    al_error *err = NULL;
    if (al_db_graph_commit(f->db, &g, 0, NULL, &err) != 0)
        fail_msg("commit %s: %s", full_name, err->msg);
}

static al_graph_manifest row(const char *digest, const char *mt, bool is_index, const char *config)
{
    al_graph_manifest m = {.media_type = mt, .is_index = is_index};
    snprintf(m.digest, sizeof(m.digest), "%s", digest);
    snprintf(m.config_digest, sizeof(m.config_digest), "%s", config ? config : "");
    return m;
}

static al_graph_edge edge(const char *parent, const char *child, al_edge_kind kind)
{
    al_graph_edge e = {.kind = kind};
    snprintf(e.parent, sizeof(e.parent), "%s", parent);
    snprintf(e.child, sizeof(e.child), "%s", child);
    return e;
}

/* An OCI index with one entry (media type mt, platform linux/arch or none). */
static void one_entry_index(fx *f, const char *mt, const char *digest, size_t size,
                            const char *arch, char out[AL_DIGEST_BUF], size_t *len)
{
    json_t *e =
        json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest, "size", (json_int_t)size);
    if (arch != NULL)
        json_object_set_new(e, "platform",
                            json_pack("{s:s, s:s}", "os", "linux", "architecture", arch));
    json_t *idx = json_pack("{s:i, s:s, s:[o]}", "schemaVersion", 2, "mediaType", AL_MT_OCI_INDEX,
                            "manifests", e);
    put_json(f, idx, out, len);
}

/* Indexes nested `levels` deep above an amd64 image, committed as tag. */
static void nested(fx *f, const char *tag_name, int levels, const img *im)
{
    al_graph_manifest gm[16];
    al_graph_edge ge[16];
    size_t ngm = 0, nge = 0;
    char child[AL_DIGEST_BUF], d[AL_DIGEST_BUF];
    snprintf(child, sizeof(child), "%s", im->manifest);
    size_t child_len = im->manifest_size, len = 0;
    gm[ngm++] = row(im->manifest, AL_MT_OCI_MANIFEST, false, im->config);
    ge[nge++] = edge(im->manifest, im->config, AL_EDGE_CONFIG);
    ge[nge++] = edge(im->manifest, im->layer, AL_EDGE_LAYER);
    for (int l = levels; l >= 1; l--) {
        one_entry_index(f, l == levels ? AL_MT_OCI_MANIFEST : AL_MT_OCI_INDEX, child, child_len,
                        l == levels ? "amd64" : NULL, d, &len);
        gm[ngm++] = row(d, AL_MT_OCI_INDEX, true, NULL);
        ge[nge++] = edge(d, child, AL_EDGE_MANIFEST);
        snprintf(child, sizeof(child), "%s", d);
        child_len = len;
    }
    commit_rows(f, tag_name, child, AL_MT_OCI_INDEX, child_len, gm, ngm, ge, nge);
}

/* Export follows the graph's limit: 5 and 8 index levels are found (the
 * old walk stopped at 4), 9 are refused, naming the limit. */
static void test_select_nested(void **state)
{
    fx *f = *state;
    img im;
    make_image(f, "amd64", "nested layer", false, false, &im);
    nested(f, "docker.io/library/n5:1", 5, &im);
    nested(f, "docker.io/library/n8:1", AL_GRAPH_MAX_INDEX_LEVELS, &im);
    nested(f, "docker.io/library/n9:1", AL_GRAPH_MAX_INDEX_LEVELS + 1, &im);
    al_platform p = plat("linux/amd64");
    const char *refs[] = {"n5:1", "n8:1", "n9:1"};
    al_selection sel;
    select_refs(f, refs, 3, false, &p, 1, &sel);
    assert_int_equal(sel.sets[0].n_images, 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(sel.sets[0].images[i].manifest_digest, im.manifest);
    assert_int_equal(sel.n_problems, 1);
    assert_string_equal(sel.problem_info[0].ref, "docker.io/library/n9:1");
    assert_int_equal(sel.problem_info[0].code, AL_E_UNSUPPORTED);
    assert_non_null(strstr(sel.problems[0], "at most 8 levels"));
    al_selection_dispose(&sel);
}

static const al_verify_problem *find_problem(const al_verify_report *r, const char *kind,
                                             const char *text)
{
    for (size_t i = 0; i < r->n_problems; i++)
        if (strcmp(r->problems[i].kind, kind) == 0 && strstr(r->problems[i].message, text))
            return &r->problems[i];
    return NULL;
}

/* What fetch now refuses (issue 15, item 14) but an older fetch stored:
 * export refuses it with the same rule, --verify-store reports it. */
static void test_refused_graphs(void **state)
{
    fx *f = *state;
    /* cfg:1, an image whose config is not JSON. */
    char cfg[AL_DIGEST_BUF], layer[AL_DIGEST_BUF], man[AL_DIGEST_BUF];
    put(f, "not json", 8, cfg);
    put(f, "layer", 5, layer);
    size_t man_len;
    put_json(f,
             json_pack("{s:i, s:s, s:{s:s, s:s, s:i}, s:[{s:s, s:s, s:i}]}", "schemaVersion", 2,
                       "mediaType", AL_MT_OCI_MANIFEST, "config", "mediaType", AL_MT_OCI_CONFIG,
                       "digest", cfg, "size", 8, "layers", "mediaType", MT_LAYER_GZ, "digest",
                       layer, "size", 5),
             man, &man_len);
    al_graph_manifest gm[3] = {row(man, AL_MT_OCI_MANIFEST, false, cfg)};
    al_graph_edge ge[4] = {edge(man, cfg, AL_EDGE_CONFIG), edge(man, layer, AL_EDGE_LAYER)};
    commit_rows(f, "docker.io/library/cfg:1", man, AL_MT_OCI_MANIFEST, man_len, gm, 1, ge, 2);
    /* kind:1, an index whose entry says image manifest but is an index. */
    img im;
    make_image(f, "amd64", "kind layer", false, false, &im);
    char inner[AL_DIGEST_BUF], outer[AL_DIGEST_BUF];
    size_t inner_len, outer_len;
    one_entry_index(f, AL_MT_OCI_MANIFEST, im.manifest, im.manifest_size, "amd64", inner,
                    &inner_len);
    one_entry_index(f, AL_MT_OCI_MANIFEST, inner, inner_len, "amd64", outer, &outer_len);
    gm[0] = row(im.manifest, AL_MT_OCI_MANIFEST, false, im.config);
    gm[1] = row(inner, AL_MT_OCI_INDEX, true, NULL);
    gm[2] = row(outer, AL_MT_OCI_INDEX, true, NULL);
    ge[0] = edge(outer, inner, AL_EDGE_MANIFEST);
    ge[1] = edge(inner, im.manifest, AL_EDGE_MANIFEST);
    ge[2] = edge(im.manifest, im.config, AL_EDGE_CONFIG);
    ge[3] = edge(im.manifest, im.layer, AL_EDGE_LAYER);
    commit_rows(f, "docker.io/library/kind:1", outer, AL_MT_OCI_INDEX, outer_len, gm, 3, ge, 4);

    al_platform p = plat("linux/amd64");
    const char *refs[] = {"cfg:1", "kind:1"};
    al_selection sel;
    select_refs(f, refs, 2, false, &p, 1, &sel);
    assert_int_equal(sel.sets[0].n_images, 0);
    assert_int_equal(sel.n_problems, 2);
    assert_non_null(strstr(sel.problems[0], "not valid JSON"));
    assert_non_null(strstr(sel.problems[0], cfg));
    assert_non_null(strstr(sel.problems[1], "content is an index"));
    assert_non_null(strstr(sel.problems[1], inner));
    assert_int_equal(sel.problem_info[1].code, AL_E_PARSE);
    al_selection_dispose(&sel);

    al_verify_report rep;
    al_error *err = NULL;
    assert_int_equal(al_verify_store(&rep, f->s, f->db, NULL, NULL, &err), 0);
    const al_verify_problem *c1 = find_problem(&rep, "corrupt", cfg);
    const al_verify_problem *c2 = find_problem(&rep, "corrupt", inner);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_non_null(strstr(c1->message, "not valid JSON"));
    assert_non_null(strstr(c2->message, "descriptor names an image manifest"));
    assert_non_null(find_problem(&rep, "incomplete", "docker.io/library/cfg:1"));
    assert_non_null(find_problem(&rep, "incomplete", "docker.io/library/kind:1"));
    assert_int_equal(rep.n_errors, 4);
    al_verify_report_dispose(&rep);
}

static void test_format_names(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        al_export_format f;
    } cases[] = {
        {"hybrid", 0, AL_FORMAT_HYBRID},
        {"docker", 0, AL_FORMAT_DOCKER},
        {"oci", 0, AL_FORMAT_OCI},
        {"OCI", AL_E_USAGE, 0},
        {"", AL_E_USAGE, 0},
        {"docker-archive", AL_E_USAGE, 0},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++) {
        al_export_format f = AL_FORMAT_HYBRID;
        al_error *err = NULL;
        assert_int_equal(al_export_format_parse(&f, cases[i].s, &err), cases[i].rc);
        if (cases[i].rc == 0)
            assert_string_equal(al_export_format_name(f), cases[i].s);
        else
            assert_non_null(strstr(err->msg, "invalid format"));
        al_error_free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_select_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_problems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_graphs, setup, teardown),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
