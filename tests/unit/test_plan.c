/* fetch/plan (with walk, blobs, commit) against the scripted HTTP server
 * serving a small registry: a layer two images share is downloaded once; a
 * second run costs one HEAD per tag; --platform keeps one platform of an
 * index; an image whose mirror lacks it falls back to the upstream; a
 * layer that fails fails only the images that need it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "engine.h"
#include "plan.h"
#include "platform.h"
#include "registry.h"
#include "reflist.h"
#include "scripted-server.h"
#include "store.h"
#include "test-helpers.h"
#include "util.h"

static ts_server *srv;

/* --- a small registry ------------------------------------------------------------------ */

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar"

typedef struct blob {
    char body[4096];
    char digest[AL_DIGEST_BUF];
    char path[160];    /* "/<digest>": by digest under /blobs/ or /manifests/ */
    char headers[256]; /* Content-Type and Docker-Content-Digest of a manifest */
} blob;

static blob L1, L2, L3, CFG_AMD, CFG_ARM, M_A, M_B, M_ARM, IDX_C;
static char tag_a[64], tag_b[64], tag_c[64];

static void set_blob(blob *b, const char *body, const char *media_type)
{
    snprintf(b->body, sizeof(b->body), "%s", body);
    al_digest_bytes(b->digest, b->body, strlen(b->body));
    snprintf(b->path, sizeof(b->path), "/%s", b->digest);
    if (media_type != NULL)
        snprintf(b->headers, sizeof(b->headers),
                 "Content-Type: %s\r\nDocker-Content-Digest: %s\r\n", media_type, b->digest);
}

static void set_config(blob *b, const char *arch)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[]}}",
             arch);
    set_blob(b, body, NULL);
}

static void set_manifest(blob *m, const blob *cfg, const blob *l1, const blob *l2)
{
    char body[2048];
    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":["
             "{\"mediaType\":\"" MT_LAYER "\",\"digest\":\"%s\",\"size\":%zu},"
             "{\"mediaType\":\"" MT_LAYER "\",\"digest\":\"%s\",\"size\":%zu}]}",
             cfg->digest, strlen(cfg->body), l1->digest, strlen(l1->body), l2->digest,
             strlen(l2->body));
    set_blob(m, body, MT_OCI_MANIFEST);
}

static void set_index(blob *idx, const blob *amd, const blob *arm)
{
    char body[2048];
    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
             "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
             "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}]}",
             amd->digest, strlen(amd->body), arm->digest, strlen(arm->body));
    set_blob(idx, body, MT_OCI_INDEX);
}

/* Images: a (L1 L2, amd64), b (L1 L3, amd64), c (an index: a's manifest
 * for amd64, one of L3 L2 for arm64). */
static void make_registry(void)
{
    set_blob(&L1, "layer one, shared by a and b", NULL);
    set_blob(&L2, "layer two", NULL);
    set_blob(&L3, "layer three", NULL);
    set_config(&CFG_AMD, "amd64");
    set_config(&CFG_ARM, "arm64");
    set_manifest(&M_A, &CFG_AMD, &L1, &L2);
    set_manifest(&M_B, &CFG_AMD, &L1, &L3);
    set_manifest(&M_ARM, &CFG_ARM, &L3, &L2);
    set_index(&IDX_C, &M_A, &M_ARM);
    snprintf(tag_a, sizeof(tag_a), "/v2/app/a/manifests/1");
    snprintf(tag_b, sizeof(tag_b), "/v2/app/b/manifests/1");
    snprintf(tag_c, sizeof(tag_c), "/v2/app/c/manifests/1");
}

#define SERVE(p, b)                                                                                \
    {                                                                                              \
        .path = (p), .body = (b).body, .headers = (b).headers                                      \
    }
#define SERVE_BLOB(b)                                                                              \
    {                                                                                              \
        .path = (b).path, .body = (b).body, .headers = (b).headers                                 \
    }

/* The registry, after `first` extra rules (faults). */
static void serve(const ts_rule *first, size_t n_first)
{
    ts_rule rules[32];
    size_t n = 0;
    for (size_t i = 0; i < n_first; i++)
        rules[n++] = first[i];
    const ts_rule content[] = {
        SERVE(tag_a, M_A), SERVE(tag_b, M_B), SERVE(tag_c, IDX_C), SERVE_BLOB(M_A),
        SERVE_BLOB(M_B),   SERVE_BLOB(M_ARM), SERVE_BLOB(IDX_C),   SERVE_BLOB(L1),
        SERVE_BLOB(L2),    SERVE_BLOB(L3),    SERVE_BLOB(CFG_AMD), SERVE_BLOB(CFG_ARM),
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(content); i++)
        rules[n++] = content[i];
    ts_set_rules(srv, rules, n);
}

/* --- a fetch run -------------------------------------------------------------------------- */

typedef struct fx {
    char *dir;
    al_store *store;
    al_db *db;
    al_engine *engine;
    al_registry *reg;
    char *insecure[2];
    const char *certs_dirs[2];
    al_image_result *res;
    size_t n_res;
} fx;

static void fx_open(fx *f)
{
    memset(f, 0, sizeof(*f));
    f->dir = th_mkdtemp();
    assert_int_equal(al_store_open(&f->store, f->dir, AL_STORE_WRITE, NULL), 0);
    assert_int_equal(al_db_open(&f->db, al_store_db_path(f->store), false, NULL), 0);
}

static void fx_close(fx *f)
{
    al_image_results_free(f->res, f->n_res);
    al_db_free(f->db);
    al_store_free(f->store);
    th_rm_rf(f->dir);
    free(f->dir);
}

/* One airlock-fetch run of refs (names under the main listener). */
static void fetch(fx *f, const al_fetch_opts *opts, const char *const *refs, size_t n)
{
    al_image_results_free(f->res, f->n_res);
    al_engine_opts eo;
    al_engine_opts_default(&eo);
    eo.max_retries = 0;
    assert_int_equal(al_engine_new(&f->engine, &eo, NULL), 0);
    f->insecure[0] = (char *)ts_host(srv);
    f->insecure[1] = (char *)ts_alt_host(srv);
    f->certs_dirs[0] = f->dir;
    al_registry_opts ro = {
        .insecure_hosts = f->insecure, .n_insecure = 2, .certs_dirs = f->certs_dirs};
    assert_int_equal(al_registry_new(&f->reg, f->engine, &ro, NULL), 0);
    al_reflist list;
    al_reflist_init(&list);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *ref = al_xasprintf("%s/%s", ts_host(srv), refs[i]);
        al_reflist_add_arg(&list, ref, (int)i + 1);
    }
    assert_int_equal(list.n_problems, 0);
    al_fetch_ctx ctx = {.store = f->store, .db = f->db, .registry = f->reg};
    assert_int_equal(al_db_run_begin(f->db, "test", &ctx.run_id, NULL), 0);
    if (opts != NULL)
        ctx.opts = *opts;
    al_error *err = NULL;
    assert_int_equal(al_fetch_run(&ctx, &list, &f->res, &err), 0);
    f->n_res = n;
    al_reflist_dispose(&list);
    al_registry_free(f->reg);
    al_engine_free(f->engine);
}

static void assert_status(const fx *f, size_t i, al_image_status want)
{
    const al_image_result *r = &f->res[i];
    if (r->status != want)
        fail_msg("image %zu (%s): status %d, expected %d (%s)", i, r->full_name, (int)r->status,
                 (int)want, r->err ? r->err->msg : "no error");
}

static bool in_store(const fx *f, const blob *b)
{
    return al_store_has_blob(f->store, b->digest, NULL);
}

/* --- the tests ----------------------------------------------------------------------------- */

static void test_shared_layer_once(void **state)
{
    (void)state;
    serve(NULL, 0);
    fx f;
    fx_open(&f);
    const char *refs[] = {"app/a:1", "app/b:1"};
    fetch(&f, NULL, refs, 2);
    assert_status(&f, 0, AL_IMG_OK);
    assert_status(&f, 1, AL_IMG_OK);
    assert_int_equal(ts_count(srv, "GET", L1.path, 0), 1);
    assert_true(in_store(&f, &L1) && in_store(&f, &L2) && in_store(&f, &L3));
    assert_string_equal(f.res[0].digest, M_A.digest);
    assert_string_equal(f.res[0].platforms, "linux/amd64");
    /* The second run: one HEAD per tag, nothing else. */
    serve(NULL, 0);
    fetch(&f, NULL, refs, 2);
    assert_status(&f, 0, AL_IMG_UNCHANGED);
    assert_status(&f, 1, AL_IMG_UNCHANGED);
    assert_int_equal(ts_count(srv, NULL, NULL, -1), 2);
    assert_int_equal(ts_count(srv, "HEAD", "/manifests/1", 0), 2);
    fx_close(&f);
}

static void test_platform(void **state)
{
    (void)state;
    serve(NULL, 0);
    fx f;
    fx_open(&f);
    al_platform *plats = NULL;
    size_t n_plats = 0;
    assert_int_equal(al_platform_parse_list(&plats, &n_plats, "linux/arm64", NULL), 0);
    al_fetch_opts o = {.platforms = plats, .n_platforms = n_plats};
    const char *refs[] = {"app/c:1"};
    fetch(&f, &o, refs, 1);
    assert_status(&f, 0, AL_IMG_OK);
    assert_string_equal(f.res[0].platforms, "linux/arm64");
    assert_true(in_store(&f, &M_ARM) && in_store(&f, &L3) && in_store(&f, &CFG_ARM));
    assert_false(in_store(&f, &M_A) || in_store(&f, &L1) || in_store(&f, &CFG_AMD));
    assert_int_equal(ts_count(srv, "GET", L1.path, 0), 0);
    free(plats);
    fx_close(&f);
}

/* A mirror (the alt listener) that has nothing: the upstream serves. */
static void test_mirror_fallback(void **state)
{
    (void)state;
    serve(NULL, 0);
    fx f;
    fx_open(&f);
    al_mirror m = {.upstream = ts_host(srv), .host = ts_alt_host(srv)};
    al_fetch_opts o = {.mirrors = &m, .n_mirrors = 1};
    const char *refs[] = {"app/a:1", "app/b:1"};
    fetch(&f, &o, refs, 2);
    assert_status(&f, 0, AL_IMG_OK);
    assert_status(&f, 1, AL_IMG_OK);
    assert_int_equal(ts_count(srv, "GET", "/v2/app/a/manifests/1", 1), 1); /* asked there first */
    al_tag t;
    bool found = false;
    _cleanup_free_ char *name = al_xasprintf("%s/app/a:1", ts_host(srv));
    assert_int_equal(al_db_tag_get(f.db, name, &t, &found, NULL), 0);
    assert_true(found);
    _cleanup_free_ char *source = al_xasprintf("%s/app/a", ts_host(srv));
    assert_string_equal(t.source, source);
    al_tag_dispose(&t);
    fx_close(&f);
}

/* A layer the registry cannot serve fails the images that need it, and
 * those only; what they share with others is downloaded once, and kept. */
static void test_layer_failure(void **state)
{
    (void)state;
    ts_rule fault[] = {{.path = L3.path, .status = 500}};
    serve(fault, 1);
    fx f;
    fx_open(&f);
    const char *refs[] = {"app/a:1", "app/b:1"};
    fetch(&f, NULL, refs, 2);
    assert_status(&f, 0, AL_IMG_OK);
    assert_status(&f, 1, AL_IMG_FAILED);
    assert_non_null(strstr(f.res[1].err->msg, L3.digest));
    assert_non_null(strstr(f.res[1].err->msg, "HTTP 500"));
    assert_int_equal(ts_count(srv, "GET", L1.path, 0), 1);
    bool found = true;
    assert_int_equal(al_db_blob_get(f.db, L1.digest, &found, NULL, NULL), 0);
    assert_true(found);
    _cleanup_free_ char *name = al_xasprintf("%s/app/b:1", ts_host(srv));
    al_tag t;
    assert_int_equal(al_db_tag_get(f.db, name, &t, &found, NULL), 0);
    assert_false(found); /* no tag row for a graph with a blob missing */
    fx_close(&f);
}

static int group_setup(void **state)
{
    (void)state;
    make_registry();
    srv = ts_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ts_stop(srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_layer_once),
        cmocka_unit_test(test_platform),
        cmocka_unit_test(test_mirror_fallback),
        cmocka_unit_test(test_layer_failure),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
