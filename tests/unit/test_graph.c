/* common/graph: the image graph's rules and its walk, over an in-memory
 * blob source. Blobs are normally stored under their own digest; a test
 * that needs a cycle stores one under another digest (a source breaking
 * its promise), since real content cannot name its own hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "util.h"

#define N AL_GRAPH_MAX_INDEX_LEVELS
#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"

/* --- the in-memory source ------------------------------------------------ */

typedef struct blob {
    char digest[AL_DIGEST_BUF];
    char *body;
    int reads;
} blob;

typedef struct mem {
    blob b[128];
    size_t n;
} mem;

static blob *find(mem *s, const char *digest)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->b[i].digest, digest) == 0)
            return &s->b[i];
    return NULL;
}

/* Store body under digest (NULL: its own). Returns the digest. */
static const char *put_as(mem *s, const char *digest, const char *body)
{
    assert_true(s->n < AL_ARRAY_SIZE(s->b));
    blob *b = &s->b[s->n++];
    if (digest != NULL)
        snprintf(b->digest, sizeof(b->digest), "%s", digest);
    else
        al_digest_bytes(b->digest, body, strlen(body));
    b->body = al_xstrdup(body);
    return b->digest;
}

static const char *put(mem *s, const char *body)
{
    return put_as(s, NULL, body);
}

static int mem_read(void *ud, const char *digest, size_t cap, char **out, size_t *len,
                    al_error **err)
{
    blob *b = find(ud, digest);
    if (b == NULL)
        return al_error_set(err, AL_E_NOT_FOUND, 0, "blob %s is not in the source", digest);
    b->reads++;
    size_t n = strlen(b->body);
    if (n > cap)
        return al_error_set(err, AL_E_SIZE, 0, "blob %s is too big", digest);
    *out = al_xstrdup(b->body);
    *len = n;
    return 0;
}

static void mem_free(mem *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->b[i].body);
}

static int reads_of(mem *s, const char *digest)
{
    blob *b = find(s, digest);
    return b ? b->reads : 0;
}

/* --- building graphs ---------------------------------------------------- */

static size_t size_of(mem *s, const char *digest)
{
    blob *b = find(s, digest);
    return b ? strlen(b->body) : 100;
}

/* An image for arch ("amd64"; NULL: a config that names no platform;
 * "unknown": an attestation), told apart from others by `name`. The
 * config body may be given (bad_config) instead. Returns the manifest. */
static const char *image_with(mem *s, const char *arch, const char *name, const char *bad_config)
{
    char cfg[512];
    if (bad_config != NULL)
        snprintf(cfg, sizeof(cfg), "%s", bad_config);
    else if (arch != NULL)
        snprintf(cfg, sizeof(cfg),
                 "{\"architecture\":\"%s\",\"os\":\"%s\",\"author\":\"%s\","
                 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                 arch, strcmp(arch, "unknown") == 0 ? "unknown" : "linux", name, LAYER);
    else
        snprintf(cfg, sizeof(cfg), "{\"author\":\"%s\"}", name);
    char cd[AL_DIGEST_BUF];
    snprintf(cd, sizeof(cd), "%s", put(s, cfg));
    char m[1024];
    snprintf(m, sizeof(m),
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
             "\"size\":100}]}",
             AL_MT_OCI_MANIFEST, AL_MT_OCI_CONFIG, cd, strlen(cfg), MT_LAYER, LAYER);
    return put(s, m);
}

static const char *image(mem *s, const char *arch, const char *name)
{
    return image_with(s, arch, name, NULL);
}

/* One index entry: media type (NULL: none), digest, platform ("os/arch";
 * NULL: none). The size is the stored body's. */
static char *entry(mem *s, const char *mt, const char *digest, const char *platform)
{
    char plat[128] = "";
    if (platform != NULL) {
        char os[32], arch[32];
        assert_int_equal(sscanf(platform, "%31[^/]/%31s", os, arch), 2);
        snprintf(plat, sizeof(plat), ",\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"}", os,
                 arch);
    }
    char mtf[128] = "";
    if (mt != NULL)
        snprintf(mtf, sizeof(mtf), "\"mediaType\":\"%s\",", mt);
    return al_xasprintf("{%s\"digest\":\"%s\",\"size\":%zu%s}", mtf, digest, size_of(s, digest),
                        plat);
}

/* An index over entries (each malloc'd, freed here), stored under `as`
 * (NULL: its own digest). */
static const char *index_as(mem *s, const char *as, char **entries, size_t n)
{
    char *body =
        al_xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[", AL_MT_OCI_INDEX);
    for (size_t i = 0; i < n; i++) {
        char *t = al_xasprintf("%s%s%s", body, i ? "," : "", entries[i]);
        free(body);
        free(entries[i]);
        body = t;
    }
    char *t = al_xasprintf("%s]}", body);
    free(body);
    const char *d = put_as(s, as, t);
    free(t);
    return d;
}

#define INDEX(s, ...)                                                                              \
    index_as(s, NULL, (char *[]){__VA_ARGS__}, sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))

/* A chain of `levels` indexes, the innermost listing an amd64 and an arm64
 * image; nested entries typed as indexes, or without a media type. */
static const char *chain(mem *s, int levels, bool typed)
{
    const char *d = INDEX(s, entry(s, AL_MT_OCI_MANIFEST, image(s, "amd64", "leaf"), "linux/amd64"),
                          entry(s, AL_MT_OCI_MANIFEST, image(s, "arm64", "leaf"), "linux/arm64"));
    for (int l = levels - 1; l >= 1; l--) {
        char inner[AL_DIGEST_BUF];
        snprintf(inner, sizeof(inner), "%s", d);
        d = INDEX(s, entry(s, typed ? AL_MT_OCI_INDEX : NULL, inner, NULL));
    }
    return d;
}

/* --- walking and recording ------------------------------------------------ */

typedef struct seen_node {
    al_graph_state state;
    char digest[AL_DIGEST_BUF];
    al_graph_kind kind;
    int level;
    char platform[64];
    al_errc code;
    char error[512];
    char error_digest[AL_DIGEST_BUF];
    bool has_m, has_config;
} seen_node;

typedef struct rec {
    seen_node v[256];
    size_t n;
    int stop_after; /* > 0: AL_GRAPH_STOP on that visit */
    bool fail_fast; /* FAILED ends the walk */
} rec;

static int record(void *ud, const al_graph_node *n, al_error **err)
{
    rec *r = ud;
    assert_true(r->n < AL_ARRAY_SIZE(r->v));
    seen_node *s = &r->v[r->n++];
    memset(s, 0, sizeof(*s));
    s->state = n->state;
    snprintf(s->digest, sizeof(s->digest), "%s", n->digest);
    s->kind = n->kind;
    s->level = n->level;
    if (n->has_platform)
        al_platform_format(&n->platform, s->platform, sizeof(s->platform));
    s->has_m = n->m != NULL;
    s->has_config = n->config != NULL;
    if (n->state == AL_GRAPH_FAILED) {
        s->code = n->error->code;
        snprintf(s->error, sizeof(s->error), "%s", n->error->msg);
        snprintf(s->error_digest, sizeof(s->error_digest), "%s", n->error_digest);
        if (r->fail_fast)
            return al_graph_node_error(n, err);
    }
    if (r->stop_after > 0 && (int)r->n == r->stop_after)
        return AL_GRAPH_STOP;
    return 0;
}

static int walk(mem *s, const char *root, const al_graph_walk_opts *o, rec *r, al_error **err)
{
    al_graph_source src = {.read = mem_read, .ud = s};
    al_descriptor d = {.size = -1};
    snprintf(d.digest, sizeof(d.digest), "%s", root);
    return al_graph_walk(&src, &d, o, record, r, err);
}

static const seen_node *node_for(const rec *r, const char *digest)
{
    const seen_node *found = NULL;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].digest, digest) == 0) {
            assert_null(found); /* each digest once */
            found = &r->v[i];
        }
    return found;
}

static size_t count_state(const rec *r, al_graph_state st, al_graph_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i].state == st && r->v[i].kind == kind;
    return n;
}

static al_platform plat(const char *s)
{
    al_platform p;
    assert_int_equal(al_platform_parse(&p, s, NULL), 0);
    return p;
}

/* --- tests ---------------------------------------------------------------- */

static void test_kinds(void **state)
{
    (void)state;
    assert_int_equal(al_graph_kind_of(AL_MT_OCI_INDEX), AL_GRAPH_INDEX);
    assert_int_equal(al_graph_kind_of(AL_MT_DOCKER_LIST), AL_GRAPH_INDEX);
    /* One rule for recognising an index: case and parameters do not matter. */
    assert_int_equal(al_graph_kind_of("Application/VND.oci.image.index.v1+json; charset=x"),
                     AL_GRAPH_INDEX);
    assert_int_equal(al_graph_kind_of(AL_MT_OCI_MANIFEST), AL_GRAPH_IMAGE);
    assert_int_equal(al_graph_kind_of(AL_MT_DOCKER_MANIFEST), AL_GRAPH_IMAGE);
    assert_int_equal(al_graph_kind_of(NULL), AL_GRAPH_EITHER);
    assert_int_equal(al_graph_kind_of("application/vnd.oci.artifact.manifest.v1+json"),
                     AL_GRAPH_OTHER);
    assert_int_equal(al_graph_kind_of("application/vnd.docker.distribution.manifest.v1+json"),
                     AL_GRAPH_OTHER);
    assert_int_equal(al_graph_kind_of(MT_LAYER), AL_GRAPH_OTHER);
}

/* N index levels walk; N + 1 fail, typed or not, and nothing below the
 * refused index is read. */
static void test_depth(void **state)
{
    (void)state;
    for (int typed = 0; typed < 2; typed++) {
        for (int levels = N - 1; levels <= N + 1; levels++) {
            mem s = {0};
            const char *root = chain(&s, levels, typed);
            rec r = {0};
            al_graph_walk_opts o = {0};
            al_error *err = NULL;
            assert_int_equal(walk(&s, root, &o, &r, &err), 0);
            if (levels <= N) {
                assert_int_equal(count_state(&r, AL_GRAPH_VISITED, AL_GRAPH_INDEX), levels);
                assert_int_equal(count_state(&r, AL_GRAPH_VISITED, AL_GRAPH_IMAGE), 2);
                for (size_t i = 0; i < r.n; i++) {
                    assert_int_equal(r.v[i].state, AL_GRAPH_VISITED);
                    if (r.v[i].kind == AL_GRAPH_IMAGE)
                        assert_int_equal(r.v[i].level, levels + 1);
                }
            } else {
                assert_int_equal(count_state(&r, AL_GRAPH_VISITED, AL_GRAPH_INDEX), N);
                assert_int_equal(count_state(&r, AL_GRAPH_VISITED, AL_GRAPH_IMAGE), 0);
                const seen_node *f = &r.v[r.n - 1];
                assert_int_equal(f->state, AL_GRAPH_FAILED);
                assert_int_equal(f->level, N + 1);
                assert_int_equal(f->code, AL_E_UNSUPPORTED);
                char want[64];
                snprintf(want, sizeof(want), "at most %d levels", N);
                if (strstr(f->error, want) == NULL)
                    fail_msg("no '%s' in: %s", want, f->error);
                /* Typed: refused from the descriptor, its body never read. */
                assert_int_equal(reads_of(&s, f->digest), typed ? 0 : 1);
            }
            mem_free(&s);
        }
    }
}

/* The step that fetch uses agrees with the walk at the limit. */
static void test_step_depth(void **state)
{
    (void)state;
    mem s = {0};
    const char *leaf = image(&s, "amd64", "x");
    char inner[AL_DIGEST_BUF];
    snprintf(inner, sizeof(inner), "%s",
             INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, leaf, "linux/amd64")));
    const char *outer = INDEX(&s, entry(&s, AL_MT_OCI_INDEX, inner, NULL));
    blob *ob = find(&s, outer), *ib = find(&s, inner);
    al_manifest *m = NULL;
    al_error *err = NULL;
    assert_int_equal(al_graph_accept_manifest(&m, NULL, N, ob->body, strlen(ob->body), NULL, &err),
                     0);
    size_t *next = NULL, n = 0;
    /* At level N - 1 its nested index is at N: fine. */
    assert_int_equal(al_graph_next(&next, &n, outer, m, N - 1, NULL, &err), 0);
    assert_int_equal(n, 1);
    free(next);
    /* At level N it would be at N + 1. */
    assert_int_equal(al_graph_next(&next, &n, outer, m, N, NULL, &err), AL_E_UNSUPPORTED);
    assert_non_null(strstr(err->msg, inner));
    al_error_clear(&err);
    al_manifest_free(m);
    /* An untyped entry is only known at its body: the index at N + 1 is refused. */
    al_descriptor d = {.media_type = NULL, .size = (int64_t)strlen(ib->body)};
    assert_int_equal(
        al_graph_accept_manifest(&m, &d, N + 1, ib->body, strlen(ib->body), NULL, &err),
        AL_E_UNSUPPORTED);
    assert_null(m);
    al_error_clear(&err);
    assert_int_equal(al_graph_accept_manifest(&m, &d, N, ib->body, strlen(ib->body), NULL, &err),
                     0);
    al_manifest_free(m);
    mem_free(&s);
}

static void test_platforms_and_attestations(void **state)
{
    (void)state;
    mem s = {0};
    char amd[AL_DIGEST_BUF], arm[AL_DIGEST_BUF], ppc[AL_DIGEST_BUF], att[AL_DIGEST_BUF],
        bare[AL_DIGEST_BUF];
    snprintf(amd, sizeof(amd), "%s", image(&s, "amd64", "a"));
    snprintf(arm, sizeof(arm), "%s", image(&s, "arm64", "a"));
    snprintf(ppc, sizeof(ppc), "%s", image(&s, "ppc64le", "a"));
    snprintf(att, sizeof(att), "%s", image(&s, "unknown", "att"));
    /* No platform field: its config says arm64. */
    snprintf(bare, sizeof(bare), "%s", image(&s, "arm64", "bare"));
    const char *root = INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, amd, "linux/amd64"),
                             entry(&s, AL_MT_OCI_MANIFEST, arm, "linux/arm64"),
                             entry(&s, AL_MT_OCI_MANIFEST, ppc, "linux/ppc64le"),
                             entry(&s, AL_MT_OCI_MANIFEST, att, "unknown/unknown"),
                             entry(&s, AL_MT_OCI_MANIFEST, bare, NULL));
    al_platform want[] = {plat("linux/amd64"), plat("linux/arm64")};
    const struct {
        al_graph_select sel;
        bool null_sel;
        const char *visited[6];
    } cases[] = {
        {{want, 1, false}, false, {amd, NULL}},
        {{want, 2, false}, false, {amd, arm, bare, NULL}},
        {{NULL, 0, false}, false, {amd, arm, ppc, bare, NULL}},
        {{want, 1, true}, false, {amd, att, NULL}},
        {{NULL, 0, true}, true, {amd, arm, ppc, att, bare, NULL}},
    };
    for (size_t c = 0; c < AL_ARRAY_SIZE(cases); c++) {
        for (size_t i = 0; i < s.n; i++)
            s.b[i].reads = 0;
        rec r = {0};
        al_graph_walk_opts o = {.select = cases[c].null_sel ? NULL : &cases[c].sel};
        al_error *err = NULL;
        assert_int_equal(walk(&s, root, &o, &r, &err), 0);
        assert_int_equal(r.n, 6); /* the root and every entry, once each */
        size_t nv = 0;
        for (; cases[c].visited[nv]; nv++) {
            const seen_node *v = node_for(&r, cases[c].visited[nv]);
            assert_non_null(v);
            assert_int_equal(v->state, AL_GRAPH_VISITED);
        }
        assert_int_equal(count_state(&r, AL_GRAPH_VISITED, AL_GRAPH_IMAGE), nv);
        /* Skipped entries with a platform field are never read; the bare
         * one is, to learn its platform from the config. */
        const char *all[] = {amd, arm, ppc, att};
        for (size_t i = 0; i < AL_ARRAY_SIZE(all); i++) {
            const seen_node *v = node_for(&r, all[i]);
            if (v->state == AL_GRAPH_SKIPPED)
                assert_int_equal(reads_of(&s, all[i]), 0);
        }
        const seen_node *b = node_for(&r, bare);
        assert_string_equal(b->platform, cases[c].null_sel ? "" : "linux/arm64");
        if (b->state == AL_GRAPH_SKIPPED) {
            assert_true(b->has_m);
            assert_true(b->has_config);
        }
    }
    /* AL_GRAPH_STOP at a skipped entry ends the walk there: nothing more
     * is visited or read. */
    for (size_t i = 0; i < s.n; i++)
        s.b[i].reads = 0;
    rec st = {.stop_after = 3};
    al_graph_walk_opts so = {.select = &cases[0].sel};
    assert_int_equal(walk(&s, root, &so, &st, NULL), 0);
    assert_int_equal(st.n, 3);
    assert_int_equal(st.v[2].state, AL_GRAPH_SKIPPED);
    assert_string_equal(st.v[2].digest, arm);
    assert_int_equal(reads_of(&s, arm) + reads_of(&s, ppc) + reads_of(&s, bare), 0);
    /* The step gives the same entries (the bare one: its config decides). */
    al_manifest *m = NULL;
    al_error *err = NULL;
    blob *rb = find(&s, root);
    assert_int_equal(al_graph_accept_manifest(&m, NULL, 1, rb->body, strlen(rb->body), NULL, &err),
                     0);
    size_t *next = NULL, n = 0;
    assert_int_equal(al_graph_next(&next, &n, root, m, 1, &cases[0].sel, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(next[0], 0);
    assert_int_equal(next[1], 4);
    free(next);
    assert_int_equal(al_graph_next(&next, &n, root, m, 1, &cases[3].sel, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(next[1], 3);
    free(next);
    al_manifest_free(m);
    assert_true(al_graph_platform_wanted(NULL, &(al_platform){"unknown", "unknown", ""}));
    mem_free(&s);
}

/* A manifest listed twice, and again by a nested index: visited once. */
static void test_duplicates(void **state)
{
    (void)state;
    mem s = {0};
    char amd[AL_DIGEST_BUF], inner[AL_DIGEST_BUF];
    snprintf(amd, sizeof(amd), "%s", image(&s, "amd64", "a"));
    snprintf(inner, sizeof(inner), "%s",
             INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, amd, "linux/amd64")));
    const char *root = INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, amd, "linux/amd64"),
                             entry(&s, AL_MT_OCI_MANIFEST, amd, "linux/amd64"),
                             entry(&s, AL_MT_OCI_INDEX, inner, NULL));
    rec r = {0};
    al_graph_walk_opts o = {0};
    al_error *err = NULL;
    assert_int_equal(walk(&s, root, &o, &r, &err), 0);
    assert_int_equal(r.n, 3);
    assert_non_null(node_for(&r, amd));
    assert_int_equal(reads_of(&s, amd), 1);
    blob *rb = find(&s, root);
    al_manifest *m = NULL;
    assert_int_equal(al_graph_accept_manifest(&m, NULL, 1, rb->body, strlen(rb->body), NULL, &err),
                     0);
    size_t *next = NULL, n = 0;
    assert_int_equal(al_graph_next(&next, &n, root, m, 1, NULL, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(next[0], 0);
    assert_int_equal(next[1], 2);
    free(next);
    al_manifest_free(m);
    mem_free(&s);
}

/* Bodies that disagree with what named them (issue 15, item 14), and
 * configs export could not use. */
static void test_disagreement(void **state)
{
    (void)state;
    mem s = {0};
    char good[AL_DIGEST_BUF], nested[AL_DIGEST_BUF], notjson[AL_DIGEST_BUF], array[AL_DIGEST_BUF];
    snprintf(good, sizeof(good), "%s", image(&s, "amd64", "good"));
    snprintf(nested, sizeof(nested), "%s",
             INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, image(&s, "arm64", "n"), "linux/arm64")));
    snprintf(notjson, sizeof(notjson), "%s", image_with(&s, NULL, "nj", "this is not JSON"));
    snprintf(array, sizeof(array), "%s", image_with(&s, NULL, "arr", "[1,2]"));
    struct {
        const char *mt, *digest, *platform;
        al_errc code;
        const char *msg;
        bool config_at_fault;
    } cases[] = {
        /* typed image manifest, body an index */
        {AL_MT_OCI_MANIFEST, nested, "linux/arm64", AL_E_PARSE,
         "descriptor names an image manifest", false},
        {AL_MT_DOCKER_MANIFEST, nested, "linux/arm64", AL_E_PARSE, "the content is an index",
         false},
        /* typed index, body an image manifest */
        {AL_MT_OCI_INDEX, good, NULL, AL_E_PARSE, "descriptor names an index", false},
        {AL_MT_OCI_MANIFEST, notjson, "linux/s390x", AL_E_PARSE, "not valid JSON", true},
        {AL_MT_OCI_MANIFEST, array, "linux/s390x", AL_E_PARSE, "not a JSON object", true},
    };
    for (size_t c = 0; c < AL_ARRAY_SIZE(cases); c++) {
        const char *root = INDEX(&s, entry(&s, cases[c].mt, cases[c].digest, cases[c].platform));
        rec r = {0};
        al_graph_walk_opts o = {.configs = true};
        al_error *err = NULL;
        assert_int_equal(walk(&s, root, &o, &r, &err), 0);
        assert_int_equal(r.n, 2);
        const seen_node *f = node_for(&r, cases[c].digest);
        assert_int_equal(f->state, AL_GRAPH_FAILED);
        assert_int_equal(f->code, cases[c].code);
        if (strstr(f->error, cases[c].msg) == NULL)
            fail_msg("case %zu: no '%s' in: %s", c, cases[c].msg, f->error);
        if (strstr(f->error, cases[c].digest) == NULL)
            fail_msg("case %zu: the error does not name the manifest: %s", c, f->error);
        if (cases[c].config_at_fault)
            assert_string_not_equal(f->error_digest, cases[c].digest);
        else
            assert_string_equal(f->error_digest, cases[c].digest);
        /* A visitor that stops on failure gets the same error back. */
        rec r2 = {.fail_fast = true};
        assert_int_equal(walk(&s, root, &o, &r2, &err), cases[c].code);
        assert_string_equal(err->msg, f->error);
        al_error_clear(&err);
    }
    /* Without configs read, a config is not judged; a wrong size is. */
    const char *root = INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, notjson, "linux/s390x"));
    rec r = {0};
    al_graph_walk_opts o = {0};
    assert_int_equal(walk(&s, root, &o, &r, NULL), 0);
    assert_int_equal(node_for(&r, notjson)->state, AL_GRAPH_VISITED);
    char *e = entry(&s, AL_MT_OCI_MANIFEST, good, "linux/amd64");
    char *sz = strstr(e, "\"size\":");
    assert_non_null(sz);
    sz[7] = sz[7] == '9' ? '1' : '9';
    root = INDEX(&s, e);
    memset(&r, 0, sizeof(r));
    assert_int_equal(walk(&s, root, &o, &r, NULL), 0);
    assert_int_equal(node_for(&r, good)->code, AL_E_SIZE);
    /* The step's checks are the same ones. */
    blob *nb = find(&s, nested);
    al_descriptor d = {.media_type = AL_MT_OCI_MANIFEST, .size = (int64_t)strlen(nb->body)};
    al_manifest *m = NULL;
    al_error *err = NULL;
    assert_int_equal(
        al_graph_accept_manifest(&m, &d, 2, nb->body, strlen(nb->body), "application/json", &err),
        AL_E_PARSE);
    assert_null(m);
    al_error_clear(&err);
    al_descriptor cd = {.media_type = AL_MT_OCI_CONFIG, .size = 16};
    al_image_config *cfg = NULL;
    assert_int_equal(al_graph_accept_config(&cfg, &cd, "this is not JSON", 16, &err), AL_E_PARSE);
    al_error_clear(&err);
    assert_int_equal(al_graph_accept_config(&cfg, &cd, "{}", 2, &err), AL_E_SIZE);
    al_error_clear(&err);
    cd.size = 2;
    assert_int_equal(al_graph_accept_config(&cfg, &cd, "{}", 2, &err), 0);
    al_image_config_free(cfg);
    mem_free(&s);
}

/* An index naming itself, or an index above it: only a source that lies
 * about digests can, and the walk ends the loop. */
static void test_cycles(void **state)
{
    (void)state;
    mem s = {0};
    const char *self = "sha256:5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f";
    const char *top = "sha256:7070707070707070707070707070707070707070707070707070707070707070";
    char amd[AL_DIGEST_BUF];
    snprintf(amd, sizeof(amd), "%s", image(&s, "amd64", "a"));
    /* self lists itself and an image. */
    char *e1 =
        al_xasprintf("{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":0}", AL_MT_OCI_INDEX, self);
    index_as(&s, self, (char *[]){e1, entry(&s, AL_MT_OCI_MANIFEST, amd, "linux/amd64")}, 2);
    /* top -> mid -> top. */
    const char *mid_body_entry = top;
    char *e2 = al_xasprintf("{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":0}", AL_MT_OCI_INDEX,
                            mid_body_entry);
    char mid[AL_DIGEST_BUF];
    snprintf(mid, sizeof(mid), "%s", index_as(&s, NULL, (char *[]){e2}, 1));
    index_as(&s, top, (char *[]){entry(&s, AL_MT_OCI_INDEX, mid, NULL)}, 1);
    /* Sizes of the lying entries do not matter: cycles are refused first. */
    const struct {
        const char *root, *looping, *parent;
    } cases[] = {{self, self, self}, {top, top, mid}};
    for (size_t c = 0; c < AL_ARRAY_SIZE(cases); c++) {
        rec r = {0};
        al_graph_walk_opts o = {0};
        al_error *err = NULL;
        assert_int_equal(walk(&s, cases[c].root, &o, &r, &err), 0);
        const seen_node *f = NULL;
        for (size_t i = 0; i < r.n; i++)
            if (r.v[i].state == AL_GRAPH_FAILED)
                f = &r.v[i];
        assert_non_null(f);
        assert_string_equal(f->digest, cases[c].looping);
        assert_int_equal(f->code, AL_E_PARSE);
        assert_non_null(strstr(f->error, "cycle"));
        assert_string_equal(f->error_digest, cases[c].parent);
        assert_int_equal(reads_of(&s, cases[c].root), 1);
        for (size_t i = 0; i < s.n; i++)
            s.b[i].reads = 0;
    }
    /* The step refuses an index listing itself. */
    blob *sb = find(&s, self);
    al_manifest *m = NULL;
    al_error *err = NULL;
    assert_int_equal(al_graph_accept_manifest(&m, NULL, 1, sb->body, strlen(sb->body), NULL, &err),
                     0);
    size_t *next = NULL, n = 0;
    assert_int_equal(al_graph_next(&next, &n, self, m, 1, NULL, &err), AL_E_PARSE);
    assert_non_null(strstr(err->msg, "itself"));
    al_error_clear(&err);
    al_manifest_free(m);
    mem_free(&s);
}

/* Missing blobs: a missing entry is a FAILED node and the walk goes on; a
 * missing root is the only node. */
static void test_missing(void **state)
{
    (void)state;
    mem s = {0};
    char amd[AL_DIGEST_BUF];
    snprintf(amd, sizeof(amd), "%s", image(&s, "amd64", "a"));
    const char *gone = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    char *e = al_xasprintf("{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":5,"
                           "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}",
                           AL_MT_OCI_MANIFEST, gone);
    const char *root =
        index_as(&s, NULL, (char *[]){e, entry(&s, AL_MT_OCI_MANIFEST, amd, "linux/amd64")}, 2);
    rec r = {0};
    al_graph_walk_opts o = {0};
    al_error *err = NULL;
    assert_int_equal(walk(&s, root, &o, &r, &err), 0);
    assert_int_equal(r.n, 3);
    const seen_node *g = node_for(&r, gone);
    assert_int_equal(g->state, AL_GRAPH_FAILED);
    assert_int_equal(g->code, AL_E_NOT_FOUND);
    assert_string_equal(g->platform, "linux/arm64");
    assert_int_equal(node_for(&r, amd)->state, AL_GRAPH_VISITED);
    /* A missing config fails its image (the config's digest at fault). */
    blob *ab = find(&s, amd);
    char cfg[AL_DIGEST_BUF];
    const char *c = strstr(ab->body, "sha256:");
    snprintf(cfg, sizeof(cfg), "%.*s", AL_DIGEST_LEN, c);
    blob *cb = find(&s, cfg);
    cb->digest[8] = cb->digest[8] == '0' ? '1' : '0';
    memset(&r, 0, sizeof(r));
    o.configs = true;
    assert_int_equal(walk(&s, root, &o, &r, &err), 0);
    const seen_node *a = node_for(&r, amd);
    assert_int_equal(a->state, AL_GRAPH_FAILED);
    assert_int_equal(a->code, AL_E_NOT_FOUND);
    assert_string_equal(a->error_digest, cfg);
    /* The root. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(walk(&s, gone, &o, &r, &err), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].state, AL_GRAPH_FAILED);
    assert_int_equal(r.v[0].level, 1);
    mem_free(&s);
}

/* Children first: every manifest after all it lists (what a push needs);
 * parents first: the reverse. AL_GRAPH_STOP ends the walk early. */
static void test_order(void **state)
{
    (void)state;
    mem s = {0};
    char a[AL_DIGEST_BUF], b[AL_DIGEST_BUF], c[AL_DIGEST_BUF], inner[AL_DIGEST_BUF];
    snprintf(a, sizeof(a), "%s", image(&s, "amd64", "a"));
    snprintf(b, sizeof(b), "%s", image(&s, "arm64", "b"));
    snprintf(c, sizeof(c), "%s", image(&s, "s390x", "c"));
    snprintf(inner, sizeof(inner), "%s",
             INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, b, "linux/arm64"),
                   entry(&s, AL_MT_OCI_MANIFEST, c, "linux/s390x")));
    char root[AL_DIGEST_BUF];
    snprintf(root, sizeof(root), "%s",
             INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, a, "linux/amd64"),
                   entry(&s, AL_MT_OCI_INDEX, inner, NULL)));
    const char *parents_first[] = {root, a, inner, b, c};
    const char *children_first[] = {a, b, c, inner, root};
    for (int order = 0; order < 2; order++) {
        rec r = {0};
        al_graph_walk_opts o = {.order = order ? AL_GRAPH_CHILDREN_FIRST : AL_GRAPH_PARENTS_FIRST};
        assert_int_equal(walk(&s, root, &o, &r, NULL), 0);
        assert_int_equal(r.n, 5);
        for (size_t i = 0; i < 5; i++)
            assert_string_equal(r.v[i].digest, order ? children_first[i] : parents_first[i]);
        /* Levels as the rule counts them. */
        assert_int_equal(node_for(&r, root)->level, 1);
        assert_int_equal(node_for(&r, inner)->level, 2);
        assert_int_equal(node_for(&r, c)->level, 3);
        /* Stop after the second visit. */
        rec st = {.stop_after = 2};
        assert_int_equal(walk(&s, root, &o, &st, NULL), 0);
        assert_int_equal(st.n, 2);
    }
    mem_free(&s);
}

/* Entries of other media types are neither read nor followed. */
static void test_other_types(void **state)
{
    (void)state;
    mem s = {0};
    char a[AL_DIGEST_BUF], art[AL_DIGEST_BUF];
    snprintf(a, sizeof(a), "%s", image(&s, "amd64", "a"));
    snprintf(art, sizeof(art), "%s", put(&s, "{\"schemaVersion\":2}"));
    const char *root =
        INDEX(&s, entry(&s, AL_MT_OCI_MANIFEST, a, "linux/amd64"),
              entry(&s, "application/vnd.oci.artifact.manifest.v1+json", art, "linux/amd64"));
    rec r = {0};
    al_graph_walk_opts o = {0};
    assert_int_equal(walk(&s, root, &o, &r, NULL), 0);
    const seen_node *x = node_for(&r, art);
    assert_int_equal(x->state, AL_GRAPH_SKIPPED);
    assert_int_equal(x->kind, AL_GRAPH_OTHER);
    assert_int_equal(reads_of(&s, art), 0);
    /* The step agrees. */
    blob *rb = find(&s, root);
    al_manifest *m = NULL;
    assert_int_equal(al_graph_accept_manifest(&m, NULL, 1, rb->body, strlen(rb->body), NULL, NULL),
                     0);
    size_t *next = NULL, n = 0;
    assert_int_equal(al_graph_next(&next, &n, root, m, 1, NULL, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(next[0], 0);
    free(next);
    al_manifest_free(m);
    mem_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),      cmocka_unit_test(test_depth),
        cmocka_unit_test(test_step_depth), cmocka_unit_test(test_platforms_and_attestations),
        cmocka_unit_test(test_duplicates), cmocka_unit_test(test_disagreement),
        cmocka_unit_test(test_cycles),     cmocka_unit_test(test_missing),
        cmocka_unit_test(test_order),      cmocka_unit_test(test_other_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
