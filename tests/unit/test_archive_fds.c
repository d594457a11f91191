/* export/archive and the files it reads:
 *   - each blob is opened once and hashed from the fd it is copied from,
 *     never opened again by path (a path may name another file by then);
 *   - a zstd decompression context that cannot be made (the library
 *     returns NULL) is an error naming the blob, not a crash.
 * This binary is linked with --wrap for ZSTD_createDCtx, open64 and
 * openat64 (tests/CMakeLists.txt); the stand-ins count and pass on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include <pthread.h>
#include <unistd.h>

#include "archive.h"
#include "db.h"
#include "digest.h"
#include "manifest.h"
#include "ref.h"
#include "select.h"
#include "sink.h"
#include "store.h"
#include "test-helpers.h"

#define MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

static bool dctx_fails;
ZSTD_DCtx *__real_ZSTD_createDCtx(void);
ZSTD_DCtx *__wrap_ZSTD_createDCtx(void)
{
    return dctx_fails ? NULL : __real_ZSTD_createDCtx();
}

/* Opens of a path holding `watch` (a blob's hex), from any thread. */
static const char *volatile watch;
static int n_opens;
static pthread_mutex_t opens_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_open(const char *path)
{
    const char *w = watch;
    if (w != NULL && strstr(path, w) != NULL) {
        pthread_mutex_lock(&opens_mu);
        n_opens++;
        pthread_mutex_unlock(&opens_mu);
    }
}

int __real_open64(const char *path, int flags, ...);
int __real_openat64(int dirfd, const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    count_open(path);
    return __real_open64(path, flags, mode);
}
int __wrap_openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    count_open(path);
    return __real_openat64(dirfd, path, flags, mode);
}

typedef struct {
    char *dir;
    al_store *s;
    al_db *db;
    char layer[AL_DIGEST_BUF];
} fx;

static void put(fx *f, const void *buf, size_t len, char out[AL_DIGEST_BUF])
{
    al_digest_bytes(out, buf, len);
    assert_int_equal(al_store_put_blob(f->s, out, buf, len, NULL), 0);
    assert_int_equal(al_db_blob_add(f->db, out, (int64_t)len, NULL, NULL), 0);
}

static void put_json(fx *f, json_t *j, char out[AL_DIGEST_BUF], size_t *len)
{
    char *text = json_dumps(j, JSON_COMPACT);
    *len = strlen(text);
    put(f, text, *len, out);
    free(text);
    json_decref(j);
}

/* docker.io/library/z:1: one zstd layer, its diff_id in the config. */
static int setup(void **state)
{
    fx *f = al_xcalloc(1, sizeof(*f));
    f->dir = th_mkdtemp();
    assert_int_equal(al_store_open(&f->s, f->dir, AL_STORE_WRITE, NULL), 0);
    assert_int_equal(al_db_open(&f->db, al_store_db_path(f->s), false, NULL), 0);
    static const char content[] = "a layer tar, pretend; zstd-compressed in the store";
    char diff_id[AL_DIGEST_BUF], config[AL_DIGEST_BUF], manifest[AL_DIGEST_BUF];
    al_digest_bytes(diff_id, content, strlen(content));
    char z[256];
    size_t zlen = ZSTD_compress(z, sizeof(z), content, strlen(content), 3);
    assert_false(ZSTD_isError(zlen));
    put(f, z, zlen, f->layer);
    size_t clen = 0, mlen = 0;
    put_json(f,
             json_pack("{s:s, s:s, s:{s:s, s:[s]}}", "architecture", "amd64", "os", "linux",
                       "rootfs", "type", "layers", "diff_ids", diff_id),
             config, &clen);
    put_json(f,
             json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2,
                       "mediaType", AL_MT_OCI_MANIFEST, "config", "mediaType", AL_MT_OCI_CONFIG,
                       "digest", config, "size", (json_int_t)clen, "layers", "mediaType",
                       MT_LAYER_ZSTD, "digest", f->layer, "size", (json_int_t)zlen),
             manifest, &mlen);
    al_graph g = {.full_name = "docker.io/library/z:1",
                  .source = "test",
                  .root_digest = manifest,
                  .root_media_type = AL_MT_OCI_MANIFEST,
                  .root_size = (int64_t)mlen};
    assert_int_equal(al_db_graph_commit(f->db, &g, 0, NULL, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    dctx_fails = false;
    al_db_free(f->db);
    al_store_free(f->s);
    th_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void select_z(fx *f, al_selection *sel)
{
    al_ref *ref = NULL;
    assert_int_equal(al_ref_parse(&ref, "z:1", NULL), 0);
    al_platform p;
    assert_int_equal(al_platform_parse(&p, "linux/amd64", NULL), 0);
    al_selection_init(sel);
    assert_int_equal(al_export_select(sel, f->s, f->db, &ref, 1, false, &p, 1, NULL), 0);
    assert_int_equal(sel->n_problems, 0);
    al_ref_free(ref);
}

/* A plain tarball with verification: the copy goes through the kernel and
 * the hash runs on a second thread; that thread must hash the fd the
 * writer copies from, so the layer's file is opened exactly once. */
static void test_blob_opened_once(void **state)
{
    fx *f = *state;
    al_selection sel;
    select_z(f, &sel);
    al_archive_opts o = {.format = AL_FORMAT_OCI, .verify = true};
    al_archive *a = NULL;
    al_error *err = NULL;
    assert_int_equal(al_archive_plan(&a, f->s, &sel.sets[0], &o, &err), 0);
    char *path = al_xasprintf("%s/out.tar", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    al_sink *sink = NULL;
    assert_int_equal(al_sink_new(&sink, fd, AL_SINK_PLAIN, 0, 1, &err), 0);
    watch = al_digest_hex(f->layer);
    n_opens = 0;
    assert_int_equal(al_archive_write(a, sink, &err), 0);
    watch = NULL;
    assert_int_equal(al_sink_finish(sink, &err), 0);
    if (n_opens != 1)
        fail_msg("the layer was opened %d times while it was written and verified", n_opens);
    al_sink_free(sink);
    close(fd);
    free(path);
    al_archive_free(a);
    al_selection_dispose(&sel);
}

static void test_dctx_null(void **state)
{
    fx *f = *state;
    al_selection sel;
    select_z(f, &sel);
    /* Decompressing zstd layers for docker: planning reads the layer. */
    al_archive_opts o = {.format = AL_FORMAT_HYBRID, .decompress_zstd = true, .verify = true};
    al_archive *a = NULL;
    al_error *err = NULL;
    dctx_fails = true;
    assert_int_equal(al_archive_plan(&a, f->s, &sel.sets[0], &o, &err), AL_E_IO);
    assert_null(a);
    assert_non_null(strstr(err->msg, f->layer));
    assert_non_null(strstr(err->msg, "decompression context"));
    al_error_free(err);
    err = NULL;
    /* And with a context to be had, the same plan works. */
    dctx_fails = false;
    assert_int_equal(al_archive_plan(&a, f->s, &sel.sets[0], &o, &err), 0);
    al_archive_free(a);
    al_selection_dispose(&sel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blob_opened_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dctx_null, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
