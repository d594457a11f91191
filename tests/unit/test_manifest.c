/* Unit tests for common/manifest: the four media types, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "util.h"

#define D1 "sha256:1b0a9ae3bf2a1b0c3e2bcd4fd4d3ff8ac5b0d6e5b4a3c2d1e0f9a8b7c6d5e4f3"
#define D2 "sha256:2c1b0af4c03b2c1d4f3cde50e5e400b9d6c1e7f6c5b4d3e2f1a0b9c8d7e6f504"
#define D3 "sha256:3d2c1b05d14c3d2e504def61f6f511cae7d2f807d6c5e4f3a2b1c0d9e8f70615"

#define DOCKER_CFG "{\"mediaType\":\"" AL_MT_DOCKER_CONFIG "\",\"size\":1472,\"digest\":\"" D1 "\"}"
#define GZ_LAYER(d, n)                                                                             \
    "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":" #n            \
    ",\"digest\":\"" d "\"}"

/* A docker v2 manifest with a replaceable layer, for the bad-size/digest cases. */
#define DOCKER_M_LAYER(layer)                                                                      \
    "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_MANIFEST "\",\"config\":" DOCKER_CFG      \
    ",\"layers\":[" layer "]}"
#define OCI_IDX(children)                                                                          \
    "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_OCI_INDEX "\",\"manifests\":[" children "]}"

static const char *SCHEMA1_MSG = "schema 1 manifests are not supported (deprecated by docker); "
                                 "re-push the image with a current client";

/* ---------- inline cases ---------- */

typedef struct {
    const char *name;
    const char *json;
    const char *content_type;
    al_errc want;
    al_manifest_kind kind; /* when want == 0 */
    size_t n;              /* layers or children, when want == 0 */
    const char *msg;       /* substring of the error, when want != 0 */
} parse_case;

static const parse_case CASES[] = {
    /* the four kinds */
    {"docker manifest", DOCKER_M_LAYER(GZ_LAYER(D2, 100) "," GZ_LAYER(D3, 0)), NULL, 0,
     AL_MK_DOCKER_MANIFEST, 2, NULL},
    {"docker list",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_LIST "\",\"manifests\":["
     "{\"mediaType\":\"" AL_MT_DOCKER_MANIFEST "\",\"size\":528,\"digest\":\"" D1 "\","
     "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
     NULL, 0, AL_MK_DOCKER_LIST, 1, NULL},
    {"oci manifest",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_OCI_MANIFEST
     "\",\"config\":{\"mediaType\":\"" AL_MT_OCI_CONFIG "\",\"size\":7,\"digest\":\"" D1
     "\"},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\","
     "\"size\":9,\"digest\":\"" D2 "\"}]}",
     NULL, 0, AL_MK_OCI_MANIFEST, 1, NULL},
    {"oci index",
     OCI_IDX("{\"mediaType\":\"" AL_MT_OCI_MANIFEST "\",\"size\":1,\"digest\":\"" D1 "\"}"), NULL,
     0, AL_MK_OCI_INDEX, 1, NULL},
    /* media type sources */
    {"content-type decides without mediaType",
     "{\"schemaVersion\":2,\"config\":" DOCKER_CFG ",\"layers\":[]}", AL_MT_DOCKER_MANIFEST, 0,
     AL_MK_DOCKER_MANIFEST, 0, NULL},
    {"content-type parameters ignored", "{\"schemaVersion\":2,\"manifests\":[]}",
     AL_MT_DOCKER_LIST "; charset=utf-8", 0, AL_MK_DOCKER_LIST, 0, NULL},
    {"content-type case-insensitive", "{\"schemaVersion\":2,\"manifests\":[]}",
     "Application/VND.OCI.image.index.v1+json", 0, AL_MK_OCI_INDEX, 0, NULL},
    {"body mediaType wins over content-type", OCI_IDX(""), AL_MT_DOCKER_MANIFEST, 0,
     AL_MK_OCI_INDEX, 0, NULL},
    {"generic content-type: shape decides",
     "{\"schemaVersion\":2,\"config\":" DOCKER_CFG ",\"layers\":[]}", "application/json", 0,
     AL_MK_OCI_MANIFEST, 0, NULL},
    {"no type at all: shape decides (index)", "{\"schemaVersion\":2,\"manifests\":[]}", NULL, 0,
     AL_MK_OCI_INDEX, 0, NULL},
    {"content-type says index, body is a manifest",
     "{\"schemaVersion\":2,\"config\":" DOCKER_CFG ",\"layers\":[]}", AL_MT_OCI_INDEX, AL_E_PARSE,
     0, 0, "says index"},
    {"content-type text/html with json body", "{\"schemaVersion\":2,\"manifests\":[]}",
     "text/html; charset=utf-8", AL_E_UNSUPPORTED, 0, 0,
     "unsupported manifest media type \"text/html\""},
    {"content-type text/html with html body", "<html><body>login</body></html>", "text/html",
     AL_E_UNSUPPORTED, 0, 0, "unsupported manifest media type \"text/html\""},
    {"html body, generic content-type", "<html></html>", "application/octet-stream", AL_E_PARSE, 0,
     0, "not valid JSON"},
    /* schema 1 */
    {"schema 1 by schemaVersion", "{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", NULL,
     AL_E_UNSUPPORTED, 0, 0, "schema 1 manifests are not supported"},
    {"schema 1 by content-type", "{\"name\":\"x\",\"fsLayers\":[]}",
     "application/vnd.docker.distribution.manifest.v1+prettyjws", AL_E_UNSUPPORTED, 0, 0,
     "schema 1 manifests are not supported"},
    {"schema 1 by mediaType",
     "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+json\"}",
     NULL, AL_E_UNSUPPORTED, 0, 0, "schema 1"},
    /* schemaVersion */
    {"schemaVersion 3",
     "{\"schemaVersion\":3,\"mediaType\":\"" AL_MT_OCI_INDEX "\",\"manifests\":[]}", NULL,
     AL_E_UNSUPPORTED, 0, 0, "schemaVersion 3"},
    {"schemaVersion missing", "{\"mediaType\":\"" AL_MT_OCI_INDEX "\",\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "schemaVersion"},
    {"schemaVersion as string",
     "{\"schemaVersion\":\"2\",\"mediaType\":\"" AL_MT_OCI_INDEX "\",\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "schemaVersion"},
    {"schemaVersion as float",
     "{\"schemaVersion\":2.0,\"mediaType\":\"" AL_MT_OCI_INDEX "\",\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "schemaVersion"},
    /* JSON itself */
    {"empty input", "", NULL, AL_E_PARSE, 0, 0, "line"},
    {"truncated", "{\"schemaVersion\":2,\"manifests\":[", NULL, AL_E_PARSE, 0, 0, "column"},
    {"top-level array", "[]", NULL, AL_E_PARSE, 0, 0, "not a JSON object"},
    {"top-level string", "\"x\"", NULL, AL_E_PARSE, 0, 0, "not valid JSON"},
    {"duplicate key", "{\"schemaVersion\":2,\"schemaVersion\":2,\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "duplicate"},
    {"empty object", "{}", NULL, AL_E_PARSE, 0, 0, "neither"},
    {"mediaType not a string", "{\"schemaVersion\":2,\"mediaType\":[],\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "mediaType"},
    {"unknown mediaType",
     "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+json\"}", NULL,
     AL_E_UNSUPPORTED, 0, 0, "unsupported manifest media type"},
    /* shape */
    {"index mediaType with config",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_LIST "\",\"config\":" DOCKER_CFG
     ",\"layers\":[]}",
     NULL, AL_E_PARSE, 0, 0, "says index"},
    {"manifest mediaType with manifests",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_OCI_MANIFEST "\",\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "says image manifest"},
    {"both config and manifests",
     "{\"schemaVersion\":2,\"config\":" DOCKER_CFG ",\"layers\":[],\"manifests\":[]}", NULL,
     AL_E_PARSE, 0, 0, "both"},
    {"manifest without layers",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_MANIFEST "\",\"config\":" DOCKER_CFG "}",
     NULL, AL_E_PARSE, 0, 0, "layers"},
    {"layers not an array",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_MANIFEST "\",\"config\":" DOCKER_CFG
     ",\"layers\":{}}",
     NULL, AL_E_PARSE, 0, 0, "\"layers\" must be an array"},
    {"manifests not an array",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_OCI_INDEX "\",\"manifests\":null}", NULL,
     AL_E_PARSE, 0, 0, "must be an array"},
    {"config not an object",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_MANIFEST "\",\"config\":\"" D1
     "\",\"layers\":[]}",
     NULL, AL_E_PARSE, 0, 0, "config: descriptor must be an object"},
    /* descriptors: size */
    {"size negative", DOCKER_M_LAYER(GZ_LAYER(D2, -1)), NULL, AL_E_PARSE, 0, 0,
     "layers[0]: negative"},
    {"size string",
     DOCKER_M_LAYER("{\"mediaType\":\"x.tar\",\"size\":\"1\",\"digest\":\"" D2 "\"}"), NULL,
     AL_E_PARSE, 0, 0, "must be an integer"},
    {"size float", DOCKER_M_LAYER(GZ_LAYER(D2, 1.5)), NULL, AL_E_PARSE, 0, 0, "must be an integer"},
    {"size exponent", DOCKER_M_LAYER(GZ_LAYER(D2, 1e3)), NULL, AL_E_PARSE, 0, 0,
     "must be an integer"},
    {"size null", DOCKER_M_LAYER(GZ_LAYER(D2, null)), NULL, AL_E_PARSE, 0, 0, "must be an integer"},
    {"size missing", DOCKER_M_LAYER("{\"mediaType\":\"x.tar\",\"digest\":\"" D2 "\"}"), NULL,
     AL_E_PARSE, 0, 0, "missing \"size\""},
    {"size 2^53 is fine", DOCKER_M_LAYER(GZ_LAYER(D2, 9007199254740992)), NULL, 0,
     AL_MK_DOCKER_MANIFEST, 1, NULL},
    {"size above 2^53", DOCKER_M_LAYER(GZ_LAYER(D2, 9007199254740993)), NULL, AL_E_PARSE, 0, 0,
     "2^53"},
    {"size above int64", DOCKER_M_LAYER(GZ_LAYER(D2, 99999999999999999999)), NULL, AL_E_PARSE, 0, 0,
     "not valid JSON"},
    {"config size negative",
     "{\"schemaVersion\":2,\"mediaType\":\"" AL_MT_DOCKER_MANIFEST
     "\",\"config\":{\"mediaType\":\"x\",\"size\":-5,\"digest\":\"" D1 "\"},\"layers\":[]}",
     NULL, AL_E_PARSE, 0, 0, "config: negative"},
    {"child size negative", OCI_IDX("{\"size\":-1,\"digest\":\"" D1 "\"}"), NULL, AL_E_PARSE, 0, 0,
     "manifests[0]: negative"},
    /* descriptors: digest */
    {"digest upper case",
     DOCKER_M_LAYER(
         GZ_LAYER("sha256:1B0A9AE3BF2A1B0C3E2BCD4FD4D3FF8AC5B0D6E5B4A3C2D1E0F9A8B7C6D5E4F3", 1)),
     NULL, AL_E_PARSE, 0, 0, "layers[0]: invalid digest"},
    {"digest traversal", DOCKER_M_LAYER(GZ_LAYER("sha256:../../../etc/passwd", 1)), NULL,
     AL_E_PARSE, 0, 0, "invalid digest"},
    {"digest without algorithm",
     DOCKER_M_LAYER(
         GZ_LAYER("1b0a9ae3bf2a1b0c3e2bcd4fd4d3ff8ac5b0d6e5b4a3c2d1e0f9a8b7c6d5e4f3", 1)),
     NULL, AL_E_PARSE, 0, 0, "missing algorithm"},
    {"digest sha512",
     DOCKER_M_LAYER(GZ_LAYER("sha512:"
                             "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d"
                             "13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
                             1)),
     NULL, AL_E_UNSUPPORTED, 0, 0, "only sha256"},
    {"digest missing", DOCKER_M_LAYER("{\"mediaType\":\"x.tar\",\"size\":1}"), NULL, AL_E_PARSE, 0,
     0, "missing \"digest\""},
    {"digest not a string", DOCKER_M_LAYER("{\"mediaType\":\"x.tar\",\"size\":1,\"digest\":7}"),
     NULL, AL_E_PARSE, 0, 0, "\"digest\" must be a string"},
    {"digest with NUL", DOCKER_M_LAYER(GZ_LAYER("sha256:\\u0000", 1)), NULL, AL_E_PARSE, 0, 0,
     "JSON"},
    {"child digest bad", OCI_IDX("{\"size\":1,\"digest\":\"sha256:abc\"}"), NULL, AL_E_PARSE, 0, 0,
     "manifests[0]: invalid digest"},
    /* descriptors: other fields */
    {"layer without mediaType", DOCKER_M_LAYER("{\"size\":1,\"digest\":\"" D2 "\"}"), NULL,
     AL_E_PARSE, 0, 0, "layers[0]: missing \"mediaType\""},
    {"layer not an object", DOCKER_M_LAYER("\"" D2 "\""), NULL, AL_E_PARSE, 0, 0,
     "layers[0]: descriptor must be an object"},
    {"child platform not an object",
     OCI_IDX("{\"size\":1,\"digest\":\"" D1 "\",\"platform\":\"linux/amd64\"}"), NULL, AL_E_PARSE,
     0, 0, "\"platform\" must be an object"},
    {"child platform os not a string",
     OCI_IDX("{\"size\":1,\"digest\":\"" D1
             "\",\"platform\":{\"os\":1,\"architecture\":\"amd64\"}}"),
     NULL, AL_E_PARSE, 0, 0, "\"os\" must be a string"},
    {"child platform without architecture",
     OCI_IDX("{\"size\":1,\"digest\":\"" D1 "\",\"platform\":{\"os\":\"linux\"}}"), NULL,
     AL_E_PARSE, 0, 0, "required"},
    {"child platform path traversal",
     OCI_IDX("{\"size\":1,\"digest\":\"" D1
             "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"../x\"}}"),
     NULL, AL_E_PARSE, 0, 0, "platform \"linux/../x\""},
    {"child platform variant too long",
     OCI_IDX("{\"size\":1,\"digest\":\"" D1 "\",\"platform\":{\"os\":\"linux\",\"architecture\":"
             "\"arm\",\"variant\":\"v7vvvvvvvvvvvvvvvvvvvv\"}}"),
     NULL, AL_E_PARSE, 0, 0, "too long"},
};

static void test_parse_inline(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const parse_case *c = &CASES[i];
        al_error *err = NULL;
        al_manifest *m = (al_manifest *)&err; /* must be reset */
        int r = al_manifest_parse(&m, c->json, strlen(c->json), c->content_type, &err);
        if (r != (int)c->want)
            fail_msg("case %zu (%s): got %d (%s), want %d", i, c->name, r, err ? err->msg : "-",
                     c->want);
        if (r == 0) {
            assert_null(err);
            assert_non_null(m);
            assert_int_equal(m->kind, c->kind);
            assert_string_equal(m->media_type, al_manifest_kind_media_type(c->kind));
            assert_int_equal(al_manifest_is_index(m) ? m->n_children : m->n_layers, c->n);
            if (al_manifest_is_index(m))
                assert_int_equal(m->n_layers, 0);
            else
                assert_int_equal(m->n_children, 0);
        } else {
            assert_null(m);
            assert_non_null(err);
            assert_int_equal(err->code, c->want);
            if (strstr(err->msg, c->msg) == NULL)
                fail_msg("case %zu (%s): message \"%s\" lacks \"%s\"", i, c->name, err->msg,
                         c->msg);
        }
        al_manifest_free(m);
        al_error_free(err);
        /* err NULL: the code alone still comes back */
        m = NULL;
        assert_int_equal(al_manifest_parse(&m, c->json, strlen(c->json), c->content_type, NULL),
                         c->want);
        al_manifest_free(m);
    }
}

static void test_schema1_message(void **state)
{
    (void)state;
    const char *j = "{\"schemaVersion\":1,\"fsLayers\":[]}";
    al_error *err = NULL;
    al_manifest *m = NULL;
    assert_int_equal(al_manifest_parse(&m, j, strlen(j), NULL, &err), AL_E_UNSUPPORTED);
    assert_string_equal(err->msg, SCHEMA1_MSG);
    al_error_free(err);
}

static void test_parse_fields(void **state)
{
    (void)state;
    const char *j = DOCKER_M_LAYER(GZ_LAYER(D2, 29124181) "," GZ_LAYER(D3, 0));
    al_manifest *m = NULL;
    assert_int_equal(al_manifest_parse(&m, j, strlen(j), NULL, NULL), 0);
    assert_string_equal(m->config.media_type, AL_MT_DOCKER_CONFIG);
    assert_string_equal(m->config.digest, D1);
    assert_int_equal(m->config.size, 1472);
    assert_false(m->config.has_platform);
    assert_string_equal(m->layers[0].digest, D2);
    assert_int_equal(m->layers[0].size, 29124181);
    assert_string_equal(m->layers[0].media_type,
                        "application/vnd.docker.image.rootfs.diff.tar.gzip");
    assert_string_equal(m->layers[1].digest, D3);
    assert_int_equal(m->layers[1].size, 0);
    assert_null(m->children);
    al_manifest_free(m);
    al_manifest_free(NULL);

    /* big sizes survive */
    j = DOCKER_M_LAYER(GZ_LAYER(D2, 5000000000));
    assert_int_equal(al_manifest_parse(&m, j, strlen(j), NULL, NULL), 0);
    assert_int_equal(m->layers[0].size, 5000000000LL);
    al_manifest_free(m);

    /* the buffer need not be NUL-terminated: only len bytes are read */
    char buf[256];
    const char *idx = OCI_IDX("");
    size_t n = strlen(idx);
    memcpy(buf, idx, n);
    memset(buf + n, 'x', sizeof(buf) - n);
    assert_int_equal(al_manifest_parse(&m, buf, n, NULL, NULL), 0);
    al_manifest_free(m);
}

/* ---------- size caps ---------- */

static char *manifest_with_layers(size_t n)
{
    size_t cap = 256 + n * 160;
    char *s = al_xmalloc(cap);
    size_t off = (size_t)snprintf(
        s, cap, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[",
        AL_MT_OCI_MANIFEST, DOCKER_CFG);
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off, "%s" GZ_LAYER(D2, 1), i ? "," : "");
    snprintf(s + off, cap - off, "]}");
    return s;
}

static char *index_with_children(size_t n)
{
    size_t cap = 256 + n * 200;
    char *s = al_xmalloc(cap);
    size_t off = (size_t)snprintf(
        s, cap, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[", AL_MT_OCI_INDEX);
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off,
                                "%s{\"size\":1,\"digest\":\"" D1
                                "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}",
                                i ? "," : "");
    snprintf(s + off, cap - off, "]}");
    return s;
}

static void test_caps(void **state)
{
    (void)state;
    static const struct {
        bool index;
        size_t n;
        al_errc want;
    } cases[] = {
        {false, 0, 0},
        {false, AL_MANIFEST_MAX_LAYERS, 0},
        {false, AL_MANIFEST_MAX_LAYERS + 1, AL_E_SIZE},
        {true, AL_INDEX_MAX_ENTRIES, 0},
        {true, AL_INDEX_MAX_ENTRIES + 1, AL_E_SIZE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_free_ char *j =
            cases[i].index ? index_with_children(cases[i].n) : manifest_with_layers(cases[i].n);
        al_manifest *m = NULL;
        al_error *err = NULL;
        int r = al_manifest_parse(&m, j, strlen(j), NULL, &err);
        if (r != (int)cases[i].want)
            fail_msg("case %zu: got %d (%s)", i, r, err ? err->msg : "-");
        if (r == 0)
            assert_int_equal(cases[i].index ? m->n_children : m->n_layers, cases[i].n);
        else
            assert_non_null(strstr(err->msg, "limit"));
        al_manifest_free(m);
        al_error_free(err);
    }

    /* total size: a valid manifest padded with whitespace past the cap */
    const char *base = OCI_IDX("");
    size_t n = AL_MANIFEST_MAX + 1;
    _cleanup_free_ char *big = al_xmalloc(n);
    memset(big, ' ', n);
    memcpy(big, base, strlen(base));
    al_manifest *m = NULL;
    al_error *err = NULL;
    assert_int_equal(al_manifest_parse(&m, big, n, NULL, &err), AL_E_SIZE);
    assert_null(m);
    al_error_free(err);
    err = NULL;
    /* exactly at the cap is accepted */
    assert_int_equal(al_manifest_parse(&m, big, n - 1, NULL, &err), 0);
    al_manifest_free(m);
}

/* ---------- seed files in tests/data/manifests ---------- */

typedef struct {
    const char *file;
    al_errc want;
    al_manifest_kind kind;
    size_t n;
} seed_case;

static const seed_case SEEDS[] = {
    {"ok-docker-manifest.json", 0, AL_MK_DOCKER_MANIFEST, 3},
    {"ok-docker-manifest-foreign.json", 0, AL_MK_DOCKER_MANIFEST, 2},
    {"ok-docker-list.json", 0, AL_MK_DOCKER_LIST, 8},
    {"ok-oci-manifest.json", 0, AL_MK_OCI_MANIFEST, 3},
    {"ok-oci-manifest-no-mediatype.json", 0, AL_MK_OCI_MANIFEST, 1},
    {"ok-oci-artifact.json", 0, AL_MK_OCI_MANIFEST, 0},
    {"ok-oci-index-buildx.json", 0, AL_MK_OCI_INDEX, 4},
    {"ok-oci-index-nested.json", 0, AL_MK_OCI_INDEX, 3},
    {"ok-oci-index-no-mediatype.json", 0, AL_MK_OCI_INDEX, 2},
    {"ok-oci-index-empty.json", 0, AL_MK_OCI_INDEX, 0},
    {"ok-oci-index-arm-variants.json", 0, AL_MK_OCI_INDEX, 3},
    {"bad-schema1.json", AL_E_UNSUPPORTED, 0, 0},
    {"bad-schema1-mediatype.json", AL_E_UNSUPPORTED, 0, 0},
    {"bad-not-json.json", AL_E_PARSE, 0, 0},
    {"bad-truncated.json", AL_E_PARSE, 0, 0},
    {"bad-top-array.json", AL_E_PARSE, 0, 0},
    {"bad-empty-object.json", AL_E_PARSE, 0, 0},
    {"bad-size-negative.json", AL_E_PARSE, 0, 0},
    {"bad-size-string.json", AL_E_PARSE, 0, 0},
    {"bad-size-float.json", AL_E_PARSE, 0, 0},
    {"bad-size-missing.json", AL_E_PARSE, 0, 0},
    {"bad-size-above-2p53.json", AL_E_PARSE, 0, 0},
    {"bad-size-too-big-integer.json", AL_E_PARSE, 0, 0},
    {"bad-digest-missing.json", AL_E_PARSE, 0, 0},
    {"bad-digest-upper.json", AL_E_PARSE, 0, 0},
    {"bad-digest-traversal.json", AL_E_PARSE, 0, 0},
    {"bad-digest-short.json", AL_E_PARSE, 0, 0},
    {"bad-digest-sha512.json", AL_E_UNSUPPORTED, 0, 0},
    {"bad-layer-no-mediatype.json", AL_E_PARSE, 0, 0},
    {"bad-mediatype-html.json", AL_E_UNSUPPORTED, 0, 0},
    {"bad-mediatype-artifact.json", AL_E_UNSUPPORTED, 0, 0},
    {"bad-mediatype-number.json", AL_E_PARSE, 0, 0},
    {"bad-schemaversion-3.json", AL_E_UNSUPPORTED, 0, 0},
    {"bad-schemaversion-string.json", AL_E_PARSE, 0, 0},
    {"bad-schemaversion-missing.json", AL_E_PARSE, 0, 0},
    {"bad-index-with-config.json", AL_E_PARSE, 0, 0},
    {"bad-manifest-with-manifests.json", AL_E_PARSE, 0, 0},
    {"bad-both-config-and-manifests.json", AL_E_PARSE, 0, 0},
    {"bad-layers-not-array.json", AL_E_PARSE, 0, 0},
    {"bad-layers-missing.json", AL_E_PARSE, 0, 0},
    {"bad-config-not-object.json", AL_E_PARSE, 0, 0},
    {"bad-platform-not-object.json", AL_E_PARSE, 0, 0},
    {"bad-platform-traversal.json", AL_E_PARSE, 0, 0},
    {"bad-platform-no-arch.json", AL_E_PARSE, 0, 0},
    {"bad-duplicate-key.json", AL_E_PARSE, 0, 0},
    {"bad-child-not-object.json", AL_E_PARSE, 0, 0},
};

static char *seed_dir(void)
{
    const char *base = getenv("AL_TEST_DATA");
    if (base == NULL || *base == '\0')
        return NULL;
    return al_xasprintf("%s/manifests", base);
}

/* Whole file into memory; fails the test when unreadable. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, name);
    _cleanup_fclose_ FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = al_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = al_xrealloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

static al_manifest *parse_seed(const char *dir, const char *file, al_errc want)
{
    size_t len;
    _cleanup_free_ char *buf = slurp(dir, file, &len);
    al_manifest *m = NULL;
    al_error *err = NULL;
    int r = al_manifest_parse(&m, buf, len, NULL, &err);
    if (r != (int)want)
        fail_msg("%s: got %d (%s), want %d", file, r, err ? err->msg : "-", want);
    if (r != 0) {
        assert_non_null(err);
        assert_true(strlen(err->msg) > 0);
    }
    al_error_free(err);
    return m;
}

static void test_seed_files(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = seed_dir();
    if (dir == NULL)
        skip();
    for (size_t i = 0; i < sizeof(SEEDS) / sizeof(SEEDS[0]); i++) {
        al_manifest *m = parse_seed(dir, SEEDS[i].file, SEEDS[i].want);
        if (SEEDS[i].want == 0) {
            assert_int_equal(m->kind, SEEDS[i].kind);
            assert_int_equal(al_manifest_is_index(m) ? m->n_children : m->n_layers, SEEDS[i].n);
        }
        al_manifest_free(m);
    }

    /* Every seed follows the naming rule (ok-* parses, bad-* does not),
     * including ones added later without a table row. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    size_t seen = 0;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        size_t len;
        _cleanup_free_ char *buf = slurp(dir, name, &len);
        al_manifest *m = NULL;
        int r = al_manifest_parse(&m, buf, len, NULL, NULL);
        if (strncmp(name, "ok-", 3) == 0 && r != 0)
            fail_msg("%s: expected to parse, got %d", name, r);
        else if (strncmp(name, "bad-", 4) == 0 && r == 0)
            fail_msg("%s: expected to fail", name);
        else if (strncmp(name, "ok-", 3) != 0 && strncmp(name, "bad-", 4) != 0)
            fail_msg("%s: seed names start with ok- or bad-", name);
        al_manifest_free(m);
        seen++;
    }
    closedir(d);
    assert_true(seen >= sizeof(SEEDS) / sizeof(SEEDS[0]));
}

static void expect_platform(const al_descriptor *d, const char *formatted)
{
    char buf[96];
    if (formatted == NULL) {
        assert_false(d->has_platform);
        return;
    }
    assert_true(d->has_platform);
    assert_string_equal(al_platform_format(&d->platform, buf, sizeof(buf)), formatted);
}

static void test_seed_platforms(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = seed_dir();
    if (dir == NULL)
        skip();

    static const struct {
        const char *file;
        const char *platforms[8]; /* NULL entry = no platform */
        const char *media_types[8];
    } cases[] = {
        {"ok-docker-list.json",
         {"linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64", "linux/386",
          "linux/ppc64le", "linux/s390x", "windows/amd64"},
         {AL_MT_DOCKER_MANIFEST, AL_MT_DOCKER_MANIFEST, AL_MT_DOCKER_MANIFEST,
          AL_MT_DOCKER_MANIFEST, AL_MT_DOCKER_MANIFEST, AL_MT_DOCKER_MANIFEST,
          AL_MT_DOCKER_MANIFEST, AL_MT_DOCKER_MANIFEST}},
        {"ok-oci-index-buildx.json",
         {"linux/amd64", "linux/arm64", "unknown/unknown", "unknown/unknown"},
         {AL_MT_OCI_MANIFEST, AL_MT_OCI_MANIFEST, AL_MT_OCI_MANIFEST, AL_MT_OCI_MANIFEST}},
        {"ok-oci-index-nested.json",
         {NULL, NULL, "linux/arm64"},
         {AL_MT_OCI_INDEX, AL_MT_DOCKER_LIST, AL_MT_OCI_MANIFEST}},
        {"ok-oci-index-no-mediatype.json", {"linux/amd64", NULL}, {AL_MT_OCI_MANIFEST, NULL}},
        {"ok-oci-index-arm-variants.json",
         {"linux/arm/v7", "linux/arm/v5", "linux/amd64"},
         {AL_MT_OCI_MANIFEST, AL_MT_OCI_MANIFEST, AL_MT_OCI_MANIFEST}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_manifest *m = parse_seed(dir, cases[i].file, 0);
        assert_true(al_manifest_is_index(m));
        for (size_t k = 0; k < m->n_children; k++) {
            expect_platform(&m->children[k], cases[i].platforms[k]);
            if (cases[i].media_types[k] == NULL)
                assert_null(m->children[k].media_type);
            else
                assert_string_equal(m->children[k].media_type, cases[i].media_types[k]);
            assert_true(al_digest_valid(m->children[k].digest));
        }
        al_manifest_free(m);
    }

    /* attestation entries are recognisable */
    al_manifest *m = parse_seed(dir, "ok-oci-index-buildx.json", 0);
    assert_false(al_platform_is_unknown(&m->children[0].platform));
    assert_true(al_platform_is_unknown(&m->children[2].platform));
    assert_true(al_platform_is_unknown(&m->children[3].platform));
    al_manifest_free(m);

    /* foreign layers and layer compression from a real-looking manifest */
    m = parse_seed(dir, "ok-docker-manifest-foreign.json", 0);
    assert_int_equal(m->layers[0].size, 1650022279);
    assert_int_equal(al_layer_compression(m->layers[0].media_type), AL_COMP_GZIP);
    al_manifest_free(m);
    m = parse_seed(dir, "ok-oci-manifest.json", 0);
    assert_int_equal(al_layer_compression(m->layers[0].media_type), AL_COMP_GZIP);
    assert_int_equal(al_layer_compression(m->layers[1].media_type), AL_COMP_ZSTD);
    assert_int_equal(al_layer_compression(m->layers[2].media_type), AL_COMP_NONE);
    al_manifest_free(m);
}

/* ---------- media type helpers ---------- */

static void test_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *mt;
        al_manifest_kind kind;
    } cases[] = {
        {AL_MT_DOCKER_MANIFEST, AL_MK_DOCKER_MANIFEST},
        {AL_MT_DOCKER_LIST, AL_MK_DOCKER_LIST},
        {AL_MT_OCI_MANIFEST, AL_MK_OCI_MANIFEST},
        {AL_MT_OCI_INDEX, AL_MK_OCI_INDEX},
        {AL_MT_OCI_INDEX "; charset=utf-8", AL_MK_OCI_INDEX},
        {"  " AL_MT_OCI_MANIFEST " ;q=1", AL_MK_OCI_MANIFEST},
        {"APPLICATION/VND.DOCKER.DISTRIBUTION.MANIFEST.V2+JSON", AL_MK_DOCKER_MANIFEST},
        {"application/vnd.docker.distribution.manifest.v1+prettyjws", 0},
        {"application/vnd.docker.distribution.manifest.v2+jsonx", 0},
        {"application/vnd.oci.image.index.v1", 0},
        {AL_MT_DOCKER_CONFIG, 0},
        {"text/html", 0},
        {"", 0},
        {NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (al_manifest_kind_from_media_type(cases[i].mt) != cases[i].kind)
            fail_msg("case %zu: %s", i, cases[i].mt ? cases[i].mt : "(null)");
        if (cases[i].kind != 0)
            assert_non_null(al_manifest_kind_media_type(cases[i].kind));
    }
    assert_string_equal(al_manifest_kind_media_type(AL_MK_OCI_INDEX), AL_MT_OCI_INDEX);
    assert_string_equal(al_manifest_kind_media_type(AL_MK_DOCKER_LIST), AL_MT_DOCKER_LIST);
    assert_null(al_manifest_kind_media_type((al_manifest_kind)0));
}

static void test_compression(void **state)
{
    (void)state;
    static const struct {
        const char *mt;
        al_compression want;
    } cases[] = {
        {"application/vnd.oci.image.layer.v1.tar+gzip", AL_COMP_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+zstd", AL_COMP_ZSTD},
        {"application/vnd.oci.image.layer.v1.tar", AL_COMP_NONE},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", AL_COMP_GZIP},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", AL_COMP_ZSTD},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar", AL_COMP_NONE},
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", AL_COMP_GZIP},
        {"application/vnd.docker.image.rootfs.diff.tar.zstd", AL_COMP_ZSTD},
        {"application/vnd.docker.image.rootfs.diff.tar", AL_COMP_NONE},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", AL_COMP_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+gzip; foo=bar", AL_COMP_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+bzip2", AL_COMP_UNKNOWN},
        {"application/x-tar", AL_COMP_UNKNOWN},
        {"application/gzip", AL_COMP_UNKNOWN},
        {"application/vnd.in-toto+json", AL_COMP_UNKNOWN},
        {AL_MT_OCI_CONFIG, AL_COMP_UNKNOWN},
        {"", AL_COMP_UNKNOWN},
        {NULL, AL_COMP_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (al_layer_compression(cases[i].mt) != cases[i].want)
            fail_msg("case %zu: %s", i, cases[i].mt ? cases[i].mt : "(null)");
}

/* ---------- image config ---------- */

static void test_config(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *json;
        al_errc want;
        const char *platform; /* NULL: no platform */
        size_t n_diff_ids;
        const char *msg;
    } cases[] = {
        {"docker config",
         "{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]},"
         "\"created\":\"2024-01-27T00:00:00Z\",\"history\":[{\"created_by\":\"ADD x /\"}],"
         "\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]}}",
         0, "linux/amd64", 2, NULL},
        {"arm variant",
         "{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v6\",\"rootfs\":{\"type\":"
         "\"layers\",\"diff_ids\":[\"" D3 "\"]}}",
         0, "linux/arm/v6", 1, NULL},
        {"arm without variant",
         "{\"architecture\":\"arm\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":["
         "]}}",
         0, "linux/arm/v7", 0, NULL},
        {"arm64 v8", "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}", 0,
         "linux/arm64", 0, NULL},
        {"empty artifact config", "{}", 0, NULL, 0, NULL},
        {"no rootfs", "{\"architecture\":\"amd64\",\"os\":\"linux\"}", 0, "linux/amd64", 0, NULL},
        {"bad diff_id",
         "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"sha256:xyz\"]}}", AL_E_PARSE,
         NULL, 0, "rootfs.diff_ids[1]: invalid digest"},
        {"diff_id not a string", "{\"rootfs\":{\"diff_ids\":[1]}}", AL_E_PARSE, NULL, 0,
         "must be a string"},
        {"diff_ids not an array", "{\"rootfs\":{\"diff_ids\":\"" D1 "\"}}", AL_E_PARSE, NULL, 0,
         "must be an array"},
        {"rootfs not an object", "{\"rootfs\":[]}", AL_E_PARSE, NULL, 0, "must be an object"},
        {"os not a string", "{\"os\":[\"linux\"],\"architecture\":\"amd64\"}", AL_E_PARSE, NULL, 0,
         "\"os\" must be a string"},
        {"bad architecture", "{\"os\":\"linux\",\"architecture\":\"a/b\"}", AL_E_PARSE, NULL, 0,
         "platform"},
        {"not json", "{\"os\":", AL_E_PARSE, NULL, 0, "not valid JSON"},
        {"array", "[]", AL_E_PARSE, NULL, 0, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_image_config *c = (al_image_config *)&i; /* must be reset */
        al_error *err = NULL;
        int r = al_image_config_parse(&c, cases[i].json, strlen(cases[i].json), &err);
        if (r != (int)cases[i].want)
            fail_msg("case %zu (%s): got %d (%s)", i, cases[i].name, r, err ? err->msg : "-");
        if (r == 0) {
            assert_int_equal(c->has_platform, cases[i].platform != NULL);
            if (cases[i].platform) {
                char buf[96];
                assert_string_equal(al_platform_format(&c->platform, buf, sizeof(buf)),
                                    cases[i].platform);
            }
            assert_int_equal(c->n_diff_ids, cases[i].n_diff_ids);
            for (size_t k = 0; k < c->n_diff_ids; k++)
                assert_true(al_digest_valid(c->diff_ids[k]));
        } else {
            assert_null(c);
            if (strstr(err->msg, cases[i].msg) == NULL)
                fail_msg("case %zu (%s): message \"%s\" lacks \"%s\"", i, cases[i].name, err->msg,
                         cases[i].msg);
        }
        al_image_config_free(c);
        al_error_free(err);
    }
    al_image_config_free(NULL);
}

static void test_config_caps(void **state)
{
    (void)state;
    /* over AL_CONFIG_MAX bytes */
    size_t n = AL_CONFIG_MAX + 1;
    _cleanup_free_ char *big = al_xmalloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    al_image_config *c = NULL;
    al_error *err = NULL;
    assert_int_equal(al_image_config_parse(&c, big, n, &err), AL_E_SIZE);
    assert_null(c);
    al_error_free(err);
    err = NULL;
    big[n - 2] = '}';
    assert_int_equal(al_image_config_parse(&c, big, n - 1, &err), 0);
    al_image_config_free(c);

    /* more diff_ids than a manifest may have layers */
    size_t count = AL_MANIFEST_MAX_LAYERS + 1;
    size_t cap = 64 + count * (AL_DIGEST_LEN + 3);
    _cleanup_free_ char *j = al_xmalloc(cap);
    size_t off = (size_t)snprintf(j, cap, "{\"rootfs\":{\"diff_ids\":[");
    for (size_t i = 0; i < count; i++)
        off += (size_t)snprintf(j + off, cap - off, "%s\"" D1 "\"", i ? "," : "");
    snprintf(j + off, cap - off, "]}}");
    c = NULL;
    err = NULL;
    assert_int_equal(al_image_config_parse(&c, j, strlen(j), &err), AL_E_SIZE);
    assert_null(c);
    al_error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_inline), cmocka_unit_test(test_schema1_message),
        cmocka_unit_test(test_parse_fields), cmocka_unit_test(test_caps),
        cmocka_unit_test(test_seed_files),   cmocka_unit_test(test_seed_platforms),
        cmocka_unit_test(test_kinds),        cmocka_unit_test(test_compression),
        cmocka_unit_test(test_config),       cmocka_unit_test(test_config_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
