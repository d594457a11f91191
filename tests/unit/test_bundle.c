/* Unit tests of common/bundle.c: the bundle manifest and volume header
 * (round trip, the checksum, every refusal names its field), member and
 * volume names, ids, and al_parse_utc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "util.h"

#define D1 "sha256:1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef"
#define D2 "sha256:9a8b7c6d5e4f30210123456789abcdef0123456789abcdef0123456789abcdef"
#define D3 "sha256:00000000000000000123456789abcdef0123456789abcdef0123456789abcdef"
#define P1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define P2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"
#define ID3 "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb"

/* A manifest with one tag, a whole blob, a split blob, an omitted blob
 * and two held pairs. */
static void sample(al_bundle_manifest *m)
{
    memset(m, 0, sizeof(*m));
    m->format = AL_BUNDLE_FORMAT;
    m->version = al_xstrdup("0.1.0");
    snprintf(m->id, sizeof(m->id), ID1);
    snprintf(m->source_store, sizeof(m->source_store), ID2);
    snprintf(m->base, sizeof(m->base), ID3);
    m->since_kind = al_xstrdup("bundle");
    m->created_at = 1746064800.25;
    m->volumes = 2;
    m->n_tags = 1;
    m->tags = al_xcalloc(1, sizeof(*m->tags));
    al_bundle_tag *t = &m->tags[0];
    t->name = al_xstrdup("docker.io/library/busybox:1.36");
    snprintf(t->digest, sizeof(t->digest), D1);
    t->media_type = al_xstrdup("application/vnd.oci.image.index.v1+json");
    t->size = 512;
    t->n_platforms = 2;
    t->platforms = al_xcalloc(2, sizeof(char *));
    t->platforms[0] = al_xstrdup("linux/amd64");
    t->platforms[1] = al_xstrdup("linux/arm64");
    t->n_history = 2;
    t->history = al_xcalloc(2, sizeof(*t->history));
    snprintf(t->history[0].digest, AL_DIGEST_BUF, D1);
    snprintf(t->history[0].old_digest, AL_DIGEST_BUF, D3);
    t->history[0].at = 1746064000.5;
    snprintf(t->history[1].digest, AL_DIGEST_BUF, D3);
    t->history[1].at = 1746000000;
    m->n_blobs = 2;
    m->blobs = al_xcalloc(2, sizeof(*m->blobs));
    snprintf(m->blobs[0].digest, AL_DIGEST_BUF, D1);
    m->blobs[0].size = 512;
    snprintf(m->blobs[1].digest, AL_DIGEST_BUF, D2);
    m->blobs[1].size = 3000;
    m->blobs[1].n_parts = 2;
    m->blobs[1].parts = al_xcalloc(2, sizeof(al_bundle_part));
    snprintf(m->blobs[1].parts[0].digest, AL_DIGEST_BUF, P1);
    m->blobs[1].parts[0].size = 2000;
    snprintf(m->blobs[1].parts[1].digest, AL_DIGEST_BUF, P2);
    m->blobs[1].parts[1].size = 1000;
    al_bundle_checksum(m, m->checksum);
    m->n_omitted = 1;
    m->omitted = al_xcalloc(1, sizeof(*m->omitted));
    snprintf(m->omitted[0].digest, AL_DIGEST_BUF, D3);
    m->omitted[0].size = 77;
    m->n_holds = 2;
    m->holds = al_xcalloc(2, sizeof(*m->holds));
    m->holds[0].name = al_xstrdup("docker.io/library/busybox:1.36");
    snprintf(m->holds[0].digest, AL_DIGEST_BUF, D1);
    m->holds[1].name = NULL;
    snprintf(m->holds[1].digest, AL_DIGEST_BUF, D3);
}

static void test_round_trip(void **state)
{
    (void)state;
    al_bundle_manifest m, back;
    sample(&m);
    size_t len = 0;
    char *text = al_bundle_manifest_json(&m, &len);
    assert_int_equal(strlen(text), len);
    assert_int_equal('\n', text[len - 1]);
    al_error *err = NULL;
    int r = al_bundle_manifest_parse(&back, text, len, &err);
    if (r < 0)
        fail_msg("%s", err->msg);
    assert_string_equal(ID1, back.id);
    assert_string_equal(ID2, back.source_store);
    assert_string_equal(ID3, back.base);
    assert_string_equal("bundle", back.since_kind);
    assert_true(back.created_at > 1746064800.24 && back.created_at < 1746064800.26);
    assert_int_equal(2, back.volumes);
    assert_int_equal(1, back.n_tags);
    assert_string_equal("docker.io/library/busybox:1.36", back.tags[0].name);
    assert_int_equal(2, back.tags[0].n_platforms);
    assert_string_equal("linux/arm64", back.tags[0].platforms[1]);
    assert_int_equal(2, back.tags[0].n_history);
    assert_string_equal(D3, back.tags[0].history[0].old_digest);
    assert_string_equal("", back.tags[0].history[1].old_digest);
    assert_int_equal(2, back.n_blobs);
    assert_int_equal(2, back.blobs[1].n_parts);
    assert_string_equal(P2, back.blobs[1].parts[1].digest);
    assert_int_equal(1000, back.blobs[1].parts[1].size);
    assert_string_equal(m.checksum, back.checksum);
    assert_int_equal(1, back.n_omitted);
    assert_int_equal(2, back.n_holds);
    assert_null(back.holds[1].name);
    /* The same manifest gives the same bytes. */
    char *again = al_bundle_manifest_json(&back, NULL);
    assert_string_equal(text, again);
    free(again);
    free(text);
    al_bundle_manifest_dispose(&back);
    al_bundle_manifest_dispose(&m);
}

static void test_checksum(void **state)
{
    (void)state;
    al_bundle_manifest m;
    sample(&m);
    char a[AL_DIGEST_BUF], b[AL_DIGEST_BUF];
    al_bundle_checksum(&m, a);
    /* Every number and digest of the list is covered: a part's size, */
    m.blobs[1].parts[1].size = 1001;
    al_bundle_checksum(&m, b);
    assert_string_not_equal(a, b);
    m.blobs[1].parts[1].size = 1000;
    /* a blob's digest, the order. */
    m.blobs[0].digest[10] ^= 1;
    al_bundle_checksum(&m, b);
    assert_string_not_equal(a, b);
    m.blobs[0].digest[10] ^= 1;
    al_bundle_blob t = m.blobs[0];
    m.blobs[0] = m.blobs[1];
    m.blobs[1] = t;
    al_bundle_checksum(&m, b);
    assert_string_not_equal(a, b);
    /* A damaged list in the JSON is refused as such. */
    m.blobs[1] = m.blobs[0];
    m.blobs[0] = t;
    char *text = al_bundle_manifest_json(&m, NULL);
    char *p = strstr(text, "\"blobs\":[{\"digest\":\"sha256:1f2e");
    assert_non_null(p);
    p[strlen("\"blobs\":[{\"digest\":\"sha256:")] = '0';
    al_bundle_manifest back;
    al_error *err = NULL;
    assert_int_equal(AL_E_DIGEST, al_bundle_manifest_parse(&back, text, strlen(text), &err));
    assert_non_null(strstr(err->msg, "damaged"));
    al_error_free(err);
    free(text);
    al_bundle_manifest_dispose(&m);
}

/* Replace the first occurrence of from (in the sample's JSON) by to and
 * parse: the code and a piece of the message. */
static void refused(const char *from, const char *to, al_errc code, const char *want)
{
    al_bundle_manifest m;
    sample(&m);
    char *text = al_bundle_manifest_json(&m, NULL);
    al_bundle_manifest_dispose(&m);
    char *p = strstr(text, from);
    if (p == NULL)
        fail_msg("sample lacks %s", from);
    char *edited = al_xasprintf("%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    al_bundle_manifest back;
    al_error *err = NULL;
    int r = al_bundle_manifest_parse(&back, edited, strlen(edited), &err);
    if (r != (int)code || err == NULL || strstr(err->msg, want) == NULL)
        fail_msg("%s -> %s: got %d (%s), want %d with \"%s\"", from, to, r,
                 err ? err->msg : "no error", code, want);
    al_error_free(err);
    free(edited);
    free(text);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("\"bundle_format\":1", "\"bundle_format\":2", AL_E_UNSUPPORTED,
            "bundle format version 2 is newer than this airlock (1)");
    refused("\"bundle_format\":1", "\"bundle_format\":\"1\"", AL_E_PARSE, "bundle_format");
    refused("\"bundle_id\":\"" ID1, "\"bundle_id\":\"" ID1 "0", AL_E_PARSE, "bundle_id");
    refused("\"base_bundle\":\"" ID3, "\"base_bundle\":\"" ID1, AL_E_PARSE, "build on itself");
    refused("\"created_at\":\"2025", "\"created_at\":\" 2025", AL_E_PARSE, "created_at");
    refused("\"volumes\":2", "\"volumes\":0", AL_E_PARSE, "volumes");
    refused("\"name\":\"docker.io/library/busybox:1.36\"", "\"name\":\"busybox:1.36\"", AL_E_PARSE,
            "tags[0].name: \"busybox:1.36\" is not in normal form");
    refused("\"name\":\"docker.io/library/busybox:1.36\"",
            "\"name\":\"docker.io/library/busybox:1.36\\u001b[2J\"", AL_E_PARSE, "tags[0].name");
    refused("\"digest\":\"sha256:1f2e", "\"digest\":\"sha256:../2e", AL_E_PARSE, "tags[0].digest");
    refused("\"size\":512", "\"size\":-1", AL_E_PARSE, "tags[0].size");
    refused("\"size\":2000", "\"size\":2001", AL_E_PARSE, "blobs[1].parts: the parts add up");
    refused("\"size\":77", "\"size\":1.5", AL_E_PARSE, "omitted[0].size");
    refused("{\"digest\":\"" D3 "\",\"size\":77}", "{\"digest\":\"" D1 "\",\"size\":77}",
            AL_E_PARSE, "carried and omitted at once");
    refused("\"tags\":[", "\"tags\":{}, \"x\":[", AL_E_PARSE, "tags: expected an array");
    refused("\"bundle_id\":", "\"bundle_id\":\"x\",\"bundle_id\":", AL_E_PARSE, "not valid JSON");
    refused("{\"bundle_format\"", "[{\"bundle_format\"", AL_E_PARSE, "not valid JSON");
}

static void test_volume_header(void **state)
{
    (void)state;
    al_bundle_volume v = {.format = AL_BUNDLE_FORMAT, .volume = 2, .volumes = 3};
    snprintf(v.bundle_id, sizeof(v.bundle_id), ID1);
    snprintf(v.manifest_digest, sizeof(v.manifest_digest), D3);
    al_bundle_part mem[2] = {{P1, 2000}, {D2, 9}};
    v.members = mem;
    v.n_members = 2;
    size_t len = 0;
    char *text = al_bundle_volume_json(&v, &len);
    al_bundle_volume back;
    al_error *err = NULL;
    assert_int_equal(0, al_bundle_volume_parse(&back, text, len, &err));
    assert_int_equal(2, back.volume);
    assert_int_equal(3, back.volumes);
    assert_string_equal(ID1, back.bundle_id);
    assert_int_equal(2, back.n_members);
    assert_string_equal(D2, back.members[1].digest);
    al_bundle_volume_dispose(&back);
    free(text);
    /* A bundle that fits in one volume still has its header: 1 of 1. */
    v.volume = 1;
    v.volumes = 1;
    text = al_bundle_volume_json(&v, &len);
    assert_int_equal(0, al_bundle_volume_parse(&back, text, len, &err));
    assert_int_equal(1, back.volumes);
    al_bundle_volume_dispose(&back);
    free(text);
    v.volumes = 3;
    v.volume = 4; /* beyond the count */
    text = al_bundle_volume_json(&v, &len);
    assert_int_equal(AL_E_PARSE, al_bundle_volume_parse(&back, text, len, &err));
    assert_non_null(strstr(err->msg, "volume"));
    al_error_clear(&err);
    free(text);
    v.volume = 1;
    mem[1] = mem[0]; /* a member twice */
    text = al_bundle_volume_json(&v, &len);
    assert_int_equal(AL_E_PARSE, al_bundle_volume_parse(&back, text, len, &err));
    assert_non_null(strstr(err->msg, "listed twice"));
    al_error_clear(&err);
    free(text);
}

static void test_names(void **state)
{
    (void)state;
    char d[AL_DIGEST_BUF];
    char *name = al_bundle_member_name(D1);
    assert_string_equal(
        "blobs/sha256/1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef", name);
    assert_true(al_bundle_member_digest(name, d));
    assert_string_equal(D1, d);
    free(name);
    static const char *refused_names[] = {
        "blobs/sha256/../../etc/passwd",
        "blobs/sha256/1F2E3D4C5B6A79880123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
        "blobs/sha256/1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcde",
        "blobs/sha256/1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef/",
        "./blobs/sha256/1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef",
        "/blobs/sha256/1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef",
        "blobs/sha512/1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef",
        "blobs/sha256/",
        "",
    };
    for (size_t i = 0; i < sizeof(refused_names) / sizeof(*refused_names); i++)
        if (al_bundle_member_digest(refused_names[i], d))
            fail_msg("accepted \"%s\"", refused_names[i]);

    char *p = al_bundle_volume_path("/media/usb/nightly.tar.zst", 7);
    assert_string_equal("/media/usb/nightly.tar.zst.007", p);
    char *base = NULL;
    unsigned n = 0;
    assert_true(al_bundle_volume_split(p, &base, &n));
    assert_string_equal("/media/usb/nightly.tar.zst", base);
    assert_int_equal(7, n);
    free(base);
    free(p);
    assert_false(al_bundle_volume_split("nightly.tar", &base, &n));
    assert_false(al_bundle_volume_split("nightly.000", &base, &n));
    assert_false(al_bundle_volume_split("nightly.01", &base, &n));
    assert_false(al_bundle_volume_split("nightly.0a1", &base, &n));
    assert_true(al_bundle_volume_split("nightly.1234", &base, &n));
    assert_int_equal(1234, n);
    free(base);
}

static void test_ids_and_times(void **state)
{
    (void)state;
    char a[AL_BUNDLE_ID_BUF], b[AL_BUNDLE_ID_BUF];
    al_bundle_id_new(a);
    al_bundle_id_new(b);
    assert_true(al_bundle_id_valid(a));
    assert_string_not_equal(a, b);
    assert_false(al_bundle_id_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(al_bundle_id_valid("0123456789abcdef"));
    assert_false(al_bundle_id_valid(NULL));
    double t = 0;
    char buf[40];
    assert_true(al_parse_utc(al_format_utc(buf, sizeof(buf), 1746064800.25), &t));
    assert_true(t > 1746064800.24 && t < 1746064800.26);
    /* What parses prints back the same (0.1 s is not exact in binary). */
    static const char *exact[] = {"2025-04-30T02:00:00.100Z", "2025-04-30T02:00:00.999Z",
                                  "2025-04-30T02:00:00.001Z", "2025-04-30T02:00:59.900Z"};
    for (size_t i = 0; i < sizeof(exact) / sizeof(*exact); i++) {
        assert_true(al_parse_utc(exact[i], &t));
        assert_string_equal(exact[i], al_format_utc(buf, sizeof(buf), t));
    }
    assert_true(al_parse_utc("2025-05-01T02:00:00Z", &t));
    assert_true(t == 1746064800);
    static const char *bad[] = {"2025-05-01T02:00:00",
                                "2025-05-01 02:00:00Z",
                                "2025-5-01T02:00:00Z",
                                "2025-05-01T02:00:00.5Z",
                                "+025-05-01T02:00:00Z",
                                "2025-13-01T02:00:00Z",
                                ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        if (al_parse_utc(bad[i], &t))
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_volume_header),
        cmocka_unit_test(test_names),      cmocka_unit_test(test_ids_and_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
